//! Hot reload of models and policies: on SIGHUP, when a watched file changes, or on
//! `POST /api/v1/reload`. [`Reloads`] gathers the requests; the consumer loop performs every
//! reload itself, between messages, so a swap is never half done and never races a window's
//! evaluation. What the other threads read ([`Catalog`]) is swapped in one write.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// What a reload replaces: the models (with their policies' targets) and the DAGs. The API, the
/// executor and the consumer loop read one shared catalog, and a reload swaps it in one write,
/// so no reader sees new DAGs with old models.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The models.
    pub models: Vec<crate::policy::Model>,
    /// The retraining DAGs.
    pub dags: Vec<crate::dag::Dag>,
}

/// The catalog as the parts share it.
pub type SharedCatalog = Arc<std::sync::RwLock<Catalog>>;

impl Catalog {
    /// The DAG named `name`, if the catalog has one.
    pub fn dag(&self, name: &str) -> Option<&crate::dag::Dag> {
        self.dags.iter().find(|d| d.name == name)
    }

    /// The model named `name`, if the catalog has one.
    pub fn model(&self, name: &str) -> Option<&crate::policy::Model> {
        self.models.iter().find(|m| m.name == name)
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadSummary {
    /// Models now in force.
    pub models: usize,
    /// Policies now in force.
    pub policies: usize,
}

/// The answer to a reload: the summary, or every problem with the file (the old set stays).
pub type ReloadResult = Result<ReloadSummary, String>;

/// A reload asked for over the API, with the channel its answer goes back on.
pub type ReloadRequest = SyncSender<ReloadResult>;

/// Edits arrive as bursts of file events (truncate, write, rename): wait this long after the
/// last one before reloading, so a half-written file is not read.
const SETTLE: Duration = Duration::from_millis(300);

/// A file-triggered reload that was refused is read again this many times, [`RETRY_AFTER`]
/// apart, before the refusal is reported: an editor or a deploy tool may truncate a file and
/// write it later than [`SETTLE`].
pub const FILE_ATTEMPTS: u32 = 4;

/// The wait before reading refused files again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Collects reload requests from their three sources.
pub struct Reloads {
    signal: Arc<AtomicBool>,
    last_file_event: Arc<Mutex<Option<Instant>>>,
    /// A refused file reload to try again: when, and which attempt it will be.
    retry: Mutex<Option<(Instant, u32)>>,
    api: Receiver<ReloadRequest>,
    /// Kept alive for as long as files are watched.
    _watcher: Option<notify::RecommendedWatcher>,
}

/// Why a reload is due.
pub enum Due {
    /// SIGHUP: log the outcome.
    Quiet,
    /// A file change: the `attempt`-th reading (from 1) of the changed files; a refusal before
    /// [`FILE_ATTEMPTS`] is retried ([`Reloads::retry`]) rather than reported.
    File {
        /// Which reading this is.
        attempt: u32,
    },
    /// The API: answer on the channel.
    Answer(ReloadRequest),
}

impl Reloads {
    /// Registers SIGHUP and watches the configuration file and the directories of its includes.
    /// Returns the sender the API uses. A watcher that cannot start is logged, not fatal:
    /// SIGHUP and the API still reload.
    pub fn start(
        config: &Path,
        includes: &[String],
    ) -> std::io::Result<(Reloads, Sender<ReloadRequest>)> {
        let signal = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&signal))?;
        let last_file_event = Arc::new(Mutex::new(None));
        let watcher = watch(config, includes, Arc::clone(&last_file_event))
            .map_err(|err| tracing::warn!(error = %err, "cannot watch the configuration files; reload with SIGHUP or POST /api/v1/reload"))
            .ok();
        let (sender, api) = std::sync::mpsc::channel();
        Ok((
            Reloads {
                signal,
                last_file_event,
                retry: Mutex::new(None),
                api,
                _watcher: watcher,
            },
            sender,
        ))
    }

    /// The next due reload, if any.
    pub fn due(&self) -> Option<Due> {
        if let Ok(request) = self.api.try_recv() {
            return Some(Due::Answer(request));
        }
        if self.signal.swap(false, Ordering::SeqCst) {
            tracing::info!("SIGHUP: reloading models and policies");
            return Some(Due::Quiet);
        }
        let mut last = crate::locks::lock(&self.last_file_event);
        if last.is_some_and(|at| at.elapsed() >= SETTLE) {
            *last = None;
            *crate::locks::lock(&self.retry) = None;
            tracing::info!("configuration files changed: reloading models and policies");
            return Some(Due::File { attempt: 1 });
        }
        let mut retry = crate::locks::lock(&self.retry);
        match *retry {
            Some((at, attempt)) if Instant::now() >= at => {
                *retry = None;
                Some(Due::File { attempt })
            }
            _ => None,
        }
    }

    /// Reads the files again after [`RETRY_AFTER`], as attempt `attempt + 1`, unless they
    /// change before (which starts over).
    pub fn retry(&self, attempt: u32) {
        *crate::locks::lock(&self.retry) = Some((Instant::now() + RETRY_AFTER, attempt + 1));
    }
}

/// Watches the directories holding the configuration file and the included files (a `*`
/// pattern's new files count), reacting to `.toml` files only.
/// Whether a changed path may change the configuration: a `.toml` file, or the `..data` link
/// through which Kubernetes swaps a mounted ConfigMap's files all at once.
fn configuration_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
        || path.file_name().is_some_and(|name| name == "..data")
}

fn watch(
    config: &Path,
    includes: &[String],
    last_event: Arc<Mutex<Option<Instant>>>,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let relevant = matches!(
            event.kind,
            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
        ) && event.paths.iter().any(|p| configuration_file(p));
        if relevant {
            *crate::locks::lock(&last_event) = Some(Instant::now());
        }
    })?;
    let mut dirs: Vec<PathBuf> = std::iter::once(config.to_path_buf())
        .chain(includes.iter().map(PathBuf::from))
        .map(|p| match p.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_files_and_configmap_swaps_are_configuration_changes() {
        assert!(configuration_file(Path::new(
            "config/policies/payments.toml"
        )));
        assert!(configuration_file(Path::new(
            "/etc/driftgate/policies/..data"
        )));
        assert!(!configuration_file(Path::new(
            "/etc/driftgate/policies/..2026_11_23_10_00_00.123"
        )));
        assert!(!configuration_file(Path::new("config/policies/notes.txt")));
    }
}
