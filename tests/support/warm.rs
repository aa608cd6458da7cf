//! What caches and warm clones leave on a worker, read as a user would
//! check it: whether the worker's mirror holds a commit, which caches are
//! stored, and pull requests from forks whose commits live outside the
//! repository's branches.

use super::scenario::{Ctx, Sha};
use greenlight::store::Build;
use std::path::{Path, PathBuf};

/// A fork that opens pull requests in scenarios.
pub const FORK: &str = "stranger/widget";

impl Ctx {
    /// Commits `files` as the head of pull request `number` from [`FORK`]
    /// (at `refs/pull/N/head`, on no branch) and delivers it; returns the head.
    pub async fn open_fork_pr(&self, number: u64, files: &[(&str, &str)]) -> Sha {
        let sha = self.repo.push_fork_head(number, files);
        let answer = self.deliver_fork_pr(number, &format!("fork-{number}"), &sha, FORK).await;
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        Sha(sha)
    }

    /// The worker's mirror of `build`'s repository.
    pub fn mirror_dir(&self, build: &Build) -> PathBuf {
        self.app.data_dir.path().join("mirrors").join(format!("{}.git", build.repo.id.0))
    }

    /// Whether the worker's mirror of `build`'s repository holds commit `sha` (`git cat-file -e`).
    pub fn mirror_has(&self, build: &Build, sha: &str) -> bool {
        mirror_has(&self.mirror_dir(build), sha)
    }

    /// The caches stored on the worker's disk: `(REPO/SCOPE/KEY, bytes)`, sorted.
    pub fn stored_caches(&self) -> Vec<(String, u64)> {
        stored_under(&self.app.data_dir.path().join("blobs/caches"))
    }
}

/// Whether the bare repository at `dir` holds commit `sha`.
pub fn mirror_has(dir: &Path, sha: &str) -> bool {
    std::process::Command::new("git")
        .args(["-c", "safe.directory=*", "--git-dir"])
        .arg(dir)
        .args(["cat-file", "-e", &format!("{sha}^{{commit}}")])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("git runs")
        .success()
}

/// Every file under `root` as `(relative path, bytes)`, sorted.
pub fn stored_under(root: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                let key = entry.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((key, meta.len()));
            }
        }
    }
    out.sort();
    out
}
