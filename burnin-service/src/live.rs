//! The live state of operations: a [`burnin_core::live::Board`] behind a
//! lock, fed by an [`Observer`] the service installs, with a `watch`
//! channel carrying the last event id that wakes the event streams
//! ([`crate::http::events`] serves them), and `--keep` retention.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use burnin_core::edge::{Observer, OperationReport};
use burnin_core::live::Board;
use burnin_core::{
    MesError, Operation, OperationId, PayloadKind, ReplyOutcome, ReportError, SerialNumber,
    Timestamp, TransportError,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Limits on live streams.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Event streams served at once per operation (and for `/events`).
    pub streams_per_operation: usize,
    /// Events kept for replay (all operations).
    pub replay_events: usize,
    /// Finished operations kept in memory (older ones are read from the store).
    pub keep_finished: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            streams_per_operation: 64,
            replay_events: burnin_core::live::DEFAULT_CAPACITY,
            keep_finished: burnin_core::live::DEFAULT_KEEP_FINISHED,
        }
    }
}

/// The board, its change signal and the stream counts; see the
/// [module docs](self).
pub struct Live {
    board: Mutex<Board>,
    pub(crate) changed: watch::Sender<u64>,
    streams: Mutex<HashMap<Option<OperationId>, usize>>,
    pub(crate) limits: Limits,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("board", &*self.board())
            .field("limits", &self.limits)
            .finish()
    }
}

impl Live {
    /// A board whose event ids start after `first_id` (the edge uses its
    /// start time in microseconds, so ids grow across restarts).
    pub fn new(first_id: u64, limits: Limits) -> Arc<Self> {
        let board = Board::new(first_id, limits.replay_events, limits.keep_finished);
        let (changed, _) = watch::channel(board.last_id());
        Arc::new(Live {
            board: Mutex::new(board),
            changed,
            streams: Mutex::new(HashMap::new()),
            limits,
        })
    }

    /// The board (locked: keep it short).
    pub fn board(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut Board)) {
        let last = {
            let mut b = self.board();
            f(&mut b);
            b.last_id()
        };
        self.changed.send_if_modified(|v| {
            let news = *v != last;
            *v = last;
            news
        });
    }

    /// Drops an operation from the board (it runs elsewhere now, or was
    /// pruned): the store's copy is shown instead.
    pub(crate) fn forget(&self, id: &OperationId) {
        self.update(|b| b.forget(id));
    }

    /// The observer that feeds the board.
    pub fn observer(self: &Arc<Self>) -> Arc<dyn Observer> {
        Arc::new(LiveObserver(self.clone()))
    }

    pub(crate) fn open_stream(self: &Arc<Self>, key: Option<OperationId>) -> Option<StreamPermit> {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let n = streams.entry(key.clone()).or_default();
        if *n >= self.limits.streams_per_operation {
            return None;
        }
        *n += 1;
        Some(StreamPermit {
            live: self.clone(),
            key,
        })
    }
}

pub(crate) struct StreamPermit {
    live: Arc<Live>,
    key: Option<OperationId>,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut streams = self
            .live
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = streams.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                streams.remove(&self.key);
            }
        }
    }
}

struct LiveObserver(Arc<Live>);

impl Observer for LiveObserver {
    fn running(&self, op: &Operation) {
        self.0.update(|b| b.track(op));
    }
    fn published(&self, op: &Operation, _: &Result<(), TransportError>) {
        self.0.update(|b| b.state(op));
    }
    fn reply(&self, op: &Operation, outcome: &ReplyOutcome) {
        match outcome {
            ReplyOutcome::Accepted(sn) => self.0.update(|b| b.reply(op, sn)),
            // Another board answering as a decided serial fails it now.
            ReplyOutcome::Conflict(sn) => self.0.update(|b| b.verdict(op, sn)),
            ReplyOutcome::Duplicate(_) | ReplyOutcome::Rejected(_) => {}
        }
    }
    fn verdict(&self, op: &Operation, sn: &SerialNumber) {
        self.0.update(|b| b.verdict(op, sn));
    }
    fn collection_ended(&self, op: &Operation) {
        self.0.update(|b| b.state(op));
    }
    fn mes_waiting(&self, op: &Operation, sn: &SerialNumber, _: &MesError, _: Timestamp) {
        self.0.update(|b| b.mes_waiting(op, sn));
    }
    fn results(&self, op: &Operation) {
        self.0.update(|b| b.results(op));
    }
    fn delivery(&self, op: &Operation, kind: PayloadKind, result: &Result<(), ReportError>) {
        let outcome = result.as_ref().map(|_| ()).map_err(ToString::to_string);
        self.0.update(|b| b.delivery(op, kind, outcome));
    }
    fn finished(&self, report: &OperationReport) {
        self.0.update(|b| b.finished(report));
    }
}

/// How often [`retention`] prunes: a sixth of `keep`, between 1 s and 10
/// minutes, so a short `--keep` (a soak, a test line) is honoured within
/// about a sixth of itself and a long one costs one query per 10 minutes.
pub(crate) fn prune_interval(keep: Duration) -> Duration {
    (keep / 6).clamp(Duration::from_secs(1), Duration::from_secs(600))
}

/// Deletes finished operations older than `keep` now and every
/// [`prune_interval`] until `stop` (`serve --keep`).
pub(crate) async fn retention(store: crate::Store, keep: Duration, stop: CancellationToken) {
    let every = prune_interval(keep);
    loop {
        let cutoff = std::time::SystemTime::now()
            .checked_sub(keep)
            .unwrap_or(std::time::UNIX_EPOCH);
        let before = burnin_core::Timestamp::from_system_time(cutoff);
        match store.prune(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                pruned = n,
                "deleted finished operations older than --keep {}",
                humantime::format_duration(keep)
            ),
            Err(e) => tracing::warn!("could not prune old operations: {e}"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prune_interval;
    use std::time::Duration;

    #[test]
    fn pruning_follows_a_short_keep_and_stays_rare_for_a_long_one() {
        assert_eq!(
            prune_interval(Duration::from_secs(30)),
            Duration::from_secs(5)
        );
        assert_eq!(
            prune_interval(Duration::from_millis(10)),
            Duration::from_secs(1)
        );
        assert_eq!(
            prune_interval(Duration::from_secs(3600)),
            Duration::from_secs(600)
        );
        assert_eq!(
            prune_interval(Duration::from_secs(30 * 24 * 3600)),
            Duration::from_secs(600)
        );
    }
}
