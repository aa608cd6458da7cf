//! From YAML text to [`Config`], with positions in every error.

use super::limits::{self, MAX_DOCUMENTS, MAX_FILE_BYTES, MAX_NODES, MAX_OPENERS, MAX_PIPELINES, MAX_STEPS, Slice, human_size};
use super::limits::{MAX_ARTIFACT_PATTERNS, MAX_CACHE_KEY_BYTES, MAX_CACHE_PATHS, MAX_RETRIES};
use super::{CacheSpec, Conditions, Config, DEFAULT_STEP_TIMEOUT, EnvValue, Pipeline, Settings, Step};
use serde::Deserialize;
use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// What is wrong with a `.drone.yml`, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ParseError {
    /// 1-based line; 0 when the error is about the whole file (its size).
    pub line: usize,
    /// 1-based column; 0 with line 0.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    /// The error of a file of `bytes`, over [`MAX_FILE_BYTES`]: the parser
    /// says it of the text it is given, and the planner of a file GitHub only
    /// gives the size of (it serves files over 1 MB without their content).
    pub fn too_large(bytes: usize) -> ParseError {
        let message = format!("the file is {}; greenlight reads at most {}", human_size(bytes), human_size(MAX_FILE_BYTES));
        ParseError { line: 0, column: 0, message }
    }

    /// `line L, column C: message`, or just the message without a position.
    fn describe(&self) -> String {
        if self.line == 0 { self.message.clone() } else { format!("line {}, column {}: {}", self.line, self.column, self.message) }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Pipeline,
    Signature,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    kind: Kind,
    #[serde(rename = "type")]
    pipeline_type: Option<String>,
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
    #[serde(default, rename = "hmac")]
    _hmac: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Platform {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    arch: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Clone {
    #[serde(default)]
    disable: bool,
    /// Accepted for compatibility; greenlight always fetches just the commit.
    #[serde(default, rename = "depth")]
    _depth: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GreenlightKey {
    #[serde(default)]
    step_timeout: Option<String>,
    #[serde(default)]
    auto_cancel: Option<bool>,
    #[serde(default)]
    report_skipped: Option<bool>,
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
    #[serde(default)]
    cache: Option<CacheSpec>,
    #[serde(default)]
    artifacts: Vec<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    retry: Option<u32>,
    #[serde(default)]
    detach: bool,
}

fn located(err: serde_norway::Error) -> ParseError {
    let (line, column) = err.location().map_or((1, 1), |l| (l.line(), l.column()));
    let text = err.to_string();
    let message = match text.find(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    };
    ParseError { line, column, message }
}

/// The 1-based line of the first line at or after `from` containing `needle`.
fn line_of(text: &str, from: usize, needle: &str) -> usize {
    text.lines().enumerate().skip(from.saturating_sub(1)).find(|(_, l)| l.contains(needle)).map_or(from, |(i, _)| i + 1)
}

/// The position of `key`'s value at or after line `from`, for errors found
/// after deserialization.
fn value_at(text: &str, from: usize, key: &str, message: String) -> ParseError {
    let needle = format!("{key}:");
    for (i, line) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        if let Some(col) = line.find(&needle) {
            let rest = &line[col + needle.len()..];
            let value_col = col + needle.len() + (rest.len() - rest.trim_start().len());
            return ParseError { line: i + 1, column: value_col + 1, message };
        }
    }
    ParseError { line: from, column: 1, message }
}

/// An error on the first line at or after `start` containing `needle`.
fn at(text: &str, start: usize, needle: &str, message: String) -> ParseError {
    ParseError { line: line_of(text, start, needle), column: 1, message }
}

/// Parses a `.drone.yml`, document by document, in one pass, under the
/// caps of [`super::limits`]: a file over one is refused with a message
/// naming the cap, after work bounded by the cap.
pub fn parse(text: &str) -> Result<Config, ParseError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(ParseError::too_large(text.len()));
    }
    if let Some(line) = limits::too_many_openers(text) {
        let message = format!(
            "the file holds more than {MAX_OPENERS} `[` and `{{`; greenlight reads at most {MAX_OPENERS} (nested flow collections are slow to parse)"
        );
        return Err(ParseError { line, column: 1, message });
    }
    let budget = Cell::new(MAX_NODES);
    let mut pipelines: Vec<Pipeline> = Vec::new();
    let mut settings = Settings::default();
    let mut count = 0;
    for slice in limits::documents(text) {
        let Some(raw) = pipeline_document(text, slice, &budget, &mut count)? else {
            continue;
        };
        check_runs_here(text, slice.start, &raw)?;
        if pipelines.len() == MAX_PIPELINES {
            let message = format!("the file has more than {MAX_PIPELINES} pipelines; greenlight runs at most {MAX_PIPELINES}");
            return Err(at(text, slice.start, "kind:", message));
        }
        if raw.greenlight.is_some() && !pipelines.is_empty() {
            return Err(at(text, slice.start, "greenlight:", "the `greenlight` key is only read from the first document".to_string()));
        }
        let step_timeout = apply_greenlight_key(text, slice.start, raw.greenlight.as_ref(), &mut settings)?;
        pipelines.push(pipeline_of(text, slice.start, raw, step_timeout, &pipelines)?);
    }
    if pipelines.is_empty() {
        return Err(ParseError { line: 1, column: 1, message: "no `kind: pipeline` document".to_string() });
    }
    check_pipeline_dependencies(text, &pipelines)?;
    Ok(Config { pipelines, settings })
}

/// The first YAML document of `slice` (it holds at most one), if any.
fn document_of(slice: Slice<'_>) -> Option<serde_norway::Deserializer<'_>> {
    serde_norway::Deserializer::from_str(slice.text).next()
}

/// The document of `slice` strictly parsed when it is a pipeline; `None`
/// for a slice without a document, an empty document or a `kind:
/// signature` one. Its shape is scanned first, its expanded nodes counted
/// against `budget` (so an alias bomb stops there) and `count` (the
/// documents so far) checked against [`MAX_DOCUMENTS`]. A pipeline of
/// another `type` is refused before the strict parse, whose unknown-key
/// errors would otherwise hide the real reason.
fn pipeline_document(text: &str, slice: Slice<'_>, budget: &Cell<usize>, count: &mut usize) -> Result<Option<RawDocument>, ParseError> {
    let shifted = |e: serde_norway::Error| {
        let mut e = located(e);
        e.line += slice.offset;
        e
    };
    let mut stream = serde_norway::Deserializer::from_str(slice.text);
    let Some(document) = stream.next() else {
        return Ok(None); // comments or blank lines only
    };
    *count += 1;
    if *count > MAX_DOCUMENTS {
        let message = format!("the file has more than {MAX_DOCUMENTS} YAML documents; greenlight reads at most {MAX_DOCUMENTS}");
        return Err(ParseError { line: slice.start, column: 1, message });
    }
    let shape = limits::scan(document, budget).map_err(shifted)?;
    if stream.next().is_some() {
        // Not expected (documents are cut at their markers), but never skipped silently.
        let message = "a second YAML document starts here without a `---` line".to_string();
        return Err(ParseError { line: slice.start, column: 1, message });
    }
    if shape.empty {
        return Ok(None); // an empty document, e.g. a trailing `---`
    }
    if let (Some("pipeline"), Some(other)) = (shape.kind.as_deref(), shape.pipeline_type.as_deref())
        && other != "exec"
    {
        return Err(value_at(
            text,
            slice.start,
            "type",
            format!("pipeline type `{other}` is not supported: greenlight runs exec pipelines (`type: exec`)"),
        ));
    }
    // The same document again, strictly, for positions in errors: its size
    // once expanded is known to be within the budget.
    let document = document_of(slice).expect("the document was just read");
    let raw = RawDocument::deserialize(document).map_err(shifted)?;
    Ok((!matches!(raw.kind, Kind::Signature)).then_some(raw))
}

/// Refuses a pipeline greenlight cannot run: no `type` (Drone would assume
/// docker), or a platform other than linux on a supported architecture.
fn check_runs_here(text: &str, start: usize, raw: &RawDocument) -> Result<(), ParseError> {
    if raw.pipeline_type.is_none() {
        return Err(at(
            text,
            start,
            "kind:",
            "pipeline has no `type`; Drone then assumes `docker`, which greenlight does not run: add `type: exec`".to_string(),
        ));
    }
    if let Some(os) = raw.platform.as_ref().and_then(|p| p.os.as_deref()).filter(|os| *os != "linux") {
        return Err(value_at(text, start, "os", format!("platform os `{os}` is not supported: greenlight runs on linux")));
    }
    if let Some(arch) = raw.platform.as_ref().and_then(|p| p.arch.as_deref()).filter(|a| !matches!(*a, "amd64" | "arm64" | "arm")) {
        return Err(value_at(text, start, "arch", format!("platform arch `{arch}` is not one of amd64, arm64, arm")));
    }
    Ok(())
}

/// Reads the `greenlight:` key: `auto_cancel` and `report_skipped` go into `settings`; the
/// step timeout it sets (or the default) is returned for the pipeline.
fn apply_greenlight_key(text: &str, start: usize, key: Option<&GreenlightKey>, settings: &mut Settings) -> Result<Duration, ParseError> {
    let mut step_timeout = DEFAULT_STEP_TIMEOUT;
    if let Some(raw_timeout) = key.and_then(|g| g.step_timeout.as_deref()) {
        step_timeout = parse_duration(raw_timeout)
            .ok_or_else(|| value_at(text, start, "step_timeout", format!("`{raw_timeout}` is not a duration such as 90s, 10m or 1h")))?;
    }
    if let Some(auto_cancel) = key.and_then(|g| g.auto_cancel) {
        settings.auto_cancel = auto_cancel;
    }
    if let Some(report_skipped) = key.and_then(|g| g.report_skipped) {
        settings.report_skipped = report_skipped;
    }
    Ok(step_timeout)
}

/// The pipeline a document describes, refused when its name repeats one of
/// `earlier` or its steps are empty or wrong.
fn pipeline_of(text: &str, start: usize, raw: RawDocument, step_timeout: Duration, earlier: &[Pipeline]) -> Result<Pipeline, ParseError> {
    let name = raw.name.unwrap_or_else(|| "default".to_string());
    if earlier.iter().any(|p| p.name == name) {
        return Err(at(text, start, &format!("name: {name}"), format!("two pipelines are named `{name}`")));
    }
    if raw.steps.is_empty() {
        return Err(at(text, start, "kind:", format!("pipeline `{name}` has no steps")));
    }
    if raw.steps.len() > MAX_STEPS {
        let message = format!("pipeline `{name}` has {} steps; greenlight runs at most {MAX_STEPS} per pipeline", raw.steps.len());
        return Err(at(text, start, "steps:", message));
    }
    let steps = steps_of(text, start, &name, raw.steps)?;
    check_step_dependencies(text, start, &name, &steps)?;
    Ok(Pipeline {
        name,
        steps,
        trigger: raw.trigger,
        depends_on: raw.depends_on,
        environment: raw.environment.into_iter().map(|(k, v)| (k, v.into())).collect(),
        clone_disabled: raw.clone.is_some_and(|c| c.disable),
        step_timeout,
        line: start,
    })
}

/// Pipeline `pipeline`'s steps, refusing a repeated name or a step without commands.
fn steps_of(text: &str, start: usize, pipeline: &str, raw_steps: Vec<RawStep>) -> Result<Vec<Step>, ParseError> {
    let mut steps = Vec::with_capacity(raw_steps.len());
    let mut seen = HashSet::new();
    for step in raw_steps {
        let needle = format!("name: {}", step.name);
        if !seen.insert(step.name.clone()) {
            // Point at the second step of that name, not the first.
            return Err(ParseError {
                line: line_of(text, line_of(text, start, &needle) + 1, &needle),
                column: 1,
                message: format!("two steps of pipeline `{pipeline}` are named `{}`", step.name),
            });
        }
        if step.commands.is_empty() {
            return Err(at(text, start, &needle, format!("step `{}` has no commands", step.name)));
        }
        let from = line_of(text, start, &needle);
        check_step_extras(text, from, &step)?;
        let timeout = match step.timeout.as_deref() {
            Some(raw) => Some(
                parse_duration(raw)
                    .ok_or_else(|| value_at(text, from, "timeout", format!("`{raw}` is not a duration such as 90s, 10m or 1h")))?,
            ),
            None => None,
        };
        steps.push(Step {
            ignore_failure: matches!(step.failure, Some(Failure::Ignore)),
            environment: step.environment.into_iter().map(|(k, v)| (k, v.into())).collect(),
            name: step.name,
            commands: step.commands,
            when: step.when,
            depends_on: step.depends_on,
            paths_ruled_out: false,
            cache: step.cache,
            artifacts: step.artifacts,
            timeout,
            retry: step.retry.unwrap_or(0),
            detach: step.detach,
        });
    }
    Ok(steps)
}

/// Refuses a `cache`, `artifacts`, `retry` or `detach` a step cannot have:
/// paths that leave the workspace, keys without text, more than the caps.
fn check_step_extras(text: &str, from: usize, step: &RawStep) -> Result<(), ParseError> {
    let name = &step.name;
    if let Some(cache) = &step.cache {
        if cache.key.trim().is_empty() || cache.key.len() > MAX_CACHE_KEY_BYTES {
            return Err(value_at(text, from, "key", format!("step `{name}`: a cache key must have 1 to {MAX_CACHE_KEY_BYTES} bytes")));
        }
        if cache.paths.is_empty() || cache.paths.len() > MAX_CACHE_PATHS {
            return Err(at(text, from, "paths:", format!("step `{name}`: a cache needs 1 to {MAX_CACHE_PATHS} `paths`")));
        }
        for path in &cache.paths {
            let inside = path.strip_prefix("~/").unwrap_or(path);
            if let Some(why) = leaves_its_root(inside) {
                return Err(at(text, from, path, format!("step `{name}`: cache path `{path}` {why}")));
            }
        }
    }
    if step.artifacts.len() > MAX_ARTIFACT_PATTERNS {
        let message = format!("step `{name}` lists {} artifacts; at most {MAX_ARTIFACT_PATTERNS} patterns", step.artifacts.len());
        return Err(at(text, from, "artifacts:", message));
    }
    for pattern in &step.artifacts {
        if let Some(why) = leaves_its_root(pattern) {
            return Err(at(text, from, pattern, format!("step `{name}`: artifact `{pattern}` {why}")));
        }
        if let Err(e) = glob::Pattern::new(pattern) {
            return Err(at(text, from, pattern, format!("step `{name}`: artifact `{pattern}` is not a glob pattern: {e}")));
        }
    }
    match step.retry {
        Some(n) if n > MAX_RETRIES => {
            Err(value_at(text, from, "retry", format!("step `{name}`: `retry` is at most {MAX_RETRIES}, got {n}")))
        }
        Some(_) if step.detach => {
            Err(value_at(text, from, "retry", format!("step `{name}`: a detached step (a service) runs once; remove `retry`")))
        }
        _ => Ok(()),
    }
}

/// Why `path` would reach outside the directory it is relative to: it is
/// absolute, empty, or climbs with `..`; `None` when it stays inside.
fn leaves_its_root(path: &str) -> Option<&'static str> {
    if path.trim().is_empty() {
        Some("is empty")
    } else if path.starts_with('/') {
        Some("is absolute: paths are relative to the workspace (or `~/` for the step's home)")
    } else if path.split('/').any(|part| part == "..") {
        Some("climbs out with `..`: paths stay inside the workspace")
    } else {
        None
    }
}

/// Refuses a step `depends_on` naming no step of the pipeline, or a cycle.
fn check_step_dependencies(text: &str, start: usize, pipeline: &str, steps: &[Step]) -> Result<(), ParseError> {
    for step in steps {
        for dep in &step.depends_on {
            if !steps.iter().any(|s| &s.name == dep) {
                return Err(at(
                    text,
                    start,
                    &format!("name: {}", step.name),
                    format!("step `{}` depends on `{dep}`, which is not a step of pipeline `{pipeline}`", step.name),
                ));
            }
        }
    }
    if let Some(cycle) = find_cycle(steps.iter().map(|s| (s.name.as_str(), s.depends_on.as_slice()))) {
        return Err(at(
            text,
            start,
            "depends_on",
            format!("the steps of pipeline `{pipeline}` depend on each other in a cycle through `{cycle}`"),
        ));
    }
    Ok(())
}

/// Refuses a pipeline `depends_on` naming no pipeline of the file, or a cycle.
fn check_pipeline_dependencies(text: &str, pipelines: &[Pipeline]) -> Result<(), ParseError> {
    for p in pipelines {
        for dep in &p.depends_on {
            if !pipelines.iter().any(|q| &q.name == dep) {
                return Err(at(
                    text,
                    p.line,
                    "depends_on",
                    format!("pipeline `{}` depends on `{dep}`, which is not a pipeline of this file", p.name),
                ));
            }
        }
    }
    if let Some(cycle) = find_cycle(pipelines.iter().map(|p| (p.name.as_str(), p.depends_on.as_slice()))) {
        return Err(ParseError { line: 1, column: 1, message: format!("pipelines depend on each other in a cycle through `{cycle}`") });
    }
    Ok(())
}

/// A node on a dependency cycle, if there is one.
pub(crate) fn find_cycle<'a>(nodes: impl Iterator<Item = (&'a str, &'a [String])>) -> Option<String> {
    let graph: Vec<(&str, &[String])> = nodes.collect();
    // Kahn's algorithm: whatever cannot be ordered is on (or behind) a cycle.
    let mut done: HashSet<&str> = HashSet::new();
    loop {
        let ready: Vec<&str> =
            graph.iter().filter(|(n, deps)| !done.contains(n) && deps.iter().all(|d| done.contains(d.as_str()))).map(|(n, _)| *n).collect();
        if ready.is_empty() {
            break;
        }
        done.extend(ready);
    }
    graph.iter().find(|(n, _)| !done.contains(n)).map(|(n, _)| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "kind: pipeline\ntype: exec\nname: test\ngreenlight:\n  step_timeout: 90s\n  auto_cancel: false\nsteps:\n- name: unit\n  commands: [cargo test]\n  environment:\n    LEVEL: 3\n    TOKEN: {from_secret: deploy_token}\n---\nkind: pipeline\ntype: exec\nname: deploy\ndepends_on: [test]\nsteps:\n- name: ship\n  commands: [./ship]\n  when: {branch: main}\n  failure: ignore\n---\nkind: signature\nhmac: abc\n";

    const ONE: &str = "kind: pipeline\ntype: exec\nname: one\nsteps:\n- name: a\n  commands: [x]\n";

    #[test]
    fn a_two_pipeline_file_parses_with_its_settings() {
        let config = parse(TWO).unwrap();
        assert_eq!(config.pipelines.len(), 2);
        assert!(!config.settings.auto_cancel);
        let test = &config.pipelines[0];
        assert_eq!(test.step_timeout, Duration::from_secs(90));
        assert_eq!(test.steps[0].environment["LEVEL"], EnvValue::Plain("3".into()));
        assert_eq!(test.steps[0].environment["TOKEN"], EnvValue::Secret("deploy_token".into()));
        let deploy = &config.pipelines[1];
        assert_eq!(deploy.depends_on, vec!["test"]);
        assert_eq!(deploy.line, 14);
        assert!(deploy.steps[0].ignore_failure);
        assert_eq!(deploy.step_timeout, DEFAULT_STEP_TIMEOUT);
    }

    #[test]
    fn errors_in_a_later_document_name_their_own_line() {
        let text = "kind: pipeline\ntype: exec\nsteps:\n- name: a\n  commands: [x]\n---\nkind: pipeline\ntype: exec\nname: two\nsteps:\n- name: b\n  commands: [y]\n  image: alpine\n";
        let err = parse(text).unwrap_err();
        assert_eq!((err.line, err.column), (13, 3), "{err}");
        assert!(err.message.contains("unknown field `image`"));
    }

    #[test]
    fn a_missing_type_is_refused_because_drone_would_assume_docker() {
        let err = parse("kind: pipeline\nname: x\nsteps:\n- name: a\n  commands: [x]\n").unwrap_err();
        assert!(err.message.contains("add `type: exec`"), "{err}");
    }

    #[test]
    fn broken_yaml_names_its_position() {
        let err = parse("kind: pipeline\ntype: exec\nsteps: [\n").unwrap_err();
        assert!(err.line >= 3, "{err}");
    }

    #[test]
    fn dependency_mistakes_are_reported() {
        let unknown = parse("kind: pipeline\ntype: exec\nsteps:\n- name: a\n  commands: [x]\n  depends_on: [nope]\n").unwrap_err();
        assert!(unknown.message.contains("depends on `nope`"), "{unknown}");
        let cycle = parse("kind: pipeline\ntype: exec\nsteps:\n- name: a\n  commands: [x]\n  depends_on: [b]\n- name: b\n  commands: [x]\n  depends_on: [a]\n").unwrap_err();
        assert!(cycle.message.contains("cycle"), "{cycle}");
        let dup = parse("kind: pipeline\ntype: exec\nsteps:\n- name: a\n  commands: [x]\n- name: a\n  commands: [y]\n").unwrap_err();
        assert_eq!(dup.line, 6, "{dup}");
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let err = parse("kind: pipeline\ntype: exec\ngreenlight:\n  step_timeout: soon\nsteps:\n- name: a\n  commands: [x]\n").unwrap_err();
        assert_eq!((err.line, err.column), (4, 17), "{err}");
        let err = parse("kind: pipeline\ntype: exec\nplatform:\n  os: windows\nsteps:\n- name: a\n  commands: [x]\n").unwrap_err();
        assert_eq!((err.line, err.column), (4, 7), "{err}");
    }

    fn one_step(extra: &str) -> Result<Step, ParseError> {
        let text = format!("kind: pipeline\ntype: exec\nsteps:\n- name: test\n  commands: [make]\n{extra}");
        parse(&text).map(|mut c| c.pipelines.remove(0).steps.remove(0))
    }

    #[test]
    fn a_step_reads_its_cache_artifacts_timeout_retry_and_detach() {
        let step = one_step(
            "  cache:\n    key: cargo-{{ checksum \"Cargo.lock\" }}\n    restore_keys: [cargo-]\n    paths: [target, ~/.cargo/registry]\n  artifacts: [dist/*.tar.gz, report.html]\n  timeout: 10m\n  retry: 2\n",
        )
        .unwrap();
        let cache = step.cache.unwrap();
        assert_eq!(cache.key, "cargo-{{ checksum \"Cargo.lock\" }}");
        assert_eq!(cache.restore_keys, ["cargo-"]);
        assert_eq!(cache.paths, ["target", "~/.cargo/registry"]);
        assert_eq!(step.artifacts, ["dist/*.tar.gz", "report.html"]);
        assert_eq!(step.timeout, Some(Duration::from_secs(600)));
        assert_eq!(step.retry, 2);
        assert!(!step.detach);
        assert!(one_step("  detach: true\n").unwrap().detach);
        let plain = one_step("").unwrap();
        assert_eq!((plain.cache, plain.artifacts.len(), plain.timeout, plain.retry), (None, 0, None, 0));
    }

    #[test]
    fn a_step_timeout_overrides_the_pipelines() {
        let text = "kind: pipeline\ntype: exec\ngreenlight:\n  step_timeout: 5m\nsteps:\n- name: a\n  commands: [x]\n  timeout: 2s\n- name: b\n  commands: [x]\n";
        let pipeline = parse(text).unwrap().pipelines.remove(0);
        assert_eq!(pipeline.steps[0].timeout_in(&pipeline), Duration::from_secs(2));
        assert_eq!(pipeline.steps[1].timeout_in(&pipeline), Duration::from_secs(300));
    }

    #[test]
    fn step_extras_that_cannot_work_are_refused_where_they_are() {
        let cases = [
            ("  cache:\n    key: k\n    paths: [/etc]\n", "cache path `/etc` is absolute", 8),
            ("  cache:\n    key: k\n    paths: [../up]\n", "cache path `../up` climbs out", 8),
            ("  cache:\n    key: k\n    paths: []\n", "a cache needs 1 to 32 `paths`", 8),
            ("  cache:\n    key: \" \"\n    paths: [a]\n", "a cache key must have 1 to 512 bytes", 7),
            ("  cache:\n    key: k\n    paths: [a]\n    size: 3\n", "unknown field `size`", 9),
            ("  artifacts: [/etc/passwd]\n", "artifact `/etc/passwd` is absolute", 6),
            ("  artifacts: [\"a/../../b\"]\n", "climbs out", 6),
            ("  artifacts: [\"[z\"]\n", "is not a glob pattern", 6),
            ("  timeout: soon\n", "`soon` is not a duration", 6),
            ("  retry: 9\n", "`retry` is at most 5, got 9", 6),
            ("  detach: true\n  retry: 1\n", "a detached step (a service) runs once", 7),
        ];
        for (extra, message, line) in cases {
            let e = one_step(extra).unwrap_err();
            assert!(e.message.contains(message), "{extra:?}: {e}");
            assert_eq!(e.line, line, "{extra:?}: {e}");
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45s"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("0s"), None);
    }

    const STEP: &str = "kind: pipeline\ntype: exec\nname: p{n}\nsteps:\n- name: a\n  commands: [x]\n";

    /// The wide alias bomb of issue #9: 10,000 items, named 10,000 times.
    fn alias_bomb() -> String {
        let items = vec!["x"; 10_000].join(",");
        let uses = vec!["*a"; 10_000].join(",");
        format!("kind: pipeline\ntype: exec\nsteps:\n- name: s\n  commands: [x]\n  environment:\n    A: &a [{items}]\n    B: [{uses}]\n")
    }

    #[test]
    fn a_file_over_the_size_cap_is_refused_naming_its_size() {
        let text = format!("{}# {}\n", ONE, "x".repeat(10 * 1024 * 1024));
        let err = parse(&text).unwrap_err();
        assert_eq!(err.to_string(), "the file is 10.0 MB; greenlight reads at most 512 KB");
        assert!(parse(&format!("{ONE}# {}\n", "x".repeat(MAX_FILE_BYTES - ONE.len() - 3))).is_ok());
    }

    #[test]
    fn more_documents_than_the_cap_are_refused_at_the_first_extra_one() {
        let signatures = "kind: signature\nhmac: abc\n---\n".repeat(12_000);
        let err = parse(&format!("{ONE}---\n{signatures}")).unwrap_err();
        assert!(err.message.contains("more than 100 YAML documents; greenlight reads at most 100"), "{err}");
        assert_eq!(err.line, 7 + 3 * 99 + 1, "{err}");
        let at_cap = format!("{ONE}---\n{}", vec!["kind: signature\nhmac: abc\n"; MAX_DOCUMENTS - 1].join("---\n"));
        assert!(parse(&at_cap).is_ok());
    }

    #[test]
    fn more_pipelines_than_the_cap_are_refused() {
        let many = |n: usize| (0..n).map(|i| STEP.replace("{n}", &i.to_string())).collect::<Vec<_>>().join("---\n");
        assert_eq!(parse(&many(MAX_PIPELINES)).unwrap().pipelines.len(), MAX_PIPELINES);
        let err = parse(&many(MAX_PIPELINES + 1)).unwrap_err();
        assert!(err.message.contains("more than 50 pipelines; greenlight runs at most 50"), "{err}");
        assert_eq!(err.line, 7 * 50 + 1, "{err}");
    }

    #[test]
    fn more_steps_than_the_cap_are_refused() {
        let steps = |n: usize| (0..n).map(|i| format!("- name: s{i}\n  commands: [x]\n")).collect::<String>();
        assert!(parse(&format!("kind: pipeline\ntype: exec\nsteps:\n{}", steps(MAX_STEPS))).is_ok());
        let err = parse(&format!("kind: pipeline\ntype: exec\nsteps:\n{}", steps(MAX_STEPS + 1))).unwrap_err();
        assert!(err.message.contains("pipeline `default` has 201 steps; greenlight runs at most 200 per pipeline"), "{err}");
        assert_eq!(err.line, 3, "{err}");
    }

    #[test]
    fn an_alias_bomb_is_refused_at_the_node_budget() {
        let bomb = alias_bomb();
        assert!(bomb.len() < 64 * 1024);
        let err = parse(&bomb).unwrap_err();
        assert!(err.message.contains("expands to more than 250000 YAML values"), "{err}");
        assert_eq!(err.line, 7, "at the aliased list: {err}");
        // The budget is the file's: 200 steps naming one 1,000-command list
        // pass alone, but not twice over.
        let wide = |name: &str| {
            let steps: String = (1..MAX_STEPS).map(|j| format!("- name: s{j}\n  commands: *c\n")).collect();
            format!("kind: pipeline\ntype: exec\nname: {name}\nsteps:\n- name: s0\n  commands: &c [{}]\n{steps}", vec!["x"; 1000].join(","))
        };
        assert!(parse(&wide("one")).is_ok());
        let err = parse(&format!("{}---\n{}", wide("one"), wide("two"))).unwrap_err();
        assert!(err.message.contains("expands to more than 250000 YAML values"), "{err}");
    }

    #[test]
    fn more_flow_openers_than_the_cap_are_refused_before_the_yaml_parser_runs() {
        // 100,000 nested `{a: ` take libyaml tens of seconds (quadratic in the depth).
        let deep = format!("{ONE}---\nkind: signature\nhmac: {}{}\n", "{a: ".repeat(100_000), "}".repeat(100_000));
        let err = parse(&deep).unwrap_err();
        assert!(err.message.contains("more than 10000 `[` and `{`; greenlight reads at most 10000"), "{err}");
        assert_eq!(err.line, 9, "{err}");
        let many = format!("kind: pipeline\ntype: exec\nsteps:\n- name: a\n  commands:\n{}", "  - echo ${A}\n".repeat(MAX_OPENERS));
        assert!(parse(&many).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused_without_exhausting_the_stack() {
        let deep = format!("{ONE}---\nkind: signature\nhmac: {}{}\n", "[".repeat(5_000), "]".repeat(5_000));
        let err = parse(&deep).unwrap_err();
        assert!(err.message.contains("recursion limit"), "{err}");
    }

    #[test]
    fn any_yaml_value_passes_the_scan() {
        let values =
            "x: [1, -2, 3.5, .inf, ~, true, 'q', \"d\", !tag v, {k: v}, 99999999999999999999999, -99999999999999999999999, ? [a] : b]";
        let err = parse(&format!("kind: pipeline\ntype: exec\nsteps:\n- name: a\n  commands: [x]\n{values}\n")).unwrap_err();
        assert!(err.message.contains("unknown field `x`"), "the strict parse is reached: {err}");
    }

    #[test]
    fn aliases_within_the_budget_still_work() {
        let text = "kind: pipeline\ntype: exec\nsteps:\n- name: a\n  commands: &build [make, make test]\n- name: b\n  commands: *build\n";
        let config = parse(text).unwrap();
        assert_eq!(config.pipelines[0].steps[1].commands, vec!["make", "make test"]);
    }

    #[test]
    fn documents_are_cut_at_their_markers_only() {
        let text = "# a comment\n---\nkind: pipeline\n...\n---\nkind: signature\n---\n";
        let slices: Vec<_> = limits::documents(text).map(|s| (s.text, s.offset, s.start)).collect();
        assert_eq!(slices, vec![("# a comment\n---\nkind: pipeline\n...\n", 0, 3), ("---\nkind: signature\n", 4, 6), ("---\n", 6, 8)]);
        assert_eq!(limits::documents("a: '---x'\nb: 1\n").count(), 1);
    }
}
