//! Running one stage from start to finish: workspace, clone, steps, logs,
//! and what GitHub is told at each point.

use super::artifacts::Upload;
use super::cache::{self, CacheBuild, CacheError, Caches, Restored};
use super::clone;
use super::env::BuildFacts;
use super::executor::{StepExecutor, StepTask};
use super::logs::{Captured, LogTarget, spawn_writer};
use super::mirror::Mirror;
use super::network::StageNetwork;
use super::sandbox::Sandbox;
use super::schedule::{self, Outcome};
use super::settings::WorkerSettings;
use super::step::Ending;
use super::summary::Summary;
use super::workspace::Workspace;
use crate::clock::SharedClock;
use crate::github::CloneCredentials;
use crate::lifecycle::{self, Begun, Ended, Lifecycle, StepEnd};
use crate::model::{Build, Event, Stage, StageJob, Status};
use crate::pipeline::{EnvValue, Pipeline};
use crate::publish::StageReport;
use crate::publish::annotations::Collected;
use crate::secrets::{Masker, SecretStore};
use crate::store::{Artifact, Logs, StepSummary};
use anyhow::Context;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Everything needed to run stages.
pub(super) struct StageRunner {
    pub lifecycle: Lifecycle,
    pub logs: Logs,
    pub sandbox: Sandbox,
    pub clock: SharedClock,
    pub settings: WorkerSettings,
    pub machine: String,
    pub secrets: SecretStore,
    pub credentials: CloneCredentials,
    /// Where caches and artifacts are kept.
    pub blobs: crate::blobs::Blobs,
}

/// Why a running stage should stop early; the runner reads which.
#[derive(Clone)]
pub(super) struct Stop {
    /// Kill the steps now (the build was cancelled, or one of the reasons below).
    pub cancel: CancellationToken,
    /// The worker is stopping and its grace is over: hand the stage back.
    pub hand_back: CancellationToken,
    /// Another worker took the stage over (this one lost its lease): end nothing.
    pub lost: CancellationToken,
}

/// Annotations found so far are published this often while a stage runs:
/// at most 6 updates a minute per stage, well inside GitHub's secondary limit
/// of about 80 content-creating requests a minute per installation.
pub const ANNOTATION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// One stage's run in progress: its record (shared by steps running in
/// parallel, saved after every change) and what its steps printed last.
struct Run<'a> {
    build: &'a Build,
    stage: Mutex<Stage>,
    tails: Mutex<HashMap<usize, Captured>>,
    facts: BuildFacts,
    pipeline: Pipeline,
    /// 1 when the first step record is the clone.
    offset: usize,
    /// The stage's directory: its checkout and its steps' HOME.
    workspace: Workspace,
    /// Runs the pipeline's steps in the stage's workspace (the clone writes there too).
    executor: StepExecutor,
    /// Every secret the pipeline asks for: its value, or why the step may not have it.
    secrets: HashMap<String, Result<String, String>>,
    /// Hides those values in every line.
    masker: Arc<Masker>,
    /// Annotations found in the output.
    annotations: Arc<std::sync::Mutex<Collected>>,
    /// Why the step timeout is lower than the pipeline asked (the operator's cap), if it is.
    capped: Option<String>,
    /// The job summaries steps left, masked.
    summaries: Mutex<Vec<StepSummary>>,
    /// The artifacts steps uploaded.
    artifacts: Mutex<Vec<Artifact>>,
}

impl Run<'_> {
    fn log_target(&self, runner: &StageRunner, stage: crate::ids::StageId, step: i64) -> LogTarget {
        LogTarget {
            logs: runner.logs.clone(),
            stage,
            step,
            limit: runner.settings.log_limit,
            masker: self.masker.clone(),
            annotations: Some((self.annotations.clone(), self.executor.workspace_in().to_string())),
        }
    }
}

impl StageRunner {
    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// Runs a stage; `Err` leaves its job queued to be retried.
    pub async fn run(&self, job: &StageJob, stop: &Stop) -> anyhow::Result<Ended> {
        let Some(Begun { build, stage, mut notes }) = self.lifecycle.begin(job, &self.machine).await? else {
            return Ok(Ended::Done);
        };
        for step in &stage.steps {
            self.logs.clear(stage.id, step.number).await?;
        }
        // What an earlier run of the stage left is replaced by this run's.
        self.lifecycle.store().clear_summaries(stage.id).await?;
        self.lifecycle.store().clear_stage_artifacts(build.id, stage.number).await?;
        let workspace = Workspace::of_stage(&self.settings.data_dir.join("workspaces"), stage.id, self.settings.workspace_cap);
        notes.extend(workspace.note());
        // One network per stage: its steps share it, the clone stays on the host's.
        let network = Arc::new(self.sandbox.stage_network().await.context("setting up the stage's network")?);
        let outcome = self.execute(&build, stage, &workspace, network.clone(), &stop.cancel, notes).await;
        let ended = match outcome {
            Ok((stage, status, report)) => self.finish(&build, &stage, status, &report, stop).await,
            Err(e) => Err(e),
        };
        // After GitHub has the result: stopping the network (~30 ms) and
        // removing a big workspace must not delay it.
        if let Ok(network) = Arc::try_unwrap(network) {
            network.stop().await;
        }
        if let Err(e) = workspace.remove().await {
            tracing::warn!(error = %e, "could not remove a stage's workspace");
        }
        ended
    }

    /// What becomes of a run that went to its end: dropped (another worker
    /// has the stage), handed back (this worker is stopping), or ended.
    async fn finish(&self, build: &Build, stage: &Stage, status: Status, report: &StageReport, stop: &Stop) -> anyhow::Result<Ended> {
        if stop.lost.is_cancelled() {
            return Ok(Ended::TakenOver);
        }
        if stop.hand_back.is_cancelled() && !self.lifecycle.store().is_cancelled(build.id).await.unwrap_or(false) {
            return self.lifecycle.hand_back(build, stage).await;
        }
        self.lifecycle.end(build, stage, status, report).await
    }

    /// Publishes the result of a stage that ended while GitHub was
    /// unreachable, rebuilt from the stored record and logs.
    pub async fn republish(&self, build: &Build, stage: Stage) -> anyhow::Result<()> {
        let failed = stage.steps.iter().find(|s| s.status.is_failed() && !s.errignore && s.status != Status::Killed);
        let tail = match failed {
            Some(step) => {
                // Every line holds at least its newline, so this many cover the tail.
                let lines = super::logs::TAIL_BYTES;
                let mut captured = Captured::default();
                for line in self.logs.tail(stage.id, step.number, lines).await?.lines {
                    captured.keep(&line.out);
                }
                captured.tail_text()
            }
            None => String::new(),
        };
        let secrets = self.resolve_secrets(build, &stage.pipeline, stage.state.approved()).await;
        let report = StageReport {
            masker: masker_of(&secrets),
            failed_step: failed.map(|s| s.name.clone()),
            tail,
            timed_out: stage.steps.iter().any(|s| s.error.starts_with("timed out") && !s.errignore),
            caveats: self.sandbox.caveats(),
            cancel_reason: match stage.status() {
                Status::Killed => Some(self.lifecycle.store().cancel_reason(build.id).await?.unwrap_or_default()),
                _ => None,
            },
            notes: vec!["Published again: GitHub was unreachable when the stage ended.".to_string()],
            completed: self.clock.now(),
            annotations: Vec::new(),
            summaries: self.lifecycle.store().summaries(stage.id).await?,
            artifacts: self.lifecycle.store().artifacts(build.id).await?.into_iter().filter(|a| a.stage == stage.number).collect(),
        };
        self.lifecycle.publish_again(build, &stage, &report).await
    }

    /// Runs the stage's steps in `workspace`; returns the stage with its
    /// step records, its status and what its check run should say.
    async fn execute(
        &self,
        build: &Build,
        stage: Stage,
        workspace: &Workspace,
        network: Arc<StageNetwork>,
        cancel: &CancellationToken,
        notes: Vec<String>,
    ) -> anyhow::Result<(Stage, Status, StageReport)> {
        let run = self.prepare(build, stage, workspace, network).await?;
        let cloned = run.offset == 0 || self.clone_step(&run).await;
        let outcomes = if cloned { self.run_steps(&run, cancel).await } else { vec![Outcome::skipped(); run.pipeline.steps.len()] };
        self.conclude(run, cloned, &outcomes, cancel.is_cancelled(), notes).await
    }

    /// A fresh workspace given to the sandbox user, the secrets the build
    /// may have, and the masker that hides them.
    async fn prepare<'a>(
        &self,
        build: &'a Build,
        stage: Stage,
        workspace: &Workspace,
        network: Arc<StageNetwork>,
    ) -> anyhow::Result<Run<'a>> {
        workspace.create().await.with_context(|| format!("creating {}", workspace.root().display()))?;
        self.sandbox.give(&workspace.path())?;
        self.sandbox.give(&workspace.home())?;
        let secrets = self.resolve_secrets(build, &stage.pipeline, stage.state.approved()).await;
        let masker = masker_of(&secrets);
        let mut pipeline = stage.pipeline.clone();
        let capped = pipeline.cap_step_timeout(self.settings.max_step_timeout);
        Ok(Run {
            capped,
            secrets,
            annotations: Arc::new(std::sync::Mutex::new(Collected::new(masker.clone()))),
            masker,
            build,
            facts: facts_of(build, self.lifecycle.publisher().build_url(build), &self.machine),
            offset: usize::from(!stage.pipeline.clone_disabled),
            pipeline,
            stage: Mutex::new(stage),
            tails: Mutex::default(),
            summaries: Mutex::default(),
            artifacts: Mutex::default(),
            executor: StepExecutor::new(&self.sandbox, &workspace.path(), Some(network)).with_home(&workspace.home()),
            workspace: workspace.clone(),
        })
    }

    /// Runs the pipeline's steps in their order, publishing annotations
    /// found meanwhile every [`ANNOTATION_INTERVAL`].
    async fn run_steps(&self, run: &Run<'_>, cancel: &CancellationToken) -> Vec<Outcome> {
        let slug = run.build.slug();
        let match_facts = run.build.commit.facts(&slug);
        let others_done = CancellationToken::new();
        let steps = schedule::execute(&run.pipeline.steps, &match_facts, cancel, &others_done, |i| self.step(run, i, cancel, &others_done));
        let annotate = async {
            loop {
                tokio::time::sleep(ANNOTATION_INTERVAL).await;
                self.publish_annotations(run).await;
            }
        };
        tokio::select! { outcomes = steps => outcomes, _ = annotate => unreachable!("the annotation loop never ends") }
    }

    /// The stage's status and report from its steps' outcomes.
    async fn conclude(
        &self,
        run: Run<'_>,
        cloned: bool,
        outcomes: &[Outcome],
        cancelled: bool,
        mut notes: Vec<String>,
    ) -> anyhow::Result<(Stage, Status, StageReport)> {
        let Run { stage, tails, pipeline, offset, annotations, build, masker, capped, summaries, artifacts, .. } = run;
        notes.extend(capped);
        let (mut stage, tails) = (stage.into_inner(), tails.into_inner());
        for (i, outcome) in outcomes.iter().enumerate() {
            if outcome.status == Status::Skipped {
                lifecycle::step_skipped(&mut stage, i + offset);
            }
        }
        let status = if cloned { schedule::stage_status(&pipeline.steps, outcomes, cancelled) } else { Status::Failure };
        let failed = stage.steps.iter().position(|s| s.status.is_failed() && !s.errignore && s.status != Status::Killed);
        stage.exit_code = failed.map_or(0, |i| stage.steps[i].exit_code);
        if let Some(error) = stage.steps.iter().find(|s| s.status == Status::Error).map(|s| s.error.clone()) {
            stage.error = error;
        }
        // A timeout `failure: ignore` forgives does not make the stage timed out.
        let timed_out_steps: Vec<&crate::pipeline::Step> =
            pipeline.steps.iter().zip(outcomes).filter(|(s, o)| o.timed_out && !s.ignore_failure).map(|(s, _)| s).collect();
        let timed_out = !timed_out_steps.is_empty();
        let cancel_reason = match cancelled {
            true => Some(self.lifecycle.store().cancel_reason(build.id).await?.unwrap_or_default()),
            false => None,
        };
        if let Some(reason) = &cancel_reason {
            notes.push(lifecycle::cancel_note(reason, "while running"));
        }
        for step in timed_out_steps {
            let secs = step.timeout_in(&pipeline).as_secs();
            notes.push(format!("Step `{}` ran past its step timeout of {secs}s and was killed.", step.name));
        }
        let (annotations, annotation_line) = {
            let mut collected = annotations.lock().expect("not poisoned");
            (collected.pending.drain(..).collect(), collected.summary_line())
        };
        notes.extend(annotation_line);
        let mut summaries = summaries.into_inner();
        summaries.sort_by_key(|s| s.step);
        let report = StageReport {
            summaries,
            artifacts: artifacts.into_inner(),
            annotations,
            masker,
            failed_step: failed.map(|i| stage.steps[i].name.clone()),
            tail: failed.and_then(|i| tails.get(&i)).map(Captured::tail_text).unwrap_or_default(),
            timed_out,
            caveats: self.sandbox.caveats(),
            cancel_reason,
            notes,
            completed: self.clock.now(),
        };
        Ok((stage, status, report))
    }

    /// Looks up every secret the pipeline names, deciding which the build may have.
    async fn resolve_secrets(&self, build: &Build, pipeline: &Pipeline, approved: bool) -> HashMap<String, Result<String, String>> {
        let names: std::collections::BTreeSet<&String> = pipeline
            .environment
            .values()
            .chain(pipeline.steps.iter().flat_map(|s| s.environment.values()))
            .filter_map(|v| match v {
                EnvValue::Secret(name) => Some(name),
                EnvValue::Plain(_) => None,
            })
            .collect();
        let mut out = HashMap::new();
        for name in names {
            let value = if build.commit.fork && !approved {
                Err("secrets are never given to pull requests from forks unless an administrator approves the build".to_string())
            } else {
                match self.secrets.reveal(build.repo.id, name).await {
                    Ok(Some((info, _))) if build.commit.event == Event::PullRequest && !info.pull_request => {
                        Err("it is not available to pull_request builds (its pull_request flag is off)".to_string())
                    }
                    Ok(Some((_, value))) => Ok(value.expose_secret().to_string()),
                    Ok(None) => Err(format!("{} has no secret `{name}`", build.slug())),
                    Err(e) => Err(e.to_string()),
                }
            };
            out.insert(name.clone(), value);
        }
        out
    }

    /// Publishes the annotations found so far, at most 50 per request.
    async fn publish_annotations(&self, run: &Run<'_>) {
        loop {
            let batch = run.annotations.lock().expect("not poisoned").next_batch();
            if batch.is_empty() {
                return;
            }
            let stage = run.stage.lock().await.clone();
            if let Err(e) = self.lifecycle.publisher().annotate(run.build, &stage, batch).await {
                tracing::warn!(error = %e, "could not publish annotations");
                return;
            }
        }
    }

    /// Marks step record `index` running; returns its number.
    async fn step_started(&self, run: &Run<'_>, index: usize) -> i64 {
        let mut stage = run.stage.lock().await;
        let number = lifecycle::step_started(&mut stage, index, self.now());
        if let Err(e) = self.lifecycle.record_step(&stage, index).await {
            tracing::warn!(error = %e, "could not record a step start");
        }
        number
    }

    /// Records how step record `index` ended and what it printed last.
    async fn step_ended(&self, run: &Run<'_>, index: usize, outcome: &Outcome, captured: Captured) {
        run.tails.lock().await.insert(index, captured);
        let mut stage = run.stage.lock().await;
        let end =
            StepEnd { status: outcome.status, exit_code: outcome.exit_code, error: outcome.error.clone(), attempts: outcome.attempts };
        lifecycle::step_ended(&mut stage, index, end, self.now());
        if let Err(e) = self.lifecycle.record_step(&stage, index).await {
            tracing::warn!(error = %e, "could not record a step's end");
        }
    }

    /// Runs pipeline step `i` in the sandbox (a service until `others_done`).
    async fn step(&self, run: &Run<'_>, i: usize, cancel: &CancellationToken, others_done: &CancellationToken) -> Outcome {
        let index = i + run.offset;
        let number = self.step_started(run, index).await;
        let (stage_id, stage_number) = {
            let stage = run.stage.lock().await;
            (stage.id, stage.number)
        };
        let (lines, writer) = spawn_writer(run.log_target(self, stage_id, number));
        let secrets = |name: &str| run.secrets.get(name).cloned().unwrap_or_else(|| Err("not looked up".to_string()));
        let task = StepTask {
            facts: &run.facts,
            pipeline: &run.pipeline,
            stage_number,
            step: &run.pipeline.steps[i],
            step_number: number,
            secrets: &secrets,
        };
        let step = &run.pipeline.steps[i];
        let (outcome, summary) = self.run_cached(run, &task, &lines, cancel, others_done).await;
        if outcome.status != Status::Killed && !step.artifacts.is_empty() {
            self.upload_artifacts(run, stage_number, (&step.name, number), &step.artifacts, &lines).await;
        }
        drop(lines);
        self.step_ended(run, index, &outcome, writer.await.unwrap_or_default()).await;
        self.keep_summary(
            run,
            stage_id,
            StepSummary { step: number, name: step.name.clone(), markdown: summary.markdown, cut: summary.cut },
        )
        .await;
        outcome
    }

    /// Keeps a step's summary (masked) with the stage, for its check run
    /// and build page.
    async fn keep_summary(&self, run: &Run<'_>, stage: crate::ids::StageId, mut summary: StepSummary) {
        if summary.markdown.trim().is_empty() {
            return;
        }
        summary.markdown = run.masker.mask_plain(&summary.markdown).into_owned();
        if let Err(e) = self.lifecycle.store().save_summary(stage, &summary).await {
            tracing::warn!(error = %e, "could not keep a step's summary");
        }
        run.summaries.lock().await.push(summary);
    }

    /// Uploads what step `step` (name, number) matched with its
    /// `artifacts:` `patterns`, saying in its log what was uploaded and what not.
    async fn upload_artifacts(
        &self,
        run: &Run<'_>,
        stage_number: i64,
        step: (&str, i64),
        patterns: &[String],
        lines: &tokio::sync::mpsc::Sender<String>,
    ) {
        let blobs = self.blobs.scoped(crate::blobs::ARTIFACTS);
        let upload = Upload { blobs: &blobs, build: run.build.id, stage: stage_number, step, user: self.sandbox.user() };
        let (uploaded, notes) = upload.run(run.executor.workspace(), patterns).await;
        for note in notes {
            let _ = lines.send(note).await;
        }
        for artifact in &uploaded {
            if let Err(e) = self.lifecycle.store().add_artifact(run.build.id, artifact).await {
                tracing::warn!(error = %e, artifact = artifact.name, "could not record an artifact");
            }
        }
        run.artifacts.lock().await.extend(uploaded);
    }

    /// The caches steps restore and save.
    fn caches(&self) -> Caches {
        Caches {
            blobs: self.blobs.scoped("caches"),
            spool: self.settings.data_dir.join("spool"),
            mirrors: Mirror::root(&self.settings.data_dir),
            cap: self.settings.cache_cap,
        }
    }

    /// Restores a step's cache before it runs; `Err` fails the step.
    async fn restore_cache(
        &self,
        run: &Run<'_>,
        spec: &crate::pipeline::CacheSpec,
        lines: &tokio::sync::mpsc::Sender<String>,
    ) -> Result<Restored, CacheError> {
        self.caches().restore(spec, &cache_build(run.build), &self.sandbox, &run.workspace, lines).await
    }

    /// Runs a step between its cache's restore and save (saved only after
    /// it succeeded); a cache it cannot have fails it before it runs. A
    /// cancel stops a restore or save under way (a large cache, a slow
    /// bucket): the work is dropped, its sandboxed tar killed with it, the
    /// step then ends as cancelled, and nothing is saved.
    async fn run_cached(
        &self,
        run: &Run<'_>,
        task: &StepTask<'_>,
        lines: &tokio::sync::mpsc::Sender<String>,
        cancel: &CancellationToken,
        others_done: &CancellationToken,
    ) -> (Outcome, Summary) {
        let cached = match &task.step.cache {
            Some(spec) => match cancel.run_until_cancelled(self.restore_cache(run, spec, lines)).await {
                Some(restored) => restored.map(|restored| Some((spec, restored))),
                None => {
                    cache::say(lines, "restore stopped: the build was cancelled".to_string()).await;
                    Ok(None)
                }
            },
            None => Ok(None),
        };
        match cached {
            Ok(cached) => {
                let (outcome, summary) = run.executor.run(task, lines, cancel, others_done).await;
                if let (Some((spec, restored)), Status::Success) = (cached, outcome.status) {
                    let build = cache_build(run.build);
                    let caches = self.caches();
                    if cancel
                        .run_until_cancelled(caches.save(spec, &restored, &build, &self.sandbox, &run.workspace, lines))
                        .await
                        .is_none()
                    {
                        cache::say(lines, "not saved: the build was cancelled".to_string()).await;
                    }
                }
                (outcome, summary)
            }
            Err(e) => {
                let (outcome, note) = Ending::Failed(e.to_string()).outcome(task.step.timeout_in(&run.pipeline));
                let _ = lines.send(note.unwrap_or_default()).await;
                (outcome, Summary::default())
            }
        }
    }

    /// Fetches the commit as step record 0; false when it failed.
    async fn clone_step(&self, run: &Run<'_>) -> bool {
        let number = self.step_started(run, 0).await;
        let stage_id = run.stage.lock().await.id;
        let (lines, writer) = spawn_writer(run.log_target(self, stage_id, number));
        let build = run.build;
        let result = match self.credentials.token(build.installation, &build.repo).await {
            Ok(token) => {
                let mirror = Mirror::of(&Mirror::root(&self.settings.data_dir), build.repo.id);
                let source = clone::Source {
                    clone_url: &build.repo.clone_url,
                    sha: &build.commit.sha.0,
                    token: Some(&token),
                    mirror: Some(&mirror),
                    fork: build.commit.fork,
                };
                clone::fetch(&self.sandbox, run.executor.workspace(), &source, &lines).await
            }
            Err(e) => Err(format!("cannot get an installation token to clone with: {e}")),
        };
        let outcome = match &result {
            Ok(()) => Ending::Exited(0).outcome(run.pipeline.step_timeout).0,
            Err(reason) => {
                let _ = lines.send(format!("[greenlight] {reason}\n")).await;
                Outcome { status: Status::Failure, exit_code: 1, error: reason.clone(), timed_out: false, attempts: 1 }
            }
        };
        drop(lines);
        self.step_ended(run, 0, &outcome, writer.await.unwrap_or_default()).await;
        if result.is_ok() && !build.commit.fork {
            // The mirror may have grown past GREENLIGHT_CACHE_MB.
            self.caches().evict().await;
        }
        result.is_ok()
    }
}

/// The masker hiding every secret value the stage was given.
fn masker_of(secrets: &HashMap<String, Result<String, String>>) -> Arc<Masker> {
    Arc::new(Masker::new(secrets.values().filter_map(|v| v.as_deref().ok())))
}

/// What a build's caches are scoped and keyed by.
fn cache_build(build: &Build) -> CacheBuild<'_> {
    CacheBuild { repo: build.repo.id.0, default_branch: &build.repo.default_branch, commit: &build.commit }
}

fn facts_of(build: &Build, build_link: String, machine: &str) -> BuildFacts {
    BuildFacts {
        number: build.number,
        parent: build.parent,
        commit: build.commit.clone(),
        repo: build.repo.clone(),
        build_link,
        machine: machine.to_string(),
    }
}
