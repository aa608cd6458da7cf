//! Drone 0.8's JSON fields (drone/drone v0.8 `model/repo.go`, `build.go`,
//! `proc.go`, `feed.go`, `user.go`), carried beside Drone 2.x's in the same
//! answers so that clients and guides written for either read greenlight.
//! Only the fields 2.x lacks live here (a key both versions send, such as
//! `name`, `status` or `ref`, is 2.x's, with the same meaning); times are
//! Unix seconds in both.
//!
//! A 0.8 build is made of `procs`: one root proc per stage (pids 1, 2, … in
//! stage order, `ppid` 0) whose children are its steps (pids numbered on
//! after every root, the clone first), as Drone 0.8 numbered them.
//!
//! Each field is the Drone 0.8 JSON key of the same name, with 0.8's
//! meaning; they are not documented one by one here.
#![allow(missing_docs)]

use crate::model::{Build, Event, Repo, Stage, Status};
use crate::pipeline::limits::{MAX_PIPELINES, MAX_STEPS};
use crate::store::LogLine;
use serde::Serialize;

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// The most procs a build can have: a root per pipeline and a child per
/// step and clone (`pipeline::limits`: 50 pipelines of at most 200 steps).
/// Proc ids are `build id × PROC_ID_STRIDE + pid`, unique across builds.
pub const PROC_ID_STRIDE: i64 = (MAX_PIPELINES * (MAX_STEPS + 2)) as i64 + 1;

/// Every event greenlight builds: push, pull request, tag (no deployments).
fn builds_event(event: Event) -> bool {
    matches!(event, Event::Push | Event::PullRequest | Event::Tag)
}

/// Drone 0.8's repository fields.
#[derive(Debug, Serialize)]
pub struct Repo08 {
    pub owner: String,
    pub full_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub avatar_url: String,
    pub link_url: String,
    pub clone_url: String,
    pub gated: bool,
    pub allow_pr: bool,
    pub allow_push: bool,
    pub allow_deploys: bool,
    pub allow_tags: bool,
    pub last_build: i64,
    pub config_file: String,
}

impl Repo08 {
    /// A repository's 0.8 fields; `last_build` is its newest build number.
    pub fn new(repo: &Repo, last_build: i64) -> Self {
        // GitHub serves an owner's avatar at `{web}/{owner}.png` (Enterprise too).
        let avatar_url = repo.info.html_url.strip_suffix(&format!("/{}", repo.info.name)).map(|owner| format!("{owner}.png"));
        Self {
            owner: repo.info.owner.clone(),
            full_name: repo.slug(),
            avatar_url: avatar_url.unwrap_or_default(),
            link_url: repo.info.html_url.clone(),
            clone_url: repo.info.clone_url.clone(),
            gated: repo.protected,
            allow_pr: builds_event(Event::PullRequest),
            allow_push: builds_event(Event::Push),
            allow_deploys: false,
            allow_tags: builds_event(Event::Tag),
            last_build,
            config_file: crate::pipeline::CONFIG_PATH.to_string(),
        }
    }
}

/// Drone 0.8's build fields.
#[derive(Debug, Serialize)]
pub struct Build08 {
    pub enqueued_at: i64,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub deploy_to: String,
    pub commit: String,
    pub branch: String,
    pub refspec: String,
    pub remote: String,
    pub author: String,
    pub link_url: String,
    pub signed: bool,
    pub verified: bool,
    pub reviewed_by: String,
    pub reviewed_at: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub procs: Vec<ProcJson>,
}

impl Build08 {
    /// A build's 0.8 fields, without procs (lists).
    pub fn new(build: &Build) -> Self {
        let commit = &build.commit;
        Self {
            enqueued_at: build.created,
            created_at: build.created,
            started_at: build.started,
            finished_at: build.finished,
            deploy_to: String::new(),
            commit: commit.sha.0.clone(),
            branch: commit.target.clone(),
            refspec: if commit.event == Event::PullRequest { format!("{}:{}", commit.source, commit.target) } else { String::new() },
            remote: remote(build),
            author: commit.author.login.clone(),
            link_url: commit.link.clone(),
            // `.drone.yml` signatures are accepted and not verified.
            signed: false,
            verified: build.status != Status::Blocked,
            reviewed_by: String::new(),
            reviewed_at: 0,
            procs: Vec::new(),
        }
    }
}

/// Where the built code comes from: a fork's clone URL for its pull
/// requests, the repository's otherwise.
fn remote(build: &Build) -> String {
    let (own, source) = (build.repo.slug(), &build.commit.source_repo);
    if source.is_empty() || source.eq_ignore_ascii_case(&own) {
        build.repo.clone_url.clone()
    } else {
        build.repo.clone_url.replace(&format!("/{own}.git"), &format!("/{source}.git"))
    }
}

/// Drone 0.8's Proc: a stage (root) or a step (child). `started` and
/// `stopped` repeat `start_time` and `end_time` (0.8's keys, omitted while
/// 0) as always-present numbers.
#[derive(Debug, Serialize)]
pub struct ProcJson {
    pub id: i64,
    pub build_id: i64,
    pub pid: i64,
    pub ppid: i64,
    pub pgid: i64,
    pub name: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    pub exit_code: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_time: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub end_time: i64,
    pub started: i64,
    pub stopped: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub machine: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub platform: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ProcJson>,
}

/// 0.8's proc states: what is not yet running is pending, a declined
/// stage skipped.
fn proc_state(status: Status) -> &'static str {
    match status {
        Status::Blocked | Status::WaitingOnDependencies | Status::Pending => "pending",
        Status::Declined => "skipped",
        other => other.as_str(),
    }
}

/// The pid of each stage (by index) and of each of its steps, as Drone
/// 0.8 numbers them: roots 1…S, then every stage's steps in order.
pub fn pids(stages: &[Stage]) -> Vec<(i64, Vec<i64>)> {
    let mut next = stages.len() as i64;
    stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let children = stage
                .steps
                .iter()
                .map(|_| {
                    next += 1;
                    next
                })
                .collect();
            (i as i64 + 1, children)
        })
        .collect()
}

/// A build's procs: one root per stage, its steps as children.
pub fn procs(build: &Build, stages: &[Stage]) -> Vec<ProcJson> {
    let proc = |pid: i64, ppid: i64, name: &str, status: Status, exit_code: i64, (started, stopped): (i64, i64)| ProcJson {
        id: build.id.0 * PROC_ID_STRIDE + pid,
        build_id: build.id.0,
        pid,
        ppid,
        pgid: pid,
        name: name.to_string(),
        state: proc_state(status),
        error: String::new(),
        exit_code,
        start_time: started,
        end_time: stopped,
        started,
        stopped,
        machine: String::new(),
        platform: String::new(),
        children: Vec::new(),
    };
    stages
        .iter()
        .zip(pids(stages))
        .map(|(stage, (pid, children))| {
            let steps = stage.steps.iter().zip(children).map(|(step, child)| ProcJson {
                error: step.error.clone(),
                ..proc(child, pid, &step.name, step.status, step.exit_code, (step.started, step.stopped))
            });
            ProcJson {
                error: stage.error.clone(),
                machine: stage.machine.clone(),
                platform: "linux/amd64".to_string(),
                children: steps.collect(),
                ..proc(pid, 0, &stage.name, stage.status(), stage.exit_code, (stage.started, stage.stopped))
            }
        })
        .collect()
}

/// Drone 0.8's user fields.
#[derive(Debug, Serialize)]
pub struct User08 {
    pub avatar_url: String,
}

/// Drone 0.8's feed item: a repository, with its newest build's fields
/// (`?latest=true`) or one recent build's; the build's fields are
/// omitted when there is none.
#[derive(Debug, Serialize)]
pub struct FeedJson {
    pub owner: String,
    pub name: String,
    pub full_name: String,
    #[serde(flatten)]
    pub build: Option<FeedBuild>,
}

/// The build half of a feed item.
#[derive(Debug, Serialize)]
pub struct FeedBuild {
    pub number: i64,
    pub event: &'static str,
    pub status: &'static str,
    pub created_at: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub started_at: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub finished_at: i64,
    pub commit: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub branch: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub refspec: String,
    pub remote: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub author: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub author_avatar: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub author_email: String,
}

impl FeedJson {
    /// A repository with, if any, one of its builds.
    pub fn new(repo: &Repo, build: Option<&Build>) -> Self {
        let build = build.map(|b| {
            let v08 = Build08::new(b);
            FeedBuild {
                number: b.number,
                event: b.commit.event.as_str(),
                status: b.status.as_str(),
                created_at: v08.created_at,
                started_at: v08.started_at,
                finished_at: v08.finished_at,
                commit: v08.commit,
                branch: v08.branch,
                git_ref: b.commit.git_ref.clone(),
                refspec: v08.refspec,
                remote: v08.remote,
                title: b.commit.title.clone(),
                message: b.commit.message.clone(),
                author: v08.author,
                author_avatar: b.commit.author.avatar.clone(),
                author_email: b.commit.author.email.clone(),
            }
        });
        Self { owner: repo.info.owner.clone(), name: repo.info.name.clone(), full_name: repo.slug(), build }
    }
}

/// A log line as Drone 0.8 serves a proc's log: the step's name as
/// `proc`, and Drone's `pos`, `out` and `time`.
#[derive(Debug, Serialize)]
pub struct ProcLine {
    pub proc: String,
    pub pos: i64,
    pub out: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub time: i64,
}

impl ProcLine {
    /// A stored line of step `step`.
    pub fn new(step: &str, line: LogLine) -> Self {
        Self { proc: step.to_string(), pos: line.pos, out: line.out, time: line.time }
    }
}
