//! Small records kept beside builds, so that their Redis keys live here
//! too: sealed repository secrets (encrypted by `secrets`, which never
//! stores the key beside them) and the installation-token cache.

use super::{Store, StoreResult};
use crate::ids::{InstallationId, RepoId};
use redis::AsyncCommands;
use std::collections::HashMap;
use std::time::Duration;

fn secrets_key(repo: RepoId) -> String {
    format!("gl:repo:{repo}:secrets")
}

/// A cached token's key: the installation, and the narrower scope it was
/// minted for (empty: every repository and permission of the installation).
fn token_key(installation: InstallationId, scope: &str) -> String {
    if scope.is_empty() { format!("gl:token:{installation}") } else { format!("gl:token:{installation}:{scope}") }
}

impl Store {
    /// Stores a repository secret's sealed record (JSON) under its name.
    pub async fn put_sealed_secret(&self, repo: RepoId, name: &str, sealed: &str) -> StoreResult<()> {
        let _: () = self.conn().await?.hset(secrets_key(repo), name, sealed).await?;
        Ok(())
    }

    /// A repository secret's sealed record.
    pub async fn sealed_secret(&self, repo: RepoId, name: &str) -> StoreResult<Option<String>> {
        Ok(self.conn().await?.hget(secrets_key(repo), name).await?)
    }

    /// Every sealed secret of a repository, by name.
    pub async fn sealed_secrets(&self, repo: RepoId) -> StoreResult<HashMap<String, String>> {
        Ok(self.conn().await?.hgetall(secrets_key(repo)).await?)
    }

    /// Deletes a repository secret; false when there was none.
    pub async fn remove_secret(&self, repo: RepoId, name: &str) -> StoreResult<bool> {
        let removed: i64 = self.conn().await?.hdel(secrets_key(repo), name).await?;
        Ok(removed == 1)
    }

    /// An installation token of `scope` cached by any process, while it is fresh.
    pub async fn cached_token(&self, installation: InstallationId, scope: &str) -> StoreResult<Option<String>> {
        Ok(self.conn().await?.get(token_key(installation, scope)).await?)
    }

    /// Caches an installation token of `scope` for `ttl` (Redis forgets it then).
    pub async fn cache_token(&self, installation: InstallationId, scope: &str, token: &str, ttl: Duration) -> StoreResult<()> {
        let _: () = self.conn().await?.pset_ex(token_key(installation, scope), token, ttl.as_millis() as u64).await?;
        Ok(())
    }

    /// Forgets a cached installation token (GitHub refused it).
    pub async fn forget_token(&self, installation: InstallationId, scope: &str) -> StoreResult<()> {
        let _: () = self.conn().await?.del(token_key(installation, scope)).await?;
        Ok(())
    }
}
