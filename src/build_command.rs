//! `greenlight build create`: asks a greenlight's API for a build of a
//! branch (`POST /api/repos/{owner}/{name}/builds`), as `drone build
//! create` does, and prints where to follow it. The token travels in the
//! `Authorization` header, never in the URL or argv.

use crate::config::BuildCreate;
use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use std::io::Write;

/// How long the server may take to answer (it asks GitHub for the
/// branch's head and posts the pending statuses first).
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Sends the request; prints the build's number, commit and page.
pub async fn create(request: BuildCreate, out: &mut dyn Write) -> anyhow::Result<()> {
    let (owner, name) = &request.repo;
    let query = serde_urlencoded::to_string(&request.query).context("encoding the build parameters")?;
    let url = format!("{}/api/repos/{owner}/{name}/builds?{query}", request.server);
    let client = http_client::Client::builder().timeout(ANSWER_TIMEOUT).build().context("building an HTTP client")?;
    let response = client
        .post(&url)
        .bearer_auth(request.token.expose_secret())
        .send()
        .await
        .with_context(|| format!("cannot reach greenlight at {}", request.server))?;
    let status = response.status();
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.context("reading the answer")?).unwrap_or_default();
    if !status.is_success() {
        let message = body["message"].as_str().unwrap_or("no message");
        bail!("greenlight answered {status}: {message}");
    }
    let number = body["number"].as_i64().unwrap_or_default();
    let sha = body["after"].as_str().unwrap_or_default();
    let branch = body["target"].as_str().unwrap_or_default();
    writeln!(out, "build #{number} of {owner}/{name}: {branch} at {}", &sha[..sha.len().min(7)])?;
    writeln!(out, "{}/{owner}/{name}/{number}", request.server)?;
    Ok(())
}
