//! Delivery: one worker thread per sink sends the sink's pending alerts from the outbox in
//! order. A delivery is marked done in the store right after the sink accepted it, so a restart
//! resends at most the one alert that was in flight (receivers drop it by its id).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Alert, SinkKind, SinkSettings};
use crate::store::{Delivery, Store};
use crate::telemetry::Metrics;
use crate::wake::Wake;

/// How an attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryFailure {
    /// Worth retrying (transport error, 408, 429, 5xx); `after` is the receiver's
    /// `Retry-After`, when it sent one.
    Retry {
        /// Why.
        error: String,
        /// The delay the receiver asked for.
        after: Option<Duration>,
    },
    /// Not worth retrying (any other 4xx, a message the sink refuses).
    Permanent(String),
}

impl DeliveryFailure {
    /// The failure with the secrets of any URL in its message masked (see [`crate::redact`]),
    /// before it is logged or stored.
    pub fn redacted(self) -> DeliveryFailure {
        match self {
            DeliveryFailure::Retry { error, after } => DeliveryFailure::Retry {
                error: crate::redact::secrets(&error),
                after,
            },
            DeliveryFailure::Permanent(error) => {
                DeliveryFailure::Permanent(crate::redact::secrets(&error))
            }
        }
    }
}

/// The headers of a signed webhook request: `X-Driftgate-Timestamp` (Unix seconds) and
/// `X-Driftgate-Signature`: `v1=` and the hex HMAC-SHA256, keyed by the secret, of
/// `"{timestamp}.{body}"`.
pub fn signature(secret: &str, timestamp: u64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends alerts to one sink.
pub struct Sender {
    settings: SinkSettings,
    agent: reqwest::blocking::Client,
    kafka: Option<KafkaSink>,
}

struct KafkaSink {
    producer: rdkafka::producer::BaseProducer<DeliveryReports>,
    reports: Arc<Mutex<Vec<Result<(), String>>>>,
}

/// Collects the broker's delivery reports for the Kafka sink.
struct DeliveryReports(Arc<Mutex<Vec<Result<(), String>>>>);

impl rdkafka::ClientContext for DeliveryReports {
    fn stats_raw(&self, statistics: &[u8]) {
        crate::source::kafka::stats_quietly("alerts", statistics);
    }
}

impl rdkafka::producer::ProducerContext for DeliveryReports {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        let outcome = result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string());
        crate::locks::lock(&self.0).push(outcome);
    }
}

impl Sender {
    /// A sender for `settings`; `kafka` is the service's client configuration (for Kafka sinks).
    pub fn new(
        settings: SinkSettings,
        kafka: Option<&rdkafka::ClientConfig>,
    ) -> Result<Sender, String> {
        // Redirects are never followed: a 301/302 would be re-sent as a body-less GET and a
        // 307/308 to a host nobody configured; a 3xx is a failure (see `http_outcome`).
        let agent = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .user_agent(concat!("driftgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        let kafka = match (&settings.kafka_topic(), kafka) {
            (Some(_), Some(config)) => {
                let reports = Arc::new(Mutex::new(Vec::new()));
                let mut config = config.clone();
                config.set(
                    "message.timeout.ms",
                    settings.timeout.as_millis().to_string(),
                );
                let producer = config
                    .create_with_context(DeliveryReports(reports.clone()))
                    .map_err(|e| format!("cannot create the Kafka producer: {e}"))?;
                Some(KafkaSink { producer, reports })
            }
            (Some(_), None) => return Err("a kafka sink needs the service's Kafka".to_string()),
            _ => None,
        };
        Ok(Sender {
            settings,
            agent,
            kafka,
        })
    }

    /// One attempt to deliver `alert`.
    pub fn send(&self, alert: &Alert) -> Result<(), DeliveryFailure> {
        let body = serde_json::to_string(alert).expect("alerts serialise");
        match &self.settings.kind {
            SinkKind::Webhook { url, secret } => {
                let timestamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let mut request = self
                    .agent
                    .post(url)
                    .header("Content-Type", "application/json")
                    .header("X-Driftgate-Alert-Id", &alert.id)
                    .header("X-Driftgate-Alert-Kind", alert.kind.as_str())
                    .header("X-Driftgate-Timestamp", timestamp.to_string());
                if let Some(secret) = secret {
                    request = request
                        .header("X-Driftgate-Signature", signature(secret, timestamp, &body));
                }
                http_outcome(request.body(body).send())
            }
            SinkKind::Slack { url } => {
                let message = super::slack::message(alert).to_string();
                http_outcome(
                    self.agent
                        .post(url)
                        .header("Content-Type", "application/json")
                        .body(message)
                        .send(),
                )
            }
            SinkKind::Kafka { topic } => {
                let kafka = self.kafka.as_ref().expect("kafka sinks have a producer");
                crate::locks::lock(&kafka.reports).clear();
                let key = alert.model.clone().unwrap_or_default();
                let headers = rdkafka::message::OwnedHeaders::new()
                    .insert(rdkafka::message::Header {
                        key: "driftgate-alert-id",
                        value: Some(alert.id.as_bytes()),
                    })
                    .insert(rdkafka::message::Header {
                        key: "driftgate-alert-kind",
                        value: Some(alert.kind.as_str().as_bytes()),
                    });
                let record = rdkafka::producer::BaseRecord::to(topic)
                    .key(&key)
                    .payload(&body)
                    .headers(headers);
                if let Err((e, _)) = kafka.producer.send(record) {
                    return Err(DeliveryFailure::Retry {
                        error: format!("cannot queue for Kafka: {e}"),
                        after: None,
                    });
                }
                use rdkafka::producer::Producer;
                let _ = kafka
                    .producer
                    .flush(self.settings.timeout + Duration::from_secs(1));
                match crate::locks::lock(&kafka.reports).pop() {
                    Some(Ok(())) => Ok(()),
                    Some(Err(e)) => Err(DeliveryFailure::Retry {
                        error: format!("Kafka did not take it: {e}"),
                        after: None,
                    }),
                    None => Err(DeliveryFailure::Retry {
                        error: "no delivery report from Kafka in time".to_string(),
                        after: None,
                    }),
                }
            }
            SinkKind::Log => {
                tracing::warn!(kind = alert.kind.as_str(), id = %alert.id,
                    model = alert.model.as_deref().unwrap_or(""), "{}", alert.summary);
                Ok(())
            }
        }
    }
}

impl SinkSettings {
    fn kafka_topic(&self) -> Option<&str> {
        match &self.kind {
            SinkKind::Kafka { topic } => Some(topic),
            _ => None,
        }
    }
}

/// What an HTTP attempt came to.
fn http_outcome(
    result: reqwest::Result<reqwest::blocking::Response>,
) -> Result<(), DeliveryFailure> {
    let response = result.map_err(|e| DeliveryFailure::Retry {
        error: e.to_string(),
        after: None,
    })?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (location, retry_after) = (header("Location"), header("Retry-After"));
    let status = response.status().as_u16();
    let body = if response.status().is_success() {
        String::new()
    } else {
        response.text().unwrap_or_default()
    };
    status_outcome(status, location.as_deref(), retry_after.as_deref(), &body)
}

/// What an answer with `status` (and its `Location`, `Retry-After` and body) means for the
/// delivery: 2xx delivered; 408, 429, 5xx and 3xx retried; any other 4xx given up.
fn status_outcome(
    status: u16,
    location: Option<&str>,
    retry_after: Option<&str>,
    body: &str,
) -> Result<(), DeliveryFailure> {
    match status {
        200..=299 => Ok(()),
        // A redirect is not a delivery: the URL is out of date. Retried (the sink's URL may be
        // fixed by a reload meanwhile), with an error that says where it points.
        300..=399 => Err(DeliveryFailure::Retry {
            error: format!(
                "HTTP {status}: the URL redirects to {}; alerts are not sent to redirects, configure that URL instead",
                location.unwrap_or("(no Location header)")
            ),
            after: None,
        }),
        _ => {
            let after = retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body: String = body.chars().take(200).collect();
            let error = format!("HTTP {status}: {}", body.trim());
            if status == 408 || status == 429 || status >= 500 {
                Err(DeliveryFailure::Retry { error, after })
            } else {
                Err(DeliveryFailure::Permanent(error))
            }
        }
    }
}

/// The delay before attempt `attempts + 1`: `backoff × 2^(attempts-1)`, capped at
/// `max_backoff`, less up to a fifth at random (so sinks recovering together are not hit at
/// once); a receiver's `Retry-After` wins when longer, still capped.
pub fn backoff(
    settings: &SinkSettings,
    attempts: u32,
    after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let jittered = crate::retry::delay(settings.backoff, settings.max_backoff, attempts, jitter);
    match after {
        Some(after) => jittered.max(after).min(settings.max_backoff),
        None => jittered,
    }
}

/// Runs a sink's worker until `stop`: sends pending deliveries in order, one at a time.
pub fn run_worker(
    store: Store,
    sender: Sender,
    wake: Arc<Wake>,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) {
    let sink = sender.settings.name.clone();
    let mut seen = 0;
    let mut rng = crate::SplitMix64::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    );
    // When the store cannot record an attempt, the delivery is held back this long (doubling
    // while it keeps failing), rather than sent again at once.
    let mut held: Option<(Instant, u32)> = None;
    while !stop.load(Ordering::Relaxed) {
        if let Some((until, _)) = held.filter(|(until, _)| Instant::now() < *until) {
            let wait = until.saturating_duration_since(Instant::now());
            wake.wait_for(&mut seen, wait.min(Duration::from_secs(1)));
            continue;
        }
        let delivery = match store.next_delivery(&sink) {
            Ok(delivery) => delivery,
            Err(err) => {
                tracing::error!(sink = %sink, error = %err, "cannot read the alert outbox");
                wake.wait_for(&mut seen, Duration::from_secs(1));
                continue;
            }
        };
        let Some(delivery) = delivery else {
            wake.wait_for(&mut seen, Duration::from_secs(1));
            continue;
        };
        let now = crate::store::now_ms();
        if delivery.next_attempt_ms > now {
            let wait = Duration::from_millis((delivery.next_attempt_ms - now) as u64);
            wake.wait_for(&mut seen, wait.min(Duration::from_secs(1)));
            continue;
        }
        match attempt(&store, &sender, &delivery, &metrics, &mut rng) {
            Ok(()) => held = None,
            Err(err) => {
                let failures = held.map_or(1, |(_, n)| n + 1);
                let delay = crate::retry::delay(
                    Duration::from_secs(1),
                    Duration::from_secs(60),
                    failures,
                    rng.next_f64(),
                );
                tracing::error!(sink = %sink, error = %err, retry_in_ms = delay.as_millis() as u64,
                    "cannot record an alert delivery; holding the sink's queue");
                held = Some((Instant::now() + delay, failures));
            }
        }
    }
}

/// Sends one delivery and records what came of it; an error is the store's.
fn attempt(
    store: &Store,
    sender: &Sender,
    delivery: &Delivery,
    metrics: &Metrics,
    rng: &mut crate::SplitMix64,
) -> Result<(), crate::store::StoreError> {
    let settings = &sender.settings;
    let sink = settings.name.as_str();
    let kind = delivery.alert.kind.as_str();
    let attempts = delivery.attempts + 1;
    let started = Instant::now();
    let result = sender
        .send(&delivery.alert)
        .map_err(DeliveryFailure::redacted);
    let age = Duration::from_millis((crate::store::now_ms() - delivery.created_ms).max(0) as u64);
    match result {
        Ok(()) => {
            metrics.alert(sink, kind, "delivered");
            let latency = (crate::store::now_ms() - delivery.created_ms).max(0) as f64 / 1000.0;
            metrics.alert_delivery(sink, latency);
            tracing::info!(sink, kind, id = %delivery.alert.id, attempts,
                took_ms = started.elapsed().as_millis() as u64, "alert delivered");
            store.delivered(delivery.id, attempts)
        }
        Err(DeliveryFailure::Retry { error, after })
            if attempts < settings.max_attempts && age < settings.max_age =>
        {
            metrics.alert(sink, kind, "retried");
            let delay = backoff(settings, attempts, after, rng.next_f64());
            tracing::warn!(sink, kind, id = %delivery.alert.id, attempts, error = %error,
                retry_in_ms = delay.as_millis() as u64, "alert delivery failed; will retry");
            store.retry_later(
                delivery.id,
                attempts,
                crate::store::now_ms() + delay.as_millis() as i64,
                &error,
            )
        }
        Err(DeliveryFailure::Retry { error, .. }) => {
            let limit = if attempts >= settings.max_attempts {
                format!("max_attempts {}", settings.max_attempts)
            } else {
                format!("max_age {}", humantime::format_duration(settings.max_age))
            };
            let error = format!(
                "given up after {attempts} attempt(s) over {} ({limit}): {error}",
                humantime::format_duration(Duration::from_secs(age.as_secs())),
            );
            metrics.alert(sink, kind, "dead");
            tracing::error!(sink, kind, id = %delivery.alert.id, attempts, error = %error,
                "alert delivery given up");
            store.dead(delivery.id, attempts, &error)
        }
        Err(DeliveryFailure::Permanent(error)) => {
            metrics.alert(sink, kind, "dead");
            tracing::error!(sink, kind, id = %delivery.alert.id, attempts, error = %error,
                "alert delivery given up");
            store.dead(delivery.id, attempts, &error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{status_outcome, DeliveryFailure};

    #[test]
    fn issue_21_a_redirect_is_a_retried_failure_naming_its_location() {
        match status_outcome(301, Some("https://new.example/hook"), None, "") {
            Err(DeliveryFailure::Retry { error, .. }) => {
                assert!(
                    error.starts_with("HTTP 301: the URL redirects to https://new.example/hook"),
                    "{error}"
                )
            }
            other => panic!("a redirect counted as {other:?}"),
        }
    }

    #[test]
    fn the_signature_is_what_the_readme_receiver_computes() {
        // Python: "v1=" + hmac.new(b"k", b"1700000000." + b'{"a":1}', hashlib.sha256).hexdigest()
        assert_eq!(
            super::signature("k", 1_700_000_000, r#"{"a":1}"#),
            "v1=1b6ad1bc9bf48c52ce01939866d5877c6cc4e87ddad27e16673cb8c4964394a3"
        );
    }
}
