//! A stage's workspace on the host: made fresh, handed to the sandbox user,
//! and removed afterwards whatever a step left in it.
//!
//! A step can leave a tree no recursive walk survives: 20,000 nested
//! directories overflow the stack of a recursive remove (it killed the
//! whole server once) or run it out of file descriptors, and a path that
//! deep is longer than any path syscall takes. So removal is `rm -rf` in a
//! child process (GNU rm walks arbitrarily deep trees with relative file
//! descriptors, and a crash there is not greenlight's), and every walk here
//! is iterative.

use crate::ids::StageId;
use crate::store::Store;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the sweep holds a stage's lease while it removes the stage's
/// old workspace: long enough for `rm -rf` of a large tree, short enough
/// that a sweep that died frees the stage soon.
const SWEEP_LEASE: Duration = Duration::from_secs(60);

/// The workspace directory of a stage under `workspaces`.
pub fn of_stage(workspaces: &Path, stage: StageId) -> PathBuf {
    workspaces.join(format!("stage-{stage}"))
}

/// Removes the workspaces a worker that died left under `workspaces`: those
/// of stages nobody runs now. Each is removed holding its stage's lease (as
/// `owner`), so a worker sharing the directory never loses a live one.
/// Returns how many were removed.
pub async fn sweep(workspaces: &Path, store: &Store, owner: &str) -> anyhow::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(workspaces)? {
        let path = entry?.path();
        let Some(stage) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("stage-")).and_then(|id| id.parse().ok())
        else {
            continue;
        };
        let stage = StageId(stage);
        if !store.acquire_lease(stage, owner, SWEEP_LEASE).await? {
            continue;
        }
        let result = remove(&path).await;
        store.release_lease(stage, owner).await?;
        result?;
        removed += 1;
    }
    if removed > 0 {
        tracing::info!(removed, "removed workspaces a stopped worker left behind");
    }
    Ok(removed)
}

/// Removes `dir` and everything in it, however deep; a missing `dir` is fine.
pub async fn remove(dir: &Path) -> std::io::Result<()> {
    if tokio::fs::symlink_metadata(dir).await.is_err() {
        return Ok(());
    }
    let out = tokio::process::Command::new("rm")
        .arg("-rf")
        .arg("--one-file-system")
        .arg("--")
        .arg(dir)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    if out.status.success() {
        Ok(())
    } else {
        let reason = String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or_default().to_string();
        Err(std::io::Error::other(format!("rm -rf {}: {reason}", dir.display())))
    }
}

/// An empty directory at `dir`, removing what an earlier run left there.
pub async fn fresh(dir: &Path) -> std::io::Result<()> {
    remove(dir).await?;
    tokio::fs::create_dir_all(dir).await
}

/// Gives `dir` and everything under it to `uid:gid` (symlinks themselves,
/// never their targets), walking iteratively: a deep tree needs no stack.
pub fn chown_tree(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deep_tree_is_removed_and_a_missing_one_is_fine() {
        let root = tempfile::tempdir().unwrap();
        let top = root.path().join("ws");
        std::fs::create_dir_all(&top).unwrap();
        // Deeper than any path a syscall takes (PATH_MAX): built with relative steps.
        let deep = std::process::Command::new("perl")
            .args(["-e", "for (1..3000) { mkdir 'd' or die; chdir 'd' or die } open(my $f, '>', 'leaf') or die"])
            .current_dir(&top)
            .status()
            .expect("perl runs (Debian: perl-base)");
        assert!(deep.success());
        assert!(top.join("d/d/d").exists());
        remove(&top).await.unwrap();
        assert!(!top.exists(), "removed");
        remove(&top).await.unwrap();
    }

    #[test]
    fn a_tree_is_given_away_without_following_links() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("a/b")).unwrap();
        std::fs::write(root.path().join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.path().join("a/link")).unwrap();
        // SAFETY: getuid and getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        chown_tree(root.path(), uid, gid).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(root.path().join("a/b/f")).unwrap().uid(), uid);
    }
}
