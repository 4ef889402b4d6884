//! A minimal HTTP/1.1 client for the tests that talk to driftgate's API, and free loopback
//! addresses to give it. Every answer is checked against the service's OpenAPI document
//! (`openapi.rs`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::time::Duration;

/// A loopback address with a free port: bound, read, released for the service.
pub fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A GET: (status, body).
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    http(address, "GET", path)
}

/// A request without a body: (status, body).
pub fn http(address: &str, method: &str, path: &str) -> (u16, String) {
    http_with(address, method, path, &[], "")
}

/// A request with extra header lines and a body: (status, body), checked against the document.
pub fn http_with(
    address: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    let (status, answer) = unchecked(address, method, path, headers, body);
    super::openapi::check(address, method, path, status, &answer);
    (status, answer)
}

/// A request as `http_with` makes it, without the check against the document.
pub fn unchecked(
    address: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    try_request(address, method, path, headers, body).expect("api reachable")
}

/// A GET whose connection may fail (a service starting, or stopping): the I/O error then.
pub fn try_get(address: &str, path: &str) -> std::io::Result<(u16, String)> {
    try_request(address, "GET", path, &[], "")
}

fn try_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no status line"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}
