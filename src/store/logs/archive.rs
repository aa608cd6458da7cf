//! Finished step logs: one zstd-compressed object per step, in Redis (the
//! embedded default) or in an S3-compatible bucket.
//!
//! A running step's lines are a Redis stream because followers need them
//! live; once it ends nobody appends again, and a stream of JSON batches
//! costs Redis several times the text. Compressed into one object, 1 MB of
//! output takes a fraction of that in Redis, or nothing there at all when
//! the objects live in a bucket shared by workers on many machines.
//!
//! The object is the log as JSON lines (`{"pos":…,"out":"…","time":…}` per
//! line, newline-separated), so a tail is read in one pass keeping only
//! the lines it returns.

use super::LogLine;
use crate::config::S3Config;
use crate::ids::StageId;
use crate::redis_pool::Pool;
use crate::store::{StoreError, StoreResult};
use anyhow::Context;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use std::io::{BufRead, Write};
use std::sync::Arc;

/// The zstd level logs are compressed at: near the best ratio for build
/// output (about 10× on apt and compiler logs) at hundreds of MB/s.
pub const ARCHIVE_LEVEL: i32 = 3;

/// The Redis key of a step's compressed log (embedded store).
fn object_key(stage: StageId, step: i64) -> String {
    format!("gl:logz:{stage}:{step}")
}

/// Where compressed logs are kept.
#[derive(Clone)]
pub(super) enum Archive {
    /// In Redis, as one string per step.
    Redis(Pool),
    /// In a bucket, as `PREFIX/STAGE/STEP.jsonl.zst`.
    S3 {
        /// The bucket's client.
        store: Arc<AmazonS3>,
        /// The key prefix, without slashes at either end.
        prefix: String,
    },
}

impl Archive {
    /// The bucket `config` names, once a probe object was written, read
    /// back and deleted there.
    pub(super) async fn s3(config: &S3Config) -> anyhow::Result<Self> {
        let store = Arc::new(crate::blobs::s3_client(config)?);
        let archive = Self::S3 { store, prefix: config.prefix.clone() };
        archive.probe().await.with_context(|| {
            format!(
                "GREENLIGHT_LOG_STORE: cannot write to s3://{}/{} (check the bucket exists and the AWS_* credentials and AWS_ENDPOINT_URL)",
                config.bucket, config.prefix
            )
        })?;
        Ok(archive)
    }

    /// Writes, reads back and deletes an object, to fail at startup rather
    /// than at the first finished step.
    async fn probe(&self) -> anyhow::Result<()> {
        let Self::S3 { store, prefix } = self else { return Ok(()) };
        let path = Path::from(format!("{prefix}/.greenlight-probe-{:016x}", rand::random::<u64>()).trim_start_matches('/'));
        store.put(&path, PutPayload::from_static(b"greenlight")).await.context("writing a probe object")?;
        store.get(&path).await.context("reading the probe object back")?;
        store.delete(&path).await.context("deleting the probe object")?;
        Ok(())
    }

    fn path(prefix: &str, stage: StageId, step: i64) -> Path {
        Path::from(format!("{prefix}/{stage}/{step}.jsonl.zst").trim_start_matches('/'))
    }

    /// Stores a step's compressed log, replacing any earlier one.
    pub(super) async fn put(&self, stage: StageId, step: i64, bytes: Vec<u8>) -> StoreResult<()> {
        match self {
            Self::Redis(pool) => {
                redis::cmd("SET").arg(object_key(stage, step)).arg(bytes).query_async::<()>(&mut pool.get().await?).await?;
            }
            Self::S3 { store, prefix } => {
                store.put(&Self::path(prefix, stage, step), PutPayload::from(bytes)).await.map_err(s3_error)?;
            }
        }
        Ok(())
    }

    /// A step's compressed log, if it was archived.
    pub(super) async fn get(&self, stage: StageId, step: i64) -> StoreResult<Option<Vec<u8>>> {
        match self {
            Self::Redis(pool) => Ok(redis::cmd("GET").arg(object_key(stage, step)).query_async(&mut pool.get().await?).await?),
            Self::S3 { store, prefix } => match store.get(&Self::path(prefix, stage, step)).await {
                Ok(found) => Ok(Some(found.bytes().await.map_err(s3_error)?.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(s3_error(e)),
            },
        }
    }

    /// Deletes a step's compressed log; none is no error.
    pub(super) async fn delete(&self, stage: StageId, step: i64) -> StoreResult<()> {
        match self {
            Self::Redis(pool) => {
                redis::cmd("DEL").arg(object_key(stage, step)).query_async::<i64>(&mut pool.get().await?).await?;
            }
            Self::S3 { store, prefix } => match store.delete(&Self::path(prefix, stage, step)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(s3_error(e)),
            },
        }
        Ok(())
    }
}

fn s3_error(e: object_store::Error) -> StoreError {
    StoreError::LogStore(e.to_string())
}

/// A log being compressed, batch by batch.
pub(super) struct Packer {
    encoder: zstd::stream::write::Encoder<'static, Vec<u8>>,
    lines: usize,
}

impl Packer {
    /// An empty log.
    pub(super) fn new() -> Self {
        Self { encoder: zstd::stream::write::Encoder::new(Vec::new(), ARCHIVE_LEVEL).expect("a valid zstd level"), lines: 0 }
    }

    /// Adds stored batches (JSON lists of lines) in order.
    pub(super) fn add(&mut self, key: &str, batches: &[String]) -> StoreResult<()> {
        for batch in batches {
            let lines: Vec<LogLine> = crate::store::error::decode(key, batch)?;
            for line in &lines {
                let json = serde_json::to_string(line).expect("log lines serialize");
                self.encoder.write_all(json.as_bytes()).and_then(|()| self.encoder.write_all(b"\n")).expect("writing to memory");
            }
            self.lines += lines.len();
        }
        Ok(())
    }

    /// Lines added so far.
    pub(super) fn lines(&self) -> usize {
        self.lines
    }

    /// The compressed log.
    pub(super) fn finish(self) -> Vec<u8> {
        self.encoder.finish().expect("writing to memory")
    }
}

/// Runs `add` over every line of a compressed log, in order, with the
/// length of its JSON, off the async threads; returns what `acc` became.
pub(super) async fn unpack<T: Send + 'static>(key: String, bytes: Vec<u8>, mut acc: T, add: fn(&mut T, LogLine, usize)) -> StoreResult<T> {
    tokio::task::spawn_blocking(move || {
        let corrupt = |reason: String| StoreError::Corrupt { key: key.clone(), reason };
        let decoder = zstd::stream::read::Decoder::new(&bytes[..]).map_err(|e| corrupt(e.to_string()))?;
        for line in std::io::BufReader::new(decoder).lines() {
            let line = line.map_err(|e| corrupt(e.to_string()))?;
            let parsed: LogLine = crate::store::error::decode(&key, &line)?;
            add(&mut acc, parsed, line.len());
        }
        Ok(acc)
    })
    .await
    .map_err(|e| StoreError::LogStore(format!("unpacking a log: {e}")))?
}
