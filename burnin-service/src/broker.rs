//! Broker supervision: one connection for the whole service, kept up.
//!
//! A [`Connector`] makes a connection: a [`Link`] to publish commands on
//! (and ask whether it is up), and the reply queue's [`ReplyStream`].
//! [`AmqpConnector`] is RabbitMQ ([`burnin_amqp::edge::connect`]);
//! [`MemoryConnector`] is burnin-core's in-memory broker, for tests and
//! demos that need no server.
//!
//! The service's broker task ([`App::start`](crate::App::start)) connects,
//! retrying at most ~4 s apart while the broker is unreachable (the API
//! is up meanwhile and `/healthz` says 503), then pumps the reply queue
//! into the service's [`ReplyRouter`]. If
//! the reply consumer ends for good the task connects afresh.
//! Operations publish through a [`BrokerLink`], which waits (up to the
//! operation's window) for a connection while there is none.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use burnin_amqp::AmqpConfig;
use burnin_amqp::edge::AmqpCommandPublisher;
use burnin_core::edge::ReplyRouter;
use burnin_core::memory::{MemoryBroker, MemoryPublisher};
use burnin_core::{CommandPublisher, ReplyStream, ScanCommand, TransportError};
use futures::FutureExt as _;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// One broker connection's publishing half, as the service uses it.
#[async_trait]
pub trait Link: CommandPublisher {
    /// Whether the connection is up right now (answers at once).
    async fn is_connected(&self) -> bool;
    /// Closes the connection (both halves).
    async fn close(&self);
}

/// Makes broker connections for the service.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Connects once: declares what the service needs and starts consuming
    /// the reply queue.
    async fn connect(&self) -> Result<(Arc<dyn Link>, Box<dyn ReplyStream>), TransportError>;

    /// The broker, for logs (passwords redacted).
    fn describe(&self) -> String;

    /// How long to wait before connection attempt `attempt` + 1 (0-based)
    /// after a failure. The default doubles from 250 ms up to 4 s.
    fn retry_delay(&self, attempt: u32) -> Duration {
        Duration::from_millis(250).saturating_mul(1 << attempt.min(4))
    }
}

/// RabbitMQ, through burnin-amqp.
#[derive(Debug, Clone)]
pub struct AmqpConnector {
    config: AmqpConfig,
}

impl AmqpConnector {
    /// Connects with `config` (checked by the caller, e.g. with
    /// [`AmqpConfig::validate`]).
    pub fn new(config: AmqpConfig) -> Self {
        AmqpConnector { config }
    }
}

#[async_trait]
impl Link for AmqpCommandPublisher {
    async fn is_connected(&self) -> bool {
        AmqpCommandPublisher::is_connected(self).await
    }
    async fn close(&self) {
        AmqpCommandPublisher::close(self).await;
    }
}

#[async_trait]
impl Connector for AmqpConnector {
    async fn connect(&self) -> Result<(Arc<dyn Link>, Box<dyn ReplyStream>), TransportError> {
        let (publisher, replies) = burnin_amqp::edge::connect(self.config.clone()).await?;
        Ok((Arc::new(publisher), Box::new(replies)))
    }

    fn describe(&self) -> String {
        self.config.redacted_url()
    }

    fn retry_delay(&self, attempt: u32) -> Duration {
        // At most ~4 s between attempts, so /healthz turns 200 soon after
        // the broker is back.
        self.config.backoff(attempt.min(4))
    }
}

/// burnin-core's in-memory broker: always up. Agents on the same
/// [`MemoryBroker`] (`broker.agent()`) answer the service's commands.
#[derive(Debug, Clone)]
pub struct MemoryConnector {
    broker: MemoryBroker,
    reply_queue: String,
}

impl MemoryConnector {
    /// Declares `reply_queue` on `broker` at each connect.
    pub fn new(broker: MemoryBroker, reply_queue: impl Into<String>) -> Self {
        MemoryConnector {
            broker,
            reply_queue: reply_queue.into(),
        }
    }
}

#[async_trait]
impl Link for MemoryPublisher {
    async fn is_connected(&self) -> bool {
        true
    }
    async fn close(&self) {}
}

#[async_trait]
impl Connector for MemoryConnector {
    async fn connect(&self) -> Result<(Arc<dyn Link>, Box<dyn ReplyStream>), TransportError> {
        let (publisher, replies) = self.broker.edge(&self.reply_queue);
        Ok((Arc::new(publisher), Box::new(replies)))
    }

    fn describe(&self) -> String {
        "the in-memory broker".into()
    }
}

/// The service's current broker connection, if any; operations publish
/// through it.
/// Clones share the connection.
#[derive(Debug, Clone)]
pub struct BrokerLink {
    tx: watch::Sender<Option<Arc<dyn Link>>>,
}

impl std::fmt::Debug for dyn Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Link")
    }
}

impl BrokerLink {
    pub(crate) fn new() -> Self {
        BrokerLink {
            tx: watch::Sender::new(None),
        }
    }

    /// Whether the broker connection is up (for `/healthz`).
    pub async fn is_up(&self) -> bool {
        let current = self.tx.borrow().clone();
        match current {
            Some(link) => tokio::time::timeout(Duration::from_secs(2), link.is_connected())
                .await
                .unwrap_or(false),
            None => false,
        }
    }

    /// Whether the broker connection is up, answered without waiting (for
    /// `/metrics`, read at each scrape): none, or one whose check would
    /// have to wait, counts as down.
    pub(crate) fn up_now(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let rx = self.tx.subscribe();
        move || {
            let current = rx.borrow().clone();
            current.is_some_and(|link| link.is_connected().now_or_never().unwrap_or(false))
        }
    }

    /// Whether the broker connection is up, waiting up to `wait` for a
    /// first connection (one being made at start) before saying no.
    pub async fn up_within(&self, wait: Duration) -> bool {
        let mut rx = self.tx.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await;
        self.is_up().await
    }

    fn set(&self, link: Option<Arc<dyn Link>>) {
        self.tx.send_replace(link);
    }
}

#[async_trait]
impl CommandPublisher for BrokerLink {
    /// Waits for a connection (up to `window`), then publishes on it.
    async fn publish(&self, command: &ScanCommand, window: Duration) -> Result<(), TransportError> {
        let until = tokio::time::Instant::now() + window;
        let mut rx = self.tx.subscribe();
        let link = match tokio::time::timeout_at(until, rx.wait_for(Option::is_some)).await {
            Ok(Ok(link)) => link.clone(),
            Ok(Err(_)) => return Err(TransportError::Closed),
            Err(_) => {
                return Err(TransportError::Unavailable(format!(
                    "the broker stayed unreachable for the whole window of operation {}",
                    command.operation_id
                )));
            }
        };
        let Some(link) = link else {
            return Err(TransportError::Closed);
        };
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        link.publish(command, left).await
    }
}

/// Connects (retrying while the broker is unreachable) and pumps replies
/// into the router until `stop` (the service stops, or this edge stops
/// being active); then closes the connection, so replies handed over but
/// not acked go back to the queue for whichever edge is active.
pub(crate) async fn supervise(
    connector: Arc<dyn Connector>,
    link_cell: BrokerLink,
    router: ReplyRouter,
    metrics: Arc<Metrics>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut attempt: u32 = 0;
    loop {
        let connected = tokio::select! {
            () = stop.cancelled() => return,
            c = connector.connect() => c,
        };
        match connected {
            Ok((link, mut stream)) => {
                attempt = 0;
                tracing::info!(broker = %connector.describe(), "connected to the broker; consuming replies");
                link_cell.set(Some(link.clone()));
                let on_reject_metrics = metrics.clone();
                let on_reject = move |reason: &burnin_core::RejectReason| {
                    on_reject_metrics.reply("rejected");
                    tracing::warn!("reply moved to the rejected queue: {reason}");
                };
                let on_error_metrics = metrics.clone();
                let on_error = move |e: &TransportError| {
                    on_error_metrics.transport_error();
                    tracing::warn!("broker: {e}");
                };
                let stopped = tokio::select! {
                    () = stop.cancelled() => true,
                    () = router.pump(stream.as_mut(), &on_reject, &on_error) => false,
                };
                link_cell.set(None);
                link.close().await;
                if stopped {
                    return;
                }
                tracing::error!("the reply consumer ended; connecting again");
            }
            Err(e) => {
                // `e` names the broker (redacted) and the fix.
                tracing::warn!("{e}; trying again");
            }
        }
        let delay = connector.retry_delay(attempt);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}
