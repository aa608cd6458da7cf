//! Workers that die or stop: no build is left pending forever.

mod support;

use greenlight::store::Status;
use support::CheckRunState::{Failure, InProgress, Queued, Success};
use support::{Endpoint, Scenario};

const SLOW: &str = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: slow\n  commands:\n  - sleep 4\n  - echo finished\n";

#[tokio::test]
async fn a_stage_whose_worker_is_killed_is_taken_over_and_finishes() {
    let ctx = Scenario::new().start().await;
    let mut first = ctx.start_worker_process(30);

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &first.pipeline_stuck_here())]).await;
    ctx.expect_check_run(&sha, "default (push)", InProgress).await;
    first.kill();
    let _second = ctx.start_worker_process(30);

    let run = ctx.expect_check_run(&sha, "default (push)", Success).await;
    assert!(run.summary.as_deref().unwrap().contains("stopped while running this stage"), "the summary says what happened: {run:#?}");
    let build = ctx.expect_build_done(1).await;
    assert_eq!(build.status, Status::Success);
    assert!(ctx.log(&build, "slow").await.ends_with("finished\n"));
}

#[tokio::test]
async fn sigterm_lets_a_running_stage_finish() {
    let ctx = Scenario::new().start().await;
    let mut worker = ctx.start_worker_process(30);

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", SLOW)]).await;
    ctx.expect_check_run(&sha, "default (push)", InProgress).await;
    let clean = tokio::task::spawn_blocking(move || worker.terminate()).await.unwrap();

    assert!(clean, "the worker exits cleanly");
    ctx.expect_check_run(&sha, "default (push)", Success).await;
    assert_eq!(ctx.expect_build_done(1).await.status, Status::Success);
}

#[tokio::test]
async fn past_the_grace_period_a_stage_is_handed_back_to_another_worker() {
    let ctx = Scenario::new().start().await;
    let mut leaving = ctx.start_worker_process(1);

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &leaving.pipeline_stuck_here())]).await;
    ctx.expect_check_run(&sha, "default (push)", InProgress).await;
    let clean = tokio::task::spawn_blocking(move || leaving.terminate()).await.unwrap();
    let run = ctx.check_runs(&sha).pop().unwrap();
    let _staying = ctx.start_worker_process(30);

    assert!(clean);
    assert_eq!(run.state, Queued, "handed back: {:?}", run.history);
    ctx.expect_check_run(&sha, "default (push)", Success).await;
    assert_eq!(ctx.expect_build_done(1).await.status, Status::Success);
}

#[tokio::test]
async fn a_result_github_could_not_take_is_published_when_it_is_back_without_running_again() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: once\n  commands: [sleep 1, echo ran, exit 3]\n";

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", steps)]).await;
    ctx.expect_check_run(&sha, "default (push)", InProgress).await;
    // More failures than one publication retries: the stage ends while GitHub is down.
    ctx.github.fail_next(Endpoint::UpdateCheckRun, 502, 6);

    let run = ctx.expect_check_run(&sha, "default (push)", Failure).await;
    assert!(run.summary.unwrap().contains("Published again"), "published by the retry");
    assert!(run.text.unwrap().contains("ran"), "with the failing step's log tail");
    let build = ctx.expect_build_done(1).await;
    assert_eq!(build.status, Status::Failure);
    assert_eq!(ctx.log(&build, "once").await.lines().filter(|l| *l == "ran").count(), 1, "the step did not run again");
}
