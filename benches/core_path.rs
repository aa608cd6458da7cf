//! The core path benchmark (not a timed test): `cargo bench --bench core_path`.
//!
//! 1. Intake throughput: signed, real-size (~28 KB) pull_request deliveries
//!    per second that `serve --no-worker` accepts with 202, each written to
//!    Redis (AOF, appendfsync always) before the answer. Load comes from
//!    `wrk` (Debian package `wrk`) on the same machine.
//!    Next to the rate it prints greenlight's CPU time per accepted delivery:
//!    this process's (greenlight runs in-process: intake and planner; `wrk`
//!    is a separate process and not counted) less the CPU of the fake
//!    GitHub's own thread, which is not greenlight's work.
//! 2. Webhook → pending status latency at the fake GitHub, p50 and p99, one
//!    delivery at a time on an idle server.
//!
//! `cargo bench --bench core_path -- parse N` instead runs only intake's CPU
//! work (signature check, payload parse, trigger serialization) N times on
//! the pull_request fixture, with no server, Redis or wrk: a load-independent
//! measure to run under `valgrind --tool=callgrind` (see [`parse_loop`]);
//! `-- phases N` does the same and prints the wall time of each phase;
//! `-- throughput` stops after the first measure (for runs side by side).
//! `-- floor` and `-- floor-parse` measure the floor of this design on this
//! machine (see [`floor`]): the same HTTP stack answering 202 after only the
//! signature check (and the parse), with no Redis and no planner.

#[path = "../tests/support/mod.rs"]
mod support;

/// The allocator of the `greenlight` binary (see `src/main.rs`), so the
/// CPU measured here is the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};
use support::{FakeGitHub, ONE_ECHO_STEP, TestApp, Webhook};

/// User plus system CPU time this process has used so far: greenlight runs
/// in-process, so this is its CPU, while `wrk` (a child we wait for) is not
/// included (`RUSAGE_SELF` excludes children).
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage only writes into the rusage we pass.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    // SAFETY: getrusage succeeded, so it filled the struct.
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The fake GitHub on a thread of its own (a single-threaded runtime), so
/// that its CPU, which is not greenlight's, can be taken out of the
/// process's: returns it and the CPU clock of its thread.
fn fake_github_on_its_own_thread() -> (FakeGitHub, libc::clockid_t) {
    use std::os::unix::thread::JoinHandleExt;
    let (sender, receiver) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            sender.send(FakeGitHub::start().await).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let github = receiver.recv().expect("the fake GitHub starts");
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the thread is alive (it never returns) and we pass a valid out-pointer.
    let rc = unsafe { libc::pthread_getcpuclockid(thread.as_pthread_t(), &mut clock) };
    assert_eq!(rc, 0, "pthread_getcpuclockid");
    (github, clock)
}

/// CPU time a thread's clock (from `pthread_getcpuclockid`) has counted so far.
fn thread_cpu_time(clock: libc::clockid_t) -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes into the timespec we pass.
    let rc = unsafe { libc::clock_gettime(clock, &mut now) };
    assert_eq!(rc, 0, "clock_gettime: {}", std::io::Error::last_os_error());
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Intake's CPU work on one real-size pull_request delivery, `rounds` times:
/// verify the signature, parse the payload, serialize the trigger as it is
/// queued. Meant for callgrind: run it with 0 and with N rounds and divide
/// the difference in instructions by N.
fn parse_loop(rounds: u64, timed: bool) {
    use greenlight::github::webhook::{Delivery, parse_delivery, sign, verify_signature};
    let path = format!("{}/fixtures/webhooks/pull_request.opened.json", env!("CARGO_MANIFEST_DIR"));
    let payload: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let body = serde_json::to_vec(&payload).unwrap();
    let secrets = [secrecy::SecretString::from(support::webhook::SECRET.to_string())];
    let signature = sign(support::webhook::SECRET, &body);
    let delivery = greenlight::ids::DeliveryId("72d3162e-cc78-11e3-81ab-4c9367dc0958".to_string());
    let mut queued = 0usize;
    // Wall time per phase (only with `timed`: clock reads would add to callgrind's counts).
    let mut phases = [Duration::ZERO; 3];
    let mut lap = |phase: usize, since: &mut Instant| {
        if timed {
            let now = Instant::now();
            phases[phase] += now - *since;
            *since = now;
        }
    };
    for _ in 0..rounds {
        let mut since = Instant::now();
        verify_signature(&secrets, Some(&signature), std::hint::black_box(&body)).unwrap();
        lap(0, &mut since);
        let Delivery::Build(trigger) = parse_delivery("pull_request", &delivery, std::hint::black_box(&body)).unwrap() else {
            panic!("the fixture starts a build")
        };
        lap(1, &mut since);
        queued += std::hint::black_box(serde_json::to_vec(&trigger).unwrap()).len();
        lap(2, &mut since);
    }
    println!("{rounds} deliveries of {} bytes parsed, {queued} bytes of triggers", body.len());
    if timed {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / rounds.max(1) as f64;
        println!("per delivery: signature {:.1} µs, parse {:.1} µs, trigger JSON {:.1} µs", per(phases[0]), per(phases[1]), per(phases[2]));
    }
}

/// The CPU a delivery costs with nothing but the HTTP stack intake runs on
/// (axum on hyper on a multi-threaded tokio runtime) and the signature check
/// (and with `parse`, the payload parse and the trigger's JSON): no Redis, no
/// planner. It is the floor under intake's CPU per delivery on this machine,
/// whatever intake does after the signature.
fn floor(parse: bool) {
    use axum::http::StatusCode;
    use greenlight::github::webhook::{Delivery, parse_delivery, verify_signature};
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let secrets = std::sync::Arc::new(vec![secrecy::SecretString::from(support::webhook::SECRET.to_string())]);
    let handler = move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
        let secrets = secrets.clone();
        async move {
            let signature = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok());
            if verify_signature(&secrets, signature, &body).is_err() {
                return (StatusCode::UNAUTHORIZED, String::new());
            }
            if parse {
                let delivery = greenlight::ids::DeliveryId("72d3162e-cc78-11e3-81ab-4c9367dc0958".to_string());
                let Ok(Delivery::Build(trigger)) = parse_delivery("pull_request", &delivery, &body) else {
                    return (StatusCode::BAD_REQUEST, String::new());
                };
                std::hint::black_box(serde_json::to_vec(&trigger).unwrap());
            }
            (StatusCode::ACCEPTED, "{\"message\":\"queued\"}".to_string())
        }
    };
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, axum::Router::new().route("/webhook", axum::routing::post(handler))).await });
        let github = FakeGitHub::start().await;
        let repo = github.repo("bench/floor");
        let hook = Webhook::pull_request(&repo, "opened", 1, "feature", "0123456789abcdef0123456789abcdef01234567");
        let cpu_before = cpu_time();
        let (rate, requests) = tokio::task::spawn_blocking(move || throughput(&url, &hook, 10, 32)).await.unwrap();
        let cpu = cpu_time() - cpu_before;
        println!(
            "floor ({}): {rate:.0} requests/s, {:.1} µs of CPU per request",
            if parse { "HTTP, signature, parse, trigger JSON" } else { "HTTP and signature" },
            cpu.as_secs_f64() * 1e6 / requests as f64
        );
    });
}

/// Waits until the planner has taken every copy off the delivery stream
/// but the one it holds (the first: its `.drone.yml` read fails, so it
/// stays pending); returns how long that took.
async fn drain(app: &TestApp) -> Duration {
    let started = Instant::now();
    while app.queued_deliveries().await > 1 {
        assert!(started.elapsed() < Duration::from_secs(600), "the planner drains the stream");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Measures 1 and 2: the deliveries `wrk` gets accepted, and the CPU they
/// cost. The planner falls behind a burst like this one (about half the
/// copies are still in the stream when `wrk` stops), so the CPU is counted
/// until it has drained the stream: the planner's CPU per copy comes from
/// the drain, when intake is idle, and intake's is the run's CPU less the
/// planner's for the copies it planned meanwhile (at the drain's rate, which
/// reads full batches: if anything, intake's figure is overstated).
async fn measure_intake(app: &TestApp, hook: &Webhook, github_clock: libc::clockid_t) {
    // greenlight's CPU so far: the process's less the fake GitHub's thread (not greenlight's work).
    let greenlight_cpu = || cpu_time().saturating_sub(thread_cpu_time(github_clock));
    let before = app.deliveries_accepted().await;
    let cpu_before = greenlight_cpu();
    let (rate, requests) = throughput(&app.url(), hook, 10, 32);
    let run_cpu = greenlight_cpu() - cpu_before;
    // Counted as added, not as present: the planner acknowledges (and
    // deletes) the copies of a delivery it already holds.
    let stored = app.deliveries_accepted().await - before;
    // wrk does not count the requests still in flight when it stops.
    assert!(
        stored >= requests && stored <= requests + 32,
        "every accepted delivery is in the stream: {stored} stored, {requests} answered"
    );
    println!("intake: {rate:.0} deliveries/s accepted durably ({requests} deliveries in 10 s over 32 connections, all in the stream)");
    let backlog = app.queued_deliveries().await.saturating_sub(1);
    let drain_started = greenlight_cpu();
    let drained_in = drain(app).await;
    let drain_cpu = greenlight_cpu() - drain_started;
    let per = |cpu: Duration, n: u64| cpu.as_secs_f64() * 1e6 / n.max(1) as f64;
    let planner = per(drain_cpu, backlog);
    let intake = (run_cpu.as_secs_f64() * 1e6 - planner * stored.saturating_sub(backlog) as f64) / requests as f64;
    println!(
        "intake CPU: {intake:.1} µs per accepted delivery (the run's {:.2} s of greenlight's CPU less the planner's for the {} copies it planned meanwhile; the fake GitHub's thread and wrk not counted)",
        run_cpu.as_secs_f64(),
        stored.saturating_sub(backlog)
    );
    println!(
        "planner CPU: {planner:.1} µs per copy ({backlog} copies left when wrk stopped, drained in {:.1} s with {:.2} s of CPU); intake and planner together: {:.1} µs per delivery",
        drained_in.as_secs_f64(),
        drain_cpu.as_secs_f64(),
        per(run_cpu + drain_cpu, requests)
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Drives intake with `wrk` (a separate, efficient load generator: an
/// in-process Rust client took as much CPU as greenlight on 2 cores),
/// posting `hook` to `{url}/webhook` over `connections` for `seconds`:
/// requests a second, and requests answered.
fn throughput(url: &str, hook: &Webhook, seconds: u32, connections: u32) -> (f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, &hook.body).unwrap();
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nlocal f = io.open(\"{}\", \"rb\"); wrk.body = f:read(\"*all\"); f:close()\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"X-GitHub-Event\"] = \"pull_request\"\nwrk.headers[\"X-GitHub-Delivery\"] = \"{}\"\nwrk.headers[\"X-Hub-Signature-256\"] = \"{}\"\n",
            body.display(),
            hook.guid,
            hook.signature()
        ),
    )
    .unwrap();
    let out = std::process::Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "-s"])
        .arg(&script)
        .arg(format!("{url}/webhook"))
        .output()
        .expect("wrk runs: install it with `apt-get install wrk`");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !text.contains("Non-2xx"), "wrk: {text}");
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in wrk output: {text}"))
    };
    let requests = text.lines().find_map(|l| l.trim().split_once(" requests in ")).map(|(n, _)| n.parse::<u64>().unwrap()).unwrap();
    (field("Requests/sec:"), requests)
}

async fn latency(app: &TestApp, github: &FakeGitHub, samples: usize) -> Vec<Duration> {
    let repo = github.repo("bench/latency");
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        // A branch each: a push to the same branch would cancel the previous
        // build (auto-cancel), and this measures an idle server.
        let branch = format!("b{i}");
        let sha = repo.push(&branch, &[(".drone.yml", ONE_ECHO_STEP), ("n.txt", &i.to_string())]);
        let hook = Webhook::push(&repo, &branch, &sha);
        let started = Instant::now();
        let answer = app.deliver(&hook).await;
        assert_eq!(answer.status, 202);
        github.wait_for(|| github.statuses(&repo, &sha).into_iter().find(|s| s.state == "pending")).await.expect("pending status");
        times.push(started.elapsed());
    }
    times.sort();
    times
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "parse" || a == "phases") {
        let rounds = args.get(at + 1).map_or(10_000, |n| n.parse().expect("parse N: N rounds"));
        parse_loop(rounds, args[at] == "phases");
        return;
    }
    if let Some(mode) = args.iter().find(|a| *a == "floor" || *a == "floor-parse") {
        floor(mode == "floor-parse");
        return;
    }
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (github, github_clock) = fake_github_on_its_own_thread();
        let app = TestApp::start_durable(&github).await;
        let repo = github.repo("bench/throughput");
        let sha = repo.push("feature", &[(".drone.yml", ONE_ECHO_STEP)]);
        let hook = Webhook::pull_request(&repo, "opened", 1, "feature", &sha);
        // The planner runs meanwhile; keep its GitHub calls for these
        // deliveries cheap (an immediate 503) so it does not starve intake of CPU.
        github.fail(support::fake_github::FailRule {
            method: "GET",
            path_contains: "/repos/bench/throughput/contents".into(),
            status: 503,
            retry_after: Some(3600),
            after_apply: false,
            times: usize::MAX,
        });
        println!("payload: {} bytes, signed", hook.body.len());

        measure_intake(&app, &hook, github_clock).await;

        if args.iter().any(|a| a == "throughput") {
            return;
        }
        let times = latency(&app, &github, 200).await;
        println!(
            "webhook -> pending status: p50 {:.1} ms, p99 {:.1} ms (200 sequential deliveries)",
            percentile(&times, 0.50).as_secs_f64() * 1000.0,
            percentile(&times, 0.99).as_secs_f64() * 1000.0
        );
    });
}
