//! Drone's `trigger` and `when` conditions: each is a string, a list, or
//! `{include, exclude}` of glob patterns, and all listed conditions must match.
//!
//! `paths` is the condition of Drone's paths extension (meltwater's
//! drone-convert-pathschanged): it matches when any changed file is not
//! excluded and is included (or there is no include list), with the same
//! globs as the other conditions (`*` stops at `/`, `**` crosses it). When
//! the changed files are not known it matches: a pipeline runs rather than
//! being skipped on a guess.

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
    /// Changed files (Drone's paths extension), e.g. `{include: [docs/**]}`.
    #[serde(default)]
    pub paths: Condition,
}

/// The facts of a build that conditions are matched against.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// push, pull_request, tag or merge_group.
    pub event: &'a str,
    /// Target branch (empty for tags).
    pub branch: &'a str,
    /// The full git ref, matched by `ref`.
    pub git_ref: &'a str,
    /// The pull request action, matched by `action`.
    pub action: &'a str,
    /// `owner/name`.
    pub repo: &'a str,
    /// The files the build's changes touch, when GitHub said (`None`: not
    /// known, so `paths` conditions match).
    pub changed: Option<&'a [String]>,
}

impl Conditions {
    /// Whether every condition other than `status` matches.
    pub fn matches(&self, facts: &Facts<'_>) -> bool {
        self.mismatch(facts).is_none()
    }

    /// The first condition other than `status` that does not match, as the
    /// one line a skipped pipeline's check run and status show; `None`
    /// when all match.
    pub fn mismatch(&self, facts: &Facts<'_>) -> Option<String> {
        let differs = |key: &str, value: &str| Some(format!("{key} `{value}` does not match the trigger"));
        if !self.event.matches(facts.event) {
            return differs("event", facts.event);
        }
        if !self.branch.is_empty() && (facts.branch.is_empty() || !self.branch.matches(facts.branch)) {
            return if facts.branch.is_empty() {
                Some("a tag has no branch to match".to_string())
            } else {
                differs("branch", facts.branch)
            };
        }
        if !self.git_ref.matches(facts.git_ref) {
            return differs("ref", facts.git_ref);
        }
        if !self.action.matches(facts.action) {
            return differs("action", facts.action);
        }
        if !self.repo.matches(facts.repo) {
            return differs("repo", facts.repo);
        }
        if !self.paths_match(facts.changed) {
            return Some("no changed file matches its paths".to_string());
        }
        None
    }

    /// Whether the `paths` condition admits these changed files: any file
    /// not excluded and included; always when there is no condition or the
    /// files are not known (or none: an empty change, where Drone's paths
    /// extension runs everything too).
    pub fn paths_match(&self, changed: Option<&[String]>) -> bool {
        match changed {
            Some(files) if !self.paths.is_empty() && !files.is_empty() => files.iter().any(|f| self.paths.matches(f)),
            _ => true,
        }
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
        Facts { event, branch, git_ref, action: "", repo: "acme/widget", changed: None }
    }

    fn changed(files: &[&str]) -> Vec<String> {
        files.iter().map(|f| f.to_string()).collect()
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

    #[test]
    fn paths_match_when_any_changed_file_is_included_and_not_excluded() {
        let docs = cond("paths: {include: [\"docs/**\", \"*.md\"], exclude: [docs/drafts/**]}");
        let with = |files: &[&str]| docs.paths_match(Some(&changed(files)));
        assert!(with(&["docs/guide/install.md"]));
        assert!(with(&["README.md", "src/main.rs"]));
        assert!(!with(&["src/main.rs", "src/lib/README.md"]), "`*` does not cross a slash");
        assert!(!with(&["docs/drafts/next.md"]));
        assert!(with(&["docs/drafts/next.md", "docs/index.md"]));
        let code = cond("paths: {exclude: [\"docs/**\"]}");
        assert!(!code.paths_match(Some(&changed(&["docs/a.md", "docs/b/c.md"]))));
        assert!(code.paths_match(Some(&changed(&["docs/a.md", "src/lib.rs"]))));
    }

    #[test]
    fn unknown_or_empty_changes_run_the_pipeline() {
        let docs = cond("paths: [\"docs/**\"]");
        assert!(docs.paths_match(None));
        assert!(docs.paths_match(Some(&[])));
        assert!(cond("{}").paths_match(Some(&changed(&["src/lib.rs"]))));
    }

    #[test]
    fn a_mismatch_names_the_condition() {
        let mut f = facts("merge_group", "main", "refs/heads/gh-readonly-queue/main/pr-1-abc");
        assert_eq!(cond("event: [push]").mismatch(&f).unwrap(), "event `merge_group` does not match the trigger");
        let files = changed(&["src/lib.rs"]);
        f.changed = Some(&files);
        assert_eq!(cond("paths: [docs/**]").mismatch(&f).unwrap(), "no changed file matches its paths");
        assert_eq!(cond("paths: [src/**]").mismatch(&f), None);
    }
}
