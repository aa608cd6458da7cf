//! The settings of the one-shot commands: `greenlight exec`, `greenlight secret` and `greenlight build`.

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

/// A setting a command cannot do without, trimmed; `problem` names what is missing.
fn required<'a>(value: &'a Option<String>, variable: &'static str, problem: &str) -> Result<&'a str, ConfigError> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).ok_or_else(|| config_error(variable, problem))
}

impl SecretArgs {
    /// The Redis URL and key, validated.
    pub fn validate(&self) -> Result<(String, crate::secrets::SecretKey), ConfigError> {
        let url = required(&self.redis_url, "REDIS_URL", "is not set (the Redis greenlight serve uses)")?;
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
            cache_mb: "1".into(),
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

/// Settings of `greenlight build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: BuildAction,
    /// The greenlight to ask (its `GREENLIGHT_PUBLIC_URL`).
    #[arg(long, env = "GREENLIGHT_SERVER", default_value = "http://localhost:3000")]
    pub server: String,
    /// The admin token of its API (set it in the environment: never on the command line).
    #[arg(long, env = "GREENLIGHT_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
}

/// `greenlight build` actions.
#[derive(Debug, Subcommand)]
pub enum BuildAction {
    /// Start a build of a branch (event `custom`), as `drone build create` does.
    Create {
        /// `owner/name` of the repository.
        repo: String,
        /// The branch to build (default: the repository's default branch).
        #[arg(long)]
        branch: Option<String>,
        /// A full sha on the branch to build instead of its head.
        #[arg(long)]
        commit: Option<String>,
        /// `KEY=VALUE`, given to the steps as an environment variable (repeatable).
        #[arg(long = "param", short = 'p')]
        params: Vec<String>,
    },
}

/// A validated `greenlight build create`.
#[derive(Debug)]
pub struct BuildCreate {
    /// The API's base URL, without a trailing slash.
    pub server: String,
    /// The admin token.
    pub token: SecretString,
    /// `owner`, `name`.
    pub repo: (String, String),
    /// The query: `branch`, `commit` and the parameters.
    pub query: Vec<(String, String)>,
}

impl BuildArgs {
    /// The request `greenlight build create` sends, validated.
    pub fn validate(&self) -> Result<BuildCreate, ConfigError> {
        let server = self.server.trim().trim_end_matches('/').to_string();
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(config_error("GREENLIGHT_SERVER", "must be an http:// or https:// URL"));
        }
        let token = required(&self.api_token, "GREENLIGHT_API_TOKEN", "is not set (the admin token of the server's API)")?;
        let BuildAction::Create { repo, branch, commit, params } = &self.action;
        let Some((owner, name)) = repo.split_once('/').filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/')) else {
            return Err(config_error("REPO", format!("must be owner/name, got {repo:?}")));
        };
        let mut query: Vec<(String, String)> = Vec::new();
        query.extend(branch.iter().map(|b| ("branch".to_string(), b.clone())));
        query.extend(commit.iter().map(|c| ("commit".to_string(), c.clone())));
        for param in params {
            let Some((key, value)) = param.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                return Err(config_error("--param", format!("must be KEY=VALUE, got {param:?}")));
            };
            query.push((key.to_string(), value.to_string()));
        }
        let repo = (owner.to_string(), name.to_string());
        Ok(BuildCreate { server, token: SecretString::from(token.to_string()), repo, query })
    }
}
