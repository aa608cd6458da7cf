//! A private S3-compatible server per test: `moto_server` (PyPI's
//! `moto[server]`) on a free local port, with one bucket, so the S3 log
//! store is tested against a real HTTP server, never an in-process mock.

use greenlight::config::{LogStoreConfig, S3Config};
use secrecy::SecretString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket every test server has.
pub const BUCKET: &str = "greenlight-logs";

/// A running moto_server owned by one test.
pub struct TestS3 {
    child: Child,
    port: u16,
}

impl TestS3 {
    /// Starts moto_server and creates [`BUCKET`]; fails the test, saying
    /// what to install, if moto_server is missing.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server ({e}): install it with `pip install 'moto[server]'`"));
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        // A plain `PUT /bucket` creates a bucket on moto; it answers once it is up.
        while !server.put_bucket() {
            assert!(Instant::now() < deadline, "moto_server did not answer on port {port} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn put_bucket(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let request = format!("PUT /{BUCKET} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n", self.port);
        let mut answer = String::new();
        stream.write_all(request.as_bytes()).is_ok() && stream.read_to_string(&mut answer).is_ok() && answer.contains(" 200 ")
    }

    /// Stops the server where it is (SIGSTOP): connections are accepted by
    /// the kernel and then nothing answers, as with a bucket that hangs.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill only sends a signal to our own child, which we have not reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "signalling moto_server: {}", std::io::Error::last_os_error());
    }

    /// The server's URL (`AWS_ENDPOINT_URL`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The log store configuration for objects under `prefix` in [`BUCKET`].
    pub fn log_store(&self, prefix: &str) -> LogStoreConfig {
        self.log_store_in(BUCKET, prefix)
    }

    /// The log store configuration for a bucket of any name (one that does not exist, say).
    pub fn log_store_in(&self, bucket: &str, prefix: &str) -> LogStoreConfig {
        LogStoreConfig::S3(S3Config {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".to_string()),
            access_key_id: Some("testing".to_string()),
            secret_access_key: Some(SecretString::from("testing")),
            session_token: None,
        })
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
