//! How a worker behaves: its own module so that the worker loop and the
//! stage runner both read it without importing each other.

use std::path::PathBuf;
use std::time::Duration;

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Stages run at once (`GREENLIGHT_CONCURRENCY`).
    pub concurrency: usize,
    /// Where workspaces live (`GREENLIGHT_DATA_DIR/workspaces`).
    pub data_dir: PathBuf,
    /// A stage whose worker stops renewing for this long is taken over (`GREENLIGHT_STAGE_LEASE`).
    pub lease: Duration,
    /// On SIGTERM, running stages get this long to finish before they are handed back.
    pub grace: Duration,
    /// Stored log bytes per step; the rest is drained, not stored.
    pub log_limit: u64,
    /// The longest step timeout a pipeline gets (`GREENLIGHT_MAX_STEP_TIMEOUT`).
    pub max_step_timeout: Duration,
    /// Size cap of a stage's workspace in bytes (`GREENLIGHT_WORKSPACE_MB`); `None`: uncapped.
    pub workspace_cap: Option<u64>,
    /// Size cap in bytes of the local caches and mirrors (`GREENLIGHT_CACHE_MB`).
    pub cache_cap: u64,
}
