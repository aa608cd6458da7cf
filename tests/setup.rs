//! From nothing to a running App: the setup page registers the App through
//! GitHub's manifest flow and greenlight serves as it without a restart;
//! and deliveries GitHub could not make are taken in from the App's
//! delivery log, once.

mod support;

use std::time::Duration;
use support::{CheckRunState, ONE_ECHO_STEP, Scenario, Webhook};

#[tokio::test]
async fn the_setup_page_registers_the_app_and_a_webhook_then_builds_without_a_restart() {
    let ctx = Scenario::new().with_workers().unconfigured().start().await;
    let form = ctx.setup_form("/").await;
    assert!(form.action.starts_with(&format!("{}/settings/apps/new?state=", ctx.github.api_url())), "{}", form.action);
    assert_eq!(form.manifest["hook_attributes"]["url"], "http://greenlight.test/webhook");
    assert_eq!(form.manifest["redirect_url"], "http://greenlight.test/setup/callback");
    assert_eq!(form.manifest["default_permissions"]["checks"], "write");
    // Before setup, deliveries cannot be taken: GitHub will log them as failed.
    let sha = ctx.push_pipeline("main", ONE_ECHO_STEP);
    let early = Webhook::push(&ctx.repo, "refs/heads/main", &sha);
    assert_eq!(ctx.app.deliver(&early).await.status, 503);

    let back = ctx.submit_to_github(&form).await;
    let page = ctx.follow(&back.replace("http://greenlight.test", &ctx.app.url())).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let registered = ctx.registered_app();
    assert!(page.html.contains(&format!("/apps/{}/installations/new", registered.slug)), "links to the installation page: {}", page.html);
    let settings = std::fs::metadata(ctx.app.data_dir.path().join("greenlight.json")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&settings.permissions()) & 0o777, 0o600);

    let hook = Webhook::push(&ctx.repo, "refs/heads/main", &sha);
    assert_eq!(ctx.deliver_as_registered(&hook).await, 202);
    ctx.expect_check_run(&sha, "default (push)", CheckRunState::Success).await;
    assert_eq!(ctx.open("/").await.status, 404, "the setup page is gone once configured");
}

#[tokio::test]
async fn the_setup_page_registers_under_an_organization_when_asked() {
    let ctx = Scenario::new().unconfigured().start().await;
    let form = ctx.setup_form("/?organization=acme").await;
    assert!(form.action.starts_with(&format!("{}/organizations/acme/settings/apps/new?state=", ctx.github.api_url())), "{}", form.action);
}

#[tokio::test]
async fn a_redirect_without_the_state_greenlight_sent_configures_nothing() {
    let ctx = Scenario::new().unconfigured().start().await;
    let form = ctx.setup_form("/").await;
    let back = ctx.submit_to_github(&form).await.replace("http://greenlight.test", &ctx.app.url());
    let (without_state, _) = back.split_once("&state=").unwrap();
    let forged = back.replace("state=", "state=0");

    for url in [without_state.to_string(), forged] {
        let page = ctx.follow(&url).await;
        assert_eq!(page.status, 400, "{}", page.html);
        assert!(page.html.contains("configures nothing"), "{}", page.html);
    }
    assert!(ctx.registered_app_if_any().is_none(), "the code was never exchanged");
    assert!(!ctx.app.data_dir.path().join("greenlight.json").exists());
    assert_eq!(ctx.open("/").await.status, 200, "still unconfigured: the setup page stays");
}

#[tokio::test]
async fn a_delivery_github_could_not_make_is_built_from_the_delivery_log() {
    let ctx = Scenario::new().with_workers().delivery_poll(Duration::from_millis(500)).start().await;
    let sha = ctx.push_pipeline("main", ONE_ECHO_STEP);
    ctx.lose_delivery(&Webhook::push(&ctx.repo, "refs/heads/main", &sha));
    ctx.expect_check_run(&sha, "default (push)", CheckRunState::Success).await;
    assert_eq!(ctx.builds().await.len(), 1);
}

#[tokio::test]
async fn a_delivery_that_arrived_is_not_built_again_by_the_poll() {
    let ctx = Scenario::new().with_workers().delivery_poll(Duration::from_millis(500)).start().await;
    let (arrived, late) = (ctx.push_pipeline("main", ONE_ECHO_STEP), ctx.push_pipeline("late", ONE_ECHO_STEP));
    assert_eq!(ctx.deliver_logged(&Webhook::push(&ctx.repo, "refs/heads/main", &arrived)).await, 202);
    // Taken by greenlight, but logged by GitHub as failed (its answer came too late).
    ctx.deliver_timed_out(&Webhook::push(&ctx.repo, "refs/heads/late", &late)).await;
    ctx.expect_check_run(&arrived, "default (push)", CheckRunState::Success).await;
    ctx.expect_check_run(&late, "default (push)", CheckRunState::Success).await;

    let reads = ctx.github.requests_to(support::Endpoint::HookDeliveries);
    ctx.expect_log_reads(reads, 2).await;
    ctx.app.expect_deliveries_handled().await;
    assert_eq!(ctx.builds().await.len(), 2, "one build per delivery");
    assert_eq!(ctx.github.requests_to(support::Endpoint::HookDelivery), 0, "no payload was fetched");
}

#[tokio::test]
async fn two_serve_processes_take_a_lost_delivery_in_once() {
    use support::stepper::Stepper;
    let mut gl = Stepper::new().await;
    let sha = gl.repo.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    gl.github.log_delivery(&Webhook::push(&gl.repo, "refs/heads/main", &sha), 0);
    let (a, b) = (gl.catch_up("serve-a"), gl.catch_up("serve-b"));
    let lease = Duration::from_millis(50);

    let first = a.poll(lease).await.unwrap();
    assert_eq!((first.read, first.taken), (true, 1));
    assert!(!b.poll(lease).await.unwrap().read, "one process reads the log while its lease holds");
    // Once the lease lapses the other process reads the same attempts: nothing is taken twice.
    let second = support::wait::until("the poll lease to lapse", || async { b.poll(lease).await.ok().filter(|r| r.read) }).await;
    assert_eq!((second.attempts, second.taken), (1, 0));
    assert_eq!(gl.plan().await, 1);
    assert_eq!(gl.github.requests_to(support::Endpoint::HookDelivery), 1, "the payload was fetched once");
    assert_eq!(gl.plan().await, 0, "one build");
}
