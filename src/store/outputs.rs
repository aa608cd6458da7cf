//! What steps leave behind, recorded beside their stage and build: job
//! summaries (masked Markdown, at most `runner::summary::SUMMARY_LIMIT`
//! bytes a step) and the records of artifacts (the files themselves are
//! in `blobs`). Retention's prune deletes both with their build (see
//! `store::retention`).

use super::{Store, StoreResult, error};
use crate::ids::{BuildId, StageId};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

/// A stage's step summaries, one field per step number.
pub(super) fn summaries_key(id: StageId) -> String {
    format!("gl:stage:{id}:summaries")
}

/// A build's artifact records, in upload order.
pub(super) fn artifacts_key(id: BuildId) -> String {
    format!("gl:build:{id}:artifacts")
}

/// Where a build's artifacts are kept in the artifacts' blobs: one folder
/// per build, so retention deletes them with one listing.
pub fn artifacts_folder(build: BuildId) -> String {
    build.to_string()
}

/// The key of one artifact: build, stage number, step number, then its
/// path's parts each made safe ([`crate::blobs::Blobs::part`]).
pub fn artifact_key(build: BuildId, stage: i64, step: i64, name: &str) -> String {
    let parts: Vec<String> = name.split('/').map(crate::blobs::Blobs::part).collect();
    format!("{}/{stage}/{step}/{}", artifacts_folder(build), parts.join("/"))
}

/// One step's job summary, masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSummary {
    /// The step's number in its stage.
    pub step: i64,
    /// The step's name (the summary's heading).
    pub name: String,
    /// The Markdown, secrets masked.
    pub markdown: String,
    /// Whether the step wrote more than was kept.
    pub cut: bool,
}

/// One file a step uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Its path relative to the workspace (`dist/app.tar.gz`).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The stage's number in the build.
    pub stage: i64,
    /// The step's name.
    pub step: String,
    /// The step's number in its stage.
    pub step_number: i64,
    /// Its key in the artifacts' blobs.
    pub key: String,
    /// The disk holding it (`host:/dir`, see [`crate::blobs::Blobs::disk`]);
    /// `None` when it is in the shared bucket.
    pub disk: Option<String>,
}

impl Store {
    /// Keeps a step's summary with its stage (replacing an earlier run's).
    pub async fn save_summary(&self, stage: StageId, summary: &StepSummary) -> StoreResult<()> {
        let raw = serde_json::to_string(summary).expect("records serialize");
        let _: () = self.conn().await?.hset(summaries_key(stage), summary.step, raw).await?;
        Ok(())
    }

    /// A stage's step summaries, in step order.
    pub async fn summaries(&self, stage: StageId) -> StoreResult<Vec<StepSummary>> {
        let key = summaries_key(stage);
        let raws: Vec<(i64, String)> = self.conn().await?.hgetall(&key).await?;
        let mut out = raws.iter().map(|(_, raw)| error::decode::<StepSummary>(&key, raw)).collect::<StoreResult<Vec<_>>>()?;
        out.sort_by_key(|s| s.step);
        Ok(out)
    }

    /// Forgets a stage's summaries (it runs again).
    pub async fn clear_summaries(&self, stage: StageId) -> StoreResult<()> {
        let _: () = self.conn().await?.del(summaries_key(stage)).await?;
        Ok(())
    }

    /// Records an artifact of `build`.
    pub async fn add_artifact(&self, build: BuildId, artifact: &Artifact) -> StoreResult<()> {
        let raw = serde_json::to_string(artifact).expect("records serialize");
        let _: () = self.conn().await?.rpush(artifacts_key(build), raw).await?;
        Ok(())
    }

    /// A build's artifacts, in upload order.
    pub async fn artifacts(&self, build: BuildId) -> StoreResult<Vec<Artifact>> {
        let key = artifacts_key(build);
        let raws: Vec<String> = self.conn().await?.lrange(&key, 0, -1).await?;
        raws.iter().map(|raw| error::decode(&key, raw)).collect()
    }

    /// Forgets the artifacts of one stage of `build` (it runs again; its
    /// objects are replaced by the new run's under the same keys).
    pub async fn clear_stage_artifacts(&self, build: BuildId, stage: i64) -> StoreResult<()> {
        let key = artifacts_key(build);
        let mut conn = self.conn().await?;
        let raws: Vec<String> = conn.lrange(&key, 0, -1).await?;
        for raw in raws {
            if error::decode::<Artifact>(&key, &raw).is_ok_and(|a| a.stage == stage) {
                let _: i64 = conn.lrem(&key, 1, &raw).await?;
            }
        }
        Ok(())
    }
}
