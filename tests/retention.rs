//! State that stays bounded: streams hold only unfinished work, finished
//! builds' bookkeeping expires, and retention prunes old builds (records,
//! stages and logs) without ever pruning a ref's newest build, once per
//! build however many processes sweep.

mod support;

use greenlight::clock::Clock;
use greenlight::config::RetentionConfig;
use greenlight::ids::RepoId;
use greenlight::model::Build;
use greenlight::store::{PruneOutcome, StepLog};
use support::stepper::Stepper;
use support::{ONE_ECHO_STEP, Scenario};

/// Keeps the newest `n` builds, for 90 days.
fn keep(n: usize) -> RetentionConfig {
    RetentionConfig { keep_builds: n, ..RetentionConfig::default() }
}

/// A clock stopped at a given time.
struct At(chrono::DateTime<chrono::Utc>);

impl Clock for At {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0
    }
}

/// Every step log of a build.
async fn step_logs(gl: &Stepper, build: &Build) -> Vec<StepLog> {
    let stages = gl.store().stages(build).await.unwrap();
    stages.iter().flat_map(|s| s.steps.iter().map(|step| StepLog { stage: s.id, step: step.number })).collect()
}

/// Whether any of a build's step logs still has lines.
async fn has_logs(gl: &Stepper, logs: &[StepLog]) -> bool {
    for log in logs {
        if !gl.logs().read(log.stage, log.step).await.unwrap().is_empty() {
            return true;
        }
    }
    false
}

/// Runs `n` one-step builds on `branch`; returns them with their step logs.
async fn builds(gl: &mut Stepper, branch: &str, n: usize) -> Vec<(Build, Vec<StepLog>)> {
    let mut worker = gl.worker("worker-a").await;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let build = gl.build_to_end(&mut worker, branch, ONE_ECHO_STEP).await;
        let logs = step_logs(gl, &build).await;
        out.push((build, logs));
    }
    out
}

async fn readable(gl: &Stepper, number: i64) -> bool {
    gl.store().build_by_number(RepoId(gl.repo.id), number).await.unwrap().is_some()
}

#[tokio::test]
async fn streams_hold_only_unfinished_work_and_bookkeeping_expires() {
    let mut gl = Stepper::new().await;
    let done = builds(&mut gl, "main", 6).await;
    assert_eq!(gl.stream_lengths().await, (0, 0), "acknowledged entries leave their streams");

    for (build, _) in &done {
        let ttl = gl.ttl(&format!("gl:build:{}:done", build.id)).await;
        assert!((1..=86_400).contains(&ttl), "build {}'s done set expires within a day: {ttl}", build.number);
        assert_eq!(gl.ttl(&format!("gl:delivery:{}", build.delivery)).await, -2, "its delivery claim is gone");
    }
    gl.push("main", ONE_ECHO_STEP).await;
    assert_eq!(gl.stream_lengths().await, (1, 0), "a queued delivery stays until planned");
    gl.plan().await;
    assert_eq!(gl.stream_lengths().await, (0, 1), "a queued stage job stays until run");
}

#[tokio::test]
async fn keeping_3_builds_of_10_leaves_the_3_newest_and_prunes_the_rest_logs() {
    let mut gl = Stepper::new().await;
    let done = builds(&mut gl, "main", 10).await;
    assert!(done.iter().all(|(_, logs)| !logs.is_empty()));

    let report = gl.sweeper("sweeper-a", keep(3)).sweep().await.unwrap().expect("nobody else holds the lease");
    let pruned_logs: usize = done[..7].iter().map(|(_, logs)| logs.len()).sum();
    assert_eq!((report.pruned, report.logs_cleared), (7, pruned_logs), "the clone step's log and the step's, of 7 builds");
    for (build, logs) in &done {
        let kept = build.number > 7;
        assert_eq!(readable(&gl, build.number).await, kept, "build {}", build.number);
        assert_eq!(gl.store().build(build.id).await.unwrap().is_some(), kept, "build {}'s record", build.number);
        assert_eq!(has_logs(&gl, logs).await, kept, "build {}'s logs", build.number);
        let entry = gl.ttl(&format!("gl:entry:{}:build", build.entry)).await;
        assert_eq!(entry == -2, !kept, "build {}'s queue entry allocation goes with it: {entry}", build.number);
        for stage in &build.stages {
            assert_eq!(gl.store().stage(*stage).await.unwrap().is_some(), kept, "build {}'s stage", build.number);
        }
    }
    let listed: Vec<i64> = gl.store().builds_page(RepoId(gl.repo.id), None, 0, 100).await.unwrap().iter().map(|b| b.number).collect();
    assert_eq!(listed, vec![10, 9, 8]);

    let again = gl.sweeper("sweeper-a", keep(3)).sweep().await.unwrap().unwrap();
    assert_eq!(again.pruned, 0, "a second sweep finds nothing more");
}

#[tokio::test]
async fn sweeps_in_two_processes_at_once_prune_each_build_once_and_nothing_kept() {
    let mut gl = Stepper::new().await;
    let done = builds(&mut gl, "main", 6).await;

    // Held by hand: a sweeper that cannot take the lease prunes nothing.
    assert!(gl.other_store().take_sweep_lease("someone-else", std::time::Duration::from_secs(60)).await.unwrap());
    assert_eq!(gl.sweeper("sweeper-a", keep(2)).sweep().await.unwrap(), None);
    for number in 1..=6 {
        assert!(readable(&gl, number).await, "build {number} is still there");
    }
    gl.other_store().release_sweep_lease("someone-else").await.unwrap();

    // Two sweeps at once: one prunes, or both share the work; never twice.
    let (a, b) = (gl.sweeper("sweeper-a", keep(2)), gl.sweeper("sweeper-b", keep(2)));
    let (a, b) = tokio::join!(tokio::spawn(async move { a.sweep().await }), tokio::spawn(async move { b.sweep().await }));
    let pruned: usize = [a.unwrap().unwrap(), b.unwrap().unwrap()].iter().flatten().map(|r| r.pruned).sum();
    assert_eq!(pruned, 4);
    for (build, _) in &done {
        assert_eq!(readable(&gl, build.number).await, build.number > 4, "build {}", build.number);
    }

    // Overlapping sweeps (a lease that lapsed): the same build pruned from two stores counts once.
    let more = builds(&mut gl, "main", 1).await;
    let target = gl.build(5).await;
    let stages = gl.store().stages(&target).await.unwrap();
    let (first, second) = (gl.other_store(), gl.other_store());
    let (x, y) = tokio::join!(first.prune_build(&target, &stages), second.prune_build(&target, &stages));
    let mut outcomes = vec![x.unwrap(), y.unwrap()];
    outcomes.sort_by_key(|o| *o == PruneOutcome::Pruned);
    assert_eq!(outcomes, vec![PruneOutcome::Gone, PruneOutcome::Pruned]);
    assert!(readable(&gl, 6).await && readable(&gl, more[0].0.number).await, "kept builds stay");
}

#[tokio::test]
async fn the_newest_build_of_a_branch_survives_pruning() {
    let mut gl = Stepper::new().await;
    let main = builds(&mut gl, "main", 1).await;
    let feature = builds(&mut gl, "feature", 4).await;
    assert_eq!((main[0].0.number, feature[3].0.number), (1, 5));

    let report = gl.sweeper("sweeper-a", keep(2)).sweep().await.unwrap().unwrap();
    assert_eq!(report.pruned, 2, "builds 2 and 3 go; 1 is main's newest, 4 and 5 are the newest 2");
    let kept: Vec<i64> = gl.store().builds_page(RepoId(gl.repo.id), None, 0, 100).await.unwrap().iter().map(|b| b.number).collect();
    assert_eq!(kept, vec![5, 4, 1]);
    let latest = gl.store().builds_page(RepoId(gl.repo.id), Some("refs/heads/main"), 0, 1).await.unwrap();
    assert_eq!(latest[0].number, 1, "main's latest (its badge) is still there");

    // 100 days on, with 90 days kept: only each branch's newest remains.
    let later = std::sync::Arc::new(At(chrono::Utc::now() + chrono::Duration::days(100)));
    let report = gl.sweeper_at("sweeper-a", RetentionConfig::default(), later).sweep().await.unwrap().unwrap();
    assert_eq!(report.pruned, 1);
    let kept: Vec<i64> = gl.store().builds_page(RepoId(gl.repo.id), None, 0, 100).await.unwrap().iter().map(|b| b.number).collect();
    assert_eq!(kept, vec![5, 1]);
}

#[tokio::test]
async fn a_pruned_build_answers_404_and_its_page_says_it_was_pruned() {
    let ctx = Scenario::new().with_workers().start().await;
    for _ in 0..3 {
        ctx.push_and_finish("main", ONE_ECHO_STEP).await;
    }
    let report = ctx.sweep(keep(1)).await;
    assert_eq!(report.pruned, 2);

    assert_eq!(ctx.api().build(1).await.status, 404);
    assert_eq!(ctx.api().build(3).await.status, 200);
    assert_eq!(ctx.api().build_numbers().await, vec![3]);
    let page = ctx.browser().build_page(1).await;
    assert_eq!(page.status, 404);
    assert!(page.text.contains("was pruned"), "{}", page.text);
    let never = ctx.browser().build_page(9).await;
    assert!(never.status == 404 && !never.text.contains("pruned"), "{}", never.text);
    assert_eq!(ctx.browser().build_page(3).await.status, 200);
}
