//! The records greenlight keeps: repositories, builds, stages and steps,
//! shaped after Drone's so the Drone API can serve them as they are.

use crate::github::webhook::Event;
use crate::ids::{BuildId, CheckRunId, DeliveryId, InstallationId, RepoId, Sha, StageId};
use crate::pipeline::Pipeline;
use crate::queue::EntryId;
use serde::{Deserialize, Serialize};

/// Drone's status values, for builds, stages and steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Queued.
    Pending,
    /// Executing.
    Running,
    /// Passed.
    Success,
    /// A step failed.
    Failure,
    /// Cancelled.
    Killed,
    /// Configuration or infrastructure error.
    Error,
    /// Not run.
    Skipped,
    /// Awaiting approval.
    Blocked,
    /// Approval declined.
    Declined,
    /// A stage waiting for the stages it depends on.
    WaitingOnDependencies,
}

impl Status {
    /// Drone's `IsDone`: false only while waiting, pending, running or blocked.
    pub fn is_done(self) -> bool {
        !matches!(self, Status::Pending | Status::Running | Status::Blocked | Status::WaitingOnDependencies)
    }

    /// Drone's `IsFailed`.
    pub fn is_failed(self) -> bool {
        matches!(self, Status::Failure | Status::Killed | Status::Error)
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Killed => "killed",
            Status::Error => "error",
            Status::Skipped => "skipped",
            Status::Blocked => "blocked",
            Status::Declined => "declined",
            Status::WaitingOnDependencies => "waiting_on_dependencies",
        }
    }
}

/// A repository greenlight has seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repo {
    /// GitHub's repository id.
    pub id: RepoId,
    /// Owner login.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Whether it is private (readable only with a token).
    pub private: bool,
    /// HTTPS clone URL.
    pub clone_url: String,
    /// SSH clone URL.
    pub ssh_url: String,
    /// Web URL.
    pub link: String,
    /// Default branch.
    pub default_branch: String,
    /// Whether the App is installed on it.
    pub active: bool,
    /// Whether builds of pull requests from forks wait for approval (and
    /// then get secrets) instead of running without secrets.
    #[serde(default)]
    pub protected: bool,
    /// The installation that covers it.
    pub installation: InstallationId,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub updated: i64,
}

impl Repo {
    /// `owner/name`.
    pub fn slug(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A build: one delivery (or rerun) of one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    /// Global id.
    pub id: BuildId,
    /// Repository.
    pub repo_id: RepoId,
    /// `owner/name`.
    pub repo_slug: String,
    /// Per-repository number: 1, 2, 3…
    pub number: i64,
    /// The number of the build this one reruns, or 0.
    pub parent: i64,
    /// Status.
    pub status: Status,
    /// What went wrong outside the steps (configuration, GitHub).
    pub error: String,
    /// `@hook`, or who restarted it.
    pub trigger: String,
    /// push, pull_request or tag.
    pub event: Event,
    /// Drone's action.
    pub action: String,
    /// Compare, PR or commit link.
    pub link: String,
    /// PR title.
    pub title: String,
    /// Commit message.
    pub message: String,
    /// Previous sha.
    pub before: String,
    /// The commit built.
    pub after: Sha,
    /// Full git ref.
    pub git_ref: String,
    /// Fork slug for PRs.
    pub source_repo: String,
    /// Source branch.
    pub source: String,
    /// Target branch.
    pub target: String,
    /// PR number.
    pub pull_request: Option<u64>,
    /// Whether the code comes from a fork (untrusted).
    pub fork: bool,
    /// Author login.
    pub author_login: String,
    /// Author name.
    pub author_name: String,
    /// Author email.
    pub author_email: String,
    /// Author avatar.
    pub author_avatar: String,
    /// Who sent the event.
    pub sender: String,
    /// The installation to act as.
    pub installation: InstallationId,
    /// Clone URL of the base repository.
    pub clone_url: String,
    /// The delivery that started it.
    pub delivery: DeliveryId,
    /// The queue entry that started it (planning is idempotent per entry).
    pub entry: EntryId,
    /// Stages, in pipeline order.
    pub stages: Vec<StageId>,
    /// Unix seconds; 0 until it starts.
    pub started: i64,
    /// Unix seconds; 0 until it finishes.
    pub finished: i64,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub updated: i64,
    /// Bumped on every write.
    pub version: i64,
}

/// One step's record within a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Global id.
    pub id: i64,
    /// 1-based within the stage.
    pub number: i64,
    /// Name.
    pub name: String,
    /// Status.
    pub status: Status,
    /// What went wrong, if it did not run normally.
    pub error: String,
    /// `failure: ignore`.
    pub errignore: bool,
    /// Exit code.
    pub exit_code: i64,
    /// Unix seconds; 0 until it starts.
    pub started: i64,
    /// Unix seconds; 0 until it stops.
    pub stopped: i64,
    /// Bumped on every write.
    pub version: i64,
    /// Steps it waits for.
    pub depends_on: Vec<String>,
}

/// A stage: one pipeline of a build, run by one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// Global id.
    pub id: StageId,
    /// Repository.
    pub repo_id: RepoId,
    /// Build.
    pub build_id: BuildId,
    /// 1-based within the build.
    pub number: i64,
    /// Pipeline name.
    pub name: String,
    /// Status.
    pub status: Status,
    /// What went wrong outside the steps.
    pub error: String,
    /// Exit code of the failing step, or 0.
    pub exit_code: i64,
    /// Host of the worker that ran it.
    pub machine: String,
    /// Unix seconds; 0 until it starts.
    pub started: i64,
    /// Unix seconds; 0 until it stops.
    pub stopped: i64,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub updated: i64,
    /// Bumped on every write.
    pub version: i64,
    /// Pipelines it waits for.
    pub depends_on: Vec<String>,
    /// Steps.
    pub steps: Vec<StepRecord>,
    /// The pipeline as parsed at planning time.
    pub pipeline: Pipeline,
    /// The check run that shows it on GitHub.
    pub check_run: Option<CheckRunId>,
    /// Whether its job has been queued for a worker.
    pub enqueued: bool,
    /// Whether an administrator approved it (a blocked fork stage).
    #[serde(default)]
    pub approved: bool,
    /// Whether its final result reached GitHub.
    #[serde(default)]
    pub published: bool,
}

/// The job a worker claims: run one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageJob {
    /// The build.
    pub build: BuildId,
    /// The stage.
    pub stage: StageId,
}
