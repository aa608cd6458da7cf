//! Builds that no push asks for: from the API (`custom`), on a schedule
//! (`cron`), and from commands in pull request comments.

mod support;

use greenlight::ids::RepoId;
use greenlight::store::Status;
use support::CheckRunState::Success;
use support::clock::{TestClock, unix};
use support::stepper::Stepper;
use support::{BuildCommit, Scenario, StatusState};

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

/// A pipeline for cron builds only, printing the job's name.
const CRON_ONLY: &str = "kind: pipeline\ntype: exec\nname: nightly\ntrigger:\n  event: [cron]\nsteps:\n- name: show\n  commands:\n  - echo \"cron=$DRONE_CRON event=$DRONE_BUILD_EVENT\"\n";

#[tokio::test]
async fn a_cron_job_fires_once_with_two_serve_processes_running() {
    let clock = TestClock::minutes_ago(3);
    let mut ctx = Scenario::new().with_workers().clock(&clock).start().await;
    ctx.app.start_another_serve(&ctx.github).await;
    ctx.push_and_deliver("main", &[(".drone.yml", CRON_ONLY)]).await;
    ctx.app.expect_deliveries_handled().await;
    let start = clock.unix();

    let created = ctx.api().create_cron("nightly", "* * * * *", "main").await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!(ctx.api().cron("nightly").await.next, start + 60);
    clock.advance_minutes(1);

    let build = ctx.expect_build_done(1).await;
    assert_eq!((build.commit.event.as_str(), build.trigger.as_str()), ("cron", "@cron"));
    ctx.expect_log_contains(&build, "show", "cron=nightly event=cron").await;
    ctx.expect_check_run(build.sha(), "nightly (cron)", Success).await;
    let job = ctx.api().cron("nightly").await;
    assert_eq!((job.prev, job.next), (start + 60, start + 120));
    // The next tick fires the second build: had either process fired the first tick twice, that would be build 2.
    clock.advance_minutes(1);
    let second = ctx.expect_build_done(2).await;
    assert_eq!(second.commit.cron, "nightly");
    assert_eq!(ctx.api().cron("nightly").await.prev, start + 120);
    assert_eq!(ctx.builds().await.len(), 2);
}

#[tokio::test]
async fn each_tick_is_claimed_by_one_scheduler_and_ticks_missed_while_down_fire_once() {
    let mut gl = Stepper::new().await;
    gl.push("main", CRON_ONLY).await;
    gl.plan().await;
    let clock = TestClock::at(2026, 12, 1, 9, 58);
    gl.add_cron("nightly", "0 10 * * *", "main", &clock.shared()).await;
    let (first, second) = (gl.scheduler(clock.shared()), gl.scheduler(clock.shared()));
    assert_eq!(first.tick().await.unwrap(), 0, "not due yet");

    // Everything was down for five days: five ticks were missed.
    clock.set(2026, 12, 6, 10, 5);
    let (a, b) = tokio::join!(first.tick(), second.tick());
    let again = first.tick().await.unwrap() + second.tick().await.unwrap();

    assert_eq!(a.unwrap() + b.unwrap(), 1, "exactly one of the two fired");
    assert_eq!(again, 0);
    let builds = gl.store().builds_page(RepoId(gl.repo.id), None, 0, 10).await.unwrap();
    assert_eq!(builds.len(), 1);
    assert_eq!((builds[0].commit.event.as_str(), builds[0].commit.cron.as_str()), ("cron", "nightly"));
    let job = gl.store().cron(RepoId(gl.repo.id), "nightly").await.unwrap().unwrap();
    assert_eq!(job.next, unix(2026, 12, 7, 10, 0), "the next tick is after now, not the next missed one");
}

#[tokio::test]
async fn the_cron_api_refuses_bad_expressions_and_runs_a_job_now() {
    let ctx = Scenario::new().start().await;
    ctx.push_and_deliver("main", &[(".drone.yml", CRON_ONLY)]).await;
    ctx.app.expect_deliveries_handled().await;

    let six_fields = ctx.api().create_cron("nightly", "0 0 10 * * *", "main").await;
    let guest = ctx.guest().create_cron("nightly", "@daily", "main").await;
    let created = ctx.api().create_cron("nightly", "@daily", "main").await;
    let twice = ctx.api().create_cron("nightly", "@daily", "main").await;
    let disabled = ctx.api().update_cron("nightly", serde_json::json!({ "disabled": true })).await;
    let ran = ctx.api().run_cron("nightly").await;

    assert_eq!(six_fields.status, 400);
    assert!(six_fields.message().unwrap().contains("needs five fields"), "{:?}", six_fields.body);
    assert_eq!(guest.status, 401);
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!((created.body["event"].as_str(), created.body["branch"].as_str()), (Some("push"), Some("main")));
    assert_eq!(twice.status, 409);
    assert_eq!((disabled.body["disabled"].as_bool(), disabled.body["next"].as_i64()), (Some(true), Some(0)));
    assert_eq!(ran.status, 200, "{:?}", ran.body);
    assert_eq!(
        (ran.body["event"].as_str(), ran.body["trigger"].as_str(), ran.body["cron"].as_str()),
        (Some("cron"), Some("@cron"), Some("nightly"))
    );
}
