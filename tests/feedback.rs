//! GitHub-native feedback: Re-run buttons and superseded builds.

mod support;

use greenlight::store::Status;
use support::{FakeGitHub, TestApp, Webhook, processes_running};

const TWO_PIPELINES: &str = "kind: pipeline\ntype: exec\nname: test\nsteps:\n- name: t\n  commands: [echo testing]\n---\nkind: pipeline\ntype: exec\nname: lint\nsteps:\n- name: l\n  commands: [exit 2]\n";

#[tokio::test]
async fn rerunning_one_check_run_rebuilds_only_its_pipeline() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", TWO_PIPELINES)]);
    let app = TestApp::with_workers(&github).await;
    app.deliver(&Webhook::push(&repo, "main", &sha)).await;
    let lint = github.expect_check_run(&repo, &sha, "lint (push)", "failure").await;
    app.expect_build_done(repo.id, 1).await;

    let answer = app.deliver(&Webhook::check_run_rerequested(&repo, &lint)).await;

    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let rerun = app.expect_build_done(repo.id, 2).await;
    assert_eq!(rerun.parent, 1);
    let stages = app.store().stages(&rerun).await.unwrap();
    assert_eq!(stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["lint"]);
    let runs = github.check_runs(&repo, &sha);
    assert_eq!(runs.iter().filter(|r| r.name == "lint (push)").count(), 2);
    assert_eq!(runs.iter().filter(|r| r.name == "test (push)").count(), 1);
}

#[tokio::test]
async fn rerunning_the_suite_rebuilds_every_pipeline() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", TWO_PIPELINES)]);
    let app = TestApp::with_workers(&github).await;
    app.deliver(&Webhook::push(&repo, "main", &sha)).await;
    app.expect_build_done(repo.id, 1).await;

    app.deliver(&Webhook::check_suite_rerequested(&repo, &sha)).await;

    let rerun = app.expect_build_done(repo.id, 2).await;
    assert_eq!((rerun.parent, rerun.stages.len()), (1, 2));
    assert_eq!(github.check_runs(&repo, &sha).len(), 4);
}

#[tokio::test]
async fn a_failed_check_run_offers_rerun_failed_and_pressing_it_reruns() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", TWO_PIPELINES)]);
    let app = TestApp::with_workers(&github).await;
    app.deliver(&Webhook::push(&repo, "main", &sha)).await;
    let lint = github.expect_check_run(&repo, &sha, "lint (push)", "failure").await;
    let test = github.expect_check_run(&repo, &sha, "test (push)", "success").await;
    app.expect_build_done(repo.id, 1).await;

    assert_eq!(lint.actions.len(), 1);
    assert_eq!(lint.actions[0]["identifier"], "rerun-failed");
    assert!(test.actions.is_empty(), "a passing check offers no rerun button");
    app.deliver(&Webhook::check_run_action(&repo, &lint, "rerun-failed")).await;

    let rerun = app.expect_build_done(repo.id, 2).await;
    assert_eq!(app.store().stages(&rerun).await.unwrap()[0].name, "lint");
}

#[tokio::test]
async fn a_new_push_to_a_pull_request_cancels_the_older_running_build() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let slow = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: slow\n  commands: [sleep 41, echo never]\n";
    let old = repo.push("feature", &[(".drone.yml", slow)]);
    let app = TestApp::with_workers(&github).await;
    app.deliver(&Webhook::pull_request(&repo, "opened", 8, "feature", &old)).await;
    github.expect_check_run(&repo, &old, "default (pull_request)", "in_progress").await;
    let fast = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: quick\n  commands: [echo ok]\n";
    let new = repo.push("feature", &[(".drone.yml", fast)]);

    app.deliver(&Webhook::pull_request(&repo, "synchronize", 8, "feature", &new)).await;

    let cancelled = github.expect_check_run(&repo, &old, "default (pull_request)", "cancelled").await;
    assert!(cancelled.summary.unwrap().contains(&format!("superseded by {}", &new[..7])));
    let status = github.expect_status(&repo, &old, "greenlight/default/pull_request", "error").await;
    assert!(status.description.contains(&format!("superseded by {}", &new[..7])), "{}", status.description);
    github.expect_check_run(&repo, &new, "default (pull_request)", "success").await;
    assert_eq!(app.expect_build_done(repo.id, 1).await.status, Status::Killed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while processes_running("sleep 41") {
        assert!(std::time::Instant::now() < deadline, "the superseded step's process is still running");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn auto_cancel_can_be_turned_off() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let slow =
        "kind: pipeline\ntype: exec\nname: default\ngreenlight:\n  auto_cancel: false\nsteps:\n- name: slow\n  commands: [sleep 2]\n";
    let old = repo.push("main", &[(".drone.yml", slow)]);
    let app = TestApp::with_workers(&github).await;
    app.deliver(&Webhook::push(&repo, "main", &old)).await;
    github.expect_check_run(&repo, &old, "default (push)", "in_progress").await;
    let new = repo.push("main", &[(".drone.yml", slow), ("x", "1")]);

    app.deliver(&Webhook::push(&repo, "main", &new)).await;

    github.expect_check_run(&repo, &old, "default (push)", "success").await;
    github.expect_check_run(&repo, &new, "default (push)", "success").await;
}
