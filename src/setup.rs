//! The setup page: what `serve` answers while no GitHub App is configured.
//!
//! `/` shows a plain HTML form (no JavaScript) that posts this instance's
//! App manifest to GitHub's "new App" page, with a `state` nonce. GitHub
//! redirects back to [`SETUP_CALLBACK_PATH`] with a code; greenlight checks
//! the state (a wrong or missing one configures nothing), exchanges the code
//! for the App's credentials, keeps them in the data directory's settings
//! file, and asks the process to start as configured, without a restart.
//! From then on these routes are gone: the page exists only while
//! unconfigured, for whoever can reach the port (first starts belong on a
//! trusted network).

use crate::config::stored::{self, StoredSettings};
use crate::config::{AppSetup, GitHubConfig};
use crate::github::manifest::{self, ConversionError, RegisteredApp, SETUP_CALLBACK_PATH};
use crate::web::html::{escape, page};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use secrecy::SecretString;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// GitHub requires the manifest flow to finish within an hour; a state
/// older than that is refused like an unknown one.
pub const STATE_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// States kept at once: each page view issues one, so a crawler reloading
/// the page cannot grow the map without bound (the oldest go first).
pub const MAX_STATES: usize = 256;

/// A registered App handed to the process, which answers once it serves as it.
pub struct Configure {
    /// The App as `serve` runs it.
    pub app: AppSetup,
    /// `Ok` once every role runs; the error otherwise.
    pub started: oneshot::Sender<anyhow::Result<()>>,
}

/// The setup page's state: where it registers, and the states it issued.
#[derive(Clone)]
pub struct Setup {
    inner: Arc<Inner>,
}

struct Inner {
    api_url: String,
    public_url: String,
    data_dir: PathBuf,
    states: Mutex<HashMap<String, Instant>>,
    configure: mpsc::Sender<Configure>,
}

/// `?organization=` of the page: register the App under an organization.
#[derive(serde::Deserialize, Default)]
struct Owner {
    organization: Option<String>,
}

/// What GitHub's redirect carries.
#[derive(serde::Deserialize, Default)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
}

impl Setup {
    /// A setup page registering on the GitHub at `api_url` an App whose
    /// pages are at `public_url`; registered Apps are sent to `configure`.
    pub fn new(api_url: String, public_url: String, data_dir: PathBuf, configure: mpsc::Sender<Configure>) -> Self {
        Self { inner: Arc::new(Inner { api_url, public_url, data_dir, states: Mutex::default(), configure }) }
    }

    /// The routes served while unconfigured; everything else answers 503.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(form))
            .route(SETUP_CALLBACK_PATH, get(callback))
            .route("/healthz", get(|| async { "ok" }))
            .fallback(unconfigured)
            .with_state(self)
    }

    fn issue_state(&self) -> String {
        let state = stored::random_secret();
        let mut states = self.inner.states.lock().expect("states lock");
        states.retain(|_, issued| issued.elapsed() < STATE_LIFETIME);
        if states.len() >= MAX_STATES
            && let Some(oldest) = states.iter().min_by_key(|(_, issued)| **issued).map(|(s, _)| s.clone())
        {
            states.remove(&oldest);
        }
        states.insert(state.clone(), Instant::now());
        state
    }

    /// Takes a state back: true once for each state issued in the last hour.
    fn redeem_state(&self, state: &str) -> bool {
        let issued = self.inner.states.lock().expect("states lock").remove(state);
        issued.is_some_and(|at| at.elapsed() < STATE_LIFETIME)
    }
}

fn setup_page(status: StatusCode, title: &str, body: &str) -> Response {
    (status, Html(page(title, body))).into_response()
}

async fn form(State(setup): State<Setup>, Query(owner): Query<Owner>) -> Response {
    let organization = owner.organization.as_deref().map(str::trim).filter(|o| !o.is_empty());
    let state = setup.issue_state();
    let action = format!("{}?state={state}", manifest::new_app_url(&setup.inner.api_url, organization));
    let manifest = manifest::manifest(&setup.inner.public_url).to_string();
    let owner_text = organization.map_or("your account".to_string(), |o| format!("the organization {}", escape(o)));
    let body = format!(
        "<h1>Set up greenlight</h1>\
         <p>greenlight runs as a GitHub App. This page registers one for this instance (webhooks to \
         <code>{public}/webhook</code>) under {owner_text}: GitHub shows the App's name and permissions, \
         you confirm, and GitHub sends you back here. Nothing else needs setting.</p>\
         <form id=\"register\" method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"manifest\" value=\"{manifest}\">\
         <button type=\"submit\">Register the GitHub App</button></form>\
         <h2>Under an organization</h2>\
         <form id=\"organization\" method=\"get\" action=\"/\">\
         <label>Organization <input name=\"organization\" value=\"{org}\"></label> <button type=\"submit\">Use it</button></form>\
         <p>This page is served only until an App is configured, to whoever can reach this port: run the first start on a trusted network.</p>",
        public = escape(&setup.inner.public_url),
        action = escape(&action),
        manifest = escape(&manifest),
        org = escape(organization.unwrap_or_default()),
    );
    setup_page(StatusCode::OK, "Set up greenlight", &body)
}

async fn callback(State(setup): State<Setup>, Query(callback): Query<Callback>) -> Response {
    let start_again = "<p><a href=\"/\">Start the setup again</a>.</p>";
    if !callback.state.as_deref().is_some_and(|s| setup.redeem_state(s)) {
        tracing::warn!("refused a setup callback whose state greenlight did not issue (or issued over an hour ago)");
        let body = format!(
            "<h1>Setup refused</h1><p>This link does not carry a state this page issued in the last hour, so it configures nothing.</p>{start_again}"
        );
        return setup_page(StatusCode::BAD_REQUEST, "Setup refused", &body);
    }
    let Some(code) = callback.code.filter(|c| !c.trim().is_empty()) else {
        let body = format!("<h1>Setup refused</h1><p>GitHub's redirect carried no code.</p>{start_again}");
        return setup_page(StatusCode::BAD_REQUEST, "Setup refused", &body);
    };
    let registered = match manifest::convert(&setup.inner.api_url, &code).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "the App manifest conversion failed");
            let status = if matches!(e, ConversionError::Refused { .. }) { StatusCode::BAD_REQUEST } else { StatusCode::BAD_GATEWAY };
            let body = format!("<h1>Setup failed</h1><p>{}</p>{start_again}", escape(&e.to_string()));
            return setup_page(status, "Setup failed", &body);
        }
    };
    match configure(&setup, &registered).await {
        Ok(()) => {
            tracing::info!(app_id = registered.id, slug = %registered.slug, "GitHub App registered; serving as it");
            let install = format!("{}/installations/new", registered.html_url);
            let body = format!(
                "<h1>greenlight is set up</h1><p>It now serves as the GitHub App <strong>{slug}</strong> (id {id}).</p>\
                 <p><a id=\"install\" href=\"{install}\">Install the App on your repositories</a>; their pushes and pull requests then build.</p>",
                slug = escape(&registered.slug),
                id = registered.id,
                install = escape(&install),
            );
            setup_page(StatusCode::OK, "greenlight is set up", &body)
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "could not start as the registered App");
            let body = format!("<h1>Setup failed</h1><p>{}</p>", escape(&format!("{e:#}")));
            setup_page(StatusCode::INTERNAL_SERVER_ERROR, "Setup failed", &body)
        }
    }
}

/// Keeps the App's credentials in the settings file (beside what a first
/// start generated), then hands the App to the process and waits for it to run.
async fn configure(setup: &Setup, registered: &RegisteredApp) -> anyhow::Result<()> {
    use anyhow::Context;
    let secret = registered.webhook_secret.clone().context("GitHub returned the App without a webhook secret")?;
    let key = octocrab::jsonwebtoken::EncodingKey::from_rsa_pem(registered.pem.as_bytes())
        .context("GitHub returned a private key that is not RSA PEM")?;
    let data_dir = setup.inner.data_dir.clone();
    let mut settings: StoredSettings = stored::load(&data_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    settings.app_id = Some(registered.id);
    settings.app_slug = Some(registered.slug.clone());
    settings.app_html_url = Some(registered.html_url.clone());
    settings.private_key = Some(registered.pem.clone());
    settings.webhook_secret = Some(secret.clone());
    settings.client_id = Some(registered.client_id.clone());
    settings.client_secret = Some(registered.client_secret.clone());
    let file = stored::save(&data_dir, &settings).with_context(|| format!("cannot keep the App's settings in {}", data_dir.display()))?;
    tracing::info!(file = %file.display(), "kept the App's id, key and webhook secret");
    let github = GitHubConfig { app_id: registered.id, key, api_url: setup.inner.api_url.clone() };
    let app = AppSetup::Configured { github, webhook_secrets: vec![SecretString::from(secret)] };
    let (started, result) = oneshot::channel();
    setup.inner.configure.send(Configure { app, started }).await.context("greenlight is stopping")?;
    result.await.context("greenlight is stopping")?
}

async fn unconfigured() -> Response {
    let body = "<h1>greenlight is not set up yet</h1><p><a href=\"/\">Set it up</a>: register its GitHub App.</p>";
    setup_page(StatusCode::SERVICE_UNAVAILABLE, "Not set up", body)
}
