//! The edge use case: run one scan operation end to end.
//!
//! [`run_operation`] drives an [`Operation`] over the ports: it publishes the
//! command, records each reply and acknowledges it only once recorded
//! (rejected replies go to the rejected queue with their reason), starts
//! each MES lookup as soon as its reply is accepted (the MES source bounds
//! concurrency), stops collecting when every expected serial has replied or
//! the window closes, waits for outstanding lookups, then delivers the log,
//! Pair or directBurn, and the notification in SPEC §5 order.
//!
//! It never fails as a Rust error: whatever goes wrong (the broker, MES, a
//! factory API) ends up in the [`OperationReport`]'s `error` and in the
//! notification, and the operation ends [`OperationState::Failed`].
//!
//! Everything worth showing a user goes through an [`Observer`]; the core
//! itself does not log.

use std::future::Future;
use std::pin::Pin;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use crate::operation::Counters;
use crate::{
    Clock, CommandPublisher, DeviceResult, FactoryReporter, MesAnswer, MesError, MesSource,
    Operation, OperationId, OperationParams, OperationState, PayloadKind, ReplyOutcome,
    ReplyStream, ReportError, SerialNumber, Timestamp, TransportError,
};

/// Sees what an operation does, for progress bars, logs and metrics.
/// Every method has an empty default.
pub trait Observer: Send + Sync {
    /// The command was published (or not).
    fn published(&self, _operation: &Operation, _result: &Result<(), TransportError>) {}
    /// A reply was handled; `operation` shows the new counters.
    fn reply(&self, _operation: &Operation, _outcome: &ReplyOutcome) {}
    /// A broker fault the transport is recovering from, or an ack that failed.
    fn transport_error(&self, _error: &TransportError) {}
    /// A MES answer arrived.
    fn mes_answer(
        &self,
        _operation: &Operation,
        _sn: &SerialNumber,
        _answer: &Result<MesAnswer, MesError>,
    ) {
    }
    /// Collection ended (all expected replied, deadline, or an error).
    fn collection_ended(&self, _operation: &Operation) {}
    /// A payload was delivered (or not).
    fn delivered(&self, _kind: PayloadKind, _result: &Result<(), ReportError>) {}
}

/// An [`Observer`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;
impl Observer for NoObserver {}

/// The adapters one operation runs on.
pub struct EdgePorts<'a> {
    /// Sends the command.
    pub publisher: &'a dyn CommandPublisher,
    /// Receives replies.
    pub replies: &'a mut dyn ReplyStream,
    /// Looks serials up.
    pub mes: &'a dyn MesSource,
    /// Delivers payloads.
    pub reporter: &'a dyn FactoryReporter,
    /// Tells and waits for the time.
    pub clock: &'a dyn Clock,
    /// Watches.
    pub observer: &'a dyn Observer,
}

/// How an operation ended.
#[derive(Debug, Clone)]
pub struct OperationReport {
    /// The operation.
    pub operation_id: OperationId,
    /// [`OperationState::Done`] or [`OperationState::Failed`].
    pub state: OperationState,
    /// Every device, in the order of the log.
    pub devices: Vec<DeviceResult>,
    /// What went wrong, as sent in the notification.
    pub error: Option<String>,
    /// Reply and MES counters.
    pub counters: Counters,
    /// Serials that were expected.
    pub expected: usize,
    /// When collection started.
    pub started: Timestamp,
    /// When collection ended.
    pub collected: Timestamp,
    /// When the last payload was delivered.
    pub finished: Timestamp,
}

impl OperationReport {
    /// Whether every device passed and nothing failed.
    pub fn all_passed(&self) -> bool {
        self.state == OperationState::Done
            && !self.devices.is_empty()
            && self.devices.iter().all(|d| d.result.passed())
    }
}

type Lookup<'a> =
    Pin<Box<dyn Future<Output = (SerialNumber, Result<MesAnswer, MesError>)> + Send + 'a>>;

enum Event {
    Reply(Option<Result<crate::Delivery, TransportError>>),
    Mes(SerialNumber, Result<MesAnswer, MesError>),
    Deadline,
}

/// Runs one operation end to end; see the [module docs](self).
pub async fn run_operation(params: OperationParams, ports: EdgePorts<'_>) -> OperationReport {
    let EdgePorts {
        publisher,
        replies,
        mes,
        reporter,
        clock,
        observer,
    } = ports;
    let window = params.window;
    let mut op = Operation::new(params, clock.now());

    let published = publisher.publish(&op.command(), window).await;
    observer.published(&op, &published);
    if let Err(e) = published {
        op.handle_abort(format!("could not publish the scan command: {e}"));
    }

    let mut lookups: FuturesUnordered<Lookup<'_>> = FuturesUnordered::new();
    let timer = clock.sleep_until(op.deadline()).fuse();
    futures::pin_mut!(timer);
    let mut ended_seen = false;
    loop {
        let collecting = !op.poll_collection_end();
        if !collecting && !ended_seen {
            ended_seen = true;
            observer.collection_ended(&op);
        }
        if !collecting && lookups.is_empty() {
            break;
        }
        let event = {
            let next_lookup = async {
                match lookups.next().await {
                    Some((sn, answer)) => Event::Mes(sn, answer),
                    None => futures::future::pending().await,
                }
            }
            .fuse();
            let next_reply = async {
                if collecting {
                    Event::Reply(replies.next_reply().await)
                } else {
                    futures::future::pending().await
                }
            }
            .fuse();
            futures::pin_mut!(next_lookup, next_reply);
            futures::select_biased! {
                e = next_lookup => e,
                e = next_reply => e,
                () = timer => Event::Deadline,
            }
        };
        match event {
            Event::Mes(sn, answer) => {
                observer.mes_answer(&op, &sn, &answer);
                op.handle_mes_answer(&sn, answer);
            }
            Event::Reply(None) => {
                op.handle_error("the broker closed the reply queue consumer; replies stopped");
            }
            Event::Reply(Some(Err(e))) if e.is_retryable() => observer.transport_error(&e),
            Event::Reply(Some(Err(e))) => {
                op.handle_error(format!("replies could not be received: {e}"));
            }
            Event::Reply(Some(Ok(delivery))) => {
                let outcome = op.handle_reply(&delivery.body);
                observer.reply(&op, &outcome);
                let settled = match &outcome {
                    ReplyOutcome::Rejected(reason) => delivery.reject(&reason.to_string()).await,
                    ReplyOutcome::Accepted(_) | ReplyOutcome::Duplicate(_) => delivery.ack().await,
                };
                if let Err(e) = settled {
                    // The broker will deliver it again; it then counts as a duplicate.
                    observer.transport_error(&e);
                }
                if let ReplyOutcome::Accepted(sn) = outcome {
                    lookups.push(Box::pin(async move {
                        let answer = mes.lookup(&sn).await;
                        (sn, answer)
                    }));
                }
            }
            Event::Deadline => {}
        }
        op.handle_timeout(clock.now());
    }
    let collected = clock.now();
    finish(op, collected, reporter, clock, observer).await
}

/// Reports an operation that could not start — e.g. the broker is
/// unreachable — with `error`: only the notification is sent (SPEC §7: "the
/// notification carries the error if it can be sent").
pub async fn report_abort(
    params: OperationParams,
    error: String,
    reporter: &dyn FactoryReporter,
    clock: &dyn Clock,
    observer: &dyn Observer,
) -> OperationReport {
    let now = clock.now();
    let mut op = Operation::new(params, now);
    op.handle_abort(error);
    finish(op, now, reporter, clock, observer).await
}

/// Delivers the payloads in order and sums the operation up.
async fn finish(
    mut op: Operation,
    collected: Timestamp,
    reporter: &dyn FactoryReporter,
    clock: &dyn Clock,
    observer: &dyn Observer,
) -> OperationReport {
    while let Some(payload) = op.poll_payload() {
        let result = reporter.deliver(&payload).await;
        observer.delivered(payload.kind, &result);
        op.handle_delivery(payload.kind, result);
    }

    OperationReport {
        operation_id: op.id().clone(),
        state: op.state(),
        devices: op.results().to_vec(),
        error: op.error(),
        counters: op.counters(),
        expected: op.expected_count(),
        started: op.started(),
        collected,
        finished: clock.now(),
    }
}
