//! Commands in pull request comments: `/greenlight retry` reruns the failed
//! pipelines of the pull request's newest build, `/greenlight approve` runs
//! its stages blocked for approval.
//!
//! Intake queues a comment only when its first line is a command (any
//! other comment costs no GitHub call). A planner then asks GitHub whether
//! the comment's author may write to the repository (never trusting the
//! payload's `author_association`), reacts 👀 when it takes the command, or
//! 👎 with a one-line reply saying why when it refuses. Approving needs
//! write access; retrying needs write access or authorship of the pull request.

use crate::github::{Conversation, GitHubError};
use crate::ids::DeliveryId;
use crate::lifecycle::{Lifecycle, StartError};
use crate::model::{Build, CommandKind, CommentCommand, Repo, StageState, Status};
use crate::planner::{MAX_ATTEMPTS, Planner, RECLAIM_IDLE};
use crate::queue::{Consumer, WorkQueue};
use crate::redis_server::Redis;
use crate::store::{Store, StoreError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long one read waits for new commands.
const READ_BLOCK: Duration = Duration::from_secs(2);

/// Commands handled per read.
const BATCH: usize = 8;

/// Why a command could not be handled now (it stays queued and is retried).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// GitHub failed.
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    /// Starting the rerun failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Approving a stage failed.
    #[error(transparent)]
    Approve(#[from] anyhow::Error),
}

impl CommandError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Store(e) => e.is_transient(),
            Self::GitHub(e) => e.is_transient(),
            Self::Start(e) => e.is_transient(),
            Self::Approve(_) => true,
        }
    }
}

/// What a command will do, decided before anything is done.
enum Plan {
    /// Rerun these pipelines of this build of this repository.
    Retry(Box<Repo>, Build, Vec<String>),
    /// Approve these stages (numbers) of this build.
    Approve(Build, Vec<i64>),
    /// Refuse, saying this.
    Refuse(String),
}

/// Handles comment commands.
#[derive(Clone)]
pub struct Commands {
    store: Store,
    planner: Planner,
    lifecycle: Lifecycle,
    conversation: Conversation,
}

impl Commands {
    /// Commands whose reruns start through `planner`, approvals through
    /// `lifecycle`, answered through `conversation`.
    pub fn new(planner: Planner, lifecycle: Lifecycle, conversation: Conversation) -> Self {
        Self { store: lifecycle.store().clone(), planner, lifecycle, conversation }
    }

    /// The command queue's reader for a process named `name`.
    pub fn consumer(queue: WorkQueue<CommentCommand>, redis: Redis, name: String) -> Consumer<CommentCommand> {
        Consumer::new(queue, redis, name, RECLAIM_IDLE, READ_BLOCK)
    }

    /// Handles one command: refused (👎 and a reply) or taken (👀, then done).
    pub async fn handle(&self, command: &CommentCommand) -> Result<(), CommandError> {
        let (installation, repo_ref) = (command.installation, &command.repo);
        let plan = self.plan(command).await?;
        let (build, work) = match plan {
            Plan::Refuse(why) => {
                tracing::info!(repo = %repo_ref.slug(), pr = command.pull_request, user = %command.author, %why, "refused a comment command");
                self.conversation.react(installation, repo_ref, command.comment, "-1").await?;
                let reply = format!("@{} `{}` refused: {why}", command.author, command.kind.as_written());
                return Ok(self.conversation.reply(installation, repo_ref, command.pull_request, &reply).await?);
            }
            Plan::Retry(repo, build, pipelines) => (build, Ok((repo, pipelines))),
            Plan::Approve(build, stages) => (build, Err(stages)),
        };
        self.conversation.react(installation, repo_ref, command.comment, "eyes").await?;
        match work {
            Ok((repo, pipelines)) => {
                let delivery = DeliveryId(format!("comment-{}-{}", repo_ref.id.0, command.comment));
                self.planner.rerun(&repo, &build, pipelines, &command.author, delivery).await?;
            }
            Err(stages) => {
                for stage in stages {
                    self.lifecycle.approve(&build, stage).await?;
                }
            }
        }
        tracing::info!(repo = %repo_ref.slug(), pr = command.pull_request, user = %command.author, command = %command.kind.as_written(), "ran a comment command");
        Ok(())
    }

    /// Decides what a command does, or why it is refused.
    async fn plan(&self, command: &CommentCommand) -> Result<Plan, CommandError> {
        if let CommandKind::Unknown(word) = &command.kind {
            return Ok(Plan::Refuse(format!("greenlight knows `/greenlight retry` and `/greenlight approve`, not {word:?}")));
        }
        let git_ref = format!("refs/pull/{}/head", command.pull_request);
        let (Some(repo), Some(build)) =
            (self.store.repo(command.repo.id).await?, self.store.builds_page(command.repo.id, Some(&git_ref), 0, 1).await?.pop())
        else {
            return Ok(Plan::Refuse("this pull request has no greenlight build yet".to_string()));
        };
        let (writer, permission) = self.conversation.can_write(command.installation, &command.repo, &command.author).await?;
        let stages = self.store.stages(&build).await?;
        Ok(match command.kind {
            CommandKind::Approve if !writer => {
                Plan::Refuse(format!("approving needs write access to {}; you have `{permission}`", command.repo.slug()))
            }
            CommandKind::Retry if !writer && command.author != command.pull_request_author => Plan::Refuse(format!(
                "retrying needs write access to {} or authorship of the pull request; you have `{permission}`",
                command.repo.slug()
            )),
            CommandKind::Approve => {
                let blocked: Vec<i64> = stages.iter().filter(|s| s.state == StageState::Blocked).map(|s| s.number).collect();
                if blocked.is_empty() {
                    Plan::Refuse(format!("nothing in build #{} waits for approval", build.number))
                } else {
                    Plan::Approve(build, blocked)
                }
            }
            _ => {
                let failed: Vec<String> = stages
                    .iter()
                    .filter(|s| matches!(s.status(), Status::Failure | Status::Error | Status::Killed))
                    .map(|s| s.name.clone())
                    .collect();
                if failed.is_empty() {
                    Plan::Refuse(format!("build #{} has no failed pipeline to retry", build.number))
                } else {
                    Plan::Retry(Box::new(repo), build, failed)
                }
            }
        })
    }

    /// Reads and handles commands until `shutdown`; a command is
    /// acknowledged once handled, or after [`MAX_ATTEMPTS`] failures that
    /// retrying cannot fix.
    pub async fn run(self, mut consumer: Consumer<CommentCommand>, shutdown: CancellationToken) {
        while let Some(batch) = consumer.next(BATCH, &shutdown).await {
            for work in batch {
                match self.handle(&work.item).await {
                    Err(e) if e.is_transient() && work.deliveries < MAX_ATTEMPTS => {
                        tracing::warn!(error = %e, delivery = %work.item.delivery, "a comment command failed; it stays queued and is retried");
                        continue;
                    }
                    Err(e) => tracing::error!(error = %e, delivery = %work.item.delivery, "giving up on a comment command"),
                    Ok(()) => {}
                }
                if let Err(e) = consumer.queue().ack(&work.id).await {
                    tracing::warn!(error = %e, "acknowledging a comment command failed; it may run again");
                }
            }
        }
    }
}
