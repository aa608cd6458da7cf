//! Build endpoints: lists, single builds, logs, restart and cancel.

use super::shapes::BuildJson;
use super::{ApiError, ApiResult, ApiState, Viewer, readable_repo};
use crate::ids::{DeliveryId, Sha};
use crate::lifecycle::StartError;
use crate::model::{BuildRequest, Event};
use crate::store::{Build, LogLine, Repo};
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Parameters one API-created build may carry: steps get each as an
/// environment variable, and the build record keeps them (Drone sets no
/// limit; this keeps a build record small).
pub const MAX_PARAMS: usize = 50;

/// The longest parameter value, in bytes (the same reason).
pub const MAX_PARAM_BYTES: usize = 4096;

/// Git refuses ref names longer than this filesystem's name limit; so do we.
pub const MAX_BRANCH_BYTES: usize = 255;

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

/// POST /api/repos/{owner}/{name}/builds (`branch`, `commit`, and any other
/// query parameter as a build parameter, as Drone's `drone build create`):
/// a `custom` build of the branch's head, or of `commit`; answers the build.
pub async fn create(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiResult<Json<BuildJson>> {
    if !viewer.admin {
        return Err(ApiError::unauthorized());
    }
    let repo = readable_repo(&state, &viewer, &owner, &name).await?;
    let request = build_request(&repo, query)?;
    let nonce: u64 = rand::random();
    let delivery = DeliveryId(format!("api-{}-{nonce:016x}", repo.info.id));
    match state.planner.create(&repo, &request, delivery).await {
        Ok(Some(build)) => with_stages(&state, &build).await,
        Ok(None) => Err(ApiError::bad_request(format!("no pipeline of .drone.yml runs for a custom build of {}", request.branch))),
        Err(StartError::NotBuildable(message)) => Err(ApiError(axum::http::StatusCode::NOT_FOUND, message)),
        Err(e) => {
            tracing::warn!(error = %e, "creating a build failed");
            Err(ApiError(axum::http::StatusCode::BAD_GATEWAY, format!("creating the build failed: {e}")))
        }
    }
}

/// The `custom` build a create request's query asks for, checked.
fn build_request(repo: &Repo, query: Vec<(String, String)>) -> ApiResult<BuildRequest> {
    let (mut branch, mut commit, mut params) = (None, None, BTreeMap::new());
    for (key, value) in query {
        match key.as_str() {
            "branch" => branch = Some(value),
            "commit" => commit = Some(value),
            "access_token" => {}
            _ => {
                check_param(&key, &value)?;
                params.insert(key, value);
            }
        }
    }
    if params.len() > MAX_PARAMS {
        return Err(ApiError::bad_request(format!("at most {MAX_PARAMS} parameters, got {}", params.len())));
    }
    let branch = branch.filter(|b| !b.is_empty()).unwrap_or_else(|| repo.info.default_branch.clone());
    check_branch(&branch)?;
    let commit = match commit.filter(|c| !c.is_empty()) {
        Some(sha) if sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()) => Some(Sha(sha.to_ascii_lowercase())),
        Some(other) => return Err(ApiError::bad_request(format!("commit must be a full 40-digit sha, got {other:?}"))),
        None => None,
    };
    Ok(BuildRequest { event: Event::Custom, branch, commit, params, cron: String::new(), by: "admin".to_string() })
}

/// A branch name git would accept (`git check-ref-format`'s main rules).
pub fn check_branch(branch: &str) -> ApiResult<()> {
    let bad = branch.is_empty()
        || branch.len() > MAX_BRANCH_BYTES
        || branch.starts_with(['-', '/'])
        || branch.ends_with(['/', '.'])
        || branch.contains("..")
        || branch.contains("@{")
        || branch.bytes().any(|b| b.is_ascii_control() || b" ~^:?*[\\".contains(&b));
    if bad { Err(ApiError::bad_request(format!("{branch:?} is not a branch name"))) } else { Ok(()) }
}

/// A build parameter becomes an environment variable: a shell name that
/// does not replace one greenlight sets (`DRONE_*`, `CI_*`, `PATH`, `HOME`).
fn check_param(key: &str, value: &str) -> ApiResult<()> {
    let shell_name = key.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !shell_name {
        return Err(ApiError::bad_request(format!("parameter {key:?} is not an environment variable name (letters, digits, _)")));
    }
    let upper = key.to_ascii_uppercase();
    if upper.starts_with("DRONE") || upper.starts_with("CI_") || ["CI", "PATH", "HOME"].contains(&upper.as_str()) {
        return Err(ApiError::bad_request(format!("parameter {key} would replace a variable greenlight sets")));
    }
    if value.len() > MAX_PARAM_BYTES || value.contains('\0') {
        return Err(ApiError::bad_request(format!("parameter {key}: at most {MAX_PARAM_BYTES} bytes, no NUL")));
    }
    Ok(())
}
