//! Per-step limits hold on the step's whole process tree, through real
//! cgroups: memory, processes and CPU; the worker survives what a step does
//! at its limits, and check runs say when limits are off. The same tests
//! run again in a VM whose only hierarchy is cgroup v2 (see `support::vm`).

mod support;

use greenlight::config::RunnerConfig;
use greenlight::runner::limits::StepLimits;
use greenlight::store::Status;
use support::CheckRunState::{Failure, InProgress, Success};
use support::{Scenario, processes_with};

fn with_limits(limits: Option<StepLimits>) -> RunnerConfig {
    RunnerConfig { limits, ..support::app::runner_config() }
}

fn one_step(name: &str, commands: &[&str]) -> String {
    let commands: String = commands.iter().map(|c| format!("  - {c}\n")).collect();
    format!("kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: {name}\n  commands:\n{commands}")
}

#[tokio::test]
async fn a_step_over_its_memory_limit_fails_saying_so_and_the_worker_goes_on() {
    let limits = StepLimits { memory: 64 << 20, ..StepLimits::default() };
    let ctx = Scenario::new().runner(with_limits(Some(limits))).start().await;
    // 512 MiB written (not just reserved), eight times the limit.
    let hog = one_step("hog", &["python3 -c \"x = b'a' * (512 * 1024 * 1024); print('allocated')\""]);

    let (sha, build) = ctx.push_and_finish("main", &hog).await;
    let run = ctx.expect_check_run(&sha, "default (push)", Failure).await;
    let log = ctx.log(&build, "hog").await;
    assert!(log.contains("[greenlight] killed: out of memory (limit 64 MiB)"), "{log}");
    assert!(!log.lines().any(|l| l == "allocated"), "{log}");
    let summary = run.summary.unwrap_or_default();
    assert!(summary.contains("killed: out of memory (limit 64 MiB)"), "{summary}");

    let (next, build) = ctx.push_and_finish("main", support::ONE_ECHO_STEP).await;
    ctx.expect_check_run(&next, "default (push)", Success).await;
    assert_eq!(build.status, Status::Success, "greenlight and its Redis still run builds");
}

#[tokio::test]
async fn a_step_cannot_start_more_processes_than_its_limit_and_none_outlives_it() {
    let limits = StepLimits { pids: 32, ..StepLimits::default() };
    let ctx = Scenario::new().runner(with_limits(Some(limits))).start().await;
    let marker = format!("36{}.5", std::process::id());
    let spawn = format!("i=0; while [ $i -lt 200 ]; do sleep {marker} & i=$((i+1)); done; echo started all");
    let forker = one_step("forker", &[&spawn]);

    let (sha, build) = ctx.push_and_finish("main", &forker).await;
    ctx.expect_check_run(&sha, "default (push)", Failure).await;
    let log = ctx.log(&build, "forker").await;
    assert!(log.contains("Cannot fork") || log.contains("Resource temporarily unavailable"), "{log}");
    assert!(!log.lines().any(|l| l == "started all"), "{log}");
    support::wait::until("the step's processes to be gone", || async { processes_with(&marker).is_empty().then_some(()) }).await;
}

#[tokio::test]
async fn a_steps_cpu_quota_and_memory_limit_are_on_its_cgroup_while_it_runs() {
    let limits = StepLimits { memory: 256 << 20, pids: 100, cpus: Some(0.5) };
    let ctx = Scenario::new().runner(with_limits(Some(limits))).start().await;
    let marker = format!("37{}.5", std::process::id());
    let sha = ctx.push_pipeline("main", &one_step("busy", &[&format!("sleep {marker}")]));
    ctx.deliver_push("main", &sha).await;
    ctx.expect_check_run(&sha, "default (push)", InProgress).await;

    let sleeper = support::wait::until("the step to run", || async { processes_with(&marker).first().copied() }).await;
    let cgroups = std::fs::read_to_string(format!("/proc/{sleeper}/cgroup")).unwrap();
    let path = |controller: &str| {
        let line = cgroups.lines().find(|l| l.split(':').nth(1).is_some_and(|c| c.split(',').any(|c| c == controller)));
        line.map(|l| format!("/sys/fs/cgroup/{controller}{}", l.splitn(3, ':').nth(2).unwrap()))
    };
    let read = |dir: &str, file: &str| std::fs::read_to_string(format!("{dir}/{file}")).unwrap().trim().to_string();
    match (path("memory"), path("pids"), path("cpu")) {
        (Some(memory), Some(pids), Some(cpu)) => {
            assert_eq!(read(&memory, "memory.limit_in_bytes"), (256u64 << 20).to_string());
            assert_eq!(read(&pids, "pids.max"), "100");
            assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
            assert!(cpu.contains("/greenlight-"), "in greenlight's step cgroup: {cpu}");
        }
        _ => {
            let unified = cgroups.lines().find_map(|l| l.strip_prefix("0::")).expect("a cgroup v2 path");
            let dir = format!("/sys/fs/cgroup{unified}");
            assert_eq!(read(&dir, "memory.max"), (256u64 << 20).to_string());
            assert_eq!(read(&dir, "pids.max"), "100");
            assert_eq!(read(&dir, "cpu.max"), "50000 100000");
        }
    }
    ctx.cancel(1).await;
    support::wait::until("the step's processes to be gone", || async { processes_with(&marker).is_empty().then_some(()) }).await;
}

#[tokio::test]
async fn check_runs_say_when_steps_ran_without_limits() {
    let ctx = Scenario::new().runner(with_limits(None)).start().await;

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", support::ONE_ECHO_STEP)]).await;
    let run = ctx.expect_check_run(&sha, "default (push)", Success).await;
    let summary = run.summary.unwrap_or_default();
    assert!(summary.contains("WITHOUT resource limits (`GREENLIGHT_STEP_LIMITS=off`)"), "{summary}");
}

/// This machine has a hybrid hierarchy (v1 controllers); current
/// distributions and containers have only cgroup v2, where greenlight
/// finds its delegated cgroup, moves its own processes into a leaf and
/// enables the controllers for its steps. Every test above runs again in
/// a VM with only cgroup v2, inside a delegated unit cgroup as systemd
/// makes one.
#[test]
fn the_tests_above_pass_on_a_host_with_only_cgroup_v2() {
    let me = "the_tests_above_pass_on_a_host_with_only_cgroup_v2";
    let exe = std::env::current_exe().unwrap().to_string_lossy().into_owned();
    let command: Vec<String> = [exe.as_str(), "--skip", me, "--test-threads", "1"].map(String::from).to_vec();

    // The VM emulates its CPU (TCG), many times slower than the host: its tests wait longer.
    let env = [("RUST_BACKTRACE", "1"), ("GREENLIGHT_TEST_SLOWDOWN", "6")];
    let run = support::vm::run(&command, &env, std::time::Duration::from_secs(1500));

    let console = &run.console;
    let results: Vec<&str> = console.lines().filter(|l| l.starts_with("test ") || l.starts_with("greenlight-vm")).collect();
    eprintln!("in the cgroup v2 VM:\n{}", results.join("\n"));
    assert!(
        console.contains("greenlight-vm: cgroup 0::/system.slice/greenlight.service, controllers cpu memory pids"),
        "the VM has only cgroup v2, the tests in a delegated cgroup:\n{console}"
    );
    assert!(console.contains("test result: ok. 4 passed; 0 failed"), "{console}");
    assert_eq!(run.exit, Some(0), "{console}");
}
