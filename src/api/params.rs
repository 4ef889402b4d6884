//! Query parameters and errors of the API.
//!
//! Every error is a JSON object `{"error": "…"}`. A parameter of the wrong type or out of range
//! is a `400` that names it; a parameter the endpoint does not know is a `400` listing the ones
//! it accepts (a typo must not silently widen a query); an unknown path is a JSON `404`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

/// A JSON error response.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = super::answers::ErrorBody {
        error: message.into(),
    };
    (status, Json(body)).into_response()
}

/// A `400` naming what is wrong with the request.
pub fn bad_request(message: impl Into<String>) -> Response {
    json_error(StatusCode::BAD_REQUEST, message)
}

/// Query parameters, checked: the target type must deny unknown fields.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        parse(parts.uri.query().unwrap_or("")).map(Params)
    }
}

/// Parses a query string into `T`, with errors a caller can act on.
#[allow(clippy::result_large_err)] // the error is the response itself, built once per request
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, Response> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let name = err.path().to_string();
        let message = err.inner().to_string();
        if let Some(rest) = message.strip_prefix("unknown field ") {
            let (field, accepted) = rest.split_once(", expected ").unwrap_or((rest, ""));
            let accepted = accepted.trim_start_matches("one of ").replace(" or ", ", ");
            return bad_request(format!(
                "unknown query parameter {field}; accepted: {accepted}"
            ));
        }
        bad_request(format!("query parameter `{name}`: {message}"))
    })
}

/// `limit`: `default` when absent; `1..=max` or a `400` naming it.
#[allow(clippy::result_large_err)] // as for `parse`
pub fn limit(value: Option<u64>, default: u64, max: u64) -> Result<u64, Response> {
    match value {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(bad_request(format!(
            "query parameter `limit`: {n} is out of range: use 1 to {max} (and `cursor` for more)"
        ))),
    }
}

/// A time parameter: RFC 3339 (`2026-11-30T10:00:00Z`) or epoch milliseconds; `400` naming it.
#[allow(clippy::result_large_err)] // as for `parse`
pub fn time(name: &str, value: Option<&str>) -> Result<Option<i64>, Response> {
    let Some(text) = value else {
        return Ok(None);
    };
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(Some(ms));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| Some(t.timestamp_millis()))
        .map_err(|err| {
            bad_request(format!(
                "query parameter `{name}`: `{text}` is not an RFC 3339 time (2026-11-30T10:00:00Z) or epoch milliseconds: {err}"
            ))
        })
}

/// The answer for a path no endpoint serves.
pub async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "no such endpoint")
}

/// The answer for a method an endpoint does not take.
pub async fn method_not_allowed() -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "this endpoint does not take that method",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Query {
        model: Option<String>,
        limit: Option<u64>,
    }

    async fn body(response: Response) -> (StatusCode, String) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn error(query: &str) -> (StatusCode, String) {
        let response = parse::<Query>(query).unwrap_err();
        futures_executor::block_on(body(response))
    }

    #[test]
    fn issue_14_unknown_and_bad_parameters_are_named() {
        let (status, text) = error("modle=fraud");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            text,
            r#"{"error":"unknown query parameter `modle`; accepted: `model`, `limit`"}"#
        );
        let (status, text) = error("limit=ten");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            text.contains("query parameter `limit`: invalid digit"),
            "{text}"
        );
        assert!(parse::<Query>("model=fraud&limit=5").is_ok());
        let (status, text) =
            futures_executor::block_on(body(limit(Some(5000), 20, 1000).unwrap_err()));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains("`limit`: 5000 is out of range"), "{text}");
        assert_eq!(
            time("from", Some("2026-11-30T10:00:00Z")).unwrap(),
            Some(1_796_032_800_000)
        );
        assert_eq!(
            time("from", Some("1700000000000")).unwrap(),
            Some(1_700_000_000_000)
        );
        let (status, text) =
            futures_executor::block_on(body(time("to", Some("noon")).unwrap_err()));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            text.contains("query parameter `to`: `noon` is not an RFC 3339 time"),
            "{text}"
        );
    }
}
