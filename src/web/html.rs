//! The HTML of the pages, and the script that keeps a build page live.

use crate::store::{Artifact, Build, LogTail, Repo, Stage, Status, StepRecord, StepSummary};

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#222}\
a{color:#0b5cad}table{border-collapse:collapse;width:100%}td,th{padding:.3rem .5rem;border-bottom:1px solid #ddd;text-align:left}\
.status{display:inline-block;padding:.1rem .5rem;border-radius:.8rem;color:#fff;font-size:.85rem;background:#888}\
.status-success{background:#2da44e}.status-failure,.status-error,.status-killed{background:#cf222e}.status-running{background:#bf8700}\
.status-pending,.status-waiting_on_dependencies{background:#6e7781}.status-skipped{background:#aaa}\
pre{background:#111;color:#ddd;padding:.6rem;overflow-x:auto;font-size:.8rem;max-height:40rem;overflow-y:auto}\
.step{margin:.8rem 0}.meta{color:#555}.error{color:#cf222e}";

/// A whole page around `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{} · greenlight</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

fn status(status: Status, id: &str) -> String {
    format!("<span class=\"status status-{0}\" id=\"{id}\" data-status=\"{0}\">{0}</span>", status.as_str())
}

fn when(ts: i64) -> String {
    if ts == 0 {
        return "–".to_string();
    }
    chrono::DateTime::from_timestamp(ts, 0).map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default()
}

fn duration(started: i64, stopped: i64) -> String {
    if started == 0 || stopped < started {
        return String::new();
    }
    format!("{}s", stopped - started)
}

/// `/{owner}/{repo}`: the newest builds, and for the admin the badge's URL.
pub fn build_list(repo: &Repo, builds: &[Build], badge: Option<&str>) -> String {
    let slug = repo.slug();
    let mut rows = String::new();
    for b in builds {
        rows.push_str(&format!(
            "<tr><td><a href=\"/{slug}/{n}\">#{n}</a></td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            status(b.status, &format!("build-status-{}", b.number)),
            escape(b.commit.event.as_str()),
            escape(&b.commit.git_ref),
            escape(b.commit.sha.short()),
            escape(b.commit.message.lines().next().unwrap_or_default()),
            when(b.created),
            n = b.number,
        ));
    }
    if builds.is_empty() {
        rows.push_str("<tr><td colspan=\"7\">No builds yet.</td></tr>");
    }
    let badge = badge.map(|url| format!("<p class=\"meta\">Badge: <code id=\"badge-url\">{}</code></p>", escape(url))).unwrap_or_default();
    page(
        &slug,
        &format!(
            "<h1>{}</h1>{badge}<table><thead><tr><th>build</th><th>status</th><th>event</th><th>ref</th><th>commit</th><th>message</th><th>created</th></tr></thead><tbody>{rows}</tbody></table>",
            escape(&slug)
        ),
    )
}

/// `/{owner}/{repo}/{number}`: the build, its stages and steps, each step's
/// log (its tail within the page's caps), and the script that follows it
/// live. With a login session's `csrf` token, Restart and Cancel buttons
/// and a logout form, which send it back.
pub fn build_page(
    repo: &Repo,
    build: &Build,
    stages: &[Stage],
    logs: &[((i64, i64), LogTail)],
    outputs: &Outputs,
    csrf: Option<&str>,
) -> String {
    let slug = repo.slug();
    let mut body = format!(
        "<p><a href=\"/{0}\">{0}</a></p><h1>Build #{1} {2}</h1>\
         <p class=\"meta\">{3} · <code>{4}</code> · commit <code>{5}</code> by {6} · created {7} · started {8} · finished <span id=\"build-finished\">{9}</span></p>\
         <p>{10}</p>",
        escape(&slug),
        build.number,
        status(build.status, "build-status"),
        escape(build.commit.event.as_str()),
        escape(&build.commit.git_ref),
        escape(&build.commit.sha.0),
        escape(if build.commit.author.login.is_empty() { &build.commit.sender } else { &build.commit.author.login }),
        when(build.created),
        when(build.started),
        when(build.finished),
        escape(&build.commit.message),
    );
    if !build.error.is_empty() {
        body.push_str(&format!("<p class=\"error\">{}</p>", escape(&build.error)));
    }
    if let Some(csrf) = csrf {
        body.push_str(&admin_controls(csrf));
    }
    for stage in stages {
        body.push_str(&format!(
            "<section id=\"stage-{0}\"><h2>{1} {2}</h2>",
            stage.number,
            escape(&stage.name),
            status(stage.status(), &format!("stage-status-{}", stage.number))
        ));
        if stage.is_filtered_out() {
            body.push_str(&format!("<p>Not run: {}.</p>", escape(&stage.filtered_out)));
        }
        for step in &stage.steps {
            let key = (stage.number, step.number);
            let empty = LogTail::default();
            let tail = logs.iter().find(|(k, _)| *k == key).map_or(&empty, |(_, t)| t);
            body.push_str(&step_html(&slug, build.number, stage.number, step, tail, outputs));
        }
        body.push_str("</section>");
    }
    body.push_str(&outputs.artifacts_html(&slug, build.number));
    body.push_str(&format!("<script>const GL = {{slug: \"{}\", number: {}}};\n{SCRIPT}</script>", escape(&slug), build.number));
    if csrf.is_some() {
        body.push_str(&format!("<script>{ACTIONS}</script>"));
    }
    page(&format!("{slug} #{}", build.number), &body)
}

/// One step on the build page: its name, status and duration, its log's
/// tail (with a link to the full log when cut), and its job summary.
fn step_html(slug: &str, build: i64, stage: i64, step: &StepRecord, tail: &LogTail, outputs: &Outputs) -> String {
    let shown = &tail.lines;
    let note = if shown.len() < tail.total {
        format!(
            "<p class=\"meta\">Showing the last {} of {} lines. <a href=\"/api/repos/{slug}/builds/{build}/logs/{stage}/{}\">Full log</a></p>",
            shown.len(),
            tail.total,
            step.number
        )
    } else {
        String::new()
    };
    let text: String = shown.iter().map(|l| escape(&l.out)).collect();
    let last = shown.last().map_or(-1, |l| l.pos);
    format!(
        "<div class=\"step\"><h3>{0} {1} <span class=\"meta\" id=\"step-duration-{2}-{3}\">{4}</span></h3>{5}<pre id=\"log-{2}-{3}\" data-last-pos=\"{6}\">{7}</pre>{8}</div>",
        escape(&step.name),
        status(step.status, &format!("step-status-{stage}-{}", step.number)),
        stage,
        step.number,
        duration(step.started, step.stopped),
        note,
        last,
        text,
        outputs.summary_html(stage, step.number),
    )
}

/// What a build's steps left behind, shown on its page.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Job summaries (masked), with their stage's number.
    pub summaries: Vec<(i64, StepSummary)>,
    /// Artifacts uploaded.
    pub artifacts: Vec<Artifact>,
}

impl Outputs {
    /// A step's job summary, rendered safely (see [`super::markdown`]).
    fn summary_html(&self, stage: i64, step: i64) -> String {
        let Some((_, summary)) = self.summaries.iter().find(|(n, s)| *n == stage && s.step == step) else {
            return String::new();
        };
        let cut = if summary.cut {
            "<p class=\"meta\">This summary was cut: the step wrote more than is kept (1 MiB), or the page holds no more (256 KiB of summaries).</p>"
        } else {
            ""
        };
        format!("<div class=\"summary\" id=\"summary-{stage}-{step}\">{}{cut}</div>", super::markdown::render(&summary.markdown))
    }

    /// The artifacts' list with sizes and download links.
    fn artifacts_html(&self, slug: &str, number: i64) -> String {
        if self.artifacts.is_empty() {
            return String::new();
        }
        let mut out = String::from("<section id=\"artifacts\"><h2>Artifacts</h2><ul>");
        for artifact in &self.artifacts {
            out.push_str(&format!(
                "<li><a class=\"artifact\" href=\"{}\" download>{}</a> {} <span class=\"meta\">stage {}, step {}</span></li>",
                escape(&crate::api::artifacts::download_path(slug, number, artifact)),
                escape(&artifact.name),
                escape(&crate::runner::limits::human_bytes(artifact.size)),
                artifact.stage,
                escape(&artifact.step),
            ));
        }
        out.push_str("</ul></section>");
        out
    }
}

/// Restart and Cancel (sent with the session's CSRF token, which the page
/// carries in a `<meta>`), and a logout form carrying it too.
fn admin_controls(csrf: &str) -> String {
    format!(
        "<meta name=\"csrf-token\" content=\"{0}\"><p class=\"actions\"><button type=\"button\" data-action=\"restart\">Restart</button> \
         <button type=\"button\" data-action=\"cancel\">Cancel</button> <span id=\"action-result\" class=\"meta\"></span></p>\
         <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{0}\"><button type=\"submit\">Log out</button></form>",
        escape(csrf)
    )
}

/// The buttons of [`admin_controls`]: the API call with the CSRF token in
/// its header (the browser adds `Origin` itself); a restart opens the new build.
const ACTIONS: &str = r#"
const CSRF = document.querySelector("meta[name=csrf-token]").content;
document.querySelectorAll("button[data-action]").forEach((button) => {
  button.addEventListener("click", async () => {
    const restart = button.dataset.action === "restart";
    const response = await fetch("/api/repos/" + GL.slug + "/builds/" + GL.number, {method: restart ? "POST" : "DELETE", headers: {"X-CSRF-Token": CSRF}});
    const result = await response.json().catch(() => ({}));
    if (response.ok && restart && result && result.number) { location.href = "/" + GL.slug + "/" + result.number; return; }
    document.getElementById("action-result").textContent = response.ok ? "done" : (result.message || response.statusText);
  });
});
"#;

/// Follows the build live: statuses from `/api/stream/{owner}/{repo}`, log
/// lines from each running step's stream, appended without a reload.
const SCRIPT: &str = r#"
const MAX_LINES = 5000;
const following = new Set();
function setStatus(id, status) {
  const el = document.getElementById(id);
  if (!el || el.dataset.status === status) return false;
  el.dataset.status = status; el.textContent = status; el.className = "status status-" + status;
  return true;
}
function follow(stage, step) {
  const key = stage + "-" + step;
  if (following.has(key)) return;
  following.add(key);
  const pre = document.getElementById("log-" + key);
  if (!pre) return;
  const source = new EventSource("/api/stream/" + GL.slug + "/" + GL.number + "/" + stage + "/" + step);
  source.onmessage = (event) => {
    const line = JSON.parse(event.data);
    if (line.pos <= Number(pre.dataset.lastPos)) return;
    pre.dataset.lastPos = line.pos;
    pre.appendChild(document.createTextNode(line.out));
    while (pre.childNodes.length > MAX_LINES) pre.removeChild(pre.firstChild);
    pre.scrollTop = pre.scrollHeight;
  };
  source.addEventListener("error", () => source.close());
}
function update(build) {
  setStatus("build-status", build.status);
  if (build.finished) document.getElementById("build-finished").textContent = new Date(build.finished * 1000).toISOString().replace("T", " ").replace(".000Z", " UTC");
  for (const stage of build.stages || []) {
    setStatus("stage-status-" + stage.number, stage.status);
    for (const step of stage.steps || []) {
      const changed = setStatus("step-status-" + stage.number + "-" + step.number, step.status);
      if (changed && step.status !== "pending" && step.status !== "skipped") follow(stage.number, step.number);
      if (step.stopped && step.started) { const d = document.getElementById("step-duration-" + stage.number + "-" + step.number); if (d) d.textContent = (step.stopped - step.started) + "s"; }
    }
  }
}
document.querySelectorAll("[id^=step-status-]").forEach((el) => {
  if (el.dataset.status === "running") { const [stage, step] = el.id.slice("step-status-".length).split("-"); follow(stage, step); }
});
if (!["success", "failure", "error", "killed", "skipped", "declined"].includes(document.getElementById("build-status").dataset.status)) {
  const builds = new EventSource("/api/stream/" + GL.slug);
  builds.onmessage = (event) => { const repo = JSON.parse(event.data); if (repo.build && repo.build.number === GL.number) update(repo.build); };
  builds.onopen = () => fetch("/api/repos/" + GL.slug + "/builds/" + GL.number).then((r) => r.json()).then(update).catch(() => {});
}
"#;
