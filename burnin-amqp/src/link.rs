//! One connection to the broker, made again whenever it is lost.
//!
//! Both sides share this: a [`SessionCell`] holds the current [`Session`]
//! (a connection, its declarations done, and a confirm-mode channel for
//! publishing). Whoever finds the session dead asks the cell for a new one;
//! the cell makes one connection attempt at a time. Callers loop with
//! [`SessionCell::get_retrying`], which waits with capped exponential
//! backoff and jitter between attempts.
//!
//! lapin's own recovery is not used: it would re-declare the agent's
//! server-named queue under its `amq.gen-*` name, which RabbitMQ refuses,
//! and its pending confirms fail anyway. A new connection with fresh
//! declarations is simpler to reason about.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;

use crate::{AmqpConfig, AmqpError};

/// How long closing a channel or connection may take. lapin's futures wait
/// forever when a connection wedges without closing, so every wait on the
/// broker in this crate has a limit.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Waits at most `limit` for `fut`, one exchange with the broker (`what`
/// names it): past the limit the connection is taken for lost, a
/// retryable [`AmqpError::Connect`] for `url`.
pub(crate) async fn bounded<T>(
    limit: Duration,
    url: &str,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, AmqpError>>,
) -> Result<T, AmqpError> {
    tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
        Err(AmqpError::Connect {
            url: url.to_owned(),
            message: format!("the broker did not answer {what} within {limit:?}"),
        })
    })
}

/// Which declarations a new session makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The exchange, the reply queue and the rejected queue.
    Edge,
    /// The exchange only (passively, if the user may not declare it).
    Agent,
}

/// A live connection with its declarations made.
pub(crate) struct Session {
    pub(crate) conn: Connection,
    pub(crate) generation: u64,
    publish: Mutex<Option<Channel>>,
}

/// Why a publish did not go through.
#[derive(Debug)]
pub(crate) enum PublishError {
    /// The broker returned the message as unroutable (e.g. 312 NO_ROUTE).
    Returned(String),
    /// The broker nacked it.
    Nacked,
    /// No confirm within the timeout.
    NoConfirm(Duration),
    /// The channel or connection failed.
    Broker(AmqpError),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::Returned(why) => write!(f, "the broker returned the message ({why})"),
            PublishError::Nacked => f.write_str("the broker nacked the message"),
            PublishError::NoConfirm(t) => {
                write!(f, "the broker did not confirm the message within {t:?}")
            }
            PublishError::Broker(e) => write!(f, "{e}"),
        }
    }
}

impl Session {
    pub(crate) fn is_alive(&self) -> bool {
        self.conn.status().connected()
    }

    /// Publishes on the session's confirm-mode channel and waits for the
    /// confirm. Publishes are serialised: lapin attaches a returned message
    /// to the next confirm, so two in flight could swap their returns.
    pub(crate) async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        body: &[u8],
        properties: BasicProperties,
        timeout: Duration,
    ) -> Result<(), PublishError> {
        self.publish_confirmed_on(
            &self.publish,
            exchange,
            routing_key,
            mandatory,
            body,
            properties,
            timeout,
        )
        .await
    }

    /// [`publish_confirmed`](Self::publish_confirmed) on a channel of the
    /// caller's own (`slot`, opened on this session's connection when empty
    /// or dead): agents sharing a connection each publish on their own
    /// channel, so one's confirm does not wait for another's.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn publish_confirmed_on(
        &self,
        slot: &Mutex<Option<Channel>>,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        body: &[u8],
        properties: BasicProperties,
        timeout: Duration,
    ) -> Result<(), PublishError> {
        let mut slot = slot.lock().await;
        let channel = match slot.as_ref() {
            Some(ch) if ch.status().connected() => ch.clone(),
            _ => {
                let ch = tokio::time::timeout(timeout, confirm_channel(&self.conn))
                    .await
                    .map_err(|_| PublishError::NoConfirm(timeout))?
                    .map_err(PublishError::Broker)?;
                *slot = Some(ch.clone());
                ch
            }
        };
        let what =
            || format!("publishing to exchange {exchange:?} with routing key {routing_key:?}");
        let result = tokio::time::timeout(timeout, async {
            let confirm = channel
                .basic_publish(
                    short(exchange),
                    short(routing_key),
                    BasicPublishOptions {
                        mandatory,
                        ..BasicPublishOptions::default()
                    },
                    body,
                    properties,
                )
                .await
                .map_err(|e| PublishError::Broker(AmqpError::from_lapin(&e, &what(), None)))?;
            confirm
                .await
                .map_err(|e| PublishError::Broker(AmqpError::from_lapin(&e, &what(), None)))
        })
        .await;
        let outcome = match result {
            Err(_) => Err(PublishError::NoConfirm(timeout)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(ret)))) => Err(PublishError::Returned(format!(
                "{} {}",
                ret.reply_code, ret.reply_text
            ))),
            Ok(Ok(Confirmation::Nack(_))) => Err(PublishError::Nacked),
        };
        // Two outcomes retire the channel, so the retry goes out on a fresh
        // one. A missing confirm: the channel may hold a confirm that will
        // never come, and later publishes would inherit it. A nack: RabbitMQ
        // 3.10 can leave a channel nacking every later publish to a quorum
        // queue whose leader's node stopped (in tests/cluster.rs nine agents
        // retried on their channels for the whole 60 s window, 732 nacks and
        // not one confirm, while the queue had a new leader and took replies
        // sent on other channels).
        let retire = match &outcome {
            Err(PublishError::NoConfirm(_)) => Some("confirm timeout"),
            Err(PublishError::Nacked) => Some("nacked"),
            _ => None,
        };
        if let Some(why) = retire {
            *slot = None;
            let _ = tokio::time::timeout(CLOSE_WAIT, channel.close(200, why.into())).await;
        }
        outcome
    }

    pub(crate) async fn close(&self) {
        if self.conn.status().connected() {
            let _ = tokio::time::timeout(CLOSE_WAIT, self.conn.close(200, "closing".into())).await;
        }
    }
}

/// A channel in publisher-confirm mode.
pub(crate) async fn confirm_channel(conn: &Connection) -> Result<Channel, AmqpError> {
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| AmqpError::from_lapin(&e, "opening a channel", None))?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| AmqpError::from_lapin(&e, "enabling publisher confirms", None))?;
    Ok(ch)
}

/// A `ShortString` from a name this crate validated (≤ 255 bytes) or a
/// fixed literal. Longer input is cut rather than panicking.
pub(crate) fn short(s: &str) -> ShortString {
    if s.len() <= 255 {
        ShortString::from(s)
    } else {
        let mut end = 255;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        ShortString::from(&s[..end])
    }
}

/// One broker node: its URL parsed, and redacted for logs.
struct Node {
    raw: String,
    shown: String,
    uri: AMQPUri,
}

/// Holds the current session and makes new ones.
pub(crate) struct SessionCell {
    pub(crate) config: AmqpConfig,
    side: Side,
    nodes: Vec<Node>,
    tls: OwnedTLSConfig,
    current: Mutex<Option<Arc<Session>>>,
    current_url: std::sync::Mutex<Option<String>>,
    generation: AtomicU64,
    closed: AtomicBool,
    closed_notify: Notify,
}

impl SessionCell {
    /// Checks the configuration and reads the CA file; connects nothing.
    pub(crate) fn new(config: AmqpConfig, side: Side) -> Result<Self, AmqpError> {
        // One place for the URL and CA rules: AmqpConfig::validate.
        config.validate()?;
        let nodes: Vec<Node> = config
            .urls()
            .zip(config.uris()?)
            .map(|(raw, (shown, uri))| Node {
                raw: raw.to_owned(),
                shown,
                uri,
            })
            .collect();
        let mut tls = OwnedTLSConfig::default();
        if let Some(pem) = config.ca_pem()? {
            for node in nodes.iter().filter(|n| n.uri.scheme != AMQPScheme::AMQPS) {
                tracing::warn!(
                    url = %node.shown,
                    "--amqp-ca-file is only used with amqps:// URLs; this one is plain amqp://"
                );
            }
            tls.cert_chain = Some(pem);
        }
        Ok(SessionCell {
            config,
            side,
            nodes,
            tls,
            current: Mutex::new(None),
            current_url: std::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            closed_notify: Notify::new(),
        })
    }

    /// The redacted URL of the node connected to (or last connected to),
    /// else of every node, for logs.
    pub(crate) fn url(&self) -> String {
        self.current_url
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| self.config.redacted_url())
    }

    /// The latest session's generation (0 before the first).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Completes once [`close`](Self::close) was called.
    pub(crate) async fn closed(&self) {
        let notified = self.closed_notify.notified();
        if self.is_closed() {
            return;
        }
        notified.await;
    }

    /// Closes the connection; no new one will be made.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.closed_notify.notify_waiters();
        if let Some(s) = self.current.lock().await.take() {
            s.close().await;
        }
    }

    /// Whether a live session exists right now (never connects; `false`
    /// while another task is connecting).
    pub(crate) fn is_up(&self) -> bool {
        !self.is_closed()
            && self
                .current
                .try_lock()
                .is_ok_and(|c| c.as_ref().is_some_and(|s| s.is_alive()))
    }

    /// The current session, or one new connection attempt.
    pub(crate) async fn get(&self) -> Result<Arc<Session>, AmqpError> {
        if self.is_closed() {
            return Err(AmqpError::Closed);
        }
        let mut current = self.current.lock().await;
        if let Some(s) = current.as_ref()
            && s.is_alive()
        {
            return Ok(s.clone());
        }
        *current = None;
        let session = Arc::new(self.open().await?);
        if self.is_closed() {
            session.close().await;
            return Err(AmqpError::Closed);
        }
        *current = Some(session.clone());
        Ok(session)
    }

    /// Like [`get`](Self::get), retrying retryable failures with backoff
    /// until `until` (forever if `None`) or until closed.
    pub(crate) async fn get_retrying(
        &self,
        until: Option<Instant>,
    ) -> Result<Arc<Session>, AmqpError> {
        let mut attempt = 0;
        loop {
            match self.get().await {
                Ok(s) => {
                    if attempt > 0 {
                        tracing::info!(url = %self.url(), attempts = attempt + 1, "reconnected to the broker");
                    }
                    return Ok(s);
                }
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => {
                    let delay = self.config.backoff(attempt);
                    if until.is_some_and(|u| Instant::now() + delay >= u) {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, retry_in = ?delay, "broker unavailable; will retry");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.closed() => return Err(AmqpError::Closed),
                    }
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// One round over the nodes in a fresh random order: the first that
    /// connects and takes the declarations wins. A refusal that another
    /// node would repeat (a conflicting declaration, access refused) ends
    /// the round at once; otherwise the round's error names every node.
    async fn open(&self) -> Result<Session, AmqpError> {
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        fastrand::shuffle(&mut order);
        let mut failures = Vec::new();
        for i in order {
            let node = &self.nodes[i];
            match self.open_node(node).await {
                Ok(session) => {
                    *self
                        .current_url
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(node.shown.clone());
                    return Ok(session);
                }
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => {
                    if self.nodes.len() > 1 {
                        tracing::debug!(url = %node.shown, error = %e, "broker node unavailable; trying the next");
                    }
                    failures.push(e);
                }
            }
        }
        if failures.len() == 1 {
            return Err(failures.remove(0));
        }
        Err(AmqpError::Connect {
            url: self.config.redacted_url(),
            message: format!(
                "no node of the cluster could be used: {}",
                failures
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        })
    }

    async fn open_node(&self, node: &Node) -> Result<Session, AmqpError> {
        let url = node.shown.clone();
        let mut props = ConnectionProperties::default();
        if let Some(name) = &self.config.connection_name {
            props = props.with_connection_name(name.as_str().into());
        }
        let runtime = lapin::runtime::default_runtime().map_err(|e| AmqpError::Connect {
            url: url.clone(),
            message: format!("no async runtime: {e}"),
        })?;
        let connect =
            Connection::connect_uri_with_config(node.uri.clone(), props, self.tls.clone(), runtime);
        let conn = match tokio::time::timeout(self.config.connect_timeout, connect).await {
            Err(_) => {
                return Err(AmqpError::Connect {
                    url,
                    message: format!(
                        "no answer within {:?}; check the host, port and firewall",
                        self.config.connect_timeout
                    ),
                });
            }
            Ok(Err(e)) => {
                return Err(AmqpError::Connect {
                    url,
                    message: connect_message(&e).replace(&node.raw, &node.shown),
                });
            }
            Ok(Ok(c)) => c,
        };
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let session = Session {
            conn,
            generation,
            publish: Mutex::new(None),
        };
        let declared = bounded(
            self.config.connect_timeout,
            &url,
            "the declarations",
            self.declare(&session),
        )
        .await;
        if let Err(e) = declared {
            session.close().await;
            return Err(e);
        }
        tracing::debug!(url = %url, generation, "connected to the broker");
        Ok(session)
    }

    async fn declare(&self, session: &Session) -> Result<(), AmqpError> {
        let c = &self.config;
        let ch = channel(&session.conn).await?;
        let ex_opts = ExchangeDeclareOptions {
            durable: true,
            auto_delete: false,
            ..ExchangeDeclareOptions::default()
        };
        let declared = ch
            .exchange_declare(
                short(&c.exchange),
                ExchangeKind::Fanout,
                ex_opts,
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(()) => {}
            Err(e) => {
                let err = AmqpError::from_lapin(
                    &e,
                    &format!("declaring exchange {:?}", c.exchange),
                    Some(("exchange", &c.exchange)),
                );
                match (&err, self.side) {
                    // A least-privilege agent may not declare the exchange:
                    // check that the edge has.
                    (AmqpError::AccessRefused { .. }, Side::Agent) => {
                        let ch = channel(&session.conn).await?;
                        ch.exchange_declare(
                            short(&c.exchange),
                            ExchangeKind::Fanout,
                            ExchangeDeclareOptions {
                                passive: true,
                                ..ex_opts
                            },
                            FieldTable::default(),
                        )
                        .await
                        .map_err(|e| {
                            AmqpError::from_lapin(
                                &e,
                                &format!(
                                    "finding exchange {:?} (this user may not declare it, so the edge must have)",
                                    c.exchange
                                ),
                                None,
                            )
                        })?;
                        let _ = ch.close(200, "OK".into()).await;
                    }
                    _ => return Err(err),
                }
            }
        }
        if self.side == Side::Edge {
            let mut args = FieldTable::default();
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(c.reply_queue_type.as_str().into()),
            );
            // The rejected queue has no consumer of ours (people read it),
            // so it keeps x-queue-type alone; the reply queue of a quorum
            // type gets single-active-consumer, as the broker does not
            // enforce an exclusive consume there (see crate::edge).
            let rejected_args = args.clone();
            if c.reply_queue_type == crate::QueueType::Quorum {
                args.insert(
                    crate::SINGLE_ACTIVE_CONSUMER.into(),
                    AMQPValue::Boolean(true),
                );
            }
            for (name, args) in [
                (c.reply_queue.clone(), args),
                (c.rejected_queue(), rejected_args),
            ] {
                ch.queue_declare(
                    short(&name),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    args,
                )
                .await
                .map_err(|e| {
                    AmqpError::from_lapin(
                        &e,
                        &format!("declaring queue {name:?}"),
                        Some(("queue", &name)),
                    )
                })?;
            }
        }
        if ch.status().connected() {
            let _ = ch.close(200, "OK".into()).await;
        }
        Ok(())
    }
}

/// Opens a plain channel.
pub(crate) async fn channel(conn: &Connection) -> Result<Channel, AmqpError> {
    conn.create_channel()
        .await
        .map_err(|e| AmqpError::from_lapin(&e, "opening a channel", None))
}

fn connect_message(e: &lapin::Error) -> String {
    use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
    if let lapin::ErrorKind::ProtocolError(amqp) = e.kind() {
        if let AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) = amqp.kind() {
            return format!(
                "{} (does the vhost exist, and may this user use it?)",
                amqp.get_message()
            );
        }
        if let AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) = amqp.kind() {
            // At login, 403 means the user or password is wrong (a vhost
            // the user may not use is 530 NOT_ALLOWED, above). The
            // broker's text adds only "see the broker logfile".
            return "it refused the login (403 ACCESS_REFUSED): check the user and password \
                    in --amqp-url (BURNIN_AMQP_URL)"
                .to_owned();
        }
        return amqp.get_message().to_string();
    }
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        return format!(
            "{text} (TLS: give --amqp-ca-file the CA that signed the broker's certificate, \
             and use the host name or address the certificate names)"
        );
    }
    if text.contains("ACCESS_REFUSED") || text.to_ascii_lowercase().contains("auth") {
        format!("{text} (check the user name and password)")
    } else {
        text
    }
}

/// A persistent JSON message's properties.
pub(crate) fn json_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type(short("application/json"))
        .with_delivery_mode(2)
}

/// What to do when a consumer was lost (`lost` says why): tell the port's
/// reader once, with a retryable error carrying `message`, then reconnect
/// (a new session if the old one died) and call `start` until consuming
/// works again, with capped, jittered backoff. A refusal (access, a missing
/// exchange) is retried too when `retry_refusals` — an operator may fix it —
/// else handed to the reader as final. `None` once the cell is closed, the
/// reader is gone, or a refusal was final.
pub(crate) async fn resume_consuming<T, C, Fut>(
    cell: &SessionCell,
    tx: &tokio::sync::mpsc::Sender<Result<T, burnin_core::TransportError>>,
    what: &str,
    lost: &str,
    message: String,
    retry_refusals: bool,
    start: impl Fn(Arc<Session>) -> Fut,
) -> Option<C>
where
    Fut: std::future::Future<Output = Result<C, AmqpError>>,
{
    if cell.is_closed() {
        return None;
    }
    tracing::warn!(url = %cell.url(), reason = %lost, "lost the {what} consumer; reconnecting");
    if tx
        .send(Err(burnin_core::TransportError::Unavailable(message)))
        .await
        .is_err()
    {
        cell.close().await;
        return None;
    }
    let mut attempt = 0;
    // Our own consumer on the lost connection may still hold an exclusive
    // queue until the broker notices that connection is dead (two missed
    // heartbeats); a queue still in use after that belongs to someone else.
    let in_use_grace = Instant::now() + cell.config.heartbeat.saturating_mul(3);
    loop {
        let result = match cell.get_retrying(None).await {
            Ok(session) => start(session).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(c) => {
                tracing::info!(url = %cell.url(), "consuming {what} again");
                return Some(c);
            }
            Err(AmqpError::Closed) => return None,
            Err(e @ AmqpError::QueueInUse { .. }) if Instant::now() < in_use_grace => {
                let delay = cell.config.backoff(attempt);
                tracing::warn!(error = %e, retry_in = ?delay, "cannot consume {what} yet (the broker may still hold this edge's lost connection)");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = cell.closed() => return None,
                }
                attempt += 1;
            }
            Err(e) if !retry_refusals && !e.is_retryable() => {
                let _ = tx.send(Err(e.into())).await;
                return None;
            }
            Err(e) => {
                let delay = cell.config.backoff(attempt);
                tracing::warn!(error = %e, retry_in = ?delay, "cannot consume {what} yet");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = cell.closed() => return None,
                }
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_hosts_are_kept() {
        for (url, host) in [
            ("amqp://u:p@10.1.2.3:5672/v", "10.1.2.3"),
            ("amqps://u:p@[fd00::5]:5671/v", "fd00::5"),
            ("amqp://u:p@mq.factory/v", "mq.factory"),
        ] {
            let cell = SessionCell::new(AmqpConfig::new(url), Side::Agent).unwrap();
            let uri = &cell.nodes[0].uri;
            assert_eq!(uri.authority.host, host, "{url}");
            assert_eq!(uri.query.heartbeat, Some(20));
            assert_eq!(uri.query.frame_max, Some(8192));
        }
        let cell = SessionCell::new(AmqpConfig::new("amqp://h/v?heartbeat=7"), Side::Edge).unwrap();
        assert_eq!(cell.nodes[0].uri.query.heartbeat, Some(7), "the URL wins");
        assert!(SessionCell::new(AmqpConfig::new("amqp://h/v?heartbeat=0"), Side::Edge).is_err());
    }

    #[test]
    fn every_node_is_parsed_and_a_bad_one_is_named() {
        let c = AmqpConfig::cluster(["amqp://u:p@10.0.0.1:5672/v", "amqp://u:p@10.0.0.2:5673/v"]);
        let cell = SessionCell::new(c, Side::Agent).unwrap();
        let hosts: Vec<_> = cell
            .nodes
            .iter()
            .map(|n| (n.uri.authority.host.as_str(), n.uri.authority.port))
            .collect();
        assert_eq!(hosts, [("10.0.0.1", 5672), ("10.0.0.2", 5673)]);
        assert_eq!(
            cell.url(),
            "amqp://u:***@10.0.0.1:5672/v, amqp://u:***@10.0.0.2:5673/v"
        );
        let c = AmqpConfig::cluster(["amqp://u:p@h1/v", "amqp://u:secret@h2/v?heartbeat=0"]);
        let err = SessionCell::new(c, Side::Agent).err().unwrap().to_string();
        assert!(
            err.contains("amqp://u:***@h2/v") && !err.contains("secret"),
            "{err}"
        );
    }
}
