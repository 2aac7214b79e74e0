//! A vdbd in this process: the engine and the gRPC server on a free
//! loopback port, for `vdbctl demo` and `vdbctl bench --server local`.

use std::sync::Arc;

use anyhow::{Context, Result};

/// A server started in this process; dropping it shuts it down.
pub struct LocalServer {
    /// The engine under the server, for the in-process comparison.
    pub engine: Arc<vdb_engine::Engine>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    _tmp: Option<tempfile::TempDir>,
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a server on a free loopback port over `data_dir` (a temporary
/// directory if none); returns it and its address.
pub fn start_local(data_dir: Option<&std::path::Path>) -> Result<(LocalServer, String)> {
    let (dir, tmp) = match data_dir {
        Some(d) => (d.to_path_buf(), None),
        None => {
            let t = tempfile::tempdir().context("create a temporary data directory")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("bench-server".into())
        .spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let options = vdb_engine::EngineOptions {
                    runtime: Some(tokio::runtime::Handle::current()),
                    ..vdb_engine::EngineOptions::default()
                };
                let engine = Arc::new(
                    tokio::task::spawn_blocking(move || {
                        vdb_engine::Engine::open_with(&dir, options)
                    })
                    .await??,
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let _ = tx.send((Arc::clone(&engine), listener.local_addr()?));
                vdb_server::serve(
                    Arc::clone(&engine),
                    listener,
                    vdb_server::ServerOptions {
                        // Clients of this process may keep idle
                        // connections open; do not wait long for them.
                        shutdown_grace: std::time::Duration::from_millis(500),
                        ..vdb_server::ServerOptions::default()
                    },
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await?;
                tokio::task::spawn_blocking(move || engine.shutdown()).await??;
                Ok(())
            })
        })?;
    let (engine, addr) = rx.recv().context("the in-process server failed to start")?;
    Ok((
        LocalServer {
            engine,
            stop: Some(stop_tx),
            thread: Some(thread),
            _tmp: tmp,
        },
        format!("http://{addr}"),
    ))
}
