//! Acting on builds: restart (a new build with `parent` set, published like
//! any other) and cancel (running steps killed, pending stages skipped, the
//! build `killed`, its check runs `cancelled`), and finishing a build.

use crate::clock::SharedClock;
use crate::github::webhook::{RepoInfo, RerunRequest, RerunTarget, Trigger};
use crate::ids::BuildId;
use crate::ids::DeliveryId;
use crate::planner::Planner;
use crate::publish::CONFIG_CHECK;
use crate::publish::{Publisher, StageReport};
use crate::queue::EntryId;
use crate::store::{Build, Repo, Stage, Status, Store};
use std::time::Duration;

/// Who holds a stage's lease while the API cancels it.
const CANCEL_OWNER: &str = "api-cancel";

/// How many recent builds of a repository a check suite rerun looks through.
pub const RERUN_SCAN: usize = 100;

/// The trigger a Re-run button means: the build it points at, again, with
/// only the pressed check run's pipeline (all of them for a suite). Reads
/// Redis only, so intake can answer at once. `None` when greenlight has no
/// such build.
pub async fn rerun_trigger(store: &Store, request: &RerunRequest, delivery: &DeliveryId) -> redis::RedisResult<Option<Trigger>> {
    let Some(repo) = store.repo(request.repo).await? else {
        return Ok(None);
    };
    let (build, only) = match &request.target {
        RerunTarget::CheckRun { build, name } => {
            let Ok(id) = build.parse::<i64>() else { return Ok(None) };
            let Some(build) = store.build(BuildId(id)).await?.filter(|b| b.repo_id == repo.id) else {
                return Ok(None);
            };
            let pipeline = name.rsplit_once(" (").map_or(name.as_str(), |(p, _)| p);
            let only = if pipeline == CONFIG_CHECK { Vec::new() } else { vec![pipeline.to_string()] };
            (build, only)
        }
        RerunTarget::Suite { sha } => {
            let mut found = None;
            for id in store.build_ids(repo.id, 0, RERUN_SCAN).await? {
                if let Some(b) = store.build(id).await?.filter(|b| &b.after == sha) {
                    found = Some(b);
                    break;
                }
            }
            let Some(build) = found else { return Ok(None) };
            (build, Vec::new())
        }
    };
    let by = if request.sender.is_empty() { "github" } else { &request.sender };
    Ok(Some(trigger_from_build(&repo, &build, by, delivery.clone(), only)))
}

/// Restarts and cancels builds.
#[derive(Clone)]
pub struct Control {
    store: Store,
    jobs: crate::queue::WorkQueue<crate::store::StageJob>,
    planner: Planner,
    publisher: Publisher,
    clock: SharedClock,
}

/// Drone's rule, plus cancellation: a cancelled build is `killed`; otherwise,
/// in stage order, the first killed, failed or errored stage decides.
pub fn build_status(stages: &[Stage], cancelled: bool) -> Status {
    if cancelled {
        return Status::Killed;
    }
    stages.iter().map(|s| s.status).find(|s| matches!(s, Status::Killed | Status::Failure | Status::Error)).unwrap_or(Status::Success)
}

/// Marks a build finished once its last stage is done, and releases its
/// delivery so that a redelivery starts a new build.
pub async fn complete_build(store: &Store, clock: &SharedClock, build: &Build) -> anyhow::Result<()> {
    let cancelled = store.is_cancelled(build.id).await?;
    let status = build_status(&store.stages(build).await?, cancelled);
    let now = clock.now().timestamp();
    store
        .update_build(build.id, |b| {
            b.status = status;
            b.finished = now;
            if b.started == 0 {
                b.started = now;
            }
            b.updated = now;
        })
        .await?;
    store.release_delivery(&build.delivery, &build.entry).await?;
    store.mark_finished(build).await?;
    tracing::info!(repo = %build.repo_slug, number = build.number, status = status.as_str(), "build finished");
    Ok(())
}

/// The summary line of a cancelled stage.
pub fn cancel_note(reason: &str, when: &str) -> String {
    if reason.is_empty() { format!("Cancelled {when}.") } else { format!("Cancelled {when}: {reason}.") }
}

/// Ends a stage that never started because its build was cancelled:
/// skipped, its check run `cancelled`; finishes the build if it was the last.
pub async fn skip_cancelled_stage(
    store: &Store,
    publisher: &Publisher,
    clock: &SharedClock,
    build: &Build,
    stage: &mut Stage,
    reason: &str,
) -> anyhow::Result<()> {
    stage.status = Status::Skipped;
    for step in &mut stage.steps {
        if !step.status.is_done() {
            step.status = Status::Skipped;
            step.exit_code = 130;
        }
    }
    stage.stopped = clock.now().timestamp();
    store.save_stage(stage).await?;
    // No step ran, so there is nothing the sandbox mode could have changed.
    let report = StageReport::not_run(cancel_note(reason, "before this stage started"), Some(reason.to_string()), true, clock.now());
    if let Err(e) = publisher.stage_finished(build, stage, &report).await {
        tracing::warn!(error = %e, "could not publish a cancelled stage");
    }
    if store.stage_done(build, stage.id).await? {
        complete_build(store, clock, build).await?;
    }
    Ok(())
}

/// A trigger that builds a build's commit again (a rerun or restart):
/// same sha, ref and event; `parent` = its number; only `only_pipelines` when given.
pub fn trigger_from_build(repo: &Repo, build: &Build, by: &str, delivery: DeliveryId, only_pipelines: Vec<String>) -> Trigger {
    Trigger {
        delivery,
        installation: build.installation,
        repo: RepoInfo {
            id: repo.id,
            owner: repo.namespace.clone(),
            name: repo.name.clone(),
            private: repo.private,
            clone_url: repo.clone_url.clone(),
            ssh_url: repo.ssh_url.clone(),
            html_url: repo.link.clone(),
            default_branch: repo.default_branch.clone(),
        },
        event: build.event,
        action: build.action.clone(),
        sha: build.after.clone(),
        before: build.before.clone(),
        git_ref: build.git_ref.clone(),
        source: build.source.clone(),
        target: build.target.clone(),
        pull_request: build.pull_request,
        source_repo: build.source_repo.clone(),
        fork: build.fork,
        title: build.title.clone(),
        message: build.message.clone(),
        link: build.link.clone(),
        author_login: build.author_login.clone(),
        author_name: build.author_name.clone(),
        author_email: build.author_email.clone(),
        author_avatar: build.author_avatar.clone(),
        sender: by.to_string(),
        parent: build.number,
        requested_by: by.to_string(),
        only_pipelines,
    }
}

impl Control {
    /// Restarts and cancels through these parts.
    pub fn new(
        store: Store,
        jobs: crate::queue::WorkQueue<crate::store::StageJob>,
        planner: Planner,
        publisher: Publisher,
        clock: SharedClock,
    ) -> Self {
        Self { store, jobs, planner, publisher, clock }
    }

    /// Starts a new build of the same commit and event, with `parent` = this
    /// build's number; `None` when no pipeline matches any more.
    pub async fn restart(&self, repo: &Repo, build: &Build, by: &str) -> anyhow::Result<Option<Build>> {
        let nonce: u64 = rand::random();
        let trigger = trigger_from_build(repo, build, by, DeliveryId(format!("restart-{}-{nonce:016x}", build.id)), Vec::new());
        let entry = EntryId(format!("restart-{nonce:016x}"));
        self.planner.plan(&entry, &trigger).await?;
        match self.store.allocate_existing(&entry).await? {
            Some(id) => Ok(self.store.build(id).await?),
            None => Ok(None),
        }
    }

    /// Approves a blocked stage (a fork's pull request on a protected
    /// repository): it runs, with secrets. `Ok(false)` when it was not blocked.
    pub async fn approve(&self, build: &Build, stage_number: i64) -> anyhow::Result<bool> {
        let Some(mut stage) = self.store.stages(build).await?.into_iter().find(|s| s.number == stage_number) else {
            return Ok(false);
        };
        if stage.status != Status::Blocked {
            return Ok(false);
        }
        stage.approved = true;
        stage.status = if stage.depends_on.is_empty() { Status::Pending } else { Status::WaitingOnDependencies };
        if stage.status == Status::Pending {
            stage.enqueued = true;
        }
        self.store.save_stage(&mut stage).await?;
        if stage.status == Status::Pending {
            self.jobs.push(&crate::store::StageJob { build: build.id, stage: stage.id }).await?;
        }
        let still_blocked = self.store.stages(build).await?.iter().any(|s| s.status == Status::Blocked);
        if !still_blocked {
            self.store
                .update_build(build.id, |b| {
                    if b.status == Status::Blocked {
                        b.status = Status::Pending;
                    }
                })
                .await?;
        }
        Ok(true)
    }

    /// Cancels a build: running steps are killed by their workers (within a
    /// second), stages not yet started are skipped, the build becomes `killed`.
    pub async fn cancel(&self, build: &Build, reason: &str) -> anyhow::Result<Build> {
        cancel_build(&self.store, &self.publisher, &self.clock, build, reason).await
    }
}

/// Cancels a build: running steps are killed by their workers (within a
/// second), stages not yet started are skipped, the build becomes `killed`.
/// `reason` (may be empty) goes on its statuses and check runs.
pub async fn cancel_build(store: &Store, publisher: &Publisher, clock: &SharedClock, build: &Build, reason: &str) -> anyhow::Result<Build> {
    if build.status.is_done() {
        return Ok(build.clone());
    }
    store.request_cancel(build.id, reason).await?;
    let now = clock.now().timestamp();
    let build = store
        .update_build(build.id, |b| {
            b.status = Status::Killed;
            if b.started == 0 {
                b.started = now;
            }
            b.finished = now;
            b.updated = now;
        })
        .await?
        .unwrap_or_else(|| build.clone());
    for mut stage in store.stages(&build).await? {
        let waiting = matches!(stage.status, Status::Pending | Status::WaitingOnDependencies | Status::Blocked);
        // Holding the lease keeps a worker from starting it meanwhile.
        if waiting && store.acquire_lease(stage.id, CANCEL_OWNER, Duration::from_secs(60)).await? {
            skip_cancelled_stage(store, publisher, clock, &build, &mut stage, reason).await?;
            store.release_lease(stage.id, CANCEL_OWNER).await?;
        }
    }
    Ok(store.build(build.id).await?.unwrap_or(build))
}
