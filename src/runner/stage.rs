//! Running one stage from start to finish: workspace, clone, steps, logs,
//! and what GitHub is told at each point.

use super::clone;
use super::env::{BuildFacts, step_env};
use super::logs::{Captured, spawn_writer};
use super::sandbox::Sandbox;
use super::schedule::{self, EXIT_STOP, Outcome};
use super::step::{self, Ending, StepSpec};
use super::worker::WorkerSettings;
use crate::clock::SharedClock;
use crate::github::types::{CheckRunBody, CheckStatus};
use crate::pipeline::Facts;
use crate::publish::{Publisher, StageReport};
use crate::queue::WorkQueue;
use crate::store::{Build, Logs, Stage, StageJob, Status, Store};
use anyhow::Context;
use std::collections::HashMap;
use std::path::Path;
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
}

/// A step's exit code when greenlight killed it.
const EXIT_KILLED: i64 = 137;

fn facts_of(
    build: &Build,
    repo_link: String,
    default_branch: String,
    private: bool,
    build_link: String,
) -> BuildFacts {
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
        repo_link,
        clone_url: build.clone_url.clone(),
        default_branch,
        private,
        build_link,
    }
}

impl StageRunner {
    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// Runs a stage; `Err` leaves its job queued to be retried.
    pub async fn run(
        &self,
        job: &StageJob,
        cancel: &CancellationToken,
        hand_back: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut stage = self
            .store
            .stage(job.stage)
            .await?
            .context("stage vanished")?;
        let build = self
            .store
            .build(job.build)
            .await?
            .context("build vanished")?;
        let mut notes = Vec::new();
        if stage.status == Status::Running {
            tracing::warn!(stage = %stage.id, previous = %stage.machine, "taking over a stage whose worker stopped; running it again from the start");
            notes.push(format!("The worker `{}` stopped while running this stage; `{}` ran it again from the start.", stage.machine, self.machine));
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

        let workspace = self
            .settings
            .data_dir
            .join("workspaces")
            .join(format!("stage-{}", stage.id));
        let outcome = self.execute(&build, stage, &workspace, cancel, notes).await;
        let _ = tokio::fs::remove_dir_all(&workspace).await;
        let (mut stage, report) = outcome?;

        if hand_back.is_cancelled() && !self.build_cancelled(&build).await {
            return self.requeue(&build, &mut stage).await;
        }
        if let Err(e) = self.publisher.stage_finished(&build, &stage, &report).await {
            tracing::warn!(error = %e, "could not publish the stage result");
            anyhow::bail!("publishing the result failed: {e}");
        }
        self.finish(&build, &stage).await
    }

    async fn build_cancelled(&self, build: &Build) -> bool {
        self.store.is_cancelled(build.id).await.unwrap_or(false)
    }

    /// Puts a stage back in the queue for another worker (graceful stop).
    async fn requeue(&self, build: &Build, stage: &mut Stage) -> anyhow::Result<()> {
        stage.status = Status::Pending;
        for step in &mut stage.steps {
            step.status = Status::Pending;
        }
        self.store.save_stage(stage).await?;
        if let Some(id) = stage.check_run {
            let queued = CheckRunBody {
                status: Some(CheckStatus::Queued),
                ..CheckRunBody::default()
            };
            let _ = self
                .publisher
                .github()
                .update_check_run(
                    build.installation,
                    &crate::publish::repo_path(build),
                    id,
                    &queued,
                )
                .await;
        }
        self.jobs
            .push(&StageJob {
                build: build.id,
                stage: stage.id,
            })
            .await?;
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
        tokio::fs::create_dir_all(workspace)
            .await
            .with_context(|| format!("creating {}", workspace.display()))?;
        self.sandbox.give(workspace)?;
        let repo = self.store.repo(build.repo_id).await?;
        let facts = facts_of(
            build,
            repo.as_ref().map(|r| r.link.clone()).unwrap_or_default(),
            repo.as_ref()
                .map(|r| r.default_branch.clone())
                .unwrap_or_default(),
            repo.as_ref().is_some_and(|r| r.private),
            self.publisher.build_url(build),
        );
        let pipeline = stage.pipeline.clone();
        let offset = usize::from(!pipeline.clone_disabled);
        let shared = Arc::new(Mutex::new(stage));
        let tails: Arc<Mutex<HashMap<usize, Captured>>> = Arc::default();
        let mut clone_failed = None;

        if offset == 1 {
            let outcome = self.clone_step(build, &shared, workspace, &tails).await;
            if outcome.status != Status::Success {
                clone_failed = Some(outcome);
            }
        }
        let slug = build.repo_slug.clone();
        let match_facts = Facts {
            event: build.event.as_str(),
            branch: &build.target,
            git_ref: &build.git_ref,
            action: &build.action,
            repo: &slug,
        };
        let outcomes = if clone_failed.is_some() {
            vec![Outcome::skipped(); pipeline.steps.len()]
        } else {
            let workspace_in = self.sandbox.workspace_path(workspace).into_owned();
            let home = if self.sandbox.is_sandboxed() {
                "/tmp".to_string()
            } else {
                workspace_in.clone()
            };
            schedule::execute(&pipeline.steps, &match_facts, cancel, |i| {
                let (shared, tails, facts, pipeline) = (
                    shared.clone(),
                    tails.clone(),
                    facts.clone(),
                    pipeline.clone(),
                );
                let (workspace_in, home) = (workspace_in.clone(), home.clone());
                async move {
                    let index = i + offset;
                    let number = {
                        let mut stage = shared.lock().await;
                        let stage_number = stage.number;
                        let record = &mut stage.steps[index];
                        record.status = Status::Running;
                        record.started = self.now();
                        let number = record.number;
                        let _ = self.store.save_stage(&mut stage).await;
                        (number, stage_number)
                    };
                    let (step_number, stage_number) = number;
                    let stage_id = shared.lock().await.id;
                    let (lines, writer) = spawn_writer(
                        self.logs.clone(),
                        stage_id,
                        step_number,
                        self.settings.log_limit,
                    );
                    let step = &pipeline.steps[i];
                    let ending = match step_env(
                        &facts,
                        &pipeline,
                        stage_number,
                        step,
                        step_number,
                        &workspace_in,
                        &home,
                    ) {
                        Ok(env) => {
                            let spec = StepSpec {
                                commands: step.commands.clone(),
                                env,
                                timeout: pipeline.step_timeout,
                            };
                            step::run(&self.sandbox, workspace, &spec, &lines, cancel).await
                        }
                        Err(e) => Ending::Failed(e.to_string()),
                    };
                    let outcome = match &ending {
                        Ending::Exited(0) => Outcome {
                            status: Status::Success,
                            exit_code: 0,
                            error: String::new(),
                            timed_out: false,
                        },
                        Ending::Exited(code) if i64::from(*code) == EXIT_STOP => Outcome {
                            status: Status::Success,
                            exit_code: EXIT_STOP,
                            error: String::new(),
                            timed_out: false,
                        },
                        Ending::Exited(code) => Outcome {
                            status: Status::Failure,
                            exit_code: i64::from(*code),
                            error: String::new(),
                            timed_out: false,
                        },
                        Ending::TimedOut => {
                            let _ = lines
                                .send(format!(
                                    "[greenlight] step timed out after {}s and was killed\n",
                                    pipeline.step_timeout.as_secs()
                                ))
                                .await;
                            Outcome {
                                status: Status::Failure,
                                exit_code: EXIT_KILLED,
                                error: format!(
                                    "timed out after {}s",
                                    pipeline.step_timeout.as_secs()
                                ),
                                timed_out: true,
                            }
                        }
                        Ending::Cancelled => {
                            let _ = lines
                                .send("[greenlight] step cancelled and killed\n".to_string())
                                .await;
                            Outcome {
                                status: Status::Killed,
                                exit_code: 130,
                                error: "cancelled".to_string(),
                                timed_out: false,
                            }
                        }
                        Ending::Failed(reason) => {
                            let _ = lines.send(format!("[greenlight] {reason}\n")).await;
                            Outcome {
                                status: Status::Error,
                                exit_code: 255,
                                error: reason.clone(),
                                timed_out: false,
                            }
                        }
                    };
                    drop(lines);
                    let captured = writer.await.unwrap_or_default();
                    tails.lock().await.insert(index, captured);
                    let mut stage = shared.lock().await;
                    let record = &mut stage.steps[index];
                    record.status = outcome.status;
                    record.exit_code = outcome.exit_code;
                    record.error = outcome.error.clone();
                    record.stopped = self.now();
                    let _ = self.store.save_stage(&mut stage).await;
                    outcome
                }
            })
            .await
        };

        let mut stage = Arc::try_unwrap(shared)
            .map_err(|_| anyhow::anyhow!("steps still running"))?
            .into_inner();
        let tails = Arc::try_unwrap(tails)
            .map_err(|_| anyhow::anyhow!("steps still running"))?
            .into_inner();
        for (i, outcome) in outcomes.iter().enumerate() {
            if outcome.status == Status::Skipped {
                stage.steps[i + offset].status = Status::Skipped;
            }
        }
        let cancelled = cancel.is_cancelled();
        stage.status = match &clone_failed {
            Some(_) => Status::Failure,
            None => schedule::stage_status(&pipeline.steps, &outcomes, cancelled),
        };
        let failed_index = stage
            .steps
            .iter()
            .position(|s| s.status.is_failed() && !s.errignore && s.status != Status::Killed);
        stage.exit_code = failed_index.map_or(0, |i| stage.steps[i].exit_code);
        if let Some(error) = stage
            .steps
            .iter()
            .find(|s| s.status == Status::Error)
            .map(|s| s.error.clone())
        {
            stage.error = error;
        }
        stage.stopped = self.now();
        self.store.save_stage(&mut stage).await?;
        let timed_out = outcomes.iter().any(|o| o.timed_out);
        if timed_out {
            notes.push(format!(
                "A step ran past the step timeout of {}s and was killed.",
                pipeline.step_timeout.as_secs()
            ));
        }
        let report = StageReport {
            failed_step: failed_index.map(|i| stage.steps[i].name.clone()),
            tail: failed_index
                .and_then(|i| tails.get(&i))
                .map(Captured::tail_text)
                .unwrap_or_default(),
            timed_out,
            sandboxed: self.sandbox.is_sandboxed(),
            cancel_reason: cancelled.then(|| "cancelled".to_string()),
            notes,
            completed: self.clock.now(),
        };
        Ok((stage, report))
    }

    async fn clone_step(
        &self,
        build: &Build,
        shared: &Arc<Mutex<Stage>>,
        workspace: &Path,
        tails: &Arc<Mutex<HashMap<usize, Captured>>>,
    ) -> Outcome {
        let (stage_id, number) = {
            let mut stage = shared.lock().await;
            stage.steps[0].status = Status::Running;
            stage.steps[0].started = self.now();
            let _ = self.store.save_stage(&mut stage).await;
            (stage.id, stage.steps[0].number)
        };
        let (lines, writer) =
            spawn_writer(self.logs.clone(), stage_id, number, self.settings.log_limit);
        let result = match self
            .publisher
            .github()
            .installation_token(build.installation)
            .await
        {
            Ok(token) => {
                clone::fetch(
                    &self.sandbox,
                    workspace,
                    &build.clone_url,
                    &build.after.0,
                    Some(&token),
                    &lines,
                )
                .await
            }
            Err(e) => Err(format!(
                "cannot get an installation token to clone with: {e}"
            )),
        };
        if let Err(reason) = &result {
            let _ = lines.send(format!("[greenlight] {reason}\n")).await;
        }
        drop(lines);
        let captured = writer.await.unwrap_or_default();
        tails.lock().await.insert(0, captured);
        let outcome = match result {
            Ok(()) => Outcome {
                status: Status::Success,
                exit_code: 0,
                error: String::new(),
                timed_out: false,
            },
            Err(reason) => Outcome {
                status: Status::Failure,
                exit_code: 1,
                error: reason,
                timed_out: false,
            },
        };
        let mut stage = shared.lock().await;
        stage.steps[0].status = outcome.status;
        stage.steps[0].exit_code = outcome.exit_code;
        stage.steps[0].error = outcome.error.clone();
        stage.steps[0].stopped = self.now();
        for step in stage
            .steps
            .iter_mut()
            .skip(1)
            .filter(|_| outcome.status != Status::Success)
        {
            step.status = Status::Skipped;
        }
        let _ = self.store.save_stage(&mut stage).await;
        outcome
    }

    /// Counts the stage done; starts stages that waited for it; finishes the build after its last stage.
    async fn finish(&self, build: &Build, stage: &Stage) -> anyhow::Result<()> {
        let mut done = vec![stage.clone()];
        while let Some(finished) = done.pop() {
            let stages = self.store.stages(build).await?;
            for mut waiting in stages
                .into_iter()
                .filter(|s| s.status == Status::WaitingOnDependencies)
            {
                let all = self.store.stages(build).await?;
                let dep_states: Vec<Status> = waiting
                    .depends_on
                    .iter()
                    .filter_map(|d| all.iter().find(|s| &s.name == d).map(|s| s.status))
                    .collect();
                if !dep_states.iter().all(|s| s.is_done()) {
                    continue;
                }
                let passing = dep_states.iter().all(|s| !s.is_failed());
                if waiting.pipeline.trigger.admits_status(!passing) {
                    waiting.status = Status::Pending;
                    waiting.enqueued = true;
                    self.store.save_stage(&mut waiting).await?;
                    self.jobs
                        .push(&StageJob {
                            build: build.id,
                            stage: waiting.id,
                        })
                        .await?;
                } else {
                    waiting.status = Status::Skipped;
                    for step in &mut waiting.steps {
                        step.status = Status::Skipped;
                    }
                    waiting.stopped = self.now();
                    self.store.save_stage(&mut waiting).await?;
                    let report = StageReport {
                        failed_step: None,
                        tail: String::new(),
                        timed_out: false,
                        sandboxed: self.sandbox.is_sandboxed(),
                        cancel_reason: None,
                        notes: vec![format!(
                            "Skipped: a pipeline it depends on ({}) did not pass.",
                            waiting.depends_on.join(", ")
                        )],
                        completed: self.clock.now(),
                    };
                    let _ = self
                        .publisher
                        .stage_finished(build, &waiting, &report)
                        .await;
                    done.push(waiting);
                }
            }
            if self.store.stage_done(build, finished.id).await? {
                let stages = self.store.stages(build).await?;
                let status = build_status(&stages);
                let now = self.now();
                self.store
                    .update_build(build.id, |b| {
                        b.status = status;
                        b.finished = now;
                        if b.started == 0 {
                            b.started = now;
                        }
                        b.updated = now;
                    })
                    .await?;
                self.store
                    .release_delivery(&build.delivery, &build.entry)
                    .await?;
                tracing::info!(repo = %build.repo_slug, number = build.number, status = status.as_str(), "build finished");
            }
        }
        Ok(())
    }
}

/// Drone's rule: in stage order, the first killed, failed or errored stage
/// decides; otherwise the build passed.
pub fn build_status(stages: &[Stage]) -> Status {
    stages
        .iter()
        .map(|s| s.status)
        .find(|s| matches!(s, Status::Killed | Status::Failure | Status::Error))
        .unwrap_or(Status::Success)
}
