//! Annotations from step output reach the check run, in batches GitHub accepts.

mod support;

use support::CheckRunState::{Failure, InProgress, Success};
use support::Scenario;
use support::fake_github::AnnotationLevel;

#[tokio::test]
async fn a_hundred_and_twenty_annotations_all_land_in_batches_of_at_most_fifty() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: lint\n  commands:\n  - |-\n    for i in $(seq 1 120); do echo \"::warning file=src/lib.rs,line=$i::warning number $i\"; done\n";

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", steps)]).await;

    let run = ctx.expect_check_run(&sha, "default (push)", Success).await;
    assert_eq!(run.annotations.len(), 120, "batches: {:?}", run.annotation_batches);
    assert!(run.annotation_batches.iter().all(|n| *n <= 50), "{:?}", run.annotation_batches);
    let mut lines: Vec<u64> = run.annotations.iter().map(|a| a.start_line).collect();
    lines.sort();
    assert_eq!(lines, (1..=120).collect::<Vec<_>>());
    assert!(run.summary.unwrap().contains("**Annotations:** 0 failure(s), 120 warning(s), 0 notice(s)."));
}

#[tokio::test]
async fn compiler_and_workflow_lines_with_absolute_paths_annotate_the_repository_path() {
    let ctx = Scenario::new().with_workers().start().await;
    let commands = [
        "echo \"$DRONE_WORKSPACE/src/main.c:12:5: error: expected ';' before '}' token\"",
        "echo \"::notice file=$DRONE_WORKSPACE/docs/guide.md,line=3,title=Style::Prefer short lines\"",
        "echo \"/usr/include/stdio.h:1:1: error: outside the repository\"",
        "exit 1",
    ];
    let listed: String = commands.iter().map(|c| format!("  - |-\n    {c}\n")).collect();
    let steps = format!("kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: build\n  commands:\n{listed}");

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &steps)]).await;

    let run = ctx.expect_check_run(&sha, "default (push)", Failure).await;
    let found: Vec<(&str, u64, AnnotationLevel)> =
        run.annotations.iter().map(|a| (a.path.as_str(), a.start_line, a.annotation_level)).collect();
    assert_eq!(found, vec![("src/main.c", 12, AnnotationLevel::Failure), ("docs/guide.md", 3, AnnotationLevel::Notice)]);
    assert_eq!(run.annotations[0].start_column, Some(5));
    assert_eq!(run.annotations[1].title.as_deref(), Some("Style"));
    let build = ctx.expect_build_done(1).await;
    assert!(ctx.log(&build, "build").await.contains("/usr/include/stdio.h:1:1: error: outside the repository"), "kept in the log");
}

#[tokio::test]
async fn annotations_reach_the_check_run_while_the_stage_still_runs() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: slow-lint\n  commands:\n  - |-\n    echo \"src/a.rs:1:1: warning: early\"; sleep 14\n";

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", steps)]).await;

    let running = ctx
        .expect_check_run_where(&sha, "in progress with an annotation (published before the stage ended)", |r| {
            r.state == InProgress && !r.annotations.is_empty()
        })
        .await;
    assert_eq!(running.annotations[0].path, "src/a.rs");
    let done = ctx.expect_check_run(&sha, "default (push)", Success).await;
    assert_eq!(done.annotations.len(), 1, "published once, not again at the end");
}

#[tokio::test]
async fn coloured_diagnostics_are_annotated_and_reach_github_without_escape_sequences() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: build\n  commands:\n  - |-\n    printf '\\033[1m%s/src/main.c:4:2: \\033[31merror:\\033[0m \\033[1mexpected\\033[0m x\\n' \"$DRONE_WORKSPACE\"\n";

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", steps)]).await;

    let run = ctx.expect_check_run(&sha, "default (push)", Success).await;
    let found: Vec<(&str, u64, &str)> = run.annotations.iter().map(|a| (a.path.as_str(), a.start_line, a.message.as_str())).collect();
    assert_eq!(found, vec![("src/main.c", 4, "expected x")]);
    let build = ctx.expect_build_done(1).await;
    assert!(ctx.log(&build, "build").await.contains("\x1b[31merror:"), "the stored log keeps its colours");
}
