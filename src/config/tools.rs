//! The settings of the one-shot commands: `greenlight exec` and `greenlight secret`.

use super::{ConfigError, RunnerArgs, config_error};
use clap::{Args, Subcommand};
use secrecy::SecretString;
use std::path::PathBuf;

/// Settings of `greenlight secret`.
#[derive(Debug, Args)]
pub struct SecretArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: SecretAction,
    /// Redis the service uses.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// The key secrets are encrypted with (as the service has it).
    #[arg(long, env = "GREENLIGHT_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// The service's data directory, whose settings file holds a generated key.
    #[arg(long, env = "GREENLIGHT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

/// `greenlight secret` actions.
#[derive(Debug, Subcommand)]
pub enum SecretAction {
    /// Create or replace a secret; its value is read from standard input.
    Add {
        /// `owner/name` of the repository.
        repo: String,
        /// The secret's name (`from_secret: NAME`).
        name: String,
        /// Also give it to pull requests from the repository itself (never to forks).
        #[arg(long)]
        pull_request: bool,
    },
    /// List a repository's secrets (names and settings, never values).
    Ls {
        /// `owner/name` of the repository.
        repo: String,
    },
    /// Delete a secret.
    Rm {
        /// `owner/name` of the repository.
        repo: String,
        /// The secret's name.
        name: String,
    },
}

impl SecretArgs {
    /// The Redis URL and key, validated.
    pub fn validate(&self) -> Result<(String, crate::secrets::SecretKey), ConfigError> {
        let url = self
            .redis_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| config_error("REDIS_URL", "is not set (the Redis greenlight serve uses)"))?;
        let stored = super::stored::load(&self.data_dir)?;
        let raw = super::given_or_stored(&self.secret_key, &stored.secret_key).ok_or_else(|| {
            config_error("GREENLIGHT_SECRET_KEY", format!("is not set, nor kept in {}", super::stored::path(&self.data_dir).display()))
        })?;
        let key =
            crate::secrets::SecretKey::parse(&SecretString::from(raw.to_string())).map_err(|p| config_error("GREENLIGHT_SECRET_KEY", p))?;
        Ok((url.to_string(), key))
    }
}

/// Settings of `greenlight exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The checkout whose .drone.yml to run.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Run only this pipeline (default: every pipeline whose trigger matches).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// The event to pretend: push, pull_request, tag or merge_group.
    #[arg(long, default_value = "push")]
    pub event: String,
    /// The branch to pretend (default: the checkout's current branch).
    #[arg(long)]
    pub branch: Option<String>,
    /// `bwrap`, or `none` to run unsandboxed.
    #[arg(long, env = "GREENLIGHT_SANDBOX", default_value = "bwrap")]
    pub sandbox: String,
    /// The uid steps run as when run as root (default 65534).
    #[arg(long, env = "GREENLIGHT_SANDBOX_UID")]
    pub sandbox_uid: Option<String>,
}

impl ExecArgs {
    /// Validates the settings.
    pub fn validate(&self) -> Result<crate::exec::ExecOptions, ConfigError> {
        let runner = RunnerArgs {
            sandbox: self.sandbox.clone(),
            sandbox_uid: self.sandbox_uid.clone(),
            stage_lease: "1".into(),
            shutdown_grace: "1".into(),
            log_limit_mb: "1".into(),
            step_limits: "off".into(),
            step_memory: String::new(),
            step_pids: String::new(),
            step_cpus: None,
            step_network: "host".into(),
            step_deny: String::new(),
            // `greenlight exec` runs the developer's own file: no cap.
            max_step_timeout: "9999h".into(),
            workspace_mb: "0".into(),
        }
        .validate()?;
        Ok(crate::exec::ExecOptions {
            dir: self.dir.clone(),
            pipeline: self.pipeline.clone(),
            event: self.event.clone(),
            branch: self.branch.clone(),
            unsandboxed: runner.unsandboxed,
            sandbox_uid: runner.sandbox_uid,
        })
    }
}
