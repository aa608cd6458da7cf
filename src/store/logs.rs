//! Step logs: Drone's log lines, kept in a Redis stream per step so they can
//! be read while the step runs and followed live from any process.
//!
//! Each stream entry holds a batch of lines (one XADD per batch, not per
//! line), which keeps a step printing at 50 MB/s from flooding Redis.

use crate::ids::StageId;
use crate::queue::pool_error;
use deadpool_redis::Pool;
use redis::RedisResult;
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

/// Where step logs live.
#[derive(Clone)]
pub struct Logs {
    pool: Pool,
}

/// The stream key of a step's log.
pub fn log_key(stage: StageId, step: i64) -> String {
    format!("gl:log:{stage}:{step}")
}

impl Logs {
    /// Logs over a Redis pool.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Appends a batch of lines.
    pub async fn append(&self, stage: StageId, step: i64, lines: &[LogLine]) -> RedisResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.get().await.map_err(pool_error)?;
        let json = serde_json::to_string(lines).expect("log lines serialize");
        redis::cmd("XADD").arg(log_key(stage, step)).arg("*").arg("lines").arg(json).query_async::<String>(&mut conn).await?;
        Ok(())
    }

    /// Every line stored so far.
    pub async fn read(&self, stage: StageId, step: i64) -> RedisResult<Vec<LogLine>> {
        let mut conn = self.pool.get().await.map_err(pool_error)?;
        let reply: StreamRangeReply = redis::cmd("XRANGE").arg(log_key(stage, step)).arg("-").arg("+").query_async(&mut conn).await?;
        Ok(reply
            .ids
            .iter()
            .filter_map(|e| e.get::<String>("lines"))
            .flat_map(|json| serde_json::from_str::<Vec<LogLine>>(&json).unwrap_or_default())
            .collect())
    }

    /// Forgets a step's log (a stage run again starts afresh).
    pub async fn clear(&self, stage: StageId, step: i64) -> RedisResult<()> {
        let mut conn = self.pool.get().await.map_err(pool_error)?;
        redis::cmd("DEL").arg(log_key(stage, step)).query_async::<i64>(&mut conn).await?;
        Ok(())
    }
}
