//! What a hostile step leaves in its workspace cannot hurt the worker.

mod support;

use greenlight::runner::workspace::of_stage;
use greenlight::store::Status;
use support::CheckRunState::{Failure, InProgress, Success};
use support::Scenario;

#[tokio::test]
async fn twenty_thousand_nested_directories_leave_the_server_running_and_the_workspace_removed() {
    let ctx = Scenario::new().with_workers().start().await;
    // Deeper than a recursive remove's stack and longer than any path (PATH_MAX).
    let deep = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: nest\n  commands:\n  - perl -e 'for (1..20000) { mkdir q(d) or die; chdir q(d) or die }'\n  - echo nested\n";

    let (sha, build) = ctx.push_and_finish("main", deep).await;
    ctx.expect_check_run(&sha, "default (push)", Success).await;
    assert!(ctx.log(&build, "nest").await.ends_with("nested\n"));

    let workspace = of_stage(&ctx.app.data_dir.path().join("workspaces"), build.stages[0]);
    // Removing 20,000 nested directories is slow on a loaded disk: allow it more than the usual wait.
    let removed = || async { (!workspace.exists()).then_some(()) };
    support::wait::within(std::time::Duration::from_secs(120), "the workspace to be removed", removed).await;
    let (next, build) = ctx.push_and_finish("main", support::ONE_ECHO_STEP).await;
    ctx.expect_check_run(&next, "default (push)", Success).await;
    assert_eq!(build.status, Status::Success, "the server still runs builds");
}

#[tokio::test]
async fn a_data_directory_the_sandbox_user_cannot_pass_through_still_builds_to_success() {
    // As `greenlight serve` run by root from a checkout under /root (mode 0700).
    let ctx = Scenario::new().with_workers().private_data_dir().start().await;
    let files = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: files\n  commands:\n  - test -f .drone.yml\n  - echo fine > made.txt\n  - cat made.txt\n";

    let (sha, build) = ctx.push_and_finish("main", files).await;
    ctx.expect_check_run(&sha, "default (push)", Success).await;
    assert!(ctx.log(&build, "files").await.ends_with("fine\n"));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(ctx.app.data_dir.path()).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "the data directory stayed private");
}

#[tokio::test]
async fn a_step_cannot_make_a_user_namespace_of_its_own() {
    let ctx = Scenario::new().with_workers().start().await;
    // Root with every capability inside a nested namespace is the start of most kernel exploits.
    let nested = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: escape\n  commands:\n  - unshare -r id -u\n";

    let (sha, build) = ctx.push_and_finish("main", nested).await;
    ctx.expect_check_run(&sha, "default (push)", Failure).await;
    let log = ctx.log(&build, "escape").await;
    assert!(log.contains("unshare failed"), "{log}");
    assert!(!log.lines().any(|l| l == "0"), "no uid 0 inside: {log}");
}

#[tokio::test]
async fn a_killed_workers_workspace_is_swept_when_a_worker_starts_on_its_data_directory() {
    let ctx = Scenario::new().start().await;
    let mut killed = ctx.start_worker_process(30);
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &killed.pipeline_stuck_here())]).await;
    ctx.expect_check_run(&sha, "default (push)", InProgress).await;
    let workspaces = killed.workspaces();
    let stage_dirs = move || -> Vec<String> {
        let entries = std::fs::read_dir(&workspaces).into_iter().flatten().flatten();
        entries.map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("stage-")).collect()
    };
    // The stage is past its clone: its step blocks in the workspace.
    support::wait::until("the stage's workspace to hold its clone", || async {
        let dirs = stage_dirs();
        dirs.iter().any(|d| killed.workspaces().join(d).join(".drone.yml").exists()).then_some(())
    })
    .await;
    killed.kill();
    assert_eq!(stage_dirs().len(), 1, "the killed worker left its workspace");

    // Another worker (its own data directory) takes the stage over and finishes it…
    let _other = ctx.start_worker_process(30);
    ctx.expect_check_run(&sha, "default (push)", Success).await;
    ctx.expect_build_done(1).await;
    // …and a worker started on the killed one's data directory removes what it left.
    let _restarted = ctx.restart_worker_process(&killed, 30);
    support::wait::until("the old workspace to be swept", || async { stage_dirs().is_empty().then_some(()) }).await;
}

#[tokio::test]
async fn the_clone_token_can_only_read_the_one_repository() {
    let ctx = Scenario::new().with_workers().start().await;

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", support::ONE_ECHO_STEP)]).await;
    ctx.expect_check_run(&sha, "default (push)", Success).await;

    let narrowed = ctx.github.narrowed_tokens();
    assert_eq!(narrowed.len(), 1, "one clone token, minted for the clone: {narrowed:?}");
    let (token, repositories, permissions) = &narrowed[0];
    assert_eq!(repositories, &vec!["widget".to_string()]);
    assert_eq!(permissions.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(), vec![("contents", "read")]);
    assert_eq!(ctx.github.try_create_status(&ctx.repo, &sha.0, token).await, 403, "it cannot set a status");
}

#[tokio::test]
async fn system_calls_builds_never_need_are_refused() {
    let ctx = Scenario::new().with_workers().start().await;
    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) answers a keyring id where it is allowed.
    let probe = format!(
        "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: probe\n  commands:\n  - |\n    perl -e 'my $r = syscall({}, 0, -3, 0); print $r == -1 ? \"keyctl refused, $!\\n\" : \"keyctl allowed, $r\\n\"'\n",
        libc::SYS_keyctl
    );

    let (sha, build) = ctx.push_and_finish("main", &probe).await;
    ctx.expect_check_run(&sha, "default (push)", Success).await;
    let log = ctx.log(&build, "probe").await;
    assert!(log.contains("keyctl refused, Operation not permitted"), "{log}");
}
