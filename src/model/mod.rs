//! greenlight's own domain types: commits, repositories, triggers, builds,
//! stages. Everything else (the webhook parser, the store, the runner, the
//! Drone API) speaks these, so no module depends on another's wire format.

mod build;
mod command;
mod commit;
mod cron;
mod repo;
mod stage;
mod trigger;

pub use build::{Build, Status};
pub use command::{COMMAND_PREFIX, CommandKind, CommentCommand};
pub use commit::{Author, Commit, Event, MAX_MESSAGE_CHARS, MERGE_GROUP_DESTROYED, truncate_chars};
pub use cron::{CronJob, ScheduledCron};
pub use repo::{InstallationChange, InstalledRepo, Repo, RepoRef};
pub use stage::{Stage, StageJob, StageState, StepRecord};
pub use trigger::{BuildRequest, RerunRequest, RerunTarget, Trigger};
