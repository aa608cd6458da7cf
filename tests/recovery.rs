//! Workers that die or stop: no build is left pending forever.

mod support;

use greenlight::store::Status;
use support::worker::WorkerProcess;
use support::{FakeGitHub, TestApp, Webhook};

const SLOW: &str = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: slow\n  commands:\n  - sleep 4\n  - echo finished\n";

#[tokio::test]
async fn a_stage_whose_worker_is_killed_is_taken_over_and_finishes() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", SLOW)]);
    let app = TestApp::start(&github).await;
    let mut first = WorkerProcess::start(&github, &app, 30);

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;
    github.expect_check_run(&repo, &sha, "default (push)", "in_progress").await;
    first.kill();
    let _second = WorkerProcess::start(&github, &app, 30);

    let run = github.expect_check_run(&repo, &sha, "default (push)", "success").await;
    assert!(run.summary.unwrap().contains("stopped while running this stage"), "the summary says what happened");
    let build = app.expect_build_done(repo.id, 1).await;
    assert_eq!(build.status, Status::Success);
    assert!(app.log(&build, "slow").await.ends_with("finished\n"));
}

#[tokio::test]
async fn sigterm_lets_a_running_stage_finish() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", SLOW)]);
    let app = TestApp::start(&github).await;
    let mut worker = WorkerProcess::start(&github, &app, 30);

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;
    github.expect_check_run(&repo, &sha, "default (push)", "in_progress").await;
    let clean = tokio::task::spawn_blocking(move || worker.terminate()).await.unwrap();

    assert!(clean, "the worker exits cleanly");
    github.expect_check_run(&repo, &sha, "default (push)", "success").await;
    assert_eq!(app.expect_build_done(repo.id, 1).await.status, Status::Success);
}

#[tokio::test]
async fn past_the_grace_period_a_stage_is_handed_back_to_another_worker() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", SLOW)]);
    let app = TestApp::start(&github).await;
    let mut leaving = WorkerProcess::start(&github, &app, 1);

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;
    github.expect_check_run(&repo, &sha, "default (push)", "in_progress").await;
    let clean = tokio::task::spawn_blocking(move || leaving.terminate()).await.unwrap();
    let run = github.check_runs(&repo, &sha).pop().unwrap();
    let _staying = WorkerProcess::start(&github, &app, 30);

    assert!(clean);
    assert_eq!(run.status, "queued", "handed back: {:?}", run.history);
    github.expect_check_run(&repo, &sha, "default (push)", "success").await;
    assert_eq!(app.expect_build_done(repo.id, 1).await.status, Status::Success);
}

#[tokio::test]
async fn a_result_github_could_not_take_is_published_when_it_is_back_without_running_again() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let steps = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: once\n  commands: [sleep 1, echo ran, exit 3]\n";
    let sha = repo.push("main", &[(".drone.yml", steps)]);
    let app = TestApp::with_workers(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;
    github.expect_check_run(&repo, &sha, "default (push)", "in_progress").await;
    // More failures than one publication retries: the stage ends while GitHub is down.
    github.fail_next("PATCH", "/check-runs/", 502, 6);

    let run = github.expect_check_run(&repo, &sha, "default (push)", "failure").await;
    assert!(run.summary.unwrap().contains("Published again"), "published by the retry");
    assert!(run.text.unwrap().contains("ran"), "with the failing step's log tail");
    let build = app.expect_build_done(repo.id, 1).await;
    assert_eq!(build.status, Status::Failure);
    assert_eq!(app.log(&build, "once").await.lines().filter(|l| *l == "ran").count(), 1, "the step did not run again");
}
