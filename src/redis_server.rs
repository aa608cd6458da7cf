//! Redis: connecting to it, or running one as a child process when
//! `REDIS_URL` is unset, so a single machine needs nothing else.

use crate::redis_pool::Pool;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, Command};

/// Connections per process; blocking stream reads hold one each.
pub const POOL_SIZE: usize = 64;

/// Blocking stream reads wait this long at most; their connection allows a
/// reply this much later before it counts Redis as gone.
pub const BLOCK_GRACE: Duration = Duration::from_secs(5);

/// One Redis, reached two ways: a pool for ordinary commands, and dedicated
/// connections for blocking reads (whose replies may take seconds, past the
/// client's default 500 ms response timeout).
#[derive(Clone)]
pub struct Redis {
    /// Pooled connections with fast-failing timeouts.
    pub pool: Pool,
    client: redis::Client,
}

impl Redis {
    /// Connects (lazily) to `url`.
    pub fn open(url: &str) -> anyhow::Result<Self> {
        Ok(Self { pool: pool(url)?, client: redis::Client::open(url).context("REDIS_URL: not a valid Redis URL")? })
    }

    /// A shared, self-reconnecting connection that pipelines the commands of
    /// concurrent callers onto one socket: cheaper than a pooled connection
    /// per request on the hot intake path.
    pub fn shared(&self) -> anyhow::Result<redis::aio::ConnectionManager> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        redis::aio::ConnectionManager::new_lazy_with_config(self.client.clone(), config).context("REDIS_URL: cannot connect")
    }

    /// A subscriber connection.
    pub async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        self.client.get_async_pubsub().await
    }

    /// A connection for `XREADGROUP BLOCK` calls of up to `block`.
    pub async fn blocking(&self, block: Duration) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(block + BLOCK_GRACE));
        self.client.get_multiplexed_async_connection_with_config(&config).await
    }
}

/// A pool whose waits fail fast, so an unreachable Redis turns into a 503
/// rather than a delivery GitHub times out on.
pub fn pool(url: &str) -> anyhow::Result<Pool> {
    let client = redis::Client::open(url).context("REDIS_URL: not a valid Redis URL")?;
    Pool::new(client, POOL_SIZE, Duration::from_secs(2)).context("REDIS_URL: cannot build a connection pool")
}

/// A `redis-server` child with AOF persistence under the data directory,
/// listening only on a unix socket.
pub struct EmbeddedRedis {
    child: Child,
    socket: PathBuf,
}

impl EmbeddedRedis {
    /// Starts `redis-server` (found on PATH) and waits until it answers.
    pub async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        let Some(binary) = crate::text::find_on_path("redis-server") else {
            bail!(
                "REDIS_URL is not set and redis-server is not on PATH: install it (Debian/Ubuntu: apt-get install redis-server) or set REDIS_URL"
            );
        };
        let dir = data_dir.join("redis");
        std::fs::create_dir_all(&dir).with_context(|| format!("GREENLIGHT_DATA_DIR: cannot create {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let socket = dir.join("redis.sock");
        let _ = std::fs::remove_file(&socket);
        let child = Command::new(binary)
            .args(["--port", "0", "--unixsocketperm", "700", "--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server")?;
        let mut redis = Self { child, socket };
        for _ in 0..100 {
            if redis.socket.exists() {
                return Ok(redis);
            }
            if let Some(status) = redis.child.try_wait()? {
                bail!("redis-server exited at start ({status}); its data is in {}", dir.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("redis-server did not open {} within 5 s", redis.socket.display())
    }

    /// The URL to connect with.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Stops it cleanly (SIGTERM lets it finish writing the AOF).
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}
