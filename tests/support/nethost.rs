//! A test host that stands in for the internet: a network namespace the
//! test creates, joined to the worker's by a veth pair on a /30 of its own
//! in 10.213.0.0/16, with an HTTP server (and, when asked, a DNS responder)
//! inside. Names and subnets are unique per test and per process, so tests
//! run in parallel; everything goes when the host is dropped.
//!
//! Needs root, `ip` (iproute2) and `python3`; without them it panics saying
//! what to install rather than skip.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The port the HTTP server listens on inside the test host's namespace.
pub const HTTP_PORT: u16 = 8080;

/// The address the DNS responder answers every A query with.
pub const DNS_ANSWER: Ipv4Addr = Ipv4Addr::new(10, 9, 8, 7);

/// How long the test host's servers may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A DNS responder: answers every query with one A record, [`DNS_ANSWER`].
const DNS_RESPONDER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
print("ready", flush=True)
while True:
    q, peer = s.recvfrom(512)
    end = q.index(b"\0", 12) + 5
    answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes(int(x) for x in sys.argv[2].split("."))
    s.sendto(q[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + q[12:end] + answer, peer)
"#;

/// One test host; torn down on drop.
pub struct TestHost {
    /// The namespace's name (`ip netns`).
    pub name: String,
    /// The test host's address.
    pub addr: Ipv4Addr,
    /// The worker's end of the veth pair (one of the worker's own addresses).
    pub gateway: Ipv4Addr,
    /// The /30 both ends are in.
    pub subnet: String,
    veth: String,
    servers: Vec<Child>,
    /// What the HTTP server serves.
    pub dir: tempfile::TempDir,
}

/// Panics naming the package when a program the test host needs is missing.
pub fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()));
    assert!(found, "{program} is not installed: these tests need it (Debian: apt-get install {package})");
}

/// Panics unless the tests run as root (network namespaces need it).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the step network tests need root: they create network namespaces and veth pairs");
}

fn ip(args: &[&str]) -> std::process::Output {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out
}

impl TestHost {
    /// Creates the namespace, the veth pair and the HTTP server, serving an
    /// empty directory ([`Self::dir`]); returns once the server answers.
    pub fn start() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        require_root();
        require("ip", "iproute2");
        require("python3", "python3");
        let unique = std::process::id().wrapping_mul(131).wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed));
        let name = format!("gl-test-{}-{unique:x}", std::process::id());
        let veth = format!("glt{:08x}", unique);
        let (gateway, addr) = free_subnet(unique);
        let subnet = format!("{gateway}/30");
        ip(&["netns", "add", &name]);
        let mut host = Self { name, addr, gateway, subnet, veth, servers: Vec::new(), dir: tempfile::tempdir().unwrap() };
        let peer = format!("{}p", host.veth);
        ip(&["link", "add", &host.veth, "type", "veth", "peer", "name", &peer, "netns", &host.name]);
        ip(&["addr", "add", &format!("{gateway}/30"), "dev", &host.veth]);
        ip(&["link", "set", &host.veth, "up"]);
        ip(&["-n", &host.name, "addr", "add", &format!("{addr}/30"), "dev", &peer]);
        ip(&["-n", &host.name, "link", "set", &peer, "up"]);
        ip(&["-n", &host.name, "link", "set", "lo", "up"]);
        let dir = host.dir.path().to_str().unwrap().to_string();
        let server =
            host.spawn(&["python3", "-m", "http.server", "--bind", &addr.to_string(), "--directory", &dir, &HTTP_PORT.to_string()]);
        host.servers.push(server);
        let target = std::net::SocketAddr::from((addr, HTTP_PORT));
        super::wait::within_blocking(READY_TIMEOUT, "the test host's HTTP server", || {
            std::net::TcpStream::connect_timeout(&target, Duration::from_millis(200)).ok()
        });
        host
    }

    /// Starts a DNS responder on the test host's address (UDP 53), which
    /// answers every A query with [`DNS_ANSWER`]; returns once it listens.
    pub fn serve_dns(&mut self) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]);
        self.servers.push(dns_responder(cmd, self.addr));
    }

    /// Writes a file the HTTP server serves.
    pub fn put(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.dir.path().join(name), bytes).unwrap();
    }

    /// The URL of a served file.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}:{HTTP_PORT}/{name}", self.addr)
    }

    fn spawn(&self, argv: &[&str]) -> Child {
        Command::new("ip").args(["netns", "exec", &self.name]).args(argv).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    }

    /// The directory served (for files written by other means).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// Starts the DNS responder through `launcher` (e.g. `ip netns exec NAME`)
/// on `addr`:53; returns once it listens.
fn dns_responder(mut launcher: Command, addr: Ipv4Addr) -> Child {
    let mut child = launcher
        .args(["python3", "-c", DNS_RESPONDER, &addr.to_string(), &DNS_ANSWER.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the DNS responder did not start on {addr}:53");
    child
}

/// A DNS responder on the worker's own loopback (as systemd-resolved
/// listens on 127.0.0.53), at an address unique to this process; killed on drop.
pub struct LoopbackResolver {
    /// Where it listens (port 53).
    pub addr: Ipv4Addr,
    child: Child,
}

impl LoopbackResolver {
    /// Starts it; returns once it listens.
    pub fn start() -> Self {
        let [_, _, b, c] = std::process::id().to_be_bytes();
        let addr = Ipv4Addr::new(127, 53, b, c.max(2));
        let launcher = Command::new("env");
        Self { addr, child: dns_responder(launcher, addr) }
    }
}

impl Drop for LoopbackResolver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A /30 in 10.213.0.0/16 no interface of the worker uses, starting from
/// one derived from `unique`: (the worker's end, the test host's end).
fn free_subnet(unique: u32) -> (Ipv4Addr, Ipv4Addr) {
    let used = String::from_utf8(ip(&["-4", "-o", "addr", "show"]).stdout).unwrap();
    for step in 0..16384u32 {
        let block = (unique.wrapping_mul(2654435761).wrapping_add(step)) % 16384;
        let base = u32::from(Ipv4Addr::new(10, 213, 0, 0)) + block * 4;
        let (gateway, addr) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
        if !used.contains(&format!(" {gateway}/")) && !used.contains(&format!(" {addr}/")) {
            return (gateway, addr);
        }
    }
    panic!("no free /30 left in 10.213.0.0/16");
}

impl Drop for TestHost {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = Command::new("ip").args(["link", "del", &self.veth]).stderr(Stdio::null()).status();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).stderr(Stdio::null()).status();
    }
}
