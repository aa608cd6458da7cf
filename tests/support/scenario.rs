//! Scenarios: a fake GitHub with `acme/widget` on it, greenlight started
//! against it, and verbs that say what happens (push, open a pull request,
//! expect a check run) so test bodies read as the story they check.

use super::app::{Answer, DATA_DIR_MODE, PRIVATE_DATA_DIR_MODE, TestApp, runner_config, test_deps};
use super::clock::TestClock;
use super::drone::{Browser, DroneApi};
use super::fake_github::{CheckRunRecord, CheckRunState, FakeGitHub, RepoHandle, StatusRecord, StatusState};
use super::redis::TestRedis;
use super::webhook::Webhook;
use super::worker::WorkerProcess;
use greenlight::app::Deps;
use greenlight::config::{LogStoreConfig, RunnerConfig};
use greenlight::store::{Build, Stage};

/// A commit on the fake, as pushing it returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha(pub String);

impl Sha {
    /// The seven-character form GitHub and greenlight's messages use.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }

    /// The full hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Sha {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Sha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who opens the pull requests of scenarios (the octokit example's author).
pub const PR_AUTHOR: &str = "Codertocat";

/// What tests read of a build's commit. `greenlight::store::Build` is being
/// reshaped (its commit fields move into a sub-struct); reading them through
/// this trait keeps that change to the one impl below.
pub trait BuildCommit {
    /// The commit built.
    fn sha(&self) -> &str;
    /// The full git ref.
    fn git_ref(&self) -> &str;
    /// The repository the code came from (a fork's slug for fork pull requests).
    fn source_repo(&self) -> &str;
    /// Whether the code came from a fork.
    fn is_fork(&self) -> bool;
}

impl BuildCommit for Build {
    fn sha(&self) -> &str {
        &self.commit.sha.0
    }
    fn git_ref(&self) -> &str {
        &self.commit.git_ref
    }
    fn source_repo(&self) -> &str {
        &self.commit.source_repo
    }
    fn is_fork(&self) -> bool {
        self.commit.fork
    }
}

/// How to set a scenario up; [`Scenario::start`] runs it.
#[must_use]
pub struct Scenario {
    slug: &'static str,
    private: bool,
    enterprise: bool,
    durable: bool,
    runner: Option<RunnerConfig>,
    token_lifetime: Option<chrono::Duration>,
    data_mode: u32,
    log_store: LogStoreConfig,
    configured: bool,
    delivery_poll: Option<std::time::Duration>,
    clock: Option<std::sync::Arc<TestClock>>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self::new()
    }
}

impl Scenario {
    /// Public `acme/widget` on github.com, greenlight as `serve --no-worker`
    /// (planning only: builds stay queued unless a worker is added).
    pub fn new() -> Self {
        Self {
            slug: "acme/widget",
            private: false,
            enterprise: false,
            durable: false,
            runner: None,
            token_lifetime: None,
            data_mode: DATA_DIR_MODE,
            log_store: LogStoreConfig::Redis,
            configured: true,
            delivery_poll: None,
            clock: None,
        }
    }

    /// No GitHub App is configured: greenlight serves its setup page.
    pub fn unconfigured(mut self) -> Self {
        self.configured = false;
        self
    }

    /// greenlight reads the App's delivery log every `poll`.
    pub fn delivery_poll(mut self, poll: std::time::Duration) -> Self {
        self.delivery_poll = Some(poll);
        self
    }

    /// greenlight's time is `clock`'s (stepped by the test), and it looks
    /// for due cron jobs every 20 ms.
    pub fn clock(mut self, clock: &std::sync::Arc<TestClock>) -> Self {
        self.clock = Some(clock.clone());
        self
    }

    /// greenlight runs workers in-process (2-second stage lease, 16 MiB logs).
    pub fn with_workers(self) -> Self {
        self.runner(runner_config())
    }

    /// greenlight runs workers configured by `runner`.
    pub fn runner(mut self, runner: RunnerConfig) -> Self {
        self.runner = Some(runner);
        self
    }

    /// The repository is private and named `slug`.
    pub fn private_repo(mut self, slug: &'static str) -> Self {
        self.slug = slug;
        self.private = true;
        self
    }

    /// GitHub is an Enterprise Server (REST API under `/api/v3`).
    pub fn enterprise(mut self) -> Self {
        self.enterprise = true;
        self
    }

    /// Redis persists with AOF fsynced on every write.
    pub fn durable(mut self) -> Self {
        self.durable = true;
        self
    }

    /// The data directory is private to greenlight's user (mode 0700, as
    /// under `/root`): the sandbox user cannot pass through it.
    pub fn private_data_dir(mut self) -> Self {
        self.data_mode = PRIVATE_DATA_DIR_MODE;
        self
    }

    /// Installation tokens live this long.
    pub fn token_lifetime(mut self, lifetime: chrono::Duration) -> Self {
        self.token_lifetime = Some(lifetime);
        self
    }

    /// Finished step logs go to `log_store` (e.g. a [`super::s3::TestS3`]'s bucket).
    pub fn log_store(mut self, log_store: LogStoreConfig) -> Self {
        self.log_store = log_store;
        self
    }

    /// Starts as [`Scenario::start`] would, expecting greenlight to refuse
    /// to start; returns its error, with its causes.
    pub async fn start_failure(self) -> String {
        let github = FakeGitHub::start().await;
        match TestApp::start_with_log_store(&github, TestRedis::start(), self.runner, self.data_mode, self.log_store).await {
            Ok(_) => panic!("greenlight started"),
            Err(e) => format!("{e:#}"),
        }
    }

    /// Starts the fake, creates the repository, starts greenlight.
    pub async fn start(self) -> Ctx {
        let github = if self.enterprise { FakeGitHub::start_enterprise().await } else { FakeGitHub::start().await };
        if let Some(lifetime) = self.token_lifetime {
            github.set_token_lifetime(lifetime);
        }
        let repo = if self.private { github.private_repo(self.slug) } else { github.repo(self.slug) };
        let redis = if self.durable { TestRedis::start_durable() } else { TestRedis::start() };
        let setup = if self.configured {
            super::app::configured(&github)
        } else {
            greenlight::config::AppSetup::Unconfigured { api_url: github.api_url() }
        };
        let mut deps = test_deps();
        if let Some(clock) = &self.clock {
            deps = Deps { clock: clock.shared(), cron_interval: std::time::Duration::from_millis(20), ..deps };
        }
        let app = TestApp::start_as(setup, redis, self.runner, self.data_mode, self.log_store, self.delivery_poll, deps)
            .await
            .expect("greenlight starts");
        Ctx { github, repo, app }
    }
}

/// Where a step's log is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPlace {
    /// Its lines are in their Redis stream (the step runs, or it was not archived yet).
    pub stream: bool,
    /// Its compressed object is in Redis (the embedded log store).
    pub object_in_redis: bool,
}

/// A running scenario: the fake GitHub, its repository, and greenlight.
pub struct Ctx {
    /// The fake GitHub (failure injection, tokens, requests).
    pub github: FakeGitHub,
    /// The repository builds run for.
    pub repo: RepoHandle,
    /// greenlight.
    pub app: TestApp,
}

impl Ctx {
    // --- the repository ---

    /// Commits `files` to `branch`; returns the new head.
    pub fn push(&self, branch: &str, files: &[(&str, &str)]) -> Sha {
        Sha(self.repo.push(branch, files))
    }

    /// Commits `pipeline` as `.drone.yml` to `branch`; returns the new head.
    pub fn push_pipeline(&self, branch: &str, pipeline: &str) -> Sha {
        self.push(branch, &[(".drone.yml", pipeline)])
    }

    // --- webhooks ---

    /// Delivers any webhook, signed as GitHub signs it.
    pub async fn deliver(&self, hook: &Webhook) -> Answer {
        self.app.deliver(hook).await
    }

    /// Delivers the push of `sha` to `git_ref` (a branch, or `refs/tags/…`).
    pub async fn deliver_push(&self, git_ref: &str, sha: &str) -> Answer {
        self.deliver(&Webhook::push(&self.repo, git_ref, sha)).await
    }

    /// Delivers the `repository` event `action` (privatized, publicized, …),
    /// after which the repository is `private` or not.
    pub async fn deliver_repository_event(&self, action: &str, private: bool) -> Answer {
        self.deliver(&Webhook::repository(&self.repo, action, private)).await
    }

    /// Delivers `pull_request` with `action` for PR `number` from `branch` at `sha`.
    pub async fn deliver_pr(&self, action: &str, number: u64, branch: &str, sha: &str) -> Answer {
        self.deliver(&Webhook::pull_request(&self.repo, action, number, branch, sha)).await
    }

    /// Delivers a pull request opened from `branch` of the fork `fork`.
    pub async fn deliver_fork_pr(&self, number: u64, branch: &str, sha: &str, fork: &str) -> Answer {
        self.deliver(&Webhook::pull_request_from(&self.repo, "opened", number, branch, sha, Some(fork))).await
    }

    /// Pushes `files` to `branch` and opens PR `number` from it; returns the head.
    pub async fn open_pr(&self, number: u64, branch: &str, files: &[(&str, &str)]) -> Sha {
        let sha = self.push(branch, files);
        let answer = self.deliver_pr("opened", number, branch, &sha).await;
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        sha
    }

    /// Pushes `files` to `branch` and delivers the push; returns the head.
    pub async fn push_and_deliver(&self, branch: &str, files: &[(&str, &str)]) -> Sha {
        let sha = self.push(branch, files);
        let answer = self.deliver_push(branch, &sha).await;
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        sha
    }

    /// Commits `count` times to `branch` (commit `i` writing `files(i)`)
    /// and delivers one push of them all from `before`; returns the head.
    pub async fn push_commits_and_deliver(
        &self,
        branch: &str,
        before: &str,
        count: usize,
        files: impl Fn(usize) -> Vec<(String, String)>,
    ) -> Sha {
        let shas = self.repo.push_commits(branch, count, files);
        let answer = self.deliver(&Webhook::push_range(&self.repo, branch, before, &shas)).await;
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        Sha(shas.last().unwrap().clone())
    }

    /// Pull request `pr` enters the merge queue: GitHub commits its group
    /// (`files` on top of the pull request) on a queue branch and asks for
    /// checks; returns the group's head.
    pub async fn enter_merge_queue(&self, pr: u64, files: &[(&str, &str)]) -> Sha {
        let base = self.repo.branch_head("main").expect("main exists");
        let head = self.push(&super::webhook::merge_queue_branch(pr), files);
        let answer = self.deliver(&Webhook::merge_group_checks_requested(&self.repo, pr, &head, &base)).await;
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        head
    }

    /// The merge queue drops the group whose head is `head` (GitHub's `destroyed`).
    pub async fn leave_merge_queue(&self, pr: u64, head: &str) -> Answer {
        let base = self.repo.branch_head("main").expect("main exists");
        self.deliver(&Webhook::merge_group_destroyed(&self.repo, pr, head, &base)).await
    }

    /// Waits until a branch protection rule requiring the checks `required`
    /// (check run names or status contexts) lets `sha` merge.
    pub async fn expect_required_checks_pass(&self, sha: &str, required: &[&str]) {
        self.github.expect_required_checks_pass(&self.repo, sha, required).await
    }

    /// `author` comments `body` on pull request `number` (opened by
    /// [`PR_AUTHOR`]) and GitHub delivers it; returns the comment's id and
    /// greenlight's answer to the delivery.
    pub async fn comment_on_pr(&self, number: u64, author: &str, body: &str) -> (u64, Answer) {
        let id = self.repo.comment(number, author, body);
        let answer = self.deliver(&Webhook::pr_comment(&self.repo, number, PR_AUTHOR, id, author, body)).await;
        (id, answer)
    }

    /// Waits until comment `id` carries the reaction `content` (`eyes`, `-1`).
    pub async fn expect_reaction(&self, id: u64, content: &str) {
        let found = self.github.wait_for(|| self.repo.reactions(id).iter().any(|r| r == content).then_some(())).await;
        assert!(found.is_some(), "no {content} reaction on comment {id}: {:?}", self.repo.reactions(id));
    }

    /// Waits for greenlight's reply on pull request `number` that contains `text`; returns it.
    pub async fn expect_reply(&self, number: u64, text: &str) -> String {
        let found = self.github.wait_for(|| self.repo.replies(number).into_iter().find(|r| r.contains(text))).await;
        found.unwrap_or_else(|| panic!("no reply containing {text:?} on #{number}: {:?}", self.repo.replies(number)))
    }

    /// Runs the `greenlight` command with `args` against this greenlight
    /// (its URL and admin token in the environment, as an operator sets them).
    pub async fn run_command(&self, args: &[&str]) -> std::process::Output {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let server = self.app.url();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_greenlight"))
                .args(&args)
                .env_clear()
                .env("GREENLIGHT_SERVER", server)
                .env("GREENLIGHT_API_TOKEN", super::app::API_TOKEN)
                .output()
                .expect("greenlight runs")
        })
        .await
        .unwrap()
    }

    /// The App is installed on the repository (greenlight learns of it).
    pub async fn install(&self) -> Answer {
        self.deliver(&Webhook::installation("created", &[&self.repo])).await
    }

    /// The Re-run button of one check run.
    pub async fn rerun_check_run(&self, run: &CheckRunRecord) -> Answer {
        self.deliver(&Webhook::check_run_rerequested(&self.repo, run)).await
    }

    /// "Re-run all" for a commit.
    pub async fn rerun_suite(&self, sha: &str) -> Answer {
        self.deliver(&Webhook::check_suite_rerequested(&self.repo, sha)).await
    }

    /// Presses the check run button with `identifier`.
    pub async fn press_button(&self, run: &CheckRunRecord, identifier: &str) -> Answer {
        self.deliver(&Webhook::check_run_action(&self.repo, run, identifier)).await
    }

    // --- what GitHub shows ---

    /// Waits until the newest check run `name` on `sha` is in `state`; returns it.
    pub async fn expect_check_run(&self, sha: &str, name: &str, state: CheckRunState) -> CheckRunRecord {
        self.github.expect_check_run(&self.repo, sha, name, state).await
    }

    /// Waits until some check run on `sha` matches `probe` (described by `what`); returns it.
    pub async fn expect_check_run_where(&self, sha: &str, what: &str, probe: impl Fn(&CheckRunRecord) -> bool) -> CheckRunRecord {
        self.github.expect_check_run_where(&self.repo, sha, what, probe).await
    }

    /// Waits until the latest status `context` on `sha` is `state`; returns it.
    pub async fn expect_status(&self, sha: &str, context: &str, state: StatusState) -> StatusRecord {
        self.github.expect_status(&self.repo, sha, context, state).await
    }

    /// Every check run on `sha`, oldest first.
    pub fn check_runs(&self, sha: &str) -> Vec<CheckRunRecord> {
        self.github.check_runs(&self.repo, sha)
    }

    /// Every status on `sha`, oldest first.
    pub fn statuses(&self, sha: &str) -> Vec<StatusRecord> {
        self.github.statuses(&self.repo, sha)
    }

    /// Waits until greenlight has planned every delivery so far and then
    /// left GitHub alone for a while: what it was going to do is done.
    pub async fn settle(&self) {
        self.app.expect_deliveries_handled().await;
        self.github.settle().await;
    }

    // --- builds ---

    /// The repository's builds, newest first.
    pub async fn builds(&self) -> Vec<Build> {
        self.app.builds(self.repo.id).await
    }

    /// Waits until the repository has `n` builds; returns them newest first.
    pub async fn expect_builds(&self, n: usize) -> Vec<Build> {
        self.app.expect_builds(self.repo.id, n).await
    }

    /// Waits until build `number` is done; returns it.
    pub async fn expect_build_done(&self, number: i64) -> Build {
        self.app.expect_build_done(self.repo.id, number).await
    }

    /// Pushes `pipeline` to `branch`, delivers the push and waits for its build to finish.
    pub async fn push_and_finish(&self, branch: &str, pipeline: &str) -> (Sha, Build) {
        let (sha, build) = self.app.push_and_finish(&self.repo, branch, pipeline).await;
        (Sha(sha), build)
    }

    /// [`Ctx::push_and_finish`] for a build that takes long by design, waiting up to `limit`.
    pub async fn push_and_finish_within(&self, branch: &str, pipeline: &str, limit: std::time::Duration) -> (Sha, Build) {
        let (sha, build) = self.app.push_and_finish_within(&self.repo, branch, pipeline, limit).await;
        (Sha(sha), build)
    }

    /// The first stage of a build.
    pub async fn stage(&self, build: &Build) -> Stage {
        self.app.stage(build).await
    }

    /// Every stage of a build, in pipeline order.
    pub async fn stages(&self, build: &Build) -> Vec<Stage> {
        self.app.store().stages(build).await.unwrap()
    }

    /// The names of a build's stages.
    pub async fn stage_names(&self, build: &Build) -> Vec<String> {
        self.stages(build).await.into_iter().map(|s| s.name).collect()
    }

    /// The stored log of step `step` of the build's first stage.
    pub async fn log(&self, build: &Build, step: &str) -> String {
        self.app.log(build, step).await
    }

    /// Where step `step`'s log (of the build's first stage) is now.
    pub async fn log_place(&self, build: &Build, step: &str) -> LogPlace {
        let (stage, number) = self.step_key(build, step).await;
        let pool = greenlight::redis_server::pool(&self.app.redis.url()).unwrap();
        let mut conn = pool.get().await.unwrap();
        let exists = |key: String| redis::cmd("EXISTS").arg(key).clone();
        let stream: i64 = exists(format!("gl:log:{stage}:{number}")).query_async(&mut conn).await.unwrap();
        let object: i64 = exists(format!("gl:logz:{stage}:{number}")).query_async(&mut conn).await.unwrap();
        LogPlace { stream: stream > 0, object_in_redis: object > 0 }
    }

    /// Puts a finished step's log back as the step's writer left it before
    /// archiving it: lines in their stream (batches of at most 1,000), no object.
    pub async fn unarchive_log(&self, build: &Build, step: &str) {
        let (stage, number) = self.step_key(build, step).await;
        let logs = self.app.logs().await;
        let lines = logs.read(stage, number).await.unwrap();
        logs.clear(stage, number).await.unwrap();
        for batch in lines.chunks(1000) {
            logs.append(stage, number, batch).await.unwrap();
        }
    }

    /// Archives a step's log, as its writer does when the step ends.
    pub async fn archive_log(&self, build: &Build, step: &str) -> bool {
        let (stage, number) = self.step_key(build, step).await;
        self.app.logs().await.archive(stage, number).await.unwrap()
    }

    /// Leaves a finished step's log as a worker stopped in the middle of
    /// archiving it would: the object written, the stream not yet deleted.
    pub async fn half_archive_log(&self, build: &Build, step: &str) {
        self.unarchive_log(build, step).await;
        let (stage, number) = self.step_key(build, step).await;
        let logs = self.app.logs().await;
        let lines = logs.read(stage, number).await.unwrap();
        assert!(logs.archive(stage, number).await.unwrap(), "archived");
        for batch in lines.chunks(1000) {
            logs.append(stage, number, batch).await.unwrap();
        }
    }

    /// The last `lines` lines of step `step`'s log, as the check run's
    /// republishing reads them.
    pub async fn log_tail(&self, build: &Build, step: &str, lines: usize) -> greenlight::store::LogTail {
        let (stage, number) = self.step_key(build, step).await;
        self.app.logs().await.tail(stage, number, lines).await.unwrap()
    }

    /// Forgets step `step`'s log, as a stage run again (or retention) does.
    pub async fn clear_log(&self, build: &Build, step: &str) {
        let (stage, number) = self.step_key(build, step).await;
        self.app.logs().await.clear(stage, number).await.unwrap();
    }

    async fn step_key(&self, build: &Build, step: &str) -> (greenlight::ids::StageId, i64) {
        let stage = self.stage(build).await;
        let record = stage.steps.iter().find(|s| s.name == step).unwrap_or_else(|| panic!("no step {step}"));
        (stage.id, record.number)
    }

    /// Waits until step `step`'s log contains `text` (the step got that far); returns the log.
    pub async fn expect_log_contains(&self, build: &Build, step: &str, text: &str) -> String {
        super::wait::until(&format!("{text:?} in the log of {step}"), || async {
            let log = self.log(build, step).await;
            log.contains(text).then_some(log)
        })
        .await
    }

    // --- the Drone API, for what an administrator does ---

    /// The Drone API of the repository, as the admin.
    pub fn api(&self) -> DroneApi {
        DroneApi::new(self.app.url(), &self.repo.slug, true)
    }

    /// The Drone API of the repository, as a guest.
    pub fn guest(&self) -> DroneApi {
        self.api().guest()
    }

    /// A browser on the repository's build pages.
    pub fn browser(&self) -> Browser {
        Browser::new(self.app.url(), &self.repo.slug)
    }

    /// The admin restarts build `number`.
    pub async fn restart(&self, number: i64) -> Answer {
        self.api().restart(number).await
    }

    /// The admin cancels build `number`.
    pub async fn cancel(&self, number: i64) -> Answer {
        self.api().cancel(number).await
    }

    /// The admin approves stage `stage` of build `number`.
    pub async fn approve(&self, number: i64, stage: i64) -> Answer {
        self.api().approve(number, stage).await
    }

    /// The admin adds a secret (that pull requests get if `pull_request`).
    pub async fn add_secret(&self, name: &str, value: &str, pull_request: bool) {
        let answer = self.api().create_secret(name, value, Some(pull_request)).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }

    /// Starts `greenlight worker` as a separate process with `grace_secs` of shutdown grace.
    pub fn start_worker_process(&self, grace_secs: u64) -> WorkerProcess {
        WorkerProcess::start(&self.github, &self.app, grace_secs, 0)
    }

    /// Starts `greenlight worker` as a separate process whose workspaces are capped at `workspace_mb` MiB.
    pub fn start_capped_worker_process(&self, grace_secs: u64, workspace_mb: u64) -> WorkerProcess {
        WorkerProcess::start(&self.github, &self.app, grace_secs, workspace_mb)
    }

    /// Starts a `greenlight worker` process on the data directory of `earlier` (stopped), with its cap.
    pub fn restart_worker_process(&self, earlier: &WorkerProcess, grace_secs: u64) -> WorkerProcess {
        WorkerProcess::start_in(&self.github, &self.app, grace_secs, earlier.data(), earlier.workspace_mb())
    }

    /// The keys of every artifact object kept (on the data directory's disk, or in the bucket).
    pub async fn artifact_objects(&self) -> Vec<String> {
        self.app.artifact_blobs().list("").await.unwrap().into_iter().map(|b| b.key).collect()
    }

    /// Sweeps build history once as another process would, keeping what
    /// `policy` says (waiting while greenlight's own sweeper holds the lease).
    pub async fn sweep(&self, policy: greenlight::config::RetentionConfig) -> greenlight::retention::SweepReport {
        let pool = greenlight::redis_server::pool(&self.app.redis.url()).unwrap();
        let logs = greenlight::store::Logs::new(pool.clone());
        let sweeper = greenlight::retention::Sweeper::new(
            greenlight::store::Store::new(pool),
            logs,
            self.app.artifact_blobs(),
            policy,
            greenlight::clock::system(),
            "test-sweeper".to_string(),
        );
        super::wait::until("the sweep lease", || async { sweeper.sweep().await.unwrap() }).await
    }
}
