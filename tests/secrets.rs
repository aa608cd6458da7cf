//! Repository secrets: encrypted at rest, given to the builds that may have
//! them, masked everywhere, and never given to forks.

mod support;

use greenlight::store::Status;
use support::{FakeGitHub, TestApp, Webhook};

const TOKEN: &str = "tok@3f9a8b7c6d5e4f30";

/// A one-step pipeline using the `deploy_token` secret; each command a YAML literal block.
fn pipeline(commands: &[&str]) -> String {
    let commands: String = commands.iter().map(|c| format!("  - |-\n    {c}\n")).collect();
    format!(
        "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: deploy\n  environment:\n    TOKEN:\n      from_secret: deploy_token\n  commands:\n{commands}"
    )
}

#[tokio::test]
async fn a_push_build_gets_the_secret_masked_in_logs_and_check_run_text() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let app = TestApp::with_workers(&github).await;
    app.deliver(&Webhook::installation("created", &[&repo])).await;
    app.add_secret("acme/widget", "deploy_token", TOKEN, false).await;
    let steps = pipeline(&[
        "test \"$TOKEN\" = 'tok@3f9a8b7c6d5e4f30' && echo the token arrived",
        "printf 'split: %s' \"${TOKEN%%8b7c*}\"; sleep 0.2; printf '%s\\n' \"8b7c${TOKEN#*8b7c}\"",
        "printf %s \"$TOKEN\" | base64",
        "echo \"url: $(printf %s \"$TOKEN\" | sed 's/@/%40/')\"",
        "echo \"plain: $TOKEN\" && exit 1",
    ]);
    let sha = repo.push("main", &[(".drone.yml", &steps)]);

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;

    let run = github.expect_check_run(&repo, &sha, "default (push)", "failure").await;
    let build = app.expect_build_done(repo.id, 1).await;
    let log = app.log(&build, "deploy").await;
    assert!(log.contains("the token arrived\n"), "{log}");
    assert!(log.contains("split: ********\n"), "a value printed across two writes is masked: {log}");
    assert!(log.contains("plain: ********\n"), "{log}");
    assert!(log.contains("url: ********\n"), "{log}");
    assert!(!log.contains("3f9a8b7c"), "{log}");
    assert!(!log.contains("dG9rQDNmOWE4YjdjNmQ1ZTRmMzA"), "the base64 form is masked: {log}");
    let text = run.text.unwrap();
    assert!(text.contains("plain: ********") && !text.contains("3f9a8b7c"), "{text}");
}

#[tokio::test]
async fn a_fork_pull_request_never_receives_a_secret() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let app = TestApp::with_workers(&github).await;
    app.deliver(&Webhook::installation("created", &[&repo])).await;
    app.add_secret("acme/widget", "deploy_token", TOKEN, true).await;
    let sha = repo.push("evil", &[(".drone.yml", &pipeline(&["echo \"stolen: $TOKEN\""]))]);

    app.deliver(&Webhook::pull_request_from(&repo, "opened", 4, "evil", &sha, Some("stranger/widget"))).await;

    let run = github.expect_check_run(&repo, &sha, "default (pull_request)", "failure").await;
    let build = app.expect_build_done(repo.id, 1).await;
    let log = app.log(&build, "deploy").await;
    assert!(!log.contains("stolen"), "the step never ran: {log}");
    assert!(log.contains("step `deploy` asks for secret `deploy_token`, which greenlight cannot give it: secrets are never given to pull requests from forks"), "{log}");
    assert_eq!(app.stage(&build).await.steps[1].status, Status::Error);
    assert!(!format!("{run:?}").contains(TOKEN));
}

#[tokio::test]
async fn a_secret_limited_to_pushes_is_refused_to_pull_requests() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let app = TestApp::with_workers(&github).await;
    app.deliver(&Webhook::installation("created", &[&repo])).await;
    app.add_secret("acme/widget", "deploy_token", TOKEN, false).await;
    let sha = repo.push("feature", &[(".drone.yml", &pipeline(&["echo \"got: $TOKEN\""]))]);

    app.deliver(&Webhook::pull_request(&repo, "opened", 5, "feature", &sha)).await;

    github.expect_check_run(&repo, &sha, "default (pull_request)", "failure").await;
    let build = app.expect_build_done(repo.id, 1).await;
    assert!(app.log(&build, "deploy").await.contains("it is not available to pull_request builds"));
}

#[tokio::test]
async fn secrets_are_managed_through_the_api_and_never_shown() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let app = TestApp::start(&github).await;
    app.deliver(&Webhook::installation("created", &[&repo])).await;

    let guest = app.api("GET", "/api/repos/acme/widget/secrets", false).await;
    let short = app.api_json("POST", "/api/repos/acme/widget/secrets", serde_json::json!({"name": "x", "data": "abc"})).await;
    let created = app.api_json("POST", "/api/repos/acme/widget/secrets", serde_json::json!({"name": "deploy_token", "data": TOKEN})).await;
    let patched = app.api_json("PATCH", "/api/repos/acme/widget/secrets/deploy_token", serde_json::json!({"pull_request": true})).await;
    let listed = app.api("GET", "/api/repos/acme/widget/secrets", true).await;
    let one = app.api("GET", "/api/repos/acme/widget/secrets/deploy_token", true).await;
    let deleted = app.api("DELETE", "/api/repos/acme/widget/secrets/deploy_token", true).await;
    let gone = app.api("GET", "/api/repos/acme/widget/secrets/deploy_token", true).await;

    assert_eq!(guest.status, 401);
    assert_eq!(short.status, 400);
    assert!(short.body["message"].as_str().unwrap().contains("under 4 bytes"));
    assert_eq!(created.status, 200);
    assert_eq!(patched.body["pull_request"], true);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    for answer in [&created, &patched, &listed, &one] {
        assert!(!answer.body.to_string().contains(TOKEN), "{}", answer.body);
        assert!(answer.body.to_string().contains("deploy_token"));
    }
    assert_eq!((deleted.status, gone.status), (204, 404));
}

#[tokio::test]
async fn secrets_at_rest_cannot_be_read_without_the_key() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let app = TestApp::start(&github).await;
    app.deliver(&Webhook::installation("created", &[&repo])).await;
    app.add_secret("acme/widget", "deploy_token", TOKEN, false).await;
    let pool = greenlight::redis_server::pool(&app.redis.url()).unwrap();
    let mut conn = pool.get().await.unwrap();

    let raw: std::collections::HashMap<String, String> =
        redis::cmd("HGETALL").arg(format!("gl:repo:{}:secrets", repo.id)).query_async(&mut conn).await.unwrap();
    let other_key = greenlight::secrets::SecretKey::parse(&secrecy::SecretString::from("ff".repeat(32))).unwrap();
    let wrong = greenlight::secrets::SecretStore::new(greenlight::store::Store::new(pool.clone()), Some(other_key))
        .reveal(greenlight::ids::RepoId(repo.id), "deploy_token")
        .await;

    let stored = raw.values().next().unwrap();
    assert!(!stored.contains(TOKEN) && !stored.contains("3f9a8b7c"), "{stored}");
    assert!(matches!(wrong, Err(greenlight::secrets::SecretError::Undecryptable(_))));
}

#[tokio::test]
async fn the_secret_command_reads_values_from_stdin_and_never_prints_them() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let app = TestApp::start(&github).await;
    app.deliver(&Webhook::installation("created", &[&repo])).await;
    let run = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_greenlight"))
            .arg("secret")
            .args(args)
            .env_clear()
            .env("REDIS_URL", app.redis.url())
            .env("GREENLIGHT_SECRET_KEY", support::app::SECRET_KEY)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };

    let added = run(&["add", "acme/widget", "deploy_token", "--pull-request"], &format!("{TOKEN}\n"));
    let listed = run(&["ls", "acme/widget"], "");
    let api = app.api("GET", "/api/repos/acme/widget/secrets/deploy_token", true).await;
    let removed = run(&["rm", "acme/widget", "deploy_token"], "");
    let unknown = run(&["ls", "acme/nothing"], "");

    assert_eq!(added, (true, "secret deploy_token saved for acme/widget\n".to_string()));
    assert_eq!(listed, (true, "deploy_token (pull requests too)\n".to_string()));
    assert_eq!((api.status, api.body["pull_request"].as_bool()), (200, Some(true)));
    assert!(removed.0);
    assert!(!unknown.0 && unknown.1.contains("install the App on it first"), "{unknown:?}");
}

#[tokio::test]
async fn on_a_protected_repository_a_fork_waits_for_approval_and_then_gets_its_secrets() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let app = TestApp::with_workers(&github).await;
    app.deliver(&Webhook::installation("created", &[&repo])).await;
    app.add_secret("acme/widget", "deploy_token", TOKEN, true).await;
    let protect = app.api_json("PATCH", "/api/repos/acme/widget", serde_json::json!({"protected": true})).await;
    let sha =
        repo.push("contrib", &[(".drone.yml", &pipeline(&["test \"$TOKEN\" = 'tok@3f9a8b7c6d5e4f30' && echo approved and trusted"]))]);

    app.deliver(&Webhook::pull_request_from(&repo, "opened", 6, "contrib", &sha, Some("stranger/widget"))).await;
    let waiting = github.expect_status(&repo, &sha, "greenlight/default/pull_request", "pending").await;
    github.expect_check_run(&repo, &sha, "default (pull_request)", "queued").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let blocked = app.api("GET", "/api/repos/acme/widget/builds/1", true).await;
    let guest = app.api("POST", "/api/repos/acme/widget/builds/1/approve/1", false).await;
    let approved = app.api("POST", "/api/repos/acme/widget/builds/1/approve/1", true).await;
    let again = app.api("POST", "/api/repos/acme/widget/builds/1/approve/1", true).await;

    assert_eq!(protect.body["protected"], true);
    assert!(waiting.description.contains("waiting for approval"), "{}", waiting.description);
    assert_eq!((blocked.body["status"].as_str(), blocked.body["stages"][0]["status"].as_str()), (Some("blocked"), Some("blocked")));
    assert_eq!((guest.status, approved.status, again.status), (401, 204, 400));
    github.expect_check_run(&repo, &sha, "default (pull_request)", "success").await;
    let build = app.expect_build_done(repo.id, 1).await;
    assert!(app.log(&build, "deploy").await.contains("approved and trusted"));
}
