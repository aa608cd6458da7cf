//! Artifacts: the files a step's `artifacts:` patterns match in the
//! workspace, uploaded after it (passed or failed) to the artifacts' blobs.
//!
//! Greenlight runs as root and the workspace is the step's: a symlink
//! `dist/x.tar.gz -> /etc/shadow` or a directory `dist -> /root` must not
//! make greenlight read the host's files. So matching walks the workspace
//! from a descriptor, one name at a time, never following a symlink
//! (`O_NOFOLLOW` on every directory and file opened, relative to the one
//! before); a symlink matched is refused and named in the step's log. A
//! file must be regular and readable by the sandbox user (so a hard link
//! to a file it may not read is refused too), and is read through the
//! descriptor that was checked, at most the size it had then.

use crate::blobs::Blobs;
use crate::store::{Artifact, artifact_key};
use rustix::fs::{Dir, FileType, Mode, OFlags};
use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::path::Path;
use tokio::io::AsyncReadExt;

/// The most files one step may upload: artifacts are what people
/// download from a build page, not a build tree (that is a cache's job).
pub const MAX_FILES_PER_STEP: usize = 100;

/// The most bytes one step may upload in all (1 GiB): a tenth of the
/// default workspace, so a step cannot fill the bucket or the worker's
/// disk with one build.
pub const MAX_BYTES_PER_STEP: u64 = 1024 * 1024 * 1024;

/// Directory entries looked at per pattern at most: a `**` over a huge tree
/// stops here rather than hold the stage.
const MAX_ENTRIES_WALKED: usize = 100_000;

/// A file matched and opened, ready to upload.
struct Found {
    name: String,
    file: std::fs::File,
    size: u64,
}

/// What matching found: files, and log lines for what was refused or empty.
#[derive(Default)]
struct Matched {
    found: Vec<Found>,
    notes: Vec<String>,
    names: BTreeSet<String>,
    walked: usize,
}

/// Where a step's artifacts go and whom they belong to.
pub struct Upload<'a> {
    /// The artifacts' blobs.
    pub blobs: &'a Blobs,
    /// The build they belong to.
    pub build: crate::ids::BuildId,
    /// The stage's number.
    pub stage: i64,
    /// The step's name and number.
    pub step: (&'a str, i64),
    /// The sandbox user, who must be able to read each file.
    pub user: Option<(u32, u32)>,
}

impl Upload<'_> {
    /// Uploads the files `patterns` match in `workspace`; returns the
    /// records of what was uploaded and the log lines saying what was
    /// uploaded, refused, or matched nothing.
    pub async fn run(&self, workspace: &Path, patterns: &[String]) -> (Vec<Artifact>, Vec<String>) {
        let (workspace, patterns, user) = (workspace.to_path_buf(), patterns.to_vec(), self.user);
        let matched = match tokio::task::spawn_blocking(move || find(&workspace, &patterns, user)).await {
            Ok(Ok(matched)) => matched,
            Ok(Err(e)) => return (Vec::new(), vec![format!("[greenlight] artifacts: cannot open the workspace: {e}\n")]),
            Err(e) => return (Vec::new(), vec![format!("[greenlight] artifacts: {e}\n")]),
        };
        let mut notes = matched.notes;
        let (mut uploaded, mut total) = (Vec::new(), 0u64);
        for found in matched.found {
            if uploaded.len() >= MAX_FILES_PER_STEP {
                notes.push(format!("[greenlight] artifact {} refused: a step uploads at most {MAX_FILES_PER_STEP} files\n", found.name));
                continue;
            }
            if total + found.size > MAX_BYTES_PER_STEP {
                let cap = super::limits::human_bytes(MAX_BYTES_PER_STEP);
                notes.push(format!("[greenlight] artifact {} refused: a step uploads at most {cap} in all\n", found.name));
                continue;
            }
            let key = artifact_key(self.build, self.stage, self.step.1, &found.name);
            let reader = tokio::fs::File::from_std(found.file).take(found.size);
            match self.blobs.put_reader(&key, reader, &found.name).await {
                Ok(size) => {
                    total += size;
                    notes.push(format!("[greenlight] artifact {} ({})\n", found.name, super::limits::human_bytes(size)));
                    uploaded.push(Artifact {
                        name: found.name,
                        size,
                        stage: self.stage,
                        step: self.step.0.to_string(),
                        step_number: self.step.1,
                        key,
                        disk: self.blobs.disk(),
                    });
                }
                Err(e) => notes.push(format!("[greenlight] artifact {} could not be uploaded: {e:#}\n", found.name)),
            }
        }
        (uploaded, notes)
    }
}

/// Matches every pattern in the workspace at `workspace`.
fn find(workspace: &Path, patterns: &[String], user: Option<(u32, u32)>) -> std::io::Result<Matched> {
    let root = rustix::fs::open(workspace, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    let mut matched = Matched::default();
    for pattern in patterns {
        let before = (matched.found.len(), matched.notes.len());
        matched.walked = 0;
        let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        walk(&root, "", &parts, user, &mut matched);
        if (matched.found.len(), matched.notes.len()) == before {
            matched.notes.push(format!("[greenlight] artifacts: no file matches `{pattern}`\n"));
        }
    }
    Ok(matched)
}

/// Matches `parts` below the directory `dir` (at `rel` in the workspace).
fn walk(dir: &OwnedFd, rel: &str, parts: &[&str], user: Option<(u32, u32)>, out: &mut Matched) {
    let Some((part, rest)) = parts.split_first() else { return };
    let join = |name: &str| if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") };
    if *part == "**" {
        walk(dir, rel, rest, user, out);
        for name in entries(dir, out) {
            if let Ok(sub) = open_dir(dir, &name) {
                walk(&sub, &join(&name), parts, user, out);
            }
        }
        return;
    }
    let names = if glob::Pattern::escape(part) == *part {
        vec![part.to_string()]
    } else {
        let Ok(pattern) = glob::Pattern::new(part) else { return };
        let options = glob::MatchOptions { require_literal_leading_dot: true, ..glob::MatchOptions::new() };
        entries(dir, out).into_iter().filter(|n| pattern.matches_with(n, options)).collect()
    };
    for name in names {
        let path = join(&name);
        if rest.is_empty() {
            take_file(dir, &name, path, user, out);
        } else {
            match open_dir(dir, &name) {
                Ok(sub) => walk(&sub, &path, rest, user, out),
                Err(rustix::io::Errno::LOOP) | Err(rustix::io::Errno::NOTDIR) if is_symlink(dir, &name) => {
                    out.notes.push(format!("[greenlight] artifacts: {path} refused: a symbolic link is not followed\n"));
                }
                Err(_) => {}
            }
        }
    }
}

/// The names in `dir` (not `.` and `..`), counted against [`MAX_ENTRIES_WALKED`].
fn entries(dir: &OwnedFd, out: &mut Matched) -> Vec<String> {
    let Ok(mut listing) = Dir::read_from(dir) else { return Vec::new() };
    let mut names = Vec::new();
    for entry in listing.by_ref().flatten() {
        out.walked += 1;
        if out.walked > MAX_ENTRIES_WALKED {
            break;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    names.sort();
    names
}

fn open_dir(dir: &OwnedFd, name: &str) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
}

fn is_symlink(dir: &OwnedFd, name: &str) -> bool {
    rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| FileType::from_raw_mode(st.st_mode).is_symlink())
}

/// Opens `name` in `dir` as an artifact, or notes why not.
fn take_file(dir: &OwnedFd, name: &str, path: String, user: Option<(u32, u32)>, out: &mut Matched) {
    if out.names.contains(&path) {
        return;
    }
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let refused = |why: &str| format!("[greenlight] artifact {path} refused: {why}\n");
    let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) => return out.notes.push(refused("a symbolic link is not followed")),
        Err(rustix::io::Errno::NOENT) => return,
        Err(e) => return out.notes.push(refused(&e.to_string())),
    };
    let Ok(stat) = rustix::fs::fstat(&fd) else { return };
    if !FileType::from_raw_mode(stat.st_mode).is_file() {
        return out.notes.push(refused("not a regular file"));
    }
    if !readable_by(&stat, user) {
        return out.notes.push(refused("the step's user may not read it"));
    }
    out.names.insert(path.clone());
    out.found.push(Found { name: path, file: std::fs::File::from(fd), size: stat.st_size as u64 });
}

/// Whether `user` (none: greenlight's own user) may read a file so described.
fn readable_by(stat: &rustix::fs::Stat, user: Option<(u32, u32)>) -> bool {
    let Some((uid, gid)) = user else { return true };
    let mode = stat.st_mode;
    if stat.st_uid == uid {
        mode & 0o400 != 0
    } else if stat.st_gid == gid {
        mode & 0o040 != 0
    } else {
        mode & 0o004 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path, patterns: &[&str]) -> (Vec<String>, Vec<String>) {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        let matched = find(dir, &patterns, None).unwrap();
        (matched.found.into_iter().map(|f| f.name).collect(), matched.notes)
    }

    #[test]
    fn patterns_match_files_and_never_follow_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path();
        std::fs::create_dir_all(ws.join("dist/deep/er")).unwrap();
        std::fs::write(ws.join("dist/a.tar.gz"), "a").unwrap();
        std::fs::write(ws.join("dist/deep/er/b.tar.gz"), "b").unwrap();
        std::fs::write(ws.join("report.html"), "r").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", ws.join("dist/x.tar.gz")).unwrap();
        std::os::unix::fs::symlink("/etc", ws.join("etc")).unwrap();

        let (found, notes) = names(ws, &["dist/*.tar.gz", "report.html", "etc/passwd", "dist/**/*.tar.gz", "none/*"]);

        assert_eq!(found, ["dist/a.tar.gz", "report.html", "dist/deep/er/b.tar.gz"]);
        assert!(notes.iter().any(|n| n.contains("dist/x.tar.gz refused: a symbolic link")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("etc refused: a symbolic link")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("no file matches `none/*`")), "{notes:?}");
    }
}
