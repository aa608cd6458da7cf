//! Running stages: workers claim stage jobs, fetch the commit, run each step
//! in the sandbox, store the logs and report to GitHub.

pub mod clone;
pub mod env;
pub mod executor;
mod finish;
pub mod logs;
pub mod sandbox;
pub mod schedule;
mod stage;
pub mod step;
mod worker;

pub use worker::{Worker, WorkerSettings};
