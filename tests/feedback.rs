//! GitHub-native feedback: Re-run buttons and superseded builds.

mod support;

use greenlight::store::Status;
use support::CheckRunState::{Cancelled, Failure, InProgress, Success};
use support::{Scenario, StatusState};

const TWO_PIPELINES: &str = "kind: pipeline\ntype: exec\nname: test\nsteps:\n- name: t\n  commands: [echo testing]\n---\nkind: pipeline\ntype: exec\nname: lint\nsteps:\n- name: l\n  commands: [exit 2]\n";

#[tokio::test]
async fn rerunning_one_check_run_rebuilds_only_its_pipeline() {
    let ctx = Scenario::new().with_workers().start().await;
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", TWO_PIPELINES)]).await;
    let lint = ctx.expect_check_run(&sha, "lint (push)", Failure).await;
    ctx.expect_build_done(1).await;

    let answer = ctx.rerun_check_run(&lint).await;

    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let rerun = ctx.expect_build_done(2).await;
    assert_eq!(rerun.parent, 1);
    assert_eq!(ctx.stage_names(&rerun).await, vec!["lint"]);
    let runs = ctx.check_runs(&sha);
    assert_eq!(runs.iter().filter(|r| r.name == "lint (push)").count(), 2);
    assert_eq!(runs.iter().filter(|r| r.name == "test (push)").count(), 1);
}

#[tokio::test]
async fn rerunning_the_suite_rebuilds_every_pipeline() {
    let ctx = Scenario::new().with_workers().start().await;
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", TWO_PIPELINES)]).await;
    ctx.expect_build_done(1).await;

    ctx.rerun_suite(&sha).await;

    let rerun = ctx.expect_build_done(2).await;
    assert_eq!((rerun.parent, rerun.stages.len()), (1, 2));
    assert_eq!(ctx.check_runs(&sha).len(), 4);
}

#[tokio::test]
async fn a_failed_check_run_offers_rerun_failed_and_pressing_it_reruns() {
    let ctx = Scenario::new().with_workers().start().await;
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", TWO_PIPELINES)]).await;
    let lint = ctx.expect_check_run(&sha, "lint (push)", Failure).await;
    let test = ctx.expect_check_run(&sha, "test (push)", Success).await;
    ctx.expect_build_done(1).await;

    assert_eq!(lint.actions.len(), 1);
    assert_eq!(lint.actions[0].identifier, "rerun-failed");
    assert!(test.actions.is_empty(), "a passing check offers no rerun button");
    ctx.press_button(&lint, "rerun-failed").await;

    let rerun = ctx.expect_build_done(2).await;
    assert_eq!(ctx.stage_names(&rerun).await[0], "lint");
}

#[tokio::test]
async fn a_new_push_to_a_pull_request_cancels_the_older_running_build() {
    let ctx = Scenario::new().with_workers().start().await;
    let slow = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: slow\n  commands: [sleep 41, echo never]\n";
    let old = ctx.open_pr(8, "feature", &[(".drone.yml", slow)]).await;
    ctx.expect_check_run(&old, "default (pull_request)", InProgress).await;
    let fast = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: quick\n  commands: [echo ok]\n";
    let new = ctx.push_pipeline("feature", fast);

    ctx.deliver_pr("synchronize", 8, "feature", &new).await;

    let cancelled = ctx.expect_check_run(&old, "default (pull_request)", Cancelled).await;
    assert!(cancelled.summary.unwrap().contains(&format!("superseded by {}", new.short())));
    let status = ctx.expect_status(&old, "greenlight/default/pull_request", StatusState::Error).await;
    assert!(status.description.contains(&format!("superseded by {}", new.short())), "{}", status.description);
    ctx.expect_check_run(&new, "default (pull_request)", Success).await;
    assert_eq!(ctx.expect_build_done(1).await.status, Status::Killed);
    support::wait::process_gone("sleep 41", std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn auto_cancel_can_be_turned_off() {
    let ctx = Scenario::new().with_workers().start().await;
    let slow =
        "kind: pipeline\ntype: exec\nname: default\ngreenlight:\n  auto_cancel: false\nsteps:\n- name: slow\n  commands: [sleep 2]\n";
    let old = ctx.push_and_deliver("main", &[(".drone.yml", slow)]).await;
    ctx.expect_check_run(&old, "default (push)", InProgress).await;
    let new = ctx.push("main", &[(".drone.yml", slow), ("x", "1")]);

    ctx.deliver_push("main", &new).await;

    ctx.expect_check_run(&old, "default (push)", Success).await;
    ctx.expect_check_run(&new, "default (push)", Success).await;
}
