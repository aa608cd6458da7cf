//! Calls to GitHub survive outages and rate limits, never duplicate a check
//! run, and share installation tokens.

mod support;

use support::{FakeGitHub, ONE_ECHO_STEP, TestApp, Webhook};

#[tokio::test]
async fn a_brief_github_outage_is_retried_until_the_pending_status_lands() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    github.fail_next("GET", "/contents/", 502, 2);
    github.fail_next("POST", "/statuses/", 503, 2);
    let app = TestApp::start(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;

    github.expect_status(&repo, &sha, "greenlight/default/push", "pending").await;
    github.expect_check_run(&repo, &sha, "default (push)", "queued").await;
}

#[tokio::test]
async fn a_secondary_rate_limit_is_waited_out_as_retry_after_says() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    github.rate_limit_next("POST", "/check-runs", 1);
    let app = TestApp::start(&github).await;
    let started = std::time::Instant::now();

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;

    github.expect_check_run(&repo, &sha, "default (push)", "queued").await;
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "retried before retry-after");
    assert_eq!(github.check_runs(&repo, &sha).len(), 1);
}

#[tokio::test]
async fn a_lost_answer_to_a_check_run_create_does_not_duplicate_it() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    github.lose_answer_to_next("POST", "/check-runs");
    let app = TestApp::start(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;

    github.expect_check_run(&repo, &sha, "default (push)", "queued").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(github.check_runs(&repo, &sha).len(), 1, "{:#?}", github.check_runs(&repo, &sha));
    let stage_id = app.expect_builds(repo.id, 1).await[0].stages[0];
    let stage = app.store().stage(stage_id).await.unwrap().unwrap();
    assert_eq!(stage.check_run.map(|c| c.0), Some(github.check_runs(&repo, &sha)[0].id));
}

#[tokio::test]
async fn a_longer_outage_leaves_the_delivery_queued_not_lost() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    // More failures than one planning attempt retries: the attempt gives up.
    github.fail_next("GET", "/contents/", 502, 5);
    let app = TestApp::start(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    assert!(github.statuses(&repo, &sha).is_empty());
    assert_eq!(app.builds(repo.id).await.len(), 0);
    let pending =
        greenlight::queue::WorkQueue::deliveries(greenlight::redis_server::pool(&app.redis.url()).unwrap()).pending().await.unwrap();
    assert_eq!(pending, 1, "the delivery stays pending, to be reclaimed and retried");
}

#[tokio::test]
async fn installation_tokens_are_cached_and_reminted_once_revoked() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let first = repo.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    let app = TestApp::start(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &first)).await;
    github.expect_check_run(&repo, &first, "default (push)", "queued").await;
    let second = repo.push("main", &[("a.txt", "1")]);
    app.deliver(&Webhook::push(&repo, "main", &second)).await;
    github.expect_check_run(&repo, &second, "default (push)", "queued").await;
    assert_eq!(github.tokens_minted(), 1, "one token serves both builds");

    github.revoke_tokens();
    let third = repo.push("main", &[("a.txt", "2")]);
    app.deliver(&Webhook::push(&repo, "main", &third)).await;
    github.expect_check_run(&repo, &third, "default (push)", "queued").await;
    assert_eq!(github.tokens_minted(), 2, "a 401 mints a new token once");
}

#[tokio::test]
async fn tokens_close_to_expiry_are_not_used() {
    let github = FakeGitHub::start().await;
    // Tokens that expire within greenlight's 5-minute margin are never cached.
    github.set_token_lifetime(chrono::Duration::minutes(4));
    let repo = github.repo("acme/widget");
    let first = repo.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    let app = TestApp::start(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &first)).await;
    github.expect_check_run(&repo, &first, "default (push)", "queued").await;
    let minted = github.tokens_minted();
    let second = repo.push("main", &[("a.txt", "1")]);
    app.deliver(&Webhook::push(&repo, "main", &second)).await;
    github.expect_check_run(&repo, &second, "default (push)", "queued").await;

    assert!(github.tokens_minted() > minted);
}

#[tokio::test]
async fn github_enterprise_server_is_reached_under_its_api_path() {
    let github = FakeGitHub::start_enterprise().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    let app = TestApp::start(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;

    github.expect_status(&repo, &sha, "greenlight/default/push", "pending").await;
    assert!(github.requests().iter().all(|(_, path)| path.starts_with("/api/v3/")), "{:?}", github.requests());
}
