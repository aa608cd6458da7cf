//! The Drone-compatible API (`/api/...`, Drone 2.x shapes with Drone 0.8's
//! fields beside them, and 0.8's own routes) for existing Drone clients:
//! the `drone` CLI, drone-node, dashboards, and what was built on Drone 0.8.
//!
//! Access follows Drone: public repositories are readable by anyone;
//! private ones, the user endpoints, restart and cancel need the admin
//! token (`GREENLIGHT_API_TOKEN`), given as `Authorization: Bearer TOKEN`,
//! the raw header, `?access_token=`, or the build pages' login session
//! (whose changes must come from greenlight's own pages, see `auth`). A
//! guest asking for a private repository gets 401, as from Drone.

pub mod artifacts;
mod auth;
mod badges;
mod builds;
mod crons;
mod drone08;
mod repos;
mod secrets;
pub mod shapes;
pub mod shapes08;
mod stream;

pub use auth::{
    CSRF_HEADER, CrossSite, SESSION_COOKIE, Viewer, check_session_change, is_admin_token, origin_of, session_of, token_matches,
};
pub use badges::badge_key;

use crate::lifecycle::Lifecycle;
use crate::planner::Planner;
use crate::store::{Logs, Repo, Store};
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::SecretString;
use std::sync::Arc;
use tokio::sync::broadcast;
use tower_http::cors::{Any, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// Builds, stages and repositories the handlers read and change.
    pub store: Store,
    /// Stored step logs, for log requests of finished steps.
    pub logs: Logs,
    /// The process's one reader of live step logs.
    pub hub: crate::store::LogHub,
    /// Caps on open streams.
    pub slots: stream::StreamSlots,
    /// The admin token, if one is configured.
    pub token: Option<Arc<SecretString>>,
    /// Build changes, fanned out to every stream.
    pub events: broadcast::Sender<stream::Change>,
    /// Cancels builds and approves blocked stages, through the one lifecycle.
    pub lifecycle: Lifecycle,
    /// Restarts builds: a new build, planned like any other.
    pub planner: Planner,
    /// The App's installations' repositories, asked of GitHub (`flush=true`, activation).
    pub installations: crate::github::Installations,
    /// greenlight's public URL, the base of the build links the API returns.
    pub public_url: String,
    /// Repository secrets, for the admin secret endpoints (values are never returned).
    pub secrets: crate::secrets::SecretStore,
    /// Runs cron jobs now (the cron API's `POST .../cron/{name}`).
    pub scheduler: crate::cron::Scheduler,
    /// The time cron jobs' next ticks are computed from.
    pub clock: crate::clock::SharedClock,
    /// Where artifacts are kept (the same place workers upload them).
    pub blobs: crate::blobs::Blobs,
}

/// An API error: Drone's `{"message": ...}` with a status code.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self(StatusCode::UNAUTHORIZED, "Unauthorized".to_string())
    }

    /// 404 Not Found.
    pub fn not_found() -> Self {
        Self(StatusCode::NOT_FOUND, "Not Found".to_string())
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "API: redis failed");
        Self(StatusCode::SERVICE_UNAVAILABLE, "store unavailable".to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "message": self.1 }))).into_response()
    }
}

/// The result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// Finds a repository the viewer may read: 401 for a guest when it is
/// missing or private (hiding whether it exists), 404 for the admin when missing.
pub async fn readable_repo(state: &ApiState, viewer: &Viewer, owner: &str, name: &str) -> ApiResult<Repo> {
    match state.store.repo_by_slug(&format!("{owner}/{name}")).await? {
        Some(repo) if !repo.info.private || viewer.admin => Ok(repo),
        Some(_) => Err(ApiError::unauthorized()),
        None if viewer.admin => Err(ApiError::not_found()),
        None => Err(ApiError::unauthorized()),
    }
}

/// Drone answers 501 for what it does not serve; a known route with an
/// unsupported method is no different.
async fn method_not_allowed_is_not_implemented(response: Response) -> Response {
    if response.status() == StatusCode::METHOD_NOT_ALLOWED { not_implemented().await.into_response() } else { response }
}

async fn not_implemented() -> ApiError {
    ApiError(StatusCode::NOT_IMPLEMENTED, "Not Implemented".to_string())
}

/// The `/api` routes (mounted by the server), plus `/version`.
pub fn router(state: ApiState) -> Router {
    let cors = CorsLayer::new().allow_origin(Any).allow_methods(Any).allow_headers(Any).expose_headers([header::LINK]);
    // Full paths rather than a nested router: `/api/{*rest}` then outranks
    // the pages' `/{owner}/{repo}`, so `/api/anything` is never a page.
    Router::new()
        .route("/api/user", get(repos::user))
        .route("/api/user/repos", get(repos::user_repos))
        .route("/api/user/feed", get(drone08::feed))
        .route("/api/user/builds", get(repos::user_builds))
        .route("/api/user/builds/recent", get(repos::user_builds))
        .route("/api/builds/incomplete", get(repos::incomplete))
        .route("/api/repos/{owner}/{name}", get(repos::repo).patch(repos::update_repo).post(drone08::activate).delete(drone08::deactivate))
        .route("/api/repos/{owner}/{name}/builds/{number}/approve/{stage}", axum::routing::post(builds::approve))
        .route("/api/repos/{owner}/{name}/builds", get(builds::list).post(builds::create))
        .route("/api/repos/{owner}/{name}/builds/latest", get(builds::latest))
        .route("/api/repos/{owner}/{name}/builds/{number}", get(builds::find).post(builds::restart).delete(builds::cancel))
        .route("/api/repos/{owner}/{name}/builds/{number}/logs/{stage}/{step}", get(builds::logs))
        .route("/api/repos/{owner}/{name}/builds/{number}/artifacts", get(artifacts::list))
        .route("/api/repos/{owner}/{name}/builds/{number}/artifacts/{stage}/{step}/{*file}", get(artifacts::download))
        .route("/api/repos/{owner}/{name}/logs/{build}/{pid}", get(drone08::proc_logs))
        .route("/api/stream", get(stream::builds))
        .route("/api/stream/{owner}/{name}", get(stream::repo_builds))
        .route("/api/stream/{owner}/{name}/{build}/{stage}/{step}", get(stream::log))
        .route("/api/badges/{owner}/{name}/status.svg", get(badges::status_svg))
        .route("/api/badges/{owner}/{name}/cc.xml", get(badges::cc_xml))
        .route("/api/repos", get(repos::all_repos))
        .route("/api/repos/{owner}/{name}/secrets", get(secrets::list).post(secrets::create))
        .route("/api/repos/{owner}/{name}/secrets/{secret}", get(secrets::find).patch(secrets::update).delete(secrets::delete))
        .route("/api/repos/{owner}/{name}/cron", get(crons::list).post(crons::create))
        .route("/api/repos/{owner}/{name}/cron/{cron}", get(crons::find).patch(crons::update).delete(crons::delete).post(crons::run_now))
        .route("/api/{*rest}", axum::routing::any(not_implemented))
        .route("/version", get(version))
        .layer(axum::middleware::map_response(method_not_allowed_is_not_implemented))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store, must-revalidate, private, max-age=0"),
        ))
        .layer(cors)
        .with_state(state)
}

async fn version() -> impl IntoResponse {
    axum::Json(
        serde_json::json!({ "source": "https://github.com/greenlight-ci/greenlight", "version": env!("CARGO_PKG_VERSION"), "commit": "" }),
    )
}

pub use stream::{Change, MAX_STREAMS, MAX_STREAMS_PER_CLIENT, StreamSlots, feed as stream_feed};

/// A channel for build change events.
pub fn change_channel() -> broadcast::Sender<stream::Change> {
    broadcast::channel(1024).0
}
