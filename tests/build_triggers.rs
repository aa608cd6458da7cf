//! Builds that no push asks for: from the API (`custom`), on a schedule
//! (`cron`), and from commands in pull request comments.

mod support;

use greenlight::ids::RepoId;
use greenlight::store::Status;
use support::CheckRunState::{Failure, Queued, Success};
use support::clock::{TestClock, unix};
use support::drone::ApiBuild;
use support::scenario::PR_AUTHOR;
use support::stepper::Stepper;
use support::{BuildCommit, Endpoint, ONE_ECHO_STEP, Scenario, StatusState};

/// A pipeline for custom builds only, printing a build parameter. It
/// reports nothing when a push skips it, so the push that tells greenlight
/// about the repository records no build.
const CUSTOM_ONLY: &str = "kind: pipeline\ntype: exec\nname: release\ngreenlight:\n  report_skipped: false\ntrigger:\n  event: [custom]\nsteps:\n- name: show\n  commands:\n  - echo \"target=$TARGET event=$DRONE_BUILD_EVENT branch=$DRONE_BRANCH\"\n";

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
async fn greenlight_build_create_starts_a_custom_build_from_a_shell() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.push_and_deliver("main", &[(".drone.yml", CUSTOM_ONLY)]).await;
    ctx.app.expect_deliveries_handled().await;
    let sha = ctx.push_pipeline("release-2", CUSTOM_ONLY);

    let out = ctx.run_command(&["build", "create", "acme/widget", "--branch", "release-2", "--param", "TARGET=prod"]).await;
    let missing = ctx.run_command(&["build", "create", "acme/widget", "--branch", "gone"]).await;

    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(printed.starts_with(&format!("build #1 of acme/widget: release-2 at {}", &sha[..7])), "{printed}");
    assert!(printed.contains("/acme/widget/1"), "{printed}");
    let build = ctx.expect_build_done(1).await;
    ctx.expect_log_contains(&build, "show", "target=prod event=custom branch=release-2").await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404 Not Found: acme/widget has no branch or commit \"gone\""));
}

#[tokio::test]
async fn a_repository_known_only_from_its_installation_builds_from_the_api() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.install().await;
    let sha = ctx.push_pipeline("main", CUSTOM_ONLY);

    // No delivery told greenlight where to clone it: GitHub is asked.
    let created = ctx.api().create_build("main", &[("TARGET", "first")]).await;

    assert_eq!(created.status, 200, "{:?}", created.body);
    ctx.expect_check_run(&sha, "release (custom)", Success).await;
    let build = ctx.expect_build_done(1).await;
    ctx.expect_log_contains(&build, "show", "target=first event=custom branch=main").await;
    assert_eq!(ctx.github.requests_to(Endpoint::GetRepo), 1);
}

#[tokio::test]
async fn a_build_of_a_missing_branch_or_with_a_bad_parameter_is_refused_saying_why() {
    let ctx = Scenario::new().start().await;
    ctx.push_and_deliver("main", &[(".drone.yml", CUSTOM_ONLY)]).await;
    ctx.app.expect_deliveries_handled().await;

    let missing = ctx.api().create_build("no-such-branch", &[]).await;
    let reserved = ctx.api().create_build("main", &[("DRONE_COMMIT", "x")]).await;
    let bad_branch = ctx.api().create_build("a..b", &[]).await;

    assert_eq!(missing.status, 404);
    assert!(missing.message().unwrap().contains("no branch or commit \"no-such-branch\""), "{:?}", missing.body);
    assert_eq!(reserved.status, 400);
    assert!(reserved.message().unwrap().contains("DRONE_COMMIT would replace a variable greenlight sets"), "{:?}", reserved.body);
    assert_eq!(bad_branch.status, 400);
    assert!(ctx.builds().await.is_empty());
}

/// A pipeline for cron builds only, printing the job's name (reporting
/// nothing when a push skips it, as [`CUSTOM_ONLY`]).
const CRON_ONLY: &str = "kind: pipeline\ntype: exec\nname: nightly\ngreenlight:\n  report_skipped: false\ntrigger:\n  event: [cron]\nsteps:\n- name: show\n  commands:\n  - echo \"cron=$DRONE_CRON event=$DRONE_BUILD_EVENT\"\n";

#[tokio::test]
async fn a_cron_job_fires_once_with_two_serve_processes_running() {
    let clock = TestClock::minutes_ago(3);
    let mut ctx = Scenario::new().with_workers().clock(&clock).start().await;
    ctx.app.start_another_serve(&ctx.github).await;
    ctx.push_and_deliver("main", &[(".drone.yml", CRON_ONLY)]).await;
    ctx.app.expect_deliveries_handled().await;
    let start = clock.unix();

    let created = ctx.api().create_cron("minutely", "* * * * *", "main").await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!(ctx.api().cron("minutely").await.next, start + 60);
    clock.advance_minutes(1);

    let build = ctx.expect_build_done(1).await;
    assert_eq!((build.commit.event.as_str(), build.trigger.as_str()), ("cron", "@cron"));
    ctx.expect_log_contains(&build, "show", "cron=minutely event=cron").await;
    ctx.expect_check_run(build.sha(), "nightly (cron)", Success).await;
    let job = ctx.api().cron("minutely").await;
    assert_eq!((job.prev, job.next), (start + 60, start + 120));
    // The next tick fires the second build: had either process fired the first tick twice, that would be build 2.
    clock.advance_minutes(1);
    let second = ctx.expect_build_done(2).await;
    assert_eq!(second.commit.cron, "minutely");
    assert_eq!(ctx.api().cron("minutely").await.prev, start + 120);
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

#[tokio::test]
async fn approve_in_a_comment_is_refused_to_a_reader_and_runs_the_blocked_fork_stage_for_a_writer() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.install().await;
    assert_eq!(ctx.api().set_protected(true).await.status, 200);
    let sha = ctx.push_pipeline("contrib", ONE_ECHO_STEP);
    ctx.deliver_fork_pr(6, "contrib", &sha, "stranger/widget").await;
    ctx.expect_check_run(&sha, "default (pull_request)", Queued).await;
    ctx.repo.set_role("maintainer", "maintain");

    let (by_reader, answer) = ctx.comment_on_pr(6, "stranger", "/greenlight approve").await;
    ctx.expect_reaction(by_reader, "-1").await;
    let refusal = ctx.expect_reply(6, "approving needs write access to acme/widget").await;
    let still_blocked = ctx.api().build(1).await.json::<ApiBuild>();
    let (by_writer, _) = ctx.comment_on_pr(6, "maintainer", "/greenlight approve").await;

    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert!(refusal.starts_with("@stranger `/greenlight approve` refused"), "{refusal}");
    assert_eq!(still_blocked.stages[0].status, Status::Blocked);
    ctx.expect_reaction(by_writer, "eyes").await;
    ctx.expect_check_run(&sha, "default (pull_request)", Success).await;
    assert_eq!(ctx.expect_build_done(1).await.status, Status::Success);
    assert_eq!(ctx.repo.replies(6).len(), 1, "a command taken gets a reaction, not a reply");
}

/// Two pipelines: `unit` passes, `flaky` fails.
const ONE_FAILS: &str = "kind: pipeline\ntype: exec\nname: unit\nsteps:\n- name: test\n  commands:\n  - echo ok\n---\nkind: pipeline\ntype: exec\nname: flaky\nsteps:\n- name: test\n  commands:\n  - exit 1\n";

#[tokio::test]
async fn retry_in_a_comment_reruns_only_the_failed_pipeline() {
    let ctx = Scenario::new().with_workers().start().await;
    let sha = ctx.open_pr(7, "feature", &[(".drone.yml", ONE_FAILS)]).await;
    ctx.expect_check_run(&sha, "flaky (pull_request)", Failure).await;
    ctx.expect_check_run(&sha, "unit (pull_request)", Success).await;
    ctx.expect_build_done(1).await;

    // The pull request's author may retry without write access.
    let (comment, answer) = ctx.comment_on_pr(7, PR_AUTHOR, "/greenlight retry").await;

    assert_eq!(answer.status, 202, "{:?}", answer.body);
    ctx.expect_reaction(comment, "eyes").await;
    let rerun = ctx.expect_build_done(2).await;
    assert_eq!((rerun.parent, rerun.trigger.as_str()), (1, PR_AUTHOR));
    assert_eq!(ctx.stage_names(&rerun).await, vec!["flaky".to_string()]);
    let runs = ctx.check_runs(&sha);
    assert_eq!(runs.iter().filter(|r| r.name == "flaky (pull_request)").count(), 2);
    assert_eq!(runs.iter().filter(|r| r.name == "unit (pull_request)").count(), 1, "the passing pipeline is not rerun");
}

#[tokio::test]
async fn comments_that_are_not_commands_cost_no_github_call_and_strangers_cannot_retry() {
    let ctx = Scenario::new().start().await;
    let sha = ctx.open_pr(8, "feature", &[(".drone.yml", ONE_ECHO_STEP)]).await;
    ctx.expect_check_run(&sha, "default (pull_request)", Queued).await;

    let (_, chatter) = ctx.comment_on_pr(8, "someone", "LGTM, but /greenlight retry would not hurt").await;
    ctx.settle().await;
    let calls = [Endpoint::Permission, Endpoint::CreateReaction, Endpoint::CreateComment].map(|e| ctx.github.requests_to(e));
    let (stranger, _) = ctx.comment_on_pr(8, "someone", "/greenlight retry").await;
    let (unknown, _) = ctx.comment_on_pr(8, "someone", "/greenlight deploy").await;

    assert_eq!(chatter.status, 200);
    assert_eq!(calls, [0, 0, 0]);
    ctx.expect_reaction(stranger, "-1").await;
    ctx.expect_reply(8, "retrying needs write access to acme/widget or authorship of the pull request; you have `read`").await;
    ctx.expect_reaction(unknown, "-1").await;
    ctx.expect_reply(8, "greenlight knows `/greenlight retry` and `/greenlight approve`, not \"deploy\"").await;
}
