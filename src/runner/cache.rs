//! Caches (`cache:` on a step): restored before the step, saved after it
//! succeeds, kept in [`crate::blobs::Blobs`] under `caches/`.
//!
//! # Who touches the workspace
//! A step is hostile and its workspace is its own: a symlink it leaves
//! (`target -> /etc`) must not make greenlight, which runs as root, read
//! host files into a cache or write a cache's files onto the host. So
//! greenlight never opens a path in the workspace: `tar` (and `sha256sum`
//! for `{{ checksum "FILE" }}`) runs as the sandbox user inside the
//! step's sandbox ([`Sandbox::command`]), which sees only the stage's
//! directory (writable) and the read-only system, and the archive travels
//! over a pipe.
//!
//! # Paths
//! tar runs in the stage's directory, which holds the checkout (`src`) and
//! the steps' HOME (`home`, see [`super::workspace`]): a path `target` is
//! archived as `src/target`, `~/.cargo/registry` as `home/.cargo/registry`,
//! so one archive holds both and each member is restored where it was. Saving stores symlinks as symlinks (tar does not follow them);
//! restoring writes as the sandbox user, so every file restored is the
//! sandbox user's and nothing outside the workspace can be written. The
//! stream is zstd-compressed by greenlight at level [`ZSTD_LEVEL`].
//!
//! # Scopes (as GitHub Actions')
//! A push build on branch B reads scope B, then the default branch's, and
//! writes B; a pull request N reads `pr/N`, then its base branch's, and
//! writes only `pr/N`; a tag reads its own scope and the default branch's.
//! Pushes never read a pull request's scope, so a fork cannot poison the
//! default branch. Caches are per repository (by its id):
//! `caches/REPO_ID/SCOPE/KEY`.
//!
//! # Size
//! On the worker's disk, the caches and the warm-clone mirrors
//! ([`super::mirror`]) share `GREENLIGHT_CACHE_MB`: after each save the
//! least recently used caches (restoring one marks it used) are removed
//! until they fit. In a bucket, the bucket's lifecycle rules bound them.

use super::limits::human_bytes;
use super::mirror::{Kept, Mirror};
use super::sandbox::{Placement, Sandbox};
use super::workspace::{CHECKOUT_DIR, HOME_DIR, Workspace};
use crate::blobs::{Blobs, Location};
use crate::model::{Commit, Event};
use crate::pipeline::CacheSpec;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// zstd's level for saving: 1, its fastest, keeps a save as fast as tar
/// reads (hundreds of MB/s on one core); a higher level saves a little
/// space for many times the time.
pub const ZSTD_LEVEL: i32 = 1;

/// The lines of a tool's error output shown in the step's log: enough for
/// tar's "Cannot stat" warnings, not a flood.
const MAX_TOOL_LINES: usize = 20;

/// What a step's caches need: where they are kept and where archives wait.
#[derive(Debug, Clone)]
pub struct Caches {
    /// `caches/` of the worker's blobs.
    pub blobs: Blobs,
    /// A private directory for archives in transit (root's, 0700).
    pub spool: PathBuf,
    /// The warm-clone mirrors, counted in the disk cap.
    pub mirrors: PathBuf,
    /// `GREENLIGHT_CACHE_MB` in bytes (disk store only).
    pub cap: u64,
}

/// Who the build is, for scopes and key templates.
#[derive(Debug, Clone, Copy)]
pub struct CacheBuild<'a> {
    /// The repository's id.
    pub repo: i64,
    /// The repository's default branch.
    pub default_branch: &'a str,
    /// The build's commit.
    pub commit: &'a Commit,
}

/// What the restore found, for the save after the step.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The rendered key.
    key: String,
    /// Whether a cache with exactly that key was restored (nothing to save then).
    exact: bool,
}

/// Why a cache could not be used: the step fails with this (the
/// pipeline asks for something greenlight cannot do), as a Drone cache
/// plugin's step would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache: {0}")]
pub struct CacheError(String);

/// The scopes a build reads, in order, and the one it writes.
pub fn scopes(build: &CacheBuild<'_>) -> (Vec<String>, String) {
    let branch = |name: &str| format!("branch/{}", Blobs::part(name));
    let default = branch(build.default_branch);
    let commit = build.commit;
    let (own, base) = match (commit.event, commit.pull_request) {
        (Event::PullRequest, Some(n)) => (format!("pr/{n}"), branch(&commit.target)),
        (Event::Tag, _) => (format!("tag/{}", Blobs::part(commit.git_ref.trim_start_matches("refs/tags/"))), default.clone()),
        _ => (branch(&commit.target), default.clone()),
    };
    let mut reads = vec![own.clone(), base];
    if !reads.contains(&default) && commit.event != Event::PullRequest {
        reads.push(default);
    }
    reads.dedup();
    (reads, own)
}

/// One `{{ … }}` of a key template.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Checksum(Vec<String>),
    Branch,
    Os,
    Arch,
}

/// Reads a key template into its pieces; an unknown `{{ … }}` is an error naming it.
fn pieces(template: &str) -> Result<Vec<Piece>, CacheError> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push(Piece::Text(rest[..start].to_string()));
        let end = rest[start..].find("}}").ok_or_else(|| CacheError(format!("key {template:?}: `{{{{` without `}}}}`")))? + start;
        let inner = rest[start + 2..end].trim();
        let (word, args) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
        out.push(match (word, args.trim()) {
            ("branch", "") => Piece::Branch,
            ("os", "") => Piece::Os,
            ("arch", "") => Piece::Arch,
            ("checksum", args) if !args.is_empty() => Piece::Checksum(quoted(args).ok_or_else(|| {
                CacheError(format!("key {template:?}: checksum takes quoted file names: {{{{ checksum \"Cargo.lock\" }}}}"))
            })?),
            _ => {
                return Err(CacheError(format!(
                    "key {template:?}: unknown template `{{{{ {inner} }}}}` (known: checksum \"FILE\", branch, os, arch)"
                )));
            }
        });
        rest = &rest[end + 2..];
    }
    out.push(Piece::Text(rest.to_string()));
    Ok(out)
}

/// `"a" "b c"` as `["a", "b c"]`; `None` when not all quoted.
fn quoted(text: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('"')?;
        let end = inner.find('"')?;
        out.push(inner[..end].to_string());
        rest = inner[end + 1..].trim_start();
    }
    Some(out)
}

/// Output of a tool run in the sandbox: its stdout, or why it failed.
async fn in_sandbox(sandbox: &Sandbox, workspace: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let mut cmd = sandbox.command(workspace, &[], Placement::default());
    cmd.args(["/usr/bin/env", "PATH=/usr/bin:/bin", "LC_ALL=C"]).args(args);
    let out = cmd.output().await.map_err(|e| format!("cannot run {}: {e}", args[0]))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).lines().take(MAX_TOOL_LINES).collect::<Vec<_>>().join("; "))
    }
}

/// The key `template` names for this build: checksums are read as the
/// sandbox user in the sandbox (a file name cannot reach outside it).
pub async fn render(template: &str, build: &CacheBuild<'_>, sandbox: &Sandbox, workspace: &Path) -> Result<String, CacheError> {
    let mut key = String::new();
    for piece in pieces(template)? {
        match piece {
            Piece::Text(text) => key.push_str(&text),
            Piece::Branch => key.push_str(&build.commit.target),
            Piece::Os => key.push_str(std::env::consts::OS),
            Piece::Arch => key.push_str(std::env::consts::ARCH),
            Piece::Checksum(files) => {
                let mut args = vec!["sha256sum", "--"];
                args.extend(files.iter().map(String::as_str));
                let out = in_sandbox(sandbox, workspace, &args)
                    .await
                    .map_err(|e| CacheError(format!("key {template:?}: cannot checksum {}: {e}", files.join(", "))))?;
                let sums: Vec<&str> = std::str::from_utf8(&out).unwrap_or_default().lines().filter_map(|l| l.split(' ').next()).collect();
                key.push_str(&match sums.as_slice() {
                    [one] => one.to_string(),
                    many => hex::encode(<sha2::Sha256 as sha2::Digest>::digest(many.join("\n").as_bytes())),
                });
            }
        }
    }
    Ok(key)
}

/// Sends `line` to the step's log as a `[greenlight] cache: …` line.
pub async fn say(lines: &mpsc::Sender<String>, line: String) {
    let _ = lines.send(format!("[greenlight] cache: {line}\n")).await;
}

/// Sends a tool's error output (up to [`MAX_TOOL_LINES`] lines) to the log.
async fn relay_stderr(stderr: Option<tokio::process::ChildStderr>, lines: &mpsc::Sender<String>) {
    let Some(mut stderr) = stderr else { return };
    let mut text = String::new();
    let _ = stderr.read_to_string(&mut text).await;
    for line in text.lines().take(MAX_TOOL_LINES) {
        let _ = lines.send(format!("{line}\n")).await;
    }
}

impl Caches {
    /// Restores the newest cache for `spec` before its step; `Err` fails
    /// the step (a template or path it cannot have), a store that cannot be
    /// read is only a miss said in the log.
    pub async fn restore(
        &self,
        spec: &CacheSpec,
        build: &CacheBuild<'_>,
        sandbox: &Sandbox,
        workspace: &Workspace,
        lines: &mpsc::Sender<String>,
    ) -> Result<Restored, CacheError> {
        let key = render(&spec.key, build, sandbox, &workspace.path()).await?;
        let started = Instant::now();
        let found = match self.find(&key, &spec.restore_keys, build).await {
            Ok(found) => found,
            Err(e) => {
                say(lines, format!("miss ({key}): the store cannot be read: {e:#}")).await;
                return Ok(Restored { key, exact: false });
            }
        };
        let Some((object, exact)) = found else {
            say(lines, format!("miss ({key})")).await;
            return Ok(Restored { key, exact: false });
        };
        let name = object.rsplit('/').next().unwrap_or_default().to_string();
        match self.unpack(&object, sandbox, workspace, lines).await {
            Ok((packed, unpacked)) => {
                let what = if exact { format!("hit ({key})") } else { format!("partial hit ({})", unpart(&name)) };
                let took = started.elapsed().as_secs_f64();
                say(lines, format!("{what}: restored {} ({} compressed) in {took:.2} s", human_bytes(unpacked), human_bytes(packed))).await;
                self.touch(&object).await;
                Ok(Restored { key, exact })
            }
            Err(e) => {
                say(lines, format!("miss ({key}): cannot restore {}: {e:#}", unpart(&name))).await;
                Ok(Restored { key, exact: false })
            }
        }
    }

    /// The object to restore and whether its key is exact: the key in each
    /// scope read, else the newest whose key starts with each restore key.
    async fn find(&self, key: &str, restore_keys: &[String], build: &CacheBuild<'_>) -> anyhow::Result<Option<(String, bool)>> {
        let (reads, _) = scopes(build);
        let mut listed = Vec::new();
        for scope in &reads {
            listed.push(self.blobs.list(&format!("{}/{scope}", build.repo)).await?);
        }
        let exact = Blobs::part(key);
        for (scope, objects) in reads.iter().zip(&listed) {
            if objects.iter().any(|o| o.key.rsplit('/').next() == Some(exact.as_str())) {
                return Ok(Some((format!("{}/{scope}/{exact}", build.repo), true)));
            }
        }
        for prefix in restore_keys {
            let prefix = Blobs::part(prefix);
            for objects in &listed {
                let newest =
                    objects.iter().filter(|o| o.key.rsplit('/').next().is_some_and(|n| n.starts_with(&prefix))).max_by_key(|o| o.modified);
                if let Some(newest) = newest {
                    return Ok(Some((newest.key.clone(), false)));
                }
            }
        }
        Ok(None)
    }

    /// A new private file in the spool, removed when dropped.
    fn spool_file(&self) -> anyhow::Result<tempfile::NamedTempFile> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.spool)?;
        Ok(tempfile::NamedTempFile::new_in(&self.spool)?)
    }

    /// Downloads `object` and extracts it into the stage's directory with
    /// tar run as the sandbox user in the sandbox, decompressing into its
    /// stdin; returns the compressed and extracted sizes.
    async fn unpack(
        &self,
        object: &str,
        sandbox: &Sandbox,
        workspace: &Workspace,
        lines: &mpsc::Sender<String>,
    ) -> anyhow::Result<(u64, u64)> {
        let (source, packed, _spooled) = match self.blobs.local_file(object) {
            Some(path) => {
                let file = std::fs::File::open(&path).map_err(|e| anyhow::anyhow!("it was removed meanwhile ({e})"))?;
                let size = file.metadata()?.len();
                (file, size, None)
            }
            None => {
                let spooled = self.spool_file()?;
                let size = self.blobs.get_file(object, spooled.path()).await?.ok_or_else(|| anyhow::anyhow!("it was removed meanwhile"))?;
                (spooled.reopen()?, size, Some(spooled))
            }
        };
        let (read, write) = std::io::pipe()?;
        let mut cmd = sandbox.command(workspace.root(), &[], Placement::default());
        cmd.args(["/usr/bin/env", "PATH=/usr/bin:/bin", "LC_ALL=C", "tar", "-x", "-f", "-", "--no-same-owner"]);
        cmd.stdin(Stdio::from(OwnedFd::from(read))).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        drop(cmd);
        let feed = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let mut counted = Counting { inner: write, bytes: 0 };
            zstd::stream::copy_decode(std::io::BufReader::with_capacity(1 << 20, source), &mut counted)?;
            Ok(counted.bytes)
        });
        relay_stderr(child.stderr.take(), lines).await;
        let status = child.wait().await?;
        let unpacked = feed.await?;
        anyhow::ensure!(status.success(), "tar failed ({status})");
        Ok((packed, unpacked?))
    }

    /// Saves `spec`'s paths after its step succeeded, unless the restore
    /// was an exact hit; a failure is said in the log (the step passed).
    pub async fn save(
        &self,
        spec: &CacheSpec,
        restored: &Restored,
        build: &CacheBuild<'_>,
        sandbox: &Sandbox,
        workspace: &Workspace,
        lines: &mpsc::Sender<String>,
    ) {
        let key = &restored.key;
        if restored.exact {
            say(lines, format!("not saved: {key} was restored exactly")).await;
            return;
        }
        let (_, scope) = scopes(build);
        let object = format!("{}/{scope}/{}", build.repo, Blobs::part(key));
        say(lines, format!("saving ({key})")).await;
        let started = Instant::now();
        match self.pack(&spec.paths, &object, sandbox, workspace, lines).await {
            Ok((unpacked, packed)) => {
                let took = started.elapsed().as_secs_f64();
                say(lines, format!("saved ({key}): {} ({} compressed) in {took:.2} s", human_bytes(unpacked), human_bytes(packed))).await;
                self.evict().await;
            }
            Err(e) => say(lines, format!("not saved ({key}): {e:#}")).await,
        }
    }

    /// Archives `paths` with tar run as the sandbox user in the sandbox, in
    /// the stage's directory, compresses its output into the spool and
    /// uploads it as `object`; returns the archive's size and the
    /// compressed size.
    async fn pack(
        &self,
        paths: &[String],
        object: &str,
        sandbox: &Sandbox,
        workspace: &Workspace,
        lines: &mpsc::Sender<String>,
    ) -> anyhow::Result<(u64, u64)> {
        let file = self.spool_file()?;
        let (read, write) = std::io::pipe()?;
        let mut cmd = sandbox.command(workspace.root(), &[], Placement::default());
        cmd.args(["/usr/bin/env", "PATH=/usr/bin:/bin", "LC_ALL=C", "tar", "-c", "-f", "-", "--ignore-failed-read", "--"])
            .args(paths.iter().map(|path| in_stage(path)));
        cmd.stdout(Stdio::from(OwnedFd::from(write))).stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        drop(cmd);
        let sink = file.reopen()?;
        let compress = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let mut source = Counting { inner: read, bytes: 0 };
            let mut encoder = zstd::stream::Encoder::new(sink, ZSTD_LEVEL)?;
            std::io::copy(&mut source, &mut encoder)?;
            encoder.finish()?.sync_data()?;
            Ok(source.bytes)
        });
        relay_stderr(child.stderr.take(), lines).await;
        let status = child.wait().await?;
        let unpacked = compress.await??;
        anyhow::ensure!(status.success(), "tar failed ({status})");
        let packed = self.blobs.put_file(object, file.path()).await?;
        Ok((unpacked, packed))
    }

    /// Marks `object` used now (disk only: the least recently used go first).
    async fn touch(&self, object: &str) {
        if let Location::Disk(dir) = self.blobs.location() {
            let path = dir.join(object);
            let _ = tokio::task::spawn_blocking(move || {
                std::fs::File::options().write(true).open(path).and_then(|f| f.set_modified(std::time::SystemTime::now()))
            })
            .await;
        }
    }

    /// Removes the least recently used caches (on disk) and mirrors until
    /// they fit in the cap together; a bucket's caches are not counted
    /// (its lifecycle rules bound them), the worker's mirrors still are. A
    /// mirror a stage holds now is skipped. A failure is logged: the build
    /// goes on, and the next eviction tries again.
    pub async fn evict(&self) {
        if let Err(e) = self.try_evict().await {
            tracing::warn!(error = %format!("{e:#}"), "could not evict caches or mirrors");
        }
    }

    async fn try_evict(&self) -> anyhow::Result<()> {
        let mirrors = self.mirrors.clone();
        let mut held: Vec<Held> = tokio::task::spawn_blocking(move || Mirror::all(&mirrors)).await?.into_iter().map(Held::Mirror).collect();
        if let Location::Disk(_) = self.blobs.location() {
            held.extend(self.blobs.list("").await?.into_iter().map(Held::Cache));
        }
        held.sort_by_key(Held::used);
        let mut total: u64 = held.iter().map(Held::size).sum();
        for old in held {
            if total <= self.cap {
                break;
            }
            let size = old.size();
            match old {
                Held::Cache(cache) => {
                    self.blobs.delete(&cache.key).await?;
                    tracing::info!(cache = %cache.key, bytes = size, "evicted a cache (GREENLIGHT_CACHE_MB)");
                }
                Held::Mirror(kept) => {
                    let mirror = kept.mirror.clone();
                    if !tokio::task::spawn_blocking(move || mirror.remove_if_idle()).await?? {
                        continue;
                    }
                    tracing::info!(mirror = %kept.mirror.dir().display(), bytes = size, "evicted a repository's mirror (GREENLIGHT_CACHE_MB)");
                }
            }
            total -= size;
        }
        Ok(())
    }
}

/// What counts against `GREENLIGHT_CACHE_MB`.
enum Held {
    Cache(crate::blobs::BlobInfo),
    Mirror(Kept),
}

impl Held {
    fn size(&self) -> u64 {
        match self {
            Held::Cache(cache) => cache.size,
            Held::Mirror(kept) => kept.size,
        }
    }

    fn used(&self) -> std::time::SystemTime {
        match self {
            Held::Cache(cache) => cache.modified.into(),
            Held::Mirror(kept) => kept.used,
        }
    }
}

/// Where a cache path is in the stage's directory: `~` and `~/…` in the
/// steps' HOME, anything else in the checkout.
fn in_stage(path: &str) -> String {
    match path.strip_prefix('~') {
        Some("") => HOME_DIR.to_string(),
        Some(rest) if rest.starts_with('/') => format!("{HOME_DIR}{rest}"),
        _ => format!("{CHECKOUT_DIR}/{path}"),
    }
}

/// A key part back as written (the inverse of [`Blobs::part`]).
fn unpart(part: &str) -> String {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], part.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A reader or writer that counts the bytes through it.
struct Counting<T> {
    inner: T,
    bytes: u64,
}

impl<T: std::io::Write> std::io::Write for Counting<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<T: std::io::Read> std::io::Read for Counting<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_read_and_unknown_ones_named() {
        assert_eq!(
            pieces(r#"cargo-{{ checksum "Cargo.lock" "a b" }}-{{os}}"#).unwrap(),
            vec![
                Piece::Text("cargo-".into()),
                Piece::Checksum(vec!["Cargo.lock".into(), "a b".into()]),
                Piece::Text("-".into()),
                Piece::Os,
                Piece::Text(String::new())
            ]
        );
        let e = pieces("k-{{ hashFiles('x') }}").unwrap_err().to_string();
        assert!(e.contains("unknown template `{{ hashFiles('x') }}`"), "{e}");
        assert!(pieces("k-{{ checksum Cargo.lock }}").unwrap_err().to_string().contains("quoted"));
        assert!(pieces("k-{{ branch").is_err());
    }

    fn commit(event: Event, target: &str, pr: Option<u64>) -> Commit {
        Commit { event, target: target.into(), pull_request: pr, ..Commit::default() }
    }

    #[test]
    fn scopes_follow_actions() {
        let at = |c: &Commit| scopes(&CacheBuild { repo: 1, default_branch: "main", commit: c });
        assert_eq!(at(&commit(Event::Push, "main", None)), (vec!["branch/main".into()], "branch/main".into()));
        assert_eq!(
            at(&commit(Event::Push, "feat/x", None)),
            (vec!["branch/feat%2Fx".into(), "branch/main".into()], "branch/feat%2Fx".into())
        );
        assert_eq!(at(&commit(Event::PullRequest, "dev", Some(4))), (vec!["pr/4".into(), "branch/dev".into()], "pr/4".into()));
        assert_eq!(unpart(&Blobs::part("cargo-a/b c")), "cargo-a/b c");
    }

    #[test]
    fn paths_under_home_are_archived_beside_the_checkouts() {
        assert_eq!(in_stage("target"), "src/target");
        assert_eq!(in_stage("~/.cargo/registry"), "home/.cargo/registry");
        assert_eq!(in_stage("~"), "home");
        assert_eq!(in_stage("~other/x"), "src/~other/x");
    }
}
