//! Builds that no push asks for: from the API (`custom`), on a schedule
//! (`cron`), and from commands in pull request comments.

mod support;

use greenlight::store::Status;
use support::CheckRunState::Success;
use support::{Scenario, StatusState};

/// A pipeline for custom builds only, printing a build parameter.
const CUSTOM_ONLY: &str = "kind: pipeline\ntype: exec\nname: release\ntrigger:\n  event: [custom]\nsteps:\n- name: show\n  commands:\n  - echo \"target=$TARGET event=$DRONE_BUILD_EVENT branch=$DRONE_BRANCH\"\n";

#[tokio::test]
async fn an_api_created_build_of_a_branch_runs_with_event_custom_and_its_parameters() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.push_and_deliver("main", &[(".drone.yml", CUSTOM_ONLY)]).await;
    ctx.app.expect_deliveries_handled().await;
    let sha = ctx.push_pipeline("release-1", CUSTOM_ONLY);

    let guest = ctx.guest().create_build("release-1", &[]).await;
    let created = ctx.api().create_build("release-1", &[("TARGET", "staging")]).await;

    assert_eq!(guest.status, 401);
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!((created.body["event"].as_str(), created.body["after"].as_str()), (Some("custom"), Some(sha.as_str())));
    assert_eq!((created.body["ref"].as_str(), created.body["trigger"].as_str()), (Some("refs/heads/release-1"), Some("admin")));
    assert_eq!(created.body["params"]["TARGET"], "staging");
    ctx.expect_check_run(&sha, "release (custom)", Success).await;
    ctx.expect_status(&sha, "greenlight/release/custom", StatusState::Success).await;
    let build = ctx.expect_build_done(1).await;
    assert_eq!(build.status, Status::Success);
    ctx.expect_log_contains(&build, "show", "target=staging event=custom branch=release-1").await;
    let listed = ctx.api().build(1).await;
    assert_eq!((listed.body["event"].as_str(), listed.body["status"].as_str()), (Some("custom"), Some("success")));
}

#[tokio::test]
async fn a_build_of_a_missing_branch_or_with_a_bad_parameter_is_refused_saying_why() {
    let ctx = Scenario::new().start().await;
    ctx.install().await;
    ctx.push_pipeline("main", CUSTOM_ONLY);
    let unknown_url = ctx.api().create_build("main", &[]).await;
    ctx.push_and_deliver("main", &[(".drone.yml", CUSTOM_ONLY)]).await;
    ctx.app.expect_deliveries_handled().await;

    let missing = ctx.api().create_build("no-such-branch", &[]).await;
    let reserved = ctx.api().create_build("main", &[("DRONE_COMMIT", "x")]).await;
    let bad_branch = ctx.api().create_build("a..b", &[]).await;

    assert_eq!(unknown_url.status, 404);
    assert!(unknown_url.message().unwrap().contains("does not know where to clone acme/widget yet"), "{:?}", unknown_url.body);
    assert_eq!(missing.status, 404);
    assert!(missing.message().unwrap().contains("no branch or commit \"no-such-branch\""), "{:?}", missing.body);
    assert_eq!(reserved.status, 400);
    assert!(reserved.message().unwrap().contains("DRONE_COMMIT would replace a variable greenlight sets"), "{:?}", reserved.body);
    assert_eq!(bad_branch.status, 400);
    assert!(ctx.builds().await.is_empty());
}
