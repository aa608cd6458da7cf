//! Running one step the one way both the worker and `greenlight exec` do:
//! its environment, its HOME, its process, and how it ended, with a note in
//! its output when greenlight ended it.

use super::env::{BuildFacts, SecretSource, step_env};
use super::network::StageNetwork;
use super::sandbox::{Bind, HOME, Sandbox};
use super::schedule::Outcome;
use super::step::{self, Ending, StepSpec};
use super::summary::Summary;
use crate::pipeline::{Pipeline, Step};
use crate::store::Status;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Runs the steps of one stage in one workspace.
#[derive(Debug, Clone)]
pub struct StepExecutor {
    sandbox: Sandbox,
    workspace: PathBuf,
    workspace_in: String,
    /// HOME as steps see it.
    home: String,
    /// The host directory bound as HOME, when the stage has one that
    /// outlives each step.
    home_dir: Option<PathBuf>,
    /// The stage's network; `None`: the host's.
    network: Option<Arc<StageNetwork>>,
}

/// One step to run and what its environment is made from.
#[derive(Clone, Copy)]
pub struct StepTask<'a> {
    /// The build the step's `DRONE_*` variables describe.
    pub facts: &'a BuildFacts,
    /// The step's pipeline: its name, environment and step timeout (the
    /// step's own `timeout` wins).
    pub pipeline: &'a Pipeline,
    /// `DRONE_STAGE_NUMBER`.
    pub stage_number: i64,
    /// The step itself (one of `pipeline.steps`).
    pub step: &'a Step,
    /// `DRONE_STEP_NUMBER`: the worker counts the clone step, `exec` does not.
    pub step_number: i64,
    /// Where `from_secret` values come from.
    pub secrets: SecretSource<'a>,
}

impl StepExecutor {
    /// An executor for steps in `workspace` (a host path the sandbox user
    /// can write). HOME is the sandbox's private `/tmp` when sandboxed;
    /// unsandboxed there is no private directory, so it is the workspace,
    /// never the worker's own HOME ([`StepExecutor::with_home`] gives one).
    /// Steps join `network` (the stage's), or stay on the host's when `None`.
    pub fn new(sandbox: &Sandbox, workspace: &Path, network: Option<Arc<StageNetwork>>) -> Self {
        let workspace_in = sandbox.workspace_path(workspace).into_owned();
        let home = if sandbox.is_sandboxed() { "/tmp".to_string() } else { workspace_in.clone() };
        Self { sandbox: sandbox.clone(), workspace: workspace.to_path_buf(), workspace_in, home, home_dir: None, network }
    }

    /// The same executor with `dir` (a host directory the sandbox user can
    /// write) as every step's HOME: bound at [`HOME`] when sandboxed, so
    /// what one step leaves in `~` the next one finds.
    pub fn with_home(mut self, dir: &Path) -> Self {
        self.home = self.sandbox.bind_path(&Self::home_bind(dir));
        self.home_dir = Some(dir.to_path_buf());
        self
    }

    /// How `dir` is bound as HOME.
    fn home_bind(dir: &Path) -> Bind<'_> {
        Bind { host: dir, inside: HOME, writable: true }
    }

    /// The workspace on the host.
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// The workspace as steps see it (`DRONE_WORKSPACE`, and the prefix
    /// annotations strip from paths).
    pub fn workspace_in(&self) -> &str {
        &self.workspace_in
    }

    /// HOME as steps see it.
    pub fn home(&self) -> &str {
        &self.home
    }

    /// Runs `task`'s step, sending its output lines to `sink`, followed by a
    /// `[greenlight] ...` line when greenlight ended it (timeout,
    /// cancellation, a secret it may not have, a start failure). A step that
    /// fails with its own exit code runs again while its `retry` allows, a
    /// labelled line between attempts; a detached step (a service) runs until
    /// `others_done` is cancelled. The step's output is complete once this
    /// returns, but `sink`'s receiver sees its end only when every sender is
    /// dropped. Also returns the Markdown the step (its last attempt) left in
    /// `$DRONE_SUMMARY` (see [`super::summary`]), unmasked.
    pub async fn run(
        &self,
        task: &StepTask<'_>,
        sink: &mpsc::Sender<String>,
        cancel: &CancellationToken,
        others_done: &CancellationToken,
    ) -> (Outcome, Summary) {
        if !task.step.detach {
            return self.run_attempts(task, sink, cancel).await;
        }
        // A service: it runs until it ends by itself, or until `others_done`
        // (then it is stopped, its whole process tree killed, and that is its
        // normal end, a success) or `cancel`.
        let stop = cancel.child_token();
        let watch = async {
            others_done.cancelled().await;
            stop.cancel();
            std::future::pending::<()>().await
        };
        let (ending, summary) = tokio::select! {
            ended = self.attempt(task, sink, &stop) => ended,
            () = watch => unreachable!("the watch never ends"),
        };
        let ending = match ending {
            Ending::Cancelled if !cancel.is_cancelled() => Ending::Stopped,
            other => other,
        };
        (conclude(task, &ending, sink).await, summary)
    }

    /// Runs the step, and again after a failure of its own exit code while
    /// its `retry` allows and nothing cancelled it.
    async fn run_attempts(&self, task: &StepTask<'_>, sink: &mpsc::Sender<String>, cancel: &CancellationToken) -> (Outcome, Summary) {
        let attempts = task.step.retry + 1;
        let mut attempt = 1;
        loop {
            let (ending, summary) = self.attempt(task, sink, cancel).await;
            let mut outcome = conclude(task, &ending, sink).await;
            outcome.attempts = attempt;
            let code = match ending {
                Ending::Exited(code) if outcome.status == Status::Failure => code,
                _ => return (outcome, summary),
            };
            if attempt >= attempts || cancel.is_cancelled() {
                return (outcome, summary);
            }
            attempt += 1;
            let _ = sink.send(format!("[greenlight] attempt {attempt} of {attempts} (the previous attempt exited {code})\n")).await;
        }
    }

    /// One run of the step's process, and the summary it left.
    async fn attempt(&self, task: &StepTask<'_>, sink: &mpsc::Sender<String>, cancel: &CancellationToken) -> (Ending, Summary) {
        let StepTask { facts, pipeline, stage_number, step, step_number, secrets } = *task;
        match step_env(facts, pipeline, stage_number, step, step_number, &self.workspace_in, &self.home, secrets) {
            Ok(env) => {
                let spec = StepSpec { commands: step.commands.clone(), env, timeout: step.timeout_in(pipeline) };
                let binds: Vec<Bind<'_>> = self.home_dir.as_deref().map(Self::home_bind).into_iter().collect();
                step::run(&self.sandbox, (&self.workspace, &binds), &spec, self.network.as_deref(), sink, cancel).await
            }
            Err(e) => (Ending::Failed(e.to_string()), Summary::default()),
        }
    }
}

/// The outcome of `ending`, its note (if any) sent to `sink`.
async fn conclude(task: &StepTask<'_>, ending: &Ending, sink: &mpsc::Sender<String>) -> Outcome {
    let (outcome, note) = ending.outcome(task.step.timeout_in(task.pipeline));
    if let Some(note) = note {
        let _ = sink.send(note).await;
    }
    outcome
}
