//! Drone's cron endpoints (admin token required): a repository's scheduled
//! builds, and running one now.

use super::builds::check_branch;
use super::secrets::admin_repo;
use super::shapes::BuildJson;
use super::{ApiError, ApiResult, ApiState, Viewer};
use crate::cron::SaveError;
use crate::ids::DeliveryId;
use crate::model::{CronJob, ScheduledCron};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The longest cron job name (Drone's names are slugs; this keeps the
/// delivery ids and Redis fields that carry it short).
pub const MAX_NAME_CHARS: usize = 50;

/// Drone's Cron (`core/cron.go`): times in Unix seconds.
#[derive(Serialize)]
#[allow(missing_docs)]
pub struct CronJson {
    pub id: i64,
    pub repo_id: i64,
    pub name: String,
    pub expr: String,
    pub next: i64,
    pub prev: i64,
    pub event: &'static str,
    pub branch: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target: String,
    pub disabled: bool,
    pub created: i64,
    pub updated: i64,
    pub version: i64,
}

impl CronJson {
    fn new(cron: &ScheduledCron) -> Self {
        let job = &cron.job;
        Self {
            id: job.id,
            repo_id: job.repo_id.0,
            name: job.name.clone(),
            expr: job.expr.clone(),
            next: if cron.next == i64::MAX { 0 } else { cron.next },
            prev: cron.prev,
            // Drone records cron jobs with event `push`; their builds' event is `cron`.
            event: "push",
            branch: job.branch.clone(),
            target: job.target.clone(),
            disabled: job.disabled,
            created: job.created,
            updated: job.updated,
            version: job.version,
        }
    }
}

/// The body of `POST .../cron`.
#[derive(Deserialize)]
pub struct NewCron {
    name: String,
    expr: String,
    branch: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    disabled: bool,
}

/// The body of `PATCH .../cron/{name}`: what it names changes.
#[derive(Deserialize)]
pub struct CronPatch {
    expr: Option<String>,
    branch: Option<String>,
    target: Option<String>,
    disabled: Option<bool>,
}

fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok { Ok(()) } else { Err(ApiError::bad_request(format!("cron name {name:?}: 1 to {MAX_NAME_CHARS} letters, digits, -, _ or ."))) }
}

/// Checks a job and stores it with its next tick after now.
async fn save(state: &ApiState, job: &CronJob) -> ApiResult<Json<CronJson>> {
    check_branch(&job.branch)?;
    match crate::cron::save(&state.store, job, state.clock.now()).await {
        Ok(()) => {}
        Err(SaveError::Schedule(e)) => return Err(ApiError::bad_request(e.to_string())),
        Err(SaveError::Store(e)) => return Err(e.into()),
    }
    let saved = state.store.cron(job.repo_id, &job.name).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(CronJson::new(&saved)))
}

/// GET /api/repos/{o}/{n}/cron
pub async fn list(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<Vec<CronJson>>> {
    let repo = admin_repo(&state, &viewer, &owner, &name).await?;
    Ok(Json(state.store.crons(repo.info.id).await?.iter().map(CronJson::new).collect()))
}

/// GET /api/repos/{o}/{n}/cron/{cron}
pub async fn find(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name, cron)): Path<(String, String, String)>,
) -> ApiResult<Json<CronJson>> {
    let repo = admin_repo(&state, &viewer, &owner, &name).await?;
    let found = state.store.cron(repo.info.id, &cron).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(CronJson::new(&found)))
}

/// POST /api/repos/{o}/{n}/cron
pub async fn create(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Json(new): Json<NewCron>,
) -> ApiResult<Json<CronJson>> {
    let repo = admin_repo(&state, &viewer, &owner, &name).await?;
    check_name(&new.name)?;
    if state.store.cron(repo.info.id, &new.name).await?.is_some() {
        return Err(ApiError(StatusCode::CONFLICT, format!("cron job {} exists; PATCH it instead", new.name)));
    }
    let now = state.clock.now().timestamp();
    let job = CronJob {
        id: state.store.allocate_ids("cron", 1).await?,
        repo_id: repo.info.id,
        name: new.name,
        expr: new.expr,
        branch: new.branch,
        target: new.target,
        disabled: new.disabled,
        created: now,
        updated: now,
        version: 1,
    };
    save(&state, &job).await
}

/// PATCH /api/repos/{o}/{n}/cron/{cron}
pub async fn update(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name, cron)): Path<(String, String, String)>,
    Json(patch): Json<CronPatch>,
) -> ApiResult<Json<CronJson>> {
    let repo = admin_repo(&state, &viewer, &owner, &name).await?;
    let mut job = state.store.cron(repo.info.id, &cron).await?.ok_or_else(ApiError::not_found)?.job;
    job.expr = patch.expr.unwrap_or(job.expr);
    job.branch = patch.branch.unwrap_or(job.branch);
    job.target = patch.target.unwrap_or(job.target);
    job.disabled = patch.disabled.unwrap_or(job.disabled);
    job.updated = state.clock.now().timestamp();
    job.version += 1;
    save(&state, &job).await
}

/// DELETE /api/repos/{o}/{n}/cron/{cron}
pub async fn delete(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name, cron)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let repo = admin_repo(&state, &viewer, &owner, &name).await?;
    if state.store.delete_cron(repo.info.id, &cron).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found())
    }
}

/// POST /api/repos/{o}/{n}/cron/{cron}: runs the job now (its schedule
/// unchanged); answers the build.
pub async fn run_now(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name, cron)): Path<(String, String, String)>,
) -> ApiResult<Json<BuildJson>> {
    let repo = admin_repo(&state, &viewer, &owner, &name).await?;
    let found = state.store.cron(repo.info.id, &cron).await?.ok_or_else(ApiError::not_found)?;
    let nonce: u64 = rand::random();
    let delivery = DeliveryId(format!("cron-{}-{}-now-{nonce:016x}", repo.info.id.0, found.job.name));
    match state.scheduler.run(&found.job, delivery).await {
        Ok(Some(build)) => Ok(Json(BuildJson::new(&build))),
        Ok(None) => Err(ApiError::bad_request(format!("no pipeline of .drone.yml runs for a cron build of {}", found.job.branch))),
        Err(e) => Err(ApiError(StatusCode::BAD_GATEWAY, format!("running cron job {} failed: {e}", found.job.name))),
    }
}
