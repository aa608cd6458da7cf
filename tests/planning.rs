//! Planning: from a queued delivery to pending feedback on GitHub, before any runner.

mod support;

use support::CheckRunState::{Failure, Queued, Skipped};
use support::{BuildCommit, ONE_ECHO_STEP, Scenario, StatusState, Webhook};

#[tokio::test]
async fn a_pull_request_gets_a_pending_status_and_a_queued_check_run_before_any_worker_runs() {
    let ctx = Scenario::new().start().await;

    let sha = ctx.open_pr(7, "feature", &[(".drone.yml", ONE_ECHO_STEP)]).await;

    let status = ctx.expect_status(&sha, "greenlight/default/pull_request", StatusState::Pending).await;
    assert_eq!(status.target_url, "http://greenlight.test/acme/widget/1");
    assert_eq!(status.description, "Build #1 is pending: waiting for a runner");
    let run = ctx.expect_check_run(&sha, "default (pull_request)", Queued).await;
    assert_eq!(run.details_url.as_deref(), Some("http://greenlight.test/acme/widget/1"));
    let build = &ctx.expect_builds(1).await[0];
    assert_eq!(run.external_id, Some(build.id.to_string()));
    assert_eq!((build.number, build.git_ref(), build.sha()), (1, "refs/pull/7/head", sha.as_str()));
}

#[tokio::test]
async fn a_push_and_a_tag_get_their_own_contexts() {
    let ctx = Scenario::new().start().await;
    let sha = ctx.push_pipeline("main", ONE_ECHO_STEP);

    ctx.deliver_push("main", &sha).await;
    ctx.deliver_push("refs/tags/v1.0.0", &sha).await;

    ctx.expect_status(&sha, "greenlight/default/push", StatusState::Pending).await;
    ctx.expect_check_run(&sha, "default (push)", Queued).await;
    ctx.expect_status(&sha, "greenlight/default/tag", StatusState::Pending).await;
    ctx.expect_check_run(&sha, "default (tag)", Queued).await;
    let numbers: Vec<i64> = ctx.expect_builds(2).await.iter().map(|b| b.number).collect();
    assert_eq!(numbers, vec![2, 1]);
}

#[tokio::test]
async fn a_fork_pull_request_is_reported_on_the_base_repository() {
    let ctx = Scenario::new().start().await;
    let sha = ctx.push_pipeline("contributor-patch", ONE_ECHO_STEP);

    ctx.deliver_fork_pr(9, "patch", &sha, "stranger/widget").await;

    ctx.expect_status(&sha, "greenlight/default/pull_request", StatusState::Pending).await;
    let build = &ctx.expect_builds(1).await[0];
    assert!(build.is_fork());
    assert_eq!(build.source_repo(), "stranger/widget");
}

#[tokio::test]
async fn only_pipelines_whose_trigger_matches_are_planned_and_the_others_reported_skipped() {
    let ctx = Scenario::new().start().await;
    let config = "kind: pipeline\ntype: exec\nname: test\nsteps:\n- name: t\n  commands: [true]\n---\nkind: pipeline\ntype: exec\nname: deploy\ntrigger:\n  event: [push]\n  branch: [main]\nsteps:\n- name: d\n  commands: [true]\n";

    let sha = ctx.open_pr(3, "feature", &[(".drone.yml", config)]).await;

    ctx.expect_check_run(&sha, "test (pull_request)", Queued).await;
    let deploy = ctx.expect_check_run(&sha, "deploy (pull_request)", Skipped).await;
    assert_eq!(deploy.title.as_deref(), Some("Skipped: event `pull_request` does not match the trigger"));
    let status = ctx.expect_status(&sha, "greenlight/deploy/pull_request", StatusState::Success).await;
    assert_eq!(status.description, "skipped: event `pull_request` does not match the trigger");
    let names: Vec<String> = ctx.check_runs(&sha).into_iter().map(|c| c.name).collect();
    assert_eq!(names, vec!["test (pull_request)", "deploy (pull_request)"]);
}

#[tokio::test]
async fn a_redelivery_while_the_build_is_queued_starts_nothing() {
    let ctx = Scenario::new().start().await;
    let sha = ctx.push_pipeline("main", ONE_ECHO_STEP);
    let hook = Webhook::push(&ctx.repo, "main", &sha);

    ctx.deliver(&hook).await;
    ctx.expect_check_run(&sha, "default (push)", Queued).await;
    let again = ctx.deliver(&hook.redelivery()).await;

    assert_eq!(again.status, 202);
    ctx.settle().await;
    assert_eq!(ctx.expect_builds(1).await.len(), 1);
    assert_eq!(ctx.check_runs(&sha).len(), 1);
}

#[tokio::test]
async fn a_redelivery_after_the_build_finished_starts_a_new_build() {
    let ctx = Scenario::new().start().await;
    let sha = ctx.push("main", &[("README.md", "no pipeline yet")]);
    let hook = Webhook::push(&ctx.repo, "main", &sha);

    ctx.deliver(&hook).await;
    ctx.expect_builds(1).await;
    ctx.expect_status(&sha, "greenlight/.drone.yml/push", StatusState::Error).await;
    ctx.deliver(&hook.redelivery()).await;

    let builds = ctx.expect_builds(2).await;
    assert_eq!(builds[0].number, 2);
    assert_eq!(builds[0].delivery, builds[1].delivery);
}

#[tokio::test]
async fn a_missing_pipeline_file_is_an_error_status_that_says_so() {
    let ctx = Scenario::new().start().await;

    let sha = ctx.push_and_deliver("main", &[("README.md", "hello")]).await;

    let status = ctx.expect_status(&sha, "greenlight/.drone.yml/push", StatusState::Error).await;
    assert_eq!(status.description, format!("no .drone.yml in acme/widget at {}", sha.short()));
    let run = ctx.expect_check_run(&sha, ".drone.yml (push)", Failure).await;
    assert!(run.summary.unwrap().contains("no .drone.yml"));
    assert_eq!(ctx.expect_builds(1).await[0].status, greenlight::store::Status::Error);
}

#[tokio::test]
async fn invalid_yaml_is_an_error_naming_the_line() {
    let ctx = Scenario::new().start().await;
    let broken = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: build\n  comands:\n  - make\n";

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", broken)]).await;

    let status = ctx.expect_status(&sha, "greenlight/.drone.yml/push", StatusState::Error).await;
    assert!(status.description.starts_with(".drone.yml: line 6, column 3: steps[0]: unknown field `comands`"), "{}", status.description);
    let run = ctx.expect_check_run(&sha, ".drone.yml (push)", Failure).await;
    assert!(run.summary.unwrap().contains("line 6, column 3"));
}

#[tokio::test]
async fn a_docker_pipeline_is_refused_with_its_position() {
    let ctx = Scenario::new().start().await;

    let sha = ctx
        .push_and_deliver("main", &[(".drone.yml", "kind: pipeline\ntype: docker\nname: default\nsteps:\n- name: b\n  image: golang\n")])
        .await;

    let status = ctx.expect_status(&sha, "greenlight/.drone.yml/push", StatusState::Error).await;
    assert!(status.description.contains("line 2, column 7: pipeline type `docker` is not supported"), "{}", status.description);
}
