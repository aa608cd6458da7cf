//! The steps' network end to end, through real builds: a step in
//! `isolated` downloads from a test host standing in for the internet
//! (a network namespace and veth pair the test makes) but cannot connect to
//! the worker's 127.0.0.1 or ::1, nor to cloud metadata; in `none` it
//! reaches nothing. The clone reaches the (fake) GitHub on the worker's
//! loopback in every mode: it is greenlight's business, not the step's.
//! Needs root, `ip`, `python3` and `pasta` (they fail saying what to install).

mod support;

use greenlight::config::RunnerConfig;
use greenlight::runner::network::{DNS_FORWARDER, NetworkSettings};
use greenlight::store::Status;
use std::net::TcpListener;
use support::CheckRunState::Success;
use support::Scenario;
use support::nethost::{self, TestHost};

/// Connects to `argv[1]:argv[2]` and prints `ADDR connected` or `ADDR <errno>`.
const CONNECT_PY: &str = r#"
import errno, socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10).close()
    print(sys.argv[1], "connected")
except socket.timeout:
    print(sys.argv[1], "timeout")
except OSError as e:
    print(sys.argv[1], errno.errorcode.get(e.errno, str(e)))
"#;

/// Downloads `argv[1]` and prints `downloaded N bytes`, or the error.
const DOWNLOAD_PY: &str = r#"
import sys, urllib.request
try:
    print("downloaded", len(urllib.request.urlopen(sys.argv[1], timeout=20).read()), "bytes")
except Exception as e:
    print("download failed:", e)
"#;

fn network(mode: &str) -> RunnerConfig {
    nethost::require_root();
    nethost::require("pasta", "passt");
    RunnerConfig { network: NetworkSettings::parse(mode, "").unwrap(), ..support::app::runner_config() }
}

/// What a step printed when probing each target; the build itself must pass.
async fn probe_from_a_step(mode: &str, host: &TestHost) -> String {
    let (v4, v6) = (TcpListener::bind("127.0.0.1:0").unwrap(), TcpListener::bind("[::1]:0").unwrap());
    let ctx = Scenario::new().runner(network(mode)).start().await;
    let pipeline = format!(
        "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: probe\n  commands:\n  - python3 download.py {url}\n  - python3 connect.py 127.0.0.1 {p4}\n  - python3 connect.py ::1 {p6}\n  - python3 connect.py 169.254.169.254 80\n  - cat /etc/resolv.conf\n",
        url = host.url("file"),
        p4 = v4.local_addr().unwrap().port(),
        p6 = v6.local_addr().unwrap().port(),
    );
    let files = [(".drone.yml", pipeline.as_str()), ("connect.py", CONNECT_PY), ("download.py", DOWNLOAD_PY)];
    let sha = ctx.push_and_deliver("main", &files).await;
    ctx.expect_check_run(&sha, "default (push)", Success).await;
    let build = ctx.expect_build_done(1).await;
    assert_eq!(build.status, Status::Success, "the clone reached GitHub on the worker's loopback");
    ctx.log(&build, "probe").await
}

#[tokio::test]
async fn an_isolated_step_reaches_the_internet_but_not_the_workers_loopback_or_metadata() {
    let host = TestHost::start();
    host.put("file", &[7u8; 100_000]);

    let log = probe_from_a_step("isolated", &host).await;
    assert!(log.contains("downloaded 100000 bytes"), "{log}");
    assert!(!log.contains("connected\n"), "nothing on the worker's loopback or link-local is reachable: {log}");
    assert!(log.contains("169.254.169.254 EACCES"), "metadata is refused at once, not timed out: {log}");
    assert!(log.contains(&format!("nameserver {DNS_FORWARDER}")), "DNS goes through the stage's forwarder: {log}");
}

#[tokio::test]
async fn a_step_without_network_reaches_nothing() {
    let host = TestHost::start();
    host.put("file", &[7u8; 1000]);

    let log = probe_from_a_step("none", &host).await;
    assert!(log.contains("download failed"), "{log}");
    assert!(!log.contains("downloaded"), "{log}");
    assert!(!log.contains("connected\n"), "{log}");
}
