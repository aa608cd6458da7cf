//! Cron jobs and their schedules' state.
//!
//! `gl:repo:{id}:crons` holds each job's record by name. The schedule's
//! state lives apart, in two hashes over every repository keyed by
//! `{repo}/{name}`: `gl:crons:next` (the next tick, absent while the job is
//! disabled) and `gl:crons:prev` (the last tick fired). Moving `next` on is
//! a compare-and-set ([`Store::claim_cron_tick`]): of the processes that
//! see a tick due, exactly one moves it, and only that one fires the build.

use super::{Store, StoreResult, error};
use crate::ids::RepoId;
use crate::model::{CronJob, ScheduledCron};
use redis::AsyncCommands;
use redis::Script;
use std::sync::LazyLock;

/// The next tick of every enabled job.
const NEXT: &str = "gl:crons:next";

/// The last tick fired of every job.
const PREV: &str = "gl:crons:prev";

fn jobs_key(repo: RepoId) -> String {
    format!("gl:repo:{}:crons", repo.0)
}

fn tick_field(repo: RepoId, name: &str) -> String {
    format!("{}/{name}", repo.0)
}

/// Moves a job's next tick from ARGV[2] to ARGV[3] if it is still ARGV[2],
/// noting ARGV[2] as its previous tick; 1 when this call moved it.
static CLAIM_TICK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
",
    )
});

/// A job whose tick has come, as the scheduler finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCron {
    /// Its repository.
    pub repo: RepoId,
    /// Its name.
    pub name: String,
    /// The tick that is due (Unix seconds).
    pub tick: i64,
}

impl Store {
    /// Writes a job and its next tick (`None`: disabled, no tick).
    pub async fn put_cron(&self, job: &CronJob, next: Option<i64>) -> StoreResult<()> {
        let field = tick_field(job.repo_id, &job.name);
        let mut pipe = redis::pipe();
        pipe.atomic().hset(jobs_key(job.repo_id), &job.name, serde_json::to_string(job).expect("records serialize"));
        match next {
            Some(next) => pipe.hset(NEXT, &field, next),
            None => pipe.hdel(NEXT, &field),
        };
        let _: () = pipe.query_async(&mut self.conn().await?).await?;
        Ok(())
    }

    /// One job with its schedule's state.
    pub async fn cron(&self, repo: RepoId, name: &str) -> StoreResult<Option<ScheduledCron>> {
        let raw: Option<String> = self.conn().await?.hget(jobs_key(repo), name).await?;
        match raw {
            Some(text) => Ok(Some(self.scheduled(error::decode(&jobs_key(repo), &text)?).await?)),
            None => Ok(None),
        }
    }

    /// A repository's jobs, by name.
    pub async fn crons(&self, repo: RepoId) -> StoreResult<Vec<ScheduledCron>> {
        let all: std::collections::BTreeMap<String, String> = self.conn().await?.hgetall(jobs_key(repo)).await?;
        let mut jobs = Vec::with_capacity(all.len());
        for text in all.values() {
            jobs.push(self.scheduled(error::decode(&jobs_key(repo), text)?).await?);
        }
        Ok(jobs)
    }

    async fn scheduled(&self, job: CronJob) -> StoreResult<ScheduledCron> {
        let field = tick_field(job.repo_id, &job.name);
        let (next, prev): (Option<i64>, Option<i64>) =
            redis::pipe().hget(NEXT, &field).hget(PREV, &field).query_async(&mut self.conn().await?).await?;
        Ok(ScheduledCron { job, next: next.unwrap_or(0), prev: prev.unwrap_or(0) })
    }

    /// Deletes a job and its schedule; whether it existed.
    pub async fn delete_cron(&self, repo: RepoId, name: &str) -> StoreResult<bool> {
        let field = tick_field(repo, name);
        let (removed, _, _): (i64, i64, i64) = redis::pipe()
            .atomic()
            .hdel(jobs_key(repo), name)
            .hdel(NEXT, &field)
            .hdel(PREV, &field)
            .query_async(&mut self.conn().await?)
            .await?;
        Ok(removed == 1)
    }

    /// The enabled jobs whose next tick is at or before `now`.
    pub async fn due_crons(&self, now: i64) -> StoreResult<Vec<DueCron>> {
        let all: Vec<(String, i64)> = self.conn().await?.hgetall(NEXT).await?;
        Ok(all
            .into_iter()
            .filter(|(_, tick)| *tick <= now)
            .filter_map(|(field, tick)| {
                let (repo, name) = field.split_once('/')?;
                Some(DueCron { repo: RepoId(repo.parse().ok()?), name: name.to_string(), tick })
            })
            .collect())
    }

    /// Moves a due job's next tick on to `next`, if no one else has: true
    /// for exactly one caller per tick, the one that fires it.
    pub async fn claim_cron_tick(&self, due: &DueCron, next: i64) -> StoreResult<bool> {
        let moved: i64 = CLAIM_TICK
            .key(NEXT)
            .key(PREV)
            .arg(tick_field(due.repo, &due.name))
            .arg(due.tick)
            .arg(next)
            .invoke_async(&mut self.conn().await?)
            .await?;
        Ok(moved == 1)
    }
}
