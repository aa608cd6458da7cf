//! `greenlight exec`: a local checkout's pipeline in the same sandbox.

use std::process::{Command, Output};

fn exec(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .arg("exec")
        .arg(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("greenlight runs")
}

fn sample() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample-repo")
}

#[test]
fn the_sample_repository_passes_with_live_step_output_and_a_summary() {
    let out = exec(&sample(), &[]);
    let text = String::from_utf8_lossy(&out.stdout);

    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("--> step build\n[build] + mkdir -p out\n"), "{text}");
    assert!(text.contains("[test] greeting checked in /drone/src for event push\n"), "{text}");
    assert!(text.contains("default / skipped-on-push: skipped"), "{text}");
    assert!(text.ends_with("pipeline passed\n"), "{text}");
    assert!(!sample().join("out").exists(), "steps write into a copy, not the checkout");
}

#[test]
fn a_failing_pipeline_exits_non_zero_and_says_which_step_failed() {
    let out = exec(&sample(), &["--pipeline", "failing"]);
    let text = String::from_utf8_lossy(&out.stdout);

    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("[broken] about to fail\n[broken] + exit 4\n"), "{text}");
    assert!(text.contains("failing / broken: failure (exit 4)"), "{text}");
}

#[test]
fn event_and_branch_choose_the_pipelines_and_steps() {
    let out = exec(&sample(), &["--event", "tag", "--branch", "v1.0.0"]);
    let text = String::from_utf8_lossy(&out.stdout);

    assert_eq!(out.status.code(), Some(1), "the failing pipeline runs on tags: {text}");
    assert!(text.contains("[skipped-on-push] only on tags"), "{text}");
    assert!(text.contains("==> pipeline failing"), "{text}");
}

#[test]
fn a_broken_pipeline_file_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".drone.yml"), "kind: pipeline\ntype: exec\nsteps:\n- name: a\n  comand: [x]\n").unwrap();

    let out = exec(dir.path(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);

    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains(".drone.yml: line 5, column 3: steps[0]: unknown field `comand`"), "{err}");
}

#[test]
fn an_unknown_pipeline_name_lists_the_real_ones() {
    let out = exec(&sample(), &["--pipeline", "nope"]);
    let err = String::from_utf8_lossy(&out.stderr);

    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("no pipeline named \"nope\" (there are: default, failing)"), "{err}");
}

#[test]
fn services_retries_and_step_timeouts_work_as_on_a_worker() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let pipeline = format!(
        "kind: pipeline\ntype: exec\nname: default\nsteps:\n\
         - name: web\n  detach: true\n  commands: [python3 -u -m http.server {port} --bind 127.0.0.1]\n\
         - name: flaky\n  retry: 1\n  commands:\n  - for i in $(seq 600); do python3 -c \"import urllib.request as u; u.urlopen('http://localhost:{port}/')\" && break; sleep 0.1; done\n  - if [ ! -e tried ]; then touch tried; exit 1; fi\n\
         - name: slow\n  timeout: 1s\n  failure: ignore\n  commands: [sleep 30]\n"
    );
    std::fs::write(dir.path().join(".drone.yml"), pipeline).unwrap();

    let out = exec(dir.path(), &[]);
    let text = String::from_utf8_lossy(&out.stdout);

    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("[flaky] [greenlight] attempt 2 of 2 (the previous attempt exited 1)\n"), "{text}");
    assert!(text.contains("default / flaky: success (passed on retry 1)"), "{text}");
    assert!(text.contains("[web] [greenlight] service stopped: the stage's other steps are done\n"), "{text}");
    assert!(text.contains("default / web: success"), "{text}");
    assert!(text.contains("[slow] [greenlight] step timed out after 1s and was killed\n"), "{text}");
    assert!(text.ends_with("pipeline passed\n"), "{text}");
}
