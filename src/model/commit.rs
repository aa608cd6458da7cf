//! What a build is about: one commit, and why it is built.
//!
//! The same [`Commit`] is carried by the queued trigger and kept in the
//! stored build, so these facts are written once, by whoever first learns
//! them (the webhook parser, or a rerun copying an earlier build).

use crate::ids::Sha;
use crate::pipeline::Facts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The Drone event a build runs for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A branch push.
    #[default]
    Push,
    /// A pull request opened, synchronized or reopened.
    PullRequest,
    /// A tag push.
    Tag,
    /// A build asked for through the API (`POST /api/repos/{o}/{n}/builds`,
    /// `greenlight build create`), as Drone's `drone build create`.
    Custom,
    /// A build started by a cron job.
    Cron,
}

impl Event {
    /// The name Drone uses (`push`, `pull_request`, `tag`), also the last
    /// part of every status context and check run name.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Push => "push",
            Event::PullRequest => "pull_request",
            Event::Tag => "tag",
            Event::Custom => "custom",
            Event::Cron => "cron",
        }
    }
}

/// Who wrote the commit, as Drone's `author_*` fields show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// GitHub login (the pull request's author, or the pusher's username).
    pub login: String,
    /// Git author name (empty for pull requests: GitHub does not send it).
    pub name: String,
    /// Git author email (empty for pull requests).
    pub email: String,
    /// Avatar URL, for build lists.
    pub avatar: String,
}

/// The commit a build runs and the event that asked for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// push, pull_request or tag: decides triggers, lanes and status contexts.
    pub event: Event,
    /// Drone's action: `opened`, `synchronized`, `reopened`, `create` (tags) or empty.
    pub action: String,
    /// The commit to build (the pull request's head, possibly in a fork).
    pub sha: Sha,
    /// The previous sha (push `before`, the pull request's base sha).
    pub before: String,
    /// The full git ref (`refs/heads/…`, `refs/pull/N/head`, `refs/tags/…`).
    pub git_ref: String,
    /// Source branch (the pull request's head branch, or the pushed branch).
    pub source: String,
    /// Target branch (the pull request's base, or the pushed branch; empty for tags):
    /// what `branch` conditions match.
    pub target: String,
    /// The pull request number, which also names its auto-cancel lane.
    pub pull_request: Option<u64>,
    /// `owner/name` of the pull request's head repository (a fork's slug), else empty.
    pub source_repo: String,
    /// Whether the code comes from a fork (or a deleted head repository):
    /// untrusted, so no secrets unless approved.
    pub fork: bool,
    /// Pull request title, empty for pushes.
    pub title: String,
    /// Commit message, cut to [`MAX_MESSAGE_CHARS`].
    pub message: String,
    /// Compare, pull request or commit link.
    pub link: String,
    /// Who wrote it.
    pub author: Author,
    /// Who sent the event (or pressed the button).
    pub sender: String,
    /// Parameters of a `custom` build, given to its steps as environment
    /// variables (Drone's build `params`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// The cron job that started a `cron` build (`DRONE_CRON`), else empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cron: String,
}

/// Drone truncates commit messages to 2,000 characters; so do we, to keep the
/// queued record compact.
pub const MAX_MESSAGE_CHARS: usize = 2000;

impl Commit {
    /// Whether this commit is a new push to its lane (a branch push, or new
    /// commits on a pull request), so older builds of the lane are superseded.
    pub fn is_new_push(&self) -> bool {
        self.event == Event::Push || (self.event == Event::PullRequest && self.action == "synchronized")
    }

    /// What `trigger` and `when` conditions match this commit against, in repository `slug`.
    pub fn facts<'a>(&'a self, slug: &'a str) -> Facts<'a> {
        Facts { event: self.event.as_str(), branch: &self.target, git_ref: &self.git_ref, action: &self.action, repo: slug }
    }

    /// Whether `other` is built in the same auto-cancel lane: the same pull
    /// request, or the same event on the same ref.
    pub fn same_lane(&self, other: &Commit) -> bool {
        match self.event {
            Event::PullRequest => other.event == Event::PullRequest && other.pull_request == self.pull_request,
            _ => other.event == self.event && other.git_ref == self.git_ref,
        }
    }
}

/// `text` cut to at most `max` characters, on a character boundary.
pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_on_char_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hi", 5), "hi");
    }
}
