//! Commands in pull request comments (`/greenlight retry`,
//! `/greenlight approve`), as intake queues them for a planner.

use super::repo::RepoRef;
use crate::ids::{DeliveryId, InstallationId};
use serde::{Deserialize, Serialize};

/// The words after `/greenlight` that mean something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// Rerun the failed pipelines of the pull request's newest build.
    Retry,
    /// Run the stages of the newest build blocked for approval.
    Approve,
    /// Another word, answered with what greenlight knows.
    Unknown(String),
}

/// A command found in a new pull request comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentCommand {
    /// The delivery that brought it.
    pub delivery: DeliveryId,
    /// The installation to act as.
    pub installation: InstallationId,
    /// The repository of the pull request.
    pub repo: RepoRef,
    /// The pull request's number.
    pub pull_request: u64,
    /// The comment's id (reactions go on it; it names the rerun it starts).
    pub comment: u64,
    /// Who wrote the comment.
    pub author: String,
    /// Who opened the pull request.
    pub pull_request_author: String,
    /// What it asks.
    pub kind: CommandKind,
}

/// The prefix every command starts with.
pub const COMMAND_PREFIX: &str = "/greenlight";

impl CommandKind {
    /// The command a comment's body holds: its first non-blank line is
    /// `/greenlight WORD`; `None` for any other comment.
    pub fn parse(body: &str) -> Option<Self> {
        let line = body.lines().map(str::trim).find(|l| !l.is_empty())?;
        let rest = line.strip_prefix(COMMAND_PREFIX)?;
        if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
            return None;
        }
        Some(match rest.split_whitespace().next().unwrap_or_default() {
            "retry" => Self::Retry,
            "approve" => Self::Approve,
            other => Self::Unknown(other.chars().take(40).collect()),
        })
    }

    /// The command as written, for replies.
    pub fn as_written(&self) -> String {
        match self {
            Self::Retry => format!("{COMMAND_PREFIX} retry"),
            Self::Approve => format!("{COMMAND_PREFIX} approve"),
            Self::Unknown(word) => format!("{COMMAND_PREFIX} {word}").trim_end().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_first_line_starting_with_the_prefix_is_a_command() {
        assert_eq!(CommandKind::parse("\n  /greenlight retry please\nthanks"), Some(CommandKind::Retry));
        assert_eq!(CommandKind::parse("/greenlight approve"), Some(CommandKind::Approve));
        assert_eq!(CommandKind::parse("/greenlight"), Some(CommandKind::Unknown(String::new())));
        assert_eq!(CommandKind::parse("/greenlight frobnicate"), Some(CommandKind::Unknown("frobnicate".into())));
        assert_eq!(CommandKind::parse("/greenlighting retry"), None);
        assert_eq!(CommandKind::parse("LGTM\n/greenlight retry"), None);
        assert_eq!(CommandKind::parse(""), None);
    }
}
