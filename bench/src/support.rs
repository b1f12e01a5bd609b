//! What several benchmarks share: the release binary, and a `gantry server` process on a port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub(crate) const ADMIN: &str = "bench-admin";

pub(crate) fn gantry_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/gantry");
    assert!(path.exists(), "build the binary first: cargo build --release -p cli");
    path
}

/// A `gantry server` with `ADMIN` as its admin token, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    port: u16,
    data: PathBuf,
}

impl Server {
    pub(crate) async fn start(data: &Path, port: u16) -> Server {
        let child = Command::new(gantry_binary())
            .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .env("GANTRY_ADMIN_TOKEN", ADMIN)
            .env("GANTRY_AGENT_SECRET", "bench-agent")
            .env("GANTRY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server { child, port, data: data.to_owned() };
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http.get(format!("{}/readyz", server.url())).send().await.is_ok_and(|answer| answer.status().is_success()) {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not start");
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it; its data folder.
    pub(crate) fn stop(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.data.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
