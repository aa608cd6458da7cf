//! The fake's App-level pages and routes: registering an App from a
//! manifest (GitHub's web form, the redirect back, and
//! `POST /app-manifests/{code}/conversions`), and the App's webhook
//! delivery log (`GET /app/hook/deliveries`, `GET /app/hook/deliveries/{id}`),
//! as GitHub's docs describe them.
//!
//! GitHub shows the manifest on a page and registers the App when the user
//! confirms; the fake confirms at once and redirects, as a user who clicks
//! "Create GitHub App" would see it.

use super::{APP_ID, Shared};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Shared_ = Arc<Shared>;

/// GitHub: "the code … expires after one hour".
pub const MANIFEST_CODE_LIFETIME: Duration = Duration::from_secs(3600);

/// GitHub: `per_page` of the delivery log, default 30, at most 100.
pub const DELIVERIES_PER_PAGE_MAX: usize = 100;

/// A manifest GitHub was shown and the user confirmed.
pub(crate) struct ManifestCode {
    pub manifest: Value,
    pub owner: String,
    pub issued: Instant,
}

/// The App GitHub registered from a manifest, as the conversion returned it.
#[derive(Debug, Clone)]
pub struct RegisteredApp {
    /// Its slug.
    pub slug: String,
    /// The webhook secret GitHub generated.
    pub webhook_secret: String,
    /// The manifest it was registered from.
    pub manifest: Value,
}

/// One attempt at a delivery in the App's log.
#[derive(Debug, Clone)]
pub struct LoggedDelivery {
    /// The attempt's id (each redelivery has its own).
    pub id: u64,
    /// `X-GitHub-Delivery`, shared by an original and its redeliveries.
    pub guid: String,
    /// The event (`push`, `pull_request`, …).
    pub event: String,
    /// The payload's `action`, if any.
    pub action: Option<String>,
    /// What the receiver answered (0: no answer at all).
    pub status_code: u16,
    /// Whether this attempt was a redelivery.
    pub redelivery: bool,
    /// When it was attempted.
    pub delivered_at: chrono::DateTime<chrono::Utc>,
    /// The JSON payload.
    pub payload: Value,
}

impl LoggedDelivery {
    /// GitHub's `status` text: "OK" for 2xx/3xx, else a reason.
    fn status(&self) -> String {
        match self.status_code {
            200..=399 => "OK".to_string(),
            0 => "failed to connect to host".to_string(),
            code => format!("Invalid HTTP Response: {code}"),
        }
    }

    fn summary(&self) -> Value {
        json!({
            "id": self.id,
            "guid": self.guid,
            "delivered_at": self.delivered_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "redelivery": self.redelivery,
            "duration": 0.27,
            "status": self.status(),
            "status_code": self.status_code,
            "event": self.event,
            "action": self.action,
            "installation_id": self.payload["installation"]["id"],
            "repository_id": self.payload["repository"]["id"],
            "throttled_at": null,
        })
    }
}

/// The routes of GitHub's web pages (at the host's root, also for GitHub Enterprise Server).
pub fn web_router(shared: Shared_) -> Router {
    Router::new()
        .route("/settings/apps/new", post(new_app))
        .route("/organizations/{org}/settings/apps/new", post(new_org_app))
        .route("/apps/{slug}/installations/new", get(install_page))
        .with_state(shared)
}

/// The App routes of the REST API (merged into the API's, whose failure
/// injection and state they share).
pub fn api_router() -> Router<Shared_> {
    Router::new()
        .route("/app-manifests/{code}/conversions", post(convert))
        .route("/app/hook/deliveries", get(deliveries))
        .route("/app/hook/deliveries/{id}", get(delivery))
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text, "documentation_url": "https://docs.github.com/rest" }))).into_response()
}

#[derive(serde::Deserialize)]
struct ManifestForm {
    manifest: Option<String>,
}

async fn new_app(State(shared): State<Shared_>, Query(query): Query<HashMap<String, String>>, body: Bytes) -> Response {
    register(&shared, "octocat".to_string(), query, &body)
}

async fn new_org_app(
    State(shared): State<Shared_>,
    Path(org): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    register(&shared, org, query, &body)
}

/// Checks the manifest as GitHub's form does, then "confirms" it and redirects back with a code.
fn register(shared: &Shared, owner: String, query: HashMap<String, String>, body: &[u8]) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<ManifestForm>(body) else {
        return (StatusCode::BAD_REQUEST, Html("<p>Invalid form</p>")).into_response();
    };
    let Some(manifest) = form.manifest.and_then(|m| serde_json::from_str::<Value>(&m).ok()) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, Html("<p>Invalid GitHub App configuration: the manifest is not JSON</p>"))
            .into_response();
    };
    for field in ["url", "redirect_url"] {
        if !manifest[field].as_str().is_some_and(|u| u.starts_with("http")) {
            return (StatusCode::UNPROCESSABLE_ENTITY, Html(format!("<p>Invalid GitHub App configuration: {field} is required</p>")))
                .into_response();
        }
    }
    if !manifest["hook_attributes"]["url"].as_str().is_some_and(|u| u.starts_with("http")) {
        return (StatusCode::UNPROCESSABLE_ENTITY, Html("<p>Invalid GitHub App configuration: hook_attributes.url is required</p>"))
            .into_response();
    }
    let code = format!("{:032x}", rand::random::<u128>());
    let redirect = manifest["redirect_url"].as_str().unwrap_or_default().to_string();
    shared.state.lock().unwrap().manifest_codes.insert(code.clone(), ManifestCode { manifest, owner, issued: Instant::now() });
    let state = query.get("state").map(|s| format!("&state={}", urlencode(s))).unwrap_or_default();
    // GitHub answers the confirmed form with a 302 to the redirect URL.
    (StatusCode::FOUND, [(axum::http::header::LOCATION, format!("{redirect}?code={code}{state}"))]).into_response()
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("v", text)]).unwrap().trim_start_matches("v=").to_string()
}

async fn convert(State(shared): State<Shared_>, Path(code): Path<String>) -> Response {
    let found = shared.state.lock().unwrap().manifest_codes.remove(&code);
    let Some(registration) = found.filter(|c| c.issued.elapsed() < MANIFEST_CODE_LIFETIME) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let manifest = registration.manifest;
    let name = manifest["name"].as_str().unwrap_or("app").to_string();
    let slug = name.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-");
    let webhook_secret = format!("{:040x}", rand::random::<u128>());
    let pem = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/test-app-key.pem")).unwrap();
    let web = format!("http://{}", shared.addr.lock().unwrap().expect("the fake listens"));
    shared.state.lock().unwrap().registered =
        Some(RegisteredApp { slug: slug.clone(), webhook_secret: webhook_secret.clone(), manifest: manifest.clone() });
    let body = json!({
        "id": APP_ID,
        "slug": slug,
        "node_id": "MDM6QXBwNTk=",
        "owner": { "login": registration.owner, "id": 1, "type": "User" },
        "name": name,
        "description": manifest["description"],
        "external_url": manifest["url"],
        "html_url": format!("{web}/apps/{slug}"),
        "created_at": chrono::Utc::now().to_rfc3339(),
        "updated_at": chrono::Utc::now().to_rfc3339(),
        "permissions": manifest["default_permissions"],
        "events": manifest["default_events"],
        "client_id": format!("Iv1.{:016x}", rand::random::<u64>()),
        "client_secret": format!("{:040x}", rand::random::<u128>()),
        "webhook_secret": webhook_secret,
        "pem": pem,
    });
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

async fn install_page(Path(slug): Path<String>) -> Response {
    Html(format!("<h1>Install {slug}</h1>")).into_response()
}

/// GitHub's refusal of a request without a valid App JWT, if it has none.
fn app_jwt_refusal(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    super::routes::check_app_jwt(shared, headers).err().map(|(status, text)| message(status, &text))
}

async fn deliveries(State(shared): State<Shared_>, headers: HeaderMap, Query(query): Query<HashMap<String, String>>) -> Response {
    if let Some(refused) = app_jwt_refusal(&shared, &headers) {
        return refused;
    }
    let per_page = query.get("per_page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(30).clamp(1, DELIVERIES_PER_PAGE_MAX);
    let before = match query.get("cursor").map(|c| c.strip_prefix("v1_").and_then(|n| n.parse::<u64>().ok())) {
        None => u64::MAX,
        Some(Some(id)) => id,
        Some(None) => return message(StatusCode::UNPROCESSABLE_ENTITY, "Invalid cursor"),
    };
    let wanted = query.get("status").map(String::as_str);
    let state = shared.state.lock().unwrap();
    let mut newest_first: Vec<&LoggedDelivery> = state
        .hook_deliveries
        .iter()
        .filter(|d| d.id < before)
        .filter(|d| match wanted {
            Some("success") => d.status_code >= 200 && d.status_code < 400,
            Some("failure") => !(200..400).contains(&d.status_code),
            _ => true,
        })
        .collect();
    newest_first.sort_by_key(|d| std::cmp::Reverse(d.id));
    let more = newest_first.len() > per_page;
    let page: Vec<Value> = newest_first.iter().take(per_page).map(|d| d.summary()).collect();
    let mut response = axum::Json(Value::from(page)).into_response();
    if more {
        let last = newest_first[per_page - 1].id;
        let base = format!("http://{}", shared.addr.lock().unwrap().expect("the fake listens"));
        let link = format!("<{base}/app/hook/deliveries?per_page={per_page}&cursor=v1_{last}>; rel=\"next\"");
        response.headers_mut().insert("link", link.parse().unwrap());
    }
    response
}

async fn delivery(State(shared): State<Shared_>, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    if let Some(refused) = app_jwt_refusal(&shared, &headers) {
        return refused;
    }
    let state = shared.state.lock().unwrap();
    let Some(found) = state.hook_deliveries.iter().find(|d| d.id == id) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let mut detail = found.summary();
    detail["url"] = json!("https://greenlight.test/webhook");
    detail["request"] = json!({
        "headers": {
            "Accept": "*/*",
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/044aadd",
            "X-GitHub-Delivery": found.guid,
            "X-GitHub-Event": found.event,
            "X-GitHub-Hook-ID": "42",
            "X-GitHub-Hook-Installation-Target-ID": APP_ID.to_string(),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
        },
        "payload": found.payload,
    });
    detail["response"] = json!({ "headers": {}, "payload": null });
    axum::Json(detail).into_response()
}
