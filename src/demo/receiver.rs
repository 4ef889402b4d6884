//! The demo's webhook receiver: an HTTP server on 127.0.0.1 that checks each alert's signature,
//! drops repeats by alert id (as the README tells receivers to) and prints what arrives.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

/// One alert as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The alert's kind.
    pub kind: String,
}

#[derive(Default)]
struct Inbox {
    alerts: Vec<Received>,
    ids: BTreeSet<String>,
    bad_signatures: u64,
}

#[derive(Clone)]
struct Shared {
    secret: String,
    inbox: Arc<Mutex<Inbox>>,
    started: std::time::Instant,
}

/// A running receiver.
pub struct Receiver {
    /// The URL alerts are posted to.
    pub url: String,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    /// Starts a receiver on a free loopback port, in its own thread, checking signatures with
    /// `secret`.
    pub fn start(secret: &str, started: std::time::Instant) -> std::io::Result<Receiver> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address: SocketAddr = listener.local_addr()?;
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let shared = Shared {
            secret: secret.to_string(),
            inbox: inbox.clone(),
            started,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("demo-receiver".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let app = Router::new()
                        .route("/alerts", post(receive))
                        .with_state(shared);
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            let _ = axum::serve(listener, app).await;
                        }
                        Err(err) => eprintln!("demo receiver: {err}"),
                    }
                })
            })?;
        Ok(Receiver {
            url: format!("http://{address}/alerts"),
            inbox,
        })
    }

    /// Every distinct alert received so far, in arrival order.
    pub fn alerts(&self) -> Vec<Received> {
        crate::locks::lock(&self.inbox).alerts.clone()
    }

    /// Requests whose signature did not verify.
    pub fn bad_signatures(&self) -> u64 {
        crate::locks::lock(&self.inbox).bad_signatures
    }
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = match (
        header("x-driftgate-timestamp").and_then(|t| t.parse::<u64>().ok()),
        header("x-driftgate-signature"),
    ) {
        (Some(timestamp), Some(signature)) => {
            crate::alert::deliver::signature(&shared.secret, timestamp, &body) == signature
        }
        _ => false,
    };
    let mut inbox = crate::locks::lock(&shared.inbox);
    if !signed {
        inbox.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(document) = serde_json::from_str::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let id = document["id"].as_str().unwrap_or_default().to_string();
    if !inbox.ids.insert(id) {
        // A repeat after a crash between delivery and its record: already handled.
        return StatusCode::OK;
    }
    let kind = document["kind"].as_str().unwrap_or("?").to_string();
    let model = document["model"].as_str().map(str::to_string);
    println!(
        "{}   alert → webhook: {kind}{}",
        super::stamp(shared.started),
        model
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    inbox.alerts.push(Received { kind });
    StatusCode::OK
}
