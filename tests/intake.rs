//! Webhook intake: what greenlight answers GitHub, and what it queues.

mod support;

use support::{ONE_ECHO_STEP, Scenario, StatusState, Webhook};

#[tokio::test]
async fn a_signed_pull_request_is_accepted_and_queued() {
    let ctx = Scenario::new().start().await;
    let sha = ctx.push_pipeline("feature", ONE_ECHO_STEP);

    let answer = ctx.deliver_pr("opened", 1, "feature", &sha).await;

    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert_eq!(answer.message(), Some("queued"));
    assert_eq!(ctx.app.queued_deliveries().await, 1);
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_refused_and_nothing_is_queued() {
    let ctx = Scenario::new().start().await;
    let sha = ctx.push_pipeline("main", ONE_ECHO_STEP);
    let hook = Webhook::push(&ctx.repo, "main", &sha);

    let forged = ctx.app.deliver_signed_with(&hook, "not-the-secret").await;
    let unsigned = ctx
        .app
        .post_webhook(
            &[("x-github-event", "push".into()), ("x-github-delivery", hook.guid.clone()), ("content-type", "application/json".into())],
            hook.body.clone(),
        )
        .await;

    assert_eq!(forged.status, 401);
    assert_eq!(forged.message(), Some("signature does not match"));
    assert_eq!(unsigned.status, 401);
    assert_eq!(unsigned.message(), Some("missing X-Hub-Signature-256 header"));
    assert_eq!(ctx.app.queued_deliveries().await, 0);
    assert!(ctx.statuses(&sha).is_empty());
}

#[tokio::test]
async fn a_form_encoded_delivery_is_accepted() {
    let ctx = Scenario::new().start().await;
    let sha = ctx.push_pipeline("main", ONE_ECHO_STEP);

    let answer = ctx.app.deliver_form(&Webhook::push(&ctx.repo, "main", &sha)).await;

    assert_eq!(answer.status, 202, "{:?}", answer.body);
    ctx.expect_status(&sha, "greenlight/default/push", StatusState::Pending).await;
}

#[tokio::test]
async fn malformed_json_and_missing_headers_are_bad_requests() {
    let ctx = Scenario::new().start().await;
    let mut hook = Webhook::ping();
    hook.event = "push";
    hook.body = b"{\"ref\": ".to_vec();

    let malformed = ctx.deliver(&hook).await;
    let no_event =
        ctx.app.post_webhook(&[("x-hub-signature-256", hook.signature()), ("x-github-delivery", "abc".into())], hook.body.clone()).await;

    assert_eq!(malformed.status, 400);
    assert!(malformed.message().unwrap().starts_with("malformed push payload"), "{:?}", malformed.body);
    assert_eq!(no_event.status, 400);
    assert_eq!(ctx.app.queued_deliveries().await, 0);
}

#[tokio::test]
async fn ping_closed_pull_requests_and_branch_deletions_start_nothing() {
    let ctx = Scenario::new().start().await;
    let sha = ctx.push_pipeline("feature", ONE_ECHO_STEP);

    let ping = ctx.deliver(&Webhook::ping()).await;
    let closed = ctx.deliver_pr("closed", 1, "feature", &sha).await;
    let deleted = ctx.deliver(&Webhook::branch_deleted(&ctx.repo, "feature")).await;

    assert_eq!((ping.status, ping.message()), (200, Some("pong")));
    assert_eq!(closed.status, 200);
    assert_eq!(closed.message(), Some("ignored: pull_request action closed starts no build"));
    assert_eq!(deleted.status, 200);
    assert_eq!(ctx.app.queued_deliveries().await, 0);
}

#[tokio::test]
async fn a_payload_over_25_mb_is_refused() {
    let ctx = Scenario::new().start().await;
    let mut hook = Webhook::ping();
    hook.body = vec![b' '; 25 * 1024 * 1024 + 1];

    let answer = ctx.deliver(&hook).await;

    assert_eq!(answer.status, 413);
}

#[tokio::test]
async fn with_redis_down_deliveries_get_503_so_github_shows_the_failure() {
    let mut ctx = Scenario::new().start().await;
    let sha = ctx.push_pipeline("main", ONE_ECHO_STEP);
    let ready_before = ctx.app.readiness().await;

    ctx.app.redis.kill();
    let answer = ctx.deliver_push("main", &sha).await;
    let ready = ctx.app.readiness().await;
    let alive = ctx.app.liveness().await;

    assert_eq!(ready_before, 200);
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(ready, 503);
    assert_eq!(alive, 200);
}

/// A delivery that announces a `length`-byte body and sends only its first
/// kilobyte, like a client trickling a large upload: the open connection,
/// and the status line if greenlight answers before the body is complete.
async fn start_upload(ctx: &support::Ctx, headers: &str, length: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = ctx.app.url().trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nhost: greenlight\r\ncontent-type: application/json\r\nx-github-event: push\r\nx-github-delivery: big\r\n{headers}content-length: {length}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&[b' '; 1024]).await.unwrap();
    conn
}

async fn status_line(conn: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 512];
    let n = conn.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn an_unsigned_delivery_is_refused_before_its_body_is_read() {
    let ctx = Scenario::new().start().await;

    let mut upload = start_upload(&ctx, "", 20 * 1024 * 1024).await;

    assert_eq!(status_line(&mut upload).await, "HTTP/1.1 401 Unauthorized", "answered with 20 MB still unsent");
}

#[tokio::test]
async fn large_deliveries_take_turns_while_small_ones_go_straight_through() {
    let ctx = Scenario::new().start().await;
    let signed = "x-hub-signature-256: sha256=00\r\n";
    let mut trickling = Vec::new();
    for _ in 0..greenlight::server::MAX_LARGE_BODIES {
        trickling.push(start_upload(&ctx, signed, 20 * 1024 * 1024).await);
    }

    let mut one_more = start_upload(&ctx, signed, 20 * 1024 * 1024).await;
    let sha = ctx.push_pipeline("main", ONE_ECHO_STEP);
    let small = ctx.deliver_push("main", &sha).await;

    assert_eq!(small.status, 202, "a normal delivery does not wait behind large ones");
    assert_eq!(status_line(&mut one_more).await, "HTTP/1.1 503 Service Unavailable", "a ninth large body is not buffered");
    drop(trickling);
}
