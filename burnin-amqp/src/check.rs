//! A pre-shift check of the edge's broker login and permissions
//! (`burnin-edge check`), without taking any reply.

use lapin::options::{BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use crate::link::{SessionCell, Side, bounded, channel, short};
use crate::{AmqpConfig, AmqpError};

/// What [`check_edge`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EdgeCheck {
    /// The node connected to (redacted URL).
    pub url: String,
    /// Replies waiting in the reply queue.
    pub waiting: u32,
    /// Consumers on the reply queue (an edge running `serve` is one).
    pub consumers: u32,
    /// Whether reading the reply queue was tried and allowed: only when it
    /// was empty with no consumer, so no reply is taken (else `false`).
    pub read_checked: bool,
}

/// Logs in as the edge does and declares what the edge declares — the
/// fanout exchange, the reply queue and the rejected queue, with the same
/// arguments (so a conflicting declaration or a missing `configure`
/// permission shows here) — then, if the reply queue is empty and has no
/// consumer, asks for one message (`basic.get`) to prove `read`
/// permission. Nothing is consumed: a message that arrived in between is
/// handed back at once (`nack`, requeued). Publishing is not tried (a
/// command would reach every agent), so `write` on the exchange is not
/// checked. The connection is closed before returning.
///
/// # Errors
/// As [`edge::connect`](crate::edge::connect): the login, a declaration,
/// or the read refused, each naming the object and the fix.
pub async fn check_edge(config: AmqpConfig) -> Result<EdgeCheck, AmqpError> {
    let cell = SessionCell::new(config, Side::Edge)?;
    let outcome = probe(&cell).await;
    cell.close().await;
    outcome
}

async fn probe(cell: &SessionCell) -> Result<EdgeCheck, AmqpError> {
    let session = cell.get().await?;
    let url = cell.url();
    let queue = cell.config.reply_queue.clone();
    bounded(
        cell.config.connect_timeout,
        &url,
        "the reply queue check",
        async {
            let ch = channel(&session.conn).await?;
            let q = ch
                .queue_declare(
                    short(&queue),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| {
                    AmqpError::from_lapin(&e, &format!("finding queue {queue:?}"), None)
                })?;
            let (waiting, consumers) = (q.message_count(), q.consumer_count());
            let mut read_checked = false;
            if waiting == 0 && consumers == 0 {
                let got = ch
                    .basic_get(short(&queue), BasicGetOptions { no_ack: false })
                    .await
                    .map_err(|e| {
                        AmqpError::from_lapin(&e, &format!("reading queue {queue:?}"), None)
                    })?;
                if let Some(m) = got {
                    // Arrived in between: hand it back untouched.
                    m.delivery
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        })
                        .await
                        .map_err(|e| AmqpError::from_lapin(&e, "handing a reply back", None))?;
                }
                read_checked = true;
            }
            if ch.status().connected() {
                let _ = ch.close(200, "OK".into()).await;
            }
            Ok(EdgeCheck {
                url: url.clone(),
                waiting,
                consumers,
                read_checked,
            })
        },
    )
    .await
}
