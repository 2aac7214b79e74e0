//! A real S3-compatible server for the tests, started per test on a free
//! local port and killed when the test ends: moto's `moto_server` (a
//! Python implementation of AWS's API), or with `VDB_S3_SERVER=s3s-fs`
//! `s3s-fs` (a Rust server keeping objects as files; `cargo install s3s-fs
//! --version 0.14.1 --features binary`).
//!
//! The binary is `$VDB_MOTO_SERVER` (or `$VDB_S3S_FS`), else `moto_server`
//! (`s3s-fs`) on the `PATH`. Without one the tests skip, unless
//! `VDB_REQUIRE_S3=1` (CI sets it), which makes them fail instead.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]
#![allow(dead_code, reason = "each test file uses a part")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vdb_objstore::ObjectRoot;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Moto,
    S3sFs,
}

/// A running S3-compatible server, killed on drop.
pub struct S3Server {
    child: Child,
    port: u16,
    kind: Kind,
    /// s3s-fs: the directory whose subdirectories are its buckets.
    root: Option<tempfile::TempDir>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kind() -> Kind {
    match std::env::var("VDB_S3_SERVER").as_deref() {
        Ok("s3s-fs") => Kind::S3sFs,
        Ok("moto") | Err(_) => Kind::Moto,
        Ok(other) => panic!("VDB_S3_SERVER={other:?}: expected moto or s3s-fs"),
    }
}

fn binary(kind: Kind) -> Option<PathBuf> {
    let (var, name) = match kind {
        Kind::Moto => ("VDB_MOTO_SERVER", "moto_server"),
        Kind::S3sFs => ("VDB_S3S_FS", "s3s-fs"),
    };
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl S3Server {
    /// Starts a server, or `None` (after saying so) when there is none to
    /// start and none is required.
    pub fn start() -> Option<S3Server> {
        let kind = kind();
        let Some(bin) = binary(kind) else {
            assert!(
                std::env::var("VDB_REQUIRE_S3").as_deref() != Ok("1"),
                "VDB_REQUIRE_S3=1 but no {kind:?} server: set VDB_MOTO_SERVER / VDB_S3S_FS or put it on the PATH"
            );
            eprintln!("skipped: no {kind:?} server (set VDB_MOTO_SERVER or VDB_REQUIRE_S3=1)");
            return None;
        };
        // A port that was free a moment ago; the server binds it itself.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(&bin);
        let mut root = None;
        match kind {
            Kind::Moto => {
                cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            }
            Kind::S3sFs => {
                let dir = tempfile::tempdir().unwrap();
                cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--access-key", "test", "--secret-key", "test"])
                    .arg(dir.path());
                root = Some(dir);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut server = S3Server {
            child,
            port,
            kind,
            root,
        };
        // Ready once it answers HTTP: a connection can be accepted, and
        // reset, while the server is still starting.
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.try_request("GET", "/").is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "{} exited ({status}) instead of serving on {port}",
                    bin.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer on {port}",
                bin.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    /// Which server it is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket`: moto takes an unsigned request; s3s-fs's buckets
    /// are the directories of its root.
    pub fn create_bucket(&self, bucket: &str) {
        match &self.root {
            Some(root) => std::fs::create_dir(root.path().join(bucket)).unwrap(),
            None => {
                let status = self.request("PUT", &format!("/{bucket}"));
                assert_eq!(status, 200, "create bucket {bucket}");
            }
        }
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
