//! Cron: scheduled builds of a branch (event `cron`, `DRONE_CRON` set),
//! managed through Drone's cron API.
//!
//! Every `serve` process runs a [`Scheduler`]. Each pass it reads the jobs
//! whose next tick has come and moves each one's next tick past *now* with
//! a compare-and-set in Redis (`Store::claim_cron_tick`): of any number of
//! processes passing at once, exactly one moves it, and only that one
//! starts the build. Because the next tick is computed after now, ticks
//! missed while every process was down fire once when one comes back, not
//! once per missed tick. A build's delivery id names its tick, so even a
//! second start of the same tick would be one build.

mod schedule;

pub use schedule::{DESCRIPTORS, MAX_EXPR_CHARS, Schedule, ScheduleError};

use crate::clock::SharedClock;
use crate::ids::DeliveryId;
use crate::model::{BuildRequest, CronJob, Event};
use crate::planner::Planner;
use crate::store::{DueCron, Store, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often each `serve` process looks for due jobs: cron's finest tick
/// is a minute, so a build starts within 15 s of its time.
pub const POLL_INTERVAL: Duration = Duration::from_secs(15);

/// The build's `trigger` for cron builds, as Drone's `@cron`.
pub const CRON_TRIGGER: &str = "@cron";

/// Why a cron job could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Its expression is not a schedule.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores a job (new or changed) with its next tick after `now`, none
/// while it is disabled; its expression is checked first.
pub async fn save(store: &Store, job: &CronJob, now: DateTime<Utc>) -> Result<(), SaveError> {
    let schedule = Schedule::parse(&job.expr)?;
    // A job with no tick left (30 February) keeps none: `i64::MAX` is never due.
    let next = (!job.disabled).then(|| schedule.next_after(now).unwrap_or(i64::MAX));
    store.put_cron(job, next).await?;
    Ok(())
}

/// Starts the builds of due cron jobs.
#[derive(Clone)]
pub struct Scheduler {
    store: Store,
    planner: Planner,
    clock: SharedClock,
}

impl Scheduler {
    /// A scheduler reading jobs from `store`, starting builds through
    /// `planner`, at `clock`'s time.
    pub fn new(store: Store, planner: Planner, clock: SharedClock) -> Self {
        Self { store, planner, clock }
    }

    /// One pass: fires every job whose tick has come and that no other
    /// process fired; returns how many this pass fired.
    pub async fn tick(&self) -> StoreResult<usize> {
        let now = self.clock.now();
        let mut fired = 0;
        for due in self.store.due_crons(now.timestamp()).await? {
            let Some(scheduled) = self.store.cron(due.repo, &due.name).await? else { continue };
            let next = match Schedule::parse(&scheduled.job.expr) {
                Ok(schedule) => schedule.next_after(now),
                Err(e) => {
                    tracing::warn!(error = %e, cron = %due.name, "a stored cron job's expression no longer parses; it is stopped");
                    None
                }
            };
            if !self.store.claim_cron_tick(&due, next.unwrap_or(i64::MAX)).await? {
                continue;
            }
            fired += 1;
            self.fire(&scheduled.job, &due).await;
        }
        Ok(fired)
    }

    /// Starts the build of one claimed tick. A failure is logged: the tick
    /// is spent either way (the next one tries again).
    async fn fire(&self, job: &CronJob, due: &DueCron) {
        let delivery = DeliveryId(format!("cron-{}-{}-{}", due.repo.0, job.name, due.tick));
        if let Err(e) = self.run(job, delivery).await {
            tracing::warn!(error = %e, cron = %job.name, "a cron job's build could not start");
        }
    }

    /// Starts a build of `job` now, once per `delivery`: the scheduler's
    /// ticks and the API's "run now".
    pub async fn run(&self, job: &CronJob, delivery: DeliveryId) -> anyhow::Result<Option<crate::model::Build>> {
        let repo = self.store.repo(job.repo_id).await?.ok_or_else(|| anyhow::anyhow!("the repository of cron job {} is gone", job.name))?;
        let request = BuildRequest {
            event: Event::Cron,
            branch: job.branch.clone(),
            commit: None,
            params: Default::default(),
            cron: job.name.clone(),
            by: CRON_TRIGGER.to_string(),
        };
        tracing::info!(repo = %repo.slug(), cron = %job.name, branch = %job.branch, "starting a cron build");
        Ok(self.planner.create(&repo, &request, delivery).await?)
    }

    /// Passes every `every` until `shutdown`.
    pub async fn run_forever(self, every: Duration, shutdown: CancellationToken) {
        crate::clock::every(every, shutdown, || async {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "looking for due cron jobs failed; the next pass tries again");
            }
        })
        .await;
    }
}
