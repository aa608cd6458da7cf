//! The sandbox a step runs in: bubblewrap namespaces, started as an
//! unprivileged uid with an empty environment.
//!
//! Why each choice:
//! - bwrap is started as a non-root uid: started by root it maps the step to
//!   the real root, which can read root-only files even with every capability
//!   dropped.
//! - bwrap gets an empty environment and its argv carries no secret: it is
//!   PID 1 inside and any process can read `/proc/*/cmdline`, and the step can
//!   read `/proc/1/environ`. The step's environment travels in its script,
//!   handed over through a pipe (`--ro-bind-data`), never through a file on disk.
//! - Only the workspace is bound writable (at [`WORKSPACE`]), plus a private,
//!   size-capped `/tmp`; the system is read-only and nothing else of the host
//!   (the data directory, the App key, other workspaces) is mounted.
//! - A new PID namespace: when the step's shell exits, or bwrap is killed, the
//!   kernel kills everything the step started, background children included.
//! - No nested user namespaces (`--disable-userns`) and a seccomp filter
//!   ([`super::seccomp`]) that refuses the system calls builds never need.
//! - Each step runs in a cgroup of its own with memory, process and CPU
//!   limits ([`super::limits`]). The forked child places itself there, then
//!   drops to the sandbox uid, before bwrap runs: everything the step starts
//!   is born inside, and the step is the first choice of the kernel's
//!   out-of-memory killer, greenlight the last.

use super::limits::{Cgroups, LimitsError, StepCgroup, StepLimits};
use super::network::{NetworkError, NetworkSettings, StageNetwork};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use tokio::process::Command;

/// Where the workspace appears inside the sandbox (Drone's path).
pub const WORKSPACE: &str = "/drone/src";

/// Where a stage's HOME appears inside the sandbox: Drone's exec runner
/// keeps HOME at `home/drone` beside `drone/src`.
pub const HOME: &str = "/home/drone";

/// Size cap of the private `/tmp` of a step.
pub const TMP_SIZE_BYTES: u64 = 1024 * 1024 * 1024;

/// The uid steps run as when greenlight runs as root and none is configured.
pub const DEFAULT_SANDBOX_UID: u32 = 65534;

/// How steps are isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// bubblewrap namespaces.
    Bwrap(PathBuf),
    /// No isolation, chosen explicitly by the operator (`GREENLIGHT_SANDBOX=none`).
    Unsandboxed,
}

/// A way to start step processes.
#[derive(Debug, Clone)]
pub struct Sandbox {
    isolation: Isolation,
    /// uid and gid to start processes as, when greenlight is root.
    user: Option<(u32, u32)>,
    /// The compiled seccomp filter bwrap installs (sandboxed only).
    seccomp: Option<Arc<[u8]>>,
    /// Per-step cgroups, unless limits are off (`GREENLIGHT_STEP_LIMITS=off`, or `greenlight exec`).
    cgroups: Option<Cgroups>,
    /// Whether workspaces reach bwrap through [`RELAY_DIR`] (the sandbox
    /// user cannot pass through the data directory's parents).
    relay: bool,
    /// How each stage's network is made.
    network: NetworkSettings,
}

/// How the sandbox is set up.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Run steps without bwrap (`GREENLIGHT_SANDBOX=none`).
    pub unsandboxed: bool,
    /// The uid steps run as when greenlight is root (default [`DEFAULT_SANDBOX_UID`]).
    pub uid: Option<u32>,
    /// Per-step limits, `None` when they are off.
    pub limits: Option<StepLimits>,
    /// The network steps get (`GREENLIGHT_STEP_NETWORK`, `GREENLIGHT_STEP_DENY`).
    pub network: NetworkSettings,
}

impl Default for SandboxOptions {
    /// bwrap, the default uid, no limits, the host's network: how
    /// `greenlight exec` runs steps on a developer's machine (the service's
    /// own defaults come from its configuration).
    fn default() -> Self {
        Self { unsandboxed: false, uid: None, limits: None, network: NetworkSettings::host() }
    }
}

/// Where a step's process goes before bwrap starts.
#[derive(Debug, Default, Clone, Copy)]
pub struct Placement<'a> {
    /// The step's cgroup.
    pub cgroup: Option<&'a StepCgroup>,
    /// The stage's network, when not the host's.
    pub network: Option<&'a StageNetwork>,
}

/// A seccomp program in a memory file made for one bwrap, which reads it
/// from the start to its end (a file shared by concurrent spawns would share
/// its offset). The command's pre-exec hook owns it, so it lives until the
/// spawn.
#[derive(Debug)]
struct SeccompFile(OwnedFd);

impl SeccompFile {
    fn new(program: &[u8]) -> std::io::Result<Self> {
        let name = CString::new("greenlight-seccomp").expect("no NUL");
        // SAFETY: memfd_create with a valid name; the result is checked.
        let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: raw is a new descriptor this function owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut file = std::fs::File::from(fd.try_clone()?);
        std::io::Write::write_all(&mut file, program)?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0))?;
        Ok(Self(fd))
    }
}

/// Why the sandbox cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// bwrap is not installed.
    #[error(
        "bwrap (bubblewrap) is not on PATH: install it (Debian/Ubuntu: apt-get install bubblewrap), or set GREENLIGHT_SANDBOX=none to run steps unsandboxed"
    )]
    Missing,
    /// The sandbox user cannot reach the data directory: a parent does not let it pass.
    #[error(
        "the sandbox user (uid {uid}) cannot reach {workspaces}: {blocking} (mode {mode:o}, owner uid {owner}) does not let it pass; \
         put GREENLIGHT_DATA_DIR where every parent is searchable by others (e.g. /var/lib/greenlight), or run `chmod o+x {blocking}`"
    )]
    Unreachable {
        /// The sandbox uid.
        uid: u32,
        /// The workspaces directory.
        workspaces: String,
        /// The first parent that stops it.
        blocking: String,
        /// That parent's permission bits.
        mode: u32,
        /// That parent's owner.
        owner: u32,
    },
    /// Limits were asked for and cannot be applied.
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// The steps' network cannot be made as configured.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// bwrap could not create its namespaces here.
    #[error(
        "bwrap cannot create namespaces on this host ({0}); allow unprivileged user namespaces, or set GREENLIGHT_SANDBOX=none to run steps unsandboxed"
    )]
    Unusable(String),
}

/// A pipe holding `text` (small: the write cannot block), for bwrap's
/// `--ro-bind-data`, which copies it into a file of the sandbox's own.
pub fn pipe_holding(text: &str) -> std::io::Result<OwnedFd> {
    let (read, mut write) = std::io::pipe()?;
    std::io::Write::write_all(&mut write, text.as_bytes())?;
    let read = OwnedFd::from(read);
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(read.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(read)
}

/// Lets the command inherit `fds` (close-on-exec cleared in the child
/// only). The hook owns `keep` (descriptors opened for this command alone),
/// so they stay open until the spawn.
fn hand_over(cmd: &mut Command, fds: Vec<RawFd>, keep: Vec<OwnedFd>) {
    // SAFETY: fcntl is async-signal-safe and only clears close-on-exec.
    unsafe {
        cmd.pre_exec(move || {
            let _owned = &keep;
            for fd in &fds {
                if libc::fcntl(*fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Lets the command's process (and the step inside bwrap, which keeps
/// inherited descriptors) inherit `fds` without mounting them anywhere.
pub fn inherit(cmd: &mut Command, fds: Vec<RawFd>) {
    hand_over(cmd, fds, Vec::new());
}

/// Where the workspace is bound when the sandbox user cannot pass through
/// the data directory's parents (a data directory under `/root`, mode
/// 0700): an empty directory only root may write, onto which each step's
/// process, still root, binds its workspace in a mount namespace of its
/// own before bwrap runs. Nothing is mounted on the host, so nothing is
/// left behind if greenlight dies. (bwrap's own `--bind-fd` resolves the
/// descriptor back to its path as the sandbox user, and fails there.)
pub const RELAY_DIR: &str = "/run/greenlight/workspace";

/// Where the extra directories of [`Sandbox::command_binding`] are
/// relayed, as [`RELAY_DIR`] relays the workspace: `RELAY_BINDS-0`, ….
pub const RELAY_BINDS: &str = "/run/greenlight/bind";

/// How many extra directories one command may bind: the clone binds one
/// (the repository's mirror), a step one (its stage's HOME); relay directories are made for this many at
/// startup.
pub const MAX_BINDS: usize = 2;

/// A host directory bound into the sandbox beside the workspace.
#[derive(Debug, Clone, Copy)]
pub struct Bind<'a> {
    /// The directory on the host.
    pub host: &'a Path,
    /// Where the sandbox sees it.
    pub inside: &'a str,
    /// Whether the sandbox may write it (else read-only).
    pub writable: bool,
}

/// The relay directory of extra bind `i`.
fn relay_bind(i: usize) -> String {
    format!("{RELAY_BINDS}-{i}")
}

/// In a forked child, as root: binds `from` at `to` in a new mount
/// namespace whose mounts do not propagate back to the host.
fn bind_privately(pairs: &[(CString, CString)]) -> std::io::Result<()> {
    // SAFETY: unshare and mount with valid NUL-terminated paths.
    let failed = unsafe {
        libc::unshare(libc::CLONE_NEWNS) != 0
            || libc::mount(c"none".as_ptr(), c"/".as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_SLAVE, std::ptr::null()) != 0
            || pairs
                .iter()
                .any(|(from, to)| libc::mount(from.as_ptr(), to.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) != 0)
    };
    if failed { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// Makes the forked child, before it execs: join the step's cgroup and
/// network namespace (both need root), become the OOM killer's first
/// choice, then drop to the sandbox user. `Command::uid` would switch users
/// before any pre-exec hook runs, too early for the namespace.
fn enter(cmd: &mut Command, placement: Placement<'_>, relay: Vec<(CString, CString)>, user: Option<(u32, u32)>) {
    let cgroup_fds = placement.cgroup.map(StepCgroup::procs_fds).unwrap_or_default();
    let netns = placement.network.and_then(StageNetwork::netns).map(|fd| fd.as_raw_fd());
    // SAFETY: only async-signal-safe calls (write, setns, unshare, mount,
    // open, close, setgroups, setgid, setuid) on descriptors the parent
    // keeps open until the spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            super::limits::place_self(&cgroup_fds)?;
            if let Some(fd) = netns {
                super::network::enter(fd)?;
            }
            if !relay.is_empty() {
                bind_privately(&relay)?;
            }
            let score = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if score >= 0 {
                libc::write(score, b"500".as_ptr().cast(), 3);
                libc::close(score);
            }
            if let Some((uid, gid)) = user
                && (libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Whether workspaces under `workspaces` must reach bwrap through
/// [`RELAY_DIR`] because `uid` cannot pass through a parent; makes that
/// directory when so. Fails naming the real cause when neither works.
fn needs_relay(workspaces: &Path, uid: u32, gid: u32) -> Result<bool, SandboxError> {
    let Err(blocked) = reachable(workspaces, uid, gid) else { return Ok(false) };
    let dirs: Vec<String> = std::iter::once(RELAY_DIR.to_string()).chain((0..MAX_BINDS).map(relay_bind)).collect();
    let made = dirs.iter().try_for_each(|dir| {
        std::fs::create_dir_all(dir).and_then(|()| std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)))
    });
    if made.is_err() || reachable(Path::new(RELAY_DIR), uid, gid).is_err() {
        return Err(blocked);
    }
    tracing::info!(reason = %blocked, relay = RELAY_DIR, "workspaces reach the sandbox through a private bind mount");
    Ok(true)
}

/// Checks that `uid` may search every directory down to `dir` (the
/// sandbox user works in workspaces under it and clones into them), so a
/// data directory under a private home (`/root`, mode 0700) is named as the
/// cause instead of failing later inside bwrap with a misleading error.
fn reachable(dir: &Path, uid: u32, gid: u32) -> Result<(), SandboxError> {
    use std::os::unix::fs::MetadataExt;
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    for ancestor in absolute.ancestors().collect::<Vec<_>>().into_iter().rev() {
        let Ok(meta) = std::fs::metadata(ancestor) else { continue };
        let mode = meta.mode() & 0o777;
        let searchable = if meta.uid() == uid {
            mode & 0o100 != 0
        } else if meta.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !searchable {
            return Err(SandboxError::Unreachable {
                uid,
                workspaces: absolute.display().to_string(),
                blocking: ancestor.display().to_string(),
                mode,
                owner: meta.uid(),
            });
        }
    }
    Ok(())
}

impl Sandbox {
    /// Finds bwrap and checks that it works here, as the sandbox uid
    /// (default: 65534 when running as root, else the current user), on a
    /// workspace under `workspaces` (so a data directory the sandbox user
    /// cannot reach is found at startup, not at the first build), inside a
    /// step cgroup whose use is then checked (so limits that would not
    /// apply stop greenlight instead of silently not limiting).
    pub async fn probe(options: &SandboxOptions, workspaces: &Path) -> Result<Self, SandboxError> {
        // SAFETY: getuid has no preconditions.
        let root = unsafe { libc::getuid() } == 0;
        let user = root.then(|| {
            let uid = options.uid.unwrap_or(DEFAULT_SANDBOX_UID);
            (uid, uid)
        });
        let cgroups = options.limits.map(Cgroups::setup).transpose()?;
        if options.unsandboxed {
            tracing::warn!("GREENLIGHT_SANDBOX=none: steps run UNSANDBOXED; every check run says so");
            // Unsandboxed steps and their clone work in the workspace by its path.
            if let Some((uid, gid)) = user {
                reachable(workspaces, uid, gid)?;
            }
            super::network::probe(&options.network).await?;
            let network = options.network.clone();
            return Ok(Self { isolation: Isolation::Unsandboxed, user, seccomp: None, cgroups, relay: false, network });
        }
        let bwrap = crate::text::find_on_path("bwrap").ok_or(SandboxError::Missing)?;
        let program = super::seccomp::program().map_err(SandboxError::Unusable)?;
        let relay = match user {
            Some((uid, gid)) => needs_relay(workspaces, uid, gid)?,
            None => false,
        };
        super::network::probe(&options.network).await?;
        let network = options.network.clone();
        let sandbox = Self { isolation: Isolation::Bwrap(bwrap), user, seccomp: Some(program.into()), cgroups, relay, network };
        sandbox.try_once(workspaces).await?;
        Ok(sandbox)
    }

    /// Runs `/bin/true` the way a step runs, and checks that its cgroup saw it.
    async fn try_once(&self, workspaces: &Path) -> Result<(), SandboxError> {
        let dir = tempfile::Builder::new()
            .prefix("probe-")
            .tempdir_in(workspaces)
            .map_err(|e| SandboxError::Unusable(format!("cannot create a workspace in {}: {e}", workspaces.display())))?;
        self.give(dir.path()).map_err(|e| SandboxError::Unusable(e.to_string()))?;
        let cgroup = self.step_cgroup().map_err(|e| LimitsError::Unavailable(e.to_string()))?;
        let mut probe = self.command(dir.path(), &[], Placement { cgroup: cgroup.as_ref(), network: None });
        probe.args(["/bin/true"]).stdout(Stdio::null()).stderr(Stdio::piped());
        let out = probe.output().await.map_err(|e| SandboxError::Unusable(e.to_string()))?;
        if !out.status.success() {
            return Err(SandboxError::Unusable(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        if let Some(cgroup) = cgroup {
            if cgroup.peak_memory() == Some(0) {
                return Err(LimitsError::Unavailable("a probe step placed in its cgroup was not accounted there".to_string()).into());
            }
            cgroup.remove().await;
        }
        Ok(())
    }

    /// A new cgroup for one step, or `None` when limits are off.
    pub fn step_cgroup(&self) -> std::io::Result<Option<StepCgroup>> {
        self.cgroups.as_ref().map(Cgroups::step).transpose()
    }

    /// Sets up the network a stage's steps share (see [`super::network`]);
    /// the clone stays on the host's.
    pub async fn stage_network(&self) -> Result<StageNetwork, NetworkError> {
        StageNetwork::start(&self.network).await
    }

    /// The limits steps run under, `None` when they are off.
    pub fn limits(&self) -> Option<StepLimits> {
        self.cgroups.as_ref().map(Cgroups::limits)
    }

    /// What every check run must warn about how its steps ran.
    pub fn caveats(&self) -> Vec<String> {
        let mut caveats = Vec::new();
        if !self.is_sandboxed() {
            caveats.push("these steps ran UNSANDBOXED (`GREENLIGHT_SANDBOX=none`).".to_string());
        }
        if self.cgroups.is_none() {
            caveats.push("these steps ran WITHOUT resource limits (`GREENLIGHT_STEP_LIMITS=off`).".to_string());
        }
        caveats
    }

    /// Whether steps are isolated.
    pub fn is_sandboxed(&self) -> bool {
        matches!(self.isolation, Isolation::Bwrap(_))
    }

    /// Makes a directory (and what is in it) belong to the sandbox user.
    pub fn give(&self, dir: &Path) -> std::io::Result<()> {
        match self.user {
            Some((uid, gid)) => super::workspace::chown_tree(dir, uid, gid),
            None => Ok(()),
        }
    }

    /// A command that runs, as the sandbox user with an empty environment,
    /// whatever arguments are added next: inside bwrap with `workspace` as
    /// the working directory, or (unsandboxed) directly in `workspace`.
    /// Each of `files` (a readable descriptor and a path) is mounted
    /// read-only at that path (see [`Sandbox::file_path`]); the process is
    /// placed as `placement` says before it runs anything.
    ///
    /// When the sandbox user cannot pass through the data directory's
    /// parents, the workspace reaches bwrap through [`RELAY_DIR`], so a data
    /// directory under a private home (`/root`, mode 0700) works.
    pub fn command(&self, workspace: &Path, files: &[(RawFd, &str)], placement: Placement<'_>) -> Command {
        self.command_binding(workspace, &[], files, placement)
    }

    /// [`Sandbox::command`] with more host directories bound (at most
    /// [`MAX_BINDS`]; more are left out), relayed like the workspace when
    /// the sandbox user cannot reach them. Unsandboxed, nothing is bound:
    /// the process finds each at [`Sandbox::bind_path`].
    pub fn command_binding(&self, workspace: &Path, binds: &[Bind<'_>], files: &[(RawFd, &str)], placement: Placement<'_>) -> Command {
        let binds = &binds[..binds.len().min(MAX_BINDS)];
        let mut inherited: Vec<OwnedFd> = Vec::new();
        let mut cmd = match &self.isolation {
            Isolation::Bwrap(bwrap) => {
                let mut cmd = Command::new(bwrap);
                cmd.args(["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session"])
                    .args(["--cap-drop", "ALL", "--hostname", "greenlight"])
                    .args(["--ro-bind", "/usr", "/usr"])
                    .args(["--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin"])
                    .args(["--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"])
                    .args(["--ro-bind", "/etc", "/etc", "--dev", "/dev", "--proc", "/proc"])
                    .args(["--size", &TMP_SIZE_BYTES.to_string(), "--tmpfs", "/tmp"]);
                // The working directory bwrap starts in must be one the sandbox user may enter.
                cmd.current_dir("/");
                let source = if self.relay { Path::new(RELAY_DIR) } else { workspace };
                cmd.arg("--bind").arg(source).arg(WORKSPACE);
                for (i, bind) in binds.iter().enumerate() {
                    let source = if self.relay { PathBuf::from(relay_bind(i)) } else { bind.host.to_path_buf() };
                    cmd.arg(if bind.writable { "--bind" } else { "--ro-bind" }).arg(source).arg(bind.inside);
                }
                cmd.args(["--chdir", WORKSPACE, "--clearenv"]);
                for (fd, path) in files {
                    cmd.args(["--ro-bind-data", &fd.to_string(), path]);
                }
                Self::add_network(&mut cmd, placement.network, &mut inherited);
                self.add_seccomp(&mut cmd, &mut inherited);
                cmd.arg("--");
                cmd
            }
            Isolation::Unsandboxed => {
                let mut cmd = Command::new("/usr/bin/env");
                cmd.current_dir(workspace);
                cmd
            }
        };
        cmd.env_clear().stdin(Stdio::null()).kill_on_drop(true);
        let raw: Vec<RawFd> = files.iter().map(|(fd, _)| *fd).chain(inherited.iter().map(AsRawFd::as_raw_fd)).collect();
        hand_over(&mut cmd, raw, inherited);
        let c_path = |path: &Path| CString::new(path.as_os_str().as_encoded_bytes()).unwrap_or_default();
        let relay = match self.relay {
            true => std::iter::once((c_path(workspace), CString::new(RELAY_DIR).expect("no NUL")))
                .chain(binds.iter().enumerate().map(|(i, bind)| (c_path(bind.host), CString::new(relay_bind(i)).expect("no NUL"))))
                .collect(),
            false => Vec::new(),
        };
        enter(&mut cmd, placement, relay, self.user);
        if !self.is_sandboxed() {
            // Without a PID namespace, a process group is the handle to kill the step's tree.
            cmd.process_group(0);
        }
        cmd
    }

    /// Keeps the network namespace the process starts in (the host's, or
    /// the stage's it enters before bwrap runs) unless the stage's network
    /// is bwrap's own empty one, and gives the step the stage's resolver.
    fn add_network(cmd: &mut Command, network: Option<&StageNetwork>, inherited: &mut Vec<OwnedFd>) {
        if network.is_none_or(StageNetwork::share_net) {
            cmd.arg("--share-net");
        }
        let Some(resolv) = network.and_then(StageNetwork::resolv_conf) else { return };
        match pipe_holding(resolv) {
            Ok(fd) => {
                cmd.args(["--ro-bind-data", &fd.as_raw_fd().to_string(), "/etc/resolv.conf"]);
                inherited.push(fd);
            }
            Err(e) => tracing::error!(error = %e, "cannot hand the stage's resolv.conf to the sandbox; the host's stays"),
        }
    }

    /// Adds the seccomp filter, in a memory file of its own that the command inherits.
    fn add_seccomp(&self, cmd: &mut Command, inherited: &mut Vec<OwnedFd>) {
        let Some(program) = &self.seccomp else { return };
        match SeccompFile::new(program) {
            Ok(file) => {
                cmd.args(["--seccomp", &file.0.as_raw_fd().to_string()]);
                inherited.push(file.0);
            }
            // bwrap then fails on the missing argument rather than run unfiltered.
            Err(e) => {
                tracing::error!(error = %e, "cannot hold the seccomp filter");
                cmd.args(["--seccomp", "-1"]);
            }
        }
    }

    /// Where a process started by [`Sandbox::command`] finds the file it
    /// was given at `fd` for `path`: at `path` in the sandbox; unsandboxed,
    /// the inherited descriptor itself.
    pub fn file_path(&self, fd: RawFd, path: &str) -> String {
        match self.isolation {
            Isolation::Bwrap(_) => path.to_string(),
            Isolation::Unsandboxed => format!("/dev/fd/{fd}"),
        }
    }

    /// The path the workspace has for the step.
    pub fn workspace_path<'a>(&self, host: &'a Path) -> std::borrow::Cow<'a, str> {
        match self.isolation {
            Isolation::Bwrap(_) => WORKSPACE.into(),
            Isolation::Unsandboxed => host.to_string_lossy(),
        }
    }

    /// Where a process started by [`Sandbox::command_binding`] finds `bind`:
    /// where it is bound; unsandboxed, on the host.
    pub fn bind_path(&self, bind: &Bind<'_>) -> String {
        match self.isolation {
            Isolation::Bwrap(_) => bind.inside.to_string(),
            Isolation::Unsandboxed => bind.host.to_string_lossy().into_owned(),
        }
    }

    /// The user processes run as, if greenlight switches to one.
    pub fn user(&self) -> Option<(u32, u32)> {
        self.user
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_directory_under_a_private_home_is_named_as_the_cause() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let data = home.path().join("checkout/data/workspaces");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = reachable(&data, 65534, 65534).unwrap_err().to_string();
        assert!(err.contains(&format!("{} (mode 700", home.path().display())), "{err}");
        assert!(err.contains("the sandbox user (uid 65534) cannot reach"), "{err}");
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        assert!(reachable(&data, 65534, 65534).is_ok(), "searchable by others is enough");
    }
}
