//! Builds and Drone's status values.

use super::commit::Commit;
use super::repo::RepoRef;
use crate::ids::{BuildId, DeliveryId, EntryId, InstallationId, StageId};
use serde::{Deserialize, Serialize};

/// Drone's status values, for builds, stages and steps; the Drone API sends
/// them as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Queued, waiting for a worker.
    Pending,
    /// A worker is running it.
    Running,
    /// Every step passed (or failed with `failure: ignore`).
    Success,
    /// A step failed.
    Failure,
    /// Cancelled, or superseded by a newer push.
    Killed,
    /// Something outside the steps went wrong (configuration, secrets).
    Error,
    /// Not run: a `when`/`trigger` excluded it, a dependency failed, or the build was cancelled first.
    Skipped,
    /// A fork's stage waiting for an administrator's approval.
    Blocked,
    /// Approval declined (Drone's; greenlight never sets it).
    Declined,
    /// A stage waiting for the stages it depends on.
    WaitingOnDependencies,
}

impl Status {
    /// Drone's `IsDone`: false only while waiting, pending, running or blocked.
    pub fn is_done(self) -> bool {
        !matches!(self, Status::Pending | Status::Running | Status::Blocked | Status::WaitingOnDependencies)
    }

    /// Drone's `IsFailed`: what fails a build and skips dependents.
    pub fn is_failed(self) -> bool {
        matches!(self, Status::Failure | Status::Killed | Status::Error)
    }

    /// The lowercase name, as Drone spells it.
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

/// A build: one trigger (delivery, rerun or restart) of one commit, made of
/// one stage per matching pipeline. Only `lifecycle` changes its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    /// Global id, also the `external_id` of its check runs (how Re-run finds it).
    pub id: BuildId,
    /// The repository as the trigger described it.
    pub repo: RepoRef,
    /// Per-repository number: 1, 2, 3…, in build pages and status descriptions.
    pub number: i64,
    /// The number of the build this one reruns, or 0.
    pub parent: i64,
    /// Drone's status of the whole build.
    pub status: Status,
    /// What went wrong outside the steps (an invalid `.drone.yml`).
    pub error: String,
    /// `@hook`, or who restarted it.
    pub trigger: String,
    /// The commit built and the event that asked for it.
    pub commit: Commit,
    /// The installation to act as.
    pub installation: InstallationId,
    /// The delivery that started it: released when the build finishes, so a
    /// redelivery then starts a new build.
    pub delivery: DeliveryId,
    /// The queue entry that started it (planning is idempotent per entry).
    pub entry: EntryId,
    /// Stages, in pipeline order.
    pub stages: Vec<StageId>,
    /// Unix seconds; 0 until it starts.
    pub started: i64,
    /// Unix seconds; 0 until it finishes.
    pub finished: i64,
    /// When it was recorded (Unix seconds, as Drone's API sends times).
    pub created: i64,
    /// Unix seconds of the last write.
    pub updated: i64,
    /// Bumped on every write (Drone's optimistic-locking field).
    pub version: i64,
}

impl Build {
    /// `owner/name` of its repository.
    pub fn slug(&self) -> String {
        self.repo.slug()
    }
}
