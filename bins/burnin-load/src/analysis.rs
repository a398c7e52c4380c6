//! Turning what the factory stand-in recorded into figures.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use burnin_testkit::Recorded;

/// One timed run of an edge.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timing {
    /// Start (process start for `scan` and the baseline, `POST /scans` for
    /// `serve`) → the stand-in received `/notify`.
    pub(crate) notify_s: Option<f64>,
    /// Start → the process exited (`scan`, baseline) or `GET /scans/{id}`
    /// said done (`serve`).
    pub(crate) total_s: f64,
    /// Devices in the `/log`, and how many passed.
    pub(crate) logged: usize,
    pub(crate) passed: usize,
    /// Where the time went.
    pub(crate) phases: String,
    /// Why the run does not count, if it does not.
    pub(crate) problem: Option<String>,
    /// CPU seconds of the edge, the broker and the harness (agents and
    /// stand-in) over the run, where they could be read (`scan` runs).
    pub(crate) cpu: Cpu,
    /// The edge's peak RSS (`VmHWM`), KiB, where it could be read.
    pub(crate) edge_peak_rss_kib: Option<u64>,
}

/// CPU seconds per side of a run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cpu {
    pub(crate) edge: Option<f64>,
    pub(crate) broker: Option<f64>,
    pub(crate) harness: Option<f64>,
    /// The share of the machine's CPU time the hypervisor stole during the
    /// run, per cent.
    pub(crate) stolen_pct: Option<f64>,
}

impl Timing {
    /// The command-to-notification figure, or what went wrong.
    pub(crate) fn shown(&self) -> String {
        match self.notify_s {
            Some(n) => format!("{n:.3}"),
            None => "no /notify".into(),
        }
    }
}

/// Seconds.
pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// `/mes/Q1` → `/mes`; `/log` → `/log`.
pub(crate) fn route(r: &Recorded) -> &str {
    match r.path[1..].find('/') {
        Some(i) => &r.path[..=i],
        None => &r.path,
    }
}

/// Figures for a run that started at `t0` and asked `expected` devices,
/// all of which must pass.
pub(crate) fn analyse(t0: Instant, requests: &[Recorded], expected: usize) -> Timing {
    let since = |i: Instant| secs(i.saturating_duration_since(t0));
    let mes: Vec<&Recorded> = requests
        .iter()
        .filter(|r| matches!(route(r), "/mes" | "/device_info"))
        .collect();
    let first = |path: &str| requests.iter().find(|r| r.path == path);
    let mut t = Timing {
        notify_s: first("/notify").map(|r| since(r.at)),
        ..Timing::default()
    };
    if let Some(log) = first("/log") {
        let v: serde_json::Value = serde_json::from_slice(&log.body).unwrap_or_default();
        if let Some(infos) = v.get("scaninfo").and_then(|s| s.as_array()) {
            t.logged = infos.len();
            t.passed = infos.iter().filter(|i| i["result"] == "1").count();
        }
    }
    let mut p = String::new();
    if let (Some(a), Some(b)) = (
        mes.iter().map(|r| r.at).min(),
        mes.iter().map(|r| r.at + r.delay).max(),
    ) {
        let _ = write!(
            p,
            "first MES GET {:.3}s, last MES answer ~{:.3}s ({} GETs)",
            since(a),
            since(b),
            mes.len()
        );
    }
    if let Some(shown) = in_flight(&mes, since) {
        let _ = write!(p, "; {shown}");
    }
    for path in ["/log", "/pair", "/notify"] {
        if let Some(r) = first(path) {
            let _ = write!(p, ", {path} {:.3}s", since(r.at));
        }
    }
    t.phases = p;
    if t.logged != expected || t.passed != expected {
        t.problem = Some(format!(
            "the log lists {} devices, {} passed; expected {expected} passing",
            t.logged, t.passed
        ));
    }
    t
}

/// How far the edge's MES concurrency limit opened, as the stand-in saw
/// it: the peak of lookups in flight (and when it was first reached), and
/// the peak in each eighth of the time the lookups were arriving — a limit
/// that starts fast shows the peak in its first eighths. `None` without
/// lookups.
fn in_flight(mes: &[&Recorded], since: impl Fn(Instant) -> f64) -> Option<String> {
    let first = mes.iter().map(|r| r.at).min()?;
    let last = mes.iter().map(|r| r.at).max()?;
    let peak = mes
        .iter()
        .max_by_key(|r| (r.in_flight, std::cmp::Reverse(r.at)))?;
    let span = last.saturating_duration_since(first);
    let mut eighths = [0usize; 8];
    for r in mes {
        let into = r.at.saturating_duration_since(first);
        let i = if span.is_zero() {
            0
        } else {
            ((into.as_secs_f64() / span.as_secs_f64()) * 8.0) as usize
        };
        let slot = &mut eighths[i.min(7)];
        *slot = (*slot).max(r.in_flight);
    }
    let eighths: Vec<String> = eighths.iter().map(usize::to_string).collect();
    Some(format!(
        "MES lookups in flight: peak {} (first at {:.3}s), peak per eighth of {:.3}s: {}",
        peak.in_flight,
        since(peak.at),
        span.as_secs_f64(),
        eighths.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(at: Instant, in_flight: usize) -> Recorded {
        Recorded {
            method: "GET".into(),
            path: "/mes/Q1".into(),
            headers: Default::default(),
            body: Vec::new(),
            at,
            delay: Duration::from_millis(20),
            status: 200,
            in_flight,
        }
    }

    #[test]
    fn in_flight_shows_the_peak_and_how_fast_the_limit_opened() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // A limit that opens 4 → 64 → 256 over 80 ms, then drains.
        let mes = [
            get(ms(0), 4),
            get(ms(20), 64),
            get(ms(40), 128),
            get(ms(50), 256),
            get(ms(60), 256),
            get(ms(79), 12),
            get(ms(80), 3),
        ];
        let refs: Vec<&Recorded> = mes.iter().collect();
        let shown = in_flight(&refs, |i| secs(i.saturating_duration_since(t0))).unwrap();
        assert_eq!(
            shown,
            "MES lookups in flight: peak 256 (first at 0.050s), \
             peak per eighth of 0.080s: 4 0 64 0 128 256 256 12"
        );
        assert!(in_flight(&[], |_| 0.0).is_none());
    }
}
