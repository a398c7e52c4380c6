//! Real HTTP servers on 127.0.0.1 for the tests and the benchmark.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use burnin_core::{DeviceResult, InterfaceReport, Mac, MesAnswer, PciDevice};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The original tool's example data: one passing device with two cards, one
/// failing with a wrong card.
pub(crate) fn devices() -> Vec<DeviceResult> {
    let pci = PciDevice {
        pcie_link: None,
        slot: "0000:04:00.0".into(),
        vendor: "0x8086".into(),
        device: "0x1533".into(),
        class: "0x020000".into(),
        driver: Some("igb".into()),
    };
    let i = |n: &str, m: &str| InterfaceReport {
        lldp: None,
        interface: n.into(),
        macaddr: m.parse().unwrap(),
        permaddr: None,
        addr_assign_type: None,
        link: None,
        pci: pci.clone(),
    };
    let mac = |m: &str| m.parse::<Mac>().unwrap();
    vec![
        DeviceResult::compare(
            "Q186I15901".parse().unwrap(),
            &[
                i("enp4s0", "e0:18:7d:2e:ca:68"),
                i("enp5s0", "e0:18:7d:2e:ca:69"),
            ],
            &MesAnswer::Record(vec![mac("E0:18:7D:2E:CA:68"), mac("E0:18:7D:2E:CA:69")]),
        ),
        DeviceResult::compare(
            "Q186I15902".parse().unwrap(),
            &[i("enp4s0", "e0:18:7d:2e:ca:70")],
            &MesAnswer::Record(vec![mac("E0:18:7D:2E:CA:71")]),
        ),
    ]
}

/// A raw HTTP/1.1 server that records every request byte for byte and
/// answers each with the same canned response.
pub(crate) struct CaptureServer {
    pub(crate) addr: SocketAddr,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl CaptureServer {
    /// `response` is sent as-is after each request (it must be complete).
    pub(crate) async fn start(response: Vec<u8>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let store = requests.clone();
        let response = Arc::new(response);
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve_raw(sock, store.clone(), response.clone()));
            }
        });
        CaptureServer { addr, requests }
    }

    /// `200 OK` with a JSON body.
    pub(crate) async fn ok_json(body: &str) -> Self {
        Self::start(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
        .await
    }

    pub(crate) fn requests(&self) -> Vec<Vec<u8>> {
        self.requests.lock().unwrap().clone()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn serve_raw(mut sock: TcpStream, store: Arc<Mutex<Vec<Vec<u8>>>>, response: Arc<Vec<u8>>) {
    let mut buf = Vec::new();
    loop {
        // Read one request: headers, then Content-Length bytes of body.
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let rest = buf.split_off(head_end + len);
        store
            .lock()
            .unwrap()
            .push(std::mem::replace(&mut buf, rest));
        if sock.write_all(&response).await.is_err() {
            return;
        }
    }
}

/// A server that accepts connections and never answers; counts them.
pub(crate) async fn silent_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(sock);
        }
    });
    (addr, accepted)
}

/// A port on 127.0.0.1 nobody listens on.
pub(crate) async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// A MES that answers `GET /mes/{sn}` with a record after `latency`, and
/// counts requests in flight.
#[derive(Clone)]
pub(crate) struct SlowMes {
    pub(crate) addr: SocketAddr,
    pub(crate) in_flight: Arc<AtomicUsize>,
    pub(crate) max_in_flight: Arc<AtomicUsize>,
    pub(crate) served: Arc<AtomicUsize>,
}

impl SlowMes {
    pub(crate) async fn start(latency: Duration) -> Self {
        use axum::extract::{Path, State};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = SlowMes {
            addr: listener.local_addr().unwrap(),
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
            served: Arc::default(),
        };
        let state = s.clone();
        let app = axum::Router::new()
            .route(
                "/mes/{sn}",
                axum::routing::get(
                    move |State(st): State<SlowMes>, Path(sn): Path<String>| async move {
                        let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        st.max_in_flight.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(latency).await;
                        st.in_flight.fetch_sub(1, Ordering::SeqCst);
                        st.served.fetch_add(1, Ordering::SeqCst);
                        axum::Json(serde_json::json!({"sn": sn, "macs": ["e0:18:7d:2e:ca:68"]}))
                    },
                ),
            )
            .with_state(state);
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        s
    }

    pub(crate) fn template(&self) -> String {
        format!("http://{}/mes/{{sn}}", self.addr)
    }
}

/// A MES with a knee at `k` requests in flight: up to `k` it answers in
/// 20 ms; beyond, either its latency rises in proportion (`20 ms × n / k`
/// with `n` in flight), or (`refuse`) it answers 429 with `Retry-After`.
#[derive(Clone)]
pub(crate) struct KneeMes {
    pub(crate) addr: SocketAddr,
    pub(crate) in_flight: Arc<AtomicUsize>,
    pub(crate) refused: Arc<AtomicUsize>,
    pub(crate) served: Arc<AtomicUsize>,
}

/// What a [`KneeMes`] does beyond its knee.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Beyond {
    /// Latency `20 ms × n / k`.
    Slower,
    /// `429 Too Many Requests` with `Retry-After: <seconds>`.
    Refuse { retry_after_s: u64 },
}

impl KneeMes {
    pub(crate) async fn start(k: usize, beyond: Beyond) -> Self {
        use axum::extract::{Path, State};
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = KneeMes {
            addr: listener.local_addr().unwrap(),
            in_flight: Arc::default(),
            refused: Arc::default(),
            served: Arc::default(),
        };
        let state = s.clone();
        let app = axum::Router::new()
            .route(
                "/mes/{sn}",
                axum::routing::get(
                    move |State(st): State<KneeMes>, Path(sn): Path<String>| async move {
                        let n = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        let answer = match beyond {
                            Beyond::Refuse { retry_after_s } if n > k => {
                                st.refused.fetch_add(1, Ordering::SeqCst);
                                (
                                    StatusCode::TOO_MANY_REQUESTS,
                                    [("retry-after", retry_after_s.to_string())],
                                    "slow down",
                                )
                                    .into_response()
                            }
                            _ => {
                                let ms = 20 * n.max(k) as u64 / k as u64;
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                                st.served.fetch_add(1, Ordering::SeqCst);
                                axum::Json(
                                    serde_json::json!({"sn": sn, "macs": ["e0:18:7d:2e:ca:68"]}),
                                )
                                .into_response()
                            }
                        };
                        st.in_flight.fetch_sub(1, Ordering::SeqCst);
                        answer
                    },
                ),
            )
            .with_state(state);
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        s
    }

    pub(crate) fn template(&self) -> String {
        format!("http://{}/mes/{{sn}}", self.addr)
    }
}

/// Captures `tracing` output (all levels) into a string buffer.
#[derive(Clone, Default)]
pub(crate) struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs a capturing subscriber for the current thread.
    pub(crate) fn install(&self) -> tracing::subscriber::DefaultGuard {
        let buf = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || buf.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
