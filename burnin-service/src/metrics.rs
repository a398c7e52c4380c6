//! The service's metrics (SPEC §7, `GET /metrics`), with prometheus-client.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `burnin_operations` | gauge, read from the store at each scrape | `state` = collecting, reporting, done, failed (latest run of each id) |
//! | `burnin_replies_total` | counter | `outcome` = accepted, duplicate, rejected (rejected counts replies naming no running operation too) |
//! | `burnin_factory_requests_total` | counter | `endpoint` = mes, log, pair, directBurn, notify; `status` = ok, unknown (MES 404), refused, unavailable, bad_answer |
//! | `burnin_factory_request_duration_seconds` | histogram | `endpoint`; one observation per lookup or delivery, retries included |
//! | `burnin_devices_total` | counter | `result` = pass, fail (at the end of each operation) |
//! | `burnin_operations_started_total` | counter | `how` = api, resumed |
//! | `burnin_store_errors_total`, `burnin_transport_errors_total` | counter | — |
//! | `burnin_mes_concurrency_limit`, `burnin_mes_in_flight` | gauge, read at each scrape | — (with `--mes-url` only: the adaptive limit on MES lookups in flight, and the lookups in flight now; see burnin-http) |
//! | `burnin_edge_active` | gauge, read at each scrape | — (1 while this edge runs operations, 0 while it is a standby) |
//! | `burnin_broker_connected` | gauge, read at each scrape | — (1 while the broker connection is up; a standby makes none: 0) |
//! | `burnin_store_failing` | gauge, read at each scrape | — (1 from a failed write to the store until a write succeeds: what `/healthz` reports as 503) |
//! | `burnin_live_events`, `burnin_live_operations` | gauge, read at each scrape | — (the events the live page's stream keeps for replay, at most 65,536, and the operations on the live board; a soak watches both stay flat) |
//! | `burnin_store_info` | gauge, always 1 | `kind` = sqlite, postgres; `store` = the file, or `HOST:PORT/DATABASE` (edges sharing a database carry the same) |
//!
//! `packaging/prometheus/burnin.rules.yml` alerts on these; its test
//! (`bins/burnin-edge/tests/alert_rules.rs`) fails if a rule names a metric
//! this list does not export.
//!
//! Requests are counted and timed by decorators around the MES source and
//! the reporter, so every lookup and every delivery is seen exactly once
//! whichever operation made it; replies, devices and errors by the
//! service's [`Observer`].
//!
//! **Adding a metric.** Register it in [`Metrics::registry_mut`] before
//! handing the metrics to [`AppBuilder::metrics`](crate::AppBuilder::metrics)
//! (keep a clone of the metric to update it); `/metrics` renders the whole
//! registry.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use burnin_core::edge::{Observer, OperationReport};
use burnin_core::{
    FactoryReporter, MesAnswer, MesError, MesSource, Operation, OperationId, OperationState,
    Payload, ReplyOutcome, ReportError, SerialNumber, StoreError, TransportError,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HowLabel {
    how: &'static str,
}

fn latency_histogram() -> Histogram {
    // 5 ms … ~20 s
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

/// Every metric of the service, in one prometheus-client registry.
pub struct Metrics {
    registry: Registry,
    operations: Family<StateLabel, Gauge>,
    replies: Family<OutcomeLabel, Counter>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<EndpointLabel, Histogram, fn() -> Histogram>,
    devices: Family<ResultLabel, Counter>,
    started: Family<HowLabel, Counter>,
    store_errors: Counter,
    transport_errors: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The service's metrics, every label of the table above at 0 (of
    /// the histogram, those seen so far).
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let operations = Family::<StateLabel, Gauge>::default();
        let replies = Family::<OutcomeLabel, Counter>::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<EndpointLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let devices = Family::<ResultLabel, Counter>::default();
        let started = Family::<HowLabel, Counter>::default();
        let store_errors = Counter::default();
        let transport_errors = Counter::default();
        registry.register(
            "burnin_operations",
            "Operations by state (latest run of each operation id, from the store)",
            operations.clone(),
        );
        registry.register(
            "burnin_replies",
            "Device replies by outcome",
            replies.clone(),
        );
        registry.register(
            "burnin_factory_requests",
            "MES lookups and factory deliveries by endpoint and status",
            requests.clone(),
        );
        registry.register(
            "burnin_factory_request_duration_seconds",
            "Duration of MES lookups and factory deliveries (retries included)",
            latency.clone(),
        );
        registry.register(
            "burnin_devices",
            "Devices reported, by result",
            devices.clone(),
        );
        registry.register(
            "burnin_operations_started",
            "Operations started over the API or resumed from the store",
            started.clone(),
        );
        registry.register(
            "burnin_store_errors",
            "Writes to the operation store that failed",
            store_errors.clone(),
        );
        registry.register(
            "burnin_transport_errors",
            "Broker faults (lost connections, failed acks)",
            transport_errors.clone(),
        );
        // Every state and outcome is shown from the start, at 0.
        for state in ["collecting", "reporting", "done", "failed"] {
            let _ = operations.get_or_create(&StateLabel { state });
        }
        for outcome in ["accepted", "duplicate", "conflict", "late", "rejected"] {
            let _ = replies.get_or_create(&OutcomeLabel { outcome });
        }
        for result in ["pass", "fail"] {
            let _ = devices.get_or_create(&ResultLabel { result });
        }
        // And every request outcome: Prometheus's increase() counts a
        // series from its first sample, so a failure counter that first
        // appeared at 1 would never show an increase.
        for status in ["ok", "unknown", "unavailable", "bad_answer"] {
            let _ = requests.get_or_create(&RequestLabels {
                endpoint: "mes",
                status,
            });
        }
        for endpoint in ["log", "pair", "directBurn", "notify"] {
            for status in ["ok", "refused", "unavailable"] {
                let _ = requests.get_or_create(&RequestLabels { endpoint, status });
            }
        }
        Metrics {
            registry,
            operations,
            replies,
            requests,
            latency,
            devices,
            started,
            store_errors,
            transport_errors,
        }
    }

    /// The registry, to register metrics of your own.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Registers a gauge whose value `read` gives at each scrape (e.g. the
    /// MES concurrency limit, which lives in the MES source).
    pub fn gauge_fn(
        &mut self,
        name: &str,
        help: &str,
        read: impl Fn() -> i64 + Send + Sync + 'static,
    ) {
        self.registry.register(name, help, FnGauge(Box::new(read)));
    }

    /// The Prometheus (OpenMetrics) text, with the operation counts given.
    pub fn render(&self, by_state: &[(OperationState, u64)]) -> String {
        for state in [
            OperationState::Collecting,
            OperationState::Reporting,
            OperationState::Done,
            OperationState::Failed,
        ] {
            let n = by_state
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            self.operations
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub(crate) fn reply(&self, outcome: &'static str) {
        self.replies.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub(crate) fn started(&self, how: &'static str) {
        self.started.get_or_create(&HowLabel { how }).inc();
    }

    pub(crate) fn transport_error(&self) {
        self.transport_errors.inc();
    }

    fn request(&self, endpoint: &'static str, status: &'static str, since: Instant) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, status })
            .inc();
        self.latency
            .get_or_create(&EndpointLabel { endpoint })
            .observe(since.elapsed().as_secs_f64());
    }
}

/// A gauge read at scrape time; see [`Metrics::gauge_fn`].
struct FnGauge(Box<dyn Fn() -> i64 + Send + Sync>);

impl std::fmt::Debug for FnGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FnGauge").field(&(self.0)()).finish()
    }
}

impl prometheus_client::encoding::EncodeMetric for FnGauge {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&(self.0)())
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Gauge
    }
}

/// Counts and times MES lookups.
pub(crate) struct TimedMes {
    pub(crate) inner: Box<dyn MesSource>,
    pub(crate) metrics: Arc<Metrics>,
}

#[async_trait]
impl MesSource for TimedMes {
    async fn lookup(&self, sn: &SerialNumber) -> Result<MesAnswer, MesError> {
        let start = Instant::now();
        let answer = self.inner.lookup(sn).await;
        let status = match &answer {
            Ok(MesAnswer::Record(_)) => "ok",
            Ok(MesAnswer::Unknown) => "unknown",
            Err(MesError::Unavailable { .. }) => "unavailable",
            Err(_) => "bad_answer",
        };
        self.metrics.request("mes", status, start);
        answer
    }
}

/// Counts and times deliveries.
pub(crate) struct TimedReporter {
    pub(crate) inner: Box<dyn FactoryReporter>,
    pub(crate) metrics: Arc<Metrics>,
}

#[async_trait]
impl FactoryReporter for TimedReporter {
    async fn deliver(&self, payload: &Payload) -> Result<(), ReportError> {
        let start = Instant::now();
        let result = self.inner.deliver(payload).await;
        let status = match &result {
            Ok(()) => "ok",
            Err(ReportError::Refused { .. }) => "refused",
            Err(_) => "unavailable",
        };
        self.metrics.request(payload.kind.as_str(), status, start);
        result
    }
}

/// Logs what operations do and counts replies and devices.
pub(crate) struct ServeObserver {
    pub(crate) metrics: Arc<Metrics>,
}

impl Observer for ServeObserver {
    fn published(&self, op: &Operation, result: &Result<(), TransportError>) {
        match result {
            Ok(()) => {
                tracing::info!(operation = %op.id(), deadline = %op.deadline(), "scan command published")
            }
            Err(e) => {
                tracing::error!(operation = %op.id(), "could not publish the scan command: {e}")
            }
        }
    }

    fn reply(&self, op: &Operation, outcome: &ReplyOutcome) {
        match outcome {
            ReplyOutcome::Accepted(sn) => {
                self.metrics.reply("accepted");
                tracing::debug!(operation = %op.id(), %sn, "reply accepted");
            }
            ReplyOutcome::Duplicate(sn) => {
                self.metrics.reply("duplicate");
                tracing::info!(operation = %op.id(), %sn, "duplicate reply counted; the first one stands");
            }
            ReplyOutcome::Conflict(sn) => {
                self.metrics.reply("conflict");
                tracing::warn!(
                    operation = %op.id(),
                    %sn,
                    "another board answered with serial {sn} (a cloned or re-used serial?): \
                     the serial fails with a finding naming both"
                );
            }
            ReplyOutcome::Rejected(reason) => {
                self.metrics.reply("rejected");
                tracing::warn!(operation = %op.id(), "reply moved to the rejected queue: {reason}");
            }
        }
    }

    fn transport_error(&self, error: &TransportError) {
        self.metrics.transport_error();
        tracing::warn!("broker: {error}");
    }

    fn store_error(&self, operation: &OperationId, error: &StoreError) {
        self.metrics.store_errors.inc();
        tracing::error!(%operation, "the operation store failed: {error}");
    }

    fn mes_answer(&self, op: &Operation, sn: &SerialNumber, answer: &Result<MesAnswer, MesError>) {
        if let Err(e) = answer {
            tracing::error!(operation = %op.id(), %sn, "{e}; the device is left undecided");
        }
    }

    fn mes_waiting(
        &self,
        op: &Operation,
        sn: &SerialNumber,
        error: &MesError,
        retry_at: burnin_core::Timestamp,
    ) {
        tracing::warn!(
            operation = %op.id(),
            %sn,
            %retry_at,
            "waiting for MES: {}; retrying (the device stays undecided until MES answers)",
            error.reason()
        );
    }

    fn delivery_waiting(
        &self,
        op: &Operation,
        kind: burnin_core::PayloadKind,
        error: &ReportError,
        retry_at: burnin_core::Timestamp,
    ) {
        tracing::warn!(
            operation = %op.id(),
            payload = %kind,
            %retry_at,
            "waiting for the factory: {error}; trying again (--delivery-outage-wait {})",
            burnin_core::human_duration(op.params().delivery_outage_wait)
        );
    }

    fn collection_ended(&self, op: &Operation) {
        let c = op.counters();
        tracing::info!(
            operation = %op.id(),
            accepted = c.accepted,
            duplicates = c.duplicates,
            rejected = c.rejected,
            mes_pending = op.mes_pending(),
            "collection ended"
        );
    }

    fn delivered(&self, kind: burnin_core::PayloadKind, result: &Result<(), ReportError>) {
        match result {
            Ok(()) => tracing::info!(payload = %kind, "delivered"),
            Err(e) => tracing::error!(payload = %kind, "{e}"),
        }
    }

    fn finished(&self, report: &OperationReport) {
        let passed = report.devices.iter().filter(|d| d.result.passed()).count();
        let failed = report.devices.len() - passed;
        self.metrics
            .devices
            .get_or_create(&ResultLabel { result: "pass" })
            .inc_by(passed as u64);
        self.metrics
            .devices
            .get_or_create(&ResultLabel { result: "fail" })
            .inc_by(failed as u64);
        match &report.error {
            None => tracing::info!(
                operation = %report.operation_id,
                state = %report.state,
                devices = report.devices.len(),
                passed,
                failed,
                "operation finished"
            ),
            Some(e) => tracing::error!(
                operation = %report.operation_id,
                state = %report.state,
                devices = report.devices.len(),
                passed,
                failed,
                "operation finished with an error: {e}"
            ),
        }
    }
}
