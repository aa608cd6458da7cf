//! The test harness: a fake GitHub, a private Redis, webhook builders and
//! greenlight itself, so tests read as scenarios.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod clock;
pub mod drone;
pub mod drone08;
pub mod fake_github;
pub mod metrics;
pub mod nethost;
pub mod redis;
pub mod s3;
pub mod scenario;
pub mod setup;
pub mod stepper;
pub mod vm;
pub mod wait;
pub mod warm;
pub mod webhook;
pub mod worker;

pub use app::TestApp;
pub use fake_github::{CheckRunState, Endpoint, FakeGitHub, RepoHandle, StatusState};
pub use scenario::{BuildCommit, Ctx, LogPlace, Scenario, Sha};
pub use webhook::Webhook;

/// A one-step exec pipeline.
pub const ONE_ECHO_STEP: &str = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: greet\n  commands:\n  - echo ok\n";

/// Whether any process's command line contains `needle` (to see that a step's processes are gone).
pub fn processes_running(needle: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline")).is_ok_and(|cmd| String::from_utf8_lossy(&cmd).replace('\0', " ").contains(needle))
    })
}

/// The pids of the processes whose command line contains `needle` (as `ps` would list them).
pub fn processes_with(needle: &str) -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").unwrap().flatten();
    let with = |entry: &std::fs::DirEntry| {
        std::fs::read(entry.path().join("cmdline")).is_ok_and(|cmd| String::from_utf8_lossy(&cmd).replace('\0', " ").contains(needle))
    };
    entries.filter(with).filter_map(|entry| entry.file_name().to_str()?.parse().ok()).collect()
}

/// Waits until a process whose command line contains `needle` runs (a
/// step's, seen from the host); returns its pid.
pub async fn expect_process(needle: &str) -> u32 {
    wait::until(&format!("a process running {needle:?}"), || async { processes_with(needle).first().copied() }).await
}

/// The step cgroups (greenlight's, named under `greenlight-<pid>`) process
/// `pid` is in, as directories under `/sys/fs/cgroup`.
pub fn step_cgroups_of(pid: u32) -> Vec<std::path::PathBuf> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let pure_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    table
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            if !path.contains("/greenlight-") {
                return None;
            }
            let mount = match controllers.split(',').next() {
                Some("") if pure_v2 => String::new(),
                Some("") => "/unified".to_string(),
                Some(first) => format!("/{first}"),
                None => return None,
            };
            Some(std::path::PathBuf::from(format!("/sys/fs/cgroup{mount}{path}")))
        })
        .collect()
}

/// Leaves an empty file `name` in the working directory of process `pid`
/// (a step's workspace, seen from the host): a signal a step can wait for.
pub fn leave_file_beside(pid: u32, name: &str) {
    std::fs::write(format!("/proc/{pid}/cwd/{name}"), b"").unwrap_or_else(|e| panic!("writing {name} beside process {pid}: {e}"));
}
