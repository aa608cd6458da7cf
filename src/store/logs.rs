//! Step logs: Drone's log lines, kept in a Redis stream per step so they can
//! be read while the step runs and followed live from any process.
//!
//! Each stream entry holds a batch of lines (one XADD per batch, not per
//! line), which keeps a step printing at 50 MB/s from flooding Redis.

use super::StoreResult;
use crate::ids::StageId;
use deadpool_redis::Pool;
use redis::streams::StreamRangeReply;
use serde::{Deserialize, Serialize};

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
}

/// The stream key of a step's log.
pub(super) fn log_key(stage: StageId, step: i64) -> String {
    format!("gl:log:{stage}:{step}")
}

impl Logs {
    /// Logs over a Redis pool.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
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
        let total = batches.first().and_then(|b| b.last()).map_or(0, |l| l.pos as usize + 1);
        let mut lines: Vec<LogLine> = batches.into_iter().rev().flatten().collect();
        lines.drain(..lines.len().saturating_sub(max_lines));
        Ok(LogTail { lines, total })
    }

    /// Forgets a step's log (a stage run again starts afresh).
    pub async fn clear(&self, stage: StageId, step: i64) -> StoreResult<()> {
        let mut conn = self.pool.get().await?;
        redis::cmd("DEL").arg(log_key(stage, step)).query_async::<i64>(&mut conn).await?;
        Ok(())
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
const TAIL_WITHIN: &str = r#"
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
"#;

impl Logs {
    /// The newest whole lines of a step's log taking at most `max_bytes`
    /// as stored (at least the bytes of their text), and how many lines the
    /// log has: what a page embeds, never more than `max_bytes` read.
    pub async fn tail_within(&self, stage: StageId, step: i64, max_bytes: usize) -> StoreResult<LogTail> {
        let mut conn = self.pool.get().await?;
        let (json, total): (String, i64) =
            redis::Script::new(TAIL_WITHIN).key(log_key(stage, step)).arg(max_bytes).invoke_async(&mut conn).await?;
        let lines: Vec<LogLine> = super::error::decode(&log_key(stage, step), &json)?;
        Ok(LogTail { lines, total: total.max(0) as usize })
    }
}
