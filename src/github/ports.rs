//! Narrow views of the GitHub client for the parts that need one thing of
//! it: the planner reads pipeline files and changed files, the runner gets
//! clone credentials, the API lists the installations' repositories.
//! None can post a status or a check run; only `publish` does that.

use super::client::{CommitInfo, RepoFile};
use super::{GitHub, GitHubError, RepoPath};
use crate::ids::{InstallationId, Sha};
use crate::model::RepoRef;
use secrecy::SecretString;

/// Reads a repository's files at a commit (the planner's `.drone.yml`).
#[derive(Clone)]
pub struct RepoFiles {
    github: GitHub,
}

impl RepoFiles {
    /// Files read through `github`.
    pub fn new(github: GitHub) -> Self {
        Self { github }
    }

    /// `path` at `sha`, or `None` when the commit has no such file; over
    /// `max_bytes`, only its size.
    pub async fn read(
        &self,
        installation: InstallationId,
        repo: &RepoRef,
        path: &str,
        sha: &Sha,
        max_bytes: usize,
    ) -> Result<Option<RepoFile>, GitHubError> {
        self.github.file_at(installation, &RepoPath::from(repo), path, &sha.0, max_bytes).await
    }

    /// The files changed from `base` to `head` (for `paths` conditions), or
    /// `None` when GitHub cannot say them all.
    pub async fn changed(
        &self,
        installation: InstallationId,
        repo: &RepoRef,
        base: &str,
        head: &Sha,
    ) -> Result<Option<Vec<String>>, GitHubError> {
        self.github.changed_files(installation, &RepoPath::from(repo), base, &head.0).await
    }

    /// The commit `reference` (a branch, tag or sha) names now, or `None`
    /// when there is none: what a build asked for by branch builds.
    pub async fn commit(&self, installation: InstallationId, repo: &RepoRef, reference: &str) -> Result<Option<CommitInfo>, GitHubError> {
        self.github.commit(installation, &RepoPath::from(repo), reference).await
    }

    /// The repository as GitHub describes it now (its clone URL), or `None`
    /// when the installation cannot see it.
    pub async fn repository(&self, installation: InstallationId, repo: &RepoRef) -> Result<Option<RepoRef>, GitHubError> {
        self.github.repository(installation, &RepoPath::from(repo)).await
    }
}

/// Mints the short-lived installation token a worker clones with.
#[derive(Clone)]
pub struct CloneCredentials {
    github: GitHub,
}

impl CloneCredentials {
    /// Credentials minted through `github`.
    pub fn new(github: GitHub) -> Self {
        Self { github }
    }

    /// A token that can only read `repo`'s contents (cached, shared by every process).
    pub async fn token(&self, installation: InstallationId, repo: &RepoRef) -> Result<SecretString, GitHubError> {
        self.github.clone_token(installation, repo).await
    }
}

/// Lists what the App's installations cover now (the API's `flush=true`
/// and activating a repository greenlight has not heard of yet).
#[derive(Clone)]
pub struct Installations {
    github: GitHub,
}

impl Installations {
    /// Installations read through `github`.
    pub fn new(github: GitHub) -> Self {
        Self { github }
    }

    /// Every repository of every installation, with its installation.
    pub async fn repos(&self) -> Result<Vec<(RepoRef, InstallationId)>, GitHubError> {
        self.github.installed_repos().await
    }
}

/// Who may run a pull request comment's command, and answering it: the
/// commands' view of GitHub.
#[derive(Clone)]
pub struct Conversation {
    github: GitHub,
}

impl Conversation {
    /// Conversations through `github`.
    pub fn new(github: GitHub) -> Self {
        Self { github }
    }

    /// Whether `user` may write to `repo`, as GitHub says (admin, maintain
    /// or write), and the permission it named.
    pub async fn can_write(&self, installation: InstallationId, repo: &RepoRef, user: &str) -> Result<(bool, String), GitHubError> {
        let permission = self.github.permission(installation, &RepoPath::from(repo), user).await?;
        Ok((matches!(permission.as_str(), "admin" | "maintain" | "write"), permission))
    }

    /// Reacts to a comment (`eyes`: taken; `-1`: refused).
    pub async fn react(&self, installation: InstallationId, repo: &RepoRef, comment: u64, content: &str) -> Result<(), GitHubError> {
        self.github.react(installation, &RepoPath::from(repo), comment, content).await
    }

    /// Replies on a pull request.
    pub async fn reply(&self, installation: InstallationId, repo: &RepoRef, number: u64, body: &str) -> Result<(), GitHubError> {
        self.github.comment(installation, &RepoPath::from(repo), number, body).await
    }
}
