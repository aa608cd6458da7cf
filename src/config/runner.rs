//! How stages run: the sandbox, leases, shutdown grace, log limits.

use super::{ConfigError, config_error};
use clap::Args;

/// How stages are run.
#[derive(Debug, Args)]
pub struct RunnerArgs {
    /// How steps are isolated: `bwrap` (bubblewrap namespaces), or `none` to
    /// run them unsandboxed (every check run then says so).
    #[arg(long, env = "GREENLIGHT_SANDBOX", default_value = "bwrap")]
    pub sandbox: String,
    /// The uid steps run as when greenlight runs as root (default 65534).
    #[arg(long, env = "GREENLIGHT_SANDBOX_UID")]
    pub sandbox_uid: Option<String>,
    /// Seconds a stage's worker may stop renewing it before another worker takes it over.
    #[arg(long, env = "GREENLIGHT_STAGE_LEASE", default_value = "30")]
    pub stage_lease: String,
    /// Seconds running stages get to finish after SIGTERM before they are handed back to the queue.
    #[arg(long, env = "GREENLIGHT_SHUTDOWN_GRACE", default_value = "60")]
    pub shutdown_grace: String,
    /// Stored log per step, in MiB; output past it is drained, not stored.
    #[arg(long, env = "GREENLIGHT_LOG_LIMIT_MB", default_value = "16")]
    pub log_limit_mb: String,
    /// Size cap of a stage's workspace, in MiB; a write past it fails with
    /// "No space left on device". `0` turns the cap off (every check run then says so).
    #[arg(long, env = "GREENLIGHT_WORKSPACE_MB", default_value = "10240")]
    pub workspace_mb: String,
}

/// Runner settings, validated.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Run steps without a sandbox (`GREENLIGHT_SANDBOX=none`); check runs say so.
    pub unsandboxed: bool,
    /// The uid steps run as when greenlight runs as root; `None` means 65534.
    pub sandbox_uid: Option<u32>,
    /// How long a stage's worker may go without renewing its claim before
    /// another worker takes the stage over.
    pub lease: std::time::Duration,
    /// How long running stages may finish after SIGTERM before they are
    /// handed back to the queue.
    pub grace: std::time::Duration,
    /// Stored log bytes per step; output past it is drained, not stored.
    pub log_limit: u64,
    /// Size cap of a stage's workspace in bytes; `None` (`GREENLIGHT_WORKSPACE_MB=0`): uncapped.
    pub workspace_cap: Option<u64>,
}

fn positive(variable: &'static str, raw: &str, what: &str) -> Result<u64, ConfigError> {
    match raw.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(config_error(variable, format!("must be a whole number of {what}, at least 1, got {raw:?}"))),
    }
}

/// `GREENLIGHT_WORKSPACE_MB` in bytes: `0` is no cap, anything else at
/// least [`MIN_CAP_MB`](crate::runner::workspace::MIN_CAP_MB).
fn workspace_cap(raw: &str) -> Result<Option<u64>, ConfigError> {
    use crate::runner::workspace::MIN_CAP_MB;
    let problem = || {
        config_error(
            "GREENLIGHT_WORKSPACE_MB",
            format!("must be a whole number of MiB, at least {MIN_CAP_MB}, or 0 for no cap, got {raw:?}"),
        )
    };
    match raw.trim().parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(mb) if mb >= MIN_CAP_MB => mb.checked_mul(1024 * 1024).map(Some).ok_or_else(problem),
        _ => Err(problem()),
    }
}

impl RunnerArgs {
    /// Validates the runner settings.
    pub fn validate(&self) -> Result<RunnerConfig, ConfigError> {
        let unsandboxed = match self.sandbox.trim() {
            "bwrap" => false,
            "none" => true,
            other => {
                return Err(config_error("GREENLIGHT_SANDBOX", format!("must be `bwrap` or `none`, got {other:?}")));
            }
        };
        let sandbox_uid = match self.sandbox_uid.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => Some(
                raw.parse::<u32>()
                    .ok()
                    .filter(|u| *u != 0)
                    .ok_or_else(|| config_error("GREENLIGHT_SANDBOX_UID", format!("must be a non-root numeric uid, got {raw:?}")))?,
            ),
        };
        Ok(RunnerConfig {
            unsandboxed,
            sandbox_uid,
            lease: std::time::Duration::from_secs(positive("GREENLIGHT_STAGE_LEASE", &self.stage_lease, "seconds")?),
            grace: std::time::Duration::from_secs(positive("GREENLIGHT_SHUTDOWN_GRACE", &self.shutdown_grace, "seconds")?),
            log_limit: positive("GREENLIGHT_LOG_LIMIT_MB", &self.log_limit_mb, "MiB")? * 1024 * 1024,
            workspace_cap: workspace_cap(&self.workspace_mb)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_workspace_mb(raw: &str) -> Result<RunnerConfig, ConfigError> {
        RunnerArgs {
            sandbox: "bwrap".into(),
            sandbox_uid: None,
            stage_lease: "30".into(),
            shutdown_grace: "60".into(),
            log_limit_mb: "16".into(),
            workspace_mb: raw.into(),
        }
        .validate()
    }

    #[test]
    fn the_workspace_cap_is_mib_or_zero_for_none() {
        assert_eq!(with_workspace_mb("10240").unwrap().workspace_cap, Some(10240 * 1024 * 1024));
        assert_eq!(with_workspace_mb(" 64 ").unwrap().workspace_cap, Some(64 << 20));
        assert_eq!(with_workspace_mb("0").unwrap().workspace_cap, None);
        for bad in ["", "-1", "1.5", "ten", "15", "18446744073709551615"] {
            let e = with_workspace_mb(bad).unwrap_err();
            assert_eq!(e.variable, "GREENLIGHT_WORKSPACE_MB", "{bad:?}");
            assert!(e.to_string().contains("or 0 for no cap"), "{e}");
        }
    }
}
