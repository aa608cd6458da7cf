//! What asks for a build: the compact record queued by intake (or by a
//! Re-run button, or the API's restart) instead of the whole payload.

use super::commit::{Commit, Event};
use super::repo::RepoRef;
use crate::ids::{DeliveryId, InstallationId, RepoId, Sha};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A request for a build: the few fields planning and running need (about
/// 1.5 KB, where a payload can be 25 MB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// The delivery GUID (kept on redelivery): one build at a time per delivery.
    pub delivery: DeliveryId,
    /// The installation to act as.
    pub installation: InstallationId,
    /// The base repository (statuses and check runs go here).
    pub repo: RepoRef,
    /// The commit and event.
    pub commit: Commit,
    /// The number of the build this one reruns (0 for a webhook).
    #[serde(default)]
    pub parent: i64,
    /// Who asked for it: empty for a webhook (`@hook`), else a login.
    #[serde(default)]
    pub requested_by: String,
    /// Only these pipelines (a rerun of some); empty means every matching one.
    #[serde(default)]
    pub only_pipelines: Vec<String>,
}

/// Which build a Re-run button means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RerunTarget {
    /// One check run's pipeline (`check_run` rerequested or its action button):
    /// the build id we gave as `external_id`, and the check run's name.
    CheckRun {
        /// Our build id, as GitHub echoes it (unchecked text).
        build: String,
        /// `<pipeline> (<event>)`.
        name: String,
    },
    /// Every pipeline of the newest build of a commit (`check_suite` rerequested).
    Suite {
        /// The commit whose newest build is rerun.
        sha: Sha,
    },
}

/// A Re-run button press.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RerunRequest {
    /// The repository the button was pressed in (a build of another repository is never rerun).
    pub repo: RepoId,
    /// What to rerun.
    pub target: RerunTarget,
    /// Who pressed it (the rerun's `trigger`).
    pub sender: String,
}

/// A build asked for by name rather than by a webhook: the API's build
/// create (`custom`) or a cron job (`cron`). Its commit is looked up on
/// GitHub when the build starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRequest {
    /// `custom` or `cron`.
    pub event: Event,
    /// The branch to build (what `branch` conditions match).
    pub branch: String,
    /// A sha on the branch to build instead of its head.
    pub commit: Option<Sha>,
    /// Parameters given to the steps as environment variables.
    pub params: BTreeMap<String, String>,
    /// The cron job's name for a `cron` build, else empty.
    pub cron: String,
    /// The build's `trigger`: the login that asked, or `@cron`.
    pub by: String,
}
