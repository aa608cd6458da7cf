//! Job summaries: the Markdown a step appends to `$DRONE_SUMMARY` (also
//! `$GREENLIGHT_SUMMARY`), brought out of the sandbox for its check run
//! and build page.
//!
//! How it leaves the sandbox: the step's script starts by making an empty
//! file in its private `/tmp` and setting an `EXIT` trap that
//! copies at most [`SUMMARY_LIMIT`] + 1 bytes of it, as the sandbox user
//! and inside the sandbox, to a pipe greenlight opened before the step and
//! the step inherits (reopened through `/dev/fd`, so the pipe belongs to
//! the sandbox user, like the script's). Greenlight never opens a path the
//! step controls: it reads its end of the pipe, keeps the first
//! [`SUMMARY_LIMIT`] bytes and discards the rest, so a step writing forever
//! slows nothing and fills nothing (the file itself is on the sandbox's
//! size-capped `/tmp`).
//!
//! A step killed (timeout, cancellation, out of memory) runs no trap and
//! has no summary; a step that writes the pipe itself is only writing its
//! own summary. The reader stops at the pipe's end, which comes when every
//! process of the step is gone (bwrap's PID namespace, or the step's
//! process group when unsandboxed), and at most the drain deadline (`step::DRAIN_DEADLINE`)
//! after the step ended.

use std::os::fd::{AsRawFd, OwnedFd};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::task::JoinHandle;

/// The most of one step's summary that is read, in bytes: a check run's
/// whole summary holds 65,535 bytes, and the build page shows each step's
/// whole; 1 MiB is more than any useful summary and little to keep in Redis.
pub const SUMMARY_LIMIT: usize = 1024 * 1024;

/// One step's summary, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The Markdown (invalid UTF-8 replaced), at most [`SUMMARY_LIMIT`] bytes.
    pub markdown: String,
    /// Whether the step wrote more than [`SUMMARY_LIMIT`] bytes.
    pub cut: bool,
}

impl Summary {
    /// What was read: the first [`SUMMARY_LIMIT`] bytes, cut at a character.
    fn of(mut bytes: Vec<u8>) -> Self {
        let cut = bytes.len() > SUMMARY_LIMIT;
        bytes.truncate(SUMMARY_LIMIT);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        // A character cut in two at the limit reads as U+FFFD; drop it.
        let markdown = if cut { text.trim_end_matches('\u{fffd}').to_string() } else { text };
        Self { markdown, cut }
    }

    /// Whether the step wrote nothing.
    pub fn is_empty(&self) -> bool {
        self.markdown.trim().is_empty()
    }
}

/// The pipe a step's summary comes back through.
pub struct SummaryPipe {
    /// The end the step inherits (greenlight drops its copy once the step started).
    pub write: OwnedFd,
    read: OwnedFd,
}

impl SummaryPipe {
    /// A new pipe whose write end belongs to `user` (the step reopens it
    /// through `/dev/fd`, which checks the owner).
    pub fn new(user: Option<(u32, u32)>) -> std::io::Result<Self> {
        let (read, write) = std::io::pipe()?;
        if let Some((uid, gid)) = user {
            // SAFETY: fchown on a pipe we own.
            if unsafe { libc::fchown(write.as_raw_fd(), uid, gid) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(Self { write: OwnedFd::from(write), read: OwnedFd::from(read) })
    }

    /// The lines the step's script starts with (after its environment):
    /// the summary file, its two variables, and the trap that hands it over.
    /// Sandboxed, the file has a fixed name in the step's own `/tmp` and no
    /// process is started unless the step wrote something (a step costs
    /// no more than it did); unsandboxed, `/tmp` is shared, so `mktemp`
    /// makes it and the trap removes it.
    pub fn prelude(&self, sandboxed: bool) -> String {
        let fd = self.write.as_raw_fd();
        let take = SUMMARY_LIMIT + 1;
        let (make, remove) = if sandboxed {
            (
                "GREENLIGHT_SUMMARY=/tmp/greenlight-summary.md
: > \"$GREENLIGHT_SUMMARY\" || GREENLIGHT_SUMMARY=/dev/null
",
                "",
            )
        } else {
            (
                "GREENLIGHT_SUMMARY=\"$(mktemp /tmp/greenlight-summary.XXXXXX)\" || GREENLIGHT_SUMMARY=/dev/null
",
                "; rm -f -- \"$GREENLIGHT_SUMMARY\" 2>/dev/null || :",
            )
        };
        format!(
            "{make}export GREENLIGHT_SUMMARY DRONE_SUMMARY=\"$GREENLIGHT_SUMMARY\"
             trap '{{ [ -s \"$GREENLIGHT_SUMMARY\" ] && head -c {take} -- \"$GREENLIGHT_SUMMARY\" >/dev/fd/{fd}; }} 2>/dev/null || :{remove}' EXIT
"
        )
    }

    /// Starts reading the summary: the first [`SUMMARY_LIMIT`] + 1 bytes
    /// are kept, the rest drained, until every writer is gone.
    pub fn read(self) -> std::io::Result<(OwnedFd, JoinHandle<Summary>)> {
        let mut reader = pipe::Receiver::from_owned_fd(self.read)?;
        let task = tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let room = (SUMMARY_LIMIT + 1).saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
            Summary::of(kept)
        });
        Ok((self.write, task))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_past_the_limit_is_cut_at_a_character() {
        let mut bytes = "é".repeat(SUMMARY_LIMIT / 2).into_bytes();
        bytes.insert(0, b'x');
        let summary = Summary::of(bytes);
        assert!(summary.cut);
        assert!(summary.markdown.len() < SUMMARY_LIMIT);
        assert!(!summary.markdown.ends_with('\u{fffd}'));
        assert_eq!(Summary::of(b"# ok\n".to_vec()), Summary { markdown: "# ok\n".to_string(), cut: false });
    }
}
