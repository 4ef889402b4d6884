//! `GET /api/v1/runs/{id}/tasks/{task}/attempts/{n}/log`: one task attempt's log.
//!
//! The file is looked up in the store, where the executor recorded its path; nothing in the
//! request becomes part of a path. It is served only when it resolves (links followed) inside
//! the runs directory, so a `..`, an encoded slash or a link a task left behind reaches no other
//! file. The tail is the default: logs of long tasks can be large.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;

use crate::store::Store;

/// Lines served when the request names none.
pub const DEFAULT_LINES: usize = 200;
/// The most bytes one answer holds (the end of the log).
pub const MAX_BYTES: u64 = 16 << 20;

/// Query of the log endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// The last N lines (default 200).
    pub lines: Option<usize>,
    /// The whole log (its last 16 MiB at most) instead of the last lines.
    pub full: Option<bool>,
}

/// Why a log cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub enum LogError {
    /// No such run, task or attempt, or its file is gone.
    NotFound(String),
    /// The recorded file resolves outside the runs directory.
    Outside(String),
    /// The store or the file could not be read.
    Failed(String),
}

/// The log of `attempt` of `task` in `run`, as the query asks.
pub fn attempt_log(
    store: &Store,
    runs_dir: &Path,
    run: &str,
    task: &str,
    attempt: u32,
    query: &LogQuery,
) -> Result<String, LogError> {
    let failed = |err: &dyn std::fmt::Display| LogError::Failed(err.to_string());
    let tasks = store.run_tasks(run).map_err(|e| failed(&e))?;
    let recorded = tasks
        .iter()
        .find(|t| t.task == task)
        .and_then(|t| t.attempts.iter().find(|a| a.attempt == attempt))
        .map(|a| a.log.clone())
        .ok_or_else(|| {
            LogError::NotFound(format!("run {run} has no attempt {attempt} of task {task}"))
        })?;
    let missing = |_| LogError::NotFound(format!("the log of attempt {attempt} is gone"));
    let file = Path::new(&recorded).canonicalize().map_err(missing)?;
    let root = runs_dir.canonicalize().map_err(missing)?;
    if !file.starts_with(&root) {
        return Err(LogError::Outside(format!(
            "the log of attempt {attempt} is not inside the runs directory"
        )));
    }
    let text = read_end(&file, MAX_BYTES).map_err(|e| failed(&e))?;
    if query.full == Some(true) {
        return Ok(text);
    }
    Ok(last_lines(&text, query.lines.unwrap_or(DEFAULT_LINES)))
}

/// The last `max` bytes of a file, as text (invalid UTF-8 replaced).
fn read_end(path: &Path, max: u64) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(max)))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last `n` lines of `text`.
fn last_lines(text: &str, n: usize) -> String {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let start = body
        .char_indices()
        .filter(|(_, c)| *c == '\n')
        .map(|(i, _)| i + 1)
        .rev()
        .nth(n.saturating_sub(1))
        .filter(|_| n > 0);
    match (n, start) {
        (0, _) => String::new(),
        (_, Some(start)) => text[start..].to_string(),
        (_, None) => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Setup {
        _dir: tempfile::TempDir,
        store: Store,
        runs: std::path::PathBuf,
        outside: std::path::PathBuf,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::store::StoreUrl::Sqlite(dir.path().join("store.db"));
        let mut store = Store::open(&url).unwrap();
        store
            .queue_run(&crate::store::RunRequest {
                id: "run-1".into(),
                ..crate::dag::request::manual("manual-1".into(), "m", "dag", "s", Vec::new(), None)
            })
            .unwrap();
        let runs = dir.path().join("runs");
        std::fs::create_dir_all(runs.join("run-1/train")).unwrap();
        let log = runs.join("run-1/train/attempt-1.log");
        let lines: String = (1..=300).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&log, lines).unwrap();
        store
            .set_task(
                "run-1",
                "dag",
                "train",
                crate::store::TaskStatus::Succeeded,
                "",
                None,
                None,
            )
            .unwrap();
        store
            .set_attempt("run-1", "train", 1, log.to_str().unwrap(), None)
            .unwrap();
        let outside = dir.path().join("secret.txt");
        std::fs::write(&outside, "secret").unwrap();
        Setup {
            _dir: dir,
            store,
            runs,
            outside,
        }
    }

    fn query(lines: Option<usize>, full: Option<bool>) -> LogQuery {
        LogQuery { lines, full }
    }

    #[test]
    fn issue_14_the_tail_by_default_the_whole_log_on_request() {
        let s = setup();
        let tail = attempt_log(&s.store, &s.runs, "run-1", "train", 1, &query(None, None)).unwrap();
        assert_eq!(tail.lines().count(), DEFAULT_LINES);
        assert!(
            tail.starts_with("line 101\n") && tail.ends_with("line 300\n"),
            "{tail}"
        );
        let three = attempt_log(
            &s.store,
            &s.runs,
            "run-1",
            "train",
            1,
            &query(Some(3), None),
        );
        assert_eq!(three.unwrap(), "line 298\nline 299\nline 300\n");
        let full = attempt_log(
            &s.store,
            &s.runs,
            "run-1",
            "train",
            1,
            &query(None, Some(true)),
        );
        assert_eq!(full.unwrap().lines().count(), 300);
    }

    #[test]
    fn issue_14_request_segments_never_become_paths() {
        let s = setup();
        for (run, task) in [
            ("run-1", "../../secret.txt"),
            ("..", "train"),
            ("run-1%2F..%2F..", "train"),
            ("run-1", "train/../../../secret.txt"),
        ] {
            let answer = attempt_log(&s.store, &s.runs, run, task, 1, &query(None, None));
            assert!(
                matches!(answer, Err(LogError::NotFound(_))),
                "{run} {task}: {answer:?}"
            );
        }
        assert!(matches!(
            attempt_log(&s.store, &s.runs, "run-1", "train", 2, &query(None, None)),
            Err(LogError::NotFound(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn issue_14_a_log_replaced_by_a_link_outside_is_refused() {
        let s = setup();
        let log = s.runs.join("run-1/train/attempt-1.log");
        std::fs::remove_file(&log).unwrap();
        std::os::unix::fs::symlink(&s.outside, &log).unwrap();
        let answer = attempt_log(&s.store, &s.runs, "run-1", "train", 1, &query(None, None));
        assert!(matches!(answer, Err(LogError::Outside(_))), "{answer:?}");
    }
}
