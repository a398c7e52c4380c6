//! The one place an operation's ports are composed, for `serve`, `scan`
//! and `demo` alike.
//!
//! A [`PortStack`] takes the adapters (MES, the factory reporter, the
//! store) and wraps each in its bound ([`crate::bounds`]) once; with
//! [`PortStack::with_metrics`] the MES and the reporter are also timed,
//! outside the bound, so a lookup that runs out of time is counted as
//! unavailable. [`PortStack::start`] records a new operation through the
//! bounded store (`begin` is bounded like every other write), and
//! [`PortStack::run`] bounds the publisher and the reply stream of one
//! operation and runs it with [`burnin_core::edge::run`].
//!
//! | port | bound | in one layer |
//! | --- | --- | --- |
//! | store (`begin` … `finish`) | [`Bounds::store`] per write | [`BoundedStore`] |
//! | MES lookup | [`Bounds::mes`] per lookup | [`BoundedMes`] |
//! | delivery | [`Bounds::delivery`] per payload | [`BoundedReporter`] |
//! | command publish | the window | [`BoundedPublisher`] |
//! | reply acks | [`Bounds::broker`] per ack | [`BoundedReplies`] |

use std::sync::Arc;

use burnin_core::edge::{self, EdgePorts, Observer, OperationReport};
use burnin_core::{
    Clock, CommandPublisher, FactoryReporter, MesSource, Operation, OperationParams,
    OperationStore, ReplyStream, StoreError,
};

use crate::bounds::{
    BoundedMes, BoundedPublisher, BoundedReplies, BoundedReporter, BoundedStore, Bounds,
    StoreHealth, Waits,
};
use crate::metrics::{Metrics, TimedMes, TimedReporter};

/// An operation's ports, each bounded once; see the [module docs](self).
pub struct PortStack<S> {
    bounds: Bounds,
    waits: Waits,
    mes: Box<dyn MesSource>,
    reporter: Box<dyn FactoryReporter>,
    store: BoundedStore<S>,
}

impl<S> std::fmt::Debug for PortStack<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortStack")
            .field("bounds", &self.bounds)
            .finish_non_exhaustive()
    }
}

impl<S: OperationStore> PortStack<S> {
    /// Bounds `mes`, `reporter` and `store` by `bounds`, the waits shown
    /// in `waits` (what a stalled operation waits for).
    pub fn new(
        bounds: Bounds,
        waits: Waits,
        mes: Box<dyn MesSource>,
        reporter: Box<dyn FactoryReporter>,
        store: S,
    ) -> Self {
        PortStack {
            mes: Box::new(BoundedMes::new(mes, bounds.mes, waits.clone())),
            reporter: Box::new(BoundedReporter::new(
                reporter,
                bounds.delivery,
                waits.clone(),
            )),
            store: BoundedStore::new(store, bounds.store, waits.clone()),
            bounds,
            waits,
        }
    }

    /// Also times MES lookups and deliveries into `metrics` (outside the
    /// bounds: a call that ran out of time counts as failed).
    pub fn with_metrics(mut self, metrics: &Arc<Metrics>) -> Self {
        self.mes = Box::new(TimedMes {
            inner: self.mes,
            metrics: metrics.clone(),
        });
        self.reporter = Box::new(TimedReporter {
            inner: self.reporter,
            metrics: metrics.clone(),
        });
        self
    }

    /// Tells `health` whether the store's writes succeed (`/healthz`).
    pub fn with_store_health(mut self, health: StoreHealth) -> Self {
        self.store = self.store.with_health(health);
        self
    }

    /// The bounds.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// The waits in progress.
    pub fn waits(&self) -> &Waits {
        &self.waits
    }

    /// The bounded store.
    pub fn store(&self) -> &BoundedStore<S> {
        &self.store
    }

    /// The bounded (and, with metrics, timed) reporter.
    pub fn reporter(&self) -> &dyn FactoryReporter {
        self.reporter.as_ref()
    }

    /// Records a new operation ([`edge::start`]) through the bounded store.
    ///
    /// # Errors
    /// What the store answered (the id is held or running, or the write
    /// failed or ran out of time).
    pub async fn start(
        &self,
        params: OperationParams,
        clock: &dyn Clock,
    ) -> Result<Operation, StoreError> {
        edge::start(params, clock, &self.store).await
    }

    /// Runs `op` ([`edge::run`]) on these ports, with `publisher` and
    /// `replies` bounded, telling `observer`.
    pub async fn run<R: ReplyStream>(
        &self,
        op: Operation,
        publisher: &dyn CommandPublisher,
        replies: R,
        clock: &dyn Clock,
        observer: &dyn Observer,
    ) -> OperationReport {
        let publisher = BoundedPublisher::new(publisher, self.waits.clone());
        let mut replies = BoundedReplies::new(replies, self.bounds.broker, self.waits.clone());
        edge::run(
            op,
            EdgePorts {
                publisher: &publisher,
                replies: &mut replies,
                mes: self.mes.as_ref(),
                reporter: self.reporter.as_ref(),
                store: &self.store,
                clock,
                observer,
            },
        )
        .await
    }
}
