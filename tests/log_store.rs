//! Finished logs leave Redis's hot path: when a step ends its log is
//! compressed into the log store (Redis itself, or an S3-compatible bucket
//! served by a real `moto_server`) and its stream deleted, and every reader
//! (the API, the live log stream, the build page, the check run's
//! republishing) serves it the same as before.

mod support;

use greenlight::store::LogLine;
use support::CheckRunState::InProgress;
use support::s3::TestS3;
use support::{Ctx, LogPlace, Scenario};

/// Varied output: a pause first (so a follower joins while it runs, and
/// lines' times differ), random text in 76-character lines, many short
/// lines (several stored batches), and a last line without its newline.
const VARIED: &str = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: print\n  commands:\n  - echo started; sleep 1.5\n  - head -c 30000 /dev/urandom | base64\n  - seq 1 2500\n  - printf 'the end, no newline'\n";

/// Where the log of a finished step is with the embedded log store.
const IN_REDIS_COMPRESSED: LogPlace = LogPlace { stream: false, object_in_redis: true };

/// Where the log of a finished step is with an S3 log store.
const IN_BUCKET: LogPlace = LogPlace { stream: false, object_in_redis: false };

/// The log of build 1's `print` step as the API and the live stream serve it.
async fn served(ctx: &Ctx) -> (Vec<LogLine>, Vec<LogLine>) {
    let api = ctx.api().log_lines(1, 1, 2).await;
    let streamed = ctx.guest().log_stream(1, 1, 2).await.log_lines_to_eof().await;
    (api, streamed)
}

/// Runs [`VARIED`] with a follower from its start; checks the log reads the
/// same live, archived, put back in its stream, and archived again.
async fn a_log_reads_the_same_wherever_it_is(ctx: &Ctx, archived: LogPlace) {
    let sha = ctx.push_and_deliver("main", &[(".drone.yml", VARIED)]).await;
    ctx.expect_check_run(&sha, "default (push)", InProgress).await;
    let mut live = ctx.guest().log_stream(1, 1, 2).await;
    live.read_until("started\\n").await;
    let followed = live.log_lines_to_eof().await;
    let build = ctx.expect_build_done(1).await;
    assert_eq!(ctx.log_place(&build, "print").await, archived);

    let (lines, streamed) = served(ctx).await;
    assert!(lines.len() > 2900, "{} lines", lines.len());
    assert!(lines.iter().enumerate().all(|(i, l)| l.pos == i as i64), "every position, in order");
    assert!(lines[0].time == 0 && lines.last().unwrap().time >= 1, "times kept");
    assert_eq!(lines.last().unwrap().out.trim_end(), "the end, no newline");
    assert_eq!(streamed, lines, "the live stream replays the archived log");
    assert_eq!(followed, lines, "a follower from the start got every line once, the last ones from the archive");
    let page = ctx.browser().build_page(1).await;
    assert!(page.text.contains("the end, no newline"), "the build page shows the archived tail");
    let tail = ctx.log_tail(&build, "print", 10).await;
    assert_eq!((tail.lines.as_slice(), tail.total), (&lines[lines.len() - 10..], lines.len()));

    ctx.unarchive_log(&build, "print").await;
    assert_eq!(ctx.log_place(&build, "print").await, LogPlace { stream: true, object_in_redis: false });
    assert_eq!(served(ctx).await, (lines.clone(), lines.clone()), "before archiving");
    assert_eq!(ctx.log_tail(&build, "print", 10).await.lines, tail.lines);
    assert!(ctx.browser().build_page(1).await.text.contains("the end, no newline"));

    assert!(ctx.archive_log(&build, "print").await);
    assert_eq!(ctx.log_place(&build, "print").await, archived);
    assert_eq!(served(ctx).await, (lines.clone(), lines), "after archiving");
}

/// A worker stopped between writing the object and deleting the stream
/// leaves both: readers take the stream (no line twice), and archiving
/// again finishes the move. Clearing removes both.
async fn a_half_archived_log_reads_once_and_clears_whole(ctx: &Ctx, archived: LogPlace) {
    let (_, build) = ctx.push_and_finish("main", VARIED).await;
    let whole = served(ctx).await;
    assert_eq!(whole.0, whole.1);

    ctx.half_archive_log(&build, "print").await;
    assert!(ctx.log_place(&build, "print").await.stream);
    assert_eq!(served(ctx).await, whole, "the stream is read, once");
    assert_eq!(ctx.log_tail(&build, "print", 5).await.lines, whole.0[whole.0.len() - 5..]);

    assert!(ctx.archive_log(&build, "print").await);
    assert_eq!(ctx.log_place(&build, "print").await, archived);
    assert_eq!(served(ctx).await, whole);

    ctx.clear_log(&build, "print").await;
    assert_eq!(ctx.log_place(&build, "print").await, LogPlace { stream: false, object_in_redis: false });
    assert_eq!(served(ctx).await, (Vec::new(), Vec::new()), "nothing left in the log store either");
}

#[tokio::test]
async fn a_finished_log_reads_the_same_from_its_stream_and_from_the_embedded_log_store() {
    let ctx = Scenario::new().with_workers().start().await;
    a_log_reads_the_same_wherever_it_is(&ctx, IN_REDIS_COMPRESSED).await;
}

#[tokio::test]
async fn a_finished_log_reads_the_same_from_its_stream_and_from_an_s3_bucket() {
    let s3 = TestS3::start();
    let ctx = Scenario::new().with_workers().log_store(s3.log_store("ci/logs")).start().await;
    a_log_reads_the_same_wherever_it_is(&ctx, IN_BUCKET).await;
}

#[tokio::test]
async fn a_half_archived_log_reads_once_from_the_embedded_log_store() {
    let ctx = Scenario::new().with_workers().start().await;
    a_half_archived_log_reads_once_and_clears_whole(&ctx, IN_REDIS_COMPRESSED).await;
}

#[tokio::test]
async fn a_half_archived_log_reads_once_from_an_s3_bucket() {
    let s3 = TestS3::start();
    let ctx = Scenario::new().with_workers().log_store(s3.log_store("")).start().await;
    a_half_archived_log_reads_once_and_clears_whole(&ctx, IN_BUCKET).await;
}

#[tokio::test]
async fn greenlight_refuses_to_start_on_a_bucket_it_cannot_write() {
    let s3 = TestS3::start();
    let error = Scenario::new().with_workers().log_store(s3.log_store_in("no-such-bucket", "logs")).start_failure().await;
    assert!(error.starts_with("GREENLIGHT_LOG_STORE: cannot write to s3://no-such-bucket/logs"), "{error}");
}

/// One step printing 1 MB of base64 of random bytes.
const ONE_MB: &str =
    "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: print\n  commands:\n  - head -c 786432 /dev/urandom | base64\n";

/// Redis's `used_memory` growth per finished [`ONE_MB`] build over
/// `builds` builds, after two to warm up (the pool's connections and their
/// buffers, Lua scripts: a fixed cost, not a build's).
async fn redis_memory_per_build(ctx: &Ctx, builds: i64) -> u64 {
    ctx.push_and_finish("main", ONE_MB).await;
    ctx.push_and_finish("main", ONE_MB).await;
    let before = ctx.app.redis.info("used_memory").await;
    for _ in 0..builds {
        let (_, build) = ctx.push_and_finish("main", ONE_MB).await;
        assert!(!ctx.log_place(&build, "print").await.stream, "archived");
    }
    let after = ctx.app.redis.info("used_memory").await;
    after.saturating_sub(before) / builds as u64
}

#[tokio::test]
async fn a_finished_1_mb_log_costs_redis_under_1_mb_in_the_embedded_log_store() {
    let ctx = Scenario::new().with_workers().start().await;
    let per_build = redis_memory_per_build(&ctx, 10).await;
    eprintln!("benchmark: Redis used_memory per finished 1 MB build, embedded log store: {per_build} bytes");
    assert!(per_build < 1_000_000, "{per_build} bytes per build");
}

#[tokio::test]
async fn a_finished_1_mb_log_costs_redis_under_20_kb_with_an_s3_log_store() {
    let s3 = TestS3::start();
    let ctx = Scenario::new().with_workers().log_store(s3.log_store("bench")).start().await;
    let per_build = redis_memory_per_build(&ctx, 10).await;
    eprintln!("benchmark: Redis used_memory per finished 1 MB build, S3 log store: {per_build} bytes");
    assert!(per_build < 20_000, "{per_build} bytes per build");
}
