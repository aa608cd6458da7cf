//! Artifact endpoints: a build's artifacts listed, and each downloaded,
//! under the same access rules as its logs.

use super::builds::{find_build, number};
use super::{ApiError, ApiResult, ApiState, Viewer};
use crate::blobs::Blobs;
use crate::store::Artifact;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One artifact as the API lists it.
#[derive(Debug, Serialize)]
pub struct ArtifactJson {
    /// Its path in the workspace.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The stage's number.
    pub stage: i64,
    /// The step's name.
    pub step: String,
    /// Where it downloads from (absolute).
    pub url: String,
}

/// The path that downloads `artifact` of build `number` of `slug`, below
/// the public URL: each part of its name made safe as [`Blobs::part`] does.
pub fn download_path(slug: &str, number: i64, artifact: &Artifact) -> String {
    let name: Vec<String> = artifact.name.split('/').map(Blobs::part).collect();
    format!("/api/repos/{slug}/builds/{number}/artifacts/{}/{}/{}", artifact.stage, artifact.step_number, name.join("/"))
}

/// GET /api/repos/{owner}/{name}/builds/{number}/artifacts
pub async fn list(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name, raw)): Path<(String, String, String)>,
) -> ApiResult<Json<Vec<ArtifactJson>>> {
    let (repo, build) = find_build(&state, &viewer, &owner, &name, &raw).await?;
    let artifacts = state.store.artifacts(build.id).await?;
    let base = state.public_url.trim_end_matches('/');
    Ok(Json(
        artifacts
            .into_iter()
            .map(|a| ArtifactJson {
                url: format!("{base}{}", download_path(&repo.slug(), build.number, &a)),
                name: a.name,
                size: a.size,
                stage: a.stage,
                step: a.step,
            })
            .collect(),
    ))
}

/// GET /api/repos/{owner}/{name}/builds/{number}/artifacts/{stage}/{step}/{*name}:
/// the file, as an attachment.
pub async fn download(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name, raw, stage, step, file)): Path<(String, String, String, String, String, String)>,
) -> ApiResult<Response> {
    let (_, build) = find_build(&state, &viewer, &owner, &name, &raw).await?;
    let (stage, step) = (number(&stage, "stage")?, number(&step, "step")?);
    let artifacts = state.store.artifacts(build.id).await?;
    let artifact =
        artifacts.iter().find(|a| a.stage == stage && a.step_number == step && a.name == file).ok_or_else(ApiError::not_found)?;
    let blobs = state.blobs.scoped(crate::blobs::ARTIFACTS);
    if let Some(disk) = artifact.disk.as_ref().filter(|d| blobs.disk().as_ref() != Some(d)) {
        return Err(ApiError(
            StatusCode::BAD_GATEWAY,
            format!(
                "{} is kept on another machine's disk ({disk}); this process cannot serve it. \
                 Set GREENLIGHT_LOG_STORE=s3://… on every process so artifacts go to a shared bucket.",
                artifact.name
            ),
        ));
    }
    let opened = blobs.open(&artifact.key).await.map_err(|e| {
        tracing::warn!(error = format!("{e:#}"), "cannot read an artifact");
        ApiError(StatusCode::BAD_GATEWAY, format!("cannot read {} from {}", artifact.name, blobs.describe()))
    })?;
    let Some((size, stream)) = opened else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("{} is recorded but its file is gone from {}", artifact.name, blobs.describe()),
        ));
    };
    let file_name = artifact.name.rsplit('/').next().unwrap_or("artifact").replace(['"', '\\'], "_");
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::CONTENT_LENGTH, size.to_string()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", file_name.replace(|c: char| !c.is_ascii() || c.is_ascii_control(), "_")),
        ),
    ];
    Ok((headers, Body::from_stream(stream)).into_response())
}
