//! The steps' network on its own (`greenlight::runner::network`): a process
//! placed in a stage's namespace, as the sandbox places a step, reaches a
//! test host standing in for the internet in `isolated`, but not the
//! worker's loopback, its own addresses, link-local or denied CIDRs; `none`
//! reaches nothing; `host` reaches everything. These tests need root, `ip`,
//! `python3` and `pasta`: without them they fail saying what to install.

mod support;

use greenlight::runner::network::{self, DNS_FORWARDER, NetworkMode, NetworkSettings, StageNetwork};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};
use support::nethost::{self, DNS_ANSWER, TestHost};

/// Connects to `argv[1]:argv[2]` and prints `connected` or the errno's name.
const CONNECT: &str = r#"
import errno, socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10).close()
    print("connected")
except socket.timeout:
    print("timeout")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e)))
"#;

/// Downloads `argv[1]` and prints how many bytes came.
const DOWNLOAD: &str = "import sys, urllib.request\nprint(len(urllib.request.urlopen(sys.argv[1], timeout=20).read()))";

/// Sends an A query for `example.test` to `argv[1]`:53 and prints the first
/// answer's address.
const RESOLVE: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x04test\x00\x00\x01\x00\x01", (sys.argv[1], 53))
r = s.recv(512)
print(".".join(str(b) for b in r[-4:]))
"#;

fn settings(mode: &str, deny: &str) -> NetworkSettings {
    NetworkSettings::parse(mode, deny).unwrap()
}

async fn start(settings: &NetworkSettings) -> StageNetwork {
    nethost::require_root();
    if settings.mode == NetworkMode::Isolated {
        nethost::require("pasta", "passt");
    }
    StageNetwork::start(settings).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Runs python3 with `script` and `args`, in `netns` when given (as the
/// sandbox places a step), and returns what it printed.
fn python_in(netns: Option<BorrowedFd<'_>>, script: &str, args: &[&str]) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    if let Some(ns) = netns {
        let raw = ns.as_raw_fd();
        // SAFETY: `enter` is async-signal-safe; the namespace outlives the spawn.
        unsafe {
            cmd.pre_exec(move || network::enter(raw));
        }
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "python3 failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn connect(network: &StageNetwork, target: SocketAddr) -> String {
    python_in(network.netns(), CONNECT, &[&target.ip().to_string(), &target.port().to_string()])
}

/// Listeners on the worker's loopback, both families.
fn loopback_listeners() -> (TcpListener, TcpListener) {
    (TcpListener::bind("127.0.0.1:0").unwrap(), TcpListener::bind("[::1]:0").unwrap())
}

fn test_host_with_file() -> TestHost {
    let host = TestHost::start();
    host.put("file", &[7u8; 100_000]);
    host
}

#[tokio::test]
async fn isolated_reaches_the_test_host_but_not_the_workers_loopback_addresses_or_link_local() {
    let host = test_host_with_file();
    let (v4, v6) = loopback_listeners();
    let everywhere = TcpListener::bind("0.0.0.0:0").unwrap();
    let network = start(&settings("isolated", "")).await;
    assert!(network.netns().is_some() && network.share_net());
    assert_eq!(network.resolv_conf(), Some(format!("nameserver {DNS_FORWARDER}\n").as_str()));

    assert_eq!(python_in(network.netns(), DOWNLOAD, &[&host.url("file")]), "100000");
    // The namespace's loopback is its own and empty: refused, not the worker's listener.
    assert_eq!(connect(&network, v4.local_addr().unwrap()), "ECONNREFUSED");
    assert_eq!(connect(&network, v6.local_addr().unwrap()), "ECONNREFUSED");
    // The worker's own address (its end of the veth) is cut, past a listener on all addresses.
    let own = SocketAddr::from((host.gateway, everywhere.local_addr().unwrap().port()));
    assert_eq!(connect(&network, own), "EACCES");
    let started = Instant::now();
    assert_eq!(connect(&network, "169.254.169.254:80".parse().unwrap()), "EACCES");
    // Scoped to the namespace's interface (index 2, after lo): unscoped, the kernel refuses it anyway.
    assert_eq!(python_in(network.netns(), CONNECT, &["fe80::1%2", "80"]), "EACCES");
    assert!(started.elapsed() < Duration::from_secs(5), "link-local fails fast, not by timeout: {:?}", started.elapsed());
    network.stop().await;
}

#[tokio::test]
async fn isolated_cannot_reach_a_denied_cidr() {
    let host = test_host_with_file();
    let network = start(&settings("isolated", &format!("198.51.100.0/24, {}", host.subnet))).await;
    assert_eq!(connect(&network, SocketAddr::from((host.addr, nethost::HTTP_PORT))), "EACCES");
    network.stop().await;
}

#[tokio::test]
async fn none_reaches_neither_the_test_host_nor_the_workers_loopback() {
    let host = test_host_with_file();
    let (v4, v6) = loopback_listeners();
    let network = start(&settings("none", "")).await;
    assert!(network.netns().is_some() && network.resolv_conf().is_none());
    assert_eq!(connect(&network, SocketAddr::from((host.addr, nethost::HTTP_PORT))), "ENETUNREACH");
    assert_eq!(connect(&network, v4.local_addr().unwrap()), "ECONNREFUSED");
    assert_eq!(connect(&network, v6.local_addr().unwrap()), "ECONNREFUSED");
    network.stop().await;
}

#[tokio::test]
async fn host_reaches_both_the_test_host_and_the_workers_loopback() {
    let host = test_host_with_file();
    let (v4, v6) = loopback_listeners();
    let network = start(&settings("host", "")).await;
    assert!(network.netns().is_none() && network.resolv_conf().is_none() && network.helper_pid().is_none());
    assert_eq!(python_in(network.netns(), DOWNLOAD, &[&host.url("file")]), "100000");
    assert_eq!(connect(&network, v4.local_addr().unwrap()), "connected");
    assert_eq!(connect(&network, v6.local_addr().unwrap()), "connected");
    network.stop().await;
}

#[tokio::test]
async fn the_startup_probe_passes_for_every_mode_here() {
    nethost::require_root();
    nethost::require("pasta", "passt");
    for mode in ["isolated", "none", "host"] {
        network::probe(&settings(mode, "")).await.unwrap_or_else(|e| panic!("{mode}: {e}"));
    }
}

/// The kernel's name of a namespace, as `/proc/*/ns/net` and `/proc/*/fd/*` show it.
fn namespace_name(ns: BorrowedFd<'_>) -> String {
    std::fs::read_link(format!("/proc/self/fd/{}", ns.as_raw_fd())).unwrap().to_string_lossy().into_owned()
}

/// Whether any process is in, or holds a descriptor of, the namespace.
fn namespace_held(name: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok()).any(|proc| {
        let ns = std::fs::read_link(proc.path().join("ns/net")).is_ok_and(|l| l.to_string_lossy() == name);
        let fd = std::fs::read_dir(proc.path().join("fd"))
            .map(|fds| fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == name)))
            .unwrap_or(false);
        ns || fd
    })
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn after_stop_or_drop_no_helper_is_left_and_the_namespace_is_gone() {
    for by_drop in [false, true] {
        let network = start(&settings("isolated", "")).await;
        let pid = network.helper_pid().expect("pasta runs for isolated");
        let name = namespace_name(network.netns().unwrap());
        assert!(alive(pid) && namespace_held(&name));
        if by_drop {
            drop(network);
        } else {
            network.stop().await;
        }
        assert!(!alive(pid), "pasta ({pid}) is left after {}", if by_drop { "drop" } else { "stop" });
        assert!(!namespace_held(&name), "{name} is still held");
    }
}

#[tokio::test]
async fn when_the_helper_dies_steps_fail_fast_and_stop_does_not_hang() {
    let host = test_host_with_file();
    let network = start(&settings("isolated", "")).await;
    let pid = network.helper_pid().unwrap();
    // SAFETY: kill on pasta's pid, which this test's network owns and has not reaped.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let started = Instant::now();
    let outcome = connect(&network, SocketAddr::from((host.addr, nethost::HTTP_PORT)));
    assert_ne!(outcome, "connected");
    assert!(started.elapsed() < Duration::from_secs(5), "{outcome} after {:?}", started.elapsed());
    tokio::time::timeout(Duration::from_secs(10), network.stop()).await.expect("stop returns");
}

/// Re-runs this test binary's `crash_inner`, which starts a stage network
/// and waits, kills it with SIGKILL (a greenlight crash: no destructor
/// runs), and checks that the kernel takes pasta with it.
#[test]
fn a_greenlight_killed_outright_leaves_no_helper() {
    use std::io::BufRead;
    nethost::require_root();
    nethost::require("pasta", "passt");
    let mut inner = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_inner", "--ignored", "--nocapture"])
        .env("GREENLIGHT_TEST_CRASH_INNER", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(inner.stdout.take().unwrap()).lines();
    let pid: u32 = lines.find_map(|l| l.unwrap().strip_prefix("pasta ").map(|p| p.parse().unwrap())).expect("the inner test names pasta");
    assert!(alive(pid));
    inner.kill().unwrap();
    inner.wait().unwrap();
    support::wait::within_blocking(Duration::from_secs(10), "pasta to die with its greenlight", || (!alive(pid)).then_some(()));
}

/// The inside of the test above (does nothing when run on its own).
#[tokio::test]
#[ignore = "run by a_greenlight_killed_outright_leaves_no_helper"]
async fn crash_inner() {
    if std::env::var_os("GREENLIGHT_TEST_CRASH_INNER").is_none() {
        return;
    }
    let network = start(&settings("isolated", "")).await;
    println!("pasta {}", network.helper_pid().unwrap());
    std::future::pending::<()>().await;
}

/// Re-runs this test binary's `dns_forwarding_inner` in a private mount
/// namespace whose `/etc/resolv.conf` names `resolver`, so pasta (which
/// reads it) forwards there.
fn query_the_forwarder_with_the_host_resolver_at(resolver: std::net::Ipv4Addr) {
    nethost::require("unshare", "util-linux");
    nethost::require("pasta", "passt");
    let resolv = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(resolv.path(), format!("nameserver {resolver}\n")).unwrap();
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind \"$0\" /etc/resolv.conf && exec \"$1\" --exact dns_forwarding_inner --ignored --nocapture",
        ])
        .arg(resolv.path())
        .arg(std::env::current_exe().unwrap())
        .env("GREENLIGHT_TEST_DNS_INNER", "1")
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.contains("1 passed"), "{said}");
}

#[test]
fn a_dns_query_to_the_forwarder_reaches_the_hosts_first_resolver() {
    let mut host = TestHost::start();
    host.serve_dns();
    query_the_forwarder_with_the_host_resolver_at(host.addr);
}

#[test]
fn a_dns_query_to_the_forwarder_reaches_a_resolver_on_the_workers_loopback() {
    nethost::require_root();
    let resolver = nethost::LoopbackResolver::start();
    query_the_forwarder_with_the_host_resolver_at(resolver.addr);
}

/// The inside of the tests above (does nothing when run on its own).
#[tokio::test]
#[ignore = "run by the a_dns_query_to_the_forwarder_* tests"]
async fn dns_forwarding_inner() {
    if std::env::var_os("GREENLIGHT_TEST_DNS_INNER").is_none() {
        return;
    }
    let network = start(&settings("isolated", "")).await;
    assert_eq!(python_in(network.netns(), RESOLVE, &[DNS_FORWARDER]), DNS_ANSWER.to_string());
    network.stop().await;
}

/// Download throughput of a 200 MB file from the test host, by a process
/// in an `isolated` stage network against one in the host's, and the time
/// a stage network takes to start and stop:
/// `cargo test --test step_network -- --ignored --nocapture bench_` (what is
/// timed is curl and pasta, not greenlight code).
#[tokio::test]
#[ignore = "a benchmark"]
async fn bench_isolated_download_and_setup() {
    nethost::require("curl", "curl");
    let host = TestHost::start();
    let big = std::fs::File::create(host.root().join("big")).unwrap();
    big.set_len(200 * 1024 * 1024).unwrap();
    let network = start(&settings("isolated", "")).await;
    let url = host.url("big");
    let (mut through, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        through.push(curl_speed(network.netns(), &url) / 1e6);
        direct.push(curl_speed(None, &url) / 1e6);
    }
    println!("isolated MB/s: {through:.0?}\nhost MB/s:     {direct:.0?}");
    let (through, direct) = (median(through), median(direct));
    println!("median: isolated {through:.0} MB/s, host {direct:.0} MB/s ({:.0}%)", 100.0 * through / direct);
    let spawn = |netns| median((0..5).map(|_| spawn_true(netns, 100)).collect());
    let (inside, outside) = (spawn(network.netns()), spawn(None));
    println!("spawning /bin/true: {inside:.3} ms placed in the namespace, {outside:.3} ms not (per spawn, median of 5 x 100)");
    network.stop().await;
    let (mut starts, mut stops) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let started = Instant::now();
        let network = start(&settings("isolated", "")).await;
        starts.push(started.elapsed().as_secs_f64() * 1000.0);
        let stopping = Instant::now();
        network.stop().await;
        stops.push(stopping.elapsed().as_secs_f64() * 1000.0);
    }
    println!("isolated start: median {:.1} ms, stop: median {:.1} ms (20 each)", median(starts), median(stops));
}

/// Milliseconds per spawn of `/bin/true`, placed in `netns` as a step is.
fn spawn_true(netns: Option<BorrowedFd<'_>>, times: u32) -> f64 {
    let started = Instant::now();
    for _ in 0..times {
        let mut cmd = Command::new("/bin/true");
        if let Some(ns) = netns {
            let raw = ns.as_raw_fd();
            // SAFETY: `enter` is async-signal-safe; the namespace outlives the spawn.
            unsafe {
                cmd.pre_exec(move || network::enter(raw));
            }
        }
        assert!(cmd.status().unwrap().success());
    }
    started.elapsed().as_secs_f64() * 1000.0 / f64::from(times)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// curl's download speed in bytes per second.
fn curl_speed(netns: Option<BorrowedFd<'_>>, url: &str) -> f64 {
    let script = "import subprocess, sys\nprint(subprocess.run(['curl', '-sS', '-o', '/dev/null', '-w', '%{speed_download}', sys.argv[1]], capture_output=True, text=True, check=True).stdout)";
    python_in(netns, script, &[url]).parse().unwrap()
}
