//! How stages run: the sandbox, leases, shutdown grace, log limits.

use super::{ConfigError, config_error};
use crate::runner::limits::{StepLimits, parse_size};
use crate::runner::network::NetworkSettings;
use clap::Args;

/// `GREENLIGHT_CACHE_MB`'s default, 10 GiB: the caches and mirrors of a
/// few large repositories (a Rust `target/` is often 2 to 5 GB) without
/// filling a typical CI machine's disk.
pub const DEFAULT_CACHE_MB: u64 = 10240;

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
    /// `on` (per-step cgroup limits; greenlight refuses to start without
    /// them) or `off` (no limits; every check run then says so).
    #[arg(long, env = "GREENLIGHT_STEP_LIMITS", default_value = "on")]
    pub step_limits: String,
    /// Memory per step, swap included: `512m`, `4g`, …
    #[arg(long, env = "GREENLIGHT_STEP_MEMORY", default_value = "4g")]
    pub step_memory: String,
    /// Processes (and threads) per step at once.
    #[arg(long, env = "GREENLIGHT_STEP_PIDS", default_value = "1024")]
    pub step_pids: String,
    /// CPU per step in cores (`1.5`); unset: all of the machine, shared
    /// fairly with concurrent steps.
    #[arg(long, env = "GREENLIGHT_STEP_CPUS")]
    pub step_cpus: Option<String>,
    /// Steps' network: `isolated` (a namespace per stage with outbound
    /// access; the worker's loopback, its addresses and link-local
    /// addresses unreachable), `host` (the worker's network) or `none`.
    #[arg(long, env = "GREENLIGHT_STEP_NETWORK", default_value = "isolated")]
    pub step_network: String,
    /// More destinations steps may not reach in `isolated`: CIDRs or
    /// addresses, separated by commas or spaces.
    #[arg(long, env = "GREENLIGHT_STEP_DENY", default_value = "")]
    pub step_deny: String,
    /// The longest step timeout a pipeline gets (`90s`, `30m`, `2h`); a
    /// pipeline asking more gets this, and its check run says so.
    #[arg(long, env = "GREENLIGHT_MAX_STEP_TIMEOUT", default_value = "2h")]
    pub max_step_timeout: String,
    /// Size cap of a stage's workspace, in MiB; a write past it fails with
    /// "No space left on device". `0` turns the cap off (every check run then says so).
    #[arg(long, env = "GREENLIGHT_WORKSPACE_MB", default_value = "10240")]
    pub workspace_mb: String,
    /// Size cap of the worker's local caches and warm-clone mirrors
    /// together, in MiB; the least recently used caches are removed past it.
    #[arg(long, env = "GREENLIGHT_CACHE_MB", default_value_t = DEFAULT_CACHE_MB.to_string())]
    pub cache_mb: String,
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
    /// Per-step limits; `None` when `GREENLIGHT_STEP_LIMITS=off`.
    pub limits: Option<StepLimits>,
    /// Steps' network (`GREENLIGHT_STEP_NETWORK`, `GREENLIGHT_STEP_DENY`).
    pub network: NetworkSettings,
    /// The cap on a pipeline's `step_timeout` (`GREENLIGHT_MAX_STEP_TIMEOUT`,
    /// default [`crate::pipeline::DEFAULT_MAX_STEP_TIMEOUT`]).
    pub max_step_timeout: std::time::Duration,
    /// Size cap of a stage's workspace in bytes; `None` (`GREENLIGHT_WORKSPACE_MB=0`): uncapped.
    pub workspace_cap: Option<u64>,
    /// Size cap in bytes of the local caches and mirrors (`GREENLIGHT_CACHE_MB`).
    pub cache_cap: u64,
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
            limits: self.limits()?,
            max_step_timeout: crate::pipeline::parse_duration(&self.max_step_timeout).ok_or_else(|| {
                config_error(
                    "GREENLIGHT_MAX_STEP_TIMEOUT",
                    format!("must be a duration such as 90s, 30m or 2h, got {:?}", self.max_step_timeout),
                )
            })?,
            network: NetworkSettings::parse(&self.step_network, &self.step_deny).map_err(|message| {
                // The message names its variable first: report it under that name, once.
                let variable = if message.starts_with("GREENLIGHT_STEP_DENY") { "GREENLIGHT_STEP_DENY" } else { "GREENLIGHT_STEP_NETWORK" };
                let problem = message.strip_prefix(variable).unwrap_or(&message).trim_start_matches([':', ' ']);
                config_error(variable, problem.to_string())
            })?,
            workspace_cap: workspace_cap(&self.workspace_mb)?,
            cache_cap: positive("GREENLIGHT_CACHE_MB", &self.cache_mb, "MiB")? * 1024 * 1024,
        })
    }

    /// The per-step limits, or `None` when they are off.
    fn limits(&self) -> Result<Option<StepLimits>, ConfigError> {
        match self.step_limits.trim() {
            "on" => {}
            "off" => return Ok(None),
            other => return Err(config_error("GREENLIGHT_STEP_LIMITS", format!("must be `on` or `off`, got {other:?}"))),
        }
        let memory = parse_size(&self.step_memory).filter(|m| *m >= 16 * 1024 * 1024).ok_or_else(|| {
            config_error("GREENLIGHT_STEP_MEMORY", format!("must be a size of at least 16m, like 512m or 4g, got {:?}", self.step_memory))
        })?;
        let pids = positive("GREENLIGHT_STEP_PIDS", &self.step_pids, "processes")?;
        let cpus =
            match self.step_cpus.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                None => None,
                Some(raw) => Some(raw.parse::<f64>().ok().filter(|c| c.is_finite() && *c >= 0.01).ok_or_else(|| {
                    config_error("GREENLIGHT_STEP_CPUS", format!("must be a number of cores such as 1 or 1.5, got {raw:?}"))
                })?),
            };
        Ok(Some(StepLimits { memory, pids, cpus }))
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
            step_limits: "on".into(),
            step_memory: "4g".into(),
            step_pids: "1024".into(),
            step_cpus: None,
            step_network: "isolated".into(),
            step_deny: String::new(),
            max_step_timeout: "2h".into(),
            workspace_mb: raw.into(),
            cache_mb: "10240".into(),
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
