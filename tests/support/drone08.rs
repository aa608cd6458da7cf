//! The Drone API as a Drone 0.8 client reads it (the routes and fields of
//! the guides written for 0.8): verbs that know its paths and typed views
//! of its answers, so scenarios read fields, not JSON.

use super::app::Answer;
use super::drone::DroneApi;
use serde::Deserialize;

/// The user, as 0.8 shows it.
#[derive(Debug, Deserialize)]
pub struct User08 {
    /// Login.
    pub login: String,
    /// Avatar (0.8's key; 2.x's is `avatar`).
    pub avatar_url: String,
    /// Whether the user is an administrator.
    pub admin: bool,
    /// Whether the user is active.
    pub active: bool,
}

/// A repository, as 0.8 shows it.
#[derive(Debug, Deserialize)]
pub struct Repo08 {
    /// The owner's login.
    pub owner: String,
    /// The name.
    pub name: String,
    /// `owner/name`.
    pub full_name: String,
    /// The repository's page.
    pub link_url: String,
    /// Its clone URL.
    pub clone_url: String,
    /// The default branch.
    pub default_branch: String,
    /// `public` or `private`.
    pub visibility: String,
    /// Whether it is private.
    pub private: bool,
    /// Whether fork builds wait for approval.
    pub gated: bool,
    /// Whether it builds (the App installed, not deactivated).
    pub active: bool,
    /// Whether pull requests build.
    pub allow_pr: bool,
    /// Whether pushes build.
    pub allow_push: bool,
    /// Whether tags build.
    pub allow_tags: bool,
    /// Whether deployments build.
    pub allow_deploys: bool,
    /// Its newest build number.
    pub last_build: i64,
    /// The pipeline file.
    pub config_file: String,
    /// Minutes a build may take.
    pub timeout: i64,
}

/// A feed item: a repository, with one build's fields when it has one.
#[derive(Debug, Deserialize)]
pub struct FeedItem {
    /// `owner/name`.
    pub full_name: String,
    /// The build's number.
    pub number: Option<i64>,
    /// The build's status.
    pub status: Option<String>,
    /// The commit built.
    pub commit: Option<String>,
    /// The branch.
    pub branch: Option<String>,
}

/// A build, as 0.8 shows it.
#[derive(Debug, Deserialize)]
pub struct Build08 {
    /// Number.
    pub number: i64,
    /// Status.
    pub status: String,
    /// The event.
    pub event: String,
    /// The commit built.
    pub commit: String,
    /// The branch.
    pub branch: String,
    /// The full ref.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Where the code was fetched from.
    pub remote: String,
    /// Who wrote the commit.
    pub author: String,
    /// When it was queued, created, started, finished (Unix seconds).
    pub enqueued_at: i64,
    /// Created.
    pub created_at: i64,
    /// Started.
    pub started_at: i64,
    /// Finished.
    pub finished_at: i64,
    /// The process tree (single builds only).
    #[serde(default)]
    pub procs: Vec<Proc>,
}

/// A proc: a stage (root) or a step (its child).
#[derive(Debug, Deserialize)]
pub struct Proc {
    /// Global id.
    pub id: i64,
    /// The build's id.
    pub build_id: i64,
    /// Number within the build.
    pub pid: i64,
    /// The parent's pid (0 for a root).
    pub ppid: i64,
    /// The group's pid.
    pub pgid: i64,
    /// Pipeline or step name.
    pub name: String,
    /// pending, running, success, failure, killed, skipped, error.
    pub state: String,
    /// Exit code.
    pub exit_code: i64,
    /// Unix seconds.
    pub started: i64,
    /// Unix seconds.
    pub stopped: i64,
    /// The steps of a root.
    #[serde(default)]
    pub children: Vec<Proc>,
}

/// A proc's log line.
#[derive(Debug, Deserialize)]
pub struct ProcLine {
    /// The step's name.
    pub proc: String,
    /// Line number within the step.
    pub pos: i64,
    /// Text.
    pub out: String,
}

impl DroneApi {
    async fn ok<T: serde::de::DeserializeOwned>(&self, method: &str, path: &str) -> T {
        let answer: Answer = self.call(method, path, None).await;
        assert_eq!(answer.status, 200, "{method} {path}: {}", answer.body);
        answer.json()
    }

    /// `GET /api/user`.
    pub async fn user08(&self) -> User08 {
        self.ok("GET", "/api/user").await
    }

    /// `GET /api/user/feed`, with `?latest=true` when `latest`.
    pub async fn feed(&self, latest: bool) -> Vec<FeedItem> {
        self.ok("GET", &format!("/api/user/feed{}", if latest { "?latest=true" } else { "" })).await
    }

    /// `GET /api/user/repos?all=…&flush=…`.
    pub async fn user_repos08(&self, all: bool, flush: bool) -> Vec<Repo08> {
        self.ok("GET", &format!("/api/user/repos?all={all}&flush={flush}")).await
    }

    /// `GET /api/repos/{o}/{n}`.
    pub async fn repo08(&self) -> Repo08 {
        self.ok("GET", &format!("/api/repos/{}", self.slug())).await
    }

    /// `POST /api/repos/{o}/{n}`: activates the repository.
    pub async fn activate(&self) -> Answer {
        self.call("POST", &format!("/api/repos/{}", self.slug()), None).await
    }

    /// `DELETE /api/repos/{o}/{n}`: deactivates the repository.
    pub async fn deactivate(&self) -> Answer {
        self.call("DELETE", &format!("/api/repos/{}", self.slug()), None).await
    }

    /// `GET /api/repos/{o}/{n}/builds/{number}` read as 0.8 reads it.
    pub async fn build08(&self, number: i64) -> Build08 {
        self.ok("GET", &format!("/api/repos/{}/builds/{number}", self.slug())).await
    }

    /// `GET /api/repos/{o}/{n}/builds` read as 0.8 reads it.
    pub async fn builds08(&self) -> Vec<Build08> {
        self.ok("GET", &format!("/api/repos/{}/builds", self.slug())).await
    }

    /// `GET /api/repos/{o}/{n}/logs/{build}/{pid}`: the status, and the lines when it is 200.
    pub async fn proc_log(&self, build: i64, pid: i64) -> (u16, Vec<ProcLine>) {
        let answer = self.call("GET", &format!("/api/repos/{}/logs/{build}/{pid}", self.slug()), None).await;
        let lines = if answer.status == 200 { answer.json() } else { Vec::new() };
        (answer.status, lines)
    }
}

impl Repo08 {
    /// Whether every event greenlight builds is allowed, and deployments (which it does not build) are not.
    pub fn builds_pushes_pull_requests_and_tags(&self) -> bool {
        self.allow_push && self.allow_pr && self.allow_tags && !self.allow_deploys
    }
}

impl Proc {
    /// The children's names, in order.
    pub fn step_names(&self) -> Vec<&str> {
        self.children.iter().map(|c| c.name.as_str()).collect()
    }

    /// `pid name: pid name, …` of a root and its children, to compare a tree at a glance.
    pub fn outline(&self) -> String {
        let children: Vec<String> = self.children.iter().map(|c| format!("{} {}", c.pid, c.name)).collect();
        format!("{} {}: {}", self.pid, self.name, children.join(", "))
    }

    /// The child named `name`.
    pub fn step(&self, name: &str) -> &Proc {
        self.children.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no proc {name} under {}", self.name))
    }
}
