//! Running one step: its script, its process, its output as lines.

use super::network::StageNetwork;
use super::sandbox::{Bind, Placement, Sandbox};
use super::schedule::{EXIT_STOP, Outcome};
use super::summary::{Summary, SummaryPipe};
use crate::store::Status;
use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A line longer than this is cut into pieces of this size, so one endless
/// line cannot grow memory.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// The largest file a step may write (`RLIMIT_FSIZE`).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024 * 1024;

/// After the step's process ends, its output is drained at most this long
/// (unsandboxed, a background child may hold the pipe open).
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// Everything the step's process gets: nothing of the worker reaches it
/// but these.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// Commands, run in order with `set -e`.
    pub commands: Vec<String>,
    /// The step's environment (nothing else reaches it).
    pub env: Vec<(String, String)>,
    /// Wall-clock limit, after which the step and everything it started are killed.
    pub timeout: Duration,
}

/// How a step's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// It exited with this code (128 + the signal when a signal killed it).
    Exited(i32),
    /// It ran past its timeout and was killed.
    TimedOut,
    /// It was cancelled and killed.
    Cancelled,
    /// A detached step (a service) greenlight stopped because the stage's
    /// other steps were done: its normal end.
    Stopped,
    /// The kernel's out-of-memory killer killed it at its memory limit
    /// (the limit as people write it, "512 MiB").
    OutOfMemory(String),
    /// It could not be run: no environment (a withheld secret), or no process.
    Failed(String),
}

/// Where the step's script is mounted in the sandbox.
const SCRIPT_PATH: &str = "/ci/step.sh";

/// A step's exit code when greenlight killed it.
pub const EXIT_KILLED: i64 = 137;

/// Drone's exit code when a step is cancelled.
pub const EXIT_CANCELLED: i64 = 130;

impl Ending {
    /// The step's outcome, and a line for its log when greenlight ended it.
    pub fn outcome(&self, timeout: Duration) -> (Outcome, Option<String>) {
        let done = |status, exit_code: i64, error: String, timed_out| Outcome { status, exit_code, error, timed_out, attempts: 1 };
        match self {
            Ending::Exited(0) => (done(Status::Success, 0, String::new(), false), None),
            Ending::Exited(code) if i64::from(*code) == EXIT_STOP => (done(Status::Success, EXIT_STOP, String::new(), false), None),
            Ending::Exited(code) => (done(Status::Failure, i64::from(*code), String::new(), false), None),
            Ending::TimedOut => {
                let secs = timeout.as_secs();
                (
                    done(Status::Failure, EXIT_KILLED, format!("timed out after {secs}s"), true),
                    Some(format!("[greenlight] step timed out after {secs}s and was killed\n")),
                )
            }
            Ending::Stopped => (
                done(Status::Success, 0, String::new(), false),
                Some("[greenlight] service stopped: the stage's other steps are done\n".to_string()),
            ),
            Ending::Cancelled => (
                done(Status::Killed, EXIT_CANCELLED, "cancelled".to_string(), false),
                Some("[greenlight] step cancelled and killed\n".to_string()),
            ),
            Ending::OutOfMemory(limit) => {
                let reason = format!("killed: out of memory (limit {limit})");
                (done(Status::Failure, EXIT_KILLED, reason.clone(), false), Some(format!("[greenlight] {reason}\n")))
            }
            Ending::Failed(reason) => (done(Status::Error, 255, reason.clone(), false), Some(format!("[greenlight] {reason}\n"))),
        }
    }
}

fn single_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The step's script: its environment, `prelude` (see
/// [`super::summary::SummaryPipe::prelude`]), then each command echoed as
/// `+ cmd` before it runs; `set -e` stops at the first failing command.
pub fn script(env: &[(String, String)], prelude: &str, commands: &[String]) -> String {
    let mut out = String::from("set -e\n");
    for (key, value) in env {
        if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !key.is_empty() {
            out.push_str(&format!("export {key}={}\n", single_quote(value)));
        }
    }
    out.push_str(prelude);
    for command in commands {
        out.push_str(&format!("printf '%s\\n' {}\n{command}\n", single_quote(&format!("+ {command}"))));
    }
    out
}

/// Splits a byte stream into lines (keeping `\n`), cutting long ones into
/// pieces of [`MAX_LINE_BYTES`] that end without `\n`.
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; returns the complete lines.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        while !bytes.is_empty() {
            let room = MAX_LINE_BYTES - self.partial.len();
            let take = bytes.iter().take(room).position(|b| *b == b'\n').map(|i| i + 1);
            match take {
                Some(n) => {
                    self.partial.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    lines.push(String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned());
                }
                None if bytes.len() >= room => {
                    self.partial.extend_from_slice(&bytes[..room]);
                    bytes = &bytes[room..];
                    // No `\n`: the log writer knows a piece of a longer line (see `runner::logs`).
                    lines.push(String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned());
                }
                None => {
                    self.partial.extend_from_slice(bytes);
                    bytes = &[];
                }
            }
        }
        lines
    }

    /// The unterminated last line, if any.
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| {
            let mut line = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
            line.push('\n');
            line
        })
    }
}

/// Runs a step in `dirs`' workspace, with `dirs`' other directories bound
/// (its stage's HOME), sending its output lines (stdout and stderr
/// merged, in order) to `lines`; returns how it ended and the summary it
/// left (see [`super::summary`]). Backpressure on `lines` slows the reader,
/// never buffers without bound.
pub async fn run(
    sandbox: &Sandbox,
    dirs: (&Path, &[Bind<'_>]),
    spec: &StepSpec,
    network: Option<&StageNetwork>,
    lines: &mpsc::Sender<String>,
    cancel: &CancellationToken,
) -> (Ending, Summary) {
    let cgroup = match sandbox.step_cgroup() {
        Ok(cgroup) => cgroup,
        Err(e) => return (Ending::Failed(format!("cannot create the step's cgroup: {e}")), Summary::default()),
    };
    let placement = Placement { cgroup: cgroup.as_ref(), network };
    let (ending, summary) = run_placed(sandbox, dirs, spec, placement, lines, cancel).await;
    let Some(cgroup) = cgroup else { return (ending, summary) };
    let ending = match ending {
        Ending::Exited(code) if code != 0 && cgroup.oom_kills() > 0 => Ending::OutOfMemory(cgroup.memory_text()),
        other => other,
    };
    cgroup.remove().await;
    (ending, summary)
}

/// Runs the step's process placed as `placement` says, until it ends and
/// its output and summary are drained.
async fn run_placed(
    sandbox: &Sandbox,
    dirs: (&Path, &[Bind<'_>]),
    spec: &StepSpec,
    placement: Placement<'_>,
    lines: &mpsc::Sender<String>,
    cancel: &CancellationToken,
) -> (Ending, Summary) {
    let Started { mut child, mut output, mut summary } = match start(sandbox, dirs, spec, placement) {
        Ok(started) => started,
        Err(reason) => return (Ending::Failed(reason), Summary::default()),
    };
    let pid = child.id();
    let read_all = forward_lines(&mut output, lines);
    tokio::pin!(read_all);
    let (ending, drained) = wait_for_end(&mut child, read_all.as_mut(), spec.timeout, cancel).await;
    if matches!(ending, Ending::TimedOut | Ending::Cancelled) {
        kill_tree(sandbox, pid);
        let _ = child.kill().await;
    }
    if !drained {
        let _ = tokio::time::timeout(DRAIN_DEADLINE, &mut read_all).await;
    }
    if !sandbox.is_sandboxed() {
        kill_tree(sandbox, pid);
    }
    // Every process of the step is gone, so the pipe ends; the deadline
    // covers one that escaped (unsandboxed, a new session).
    let left = tokio::time::timeout(DRAIN_DEADLINE, &mut summary).await;
    summary.abort();
    (ending, left.ok().and_then(Result::ok).unwrap_or_default())
}

/// A step's process, started, the read end of its merged output, and the
/// reader of its summary.
struct Started {
    child: Child,
    output: pipe::Receiver,
    summary: JoinHandle<Summary>,
}

/// Starts the step's shell with its script on an inherited pipe (fed from a
/// thread: it may be larger than a pipe holds) and stdout and stderr on one
/// pipe. `Err` says why it could not start.
fn start(
    sandbox: &Sandbox,
    (workspace, binds): (&Path, &[Bind<'_>]),
    spec: &StepSpec,
    placement: Placement<'_>,
) -> Result<Started, String> {
    let summary = SummaryPipe::new(sandbox.user()).map_err(|e| format!("cannot create a pipe: {e}"))?;
    let text = script(&spec.env, &summary.prelude(sandbox.is_sandboxed()), &spec.commands);
    let (script_read, mut script_write) = std::io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let (out_read, out_write) = std::io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let script_fd = script_read.as_raw_fd();
    if let Some((uid, gid)) = sandbox.user() {
        // Unsandboxed, the step reopens the pipe through /dev/fd, which
        // checks the pipe's owner: give it to the step's user.
        // SAFETY: fchown on a pipe we own.
        unsafe { libc::fchown(script_fd, uid, gid) };
    }
    let mut cmd = sandbox.command_binding(workspace, binds, &[(script_fd, SCRIPT_PATH)], placement);
    cmd.args(["/bin/sh", "-e", &sandbox.file_path(script_fd, SCRIPT_PATH)]);
    let stderr = out_write.try_clone().map_err(|e| format!("cannot duplicate a pipe: {e}"))?;
    cmd.stdout(out_write).stderr(stderr);
    limit(&mut cmd);
    super::sandbox::inherit(&mut cmd, vec![summary.write.as_raw_fd()]);
    let (summary_write, summary) = summary.read().map_err(|e| format!("cannot read the step's summary: {e}"))?;
    let mut child = cmd.spawn().map_err(|e| format!("cannot start the step: {e}"))?;
    // Close our copies of the child's ends, so the pipes end with the step.
    drop(cmd);
    drop(script_read);
    drop(summary_write);
    std::thread::spawn(move || {
        use std::io::Write;
        let _ = script_write.write_all(text.as_bytes());
    });
    match pipe::Receiver::from_owned_fd(OwnedFd::from(out_read)) {
        Ok(output) => Ok(Started { child, output, summary }),
        Err(e) => {
            summary.abort();
            let _ = child.start_kill();
            Err(format!("cannot read the step's output: {e}"))
        }
    }
}

/// Limits the step's processes: no core dumps (they could hold secrets),
/// and no single file larger than the disk should take.
fn limit(cmd: &mut tokio::process::Command) {
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            let fsize = libc::rlimit { rlim_cur: MAX_FILE_BYTES, rlim_max: MAX_FILE_BYTES };
            if libc::setrlimit(libc::RLIMIT_CORE, &core) == -1 || libc::setrlimit(libc::RLIMIT_FSIZE, &fsize) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Reads the step's output until it closes, sending it on as lines; stops
/// early when nobody receives them any more.
async fn forward_lines(output: &mut pipe::Receiver, lines: &mpsc::Sender<String>) {
    let mut splitter = LineSplitter::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match output.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                for line in splitter.feed(&buf[..n]) {
                    if lines.send(line).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
    if let Some(line) = splitter.finish() {
        let _ = lines.send(line).await;
    }
}

/// Waits for the step to exit, time out or be cancelled, forwarding its
/// output meanwhile; also says whether the output was read to its end. When
/// the output closes first, the wait goes on with a fresh timeout. An exit
/// is looked at first: a process that ended by itself is not reported
/// killed because a timeout or a stop came due at the same moment.
async fn wait_for_end<F: Future<Output = ()>>(
    child: &mut Child,
    mut read_all: Pin<&mut F>,
    timeout: Duration,
    cancel: &CancellationToken,
) -> (Ending, bool) {
    tokio::select! {
        biased;
        status = child.wait() => (exited(status), false),
        _ = tokio::time::sleep(timeout) => (Ending::TimedOut, false),
        _ = cancel.cancelled() => (Ending::Cancelled, false),
        _ = &mut read_all => {
            let ending = tokio::select! {
                biased;
                status = child.wait() => exited(status),
                _ = tokio::time::sleep(timeout) => Ending::TimedOut,
                _ = cancel.cancelled() => Ending::Cancelled,
            };
            (ending, true)
        }
    }
}

/// The ending of a process that exited: its code, or 128 + the signal that killed it.
fn exited(status: std::io::Result<std::process::ExitStatus>) -> Ending {
    match status {
        Ok(s) => Ending::Exited(s.code().unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(9))),
        Err(e) => Ending::Failed(e.to_string()),
    }
}

/// Kills what a step left: under bwrap, killing bwrap tears down the PID
/// namespace; unsandboxed, the step's process group is all there is.
fn kill_tree(sandbox: &Sandbox, pid: Option<u32>) {
    if let (false, Some(pid)) = (sandbox.is_sandboxed(), pid) {
        // SAFETY: signalling a process group we created.
        unsafe { libc::killpg(pid as i32, libc::SIGKILL) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_echoes_commands_and_quotes_values() {
        let s = script(&[("A".into(), "it's".into())], "", &["echo $A".into()]);
        assert_eq!(s, "set -e\nexport A='it'\\''s'\nprintf '%s\\n' '+ echo $A'\necho $A\n");
    }

    #[test]
    fn long_lines_are_cut_and_partial_lines_kept() {
        let mut split = LineSplitter::default();
        let lines = split.feed(&vec![b'x'; MAX_LINE_BYTES + 10]);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        assert!(!lines[0].ends_with('\n'), "a piece of a longer line");
        assert!(split.feed(b"yz").is_empty());
        assert_eq!(split.feed(b"\nnext\n"), vec![format!("{}yz\n", "x".repeat(10)), "next\n".to_string()]);
        assert_eq!(split.finish(), None);
    }
}
