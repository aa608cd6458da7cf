//! Narrow views of the GitHub client for the parts that need one thing of
//! it: the planner reads pipeline files, the runner gets clone credentials.
//! Neither can post a status or a check run; only `publish` does that.

use super::client::CommitInfo;
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

    /// The text of `path` at `sha`, or `None` when the commit has no such file.
    pub async fn read(&self, installation: InstallationId, repo: &RepoRef, path: &str, sha: &Sha) -> Result<Option<String>, GitHubError> {
        self.github.file_at(installation, &route(repo), path, &sha.0).await
    }

    /// The commit `reference` (a branch, tag or sha) names now, or `None`
    /// when there is none: what a build asked for by branch builds.
    pub async fn commit(&self, installation: InstallationId, repo: &RepoRef, reference: &str) -> Result<Option<CommitInfo>, GitHubError> {
        self.github.commit(installation, &route(repo), reference).await
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
        let permission = self.github.permission(installation, &route(repo), user).await?;
        Ok((matches!(permission.as_str(), "admin" | "maintain" | "write"), permission))
    }

    /// Reacts to a comment (`eyes`: taken; `-1`: refused).
    pub async fn react(&self, installation: InstallationId, repo: &RepoRef, comment: u64, content: &str) -> Result<(), GitHubError> {
        self.github.react(installation, &route(repo), comment, content).await
    }

    /// Replies on a pull request.
    pub async fn reply(&self, installation: InstallationId, repo: &RepoRef, number: u64, body: &str) -> Result<(), GitHubError> {
        self.github.comment(installation, &route(repo), number, body).await
    }
}

/// A repository's REST route.
fn route(repo: &RepoRef) -> RepoPath {
    RepoPath { owner: repo.owner.clone(), name: repo.name.clone() }
}
