//! A stage's workspace on the host: made fresh, capped in size, handed to
//! the sandbox user, and removed afterwards whatever a step left in it.
//!
//! A stage's directory `stage-N` holds two: the checkout (`src`, the
//! steps' `DRONE_WORKSPACE`) and the steps' HOME (`home`), which outlives
//! each step as Drone's exec runner's does, so `~/.cargo` filled by one
//! step is there for the next and a cache can save it. Both are under the
//! one cap, and neither is in the other (a HOME inside the checkout would
//! show in `git status` and in artifact globs).
//!
//! A step can leave a tree no recursive walk survives: 20,000 nested
//! directories overflow the stack of a recursive remove (it killed the
//! whole server once) or run it out of file descriptors, and a path that
//! deep is longer than any path syscall takes. So removal is `rm -rf` in a
//! child process (GNU rm walks arbitrarily deep trees with relative file
//! descriptors, and a crash there is not greenlight's), and every walk here
//! is iterative.
//!
//! # The size cap (`GREENLIGHT_WORKSPACE_MB`)
//!
//! A capped workspace is its own ext4 filesystem: a sparse image file
//! `stage-N.img` beside the workspace, loop-mounted at `stage-N`. A write
//! past the cap fails in the step with `ENOSPC` ("No space left on device"),
//! the kernel's answer rather than a watcher's; the image only takes host
//! disk as it is written, never more than its size. Removal is an unmount
//! and the deletion of one file, however many files the step made.
//!
//! Why this and not the alternatives:
//! - Project quotas (one ext4/xfs project per workspace) need the data
//!   directory's filesystem mounted with `prjquota`: not tmpfs, not overlay,
//!   not most existing hosts. A loop image works on any filesystem that holds
//!   a sparse file (ext4, xfs, btrfs, tmpfs, overlay).
//! - A watcher that kills a step past the cap is late by design: the disk is
//!   already full when it looks.
//!
//! The image is made for speed, since it is on every stage's path: no
//! journal (a crash discards the workspace anyway), no blocks reserved for
//! growing it (`^resize_inode`: a fresh 10 GiB image then holds 230 KB, not
//! 4.3 MB), no discard pass over the fresh image, inode tables left
//! unzeroed (`lazy_itable_init` and the mount option `noinit_itable`; a
//! sparse file reads back as zeroes), no blocks reserved for root.
//! `mkfs.ext4` and `mount -o loop` then cost about 7 ms per stage before
//! the clone (18 ms on two busy cores), and removal as much after the result.
//! It needs root (mounting) and loop devices; [`probe`] tries the whole
//! cycle once at startup so that a host without them is named then.
//!
//! Mounts live in greenlight's mount namespace, so they outlive a killed
//! worker: [`sweep`] unmounts and deletes what a stopped worker left.

use crate::ids::StageId;
use crate::store::Store;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

/// How long the sweep holds a stage's lease while it removes the stage's
/// old workspace: long enough for `rm -rf` of a large tree, short enough
/// that a sweep that died frees the stage soon.
const SWEEP_LEASE: Duration = Duration::from_secs(60);

/// The smallest cap, in MiB: below it ext4's own metadata (superblocks,
/// inode tables) leaves too little room to clone a repository into.
pub const MIN_CAP_MB: u64 = 16;

/// What an image's name adds to its workspace's.
const IMAGE_SUFFIX: &str = ".img";

/// The name of the trial workspace [`probe`] makes (followed by its pid).
const PROBE_PREFIX: &str = "probe-";

/// Where `mkfs.ext4`, `mount` and `rm` are looked up: the children get an
/// empty environment, and `mkfs.ext4` is in `sbin`, which a service's PATH
/// may lack.
const TOOL_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Mounts stacked on one workspace that [`unmount`] takes off before it
/// gives up: a workspace is mounted once, so more means something else is
/// mounting there, and greenlight stops rather than loop.
const MAX_STACKED_MOUNTS: usize = 4;

/// The directory of a stage under `workspaces`: the mount point of its
/// capped filesystem, holding the checkout ([`CHECKOUT_DIR`]) and the
/// steps' HOME ([`HOME_DIR`]), so both count against the one cap and go
/// with the one removal.
pub fn of_stage(workspaces: &Path, stage: StageId) -> PathBuf {
    workspaces.join(format!("stage-{stage}"))
}

/// The checkout of a stage under `workspaces` (`DRONE_WORKSPACE`).
pub fn checkout_of(workspaces: &Path, stage: StageId) -> PathBuf {
    of_stage(workspaces, stage).join(CHECKOUT_DIR)
}

/// The checkout's directory in a stage's directory: `src`, as Drone's exec
/// runner lays out `drone/src`.
pub const CHECKOUT_DIR: &str = "src";

/// The directory in a stage's directory that is every step's HOME: it
/// outlives each step (a tool's `~/.cargo` written by one step is there for
/// the next, and a cache may save it), as Drone's exec runner keeps
/// `home/drone` for a pipeline.
pub const HOME_DIR: &str = "home";

/// The filesystem image of a capped workspace at `dir`: `dir` + `.img`.
pub fn image_of(dir: &Path) -> PathBuf {
    let mut name = OsString::from(dir.as_os_str());
    name.push(IMAGE_SUFFIX);
    PathBuf::from(name)
}

/// Why workspaces cannot be capped on this host.
#[derive(Debug, thiserror::Error)]
pub enum CapError {
    /// Mounting an image needs root.
    #[error(
        "GREENLIGHT_WORKSPACE_MB: capping workspaces mounts a filesystem image per workspace, which needs root; \
         run greenlight as root, or set GREENLIGHT_WORKSPACE_MB=0 to run without a cap (a step can then fill the disk)"
    )]
    NotRoot,
    /// The trial workspace could not be made or removed.
    #[error(
        "GREENLIGHT_WORKSPACE_MB: cannot make a capped workspace under {workspaces}: {reason}; \
         it needs a filesystem there that holds a sparse file of the cap's size, mkfs.ext4 (Debian: e2fsprogs), \
         mount (util-linux) and loop devices (/dev/loop-control; in a container, run it privileged), \
         or set GREENLIGHT_WORKSPACE_MB=0 to run without a cap"
    )]
    Unavailable {
        /// The workspaces directory.
        workspaces: String,
        /// What failed.
        reason: String,
    },
}

/// A stage's directory (its checkout and its steps' HOME), capped at `cap`
/// bytes when set.
#[derive(Debug, Clone)]
pub struct Workspace {
    dir: PathBuf,
    cap: Option<u64>,
}

impl Workspace {
    /// The workspace of `stage` under `workspaces`, capped at `cap` bytes
    /// (`None`: uncapped). Nothing is made until [`Workspace::create`].
    pub fn of_stage(workspaces: &Path, stage: StageId, cap: Option<u64>) -> Self {
        Self { dir: of_stage(workspaces, stage), cap }
    }

    /// The stage's directory on the host: the mount point of a capped one.
    pub fn root(&self) -> &Path {
        &self.dir
    }

    /// The checkout on the host (what steps see as `DRONE_WORKSPACE`).
    pub fn path(&self) -> PathBuf {
        self.dir.join(CHECKOUT_DIR)
    }

    /// The steps' HOME on the host.
    pub fn home(&self) -> PathBuf {
        self.dir.join(HOME_DIR)
    }

    /// What the check run should say about the workspace: a warning when it
    /// has no cap.
    pub fn note(&self) -> Option<String> {
        self.cap.is_none().then(|| {
            "> **Warning:** the workspace had no size cap (`GREENLIGHT_WORKSPACE_MB=0`): a step could fill the worker's disk.".to_string()
        })
    }

    /// Makes the stage's directory afresh, removing what an earlier run
    /// left there: a plain directory, or a fresh filesystem of the cap's
    /// size mounted there, with an empty checkout and HOME in it. On
    /// failure nothing is left behind.
    pub async fn create(&self) -> std::io::Result<()> {
        discard(&self.dir).await?;
        let made = async {
            match self.cap {
                Some(bytes) => mount_image(&self.dir, bytes).await?,
                None => tokio::fs::create_dir_all(&self.dir).await?,
            }
            tokio::fs::create_dir(self.path()).await?;
            tokio::fs::create_dir(self.home()).await
        }
        .await;
        if made.is_err() {
            let _ = discard(&self.dir).await;
        }
        made
    }

    /// Removes the workspace and everything in it (its image too); a
    /// missing one is fine.
    pub async fn remove(&self) -> std::io::Result<()> {
        discard(&self.dir).await
    }
}

/// Makes a sparse image of `bytes` beside `dir`, an ext4 filesystem in it,
/// and mounts it at `dir` (empty: without `lost+found`).
async fn mount_image(dir: &Path, bytes: u64) -> std::io::Result<()> {
    let image = image_of(dir);
    {
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&image).await?;
        let sized = file.set_len(bytes).await;
        sized.map_err(|e| std::io::Error::new(e.kind(), format!("cannot make {} of {bytes} bytes: {e}", image.display())))?;
    }
    let mut mkfs: Vec<OsString> =
        ["-q", "-F", "-m", "0", "-O", "^has_journal,^resize_inode", "-E", "nodiscard,lazy_itable_init=1"].map(OsString::from).into();
    mkfs.push(image.clone().into());
    tool("mkfs.ext4", &mkfs).await?;
    tokio::fs::create_dir_all(dir).await?;
    let options = "loop,nosuid,nodev,noatime,noinit_itable";
    tool("mount", &["-t".into(), "ext4".into(), "-o".into(), options.into(), image.into(), dir.into()]).await?;
    tokio::fs::remove_dir(dir.join("lost+found")).await
}

/// Runs `program` with `args` and an empty environment; an error carries
/// the first line it printed on stderr.
async fn tool(program: &str, args: &[OsString]) -> std::io::Result<()> {
    let out = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", TOOL_PATH)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot run {program}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        let reason = String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or_default().to_string();
        Err(std::io::Error::other(format!("{program} failed ({}): {reason}", out.status)))
    }
}

/// Removes the workspace at `dir` whatever it is: unmounts what is mounted
/// there, removes the directory (however deep) and its image. Missing
/// pieces are fine.
async fn discard(dir: &Path) -> std::io::Result<()> {
    let target = dir.to_path_buf();
    tokio::task::spawn_blocking(move || unmount(&target)).await.map_err(std::io::Error::other)??;
    // Unmounted, `dir` is a directory on the workspaces' filesystem again,
    // which `--one-file-system` keeps `rm` on; an emptied mount point needs no `rm`.
    match tokio::fs::remove_dir(dir).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => remove(dir).await?,
        _ => {}
    }
    match tokio::fs::remove_file(image_of(dir)).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether a filesystem is mounted at `dir` (it is on another device than
/// its parent).
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = dir.parent().unwrap_or(dir);
    match (std::fs::symlink_metadata(dir), std::fs::metadata(parent)) {
        (Ok(own), Ok(up)) => own.is_dir() && own.dev() != up.dev(),
        _ => false,
    }
}

/// Unmounts whatever is mounted at `dir`. A filesystem still busy (a
/// process holds a file in it) is detached now and freed when released,
/// so the workspace's path is usable at once. The loop device `mount -o
/// loop` set up is released with the filesystem (autoclear).
fn unmount(dir: &Path) -> std::io::Result<()> {
    use rustix::mount::UnmountFlags;
    for _ in 0..MAX_STACKED_MOUNTS {
        if !is_mount_point(dir) {
            return Ok(());
        }
        match rustix::mount::unmount(dir, UnmountFlags::empty()) {
            Err(rustix::io::Errno::BUSY) => {
                tracing::warn!(workspace = %dir.display(), "a workspace's filesystem is busy; detaching it");
                rustix::mount::unmount(dir, UnmountFlags::DETACH)?;
            }
            other => other?,
        }
    }
    Err(std::io::Error::other(format!("{} is still mounted after {MAX_STACKED_MOUNTS} unmounts", dir.display())))
}

/// Checks at startup that workspaces can be capped at `cap` bytes here, by
/// making and removing one: root, `mkfs.ext4`, loop devices, and a
/// filesystem under `workspaces` that holds the image. `None` (no cap)
/// needs nothing.
pub async fn probe(workspaces: &Path, cap: Option<u64>) -> Result<(), CapError> {
    let Some(bytes) = cap else {
        tracing::warn!("GREENLIGHT_WORKSPACE_MB=0: workspaces have no size cap; a step can fill the disk");
        return Ok(());
    };
    if !rustix::process::geteuid().is_root() {
        return Err(CapError::NotRoot);
    }
    let trial = Workspace { dir: workspaces.join(format!("{PROBE_PREFIX}{}", std::process::id())), cap: Some(bytes) };
    let made = trial.create().await;
    let removed = trial.remove().await;
    made.and(removed).map_err(|e| CapError::Unavailable { workspaces: workspaces.display().to_string(), reason: e.to_string() })
}

/// Whose a name under the workspaces directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Leftover {
    /// A stage's workspace or its image.
    Stage(StageId),
    /// The trial of [`probe`] by the process with this pid.
    Probe(u32),
}

/// Reads `stage-N`, `stage-N.img`, `probe-PID` and `probe-PID.img`.
fn leftover(name: &str) -> Option<Leftover> {
    let base = name.strip_suffix(IMAGE_SUFFIX).unwrap_or(name);
    if let Some(id) = base.strip_prefix("stage-") {
        return id.parse().ok().map(|id| Leftover::Stage(StageId(id)));
    }
    base.strip_prefix(PROBE_PREFIX).and_then(|pid| pid.parse().ok()).map(Leftover::Probe)
}

/// Removes the workspaces a worker that died left under `workspaces`: those
/// of stages nobody runs now (directories, mounted filesystems and their
/// images), and the startup trials of processes that are gone. Each
/// stage's is removed holding its stage's lease (as `owner`), so a worker
/// sharing the directory never loses a live one. Returns how many stages'
/// workspaces were removed.
pub async fn sweep(workspaces: &Path, store: &Store, owner: &str) -> anyhow::Result<usize> {
    let mut found = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(workspaces)? {
        found.extend(entry?.file_name().to_str().and_then(leftover));
    }
    let mut removed = 0;
    for leftover in found {
        match leftover {
            Leftover::Probe(pid) if !Path::new("/proc").join(pid.to_string()).exists() => {
                discard(&workspaces.join(format!("{PROBE_PREFIX}{pid}"))).await?;
            }
            Leftover::Probe(_) => {}
            Leftover::Stage(stage) => {
                if !store.acquire_lease(stage, owner, SWEEP_LEASE).await? {
                    continue;
                }
                let result = discard(&of_stage(workspaces, stage)).await;
                store.release_lease(stage, owner).await?;
                result?;
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed workspaces a stopped worker left behind");
    }
    Ok(removed)
}

/// Removes `dir` and everything in it, however deep, without leaving its
/// filesystem; a missing `dir` is fine.
pub async fn remove(dir: &Path) -> std::io::Result<()> {
    if tokio::fs::symlink_metadata(dir).await.is_err() {
        return Ok(());
    }
    let args = ["-rf", "--one-file-system", "--"].map(OsString::from);
    tool("rm", &[&args[..], &[dir.into()]].concat()).await
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

    fn mounted(dir: &Path) -> bool {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        mounts.lines().any(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap()))
    }

    #[tokio::test]
    async fn a_capped_workspace_refuses_writes_past_its_cap_and_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let cap = 32 << 20;
        let workspace = Workspace::of_stage(root.path(), StageId(7), Some(cap));
        probe(root.path(), Some(cap)).await.expect("capped workspaces work here (root, e2fsprogs, loop devices)");
        workspace.create().await.unwrap();
        assert!(mounted(workspace.root()), "a filesystem of its own");
        let names: std::collections::BTreeSet<_> = std::fs::read_dir(workspace.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [CHECKOUT_DIR, HOME_DIR].map(std::ffi::OsString::from).into(), "no lost+found");
        assert_eq!(std::fs::read_dir(workspace.path()).unwrap().count(), 0, "an empty checkout");

        let mut file = std::fs::File::create(workspace.home().join("fill")).unwrap();
        let chunk = vec![7u8; 1 << 20];
        let error =
            (0..2 * (cap >> 20)).find_map(|_| std::io::Write::write_all(&mut file, &chunk).err()).expect("the cap stops the writes");
        assert_eq!(error.raw_os_error(), Some(libc::ENOSPC), "{error}");
        drop(file);
        use std::os::unix::fs::MetadataExt;
        let allocated = std::fs::metadata(image_of(workspace.root())).unwrap().blocks() * 512;
        assert!(allocated <= cap, "the image holds {allocated} bytes of host disk, past the cap of {cap}");

        workspace.remove().await.unwrap();
        assert!(!mounted(workspace.root()));
        assert!(!workspace.root().exists() && !image_of(workspace.root()).exists(), "directory and image removed");
    }

    #[tokio::test]
    async fn a_workspace_left_mounted_is_replaced_by_a_fresh_one_and_swept_names_are_read() {
        let root = tempfile::tempdir().unwrap();
        let workspace = Workspace::of_stage(root.path(), StageId(8), Some(16 << 20));
        workspace.create().await.unwrap();
        std::fs::write(workspace.path().join("old"), "left").unwrap();
        workspace.create().await.unwrap();
        assert_eq!(std::fs::read_dir(workspace.path()).unwrap().count(), 0, "fresh");
        let uncapped = Workspace::of_stage(root.path(), StageId(8), None);
        uncapped.create().await.unwrap();
        assert!(!mounted(uncapped.root()) && !image_of(uncapped.root()).exists(), "the capped one is gone");
        uncapped.remove().await.unwrap();

        assert_eq!(leftover("stage-12"), Some(Leftover::Stage(StageId(12))));
        assert_eq!(leftover("stage-12.img"), Some(Leftover::Stage(StageId(12))));
        assert_eq!(leftover("probe-4242.img"), Some(Leftover::Probe(4242)));
        assert_eq!(leftover("stage-x"), None);
        assert_eq!(leftover("lost+found"), None);
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
