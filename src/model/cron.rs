//! Cron jobs: a repository's scheduled builds of a branch.

use crate::ids::RepoId;
use serde::{Deserialize, Serialize};

/// A cron job as it is stored: what to build and when. Its schedule's
/// state (the next and previous tick) is kept beside it, where the
/// scheduler's compare-and-set reaches it alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronJob {
    /// Unique across repositories.
    pub id: i64,
    /// The repository it builds.
    pub repo_id: RepoId,
    /// Its name, unique in the repository (`DRONE_CRON`).
    pub name: String,
    /// A five-field cron expression or a descriptor (`@daily`), in UTC.
    pub expr: String,
    /// The branch it builds.
    pub branch: String,
    /// Drone's deployment target; kept and shown, not acted on.
    #[serde(default)]
    pub target: String,
    /// Whether its ticks are skipped.
    #[serde(default)]
    pub disabled: bool,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds of the last change.
    pub updated: i64,
    /// Bumped on each change.
    pub version: i64,
}

/// A cron job with its schedule's state, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledCron {
    /// The job.
    pub job: CronJob,
    /// The next tick (Unix seconds), 0 when disabled.
    pub next: i64,
    /// The last tick that fired (Unix seconds), 0 before the first.
    pub prev: i64,
}
