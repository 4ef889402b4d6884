//! Whether the service is ready, and if not, why: what `/readyz` answers and what the operator
//! reads in the log when the brokers cannot be reached.
//!
//! librdkafka reports an unreachable broker many times a second (a log line per connection
//! attempt, an error per failure). Those lines are kept at `debug`; instead, one actionable line
//! naming `kafka.bootstrap_servers` is logged at most once per [`WARN_INTERVAL`], and the same
//! reason is what `/readyz` shows until partitions are assigned.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use serde::Serialize;

/// At most one "cannot reach the brokers" line this often.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Why the service is not ready before it has an assignment.
const WAITING: &str = "waiting for a partition assignment from the consumer group";

/// Readiness of one service instance, shared by the Kafka client and the API.
#[derive(Debug)]
pub struct Readiness {
    bootstrap_servers: String,
    ready: AtomicBool,
    problem: Mutex<Problem>,
    /// Why the latest broker probe failed; `None` once one succeeds.
    unanswered: Mutex<Option<String>>,
    /// Why ingestion is paused (the store cannot be written); `None` while it runs.
    paused: Mutex<Option<String>>,
}

#[derive(Debug, Default)]
struct Problem {
    /// The latest broker problem, cleared by an assignment.
    reason: Option<String>,
    /// When the last warning was logged.
    warned_at: Option<Instant>,
    /// Broker errors since then.
    since_warning: u64,
}

/// What `/readyz` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReadyStatus {
    /// Whether the instance takes part in its consumer group and reaches its brokers and its
    /// store.
    pub ready: bool,
    /// Why not, in words an operator can act on (the first failing check).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Each check, `"ok"` or why not: `consumer_group`, `kafka`, `store` and `ingestion`
    /// (paused while the store cannot be written).
    pub checks: std::collections::BTreeMap<String, String>,
}

/// What a passing check says.
const OK: &str = "ok";

impl Readiness {
    /// Not ready yet, for brokers at `bootstrap_servers`.
    pub fn new(bootstrap_servers: &str) -> Readiness {
        Readiness {
            bootstrap_servers: bootstrap_servers.to_string(),
            ready: AtomicBool::new(false),
            problem: Mutex::new(Problem::default()),
            unanswered: Mutex::new(None),
            paused: Mutex::new(None),
        }
    }

    /// Ingestion paused (`Some(why)`) or running (`None`).
    pub fn ingestion(&self, paused: Option<String>) {
        *crate::locks::lock(&self.paused) = paused;
    }

    /// The brokers this instance was configured with.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// The consumer group assigned partitions (possibly none): the instance is ready.
    pub fn assigned(&self) {
        self.ready.store(true, Ordering::SeqCst);
        self.problem().reason = None;
    }

    /// The outcome of a broker probe (a metadata request made beside the consumer loop): an
    /// unanswered probe makes the instance unready until one is answered. Logged when the
    /// instance was in its group (before that, the unreachable-broker line says it already).
    pub fn probed(&self, outcome: Result<(), String>) {
        let in_group = self.ready.load(Ordering::SeqCst);
        let mut unanswered = crate::locks::lock(&self.unanswered);
        match outcome {
            Err(reason) => {
                if unanswered.is_none() && in_group {
                    tracing::warn!(target: "driftgate::kafka", "{reason}; not ready until they answer");
                }
                *unanswered = Some(reason);
            }
            Ok(()) => {
                if unanswered.take().is_some() && in_group {
                    tracing::info!(target: "driftgate::kafka", "the Kafka brokers answer again");
                }
            }
        }
    }

    /// What `/readyz` shows, given the store check (`Err` says why it cannot be read).
    pub fn status(&self, store: Result<(), String>) -> ReadyStatus {
        let group = if self.ready.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(self
                .problem()
                .reason
                .clone()
                .unwrap_or_else(|| WAITING.to_string()))
        };
        let kafka = crate::locks::lock(&self.unanswered)
            .clone()
            .map_or(Ok(()), Err);
        let store = store.map_err(|e| format!("the store cannot be read: {e}"));
        let ingestion = crate::locks::lock(&self.paused).clone().map_or(Ok(()), Err);
        let checks = [
            ("consumer_group", group),
            ("kafka", kafka),
            ("store", store),
            ("ingestion", ingestion),
        ];
        let reason = checks.iter().find_map(|(_, c)| c.clone().err());
        ReadyStatus {
            ready: reason.is_none(),
            reason,
            checks: checks
                .into_iter()
                .map(|(name, check)| {
                    (
                        name.to_string(),
                        check.err().unwrap_or_else(|| OK.to_string()),
                    )
                })
                .collect(),
        }
    }

    /// A librdkafka error: broker trouble is summarised (and throttled), anything else logged.
    pub fn on_error(&self, error: &KafkaError, detail: &str, now: Instant) {
        if !is_broker_trouble(error) {
            tracing::warn!(target: "driftgate::kafka", error = %error, detail, "kafka client error");
            return;
        }
        let reason = format!(
            "cannot reach the Kafka brokers at {} (kafka.bootstrap_servers): {detail}",
            self.bootstrap_servers
        );
        let mut problem = self.problem();
        problem.reason = Some(reason.clone());
        problem.since_warning += 1;
        let due = problem
            .warned_at
            .is_none_or(|at| now.duration_since(at) >= WARN_INTERVAL);
        if due {
            tracing::warn!(target: "driftgate::kafka", failures = problem.since_warning,
                "{reason}; retrying (check the address, the network and the listeners the brokers advertise)");
            problem.warned_at = Some(now);
            problem.since_warning = 0;
        } else {
            tracing::debug!(target: "driftgate::kafka", error = %error, detail, "broker unreachable");
        }
    }

    /// An error returned by a poll. Broker trouble is already reported, with its details, by
    /// the client's error callback ([`Readiness::on_error`]); anything else is logged.
    pub fn on_poll_error(&self, error: &KafkaError) {
        if is_broker_trouble(error) {
            tracing::debug!(target: "driftgate::kafka", error = %error, "poll: broker unreachable");
        } else {
            tracing::warn!(target: "driftgate::kafka", error = %error, "consumer error");
        }
    }

    fn problem(&self) -> std::sync::MutexGuard<'_, Problem> {
        crate::locks::lock(&self.problem)
    }
}

/// Errors that mean "the brokers cannot be reached (yet)": retried by librdkafka on its own.
fn is_broker_trouble(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::OperationTimedOut
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport() -> KafkaError {
        KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure)
    }

    #[test]
    fn issue_14_broker_trouble_is_the_readiness_reason_until_assigned() {
        let readiness = Readiness::new("10.0.0.1:9092");
        assert_eq!(readiness.status(Ok(())).reason.as_deref(), Some(WAITING));
        readiness.on_error(&transport(), "Connection refused", Instant::now());
        let status = readiness.status(Ok(()));
        assert!(!status.ready);
        let reason = status.reason.unwrap();
        assert!(
            reason.contains("10.0.0.1:9092 (kafka.bootstrap_servers)"),
            "{reason}"
        );
        assert!(reason.ends_with("Connection refused"), "{reason}");
        readiness.assigned();
        let status = readiness.status(Ok(()));
        assert!(status.ready && status.reason.is_none(), "{status:?}");
        assert!(status.checks.values().all(|c| c == OK), "{status:?}");
    }

    #[test]
    fn issue_21_unanswered_probes_and_an_unreadable_store_make_it_unready() {
        let readiness = Readiness::new("b:9092");
        readiness.assigned();
        readiness.probed(Err("no answer from b:9092".into()));
        let status = readiness.status(Ok(()));
        assert!(!status.ready);
        assert_eq!(status.reason.as_deref(), Some("no answer from b:9092"));
        assert_eq!(status.checks["consumer_group"], OK);
        readiness.probed(Ok(()));
        let status = readiness.status(Err("disk I/O error".into()));
        assert!(!status.ready);
        assert_eq!(status.checks["kafka"], OK);
        assert!(
            status.checks["store"].contains("disk I/O error"),
            "{status:?}"
        );
        assert!(readiness.status(Ok(())).ready);
    }

    #[test]
    fn issue_14_one_warning_per_interval() {
        let readiness = Readiness::new("b:9092");
        let start = Instant::now();
        let warned = |readiness: &Readiness| readiness.problem().warned_at;
        readiness.on_error(&transport(), "refused", start);
        assert_eq!(warned(&readiness), Some(start));
        readiness.on_error(&transport(), "refused", start + Duration::from_secs(9));
        assert_eq!(warned(&readiness), Some(start), "throttled");
        assert_eq!(readiness.problem().since_warning, 1);
        let later = start + WARN_INTERVAL;
        readiness.on_error(&transport(), "refused", later);
        assert_eq!(warned(&readiness), Some(later));
        assert_eq!(readiness.problem().since_warning, 0);
    }
}
