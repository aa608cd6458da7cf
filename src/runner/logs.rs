//! Capturing a step's output: numbered, timed, batched into the store,
//! capped, with the tail kept for the check run.

use crate::ids::StageId;
use crate::publish::annotations::{Collected, parse_line};
use crate::secrets::{Masker, strip_ansi};
use crate::store::{LogLine, Logs};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Lines are written to Redis at least this often while a step prints.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// At most this many lines go into one stored batch.
pub const BATCH_LINES: usize = 1000;

/// The tail kept for the check run text.
pub const TAIL_BYTES: usize = 48 * 1024;

/// Lines waiting between the step's reader and the writer; a full channel
/// slows the reader (and so the step), keeping memory flat.
pub const CHANNEL_LINES: usize = 4096;

/// What a step's log came to.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// The last lines printed (at most [`TAIL_BYTES`]).
    tail: VecDeque<String>,
    /// What `tail` weighs (see [`Captured::keep`]), kept as lines come and
    /// go so that a line costs the same however long the tail is.
    tail_weight: usize,
    /// Lines stored, the limit's notice included; the next line's position.
    pub lines: i64,
    /// Bytes the step printed in all (after masking), stored or not.
    pub bytes: u64,
    /// Whether the per-step limit cut the stored log.
    pub truncated: bool,
}

impl Captured {
    /// Adds a line to the tail, dropping the oldest past [`TAIL_BYTES`]. A
    /// line weighs its length and at least 1, so empty lines cannot grow the
    /// tail without bound.
    pub fn keep(&mut self, line: &str) {
        self.tail_weight += line.len().max(1);
        self.tail.push_back(line.to_string());
        while self.tail_weight > TAIL_BYTES && self.tail.len() > 1 {
            if let Some(oldest) = self.tail.pop_front() {
                self.tail_weight -= oldest.len().max(1);
            }
        }
    }

    /// The tail as one text, for the check run of a failed step.
    pub fn tail_text(&self) -> String {
        self.tail.iter().map(String::as_str).collect()
    }
}

/// Where a step's lines go, and what is done to them on the way.
#[derive(Clone)]
pub struct LogTarget {
    /// Where the lines are stored.
    pub logs: Logs,
    /// The stage the step belongs to: with `step`, the log's key.
    pub stage: StageId,
    /// The step's number.
    pub step: i64,
    /// Stored bytes at most; later output is still read (so the step never
    /// blocks) and kept in the tail, but not stored.
    pub limit: u64,
    /// Secret values to hide, applied before a line is stored or kept
    /// (annotations found in it are masked again once decoded).
    pub masker: Arc<Masker>,
    /// Where annotations found in the lines are collected, and the
    /// workspace path the step saw (to make paths relative).
    pub annotations: Option<(Arc<std::sync::Mutex<Collected>>, String)>,
}

/// Starts the writer of one step's log; send it lines, drop the sender to
/// finish, and await the handle for what was captured.
pub fn spawn_writer(target: LogTarget) -> (mpsc::Sender<String>, JoinHandle<Captured>) {
    let LogTarget { logs, stage, step, limit, masker, annotations } = target;
    let (tx, mut rx) = mpsc::channel::<String>(CHANNEL_LINES);
    let handle = tokio::spawn(async move {
        let started = Instant::now();
        let mut captured = Captured::default();
        let mut batch: Vec<LogLine> = Vec::new();
        let mut stored_bytes = 0u64;
        let mut deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
        loop {
            let next = tokio::select! {
                line = rx.recv() => line.map(Some),
                _ = tokio::time::sleep_until(deadline) => Some(None),
            };
            match next {
                None => break,
                Some(Some(line)) => {
                    let line = if let Cow::Owned(masked) = masker.mask(&line) { masked } else { line };
                    if let Some((collected, workspace)) = &annotations
                        && let Some(found) = parse_line(&strip_ansi(&line), workspace)
                    {
                        collected.lock().expect("not poisoned").add(found);
                    }
                    captured.bytes += line.len() as u64;
                    captured.keep(&line);
                    if captured.truncated {
                        continue;
                    }
                    stored_bytes += line.len() as u64;
                    let out = if stored_bytes > limit {
                        captured.truncated = true;
                        format!(
                            "[greenlight] this step's log passed its limit of {} MiB; later output is not stored\n",
                            limit / (1024 * 1024)
                        )
                    } else {
                        line
                    };
                    batch.push(LogLine { pos: captured.lines, out, time: started.elapsed().as_secs() as i64 });
                    captured.lines += 1;
                    if batch.len() >= BATCH_LINES {
                        flush(&logs, stage, step, &mut batch).await;
                        deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
                    }
                }
                Some(None) => {
                    flush(&logs, stage, step, &mut batch).await;
                    deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
                }
            }
        }
        flush(&logs, stage, step, &mut batch).await;
        captured
    });
    (tx, handle)
}

async fn flush(logs: &Logs, stage: StageId, step: i64, batch: &mut Vec<LogLine>) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = logs.append(stage, step, batch).await {
        tracing::warn!(%stage, step, error = %e, lines = batch.len(), "could not store log lines");
    }
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_stays_bounded_and_its_weight_running_whatever_the_lines() {
        let mut captured = Captured::default();
        for _ in 0..300_000 {
            captured.keep("");
        }
        assert_eq!(captured.tail.len(), TAIL_BYTES, "empty lines weigh one byte each: the tail never holds more");
        for i in 0..100_000 {
            captured.keep(if i % 2 == 0 { "\n" } else { "a longer line of output\n" });
        }
        let weight: usize = captured.tail.iter().map(|l| l.len().max(1)).sum();
        assert_eq!(captured.tail_weight, weight);
        assert!(weight <= TAIL_BYTES && weight + 24 > TAIL_BYTES, "{weight}");
        assert!(captured.tail_text().ends_with("a longer line of output\n"));
    }
}
