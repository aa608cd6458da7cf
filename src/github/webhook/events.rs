//! GitHub's payloads, as much of them as greenlight reads (our own serde
//! structs), and what each event asks for.

use super::RERUN_FAILED_ACTION;
use super::{Delivery, PayloadError};
use crate::ids::{DeliveryId, InstallationId, RepoId, Sha};
use crate::model::{
    Author, Commit, Event, InstallationChange, InstalledRepo, MAX_MESSAGE_CHARS, RepoRef, RerunRequest, RerunTarget, Trigger,
    truncate_chars,
};
use serde::Deserialize;

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
    fn info(self) -> RepoRef {
        let owner =
            self.owner.login.or(self.owner.name).unwrap_or_else(|| self.full_name.split('/').next().unwrap_or_default().to_string());
        RepoRef {
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
pub(super) struct PullRequestEvent {
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
pub(super) struct PushEvent {
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

#[derive(Deserialize)]
pub(super) struct CheckRunEvent {
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
pub(super) struct CheckSuiteEvent {
    action: String,
    check_suite: CheckSuitePayload,
    repository: RepoPayload,
    sender: Option<Account>,
}

#[derive(Deserialize)]
struct CheckSuitePayload {
    head_sha: String,
}

pub(super) fn check_run(ev: CheckRunEvent) -> Delivery {
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

pub(super) fn check_suite(ev: CheckSuiteEvent) -> Delivery {
    if ev.action != "rerequested" {
        return Delivery::Ignored(format!("check_suite action {} starts no build", ev.action));
    }
    Delivery::Rerun(RerunRequest {
        repo: RepoId(ev.repository.id),
        target: RerunTarget::Suite { sha: Sha(ev.check_suite.head_sha) },
        sender: ev.sender.map(|s| s.login).unwrap_or_default(),
    })
}

#[derive(Deserialize)]
pub(super) struct InstallationEvent {
    action: String,
    installation: InstallationRef,
    #[serde(default)]
    repositories: Vec<InstalledRepo>,
    #[serde(default)]
    repositories_added: Vec<InstalledRepo>,
    #[serde(default)]
    repositories_removed: Vec<InstalledRepo>,
}

pub(super) fn installation_change(event: &str, ev: InstallationEvent) -> Delivery {
    let installation = InstallationId(ev.installation.id);
    let (added, removed) = match (event, ev.action.as_str()) {
        ("installation", "created" | "unsuspend" | "new_permissions_accepted") => (ev.repositories, Vec::new()),
        ("installation", "deleted" | "suspend") => (Vec::new(), ev.repositories),
        ("installation_repositories", "added" | "removed") => (ev.repositories_added, ev.repositories_removed),
        (_, other) => return Delivery::Ignored(format!("{event} action {other} changes nothing")),
    };
    Delivery::Installation(InstallationChange { installation, added, removed })
}

fn installation(event: &str, inst: Option<InstallationRef>) -> Result<InstallationId, Delivery> {
    inst.map(|i| InstallationId(i.id))
        .ok_or_else(|| Delivery::Ignored(format!("{event} delivery without an installation (not sent to a GitHub App)")))
}

pub(super) fn pull_request(ev: PullRequestEvent, delivery: &DeliveryId) -> Result<Delivery, PayloadError> {
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
    let commit = Commit {
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
        author: Author { login: author.login, name: String::new(), email: String::new(), avatar: author.avatar_url },
        sender: ev.sender.map(|s| s.login).unwrap_or_default(),
    };
    Ok(Delivery::Build(Box::new(webhook_trigger(delivery, repo, installation, commit))))
}

pub(super) fn push(ev: PushEvent, delivery: &DeliveryId) -> Result<Delivery, PayloadError> {
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
    let commit = Commit {
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
        author: Author {
            login: author.username.unwrap_or_else(|| sender.login.clone()),
            name: author.name,
            email: author.email,
            avatar: sender.avatar_url,
        },
        sender: sender.login,
    };
    Ok(Delivery::Build(Box::new(webhook_trigger(delivery, ev.repository.info(), installation, commit))))
}

/// The trigger of a webhook delivery: no parent, no requester, every pipeline.
fn webhook_trigger(delivery: &DeliveryId, repo: RepoRef, installation: InstallationId, commit: Commit) -> Trigger {
    Trigger { delivery: delivery.clone(), installation, repo, commit, parent: 0, requested_by: String::new(), only_pipelines: Vec::new() }
}
