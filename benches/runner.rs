//! The runner benchmark (not a timed test): `cargo bench --bench runner`.
//!
//! 1. Sandboxed step overhead: a 50-step pipeline of `true` against a 1-step one.
//! 2. Webhook → success for a one-step `echo ok` pipeline, clone included (p50, p99).
//! 3. Log throughput of one step printing 200 MB, and the process's peak memory.

#[path = "../tests/support/mod.rs"]
mod support;

/// The allocator of the `greenlight` binary (see `src/main.rs`), so the
/// CPU measured here is the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use greenlight::pipeline::{Facts, parse};
use greenlight::runner::limits::StepLimits;
use greenlight::runner::network::{NetworkSettings, StageNetwork};
use greenlight::runner::sandbox::{Sandbox, SandboxOptions};
use greenlight::runner::schedule;
use greenlight::runner::step::{self, StepSpec};
use std::time::{Duration, Instant};
use support::{FakeGitHub, ONE_ECHO_STEP, TestApp, Webhook};
use tokio_util::sync::CancellationToken;

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches(" kB").trim().parse().unwrap();
    kb / 1024.0
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB").trim().parse().unwrap();
    kb / 1024.0
}

async fn run_pipeline(sandbox: &Sandbox, workspace: &std::path::Path, network: Option<&StageNetwork>, steps: usize) -> Duration {
    let yaml = format!(
        "kind: pipeline\ntype: exec\nsteps:\n{}",
        (0..steps).map(|i| format!("- name: s{i}\n  commands: [\"true\"]\n")).collect::<String>()
    );
    let pipeline = parse(&yaml).unwrap().pipelines.remove(0);
    let facts = Facts { event: "push", branch: "main", git_ref: "refs/heads/main", action: "", repo: "bench/steps", changed: None };
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let outcomes = schedule::execute(&pipeline.steps, &facts, &cancel, &CancellationToken::new(), |i| {
        let spec = StepSpec {
            commands: pipeline.steps[i].commands.clone(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            timeout: Duration::from_secs(60),
        };
        let cancel = cancel.clone();
        async move {
            let (lines, mut rx) = tokio::sync::mpsc::channel(64);
            let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
            let (ending, _summary) = step::run(sandbox, (workspace, &[]), &spec, network, &lines, &cancel).await;
            drop(lines);
            drain.await.unwrap();
            ending.outcome(spec.timeout).0
        }
    })
    .await;
    assert!(outcomes.iter().all(|o| o.exit_code == 0));
    started.elapsed()
}

async fn step_overhead() {
    let isolated = NetworkSettings::parse("isolated", "").unwrap();
    let configurations = [
        ("without limits, host network", None, NetworkSettings::host()),
        ("with cgroup limits, host network", Some(StepLimits::default()), NetworkSettings::host()),
        ("with cgroup limits, isolated network", Some(StepLimits::default()), isolated),
    ];
    for (what, limits, network) in configurations {
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
        let options = SandboxOptions { limits, network, ..SandboxOptions::default() };
        let sandbox = Sandbox::probe(&options, root.path()).await.expect("bwrap and cgroups work here");
        let workspace = root.path().join("ws");
        std::fs::create_dir(&workspace).unwrap();
        sandbox.give(&workspace).unwrap();
        // One network per stage, as the worker makes it (its setup is per stage, not per step).
        let network = sandbox.stage_network().await.expect("the stage network starts");
        let network = Some(&network);
        let _warm = run_pipeline(&sandbox, &workspace, network, 5).await;
        let mut per_step = Vec::new();
        for _ in 0..5 {
            let one = run_pipeline(&sandbox, &workspace, network, 1).await;
            let fifty = run_pipeline(&sandbox, &workspace, network, 50).await;
            per_step.push((fifty.as_secs_f64() - one.as_secs_f64()) / 49.0 * 1000.0);
        }
        per_step.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("sandboxed step overhead {what}: {:.1} ms per step (median of 5 runs of 50 steps against 1)", per_step[2]);
    }
}

async fn webhook_to_success(github: &FakeGitHub, app: &TestApp) {
    let repo = github.repo("bench/echo");
    let mut times = Vec::new();
    for i in 0..30 {
        let sha = repo.push("main", &[(".drone.yml", ONE_ECHO_STEP), ("n.txt", &i.to_string())]);
        let started = Instant::now();
        assert_eq!(app.deliver(&Webhook::push(&repo, "main", &sha)).await.status, 202);
        github
            .wait_for(|| github.statuses(&repo, &sha).into_iter().find(|s| s.state == support::fake_github::StatusState::Success))
            .await
            .expect("success");
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "webhook -> success (one `echo ok` step, clone included): p50 {:.0} ms, p99 {:.0} ms (30 builds)",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[times.len() * 99 / 100].as_secs_f64() * 1000.0
    );
}

async fn log_throughput(github: &FakeGitHub, app: &TestApp) {
    let repo = github.repo("bench/chatty");
    let pipeline = "kind: pipeline\ntype: exec\nname: default\nclone:\n  disable: true\nsteps:\n- name: chatty\n  commands:\n  - yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456 | head -c 200000000\n";
    let sha = repo.push("main", &[(".drone.yml", pipeline)]);
    let before = rss_mb();
    let started = Instant::now();
    app.deliver(&Webhook::push(&repo, "main", &sha)).await;
    github
        .wait_for(|| github.statuses(&repo, &sha).into_iter().find(|s| s.state == support::fake_github::StatusState::Success))
        .await
        .expect("success");
    let build = app.expect_build_done(repo.id, 1).await;
    let stage = app.stage(&build).await;
    let step_secs = (stage.steps[0].stopped - stage.steps[0].started).max(1) as f64;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "log throughput: 200 MB in {elapsed:.2} s from webhook to success = {:.0} MB/s (step clock: {step_secs:.0} s); memory: {before:.0} MiB before, peak {:.0} MiB, {:.0} MiB after",
        200.0 / elapsed,
        peak_rss_mb(),
        rss_mb()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        step_overhead().await;
        let github = FakeGitHub::start().await;
        let app = TestApp::with_workers(&github).await;
        webhook_to_success(&github, &app).await;
        log_throughput(&github, &app).await;
    });
}
