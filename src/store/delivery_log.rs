//! What the delivery log's recovery keeps: which deliveries were seen (set
//! when the planner claims one), which logged deliveries were already taken
//! in from the log, how far back the log has been read, and the poll lease.

use super::{Store, StoreResult};
use crate::ids::DeliveryId;
use redis::AsyncCommands;
use std::time::Duration;

/// How long a delivery is remembered as seen: longer than GitHub keeps
/// deliveries redeliverable (3 days on github.com, 7 on Enterprise Server).
pub const SEEN_FOR: Duration = Duration::from_secs(8 * 24 * 3600);

/// Whoever holds it reads the log this round.
const POLL_LEASE: &str = "gl:hooklog:lease";

/// The newest `delivered_at` (Unix seconds) the log has been read up to.
const READ_UP_TO: &str = "gl:hooklog:since";

pub(super) fn seen_key(delivery: &DeliveryId) -> String {
    format!("gl:delivery:{delivery}:seen")
}

fn taken_key(delivery: &DeliveryId) -> String {
    format!("gl:hooklog:taken:{delivery}")
}

impl Store {
    /// Whether a delivery reached the planner (by `/webhook` or the log).
    pub async fn delivery_seen(&self, delivery: &DeliveryId) -> StoreResult<bool> {
        Ok(self.conn().await?.exists(seen_key(delivery)).await?)
    }

    /// Claims a logged delivery for taking in: true for exactly one caller
    /// among every process, for [`SEEN_FOR`].
    pub async fn claim_logged_delivery(&self, delivery: &DeliveryId) -> StoreResult<bool> {
        let set: Option<String> = redis::cmd("SET")
            .arg(taken_key(delivery))
            .arg("1")
            .arg("NX")
            .arg("EX")
            .arg(SEEN_FOR.as_secs())
            .query_async(&mut self.conn().await?)
            .await?;
        Ok(set.is_some())
    }

    /// Gives a claim back (taking the delivery in failed; the next poll retries).
    pub async fn unclaim_logged_delivery(&self, delivery: &DeliveryId) -> StoreResult<()> {
        let _: i64 = self.conn().await?.del(taken_key(delivery)).await?;
        Ok(())
    }

    /// Takes the poll lease for `ttl` (not released: one poll per interval
    /// among every process) unless another process holds it.
    pub async fn take_poll_lease(&self, owner: &str, ttl: Duration) -> StoreResult<bool> {
        self.take_lease(POLL_LEASE, owner, ttl).await
    }

    /// How far the log has been read (Unix seconds), if ever.
    pub async fn delivery_log_read_up_to(&self) -> StoreResult<Option<i64>> {
        Ok(self.conn().await?.get(READ_UP_TO).await?)
    }

    /// Notes the log read up to `at` (Unix seconds).
    pub async fn set_delivery_log_read_up_to(&self, at: i64) -> StoreResult<()> {
        let _: () = self.conn().await?.set(READ_UP_TO, at).await?;
        Ok(())
    }
}
