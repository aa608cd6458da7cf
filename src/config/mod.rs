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
pub mod report;
mod retention;
mod runner;
pub mod stored;
mod tools;

pub use log_store::{LogStoreArgs, LogStoreConfig, S3Config};
pub use retention::{DEFAULT_KEEP_BUILDS, DEFAULT_KEEP_DAYS, MAX_KEEP_DAYS, RetentionArgs, RetentionConfig};
pub use runner::{DEFAULT_CACHE_MB, RunnerArgs, RunnerConfig};
pub use stored::StoredSettings;
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
    /// How log lines are written to standard error: `text`, or `json` (one
    /// JSON object a line, for log collectors).
    #[arg(long, env = "GREENLIGHT_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line (tracing-subscriber's JSON format).
    Json,
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
    /// Print every setting of `serve`: its variable, where its value comes
    /// from (flag, variable, file, default) and the value, secrets hidden.
    Config(ServeArgs),
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
    /// Seconds between reads of the App's delivery log, which take in the
    /// deliveries GitHub could not deliver; `off` turns them off.
    #[arg(long, env = "GREENLIGHT_DELIVERY_POLL", default_value = "30")]
    pub delivery_poll: String,
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

/// The GitHub App `serve` acts as, or none yet.
#[derive(Debug, Clone)]
pub enum AppSetup {
    /// Registered: its identity and the webhook secrets it signs with.
    Configured {
        /// GitHub App settings.
        github: GitHubConfig,
        /// Accepted webhook secrets (more than one while rotating).
        webhook_secrets: Vec<SecretString>,
    },
    /// Nothing set anywhere: `serve` offers the setup page, which registers
    /// an App on the GitHub whose API is at `api_url`.
    Unconfigured {
        /// GitHub's REST API base, without a trailing slash.
        api_url: String,
    },
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The App, or the setup page until there is one.
    pub app: AppSetup,
    /// Settings every role needs, validated.
    pub common: Common,
    /// Where intake, the API and the pages listen (`GREENLIGHT_ADDR`).
    pub addr: SocketAddr,
    /// Whether this process also runs stages.
    pub run_workers: bool,
    /// How stages run.
    pub runner: RunnerConfig,
    /// The API's admin token.
    pub api_token: Option<SecretString>,
    /// How often the App's delivery log is read (`None`: never).
    pub delivery_poll: Option<std::time::Duration>,
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
    /// Validates the App id, key and API URL, from flags and variables first,
    /// then from the data directory's settings file; `None` when neither
    /// names an App at all (the setup page's case).
    pub fn resolve(&self, stored: &StoredSettings) -> Result<Option<GitHubConfig>, ConfigError> {
        let api_url = validate_url("GITHUB_API_URL", &self.github_api_url)?;
        let given_id = self.github_app_id.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let app_id = match (given_id, stored.app_id) {
            (Some(raw), _) => raw.parse::<u64>().map_err(|_| config_error("GITHUB_APP_ID", format!("must be a number, got {raw:?}")))?,
            (None, Some(id)) => id,
            (None, None) if self.private_key_given() => {
                return Err(config_error("GITHUB_APP_ID", "is not set (the App's numeric id, shown on its settings page)"));
            }
            (None, None) => return Ok(None),
        };
        let (variable, pem) = match (&self.github_private_key, &self.github_private_key_path, &stored.private_key) {
            (Some(pem), _, _) if !pem.trim().is_empty() => ("GITHUB_PRIVATE_KEY", SecretString::from(pem.clone())),
            (_, Some(path), _) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| config_error("GITHUB_PRIVATE_KEY_PATH", format!("cannot read {}: {e}", path.display())))?;
                ("GITHUB_PRIVATE_KEY_PATH", SecretString::from(text))
            }
            (_, _, Some(pem)) => ("GREENLIGHT_DATA_DIR", SecretString::from(pem.clone())),
            _ => {
                return Err(config_error(
                    "GITHUB_PRIVATE_KEY",
                    "is not set (give the App's private key as PEM text, or a file with GITHUB_PRIVATE_KEY_PATH)",
                ));
            }
        };
        let key = EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes())
            .map_err(|_| config_error(variable, "is not an RSA private key in PEM form"))?;
        Ok(Some(GitHubConfig { app_id, key, api_url }))
    }

    /// Validates the App settings, which must name an App.
    pub fn validate(&self, stored: &StoredSettings) -> Result<GitHubConfig, ConfigError> {
        self.resolve(stored)?.ok_or_else(|| {
            config_error("GITHUB_APP_ID", "is not set (the App's numeric id, shown on its settings page; `greenlight serve` sets one up)")
        })
    }

    fn private_key_given(&self) -> bool {
        self.github_private_key.as_deref().is_some_and(|k| !k.trim().is_empty()) || self.github_private_key_path.is_some()
    }
}

/// A setting's value from its flag or variable, else from the settings file.
fn given_or_stored<'a>(given: &'a Option<String>, stored: &'a Option<String>) -> Option<&'a str> {
    given.as_deref().map(str::trim).filter(|s| !s.is_empty()).or(stored.as_deref())
}

impl CommonArgs {
    /// Validates the shared settings (the secret key may come from the
    /// settings file).
    pub fn validate(&self, stored: &StoredSettings) -> Result<Common, ConfigError> {
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
        let secret_key = match given_or_stored(&self.secret_key, &stored.secret_key) {
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

    /// Whether this is a single machine: `serve` starts its own Redis, so no
    /// other process can share state with it (and generated secrets are safe).
    pub fn single_machine(&self) -> bool {
        self.redis_url.as_deref().is_none_or(|u| u.trim().is_empty())
    }
}

/// What a first start generated and kept in the settings file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Generated {
    /// `GREENLIGHT_SECRET_KEY` was generated.
    pub secret_key: bool,
    /// `GREENLIGHT_API_TOKEN` was generated.
    pub api_token: bool,
    /// Where they are kept.
    pub file: PathBuf,
}

impl ServeArgs {
    /// On a single machine's first start, generates the secret key and the
    /// API token that are set nowhere, and keeps them in the settings file
    /// (so they survive restarts). With a shared Redis it generates nothing:
    /// every process must have the same values, so they are the operator's to set.
    pub fn prepare(&self) -> Result<Option<Generated>, ConfigError> {
        if !self.common.single_machine() {
            return Ok(None);
        }
        let mut stored = stored::load(&self.common.data_dir)?;
        let mut generated = Generated { file: stored::path(&self.common.data_dir), ..Default::default() };
        if given_or_stored(&self.common.secret_key, &stored.secret_key).is_none() {
            stored.secret_key = Some(stored::random_secret());
            generated.secret_key = true;
        }
        if given_or_stored(&self.api_token, &stored.api_token).is_none() {
            stored.api_token = Some(stored::random_secret());
            generated.api_token = true;
        }
        if !generated.secret_key && !generated.api_token {
            return Ok(None);
        }
        stored::save(&self.common.data_dir, &stored)
            .map_err(|e| config_error("GREENLIGHT_DATA_DIR", format!("cannot write {}: {e}", generated.file.display())))?;
        Ok(Some(generated))
    }

    /// Validates everything `serve` needs; an App set nowhere is not an
    /// error but the setup page's cue.
    pub fn validate(&self) -> Result<ServeConfig, ConfigError> {
        let stored = stored::load(&self.common.data_dir)?;
        let secrets: Vec<SecretString> = given_or_stored(&self.github_webhook_secret, &stored.webhook_secret)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| SecretString::from(s.to_string()))
            .collect();
        let app = match self.github.resolve(&stored)? {
            None if secrets.is_empty() => AppSetup::Unconfigured { api_url: validate_url("GITHUB_API_URL", &self.github.github_api_url)? },
            None => return Err(config_error("GITHUB_APP_ID", "is not set (the App's numeric id, shown on its settings page)")),
            Some(_) if secrets.is_empty() => {
                return Err(config_error(
                    "GITHUB_WEBHOOK_SECRET",
                    "is not set (the App's webhook secret; a comma-separated list while rotating)",
                ));
            }
            Some(github) => AppSetup::Configured { github, webhook_secrets: secrets },
        };
        let addr = self
            .addr
            .parse()
            .map_err(|_| config_error("GREENLIGHT_ADDR", format!("must be HOST:PORT such as 0.0.0.0:3000, got {:?}", self.addr)))?;
        Ok(ServeConfig {
            app,
            common: self.common.validate(&stored)?,
            addr,
            run_workers: !self.no_worker,
            runner: self.runner.validate()?,
            api_token: validate_api_token(given_or_stored(&self.api_token, &stored.api_token))?,
            delivery_poll: validate_poll(&self.delivery_poll)?,
        })
    }
}

/// The shortest poll: the log is read as the App, whose requests count
/// against its rate limit (720 an hour at this interval).
pub const MIN_DELIVERY_POLL_SECS: u64 = 5;

fn validate_poll(raw: &str) -> Result<Option<std::time::Duration>, ConfigError> {
    match raw.trim() {
        "off" | "0" => Ok(None),
        text => match text.parse::<u64>() {
            Ok(secs) if secs >= MIN_DELIVERY_POLL_SECS => Ok(Some(std::time::Duration::from_secs(secs))),
            _ => Err(config_error(
                "GREENLIGHT_DELIVERY_POLL",
                format!("must be seconds (at least {MIN_DELIVERY_POLL_SECS}) or `off`, got {raw:?}"),
            )),
        },
    }
}

fn validate_api_token(token: Option<&str>) -> Result<Option<SecretString>, ConfigError> {
    match token.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.len() < 16 => {
            Err(config_error("GREENLIGHT_API_TOKEN", "is too short: use at least 16 characters (e.g. `openssl rand -hex 32`)"))
        }
        Some(t) => Ok(Some(SecretString::from(t.to_string()))),
    }
}

impl WorkerArgs {
    /// Validates everything `worker` needs (the App and secret key may come
    /// from the settings file of a data directory it shares with `serve`).
    pub fn validate(&self) -> Result<WorkerConfig, ConfigError> {
        let stored = stored::load(&self.common.data_dir)?;
        Ok(WorkerConfig { github: self.github.validate(&stored)?, common: self.common.validate(&stored)?, runner: self.runner.validate()? })
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn serve(args: &[&str]) -> ServeArgs {
        match Cli::try_parse_from(args).unwrap().command {
            Command::Serve(serve) => serve,
            _ => unreachable!(),
        }
    }

    #[test]
    fn variables_win_over_the_settings_file_and_nothing_set_is_the_setup_page() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap();
        let unconfigured = serve(&["greenlight", "serve", "--data-dir", data]).validate().unwrap();
        assert!(matches!(unconfigured.app, AppSetup::Unconfigured { .. }));

        let pem = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/test-app-key.pem")).unwrap();
        let stored = StoredSettings {
            app_id: Some(11),
            private_key: Some(pem),
            webhook_secret: Some("from-the-file".into()),
            api_token: Some("a-token-from-the-file".into()),
            ..Default::default()
        };
        stored::save(dir.path(), &stored).unwrap();
        let from_file = serve(&["greenlight", "serve", "--data-dir", data]).validate().unwrap();
        let AppSetup::Configured { github, webhook_secrets } = from_file.app else { panic!("configured from the file") };
        assert_eq!((github.app_id, webhook_secrets[0].expose_secret()), (11, "from-the-file"));
        assert_eq!(from_file.api_token.unwrap().expose_secret(), "a-token-from-the-file");

        let given = serve(&["greenlight", "serve", "--data-dir", data, "--github-app-id", "12", "--github-webhook-secret", "given"]);
        let AppSetup::Configured { github, webhook_secrets } = given.validate().unwrap().app else { panic!("configured") };
        assert_eq!((github.app_id, webhook_secrets[0].expose_secret()), (12, "given"));
    }
}
