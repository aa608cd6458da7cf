//! The environment a step sees: PATH, HOME, Drone's variables (and their
//! `CI_*` aliases), the pipeline's and the step's `environment`. Nothing of
//! the worker's own environment reaches a step.

use crate::model::Event;
use crate::pipeline::{EnvValue, Pipeline, Step};
use std::collections::BTreeMap;

/// PATH inside the sandbox.
pub const STEP_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The facts of a build a step's environment describes.
#[derive(Debug, Clone, Default)]
pub struct BuildFacts {
    /// Build number.
    pub number: i64,
    /// Parent build number (reruns).
    pub parent: i64,
    /// push, pull_request or tag.
    pub event: String,
    /// Drone's action.
    pub action: String,
    /// The commit.
    pub sha: String,
    /// Previous commit.
    pub before: String,
    /// Full ref.
    pub git_ref: String,
    /// Source branch.
    pub source: String,
    /// Target branch.
    pub target: String,
    /// PR number.
    pub pull_request: Option<u64>,
    /// PR title.
    pub title: String,
    /// Commit message.
    pub message: String,
    /// Commit link.
    pub link: String,
    /// Author login.
    pub author: String,
    /// Author name.
    pub author_name: String,
    /// Author email.
    pub author_email: String,
    /// `owner/name`.
    pub repo: String,
    /// Web URL of the repository.
    pub repo_link: String,
    /// Clone URL.
    pub clone_url: String,
    /// Default branch.
    pub default_branch: String,
    /// Whether the repository is private.
    pub private: bool,
    /// The build page.
    pub build_link: String,
}

/// Why a step's environment could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("step `{step}` asks for secret `{secret}`, which greenlight cannot give it: {reason}")]
pub struct EnvError {
    /// The step.
    pub step: String,
    /// The secret.
    pub secret: String,
    /// Why not.
    pub reason: String,
}

/// Where a step's `from_secret` values come from: a value, or why not.
pub type SecretSource<'a> = &'a (dyn Fn(&str) -> Result<String, String> + Sync);

/// No secrets at all (`greenlight exec`).
pub fn no_secrets(_: &str) -> Result<String, String> {
    Err("`greenlight exec` has no secrets; set the variable in the step's environment to try it locally".to_string())
}

/// Builds a step's environment (sorted, for a stable script).
#[allow(clippy::too_many_arguments)]
pub fn step_env(
    facts: &BuildFacts,
    pipeline: &Pipeline,
    stage_number: i64,
    step: &Step,
    step_number: i64,
    workspace: &str,
    home: &str,
    secrets: SecretSource<'_>,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_string(), v);
    };
    let (owner, name) = facts.repo.split_once('/').unwrap_or((&facts.repo, ""));
    let branch = if facts.event == Event::Tag.as_str() { String::new() } else { facts.target.clone() };
    set("PATH", STEP_PATH.to_string());
    set("HOME", home.to_string());
    set("CI", "true".into());
    set("DRONE", "true".into());
    set("DRONE_BUILD_NUMBER", facts.number.to_string());
    set("DRONE_BUILD_PARENT", facts.parent.to_string());
    set("DRONE_BUILD_EVENT", facts.event.clone());
    set("DRONE_BUILD_ACTION", facts.action.clone());
    set("DRONE_BUILD_LINK", facts.build_link.clone());
    set("DRONE_COMMIT", facts.sha.clone());
    set("DRONE_COMMIT_SHA", facts.sha.clone());
    set("DRONE_COMMIT_BEFORE", facts.before.clone());
    set("DRONE_COMMIT_AFTER", facts.sha.clone());
    set("DRONE_COMMIT_REF", facts.git_ref.clone());
    set("DRONE_COMMIT_BRANCH", branch.clone());
    set("DRONE_COMMIT_LINK", facts.link.clone());
    set("DRONE_COMMIT_MESSAGE", facts.message.clone());
    set("DRONE_COMMIT_AUTHOR", facts.author.clone());
    set("DRONE_COMMIT_AUTHOR_NAME", facts.author_name.clone());
    set("DRONE_COMMIT_AUTHOR_EMAIL", facts.author_email.clone());
    set("DRONE_BRANCH", branch.clone());
    set("DRONE_SOURCE_BRANCH", facts.source.clone());
    set("DRONE_TARGET_BRANCH", facts.target.clone());
    if let Some(pr) = facts.pull_request {
        set("DRONE_PULL_REQUEST", pr.to_string());
        set("DRONE_PULL_REQUEST_TITLE", facts.title.clone());
    }
    if let Some(tag) = facts.git_ref.strip_prefix("refs/tags/") {
        set("DRONE_TAG", tag.to_string());
    }
    set("DRONE_REPO", facts.repo.clone());
    set("DRONE_REPO_OWNER", owner.to_string());
    set("DRONE_REPO_NAMESPACE", owner.to_string());
    set("DRONE_REPO_NAME", name.to_string());
    set("DRONE_REPO_LINK", facts.repo_link.clone());
    set("DRONE_REPO_BRANCH", facts.default_branch.clone());
    set("DRONE_REPO_PRIVATE", facts.private.to_string());
    set("DRONE_REPO_SCM", "git".into());
    set("DRONE_GIT_HTTP_URL", facts.clone_url.clone());
    set("DRONE_REMOTE_URL", facts.clone_url.clone());
    set("DRONE_STAGE_NAME", pipeline.name.clone());
    set("DRONE_STAGE_NUMBER", stage_number.to_string());
    set("DRONE_STEP_NAME", step.name.clone());
    set("DRONE_STEP_NUMBER", step_number.to_string());
    set("DRONE_WORKSPACE", workspace.to_string());
    set("CI_BUILD_NUMBER", facts.number.to_string());
    set("CI_BUILD_EVENT", facts.event.clone());
    set("CI_BUILD_LINK", facts.build_link.clone());
    set("CI_COMMIT_SHA", facts.sha.clone());
    set("CI_COMMIT_REF", facts.git_ref.clone());
    set("CI_COMMIT_BRANCH", branch);
    set("CI_COMMIT_MESSAGE", facts.message.clone());
    set("CI_REPO", facts.repo.clone());
    set("CI_REPO_NAME", facts.repo.clone());
    set("CI_REPO_LINK", facts.repo_link.clone());
    set("CI_REMOTE_URL", facts.clone_url.clone());
    set("CI_WORKSPACE", workspace.to_string());
    for (key, value) in pipeline.environment.iter().chain(step.environment.iter()) {
        match value {
            EnvValue::Plain(v) => set(key, v.clone()),
            EnvValue::Secret(secret) => match secrets(secret) {
                Ok(value) => set(key, value),
                Err(reason) => return Err(EnvError { step: step.name.clone(), secret: secret.clone(), reason }),
            },
        }
    }
    Ok(env.into_iter().collect())
}
