//! The pages GitHub links to: `/{owner}/{repo}/{number}` (a build, its
//! stages, steps and logs, following the log live) and `/{owner}/{repo}`
//! (the build list). Server-rendered and readable without JavaScript; a
//! small script follows the API's event streams to update statuses and
//! append log lines without a reload. Private repositories need a login
//! session (`/login`).
//!
//! A build page is the one unauthenticated view whose size a build chooses
//! (its logs), so what it embeds is capped in bytes, not only in lines:
//! escaping can grow a log line fourfold, and 4 steps of 500 lines of
//! 16 KiB once made each view 131 MB. A page embeds at most
//! [`PAGE_STEP_LOG_BYTES`] of each step's log and [`PAGE_LOG_BYTES`] in
//! all, read from Redis already cut (`Logs::tail_within`); the rest is
//! behind each step's full-log link.

pub mod html;
mod login;
mod markdown;

use crate::api::{ApiState, Viewer};
use crate::store::{LogTail, Repo, Stage};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use tower_http::set_header::SetResponseHeaderLayer;

/// A step's log on the page shows at most this many lines; the rest is a link away.
pub const PAGE_LOG_LINES: usize = 500;

/// A page embeds at most this many bytes of one step's log (as stored, so
/// at least its text's bytes; HTML escaping makes it at most 6 times more).
pub const PAGE_STEP_LOG_BYTES: usize = 64 * 1024;

/// A page embeds at most this many bytes of log in all: with many steps,
/// each gets an equal share (below [`PAGE_STEP_LOG_BYTES`]). With escaping,
/// a page stays under 1.6 MB whatever its logs hold.
pub const PAGE_LOG_BYTES: usize = 256 * 1024;

/// A page embeds at most this many bytes of job summaries' Markdown in
/// all (a step may keep 1 MiB): the steps' summaries in order, the one
/// reaching the cap cut and marked so. Rendered and sanitized, a byte of
/// Markdown is a few of HTML, so the page stays a few MB at most.
pub const PAGE_SUMMARY_BYTES: usize = 256 * 1024;

/// The build list shows this many builds.
pub const PAGE_BUILDS: usize = 50;

/// The page routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", axum::routing::post(login::logout))
        .route("/{owner}/{repo}", get(build_list))
        .route("/{owner}/{repo}/{number}", get(build_page))
        // A logged-in page has buttons: no other site may frame it (and
        // have them clicked), and no shared cache may keep it (its CSRF token).
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("frame-ancestors 'none'")))
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")))
        .with_state(state)
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, Html(html::page("Not found", &format!("<p>{}</p>", html::escape(what))))).into_response()
}

/// The repository, or the response to send instead: login for a guest
/// asking for a private one or an unknown one (the same answer, so a guest
/// cannot tell which private repositories exist), 404 for the admin.
async fn visible_repo(state: &ApiState, viewer: &Viewer, owner: &str, repo: &str, here: &str) -> Result<Repo, Response> {
    match state.store.repo_by_slug(&format!("{owner}/{repo}")).await {
        Ok(Some(r)) if !r.info.private || viewer.admin => Ok(r),
        Ok(None) if viewer.admin => Err(not_found(&format!("greenlight has no repository {owner}/{repo}."))),
        Ok(_) => Err(Redirect::to(&format!("/login?next={}", crate::text::percent_encode(here, b"/"))).into_response()),
        Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {e}")).into_response()),
    }
}

async fn build_list(State(state): State<ApiState>, viewer: Viewer, Path((owner, repo)): Path<(String, String)>) -> Response {
    let here = format!("/{owner}/{repo}");
    let repo = match visible_repo(&state, &viewer, &owner, &repo, &here).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let builds = state.store.builds_page(repo.info.id, None, 0, PAGE_BUILDS).await.unwrap_or_default();
    Html(html::build_list(&repo, &builds, badge_url(&state, &viewer, &repo).as_deref())).into_response()
}

/// The badge URL an admin may put in a README: with the repository's badge
/// key when it is private (guests see no private repository's badge).
fn badge_url(state: &ApiState, viewer: &Viewer, repo: &Repo) -> Option<String> {
    if !viewer.admin {
        return None;
    }
    let url = format!("{}/api/badges/{}/status.svg", state.public_url.trim_end_matches('/'), repo.slug());
    match repo.info.private {
        false => Some(url),
        true => crate::api::badge_key(state, repo.info.id).map(|key| format!("{url}?key={key}")),
    }
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
        return missing_build(&state, &repo, number).await;
    };
    let stages = state.store.stages(&build).await.unwrap_or_default();
    let logs = step_logs(&state, &stages).await;
    let outputs = step_outputs(&state, &build, &stages).await;
    let csrf = viewer.session.as_ref().map(|s| s.csrf.0.as_str());
    Html(html::build_page(&repo, &build, &stages, &logs, &outputs, csrf)).into_response()
}

/// The 404 of a build that is not there: pruned (its number was given
/// out, so it existed; retention deleted it), or never was.
async fn missing_build(state: &ApiState, repo: &Repo, number: i64) -> Response {
    let given_out = state.store.repo_counter(repo.info.id).await.unwrap_or(0);
    if (1..=given_out).contains(&number) {
        return not_found(&format!(
            "Build #{number} of {} was pruned: greenlight keeps each repository's newest builds \
             (GREENLIGHT_KEEP_BUILDS) for a while (GREENLIGHT_KEEP_DAYS), and this one was older.",
            repo.slug()
        ));
    }
    not_found(&format!("{} has no build #{number}.", repo.slug()))
}

/// The build's artifacts and its steps' summaries, within [`PAGE_SUMMARY_BYTES`].
async fn step_outputs(state: &ApiState, build: &crate::store::Build, stages: &[Stage]) -> html::Outputs {
    let mut outputs = html::Outputs { artifacts: state.store.artifacts(build.id).await.unwrap_or_default(), ..Default::default() };
    let mut room = PAGE_SUMMARY_BYTES;
    for stage in stages {
        for mut summary in state.store.summaries(stage.id).await.unwrap_or_default() {
            if summary.markdown.len() > room {
                summary.markdown = crate::github::types::truncate_bytes(&summary.markdown, room).to_string();
                summary.cut = true;
            }
            room -= summary.markdown.len();
            outputs.summaries.push((stage.number, summary));
        }
    }
    outputs
}

/// Each step's log tail within the page's caps: an equal share of
/// [`PAGE_LOG_BYTES`], at most [`PAGE_STEP_LOG_BYTES`] and [`PAGE_LOG_LINES`].
async fn step_logs(state: &ApiState, stages: &[Stage]) -> Vec<((i64, i64), LogTail)> {
    let steps: usize = stages.iter().map(|s| s.steps.len()).sum();
    let share = (PAGE_LOG_BYTES / steps.max(1)).min(PAGE_STEP_LOG_BYTES);
    let mut logs = Vec::with_capacity(steps);
    for stage in stages {
        for step in &stage.steps {
            let mut tail = state.logs.tail_within(stage.id, step.number, share).await.unwrap_or_default();
            tail.lines.drain(..tail.lines.len().saturating_sub(PAGE_LOG_LINES));
            logs.push(((stage.number, step.number), tail));
        }
    }
    logs
}
