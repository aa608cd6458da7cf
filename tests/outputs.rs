//! What steps leave behind: job summaries (`$DRONE_SUMMARY`) in their
//! stage's check run and on the build page, and artifacts uploaded after
//! a step, listed and downloaded through the API, shown on the build page,
//! kept on the data directory's disk or in an S3 bucket (a real
//! `moto_server`), and pruned with their build.

mod support;

use greenlight::config::RetentionConfig;
use support::CheckRunState::{Failure, Success};
use support::s3::TestS3;
use support::{Ctx, Scenario};

/// A step writing Markdown to both variables, one with a secret in it, a
/// table, and HTML that must not run on the build page.
const SUMMARIES: &str = r#"kind: pipeline
type: exec
name: default
steps:
- name: quiet
  commands:
  - echo nothing to say
- name: report
  environment:
    TOKEN:
      from_secret: deploy_token
  commands:
  - echo '## Coverage' >> "$DRONE_SUMMARY"
  - printf '| file | lines |\n|---|---|\n| main.rs | 93%% |\n' >> "$DRONE_SUMMARY"
  - echo "deployed with $TOKEN" >> "$GREENLIGHT_SUMMARY"
  - printf '\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n[click](javascript:alert(3))\n' >> "$DRONE_SUMMARY"
"#;

const SECRET: &str = "hunter2-but-longer-0451";

#[tokio::test]
async fn a_steps_summary_shows_under_its_name_after_the_step_table_masked_and_renders_safely_on_the_page() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.install().await;
    ctx.add_secret("deploy_token", SECRET, false).await;
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", SUMMARIES)]).await;

    let run = ctx.expect_check_run(&sha, "default (push)", Success).await;

    let summary = run.summary.unwrap();
    let table = summary.find("| step | status | duration |").expect("the step table");
    let heading = summary.find("\n### report\n\n## Coverage\n| file | lines |").expect("the step's summary under its name");
    assert!(table < heading, "the summaries come after the step table: {summary}");
    assert!(summary.contains("deployed with ********"), "{summary}");
    assert!(!summary.contains(SECRET));
    assert!(!summary.contains("### quiet"), "a step that wrote nothing has no heading");
    let page = ctx.browser().build_page(1).await.text;
    let shown = summary_on(&page, 1, 3);
    assert!(shown.contains("<h2>Coverage</h2>"), "rendered Markdown: {shown}");
    assert!(shown.contains("<td>main.rs</td>"), "a rendered table: {shown}");
    assert!(shown.contains("deployed with ********") && !page.contains(SECRET));
    assert!(shown.contains("click</a>"), "the link's text stays: {shown}");
    for bad in ["<script", "alert(1)", "onerror", "javascript:"] {
        assert!(!shown.contains(bad), "{bad} reached the page: {shown}");
    }
}

/// The HTML of step `step`'s summary on a build page (its log, which
/// shows the step's commands, is elsewhere).
fn summary_on(page: &str, stage: i64, step: i64) -> &str {
    let start = page.find(&format!("<div class=\"summary\" id=\"summary-{stage}-{step}\">")).expect("the step's summary");
    let end = start + page[start..].find("</div>").unwrap();
    &page[start..end]
}

#[tokio::test]
async fn summaries_past_githubs_limit_are_cut_with_a_note_and_a_link_to_the_build_page() {
    let ctx = Scenario::new().with_workers().start().await;
    let pipeline = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: big\n  commands:\n  - echo '# Big' >> $DRONE_SUMMARY\n  - yes 'a long line of results' | head -c 2000000 >> $DRONE_SUMMARY\n";
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", pipeline)]).await;

    let run = ctx.expect_check_run(&sha, "default (push)", Success).await;

    let summary = run.summary.unwrap();
    assert!(summary.len() <= 65_535, "{} bytes", summary.len());
    assert!(summary.contains("### big\n\n# Big\na long line of results\n"));
    assert!(
        summary.ends_with(&format!("Read them whole on the build page: {}/acme/widget/1*\n", support::app::PUBLIC_URL)),
        "{}",
        &summary[summary.len() - 300..]
    );
    let page = ctx.browser().build_page(1).await.text;
    assert!(page.contains("This summary was cut"), "the page says the step wrote more than 1 MiB");
}

#[tokio::test]
async fn a_background_process_holding_the_summary_pipe_delays_nothing_and_a_timed_out_step_loses_its_summary() {
    let ctx = Scenario::new().with_workers().start().await;
    let pipeline = "kind: pipeline\ntype: exec\nname: default\ngreenlight:\n  step_timeout: 2s\nsteps:\n- name: detached\n  commands:\n  - echo '# left running' >> $DRONE_SUMMARY\n  - sleep 300 &\n- name: stuck\n  commands:\n  - echo '# never read' >> $DRONE_SUMMARY\n  - sleep 300\n";
    let started = std::time::Instant::now();
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", pipeline)]).await;

    let run = ctx.expect_check_run(&sha, "default (push)", support::CheckRunState::TimedOut).await;

    assert!(started.elapsed() < std::time::Duration::from_secs(60), "took {:?}", started.elapsed());
    let summary = run.summary.unwrap();
    assert!(summary.contains("### detached\n\n# left running"), "{summary}");
    assert!(!summary.contains("never read"), "a step killed by its timeout runs no trap: {summary}");
}

/// A step leaving files, a symlink to a host file, a pattern matching
/// nothing; then a failing step leaving a crash log.
const ARTIFACTS: &str = r#"kind: pipeline
type: exec
name: default
steps:
- name: build
  commands:
  - mkdir -p dist
  - seq 1 50000 > dist/app.tar.gz
  - echo '<h1>report</h1>' > report.html
  - ln -s /etc/shadow dist/shadow.tar.gz
  artifacts: [dist/*.tar.gz, report.html, missing/*.zip]
- name: crash
  commands:
  - echo 'it broke' > crash.log
  - exit 3
  artifacts: [crash.log]
"#;

fn app_tar_gz() -> Vec<u8> {
    (1..=50000).map(|i| format!("{i}\n")).collect::<String>().into_bytes()
}

/// Runs [`ARTIFACTS`] and checks what the API, the page and the check run
/// say of its artifacts; `ctx.api()` may read the repository.
async fn artifacts_are_listed_downloaded_and_shown(ctx: &Ctx) {
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", ARTIFACTS)]).await;
    let run = ctx.expect_check_run(&sha, "default (push)", Failure).await;
    let build = ctx.expect_build_done(1).await;

    let listed = ctx.api().artifacts(1).await;
    let named: Vec<(&str, u64, &str)> = listed.iter().map(|a| (a.name.as_str(), a.size, a.step.as_str())).collect();
    assert_eq!(named, [("dist/app.tar.gz", app_tar_gz().len() as u64, "build"), ("report.html", 16, "build"), ("crash.log", 9, "crash")]);
    let download = ctx.api().download(&listed[0].url).await;
    assert_eq!(download.status, 200);
    assert_eq!(download.bytes, app_tar_gz(), "the same bytes");
    assert_eq!(download.header("content-type"), "application/octet-stream");
    assert_eq!(download.header("content-length"), app_tar_gz().len().to_string());
    assert_eq!(download.header("content-disposition"), "attachment; filename=\"app.tar.gz\"");
    assert_eq!(ctx.api().download(&listed[2].url).await.bytes, b"it broke\n", "a failed step's artifacts are uploaded");
    let log = ctx.log(&build, "build").await;
    assert!(
        log.contains("[greenlight] artifact dist/app.tar.gz (") && log.contains("[greenlight] artifact report.html (16 bytes)"),
        "{log}"
    );
    assert!(log.contains("dist/shadow.tar.gz refused: a symbolic link is not followed"), "{log}");
    assert!(log.contains("no file matches `missing/*.zip`"), "{log}");
    let summary = run.summary.unwrap();
    assert!(summary.contains("**Artifacts**") && summary.contains("- `dist/app.tar.gz`"), "{summary}");
}

#[tokio::test]
async fn artifacts_are_listed_and_downloaded_from_the_data_directory_and_a_guest_of_a_private_repository_gets_401() {
    let ctx = Scenario::new().with_workers().private_repo("acme/secret-sauce").start().await;

    artifacts_are_listed_downloaded_and_shown(&ctx).await;

    let listed = ctx.api().artifacts(1).await;
    assert_eq!(ctx.guest().artifacts_answer(1).await.status, 401);
    assert_eq!(ctx.guest().download(&listed[0].url).await.status, 401);
    let mut browser = ctx.browser();
    browser.log_in(support::app::API_TOKEN, 1).await;
    let page = browser.build_page(1).await.text;
    let path = listed[0].url.strip_prefix(support::app::PUBLIC_URL).unwrap();
    assert!(page.contains(&format!("href=\"{path}\"")) && page.contains("dist/app.tar.gz</a>"), "the page links the artifact");
    assert_eq!(ctx.artifact_objects().await.len(), 3, "no object for the symlink");
}

#[tokio::test]
async fn artifacts_download_from_an_s3_bucket() {
    let s3 = TestS3::start();
    let ctx = Scenario::new().with_workers().log_store(s3.log_store("ci")).start().await;

    artifacts_are_listed_downloaded_and_shown(&ctx).await;

    let objects = ctx.artifact_objects().await;
    let folder = format!("{}/1/", ctx.expect_build_done(1).await.id);
    assert_eq!(objects.len(), 3, "{objects:?}");
    assert!(objects.iter().all(|key| key.starts_with(&folder)), "kept in the bucket by build and stage: {objects:?}");
}

#[tokio::test]
async fn retention_prunes_a_builds_artifacts_with_it() {
    let ctx = Scenario::new().with_workers().start().await;
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", ARTIFACTS)]).await;
    ctx.expect_check_run(&sha, "default (push)", Failure).await;
    ctx.expect_build_done(1).await;
    ctx.push_and_finish("main", "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: ok\n  commands:\n  - 'true'\n").await;
    assert_eq!(ctx.artifact_objects().await.len(), 3);

    let report = ctx.sweep(RetentionConfig { keep_builds: 1, ..RetentionConfig::default() }).await;

    assert_eq!(report.pruned, 1);
    assert_eq!(ctx.api().artifacts_answer(1).await.status, 404, "the build and its records are gone");
    assert!(ctx.artifact_objects().await.is_empty(), "and its files");
}
