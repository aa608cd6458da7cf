//! Builds a team asks for beyond pushes and pull requests: GitHub's merge
//! queue, and path filters whose filtered-out pipelines still report, so a
//! required check never waits for a report that will not come.

mod support;

use support::CheckRunState::{Cancelled, Queued, Skipped, Success};
use support::stepper::Stepper;
use support::{Scenario, StatusState, Webhook};

/// `test` runs for pull requests and merge groups, saying what it was built for.
const QUEUE_PIPELINE: &str = "kind: pipeline\ntype: exec\nname: test\ntrigger:\n  event: [pull_request, merge_group]\nsteps:\n- name: unit\n  commands: [\"echo built $DRONE_BUILD_EVENT for $DRONE_BRANCH\"]\n";

/// `code` skips documentation-only changes; `docs` runs only for them.
const CODE_AND_DOCS: &str = "kind: pipeline\ntype: exec\nname: code\ntrigger:\n  paths:\n    exclude: [\"docs/**\", \"*.md\"]\nsteps:\n- name: build\n  commands: [echo code]\n---\nkind: pipeline\ntype: exec\nname: docs\ntrigger:\n  paths: [\"docs/**\"]\nsteps:\n- name: site\n  commands: [echo docs]\n";

/// The names a branch protection rule requires of a pull request: each
/// pipeline's check run and status context.
const REQUIRED: [&str; 2] = ["test (pull_request)", "greenlight/test/pull_request"];

#[tokio::test]
async fn a_merge_group_build_satisfies_the_required_check_named_as_the_pull_requests() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.push_pipeline("main", QUEUE_PIPELINE);
    let pr_head = ctx.open_pr(7, "feature", &[("src/lib.rs", "pub fn answer() -> u32 { 42 }")]).await;
    ctx.expect_required_checks_pass(&pr_head, &REQUIRED).await;

    let group = ctx.enter_merge_queue(7, &[("MERGED", "feature into main")]).await;

    ctx.expect_required_checks_pass(&group, &REQUIRED).await;
    let run = ctx.expect_check_run(&group, "test (pull_request)", Success).await;
    assert!(run.summary.unwrap().contains("This is a merge group build"), "the check run says what it built");
    let build = ctx.expect_build_done(2).await;
    assert_eq!((build.commit.event.as_str(), build.commit.sha.0.as_str()), ("merge_group", group.as_str()));
    ctx.expect_log_contains(&build, "unit", "built merge_group for main").await;
    assert_eq!(ctx.api().build(2).await.body["event"], "merge_group");
}

#[tokio::test]
async fn a_destroyed_merge_group_cancels_its_build() {
    let ctx = Scenario::new().start().await;
    ctx.push_pipeline("main", QUEUE_PIPELINE);
    let group = ctx.enter_merge_queue(8, &[("MERGED", "feature into main")]).await;
    ctx.expect_check_run(&group, "test (pull_request)", Queued).await;

    let answer = ctx.leave_merge_queue(8, &group).await;

    assert_eq!(answer.status, 202);
    let run = ctx.expect_check_run(&group, "test (pull_request)", Cancelled).await;
    assert!(run.summary.unwrap().contains("the merge group was destroyed"), "the check run says why");
    assert_eq!(ctx.expect_build_done(1).await.status, greenlight::store::Status::Killed);
}

#[tokio::test]
async fn a_merge_group_destroyed_before_its_build_was_planned_gets_no_build() {
    let mut gl = Stepper::new().await;
    let base = gl.repo.push("main", &[(".drone.yml", QUEUE_PIPELINE)]);
    let group = gl.repo.push("gh-readonly-queue/main/pr-3", &[("MERGED", "pr 3")]);

    // The planner meets the `destroyed` first (deliveries are planned concurrently).
    gl.queue(&Webhook::merge_group_destroyed(&gl.repo, 3, &group, &base)).await;
    gl.queue(&Webhook::merge_group_checks_requested(&gl.repo, 3, &group, &base)).await;
    assert_eq!(gl.plan().await, 2);

    assert!(gl.builds().await.is_empty());
    assert!(gl.github.check_runs(&gl.repo, &group).is_empty(), "nothing waits on GitHub either");
}

#[tokio::test]
async fn a_docs_only_change_skips_the_code_pipeline_with_a_skipped_check_and_runs_the_docs_pipeline() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.push_pipeline("main", CODE_AND_DOCS);

    let sha = ctx.open_pr(4, "typo", &[("docs/install.md", "Run `greenlight serve`.")]).await;

    ctx.expect_check_run(&sha, "docs (pull_request)", Success).await;
    let skipped = ctx.expect_check_run(&sha, "code (pull_request)", Skipped).await;
    assert_eq!(skipped.title.as_deref(), Some("Skipped: no changed file matches its paths"));
    let status = ctx.expect_status(&sha, "greenlight/code/pull_request", StatusState::Success).await;
    assert_eq!(status.description, "skipped: no changed file matches its paths");
    ctx.expect_required_checks_pass(&sha, &["code (pull_request)", "greenlight/code/pull_request", "docs (pull_request)"]).await;
    let build = ctx.expect_build_done(1).await;
    let stages: Vec<(String, &str)> = ctx.stages(&build).await.into_iter().map(|s| (s.name.clone(), s.status().as_str())).collect();
    assert_eq!(stages, [("docs".to_string(), "success"), ("code".to_string(), "skipped")]);
    assert!(ctx.browser().build_page(1).await.text.contains("Not run: no changed file matches its paths."));
}

#[tokio::test]
async fn a_code_change_runs_the_code_pipeline_and_skips_the_docs_one() {
    let ctx = Scenario::new().start().await;
    ctx.push_pipeline("main", CODE_AND_DOCS);

    let sha = ctx.open_pr(5, "fix", &[("src/lib.rs", "pub fn fixed() {}")]).await;

    ctx.expect_check_run(&sha, "code (pull_request)", Queued).await;
    ctx.expect_check_run(&sha, "docs (pull_request)", Skipped).await;
}

#[tokio::test]
async fn report_skipped_false_reports_nothing_for_a_filtered_out_pipeline() {
    let ctx = Scenario::new().start().await;
    ctx.push_pipeline("main", &format!("greenlight:\n  report_skipped: false\n{CODE_AND_DOCS}"));

    let sha = ctx.open_pr(6, "typo", &[("docs/install.md", "Run it.")]).await;

    ctx.expect_check_run(&sha, "docs (pull_request)", Queued).await;
    ctx.settle().await;
    let names: Vec<String> = ctx.check_runs(&sha).into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["docs (pull_request)"]);
    assert!(ctx.statuses(&sha).iter().all(|s| s.context != "greenlight/code/pull_request"));
}

/// `code` runs for changes under src/, `site` for changes under site/.
const CODE_AND_SITE: &str = "kind: pipeline\ntype: exec\nname: code\ntrigger:\n  paths: [\"src/**\"]\nsteps:\n- name: build\n  commands: [echo code]\n---\nkind: pipeline\ntype: exec\nname: site\ntrigger:\n  paths: [\"site/**\"]\nsteps:\n- name: publish\n  commands: [echo site]\n";

#[tokio::test]
async fn a_push_of_25_commits_still_sees_every_changed_file() {
    let ctx = Scenario::new().start().await;
    let before = ctx.push_pipeline("main", CODE_AND_SITE);

    // The only code change is the oldest commit: not among the 20 a truncated payload lists.
    let head = ctx
        .push_commits_and_deliver("main", &before, 25, |i| match i {
            0 => vec![("src/lib.rs".to_string(), "pub fn first() {}".to_string())],
            n => vec![(format!("docs/page-{n}.md"), format!("page {n}"))],
        })
        .await;

    ctx.expect_check_run(&head, "code (push)", Queued).await;
    ctx.expect_check_run(&head, "site (push)", Skipped).await;
}

#[tokio::test]
async fn more_changed_files_than_github_lists_run_the_pipeline_rather_than_skip_it() {
    let ctx = Scenario::new().start().await;
    ctx.push_pipeline("main", CODE_AND_DOCS);
    let pages: Vec<(String, String)> = (0..301).map(|n| (format!("docs/page-{n}.md"), format!("page {n}"))).collect();
    let files: Vec<(&str, &str)> = pages.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();

    let sha = ctx.open_pr(9, "many-pages", &files).await;

    ctx.expect_check_run(&sha, "code (pull_request)", Queued).await;
    ctx.expect_check_run(&sha, "docs (pull_request)", Queued).await;
}
