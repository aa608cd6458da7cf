//! Wiring: turns validated configuration into running roles (intake,
//! planner, workers) that share one Redis.

use crate::catch_up::CatchUp;
use crate::clock::{self, SharedClock};
use crate::config::{AppSetup, Common, GitHubConfig, RunnerConfig, ServeConfig, WorkerConfig};
use crate::github::auth::{AppAuth, TokenCache};
use crate::github::retry::RetryPolicy;
use crate::github::{CloneCredentials, GitHub, RepoFiles};
use crate::intake::Intake;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::planner::Planner;
use crate::publish::Publisher;
use crate::queue::WorkQueue;
use crate::redis_pool::Pool;
use crate::redis_server::{EmbeddedRedis, Redis};
use crate::runner::sandbox::{Sandbox, SandboxOptions};
use crate::runner::{Worker, WorkerParts, WorkerSettings};
use crate::secrets::SecretKey;
use crate::server;
use crate::setup::{Configure, Setup};
use crate::store::Store;
use anyhow::Context;
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// What the roles are given rather than reaching for globals.
#[derive(Clone)]
pub struct Deps {
    /// Every timestamp's source (tests inject their own).
    pub clock: SharedClock,
    /// How calls to GitHub are retried.
    pub retry: RetryPolicy,
    /// How often build history is swept ([`crate::retention::SWEEP_INTERVAL`]).
    pub sweep_interval: std::time::Duration,
    /// What `/metrics` shows: every role of the process counts into it.
    pub metrics: Metrics,
    /// How often `serve` looks for due cron jobs ([`crate::cron::POLL_INTERVAL`]).
    pub cron_interval: std::time::Duration,
}

impl Default for Deps {
    fn default() -> Self {
        Self {
            clock: clock::system(),
            retry: RetryPolicy::default(),
            sweep_interval: crate::retention::SWEEP_INTERVAL,
            metrics: Metrics::default(),
            cron_interval: crate::cron::POLL_INTERVAL,
        }
    }
}

/// A running `serve` or `worker`.
pub struct Running {
    /// The address the HTTP server listens on.
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    /// The HTTP server, and the wait for the setup page's App.
    tasks: JoinSet<()>,
    /// The roles, once there is an App to run them as.
    roles: Arc<Mutex<Option<Roles>>>,
}

/// What runs as the App: workers, planner, sweeps, and an embedded Redis.
struct Roles {
    tasks: JoinSet<()>,
    embedded: Option<EmbeddedRedis>,
}

impl Roles {
    async fn stop(mut self) {
        while self.tasks.join_next().await.is_some() {}
        if let Some(redis) = self.embedded.take() {
            redis.stop().await;
        }
    }
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
        if let Some(roles) = self.roles.lock().await.take() {
            roles.stop().await;
        }
    }
}

/// What the listener serves: the setup page until an App is configured,
/// then the service's routes (set once, read with one atomic load).
#[derive(Clone, Default)]
struct Front {
    configured: Arc<OnceLock<Router>>,
    setup: Router,
}

impl Front {
    fn current(&self) -> Router {
        self.configured.get().unwrap_or(&self.setup).clone()
    }

    /// Serves requests through whichever router is current.
    fn service(self) -> Router {
        Router::new().fallback_service(tower::service_fn(move |request: axum::extract::Request| self.current().oneshot(request)))
    }
}

/// A name for this process among the consumers of a stream.
pub fn consumer_name(role: &str) -> String {
    let host = crate::text::hostname();
    format!("{role}-{host}-{}-{:04x}", std::process::id(), rand::random::<u16>())
}

/// The GitHub client of an App.
/// Installation tokens it caches are sealed with `secret_key` when one is set.
pub fn github(config: &GitHubConfig, pool: Pool, secret_key: Option<SecretKey>, deps: &Deps) -> anyhow::Result<GitHub> {
    let app = AppAuth::new(config.app_id, config.key.clone(), deps.clock.clone());
    let tokens = TokenCache::new(Store::new(pool), deps.clock.clone(), secret_key);
    GitHub::new(&config.api_url, app, tokens, deps.retry.clone(), deps.clock.clone(), deps.metrics.clone())
        .context("GITHUB_API_URL: cannot build a client")
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

/// Starts the background sweep that prunes build history beyond `common`'s
/// retention (every process runs one; a lease lets one sweep at a time).
fn sweep_history(tasks: &mut JoinSet<()>, common: &Common, pool: &Pool, deps: &Deps, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let sweeper = crate::retention::Sweeper::new(
        Store::new(pool.clone()),
        crate::store::Logs::new(pool.clone()),
        crate::blobs::Blobs::of(&common.log_store, &common.data_dir)?.scoped(crate::blobs::ARTIFACTS),
        common.retention,
        deps.clock.clone(),
        consumer_name("sweeper"),
    );
    tasks.spawn(sweeper.run(deps.sweep_interval, shutdown.clone()));
    Ok(())
}

/// The lifecycle every role of a process shares.
fn lifecycle(pool: &Pool, publisher: Publisher, deps: &Deps) -> Lifecycle {
    Lifecycle::new(Store::new(pool.clone()), WorkQueue::stages(pool.clone()), publisher, deps.clock.clone(), deps.metrics.clone())
}

async fn worker(
    common: &Common,
    runner: &RunnerConfig,
    redis: &Redis,
    github: &GitHub,
    lifecycle: Lifecycle,
    logs: crate::store::Logs,
    deps: &Deps,
) -> anyhow::Result<Worker> {
    let workspaces = common.data_dir.join("workspaces");
    std::fs::create_dir_all(&workspaces).with_context(|| format!("GREENLIGHT_DATA_DIR: cannot create {}", workspaces.display()))?;
    // Traversable but not listable by the sandbox user, who owns only its own workspace.
    std::fs::set_permissions(&workspaces, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
    let options =
        SandboxOptions { unsandboxed: runner.unsandboxed, uid: runner.sandbox_uid, limits: runner.limits, network: runner.network.clone() };
    let sandbox = Sandbox::probe(&options, &workspaces).await?;
    match sandbox.limits() {
        Some(limits) => tracing::info!(memory = %limits.memory_text(), pids = limits.pids, cpus = ?limits.cpus, "per-step limits on"),
        None => tracing::warn!("GREENLIGHT_STEP_LIMITS=off: steps run WITHOUT resource limits; every check run says so"),
    }
    let name = consumer_name("worker");
    crate::runner::workspace::sweep(&workspaces, &Store::new(redis.pool.clone()), &name)
        .await
        .context("removing the workspaces of stopped workers")?;
    crate::runner::workspace::probe(&workspaces, runner.workspace_cap).await?;
    let settings = WorkerSettings {
        concurrency: common.concurrency,
        data_dir: common.data_dir.clone(),
        lease: runner.lease,
        grace: runner.grace,
        log_limit: runner.log_limit,
        max_step_timeout: runner.max_step_timeout,
        workspace_cap: runner.workspace_cap,
        cache_cap: runner.cache_cap,
    };
    let parts = WorkerParts {
        lifecycle,
        logs,
        sandbox,
        secrets: crate::secrets::SecretStore::new(Store::new(redis.pool.clone()), common.secret_key.clone()),
        credentials: CloneCredentials::new(github.clone()),
        clock: deps.clock.clone(),
        blobs: crate::blobs::Blobs::of(&common.log_store, &common.data_dir)?,
    };
    Ok(Worker::new(parts, WorkQueue::stages(redis.pool.clone()), settings, name))
}

/// Starts `serve`: intake, planner and (unless `--no-worker`) workers; with
/// no App configured yet, the setup page, and all of them once it registers one.
pub async fn start(config: ServeConfig, deps: Deps) -> anyhow::Result<Running> {
    let listener =
        tokio::net::TcpListener::bind(config.addr).await.with_context(|| format!("GREENLIGHT_ADDR: cannot listen on {}", config.addr))?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let roles = Arc::new(Mutex::new(None));
    let mut tasks = JoinSet::new();
    // Configured, the service's routes are served as they are: the switch
    // of the setup page costs each request a second routing (intake is hot).
    let served = match &config.app {
        AppSetup::Configured { github, webhook_secrets } => {
            let (started, router) = start_roles(&config, github, webhook_secrets, &deps, &shutdown).await?;
            *roles.lock().await = Some(started);
            router
        }
        AppSetup::Unconfigured { api_url } => {
            let (configure, requests) = mpsc::channel(1);
            let setup = Setup::new(api_url.clone(), config.common.public_url.clone(), config.common.data_dir.clone(), configure);
            let front = Front { configured: Arc::default(), setup: setup.router() };
            tasks.spawn(await_app(config.clone(), deps.clone(), requests, front.clone(), roles.clone(), shutdown.clone()));
            tracing::warn!(page = %format!("{}/", config.common.public_url), "no GitHub App is configured yet: open the setup page to register one");
            front.service()
        }
    };
    let stop = shutdown.clone();
    tasks.spawn(async move {
        let app = served.into_make_service_with_connect_info::<std::net::SocketAddr>();
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(%addr, workers = config.run_workers, "greenlight is serving");
    Ok(Running { addr, shutdown, tasks, roles })
}

/// Waits for the setup page's App, then starts the roles as it and makes
/// the service's routes current. Only the first App is taken.
async fn await_app(
    mut config: ServeConfig,
    deps: Deps,
    mut requests: mpsc::Receiver<Configure>,
    front: Front,
    roles: Arc<Mutex<Option<Roles>>>,
    shutdown: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            _ = shutdown.cancelled() => return,
            request = requests.recv() => match request { Some(r) => r, None => return },
        };
        let mut slot = roles.lock().await;
        if slot.is_some() {
            let _ = request.started.send(Err(anyhow::anyhow!("greenlight is already configured")));
            continue;
        }
        config.app = request.app;
        let AppSetup::Configured { github, webhook_secrets } = &config.app else { continue };
        match start_roles(&config, github, webhook_secrets, &deps, &shutdown).await {
            Ok((started, router)) => {
                *slot = Some(started);
                let _ = front.configured.set(router);
                let _ = request.started.send(Ok(()));
            }
            Err(e) => {
                let _ = request.started.send(Err(e));
            }
        }
    }
}

/// Starts every role of `serve` as the App `github`: Redis, workers, the
/// planner, the sweeps, and the routes of intake, API and pages.
async fn start_roles(
    config: &ServeConfig,
    github_config: &GitHubConfig,
    webhook_secrets: &[SecretString],
    deps: &Deps,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Roles, Router)> {
    let (redis, embedded) = connect(&config.common).await?;
    let pool = redis.pool.clone();
    let github = github(github_config, pool.clone(), config.common.secret_key.clone(), deps)?;
    let publisher = Publisher::new(github.clone(), config.common.public_url.clone());
    let lifecycle = lifecycle(&pool, publisher, deps);
    let mut tasks = JoinSet::new();
    let logs = crate::store::Logs::connect(pool.clone(), &config.common.log_store).await?;

    if config.run_workers {
        let worker = worker(&config.common, &config.runner, &redis, &github, lifecycle.clone(), logs.clone(), deps).await?;
        let jobs = worker.consumer(redis.clone());
        tasks.spawn(worker.run(jobs, shutdown.clone()));
    }
    match Store::new(pool.clone()).index_builds_by_ref().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(builds = n, "indexed the builds recorded before this version by ref"),
        Err(e) => tracing::warn!(error = %e, "cannot index earlier builds by ref yet; the next start tries again"),
    }
    sweep_history(&mut tasks, &config.common, &pool, deps, shutdown)?;
    let installations = crate::github::Installations::new(github.clone());
    let planner = Planner::new(lifecycle.clone(), RepoFiles::new(github.clone()));
    let commands = crate::commands::Commands::new(planner.clone(), lifecycle.clone(), crate::github::Conversation::new(github.clone()));
    let reading = crate::commands::Commands::consumer(WorkQueue::commands(pool.clone()), redis.clone(), consumer_name("commands"));
    tasks.spawn(commands.run(reading, shutdown.clone()));
    let planning = Planner::consumer(WorkQueue::deliveries(pool.clone()), redis.clone(), consumer_name("planner"));
    tasks.spawn(planner.clone().run(planning, shutdown.clone()));
    let scheduler = crate::cron::Scheduler::new(Store::new(pool.clone()), planner.clone(), deps.clock.clone());
    tasks.spawn(scheduler.clone().run_forever(deps.cron_interval, shutdown.clone()));
    let events = crate::api::change_channel();
    tasks.spawn(crate::api::stream_feed(redis.clone(), events.clone(), shutdown.clone()));
    let api = crate::api::ApiState {
        store: Store::new(pool.clone()),
        hub: crate::store::LogHub::start(redis.clone(), Store::new(pool.clone()), logs.clone(), shutdown.clone()),
        logs,
        slots: crate::api::StreamSlots::default(),
        token: config.api_token.clone().map(std::sync::Arc::new),
        events,
        lifecycle,
        planner,
        installations,
        public_url: config.common.public_url.clone(),
        secrets: crate::secrets::SecretStore::new(Store::new(pool.clone()), config.common.secret_key.clone()),
        scheduler,
        clock: deps.clock.clone(),
        blobs: crate::blobs::Blobs::of(&config.common.log_store, &config.common.data_dir)?,
    };
    let queue = WorkQueue::deliveries(pool.clone());
    let intake = Intake::new(webhook_secrets.to_vec(), redis.shared()?, queue, Store::new(pool.clone()), deps.metrics.clone());
    if let Some(poll) = config.delivery_poll {
        let catch_up = CatchUp::new(github, intake.clone(), Store::new(pool.clone()), deps.clock.clone(), consumer_name("catch-up"));
        tasks.spawn(catch_up.run(poll, shutdown.clone()));
    }
    let operator = server::Operator::new(deps.metrics.clone(), config.api_token.clone(), pool);
    Ok((Roles { tasks, embedded }, server::router(intake, api, operator)))
}

/// Starts `worker`: stage runners only, on a shared Redis.
pub async fn start_worker(config: WorkerConfig, deps: Deps) -> anyhow::Result<Running> {
    let (redis, embedded) = connect(&config.common).await?;
    if embedded.is_some() {
        anyhow::bail!("REDIS_URL: a worker needs the Redis its `serve` uses; set REDIS_URL");
    }
    let github = github(&config.github, redis.pool.clone(), config.common.secret_key.clone(), &deps)?;
    let publisher = Publisher::new(github.clone(), config.common.public_url.clone());
    let lifecycle = lifecycle(&redis.pool, publisher, &deps);
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let logs = crate::store::Logs::connect(redis.pool.clone(), &config.common.log_store).await?;
    let worker = worker(&config.common, &config.runner, &redis, &github, lifecycle, logs, &deps).await?;
    let jobs = worker.consumer(redis.clone());
    tasks.spawn(worker.run(jobs, shutdown.clone()));
    sweep_history(&mut tasks, &config.common, &redis.pool, &deps, &shutdown)?;
    tracing::info!(concurrency = config.common.concurrency, "greenlight worker is running");
    let roles = Arc::new(Mutex::new(Some(Roles { tasks, embedded })));
    Ok(Running { addr: SocketAddr::from(([0, 0, 0, 0], 0)), shutdown, tasks: JoinSet::new(), roles })
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when it is first polled, so a signal that comes while the
/// service is still starting stops it gracefully rather than killing it.
pub fn terminated() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    }
}
