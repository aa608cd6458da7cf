//! Pooled Redis connections that go back into use without a round trip.
//!
//! Why not `deadpool-redis`: its pool sends `UNWATCH` and `PING` to Redis
//! each time a connection is taken from the pool, to be sure it still
//! works and holds no `WATCH`. Every store operation takes one, so that
//! doubled the round trips of the whole store (the planner's claim and
//! acknowledgement of each delivery: four instead of two), and on a busy
//! machine a round trip is tens of microseconds of CPU on each side.
//!
//! Here a connection remembers instead what happened on it, as it happens:
//! - a failure of the connection itself (I/O, dropped, timed out) marks it
//!   broken, and a broken one is discarded rather than reused;
//! - a `WATCH` not yet ended (by `UNWATCH`, or by the `EXEC` of a
//!   transaction) is ended with one `UNWATCH` before reuse, so an early
//!   return between `WATCH` and `EXEC` cannot leave the next user's
//!   transaction watching keys it never read.

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};
use std::time::Duration;

/// Why no connection could be had: Redis' own error, or the pool's (a wait
/// past its timeout).
pub type PoolError = managed::PoolError<RedisError>;

/// Makes the pool's connections and decides whether one can be reused.
#[derive(Debug)]
struct Connector {
    client: redis::Client,
}

/// One connection of the pool, with what its reuse depends on.
struct Tracked {
    conn: MultiplexedConnection,
    /// A failure of the connection itself was seen: it is not reused.
    broken: bool,
    /// A `WATCH` was sent and not yet ended.
    watching: bool,
}

impl Tracked {
    /// Notes what a reply says about the connection.
    fn saw<T>(&mut self, reply: &Result<T, RedisError>) {
        if let Err(e) = reply
            && (e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error())
        {
            self.broken = true;
        }
    }
}

impl managed::Manager for Connector {
    type Type = Tracked;
    type Error = RedisError;

    async fn create(&self) -> Result<Tracked, RedisError> {
        let conn = self.client.get_multiplexed_async_connection().await?;
        Ok(Tracked { conn, broken: false, watching: false })
    }

    async fn recycle(&self, conn: &mut Tracked, _: &Metrics) -> RecycleResult<RedisError> {
        if conn.broken {
            return Err(RecycleError::message("the connection failed"));
        }
        if conn.watching {
            redis::cmd("UNWATCH").query_async::<()>(&mut conn.conn).await?;
            conn.watching = false;
        }
        Ok(())
    }
}

/// A connection taken from the [`Pool`], back in it when dropped.
pub struct Connection(managed::Object<Connector>);

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let name = match cmd.args_iter().next() {
                Some(redis::Arg::Simple(name)) => name,
                _ => &[][..],
            };
            let tracked = &mut *self.0;
            if name.eq_ignore_ascii_case(b"WATCH") {
                tracked.watching = true;
            }
            let reply = tracked.conn.req_packed_command(cmd).await;
            if name.eq_ignore_ascii_case(b"UNWATCH") && reply.is_ok() {
                tracked.watching = false;
            }
            tracked.saw(&reply);
            reply
        })
    }

    fn req_packed_commands<'a>(&'a mut self, pipeline: &'a Pipeline, offset: usize, count: usize) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let tracked = &mut *self.0;
            let reply = tracked.conn.req_packed_commands(pipeline, offset, count).await;
            // EXEC ends a WATCH, whether the transaction ran or not.
            if pipeline.is_transaction() && reply.is_ok() {
                tracked.watching = false;
            }
            tracked.saw(&reply);
            reply
        })
    }

    fn get_db(&self) -> i64 {
        self.0.conn.get_db()
    }
}

/// Up to `size` connections to one Redis, shared by clones.
#[derive(Clone)]
pub struct Pool(managed::Pool<Connector>);

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("status", &self.0.status()).finish()
    }
}

impl Pool {
    /// A pool of up to `size` connections to `client`'s Redis, made lazily;
    /// waiting for a free one, making one and readying one for reuse each
    /// give up after `timeout`.
    pub fn new(client: redis::Client, size: usize, timeout: Duration) -> Result<Self, managed::BuildError> {
        managed::Pool::builder(Connector { client })
            .max_size(size)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map(Self)
    }

    /// A connection: a free one, or a new one while fewer than the pool's
    /// size exist, else the first one given back.
    pub async fn get(&self) -> Result<Connection, PoolError> {
        self.0.get().await.map(Connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many commands Redis has processed (`INFO stats`), itself included.
    async fn processed(pool: &Pool) -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query_async(&mut pool.get().await.unwrap()).await.unwrap();
        info.lines().find_map(|l| l.strip_prefix("total_commands_processed:")).unwrap().trim().parse().unwrap()
    }

    /// A redis-server of the test's own (with its directory, kept while
    /// it runs) and a pool of one connection to it.
    async fn one_connection() -> (tempfile::TempDir, crate::redis_server::EmbeddedRedis, Pool) {
        let dir = tempfile::tempdir().unwrap();
        let redis = crate::redis_server::EmbeddedRedis::start(dir.path()).await.expect("redis-server runs (apt-get install redis-server)");
        let pool = Pool::new(redis::Client::open(redis.url()).unwrap(), 1, Duration::from_secs(2)).unwrap();
        (dir, redis, pool)
    }

    #[tokio::test]
    async fn a_connection_is_reused_without_a_ping_and_a_watch_left_open_is_ended() {
        let (_dir, redis, pool) = one_connection().await;

        let before = processed(&pool).await;
        let _: Option<String> = redis::cmd("GET").arg("k").query_async(&mut pool.get().await.unwrap()).await.unwrap();
        assert_eq!(processed(&pool).await - before, 2, "the GET and the INFO: nothing else");

        // A WATCH whose user returned early: the next user's transaction must not see it.
        let mut conn = pool.get().await.unwrap();
        redis::cmd("WATCH").arg("k").query_async::<()>(&mut conn).await.unwrap();
        drop(conn);
        let mut other = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
        redis::cmd("SET").arg("k").arg("changed").query_async::<()>(&mut other).await.unwrap();
        let mut conn = pool.get().await.unwrap();
        let written: Option<()> = redis::pipe().atomic().set("k", "mine").ignore().query_async(&mut conn).await.unwrap();
        assert_eq!(written, Some(()), "the transaction ran: the earlier WATCH was ended");
    }

    #[tokio::test]
    async fn a_connection_whose_redis_went_away_is_replaced() {
        let (_dir, _redis, pool) = one_connection().await;
        let mut conn = pool.get().await.unwrap();
        let _: () =
            redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal").arg("SKIPME").arg("no").query_async(&mut conn).await.unwrap_or(());
        let failed: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
        assert!(failed.is_err(), "the killed connection fails");
        drop(conn);
        let answer: String = redis::cmd("PING").query_async(&mut pool.get().await.unwrap()).await.unwrap();
        assert_eq!(answer, "PONG", "a new connection took its place");
    }
}
