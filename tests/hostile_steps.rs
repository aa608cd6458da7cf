//! What a hostile step leaves in its workspace cannot hurt the worker.

mod support;

use greenlight::config::RunnerConfig;
use greenlight::runner::workspace::{CHECKOUT_DIR, checkout_of, image_of, of_stage};
use greenlight::store::Status;
use std::path::Path;
use support::CheckRunState::{Failure, InProgress, Success};
use support::Scenario;
use support::app::{mounts_under, runner_config};

/// The cap of the capped tests: small, so filling it takes no time.
const CAP_MB: u64 = 64;

/// In-process workers whose workspaces are capped at [`CAP_MB`].
fn capped() -> RunnerConfig {
    RunnerConfig { workspace_cap: Some(CAP_MB << 20), ..runner_config() }
}

/// Free bytes of the filesystem holding `path`.
fn free_bytes(path: &Path) -> u64 {
    let stats = rustix::fs::statvfs(path).unwrap();
    stats.f_bavail * stats.f_frsize
}

/// Waits until the workspace at `dir` is gone: no directory, no image, nothing mounted.
async fn expect_removed(dir: &Path) {
    support::wait::until("the workspace, its image and its mount to be removed", || async {
        (!dir.exists() && !image_of(dir).exists() && mounts_under(dir.parent().unwrap()).is_empty()).then_some(())
    })
    .await
}

#[tokio::test]
async fn twenty_thousand_nested_directories_leave_the_server_running_and_the_workspace_removed() {
    let ctx = Scenario::new().with_workers().start().await;
    // Deeper than a recursive remove's stack and longer than any path (PATH_MAX).
    let deep = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: nest\n  commands:\n  - perl -e 'for (1..20000) { mkdir q(d) or die; chdir q(d) or die }'\n  - echo nested\n";

    let (sha, build) = ctx.push_and_finish("main", deep).await;
    let run = ctx.expect_check_run(&sha, "default (push)", Success).await;
    assert!(ctx.log(&build, "nest").await.ends_with("nested\n"));
    // This one ran without a cap (`rm -rf` removes the tree), and the check run says so.
    assert!(run.summary.as_deref().unwrap_or_default().contains("no size cap (`GREENLIGHT_WORKSPACE_MB=0`)"), "{run:?}");

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
    // Capped: what the killed worker leaves is a mounted filesystem and its image.
    let mut killed = ctx.start_capped_worker_process(30, CAP_MB);
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", &killed.pipeline_stuck_here())]).await;
    ctx.expect_check_run(&sha, "default (push)", InProgress).await;
    let workspaces = killed.workspaces();
    let leftovers = move || -> Vec<String> {
        let entries = std::fs::read_dir(&workspaces).into_iter().flatten().flatten();
        let mut names: Vec<String> =
            entries.map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("stage-")).collect();
        names.sort();
        names
    };
    // The stage is past its clone: its step blocks in the workspace.
    support::wait::until("the stage's workspace to hold its clone", || async {
        let names = leftovers();
        names.iter().any(|d| killed.workspaces().join(d).join(CHECKOUT_DIR).join(".drone.yml").exists()).then_some(())
    })
    .await;
    killed.kill();
    let names = leftovers();
    assert_eq!(names.len(), 2, "the killed worker left its workspace and its image: {names:?}");
    assert_eq!(names[1], format!("{}.img", names[0]));
    assert_eq!(mounts_under(&killed.workspaces()), vec![killed.workspaces().join(&names[0])], "still mounted");

    // Another worker (its own data directory) takes the stage over and finishes it…
    let _other = ctx.start_capped_worker_process(30, CAP_MB);
    ctx.expect_check_run(&sha, "default (push)", Success).await;
    let stage = ctx.expect_build_done(1).await.stages[0];
    // The sweep leaves a stage whose lease someone holds: wait until the other worker let go.
    support::wait::until("the other worker to release the stage", || async {
        let free = ctx.app.store().acquire_lease(stage, "test", std::time::Duration::from_secs(1)).await.unwrap();
        free.then_some(())
    })
    .await;
    ctx.app.store().release_lease(stage, "test").await.unwrap();
    // …and a worker started on the killed one's data directory removes what it left.
    let _restarted = ctx.restart_worker_process(&killed, 30);
    support::wait::until("the old workspace to be swept", || async { leftovers().is_empty().then_some(()) }).await;
    assert!(mounts_under(&killed.workspaces()).is_empty(), "unmounted");
}

#[tokio::test]
async fn a_normal_build_succeeds_under_a_workspace_cap() {
    let ctx = Scenario::new().runner(capped()).start().await;
    let pipeline = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: work\n  commands:\n  - test -f .drone.yml\n  - head -c 16M /dev/zero > data\n  - df -B1M --output=size . | tail -n 1\n";

    let (sha, build) = ctx.push_and_finish("main", pipeline).await;
    let run = ctx.expect_check_run(&sha, "default (push)", Success).await;
    assert!(!run.summary.as_deref().unwrap_or_default().contains("no size cap"), "{run:?}");
    let log = ctx.log(&build, "work").await;
    let size: u64 = log.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("df's size last: {log}"));
    assert!(size <= CAP_MB, "the workspace is a filesystem of at most the cap: {size} MiB");
    expect_removed(&of_stage(&ctx.app.data_dir.path().join("workspaces"), build.stages[0])).await;
}

#[tokio::test]
async fn a_step_writing_past_the_workspace_cap_fails_and_the_host_disk_is_untouched() {
    let ctx = Scenario::new().runner(capped()).start().await;
    // 4 GiB against a 64 MiB cap; the step then waits for the test to look at the disk.
    let fill = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: fill\n  commands:\n  - |\n    head -c 4G /dev/zero > fill || { echo \"write failed with $?\"; until [ -e release ]; do sleep 0.05; done; exit 1; }\n  - echo filled\n";
    let free_before = free_bytes(ctx.app.data_dir.path());

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", fill)]).await;
    let build = ctx.expect_builds(1).await.remove(0);
    let log = ctx.expect_log_contains(&build, "fill", "write failed with 1").await;
    assert!(log.contains("No space left on device"), "{log}");
    let workspace = of_stage(&ctx.app.data_dir.path().join("workspaces"), build.stages[0]);
    use std::os::unix::fs::MetadataExt;
    let allocated = std::fs::metadata(image_of(&workspace)).unwrap().blocks() * 512;
    assert!(allocated <= CAP_MB << 20, "the image takes {allocated} bytes of host disk, past the cap");
    // Other processes share the disk: allow them some, far below the 4 GiB the step tried.
    let used = free_before.saturating_sub(free_bytes(ctx.app.data_dir.path()));
    assert!(used < 512 << 20, "the host lost {used} bytes of free disk");
    std::fs::write(checkout_of(&ctx.app.data_dir.path().join("workspaces"), build.stages[0]).join("release"), "").unwrap();

    ctx.expect_check_run(&sha, "default (push)", Failure).await;
    assert_eq!(ctx.expect_build_done(1).await.status, Status::Failure);
    assert!(!ctx.log(&build, "fill").await.contains("filled"));
    expect_removed(&workspace).await;
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
