//! Webhook deliveries: signature verification and the compact trigger that
//! is queued instead of the whole (up to 25 MB) payload.
//!
//! The payload types are our own minimal serde structs: octocrab's webhook
//! types are beta and fail on action values they do not know.

mod events;
mod signature;

pub use signature::{SignatureError, sign, verify_signature};

use crate::ids::DeliveryId;
use crate::model::{CommentCommand, InstallationChange, RepoRef, RerunRequest, Trigger};

/// GitHub caps webhook payloads at 25 MB and does not deliver larger ones
/// ("Payloads are capped at 25 MB", GitHub docs, webhook payload cap).
pub const MAX_PAYLOAD_BYTES: usize = 25 * 1024 * 1024;

/// What a delivery asks of greenlight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// GitHub checking the hook.
    Ping,
    /// Start a build.
    Build(Box<Trigger>),
    /// The App was installed on, or removed from, repositories.
    Installation(InstallationChange),
    /// A Re-run button was pressed.
    Rerun(RerunRequest),
    /// A pull request comment holds a command.
    Command(Box<CommentCommand>),
    /// A repository was made private or public, renamed, transferred or deleted.
    Repository(Box<RepositoryChange>),
    /// An event or action greenlight does not act on, with a short reason.
    Ignored(String),
}

pub use crate::github::types::RERUN_FAILED_ACTION;
pub use crate::model::MERGE_GROUP_DESTROYED;

/// What a `repository` event says a repository is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryChange {
    /// The action (`privatized`, `publicized`, `renamed`, `transferred`, `deleted`, `edited`).
    pub action: String,
    /// The repository as GitHub describes it after the change.
    pub repo: RepoRef,
    /// Whether it no longer exists.
    pub deleted: bool,
}

/// A payload that does not parse as the event it claims to be.
#[derive(Debug, thiserror::Error)]
#[error("malformed {event} payload: {source}")]
pub struct PayloadError {
    /// The `X-GitHub-Event` value.
    pub event: String,
    /// What serde found wrong.
    #[source]
    pub source: serde_json::Error,
}

/// The events [`parse_delivery`] acts on; every other event is ignored.
/// (The delivery log's catch-up fetches only these.)
pub const ACTED_ON: &[&str] = &[
    "pull_request",
    "push",
    "merge_group",
    "issue_comment",
    "installation",
    "installation_repositories",
    "check_run",
    "check_suite",
    "repository",
];

/// Whether a delivery of `event` can do anything (start, re-run or cancel a
/// build, change what greenlight knows of repositories).
pub fn acts_on(event: &str) -> bool {
    ACTED_ON.contains(&event)
}

/// Interprets a verified delivery's JSON body.
pub fn parse_delivery(event: &str, delivery: &DeliveryId, body: &[u8]) -> Result<Delivery, PayloadError> {
    let wrap = |source| PayloadError { event: event.to_string(), source };
    match event {
        "ping" => {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(wrap)?;
            Ok(Delivery::Ping)
        }
        "pull_request" => events::pull_request(serde_json::from_slice(body).map_err(wrap)?, delivery),
        "push" => events::push(serde_json::from_slice(body).map_err(wrap)?, delivery),
        "installation" | "installation_repositories" => Ok(events::installation_change(event, serde_json::from_slice(body).map_err(wrap)?)),
        "check_run" => Ok(events::check_run(serde_json::from_slice(body).map_err(wrap)?)),
        "check_suite" => Ok(events::check_suite(serde_json::from_slice(body).map_err(wrap)?)),
        "repository" => Ok(events::repository(serde_json::from_slice(body).map_err(wrap)?)),
        "merge_group" => Ok(events::merge_group(serde_json::from_slice(body).map_err(wrap)?, delivery)),
        "issue_comment" => Ok(events::issue_comment(serde_json::from_slice(body).map_err(wrap)?, delivery)),
        other => {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(wrap)?;
            Ok(Delivery::Ignored(format!("event {other} starts no build")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies that are not JSON are refused as malformed, for the events
    /// acted on and the ignored ones alike: cut short, trailing bytes,
    /// empty. A field greenlight reads must be UTF-8 (ignored ones are
    /// skipped unread: the signature already vouches for the sender).
    #[test]
    fn bodies_that_are_not_json_are_malformed() {
        let delivery = DeliveryId("d".into());
        let malformed = |event: &str, body: &[u8]| {
            let refused = parse_delivery(event, &delivery, body);
            assert!(
                refused.as_ref().is_err_and(|e| e.to_string().starts_with(&format!("malformed {event} payload"))),
                "{body:?}: {refused:?}"
            );
        };
        for body in [&b"{\"ref\": \"refs/hea"[..], b"{} x", b""] {
            for event in ["push", "ping", "star"] {
                malformed(event, body);
            }
        }
        malformed("push", b"{\"ref\": \"refs/heads/\xff\"}");
    }

    /// `ACTED_ON` names exactly the events `parse_delivery` reads: each of
    /// those fails on an empty object (fields missing), every other event is ignored.
    #[test]
    fn acted_on_lists_the_events_parse_delivery_reads() {
        let events = ["ping", "push", "pull_request", "check_run", "check_suite", "installation", "installation_repositories"];
        let more = ["repository", "merge_group", "issue_comment", "star", "fork", "release", "workflow_run", "label"];
        for event in events.iter().chain(more.iter()).copied().filter(|e| *e != "ping") {
            let ignored = matches!(parse_delivery(event, &DeliveryId("d".into()), b"{}"), Ok(Delivery::Ignored(_)));
            assert_eq!(acts_on(event), !ignored, "{event}");
        }
    }
}
