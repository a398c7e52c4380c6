//! What the edge's own log says about when it got going: it runs with
//! [`EDGE_LOG`], which adds the debug events of burnin-amqp (connected,
//! command published and confirmed) and burnin-store (each transaction,
//! once committed, with when its earliest reply was received) and of
//! burnin-http's MES limit (where its slow start ended, and why) to the
//! warnings; burnin-amqp's also says, when the consumer's channel ends, how
//! many replies it acknowledged in how many `basic.ack` frames. Their times are the edge's wall clock, which the harness
//! shares.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

/// `RUST_LOG` for the edges the harness runs: warnings, plus the debug
/// events read here (one per broker connection, per published command and
/// per store transaction: not per reply).
pub(crate) const EDGE_LOG: &str =
    "warn,burnin_amqp=debug,burnin_store=debug,burnin_http::limit=debug";

/// How burnin-http's limit says its slow start ended (then why, then
/// `limit=N`).
const SLOW_START_ENDED: &str = "MES slow start ended: ";

/// Seconds after the run's start (negative: before it).
type At = f64;

/// The edge's marks of one run.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct EdgeMarks {
    /// Connected to the broker.
    pub(crate) connected: Option<At>,
    /// The scan command was published and confirmed by the broker.
    pub(crate) published: Option<At>,
    /// The first reply was received by the operation (the store's
    /// `first_received_ms` of the first transaction holding a reply).
    pub(crate) first_reply: Option<At>,
    /// That transaction was committed.
    pub(crate) first_commit: Option<At>,
    /// How long its oldest call waited for the writer, and how long it
    /// took to run and commit, milliseconds.
    pub(crate) first_commit_waited_ms: Option<f64>,
    pub(crate) first_commit_took_ms: Option<f64>,
    /// Transactions holding replies, and the replies in them.
    pub(crate) reply_commits: usize,
    pub(crate) replies: usize,
    /// Replies acknowledged, and the `basic.ack` frames that did it
    /// (burnin-amqp batches them; summed over the consumer's channels).
    pub(crate) acks: Option<(usize, usize)>,
    /// The MES limit's slow start ended: when, at which limit, and why.
    pub(crate) slow_start_end: Option<(At, usize, String)>,
}

/// `2026-12-03T09:40:00.123456Z` → the time.
fn timestamp(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(s).ok()
}

/// `key=value` of a text log line (`None` if absent).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Reads the marks from the edge's stderr (text format, as
/// `burnin_cli::init_logging` writes it). `wall0` is the run's start on
/// the wall clock; lines before it (a `serve` started earlier) are
/// skipped.
pub(crate) fn read(stderr: &str, wall0: SystemTime) -> EdgeMarks {
    let since = |t: SystemTime| match t.duration_since(wall0) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    };
    let mut m = EdgeMarks::default();
    for line in stderr.lines() {
        let mut words = line.split_whitespace();
        let (Some(Some(t)), Some("DEBUG")) = (words.next().map(timestamp), words.next()) else {
            continue;
        };
        if t < wall0 {
            continue;
        }
        if let Some(i) = line.find(SLOW_START_ENDED) {
            let rest = &line[i + SLOW_START_ENDED.len()..];
            let why = rest.rsplit_once(" limit=").map_or(rest, |(w, _)| w);
            let limit = field(line, "limit")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            m.slow_start_end
                .get_or_insert((since(t), limit, why.trim().to_owned()));
        } else if line.contains("replies acknowledged on the consumer's channel") {
            let count = |key| field(line, key).and_then(|v| v.parse::<usize>().ok());
            if let (Some(r), Some(f)) = (count("replies"), count("frames")) {
                let (rs, fs) = m.acks.get_or_insert((0, 0));
                (*rs, *fs) = (*rs + r, *fs + f);
            }
        } else if line.contains("connected to the broker") {
            m.connected.get_or_insert(since(t));
        } else if line.contains("scan command published") {
            m.published.get_or_insert(since(t));
        } else if line.contains("state database committed") {
            let replies: usize = field(line, "replies")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if replies == 0 {
                continue;
            }
            m.reply_commits += 1;
            m.replies += replies;
            if m.first_commit.is_none() {
                m.first_commit = Some(since(t));
                m.first_reply = field(line, "first_received_ms")
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(|ms| since(SystemTime::UNIX_EPOCH + Duration::from_millis(ms)));
                m.first_commit_waited_ms = field(line, "waited_ms").and_then(|v| v.parse().ok());
                m.first_commit_took_ms = field(line, "took_ms").and_then(|v| v.parse().ok());
            }
        }
    }
    m
}

impl EdgeMarks {
    /// The breakdown's part: `edge: connected …, command confirmed …,
    /// first reply received …, committed … (waited …, took …), N replies
    /// in M commits`; empty if the log said nothing.
    pub(crate) fn shown(&self) -> String {
        let mut s = String::new();
        let mut mark = |label: &str, at: Option<At>| {
            if let Some(at) = at {
                let sep = if s.is_empty() { "edge: " } else { ", " };
                let _ = write!(s, "{sep}{label} {at:.3}s");
            }
        };
        mark("connected", self.connected);
        mark("command confirmed", self.published);
        mark("first reply received", self.first_reply);
        mark("committed", self.first_commit);
        if let (Some(w), Some(t)) = (self.first_commit_waited_ms, self.first_commit_took_ms) {
            let _ = write!(s, " (waited {w:.1} ms, took {t:.1} ms)");
        }
        if self.reply_commits > 0 {
            let _ = write!(
                s,
                ", {} replies in {} commits",
                self.replies, self.reply_commits
            );
        }
        if let Some((replies, frames)) = self.acks {
            let _ = write!(s, ", {replies} acked in {frames} frames");
        }
        if let Some((at, limit, why)) = &self.slow_start_end {
            let _ = write!(
                s,
                ", MES limit's slow start ended {at:.3}s at {limit} ({why})"
            );
        }
        s
    }
}

/// The edge's stderr without its debug lines (for a problem's text).
pub(crate) fn without_debug(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| l.split_whitespace().nth(1) != Some("DEBUG"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-12-03T09:40:00.010000Z DEBUG connected to the broker url=amqp://127.0.0.1:5672/v generation=1
2026-12-03T09:40:00.020000Z DEBUG state database committed calls=1 replies=0 waited_ms=0.01 took_ms=2.5
2026-12-03T09:40:00.300000Z DEBUG scan command published operation=7
2026-12-03T09:40:00.302000Z  WARN something else
2026-12-03T09:40:00.350000Z DEBUG state database committed calls=40 replies=40 first_received_ms=1796290800310 waited_ms=1.5 took_ms=3.26
2026-12-03T09:40:00.360000Z DEBUG state database committed calls=60 replies=60 first_received_ms=1796290800340 waited_ms=0.5 took_ms=4
2026-12-03T09:40:00.370000Z DEBUG MES slow start ended: a window's latency showed a queue (9.0 ms over a floor of 20.0 ms) limit=128
2026-12-03T09:40:00.380000Z DEBUG MES slow start ended: the limit came down limit=100
2026-12-03T09:40:00.390000Z DEBUG replies acknowledged on the consumer's channel replies=60 frames=4
2026-12-03T09:40:00.400000Z DEBUG replies acknowledged on the consumer's channel replies=40 frames=3
";

    fn wall0() -> SystemTime {
        timestamp("2026-12-03T09:40:00Z").unwrap()
    }

    #[test]
    fn reads_the_marks_of_a_run() {
        let m = read(LOG, wall0());
        let near = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-6);
        assert!(near(m.connected, 0.010), "{m:?}");
        assert!(near(m.published, 0.300), "{m:?}");
        assert!(near(m.first_reply, 0.310), "{m:?}");
        assert!(near(m.first_commit, 0.350), "{m:?}");
        assert_eq!(m.first_commit_waited_ms, Some(1.5));
        assert_eq!(m.first_commit_took_ms, Some(3.26));
        assert_eq!((m.reply_commits, m.replies), (2, 100));
        assert_eq!(m.acks, Some((100, 7)));
        assert_eq!(
            m.shown(),
            "edge: connected 0.010s, command confirmed 0.300s, first reply received 0.310s, \
             committed 0.350s (waited 1.5 ms, took 3.3 ms), 100 replies in 2 commits, \
             100 acked in 7 frames, MES limit's slow start ended 0.370s at 128 (a window's latency showed a queue \
             (9.0 ms over a floor of 20.0 ms))"
        );
    }

    #[test]
    fn lines_before_the_start_and_other_lines_are_skipped() {
        let later = wall0() + Duration::from_millis(100);
        let m = read(LOG, later);
        assert_eq!(m.connected, None, "before the start: {m:?}");
        assert!(m.published.is_some());
        assert_eq!(
            read("not a log line\n\nWARN x", wall0()),
            EdgeMarks::default()
        );
        assert_eq!(EdgeMarks::default().shown(), "");
    }

    #[test]
    fn debug_lines_are_left_out_of_a_problem() {
        assert_eq!(
            without_debug(LOG),
            "2026-12-03T09:40:00.302000Z  WARN something else"
        );
    }
}
