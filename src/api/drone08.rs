//! The routes only Drone 0.8 has (its feed, activating and deactivating a
//! repository, a proc's log), for the clients and guides written against
//! it. The routes both versions share answer 2.x's shapes with 0.8's
//! fields added (`shapes08`).

use super::repos::{flag, latest_build, repo_json, require_admin, sync};
use super::shapes::RepoJson;
use super::shapes08::{FeedJson, ProcLine, pids};
use super::{ApiError, ApiResult, ApiState, Viewer, readable_repo};
use crate::store::Repo;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

/// How many recent builds the feed without `latest` lists, as Drone 0.8's
/// `UserFeed` (`LIMIT 50`).
pub const FEED_BUILDS: usize = 50;

#[derive(Deserialize)]
pub struct FeedQuery {
    latest: Option<String>,
}

/// GET /api/user/feed: with `?latest=true`, each active repository joined
/// with its newest build's fields; otherwise the 50 most recent builds,
/// each joined with its repository.
pub async fn feed(State(state): State<ApiState>, viewer: Viewer, Query(q): Query<FeedQuery>) -> ApiResult<Json<Vec<FeedJson>>> {
    require_admin(&viewer)?;
    let deactivated = state.store.deactivated_repos().await?;
    let mut out = Vec::new();
    if flag("latest", &q.latest)?.unwrap_or(false) {
        for repo in state.store.repos().await?.into_iter().filter(|r| r.active && !deactivated.contains(&r.info.id)) {
            let build = latest_build(&state, &repo).await?;
            out.push(FeedJson::new(&repo, build.as_ref()));
        }
        return Ok(Json(out));
    }
    for build in state.store.recent_builds(0, FEED_BUILDS).await? {
        if let Some(repo) = state.store.repo(build.repo.id).await? {
            out.push(FeedJson::new(&repo, Some(&build)));
        }
    }
    Ok(Json(out))
}

/// The repository `owner/name` if the App's installations cover it, asking
/// GitHub when greenlight's record does not say so.
async fn reachable_repo(state: &ApiState, owner: &str, name: &str) -> ApiResult<Repo> {
    let slug = format!("{owner}/{name}");
    if let Some(repo) = state.store.repo_by_slug(&slug).await?.filter(|r| r.active) {
        return Ok(repo);
    }
    sync(state).await?;
    let found = state.store.repo_by_slug(&slug).await?.filter(|r| r.active);
    found.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("the App is not installed on {slug}")))
}

/// POST /api/repos/{owner}/{name} (admin): activates a repository the App
/// can reach, so its pushes and pull requests build; answers it.
pub async fn activate(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<RepoJson>> {
    require_admin(&viewer)?;
    let repo = reachable_repo(&state, &owner, &name).await?;
    switch(&state, &repo, true).await
}

/// DELETE /api/repos/{owner}/{name} (admin): deactivates a repository: no
/// build starts for it until it is activated again; answers it.
pub async fn deactivate(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<RepoJson>> {
    require_admin(&viewer)?;
    let repo = readable_repo(&state, &viewer, &owner, &name).await?;
    switch(&state, &repo, false).await
}

/// Switches a repository's builds on or off; answers the repository.
async fn switch(state: &ApiState, repo: &Repo, enabled: bool) -> ApiResult<Json<RepoJson>> {
    state.store.set_repo_enabled(repo.info.id, enabled).await?;
    tracing::info!(repo = %repo.slug(), enabled, "repository switched through the API");
    Ok(Json(repo_json(state, repo, None).await?))
}

/// GET /api/repos/{owner}/{name}/logs/{build}/{pid}: a proc's lines as
/// Drone 0.8 serves them; a stage's pid answers all its steps' lines, step
/// after step.
pub async fn proc_logs(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name, raw, pid)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Vec<ProcLine>>> {
    let (_, build) = super::builds::find_build(&state, &viewer, &owner, &name, &raw).await?;
    let pid = super::builds::number(&pid, "pid")?;
    let stages = state.store.stages(&build).await?;
    for (stage, (root, children)) in stages.iter().zip(pids(&stages)) {
        let steps: Vec<_> = match children.iter().position(|c| *c == pid) {
            _ if root == pid => stage.steps.iter().collect(),
            Some(i) => vec![&stage.steps[i]],
            None => continue,
        };
        let mut lines = Vec::new();
        for step in steps {
            lines.extend(state.logs.read(stage.id, step.number).await?.into_iter().map(|l| ProcLine::new(&step.name, l)));
        }
        return Ok(Json(lines));
    }
    Err(ApiError::not_found())
}
