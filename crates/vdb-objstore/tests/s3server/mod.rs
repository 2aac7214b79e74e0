//! A real S3-compatible server for the tests: moto's `moto_server`, started
//! per test on a free local port and killed when the test ends.
//!
//! The binary is `$VDB_MOTO_SERVER`, else `moto_server` on the `PATH`
//! (`pip install 'moto[server]'`). Without one the tests skip, unless
//! `VDB_REQUIRE_S3=1` (CI sets it), which makes them fail instead.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]
#![allow(dead_code, reason = "each test file uses a part")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vdb_objstore::ObjectRoot;

/// A running `moto_server`, killed on drop.
pub struct S3Server {
    child: Child,
    port: u16,
}

fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VDB_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("moto_server"))
        .find(|p| p.is_file())
}

impl S3Server {
    /// Starts a server, or `None` (after saying so) when there is none to
    /// start and none is required.
    pub fn start() -> Option<S3Server> {
        let Some(bin) = binary() else {
            assert!(
                std::env::var("VDB_REQUIRE_S3").as_deref() != Ok("1"),
                "VDB_REQUIRE_S3=1 but no moto_server: set VDB_MOTO_SERVER or put it on the PATH"
            );
            eprintln!("skipped: no moto_server (set VDB_MOTO_SERVER or VDB_REQUIRE_S3=1)");
            return None;
        };
        // A port that was free a moment ago; moto binds it itself.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut server = S3Server { child, port };
        // Ready once it answers HTTP: a connection can be accepted, and
        // reset, while the server is still starting.
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.try_request("GET", "/").is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto_server exited ({status}) instead of serving on {port}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` (moto accepts unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        let status = self.request("PUT", &format!("/{bucket}"));
        assert_eq!(status, 200, "create bucket {bucket}");
    }

    /// Sends a bodiless request and returns the status code.
    pub fn request(&self, method: &str, path: &str) -> u16 {
        self.try_request(method, path)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn try_request(&self, method: &str, path: &str) -> std::io::Result<u16> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut line = String::new();
        let mut r = BufReader::new(s);
        r.read_line(&mut line)?;
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        line.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no status in {line:?}")))
    }

    /// The client options that reach this server.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("endpoint", self.endpoint()),
            ("region", "us-east-1".to_string()),
            ("allow_http", "true".to_string()),
            ("access_key_id", "test".to_string()),
            ("secret_access_key", "test".to_string()),
            ("max_retries", "2".to_string()),
            ("retry_timeout_secs", "10".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// A root at `s3://bucket/prefix` on this server (the bucket must
    /// exist).
    pub fn root(&self, url: &str) -> ObjectRoot {
        ObjectRoot::from_url(url, &self.options()).unwrap()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
