//! A stateful fake of the parts of GitHub's REST API that greenlight uses,
//! as strict as GitHub: it verifies the App JWT against the public key,
//! issues expiring installation tokens, and refuses what GitHub refuses
//! (long status descriptions, more than 50 annotations, outputs over 65,535
//! bytes, missing fields). Failures can be injected on demand.

mod git;
mod routes;

pub use git::GitRepo;

use octocrab::jsonwebtoken::DecodingKey;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The App id the fake knows.
pub const APP_ID: u64 = 4242;

/// A commit status as GitHub stored it.
#[derive(Debug, Clone)]
pub struct StatusRecord {
    /// Commit.
    pub sha: String,
    /// State.
    pub state: String,
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
    /// Status.
    pub status: String,
    /// Conclusion.
    pub conclusion: Option<String>,
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
    pub annotations: Vec<Value>,
    /// started_at.
    pub started_at: Option<String>,
    /// completed_at.
    pub completed_at: Option<String>,
    /// Actions (buttons).
    pub actions: Vec<Value>,
    /// Annotations received per request, in order.
    pub annotation_batches: Vec<usize>,
    /// Status after each write, in order.
    pub history: Vec<String>,
}

/// A failure to inject.
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

pub(crate) struct Repo {
    pub id: i64,
    pub private: bool,
    pub git: GitRepo,
}

pub(crate) struct Token {
    pub installation: u64,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
pub(crate) struct State {
    pub installations: HashMap<u64, Vec<String>>,
    pub tokens: HashMap<String, Token>,
    pub repos: HashMap<String, Repo>,
    pub statuses: HashMap<String, Vec<StatusRecord>>,
    pub check_runs: Vec<CheckRunRecord>,
    pub failures: Vec<FailRule>,
    pub requests: Vec<(String, String)>,
    pub tokens_minted: usize,
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

/// How long expectations wait for greenlight to act.
pub const EXPECT_TIMEOUT: Duration = Duration::from_secs(20);

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
        let app = if prefix.is_empty() {
            routes::router(shared.clone())
        } else {
            axum::Router::new().nest(prefix, routes::router(shared.clone()))
        };
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
        let git = GitRepo::create(self.shared.root.path(), slug);
        let mut state = self.state();
        let id = 1000 + state.repos.len() as i64;
        let installation = 7000 + state.repos.len() as u64;
        state.installations.entry(installation).or_default().push(slug.to_string());
        state.repos.insert(slug.to_string(), Repo { id, private, git });
        RepoHandle { github: self.clone(), slug: slug.to_string(), id, installation, private }
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

    /// Makes matching requests fail.
    pub fn fail(&self, rule: FailRule) {
        self.state().failures.push(rule);
    }

    /// Fails the next `times` requests of `method` to paths containing `path` with `status`.
    pub fn fail_next(&self, method: &'static str, path: &str, status: u16, times: usize) {
        self.fail(FailRule { method, path_contains: path.to_string(), status, retry_after: None, after_apply: false, times });
    }

    /// Makes the next matching request answer 403 with `retry-after`, as a
    /// secondary rate limit does.
    pub fn rate_limit_next(&self, method: &'static str, path: &str, retry_after: u64) {
        self.fail(FailRule {
            method,
            path_contains: path.to_string(),
            status: 403,
            retry_after: Some(retry_after),
            after_apply: false,
            times: 1,
        });
    }

    /// Carries out the next matching request but answers 502, as when
    /// GitHub acted and the answer was lost.
    pub fn lose_answer_to_next(&self, method: &'static str, path: &str) {
        self.fail(FailRule { method, path_contains: path.to_string(), status: 502, retry_after: None, after_apply: true, times: 1 });
    }

    /// Requests received, as (method, path).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state().requests.clone()
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
    pub async fn expect_status(&self, repo: &RepoHandle, sha: &str, context: &str, state: &str) -> StatusRecord {
        let found =
            self.wait_for(|| self.statuses(repo, sha).into_iter().rev().find(|s| s.context == context).filter(|s| s.state == state)).await;
        found.unwrap_or_else(|| panic!("no {state} status {context} on {sha}; statuses: {:#?}", self.statuses(repo, sha)))
    }

    /// Waits until the newest check run named `name` on `sha` has `status`
    /// (`queued`, `in_progress`) or conclusion (`success`, `failure`, …); returns it.
    pub async fn expect_check_run(&self, repo: &RepoHandle, sha: &str, name: &str, status_or_conclusion: &str) -> CheckRunRecord {
        let found = self
            .wait_for(|| {
                self.check_runs(repo, sha)
                    .into_iter()
                    .rev()
                    .find(|c| c.name == name)
                    .filter(|c| c.status == status_or_conclusion || c.conclusion.as_deref() == Some(status_or_conclusion))
            })
            .await;
        found
            .unwrap_or_else(|| panic!("no {status_or_conclusion} check run {name} on {sha}; check runs: {:#?}", self.check_runs(repo, sha)))
    }

    /// Waits until `probe` finds something, re-checking on every write to the fake.
    pub async fn wait_for<T>(&self, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + EXPECT_TIMEOUT;
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

    /// The clone URL the fake serves this repository at.
    pub fn clone_url(&self) -> String {
        format!("http://{}/{}.git", self.github.addr, self.slug)
    }

    /// The fake it lives on.
    pub fn github(&self) -> &FakeGitHub {
        &self.github
    }
}
