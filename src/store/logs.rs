//! Step logs: Drone's log lines, kept in a Redis stream per step so they can
//! be read while the step runs and followed live from any process.
//!
//! Each stream entry holds a batch of lines (one XADD per batch, not per
//! line), which keeps a step printing at 50 MB/s from flooding Redis.
//!
//! When a step ends its log is archived: compressed into one object in the
//! log store (see [`archive`]), then the stream is deleted, so Redis holds
//! finished logs compressed or not at all. Readers prefer the stream while
//! it exists and fall back to the object, so a worker stopped between the
//! two leaves a log that reads the same; callers never ask where a log is.

mod archive;

use super::StoreResult;
use crate::config::LogStoreConfig;
use crate::ids::StageId;
use crate::redis_pool::Pool;
use archive::{Archive, Packer, unpack};
use redis::Script;
use redis::streams::StreamRangeReply;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::LazyLock;

/// One log line, as Drone's API serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// 0-based line number within the step.
    pub pos: i64,
    /// The text, with its trailing newline.
    pub out: String,
    /// Seconds since the step started.
    pub time: i64,
}

/// The end of a step's log.
#[derive(Debug, Clone, Default)]
pub struct LogTail {
    /// The last lines, in order.
    pub lines: Vec<LogLine>,
    /// How many lines the log has in all.
    pub total: usize,
}

/// Where step logs live.
#[derive(Clone)]
pub struct Logs {
    pool: Pool,
    archive: Archive,
}

/// Stream entries read at once while archiving (each up to 1,000 lines).
const ARCHIVE_ENTRIES: usize = 8;

/// Deletes a log's stream if its newest entry is still `ARGV[1]`: lines
/// appended after it was archived (a stage run again elsewhere) keep it.
static DELETE_IF_LAST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if last and last[1] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

/// The stream key of a step's log.
pub(super) fn log_key(stage: StageId, step: i64) -> String {
    format!("gl:log:{stage}:{step}")
}

impl Logs {
    /// Logs over a Redis pool, finished ones kept compressed in Redis too.
    pub fn new(pool: Pool) -> Self {
        Self { archive: Archive::Redis(pool.clone()), pool }
    }

    /// Logs over a Redis pool, finished ones kept where `config` says; an
    /// S3 bucket is checked to be writable first.
    pub async fn connect(pool: Pool, config: &LogStoreConfig) -> anyhow::Result<Self> {
        let archive = match config {
            LogStoreConfig::Redis => Archive::Redis(pool.clone()),
            LogStoreConfig::S3(s3) => Archive::s3(s3).await?,
        };
        Ok(Self { pool, archive })
    }

    /// Moves a finished step's log out of its stream: writes the compressed
    /// object, then deletes the stream. Call once the step's last lines are
    /// stored; false when there was nothing to archive.
    pub async fn archive(&self, stage: StageId, step: i64) -> StoreResult<bool> {
        let key = log_key(stage, step);
        let mut conn = self.pool.get().await?;
        let mut packer = Packer::new();
        let (mut start, mut last) = ("-".to_string(), None);
        loop {
            let reply: StreamRangeReply =
                redis::cmd("XRANGE").arg(&key).arg(&start).arg("+").arg("COUNT").arg(ARCHIVE_ENTRIES).query_async(&mut conn).await?;
            let Some(entry) = reply.ids.last() else { break };
            start = format!("({}", entry.id);
            last = Some(entry.id.clone());
            let batches: Vec<String> = reply.ids.iter().filter_map(|e| e.get::<String>("lines")).collect();
            let key = key.clone();
            packer = tokio::task::spawn_blocking(move || packer.add(&key, &batches).map(|()| packer))
                .await
                .map_err(|e| super::StoreError::LogStore(format!("packing a log: {e}")))??;
        }
        let Some(last) = last.filter(|_| packer.lines() > 0) else { return Ok(false) };
        let bytes = tokio::task::spawn_blocking(move || packer.finish())
            .await
            .map_err(|e| super::StoreError::LogStore(format!("packing a log: {e}")))?;
        // No pooled connection is held while a bucket may be slow to answer.
        drop(conn);
        self.archive.put(stage, step, bytes).await?;
        DELETE_IF_LAST.key(&key).arg(last).invoke_async::<i64>(&mut self.pool.get().await?).await?;
        Ok(true)
    }

    /// Every line of an archived log; `None` when it is not archived.
    pub(super) async fn archived(&self, stage: StageId, step: i64) -> StoreResult<Option<Vec<LogLine>>> {
        let Some(bytes) = self.archive.get(stage, step).await? else { return Ok(None) };
        Ok(Some(unpack(log_key(stage, step), bytes, Vec::new(), |all, line, _| all.push(line)).await?))
    }

    /// Whether a step's lines are (still) in their stream.
    pub(super) async fn in_stream(&self, stage: StageId, step: i64) -> StoreResult<bool> {
        let mut conn = self.pool.get().await?;
        Ok(redis::cmd("EXISTS").arg(log_key(stage, step)).query_async::<i64>(&mut conn).await? > 0)
    }

    /// Appends a batch of lines.
    pub async fn append(&self, stage: StageId, step: i64, lines: &[LogLine]) -> StoreResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.get().await?;
        let json = serde_json::to_string(lines).expect("log lines serialize");
        redis::cmd("XADD").arg(log_key(stage, step)).arg("*").arg("lines").arg(json).query_async::<String>(&mut conn).await?;
        Ok(())
    }

    /// Every line stored so far.
    pub async fn read(&self, stage: StageId, step: i64) -> StoreResult<Vec<LogLine>> {
        let mut conn = self.pool.get().await?;
        let reply: StreamRangeReply = redis::cmd("XRANGE").arg(log_key(stage, step)).arg("-").arg("+").query_async(&mut conn).await?;
        if reply.ids.is_empty() {
            return Ok(self.archived(stage, step).await?.unwrap_or_default());
        }
        Ok(reply
            .ids
            .iter()
            .filter_map(|e| e.get::<String>("lines"))
            .flat_map(|json| serde_json::from_str::<Vec<LogLine>>(&json).unwrap_or_default())
            .collect())
    }

    /// The last `max_lines` lines, read from the end of the stream (a page
    /// showing a tail never loads a 16 MiB log), and how many lines there are.
    pub async fn tail(&self, stage: StageId, step: i64, max_lines: usize) -> StoreResult<LogTail> {
        let mut conn = self.pool.get().await?;
        let mut batches: Vec<Vec<LogLine>> = Vec::new();
        let mut collected = 0;
        let mut before = "+".to_string();
        while collected < max_lines {
            let reply: StreamRangeReply =
                redis::cmd("XREVRANGE").arg(log_key(stage, step)).arg(&before).arg("-").arg("COUNT").arg(1).query_async(&mut conn).await?;
            let Some(entry) = reply.ids.into_iter().next() else { break };
            // Exclusive ranges (`(id`) keep the next read before this entry.
            before = format!("({}", entry.id);
            let lines: Vec<LogLine> = entry.get::<String>("lines").and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default();
            collected += lines.len();
            batches.push(lines);
        }
        if collected < max_lines && !self.in_stream(stage, step).await? {
            // Not in a stream (or archived while this read it): the object has it all.
            return self.archived_tail(stage, step, max_lines).await;
        }
        let total = batches.first().and_then(|b| b.last()).map_or(0, |l| l.pos as usize + 1);
        let mut lines: Vec<LogLine> = batches.into_iter().rev().flatten().collect();
        lines.drain(..lines.len().saturating_sub(max_lines));
        Ok(LogTail { lines, total })
    }

    /// Forgets a step's log, streamed and archived (a stage run again
    /// starts afresh; retention prunes old ones).
    pub async fn clear(&self, stage: StageId, step: i64) -> StoreResult<()> {
        let mut conn = self.pool.get().await?;
        redis::cmd("DEL").arg(log_key(stage, step)).query_async::<i64>(&mut conn).await?;
        self.archive.delete(stage, step).await
    }

    /// The last `max_lines` lines of an archived log (none if it is not),
    /// kept in one pass: never more than that many held.
    async fn archived_tail(&self, stage: StageId, step: i64, max_lines: usize) -> StoreResult<LogTail> {
        let Some(bytes) = self.archive.get(stage, step).await? else { return Ok(LogTail::default()) };
        let keep = (max_lines, VecDeque::new(), 0usize);
        let (_, lines, total) = unpack(log_key(stage, step), bytes, keep, |(max, kept, total), line, _| {
            *total = line.pos as usize + 1;
            kept.push_back(line);
            if kept.len() > *max {
                kept.pop_front();
            }
        })
        .await?;
        Ok(LogTail { lines: lines.into(), total })
    }

    /// The newest lines of an archived log whose JSON (and a separator
    /// each) fits in `max_bytes`, as [`Logs::tail_within`] counts them.
    async fn archived_tail_within(&self, stage: StageId, step: i64, max_bytes: usize) -> StoreResult<LogTail> {
        let Some(bytes) = self.archive.get(stage, step).await? else { return Ok(LogTail::default()) };
        let keep = (max_bytes, VecDeque::new(), 0usize, 0usize);
        let (_, lines, _, total) = unpack(log_key(stage, step), bytes, keep, |(max, kept, weight, total), line, len| {
            *total = line.pos as usize + 1;
            kept.push_back((line, len + 1));
            *weight += len + 1;
            while *weight > *max {
                let Some((_, len)) = kept.pop_front() else { break };
                *weight -= len;
            }
        })
        .await?;
        Ok(LogTail { lines: lines.into_iter().map(|(line, _)| line).collect(), total })
    }
}
/// The newest lines of a step's log whose stored JSON fits in `ARGV[1]`
/// bytes, cut inside Redis so the caller never receives a whole batch
/// (one stored batch holds up to 1,000 lines of 16 KiB: 16 MiB).
/// KEYS: the log stream. Returns `{lines as one JSON array, total lines}`.
///
/// Batches are serde_json's compact `[{"pos":N,"out":"…","time":T},…]`;
/// inside a JSON string every `"` is escaped, so `{"pos":` only ever starts
/// a line, and a batch cut just before one is still a list of whole lines.
static TAIL_WITHIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local budget = tonumber(ARGV[1])
local pieces = {}
local total = 0
local before = '+'
local first = true
-- Where the last line of a batch starts, looking from `from` on.
local function last_line(raw, from)
  local found = nil
  while true do
    local s = string.find(raw, '{"pos":', from, true)
    if not s then return found end
    found, from = s, s + 1
  end
end
while true do
  local entry = redis.call('XREVRANGE', KEYS[1], before, '-', 'COUNT', 1)[1]
  if not entry then break end
  before = '(' .. entry[1]
  local raw = '[]'
  for i = 1, #entry[2], 2 do
    if entry[2][i] == 'lines' then raw = entry[2][i + 1] end
  end
  if first then
    first = false
    local at = last_line(raw, math.max(1, #raw - 262144)) or last_line(raw, 1)
    if at then total = (tonumber(string.match(raw, '^{"pos":(%d+)', at)) or -1) + 1 end
  end
  local body = string.sub(raw, 2, #raw - 1)
  if #body + 1 <= budget then
    if #body > 0 then table.insert(pieces, 1, body) end
    budget = budget - #body - 1
  else
    local s = string.find(body, '{"pos":', #body - budget + 1, true)
    if s then table.insert(pieces, 1, string.sub(body, s)) end
    break
  end
  if budget <= 0 then break end
end
return {'[' .. table.concat(pieces, ',') .. ']', total}
"#,
    )
});

impl Logs {
    /// The newest whole lines of a step's log taking at most `max_bytes`
    /// as stored (at least the bytes of their text), and how many lines the
    /// log has: what a page embeds, never more than `max_bytes` read.
    pub async fn tail_within(&self, stage: StageId, step: i64, max_bytes: usize) -> StoreResult<LogTail> {
        let mut conn = self.pool.get().await?;
        let (json, total): (String, i64) = TAIL_WITHIN.key(log_key(stage, step)).arg(max_bytes).invoke_async(&mut conn).await?;
        if total <= 0 {
            // A stream always holds a line: none means archived (or nothing printed).
            return self.archived_tail_within(stage, step, max_bytes).await;
        }
        let lines: Vec<LogLine> = super::error::decode(&log_key(stage, step), &json)?;
        Ok(LogTail { lines, total: total.max(0) as usize })
    }
}
