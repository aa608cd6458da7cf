//! Real clients against a running greenlight: drone-node (npm, pinned in
//! tests/js) and a headless Chromium on the build page.

mod support;

use std::path::PathBuf;
use support::CheckRunState::{Cancelled, InProgress};
use support::app::API_TOKEN;
use support::{ONE_ECHO_STEP, Scenario};

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// Runs a script of tests/js with node; fails, saying what to install, when something is missing.
async fn node(script: &str, env: &[(&str, String)]) -> serde_json::Value {
    assert!(js_dir().join("node_modules").exists(), "tests/js has no node_modules: run `npm ci --prefix tests/js`");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(js_dir().join(script)).current_dir(js_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap_or_else(|e| panic!("cannot run node ({e}): install it with `apt-get install nodejs npm`"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}"))
}

#[tokio::test]
async fn drone_node_reads_builds_logs_and_restarts_and_cancels() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.push_and_finish("main", ONE_ECHO_STEP).await;
    let slow = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: slow\n  commands: [sleep 60]\n";
    let sha = ctx.push_and_deliver("slow", &[(".drone.yml", slow)]).await;
    ctx.expect_check_run(&sha, "default (push)", InProgress).await;

    let report = node(
        "drone_client.mjs",
        &[("DRONE_SERVER", ctx.app.url()), ("DRONE_TOKEN", API_TOKEN.to_string()), ("REPO", "acme/widget".to_string())],
    )
    .await;

    assert_eq!(report["login"], "admin");
    assert_eq!(report["slug"], "acme/widget");
    assert_eq!(report["builds"], serde_json::json!([2, 1]));
    assert_eq!(report["build1"], serde_json::json!({"status": "success", "steps": ["clone", "greet"]}));
    assert_eq!(report["latest"], 1);
    assert_eq!(report["log"], "+ echo ok\nok\n");
    assert_eq!(report["retried"], serde_json::json!({"number": 3, "parent": 1}));
    assert_eq!(report["cancelled"], "killed");
    assert_eq!(report["missing"], 404);
    ctx.expect_check_run(&sha, "default (push)", Cancelled).await;
}

#[tokio::test]
async fn the_build_page_follows_a_running_build_in_a_real_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
    assert!(std::path::Path::new(&chromium).exists(), "no Chromium at {chromium}: install it with `apt-get install chromium`");
    let ctx = Scenario::new().with_workers().start().await;
    // Three ticks, then the step waits until the browser has loaded the page
    // (it drops a file in the workspace), then three more: the page must
    // show those without a reload, however loaded the machine is.
    let steps = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: ticker\n  commands:\n  - for i in 1 2 3; do echo tick $i; done\n  - while [ ! -f loaded ]; do sleep 0.1; done\n  - for i in 4 5 6; do echo tick $i; sleep 0.2; done\n";
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", steps)]).await;
    ctx.expect_check_run(&sha, "default (push)", InProgress).await;
    let build = ctx.expect_builds(1).await.remove(0);
    let workspace = greenlight::runner::workspace::checkout_of(&ctx.app.data_dir.path().join("workspaces"), build.stages[0]);

    let report = node(
        "build_page.mjs",
        &[
            ("PAGE_URL", format!("{}/acme/widget/1", ctx.app.url())),
            ("LOG_SELECTOR", "#log-1-2".to_string()),
            ("EXPECT_LINE", "tick 6".to_string()),
            ("LOADED_FILE", workspace.join("loaded").display().to_string()),
            ("CHROMIUM", chromium),
        ],
    )
    .await;

    assert_eq!(report["status"], "success");
    assert_eq!(report["loads"], 1, "the page never reloaded");
    let initial = report["initial"].as_str().unwrap();
    let last = report["final"].as_str().unwrap();
    assert!(!initial.contains("tick 6"), "the page loaded before the step ended: {initial:?}");
    assert!(last.contains("tick 1\n") && last.contains("tick 6\n"), "{last:?}");
    assert_eq!(last.matches("tick 3\n").count(), 1, "no line twice: {last:?}");
}

#[tokio::test]
async fn a_logged_in_browser_restarts_a_build_from_its_page() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
    assert!(std::path::Path::new(&chromium).exists(), "no Chromium at {chromium}: install it with `apt-get install chromium`");
    let ctx = Scenario::new().private_repo("acme/secret").with_workers().start().await;
    ctx.push_and_finish("main", ONE_ECHO_STEP).await;

    let report = node(
        "restart_button.mjs",
        &[
            ("PAGE_URL", format!("{}/acme/secret/1", ctx.app.url())),
            ("NEXT_URL", format!("{}/acme/secret/2", ctx.app.url())),
            ("TOKEN", API_TOKEN.to_string()),
            ("CHROMIUM", chromium),
        ],
    )
    .await;

    assert_eq!(report["login"], "/login", "a guest is sent to the login form");
    assert_eq!((report["httpOnly"].as_bool(), report["sameSite"].as_str()), (Some(true), Some("Lax")));
    assert!(report["heading"].as_str().unwrap().starts_with("Build #2"), "{report}");
    assert_eq!(ctx.expect_build_done(2).await.parent, 1);
}
