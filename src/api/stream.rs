//! Server-sent events with Drone's framing: `: ping` first and every 30
//! seconds, `data: <json>` per message, `event: error` / `data: eof` at the end.

use super::repos::repo_json;
use super::shapes::BuildJson;
use super::{ApiError, ApiResult, ApiState, Viewer, readable_repo};
use crate::ids::{BuildId, RepoId};
use crate::redis_server::Redis;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Drone pings idle streams this often.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);

/// Open streams (builds and logs) the whole process serves at once. Each
/// costs a task and a channel, no Redis connection; the cap bounds memory
/// and file descriptors whatever unauthenticated clients do.
pub const MAX_STREAMS: usize = 4096;

/// Open streams one client address may hold: a page follows a handful,
/// a dashboard wall a few dozen.
pub const MAX_STREAMS_PER_CLIENT: usize = 256;

/// The address a request came from, when the server knows it (it does
/// when serving; a router driven without a listener has none).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())))
    }
}

/// Counts open streams, in all and per client address.
#[derive(Debug, Clone, Default)]
pub struct StreamSlots {
    open: Arc<Mutex<OpenStreams>>,
}

/// The streams open now.
#[derive(Debug, Default)]
struct OpenStreams {
    total: usize,
    per_client: HashMap<Option<IpAddr>, usize>,
}

/// An open stream's place; freed when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: StreamSlots,
    client: Option<IpAddr>,
}

impl StreamSlots {
    /// A place for one more stream of `client`, or 429 when the process or
    /// the client is at its cap.
    pub fn take(&self, client: Option<IpAddr>) -> ApiResult<Slot> {
        let mut open = self.open.lock().expect("not poisoned");
        let of_client = open.per_client.get(&client).copied().unwrap_or(0);
        if open.total >= MAX_STREAMS || of_client >= MAX_STREAMS_PER_CLIENT {
            return Err(ApiError(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many open streams (at most {MAX_STREAMS_PER_CLIENT} per client address and {MAX_STREAMS} in all); close some and retry"
                ),
            ));
        }
        open.total += 1;
        *open.per_client.entry(client).or_default() += 1;
        Ok(Slot { slots: self.clone(), client })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().expect("not poisoned");
        open.total -= 1;
        if let Some(n) = open.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.per_client.remove(&self.client);
            }
        }
    }
}

/// A build changed: announced through Redis by whichever process changed
/// it, so every API process can tell its open streams.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct Change {
    /// The build's repository, so streams of one repository skip the rest.
    pub repo: RepoId,
    /// The build to read again.
    pub build: BuildId,
}

/// Relays Redis change announcements (from every process) to local streams.
pub async fn feed(redis: Redis, events: broadcast::Sender<Change>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let mut pubsub = match crate::store::subscribe_changes(&redis).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to build changes; retrying");
                tokio::select! { _ = shutdown.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => continue }
            }
        };
        let mut messages = pubsub.on_message();
        loop {
            let message = tokio::select! { _ = shutdown.cancelled() => return, m = messages.next() => m };
            let Some(message) = message else { break };
            let Ok(text) = message.get_payload::<String>() else { continue };
            if let Ok(change) = serde_json::from_str::<Change>(&text) {
                let _ = events.send(change);
            }
        }
    }
}

type EventStream = Sse<axum::response::sse::KeepAliveStream<std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>>>;

/// An SSE response fed by a channel, opened with `: ping`.
fn sse(rx: mpsc::Receiver<Event>) -> EventStream {
    let first = futures::stream::once(async { Event::default().comment("ping") });
    let rest = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
    let stream: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> = Box::pin(first.chain(rest).map(Ok));
    Sse::new(stream).keep_alive(KeepAlive::new().interval(PING_INTERVAL).text("ping"))
}

async fn builds_stream(state: ApiState, viewer: Viewer, client: ClientAddr, only: Option<RepoId>) -> ApiResult<EventStream> {
    let slot = state.slots.take(client.0)?;
    let (tx, rx) = mpsc::channel(64);
    let mut changes = state.events.subscribe();
    tokio::spawn(async move {
        let _slot = slot;
        loop {
            // A client that went away frees its slot now, not at the next change.
            let received = tokio::select! { _ = tx.closed() => break, received = changes.recv() => received };
            let change = match received {
                Ok(change) => change,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            };
            if only.is_some_and(|r| r != change.repo) {
                continue;
            }
            let message = async {
                let repo = state.store.repo(change.repo).await.ok()??;
                if repo.info.private && !viewer.admin {
                    return None;
                }
                let build = state.store.build(change.build).await.ok()??;
                let stages = state.store.stages(&build).await.ok()?;
                let json = repo_json(&state, &repo, Some(BuildJson::with_stages(&build, &stages))).await.ok()?;
                serde_json::to_string(&json).ok()
            };
            if let Some(json) = message.await
                && tx.send(Event::default().data(json)).await.is_err()
            {
                break;
            }
        }
    });
    Ok(sse(rx))
}

/// GET /api/stream: every build change, as Repository objects with their build.
pub async fn builds(State(state): State<ApiState>, viewer: Viewer, client: ClientAddr) -> ApiResult<EventStream> {
    builds_stream(state, viewer, client, None).await
}

/// GET /api/stream/{owner}/{name}: one repository's build changes.
pub async fn repo_builds(
    State(state): State<ApiState>,
    viewer: Viewer,
    client: ClientAddr,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<EventStream> {
    let repo = readable_repo(&state, &viewer, &owner, &name).await?;
    builds_stream(state, viewer, client, Some(repo.info.id)).await
}

/// GET /api/stream/{owner}/{name}/{build}/{stage}/{step}: a step's log lines,
/// first those stored, then new ones as the step prints them, then `eof`.
/// Every follower in the process shares one Redis reader ([`LogHub`]).
pub async fn log(
    State(state): State<ApiState>,
    viewer: Viewer,
    client: ClientAddr,
    Path((owner, name, build, stage, step)): Path<(String, String, String, String, String)>,
) -> ApiResult<EventStream> {
    let repo = readable_repo(&state, &viewer, &owner, &name).await?;
    let parse = |raw: &str| raw.parse::<i64>().map_err(|_| ApiError::bad_request(format!("{raw:?} is not a number")));
    let (number, stage_number, step_number) = (parse(&build)?, parse(&stage)?, parse(&step)?);
    let build = state.store.build_by_number(repo.info.id, number).await?.ok_or_else(ApiError::not_found)?;
    let stages = state.store.stages(&build).await?;
    let stage = stages.iter().find(|s| s.number == stage_number).ok_or_else(ApiError::not_found)?;
    if !stage.steps.iter().any(|s| s.number == step_number) {
        return Err(ApiError::not_found());
    }
    let slot = state.slots.take(client.0)?;
    let mut subscription = state.hub.follow(stage.id, step_number).await?;
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let _slot = slot;
        loop {
            let next = tokio::select! { _ = tx.closed() => return, next = subscription.next() => next };
            let Ok(Some(lines)) = next else { break };
            for line in lines {
                let json = serde_json::to_string(&line).expect("lines serialize");
                if tx.send(Event::default().data(json)).await.is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(eof()).await;
    });
    Ok(sse(rx))
}

fn eof() -> Event {
    Event::default().event("error").data("eof")
}
