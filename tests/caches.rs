//! Caches (`cache:` on a step) and warm clones: what a step brings along
//! from earlier builds, scoped as GitHub Actions scopes caches, and what a
//! hostile step cannot do with them.

mod support;

use greenlight::model::Status;
use support::CheckRunState::{Failure, Success};
use support::app::runner_config;
use support::{BuildCommit, Scenario};

/// A pipeline whose `build` step restores and saves `vendor/` under
/// `deps-{{ checksum "deps.lock" }}` (falling back to any `deps-` cache),
/// printing what it found, then running `then`.
fn cached(then: &str) -> String {
    format!(
        "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: build\n  cache:\n    key: deps-{{{{ checksum \"deps.lock\" }}}}\n    restore_keys: [deps-]\n    paths: [vendor]\n  commands:\n  - cat vendor/made-by 2>/dev/null || echo nothing restored\n  - mkdir -p vendor && echo \"$DRONE_BUILD_EVENT $DRONE_BRANCH $DRONE_PULL_REQUEST\" > vendor/made-by\n  - {then}\n"
    )
}

fn sha256(text: &str) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()))
}

#[tokio::test]
async fn a_cache_saved_on_main_is_restored_by_a_pull_request_whose_own_save_stays_its_own() {
    let ctx = Scenario::new().with_workers().start().await;
    let v1 = sha256("v1\n");
    let v2 = sha256("v2\n");

    let main = ctx.push_and_deliver("main", &[(".drone.yml", &cached("true")), ("deps.lock", "v1\n")]).await;
    ctx.expect_check_run(&main, "default (push)", Success).await;
    let first = ctx.expect_build_done(1).await;
    let pr = ctx.open_pr(1, "feature", &[("deps.lock", "v1\n")]).await;
    ctx.expect_check_run(&pr, "default (pull_request)", Success).await;
    let same_key = ctx.expect_build_done(2).await;
    let changed = ctx.open_pr(2, "other", &[("deps.lock", "v2\n")]).await;
    ctx.expect_check_run(&changed, "default (pull_request)", Success).await;
    let pr_saved = ctx.expect_build_done(3).await;
    let main_again = ctx.push_and_deliver("main", &[("deps.lock", "v2\n")]).await;
    ctx.expect_check_run(&main_again, "default (push)", Success).await;
    let after = ctx.expect_build_done(4).await;

    let log = ctx.log(&first, "build").await;
    assert!(log.contains(&format!("[greenlight] cache: miss (deps-{v1})")), "{log}");
    assert!(log.contains("nothing restored"), "{log}");
    assert!(log.contains(&format!("[greenlight] cache: saved (deps-{v1}): ")) && log.contains(" s\n"), "size and time: {log}");
    let log = ctx.log(&same_key, "build").await;
    assert!(log.contains(&format!("[greenlight] cache: hit (deps-{v1}): restored ")), "{log}");
    assert!(log.contains("push main \n"), "the step sees main's files: {log}");
    assert!(log.contains(&format!("cache: not saved: deps-{v1} was restored exactly")), "{log}");
    let log = ctx.log(&pr_saved, "build").await;
    assert!(log.contains(&format!("[greenlight] cache: partial hit (deps-{v1})")), "{log}");
    assert!(log.contains(&format!("[greenlight] cache: saved (deps-{v2})")), "{log}");
    let log = ctx.log(&after, "build").await;
    assert!(log.contains(&format!("[greenlight] cache: partial hit (deps-{v1})")), "the pull request's deps-{v2} is not main's: {log}");
    assert!(log.contains("push main \n"), "{log}");
    let stored: Vec<String> = ctx.stored_caches().into_iter().map(|(key, _)| key).collect();
    let repo = first.repo.id.0;
    assert_eq!(
        stored,
        vec![format!("{repo}/branch/main/deps-{v1}"), format!("{repo}/branch/main/deps-{v2}"), format!("{repo}/pr/2/deps-{v2}")]
    );
}

#[tokio::test]
async fn a_cache_under_home_is_restored_there_and_home_outlives_each_step() {
    let ctx = Scenario::new().with_workers().start().await;
    let config = "kind: pipeline\ntype: exec\nname: default\nsteps:\n\
        - name: fetch\n  cache:\n    key: tools\n    paths: [~/.tool, vendor]\n  commands:\n\
        \x20 - echo \"home is $HOME\"\n  - cat ~/.tool/made-by 2>/dev/null || echo nothing in home\n\
        \x20 - cat vendor/made-by 2>/dev/null || echo nothing in vendor\n\
        \x20 - mkdir -p ~/.tool vendor && echo home of $DRONE_BUILD_NUMBER > ~/.tool/made-by && echo vendor of $DRONE_BUILD_NUMBER > vendor/made-by\n\
        - name: next\n  commands:\n  - cat ~/.tool/made-by\n  - test ! -e .tool && test ! -e home && echo the checkout holds no home\n";

    let first = ctx.push_and_deliver("main", &[(".drone.yml", config)]).await;
    ctx.expect_check_run(&first, "default (push)", Success).await;
    let saved = ctx.expect_build_done(1).await;
    let second = ctx.push_and_deliver("main", &[("README", "again\n")]).await;
    ctx.expect_check_run(&second, "default (push)", Success).await;
    let restored = ctx.expect_build_done(2).await;

    let log = ctx.log(&saved, "fetch").await;
    assert!(log.contains("home is /home/drone\n") && log.contains("nothing in home\n"), "{log}");
    assert!(log.contains("[greenlight] cache: saved (tools)"), "{log}");
    let log = ctx.log(&saved, "next").await;
    assert!(log.contains("home of 1\n"), "HOME outlives the step that wrote it: {log}");
    assert!(log.contains("the checkout holds no home"), "{log}");
    let log = ctx.log(&restored, "fetch").await;
    assert!(log.contains("[greenlight] cache: hit (tools)"), "{log}");
    assert!(log.contains("home of 1\n") && log.contains("vendor of 1\n"), "each path restored where it was: {log}");
}

/// The number before `unit` in the first line of `log` that starts with `marker`.
fn figure(log: &str, marker: &str, unit: &str) -> f64 {
    let line = log.lines().find(|l| l.starts_with(marker)).unwrap_or_else(|| panic!("no {marker:?} in {log}"));
    let before = line.rsplit_once(unit).unwrap_or_else(|| panic!("no {unit:?} in {line:?}")).0;
    before.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no figure before {unit:?} in {line:?}"))
}

#[tokio::test]
async fn a_second_build_restores_a_200_mb_cache_faster_than_the_first_made_it() {
    let ctx = Scenario::new().with_workers().start().await;
    // 200 MB that cost something to make (as a dependency download or a compile would).
    let config = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: build\n  cache:\n    key: big\n    paths: [big]\n  commands:\n\
        \x20 - |\n    if [ ! -d big ]; then\n      start=$(date +%s%N); mkdir big\n      for i in $(seq 1 50); do head -c 4000000 /dev/urandom > big/$i; done\n      echo \"made in $(( ($(date +%s%N) - start) / 1000000 )) ms\"\n    fi\n\
        \x20 - cat big/* | wc -c\n";

    let (_, made) = ctx.push_and_finish("main", config).await;
    let (_, restored) = ctx.push_and_finish("main", config).await;

    let first = ctx.log(&made, "build").await;
    assert!(first.contains("\n200000000\n"), "{first}");
    let making = figure(&first, "made in ", " ms") / 1000.0 + figure(&first, "[greenlight] cache: saved (big)", " s");
    let second = ctx.log(&restored, "build").await;
    assert!(second.contains("\n200000000\n") && !second.lines().any(|l| l.starts_with("made in ")), "{second}");
    let restoring = figure(&second, "[greenlight] cache: hit (big): restored ", " s");
    assert!(restoring < making, "restored in {restoring} s, made and saved in {making} s:\n{first}\n{second}");
}

#[tokio::test]
async fn a_fork_pull_requests_cache_never_reaches_main() {
    let ctx = Scenario::new().with_workers().start().await;
    let key = format!("deps-{}", sha256("v1\n"));

    let fork = ctx.open_fork_pr(7, &[(".drone.yml", &cached("echo poisoned > vendor/made-by")), ("deps.lock", "v1\n")]).await;
    ctx.expect_check_run(&fork, "default (pull_request)", Success).await;
    let forked = ctx.expect_build_done(1).await;
    let main = ctx.push_and_deliver("main", &[(".drone.yml", &cached("true")), ("deps.lock", "v1\n")]).await;
    ctx.expect_check_run(&main, "default (push)", Success).await;
    let build = ctx.expect_build_done(2).await;

    assert!(forked.is_fork());
    assert!(ctx.log(&forked, "build").await.contains(&format!("[greenlight] cache: saved ({key})")));
    let log = ctx.log(&build, "build").await;
    assert!(log.contains(&format!("[greenlight] cache: miss ({key})")), "{log}");
    assert!(!log.contains("poisoned"), "{log}");
}

#[tokio::test]
async fn nothing_is_saved_after_a_failed_step_and_a_changed_file_changes_the_key() {
    let ctx = Scenario::new().with_workers().start().await;
    let (v1, v2) = (sha256("v1\n"), sha256("v2\n"));

    let failed = ctx.push_and_deliver("main", &[(".drone.yml", &cached("exit 1")), ("deps.lock", "v1\n")]).await;
    ctx.expect_check_run(&failed, "default (push)", Failure).await;
    let failing = ctx.expect_build_done(1).await;
    let passed = ctx.push_and_deliver("main", &[(".drone.yml", &cached("true"))]).await;
    ctx.expect_check_run(&passed, "default (push)", Success).await;
    let passing = ctx.expect_build_done(2).await;
    let changed = ctx.push_and_deliver("main", &[("deps.lock", "v2\n")]).await;
    ctx.expect_check_run(&changed, "default (push)", Success).await;
    let after_change = ctx.expect_build_done(3).await;

    let log = ctx.log(&failing, "build").await;
    assert!(log.contains(&format!("cache: miss (deps-{v1})")) && !log.contains("cache: saved"), "{log}");
    let log = ctx.log(&passing, "build").await;
    assert!(log.contains(&format!("cache: miss (deps-{v1})")), "the failed step saved nothing: {log}");
    assert!(log.contains(&format!("cache: saved (deps-{v1})")), "{log}");
    let log = ctx.log(&after_change, "build").await;
    assert!(log.contains(&format!("cache: partial hit (deps-{v1})")) && log.contains(&format!("cache: saved (deps-{v2})")), "{log}");
}

#[tokio::test]
async fn an_unknown_template_fails_the_step_naming_it() {
    let ctx = Scenario::new().with_workers().start().await;
    let config = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: build\n  cache:\n    key: k-{{ hashFiles('x') }}\n    paths: [vendor]\n  commands: [echo never]\n";

    let sha = ctx.push_and_deliver("main", &[(".drone.yml", config)]).await;

    ctx.expect_check_run(&sha, "default (push)", Failure).await;
    let log = ctx.log(&ctx.expect_build_done(1).await, "build").await;
    assert!(log.contains("[greenlight] cache: key \"k-{{ hashFiles('x') }}\": unknown template `{{ hashFiles('x') }}`"), "{log}");
    assert!(!log.contains("never"), "{log}");
}

#[tokio::test]
async fn hostile_symlinks_cannot_read_host_files_into_a_cache_or_write_through_on_restore() {
    let ctx = Scenario::new().with_workers().start().await;
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("secret"), "TOPSECRET\n").unwrap();
    std::fs::create_dir(host.path().join("target")).unwrap();
    let (secret, target) = (host.path().join("secret"), host.path().join("target"));
    let config = format!(
        "kind: pipeline\ntype: exec\nname: default\nsteps:\n\
         - name: plant\n  commands:\n  - test -e plant-link || exit 0\n  - ln -s {target} out\n\
         - name: build\n  cache:\n    key: hostile\n    paths: [leak, out, etc]\n  commands:\n\
         \x20 - cat leak 2>&1 || true\n  - ls -ln out/ || true\n\
         \x20 - test \"$DRONE_BUILD_NUMBER\" != 1 || (mkdir out && echo pwned > out/pwned && ln -s {secret} leak && ln -s /etc etc)\n",
        target = target.display(),
        secret = secret.display()
    );

    let saving = ctx.push_and_deliver("main", &[(".drone.yml", &config)]).await;
    ctx.expect_check_run(&saving, "default (push)", Success).await;
    let saved = ctx.expect_build_done(1).await;
    let restoring = ctx.push_and_deliver("main", &[("plant-link", "yes")]).await;
    ctx.expect_check_run(&restoring, "default (push)", Success).await;
    let restored = ctx.expect_build_done(2).await;

    assert!(ctx.log(&saved, "build").await.contains("cache: saved (hostile)"));
    let log = ctx.log(&restored, "build").await;
    assert!(log.contains("cache: hit (hostile)"), "{log}");
    assert!(!log.contains("TOPSECRET"), "a symlink saved as a symlink, never its host target: {log}");
    assert!(log.contains(" 65534 65534 "), "restored files are the sandbox user's: {log}");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "nothing written through the planted symlink on the host");
    for (key, size) in ctx.stored_caches() {
        assert!(size < 4096, "{key} holds {size} bytes: no host file went in");
    }
}

#[tokio::test]
async fn the_least_recently_used_cache_goes_when_caches_pass_the_cap() {
    let runner = greenlight::config::RunnerConfig { cache_cap: 1 << 20, ..runner_config() };
    let ctx = Scenario::new().runner(runner).start().await;
    // 600 kB of random bytes: two such caches do not fit in 1 MiB.
    let config = |key: &str| {
        format!(
            "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: build\n  cache:\n    key: {key}\n    paths: [blob]\n  commands:\n  - test -f blob || head -c 600000 /dev/urandom > blob\n"
        )
    };

    let first = ctx.push_and_deliver("main", &[(".drone.yml", &config("one"))]).await;
    ctx.expect_check_run(&first, "default (push)", Success).await;
    let repo = ctx.expect_build_done(1).await.repo.id.0;
    let kept_alone: Vec<String> = ctx.stored_caches().into_iter().map(|(k, _)| k).collect();
    let second = ctx.push_and_deliver("main", &[(".drone.yml", &config("two"))]).await;
    ctx.expect_check_run(&second, "default (push)", Success).await;
    ctx.expect_build_done(2).await;
    let again = ctx.push_and_deliver("main", &[(".drone.yml", &config("one"))]).await;
    ctx.expect_check_run(&again, "default (push)", Success).await;
    let third = ctx.expect_build_done(3).await;

    assert_eq!(kept_alone, vec![format!("{repo}/branch/main/one")]);
    assert!(ctx.log(&third, "build").await.contains("cache: miss (one)"), "evicted when two was saved");
    let stored: Vec<String> = ctx.stored_caches().into_iter().map(|(k, _)| k).collect();
    assert_eq!(stored, vec![format!("{repo}/branch/main/one")], "two evicted in turn");
}

#[tokio::test]
async fn a_mirror_past_the_cache_cap_is_evicted_after_its_clone_and_made_again_by_the_next_build() {
    // A cap smaller than any mirror: each build's mirror goes once its workspace has its copy.
    let runner = greenlight::config::RunnerConfig { cache_cap: 1, ..runner_config() };
    let ctx = Scenario::new().runner(runner).start().await;
    let config = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: show\n  commands: [git rev-parse HEAD]\n";

    let first = ctx.push_and_deliver("main", &[(".drone.yml", config)]).await;
    ctx.expect_check_run(&first, "default (push)", Success).await;
    let made = ctx.expect_build_done(1).await;
    let second = ctx.push_and_deliver("main", &[("note", "second\n")]).await;
    ctx.expect_check_run(&second, "default (push)", Success).await;
    let again = ctx.expect_build_done(2).await;

    for build in [&made, &again] {
        let log = ctx.log(build, "clone").await;
        assert!(log.contains("[greenlight] clone: from this worker's mirror of the repository (made"), "{log}");
    }
    assert_eq!(ctx.log(&again, "show").await, format!("+ git rev-parse HEAD\n{second}\n"));
    assert!(!ctx.mirror_dir(&again).exists(), "evicted");
}

#[tokio::test]
async fn a_second_build_clones_through_the_workers_mirror_and_a_forks_commit_stays_out_of_it() {
    let ctx = Scenario::new().with_workers().start().await;
    let config = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: show\n  commands: [git rev-parse HEAD, cat note]\n";

    let first = ctx.push_and_deliver("main", &[(".drone.yml", config), ("note", "first\n")]).await;
    ctx.expect_check_run(&first, "default (push)", Success).await;
    let made = ctx.expect_build_done(1).await;
    let second = ctx.push_and_deliver("main", &[("note", "second\n")]).await;
    ctx.expect_check_run(&second, "default (push)", Success).await;
    let warm = ctx.expect_build_done(2).await;
    let fork = ctx.open_fork_pr(3, &[("note", "from a fork\n")]).await;
    ctx.expect_check_run(&fork, "default (pull_request)", Success).await;
    let forked = ctx.expect_build_done(3).await;

    assert!(ctx.log(&made, "clone").await.contains("[greenlight] clone: from this worker's mirror of the repository (made"));
    let log = ctx.log(&warm, "clone").await;
    assert!(log.contains("[greenlight] clone: from this worker's mirror of the repository (updated with what was new)"), "{log}");
    assert_eq!(ctx.log(&warm, "show").await, format!("+ git rev-parse HEAD\n{second}\n+ cat note\nsecond\n"));
    assert!(ctx.log(&forked, "clone").await.contains("a fork's commit, fetched from GitHub alone"));
    assert!(ctx.log(&forked, "show").await.contains("from a fork"));
    assert!(ctx.mirror_has(&warm, &second), "the mirror has main's commits");
    assert!(!ctx.mirror_has(&forked, &fork), "a fork's commit never enters the mirror");
}

#[tokio::test]
async fn with_a_bucket_a_cache_saved_by_one_worker_is_restored_by_another() {
    let s3 = support::s3::TestS3::start();
    let mut stepper = support::stepper::Stepper::new().await;
    let mut saver = stepper.worker_with_bucket("worker-a", &s3).await;
    let mut restorer = stepper.worker_with_bucket("worker-b", &s3).await;
    let config = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: build\n  cache:\n    key: shared-{{ os }}-{{ arch }}\n    paths: [out]\n  commands:\n  - cat out/from 2>/dev/null || (mkdir -p out && echo \"saved on $DRONE_BUILD_NUMBER\" > out/from)\n";

    let first = stepper.build_to_end(&mut saver, "main", config).await;
    let second = stepper.build_to_end(&mut restorer, "main", &format!("{config}# again\n")).await;

    let key = format!("shared-{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    assert!(stepper.log(&first, "build").await.contains(&format!("[greenlight] cache: saved ({key})")));
    let log = stepper.log(&second, "build").await;
    assert!(log.contains(&format!("[greenlight] cache: hit ({key})")), "{log}");
    assert!(log.contains("saved on 1\n"), "{log}");
}

/// Cancels build `number` while `running` (a stepped worker's run of its
/// stage) waits on a frozen bucket; expects the worker to end the stage
/// anyway and the build to be killed; returns the `build` step's log.
async fn cancel_while_the_bucket_hangs(stepper: &support::stepper::Stepper, number: i64, running: tokio::task::JoinHandle<bool>) -> String {
    stepper.lifecycle.cancel(&stepper.build(number).await, "not needed any more").await.unwrap();
    let ran = tokio::time::timeout(support::fake_github::expect_timeout(), running).await;
    assert!(ran.expect("the worker ends the cancelled stage while the bucket still hangs").unwrap());
    let build = stepper.build(number).await;
    assert_eq!(build.status, Status::Killed);
    stepper.log(&build, "build").await
}

#[tokio::test]
async fn a_cancel_stops_a_cache_restore_that_hangs_on_the_bucket_and_nothing_is_saved() {
    let s3 = support::s3::TestS3::start();
    let mut stepper = support::stepper::Stepper::new().await;
    let mut worker = stepper.worker_with_bucket("worker-a", &s3).await;
    let config = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: build\n  cache:\n    key: deps\n    paths: [out]\n  commands:\n  - mkdir -p out && echo built > out/made\n";
    stepper.build_to_end(&mut worker, "main", config).await;

    // The bucket stops answering; the next build's restore waits on it.
    s3.freeze();
    stepper.push("main", &format!("{config}# again\n")).await;
    assert_eq!(stepper.plan().await, 1);
    let running = tokio::spawn(async move { worker.run_next().await });
    let build_step_running = async || {
        let stage = stepper.stages(2).await.pop()?;
        stage.steps.iter().any(|s| s.name == "build" && s.status == Status::Running).then_some(())
    };
    support::wait::until("the build step to start restoring its cache", build_step_running).await;
    let log = cancel_while_the_bucket_hangs(&stepper, 2, running).await;
    assert!(log.contains("[greenlight] cache: restore stopped: the build was cancelled"), "{log}");
    assert!(!log.contains("saved"), "{log}");
    s3.thaw();
}

#[tokio::test]
async fn a_cancel_stops_a_cache_save_that_hangs_on_the_bucket() {
    let s3 = support::s3::TestS3::start();
    let mut stepper = support::stepper::Stepper::new().await;
    let mut worker = stepper.worker_with_bucket("worker-a", &s3).await;
    let workspaces = worker.workspaces.clone();
    // The step ends when the test lets it (a file in its checkout).
    let config = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: build\n  cache:\n    key: deps\n    paths: [out]\n  commands:\n  - mkdir -p out && echo built > out/made\n  - until [ -e go ]; do sleep 0.05; done\n";
    stepper.push("main", config).await;
    assert_eq!(stepper.plan().await, 1);
    let running = tokio::spawn(async move { worker.run_next().await });
    let logged = async |text: &str| {
        let build = stepper.build(1).await;
        let stage = stepper.stages(1).await.pop()?;
        stage.steps.iter().any(|s| s.name == "build" && s.status == Status::Running).then_some(())?;
        stepper.log(&build, "build").await.contains(text).then_some(())
    };
    support::wait::until("the restore to miss", || logged("[greenlight] cache: miss (deps)")).await;

    // The bucket stops answering before the step ends: its save waits on it.
    s3.freeze();
    let stage = stepper.stages(1).await.pop().unwrap();
    std::fs::write(workspaces.join(format!("stage-{}", stage.id)).join("src/go"), "").unwrap();
    support::wait::until("the save to start", || logged("[greenlight] cache: saving (deps)")).await;
    let log = cancel_while_the_bucket_hangs(&stepper, 1, running).await;
    assert!(log.contains("[greenlight] cache: not saved: the build was cancelled"), "{log}");
    s3.thaw();
}

/// 200 MB of mixed files under `dir/mixed`: 4,000 small text files (64 MB,
/// compressible), one 68 MB file of random bytes, one 68 MB of text.
fn mixed_files(dir: &std::path::Path) -> u64 {
    use rand::RngCore;
    let small = dir.join("mixed/small");
    std::fs::create_dir_all(&small).unwrap();
    let mut total = 0;
    for i in 0..4000 {
        let text: String = (0..16 * 1024 / 32).map(|n| format!("line {n:>8} of file {i:>8} ok\n")).collect::<String>();
        total += text.len() as u64;
        std::fs::write(small.join(format!("f{i}")), text).unwrap();
    }
    let mut random = vec![0u8; 68 << 20];
    rand::rng().fill_bytes(&mut random);
    std::fs::write(dir.join("mixed/random.bin"), &random).unwrap();
    let text: Vec<u8> =
        (0..(68 << 20) / 64).flat_map(|n: usize| format!("{n:>20} compressible words words words words ok\n").into_bytes()).collect();
    std::fs::write(dir.join("mixed/text.log"), &text).unwrap();
    total + random.len() as u64 + text.len() as u64
}

/// Save and restore throughput of 200 MB of mixed files through the
/// sandbox's tar, on the local store and in a bucket (moto):
/// `cargo test --release --test caches -- --ignored --nocapture bench_`.
#[tokio::test]
#[ignore = "a benchmark"]
async fn bench_cache_save_and_restore_200_mb() {
    use greenlight::runner::cache::{CacheBuild, Caches};
    use greenlight::runner::sandbox::{Sandbox, SandboxOptions};
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let workspaces = data.path().join("workspaces");
    std::fs::create_dir_all(&workspaces).unwrap();
    let sandbox = Sandbox::probe(&SandboxOptions::default(), &workspaces).await.expect("bwrap works (apt-get install bubblewrap)");
    let stage = greenlight::runner::workspace::Workspace::of_stage(&workspaces, greenlight::ids::StageId(1), None);
    stage.create().await.unwrap();
    let workspace = stage.path();
    let bytes = mixed_files(&workspace);
    sandbox.give(&workspace).unwrap();
    sandbox.give(&stage.home()).unwrap();
    let s3 = support::s3::TestS3::start();
    let stores = [
        ("local disk", greenlight::blobs::Blobs::on_disk(&data.path().join("blobs")).unwrap()),
        ("bucket (moto)", greenlight::blobs::Blobs::of(&s3.log_store("bench"), data.path()).unwrap()),
    ];
    let commit = greenlight::model::Commit { target: "main".into(), ..Default::default() };
    let build = CacheBuild { repo: 1, default_branch: "main", commit: &commit };
    let spec = greenlight::pipeline::CacheSpec { key: "bench".into(), restore_keys: vec![], paths: vec!["mixed".into()] };
    let (lines, mut said) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(line) = said.recv().await {
            print!("  {line}")
        }
    });
    for (name, blobs) in stores {
        let caches =
            Caches { blobs: blobs.scoped("caches"), spool: data.path().join("spool"), mirrors: data.path().join("mirrors"), cap: 1 << 40 };
        let miss = caches.restore(&spec, &build, &sandbox, &stage, &lines).await.unwrap();
        let started = std::time::Instant::now();
        caches.save(&spec, &miss, &build, &sandbox, &stage, &lines).await;
        let saved = started.elapsed().as_secs_f64();
        std::fs::rename(workspace.join("mixed"), data.path().join("was")).unwrap();
        let started = std::time::Instant::now();
        caches.restore(&spec, &build, &sandbox, &stage, &lines).await.unwrap();
        let restored = started.elapsed().as_secs_f64();
        std::fs::remove_dir_all(data.path().join("was")).unwrap();
        let mb = bytes as f64 / 1e6;
        println!(
            "{name}: {mb:.0} MB saved in {saved:.2} s ({:.0} MB/s), restored in {restored:.2} s ({:.0} MB/s)",
            mb / saved,
            mb / restored
        );
    }
}

/// Clone time of a repository with 200 MB of history (20 commits, each
/// rewriting a 10 MB file of base64 text), first build (the mirror made) and second build
/// (the mirror updated): `cargo test --release --test caches -- --ignored --nocapture bench_`.
#[tokio::test]
#[ignore = "a benchmark"]
async fn bench_clone_of_200_mb_of_history() {
    use base64::Engine;
    use rand::RngCore;
    let ctx = Scenario::new().with_workers().start().await;
    ctx.repo.push_commits("main", 20, |i| {
        let mut raw = vec![0u8; 7_500_000];
        rand::rng().fill_bytes(&mut raw);
        let _ = i;
        vec![("history/blob".to_string(), base64::engine::general_purpose::STANDARD.encode(raw))]
    });
    let config = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: show\n  commands: [git rev-parse HEAD]\n";
    for number in 1..=2 {
        ctx.push_and_deliver("main", &[(".drone.yml", config), ("n", &number.to_string())]).await;
        let done = || async { ctx.builds().await.into_iter().find(|b| b.number == number && b.status.is_done()) };
        let build = support::wait::within(std::time::Duration::from_secs(600), "the build to finish", done).await;
        assert_eq!(build.status, greenlight::store::Status::Success);
        let clone = ctx.stage(&build).await.steps.into_iter().next().unwrap();
        let log = ctx.log(&build, "clone").await;
        let line = log.lines().find(|l| l.contains("clone: from")).unwrap_or_default().to_string();
        println!("build {number}: clone step {} s by its record; {line}", clone.stopped - clone.started);
    }
    // A fork's pull request is fetched as every build was before mirrors: `--depth 1` from GitHub.
    ctx.open_fork_pr(3, &[("n", "3")]).await;
    let done = || async { ctx.builds().await.into_iter().find(|b| b.number == 3 && b.status.is_done()) };
    let build = support::wait::within(std::time::Duration::from_secs(600), "the fork's build to finish", done).await;
    let log = ctx.log(&build, "clone").await;
    println!("without the mirror (a fork): {}", log.lines().find(|l| l.contains("clone: a fork")).unwrap_or_default());
}

#[tokio::test]
async fn the_mirror_and_caches_work_when_the_data_directory_is_private() {
    let ctx = Scenario::new().with_workers().private_data_dir().start().await;
    let config = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: show\n  cache:\n    key: k\n    paths: [kept]\n  commands: [cat note, cat kept 2>/dev/null || cp note kept]\n";

    let first = ctx.push_and_deliver("main", &[(".drone.yml", config), ("note", "first\n")]).await;
    ctx.expect_check_run(&first, "default (push)", Success).await;
    ctx.expect_build_done(1).await;
    let second = ctx.push_and_deliver("main", &[("note", "second\n")]).await;
    ctx.expect_check_run(&second, "default (push)", Success).await;
    let warm = ctx.expect_build_done(2).await;

    assert!(ctx.log(&warm, "clone").await.contains("from this worker's mirror of the repository (updated with what was new)"));
    let log = ctx.log(&warm, "show").await;
    assert!(
        log.contains("[greenlight] cache: hit (k)") && log.contains("+ cat note\nsecond\n+ cat kept 2>/dev/null || cp note kept\nfirst\n"),
        "{log}"
    );
    assert!(ctx.mirror_has(&warm, &second));
}
