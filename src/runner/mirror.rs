//! Warm clones: each worker keeps a bare mirror of every repository it
//! builds (`GREENLIGHT_DATA_DIR/mirrors/REPO_ID.git`), fetches only what is
//! new into it, and fills a stage's workspace from it.
//!
//! Why copies and not alternates: a workspace whose `.git/objects/info/alternates`
//! named the mirror would need the mirror bound into every step's sandbox,
//! and steps run as the very uid that owns the mirror; bound read-only it
//! would be safe, but a build that ran `git repack -a -d` (or a step that
//! moved the workspace elsewhere) would then depend on a path that is not
//! there. So the workspace gets its own copy of the commit's objects
//! (`git fetch --depth 1` from the mirror: local, no network), and the
//! mirror is bound (read-only) only into the clone's own sandbox. Steps
//! never see it, so a step cannot corrupt what other builds clone from.
//!
//! The mirror is written only by git running as the sandbox user inside
//! bwrap (as the clone always did), with the token in a configuration file
//! that exists only inside that sandbox. It is updated only from the base
//! repository (its branches, and the build's commit when it is the base
//! repository's): a fork pull request's commit is fetched into the
//! workspace alone, so a fork's objects never enter the mirror.
//!
//! Concurrent stages of one repository on one worker take the mirror's
//! lock (`REPO_ID.lock`, an `flock` held by greenlight) while one updates it
//! and fills its workspace from it (a local fetch, a fraction of a second).
//!
//! # Size
//! Mirrors count against `GREENLIGHT_CACHE_MB` with the caches (see
//! `runner::cache`): past the cap, the least recently used of both go
//! first. A mirror's last use is its lock file's modification time, set each
//! time a stage locks it; a mirror locked right now is never removed (the
//! eviction only tries its lock), so no clone loses the mirror it reads.

use crate::ids::RepoId;
use std::path::{Path, PathBuf};

/// A repository's mirror on this worker.
#[derive(Debug, Clone)]
pub struct Mirror {
    dir: PathBuf,
    lock: PathBuf,
}

/// The mirror's lock, released when dropped.
pub struct MirrorLock(#[allow(dead_code)] std::fs::File);

impl Mirror {
    /// Where the mirrors of a worker whose data directory is `data_dir` live.
    pub fn root(data_dir: &Path) -> PathBuf {
        data_dir.join("mirrors")
    }

    /// The mirror of `repo` under `root` (see [`Mirror::root`]); nothing is made yet.
    pub fn of(root: &Path, repo: RepoId) -> Self {
        Self { dir: root.join(format!("{}.git", repo.0)), lock: root.join(format!("{}.lock", repo.0)) }
    }

    /// The bare repository on the host.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the mirror has been made (by an earlier build).
    pub fn exists(&self) -> bool {
        self.dir.join("HEAD").is_file()
    }

    /// Takes the mirror's lock, waiting while another stage holds it;
    /// makes the mirrors' directory (searchable, not listable, by the
    /// sandbox user) and the mirror's (its own) when missing.
    pub async fn lock(&self, owner: Option<(u32, u32)>) -> std::io::Result<MirrorLock> {
        let (dir, lock) = (self.dir.clone(), self.lock.clone());
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
            let root = dir.parent().unwrap_or(Path::new("/"));
            std::fs::DirBuilder::new().recursive(true).mode(0o711).create(root)?;
            let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&lock)?;
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
            // Its last use, for the eviction's order.
            file.set_modified(std::time::SystemTime::now())?;
            if !dir.exists() {
                std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
                }
            }
            Ok(MirrorLock(file))
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// A mirror on this worker, its size and its last use, for the eviction.
#[derive(Debug)]
pub struct Kept {
    /// The mirror.
    pub mirror: Mirror,
    /// Its bytes on disk.
    pub size: u64,
    /// When a stage last locked it.
    pub used: std::time::SystemTime,
}

impl Mirror {
    /// Every mirror under `root` (see [`Mirror::root`]); a missing `root` has none.
    pub fn all(root: &Path) -> Vec<Kept> {
        let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
        let ids = entries.flatten().filter_map(|e| e.file_name().to_str()?.strip_suffix(".git")?.parse::<i64>().ok());
        ids.map(|id| {
            let mirror = Self::of(root, RepoId(id));
            let used = std::fs::metadata(&mirror.lock).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
            Kept { size: disk_usage(&mirror.dir), used, mirror }
        })
        .collect()
    }

    /// Removes the mirror unless a stage holds its lock now; returns
    /// whether it did. Its lock file stays (an empty file: removing it
    /// could let two stages lock two different files of one name).
    pub fn remove_if_idle(&self) -> std::io::Result<bool> {
        let file = match std::fs::OpenOptions::new().write(true).open(&self.lock) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(true),
        }
    }
}

/// The bytes under `dir`, however deep (files as allocated on disk, not
/// following links); a missing `dir` is 0.
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        total += meta.blocks() * 512;
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            pending.extend(entries.flatten().map(|e| e.path()));
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_mirror_is_made_once_and_its_lock_is_exclusive() {
        let root = tempfile::tempdir().unwrap();
        let mirror = Mirror::of(&Mirror::root(root.path()), RepoId(7));
        let held = mirror.lock(None).await.unwrap();
        assert!(mirror.dir().is_dir() && !mirror.exists(), "made, empty: git init comes next");
        let second = Mirror::of(&Mirror::root(root.path()), RepoId(7));
        let waiting = tokio::spawn(async move { second.lock(None).await.map(|_| ()) });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the second stage waits");
        drop(held);
        waiting.await.unwrap().unwrap();
        assert!(mirror.dir().ends_with("mirrors/7.git"));
    }

    #[tokio::test]
    async fn a_mirror_in_use_is_not_removed_and_an_idle_one_is() {
        let root = tempfile::tempdir().unwrap();
        let mirrors = Mirror::root(root.path());
        let (older, newer) = (Mirror::of(&mirrors, RepoId(1)), Mirror::of(&mirrors, RepoId(2)));
        drop(older.lock(None).await.unwrap());
        std::fs::write(older.dir().join("HEAD"), "ref: refs/heads/main\n").unwrap();
        let held = newer.lock(None).await.unwrap();
        let mut all = Mirror::all(&mirrors);
        all.sort_by_key(|kept| kept.used);
        let dirs: Vec<&Path> = all.iter().map(|kept| kept.mirror.dir()).collect();
        assert_eq!(dirs, [older.dir(), newer.dir()], "least recently used first");
        assert!(all[0].size > 0);

        assert!(!newer.remove_if_idle().unwrap(), "locked: kept");
        assert!(newer.dir().is_dir());
        drop(held);
        assert!(older.remove_if_idle().unwrap() && !older.dir().exists() && !older.exists());
        assert_eq!(Mirror::all(&mirrors).len(), 1);
    }
}
