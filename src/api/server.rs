//! The API's HTTP server, bounded: a slow or greedy client cannot hold the service's files,
//! memory or threads.
//!
//! - **Connections** are capped ([`Limits::max_connections`]): past the cap the accept loop
//!   waits, so further clients queue in the kernel's listen backlog without holding a file.
//! - **Headers** must arrive within [`Limits::header_timeout`] of connecting or of the previous
//!   answer (hyper's header-read timeout, which also closes idle kept-alive connections).
//! - **Requests** are answered within [`Limits::request_timeout`] or get a JSON `503`.
//! - **`/api/` requests** run at most [`Limits::max_concurrent_requests`] at once; each holds
//!   its slot until its answer is sent, and an answer over [`Limits::max_response_bytes`] is
//!   refused. `/healthz`, `/readyz` and `/metrics` never wait for a slot.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use hyper::body::Frame;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::params::json_error;

/// The API's timeouts and limits (`[api]`; the defaults are the configuration's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a request's headers.
    pub header_timeout: Duration,
    /// Time to answer a request, waiting for a slot included.
    pub request_timeout: Duration,
    /// Connections held at once.
    pub max_connections: usize,
    /// `/api/` requests served at once.
    pub max_concurrent_requests: usize,
    /// The largest answer, in bytes.
    pub max_response_bytes: usize,
}

/// How long open connections get to finish when the service stops.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` within `limits` until `stop` completes, then lets open
/// connections finish their current request (for at most [`DRAIN`]).
pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &Limits,
    stop: impl Future<Output = ()>,
) {
    let app = bounded(app, limits);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&connections).acquire_owned() => slot,
            () = &mut stop => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        match accepted {
            Ok((stream, _)) => connection(stream, &app, limits, &graceful, slot),
            Err(err) => {
                // Out of files, most often: wait for connections to close rather than spin.
                tracing::warn!(error = %err, "api cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("api connections still open after {DRAIN:?}; closing them");
    }
}

/// Serves one connection on its own task; its slot is freed when it closes.
fn connection(
    stream: tokio::net::TcpStream,
    app: &Router,
    limits: &Limits,
    graceful: &GracefulShutdown,
    slot: OwnedSemaphorePermit,
) {
    let service = TowerToHyperService::new(app.clone());
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let served = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
    tokio::spawn(async move {
        if let Err(err) = served.await {
            tracing::debug!(error = %err, "api connection ended");
        }
        drop(slot);
    });
}

/// What the request middleware needs.
#[derive(Clone)]
struct Gate {
    slots: Arc<Semaphore>,
    limits: Limits,
}

/// `app` with the request timeout, the `/api/` slots and the answer size cap.
fn bounded(app: Router, limits: &Limits) -> Router {
    let gate = Gate {
        slots: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
        limits: limits.clone(),
    };
    app.layer(axum::middleware::from_fn_with_state(gate, guard))
}

/// Times the request out, and for `/api/` takes a slot held until the answer is sent.
async fn guard(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let timeout = gate.limits.request_timeout;
    let answered = tokio::time::timeout(timeout, async {
        if !request.uri().path().starts_with("/api/") {
            return next.run(request).await;
        }
        let Ok(slot) = Arc::clone(&gate.slots).acquire_owned().await else {
            return json_error(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping");
        };
        let answer = next.run(request).await;
        capped(answer, gate.limits.max_response_bytes, slot).await
    })
    .await;
    answered.unwrap_or_else(|_| {
        json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no answer within {timeout:?} (api.request_timeout): the service is busy"),
        )
    })
}

/// The answer, if it fits in `max` bytes, with `slot` held until its body is sent.
async fn capped(answer: Response, max: usize, slot: OwnedSemaphorePermit) -> Response {
    let (parts, body) = answer.into_parts();
    match axum::body::to_bytes(body, max).await {
        Ok(bytes) => Response::from_parts(parts, Body::new(Held { bytes: Some(bytes), _slot: slot })),
        Err(_) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "the answer is larger than {max} bytes (api.max_response_bytes): ask for less, e.g. with ?limit="
            ),
        ),
    }
}

/// An answer's bytes, holding its request slot until hyper has taken them.
struct Held {
    bytes: Option<Bytes>,
    _slot: OwnedSemaphorePermit,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.bytes.take().map(|bytes| Ok(Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let length = self.bytes.as_ref().map_or(0, |b| b.len() as u64);
        http_body::SizeHint::with_exact(length)
    }
}

/// Files the service needs besides API connections: the store, Kafka sockets, task logs.
const FILES_FOR_THE_REST: u64 = 256;

/// Raises the process's soft open-file limit to its hard limit, and warns when
/// `max_connections` would still leave the rest of the service short of files.
pub(super) fn ensure_open_files(max_connections: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    let needed = max_connections as u64 + FILES_FOR_THE_REST;
    if limit.rlim_cur < needed {
        tracing::warn!(
            open_files = limit.rlim_cur,
            max_connections,
            "api.max_connections leaves fewer than {FILES_FOR_THE_REST} files for the store, Kafka and runs: lower it or raise the open-file limit"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt as _;

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_millis(200),
            max_connections: 16,
            max_concurrent_requests: 1,
            max_response_bytes: 1000,
        }
    }

    /// The app behind the guard, and the guard's slots (to hold them from the test).
    fn app() -> (Router, Arc<Semaphore>) {
        let gate = Gate {
            slots: Arc::new(Semaphore::new(1)),
            limits: limits(),
        };
        let slots = Arc::clone(&gate.slots);
        let app = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/api/small", get(|| async { "x".repeat(1000) }))
            .route("/api/big", get(|| async { "x".repeat(1001) }))
            .layer(axum::middleware::from_fn_with_state(gate, guard));
        (app, slots)
    }

    async fn get_path(app: &Router, path: &str) -> (StatusCode, String) {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let answer = app.clone().oneshot(request).await.unwrap();
        let status = answer.status();
        let body = axum::body::to_bytes(answer.into_body(), usize::MAX).await;
        (status, String::from_utf8(body.unwrap().to_vec()).unwrap())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn issue_21_answers_over_the_cap_are_refused_with_a_hint() {
        runtime().block_on(async {
            let (app, _) = app();
            let (status, body) = get_path(&app, "/api/small").await;
            assert_eq!((status, body.len()), (StatusCode::OK, 1000));
            let (status, body) = get_path(&app, "/api/big").await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert!(body.contains("api.max_response_bytes"), "{body}");
            assert!(body.contains("?limit="), "{body}");
        });
    }

    #[test]
    fn issue_21_api_requests_wait_for_a_slot_health_never_does() {
        runtime().block_on(async {
            let (app, slots) = app();
            let held = Arc::clone(&slots).acquire_owned().await.unwrap();
            let (status, _) = get_path(&app, "/healthz").await;
            assert_eq!(status, StatusCode::OK, "health checks take no slot");
            let (status, body) = get_path(&app, "/api/small").await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert!(body.contains("api.request_timeout"), "{body}");
            drop(held);
            let (status, _) = get_path(&app, "/api/small").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(slots.available_permits(), 1, "the slot is back once sent");
        });
    }
}
