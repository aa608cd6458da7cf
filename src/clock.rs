//! An injectable clock, so that token expiry and JWT lifetimes can be tested
//! without sleeping and without test-only hooks in production code.

use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Tells the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock as a shared handle.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// Calls `pass` at once and then every `every` (a slow pass delays the
/// next rather than piling passes up), until `shutdown`: the background
/// loops every process runs (the history sweep, the cron scheduler).
pub async fn every<F, Fut>(every: std::time::Duration, shutdown: tokio_util::sync::CancellationToken, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        pass().await;
    }
}
