//! Restart and cancel through the Drone API, and the live streams.

mod support;

use support::{FakeGitHub, ONE_ECHO_STEP, TestApp, Webhook};

const SLOW: &str =
    "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: slow\n  commands:\n  - echo starting\n  - sleep 30\n  - echo never\n";

#[tokio::test]
async fn restart_makes_a_new_build_with_its_parent_published_to_github() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let app = TestApp::with_workers(&github).await;
    let (sha, _) = app.push_and_finish(&repo, "main", ONE_ECHO_STEP).await;

    let guest = app.api("POST", "/api/repos/acme/widget/builds/1", false).await;
    let restarted = app.api("POST", "/api/repos/acme/widget/builds/1", true).await;

    assert_eq!(guest.status, 401);
    assert_eq!(restarted.status, 200, "{:?}", restarted.body);
    assert_eq!((restarted.body["number"].as_i64(), restarted.body["parent"].as_i64()), (Some(2), Some(1)));
    assert_eq!((restarted.body["after"].as_str(), restarted.body["event"].as_str()), (Some(sha.as_str()), Some("push")));
    assert_eq!(restarted.body["trigger"], "admin");
    let build = app.expect_build_done(repo.id, 2).await;
    assert_eq!(build.status, greenlight::store::Status::Success);
    let runs = github.check_runs(&repo, &sha);
    assert_eq!(runs.len(), 2, "the restart has its own check run");
    assert_eq!(runs[1].details_url.as_deref(), Some("http://greenlight.test/acme/widget/2"));
    assert_eq!(runs[1].conclusion.as_deref(), Some("success"));
}

#[tokio::test]
async fn cancel_kills_the_running_step_and_the_check_run_ends_cancelled() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", SLOW)]);
    let app = TestApp::with_workers(&github).await;
    app.deliver(&Webhook::push(&repo, "main", &sha)).await;
    github.expect_check_run(&repo, &sha, "default (push)", "in_progress").await;
    let build = app.expect_builds(repo.id, 1).await.remove(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !app.log(&build, "slow").await.contains("starting") {
        assert!(std::time::Instant::now() < deadline, "the step never started");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let guest = app.api("DELETE", "/api/repos/acme/widget/builds/1", false).await;
    let cancelled = app.api("DELETE", "/api/repos/acme/widget/builds/1", true).await;

    assert_eq!(guest.status, 401);
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["status"], "killed");
    assert!(cancelled.body["stages"].is_array(), "the build comes with its stages");
    let run = github.expect_check_run(&repo, &sha, "default (push)", "cancelled").await;
    assert!(run.completed_at.is_some());
    let status = github.expect_status(&repo, &sha, "greenlight/default/push", "error").await;
    assert!(status.description.contains("cancelled"), "{}", status.description);
    let build = app.expect_build_done(repo.id, 1).await;
    assert_eq!(build.status, greenlight::store::Status::Killed);
    let stage = app.stage(&build).await;
    assert_eq!(stage.steps[1].status, greenlight::store::Status::Killed);
    assert!(!app.log(&build, "slow").await.contains("never"));
    assert!(app.log(&build, "slow").await.ends_with("[greenlight] step cancelled and killed\n"));
}

#[tokio::test]
async fn cancelling_a_queued_build_skips_its_stages() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    let app = TestApp::start(&github).await;
    app.deliver(&Webhook::push(&repo, "main", &sha)).await;
    github.expect_check_run(&repo, &sha, "default (push)", "queued").await;

    let cancelled = app.api("DELETE", "/api/repos/acme/widget/builds/1", true).await;

    assert_eq!(cancelled.body["status"], "killed");
    assert_eq!(cancelled.body["stages"][0]["status"], "skipped");
    github.expect_check_run(&repo, &sha, "default (push)", "cancelled").await;
    assert_eq!(app.expect_build_done(repo.id, 1).await.status, greenlight::store::Status::Killed);
}

/// Reads an SSE response until `eof` (or `limit` bytes); returns the raw text.
async fn read_sse(response: reqwest::Response, until: &str) -> String {
    use futures::StreamExt;
    let mut text = String::new();
    let mut body = response.bytes_stream();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !text.contains(until) {
        let chunk = tokio::time::timeout_at(deadline, body.next()).await.expect("stream went quiet").expect("stream ended").unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

#[tokio::test]
async fn a_running_steps_log_streams_live_with_drones_framing() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let steps = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: ticker\n  commands:\n  - for i in 1 2 3; do echo tick $i; sleep 1; done\n";
    let sha = repo.push("main", &[(".drone.yml", steps)]);
    let app = TestApp::with_workers(&github).await;
    app.deliver(&Webhook::push(&repo, "main", &sha)).await;
    github.expect_check_run(&repo, &sha, "default (push)", "in_progress").await;

    let response = reqwest::get(format!("{}/api/stream/acme/widget/1/1/2", app.url())).await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = read_sse(response, "data: eof").await;

    assert!(text.starts_with(": ping\n\n"), "{text}");
    assert!(text.contains(r#"data: {"pos":0,"out":"+ for i in 1 2 3; do echo tick $i; sleep 1; done\n","time":0}"#), "{text}");
    let ticks: Vec<usize> = (1..=3).map(|i| text.find(&format!("tick {i}\\n")).expect("every tick")).collect();
    assert!(ticks.windows(2).all(|w| w[0] < w[1]));
    assert!(text.ends_with("event: error\ndata: eof\n\n"), "{text}");
}

#[tokio::test]
async fn the_build_stream_sends_repositories_with_their_build() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let sha = repo.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    let app = TestApp::with_workers(&github).await;
    let response = reqwest::get(format!("{}/api/stream", app.url())).await.unwrap();

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;
    let text = read_sse(response, r#""status":"success","event":"push""#).await;

    assert!(text.starts_with(": ping\n\n"));
    let last = text.lines().filter_map(|l| l.strip_prefix("data: ")).next_back().unwrap();
    let event: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(event["slug"], "acme/widget");
    assert_eq!(event["build"]["number"], 1);
    assert_eq!(event["build"]["stages"][0]["steps"][1]["name"], "greet");
}
