//! Repository secrets: encrypted at rest, given to the builds that may have
//! them, masked everywhere, and never given to forks.

mod support;

use greenlight::store::Status;
use support::CheckRunState::{Failure, Queued, Success};
use support::drone::{ApiBuild, ApiRepo, ApiSecret};
use support::{Scenario, StatusState};

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
    let ctx = Scenario::new().with_workers().start().await;
    ctx.install().await;
    ctx.add_secret("deploy_token", TOKEN, false).await;
    let steps = pipeline(&[
        "test \"$TOKEN\" = 'tok@3f9a8b7c6d5e4f30' && echo the token arrived",
        "printf 'split: %s' \"${TOKEN%%8b7c*}\"; sleep 0.2; printf '%s\\n' \"8b7c${TOKEN#*8b7c}\"",
        "printf %s \"$TOKEN\" | base64",
        "echo \"url: $(printf %s \"$TOKEN\" | sed 's/@/%40/')\"",
        "echo \"plain: $TOKEN\" && exit 1",
    ]);

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;

    let run = ctx.expect_check_run(&sha, "default (push)", Failure).await;
    let build = ctx.expect_build_done(1).await;
    let log = ctx.log(&build, "deploy").await;
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
    let ctx = Scenario::new().with_workers().start().await;
    ctx.install().await;
    ctx.add_secret("deploy_token", TOKEN, true).await;
    let sha = ctx.push_pipeline("evil", &pipeline(&["echo \"stolen: $TOKEN\""]));

    ctx.deliver_fork_pr(4, "evil", &sha, "stranger/widget").await;

    let run = ctx.expect_check_run(&sha, "default (pull_request)", Failure).await;
    let build = ctx.expect_build_done(1).await;
    let log = ctx.log(&build, "deploy").await;
    assert!(!log.contains("stolen"), "the step never ran: {log}");
    assert!(log.contains("step `deploy` asks for secret `deploy_token`, which greenlight cannot give it: secrets are never given to pull requests from forks"), "{log}");
    assert_eq!(ctx.stage(&build).await.steps[1].status, Status::Error);
    assert!(!format!("{run:?}").contains(TOKEN));
}

#[tokio::test]
async fn a_secret_limited_to_pushes_is_refused_to_pull_requests() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.install().await;
    ctx.add_secret("deploy_token", TOKEN, false).await;

    let sha = ctx.open_pr(5, "feature", &[(".drone.yml", &pipeline(&["echo \"got: $TOKEN\""]))]).await;

    ctx.expect_check_run(&sha, "default (pull_request)", Failure).await;
    let build = ctx.expect_build_done(1).await;
    assert!(ctx.log(&build, "deploy").await.contains("it is not available to pull_request builds"));
}

#[tokio::test]
async fn secrets_are_managed_through_the_api_and_never_shown() {
    let ctx = Scenario::new().start().await;
    ctx.install().await;
    let api = ctx.api();

    let guest = ctx.guest().secrets().await;
    let short = api.create_secret("x", "abc", None).await;
    let created = api.create_secret("deploy_token", TOKEN, None).await;
    let patched = api.allow_secret_for_pull_requests("deploy_token", true).await;
    let listed = api.secrets().await;
    let one = api.secret("deploy_token").await;
    let deleted = api.delete_secret("deploy_token").await;
    let gone = api.secret("deploy_token").await;

    assert_eq!(guest.status, 401);
    assert_eq!(short.status, 400);
    assert!(short.message().unwrap().contains("under 4 bytes"));
    assert_eq!(created.status, 200);
    assert!(patched.json::<ApiSecret>().pull_request);
    assert_eq!(listed.json::<Vec<ApiSecret>>().len(), 1);
    for answer in [&created, &patched, &listed, &one] {
        assert!(!answer.text().contains(TOKEN), "{}", answer.body);
        assert!(answer.text().contains("deploy_token"));
    }
    assert_eq!((deleted.status, gone.status), (204, 404));
}

#[tokio::test]
async fn secrets_at_rest_cannot_be_read_without_the_key() {
    let ctx = Scenario::new().start().await;
    ctx.install().await;
    ctx.add_secret("deploy_token", TOKEN, false).await;
    let pool = greenlight::redis_server::pool(&ctx.app.redis.url()).unwrap();
    let mut conn = pool.get().await.unwrap();

    let raw: std::collections::HashMap<String, String> =
        redis::cmd("HGETALL").arg(format!("gl:repo:{}:secrets", ctx.repo.id)).query_async(&mut conn).await.unwrap();
    let other_key = greenlight::secrets::SecretKey::parse(&secrecy::SecretString::from("ff".repeat(32))).unwrap();
    let wrong = greenlight::secrets::SecretStore::new(greenlight::store::Store::new(pool.clone()), Some(other_key))
        .reveal(greenlight::ids::RepoId(ctx.repo.id), "deploy_token")
        .await;

    let stored = raw.values().next().unwrap();
    assert!(!stored.contains(TOKEN) && !stored.contains("3f9a8b7c"), "{stored}");
    assert!(matches!(wrong, Err(greenlight::secrets::SecretError::Undecryptable(_))));
}

#[tokio::test]
async fn the_secret_command_reads_values_from_stdin_and_never_prints_them() {
    let ctx = Scenario::new().start().await;
    ctx.install().await;
    let run = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_greenlight"))
            .arg("secret")
            .args(args)
            .env_clear()
            .env("REDIS_URL", ctx.app.redis.url())
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
    let api = ctx.api().secret("deploy_token").await;
    let removed = run(&["rm", "acme/widget", "deploy_token"], "");
    let unknown = run(&["ls", "acme/nothing"], "");

    assert_eq!(added, (true, "secret deploy_token saved for acme/widget\n".to_string()));
    assert_eq!(listed, (true, "deploy_token (pull requests too)\n".to_string()));
    assert_eq!((api.status, api.json::<ApiSecret>().pull_request), (200, true));
    assert!(removed.0);
    assert!(!unknown.0 && unknown.1.contains("install the App on it first"), "{unknown:?}");
}

#[tokio::test]
async fn on_a_protected_repository_a_fork_waits_for_approval_and_then_gets_its_secrets() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.install().await;
    ctx.add_secret("deploy_token", TOKEN, true).await;
    let protect = ctx.api().set_protected(true).await;
    let sha = ctx.push_pipeline("contrib", &pipeline(&["test \"$TOKEN\" = 'tok@3f9a8b7c6d5e4f30' && echo approved and trusted"]));

    ctx.deliver_fork_pr(6, "contrib", &sha, "stranger/widget").await;
    let waiting = ctx.expect_status(&sha, "greenlight/default/pull_request", StatusState::Pending).await;
    ctx.expect_check_run(&sha, "default (pull_request)", Queued).await;
    ctx.settle().await;
    let blocked = ctx.api().build(1).await.json::<ApiBuild>();
    let guest = ctx.guest().approve(1, 1).await;
    let approved = ctx.approve(1, 1).await;
    let again = ctx.approve(1, 1).await;

    assert!(protect.json::<ApiRepo>().protected);
    assert!(waiting.description.contains("waiting for approval"), "{}", waiting.description);
    assert_eq!((blocked.status, blocked.stages[0].status), (Status::Blocked, Status::Blocked));
    assert_eq!((guest.status, approved.status, again.status), (401, 204, 400));
    ctx.expect_check_run(&sha, "default (pull_request)", Success).await;
    let build = ctx.expect_build_done(1).await;
    assert!(ctx.log(&build, "deploy").await.contains("approved and trusted"));
}
