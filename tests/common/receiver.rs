//! A real HTTP server on 127.0.0.1 that records every request and answers with scripted status
//! codes (200 once the script is used up): the far end of webhook tests.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method and path, e.g. `POST /hook`.
    pub line: String,
    /// Headers, names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
}

impl Request {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    arrived: Condvar,
    script: Mutex<VecDeque<(u16, String)>>,
}

/// A running receiver.
pub struct Receiver {
    /// `127.0.0.1:PORT`.
    pub address: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Starts on a free port.
    pub fn start() -> Receiver {
        Receiver::start_on("127.0.0.1:0")
    }

    /// Starts on `address` (to come back on the port of a stopped receiver).
    pub fn start_on(address: &str) -> Receiver {
        let listener = TcpListener::bind(address).expect("the receiver binds");
        let address = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        serve(stream, &shared);
                    }
                }
            })
        };
        Receiver {
            address,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Answers the next requests with these statuses, in order.
    pub fn respond_with(&self, statuses: &[u16]) {
        self.shared
            .script
            .lock()
            .unwrap()
            .extend(statuses.iter().map(|s| (*s, String::new())));
    }

    /// Answers the next requests with these statuses and JSON bodies, in order.
    pub fn respond_json(&self, answers: &[(u16, serde_json::Value)]) {
        self.shared
            .script
            .lock()
            .unwrap()
            .extend(answers.iter().map(|(s, b)| (*s, b.to_string())));
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (panics after `timeout`); returns them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        let mut requests = self.shared.requests.lock().unwrap();
        while requests.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{} of {n} requests arrived in {timeout:?}",
                requests.len()
            );
            requests = self.shared.arrived.wait_timeout(requests, left).unwrap().0;
        }
        requests.clone()
    }

    /// Stops listening: connections are refused until a receiver starts on the port again.
    pub fn stop(mut self) -> String {
        self.halt();
        self.address.clone()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop.
        let _ = TcpStream::connect(&self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.halt();
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let (status, answer) = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((200, String::new()));
    let mut writer = &stream;
    // A scripted redirect points somewhere else on this receiver, as a moved webhook would.
    let location = if (300..400).contains(&status) {
        "Location: /moved\r\n"
    } else {
        ""
    };
    let _ = write!(
        writer,
        "HTTP/1.1 {status} Scripted\r\n{location}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = writer.flush();
    shared.requests.lock().unwrap().push(Request {
        line: line.trim().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        status,
    });
    shared.arrived.notify_all();
}
