//! Durable work queues: Redis Streams read through consumer groups.
//!
//! An entry stays in the group's pending list until it is acknowledged, so
//! work survives a crash: a consumer that dies leaves its entries pending,
//! and [`WorkQueue::reclaim`] hands them to another after they sat idle.

use deadpool_redis::{Connection, Pool};
use redis::aio::ConnectionLike;
use redis::streams::{StreamAutoClaimReply, StreamReadReply};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::time::Duration;

/// The stream of accepted webhook deliveries, read by planners.
pub const DELIVERIES: &str = "gl:deliveries";
/// The consumer group of planners.
pub const PLANNERS: &str = "planners";
/// The stream of stage jobs, read by workers.
pub const STAGES: &str = "gl:stages";
/// The consumer group of workers.
pub const WORKERS: &str = "workers";

/// The field of a stream entry holding the JSON record.
const FIELD: &str = "data";

/// A stream entry id (`1700000000000-0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct EntryId(pub String);

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One entry read from a queue.
#[derive(Debug)]
pub struct Entry<T> {
    /// Its id, for acknowledging.
    pub id: EntryId,
    /// The record, or why it could not be read (such entries are poison:
    /// acknowledge them after reporting).
    pub item: Result<T, String>,
    /// How often it has been delivered to a consumer (1 the first time).
    pub deliveries: u64,
}

/// A typed stream with its consumer group.
pub struct WorkQueue<T> {
    pool: Pool,
    stream: &'static str,
    group: &'static str,
    _item: PhantomData<fn() -> T>,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        Self { pool: self.pool.clone(), stream: self.stream, group: self.group, _item: PhantomData }
    }
}

fn decode<T: DeserializeOwned>(fields: &std::collections::HashMap<String, redis::Value>) -> Result<T, String> {
    let raw = fields.get(FIELD).ok_or_else(|| format!("entry has no `{FIELD}` field"))?;
    let text: String = redis::from_redis_value(raw.clone()).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

impl<T: Serialize + DeserializeOwned> WorkQueue<T> {
    /// A queue over `stream`, read by `group`.
    pub fn new(pool: Pool, stream: &'static str, group: &'static str) -> Self {
        Self { pool, stream, group, _item: PhantomData }
    }

    /// Creates the stream and its group if they do not exist yet.
    pub async fn ensure_group(&self) -> redis::RedisResult<()> {
        let mut conn = self.pool.get().await.map_err(pool_error)?;
        let created: redis::RedisResult<()> =
            redis::cmd("XGROUP").arg("CREATE").arg(self.stream).arg(self.group).arg("0").arg("MKSTREAM").query_async(&mut conn).await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Appends a record. When this returns, Redis holds it.
    pub async fn push(&self, item: &T) -> redis::RedisResult<EntryId> {
        let mut conn = self.pool.get().await.map_err(pool_error)?;
        self.push_on(&mut conn, item).await
    }

    /// Appends a record on a given connection.
    pub async fn push_on(&self, conn: &mut impl ConnectionLike, item: &T) -> redis::RedisResult<EntryId> {
        let json = serde_json::to_string(item).expect("queue records serialize");
        let id: String = redis::cmd("XADD").arg(self.stream).arg("*").arg(FIELD).arg(json).query_async(conn).await?;
        Ok(EntryId(id))
    }

    /// Reads up to `count` new entries for `consumer`, waiting up to `block`.
    pub async fn read(
        &self,
        conn: &mut impl ConnectionLike,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> redis::RedisResult<Vec<Entry<T>>> {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(self.group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(self.stream)
            .arg(">")
            .query_async(conn)
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|e| Entry { item: decode(&e.map), id: EntryId(e.id), deliveries: 1 })
            .collect())
    }

    /// Takes over entries that another consumer left pending for at least
    /// `min_idle` (it died, or is stuck).
    pub async fn reclaim(&self, consumer: &str, min_idle: Duration, count: usize) -> redis::RedisResult<Vec<Entry<T>>> {
        let mut conn = self.pool.get().await.map_err(pool_error)?;
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(self.stream)
            .arg(self.group)
            .arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        let mut entries = Vec::with_capacity(reply.claimed.len());
        for e in reply.claimed {
            entries.push(Entry {
                deliveries: self.delivery_count(&mut conn, &e.id).await.unwrap_or(2),
                item: decode(&e.map),
                id: EntryId(e.id),
            });
        }
        Ok(entries)
    }

    async fn delivery_count(&self, conn: &mut Connection, id: &str) -> redis::RedisResult<u64> {
        let rows: Vec<(String, String, u64, u64)> =
            redis::cmd("XPENDING").arg(self.stream).arg(self.group).arg(id).arg(id).arg(1).query_async(conn).await?;
        Ok(rows.first().map_or(1, |r| r.3))
    }

    /// Resets an entry's idle time, telling other consumers it is still being worked on.
    pub async fn keep_alive(&self, consumer: &str, id: &EntryId) -> redis::RedisResult<()> {
        let mut conn = self.pool.get().await.map_err(pool_error)?;
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(self.stream)
            .arg(self.group)
            .arg(consumer)
            .arg(0)
            .arg(&id.0)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Marks an entry done.
    pub async fn ack(&self, id: &EntryId) -> redis::RedisResult<()> {
        let mut conn = self.pool.get().await.map_err(pool_error)?;
        let _: i64 = redis::cmd("XACK").arg(self.stream).arg(self.group).arg(&id.0).query_async(&mut conn).await?;
        Ok(())
    }

    /// Entries not yet acknowledged.
    pub async fn pending(&self) -> redis::RedisResult<u64> {
        let mut conn = self.pool.get().await.map_err(pool_error)?;
        let summary: redis::Value = redis::cmd("XPENDING").arg(self.stream).arg(self.group).query_async(&mut conn).await?;
        match summary {
            redis::Value::Array(items) => Ok(items.first().and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok()).unwrap_or(0)),
            _ => Ok(0),
        }
    }

    /// Entries in the stream (acknowledged or not).
    pub async fn len(&self) -> redis::RedisResult<u64> {
        let mut conn = self.pool.get().await.map_err(pool_error)?;
        redis::cmd("XLEN").arg(self.stream).query_async(&mut conn).await
    }
}

/// Turns a pool failure into a Redis error, so callers handle one error type.
pub fn pool_error(e: deadpool_redis::PoolError) -> redis::RedisError {
    match e {
        deadpool_redis::PoolError::Backend(e) => e,
        other => redis::RedisError::from((redis::ErrorKind::Io, "redis pool", other.to_string())),
    }
}
