//! What greenlight shows on GitHub: a commit status and a check run per
//! pipeline, kept within GitHub's limits.

use crate::github::types::{
    CheckRunBody, CheckStatus, Conclusion, MAX_OUTPUT_BYTES, MAX_STATUS_DESCRIPTION_CHARS, Output,
    StatusBody, StatusState, truncate_bytes, truncate_chars_ellipsis,
};
use crate::github::{GitHub, GitHubError, RepoPath};
use crate::ids::CheckRunId;
use crate::store::{Build, Stage};
use chrono::{DateTime, Utc};

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

fn repo_path(build: &Build) -> RepoPath {
    let (owner, name) = build
        .repo_slug
        .split_once('/')
        .unwrap_or((&build.repo_slug, ""));
    RepoPath {
        owner: owner.to_string(),
        name: name.to_string(),
    }
}

impl Publisher {
    /// A publisher linking to build pages under `public_url`.
    pub fn new(github: GitHub, public_url: String) -> Self {
        Self { github, public_url }
    }

    /// The GitHub client.
    pub fn github(&self) -> &GitHub {
        &self.github
    }

    /// The build page: `GREENLIGHT_PUBLIC_URL/{owner}/{repo}/{number}`.
    pub fn build_url(&self, build: &Build) -> String {
        format!("{}/{}/{}", self.public_url, build.repo_slug, build.number)
    }

    /// Sets a pipeline's commit status; the description is cut to GitHub's 140 characters.
    pub async fn status(
        &self,
        build: &Build,
        pipeline: &str,
        state: StatusState,
        description: &str,
    ) -> Result<(), GitHubError> {
        let body = StatusBody {
            state,
            target_url: self.build_url(build),
            description: truncate_chars_ellipsis(description, MAX_STATUS_DESCRIPTION_CHARS),
            context: status_context(pipeline, build.event.as_str()),
        };
        self.github
            .create_status(build.installation, &repo_path(build), &build.after.0, &body)
            .await
    }

    /// Announces a planned stage: a pending status and a queued check run.
    /// Returns the check run's id.
    pub async fn stage_planned(
        &self,
        build: &Build,
        stage: &Stage,
    ) -> Result<CheckRunId, GitHubError> {
        let waiting = if stage.depends_on.is_empty() {
            "waiting for a runner".to_string()
        } else {
            format!("waiting for {}", stage.depends_on.join(", "))
        };
        self.status(
            build,
            &stage.name,
            StatusState::Pending,
            &format!("Build #{} is pending: {waiting}", build.number),
        )
        .await?;
        let run = CheckRunBody {
            name: Some(check_name(&stage.name, build.event.as_str())),
            head_sha: Some(build.after.0.clone()),
            details_url: Some(self.build_url(build)),
            external_id: Some(build.id.to_string()),
            status: Some(CheckStatus::Queued),
            ..CheckRunBody::default()
        };
        self.github
            .create_check_run(build.installation, &repo_path(build), &run)
            .await
    }

    /// Reports a build that could not be planned (no or invalid `.drone.yml`):
    /// an `error` status and a failed check run saying what is wrong and where.
    pub async fn config_error(&self, build: &Build, now: DateTime<Utc>) -> Result<(), GitHubError> {
        self.status(build, CONFIG_CHECK, StatusState::Error, &build.error)
            .await?;
        let summary = format!(
            "greenlight could not plan build #{} for `{}`:\n\n```\n{}\n```\n\nFix `.drone.yml` and push again, or redeliver the webhook.",
            build.number,
            build.after.short(),
            build.error
        );
        let run = CheckRunBody {
            name: Some(check_name(CONFIG_CHECK, build.event.as_str())),
            head_sha: Some(build.after.0.clone()),
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
        };
        self.github
            .create_check_run(build.installation, &repo_path(build), &run)
            .await?;
        Ok(())
    }
}
