//! Every wait has a bound: decorators around the ports of an operation.
//!
//! An operation waits on the broker (publishing and its confirm, acking a
//! reply, moving one to the rejected queue), on MES (each lookup), on the
//! factory (each delivery) and on the store (each write). The adapters
//! bound most of these themselves — HTTP requests have a timeout and a
//! retry budget, the AMQP adapter a connect and a confirm timeout — but a
//! peer that accepts a connection and then never answers can still hold a
//! wait forever somewhere an adapter has no timer (opening a channel,
//! declaring, closing). These decorators put a hard bound around each call
//! whatever the adapter does, and turn a call that runs out of time into
//! the port's ordinary error, naming what it was waiting for:
//!
//! | decorator | bound | error when it runs out |
//! | --- | --- | --- |
//! | [`BoundedPublisher`] | the rest of the window | `TransportError::Unavailable`: "the broker did not confirm the scan command … within …" |
//! | [`BoundedReplies`] | [`Bounds::broker`] per ack or reject | `TransportError::Unavailable`: "the broker did not take the ack …" |
//! | [`BoundedMes`] | [`Bounds::mes`] per lookup (retries and waiting for a slot included) | `MesError::Unavailable`: "no answer within …" |
//! | [`BoundedReporter`] | [`Bounds::delivery`] per payload (retries included) | `ReportError::Unavailable`: "no answer within …" |
//! | [`BoundedStore`] | [`Bounds::store`] per write | `StoreError::Io`: "the operation store did not finish … within …" |
//!
//! The operation then goes on as with any other failure of that port: a
//! device whose lookup ran out is Fail, an undelivered log means no Pair,
//! and the operation ends **failed** with the message in its `error` and
//! in the notification. `serve` ([`App`](crate::App)) and `scan` use the
//! same decorators, so they fail a stalled operation with the same words.
//!
//! [`Bounds::reporting`] sums what may follow the window (the MES lookups
//! still running, three deliveries, the store's writes): an operation ends
//! at the latest by its window plus that budget. [`Waits`] records the
//! calls in progress, so a caller that gives up on the whole operation
//! (`scan`'s last-resort watchdog) can say what it was waiting for.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use burnin_core::ports::Acker;
use burnin_core::{
    CommandPublisher, Delivery, DeviceResult, FactoryReporter, MesAnswer, MesError, MesSource,
    OperationId, OperationParams, OperationState, OperationStore, Payload, PayloadKind,
    ReplyStream, ReportError, ScanCommand, SerialNumber, StoreError, Timestamp, TransportError,
};

/// The bound of each kind of wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// One MES lookup, its retries and its wait for a free slot included.
    pub mes: Duration,
    /// One delivery (log, Pair/directBurn, notification), retries included.
    pub delivery: Duration,
    /// One write to the operation store.
    pub store: Duration,
    /// One ack or reject of a reply, and closing the connection.
    pub broker: Duration,
}

impl Default for Bounds {
    /// For adapters with no retry budget of their own (files, memory): 30 s
    /// for MES and deliveries, 10 s for the store and the broker.
    fn default() -> Self {
        Bounds {
            mes: Duration::from_secs(30),
            delivery: Duration::from_secs(30),
            store: Duration::from_secs(10),
            broker: Duration::from_secs(10),
        }
    }
}

impl Bounds {
    /// Bounds for HTTP adapters whose worst case per request is
    /// `request_budget` (see `burnin_http::HttpConfig::request_budget`): a
    /// second on top of it, so the adapter's own, more precise error wins
    /// whenever it comes in time.
    pub fn for_http(request_budget: Duration) -> Self {
        let budget = request_budget.saturating_add(Duration::from_secs(1));
        Bounds {
            mes: budget,
            delivery: budget,
            ..Bounds::default()
        }
    }

    /// The most an operation may take after its window closes: the MES
    /// lookups still running, three deliveries in turn, and the store's
    /// writes (results, three deliveries, the final state).
    pub fn reporting(&self) -> Duration {
        self.mes
            .saturating_add(self.delivery.saturating_mul(3))
            .saturating_add(self.store.saturating_mul(5))
    }
}

fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// The calls in progress, for naming what a stalled operation waits for.
///
/// Keyed by when each began (a counter taken under the lock), so ending
/// one is a lookup and the oldest is the first: an edge at its bound has
/// hundreds in progress and begins and ends three per device.
#[derive(Debug, Clone, Default)]
pub struct Waits {
    inner: Arc<Mutex<InProgress>>,
}

#[derive(Debug, Default)]
struct InProgress {
    next: u64,
    waits: BTreeMap<u64, (String, Instant)>,
}

/// Ends a wait of [`Waits`] when dropped.
#[derive(Debug)]
pub struct WaitGuard {
    waits: Waits,
    id: u64,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.waits.lock().waits.remove(&self.id);
    }
}

impl Waits {
    /// No wait in progress.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InProgress> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `what` is being waited for, until the guard is dropped.
    pub fn begin(&self, what: impl Into<String>) -> WaitGuard {
        let what = what.into();
        let mut in_progress = self.lock();
        let id = in_progress.next;
        in_progress.next += 1;
        in_progress.waits.insert(id, (what, Instant::now()));
        drop(in_progress);
        WaitGuard {
            waits: self.clone(),
            id,
        }
    }

    /// The longest wait in progress: what, and for how long.
    pub fn oldest(&self) -> Option<(String, Duration)> {
        self.lock()
            .waits
            .first_key_value()
            .map(|(_, (what, since))| (what.clone(), since.elapsed()))
    }
}

/// Runs `fut` for at most `bound`, recording it in `waits` as `what`.
async fn bounded<T>(
    waits: &Waits,
    what: impl Into<String>,
    bound: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    let _guard = waits.begin(what);
    tokio::time::timeout(bound, fut).await.ok()
}

/// A [`CommandPublisher`] that gives up when the window is over.
pub struct BoundedPublisher<'a> {
    inner: &'a dyn CommandPublisher,
    waits: Waits,
}

impl std::fmt::Debug for BoundedPublisher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedPublisher").finish_non_exhaustive()
    }
}

impl<'a> BoundedPublisher<'a> {
    /// Bounds `inner`'s publishes.
    pub fn new(inner: &'a dyn CommandPublisher, waits: Waits) -> Self {
        BoundedPublisher { inner, waits }
    }
}

#[async_trait]
impl CommandPublisher for BoundedPublisher<'_> {
    async fn publish(&self, command: &ScanCommand, window: Duration) -> Result<(), TransportError> {
        let what = format!(
            "the broker to confirm the scan command of operation {}",
            command.operation_id
        );
        match bounded(
            &self.waits,
            what,
            window,
            self.inner.publish(command, window),
        )
        .await
        {
            Some(result) => result,
            None => Err(TransportError::Unavailable(format!(
                "the broker did not confirm the scan command of operation {} within the window \
                 ({}): it accepts the connection but does not answer; check the broker \
                 (rabbitmqctl status, alarms) and the network",
                command.operation_id,
                secs(window)
            ))),
        }
    }
}

/// A [`ReplyStream`] whose acks and rejects are bounded.
#[derive(Debug)]
pub struct BoundedReplies<R> {
    inner: R,
    bound: Duration,
    waits: Waits,
}

impl<R> BoundedReplies<R> {
    /// Bounds each ack and reject of `inner`'s deliveries by `bound`.
    pub fn new(inner: R, bound: Duration, waits: Waits) -> Self {
        BoundedReplies {
            inner,
            bound,
            waits,
        }
    }
}

struct BoundedAcker {
    inner: Delivery,
    bound: Duration,
    waits: Waits,
}

#[async_trait]
impl Acker for BoundedAcker {
    async fn ack(self: Box<Self>) -> Result<(), TransportError> {
        let bound = self.bound;
        bounded(
            &self.waits,
            "the broker to take an ack",
            bound,
            self.inner.ack(),
        )
        .await
        .unwrap_or_else(|| {
            Err(TransportError::Unavailable(format!(
                "the broker did not take the ack of a reply within {}; \
                     it will deliver the reply again",
                secs(bound)
            )))
        })
    }

    async fn reject(self: Box<Self>, body: Vec<u8>, reason: &str) -> Result<(), TransportError> {
        let BoundedAcker {
            mut inner,
            bound,
            waits,
        } = *self;
        inner.body = body;
        bounded(
            &waits,
            "the broker to take a reply into the rejected queue",
            bound,
            inner.reject(reason),
        )
        .await
        .unwrap_or_else(|| {
            Err(TransportError::Unavailable(format!(
                "the broker did not take a rejected reply within {}; \
                 it will deliver the reply again",
                secs(bound)
            )))
        })
    }
}

#[async_trait]
impl<R: ReplyStream> ReplyStream for BoundedReplies<R> {
    async fn next_reply(&mut self) -> Option<Result<Delivery, TransportError>> {
        // Waiting for the next reply is bounded by the operation's window,
        // which the caller runs; only what the reply asks of the broker is
        // bounded here.
        let mut inner = match self.inner.next_reply().await? {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        let body = std::mem::take(&mut inner.body);
        let redelivered = inner.redelivered;
        Some(Ok(Delivery::new(
            body,
            redelivered,
            Box::new(BoundedAcker {
                inner,
                bound: self.bound,
                waits: self.waits.clone(),
            }),
        )))
    }

    fn close(&mut self) -> bool {
        self.inner.close()
    }
}

/// A [`MesSource`] whose lookups are bounded.
pub struct BoundedMes {
    inner: Box<dyn MesSource>,
    bound: Duration,
    waits: Waits,
}

impl std::fmt::Debug for BoundedMes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedMes")
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

impl BoundedMes {
    /// Bounds each lookup of `inner` by `bound`.
    pub fn new(inner: Box<dyn MesSource>, bound: Duration, waits: Waits) -> Self {
        BoundedMes {
            inner,
            bound,
            waits,
        }
    }
}

#[async_trait]
impl MesSource for BoundedMes {
    async fn lookup(&self, sn: &SerialNumber) -> Result<MesAnswer, MesError> {
        bounded(
            &self.waits,
            format!("MES to answer the lookup of {sn}"),
            self.bound,
            self.inner.lookup(sn),
        )
        .await
        .unwrap_or_else(|| {
            Err(MesError::Unavailable {
                sn: sn.clone(),
                message: format!(
                    "no answer within {} (the lookup's bound, retries included); \
                     check that MES answers",
                    secs(self.bound)
                ),
            })
        })
    }
}

/// A [`FactoryReporter`] whose deliveries are bounded.
pub struct BoundedReporter {
    inner: Box<dyn FactoryReporter>,
    bound: Duration,
    waits: Waits,
}

impl std::fmt::Debug for BoundedReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedReporter")
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

impl BoundedReporter {
    /// Bounds each delivery of `inner` by `bound`.
    pub fn new(inner: Box<dyn FactoryReporter>, bound: Duration, waits: Waits) -> Self {
        BoundedReporter {
            inner,
            bound,
            waits,
        }
    }
}

#[async_trait]
impl FactoryReporter for BoundedReporter {
    async fn deliver(&self, payload: &Payload) -> Result<(), ReportError> {
        bounded(
            &self.waits,
            format!("the {} API to take the payload", payload.kind),
            self.bound,
            self.inner.deliver(payload),
        )
        .await
        .unwrap_or_else(|| {
            Err(ReportError::Unavailable {
                kind: payload.kind,
                message: format!(
                    "no answer within {} (the delivery's bound, retries included); \
                     check that the {} API answers",
                    secs(self.bound),
                    payload.kind
                ),
            })
        })
    }
}

/// Whether the operation store's latest write failed, and why: what
/// `GET /healthz` reports (a full disk, a database that went away). Shared
/// by every [`BoundedStore`] of an app; cleared by the next write that
/// succeeds.
#[derive(Debug, Clone, Default)]
pub struct StoreHealth(Arc<Mutex<Option<String>>>);

impl StoreHealth {
    /// Why the latest write failed, while it is the latest.
    pub fn failing(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record<T>(&self, result: &Result<T, StoreError>) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(_) => *state = None,
            // A refused id is an answer, not a failing store.
            Err(e @ StoreError::Io(_)) => *state = Some(e.to_string()),
            Err(_) => {}
        }
    }
}

/// An [`OperationStore`] whose writes are bounded.
#[derive(Debug, Clone)]
pub struct BoundedStore<S> {
    inner: S,
    bound: Duration,
    waits: Waits,
    health: StoreHealth,
}

impl<S> BoundedStore<S> {
    /// Bounds each write of `inner` by `bound`.
    pub fn new(inner: S, bound: Duration, waits: Waits) -> Self {
        BoundedStore {
            inner,
            bound,
            waits,
            health: StoreHealth::default(),
        }
    }

    /// Records each write's outcome in `health`.
    pub fn with_health(mut self, health: StoreHealth) -> Self {
        self.health = health;
        self
    }

    async fn write<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        bounded(
            &self.waits,
            format!("the operation store to record {what}"),
            self.bound,
            fut,
        )
        .await
        .unwrap_or_else(|| {
            Err(StoreError::Io(format!(
                "the operation store did not record {what} within {}; \
                 check the disk of the state database",
                secs(self.bound)
            )))
        })
        .inspect(|_| self.health.record::<()>(&Ok(())))
        .inspect_err(|e| self.health.record::<()>(&Err(e.clone())))
    }
}

#[async_trait]
impl<S: OperationStore> OperationStore for BoundedStore<S> {
    async fn begin(
        &self,
        params: &OperationParams,
        started: Timestamp,
        deadline: Timestamp,
    ) -> Result<u64, StoreError> {
        self.write(
            "the new operation",
            self.inner.begin(params, started, deadline),
        )
        .await
    }

    async fn reply(
        &self,
        operation: &OperationId,
        sn: &SerialNumber,
        body: &[u8],
        received: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(
            &format!("the reply of {sn}"),
            self.inner.reply(operation, sn, body, received),
        )
        .await
    }

    async fn late_reply(
        &self,
        operation: &OperationId,
        sn: &SerialNumber,
        body: &[u8],
        received: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(
            &format!("the late reply of {sn}"),
            self.inner.late_reply(operation, sn, body, received),
        )
        .await
    }

    async fn results(
        &self,
        operation: &OperationId,
        results: &[DeviceResult],
        errors: &[String],
    ) -> Result<(), StoreError> {
        self.write(
            "the results",
            self.inner.results(operation, results, errors),
        )
        .await
    }

    async fn delivery(
        &self,
        operation: &OperationId,
        kind: PayloadKind,
        outcome: Result<(), &ReportError>,
    ) -> Result<(), StoreError> {
        self.write(
            &format!("the {kind} delivery"),
            self.inner.delivery(operation, kind, outcome),
        )
        .await
    }

    async fn finish(
        &self,
        operation: &OperationId,
        state: OperationState,
        error: Option<&str>,
        finished: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(
            "the final state",
            self.inner.finish(operation, state, error, finished),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burnin_core::{OperationId, PayloadKind};

    /// A store whose writes fail (a full disk) until told otherwise.
    struct Full(std::sync::atomic::AtomicBool);

    #[async_trait]
    impl OperationStore for Full {
        async fn begin(
            &self,
            _: &burnin_core::OperationParams,
            _: Timestamp,
            _: Timestamp,
        ) -> Result<u64, StoreError> {
            if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Io("database or disk is full".into()));
            }
            Ok(1)
        }
        async fn reply(
            &self,
            _: &OperationId,
            _: &SerialNumber,
            _: &[u8],
            _: Timestamp,
        ) -> Result<(), StoreError> {
            Ok(())
        }
        async fn results(
            &self,
            _: &OperationId,
            _: &[burnin_core::DeviceResult],
            _: &[String],
        ) -> Result<(), StoreError> {
            Ok(())
        }
        async fn delivery(
            &self,
            _: &OperationId,
            _: PayloadKind,
            _: Result<(), &ReportError>,
        ) -> Result<(), StoreError> {
            Ok(())
        }
        async fn finish(
            &self,
            _: &OperationId,
            _: burnin_core::OperationState,
            _: Option<&str>,
            _: Timestamp,
        ) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn store_health_follows_the_latest_write() {
        let health = StoreHealth::default();
        let store = BoundedStore::new(
            Full(std::sync::atomic::AtomicBool::new(true)),
            Duration::from_secs(1),
            Waits::new(),
        )
        .with_health(health.clone());
        let p = burnin_core::OperationParams::new(OperationId::Number(1));
        let t = Timestamp::from_unix_seconds(0);
        assert!(store.begin(&p, t, t).await.is_err());
        assert_eq!(
            health.failing().as_deref(),
            Some("database or disk is full")
        );
        store
            .inner
            .0
            .store(false, std::sync::atomic::Ordering::SeqCst);
        store.begin(&p, t, t).await.unwrap();
        assert_eq!(health.failing(), None, "the next commit clears it");
    }

    struct Silent;

    #[async_trait]
    impl MesSource for Silent {
        async fn lookup(&self, _sn: &SerialNumber) -> Result<MesAnswer, MesError> {
            std::future::pending().await
        }
    }

    #[async_trait]
    impl FactoryReporter for Silent {
        async fn deliver(&self, _payload: &Payload) -> Result<(), ReportError> {
            std::future::pending().await
        }
    }

    #[async_trait]
    impl CommandPublisher for Silent {
        async fn publish(&self, _c: &ScanCommand, _w: Duration) -> Result<(), TransportError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_port_ends_at_its_bound_with_an_error_naming_it() {
        let waits = Waits::new();
        let sn: SerialNumber = "Q1".parse().unwrap();

        let mes = BoundedMes::new(Box::new(Silent), Duration::from_secs(7), waits.clone());
        let started = tokio::time::Instant::now();
        let e = mes.lookup(&sn).await.unwrap_err().to_string();
        assert_eq!(started.elapsed(), Duration::from_secs(7));
        assert!(
            e.contains("MES lookup for Q1") && e.contains("no answer within 7 s"),
            "{e}"
        );

        let reporter =
            BoundedReporter::new(Box::new(Silent), Duration::from_secs(3), waits.clone());
        let payload = burnin_core::payload::notify(&OperationId::Number(1), &[], None);
        let e = reporter.deliver(&payload).await.unwrap_err().to_string();
        assert!(
            e.starts_with("notify could not be delivered: no answer within 3 s"),
            "{e}"
        );
        assert_eq!(payload.kind, PayloadKind::Notify);

        let publisher = BoundedPublisher::new(&Silent, waits.clone());
        let command = burnin_core::OperationParams::new(OperationId::Number(5));
        let op = burnin_core::Operation::new(command, Timestamp::from_unix_seconds(0));
        let started = tokio::time::Instant::now();
        let e = publisher
            .publish(
                &op.command(Timestamp::from_unix_seconds(0)),
                Duration::from_secs(4),
            )
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(started.elapsed(), Duration::from_secs(4));
        assert!(
            e.contains("did not confirm the scan command of operation 5"),
            "{e}"
        );
        assert!(waits.oldest().is_none(), "every wait ended");
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_wait_is_the_earliest_begun_of_those_still_in_progress() {
        let waits = Waits::new();
        let a = waits.begin("a");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let b = waits.begin("b");
        let c = waits.begin("c");
        assert_eq!(waits.oldest().unwrap().0, "a");
        drop(b);
        assert_eq!(waits.oldest().unwrap().0, "a");
        drop(a);
        assert_eq!(waits.oldest(), Some(("c".to_owned(), Duration::ZERO)));
        drop(c);
        assert_eq!(waits.oldest(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_name_the_oldest_call_in_progress() {
        let waits = Waits::new();
        let sn: SerialNumber = "Q2".parse().unwrap();
        let mes = BoundedMes::new(Box::new(Silent), Duration::from_secs(60), waits.clone());
        let lookup = tokio::spawn(async move { mes.lookup(&sn).await });
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (what, how_long) = waits.oldest().unwrap();
        assert_eq!(what, "MES to answer the lookup of Q2");
        assert_eq!(how_long.as_secs(), 5);
        lookup.abort();
        let _ = lookup.await;
        assert!(waits.oldest().is_none());
    }
}
