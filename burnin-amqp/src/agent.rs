//! The agent side: receive scan commands, send replies.
//!
//! [`connect`] returns the two halves of one broker connection:
//! [`AmqpCommandSource`] ([`CommandSource`]) and [`AmqpReplySink`]
//! ([`ReplySink`]) — replies go out on the connection the commands came in
//! on (SPEC §4).
//!
//! On every (re)connection the agent declares the exchange (fanout,
//! durable, like the edge; a user without `configure` permission on it only
//! checks that it exists), declares a **server-named**, exclusive,
//! auto-delete queue, binds it to the exchange and consumes it. The queue
//! lives and dies with the connection; commands fanned out while the agent
//! was disconnected are not seen (the edge's window covers that).
//!
//! Command bodies are handed on unparsed and at any size: the core refuses
//! those over 64 KiB before parsing and logs them.
//!
//! **Commands are not acked** (the consumer uses automatic acks). The
//! queue is this connection's alone and dies with it, so a command the
//! agent was handed but did not act on (the process died, the connection
//! dropped) is gone either way: an ack would save nothing, and would cost
//! the broker one more message per device per scan (on 10,000 devices,
//! 10,000 acks to settle while the replies come in). A lost command is
//! covered by the edge's window and re-announcing, as a lost connection
//! is. What it gives up: with manual acks and a prefetch limit, the broker
//! held back commands the agent had not taken yet; now it sends them as
//! they come. Commands come one per scan (and one per re-announcement),
//! at most 64 KiB each, and only the edge's user may publish to the
//! exchange (README, "Securing the broker"), so an agent holds at most a
//! few.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use burnin_core::{CommandSource, OutgoingReply, ReplySink, TransportError};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::link::{
    PublishError, Session, SessionCell, Side, bounded, channel, confirm_channel, json_properties,
    resume_consuming, short,
};
use crate::{AmqpConfig, AmqpError};

/// Commands the agent holds between the broker and the core.
const COMMAND_BUFFER: u16 = 4;

/// Connects, declares and binds this agent's queue, and starts consuming
/// commands.
pub async fn connect(config: AmqpConfig) -> Result<(AmqpCommandSource, AmqpReplySink), AmqpError> {
    let cell = Arc::new(SessionCell::new(config, Side::Agent)?);
    let session = cell.get().await?;
    let consumer = start_consuming(&cell, &session).await?;
    let (tx, rx) = mpsc::channel(usize::from(COMMAND_BUFFER));
    tokio::spawn(command_loop(cell.clone(), consumer, tx));
    Ok((
        AmqpCommandSource {
            rx,
            cell: cell.clone(),
        },
        AmqpReplySink {
            cell,
            own_channel: None,
        },
    ))
}

/// Several agents over **one** broker connection (`agents` of them):
/// each declares, binds and consumes its own server-named queue on a
/// channel of its own and publishes its replies on a confirm-mode channel
/// of its own, exactly as [`connect`] does for one. For simulating many
/// devices from one process (the load harness), where one connection per
/// device would exhaust the broker's sockets; a real device runs
/// [`connect`].
///
/// The agents share the connection's fate: a lost connection is made again
/// once and every agent re-declares its queue on it; closing or dropping
/// any one source closes the connection for all of them.
pub async fn connect_shared(
    config: AmqpConfig,
    agents: usize,
) -> Result<Vec<(AmqpCommandSource, AmqpReplySink)>, AmqpError> {
    let cell = Arc::new(SessionCell::new(config, Side::Agent)?);
    let session = cell.get().await?;
    let mut halves = Vec::with_capacity(agents);
    for _ in 0..agents {
        let consumer = start_consuming(&cell, &session).await?;
        // Opened now, not on the first reply: a burst of replies would
        // otherwise open thousands of channels at once.
        let publish = bounded(
            cell.config.connect_timeout,
            &cell.url(),
            "opening a channel",
            confirm_channel(&session.conn),
        )
        .await?;
        let (tx, rx) = mpsc::channel(usize::from(COMMAND_BUFFER));
        tokio::spawn(command_loop(cell.clone(), consumer, tx));
        halves.push((
            AmqpCommandSource {
                rx,
                cell: cell.clone(),
            },
            AmqpReplySink {
                cell: cell.clone(),
                own_channel: Some(Arc::new(tokio::sync::Mutex::new(Some(publish)))),
            },
        ));
    }
    Ok(halves)
}

/// The scan commands fanned out to this agent.
pub struct AmqpCommandSource {
    rx: mpsc::Receiver<Result<Vec<u8>, TransportError>>,
    cell: Arc<SessionCell>,
}

impl std::fmt::Debug for AmqpCommandSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpCommandSource")
            .field("url", &self.cell.url())
            .finish()
    }
}

impl AmqpCommandSource {
    /// Closes the broker connection (both halves); the source then ends.
    pub async fn close(&self) {
        self.cell.close().await;
    }
}

#[async_trait]
impl CommandSource for AmqpCommandSource {
    async fn next_command(&mut self) -> Option<Result<Vec<u8>, TransportError>> {
        self.rx.recv().await
    }
}

/// Delivers replies to the edge's reply queue.
#[derive(Clone)]
pub struct AmqpReplySink {
    cell: Arc<SessionCell>,
    /// A publish channel of this sink's own ([`connect_shared`]); `None`:
    /// the session's.
    own_channel: Option<Arc<tokio::sync::Mutex<Option<lapin::Channel>>>>,
}

impl std::fmt::Debug for AmqpReplySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpReplySink")
            .field("url", &self.cell.url())
            .finish()
    }
}

impl AmqpReplySink {
    /// Closes the broker connection (both halves).
    pub async fn close(&self) {
        self.cell.close().await;
    }
}

#[async_trait]
impl ReplySink for AmqpReplySink {
    /// Publishes to the default exchange with routing key `reply_to`:
    /// persistent, `mandatory`, `correlation_id` = the operation id, and
    /// waits for the broker's confirm. A nack, a return (no such queue), a
    /// missing confirm or a lost connection is retried with backoff
    /// (reconnecting as needed) until `reply.deadline`; after a nack or a
    /// missing confirm the retry goes out on a fresh channel (a RabbitMQ
    /// 3.10 channel can keep nacking a quorum queue whose leader left).
    async fn send(&self, reply: &OutgoingReply) -> Result<(), TransportError> {
        let op = &reply.operation_id;
        if reply.reply_to.is_empty() || reply.reply_to.len() > 255 {
            return Err(TransportError::Refused(format!(
                "operation {op}: reply queue name {:?} is not a valid queue name",
                reply.reply_to.chars().take(64).collect::<String>()
            )));
        }
        let until = instant_of(reply.deadline.system_time());
        let correlation = op.to_string();
        let mut attempt = 0u32;
        let mut last: Option<String> = None;
        loop {
            let now = Instant::now();
            if now >= until {
                let why = last.unwrap_or_else(|| "no time was left".into());
                return Err(TransportError::DeadlinePassed(format!(
                    "the reply to operation {op} was not delivered to queue {:?} before the command's deadline {}: {why}",
                    reply.reply_to, reply.deadline
                )));
            }
            let err = match self.try_send(reply, &correlation, until).await {
                Ok(()) => {
                    if attempt > 0 {
                        tracing::info!(operation = %op, attempts = attempt + 1, "reply delivered after retrying");
                    }
                    return Ok(());
                }
                Err(AmqpError::Closed) => return Err(TransportError::Closed),
                Err(e) => e.to_string(),
            };
            let delay = self
                .cell
                .config
                .backoff(attempt)
                .min(until.saturating_duration_since(Instant::now()));
            tracing::warn!(operation = %op, error = %err, retry_in = ?delay, "reply not delivered; retrying until the command's deadline");
            last = Some(err);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.cell.closed() => return Err(TransportError::Closed),
            }
            attempt = attempt.saturating_add(1);
        }
    }
}

impl AmqpReplySink {
    async fn try_send(
        &self,
        reply: &OutgoingReply,
        correlation: &str,
        until: Instant,
    ) -> Result<(), AmqpError> {
        let session = self.cell.get_retrying(Some(until)).await?;
        let props = json_properties().with_correlation_id(short(correlation));
        let remaining = until.saturating_duration_since(Instant::now());
        let timeout = self
            .cell
            .config
            .confirm_timeout
            .min(remaining)
            .max(Duration::from_millis(1));
        let published = match &self.own_channel {
            Some(slot) => {
                session
                    .publish_confirmed_on(
                        slot,
                        "",
                        &reply.reply_to,
                        true,
                        &reply.body,
                        props,
                        timeout,
                    )
                    .await
            }
            None => {
                session
                    .publish_confirmed("", &reply.reply_to, true, &reply.body, props, timeout)
                    .await
            }
        };
        published.map_err(|e| match e {
            PublishError::Broker(e) => e,
            PublishError::Returned(why) => AmqpError::Broker {
                what: format!("publishing the reply to queue {:?}", reply.reply_to),
                message: format!("the broker returned it: {why} (the queue does not exist yet?)"),
                retryable: true,
            },
            other => AmqpError::Broker {
                what: format!("publishing the reply to queue {:?}", reply.reply_to),
                message: other.to_string(),
                retryable: true,
            },
        })
    }
}

/// The monotonic instant at which the wall clock reads `t` (now if past).
fn instant_of(t: SystemTime) -> Instant {
    let now = Instant::now();
    match t.duration_since(SystemTime::now()) {
        Ok(d) => now
            .checked_add(d)
            .unwrap_or(now + Duration::from_secs(86_400 * 365)),
        Err(_) => now,
    }
}

async fn start_consuming(
    cell: &SessionCell,
    session: &Session,
) -> Result<lapin::Consumer, AmqpError> {
    let url = cell.url();
    bounded(
        cell.config.connect_timeout,
        &url,
        "the request for this agent's queue",
        start_consuming_unbounded(cell, session),
    )
    .await
}

async fn start_consuming_unbounded(
    cell: &SessionCell,
    session: &Session,
) -> Result<lapin::Consumer, AmqpError> {
    let c = &cell.config;
    let ch = channel(&session.conn).await?;
    let queue = ch
        .queue_declare(
            short(""),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| AmqpError::from_lapin(&e, "declaring this agent's queue", None))?;
    let name = queue.name().clone();
    ch.queue_bind(
        name.clone(),
        short(&c.exchange),
        short(""),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|e| {
        AmqpError::from_lapin(
            &e,
            &format!("binding queue {name} to exchange {:?}", c.exchange),
            None,
        )
    })?;
    // Automatic acks: see the module docs ("Commands are not acked").
    let consumer = ch
        .basic_consume(
            name.clone(),
            short(""),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| AmqpError::from_lapin(&e, &format!("consuming queue {name}"), None))?;
    tracing::info!(queue = %name, exchange = %c.exchange, "waiting for scan commands");
    Ok(consumer)
}

async fn command_loop(
    cell: Arc<SessionCell>,
    mut consumer: lapin::Consumer,
    tx: mpsc::Sender<Result<Vec<u8>, TransportError>>,
) {
    loop {
        let lost = loop {
            let next = tokio::select! {
                () = tx.closed() => { cell.close().await; return; }
                () = cell.closed() => return,
                next = consumer.next() => next,
            };
            match next {
                Some(Ok(d)) => {
                    if tx.send(Ok(d.data)).await.is_err() {
                        cell.close().await;
                        return;
                    }
                }
                Some(Err(e)) => break e.to_string(),
                None => break "the consumer was cancelled".to_owned(),
            }
        };
        let message = format!(
            "lost the connection to the broker at {} ({lost}); reconnecting",
            cell.url()
        );
        // Even a refusal may be fixed by an operator (permissions, a missing
        // exchange): an agent keeps trying.
        let cell_ref = &*cell;
        let start =
            move |session: Arc<Session>| async move { start_consuming(cell_ref, &session).await };
        match resume_consuming(&cell, &tx, "command", &lost, message, true, start).await {
            Some(c) => consumer = c,
            None => return,
        }
    }
}
