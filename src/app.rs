//! Wiring: turns validated configuration into running roles (intake,
//! planner, workers) that share one Redis.

use crate::clock::{self, SharedClock};
use crate::config::{GitHubConfig, ServeConfig};
use crate::github::GitHub;
use crate::github::auth::{AppAuth, TokenCache};
use crate::github::retry::RetryPolicy;
use crate::planner::Planner;
use crate::publish::Publisher;
use crate::queue::{DELIVERIES, PLANNERS, WorkQueue};
use crate::redis_server::{EmbeddedRedis, Redis};
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
        Self {
            clock: clock::system(),
            retry: RetryPolicy::default(),
        }
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
    format!(
        "{role}-{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// The GitHub client of an App.
pub fn github(config: &GitHubConfig, pool: Pool, deps: &Deps) -> anyhow::Result<GitHub> {
    let app = AppAuth::new(config.app_id, config.key.clone(), deps.clock.clone());
    let tokens = TokenCache::new(pool, deps.clock.clone());
    GitHub::new(
        &config.api_url,
        app,
        tokens,
        deps.retry.clone(),
        deps.clock.clone(),
    )
    .context("GITHUB_API_URL: cannot build a client")
}

/// Starts `serve`: intake, planner and (unless `--no-worker`) workers.
pub async fn start(config: ServeConfig, deps: Deps) -> anyhow::Result<Running> {
    let (url, embedded) = match &config.common.redis_url {
        Some(url) => (url.expose_secret().to_string(), None),
        None => {
            let redis = EmbeddedRedis::start(&config.common.data_dir).await?;
            tracing::info!(url = %redis.url(), "started an embedded redis-server (REDIS_URL is unset)");
            (redis.url(), Some(redis))
        }
    };
    let redis = Redis::open(&url)?;
    let pool = redis.pool.clone();
    let github = github(&config.github, pool.clone(), &deps)?;
    let publisher = Publisher::new(github, config.common.public_url.clone());
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();

    let planner = Planner::new(
        redis.clone(),
        publisher,
        deps.clock.clone(),
        consumer_name("planner"),
    );
    tasks.spawn(planner.run(shutdown.clone()));

    let intake = Intake::new(
        config.webhook_secrets.clone(),
        redis.shared()?,
        WorkQueue::new(pool.clone(), DELIVERIES, PLANNERS),
        Store::new(pool),
    );
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("GREENLIGHT_ADDR: cannot listen on {}", config.addr))?;
    let addr = listener.local_addr()?;
    let stop = shutdown.clone();
    tasks.spawn(async move {
        let served = axum::serve(listener, server::router(intake))
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(%addr, workers = config.run_workers, "greenlight is serving");
    Ok(Running {
        addr,
        shutdown,
        tasks,
        embedded,
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
}
