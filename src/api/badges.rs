//! Status badges (`status.svg`) and CCMenu's `cc.xml`.
//!
//! A badge needs no authentication for a public repository, as Drone's.
//! For a private one a guest gets what an unknown repository gets (the
//! `none` badge; 401 for `cc.xml`): a badge must not tell a guest that a
//! private repository or ref exists, nor how its builds went. The admin
//! token (or a login session) sees its badge, and so does `?key=` with the
//! repository's badge key: a README cannot hold the admin token (GitHub's
//! image proxy sends no cookie either), and a key shows one repository's
//! badges and nothing else. The key is derived from the admin token
//! (HMAC-SHA-256 of the repository id), so it changes when the token does;
//! the logged-in build list shows it.

use super::builds::{latest_on, wanted_ref};
use super::{ApiError, ApiResult, ApiState, Viewer, readable_repo};
use crate::ids::RepoId;
use crate::store::{Repo, Status};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The query of a badge: which ref, and the repository's badge key.
#[derive(Deserialize)]
pub struct BadgeQuery {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    branch: Option<String>,
    key: Option<String>,
}

/// The badge key of a repository (32 hex digits), when an admin token is
/// configured to derive it from.
pub fn badge_key(state: &ApiState, repo: RepoId) -> Option<String> {
    let token = state.token.as_ref()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(token.expose_secret().as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("greenlight badge key of repository {repo}").as_bytes());
    Some(hex::encode(&mac.finalize().into_bytes()[..16]))
}

/// The repository a badge request may see: readable by the viewer, or
/// private with its badge key given; otherwise what an unknown one gets.
async fn badge_repo(state: &ApiState, viewer: &Viewer, owner: &str, name: &str, key: Option<&str>) -> ApiResult<Repo> {
    let refused = match readable_repo(state, viewer, owner, name).await {
        Ok(repo) => return Ok(repo),
        Err(refused) => refused,
    };
    let Some(key) = key else { return Err(refused) };
    match state.store.repo_by_slug(&format!("{owner}/{name}")).await? {
        Some(repo) if badge_key(state, repo.info.id).is_some_and(|k| bool::from(k.as_bytes().ct_eq(key.as_bytes()))) => Ok(repo),
        _ => Err(refused),
    }
}

/// A shields-style badge: label "build", value coloured by state (Drone's five).
fn badge(value: &str, color: &str, width: u32) -> String {
    let value_width = width - 37;
    let value_x = 37 * 10 + value_width * 5;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20"><linearGradient id="b" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><mask id="a"><rect width="{width}" height="20" rx="3" fill="#fff"/></mask><g mask="url(#a)"><path fill="#555" d="M0 0h37v20H0z"/><path fill="{color}" d="M37 0h{value_width}v20H37z"/><path fill="url(#b)" d="M0 0h{width}v20H0z"/></g><g fill="#fff" text-anchor="middle" font-family="DejaVu Sans,Verdana,Geneva,sans-serif" font-size="11"><text x="19.5" y="15" fill="#010101" fill-opacity=".3">build</text><text x="19.5" y="14">build</text><text x="{vx}" y="15" fill="#010101" fill-opacity=".3">{value}</text><text x="{vx}" y="14">{value}</text></g></svg>"##,
        vx = value_x as f64 / 10.0
    )
}

/// GET /api/badges/{owner}/{name}/status.svg (`ref` or `branch`; default branch otherwise)
pub async fn status_svg(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<BadgeQuery>,
) -> Response {
    let status = async {
        let repo = badge_repo(&state, &viewer, &owner, &name, q.key.as_deref()).await.ok()?;
        let wanted = wanted_ref(&repo, q.git_ref, q.branch);
        latest_on(&state, &repo, &wanted).await.ok()?.map(|b| b.status)
    }
    .await;
    let svg = match status {
        None => badge("none", "#9f9f9f", 75),
        Some(Status::Pending | Status::Running | Status::Blocked | Status::WaitingOnDependencies) => badge("started", "#dfb317", 87),
        Some(Status::Success) => badge("success", "#4c1", 91),
        Some(Status::Error) => badge("error", "#9f9f9f", 76),
        Some(_) => badge("failure", "#e05d44", 83),
    };
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-cache, no-store, max-age=0, must-revalidate, value"),
            (header::EXPIRES, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        svg,
    )
        .into_response()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// GET /api/badges/{owner}/{name}/cc.xml: the newest build, for CCMenu.
pub async fn cc_xml(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<BadgeQuery>,
) -> ApiResult<Response> {
    let repo = badge_repo(&state, &viewer, &owner, &name, q.key.as_deref()).await?;
    let counter = state.store.repo_counter(repo.info.id).await?;
    let build = state.store.build_by_number(repo.info.id, counter).await?.ok_or_else(ApiError::not_found)?;
    let (activity, last) = match build.status {
        Status::Pending | Status::Running | Status::Blocked | Status::WaitingOnDependencies => ("Building", "Unknown"),
        Status::Success => ("Sleeping", "Success"),
        Status::Failure => ("Sleeping", "Failure"),
        _ => ("Sleeping", "Exception"),
    };
    let time = chrono::DateTime::from_timestamp(build.started.max(build.created), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Projects><Project name="{}" activity="{activity}" lastBuildStatus="{last}" lastBuildLabel="{}" lastBuildTime="{time}" webUrl="{}/{}/{}"></Project></Projects>
"#,
        xml_escape(&repo.slug()),
        build.number,
        xml_escape(&state.public_url),
        xml_escape(&repo.slug()),
        build.number
    );
    Ok(([(header::CONTENT_TYPE, "application/xml")], xml).into_response())
}
