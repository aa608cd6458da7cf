//! The operator's numbers, served at `/metrics` in Prometheus' text format
//! by the `prometheus-client` crate (OpenMetrics exposition).
//!
//! Each process counts what it does itself (webhooks taken, builds and
//! stages it finished, its calls to GitHub); queue depths are read from
//! Redis at each scrape, so they are the whole installation's. Labels stay
//! few and bounded (no ids but the installation's, whose number is the
//! App's installations): intake names events it does not act on `other`.

use crate::model::Status;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;

/// The content type `/metrics` answers with (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Stage durations are bucketed from a second to two hours (the longest a
/// step may run by default, `GREENLIGHT_MAX_STEP_TIMEOUT`).
const STAGE_BUCKETS: [f64; 12] = [1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    event: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstallationLabels {
    installation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: &'static str,
}

struct Inner {
    registry: Registry,
    webhooks: Family<WebhookLabels, Counter>,
    builds: Family<StatusLabels, Counter>,
    stage_duration: Histogram,
    github_requests: Family<RequestLabels, Counter>,
    rate_limit_remaining: Family<InstallationLabels, Gauge>,
    queue_depth: Family<QueueLabels, Gauge>,
}

/// The process's metrics; clones share them.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry with every greenlight metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("greenlight");
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register("webhooks", "Webhook deliveries taken in, by event and result", webhooks.clone());
        let builds = Family::<StatusLabels, Counter>::default();
        registry.register("builds", "Builds finished, by final status", builds.clone());
        let stage_duration = Histogram::new(STAGE_BUCKETS);
        registry.register_with_unit("stage_duration", "Time from a stage's start to its end", Unit::Seconds, stage_duration.clone());
        let github_requests = Family::<RequestLabels, Counter>::default();
        registry.register("github_requests", "Requests made to GitHub's API, by method and status (0: no answer)", github_requests.clone());
        let rate_limit_remaining = Family::<InstallationLabels, Gauge>::default();
        registry.register(
            "github_rate_limit_remaining",
            "Requests left in GitHub's rate limit window, as its last answer said (installation id, or `app` for the App's JWT)",
            rate_limit_remaining.clone(),
        );
        let queue_depth = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "queue_depth",
            "Work no consumer has read yet: deliveries waiting to be planned, stages waiting for a worker",
            queue_depth.clone(),
        );
        let inner = Inner { registry, webhooks, builds, stage_duration, github_requests, rate_limit_remaining, queue_depth };
        Self { inner: Arc::new(inner) }
    }

    /// Counts a delivery taken in: its event's label (one of a few, see
    /// `intake`) and what became of it (`queued`, `handled`, `ignored`,
    /// `malformed`, `refused`, `unavailable`).
    pub fn webhook(&self, event: &'static str, result: &'static str) {
        self.inner.webhooks.get_or_create(&WebhookLabels { event, result }).inc();
    }

    /// Counts a finished build.
    pub fn build_finished(&self, status: Status) {
        self.inner.builds.get_or_create(&StatusLabels { status: status.as_str() }).inc();
    }

    /// Observes a stage's duration.
    pub fn stage_finished(&self, seconds: f64) {
        self.inner.stage_duration.observe(seconds);
    }

    /// Counts a request to GitHub and what it answered (0: no answer).
    pub fn github_request(&self, method: &http::Method, status: u16) {
        self.inner.github_requests.get_or_create(&RequestLabels { method: method.as_str().to_string(), status }).inc();
    }

    /// Notes the rate limit left for `installation` (`app` for the App itself).
    pub fn rate_limit_remaining(&self, installation: String, remaining: i64) {
        self.inner.rate_limit_remaining.get_or_create(&InstallationLabels { installation }).set(remaining);
    }

    /// Sets how much work waits in `queue` (`deliveries` or `stages`).
    pub fn queue_depth(&self, queue: &'static str, depth: i64) {
        self.inner.queue_depth.get_or_create(&QueueLabels { queue }).set(depth);
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_exposed_with_their_labels() {
        let metrics = Metrics::new();
        metrics.webhook("push", "queued");
        metrics.webhook("other", "ignored");
        metrics.build_finished(Status::Success);
        metrics.stage_finished(3.0);
        let text = metrics.encode();
        assert!(text.contains("greenlight_webhooks_total{event=\"push\",result=\"queued\"} 1"), "{text}");
        assert!(text.contains("greenlight_webhooks_total{event=\"other\",result=\"ignored\"} 1"), "{text}");
        assert!(text.contains("greenlight_builds_total{status=\"success\"} 1"), "{text}");
        assert!(text.contains("greenlight_stage_duration_seconds_count 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
