//! The adaptive MES concurrency limit: a [`Controller`] that decides the
//! limit from what the requests tell it (pure, time passed in), and a
//! [`Limiter`] that enforces it on a tokio semaphore.
//!
//! ## Slow start (as TCP's)
//!
//! After the probe of the base latency at the start (below: two round
//! trips at 4 in flight), the limit is `--mes-concurrency` and starts like
//! TCP's slow start: every answer grows the limit by one, so each answer
//! makes room for two requests and the limit **doubles every round trip**
//! — 64, 128, 256 against a MES that stays at its base latency — up to
//! `max` (`--mes-concurrency-max`). It grows only a limit in use (at least
//! half of it in flight when the answer came).
//!
//! When latency leaves its floor, slow start does not end at once: a
//! queue at the MES delays every answer, but so does the edge's own CPU
//! while it takes a burst of replies (on a 2-core edge beside the broker,
//! every answer of a round trip came 6–27 ms late while 1,000 replies
//! arrived, and ending slow start there left 1,000 lookups at 20 ms to a
//! limit of 71–75). As in HyStart++ (RFC 9406), the limit goes on in
//! **conservative slow start**, growing a quarter as fast (×1.25 a round
//! trip), when
//!
//! * the first [`SLOW_START_SAMPLES`] answers of a round trip (`rtt_min`
//!   long) were all slower than `rtt_min` by more than an eighth of it,
//!   within 4–16 ms (HyStart's delay test; the round's fastest answer is
//!   not fooled by answers delayed one by one), or
//! * a window of the rule below shows a queue above `β`.
//!
//! A later round trip whose fastest answer beats the one that slowed it
//! down was a spike: slow start resumes. Slow start ends for good
//!
//! * after [`CSS_ROUNDS`] round trips of conservative slow start (the
//!   latency stayed up: a queue);
//! * at the first overload answer (a timeout, a failed connection, a 5xx
//!   or a 429);
//! * when the limit first comes down: a second window in a row that shows
//!   a queue above `β` (the rule below).
//!
//! The edge logs (debug, target `burnin_http::limit`) when slow start
//! slows down, resumes and ends, with the limit and the latencies.
//!
//! From then on the rule below grows the limit in careful steps. Like
//! TCP's, slow start overshoots the knee: by a round trip of doubling (the
//! answers that show the queue come a round trip after the requests that
//! made it), then by ×1.25 a round trip of conservative slow start until
//! the second window that shows the queue (at most two windows). The rule
//! then brings the limit down to the knee within a few windows.
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
//!     half of the limit: after slow start it grows by `max(α, l)` (steps
//!     that do not overshoot the knee); not while held by `Retry-After`;
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
//!
//! ## The base-latency probe (as BBR's ProbeRTT)
//!
//! The rule above is only as good as `rtt_min`, and `rtt_min` is only the
//! MES's base latency if some answers did not wait in its queue. Two ways
//! it is not:
//!
//! * **Started above the knee** (the default 64 against a `K` of 24),
//!   every answer waits behind the others from the very first, the lowest
//!   latency seen is that of a queue: slow start reads it as the floor and
//!   doubles the limit, and the rule brings it down only to where latency
//!   stopped falling, not to `K`.
//! * **Settled at the knee**, every answer waits behind the little queue
//!   of `α … β` that tells the knee. Once `rtt_min` has forgotten the
//!   older, faster answers ([`MIN_RTT_PERIOD`]), it is that queue's
//!   latency; the queue reads as none and the limit grows a step, and
//!   again the next period: it creeps up.
//!
//! So the controller measures the base latency itself. During a **probe**
//! requests in flight are capped at `min(`[`PROBE_IN_FLIGHT`]`, limit / 4)`
//! (at least 1): the queue drains, and the requests started under the cap
//! are answered at the base latency, which lowers `rtt_min`. The probe
//! ends once [`PROBE_ROUNDS`] × the cap of those have been answered — two
//! round trips, as the first answers on new connections may be slower —
//! and the cap is the limit again. A probe is made
//!
//! * **at the start**, before slow start and the first window: slow start
//!   needs the floor, and a first burst of `--mes-concurrency` requests
//!   would not show it;
//! * whenever no answer came at or below `rtt_min` for [`PROBE_INTERVAL`]
//!   (5 s; half of [`MIN_RTT_PERIOD`], so each period of `rtt_min` holds a
//!   probe). `rtt_min` being the lowest of many answers, that is about
//!   every 5 s while lookups keep coming.
//!
//! A probe leaves the limit as it is — [`Controller::limit`] and the
//! `burnin_mes_concurrency_limit` gauge show the limit, the probe shows as
//! a dip of `burnin_mes_in_flight` — and no window closes during it (its
//! latencies ran under the cap, its demand was capped): the next window
//! counts the requests started after it. An overload answer to a request
//! started under the cap ends it at once: the MES refuses even a few, so
//! there is nothing to measure and the backoff takes its course. When
//! no lookups are waiting a probe costs nothing, and it lasts until the
//! next ones are answered. Otherwise it costs about three round trips of
//! few requests (the drain, then two at the base latency) every 5 s: ~1 %
//! of the throughput of a MES that answers in 20 ms, ~6 % at 100 ms. BBR
//! probes every 10 s for 200 ms. (Netflix's gradient2 has no probe: it
//! compares a short average latency with a long one, and the long one
//! takes in a queue that stands long enough.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{AcquireError, Semaphore, SemaphorePermit};
use tracing::{debug, trace};

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

/// Requests in flight during a probe of the base latency, at most (a
/// quarter of the limit if that is less, at least 1): few enough to be
/// under the knee of any MES worth an adaptive limit, as BBR's ProbeRTT
/// keeps 4 packets in flight.
pub(crate) const PROBE_IN_FLIGHT: usize = 4;
/// A probe lasts until this many round trips of answers to requests it
/// started came back (`PROBE_ROUNDS` × its cap): the first round on fresh
/// connections may be slower, the second is not.
pub(crate) const PROBE_ROUNDS: usize = 2;
/// Probe when no answer came at or below `rtt_min` for this long. Half of
/// [`MIN_RTT_PERIOD`], so every period of `rtt_min` holds a probe and the
/// minimum never ages into the latency of a queue; BBR waits 10 s.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Slow start ends when this many answers of one round trip were all slow
/// (HyStart looks at the first 8 of a round).
pub(crate) const SLOW_START_SAMPLES: usize = 8;

/// In conservative slow start the limit grows this many times slower
/// than in slow start (RFC 9406's `CSS_GROWTH_DIVISOR`): ×1.25 a round
/// trip instead of ×2.
pub(crate) const CSS_GROWTH_DIVISOR: f64 = 4.0;

/// Round trips of conservative slow start whose answers stay slow before
/// slow start ends for good (RFC 9406's `CSS_ROUNDS`).
pub(crate) const CSS_ROUNDS: usize = 5;

/// How much slower than the floor all of a round's answers must be to
/// leave slow start for conservative slow start: an eighth of the floor,
/// within 4–16 ms (HyStart's delay threshold in Linux). Absolute bounds, as a busy CPU delays answers by
/// milliseconds whatever the floor.
fn slow_start_delay(rtt_min: f64) -> f64 {
    (rtt_min / 8.0).clamp(0.004, 0.016)
}

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

/// `α` at `limit`: the queue the limit may keep at the MES and still read
/// its latency as the floor (`β = 2α` is what counts as congested).
fn alpha(limit: f64) -> f64 {
    (limit / 16.0).max(1.5)
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
    /// Until latency first leaves its floor (a round of slow answers or a
    /// congested window), MES refuses or fails a request, or the limit
    /// first comes down: each answer grows the limit by one.
    slow_start: bool,
    /// Slow start's current round trip.
    round: Option<Round>,
    /// Conservative slow start under way (within slow start): the round
    /// trip whose slow answers began it was this fast at best (seconds),
    /// and this many round trips have passed since.
    css: Option<Css>,
    /// When the limit last changed: latencies of requests started before
    /// say nothing about the new limit.
    changed: Option<Instant>,
    /// Whether the last window with latency samples showed a queue.
    congested: bool,
    /// The base-latency probe under way, if any.
    probe: Option<Probe>,
    /// When an answer last came at or below `rtt_min`, or a probe ended.
    rtt_min_seen: Option<Instant>,
    /// Whether probes happen (off only in tests that show what they fix).
    probing_enabled: bool,
}

/// One round trip of slow start: when it began, its fastest answer
/// (seconds) and how many answers it had.
#[derive(Debug, Clone, Copy)]
struct Round {
    start: Instant,
    fastest: f64,
    answers: usize,
}

/// Conservative slow start (HyStart++'s CSS): the fastest answer of the
/// round trip that began it, seconds, and the round trips since.
#[derive(Debug, Clone, Copy)]
struct Css {
    baseline: f64,
    rounds: usize,
}

/// A probe of the base latency: in flight capped low until enough
/// requests started under the cap were answered.
#[derive(Debug, Clone, Copy)]
struct Probe {
    /// When it began (`None`: at construction, before any request).
    since: Option<Instant>,
    /// Answers to requests started since.
    answers: usize,
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
            round: None,
            css: None,
            changed: None,
            congested: false,
            probe: Some(Probe {
                since: None,
                answers: 0,
            }),
            rtt_min_seen: None,
            probing_enabled: true,
        }
    }

    /// The same controller without base-latency probes: the rule as it was
    /// before them, to show in tests what they fix.
    #[cfg(test)]
    fn without_probes(mut self) -> Self {
        self.probe = None;
        self.probing_enabled = false;
        self
    }

    /// The limit in whole requests (what the controller has learned; the
    /// `burnin_mes_concurrency_limit` gauge). A probe does not change it.
    pub(crate) fn limit(&self) -> usize {
        self.limit as usize
    }

    /// Requests allowed in flight now: the limit, or less during a probe.
    pub(crate) fn cap(&self) -> usize {
        match self.probe {
            Some(_) => self.probe_cap(),
            None => self.limit(),
        }
    }

    fn probe_cap(&self) -> usize {
        (self.limit() / 4).clamp(1, PROBE_IN_FLIGHT)
    }

    /// Whether a probe is under way.
    #[cfg(test)]
    fn probing(&self) -> bool {
        self.probe.is_some()
    }

    fn rtt_min(&self) -> Option<f64> {
        match (self.rtt_min_now, self.rtt_min_before) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes one finished request: it took `rtt`, `in_flight` requests were
    /// running when it ended (itself included). Afterwards [`cap`](Self::cap)
    /// and [`limit`](Self::limit) tell what changed.
    pub(crate) fn on_sample(
        &mut self,
        now: Instant,
        rtt: Duration,
        in_flight: usize,
        sample: Sample,
    ) {
        let started = now.checked_sub(rtt);
        // Started after the limit last changed: it tells about this limit.
        let fresh = self.changed.is_none_or(|c| started.is_none_or(|s| s >= c));
        if let Sample::Overload {
            retry_after: Some(wait),
        } = sample
        {
            let until = now + wait;
            self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
        }
        if let Sample::Answered = sample {
            self.note_rtt(now, rtt.as_secs_f64());
        } else {
            // Refused or failed: the MES has a limit, look for it carefully.
            self.end_slow_start("MES refused or failed a request");
        }
        if self.probing_enabled
            && self.probe.is_none()
            && self
                .rtt_min_seen
                .is_some_and(|t| now.saturating_duration_since(t) >= PROBE_INTERVAL)
        {
            self.probe = Some(Probe {
                since: Some(now),
                answers: 0,
            });
        }
        if let Some(probe) = &mut self.probe {
            self.overload |= fresh && matches!(sample, Sample::Overload { .. });
            // Started under the cap: its latency is the base one.
            if probe.since.is_none_or(|p| started.is_none_or(|s| s >= p)) {
                match sample {
                    Sample::Answered => probe.answers += 1,
                    // Refused even at the cap: the measurement is moot;
                    // the overload takes its course.
                    Sample::Overload { .. } => probe.answers = usize::MAX,
                }
            }
            if probe.answers >= PROBE_ROUNDS * self.probe_cap() {
                self.end_probe(now);
            }
            return;
        }
        if let Sample::Answered = sample {
            self.slow_start_step(now, rtt.as_secs_f64(), in_flight);
        }
        let start = *self.window_start.get_or_insert(now);
        self.max_in_flight = self.max_in_flight.max(in_flight);
        match sample {
            Sample::Answered => {
                if fresh && self.window_rtts.len() < MAX_WINDOW_SAMPLES {
                    self.window_rtts.push(rtt.as_secs_f64());
                }
            }
            Sample::Overload { .. } => self.overload |= fresh,
        }
        let window = self
            .rtt_min()
            .map_or(rtt, Duration::from_secs_f64)
            .max(MIN_WINDOW);
        if now.saturating_duration_since(start) < window {
            return;
        }
        let before = self.limit;
        self.close_window(now);
        if self.limit != before {
            self.changed = Some(now);
            if self.limit < before {
                self.end_slow_start("the limit came down");
            }
        }
    }

    /// During slow start, every answer grows the limit by one if the limit
    /// is in use (at least half of it in flight): each answer makes room
    /// for two requests, so the limit doubles every round trip. Once the
    /// first [`SLOW_START_SAMPLES`] answers of a round trip (`rtt_min`)
    /// were all slower than the floor by more than [`slow_start_delay`]
    /// (HyStart's delay test: the round's fastest answer tells a queue
    /// from answers delayed one by one), it goes on as conservative slow
    /// start (RFC 9406), growing [`CSS_GROWTH_DIVISOR`] times slower. A
    /// later round whose fastest answer beats the one that began it was a
    /// spike of latency (a busy CPU on either side): slow start resumes.
    /// After [`CSS_ROUNDS`] round trips without that, slow start ends for
    /// good. (A `Retry-After` comes with an overload answer, which ended
    /// slow start.)
    fn slow_start_step(&mut self, now: Instant, rtt: f64, in_flight: usize) {
        if !self.slow_start {
            return;
        }
        let Some(rtt_min) = self.rtt_min() else {
            return;
        };
        let round = self.round.get_or_insert(Round {
            start: now,
            fastest: rtt,
            answers: 0,
        });
        if now.saturating_duration_since(round.start).as_secs_f64() >= rtt_min {
            *round = Round {
                start: now,
                fastest: rtt,
                answers: 0,
            };
            if let Some(css) = &mut self.css {
                css.rounds += 1;
                if css.rounds >= CSS_ROUNDS {
                    let baseline_ms = css.baseline * 1e3;
                    self.end_slow_start(&format!(
                        "latency stayed above its floor for {CSS_ROUNDS} round trips \
                         (fastest {baseline_ms:.1} ms, floor {:.1} ms)",
                        rtt_min * 1e3
                    ));
                    return;
                }
            }
        }
        round.fastest = round.fastest.min(rtt);
        round.answers += 1;
        if round.answers == SLOW_START_SAMPLES {
            let fastest = round.fastest;
            match self.css {
                None if fastest > rtt_min + slow_start_delay(rtt_min) => {
                    self.enter_css(fastest, rtt_min);
                }
                Some(css) if fastest < css.baseline => {
                    debug!(
                        limit = self.limit as usize,
                        "MES slow start resumed: a round trip was faster again \
                         ({:.1} ms against {:.1} ms)",
                        fastest * 1e3,
                        css.baseline * 1e3
                    );
                    self.css = None;
                }
                _ => {}
            }
        }
        if (in_flight as f64) * 2.0 >= self.limit {
            let step = match self.css {
                Some(_) => 1.0 / CSS_GROWTH_DIVISOR,
                None => 1.0,
            };
            self.limit = (self.limit + step).min(self.max);
        }
    }

    /// Slow start goes on conservatively (see [`slow_start_step`]): the
    /// latency of `fastest` seconds against a floor of `rtt_min` may be a
    /// queue, or a busy CPU.
    ///
    /// [`slow_start_step`]: Self::slow_start_step
    fn enter_css(&mut self, fastest: f64, rtt_min: f64) {
        debug!(
            limit = self.limit as usize,
            "MES slow start slowed down: latency left its floor \
             ({:.1} ms against {:.1} ms)",
            fastest * 1e3,
            rtt_min * 1e3
        );
        self.css = Some(Css {
            baseline: fastest,
            rounds: 0,
        });
    }

    /// Ends slow start for good, saying why at debug level (target
    /// `burnin_http::limit`): where the limit stopped doubling is what
    /// decides how fast a large scan's lookups run.
    fn end_slow_start(&mut self, why: &str) {
        self.css = None;
        if std::mem::replace(&mut self.slow_start, false) {
            debug!(limit = self.limit as usize, "MES slow start ended: {why}");
        }
    }

    /// Restores the limit after a probe. The window starts afresh with the
    /// requests started from now: the earlier ones ran under the cap.
    fn end_probe(&mut self, now: Instant) {
        trace!(
            rtt_min_ms = self.rtt_min().map(|m| m * 1e3),
            limit = self.limit,
            "MES base-latency probe done"
        );
        self.probe = None;
        self.rtt_min_seen = Some(now);
        self.changed = Some(now);
        self.window_start = None;
        self.window_rtts.clear();
        self.max_in_flight = 0;
    }

    /// Keeps the lowest latency of this period and the last one.
    fn note_rtt(&mut self, now: Instant, rtt: f64) {
        let period = *self.period_start.get_or_insert(now);
        if now.saturating_duration_since(period) >= MIN_RTT_PERIOD {
            self.rtt_min_before = self.rtt_min_now.take();
            self.period_start = Some(now);
        }
        if self.rtt_min().is_none_or(|m| rtt <= m) {
            self.rtt_min_seen = Some(now);
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
        let alpha = alpha(self.limit);
        let beta = 2.0 * alpha;
        let held = self.hold_until.is_some_and(|h| now < h);
        trace!(
            limit = self.limit,
            rtt_min_ms = rtt_min * 1e3,
            rtt_ms = rtt * 1e3,
            queue,
            alpha,
            "MES concurrency window"
        );
        let was_congested = std::mem::replace(&mut self.congested, queue > beta);
        if queue > beta && self.slow_start && self.css.is_none() {
            // Latency left its floor: a queue, or a busy CPU. Slow start
            // goes on conservatively; a second such window in a row
            // brings the limit down below, which ends it.
            self.enter_css(rtt, rtt_min);
        }
        if queue > beta && was_congested {
            self.limit = (self.limit - queue + alpha).max(self.limit * LATENCY_FLOOR);
        } else if queue > beta {
            // One congested window may be a stall; wait for the next.
        } else if queue < alpha && busy && !held && !self.slow_start {
            // (During slow start each answer at the floor grew it already.)
            self.limit += alpha.max(l);
        }
        self.limit = self.limit.clamp(1.0, self.max);
    }
}

/// Enforces the [`Controller`]'s cap (its limit, or less during a probe): a
/// fair (FIFO) tokio semaphore whose permits follow the cap. Growing adds
/// permits; shrinking takes the free ones away and, for the rest, keeps a
/// debt that requests pay by not returning their permit when they end.
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
    /// The cap the permits were last sized for.
    current: usize,
    /// Permits to drop as requests end (the limit shrank below in-flight).
    debt: usize,
}

impl Limiter {
    pub(crate) fn new(initial: usize, max: usize) -> Self {
        Self::with_controller(Controller::new(initial, max))
    }

    fn with_controller(controller: Controller) -> Self {
        let current = controller.cap();
        let limit = controller.limit();
        Limiter {
            permits: Semaphore::new(current),
            state: Mutex::new(State {
                controller,
                current,
                debt: 0,
            }),
            in_flight: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current limit (a probe of the base latency caps requests in
    /// flight below it for a few round trips, but does not change it).
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
        state.controller.on_sample(now, rtt, in_flight, sample);
        let cap = state.controller.cap();
        if cap != state.current {
            self.limiter.resize(&mut state, cap);
        }
        let limit = state.controller.limit();
        self.limiter.limit.store(limit, Ordering::Relaxed);
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
        let c = Controller::new(start_limit, max);
        simulate_with(c, duration, latency, answer).limits
    }

    /// The limit and the cap (what may be in flight) every 20 ms, and the
    /// cap at the end.
    struct Trace {
        limits: Vec<usize>,
        caps: Vec<usize>,
        end_cap: usize,
    }

    /// [`simulate`] with a given controller. Requests that start together
    /// (a burst) reach the MES together: `answer` sees how many were in
    /// flight when each arrived (a MES refuses by arrival), `latency` how
    /// many are in flight once the burst has arrived (a MES shares its
    /// capacity among all it serves). A burst of 64 thus all see 64: the
    /// first answers of a limit started above the knee are queued, as in
    /// the stand-in test. Answers due after `duration` are not taken.
    fn simulate_with(
        c: Controller,
        duration: Duration,
        latency: impl Fn(usize) -> Duration,
        answer: impl Fn(usize) -> Sample,
    ) -> Trace {
        simulate_timed(c, duration, |_, n| latency(n), answer)
    }

    /// [`simulate_with`], the latency also depending on when the request
    /// started (time since the start).
    fn simulate_timed(
        mut c: Controller,
        duration: Duration,
        latency: impl Fn(Duration, usize) -> Duration,
        answer: impl Fn(usize) -> Sample,
    ) -> Trace {
        let t0 = Instant::now();
        // Requests in flight: (ends at, took, sample).
        let mut running: Vec<(Instant, Duration, Sample)> = Vec::new();
        let mut now = t0;
        let mut trace = Trace {
            limits: Vec::new(),
            caps: Vec::new(),
            end_cap: 0,
        };
        let mut next_trace = t0;
        loop {
            let all = c.cap().max(running.len());
            while running.len() < c.cap() {
                let sample = answer(running.len() + 1);
                let took = match sample {
                    Sample::Answered => latency(now - t0, all),
                    Sample::Overload { .. } => MS,
                };
                running.push((now + took, took, sample));
            }
            running.sort_by_key(|r| r.0);
            if running[0].0 > t0 + duration {
                break;
            }
            let (end, took, sample) = running.remove(0);
            now = end;
            c.on_sample(now, took, running.len() + 1, sample);
            while next_trace <= now {
                trace.limits.push(c.limit());
                trace.caps.push(c.cap());
                next_trace += 20 * MS;
            }
        }
        trace.end_cap = c.cap();
        trace
    }

    fn knee(k: usize) -> impl Fn(usize) -> Duration {
        move |n| 20 * MS * (n.max(k) as u32) / k as u32
    }

    /// `trace` as `value×count` runs: `64×13 48×5 …`.
    fn runs(trace: &[usize]) -> String {
        let mut out = Vec::new();
        for chunk in trace.chunk_by(|a, b| a == b) {
            out.push(format!("{}×{}", chunk[0], chunk.len()));
        }
        out.join(" ")
    }

    /// The lowest and highest limit in the second half of the trace.
    fn settled(trace: &[usize]) -> (usize, usize) {
        println!("limit every 20 ms: {}", runs(trace));
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

    /// Against a MES with no knee (flat 20 ms), slow start doubles the
    /// limit every round trip: two round trips of the probe at the start,
    /// then 64, 128 and 256 in flight.
    #[test]
    fn slow_start_reaches_256_within_5_round_trips_without_a_knee() {
        let rtt = 20 * MS;
        let after = |rounds: u32| {
            let t = simulate_with(
                Controller::new(64, 256),
                rounds * rtt,
                |_| rtt,
                |_| Sample::Answered,
            );
            println!("{rounds} round trips, cap every 20 ms: {}", runs(&t.caps));
            t.end_cap
        };
        assert_eq!(after(2), 64, "the probe at the start took two round trips");
        assert_eq!(after(3), 128, "doubled in one round trip");
        assert_eq!(after(5), 256);
    }

    /// Slow start grows the limit only while it is in use (lookups that
    /// trickle in do not grow it, as [`an_idle_limit_does_not_grow`] for
    /// the window rule). One slow answer changes nothing (a stall of a
    /// busy CPU); a round trip whose first [`SLOW_START_SAMPLES`] answers
    /// are all slower than the floor by more than [`slow_start_delay`]
    /// slows it to a quarter (conservative slow start), and
    /// [`CSS_ROUNDS`] more slow round trips end it for good.
    #[test]
    fn slow_start_slows_on_a_round_of_slow_answers_and_ends_after_five_more() {
        let t0 = Instant::now();
        let at = |ms: u32| t0 + ms * MS;
        let mut c = Controller::new(64, 256).without_probes();
        c.on_sample(at(20), 20 * MS, 31, Sample::Answered);
        assert_eq!(c.limit(), 64, "less than half in use");
        c.on_sample(at(21), 20 * MS, 32, Sample::Answered);
        assert_eq!(c.limit(), 65, "half in use");
        c.on_sample(at(22), 30 * MS, 65, Sample::Answered);
        assert_eq!(c.limit(), 66, "one slow answer is no queue");
        // The next round trip: every answer 5 ms over the 20 ms floor.
        let slow = 25 * MS;
        assert!(slow.as_secs_f64() > 0.020 + slow_start_delay(0.020));
        for i in 1..SLOW_START_SAMPLES as u32 {
            c.on_sample(at(40 + i), slow, 70, Sample::Answered);
        }
        assert_eq!(c.limit(), 73, "still doubling after 7 slow answers");
        c.on_sample(at(48), slow, 73, Sample::Answered);
        for i in 0..8 {
            c.on_sample(at(50 + i), slow, 73, Sample::Answered);
        }
        assert_eq!(c.limit(), 75, "9 more answers grew it by 9/4, not 9");
        // Round trips that stay slow: the fifth ends slow start.
        for round in 1..=CSS_ROUNDS as u32 {
            assert!(c.slow_start, "round {round}");
            for i in 0..SLOW_START_SAMPLES as u32 {
                c.on_sample(at(40 + 21 * round + i), slow, 80, Sample::Answered);
            }
        }
        assert!(!c.slow_start, "ended after {CSS_ROUNDS} slow round trips");
        let ended = c.limit();
        c.on_sample(at(200), 20 * MS, 80, Sample::Answered);
        assert_eq!(c.limit(), ended, "for good");
    }

    /// A round trip whose fastest answer beats the one that slowed slow
    /// start down was a spike (a busy CPU): slow start resumes at full
    /// speed.
    #[test]
    fn a_round_faster_again_resumes_slow_start() {
        let t0 = Instant::now();
        let at = |ms: u32| t0 + ms * MS;
        let mut c = Controller::new(64, 256).without_probes();
        c.on_sample(at(20), 20 * MS, 64, Sample::Answered);
        for i in 0..SLOW_START_SAMPLES as u32 {
            c.on_sample(at(40 + i), 30 * MS, 64, Sample::Answered);
        }
        assert!(c.css.is_some(), "slowed down");
        let slowed = c.limit;
        for i in 0..SLOW_START_SAMPLES as u32 {
            c.on_sample(at(61 + i), 21 * MS, 70, Sample::Answered);
        }
        assert!(c.css.is_none(), "resumed");
        assert_eq!(
            c.limit - slowed,
            7.0 / 4.0 + 1.0,
            "7 answers at a quarter, then 1"
        );
        c.on_sample(at(70), 21 * MS, 70, Sample::Answered);
        assert_eq!(
            c.limit - slowed,
            7.0 / 4.0 + 2.0,
            "each answer grows it by one again"
        );
    }

    /// Every answer delayed by 10 ms for 100 ms (the edge's own CPU busy
    /// taking a burst of replies, say) while the MES has no knee: slow
    /// start slows down meanwhile, then reaches 256 all the same (by
    /// 0.18 s). Ending it at the first slow round (HyStart alone, as
    /// before) left the window rule's steps to grow it: 210 after 0.5 s.
    #[test]
    fn a_spike_of_latency_does_not_end_slow_start() {
        let rtt = 20 * MS;
        let spike = |since: Duration, _| {
            if (60 * MS..160 * MS).contains(&since) {
                rtt + 10 * MS
            } else {
                rtt
            }
        };
        let t = simulate_timed(Controller::new(64, 256), 500 * MS, spike, |_| {
            Sample::Answered
        });
        println!("cap every 20 ms: {}", runs(&t.caps));
        assert_eq!(t.end_cap, 256);
    }

    /// The first overload answer ends slow start for good.
    #[test]
    fn slow_start_ends_at_a_refusal() {
        let t0 = Instant::now();
        let mut c = Controller::new(64, 256).without_probes();
        c.on_sample(t0, 20 * MS, 64, Sample::Answered);
        assert_eq!(c.limit(), 65);
        let refused = Sample::Overload { retry_after: None };
        c.on_sample(t0 + MS, 20 * MS, 65, refused);
        c.on_sample(t0 + 2 * MS, 20 * MS, 65, Sample::Answered);
        assert_eq!(c.limit(), 65);
    }

    #[test]
    fn retry_after_holds_the_limit_from_growing() {
        let t0 = Instant::now();
        let at = |ms: u32| t0 + ms * MS;
        let mut c = Controller::new(10, 256);
        // The probe at the start: 2 × 2 answers at 2 in flight.
        for _ in 0..4 {
            assert_eq!(c.cap(), 2);
            c.on_sample(t0, 20 * MS, 2, Sample::Answered);
        }
        assert_eq!(c.cap(), 10, "the probe ended");
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

    /// Started at 64 above a knee of 24, every answer is queued from the
    /// first: without probes the lowest latency seen is that of the queue,
    /// and the limit stays far above the knee; the probe at the start
    /// measures the base latency and the limit settles within 25 % of K.
    #[test]
    fn started_above_the_knee_the_probe_finds_the_base_latency() {
        const K: usize = 24;
        let run = 10 * 1000 * MS;
        let old = Controller::new(64, 256).without_probes();
        let old = simulate_with(old, run, knee(K), |_| Sample::Answered).limits;
        let (lo, hi) = settled(&old);
        assert!(lo > K * 5 / 4, "without probes it settles high: {lo}..{hi}");
        let new = simulate_with(Controller::new(64, 256), run, knee(K), |_| Sample::Answered);
        let (lo, hi) = settled(&new.limits);
        assert!(lo >= K * 3 / 4 && hi <= K * 5 / 4, "{lo}..{hi}");
        assert_eq!(new.caps[0], PROBE_IN_FLIGHT, "it starts with a probe");
    }

    /// Settled at the knee, no answer is as fast as the minimum (each
    /// waits behind the little queue that tells the knee), so the minimum
    /// ages into the latency of the queue once its periods roll over, and
    /// the limit creeps up a step per period. Probes every
    /// [`PROBE_INTERVAL`] keep the minimum at the base latency.
    #[test]
    fn probes_keep_the_minimum_from_aging_into_the_queue() {
        const K: usize = 24;
        let run = 90 * 1000 * MS;
        let old = Controller::new(8, 256).without_probes();
        let old = simulate_with(old, run, knee(K), |_| Sample::Answered).limits;
        let (lo, hi) = settled(&old);
        assert!(hi > K * 5 / 4, "without probes it creeps up: {lo}..{hi}");
        let new = simulate_with(Controller::new(8, 256), run, knee(K), |_| Sample::Answered);
        let (lo, hi) = settled(&new.limits);
        assert!(lo >= K * 3 / 4 && hi <= K * 5 / 4, "{lo}..{hi}");
        // It probed about every PROBE_INTERVAL, each time briefly.
        let probing: Vec<usize> = (1..new.caps.len())
            .filter(|&i| new.caps[i] < new.limits[i] && new.caps[i - 1] >= new.limits[i - 1])
            .collect();
        println!("cap every 20 ms: {}", runs(&new.caps));
        let every = PROBE_INTERVAL.as_millis() as usize / 20;
        assert!(
            probing.len() >= run.as_millis() as usize / 20 / every - 2,
            "{probing:?}"
        );
        let below = new
            .caps
            .iter()
            .zip(&new.limits)
            .filter(|(c, l)| c < l)
            .count();
        assert!(
            below * 100 <= new.caps.len() * 3,
            "capped {below} of {} samples: more than 3 % of the time",
            new.caps.len()
        );
    }

    /// The rule step by step: a minimum measured while the MES was queued
    /// (53 ms, as at 64 in flight over a knee of 24) goes stale; after
    /// [`PROBE_INTERVAL`] without a faster answer the cap drops to
    /// [`PROBE_IN_FLIGHT`]; answers to requests started before the probe
    /// do not end it, those started under the cap do; the minimum is then
    /// the base latency and the limit comes down to the knee.
    #[test]
    fn a_probe_refreshes_a_stale_minimum() {
        let t0 = Instant::now();
        let at = |ms: u32| t0 + ms * MS;
        let queued = 53 * MS;
        let mut c = Controller::new(64, 256);
        for _ in 0..PROBE_ROUNDS * PROBE_IN_FLIGHT {
            assert!(c.probing());
            c.on_sample(t0, queued, 4, Sample::Answered);
        }
        assert!(!c.probing());
        assert_eq!(c.rtt_min(), Some(queued.as_secs_f64()));
        // Latency flat at 53 ms: no queue is seen, the limit holds (not
        // all of it was used, so it does not grow either).
        let mut ms = 0;
        while ms < PROBE_INTERVAL.as_millis() as u32 {
            c.on_sample(at(ms), queued + MS, 30, Sample::Answered);
            assert_eq!(c.cap(), 64, "at {ms} ms");
            ms += 10;
        }
        c.on_sample(at(ms), queued + MS, 64, Sample::Answered);
        assert!(c.probing(), "stale after {ms} ms");
        assert_eq!((c.cap(), c.limit()), (PROBE_IN_FLIGHT, 64));
        // Started before the probe began: no use.
        for i in 1..=50 {
            c.on_sample(at(ms + i), queued, 64 - i as usize, Sample::Answered);
        }
        assert!(c.probing());
        let begun = ms + 53;
        for i in 1..=PROBE_ROUNDS * PROBE_IN_FLIGHT {
            assert!(c.probing());
            c.on_sample(at(begun + 20 + i as u32), 20 * MS, 4, Sample::Answered);
        }
        assert!(!c.probing());
        assert_eq!(c.rtt_min(), Some(0.020));
        assert_eq!(c.limit(), 64, "a probe does not change the limit");
        // Back at 64 in flight, 53 ms: a queue of 40; down to the knee.
        let mut t = begun + 100;
        while c.limit() > 30 && t < begun + 2000 {
            t += 10;
            c.on_sample(at(t), queued, 64, Sample::Answered);
        }
        assert!(c.limit() <= 30, "{} after {} ms", c.limit(), t - begun);
    }

    /// An overload answer to a request started under the cap ends the
    /// probe (the MES refuses even a few: there is nothing to measure) and
    /// the limit backs off as for any overload.
    #[test]
    fn an_overload_during_a_probe_ends_it_and_backs_off() {
        let t0 = Instant::now();
        let mut c = Controller::new(64, 256);
        c.on_sample(t0, 20 * MS, 4, Sample::Overload { retry_after: None });
        assert!(!c.probing());
        c.on_sample(t0 + 30 * MS, 20 * MS, 64, Sample::Answered);
        c.on_sample(t0 + 200 * MS, 20 * MS, 64, Sample::Answered);
        assert_eq!(c.limit(), 57, "64 × {BACKOFF}");
    }

    #[tokio::test]
    async fn the_semaphore_follows_the_limit_and_debt_is_paid_by_ending_requests() {
        let l = Limiter::with_controller(Controller::new(4, 8).without_probes());
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
    }

    #[tokio::test]
    async fn a_probe_caps_the_permits_and_the_limit_stays() {
        let l = Limiter::new(64, 256);
        assert_eq!(l.limit(), 64);
        assert_eq!(l.permits.available_permits(), 4, "the probe at the start");
        let slots = futures_join(&l, 4).await;
        assert!(l.permits.try_acquire().is_err());
        for slot in slots {
            slot.finish(Sample::Answered);
        }
        assert_eq!(l.permits.available_permits(), 4);
        let slots = futures_join(&l, 4).await;
        for slot in slots {
            slot.finish(Sample::Answered);
        }
        assert_eq!(l.permits.available_permits(), 64, "ended after 8 answers");
        assert_eq!(l.limit(), 64);
    }

    async fn futures_join(l: &Limiter, n: usize) -> Vec<Slot<'_>> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(l.acquire().await.unwrap());
        }
        out
    }
}
