//! Test support: the server on a random port (`spawn_app`), a stand-in helper that speaks the real
//! protocol on a real Unix socket, and a reader of server-sent events. The real helper is exercised
//! by the helper's own tests and the end-to-end suite.

#![allow(dead_code, clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use ctguard_app::{
    live::LiveSample,
    seed::{DashboardSeed, SEED_PATH},
    thresholds::Thresholds,
};
use ctguard_protocol::{
    ConntrackStats, ConntrackStatus, KernelLogSummary, PROTOCOL_VERSION, Request, Response, frame,
};
use ctguard_server::{
    configuration::{HelperSettings, Settings},
    startup::Application,
};
use futures::{SinkExt, StreamExt};
use tokio::{net::UnixListener, task::JoinHandle};
use tokio_util::codec::Framed;

#[derive(Debug)]
pub struct TestApp {
    pub address: String,
    pub helper_socket: PathBuf,
    pub dir: tempfile::TempDir,
    server: JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    /// Stops the server and hands back its directory, to start another on the same state.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.server.abort();
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, placeholder)
    }

    pub async fn get_text(&self, path: &str) -> (reqwest::StatusCode, String) {
        let response = reqwest::get(format!("{}{path}", self.address))
            .await
            .unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    /// Asks the dashboard's seed server function as the browser would.
    pub async fn seed(&self) -> DashboardSeed {
        let response = reqwest::Client::new()
            .post(format!("{}{SEED_PATH}", self.address))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        serde_json::from_str(&response.text().await.unwrap()).unwrap()
    }
}

/// Polls `condition` every 50 ms until it holds, failing after 10 s.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the server on 127.0.0.1:0 with a fast sampler and a helper socket path in a temp dir
/// where nothing listens yet.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(tempfile::tempdir().unwrap(), Thresholds::default()).await
}

/// Starts the server with its state (and helper socket) in `dir`, saving its history every 200 ms.
pub async fn spawn_app_with(dir: tempfile::TempDir, thresholds: Thresholds) -> TestApp {
    ctguard_server::telemetry::init();
    let helper_socket = dir.path().join("helper.sock");
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        site_root: dir.path().join("site"),
        helper: HelperSettings {
            socket: helper_socket.clone(),
            timeout: Duration::from_millis(500),
        },
        sample_interval: Duration::from_millis(100),
        state_dir: dir.path().join("state"),
        history_save_interval: Duration::from_millis(200),
        thresholds,
    };
    let application = Application::build(settings).await.unwrap();
    let address = format!("http://{}", application.local_addr());
    let server = tokio::spawn(async move {
        application.run_until_stopped().await.unwrap();
    });
    TestApp {
        address,
        helper_socket,
        dir,
        server,
    }
}

pub fn sample_status(count: u64) -> ConntrackStatus {
    ConntrackStatus {
        count,
        max: 65_536,
        buckets: 16_384,
        stats: ConntrackStats {
            drop: 7,
            ..ConntrackStats::default()
        },
        entry_bytes: Some(256),
        host_memory_bytes: 8 << 30,
    }
}

pub fn sample_kernel_log() -> KernelLogSummary {
    KernelLogSummary {
        window_secs: 600,
        table_full: 3,
        suppressed: 41,
    }
}

/// A stand-in helper answering `status` with a fixed count, counting the status requests.
#[derive(Debug)]
pub struct FakeHelper {
    pub status_requests: Arc<AtomicU64>,
    task: JoinHandle<()>,
    socket: PathBuf,
}

impl FakeHelper {
    pub fn start(socket: &Path, count: u64) -> Self {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).unwrap();
        let status_requests = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&status_requests);
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let mut transport = Framed::new(stream, frame::codec());
                    while let Some(Ok(body)) = transport.next().await {
                        let response = match frame::decode::<Request>(&body).unwrap() {
                            Request::Hello { .. } => Response::Welcome {
                                protocol_version: PROTOCOL_VERSION,
                                helper_version: "fake".into(),
                                netns: None,
                            },
                            Request::Status {} => {
                                counter.fetch_add(1, Ordering::SeqCst);
                                Response::Status {
                                    status: sample_status(count),
                                }
                            }
                            Request::KernelLog {} => Response::KernelLog {
                                log: sample_kernel_log(),
                            },
                        };
                        if transport
                            .send(frame::encode(&response).unwrap())
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            status_requests,
            task,
            socket: socket.to_owned(),
        }
    }

    pub fn requests(&self) -> u64 {
        self.status_requests.load(Ordering::SeqCst)
    }

    pub fn stop(self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A subscriber to `/api/live`, decoding each event's JSON.
pub struct LiveEvents {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl std::fmt::Debug for LiveEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveEvents")
    }
}

impl LiveEvents {
    pub async fn connect(app: &TestApp) -> Self {
        let response = reqwest::get(format!("{}/api/live", app.address))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "an SSE stream"
        );
        Self {
            stream: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    pub async fn next(&mut self) -> LiveSample {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: String = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return serde_json::from_str(&data).unwrap();
            }
            let chunk = self.stream.next().await.expect("stream open").unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The first sample that satisfies `wanted`, within a deadline.
    pub async fn until(&mut self, what: &str, wanted: impl Fn(&LiveSample) -> bool) -> LiveSample {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let sample = self.next().await;
                if wanted(&sample) {
                    return sample;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {what} sample within 10 s"))
    }
}
