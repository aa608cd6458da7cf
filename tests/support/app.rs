//! greenlight started in-process against its own redis-server and the fake GitHub.

use super::fake_github::{APP_ID, FakeGitHub, RepoHandle};
use super::redis::TestRedis;
use super::webhook::{SECRET, Webhook};
use greenlight::app::{self, Deps, Running};
use greenlight::config::{AppSetup, Common, GitHubConfig, LogStoreConfig, RunnerConfig, ServeConfig};
use greenlight::github::retry::RetryPolicy;
use greenlight::ids::RepoId;
use greenlight::store::{Build, Logs, Store};
use octocrab::jsonwebtoken::EncodingKey;
use secrecy::SecretString;
use std::time::Duration;

/// The admin token of the API in tests.
pub const API_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// The key test secrets are sealed with (64 hex digits).
pub const SECRET_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The public URL build links start with.
pub const PUBLIC_URL: &str = "http://greenlight.test";

/// A running greenlight.
pub struct TestApp {
    running: Option<Running>,
    /// Its Redis.
    pub redis: TestRedis,
    /// Its data directory.
    pub data_dir: tempfile::TempDir,
    http: reqwest::Client,
    store: Store,
    log_store: LogStoreConfig,
    deps: Deps,
    /// More `serve` processes on the same Redis, with their data directories.
    others: Vec<(Running, tempfile::TempDir)>,
}

/// What tests start greenlight with: quick retries, the system clock.
pub fn test_deps() -> Deps {
    Deps { retry: quick_retries(), ..Deps::default() }
}

/// `serve`'s settings as `app` and on `redis_url`: workers when `runner` is
/// given, the delivery log read every `delivery_poll` when given.
fn serve_config(
    app: AppSetup,
    redis_url: &str,
    runner: Option<RunnerConfig>,
    data_dir: &std::path::Path,
    log_store: LogStoreConfig,
    delivery_poll: Option<Duration>,
) -> ServeConfig {
    ServeConfig {
        app,
        common: Common {
            redis_url: Some(SecretString::from(redis_url.to_string())),
            public_url: PUBLIC_URL.to_string(),
            data_dir: data_dir.to_path_buf(),
            concurrency: 2,
            secret_key: Some(greenlight::secrets::SecretKey::parse(&SecretString::from(SECRET_KEY.to_string())).unwrap()),
            log_store,
            retention: greenlight::config::RetentionConfig::default(),
        },
        addr: "127.0.0.1:0".parse().unwrap(),
        run_workers: runner.is_some(),
        runner: runner.unwrap_or_else(runner_config),
        api_token: Some(SecretString::from(API_TOKEN.to_string())),
        delivery_poll,
    }
}

/// What greenlight answered to a delivery.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: serde_json::Value,
}

/// The App's key, as the fake knows it.
pub fn app_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/test-app-key.pem")).unwrap()).unwrap()
}

/// Like ./data made with the usual umask: the sandbox user may pass through.
pub const DATA_DIR_MODE: u32 = 0o755;

/// Like a data directory under `/root` on most servers: nobody else may pass.
pub const PRIVATE_DATA_DIR_MODE: u32 = 0o700;

/// Runner settings for tests: a short lease so takeovers happen in seconds.
pub fn runner_config() -> RunnerConfig {
    RunnerConfig {
        unsandboxed: false,
        sandbox_uid: None,
        lease: Duration::from_secs(2),
        grace: Duration::from_secs(2),
        log_limit: 16 * 1024 * 1024,
        limits: Some(greenlight::runner::limits::StepLimits::default()),
        // As the service's default: a network namespace per stage.
        network: greenlight::runner::network::NetworkSettings::parse("isolated", "").unwrap(),
        max_step_timeout: greenlight::pipeline::DEFAULT_MAX_STEP_TIMEOUT,
        workspace_cap: None,
        cache_cap: greenlight::config::DEFAULT_CACHE_MB << 20,
    }
}

/// The filesystems mounted under `dir` (capped workspaces), from this
/// process's mount table.
pub fn mounts_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let points = table.lines().filter_map(|line| line.split(' ').nth(4)).map(std::path::PathBuf::from);
    points.filter(|point| point.starts_with(dir) && point != dir).collect()
}

/// Detaches what greenlight left mounted under `dir` (a capped workspace of
/// a stage still running when its test ended), so that removing the
/// temporary directory removes it and no loop device outlives the test.
pub fn unmount_under(dir: &std::path::Path) {
    for point in mounts_under(dir).into_iter().rev() {
        let _ = std::process::Command::new("umount").arg("--lazy").arg(&point).status();
    }
}

/// The test App, configured as an operator would (id, key, webhook secret).
pub fn configured(github: &FakeGitHub) -> AppSetup {
    AppSetup::Configured {
        github: GitHubConfig { app_id: APP_ID, key: app_key(), api_url: github.api_url() },
        webhook_secrets: vec![SecretString::from(SECRET.to_string())],
    }
}

/// Fast retries, so outage tests take milliseconds.
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_rate_limit_wait: Duration::from_secs(5),
    }
}

/// Waits, without a runtime, until a greenlight started as a process at
/// `addr` answers `/readyz` with 200 (within `limit`); returns the whole answer.
pub fn readiness_blocking(addr: &str, limit: Duration) -> String {
    super::wait::within_blocking(limit, &format!("greenlight at {addr} to become ready"), || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).ok()?;
        stream.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text).filter(|t| t.starts_with("HTTP/1.0 200") || t.starts_with("HTTP/1.1 200"))
    })
}

impl TestApp {
    /// The artifacts' blobs of this app (its data directory, or its bucket).
    pub fn artifact_blobs(&self) -> greenlight::blobs::Blobs {
        greenlight::blobs::Blobs::of(&self.log_store, self.data_dir.path()).unwrap().scoped(greenlight::blobs::ARTIFACTS)
    }

    /// Starts `serve --no-worker`.
    pub async fn start(github: &FakeGitHub) -> Self {
        Self::start_on(github, TestRedis::start(), None, DATA_DIR_MODE).await
    }

    /// Starts `serve --no-worker` on a Redis with AOF fsynced on every write.
    pub async fn start_durable(github: &FakeGitHub) -> Self {
        Self::start_on(github, TestRedis::start_durable(), None, DATA_DIR_MODE).await
    }

    /// Starts `serve` with workers (a 2-second stage lease, 16 MiB step logs).
    pub async fn with_workers(github: &FakeGitHub) -> Self {
        Self::start_on(github, TestRedis::start(), Some(runner_config()), DATA_DIR_MODE).await
    }

    /// Starts `serve` with workers configured by `runner`.
    pub async fn with_runner(github: &FakeGitHub, runner: RunnerConfig) -> Self {
        Self::start_on(github, TestRedis::start(), Some(runner), DATA_DIR_MODE).await
    }

    /// Starts greenlight on `redis` with its data directory at `data_mode`.
    pub(crate) async fn start_on(github: &FakeGitHub, redis: TestRedis, runner: Option<RunnerConfig>, data_mode: u32) -> Self {
        Self::start_with_log_store(github, redis, runner, data_mode, LogStoreConfig::Redis).await.expect("greenlight starts")
    }

    /// Starts greenlight keeping finished logs where `log_store` says; what
    /// stopped it from starting, if something did.
    pub(crate) async fn start_with_log_store(
        github: &FakeGitHub,
        redis: TestRedis,
        runner: Option<RunnerConfig>,
        data_mode: u32,
        log_store: LogStoreConfig,
    ) -> anyhow::Result<Self> {
        Self::start_as(configured(github), redis, runner, data_mode, log_store, None, test_deps()).await
    }

    /// Starts `serve` as `app` (or the setup page), reading the delivery log
    /// every `delivery_poll`, with `deps` (its clock, its intervals).
    pub(crate) async fn start_as(
        app: AppSetup,
        redis: TestRedis,
        runner: Option<RunnerConfig>,
        data_mode: u32,
        log_store: LogStoreConfig,
        delivery_poll: Option<Duration>,
        deps: Deps,
    ) -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(data_dir.path(), std::os::unix::fs::PermissionsExt::from_mode(data_mode)).unwrap();
        let config = serve_config(app, &redis.url(), runner, data_dir.path(), log_store.clone(), delivery_poll);
        let running = app::start(config, deps.clone()).await?;
        let store = Store::new(greenlight::redis_server::pool(&redis.url()).unwrap());
        Ok(Self { running: Some(running), redis, data_dir, http: reqwest::Client::new(), store, log_store, deps, others: Vec::new() })
    }

    /// Starts another `serve --no-worker` process sharing this one's Redis
    /// (and clock), as a second machine would; it stops with this one.
    pub async fn start_another_serve(&mut self, github: &FakeGitHub) {
        let data_dir = tempfile::tempdir().unwrap();
        let config = serve_config(configured(github), &self.redis.url(), None, data_dir.path(), self.log_store.clone(), None);
        let running = app::start(config, self.deps.clone()).await.expect("another serve starts");
        self.others.push((running, data_dir));
    }

    /// Step logs as greenlight keeps them (its Redis and its log store).
    pub async fn logs(&self) -> Logs {
        Logs::connect(greenlight::redis_server::pool(&self.redis.url()).unwrap(), &self.log_store).await.unwrap()
    }

    /// The base URL of the server.
    pub fn url(&self) -> String {
        format!("http://{}", self.running.as_ref().unwrap().addr)
    }

    /// Sends a raw request to /webhook.
    pub async fn post_webhook(&self, headers: &[(&str, String)], body: Vec<u8>) -> Answer {
        let mut request = self.http.post(format!("{}/webhook", self.url())).body(body);
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        let response = request.send().await.expect("greenlight answers");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        Answer { status, body }
    }

    fn headers(hook: &Webhook, content_type: &str, signature: String) -> Vec<(&'static str, String)> {
        vec![
            ("x-github-event", hook.event.to_string()),
            ("x-github-delivery", hook.guid.clone()),
            ("x-hub-signature-256", signature),
            ("content-type", content_type.to_string()),
            ("user-agent", "GitHub-Hookshot/test".to_string()),
        ]
    }

    /// Delivers a webhook as GitHub does (JSON, signed).
    pub async fn deliver(&self, hook: &Webhook) -> Answer {
        self.post_webhook(&Self::headers(hook, "application/json", hook.signature()), hook.body.clone()).await
    }

    /// Delivers a webhook form-encoded (`payload=`), signed over the form body.
    pub async fn deliver_form(&self, hook: &Webhook) -> Answer {
        let form = serde_urlencoded::to_string([("payload", String::from_utf8(hook.body.clone()).unwrap())]).unwrap().into_bytes();
        let signature = greenlight::github::webhook::sign(SECRET, &form);
        self.post_webhook(&Self::headers(hook, "application/x-www-form-urlencoded", signature), form).await
    }

    /// Delivers a webhook signed with another secret.
    pub async fn deliver_signed_with(&self, hook: &Webhook, secret: &str) -> Answer {
        let signature = greenlight::github::webhook::sign(secret, &hook.body);
        self.post_webhook(&Self::headers(hook, "application/json", signature), hook.body.clone()).await
    }

    fn deliveries_queue(&self) -> greenlight::queue::WorkQueue<greenlight::model::Trigger> {
        greenlight::queue::WorkQueue::deliveries(greenlight::redis_server::pool(&self.redis.url()).unwrap())
    }

    /// Deliveries ever added to the delivery stream (Redis' `entries-added`):
    /// every one intake accepted, whether a planner has acknowledged (and so
    /// deleted) it since or not.
    pub async fn deliveries_accepted(&self) -> u64 {
        let client = redis::Client::open(self.redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let info: std::collections::HashMap<String, redis::Value> =
            redis::cmd("XINFO").arg("STREAM").arg("gl:deliveries").query_async(&mut conn).await.unwrap();
        match info.get("entries-added") {
            Some(redis::Value::Int(n)) => *n as u64,
            other => panic!("XINFO STREAM has no entries-added (Redis 7 or later): {other:?}"),
        }
    }

    /// Entries in the delivery stream.
    pub async fn queued_deliveries(&self) -> u64 {
        self.deliveries_queue().len().await.unwrap_or(0)
    }

    /// Deliveries read by a planner and not acknowledged (still to be retried).
    pub async fn unacknowledged_deliveries(&self) -> u64 {
        self.deliveries_queue().pending().await.unwrap()
    }

    /// Waits until planners have read and acknowledged every delivery
    /// queued so far: whatever they were going to do about them is done.
    pub async fn expect_deliveries_handled(&self) {
        let queue = self.deliveries_queue();
        super::wait::until("every delivery to be planned and acknowledged", || async { queue.is_drained().await.ok()?.then_some(()) }).await
    }

    /// `/readyz`'s status.
    pub async fn readiness(&self) -> u16 {
        self.http.get(format!("{}/readyz", self.url())).send().await.expect("greenlight answers").status().as_u16()
    }

    /// `/healthz`'s status.
    pub async fn liveness(&self) -> u16 {
        self.http.get(format!("{}/healthz", self.url())).send().await.expect("greenlight answers").status().as_u16()
    }

    /// The store, to read builds as the API will.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A repository's builds, newest first.
    pub async fn builds(&self, repo: i64) -> Vec<Build> {
        self.store.builds_page(RepoId(repo), None, 0, 100).await.unwrap()
    }

    /// Waits until a repository has `n` builds; returns them newest first.
    pub async fn expect_builds(&self, repo: i64, n: usize) -> Vec<Build> {
        super::wait::until(&format!("{n} builds"), || async {
            let builds = self.builds(repo).await;
            (builds.len() == n).then_some(builds)
        })
        .await
    }

    /// Pushes `pipeline` as `.drone.yml` to `branch`, delivers the push, and
    /// waits for the build to finish; returns the commit and the build.
    pub async fn push_and_finish(&self, repo: &RepoHandle, branch: &str, pipeline: &str) -> (String, Build) {
        self.push_and_finish_within(repo, branch, pipeline, super::fake_github::expect_timeout()).await
    }

    /// [`TestApp::push_and_finish`] for a build that takes long by design
    /// (a thousand steps), waiting up to `limit`.
    pub async fn push_and_finish_within(&self, repo: &RepoHandle, branch: &str, pipeline: &str, limit: Duration) -> (String, Build) {
        let number = self.store.repo_counter(RepoId(repo.id)).await.unwrap() + 1;
        let sha = repo.push(branch, &[(".drone.yml", pipeline), ("build.txt", &number.to_string())]);
        assert_eq!(self.deliver(&Webhook::push(repo, branch, &sha)).await.status, 202);
        let build = self.build_done_within(repo.id, number, limit).await;
        (sha, build)
    }

    /// Waits until build `number` of a repository is done; returns it. A
    /// Redis too busy to answer in time (a slow VM) is asked again.
    pub async fn expect_build_done(&self, repo: i64, number: i64) -> Build {
        self.build_done_within(repo, number, super::fake_github::expect_timeout()).await
    }

    async fn build_done_within(&self, repo: i64, number: i64, limit: Duration) -> Build {
        super::wait::within(limit, &format!("build {number} to finish"), || async {
            match self.store.build_by_number(RepoId(repo), number).await {
                Ok(build) => build.filter(|b| b.status.is_done()),
                Err(e) if e.is_transient() => None,
                Err(e) => panic!("reading build {number}: {e}"),
            }
        })
        .await
    }

    /// The stored log of step `step` (by name) of the first stage of a build, as text.
    pub async fn log(&self, build: &Build, step: &str) -> String {
        let stage = self.store.stage(build.stages[0]).await.unwrap().unwrap();
        let record = stage.steps.iter().find(|s| s.name == step).unwrap_or_else(|| panic!("no step {step}"));
        let logs = self.logs().await;
        logs.read(stage.id, record.number).await.unwrap().into_iter().map(|l| l.out).collect()
    }

    /// The first stage of a build.
    pub async fn stage(&self, build: &Build) -> greenlight::store::Stage {
        self.store.stage(build.stages[0]).await.unwrap().unwrap()
    }

    /// Calls the API as a guest or as the admin; returns status and JSON.
    pub async fn api(&self, method: &str, path: &str, admin: bool) -> Answer {
        let mut request = self.http.request(method.parse().unwrap(), format!("{}{path}", self.url()));
        if admin {
            request = request.bearer_auth(API_TOKEN);
        }
        let response = request.send().await.expect("greenlight answers");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        Answer { status, body }
    }

    /// Calls the API as the admin with a JSON body.
    pub async fn api_json(&self, method: &str, path: &str, body: serde_json::Value) -> Answer {
        let response = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url()))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("greenlight answers");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        Answer { status, body }
    }

    /// GETs a path as a guest; returns status, headers and text.
    pub async fn get_text(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let response = self.http.get(format!("{}{path}", self.url())).send().await.expect("greenlight answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap_or_default())
    }

    /// `/metrics` as Prometheus scrapes it (with `token` as a bearer token when given).
    pub async fn scrape(&self, token: Option<&str>) -> (u16, String) {
        let mut request = self.http.get(format!("{}/metrics", self.url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("greenlight answers");
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    }

    /// The parsed metrics, scraped with the admin token.
    pub async fn metrics(&self) -> super::metrics::Scrape {
        let (status, text) = self.scrape(Some(API_TOKEN)).await;
        assert_eq!(status, 200, "{text}");
        super::metrics::Scrape::parse(&text)
    }

    /// Stops greenlight.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        for (other, _) in self.others.drain(..) {
            other.stop().await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        unmount_under(self.data_dir.path());
    }
}
