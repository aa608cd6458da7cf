//! What greenlight shows on GitHub: a commit status and a check run per
//! pipeline, kept within GitHub's limits.

use crate::github::types::{
    Annotation, CheckRunBody, CheckStatus, Conclusion, MAX_ANNOTATIONS_PER_REQUEST, MAX_OUTPUT_BYTES, MAX_STATUS_DESCRIPTION_CHARS, Output,
    StatusBody, StatusState, truncate_bytes, truncate_chars_ellipsis,
};
use crate::github::{GitHub, GitHubError, RepoPath};
use crate::ids::CheckRunId;
use crate::model::{Build, Event, Stage, StageState, Status};
use crate::secrets::Masker;
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub mod annotations;
pub mod report;

/// Publishes build feedback to GitHub.
#[derive(Clone)]
pub struct Publisher {
    github: GitHub,
    public_url: String,
}

/// The name a pipeline's check run and status context use when the
/// configuration itself could not be read.
pub const CONFIG_CHECK: &str = ".drone.yml";

/// `greenlight/<pipeline>/<event>`: the commit status context of a pipeline.
pub fn status_context(pipeline: &str, event: &str) -> String {
    format!("greenlight/{pipeline}/{event}")
}

/// `<pipeline> (<event>)`: the check run name of a pipeline.
pub fn check_name(pipeline: &str, event: &str) -> String {
    format!("{pipeline} ({event})")
}

/// What a description of a skipped pipeline starts with: commit statuses
/// have no skipped state, so it is a `success` that says so.
pub const SKIPPED_PREFIX: &str = "skipped: ";

/// The line every check run of a merge group build starts its summary
/// with: it carries the pull request's name, but built the queue's commit.
pub const MERGE_GROUP_NOTE: &str =
    "This is a merge group build: the merge queue's commit, checked under the pull request's name so one required check covers both.";

/// The summary lines a build's event adds to each of its check runs.
fn event_notes(build: &Build) -> Vec<String> {
    if build.commit.event == Event::MergeGroup { vec![MERGE_GROUP_NOTE.to_string()] } else { Vec::new() }
}

/// The repository route of a build.
pub fn repo_path(build: &Build) -> RepoPath {
    RepoPath::from(&build.repo)
}

impl Publisher {
    /// A publisher linking to build pages under `public_url`.
    pub fn new(github: GitHub, public_url: String) -> Self {
        Self { github, public_url }
    }

    /// The build page: `GREENLIGHT_PUBLIC_URL/{owner}/{repo}/{number}`.
    pub fn build_url(&self, build: &Build) -> String {
        format!("{}/{}/{}", self.public_url, build.slug(), build.number)
    }

    /// Sets a pipeline's commit status; the description is cut to GitHub's 140 characters.
    pub async fn status(&self, build: &Build, pipeline: &str, state: StatusState, description: &str) -> Result<(), GitHubError> {
        let body = StatusBody {
            state,
            target_url: self.build_url(build),
            description: truncate_chars_ellipsis(description, MAX_STATUS_DESCRIPTION_CHARS),
            context: status_context(pipeline, build.commit.event.reported_as()),
        };
        self.github.create_status(build.installation, &repo_path(build), &build.commit.sha.0, &body).await
    }

    /// Announces a planned stage: a pending status and a queued check run.
    /// Returns the check run's id.
    pub async fn stage_planned(&self, build: &Build, stage: &Stage) -> Result<CheckRunId, GitHubError> {
        let waiting = if stage.state == StageState::Blocked {
            "waiting for approval (a pull request from a fork)".to_string()
        } else if stage.depends_on.is_empty() {
            "waiting for a runner".to_string()
        } else {
            format!("waiting for {}", stage.depends_on.join(", "))
        };
        self.status(build, &stage.name, StatusState::Pending, &format!("Build #{} is pending: {waiting}", build.number)).await?;
        let run = CheckRunBody {
            name: Some(check_name(&stage.name, build.commit.event.reported_as())),
            head_sha: Some(build.commit.sha.0.clone()),
            details_url: Some(self.build_url(build)),
            external_id: Some(build.id.to_string()),
            status: Some(CheckStatus::Queued),
            ..CheckRunBody::default()
        };
        self.github.create_check_run(build.installation, &repo_path(build), &run).await
    }

    /// Reports a pipeline its trigger filtered out: a `success` status whose
    /// description starts with [`SKIPPED_PREFIX`] and a check run concluded
    /// `skipped` with the reason, both of which satisfy a required check.
    /// Returns the check run's id.
    pub async fn stage_filtered_out(&self, build: &Build, stage: &Stage, now: DateTime<Utc>) -> Result<CheckRunId, GitHubError> {
        let reason = &stage.filtered_out;
        self.status(build, &stage.name, StatusState::Success, &format!("{SKIPPED_PREFIX}{reason}")).await?;
        let mut summary = event_notes(build);
        summary.push(format!("Build #{} did not run this pipeline: {reason}.", build.number));
        let run = CheckRunBody {
            name: Some(check_name(&stage.name, build.commit.event.reported_as())),
            head_sha: Some(build.commit.sha.0.clone()),
            details_url: Some(self.build_url(build)),
            external_id: Some(build.id.to_string()),
            status: Some(CheckStatus::Completed),
            conclusion: Some(Conclusion::Skipped),
            started_at: Some(now),
            completed_at: Some(now),
            output: Some(Output {
                title: truncate_chars_ellipsis(&format!("Skipped: {reason}"), MAX_STATUS_DESCRIPTION_CHARS),
                summary: truncate_bytes(&summary.join("\n\n"), MAX_OUTPUT_BYTES).to_string(),
                text: None,
                annotations: Vec::new(),
            }),
            actions: None,
        };
        self.github.create_check_run(build.installation, &repo_path(build), &run).await
    }

    /// Reports a build that could not be planned (no or invalid `.drone.yml`):
    /// an `error` status and a failed check run saying what is wrong and where.
    pub async fn config_error(&self, build: &Build, now: DateTime<Utc>) -> Result<(), GitHubError> {
        self.status(build, CONFIG_CHECK, StatusState::Error, &build.error).await?;
        let summary = format!(
            "greenlight could not plan build #{} for `{}`:\n\n```\n{}\n```\n\nFix `.drone.yml` and push again, or redeliver the webhook.",
            build.number,
            build.commit.sha.short(),
            build.error
        );
        let run = CheckRunBody {
            name: Some(check_name(CONFIG_CHECK, build.commit.event.reported_as())),
            head_sha: Some(build.commit.sha.0.clone()),
            details_url: Some(self.build_url(build)),
            external_id: Some(build.id.to_string()),
            status: Some(CheckStatus::Completed),
            conclusion: Some(Conclusion::Failure),
            started_at: Some(now),
            completed_at: Some(now),
            output: Some(Output {
                title: "Invalid pipeline configuration".to_string(),
                summary: truncate_bytes(&summary, MAX_OUTPUT_BYTES).to_string(),
                text: None,
                annotations: Vec::new(),
            }),
            actions: None,
        };
        self.github.create_check_run(build.installation, &repo_path(build), &run).await?;
        Ok(())
    }

    /// Marks a stage's check run `in_progress` (with `started_at`) and its status "running".
    pub async fn stage_started(&self, build: &Build, stage: &Stage, started: DateTime<Utc>) -> Result<(), GitHubError> {
        self.status(build, &stage.name, StatusState::Pending, &format!("Build #{} is running", build.number)).await?;
        let Some(id) = stage.check_run else {
            return Ok(());
        };
        let run = CheckRunBody {
            status: Some(CheckStatus::InProgress),
            started_at: Some(started),
            details_url: Some(self.build_url(build)),
            ..CheckRunBody::default()
        };
        self.github.update_check_run(build.installation, &repo_path(build), id, &run).await
    }

    /// Completes a stage's check run (conclusion, title, summary, failing
    /// log tail) and sets its final commit status. This is where a stage's
    /// words leave greenlight: the description, title, summary and text are
    /// masked with the report's masker once composed, then cut to GitHub's
    /// limits (its annotations were masked when collected).
    pub async fn stage_finished(&self, build: &Build, stage: &Stage, finish: &StageReport) -> Result<(), GitHubError> {
        let state = report::status_state(stage);
        let description = match (&stage.status(), &finish.failed_step) {
            (Status::Success, _) => {
                format!("Build #{} passed: {}", build.number, report::title(stage))
            }
            (Status::Killed, _) if !finish.timed_out => format!(
                "Build #{} was cancelled{}",
                build.number,
                finish.cancel_reason.as_deref().filter(|r| !r.is_empty()).map(|r| format!(": {r}")).unwrap_or_default()
            ),
            (_, Some(step)) => {
                format!("Build #{} failed: step {step} {}", build.number, if finish.timed_out { "timed out" } else { "failed" })
            }
            _ if !stage.error.is_empty() => {
                format!("Build #{} errored: {}", build.number, stage.error)
            }
            _ => format!("Build #{} failed", build.number),
        };
        self.status(build, &stage.name, state, &finish.masker.mask_plain(&description)).await?;
        let Some(id) = stage.check_run else {
            return Ok(());
        };
        let shown = |text: &str| truncate_bytes(&finish.masker.mask_plain(text), MAX_OUTPUT_BYTES).to_string();
        let url = self.build_url(build);
        let text = finish
            .failed_step
            .as_ref()
            .map(|step| shown(&report::failure_text(step, &finish.tail, &format!("{url}#stage-{}", stage.number))));
        let notes: Vec<String> = event_notes(build).into_iter().chain(finish.notes.iter().cloned()).collect();
        let title = shown(&report::title(stage));
        let table = finish.masker.mask_plain(&report::summary(stage, &finish.caveats, &notes)).into_owned();
        let summaries: Vec<_> = finish
            .summaries
            .iter()
            .map(|s| crate::store::StepSummary { markdown: finish.masker.mask_plain(&s.markdown).into_owned(), ..s.clone() })
            .collect();
        let extra = report::OutputsPage { summaries: &summaries, artifacts: &finish.artifacts, build_url: &url };
        let summary = report::with_outputs(&table, &extra);
        let now = finish.completed;
        let run = CheckRunBody {
            status: Some(CheckStatus::Completed),
            conclusion: Some(if finish.cancel_reason.is_some() {
                Conclusion::Cancelled
            } else {
                report::conclusion(stage, finish.timed_out)
            }),
            completed_at: Some(now),
            actions: failed_action(stage),
            details_url: Some(url),
            output: None,
            ..CheckRunBody::default()
        };
        let output =
            |annotations: Vec<Annotation>| Output { title: title.clone(), summary: summary.clone(), text: text.clone(), annotations };
        // Annotations append: send all but the last batch first (title and
        // summary each time, as GitHub requires), then complete with the last.
        let mut batches: Vec<Vec<Annotation>> =
            finish.annotations.chunks(MAX_ANNOTATIONS_PER_REQUEST).map(<[Annotation]>::to_vec).collect();
        let last = batches.pop().unwrap_or_default();
        for batch in batches {
            let append = CheckRunBody { output: Some(output(batch)), ..CheckRunBody::default() };
            self.github.update_check_run(build.installation, &repo_path(build), id, &append).await?;
        }
        let run = CheckRunBody { output: Some(output(last)), ..run };
        self.github.update_check_run(build.installation, &repo_path(build), id, &run).await
    }

    /// Shows a stage handed back to the queue: its check run `queued` again.
    pub async fn stage_handed_back(&self, build: &Build, stage: &Stage) -> Result<(), GitHubError> {
        let Some(id) = stage.check_run else {
            return Ok(());
        };
        let queued = CheckRunBody { status: Some(CheckStatus::Queued), ..CheckRunBody::default() };
        self.github.update_check_run(build.installation, &repo_path(build), id, &queued).await
    }

    /// Appends annotations to a running stage's check run (at most 50).
    pub async fn annotate(&self, build: &Build, stage: &Stage, annotations: Vec<Annotation>) -> Result<(), GitHubError> {
        let Some(id) = stage.check_run else {
            return Ok(());
        };
        let count = annotations.len();
        let run = CheckRunBody {
            output: Some(Output {
                title: format!("Running: {}", report::title(stage)),
                summary: format!("Build #{} is running; {count} more annotation(s) so far.", build.number),
                text: None,
                annotations,
            }),
            ..CheckRunBody::default()
        };
        self.github.update_check_run(build.installation, &repo_path(build), id, &run).await
    }
}

/// The "Re-run failed" button of a failed stage's check run.
fn failed_action(stage: &Stage) -> Option<Vec<crate::github::types::Action>> {
    matches!(stage.status(), Status::Failure | Status::Error).then(|| {
        vec![crate::github::types::Action {
            label: "Re-run failed".to_string(),
            description: "Run this pipeline again".to_string(),
            identifier: crate::github::types::RERUN_FAILED_ACTION.to_string(),
        }]
    })
}

impl StageReport {
    /// The report of a stage none of whose steps ran (skipped or cancelled
    /// before it started): just a note, and the reason when it was cancelled.
    pub fn not_run(note: String, cancel_reason: Option<String>, completed: DateTime<Utc>) -> Self {
        Self {
            failed_step: None,
            tail: String::new(),
            timed_out: false,
            caveats: Vec::new(),
            cancel_reason,
            notes: vec![note],
            completed,
            annotations: Vec::new(),
            masker: Arc::default(),
            summaries: Vec::new(),
            artifacts: Vec::new(),
        }
    }
}

/// What a finished stage reports beyond its record.
#[derive(Debug, Clone)]
pub struct StageReport {
    /// The first failing (not ignored) step, if any.
    pub failed_step: Option<String>,
    /// That step's log tail.
    pub tail: String,
    /// Whether a step ran past its timeout.
    pub timed_out: bool,
    /// Warnings about how the steps ran (unsandboxed, without limits),
    /// stated at the top of the check run.
    pub caveats: Vec<String>,
    /// Why the stage was cancelled, if it was.
    pub cancel_reason: Option<String>,
    /// Extra lines for the summary.
    pub notes: Vec<String>,
    /// When it completed.
    pub completed: DateTime<Utc>,
    /// Annotations not yet published (already masked: see [`annotations::Collected`]).
    pub annotations: Vec<Annotation>,
    /// Hides the stage's secrets in everything published about it.
    pub masker: Arc<Masker>,
    /// The job summaries its steps left (masked), in step order.
    pub summaries: Vec<crate::store::StepSummary>,
    /// The artifacts its steps uploaded.
    pub artifacts: Vec<crate::store::Artifact>,
}
