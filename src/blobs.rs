//! Files kept after a step: caches and artifacts, on the worker's disk or in
//! the log store's bucket.
//!
//! Logs are text that Redis or a bucket holds well; caches and artifacts
//! are files of any size, so they never go through Redis. A single machine
//! keeps them under its data directory (`blobs/`); when
//! `GREENLIGHT_LOG_STORE` names a bucket, they go there too (under the
//! same prefix), so every worker restores every other's caches and the API
//! of any machine serves every artifact. Both are one `object_store`
//! interface, so the code that saves a cache does not know where it goes.
//!
//! Keys are `/`-separated and chosen by greenlight (the caller makes each
//! part safe with [`Blobs::part`]), never taken from a step as they are.

use crate::config::{LogStoreConfig, S3Config};
use anyhow::Context;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart};
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a request to the bucket is retried before it fails (a log
/// that cannot be archived stays a stream, a cache that cannot be saved is
/// only a slower next build, so waiting longer gains nothing).
pub const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(20);

/// The size of each part of an upload: S3 wants at least 5 MiB per part
/// but the last, and at most 10,000 parts, so 16 MiB parts carry files up
/// to 156 GiB while holding little memory.
pub const PART_BYTES: usize = 16 * 1024 * 1024;

/// The scope ([`Blobs::scoped`]) artifacts are kept under.
pub const ARTIFACTS: &str = "artifacts";

/// How many parts of one upload are in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// An S3 client for `config`'s bucket, retrying each request for at most
/// [`S3_RETRY_TIMEOUT`].
pub fn s3_client(config: &S3Config) -> anyhow::Result<AmazonS3> {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&config.bucket)
        .with_region(config.region.as_deref().unwrap_or("us-east-1"))
        .with_retry(RetryConfig { max_retries: 3, retry_timeout: S3_RETRY_TIMEOUT, ..RetryConfig::default() });
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
    }
    if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        builder = builder.with_access_key_id(id).with_secret_access_key(secret.expose_secret());
    }
    if let Some(token) = &config.session_token {
        builder = builder.with_token(token.expose_secret());
    }
    builder.build().context("GREENLIGHT_LOG_STORE: cannot configure the S3 client")
}

/// One object: where it is and how big.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Its key, relative to the [`Blobs`] it was listed from.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// Where a [`Blobs`] keeps its objects, for messages and for callers that
/// treat the shared case differently (a disk cache evicts itself; a
/// bucket's lifecycle rules are the operator's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory on this machine.
    Disk(PathBuf),
    /// A bucket every process shares: `s3://BUCKET/PREFIX`.
    Bucket(String),
}

/// A place to keep files: one prefix of a directory or of a bucket.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// The key prefix, without slashes at either end (may be empty).
    prefix: String,
    location: Location,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blobs({})", self.describe())
    }
}

impl Blobs {
    /// The blobs of this deployment: in the log store's bucket when one is
    /// set (every process shares them), else under `data_dir/blobs`.
    pub fn of(log_store: &LogStoreConfig, data_dir: &Path) -> anyhow::Result<Self> {
        match log_store {
            LogStoreConfig::S3(config) => Self::in_bucket(config),
            LogStoreConfig::Redis => Self::on_disk(&data_dir.join("blobs")),
        }
    }

    /// Objects as files under `dir` (created, readable by its owner only).
    pub fn on_disk(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
        let store = LocalFileSystem::new_with_prefix(dir).with_context(|| format!("opening {}", dir.display()))?;
        Ok(Self { store: Arc::new(store), prefix: String::new(), location: Location::Disk(dir.to_path_buf()) })
    }

    /// Objects in `config`'s bucket, under its prefix and `blobs/`.
    pub fn in_bucket(config: &S3Config) -> anyhow::Result<Self> {
        let prefix = [config.prefix.as_str(), "blobs"].into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join("/");
        let location = Location::Bucket(format!("s3://{}/{prefix}", config.bucket));
        Ok(Self { store: Arc::new(s3_client(config)?), prefix, location })
    }

    /// The same store under `sub` (`caches`, `artifacts/42`): keys given to
    /// the result are relative to it.
    pub fn scoped(&self, sub: &str) -> Self {
        let sub = sub.trim_matches('/');
        let prefix = if self.prefix.is_empty() { sub.to_string() } else { format!("{}/{sub}", self.prefix) };
        let location = match &self.location {
            Location::Disk(dir) => Location::Disk(dir.join(sub)),
            Location::Bucket(url) => Location::Bucket(format!("{url}/{sub}")),
        };
        Self { store: self.store.clone(), prefix, location }
    }

    /// Where the objects are.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// For objects on a disk, which disk: `host:/dir`, so a process on
    /// another machine knows it cannot read them; `None` in a bucket.
    pub fn disk(&self) -> Option<String> {
        match &self.location {
            Location::Disk(dir) => Some(format!("{}:{}", crate::text::hostname(), dir.display())),
            Location::Bucket(_) => None,
        }
    }

    /// The file holding `key` when the objects are on this machine's disk
    /// (read it in place instead of copying it), `None` in a bucket.
    pub fn local_file(&self, key: &str) -> Option<PathBuf> {
        match &self.location {
            Location::Disk(dir) => Some(dir.join(key.trim_matches('/'))),
            Location::Bucket(_) => None,
        }
    }

    /// Where the objects are, as people write it.
    pub fn describe(&self) -> String {
        match &self.location {
            Location::Disk(dir) => dir.display().to_string(),
            Location::Bucket(url) => url.clone(),
        }
    }

    /// `text` made safe as one part of a key: anything but ASCII letters,
    /// digits, `-`, `_` and `.` becomes `%XX`, so a branch `a/b` or a key
    /// with spaces stays one part, and `..` cannot climb (it becomes `%2E%2E`).
    pub fn part(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') || (b == b'.' && text != "." && text != "..") {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        if out.is_empty() { "%00".to_string() } else { out }
    }

    fn key(&self, key: &str) -> Key {
        let key = key.trim_matches('/');
        Key::from(if self.prefix.is_empty() { key.to_string() } else { format!("{}/{key}", self.prefix) })
    }

    /// Uploads the file at `file` as `key`, replacing any earlier object,
    /// in [`PART_BYTES`] parts; returns its size. Readers see the old
    /// object or the new one, never a part.
    pub async fn put_file(&self, key: &str, file: &Path) -> anyhow::Result<u64> {
        let reader = tokio::fs::File::open(file).await.with_context(|| format!("opening {}", file.display()))?;
        self.put_reader(key, reader, &file.display().to_string()).await
    }

    /// Uploads what `reader` holds (named `what` in errors) as `key`, as
    /// [`Blobs::put_file`] does; returns its size.
    pub async fn put_reader(&self, key: &str, mut reader: impl tokio::io::AsyncRead + Unpin, what: &str) -> anyhow::Result<u64> {
        let upload = self.store.put_multipart(&self.key(key)).await.with_context(|| format!("starting the upload of {key}"))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buffer = vec![0u8; 1024 * 1024];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buffer).await.with_context(|| format!("reading {what}"))?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await.with_context(|| format!("uploading {key}"))?;
            writer.write(&buffer[..n]);
            total += n as u64;
        }
        writer.finish().await.with_context(|| format!("finishing the upload of {key}"))?;
        Ok(total)
    }

    /// Downloads `key` into a new file at `dest`; its size, or `None` when
    /// there is no such object (`dest` is then not created).
    pub async fn get_file(&self, key: &str, dest: &Path) -> anyhow::Result<Option<u64>> {
        let Some((_, mut stream)) = self.open(key).await? else {
            return Ok(None);
        };
        let mut out = tokio::fs::File::create(dest).await.with_context(|| format!("creating {}", dest.display()))?;
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| format!("downloading {key}"))?;
            out.write_all(&chunk).await.with_context(|| format!("writing {}", dest.display()))?;
            total += chunk.len() as u64;
        }
        out.flush().await?;
        Ok(Some(total))
    }

    /// `key`'s size and its bytes as a stream (for an HTTP response), or
    /// `None` when there is no such object.
    pub async fn open(
        &self,
        key: &str,
    ) -> anyhow::Result<Option<(u64, futures::stream::BoxStream<'static, anyhow::Result<bytes::Bytes>>)>> {
        match self.store.get(&self.key(key)).await {
            Ok(found) => {
                let size = found.meta.size;
                Ok(Some((size, found.into_stream().map(|r| r.map_err(anyhow::Error::from)).boxed())))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {key} from {}", self.describe())),
        }
    }

    /// Every object whose key starts with the folder `folder` ("" for all),
    /// with keys relative to this store.
    pub async fn list(&self, folder: &str) -> anyhow::Result<Vec<BlobInfo>> {
        let under = self.key(folder);
        let listed = if folder.trim_matches('/').is_empty() && self.prefix.is_empty() { None } else { Some(&under) };
        let mut stream = self.store.list(listed);
        let mut out = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = match meta {
                Ok(meta) => meta,
                // A local store lists nothing under a folder not yet made.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e).with_context(|| format!("listing {}", self.describe())),
            };
            let full = meta.location.to_string();
            let key =
                if self.prefix.is_empty() { full } else { full.strip_prefix(&format!("{}/", self.prefix)).unwrap_or(&full).to_string() };
            out.push(BlobInfo { key, size: meta.size, modified: meta.last_modified });
        }
        Ok(out)
    }

    /// Deletes `key`; a missing object is no error.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self.store.delete(&self.key(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting {key} from {}", self.describe())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_one_part_and_cannot_climb() {
        assert_eq!(Blobs::part("main"), "main");
        assert_eq!(Blobs::part("feature/x y"), "feature%2Fx%20y");
        assert_eq!(Blobs::part(".."), "%2E%2E");
        assert_eq!(Blobs::part("v1.2"), "v1.2");
        assert_eq!(Blobs::part(""), "%00");
    }

    #[tokio::test]
    async fn a_file_goes_in_and_comes_back_and_lists_under_its_scope() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::on_disk(&dir.path().join("blobs")).unwrap().scoped("caches");
        let source = dir.path().join("in");
        std::fs::write(&source, vec![7u8; 3 * 1024 * 1024 + 5]).unwrap();

        assert_eq!(blobs.put_file("repo/main/k", &source).await.unwrap(), 3 * 1024 * 1024 + 5);
        let listed = blobs.list("repo").await.unwrap();
        let dest = dir.path().join("out");
        let got = blobs.get_file("repo/main/k", &dest).await.unwrap();
        let missing = blobs.get_file("repo/main/other", &dir.path().join("none")).await.unwrap();
        blobs.delete("repo/main/k").await.unwrap();

        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].key.as_str(), listed[0].size), ("repo/main/k", 3 * 1024 * 1024 + 5));
        assert_eq!(got, Some(3 * 1024 * 1024 + 5));
        assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&source).unwrap());
        assert_eq!(missing, None);
        assert!(blobs.list("").await.unwrap().is_empty());
        assert!(dir.path().join("blobs/caches").is_dir(), "objects live under the data directory's blobs/");
    }
}
