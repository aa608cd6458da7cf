//! The worker: claims stage jobs from the shared stream, up to its
//! concurrency, and keeps them alive while they run.
//!
//! At-least-once with nothing stuck: a job is acknowledged only when its
//! stage is final. A worker holds a lease per stage (`gl:stage:{id}:lease`)
//! and renews it, with the job's idle time, every third of
//! [`WorkerSettings::lease`]. A worker that dies stops renewing: after one
//! lease its jobs are reclaimed by any worker and the stage runs again from
//! the start. The lease also keeps two workers from running one stage at once.

use super::sandbox::Sandbox;
use super::settings::WorkerSettings;
use super::stage::{StageRunner, Stop};
use crate::clock::SharedClock;
use crate::github::CloneCredentials;
use crate::ids::{EntryId, StageId};
use crate::lifecycle::{Ended, JobState, Lifecycle};
use crate::model::StageJob;
use crate::queue::{Consumer, WorkQueue};
use crate::redis_server::Redis;
use crate::secrets::SecretStore;
use crate::store::{Logs, StoreResult};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long one read waits for a new job before looking for idle ones again.
const READ_BLOCK: Duration = Duration::from_secs(1);

/// A worker process's stage runner.
pub struct Worker {
    jobs: WorkQueue<StageJob>,
    runner: StageRunner,
    settings: WorkerSettings,
    consumer: String,
}

/// What a worker is given.
pub struct WorkerParts {
    /// Where stages begin and end.
    pub lifecycle: Lifecycle,
    /// Where step logs go.
    pub logs: Logs,
    /// How steps are confined.
    pub sandbox: Sandbox,
    /// The secrets steps may ask for.
    pub secrets: SecretStore,
    /// The installation tokens clones are fetched with.
    pub credentials: CloneCredentials,
    /// Step times and check run timestamps (injected, so tests can set it).
    pub clock: SharedClock,
    /// Where caches and artifacts are kept.
    pub blobs: crate::blobs::Blobs,
}

impl Worker {
    /// A worker named `consumer` (its name in the workers' group and on the stages it runs).
    pub fn new(parts: WorkerParts, jobs: WorkQueue<StageJob>, settings: WorkerSettings, consumer: String) -> Self {
        let runner = StageRunner {
            lifecycle: parts.lifecycle,
            logs: parts.logs,
            sandbox: parts.sandbox,
            clock: parts.clock,
            settings: settings.clone(),
            machine: consumer.clone(),
            secrets: parts.secrets,
            credentials: parts.credentials,
            blobs: parts.blobs,
        };
        Self { jobs, runner, settings, consumer }
    }

    /// The stage queue's reader for this worker: it takes over jobs idle for one lease.
    pub fn consumer(&self, redis: Redis) -> Consumer<StageJob> {
        Consumer::new(self.jobs.clone(), redis, self.consumer.clone(), self.settings.lease, READ_BLOCK)
    }

    /// Claims and runs stages until `shutdown`; then lets running stages
    /// finish within the grace period and hands the rest back.
    pub async fn run(self, mut consumer: Consumer<StageJob>, shutdown: CancellationToken) {
        let me = Arc::new(self);
        let slots = Arc::new(Semaphore::new(me.settings.concurrency));
        let hand_back = CancellationToken::new();
        let mut tasks = JoinSet::new();
        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            let Some(mut batch) = consumer.next(1, &shutdown).await else { break };
            if let Some(work) = batch.pop() {
                let (me, hand_back) = (me.clone(), hand_back.clone());
                tasks.spawn(async move {
                    me.process(work.id, work.item, &hand_back).await;
                    drop(permit);
                });
            }
        }
        if !tasks.is_empty() {
            tracing::info!(running = tasks.len(), grace_secs = me.settings.grace.as_secs(), "stopping: waiting for running stages");
            let all_done = async { while tasks.join_next().await.is_some() {} };
            if tokio::time::timeout(me.settings.grace, all_done).await.is_err() {
                tracing::warn!("grace period over: handing the remaining stages back to the queue");
                hand_back.cancel();
                while tasks.join_next().await.is_some() {}
            }
        }
    }

    /// Runs the next queued job to its end, without waiting for one; false
    /// when none was queued. Drives a worker step by step (the `run` loop
    /// does the same, concurrently, forever).
    pub async fn run_queued(self: &Arc<Self>, consumer: &mut Consumer<StageJob>) -> StoreResult<bool> {
        let Some(work) = consumer.poll(1).await?.pop() else {
            return Ok(false);
        };
        self.process(work.id, work.item, &CancellationToken::new()).await;
        Ok(true)
    }

    /// Does what a claimed job asks: runs its stage under a lease, publishes
    /// a result GitHub missed, or drops a duplicate. Acknowledges the job
    /// once its stage is final.
    async fn process(self: &Arc<Self>, entry: EntryId, job: StageJob, hand_back: &CancellationToken) {
        match self.runner.lifecycle.examine(&job).await {
            Ok(JobState::Run) => {}
            Ok(JobState::Republish(found)) => {
                let (build, stage) = *found;
                match self.runner.republish(&build, stage).await {
                    Ok(()) => self.ack(&entry).await,
                    Err(e) => tracing::warn!(stage = %job.stage, error = %e, "publishing a finished stage failed again; it stays queued"),
                }
                return;
            }
            Ok(JobState::Over) => return self.ack(&entry).await,
            Ok(JobState::Unknown) => {
                tracing::error!(stage = %job.stage, "stage job for an unknown stage; dropping it");
                return self.ack(&entry).await;
            }
            Err(e) => return tracing::warn!(error = %e, "cannot read a stage; the job will be retried"),
        }
        match self.acquire(job.stage).await {
            Ok(true) => {}
            // Another worker holds the stage; its job stays pending here
            // and is acknowledged once the stage is final.
            Ok(false) => return,
            Err(e) => return tracing::warn!(error = %e, "cannot take a stage lease; the job will be retried"),
        }
        let stop = Stop { cancel: CancellationToken::new(), hand_back: hand_back.clone(), lost: CancellationToken::new() };
        let keepalive = tokio::spawn(self.clone().keep_alive(entry.clone(), job.clone(), stop.clone()));
        let ran = self.runner.run(&job, &stop).await;
        keepalive.abort();
        let _ = self.release(job.stage).await;
        match ran {
            Ok(Ended::Done) => self.ack(&entry).await,
            // The job belongs to the worker that took the stage over: acknowledging
            // it here would leave that run with no job to reclaim if it died too.
            Ok(Ended::TakenOver) => {}
            Err(e) => tracing::warn!(stage = %job.stage, error = %e, "stage did not finish; its job stays queued"),
        }
    }

    async fn ack(&self, entry: &EntryId) {
        if let Err(e) = self.jobs.ack(entry).await {
            tracing::warn!(error = %e, "acknowledging a stage job failed; it will be seen again");
        }
    }

    async fn acquire(&self, stage: StageId) -> StoreResult<bool> {
        self.runner.lifecycle.store().acquire_lease(stage, &self.consumer, self.settings.lease).await
    }

    async fn release(&self, stage: StageId) -> StoreResult<()> {
        self.runner.lifecycle.store().release_lease(stage, &self.consumer).await
    }

    /// Renews the lease and the job's idle time, and watches for a cancel request.
    async fn keep_alive(self: Arc<Self>, entry: EntryId, job: StageJob, stop: Stop) {
        let every = self.settings.lease / 3;
        let store = self.runner.lifecycle.store();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every.min(Duration::from_secs(1))) => {}
                _ = stop.hand_back.cancelled() => { stop.cancel.cancel(); return; }
            }
            match store.renew_lease(job.stage, &self.consumer, self.settings.lease).await {
                Ok(true) => {}
                // Expired (this worker stalled, or Redis did): take it again unless another worker has.
                Ok(false) => match store.acquire_lease(job.stage, &self.consumer, self.settings.lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(stage = %job.stage, "another worker took this stage over; stopping this run");
                        stop.lost.cancel();
                        stop.cancel.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "retaking a stage lease failed"),
                },
                Err(e) => tracing::warn!(error = %e, "renewing a stage lease failed"),
            }
            let _ = self.jobs.keep_alive(&self.consumer, &entry).await;
            if store.is_cancelled(job.build).await.unwrap_or(false) {
                stop.cancel.cancel();
            }
        }
    }
}
