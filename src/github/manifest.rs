//! Registering the App from a manifest (GitHub's "manifest flow"): the
//! manifest greenlight posts from its setup page, where GitHub's web pages
//! are for a given API, and the one unauthenticated call that turns the
//! code GitHub redirects back with into the App's credentials.
//!
//! GitHub requires the three steps (post, redirect, conversion) within an
//! hour; the code works once.

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::Value;

/// The App manifest greenlight ships (`app-manifest.json`): name,
/// permissions and events; the URLs are this instance's, filled in by [`manifest`].
pub const APP_MANIFEST: &str = include_str!("../../app-manifest.json");

/// Where the setup page sends GitHub's redirect back to, under the public URL.
pub const SETUP_CALLBACK_PATH: &str = "/setup/callback";

/// The manifest for an instance whose pages are at `public_url`: webhooks
/// to `/webhook`, the redirect back to [`SETUP_CALLBACK_PATH`].
pub fn manifest(public_url: &str) -> Value {
    let mut manifest: Value = serde_json::from_str(APP_MANIFEST).expect("app-manifest.json is JSON");
    manifest["url"] = Value::from(public_url);
    manifest["hook_attributes"]["url"] = Value::from(format!("{public_url}/webhook"));
    manifest["redirect_url"] = Value::from(format!("{public_url}{SETUP_CALLBACK_PATH}"));
    manifest
}

/// GitHub's web address for an API base: `https://api.github.com` →
/// `https://github.com`, GitHub Enterprise Server's `https://HOST/api/v3` →
/// `https://HOST`, an `api.` host (GitHub Enterprise Cloud with data
/// residency, `api.NAME.ghe.com`) → the host without it. Anything else is
/// taken to serve both at the same address.
pub fn web_url(api_url: &str) -> String {
    let base = api_url.trim_end_matches('/');
    if let Some(host) = base.strip_suffix("/api/v3") {
        return host.to_string();
    }
    match base.split_once("://") {
        Some((scheme, rest)) if rest.starts_with("api.") => format!("{scheme}://{}", &rest[4..]),
        _ => base.to_string(),
    }
}

/// Where the setup page posts the manifest: the user's own account, or an organization's.
pub fn new_app_url(api_url: &str, organization: Option<&str>) -> String {
    let web = web_url(api_url);
    match organization {
        Some(org) => format!("{web}/organizations/{}/settings/apps/new", crate::text::percent_encode(org, b"")),
        None => format!("{web}/settings/apps/new"),
    }
}

/// What GitHub hands over for a converted manifest.
#[derive(Deserialize)]
pub struct RegisteredApp {
    /// The App's numeric id.
    pub id: u64,
    /// Its URL name.
    pub slug: String,
    /// Its page on GitHub.
    pub html_url: String,
    /// The private key GitHub generated, PEM (never printed: see `Debug`).
    pub pem: String,
    /// The webhook secret GitHub generated (null when the manifest set none).
    pub webhook_secret: Option<String>,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: String,
}

impl std::fmt::Debug for RegisteredApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredApp").field("id", &self.id).field("slug", &self.slug).finish_non_exhaustive()
    }
}

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    /// GitHub refused the code (unknown, used, or older than an hour).
    #[error("GitHub refused the code ({status}): {message}")]
    Refused {
        /// GitHub's status.
        status: u16,
        /// GitHub's message.
        message: String,
    },
    /// GitHub could not be reached or answered something unreadable.
    #[error("GitHub could not convert the manifest: {0}")]
    Unavailable(String),
}

/// Exchanges the redirect's `code` for the App's credentials
/// (`POST /app-manifests/{code}/conversions`, no authentication).
pub async fn convert(api_url: &str, code: &str) -> Result<RegisteredApp, ConversionError> {
    let unavailable = |e: &dyn std::fmt::Display| ConversionError::Unavailable(e.to_string());
    let http = octocrab::Octocrab::builder().base_uri(api_url).and_then(|b| b.build()).map_err(|e| unavailable(&e))?;
    let path = format!("/app-manifests/{}/conversions", crate::text::percent_encode(code, b""));
    let request = http::Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(http::header::ACCEPT, "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .header(http::header::USER_AGENT, "greenlight")
        .body(Vec::new())
        .map_err(|e| unavailable(&e))?;
    let response = http.execute(request).await.map_err(|e| unavailable(&e))?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| unavailable(&e))?.to_bytes();
    if status != StatusCode::CREATED && !status.is_success() {
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        return Err(ConversionError::Refused { status: status.as_u16(), message });
    }
    serde_json::from_slice(&body).map_err(|e| unavailable(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_web_address_follows_the_api_address() {
        assert_eq!(web_url("https://api.github.com"), "https://github.com");
        assert_eq!(web_url("https://ghe.example.com/api/v3/"), "https://ghe.example.com");
        assert_eq!(web_url("https://api.acme.ghe.com"), "https://acme.ghe.com");
        assert_eq!(web_url("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
        assert_eq!(new_app_url("https://api.github.com", Some("acme")), "https://github.com/organizations/acme/settings/apps/new");
    }

    #[test]
    fn the_manifest_carries_this_instances_urls() {
        let manifest = manifest("https://ci.example.com");
        assert_eq!(manifest["hook_attributes"]["url"], "https://ci.example.com/webhook");
        assert_eq!(manifest["redirect_url"], "https://ci.example.com/setup/callback");
        assert_eq!(manifest["url"], "https://ci.example.com");
        assert!(manifest["default_permissions"]["checks"] == "write");
    }
}
