//! A private `redis-server` per test, on a unix socket in a temporary
//! directory: no shared port, nothing left behind, never the system instance.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server owned by one test.
pub struct TestRedis {
    child: Option<Child>,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestRedis {
    /// Starts redis-server; fails the test, saying what to install, if it is missing.
    pub fn start() -> Self {
        Self::start_with(&["--appendonly", "no"])
    }

    /// Starts redis-server with AOF persistence, fsynced before every reply
    /// (what `greenlight serve` runs when it starts its own).
    pub fn start_durable() -> Self {
        Self::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let socket = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", ""])
            .args(extra)
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server ({e}): install it with `apt-get install redis-server`"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "redis-server did not open its socket within 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { child: Some(child), socket, _dir: dir }
    }

    /// The URL greenlight connects with.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// A number `INFO` reports, such as `total_net_input_bytes` (every
    /// byte clients have sent, commands included) or `connected_clients`.
    pub async fn info(&self, field: &str) -> u64 {
        let pool = greenlight::redis_server::pool(&self.url()).unwrap();
        let info: String = redis::cmd("INFO").query_async(&mut pool.get().await.unwrap()).await.unwrap();
        let prefix = format!("{field}:");
        let value = info.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("INFO lists no {field}"));
        value.trim().parse().unwrap()
    }

    /// The string values of every key matching `pattern` (`KEYS`, then `GET`).
    pub async fn values(&self, pattern: &str) -> Vec<String> {
        let pool = greenlight::redis_server::pool(&self.url()).unwrap();
        let mut conn = pool.get().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut conn).await.unwrap();
        let mut values = Vec::new();
        for key in keys {
            let value: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
            values.extend(value);
        }
        values
    }

    /// Kills the server (to test an outage).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
