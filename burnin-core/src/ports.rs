//! The ports: traits the adapters implement and the use cases run on.
//!
//! Every trait is object-safe (`#[async_trait]`), so a binary can choose an
//! adapter at run time (`Box<dyn MesSource>`: HTTP or a file), and no async
//! runtime is imposed on the caller. Adapters own their I/O, timeouts and
//! retries; they report what is left as one error enum per concern, each
//! with an `is_retryable()` so callers can tell a passing fault (connection
//! lost, 503) from a final one (access refused, 400, bad configuration).
//!
//! Futures returned by the `next_*` methods must be cancel-safe: the edge
//! use case races them against timers and MES lookups and drops the loser.

use std::time::Duration;

use async_trait::async_trait;

use crate::{
    Hardware, MesAnswer, OperationId, Payload, PayloadKind, ScanCommand, SerialNumber, Timestamp,
};

/// The wall clock, and waiting on it.
///
/// burnin-core never reads the OS clock; it asks this trait, so tests can run
/// operations on simulated time.
#[async_trait]
pub trait Clock: Send + Sync {
    /// The current wall-clock time.
    fn now(&self) -> Timestamp;
    /// Completes once [`now`](Clock::now) has reached `deadline`.
    async fn sleep_until(&self, deadline: Timestamp);
}

/// A message-broker failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The broker cannot be reached or the connection was lost; retrying
    /// (after reconnecting) may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// The broker refused the request for good (access refused, a
    /// conflicting declaration, bad configuration).
    #[error("{0}")]
    Refused(String),
    /// A reply could not be delivered before the command's deadline.
    #[error("{0}")]
    DeadlinePassed(String),
    /// The transport was closed (shutdown).
    #[error("the broker connection was closed")]
    Closed,
}

impl TransportError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TransportError::Unavailable(_))
    }
}

/// Edge side: sends the scan command to every agent.
#[async_trait]
pub trait CommandPublisher: Send + Sync {
    /// Publishes `command`; it expires after `window` if nobody takes it.
    async fn publish(&self, command: &ScanCommand, window: Duration) -> Result<(), TransportError>;
}

/// One reply taken from the reply queue, not yet acknowledged.
///
/// Dropping a delivery without calling [`ack`](Delivery::ack) or
/// [`reject`](Delivery::reject) leaves it with the broker, which will hand it
/// over again.
pub struct Delivery {
    /// The raw message body.
    pub body: Vec<u8>,
    /// Whether the broker says it delivered this message before.
    pub redelivered: bool,
    acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("len", &self.body.len())
            .field("redelivered", &self.redelivered)
            .finish()
    }
}

impl Delivery {
    /// Wraps a body and the adapter's way of settling it.
    pub fn new(body: Vec<u8>, redelivered: bool, acker: Box<dyn Acker>) -> Self {
        Delivery {
            body,
            redelivered,
            acker,
        }
    }

    /// Settles the message: it has been recorded.
    pub async fn ack(self) -> Result<(), TransportError> {
        self.acker.ack().await
    }

    /// Moves the message to the rejected queue with `reason`, then settles it.
    pub async fn reject(self, reason: &str) -> Result<(), TransportError> {
        self.acker.reject(self.body, reason).await
    }
}

/// The adapter half of a [`Delivery`].
#[async_trait]
pub trait Acker: Send {
    /// Acknowledges the message.
    async fn ack(self: Box<Self>) -> Result<(), TransportError>;
    /// Republishes `body` to the rejected queue with header
    /// `x-burnin-reason: reason`, then acknowledges the message.
    async fn reject(self: Box<Self>, body: Vec<u8>, reason: &str) -> Result<(), TransportError>;
}

/// Edge side: the replies arriving on the reply queue.
#[async_trait]
pub trait ReplyStream: Send {
    /// The next reply. `Some(Err(_))` with a retryable error reports a fault
    /// the adapter is recovering from (the stream goes on); a final error or
    /// `None` means no more replies will come. Must be cancel-safe.
    async fn next_reply(&mut self) -> Option<Result<Delivery, TransportError>>;

    /// The operation stopped collecting. A stream that buffers replies for
    /// this operation alone (see [`ReplyRouter`](crate::edge::ReplyRouter))
    /// stops taking new ones and returns `true`: its buffered replies then
    /// come out of [`next_reply`](Self::next_reply), followed by `None`,
    /// so they can be rejected as late. The default (a shared queue, whose
    /// later messages belong to others) does nothing and returns `false`.
    fn close(&mut self) -> bool {
        false
    }
}

/// Agent side: the scan commands fanned out to this device.
#[async_trait]
pub trait CommandSource: Send {
    /// The next command body, unparsed. `None` once the source is closed.
    /// Must be cancel-safe.
    async fn next_command(&mut self) -> Option<Result<Vec<u8>, TransportError>>;
}

/// A reply the agent sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingReply {
    /// The queue to send to (the command's `replyTo`).
    pub reply_to: String,
    /// The operation, sent as the message's `correlation_id`.
    pub operation_id: OperationId,
    /// The JSON body.
    pub body: Vec<u8>,
    /// Give up after this time.
    pub deadline: Timestamp,
}

/// Agent side: delivers replies to the edge.
#[async_trait]
pub trait ReplySink: Send + Sync {
    /// Delivers `reply`: durably (persistent, confirmed by the broker) and
    /// retrying until `reply.deadline`; after it, a
    /// [`TransportError::DeadlinePassed`].
    async fn send(&self, reply: &OutgoingReply) -> Result<(), TransportError>;
}

/// A failure reading the device's hardware facts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The hardware description (e.g. the sysfs root) cannot be read.
    #[error("{0}")]
    Unreadable(String),
    /// No usable serial number was found.
    #[error("{0}")]
    NoSerial(String),
}

impl ProbeError {
    /// Probing again later may succeed (a transient read error).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProbeError::Unreadable(_))
    }
}

/// Agent side: reads this device's hardware facts.
#[async_trait]
pub trait HardwareProbe: Send + Sync {
    /// Reads serial number, host name, PCI-backed interfaces and PCI devices.
    async fn probe(&self) -> Result<Hardware, ProbeError>;
}

/// A failed MES lookup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MesError {
    /// MES could not be reached or kept failing (timeouts, 5xx, 429) after
    /// the adapter's retries.
    #[error("MES lookup for {sn} failed: {message}")]
    Unavailable {
        /// The serial asked for.
        sn: SerialNumber,
        /// What happened (URL redacted, status, start of the body).
        message: String,
    },
    /// MES answered something that is not a usable record (4xx other than
    /// 404, wrong JSON, another serial, a bad MAC, too large).
    #[error("MES answer for {sn} is unusable: {message}")]
    BadAnswer {
        /// The serial asked for.
        sn: SerialNumber,
        /// What was wrong.
        message: String,
    },
}

impl MesError {
    /// What went wrong, without the serial (the caller names the device
    /// once): the adapter's message, prefixed with "unusable answer: " for
    /// [`MesError::BadAnswer`].
    pub fn reason(&self) -> String {
        match self {
            MesError::Unavailable { message, .. } => message.clone(),
            MesError::BadAnswer { message, .. } => format!("unusable answer: {message}"),
        }
    }

    /// Whether asking again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MesError::Unavailable { .. })
    }
}

/// Edge side: the MES records.
#[async_trait]
pub trait MesSource: Send + Sync {
    /// What MES recorded for `sn`. Implementations bound their own
    /// concurrency; callers may start many lookups at once.
    async fn lookup(&self, sn: &SerialNumber) -> Result<MesAnswer, MesError>;
}

/// A payload that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The endpoint could not be reached or kept failing after retries.
    #[error("{kind} could not be delivered: {message}")]
    Unavailable {
        /// Which payload.
        kind: PayloadKind,
        /// What happened (URL redacted, status, start of the body).
        message: String,
    },
    /// The endpoint refused the payload (a 4xx other than 429), or no
    /// endpoint is configured for it.
    #[error("{kind} was refused: {message}")]
    Refused {
        /// Which payload.
        kind: PayloadKind,
        /// What happened.
        message: String,
    },
}

impl ReportError {
    /// Whether delivering again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ReportError::Unavailable { .. })
    }
}

/// Edge side: delivers the factory payloads.
#[async_trait]
pub trait FactoryReporter: Send + Sync {
    /// Delivers one payload (log, Pair, directBurn or notification), with
    /// its [`Payload::idempotency_key`], retrying as the adapter sees fit.
    async fn deliver(&self, payload: &Payload) -> Result<(), ReportError>;
}
