//! Request bodies of the REST calls greenlight makes, as GitHub documents them.
//!
//! Our own serde structs, because octocrab's check-run builder has no
//! `started_at` and no `actions`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// GitHub refuses a commit status description longer than 140 characters
/// ("description is too long (maximum is 140 characters)").
pub const MAX_STATUS_DESCRIPTION_CHARS: usize = 140;

/// GitHub refuses a check run `output.summary` or `output.text` over 65,535
/// bytes ("summary exceeds a maximum bytesize of 65535").
pub const MAX_OUTPUT_BYTES: usize = 65_535;

/// GitHub accepts at most 50 annotations per check run request; more are
/// appended by later updates.
pub const MAX_ANNOTATIONS_PER_REQUEST: usize = 50;

/// The identifier of the "Re-run failed" button on failed check runs
/// (GitHub allows at most 20 characters); a `requested_action` delivery
/// carrying it asks for a rerun.
pub const RERUN_FAILED_ACTION: &str = "rerun-failed";

/// A commit status state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusState {
    /// Not finished.
    Pending,
    /// Passed.
    Success,
    /// A step failed.
    Failure,
    /// Something went wrong outside the steps.
    Error,
}

/// `POST /repos/{owner}/{repo}/statuses/{sha}`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusBody {
    /// What the commit's checks box shows for this context.
    pub state: StatusState,
    /// Link to the build page.
    pub target_url: String,
    /// At most 140 characters.
    pub description: String,
    /// `greenlight/<pipeline>/<event>`.
    pub context: String,
}

/// A check run's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Waiting for a runner.
    Queued,
    /// Running.
    InProgress,
    /// Finished; `conclusion` says how.
    Completed,
}

/// A completed check run's conclusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    /// Passed.
    Success,
    /// Failed.
    Failure,
    /// Cancelled.
    Cancelled,
    /// Timed out.
    TimedOut,
    /// Skipped.
    Skipped,
    /// Neither passed nor failed.
    Neutral,
    /// Needs a person.
    ActionRequired,
}

/// A check run's output.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Output {
    /// The headline on the check run page ("2 of 3 steps passed").
    pub title: String,
    /// Markdown summary, at most 65,535 bytes.
    pub summary: String,
    /// Markdown details, at most 65,535 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// At most 50 per request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
}

/// A check run annotation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Annotation {
    /// Path relative to the repository root.
    pub path: String,
    /// First line (1-based).
    pub start_line: u32,
    /// Last line (the same as `start_line` for one line).
    pub end_line: u32,
    /// `notice`, `warning` or `failure`.
    pub annotation_level: String,
    /// What the diagnostic says, shown beside the line.
    pub message: String,
    /// First column (only when the annotation is on one line).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub start_column: Option<u32>,
    /// Last column (only when the annotation is on one line).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub end_column: Option<u32>,
    /// A title, at most 255 characters.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub title: Option<String>,
}

/// `POST /repos/{owner}/{repo}/check-runs` and the matching PATCH.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CheckRunBody {
    /// The check's name (required on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The commit (required on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_sha: Option<String>,
    /// Link to the build page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details_url: Option<String>,
    /// Our build id, to map Re-run requests back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Where the run is: queued, in progress or completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<CheckStatus>,
    /// Conclusion, when completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<Conclusion>,
    /// When it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Title, summary, details and annotations (annotations append across updates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Output>,
    /// Buttons shown on the completed check run (at most 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<Action>>,
}

/// A check run button: label at most 20 characters, description 40, identifier 20.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Action {
    /// Button text (at most 20 characters).
    pub label: String,
    /// Tooltip (at most 40 characters).
    pub description: String,
    /// Sent back in the `requested_action` webhook.
    pub identifier: String,
}

/// The fields of a check run greenlight reads back.
#[derive(Debug, Clone, Deserialize)]
pub struct CheckRun {
    /// GitHub's id.
    pub id: u64,
    /// `<pipeline> (<event>)`: with the external id, how a retried create finds a run GitHub made.
    pub name: String,
    /// The external id we gave it.
    #[serde(default)]
    pub external_id: Option<String>,
}

/// Cuts text to at most `max` bytes on a UTF-8 boundary.
pub fn truncate_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// Cuts text to at most `max` characters, ending with `…` when cut.
pub fn truncate_chars_ellipsis(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_truncation_never_splits_a_character() {
        let text = "é".repeat(40_000); // 80,000 bytes
        let cut = truncate_bytes(&text, MAX_OUTPUT_BYTES);
        assert!(cut.len() <= MAX_OUTPUT_BYTES);
        assert_eq!(cut.len(), 65_534);
    }

    #[test]
    fn descriptions_fit_in_140_characters() {
        let long = "ü".repeat(300);
        let cut = truncate_chars_ellipsis(&long, MAX_STATUS_DESCRIPTION_CHARS);
        assert_eq!(cut.chars().count(), 140);
        assert!(cut.ends_with('…'));
        assert_eq!(truncate_chars_ellipsis("short", 140), "short");
    }
}
