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

use super::sandbox::{Placement, Sandbox, pipe_holding};
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
    workspace: &Path,
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
    let mut cmd = sandbox.command(workspace, &files, Placement::default());
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

/// Fetches `sha` from `clone_url` into the (empty) workspace and checks it out.
pub async fn fetch(
    sandbox: &Sandbox,
    workspace: &Path,
    clone_url: &str,
    sha: &str,
    token: Option<&SecretString>,
    lines: &mpsc::Sender<String>,
) -> Result<(), String> {
    // Only a full hex sha reaches git's argv: anything else could be read as an option or a ref.
    if !is_full_sha(sha) {
        return Err(format!("{sha:?} is not a full commit sha"));
    }
    let scope = url_scope(clone_url).ok_or_else(|| format!("clone URL {clone_url:?} is not a URL"))?;
    let auth = token.map(|t| (scope.as_str(), t));
    git(sandbox, workspace, &["init", "--quiet", "."], None, lines).await?;
    git(sandbox, workspace, &["fetch", "--quiet", "--no-tags", "--depth", "1", clone_url, sha], auth, lines).await?;
    git(sandbox, workspace, &["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", sha], None, lines).await
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
