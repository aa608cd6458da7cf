//! Drone's `trigger` and `when` conditions: each is a string, a list, or
//! `{include, exclude}` of glob patterns, and all listed conditions must match.

use serde::{Deserialize, Serialize};

/// One condition: glob patterns a value must match (include) and must not
/// match (exclude). Empty include means "anything".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Condition {
    /// Patterns of which one must match (when any are given).
    pub include: Vec<String>,
    /// Patterns none of which may match.
    pub exclude: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCondition {
    One(String),
    Many(Vec<String>),
    Split {
        #[serde(default)]
        include: Vec<String>,
        #[serde(default)]
        exclude: Vec<String>,
    },
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match RawCondition::deserialize(deserializer)? {
            RawCondition::One(p) => Condition { include: vec![p], exclude: vec![] },
            RawCondition::Many(include) => Condition { include, exclude: vec![] },
            RawCondition::Split { include, exclude } => Condition { include, exclude },
        })
    }
}

fn glob_match(pattern: &str, value: &str) -> bool {
    let options = glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };
    match glob::Pattern::new(pattern) {
        Ok(p) => p.matches_with(value, options),
        Err(_) => pattern == value,
    }
}

impl Condition {
    /// Whether nothing was specified.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Drone's rule: not excluded, and included (or no include list).
    pub fn matches(&self, value: &str) -> bool {
        if self.exclude.iter().any(|p| glob_match(p, value)) {
            return false;
        }
        self.include.is_empty() || self.include.iter().any(|p| glob_match(p, value))
    }

    /// Every pattern, included or excluded, for validation.
    pub fn patterns(&self) -> impl Iterator<Item = &String> {
        self.include.iter().chain(self.exclude.iter())
    }
}

/// The conditions of a `trigger:` or a step's `when:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// Target branch (the PR's base branch; the pushed branch).
    #[serde(default)]
    pub branch: Condition,
    /// push, pull_request, tag.
    #[serde(default)]
    pub event: Condition,
    /// The full git ref (`refs/tags/v*`), the way to select tags by name.
    #[serde(default, rename = "ref")]
    pub git_ref: Condition,
    /// Drone's action (opened, synchronized, …).
    #[serde(default)]
    pub action: Condition,
    /// The repository's `owner/name`, for a file shared by forks or mirrors.
    #[serde(default)]
    pub repo: Condition,
    /// success / failure: whether the stage (or, in `trigger`, the
    /// pipelines depended on) is passing.
    #[serde(default)]
    pub status: Condition,
}

/// The facts of a build that conditions are matched against.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// push, pull_request or tag.
    pub event: &'a str,
    /// Target branch (empty for tags).
    pub branch: &'a str,
    /// The full git ref, matched by `ref`.
    pub git_ref: &'a str,
    /// The pull request action, matched by `action`.
    pub action: &'a str,
    /// `owner/name`.
    pub repo: &'a str,
}

impl Conditions {
    /// Whether every condition other than `status` matches.
    pub fn matches(&self, facts: &Facts<'_>) -> bool {
        self.event.matches(facts.event)
            && (self.branch.is_empty() || (!facts.branch.is_empty() && self.branch.matches(facts.branch)))
            && self.git_ref.matches(facts.git_ref)
            && self.action.matches(facts.action)
            && self.repo.matches(facts.repo)
    }

    /// Whether the `status` condition admits running when the stage is
    /// passing (`failing` false) or failing (`failing` true). Without a
    /// status condition a step runs only while everything passes.
    pub fn admits_status(&self, failing: bool) -> bool {
        if self.status.is_empty() {
            return !failing;
        }
        self.status.matches(if failing { "failure" } else { "success" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(event: &'a str, branch: &'a str, git_ref: &'a str) -> Facts<'a> {
        Facts { event, branch, git_ref, action: "", repo: "acme/widget" }
    }

    fn cond(yaml: &str) -> Conditions {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn a_string_a_list_and_include_exclude_all_work() {
        let c = cond("branch: main");
        assert!(c.matches(&facts("push", "main", "refs/heads/main")));
        assert!(!c.matches(&facts("push", "dev", "refs/heads/dev")));
        let c = cond("event: [push, tag]");
        assert!(c.matches(&facts("tag", "", "refs/tags/v1")));
        assert!(!c.matches(&facts("pull_request", "main", "refs/pull/1/head")));
        let c = cond("branch: {exclude: [wip/*]}");
        assert!(c.matches(&facts("push", "main", "refs/heads/main")));
        assert!(!c.matches(&facts("push", "wip/x", "refs/heads/wip/x")));
    }

    #[test]
    fn globs_do_not_cross_slashes_unless_doubled() {
        assert!(cond("branch: feature/*").matches(&facts("push", "feature/a", "")));
        assert!(!cond("branch: feature/*").matches(&facts("push", "feature/a/b", "")));
        assert!(cond("ref: refs/tags/**").matches(&facts("tag", "", "refs/tags/v1/rc")));
    }

    #[test]
    fn a_branch_condition_never_matches_a_tag() {
        assert!(!cond("branch: main").matches(&facts("tag", "", "refs/tags/v1")));
    }

    #[test]
    fn status_defaults_to_success_only() {
        assert!(cond("{}").admits_status(false));
        assert!(!cond("{}").admits_status(true));
        assert!(cond("status: [failure]").admits_status(true));
        assert!(!cond("status: [failure]").admits_status(false));
        assert!(cond("status: [success, failure]").admits_status(true));
    }
}
