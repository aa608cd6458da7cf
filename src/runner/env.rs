//! The environment a step sees: PATH, HOME, Drone's variables (and their
//! `CI_*` aliases), the pipeline's and the step's `environment`. Nothing of
//! the worker's own environment reaches a step.

use crate::model::{Commit, Event, RepoRef};
use crate::pipeline::{EnvValue, Pipeline, Step};
use std::collections::BTreeMap;

/// PATH for every step: the system's usual directories, never the worker's own PATH.
pub const STEP_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The facts of a build a step's environment describes: the same
/// [`Commit`] and [`RepoRef`] the build holds, and where it runs.
#[derive(Debug, Clone, Default)]
pub struct BuildFacts {
    /// The repository's build number (`DRONE_BUILD_NUMBER`).
    pub number: i64,
    /// The build this one reruns, 0 for none (`DRONE_BUILD_PARENT`).
    pub parent: i64,
    /// The commit and event (`DRONE_COMMIT_*`, `DRONE_BUILD_EVENT`, branches, pull request, tag).
    pub commit: Commit,
    /// The repository (`DRONE_REPO_*`, `DRONE_GIT_HTTP_URL`).
    pub repo: RepoRef,
    /// greenlight's page for the build (`DRONE_BUILD_LINK`).
    pub build_link: String,
    /// The worker running the stage (`DRONE_STAGE_MACHINE`).
    pub machine: String,
}

/// Why a step's environment could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("step `{step}` asks for secret `{secret}`, which greenlight cannot give it: {reason}")]
pub struct EnvError {
    /// The step that asked, to say which step to fix.
    pub step: String,
    /// The secret's name as the step's `from_secret` gives it.
    pub secret: String,
    /// Why it is withheld: missing, fork build, pull_request flag off, or a store error.
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
    let mut env = Vars::new();
    // A tag build has no branch, as in Drone.
    let branch = if facts.commit.event == Event::Tag { "" } else { facts.commit.target.as_str() };
    set(&mut env, "PATH", STEP_PATH);
    set(&mut env, "HOME", home);
    set(&mut env, "CI", "true");
    set(&mut env, "DRONE", "true");
    build_vars(&mut env, facts, branch);
    repo_vars(&mut env, facts);
    position_vars(&mut env, pipeline, stage_number, step, step_number, workspace);
    ci_aliases(&mut env, facts, branch, workspace);
    declared_vars(&mut env, pipeline, step, secrets)?;
    Ok(env.into_iter().collect())
}

/// A step's environment while it is being built.
type Vars = BTreeMap<String, String>;

fn set(env: &mut Vars, key: &str, value: impl Into<String>) {
    env.insert(key.to_string(), value.into());
}

/// Drone's variables for the build and its commit (`DRONE_BUILD_*`,
/// `DRONE_COMMIT_*`, branches, pull request, tag).
fn build_vars(env: &mut Vars, facts: &BuildFacts, branch: &str) {
    set(env, "DRONE_BUILD_NUMBER", facts.number.to_string());
    set(env, "DRONE_BUILD_PARENT", facts.parent.to_string());
    set(env, "DRONE_BUILD_EVENT", facts.commit.event.as_str());
    set(env, "DRONE_BUILD_ACTION", &facts.commit.action);
    set(env, "DRONE_BUILD_LINK", &facts.build_link);
    set(env, "DRONE_STAGE_MACHINE", &facts.machine);
    set(env, "DRONE_COMMIT", &facts.commit.sha.0);
    set(env, "DRONE_COMMIT_SHA", &facts.commit.sha.0);
    set(env, "DRONE_COMMIT_BEFORE", &facts.commit.before);
    set(env, "DRONE_COMMIT_AFTER", &facts.commit.sha.0);
    set(env, "DRONE_COMMIT_REF", &facts.commit.git_ref);
    set(env, "DRONE_COMMIT_BRANCH", branch);
    set(env, "DRONE_COMMIT_LINK", &facts.commit.link);
    set(env, "DRONE_COMMIT_MESSAGE", &facts.commit.message);
    set(env, "DRONE_COMMIT_AUTHOR", &facts.commit.author.login);
    set(env, "DRONE_COMMIT_AUTHOR_NAME", &facts.commit.author.name);
    set(env, "DRONE_COMMIT_AUTHOR_EMAIL", &facts.commit.author.email);
    set(env, "DRONE_BRANCH", branch);
    set(env, "DRONE_SOURCE_BRANCH", &facts.commit.source);
    set(env, "DRONE_TARGET_BRANCH", &facts.commit.target);
    if let Some(pr) = facts.commit.pull_request {
        set(env, "DRONE_PULL_REQUEST", pr.to_string());
        set(env, "DRONE_PULL_REQUEST_TITLE", &facts.commit.title);
    }
    if let Some(tag) = facts.commit.git_ref.strip_prefix("refs/tags/") {
        set(env, "DRONE_TAG", tag);
    }
    if !facts.commit.cron.is_empty() {
        set(env, "DRONE_CRON", &facts.commit.cron);
    }
    // A custom build's parameters, as Drone gives them (their names were
    // checked when the build was asked for: none replaces Drone's own).
    for (key, value) in &facts.commit.params {
        set(env, key, value);
    }
}

/// Drone's variables for the repository (`DRONE_REPO_*` and its URLs).
fn repo_vars(env: &mut Vars, facts: &BuildFacts) {
    let slug = facts.repo.slug();
    let (owner, name) = (&facts.repo.owner, &facts.repo.name);
    set(env, "DRONE_REPO", &slug);
    set(env, "DRONE_REPO_OWNER", owner);
    set(env, "DRONE_REPO_NAMESPACE", owner);
    set(env, "DRONE_REPO_NAME", name);
    set(env, "DRONE_REPO_LINK", &facts.repo.html_url);
    set(env, "DRONE_REPO_BRANCH", &facts.repo.default_branch);
    set(env, "DRONE_REPO_PRIVATE", facts.repo.private.to_string());
    set(env, "DRONE_REPO_SCM", "git");
    set(env, "DRONE_GIT_HTTP_URL", &facts.repo.clone_url);
    set(env, "DRONE_REMOTE_URL", &facts.repo.clone_url);
}

/// Where the step stands: its stage, itself, and the workspace.
fn position_vars(env: &mut Vars, pipeline: &Pipeline, stage_number: i64, step: &Step, step_number: i64, workspace: &str) {
    set(env, "DRONE_STAGE_NAME", &pipeline.name);
    set(env, "DRONE_STAGE_NUMBER", stage_number.to_string());
    set(env, "DRONE_STEP_NAME", &step.name);
    set(env, "DRONE_STEP_NUMBER", step_number.to_string());
    set(env, "DRONE_WORKSPACE", workspace);
}

/// The older `CI_*` names Drone still sets, for scripts written against them.
fn ci_aliases(env: &mut Vars, facts: &BuildFacts, branch: &str, workspace: &str) {
    set(env, "CI_BUILD_NUMBER", facts.number.to_string());
    set(env, "CI_BUILD_EVENT", facts.commit.event.as_str());
    set(env, "CI_BUILD_LINK", &facts.build_link);
    set(env, "CI_COMMIT_SHA", &facts.commit.sha.0);
    set(env, "CI_COMMIT_REF", &facts.commit.git_ref);
    set(env, "CI_COMMIT_BRANCH", branch);
    set(env, "CI_COMMIT_MESSAGE", &facts.commit.message);
    set(env, "CI_REPO", facts.repo.slug());
    set(env, "CI_REPO_NAME", facts.repo.slug());
    set(env, "CI_REPO_LINK", &facts.repo.html_url);
    set(env, "CI_REMOTE_URL", &facts.repo.clone_url);
    set(env, "CI_WORKSPACE", workspace);
}

/// The pipeline's then the step's `environment`, overriding anything above;
/// fails on the first secret the step may not have.
fn declared_vars(env: &mut Vars, pipeline: &Pipeline, step: &Step, secrets: SecretSource<'_>) -> Result<(), EnvError> {
    for (key, value) in pipeline.environment.iter().chain(step.environment.iter()) {
        match value {
            EnvValue::Plain(v) => set(env, key, v),
            EnvValue::Secret(secret) => match secrets(secret) {
                Ok(value) => set(env, key, value),
                Err(reason) => return Err(EnvError { step: step.name.clone(), secret: secret.clone(), reason }),
            },
        }
    }
    Ok(())
}
