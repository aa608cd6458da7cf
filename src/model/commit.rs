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
    /// A merge queue asking for checks on a merge group's head commit.
    MergeGroup,
    /// A build asked for through the API (`POST /api/repos/{o}/{n}/builds`,
    /// `greenlight build create`), as Drone's `drone build create`.
    Custom,
    /// A build started by a cron job.
    Cron,
}

impl Event {
    /// The name Drone uses (`push`, `pull_request`, `tag`, `merge_group`):
    /// what `trigger: event` and `when: event` match and `DRONE_BUILD_EVENT` says.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Push => "push",
            Event::PullRequest => "pull_request",
            Event::Tag => "tag",
            Event::MergeGroup => "merge_group",
            Event::Custom => "custom",
            Event::Cron => "cron",
        }
    }

    /// The last part of every status context and check run name. A merge
    /// group reports under the pull request's names: GitHub matches required
    /// checks by name, so one branch protection rule then covers both the
    /// pull request and the merge queue.
    pub fn reported_as(self) -> &'static str {
        match self {
            Event::MergeGroup => Event::PullRequest.as_str(),
            other => other.as_str(),
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
    /// push, pull_request, tag or merge_group: decides triggers, lanes and status contexts.
    pub event: Event,
    /// Drone's action: `opened`, `synchronized`, `reopened`, `create` (tags) or empty.
    pub action: String,
    /// The commit to build (the pull request's head, possibly in a fork).
    pub sha: Sha,
    /// The previous sha (push `before`, the pull request's or merge group's base sha).
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

/// The action of a merge group trigger that builds nothing: GitHub
/// destroyed the group (merged, invalidated or dequeued), so its build is
/// cancelled.
pub const MERGE_GROUP_DESTROYED: &str = "destroyed";

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
    /// The changed files are not known here (see [`Facts::changed`]).
    pub fn facts<'a>(&'a self, slug: &'a str) -> Facts<'a> {
        Facts { event: self.event.as_str(), branch: &self.target, git_ref: &self.git_ref, action: &self.action, repo: slug, changed: None }
    }

    /// The commit the changed files are counted from: the push's `before`,
    /// the pull request's or merge group's base; `None` when there is none
    /// (a new branch or tag: `before` is all zeros) or it is not a hex sha
    /// (it goes into a URL path).
    pub fn compare_base(&self) -> Option<&str> {
        let before = self.before.as_str();
        let sha = !before.is_empty() && before.bytes().all(|b| b.is_ascii_hexdigit());
        (sha && !before.bytes().all(|b| b == b'0')).then_some(before)
    }

    /// Whether this asks to cancel a merge group's build rather than start one.
    pub fn ends_merge_group(&self) -> bool {
        self.event == Event::MergeGroup && self.action == MERGE_GROUP_DESTROYED
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
    fn only_a_real_before_sha_is_compared_from() {
        let commit = |before: &str| Commit { before: before.to_string(), ..Commit::default() };
        assert_eq!(commit(&"a1".repeat(20)).compare_base(), Some("a1".repeat(20).as_str()));
        assert_eq!(commit(&"0".repeat(40)).compare_base(), None);
        assert_eq!(commit("").compare_base(), None);
        assert_eq!(commit("main/../x?y").compare_base(), None);
    }

    #[test]
    fn messages_are_cut_on_char_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hi", 5), "hi");
    }
}
