//! The OpenAPI 3.1 document served at `GET /api/v1/openapi.json`.
//!
//! It is generated, never written by hand: each handler carries a `#[utoipa::path]` naming its
//! parameters and answers, the answers are the types of `answers.rs`, and `mod.rs` registers the
//! handlers through `utoipa_axum`, so a route cannot exist without its entry. What this file adds
//! is the document's header, the bearer scheme, and the one rule that is not in the types: times
//! (`*_at`) leave as RFC 3339 with a `*_at_ms` twin (see `times.rs`).

use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's fixed parts; the paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "driftgate",
        description = "Drift reports, policy decisions, alerts and retraining runs of a driftgate \
                       instance. Errors are `{\"error\": \"…\"}` with a 4xx or 5xx status; times \
                       are RFC 3339 (UTC) with an epoch-milliseconds `*_ms` twin."
    ),
    components(schemas(super::answers::ErrorBody)),
    modifiers(&BearerScheme),
    tags(
        (name = "service", description = "Liveness, readiness, metrics and this document."),
        (name = "streams", description = "Streams, their windows and baselines."),
        (name = "decisions", description = "What each policy decided about each window."),
        (name = "alerts", description = "Alerts and their deliveries to sinks."),
        (name = "runs", description = "Retraining runs: list, inspect, trigger, cancel."),
        (name = "admin", description = "Changes to the running service.")
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` scheme the changing endpoints require (`runs.token_env`).
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The token named by `runs.token_env` in the service's configuration.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document as served: the generated one, its version set, with the time rule applied.
pub fn finish(mut document: utoipa::openapi::OpenApi) -> Value {
    document.info.version = env!("CARGO_PKG_VERSION").to_string();
    let mut value = serde_json::to_value(&document).expect("the OpenAPI document serialises");
    super::times::rfc3339_schemas(&mut value);
    value
}

#[cfg(test)]
mod tests {
    #[test]
    fn issue_14_every_route_is_in_the_document_with_its_answers() {
        let document = super::super::document();
        let paths = document["paths"].as_object().expect("paths");
        for (path, method) in [
            ("/healthz", "get"),
            ("/readyz", "get"),
            ("/metrics", "get"),
            ("/api/v1/streams", "get"),
            ("/api/v1/streams/{name}/windows", "get"),
            ("/api/v1/streams/{name}/baselines", "get"),
            ("/api/v1/decisions", "get"),
            ("/api/v1/alerts", "get"),
            ("/api/v1/runs", "get"),
            ("/api/v1/runs", "post"),
            ("/api/v1/runs/{id}", "get"),
            ("/api/v1/runs/{id}/cancel", "post"),
            (
                "/api/v1/runs/{id}/tasks/{task}/attempts/{attempt}/log",
                "get",
            ),
            ("/api/v1/reload", "post"),
        ] {
            let operation = &paths[path][method];
            assert!(operation.is_object(), "{method} {path} is not documented");
            assert!(
                operation["responses"]["200"].is_object()
                    || operation["responses"]["202"].is_object(),
                "{method} {path} has no success answer"
            );
        }
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
        let run = &document["components"]["schemas"]["RunRecord"]["properties"];
        assert_eq!(run["created_at"]["format"], "date-time");
        assert_eq!(run["created_at_ms"]["type"], "integer");
        let post = &paths["/api/v1/runs"]["post"];
        assert_eq!(post["security"][0]["bearer"], serde_json::json!([]));
    }
}
