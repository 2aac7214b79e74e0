//! What the server's process-level tests share: starting the real `vdbd`
//! binary on an ephemeral loopback port and stopping it.

#![allow(dead_code, reason = "each test binary uses part of it")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use tonic::transport::Channel;
use vdb_proto::v1::vdb_client::VdbClient;

/// A running `vdbd`; killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub addr: String,
    /// The metrics endpoint's address, when started with
    /// `--metrics-listen`.
    pub metrics: Option<String>,
}

impl Server {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_env(data_dir, extra, &[])
    }

    pub fn start_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(data_dir, extra, env, Stdio::inherit())
    }

    /// [`Server::start_env`] with stderr captured, for [`Server::take_child`].
    pub fn start_capturing(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(data_dir, extra, env, Stdio::piped())
    }

    fn spawn(data_dir: &Path, extra: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vdbd"))
            .envs(env.iter().copied())
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--log", "warn"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("vdbd listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let metrics = extra.contains(&"--metrics-listen").then(|| {
            line.clear();
            stdout.read_line(&mut line).unwrap();
            line.trim()
                .strip_prefix("vdbd metrics on ")
                .unwrap_or_else(|| panic!("unexpected second line {line:?}"))
                .to_string()
        });
        Server {
            child: Some(child),
            addr,
            metrics,
        }
    }

    pub async fn client(&self) -> VdbClient<Channel> {
        VdbClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }

    /// SIGTERM, then wait: the server flushes and exits 0.
    pub fn stop(self) {
        let mut child = self.take_child();
        let pid = child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let status = child.wait().unwrap();
        assert!(status.success(), "vdbd exited with {status}");
    }

    /// The process, for a test that ends it itself.
    pub fn take_child(mut self) -> Child {
        self.child.take().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP/1.1 request to `addr`, the connection closed after: (status,
/// content type, body), or `None` if nothing answers (yet) or the answer
/// is not HTTP. For the metrics endpoint and Prometheus's query API.
pub fn http(addr: &str, method: &str, path: &str) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    Some((status, content_type, body.to_string()))
}
