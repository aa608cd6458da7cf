//! Waiting on conditions. Tests never sleep for a fixed time: they wait until
//! what they expect is true, re-checking often, and fail with a description
//! after a generous deadline (two loaded cores make everything slow sometimes).

use super::fake_github::expect_timeout;
use std::future::Future;
use std::time::{Duration, Instant};

/// How often conditions nothing signals (the store, processes) are re-checked.
const POLL: Duration = Duration::from_millis(20);

/// Waits until `probe` yields something, within [`expect_timeout`]; panics naming `what` otherwise.
pub async fn until<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(expect_timeout(), what, probe).await
}

/// Waits until `probe` yields something, within `limit` (when the time
/// itself is what a test asserts); panics naming `what` otherwise.
pub async fn within<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// [`within`] for tests without a runtime (they drive processes directly).
pub fn within_blocking<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until no process's command line contains `needle`, within `limit`.
pub async fn process_gone(needle: &str, limit: Duration) {
    within(limit, &format!("processes running {needle:?} to be gone"), || async { (!super::processes_running(needle)).then_some(()) }).await
}
