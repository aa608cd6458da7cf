//! Build state in Redis: repositories, builds, stages, and the claims that
//! make planning idempotent.
//!
//! Records are JSON strings under `gl:*` keys, and every key name lives
//! here or in `queue`. Builds and stages are written after they are
//! recorded only through atomic read-change-write updates
//! ([`Store::update_build`], [`Store::update_stage`]): planners, workers and
//! the API all write them, and a whole-record write from a stale copy would
//! undo another process's transition (`Store::watched` is the one loop
//! that does it).
//!
//! The Lua scripts are `LazyLock<Script>` statics: `Script::new` hashes its
//! source (SHA-1, for EVALSHA), and the delivery claim alone runs once per
//! delivery.

mod activation;
mod crons;
mod delivery_log;
mod error;
mod log_hub;
mod logs;
mod outputs;
mod repo_events;
mod retention;
mod sessions;
mod side;
mod stages;

pub use crate::model::{Build, Repo, Stage, StageJob, StageState, Status, StepRecord};
pub use crons::DueCron;
pub use error::{StoreError, StoreResult};
pub use log_hub::{LogHub, LogSubscription};
pub use logs::{LogLine, LogTail, Logs};
pub use outputs::{Artifact, StepSummary, artifact_key, artifacts_folder};
pub use retention::{BOOKKEEPING_TTL, PruneOutcome, StepLog};
pub use sessions::{CsrfToken, Session, SessionId};

use crate::ids::{BuildId, DeliveryId, EntryId, InstallationId, RepoId, Sha, StageId};
use crate::model::{InstallationChange, RepoRef};
use crate::redis_pool::Pool;
use redis::AsyncCommands;
use redis::Script;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::LazyLock;
use std::time::Duration;

fn repo_key(id: RepoId) -> String {
    format!("gl:repo:{id}")
}
fn slug_key(slug: &str) -> String {
    format!("gl:repo-slug:{}", slug.to_ascii_lowercase())
}
fn builds_key(id: RepoId) -> String {
    format!("gl:repo:{id}:builds")
}
/// A repository's builds on one ref (`refs/heads/main`, `refs/pull/7/head`),
/// scored by number: a branch's list or latest build in one read.
fn ref_builds_key(id: RepoId, git_ref: &str) -> String {
    format!("gl:repo:{id}:ref:{git_ref}:builds")
}
fn build_key(id: BuildId) -> String {
    format!("gl:build:{id}")
}
fn stage_key(id: StageId) -> String {
    format!("gl:stage:{id}")
}
/// The set of unfinished builds of a build's lane: its pull request, or its ref.
fn lane_key(build: &Build) -> String {
    match build.commit.pull_request {
        Some(pr) => format!("gl:repo:{}:unfinished:pr:{pr}", build.repo.id),
        None => format!("gl:repo:{}:unfinished:{}", build.repo.id, build.commit.git_ref),
    }
}

fn delivery_key(id: &DeliveryId) -> String {
    format!("gl:delivery:{id}")
}

/// Set once the builds recorded before the ref index have been indexed.
const REF_INDEX_MARKER: &str = "gl:migrated:ref-index";

/// The pub/sub channel on which every build change is announced.
const EVENTS: &str = "gl:events";

/// A subscription to every build change announced by any process (live
/// pages and API streams follow it). Messages are `{"repo": id, "build": id}`.
pub async fn subscribe_changes(redis: &crate::redis_server::Redis) -> StoreResult<redis::aio::PubSub> {
    let mut pubsub = redis.pubsub().await?;
    pubsub.subscribe(EVENTS).await?;
    Ok(pubsub)
}

/// The key whose existence asks every worker to cancel a build's stages.
fn cancel_key(build: BuildId) -> String {
    format!("gl:build:{build}:cancel")
}
/// Set when GitHub destroyed a merge group, so a late `checks_requested`
/// for it builds nothing and a build recorded meanwhile is cancelled.
fn destroyed_group_key(repo: RepoId, sha: &Sha) -> String {
    format!("gl:repo:{repo}:merge-group:{sha}:destroyed")
}

/// How long a destroyed merge group is remembered: far longer than a
/// delivery waits in the queue, and GitHub never reuses a group's commit.
const DESTROYED_GROUP_TTL: Duration = Duration::from_secs(24 * 3600);

/// The set of a build's stages counted done.
fn done_key(build: BuildId) -> String {
    format!("gl:build:{build}:done")
}
/// The build id and number a queue entry allocated.
fn entry_key(entry: &EntryId) -> String {
    format!("gl:entry:{entry}:build")
}

/// What claiming a delivery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This entry owns the delivery now (first time, or its earlier build finished).
    Owned,
    /// Another entry of the same delivery has a build still queued or running.
    InFlight(EntryId),
}

/// Where build state lives.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

/// Allocates a build id and number once per queue entry.
/// KEYS: entry→build, build id counter, repo counter. Returns {id, number}.
static ALLOCATE_BUILD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local existing = redis.call('GET', KEYS[1])
if existing then
  local sep = string.find(existing, ':')
  return {tonumber(string.sub(existing, 1, sep - 1)), tonumber(string.sub(existing, sep + 1))}
end
local id = redis.call('INCR', KEYS[2])
local number = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[1], id .. ':' .. number, 'EX', 604800)
return {id, number}
",
    )
});

/// Claims deliveries, each for its entry unless another entry's build is in
/// flight, and notes that each was seen (for the delivery log's recovery),
/// in order: of two entries of one delivery, the first claims it.
/// KEYS: per delivery, its claim and its seen mark; ARGV: the mark's
/// lifetime in seconds, then the entry ids. Returns the owners.
static CLAIM_DELIVERIES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local owners = {}
for i = 2, #ARGV do
  local claim, seen, entry = KEYS[2 * i - 3], KEYS[2 * i - 2], ARGV[i]
  redis.call('SET', seen, '1', 'EX', ARGV[1])
  local owner = redis.call('GET', claim)
  if not owner or owner == entry then
    redis.call('SET', claim, entry, 'EX', 604800)
    owner = entry
  end
  owners[#owners + 1] = owner
end
return owners
",
    )
});

/// Extends a lease if its owner still holds it. KEYS: lease; ARGV: owner, ms.
static RENEW_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
",
    )
});

/// Drops a lease if its owner still holds it.
static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

fn lease_key(stage: StageId) -> String {
    format!("gl:stage:{stage}:lease")
}

/// Releases a delivery claim if the entry still holds it.
static RELEASE_DELIVERY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

impl Store {
    /// A store over a Redis pool.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// The connection pool it reads and writes through (for queues on the same Redis).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn conn(&self) -> StoreResult<crate::redis_pool::Connection> {
        Ok(self.pool.get().await?)
    }

    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> StoreResult<Option<T>> {
        let raw: Option<String> = self.conn().await?.get(key).await?;
        raw.map(|text| error::decode(key, &text)).transpose()
    }

    async fn set_json<T: Serialize>(&self, key: &str, value: &T) -> StoreResult<()> {
        let json = serde_json::to_string(value).expect("records serialize");
        Ok(self.conn().await?.set(key, json).await?)
    }

    /// Records (or refreshes) a repository from a delivery.
    pub async fn upsert_repo(&self, info: &RepoRef, installation: InstallationId, now: i64) -> StoreResult<Repo> {
        let existing: Option<Repo> = match self.get_json(&repo_key(info.id)).await {
            // A record an older greenlight wrote: replaced by what this delivery says.
            Err(StoreError::Corrupt { key, reason }) => {
                tracing::warn!(%key, %reason, "replacing an unreadable repository record");
                None
            }
            other => other?,
        };
        let mut repo = Repo {
            info: info.clone(),
            active: true,
            protected: existing.as_ref().is_some_and(|r| r.protected),
            installation,
            created: existing.as_ref().map_or(now, |r| r.created),
            updated: existing.as_ref().map_or(now, |r| r.updated),
        };
        // Written only when something changed, not on every delivery.
        if existing.as_ref() != Some(&repo) {
            repo.updated = now;
            self.save_repo(&repo).await?;
        }
        Ok(repo)
    }

    /// Records what an installation event says: repositories added appear
    /// (active), repositories removed turn inactive.
    pub async fn apply_installation(&self, change: &InstallationChange, now: i64) -> StoreResult<()> {
        for (repos, active) in [(&change.added, true), (&change.removed, false)] {
            for installed in repos {
                let (owner, name) = installed.full_name.split_once('/').unwrap_or((&installed.full_name, ""));
                let mut repo = self.repo(RepoId(installed.id)).await?.unwrap_or_else(|| Repo {
                    info: RepoRef {
                        id: RepoId(installed.id),
                        owner: owner.to_string(),
                        name: name.to_string(),
                        private: installed.private,
                        clone_url: String::new(),
                        ssh_url: String::new(),
                        html_url: String::new(),
                        default_branch: "main".to_string(),
                    },
                    active,
                    protected: false,
                    installation: change.installation,
                    created: now,
                    updated: now,
                });
                repo.active = active;
                repo.info.private = installed.private;
                repo.installation = change.installation;
                repo.updated = now;
                self.save_repo(&repo).await?;
            }
        }
        Ok(())
    }

    /// A repository by id.
    pub async fn repo(&self, id: RepoId) -> StoreResult<Option<Repo>> {
        self.get_json(&repo_key(id)).await
    }

    /// A repository by `owner/name` (case-insensitive, as GitHub's are).
    pub async fn repo_by_slug(&self, slug: &str) -> StoreResult<Option<Repo>> {
        let id: Option<i64> = self.conn().await?.get(slug_key(slug)).await?;
        match id {
            Some(id) => self.repo(RepoId(id)).await,
            None => Ok(None),
        }
    }

    /// Claims a delivery GUID for a queue entry (see [`Claim`]).
    pub async fn claim_delivery(&self, delivery: &DeliveryId, entry: &EntryId) -> StoreResult<Claim> {
        let mut claims = self.claim_deliveries(&[(delivery, entry)]).await?;
        Ok(claims.pop().expect("one claim asked, one answered"))
    }

    /// Claims each delivery GUID for its queue entry, in order, in one round
    /// trip: what [`Store::claim_delivery`] finds of each.
    pub async fn claim_deliveries(&self, claims: &[(&DeliveryId, &EntryId)]) -> StoreResult<Vec<Claim>> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let mut script = CLAIM_DELIVERIES.arg(delivery_log::SEEN_FOR.as_secs());
        for (delivery, entry) in claims {
            script.key(delivery_key(delivery)).key(delivery_log::seen_key(delivery)).arg(&entry.0);
        }
        let owners: Vec<String> = script.invoke_async(&mut self.conn().await?).await?;
        let claim = |((_, entry), owner): (&(&DeliveryId, &EntryId), String)| {
            if owner == entry.0 { Claim::Owned } else { Claim::InFlight(EntryId(owner)) }
        };
        Ok(claims.iter().zip(owners).map(claim).collect())
    }

    /// Releases a delivery once its build has finished, so that a redelivery starts a new build.
    pub async fn release_delivery(&self, delivery: &DeliveryId, entry: &EntryId) -> StoreResult<()> {
        let _: i64 = RELEASE_DELIVERY.key(delivery_key(delivery)).arg(&entry.0).invoke_async(&mut self.conn().await?).await?;
        Ok(())
    }

    /// The build id and number of a queue entry, allocated on first call
    /// (the same ones on every later call: planning is resumable).
    pub async fn allocate_build(&self, entry: &EntryId, repo: RepoId) -> StoreResult<(BuildId, i64)> {
        let (id, number): (i64, i64) = ALLOCATE_BUILD
            .key(entry_key(entry))
            .key("gl:ids:build")
            .key(format!("gl:repo:{repo}:counter"))
            .invoke_async(&mut self.conn().await?)
            .await?;
        Ok((BuildId(id), number))
    }

    /// The build an entry allocated earlier, if it did: planning resumes it.
    pub async fn entry_build(&self, entry: &EntryId) -> StoreResult<Option<BuildId>> {
        let raw: Option<String> = self.conn().await?.get(entry_key(entry)).await?;
        Ok(raw.and_then(|r| r.split(':').next().and_then(|id| id.parse().ok())).map(BuildId))
    }

    /// Reserves `count` consecutive ids of a kind (`stage`, `step`); returns the first.
    pub async fn allocate_ids(&self, kind: &str, count: usize) -> StoreResult<i64> {
        let last: i64 = self.conn().await?.incr(format!("gl:ids:{kind}"), count).await?;
        Ok(last - count as i64 + 1)
    }

    /// Writes a new build and its stages at once, and lists it under its repository.
    pub async fn record_build(&self, build: &Build, stages: &[Stage]) -> StoreResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.set(build_key(build.id), serde_json::to_string(build).expect("records serialize"));
        Self::record_stages(&mut pipe, stages);
        pipe.zadd(builds_key(build.repo.id), build.id.0, build.number);
        pipe.zadd(ref_builds_key(build.repo.id, &build.commit.git_ref), build.id.0, build.number);
        pipe.zadd("gl:builds", build.id.0, build.id.0);
        if !build.status.is_done() {
            pipe.sadd(lane_key(build), build.id.0);
        }
        pipe.query_async::<()>(&mut self.conn().await?).await?;
        self.announce(build.repo.id, build.id).await
    }

    /// A build by id.
    pub async fn build(&self, id: BuildId) -> StoreResult<Option<Build>> {
        self.get_json(&build_key(id)).await
    }

    /// A build by repository and number.
    pub async fn build_by_number(&self, repo: RepoId, number: i64) -> StoreResult<Option<Build>> {
        let ids: Vec<i64> = self.conn().await?.zrangebyscore(builds_key(repo), number, number).await?;
        match ids.first() {
            Some(id) => self.build(BuildId(*id)).await,
            None => Ok(None),
        }
    }

    /// Builds of a repository, newest first, on `git_ref` when given:
    /// `count` of them after skipping `offset`. Two reads whatever the
    /// history (the index by ref, then the records at once), so no query
    /// scans builds it does not return.
    pub async fn builds_page(&self, repo: RepoId, git_ref: Option<&str>, offset: usize, count: usize) -> StoreResult<Vec<Build>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let key = git_ref.map_or_else(|| builds_key(repo), |r| ref_builds_key(repo, r));
        let mut conn = self.conn().await?;
        let ids: Vec<i64> = conn.zrevrange(&key, offset as isize, (offset + count - 1) as isize).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| build_key(BuildId(*id))).collect();
        let raws: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        keys.iter().zip(raws).filter_map(|(key, raw)| raw.map(|raw| error::decode(key, &raw))).collect()
    }

    /// Indexes by ref the builds recorded before the index existed (once:
    /// a marker key remembers it is done); returns how many it indexed.
    pub async fn index_builds_by_ref(&self) -> StoreResult<usize> {
        let mut conn = self.conn().await?;
        let done: bool = conn.exists(REF_INDEX_MARKER).await?;
        if done {
            return Ok(0);
        }
        // Indexing is idempotent: processes starting together may both do it.
        let ids: Vec<i64> = conn.zrange("gl:builds", 0, -1).await?;
        for id in &ids {
            if let Some(build) = self.build(BuildId(*id)).await? {
                let _: () = conn.zadd(ref_builds_key(build.repo.id, &build.commit.git_ref), build.id.0, build.number).await?;
            }
        }
        let _: () = conn.set(REF_INDEX_MARKER, 1).await?;
        Ok(ids.len())
    }

    /// Takes a stage's lease for `owner` unless someone holds it.
    pub async fn acquire_lease(&self, stage: StageId, owner: &str, ttl: std::time::Duration) -> StoreResult<bool> {
        self.take_lease(&lease_key(stage), owner, ttl).await
    }

    /// Sets lease `key` to `owner` for `ttl` unless someone holds it.
    async fn take_lease(&self, key: &str, owner: &str, ttl: std::time::Duration) -> StoreResult<bool> {
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut self.conn().await?)
            .await?;
        Ok(set.is_some())
    }

    /// Extends a stage's lease if `owner` still holds it.
    pub async fn renew_lease(&self, stage: StageId, owner: &str, ttl: std::time::Duration) -> StoreResult<bool> {
        let renewed: i64 =
            RENEW_LEASE.key(lease_key(stage)).arg(owner).arg(ttl.as_millis() as u64).invoke_async(&mut self.conn().await?).await?;
        Ok(renewed == 1)
    }

    /// Drops a stage's lease if `owner` still holds it.
    pub async fn release_lease(&self, stage: StageId, owner: &str) -> StoreResult<()> {
        RELEASE_LEASE.key(lease_key(stage)).arg(owner).invoke_async::<i64>(&mut self.conn().await?).await?;
        Ok(())
    }

    /// Reads, changes and writes a build atomically (optimistic: retried if
    /// another process wrote it meanwhile). Returns the build as written.
    pub async fn update_build(&self, id: BuildId, mut change: impl FnMut(&mut Build)) -> StoreResult<Option<Build>> {
        let updated = self
            .update_record(&build_key(id), |build: &mut Build| {
                change(build);
                build.version += 1;
                true
            })
            .await?;
        if let Some((build, _)) = &updated {
            self.announce(build.repo.id, build.id).await?;
        }
        Ok(updated.map(|(build, _)| build))
    }

    /// A record as JSON at `key`, for [`Store::watched`]: `None` when there is none.
    async fn update_record<T: Serialize + DeserializeOwned>(
        &self,
        key: &str,
        change: impl FnMut(&mut T) -> bool,
    ) -> StoreResult<Option<(T, bool)>> {
        let decode = |(raw,): (Option<String>,)| raw.map(|raw| error::decode(key, &raw)).transpose();
        let write = |pipe: &mut redis::Pipeline, record: &T| {
            pipe.set(key, serde_json::to_string(record).expect("records serialize")).ignore();
        };
        self.watched(&[key], redis::pipe().get(key), decode, change, write).await
    }

    /// The one read-change-write loop of records other processes write too:
    /// WATCH `keys`, `read` them and `decode` the record, apply `change`
    /// (false: write nothing), and `write` it in a transaction that fails if
    /// a key changed meanwhile, then try again. Returns the record and
    /// whether it was written; `None` when there is no record.
    async fn watched<R: redis::FromRedisValue, T>(
        &self,
        keys: &[&str],
        read: &redis::Pipeline,
        decode: impl Fn(R) -> StoreResult<Option<T>>,
        mut change: impl FnMut(&mut T) -> bool,
        write: impl Fn(&mut redis::Pipeline, &T),
    ) -> StoreResult<Option<(T, bool)>> {
        let mut conn = self.conn().await?;
        loop {
            redis::cmd("WATCH").arg(keys).query_async::<()>(&mut conn).await?;
            let Some(mut record) = decode(read.query_async(&mut conn).await?)? else {
                redis::cmd("UNWATCH").query_async::<()>(&mut conn).await?;
                return Ok(None);
            };
            if !change(&mut record) {
                redis::cmd("UNWATCH").query_async::<()>(&mut conn).await?;
                return Ok(Some((record, false)));
            }
            let mut pipe = redis::pipe();
            pipe.atomic();
            write(&mut pipe, &record);
            let written: Option<()> = pipe.query_async(&mut conn).await?;
            if written.is_some() {
                return Ok(Some((record, true)));
            }
        }
    }

    /// The unfinished builds of the same branch, tag or pull request as `build`.
    pub async fn unfinished_in_lane(&self, build: &Build) -> StoreResult<Vec<Build>> {
        let ids: Vec<i64> = self.conn().await?.smembers(lane_key(build)).await?;
        let mut builds = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(build) = self.build(BuildId(id)).await? {
                builds.push(build);
            }
        }
        Ok(builds)
    }

    /// Forgets that a build is unfinished (it leaves its auto-cancel lane).
    pub async fn leave_lane(&self, build: &Build) -> StoreResult<()> {
        Ok(self.conn().await?.srem(lane_key(build), build.id.0).await?)
    }

    /// Counts a stage of a build as done; true for the one call that counts
    /// the last one (a stage counted twice, after a takeover, counts once).
    pub async fn count_stage_done(&self, build: &Build, stage: StageId) -> StoreResult<bool> {
        let key = done_key(build.id);
        // One transaction, so exactly one caller sees the count reach the total.
        let (added, done): (i64, usize) =
            redis::pipe().atomic().sadd(&key, stage.0).scard(&key).query_async(&mut self.conn().await?).await?;
        Ok(added == 1 && done == build.stages.len())
    }

    /// Tells every process (live pages, API streams) that a build changed.
    async fn announce(&self, repo: RepoId, build: BuildId) -> StoreResult<()> {
        let event = serde_json::json!({ "repo": repo, "build": build }).to_string();
        Ok(self.conn().await?.publish(EVENTS, event).await?)
    }

    /// Every repository, ordered by slug.
    pub async fn repos(&self) -> StoreResult<Vec<Repo>> {
        let ids: Vec<i64> = self.conn().await?.smembers("gl:repos").await?;
        let mut repos = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(repo) = self.repo(RepoId(id)).await? {
                repos.push(repo);
            }
        }
        repos.sort_by_key(|r| r.slug().to_ascii_lowercase());
        Ok(repos)
    }

    /// Saves a repository record as it is.
    pub async fn save_repo(&self, repo: &Repo) -> StoreResult<()> {
        self.set_json(&repo_key(repo.info.id), repo).await?;
        let mut conn = self.conn().await?;
        let _: () = conn.set(slug_key(&repo.slug()), repo.info.id.0).await?;
        Ok(conn.sadd("gl:repos", repo.info.id.0).await?)
    }

    /// The last build number of a repository.
    pub async fn repo_counter(&self, repo: RepoId) -> StoreResult<i64> {
        let n: Option<i64> = self.conn().await?.get(format!("gl:repo:{repo}:counter")).await?;
        Ok(n.unwrap_or(0))
    }

    /// The most recent builds of every repository, newest first.
    pub async fn recent_builds(&self, offset: usize, count: usize) -> StoreResult<Vec<Build>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = self.conn().await?.zrevrange("gl:builds", offset as isize, (offset + count - 1) as isize).await?;
        let mut builds = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(build) = self.build(BuildId(id)).await? {
                builds.push(build);
            }
        }
        Ok(builds)
    }

    /// Remembers that GitHub destroyed the merge group whose head is `sha`.
    pub async fn mark_group_destroyed(&self, repo: RepoId, sha: &Sha) -> StoreResult<()> {
        Ok(self.conn().await?.set_ex(destroyed_group_key(repo, sha), 1, DESTROYED_GROUP_TTL.as_secs()).await?)
    }

    /// Whether GitHub destroyed the merge group whose head is `sha`.
    pub async fn is_group_destroyed(&self, repo: RepoId, sha: &Sha) -> StoreResult<bool> {
        Ok(self.conn().await?.exists(destroyed_group_key(repo, sha)).await?)
    }

    /// Asks the workers running a build to cancel it.
    pub async fn request_cancel(&self, build: BuildId, reason: &str) -> StoreResult<()> {
        Ok(self.conn().await?.set_ex(cancel_key(build), reason, 7 * 24 * 3600).await?)
    }

    /// Why a build was cancelled (empty when no reason was given), if it was.
    pub async fn cancel_reason(&self, build: BuildId) -> StoreResult<Option<String>> {
        Ok(self.conn().await?.get(cancel_key(build)).await?)
    }

    /// Whether a build was asked to cancel.
    pub async fn is_cancelled(&self, build: BuildId) -> StoreResult<bool> {
        Ok(self.conn().await?.exists(cancel_key(build)).await?)
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claims are taken in order, one per delivery; an entry's own claim
    /// holds again (planning is resumable); a released delivery is free.
    #[tokio::test]
    async fn a_batch_of_claims_gives_each_delivery_to_its_first_entry() {
        let dir = tempfile::tempdir().unwrap();
        let redis = crate::redis_server::EmbeddedRedis::start(dir.path()).await.expect("redis-server runs (apt-get install redis-server)");
        let store = Store::new(crate::redis_server::pool(&redis.url()).unwrap());
        let (one, two) = (DeliveryId("delivery-1".into()), DeliveryId("delivery-2".into()));
        let entries: Vec<EntryId> = (1..=4).map(|n| EntryId(format!("{n}-0"))).collect();

        let claims =
            store.claim_deliveries(&[(&one, &entries[0]), (&one, &entries[1]), (&two, &entries[2]), (&one, &entries[0])]).await.unwrap();

        assert_eq!(claims, vec![Claim::Owned, Claim::InFlight(entries[0].clone()), Claim::Owned, Claim::Owned]);
        assert_eq!(store.claim_delivery(&one, &entries[3]).await.unwrap(), Claim::InFlight(entries[0].clone()));
        store.release_delivery(&one, &entries[0]).await.unwrap();
        assert_eq!(store.claim_delivery(&one, &entries[3]).await.unwrap(), Claim::Owned);
        assert_eq!(store.claim_deliveries(&[]).await.unwrap(), vec![]);
    }
}
