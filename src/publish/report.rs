//! The words a finished stage shows on GitHub: title, summary table, and
//! the failing step's log tail, cut to GitHub's limits.

use crate::github::types::{Conclusion, MAX_OUTPUT_BYTES, StatusState, truncate_bytes};
use crate::store::{Artifact, Stage, Status, StepRecord, StepSummary};

/// How a stage maps to a check run conclusion.
pub fn conclusion(stage: &Stage, timed_out: bool) -> Conclusion {
    match stage.status() {
        Status::Success => Conclusion::Success,
        Status::Killed if timed_out => Conclusion::TimedOut,
        Status::Killed => Conclusion::Cancelled,
        Status::Skipped => Conclusion::Skipped,
        _ if timed_out => Conclusion::TimedOut,
        _ => Conclusion::Failure,
    }
}

/// How a stage maps to a commit status state.
pub fn status_state(stage: &Stage) -> StatusState {
    match stage.status() {
        Status::Success | Status::Skipped => StatusState::Success,
        Status::Failure => StatusState::Failure,
        Status::Pending | Status::Running | Status::WaitingOnDependencies | Status::Blocked => StatusState::Pending,
        _ => StatusState::Error,
    }
}

/// "2 of 3 steps passed".
pub fn title(stage: &Stage) -> String {
    let ran: Vec<_> = stage.steps.iter().filter(|s| s.status != Status::Skipped).collect();
    let passed = ran.iter().filter(|s| s.status == Status::Success).count();
    match stage.status() {
        Status::Killed => format!("Cancelled after {passed} of {} steps", stage.steps.len()),
        _ => format!("{passed} of {} steps passed", stage.steps.len()),
    }
}

fn duration(started: i64, stopped: i64) -> String {
    if started == 0 || stopped < started {
        return "–".to_string();
    }
    let secs = stopped - started;
    if secs >= 60 { format!("{}m {}s", secs / 60, secs % 60) } else { format!("{secs}s") }
}

/// A Markdown table of the steps, their status and duration.
pub fn summary(stage: &Stage, caveats: &[String], notes: &[String]) -> String {
    let mut out = String::new();
    for caveat in caveats {
        out.push_str(&format!("> **Warning:** {caveat}\n\n"));
    }
    for note in notes {
        out.push_str(note);
        out.push_str("\n\n");
    }
    if !stage.error.is_empty() {
        out.push_str(&format!("**Error:** {}\n\n", stage.error));
    }
    out.push_str("| step | status | duration |\n|---|---|---|\n");
    for step in &stage.steps {
        let status = step_status(step);
        out.push_str(&format!("| {} | {} | {} |\n", step.name.replace('|', "\\|"), status, duration(step.started, step.stopped)));
    }
    truncate_bytes(&out, MAX_OUTPUT_BYTES).to_string()
}

/// A step's cell in the summary table: its status, why it failed, and how
/// many retries it took (so a flaky step shows even when it passed).
fn step_status(step: &StepRecord) -> String {
    let retries = step.attempts.saturating_sub(1);
    match step.status {
        Status::Success if retries > 0 => format!("✅ success (passed on retry {retries})"),
        Status::Success => "✅ success".to_string(),
        Status::Skipped => "⏭ skipped".to_string(),
        Status::Failure => {
            let mut why = format!("exit {}", step.exit_code);
            if !step.error.is_empty() {
                why.push_str(&format!(": {}", step.error.replace('|', "\\|")));
            }
            if retries > 0 {
                why.push_str(&format!(", after {} attempts", step.attempts));
            }
            match step.errignore {
                true => format!("⚠️ failure ({why}, ignored)"),
                false => format!("❌ failure ({why})"),
            }
        }
        other => format!("❌ {}", other.as_str()),
    }
}

/// What a stage's steps left, for its check run summary, and where the
/// build page shows it whole.
pub struct OutputsPage<'a> {
    /// The steps' job summaries, masked.
    pub summaries: &'a [StepSummary],
    /// The artifacts uploaded.
    pub artifacts: &'a [Artifact],
    /// The build page.
    pub build_url: &'a str,
}

/// The note ending summaries cut to fit GitHub's limit.
pub fn cut_note(build_url: &str) -> String {
    format!(
        "\n\n---\n*The job summaries are cut here: they pass GitHub's limit of 65,535 bytes. Read them whole on the build page: {build_url}*\n"
    )
}

/// `table` (the step table, already within the limit) followed by the
/// artifacts' links and each step's job summary under a `###` heading
/// with its name; everything past GitHub's 65,535 bytes is cut with
/// [`cut_note`].
pub fn with_outputs(table: &str, outputs: &OutputsPage<'_>) -> String {
    let mut out = table.to_string();
    if !outputs.artifacts.is_empty() {
        out.push_str(&format!("\n**Artifacts** ([download from the build page]({}#artifacts)):\n\n", outputs.build_url));
        for artifact in outputs.artifacts {
            let size = crate::runner::limits::human_bytes(artifact.size);
            out.push_str(&format!("- `{}` ({size}, step {})\n", artifact.name.replace('`', "'"), artifact.step));
        }
    }
    for summary in outputs.summaries {
        out.push_str(&format!("\n### {}\n\n{}\n", summary.name, summary.markdown.trim_end()));
        if summary.cut {
            let limit = crate::runner::limits::human_bytes(crate::runner::summary::SUMMARY_LIMIT as u64);
            out.push_str(&format!("\n*This step's summary was cut at {limit}.*\n"));
        }
    }
    if out.len() <= MAX_OUTPUT_BYTES {
        return out;
    }
    let note = cut_note(outputs.build_url);
    let kept = truncate_bytes(&out, MAX_OUTPUT_BYTES - note.len());
    format!("{kept}{note}")
}

/// The failing step's log tail in a code block, cut from the front to fit
/// 65,535 bytes, with a link to the full log.
pub fn failure_text(step: &str, tail: &str, log_url: &str) -> String {
    let head = format!("Last lines of step `{step}` (full log: {log_url}):\n\n```\n");
    let foot = "\n```\n";
    let room = MAX_OUTPUT_BYTES - head.len() - foot.len();
    let mut start = tail.len().saturating_sub(room);
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    let body = tail[start..].replace("```", "`\u{200b}``");
    let body = truncate_bytes(&body, room);
    format!("{head}{body}{foot}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_past_the_limit_are_cut_with_a_note_and_the_page() {
        let summary = |step, markdown: String| StepSummary { step, name: format!("s{step}"), markdown, cut: false };
        let summaries = [summary(1, "# one\n".to_string()), summary(2, "x".repeat(70_000))];
        let page = OutputsPage { summaries: &summaries, artifacts: &[], build_url: "http://x/a/b/1" };
        let text = with_outputs("| table |\n", &page);
        assert!(text.len() <= MAX_OUTPUT_BYTES);
        assert!(text.starts_with("| table |\n\n### s1\n\n# one\n\n### s2\n"), "{}", &text[..40]);
        assert!(text.ends_with(&cut_note("http://x/a/b/1")));
    }

    #[test]
    fn a_huge_tail_fits_githubs_limit_and_keeps_its_end() {
        let tail = format!("{}THE END\n", "é".repeat(50_000));
        let text = failure_text("build", &tail, "http://x/1");
        assert!(text.len() <= MAX_OUTPUT_BYTES);
        assert!(text.contains("THE END"));
        assert!(text.starts_with("Last lines of step `build`"));
    }
}
