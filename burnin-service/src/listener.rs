//! The HTTP accept loop: a server a bad client cannot starve.
//!
//! `axum::serve` installs no hyper timer, so hyper's header read timeout
//! never fires under it: 1,500 connections that each sent half a request
//! header were all still open 35 s later, holding file descriptors the edge
//! needs for MES, the factory and the broker. [`serve_http`] accepts
//! connections itself and serves each with hyper-util's
//! `server::conn::auto::Builder` (HTTP/1 only: no version sniffing that
//! could wait without a timer) with a [`TokioTimer`]:
//!
//! * **Header timeout** ([`HttpLimits::header_read_timeout`], default 5 s):
//!   a connection that has not sent a whole request head in time — a
//!   request's, or the next one's on a kept-alive connection — is closed.
//! * **Connection cap** ([`HttpLimits::max_connections`], default 512):
//!   beyond it a new connection gets `503 Service Unavailable` with a JSON
//!   error and is closed at once, so the edge's own descriptors stay free.
//! * **Shutdown**: on `stop` the listener closes, every connection is
//!   asked to finish its request in flight and close (streams end, see
//!   [`crate::live`]), and [`serve_http`] returns when all have.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Limits of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Connections served at once; more get 503.
    pub max_connections: usize,
    /// How long a client may take to send a request head.
    pub header_read_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(5),
        }
    }
}

const BUSY: &str = "{\"error\":\"too many connections to this edge; try again in a few seconds\"}";

struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `router` on `listener` until `stop`; see the [module docs](self).
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    stop: CancellationToken,
) {
    let live = Arc::new(AtomicUsize::new(0));
    let connections = TaskTracker::new();
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors or a connection reset before accept:
                // wait a little instead of spinning.
                tracing::warn!("accepting an HTTP connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if live.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
            live.fetch_sub(1, Ordering::AcqRel);
            tracing::debug!(%peer, "connection refused with 503: at the connection cap");
            connections.spawn(refuse(stream));
            continue;
        }
        let slot = Slot(live.clone());
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let _slot = slot;
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, "HTTP connection ended: {e}");
                    }
                }
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

async fn refuse(mut stream: tokio::net::TcpStream) {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BUSY}",
        BUSY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
    // Read what the client already sent (briefly), so closing sends a FIN
    // and the client reads the 503 instead of a reset.
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        let mut sink = [0u8; 1024];
        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
