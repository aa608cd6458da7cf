//! Durable work queues: Redis Streams read through consumer groups.
//!
//! An entry stays in the group's pending list until it is acknowledged, so
//! work survives a crash: a consumer that dies leaves its entries pending,
//! and [`WorkQueue::reclaim`] hands them to another after they sat idle.
//! [`Consumer`] is the one read loop planners and workers share.
//!
//! Streams stay short: acknowledging an entry also deletes it (XACK and XDEL
//! in one transaction), so a stream holds only what is queued or being
//! worked on, however many builds ran before. Pending entries are never
//! deleted, so reclaiming them after a crash works as before.

use crate::model::{CommentCommand, StageJob, Trigger};
use crate::redis_pool::{Connection, Pool};
use crate::redis_server::Redis;
use crate::store::StoreResult;
use redis::aio::ConnectionLike;
use redis::streams::{StreamAutoClaimReply, StreamReadReply};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The stream of accepted webhook deliveries, read by planners.
const DELIVERIES: &str = "gl:deliveries";
/// The consumer group of planners.
const PLANNERS: &str = "planners";
/// The stream of stage jobs, read by workers.
const STAGES: &str = "gl:stages";
/// The stream of pull request comment commands (read by planners).
const COMMANDS: &str = "gl:commands";
/// The consumer group of workers.
const WORKERS: &str = "workers";

/// The field of a stream entry holding the JSON record.
const FIELD: &str = "data";

pub use crate::ids::EntryId;

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

/// An entry whose record was read: what a [`Consumer`] hands out.
#[derive(Debug)]
pub struct Work<T> {
    /// Its id, for acknowledging.
    pub id: EntryId,
    /// The record, parsed.
    pub item: T,
    /// How often it has been delivered to a consumer (1 the first time).
    pub deliveries: u64,
}

/// A record serialized as JSON straight into a Redis command's argument
/// buffer, instead of into a string that is then copied there.
struct JsonArg<'a, T>(&'a T);

impl<T: Serialize> redis::ToRedisArgs for JsonArg<'_, T> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        serde_json::to_writer(out.writer_for_next_arg(), self.0).expect("queue records serialize");
    }
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

/// The number of pending entries in an `XPENDING` summary reply.
fn pending_count(summary: &redis::Value) -> u64 {
    match summary {
        redis::Value::Array(items) => items.first().and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok()).unwrap_or(0),
        _ => 0,
    }
}

/// An entry's record, parsed from the reply's bytes as they are (no copy
/// into a `String` first: the planner decodes every entry it reads).
/// Stream fields always come back as bulk strings; anything else is not a
/// record greenlight wrote.
fn decode<T: DeserializeOwned>(fields: &std::collections::HashMap<String, redis::Value>) -> Result<T, String> {
    match fields.get(FIELD) {
        Some(redis::Value::BulkString(json)) => serde_json::from_slice(json).map_err(|e| e.to_string()),
        Some(other) => Err(format!("the entry's `{FIELD}` field is not a string: {other:?}")),
        None => Err(format!("entry has no `{FIELD}` field")),
    }
}

impl WorkQueue<Trigger> {
    /// Accepted deliveries (and reruns, restarts), read by planners.
    pub fn deliveries(pool: Pool) -> Self {
        Self::new(pool, DELIVERIES, PLANNERS)
    }
}

impl WorkQueue<CommentCommand> {
    /// Commands from pull request comments, read by planners.
    pub fn commands(pool: Pool) -> Self {
        Self::new(pool, COMMANDS, PLANNERS)
    }
}

impl WorkQueue<StageJob> {
    /// Stage jobs, read by workers.
    pub fn stages(pool: Pool) -> Self {
        Self::new(pool, STAGES, WORKERS)
    }
}

impl<T: Serialize + DeserializeOwned> WorkQueue<T> {
    fn new(pool: Pool, stream: &'static str, group: &'static str) -> Self {
        Self { pool, stream, group, _item: PhantomData }
    }

    /// Creates the stream and its group if they do not exist yet.
    pub async fn ensure_group(&self) -> StoreResult<()> {
        let mut conn = self.pool.get().await?;
        let created: redis::RedisResult<()> =
            redis::cmd("XGROUP").arg("CREATE").arg(self.stream).arg(self.group).arg("0").arg("MKSTREAM").query_async(&mut conn).await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// Appends a record. When this returns, Redis holds it.
    pub async fn push(&self, item: &T) -> StoreResult<EntryId> {
        let mut conn = self.pool.get().await?;
        self.push_on(&mut conn, item).await
    }

    /// Appends a record on a given connection (intake's shared one), the
    /// record serialized straight into the command's argument buffer.
    pub async fn push_on(&self, conn: &mut impl ConnectionLike, item: &T) -> StoreResult<EntryId> {
        // Room for a typical trigger (~1.2 KB) and the other arguments, so the
        // buffer does not grow while the record is written into it.
        let mut cmd = redis::Cmd::with_capacity(5, 2048);
        cmd.arg("XADD").arg(self.stream).arg("*").arg(FIELD).arg(JsonArg(item));
        let id: String = cmd.query_async(conn).await?;
        Ok(EntryId(id))
    }

    /// Reads up to `count` new entries for `consumer`, waiting up to `block`
    /// for one (`None`: answers at once).
    pub async fn read(
        &self,
        conn: &mut impl ConnectionLike,
        consumer: &str,
        count: usize,
        block: Option<Duration>,
    ) -> StoreResult<Vec<Entry<T>>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(self.group).arg(consumer).arg("COUNT").arg(count);
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        let reply: Option<StreamReadReply> = cmd.arg("STREAMS").arg(self.stream).arg(">").query_async(conn).await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|e| Entry { item: decode(&e.map), id: EntryId(e.id), deliveries: 1 })
            .collect())
    }

    /// Takes over entries that another consumer left pending for at least
    /// `min_idle` (it died, or is stuck).
    pub async fn reclaim(&self, consumer: &str, min_idle: Duration, count: usize) -> StoreResult<Vec<Entry<T>>> {
        let mut conn = self.pool.get().await?;
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

    async fn delivery_count(&self, conn: &mut Connection, id: &str) -> StoreResult<u64> {
        let rows: Vec<(String, String, u64, u64)> =
            redis::cmd("XPENDING").arg(self.stream).arg(self.group).arg(id).arg(id).arg(1).query_async(conn).await?;
        Ok(rows.first().map_or(1, |r| r.3))
    }

    /// Resets an entry's idle time, telling other consumers it is still being worked on.
    pub async fn keep_alive(&self, consumer: &str, id: &EntryId) -> StoreResult<()> {
        let mut conn = self.pool.get().await?;
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

    /// Marks an entry done and removes it from the stream, at once: no
    /// crash leaves an acknowledged entry behind, nor deletes a pending one.
    pub async fn ack(&self, id: &EntryId) -> StoreResult<()> {
        self.ack_all(std::slice::from_ref(id)).await
    }

    /// [`WorkQueue::ack`] of each of `ids`, in one round trip.
    pub async fn ack_all(&self, ids: &[EntryId]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.get().await?;
        let ids: Vec<&str> = ids.iter().map(|id| id.0.as_str()).collect();
        let _: (i64, i64) = redis::pipe()
            .atomic()
            .cmd("XACK")
            .arg(self.stream)
            .arg(self.group)
            .arg(&ids)
            .cmd("XDEL")
            .arg(self.stream)
            .arg(&ids)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Entries not yet acknowledged.
    pub async fn pending(&self) -> StoreResult<u64> {
        let mut conn = self.pool.get().await?;
        let summary: redis::Value = redis::cmd("XPENDING").arg(self.stream).arg(self.group).query_async(&mut conn).await?;
        Ok(pending_count(&summary))
    }

    /// Entries no consumer has read yet: the stream's entries less those
    /// being worked on, both read in one transaction, so that an entry
    /// acknowledged (and deleted) between the two reads is not counted as
    /// waiting.
    pub async fn waiting(&self) -> StoreResult<u64> {
        let mut conn = self.pool.get().await?;
        let (len, summary): (u64, redis::Value) = redis::pipe()
            .atomic()
            .cmd("XLEN")
            .arg(self.stream)
            .cmd("XPENDING")
            .arg(self.stream)
            .arg(self.group)
            .query_async(&mut conn)
            .await?;
        Ok(len.saturating_sub(pending_count(&summary)))
    }

    /// Whether every entry appended so far has been read by the group and
    /// acknowledged: whatever its consumers were going to do is done.
    pub async fn is_drained(&self) -> StoreResult<bool> {
        let mut conn = self.pool.get().await?;
        let groups: Vec<std::collections::HashMap<String, redis::Value>> =
            redis::cmd("XINFO").arg("GROUPS").arg(self.stream).query_async(&mut conn).await?;
        let text = |map: &std::collections::HashMap<String, redis::Value>, field: &str| {
            map.get(field).and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
        };
        let Some(group) = groups.iter().find(|g| text(g, "name").as_deref() == Some(self.group)) else {
            return Ok(false);
        };
        let stream: std::collections::HashMap<String, redis::Value> =
            redis::cmd("XINFO").arg("STREAM").arg(self.stream).query_async(&mut conn).await?;
        let pending = group.get("pending").and_then(|v| redis::from_redis_value::<i64>(v.clone()).ok());
        let last_read = text(group, "last-delivered-id");
        Ok(pending == Some(0) && last_read.is_some() && last_read == text(&stream, "last-generated-id"))
    }

    /// Entries in the stream: queued or being worked on (acknowledged ones are deleted).
    pub async fn len(&self) -> StoreResult<u64> {
        let mut conn = self.pool.get().await?;
        Ok(redis::cmd("XLEN").arg(self.stream).query_async(&mut conn).await?)
    }
}

/// One process's reader of a queue: the loop planners and workers share.
/// It reads new entries on a connection of its own (blocking reads would
/// stall a pool), takes over entries another consumer left idle for
/// `reclaim_idle` (looking every half of it), reconnects after Redis
/// failures, and acknowledges unreadable entries after reporting them.
pub struct Consumer<T> {
    queue: WorkQueue<T>,
    redis: Redis,
    name: String,
    reclaim_idle: Duration,
    block: Duration,
    conn: Option<redis::aio::MultiplexedConnection>,
    last_reclaim: Option<tokio::time::Instant>,
}

impl<T: Serialize + DeserializeOwned> Consumer<T> {
    /// `name`'s reader of `queue`, waiting up to `block` for new entries.
    pub fn new(queue: WorkQueue<T>, redis: Redis, name: String, reclaim_idle: Duration, block: Duration) -> Self {
        Self { queue, redis, name, reclaim_idle, block, conn: None, last_reclaim: None }
    }

    /// The queue it reads.
    pub fn queue(&self) -> &WorkQueue<T> {
        &self.queue
    }

    /// Up to `count` entries: idle ones of other consumers when it is time
    /// to look for them, else new ones (waiting up to the block time).
    /// Empty after a failure (logged; the next call reconnects); `None`
    /// once `shutdown` is cancelled.
    pub async fn next(&mut self, count: usize, shutdown: &CancellationToken) -> Option<Vec<Work<T>>> {
        if self.conn.is_none() {
            self.conn = Some(self.connect(shutdown).await?);
        }
        if self.last_reclaim.is_none_or(|t| t.elapsed() >= self.reclaim_idle / 2) {
            self.last_reclaim = Some(tokio::time::Instant::now());
            match self.queue.reclaim(&self.name, self.reclaim_idle, count).await {
                Ok(entries) if !entries.is_empty() => {
                    tracing::warn!(consumer = %self.name, count = entries.len(), "took over entries another consumer left idle");
                    return Some(self.readable(entries).await);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reclaiming idle entries failed"),
            }
        }
        let conn = self.conn.as_mut().expect("connected above");
        let read = tokio::select! {
            _ = shutdown.cancelled() => return None,
            read = self.queue.read(conn, &self.name, count, Some(self.block)) => read,
        };
        match read {
            Ok(entries) => Some(self.readable(entries).await),
            Err(e) => {
                tracing::warn!(error = %e, consumer = %self.name, "reading the queue failed; reconnecting");
                self.conn = None;
                Some(Vec::new())
            }
        }
    }

    /// Waits until Redis answers and the group exists; returns a connection
    /// for blocking reads, or `None` on shutdown.
    async fn connect(&self, shutdown: &CancellationToken) -> Option<redis::aio::MultiplexedConnection> {
        loop {
            let ready = async {
                self.queue.ensure_group().await?;
                Ok::<_, crate::store::StoreError>(self.redis.blocking(self.block).await?)
            };
            match ready.await {
                Ok(conn) => return Some(conn),
                Err(e) => {
                    tracing::warn!(error = %e, consumer = %self.name, "cannot reach Redis; retrying");
                    tokio::select! { _ = shutdown.cancelled() => return None, _ = tokio::time::sleep(Duration::from_secs(1)) => {} }
                }
            }
        }
    }

    /// New entries only, without waiting: for driving a consumer step by step.
    pub async fn poll(&mut self, count: usize) -> StoreResult<Vec<Work<T>>> {
        self.queue.ensure_group().await?;
        let mut conn = self.queue.pool.get().await?;
        let entries = self.queue.read(&mut conn, &self.name, count, None).await?;
        Ok(self.readable(entries).await)
    }

    /// The entries whose records parse; the others are reported and acknowledged.
    async fn readable(&self, entries: Vec<Entry<T>>) -> Vec<Work<T>> {
        let mut work = Vec::with_capacity(entries.len());
        for entry in entries {
            match entry.item {
                Ok(item) => work.push(Work { id: entry.id, item, deliveries: entry.deliveries }),
                Err(reason) => {
                    tracing::error!(entry = %entry.id, %reason, "dropping an unreadable queue entry");
                    let _ = self.queue.ack(&entry.id).await;
                }
            }
        }
        work
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue on a redis-server of the test's own (with its
    /// directory, kept while it runs), its group made.
    async fn test_queue() -> (tempfile::TempDir, crate::redis_server::EmbeddedRedis, WorkQueue<serde_json::Value>) {
        let dir = tempfile::tempdir().unwrap();
        let redis = crate::redis_server::EmbeddedRedis::start(dir.path()).await.expect("redis-server runs (apt-get install redis-server)");
        let pool = Pool::new(redis::Client::open(redis.url()).unwrap(), 2, Duration::from_secs(2)).unwrap();
        let queue = WorkQueue::new(pool, "gl:test:stream", "gl:test:group");
        queue.ensure_group().await.unwrap();
        (dir, redis, queue)
    }

    #[tokio::test]
    async fn waiting_counts_entries_nobody_read_and_not_those_being_worked_on_or_done() {
        let (_dir, _redis, queue) = test_queue().await;
        for n in 0..3 {
            queue.push(&serde_json::json!({ "n": n })).await.unwrap();
        }
        assert_eq!(queue.waiting().await.unwrap(), 3);

        let mut conn = queue.pool.get().await.unwrap();
        let read = queue.read(&mut conn, "worker-1", 2, None).await.unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(queue.waiting().await.unwrap(), 1, "two are being worked on");

        queue.ack(&read[0].id).await.unwrap();
        assert_eq!((queue.waiting().await.unwrap(), queue.len().await.unwrap(), queue.pending().await.unwrap()), (1, 2, 1));
        queue.ack(&read[1].id).await.unwrap();
        assert_eq!(queue.waiting().await.unwrap(), 1, "the unread one still waits");
    }

    #[tokio::test]
    async fn an_entry_that_is_not_a_json_record_reads_as_an_error_saying_why() {
        let (_dir, _redis, queue) = test_queue().await;
        let mut conn = queue.pool.get().await.unwrap();
        for (field, value) in [(FIELD, "{\"n\": 1}"), (FIELD, "{\"n\": "), ("other", "{}")] {
            let _: String = redis::cmd("XADD").arg(queue.stream).arg("*").arg(field).arg(value).query_async(&mut conn).await.unwrap();
        }

        let read: Vec<Result<serde_json::Value, String>> =
            queue.read(&mut conn, "planner-1", 3, None).await.unwrap().into_iter().map(|e| e.item).collect();

        assert_eq!(read[0], Ok(serde_json::json!({ "n": 1 })));
        assert!(read[1].as_ref().is_err_and(|e| e.contains("EOF")), "{:?}", read[1]);
        assert_eq!(read[2], Err(format!("entry has no `{FIELD}` field")));
    }

    #[tokio::test]
    async fn ack_all_acknowledges_and_deletes_exactly_the_entries_it_is_given() {
        let (_dir, _redis, queue) = test_queue().await;
        for n in 0..4 {
            queue.push(&serde_json::json!({ "n": n })).await.unwrap();
        }
        let mut conn = queue.pool.get().await.unwrap();
        let read = queue.read(&mut conn, "planner-1", 4, None).await.unwrap();

        queue.ack_all(&[read[0].id.clone(), read[2].id.clone()]).await.unwrap();
        queue.ack_all(&[]).await.unwrap();

        assert_eq!((queue.len().await.unwrap(), queue.pending().await.unwrap()), (2, 2));
        let left = queue.reclaim("planner-2", Duration::ZERO, 10).await.unwrap();
        let left: Vec<serde_json::Value> = left.into_iter().map(|e| e.item.unwrap()).collect();
        assert_eq!(left, vec![serde_json::json!({ "n": 1 }), serde_json::json!({ "n": 3 })]);
    }
}
