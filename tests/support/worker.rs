//! `greenlight worker` as a separate process, to kill it and see what survives.

use super::app::TestApp;
use super::fake_github::{APP_ID, FakeGitHub};
use std::process::{Child, Command, Stdio};

/// A worker process.
pub struct WorkerProcess {
    child: Child,
    data: std::sync::Arc<tempfile::TempDir>,
    workspace_mb: u64,
}

impl WorkerProcess {
    /// Starts `greenlight worker` on the app's Redis, with a 2 s stage lease,
    /// the given shutdown grace and workspaces capped at `workspace_mb` MiB (0: uncapped).
    pub fn start(github: &FakeGitHub, app: &TestApp, grace_secs: u64, workspace_mb: u64) -> Self {
        let data = tempfile::tempdir().unwrap();
        std::fs::set_permissions(data.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        Self::start_in(github, app, grace_secs, std::sync::Arc::new(data), workspace_mb)
    }

    /// Starts a worker on the data directory another (stopped) worker used.
    pub fn start_in(
        github: &FakeGitHub,
        app: &TestApp,
        grace_secs: u64,
        data: std::sync::Arc<tempfile::TempDir>,
        workspace_mb: u64,
    ) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_greenlight"))
            .arg("worker")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GITHUB_APP_ID", APP_ID.to_string())
            .env("GITHUB_PRIVATE_KEY_PATH", concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/test-app-key.pem"))
            .env("GITHUB_API_URL", github.api_url())
            .env("REDIS_URL", app.redis.url())
            .env("GREENLIGHT_PUBLIC_URL", super::app::PUBLIC_URL)
            .env("GREENLIGHT_DATA_DIR", data.path())
            .env("GREENLIGHT_STAGE_LEASE", "2")
            .env("GREENLIGHT_SHUTDOWN_GRACE", grace_secs.to_string())
            .env("GREENLIGHT_CONCURRENCY", "2")
            .env("GREENLIGHT_WORKSPACE_MB", workspace_mb.to_string())
            .env("RUST_LOG", "greenlight=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("greenlight worker starts");
        Self { child, data, workspace_mb }
    }

    /// Its workspace cap in MiB (0: uncapped).
    pub fn workspace_mb(&self) -> u64 {
        self.workspace_mb
    }

    /// Its data directory, to start another worker on it.
    pub fn data(&self) -> std::sync::Arc<tempfile::TempDir> {
        self.data.clone()
    }

    /// Where its stage workspaces are.
    pub fn workspaces(&self) -> std::path::PathBuf {
        self.data.path().join("workspaces")
    }

    /// A pipeline whose step blocks while this worker runs it and finishes
    /// at once on any other: its consumer name (`DRONE_STAGE_MACHINE`)
    /// carries its pid. A test that stops this worker mid-stage then never
    /// races the step's own end, however slow the machine.
    pub fn pipeline_stuck_here(&self) -> String {
        format!(
            "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: slow\n  commands:\n  - 'case \"$DRONE_STAGE_MACHINE\" in *-{}-*) sleep 600 ;; esac'\n  - echo finished\n",
            self.child.id()
        )
    }

    /// SIGKILL: the worker dies mid-whatever.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
        // A killed worker's capped workspaces stay mounted until a sweep.
        super::app::unmount_under(self.data.path());
    }
}
