//! `.drone.yml`: Drone's multi-document pipeline format, exec pipelines only.
//!
//! Parsing is strict: a key greenlight does not support, or `type: docker`,
//! is an error with a line and column, never silently ignored. The file is
//! read once, document by document, under the caps of [`limits`].

pub mod condition;
pub mod limits;
mod parse;

pub use condition::{Condition, Conditions, Facts};
pub use parse::{ParseError, parse, parse_duration};

use std::collections::BTreeMap;
use std::time::Duration;

/// The file greenlight reads from the repository.
pub const CONFIG_PATH: &str = ".drone.yml";

/// A step's timeout when the pipeline sets none (Drone's repository default is 60 minutes).
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// The operator's cap on `step_timeout` when none is set
/// (`GREENLIGHT_MAX_STEP_TIMEOUT`): whoever opens a pull request chooses
/// `.drone.yml`, and a step must not hold a worker's slot for days.
pub const DEFAULT_MAX_STEP_TIMEOUT: Duration = Duration::from_secs(2 * 60 * 60);

/// A value of a step's `environment`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EnvValue {
    /// A literal value.
    Plain(String),
    /// `{from_secret: NAME}`: a repository secret.
    Secret(String),
}

/// One step of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    /// Unique within the pipeline.
    pub name: String,
    /// Shell commands, run with `set -e`, each echoed as `+ cmd`.
    pub commands: Vec<String>,
    /// Extra environment variables.
    pub environment: BTreeMap<String, EnvValue>,
    /// When the step runs.
    pub when: Conditions,
    /// Steps that must finish first (a DAG when any step declares it).
    pub depends_on: Vec<String>,
    /// `failure: ignore`: a failure does not fail the stage.
    pub ignore_failure: bool,
    /// Its `when: paths` rules it out: decided when the build was planned,
    /// the one time greenlight asks GitHub which files changed.
    #[serde(default)]
    pub paths_ruled_out: bool,
    /// `cache:`: what is restored before the step and saved after it succeeds.
    #[serde(default)]
    pub cache: Option<CacheSpec>,
    /// `artifacts:`: glob patterns, relative to the workspace, of the files
    /// uploaded after the step (whether it passed or not).
    #[serde(default)]
    pub artifacts: Vec<String>,
    /// `timeout:`: the step's own limit, instead of the pipeline's `step_timeout`.
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// `retry:`: how many more times a failed step runs (0: once only).
    #[serde(default)]
    pub retry: u32,
    /// `detach: true`: a service, started in the background and kept running
    /// while the following steps run, stopped when the stage ends.
    #[serde(default)]
    pub detach: bool,
}

impl Step {
    /// The step's timeout: its own `timeout`, else the pipeline's `step_timeout`.
    pub fn timeout_in(&self, pipeline: &Pipeline) -> Duration {
        self.timeout.unwrap_or(pipeline.step_timeout)
    }
}

/// A step's `cache:` key, as written in `.drone.yml`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// The key template: `cargo-{{ checksum "Cargo.lock" }}`, with
    /// `{{ checksum "FILE" }}`, `{{ branch }}`, `{{ os }}` and `{{ arch }}`.
    pub key: String,
    /// Prefixes tried, in order, when no cache has the exact key; the newest match wins.
    #[serde(default)]
    pub restore_keys: Vec<String>,
    /// Paths saved and restored: relative to the workspace, or `~/…` under the step's `HOME`.
    pub paths: Vec<String>,
}

/// One `kind: pipeline` document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pipeline {
    /// Stage name (default `default`).
    pub name: String,
    /// Steps in file order.
    pub steps: Vec<Step>,
    /// When the pipeline runs at all.
    pub trigger: Conditions,
    /// Pipelines that must finish first.
    pub depends_on: Vec<String>,
    /// Environment for every step.
    pub environment: BTreeMap<String, EnvValue>,
    /// Whether to skip cloning the repository.
    pub clone_disabled: bool,
    /// Per-step timeout (`greenlight: {step_timeout: 10m}`).
    pub step_timeout: Duration,
    /// Line of the document's first key, for messages.
    pub line: usize,
}

impl Pipeline {
    /// Lowers the step timeout, and every step's own `timeout`, to the
    /// operator's `cap`; returns, when it did, the sentences saying so (for
    /// the check run).
    pub fn cap_step_timeout(&mut self, cap: Duration) -> Option<String> {
        let mut said = Vec::new();
        if self.step_timeout > cap {
            said.push(format!(
                "The pipeline asks for a step timeout of {}s; this worker allows at most {}s (GREENLIGHT_MAX_STEP_TIMEOUT), so steps got {}s.",
                self.step_timeout.as_secs(),
                cap.as_secs(),
                cap.as_secs()
            ));
            self.step_timeout = cap;
        }
        for step in &mut self.steps {
            if let Some(asked) = step.timeout.filter(|t| *t > cap) {
                said.push(format!(
                    "Step `{}` asks for a timeout of {}s; this worker allows at most {}s (GREENLIGHT_MAX_STEP_TIMEOUT), so it got {}s.",
                    step.name,
                    asked.as_secs(),
                    cap.as_secs(),
                    cap.as_secs()
                ));
                step.timeout = Some(cap);
            }
        }
        (!said.is_empty()).then(|| said.join(" "))
    }
}

/// Settings of greenlight itself, from the `greenlight:` key of the first document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Cancel older builds of the same branch or pull request (default on).
    pub auto_cancel: bool,
    /// Report a pipeline its trigger filters out as a `skipped` check run and
    /// a `success` status (default on), so a required check never waits.
    pub report_skipped: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self { auto_cancel: true, report_skipped: true }
    }
}

/// What `.drone.yml` says to do for one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The pipelines to run, in file order.
    pub run: Vec<Pipeline>,
    /// The pipelines filtered out, each with the one-line reason.
    pub skipped: Vec<(Pipeline, String)>,
}

/// A parsed `.drone.yml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The pipelines, in file order.
    pub pipelines: Vec<Pipeline>,
    /// greenlight's own settings.
    pub settings: Settings,
}

impl Config {
    /// The pipelines whose `trigger` matches, in file order. A pipeline that
    /// depends on one that does not run has that dependency dropped, as Drone does.
    pub fn matching(&self, facts: &Facts<'_>) -> Vec<Pipeline> {
        self.select(facts).run
    }

    /// The pipelines whose `trigger` matches (as [`Config::matching`]),
    /// their steps' `when: paths` decided against `facts.changed`, and
    /// those filtered out with why.
    pub fn select(&self, facts: &Facts<'_>) -> Selection {
        let mut selection = Selection { run: Vec::new(), skipped: Vec::new() };
        for pipeline in &self.pipelines {
            match pipeline.trigger.mismatch(facts) {
                Some(reason) => selection.skipped.push((pipeline.clone(), reason)),
                None => selection.run.push(pipeline.clone()),
            }
        }
        let names: Vec<String> = selection.run.iter().map(|p| p.name.clone()).collect();
        for p in &mut selection.run {
            p.depends_on.retain(|d| names.contains(d));
            for step in &mut p.steps {
                step.paths_ruled_out = !step.when.paths_match(facts.changed);
            }
        }
        selection
    }

    /// Whether any trigger or step has a `paths` condition, so the changed
    /// files are worth asking GitHub for.
    pub fn uses_paths(&self) -> bool {
        self.pipelines.iter().any(|p| !p.trigger.paths.is_empty() || p.steps.iter().any(|s| !s.when.paths.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_timeout_above_the_cap_gets_the_cap_and_a_note() {
        let text = "kind: pipeline\ntype: exec\ngreenlight:\n  step_timeout: 3h\nsteps:\n- name: a\n  commands: [x]\n";
        let mut pipeline = parse(text).unwrap().pipelines.remove(0);
        let mut modest = pipeline.clone();
        modest.step_timeout = Duration::from_secs(60);

        let note = pipeline.cap_step_timeout(DEFAULT_MAX_STEP_TIMEOUT);

        assert_eq!(pipeline.step_timeout, DEFAULT_MAX_STEP_TIMEOUT);
        assert!(note.unwrap().contains("step timeout of 10800s; this worker allows at most 7200s"));
        assert_eq!(modest.cap_step_timeout(DEFAULT_MAX_STEP_TIMEOUT), None);
        assert_eq!(modest.step_timeout, Duration::from_secs(60));
    }

    #[test]
    fn a_step_timeout_of_its_own_is_capped_too() {
        let text = "kind: pipeline\ntype: exec\nsteps:\n- name: long\n  timeout: 3h\n  commands: [x]\n- name: short\n  timeout: 5s\n  commands: [x]\n";
        let mut pipeline = parse(text).unwrap().pipelines.remove(0);
        let note = pipeline.cap_step_timeout(DEFAULT_MAX_STEP_TIMEOUT).unwrap();
        assert!(note.contains("Step `long` asks for a timeout of 10800s; this worker allows at most 7200s"), "{note}");
        assert!(!note.contains("short"), "{note}");
        assert_eq!(pipeline.steps[0].timeout_in(&pipeline), DEFAULT_MAX_STEP_TIMEOUT);
        assert_eq!(pipeline.steps[1].timeout_in(&pipeline), Duration::from_secs(5));
    }
}
