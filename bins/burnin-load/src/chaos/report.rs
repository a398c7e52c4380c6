//! The campaign's tables: operations, faults by kind, and the summary.

use std::time::Duration;

use super::Campaign;
use super::checker::{History, Verdict};
use super::nemesis::Injection;
use super::plan::{Fault, Kind};
use crate::record::say;

pub(crate) struct Report<'a> {
    pub(crate) campaign: &'a Campaign,
    pub(crate) verdict: &'a Verdict,
    pub(crate) injections: &'a [Injection],
    pub(crate) history: &'a History,
    /// The status of every MES lookup.
    pub(crate) mes_statuses: &'a [u16],
    pub(crate) hints: u32,
    pub(crate) edge_starts: [u32; 2],
}

fn short(f: &Fault) -> String {
    match f {
        Fault::NodeStop { node, .. } => format!("stop mq{node}"),
        Fault::KillActive => "kill active".into(),
        Fault::TermEdge { active: true } => "term active".into(),
        Fault::TermEdge { active: false } => "term standby".into(),
        Fault::PgRestart => "pg restart".into(),
        Fault::CloseAgents { .. } => "close 10%".into(),
        Fault::Mes5xx { status, .. } => format!("mes {status}"),
        Fault::Mes429 { .. } => "mes 429".into(),
        Fault::MesStall { .. } => "mes stall".into(),
        Fault::FactoryDown { path } => format!("{path} down"),
    }
}

/// The nearest-rank percentile `p` (0–100) of `xs`.
pub(crate) fn percentile(xs: &[Duration], p: f64) -> Option<Duration> {
    let mut v = xs.to_vec();
    v.sort();
    if v.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("—".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

pub(crate) fn print(r: &Report<'_>) {
    let c = r.campaign;
    say!();
    say!(
        "Operations ({} devices each; faults: seconds after POST /scans, `!` = not injected)",
        c.devices
    );
    say!("| op | faults | finished | state | POSTs | lost | doubled | wrong | verdict |");
    say!("| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | --- |");
    for (k, (o, h)) in r.verdict.ops.iter().zip(&r.history.ops).enumerate() {
        let faults: Vec<String> = r
            .injections
            .iter()
            .filter(|i| i.op == k)
            .map(|i| {
                format!(
                    "{}{:.1} {}",
                    if i.injected() { "" } else { "!" },
                    i.planned.at.as_secs_f64(),
                    short(&i.planned.fault)
                )
            })
            .collect();
        say!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            o.op,
            faults.join(", "),
            secs(o.took),
            h.finished.as_ref().map_or("—", |(_, s)| s.as_str()),
            o.posts,
            o.lost,
            o.duplicated,
            o.wrong,
            if o.problems.is_empty() {
                "ok"
            } else if o.stuck {
                "STUCK"
            } else {
                "FAILED"
            }
        );
    }
    say!();
    say!("Faults by kind");
    say!("| kind | planned | injected | of which while its operation ran | not injected |");
    say!("| --- | ---: | ---: | ---: | ---: |");
    // Injected before the API showed its operation finished (an
    // operation never seen finished: every injection counts).
    let during = |i: &Injection| match (i.at, r.history.ops.get(i.op)) {
        (Some(at), Some(op)) => op.finished.as_ref().is_none_or(|(end, _)| at <= *end),
        _ => false,
    };
    let (mut planned, mut injected, mut inside) = (0, 0, 0);
    for kind in Kind::ALL {
        let of: Vec<&Injection> = r
            .injections
            .iter()
            .filter(|i| i.planned.fault.kind() == kind)
            .collect();
        let ok = of.iter().filter(|i| i.injected()).count();
        let ran = of.iter().filter(|i| during(i)).count();
        planned += of.len();
        injected += ok;
        inside += ran;
        say!(
            "| {} | {} | {ok} | {ran} | {} |",
            kind.name(),
            of.len(),
            of.len() - ok
        );
    }
    say!(
        "| all | {planned} | {injected} | {inside} | {} |",
        planned - injected
    );
    for i in r.injections.iter().filter(|i| !i.injected()) {
        say!(
            "not injected: op {} {}: {}",
            i.op + 1,
            i.planned.fault,
            i.what
        );
    }
    let takeovers: Vec<Duration> = r
        .injections
        .iter()
        .filter(|i| {
            matches!(
                i.planned.fault,
                Fault::KillActive | Fault::TermEdge { active: true }
            )
        })
        .filter_map(|i| i.takeover)
        .collect();
    let pg_back: Vec<Duration> = r
        .injections
        .iter()
        .filter(|i| i.planned.fault == Fault::PgRestart)
        .filter_map(|i| i.takeover)
        .collect();
    let slowest = r
        .verdict
        .ops
        .iter()
        .filter_map(|o| o.took.map(|t| (t, &o.op)))
        .max();
    let refused = r
        .mes_statuses
        .iter()
        .filter(|s| !matches!(s, 200 | 404))
        .count();
    let posts = &r.history.posts;
    let posts_refused = posts
        .iter()
        .filter(|p| !(200..300).contains(&p.status))
        .count();
    let v = r.verdict;
    say!();
    say!("Summary");
    say!("| | |");
    say!("| --- | --- |");
    say!("| operations | {} |", v.ops.len());
    say!(
        "| faults injected | {injected} of {planned} planned ({inside} while their operation ran) |"
    );
    say!("| lost (devices missing from a payload) | {} |", v.lost());
    say!(
        "| duplicated (devices twice, payloads under two keys or bodies) | {} |",
        v.duplicated()
    );
    say!("| results other than MES says | {} |", v.wrong());
    say!(
        "| stuck (not done within window {} s + bound {} s, or still running) | {} |",
        c.window.as_secs(),
        c.bound.as_secs(),
        v.stuck()
    );
    say!(
        "| takeover after the active edge was stopped (n = {}) | p50 {}, p99 {} |",
        takeovers.len(),
        secs(percentile(&takeovers, 50.0)),
        secs(percentile(&takeovers, 99.0))
    );
    say!(
        "| an edge active again after PostgreSQL restarted (n = {}) | p50 {}, p99 {} |",
        pg_back.len(),
        secs(percentile(&pg_back, 50.0)),
        secs(percentile(&pg_back, 99.0))
    );
    say!(
        "| slowest finish (POST to done) | {} |",
        slowest.map_or("—".into(), |(t, op)| format!(
            "{:.2} s (op {op})",
            t.as_secs_f64()
        ))
    );
    say!(
        "| MES lookups | {} ({refused} answered with an injected error) |",
        r.mes_statuses.len()
    );
    say!(
        "| factory POSTs | {} ({posts_refused} refused by a fault, retried) |",
        posts.len()
    );
    say!(
        "| client sent to the active edge by a standby's hint | {} times |",
        r.hints
    );
    say!(
        "| edge starts | A {}, B {} |",
        r.edge_starts[0],
        r.edge_starts[1]
    );
    say!();
    for p in &v.problems {
        say!("PROBLEM: {p}");
    }
    for o in &v.ops {
        for p in &o.problems {
            say!("PROBLEM: op {}: {p}", o.op);
        }
    }
    if v.passed() {
        say!(
            "chaos: every check passed: {} operations, {injected} faults injected, nothing lost, doubled or stuck (seed {})",
            v.ops.len(),
            c.seed
        );
    } else {
        say!("chaos: FAILED (seed {}; replay: {})", c.seed, c.replay());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let xs = ms(&[500, 100, 300, 200, 400]);
        assert_eq!(percentile(&xs, 50.0), Some(Duration::from_millis(300)));
        assert_eq!(percentile(&xs, 99.0), Some(Duration::from_millis(500)));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
