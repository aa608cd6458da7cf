//! The planner: turns queued deliveries into recorded builds, tells GitHub at
//! once (pending statuses, queued check runs), and queues one job per stage.
//!
//! Planning one entry is idempotent, so an entry is acknowledged only when
//! everything is done: a crash or a GitHub outage leaves it pending, and it is
//! reclaimed and resumed later without a second build.

use crate::clock::SharedClock;
use crate::github::webhook::{Event, Trigger};
use crate::github::{GitHubError, RepoPath};
use crate::ids::StageId;
use crate::pipeline::{self, Facts};
use crate::publish::Publisher;
use crate::queue::{DELIVERIES, Entry, EntryId, PLANNERS, STAGES, WORKERS, WorkQueue};
use crate::redis_server::Redis;
use crate::store::{Build, Claim, Stage, StageJob, Status, StepRecord, Store};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Entries left pending this long by a planner are taken over by another.
pub const RECLAIM_IDLE: Duration = Duration::from_secs(30);

/// How long one read waits for new deliveries.
const READ_BLOCK: Duration = Duration::from_secs(2);

/// An entry that failed this many times for a reason that retrying cannot
/// fix is reported and dropped. Outages (GitHub or Redis) are retried for as
/// long as they last: nothing is lost.
pub const MAX_ATTEMPTS: u64 = 20;

/// Plans builds from the delivery stream.
#[derive(Clone)]
pub struct Planner {
    redis: Redis,
    store: Store,
    deliveries: WorkQueue<Trigger>,
    stages: WorkQueue<StageJob>,
    publisher: Publisher,
    clock: SharedClock,
    consumer: String,
}

impl PlanError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            PlanError::Redis(_) => true,
            PlanError::GitHub(e) => e.is_transient(),
        }
    }
}

/// Why planning an entry stopped before it was done.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// GitHub failed.
    #[error(transparent)]
    GitHub(#[from] GitHubError),
}

impl Planner {
    /// A planner named `consumer` in the planners' group.
    pub fn new(redis: Redis, publisher: Publisher, clock: SharedClock, consumer: String) -> Self {
        let pool = redis.pool.clone();
        Self {
            redis,
            store: Store::new(pool.clone()),
            deliveries: WorkQueue::new(pool.clone(), DELIVERIES, PLANNERS),
            stages: WorkQueue::new(pool, STAGES, WORKERS),
            publisher,
            clock,
            consumer,
        }
    }

    /// Reads and plans deliveries until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_reclaim = tokio::time::Instant::now();
        let mut conn = None;
        while !shutdown.is_cancelled() {
            if conn.is_none() {
                let ensure = || async {
                    self.deliveries.ensure_group().await?;
                    self.stages.ensure_group().await
                };
                conn = crate::redis_server::blocking_reader(&self.redis, READ_BLOCK, ensure, &shutdown, "planner").await;
                if conn.is_none() {
                    break;
                }
            }
            let c = conn.as_mut().expect("connected above");
            let read = tokio::select! {
                _ = shutdown.cancelled() => break,
                read = self.deliveries.read(c, &self.consumer, 32, READ_BLOCK) => read,
            };
            let entries = match read {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(error = %e, "reading deliveries failed");
                    conn = None;
                    continue;
                }
            };
            self.handle_all(entries).await;
            if last_reclaim.elapsed() >= RECLAIM_IDLE / 2 {
                last_reclaim = tokio::time::Instant::now();
                match self.deliveries.reclaim(&self.consumer, RECLAIM_IDLE, 32).await {
                    Ok(entries) => self.handle_all(entries).await,
                    Err(e) => tracing::warn!(error = %e, "reclaiming deliveries failed"),
                }
            }
        }
    }

    async fn handle_all(&self, entries: Vec<Entry<Trigger>>) {
        futures::future::join_all(entries.into_iter().map(|e| self.handle(e))).await;
    }

    async fn handle(&self, entry: Entry<Trigger>) {
        let trigger = match entry.item {
            Ok(trigger) => trigger,
            Err(reason) => {
                tracing::error!(entry = %entry.id, %reason, "dropping an unreadable delivery record");
                let _ = self.deliveries.ack(&entry.id).await;
                return;
            }
        };
        match self.plan(&entry.id, &trigger).await {
            Ok(()) => {
                if let Err(e) = self.deliveries.ack(&entry.id).await {
                    tracing::warn!(error = %e, "acknowledging a planned delivery failed; it will be resumed");
                }
            }
            Err(e) if entry.deliveries >= MAX_ATTEMPTS && !e.is_transient() => {
                tracing::error!(delivery = %trigger.delivery, repo = %trigger.repo.slug(), error = %e, "giving up on a delivery after {MAX_ATTEMPTS} attempts");
                let _ = self.deliveries.ack(&entry.id).await;
            }
            Err(e) => {
                tracing::warn!(delivery = %trigger.delivery, repo = %trigger.repo.slug(), error = %e, "planning failed; the delivery stays queued and is retried");
            }
        }
    }

    /// Plans one entry; safe to call again for the same entry.
    pub async fn plan(&self, entry: &EntryId, trigger: &Trigger) -> Result<(), PlanError> {
        let now = self.clock.now();
        let repo = self.store.upsert_repo(&trigger.repo, trigger.installation, now.timestamp()).await?;
        if let Claim::InFlight(other) = self.store.claim_delivery(&trigger.delivery, entry).await? {
            tracing::info!(delivery = %trigger.delivery, earlier = %other, "a copy of this delivery is still queued or running; nothing to do");
            return Ok(());
        }
        let existing = match self.store.allocate_existing(entry).await? {
            Some(id) => self.store.build(id).await?,
            None => None,
        };
        let (build, stages, supersedes) = match existing {
            Some(build) => {
                let stages = self.store.stages(&build).await?;
                (build, stages, false)
            }
            None => match self.record(entry, trigger, repo.id, repo.protected).await? {
                Some(planned) => planned,
                None => return Ok(()),
            },
        };
        let newer = supersedes.then(|| build.clone());
        self.announce(build, stages).await?;
        // After the pending statuses are out: cancelling older builds must not delay them.
        if let Some(newer) = newer {
            self.supersede(&newer).await;
        }
        Ok(())
    }

    /// Reads `.drone.yml` and records the build; `None` when no pipeline matches.
    async fn record(
        &self,
        entry: &EntryId,
        trigger: &Trigger,
        repo_id: crate::ids::RepoId,
        protected: bool,
    ) -> Result<Option<(Build, Vec<Stage>, bool)>, PlanError> {
        // A fork's code on a protected repository waits for an administrator.
        let blocked = trigger.fork && protected;
        let path = RepoPath { owner: trigger.repo.owner.clone(), name: trigger.repo.name.clone() };
        let config = match self.publisher.github().file_at(trigger.installation, &path, pipeline::CONFIG_PATH, &trigger.sha.0).await {
            Ok(Some(text)) => pipeline::parse(&text).map_err(|e| format!("{}: {e}", pipeline::CONFIG_PATH)),
            Ok(None) => Err(format!("no {} in {} at {}", pipeline::CONFIG_PATH, trigger.repo.slug(), trigger.sha.short())),
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => Err(format!("could not read {}: {e}", pipeline::CONFIG_PATH)),
        };
        let slug = trigger.repo.slug();
        let facts = Facts {
            event: trigger.event.as_str(),
            branch: &trigger.target,
            git_ref: &trigger.git_ref,
            action: &trigger.action,
            repo: &slug,
        };
        let auto_cancel = config.as_ref().is_ok_and(|c| c.settings.auto_cancel);
        let pipelines = match &config {
            Ok(config) => {
                let mut chosen = config.matching(&facts);
                if !trigger.only_pipelines.is_empty() {
                    chosen.retain(|p| trigger.only_pipelines.contains(&p.name));
                    let names: Vec<String> = chosen.iter().map(|p| p.name.clone()).collect();
                    for p in &mut chosen {
                        p.depends_on.retain(|d| names.contains(d));
                    }
                }
                if chosen.is_empty() {
                    tracing::info!(repo = %slug, sha = %trigger.sha, "no pipeline's trigger matches; no build");
                    self.store.release_delivery(&trigger.delivery, entry).await?;
                    return Ok(None);
                }
                chosen
            }
            Err(_) => Vec::new(),
        };
        let (id, number, _) = self.store.allocate_build(entry, repo_id).await?;
        let now = self.clock.now().timestamp();
        let first_stage = self.store.allocate_ids("stage", pipelines.len().max(1)).await?;
        let step_count: usize = pipelines.iter().map(|p| p.steps.len() + 1).sum();
        let mut next_step = self.store.allocate_ids("step", step_count.max(1)).await?;
        let stages: Vec<Stage> = pipelines
            .into_iter()
            .enumerate()
            .map(|(i, pipeline)| {
                let clone = (!pipeline.clone_disabled).then(|| ("clone".to_string(), false, Vec::new()));
                let named = pipeline.steps.iter().map(|s| (s.name.clone(), s.ignore_failure, s.depends_on.clone()));
                let steps = clone
                    .into_iter()
                    .chain(named)
                    .enumerate()
                    .map(|(n, (name, errignore, depends_on))| {
                        next_step += 1;
                        StepRecord {
                            id: next_step - 1,
                            number: n as i64 + 1,
                            name,
                            status: Status::Pending,
                            error: String::new(),
                            errignore,
                            exit_code: 0,
                            started: 0,
                            stopped: 0,
                            version: 1,
                            depends_on,
                        }
                    })
                    .collect();
                Stage {
                    id: StageId(first_stage + i as i64),
                    repo_id,
                    build_id: id,
                    number: i as i64 + 1,
                    name: pipeline.name.clone(),
                    status: match (blocked, pipeline.depends_on.is_empty()) {
                        (true, _) => Status::Blocked,
                        (false, true) => Status::Pending,
                        (false, false) => Status::WaitingOnDependencies,
                    },
                    error: String::new(),
                    exit_code: 0,
                    machine: String::new(),
                    started: 0,
                    stopped: 0,
                    created: now,
                    updated: now,
                    version: 1,
                    depends_on: pipeline.depends_on.clone(),
                    steps,
                    pipeline,
                    check_run: None,
                    enqueued: false,
                    approved: false,
                    published: false,
                }
            })
            .collect();
        let (status, error, finished) = match config {
            Ok(_) if blocked => (Status::Blocked, String::new(), 0),
            Ok(_) => (Status::Pending, String::new(), 0),
            Err(message) => (Status::Error, message, now),
        };
        let build = Build {
            id,
            repo_id,
            repo_slug: slug,
            number,
            parent: trigger.parent,
            status,
            error,
            trigger: if trigger.requested_by.is_empty() { "@hook".to_string() } else { trigger.requested_by.clone() },
            event: trigger.event,
            action: trigger.action.clone(),
            link: trigger.link.clone(),
            title: trigger.title.clone(),
            message: trigger.message.clone(),
            before: trigger.before.clone(),
            after: trigger.sha.clone(),
            git_ref: trigger.git_ref.clone(),
            source_repo: trigger.source_repo.clone(),
            source: trigger.source.clone(),
            target: trigger.target.clone(),
            pull_request: trigger.pull_request,
            fork: trigger.fork,
            author_login: trigger.author_login.clone(),
            author_name: trigger.author_name.clone(),
            author_email: trigger.author_email.clone(),
            author_avatar: trigger.author_avatar.clone(),
            sender: trigger.sender.clone(),
            installation: trigger.installation,
            clone_url: trigger.repo.clone_url.clone(),
            delivery: trigger.delivery.clone(),
            entry: entry.clone(),
            stages: stages.iter().map(|s| s.id).collect(),
            started: finished,
            finished,
            created: now,
            updated: now,
            version: 1,
        };
        self.store.record_build(&build, &stages).await?;
        tracing::info!(repo = %build.repo_slug, number = build.number, stages = stages.len(), status = build.status.as_str(), "build recorded");
        let new_push = build.event == Event::Push || (build.event == Event::PullRequest && build.action == "synchronized");
        let supersedes = auto_cancel && new_push && trigger.parent == 0;
        Ok(Some((build, stages, supersedes)))
    }

    /// Cancels the unfinished builds of the same branch or pull request for
    /// older commits: a newer push supersedes them.
    async fn supersede(&self, newer: &Build) {
        let unfinished = match self.store.unfinished_in_lane(newer).await {
            Ok(builds) => builds,
            Err(e) => return tracing::warn!(error = %e, "cannot look for superseded builds"),
        };
        let reason = format!("superseded by {}", newer.after.short());
        for older in unfinished.into_iter().filter(|b| b.id != newer.id) {
            let same_lane = match newer.event {
                Event::PullRequest => older.event == Event::PullRequest && older.pull_request == newer.pull_request,
                _ => older.event == newer.event && older.git_ref == newer.git_ref,
            };
            if same_lane && !older.status.is_done() && older.after != newer.after && older.number < newer.number {
                tracing::info!(repo = %older.repo_slug, number = older.number, %reason, "cancelling a superseded build");
                if let Err(e) = crate::control::cancel_build(&self.store, &self.publisher, &self.clock, &older, &reason).await {
                    tracing::warn!(error = %e, "could not cancel a superseded build");
                }
            }
        }
    }

    /// Publishes what is not yet on GitHub and queues what is not yet queued.
    async fn announce(&self, build: Build, stages: Vec<Stage>) -> Result<(), PlanError> {
        if build.status == Status::Error && stages.is_empty() {
            self.publisher.config_error(&build, self.clock.now()).await?;
            self.store.release_delivery(&build.delivery, &build.entry).await?;
            return Ok(());
        }
        for mut stage in stages {
            if stage.check_run.is_none() {
                stage.check_run = Some(self.publisher.stage_planned(&build, &stage).await?);
                self.store.save_stage(&mut stage).await?;
            }
            if !stage.enqueued && stage.status == Status::Pending {
                self.stages.push(&StageJob { build: build.id, stage: stage.id }).await?;
                stage.enqueued = true;
                self.store.save_stage(&mut stage).await?;
            }
        }
        Ok(())
    }
}
