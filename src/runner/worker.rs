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
use super::stage::StageRunner;
use crate::clock::SharedClock;
use crate::ids::StageId;
use crate::publish::Publisher;
use crate::queue::{Entry, EntryId, STAGES, WORKERS, WorkQueue};
use crate::redis_server::Redis;
use crate::store::{Logs, StageJob, Store};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Stages run at once.
    pub concurrency: usize,
    /// Where workspaces live.
    pub data_dir: PathBuf,
    /// A stage whose worker stops renewing for this long is taken over.
    pub lease: Duration,
    /// On SIGTERM, running stages get this long to finish before they are handed back.
    pub grace: Duration,
    /// Stored log bytes per step.
    pub log_limit: u64,
}

/// A worker process's stage runner.
pub struct Worker {
    redis: Redis,
    jobs: WorkQueue<StageJob>,
    runner: Arc<StageRunner>,
    settings: WorkerSettings,
    consumer: String,
}

impl Worker {
    /// A worker named `consumer`.
    pub fn new(
        redis: Redis,
        publisher: Publisher,
        sandbox: Sandbox,
        secrets: crate::secrets::SecretStore,
        clock: SharedClock,
        settings: WorkerSettings,
        consumer: String,
    ) -> Self {
        let pool = redis.pool.clone();
        let runner = StageRunner {
            store: Store::new(pool.clone()),
            logs: Logs::new(pool.clone()),
            jobs: WorkQueue::new(pool.clone(), STAGES, WORKERS),
            publisher,
            sandbox,
            clock,
            settings: settings.clone(),
            machine: consumer.clone(),
            secrets,
        };
        Self { jobs: WorkQueue::new(pool, STAGES, WORKERS), redis, runner: Arc::new(runner), settings, consumer }
    }

    /// Claims and runs stages until `shutdown`; then lets running stages
    /// finish within the grace period and hands the rest back.
    pub async fn run(self, shutdown: CancellationToken) {
        let me = Arc::new(self);
        let slots = Arc::new(Semaphore::new(me.settings.concurrency));
        let hand_back = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut conn = None;
        let mut last_reclaim = tokio::time::Instant::now() - me.settings.lease;
        const BLOCK: Duration = Duration::from_secs(1);
        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            if last_reclaim.elapsed() >= me.settings.lease / 2 {
                last_reclaim = tokio::time::Instant::now();
                match me.jobs.reclaim(&me.consumer, me.settings.lease, 1).await {
                    Ok(mut entries) if !entries.is_empty() => {
                        let entry = entries.remove(0);
                        tracing::warn!(entry = %entry.id, "took over a stage job whose worker stopped renewing it");
                        tasks.spawn(me.clone().job(entry, permit, hand_back.clone()));
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "reclaiming stage jobs failed"),
                }
            }
            if conn.is_none() {
                conn = crate::redis_server::blocking_reader(&me.redis, BLOCK, || me.jobs.ensure_group(), &shutdown, "worker").await;
                if conn.is_none() {
                    break;
                }
            }
            let read = tokio::select! {
                _ = shutdown.cancelled() => break,
                read = me.jobs.read(conn.as_mut().expect("connected above"), &me.consumer, 1, BLOCK) => read,
            };
            match read {
                Ok(entries) => {
                    if let Some(entry) = entries.into_iter().next() {
                        tasks.spawn(me.clone().job(entry, permit, hand_back.clone()));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading stage jobs failed");
                    conn = None;
                }
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

    async fn job(self: Arc<Self>, entry: Entry<StageJob>, _permit: tokio::sync::OwnedSemaphorePermit, hand_back: CancellationToken) {
        let job = match entry.item {
            Ok(job) => job,
            Err(reason) => {
                tracing::error!(entry = %entry.id, %reason, "dropping an unreadable stage job");
                let _ = self.jobs.ack(&entry.id).await;
                return;
            }
        };
        match self.runner.store.stage(job.stage).await {
            Ok(Some(stage)) if stage.status.is_done() && !stage.published && stage.check_run.is_some() && stage.started > 0 => {
                match self.runner.republish(&job).await {
                    Ok(()) => {
                        let _ = self.jobs.ack(&entry.id).await;
                    }
                    Err(e) => tracing::warn!(stage = %job.stage, error = %e, "publishing a finished stage failed again; it stays queued"),
                }
                return;
            }
            Ok(Some(stage)) if stage.status.is_done() => {
                let _ = self.jobs.ack(&entry.id).await;
                return;
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::error!(stage = %job.stage, "stage job for an unknown stage; dropping it");
                let _ = self.jobs.ack(&entry.id).await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a stage; the job will be retried");
                return;
            }
        }
        match self.acquire(job.stage).await {
            Ok(true) => {}
            Ok(false) => {
                // Another worker holds the stage; its job stays pending here
                // and is acknowledged once the stage is final.
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot take a stage lease; the job will be retried");
                return;
            }
        }
        let cancel = CancellationToken::new();
        let keepalive = tokio::spawn(self.clone().keep_alive(entry.id.clone(), job.clone(), cancel.clone(), hand_back.clone()));
        let handed_back = self.runner.run(&job, &cancel, &hand_back).await;
        keepalive.abort();
        let _ = self.release(job.stage).await;
        match handed_back {
            Ok(()) => {
                let _ = self.jobs.ack(&entry.id).await;
            }
            Err(e) => {
                tracing::warn!(stage = %job.stage, error = %e, "stage did not finish; its job stays queued")
            }
        }
    }

    async fn acquire(&self, stage: StageId) -> redis::RedisResult<bool> {
        self.runner.store.acquire_lease(stage, &self.consumer, self.settings.lease).await
    }

    async fn release(&self, stage: StageId) -> redis::RedisResult<()> {
        self.runner.store.release_lease(stage, &self.consumer).await
    }

    /// Renews the lease and the job's idle time, and watches for a cancel request.
    async fn keep_alive(self: Arc<Self>, entry: EntryId, job: StageJob, cancel: CancellationToken, hand_back: CancellationToken) {
        let every = self.settings.lease / 3;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every.min(Duration::from_secs(1))) => {}
                _ = hand_back.cancelled() => { cancel.cancel(); return; }
            }
            if let Err(e) = self.runner.store.renew_lease(job.stage, &self.consumer, self.settings.lease).await {
                tracing::warn!(error = %e, "renewing a stage lease failed");
            }
            let _ = self.jobs.keep_alive(&self.consumer, &entry).await;
            if self.runner.store.is_cancelled(job.build).await.unwrap_or(false) {
                cancel.cancel();
            }
        }
    }
}
