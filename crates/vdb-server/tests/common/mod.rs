//! What the server's process-level tests share: starting the real `vdbd`
//! binary on an ephemeral loopback port and stopping it.

#![allow(dead_code, reason = "each test binary uses part of it")]

use std::io::{BufRead, BufReader};
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
