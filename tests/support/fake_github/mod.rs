//! A stateful fake of the parts of GitHub's REST API that greenlight uses,
//! as strict as GitHub: it verifies the App JWT against the public key,
//! issues expiring installation tokens, and refuses what GitHub refuses
//! (long status descriptions, more than 50 annotations, outputs over 65,535
//! bytes, missing fields). Failures can be injected on demand.

mod app_routes;
mod conversation;
mod git;
mod routes;

pub use app_routes::{LoggedDelivery, RegisteredApp};
pub use conversation::{APP_LOGIN, Comment};
pub use git::GitRepo;

use octocrab::jsonwebtoken::DecodingKey;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The App id the fake knows.
pub const APP_ID: u64 = 4242;

/// A commit status state, as GitHub's statuses API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    /// `pending`.
    Pending,
    /// `success`.
    Success,
    /// `failure`.
    Failure,
    /// `error`.
    Error,
}

impl StatusState {
    /// Parses GitHub's wire name; `None` for anything GitHub refuses.
    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "success" => Self::Success,
            "failure" => Self::Failure,
            "error" => Self::Error,
            _ => return None,
        })
    }
}

/// Benches (which cannot be edited from this branch) compare states with wire names.
impl PartialEq<&str> for StatusState {
    fn eq(&self, other: &&str) -> bool {
        Self::from_wire(other) == Some(*self)
    }
}

/// Where a check run stands: its status while it is not completed, its
/// conclusion once it is (one value, so tests name one thing to wait for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckRunState {
    /// status `queued`.
    Queued,
    /// status `in_progress`.
    InProgress,
    /// conclusion `success`.
    Success,
    /// conclusion `failure`.
    Failure,
    /// conclusion `cancelled`.
    Cancelled,
    /// conclusion `timed_out`.
    TimedOut,
    /// conclusion `skipped`.
    Skipped,
    /// conclusion `neutral`.
    Neutral,
    /// conclusion `action_required`.
    ActionRequired,
}

impl CheckRunState {
    /// A status GitHub accepts other than `completed` (which needs a conclusion).
    pub fn from_status(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "in_progress" => Self::InProgress,
            _ => return None,
        })
    }

    /// A conclusion GitHub accepts.
    pub fn from_conclusion(s: &str) -> Option<Self> {
        Some(match s {
            "success" => Self::Success,
            "failure" => Self::Failure,
            "cancelled" => Self::Cancelled,
            "timed_out" => Self::TimedOut,
            "skipped" => Self::Skipped,
            "neutral" => Self::Neutral,
            "action_required" => Self::ActionRequired,
            _ => return None,
        })
    }

    /// GitHub's `status` field for this state.
    pub fn status(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::InProgress => "in_progress",
            _ => "completed",
        }
    }

    /// GitHub's `conclusion` field for this state (`None` until completed).
    pub fn conclusion(self) -> Option<&'static str> {
        Some(match self {
            Self::Queued | Self::InProgress => return None,
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::Skipped => "skipped",
            Self::Neutral => "neutral",
            Self::ActionRequired => "action_required",
        })
    }

    /// Whether the run is completed (has a conclusion).
    pub fn is_completed(self) -> bool {
        self.conclusion().is_some()
    }
}

/// An annotation level GitHub accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationLevel {
    /// `notice`.
    Notice,
    /// `warning`.
    Warning,
    /// `failure`.
    Failure,
}

/// One check run annotation as GitHub stored it (typed, so tests read fields, not JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Annotation {
    /// Repository-relative path.
    pub path: String,
    /// First line (1-based).
    pub start_line: u64,
    /// Last line.
    pub end_line: u64,
    /// First column, when given.
    pub start_column: Option<u64>,
    /// Last column, when given.
    pub end_column: Option<u64>,
    /// Level.
    pub annotation_level: AnnotationLevel,
    /// Message.
    pub message: String,
    /// Title, when given.
    pub title: Option<String>,
}

/// A check run button (requested action).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct CheckRunAction {
    /// Button label.
    pub label: String,
    /// Tooltip.
    pub description: String,
    /// Sent back in `requested_action` when pressed.
    pub identifier: String,
}

/// A commit status as GitHub stored it.
#[derive(Debug, Clone)]
pub struct StatusRecord {
    /// Commit.
    pub sha: String,
    /// State.
    pub state: StatusState,
    /// Context.
    pub context: String,
    /// Description.
    pub description: String,
    /// Target URL.
    pub target_url: String,
}

/// A check run as GitHub stored it.
#[derive(Debug, Clone)]
pub struct CheckRunRecord {
    /// Id.
    pub id: u64,
    /// Repository slug.
    pub repo: String,
    /// Name.
    pub name: String,
    /// Commit.
    pub head_sha: String,
    /// Status, or conclusion once completed.
    pub state: CheckRunState,
    /// External id.
    pub external_id: Option<String>,
    /// Details URL.
    pub details_url: Option<String>,
    /// Output title.
    pub title: Option<String>,
    /// Output summary.
    pub summary: Option<String>,
    /// Output text.
    pub text: Option<String>,
    /// Every annotation received (appended across updates).
    pub annotations: Vec<Annotation>,
    /// started_at.
    pub started_at: Option<String>,
    /// completed_at.
    pub completed_at: Option<String>,
    /// Actions (buttons).
    pub actions: Vec<CheckRunAction>,
    /// Annotations received per request, in order.
    pub annotation_batches: Vec<usize>,
    /// State after each write, in order.
    pub history: Vec<CheckRunState>,
}

/// The fake's routes, by name, so tests inject failures on an endpoint
/// rather than on a method and a path substring that drift apart from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /app/installations/{id}/access_tokens`.
    InstallationToken,
    /// `GET /app/installations` (as the App).
    ListInstallations,
    /// `GET /installation/repositories` (as an installation).
    ListInstallationRepos,
    /// `GET /repos/{owner}/{repo}/contents/{path}`.
    Contents,
    /// `GET /repos/{owner}/{repo}`.
    GetRepo,
    /// `POST /repos/{owner}/{repo}/statuses/{sha}`.
    CreateStatus,
    /// `POST /repos/{owner}/{repo}/check-runs`.
    CreateCheckRun,
    /// `PATCH /repos/{owner}/{repo}/check-runs/{id}`.
    UpdateCheckRun,
    /// `GET /repos/{owner}/{repo}/commits/{sha}/check-runs`.
    ListCheckRuns,
    /// `GET /repos/{owner}/{repo}/compare/{base}...{head}`.
    Compare,
    /// `GET /repos/{owner}/{repo}/commits/{ref}`.
    GetCommit,
    /// `GET /repos/{owner}/{repo}/collaborators/{user}/permission`.
    Permission,
    /// `POST /repos/{owner}/{repo}/issues/comments/{id}/reactions`.
    CreateReaction,
    /// `POST /repos/{owner}/{repo}/issues/{number}/comments`.
    CreateComment,
    /// `GET /{owner}/{repo}.git/info/refs` (git smart HTTP discovery).
    GitInfoRefs,
    /// `POST /{owner}/{repo}.git/git-upload-pack` (git fetch).
    GitUploadPack,
    /// `POST /app-manifests/{code}/conversions`.
    ManifestConversion,
    /// `GET /app/hook/deliveries`.
    HookDeliveries,
    /// `GET /app/hook/deliveries/{id}`.
    HookDelivery,
}

impl Endpoint {
    /// Which route a request is for (its path with any Enterprise prefix
    /// already stripped); `None` for what the fake does not serve.
    pub fn classify(method: &str, path: &str) -> Option<Self> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        Some(match (method, segments.as_slice()) {
            ("POST", ["app", "installations", _, "access_tokens"]) => Self::InstallationToken,
            ("GET", ["app", "installations"]) => Self::ListInstallations,
            ("GET", ["installation", "repositories"]) => Self::ListInstallationRepos,
            ("GET", ["repos", _, _, "contents", ..]) => Self::Contents,
            ("GET", ["repos", _, _]) => Self::GetRepo,
            ("POST", ["repos", _, _, "statuses", _]) => Self::CreateStatus,
            ("POST", ["repos", _, _, "check-runs"]) => Self::CreateCheckRun,
            ("PATCH", ["repos", _, _, "check-runs", _]) => Self::UpdateCheckRun,
            ("GET", ["repos", _, _, "commits", _, "check-runs"]) => Self::ListCheckRuns,
            ("GET", ["repos", _, _, "compare", _]) => Self::Compare,
            ("GET", ["repos", _, _, "commits", _]) => Self::GetCommit,
            ("GET", ["repos", _, _, "collaborators", _, "permission"]) => Self::Permission,
            ("POST", ["repos", _, _, "issues", "comments", _, "reactions"]) => Self::CreateReaction,
            ("POST", ["repos", _, _, "issues", _, "comments"]) => Self::CreateComment,
            ("GET", [_, _, "info", "refs"]) => Self::GitInfoRefs,
            ("POST", [_, _, "git-upload-pack"]) => Self::GitUploadPack,
            ("POST", ["app-manifests", _, "conversions"]) => Self::ManifestConversion,
            ("GET", ["app", "hook", "deliveries"]) => Self::HookDeliveries,
            ("GET", ["app", "hook", "deliveries", _]) => Self::HookDelivery,
            _ => return None,
        })
    }
}

/// A failure matched on method and path substring: the raw form, kept
/// because benches/ (which this harness also serves) builds it. Tests use
/// [`FakeGitHub::fail_next`] and friends, by [`Endpoint`], instead.
#[derive(Debug, Clone)]
pub struct FailRule {
    /// Method to match.
    pub method: &'static str,
    /// Substring of the path to match.
    pub path_contains: String,
    /// Status to answer.
    pub status: u16,
    /// `retry-after` header to send.
    pub retry_after: Option<u64>,
    /// Carry the request out before failing (the answer was "lost").
    pub after_apply: bool,
    /// How many matching requests fail.
    pub times: usize,
}

/// Which requests an injected failure applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Matcher {
    /// Every request to one route.
    Endpoint(Endpoint),
    /// A method and a path substring ([`FailRule`]).
    Raw { method: &'static str, path_contains: String },
    /// One route, for paths holding a substring (one repository's).
    Within { endpoint: Endpoint, path_contains: String },
}

impl Matcher {
    pub(crate) fn matches(&self, method: &str, path: &str, endpoint: Option<Endpoint>) -> bool {
        match self {
            Self::Endpoint(e) => Some(*e) == endpoint,
            Self::Raw { method: m, path_contains } => *m == method && path.contains(path_contains.as_str()),
            Self::Within { endpoint: e, path_contains } => Some(*e) == endpoint && path.contains(path_contains.as_str()),
        }
    }
}

/// Requests held by [`FakeGitHub::hold`] go on when this is dropped.
pub struct Hold(Arc<tokio::sync::Semaphore>);

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A failure waiting to happen.
#[derive(Debug, Clone)]
pub(crate) struct Injected {
    pub matcher: Matcher,
    pub status: u16,
    pub retry_after: Option<u64>,
    pub after_apply: bool,
    pub times: usize,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path as the client sent it (with any Enterprise prefix).
    pub path: String,
    /// The route it was for, if the fake serves it.
    pub endpoint: Option<Endpoint>,
}

pub(crate) struct Repo {
    pub id: i64,
    pub private: bool,
    pub git: GitRepo,
}

pub(crate) struct Token {
    pub installation: u64,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The repositories (names) it was narrowed to, or `None` for all of the installation's.
    pub repositories: Option<Vec<String>>,
    /// What it may do, as GitHub grants it (`contents: read`, `checks: write`, …).
    pub permissions: std::collections::BTreeMap<String, String>,
}

#[derive(Default)]
pub(crate) struct State {
    pub installations: HashMap<u64, Vec<String>>,
    pub tokens: HashMap<String, Token>,
    pub repos: HashMap<String, Repo>,
    pub statuses: HashMap<String, Vec<StatusRecord>>,
    pub check_runs: Vec<CheckRunRecord>,
    pub failures: Vec<Injected>,
    /// Requests that wait until a test lets them through ([`FakeGitHub::hold`]).
    pub holds: Vec<(Matcher, Arc<tokio::sync::Semaphore>)>,
    pub requests: Vec<RequestRecord>,
    /// When the last request arrived (to see greenlight has gone quiet).
    pub last_request: Option<Instant>,
    pub tokens_minted: usize,
    /// Manifests confirmed on the "new App" page, by code.
    pub manifest_codes: HashMap<String, app_routes::ManifestCode>,
    /// The App registered from a manifest, once converted.
    pub registered: Option<RegisteredApp>,
    /// The App's webhook delivery log, oldest first.
    pub hook_deliveries: Vec<LoggedDelivery>,
    /// Requests counted against each rate limit (installation id, or `app`).
    pub rate_used: HashMap<String, u64>,
    /// Collaborators, comments and reactions.
    pub conversations: conversation::Conversations,
}

pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub key: DecodingKey,
    pub token_lifetime: Mutex<chrono::Duration>,
    pub root: tempfile::TempDir,
    pub addr: Mutex<Option<SocketAddr>>,
    /// Woken on every status or check run write.
    pub changed: tokio::sync::Notify,
}

/// The fake GitHub server.
#[derive(Clone)]
pub struct FakeGitHub {
    pub(crate) shared: Arc<Shared>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Path the REST API lives under ("" for github.com, "/api/v3" for Enterprise Server).
    pub prefix: &'static str,
}

/// A repository on the fake.
#[derive(Clone)]
pub struct RepoHandle {
    github: FakeGitHub,
    /// `owner/name`.
    pub slug: String,
    /// GitHub's id.
    pub id: i64,
    /// The installation covering it.
    pub installation: u64,
    /// Whether it is private.
    pub private: bool,
}

/// How long expectations wait for greenlight to act: generous, because
/// tests share two loaded cores; waits end as soon as their condition
/// holds. Multiplied by `GREENLIGHT_TEST_SLOWDOWN` (a whole number, default
/// 1) where the machine itself is slower: the cgroup v2 VM emulates its CPU.
pub fn expect_timeout() -> Duration {
    let slowdown = std::env::var("GREENLIGHT_TEST_SLOWDOWN").ok().and_then(|n| n.parse::<u32>().ok()).unwrap_or(1).max(1);
    Duration::from_secs(30) * slowdown
}

/// How long greenlight must leave GitHub alone to count as settled: longer
/// than the longest retry delay tests configure (200 ms).
pub const QUIET: Duration = Duration::from_millis(1000);

impl FakeGitHub {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> Self {
        Self::start_at("").await
    }

    /// Starts the fake with its REST API under `prefix`, as GitHub Enterprise
    /// Server serves it (`/api/v3`).
    pub async fn start_enterprise() -> Self {
        Self::start_at("/api/v3").await
    }

    async fn start_at(prefix: &'static str) -> Self {
        let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/test-app-key.pub.pem")).unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            key: DecodingKey::from_rsa_pem(&pem).unwrap(),
            token_lifetime: Mutex::new(chrono::Duration::hours(1)),
            root: tempfile::tempdir().unwrap(),
            addr: Mutex::new(None),
            changed: tokio::sync::Notify::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *shared.addr.lock().unwrap() = Some(addr);
        let api = if prefix.is_empty() {
            routes::router(shared.clone())
        } else {
            axum::Router::new().nest(prefix, routes::router(shared.clone()))
        };
        let app = api.merge(app_routes::web_router(shared.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { shared, addr, prefix }
    }

    /// The API base URL to configure greenlight with.
    pub fn api_url(&self) -> String {
        format!("http://{}{}", self.addr, self.prefix)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    /// Creates a repository with the App installed on it.
    pub fn repo(&self, slug: &str) -> RepoHandle {
        self.repo_with(slug, false)
    }

    /// Creates a private repository with the App installed on it.
    pub fn private_repo(&self, slug: &str) -> RepoHandle {
        self.repo_with(slug, true)
    }

    fn repo_with(&self, slug: &str, private: bool) -> RepoHandle {
        let installation = 7000 + self.state().repos.len() as u64;
        self.repo_in(slug, private, installation)
    }

    /// Creates `count` public repositories `owner/repo-N` that one
    /// installation covers, as an organisation installing the App on all
    /// its repositories.
    pub fn many_repos(&self, owner: &str, count: usize) -> Vec<RepoHandle> {
        let installation = 7000 + self.state().repos.len() as u64;
        (0..count).map(|n| self.repo_in(&format!("{owner}/repo-{n}"), false, installation)).collect()
    }

    fn repo_in(&self, slug: &str, private: bool, installation: u64) -> RepoHandle {
        let git = GitRepo::create(self.shared.root.path(), slug);
        let mut state = self.state();
        let id = 1000 + state.repos.len() as i64;
        state.installations.entry(installation).or_default().push(slug.to_string());
        state.repos.insert(slug.to_string(), Repo { id, private, git });
        RepoHandle { github: self.clone(), slug: slug.to_string(), id, installation, private }
    }

    /// Removes the App from a repository's installation (GitHub then lists
    /// it no more, and refuses its tokens for it).
    pub fn uninstall(&self, repo: &RepoHandle) {
        if let Some(repos) = self.state().installations.get_mut(&repo.installation) {
            repos.retain(|slug| slug != &repo.slug);
        }
    }

    /// Installation tokens live this long (GitHub: one hour).
    pub fn set_token_lifetime(&self, lifetime: chrono::Duration) {
        *self.shared.token_lifetime.lock().unwrap() = lifetime;
    }

    /// Revokes every installation token issued so far.
    pub fn revoke_tokens(&self) {
        self.state().tokens.clear();
    }

    /// How many installation tokens were minted.
    pub fn tokens_minted(&self) -> usize {
        self.state().tokens_minted
    }

    /// Every installation token issued (to check none leaks).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state().tokens.keys().cloned().collect()
    }

    /// Every token issued that was narrowed to some repositories (as a
    /// clone's is): the token, its repositories and its permissions.
    pub fn narrowed_tokens(&self) -> Vec<(String, Vec<String>, std::collections::BTreeMap<String, String>)> {
        let state = self.state();
        state.tokens.iter().filter_map(|(k, t)| t.repositories.clone().map(|r| (k.clone(), r, t.permissions.clone()))).collect()
    }

    /// Asks the fake, with `token`, to set a commit status (to check what a token may do): the HTTP status.
    pub async fn try_create_status(&self, repo: &RepoHandle, sha: &str, token: &str) -> u16 {
        let url = format!("{}/repos/{}/statuses/{sha}", self.api_url(), repo.slug);
        let body = serde_json::json!({"state": "success", "context": "probe"});
        let client = reqwest::Client::new();
        client.post(url).bearer_auth(token).json(&body).send().await.expect("the fake answers").status().as_u16()
    }

    fn inject(&self, matcher: Matcher, status: u16, retry_after: Option<u64>, after_apply: bool, times: usize) {
        self.state().failures.push(Injected { matcher, status, retry_after, after_apply, times });
    }

    /// Makes requests to `endpoint` for the repository `slug` wait, as a
    /// GitHub that is slow for one repository would, until the returned
    /// hold is dropped. Each still counts as received when it arrives.
    pub fn hold(&self, endpoint: Endpoint, slug: &str) -> Hold {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let matcher = Matcher::Within { endpoint, path_contains: format!("/repos/{slug}/") };
        self.state().holds.push((matcher, gate.clone()));
        Hold(gate)
    }

    /// Makes requests matching a raw rule fail (benches use it; tests name an [`Endpoint`]).
    pub fn fail(&self, rule: FailRule) {
        let matcher = Matcher::Raw { method: rule.method, path_contains: rule.path_contains };
        self.inject(matcher, rule.status, rule.retry_after, rule.after_apply, rule.times);
    }

    /// Fails the next `times` requests to `endpoint` with `status`.
    pub fn fail_next(&self, endpoint: Endpoint, status: u16, times: usize) {
        self.inject(Matcher::Endpoint(endpoint), status, None, false, times);
    }

    /// Makes the next request to `endpoint` answer 403 with `retry-after`,
    /// as a secondary rate limit does.
    pub fn rate_limit(&self, endpoint: Endpoint, retry_after: u64) {
        self.inject(Matcher::Endpoint(endpoint), 403, Some(retry_after), false, 1);
    }

    /// Carries out the next request to `endpoint` but answers 502, as when
    /// GitHub acted and the answer was lost.
    pub fn lose_answer(&self, endpoint: Endpoint) {
        self.inject(Matcher::Endpoint(endpoint), 502, None, true, 1);
    }

    /// How many injected failures on `endpoint` have not happened yet.
    pub fn failures_left(&self, endpoint: Endpoint) -> usize {
        self.state().failures.iter().filter(|r| r.matcher == Matcher::Endpoint(endpoint)).map(|r| r.times).sum()
    }

    /// Waits until every failure injected on `endpoint` has been served, so a
    /// test knows greenlight met the whole outage.
    pub async fn expect_failures_spent(&self, endpoint: Endpoint) {
        let spent = self.wait_for(|| (self.failures_left(endpoint) == 0).then_some(())).await;
        assert!(spent.is_some(), "{} injected failures on {endpoint:?} never happened", self.failures_left(endpoint));
    }

    /// The App registered through the manifest flow, once greenlight converted its code.
    pub fn registered_app(&self) -> Option<RegisteredApp> {
        self.state().registered.clone()
    }

    /// Records an attempt at delivering `hook` in the App's delivery log, as
    /// GitHub does for every delivery: `status_code` is what the receiver
    /// answered (0 when it could not be reached). Returns the attempt's id.
    pub fn log_delivery(&self, hook: &super::webhook::Webhook, status_code: u16) -> u64 {
        let payload: Value = serde_json::from_slice(&hook.body).expect("a webhook body is JSON");
        let mut state = self.state();
        let id = 90_000_000 + state.hook_deliveries.len() as u64;
        let redelivery = state.hook_deliveries.iter().any(|d| d.guid == hook.guid);
        state.hook_deliveries.push(LoggedDelivery {
            id,
            guid: hook.guid.clone(),
            event: hook.event.to_string(),
            action: payload["action"].as_str().map(str::to_string),
            status_code,
            redelivery,
            delivered_at: chrono::Utc::now(),
            payload,
        });
        id
    }

    /// Requests received, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state().requests.clone()
    }

    /// Requests to `endpoint` received so far.
    pub fn requests_to(&self, endpoint: Endpoint) -> usize {
        self.state().requests.iter().filter(|r| r.endpoint == Some(endpoint)).count()
    }

    /// Requests that did not go under the fake's API prefix (all of them
    /// must, on GitHub Enterprise Server).
    pub fn requests_outside_prefix(&self) -> Vec<RequestRecord> {
        let prefix = format!("{}/", self.prefix);
        self.requests().into_iter().filter(|r| !r.path.starts_with(&prefix)).collect()
    }

    /// Waits until greenlight has gone quiet: no request for [`QUIET`]. A
    /// condition, not a fixed sleep: it returns as soon as the quiet period
    /// passes, and keeps waiting (up to [`expect_timeout`]) while greenlight
    /// is still calling. Tests use it before asserting that nothing more happens.
    pub async fn settle(&self) {
        let deadline = Instant::now() + expect_timeout();
        loop {
            let last = self.state().last_request;
            let quiet_for = last.map_or(QUIET, |t| t.elapsed());
            if quiet_for >= QUIET {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "greenlight kept calling GitHub: {:#?}",
                self.requests().iter().rev().take(5).collect::<Vec<_>>()
            );
            tokio::time::sleep(QUIET - quiet_for).await;
        }
    }

    /// Every status set on a commit, oldest first.
    pub fn statuses(&self, repo: &RepoHandle, sha: &str) -> Vec<StatusRecord> {
        self.state().statuses.get(&format!("{}@{sha}", repo.slug)).cloned().unwrap_or_default()
    }

    /// Every check run on a commit, oldest first.
    pub fn check_runs(&self, repo: &RepoHandle, sha: &str) -> Vec<CheckRunRecord> {
        self.state().check_runs.iter().filter(|c| c.repo == repo.slug && c.head_sha == sha).cloned().collect()
    }

    /// Waits until the latest status of `context` on `sha` has `state`; returns it.
    pub async fn expect_status(&self, repo: &RepoHandle, sha: &str, context: &str, state: StatusState) -> StatusRecord {
        let found =
            self.wait_for(|| self.statuses(repo, sha).into_iter().rev().find(|s| s.context == context).filter(|s| s.state == state)).await;
        found.unwrap_or_else(|| panic!("no {state:?} status {context} on {sha}; statuses: {:#?}", self.statuses(repo, sha)))
    }

    /// Waits until the newest check run named `name` on `sha` is in `state`; returns it.
    pub async fn expect_check_run(&self, repo: &RepoHandle, sha: &str, name: &str, state: CheckRunState) -> CheckRunRecord {
        let found =
            self.wait_for(|| self.check_runs(repo, sha).into_iter().rev().find(|c| c.name == name).filter(|c| c.state == state)).await;
        found.unwrap_or_else(|| panic!("no {state:?} check run {name} on {sha}; check runs: {:#?}", self.check_runs(repo, sha)))
    }

    /// Waits until some check run on `sha` matches `probe`; returns it.
    pub async fn expect_check_run_where(
        &self,
        repo: &RepoHandle,
        sha: &str,
        what: &str,
        probe: impl Fn(&CheckRunRecord) -> bool,
    ) -> CheckRunRecord {
        let found = self.wait_for(|| self.check_runs(repo, sha).into_iter().find(|c| probe(c))).await;
        found.unwrap_or_else(|| panic!("no check run on {sha} {what}; check runs: {:#?}", self.check_runs(repo, sha)))
    }

    /// Why `sha` cannot merge under a branch protection rule requiring the
    /// checks `required` (names of check runs or status contexts), as GitHub
    /// decides it: each needs its newest check run of that name concluded
    /// `success`, `neutral` or `skipped`, or its newest status of that
    /// context `success`. `Ok` when every one is satisfied.
    pub fn required_checks(&self, repo: &RepoHandle, sha: &str, required: &[&str]) -> Result<(), String> {
        let (runs, statuses) = (self.check_runs(repo, sha), self.statuses(repo, sha));
        let unmet: Vec<String> = required
            .iter()
            .filter(|name| {
                let run = runs.iter().rev().find(|c| c.name == **name);
                let status = statuses.iter().rev().find(|s| s.context == **name);
                let run_passes =
                    run.is_some_and(|c| matches!(c.state, CheckRunState::Success | CheckRunState::Neutral | CheckRunState::Skipped));
                let status_passes = status.is_some_and(|s| s.state == StatusState::Success);
                !(run_passes || status_passes)
            })
            .map(|name| format!("{name}: Expected — Waiting for status to be reported"))
            .collect();
        if unmet.is_empty() { Ok(()) } else { Err(unmet.join("; ")) }
    }

    /// Waits until `sha` satisfies the required checks `required`.
    pub async fn expect_required_checks_pass(&self, repo: &RepoHandle, sha: &str, required: &[&str]) {
        if self.wait_for(|| self.required_checks(repo, sha, required).ok()).await.is_none() {
            panic!("required checks unmet on {sha}: {}", self.required_checks(repo, sha, required).unwrap_err());
        }
    }

    /// Waits until `probe` finds something, re-checking on every write to the fake.
    pub async fn wait_for<T>(&self, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + expect_timeout();
        loop {
            let changed = self.shared.changed.notified();
            if let Some(found) = probe() {
                return Some(found);
            }
            if Instant::now() > deadline {
                return None;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), changed).await;
        }
    }
}

impl RepoHandle {
    /// Commits files to a branch and returns the new head sha.
    pub fn push(&self, branch: &str, files: &[(&str, &str)]) -> String {
        let state = self.github.state();
        state.repos[&self.slug].git.commit(branch, files, "Update")
    }

    /// Commits `count` times to a branch, commit `i` writing `files(i)`;
    /// returns the shas, oldest first.
    pub fn push_commits(&self, branch: &str, count: usize, files: impl Fn(usize) -> Vec<(String, String)>) -> Vec<String> {
        let state = self.github.state();
        state.repos[&self.slug].git.commit_many(branch, count, files)
    }

    /// Commits files as the head of pull request `number` from a fork:
    /// on no branch of this repository, only at `refs/pull/N/head` (as
    /// GitHub keeps a fork's commits); returns the sha.
    pub fn push_fork_head(&self, number: u64, files: &[(&str, &str)]) -> String {
        let state = self.github.state();
        state.repos[&self.slug].git.commit_to(&format!("fork-{number}"), files, "Fork change", &format!("refs/pull/{number}/head"))
    }

    /// The commit `branch` points at, if it exists.
    pub fn branch_head(&self, branch: &str) -> Option<String> {
        self.github.state().repos[&self.slug].git.branch_head(branch)
    }

    /// The clone URL the fake serves this repository at.
    pub fn clone_url(&self) -> String {
        format!("http://{}/{}.git", self.github.addr, self.slug)
    }

    /// The fake it lives on.
    pub fn github(&self) -> &FakeGitHub {
        &self.github
    }
}
