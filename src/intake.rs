//! Intake: what becomes of a verified delivery, whichever way it came (a
//! request to `/webhook`, or the App's delivery log when GitHub could not
//! deliver it). A build trigger is written to the delivery stream as a
//! compact trigger; installation and repository changes are applied; the
//! rest is answered and dropped. Intake never calls GitHub.
//!
//! Intake is the hot path (thousands of ~25 KB deliveries a second), so the
//! payload is parsed borrowing from the body as read, and the compact trigger
//! serialized straight into the XADD command. (Batching the XADDs of
//! concurrent deliveries was measured too: the extra task hand-offs cost
//! more CPU than the round trips they saved, 89 against 79 µs a delivery.)

use crate::github::webhook::{self, Delivery, RepositoryChange};
use crate::ids::{DeliveryId, EntryId};
use crate::metrics::Metrics;
use crate::model::{CommentCommand, Trigger};
use crate::queue::WorkQueue;
use crate::store::Store;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

/// How long intake waits for Redis before giving up on a delivery (well
/// inside GitHub's 10-second delivery timeout, so GitHub records a failure
/// it can redeliver rather than a timeout).
pub const REDIS_WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// What intake made of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A build trigger, queued as this stream entry.
    Queued(EntryId),
    /// Handled or deliberately ignored; the message says which.
    Done(String),
    /// The payload is not what its event says: redelivering cannot help.
    Malformed(String),
    /// Redis did not answer in time: the delivery is not taken; try again later.
    Unavailable(String),
}

/// The label `/metrics` counts a delivery of `event` under: an event intake
/// acts on, `ping`, or `other`, so labels stay few whatever GitHub sends.
fn event_label(event: &str) -> &'static str {
    webhook::ACTED_ON.iter().copied().chain(["ping"]).find(|known| *known == event).unwrap_or("other")
}

/// What intake needs: the secrets deliveries are signed with, the delivery
/// stream and the store.
#[derive(Clone)]
pub struct Intake {
    secrets: Arc<Vec<SecretString>>,
    redis: redis::aio::ConnectionManager,
    deliveries: WorkQueue<Trigger>,
    commands: WorkQueue<CommentCommand>,
    store: Store,
    metrics: Metrics,
}

impl Intake {
    /// Intake appending to `deliveries` over `redis` (one multiplexed
    /// connection shared by every request), accepting any of `secrets`,
    /// counting deliveries in `metrics`; the comment commands it finds go to
    /// the queue of that name in `store`'s Redis.
    pub fn new(
        secrets: Vec<SecretString>,
        redis: redis::aio::ConnectionManager,
        deliveries: WorkQueue<Trigger>,
        store: Store,
        metrics: Metrics,
    ) -> Self {
        let commands = WorkQueue::commands(store.pool().clone());
        Self { secrets: Arc::new(secrets), redis, deliveries, commands, store, metrics }
    }

    /// Counts a delivery refused before it was read (bad signature, too large).
    pub fn refused(&self, event: &str) {
        self.metrics.webhook(event_label(event), "refused");
    }

    /// The webhook secrets a delivery's signature may be made with.
    pub fn secrets(&self) -> &[SecretString] {
        &self.secrets
    }

    /// Whether Redis answers (readiness).
    pub async fn ready(&self) -> Result<(), &'static str> {
        match tokio::time::timeout(REDIS_WRITE_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err("redis does not answer"),
        }
    }

    /// Takes in a delivery whose authenticity is established (signature
    /// checked, or fetched from GitHub as the App): `json` is its payload.
    pub async fn take(&self, event: &str, delivery: &DeliveryId, json: &[u8]) -> Outcome {
        let outcome = self.interpret(event, delivery, json).await;
        let result = match &outcome {
            Outcome::Queued(_) => "queued",
            Outcome::Done(message) if message.starts_with("ignored") => "ignored",
            Outcome::Done(_) => "handled",
            Outcome::Malformed(_) => "malformed",
            Outcome::Unavailable(_) => "unavailable",
        };
        self.metrics.webhook(event_label(event), result);
        outcome
    }

    async fn interpret(&self, event: &str, delivery: &DeliveryId, json: &[u8]) -> Outcome {
        let unavailable = || Outcome::Unavailable("store unavailable; redeliver later".to_string());
        let trigger = match webhook::parse_delivery(event, delivery, json) {
            Ok(Delivery::Ping) => return Outcome::Done("pong".to_string()),
            Ok(Delivery::Ignored(reason)) => return Outcome::Done(format!("ignored: {reason}")),
            Ok(Delivery::Installation(change)) => {
                let now = chrono::Utc::now().timestamp();
                return match tokio::time::timeout(REDIS_WRITE_TIMEOUT, self.store.apply_installation(&change, now)).await {
                    Ok(Ok(())) => Outcome::Done(format!("{} repositories added, {} removed", change.added.len(), change.removed.len())),
                    _ => unavailable(),
                };
            }
            Ok(Delivery::Repository(change)) => return self.repository_changed(&change).await,
            Ok(Delivery::Command(command)) => return self.command_queued(&command).await,
            Ok(Delivery::Build(trigger)) => trigger,
            Ok(Delivery::Rerun(request)) => {
                match tokio::time::timeout(REDIS_WRITE_TIMEOUT, crate::lifecycle::rerun_trigger(&self.store, &request, delivery)).await {
                    Ok(Ok(Some(trigger))) => Box::new(trigger),
                    Ok(Ok(None)) => return Outcome::Done("ignored: no greenlight build matches this check".to_string()),
                    _ => return unavailable(),
                }
            }
            Err(e) => return Outcome::Malformed(e.to_string()),
        };
        self.queue(event, delivery, &trigger).await
    }

    async fn queue(&self, event: &str, delivery: &DeliveryId, trigger: &Trigger) -> Outcome {
        let mut redis = self.redis.clone();
        match tokio::time::timeout(REDIS_WRITE_TIMEOUT, self.deliveries.push_on(&mut redis, trigger)).await {
            Ok(Ok(entry)) => {
                tracing::info!(%delivery, event, repo = %trigger.repo.slug(), sha = %trigger.commit.sha, %entry, "delivery queued");
                Outcome::Queued(entry)
            }
            Ok(Err(e)) => {
                tracing::error!(%delivery, error = %e, "could not queue a delivery");
                Outcome::Unavailable("queue unavailable; redeliver later".to_string())
            }
            Err(_) => {
                tracing::error!(%delivery, "timed out queueing a delivery");
                Outcome::Unavailable("queue unavailable; redeliver later".to_string())
            }
        }
    }

    /// Queues a pull request comment's command for a planner (which asks
    /// GitHub who may run it).
    async fn command_queued(&self, command: &CommentCommand) -> Outcome {
        let mut redis = self.redis.clone();
        match tokio::time::timeout(REDIS_WRITE_TIMEOUT, self.commands.push_on(&mut redis, command)).await {
            Ok(Ok(entry)) => {
                tracing::info!(delivery = %command.delivery, repo = %command.repo.slug(), pr = command.pull_request, command = %command.kind.as_written(), "comment command queued");
                Outcome::Queued(entry)
            }
            _ => Outcome::Unavailable("queue unavailable; redeliver later".to_string()),
        }
    }

    /// Applies a `repository` event to the stored repository.
    async fn repository_changed(&self, change: &RepositoryChange) -> Outcome {
        let now = chrono::Utc::now().timestamp();
        match tokio::time::timeout(REDIS_WRITE_TIMEOUT, self.store.refresh_repo(&change.repo, change.deleted, now)).await {
            Ok(Ok(Some(repo))) => {
                tracing::info!(repo = %repo.slug(), action = %change.action, private = repo.info.private, "repository changed");
                Outcome::Done(format!("repository {} {}", repo.slug(), change.action))
            }
            Ok(Ok(None)) => Outcome::Done(format!("ignored: greenlight has no record of {}", change.repo.slug())),
            _ => Outcome::Unavailable("store unavailable; redeliver later".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_are_counted_under_their_names_and_unknown_ones_as_other() {
        assert_eq!(super::event_label("push"), "push");
        assert_eq!(super::event_label("merge_group"), "merge_group");
        assert_eq!(super::event_label("ping"), "ping");
        assert_eq!(super::event_label("sponsorship"), "other");
    }
}
