//! The alerts: deliveries per sink and status, then each alert with its delivery's status,
//! attempts, last error and the document itself.

use std::collections::BTreeMap;

use maud::{html, Markup};

use super::layout::{page, pill, segment, time_ms, Assets};
use super::PageError;
use crate::api::ApiState;
use crate::store::AlertStatus;

/// Alerts listed.
const LISTED: usize = 200;

pub(super) struct AlertsPage {
    counts: BTreeMap<String, BTreeMap<String, u64>>,
    alerts: Vec<AlertStatus>,
    sink: Option<String>,
    status: Option<String>,
}

pub(super) fn load(
    state: &ApiState,
    sink: Option<String>,
    status: Option<String>,
) -> Result<AlertsPage, PageError> {
    let store = state.store.get()?;
    Ok(AlertsPage {
        counts: store.alert_counts_by_sink()?,
        alerts: store.alert_statuses(status.as_deref(), sink.as_deref(), LISTED)?,
        sink,
        status,
    })
}

pub(super) fn draw(alerts: AlertsPage) -> Markup {
    let body = html! {
        div.scroll { table {
            thead { tr { th { "Sink" } @for status in STATUSES { th.num { (status) } } } }
            tbody { @for (sink, counts) in &alerts.counts { tr {
                td { @if sink.is_empty() { "(no sink)" } @else { a href={ "/alerts?sink=" (segment(sink)) } { (sink) } } }
                @for status in STATUSES {
                    td.num { a href={ "/alerts?status=" (status) @if !sink.is_empty() { "&sink=" (segment(sink)) } } {
                        (counts.get(status).copied().unwrap_or(0)) } }
                }
            } } }
        } }
        h2 { "Latest alerts"
            @if let Some(sink) = &alerts.sink { " to " (sink) }
            @if let Some(status) = &alerts.status { ", " (status) }
            @if alerts.sink.is_some() || alerts.status.is_some() { " · " a href="/alerts" { "all" } } }
        @if alerts.alerts.is_empty() { p.muted { "None." } } @else {
            div.scroll { table.stack {
                thead { tr { th { "When" } th { "Kind" } th { "Model" } th { "Sink" } th { "Delivery" } th.num { "Attempts" } th { "Last error" } th { "Document" } } }
                tbody { @for alert in &alerts.alerts { tr {
                    td.when { (time_ms(alert.created_at)) }
                    td { (alert.kind) }
                    td { (alert.model.as_deref().unwrap_or("–")) }
                    td { (alert.sink.as_deref().unwrap_or("–")) }
                    td { (pill(&alert.status)) }
                    td.num { (alert.attempts) }
                    td { (alert.last_error.as_deref().unwrap_or("")) }
                    td.document.wide { details {
                        summary { (alert.alert.get("summary").and_then(|s| s.as_str()).unwrap_or("document")) }
                        @if let Some(link) = alert.alert.get("link").and_then(|l| l.as_str()) { p { a href=(link) { "open" } } }
                        pre.doc { (serde_json::to_string_pretty(&alert.alert).unwrap_or_default()) }
                    } }
                } } }
            } }
        }
    };
    page(
        "Alerts",
        &[("Overview", "/".into())],
        false,
        Assets::Linked,
        body,
    )
}

/// The delivery states, in the order the table shows them.
const STATUSES: [&str; 4] = ["pending", "delivered", "dead", "unrouted"];
