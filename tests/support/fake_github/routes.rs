//! The fake's HTTP routes and GitHub's validation rules.

use super::{APP_ID, CheckRunRecord, CheckRunState, Endpoint, RequestRecord, Shared, StatusRecord, StatusState, Token};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use base64::Engine;
use octocrab::jsonwebtoken::{Algorithm, Validation, decode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type Shared_ = Arc<Shared>;

pub fn router(shared: Shared_) -> Router {
    Router::new()
        .route("/app/installations/{id}/access_tokens", post(mint_token))
        .route("/app/installations", get(list_installations))
        .route("/installation/repositories", get(list_installation_repos))
        .route("/repos/{owner}/{repo}", get(get_repo))
        .route("/repos/{owner}/{repo}/contents/{*path}", get(contents))
        .route("/repos/{owner}/{repo}/compare/{basehead}", get(compare))
        .route("/repos/{owner}/{repo}/statuses/{sha}", post(create_status))
        .route("/repos/{owner}/{repo}/check-runs", post(create_check_run))
        .route("/repos/{owner}/{repo}/check-runs/{id}", patch(update_check_run))
        .route("/repos/{owner}/{repo}/commits/{sha}/check-runs", get(list_check_runs))
        .route("/repos/{owner}/{repo}/commits/{reference}", get(get_commit))
        .route("/repos/{owner}/{repo}/collaborators/{user}/permission", get(super::conversation::permission))
        .route("/repos/{owner}/{repo}/issues/comments/{comment}/reactions", post(super::conversation::react))
        .route("/repos/{owner}/{repo}/issues/{number}/comments", post(super::conversation::create_comment))
        .route("/{owner}/{repo}/info/refs", get(git_http))
        .route("/{owner}/{repo}/git-upload-pack", post(git_http))
        .merge(super::app_routes::api_router())
        .layer(middleware::from_fn_with_state(shared.clone(), inject_failures))
        .with_state(shared)
}

pub(super) fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "message": message, "documentation_url": "https://docs.github.com/rest" }))).into_response()
}

pub(super) fn invalid(message: String) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({ "message": "Validation Failed", "errors": [ { "message": message, "code": "custom" } ], "documentation_url": "https://docs.github.com/rest" })),
    )
        .into_response()
}

async fn inject_failures(State(shared): State<Shared_>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    // As the client sent it, before any Enterprise prefix was stripped.
    let original = request.extensions().get::<axum::extract::OriginalUri>().map_or(path.clone(), |u| u.path().to_string());
    let endpoint = Endpoint::classify(&method, &path);
    let (rule, hold) = {
        let mut state = shared.state.lock().unwrap();
        state.requests.push(RequestRecord { method: method.clone(), path: original, endpoint });
        state.last_request = Some(std::time::Instant::now());
        let hold = state.holds.iter().find(|(m, _)| m.matches(&method, &path, endpoint)).map(|(_, gate)| gate.clone());
        let found = state.failures.iter_mut().find(|r| r.matcher.matches(&method, &path, endpoint) && r.times > 0);
        let rule = found.map(|r| {
            r.times -= 1;
            r.clone()
        });
        (rule, hold)
    };
    if let Some(gate) = hold {
        // Closed when the test drops its hold: then every held request goes on.
        let _ = gate.acquire().await;
    }
    let limit = rate_limit_headers(&shared, request.headers());
    let Some(rule) = rule else {
        let mut response = next.run(request).await;
        response.headers_mut().extend(limit);
        return response;
    };
    if rule.after_apply {
        let _ = next.run(request).await;
    }
    let mut response = error(StatusCode::from_u16(rule.status).unwrap(), "injected failure");
    if let Some(secs) = rule.retry_after {
        response.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
    }
    response
}

/// GitHub's primary rate limit for installations and Apps (5,000 requests an hour).
const RATE_LIMIT: u64 = 5000;

/// The `x-ratelimit-*` headers GitHub sends on every authenticated API
/// answer, counting requests per installation (or the App's JWT) in the fake's life.
fn rate_limit_headers(shared: &Shared, headers: &HeaderMap) -> HeaderMap {
    let mut limit = HeaderMap::new();
    let Some(credential) = bearer(headers) else { return limit };
    let mut state = shared.state.lock().unwrap();
    let who = state.tokens.get(&credential).map_or("app".to_string(), |t| t.installation.to_string());
    let used = state.rate_used.entry(who).or_default();
    *used += 1;
    let reset = chrono::Utc::now().timestamp() + 3600;
    for (name, value) in [
        ("x-ratelimit-limit", RATE_LIMIT.to_string()),
        ("x-ratelimit-remaining", RATE_LIMIT.saturating_sub(*used).to_string()),
        ("x-ratelimit-used", used.to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-resource", "core".to_string()),
    ] {
        limit.insert(name, value.parse().unwrap());
    }
    limit
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("token ")).map(str::to_string)
}

/// Why the fake refuses a request: status and GitHub's message.
pub(super) type Refusal = (StatusCode, String);

pub(super) fn refuse((status, message): Refusal) -> Response {
    error(status, &message)
}

pub(crate) fn check_app_jwt(shared: &Shared, headers: &HeaderMap) -> Result<(), Refusal> {
    let jwt = bearer(headers).ok_or_else(|| (StatusCode::UNAUTHORIZED, "A JSON web token could not be decoded".to_string()))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    let claims = decode::<Value>(&jwt, &shared.key, &validation)
        .map_err(|e| (StatusCode::UNAUTHORIZED, format!("A JSON web token could not be decoded: {e}")))?
        .claims;
    let now = chrono::Utc::now().timestamp();
    let iss = claims["iss"].as_str().map(str::to_string).or_else(|| claims["iss"].as_u64().map(|n| n.to_string()));
    if iss.as_deref() != Some(&APP_ID.to_string()) {
        return Err((StatusCode::UNAUTHORIZED, "Integration not found".to_string()));
    }
    if claims["exp"].as_i64().unwrap_or(0) > now + 600 {
        return Err((StatusCode::UNAUTHORIZED, "'Expiration time' claim ('exp') is too far in the future".to_string()));
    }
    if claims["iat"].as_i64().unwrap_or(i64::MAX) > now + 1 {
        return Err((StatusCode::UNAUTHORIZED, "'Issued at' claim ('iat') must be an Integer representing a time in the past".to_string()));
    }
    Ok(())
}

/// The installation a token belongs to, if it is valid and covers `slug`.
/// The permissions the test App has, as an installation token carries them by default.
const APP_PERMISSIONS: [(&str, &str); 6] = [
    ("checks", "write"),
    ("statuses", "write"),
    ("contents", "read"),
    ("metadata", "read"),
    ("issues", "write"),
    ("pull_requests", "write"),
];

/// Checks a token as GitHub does for a request to `slug` that needs
/// `permission` at `level` (`read` is satisfied by `write`).
fn check_token(shared: &Shared, token: Option<String>, slug: &str, permission: (&str, &str)) -> Result<(), Refusal> {
    let state = shared.state.lock().unwrap();
    let Some(token) = token.and_then(|t| state.tokens.get(&t)) else {
        return Err((StatusCode::UNAUTHORIZED, "Bad credentials".to_string()));
    };
    if token.expires_at <= chrono::Utc::now() {
        return Err((StatusCode::UNAUTHORIZED, "Bad credentials".to_string()));
    }
    let name = slug.split_once('/').map_or(slug, |(_, n)| n);
    let in_installation = state.installations.get(&token.installation).is_some_and(|repos| repos.iter().any(|r| r == slug));
    let in_token = token.repositories.as_ref().is_none_or(|names| names.iter().any(|n| n == name));
    if !in_installation || !in_token {
        return Err((StatusCode::NOT_FOUND, "Not Found".to_string()));
    }
    let (wanted, level) = permission;
    let granted = token.permissions.get(wanted).map(String::as_str);
    if !(granted == Some(level) || granted == Some("write")) {
        return Err((StatusCode::FORBIDDEN, "Resource not accessible by integration".to_string()));
    }
    Ok(())
}

/// What a token request asks for: some repositories, some permissions.
#[derive(serde::Deserialize, Default)]
struct TokenRequest {
    repositories: Option<Vec<String>>,
    permissions: Option<std::collections::BTreeMap<String, String>>,
}

async fn mint_token(State(shared): State<Shared_>, Path(id): Path<u64>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = check_app_jwt(&shared, &headers) {
        return refuse(e);
    }
    let request: TokenRequest = if body.is_empty() {
        TokenRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(_) => return error(StatusCode::BAD_REQUEST, "Problems parsing JSON"),
        }
    };
    let lifetime = *shared.token_lifetime.lock().unwrap();
    let mut state = shared.state.lock().unwrap();
    let Some(installed) = state.installations.get(&id) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let names: Vec<&str> = installed.iter().map(|slug| slug.split_once('/').map_or(slug.as_str(), |(_, n)| n)).collect();
    if let Some(wanted) = &request.repositories
        && let Some(missing) = wanted.iter().find(|w| !names.contains(&w.as_str()))
    {
        return invalid(format!(
            "There is at least one repository that does not exist or is not accessible to the parent installation: {missing}"
        ));
    }
    let app: std::collections::BTreeMap<String, String> = APP_PERMISSIONS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let permissions = match request.permissions {
        None => app,
        Some(asked) => {
            let exceeds = asked.iter().find(|(k, v)| !app.get(*k).is_some_and(|have| have == *v || (have == "write" && *v == "read")));
            if let Some((k, v)) = exceeds {
                return invalid(format!("The permissions requested are not granted to this installation: {k}:{v}"));
            }
            asked
        }
    };
    let token = format!("ghs_{}", (0..36).map(|_| char::from(b'a' + rand::random::<u8>() % 26)).collect::<String>());
    let expires_at = chrono::Utc::now() + lifetime;
    let answer = json!({ "token": token, "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "permissions": permissions, "repository_selection": "selected" });
    state.tokens.insert(token, Token { installation: id, expires_at, repositories: request.repositories, permissions });
    state.tokens_minted += 1;
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

/// GitHub's pagination (REST docs, "Using pagination in the REST API"):
/// `per_page` defaults to 30 and is capped at 100, `page` starts at 1, and
/// a `Link` header names the `prev`, `next`, `first` and `last` pages.
const DEFAULT_PER_PAGE: usize = 30;
/// GitHub's largest page: a larger `per_page` gets 100.
const MAX_PER_PAGE: usize = 100;

/// One page of `items` as `q` asks, and its `Link` header (absent when one
/// page holds everything); `path` is the request's, prefix included.
fn page_of(shared: &Shared, path: &str, items: Vec<Value>, q: &HashMap<String, String>) -> (Vec<Value>, Option<String>) {
    let number = |key: &str| q.get(key).and_then(|v| v.parse::<usize>().ok()).filter(|n| *n > 0);
    let per_page = number("per_page").unwrap_or(DEFAULT_PER_PAGE).min(MAX_PER_PAGE);
    let page = number("page").unwrap_or(1);
    let last = items.len().div_ceil(per_page).max(1);
    let addr = shared.addr.lock().unwrap().expect("listening");
    let url = |p: usize| format!("<http://{addr}{path}?per_page={per_page}&page={p}>");
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", url((page - 1).min(last))));
        links.push(format!("{}; rel=\"first\"", url(1)));
    }
    if page < last {
        links.push(format!("{}; rel=\"next\"", url(page + 1)));
        links.push(format!("{}; rel=\"last\"", url(last)));
    }
    let chosen = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    (chosen, (!links.is_empty()).then(|| links.join(", ")))
}

fn with_link(body: Value, link: Option<String>) -> Response {
    let mut response = axum::Json(body).into_response();
    if let Some(link) = link {
        response.headers_mut().insert("link", link.parse().unwrap());
    }
    response
}

/// GitHub's repository object (the fields its docs list that a client may read).
fn repo_json(shared: &Shared, slug: &str, repo: &super::Repo) -> Value {
    let (owner, name) = slug.split_once('/').unwrap_or((slug, ""));
    let addr = shared.addr.lock().unwrap().expect("listening");
    json!({
        "id": repo.id, "node_id": format!("R_{}", repo.id), "name": name, "full_name": slug,
        "owner": { "login": owner, "id": 1, "type": "Organization" },
        "private": repo.private, "visibility": if repo.private { "private" } else { "public" },
        "html_url": format!("https://github.com/{slug}"), "description": null, "fork": false, "archived": false,
        "url": format!("http://{addr}/repos/{slug}"), "clone_url": format!("http://{addr}/{slug}.git"),
        "ssh_url": format!("git@github.com:{slug}.git"), "default_branch": "main",
    })
}

/// `GET /repos/{owner}/{repo}`: the repository, to a token that may read its metadata.
async fn get_repo(State(shared): State<Shared_>, Path((owner, repo)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let slug = match authorized(&shared, &headers, &owner, &repo, ("metadata", "read")) {
        Ok(slug) => slug,
        Err(e) => return refuse(e),
    };
    let state = shared.state.lock().unwrap();
    match state.repos.get(&slug) {
        Some(found) => axum::Json(repo_json(&shared, &slug, found)).into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `GET /app/installations`: the App's installations, oldest first (App JWT).
async fn list_installations(
    State(shared): State<Shared_>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = check_app_jwt(&shared, &headers) {
        return refuse(e);
    }
    let items: Vec<Value> = {
        let state = shared.state.lock().unwrap();
        let mut ids: Vec<u64> = state.installations.keys().copied().collect();
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| {
                let account = state.installations[&id].first().and_then(|s| s.split_once('/')).map_or("", |(o, _)| o).to_string();
                json!({
                    "id": id, "app_id": APP_ID, "target_type": "Organization", "repository_selection": "selected",
                    "account": { "login": account, "id": 1, "type": "Organization" },
                    "access_tokens_url": format!("/app/installations/{id}/access_tokens"),
                    "repositories_url": "/installation/repositories",
                    "permissions": APP_PERMISSIONS.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
                    "events": ["check_run", "check_suite", "pull_request", "push", "repository"],
                    "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "single_file_name": null,
                })
            })
            .collect()
    };
    let (page, link) = page_of(&shared, uri.path(), items, &q);
    with_link(Value::Array(page), link)
}

/// `GET /installation/repositories`: what the token's installation covers
/// (only the repositories a narrowed token names).
async fn list_installation_repos(
    State(shared): State<Shared_>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let items: Vec<Value> = {
        let state = shared.state.lock().unwrap();
        let Some(token) = bearer(&headers).and_then(|t| state.tokens.get(&t)).filter(|t| t.expires_at > chrono::Utc::now()) else {
            return error(StatusCode::UNAUTHORIZED, "Bad credentials");
        };
        let installed = state.installations.get(&token.installation).cloned().unwrap_or_default();
        let named = |slug: &String| token.repositories.as_ref().is_none_or(|names| names.iter().any(|n| slug.ends_with(&format!("/{n}"))));
        installed.iter().filter(|slug| named(slug)).filter_map(|slug| state.repos.get(slug).map(|r| repo_json(&shared, slug, r))).collect()
    };
    let total = items.len();
    let (page, link) = page_of(&shared, uri.path(), items, &q);
    with_link(json!({ "total_count": total, "repository_selection": "selected", "repositories": page }), link)
}

async fn contents(
    State(shared): State<Shared_>,
    Path((owner, repo, path)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let slug = match authorized(&shared, &headers, &owner, &repo, ("contents", "read")) {
        Ok(slug) => slug,
        Err(e) => return refuse(e),
    };
    let Some(git_ref) = q.get("ref") else {
        return error(StatusCode::BAD_REQUEST, "this fake needs ?ref=");
    };
    let content = {
        let state = shared.state.lock().unwrap();
        state.repos.get(&slug).and_then(|r| r.git.show(git_ref, &path))
    };
    let Some(content) = content else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let file = json!({ "type": "file", "size": content.len(), "name": path.rsplit('/').next(), "path": path });
    axum::Json(with_content(file, &content)).into_response()
}

/// The largest file the contents API serves with its content in JSON;
/// larger ones (up to 100 MB) come with `"encoding": "none"` and an empty
/// `content` (GitHub's changelog of 2022-05-03; "Get repository content").
const CONTENTS_INLINE_BYTES: usize = 1024 * 1024;

/// A file's JSON with its content as GitHub serves it: base64 wrapped at 60
/// characters, or none over [`CONTENTS_INLINE_BYTES`].
fn with_content(mut file: serde_json::Value, content: &[u8]) -> serde_json::Value {
    if content.len() > CONTENTS_INLINE_BYTES {
        file["encoding"] = json!("none");
        file["content"] = json!("");
        return file;
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(content);
    let wrapped: Vec<&str> = encoded.as_bytes().chunks(60).map(|c| std::str::from_utf8(c).unwrap()).collect();
    file["encoding"] = json!("base64");
    file["content"] = json!(wrapped.join("\n") + "\n");
    file
}

/// GitHub's compare lists at most 300 changed files for the whole
/// comparison, on the first page only ("Compare two commits").
const COMPARE_MAX_FILES: usize = 300;

/// Commits a compare lists when no paging parameter is given.
const COMPARE_UNPAGED_COMMITS: usize = 250;

/// `GET /repos/{o}/{r}/compare/{base}...{head}`, as GitHub documents it:
/// without `page` or `per_page`, the first 250 commits; with either, pages
/// of `per_page` commits (default 30, at most 100) with a `Link` header;
/// the changed files (at most 300 for the whole comparison) on the first
/// page only. Computed from the repository's git history.
async fn compare(
    State(shared): State<Shared_>,
    Path((owner, repo, basehead)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let slug = match authorized(&shared, &headers, &owner, &repo, ("contents", "read")) {
        Ok(slug) => slug,
        Err(e) => return refuse(e),
    };
    let Some((base, head)) = basehead.split_once("...") else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let comparison = {
        let state = shared.state.lock().unwrap();
        state.repos.get(&slug).and_then(|r| r.git.compare(base, head))
    };
    let Some(c) = comparison else {
        return error(StatusCode::NOT_FOUND, &format!("No common ancestor between {base} and {head}."));
    };
    let paged = q.contains_key("page") || q.contains_key("per_page");
    let parsed = |key: &str, default: usize| q.get(key).map_or(Ok(default), |v| v.parse::<usize>());
    let (Ok(page), Ok(per_page)) = (parsed("page", 1), parsed("per_page", 30)) else {
        return error(StatusCode::BAD_REQUEST, "page and per_page must be numbers");
    };
    let (page, per_page) = if paged { (page.max(1), per_page.clamp(1, 100)) } else { (1, COMPARE_UNPAGED_COMMITS) };
    let commits: Vec<Value> = c
        .commits
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|sha| json!({ "sha": sha, "url": format!("https://api.github.com/repos/{slug}/commits/{sha}") }))
        .collect();
    let status = match (c.ahead_by, c.behind_by) {
        (0, 0) => "identical",
        (_, 0) => "ahead",
        (0, _) => "behind",
        _ => "diverged",
    };
    let mut body = json!({
        "url": format!("https://api.github.com/repos/{slug}/compare/{basehead}"),
        "html_url": format!("https://github.com/{slug}/compare/{basehead}"),
        "base_commit": { "sha": c.base_sha },
        "merge_base_commit": { "sha": c.merge_base },
        "status": status,
        "ahead_by": c.ahead_by,
        "behind_by": c.behind_by,
        "total_commits": c.commits.len(),
        "commits": commits,
    });
    if page == 1 {
        let files: Vec<Value> = c
            .files
            .iter()
            .take(COMPARE_MAX_FILES)
            .map(|f| {
                let mut file = json!({ "filename": f.filename, "status": f.status });
                if let Some(previous) = &f.previous_filename {
                    file["previous_filename"] = json!(previous);
                }
                file
            })
            .collect();
        body["files"] = json!(files);
    }
    let mut response = axum::Json(body).into_response();
    let pages = c.commits.len().div_ceil(per_page).max(1);
    if paged {
        let link = |p: usize, rel: &str| {
            format!("<https://api.github.com/repos/{slug}/compare/{basehead}?per_page={per_page}&page={p}>; rel=\"{rel}\"")
        };
        let mut links = Vec::new();
        if page < pages {
            links.extend([link(page + 1, "next"), link(pages, "last")]);
        }
        if page > 1 {
            links.extend([link(1, "first"), link(page - 1, "prev")]);
        }
        if !links.is_empty() {
            response.headers_mut().insert("link", links.join(", ").parse().unwrap());
        }
    }
    response
}

/// `GET /repos/{owner}/{repo}/commits/{ref}`: a commit by sha, branch or
/// tag; 422 "No commit found for SHA" when the ref names none (as GitHub).
async fn get_commit(
    State(shared): State<Shared_>,
    Path((owner, repo, reference)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let slug = match authorized(&shared, &headers, &owner, &repo, ("contents", "read")) {
        Ok(slug) => slug,
        Err(e) => return refuse(e),
    };
    let found = shared.state.lock().unwrap().repos.get(&slug).and_then(|r| r.git.resolve(&reference));
    let Some((sha, message, name, email)) = found else {
        return invalid_commit(&reference);
    };
    let date = "2026-12-01T00:00:00Z";
    let person = json!({ "name": name, "email": email, "date": date });
    axum::Json(json!({
        "sha": sha,
        "node_id": "C_fake",
        "html_url": format!("https://github.com/{slug}/commit/{sha}"),
        "commit": { "message": message, "author": person, "committer": person },
        "author": { "login": "octocat", "avatar_url": "https://avatars.githubusercontent.com/u/583231" },
        "parents": [],
    }))
    .into_response()
}

fn invalid_commit(reference: &str) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({ "message": format!("No commit found for SHA: {reference}"), "documentation_url": "https://docs.github.com/rest/commits/commits#get-a-commit" }))).into_response()
}

/// The repository slug of a request, once its token is checked.
pub(super) fn authorized(
    shared: &Shared,
    headers: &HeaderMap,
    owner: &str,
    repo: &str,
    permission: (&str, &str),
) -> Result<String, Refusal> {
    let slug = format!("{owner}/{repo}");
    check_token(shared, bearer(headers), &slug, permission)?;
    Ok(slug)
}

/// The repository slug and JSON body of a write, once the token is checked.
fn authorized_write(
    shared: &Shared,
    headers: &HeaderMap,
    owner: &str,
    repo: &str,
    body: &[u8],
    permission: (&str, &str),
) -> Result<(String, Value), Refusal> {
    let slug = authorized(shared, headers, owner, repo, permission)?;
    let body = serde_json::from_slice::<Value>(body).map_err(|_| (StatusCode::BAD_REQUEST, "Problems parsing JSON".to_string()))?;
    Ok((slug, body))
}

fn commit_exists(shared: &Shared, slug: &str, sha: &str) -> bool {
    shared.state.lock().unwrap().repos.get(slug).is_some_and(|r| r.git.has_commit(sha))
}

async fn create_status(
    State(shared): State<Shared_>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (slug, body) = match authorized_write(&shared, &headers, &owner, &repo, &body, ("statuses", "write")) {
        Ok(ok) => ok,
        Err(e) => return refuse(e),
    };
    let wire_state = body["state"].as_str().unwrap_or_default().to_string();
    let Some(state_value) = StatusState::from_wire(&wire_state) else {
        return invalid(format!("state is not included in the list: {wire_state:?}"));
    };
    let description = body["description"].as_str().unwrap_or_default().to_string();
    if description.chars().count() > 140 {
        return invalid("description is too long (maximum is 140 characters)".to_string());
    }
    if !commit_exists(&shared, &slug, &sha) {
        return invalid(format!("No commit found for SHA: {sha}"));
    }
    let record = StatusRecord {
        sha: sha.clone(),
        state: state_value,
        context: body["context"].as_str().unwrap_or("default").to_string(),
        description,
        target_url: body["target_url"].as_str().unwrap_or_default().to_string(),
    };
    let mut state = shared.state.lock().unwrap();
    let list = state.statuses.entry(format!("{slug}@{sha}")).or_default();
    if list.iter().filter(|s| s.context == record.context).count() >= 1000 {
        return invalid("This SHA and context has reached the maximum number of statuses.".to_string());
    }
    list.push(record.clone());
    shared.changed.notify_waiters();
    (
        StatusCode::CREATED,
        axum::Json(
            json!({ "state": wire_state, "context": record.context, "description": record.description, "target_url": record.target_url }),
        ),
    )
        .into_response()
}

const STATUSES: [&str; 3] = ["queued", "in_progress", "completed"];
const CONCLUSIONS: [&str; 7] = ["action_required", "cancelled", "failure", "neutral", "success", "skipped", "timed_out"];
const LEVELS: [&str; 3] = ["notice", "warning", "failure"];

/// GitHub's documented rules for a check run body.
fn validate_check_run(body: &Value, create: bool) -> Result<(), String> {
    if create {
        for field in ["name", "head_sha"] {
            if !body[field].is_string() {
                return Err(format!("{field} wasn't supplied."));
            }
        }
    }
    if let Some(status) = body.get("status")
        && !status.as_str().is_some_and(|s| STATUSES.contains(&s))
    {
        return Err(format!("status is not included in the list: {status}"));
    }
    if let Some(conclusion) = body.get("conclusion") {
        if !conclusion.as_str().is_some_and(|s| CONCLUSIONS.contains(&s)) {
            return Err(format!("conclusion is not included in the list: {conclusion}"));
        }
    } else if body["status"] == "completed" || body.get("completed_at").is_some() {
        return Err("conclusion wasn't supplied.".to_string());
    }
    if let Some(output) = body.get("output") {
        for field in ["title", "summary"] {
            if !output[field].is_string() {
                return Err(format!("output.{field} wasn't supplied."));
            }
        }
        for field in ["summary", "text"] {
            if output[field].as_str().is_some_and(|s| s.len() > 65_535) {
                return Err(format!("{field} exceeds a maximum bytesize of 65535"));
            }
        }
        if let Some(annotations) = output.get("annotations").and_then(Value::as_array) {
            if annotations.len() > 50 {
                return Err(format!("No more than 50 items are allowed; {} were supplied.", annotations.len()));
            }
            for a in annotations {
                for field in ["path", "start_line", "end_line", "annotation_level", "message"] {
                    if a.get(field).is_none() {
                        return Err(format!("annotation {field} wasn't supplied."));
                    }
                }
                if !a["annotation_level"].as_str().is_some_and(|l| LEVELS.contains(&l)) {
                    return Err(format!("annotation_level is not included in the list: {}", a["annotation_level"]));
                }
                if a["start_line"].as_u64().unwrap_or(0) < 1 || a["end_line"].as_u64() < a["start_line"].as_u64() {
                    return Err("annotation lines must start at 1 and end after they start".to_string());
                }
                if a["message"].as_str().is_some_and(|m| m.len() > 65_535) || a["title"].as_str().is_some_and(|t| t.chars().count() > 255) {
                    return Err("annotation message or title too long".to_string());
                }
            }
            if let Err(e) = serde_json::from_value::<Vec<super::Annotation>>(Value::Array(annotations.clone())) {
                return Err(format!("annotation fields have the wrong types: {e}"));
            }
        }
    }
    if let Some(actions) = body.get("actions").and_then(Value::as_array) {
        if actions.len() > 3 {
            return Err("No more than 3 actions are allowed".to_string());
        }
        for a in actions {
            let len = |f: &str| a[f].as_str().map(|s| s.chars().count());
            if len("label").is_none_or(|n| n > 20) || len("description").is_none_or(|n| n > 40) || len("identifier").is_none_or(|n| n > 20)
            {
                return Err(format!("action {a} exceeds label 20, description 40 or identifier 20 characters"));
            }
        }
        if let Err(e) = serde_json::from_value::<Vec<super::CheckRunAction>>(Value::Array(actions.clone())) {
            return Err(format!("action fields have the wrong types: {e}"));
        }
    }
    Ok(())
}

fn apply(run: &mut CheckRunRecord, body: &Value) {
    let text = |f: &str| body[f].as_str().map(str::to_string);
    if let Some(s) = text("name") {
        run.name = s;
    }
    if let Some(s) = text("details_url") {
        run.details_url = Some(s);
    }
    if let Some(s) = text("external_id") {
        run.external_id = Some(s);
    }
    if let Some(s) = text("started_at") {
        run.started_at = Some(s);
    }
    if let Some(s) = text("completed_at") {
        run.completed_at = Some(s);
    }
    // Validation let through only known values, and `completed` only with a conclusion.
    if let Some(state) = text("status").as_deref().and_then(CheckRunState::from_status) {
        run.state = state;
    }
    if let Some(state) = text("conclusion").as_deref().and_then(CheckRunState::from_conclusion) {
        run.state = state;
    }
    if let Some(output) = body.get("output") {
        run.title = output["title"].as_str().map(str::to_string);
        run.summary = output["summary"].as_str().map(str::to_string);
        if let Some(t) = output["text"].as_str() {
            run.text = Some(t.to_string());
        }
        let annotations: Vec<super::Annotation> =
            serde_json::from_value(output.get("annotations").cloned().unwrap_or(json!([]))).expect("validated annotations");
        run.annotation_batches.push(annotations.len());
        run.annotations.extend(annotations);
    }
    if let Some(actions) = body.get("actions") {
        run.actions = serde_json::from_value(actions.clone()).expect("validated actions");
    }
    run.history.push(run.state);
}

fn check_run_json(run: &CheckRunRecord) -> Value {
    json!({ "id": run.id, "name": run.name, "head_sha": run.head_sha, "status": run.state.status(), "conclusion": run.state.conclusion(), "external_id": run.external_id, "details_url": run.details_url, "started_at": run.started_at, "completed_at": run.completed_at })
}

async fn create_check_run(
    State(shared): State<Shared_>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (slug, body) = match authorized_write(&shared, &headers, &owner, &repo, &body, ("checks", "write")) {
        Ok(ok) => ok,
        Err(e) => return refuse(e),
    };
    if let Err(message) = validate_check_run(&body, true) {
        return invalid(message);
    }
    let sha = body["head_sha"].as_str().unwrap().to_string();
    if !commit_exists(&shared, &slug, &sha) {
        return invalid(format!("No commit found for SHA: {sha}"));
    }
    let mut state = shared.state.lock().unwrap();
    let mut run = CheckRunRecord {
        id: 90_000 + state.check_runs.len() as u64,
        repo: slug,
        name: String::new(),
        head_sha: sha,
        state: CheckRunState::Queued,
        external_id: None,
        details_url: None,
        title: None,
        summary: None,
        text: None,
        annotations: Vec::new(),
        started_at: None,
        completed_at: None,
        actions: Vec::new(),
        annotation_batches: Vec::new(),
        history: Vec::new(),
    };
    apply(&mut run, &body);
    let reply = check_run_json(&run);
    state.check_runs.push(run);
    shared.changed.notify_waiters();
    (StatusCode::CREATED, axum::Json(reply)).into_response()
}

async fn update_check_run(
    State(shared): State<Shared_>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (slug, body) = match authorized_write(&shared, &headers, &owner, &repo, &body, ("checks", "write")) {
        Ok(ok) => ok,
        Err(e) => return refuse(e),
    };
    if let Err(message) = validate_check_run(&body, false) {
        return invalid(message);
    }
    let mut state = shared.state.lock().unwrap();
    let Some(run) = state.check_runs.iter_mut().find(|c| c.id == id && c.repo == slug) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    apply(run, &body);
    shared.changed.notify_waiters();
    axum::Json(check_run_json(run)).into_response()
}

async fn list_check_runs(
    State(shared): State<Shared_>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let slug = match authorized(&shared, &headers, &owner, &repo, ("checks", "read")) {
        Ok(slug) => slug,
        Err(e) => return refuse(e),
    };
    let state = shared.state.lock().unwrap();
    let runs: Vec<Value> = state
        .check_runs
        .iter()
        .filter(|c| c.repo == slug && c.head_sha == sha && q.get("check_name").is_none_or(|n| n == &c.name))
        .map(check_run_json)
        .collect();
    axum::Json(json!({ "total_count": runs.len(), "check_runs": runs })).into_response()
}

/// Git smart HTTP through `git http-backend`, with GitHub's token rule: the
/// user is `x-access-token` and the password an installation token.
async fn git_http(
    State(shared): State<Shared_>,
    Path((owner, repo)): Path<(String, String)>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(name) = repo.strip_suffix(".git") else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let slug = format!("{owner}/{name}");
    let private = shared.state.lock().unwrap().repos.get(&slug).map(|r| r.private);
    let Some(private) = private else {
        return error(StatusCode::NOT_FOUND, "Repository not found");
    };
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some(("x-access-token", token)) => {
            if let Err(e) = check_token(&shared, Some(token.to_string()), &slug, ("contents", "read")) {
                return refuse(e);
            }
        }
        Some(_) => return error(StatusCode::UNAUTHORIZED, "Invalid username or password."),
        None if private => {
            return (StatusCode::UNAUTHORIZED, [("www-authenticate", "Basic realm=\"GitHub\"")], "").into_response();
        }
        None => {}
    }
    let root = shared.root.path().to_path_buf();
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or_default())
        .env("REQUEST_METHOD", method.as_str())
        .env("CONTENT_TYPE", header("content-type"))
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", "x-access-token")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("git http-backend");
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&body).await;
    });
    let out = child.wait_with_output().await.unwrap();
    let _ = writer.await;
    let raw = out.stdout;
    let split =
        raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| (p, 4)).or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2)));
    let Some((end, sep)) = split else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "git http-backend said nothing");
    };
    let mut response = Response::new(Body::from(raw[end + sep..].to_vec()));
    for line in String::from_utf8_lossy(&raw[..end]).lines() {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("status") {
                *response.status_mut() = StatusCode::from_u16(v[..3].parse().unwrap_or(500)).unwrap();
            } else if let (Ok(name), Ok(value)) = (k.parse::<axum::http::HeaderName>(), v.parse()) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}
