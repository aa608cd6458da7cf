//! GitHub's payloads, as much of them as greenlight reads (our own serde
//! structs), and what each event asks for.
//!
//! A pull_request delivery is ~25 KB of which a trigger needs ~1 KB, so the
//! structs borrow their text from the payload ([`Text`]) and name only the
//! fields a trigger needs: serde skips everything else without building it.
//! Only what ends up in the [`Trigger`] is copied, once.

use super::RERUN_FAILED_ACTION;
use super::{Delivery, PayloadError};
use crate::ids::{DeliveryId, InstallationId, RepoId, Sha};
use crate::model::{
    Author, CommandKind, CommentCommand, Commit, Event, InstallationChange, InstalledRepo, MAX_MESSAGE_CHARS, RepoRef, RerunRequest,
    RerunTarget, Trigger,
};
use serde::Deserialize;
use serde::de::{Deserializer, Visitor};
use std::borrow::Cow;
use std::fmt;

/// A JSON string borrowed from the payload; owned only when it has escapes
/// (serde cannot borrow text it had to unescape).
#[derive(Deserialize, Default)]
#[serde(transparent)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl Text<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }

    fn owned(self) -> String {
        self.0.into_owned()
    }
}

/// A JSON string cut to [`MAX_MESSAGE_CHARS`] while it is read: a pull
/// request body or commit message can be far longer than the trigger keeps,
/// and only the kept prefix is ever copied.
#[derive(Default)]
struct Capped<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Capped<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CappedVisitor;
        impl<'de> Visitor<'de> for CappedVisitor {
            type Value = Capped<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Capped(Cow::Borrowed(cut(text))))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Capped(Cow::Owned(cut(text).to_owned())))
            }
        }
        deserializer.deserialize_str(CappedVisitor)
    }
}

/// `text` cut to at most [`MAX_MESSAGE_CHARS`] characters, on a character
/// boundary (what `model::truncate_chars` keeps, without copying).
fn cut(text: &str) -> &str {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[derive(Deserialize)]
struct Account<'a> {
    #[serde(borrow)]
    login: Text<'a>,
    #[serde(default, borrow)]
    avatar_url: Text<'a>,
}

#[derive(Deserialize)]
struct RepoPayload<'a> {
    id: i64,
    #[serde(borrow)]
    name: Text<'a>,
    #[serde(borrow)]
    full_name: Text<'a>,
    #[serde(borrow)]
    owner: OwnerPayload<'a>,
    #[serde(default)]
    private: bool,
    #[serde(default, borrow)]
    clone_url: Text<'a>,
    #[serde(default, borrow)]
    ssh_url: Text<'a>,
    #[serde(default, borrow)]
    html_url: Text<'a>,
    #[serde(default, borrow)]
    default_branch: Text<'a>,
}

#[derive(Deserialize)]
struct OwnerPayload<'a> {
    #[serde(default, borrow)]
    login: Option<Text<'a>>,
    #[serde(default, borrow)]
    name: Option<Text<'a>>,
}

impl RepoPayload<'_> {
    fn info(self) -> RepoRef {
        let owner = match self.owner.login.or(self.owner.name) {
            Some(owner) => owner.owned(),
            None => self.full_name.as_str().split('/').next().unwrap_or_default().to_string(),
        };
        RepoRef {
            id: RepoId(self.id),
            owner,
            name: self.name.owned(),
            private: self.private,
            clone_url: self.clone_url.owned(),
            ssh_url: self.ssh_url.owned(),
            html_url: self.html_url.owned(),
            default_branch: self.default_branch.owned(),
        }
    }
}

#[derive(Deserialize)]
struct InstallationRef {
    id: u64,
}

#[derive(Deserialize)]
pub(super) struct PullRequestEvent<'a> {
    #[serde(borrow)]
    action: Text<'a>,
    #[serde(borrow)]
    pull_request: PullRequestPayload<'a>,
    #[serde(borrow)]
    repository: RepoPayload<'a>,
    installation: Option<InstallationRef>,
    #[serde(borrow)]
    sender: Option<Account<'a>>,
}

#[derive(Deserialize)]
struct PullRequestPayload<'a> {
    number: u64,
    #[serde(default, borrow)]
    title: Capped<'a>,
    #[serde(default, borrow)]
    body: Option<Capped<'a>>,
    #[serde(default, borrow)]
    html_url: Text<'a>,
    #[serde(borrow)]
    user: Option<Account<'a>>,
    #[serde(borrow)]
    head: HeadPayload<'a>,
    #[serde(borrow)]
    base: BasePayload<'a>,
}

/// A pull request's head: where the code comes from.
#[derive(Deserialize)]
struct HeadPayload<'a> {
    #[serde(rename = "ref", borrow)]
    branch: Text<'a>,
    #[serde(borrow)]
    sha: Text<'a>,
    #[serde(borrow)]
    repo: Option<SlugOnly<'a>>,
}

/// A pull request's base: its repository is the delivery's `repository`,
/// so `base.repo` (another full repository object) is skipped unread.
#[derive(Deserialize)]
struct BasePayload<'a> {
    #[serde(rename = "ref", borrow)]
    branch: Text<'a>,
    #[serde(borrow)]
    sha: Text<'a>,
}

#[derive(Deserialize)]
struct SlugOnly<'a> {
    #[serde(borrow)]
    full_name: Text<'a>,
}

#[derive(Deserialize)]
pub(super) struct PushEvent<'a> {
    #[serde(rename = "ref", borrow)]
    git_ref: Text<'a>,
    #[serde(default, borrow)]
    before: Text<'a>,
    #[serde(borrow)]
    after: Text<'a>,
    #[serde(default)]
    deleted: bool,
    #[serde(default, borrow)]
    compare: Text<'a>,
    #[serde(borrow)]
    head_commit: Option<CommitPayload<'a>>,
    #[serde(borrow)]
    repository: RepoPayload<'a>,
    installation: Option<InstallationRef>,
    #[serde(borrow)]
    sender: Option<Account<'a>>,
}

#[derive(Deserialize)]
struct CommitPayload<'a> {
    #[serde(default, borrow)]
    message: Capped<'a>,
    #[serde(borrow)]
    author: Option<CommitAuthor<'a>>,
}

#[derive(Deserialize, Default)]
struct CommitAuthor<'a> {
    #[serde(default, borrow)]
    name: Text<'a>,
    #[serde(default, borrow)]
    email: Text<'a>,
    #[serde(default, borrow)]
    username: Option<Text<'a>>,
}

#[derive(Deserialize)]
pub(super) struct CheckRunEvent<'a> {
    #[serde(borrow)]
    action: Text<'a>,
    #[serde(borrow)]
    check_run: CheckRunPayload<'a>,
    #[serde(borrow)]
    repository: RepoPayload<'a>,
    #[serde(default, borrow)]
    requested_action: Option<RequestedAction<'a>>,
    #[serde(borrow)]
    sender: Option<Account<'a>>,
}

#[derive(Deserialize)]
struct CheckRunPayload<'a> {
    #[serde(borrow)]
    name: Text<'a>,
    #[serde(default, borrow)]
    external_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct RequestedAction<'a> {
    #[serde(borrow)]
    identifier: Text<'a>,
}

#[derive(Deserialize)]
pub(super) struct CheckSuiteEvent<'a> {
    #[serde(borrow)]
    action: Text<'a>,
    #[serde(borrow)]
    check_suite: CheckSuitePayload<'a>,
    #[serde(borrow)]
    repository: RepoPayload<'a>,
    #[serde(borrow)]
    sender: Option<Account<'a>>,
}

#[derive(Deserialize)]
struct CheckSuitePayload<'a> {
    #[serde(borrow)]
    head_sha: Text<'a>,
}

pub(super) fn check_run(ev: CheckRunEvent) -> Delivery {
    let wanted = match (ev.action.as_str(), &ev.requested_action) {
        ("rerequested", _) => true,
        ("requested_action", Some(action)) => action.identifier.as_str() == RERUN_FAILED_ACTION,
        _ => false,
    };
    match (wanted, ev.check_run.external_id) {
        (true, Some(build)) if !build.as_str().is_empty() => Delivery::Rerun(RerunRequest {
            repo: RepoId(ev.repository.id),
            target: RerunTarget::CheckRun { build: build.owned(), name: ev.check_run.name.owned() },
            sender: ev.sender.map(|s| s.login.owned()).unwrap_or_default(),
        }),
        (true, _) => Delivery::Ignored("check run without greenlight's external id".to_string()),
        (false, _) => Delivery::Ignored(format!("check_run action {} starts no build", ev.action.as_str())),
    }
}

pub(super) fn check_suite(ev: CheckSuiteEvent) -> Delivery {
    if ev.action.as_str() != "rerequested" {
        return Delivery::Ignored(format!("check_suite action {} starts no build", ev.action.as_str()));
    }
    Delivery::Rerun(RerunRequest {
        repo: RepoId(ev.repository.id),
        target: RerunTarget::Suite { sha: Sha(ev.check_suite.head_sha.owned()) },
        sender: ev.sender.map(|s| s.login.owned()).unwrap_or_default(),
    })
}

#[derive(Deserialize)]
pub(super) struct IssueCommentEvent<'a> {
    #[serde(borrow)]
    action: Text<'a>,
    #[serde(borrow)]
    issue: IssuePayload<'a>,
    #[serde(borrow)]
    comment: CommentPayload<'a>,
    #[serde(borrow)]
    repository: RepoPayload<'a>,
    installation: Option<InstallationRef>,
}

#[derive(Deserialize)]
struct IssuePayload<'a> {
    number: u64,
    #[serde(borrow)]
    user: Option<Account<'a>>,
    /// Present (an object) when the issue is a pull request.
    #[serde(default)]
    pull_request: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct CommentPayload<'a> {
    id: u64,
    #[serde(default, borrow)]
    body: Option<Text<'a>>,
    #[serde(borrow)]
    user: Option<Account<'a>>,
}

/// A new pull request comment that holds a command; any other comment is
/// ignored here, before anything else is done (no GitHub call, no queue).
pub(super) fn issue_comment(ev: IssueCommentEvent, delivery: &DeliveryId) -> Delivery {
    if ev.action.as_str() != "created" {
        return Delivery::Ignored(format!("issue_comment action {} holds no command", ev.action.as_str()));
    }
    let Some(kind) = ev.comment.body.as_ref().and_then(|b| CommandKind::parse(b.as_str())) else {
        return Delivery::Ignored("comment holds no /greenlight command".to_string());
    };
    if ev.issue.pull_request.is_none() {
        return Delivery::Ignored("commands are read on pull requests, not issues".to_string());
    }
    let installation = match installation("issue_comment", ev.installation) {
        Ok(id) => id,
        Err(ignored) => return ignored,
    };
    Delivery::Command(Box::new(CommentCommand {
        delivery: delivery.clone(),
        installation,
        repo: ev.repository.info(),
        pull_request: ev.issue.number,
        comment: ev.comment.id,
        author: ev.comment.user.map(|u| u.login.owned()).unwrap_or_default(),
        pull_request_author: ev.issue.user.map(|u| u.login.owned()).unwrap_or_default(),
        kind,
    }))
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

#[derive(Deserialize)]
pub(super) struct RepositoryEvent<'a> {
    #[serde(borrow)]
    action: Text<'a>,
    #[serde(borrow)]
    repository: RepoPayload<'a>,
}

/// The actions of a `repository` event that change what greenlight serves
/// (who may read it, where it is found, whether it exists).
const REPOSITORY_ACTIONS: [&str; 6] = ["privatized", "publicized", "renamed", "transferred", "deleted", "edited"];

pub(super) fn repository(ev: RepositoryEvent<'_>) -> Delivery {
    let action = ev.action.owned();
    if !REPOSITORY_ACTIONS.contains(&action.as_str()) {
        return Delivery::Ignored(format!("repository action {action} changes nothing greenlight serves"));
    }
    let deleted = action == "deleted";
    Delivery::Repository(Box::new(super::RepositoryChange { action, repo: ev.repository.info(), deleted }))
}

fn installation(event: &str, inst: Option<InstallationRef>) -> Result<InstallationId, Delivery> {
    inst.map(|i| InstallationId(i.id))
        .ok_or_else(|| Delivery::Ignored(format!("{event} delivery without an installation (not sent to a GitHub App)")))
}

/// Whether `slug` is `owner/name`, ignoring ASCII case (GitHub's logins and
/// repository names are case-insensitive), without building `owner/name`.
fn is_slug_of(slug: &str, owner: &str, name: &str) -> bool {
    let (slug, owner, name) = (slug.as_bytes(), owner.as_bytes(), name.as_bytes());
    slug.len() == owner.len() + 1 + name.len()
        && slug[..owner.len()].eq_ignore_ascii_case(owner)
        && slug[owner.len()] == b'/'
        && slug[owner.len() + 1..].eq_ignore_ascii_case(name)
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
    // A deleted fork leaves `head.repo` null: treat it as a fork (untrusted).
    let (source_repo, fork) = match pr.head.repo {
        Some(head) => {
            let fork = !is_slug_of(head.full_name.as_str(), &repo.owner, &repo.name);
            (head.full_name.owned(), fork)
        }
        None => (String::new(), true),
    };
    let author = pr.user.unwrap_or(Account { login: Text::default(), avatar_url: Text::default() });
    // Title and body arrive cut to MAX_MESSAGE_CHARS; an empty body falls back to the title.
    let title = pr.title.0.into_owned();
    let message = match pr.body {
        Some(body) if !body.0.is_empty() => body.0.into_owned(),
        _ => title.clone(),
    };
    let commit = Commit {
        event: Event::PullRequest,
        action: action.to_string(),
        sha: Sha(pr.head.sha.owned()),
        before: pr.base.sha.owned(),
        git_ref: format!("refs/pull/{}/head", pr.number),
        source: pr.head.branch.owned(),
        target: pr.base.branch.owned(),
        pull_request: Some(pr.number),
        source_repo,
        fork,
        title,
        message,
        link: pr.html_url.owned(),
        author: Author { login: author.login.owned(), name: String::new(), email: String::new(), avatar: author.avatar_url.owned() },
        sender: ev.sender.map(|s| s.login.owned()).unwrap_or_default(),
        ..Commit::default()
    };
    Ok(Delivery::Build(Box::new(webhook_trigger(delivery, repo, installation, commit))))
}

pub(super) fn push(ev: PushEvent, delivery: &DeliveryId) -> Result<Delivery, PayloadError> {
    if ev.deleted || ev.after.as_str().bytes().all(|b| b == b'0') {
        return Ok(Delivery::Ignored("push deletes a ref".to_string()));
    }
    let (event, action, branch) = if let Some(tag) = ev.git_ref.as_str().strip_prefix("refs/tags/") {
        (Event::Tag, "create", tag.to_string())
    } else if let Some(branch) = ev.git_ref.as_str().strip_prefix("refs/heads/") {
        (Event::Push, "", branch.to_string())
    } else {
        return Ok(Delivery::Ignored(format!("push to {} (not a branch or tag)", ev.git_ref.as_str())));
    };
    let installation = match installation("push", ev.installation) {
        Ok(id) => id,
        Err(ignored) => return Ok(ignored),
    };
    let (message, author) = match ev.head_commit {
        Some(c) => (c.message.0.into_owned(), c.author.unwrap_or_default()),
        None => (String::new(), CommitAuthor::default()),
    };
    let sender = ev.sender.map_or_else(|| (String::new(), String::new()), |s| (s.login.owned(), s.avatar_url.owned()));
    let target = if event == Event::Tag { String::new() } else { branch.clone() };
    let commit = Commit {
        event,
        action: action.to_string(),
        sha: Sha(ev.after.owned()),
        before: ev.before.owned(),
        git_ref: ev.git_ref.owned(),
        source: branch,
        target,
        pull_request: None,
        source_repo: String::new(),
        fork: false,
        title: String::new(),
        message,
        link: ev.compare.owned(),
        author: Author {
            login: author.username.map_or_else(|| sender.0.clone(), Text::owned),
            name: author.name.owned(),
            email: author.email.owned(),
            avatar: sender.1,
        },
        sender: sender.0,
        ..Commit::default()
    };
    Ok(Delivery::Build(Box::new(webhook_trigger(delivery, ev.repository.info(), installation, commit))))
}

#[derive(Deserialize)]
pub(super) struct MergeGroupEvent<'a> {
    #[serde(borrow)]
    action: Text<'a>,
    #[serde(borrow)]
    merge_group: MergeGroupPayload<'a>,
    #[serde(borrow)]
    repository: RepoPayload<'a>,
    installation: Option<InstallationRef>,
    #[serde(borrow)]
    sender: Option<Account<'a>>,
}

#[derive(Deserialize)]
struct MergeGroupPayload<'a> {
    #[serde(borrow)]
    head_sha: Text<'a>,
    #[serde(borrow)]
    head_ref: Text<'a>,
    #[serde(borrow)]
    base_sha: Text<'a>,
    #[serde(borrow)]
    base_ref: Text<'a>,
    #[serde(borrow)]
    head_commit: Option<CommitPayload<'a>>,
}

/// The Drone action of a merge group whose checks GitHub asks for; the
/// other action, `destroyed`, cancels the group's build.
const MERGE_GROUP_CHECKS: &str = "checks_requested";

/// `merge_group`: `checks_requested` builds the group's head commit (event
/// `merge_group`, its branch the base branch); `destroyed` (merged,
/// invalidated, dequeued) asks for that build to be cancelled, through the
/// same queue so that intake never calls GitHub.
pub(super) fn merge_group(ev: MergeGroupEvent, delivery: &DeliveryId) -> Delivery {
    let action = match ev.action.as_str() {
        MERGE_GROUP_CHECKS => MERGE_GROUP_CHECKS,
        "destroyed" => super::MERGE_GROUP_DESTROYED,
        other => return Delivery::Ignored(format!("merge_group action {other} starts no build")),
    };
    let installation = match installation("merge_group", ev.installation) {
        Ok(id) => id,
        Err(ignored) => return ignored,
    };
    let group = ev.merge_group;
    let base = group.base_ref.as_str();
    let target = base.strip_prefix("refs/heads/").unwrap_or(base).to_string();
    let head_ref = group.head_ref.owned();
    let (message, author) = match group.head_commit {
        Some(c) => (c.message.0.into_owned(), c.author.unwrap_or_default()),
        None => (String::new(), CommitAuthor::default()),
    };
    let sender = ev.sender.map_or_else(|| (String::new(), String::new()), |s| (s.login.owned(), s.avatar_url.owned()));
    let repo = ev.repository.info();
    let commit = Commit {
        event: Event::MergeGroup,
        action: action.to_string(),
        sha: Sha(group.head_sha.owned()),
        before: group.base_sha.owned(),
        source: head_ref.strip_prefix("refs/heads/").unwrap_or(&head_ref).to_string(),
        git_ref: head_ref,
        target,
        pull_request: None,
        source_repo: String::new(),
        fork: false,
        title: String::new(),
        message,
        link: format!("{}/queue/{}", repo.html_url, base.strip_prefix("refs/heads/").unwrap_or(base)),
        author: Author { login: sender.0.clone(), name: author.name.owned(), email: author.email.owned(), avatar: sender.1 },
        sender: sender.0,
        ..Commit::default()
    };
    Delivery::Build(Box::new(webhook_trigger(delivery, repo, installation, commit)))
}

/// The trigger of a webhook delivery: no parent, no requester, every pipeline.
fn webhook_trigger(delivery: &DeliveryId, repo: RepoRef, installation: InstallationId, commit: Commit) -> Trigger {
    Trigger { delivery: delivery.clone(), installation, repo, commit, parent: 0, requested_by: String::new(), only_pipelines: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::super::parse_delivery;
    use super::*;
    use serde_json::{Value, json};

    fn fixture(name: &str) -> Value {
        let path = format!("{}/fixtures/webhooks/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn parse(event: &str, payload: &Value) -> Delivery {
        parse_delivery(event, &DeliveryId("guid".into()), &serde_json::to_vec(payload).unwrap()).unwrap()
    }

    #[test]
    fn repository_events_say_what_the_repository_is_now() {
        let push = fixture("push.json");
        let event = |action: &str, private: bool| {
            let mut repository = push["repository"].clone();
            repository["private"] = json!(private);
            parse("repository", &json!({ "action": action, "repository": repository }))
        };

        let Delivery::Repository(privatized) = event("privatized", true) else { panic!("privatized is a repository change") };
        let Delivery::Repository(deleted) = event("deleted", false) else { panic!("deleted is a repository change") };

        assert!(privatized.repo.private && !privatized.deleted);
        assert_eq!(privatized.repo.id, RepoId(push["repository"]["id"].as_i64().unwrap()));
        assert!(deleted.deleted);
        assert!(matches!(event("archived", false), Delivery::Ignored(_)));
    }

    fn build(event: &str, payload: &Value) -> Trigger {
        match parse(event, payload) {
            Delivery::Build(trigger) => *trigger,
            other => panic!("expected a build, got {other:?}"),
        }
    }

    #[test]
    fn only_new_pull_request_comments_holding_a_command_are_commands() {
        let mut payload = fixture("issue_comment.created.json");
        payload["comment"]["body"] = json!("/greenlight retry");
        payload["installation"] = json!({ "id": 7 });
        assert!(matches!(parse("issue_comment", &payload), Delivery::Ignored(reason) if reason.contains("not issues")));
        payload["issue"]["pull_request"] = json!({ "url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1" });
        let Delivery::Command(command) = parse("issue_comment", &payload) else { panic!("a command on a pull request") };
        assert_eq!((command.kind, command.pull_request, command.author.as_str()), (CommandKind::Retry, 1, "Codertocat"));
        payload["action"] = json!("edited");
        assert!(matches!(parse("issue_comment", &payload), Delivery::Ignored(_)));
        payload["action"] = json!("created");
        payload["comment"]["body"] = json!("thanks!");
        assert!(matches!(parse("issue_comment", &payload), Delivery::Ignored(reason) if reason.contains("no /greenlight command")));
    }

    #[test]
    fn text_borrows_unless_it_has_escapes() {
        let plain: Text = serde_json::from_str(r#""main""#).unwrap();
        assert!(matches!(plain.0, Cow::Borrowed("main")));
        let escaped: Text = serde_json::from_str(r#""a\"b""#).unwrap();
        assert!(matches!(escaped.0, Cow::Owned(ref s) if s == "a\"b"));
        let capped: Capped = serde_json::from_str(r#""fix""#).unwrap();
        assert!(matches!(capped.0, Cow::Borrowed("fix")));
    }

    #[test]
    fn a_pull_request_becomes_a_compact_trigger() {
        let mut payload = fixture("pull_request.opened.json");
        payload["pull_request"]["head"]["repo"]["full_name"] = json!(payload["repository"]["full_name"].as_str().unwrap().to_uppercase());
        let t = build("pull_request", &payload);
        let pr = &payload["pull_request"];
        assert_eq!(t.commit.event, Event::PullRequest);
        assert_eq!(t.commit.action, "opened");
        assert_eq!(t.commit.sha.0, pr["head"]["sha"].as_str().unwrap());
        assert_eq!(t.commit.before, pr["base"]["sha"].as_str().unwrap());
        assert_eq!(t.commit.git_ref, format!("refs/pull/{}/head", pr["number"]));
        assert_eq!(
            (t.commit.source.as_str(), t.commit.target.as_str()),
            (pr["head"]["ref"].as_str().unwrap(), pr["base"]["ref"].as_str().unwrap())
        );
        assert!(!t.commit.fork, "same repository, whatever the case");
        assert_eq!(t.commit.title, pr["title"].as_str().unwrap());
        assert_eq!(t.commit.message, pr["body"].as_str().unwrap());
        assert_eq!(t.commit.author.login, pr["user"]["login"].as_str().unwrap());
        assert_eq!(t.commit.sender, payload["sender"]["login"].as_str().unwrap());
        assert_eq!(t.repo.owner, payload["repository"]["owner"]["login"].as_str().unwrap());
        assert_eq!(t.repo.clone_url, payload["repository"]["clone_url"].as_str().unwrap());
        assert_eq!(t.installation, InstallationId(payload["installation"]["id"].as_u64().unwrap()));
    }

    #[test]
    fn forks_and_deleted_forks_are_untrusted() {
        let mut payload = fixture("pull_request.opened.json");
        payload["pull_request"]["head"]["repo"]["full_name"] = json!("someone/fork");
        let t = build("pull_request", &payload);
        assert!(t.commit.fork);
        assert_eq!(t.commit.source_repo, "someone/fork");
        payload["pull_request"]["head"]["repo"] = Value::Null;
        let t = build("pull_request", &payload);
        assert!(t.commit.fork);
        assert_eq!(t.commit.source_repo, "");
    }

    #[test]
    fn long_escaped_bodies_are_cut_and_empty_ones_fall_back_to_the_title() {
        let mut payload = fixture("pull_request.opened.json");
        payload["pull_request"]["title"] = json!("é\"".repeat(1500));
        payload["pull_request"]["body"] = json!("line\r\n".repeat(1000));
        let t = build("pull_request", &payload);
        assert_eq!(t.commit.title, "é\"".repeat(1000));
        assert_eq!(t.commit.message, "line\r\n".repeat(1000)[..MAX_MESSAGE_CHARS]);
        for body in [json!(""), Value::Null] {
            payload["pull_request"]["body"] = body;
            assert_eq!(build("pull_request", &payload).commit.message, "é\"".repeat(1000));
        }
    }

    #[test]
    fn pull_request_actions_map_to_drone_actions() {
        let mut payload = fixture("pull_request.opened.json");
        payload["action"] = json!("synchronize");
        assert_eq!(build("pull_request", &payload).commit.action, "synchronized");
        payload["action"] = json!("closed");
        assert_eq!(parse("pull_request", &payload), Delivery::Ignored("pull_request action closed starts no build".into()));
        payload["action"] = json!("opened");
        payload["installation"] = Value::Null;
        assert!(matches!(parse("pull_request", &payload), Delivery::Ignored(_)));
    }

    #[test]
    fn pushes_build_branches_and_tags_and_ignore_deletions() {
        let mut payload = fixture("push.json");
        payload["ref"] = json!("refs/heads/feature/x");
        payload["deleted"] = json!(false);
        payload["after"] = json!("a".repeat(40));
        let t = build("push", &payload);
        assert_eq!((t.commit.event, t.commit.source.as_str(), t.commit.target.as_str()), (Event::Push, "feature/x", "feature/x"));
        assert_eq!(t.commit.message, payload["head_commit"]["message"].as_str().unwrap());
        payload["ref"] = json!("refs/tags/v1");
        let t = build("push", &payload);
        assert_eq!(
            (t.commit.event, t.commit.action.as_str(), t.commit.source.as_str(), t.commit.target.as_str()),
            (Event::Tag, "create", "v1", "")
        );
        payload["ref"] = json!("refs/notes/x");
        assert_eq!(parse("push", &payload), Delivery::Ignored("push to refs/notes/x (not a branch or tag)".into()));
        payload["after"] = json!("0".repeat(40));
        assert_eq!(parse("push", &payload), Delivery::Ignored("push deletes a ref".into()));
    }

    #[test]
    fn a_merge_group_builds_its_head_on_the_base_branch() {
        let payload = fixture("merge_group.checks_requested.json");
        let t = build("merge_group", &payload);
        let group = &payload["merge_group"];
        assert_eq!(t.commit.event, Event::MergeGroup);
        assert_eq!(t.commit.event.reported_as(), "pull_request");
        assert_eq!(t.commit.action, "checks_requested");
        assert_eq!(t.commit.sha.0, group["head_sha"].as_str().unwrap());
        assert_eq!(t.commit.before, group["base_sha"].as_str().unwrap());
        assert_eq!(t.commit.git_ref, group["head_ref"].as_str().unwrap());
        assert_eq!(t.commit.target, "main");
        assert!(t.commit.source.starts_with("gh-readonly-queue/main/"));
        assert_eq!(t.commit.message, group["head_commit"]["message"].as_str().unwrap());
    }

    #[test]
    fn a_destroyed_merge_group_asks_for_a_cancel() {
        let t = build("merge_group", &fixture("merge_group.destroyed.json"));
        assert_eq!((t.commit.event, t.commit.action.as_str()), (Event::MergeGroup, "destroyed"));
        let mut payload = fixture("merge_group.destroyed.json");
        payload["action"] = json!("renamed");
        assert!(matches!(parse("merge_group", &payload), Delivery::Ignored(_)));
    }
}
