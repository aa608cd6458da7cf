//! Per-step resource limits: memory, processes and CPU for a step's whole
//! process tree, through cgroups.
//!
//! Why cgroups and not rlimits: `RLIMIT_AS` and `RLIMIT_NPROC` count per
//! process or per uid, so a step forking 300 children, or two stages sharing
//! the sandbox uid, escape or starve each other. A cgroup holds everything
//! a step starts, whatever it does (`setsid`, double forks), and the kernel
//! charges and kills inside it only.
//!
//! Two layouts exist in the wild and greenlight probes which one it has at
//! startup:
//! - **cgroup v2** (current distributions, most containers): one tree;
//!   controllers are enabled for children in a parent's
//!   `cgroup.subtree_control`, which a cgroup holding processes may not do
//!   (the "no internal processes" rule), so greenlight moves the processes
//!   of its own cgroup into a leaf first when it has to.
//! - **cgroup v1** (hybrid hosts such as this project's CI machines and
//!   Fly.io): one tree per controller (`memory`, `pids`, `cpu`), each with
//!   its own path for the process.
//!
//! Each greenlight process keeps its steps' cgroups under a parent named
//! `greenlight-<pid>` next to its own cgroup; a parent whose process is gone
//! (a killed worker) is emptied and removed at the next startup.
//!
//! A step is placed in its cgroup before bwrap runs: the forked child writes
//! `0` to the cgroup's `cgroup.procs` (opened beforehand by greenlight), so
//! every process the step starts is born inside. Moving the pid after the
//! spawn would race with the step's first forks.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where the kernel's cgroup filesystems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// `statfs` magic of a cgroup2 filesystem (linux/magic.h).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The CPU period quotas are measured in (the kernel's default, 100 ms).
const CPU_PERIOD_MICROS: u64 = 100_000;

/// How long removing a step's cgroup waits for its killed processes to be
/// gone before leaving it for the next startup's sweep.
const REMOVE_DEADLINE: Duration = Duration::from_secs(5);

/// Numbers step cgroups uniquely within a process (several workers may
/// share one process in tests and embedded setups).
static NEXT_STEP: AtomicU64 = AtomicU64::new(1);

/// What one step may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLimits {
    /// Memory in bytes, swap counted with it (`GREENLIGHT_STEP_MEMORY`).
    pub memory: u64,
    /// Processes and threads at once (`GREENLIGHT_STEP_PIDS`).
    pub pids: u64,
    /// Cores' worth of CPU time, `None` for all of the machine, shared
    /// fairly with other steps (`GREENLIGHT_STEP_CPUS`).
    pub cpus: Option<f64>,
}

impl StepLimits {
    /// Default memory per step: 4 GiB, enough for a typical compiler or
    /// test run, small enough that two concurrent stages leave a server room.
    pub const DEFAULT_MEMORY: u64 = 4 * 1024 * 1024 * 1024;
    /// Default process limit: 1024, far above what builds start at once
    /// (`make -j` on a large machine) and far below a fork bomb.
    pub const DEFAULT_PIDS: u64 = 1024;

    /// The memory limit as people write it ("512 MiB", "4 GiB").
    pub fn memory_text(&self) -> String {
        human_bytes(self.memory)
    }
}

impl Default for StepLimits {
    fn default() -> Self {
        Self { memory: Self::DEFAULT_MEMORY, pids: Self::DEFAULT_PIDS, cpus: None }
    }
}

/// Bytes as a whole number of the largest binary unit that divides them
/// evenly enough to read ("512 MiB", "1.5 GiB").
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return if value.fract() == 0.0 { format!("{value} {unit}") } else { format!("{value:.1} {unit}") };
        }
    }
    format!("{bytes} bytes")
}

/// Parses a size as operators write it: `512m`, `4g`, `4GiB`, `1024k`, or bytes.
pub fn parse_size(raw: &str) -> Option<u64> {
    let text = raw.trim().to_ascii_lowercase();
    let digits = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: f64 = number.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = number * scale as f64;
    (bytes.is_finite() && bytes >= 1.0).then_some(bytes as u64)
}

/// Why limits cannot be applied on this host.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    /// No cgroup filesystem, or one greenlight cannot write.
    #[error(
        "per-step limits (memory, processes, CPU) need cgroups, and {0}; run greenlight as root or in a cgroup delegated to it \
         (systemd: Delegate=yes; docker: --cgroupns=private with a writable /sys/fs/cgroup), or set GREENLIGHT_STEP_LIMITS=off \
         to run steps without limits (every check run then says so)"
    )]
    Unavailable(String),
}

fn unavailable(what: impl std::fmt::Display) -> LimitsError {
    LimitsError::Unavailable(what.to_string())
}

/// The directories greenlight makes step cgroups in.
#[derive(Debug, Clone)]
enum Layout {
    /// One tree; controllers enabled in the parent's `cgroup.subtree_control`.
    V2 { parent: PathBuf, cpu: bool },
    /// One tree per controller (`cpu` is optional: limits then cover memory and processes).
    V1 { memory: PathBuf, pids: PathBuf, cpu: Option<PathBuf> },
}

/// Makes a cgroup per step with this host's layout.
#[derive(Debug, Clone)]
pub struct Cgroups {
    layout: Layout,
    limits: StepLimits,
}

/// Whether `/sys/fs/cgroup` itself is a cgroup2 mount (a pure v2 host).
fn is_unified() -> bool {
    let path = std::ffi::CString::new(CGROUP_ROOT).expect("no NUL");
    // SAFETY: statfs with a valid path and a zeroed out-parameter.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::statfs(path.as_ptr(), &mut fs) } == 0;
    ok && fs.f_type as i64 == CGROUP2_SUPER_MAGIC
}

/// This process's path in the hierarchy that holds `controller` (v1), or
/// in the unified hierarchy (`controller` empty), from `/proc/self/cgroup`.
fn own_path(controller: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if controller.is_empty() { controllers.is_empty() } else { controllers.split(',').any(|c| c == controller) };
        matches.then(|| path.to_string())
    })
}

/// The v1 directory of this process for `controller`, under its mount.
fn v1_dir(controller: &str) -> Option<PathBuf> {
    let mount = Path::new(CGROUP_ROOT).join(controller);
    let own = own_path(controller)?;
    mount.is_dir().then(|| mount.join(own.trim_start_matches('/')))
}

fn write(dir: &Path, file: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(dir.join(file), value)
        .map_err(|e| std::io::Error::new(e.kind(), format!("writing {value:?} to {}: {e}", dir.join(file).display())))
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_default()
}

/// The number after `key` in a flat-keyed cgroup file (`memory.events`,
/// `memory.oom_control`).
fn keyed(text: &str, key: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(' '))).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

/// Whether process `pid` still exists.
fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The per-process parent under `base`: made, after removing the parents
/// of greenlight processes that are gone.
fn parent_under(base: &Path) -> std::io::Result<PathBuf> {
    if let Ok(entries) = std::fs::read_dir(base) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("greenlight-")).and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if !alive(pid) {
                sweep_parent(&entry.path());
            }
        }
    }
    let parent = base.join(format!("greenlight-{}", std::process::id()));
    std::fs::create_dir_all(&parent)?;
    Ok(parent)
}

/// Kills what a dead worker's step cgroups still hold and removes them.
fn sweep_parent(parent: &Path) {
    if let Ok(steps) = std::fs::read_dir(parent) {
        for step in steps.flatten().filter(|e| e.path().is_dir()) {
            kill_members(&step.path());
            let _ = std::fs::remove_dir(step.path());
        }
    }
    match std::fs::remove_dir(parent) {
        Ok(()) => tracing::info!(cgroup = %parent.display(), "removed the cgroups of a stopped greenlight"),
        Err(e) => tracing::warn!(cgroup = %parent.display(), error = %e, "cannot remove the cgroups of a stopped greenlight"),
    }
}

/// SIGKILLs every process in the cgroup at `dir` (v2's `cgroup.kill` when
/// there is one: it also catches processes forked while it runs).
fn kill_members(dir: &Path) {
    if dir.join("cgroup.kill").exists() && write(dir, "cgroup.kill", "1").is_ok() {
        return;
    }
    for pid in read(dir, "cgroup.procs").lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Enables `controllers` for the children of the v2 cgroup `base`. A
/// cgroup holding processes may not (the "no internal processes" rule), so
/// its processes (greenlight's own, and whatever shares its cgroup) move
/// into a leaf `greenlight-service` first.
fn enable_v2(base: &Path, controllers: &[&str]) -> Result<(), LimitsError> {
    let enabled = read(base, "cgroup.subtree_control");
    let missing: Vec<&str> = controllers.iter().copied().filter(|c| !enabled.split_whitespace().any(|e| e == *c)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let request = missing.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(" ");
    if write(base, "cgroup.subtree_control", &request).is_ok() {
        return Ok(());
    }
    let leaf = base.join("greenlight-service");
    std::fs::create_dir_all(&leaf).map_err(|e| unavailable(format!("cannot create {}: {e}", leaf.display())))?;
    for pid in read(base, "cgroup.procs").lines().filter(|l| !l.trim().is_empty()) {
        // A process may exit meanwhile; a kernel thread may not move: neither matters.
        let _ = write(&leaf, "cgroup.procs", pid.trim());
    }
    write(base, "cgroup.subtree_control", &request)
        .map_err(|e| unavailable(format!("cannot enable {request} in {}: {e}", base.display())))?;
    tracing::info!(cgroup = %base.display(), "moved greenlight into greenlight-service to delegate controllers to step cgroups");
    Ok(())
}

impl Cgroups {
    /// Finds this host's cgroup layout, makes this process's parent cgroup
    /// (removing those of stopped greenlight processes) and checks that the
    /// controllers the limits need are there.
    pub fn setup(limits: StepLimits) -> Result<Self, LimitsError> {
        let layout = if is_unified() { Self::setup_v2(&limits)? } else { Self::setup_v1(&limits)? };
        Ok(Self { layout, limits })
    }

    fn setup_v2(limits: &StepLimits) -> Result<Layout, LimitsError> {
        let own = own_path("").ok_or_else(|| unavailable("/proc/self/cgroup names no cgroup v2 path"))?;
        let base = Path::new(CGROUP_ROOT).join(own.trim_start_matches('/'));
        let available = read(&base, "cgroup.controllers");
        let has = |c: &str| available.split_whitespace().any(|a| a == c);
        for needed in ["memory", "pids"] {
            if !has(needed) {
                return Err(unavailable(format!(
                    "the {needed} controller is not available in {} (cgroup.controllers: {available:?})",
                    base.display()
                )));
            }
        }
        if limits.cpus.is_some() && !has("cpu") {
            return Err(unavailable(format!("GREENLIGHT_STEP_CPUS needs the cpu controller, which {} lacks", base.display())));
        }
        let controllers: Vec<&str> = ["memory", "pids", "cpu"].into_iter().filter(|c| has(c)).collect();
        enable_v2(&base, &controllers)?;
        let parent = parent_under(&base).map_err(|e| unavailable(format!("cannot create a cgroup under {}: {e}", base.display())))?;
        let request = controllers.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(" ");
        write(&parent, "cgroup.subtree_control", &request).map_err(unavailable)?;
        Ok(Layout::V2 { parent, cpu: has("cpu") })
    }

    fn setup_v1(limits: &StepLimits) -> Result<Layout, LimitsError> {
        let dir = |controller: &str| {
            let base = v1_dir(controller).ok_or_else(|| unavailable(format!("no cgroup v1 {controller} hierarchy under {CGROUP_ROOT}")))?;
            parent_under(&base).map_err(|e| unavailable(format!("cannot create a cgroup under {}: {e}", base.display())))
        };
        let memory = dir("memory")?;
        let pids = dir("pids")?;
        let cpu = match dir("cpu") {
            Ok(cpu) => Some(cpu),
            Err(e) if limits.cpus.is_some() => return Err(e),
            Err(_) => None,
        };
        Ok(Layout::V1 { memory, pids, cpu })
    }

    /// The limits every step gets.
    pub fn limits(&self) -> StepLimits {
        self.limits
    }

    /// Which cgroup version is in use, for the startup log.
    pub fn version(&self) -> &'static str {
        match self.layout {
            Layout::V2 { .. } => "v2",
            Layout::V1 { .. } => "v1",
        }
    }

    /// A new cgroup for one step, its limits written.
    pub fn step(&self) -> std::io::Result<StepCgroup> {
        let name = format!("step-{}", NEXT_STEP.fetch_add(1, Ordering::Relaxed));
        let mut group = StepCgroup { dirs: Vec::new(), procs: Vec::new(), memory: PathBuf::new(), v2: false, limit: self.limits.memory };
        let cpu_quota = self.limits.cpus.map(|cpus| ((cpus * CPU_PERIOD_MICROS as f64) as u64).max(1000));
        match &self.layout {
            Layout::V2 { parent, cpu } => {
                let dir = group.add(&parent.join(&name))?;
                group.memory = dir.clone();
                group.v2 = true;
                write(&dir, "memory.max", &self.limits.memory.to_string())?;
                if dir.join("memory.swap.max").exists() {
                    write(&dir, "memory.swap.max", "0")?;
                }
                write(&dir, "memory.oom.group", "1")?;
                write(&dir, "pids.max", &self.limits.pids.to_string())?;
                if let (true, Some(quota)) = (cpu, cpu_quota) {
                    write(&dir, "cpu.max", &format!("{quota} {CPU_PERIOD_MICROS}"))?;
                }
            }
            Layout::V1 { memory, pids, cpu } => {
                let dir = group.add(&memory.join(&name))?;
                group.memory = dir.clone();
                write(&dir, "memory.limit_in_bytes", &self.limits.memory.to_string())?;
                if dir.join("memory.memsw.limit_in_bytes").exists() {
                    write(&dir, "memory.memsw.limit_in_bytes", &self.limits.memory.to_string())?;
                }
                let dir = group.add(&pids.join(&name))?;
                write(&dir, "pids.max", &self.limits.pids.to_string())?;
                if let Some(cpu) = cpu {
                    let dir = group.add(&cpu.join(&name))?;
                    if let Some(quota) = cpu_quota {
                        write(&dir, "cpu.cfs_period_us", &CPU_PERIOD_MICROS.to_string())?;
                        write(&dir, "cpu.cfs_quota_us", &quota.to_string())?;
                    }
                }
            }
        }
        Ok(group)
    }
}

/// One step's cgroup (one directory per v1 controller, one on v2). Dropping
/// it kills what is left inside and removes it; [`StepCgroup::remove`] does
/// the same and waits for the processes to be gone.
#[derive(Debug)]
pub struct StepCgroup {
    dirs: Vec<PathBuf>,
    procs: Vec<File>,
    memory: PathBuf,
    v2: bool,
    limit: u64,
}

impl StepCgroup {
    /// Makes `dir` and opens its `cgroup.procs` for the step's placement.
    fn add(&mut self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir(dir).map_err(|e| std::io::Error::new(e.kind(), format!("creating cgroup {}: {e}", dir.display())))?;
        self.dirs.push(dir.to_path_buf());
        self.procs.push(std::fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs"))?);
        Ok(dir.to_path_buf())
    }

    /// The open `cgroup.procs` files a forked child writes `0` to, to move
    /// itself in (see [`place_self`]).
    pub fn procs_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(|f| f.as_raw_fd()).collect()
    }

    /// How many processes the out-of-memory killer killed in the step.
    pub fn oom_kills(&self) -> u64 {
        if self.v2 {
            keyed(&read(&self.memory, "memory.events"), "oom_kill")
        } else {
            keyed(&read(&self.memory, "memory.oom_control"), "oom_kill")
        }
    }

    /// The memory limit, as the step's log and check run state it.
    pub fn memory_text(&self) -> String {
        human_bytes(self.limit)
    }

    /// The most memory the step used at once, in bytes, where the kernel
    /// keeps it (v1, and v2 since Linux 5.19).
    pub fn peak_memory(&self) -> Option<u64> {
        let file = if self.v2 { "memory.peak" } else { "memory.max_usage_in_bytes" };
        read(&self.memory, file).trim().parse().ok()
    }

    /// Kills whatever the step left running and removes the cgroup, waiting
    /// (bounded) for the killed processes to be gone.
    pub async fn remove(mut self) {
        let deadline = tokio::time::Instant::now() + REMOVE_DEADLINE;
        loop {
            self.try_remove();
            if self.dirs.is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for dir in &self.dirs {
            tracing::warn!(cgroup = %dir.display(), "a step's processes outlived SIGKILL; the cgroup is left for the next startup");
        }
        self.dirs.clear();
    }

    /// One pass: kill what is inside, remove the directories that are empty.
    fn try_remove(&mut self) {
        self.procs.clear();
        self.dirs.retain(|dir| {
            kill_members(dir);
            std::fs::remove_dir(dir).is_err() && dir.exists()
        });
    }
}

impl Drop for StepCgroup {
    fn drop(&mut self) {
        self.try_remove();
    }
}

/// In a forked child before exec: moves the calling process into each
/// cgroup whose `cgroup.procs` is open at `fds`. Only async-signal-safe
/// calls (`write`).
pub fn place_self(fds: &[RawFd]) -> std::io::Result<()> {
    for fd in fds {
        // SAFETY: writing a 1-byte buffer to an open descriptor.
        if unsafe { libc::write(*fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Makes greenlight (and the Redis it starts, which inherits it) the last
/// choice of the kernel's out-of-memory killer when the whole machine runs
/// short; steps raise their own score back (see the sandbox). Only root
/// may lower it; otherwise this does nothing.
pub fn protect_service() {
    match std::fs::OpenOptions::new().write(true).open("/proc/self/oom_score_adj").and_then(|mut f| f.write_all(b"-900")) {
        Ok(()) => tracing::debug!("oom_score_adj set to -900"),
        Err(e) => tracing::debug!(error = %e, "cannot lower oom_score_adj (not root)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_operators_write_them() {
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("4g"), Some(4 << 30));
        assert_eq!(parse_size("4GiB"), Some(4 << 30));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("12q"), None);
    }

    #[test]
    fn limits_read_as_people_write_them() {
        assert_eq!(human_bytes(512 << 20), "512 MiB");
        assert_eq!(human_bytes(4 << 30), "4 GiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn keyed_files_yield_their_counters() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(keyed(v1, "oom_kill"), 2);
        let v2 = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 1\n";
        assert_eq!(keyed(v2, "oom_kill"), 1);
        assert_eq!(keyed(v2, "missing"), 0);
    }
}
