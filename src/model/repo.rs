//! Repositories: what GitHub says of one ([`RepoRef`]), and what greenlight
//! keeps about it ([`Repo`]).

use crate::ids::{InstallationId, RepoId};
use serde::{Deserialize, Serialize};

/// A repository as a delivery describes it. Carried by the queued trigger
/// and kept in the build, so a build knows where to clone and publish even
/// if the repository is renamed later.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRef {
    /// GitHub's repository id: stable across renames, the key of everything stored.
    pub id: RepoId,
    /// Owner login: the first half of the slug in routes and build pages.
    pub owner: String,
    /// Repository name: the second half.
    pub name: String,
    /// Whether only the admin token may read its builds.
    pub private: bool,
    /// HTTPS clone URL: what workers fetch.
    pub clone_url: String,
    /// SSH clone URL, for Drone's `DRONE_GIT_SSH_URL`.
    pub ssh_url: String,
    /// Web URL.
    pub html_url: String,
    /// The default branch: where badges and `builds/latest` look by default.
    pub default_branch: String,
}

impl RepoRef {
    /// `owner/name`.
    pub fn slug(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// A repository greenlight has seen, with its own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repo {
    /// What GitHub said of it last.
    pub info: RepoRef,
    /// Whether the App is installed on it (removed repositories stay, inactive).
    pub active: bool,
    /// Whether builds of pull requests from forks wait for approval (and
    /// then get secrets) instead of running without secrets.
    #[serde(default)]
    pub protected: bool,
    /// The installation that covers it: the identity greenlight acts as.
    pub installation: InstallationId,
    /// When greenlight first saw it (Unix seconds, as Drone's API sends times).
    pub created: i64,
    /// Unix seconds of the last change.
    pub updated: i64,
}

impl Repo {
    /// `owner/name`.
    pub fn slug(&self) -> String {
        self.info.slug()
    }
}

/// A repository named in an installation event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstalledRepo {
    /// GitHub's id.
    pub id: i64,
    /// `owner/name`.
    pub full_name: String,
    /// Whether it is private.
    #[serde(default)]
    pub private: bool,
}

/// Repositories an installation gained or lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationChange {
    /// The installation whose repositories changed.
    pub installation: InstallationId,
    /// Repositories now covered.
    pub added: Vec<InstalledRepo>,
    /// Repositories no longer covered.
    pub removed: Vec<InstalledRepo>,
}
