//! Webhook deliveries: signature verification and the compact trigger that
//! is queued instead of the whole (up to 25 MB) payload.
//!
//! The payload types are our own minimal serde structs: octocrab's webhook
//! types are beta and fail on action values they do not know.

use crate::ids::{DeliveryId, InstallationId, RepoId, Sha};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// GitHub caps webhook payloads at 25 MB and does not deliver larger ones
/// ("Payloads are capped at 25 MB", GitHub docs, webhook payload cap).
pub const MAX_PAYLOAD_BYTES: usize = 25 * 1024 * 1024;

/// Drone truncates commit messages to 2,000 characters; so do we, to keep the
/// queued record compact.
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// Why a delivery's signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header.
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    /// The header is not `sha256=` followed by 64 hex digits.
    #[error("X-Hub-Signature-256 is not of the form sha256=<hex>")]
    Malformed,
    /// No configured secret produces this signature.
    #[error("signature does not match")]
    Mismatch,
}

/// Checks `X-Hub-Signature-256` (HMAC-SHA256 over the raw body) against every
/// configured secret, in constant time for each.
pub fn verify_signature(secrets: &[SecretString], header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digest = header.strip_prefix("sha256=").ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_digest).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let matched = secrets.iter().any(|secret| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).expect("HMAC takes any key length");
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    });
    if matched { Ok(()) } else { Err(SignatureError::Mismatch) }
}

/// Signs a body the way GitHub does; used by tools and tests that send deliveries.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The Drone event a build runs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A branch push.
    Push,
    /// A pull request opened, synchronized or reopened.
    PullRequest,
    /// A tag push.
    Tag,
}

impl Event {
    /// The name Drone uses (`push`, `pull_request`, `tag`).
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Push => "push",
            Event::PullRequest => "pull_request",
            Event::Tag => "tag",
        }
    }
}

/// The repository a build belongs to, as the payload describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoInfo {
    /// GitHub's repository id.
    pub id: RepoId,
    /// Owner login.
    pub owner: String,
    /// Repository name.
    pub name: String,
    /// Whether the repository is private.
    pub private: bool,
    /// HTTPS clone URL.
    pub clone_url: String,
    /// SSH clone URL.
    pub ssh_url: String,
    /// Web URL.
    pub html_url: String,
    /// The default branch.
    pub default_branch: String,
}

impl RepoInfo {
    /// `owner/name`.
    pub fn slug(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// The compact record of a delivery that starts a build: just what planning
/// and running the build need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// The delivery GUID (kept on redelivery).
    pub delivery: DeliveryId,
    /// The installation to act as.
    pub installation: InstallationId,
    /// The base repository (statuses and check runs go here).
    pub repo: RepoInfo,
    /// push, pull_request or tag.
    pub event: Event,
    /// Drone's action: `opened`, `synchronized`, `reopened`, `create` (tags) or empty.
    pub action: String,
    /// The commit to build (the PR head, possibly from a fork).
    pub sha: Sha,
    /// The previous sha (push `before`, PR base sha).
    pub before: String,
    /// The full git ref (refs/heads/…, refs/pull/N/head, refs/tags/…).
    pub git_ref: String,
    /// Source branch (PR head branch, or the pushed branch).
    pub source: String,
    /// Target branch (PR base branch, or the pushed branch; empty for tags).
    pub target: String,
    /// The pull request number.
    pub pull_request: Option<u64>,
    /// `owner/name` of the PR's head repository (a fork's slug), else empty.
    pub source_repo: String,
    /// Whether the PR comes from a fork (or from a deleted head repository).
    pub fork: bool,
    /// PR title, empty for pushes.
    pub title: String,
    /// Commit message (truncated).
    pub message: String,
    /// Compare, PR or commit link.
    pub link: String,
    /// Commit author login.
    pub author_login: String,
    /// Commit author name.
    pub author_name: String,
    /// Commit author email.
    pub author_email: String,
    /// Author avatar URL.
    pub author_avatar: String,
    /// Who sent the event.
    pub sender: String,
    /// The number of the build this one reruns (0 for a webhook).
    #[serde(default)]
    pub parent: i64,
    /// Who asked for it: empty for a webhook (`@hook`), else a login.
    #[serde(default)]
    pub requested_by: String,
    /// Only these pipelines (a rerun of some); empty means every matching one.
    #[serde(default)]
    pub only_pipelines: Vec<String>,
}

#[derive(Deserialize)]
struct Account {
    login: String,
    #[serde(default)]
    avatar_url: String,
}

#[derive(Deserialize)]
struct RepoPayload {
    id: i64,
    name: String,
    full_name: String,
    owner: OwnerPayload,
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

#[derive(Deserialize)]
struct OwnerPayload {
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl RepoPayload {
    fn info(self) -> RepoInfo {
        let owner =
            self.owner.login.or(self.owner.name).unwrap_or_else(|| self.full_name.split('/').next().unwrap_or_default().to_string());
        RepoInfo {
            id: RepoId(self.id),
            owner,
            name: self.name,
            private: self.private,
            clone_url: self.clone_url,
            ssh_url: self.ssh_url,
            html_url: self.html_url,
            default_branch: self.default_branch,
        }
    }
}

#[derive(Deserialize)]
struct InstallationRef {
    id: u64,
}

#[derive(Deserialize)]
struct PullRequestEvent {
    action: String,
    pull_request: PullRequestPayload,
    repository: RepoPayload,
    installation: Option<InstallationRef>,
    sender: Option<Account>,
}

#[derive(Deserialize)]
struct PullRequestPayload {
    number: u64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    html_url: String,
    user: Option<Account>,
    head: BranchPayload,
    base: BranchPayload,
}

#[derive(Deserialize)]
struct BranchPayload {
    #[serde(rename = "ref")]
    branch: String,
    sha: String,
    repo: Option<SlugOnly>,
}

#[derive(Deserialize)]
struct SlugOnly {
    full_name: String,
}

#[derive(Deserialize)]
struct PushEvent {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    before: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    compare: String,
    head_commit: Option<CommitPayload>,
    repository: RepoPayload,
    installation: Option<InstallationRef>,
    sender: Option<Account>,
}

#[derive(Deserialize)]
struct CommitPayload {
    #[serde(default)]
    message: String,
    author: Option<CommitAuthor>,
}

#[derive(Deserialize)]
struct CommitAuthor {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    username: Option<String>,
}

/// What a delivery asks of greenlight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// GitHub checking the hook.
    Ping,
    /// Start a build.
    Build(Box<Trigger>),
    /// The App was installed on, or removed from, repositories.
    Installation(InstallationChange),
    /// A Re-run button was pressed.
    Rerun(RerunRequest),
    /// An event or action greenlight does not act on, with a short reason.
    Ignored(String),
}

/// The identifier of the "Re-run failed" button on failed check runs
/// (GitHub allows at most 20 characters).
pub const RERUN_FAILED_ACTION: &str = "rerun-failed";

/// Which build a Re-run button means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RerunTarget {
    /// One check run's pipeline (`check_run` rerequested or its action button):
    /// the build id we gave as `external_id`, and the check run's name.
    CheckRun {
        /// Our build id.
        build: String,
        /// `<pipeline> (<event>)`.
        name: String,
    },
    /// Every pipeline of the newest build of a commit (`check_suite` rerequested).
    Suite {
        /// The commit.
        sha: Sha,
    },
}

/// A Re-run button press.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RerunRequest {
    /// The repository.
    pub repo: RepoId,
    /// What to rerun.
    pub target: RerunTarget,
    /// Who pressed it.
    pub sender: String,
}

#[derive(Deserialize)]
struct CheckRunEvent {
    action: String,
    check_run: CheckRunPayload,
    repository: RepoPayload,
    #[serde(default)]
    requested_action: Option<RequestedAction>,
    sender: Option<Account>,
}

#[derive(Deserialize)]
struct CheckRunPayload {
    name: String,
    #[serde(default)]
    external_id: Option<String>,
}

#[derive(Deserialize)]
struct RequestedAction {
    identifier: String,
}

#[derive(Deserialize)]
struct CheckSuiteEvent {
    action: String,
    check_suite: CheckSuitePayload,
    repository: RepoPayload,
    sender: Option<Account>,
}

#[derive(Deserialize)]
struct CheckSuitePayload {
    head_sha: String,
}

fn check_run(ev: CheckRunEvent) -> Delivery {
    let wanted = match (ev.action.as_str(), &ev.requested_action) {
        ("rerequested", _) => true,
        ("requested_action", Some(action)) => action.identifier == RERUN_FAILED_ACTION,
        _ => false,
    };
    match (wanted, ev.check_run.external_id) {
        (true, Some(build)) if !build.is_empty() => Delivery::Rerun(RerunRequest {
            repo: RepoId(ev.repository.id),
            target: RerunTarget::CheckRun { build, name: ev.check_run.name },
            sender: ev.sender.map(|s| s.login).unwrap_or_default(),
        }),
        (true, _) => Delivery::Ignored("check run without greenlight's external id".to_string()),
        (false, _) => Delivery::Ignored(format!("check_run action {} starts no build", ev.action)),
    }
}

fn check_suite(ev: CheckSuiteEvent) -> Delivery {
    if ev.action != "rerequested" {
        return Delivery::Ignored(format!("check_suite action {} starts no build", ev.action));
    }
    Delivery::Rerun(RerunRequest {
        repo: RepoId(ev.repository.id),
        target: RerunTarget::Suite { sha: Sha(ev.check_suite.head_sha) },
        sender: ev.sender.map(|s| s.login).unwrap_or_default(),
    })
}

/// A repository named in an installation event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstalledRepo {
    /// GitHub's id.
    pub id: i64,
    /// `owner/name`.
    pub full_name: String,
    /// Whether it is private.
    #[serde(default)]
    pub private: bool,
}

/// Repositories an installation gained or lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationChange {
    /// The installation.
    pub installation: InstallationId,
    /// Repositories now covered.
    pub added: Vec<InstalledRepo>,
    /// Repositories no longer covered.
    pub removed: Vec<InstalledRepo>,
}

#[derive(Deserialize)]
struct InstallationEvent {
    action: String,
    installation: InstallationRef,
    #[serde(default)]
    repositories: Vec<InstalledRepo>,
    #[serde(default)]
    repositories_added: Vec<InstalledRepo>,
    #[serde(default)]
    repositories_removed: Vec<InstalledRepo>,
}

fn installation_change(event: &str, ev: InstallationEvent) -> Delivery {
    let installation = InstallationId(ev.installation.id);
    let (added, removed) = match (event, ev.action.as_str()) {
        ("installation", "created" | "unsuspend" | "new_permissions_accepted") => (ev.repositories, Vec::new()),
        ("installation", "deleted" | "suspend") => (Vec::new(), ev.repositories),
        ("installation_repositories", "added" | "removed") => (ev.repositories_added, ev.repositories_removed),
        (_, other) => return Delivery::Ignored(format!("{event} action {other} changes nothing")),
    };
    Delivery::Installation(InstallationChange { installation, added, removed })
}

/// A payload that does not parse as the event it claims to be.
#[derive(Debug, thiserror::Error)]
#[error("malformed {event} payload: {source}")]
pub struct PayloadError {
    /// The `X-GitHub-Event` value.
    pub event: String,
    /// What serde found wrong.
    #[source]
    pub source: serde_json::Error,
}

/// Interprets a verified delivery's JSON body.
pub fn parse_delivery(event: &str, delivery: &DeliveryId, body: &[u8]) -> Result<Delivery, PayloadError> {
    let wrap = |source| PayloadError { event: event.to_string(), source };
    match event {
        "ping" => {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(wrap)?;
            Ok(Delivery::Ping)
        }
        "pull_request" => pull_request(serde_json::from_slice(body).map_err(wrap)?, delivery),
        "push" => push(serde_json::from_slice(body).map_err(wrap)?, delivery),
        "installation" | "installation_repositories" => Ok(installation_change(event, serde_json::from_slice(body).map_err(wrap)?)),
        "check_run" => Ok(check_run(serde_json::from_slice(body).map_err(wrap)?)),
        "check_suite" => Ok(check_suite(serde_json::from_slice(body).map_err(wrap)?)),
        other => {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(wrap)?;
            Ok(Delivery::Ignored(format!("event {other} starts no build")))
        }
    }
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text.to_string(),
    }
}

fn installation(event: &str, inst: Option<InstallationRef>) -> Result<InstallationId, Delivery> {
    inst.map(|i| InstallationId(i.id))
        .ok_or_else(|| Delivery::Ignored(format!("{event} delivery without an installation (not sent to a GitHub App)")))
}

fn pull_request(ev: PullRequestEvent, delivery: &DeliveryId) -> Result<Delivery, PayloadError> {
    let action = match ev.action.as_str() {
        "opened" => "opened",
        "synchronize" => "synchronized",
        "reopened" => "reopened",
        other => {
            return Ok(Delivery::Ignored(format!("pull_request action {other} starts no build")));
        }
    };
    let installation = match installation("pull_request", ev.installation) {
        Ok(id) => id,
        Err(ignored) => return Ok(ignored),
    };
    let pr = ev.pull_request;
    let repo = ev.repository.info();
    let base_slug = repo.slug();
    // A deleted fork leaves `head.repo` null: treat it as a fork (untrusted).
    let (source_repo, fork) = match &pr.head.repo {
        Some(head) => (head.full_name.clone(), !head.full_name.eq_ignore_ascii_case(&base_slug)),
        None => (String::new(), true),
    };
    let author = pr.user.unwrap_or(Account { login: String::new(), avatar_url: String::new() });
    Ok(Delivery::Build(Box::new(Trigger {
        delivery: delivery.clone(),
        installation,
        event: Event::PullRequest,
        action: action.to_string(),
        sha: Sha(pr.head.sha),
        before: pr.base.sha,
        git_ref: format!("refs/pull/{}/head", pr.number),
        source: pr.head.branch,
        target: pr.base.branch,
        pull_request: Some(pr.number),
        source_repo,
        fork,
        title: truncate_chars(&pr.title, MAX_MESSAGE_CHARS),
        message: truncate_chars(pr.body.as_deref().filter(|b| !b.is_empty()).unwrap_or(&pr.title), MAX_MESSAGE_CHARS),
        link: pr.html_url,
        author_login: author.login,
        author_name: String::new(),
        author_email: String::new(),
        author_avatar: author.avatar_url,
        sender: ev.sender.map(|s| s.login).unwrap_or_default(),
        repo,
        parent: 0,
        requested_by: String::new(),
        only_pipelines: Vec::new(),
    })))
}

fn push(ev: PushEvent, delivery: &DeliveryId) -> Result<Delivery, PayloadError> {
    if ev.deleted || ev.after.bytes().all(|b| b == b'0') {
        return Ok(Delivery::Ignored("push deletes a ref".to_string()));
    }
    let (event, action, branch) = if let Some(tag) = ev.git_ref.strip_prefix("refs/tags/") {
        (Event::Tag, "create", tag.to_string())
    } else if let Some(branch) = ev.git_ref.strip_prefix("refs/heads/") {
        (Event::Push, "", branch.to_string())
    } else {
        return Ok(Delivery::Ignored(format!("push to {} (not a branch or tag)", ev.git_ref)));
    };
    let installation = match installation("push", ev.installation) {
        Ok(id) => id,
        Err(ignored) => return Ok(ignored),
    };
    let (message, author) = match ev.head_commit {
        Some(c) => (c.message, c.author),
        None => (String::new(), None),
    };
    let author = author.unwrap_or(CommitAuthor { name: String::new(), email: String::new(), username: None });
    let sender = ev.sender.unwrap_or(Account { login: String::new(), avatar_url: String::new() });
    let target = if event == Event::Tag { String::new() } else { branch.clone() };
    Ok(Delivery::Build(Box::new(Trigger {
        delivery: delivery.clone(),
        installation,
        repo: ev.repository.info(),
        event,
        action: action.to_string(),
        sha: Sha(ev.after),
        before: ev.before,
        git_ref: ev.git_ref,
        source: branch,
        target,
        pull_request: None,
        source_repo: String::new(),
        fork: false,
        title: String::new(),
        message: truncate_chars(&message, MAX_MESSAGE_CHARS),
        link: ev.compare,
        author_login: author.username.unwrap_or_else(|| sender.login.clone()),
        author_name: author.name,
        author_email: author.email,
        author_avatar: sender.avatar_url,
        sender: sender.login,
        parent: 0,
        requested_by: String::new(),
        only_pipelines: Vec::new(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn githubs_published_test_vector_verifies() {
        // From GitHub's "Validating webhook deliveries" page.
        let secret = [SecretString::from("It's a Secret to Everybody".to_string())];
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(verify_signature(&secret, Some(header), b"Hello, World!"), Ok(()));
        assert_eq!(sign("It's a Secret to Everybody", b"Hello, World!"), header);
        assert_eq!(verify_signature(&secret, Some(header), b"Hello, World?"), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(&secret, None, b"x"), Err(SignatureError::Missing));
        assert_eq!(verify_signature(&secret, Some("sha1=abc"), b"x"), Err(SignatureError::Malformed));
    }

    #[test]
    fn any_secret_of_a_rotation_list_is_accepted() {
        let secrets = [SecretString::from("old".to_string()), SecretString::from("new".to_string())];
        assert_eq!(verify_signature(&secrets, Some(&sign("new", b"{}")), b"{}"), Ok(()));
        assert_eq!(verify_signature(&secrets, Some(&sign("other", b"{}")), b"{}"), Err(SignatureError::Mismatch));
    }

    #[test]
    fn messages_are_cut_on_char_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hi", 5), "hi");
    }
}
