//! greenlight's roles assembled from the library, with nothing running on
//! its own: a test plans the queued deliveries, then runs one stage job on
//! the worker of its choice, then asserts. Races are driven by calling the
//! lifecycle's transitions in the order a test wants, instead of hoping a
//! busy machine produces them.

use super::app::{PUBLIC_URL, app_key, quick_retries};
use super::fake_github::{APP_ID, FakeGitHub, RepoHandle};
use super::redis::TestRedis;
use super::webhook::Webhook;
use greenlight::app::Deps;
use greenlight::catch_up::CatchUp;
use greenlight::config::GitHubConfig;
use greenlight::config::RetentionConfig;
use greenlight::github::webhook::{Delivery, parse_delivery};
use greenlight::github::{CloneCredentials, RepoFiles};
use greenlight::ids::{DeliveryId, RepoId};
use greenlight::intake::Intake;
use greenlight::lifecycle::Lifecycle;
use greenlight::model::{Build, Stage, StageJob, Trigger};
use greenlight::planner::Planner;
use greenlight::publish::Publisher;
use greenlight::queue::{Consumer, WorkQueue};
use greenlight::redis_server::Redis;
use greenlight::retention::Sweeper;
use greenlight::runner::limits::StepLimits;
use greenlight::runner::sandbox::{Sandbox, SandboxOptions};
use greenlight::runner::{Worker, WorkerParts, WorkerSettings};
use greenlight::secrets::SecretStore;
use greenlight::store::{Logs, Store};
use std::sync::Arc;
use std::time::Duration;

/// A worker that runs only when told to.
pub struct SteppedWorker {
    worker: Arc<Worker>,
    jobs: Consumer<StageJob>,
    /// Its name: the `machine` of the stages it runs.
    pub name: String,
    /// Where its stages' directories are (`stage-N/src` is a checkout).
    pub workspaces: std::path::PathBuf,
    /// Its own data directory, when it has one.
    _data: Option<tempfile::TempDir>,
}

impl SteppedWorker {
    /// Runs the next queued stage job to its end; false when none was queued.
    pub async fn run_next(&mut self) -> bool {
        self.worker.run_queued(&mut self.jobs).await.expect("redis answers")
    }
}

/// A repository, a fake GitHub, a Redis, and greenlight's roles, idle.
pub struct Stepper {
    /// The fake GitHub.
    pub github: FakeGitHub,
    /// `acme/widget`, with the App installed.
    pub repo: RepoHandle,
    /// Every transition.
    pub lifecycle: Lifecycle,
    redis: TestRedis,
    planner: Planner,
    deliveries: Consumer<Trigger>,
    github_config: GitHubConfig,
    data: tempfile::TempDir,
}

impl Stepper {
    /// Everything set up, nothing running.
    pub async fn new() -> Self {
        let github = FakeGitHub::start().await;
        let repo = github.repo("acme/widget");
        let redis = TestRedis::start();
        let pool = greenlight::redis_server::pool(&redis.url()).unwrap();
        let github_config = GitHubConfig { app_id: APP_ID, key: app_key(), api_url: github.api_url() };
        let deps = Deps { retry: quick_retries(), ..Deps::default() };
        let client = greenlight::app::github(&github_config, pool.clone(), None, &deps).unwrap();
        let publisher = Publisher::new(client.clone(), PUBLIC_URL.to_string());
        let lifecycle =
            Lifecycle::new(Store::new(pool.clone()), WorkQueue::stages(pool.clone()), publisher, deps.clock.clone(), deps.metrics.clone());
        let planner = Planner::new(lifecycle.clone(), RepoFiles::new(client));
        let deliveries = Planner::consumer(WorkQueue::deliveries(pool), Redis::open(&redis.url()).unwrap(), "planner-test".to_string());
        let data = tempfile::tempdir().unwrap();
        std::fs::set_permissions(data.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        Self { github, repo, lifecycle, redis, planner, deliveries, github_config, data }
    }

    /// A cron scheduler on this Redis at `clock`'s time, as one `serve`
    /// process runs it (each call: another process).
    pub fn scheduler(&self, clock: greenlight::clock::SharedClock) -> greenlight::cron::Scheduler {
        greenlight::cron::Scheduler::new(self.store().clone(), self.planner.clone(), clock)
    }

    /// Saves cron job `name` building `branch` on `expr`, as of `clock`'s time.
    pub async fn add_cron(&self, name: &str, expr: &str, branch: &str, clock: &greenlight::clock::SharedClock) {
        let now = clock.now().timestamp();
        let job = greenlight::model::CronJob {
            id: 1,
            repo_id: RepoId(self.repo.id),
            name: name.to_string(),
            expr: expr.to_string(),
            branch: branch.to_string(),
            target: String::new(),
            disabled: false,
            created: now,
            updated: now,
            version: 1,
        };
        greenlight::cron::save(self.store(), &job, clock.now()).await.expect("a valid cron job is saved");
    }

    /// The store, to read builds and stages.
    pub fn store(&self) -> &Store {
        self.lifecycle.store()
    }

    /// A worker named `name` (concurrency 1, a 2 s lease).
    pub async fn worker(&self, name: &str) -> SteppedWorker {
        let blobs = greenlight::blobs::Blobs::on_disk(&self.data.path().join("blobs")).unwrap();
        self.worker_on(name, self.data.path(), blobs, None).await
    }

    /// A worker named `name` on a machine of its own (its own data
    /// directory: workspaces, mirrors), keeping caches and artifacts in
    /// `s3`'s bucket as every worker of a deployment with an S3 log store does.
    pub async fn worker_with_bucket(&self, name: &str, s3: &super::s3::TestS3) -> SteppedWorker {
        let data = tempfile::tempdir().unwrap();
        std::fs::set_permissions(data.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let blobs = greenlight::blobs::Blobs::of(&s3.log_store("ci"), data.path()).unwrap();
        let dir = data.path().to_path_buf();
        self.worker_on(name, &dir, blobs, Some(data)).await
    }

    async fn worker_on(
        &self,
        name: &str,
        dir: &std::path::Path,
        blobs: greenlight::blobs::Blobs,
        own: Option<tempfile::TempDir>,
    ) -> SteppedWorker {
        let pool = greenlight::redis_server::pool(&self.redis.url()).unwrap();
        let workspaces = dir.join("workspaces");
        std::fs::create_dir_all(&workspaces).unwrap();
        std::fs::set_permissions(&workspaces, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
        let options = SandboxOptions { limits: Some(StepLimits::default()), ..SandboxOptions::default() };
        let sandbox =
            Sandbox::probe(&options, &workspaces).await.expect("bwrap and cgroups work (apt-get install bubblewrap; run as root)");
        let deps = Deps { retry: quick_retries(), ..Deps::default() };
        let client = greenlight::app::github(&self.github_config, pool.clone(), None, &deps).unwrap();
        let parts = WorkerParts {
            lifecycle: self.lifecycle.clone(),
            logs: Logs::new(pool.clone()),
            sandbox,
            secrets: SecretStore::new(Store::new(pool.clone()), None),
            credentials: CloneCredentials::new(client),
            clock: deps.clock,
            blobs,
        };
        let settings = WorkerSettings {
            concurrency: 1,
            data_dir: dir.to_path_buf(),
            lease: Duration::from_secs(2),
            grace: Duration::from_secs(2),
            log_limit: 1 << 20,
            max_step_timeout: greenlight::pipeline::DEFAULT_MAX_STEP_TIMEOUT,
            workspace_cap: None,
            cache_cap: greenlight::config::DEFAULT_CACHE_MB << 20,
        };
        let worker = Worker::new(parts, WorkQueue::stages(pool), settings, name.to_string());
        let jobs = worker.consumer(Redis::open(&self.redis.url()).unwrap());
        SteppedWorker { worker: Arc::new(worker), jobs, name: name.to_string(), workspaces, _data: own }
    }

    /// Commits `.drone.yml` to `branch` and queues its push as intake would; returns the sha.
    pub async fn push(&self, branch: &str, pipeline: &str) -> String {
        let sha = self.repo.push(branch, &[(".drone.yml", pipeline)]);
        self.queue(&Webhook::push(&self.repo, branch, &sha)).await;
        sha
    }

    /// Queues a delivery's trigger, as intake does after verifying it.
    pub async fn queue(&self, hook: &Webhook) {
        let Ok(Delivery::Build(trigger)) = parse_delivery(hook.event, &DeliveryId(hook.guid.clone()), &hook.body) else {
            panic!("{} is not a build trigger", hook.event);
        };
        let pool = greenlight::redis_server::pool(&self.redis.url()).unwrap();
        WorkQueue::deliveries(pool).push(&trigger).await.unwrap();
    }

    /// A delivery-log poller of a `serve` process named `owner`, on this
    /// Redis and fake GitHub, taking deliveries in as intake does.
    pub fn catch_up(&self, owner: &str) -> CatchUp {
        let pool = greenlight::redis_server::pool(&self.redis.url()).unwrap();
        let deps = Deps { retry: quick_retries(), ..Deps::default() };
        let client = greenlight::app::github(&self.github_config, pool.clone(), None, &deps).unwrap();
        let redis = Redis::open(&self.redis.url()).unwrap();
        let secrets = vec![secrecy::SecretString::from(super::webhook::SECRET.to_string())];
        let intake =
            Intake::new(secrets, redis.shared().unwrap(), WorkQueue::deliveries(pool.clone()), Store::new(pool.clone()), deps.metrics);
        CatchUp::new(client, intake, Store::new(pool), deps.clock, owner.to_string())
    }

    /// Plans every queued delivery; returns how many there were.
    pub async fn plan(&mut self) -> usize {
        self.planner.plan_queued(&mut self.deliveries).await.expect("redis answers")
    }

    /// The repository's builds, newest first.
    pub async fn builds(&self) -> Vec<Build> {
        self.store().builds_page(RepoId(self.repo.id), None, 0, 100).await.unwrap()
    }

    /// Build `number` of the repository.
    pub async fn build(&self, number: i64) -> Build {
        self.store().build_by_number(RepoId(self.repo.id), number).await.unwrap().unwrap_or_else(|| panic!("no build {number}"))
    }

    /// The stages of build `number`.
    pub async fn stages(&self, number: i64) -> Vec<Stage> {
        let build = self.build(number).await;
        self.store().stages(&build).await.unwrap()
    }

    /// The stage job of stage `index` (0-based) of build `number`, as a worker claims it.
    pub async fn job(&self, number: i64, index: usize) -> StageJob {
        let build = self.build(number).await;
        StageJob { build: build.id, stage: build.stages[index] }
    }

    /// Pushes `pipeline` to `branch`, plans it and runs its stages on
    /// `worker` until none is queued; returns the finished build.
    pub async fn build_to_end(&mut self, worker: &mut SteppedWorker, branch: &str, pipeline: &str) -> Build {
        self.push(branch, pipeline).await;
        assert_eq!(self.plan().await, 1, "the push is planned");
        while worker.run_next().await {}
        let number = self.store().repo_counter(RepoId(self.repo.id)).await.unwrap();
        let build = self.build(number).await;
        assert!(build.status.is_done(), "build {number} finished");
        build
    }

    /// The stored log of step `step` (by name) of the build's first stage, as text.
    pub async fn log(&self, build: &Build, step: &str) -> String {
        let stage = self.store().stage(build.stages[0]).await.unwrap().unwrap();
        let record = stage.steps.iter().find(|s| s.name == step).unwrap_or_else(|| panic!("no step {step}"));
        self.logs().read(stage.id, record.number).await.unwrap().into_iter().map(|l| l.out).collect()
    }

    /// A sweeper of its own, as another process would have, keeping what `policy` says.
    pub fn sweeper(&self, owner: &str, policy: RetentionConfig) -> Sweeper {
        self.sweeper_at(owner, policy, greenlight::clock::system())
    }

    /// A sweeper whose clock is `clock`.
    pub fn sweeper_at(&self, owner: &str, policy: RetentionConfig, clock: greenlight::clock::SharedClock) -> Sweeper {
        let pool = greenlight::redis_server::pool(&self.redis.url()).unwrap();
        let artifacts = greenlight::blobs::Blobs::on_disk(&self.data.path().join("blobs")).unwrap().scoped(greenlight::blobs::ARTIFACTS);
        Sweeper::new(Store::new(pool.clone()), Logs::new(pool), artifacts, policy, clock, owner.to_string())
    }

    /// A store on a pool of its own, as another process would have.
    pub fn other_store(&self) -> Store {
        Store::new(greenlight::redis_server::pool(&self.redis.url()).unwrap())
    }

    /// Step logs.
    pub fn logs(&self) -> Logs {
        Logs::new(greenlight::redis_server::pool(&self.redis.url()).unwrap())
    }

    /// Entries in the delivery stream and in the stage job stream.
    pub async fn stream_lengths(&self) -> (u64, u64) {
        let pool = greenlight::redis_server::pool(&self.redis.url()).unwrap();
        (WorkQueue::deliveries(pool.clone()).len().await.unwrap(), WorkQueue::stages(pool).len().await.unwrap())
    }

    /// The time to live, in seconds, Redis reports for `key` (-1: none, -2: no key).
    pub async fn ttl(&self, key: &str) -> i64 {
        let pool = greenlight::redis_server::pool(&self.redis.url()).unwrap();
        redis::cmd("TTL").arg(key).query_async(&mut pool.get().await.unwrap()).await.unwrap()
    }

    /// A number Redis's `INFO` reports, such as `used_memory`.
    pub async fn redis_info(&self, field: &str) -> u64 {
        self.redis.info(field).await
    }

    /// How many keys Redis holds.
    pub async fn key_count(&self) -> u64 {
        let pool = greenlight::redis_server::pool(&self.redis.url()).unwrap();
        redis::cmd("DBSIZE").query_async(&mut pool.get().await.unwrap()).await.unwrap()
    }
}
