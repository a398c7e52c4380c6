//! What the machine is and what it is doing: cores, memory, broker
//! version, the state database's file system, the load and what else runs;
//! CPU time and memory of processes.

use std::path::Path;
use std::process::Command;

/// One line about the machine.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or_else(
            || "?".into(),
            |k| format!("{:.0} GiB", k as f64 / 1024.0 / 1024.0),
        );
    let rabbit = Command::new("rabbitmqctl")
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {mem} RAM, RabbitMQ {rabbit}; broker, edge, simulated agents and stand-in share the cores"
    )
}

/// The file system type of `dir` (`stat -f -c %T`), e.g. `ext2/ext3`, `tmpfs`.
pub(crate) fn fs_type(dir: &Path) -> String {
    Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// `/proc/loadavg` and the busiest other processes (`ps`), to say what
/// else was running.
pub(crate) fn load() -> String {
    let avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let ps = Command::new("ps")
        .args(["-eo", "pcpu,rss,comm", "--sort=-pcpu"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let top: Vec<String> = ps
        .lines()
        .skip(1)
        .take(8)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    format!(
        "load average {}; busiest processes (%CPU RSS-KiB command): {}",
        avg.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        top.join("; ")
    )
}

/// utime + stime of a process in clock ticks (1/100 s on Linux).
pub(crate) fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15 (1-based).
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// A numeric field of `/proc/<pid>/<file>` (e.g. `status`, `VmRSS:`).
pub(crate) fn proc_field(pid: u32, file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l[field.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The whole machine's CPU time so far (`/proc/stat`'s `cpu` line), in
/// clock ticks summed over the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MachineTicks {
    /// user, nice, system, irq and softirq (guests are inside user).
    pub(crate) busy: u64,
    /// idle and iowait.
    pub(crate) idle: u64,
    /// Time a core wanted to run but the hypervisor ran something else.
    pub(crate) stolen: u64,
}

impl MachineTicks {
    /// Now, or `None` where `/proc/stat` cannot be read.
    pub(crate) fn now() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let at = |i: usize| f.get(i).copied().unwrap_or(0);
        Some(MachineTicks {
            busy: at(0) + at(1) + at(2) + at(5) + at(6),
            idle: at(3) + at(4),
            stolen: at(7),
        })
    }

    /// The share of the cores' time between `self` and `later` that the
    /// hypervisor stole, in per cent (`None` if no time passed).
    pub(crate) fn stolen_pct(self, later: Self) -> Option<f64> {
        let stolen = later.stolen.saturating_sub(self.stolen);
        let all =
            later.busy.saturating_sub(self.busy) + later.idle.saturating_sub(self.idle) + stolen;
        (all > 0).then(|| stolen as f64 / all as f64 * 100.0)
    }

    /// What the machine did between `self` and `later`, for a breakdown:
    /// a run that found the cores idle was not limited by CPU, and one
    /// whose cores were stolen by the hypervisor ran slower than the same
    /// work on the same machine at another hour.
    pub(crate) fn shown(self, later: Option<Self>) -> String {
        let Some(later) = later else {
            return "machine CPU s: ?".into();
        };
        let d = |a: u64, b: u64| b.saturating_sub(a) as f64 / 100.0;
        let (busy, idle, stolen) = (
            d(self.busy, later.busy),
            d(self.idle, later.idle),
            d(self.stolen, later.stolen),
        );
        let share = self.stolen_pct(later).unwrap_or(0.0);
        format!(
            "machine CPU s: busy {busy:.2}, idle {idle:.2}, stolen by the hypervisor {stolen:.2} ({share:.0} % of the cores' time)"
        )
    }
}

/// Ticks as seconds, or `?`.
pub(crate) fn tick_span(a: Option<u64>, b: Option<u64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}", b.saturating_sub(a) as f64 / 100.0),
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::MachineTicks;

    #[test]
    fn machine_ticks_read_busy_idle_and_stolen_from_proc_stat() {
        let before = MachineTicks::parse(
            "cpu  100 5 50 1000 20 3 2 10 0 0\ncpu0 50 2 25 500 10 1 1 5 0 0\n",
        )
        .unwrap();
        assert_eq!(
            before,
            MachineTicks {
                busy: 160,
                idle: 1020,
                stolen: 10
            }
        );
        let after = MachineTicks {
            busy: 960,
            idle: 1070,
            stolen: 110,
        };
        assert_eq!(
            before.shown(Some(after)),
            "machine CPU s: busy 8.00, idle 0.50, stolen by the hypervisor 1.00 (11 % of the cores' time)"
        );
        assert_eq!(before.shown(None), "machine CPU s: ?");
        assert_eq!(before.stolen_pct(before), None);
        assert_eq!(MachineTicks::parse("intr 1 2 3\n"), None);
    }
}
