//! In-process adapters: a message broker in memory, a manual clock and a
//! fixed hardware probe.
//!
//! They implement the [ports](crate::ports) with `futures` channels only, so
//! they run on any executor (or `futures::executor::block_on`). Tests use
//! them to run agents and the edge in one process; `burnin-edge demo` uses
//! them to run a whole operation with no servers.
//!
//! The memory broker keeps the essential semantics of SPEC §4: a command
//! reaches every agent (fanout); a reply goes to the named queue, and is an
//! error if no such queue exists (RabbitMQ's NO_ROUTE); rejected replies are
//! kept with their reason, never dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::channel::mpsc;

use crate::ports::Acker;
use crate::{
    Clock, CommandPublisher, CommandSource, Delivery, Hardware, HardwareProbe, OutgoingReply,
    ProbeError, ReplySink, ReplyStream, ScanCommand, Timestamp, TransportError,
};

#[derive(Default)]
struct Inner {
    agents: Vec<mpsc::UnboundedSender<Vec<u8>>>,
    queues: HashMap<String, mpsc::UnboundedSender<Vec<u8>>>,
    rejected: Vec<(Vec<u8>, String)>,
}

/// A message broker in memory; clones share it.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker").finish_non_exhaustive()
    }
}

impl MemoryBroker {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave `Inner` inconsistent
        // (every update is a single push or insert), so keep going.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The edge's side: declares `reply_queue` and returns the command
    /// publisher and the queue's consumer.
    pub fn edge(&self, reply_queue: &str) -> (MemoryPublisher, MemoryReplyStream) {
        let (tx, rx) = mpsc::unbounded();
        self.lock().queues.insert(reply_queue.to_owned(), tx);
        (
            MemoryPublisher {
                broker: self.clone(),
            },
            MemoryReplyStream {
                broker: self.clone(),
                rx,
            },
        )
    }

    /// An agent's side: a queue bound to the command fanout, and a reply sink.
    pub fn agent(&self) -> (MemoryCommandSource, MemoryReplySink) {
        let (tx, rx) = mpsc::unbounded();
        self.lock().agents.push(tx);
        (
            MemoryCommandSource { rx },
            MemoryReplySink {
                broker: self.clone(),
            },
        )
    }

    /// Publishes a raw body to a queue, as any client could (tests use it to
    /// send malformed replies).
    pub fn send_to_queue(&self, queue: &str, body: Vec<u8>) -> Result<(), TransportError> {
        let inner = self.lock();
        let tx = inner.queues.get(queue).ok_or_else(|| {
            TransportError::Unavailable(format!("no queue named {queue:?} (NO_ROUTE)"))
        })?;
        tx.unbounded_send(body)
            .map_err(|_| TransportError::Unavailable(format!("queue {queue:?} was deleted")))
    }

    /// Replies moved to the rejected queue, with their `x-burnin-reason`.
    pub fn rejected(&self) -> Vec<(Vec<u8>, String)> {
        self.lock().rejected.clone()
    }
}

/// Publishes commands to every agent of a [`MemoryBroker`].
#[derive(Debug, Clone)]
pub struct MemoryPublisher {
    broker: MemoryBroker,
}

#[async_trait]
impl CommandPublisher for MemoryPublisher {
    async fn publish(
        &self,
        command: &ScanCommand,
        _window: Duration,
    ) -> Result<(), TransportError> {
        let body = command.to_json();
        let mut inner = self.broker.lock();
        inner
            .agents
            .retain(|tx| tx.unbounded_send(body.clone()).is_ok());
        Ok(())
    }
}

/// The edge's consumer of a reply queue of a [`MemoryBroker`].
#[derive(Debug)]
pub struct MemoryReplyStream {
    broker: MemoryBroker,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl MemoryReplyStream {
    /// A reply already waiting, without waiting for one.
    pub fn try_next_now(&mut self) -> Option<Delivery> {
        self.rx.try_recv().ok().map(|body| self.delivery(body))
    }

    fn delivery(&self, body: Vec<u8>) -> Delivery {
        Delivery::new(
            body,
            false,
            Box::new(MemoryAcker {
                broker: self.broker.clone(),
            }),
        )
    }
}

#[async_trait]
impl ReplyStream for MemoryReplyStream {
    async fn next_reply(&mut self) -> Option<Result<Delivery, TransportError>> {
        let body = self.rx.next().await?;
        Some(Ok(self.delivery(body)))
    }
}

struct MemoryAcker {
    broker: MemoryBroker,
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn ack(self: Box<Self>) -> Result<(), TransportError> {
        Ok(())
    }
    async fn reject(self: Box<Self>, body: Vec<u8>, reason: &str) -> Result<(), TransportError> {
        self.broker.lock().rejected.push((body, reason.to_owned()));
        Ok(())
    }
}

/// An agent's command queue on a [`MemoryBroker`].
#[derive(Debug)]
pub struct MemoryCommandSource {
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
}

#[async_trait]
impl CommandSource for MemoryCommandSource {
    async fn next_command(&mut self) -> Option<Result<Vec<u8>, TransportError>> {
        self.rx.next().await.map(Ok)
    }
}

/// An agent's reply sink on a [`MemoryBroker`].
#[derive(Debug, Clone)]
pub struct MemoryReplySink {
    broker: MemoryBroker,
}

#[async_trait]
impl ReplySink for MemoryReplySink {
    async fn send(&self, reply: &OutgoingReply) -> Result<(), TransportError> {
        self.broker
            .send_to_queue(&reply.reply_to, reply.body.clone())
    }
}

/// A probe that always reports the same hardware (a simulated device).
#[derive(Debug, Clone)]
pub struct StaticProbe {
    hardware: Hardware,
}

impl StaticProbe {
    /// A probe reporting `hardware`.
    pub fn new(hardware: Hardware) -> Self {
        StaticProbe { hardware }
    }
}

#[async_trait]
impl HardwareProbe for StaticProbe {
    async fn probe(&self) -> Result<Hardware, ProbeError> {
        Ok(self.hardware.clone())
    }
}

/// A clock that only moves when told to — or when slept on.
///
/// `sleep_until` jumps the clock to the deadline and returns at once, like
/// a simulated clock that skips ahead whenever the program would idle. Used
/// with `select_biased!`-style drivers that poll timers last, it makes
/// operations run to their deadline instantly and deterministically.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Timestamp>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = now.saturating_add(by);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
    async fn sleep_until(&self, deadline: Timestamp) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        if *now < deadline {
            *now = deadline;
        }
    }
}
