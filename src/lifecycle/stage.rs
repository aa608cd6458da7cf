//! Stage-level transitions: queueing, beginning on a worker, ending (which
//! releases or skips the stages that wait for it and completes the build
//! after the last), skipping, and handing back to the queue.

use super::Lifecycle;
use super::steps::reset_steps;
use crate::ids::StageId;
use crate::model::{Build, Stage, StageJob, StageState, Status};
use crate::publish::StageReport;
use anyhow::Context;

/// Why a stage ends without running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Its build was cancelled first, with this reason (may be empty).
    Cancelled(String),
    /// A pipeline it depends on did not pass.
    DependencyFailed(Vec<String>),
}

impl SkipReason {
    /// The check run summary's line, and the cancel reason a cancelled stage reports.
    fn report(&self, sandboxed: bool, now: chrono::DateTime<chrono::Utc>) -> StageReport {
        match self {
            SkipReason::Cancelled(reason) => {
                StageReport::not_run(cancel_note(reason, "before this stage started"), Some(reason.clone()), sandboxed, now)
            }
            SkipReason::DependencyFailed(deps) => {
                StageReport::not_run(format!("Skipped: a pipeline it depends on ({}) did not pass.", deps.join(", ")), None, sandboxed, now)
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
    /// The stage ended while GitHub was unreachable: publish its result again, do not run it.
    Republish(Box<(Build, Stage)>),
    /// The stage is over and published (a duplicate job): acknowledge it.
    Over,
    /// No such stage (an expired or foreign record): drop the job.
    Unknown,
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
        let approved = stage.state.approved();
        let marked = self
            .store
            .update_stage(stage.id, |current| {
                let waiting = matches!(current.state, StageState::Blocked | StageState::Waiting { .. } | StageState::Pending { .. });
                if waiting {
                    current.state = StageState::Pending { approved, queued: true };
                }
                waiting
            })
            .await?;
        *stage = marked.context("stage vanished")?;
        Ok(())
    }

    /// What a worker should do with a claimed job.
    pub async fn examine(&self, job: &StageJob) -> anyhow::Result<JobState> {
        let Some(stage) = self.store.stage(job.stage).await? else {
            return Ok(JobState::Unknown);
        };
        match stage.state {
            StageState::Done { published: false, .. } if stage.check_run.is_some() && stage.started > 0 => {
                let build = self.store.build(job.build).await?.context("build vanished")?;
                Ok(JobState::Republish(Box::new((build, stage))))
            }
            StageState::Done { .. } => Ok(JobState::Over),
            _ => Ok(JobState::Run),
        }
    }

    /// Begins a stage on worker `machine`, which holds its lease: the stage
    /// and build running, the check run `in_progress`. `None` when its build
    /// was cancelled meanwhile (the stage is then skipped).
    pub async fn begin(&self, job: &StageJob, machine: &str) -> anyhow::Result<Option<Begun>> {
        let mut stage = self.store.stage(job.stage).await?.context("stage vanished")?;
        let build = self.store.build(job.build).await?.context("build vanished")?;
        if self.store.is_cancelled(build.id).await? {
            if !stage.status().is_done() {
                let reason = self.store.cancel_reason(build.id).await?.unwrap_or_default();
                self.skip(&build, &mut stage, SkipReason::Cancelled(reason)).await?;
            }
            return Ok(None);
        }
        let mut notes = Vec::new();
        if let StageState::Running { .. } = stage.state {
            tracing::warn!(stage = %stage.id, previous = %stage.machine, "taking over a stage whose worker stopped; running it again from the start");
            notes
                .push(format!("The worker `{}` stopped while running this stage; `{machine}` ran it again from the start.", stage.machine));
        }
        reset_steps(&mut stage);
        let started = self.clock.now();
        stage.state = StageState::Running { approved: stage.state.approved() };
        stage.started = started.timestamp();
        stage.stopped = 0;
        stage.error.clear();
        stage.machine = machine.to_string();
        self.store.save_stage(&mut stage).await?;
        let build = self.build_running(build, started.timestamp()).await?;
        if let Err(e) = self.publisher.stage_started(&build, &stage, started).await {
            tracing::warn!(error = %e, "could not mark the check run in progress; going on");
        }
        Ok(Some(Begun { build, stage, notes }))
    }

    /// Ends a stage that ran, with `status`: its result published, the
    /// stages waiting on it released or skipped, the build completed after
    /// its last stage. `Err` when GitHub could not take the result: the
    /// stage is over anyway, and the job's next claim publishes it again.
    pub async fn end(&self, build: &Build, stage: &mut Stage, status: Status, report: &StageReport) -> anyhow::Result<()> {
        if !self.still_ours(stage).await? {
            return Ok(());
        }
        stage.state = StageState::Done { status, published: false };
        stage.stopped = self.now();
        self.store.save_stage(stage).await?;
        let published = self.publisher.stage_finished(build, stage, report).await;
        self.settle(build, stage.id).await?;
        // An outage at the very end must not run the stage again.
        published.context("publishing the stage result")?;
        self.mark_published(stage).await
    }

    /// Publishes again the result of a stage that ended while GitHub was unreachable.
    pub async fn publish_again(&self, build: &Build, stage: &mut Stage, report: &StageReport) -> anyhow::Result<()> {
        self.publisher.stage_finished(build, stage, report).await.context("publishing the stage result again")?;
        self.mark_published(stage).await
    }

    /// Whether the worker that began `stage` still has it: another worker
    /// may have taken it over (this one stalled past its lease) and begun
    /// or even ended it since. A stale worker's end or hand back is dropped,
    /// so a stage ends once, with the result of the run GitHub was told about.
    async fn still_ours(&self, stage: &Stage) -> anyhow::Result<bool> {
        let current = self.store.stage(stage.id).await?.context("stage vanished")?;
        let ours = current.machine == stage.machine && matches!(current.state, StageState::Running { .. });
        if !ours {
            tracing::warn!(stage = %stage.id, worker = %stage.machine, now = %current.machine, "a stage this worker ran was taken over; dropping its result");
        }
        Ok(ours)
    }

    async fn mark_published(&self, stage: &mut Stage) -> anyhow::Result<()> {
        if let StageState::Done { status, .. } = stage.state {
            stage.state = StageState::Done { status, published: true };
            self.store.save_stage(stage).await?;
        }
        Ok(())
    }

    /// Puts a running stage back in the queue for another worker (a
    /// graceful stop ran out of time): pending, its check run queued again.
    pub async fn hand_back(&self, build: &Build, stage: &mut Stage) -> anyhow::Result<()> {
        if !self.still_ours(stage).await? {
            return Ok(());
        }
        reset_steps(stage);
        // This worker holds the lease: it writes the stage back as waiting, then queues it.
        stage.state = StageState::Pending { approved: stage.state.approved(), queued: false };
        self.store.save_stage(stage).await?;
        if let Err(e) = self.publisher.stage_handed_back(build, stage).await {
            tracing::warn!(error = %e, "could not mark the check run queued again");
        }
        self.queue_stage(build, stage).await?;
        tracing::info!(stage = %stage.id, "handed a stage back to the queue");
        Ok(())
    }

    /// Ends a stage that never ran: skipped, its check run saying why
    /// (`cancelled` when its build was), then settled like any ended stage.
    pub(super) async fn skip(&self, build: &Build, stage: &mut Stage, reason: SkipReason) -> anyhow::Result<()> {
        self.mark_skipped(build, stage, &reason).await?;
        self.settle(build, stage.id).await
    }

    /// Records and publishes a skip, without settling.
    async fn mark_skipped(&self, build: &Build, stage: &mut Stage, reason: &SkipReason) -> anyhow::Result<()> {
        let cancelled = matches!(reason, SkipReason::Cancelled(_));
        for step in &mut stage.steps {
            if !step.status.is_done() {
                step.status = Status::Skipped;
                if cancelled {
                    step.exit_code = 130;
                }
            }
        }
        stage.state = StageState::Done { status: Status::Skipped, published: false };
        stage.stopped = self.now();
        self.store.save_stage(stage).await?;
        // No step ran, so there is nothing the sandbox mode could have changed.
        let report = reason.report(true, self.clock.now());
        match self.publisher.stage_finished(build, stage, &report).await {
            Ok(()) => self.mark_published(stage).await?,
            Err(e) => tracing::warn!(error = %e, "could not publish a skipped stage"),
        }
        Ok(())
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
    /// rules out; returns the skipped ones. Nothing is released in a
    /// cancelled build: its cancel skips them.
    pub(super) async fn release_waiting(&self, build: &Build) -> anyhow::Result<Vec<StageId>> {
        if self.store.is_cancelled(build.id).await? {
            return Ok(Vec::new());
        }
        let stages = self.store.stages(build).await?;
        let mut skipped = Vec::new();
        for mut waiting in stages.iter().filter(|s| matches!(s.state, StageState::Waiting { .. })).cloned() {
            let deps: Vec<Status> =
                waiting.depends_on.iter().filter_map(|d| stages.iter().find(|s| &s.name == d).map(Stage::status)).collect();
            if !deps.iter().all(|s| s.is_done()) {
                continue;
            }
            let passing = deps.iter().all(|s| !s.is_failed());
            if waiting.pipeline.trigger.admits_status(!passing) {
                self.queue_stage(build, &mut waiting).await?;
            } else {
                let reason = SkipReason::DependencyFailed(waiting.depends_on.clone());
                self.mark_skipped(build, &mut waiting, &reason).await?;
                skipped.push(waiting.id);
            }
        }
        Ok(skipped)
    }
}
