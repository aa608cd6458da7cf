//! What a step may ask for beyond its commands: its own `timeout`, a
//! `retry` of a flaky step, and `detach: true` services running beside the
//! steps after them. Real bwrap, real cgroups, the stage's network namespace.

mod support;

use greenlight::config::RunnerConfig;
use greenlight::runner::network::NetworkSettings;
use greenlight::store::Status;
use support::CheckRunState::{Cancelled, Failure, Queued, Success, TimedOut};
use support::{Ctx, Scenario, expect_process, leave_file_beside, processes_running, step_cgroups_of};

fn pipeline(steps: &str) -> String {
    format!("kind: pipeline\ntype: exec\nname: default\nsteps:\n{steps}")
}

#[tokio::test]
async fn a_flaky_step_passes_on_retry_and_its_log_shows_both_attempts() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps = pipeline(
        "- name: flaky\n  retry: 1\n  commands:\n  - if [ ! -e tried ]; then touch tried; echo first try fails; exit 1; fi\n  - echo second try passes\n",
    );

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;

    let run = ctx.expect_check_run(&sha, "default (push)", Success).await;
    let summary = run.summary.unwrap();
    assert!(summary.contains("| flaky | ✅ success (passed on retry 1) |"), "{summary}");
    let build = ctx.expect_build_done(1).await;
    let log = ctx.log(&build, "flaky").await;
    let first = log.find("first try fails\n").expect("the first attempt's output");
    let label = log.find("[greenlight] attempt 2 of 2 (the previous attempt exited 1)\n").expect("the second attempt labelled");
    let second = log.find("second try passes\n").expect("the second attempt's output");
    assert!(first < label && label < second, "{log}");
    let flaky = ctx.stage(&build).await.steps.into_iter().find(|s| s.name == "flaky").unwrap();
    assert_eq!((flaky.status, flaky.attempts), (Status::Success, 2));
}

#[tokio::test]
async fn a_step_that_always_fails_runs_once_plus_its_retries_then_fails() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps = pipeline("- name: broken\n  retry: 2\n  commands:\n  - echo ran >> runs\n  - wc -l < runs\n  - exit 3\n");

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;

    let run = ctx.expect_check_run(&sha, "default (push)", Failure).await;
    let summary = run.summary.unwrap();
    assert!(summary.contains("| broken | ❌ failure (exit 3, after 3 attempts) |"), "{summary}");
    let build = ctx.expect_build_done(1).await;
    let log = ctx.log(&build, "broken").await;
    assert!(log.contains("[greenlight] attempt 3 of 3 (the previous attempt exited 3)\n+ echo ran >> runs\n+ wc -l < runs\n3\n"), "{log}");
    assert!(!log.contains("attempt 4") && !log.contains("\n4\n"), "{log}");
    let broken = ctx.stage(&build).await.steps.into_iter().find(|s| s.name == "broken").unwrap();
    assert_eq!((broken.status, broken.exit_code, broken.attempts), (Status::Failure, 3, 3));
}

#[tokio::test]
async fn a_step_past_its_own_timeout_is_killed_while_its_neighbour_keeps_the_default() {
    let ctx = Scenario::new().with_workers().start().await;
    // `patient` waits for the lock `hangs` holds until it is killed: it
    // outlives the 2 s whatever the machine's load, and knows when to end.
    let steps = pipeline(
        "- name: setup\n  commands: [echo ready]\n\
         - name: hangs\n  depends_on: [setup]\n  timeout: 2s\n  commands:\n  - flock held sh -c 'touch locked; sleep 30'\n\
         - name: patient\n  depends_on: [setup]\n  commands:\n  - until [ -e locked ]; do sleep 0.1; done\n  - flock held echo hangs let go\n",
    );

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;

    let run = ctx.expect_check_run(&sha, "default (push)", TimedOut).await;
    let summary = run.summary.unwrap();
    assert!(summary.contains("Step `hangs` ran past its step timeout of 2s and was killed."), "{summary}");
    assert!(summary.contains("| patient | ✅ success |"), "{summary}");
    let build = ctx.expect_build_done(1).await;
    assert!(ctx.log(&build, "hangs").await.ends_with("[greenlight] step timed out after 2s and was killed\n"));
    assert!(ctx.log(&build, "patient").await.contains("hangs let go\n"));
    let stage = ctx.stage(&build).await;
    let ends: Vec<(&str, Status, &str)> = stage.steps.iter().map(|s| (s.name.as_str(), s.status, s.error.as_str())).collect();
    assert_eq!(ends[2..], [("hangs", Status::Failure, "timed out after 2s"), ("patient", Status::Success, "")]);
}

#[tokio::test]
async fn a_timeout_that_failure_ignore_forgives_leaves_the_stage_green() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps =
        pipeline("- name: optional\n  timeout: 1s\n  failure: ignore\n  commands: [sleep 30]\n- name: after\n  commands: [echo after]\n");

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;

    let run = ctx.expect_check_run(&sha, "default (push)", Success).await;
    let summary = run.summary.unwrap();
    assert!(summary.contains("| optional | ⚠️ failure (exit 137: timed out after 1s, ignored) |"), "{summary}");
    assert!(summary.contains("| after | ✅ success |"), "{summary}");
}

/// A web server as a service on `port`, and a step that fetches from it at
/// `localhost` (retrying until it answers) and then waits for `seen`, which
/// the test leaves once it has found the service's process.
fn web_service(port: u16) -> String {
    pipeline(&format!(
        "- name: web\n  detach: true\n  commands:\n  - python3 -u -m http.server {port} --bind 127.0.0.1\n\
         - name: fetch\n  commands:\n  - for i in $(seq 600); do python3 -c \"import urllib.request as u; print(u.urlopen('http://localhost:{port}/').status)\" && break; sleep 0.1; done\n  - until [ -e seen ]; do sleep 0.1; done\n"
    ))
}

/// Runs [`web_service`] on `port` to its end: the next step reached the
/// service, which was then stopped, its process and cgroup gone, its log kept.
async fn a_service_serves_the_next_step(ctx: &Ctx, port: u16) {
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &web_service(port))]).await;
    let builds = ctx.expect_builds(1).await;
    ctx.expect_log_contains(&builds[0], "fetch", "200\n").await;
    let needle = format!("http.server {port}");
    let server = expect_process(&needle).await;
    let cgroups = step_cgroups_of(server);
    assert!(!cgroups.is_empty() && cgroups.iter().all(|c| c.is_dir()), "the service runs in a step cgroup: {cgroups:?}");
    leave_file_beside(server, "seen");

    let run = ctx.expect_check_run(&sha, "default (push)", Success).await;
    let summary = run.summary.unwrap();
    assert!(summary.contains("| web | ✅ success |") && summary.contains("| fetch | ✅ success |"), "{summary}");
    let build = ctx.expect_build_done(1).await;
    let log = ctx.log(&build, "web").await;
    assert!(log.contains("\"GET / HTTP/1.1\" 200"), "the service's log is kept: {log}");
    assert!(log.ends_with("[greenlight] service stopped: the stage's other steps are done\n"), "{log}");
    assert!(!processes_running(&needle), "the service is gone");
    assert!(cgroups.iter().all(|c| !c.exists()), "its cgroup is gone: {cgroups:?}");
}

#[tokio::test]
async fn a_service_is_reachable_from_the_next_step_and_gone_after_the_stage() {
    let ctx = Scenario::new().with_workers().start().await;
    a_service_serves_the_next_step(&ctx, 8642).await;
}

#[tokio::test]
async fn a_service_is_reachable_at_localhost_on_the_host_network_and_with_none() {
    for mode in ["host", "none"] {
        let runner = RunnerConfig { network: NetworkSettings::parse(mode, "").unwrap(), ..support::app::runner_config() };
        let ctx = Scenario::new().runner(runner).start().await;
        // On the host's network the port is the machine's: one nobody else here uses.
        let port = free_port();
        a_service_serves_the_next_step(&ctx, port).await;
    }
}

/// A TCP port on 127.0.0.1 that is free right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn a_service_that_exits_early_with_a_failure_fails_the_stage() {
    let ctx = Scenario::new().with_workers().start().await;
    // `test` ends only after the service has exited (it leaves `tried` just
    // before), so the service's own end comes before greenlight would stop it.
    let steps = pipeline(
        "- name: db\n  detach: true\n  commands: [echo cannot start >&2, touch tried, exit 1]\n\
         - name: test\n  commands: ['until [ -e tried ]; do sleep 0.1; done']\n",
    );

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;

    let run = ctx.expect_check_run(&sha, "default (push)", Failure).await;
    let summary = run.summary.unwrap();
    assert!(summary.contains("| db | ❌ failure (exit 1) |"), "{summary}");
    let build = ctx.expect_build_done(1).await;
    assert_eq!(build.status, Status::Failure);
    assert!(ctx.log(&build, "db").await.contains("cannot start\n"));
}

#[tokio::test]
async fn cancelling_during_a_retry_stops_it_and_leaves_nothing_running() {
    let ctx = Scenario::new().with_workers().start().await;
    let marker = format!("38{}.5", std::process::id());
    let steps = pipeline(&format!(
        "- name: flaky\n  retry: 5\n  commands:\n  - if [ ! -e tried ]; then touch tried; exit 1; fi\n  - sleep {marker}\n"
    ));

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;
    let builds = ctx.expect_builds(1).await;
    ctx.expect_log_contains(&builds[0], "flaky", "[greenlight] attempt 2 of 6").await;
    expect_process(&format!("sleep {marker}")).await;
    ctx.cancel(1).await;

    ctx.expect_check_run(&sha, "default (push)", Cancelled).await;
    let build = ctx.expect_build_done(1).await;
    let log = ctx.log(&build, "flaky").await;
    assert!(log.ends_with("[greenlight] step cancelled and killed\n") && !log.contains("attempt 3"), "{log}");
    assert!(!processes_running(&format!("sleep {marker}")));
    let flaky = ctx.stage(&build).await.steps.into_iter().find(|s| s.name == "flaky").unwrap();
    assert_eq!((flaky.status, flaky.attempts), (Status::Killed, 2));
}

#[tokio::test]
async fn cancelling_while_a_service_runs_stops_it_and_its_cgroup() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps = pipeline(
        "- name: web\n  detach: true\n  commands: [python3 -u -m http.server 8643 --bind 127.0.0.1]\n\
         - name: wait\n  commands: ['until [ -e ../never ]; do sleep 0.1; done']\n",
    );

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;
    let server = expect_process("http.server 8643").await;
    let cgroups = step_cgroups_of(server);
    assert!(!cgroups.is_empty(), "the service runs in a step cgroup");
    ctx.cancel(1).await;

    ctx.expect_check_run(&sha, "default (push)", Cancelled).await;
    let build = ctx.expect_build_done(1).await;
    assert_eq!(build.status, Status::Killed);
    assert!(ctx.log(&build, "web").await.ends_with("[greenlight] step cancelled and killed\n"));
    assert!(!processes_running("http.server 8643"), "the service is gone");
    assert!(cgroups.iter().all(|c| !c.exists()), "its cgroup is gone: {cgroups:?}");
}

#[tokio::test]
async fn a_worker_handing_its_stage_back_stops_its_services() {
    let ctx = Scenario::new().start().await;
    let mut leaving = ctx.start_worker_process(1);
    let service = "- name: web\n  detach: true\n  commands: [python3 -u -m http.server 8644 --bind 127.0.0.1]\n";
    let steps = leaving.pipeline_stuck_here().replace("steps:\n", &format!("steps:\n{service}"));

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;
    let server = expect_process("http.server 8644").await;
    let cgroups = step_cgroups_of(server);
    assert!(!cgroups.is_empty(), "the service runs in a step cgroup");
    let clean = tokio::task::spawn_blocking(move || leaving.terminate()).await.unwrap();

    assert!(clean, "the worker exits cleanly");
    assert_eq!(ctx.check_runs(&sha).pop().unwrap().state, Queued, "handed back");
    assert!(!processes_running("http.server 8644"), "the service is gone with the stage");
    assert!(cgroups.iter().all(|c| !c.exists()), "its cgroup is gone: {cgroups:?}");
    let _staying = ctx.start_worker_process(30);
    ctx.expect_check_run(&sha, "default (push)", Success).await;
    assert!(!processes_running("http.server 8644"), "and gone after the stage ran again");
}
