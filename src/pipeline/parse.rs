//! From YAML text to [`Config`], with positions in every error.

use super::{Conditions, Config, DEFAULT_STEP_TIMEOUT, EnvValue, Pipeline, Settings, Step};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// What is wrong with a `.drone.yml`, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Pipeline,
    Signature,
}

struct ExecType;

impl<'de> Deserialize<'de> for ExecType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = String::deserialize(d)?;
        if value == "exec" {
            Ok(ExecType)
        } else {
            Err(serde::de::Error::custom(format!(
                "pipeline type `{value}` is not supported: greenlight runs exec pipelines (`type: exec`)"
            )))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    kind: Kind,
    #[serde(rename = "type")]
    pipeline_type: Option<ExecType>,
    name: Option<String>,
    #[serde(default)]
    steps: Vec<RawStep>,
    #[serde(default)]
    trigger: Conditions,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, RawEnv>,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    clone: Option<Clone>,
    #[serde(default)]
    greenlight: Option<GreenlightKey>,
    /// `kind: signature` documents carry an hmac; greenlight does not verify it.
    #[serde(default)]
    hmac: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Platform {
    #[serde(default)]
    os: Option<LinuxOnly>,
    #[serde(default)]
    arch: Option<String>,
}

struct LinuxOnly;

impl<'de> Deserialize<'de> for LinuxOnly {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = String::deserialize(d)?;
        if value == "linux" {
            Ok(LinuxOnly)
        } else {
            Err(serde::de::Error::custom(format!(
                "platform os `{value}` is not supported: greenlight runs on linux"
            )))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Clone {
    #[serde(default)]
    disable: bool,
    #[serde(default)]
    depth: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GreenlightKey {
    #[serde(default)]
    step_timeout: Option<HumanDuration>,
    #[serde(default)]
    auto_cancel: Option<bool>,
}

struct HumanDuration(Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        parse_duration(&raw).map(HumanDuration).ok_or_else(|| {
            serde::de::Error::custom(format!("`{raw}` is not a duration such as 90s, 10m or 1h"))
        })
    }
}

/// Parses `90s`, `10m`, `1h`, `1h30m`.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in raw.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
    }
    (number.is_empty() && total > 0).then(|| Duration::from_secs(total))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawEnv {
    Secret { from_secret: String },
    Text(String),
    Number(serde_norway::Number),
    Bool(bool),
}

impl From<RawEnv> for EnvValue {
    fn from(raw: RawEnv) -> Self {
        match raw {
            RawEnv::Secret { from_secret } => EnvValue::Secret(from_secret),
            RawEnv::Text(s) => EnvValue::Plain(s),
            RawEnv::Number(n) => EnvValue::Plain(n.to_string()),
            RawEnv::Bool(b) => EnvValue::Plain(b.to_string()),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Failure {
    Ignore,
    Fail,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: String,
    #[serde(default)]
    commands: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, RawEnv>,
    #[serde(default)]
    when: Conditions,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    failure: Option<Failure>,
}

fn located(err: serde_norway::Error) -> ParseError {
    let (line, column) = err.location().map_or((1, 1), |l| (l.line(), l.column()));
    let text = err.to_string();
    let message = match text.find(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    };
    ParseError {
        line,
        column,
        message,
    }
}

/// The 1-based line of the first line at or after `from` containing `needle`.
fn line_of(text: &str, from: usize, needle: &str) -> usize {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| l.contains(needle))
        .map_or(from, |(i, _)| i + 1)
}

/// Line numbers (1-based) where each YAML document's content starts.
fn document_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![1];
    for (i, line) in text.lines().enumerate() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            if i == 0 {
                starts[0] = 2;
            } else {
                starts.push(i + 2);
            }
        }
    }
    starts
}

/// Parses a `.drone.yml`.
pub fn parse(text: &str) -> Result<Config, ParseError> {
    let starts = document_starts(text);
    let mut pipelines: Vec<Pipeline> = Vec::new();
    let mut settings = Settings::default();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let start = starts.get(index).copied().unwrap_or(1);
        let value = serde_norway::Value::deserialize(document).map_err(located)?;
        if value.is_null() {
            continue; // an empty document, e.g. a trailing `---`
        }
        // Parse again from the text for positions in errors.
        let raw = parse_nth(text, index)?;
        let at = |needle: &str, message: String| ParseError {
            line: line_of(text, start, needle),
            column: 1,
            message,
        };
        if matches!(raw.kind, Kind::Signature) {
            continue;
        }
        let _ = raw.hmac;
        if raw.pipeline_type.is_none() {
            return Err(at(
                "kind:",
                "pipeline has no `type`; Drone then assumes `docker`, which greenlight does not run: add `type: exec`".to_string(),
            ));
        }
        let _ = raw.platform.map(|p| (p.os.map(|_| ()), p.arch));
        if let Some(key) = raw.greenlight.as_ref().filter(|_| !pipelines.is_empty()) {
            let _ = key;
            return Err(at(
                "greenlight:",
                "the `greenlight` key is only read from the first document".to_string(),
            ));
        }
        let step_timeout = raw
            .greenlight
            .as_ref()
            .and_then(|g| g.step_timeout.as_ref())
            .map_or(DEFAULT_STEP_TIMEOUT, |d| d.0);
        if let Some(auto_cancel) = raw.greenlight.as_ref().and_then(|g| g.auto_cancel) {
            settings.auto_cancel = auto_cancel;
        }
        let name = raw.name.unwrap_or_else(|| "default".to_string());
        if pipelines.iter().any(|p| p.name == name) {
            return Err(at(
                &format!("name: {name}"),
                format!("two pipelines are named `{name}`"),
            ));
        }
        if raw.steps.is_empty() {
            return Err(at("kind:", format!("pipeline `{name}` has no steps")));
        }
        let mut steps = Vec::with_capacity(raw.steps.len());
        let mut seen = HashSet::new();
        for step in raw.steps {
            let here = |m: String| at(&format!("name: {}", step.name), m);
            if !seen.insert(step.name.clone()) {
                return Err(here(format!(
                    "two steps of pipeline `{name}` are named `{}`",
                    step.name
                )));
            }
            if step.commands.is_empty() {
                return Err(here(format!("step `{}` has no commands", step.name)));
            }
            steps.push(Step {
                ignore_failure: matches!(step.failure, Some(Failure::Ignore)),
                environment: step
                    .environment
                    .into_iter()
                    .map(|(k, v)| (k, v.into()))
                    .collect(),
                name: step.name,
                commands: step.commands,
                when: step.when,
                depends_on: step.depends_on,
            });
        }
        for step in &steps {
            for dep in &step.depends_on {
                if !steps.iter().any(|s| &s.name == dep) {
                    return Err(at(
                        &format!("name: {}", step.name),
                        format!(
                            "step `{}` depends on `{dep}`, which is not a step of pipeline `{name}`",
                            step.name
                        ),
                    ));
                }
            }
        }
        if let Some(cycle) = find_cycle(
            steps
                .iter()
                .map(|s| (s.name.as_str(), s.depends_on.as_slice())),
        ) {
            return Err(at(
                "depends_on",
                format!(
                    "the steps of pipeline `{name}` depend on each other in a cycle through `{cycle}`"
                ),
            ));
        }
        pipelines.push(Pipeline {
            name,
            steps,
            trigger: raw.trigger,
            depends_on: raw.depends_on,
            environment: raw
                .environment
                .into_iter()
                .map(|(k, v)| (k, v.into()))
                .collect(),
            clone_disabled: raw.clone.map(|c| (c.disable, c.depth).0).unwrap_or(false),
            step_timeout,
            line: start,
        });
    }
    if pipelines.is_empty() {
        return Err(ParseError {
            line: 1,
            column: 1,
            message: "no `kind: pipeline` document".to_string(),
        });
    }
    for p in &pipelines {
        for dep in &p.depends_on {
            if !pipelines.iter().any(|q| &q.name == dep) {
                return Err(ParseError {
                    line: line_of(text, p.line, "depends_on"),
                    column: 1,
                    message: format!(
                        "pipeline `{}` depends on `{dep}`, which is not a pipeline of this file",
                        p.name
                    ),
                });
            }
        }
    }
    if let Some(cycle) = find_cycle(
        pipelines
            .iter()
            .map(|p| (p.name.as_str(), p.depends_on.as_slice())),
    ) {
        return Err(ParseError {
            line: 1,
            column: 1,
            message: format!("pipelines depend on each other in a cycle through `{cycle}`"),
        });
    }
    Ok(Config {
        pipelines,
        settings,
    })
}

fn parse_nth(text: &str, index: usize) -> Result<RawDocument, ParseError> {
    let document = serde_norway::Deserializer::from_str(text)
        .nth(index)
        .expect("the document was just read");
    RawDocument::deserialize(document).map_err(located)
}

/// A node on a dependency cycle, if there is one.
pub(crate) fn find_cycle<'a>(
    nodes: impl Iterator<Item = (&'a str, &'a [String])>,
) -> Option<String> {
    let graph: Vec<(&str, &[String])> = nodes.collect();
    // Kahn's algorithm: whatever cannot be ordered is on (or behind) a cycle.
    let mut done: HashSet<&str> = HashSet::new();
    loop {
        let ready: Vec<&str> = graph
            .iter()
            .filter(|(n, deps)| !done.contains(n) && deps.iter().all(|d| done.contains(d.as_str())))
            .map(|(n, _)| *n)
            .collect();
        if ready.is_empty() {
            break;
        }
        done.extend(ready);
    }
    graph
        .iter()
        .find(|(n, _)| !done.contains(n))
        .map(|(n, _)| n.to_string())
}
