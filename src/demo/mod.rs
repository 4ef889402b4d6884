//! `driftgate demo`: the whole loop in one process, on the service's own code.
//!
//! It writes the example configuration (`config/driftgate.toml`, `config/policies/`,
//! `config/dags/`, built into the binary) into a working directory of its own (`workdir`), generates a training set and builds the
//! stream's baseline from it (`baseline build`'s code), starts an in-process Kafka-protocol
//! broker (librdkafka's mock cluster) and a webhook receiver, and runs the real service
//! against them. Champions are trained by manual runs of the example DAGs. A producer then
//! streams labelled payments, scored by the current champion, window by window; after a few
//! windows it injects drift into two features. The service detects it, its policies trigger
//! the fraud model's DAG, which retrains only the drifted feature group's branch, evaluates the
//! challenger against the champion on a holdout, promotes it through the gate and rotates the
//! baseline; from the next window on the producer scores with the new champion. The summary
//! reads everything back from the service's store.

pub mod data;
mod produce;
mod receiver;
mod setup;
mod summary;
pub mod workdir;

pub use summary::{Accuracy, RunSummary, Summary};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::Store;

/// Arguments of `driftgate demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// About how long the demo takes; it sets the pace (the windows are the same).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Leave the service, its API and the receiver up after the summary, until Ctrl-C.
    #[arg(long)]
    pub keep_running: bool,
    /// The demo's working directory, relative to the current one. It must be new, empty, or
    /// left by an earlier demo (it carries a `.driftgate-demo` marker), which is cleared first.
    #[arg(long, default_value = "var/demo", value_name = "DIR")]
    pub dir: PathBuf,
    /// Only write the demo's synthetic training set (20,000 labelled payments, JSONL) to FILE
    /// and exit: the example DAGs' manual runs train on it. An existing FILE is never replaced.
    #[arg(long, value_name = "FILE")]
    pub write_training: Option<PathBuf>,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A path the user named (`--dir`, `--write-training`) may not be used: the user's to fix
    /// (exit 2).
    #[error("demo: {0}")]
    Refused(String),
    /// Something failed while the demo ran.
    #[error("demo: {0}")]
    Failed(String),
}

fn fail<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> DemoError + '_ {
    move |err| DemoError::Failed(format!("{what}: {err}"))
}

/// Windows before the drift.
const BEFORE: u64 = 6;
/// Windows after the retrained champion took over.
const AFTER: u64 = 5;
/// Drifted windows without a promotion before the demo gives up waiting for one.
const MAX_DRIFTED: u64 = 8;
/// Records per message, as producers batch them.
const MESSAGE_RECORDS: u64 = 100;
/// Training set size.
const TRAINING_RECORDS: usize = 20_000;
/// Where the example DAGs keep champions (relative to the working directory).
const REGISTRY: &str = "var/models";
/// The model whose predictions the records carry.
const SCORED_MODEL: &str = "fraud";
const SECRET_ENV: &str = "DRIFTGATE_DEMO_WEBHOOK_SECRET";
const TOKEN_ENV: &str = "DRIFTGATE_DEMO_RUN_TOKEN";
const SEED: u64 = 7;
/// The example configuration, relative to the working directory.
const CONFIG: &str = "config/driftgate.toml";

/// `[  1.2s]`: time since the demo started.
fn stamp(started: Instant) -> String {
    format!("[{:>5.1}s]", started.elapsed().as_secs_f64())
}

/// Runs the demo; returns its summary (also written to `summary.json` in its directory).
pub fn run(args: &DemoArgs) -> Result<Option<Summary>, DemoError> {
    if let Some(path) = &args.write_training {
        setup::write_new_training(path)?;
        println!(
            "wrote {TRAINING_RECORDS} labelled payments to {}",
            path.display()
        );
        return Ok(None);
    }
    run_demo(args).map(Some)
}

/// A token of 32 random hex digits, for the demo's webhook secret and bearer token.
fn random_token() -> Result<String, DemoError> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(fail("cannot read /dev/urandom for the demo's token"))?;
    Ok(format!("demo-{}", hex::encode(bytes)))
}

fn run_demo(args: &DemoArgs) -> Result<Summary, DemoError> {
    let started = Instant::now();
    let secret = random_token()?;
    // Set before any thread starts; the service reads them when it loads its configuration.
    std::env::set_var(SECRET_ENV, &secret);
    std::env::set_var(TOKEN_ENV, &secret);
    let dir = workdir::prepare(&args.dir)?;
    std::env::set_current_dir(&dir).map_err(fail("cannot enter the demo directory"))?;
    println!(
        "{} driftgate demo in {} (the example configuration built into this binary)",
        stamp(started),
        dir.display(),
    );
    let mut payments = data::Payments::new(SEED);
    setup::training_and_baseline(&mut payments, started)?;
    let (world, config) = setup::World::start(&secret, started, args.keep_running)?;
    let stop = Arc::new(AtomicBool::new(false));
    crate::service::install_signal_handlers(&stop, config.shutdown_timeout)
        .map_err(fail("cannot install signal handlers"))?;
    let service = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("service".into())
            .spawn(move || crate::service::run(config, Path::new(CONFIG), stop))
            .map_err(fail("cannot start the service"))?
    };
    let session = Session {
        args,
        started,
        secret: &secret,
        stop: &stop,
        world: &world,
    };
    // Whatever happens from here on, the service is stopped and joined (it checkpoints).
    let outcome = session.run(&mut payments);
    stop.store(true, Ordering::SeqCst);
    match service.join() {
        Ok(Ok(())) => outcome,
        Ok(Err(err)) => Err(DemoError::Failed(format!(
            "the service stopped on an error: {err}"
        ))),
        Err(_) => Err(DemoError::Failed("the service panicked".into())),
    }
}

/// What the demo's steps share while the service runs.
struct Session<'a> {
    args: &'a DemoArgs,
    started: Instant,
    /// The webhook secret, also the manual-run token.
    secret: &'a str,
    /// Set on Ctrl-C, or when the demo is done.
    stop: &'a AtomicBool,
    world: &'a setup::World,
}

impl Session<'_> {
    /// Champions first, then the stream; the summary once every alert is delivered.
    fn run(&self, payments: &mut data::Payments) -> Result<Summary, DemoError> {
        let api = &self.world.api;
        let http = reqwest::blocking::Client::new();
        wait_until(
            self.stop,
            "the service to be ready",
            Duration::from_secs(60),
            || {
                http.get(format!("http://{api}/readyz"))
                    .send()
                    .is_ok_and(|r| r.status().is_success())
            },
        )?;
        println!(
            "{} service up: API http://{api}/api/v1/runs, metrics http://{api}/metrics; alerts → {}",
            stamp(self.started),
            self.world.receiver.url
        );
        let store =
            Store::open_read_only(&self.world.store).map_err(fail("cannot read the store"))?;
        let mut shown = std::collections::BTreeSet::new();
        self.train_champions(&http)?;
        summary::wait_for_runs(self.stop, &store, self.started, &mut shown)?;
        let streamed = produce::stream_windows(self, payments, &store, &mut shown)?;
        // Alerts are delivered by the service's outbox workers: wait until none is pending.
        wait_until(
            self.stop,
            "the alerts to be delivered",
            Duration::from_secs(60),
            || {
                store
                    .pending_alerts()
                    .is_ok_and(|p| p.iter().all(|(_, n)| *n == 0))
            },
        )?;
        let dead_letters = summary::dead_letters(api);
        std::fs::write("stream.jsonl", &streamed.recorded)
            .map_err(fail("cannot write stream.jsonl"))?;
        let summary = summary::summarise(
            &store,
            &self.world.stream.name,
            &streamed.phases,
            streamed.promoted_from,
            &self.world.receiver,
            dead_letters,
        )?;
        summary::print_summary(&summary);
        std::fs::write(
            "summary.json",
            serde_json::to_vec_pretty(&summary).expect("summaries serialise"),
        )
        .map_err(fail("cannot write summary.json"))?;
        if self.args.keep_running {
            self.keep_running();
        }
        Ok(summary)
    }

    /// Champions, trained on the training set by manual runs of the models' DAGs.
    fn train_champions(&self, http: &reqwest::blocking::Client) -> Result<(), DemoError> {
        for model in &self.world.models {
            let body =
                serde_json::json!({ "model": model, "key": format!("demo/champion/{model}") });
            http.post(format!("http://{}/api/v1/runs", self.world.api))
                .bearer_auth(self.secret)
                .json(&body)
                .send()
                .and_then(|r| r.error_for_status())
                .map_err(|err| {
                    DemoError::Failed(format!("cannot start the run for {model}: {err}"))
                })?;
        }
        Ok(())
    }

    /// Until Ctrl-C.
    fn keep_running(&self) {
        let api = &self.world.api;
        println!(
            "\nThe service keeps running. Dashboard: http://{api}/ (API: http://{api}/api/v1/streams/{}/windows, \
             http://{api}/api/v1/runs; metrics: http://{api}/metrics). Ctrl-C stops it.",
            self.world.stream.name
        );
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Polls `done` every 50 ms until it holds; fails after `limit`, or at once when the demo is
/// interrupted (Ctrl-C: the service is stopping).
fn wait_until(
    stop: &AtomicBool,
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), DemoError> {
    let deadline = Instant::now() + limit;
    while !done() {
        if stop.load(Ordering::SeqCst) {
            return Err(DemoError::Failed("interrupted".into()));
        }
        if Instant::now() >= deadline {
            return Err(DemoError::Failed(format!(
                "gave up waiting for {what} after {limit:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
