//! Which repositories build: the App installed on a repository makes it
//! active (`Repo::active`), and an administrator can switch one off and on
//! again (Drone's `DELETE` and `POST /api/repos/{o}/{n}`). The switch is a
//! set of its own, not a field of the repository record, so a delivery
//! refreshing the record never undoes it.

use super::{Repo, Store, StoreResult};
use crate::ids::{InstallationId, RepoId};
use crate::model::RepoRef;
use redis::AsyncCommands;
use std::collections::HashSet;

/// The ids of the repositories an administrator deactivated.
const DEACTIVATED: &str = "gl:repos:deactivated";

impl Store {
    /// Switches a repository's builds on (`true`) or off.
    pub async fn set_repo_enabled(&self, repo: RepoId, enabled: bool) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let _: () = if enabled { conn.srem(DEACTIVATED, repo.0).await? } else { conn.sadd(DEACTIVATED, repo.0).await? };
        Ok(())
    }

    /// Whether an administrator deactivated a repository.
    pub async fn is_repo_deactivated(&self, repo: RepoId) -> StoreResult<bool> {
        Ok(self.conn().await?.sismember(DEACTIVATED, repo.0).await?)
    }

    /// Every deactivated repository, read once for a list.
    pub async fn deactivated_repos(&self) -> StoreResult<HashSet<RepoId>> {
        let ids: Vec<i64> = self.conn().await?.smembers(DEACTIVATED).await?;
        Ok(ids.into_iter().map(RepoId).collect())
    }

    /// Records the repositories GitHub says the App's installations cover
    /// now, as a whole: each is recorded (or refreshed) active, and a
    /// recorded repository missing from the list turns inactive.
    pub async fn apply_installed_repos(&self, installed: &[(RepoRef, InstallationId)], now: i64) -> StoreResult<Vec<Repo>> {
        let mut seen = HashSet::with_capacity(installed.len());
        for (info, installation) in installed {
            self.upsert_repo(info, *installation, now).await?;
            seen.insert(info.id);
        }
        for mut repo in self.repos().await? {
            if repo.active && !seen.contains(&repo.info.id) {
                repo.active = false;
                repo.updated = now;
                self.save_repo(&repo).await?;
            }
        }
        self.repos().await
    }
}
