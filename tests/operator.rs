//! The operator's view: `/metrics` in Prometheus' format, guarded by the
//! API token, whose counters follow what greenlight did.

mod support;

use support::{CheckRunState, ONE_ECHO_STEP, Scenario};

#[tokio::test]
async fn metrics_need_the_token_parse_as_prometheus_text_and_count_a_build() {
    let ctx = Scenario::new().with_workers().start().await;
    assert_eq!(ctx.app.scrape(None).await.0, 401);
    assert_eq!(ctx.app.scrape(Some("not-the-token-0123456789")).await.0, 401);
    let before = ctx.app.metrics().await;
    let queued = [("event", "push"), ("result", "queued")];

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", ONE_ECHO_STEP)]).await;
    ctx.expect_check_run(&sha, "default (push)", CheckRunState::Success).await;
    ctx.expect_build_done(1).await;
    let after = ctx.app.metrics().await;

    assert_eq!(after.count("greenlight_webhooks_total", &queued), before.count("greenlight_webhooks_total", &queued) + 1.0);
    assert_eq!(after.count("greenlight_builds_total", &[("status", "success")]), 1.0);
    assert_eq!(after.count("greenlight_stage_duration_seconds_count", &[]), 1.0);
    assert!(after.count("greenlight_github_requests_total", &[("method", "POST"), ("status", "201")]) >= 1.0, "{after:?}");
    assert_eq!(after.value("greenlight_queue_depth", &[("queue", "deliveries")]), Some(0.0));
    assert_eq!(after.value("greenlight_queue_depth", &[("queue", "stages")]), Some(0.0));
    let installation = ctx.repo.installation.to_string();
    let left = after.value("greenlight_github_rate_limit_remaining", &[("installation", &installation)]).expect("rate limit seen");
    assert!(left > 0.0 && left < 5000.0, "{left}");
}

#[tokio::test]
async fn refused_deliveries_are_counted_apart_from_handled_ones() {
    let ctx = Scenario::new().start().await;
    let hook = support::Webhook::push(&ctx.repo, "refs/heads/main", &ctx.push_pipeline("main", ONE_ECHO_STEP));
    assert_eq!(ctx.app.deliver_signed_with(&hook, "wrong-secret").await.status, 401);
    assert_eq!(ctx.app.deliver(&support::Webhook::ping()).await.status, 200);
    let scrape = ctx.app.metrics().await;
    assert_eq!(scrape.count("greenlight_webhooks_total", &[("event", "push"), ("result", "refused")]), 1.0);
    assert_eq!(scrape.count("greenlight_webhooks_total", &[("event", "ping"), ("result", "handled")]), 1.0);
}
