//! Planning: from a queued delivery to pending feedback on GitHub, before any runner.

mod support;

use support::{FakeGitHub, ONE_ECHO_STEP, TestApp, Webhook};

#[tokio::test]
async fn a_pull_request_gets_a_pending_status_and_a_queued_check_run_before_any_worker_runs() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("feature", &[(".drone.yml", ONE_ECHO_STEP)]);
    let app = TestApp::start(&github).await;

    app.deliver(&Webhook::pull_request(&repo, "opened", 7, "feature", &sha)).await;

    let status = github.expect_status(&repo, &sha, "greenlight/default/pull_request", "pending").await;
    assert_eq!(status.target_url, "http://greenlight.test/acme/widget/1");
    assert_eq!(status.description, "Build #1 is pending: waiting for a runner");
    let run = github.expect_check_run(&repo, &sha, "default (pull_request)", "queued").await;
    assert_eq!(run.details_url.as_deref(), Some("http://greenlight.test/acme/widget/1"));
    let build = &app.expect_builds(repo.id, 1).await[0];
    assert_eq!(run.external_id, Some(build.id.to_string()));
    assert_eq!((build.number, build.commit.git_ref.as_str(), build.commit.sha.0.as_str()), (1, "refs/pull/7/head", sha.as_str()));
}

#[tokio::test]
async fn a_push_and_a_tag_get_their_own_contexts() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    let app = TestApp::start(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;
    app.deliver(&Webhook::push(&repo, "refs/tags/v1.0.0", &sha)).await;

    github.expect_status(&repo, &sha, "greenlight/default/push", "pending").await;
    github.expect_check_run(&repo, &sha, "default (push)", "queued").await;
    github.expect_status(&repo, &sha, "greenlight/default/tag", "pending").await;
    github.expect_check_run(&repo, &sha, "default (tag)", "queued").await;
    let numbers: Vec<i64> = app.expect_builds(repo.id, 2).await.iter().map(|b| b.number).collect();
    assert_eq!(numbers, vec![2, 1]);
}

#[tokio::test]
async fn a_fork_pull_request_is_reported_on_the_base_repository() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("contributor-patch", &[(".drone.yml", ONE_ECHO_STEP)]);
    let app = TestApp::start(&github).await;

    app.deliver(&Webhook::pull_request_from(&repo, "opened", 9, "patch", &sha, Some("stranger/widget"))).await;

    github.expect_status(&repo, &sha, "greenlight/default/pull_request", "pending").await;
    let build = &app.expect_builds(repo.id, 1).await[0];
    assert!(build.commit.fork);
    assert_eq!(build.commit.source_repo, "stranger/widget");
}

#[tokio::test]
async fn only_pipelines_whose_trigger_matches_are_planned() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let config = "kind: pipeline\ntype: exec\nname: test\nsteps:\n- name: t\n  commands: [true]\n---\nkind: pipeline\ntype: exec\nname: deploy\ntrigger:\n  event: [push]\n  branch: [main]\nsteps:\n- name: d\n  commands: [true]\n";
    let sha = repo.push("feature", &[(".drone.yml", config)]);
    let app = TestApp::start(&github).await;

    app.deliver(&Webhook::pull_request(&repo, "opened", 3, "feature", &sha)).await;

    github.expect_check_run(&repo, &sha, "test (pull_request)", "queued").await;
    let names: Vec<String> = github.check_runs(&repo, &sha).into_iter().map(|c| c.name).collect();
    assert_eq!(names, vec!["test (pull_request)"]);
}

#[tokio::test]
async fn a_redelivery_while_the_build_is_queued_starts_nothing() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    let app = TestApp::start(&github).await;
    let hook = Webhook::push(&repo, "main", &sha);

    app.deliver(&hook).await;
    github.expect_check_run(&repo, &sha, "default (push)", "queued").await;
    let again = app.deliver(&hook.redelivery()).await;

    assert_eq!(again.status, 202);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.expect_builds(repo.id, 1).await.len(), 1);
    assert_eq!(github.check_runs(&repo, &sha).len(), 1);
}

#[tokio::test]
async fn a_redelivery_after_the_build_finished_starts_a_new_build() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[("README.md", "no pipeline yet")]);
    let app = TestApp::start(&github).await;
    let hook = Webhook::push(&repo, "main", &sha);

    app.deliver(&hook).await;
    app.expect_builds(repo.id, 1).await;
    github.expect_status(&repo, &sha, "greenlight/.drone.yml/push", "error").await;
    app.deliver(&hook.redelivery()).await;

    let builds = app.expect_builds(repo.id, 2).await;
    assert_eq!(builds[0].number, 2);
    assert_eq!(builds[0].delivery, builds[1].delivery);
}

#[tokio::test]
async fn a_missing_pipeline_file_is_an_error_status_that_says_so() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[("README.md", "hello")]);
    let app = TestApp::start(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;

    let status = github.expect_status(&repo, &sha, "greenlight/.drone.yml/push", "error").await;
    assert_eq!(status.description, format!("no .drone.yml in acme/widget at {}", &sha[..7]));
    let run = github.expect_check_run(&repo, &sha, ".drone.yml (push)", "failure").await;
    assert!(run.summary.unwrap().contains("no .drone.yml"));
    assert_eq!(app.expect_builds(repo.id, 1).await[0].status, greenlight::store::Status::Error);
}

#[tokio::test]
async fn invalid_yaml_is_an_error_naming_the_line() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let broken = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: build\n  comands:\n  - make\n";
    let sha = repo.push("main", &[(".drone.yml", broken)]);
    let app = TestApp::start(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;

    let status = github.expect_status(&repo, &sha, "greenlight/.drone.yml/push", "error").await;
    assert!(status.description.starts_with(".drone.yml: line 6, column 3: steps[0]: unknown field `comands`"), "{}", status.description);
    let run = github.expect_check_run(&repo, &sha, ".drone.yml (push)", "failure").await;
    assert!(run.summary.unwrap().contains("line 6, column 3"));
}

#[tokio::test]
async fn a_docker_pipeline_is_refused_with_its_position() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", "kind: pipeline\ntype: docker\nname: default\nsteps:\n- name: b\n  image: golang\n")]);
    let app = TestApp::start(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;

    let status = github.expect_status(&repo, &sha, "greenlight/.drone.yml/push", "error").await;
    assert!(status.description.contains("line 2, column 7: pipeline type `docker` is not supported"), "{}", status.description);
}
