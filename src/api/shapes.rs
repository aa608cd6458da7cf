//! Drone 2.x's JSON shapes (harness/drone v2.25 `core/*.go`): every field
//! Drone always sends is present, the `omitempty` ones are omitted when
//! empty, integers are i64 and timestamps Unix seconds (0 for "not yet").
//! Repositories, builds and the user also carry Drone 0.8's fields
//! ([`super::shapes08`], flattened in after 2.x's, which stay as they were:
//! a build's `parent`, `error` and `title` are still omitted when empty,
//! which a 0.8 client reads as 0.8's zero values).
//!
//! Each field is the Drone JSON key of the same name, with Drone's meaning
//! (harness/drone `core/user.go`, `repo.go`, `build.go`, `stage.go`,
//! `step.go`); they are not documented one by one here.
#![allow(missing_docs)]

use super::shapes08::{Build08, Repo08, User08, procs};
use crate::store::{Build, Repo, Stage, StepRecord};
use serde::Serialize;

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Drone's User.
#[derive(Debug, Serialize)]
pub struct UserJson {
    pub id: i64,
    pub login: String,
    pub email: String,
    pub machine: bool,
    pub admin: bool,
    pub active: bool,
    pub avatar: String,
    pub syncing: bool,
    pub synced: i64,
    pub created: i64,
    pub updated: i64,
    pub last_login: i64,
    #[serde(flatten)]
    pub v08: User08,
}

impl UserJson {
    /// The administrator that `GREENLIGHT_API_TOKEN` authenticates.
    pub fn admin() -> Self {
        Self {
            id: 1,
            login: "admin".to_string(),
            email: String::new(),
            machine: true,
            admin: true,
            active: true,
            avatar: String::new(),
            syncing: false,
            synced: 0,
            created: 0,
            updated: 0,
            last_login: 0,
            v08: User08 { avatar_url: String::new() },
        }
    }
}

/// Drone's Repository.
#[derive(Debug, Serialize)]
pub struct RepoJson {
    pub id: i64,
    pub uid: String,
    pub user_id: i64,
    pub namespace: String,
    pub name: String,
    pub slug: String,
    pub scm: String,
    pub git_http_url: String,
    pub git_ssh_url: String,
    pub link: String,
    pub default_branch: String,
    pub private: bool,
    pub visibility: String,
    pub active: bool,
    pub config_path: String,
    pub trusted: bool,
    pub protected: bool,
    pub ignore_forks: bool,
    pub ignore_pull_requests: bool,
    pub auto_cancel_pull_requests: bool,
    pub auto_cancel_pushes: bool,
    pub auto_cancel_running: bool,
    pub timeout: i64,
    pub counter: i64,
    pub synced: i64,
    pub created: i64,
    pub updated: i64,
    pub version: i64,
    pub archived: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildJson>,
    #[serde(flatten)]
    pub v08: Repo08,
}

impl RepoJson {
    /// A repository as Drone shows it; `counter` is its last build number,
    /// `active` whether it builds (installed and not deactivated).
    pub fn new(repo: &Repo, counter: i64, active: bool) -> Self {
        Self {
            id: repo.info.id.0,
            uid: repo.info.id.0.to_string(),
            user_id: 1,
            namespace: repo.info.owner.clone(),
            name: repo.info.name.clone(),
            slug: repo.slug(),
            scm: "git".to_string(),
            git_http_url: repo.info.clone_url.clone(),
            git_ssh_url: repo.info.ssh_url.clone(),
            link: repo.info.html_url.clone(),
            default_branch: repo.info.default_branch.clone(),
            private: repo.info.private,
            visibility: if repo.info.private { "private" } else { "public" }.to_string(),
            active,
            config_path: crate::pipeline::CONFIG_PATH.to_string(),
            trusted: false,
            protected: repo.protected,
            ignore_forks: false,
            ignore_pull_requests: false,
            auto_cancel_pull_requests: false,
            auto_cancel_pushes: false,
            auto_cancel_running: false,
            timeout: 60,
            counter,
            synced: repo.updated,
            created: repo.created,
            updated: repo.updated,
            version: 1,
            archived: false,
            build: None,
            v08: Repo08::new(repo, counter),
        }
    }
}

/// Drone's Build.
#[derive(Debug, Serialize)]
pub struct BuildJson {
    pub id: i64,
    pub repo_id: i64,
    pub trigger: String,
    pub number: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub parent: i64,
    pub status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    pub event: &'static str,
    pub action: String,
    pub link: String,
    pub timestamp: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title: String,
    pub message: String,
    pub before: String,
    pub after: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub source_repo: String,
    pub source: String,
    pub target: String,
    pub author_login: String,
    pub author_name: String,
    pub author_email: String,
    pub author_avatar: String,
    pub sender: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub params: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cron: String,
    pub started: i64,
    pub finished: i64,
    pub created: i64,
    pub updated: i64,
    pub version: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageJson>,
    #[serde(flatten)]
    pub v08: Build08,
}

impl BuildJson {
    /// A build without its stages (lists).
    pub fn new(build: &Build) -> Self {
        Self {
            id: build.id.0,
            repo_id: build.repo.id.0,
            trigger: build.trigger.clone(),
            number: build.number,
            parent: build.parent,
            status: build.status.as_str(),
            error: build.error.clone(),
            event: build.commit.event.as_str(),
            action: build.commit.action.clone(),
            link: build.commit.link.clone(),
            timestamp: build.created,
            title: build.commit.title.clone(),
            message: build.commit.message.clone(),
            before: build.commit.before.clone(),
            after: build.commit.sha.0.clone(),
            git_ref: build.commit.git_ref.clone(),
            source_repo: build.commit.source_repo.clone(),
            source: build.commit.source.clone(),
            target: build.commit.target.clone(),
            author_login: build.commit.author.login.clone(),
            author_name: build.commit.author.name.clone(),
            author_email: build.commit.author.email.clone(),
            author_avatar: build.commit.author.avatar.clone(),
            sender: build.commit.sender.clone(),
            params: build.commit.params.clone(),
            cron: build.commit.cron.clone(),
            started: build.started,
            finished: build.finished,
            created: build.created,
            updated: build.updated,
            version: build.version,
            stages: Vec::new(),
            v08: Build08::new(build),
        }
    }

    /// A build with its stages and steps, and as 0.8 its procs (single-build answers).
    pub fn with_stages(build: &Build, stages: &[Stage]) -> Self {
        let mut json = Self { stages: stages.iter().map(StageJson::new).collect(), ..Self::new(build) };
        json.v08.procs = procs(build, stages);
        json
    }
}

/// Drone's Stage.
#[derive(Debug, Serialize)]
pub struct StageJson {
    pub id: i64,
    pub repo_id: i64,
    pub build_id: i64,
    pub number: i64,
    pub name: String,
    pub kind: &'static str,
    #[serde(rename = "type")]
    pub stage_type: &'static str,
    pub status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    pub errignore: bool,
    pub exit_code: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub machine: String,
    pub os: &'static str,
    pub arch: &'static str,
    pub started: i64,
    pub stopped: i64,
    pub created: i64,
    pub updated: i64,
    pub version: i64,
    pub on_success: bool,
    pub on_failure: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepJson>,
}

impl StageJson {
    /// A stage with its steps.
    pub fn new(stage: &Stage) -> Self {
        Self {
            id: stage.id.0,
            repo_id: stage.repo_id.0,
            build_id: stage.build_id.0,
            number: stage.number,
            name: stage.name.clone(),
            kind: "pipeline",
            stage_type: "exec",
            status: stage.status().as_str(),
            error: stage.error.clone(),
            errignore: false,
            exit_code: stage.exit_code,
            machine: stage.machine.clone(),
            os: "linux",
            arch: "amd64",
            started: stage.started,
            stopped: stage.stopped,
            created: stage.created,
            updated: stage.updated,
            version: stage.version,
            on_success: stage.pipeline.trigger.admits_status(false),
            on_failure: stage.pipeline.trigger.admits_status(true),
            depends_on: stage.depends_on.clone(),
            steps: stage.steps.iter().map(|s| StepJson::new(stage, s)).collect(),
        }
    }
}

/// Drone's Step; `step_id` holds the stage's id, as Drone's does.
#[derive(Debug, Serialize)]
pub struct StepJson {
    pub id: i64,
    pub step_id: i64,
    pub number: i64,
    pub name: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub errignore: bool,
    pub exit_code: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub started: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub stopped: i64,
    pub version: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

impl StepJson {
    /// A step of a stage.
    pub fn new(stage: &Stage, step: &StepRecord) -> Self {
        Self {
            id: step.id,
            step_id: stage.id.0,
            number: step.number,
            name: step.name.clone(),
            status: step.status.as_str(),
            error: step.error.clone(),
            errignore: step.errignore,
            exit_code: step.exit_code,
            started: step.started,
            stopped: step.stopped,
            version: step.version,
            depends_on: step.depends_on.clone(),
        }
    }
}
