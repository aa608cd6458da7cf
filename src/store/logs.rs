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
