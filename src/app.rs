//! Wiring: turns validated configuration into running roles (intake,
//! planner, workers) that share one Redis.

use crate::clock::{self, SharedClock};
use crate::config::{Common, GitHubConfig, RunnerConfig, ServeConfig, WorkerConfig};
use crate::github::GitHub;
use crate::github::auth::{AppAuth, TokenCache};
use crate::github::retry::RetryPolicy;
use crate::planner::Planner;
use crate::publish::Publisher;
use crate::queue::{DELIVERIES, PLANNERS, WorkQueue};
use crate::redis_server::{EmbeddedRedis, Redis};
use crate::runner::sandbox::Sandbox;
use crate::runner::{Worker, WorkerSettings};
use crate::server::{self, Intake};
use crate::store::Store;
use anyhow::Context;
use deadpool_redis::Pool;
use secrecy::ExposeSecret;
use std::net::SocketAddr;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What the roles are given rather than reaching for globals.
#[derive(Clone)]
pub struct Deps {
    /// The clock.
    pub clock: SharedClock,
    /// How calls to GitHub are retried.
    pub retry: RetryPolicy,
}

impl Default for Deps {
    fn default() -> Self {
        Self { clock: clock::system(), retry: RetryPolicy::default() }
    }
}

/// A running `serve`.
pub struct Running {
    /// The address the HTTP server listens on.
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    embedded: Option<EmbeddedRedis>,
}

impl Running {
    /// Asks every role to stop.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops every role and waits for them (and an embedded Redis).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
        if let Some(redis) = self.embedded.take() {
            redis.stop().await;
        }
    }
}

/// A name for this process among the consumers of a stream.
pub fn consumer_name(role: &str) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let host = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "host".to_string()
    };
    format!("{role}-{host}-{}-{:04x}", std::process::id(), rand::random::<u16>())
}

/// The GitHub client of an App.
pub fn github(config: &GitHubConfig, pool: Pool, deps: &Deps) -> anyhow::Result<GitHub> {
    let app = AppAuth::new(config.app_id, config.key.clone(), deps.clock.clone());
    let tokens = TokenCache::new(pool, deps.clock.clone());
    GitHub::new(&config.api_url, app, tokens, deps.retry.clone(), deps.clock.clone()).context("GITHUB_API_URL: cannot build a client")
}

async fn connect(common: &Common) -> anyhow::Result<(Redis, Option<EmbeddedRedis>)> {
    match &common.redis_url {
        Some(url) => Ok((Redis::open(url.expose_secret())?, None)),
        None => {
            let embedded = EmbeddedRedis::start(&common.data_dir).await?;
            tracing::info!(url = %embedded.url(), "started an embedded redis-server (REDIS_URL is unset)");
            Ok((Redis::open(&embedded.url())?, Some(embedded)))
        }
    }
}

async fn worker(common: &Common, runner: &RunnerConfig, redis: &Redis, publisher: Publisher, deps: &Deps) -> anyhow::Result<Worker> {
    let workspaces = common.data_dir.join("workspaces");
    std::fs::create_dir_all(&workspaces).with_context(|| format!("GREENLIGHT_DATA_DIR: cannot create {}", workspaces.display()))?;
    // Traversable but not listable by the sandbox user, who owns only its own workspace.
    std::fs::set_permissions(&workspaces, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
    let sandbox = Sandbox::probe(runner.unsandboxed, runner.sandbox_uid, &workspaces).await?;
    let settings = WorkerSettings {
        concurrency: common.concurrency,
        data_dir: common.data_dir.clone(),
        lease: runner.lease,
        grace: runner.grace,
        log_limit: runner.log_limit,
    };
    let secrets = crate::secrets::SecretStore::new(redis.pool.clone(), common.secret_key.clone());
    Ok(Worker::new(redis.clone(), publisher, sandbox, secrets, deps.clock.clone(), settings, consumer_name("worker")))
}

/// Starts `serve`: intake, planner and (unless `--no-worker`) workers.
pub async fn start(config: ServeConfig, deps: Deps) -> anyhow::Result<Running> {
    let (redis, embedded) = connect(&config.common).await?;
    let pool = redis.pool.clone();
    let github = github(&config.github, pool.clone(), &deps)?;
    let publisher = Publisher::new(github, config.common.public_url.clone());
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();

    if config.run_workers {
        let worker = worker(&config.common, &config.runner, &redis, publisher.clone(), &deps).await?;
        tasks.spawn(worker.run(shutdown.clone()));
    }
    let planner = Planner::new(redis.clone(), publisher.clone(), deps.clock.clone(), consumer_name("planner"));
    tasks.spawn(planner.clone().run(shutdown.clone()));
    let events = crate::api::change_channel();
    tasks.spawn(crate::api::stream_feed(redis.clone(), events.clone(), shutdown.clone()));
    let api = crate::api::ApiState {
        store: Store::new(pool.clone()),
        logs: crate::store::Logs::new(pool.clone()),
        redis: redis.clone(),
        token: config.api_token.clone().map(std::sync::Arc::new),
        events,
        control: crate::control::Control::new(
            Store::new(pool.clone()),
            WorkQueue::new(pool.clone(), crate::queue::STAGES, crate::queue::WORKERS),
            planner,
            publisher,
            deps.clock.clone(),
        ),
        public_url: config.common.public_url.clone(),
        secrets: crate::secrets::SecretStore::new(pool.clone(), config.common.secret_key.clone()),
    };

    let intake =
        Intake::new(config.webhook_secrets.clone(), redis.shared()?, WorkQueue::new(pool.clone(), DELIVERIES, PLANNERS), Store::new(pool));
    let listener =
        tokio::net::TcpListener::bind(config.addr).await.with_context(|| format!("GREENLIGHT_ADDR: cannot listen on {}", config.addr))?;
    let addr = listener.local_addr()?;
    let stop = shutdown.clone();
    tasks.spawn(async move {
        let served = axum::serve(listener, server::router(intake, api)).with_graceful_shutdown(stop.cancelled_owned()).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(%addr, workers = config.run_workers, "greenlight is serving");
    Ok(Running { addr, shutdown, tasks, embedded })
}

/// Starts `worker`: stage runners only, on a shared Redis.
pub async fn start_worker(config: WorkerConfig, deps: Deps) -> anyhow::Result<Running> {
    let (redis, embedded) = connect(&config.common).await?;
    if embedded.is_some() {
        anyhow::bail!("REDIS_URL: a worker needs the Redis its `serve` uses; set REDIS_URL");
    }
    let github = github(&config.github, redis.pool.clone(), &deps)?;
    let publisher = Publisher::new(github, config.common.public_url.clone());
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let worker = worker(&config.common, &config.runner, &redis, publisher, &deps).await?;
    tasks.spawn(worker.run(shutdown.clone()));
    tracing::info!(concurrency = config.common.concurrency, "greenlight worker is running");
    Ok(Running { addr: SocketAddr::from(([0, 0, 0, 0], 0)), shutdown, tasks, embedded })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
}
