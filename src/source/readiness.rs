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
    /// Whether the instance takes part in its consumer group.
    pub ready: bool,
    /// Why not, in words an operator can act on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Readiness {
    /// Not ready yet, for brokers at `bootstrap_servers`.
    pub fn new(bootstrap_servers: &str) -> Readiness {
        Readiness {
            bootstrap_servers: bootstrap_servers.to_string(),
            ready: AtomicBool::new(false),
            problem: Mutex::new(Problem::default()),
        }
    }

    /// The consumer group assigned partitions (possibly none): the instance is ready.
    pub fn assigned(&self) {
        self.ready.store(true, Ordering::SeqCst);
        self.problem().reason = None;
    }

    /// What `/readyz` shows.
    pub fn status(&self) -> ReadyStatus {
        if self.ready.load(Ordering::SeqCst) {
            return ReadyStatus {
                ready: true,
                reason: None,
            };
        }
        let reason = self.problem().reason.clone();
        ReadyStatus {
            ready: false,
            reason: Some(reason.unwrap_or_else(|| WAITING.to_string())),
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
        assert_eq!(readiness.status().reason.as_deref(), Some(WAITING));
        readiness.on_error(&transport(), "Connection refused", Instant::now());
        let status = readiness.status();
        assert!(!status.ready);
        let reason = status.reason.unwrap();
        assert!(
            reason.contains("10.0.0.1:9092 (kafka.bootstrap_servers)"),
            "{reason}"
        );
        assert!(reason.ends_with("Connection refused"), "{reason}");
        readiness.assigned();
        assert_eq!(
            readiness.status(),
            ReadyStatus {
                ready: true,
                reason: None
            }
        );
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
