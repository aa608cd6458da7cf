//! Capturing a step's output: numbered, timed, batched into the store,
//! capped, with the tail kept for the check run; archived once the step
//! ends, so a finished log leaves Redis's hot path.

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
///
/// A line longer than the step reader's cut arrives in pieces that do not
/// end in `\n`. So that a secret printed across a cut is still masked, the
/// end of such a piece (as many bytes as a masked form can span, less one)
/// is held back and masked with the next piece.
pub fn spawn_writer(target: LogTarget) -> (mpsc::Sender<String>, JoinHandle<Captured>) {
    let (tx, mut rx) = mpsc::channel::<String>(CHANNEL_LINES);
    let handle = tokio::spawn(async move {
        let mut writer = Writer::new(target);
        let mut deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
        loop {
            let next = tokio::select! {
                line = rx.recv() => line.map(Some),
                _ = tokio::time::sleep_until(deadline) => Some(None),
            };
            match next {
                None => break,
                Some(Some(line)) => {
                    if writer.take(line) {
                        writer.flush().await;
                        deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
                    }
                }
                Some(None) => {
                    writer.flush().await;
                    deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
                }
            }
        }
        writer.finish().await
    });
    (tx, handle)
}

/// One step's log on its way to the store.
struct Writer {
    target: LogTarget,
    started: Instant,
    captured: Captured,
    batch: Vec<LogLine>,
    stored_bytes: u64,
    /// The held-back end of a piece of a cut line.
    carry: String,
}

impl Writer {
    fn new(target: LogTarget) -> Self {
        Self { target, started: Instant::now(), captured: Captured::default(), batch: Vec::new(), stored_bytes: 0, carry: String::new() }
    }

    /// Takes one line (or piece) from the step; true when the batch is full.
    fn take(&mut self, line: String) -> bool {
        let mut line = if self.carry.is_empty() { line } else { std::mem::take(&mut self.carry) + &line };
        let reach = self.target.masker.reach();
        if reach > 0 && !line.ends_with('\n') {
            let mut keep = line.len().saturating_sub(reach - 1);
            while !line.is_char_boundary(keep) {
                keep -= 1;
            }
            self.carry = line.split_off(keep);
            if line.is_empty() {
                return false;
            }
        }
        self.store(line);
        self.batch.len() >= BATCH_LINES
    }

    /// Masks a line, finds its annotations, keeps it in the tail and
    /// batches it, or the limit's notice once, or nothing past the limit.
    fn store(&mut self, line: String) {
        let line = if let Cow::Owned(masked) = self.target.masker.mask(&line) { masked } else { line };
        if let Some((collected, workspace)) = &self.target.annotations
            && let Some(found) = parse_line(&strip_ansi(&line), workspace)
        {
            collected.lock().expect("not poisoned").add(found);
        }
        self.captured.bytes += line.len() as u64;
        self.captured.keep(&line);
        if self.captured.truncated {
            return;
        }
        self.stored_bytes += line.len() as u64;
        let out = if self.stored_bytes > self.target.limit {
            self.captured.truncated = true;
            format!(
                "[greenlight] this step's log passed its limit of {} MiB; later output is not stored\n",
                self.target.limit / (1024 * 1024)
            )
        } else {
            line
        };
        self.batch.push(LogLine { pos: self.captured.lines, out, time: self.started.elapsed().as_secs() as i64 });
        self.captured.lines += 1;
    }

    /// Stores the batch.
    async fn flush(&mut self) {
        let LogTarget { logs, stage, step, .. } = &self.target;
        if self.batch.is_empty() {
            return;
        }
        if let Err(e) = logs.append(*stage, *step, &self.batch).await {
            tracing::warn!(%stage, step, error = %e, lines = self.batch.len(), "could not store log lines");
        }
        self.batch.clear();
    }

    /// Stores what is held back and the last batch, then archives the
    /// log (it is finished: out of Redis's stream, into the log store);
    /// what was captured. A log that cannot be archived stays a stream and
    /// reads the same.
    async fn finish(mut self) -> Captured {
        if !self.carry.is_empty() {
            let rest = std::mem::take(&mut self.carry);
            self.store(rest);
        }
        self.flush().await;
        let LogTarget { logs, stage, step, .. } = &self.target;
        if let Err(e) = logs.archive(*stage, *step).await {
            tracing::warn!(%stage, step, error = %e, "could not archive a finished log; it stays in Redis");
        }
        self.captured
    }
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
