//! Command line and environment settings, validated into typed configuration.
//!
//! Every setting is an environment variable and a flag. Problems are reported
//! as one line naming the variable (exit code 2, no backtrace); secret values
//! are held in `secrecy` types and never echoed, not even by `--help`.

use clap::{Args, Parser, Subcommand};
use octocrab::jsonwebtoken::EncodingKey;
use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::path::PathBuf;

mod log_store;
mod retention;
mod runner;
mod tools;

pub use log_store::{LogStoreArgs, LogStoreConfig, S3Config};
pub use retention::{DEFAULT_KEEP_BUILDS, DEFAULT_KEEP_DAYS, MAX_KEEP_DAYS, RetentionArgs, RetentionConfig};
pub use runner::{RunnerArgs, RunnerConfig};
pub use tools::{BuildAction, BuildArgs, BuildCreate, ExecArgs, SecretAction, SecretArgs};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "greenlight",
    version,
    about = "A self-hosted CI service shipped as a GitHub App: runs .drone.yml exec pipelines in sandboxes and reports back as commit statuses and check runs."
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// What greenlight is asked to do: one role of the service, or a one-shot command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive webhooks, plan builds and run them: the whole service in one process.
    /// With --no-worker it only receives and plans; run `greenlight worker` elsewhere.
    Serve(ServeArgs),
    /// Run stages claimed from the shared Redis; start any number, on any machine.
    Worker(WorkerArgs),
    /// Manage repository secrets (values are read from standard input, never from arguments).
    Secret(SecretArgs),
    /// Start a build through a greenlight's API (`build create OWNER/NAME --branch B [--param K=V]`).
    Build(BuildArgs),
    /// Run the .drone.yml of a local checkout in the same sandbox, printing
    /// the logs live: no GitHub, no Redis. Exits 1 when the pipeline fails.
    Exec(ExecArgs),
}

/// Settings of `greenlight serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Receive and plan only; leave running the stages to `greenlight worker` processes.
    #[arg(long)]
    pub no_worker: bool,
    /// GitHub settings.
    #[command(flatten)]
    pub github: GitHubArgs,
    /// Settings every role needs (Redis, public URL, data directory, concurrency, secret key).
    #[command(flatten)]
    pub common: CommonArgs,
    /// The webhook secret; a comma-separated list is accepted while rotating.
    #[arg(long, env = "GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub github_webhook_secret: Option<String>,
    /// Address the HTTP server listens on.
    #[arg(long, env = "GREENLIGHT_ADDR", default_value = "0.0.0.0:3000")]
    pub addr: String,
    /// Runner settings (used unless --no-worker).
    #[command(flatten)]
    pub runner: RunnerArgs,
    /// The admin token of the Drone API and build pages (private repositories,
    /// restart, cancel). Unset: only public repositories are readable.
    #[arg(long, env = "GREENLIGHT_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
}

/// Settings of `greenlight worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// GitHub settings.
    #[command(flatten)]
    pub github: GitHubArgs,
    /// Settings every role needs (Redis, public URL, data directory, concurrency, secret key).
    #[command(flatten)]
    pub common: CommonArgs,
    /// How stages run: sandbox, lease, grace, log limit.
    #[command(flatten)]
    pub runner: RunnerArgs,
}

/// How to reach GitHub as the App.
#[derive(Debug, Args)]
pub struct GitHubArgs {
    /// The GitHub App's numeric id.
    #[arg(long, env = "GITHUB_APP_ID")]
    pub github_app_id: Option<String>,
    /// The App's private key, as PEM text.
    #[arg(long, env = "GITHUB_PRIVATE_KEY", hide_env_values = true)]
    pub github_private_key: Option<String>,
    /// A file holding the App's private key (PEM), instead of GITHUB_PRIVATE_KEY.
    #[arg(long, env = "GITHUB_PRIVATE_KEY_PATH")]
    pub github_private_key_path: Option<PathBuf>,
    /// GitHub's REST API base; GitHub Enterprise Server is https://HOST/api/v3.
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: String,
}

/// Settings every long-running role shares.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Redis to share state through; unset, `serve` starts its own redis-server.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Base of the links greenlight puts on GitHub (build pages).
    #[arg(long, env = "GREENLIGHT_PUBLIC_URL", default_value = "http://localhost:3000")]
    pub public_url: String,
    /// Where workspaces and the embedded Redis live.
    #[arg(long, env = "GREENLIGHT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Stages run at once by this process (default: the number of CPUs).
    #[arg(long, env = "GREENLIGHT_CONCURRENCY")]
    pub concurrency: Option<String>,
    /// The key repository secrets are encrypted with: 32 bytes as 64 hex
    /// digits or base64. Unset: no secrets.
    #[arg(long, env = "GREENLIGHT_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Where finished step logs are kept.
    #[command(flatten)]
    pub log_store: LogStoreArgs,
    /// How much build history is kept.
    #[command(flatten)]
    pub retention: RetentionArgs,
}

/// A configuration problem: which variable, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong, without echoing a secret value.
    pub problem: String,
}

pub(crate) fn config_error(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { variable, problem: problem.into() }
}

/// The App's identity and where its API lives.
#[derive(Clone)]
pub struct GitHubConfig {
    /// The App's numeric id (the JWT's `iss`).
    pub app_id: u64,
    /// The App's RSA private key, parsed.
    pub key: EncodingKey,
    /// API base URL without a trailing slash.
    pub api_url: String,
}

impl std::fmt::Debug for GitHubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubConfig").field("app_id", &self.app_id).field("key", &"[redacted]").field("api_url", &self.api_url).finish()
    }
}

/// Settings shared by every role, validated.
#[derive(Debug, Clone)]
pub struct Common {
    /// Redis URL, or `None` to start an embedded redis-server.
    pub redis_url: Option<SecretString>,
    /// Base URL of the build pages, without a trailing slash.
    pub public_url: String,
    /// Where workspaces and the embedded Redis live (`GREENLIGHT_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Stages run at once per worker process.
    pub concurrency: usize,
    /// The key secrets are sealed with.
    pub secret_key: Option<crate::secrets::SecretKey>,
    /// Where finished step logs are kept (`GREENLIGHT_LOG_STORE`).
    pub log_store: LogStoreConfig,
    /// Which builds are kept (`GREENLIGHT_KEEP_BUILDS`, `GREENLIGHT_KEEP_DAYS`).
    pub retention: RetentionConfig,
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// GitHub App settings.
    pub github: GitHubConfig,
    /// Settings every role needs, validated.
    pub common: Common,
    /// Accepted webhook secrets (more than one while rotating).
    pub webhook_secrets: Vec<SecretString>,
    /// Where intake, the API and the pages listen (`GREENLIGHT_ADDR`).
    pub addr: SocketAddr,
    /// Whether this process also runs stages.
    pub run_workers: bool,
    /// How stages run.
    pub runner: RunnerConfig,
    /// The API's admin token.
    pub api_token: Option<SecretString>,
}

/// Everything `worker` needs, validated.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// GitHub App settings.
    pub github: GitHubConfig,
    /// Settings every role needs, validated.
    pub common: Common,
    /// How stages run.
    pub runner: RunnerConfig,
}

impl GitHubArgs {
    /// Validates the App id, key and API URL.
    pub fn validate(&self) -> Result<GitHubConfig, ConfigError> {
        let raw_id = self
            .github_app_id
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| config_error("GITHUB_APP_ID", "is not set (the App's numeric id, shown on its settings page)"))?;
        let app_id =
            raw_id.trim().parse::<u64>().map_err(|_| config_error("GITHUB_APP_ID", format!("must be a number, got {raw_id:?}")))?;
        let (variable, pem) = match (&self.github_private_key, &self.github_private_key_path) {
            (Some(pem), _) if !pem.trim().is_empty() => ("GITHUB_PRIVATE_KEY", SecretString::from(pem.clone())),
            (_, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| config_error("GITHUB_PRIVATE_KEY_PATH", format!("cannot read {}: {e}", path.display())))?;
                ("GITHUB_PRIVATE_KEY_PATH", SecretString::from(text))
            }
            _ => {
                return Err(config_error(
                    "GITHUB_PRIVATE_KEY",
                    "is not set (give the App's private key as PEM text, or a file with GITHUB_PRIVATE_KEY_PATH)",
                ));
            }
        };
        let key = EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes())
            .map_err(|_| config_error(variable, "is not an RSA private key in PEM form"))?;
        let api_url = validate_url("GITHUB_API_URL", &self.github_api_url)?;
        Ok(GitHubConfig { app_id, key, api_url })
    }
}

impl CommonArgs {
    /// Validates the shared settings.
    pub fn validate(&self) -> Result<Common, ConfigError> {
        let redis_url = match self.redis_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url)
                if url.starts_with("redis://")
                    || url.starts_with("rediss://")
                    || url.starts_with("unix://")
                    || url.starts_with("redis+unix://") =>
            {
                Some(SecretString::from(url.to_string()))
            }
            Some(_) => {
                return Err(config_error("REDIS_URL", "must start with redis://, rediss:// or unix://"));
            }
        };
        let public_url = validate_url("GREENLIGHT_PUBLIC_URL", &self.public_url)?;
        let concurrency = match self.concurrency.as_deref().map(str::trim) {
            None | Some("") => std::thread::available_parallelism().map_or(1, |n| n.get()),
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(config_error("GREENLIGHT_CONCURRENCY", format!("must be a whole number of at least 1, got {raw:?}")));
                }
            },
        };
        let secret_key = match self.secret_key.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => Some(
                crate::secrets::SecretKey::parse(&SecretString::from(raw.to_string()))
                    .map_err(|problem| config_error("GREENLIGHT_SECRET_KEY", problem))?,
            ),
        };
        let log_store = self.log_store.validate()?;
        let retention = self.retention.validate()?;
        Ok(Common { redis_url, public_url, data_dir: self.data_dir.clone(), concurrency, secret_key, log_store, retention })
    }
}

impl ServeArgs {
    /// Validates everything `serve` needs.
    pub fn validate(&self) -> Result<ServeConfig, ConfigError> {
        let github = self.github.validate()?;
        let secrets: Vec<SecretString> = self
            .github_webhook_secret
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| SecretString::from(s.to_string()))
            .collect();
        if secrets.is_empty() {
            return Err(config_error(
                "GITHUB_WEBHOOK_SECRET",
                "is not set (the App's webhook secret; a comma-separated list while rotating)",
            ));
        }
        let addr = self
            .addr
            .parse()
            .map_err(|_| config_error("GREENLIGHT_ADDR", format!("must be HOST:PORT such as 0.0.0.0:3000, got {:?}", self.addr)))?;
        Ok(ServeConfig {
            github,
            common: self.common.validate()?,
            webhook_secrets: secrets,
            addr,
            run_workers: !self.no_worker,
            runner: self.runner.validate()?,
            api_token: match self.api_token.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(t) if t.len() < 16 => {
                    return Err(config_error(
                        "GREENLIGHT_API_TOKEN",
                        "is too short: use at least 16 characters (e.g. `openssl rand -hex 32`)",
                    ));
                }
                Some(t) => Some(SecretString::from(t.to_string())),
            },
        })
    }
}

impl WorkerArgs {
    /// Validates everything `worker` needs.
    pub fn validate(&self) -> Result<WorkerConfig, ConfigError> {
        Ok(WorkerConfig { github: self.github.validate()?, common: self.common.validate()?, runner: self.runner.validate()? })
    }
}

fn validate_url(variable: &'static str, raw: &str) -> Result<String, ConfigError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let uri: http::Uri = trimmed.parse().map_err(|_| config_error(variable, format!("is not a URL: {raw:?}")))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(trimmed.to_string()),
        _ => Err(config_error(variable, format!("must be an http:// or https:// URL, got {raw:?}"))),
    }
}
