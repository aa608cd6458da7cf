//! Annotations from step output reach the check run, in batches GitHub accepts.

mod support;

use support::{FakeGitHub, TestApp, Webhook};

#[tokio::test]
async fn a_hundred_and_twenty_annotations_all_land_in_batches_of_at_most_fifty() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let steps = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: lint\n  commands:\n  - |-\n    for i in $(seq 1 120); do echo \"::warning file=src/lib.rs,line=$i::warning number $i\"; done\n";
    let sha = repo.push("main", &[(".drone.yml", steps)]);
    let app = TestApp::with_workers(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;

    let run = github.expect_check_run(&repo, &sha, "default (push)", "success").await;
    assert_eq!(run.annotations.len(), 120, "batches: {:?}", run.annotation_batches);
    assert!(run.annotation_batches.iter().all(|n| *n <= 50), "{:?}", run.annotation_batches);
    let mut lines: Vec<u64> = run.annotations.iter().map(|a| a["start_line"].as_u64().unwrap()).collect();
    lines.sort();
    assert_eq!(lines, (1..=120).collect::<Vec<_>>());
    assert!(run.summary.unwrap().contains("**Annotations:** 0 failure(s), 120 warning(s), 0 notice(s)."));
}

#[tokio::test]
async fn compiler_and_workflow_lines_with_absolute_paths_annotate_the_repository_path() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let commands = [
        "echo \"$DRONE_WORKSPACE/src/main.c:12:5: error: expected ';' before '}' token\"",
        "echo \"::notice file=$DRONE_WORKSPACE/docs/guide.md,line=3,title=Style::Prefer short lines\"",
        "echo \"/usr/include/stdio.h:1:1: error: outside the repository\"",
        "exit 1",
    ];
    let listed: String = commands.iter().map(|c| format!("  - |-\n    {c}\n")).collect();
    let steps = format!("kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: build\n  commands:\n{listed}");
    let sha = repo.push("main", &[(".drone.yml", &steps)]);
    let app = TestApp::with_workers(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;

    let run = github.expect_check_run(&repo, &sha, "default (push)", "failure").await;
    let found: Vec<(String, u64, String)> = run
        .annotations
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_string(),
                a["start_line"].as_u64().unwrap(),
                a["annotation_level"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(found, vec![("src/main.c".to_string(), 12, "failure".to_string()), ("docs/guide.md".to_string(), 3, "notice".to_string())]);
    assert_eq!(run.annotations[0]["start_column"], 5);
    assert_eq!(run.annotations[1]["title"], "Style");
    let build = app.expect_build_done(repo.id, 1).await;
    assert!(app.log(&build, "build").await.contains("/usr/include/stdio.h:1:1: error: outside the repository"), "kept in the log");
}

#[tokio::test]
async fn annotations_reach_the_check_run_while_the_stage_still_runs() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let steps = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: slow-lint\n  commands:\n  - |-\n    echo \"src/a.rs:1:1: warning: early\"; sleep 14\n";
    let sha = repo.push("main", &[(".drone.yml", steps)]);
    let app = TestApp::with_workers(&github).await;

    app.deliver(&Webhook::push(&repo, "main", &sha)).await;

    let running = github
        .wait_for(|| github.check_runs(&repo, &sha).into_iter().find(|r| r.status == "in_progress" && !r.annotations.is_empty()))
        .await
        .expect("the annotation was published before the stage ended");
    assert_eq!(running.annotations[0]["path"], "src/a.rs");
    let done = github.expect_check_run(&repo, &sha, "default (push)", "success").await;
    assert_eq!(done.annotations.len(), 1, "published once, not again at the end");
}
