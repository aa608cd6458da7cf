//! The planner: reads queued triggers and starts their builds through the
//! lifecycle, reading `.drone.yml` through its own port.
//!
//! An entry is acknowledged only when its build is fully started (starting
//! is idempotent per entry): a crash or a GitHub outage leaves it pending,
//! and it is reclaimed and resumed later without a second build.

use crate::github::RepoFiles;
use crate::ids::{BuildId, DeliveryId, EntryId};
use crate::lifecycle::{Lifecycle, StartError};
use crate::model::{Build, BuildRequest, Repo, Trigger};
use crate::queue::{Consumer, Work, WorkQueue};
use crate::redis_server::Redis;
use crate::store::StoreResult;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Entries left pending this long by a planner are taken over by another.
pub const RECLAIM_IDLE: Duration = Duration::from_secs(30);

/// How long one read waits for new deliveries.
const READ_BLOCK: Duration = Duration::from_secs(2);

/// Entries planned at once (concurrently).
const BATCH: usize = 32;

/// An entry that failed this many times for a reason that retrying cannot
/// fix is reported and dropped. Outages (GitHub or Redis) are retried for as
/// long as they last: nothing is lost.
pub const MAX_ATTEMPTS: u64 = 20;

/// Starts builds from the delivery queue.
#[derive(Clone)]
pub struct Planner {
    lifecycle: Lifecycle,
    files: RepoFiles,
}

impl Planner {
    /// A planner starting builds through `lifecycle`, reading pipelines through `files`.
    pub fn new(lifecycle: Lifecycle, files: RepoFiles) -> Self {
        Self { lifecycle, files }
    }

    /// The delivery queue's reader for a planner process named `name`.
    pub fn consumer(queue: WorkQueue<Trigger>, redis: Redis, name: String) -> Consumer<Trigger> {
        Consumer::new(queue, redis, name, RECLAIM_IDLE, READ_BLOCK)
    }

    /// Reads and plans deliveries until `shutdown`, up to [`BATCH`] at once:
    /// a delivery is read as soon as a slot is free, so one slow delivery
    /// (a GitHub call retried through an outage, a large `.drone.yml`)
    /// delays no other. On shutdown, the deliveries being planned finish.
    pub async fn run(self, mut consumer: Consumer<Trigger>, shutdown: CancellationToken) {
        // Shared by the entries' tasks: a clone of the planner copies its GitHub client (and the App's key).
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(BATCH));
        let in_flight: Arc<Mutex<HashSet<EntryId>>> = Arc::default();
        let mut tasks = JoinSet::new();
        loop {
            // Wait for a free slot before reading, so nothing read waits for one.
            let Ok(first) = slots.clone().acquire_owned().await else { break };
            let free = 1 + slots.available_permits();
            let Some(mut batch) = consumer.next(free, &shutdown).await else { break };
            // An entry reclaimed while this planner still works on it (past
            // the idle time) is neither claimed again nor planned twice.
            batch.retain(|work| !in_flight.lock().expect("not poisoned").contains(&work.id));
            let batch = this.drop_copies(consumer.queue(), batch).await;
            let mut permits = std::iter::once(first);
            for work in batch {
                in_flight.lock().expect("not poisoned").insert(work.id.clone());
                let permit = match permits.next() {
                    Some(permit) => permit,
                    None => slots.clone().acquire_owned().await.expect("never closed"),
                };
                let (planner, queue, in_flight) = (this.clone(), consumer.queue().clone(), in_flight.clone());
                tasks.spawn(async move {
                    planner.handle(&queue, work.id.clone(), work.item, work.deliveries).await;
                    in_flight.lock().expect("not poisoned").remove(&work.id);
                    drop(permit);
                });
            }
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Plans the entries queued right now, one after the other, without
    /// waiting for more; returns how many it read. Drives a planner step
    /// by step (the `run` loop does the same, concurrently, forever).
    pub async fn plan_queued(&self, consumer: &mut Consumer<Trigger>) -> StoreResult<usize> {
        let batch = consumer.poll(BATCH).await?;
        let count = batch.len();
        for work in self.drop_copies(consumer.queue(), batch).await {
            self.handle(consumer.queue(), work.id, work.item, work.deliveries).await;
        }
        Ok(count)
    }

    /// The entries of `batch` left once those that are copies of a delivery
    /// another entry's build holds are acknowledged, all in two round trips
    /// (rather than a start and an acknowledgement each: a burst of
    /// redeliveries costs little). Should Redis fail, the batch is left
    /// whole, and each start claims its own delivery.
    async fn drop_copies(&self, queue: &WorkQueue<Trigger>, batch: Vec<Work<Trigger>>) -> Vec<Work<Trigger>> {
        let entries: Vec<(&EntryId, &Trigger)> = batch.iter().map(|work| (&work.id, &work.item)).collect();
        let copies = match self.lifecycle.copies(&entries).await {
            Ok(copies) => copies,
            Err(e) => {
                tracing::warn!(error = %e, "claiming a batch of deliveries failed; each is claimed as it is planned");
                return batch;
            }
        };
        let mut dropped = Vec::new();
        let mut left = Vec::with_capacity(batch.len());
        for (work, copy_of) in batch.into_iter().zip(copies) {
            match copy_of {
                Some(earlier) => {
                    tracing::info!(delivery = %work.item.delivery, %earlier, "a copy of this delivery is still queued or running; nothing to do");
                    dropped.push(work.id);
                }
                None => left.push(work),
            }
        }
        if let Err(e) = queue.ack_all(&dropped).await {
            tracing::warn!(error = %e, "acknowledging copies of deliveries failed; they are read again later");
        }
        left
    }

    /// Plans one entry and acknowledges it when done, or when it failed
    /// [`MAX_ATTEMPTS`] times for a reason retrying cannot fix.
    async fn handle(&self, queue: &WorkQueue<Trigger>, entry: EntryId, trigger: Trigger, attempts: u64) {
        let slug = trigger.repo.slug();
        match self.plan(&entry, &trigger).await {
            Ok(_) => {
                if let Err(e) = queue.ack(&entry).await {
                    tracing::warn!(error = %e, "acknowledging a planned delivery failed; it will be resumed");
                }
            }
            Err(e) if attempts >= MAX_ATTEMPTS && !e.is_transient() => {
                tracing::error!(delivery = %trigger.delivery, repo = %slug, error = %e, "giving up on a delivery after {MAX_ATTEMPTS} attempts");
                let _ = queue.ack(&entry).await;
            }
            Err(e) => {
                tracing::warn!(delivery = %trigger.delivery, repo = %slug, error = %e, "planning failed; the delivery stays queued and is retried");
            }
        }
    }

    /// Starts (or resumes) the build of one entry; safe to call again.
    pub async fn plan(&self, entry: &EntryId, trigger: &Trigger) -> Result<Option<BuildId>, StartError> {
        self.lifecycle.start(entry, trigger, &self.files).await
    }

    /// Starts a build asked for by branch (the API's build create, a cron
    /// job), once per `delivery`; `None` when no pipeline matches.
    pub async fn create(&self, repo: &Repo, request: &BuildRequest, delivery: DeliveryId) -> Result<Option<Build>, StartError> {
        self.lifecycle.create(repo, request, delivery, &self.files).await
    }

    /// Reruns a build's pipelines named in `only` (a comment's `/greenlight
    /// retry`), once per `delivery`; `None` when none matches any more.
    pub async fn rerun(
        &self,
        repo: &Repo,
        build: &Build,
        only: Vec<String>,
        by: &str,
        delivery: DeliveryId,
    ) -> Result<Option<Build>, StartError> {
        self.lifecycle.rerun(repo, build, only, by, delivery, &self.files).await
    }

    /// Starts a new build of a build's commit (the API's restart), with
    /// `parent` set; `None` when no pipeline matches any more.
    pub async fn restart(&self, repo: &Repo, build: &Build, by: &str) -> Result<Option<Build>, StartError> {
        self.lifecycle.restart(repo, build, by, &self.files).await
    }
}
