//! Builds that run: clone, sandboxed steps, logs, and the final word on GitHub.

mod support;

use greenlight::store::Status;
use support::{FakeGitHub, ONE_ECHO_STEP, TestApp, Webhook};

fn pipeline(steps: &str) -> String {
    format!("kind: pipeline\ntype: exec\nname: default\nsteps:\n{steps}")
}

#[tokio::test]
async fn a_pull_request_goes_from_pending_to_success_with_its_output_stored() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push(
        "feature",
        &[
            (".drone.yml", ONE_ECHO_STEP),
            ("hello.txt", "hello from the repo\n"),
        ],
    );
    let app = TestApp::with_workers(&github).await;

    app.deliver(&Webhook::pull_request(&repo, "opened", 1, "feature", &sha))
        .await;

    let status = github
        .expect_status(&repo, &sha, "greenlight/default/pull_request", "success")
        .await;
    assert_eq!(status.description, "Build #1 passed: 2 of 2 steps passed");
    let run = github
        .expect_check_run(&repo, &sha, "default (pull_request)", "success")
        .await;
    assert!(run.started_at.is_some() && run.completed_at.is_some());
    assert_eq!(run.history, vec!["queued", "in_progress", "success"]);
    assert_eq!(run.title.as_deref(), Some("2 of 2 steps passed"));
    assert!(run.summary.unwrap().contains("| greet | ✅ success |"));
    let build = app.expect_build_done(repo.id, 1).await;
    assert_eq!(build.status, Status::Success);
    assert_eq!(app.log(&build, "greet").await, "+ echo ok\nok\n");
    assert!(app.log(&build, "clone").await.contains("+ git fetch"));
}

#[tokio::test]
async fn a_failing_step_fails_the_build_with_its_log_tail_on_the_check_run() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let steps = pipeline(
        "- name: test\n  commands:\n  - echo compiling\n  - \"echo 'error: expected one thing' >&2\"\n  - exit 3\n  - echo never\n- name: after\n  commands: [echo after]\n",
    );
    let sha = repo.push("main", &[(".drone.yml", &steps)]);
    let app = TestApp::with_workers(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;

    let status = github
        .expect_status(&repo, &sha, "greenlight/default/push", "failure")
        .await;
    assert_eq!(status.description, "Build #1 failed: step test failed");
    let run = github
        .expect_check_run(&repo, &sha, "default (push)", "failure")
        .await;
    let text = run.text.unwrap();
    assert!(text.contains("error: expected one thing"), "{text}");
    assert!(
        text.contains("http://greenlight.test/acme/widget/1"),
        "{text}"
    );
    assert!(!text.contains("never"));
    let build = app.expect_build_done(repo.id, 1).await;
    let stage = app.stage(&build).await;
    let statuses: Vec<(&str, Status, i64)> = stage
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.status, s.exit_code))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("clone", Status::Success, 0),
            ("test", Status::Failure, 3),
            ("after", Status::Skipped, 0)
        ]
    );
}

#[tokio::test]
async fn steps_run_in_depends_on_order() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let steps = pipeline(
        "- name: third\n  commands: [cat order >> log.txt, echo third >> order]\n  depends_on: [second]\n- name: second\n  commands: [echo second >> order]\n  depends_on: [first]\n- name: first\n  commands: [echo first > order]\n- name: show\n  commands: [cat order]\n  depends_on: [third]\n",
    );
    let sha = repo.push("main", &[(".drone.yml", &steps)]);
    let app = TestApp::with_workers(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;

    github
        .expect_check_run(&repo, &sha, "default (push)", "success")
        .await;
    let build = app.expect_build_done(repo.id, 1).await;
    assert_eq!(
        app.log(&build, "show").await,
        "+ cat order\nfirst\nsecond\nthird\n"
    );
}
