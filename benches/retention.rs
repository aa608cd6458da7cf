//! Redis memory under retention (not a timed test):
//! `cargo bench --profile dev --bench retention [-- BUILDS KEEP]`.
//!
//! Runs BUILDS (default 2,000) one-step `echo ok` builds one after another
//! through the planner and a real sandboxed worker (the stepper of the
//! tests), sweeping with `GREENLIGHT_KEEP_BUILDS`=KEEP (default 100) every
//! KEEP builds as the background sweep would, and prints Redis's
//! `used_memory`, key count and stream lengths as it goes: with retention
//! they stay flat, however many builds ran. Before any pruning it also
//! prints what one finished build costs in Redis.

#[path = "../tests/support/mod.rs"]
mod support;

use greenlight::config::RetentionConfig;
use support::ONE_ECHO_STEP;
use support::stepper::Stepper;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let builds = args.first().copied().unwrap_or(2000);
    let keep = args.get(1).copied().unwrap_or(100);
    tokio::runtime::Runtime::new().unwrap().block_on(run(builds, keep));
}

async fn memory(gl: &Stepper) -> u64 {
    gl.redis_info("used_memory").await
}

async fn run(builds: usize, keep: usize) {
    let mut gl = Stepper::new().await;
    let mut worker = gl.worker("bench-worker").await;
    let sweeper = gl.sweeper("bench-sweeper", RetentionConfig { keep_builds: keep, ..RetentionConfig::default() });
    // One build first, so the repository, scripts and connections exist.
    gl.build_to_end(&mut worker, "main", ONE_ECHO_STEP).await;
    let baseline = memory(&gl).await;
    let started = std::time::Instant::now();
    println!("builds  used_memory  keys  streams(deliveries,stages)  pruned");
    for n in 2..=builds {
        gl.build_to_end(&mut worker, "main", ONE_ECHO_STEP).await;
        if n == keep {
            let per_build = (memory(&gl).await - baseline) / (keep as u64 - 1);
            println!("one finished one-step build costs {per_build} bytes of Redis memory (before pruning)");
        }
        if n % keep == 0 {
            let report = sweeper.sweep().await.unwrap().expect("no other sweeper");
            println!(
                "{n:>6}  {:>11}  {:>4}  {:?}  {:>6}",
                memory(&gl).await,
                gl.key_count().await,
                gl.stream_lengths().await,
                report.pruned
            );
        }
    }
    println!("{builds} builds in {:.0} s", started.elapsed().as_secs_f64());
}
