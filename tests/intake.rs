//! Webhook intake: what greenlight answers GitHub, and what it queues.

mod support;

use support::{FakeGitHub, ONE_ECHO_STEP, TestApp, Webhook};

#[tokio::test]
async fn a_signed_pull_request_is_accepted_and_queued() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("feature", &[(".drone.yml", ONE_ECHO_STEP)]);
    let app = TestApp::start(&github).await;

    let answer = app.deliver(&Webhook::pull_request(&repo, "opened", 1, "feature", &sha)).await;

    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert_eq!(answer.body["message"], "queued");
    assert_eq!(app.queued_deliveries().await, 1);
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_refused_and_nothing_is_queued() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    let app = TestApp::start(&github).await;
    let hook = Webhook::push(&repo, "main", &sha);

    let forged = app.deliver_signed_with(&hook, "not-the-secret").await;
    let unsigned = app
        .post_webhook(
            &[("x-github-event", "push".into()), ("x-github-delivery", hook.guid.clone()), ("content-type", "application/json".into())],
            hook.body.clone(),
        )
        .await;

    assert_eq!(forged.status, 401);
    assert_eq!(forged.body["message"], "signature does not match");
    assert_eq!(unsigned.status, 401);
    assert_eq!(unsigned.body["message"], "missing X-Hub-Signature-256 header");
    assert_eq!(app.queued_deliveries().await, 0);
    assert!(github.statuses(&repo, &sha).is_empty());
}

#[tokio::test]
async fn a_form_encoded_delivery_is_accepted() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    let app = TestApp::start(&github).await;

    let answer = app.deliver_form(&Webhook::push(&repo, "main", &sha)).await;

    assert_eq!(answer.status, 202, "{:?}", answer.body);
    github.expect_status(&repo, &sha, "greenlight/default/push", "pending").await;
}

#[tokio::test]
async fn malformed_json_and_missing_headers_are_bad_requests() {
    let github = FakeGitHub::start().await;
    let app = TestApp::start(&github).await;
    let mut hook = Webhook::ping();
    hook.event = "push";
    hook.body = b"{\"ref\": ".to_vec();

    let malformed = app.deliver(&hook).await;
    let no_event =
        app.post_webhook(&[("x-hub-signature-256", hook.signature()), ("x-github-delivery", "abc".into())], hook.body.clone()).await;

    assert_eq!(malformed.status, 400);
    assert!(malformed.body["message"].as_str().unwrap().starts_with("malformed push payload"), "{:?}", malformed.body);
    assert_eq!(no_event.status, 400);
    assert_eq!(app.queued_deliveries().await, 0);
}

#[tokio::test]
async fn ping_closed_pull_requests_and_branch_deletions_start_nothing() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("feature", &[(".drone.yml", ONE_ECHO_STEP)]);
    let app = TestApp::start(&github).await;

    let ping = app.deliver(&Webhook::ping()).await;
    let closed = app.deliver(&Webhook::pull_request(&repo, "closed", 1, "feature", &sha)).await;
    let deleted = app.deliver(&Webhook::branch_deleted(&repo, "feature")).await;

    assert_eq!((ping.status, ping.body["message"].as_str()), (200, Some("pong")));
    assert_eq!(closed.status, 200);
    assert_eq!(closed.body["message"], "ignored: pull_request action closed starts no build");
    assert_eq!(deleted.status, 200);
    assert_eq!(app.queued_deliveries().await, 0);
}

#[tokio::test]
async fn a_payload_over_25_mb_is_refused() {
    let github = FakeGitHub::start().await;
    let app = TestApp::start(&github).await;
    let mut hook = Webhook::ping();
    hook.body = vec![b' '; 25 * 1024 * 1024 + 1];

    let answer = app.deliver(&hook).await;

    assert_eq!(answer.status, 413);
}

#[tokio::test]
async fn with_redis_down_deliveries_get_503_so_github_shows_the_failure() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    let mut app = TestApp::start(&github).await;
    let ready_before = reqwest::get(format!("{}/readyz", app.url())).await.unwrap().status().as_u16();

    app.redis.kill();
    let answer = app.deliver(&Webhook::push(&repo, "main", &sha)).await;
    let ready = reqwest::get(format!("{}/readyz", app.url())).await.unwrap().status().as_u16();
    let alive = reqwest::get(format!("{}/healthz", app.url())).await.unwrap().status().as_u16();

    assert_eq!(ready_before, 200);
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(ready, 503);
    assert_eq!(alive, 200);
}
