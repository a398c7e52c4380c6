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
//!   the edge's own descriptors stay free for MES, the factory and the
//!   broker. At the cap, a new connection closes the **oldest connection
//!   that has not been answered yet** (nothing written to it: its request
//!   head, or its body, is still coming) and is served in its place. Only
//!   when every connection has been answered (kept-alive clients, event
//!   streams) does a new one get `503 Service Unavailable` with a JSON
//!   error, closed at once.
//!
//!   Why this and not a cap per peer: a flood of half-open connections
//!   must not lock out `GET /healthz`, the page or the API. A per-peer cap
//!   does not protect a client that shares the flooder's address — the
//!   monitoring on the same host, browsers behind one NAT or reverse proxy
//!   — and a flooder with many addresses walks around it. Closing the
//!   oldest unanswered connection protects every client that sends its
//!   request promptly, whatever its address: it is closed only if
//!   `max_connections` newer connections arrive before the edge has read
//!   its request and started answering, which on a LAN takes
//!   milliseconds. A connection the edge has answered is never closed to
//!   make room, so a flood cannot cut an event stream or a kept-alive
//!   client; and a connection that has sent nothing for longest is the
//!   likeliest to be a flooder's (real clients send their request at
//!   once). The price: a client slower than that is closed without a
//!   response, and retries. A closed connection's descriptor is released
//!   when its task next runs; while [`MAX_CLOSING`] such closes are
//!   outstanding, the edge stops accepting until one is done (new
//!   connections wait in the kernel's backlog, holding none of the edge's
//!   descriptors), so the count never runs more than that past the cap.
//! * **Shutdown**: on `stop` the listener closes, every connection is
//!   asked to finish its request in flight and close (streams end, see
//!   [`crate::live`]), and [`serve_http`] returns when all have.

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Limits of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Connections served at once; beyond it the oldest connection not
    /// answered yet is closed, or, if every one has been answered, the new
    /// one gets 503 (see the [module docs](self)).
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

/// How many connections closed at the cap may still hold their
/// descriptor before the edge waits for them to be released before
/// accepting another (see the module docs).
pub const MAX_CLOSING: usize = 64;

/// The connections open now, and those not answered yet, oldest first.
#[derive(Default)]
struct Books {
    /// Connections whose descriptor is still open.
    open: usize,
    /// Of them, those closed at the cap whose task has not ended yet.
    closing: usize,
    next: u64,
    /// Not answered yet, by arrival: what closes each one.
    unanswered: BTreeMap<u64, CancellationToken>,
}

/// The books, and word each time a connection closed at the cap is gone.
#[derive(Default)]
struct Ledger {
    books: Mutex<Books>,
    released: Notify,
}

type Shared = Arc<Ledger>;

fn lock(ledger: &Shared) -> MutexGuard<'_, Books> {
    ledger.books.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What [`Books::admit`] decided for a new connection.
#[derive(Debug)]
enum Admit {
    /// Served: its id and what closes it.
    Serve(u64, CancellationToken),
    /// Wait until a connection closed at the cap is released, then ask
    /// again.
    Wait,
    /// At the cap and every connection answered: 503.
    Refuse,
}

impl Books {
    /// Makes room for one more connection under `cap` (closing the oldest
    /// unanswered one if need be) and books it.
    fn admit(&mut self, cap: usize) -> Admit {
        if self.open - self.closing >= cap {
            if self.closing >= MAX_CLOSING {
                return Admit::Wait;
            }
            let Some((_, oldest)) = self.unanswered.pop_first() else {
                return Admit::Refuse;
            };
            oldest.cancel();
            self.closing += 1;
        }
        self.open += 1;
        let id = self.next;
        self.next += 1;
        let close = CancellationToken::new();
        self.unanswered.insert(id, close.clone());
        Admit::Serve(id, close)
    }
}

/// One booked connection; unbooked when its task ends.
struct Booked {
    books: Shared,
    id: u64,
    close: CancellationToken,
}

impl Drop for Booked {
    fn drop(&mut self) {
        let mut b = lock(&self.books);
        b.unanswered.remove(&self.id);
        b.open -= 1;
        if self.close.is_cancelled() {
            b.closing -= 1;
            drop(b);
            self.books.released.notify_waiters();
        }
    }
}

/// The connection's socket, which marks the connection answered (no longer
/// to be closed at the cap) when the edge first writes to it. An interim
/// `100 Continue` does not count: the request's body is still to come.
struct Watched {
    stream: TcpStream,
    unanswered: Option<(Shared, u64)>,
}

impl Watched {
    fn wrote(&mut self, first: &[u8]) {
        if first.starts_with(b"HTTP/1.1 1") {
            return;
        }
        if let Some((books, id)) = self.unanswered.take() {
            lock(&books).unanswered.remove(&id);
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            self.wrote(buf);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
            self.wrote(first);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` until `stop`; see the [module docs](self).
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    stop: CancellationToken,
) {
    let books = Shared::default();
    let connections = TaskTracker::new();
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    'accept: loop {
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
        let (id, close) = loop {
            let released = books.released.notified();
            tokio::pin!(released);
            // Registered before asking, so a release in between is seen.
            released.as_mut().enable();
            match lock(&books).admit(limits.max_connections) {
                Admit::Serve(id, close) => break (id, close),
                Admit::Refuse => {
                    tracing::debug!(%peer, "connection refused with 503: at the connection cap, every connection answered");
                    connections.spawn(refuse(stream));
                    continue 'accept;
                }
                Admit::Wait => {}
            }
            tokio::select! {
                () = stop.cancelled() => break 'accept,
                () = released => {}
            }
        };
        let booked = Booked {
            books: books.clone(),
            id,
            close: close.clone(),
        };
        let io = Watched {
            stream,
            unanswered: Some((books.clone(), id)),
        };
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            // Dropped after the connection, so its descriptor is closed
            // before it is unbooked.
            let _booked = booked;
            let conn = builder.serve_connection(TokioIo::new(io), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, "HTTP connection ended: {e}");
                    }
                }
                () = close.cancelled() => {
                    tracing::debug!(%peer, "closed at the connection cap: the oldest connection not answered yet");
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

async fn refuse(mut stream: TcpStream) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn book(books: &Shared, cap: usize) -> Result<Booked, Admit> {
        match lock(books).admit(cap) {
            Admit::Serve(id, close) => Ok(Booked {
                books: books.clone(),
                id,
                close,
            }),
            other => Err(other),
        }
    }

    fn counts(books: &Shared) -> (usize, usize) {
        let b = lock(books);
        (b.open, b.closing)
    }

    #[test]
    fn at_the_cap_the_oldest_unanswered_connection_is_closed() {
        let books = Shared::default();
        let first = book(&books, 3).unwrap();
        let second = book(&books, 3).unwrap();
        let third = book(&books, 3).unwrap();
        // The first one has been answered: it is not closed to make room.
        lock(&books).unanswered.remove(&first.id);
        let fourth = book(&books, 3).unwrap();
        assert!(!first.close.is_cancelled());
        assert!(second.close.is_cancelled(), "the oldest unanswered");
        assert!(!third.close.is_cancelled());
        assert!(!fourth.close.is_cancelled());
        assert_eq!(counts(&books), (4, 1));
        // Its task ends: its place is free, nothing more is closed.
        drop(second);
        assert_eq!(counts(&books), (3, 0));
        let fifth = book(&books, 3).unwrap();
        assert!(third.close.is_cancelled());
        assert!(!fourth.close.is_cancelled() && !fifth.close.is_cancelled());
    }

    #[test]
    fn when_every_connection_was_answered_a_new_one_is_refused() {
        let books = Shared::default();
        let held: Vec<Booked> = (0..2).map(|_| book(&books, 2).unwrap()).collect();
        for b in &held {
            lock(&books).unanswered.remove(&b.id);
        }
        assert!(matches!(book(&books, 2), Err(Admit::Refuse)));
        assert_eq!(counts(&books), (2, 0));
        drop(held);
        assert_eq!(counts(&books), (0, 0));
        assert!(book(&books, 2).is_ok());
    }

    #[test]
    fn closes_not_yet_done_are_bounded_and_waited_for() {
        let books = Shared::default();
        let mut held: Vec<Booked> = (0..MAX_CLOSING + 1)
            .map(|_| book(&books, 1).unwrap())
            .collect();
        // One served, MAX_CLOSING closed whose tasks have not ended.
        assert_eq!(counts(&books), (MAX_CLOSING + 1, MAX_CLOSING));
        assert!(matches!(book(&books, 1), Err(Admit::Wait)));
        let released = books.released.notified();
        let mut released = std::pin::pin!(released);
        released.as_mut().enable();
        held.remove(0);
        assert!(
            futures::FutureExt::now_or_never(released).is_some(),
            "a waiting accept is woken"
        );
        assert!(book(&books, 1).is_ok());
    }
}
