//! The store's side of retention: the keys a finished build no longer needs
//! expire, and a pruned build leaves Redis whole.
//!
//! Pruning must be safe with any number of sweepers (their lease can lapse
//! mid-sweep) and readers. So one Lua call checks that the build is
//! finished and not its ref's newest, takes it out of every index (a list
//! or `build_by_number` no longer finds it) and deletes its build and stage
//! records, all at once: readers see the build whole or not at all, and
//! only the caller whose call removed it from the repository's index
//! counts it. Its step logs are many keys and owned by `Logs`, so the same
//! call notes them in a set of logs to clear; the sweeper clears them and
//! a sweeper that crashes first leaves them for the next one.

use super::{
    Build, BuildId, RepoId, Stage, StageId, Store, StoreResult, build_key, builds_key, cancel_key, done_key, entry_key, error, lease_key,
    ref_builds_key, stage_key,
};
use redis::AsyncCommands;
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// How long a finished build's bookkeeping keys (its stage-done set, its
/// cancel request, its queue entry's build allocation) outlive it: they
/// matter only while the build runs, and a day leaves room for a
/// straggling worker to find them.
pub const BOOKKEEPING_TTL: Duration = Duration::from_secs(24 * 3600);

/// The set of `stage:step` logs of pruned builds still to be cleared.
const LOGS_TO_CLEAR: &str = "gl:retention:logs";

/// The set of pruned builds whose artifact objects are still to be deleted.
const ARTIFACTS_TO_CLEAR: &str = "gl:retention:artifacts";

/// The sweep lease: whoever holds it sweeps.
const SWEEP_LEASE: &str = "gl:retention:lease";

/// Prunes a build if it is finished and not its ref's newest.
/// KEYS: repo index, ref index, all-builds index, logs to clear, builds
/// whose artifacts are to be deleted, the build's artifact records, build
/// record, then every other key of the build to delete.
/// ARGV: build id, then its logs as `stage:step`.
/// Returns 1 pruned, 0 already gone, 2 its ref's newest, 3 unfinished.
static PRUNE_BUILD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then return 0 end
if redis.call('ZREVRANGE', KEYS[2], 0, 0)[1] == ARGV[1] then return 2 end
local raw = redis.call('GET', KEYS[7])
if raw then
  local ok, build = pcall(cjson.decode, raw)
  local s = ok and build.status
  if s == 'pending' or s == 'running' or s == 'blocked' or s == 'waiting_on_dependencies' then return 3 end
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
for i = 2, #ARGV do redis.call('SADD', KEYS[4], ARGV[i]) end
if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('SADD', KEYS[5], ARGV[1]) end
for i = 6, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
",
    )
});

/// What pruning a build did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneOutcome {
    /// This call removed it.
    Pruned,
    /// Another call had removed it already.
    Gone,
    /// It is the newest build of its ref (badges and "latest" read it): kept.
    RefLatest,
    /// It has not finished: kept.
    Unfinished,
}

/// One step's log of a pruned build, still to be cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLog {
    /// The stage.
    pub stage: StageId,
    /// The step's number in it.
    pub step: i64,
}

impl StepLog {
    fn member(&self) -> String {
        format!("{}:{}", self.stage, self.step)
    }

    fn parse(member: &str) -> Option<Self> {
        let (stage, step) = member.split_once(':')?;
        Some(Self { stage: StageId(stage.parse().ok()?), step: step.parse().ok()? })
    }
}

impl Store {
    /// Lets a finished build's bookkeeping keys expire after
    /// [`BOOKKEEPING_TTL`] (its records stay until retention prunes them).
    pub async fn expire_bookkeeping(&self, build: &Build) -> StoreResult<()> {
        let ttl = BOOKKEEPING_TTL.as_secs() as i64;
        redis::pipe()
            .expire(done_key(build.id), ttl)
            .ignore()
            .expire(cancel_key(build.id), ttl)
            .ignore()
            .expire(entry_key(&build.entry), ttl)
            .ignore()
            .query_async::<()>(&mut self.conn().await?)
            .await?;
        Ok(())
    }

    /// Takes the sweep lease for `owner` for `ttl` unless someone holds it.
    pub async fn take_sweep_lease(&self, owner: &str, ttl: Duration) -> StoreResult<bool> {
        self.take_lease(SWEEP_LEASE, owner, ttl).await
    }

    /// Extends the sweep lease to `ttl` from now if `owner` still holds it.
    pub async fn renew_sweep_lease(&self, owner: &str, ttl: Duration) -> StoreResult<bool> {
        let renewed: i64 =
            super::RENEW_LEASE.key(SWEEP_LEASE).arg(owner).arg(ttl.as_millis() as u64).invoke_async(&mut self.conn().await?).await?;
        Ok(renewed == 1)
    }

    /// Drops the sweep lease if `owner` still holds it.
    pub async fn release_sweep_lease(&self, owner: &str) -> StoreResult<()> {
        super::RELEASE_LEASE.key(SWEEP_LEASE).arg(owner).invoke_async::<i64>(&mut self.conn().await?).await?;
        Ok(())
    }

    /// The ids of every repository.
    pub async fn repo_ids(&self) -> StoreResult<Vec<RepoId>> {
        let ids: Vec<i64> = self.conn().await?.smembers("gl:repos").await?;
        Ok(ids.into_iter().map(RepoId).collect())
    }

    /// How many builds a repository lists.
    pub async fn build_count(&self, repo: RepoId) -> StoreResult<usize> {
        Ok(self.conn().await?.zcard(builds_key(repo)).await?)
    }

    /// A repository's builds, oldest first: `count` after skipping `offset`,
    /// each with its record (`None`: missing or unreadable).
    pub async fn oldest_builds(&self, repo: RepoId, offset: usize, count: usize) -> StoreResult<Vec<(BuildId, Option<Build>)>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let ids: Vec<i64> = conn.zrange(builds_key(repo), offset as isize, (offset + count - 1) as isize).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| build_key(BuildId(*id))).collect();
        let raws: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        Ok(ids
            .into_iter()
            .zip(keys.iter().zip(raws))
            .map(|(id, (key, raw))| (BuildId(id), raw.and_then(|r| error::decode(key, &r).ok())))
            .collect())
    }

    /// Prunes `build` (whose stages are `stages`) unless it is unfinished
    /// or its ref's newest; see the module documentation.
    pub async fn prune_build(&self, build: &Build, stages: &[Stage]) -> StoreResult<PruneOutcome> {
        let mut script = PRUNE_BUILD.prepare_invoke();
        script
            .key(builds_key(build.repo.id))
            .key(ref_builds_key(build.repo.id, &build.commit.git_ref))
            .key("gl:builds")
            .key(LOGS_TO_CLEAR)
            .key(ARTIFACTS_TO_CLEAR)
            .key(super::outputs::artifacts_key(build.id))
            .key(build_key(build.id))
            .key(done_key(build.id))
            .key(cancel_key(build.id))
            .key(entry_key(&build.entry));
        for stage in &build.stages {
            script
                .key(stage_key(*stage))
                .key(super::stages::steps_key(*stage))
                .key(super::stages::run_key(*stage))
                .key(lease_key(*stage))
                .key(super::outputs::summaries_key(*stage));
        }
        script.arg(build.id.0);
        for stage in stages {
            for step in &stage.steps {
                script.arg(StepLog { stage: stage.id, step: step.number }.member());
            }
        }
        let outcome: i64 = script.invoke_async(&mut self.conn().await?).await?;
        Ok(match outcome {
            1 => PruneOutcome::Pruned,
            2 => PruneOutcome::RefLatest,
            3 => PruneOutcome::Unfinished,
            _ => PruneOutcome::Gone,
        })
    }

    /// Logs of pruned builds still to be cleared (at most `count`).
    pub async fn logs_to_clear(&self, count: usize) -> StoreResult<Vec<StepLog>> {
        let members: Vec<String> = redis::cmd("SRANDMEMBER").arg(LOGS_TO_CLEAR).arg(count).query_async(&mut self.conn().await?).await?;
        Ok(members.iter().filter_map(|m| StepLog::parse(m)).collect())
    }

    /// Notes that a pruned build's step log was cleared.
    pub async fn log_cleared(&self, log: &StepLog) -> StoreResult<()> {
        let _: i64 = self.conn().await?.srem(LOGS_TO_CLEAR, log.member()).await?;
        Ok(())
    }

    /// Pruned builds whose artifact objects are still to be deleted (at most `count`).
    pub async fn artifacts_to_clear(&self, count: usize) -> StoreResult<Vec<BuildId>> {
        let ids: Vec<i64> = redis::cmd("SRANDMEMBER").arg(ARTIFACTS_TO_CLEAR).arg(count).query_async(&mut self.conn().await?).await?;
        Ok(ids.into_iter().map(BuildId).collect())
    }

    /// Notes that a pruned build's artifact objects were deleted.
    pub async fn artifacts_cleared(&self, build: BuildId) -> StoreResult<()> {
        let _: i64 = self.conn().await?.srem(ARTIFACTS_TO_CLEAR, build.0).await?;
        Ok(())
    }
}
