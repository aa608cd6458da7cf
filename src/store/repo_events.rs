//! A repository's own events (`repository`: made private or public,
//! renamed, transferred, deleted) change its record at once, so a
//! repository made private stops being served as public before its next
//! build delivery.

use super::{Repo, Store, StoreResult, slug_key};
use crate::model::RepoRef;
use redis::AsyncCommands;

impl Store {
    /// Replaces what greenlight knows of a repository with `info` (GitHub's
    /// view after the change); a deleted one turns inactive. The old
    /// `owner/name` stops naming it. A repository greenlight has no record
    /// of stays unknown (`None`): its first delivery records it.
    pub async fn refresh_repo(&self, info: &RepoRef, deleted: bool, now: i64) -> StoreResult<Option<Repo>> {
        let Some(mut repo) = self.repo(info.id).await? else { return Ok(None) };
        let old_slug = repo.slug();
        repo.info = RepoRef {
            clone_url: non_empty_or(&info.clone_url, &repo.info.clone_url),
            ssh_url: non_empty_or(&info.ssh_url, &repo.info.ssh_url),
            html_url: non_empty_or(&info.html_url, &repo.info.html_url),
            default_branch: non_empty_or(&info.default_branch, &repo.info.default_branch),
            ..info.clone()
        };
        repo.active &= !deleted;
        repo.updated = now;
        if !old_slug.eq_ignore_ascii_case(&repo.slug()) {
            let _: () = self.conn().await?.del(slug_key(&old_slug)).await?;
        }
        self.save_repo(&repo).await?;
        Ok(Some(repo))
    }
}

fn non_empty_or(new: &str, old: &str) -> String {
    if new.is_empty() { old } else { new }.to_string()
}
