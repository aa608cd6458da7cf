//! When and how long to wait before calling GitHub again.
//!
//! GitHub asks integrations to honour `retry-after`, to wait for
//! `x-ratelimit-reset` when `x-ratelimit-remaining` is 0, and otherwise to
//! back off exponentially ("Best practices for using the REST API").

use http::{HeaderMap, StatusCode};
use rand::Rng;
use std::time::Duration;

/// How persistent calls to GitHub are.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff; doubled after each failure, with jitter.
    pub base_delay: Duration,
    /// No single backoff is longer than this.
    pub max_delay: Duration,
    /// The longest wait a rate limit may impose before greenlight gives up on
    /// this call (the caller retries the whole job later).
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            max_rate_limit_wait: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with full jitter for the given (0-based) retry.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.base_delay.saturating_mul(1u32 << retry.min(16)).min(self.max_delay);
        let half = ceiling / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// The wait a response asks for, if it is worth retrying at all.
    ///
    /// `now_unix` is the current time, to turn `x-ratelimit-reset` into a wait.
    pub fn wait_for(&self, status: StatusCode, headers: &HeaderMap, body: &str, retry: u32, now_unix: i64) -> Option<Duration> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let retry_after = header("retry-after").and_then(|v| v.parse::<u64>().ok()).map(Duration::from_secs);
        let exhausted = header("x-ratelimit-remaining") == Some("0");
        let reset_wait = header("x-ratelimit-reset")
            .and_then(|v| v.parse::<i64>().ok())
            .map(|reset| Duration::from_secs(reset.saturating_sub(now_unix).max(1) as u64));
        let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN
                && (retry_after.is_some() || exhausted || body.to_ascii_lowercase().contains("rate limit")));
        let wait = if rate_limited {
            retry_after.or(if exhausted { reset_wait } else { None }).unwrap_or_else(|| self.backoff(retry).max(Duration::from_secs(1)))
        } else if status.is_server_error() {
            retry_after.unwrap_or_else(|| self.backoff(retry))
        } else {
            return None;
        };
        (wait <= self.max_rate_limit_wait).then_some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn retry_after_is_honoured_for_secondary_rate_limits() {
        let policy = RetryPolicy::default();
        let wait = policy.wait_for(StatusCode::FORBIDDEN, &headers(&[("retry-after", "3")]), "", 0, 0);
        assert_eq!(wait, Some(Duration::from_secs(3)));
    }

    #[test]
    fn an_exhausted_primary_limit_waits_for_the_reset() {
        let policy = RetryPolicy::default();
        let h = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1030")]);
        assert_eq!(policy.wait_for(StatusCode::FORBIDDEN, &h, "", 0, 1000), Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_plain_forbidden_or_client_error_is_not_retried() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.wait_for(StatusCode::FORBIDDEN, &HeaderMap::new(), "Resource not accessible by integration", 0, 0), None);
        assert_eq!(policy.wait_for(StatusCode::UNPROCESSABLE_ENTITY, &HeaderMap::new(), "", 0, 0), None);
    }

    #[test]
    fn server_errors_back_off_within_bounds() {
        let policy = RetryPolicy::default();
        for retry in 0..10 {
            let wait = policy.wait_for(StatusCode::BAD_GATEWAY, &HeaderMap::new(), "", retry, 0).unwrap();
            assert!(wait <= policy.max_delay);
        }
    }

    #[test]
    fn a_wait_longer_than_allowed_gives_up() {
        let policy = RetryPolicy::default();
        let h = headers(&[("retry-after", "3600")]);
        assert_eq!(policy.wait_for(StatusCode::TOO_MANY_REQUESTS, &h, "", 0, 0), None);
    }
}
