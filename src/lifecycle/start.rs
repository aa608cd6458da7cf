//! Starting a build from a trigger, whatever asked for it: a webhook, a
//! Re-run button, the API's restart. Recorded once per queue entry, then
//! announced (pending statuses, queued check runs, stage jobs) as far as
//! it had not been, so a planner that crashed or met a GitHub outage resumes
//! without a second build or a second check run.
//!
//! A pipeline its trigger filters out is a stage too, recorded skipped with
//! the reason and announced as a `skipped` check run and a `success` status
//! (unless `greenlight: {report_skipped: false}`): a branch protection rule
//! that requires it then never waits for a report that will not come.

use super::Lifecycle;
use crate::github::client::{CommitAccount, CommitInfo, GitPerson};
use crate::github::{GitHubError, RepoFile, RepoFiles};
use crate::ids::{BuildId, DeliveryId, EntryId, Sha, StageId};
use crate::model::{
    Author, Build, BuildRequest, Commit, Event, MAX_MESSAGE_CHARS, Repo, RerunRequest, RerunTarget, Stage, StageState, Status, StepRecord,
    Trigger, truncate_chars,
};
use crate::pipeline::limits::MAX_FILE_BYTES;
use crate::pipeline::{self, ParseError, Pipeline, Selection};
use crate::publish::CONFIG_CHECK;
use crate::store::{Claim, Store, StoreError, StoreResult};

/// How many recent builds of a repository a check suite rerun looks through.
const RERUN_SCAN: usize = 100;

/// Why a destroyed merge group's build is cancelled (its check runs say so).
const DESTROYED_GROUP_REASON: &str = "the merge group was destroyed";

/// How many builds of a merge group's ref a `destroyed` looks through: one
/// normally (each group has a ref of its own), a few after redeliveries.
const MERGE_GROUP_SCAN: usize = 10;

/// Why starting a build stopped before it was done.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// GitHub failed.
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    /// A transition (queueing a stage, cancelling a superseded build) failed.
    #[error(transparent)]
    Transition(#[from] anyhow::Error),
    /// A build asked for by branch cannot be made: no such commit, or the
    /// repository's clone URL is not known yet.
    #[error("{0}")]
    NotBuildable(String),
}

impl StartError {
    /// Whether trying again later may succeed (an outage, not a refusal).
    pub fn is_transient(&self) -> bool {
        match self {
            StartError::Store(e) => e.is_transient(),
            StartError::GitHub(e) => e.is_transient(),
            // Transitions fail on the store: transient unless a record is corrupt.
            StartError::Transition(e) => e.downcast_ref::<StoreError>().is_none_or(StoreError::is_transient),
            StartError::NotBuildable(_) => false,
        }
    }
}

/// What `.drone.yml` says to build for a trigger.
enum Plan {
    /// These pipelines to run and to report skipped (at least one of
    /// either); `auto_cancel` from the file's settings.
    Pipelines { selection: Selection, auto_cancel: bool },
    /// The file is missing or invalid: an errored build saying why.
    Invalid(String),
}

impl Lifecycle {
    /// Claims the deliveries of entries about to be started, in one round
    /// trip: for each entry, the other entry whose build holds its delivery
    /// (it is a redelivery while that build is queued or running: its start
    /// would find so and do nothing), or `None`. A merge group's entries are
    /// not claimed here: their start looks at the group first.
    pub async fn copies(&self, entries: &[(&EntryId, &Trigger)]) -> StoreResult<Vec<Option<EntryId>>> {
        let claimed: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].1.commit.event != Event::MergeGroup).collect();
        let claims: Vec<(&DeliveryId, &EntryId)> = claimed.iter().map(|&i| (&entries[i].1.delivery, entries[i].0)).collect();
        let mut copies = vec![None; entries.len()];
        for (i, claim) in claimed.into_iter().zip(self.store.claim_deliveries(&claims).await?) {
            if let Claim::InFlight(other) = claim {
                copies[i] = Some(other);
            }
        }
        Ok(copies)
    }

    /// Starts (or resumes) the build of queue entry `entry`; safe to call
    /// again for the same entry. Returns the build, `None` when nothing is
    /// to be built (another copy of the delivery is in flight, no pipeline
    /// matches and none is to be reported skipped, the trigger is a merge
    /// group's `destroyed`, which cancels its build, or that group was
    /// destroyed already).
    pub async fn start(&self, entry: &EntryId, trigger: &Trigger, files: &RepoFiles) -> Result<Option<BuildId>, StartError> {
        if trigger.commit.ends_merge_group() {
            self.cancel_merge_group(trigger).await?;
            return Ok(None);
        }
        if self.group_destroyed(trigger).await? {
            tracing::info!(repo = %trigger.repo.slug(), sha = %trigger.commit.sha, "the merge group was destroyed before its build started; nothing to do");
            return Ok(None);
        }
        // Claimed first: a copy of a delivery still in flight costs nothing more.
        if let Claim::InFlight(other) = self.store.claim_delivery(&trigger.delivery, entry).await? {
            tracing::info!(delivery = %trigger.delivery, earlier = %other, "a copy of this delivery is still queued or running; nothing to do");
            return Ok(None);
        }
        let repo = self.store.upsert_repo(&trigger.repo, trigger.installation, self.now()).await?;
        let existing = match self.store.entry_build(entry).await? {
            Some(id) => self.store.build(id).await?,
            None => None,
        };
        let (build, stages, supersedes) = match existing {
            Some(build) => {
                let stages = self.store.stages(&build).await?;
                (build, stages, false)
            }
            // Before `.drone.yml` is read: a deactivated repository costs GitHub nothing.
            None if self.store.is_repo_deactivated(repo.info.id).await? => {
                tracing::info!(repo = %repo.slug(), sha = %trigger.commit.sha, delivery = %trigger.delivery, "the repository is deactivated (DELETE /api/repos/{}); no build", repo.slug());
                self.store.release_delivery(&trigger.delivery, entry).await?;
                return Ok(None);
            }
            None => {
                let plan = match read_plan(trigger, files).await? {
                    Some(plan) => plan,
                    None => {
                        tracing::info!(repo = %trigger.repo.slug(), sha = %trigger.commit.sha, "no pipeline's trigger matches; no build");
                        self.store.release_delivery(&trigger.delivery, entry).await?;
                        return Ok(None);
                    }
                };
                self.record(entry, trigger, &repo, plan).await?
            }
        };
        let id = build.id;
        self.announce(&build, stages).await?;
        // A `destroyed` planned while this build was being recorded found no build to cancel.
        if self.group_destroyed(trigger).await? {
            self.cancel(&build, DESTROYED_GROUP_REASON).await?;
        }
        // After the pending statuses are out: cancelling older builds must not delay them.
        if supersedes {
            self.supersede(&build).await;
        }
        Ok(Some(id))
    }

    /// Starts a new build of a build's commit and event, with `parent` set
    /// to its number; `None` when no pipeline matches any more.
    pub async fn restart(&self, repo: &Repo, build: &Build, by: &str, files: &RepoFiles) -> Result<Option<Build>, StartError> {
        let nonce: u64 = rand::random();
        let delivery = DeliveryId(format!("restart-{}-{nonce:016x}", build.id));
        self.rerun(repo, build, Vec::new(), by, delivery, files).await
    }

    /// Starts a rerun of a build's pipelines named in `only` (all when
    /// empty), with `parent` set, once per `delivery`; `None` when none of
    /// them matches any more.
    pub async fn rerun(
        &self,
        repo: &Repo,
        build: &Build,
        only: Vec<String>,
        by: &str,
        delivery: DeliveryId,
        files: &RepoFiles,
    ) -> Result<Option<Build>, StartError> {
        let trigger = trigger_from_build(repo, build, by, delivery, only);
        self.start_build(&trigger, files).await
    }

    /// Starts the build of a trigger made here rather than queued (its
    /// entry named after its delivery); returns the build.
    async fn start_build(&self, trigger: &Trigger, files: &RepoFiles) -> Result<Option<Build>, StartError> {
        let entry = EntryId(format!("{}-entry", trigger.delivery.0));
        match self.start(&entry, trigger, files).await? {
            Some(id) => Ok(self.store.build(id).await?),
            None => Ok(None),
        }
    }

    /// Cancels the unfinished builds of a merge group GitHub destroyed
    /// (merged, invalidated or dequeued): nothing will wait for them. The
    /// group is marked first, so a build recorded after the look finds the
    /// mark and cancels itself (and a late `checks_requested` builds nothing).
    async fn cancel_merge_group(&self, trigger: &Trigger) -> Result<(), StartError> {
        let commit = &trigger.commit;
        self.store.mark_group_destroyed(trigger.repo.id, &commit.sha).await?;
        let builds = self.store.builds_page(trigger.repo.id, Some(&commit.git_ref), 0, MERGE_GROUP_SCAN).await?;
        for build in builds.iter().filter(|b| b.commit.event == commit.event && b.commit.sha == commit.sha && !b.status.is_done()) {
            tracing::info!(repo = %build.slug(), number = build.number, "cancelling the build of a destroyed merge group");
            self.cancel(build, DESTROYED_GROUP_REASON).await?;
        }
        Ok(())
    }

    /// Whether `trigger` builds a merge group GitHub has destroyed since.
    async fn group_destroyed(&self, trigger: &Trigger) -> Result<bool, StartError> {
        if trigger.commit.event != Event::MergeGroup {
            return Ok(false);
        }
        Ok(self.store.is_group_destroyed(trigger.repo.id, &trigger.commit.sha).await?)
    }

    /// Starts a build a person or a cron job asked for by branch (`request`),
    /// once per `delivery`: the commit is the branch's head (or the sha
    /// asked for) as GitHub says now. `None` when no pipeline matches.
    pub async fn create(
        &self,
        repo: &Repo,
        request: &BuildRequest,
        delivery: DeliveryId,
        files: &RepoFiles,
    ) -> Result<Option<Build>, StartError> {
        // Installation events name repositories without their URLs: ask GitHub.
        let learned;
        let repo = if repo.info.clone_url.is_empty() {
            learned = self.learn_repo(repo, files).await?;
            &learned
        } else {
            repo
        };
        let wanted = request.commit.as_ref().map_or(request.branch.as_str(), |sha| sha.0.as_str());
        let Some(found) = files.commit(repo.installation, &repo.info, wanted).await? else {
            return Err(StartError::NotBuildable(format!("{} has no branch or commit {wanted:?}", repo.slug())));
        };
        let trigger = requested_trigger(repo, request, found, delivery);
        self.start_build(&trigger, files).await
    }

    /// A repository greenlight knows only from an installation event, with
    /// what GitHub says of it now (its clone URL) recorded.
    async fn learn_repo(&self, repo: &Repo, files: &RepoFiles) -> Result<Repo, StartError> {
        let Some(info) = files.repository(repo.installation, &repo.info).await? else {
            return Err(StartError::NotBuildable(format!("GitHub does not show {} to the App's installation", repo.slug())));
        };
        Ok(self.store.upsert_repo(&info, repo.installation, self.now()).await?)
    }

    /// Records the build and its stages; returns them and whether the build
    /// supersedes older ones of its lane.
    async fn record(&self, entry: &EntryId, trigger: &Trigger, repo: &Repo, plan: Plan) -> StoreResult<(Build, Vec<Stage>, bool)> {
        // A fork's code on a protected repository waits for an administrator.
        let blocked = trigger.commit.fork && repo.protected;
        let (id, number) = self.store.allocate_build(entry, repo.info.id).await?;
        let now = self.now();
        let (status, error, auto_cancel, stages) = match plan {
            Plan::Pipelines { selection, auto_cancel } => {
                let blocked = blocked && !selection.run.is_empty();
                let stages = self.new_stages(id, trigger, selection, blocked).await?;
                (if blocked { Status::Blocked } else { Status::Pending }, String::new(), auto_cancel, stages)
            }
            Plan::Invalid(message) => (Status::Error, message, false, Vec::new()),
        };
        let finished = if status == Status::Error { now } else { 0 };
        let build = Build {
            id,
            repo: trigger.repo.clone(),
            number,
            parent: trigger.parent,
            status,
            error,
            trigger: if trigger.requested_by.is_empty() { "@hook".to_string() } else { trigger.requested_by.clone() },
            commit: trigger.commit.clone(),
            installation: trigger.installation,
            delivery: trigger.delivery.clone(),
            entry: entry.clone(),
            stages: stages.iter().map(|s| s.id).collect(),
            started: finished,
            finished,
            created: now,
            updated: now,
            version: 1,
        };
        self.store.record_build(&build, &stages).await?;
        tracing::info!(repo = %build.slug(), number, stages = stages.len(), status = status.as_str(), "build recorded");
        let supersedes = auto_cancel && build.commit.is_new_push() && trigger.parent == 0;
        Ok((build, stages, supersedes))
    }

    /// One stage per pipeline, each with its step records (the clone
    /// first); the pipelines filtered out after those that run, skipped.
    async fn new_stages(&self, build: BuildId, trigger: &Trigger, selection: Selection, blocked: bool) -> StoreResult<Vec<Stage>> {
        let now = self.now();
        let runs = selection.run.into_iter().map(|p| (p, String::new()));
        let pipelines: Vec<(Pipeline, String)> = runs.chain(selection.skipped).collect();
        let first_stage = self.store.allocate_ids("stage", pipelines.len().max(1)).await?;
        let step_count: usize = pipelines.iter().map(|(p, _)| p.steps.len() + 1).sum();
        let mut next_step = self.store.allocate_ids("step", step_count.max(1)).await?;
        let mut stages = Vec::with_capacity(pipelines.len());
        for (i, (pipeline, filtered_out)) in pipelines.into_iter().enumerate() {
            let mut steps = step_records(&pipeline, next_step);
            next_step += steps.len() as i64;
            let skipped = !filtered_out.is_empty();
            if skipped {
                steps.iter_mut().for_each(|s| s.status = Status::Skipped);
            }
            stages.push(Stage {
                id: StageId(first_stage + i as i64),
                repo_id: trigger.repo.id,
                build_id: build,
                number: i as i64 + 1,
                name: pipeline.name.clone(),
                state: match (skipped, blocked, pipeline.depends_on.is_empty()) {
                    (true, _, _) => StageState::Done { status: Status::Skipped, published: false },
                    (false, true, _) => StageState::Blocked,
                    (false, false, true) => StageState::Pending { approved: false, queued: false },
                    (false, false, false) => StageState::Waiting { approved: false },
                },
                error: String::new(),
                exit_code: 0,
                machine: String::new(),
                started: if skipped { now } else { 0 },
                stopped: if skipped { now } else { 0 },
                created: now,
                updated: now,
                version: 1,
                depends_on: if skipped { Vec::new() } else { pipeline.depends_on.clone() },
                steps,
                pipeline,
                check_run: None,
                filtered_out,
                attempt: 0,
            });
        }
        Ok(stages)
    }

    /// Publishes what is not yet on GitHub and queues what is not yet queued.
    async fn announce(&self, build: &Build, stages: Vec<Stage>) -> Result<(), StartError> {
        if build.status == Status::Error && stages.is_empty() {
            self.publisher.config_error(build, self.clock.now()).await?;
            self.store.release_delivery(&build.delivery, &build.entry).await?;
            return Ok(());
        }
        for mut stage in stages {
            if stage.is_filtered_out() {
                self.announce_filtered_out(build, stage).await?;
                continue;
            }
            if stage.check_run.is_none() {
                let id = self.publisher.stage_planned(build, &stage).await?;
                // Only the id: a resumed planning's copy may be older than what a worker wrote since.
                let updated = self
                    .store
                    .update_stage(stage.id, |current| current.check_run.is_none() && current.check_run.replace(id).is_none())
                    .await?;
                stage = updated.unwrap_or(stage);
            }
            if let StageState::Pending { queued: false, .. } = stage.state {
                self.queue_stage(build, &mut stage).await?;
            }
        }
        Ok(())
    }

    /// Reports a stage its trigger filtered out (a `skipped` check run, a
    /// `success` status) unless it was, and counts it done: a build of
    /// filtered-out stages only is complete once they are reported.
    async fn announce_filtered_out(&self, build: &Build, stage: Stage) -> Result<(), StartError> {
        if stage.check_run.is_none() {
            let id = self.publisher.stage_filtered_out(build, &stage, self.clock.now()).await?;
            self.store
                .update_stage(stage.id, |current| {
                    let first = current.check_run.is_none();
                    if first {
                        current.check_run = Some(id);
                        current.state = StageState::Done { status: Status::Skipped, published: true };
                    }
                    first
                })
                .await?;
        }
        self.settle(build, stage.id).await?;
        Ok(())
    }

    /// Cancels the unfinished builds of the same branch or pull request for
    /// older commits: a newer push supersedes them.
    async fn supersede(&self, newer: &Build) {
        let unfinished = match self.store.unfinished_in_lane(newer).await {
            Ok(builds) => builds,
            Err(e) => return tracing::warn!(error = %e, "cannot look for superseded builds"),
        };
        let reason = format!("superseded by {}", newer.commit.sha.short());
        for older in unfinished.into_iter().filter(|b| b.id != newer.id) {
            let superseded = newer.commit.same_lane(&older.commit) && older.commit.sha != newer.commit.sha && older.number < newer.number;
            if superseded && !older.status.is_done() {
                tracing::info!(repo = %older.slug(), number = older.number, %reason, "cancelling a superseded build");
                if let Err(e) = self.cancel(&older, &reason).await {
                    tracing::warn!(error = %e, "could not cancel a superseded build");
                }
            }
        }
    }
}

/// Reads `.drone.yml` at the trigger's commit and chooses its pipelines;
/// `None` when none matches. Only outages are errors: a missing or invalid
/// file is a plan too (an errored build that says why).
async fn read_plan(trigger: &Trigger, files: &RepoFiles) -> Result<Option<Plan>, GitHubError> {
    let path = pipeline::CONFIG_PATH;
    let config = match read_own_task(trigger, files).await {
        Ok(Some(RepoFile::Text(text))) => parse_off_runtime(text).await.map_err(|e| format!("{path}: {e}")),
        Ok(Some(RepoFile::TooLarge(bytes))) => Err(format!("{path}: {}", ParseError::too_large(bytes))),
        Ok(None) => Err(format!("no {path} in {} at {}", trigger.repo.slug(), trigger.commit.sha.short())),
        Err(e) if e.is_transient() => return Err(e),
        Err(e) => Err(format!("could not read {path}: {e}")),
    };
    let config = match config {
        Ok(config) => config,
        Err(message) => return Ok(Some(Plan::Invalid(message))),
    };
    let slug = trigger.repo.slug();
    let changed = match (config.uses_paths(), trigger.commit.compare_base()) {
        (true, Some(base)) => files.changed(trigger.installation, &trigger.repo, base, &trigger.commit.sha).await?,
        _ => None,
    };
    let facts = pipeline::Facts { changed: changed.as_deref(), ..trigger.commit.facts(&slug) };
    let mut selection = config.select(&facts);
    if !config.settings.report_skipped {
        selection.skipped.clear();
    }
    if !trigger.only_pipelines.is_empty() {
        let only = |name: &String| trigger.only_pipelines.contains(name);
        selection.run.retain(|p| only(&p.name));
        selection.skipped.retain(|(p, _)| only(&p.name));
        let names: Vec<String> = selection.run.iter().map(|p| p.name.clone()).collect();
        for p in &mut selection.run {
            p.depends_on.retain(|d| names.contains(d));
        }
    }
    let nothing = selection.run.is_empty() && selection.skipped.is_empty();
    Ok((!nothing).then_some(Plan::Pipelines { selection, auto_cancel: config.settings.auto_cancel }))
}

/// Reads `.drone.yml` on a task of its own: the planner plans a batch of
/// deliveries as futures of one task, so a large file's download and
/// decoding would otherwise hold up the other repositories in the batch.
/// A panic there is a file that cannot be read, not a crash.
async fn read_own_task(trigger: &Trigger, files: &RepoFiles) -> Result<Option<RepoFile>, GitHubError> {
    let (files, installation, repo, sha) = (files.clone(), trigger.installation, trigger.repo.clone(), trigger.commit.sha.clone());
    let read = tokio::spawn(async move { files.read(installation, &repo, pipeline::CONFIG_PATH, &sha, MAX_FILE_BYTES).await });
    read.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "reading .drone.yml failed");
        Err(GitHubError::Decode { path: pipeline::CONFIG_PATH.to_string(), detail: "an internal error, logged".to_string() })
    })
}

/// Parses `.drone.yml` on a blocking thread: a large or hostile file (the
/// parser's work is bounded by `pipeline::limits`, but not free) must not
/// hold up the async runtime, and with it every other repository's
/// planning. A panic in the parser is an invalid file, not a crash: the
/// delivery ends in an errored build instead of being reclaimed forever.
async fn parse_off_runtime(text: String) -> Result<pipeline::Config, String> {
    match tokio::task::spawn_blocking(move || pipeline::parse(&text)).await {
        Ok(parsed) => parsed.map_err(|e| e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "the .drone.yml parser failed");
            Err("greenlight could not parse the file (an internal error, logged)".to_string())
        }
    }
}

/// A pipeline's step records, numbered from 1 (the clone first unless
/// disabled), with global ids from `first_id`.
fn step_records(pipeline: &Pipeline, first_id: i64) -> Vec<StepRecord> {
    let clone = (!pipeline.clone_disabled).then(|| ("clone".to_string(), false, Vec::new()));
    let named = pipeline.steps.iter().map(|s| (s.name.clone(), s.ignore_failure, s.depends_on.clone()));
    clone
        .into_iter()
        .chain(named)
        .enumerate()
        .map(|(n, (name, errignore, depends_on))| StepRecord {
            id: first_id + n as i64,
            number: n as i64 + 1,
            name,
            status: Status::Pending,
            error: String::new(),
            errignore,
            exit_code: 0,
            started: 0,
            stopped: 0,
            version: 1,
            depends_on,
            attempts: 0,
        })
        .collect()
}

/// The trigger a Re-run button means: the build it points at, again, with
/// only the pressed check run's pipeline (all of them for a suite). Reads
/// Redis only, so intake can answer at once. `None` when greenlight has no
/// such build.
pub async fn rerun_trigger(store: &Store, request: &RerunRequest, delivery: &DeliveryId) -> StoreResult<Option<Trigger>> {
    let Some(repo) = store.repo(request.repo).await? else {
        return Ok(None);
    };
    let (build, only) = match &request.target {
        RerunTarget::CheckRun { build, name } => {
            let Ok(id) = build.parse::<i64>() else { return Ok(None) };
            let Some(build) = store.build(BuildId(id)).await?.filter(|b| b.repo.id == repo.info.id) else {
                return Ok(None);
            };
            let pipeline = name.rsplit_once(" (").map_or(name.as_str(), |(p, _)| p);
            let only = if pipeline == CONFIG_CHECK { Vec::new() } else { vec![pipeline.to_string()] };
            (build, only)
        }
        RerunTarget::Suite { sha } => {
            let recent = store.builds_page(repo.info.id, None, 0, RERUN_SCAN).await?;
            let Some(build) = recent.into_iter().find(|b| &b.commit.sha == sha) else { return Ok(None) };
            (build, Vec::new())
        }
    };
    let by = if request.sender.is_empty() { "github" } else { &request.sender };
    Ok(Some(trigger_from_build(&repo, &build, by, delivery.clone(), only)))
}

/// The trigger of a build asked for by branch, at the commit GitHub named.
fn requested_trigger(repo: &Repo, request: &BuildRequest, found: CommitInfo, delivery: DeliveryId) -> Trigger {
    let git = found.commit;
    let person = git.author.unwrap_or(GitPerson { name: String::new(), email: String::new() });
    let account = found.author.unwrap_or(CommitAccount { login: String::new(), avatar_url: String::new() });
    let commit = Commit {
        event: request.event,
        sha: Sha(found.sha),
        git_ref: format!("refs/heads/{}", request.branch),
        source: request.branch.clone(),
        target: request.branch.clone(),
        message: truncate_chars(&git.message, MAX_MESSAGE_CHARS),
        link: found.html_url,
        author: Author { login: account.login, name: person.name, email: person.email, avatar: account.avatar_url },
        sender: request.by.clone(),
        params: request.params.clone(),
        cron: request.cron.clone(),
        ..Commit::default()
    };
    Trigger {
        delivery,
        installation: repo.installation,
        repo: repo.info.clone(),
        commit,
        parent: 0,
        requested_by: request.by.clone(),
        only_pipelines: Vec::new(),
    }
}

/// A trigger that builds a build's commit again (a rerun or restart): the
/// same commit and event, the repository as it is now, `parent` = its
/// number, only `only_pipelines` when given.
fn trigger_from_build(repo: &Repo, build: &Build, by: &str, delivery: DeliveryId, only_pipelines: Vec<String>) -> Trigger {
    Trigger {
        delivery,
        installation: build.installation,
        repo: repo.info.clone(),
        commit: Commit { sender: by.to_string(), ..build.commit.clone() },
        parent: build.number,
        requested_by: by.to_string(),
        only_pipelines,
    }
}
