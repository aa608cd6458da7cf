//! Running stages: workers claim stage jobs, fetch the commit, run each step
//! in the sandbox, store the logs, and begin and end each stage through the
//! lifecycle.

mod artifacts;
pub mod cache;
pub mod clone;
pub mod env;
pub mod executor;
pub mod limits;
pub mod logs;
pub mod mirror;
pub mod network;
pub mod sandbox;
pub mod schedule;
pub mod seccomp;
mod settings;
mod stage;
pub mod step;
pub mod summary;
mod worker;
pub mod workspace;

pub use settings::WorkerSettings;
pub use worker::{Worker, WorkerParts};
