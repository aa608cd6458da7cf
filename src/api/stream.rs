//! Server-sent events with Drone's framing: `: ping` first and every 30
//! seconds, `data: <json>` per message, `event: error` / `data: eof` at the end.

use super::repos::repo_json;
use super::shapes::BuildJson;
use super::{ApiError, ApiResult, ApiState, Viewer, readable_repo};
use crate::ids::{BuildId, RepoId};
use crate::redis_server::Redis;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Drone pings idle streams this often.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);

/// How long one wait for new log lines lasts before the step's state is checked again.
const LOG_BLOCK: Duration = Duration::from_secs(1);

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

async fn builds_stream(state: ApiState, viewer: Viewer, only: Option<RepoId>) -> EventStream {
    let (tx, rx) = mpsc::channel(64);
    let mut changes = state.events.subscribe();
    tokio::spawn(async move {
        loop {
            let change = match changes.recv().await {
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
    sse(rx)
}

/// GET /api/stream: every build change, as Repository objects with their build.
pub async fn builds(State(state): State<ApiState>, viewer: Viewer) -> EventStream {
    builds_stream(state, viewer, None).await
}

/// GET /api/stream/{owner}/{name}: one repository's build changes.
pub async fn repo_builds(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<EventStream> {
    let repo = readable_repo(&state, &viewer, &owner, &name).await?;
    Ok(builds_stream(state, viewer, Some(repo.info.id)).await)
}

/// GET /api/stream/{owner}/{name}/{build}/{stage}/{step}: a step's log lines,
/// first those stored, then new ones as the step prints them, then `eof`.
pub async fn log(
    State(state): State<ApiState>,
    viewer: Viewer,
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
    let stage_id = stage.id;
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let Ok(conn) = state.redis.blocking(LOG_BLOCK).await else {
            let _ = tx.send(eof()).await;
            return;
        };
        let mut follower = state.logs.follow(conn, stage_id, step_number);
        loop {
            // Whether the step was done before this read: if so, this read is the last.
            let done = state
                .store
                .stage(stage_id)
                .await
                .ok()
                .flatten()
                .and_then(|s| s.steps.into_iter().find(|st| st.number == step_number))
                .is_none_or(|st| st.status.is_done());
            let Ok(lines) = follower.next(LOG_BLOCK).await else { break };
            for line in lines {
                let json = serde_json::to_string(&line).expect("lines serialize");
                if tx.send(Event::default().data(json)).await.is_err() {
                    return;
                }
            }
            if done || tx.is_closed() {
                break;
            }
        }
        let _ = tx.send(eof()).await;
    });
    Ok(sse(rx))
}

fn eof() -> Event {
    Event::default().event("error").data("eof")
}
