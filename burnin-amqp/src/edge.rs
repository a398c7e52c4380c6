//! The edge side: publish scan commands, consume replies.
//!
//! [`connect`] returns the two halves of one broker connection:
//! [`AmqpCommandPublisher`] ([`CommandPublisher`]) and [`AmqpReplyStream`]
//! ([`ReplyStream`]). The reply stream is fed by a background task that
//! owns the consumer, so [`ReplyStream::next_reply`] is cancel-safe.
//!
//! Each reply is handed over unacknowledged: [`Delivery::ack`] acks it
//! once the caller recorded it; [`Delivery::reject`] republishes the body
//! to `<reply queue>.rejected` with header `x-burnin-reason` (persistent,
//! confirmed by the broker) and only then acks the original. Replies of any
//! size are handed over — the core refuses those over 1 MiB and rejects them
//! with a reason — so nothing is dropped. A reply whose ack was lost with
//! the connection is delivered again after reconnecting (`redelivered`);
//! the core counts it as a duplicate. Acks settled in the same turn of the
//! runtime (a group commit's replies) go out together, one `basic.ack`
//! with `multiple` over each unbroken run of delivery tags, never covering
//! a reply not yet settled (see `acks.rs`; at 10,000 devices the edge
//! sent 588–1,351 frames, one per 7–17 replies). The edge logs at debug how many
//! replies it acknowledged in how many frames when the consumer's channel
//! ends.
//!
//! **One consumer per reply queue** (SPEC §11.3). Two edges consuming one
//! reply queue would each get part of the replies: each would fail the
//! devices whose replies the other took, and reject those replies as
//! "unknown operation". So the edge is the queue's only consumer, and a
//! second one is refused with [`AmqpError::QueueInUse`] (not retryable:
//! another edge does not go away by itself):
//!
//! * a **classic** queue is consumed with `exclusive` set; the broker
//!   refuses a second consumer, of any kind, with `403 ACCESS_REFUSED …
//!   in exclusive use`, and refuses the exclusive consume while another
//!   consumer is there;
//! * a **quorum** queue does not enforce `exclusive` (RabbitMQ 3.10
//!   accepts a second consumer and splits deliveries), so it is declared
//!   with [`x-single-active-consumer: true`](crate::SINGLE_ACTIVE_CONSUMER)
//!   — a second consumer would receive nothing while the first is active —
//!   and the edge counts the queue's consumers (a passive declare) before
//!   consuming: any consumer there is refused. It counts again after
//!   consuming: two edges that started at the same moment both see two and
//!   both give up, rather than one of them waiting idle behind the other.
//!   A quorum queue an older release declared lacks the argument: declaring
//!   it is an [`AmqpError::Conflict`] naming the queue, the argument and
//!   the fix (stop the edges, drain and delete the queue; nothing is
//!   deleted for you). The rejected queue has no consumer of ours and
//!   keeps `x-queue-type` alone, so an existing one is used as it is.
//!
//! **After a reconnect** the edge consumes exclusively again. Its own
//! consumer on the lost connection may still hold the queue until the
//! broker sees that connection dead (two missed heartbeats), so a refusal
//! is retried, with backoff, for three heartbeat intervals from the loss.
//! If the queue is still in use after that, another edge took it while
//! this one was away: the reply stream hands over the refusal as a final
//! [`TransportError::Refused`] and ends. A running operation then fails
//! with that error (`scan` exits 3); `serve` connects afresh, and keeps
//! being refused — `/healthz` 503, a warning naming the queue at each try —
//! until the other edge lets go.
//!
//! **A standby taking over** (`burnin-edge serve --store postgres://…`)
//! consumes the same way. While the old active's broker connection is
//! still open — the process froze, or its host lost the network — the new
//! active is refused and tries again every few seconds (its API already
//! answers, `/healthz` says 503); it starts consuming once the broker
//! drops the old connection: at once when the old process exited or was
//! killed, else after two missed heartbeats (40 s with the default 20 s).
//! Replies wait in the queue meanwhile, and those the old active held
//! unacknowledged are delivered again; nothing is split or lost, the
//! running operations only collect later. An old active that is still
//! alive but lost its lock closes its connection itself.
//!
//! **Re-announcing** (SPEC §10.3). An agent's queue lives on the node its
//! connection is on; when that node dies the agent reconnects to another
//! node with a fresh queue that never saw the command. So while a
//! command's window is open the publisher sends it again at once after the
//! edge's own connection was made anew, and — on a cluster, see
//! [`AmqpConfig::reannounce`] — every 5 s, with `expiration` set to what is
//! left of the window. Agents answer each operation id once, so an agent
//! that already replied ignores the repeat; a device that joined the room
//! mid-window answers too. [`AmqpCommandPublisher::withdraw`] stops the
//! repeats when an operation ends before its deadline.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use burnin_core::ports::Acker;
use burnin_core::{
    CommandPublisher, Delivery, OperationId, ReplyStream, ScanCommand, TransportError,
};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;

use crate::acks::{Acks, Outcome};
use crate::link::{
    CLOSE_WAIT, PublishError, Session, SessionCell, Side, bounded, channel, confirm_channel,
    json_properties, resume_consuming, short,
};
use crate::{AmqpConfig, AmqpError, QueueType};

/// Header naming why a reply was moved to the rejected queue.
pub const REASON_HEADER: &str = "x-burnin-reason";

/// Connects, declares the exchange, the reply queue and the rejected queue
/// (SPEC §4), and starts consuming replies.
///
/// A declaration that conflicts with an existing queue or exchange is an
/// [`AmqpError::Conflict`]; nothing is deleted.
pub async fn connect(
    config: AmqpConfig,
) -> Result<(AmqpCommandPublisher, AmqpReplyStream), AmqpError> {
    let cell = Arc::new(SessionCell::new(config, Side::Edge)?);
    let session = cell.get().await?;
    let consumer = Consuming::start(&cell, &session).await?;
    let (tx, rx) = mpsc::channel(usize::from(cell.config.prefetch));
    tokio::spawn(consume_loop(cell.clone(), consumer, tx));
    let open = Arc::new(OpenCommands::default());
    tokio::spawn(announce_loop(
        cell.clone(),
        Arc::downgrade(&open),
        cell.config.reannounce,
    ));
    Ok((
        AmqpCommandPublisher {
            cell: cell.clone(),
            open,
        },
        AmqpReplyStream { rx, cell },
    ))
}

/// Publishes scan commands to the fanout exchange, and announces them
/// again while their window is open (see the [module docs](self)).
pub struct AmqpCommandPublisher {
    cell: Arc<SessionCell>,
    open: Arc<OpenCommands>,
}

/// When a command announced now is due again: after `every`, or (no
/// periodic repeats) only after a reconnect.
fn next_announcement(every: Option<Duration>) -> Instant {
    let now = Instant::now();
    match every {
        Some(every) => now + every,
        None => now + Duration::from_secs(86_400 * 365),
    }
}

/// Commands whose window is open, by operation.
#[derive(Default)]
struct OpenCommands {
    map: std::sync::Mutex<HashMap<OperationId, OpenCommand>>,
}

struct OpenCommand {
    command: ScanCommand,
    until: Instant,
    next: Instant,
}

/// The body of `command` published with `left` of its window to go: a
/// command that tells agents its remaining window (`remainingMs`) says how
/// much is left *now*, on every attempt and every re-announcement.
fn body_with(command: &ScanCommand, left: Duration) -> Vec<u8> {
    if command.remaining_ms.is_none() {
        return command.to_json();
    }
    let mut now = command.clone();
    now.remaining_ms = Some(u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
    now.to_json()
}

impl OpenCommands {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OperationId, OpenCommand>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Publishes each open command again when it is due (every `every`, if
/// set), and at once after a reconnect; ends when the publisher is dropped
/// or the connection closed.
async fn announce_loop(cell: Arc<SessionCell>, open: Weak<OpenCommands>, every: Option<Duration>) {
    let tick = every.map_or(Duration::from_millis(500), |e| {
        (e / 4).clamp(Duration::from_millis(50), Duration::from_millis(500))
    });
    let mut announced_on = cell.generation();
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = cell.closed() => return,
        }
        let Some(open) = open.upgrade() else { return };
        let generation = cell.generation();
        let now = Instant::now();
        let due: Vec<(OperationId, ScanCommand, Instant)> = {
            let mut map = open.lock();
            map.retain(|_, c| c.until > now + Duration::from_millis(50));
            map.iter()
                .filter(|(_, c)| generation != announced_on || c.next <= now)
                .map(|(id, c)| (id.clone(), c.command.clone(), c.until))
                .collect()
        };
        if due.is_empty() {
            announced_on = generation;
            continue;
        }
        // No retrying here: a command that does not go out now is due
        // again on the next tick.
        let Ok(session) = cell.get().await else {
            continue;
        };
        let mut all_sent = true;
        for (id, command, until) in due {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                continue;
            }
            let body = body_with(&command, left);
            let props =
                json_properties().with_expiration(short(&left.as_millis().max(1).to_string()));
            let sent = session
                .publish_confirmed(
                    &cell.config.exchange,
                    "",
                    false,
                    &body,
                    props,
                    cell.config.confirm_timeout.min(left),
                )
                .await;
            match sent {
                Ok(()) => {
                    tracing::debug!(operation = %id, "scan command announced again");
                    if let Some(c) = open.lock().get_mut(&id) {
                        c.next = next_announcement(every);
                    }
                }
                Err(e) => {
                    all_sent = false;
                    tracing::warn!(operation = %id, error = %e, "announcing the scan command again failed; will retry");
                }
            }
        }
        if all_sent {
            announced_on = session.generation;
        }
    }
}

impl std::fmt::Debug for AmqpCommandPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpCommandPublisher")
            .field("url", &self.cell.url())
            .finish()
    }
}

impl AmqpCommandPublisher {
    /// Closes the broker connection (both halves).
    pub async fn close(&self) {
        self.cell.close().await;
    }

    /// Stops announcing `operation`'s command again (its collection ended
    /// before the deadline). Unknown ids are ignored.
    pub fn withdraw(&self, operation: &OperationId) {
        self.open.lock().remove(operation);
    }

    /// How many commands are being announced again (windows still open).
    pub fn open_commands(&self) -> usize {
        self.open.lock().len()
    }

    /// Whether the broker connection is up right now (for health checks);
    /// answers at once, never connects (async only for the callers' sake).
    pub async fn is_connected(&self) -> bool {
        self.cell.is_up()
    }
}

#[async_trait]
impl CommandPublisher for AmqpCommandPublisher {
    /// Publishes the command JSON to the exchange (routing key `""`),
    /// persistent, `content_type` application/json, `expiration` = `window`
    /// in ms, and waits for the broker's confirm. Reconnects as needed for
    /// up to `window`.
    async fn publish(&self, command: &ScanCommand, window: Duration) -> Result<(), TransportError> {
        let until = tokio::time::Instant::now() + window;
        let mut attempt = 0;
        loop {
            let session = self.cell.get_retrying(Some(until)).await?;
            // The whole window on the first attempt (SPEC §4: expiration
            // = the window); what is left of it on a retry.
            let left = if attempt == 0 {
                window
            } else {
                until
                    .saturating_duration_since(tokio::time::Instant::now())
                    .max(Duration::from_millis(1))
            };
            let body = body_with(command, left);
            let props =
                json_properties().with_expiration(short(&left.as_millis().max(1).to_string()));
            let result = session
                .publish_confirmed(
                    &self.cell.config.exchange,
                    "",
                    false,
                    &body,
                    props,
                    self.cell.config.confirm_timeout,
                )
                .await;
            let err = match result {
                Ok(()) => {
                    tracing::debug!(operation = %command.operation_id, "scan command published");
                    self.open.lock().insert(
                        command.operation_id.clone(),
                        OpenCommand {
                            command: command.clone(),
                            until,
                            next: next_announcement(self.cell.config.reannounce),
                        },
                    );
                    return Ok(());
                }
                Err(PublishError::Broker(e)) if !e.is_retryable() => return Err(e.into()),
                Err(e) => e,
            };
            let delay = self.cell.config.backoff(attempt);
            if tokio::time::Instant::now() + delay >= until {
                return Err(TransportError::Unavailable(format!(
                    "scan command for operation {} not published: {err}",
                    command.operation_id
                )));
            }
            tracing::warn!(operation = %command.operation_id, error = %err, "publishing the scan command failed; retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// The replies arriving on the reply queue.
pub struct AmqpReplyStream {
    rx: mpsc::Receiver<Result<Delivery, TransportError>>,
    cell: Arc<SessionCell>,
}

impl std::fmt::Debug for AmqpReplyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpReplyStream")
            .field("url", &self.cell.url())
            .finish()
    }
}

impl AmqpReplyStream {
    /// Closes the broker connection (both halves); the stream then ends.
    pub async fn close(&self) {
        self.cell.close().await;
    }
}

#[async_trait]
impl ReplyStream for AmqpReplyStream {
    async fn next_reply(&mut self) -> Option<Result<Delivery, TransportError>> {
        self.rx.recv().await
    }
}

/// A consumer on the reply queue, with its channel.
struct Consuming {
    consumer: lapin::Consumer,
    settle: Arc<Settle>,
}

/// What an acker needs: the consumer's channel (acks must go on it, in
/// batches: see [`crate::acks`]) and a lock serialising the rejected-queue
/// publishes on it.
struct Settle {
    channel: lapin::Channel,
    acks: Arc<Acks>,
    lock: Mutex<()>,
    rejected_queue: String,
    confirm_timeout: Duration,
    generation: u64,
}

impl Consuming {
    async fn start(cell: &SessionCell, session: &Session) -> Result<Self, AmqpError> {
        let url = cell.url();
        bounded(
            cell.config.connect_timeout,
            &url,
            "the request to consume replies",
            Self::start_unbounded(cell, session),
        )
        .await
    }

    async fn start_unbounded(cell: &SessionCell, session: &Session) -> Result<Self, AmqpError> {
        let c = &cell.config;
        let queue = &c.reply_queue;
        // A quorum queue does not enforce the exclusive flag: look first.
        let quorum = c.reply_queue_type == QueueType::Quorum;
        if quorum {
            refuse_if_consumed(session, queue, 0).await?;
        }
        let channel = confirm_channel(&session.conn).await?;
        channel
            .basic_qos(c.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| AmqpError::from_lapin(&e, "setting the prefetch limit", None))?;
        let consumer = channel
            .basic_consume(
                short(queue),
                short(""),
                BasicConsumeOptions {
                    exclusive: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                let e = AmqpError::from_lapin(&e, &format!("consuming queue {queue:?}"), None);
                match e {
                    AmqpError::AccessRefused { message, .. }
                        if message.contains("in exclusive use") =>
                    {
                        AmqpError::QueueInUse {
                            queue: queue.clone(),
                            detail: format!("the broker said \"{message}\""),
                        }
                    }
                    e => e,
                }
            })?;
        if quorum {
            // Two edges starting at once both saw no consumer: both now see
            // two, and both give up rather than one of them waiting idle.
            if let Err(e) = refuse_if_consumed(session, queue, 1).await {
                let _ = tokio::time::timeout(CLOSE_WAIT, channel.close(200, "queue in use".into()))
                    .await;
                return Err(e);
            }
        }
        Ok(Consuming {
            consumer,
            settle: Arc::new(Settle {
                channel,
                acks: Arc::new(Acks::new(c.confirm_timeout)),
                lock: Mutex::new(()),
                rejected_queue: c.rejected_queue(),
                confirm_timeout: c.confirm_timeout,
                generation: session.generation,
            }),
        })
    }
}

/// [`AmqpError::QueueInUse`] if `queue` has more than `ours` consumers (a
/// passive declare on a channel of its own).
async fn refuse_if_consumed(session: &Session, queue: &str, ours: u32) -> Result<(), AmqpError> {
    let ch = channel(&session.conn).await?;
    let declared = ch
        .queue_declare(
            short(queue),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| {
            AmqpError::from_lapin(&e, &format!("counting the consumers of {queue:?}"), None)
        })?;
    if ch.status().connected() {
        let _ = tokio::time::timeout(CLOSE_WAIT, ch.close(200, "OK".into())).await;
    }
    let count = declared.consumer_count();
    if count > ours {
        return Err(AmqpError::QueueInUse {
            queue: queue.to_owned(),
            detail: format!(
                "it has {} other consumer{} (single active consumer)",
                count - ours,
                if count - ours == 1 { "" } else { "s" }
            ),
        });
    }
    Ok(())
}

async fn consume_loop(
    cell: Arc<SessionCell>,
    mut consuming: Consuming,
    tx: mpsc::Sender<Result<Delivery, TransportError>>,
) {
    loop {
        // Forward deliveries until the consumer fails or the stream is dropped.
        let lost = loop {
            let next = tokio::select! {
                () = tx.closed() => { cell.close().await; return; }
                () = cell.closed() => return,
                next = consuming.consumer.next() => next,
            };
            match next {
                Some(Ok(d)) => {
                    let acker = Box::new(AmqpAcker {
                        tag: d.delivery_tag,
                        acker: d.acker,
                        settle: consuming.settle.clone(),
                    });
                    let delivery = Delivery::new(d.data, d.redelivered, acker);
                    if tx.send(Ok(delivery)).await.is_err() {
                        cell.close().await;
                        return;
                    }
                }
                Some(Err(e)) => break e.to_string(),
                None => break "the consumer was cancelled".to_owned(),
            }
        };
        let message = format!(
            "lost the connection to the broker at {} ({lost}); reconnecting — unacknowledged replies will be delivered again",
            cell.url()
        );
        let cell_ref = &*cell;
        let start =
            move |session: Arc<Session>| async move { Consuming::start(cell_ref, &session).await };
        match resume_consuming(&cell, &tx, "reply", &lost, message, false, start).await {
            Some(c) => consuming = c,
            None => return,
        }
    }
}

struct AmqpAcker {
    tag: u64,
    acker: lapin::Acker,
    settle: Arc<Settle>,
}

impl AmqpAcker {
    async fn ack_now(self) -> Result<(), TransportError> {
        let (tag, generation) = (self.tag, self.settle.generation);
        let limit = self.settle.confirm_timeout;
        match self.settle.acks.ack(self.tag, self.acker).await {
            Outcome::Acked => Ok(()),
            Outcome::TimedOut => Err(TransportError::Unavailable(format!(
                "reply (delivery {tag} on connection {generation}) not acknowledged: the broker connection took more than {limit:?}; the broker will deliver it again"
            ))),
            Outcome::Lost => Err(TransportError::Unavailable(format!(
                "reply (delivery {tag} on connection {generation}) not acknowledged: the connection was lost; the broker will deliver it again"
            ))),
            Outcome::Failed(e) => {
                Err(AmqpError::from_lapin(&e, "acknowledging a reply", None).into())
            }
        }
    }
}

#[async_trait]
impl Acker for AmqpAcker {
    async fn ack(self: Box<Self>) -> Result<(), TransportError> {
        (*self).ack_now().await
    }

    async fn reject(self: Box<Self>, body: Vec<u8>, reason: &str) -> Result<(), TransportError> {
        let s = &self.settle;
        let mut headers = FieldTable::default();
        headers.insert(
            REASON_HEADER.into(),
            AMQPValue::LongString(LongString::from(
                reason.chars().take(4096).collect::<String>(),
            )),
        );
        let props = json_properties().with_headers(headers);
        let outcome = {
            let _guard = s.lock.lock().await;
            let published = tokio::time::timeout(s.confirm_timeout, async {
                let confirm = s
                    .channel
                    .basic_publish(
                        short(""),
                        short(&s.rejected_queue),
                        lapin::options::BasicPublishOptions {
                            mandatory: true,
                            ..Default::default()
                        },
                        &body,
                        props,
                    )
                    .await?;
                confirm.await
            })
            .await;
            match published {
                Err(_) => Err(format!("no confirm within {:?}", s.confirm_timeout)),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(lapin::Confirmation::Ack(None) | lapin::Confirmation::NotRequested)) => {
                    Ok(())
                }
                Ok(Ok(lapin::Confirmation::Ack(Some(ret)))) => Err(format!(
                    "returned by the broker: {} {} (was {:?} deleted?)",
                    ret.reply_code, ret.reply_text, s.rejected_queue
                )),
                Ok(Ok(lapin::Confirmation::Nack(_))) => Err("nacked by the broker".to_owned()),
            }
        };
        if let Err(why) = outcome {
            // Not acked: the broker keeps the reply and delivers it again.
            return Err(TransportError::Unavailable(format!(
                "could not move a rejected reply to {:?}: {why}; it stays on the reply queue",
                s.rejected_queue
            )));
        }
        (*self).ack_now().await
    }
}
