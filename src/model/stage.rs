//! Stages (one pipeline of a build, run by one worker) and their steps.

use super::build::Status;
use crate::ids::{BuildId, CheckRunId, RepoId, StageId};
use crate::pipeline::Pipeline;
use serde::{Deserialize, Serialize};

/// Where a stage is in its life. One value instead of a status and flags,
/// so that impossible combinations (queued and done, approved and blocked)
/// cannot be written. Only `lifecycle` assigns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StageState {
    /// A fork's stage on a protected repository: waits for an administrator.
    Blocked,
    /// Waiting for the pipelines it depends on.
    Waiting {
        /// An administrator approved it (it gets secrets when it runs).
        approved: bool,
    },
    /// Ready to run.
    Pending {
        /// An administrator approved it.
        approved: bool,
        /// Its job is on the stage stream (planning resumes until it is).
        queued: bool,
    },
    /// A worker holds its lease and runs it.
    Running {
        /// An administrator approved it.
        approved: bool,
    },
    /// Over, with Drone's final status.
    Done {
        /// Success, failure, killed, error or skipped.
        status: Status,
        /// GitHub shows the result (else the next claim of its job publishes it).
        published: bool,
    },
}

impl StageState {
    /// Drone's status for this state.
    pub fn status(self) -> Status {
        match self {
            StageState::Blocked => Status::Blocked,
            StageState::Waiting { .. } => Status::WaitingOnDependencies,
            StageState::Pending { .. } => Status::Pending,
            StageState::Running { .. } => Status::Running,
            StageState::Done { status, .. } => status,
        }
    }

    /// Whether no worker has begun it yet: blocked, waiting or pending.
    pub fn is_waiting(self) -> bool {
        matches!(self, StageState::Blocked | StageState::Waiting { .. } | StageState::Pending { .. })
    }

    /// Whether an administrator approved it, so a fork's stage gets secrets.
    pub fn approved(self) -> bool {
        match self {
            StageState::Waiting { approved } | StageState::Pending { approved, .. } | StageState::Running { approved } => approved,
            StageState::Blocked | StageState::Done { .. } => false,
        }
    }
}

/// One step's record within a stage (the clone is step 1 unless disabled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Global id (Drone's step id).
    pub id: i64,
    /// 1-based within the stage; the log's address in the API.
    pub number: i64,
    /// The step's name in `.drone.yml` (`clone` for the clone).
    pub name: String,
    /// Drone's status.
    pub status: Status,
    /// What went wrong, if it did not run normally (a timeout, a refused secret).
    pub error: String,
    /// `failure: ignore`: a failure does not fail the stage.
    pub errignore: bool,
    /// Exit code of its script.
    pub exit_code: i64,
    /// Unix seconds; 0 until it starts.
    pub started: i64,
    /// Unix seconds; 0 until it stops.
    pub stopped: i64,
    /// Bumped on every write.
    pub version: i64,
    /// Steps it waits for.
    pub depends_on: Vec<String>,
    /// How many times it ran: more than 1 when `retry:` ran it again after
    /// a failure; 0 until it ends, and in records from before retries.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A stage: one pipeline of a build, run by one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// Global id: its key in the store and the Drone API's `stage.id`.
    pub id: StageId,
    /// Its repository, so a stage alone says whom to announce its changes to.
    pub repo_id: RepoId,
    /// Its build: what a stage's end settles and completes.
    pub build_id: BuildId,
    /// 1-based within the build; the API's and the approve route's address.
    pub number: i64,
    /// Pipeline name: its check run is `<name> (<event>)`.
    pub name: String,
    /// Where it is in its life; [`Stage::status`] is Drone's view of it.
    pub state: StageState,
    /// What went wrong outside the steps.
    pub error: String,
    /// Exit code of the failing step, or 0.
    pub exit_code: i64,
    /// Consumer name of the worker that ran it last.
    pub machine: String,
    /// Unix seconds; 0 until it starts.
    pub started: i64,
    /// Unix seconds; 0 until it stops.
    pub stopped: i64,
    /// When it was recorded (Unix seconds, as Drone's API sends times).
    pub created: i64,
    /// Unix seconds of the last write.
    pub updated: i64,
    /// Bumped on every write.
    pub version: i64,
    /// Pipelines it waits for.
    pub depends_on: Vec<String>,
    /// Its steps' records, the clone first (unless disabled).
    pub steps: Vec<StepRecord>,
    /// The pipeline as parsed at planning time (a later push cannot change a queued stage).
    pub pipeline: Pipeline,
    /// The check run that shows it on GitHub (set once, at planning).
    pub check_run: Option<CheckRunId>,
    /// Why its pipeline's trigger filtered it out (one line), for a stage
    /// recorded as skipped at planning; empty for every other stage.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filtered_out: String,
    /// How many times a worker began it (a takeover or a hand back begins it
    /// again): the token of the current run, so that a stalled worker's late
    /// writes are told from the current run's.
    #[serde(default)]
    pub attempt: u32,
}

impl Stage {
    /// Drone's status of the stage.
    pub fn status(&self) -> Status {
        self.state.status()
    }

    /// Whether its trigger filtered it out at planning.
    pub fn is_filtered_out(&self) -> bool {
        !self.filtered_out.is_empty()
    }
}

/// The job a worker claims: run one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageJob {
    /// The stage's build (read with the stage when the job is claimed).
    pub build: BuildId,
    /// The stage to run.
    pub stage: StageId,
}
