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

/// A URL secret (`:` and `@` in it), and a two-line key with a quote, a
/// slash and a space (JSON and form encoding change it).
const REGISTRY: &str = "https://deploy:hunter2-9f8e7d@registry.example";
const SIGNING: &str = "pw\"q/7b 3c9d1e\nsecond-line-8a7b";

/// Every form of the secrets a step below prints: none may leave greenlight.
fn printed_forms() -> Vec<String> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut forms: Vec<String> =
        ["3f9a8b7c", "hunter2-9f8e7d", "7b 3c9d1e", "second-line-8a7b", "hunter2%2D9f8e7d", "3f9a%38b7c"].map(String::from).to_vec();
    for value in [TOKEN, REGISTRY, "pw\"q/7b 3c9d1e"] {
        forms.extend([hex::encode(value), hex::encode_upper(value), STANDARD_NO_PAD.encode(value), URL_SAFE_NO_PAD.encode(value)]);
        forms.push(value.bytes().map(|b| format!("%{b:02X}")).collect());
    }
    forms.push(serde_json::to_string("pw\"q/7b 3c9d1e").unwrap().trim_matches('"').to_string());
    forms.push("pw+q/7b+3c9d1e".replace("pw+q", "pw\"q"));
    forms
}

#[tokio::test]
async fn no_encoding_of_a_secret_reaches_github_the_api_or_the_stored_log() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.install().await;
    ctx.add_secret("deploy_token", TOKEN, false).await;
    ctx.add_secret("registry_url", REGISTRY, false).await;
    ctx.add_secret("signing_key", SIGNING, false).await;
    let commands = [
        r#"ENC=$(printf %s "$REGISTRY" | sed 's/:/%3A/g')"#,
        r#"echo "::error file=a.txt,line=1,title=$ENC::$ENC""#,
        r#"printf '::warning file=b.txt,line=2::ansi %s\033[0m%s\n' "${TOKEN%%8b7c*}" "8b7c${TOKEN#*8b7c}""#,
        r#"printf 'ansi: %s\033[1m%s\n' "${TOKEN%%8b7c*}" "8b7c${TOKEN#*8b7c}""#,
        r#"hex() { printf %s "$1" | od -An -tx1 | tr -d ' \n'; }"#,
        r#"for v in "$TOKEN" "$REGISTRY" "$(printf '%s\n' "$SIGNING" | head -1)"; do"#,
        r#"  echo "hex: $(hex "$v") HEX: $(hex "$v" | tr a-f A-F) pct: $(hex "$v" | sed 's/../%&/g')""#,
        r#"  echo "b64: $(printf %s "$v" | base64 -w0) url: $(printf %s "$v" | base64 -w0 | tr '+/' '-_')""#,
        r#"  for p in '' x xy; do echo "auth: $(printf '%suser:%s' "$p" "$v" | base64 -w0)"; done"#,
        r#"done"#,
        r#"echo "partial: $(printf %s "$REGISTRY" | sed 's/:/%3A/g; s/@/%40/; s/-/%2D/') twice: $(printf %s "$TOKEN" | sed 's/8/%2538/')""#,
        r#"FIRST=$(printf '%s\n' "$SIGNING" | head -1)"#,
        r#"printf '{"key":"%s"}\n' "$(printf %s "$FIRST" | sed 's/"/\\"/g; s#/#\\/#g')""#,
        r#"echo "form: $(printf %s "$FIRST" | sed 's/ /+/g') line: $(printf '%s\n' "$SIGNING" | tail -1)""#,
        "exit 1",
    ];
    let listed: String = commands.iter().map(|c| format!("    {c}\n")).collect();
    let env = "  environment:\n    TOKEN:\n      from_secret: deploy_token\n    REGISTRY:\n      from_secret: registry_url\n    SIGNING:\n      from_secret: signing_key\n";
    let steps = format!("kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: leak\n{env}  commands:\n  - |-\n{listed}");

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;

    let run = ctx.expect_check_run(&sha, "default (push)", Failure).await;
    let build = ctx.expect_build_done(1).await;
    let stored = ctx.log(&build, "leak").await;
    let served = ctx.api().log_text(1, 1, 2).await;
    let annotations: Vec<(&str, Option<&str>, &str)> =
        run.annotations.iter().map(|a| (a.path.as_str(), a.title.as_deref(), a.message.as_str())).collect();
    assert_eq!(annotations, vec![("a.txt", Some("********"), "********"), ("b.txt", None, "ansi ********")]);
    assert!(stored.contains("ansi: ********\n") && stored.lines().filter(|l| l.starts_with("auth: ")).count() == 9, "{stored}");
    let labels = ["hex: ", "b64: ", "auth: ", "partial: ", "{\"key\":", "form: "];
    let printed: Vec<&str> = stored.lines().filter(|l| labels.iter().any(|label| l.starts_with(label))).collect();
    assert!(printed.len() == 18 && printed.iter().all(|l| l.contains("********")), "{stored}");
    let mut published = vec![stored, served];
    for run in ctx.check_runs(&sha) {
        published.extend([run.title, run.summary, run.text].into_iter().flatten());
        published.extend(run.annotations.into_iter().flat_map(|a| [a.path, a.message].into_iter().chain(a.title)));
    }
    published.extend(ctx.statuses(&sha).into_iter().map(|s| s.description));
    for text in &published {
        for form in printed_forms() {
            assert!(!text.contains(&form), "{form:?} leaked in:\n{text}");
        }
        assert!(!text.contains('\x1b') || text == &published[0] || text == &published[1], "GitHub gets no escape sequences: {text:?}");
    }
}

#[tokio::test]
async fn a_secret_printed_across_the_cut_of_a_very_long_line_is_still_masked() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.install().await;
    ctx.add_secret("deploy_token", TOKEN, false).await;
    // The reader cuts lines at 16 KiB: the secret starts 8 bytes before the cut.
    let long = pipeline(&["printf 'a%.0s' $(seq 16376); printf '%s\\n' \"$TOKEN\""]);

    let (_, build) = ctx.push_and_finish("main", &long).await;
    let log = ctx.log(&build, "deploy").await;

    assert!(!log.contains(TOKEN) && !log.contains("3f9a8b7c"), "no piece of the secret survives the cut");
    assert!(
        log.contains(&format!("\n{}********\n", "a".repeat(16376))),
        "the line is whole but for the secret: {}",
        &log[log.len().saturating_sub(200)..]
    );
}

#[tokio::test]
async fn installation_tokens_cached_in_redis_are_sealed_with_the_secret_key() {
    let ctx = Scenario::new().with_workers().start().await;

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", support::ONE_ECHO_STEP)]).await;
    ctx.expect_check_run(&sha, "default (push)", Success).await;
    let minted = ctx.github.tokens_minted();
    let next = ctx.push_and_deliver("main", &[(".drone.yml", support::ONE_ECHO_STEP), ("n.txt", "2")]).await;
    ctx.expect_check_run(&next, "default (push)", Success).await;

    let cached = ctx.app.redis.values("gl:token:*").await;
    assert!(!cached.is_empty(), "tokens are cached");
    for token in ctx.github.issued_tokens() {
        assert!(cached.iter().all(|value| !value.contains(&token)), "no issued token is readable in Redis");
    }
    assert!(cached.iter().all(|value| value.starts_with("sealed:")), "{cached:?}");
    assert_eq!(ctx.github.tokens_minted(), minted, "the sealed tokens were opened and reused, not minted again");
}
