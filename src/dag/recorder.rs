//! Everything a run writes to the store (local, remote, the dispatcher), in one place. A write that fails is logged with
//! the run, the task and what was being recorded, never dropped silently: the run goes on (its
//! processes are real whatever the store says), and the next write of the same row repairs it.

use crate::store::{Artifact, RunStatus, Store, StoreError, TaskStatus};

/// Writes one run's progress.
pub(crate) struct Recorder<'a> {
    store: &'a Store,
    run: &'a str,
    dag: &'a str,
}

impl<'a> Recorder<'a> {
    /// A recorder for run `run` of DAG `dag`.
    pub(crate) fn new(store: &'a Store, run: &'a str, dag: &'a str) -> Recorder<'a> {
        Recorder { store, run, dag }
    }

    /// The run's status (with its plan or error when given).
    pub(crate) fn run_status(
        &self,
        status: RunStatus,
        plan: Option<&serde_json::Value>,
        error: Option<&str>,
    ) {
        let written = self.store.set_run_status(self.run, status, plan, error);
        self.logged("", "the run's status", written);
    }

    /// A task's status and reason (with its cache key and outputs when known).
    pub(crate) fn task(
        &self,
        task: &str,
        status: TaskStatus,
        reason: &str,
        cache_key: Option<&str>,
        outputs: Option<&[Artifact]>,
    ) {
        let written = self
            .store
            .set_task(self.run, self.dag, task, status, reason, cache_key, outputs);
        self.logged(task, "the task's status", written);
    }

    /// An attempt starting (`ended` none) or ending with its exit code and error.
    pub(crate) fn attempt(
        &self,
        task: &str,
        attempt: u32,
        log: &str,
        ended: Option<(Option<i32>, Option<&str>)>,
    ) {
        let written = self.store.set_attempt(self.run, task, attempt, log, ended);
        self.logged(task, "the attempt", written);
    }

    /// The highest attempt recorded for `task` in this run (0: none; the store unreadable
    /// counts as none).
    pub(crate) fn last_attempt(&self, task: &str) -> u32 {
        let last = self.store.last_attempt(self.run, task);
        self.logged(task, "the task's attempts", last).unwrap_or(0)
    }

    /// The process an attempt runs in (see [`super::local::orphans`]).
    pub(crate) fn attempt_process(&self, task: &str, attempt: u32, pid: u32, start: u64) {
        let written = self
            .store
            .set_attempt_process(self.run, task, attempt, pid, start);
        self.logged(task, "the attempt's process", written);
    }

    /// Whether someone asked to cancel the run (no, when the store cannot say).
    pub(crate) fn cancel_requested(&self) -> bool {
        let asked = self.store.cancel_requested(self.run);
        self.logged("", "whether the run is cancelled", asked)
            .unwrap_or(false)
    }

    /// The outputs an earlier run of `task` made with the same cache key, and that run's id.
    pub(crate) fn cached(&self, task: &str, key: &str) -> Option<(String, Vec<Artifact>)> {
        let found = self.store.cached_outputs(self.dag, task, key);
        self.logged(task, "the task's cached outputs", found)
            .flatten()
    }

    /// The value, or `None` after logging what could not be read or written.
    fn logged<T>(&self, task: &str, what: &str, result: Result<T, StoreError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                tracing::error!(run = %self.run, task, error = %err, "cannot record {what}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what is logged, to read it back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            crate::locks::lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn issue_20_a_write_the_store_refuses_is_logged_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::store::StoreUrl::Sqlite(dir.path().join("store.db"));
        drop(Store::open(&url).unwrap());
        // A read-only connection: every write fails, as a full disk or a locked file would.
        let store = Store::open_read_only(&url).unwrap();
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let recorder = Recorder::new(&store, "run-1", "retrain");
            recorder.task("train", TaskStatus::Running, "selected", None, None);
            recorder.run_status(RunStatus::Succeeded, None, None);
        });
        let text = String::from_utf8(crate::locks::lock(&captured.0).clone()).unwrap();
        assert!(
            text.contains("cannot record the task's status") && text.contains("task=\"train\""),
            "{text}"
        );
        assert!(text.contains("cannot record the run's status"), "{text}");
        assert!(text.contains("run=run-1"), "{text}");
    }
}
