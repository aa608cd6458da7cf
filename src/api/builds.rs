//! Build endpoints: lists, single builds, logs, restart and cancel.

use super::shapes::BuildJson;
use super::{ApiError, ApiResult, ApiState, Viewer, readable_repo};
use crate::store::{Build, LogLine, Repo};
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

/// Drone's default page size.
pub const DEFAULT_PER_PAGE: usize = 25;

/// Drone's largest page size.
pub const MAX_PER_PAGE: usize = 100;

#[derive(Deserialize)]
pub struct ListQuery {
    page: Option<String>,
    per_page: Option<String>,
    branch: Option<String>,
    tag: Option<String>,
}

/// GET /api/repos/{owner}/{name}/builds (`page` 1-based, `per_page` 1–100, `branch`, `tag`)
pub async fn list(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<BuildJson>>> {
    let repo = readable_repo(&state, &viewer, &owner, &name).await?;
    let page = q.page.and_then(|p| p.parse::<usize>().ok()).filter(|p| *p > 0).unwrap_or(1);
    let per_page = q.per_page.and_then(|p| p.parse::<usize>().ok()).filter(|p| (1..=MAX_PER_PAGE).contains(p)).unwrap_or(DEFAULT_PER_PAGE);
    let wanted = q.branch.map(|b| format!("refs/heads/{b}")).or(q.tag.map(|t| format!("refs/tags/{t}")));
    let builds = state.store.builds_page(repo.info.id, wanted.as_deref(), (page - 1) * per_page, per_page).await?;
    Ok(Json(builds.iter().map(BuildJson::new).collect()))
}

#[derive(Deserialize)]
pub struct LatestQuery {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    branch: Option<String>,
}

/// The ref a `latest` or badge lookup means: `branch` wins over `ref`; the default branch otherwise.
pub fn wanted_ref(repo: &Repo, git_ref: Option<String>, branch: Option<String>) -> String {
    match (branch, git_ref) {
        (Some(b), _) if !b.is_empty() => format!("refs/heads/{b}"),
        (_, Some(r)) if !r.is_empty() => r,
        _ => format!("refs/heads/{}", repo.info.default_branch),
    }
}

/// The newest build of a repository on a ref.
pub async fn latest_on(state: &ApiState, repo: &Repo, git_ref: &str) -> ApiResult<Option<Build>> {
    Ok(state.store.builds_page(repo.info.id, Some(git_ref), 0, 1).await?.pop())
}

async fn with_stages(state: &ApiState, build: &Build) -> ApiResult<Json<BuildJson>> {
    let stages = state.store.stages(build).await?;
    Ok(Json(BuildJson::with_stages(build, &stages)))
}

/// GET /api/repos/{owner}/{name}/builds/latest (`ref` or `branch`)
pub async fn latest(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<LatestQuery>,
) -> ApiResult<Json<BuildJson>> {
    let repo = readable_repo(&state, &viewer, &owner, &name).await?;
    let wanted = wanted_ref(&repo, q.git_ref, q.branch);
    let build = latest_on(&state, &repo, &wanted).await?.ok_or_else(ApiError::not_found)?;
    with_stages(&state, &build).await
}

pub(super) fn number(raw: &str, what: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| ApiError::bad_request(format!("{what} must be a number, got {raw:?}")))
}

pub(super) async fn find_build(state: &ApiState, viewer: &Viewer, owner: &str, name: &str, raw: &str) -> ApiResult<(Repo, Build)> {
    let repo = readable_repo(state, viewer, owner, name).await?;
    let number = number(raw, "build")?;
    let build = state.store.build_by_number(repo.info.id, number).await?.ok_or_else(ApiError::not_found)?;
    Ok((repo, build))
}

/// GET /api/repos/{owner}/{name}/builds/{number}: the build with its stages and steps.
pub async fn find(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name, raw)): Path<(String, String, String)>,
) -> ApiResult<Json<BuildJson>> {
    let (_, build) = find_build(&state, &viewer, &owner, &name, &raw).await?;
    with_stages(&state, &build).await
}

/// GET /api/repos/{owner}/{name}/builds/{number}/logs/{stage}/{step}: the lines so far.
pub async fn logs(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name, raw, stage, step)): Path<(String, String, String, String, String)>,
) -> ApiResult<Json<Vec<LogLine>>> {
    let (_, build) = find_build(&state, &viewer, &owner, &name, &raw).await?;
    let (stage, step) = (number(&stage, "stage")?, number(&step, "step")?);
    let stages = state.store.stages(&build).await?;
    let stage = stages.iter().find(|s| s.number == stage).ok_or_else(ApiError::not_found)?;
    let step = stage.steps.iter().find(|s| s.number == step).ok_or_else(ApiError::not_found)?;
    Ok(Json(state.logs.read(stage.id, step.number).await?))
}

/// POST /api/repos/{owner}/{name}/builds/{number}: restart as a new build.
pub async fn restart(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name, raw)): Path<(String, String, String)>,
) -> ApiResult<Json<Option<BuildJson>>> {
    if !viewer.admin {
        return Err(ApiError::unauthorized());
    }
    let (repo, build) = find_build(&state, &viewer, &owner, &name, &raw).await?;
    let restarted = state.planner.restart(&repo, &build, "admin").await.map_err(|e| {
        tracing::warn!(error = %e, "restart failed");
        ApiError(axum::http::StatusCode::BAD_GATEWAY, format!("restart failed: {e}"))
    })?;
    match restarted {
        Some(new) => Ok(Json(Some(with_stages(&state, &new).await?.0))),
        None => Ok(Json(None)),
    }
}

/// DELETE /api/repos/{owner}/{name}/builds/{number}: cancel; answers the build.
pub async fn cancel(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name, raw)): Path<(String, String, String)>,
) -> ApiResult<Json<BuildJson>> {
    if !viewer.admin {
        return Err(ApiError::unauthorized());
    }
    let (_, build) = find_build(&state, &viewer, &owner, &name, &raw).await?;
    let cancelled = state.lifecycle.cancel(&build, "").await.map_err(|e| {
        tracing::warn!(error = %e, "cancel failed");
        ApiError(axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("cancel failed: {e}"))
    })?;
    with_stages(&state, &cancelled).await
}

/// POST /api/repos/{owner}/{name}/builds/{number}/approve/{stage}: runs a blocked stage (204).
pub async fn approve(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name, raw, stage)): Path<(String, String, String, String)>,
) -> ApiResult<axum::http::StatusCode> {
    if !viewer.admin {
        return Err(ApiError::unauthorized());
    }
    let (_, build) = find_build(&state, &viewer, &owner, &name, &raw).await?;
    let stage = number(&stage, "stage")?;
    match state.lifecycle.approve(&build, stage).await {
        Ok(true) => Ok(axum::http::StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::bad_request("cannot approve a stage that is not blocked")),
        Err(e) => Err(ApiError(axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("approve failed: {e}"))),
    }
}
