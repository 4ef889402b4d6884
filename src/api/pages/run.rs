//! A run: its DAG as a graph with each task's status, the plan's selection and reasons, every
//! attempt with its duration and log, and the lineage decision → window → baseline → outputs.

use std::collections::BTreeMap;

use maud::{html, Markup};

use super::layout::{duration_ms, page, pill, segment, short, time_ms, Assets};
use super::{decision_href, model_href, window_href, PageError};
use crate::api::ApiState;
use crate::store::{RunRecord, TaskRecord, TaskStatus};

pub(super) struct RunPage {
    run: RunRecord,
    tasks: Vec<TaskRecord>,
    /// Each task of the DAG, in its order, with the tasks it needs.
    graph: Vec<(String, Vec<String>)>,
}

pub(super) fn load(state: &ApiState, id: &str) -> Result<RunPage, PageError> {
    let store = state.store.get()?;
    let run = store
        .run(id)?
        .ok_or_else(|| PageError::NotFound(format!("no run `{id}`")))?;
    let tasks = store.run_tasks(id)?;
    let graph = match crate::locks::read(&state.catalog).dag(&run.dag) {
        Some(dag) => dag
            .tasks
            .iter()
            .map(|t| (t.name.clone(), t.needs.clone()))
            .collect(),
        None => plan(&run)
            .into_iter()
            .map(|(name, _, _)| (name, Vec::new()))
            .collect(),
    };
    Ok(RunPage { run, tasks, graph })
}

/// The plan's tasks: name, selection and reason.
fn plan(run: &RunRecord) -> Vec<(String, String, String)> {
    let tasks = run
        .plan
        .as_ref()
        .and_then(|p| p.get("tasks"))
        .and_then(|t| t.as_array());
    tasks
        .into_iter()
        .flatten()
        .map(|t| {
            let text = |key: &str| {
                t.get(key)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            (text("name"), text("selection"), text("reason"))
        })
        .collect()
}

/// What a task's status is called on the page: a task that ran and exited 0 `ran`.
fn word(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Succeeded => "ran",
        other => other.as_str(),
    }
}

pub(super) fn draw(page_data: RunPage) -> Markup {
    let run = &page_data.run;
    let statuses: BTreeMap<&str, &'static str> = page_data
        .tasks
        .iter()
        .map(|t| (t.task.as_str(), word(t.status)))
        .collect();
    let plan: BTreeMap<String, (String, String)> =
        plan(run).into_iter().map(|(n, s, r)| (n, (s, r))).collect();
    let body = html! {
        div.facts {
            div { b { (pill(run.status.as_str())) } span { "status" } }
            div { b { a href=(model_href(&run.model)) { (run.model) } } span { "model" } }
            div { b { (run.dag) } span { "DAG" } }
            div { b { (time_ms(run.created_at)) } span { "created" } }
            @if let (Some(start), Some(end)) = (run.started_at, run.finished_at) {
                div { b { (duration_ms(start, end)) } span { "took" } }
            }
        }
        @if let Some(error) = &run.error { p.reason { (error) } }
        h2 { "Tasks" }
        div.scroll { (graph(&page_data.graph, &statuses)) }
        div.scroll { table.stack {
            thead { tr { th { "Task" } th { "Status" } th { "Plan" } th { "Attempts" } th { "Outputs" } } }
            tbody { @for (name, _) in &page_data.graph {
                @let task = page_data.tasks.iter().find(|t| &t.task == name);
                tr id={ "task-" (segment(name)) } {
                    td { (name) }
                    td { (pill(statuses.get(name.as_str()).copied().unwrap_or("pending")))
                        @if let Some(task) = task { @if !task.reason.is_empty() { br; span.muted { (task.reason) } } } }
                    td { @if let Some((selection, reason)) = plan.get(name) { (selection) br; span.muted { (reason) } } }
                    td { @if let Some(task) = task { (attempts(&run.id, task)) } }
                    td { @if let Some(task) = task { @for output in &task.outputs {
                        code title=(output.sha256) { (output.file) } " " span.muted { (output.bytes) " B" } br;
                    } } }
                }
            } }
        } }
        h2 { "Lineage" }
        (lineage(run, &page_data.tasks))
    };
    let trail = [
        ("Overview", "/".to_string()),
        (run.model.as_str(), model_href(&run.model)),
    ];
    page(
        &format!("Run {}", run.id),
        &trail,
        false,
        Assets::Linked,
        body,
    )
}

fn attempts(run: &str, task: &TaskRecord) -> Markup {
    html! { @for attempt in &task.attempts {
        @let log = format!("/api/v1/runs/{}/tasks/{}/attempts/{}/log", segment(run), segment(&task.task), attempt.attempt);
        div {
            "#" (attempt.attempt) " "
            @match attempt.exit_code { Some(code) => { "exit " (code) } None => "running" }
            @if let Some(end) = attempt.finished_at { " · " (duration_ms(attempt.started_at, end)) }
            " · " a href=(log) { "log" }
            @if let Some(error) = &attempt.error { br; span.muted { (error) } }
        }
    } }
}

fn lineage(run: &RunRecord, tasks: &[TaskRecord]) -> Markup {
    let request = &run.request;
    let policy = request.decision.get("policy").and_then(|p| p.as_str());
    html! {
        div.scroll { table {
            tr { th { "Decision" } td { @match (request.window, policy) {
                (Some(window), Some(policy)) => a href=(decision_href(&request.stream, window, policy)) { (run.key) },
                _ => (run.key),
            } } }
            tr { th { "Window" } td { @match request.window {
                Some(window) => { a href=(window_href(&request.stream, window)) { (request.stream) " window " (window) } }
                None => "none (a manual run)",
            } } }
            tr { th { "Drifted features" } td { (request.drifted_features.join(", ")) } }
            tr { th { "Baseline" } td { @match &request.baseline { Some(b) => code title=(b) { (short(b)) }, None => "–" } } }
            tr { th { "Window data" } td { (request.window_file.as_deref().unwrap_or("–")) } }
            tr { th { "Outputs" } td { @for task in tasks { @for output in &task.outputs {
                (task.task) ": " code { (output.path) } " " span.muted { "sha256 " (short(&output.sha256)) } br;
            } } } }
        } }
    }
}

/// Box size and spacing of the graph, pixels.
const NODE_W: f64 = 160.0;
const NODE_H: f64 = 42.0;
const GAP_X: f64 = 50.0;
const GAP_Y: f64 = 16.0;

/// A curve from the right of one box to the left of another; one that skips columns on the
/// same row arcs over the boxes between.
fn edge(from: (f64, f64), to: (f64, f64)) -> String {
    let (x1, y1, x2, y2) = (
        from.0 + NODE_W,
        from.1 + NODE_H / 2.0,
        to.0,
        to.1 + NODE_H / 2.0,
    );
    let skips = x2 - x1 > GAP_X + 1.0;
    if skips && (y1 - y2).abs() < 1.0 {
        let top = from.1 - 4.0;
        return format!(
            "M{x1},{} C{},{top} {},{top} {x2},{}",
            from.1 + 8.0,
            x1 + GAP_X,
            x2 - GAP_X,
            to.1 + 8.0
        );
    }
    let bend = GAP_X / 2.0;
    format!(
        "M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}",
        x1 + bend,
        x2 - bend
    )
}

/// The DAG left to right: a task's column is the longest chain of tasks it needs.
fn graph(tasks: &[(String, Vec<String>)], statuses: &BTreeMap<&str, &'static str>) -> Markup {
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    // Tasks are in a valid order for the DAG's checks; a few passes settle any other order.
    for _ in 0..tasks.len().max(1) {
        for (name, needs) in tasks {
            let d = needs
                .iter()
                .filter_map(|n| depth.get(n.as_str()))
                .map(|d| d + 1)
                .max()
                .unwrap_or(0);
            depth.insert(name, d);
        }
    }
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut at: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (name, _) in tasks {
        let column = depth[name.as_str()];
        let row = rows.entry(column).or_insert(0);
        at.insert(
            name,
            (
                10.0 + column as f64 * (NODE_W + GAP_X),
                24.0 + *row as f64 * (NODE_H + GAP_Y),
            ),
        );
        *row += 1;
    }
    let width =
        20.0 + (depth.values().max().copied().unwrap_or(0) + 1) as f64 * (NODE_W + GAP_X) - GAP_X;
    let height = 34.0 + rows.values().max().copied().unwrap_or(1) as f64 * (NODE_H + GAP_Y) - GAP_Y;
    html! {
        svg.chart.dag viewBox={ "0 0 " (width) " " (height) } width=(width) height=(height) role="img" aria-label="the run's DAG" {
            defs { marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto" {
                path d="M0,0 L10,5 L0,10 z" fill="#9aa3b5" {} } }
            @for (name, needs) in tasks { @for need in needs { @if let (Some(from), Some(to)) = (at.get(need.as_str()), at.get(name.as_str())) {
                path.edge d=(edge(*from, *to)) {}
            } } }
            @for (name, _) in tasks {
                @let (x, y) = at[name.as_str()];
                @let status = statuses.get(name.as_str()).copied().unwrap_or("pending");
                g class={ "node " (status) } data-task=(name) data-status=(status) {
                    a href={ "#task-" (segment(name)) } {
                        rect x=(x) y=(y) width=(NODE_W) height=(NODE_H) rx="6" {}
                        text x=(x + 10.0) y=(y + 17.0) { (name) }
                        text.status x=(x + 10.0) y=(y + 33.0) { (status) }
                    }
                }
            }
        }
    }
}
