//! Catching up with the App's delivery log, so that no delivery is lost.
//!
//! GitHub records every attempt to deliver a webhook, and never retries a
//! failed one by itself. Every `GREENLIGHT_DELIVERY_POLL` seconds one
//! `serve` process (whoever takes the poll lease) reads the attempts made
//! since the last read and takes in, exactly as `/webhook` would, each
//! delivery that failed every attempt and that greenlight never saw. So a
//! restart, a deploy or a network cut loses nothing, and greenlight works
//! with no public URL at all: GitHub's deliveries fail, the poll takes them
//! in, with the delay of one poll.
//!
//! A delivery is taken once: a delivery the planner saw (through `/webhook`,
//! even one GitHub recorded as failed because the answer came late) is
//! skipped, and a per-delivery claim in Redis keeps two processes from
//! taking the same one. Its cost: one request per poll (one more per 100
//! attempts since the last poll, one per delivery taken in), all as the App.

use crate::clock::SharedClock;
use crate::github::GitHub;
use crate::github::delivery_log::LoggedDelivery;
use crate::github::webhook;
use crate::ids::DeliveryId;
use crate::intake::{Intake, Outcome};
use crate::store::Store;
use anyhow::Context;
use std::collections::HashSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the log is read unless `GREENLIGHT_DELIVERY_POLL` says otherwise.
pub const DEFAULT_POLL: Duration = Duration::from_secs(30);

/// The first read goes back this far (GitHub's own recipe for failed
/// deliveries starts 24 hours back; it keeps them redeliverable for 3 days).
pub const FIRST_LOOKBACK: Duration = Duration::from_secs(24 * 3600);

/// Each read goes back this far before the previous one's newest attempt:
/// the log is ordered by attempt, and an attempt can be listed late.
pub const OVERLAP: Duration = Duration::from_secs(120);

/// At most this many pages (of 100 attempts) are read a poll, bounding its
/// cost after a long outage; the rest is read by the next polls.
pub const MAX_PAGES: usize = 10;

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollReport {
    /// Whether this process held the lease and read the log.
    pub read: bool,
    /// Attempts listed.
    pub attempts: usize,
    /// Deliveries taken in.
    pub taken: usize,
}

/// The poller.
pub struct CatchUp {
    github: GitHub,
    intake: Intake,
    store: Store,
    clock: SharedClock,
    owner: String,
}

impl CatchUp {
    /// A poller taking missed deliveries in through `intake`; `owner` names
    /// this process for the poll lease.
    pub fn new(github: GitHub, intake: Intake, store: Store, clock: SharedClock, owner: String) -> Self {
        Self { github, intake, store, clock, owner }
    }

    /// Polls at once, then every `interval`, until `shutdown`.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        loop {
            match self.poll(interval).await {
                Ok(report) if report.taken > 0 => {
                    tracing::info!(taken = report.taken, attempts = report.attempts, "took in deliveries GitHub could not deliver")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot read the App's delivery log; trying again next poll"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Reads the log once, if no other process did within `lease`.
    pub async fn poll(&self, lease: Duration) -> anyhow::Result<PollReport> {
        if !self.store.take_poll_lease(&self.owner, lease).await? {
            return Ok(PollReport::default());
        }
        let now = self.clock.now().timestamp();
        let read_up_to = self.store.delivery_log_read_up_to().await?;
        let horizon = read_up_to.map_or(now - FIRST_LOOKBACK.as_secs() as i64, |at| at - OVERLAP.as_secs() as i64);
        let attempts = self.attempts_since(horizon).await?;
        let taken = self.take_missed(&attempts).await?;
        if let Some(newest) = attempts.iter().map(|a| a.delivered_at.timestamp()).max() {
            self.store.set_delivery_log_read_up_to(newest.max(read_up_to.unwrap_or(0))).await?;
        }
        Ok(PollReport { read: true, attempts: attempts.len(), taken })
    }

    /// The attempts GitHub made at or after `horizon` (Unix seconds), newest first.
    async fn attempts_since(&self, horizon: i64) -> anyhow::Result<Vec<LoggedDelivery>> {
        let mut attempts = Vec::new();
        let mut cursor = None;
        for _ in 0..MAX_PAGES {
            let page = self.github.hook_deliveries(cursor.as_deref()).await.context("listing the App's webhook deliveries")?;
            // Newest first: one attempt older than the horizon means the rest are too.
            let reached_horizon = page.deliveries.iter().any(|a| a.delivered_at.timestamp() < horizon);
            attempts.extend(page.deliveries.into_iter().filter(|a| a.delivered_at.timestamp() >= horizon));
            match page.next {
                Some(next) if !reached_horizon => cursor = Some(next),
                _ => break,
            }
        }
        Ok(attempts)
    }

    /// Takes in each delivery whose every listed attempt failed and that
    /// greenlight never saw; returns how many.
    async fn take_missed(&self, attempts: &[LoggedDelivery]) -> anyhow::Result<usize> {
        let delivered: HashSet<&str> = attempts.iter().filter(|a| a.succeeded()).map(|a| a.guid.as_str()).collect();
        let mut considered = HashSet::new();
        let mut taken = 0;
        for attempt in attempts {
            if attempt.succeeded()
                || delivered.contains(attempt.guid.as_str())
                || !webhook::acts_on(&attempt.event)
                || !considered.insert(attempt.guid.as_str())
            {
                continue;
            }
            let delivery = DeliveryId(attempt.guid.clone());
            if self.store.delivery_seen(&delivery).await? || !self.store.claim_logged_delivery(&delivery).await? {
                continue;
            }
            match self.take(attempt, &delivery).await {
                Ok(outcome) => {
                    tracing::info!(%delivery, event = %attempt.event, ?outcome, "took in a delivery from the App's delivery log");
                    taken += 1;
                }
                Err(e) => {
                    self.store.unclaim_logged_delivery(&delivery).await?;
                    tracing::warn!(%delivery, error = format!("{e:#}"), "cannot take in a logged delivery yet");
                }
            }
        }
        Ok(taken)
    }

    async fn take(&self, attempt: &LoggedDelivery, delivery: &DeliveryId) -> anyhow::Result<Outcome> {
        let payload = self.github.hook_delivery_payload(attempt.id).await.context("fetching the delivery's payload")?;
        match self.intake.take(&attempt.event, delivery, &payload).await {
            Outcome::Unavailable(why) => anyhow::bail!("{why}"),
            outcome => Ok(outcome),
        }
    }
}
