//! Retention: Redis is greenlight's memory, so build history is bounded.
//! A background sweep prunes each repository's builds beyond the newest
//! `GREENLIGHT_KEEP_BUILDS` and those older than `GREENLIGHT_KEEP_DAYS`:
//! their records, stages, step records, logs, job summaries and artifacts.
//!
//! Every `serve` and `worker` process runs the sweep; a lease in Redis
//! lets one of them sweep at a time, and pruning itself is safe if two
//! sweeps overlap anyway (a lease that lapsed): each build is removed by
//! exactly one call (see `store::retention`). Never pruned: an unfinished
//! build, and the newest build of each ref while it is the newest (badges
//! and "latest" read it).

use crate::blobs::Blobs;
use crate::clock::SharedClock;
use crate::config::RetentionConfig;
use crate::ids::RepoId;
use crate::store::{Logs, PruneOutcome, Store, StoreResult};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often each process tries to sweep.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// How long one sweep may hold the lease before another process may take
/// it over (renewed at each repository, so only a stuck sweep loses it).
pub const SWEEP_LEASE: Duration = Duration::from_secs(5 * 60);

/// Builds read per Redis call while looking for what to prune.
const BATCH: usize = 100;

/// Logs of pruned builds cleared per batch.
const LOG_BATCH: usize = 200;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Builds this sweep removed.
    pub pruned: usize,
    /// Step logs it cleared.
    pub logs_cleared: usize,
}

/// Prunes build history beyond the policy.
#[derive(Clone)]
pub struct Sweeper {
    store: Store,
    logs: Logs,
    artifacts: Blobs,
    policy: RetentionConfig,
    clock: SharedClock,
    owner: String,
}

impl Sweeper {
    /// A sweeper named `owner` (its lease's holder), pruning beyond `policy`
    /// as of `clock`'s time; pruned builds' artifacts are deleted from `artifacts`.
    pub fn new(store: Store, logs: Logs, artifacts: Blobs, policy: RetentionConfig, clock: SharedClock, owner: String) -> Self {
        Self { store, logs, artifacts, policy, clock, owner }
    }

    /// Sweeps once if no other process is sweeping; `None` when one is.
    pub async fn sweep(&self) -> StoreResult<Option<SweepReport>> {
        if !self.store.take_sweep_lease(&self.owner, SWEEP_LEASE).await? {
            return Ok(None);
        }
        let swept = self.sweep_held().await;
        let released = self.store.release_sweep_lease(&self.owner).await;
        let report = swept?;
        released?;
        Ok(Some(report))
    }

    async fn sweep_held(&self) -> StoreResult<SweepReport> {
        let cutoff = self.clock.now().timestamp() - i64::from(self.policy.keep_days) * 24 * 3600;
        let mut report = SweepReport { logs_cleared: self.clear_logs().await?, ..SweepReport::default() };
        for repo in self.store.repo_ids().await? {
            // Renewed per repository: a long sweep keeps its lease, a stuck one loses it.
            if !self.store.renew_sweep_lease(&self.owner, SWEEP_LEASE).await? {
                break;
            }
            report.pruned += self.sweep_repo(repo, cutoff).await?;
            report.logs_cleared += self.clear_logs().await?;
        }
        self.clear_artifacts().await?;
        Ok(report)
    }

    /// Prunes one repository's builds beyond the count or older than
    /// `cutoff` (Unix seconds), oldest first; returns how many.
    async fn sweep_repo(&self, repo: RepoId, cutoff: i64) -> StoreResult<usize> {
        let over = self.store.build_count(repo).await?.saturating_sub(self.policy.keep_builds);
        let (mut seen, mut offset, mut pruned) = (0, 0, 0);
        loop {
            let batch = self.store.oldest_builds(repo, offset, BATCH).await?;
            if batch.is_empty() {
                return Ok(pruned);
            }
            for (_, build) in batch {
                let position = seen;
                seen += 1;
                offset += 1;
                let Some(build) = build else { continue };
                // The index is in number order, so builds are roughly in creation order.
                if position >= over && build.created >= cutoff {
                    return Ok(pruned);
                }
                let stages = self.store.stages(&build).await?;
                if self.store.prune_build(&build, &stages).await? == PruneOutcome::Pruned {
                    pruned += 1;
                    offset -= 1;
                    tracing::debug!(repo = %build.slug(), number = build.number, "pruned a build");
                }
            }
        }
    }

    /// Clears the logs pruned builds left; returns how many.
    async fn clear_logs(&self) -> StoreResult<usize> {
        let mut cleared = 0;
        loop {
            let logs = self.store.logs_to_clear(LOG_BATCH).await?;
            if logs.is_empty() {
                return Ok(cleared);
            }
            for log in &logs {
                self.logs.clear(log.stage, log.step).await?;
                self.store.log_cleared(log).await?;
            }
            cleared += logs.len();
        }
    }

    /// Deletes the artifact objects of pruned builds. A build whose objects
    /// cannot be deleted now (the bucket is unreachable) stays noted for the
    /// next sweep. Objects on another worker's disk (no shared bucket) stay
    /// there: only this machine's disk is reached.
    async fn clear_artifacts(&self) -> StoreResult<()> {
        for build in self.store.artifacts_to_clear(LOG_BATCH).await? {
            let folder = crate::store::artifacts_folder(build);
            let deleted = async {
                for blob in self.artifacts.list(&folder).await? {
                    self.artifacts.delete(&blob.key).await?;
                }
                anyhow::Ok(())
            };
            match deleted.await {
                Ok(()) => self.store.artifacts_cleared(build).await?,
                Err(e) => tracing::warn!(error = format!("{e:#}"), %build, "could not delete a pruned build's artifacts"),
            }
        }
        Ok(())
    }

    /// Sweeps every `every` (the first time at once) until `shutdown`.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        crate::clock::every(every, shutdown, || async {
            match self.sweep().await {
                Ok(Some(report)) if report.pruned > 0 || report.logs_cleared > 0 => {
                    tracing::info!(builds = report.pruned, logs = report.logs_cleared, "pruned build history beyond retention");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeping build history failed; the next sweep tries again"),
            }
        })
        .await;
    }
}
