//! Everything that speaks GitHub: App authentication, the few REST calls
//! greenlight makes, and the webhook payloads it reads.

pub mod auth;
pub mod client;
pub mod delivery_log;
pub mod manifest;
pub mod ports;
pub mod retry;
pub mod types;
pub mod webhook;

pub use client::{GitHub, GitHubError, RepoFile, RepoPath};
pub use ports::{CloneCredentials, Conversation, Installations, RepoFiles};
