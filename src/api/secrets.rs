//! Drone's secrets endpoints (admin token required; values are never returned).

use super::{ApiError, ApiResult, ApiState, Viewer, readable_repo};
use crate::secrets::{SecretError, SecretInfo};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Drone's Secret, without its data.
#[derive(Serialize)]
pub struct SecretJson {
    pub id: i64,
    pub repo_id: i64,
    pub name: String,
    pub pull_request: bool,
    pub pull_request_push: bool,
}

fn json(repo: i64, info: &SecretInfo) -> SecretJson {
    SecretJson { id: 0, repo_id: repo, name: info.name.clone(), pull_request: info.pull_request, pull_request_push: info.pull_request }
}

#[derive(Deserialize)]
pub struct NewSecret {
    name: String,
    data: String,
    #[serde(default)]
    pull_request: bool,
}

#[derive(Deserialize)]
pub struct SecretPatch {
    data: Option<String>,
    pull_request: Option<bool>,
}

impl From<SecretError> for ApiError {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::NoKey => ApiError(StatusCode::NOT_IMPLEMENTED, e.to_string()),
            SecretError::BadName(_) | SecretError::TooShort => ApiError::bad_request(e.to_string()),
            SecretError::Undecryptable(_) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            SecretError::Store(e) => e.into(),
        }
    }
}

/// The repository of an admin-only route: 401 for anyone else.
pub(super) async fn admin_repo(state: &ApiState, viewer: &Viewer, owner: &str, name: &str) -> ApiResult<crate::store::Repo> {
    if !viewer.admin {
        return Err(ApiError::unauthorized());
    }
    readable_repo(state, viewer, owner, name).await
}

/// GET /api/repos/{o}/{n}/secrets
pub async fn list(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<Vec<SecretJson>>> {
    let repo = admin_repo(&state, &viewer, &owner, &name).await?;
    Ok(Json(state.secrets.list(repo.info.id).await?.iter().map(|i| json(repo.info.id.0, i)).collect()))
}

/// GET /api/repos/{o}/{n}/secrets/{secret}
pub async fn find(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name, secret)): Path<(String, String, String)>,
) -> ApiResult<Json<SecretJson>> {
    let repo = admin_repo(&state, &viewer, &owner, &name).await?;
    let info = state.secrets.info(repo.info.id, &secret).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(json(repo.info.id.0, &info)))
}

/// POST /api/repos/{o}/{n}/secrets
pub async fn create(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Json(new): Json<NewSecret>,
) -> ApiResult<Json<SecretJson>> {
    let repo = admin_repo(&state, &viewer, &owner, &name).await?;
    let info = SecretInfo { name: new.name, pull_request: new.pull_request };
    state.secrets.put(repo.info.id, &info, &SecretString::from(new.data)).await?;
    Ok(Json(json(repo.info.id.0, &info)))
}

/// PATCH /api/repos/{o}/{n}/secrets/{secret}
pub async fn update(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name, secret)): Path<(String, String, String)>,
    Json(patch): Json<SecretPatch>,
) -> ApiResult<Json<SecretJson>> {
    let repo = admin_repo(&state, &viewer, &owner, &name).await?;
    let (mut info, value) = state.secrets.reveal(repo.info.id, &secret).await?.ok_or_else(ApiError::not_found)?;
    if let Some(flag) = patch.pull_request {
        info.pull_request = flag;
    }
    let value = patch.data.map(SecretString::from).unwrap_or(value);
    state.secrets.put(repo.info.id, &info, &value).await?;
    Ok(Json(json(repo.info.id.0, &info)))
}

/// DELETE /api/repos/{o}/{n}/secrets/{secret}
pub async fn delete(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name, secret)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let repo = admin_repo(&state, &viewer, &owner, &name).await?;
    if state.secrets.delete(repo.info.id, &secret).await? { Ok(StatusCode::NO_CONTENT.into_response()) } else { Err(ApiError::not_found()) }
}
