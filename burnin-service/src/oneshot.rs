//! One operation through the broker, start to finish, then nothing left
//! running: what `burnin-edge scan` does without `--edge-url`.
//!
//! [`OneShot::run`] connects to the broker, records the operation in the
//! store only once the broker is usable (so a scan that could not start
//! leaves nothing unfinished in a state database), runs it through a
//! [`PortStack`], and closes the connection. Every wait has a bound of its
//! own; one last-resort bound over the whole operation (window + MES
//! outage wait + reporting budget + [`GRACE`]) names the wait in progress
//! if something unforeseen hangs. What ended it is a [`ScanEnd`]: the
//! caller prints it and picks the exit code.

use std::time::Duration;

use burnin_amqp::{AmqpCommandPublisher, AmqpConfig, AmqpError};
use burnin_core::edge::{Observer, OperationReport, report_abort};
use burnin_core::{OperationId, OperationParams, StoreError, Timestamp};
use burnin_local::SystemClock;
use burnin_store::SqliteStore;

use crate::factory::Factory;
use crate::{Bounds, PortStack, Waits};

/// After the reporting budget, what is left for closing and the store.
pub const GRACE: Duration = Duration::from_secs(5);

/// One operation to run: what `burnin-edge scan`'s flags give.
#[derive(Debug)]
pub struct OneShot {
    /// The operation.
    pub params: OperationParams,
    /// The broker, as the edge logs in.
    pub amqp: AmqpConfig,
    /// MES and the factory, built ([`crate::factory::FactoryConfig::build`]).
    pub factory: Factory,
    /// Where the operation is recorded (a file, or in memory).
    pub store: SqliteStore,
    /// The store as named to the user (`--state-db`'s path, or `:memory:`).
    pub store_shown: String,
}

/// How a [`OneShot`] ended.
#[derive(Debug)]
pub enum ScanEnd {
    /// The operation ran: its report (passed, failed, or failed with an
    /// error the report names).
    Ran(OperationReport),
    /// The store could not record the operation; the notification was sent
    /// with that error (the report says what became of it).
    NotRecorded(OperationReport),
    /// The store already holds the id, finished or unfinished: the user's
    /// input is refused, in words naming `--state-db` and what to do.
    Refused(String),
    /// The operation passed its last-resort bound: no results (they were
    /// never computed), only what it waited for.
    Stalled {
        /// The operation.
        operation_id: OperationId,
        /// What it waited for, and the bound.
        error: String,
        /// How many serials were expected.
        expected: usize,
        /// When it started.
        started: Timestamp,
    },
    /// Another edge consumes the reply queue (SPEC §11.3): nothing was
    /// sent to the factory, since the edge holding the queue may run an
    /// operation of the same id whose notification must not be preempted.
    QueueInUse(String),
    /// The broker could not be used; the notification was sent with this
    /// error (the report says what became of it).
    BrokerFailed(OperationReport),
}

impl OneShot {
    /// The most the operation can take once connected, and the connection's
    /// own budget: `(connect, operation)`.
    pub fn budgets(&self) -> (Duration, Duration) {
        let bounds = self.factory.bounds;
        // The connection attempt has its own timeout; declaring the queues
        // and starting the consumer get the broker bound on top.
        let connect = self.amqp.connect_timeout.saturating_add(bounds.broker);
        // A MES outage is waited out before reporting (SPEC §11.3), and a
        // factory outage while reporting: its wait, then at most one more
        // delivery attempt.
        let operation = self
            .params
            .window
            .saturating_add(self.params.mes_outage_wait)
            .saturating_add(self.params.delivery_outage_wait)
            .saturating_add(bounds.delivery)
            .saturating_add(bounds.reporting())
            .saturating_add(GRACE);
        (connect, operation)
    }

    /// Runs the operation, telling `observer`; see the module's docs.
    pub async fn run(self, observer: &dyn Observer) -> ScanEnd {
        let (connect_budget, limit) = self.budgets();
        let OneShot {
            params,
            amqp,
            factory,
            store,
            store_shown,
        } = self;
        let bounds = factory.bounds;
        let waits = Waits::new();
        let ports = PortStack::new(bounds, waits.clone(), factory.mes, factory.reporter, store);
        let shown = amqp.redacted_url();
        let connected = match tokio::time::timeout(connect_budget, burnin_amqp::edge::connect(amqp))
            .await
        {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(AmqpError::QueueInUse { queue, detail })) => {
                return ScanEnd::QueueInUse(format!(
                    "another edge consumes {queue} on this vhost ({detail}); use its API \
                         (`burnin-edge scan --edge-url URL`, the URL of its `serve`) or another vhost"
                ));
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "connecting to the broker at {shown} did not finish within {}: it accepted \
                     the connection but did not complete the AMQP handshake and the declarations; \
                     check that this is RabbitMQ's port and that the broker is not blocked \
                     (rabbitmqctl status)",
                humantime::format_duration(connect_budget)
            )),
        };
        let (publisher, replies) = match connected {
            Ok(c) => c,
            Err(e) => {
                let error = format!("the broker could not be used: {e}");
                let report =
                    report_abort(params, error, ports.reporter(), &SystemClock, observer).await;
                return ScanEnd::BrokerFailed(report);
            }
        };
        // Recorded only once the broker is usable, so a scan that could
        // not start leaves nothing unfinished in the store.
        let op = match ports.start(params.clone(), &SystemClock).await {
            Ok(op) => op,
            Err(e) => {
                close(&publisher, bounds).await;
                return match e {
                    e @ StoreError::Held { .. } => {
                        ScanEnd::Refused(format!("{e} (--state-db {store_shown})"))
                    }
                    StoreError::Running(id) => ScanEnd::Refused(format!(
                        "operation {id} is unfinished in --state-db {store_shown}; let \
                         `burnin-edge serve --state-db {store_shown}` resume it, or use another \
                         --operation-id"
                    )),
                    e => {
                        let error = format!("the operation could not be recorded: {e}");
                        ScanEnd::NotRecorded(
                            report_abort(params, error, ports.reporter(), &SystemClock, observer)
                                .await,
                        )
                    }
                };
            }
        };
        let started = op.started();
        let operation_id = op.id().clone();
        let expected = op.expected_count();
        let run = ports.run(op, &publisher, replies, &SystemClock, observer);
        // The last resort: every wait above has a bound of its own, so
        // this only fires if something unforeseen hangs.
        let end = match tokio::time::timeout(limit, run).await {
            Ok(report) => ScanEnd::Ran(report),
            Err(_) => {
                let waiting = waits.oldest().map_or_else(
                    || "no call in progress could be named".to_owned(),
                    |(what, since)| {
                        format!(
                            "still waiting for {what} after {}",
                            humantime::format_duration(Duration::from_secs(since.as_secs()))
                        )
                    },
                );
                ScanEnd::Stalled {
                    operation_id,
                    error: format!(
                        "the operation stalled: {waiting}; gave up at its bound of {} \
                         (window + reporting budget + grace)",
                        humantime::format_duration(limit)
                    ),
                    expected,
                    started,
                }
            }
        };
        close(&publisher, bounds).await;
        end
    }
}

/// Closes the broker connection, giving up after the broker bound.
async fn close(publisher: &AmqpCommandPublisher, bounds: Bounds) {
    if tokio::time::timeout(bounds.broker, publisher.close())
        .await
        .is_err()
    {
        tracing::warn!("the broker did not acknowledge closing the connection; leaving it");
    }
}
