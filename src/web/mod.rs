//! The pages GitHub links to: `/{owner}/{repo}/{number}` (a build, its
//! stages, steps and logs, following the log live) and `/{owner}/{repo}`
//! (the build list). Server-rendered and readable without JavaScript; a
//! small script follows the API's event streams to update statuses and
//! append log lines without a reload. Private repositories need the admin
//! token, kept in a cookie by `/login`.

mod html;
mod login;

use crate::api::{ApiState, Viewer};
use crate::store::Repo;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

/// A step's log on the page shows at most this many lines; the rest is a link away.
pub const PAGE_LOG_LINES: usize = 500;

/// The build list shows this many builds.
pub const PAGE_BUILDS: usize = 50;

/// The page routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/login", get(login::form).post(login::submit))
        .route("/{owner}/{repo}", get(build_list))
        .route("/{owner}/{repo}/{number}", get(build_page))
        .with_state(state)
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, Html(html::page("Not found", &format!("<p>{}</p>", html::escape(what))))).into_response()
}

/// The repository, or the response to send instead (login for a private one).
async fn visible_repo(state: &ApiState, viewer: &Viewer, owner: &str, repo: &str, here: &str) -> Result<Repo, Response> {
    match state.store.repo_by_slug(&format!("{owner}/{repo}")).await {
        Ok(Some(r)) if !r.info.private || viewer.admin => Ok(r),
        Ok(Some(_)) => Err(Redirect::to(&format!("/login?next={}", crate::text::percent_encode(here, b"/"))).into_response()),
        Ok(None) => Err(not_found(&format!("greenlight has no repository {owner}/{repo}."))),
        Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {e}")).into_response()),
    }
}

async fn build_list(State(state): State<ApiState>, viewer: Viewer, Path((owner, repo)): Path<(String, String)>) -> Response {
    let here = format!("/{owner}/{repo}");
    let repo = match visible_repo(&state, &viewer, &owner, &repo, &here).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let mut builds = Vec::new();
    for id in state.store.build_ids(repo.info.id, 0, PAGE_BUILDS).await.unwrap_or_default() {
        if let Ok(Some(b)) = state.store.build(id).await {
            builds.push(b);
        }
    }
    Html(html::build_list(&repo, &builds)).into_response()
}

async fn build_page(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, repo, number)): Path<(String, String, String)>,
) -> Response {
    let here = format!("/{owner}/{repo}/{number}");
    let repo = match visible_repo(&state, &viewer, &owner, &repo, &here).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let Ok(number) = number.parse::<i64>() else {
        return not_found("Build numbers are numbers.");
    };
    let Ok(Some(build)) = state.store.build_by_number(repo.info.id, number).await else {
        return not_found(&format!("{} has no build #{number}.", repo.slug()));
    };
    let stages = state.store.stages(&build).await.unwrap_or_default();
    let mut logs = Vec::new();
    for stage in &stages {
        for step in &stage.steps {
            let tail = state.logs.tail(stage.id, step.number, PAGE_LOG_LINES).await.unwrap_or_default();
            logs.push(((stage.number, step.number), tail));
        }
    }
    Html(html::build_page(&repo, &build, &stages, &logs)).into_response()
}
