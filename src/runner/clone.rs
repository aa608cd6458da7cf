//! Fetching exactly the build's commit into the workspace.
//!
//! The installation token reaches git as an HTTP header scoped to the
//! clone URL's host (`http.<scheme>://<host>/.extraHeader`), in a
//! configuration file that exists only inside the clone's sandbox:
//! never in argv, never in `.git/config`, never on the host's disk, never
//! sent to another host, never logged.
//!
//! git runs in the same sandbox as the steps (but on the host's network),
//! so it reaches the workspace through bwrap's bound descriptor and never
//! walks the data directory's parents: git resolves its working directory
//! by absolute path, which fails under a private home (`/root`, 0700).
//!
//! With a mirror ([`super::mirror`]), the commit comes from the worker's
//! mirror of the repository, updated first with what is new on GitHub.

use super::mirror::{Mirror, MirrorLock};
use super::sandbox::{Bind, Placement, Sandbox, pipe_holding};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use tokio::sync::mpsc;

/// `scheme://host[:port]/` of a URL, the scope of the token header.
pub fn url_scope(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    Some(format!("{}://{}/", uri.scheme_str()?, uri.authority()?))
}

/// Where the clone's git finds its configuration (the token header) in the sandbox.
const GIT_CONFIG_PATH: &str = "/ci/gitconfig";

/// The token as the value of the HTTP header git sends.
fn auth_header(token: &SecretString) -> String {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{}", token.expose_secret()));
    format!("Authorization: Basic {basic}")
}

/// Runs git in the workspace as the sandbox user: sandboxed, inside bwrap
/// (with the host's network: the clone is greenlight's, not the step's),
/// the token in a configuration file mounted read-only; unsandboxed, in
/// git's environment.
async fn git(
    sandbox: &Sandbox,
    (workspace, binds): (&Path, &[Bind<'_>]),
    args: &[&str],
    token: Option<(&str, &SecretString)>,
    lines: &mpsc::Sender<String>,
) -> Result<(), String> {
    let _ = lines.send(format!("+ git {}\n", args.join(" "))).await;
    let header = token.map(|(scope, token)| (scope, auth_header(token)));
    let config = match (&header, sandbox.is_sandboxed()) {
        (Some((scope, value)), true) => Some(
            pipe_holding(&format!("[http \"{scope}\"]\n\textraHeader = {value}\n"))
                .map_err(|e| format!("cannot hand git its configuration: {e}"))?,
        ),
        _ => None,
    };
    let files: Vec<(RawFd, &str)> = config.iter().map(|fd| (fd.as_raw_fd(), GIT_CONFIG_PATH)).collect();
    let mut cmd = sandbox.command_binding(workspace, binds, &files, Placement::default());
    let global = config.as_ref().map_or("/dev/null".to_string(), |fd| sandbox.file_path(fd.as_raw_fd(), GIT_CONFIG_PATH));
    cmd.args(["/usr/bin/env", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/nonexistent", "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1"])
        .arg(format!("GIT_CONFIG_GLOBAL={global}"))
        .arg("git")
        .args(args);
    if let (Some((scope, value)), false) = (header, sandbox.is_sandboxed()) {
        cmd.env("GIT_CONFIG_COUNT", "1").env("GIT_CONFIG_KEY_0", format!("http.{scope}.extraHeader")).env("GIT_CONFIG_VALUE_0", value);
    }
    let out = cmd.output().await.map_err(|e| format!("cannot run git: {e}"))?;
    drop(config);
    for stream in [&out.stdout, &out.stderr] {
        for line in String::from_utf8_lossy(stream).lines() {
            let _ = lines.send(format!("{line}\n")).await;
        }
    }
    if out.status.success() { Ok(()) } else { Err(format!("git {} failed ({})", args.first().unwrap_or(&""), out.status)) }
}

/// Whether `sha` is a full commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
pub fn is_full_sha(sha: &str) -> bool {
    matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Fetches keep what they receive as a pack (`--keep`) instead of
/// unpacking small fetches (git's default below 100 objects) into loose
/// objects: a pack is written once, and the mirror serves the workspace
/// from it without compressing every object again (a few large files took
/// a minute otherwise).
const KEEP_PACKS: &str = "--keep";

/// Where the clone's sandbox sees the mirror (read-only).
const MIRROR_PATH: &str = "/greenlight/mirror";

/// What to fetch and from where.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    /// The repository's clone URL.
    pub clone_url: &'a str,
    /// The commit.
    pub sha: &'a str,
    /// The installation token, sent only to the clone URL's host.
    pub token: Option<&'a SecretString>,
    /// The worker's mirror of the repository, if it keeps one.
    pub mirror: Option<&'a Mirror>,
    /// Whether the commit comes from a fork: it never enters the mirror.
    pub fork: bool,
}

/// Fetches `source.sha` into the (empty) workspace and checks it out:
/// through the mirror when there is one and the commit is the base
/// repository's, else straight from the clone URL.
pub async fn fetch(sandbox: &Sandbox, workspace: &Path, source: &Source<'_>, lines: &mpsc::Sender<String>) -> Result<(), String> {
    let sha = source.sha;
    // Only a full hex sha reaches git's argv: anything else could be read as an option or a ref.
    if !is_full_sha(sha) {
        return Err(format!("{sha:?} is not a full commit sha"));
    }
    let scope = url_scope(source.clone_url).ok_or_else(|| format!("clone URL {:?} is not a URL", source.clone_url))?;
    let auth = source.token.map(|t| (scope.as_str(), t));
    let here = (workspace, &[][..]);
    git(sandbox, here, &["init", "--quiet", "."], None, lines).await?;
    match source.mirror {
        Some(mirror) if !source.fork => {
            let started = std::time::Instant::now();
            let warm = mirror.exists();
            // Held until the workspace has its copy: the mirror is not evicted meanwhile.
            let _lock = update_mirror(sandbox, mirror, source, auth, lines).await?;
            let bind = Bind { host: mirror.dir(), inside: MIRROR_PATH, writable: false };
            let from = format!("file://{}", sandbox.bind_path(&bind));
            let args = ["fetch", KEEP_PACKS, "--quiet", "--no-tags", "--depth", "1", &from, sha];
            git(sandbox, (workspace, &[bind]), &args, None, lines).await?;
            let state = if warm { "updated with what was new" } else { "made (first build of this repository here)" };
            let note = format!(
                "[greenlight] clone: from this worker's mirror of the repository ({state}) in {} ms\n",
                started.elapsed().as_millis()
            );
            let _ = lines.send(note).await;
        }
        mirror => {
            let started = std::time::Instant::now();
            git(sandbox, here, &["fetch", "--quiet", "--no-tags", "--depth", "1", source.clone_url, sha], auth, lines).await?;
            if mirror.is_some() {
                let took = started.elapsed().as_millis();
                let note = format!("[greenlight] clone: a fork's commit, fetched from GitHub alone (never into the mirror) in {took} ms\n");
                let _ = lines.send(note).await;
            }
        }
    }
    git(sandbox, here, &["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", sha], None, lines).await
}

/// Brings the mirror up to date under its lock: made bare on first use,
/// then the base repository's branches fetched (only what is new), and
/// the build's commit when no branch has it (a pull request's head).
/// Returns the lock, still held.
async fn update_mirror(
    sandbox: &Sandbox,
    mirror: &Mirror,
    source: &Source<'_>,
    auth: Option<(&str, &SecretString)>,
    lines: &mpsc::Sender<String>,
) -> Result<MirrorLock, String> {
    let lock = mirror.lock(sandbox.user()).await.map_err(|e| format!("cannot lock the mirror {}: {e}", mirror.dir().display()))?;
    let at = (mirror.dir(), &[][..]);
    if !mirror.exists() {
        git(sandbox, at, &["init", "--quiet", "--bare", "."], None, lines).await?;
    }
    let branches = "+refs/heads/*:refs/heads/*";
    git(sandbox, at, &["fetch", KEEP_PACKS, "--quiet", "--no-tags", "--prune", source.clone_url, branches], auth, lines).await?;
    let commit = format!("{}^{{commit}}", source.sha);
    if git(sandbox, at, &["cat-file", "-e", &commit], None, &mpsc::channel(1).0).await.is_err() {
        let keep = format!("+{}:refs/greenlight/build", source.sha);
        git(sandbox, at, &["fetch", KEEP_PACKS, "--quiet", "--no-tags", source.clone_url, &keep], auth, lines).await?;
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_scoped_to_the_clone_urls_host() {
        assert_eq!(url_scope("https://github.com/acme/widget.git").as_deref(), Some("https://github.com/"));
        assert_eq!(url_scope("http://127.0.0.1:8080/a/b.git").as_deref(), Some("http://127.0.0.1:8080/"));
        assert_eq!(url_scope("not a url"), None);
    }

    #[test]
    fn only_full_hex_shas_reach_git() {
        assert!(is_full_sha(&"a1".repeat(20)));
        assert!(is_full_sha(&"0f".repeat(32)));
        assert!(!is_full_sha("--upload-pack=touch /tmp/pwned"));
        assert!(!is_full_sha(&"A1".repeat(20)), "GitHub sends lowercase");
        assert!(!is_full_sha("main"));
    }
}
