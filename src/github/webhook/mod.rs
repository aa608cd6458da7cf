//! Webhook deliveries: signature verification and the compact trigger that
//! is queued instead of the whole (up to 25 MB) payload.
//!
//! The payload types are our own minimal serde structs: octocrab's webhook
//! types are beta and fail on action values they do not know.

mod events;
mod signature;

pub use signature::{SignatureError, sign, verify_signature};

use crate::ids::{DeliveryId, InstallationId, RepoId, Sha};
use serde::{Deserialize, Serialize};

/// GitHub caps webhook payloads at 25 MB and does not deliver larger ones
/// ("Payloads are capped at 25 MB", GitHub docs, webhook payload cap).
pub const MAX_PAYLOAD_BYTES: usize = 25 * 1024 * 1024;

/// Drone truncates commit messages to 2,000 characters; so do we, to keep the
/// queued record compact.
pub const MAX_MESSAGE_CHARS: usize = 2000;

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
        "pull_request" => events::pull_request(serde_json::from_slice(body).map_err(wrap)?, delivery),
        "push" => events::push(serde_json::from_slice(body).map_err(wrap)?, delivery),
        "installation" | "installation_repositories" => Ok(events::installation_change(event, serde_json::from_slice(body).map_err(wrap)?)),
        "check_run" => Ok(events::check_run(serde_json::from_slice(body).map_err(wrap)?)),
        "check_suite" => Ok(events::check_suite(serde_json::from_slice(body).map_err(wrap)?)),
        other => {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(wrap)?;
            Ok(Delivery::Ignored(format!("event {other} starts no build")))
        }
    }
}
