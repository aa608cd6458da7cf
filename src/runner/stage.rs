//! Running one stage from start to finish: workspace, clone, steps, logs,
//! and what GitHub is told at each point.

use super::clone;
use super::env::{BuildFacts, step_env};
use super::logs::{Captured, LogTarget, spawn_writer};
use super::sandbox::Sandbox;
use super::schedule::{self, Outcome};
use super::step::{self, Ending, StepSpec};
use super::worker::WorkerSettings;
use crate::clock::SharedClock;
use crate::github::types::{CheckRunBody, CheckStatus};
use crate::github::webhook::Event;
use crate::pipeline::EnvValue;
use crate::pipeline::{Facts, Pipeline};
use crate::publish::annotations::Collected;
use crate::publish::{Publisher, StageReport, repo_path};
use crate::queue::WorkQueue;
use crate::secrets::{Masker, SecretStore};
use crate::store::{Build, Logs, Stage, StageJob, Status, Store};
use anyhow::Context;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Everything needed to run stages.
pub(super) struct StageRunner {
    pub store: Store,
    pub logs: Logs,
    pub jobs: WorkQueue<StageJob>,
    pub publisher: Publisher,
    pub sandbox: Sandbox,
    pub clock: SharedClock,
    pub settings: WorkerSettings,
    pub machine: String,
    pub secrets: SecretStore,
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
    workspace: PathBuf,
    /// The workspace and HOME as the step sees them.
    workspace_in: String,
    home: String,
    /// Every secret the pipeline asks for: its value, or why the step may not have it.
    secrets: HashMap<String, Result<String, String>>,
    /// Hides those values in every line.
    masker: Arc<Masker>,
    /// Annotations found in the output.
    annotations: Arc<std::sync::Mutex<Collected>>,
}

impl Run<'_> {
    fn log_target(&self, runner: &StageRunner, stage: crate::ids::StageId, step: i64) -> LogTarget {
        LogTarget {
            logs: runner.logs.clone(),
            stage,
            step,
            limit: runner.settings.log_limit,
            masker: self.masker.clone(),
            annotations: Some((self.annotations.clone(), self.workspace_in.clone())),
        }
    }
}

impl StageRunner {
    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// Runs a stage; `Err` leaves its job queued to be retried.
    pub async fn run(&self, job: &StageJob, cancel: &CancellationToken, hand_back: &CancellationToken) -> anyhow::Result<()> {
        let mut stage = self.store.stage(job.stage).await?.context("stage vanished")?;
        let build = self.store.build(job.build).await?.context("build vanished")?;
        if self.store.is_cancelled(build.id).await? {
            if !stage.status.is_done() {
                let reason = self.store.cancel_reason(build.id).await?.unwrap_or_default();
                crate::control::skip_cancelled_stage(&self.store, &self.publisher, &self.clock, &build, &mut stage, &reason).await?;
            }
            return Ok(());
        }
        let mut notes = Vec::new();
        if stage.status == Status::Running {
            tracing::warn!(stage = %stage.id, previous = %stage.machine, "taking over a stage whose worker stopped; running it again from the start");
            notes.push(format!(
                "The worker `{}` stopped while running this stage; `{}` ran it again from the start.",
                stage.machine, self.machine
            ));
        }
        for step in &mut stage.steps {
            step.status = Status::Pending;
            step.started = 0;
            step.stopped = 0;
            step.exit_code = 0;
            step.error.clear();
            self.logs.clear(stage.id, step.number).await?;
        }
        let started = self.clock.now();
        stage.status = Status::Running;
        stage.started = started.timestamp();
        stage.stopped = 0;
        stage.error.clear();
        stage.machine = self.machine.clone();
        self.store.save_stage(&mut stage).await?;
        let build = self
            .store
            .update_build(build.id, |b| {
                if b.status == Status::Pending {
                    b.status = Status::Running;
                    b.started = started.timestamp();
                }
                b.updated = started.timestamp();
            })
            .await?
            .unwrap_or(build);
        if let Err(e) = self.publisher.stage_started(&build, &stage, started).await {
            tracing::warn!(error = %e, "could not mark the check run in progress; going on");
        }

        let workspace = self.settings.data_dir.join("workspaces").join(format!("stage-{}", stage.id));
        let outcome = self.execute(&build, stage, &workspace, cancel, notes).await;
        let _ = tokio::fs::remove_dir_all(&workspace).await;
        let (mut stage, report) = outcome?;

        if hand_back.is_cancelled() && !self.store.is_cancelled(build.id).await.unwrap_or(false) {
            return self.requeue(&build, &mut stage).await;
        }
        let published = self.publisher.stage_finished(&build, &stage, &report).await;
        super::finish::finish(self, &build, &stage).await?;
        // An outage at the very end must not run the stage again: its job
        // stays queued and the next claim only publishes the result.
        published.context("publishing the stage result")?;
        stage.published = true;
        self.store.save_stage(&mut stage).await?;
        Ok(())
    }

    /// Publishes the result of a stage that finished while GitHub was
    /// unreachable, rebuilt from the stored record and logs.
    pub async fn republish(&self, job: &StageJob) -> anyhow::Result<()> {
        let mut stage = self.store.stage(job.stage).await?.context("stage vanished")?;
        let build = self.store.build(job.build).await?.context("build vanished")?;
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
        let report = StageReport {
            failed_step: failed.map(|s| s.name.clone()),
            tail,
            timed_out: stage.steps.iter().any(|s| s.error.starts_with("timed out")),
            sandboxed: self.sandbox.is_sandboxed(),
            cancel_reason: match stage.status {
                Status::Killed => Some(self.store.cancel_reason(build.id).await?.unwrap_or_default()),
                _ => None,
            },
            notes: vec!["Published again: GitHub was unreachable when the stage ended.".to_string()],
            completed: self.clock.now(),
            annotations: Vec::new(),
        };
        self.publisher.stage_finished(&build, &stage, &report).await.context("publishing the stage result again")?;
        stage.published = true;
        self.store.save_stage(&mut stage).await?;
        Ok(())
    }

    /// Puts a stage back in the queue for another worker (graceful stop).
    async fn requeue(&self, build: &Build, stage: &mut Stage) -> anyhow::Result<()> {
        stage.status = Status::Pending;
        for step in &mut stage.steps {
            step.status = Status::Pending;
        }
        self.store.save_stage(stage).await?;
        if let Some(id) = stage.check_run {
            let queued = CheckRunBody { status: Some(CheckStatus::Queued), ..CheckRunBody::default() };
            let _ = self.publisher.github().update_check_run(build.installation, &repo_path(build), id, &queued).await;
        }
        self.jobs.push(&StageJob { build: build.id, stage: stage.id }).await?;
        tracing::info!(stage = %stage.id, "handed a stage back to the queue");
        Ok(())
    }

    async fn execute(
        &self,
        build: &Build,
        stage: Stage,
        workspace: &Path,
        cancel: &CancellationToken,
        mut notes: Vec<String>,
    ) -> anyhow::Result<(Stage, StageReport)> {
        let _ = tokio::fs::remove_dir_all(workspace).await;
        tokio::fs::create_dir_all(workspace).await.with_context(|| format!("creating {}", workspace.display()))?;
        self.sandbox.give(workspace)?;
        let repo = self.store.repo(build.repo_id).await?;
        let workspace_in = self.sandbox.workspace_path(workspace).into_owned();
        let secrets = self.resolve_secrets(build, &stage.pipeline, stage.approved).await;
        let masker = Arc::new(Masker::new(secrets.values().filter_map(|v| v.as_deref().ok())));
        let run = Run {
            secrets,
            masker,
            annotations: Arc::default(),
            build,
            facts: facts_of(build, repo.as_ref(), self.publisher.build_url(build)),
            offset: usize::from(!stage.pipeline.clone_disabled),
            pipeline: stage.pipeline.clone(),
            stage: Mutex::new(stage),
            tails: Mutex::default(),
            workspace: workspace.to_path_buf(),
            home: if self.sandbox.is_sandboxed() { "/tmp".to_string() } else { workspace_in.clone() },
            workspace_in,
        };
        let cloned = run.offset == 0 || self.clone_step(&run).await;
        let match_facts = Facts {
            event: build.event.as_str(),
            branch: &build.target,
            git_ref: &build.git_ref,
            action: &build.action,
            repo: &build.repo_slug,
        };
        let outcomes = if cloned {
            let steps = schedule::execute(&run.pipeline.steps, &match_facts, cancel, |i| self.step(&run, i, cancel));
            let annotate = async {
                loop {
                    tokio::time::sleep(ANNOTATION_INTERVAL).await;
                    self.publish_annotations(&run).await;
                }
            };
            tokio::select! { outcomes = steps => outcomes, _ = annotate => unreachable!("the annotation loop never ends") }
        } else {
            vec![Outcome::skipped(); run.pipeline.steps.len()]
        };

        let Run { mut stage, tails, pipeline, offset, annotations: run_annotations, .. } = run;
        let (stage, tails) = (stage.get_mut(), tails.into_inner());
        for (i, outcome) in outcomes.iter().enumerate() {
            if outcome.status == Status::Skipped {
                stage.steps[i + offset].status = Status::Skipped;
            }
        }
        let cancelled = cancel.is_cancelled();
        stage.status = if cloned { schedule::stage_status(&pipeline.steps, &outcomes, cancelled) } else { Status::Failure };
        let failed = stage.steps.iter().position(|s| s.status.is_failed() && !s.errignore && s.status != Status::Killed);
        stage.exit_code = failed.map_or(0, |i| stage.steps[i].exit_code);
        if let Some(error) = stage.steps.iter().find(|s| s.status == Status::Error).map(|s| s.error.clone()) {
            stage.error = error;
        }
        stage.stopped = self.now();
        self.store.save_stage(stage).await?;
        let timed_out = outcomes.iter().any(|o| o.timed_out);
        let cancel_reason = match cancelled {
            true => Some(self.store.cancel_reason(build.id).await?.unwrap_or_default()),
            false => None,
        };
        if let Some(reason) = &cancel_reason {
            notes.push(crate::control::cancel_note(reason, "while running"));
        }
        if timed_out {
            notes.push(format!("A step ran past the step timeout of {}s and was killed.", pipeline.step_timeout.as_secs()));
        }
        let (annotations, annotation_line) = {
            let mut collected = run_annotations.lock().expect("not poisoned");
            (collected.pending.drain(..).collect(), collected.summary_line())
        };
        notes.extend(annotation_line);
        let report = StageReport {
            annotations,
            failed_step: failed.map(|i| stage.steps[i].name.clone()),
            tail: failed.and_then(|i| tails.get(&i)).map(Captured::tail_text).unwrap_or_default(),
            timed_out,
            sandboxed: self.sandbox.is_sandboxed(),
            cancel_reason,
            notes,
            completed: self.clock.now(),
        };
        Ok((stage.clone(), report))
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
            let value = if build.fork && !approved {
                Err("secrets are never given to pull requests from forks unless an administrator approves the build".to_string())
            } else {
                match self.secrets.reveal(build.repo_id, name).await {
                    Ok(Some((info, _))) if build.event == Event::PullRequest && !info.pull_request => {
                        Err("it is not available to pull_request builds (its pull_request flag is off)".to_string())
                    }
                    Ok(Some((_, value))) => Ok(value.expose_secret().to_string()),
                    Ok(None) => Err(format!("{} has no secret `{name}`", build.repo_slug)),
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
            if let Err(e) = self.publisher.annotate(run.build, &stage, batch).await {
                tracing::warn!(error = %e, "could not publish annotations");
                return;
            }
        }
    }

    /// Marks step record `index` running; returns its number.
    async fn step_started(&self, run: &Run<'_>, index: usize) -> i64 {
        let mut stage = run.stage.lock().await;
        stage.steps[index].status = Status::Running;
        stage.steps[index].started = self.now();
        let number = stage.steps[index].number;
        if let Err(e) = self.store.save_stage(&mut stage).await {
            tracing::warn!(error = %e, "could not record a step start");
        }
        number
    }

    /// Records how step record `index` ended and what it printed last.
    async fn step_ended(&self, run: &Run<'_>, index: usize, outcome: &Outcome, captured: Captured) {
        run.tails.lock().await.insert(index, captured);
        let mut stage = run.stage.lock().await;
        let record = &mut stage.steps[index];
        record.status = outcome.status;
        record.exit_code = outcome.exit_code;
        record.error = outcome.error.clone();
        record.stopped = self.now();
        if let Err(e) = self.store.save_stage(&mut stage).await {
            tracing::warn!(error = %e, "could not record a step's end");
        }
    }

    /// Runs pipeline step `i` in the sandbox.
    async fn step(&self, run: &Run<'_>, i: usize, cancel: &CancellationToken) -> Outcome {
        let index = i + run.offset;
        let number = self.step_started(run, index).await;
        let (stage_id, stage_number) = {
            let stage = run.stage.lock().await;
            (stage.id, stage.number)
        };
        let (lines, writer) = spawn_writer(run.log_target(self, stage_id, number));
        let step = &run.pipeline.steps[i];
        let secrets = |name: &str| run.secrets.get(name).cloned().unwrap_or_else(|| Err("not looked up".to_string()));
        let ending = match step_env(&run.facts, &run.pipeline, stage_number, step, number, &run.workspace_in, &run.home, &secrets) {
            Ok(env) => {
                let spec = StepSpec { commands: step.commands.clone(), env, timeout: run.pipeline.step_timeout };
                step::run(&self.sandbox, &run.workspace, &spec, &lines, cancel).await
            }
            Err(e) => Ending::Failed(e.to_string()),
        };
        let (outcome, note) = ending.outcome(run.pipeline.step_timeout);
        if let Some(note) = note {
            let _ = lines.send(note).await;
        }
        drop(lines);
        self.step_ended(run, index, &outcome, writer.await.unwrap_or_default()).await;
        outcome
    }

    /// Fetches the commit as step record 0; false when it failed.
    async fn clone_step(&self, run: &Run<'_>) -> bool {
        let number = self.step_started(run, 0).await;
        let stage_id = run.stage.lock().await.id;
        let (lines, writer) = spawn_writer(run.log_target(self, stage_id, number));
        let build = run.build;
        let result = match self.publisher.github().installation_token(build.installation).await {
            Ok(token) => clone::fetch(&self.sandbox, &run.workspace, &build.clone_url, &build.after.0, Some(&token), &lines).await,
            Err(e) => Err(format!("cannot get an installation token to clone with: {e}")),
        };
        let outcome = match &result {
            Ok(()) => Ending::Exited(0).outcome(run.pipeline.step_timeout).0,
            Err(reason) => {
                let _ = lines.send(format!("[greenlight] {reason}\n")).await;
                Outcome { status: Status::Failure, exit_code: 1, error: reason.clone(), timed_out: false }
            }
        };
        drop(lines);
        self.step_ended(run, 0, &outcome, writer.await.unwrap_or_default()).await;
        result.is_ok()
    }
}

fn facts_of(build: &Build, repo: Option<&crate::store::Repo>, build_link: String) -> BuildFacts {
    BuildFacts {
        number: build.number,
        parent: build.parent,
        event: build.event.as_str().to_string(),
        action: build.action.clone(),
        sha: build.after.0.clone(),
        before: build.before.clone(),
        git_ref: build.git_ref.clone(),
        source: build.source.clone(),
        target: build.target.clone(),
        pull_request: build.pull_request,
        title: build.title.clone(),
        message: build.message.clone(),
        link: build.link.clone(),
        author: build.author_login.clone(),
        author_name: build.author_name.clone(),
        author_email: build.author_email.clone(),
        repo: build.repo_slug.clone(),
        repo_link: repo.map(|r| r.link.clone()).unwrap_or_default(),
        clone_url: build.clone_url.clone(),
        default_branch: repo.map(|r| r.default_branch.clone()).unwrap_or_default(),
        private: repo.is_some_and(|r| r.private),
        build_link,
    }
}
