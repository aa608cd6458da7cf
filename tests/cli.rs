//! The `greenlight` command: configuration errors are one clear line and exit code 2.

mod support;

use std::process::{Command, Output};

fn greenlight(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("greenlight runs")
}

fn key_path() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/test-app-key.pem").to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_missing_app_id_exits_2_naming_the_variable() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let key = key_path();
    // A worker needs the App; `serve` with a key but no id is a mistake, not a first start.
    for (command, env) in [
        ("worker", vec![("GREENLIGHT_DATA_DIR", data_dir)]),
        ("serve", vec![("GREENLIGHT_DATA_DIR", data_dir), ("GITHUB_PRIVATE_KEY_PATH", key.as_str())]),
    ] {
        let out = greenlight(&[command], &env);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let text = stderr(&out);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("GITHUB_APP_ID: is not set"), "{text}");
        assert!(!text.contains("panicked"));
    }
    assert!(!data.path().join("greenlight.json").exists(), "settings with a mistake generate nothing");

    // With JSON logs, the reason is a JSON log line like any other.
    let out = greenlight(&["worker"], &[("GREENLIGHT_DATA_DIR", data_dir), ("GREENLIGHT_LOG_FORMAT", "json")]);
    assert_eq!(out.status.code(), Some(2));
    let line: serde_json::Value = serde_json::from_str(stderr(&out).trim()).expect("one JSON line");
    assert_eq!(line["level"], "ERROR");
    assert!(line["message"].as_str().unwrap().contains("GITHUB_APP_ID: is not set"), "{line}");
}

/// Starts `greenlight serve` with `env` on a free port until its stderr
/// says `until`; returns every line it wrote, once it stopped (SIGTERM).
fn serve_until(env: &[(&str, &str)], until: &str) -> Vec<String> {
    use std::io::BufRead;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GREENLIGHT_ADDR", format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        lines.push(std::mem::take(&mut line));
        if lines.last().unwrap().contains(until) {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
    }
    assert!(child.wait().unwrap().success());
    assert!(lines.iter().any(|l| l.contains(until)), "{lines:#?}");
    lines
}

#[test]
fn a_first_start_generates_its_secrets_once_logs_json_and_config_says_where_settings_come_from() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let env = [("GREENLIGHT_DATA_DIR", data_dir), ("GREENLIGHT_LOG_FORMAT", "json"), ("GREENLIGHT_SANDBOX", "none")];
    let first = serve_until(&env, "open the setup page");
    for line in &first {
        let object: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(object["level"].is_string() && object["timestamp"].is_string(), "{line}");
    }
    assert!(first.iter().any(|l| l.contains("generated GREENLIGHT_API_TOKEN") && l.contains("greenlight.json")), "{first:#?}");
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(data.path().join("greenlight.json")).unwrap()).unwrap();
    let token = stored["api_token"].as_str().unwrap().to_string();
    assert_eq!((token.len(), stored["secret_key"].as_str().unwrap().len()), (64, 64));
    assert!(first.iter().all(|l| !l.contains(&token)), "the token is never logged");

    let second = serve_until(&env, "open the setup page");
    assert!(second.iter().all(|l| !l.contains("generated")), "said once: {second:#?}");

    let out = greenlight(&["config"], &[("GREENLIGHT_DATA_DIR", data_dir), ("GREENLIGHT_ADDR", "127.0.0.1:4000")]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line =
        |name: &str| text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}: {text}")).to_string();
    let words = |l: String| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(words(line("GREENLIGHT_API_TOKEN")), ["GREENLIGHT_API_TOKEN", "file", "(hidden)"]);
    assert_eq!(words(line("GREENLIGHT_ADDR")), ["GREENLIGHT_ADDR", "variable", "127.0.0.1:4000"]);
    assert_eq!(words(line("GREENLIGHT_PUBLIC_URL")), ["GREENLIGHT_PUBLIC_URL", "default", "http://localhost:3000"]);
    assert_eq!(words(line("GITHUB_APP_ID")), ["GITHUB_APP_ID", "unset"]);
    assert!(!text.contains(&token));
}

#[test]
fn a_bad_private_key_is_named_without_echoing_it() {
    let out =
        greenlight(&["serve"], &[("GITHUB_APP_ID", "1"), ("GITHUB_PRIVATE_KEY", "-----BEGIN RSA PRIVATE KEY-----\nsecretmaterial\n")]);

    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(text.contains("GITHUB_PRIVATE_KEY: is not an RSA private key in PEM form"), "{text}");
    assert!(!text.contains("secretmaterial"));
}

#[test]
fn each_invalid_setting_is_named() {
    let key = key_path();
    let base = [("GITHUB_APP_ID", "1"), ("GITHUB_PRIVATE_KEY_PATH", key.as_str()), ("GITHUB_WEBHOOK_SECRET", "s")];
    let cases: [(&str, &str, &str); 15] = [
        ("GITHUB_APP_ID", "twelve", "GITHUB_APP_ID: must be a number"),
        ("GREENLIGHT_CONCURRENCY", "0", "GREENLIGHT_CONCURRENCY: must be a whole number of at least 1"),
        ("GREENLIGHT_ADDR", "nowhere", "GREENLIGHT_ADDR: must be HOST:PORT"),
        ("GITHUB_API_URL", "ftp://x", "GITHUB_API_URL: must be an http:// or https:// URL"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL: must start with redis://"),
        ("GREENLIGHT_SECRET_KEY", "not-a-key", "GREENLIGHT_SECRET_KEY: must be 32 bytes"),
        ("GREENLIGHT_API_TOKEN", "short", "GREENLIGHT_API_TOKEN: is too short"),
        ("GREENLIGHT_SANDBOX", "docker", "GREENLIGHT_SANDBOX: must be `bwrap` or `none`"),
        ("GREENLIGHT_STAGE_LEASE", "0", "GREENLIGHT_STAGE_LEASE: must be a whole number of seconds"),
        ("GREENLIGHT_STEP_LIMITS", "maybe", "GREENLIGHT_STEP_LIMITS: must be `on` or `off`"),
        ("GREENLIGHT_STEP_MEMORY", "lots", "GREENLIGHT_STEP_MEMORY: must be a size of at least 16m, like 512m or 4g"),
        ("GREENLIGHT_STEP_PIDS", "0", "GREENLIGHT_STEP_PIDS: must be a whole number of processes"),
        ("GREENLIGHT_STEP_CPUS", "half", "GREENLIGHT_STEP_CPUS: must be a number of cores"),
        ("GREENLIGHT_STEP_NETWORK", "open", "GREENLIGHT_STEP_NETWORK: \"open\" is not one of isolated (the default), host, none"),
        ("GREENLIGHT_STEP_DENY", "10.0.0.0/33", "GREENLIGHT_STEP_DENY: \"10.0.0.0/33\" is not a CIDR"),
    ];
    for (variable, value, expected) in cases {
        let mut env: Vec<(&str, &str)> = base.iter().copied().filter(|(k, _)| *k != variable).collect();
        env.push((variable, value));
        let out = greenlight(&["serve"], &env);
        assert_eq!(out.status.code(), Some(2), "{variable}");
        assert!(stderr(&out).contains(expected), "{variable}: {}", stderr(&out));
    }
}

#[test]
fn a_missing_webhook_secret_is_named() {
    let key = key_path();
    let out = greenlight(&["serve"], &[("GITHUB_APP_ID", "1"), ("GITHUB_PRIVATE_KEY_PATH", &key)]);

    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("GITHUB_WEBHOOK_SECRET: is not set"), "{}", stderr(&out));
}

#[test]
fn help_describes_each_command_and_never_shows_secret_values() {
    let out = greenlight(&["serve", "--help"], &[("GITHUB_WEBHOOK_SECRET", "hunter2"), ("GITHUB_PRIVATE_KEY", "pem-secret")]);
    let text = String::from_utf8_lossy(&out.stdout);

    assert!(out.status.success());
    assert!(text.contains("--no-worker"));
    assert!(text.contains("GITHUB_WEBHOOK_SECRET"));
    assert!(!text.contains("hunter2") && !text.contains("pem-secret"), "{text}");
    let top = greenlight(&["--help"], &[]);
    let top = String::from_utf8_lossy(&top.stdout);
    assert!(top.contains("serve") && top.contains("worker"), "{top}");
}

#[test]
fn serve_without_redis_url_runs_its_own_redis_and_answers() {
    let key = key_path();
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .args(["serve", "--no-worker"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITHUB_APP_ID", "1")
        .env("GITHUB_PRIVATE_KEY_PATH", &key)
        .env("GITHUB_WEBHOOK_SECRET", "s")
        .env("GREENLIGHT_ADDR", &addr)
        .env("GREENLIGHT_DATA_DIR", data.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = support::app::readiness_blocking(&addr, std::time::Duration::from_secs(20));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();

    assert!(ready.contains("ready"));
    assert!(status.success(), "{status}");
    assert!(
        data.path().join("redis/appendonlydir").exists() || data.path().join("redis/appendonly.aof").exists(),
        "AOF persistence under the data dir"
    );
}

#[test]
fn a_worker_without_a_usable_sandbox_refuses_to_start() {
    let key = key_path();
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .arg("worker")
        .env_clear()
        .env("PATH", "/nonexistent")
        .env("GITHUB_APP_ID", "1")
        .env("GITHUB_PRIVATE_KEY_PATH", &key)
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("GREENLIGHT_DATA_DIR", data.path())
        .output()
        .unwrap();

    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(
        text.contains(
            "bwrap (bubblewrap) is not on PATH: install it (Debian/Ubuntu: apt-get install bubblewrap), or set GREENLIGHT_SANDBOX=none"
        ),
        "{text}"
    );
}

/// `greenlight worker` started as an unprivileged uid: what it says on stderr.
fn worker_as_nobody(extra: &[(&str, &str)]) -> String {
    use std::os::unix::process::CommandExt;
    let data = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(data.path(), Some(65534), Some(65534)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .arg("worker")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITHUB_APP_ID", "1")
        .env("GITHUB_PRIVATE_KEY", std::fs::read_to_string(key_path()).unwrap())
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("GREENLIGHT_DATA_DIR", data.path())
        .envs(extra.iter().copied())
        .uid(65534)
        .gid(65534)
        .current_dir("/")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a worker that cannot confine steps must not start");
    stderr(&out)
}

#[test]
fn a_worker_that_cannot_limit_or_isolate_steps_refuses_to_start_and_says_what_to_do() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root (it starts the worker as uid 65534)");
    let text = worker_as_nobody(&[]);
    assert!(text.contains("per-step limits (memory, processes, CPU) need cgroups"), "{text}");
    assert!(text.contains("or set GREENLIGHT_STEP_LIMITS=off"), "{text}");

    let text = worker_as_nobody(&[("GREENLIGHT_STEP_LIMITS", "off")]);
    assert!(text.contains("GREENLIGHT_STEP_NETWORK=isolated needs greenlight to run as root"), "{text}");
    assert!(text.contains("set GREENLIGHT_STEP_NETWORK=host"), "{text}");
}

#[test]
fn serve_without_redis_url_or_redis_server_says_what_to_install() {
    let key = key_path();
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .args(["serve", "--no-worker"])
        .env_clear()
        .env("PATH", "/nonexistent")
        .env("GITHUB_APP_ID", "1")
        .env("GITHUB_PRIVATE_KEY_PATH", &key)
        .env("GITHUB_WEBHOOK_SECRET", "s")
        .env("GREENLIGHT_DATA_DIR", data.path())
        .output()
        .unwrap();

    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("REDIS_URL is not set and redis-server is not on PATH: install it (Debian/Ubuntu: apt-get install redis-server)"),
        "{}",
        stderr(&out)
    );
}
