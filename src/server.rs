//! The HTTP front: webhook intake and health checks.
//!
//! Intake verifies the signature before reading anything else, writes a
//! compact trigger to the delivery stream and answers. It never calls GitHub:
//! GitHub gives up on a delivery after 10 seconds.
//!
//! Intake is the hot path (thousands of ~25 KB deliveries a second), so the
//! body is read once, never copied: the signature is checked over it, the
//! payload parsed borrowing from it, and the compact trigger serialized
//! straight into the XADD command. (Batching the XADDs of concurrent
//! deliveries was measured too: the extra task hand-offs cost more CPU than
//! the round trips they saved, 89 against 79 µs a delivery.)

use crate::github::webhook::{self, Delivery, MAX_PAYLOAD_BYTES};
use crate::ids::DeliveryId;
use crate::model::{CommentCommand, Trigger};
use crate::queue::WorkQueue;
use crate::store::Store;
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

/// How long intake waits for Redis before answering 503 (well inside
/// GitHub's 10-second delivery timeout).
pub const REDIS_WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// A body larger than this (by its `Content-Length`, or one that does not
/// say) is a large one: real deliveries are ~25 KB, a few reach a megabyte.
pub const LARGE_BODY_BYTES: usize = 1024 * 1024;

/// Large bodies read at once: with GitHub's 25 MB cap, intake buffers at
/// most 8 × 25 MB whatever unauthenticated clients send.
pub const MAX_LARGE_BODIES: usize = 8;

/// How long a large body waits for its turn before intake answers 503
/// (inside GitHub's 10-second delivery timeout).
pub const LARGE_BODY_WAIT: Duration = Duration::from_secs(5);

/// What the intake handlers share.
#[derive(Clone)]
pub struct Intake {
    secrets: Arc<Vec<SecretString>>,
    redis: redis::aio::ConnectionManager,
    deliveries: WorkQueue<Trigger>,
    commands: WorkQueue<CommentCommand>,
    store: Store,
    large_bodies: Arc<tokio::sync::Semaphore>,
}

impl Intake {
    /// Intake appending to `deliveries` over `redis` (one multiplexed
    /// connection shared by every request), accepting any of `secrets`;
    /// the comment commands it finds go to the queue of that name in `store`'s Redis.
    pub fn new(secrets: Vec<SecretString>, redis: redis::aio::ConnectionManager, deliveries: WorkQueue<Trigger>, store: Store) -> Self {
        let commands = WorkQueue::commands(store.pool().clone());
        Self {
            secrets: Arc::new(secrets),
            redis,
            deliveries,
            commands,
            store,
            large_bodies: Arc::new(tokio::sync::Semaphore::new(MAX_LARGE_BODIES)),
        }
    }
}

/// The 202 answer to a queued delivery.
#[derive(Serialize)]
struct Queued<'a> {
    delivery: &'a DeliveryId,
    entry: &'a str,
    message: &'static str,
}

/// The routes of the web process: intake, health, the Drone API and the pages.
pub fn router(intake: Intake, api: crate::api::ApiState) -> Router {
    Router::new()
        .route("/webhook", post(receive))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(intake)
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
async fn read_body(intake: &Intake, headers: &HeaderMap, body: axum::body::Body) -> Result<axum::body::Bytes, Response> {
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
        _ => match tokio::time::timeout(LARGE_BODY_WAIT, intake.large_bodies.acquire()).await {
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
async fn receive(State(intake): State<Intake>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let raw = match read_body(&intake, headers, body).await {
        Ok(raw) => raw,
        Err(refused) => return refused,
    };
    if let Err(e) = webhook::verify_signature(&intake.secrets, header(headers, "x-hub-signature-256"), &raw) {
        tracing::warn!(reason = %e, "refused a webhook delivery");
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
    let trigger = match webhook::parse_delivery(event, &delivery, json) {
        Ok(Delivery::Ping) => return reply(StatusCode::OK, "pong"),
        Ok(Delivery::Ignored(reason)) => {
            return reply(StatusCode::OK, format!("ignored: {reason}"));
        }
        Ok(Delivery::Installation(change)) => {
            let now = chrono::Utc::now().timestamp();
            return match tokio::time::timeout(REDIS_WRITE_TIMEOUT, intake.store.apply_installation(&change, now)).await {
                Ok(Ok(())) => reply(StatusCode::OK, format!("{} repositories added, {} removed", change.added.len(), change.removed.len())),
                _ => reply(StatusCode::SERVICE_UNAVAILABLE, "store unavailable; redeliver later"),
            };
        }
        Ok(Delivery::Repository(change)) => return repository_changed(&intake, &change).await,
        Ok(Delivery::Command(command)) => return command_queued(&intake, &command).await,
        Ok(Delivery::Build(trigger)) => trigger,
        Ok(Delivery::Rerun(request)) => {
            match tokio::time::timeout(REDIS_WRITE_TIMEOUT, crate::lifecycle::rerun_trigger(&intake.store, &request, &delivery)).await {
                Ok(Ok(Some(trigger))) => Box::new(trigger),
                Ok(Ok(None)) => return reply(StatusCode::OK, "ignored: no greenlight build matches this check"),
                _ => return reply(StatusCode::SERVICE_UNAVAILABLE, "store unavailable; redeliver later"),
            }
        }
        Err(e) => return reply(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let mut redis = intake.redis.clone();
    match tokio::time::timeout(REDIS_WRITE_TIMEOUT, intake.deliveries.push_on(&mut redis, &trigger)).await {
        Ok(Ok(entry)) => {
            tracing::info!(%delivery, event, repo = %trigger.repo.slug(), sha = %trigger.commit.sha, %entry, "delivery queued");
            (StatusCode::ACCEPTED, Json(Queued { delivery: &delivery, entry: &entry.0, message: "queued" })).into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(%delivery, error = %e, "could not queue a delivery");
            reply(StatusCode::SERVICE_UNAVAILABLE, "queue unavailable; redeliver later")
        }
        Err(_) => {
            tracing::error!(%delivery, "timed out queueing a delivery");
            reply(StatusCode::SERVICE_UNAVAILABLE, "queue unavailable; redeliver later")
        }
    }
}

/// Queues a pull request comment's command for a planner (which asks
/// GitHub who may run it) before answering 202.
async fn command_queued(intake: &Intake, command: &CommentCommand) -> Response {
    let mut redis = intake.redis.clone();
    match tokio::time::timeout(REDIS_WRITE_TIMEOUT, intake.commands.push_on(&mut redis, command)).await {
        Ok(Ok(entry)) => {
            tracing::info!(delivery = %command.delivery, repo = %command.repo.slug(), pr = command.pull_request, command = %command.kind.as_written(), "comment command queued");
            (StatusCode::ACCEPTED, Json(Queued { delivery: &command.delivery, entry: &entry.0, message: "command queued" })).into_response()
        }
        _ => reply(StatusCode::SERVICE_UNAVAILABLE, "queue unavailable; redeliver later"),
    }
}

/// Applies a `repository` event to the stored repository before answering.
async fn repository_changed(intake: &Intake, change: &webhook::RepositoryChange) -> Response {
    let now = chrono::Utc::now().timestamp();
    match tokio::time::timeout(REDIS_WRITE_TIMEOUT, intake.store.refresh_repo(&change.repo, change.deleted, now)).await {
        Ok(Ok(Some(repo))) => {
            tracing::info!(repo = %repo.slug(), action = %change.action, private = repo.info.private, "repository changed");
            reply(StatusCode::OK, format!("repository {} {}", repo.slug(), change.action))
        }
        Ok(Ok(None)) => reply(StatusCode::OK, format!("ignored: greenlight has no record of {}", change.repo.slug())),
        _ => reply(StatusCode::SERVICE_UNAVAILABLE, "store unavailable; redeliver later"),
    }
}

async fn ready(State(intake): State<Intake>) -> Response {
    match tokio::time::timeout(REDIS_WRITE_TIMEOUT, intake.store.ping()).await {
        Ok(Ok(())) => reply(StatusCode::OK, "ready"),
        _ => reply(StatusCode::SERVICE_UNAVAILABLE, "redis does not answer"),
    }
}
