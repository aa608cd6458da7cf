#![warn(missing_docs)]
//! greenlight: a self-hosted CI service shipped as a GitHub App.
//!
//! A delivery travels `github::webhook` (verify, compact) → `queue` (Redis
//! stream) → `planner` (fetch `.drone.yml`) → `lifecycle` (record the build
//! in `store`, `publish` pending feedback, queue stage jobs) → the `runner`,
//! which begins and ends stages through `lifecycle` again. Every arrow is a
//! Redis write, so each box can run in its own process or machine.

pub mod api;
pub mod app;
pub mod blobs;
pub mod build_command;
pub mod catch_up;
pub mod clock;
pub mod commands;
pub mod config;
pub mod cron;
pub mod exec;
pub mod github;
pub mod ids;
pub mod intake;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod planner;
pub mod publish;
pub mod queue;
pub mod redis_pool;
pub mod redis_server;
pub mod retention;
pub mod runner;
pub mod secret_command;
pub mod secrets;
pub mod server;
pub mod setup;
pub mod store;
pub mod text;
pub mod web;
