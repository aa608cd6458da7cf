//! Check run annotations found in step output: GitHub Actions' workflow
//! commands (`::error file=F,line=L::message`) and compiler-style lines
//! (`F:L:C: error: message`, as gcc, clang, rustc's short form and eslint's
//! unix format print them).

use crate::github::types::{Annotation, truncate_bytes};
use crate::secrets::Masker;
use std::collections::VecDeque;
use std::sync::Arc;

/// GitHub accepts at most 50 annotations per request; more are appended by
/// later updates of the check run.
pub use crate::github::types::MAX_ANNOTATIONS_PER_REQUEST;

/// greenlight publishes at most this many annotations per check run; the
/// summary counts the rest.
pub const MAX_ANNOTATIONS_PER_RUN: usize = 1000;

/// GitHub caps an annotation's message at 64 KB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// GitHub caps an annotation's title at 255 characters.
pub const MAX_TITLE_CHARS: usize = 255;

/// How bad an annotation is: GitHub's `annotation_level`, from the
/// workflow command (`::error`, `::warning`, `::notice`) or compiler line
/// that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// An error: GitHub's `failure`.
    Failure,
    /// A warning.
    Warning,
    /// A notice.
    Notice,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Failure => "failure",
            Level::Warning => "warning",
            Level::Notice => "notice",
        }
    }
}

/// Undoes the workflow-command escaping (`%25`, `%0D`, `%0A`, `%3A`, `%2C`).
fn unescape(text: &str) -> String {
    text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")
}

/// A path relative to the repository root, or `None` when it points outside it.
pub fn relative_path(path: &str, workspace: &str) -> Option<String> {
    let trimmed = path.trim();
    let rest = if let Some(inside) = trimmed.strip_prefix(workspace.trim_end_matches('/')) {
        inside.strip_prefix('/')?
    } else if trimmed.starts_with('/') {
        return None;
    } else {
        trimmed
    };
    let rest = rest.trim_start_matches("./");
    if rest.is_empty() || rest.split('/').any(|part| part == "..") {
        return None;
    }
    Some(rest.to_string())
}

/// Where in a file an annotation points.
struct Span {
    line: u32,
    end_line: Option<u32>,
    col: Option<u32>,
    end_col: Option<u32>,
}

fn annotation(path: String, span: Span, level: Level, message: &str, title: Option<String>) -> Annotation {
    let Span { line, end_line, col, end_col } = span;
    let end_line = end_line.filter(|e| *e >= line).unwrap_or(line);
    let same_line = end_line == line;
    let message = message.trim().to_string();
    Annotation {
        path,
        start_line: line,
        end_line,
        annotation_level: level.name().to_string(),
        message,
        start_column: col.filter(|_| same_line),
        end_column: end_col.filter(|_| same_line).or(col.filter(|_| same_line)),
        title,
    }
}

fn workflow_command(line: &str, workspace: &str) -> Option<Annotation> {
    let rest = line.strip_prefix("::")?;
    let (head, message) = rest.split_once("::")?;
    let (command, properties) = head.split_once(' ').unwrap_or((head, ""));
    let level = match command {
        "error" => Level::Failure,
        "warning" => Level::Warning,
        "notice" => Level::Notice,
        _ => return None,
    };
    let mut file = None;
    let (mut line_no, mut end_line, mut col, mut end_col, mut title) = (None, None, None, None, None);
    for property in properties.split(',') {
        let Some((key, value)) = property.split_once('=') else { continue };
        let value = unescape(value.trim());
        match key.trim() {
            "file" => file = Some(value),
            "line" => line_no = value.parse().ok(),
            "endLine" => end_line = value.parse().ok(),
            "col" => col = value.parse().ok(),
            "endColumn" => end_col = value.parse().ok(),
            "title" => title = Some(value),
            _ => {}
        }
    }
    let path = relative_path(&file?, workspace)?;
    let span = Span { line: line_no.filter(|l: &u32| *l > 0).unwrap_or(1), end_line, col, end_col };
    Some(annotation(path, span, level, &unescape(message), title))
}

fn compiler_line(line: &str, workspace: &str) -> Option<Annotation> {
    // FILE:LINE[:COL]: rest
    let mut parts = line.splitn(4, ':');
    let file = parts.next()?;
    if file.is_empty() || file.contains(char::is_whitespace) {
        return None;
    }
    let line_no: u32 = parts.next()?.parse().ok()?;
    let third = parts.next()?;
    let (col, rest) = match third.parse::<u32>() {
        Ok(col) => (Some(col), parts.next()?),
        Err(_) => (None, &line[file.len() + 1 + line_no.to_string().len() + 1..]),
    };
    let rest = rest.strip_prefix(' ')?;
    let lower = rest.to_ascii_lowercase();
    let (level, message) = if let Some(after) = ["fatal error", "error"].iter().find_map(|k| severity(rest, &lower, k)) {
        (Level::Failure, after)
    } else if let Some(after) = severity(rest, &lower, "warning") {
        (Level::Warning, after)
    } else if let Some(after) = ["note", "notice"].iter().find_map(|k| severity(rest, &lower, k)) {
        (Level::Notice, after)
    } else if rest.trim_end().ends_with(']') && lower.contains("[error/") {
        (Level::Failure, rest)
    } else if rest.trim_end().ends_with(']') && lower.contains("[warning/") {
        (Level::Warning, rest)
    } else {
        return None;
    };
    if line_no == 0 {
        return None;
    }
    let path = relative_path(file, workspace)?;
    Some(annotation(path, Span { line: line_no, end_line: None, col, end_col: None }, level, message, None))
}

/// `error: msg` or `error[E0425]: msg` at the start of `rest`; returns `msg`.
fn severity<'a>(rest: &'a str, lower: &str, keyword: &str) -> Option<&'a str> {
    if !lower.starts_with(keyword) {
        return None;
    }
    let after = &rest[keyword.len()..];
    let after = if after.starts_with('[') { &after[after.find(']')? + 1..] } else { after };
    after.strip_prefix(':').map(str::trim)
}

/// The annotation a log line asks for, if any. `workspace` is the
/// repository root as the step saw it (absolute paths under it are made relative).
pub fn parse_line(line: &str, workspace: &str) -> Option<Annotation> {
    let line = line.trim_end_matches(['\n', '\r']);
    workflow_command(line, workspace).or_else(|| compiler_line(line, workspace))
}

/// The annotations of a stage: those not yet published, and counts. This
/// is where annotations leave greenlight's hands: each is masked once
/// decoded, then cut to GitHub's limits.
#[derive(Debug, Default)]
pub struct Collected {
    /// Hides the stage's secrets in each annotation's path, title and message.
    masker: Arc<Masker>,
    /// Waiting to be published, oldest first.
    pub pending: VecDeque<Annotation>,
    /// Accepted in all (published or pending), at most [`MAX_ANNOTATIONS_PER_RUN`].
    pub accepted: usize,
    /// Found beyond the ceiling, not published.
    pub dropped: usize,
    /// Counts per level: failure, warning, notice (all found, published or not).
    pub counts: [usize; 3],
}

impl Collected {
    /// Collects the annotations of a stage whose secrets `masker` hides.
    pub fn new(masker: Arc<Masker>) -> Self {
        Self { masker, ..Self::default() }
    }

    /// Takes an annotation, masked and cut to GitHub's limits, up to the ceiling.
    pub fn add(&mut self, annotation: Annotation) {
        let mask = |text: &str| self.masker.mask_plain(text).into_owned();
        let message = mask(&annotation.message);
        let annotation = Annotation {
            path: mask(&annotation.path),
            message: truncate_bytes(&message, MAX_MESSAGE_BYTES).to_string(),
            title: annotation.title.as_deref().map(|t| mask(t).chars().take(MAX_TITLE_CHARS).collect()),
            ..annotation
        };
        let index = match annotation.annotation_level.as_str() {
            "failure" => 0,
            "warning" => 1,
            _ => 2,
        };
        self.counts[index] += 1;
        if self.accepted >= MAX_ANNOTATIONS_PER_RUN {
            self.dropped += 1;
            return;
        }
        self.accepted += 1;
        self.pending.push_back(annotation);
    }

    /// The next batch of at most 50.
    pub fn next_batch(&mut self) -> Vec<Annotation> {
        let n = self.pending.len().min(MAX_ANNOTATIONS_PER_REQUEST);
        self.pending.drain(..n).collect()
    }

    /// "Annotations: 2 failures, 1 warning, 0 notices", and what was left out.
    pub fn summary_line(&self) -> Option<String> {
        let total: usize = self.counts.iter().sum();
        if total == 0 {
            return None;
        }
        let mut line =
            format!("**Annotations:** {} failure(s), {} warning(s), {} notice(s).", self.counts[0], self.counts[1], self.counts[2]);
        if self.dropped > 0 {
            line.push_str(&format!(
                " {} more were left out: greenlight publishes at most {MAX_ANNOTATIONS_PER_RUN} per check run.",
                self.dropped
            ));
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str = "/drone/src";

    #[test]
    fn workflow_commands_become_annotations() {
        let a = parse_line("::error file=src/app.js,line=10,col=15,title=Bad thing::Something%2C went wrong\n", WS).unwrap();
        assert_eq!((a.path.as_str(), a.start_line, a.start_column, a.annotation_level.as_str()), ("src/app.js", 10, Some(15), "failure"));
        assert_eq!((a.message.as_str(), a.title.as_deref()), ("Something, went wrong", Some("Bad thing")));
        let w = parse_line("::warning file=/drone/src/lib.rs,line=3,endLine=5::careful", WS).unwrap();
        assert_eq!(
            (w.path.as_str(), w.start_line, w.end_line, w.start_column, w.annotation_level.as_str()),
            ("lib.rs", 3, 5, None, "warning")
        );
        assert!(parse_line("::notice::no file, no annotation", WS).is_none());
        assert!(parse_line("::debug file=a,line=1::x", WS).is_none());
    }

    #[test]
    fn compiler_lines_become_annotations() {
        let gcc = parse_line("/drone/src/main.c:12:5: error: expected ';' before '}' token", WS).unwrap();
        assert_eq!(
            (gcc.path.as_str(), gcc.start_line, gcc.start_column, gcc.annotation_level.as_str()),
            ("main.c", 12, Some(5), "failure")
        );
        assert_eq!(gcc.message, "expected ';' before '}' token");
        let rustc = parse_line("src/main.rs:2:5: error[E0425]: cannot find value `x` in this scope", WS).unwrap();
        assert_eq!((rustc.path.as_str(), rustc.message.as_str()), ("src/main.rs", "cannot find value `x` in this scope"));
        let warn = parse_line("lib/util.py:7: warning: unused import", WS).unwrap();
        assert_eq!((warn.start_line, warn.start_column, warn.annotation_level.as_str()), (7, None, "warning"));
        let eslint = parse_line("/drone/src/web/app.js:1:10: Missing semicolon. [Error/semi]", WS).unwrap();
        assert_eq!((eslint.path.as_str(), eslint.annotation_level.as_str()), ("web/app.js", "failure"));
    }

    #[test]
    fn lines_outside_the_repository_or_not_diagnostics_are_not_annotated() {
        assert!(parse_line("/usr/include/stdio.h:10:1: error: bad", WS).is_none());
        assert!(parse_line("../elsewhere.c:1:1: error: bad", WS).is_none());
        assert!(parse_line("+ echo hello: world", WS).is_none());
        assert!(parse_line("Compiling foo v0.1.0 (/drone/src)", WS).is_none());
        assert!(
            parse_line("12:30:00: error: a time, not a file", WS).is_some_and(|a| a.path == "12"),
            "a digit-named file is still a file"
        );
    }

    #[test]
    fn collected_annotations_are_masked_after_decoding_and_cut_after_masking() {
        let mut collected = Collected::new(Arc::new(Masker::new(["https://deploy:hunter2@registry"])));
        let secret = "https%3A//deploy%3Ahunter2@registry";
        let long = "t".repeat(250);
        collected.add(parse_line(&format!("::error file=a.txt,line=1,title={long}{secret}::at {secret}"), WS).unwrap());
        collected.add(parse_line("::error file=https%3A//deploy%3Ahunter2@registry,line=1::\x1b[1mx", WS).unwrap());
        let (first, second) = (&collected.pending[0], &collected.pending[1]);
        assert_eq!(first.message, "at ********");
        assert_eq!(first.title.as_deref(), Some(format!("{long}*****").as_str()), "masked, then cut to 255");
        assert_eq!((second.path.as_str(), second.message.as_str()), ("********", "x"));
    }

    #[test]
    fn the_ceiling_counts_what_it_drops() {
        let mut collected = Collected::default();
        for i in 0..(MAX_ANNOTATIONS_PER_RUN + 5) {
            collected.add(parse_line(&format!("a.c:{}: warning: w", i + 1), WS).unwrap());
        }
        assert_eq!((collected.accepted, collected.dropped), (MAX_ANNOTATIONS_PER_RUN, 5));
        assert_eq!(collected.next_batch().len(), 50);
        assert!(collected.summary_line().unwrap().contains("5 more were left out"));
    }
}
