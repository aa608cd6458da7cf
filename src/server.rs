//! The HTTP front: `/webhook`, health checks, and the routes of the API and
//! the pages.
//!
//! `/webhook` refuses what can never be accepted before reading it (no
//! signature, a declared size over GitHub's cap), reads the body once,
//! checks the signature over it and hands it to [`Intake`], whose outcome
//! becomes the answer. It never calls GitHub: GitHub gives up on a delivery
//! after 10 seconds.

use crate::github::webhook::{self, MAX_PAYLOAD_BYTES};
use crate::ids::DeliveryId;
use crate::intake::{Intake, Outcome};
use crate::metrics::Metrics;
use crate::model::Trigger;
use crate::queue::WorkQueue;
use crate::store::StageJob;
use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// A body larger than this (by its `Content-Length`, or one that does not
/// say) is a large one: real deliveries are ~25 KB, a few reach a megabyte.
pub const LARGE_BODY_BYTES: usize = 1024 * 1024;

/// Large bodies read at once: with GitHub's 25 MB cap, intake buffers at
/// most 8 × 25 MB whatever unauthenticated clients send.
pub const MAX_LARGE_BODIES: usize = 8;

/// How long a large body waits for its turn before intake answers 503
/// (inside GitHub's 10-second delivery timeout).
pub const LARGE_BODY_WAIT: Duration = Duration::from_secs(5);

/// What `/webhook` shares: intake, and a turn for each large body.
#[derive(Clone)]
struct Front {
    intake: Intake,
    large_bodies: Arc<tokio::sync::Semaphore>,
}

/// The 202 answer to a queued delivery.
#[derive(Serialize)]
struct Queued<'a> {
    delivery: &'a DeliveryId,
    entry: &'a str,
    message: &'static str,
}

/// What `/metrics` needs: the process's metrics, the queues whose depth it
/// reads at each scrape, and the API token that guards it.
#[derive(Clone)]
pub struct Operator {
    metrics: Metrics,
    token: Option<Arc<SecretString>>,
    deliveries: WorkQueue<Trigger>,
    stages: WorkQueue<StageJob>,
}

impl Operator {
    /// `/metrics` of `metrics`, guarded by `token` when one is set, with the
    /// depths of the queues in `pool`.
    pub fn new(metrics: Metrics, token: Option<SecretString>, pool: crate::redis_pool::Pool) -> Self {
        let (deliveries, stages) = (WorkQueue::deliveries(pool.clone()), WorkQueue::stages(pool));
        Self { metrics, token: token.map(Arc::new), deliveries, stages }
    }
}

/// The routes of the web process: intake, health, metrics, the Drone API and the pages.
pub fn router(intake: Intake, api: crate::api::ApiState, operator: Operator) -> Router {
    let front = Front { intake, large_bodies: Arc::new(tokio::sync::Semaphore::new(MAX_LARGE_BODIES)) };
    Router::new()
        .route("/webhook", post(receive))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(front)
        .route("/metrics", get(metrics).with_state(operator))
        .merge(crate::api::router(api.clone()))
        .merge(crate::web::router(api))
}

fn reply(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// Reads a delivery's body, refusing without reading what can never be
/// accepted: no signature header (401), a declared size over GitHub's cap
/// (413). Large bodies take turns ([`MAX_LARGE_BODIES`]).
async fn read_body(front: &Front, headers: &HeaderMap, body: axum::body::Body) -> Result<axum::body::Bytes, Response> {
    if header(headers, "x-hub-signature-256").is_none() {
        tracing::warn!("refused a webhook delivery without a signature, unread");
        return Err(reply(StatusCode::UNAUTHORIZED, "missing X-Hub-Signature-256 header"));
    }
    let declared = header(headers, "content-length").and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_PAYLOAD_BYTES) {
        return Err(reply(StatusCode::PAYLOAD_TOO_LARGE, "payload over GitHub's 25 MB limit"));
    }
    let _turn = match declared {
        Some(n) if n <= LARGE_BODY_BYTES => None,
        _ => match tokio::time::timeout(LARGE_BODY_WAIT, front.large_bodies.acquire()).await {
            Ok(Ok(permit)) => Some(permit),
            _ => return Err(reply(StatusCode::SERVICE_UNAVAILABLE, "too many large deliveries at once; redeliver later")),
        },
    };
    axum::body::to_bytes(body, MAX_PAYLOAD_BYTES)
        .await
        .map_err(|_| reply(StatusCode::PAYLOAD_TOO_LARGE, "payload over GitHub's 25 MB limit"))
}

#[derive(serde::Deserialize)]
struct Form {
    payload: String,
}

/// Takes the whole request rather than a `HeaderMap` extractor, which would
/// clone every header.
async fn receive(State(front): State<Front>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let raw = match read_body(&front, headers, body).await {
        Ok(raw) => raw,
        Err(refused) => return refused,
    };
    if let Err(e) = webhook::verify_signature(front.intake.secrets(), header(headers, "x-hub-signature-256"), &raw) {
        tracing::warn!(reason = %e, "refused a webhook delivery");
        front.intake.refused(header(headers, "x-github-event").unwrap_or("other"));
        return reply(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let (Some(event), Some(guid)) = (header(headers, "x-github-event"), header(headers, "x-github-delivery")) else {
        return reply(StatusCode::BAD_REQUEST, "missing X-GitHub-Event or X-GitHub-Delivery header");
    };
    let content_type = header(headers, "content-type").unwrap_or("application/json");
    let form;
    let json: &[u8] = if content_type.starts_with("application/x-www-form-urlencoded") {
        form = match serde_urlencoded::from_bytes::<Form>(&raw) {
            Ok(f) => f,
            Err(_) => {
                return reply(StatusCode::BAD_REQUEST, "form-encoded delivery without a `payload` field");
            }
        };
        form.payload.as_bytes()
    } else if content_type.starts_with("application/json") {
        &raw
    } else {
        return reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("unsupported content type {content_type}"));
    };
    let delivery = DeliveryId(guid.to_string());
    answer(&delivery, front.intake.take(event, &delivery, json).await)
}

/// What GitHub is answered for an intake outcome.
fn answer(delivery: &DeliveryId, outcome: Outcome) -> Response {
    match outcome {
        Outcome::Queued(entry) => (StatusCode::ACCEPTED, Json(Queued { delivery, entry: &entry.0, message: "queued" })).into_response(),
        Outcome::Done(message) => reply(StatusCode::OK, message),
        Outcome::Malformed(message) => reply(StatusCode::BAD_REQUEST, message),
        Outcome::Unavailable(message) => reply(StatusCode::SERVICE_UNAVAILABLE, message),
    }
}

/// Prometheus' scrape: 401 without the API token when one is set.
async fn metrics(State(operator): State<Operator>, headers: HeaderMap) -> Response {
    if let Some(token) = &operator.token {
        let presented = header(&headers, "authorization").and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
        if !crate::api::token_matches(token, presented) {
            return reply(StatusCode::UNAUTHORIZED, "metrics need the API token (Authorization: Bearer …)");
        }
    }
    for (name, depth) in [("deliveries", operator.deliveries.waiting().await), ("stages", operator.stages.waiting().await)] {
        if let Ok(depth) = depth {
            operator.metrics.queue_depth(name, depth as i64);
        }
    }
    ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], operator.metrics.encode()).into_response()
}

async fn ready(State(front): State<Front>) -> Response {
    match front.intake.ready().await {
        Ok(()) => reply(StatusCode::OK, "ready"),
        Err(message) => reply(StatusCode::SERVICE_UNAVAILABLE, message),
    }
}
