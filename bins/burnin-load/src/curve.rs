//! The cost curve, `burnin-load curve`: the durable `scan` (state database
//! on disk) at growing device counts, MES at 20 ms, each count on a fresh
//! vhost with its own simulated agents. Per point: command to
//! notification, CPU seconds per device of the edge, the broker and the
//! harness (agents and stand-in), the edge's peak RSS and the broker's
//! RSS while the agents are connected, and the broker's own message
//! counters per device (publishes, confirms, deliveries, acks). A table and an SVG chart; a point
//! that cannot run (the broker refusing queues or connections, say) ends
//! the curve there, and the record says where and why.

use std::path::PathBuf;
use std::time::Duration;

use crate::agents::{self, Sim};
use crate::analysis::Timing;
use crate::broker;
use crate::chart::{self, Series};
use crate::record::say;
use crate::scenarios::factory_for;
use crate::spawn::{self, Env, Store};

/// What the curve is asked to do.
pub(crate) struct Curve {
    pub(crate) points: Vec<u32>,
    pub(crate) latency_ms: u64,
    pub(crate) connections: usize,
    pub(crate) chart: PathBuf,
}

/// One point of the curve.
#[derive(Debug, Clone, Default)]
pub(crate) struct Point {
    pub(crate) devices: u32,
    pub(crate) timing: Timing,
    /// The broker's RSS with the agents connected, KiB.
    pub(crate) broker_rss_kib: Option<u64>,
    /// What the broker did during the scan (its own counters).
    pub(crate) broker_work: Option<broker::Counters>,
}

impl Point {
    /// CPU µs per device of one side.
    fn per_device(&self, s: Option<f64>) -> Option<f64> {
        s.map(|s| s * 1e6 / f64::from(self.devices.max(1)))
    }
}

fn us(v: Option<f64>) -> String {
    v.map_or("?".into(), |v| format!("{v:.0}"))
}

fn mib(v: Option<u64>) -> String {
    v.map_or("?".into(), |v| format!("{:.1}", v as f64 / 1024.0))
}

/// The table row of `p`.
pub(crate) fn row(p: &Point) -> String {
    let t = &p.timing;
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} |{}",
        p.devices,
        t.shown(),
        us(p.per_device(t.cpu.edge)),
        us(p.per_device(t.cpu.broker)),
        us(p.per_device(t.cpu.harness)),
        mib(t.edge_peak_rss_kib),
        mib(p.broker_rss_kib),
        t.cpu.stolen_pct.map_or("?".into(), |s| format!("{s:.0}")),
        t.problem
            .as_deref()
            .map_or(String::new(), |why| format!(" PROBLEM: {why}"))
    )
}

/// The chart of `points`: time, CPU per device by side, memory.
pub(crate) fn draw(points: &[Point], latency_ms: u64) -> String {
    let line = |f: &dyn Fn(&Point) -> Option<f64>| -> Vec<(f64, f64)> {
        points
            .iter()
            .filter_map(|p| Some((f64::from(p.devices), f(p)?)))
            .collect()
    };
    let panels = vec![
        Series::one("command to notification (s)", line(&|p| p.timing.notify_s)),
        Series {
            title: "CPU per device (µs)".into(),
            name: "edge".into(),
            points: line(&|p| p.per_device(p.timing.cpu.edge)),
            others: vec![
                (
                    "broker".into(),
                    line(&|p| p.per_device(p.timing.cpu.broker)),
                ),
                (
                    "harness (agents + stand-in)".into(),
                    line(&|p| p.per_device(p.timing.cpu.harness)),
                ),
            ],
        },
        Series {
            title: "memory (MiB)".into(),
            name: "edge peak RSS".into(),
            points: line(&|p| p.timing.edge_peak_rss_kib.map(|k| k as f64 / 1024.0)),
            others: vec![(
                "broker RSS, agents connected".into(),
                line(&|p| p.broker_rss_kib.map(|k| k as f64 / 1024.0)),
            )],
        },
    ];
    chart::svg(
        &format!("burnin-edge scan, durable: cost by devices (MES {latency_ms} ms)"),
        "devices",
        &panels,
    )
}

/// Runs it; true if every point ran and reported every device.
pub(crate) async fn run(env: &Env, c: &Curve) -> anyhow::Result<bool> {
    say!(
        "curve: durable scan at {:?} devices, MES at {} ms, agents over at most {} connections",
        c.points,
        c.latency_ms,
        c.connections
    );
    say!(
        "| devices | command to notification (s) | edge CPU µs/device | broker CPU µs/device | harness CPU µs/device | edge peak RSS (MiB) | broker RSS (MiB) | CPU stolen by the hypervisor (%) |"
    );
    say!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut points = Vec::new();
    let mut ok = true;
    for (k, &n) in c.points.iter().enumerate() {
        let devices: Vec<Sim> = (0..n).map(|i| Sim::new("CURVE", i)).collect();
        broker::wait_idle(&format!("{n} devices")).await;
        let v = broker::vhost(&format!("load-curve-{n}"))?;
        let f = factory_for(&devices, c.latency_ms)?;
        let fleet = match agents::start_burnin(
            &[v.url()],
            &devices,
            c.connections,
            |_| Duration::ZERO,
            |i| format!("burnin-load curve agents {i}"),
        )
        .await
        {
            Ok(fleet) => fleet,
            Err(e) => {
                say!("the curve stops before {n} devices: {e:#}");
                ok = false;
                break;
            }
        };
        let broker_rss_kib = broker::pid()
            .and_then(|p| p.parse().ok())
            .and_then(|p| crate::sample::proc_field(p, "status", "VmRSS:"));
        let window = format!("{}s", 60 + n / 100);
        let counters = broker::Counters::read(None);
        let run = spawn::scan(
            env,
            &spawn::Broker::local(&v),
            &f,
            &devices,
            8_000_000 + k as u64,
            &window,
            Store::Disk,
        )
        .await;
        let broker_work = match (counters, broker::Counters::read(None)) {
            (Ok(before), Ok(after)) => Some(after.since(&before)),
            (Err(e), _) | (_, Err(e)) => {
                say!("  the broker's counters could not be read: {e:#}");
                None
            }
        };
        fleet.stop().await;
        let run = match run {
            Ok(run) => run,
            Err(e) => {
                say!("the curve stops at {n} devices: {e:#}");
                ok = false;
                break;
            }
        };
        let point = Point {
            devices: n,
            timing: run.timing,
            broker_rss_kib,
            broker_work,
        };
        ok &= point.timing.problem.is_none();
        say!("{}", row(&point));
        say!("  {n} devices: {}", point.timing.phases);
        if let Some(w) = &point.broker_work {
            say!("  {n} devices, broker work per device: {}", w.per_device(n));
        }
        points.push(point);
    }
    std::fs::write(&c.chart, draw(&points, c.latency_ms))
        .map_err(|e| anyhow::anyhow!("cannot write the chart {}: {e}", c.chart.display()))?;
    say!("chart: {}", c.chart.display());
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Cpu;

    #[test]
    fn rows_and_chart_show_each_side_per_device() {
        let p = Point {
            devices: 1000,
            timing: Timing {
                notify_s: Some(0.5),
                cpu: Cpu {
                    edge: Some(0.1),
                    broker: Some(0.3),
                    harness: None,
                    stolen_pct: Some(7.4),
                },
                edge_peak_rss_kib: Some(20 * 1024),
                ..Timing::default()
            },
            broker_rss_kib: Some(300 * 1024),
            broker_work: None,
        };
        assert_eq!(
            row(&p),
            "| 1000 | 0.500 | 100 | 300 | ? | 20.0 | 300.0 | 7 |"
        );
        let svg = draw(&[p], 20);
        assert!(svg.contains(">broker</text>"), "{svg}");
        // A side that could not be read is left out, not drawn as 0.
        assert_eq!(svg.matches("<circle").count(), 1 + 2 + 2);
    }
}
