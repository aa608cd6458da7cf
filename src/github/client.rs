//! The REST calls greenlight makes, with authentication and retries.
//!
//! octocrab is the transport; its own retries are compiled out (they resend
//! POSTs immediately, which can duplicate check runs). Every request uses a
//! relative route and carries its own `Authorization` header, so a token is
//! only ever sent to the configured API host.

use super::auth::{AppAuth, TokenCache};
use super::retry::RetryPolicy;
use super::types::{CheckRun, CheckRunBody, StatusBody};
use crate::clock::SharedClock;
use crate::ids::{CheckRunId, InstallationId};
use crate::metrics::Metrics;
use crate::model::RepoRef;
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use octocrab::Octocrab;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::time::Duration;

/// `owner/name` of a repository, as used in REST routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPath {
    /// The owner's login (user or organization).
    pub owner: String,
    /// The repository's name without its owner.
    pub name: String,
}

impl From<&RepoRef> for RepoPath {
    fn from(repo: &RepoRef) -> Self {
        Self { owner: repo.owner.clone(), name: repo.name.clone() }
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// A failed call to GitHub.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    /// GitHub answered with an error status (after any retries).
    #[error("GitHub answered {status} to {method} {path}: {message}")]
    Api {
        /// The HTTP status; whether retrying later may help depends on it.
        status: u16,
        /// The request's method, for the message.
        method: Method,
        /// The request's path, for the message.
        path: String,
        /// GitHub's `message`.
        message: String,
    },
    /// GitHub could not be reached (after any retries).
    #[error("GitHub unreachable for {method} {path}: {detail}")]
    Transport {
        /// The request's method, for the message.
        method: Method,
        /// The request's path, for the message.
        path: String,
        /// The transport error of the last attempt.
        detail: String,
    },
    /// A response greenlight could not read.
    #[error("unexpected response to {path}: {detail}")]
    Decode {
        /// The request's path, for the message.
        path: String,
        /// Why the body could not be read as the expected type.
        detail: String,
    },
    /// Authentication could not be set up (JWT signing, token cache).
    #[error("GitHub App authentication failed: {0}")]
    Auth(String),
}

impl GitHubError {
    /// Whether trying the whole job again later may succeed (outages, rate limits).
    pub fn is_transient(&self) -> bool {
        match self {
            GitHubError::Api { status, .. } => *status >= 500 || *status == 429 || *status == 403,
            GitHubError::Transport { .. } | GitHubError::Auth(_) => true,
            GitHubError::Decode { .. } => false,
        }
    }
}

/// Who a request acts as.
#[derive(Debug, Clone, Copy)]
pub(super) enum Credential {
    App,
    Installation(InstallationId),
}

pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

/// A GitHub App's view of the API.
#[derive(Clone)]
pub struct GitHub {
    http: Octocrab,
    app: AppAuth,
    tokens: TokenCache,
    retry: RetryPolicy,
    clock: SharedClock,
    metrics: Metrics,
}

#[derive(Deserialize)]
struct AccessToken {
    token: String,
    expires_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct Contents {
    #[serde(default)]
    content: String,
    #[serde(default)]
    encoding: String,
    #[serde(default)]
    size: usize,
}

/// A file as the contents API gives it to a reader with a size cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoFile {
    /// The file's text.
    Text(String),
    /// The file's size in bytes, over the reader's cap: its content is not
    /// decoded (GitHub serves a file over 1 MB with its size and no
    /// content, `encoding: "none"`).
    TooLarge(usize),
}

/// What greenlight reads of a comparison: its changed files.
#[derive(Deserialize)]
struct Comparison {
    #[serde(default)]
    files: Vec<ComparedFile>,
}

#[derive(Deserialize)]
struct ComparedFile {
    filename: String,
    #[serde(default)]
    previous_filename: Option<String>,
}

/// GitHub's compare lists at most 300 changed files for a whole comparison
/// ("Compare two commits": "includes up to 300 changed files for the entire
/// comparison"); a list that long may be cut, so it says nothing certain.
pub const MAX_COMPARE_FILES: usize = 300;
/// A commit as `GET /repos/{o}/{r}/commits/{ref}` describes it (the fields greenlight reads).
#[derive(Debug, Clone, Deserialize)]
pub struct CommitInfo {
    /// The full sha.
    pub sha: String,
    /// The commit's page on GitHub.
    #[serde(default)]
    pub html_url: String,
    /// The git commit: message and git author.
    pub commit: GitCommit,
    /// The GitHub account of the author, when GitHub knows it.
    #[serde(default)]
    pub author: Option<CommitAccount>,
}

/// The git side of a commit.
#[derive(Debug, Clone, Deserialize)]
pub struct GitCommit {
    /// The commit message.
    #[serde(default)]
    pub message: String,
    /// The git author.
    pub author: Option<GitPerson>,
}

/// A git author.
#[derive(Debug, Clone, Deserialize)]
pub struct GitPerson {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Email.
    #[serde(default)]
    pub email: String,
}

/// The GitHub account behind a commit.
#[derive(Debug, Clone, Deserialize)]
pub struct CommitAccount {
    /// Login.
    pub login: String,
    /// Avatar URL.
    #[serde(default)]
    pub avatar_url: String,
}

#[derive(Deserialize)]
struct CheckRunList {
    check_runs: Vec<CheckRun>,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

impl GitHub {
    /// A client for the API at `api_url` (e.g. `https://api.github.com`).
    /// Every request and GitHub's rate limit answers are counted in `metrics`.
    pub fn new(
        api_url: &str,
        app: AppAuth,
        tokens: TokenCache,
        retry: RetryPolicy,
        clock: SharedClock,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let http = Octocrab::builder()
            .base_uri(api_url)?
            .set_connect_timeout(Some(Duration::from_secs(5)))
            .set_read_timeout(Some(Duration::from_secs(20)))
            .build()?;
        Ok(Self { http, app, tokens, retry, clock, metrics })
    }

    async fn credential(&self, credential: Credential) -> Result<SecretString, GitHubError> {
        match credential {
            Credential::App => self.app.jwt().map_err(|e| GitHubError::Auth(e.to_string())),
            // Boxed: minting a token is itself a request (as the App).
            Credential::Installation(id) => Box::pin(self.installation_token(id)).await,
        }
    }

    /// A token of the installation: cached, or minted with the App's JWT.
    pub async fn installation_token(&self, installation: InstallationId) -> Result<SecretString, GitHubError> {
        self.scoped_token(installation, "", b"{}".to_vec()).await
    }

    /// A token that can only read one repository's contents: what a clone
    /// needs and no more (no statuses, no check runs, no other repository),
    /// so a token that leaked from a clone could do nothing else.
    pub async fn clone_token(&self, installation: InstallationId, repo: &RepoRef) -> Result<SecretString, GitHubError> {
        let body = serde_json::json!({ "repositories": [repo.name], "permissions": { "contents": "read" } });
        self.scoped_token(installation, &format!("clone:{}", repo.id), body.to_string().into_bytes()).await
    }

    /// A token of `scope` (cached under it), minted with `request` as the token request body.
    async fn scoped_token(&self, installation: InstallationId, scope: &str, request: Vec<u8>) -> Result<SecretString, GitHubError> {
        let cache_error = |e: anyhow::Error| GitHubError::Auth(format!("token cache: {e}"));
        if let Some(token) = self.tokens.get(installation, scope).await.map_err(cache_error)? {
            return Ok(token);
        }
        let path = format!("/app/installations/{installation}/access_tokens");
        let minted: AccessToken = self.call(Credential::App, Method::POST, &path, Some(request), true).await?;
        let token = SecretString::from(minted.token);
        self.tokens.put(installation, scope, &token, minted.expires_at).await.map_err(cache_error)?;
        Ok(token)
    }

    async fn send_once(&self, method: &Method, path: &str, token: &SecretString, body: Option<&[u8]>) -> Result<Reply, String> {
        let request = http::Request::builder()
            .method(method.clone())
            .uri(path)
            .header(http::header::AUTHORIZATION, format!("Bearer {}", token.expose_secret()))
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .header(http::header::USER_AGENT, "greenlight")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.map(<[u8]>::to_vec).unwrap_or_default())
            .map_err(|e| e.to_string())?;
        let response = self.http.execute(request).await.map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply { status: parts.status, headers: parts.headers, body })
    }

    /// Sends a request, retrying outages and rate limits with backoff.
    ///
    /// With `replayable` false (a POST that creates something), a 5xx or a
    /// lost connection is not retried here, because GitHub may have acted on
    /// it; the caller looks before it creates again.
    pub(super) async fn request(
        &self,
        credential: Credential,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        replayable: bool,
    ) -> Result<Reply, GitHubError> {
        let mut reminted = false;
        let mut retry = 0;
        loop {
            let token = self.credential(credential).await?;
            let sent = self.send_once(&method, path, &token, body.as_deref()).await;
            self.count(credential, &method, sent.as_ref().ok());
            let reply = match sent {
                Ok(reply) => reply,
                Err(detail) => {
                    if replayable && retry + 1 < self.retry.max_attempts {
                        tracing::warn!(%method, path, %detail, "GitHub unreachable; retrying");
                        tokio::time::sleep(self.retry.backoff(retry)).await;
                        retry += 1;
                        continue;
                    }
                    return Err(GitHubError::Transport { method, path: path.to_string(), detail });
                }
            };
            if reply.status.is_success() {
                return Ok(reply);
            }
            if let (StatusCode::UNAUTHORIZED, false, Credential::Installation(id)) = (reply.status, reminted, credential) {
                // The cached token was revoked or expired early: mint once more.
                reminted = true;
                self.tokens.invalidate(id, "").await.map_err(|e| GitHubError::Auth(e.to_string()))?;
                continue;
            }
            let text = String::from_utf8_lossy(&reply.body);
            let may_retry = replayable || !reply.status.is_server_error();
            let wait = self.retry.wait_for(reply.status, &reply.headers, &text, retry, self.clock.now().timestamp());
            if let (true, Some(wait), true) = (may_retry, wait, retry + 1 < self.retry.max_attempts) {
                tracing::warn!(%method, path, status = reply.status.as_u16(), wait_ms = wait.as_millis() as u64, "GitHub asked to retry");
                tokio::time::sleep(wait).await;
                retry += 1;
                continue;
            }
            let message = match serde_json::from_slice::<ErrorBody>(&reply.body) {
                Ok(err) if err.errors.is_empty() => err.message,
                Ok(err) => format!("{} {}", err.message, serde_json::Value::from(err.errors)),
                Err(_) => text.chars().take(200).collect(),
            };
            return Err(GitHubError::Api { status: reply.status.as_u16(), method, path: path.to_string(), message });
        }
    }

    /// Counts a request, and the rate limit GitHub says is left.
    fn count(&self, credential: Credential, method: &Method, reply: Option<&Reply>) {
        self.metrics.github_request(method, reply.map_or(0, |r| r.status.as_u16()));
        let remaining = reply.and_then(|r| r.headers.get("x-ratelimit-remaining")?.to_str().ok()?.parse::<i64>().ok());
        if let Some(remaining) = remaining {
            let who = match credential {
                Credential::App => "app".to_string(),
                Credential::Installation(id) => id.to_string(),
            };
            self.metrics.rate_limit_remaining(who, remaining);
        }
    }

    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        credential: Credential,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        replayable: bool,
    ) -> Result<T, GitHubError> {
        let reply = self.request(credential, method, path, body, replayable).await?;
        serde_json::from_slice(&reply.body).map_err(|e| GitHubError::Decode { path: path.to_string(), detail: e.to_string() })
    }

    /// A file at a commit, or `None` when it does not exist there; a file
    /// over `max_bytes` (by the size GitHub gives) is not decoded.
    pub async fn file_at(
        &self,
        installation: InstallationId,
        repo: &RepoPath,
        file: &str,
        sha: &str,
        max_bytes: usize,
    ) -> Result<Option<RepoFile>, GitHubError> {
        let path = format!("/repos/{repo}/contents/{file}?ref={sha}");
        let contents: Contents = match self.call(Credential::Installation(installation), Method::GET, &path, None, true).await {
            Ok(contents) => contents,
            Err(GitHubError::Api { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if contents.size > max_bytes {
            return Ok(Some(RepoFile::TooLarge(contents.size)));
        }
        let decode_error = |detail: String| GitHubError::Decode { path: path.clone(), detail };
        if contents.encoding != "base64" {
            return Err(decode_error(format!(
                "{file} is not served as base64 (encoding {:?}); is it larger than 1 MB?",
                contents.encoding
            )));
        }
        let packed: String = contents.content.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD.decode(packed).map_err(|e| decode_error(e.to_string()))?;
        String::from_utf8(bytes).map(|text| Some(RepoFile::Text(text))).map_err(|_| decode_error(format!("{file} is not UTF-8 text")))
    }

    /// The files changed between `base` and `head` (three dots: since their
    /// merge base), a renamed file under both names; `None` when GitHub
    /// cannot say them all: no such commits or an unrelated history (404),
    /// any other refusal (a diff too large to compute), or
    /// [`MAX_COMPARE_FILES`] files, where the list may be cut. Only outages
    /// are errors: a build must not be dropped for want of a file list.
    /// `per_page=1`: the files come on the first page whatever the page
    /// size, and the commits (up to 250 unpaged) are not wanted.
    pub async fn changed_files(
        &self,
        installation: InstallationId,
        repo: &RepoPath,
        base: &str,
        head: &str,
    ) -> Result<Option<Vec<String>>, GitHubError> {
        let path = format!("/repos/{repo}/compare/{base}...{head}?per_page=1");
        let comparison: Comparison = match self.call(Credential::Installation(installation), Method::GET, &path, None, true).await {
            Ok(comparison) => comparison,
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                tracing::info!(error = %e, "GitHub cannot list the changed files; paths conditions match");
                return Ok(None);
            }
        };
        if comparison.files.len() >= MAX_COMPARE_FILES {
            return Ok(None);
        }
        let names = comparison.files.into_iter().flat_map(|f| std::iter::once(f.filename).chain(f.previous_filename));
        Ok(Some(names.collect()))
    }

    /// The commit a branch, tag or sha names (`GET /repos/{o}/{r}/commits/{ref}`),
    /// or `None` when the repository has no such commit (GitHub answers 422
    /// "No commit found for SHA", or 404).
    pub async fn commit(&self, installation: InstallationId, repo: &RepoPath, reference: &str) -> Result<Option<CommitInfo>, GitHubError> {
        let path = format!("/repos/{repo}/commits/{}", crate::text::percent_encode(reference, b""));
        match self.call(Credential::Installation(installation), Method::GET, &path, None, true).await {
            Ok(commit) => Ok(Some(commit)),
            Err(GitHubError::Api { status: 404 | 422, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A user's permission on a repository as GitHub reports it (`admin`,
    /// `maintain`, `write`, `triage`, `read` or `none`), asked of
    /// `GET /repos/{o}/{r}/collaborators/{user}/permission`; `none` for a
    /// login GitHub does not know.
    pub async fn permission(&self, installation: InstallationId, repo: &RepoPath, user: &str) -> Result<String, GitHubError> {
        #[derive(Deserialize)]
        struct Permission {
            permission: String,
        }
        let path = format!("/repos/{repo}/collaborators/{}/permission", crate::text::percent_encode(user, b""));
        match self.call::<Permission>(Credential::Installation(installation), Method::GET, &path, None, true).await {
            Ok(answer) => Ok(answer.permission),
            Err(GitHubError::Api { status: 404, .. }) => Ok("none".to_string()),
            Err(e) => Err(e),
        }
    }

    /// Adds a reaction (`eyes`, `-1`, …) to an issue or pull request
    /// comment; adding the same one again is harmless (GitHub answers 200).
    pub async fn react(&self, installation: InstallationId, repo: &RepoPath, comment: u64, content: &str) -> Result<(), GitHubError> {
        let path = format!("/repos/{repo}/issues/comments/{comment}/reactions");
        let body = serde_json::to_vec(&serde_json::json!({ "content": content })).expect("reaction serializes");
        self.request(Credential::Installation(installation), Method::POST, &path, Some(body), true).await?;
        Ok(())
    }

    /// Comments on an issue or pull request. Not replayable: a retried
    /// POST whose first answer was lost would comment twice.
    pub async fn comment(&self, installation: InstallationId, repo: &RepoPath, number: u64, body: &str) -> Result<(), GitHubError> {
        let path = format!("/repos/{repo}/issues/{number}/comments");
        let body = serde_json::to_vec(&serde_json::json!({ "body": body })).expect("comment serializes");
        self.request(Credential::Installation(installation), Method::POST, &path, Some(body), false).await?;
        Ok(())
    }

    /// Sets one commit status of `sha` (one per pipeline and event);
    /// setting it twice is harmless, so it is retried through outages.
    pub async fn create_status(
        &self,
        installation: InstallationId,
        repo: &RepoPath,
        sha: &str,
        status: &StatusBody,
    ) -> Result<(), GitHubError> {
        let path = format!("/repos/{repo}/statuses/{sha}");
        let body = serde_json::to_vec(status).expect("status serializes");
        // Setting the same status twice is harmless, so this POST is replayable.
        self.request(Credential::Installation(installation), Method::POST, &path, Some(body), true).await?;
        Ok(())
    }

    /// Creates a check run, never twice: after a failure that GitHub may have
    /// acted on, it looks for a run with the same name and external id first.
    pub async fn create_check_run(
        &self,
        installation: InstallationId,
        repo: &RepoPath,
        run: &CheckRunBody,
    ) -> Result<CheckRunId, GitHubError> {
        let path = format!("/repos/{repo}/check-runs");
        let body = serde_json::to_vec(run).expect("check run serializes");
        let mut retry = 0;
        loop {
            match self.call::<CheckRun>(Credential::Installation(installation), Method::POST, &path, Some(body.clone()), false).await {
                Ok(created) => return Ok(CheckRunId(created.id)),
                Err(err) if retry + 1 < self.retry.max_attempts && may_have_applied(&err) => {
                    tracing::warn!(error = %err, "creating a check run failed; checking whether it exists before retrying");
                    tokio::time::sleep(self.retry.backoff(retry)).await;
                    retry += 1;
                    if let Some(existing) = self.find_check_run(installation, repo, run).await? {
                        return Ok(existing);
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn find_check_run(
        &self,
        installation: InstallationId,
        repo: &RepoPath,
        run: &CheckRunBody,
    ) -> Result<Option<CheckRunId>, GitHubError> {
        let (Some(name), Some(sha)) = (&run.name, &run.head_sha) else {
            return Ok(None);
        };
        let path =
            format!("/repos/{repo}/commits/{sha}/check-runs?check_name={}&filter=all&per_page=100", crate::text::percent_encode(name, b""));
        let list: CheckRunList = self.call(Credential::Installation(installation), Method::GET, &path, None, true).await?;
        Ok(list.check_runs.into_iter().find(|c| &c.name == name && c.external_id == run.external_id).map(|c| CheckRunId(c.id)))
    }

    /// Updates a check run (status, conclusion, output, annotations).
    pub async fn update_check_run(
        &self,
        installation: InstallationId,
        repo: &RepoPath,
        id: CheckRunId,
        run: &CheckRunBody,
    ) -> Result<(), GitHubError> {
        let path = format!("/repos/{repo}/check-runs/{id}");
        let body = serde_json::to_vec(run).expect("check run serializes");
        // A PATCH sets fields; resending the same one is harmless. (Annotations
        // append, so callers batch them into separate, ordered updates.)
        self.request(Credential::Installation(installation), Method::PATCH, &path, Some(body), true).await?;
        Ok(())
    }
}

/// GitHub's largest page (`per_page`) for the installation lists
/// ("The number of results per page (max 100)", REST API docs).
pub const MAX_PER_PAGE: usize = 100;

/// The most pages of one list greenlight reads (100,000 installations, or
/// repositories of one installation): a server answering full pages
/// forever cannot hold a request.
pub const MAX_PAGES: usize = 1000;

#[derive(Deserialize)]
struct Installation {
    id: u64,
}

#[derive(Deserialize)]
struct InstallationRepos {
    total_count: usize,
    repositories: Vec<GitHubRepo>,
}

#[derive(Deserialize)]
struct Owner {
    login: String,
}

/// The fields of GitHub's repository object greenlight keeps.
#[derive(Deserialize)]
struct GitHubRepo {
    id: i64,
    name: String,
    owner: Owner,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    clone_url: String,
    #[serde(default)]
    ssh_url: String,
    #[serde(default)]
    html_url: String,
    #[serde(default)]
    default_branch: String,
}

impl From<GitHubRepo> for RepoRef {
    fn from(r: GitHubRepo) -> Self {
        RepoRef {
            id: crate::ids::RepoId(r.id),
            owner: r.owner.login,
            name: r.name,
            private: r.private,
            clone_url: r.clone_url,
            ssh_url: r.ssh_url,
            html_url: r.html_url,
            default_branch: if r.default_branch.is_empty() { "main".to_string() } else { r.default_branch },
        }
    }
}

impl GitHub {
    /// A repository as GitHub describes it now (`GET /repos/{o}/{r}`), or
    /// `None` when the installation cannot see it.
    pub async fn repository(&self, installation: InstallationId, repo: &RepoPath) -> Result<Option<RepoRef>, GitHubError> {
        let path = format!("/repos/{repo}");
        match self.call::<GitHubRepo>(Credential::Installation(installation), Method::GET, &path, None, true).await {
            Ok(found) => Ok(Some(RepoRef::from(found))),
            Err(GitHubError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every repository the App's installations cover now, with the
    /// installation covering each: the App's installations (as the App),
    /// then each one's repositories (as that installation), every page.
    pub async fn installed_repos(&self) -> Result<Vec<(RepoRef, InstallationId)>, GitHubError> {
        let mut installations = Vec::new();
        for page in 1..=MAX_PAGES {
            let path = format!("/app/installations?per_page={MAX_PER_PAGE}&page={page}");
            let batch: Vec<Installation> = self.call(Credential::App, Method::GET, &path, None, true).await?;
            let last = batch.len() < MAX_PER_PAGE;
            installations.extend(batch.into_iter().map(|i| InstallationId(i.id)));
            if last {
                break;
            }
        }
        let mut repos = Vec::new();
        for installation in installations {
            let mut listed = 0;
            for page in 1..=MAX_PAGES {
                let path = format!("/installation/repositories?per_page={MAX_PER_PAGE}&page={page}");
                let batch: InstallationRepos = self.call(Credential::Installation(installation), Method::GET, &path, None, true).await?;
                let count = batch.repositories.len();
                listed += count;
                repos.extend(batch.repositories.into_iter().map(|r| (RepoRef::from(r), installation)));
                if count < MAX_PER_PAGE || listed >= batch.total_count {
                    break;
                }
            }
        }
        Ok(repos)
    }
}

fn may_have_applied(err: &GitHubError) -> bool {
    matches!(err, GitHubError::Transport { .. }) || matches!(err, GitHubError::Api { status, .. } if *status >= 500)
}
