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
        self.commit_to(branch, files, message, &format!("refs/heads/{branch}"))
    }

    /// Commits files on the local `branch` and pushes them to `target`
    /// (any ref: `refs/pull/N/head` for a fork's pull request, which GitHub
    /// keeps outside the branches); returns the sha.
    pub fn commit_to(&self, branch: &str, files: &[(&str, &str)], message: &str, target: &str) -> String {
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
        git(&self.work, &["push", "--quiet", "--force", "origin", &format!("HEAD:{target}")]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Commits `count` times on `branch`, commit `i` writing the files
    /// `files(i)` gives; returns the shas, oldest first.
    pub fn commit_many(&self, branch: &str, count: usize, files: impl Fn(usize) -> Vec<(String, String)>) -> Vec<String> {
        (0..count)
            .map(|i| {
                let owned = files(i);
                let borrowed: Vec<(&str, &str)> = owned.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
                self.commit(branch, &borrowed, &format!("Change {}", i + 1))
            })
            .collect()
    }

    /// What GitHub's compare of `base...head` is made of, computed by git:
    /// the merge base, the commits after it (oldest first), the changed
    /// files as `(status, filename, previous_filename)`, and how far head
    /// is ahead and behind. `None` when a commit is unknown or the two have
    /// no common ancestor (GitHub answers 404 to both).
    pub fn compare(&self, base: &str, head: &str) -> Option<Comparison> {
        let run = |args: &[&str]| {
            let out = Command::new("git").current_dir(&self.bare).args(args).output().ok()?;
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let base_sha = run(&["rev-parse", "--verify", "-q", &format!("{base}^{{commit}}")])?;
        let head_sha = run(&["rev-parse", "--verify", "-q", &format!("{head}^{{commit}}")])?;
        let merge_base = run(&["merge-base", &base_sha, &head_sha])?;
        let commits: Vec<String> =
            run(&["rev-list", "--reverse", &format!("{merge_base}..{head_sha}")])?.lines().map(str::to_string).collect();
        let behind_by = run(&["rev-list", "--count", &format!("{head_sha}..{base_sha}")])?.parse().ok()?;
        let files = run(&["diff", "--name-status", "-M", &merge_base, &head_sha])?
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                let status = match fields.first()?.chars().next()? {
                    'A' => "added",
                    'D' => "removed",
                    'R' => "renamed",
                    'C' => "copied",
                    _ => "modified",
                };
                let (previous, name) = if fields.len() == 3 { (Some(fields[1].to_string()), fields[2]) } else { (None, fields[1]) };
                Some(ChangedFile { status, filename: name.to_string(), previous_filename: previous })
            })
            .collect();
        Some(Comparison { base_sha, merge_base, ahead_by: commits.len(), behind_by, commits, files })
    }

    /// A file's content at a commit, if it exists there.
    pub fn show(&self, sha: &str, path: &str) -> Option<Vec<u8>> {
        let out = Command::new("git").current_dir(&self.bare).args(["show", &format!("{sha}:{path}")]).output().ok()?;
        out.status.success().then_some(out.stdout)
    }

    /// The commit a branch points at, if it exists.
    pub fn branch_head(&self, branch: &str) -> Option<String> {
        let out = Command::new("git")
            .current_dir(&self.bare)
            .args(["rev-parse", "--verify", "-q", &format!("refs/heads/{branch}")])
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
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

/// A comparison of two commits, as git computes it.
pub struct Comparison {
    /// The base, resolved to a sha.
    pub base_sha: String,
    /// Their merge base: what three-dot compares count from.
    pub merge_base: String,
    /// The commits after the merge base up to head, oldest first.
    pub commits: Vec<String>,
    /// Every changed file, in git's order.
    pub files: Vec<ChangedFile>,
    /// Commits head has that base has not.
    pub ahead_by: usize,
    /// Commits base has that head has not.
    pub behind_by: usize,
}

/// One changed file of a comparison.
pub struct ChangedFile {
    /// GitHub's word: added, removed, modified, renamed, copied.
    pub status: &'static str,
    /// Its path now.
    pub filename: String,
    /// Its path before, for a rename or copy.
    pub previous_filename: Option<String>,
}
