//! The fake's repositories are real git repositories on disk: a bare one that
//! is served (contents API, smart HTTP) and a work tree to commit from.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs git, panicking with its output on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=Octo Cat", "-c", "user.email=octocat@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run git ({e}): install it with `apt-get install git`"));
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One repository: bare copy plus work tree.
pub struct GitRepo {
    /// The bare repository that is served.
    pub bare: PathBuf,
    work: PathBuf,
}

impl GitRepo {
    /// Creates an empty repository under `root`.
    pub fn create(root: &Path, slug: &str) -> Self {
        let bare = root.join(format!("{slug}.git"));
        let work = root.join("work").join(slug);
        std::fs::create_dir_all(&bare).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        git(&bare, &["init", "--bare", "--quiet"]);
        git(&bare, &["config", "http.uploadpack", "true"]);
        git(&bare, &["config", "uploadpack.allowAnySHA1InWant", "true"]);
        git(&work, &["init", "--quiet"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Self { bare, work }
    }

    /// Commits files on `branch` (created from the current HEAD) and pushes; returns the sha.
    pub fn commit(&self, branch: &str, files: &[(&str, &str)], message: &str) -> String {
        let has_head =
            Command::new("git").current_dir(&self.work).args(["rev-parse", "--verify", "-q", "HEAD"]).output().unwrap().status.success();
        if has_head {
            git(&self.work, &["checkout", "--quiet", "-B", branch]);
        } else {
            git(&self.work, &["checkout", "--quiet", "--orphan", branch]);
        }
        for (path, content) in files {
            let full = self.work.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, content).unwrap();
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "--quiet", "--allow-empty", "-m", message]);
        git(&self.work, &["push", "--quiet", "--force", "origin", &format!("HEAD:refs/heads/{branch}")]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// A file's content at a commit, if it exists there.
    pub fn show(&self, sha: &str, path: &str) -> Option<Vec<u8>> {
        let out = Command::new("git").current_dir(&self.bare).args(["show", &format!("{sha}:{path}")]).output().ok()?;
        out.status.success().then_some(out.stdout)
    }

    /// The commit a branch, tag or sha names: its sha, message, author name and email.
    pub fn resolve(&self, reference: &str) -> Option<(String, String, String, String)> {
        // `--end-of-options` keeps a reference from being read as an option.
        let out = Command::new("git")
            .current_dir(&self.bare)
            .args(["log", "-1", "--format=%H%x00%B%x00%an%x00%ae", "--end-of-options", &format!("{reference}^{{commit}}"), "--"])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut fields = text.trim_end_matches('\n').splitn(4, '\0').map(str::to_string);
        Some((fields.next()?, fields.next()?.trim_end().to_string(), fields.next()?, fields.next()?))
    }

    /// Whether a commit exists.
    pub fn has_commit(&self, sha: &str) -> bool {
        sha.len() == 40
            && Command::new("git")
                .current_dir(&self.bare)
                .args(["cat-file", "-e", &format!("{sha}^{{commit}}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
    }
}
