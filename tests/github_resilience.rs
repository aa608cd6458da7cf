//! Calls to GitHub survive outages and rate limits, never duplicate a check
//! run, and share installation tokens.

mod support;

use support::CheckRunState::Queued;
use support::{Endpoint, ONE_ECHO_STEP, Scenario, StatusState};

#[tokio::test]
async fn a_brief_github_outage_is_retried_until_the_pending_status_lands() {
    let ctx = Scenario::new().start().await;
    ctx.github.fail_next(Endpoint::Contents, 502, 2);
    ctx.github.fail_next(Endpoint::CreateStatus, 503, 2);

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", ONE_ECHO_STEP)]).await;

    ctx.expect_status(&sha, "greenlight/default/push", StatusState::Pending).await;
    ctx.expect_check_run(&sha, "default (push)", Queued).await;
}

#[tokio::test]
async fn a_secondary_rate_limit_is_waited_out_as_retry_after_says() {
    let ctx = Scenario::new().start().await;
    let sha = ctx.push_pipeline("main", ONE_ECHO_STEP);
    ctx.github.rate_limit(Endpoint::CreateCheckRun, 1);
    let started = std::time::Instant::now();

    ctx.deliver_push("main", &sha).await;

    ctx.expect_check_run(&sha, "default (push)", Queued).await;
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "retried before retry-after");
    assert_eq!(ctx.check_runs(&sha).len(), 1);
}

#[tokio::test]
async fn a_lost_answer_to_a_check_run_create_does_not_duplicate_it() {
    let ctx = Scenario::new().start().await;
    ctx.github.lose_answer(Endpoint::CreateCheckRun);

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", ONE_ECHO_STEP)]).await;

    ctx.expect_check_run(&sha, "default (push)", Queued).await;
    ctx.settle().await;
    assert_eq!(ctx.check_runs(&sha).len(), 1, "{:#?}", ctx.check_runs(&sha));
    let build = ctx.expect_builds(1).await.remove(0);
    let stage = ctx.stage(&build).await;
    assert_eq!(stage.check_run.map(|c| c.0), Some(ctx.check_runs(&sha)[0].id));
}

#[tokio::test]
async fn a_longer_outage_leaves_the_delivery_queued_not_lost() {
    let ctx = Scenario::new().start().await;
    // More failures than one planning attempt retries: the attempt gives up.
    ctx.github.fail_next(Endpoint::Contents, 502, 5);

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", ONE_ECHO_STEP)]).await;
    ctx.github.expect_failures_spent(Endpoint::Contents).await;
    ctx.github.settle().await;

    assert!(ctx.statuses(&sha).is_empty());
    assert_eq!(ctx.builds().await.len(), 0);
    assert_eq!(ctx.app.unacknowledged_deliveries().await, 1, "the delivery stays pending, to be reclaimed and retried");
}

#[tokio::test]
async fn installation_tokens_are_cached_and_reminted_once_revoked() {
    let ctx = Scenario::new().start().await;

    let first = ctx.push_and_deliver("main", &[(".drone.yml", ONE_ECHO_STEP)]).await;
    ctx.expect_check_run(&first, "default (push)", Queued).await;
    let second = ctx.push_and_deliver("main", &[("a.txt", "1")]).await;
    ctx.expect_check_run(&second, "default (push)", Queued).await;
    assert_eq!(ctx.github.tokens_minted(), 1, "one token serves both builds");

    ctx.github.revoke_tokens();
    let third = ctx.push_and_deliver("main", &[("a.txt", "2")]).await;
    ctx.expect_check_run(&third, "default (push)", Queued).await;
    assert_eq!(ctx.github.tokens_minted(), 2, "a 401 mints a new token once");
}

#[tokio::test]
async fn tokens_close_to_expiry_are_not_used() {
    // Tokens that expire within greenlight's 5-minute margin are never cached.
    let ctx = Scenario::new().token_lifetime(chrono::Duration::minutes(4)).start().await;

    let first = ctx.push_and_deliver("main", &[(".drone.yml", ONE_ECHO_STEP)]).await;
    ctx.expect_check_run(&first, "default (push)", Queued).await;
    let minted = ctx.github.tokens_minted();
    let second = ctx.push_and_deliver("main", &[("a.txt", "1")]).await;
    ctx.expect_check_run(&second, "default (push)", Queued).await;

    assert!(ctx.github.tokens_minted() > minted);
}

#[tokio::test]
async fn github_enterprise_server_is_reached_under_its_api_path() {
    let ctx = Scenario::new().enterprise().start().await;

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", ONE_ECHO_STEP)]).await;

    ctx.expect_status(&sha, "greenlight/default/push", StatusState::Pending).await;
    assert_eq!(ctx.github.prefix, "/api/v3");
    assert!(ctx.github.requests_outside_prefix().is_empty(), "{:?}", ctx.github.requests());
}
