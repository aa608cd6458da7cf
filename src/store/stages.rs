//! Stage records, written so that their cost is linear in their steps.
//!
//! A stage record holds its whole pipeline and every step record. Rewriting
//! it at each step's start and end made a stage of n steps cost O(n²) bytes
//! written (1,000 `true` steps once wrote 961 MB to Redis and forced 14 AOF
//! rewrites). So a running step's record is written on its own, into a hash
//! beside the stage (`gl:stage:{id}:steps`, one field per step number),
//! and readers lay those fields over the record's steps.
//!
//! Consistency: a whole-record write ([`Store::update_stage`]) reads the
//! record with its step fields laid over, writes it whole and deletes the
//! hash in one transaction, watching both keys; a step write checks, in the
//! same Lua call, that the run writing it is still the stage's current run
//! (`gl:stage:{id}:run` holds the attempt while the stage runs), so a worker
//! whose stage was taken over writes nothing.

use super::{Store, StoreResult, error, stage_key};
use crate::ids::StageId;
use crate::model::{Build, Stage, StageState, StepRecord};
use redis::Script;
use std::collections::HashMap;
use std::sync::LazyLock;

/// The step records written since the stage record was last written whole.
pub(super) fn steps_key(id: StageId) -> String {
    format!("gl:stage:{id}:steps")
}

/// The attempt of the run that may write step records, while the stage runs.
pub(super) fn run_key(id: StageId) -> String {
    format!("gl:stage:{id}:run")
}

/// Writes one step record if `ARGV[1]` is still the running attempt.
/// KEYS: the run key, the steps hash. ARGV: attempt, step number, record.
static RECORD_STEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
",
    )
});

/// Lays the step records written on their own over the record's.
fn overlay(stage: &mut Stage, fields: HashMap<i64, String>) -> StoreResult<()> {
    for (number, raw) in fields {
        let record: StepRecord = error::decode(&steps_key(stage.id), &raw)?;
        if let Some(step) = stage.steps.iter_mut().find(|s| s.number == number) {
            *step = record;
        }
    }
    Ok(())
}

/// Adds to `pipe` the whole-record write of `stage`: the record, no
/// separate step records, and the run guard matching its state.
fn write_whole(pipe: &mut redis::Pipeline, stage: &Stage) {
    pipe.set(stage_key(stage.id), serde_json::to_string(stage).expect("records serialize")).ignore();
    pipe.del(steps_key(stage.id)).ignore();
    match stage.state {
        StageState::Running { .. } => pipe.set(run_key(stage.id), stage.attempt).ignore(),
        _ => pipe.del(run_key(stage.id)).ignore(),
    };
}

impl Store {
    /// Adds to `pipe` the writes of new stages (with their build).
    pub(super) fn record_stages(pipe: &mut redis::Pipeline, stages: &[Stage]) {
        for stage in stages {
            write_whole(pipe, stage);
        }
    }

    /// A stage by id, with its latest step records.
    pub async fn stage(&self, id: StageId) -> StoreResult<Option<Stage>> {
        let mut conn = self.conn().await?;
        let (raw, fields): (Option<String>, HashMap<i64, String>) =
            redis::pipe().get(stage_key(id)).hgetall(steps_key(id)).query_async(&mut conn).await?;
        let Some(raw) = raw else { return Ok(None) };
        let mut stage: Stage = error::decode(&stage_key(id), &raw)?;
        overlay(&mut stage, fields)?;
        Ok(Some(stage))
    }

    /// The stages of a build, in order.
    pub async fn stages(&self, build: &Build) -> StoreResult<Vec<Stage>> {
        let mut out = Vec::with_capacity(build.stages.len());
        for id in &build.stages {
            if let Some(stage) = self.stage(*id).await? {
                out.push(stage);
            }
        }
        Ok(out)
    }

    /// Reads, changes and writes a stage atomically (optimistic, like
    /// [`Store::update_build`]); `change` returns false to leave it as it
    /// is. Returns the stage as it is now. For writers that do not hold the
    /// stage's lease, so they never overwrite what its worker wrote.
    pub async fn update_stage(&self, id: StageId, mut change: impl FnMut(&mut Stage) -> bool) -> StoreResult<Option<Stage>> {
        let (key, steps) = (stage_key(id), steps_key(id));
        let decode = |(raw, fields): (Option<String>, HashMap<i64, String>)| {
            let Some(raw) = raw else { return Ok(None) };
            let mut stage: Stage = error::decode(&key, &raw)?;
            overlay(&mut stage, fields)?;
            Ok(Some(stage))
        };
        let versioned = |stage: &mut Stage| {
            let changed = change(stage);
            if changed {
                stage.version += 1;
            }
            changed
        };
        let updated = self.watched(&[&key, &steps], redis::pipe().get(&key).hgetall(&steps), decode, versioned, write_whole).await?;
        if let Some((stage, true)) = &updated {
            self.announce(stage.repo_id, stage.build_id).await?;
        }
        Ok(updated.map(|(stage, _)| stage))
    }

    /// Writes one step record of a running stage, unless the stage's
    /// current run is no longer attempt `attempt` (another worker took it
    /// over): false then. Costs the size of the step record, not the stage's.
    pub async fn record_step(&self, stage: &Stage, step: &StepRecord, attempt: u32) -> StoreResult<bool> {
        let record = serde_json::to_string(step).expect("records serialize");
        let written: i64 = RECORD_STEP
            .key(run_key(stage.id))
            .key(steps_key(stage.id))
            .arg(attempt)
            .arg(step.number)
            .arg(record)
            .invoke_async(&mut self.conn().await?)
            .await?;
        if written == 1 {
            self.announce(stage.repo_id, stage.build_id).await?;
        }
        Ok(written == 1)
    }
}
