//! Builds that run: clone, sandboxed steps, logs, and the final word on GitHub.

mod support;

use greenlight::store::Status;
use support::CheckRunState::{Failure, InProgress, Queued, Skipped, Success, TimedOut};
use support::{ONE_ECHO_STEP, Scenario, StatusState, processes_running};

fn pipeline(steps: &str) -> String {
    format!("kind: pipeline\ntype: exec\nname: default\nsteps:\n{steps}")
}

#[tokio::test]
async fn a_pull_request_goes_from_pending_to_success_with_its_output_stored() {
    let ctx = Scenario::new().with_workers().start().await;

    let sha = ctx.open_pr(1, "feature", &[(".drone.yml", ONE_ECHO_STEP), ("hello.txt", "hello from the repo\n")]).await;

    let status = ctx.expect_status(&sha, "greenlight/default/pull_request", StatusState::Success).await;
    assert_eq!(status.description, "Build #1 passed: 2 of 2 steps passed");
    let run = ctx.expect_check_run(&sha, "default (pull_request)", Success).await;
    assert!(run.started_at.is_some() && run.completed_at.is_some());
    assert_eq!(run.history, vec![Queued, InProgress, Success]);
    assert_eq!(run.title.as_deref(), Some("2 of 2 steps passed"));
    assert!(run.summary.unwrap().contains("| greet | ✅ success |"));
    let build = ctx.expect_build_done(1).await;
    assert_eq!(build.status, Status::Success);
    assert_eq!(ctx.log(&build, "greet").await, "+ echo ok\nok\n");
    assert!(ctx.log(&build, "clone").await.contains("+ git fetch"));
}

#[tokio::test]
async fn a_failing_step_fails_the_build_with_its_log_tail_on_the_check_run() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps = pipeline(
        "- name: test\n  commands:\n  - echo compiling\n  - \"echo 'error: expected one thing' >&2\"\n  - exit 3\n  - echo never\n- name: after\n  commands: [echo after]\n",
    );

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;

    let status = ctx.expect_status(&sha, "greenlight/default/push", StatusState::Failure).await;
    assert_eq!(status.description, "Build #1 failed: step test failed");
    let run = ctx.expect_check_run(&sha, "default (push)", Failure).await;
    let text = run.text.unwrap();
    assert!(text.contains("error: expected one thing"), "{text}");
    assert!(text.contains("http://greenlight.test/acme/widget/1"), "{text}");
    assert!(!text.contains("never"));
    let build = ctx.expect_build_done(1).await;
    let stage = ctx.stage(&build).await;
    let statuses: Vec<(&str, Status, i64)> = stage.steps.iter().map(|s| (s.name.as_str(), s.status, s.exit_code)).collect();
    assert_eq!(statuses, vec![("clone", Status::Success, 0), ("test", Status::Failure, 3), ("after", Status::Skipped, 0)]);
}

#[tokio::test]
async fn steps_run_in_depends_on_order() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps = pipeline(
        "- name: third\n  commands: [cat order >> log.txt, echo third >> order]\n  depends_on: [second]\n- name: second\n  commands: [echo second >> order]\n  depends_on: [first]\n- name: first\n  commands: [echo first > order]\n- name: show\n  commands: [cat order]\n  depends_on: [third]\n",
    );

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;

    ctx.expect_check_run(&sha, "default (push)", Success).await;
    let build = ctx.expect_build_done(1).await;
    assert_eq!(ctx.log(&build, "show").await, "+ cat order\nfirst\nsecond\nthird\n");
}

#[tokio::test]
async fn a_step_past_its_timeout_is_killed_even_if_it_ignores_sigterm() {
    let ctx = Scenario::new().with_workers().start().await;
    let config = "kind: pipeline\ntype: exec\nname: default\ngreenlight:\n  step_timeout: 2s\nsteps:\n- name: stubborn\n  commands:\n  - trap '' TERM; while true; do sleep 1; done\n";
    let sha = ctx.push_pipeline("main", config);
    let started = std::time::Instant::now();

    ctx.deliver_push("main", &sha).await;

    let run = ctx.expect_check_run(&sha, "default (push)", TimedOut).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert!(run.summary.unwrap().contains("step timeout of 2s"));
    let build = ctx.expect_build_done(1).await;
    assert!(ctx.log(&build, "stubborn").await.ends_with("[greenlight] step timed out after 2s and was killed\n"));
    assert!(!processes_running("while true; do sleep 1; done"), "the step's process tree is gone");
}

#[tokio::test]
async fn a_background_process_does_not_hold_the_step_open() {
    let ctx = Scenario::new().with_workers().start().await;
    let sha = ctx.push_pipeline("main", &pipeline("- name: daemon\n  commands:\n  - sleep 97 &\n  - echo started\n"));
    let started = std::time::Instant::now();

    ctx.deliver_push("main", &sha).await;

    ctx.expect_check_run(&sha, "default (push)", Success).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "took {:?}", started.elapsed());
    assert!(!processes_running("sleep 97"), "the background child died with the sandbox");
}

#[tokio::test]
async fn a_step_sees_nothing_of_the_server_and_writes_only_its_workspace() {
    let ctx = Scenario::new().with_workers().start().await;
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/test-app-key.pem");
    let marker = format!("/tmp/greenlight-escape-{}", std::process::id());
    let data_dir = ctx.app.data_dir.path().display().to_string();
    let steps = pipeline(&format!(
        "- name: probe\n  commands:\n  - id -u\n  - echo core=$(ulimit -c)\n  - cat {key} || echo key-unreadable\n  - cat /etc/shadow || echo shadow-unreadable\n  - ls {data_dir} || echo data-dir-invisible\n  - ls /drone\n  - touch /usr/escape || echo usr-read-only\n  - touch {marker} && echo tmp-private\n  - touch in-workspace && echo workspace-writable\n  - env | sort\n"
    ));

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;

    ctx.expect_check_run(&sha, "default (push)", Success).await;
    let build = ctx.expect_build_done(1).await;
    let log = ctx.log(&build, "probe").await;
    for expected in [
        "65534\n",
        "core=0\n",
        "key-unreadable",
        "shadow-unreadable",
        "data-dir-invisible",
        "+ ls /drone\nsrc\n",
        "usr-read-only",
        "tmp-private",
        "workspace-writable",
        "DRONE_BUILD_NUMBER=1\n",
        "DRONE_COMMIT_SHA=",
        "DRONE_REPO=acme/widget\n",
        "DRONE_STEP_NAME=probe\n",
        "CI=true\n",
    ] {
        assert!(log.contains(expected), "missing {expected:?} in:\n{log}");
    }
    assert!(!log.contains("BEGIN RSA PRIVATE KEY"));
    assert!(!std::path::Path::new(&marker).exists(), "a write to the sandbox's /tmp reached the host");
    let env: Vec<&str> = log.lines().skip_while(|l| *l != "+ env | sort").skip(1).collect();
    for line in &env {
        let name = line.split('=').next().unwrap();
        assert!(
            name == "PATH"
                || name == "HOME"
                || name == "CI"
                || name == "PWD"
                || name == "SHLVL"
                || name == "OLDPWD"
                || name == "_"
                || name == "GREENLIGHT_SUMMARY"
                || name.starts_with("DRONE")
                || name.starts_with("CI_"),
            "unexpected variable {line}"
        );
    }
}

#[tokio::test]
async fn the_installation_token_never_appears_in_a_log() {
    let ctx = Scenario::new().private_repo("acme/secret-sauce").with_workers().start().await;
    let steps = pipeline(
        "- name: snoop\n  commands:\n  - cat .git/config\n  - git log -1 --format=%H\n  - env\n  - cat /proc/1/cmdline /proc/1/environ | tr '\\\\0' ' '\n",
    );

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;

    ctx.expect_check_run(&sha, "default (push)", Success).await;
    let build = ctx.expect_build_done(1).await;
    let logs = format!("{}{}", ctx.log(&build, "clone").await, ctx.log(&build, "snoop").await);
    assert!(logs.contains(sha.as_str()), "the private repository was cloned with the token:\n{logs}");
    let tokens = ctx.github.issued_tokens();
    assert!(!tokens.is_empty());
    for token in tokens {
        assert!(!logs.contains(&token), "token leaked:\n{logs}");
    }
    assert!(!logs.contains("x-access-token") && !logs.contains("extraheader"), "{logs}");
}

#[tokio::test]
async fn a_huge_log_is_capped_with_a_clear_last_line() {
    let mut runner = support::app::runner_config();
    runner.log_limit = 1024 * 1024;
    let ctx = Scenario::new().runner(runner).start().await;
    let steps = pipeline("- name: chatty\n  commands:\n  - yes 0123456789abcdef0123456789abcdef | head -c 5000000\n  - echo done\n");

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;

    ctx.expect_check_run(&sha, "default (push)", Success).await;
    let build = ctx.expect_build_done(1).await;
    let log = ctx.log(&build, "chatty").await;
    assert!(log.len() < 1024 * 1024 + 100, "{} bytes stored", log.len());
    assert!(log.ends_with("[greenlight] this step's log passed its limit of 1 MiB; later output is not stored\n"));
}

#[tokio::test]
async fn exit_code_78_ends_the_stage_early_as_a_success() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps = pipeline("- name: check\n  commands: [exit 78]\n- name: expensive\n  commands: [echo should-not-run]\n");

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;

    ctx.expect_status(&sha, "greenlight/default/push", StatusState::Success).await;
    let build = ctx.expect_build_done(1).await;
    let stage = ctx.stage(&build).await;
    assert_eq!(stage.steps[2].status, Status::Skipped);
}

#[tokio::test]
async fn a_pipeline_waits_for_the_one_it_depends_on() {
    let ctx = Scenario::new().with_workers().start().await;
    let config = "kind: pipeline\ntype: exec\nname: test\nsteps:\n- name: t\n  commands: [exit 1]\n---\nkind: pipeline\ntype: exec\nname: deploy\ndepends_on: [test]\nsteps:\n- name: d\n  commands: [echo deploying]\n";

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", config)]).await;

    ctx.expect_check_run(&sha, "test (push)", Failure).await;
    ctx.expect_check_run(&sha, "deploy (push)", Skipped).await;
    let build = ctx.expect_build_done(1).await;
    assert_eq!(build.status, Status::Failure);
}

#[tokio::test]
async fn an_unsandboxed_runner_says_so_on_every_check_run() {
    let mut runner = support::app::runner_config();
    runner.unsandboxed = true;
    let ctx = Scenario::new().runner(runner).start().await;

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", ONE_ECHO_STEP)]).await;

    let run = ctx.expect_check_run(&sha, "default (push)", Success).await;
    assert!(run.summary.unwrap().starts_with("> **Warning:** these steps ran UNSANDBOXED"));
    let build = ctx.expect_build_done(1).await;
    assert_eq!(ctx.log(&build, "greet").await, "+ echo ok\nok\n");
}

#[tokio::test]
async fn a_thousand_one_line_steps_cost_redis_little_more_than_their_records() {
    let ctx = Scenario::new().with_workers().start().await;
    // Five pipelines of 200 steps (the cap per pipeline): 1,000 steps in one build.
    let steps: String = (0..200).map(|i| format!("- name: s{i}\n  commands: [\"true\"]\n")).collect();
    let config: String =
        (0..5).map(|p| format!("---\nkind: pipeline\ntype: exec\nname: p{p}\nclone:\n  disable: true\nsteps:\n{steps}")).collect();
    let before = ctx.app.redis.info("total_net_input_bytes").await;

    // A thousand sandboxed processes, one after another: minutes on two busy cores.
    let (sha, build) = ctx.push_and_finish_within("main", &config, std::time::Duration::from_secs(300)).await;
    ctx.expect_check_run(&sha, "p4 (push)", Success).await;
    assert_eq!(build.status, Status::Success);
    let written = ctx.app.redis.info("total_net_input_bytes").await - before;
    assert!(written < 10 * 1024 * 1024, "{written} bytes sent to Redis for 1,000 steps");
}
