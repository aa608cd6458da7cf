//! The core path benchmark (not a timed test): `cargo bench --bench core_path`.
//!
//! 1. Intake throughput: signed, real-size (~28 KB) pull_request deliveries
//!    per second that `serve --no-worker` accepts with 202, each written to
//!    Redis (AOF, appendfsync always) before the answer. Load comes from
//!    `wrk` (Debian package `wrk`) on the same machine.
//! 2. Webhook → pending status latency at the fake GitHub, p50 and p99, one
//!    delivery at a time on an idle server.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use support::{FakeGitHub, ONE_ECHO_STEP, TestApp, Webhook};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Drives intake with `wrk` (a separate, efficient load generator: an
/// in-process Rust client took as much CPU as greenlight on 2 cores).
fn throughput(app: &TestApp, hook: &Webhook, seconds: u32, connections: u32) -> (f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, &hook.body).unwrap();
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nlocal f = io.open(\"{}\", \"rb\"); wrk.body = f:read(\"*all\"); f:close()\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"X-GitHub-Event\"] = \"pull_request\"\nwrk.headers[\"X-GitHub-Delivery\"] = \"{}\"\nwrk.headers[\"X-Hub-Signature-256\"] = \"{}\"\n",
            body.display(),
            hook.guid,
            hook.signature()
        ),
    )
    .unwrap();
    let out = std::process::Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "-s"])
        .arg(&script)
        .arg(format!("{}/webhook", app.url()))
        .output()
        .expect("wrk runs: install it with `apt-get install wrk`");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !text.contains("Non-2xx"), "wrk: {text}");
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in wrk output: {text}"))
    };
    let requests = text.lines().find_map(|l| l.trim().split_once(" requests in ")).map(|(n, _)| n.parse::<u64>().unwrap()).unwrap();
    (field("Requests/sec:"), requests)
}

async fn latency(app: &TestApp, github: &FakeGitHub, samples: usize) -> Vec<Duration> {
    let repo = github.repo("bench/latency");
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        // A branch each: a push to the same branch would cancel the previous
        // build (auto-cancel), and this measures an idle server.
        let branch = format!("b{i}");
        let sha = repo.push(&branch, &[(".drone.yml", ONE_ECHO_STEP), ("n.txt", &i.to_string())]);
        let hook = Webhook::push(&repo, &branch, &sha);
        let started = Instant::now();
        let answer = app.deliver(&hook).await;
        assert_eq!(answer.status, 202);
        github.wait_for(|| github.statuses(&repo, &sha).into_iter().find(|s| s.state == "pending")).await.expect("pending status");
        times.push(started.elapsed());
    }
    times.sort();
    times
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let github = FakeGitHub::start().await;
        let app = TestApp::start_durable(&github).await;
        let repo = github.repo("bench/throughput");
        let sha = repo.push("feature", &[(".drone.yml", ONE_ECHO_STEP)]);
        let hook = Webhook::pull_request(&repo, "opened", 1, "feature", &sha);
        // The planner runs meanwhile; keep its GitHub calls for these
        // deliveries cheap (an immediate 503) so it does not starve intake of CPU.
        github.fail(support::fake_github::FailRule {
            method: "GET",
            path_contains: "/repos/bench/throughput/contents".into(),
            status: 503,
            retry_after: Some(3600),
            after_apply: false,
            times: usize::MAX,
        });
        println!("payload: {} bytes, signed", hook.body.len());

        let before = app.queued_deliveries().await;
        let (rate, requests) = throughput(&app, &hook, 10, 32);
        let stored = app.queued_deliveries().await - before;
        // wrk does not count the requests still in flight when it stops.
        assert!(
            stored >= requests && stored <= requests + 32,
            "every accepted delivery is in the stream: {stored} stored, {requests} answered"
        );
        println!("intake: {rate:.0} deliveries/s accepted durably ({requests} deliveries in 10 s over 32 connections, all in the stream)");

        // Let the planner drain the burst before measuring an idle server.
        tokio::time::sleep(Duration::from_secs(8)).await;
        let times = latency(&app, &github, 200).await;
        println!(
            "webhook -> pending status: p50 {:.1} ms, p99 {:.1} ms (200 sequential deliveries)",
            percentile(&times, 0.50).as_secs_f64() * 1000.0,
            percentile(&times, 0.99).as_secs_f64() * 1000.0
        );
    });
}
