//! The Drone API and the build pages as a client sees them: verbs that know
//! the paths, so scenarios say "restart build 1" instead of spelling a URL,
//! and typed views of the answers, so they read fields instead of indexing JSON.

use super::app::{API_TOKEN, Answer};
use greenlight::store::Status;
use serde::Deserialize;
use serde_json::{Value, json};

/// The API of one repository, called as the admin or as a guest.
#[derive(Clone)]
pub struct DroneApi {
    http: reqwest::Client,
    base: String,
    slug: String,
    admin: bool,
}

/// A build as the API shows it.
#[derive(Debug, Deserialize)]
pub struct ApiBuild {
    /// Number.
    pub number: i64,
    /// The build it reruns, or 0.
    #[serde(default)]
    pub parent: i64,
    /// Status.
    pub status: Status,
    /// Commit.
    pub after: String,
    /// Event.
    pub event: String,
    /// `@hook` or who restarted it.
    pub trigger: String,
    /// Stages (only on single builds).
    #[serde(default)]
    pub stages: Vec<ApiStage>,
}

/// A stage as the API shows it.
#[derive(Debug, Deserialize)]
pub struct ApiStage {
    /// Pipeline name.
    pub name: String,
    /// Status.
    pub status: Status,
}

/// A cron job as the API shows it.
#[derive(Debug, Deserialize)]
pub struct ApiCron {
    /// Name.
    pub name: String,
    /// Expression.
    pub expr: String,
    /// Branch built.
    pub branch: String,
    /// Next tick, Unix seconds.
    pub next: i64,
    /// Last tick fired, Unix seconds.
    pub prev: i64,
    /// Whether ticks are skipped.
    pub disabled: bool,
}

/// A secret as the API shows it (never its value).
#[derive(Debug, Deserialize)]
pub struct ApiSecret {
    /// Name.
    pub name: String,
    /// Whether pull requests get it.
    pub pull_request: bool,
}

/// A repository as the API shows it.
#[derive(Debug, Deserialize)]
pub struct ApiRepo {
    /// `owner/name`.
    pub slug: String,
    /// Whether forks need approval.
    pub protected: bool,
    /// Whether the App is installed on it.
    pub active: bool,
}

impl Answer {
    /// The body as `T`; panics with the body when it has another shape.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.body.clone())
            .unwrap_or_else(|e| panic!("{} answer is not a {}: {e}: {}", self.status, std::any::type_name::<T>(), self.body))
    }

    /// The `message` of an error (or of a webhook answer).
    pub fn message(&self) -> Option<&str> {
        self.body.get("message").and_then(Value::as_str)
    }

    /// The body as text, to check something never appears in it.
    pub fn text(&self) -> String {
        self.body.to_string()
    }
}

/// One artifact as `GET .../builds/{number}/artifacts` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ApiArtifact {
    pub name: String,
    pub size: u64,
    pub stage: i64,
    pub step: String,
    pub url: String,
}

/// A file downloaded: status, headers, bytes.
pub struct Download {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Download {
    /// A header's value, or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

impl DroneApi {
    /// `GET .../builds/{number}/artifacts` as it answered.
    pub async fn artifacts_answer(&self, number: i64) -> Answer {
        self.call("GET", &format!("/api/repos/{}/builds/{number}/artifacts", self.slug), None).await
    }

    /// The artifacts of build `number` (the call must succeed).
    pub async fn artifacts(&self, number: i64) -> Vec<ApiArtifact> {
        let answer = self.artifacts_answer(number).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer.json()
    }

    /// Downloads an absolute `url` (an artifact's, under the public URL,
    /// which is this server), with the token when admin.
    pub async fn download(&self, url: &str) -> Download {
        let path = url.strip_prefix(super::app::PUBLIC_URL).expect("an absolute URL under the public URL");
        let mut request = self.http.get(format!("{}{path}", self.base));
        if self.admin {
            request = request.bearer_auth(API_TOKEN);
        }
        let response = request.send().await.expect("greenlight answers");
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        Download { status, headers, bytes: response.bytes().await.unwrap_or_default().to_vec() }
    }

    pub(crate) fn new(base: String, slug: &str, admin: bool) -> Self {
        Self { http: reqwest::Client::new(), base, slug: slug.to_string(), admin }
    }

    /// The same API as a guest (no token).
    pub fn guest(&self) -> Self {
        Self { admin: false, ..self.clone() }
    }

    /// Any call; `path` is relative to the server.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method.parse().unwrap(), format!("{}{path}", self.base));
        if self.admin {
            request = request.bearer_auth(API_TOKEN);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("greenlight answers");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Answer { status, body }
    }

    /// `GET` `path` as text: its status and body (badges are SVG and XML, not JSON).
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if self.admin {
            request = request.bearer_auth(API_TOKEN);
        }
        let response = request.send().await.expect("greenlight answers");
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    }

    /// The repository's status badge (SVG) on its default branch, or on `?ref=`.
    pub async fn badge(&self, git_ref: Option<&str>) -> (u16, String) {
        let query = git_ref.map(|r| format!("?ref={r}")).unwrap_or_default();
        self.get_text(&format!("/api/badges/{}/status.svg{query}", self.slug)).await
    }

    /// The repository's CCMenu feed.
    pub async fn cc_xml(&self) -> (u16, String) {
        self.get_text(&format!("/api/badges/{}/cc.xml", self.slug)).await
    }

    /// The repository it calls about, `owner/name`.
    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// The same API for another repository `slug` (unknown ones included).
    pub fn of_repo(&self, slug: &str) -> Self {
        Self { slug: slug.to_string(), ..self.clone() }
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/api/repos/{}{rest}", self.slug)
    }

    /// The numbers of the builds `GET /api/repos/{o}/{n}/builds` lists, newest first.
    pub async fn build_numbers(&self) -> Vec<i64> {
        let answer = self.call("GET", &self.repo_path("/builds"), None).await;
        assert_eq!(answer.status, 200, "listing builds: {:?}", answer.body);
        answer.json::<Vec<serde_json::Value>>().iter().map(|b| b["number"].as_i64().expect("builds have numbers")).collect()
    }

    /// `GET` a build by number.
    pub async fn build(&self, number: i64) -> Answer {
        self.call("GET", &self.repo_path(&format!("/builds/{number}")), None).await
    }

    /// Asks for a build of `branch` (Drone: `POST /builds?branch=B&K=V`,
    /// `drone build create`); `params` become the steps' variables.
    pub async fn create_build(&self, branch: &str, params: &[(&str, &str)]) -> Answer {
        let mut query = vec![("branch", branch)];
        query.extend_from_slice(params);
        let query = serde_urlencoded::to_string(&query).unwrap();
        self.call("POST", &self.repo_path(&format!("/builds?{query}")), None).await
    }

    /// Creates cron job `name` building `branch` on `expr` (Drone: `POST /cron`).
    pub async fn create_cron(&self, name: &str, expr: &str, branch: &str) -> Answer {
        self.call("POST", &self.repo_path("/cron"), Some(json!({ "name": name, "expr": expr, "branch": branch }))).await
    }

    /// A cron job (Drone: `GET /cron/{name}`).
    pub async fn cron(&self, name: &str) -> ApiCron {
        let answer = self.call("GET", &self.repo_path(&format!("/cron/{name}")), None).await;
        assert_eq!(answer.status, 200, "reading cron job {name}: {:?}", answer.body);
        answer.json()
    }

    /// Changes a cron job (Drone: `PATCH /cron/{name}`).
    pub async fn update_cron(&self, name: &str, changes: Value) -> Answer {
        self.call("PATCH", &self.repo_path(&format!("/cron/{name}")), Some(changes)).await
    }

    /// Runs a cron job now (Drone: `POST /cron/{name}`).
    pub async fn run_cron(&self, name: &str) -> Answer {
        self.call("POST", &self.repo_path(&format!("/cron/{name}")), None).await
    }

    /// Restarts a build (Drone: `POST /builds/{n}`).
    pub async fn restart(&self, number: i64) -> Answer {
        self.call("POST", &self.repo_path(&format!("/builds/{number}")), None).await
    }

    /// Cancels a build (Drone: `DELETE /builds/{n}`).
    pub async fn cancel(&self, number: i64) -> Answer {
        self.call("DELETE", &self.repo_path(&format!("/builds/{number}")), None).await
    }

    /// Approves a blocked stage.
    pub async fn approve(&self, number: i64, stage: i64) -> Answer {
        self.call("POST", &self.repo_path(&format!("/builds/{number}/approve/{stage}")), None).await
    }

    /// Changes repository settings.
    pub async fn update_repo(&self, settings: Value) -> Answer {
        self.call("PATCH", &self.repo_path(""), Some(settings)).await
    }

    /// Makes fork pull requests wait for approval (or not).
    pub async fn set_protected(&self, protected: bool) -> Answer {
        self.update_repo(json!({ "protected": protected })).await
    }

    /// Lists the repository's secrets.
    pub async fn secrets(&self) -> Answer {
        self.call("GET", &self.repo_path("/secrets"), None).await
    }

    /// Reads one secret.
    pub async fn secret(&self, name: &str) -> Answer {
        self.call("GET", &self.repo_path(&format!("/secrets/{name}")), None).await
    }

    /// Creates a secret; `pull_request` unset leaves Drone's default.
    pub async fn create_secret(&self, name: &str, data: &str, pull_request: Option<bool>) -> Answer {
        let mut body = json!({"name": name, "data": data});
        if let Some(allowed) = pull_request {
            body["pull_request"] = json!(allowed);
        }
        self.call("POST", &self.repo_path("/secrets"), Some(body)).await
    }

    /// Changes whether pull requests get a secret.
    pub async fn allow_secret_for_pull_requests(&self, name: &str, allowed: bool) -> Answer {
        self.call("PATCH", &self.repo_path(&format!("/secrets/{name}")), Some(json!({"pull_request": allowed}))).await
    }

    /// Deletes a secret.
    pub async fn delete_secret(&self, name: &str) -> Answer {
        self.call("DELETE", &self.repo_path(&format!("/secrets/{name}")), None).await
    }

    /// The log of step `step` of stage `stage` of build `number`, as the API
    /// serves it, line by line (position, text, time).
    pub async fn log_lines(&self, number: i64, stage: i64, step: i64) -> Vec<greenlight::store::LogLine> {
        let answer = self.call("GET", &self.repo_path(&format!("/builds/{number}/logs/{stage}/{step}")), None).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        serde_json::from_value(answer.body).expect("a log is a list of lines")
    }

    /// The log of step `step` of stage `stage` of build `number`, as the API
    /// serves it, as one text.
    pub async fn log_text(&self, number: i64, stage: i64, step: i64) -> String {
        let answer = self.call("GET", &self.repo_path(&format!("/builds/{number}/logs/{stage}/{step}")), None).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body.as_array().expect("a log is a list of lines").iter().filter_map(|l| l["out"].as_str()).collect()
    }
}

/// A page as a browser got it (redirects not followed).
#[derive(Debug)]
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body.
    pub text: String,
}

impl Page {
    /// Where a redirect points.
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    /// The `set-cookie` header, whole.
    pub fn set_cookie(&self) -> Option<&str> {
        self.headers.get("set-cookie").and_then(|v| v.to_str().ok())
    }
}

/// A browser on the build pages of one repository: no redirects followed,
/// and a session cookie once logged in.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    slug: String,
    cookie: Option<String>,
}

impl Browser {
    pub(crate) fn new(base: String, slug: &str) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, base, slug: slug.to_string(), cookie: None }
    }

    async fn get(&self, path: &str) -> Page {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        Self::page(request.send().await.expect("greenlight answers")).await
    }

    async fn page(response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        Page { status, headers, text: response.text().await.unwrap_or_default() }
    }

    /// Any page, by path.
    pub async fn open(&self, path: &str) -> Page {
        self.get(path).await
    }

    /// The page of build `number`.
    pub async fn build_page(&self, number: i64) -> Page {
        self.get(&format!("/{}/{number}", self.slug)).await
    }

    /// The repository's list of builds.
    pub async fn builds_page(&self) -> Page {
        self.get(&format!("/{}", self.slug)).await
    }

    /// Submits the login form with `token`, to come back to build `number`;
    /// keeps the session cookie it is given.
    pub async fn log_in(&mut self, token: &str, number: i64) -> Page {
        let next = format!("/{}/{number}", self.slug);
        self.log_in_to(token, &next).await
    }

    /// Submits the login form with `token` and any `next`; keeps the session cookie.
    pub async fn log_in_to(&mut self, token: &str, next: &str) -> Page {
        let response = self
            .http
            .post(format!("{}/login", self.base))
            .form(&[("token", token), ("next", next)])
            .send()
            .await
            .expect("greenlight answers");
        let page = Self::page(response).await;
        if let Some(cookie) = page.set_cookie() {
            self.cookie = cookie.split(';').next().map(str::to_string);
        }
        page
    }
}

/// Where a change a browser sends comes from, as its `Origin` header says.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// greenlight's own pages (the public URL's origin).
    OwnPage,
    /// Another site's page.
    Site(&'a str),
}

impl Browser {
    /// The CSRF token build page `number` carries for this browser's session.
    pub async fn csrf_token(&self, number: i64) -> Option<String> {
        let page = self.build_page(number).await.text;
        let start = page.find("<meta name=\"csrf-token\" content=\"")? + "<meta name=\"csrf-token\" content=\"".len();
        Some(page[start..].split('"').next()?.to_string())
    }

    /// Restarts build `number` as the page's button does (`POST`, with the
    /// session cookie), from `origin`, with `csrf` in its header if given.
    pub async fn restart(&self, number: i64, origin: Origin<'_>, csrf: Option<&str>) -> Page {
        let mut request = self.http.post(format!("{}/api/repos/{}/builds/{number}", self.base, self.slug));
        let origin = match origin {
            Origin::OwnPage => super::app::PUBLIC_URL,
            Origin::Site(site) => site,
        };
        request = request.header("origin", origin);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        Self::page(request.send().await.expect("greenlight answers")).await
    }

    /// The badge URL the build list shows a logged-in admin, as a path of the server.
    pub async fn badge_path(&self) -> Option<String> {
        let page = self.builds_page().await.text;
        let start = page.find("<code id=\"badge-url\">")? + "<code id=\"badge-url\">".len();
        let url = page[start..].split('<').next()?.replace("&amp;", "&");
        Some(url.strip_prefix(super::app::PUBLIC_URL)?.to_string())
    }

    /// Logs out with the page's logout form (its CSRF token, from this site); keeps the cookie it had.
    pub async fn log_out(&self, csrf: &str) -> Page {
        let mut request = self.http.post(format!("{}/logout", self.base)).header("origin", super::app::PUBLIC_URL).form(&[("csrf", csrf)]);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        Self::page(request.send().await.expect("greenlight answers")).await
    }
}

/// A server-sent event stream of the API, read as raw text.
pub struct EventStream {
    /// The HTTP status it was answered with.
    pub status: u16,
    /// The `content-type` it was served with.
    pub content_type: String,
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    text: String,
}

impl EventStream {
    /// Reads a log stream to its `eof`; returns the lines it sent.
    pub async fn log_lines_to_eof(&mut self) -> Vec<greenlight::store::LogLine> {
        let text = self.read_until("data: eof").await;
        text.lines()
            .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
            .filter(|data| *data != "eof")
            .map(|data| serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}")))
            .collect()
    }

    /// Reads until the text so far contains `until`; returns all of it.
    /// Fails if the stream ends, or goes quiet for the whole expectation timeout.
    pub async fn read_until(&mut self, until: &str) -> String {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + super::fake_github::expect_timeout();
        while !self.text.contains(until) {
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .unwrap_or_else(|_| panic!("stream went quiet before {until:?}: {}", self.text))
                .expect("stream ended")
                .unwrap();
            self.text.push_str(&String::from_utf8_lossy(&chunk));
        }
        self.text.clone()
    }
}

impl DroneApi {
    async fn stream(&self, path: &str) -> EventStream {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if self.admin {
            request = request.bearer_auth(API_TOKEN);
        }
        let response = request.send().await.expect("greenlight answers");
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        EventStream { status: response.status().as_u16(), content_type, body: Box::pin(response.bytes_stream()), text: String::new() }
    }

    /// The live log of step `step` of stage `stage` of build `number`.
    pub async fn log_stream(&self, number: i64, stage: i64, step: i64) -> EventStream {
        self.stream(&format!("/api/stream/{}/{number}/{stage}/{step}", self.slug)).await
    }

    /// The stream of build events of every repository.
    pub async fn build_events(&self) -> EventStream {
        self.stream("/api/stream").await
    }
}
