//! The adaptive MES concurrency limit: a [`Controller`] that decides the
//! limit from what the requests tell it (pure, time passed in), and a
//! [`Limiter`] that enforces it on a tokio semaphore.
//!
//! ## The rule (TCP Vegas, per round trip, plus AIMD on overload)
//!
//! Samples are gathered in windows of one round trip (`rtt_min`, the
//! lowest latency of any answer in the last [`MIN_RTT_PERIOD`] to
//! 2×[`MIN_RTT_PERIOD`]) but at least [`MIN_WINDOW`]. When a window closes:
//!
//! * **Overload** — a request in it timed out, failed to connect, or got a
//!   5xx or 429: the limit is multiplied by [`BACKOFF`] (once per window,
//!   however many failed, so one bad moment does not collapse it). A
//!   `Retry-After` on such an answer also **holds** the limit: it does not
//!   grow again before that time (the request itself waits that long
//!   before its retry, see the retry policy).
//! * Otherwise the window's latency `rtt` — the 10th percentile of its
//!   answers: like the minimum TCP Vegas in Linux takes per round trip, it
//!   filters out answers delayed by anything but queueing, such as a busy
//!   CPU on either side, yet a few lucky answers do not hide a queue — is
//!   compared with `rtt_min`:
//!   `queue = limit × (1 − rtt_min / rtt)` estimates how many requests wait
//!   in the server rather than being served. With `α = max(1.5, limit / 16)`,
//!   `β = 2α` and `l = max(1, log10 limit)`:
//!   * `queue > β` in this window **and** the one before (latency rising;
//!     a single window may be a stall of the CPU): the limit drops to
//!     `limit − queue + α` — what the server served at `rtt_min`, plus a
//!     little — but by at most a quarter ([`LATENCY_FLOOR`]) in one step;
//!   * `queue < α` (latency near its minimum) and the window used at least
//!     half of the limit: it grows by `max(α, l)`, or by `β` while `queue < l` until
//!     the limit first had to come down (a slow start that finds the knee
//!     fast, then careful steps that do not overshoot it); not while held by
//!     `Retry-After`;
//!   * in between it stays.
//!
//! Only requests started after the limit last changed count, for latency
//! and overload alike: the others ran under the old limit (this removes
//! the lag that otherwise makes the limit swing around the knee, and makes
//! the decrease on overload once per round trip, as in TCP).
//!
//! The limit stays within `1 ..= max`. Against a MES whose latency is flat
//! up to `K` requests in flight and rises in proportion beyond, `queue` is
//! `limit − K`, so the limit settles at `K + α … K + β`: 6–12 % above
//! `K` from a knee of 24 up, 1.5–3 requests above a lower one (the floor
//! keeps a 10–20 % wobble of latency on a busy CPU from reading as a
//! queue at small limits). Netflix concurrency-limits' Vegas uses
//! `α = 3 log10 limit`, `β = 6 log10 limit`: the same at a limit of 150,
//! but 25–50 % above a knee of 12. Against one that
//! answers 429 beyond `K`, it saw-tooths between `BACKOFF × K` and `K`.
//! Getting there is paced by `Retry-After`: refused requests wait it out,
//! so the demand beyond `K` (and with it the next cut) returns about once
//! per `Retry-After` — from 64 to a `K` of 20 takes ~10 s at
//! `Retry-After: 1`; meanwhile the limit is above what is in flight and
//! costs nothing.
//!
//! Requests answered with a final error (a 4xx other than 429, a bad body)
//! still count as latency samples: the server did answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{AcquireError, Semaphore, SemaphorePermit};

/// Multiplicative decrease on overload.
pub(crate) const BACKOFF: f64 = 0.9;
/// The most one window's rising latency takes off: a stall longer than a
/// window (a busy CPU) then costs a quarter of the limit, not half.
pub(crate) const LATENCY_FLOOR: f64 = 0.75;
/// The shortest window. Several round trips of a 20 ms MES: the lowest
/// latency of a window is then one that no stall of either side (a busy
/// CPU, a garbage-collecting MES) delayed, unless the stall outlasted the
/// window.
pub(crate) const MIN_WINDOW: Duration = Duration::from_millis(100);
/// `rtt_min` forgets samples older than one to two periods, so a MES that
/// got slower for good is not read as congested for ever.
pub(crate) const MIN_RTT_PERIOD: Duration = Duration::from_secs(10);

/// Latencies kept per window; more are not needed for its low quantile.
const MAX_WINDOW_SAMPLES: usize = 4096;

/// The window's latency: its 10th percentile. Lower than the mean, so
/// answers delayed by a stall (a busy CPU on either side) do not count;
/// above the minimum, so a few lucky answers do not hide a queue.
fn low_quantile(rtts: &mut [f64]) -> Option<f64> {
    if rtts.is_empty() {
        return None;
    }
    let i = rtts.len() / 10;
    rtts.select_nth_unstable_by(i, f64::total_cmp);
    Some(rtts[i])
}

/// What one request told the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sample {
    /// The server answered (any status but 429 and 5xx).
    Answered,
    /// Timeout, connection failure, 5xx or 429; `retry_after` if the
    /// answer carried one (already capped).
    Overload { retry_after: Option<Duration> },
}

/// Decides the limit; see the [module docs](self). Pure: every input
/// carries its time.
#[derive(Debug, Clone)]
pub(crate) struct Controller {
    limit: f64,
    max: f64,
    window_start: Option<Instant>,
    /// Latencies (seconds) of this window's fresh samples (at most
    /// [`MAX_WINDOW_SAMPLES`]).
    window_rtts: Vec<f64>,
    overload: bool,
    max_in_flight: usize,
    /// Lowest latency (seconds) this period and the last one.
    rtt_min_now: Option<f64>,
    rtt_min_before: Option<f64>,
    period_start: Option<Instant>,
    hold_until: Option<Instant>,
    /// Until the first decrease, flat latency grows the limit by `β`.
    slow_start: bool,
    /// When the limit last changed: latencies of requests started before
    /// say nothing about the new limit.
    changed: Option<Instant>,
    /// Whether the last window with latency samples showed a queue.
    congested: bool,
}

impl Controller {
    pub(crate) fn new(initial: usize, max: usize) -> Self {
        let max = max.max(1) as f64;
        Controller {
            limit: (initial as f64).clamp(1.0, max),
            max,
            window_start: None,
            window_rtts: Vec::new(),
            overload: false,
            max_in_flight: 0,
            rtt_min_now: None,
            rtt_min_before: None,
            period_start: None,
            hold_until: None,
            slow_start: true,
            changed: None,
            congested: false,
        }
    }

    /// The limit in whole requests.
    pub(crate) fn limit(&self) -> usize {
        self.limit as usize
    }

    fn rtt_min(&self) -> Option<f64> {
        match (self.rtt_min_now, self.rtt_min_before) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes one finished request: it took `rtt`, `in_flight` requests were
    /// running when it ended (itself included). Returns the new limit when
    /// a window closed.
    pub(crate) fn on_sample(
        &mut self,
        now: Instant,
        rtt: Duration,
        in_flight: usize,
        sample: Sample,
    ) -> Option<usize> {
        let start = *self.window_start.get_or_insert(now);
        self.max_in_flight = self.max_in_flight.max(in_flight);
        // Started after the limit last changed: it tells about this limit.
        let fresh = self
            .changed
            .is_none_or(|c| now.checked_sub(rtt).is_none_or(|s| s >= c));
        match sample {
            Sample::Answered => {
                let rtt = rtt.as_secs_f64();
                self.note_rtt(now, rtt);
                if fresh && self.window_rtts.len() < MAX_WINDOW_SAMPLES {
                    self.window_rtts.push(rtt);
                }
            }
            Sample::Overload { retry_after } => {
                self.overload |= fresh;
                if let Some(wait) = retry_after {
                    let until = now + wait;
                    self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
                }
            }
        }
        let window = self
            .rtt_min()
            .map_or(rtt, Duration::from_secs_f64)
            .max(MIN_WINDOW);
        if now.saturating_duration_since(start) < window {
            return None;
        }
        let before = self.limit;
        self.close_window(now);
        if self.limit != before {
            self.changed = Some(now);
            if self.limit < before {
                self.slow_start = false;
            }
        }
        Some(self.limit())
    }

    /// Keeps the lowest latency of this period and the last one.
    fn note_rtt(&mut self, now: Instant, rtt: f64) {
        let period = *self.period_start.get_or_insert(now);
        if now.saturating_duration_since(period) >= MIN_RTT_PERIOD {
            self.rtt_min_before = self.rtt_min_now.take();
            self.period_start = Some(now);
        }
        self.rtt_min_now = Some(self.rtt_min_now.map_or(rtt, |m| m.min(rtt)));
    }

    fn close_window(&mut self, now: Instant) {
        let overload = std::mem::take(&mut self.overload);
        let window_rtt = low_quantile(&mut self.window_rtts);
        self.window_rtts.clear();
        let busy = std::mem::take(&mut self.max_in_flight) as f64 * 2.0 >= self.limit;
        self.window_start = None;
        if overload {
            self.limit = (self.limit * BACKOFF).max(1.0);
            return;
        }
        let Some(rtt) = window_rtt else {
            return;
        };
        let rtt_min = self.rtt_min().unwrap_or(rtt);
        let queue = self.limit * (1.0 - rtt_min / rtt);
        let l = self.limit.log10().max(1.0);
        let alpha = (self.limit / 16.0).max(1.5);
        let beta = 2.0 * alpha;
        let held = self.hold_until.is_some_and(|h| now < h);
        let was_congested = std::mem::replace(&mut self.congested, queue > beta);
        if queue > beta && was_congested {
            self.limit = (self.limit - queue + alpha).max(self.limit * LATENCY_FLOOR);
        } else if queue > beta {
            // One congested window may be a stall; wait for the next.
        } else if queue < alpha && busy && !held {
            self.limit += if queue < l { beta } else { alpha.max(l) };
        }
        self.limit = self.limit.clamp(1.0, self.max);
    }
}

/// Enforces the [`Controller`]'s limit: a fair (FIFO) tokio semaphore whose
/// permits follow the limit. Growing adds permits; shrinking takes the free
/// ones away and, for the rest, keeps a debt that requests pay by not
/// returning their permit when they end.
#[derive(Debug)]
pub(crate) struct Limiter {
    permits: Semaphore,
    state: Mutex<State>,
    in_flight: AtomicUsize,
    /// The limit, readable without the lock (for gauges).
    limit: AtomicUsize,
}

#[derive(Debug)]
struct State {
    controller: Controller,
    /// The limit the permits were last sized for.
    current: usize,
    /// Permits to drop as requests end (the limit shrank below in-flight).
    debt: usize,
}

impl Limiter {
    pub(crate) fn new(initial: usize, max: usize) -> Self {
        let controller = Controller::new(initial, max);
        let current = controller.limit();
        Limiter {
            permits: Semaphore::new(current),
            state: Mutex::new(State {
                controller,
                current,
                debt: 0,
            }),
            in_flight: AtomicUsize::new(0),
            limit: AtomicUsize::new(current),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current limit.
    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Requests holding a slot now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Waits for a slot (in FIFO order).
    pub(crate) async fn acquire(&self) -> Result<Slot<'_>, AcquireError> {
        let permit = self.permits.acquire().await?;
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            limiter: self,
            permit: Some(permit),
            started: Instant::now(),
        })
    }

    fn resize(&self, state: &mut State, new: usize) {
        if new > state.current {
            let grow = new - state.current;
            let paid = grow.min(state.debt);
            state.debt -= paid;
            self.permits.add_permits(grow - paid);
        } else if new < state.current {
            let mut shrink = state.current - new;
            while shrink > 0 {
                match self.permits.try_acquire() {
                    Ok(p) => {
                        p.forget();
                        shrink -= 1;
                    }
                    Err(_) => break,
                }
            }
            state.debt += shrink;
        }
        state.current = new;
        self.limit.store(new, Ordering::Relaxed);
    }
}

/// A request's hold on the limit; give it back with [`finish`](Self::finish)
/// (or drop it: a cancelled request tells the controller nothing).
#[derive(Debug)]
pub(crate) struct Slot<'a> {
    limiter: &'a Limiter,
    permit: Option<SemaphorePermit<'a>>,
    started: Instant,
}

impl Slot<'_> {
    /// Ends the request with what it told.
    pub(crate) fn finish(self, sample: Sample) {
        let now = Instant::now();
        let rtt = now.saturating_duration_since(self.started);
        let in_flight = self.limiter.in_flight();
        let mut state = self.limiter.state();
        if let Some(new) = state.controller.on_sample(now, rtt, in_flight, sample) {
            self.limiter.resize(&mut state, new);
        }
        // `self` drops here and gives the slot back.
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.limiter.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(permit) = self.permit.take() {
            let mut state = self.limiter.state();
            if state.debt > 0 {
                state.debt -= 1;
                permit.forget();
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::print_stdout)] // the traces are printed for the reader
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Drives a controller against a simulated MES: `latency(in_flight)`
    /// and `answer(in_flight)`, always saturated (more lookups waiting than
    /// the limit), for `duration`; returns the limit every 20 ms.
    fn simulate(
        start_limit: usize,
        max: usize,
        duration: Duration,
        latency: impl Fn(usize) -> Duration,
        answer: impl Fn(usize) -> Sample,
    ) -> Vec<usize> {
        let t0 = Instant::now();
        let mut c = Controller::new(start_limit, max);
        // Requests in flight: (ends at, started with in_flight, sample).
        let mut running: Vec<(Instant, Duration, Sample)> = Vec::new();
        let mut now = t0;
        let mut trace = Vec::new();
        let mut next_trace = t0;
        while now < t0 + duration {
            while running.len() < c.limit() {
                let n = running.len() + 1;
                let sample = answer(n);
                let took = match sample {
                    Sample::Answered => latency(n),
                    Sample::Overload { .. } => MS,
                };
                running.push((now + took, took, sample));
            }
            running.sort_by_key(|r| r.0);
            let (end, took, sample) = running.remove(0);
            now = end;
            c.on_sample(now, took, running.len() + 1, sample);
            while next_trace <= now {
                trace.push(c.limit());
                next_trace += 20 * MS;
            }
        }
        trace
    }

    fn knee(k: usize) -> impl Fn(usize) -> Duration {
        move |n| 20 * MS * (n.max(k) as u32) / k as u32
    }

    /// The lowest and highest limit in the second half of the trace.
    fn settled(trace: &[usize]) -> (usize, usize) {
        println!("limit every 20 ms: {trace:?}");
        let tail = &trace[trace.len() / 2..];
        (*tail.iter().min().unwrap(), *tail.iter().max().unwrap())
    }

    #[test]
    fn grows_to_a_latency_knee_above_the_start_and_stays() {
        let trace = simulate(64, 256, 10 * 1000 * MS, knee(150), |_| Sample::Answered);
        let (lo, hi) = settled(&trace);
        assert!(
            lo >= 150 * 3 / 4 && hi <= 150 * 5 / 4,
            "{lo}..{hi}: {trace:?}"
        );
    }

    #[test]
    fn shrinks_to_a_latency_knee_below_the_start_and_stays() {
        let trace = simulate(64, 256, 10 * 1000 * MS, knee(30), |_| Sample::Answered);
        let (lo, hi) = settled(&trace);
        assert!(
            lo >= 30 * 3 / 4 && hi <= 30 * 5 / 4,
            "{lo}..{hi}: {trace:?}"
        );
    }

    #[test]
    fn backs_off_on_429_beyond_k() {
        let trace = simulate(
            64,
            256,
            10 * 1000 * MS,
            |_| 20 * MS,
            |n| {
                if n > 40 {
                    Sample::Overload { retry_after: None }
                } else {
                    Sample::Answered
                }
            },
        );
        let (lo, hi) = settled(&trace);
        assert!(lo >= 30 && hi <= 50, "{lo}..{hi}: {trace:?}");
    }

    #[test]
    fn never_above_the_ceiling_nor_below_one() {
        let trace = simulate(64, 100, 5 * 1000 * MS, |_| 20 * MS, |_| Sample::Answered);
        assert_eq!(*trace.iter().max().unwrap(), 100, "{trace:?}");
        let trace = simulate(
            64,
            256,
            5 * 1000 * MS,
            |_| 20 * MS,
            |_| Sample::Overload { retry_after: None },
        );
        assert_eq!(*trace.last().unwrap(), 1, "{trace:?}");
        assert!(trace.iter().all(|&l| l >= 1));
    }

    #[test]
    fn retry_after_holds_the_limit_from_growing() {
        let t0 = Instant::now();
        let at = |ms: u32| t0 + ms * MS;
        let mut c = Controller::new(10, 256);
        c.on_sample(at(0), 20 * MS, 10, Sample::Answered);
        c.on_sample(at(100), 20 * MS, 10, Sample::Answered);
        assert!(c.limit() > 10, "flat latency grows it");
        let before = c.limit();
        let retry_after = Some(Duration::from_secs(1));
        c.on_sample(at(200), 20 * MS, before, Sample::Overload { retry_after });
        c.on_sample(at(300), 20 * MS, before, Sample::Answered);
        let held = c.limit();
        assert!(held < before, "{held} < {before}");
        for ms in (400..1200).step_by(50) {
            c.on_sample(at(ms), 20 * MS, held, Sample::Answered);
        }
        assert_eq!(c.limit(), held, "no growth within Retry-After");
        c.on_sample(at(1250), 20 * MS, held, Sample::Answered);
        c.on_sample(at(1350), 20 * MS, held, Sample::Answered);
        assert!(c.limit() > held, "grows again after it");
    }

    #[test]
    fn an_idle_limit_does_not_grow() {
        let t0 = Instant::now();
        let mut c = Controller::new(64, 256);
        for i in 0..100 {
            c.on_sample(t0 + (20 * i) * MS, 20 * MS, 3, Sample::Answered);
        }
        assert_eq!(c.limit(), 64);
    }

    #[tokio::test]
    async fn the_semaphore_follows_the_limit_and_debt_is_paid_by_ending_requests() {
        let l = Limiter::new(4, 8);
        let slots: Vec<_> = futures_join(&l, 4).await;
        assert_eq!(l.in_flight(), 4);
        assert!(l.permits.try_acquire().is_err());
        {
            let mut st = l.state();
            l.resize(&mut st, 2);
            assert_eq!(st.debt, 2);
        }
        drop(slots);
        assert_eq!(l.in_flight(), 0);
        assert_eq!(l.permits.available_permits(), 2);
        {
            let mut st = l.state();
            l.resize(&mut st, 6);
            assert_eq!(st.debt, 0);
        }
        assert_eq!(l.permits.available_permits(), 6);
        assert_eq!(l.limit(), 6);
    }

    async fn futures_join(l: &Limiter, n: usize) -> Vec<Slot<'_>> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(l.acquire().await.unwrap());
        }
        out
    }
}
