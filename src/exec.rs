//! `greenlight exec`: runs a local checkout's `.drone.yml` in the same
//! sandbox with the same step semantics, printing the logs live. No GitHub,
//! no Redis: the way to try a pipeline before pushing.

use crate::ids::Sha;
use crate::model::{Commit, Event, RepoRef, Status};
use crate::pipeline::{self, Config, Facts, Pipeline};
use crate::runner::env::{BuildFacts, no_secrets};
use crate::runner::executor::{StepExecutor, StepTask};
use crate::runner::sandbox::{Sandbox, SandboxOptions};
use crate::runner::schedule::{self, Outcome};
use anyhow::{Context, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What `greenlight exec` runs, from its command line.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The checkout whose `.drone.yml` runs; it is copied, never written.
    pub dir: PathBuf,
    /// Run only this pipeline, whatever its trigger says.
    pub pipeline: Option<String>,
    /// push, pull_request, tag or merge_group.
    pub event: String,
    /// The branch (default: the checkout's current branch).
    pub branch: Option<String>,
    /// Run steps without bubblewrap, for hosts that cannot create namespaces.
    pub unsandboxed: bool,
    /// The uid steps run as when greenlight runs as root (default 65534).
    pub sandbox_uid: Option<u32>,
}

fn git_output(dir: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// How one step of a local run went.
struct StepRun {
    name: String,
    outcome: Outcome,
    secs: f64,
}

/// What a local run's steps are told of their build: build 1 of
/// `local/checkout`, at the checkout's HEAD, on its branch (or `--branch`).
fn local_build(options: &ExecOptions) -> anyhow::Result<BuildFacts> {
    let branch = options
        .branch
        .clone()
        .or_else(|| git_output(&options.dir, &["rev-parse", "--abbrev-ref", "HEAD"]))
        .unwrap_or_else(|| "main".to_string());
    let (event, git_ref) = match options.event.as_str() {
        "tag" => (Event::Tag, format!("refs/tags/{branch}")),
        "pull_request" => (Event::PullRequest, "refs/pull/0/head".to_string()),
        "push" => (Event::Push, format!("refs/heads/{branch}")),
        "merge_group" => (Event::MergeGroup, format!("refs/heads/gh-readonly-queue/{branch}/local")),
        other => bail!("--event must be push, pull_request, tag or merge_group, not {other:?}"),
    };
    let commit = Commit {
        event,
        sha: Sha(git_output(&options.dir, &["rev-parse", "HEAD"]).unwrap_or_default()),
        git_ref,
        source: branch.clone(),
        target: if event == Event::Tag { String::new() } else { branch.clone() },
        ..Commit::default()
    };
    let repo = RepoRef { owner: "local".to_string(), name: "checkout".to_string(), default_branch: branch, ..RepoRef::default() };
    Ok(BuildFacts { number: 1, commit, repo, ..BuildFacts::default() })
}

/// Runs the pipelines; returns whether all passed.
pub async fn run(options: ExecOptions, out: &mut (dyn Write + Send)) -> anyhow::Result<bool> {
    let file = options.dir.join(pipeline::CONFIG_PATH);
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let config = pipeline::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let build = local_build(&options)?;
    let branch = build.commit.source.clone();
    let slug = build.repo.slug();
    let facts = build.commit.facts(&slug);
    let pipelines = chosen_pipelines(&config, options.pipeline.as_deref(), &facts)?;
    if pipelines.is_empty() {
        writeln!(out, "no pipeline's trigger matches event {} on branch {branch}", options.event)?;
        return Ok(true);
    }
    let root = tempfile::Builder::new().prefix("greenlight-exec-").tempdir()?;
    std::fs::set_permissions(root.path(), std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
    // On a developer's own machine, as in `drone exec`: no cgroup limits, the host's network.
    let sandbox_options = SandboxOptions { unsandboxed: options.unsandboxed, uid: options.sandbox_uid, ..SandboxOptions::default() };
    let sandbox = Sandbox::probe(&sandbox_options, root.path()).await?;
    if !sandbox.is_sandboxed() {
        writeln!(out, "warning: steps run UNSANDBOXED")?;
    }
    let mut results: Vec<(String, Vec<StepRun>)> = Vec::new();
    let mut failed_pipelines: Vec<String> = Vec::new();
    for (number, pipeline) in pipelines.iter().enumerate() {
        if pipeline.depends_on.iter().any(|d| failed_pipelines.contains(d)) {
            writeln!(out, "==> pipeline {} skipped: a pipeline it depends on failed", pipeline.name)?;
            failed_pipelines.push(pipeline.name.clone());
            continue;
        }
        writeln!(out, "==> pipeline {}", pipeline.name)?;
        let workspace = root.path().join(format!("stage-{}", number + 1));
        copy_checkout(&options.dir, &workspace)?;
        sandbox.give(&workspace)?;
        let steps = run_pipeline(&sandbox, &workspace, pipeline, number as i64 + 1, &build, &facts, out).await?;
        if steps.iter().any(|r| r.outcome.status.is_failed() && !pipeline.steps.iter().any(|s| s.name == r.name && s.ignore_failure)) {
            failed_pipelines.push(pipeline.name.clone());
        }
        results.push((pipeline.name.clone(), steps));
    }
    print_summary(out, &results)?;
    let passed = failed_pipelines.is_empty();
    writeln!(out, "{}", if passed { "pipeline passed" } else { "pipeline failed" })?;
    Ok(passed)
}

/// The pipeline named on the command line, or else every pipeline whose
/// trigger matches the local facts.
fn chosen_pipelines(config: &Config, name: Option<&str>, facts: &Facts<'_>) -> anyhow::Result<Vec<Pipeline>> {
    let Some(name) = name else {
        return Ok(config.matching(facts));
    };
    let pipeline = config.pipelines.iter().find(|p| p.name == name).cloned().with_context(|| {
        let names: Vec<&str> = config.pipelines.iter().map(|p| p.name.as_str()).collect();
        format!("no pipeline named {name:?} (there are: {})", names.join(", "))
    })?;
    Ok(vec![pipeline])
}

/// One line per step that ran: its pipeline, status (with the exit code
/// when it failed) and how long it took.
fn print_summary(out: &mut (dyn Write + Send), results: &[(String, Vec<StepRun>)]) -> anyhow::Result<()> {
    writeln!(out, "\nsummary")?;
    for (name, steps) in results {
        for run in steps {
            let status = match run.outcome.status {
                Status::Failure | Status::Error => format!("{} (exit {})", run.outcome.status.as_str(), run.outcome.exit_code),
                Status::Success if run.outcome.attempts > 1 => format!("success (passed on retry {})", run.outcome.attempts - 1),
                other => other.as_str().to_string(),
            };
            writeln!(out, "  {name} / {}: {status} in {:.1}s", run.name, run.secs)?;
        }
    }
    Ok(())
}

/// Copies the checkout, `.git` included, into a fresh workspace.
fn copy_checkout(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    let status = std::process::Command::new("cp").arg("-a").arg(format!("{}/.", from.display())).arg(to).status()?;
    if !status.success() {
        bail!("cannot copy {} into a workspace", from.display());
    }
    Ok(())
}

/// Runs one pipeline's steps in `workspace`, printing their output live,
/// each line prefixed with its step's name.
async fn run_pipeline(
    sandbox: &Sandbox,
    workspace: &Path,
    pipeline: &Pipeline,
    stage_number: i64,
    build: &BuildFacts,
    facts: &Facts<'_>,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Vec<StepRun>> {
    let (printer_tx, mut printer_rx) = mpsc::channel::<String>(1024);
    let executor = &StepExecutor::new(sandbox, workspace, None);
    let cancel = CancellationToken::new();
    let timings = std::sync::Mutex::new(vec![0.0; pipeline.steps.len()]);
    let durations = &timings;
    let step_cancel = cancel.clone();
    let others_done = CancellationToken::new();
    let services_done = others_done.clone();
    // The closure owns the printer's sender, so printing ends when the steps do.
    let steps = schedule::execute(&pipeline.steps, facts, &cancel, &others_done, move |i| {
        let printer = printer_tx.clone();
        let cancel = step_cancel.clone();
        let others_done = services_done.clone();
        async move {
            let step = &pipeline.steps[i];
            let started = Instant::now();
            let _ = printer.send(format!("--> step {}\n", step.name)).await;
            let (lines, forward) = prefixed(printer, format!("[{}] ", step.name));
            let task = StepTask { facts: build, pipeline, stage_number, step, step_number: i as i64 + 1, secrets: &no_secrets };
            let (outcome, summary) = executor.run(&task, &lines, &cancel, &others_done).await;
            // The step's job summary, as Markdown, after its output.
            for line in summary.markdown.lines().filter(|_| !summary.is_empty()) {
                let _ = lines.send(format!("summary| {line}\n")).await;
            }
            drop(lines);
            let _ = forward.await;
            durations.lock().expect("not poisoned")[i] = started.elapsed().as_secs_f64();
            outcome
        }
    });
    let print = async {
        while let Some(line) = printer_rx.recv().await {
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    };
    let (outcomes, ()) = tokio::join!(steps, print);
    let durations = timings.into_inner().expect("not poisoned");
    Ok(pipeline
        .steps
        .iter()
        .zip(outcomes)
        .zip(durations)
        .map(|((s, outcome), secs)| StepRun { name: s.name.clone(), outcome, secs })
        .collect())
}

/// A sink for one step's lines that prints each to `printer` after `prefix`;
/// the task ends once every sender of the sink is dropped.
fn prefixed(printer: mpsc::Sender<String>, prefix: String) -> (mpsc::Sender<String>, tokio::task::JoinHandle<()>) {
    let (lines, mut rx) = mpsc::channel::<String>(1024);
    let forward = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            // A piece of a cut line is printed as a line of its own, under its prefix.
            let end = if line.ends_with('\n') { "" } else { "\n" };
            let _ = printer.send(format!("{prefix}{line}{end}")).await;
        }
    });
    (lines, forward)
}
