//! Stage-level transitions: queueing, beginning on a worker, ending (which
//! releases or skips the stages that wait for it and completes the build
//! after the last), skipping, and handing back to the queue.

use super::Lifecycle;
use super::steps::reset_steps;
use crate::ids::StageId;
use crate::model::{Build, Stage, StageJob, StageState, Status};
use crate::publish::StageReport;
use crate::store::StoreError;
use anyhow::Context;

/// Why a stage ends without running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SkipReason {
    /// Its build was cancelled first, with this reason (may be empty).
    Cancelled(String),
    /// A pipeline it depends on did not pass.
    DependencyFailed(Vec<String>),
}

impl SkipReason {
    /// The check run summary's line, and the cancel reason a cancelled stage reports.
    fn report(&self, now: chrono::DateTime<chrono::Utc>) -> StageReport {
        match self {
            SkipReason::Cancelled(reason) => {
                StageReport::not_run(cancel_note(reason, "before this stage started"), Some(reason.clone()), now)
            }
            SkipReason::DependencyFailed(deps) => {
                StageReport::not_run(format!("Skipped: a pipeline it depends on ({}) did not pass.", deps.join(", ")), None, now)
            }
        }
    }
}

/// The summary line of a cancelled stage.
pub fn cancel_note(reason: &str, when: &str) -> String {
    if reason.is_empty() { format!("Cancelled {when}.") } else { format!("Cancelled {when}: {reason}.") }
}

/// What a claimed stage job asks of a worker.
#[derive(Debug)]
pub enum JobState {
    /// Run the stage.
    Run,
    /// The stage ended while GitHub (or Redis) failed it: publish its result
    /// again and settle it, do not run it.
    Republish(Box<(Build, Stage)>),
    /// The stage is over and published, or waits for an administrator (a
    /// stale job): acknowledge it.
    Over,
    /// No such stage (an expired or foreign record): drop the job.
    Unknown,
}

/// How a worker's run of a stage ended, for its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The run's result stands (the stage ended or was handed back): acknowledge the job.
    Done,
    /// Another worker took the stage over while this one was stalled: its
    /// result was dropped, and the job now belongs to the other worker.
    TakenOver,
}

/// A stage a worker has begun.
#[derive(Debug)]
pub struct Begun {
    /// Its build, marked running.
    pub build: Build,
    /// The stage, marked running on this worker, its steps reset.
    pub stage: Stage,
    /// Summary lines about how it began (a takeover).
    pub notes: Vec<String>,
}

impl Lifecycle {
    /// Puts a stage's job on the stage stream and marks it queued. The job
    /// goes first: a crash in between leaves a duplicate job (which finds
    /// the stage taken or over), never a stage that no job will run. So a
    /// worker may begin the stage before it is marked queued: the mark is
    /// an atomic update that leaves a stage a worker has begun (or ended)
    /// as the worker wrote it, instead of overwriting it with this copy.
    pub(super) async fn queue_stage(&self, build: &Build, stage: &mut Stage) -> anyhow::Result<()> {
        self.jobs.push(&StageJob { build: build.id, stage: stage.id }).await?;
        let marked = self
            .store
            .update_stage(stage.id, |current| {
                let waiting = current.state.is_waiting() && current.state != StageState::Blocked;
                if waiting {
                    current.state = StageState::Pending { approved: current.state.approved(), queued: true };
                }
                waiting
            })
            .await?;
        *stage = marked.context("stage vanished")?;
        Ok(())
    }

    /// What a worker should do with a claimed job.
    pub async fn examine(&self, job: &StageJob) -> anyhow::Result<JobState> {
        let stage = match self.store.stage(job.stage).await {
            Ok(Some(stage)) => stage,
            Ok(None) => return Ok(JobState::Unknown),
            // Written by an older greenlight, or damaged: no run of it can be begun or ended.
            Err(e @ StoreError::Corrupt { .. }) => {
                tracing::error!(error = %e, "a stage job's stage cannot be read");
                return Ok(JobState::Unknown);
            }
            Err(e) => return Err(e.into()),
        };
        match stage.state {
            StageState::Done { published: false, .. } if stage.check_run.is_some() && stage.started > 0 => {
                let build = self.store.build(job.build).await?.context("build vanished")?;
                Ok(JobState::Republish(Box::new((build, stage))))
            }
            StageState::Done { .. } | StageState::Blocked => Ok(JobState::Over),
            _ => Ok(JobState::Run),
        }
    }

    /// Begins a stage on worker `machine`, which holds its lease: the stage
    /// and build running (a new attempt), the check run `in_progress`.
    /// `None` when its build was cancelled meanwhile (the stage is then
    /// skipped) or it is no longer to be run.
    pub async fn begin(&self, job: &StageJob, machine: &str) -> anyhow::Result<Option<Begun>> {
        let build = self.store.build(job.build).await?.context("build vanished")?;
        if let Some(reason) = self.store.cancel_reason(build.id).await? {
            self.skip(&build, job.stage, SkipReason::Cancelled(reason)).await?;
            return Ok(None);
        }
        let started = self.clock.now();
        let mut notes = Vec::new();
        let begun = self
            .store
            .update_stage(job.stage, |stage| {
                notes.clear();
                if matches!(stage.state, StageState::Done { .. } | StageState::Blocked) {
                    return false;
                }
                if let StageState::Running { .. } = stage.state {
                    notes.push(format!(
                        "The worker `{}` stopped while running this stage; `{machine}` ran it again from the start.",
                        stage.machine
                    ));
                }
                reset_steps(stage);
                stage.state = StageState::Running { approved: stage.state.approved() };
                stage.attempt += 1;
                stage.started = started.timestamp();
                stage.stopped = 0;
                stage.error.clear();
                stage.machine = machine.to_string();
                true
            })
            .await?
            .context("stage vanished")?;
        if begun.machine != machine || !matches!(begun.state, StageState::Running { .. }) {
            return Ok(None);
        }
        if !notes.is_empty() {
            tracing::warn!(stage = %begun.id, "taking over a stage whose worker stopped; running it again from the start");
        }
        let build = self.build_running(build, started.timestamp()).await?;
        if let Err(e) = self.publisher.stage_started(&build, &begun, started).await {
            tracing::warn!(error = %e, "could not mark the check run in progress; going on");
        }
        Ok(Some(Begun { build, stage: begun, notes }))
    }

    /// Records step record `index` of a running stage (its record alone:
    /// the cost of a stage stays linear in its steps), unless another worker
    /// has taken the stage over since `stage` was begun (false then).
    pub async fn record_step(&self, stage: &Stage, index: usize) -> anyhow::Result<bool> {
        let written = self.store.record_step(stage, &stage.steps[index], stage.attempt).await?;
        if !written {
            tracing::warn!(stage = %stage.id, worker = %stage.machine, attempt = stage.attempt, "another worker took this stage over; dropping this run's step record");
        }
        Ok(written)
    }

    /// Changes the stage's record if it is still the run `ours` began
    /// (running, the same attempt); `None` when another run has it now.
    async fn write_if_current(&self, ours: &Stage, mut change: impl FnMut(&mut Stage)) -> anyhow::Result<Option<Stage>> {
        let mut current_run = true;
        let updated = self
            .store
            .update_stage(ours.id, |current| {
                current_run = matches!(current.state, StageState::Running { .. }) && current.attempt == ours.attempt;
                if current_run {
                    change(current);
                }
                current_run
            })
            .await?;
        if !current_run {
            tracing::warn!(stage = %ours.id, worker = %ours.machine, attempt = ours.attempt, "another worker took this stage over; dropping this run's writes");
            return Ok(None);
        }
        Ok(updated)
    }

    /// Ends a stage that ran, with `status`: its result published, the
    /// stages waiting on it released or skipped, the build completed after
    /// its last stage. `Err` when GitHub could not take the result: the
    /// stage is over anyway, and the job's next claim publishes it again.
    /// A run that was taken over ends nothing ([`Ended::TakenOver`]).
    pub async fn end(&self, build: &Build, stage: &Stage, status: Status, report: &StageReport) -> anyhow::Result<Ended> {
        let now = self.now();
        let ended = self
            .write_if_current(stage, |current| {
                current.steps.clone_from(&stage.steps);
                current.exit_code = stage.exit_code;
                current.error.clone_from(&stage.error);
                current.state = StageState::Done { status, published: false };
                current.stopped = now;
            })
            .await?;
        let Some(ended) = ended else { return Ok(Ended::TakenOver) };
        self.metrics.stage_finished((ended.stopped - ended.started).max(0) as f64);
        let published = self.publisher.stage_finished(build, &ended, report).await;
        self.settle(build, ended.id).await?;
        // An outage at the very end must not run the stage again.
        published.context("publishing the stage result")?;
        self.mark_published(ended.id).await?;
        Ok(Ended::Done)
    }

    /// Publishes again the result of a stage that ended while GitHub was
    /// unreachable, and settles it again (in case that failed too: settling
    /// twice counts the stage once).
    pub async fn publish_again(&self, build: &Build, stage: &Stage, report: &StageReport) -> anyhow::Result<()> {
        self.publisher.stage_finished(build, stage, report).await.context("publishing the stage result again")?;
        self.settle(build, stage.id).await?;
        self.mark_published(stage.id).await
    }

    async fn mark_published(&self, stage: StageId) -> anyhow::Result<()> {
        self.store
            .update_stage(stage, |current| match current.state {
                StageState::Done { status, published: false } => {
                    current.state = StageState::Done { status, published: true };
                    true
                }
                _ => false,
            })
            .await?;
        Ok(())
    }

    /// Puts a running stage back in the queue for another worker (a
    /// graceful stop ran out of time): pending, its check run queued again.
    pub async fn hand_back(&self, build: &Build, stage: &Stage) -> anyhow::Result<Ended> {
        let handed = self
            .write_if_current(stage, |current| {
                reset_steps(current);
                current.state = StageState::Pending { approved: current.state.approved(), queued: false };
            })
            .await?;
        let Some(mut handed) = handed else { return Ok(Ended::TakenOver) };
        if let Err(e) = self.publisher.stage_handed_back(build, &handed).await {
            tracing::warn!(error = %e, "could not mark the check run queued again");
        }
        self.queue_stage(build, &mut handed).await?;
        tracing::info!(stage = %handed.id, "handed a stage back to the queue");
        Ok(Ended::Done)
    }

    /// Ends a stage that no worker has begun: skipped, its check run saying
    /// why (`cancelled` when its build was), then settled like any ended
    /// stage. Does nothing when a worker has begun it meanwhile.
    pub(super) async fn skip(&self, build: &Build, stage: StageId, reason: SkipReason) -> anyhow::Result<()> {
        if self.mark_skipped(build, stage, &reason).await? {
            self.settle(build, stage).await?;
        }
        Ok(())
    }

    /// Records and publishes a skip, without settling; false when the
    /// stage was no longer waiting (a worker began it, or it ended).
    async fn mark_skipped(&self, build: &Build, stage: StageId, reason: &SkipReason) -> anyhow::Result<bool> {
        let cancelled = matches!(reason, SkipReason::Cancelled(_));
        let now = self.now();
        let mut skipped = false;
        let updated = self
            .store
            .update_stage(stage, |current| {
                skipped = current.state.is_waiting();
                if skipped {
                    for step in current.steps.iter_mut().filter(|s| !s.status.is_done()) {
                        step.status = Status::Skipped;
                        step.exit_code = if cancelled { 130 } else { 0 };
                    }
                    current.state = StageState::Done { status: Status::Skipped, published: false };
                    current.stopped = now;
                }
                skipped
            })
            .await?;
        let Some(stage) = updated.filter(|_| skipped) else { return Ok(false) };
        // No step ran, so there is nothing the sandbox mode could have changed.
        let report = reason.report(self.clock.now());
        match self.publisher.stage_finished(build, &stage, &report).await {
            Ok(()) => self.mark_published(stage.id).await?,
            Err(e) => tracing::warn!(error = %e, "could not publish a skipped stage"),
        }
        Ok(true)
    }

    /// After stage `ended`: releases the stages waiting on it (or skips
    /// them when a dependency failed, which settles them in turn), counts it
    /// done, and completes the build after its last stage.
    pub(super) async fn settle(&self, build: &Build, ended: StageId) -> anyhow::Result<()> {
        let mut ended = vec![ended];
        while let Some(id) = ended.pop() {
            ended.extend(self.release_waiting(build).await?);
            if self.store.count_stage_done(build, id).await? {
                self.complete(build).await?;
            }
        }
        Ok(())
    }

    /// Queues the waiting stages whose dependencies are done and passed (or
    /// whose trigger admits a failure), skips those a failed dependency
    /// rules out; returns the skipped ones. In a cancelled build every
    /// waiting stage is skipped as cancelled, so a cancel that was
    /// interrupted before it reached them still ends the build.
    pub(super) async fn release_waiting(&self, build: &Build) -> anyhow::Result<Vec<StageId>> {
        let cancel = self.store.cancel_reason(build.id).await?.map(SkipReason::Cancelled);
        let stages = self.store.stages(build).await?;
        let mut skipped = Vec::new();
        for mut waiting in stages.iter().filter(|s| matches!(s.state, StageState::Waiting { .. })).cloned() {
            if let Some(reason) = &cancel {
                if self.mark_skipped(build, waiting.id, reason).await? {
                    skipped.push(waiting.id);
                }
                continue;
            }
            let deps: Vec<Status> =
                waiting.depends_on.iter().filter_map(|d| stages.iter().find(|s| &s.name == d).map(Stage::status)).collect();
            if !deps.iter().all(|s| s.is_done()) {
                continue;
            }
            let passing = deps.iter().all(|s| !s.is_failed());
            if waiting.pipeline.trigger.admits_status(!passing) {
                self.queue_stage(build, &mut waiting).await?;
            } else if self.mark_skipped(build, waiting.id, &SkipReason::DependencyFailed(waiting.depends_on.clone())).await? {
                skipped.push(waiting.id);
            }
        }
        Ok(skipped)
    }
}
