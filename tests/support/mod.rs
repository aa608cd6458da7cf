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
