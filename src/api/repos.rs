//! The user and repository endpoints.

use super::shapes::{BuildJson, RepoJson, UserJson};
use super::{ApiError, ApiResult, ApiState, Viewer, readable_repo};
use crate::store::{Build, Repo};
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

/// How many builds `/api/user/builds` lists, as Drone.
pub const RECENT_BUILDS: usize = 25;

/// How many recent builds `/api/builds/incomplete` looks through.
pub const INCOMPLETE_SCAN: usize = 500;

/// 401 unless the caller is the admin.
pub(super) fn require_admin(viewer: &Viewer) -> ApiResult<()> {
    if viewer.admin { Ok(()) } else { Err(ApiError::unauthorized()) }
}

/// A repository with its counter, and optionally a build, as Drone shows it.
pub async fn repo_json(state: &ApiState, repo: &Repo, build: Option<BuildJson>) -> ApiResult<RepoJson> {
    let active = repo.active && !state.store.is_repo_deactivated(repo.info.id).await?;
    let mut json = RepoJson::new(repo, state.store.repo_counter(repo.info.id).await?, active);
    json.build = build;
    Ok(json)
}

/// The newest build of a repository, if any.
pub async fn latest_build(state: &ApiState, repo: &Repo) -> ApiResult<Option<Build>> {
    Ok(state.store.builds_page(repo.info.id, None, 0, 1).await?.pop())
}

/// GET /api/user
pub async fn user(viewer: Viewer) -> ApiResult<Json<UserJson>> {
    require_admin(&viewer)?;
    Ok(Json(UserJson::admin()))
}

/// The flags of `/api/user/repos`: 2.x's `latest`, 0.8's `all` and `flush`.
#[derive(Deserialize)]
pub struct UserReposQuery {
    latest: Option<String>,
    all: Option<String>,
    flush: Option<String>,
}

/// GET /api/user/repos: every repository, as Drone 2.x lists them
/// (`?latest=true` adds each one's newest build); `?flush=true` first asks
/// GitHub what the App's installations cover (Drone 0.8's sync), and
/// `?all=false` keeps only the active ones (0.8's list without `all`).
pub async fn user_repos(State(state): State<ApiState>, viewer: Viewer, Query(q): Query<UserReposQuery>) -> ApiResult<Json<Vec<RepoJson>>> {
    require_admin(&viewer)?;
    let latest = flag("latest", &q.latest)?.unwrap_or(false);
    let all = flag("all", &q.all)?.unwrap_or(true);
    let repos = if flag("flush", &q.flush)?.unwrap_or(false) { sync(&state).await? } else { state.store.repos().await? };
    let mut out = Vec::new();
    for repo in repos {
        let build = if latest { latest_build(&state, &repo).await?.map(|b| BuildJson::new(&b)) } else { None };
        let json = repo_json(&state, &repo, build).await?;
        if all || json.active {
            out.push(json);
        }
    }
    Ok(Json(out))
}

/// Asks GitHub which repositories the App's installations cover now and
/// records that (new ones appear, removed ones turn inactive); returns
/// every repository.
pub async fn sync(state: &ApiState) -> ApiResult<Vec<Repo>> {
    let installed = state.installations.repos().await.map_err(|e| {
        tracing::warn!(error = %e, "listing the App's installations failed");
        ApiError(axum::http::StatusCode::BAD_GATEWAY, format!("cannot list the App's repositories on GitHub: {e}"))
    })?;
    Ok(state.store.apply_installed_repos(&installed, chrono::Utc::now().timestamp()).await?)
}

/// A boolean query flag `name` as Drone reads one (Go's `strconv.ParseBool`);
/// anything else is a 400 naming it.
pub fn flag(name: &str, value: &Option<String>) -> ApiResult<Option<bool>> {
    match value.as_deref() {
        None | Some("") => Ok(None),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(Some(true)),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(Some(false)),
        Some(other) => Err(ApiError::bad_request(format!("{name}: expected true or false, got {other:?}"))),
    }
}

async fn with_repos(state: &ApiState, builds: Vec<Build>) -> ApiResult<Vec<RepoJson>> {
    let mut out = Vec::new();
    for build in builds {
        if let Some(repo) = state.store.repo(build.repo.id).await? {
            out.push(repo_json(state, &repo, Some(BuildJson::new(&build))).await?);
        }
    }
    Ok(out)
}

/// GET /api/user/builds: the 25 most recent builds, each inside its repository.
pub async fn user_builds(State(state): State<ApiState>, viewer: Viewer) -> ApiResult<Json<Vec<RepoJson>>> {
    require_admin(&viewer)?;
    let builds = state.store.recent_builds(0, RECENT_BUILDS).await?;
    Ok(Json(with_repos(&state, builds).await?))
}

/// GET /api/builds/incomplete: pending and running builds, each inside its repository.
pub async fn incomplete(State(state): State<ApiState>, viewer: Viewer) -> ApiResult<Json<Vec<RepoJson>>> {
    require_admin(&viewer)?;
    let builds = state.store.recent_builds(0, INCOMPLETE_SCAN).await?.into_iter().filter(|b| !b.status.is_done()).take(50).collect();
    Ok(Json(with_repos(&state, builds).await?))
}

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<String>,
    per_page: Option<String>,
}

/// GET /api/repos (admin): every repository, by slug, paginated.
pub async fn all_repos(State(state): State<ApiState>, viewer: Viewer, Query(q): Query<PageQuery>) -> ApiResult<Json<Vec<RepoJson>>> {
    require_admin(&viewer)?;
    let page = q.page.and_then(|p| p.parse::<usize>().ok()).filter(|p| *p > 0).unwrap_or(1);
    let per_page = q.per_page.and_then(|p| p.parse::<usize>().ok()).filter(|p| *p > 0).unwrap_or(super::builds::DEFAULT_PER_PAGE);
    let mut out = Vec::new();
    for repo in state.store.repos().await?.iter().skip((page - 1) * per_page).take(per_page) {
        out.push(repo_json(&state, repo, None).await?);
    }
    Ok(Json(out))
}

/// GET /api/repos/{owner}/{name}
pub async fn repo(State(state): State<ApiState>, viewer: Viewer, Path((owner, name)): Path<(String, String)>) -> ApiResult<Json<RepoJson>> {
    let repo = readable_repo(&state, &viewer, &owner, &name).await?;
    Ok(Json(repo_json(&state, &repo, None).await?))
}

#[derive(Deserialize)]
pub struct RepoPatch {
    protected: Option<bool>,
}

/// PATCH /api/repos/{owner}/{name} (admin): `protected` makes pull requests
/// from forks wait for approval; other settings are accepted and not changed.
pub async fn update_repo(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Json(patch): Json<RepoPatch>,
) -> ApiResult<Json<RepoJson>> {
    require_admin(&viewer)?;
    let mut repo = readable_repo(&state, &viewer, &owner, &name).await?;
    if let Some(protected) = patch.protected {
        repo.protected = protected;
        state.store.save_repo(&repo).await?;
    }
    Ok(Json(repo_json(&state, &repo, None).await?))
}
