//! Build-level transitions: completing a build after its last stage,
//! cancelling it, approving its blocked stages.

use super::Lifecycle;
use super::stage::SkipReason;
use crate::model::{Build, Stage, StageState, Status};
use std::time::Duration;

/// Who holds a stage's lease while a cancel skips it, so no worker starts it meanwhile.
const CANCEL_OWNER: &str = "cancel";

/// How long a cancel may hold a waiting stage's lease: far longer than
/// skipping it takes, short enough that a crashed cancel frees it soon.
const CANCEL_LEASE: Duration = Duration::from_secs(60);

/// Drone's rule, plus cancellation: a cancelled build is `killed`; otherwise,
/// in stage order, the first killed, failed or errored stage decides.
pub(super) fn build_status(stages: &[Stage], cancelled: bool) -> Status {
    if cancelled {
        return Status::Killed;
    }
    stages.iter().map(Stage::status).find(|s| matches!(s, Status::Killed | Status::Failure | Status::Error)).unwrap_or(Status::Success)
}

impl Lifecycle {
    /// Completes a build once its last stage is done: its final status, its
    /// delivery released (so a redelivery starts a new build), its lane left,
    /// its bookkeeping keys set to expire (`BOOKKEEPING_TTL`).
    pub(super) async fn complete(&self, build: &Build) -> anyhow::Result<()> {
        let cancelled = self.store.is_cancelled(build.id).await?;
        let status = build_status(&self.store.stages(build).await?, cancelled);
        let now = self.now();
        self.store
            .update_build(build.id, |b| {
                b.status = status;
                b.finished = now;
                if b.started == 0 {
                    b.started = now;
                }
                b.updated = now;
            })
            .await?;
        self.store.release_delivery(&build.delivery, &build.entry).await?;
        self.store.leave_lane(build).await?;
        self.store.expire_bookkeeping(build).await?;
        tracing::info!(repo = %build.slug(), number = build.number, status = status.as_str(), "build finished");
        self.metrics.build_finished(status);
        Ok(())
    }

    /// Marks a build running when its first stage begins.
    pub(super) async fn build_running(&self, build: Build, now: i64) -> anyhow::Result<Build> {
        let updated = self
            .store
            .update_build(build.id, |b| {
                if b.status == Status::Pending {
                    b.status = Status::Running;
                    b.started = now;
                }
                b.updated = now;
            })
            .await?;
        Ok(updated.unwrap_or(build))
    }

    /// Cancels a build: running steps are killed by their workers (within a
    /// second), stages not yet started are skipped, the build becomes
    /// `killed`. `reason` (may be empty) goes on its statuses and check runs.
    pub async fn cancel(&self, build: &Build, reason: &str) -> anyhow::Result<Build> {
        if build.status.is_done() {
            return Ok(build.clone());
        }
        self.store.request_cancel(build.id, reason).await?;
        let now = self.now();
        let build = self
            .store
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
        self.metrics.build_finished(Status::Killed);
        for stage in self.store.stages(&build).await? {
            // Holding the lease keeps a worker from starting it meanwhile;
            // a stage a worker holds is killed by that worker instead (and
            // the skip itself leaves a stage a worker has begun alone).
            if stage.state.is_waiting() && self.store.acquire_lease(stage.id, CANCEL_OWNER, CANCEL_LEASE).await? {
                let skipped = self.skip(&build, stage.id, SkipReason::Cancelled(reason.to_string())).await;
                self.store.release_lease(stage.id, CANCEL_OWNER).await?;
                skipped?;
            }
        }
        Ok(self.store.build(build.id).await?.unwrap_or(build))
    }

    /// Approves a blocked stage (a fork's pull request on a protected
    /// repository): it runs, with secrets. `Ok(false)` when it was not blocked.
    pub async fn approve(&self, build: &Build, stage_number: i64) -> anyhow::Result<bool> {
        let Some(stage) = self.store.stages(build).await?.into_iter().find(|s| s.number == stage_number) else {
            return Ok(false);
        };
        // Approved in the record before its job exists, so the worker that
        // claims the job sees the approval (and gives the stage its secrets).
        let mut approved = false;
        let updated = self
            .store
            .update_stage(stage.id, |current| {
                approved = current.state == StageState::Blocked;
                if approved {
                    current.state = match current.depends_on.is_empty() {
                        true => StageState::Pending { approved: true, queued: false },
                        false => StageState::Waiting { approved: true },
                    };
                }
                approved
            })
            .await?;
        let Some(mut stage) = updated.filter(|_| approved) else { return Ok(false) };
        if let StageState::Pending { .. } = stage.state {
            self.queue_stage(build, &mut stage).await?;
        } else {
            // Its dependencies may have ended while it was blocked.
            for skipped in self.release_waiting(build).await? {
                self.settle(build, skipped).await?;
            }
        }
        let still_blocked = self.store.stages(build).await?.iter().any(|s| s.state == StageState::Blocked);
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
}
