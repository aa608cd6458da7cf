//! A build's life, in one place: every transition of builds and stages is a
//! named operation here, and no other module assigns a build's status or a
//! stage's [`StageState`](crate::model::StageState).
//!
//! ```text
//!            start ──▶ Blocked ──approve──▶ Waiting ──dependencies done──▶ Pending{queued}
//!                 └──▶ Waiting ─────────────────────────────────────────▶ Pending{queued}
//!                 └──▶ Pending{queued} ──begin──▶ Running ──end──▶ Done{published}
//!                                                  │  └──hand back──▶ Pending{queued}
//!            cancel: Blocked/Waiting/Pending ──skip──▶ Done{skipped}; Running stages are
//!                    killed by their workers and end as Done{killed}
//! ```
//!
//! The operations are safe to repeat, because everything that calls them can
//! be interrupted and resumed: a planner crash resumes [`Lifecycle::start`]
//! for the same queue entry; a worker killed mid-stage has its stage begun
//! again by another ([`Lifecycle::begin`] notes the takeover); a stage that
//! ends twice after a takeover is counted once ([`Store::count_stage_done`]);
//! a cancel arriving while a stage is handed back is honoured by the next
//! worker's [`Lifecycle::begin`], which skips stages of cancelled builds; a
//! worker that begins a stage in the moment between its job being queued
//! and the stage being marked queued keeps its `Running` (the mark is an
//! atomic update that leaves a begun stage alone: before, the late mark
//! overwrote it, and a takeover then went unnoticed); a stalled worker's
//! late end or hand back, after another took its stage over, is dropped.
//!
//! Everything here calls downward: the store, the queue and the publisher.
//! Intake, the planner, the workers and the API call it.

mod build;
mod stage;
mod start;
mod steps;

pub use stage::cancel_note;
pub use stage::{Begun, Ended, JobState};
pub use start::StartError;
pub use start::rerun_trigger;
pub use steps::{StepEnd, reset_steps, step_ended, step_skipped, step_started};

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::queue::WorkQueue;
use crate::store::{StageJob, Store};

/// The owner of every transition, shared by every role of a process.
#[derive(Clone)]
pub struct Lifecycle {
    store: Store,
    jobs: WorkQueue<StageJob>,
    publisher: Publisher,
    clock: SharedClock,
    metrics: Metrics,
}

impl Lifecycle {
    /// Transitions recorded in `store`, stage jobs queued on `jobs`, GitHub
    /// told through `publisher`; finished builds and stages counted in `metrics`.
    pub fn new(store: Store, jobs: WorkQueue<StageJob>, publisher: Publisher, clock: SharedClock, metrics: Metrics) -> Self {
        Self { store, jobs, publisher, clock, metrics }
    }

    /// The store builds live in, for reading them.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The publisher, for what is published outside transitions (annotations of a running stage).
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }
}
