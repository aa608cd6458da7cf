//! The network a stage's steps get (`GREENLIGHT_STEP_NETWORK`,
//! `GREENLIGHT_STEP_DENY`).
//!
//! Why it is built this way:
//! - Sharing the host's network namespace lets a step reach everything the
//!   worker can: services on its loopback (Redis, the bot's own port), its
//!   other addresses, cloud metadata at 169.254.169.254. `isolated` (the
//!   default) gives each stage a network namespace of its own instead; steps
//!   get outbound access through pasta (Debian's `passt`), a user-mode
//!   network stack that turns the namespace's packets into ordinary sockets
//!   of the host. Measured on a loaded 2-core machine: pasta kept 55–100%
//!   of the host's download throughput (a 200 MB file, ~1.5 GB/s direct)
//!   where slirp4netns kept 40–47%; pasta is ready in ~20 ms.
//! - pasta runs with `-T none -U none --no-map-gw`: no path from the
//!   namespace to the host's loopback. The namespace's own 127.0.0.1 and ::1
//!   are its own, empty loopback.
//! - What pasta would still reach (link-local addresses, the worker's own
//!   addresses, the operator's `GREENLIGHT_STEP_DENY`) is cut inside the
//!   namespace by `prohibit` policy-routing rules: they are looked up before
//!   any route, so no more specific route (the interface's own `fe80::/64`)
//!   gets around them, and a connection fails at once (EACCES) instead of
//!   timing out. A step cannot change them: it has no capabilities.
//! - DNS: the step's resolver is [`DNS_FORWARDER`], which pasta forwards to
//!   the host's first resolver (`--dns-forward`), so a resolver on the
//!   host's loopback (systemd-resolved) works too. Only DNS over UDP to
//!   that address gets past the link-local rule: this pasta forwards only
//!   UDP, and sent TCP on to the real link-local address (measured), so
//!   DNS over TCP (truncated answers) is refused.
//! - The namespace is made by a short-lived thread (`unshare`, then open
//!   `/proc/thread-self/ns/net`, then end) and is held by greenlight as a
//!   descriptor: no holder process, and it disappears with the last
//!   descriptor and the last process in it.
//! - pasta runs in the foreground as a child of one greenlight thread that
//!   lives as long as the process, with `PR_SET_PDEATHSIG(SIGKILL)`: if
//!   greenlight dies, even by SIGKILL, the kernel kills pasta (it keeps uid
//!   0, `--runas 0`, so the signal is not reset; as `nobody` it could not
//!   enter a namespace owned by root anyway). pasta itself drops all
//!   capabilities but CAP_SYS_ADMIN and CAP_NET_BIND_SERVICE, pivots into an
//!   empty mount namespace and runs under seccomp. slirp4netns was not
//!   chosen: besides the throughput, its `--enable-sandbox` run as root
//!   unmounted the host's shared mounts (`/run/netns/*`) here.
//! - Namespaces need root in the initial user namespace: `isolated` needs
//!   greenlight to run as root. `none` without root leaves the namespace to
//!   bwrap ([`StageNetwork::share_net`]).

use ipnet::IpNet;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The address steps use as their DNS server in `isolated`; pasta forwards
/// DNS sent there to the host's first resolver. Link-local, so it never
/// shadows an address on the internet.
pub const DNS_FORWARDER: &str = "169.254.1.1";

/// How long pasta may take to set up a namespace (it takes ~20 ms).
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the startup check waits for a connection that must fail.
pub const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Priority of the rule that lets DNS (UDP) through to [`DNS_FORWARDER`]: before
/// the `prohibit` rules, after the kernel's `local` lookup (priority 0).
const ALLOW_PRIORITY: u32 = 100;

/// Priority of the `prohibit` rules.
const DENY_PRIORITY: u32 = 200;

/// Always unreachable from `isolated`: link-local addresses (cloud metadata
/// services live there). Loopback needs no rule: the namespace has its own.
const LINK_LOCAL: [&str; 2] = ["169.254.0.0/16", "fe80::/10"];

/// What steps' network is (`GREENLIGHT_STEP_NETWORK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// A namespace per stage with outbound access through pasta; the
    /// worker's loopback, its addresses, link-local and denied CIDRs are
    /// unreachable. The default.
    Isolated,
    /// The host's network namespace: steps reach whatever the worker can.
    Host,
    /// A namespace with only `lo` up: no network at all.
    None,
}

/// How steps' network is set up, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSettings {
    /// `GREENLIGHT_STEP_NETWORK`.
    pub mode: NetworkMode,
    /// `GREENLIGHT_STEP_DENY`: more destinations steps may not reach (`isolated`).
    pub deny: Vec<IpNet>,
}

/// Why steps' network cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Making network namespaces needs root.
    #[error(
        "GREENLIGHT_STEP_NETWORK={mode} needs greenlight to run as root (it makes a network namespace per stage); run it as root, or set GREENLIGHT_STEP_NETWORK=host (steps share the worker's network) or GREENLIGHT_STEP_NETWORK=none"
    )]
    NotRoot {
        /// The mode asked for.
        mode: &'static str,
    },
    /// A program is not installed.
    #[error(
        "{program} is not on PATH; GREENLIGHT_STEP_NETWORK=isolated needs it: install it (Debian/Ubuntu: apt-get install {package}), or set GREENLIGHT_STEP_NETWORK=host or none"
    )]
    Missing {
        /// The program looked for.
        program: &'static str,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// The kernel refused a namespace, or a descriptor or pipe.
    #[error("cannot make a network namespace for steps: {0}; set GREENLIGHT_STEP_NETWORK=host if this kernel does not allow it")]
    Namespace(std::io::Error),
    /// `ip` could not apply the rules inside the namespace.
    #[error("cannot set up the steps' network namespace (ip: {0}); check GREENLIGHT_STEP_DENY")]
    Rules(String),
    /// pasta did not start.
    #[error("pasta did not set up the steps' network: {0}; fix the cause, or set GREENLIGHT_STEP_NETWORK=host or none")]
    Helper(String),
    /// The startup check found something steps must not reach not cut as designed.
    #[error(
        "the steps' isolated network does not cut {0}; this is a bug or an unexpected pasta version: set GREENLIGHT_STEP_NETWORK=host or none until it is fixed"
    )]
    Leaky(String),
}

impl NetworkMode {
    /// The value of `GREENLIGHT_STEP_NETWORK` that selects it.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Isolated => "isolated",
            NetworkMode::Host => "host",
            NetworkMode::None => "none",
        }
    }
}

impl NetworkSettings {
    /// Steps on the host's network, nothing denied.
    pub fn host() -> Self {
        Self { mode: NetworkMode::Host, deny: Vec::new() }
    }

    /// Reads `GREENLIGHT_STEP_NETWORK` (`isolated` when empty) and
    /// `GREENLIGHT_STEP_DENY` (CIDRs or addresses, separated by commas or
    /// spaces). The error names the variable and the bad value.
    pub fn parse(mode: &str, deny: &str) -> Result<Self, String> {
        let mode = match mode.trim() {
            "" | "isolated" => NetworkMode::Isolated,
            "host" => NetworkMode::Host,
            "none" => NetworkMode::None,
            other => return Err(format!("GREENLIGHT_STEP_NETWORK: {other:?} is not one of isolated (the default), host, none")),
        };
        let deny = deny
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("GREENLIGHT_STEP_DENY: {s:?} is not a CIDR (like 10.0.0.0/8 or fd00::/8) or an address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if mode == NetworkMode::Host && !deny.is_empty() {
            return Err(
                "GREENLIGHT_STEP_DENY needs GREENLIGHT_STEP_NETWORK=isolated: steps on the host's network reach everything the worker can"
                    .to_string(),
            );
        }
        Ok(Self { mode, deny })
    }
}

/// Whether greenlight runs as root.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Finds a program steps' network needs, or says which package has it.
fn require(program: &'static str, package: &'static str) -> Result<PathBuf, NetworkError> {
    crate::text::find_on_path(program).ok_or(NetworkError::Missing { program, package })
}

/// Checks at startup that steps' network can be made as configured: root,
/// `pasta` and `ip` present, and (for `isolated`) that a namespace starts
/// and reaches neither the worker's loopback nor link-local addresses.
pub async fn probe(settings: &NetworkSettings) -> Result<(), NetworkError> {
    if settings.mode == NetworkMode::Host {
        tracing::warn!("GREENLIGHT_STEP_NETWORK=host: steps share the worker's network and reach its loopback services");
        return Ok(());
    }
    match (is_root(), settings.mode) {
        // bwrap's own empty namespace does for `none`.
        (false, NetworkMode::None) => return Ok(()),
        (false, mode) => return Err(NetworkError::NotRoot { mode: mode.as_str() }),
        (true, _) => {}
    }
    require("ip", "iproute2")?;
    if settings.mode == NetworkMode::Isolated {
        require("pasta", "passt")?;
    }
    let network = StageNetwork::start(settings).await?;
    let leak = match network.netns() {
        Some(ns) if settings.mode == NetworkMode::Isolated => unreachable_from(ns),
        _ => Ok(()),
    };
    network.stop().await;
    leak
}

/// Connects from inside the namespace to what must be unreachable, and
/// checks each fails the way the design says: a listener on the worker's
/// 127.0.0.1 and ::1 is refused (the namespace's own loopback is empty),
/// the metadata address is prohibited at once (not a timeout).
fn unreachable_from(ns: BorrowedFd<'_>) -> Result<(), NetworkError> {
    use std::io::ErrorKind::{ConnectionRefused, PermissionDenied};
    let v4 = std::net::TcpListener::bind("127.0.0.1:0").map_err(NetworkError::Namespace)?;
    let mut targets = vec![
        (v4.local_addr().map_err(NetworkError::Namespace)?, ConnectionRefused),
        ("169.254.169.254:80".parse().expect("an address"), PermissionDenied),
    ];
    // A worker without IPv6 has no ::1 to protect.
    let v6 = std::net::TcpListener::bind("[::1]:0").ok();
    targets.extend(v6.as_ref().and_then(|l| l.local_addr().ok()).map(|a| (a, ConnectionRefused)));
    let ns = ns.try_clone_to_owned().map_err(NetworkError::Namespace)?;
    let wrong = std::thread::spawn(move || {
        // This thread only, which ends after the check.
        enter(ns.as_raw_fd())?;
        Ok(targets.into_iter().find_map(|(target, expected)| match std::net::TcpStream::connect_timeout(&target, PROBE_CONNECT_TIMEOUT) {
            Ok(_) => Some(format!("{target} (connected)")),
            Err(e) if e.kind() == expected => None,
            Err(e) => Some(format!("{target} ({e}, where {expected:?} was expected)")),
        }))
    })
    .join()
    .expect("the probe thread does not panic")
    .map_err(NetworkError::Namespace)?;
    match wrong {
        Some(what) => Err(NetworkError::Leaky(what)),
        None => Ok(()),
    }
}

/// pasta, running for one stage; killed when dropped.
#[derive(Debug)]
struct Helper {
    child: Child,
    /// Whether it has been killed or found dead, and reaped.
    reaped: bool,
}

impl Helper {
    /// Kills pasta and reaps it; returns how it ended if it had died on its
    /// own (steps then lost their network: connections fail at once).
    fn kill(&mut self) -> Option<std::process::ExitStatus> {
        if std::mem::replace(&mut self.reaped, true) {
            return None;
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// The network of one stage's steps: a namespace (unless `host`) and, for
/// `isolated`, the pasta process that gives it outbound access. Stopping
/// or dropping it kills pasta; the namespace goes with the last process in
/// it and this descriptor.
#[derive(Debug)]
pub struct StageNetwork {
    netns: Option<OwnedFd>,
    helper: Option<Helper>,
    resolv_conf: Option<String>,
    share_net: bool,
}

impl StageNetwork {
    /// Sets up a stage's network as configured and returns once it works
    /// (for `isolated`: pasta has configured the namespace).
    pub async fn start(settings: &NetworkSettings) -> Result<StageNetwork, NetworkError> {
        let host = Self { netns: None, helper: None, resolv_conf: None, share_net: true };
        match settings.mode {
            NetworkMode::Host => return Ok(host),
            // bwrap makes an empty namespace itself (no --share-net).
            NetworkMode::None if !is_root() => return Ok(Self { share_net: false, ..host }),
            NetworkMode::None => {}
            NetworkMode::Isolated if !is_root() => return Err(NetworkError::NotRoot { mode: "isolated" }),
            NetworkMode::Isolated => {}
        }
        let ns = new_namespace().map_err(NetworkError::Namespace)?;
        if settings.mode == NetworkMode::None {
            run_ip(&require("ip", "iproute2")?, "-4", ns.as_fd(), "link set lo up\n").await?;
            return Ok(Self { netns: Some(ns), ..host });
        }
        let pasta = require("pasta", "passt")?;
        // The rules go in while pasta sets up the namespace: no step runs before both are done.
        let (cut, helper) = tokio::join!(cut(&settings.deny, ns.as_fd()), start_pasta(&pasta, ns.as_fd()));
        cut?;
        Ok(Self { netns: Some(ns), helper: Some(helper?), resolv_conf: Some(format!("nameserver {DNS_FORWARDER}\n")), share_net: true })
    }

    /// The namespace steps must enter (`setns(fd, CLONE_NEWNET)` as root,
    /// before dropping to the sandbox user). `None`: steps stay where they
    /// are (the host's namespace, or bwrap's own when [`Self::share_net`] is false).
    pub fn netns(&self) -> Option<BorrowedFd<'_>> {
        self.netns.as_ref().map(|ns| ns.as_fd())
    }

    /// What to bind over `/etc/resolv.conf` in the sandbox; `None`: keep the host's.
    pub fn resolv_conf(&self) -> Option<&str> {
        self.resolv_conf.as_deref()
    }

    /// Whether bwrap should keep the network namespace it starts in
    /// (`--share-net`). False only for `none` when greenlight is not root:
    /// then bwrap's own new namespace (only `lo`) is the isolation.
    pub fn share_net(&self) -> bool {
        self.share_net
    }

    /// The pasta process's id, if one runs for this stage.
    pub fn helper_pid(&self) -> Option<u32> {
        self.helper.as_ref().map(|h| h.child.id())
    }

    /// Kills pasta (if any) and waits for it, and lets go of the namespace.
    pub async fn stop(mut self) {
        if let Some(mut helper) = self.helper.take()
            && let Ok(Some(status)) = tokio::task::spawn_blocking(move || helper.kill()).await
        {
            tracing::warn!(%status, "pasta (the steps' network) ended during the stage");
        }
    }
}

/// Makes a network namespace on a thread of its own, which ends after
/// opening it, and returns the only reference left: the descriptor.
fn new_namespace() -> std::io::Result<OwnedFd> {
    std::thread::spawn(|| {
        // SAFETY: unshare affects this thread only, which ends right after.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
        std::fs::File::open("/proc/thread-self/ns/net").map(OwnedFd::from)
    })
    .join()
    .expect("the namespace thread does not panic")
}

/// Puts the [`rules`] into the namespace.
async fn cut(deny: &[IpNet], ns: BorrowedFd<'_>) -> Result<(), NetworkError> {
    let [v4, v6] = rules(deny, &own_addresses());
    let ip = require("ip", "iproute2")?;
    // A kernel without IPv6 has no IPv6 rules to take (nor addresses to reach).
    let v6 = if std::path::Path::new("/proc/sys/net/ipv6").exists() { v6 } else { String::new() };
    tokio::try_join!(run_ip(&ip, "-4", ns, &v4), run_ip(&ip, "-6", ns, &v6))?;
    Ok(())
}

/// The `ip -batch` lines, IPv4 then IPv6 (`ip` takes the family once per
/// run), that cut inside the namespace link-local, the worker's own
/// addresses and `deny`, but let DNS reach [`DNS_FORWARDER`].
fn rules(deny: &[IpNet], own: &[IpAddr]) -> [String; 2] {
    let mut v4 = String::from("link set lo up\n");
    let mut v6 = String::new();
    // UDP only: this pasta forwards TCP to the real address, which is link-local.
    v4.push_str(&format!("rule add priority {ALLOW_PRIORITY} to {DNS_FORWARDER}/32 ipproto udp dport 53 lookup main\n"));
    let cut = LINK_LOCAL
        .iter()
        .map(|c| c.parse::<IpNet>().expect("a CIDR"))
        .chain(own.iter().map(|a| IpNet::from(*a)))
        .chain(deny.iter().copied());
    for net in cut {
        let script = if net.addr().is_ipv6() { &mut v6 } else { &mut v4 };
        script.push_str(&format!("rule add priority {DENY_PRIORITY} to {net} prohibit\n"));
    }
    [v4, v6]
}

/// The worker's own addresses but loopback (services listening on all
/// addresses are reachable through them, past any firewall on the wire).
fn own_addresses() -> Vec<IpAddr> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below; every entry is read
    // only while the list lives, and its address only for its family.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return found;
        }
        let mut entry = list;
        while !entry.is_null() {
            let addr = (*entry).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        found.push(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        found.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            entry = (*entry).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found.retain(|a| !a.is_loopback() && !is_link_local(a));
    found.sort();
    found.dedup();
    found
}

/// Whether an address is link-local (already cut as a whole).
fn is_link_local(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Moves the calling thread (or a forked child, in a pre-exec hook: it
/// only calls `setns`, which is async-signal-safe) into the network
/// namespace open at `fd`. Needs root.
pub fn enter(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: setns on a descriptor the caller keeps open; no memory is touched.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } == -1 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// Runs `ip <family> -batch -` inside the namespace (nothing for no lines).
async fn run_ip(ip: &std::path::Path, family: &str, ns: BorrowedFd<'_>, script: &str) -> Result<(), NetworkError> {
    use tokio::io::AsyncWriteExt;
    if script.is_empty() {
        return Ok(());
    }
    let mut cmd = tokio::process::Command::new(ip);
    cmd.args([family, "-batch", "-"]).env_clear().stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    let raw = ns.as_raw_fd();
    // SAFETY: `enter` is async-signal-safe; `ns` outlives the spawn.
    unsafe {
        cmd.pre_exec(move || enter(raw));
    }
    let mut child = cmd.spawn().map_err(|e| NetworkError::Rules(e.to_string()))?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(script.as_bytes()).await.map_err(|e| NetworkError::Rules(e.to_string()))?;
    drop(stdin);
    let out = child.wait_with_output().await.map_err(|e| NetworkError::Rules(e.to_string()))?;
    if !out.status.success() {
        return Err(NetworkError::Rules(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

/// A request to the spawner thread: a command, and where to send its child.
type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Starts `cmd` from a thread that lives as long as greenlight, so a
/// parent-death signal set in the child fires when greenlight dies, not
/// when some short-lived thread ends.
fn spawn_tied(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("greenlight-net-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in incoming {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("starting the spawner thread");
        Mutex::new(requests)
    });
    let (reply, answer) = mpsc::channel();
    spawner.lock().expect("not poisoned").send((cmd, reply)).map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    answer.recv().map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

/// Lets the child inherit `fds` under the same numbers, dies with
/// greenlight (SIGKILL), and gives up if greenlight is already gone.
fn tie_to_parent(cmd: &mut Command, fds: [RawFd; 2]) {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: prctl, getppid and fcntl are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 || libc::getppid() != parent {
                return Err(std::io::Error::other("greenlight is gone"));
            }
            for fd in fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Starts pasta on the namespace and waits until it has configured it: it
/// writes its pid (`-P`) into a pipe once the namespace is ready, and the
/// pipe ends without one if it fails.
async fn start_pasta(pasta: &std::path::Path, ns: BorrowedFd<'_>) -> Result<Helper, NetworkError> {
    let (ready_read, ready_write) = std::io::pipe().map_err(NetworkError::Namespace)?;
    let stderr = tempfile::tempfile().map_err(NetworkError::Namespace)?;
    let (ns_fd, ready_fd) = (ns.as_raw_fd(), ready_write.as_raw_fd());
    let mut cmd = Command::new(pasta);
    cmd.args(["-f", "-q", "--config-net", "--runas", "0", "--no-netns-quit"])
        .args(["-t", "none", "-u", "none", "-T", "none", "-U", "none", "--no-map-gw"])
        .args(["--dns-forward", DNS_FORWARDER])
        .args(["-P", &format!("/proc/self/fd/{ready_fd}"), "--netns", &format!("/proc/self/fd/{ns_fd}")])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr.try_clone().map_err(NetworkError::Namespace)?);
    tie_to_parent(&mut cmd, [ns_fd, ready_fd]);
    let child = spawn_tied(cmd).map_err(|e| NetworkError::Helper(format!("cannot run {}: {e}", pasta.display())))?;
    drop(ready_write);
    let mut helper = Helper { child, reaped: false };
    let mut ready = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(ready_read)).map_err(NetworkError::Namespace)?;
    let mut pid = Vec::new();
    let read = tokio::time::timeout(START_TIMEOUT, async {
        let mut buf = [0u8; 32];
        while !pid.ends_with(b"\n") {
            match ready.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => pid.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if read.is_ok() && pid.ends_with(b"\n") {
        return Ok(helper);
    }
    let _ = tokio::task::spawn_blocking(move || helper.kill()).await;
    Err(NetworkError::Helper(match read {
        Err(_) => format!("not ready after {START_TIMEOUT:?}"),
        Ok(()) => failure_text(stderr),
    }))
}

/// What pasta said before it failed.
fn failure_text(mut stderr: std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut text = String::new();
    let _ = stderr.seek(std::io::SeekFrom::Start(0));
    let _ = stderr.take(4096).read_to_string(&mut text);
    match text.trim() {
        "" => "it exited without a word".to_string(),
        said => said.replace('\n', "; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_defaults_to_isolated_and_bad_values_name_the_variable() {
        assert_eq!(NetworkSettings::parse("", "").unwrap().mode, NetworkMode::Isolated);
        assert_eq!(NetworkSettings::parse("none", "").unwrap().mode, NetworkMode::None);
        let err = NetworkSettings::parse("bridge", "").unwrap_err();
        assert!(err.contains("GREENLIGHT_STEP_NETWORK: \"bridge\""), "{err}");
    }

    #[test]
    fn deny_takes_cidrs_and_addresses_and_names_a_bad_one() {
        let s = NetworkSettings::parse("isolated", "10.1.2.3/8, 192.168.0.1 fd00::/8").unwrap();
        let shown: Vec<String> = s.deny.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.168.0.1/32", "fd00::/8"]);
        let err = NetworkSettings::parse("isolated", "10.0.0.0/33").unwrap_err();
        assert!(err.contains("GREENLIGHT_STEP_DENY") && err.contains("10.0.0.0/33"), "{err}");
        assert!(NetworkSettings::parse("host", "10.0.0.0/8").unwrap_err().contains("GREENLIGHT_STEP_NETWORK=isolated"));
    }

    #[test]
    fn rules_let_dns_through_before_cutting_link_local_own_and_denied() {
        let deny = ["192.0.2.0/24".parse().unwrap()];
        let [v4, v6] = rules(&deny, &["198.51.100.7".parse().unwrap(), "2001:db8::7".parse().unwrap()]);
        let lines: Vec<&str> = v4.lines().collect();
        assert_eq!(lines[0], "link set lo up");
        assert!(lines[1].contains("169.254.1.1/32 ipproto udp dport 53 lookup main") && lines[1].contains("priority 100"));
        assert!(lines.contains(&"rule add priority 200 to 169.254.0.0/16 prohibit"));
        assert_eq!(v6, "rule add priority 200 to fe80::/10 prohibit\nrule add priority 200 to 2001:db8::7/128 prohibit\n");
        assert!(lines.contains(&"rule add priority 200 to 198.51.100.7/32 prohibit"));
        assert!(lines.contains(&"rule add priority 200 to 192.0.2.0/24 prohibit"));
    }
}
