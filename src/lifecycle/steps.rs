//! Step records within a running stage: the only place their status changes.

use crate::model::{Stage, Status};

/// Forgets what an earlier run of the stage recorded of its steps (a
/// takeover or a hand back runs it again from the start).
pub fn reset_steps(stage: &mut Stage) {
    for step in &mut stage.steps {
        step.status = Status::Pending;
        step.started = 0;
        step.stopped = 0;
        step.exit_code = 0;
        step.attempts = 0;
        step.error.clear();
    }
}

/// Marks step record `index` running at `now`; returns its number.
pub fn step_started(stage: &mut Stage, index: usize, now: i64) -> i64 {
    let step = &mut stage.steps[index];
    step.status = Status::Running;
    step.started = now;
    step.number
}

/// How a step ended, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepEnd {
    /// Drone's status.
    pub status: Status,
    /// The script's exit code.
    pub exit_code: i64,
    /// What went wrong outside the script (a timeout, a refused secret), or empty.
    pub error: String,
    /// How many times it ran (more than 1 after a `retry`).
    pub attempts: u32,
}

/// Records how step record `index` ended at `now`.
pub fn step_ended(stage: &mut Stage, index: usize, end: StepEnd, now: i64) {
    let step = &mut stage.steps[index];
    step.status = end.status;
    step.exit_code = end.exit_code;
    step.error = end.error;
    step.attempts = end.attempts;
    step.stopped = now;
}

/// Marks pipeline steps that never ran (a `when` excluded them, an earlier
/// step failed) as skipped.
pub fn step_skipped(stage: &mut Stage, index: usize) {
    stage.steps[index].status = Status::Skipped;
}
