//! One reader per process for every step log being followed live.
//!
//! A follower used to hold a Redis connection of its own for its blocking
//! reads: 200 browsers on one running step took Redis from 7 to 269
//! clients, and at Redis's client limit leases and planning stop. Here one
//! task per process reads every followed log with a single blocking `XREAD`
//! over all their keys, and fans each batch out to that step's followers
//! through a broadcast channel. A follower first reads what is stored
//! (a pooled, non-blocking `XRANGE`), then takes batches newer than the
//! last entry it has; one that falls behind the channel catches up with
//! another `XRANGE` from where it was.
//!
//! Order of subscribing and reading keeps every line exactly once: a
//! follower subscribes before it reads what is stored, so a batch the hub
//! announces after the read arrives through the channel, and one announced
//! before is in the stream; duplicates are dropped by entry id.
//!
//! A finished step's log is archived (its stream deleted), possibly before
//! the hub read its last batches. So when a step is over and its stream is
//! gone, the hub reads the archived log once and sends it to the step's
//! followers, who keep the lines past the last position they have. A log
//! archived before anyone follows it is returned whole, and ends at once.

use super::logs::{LogLine, Logs, log_key};
use super::{Store, StoreResult};
use crate::ids::StageId;
use crate::redis_pool::Pool;
use crate::redis_server::Redis;
use redis::streams::{StreamRangeReply, StreamReadReply};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

/// How long the hub's read waits for new lines before it checks which
/// steps ended and which keys gained or lost followers.
const READ_BLOCK: Duration = Duration::from_secs(1);

/// Batches a follower may fall behind before it catches up from Redis.
const CHANNEL_BATCHES: usize = 256;

/// A stream entry id (`ms-seq`), ordered as Redis orders them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct EntryId(u64, u64);

impl EntryId {
    fn parse(raw: &str) -> Self {
        let (ms, seq) = raw.split_once('-').unwrap_or((raw, "0"));
        Self(ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
    }

    fn text(self) -> String {
        format!("{}-{}", self.0, self.1)
    }
}

/// What the hub tells a step's followers.
#[derive(Debug, Clone)]
enum HubEvent {
    /// A stored batch of lines and its entry id.
    Lines(EntryId, Arc<Vec<LogLine>>),
    /// The step's archived log, whole (its stream is gone).
    Archived(Arc<Vec<LogLine>>),
    /// The step is over and every line has been announced.
    End,
}

/// A followed step: where the hub's reads are, and its followers' channel.
struct Followed {
    /// The last entry announced; `None` until a first follower has read the stored lines.
    cursor: Option<EntryId>,
    tx: broadcast::Sender<HubEvent>,
}

type Key = (StageId, i64);

/// The process's log reader; cheap to clone.
#[derive(Clone)]
pub struct LogHub {
    followed: Arc<Mutex<HashMap<Key, Followed>>>,
    wake: Arc<Notify>,
    pool: Pool,
    logs: Logs,
}

/// One follower of one step's log.
pub struct LogSubscription {
    key: Key,
    pool: Pool,
    rx: broadcast::Receiver<HubEvent>,
    last: EntryId,
    /// The position of the next line to return.
    next_pos: i64,
    stored: Option<Vec<LogLine>>,
    /// The log was archived when following began: nothing follows `stored`.
    ended: bool,
}

/// Every entry of `key` after `after`, as (id, lines).
async fn range_after(pool: &Pool, key: Key, after: Option<EntryId>) -> StoreResult<Vec<(EntryId, Vec<LogLine>)>> {
    let start = after.map_or("-".to_string(), |id| format!("({}", id.text()));
    let reply: StreamRangeReply =
        redis::cmd("XRANGE").arg(log_key(key.0, key.1)).arg(start).arg("+").query_async(&mut pool.get().await?).await?;
    Ok(reply.ids.iter().map(|e| (EntryId::parse(&e.id), decode(e.get::<String>("lines")))).collect())
}

fn decode(json: Option<String>) -> Vec<LogLine> {
    json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default()
}

impl LogHub {
    /// A hub reading through `redis`, its task running until `shutdown`;
    /// `store` tells it when a followed step is over, `logs` has the
    /// archived ones.
    pub fn start(redis: Redis, store: Store, logs: Logs, shutdown: CancellationToken) -> Self {
        let hub = Self { followed: Arc::default(), wake: Arc::new(Notify::new()), pool: redis.pool.clone(), logs };
        tokio::spawn(hub.clone().run(redis, store, shutdown));
        hub
    }

    /// Follows step `step` of `stage`: the lines stored so far, then new
    /// ones as they are stored, until the step is over (at once when its
    /// log is archived).
    pub async fn follow(&self, stage: StageId, step: i64) -> StoreResult<LogSubscription> {
        let key = (stage, step);
        let rx = {
            let mut followed = self.followed.lock().expect("not poisoned");
            let entry = followed.entry(key).or_insert_with(|| Followed { cursor: None, tx: broadcast::channel(CHANNEL_BATCHES).0 });
            entry.tx.subscribe()
        };
        let entries = range_after(&self.pool, key, None).await?;
        if entries.is_empty()
            && let Some(lines) = self.logs.archived(stage, step).await?
        {
            // Dropping `rx` leaves the key without followers: the hub forgets it.
            let next_pos = lines.last().map_or(0, |l| l.pos + 1);
            return Ok(LogSubscription {
                key,
                pool: self.pool.clone(),
                rx,
                last: EntryId::default(),
                next_pos,
                stored: Some(lines),
                ended: true,
            });
        }
        let last = entries.last().map(|(id, _)| *id).unwrap_or_default();
        if let Some(followed) = self.followed.lock().expect("not poisoned").get_mut(&key) {
            followed.cursor = Some(followed.cursor.map_or(last, |c| c.min(last)));
        }
        self.wake.notify_one();
        let stored: Vec<LogLine> = entries.into_iter().flat_map(|(_, lines)| lines).collect();
        let next_pos = stored.last().map_or(0, |l| l.pos + 1);
        Ok(LogSubscription { key, pool: self.pool.clone(), rx, last, next_pos, stored: Some(stored), ended: false })
    }

    /// How many steps are being followed (one Redis read covers them all).
    pub fn followed_steps(&self) -> usize {
        self.followed.lock().expect("not poisoned").len()
    }

    /// The hub's loop: read every followed key at once, announce, end the
    /// steps that are over, forget keys nobody follows.
    async fn run(self, redis: Redis, store: Store, shutdown: CancellationToken) {
        let mut conn = None;
        while !shutdown.is_cancelled() {
            let keys = self.ready_keys();
            if keys.is_empty() {
                tokio::select! { _ = shutdown.cancelled() => return, _ = self.wake.notified() => continue }
            }
            let over = self.steps_over(&store, &keys).await;
            if conn.is_none() {
                conn = redis.blocking(READ_BLOCK).await.map_err(|e| tracing::warn!(error = %e, "log hub cannot connect")).ok();
            }
            let Some(c) = conn.as_mut() else {
                tokio::select! { _ = shutdown.cancelled() => return, _ = tokio::time::sleep(READ_BLOCK) => continue }
            };
            let read = tokio::select! { _ = shutdown.cancelled() => return, r = read(c, &keys) => r };
            match read {
                Ok(batches) => {
                    let archived = self.archived(&over).await;
                    self.announce(batches, &over, archived);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "log hub read failed; reconnecting");
                    conn = None;
                }
            }
        }
    }

    /// Keys with followers and a cursor; forgets those nobody follows.
    fn ready_keys(&self) -> Vec<(Key, EntryId)> {
        let mut followed = self.followed.lock().expect("not poisoned");
        followed.retain(|_, f| f.tx.receiver_count() > 0);
        followed.iter().filter_map(|(key, f)| f.cursor.map(|c| (*key, c))).collect()
    }

    /// Which of `keys` were over before this read (their read is their last).
    async fn steps_over(&self, store: &Store, keys: &[(Key, EntryId)]) -> Vec<Key> {
        let mut over = Vec::new();
        let mut stages: HashMap<StageId, Option<crate::model::Stage>> = HashMap::new();
        for ((stage, step), _) in keys {
            if !stages.contains_key(stage) {
                stages.insert(*stage, store.stage(*stage).await.ok().flatten());
            }
            let done =
                stages[stage].as_ref().and_then(|s| s.steps.iter().find(|st| st.number == *step)).is_none_or(|st| st.status.is_done());
            if done {
                over.push((*stage, *step));
            }
        }
        over
    }

    /// The archived logs of the steps over whose streams are gone, read
    /// once for all their followers.
    async fn archived(&self, over: &[Key]) -> HashMap<Key, Arc<Vec<LogLine>>> {
        let mut out = HashMap::new();
        for &(stage, step) in over {
            let read = match self.logs.in_stream(stage, step).await {
                Ok(true) => continue,
                Ok(false) => self.logs.archived(stage, step).await,
                Err(e) => Err(e),
            };
            match read {
                Ok(Some(lines)) => {
                    out.insert((stage, step), Arc::new(lines));
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(%stage, step, error = %e, "log hub cannot read an archived log; its followers may miss its end"),
            }
        }
        out
    }

    /// Sends each key's new batches to its followers, then to those over
    /// their archived log (if it was) and `End`.
    fn announce(&self, batches: Vec<(Key, EntryId, Vec<LogLine>)>, over: &[Key], mut archived: HashMap<Key, Arc<Vec<LogLine>>>) {
        let mut followed = self.followed.lock().expect("not poisoned");
        for (key, id, lines) in batches {
            if let Some(f) = followed.get_mut(&key) {
                f.cursor = Some(id);
                let _ = f.tx.send(HubEvent::Lines(id, Arc::new(lines)));
            }
        }
        for key in over {
            if let Some(f) = followed.remove(key) {
                if let Some(lines) = archived.remove(key) {
                    let _ = f.tx.send(HubEvent::Archived(lines));
                }
                let _ = f.tx.send(HubEvent::End);
            }
        }
    }
}

/// One blocking read of every key from its cursor.
async fn read(conn: &mut redis::aio::MultiplexedConnection, keys: &[(Key, EntryId)]) -> StoreResult<Vec<(Key, EntryId, Vec<LogLine>)>> {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("BLOCK").arg(READ_BLOCK.as_millis() as u64).arg("STREAMS");
    let names: Vec<String> = keys.iter().map(|((stage, step), _)| log_key(*stage, *step)).collect();
    cmd.arg(&names);
    cmd.arg(keys.iter().map(|(_, cursor)| cursor.text()).collect::<Vec<_>>());
    let reply: Option<StreamReadReply> = cmd.query_async(conn).await?;
    let mut out = Vec::new();
    for stream in reply.into_iter().flat_map(|r| r.keys) {
        let Some(index) = names.iter().position(|n| *n == stream.key) else { continue };
        for entry in stream.ids {
            out.push((keys[index].0, EntryId::parse(&entry.id), decode(entry.get::<String>("lines"))));
        }
    }
    Ok(out)
}

impl LogSubscription {
    /// The next lines: first those stored when following began, then each
    /// new batch; `None` once the step is over and all were returned.
    pub async fn next(&mut self) -> StoreResult<Option<Vec<LogLine>>> {
        if let Some(stored) = self.stored.take() {
            return Ok(Some(stored));
        }
        if self.ended {
            return Ok(None);
        }
        loop {
            match self.rx.recv().await {
                Ok(HubEvent::Lines(id, lines)) if id > self.last => {
                    self.last = id;
                    if let Some(line) = lines.last() {
                        self.next_pos = line.pos + 1;
                    }
                    return Ok(Some(lines.as_ref().clone()));
                }
                Ok(HubEvent::Lines(..)) => continue,
                Ok(HubEvent::Archived(lines)) => {
                    let rest = self.past_last(&lines);
                    if !rest.is_empty() {
                        return Ok(Some(rest));
                    }
                }
                Ok(HubEvent::End) | Err(broadcast::error::RecvError::Closed) => return Ok(None),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let missed = range_after(&self.pool, self.key, Some(self.last)).await?;
                    if let Some((id, _)) = missed.last() {
                        self.last = *id;
                    }
                    let missed: Vec<LogLine> = missed.into_iter().flat_map(|(_, lines)| lines).collect();
                    return Ok(Some(self.past_last(&missed)));
                }
            }
        }
    }

    /// The lines of `lines` after the last one returned; moves past them.
    fn past_last(&mut self, lines: &[LogLine]) -> Vec<LogLine> {
        let rest: Vec<LogLine> = lines.iter().filter(|l| l.pos >= self.next_pos).cloned().collect();
        if let Some(last) = rest.last() {
            self.next_pos = last.pos + 1;
        }
        rest
    }
}
