//! Restart and cancel through the Drone API, and the live streams.

mod support;

use greenlight::store::Status;
use std::time::Duration;
use support::CheckRunState::{Cancelled, InProgress, Queued, Success, TimedOut};
use support::app::runner_config;
use support::{ONE_ECHO_STEP, Scenario, StatusState};

const SLOW: &str =
    "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: slow\n  commands:\n  - echo starting\n  - sleep 30\n  - echo never\n";

#[tokio::test]
async fn restart_makes_a_new_build_with_its_parent_published_to_github() {
    let ctx = Scenario::new().with_workers().start().await;
    let (sha, _) = ctx.push_and_finish("main", ONE_ECHO_STEP).await;

    let guest = ctx.guest().restart(1).await;
    let restarted = ctx.restart(1).await;

    assert_eq!(guest.status, 401);
    assert_eq!(restarted.status, 200, "{:?}", restarted.body);
    assert_eq!((restarted.body["number"].as_i64(), restarted.body["parent"].as_i64()), (Some(2), Some(1)));
    assert_eq!((restarted.body["after"].as_str(), restarted.body["event"].as_str()), (Some(sha.as_str()), Some("push")));
    assert_eq!(restarted.body["trigger"], "admin");
    let build = ctx.expect_build_done(2).await;
    assert_eq!(build.status, Status::Success);
    let runs = ctx.check_runs(&sha);
    assert_eq!(runs.len(), 2, "the restart has its own check run");
    assert_eq!(runs[1].details_url.as_deref(), Some("http://greenlight.test/acme/widget/2"));
    assert_eq!(runs[1].state, Success);
}

#[tokio::test]
async fn cancel_kills_the_running_step_and_the_check_run_ends_cancelled() {
    let ctx = Scenario::new().with_workers().start().await;
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", SLOW)]).await;
    ctx.expect_check_run(&sha, "default (push)", InProgress).await;
    let build = ctx.expect_builds(1).await.remove(0);
    ctx.expect_log_contains(&build, "slow", "starting").await;

    let guest = ctx.guest().cancel(1).await;
    let cancelled = ctx.cancel(1).await;

    assert_eq!(guest.status, 401);
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["status"], "killed");
    assert!(cancelled.body["stages"].is_array(), "the build comes with its stages");
    let run = ctx.expect_check_run(&sha, "default (push)", Cancelled).await;
    assert!(run.completed_at.is_some());
    let status = ctx.expect_status(&sha, "greenlight/default/push", StatusState::Error).await;
    assert!(status.description.contains("cancelled"), "{}", status.description);
    let build = ctx.expect_build_done(1).await;
    assert_eq!(build.status, Status::Killed);
    let stage = ctx.stage(&build).await;
    assert_eq!(stage.steps[1].status, Status::Killed);
    assert!(!ctx.log(&build, "slow").await.contains("never"));
    assert!(ctx.log(&build, "slow").await.ends_with("[greenlight] step cancelled and killed\n"));
}

#[tokio::test]
async fn cancelling_a_queued_build_skips_its_stages() {
    let ctx = Scenario::new().start().await;
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", ONE_ECHO_STEP)]).await;
    ctx.expect_check_run(&sha, "default (push)", Queued).await;

    let cancelled = ctx.cancel(1).await;

    assert_eq!(cancelled.body["status"], "killed");
    assert_eq!(cancelled.body["stages"][0]["status"], "skipped");
    ctx.expect_check_run(&sha, "default (push)", Cancelled).await;
    assert_eq!(ctx.expect_build_done(1).await.status, Status::Killed);
}

#[tokio::test]
async fn a_running_steps_log_streams_live_with_drones_framing() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: ticker\n  commands:\n  - for i in 1 2 3; do echo tick $i; sleep 1; done\n";
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", steps)]).await;
    ctx.expect_check_run(&sha, "default (push)", InProgress).await;

    let mut stream = ctx.guest().log_stream(1, 1, 2).await;
    assert_eq!(stream.content_type, "text/event-stream");
    let text = stream.read_until("data: eof").await;

    assert!(text.starts_with(": ping\n\n"), "{text}");
    assert!(text.contains(r#"data: {"pos":0,"out":"+ for i in 1 2 3; do echo tick $i; sleep 1; done\n","time":0}"#), "{text}");
    let ticks: Vec<usize> = (1..=3).map(|i| text.find(&format!("tick {i}\\n")).expect("every tick")).collect();
    assert!(ticks.windows(2).all(|w| w[0] < w[1]));
    assert!(text.ends_with("event: error\ndata: eof\n\n"), "{text}");
}

#[tokio::test]
async fn the_build_stream_sends_repositories_with_their_build() {
    let ctx = Scenario::new().with_workers().start().await;
    let sha = ctx.push_pipeline("main", ONE_ECHO_STEP);
    let mut stream = ctx.guest().build_events().await;

    ctx.deliver_push("main", &sha).await;
    let text = stream.read_until(r#""status":"success","event":"push""#).await;

    assert!(text.starts_with(": ping\n\n"));
    let last = text.lines().filter_map(|l| l.strip_prefix("data: ")).next_back().unwrap();
    let event: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(event["slug"], "acme/widget");
    assert_eq!(event["build"]["number"], 1);
    assert_eq!(event["build"]["stages"][0]["steps"][1]["name"], "greet");
}

#[tokio::test]
async fn two_hundred_followers_of_one_step_share_one_redis_reader() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: waiter\n  commands:\n  - echo started\n  - while [ ! -e go ]; do sleep 0.05; done\n  - echo after\n";
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", steps)]).await;
    ctx.expect_check_run(&sha, "default (push)", InProgress).await;
    let before = ctx.app.redis.info("connected_clients").await;

    // One after the other, so the requests themselves never need more pooled connections.
    let guest = ctx.guest();
    let mut streams = Vec::new();
    for _ in 0..200 {
        let mut stream = guest.log_stream(1, 1, 2).await;
        stream.read_until("started\\n").await;
        streams.push(stream);
    }
    let during = ctx.app.redis.info("connected_clients").await;
    assert!(during <= before + 3, "{before} Redis clients before, {during} with 200 followers");

    let build = ctx.app.store().build_by_number(greenlight::ids::RepoId(ctx.repo.id), 1).await.unwrap().unwrap();
    let workspace = greenlight::runner::workspace::checkout_of(&ctx.app.data_dir.path().join("workspaces"), build.stages[0]);
    std::fs::write(workspace.join("go"), "").unwrap();
    for stream in &mut streams {
        let text = stream.read_until("data: eof").await;
        assert!(text.contains("after\\n"), "{text}");
    }
}

#[tokio::test]
async fn one_client_cannot_hold_more_streams_than_its_cap() {
    let ctx = Scenario::new().start().await;
    let guest = ctx.guest();
    let streams = futures::future::join_all((0..greenlight::api::MAX_STREAMS_PER_CLIENT).map(|_| guest.build_events())).await;
    assert!(streams.iter().all(|s| s.status == 200));

    let refused = guest.build_events().await;
    assert_eq!(refused.status, 429, "one stream past the cap is refused");
    drop(streams);
    support::wait::until("a slot to free up", || async { (guest.build_events().await.status == 200).then_some(()) }).await;
}

#[tokio::test]
async fn a_step_timeout_above_the_operators_cap_gets_the_cap_and_the_check_run_says_so() {
    let cap = greenlight::config::RunnerConfig { max_step_timeout: Duration::from_secs(2), ..runner_config() };
    let ctx = Scenario::new().runner(cap).start().await;
    let steps =
        "kind: pipeline\ntype: exec\nname: default\ngreenlight:\n  step_timeout: 10h\nsteps:\n- name: slow\n  commands:\n  - sleep 60\n";
    let started = std::time::Instant::now();

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", steps)]).await;
    let run = ctx.expect_check_run(&sha, "default (push)", TimedOut).await;

    assert!(started.elapsed() < Duration::from_secs(45), "killed at the cap, not after 60 s: {:?}", started.elapsed());
    let summary = run.summary.unwrap_or_default();
    assert!(
        summary.contains("asks for a step timeout of 36000s; this worker allows at most 2s (GREENLIGHT_MAX_STEP_TIMEOUT)"),
        "{summary}"
    );
}
