//! A virtual machine with a pure cgroup v2 hierarchy, to run tests in.
//!
//! The CI machines have a hybrid hierarchy (v1 `memory` and `pids`, an
//! empty v2 mount), while current distributions, containers and Fly.io
//! machines mount only cgroup v2. greenlight's v2 path (delegation, moving
//! its own processes into a leaf, `memory.events`) cannot run on the host,
//! so a test boots Debian's kernel under QEMU with the host's root filesystem shared read-only over 9p, mounts
//! cgroup2 as the only hierarchy, puts itself in a delegated cgroup the way
//! systemd does for a unit with `Delegate=yes`
//! (`/system.slice/greenlight.service`, controllers enabled above it), and
//! runs the same test binary there. Nothing of the host is changed: the
//! shared root is overlaid with a tmpfs that takes the VM's writes.
//!
//! What it needs, installed by `.ci/run`: `qemu-system-x86` (QEMU),
//! `linux-image-amd64` (a kernel in `/boot` with its modules) and
//! `busybox-static` (the VM's first process).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The marker line the VM prints with the command's exit code.
const EXIT_MARKER: &str = "greenlight-vm-exit=";

/// Modules the VM loads from its initramfs to reach the host's root (the
/// rest load with `modprobe` from the shared root).
const BOOT_MODULES: &[&str] = &[
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/net/9p/9pnet_virtio.ko",
    "kernel/fs/9p/9p.ko",
    "kernel/fs/overlayfs/overlay.ko",
    "kernel/drivers/net/virtio_net.ko",
];

/// What the VM printed, and the command's exit code (`None`: it never
/// reported one: the VM failed to boot, or the command was killed).
pub struct VmRun {
    /// Everything the kernel, the init script and the command printed.
    pub console: String,
    /// The command's exit code.
    pub exit: Option<i32>,
}

/// A kernel in `/boot` whose modules (with 9p) are in `/lib/modules`.
fn kernel() -> (PathBuf, String) {
    let entries = std::fs::read_dir("/boot").map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default();
    let mut found: Vec<(PathBuf, String)> = entries
        .iter()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix("vmlinuz-")?.to_string();
            Path::new(&format!("/lib/modules/{version}/modules.dep")).exists().then(|| (e.path(), version))
        })
        .collect();
    found.sort();
    found
        .pop()
        .expect("a kernel for the cgroup v2 VM: `apt-get install linux-image-amd64` (a kernel in /boot with its modules in /lib/modules)")
}

fn require(tool: &str, package: &str) -> PathBuf {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|dir| dir.join(tool))
        .find(|path| path.exists());
    found.unwrap_or_else(|| panic!("`{tool}` for the cgroup v2 VM: apt-get install {package}"))
}

/// `module` and what it needs, in load order, from `modules.dep`.
fn with_dependencies(dep: &str, module: &str, out: &mut Vec<String>, seen: &mut BTreeSet<String>) {
    if !seen.insert(module.to_string()) {
        return;
    }
    let line = dep.lines().find(|l| l.split(':').next() == Some(module)).unwrap_or_else(|| panic!("{module} is not in modules.dep"));
    let needs: Vec<&str> = line.split_once(':').map(|(_, d)| d.split_whitespace().collect()).unwrap_or_default();
    // modules.dep lists what a module needs nearest first: load the farthest first.
    for need in needs.iter().rev() {
        with_dependencies(dep, need, out, seen);
    }
    out.push(module.to_string());
}

/// The VM's first process: mounts, the host's root, cgroup2, then
/// `run.sh` as the host root's first process (it runs the command, prints
/// its exit code and powers the VM off).
fn init_script(modules: &[String]) -> String {
    let insmods: String = modules.iter().map(|m| format!("$B insmod /modules/{}\n", m.replace('/', "_"))).collect();
    format!(
        r#"#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /host /lower /rw
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
{insmods}
if ! $B mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro host /lower; then
  echo "greenlight-vm: cannot mount the host's root over 9p"; $B poweroff -f
fi
# The host's root, read-only, under a tmpfs that takes the VM's writes:
# everything of the host is visible where it is (the project may be
# checked out under /tmp), and nothing of it changes.
$B mount -t tmpfs -o size=6g tmpfs /rw
$B mkdir -p /rw/upper /rw/work
if ! $B mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /host; then
  echo "greenlight-vm: cannot overlay the host's root"; $B poweroff -f
fi
for d in proc sys dev; do $B mount --rbind /$d /host/$d; done
$B mount -t tmpfs tmpfs /host/run
$B mount -t cgroup2 cgroup2 /host/sys/fs/cgroup
$B mkdir -p /host/dev/pts /host/dev/shm
$B mount -t devpts devpts /host/dev/pts
$B mount -t tmpfs tmpfs /host/dev/shm
$B cp /inner.sh /host/tmp/inner.sh
$B cp /run.sh /host/tmp/run.sh
# switch_root, not chroot: a process in a chroot may not create user
# namespaces, and bwrap needs them.
exec $B switch_root /host /bin/sh /tmp/run.sh
"#
    )
}

/// The command's wrapper inside the VM: network, a delegated cgroup, the command.
fn inner_script(dir: &Path, command: &[String], env: &[(&str, &str)]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let command: Vec<String> = command.iter().map(|a| quote(a)).collect();
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
    format!(
        r#"modprobe -a loop tun veth >/dev/null 2>&1
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
echo "+memory +pids +cpu" > /sys/fs/cgroup/cgroup.subtree_control
mkdir -p /sys/fs/cgroup/system.slice/greenlight.service
echo "+memory +pids +cpu" > /sys/fs/cgroup/system.slice/cgroup.subtree_control
echo $$ > /sys/fs/cgroup/system.slice/greenlight.service/cgroup.procs
echo "greenlight-vm: cgroup $(cat /proc/self/cgroup), controllers $(cat /sys/fs/cgroup/system.slice/greenlight.service/cgroup.controllers)"
cd {dir}
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TMPDIR=/tmp {env} {command}
"#,
        dir = quote(&dir.to_string_lossy()),
        env = env.join(" "),
        command = command.join(" "),
    )
}

/// Writes the initramfs (a `newc` cpio made by busybox) holding busybox,
/// the init script, the command's wrapper and the boot modules.
fn initramfs(work: &Path, version: &str, command: &[String], env: &[(&str, &str)]) -> PathBuf {
    let busybox = require("busybox", "busybox-static");
    let root = work.join("initramfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("modules")).unwrap();
    std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    let modules_dir = PathBuf::from(format!("/lib/modules/{version}"));
    let dep = std::fs::read_to_string(modules_dir.join("modules.dep")).unwrap();
    let (mut modules, mut seen) = (Vec::new(), BTreeSet::new());
    for module in BOOT_MODULES {
        with_dependencies(&dep, module, &mut modules, &mut seen);
    }
    for module in &modules {
        std::fs::copy(modules_dir.join(module), root.join("modules").join(module.replace('/', "_")))
            .unwrap_or_else(|e| panic!("copying {module}: {e} (compressed modules are not supported)"));
    }
    let cwd = std::env::current_dir().unwrap();
    let run = format!("/bin/sh /tmp/inner.sh\necho \"{EXIT_MARKER}$?\"\nsync\necho o > /proc/sysrq-trigger\nsleep 60\n");
    for (name, text) in [("init", init_script(&modules)), ("inner.sh", inner_script(&cwd, command, env)), ("run.sh", run)] {
        std::fs::write(root.join(name), text).unwrap();
        std::fs::set_permissions(root.join(name), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let image = work.join("initramfs.cpio");
    let files = Command::new(&busybox).args(["find", "."]).current_dir(&root).output().unwrap().stdout;
    let mut cpio = Command::new(&busybox)
        .args(["cpio", "-o", "-H", "newc"])
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&image).unwrap())
        .spawn()
        .unwrap();
    cpio.stdin.take().unwrap().write_all(&files).unwrap();
    assert!(cpio.wait().unwrap().success(), "busybox cpio failed");
    image
}

/// Boots the VM and runs `command` (from this test's working directory)
/// with `env`, as root in a delegated cgroup of a pure cgroup v2 host;
/// waits at most `limit` for it.
pub fn run(command: &[String], env: &[(&str, &str)], limit: Duration) -> VmRun {
    let qemu = require("qemu-system-x86_64", "qemu-system-x86");
    let (vmlinuz, version) = kernel();
    let work = tempfile::tempdir().unwrap();
    let initrd = initramfs(work.path(), &version, command, env);
    let console = work.path().join("console.log");
    let mut qemu = Command::new(qemu);
    // Emulated, not KVM: the CI machines are themselves VMs, and a nested
    // KVM guest there stops before the kernel prints anything (measured);
    // under TCG the VM boots in about 3 s.
    qemu.args(["-m", "4096", "-smp", "2", "-nographic", "-no-reboot", "-monitor", "none"])
        .args(["-accel", "tcg,thread=multi", "-cpu", "max"])
        .arg("-kernel")
        .arg(&vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 panic=-1 rdinit=/init quiet loglevel=1"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .args(["-fsdev", "local,id=host,path=/,security_model=none,readonly=on,multidevs=remap"])
        .args(["-device", "virtio-9p-pci,fsdev=host,mount_tag=host"])
        .args(["-nic", "user,model=virtio-net-pci"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = qemu.spawn().expect("starting qemu-system-x86_64");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
    }
    let console = String::from_utf8_lossy(&std::fs::read(&console).unwrap_or_default()).into_owned();
    let exit = console.lines().rev().find_map(|l| l.trim().strip_prefix(EXIT_MARKER)?.parse().ok());
    let console = match status {
        Some(_) => format!("{console}{stderr}"),
        None => format!("{console}{stderr}\n(greenlight-vm: killed after {}s)", limit.as_secs()),
    };
    VmRun { console, exit }
}
