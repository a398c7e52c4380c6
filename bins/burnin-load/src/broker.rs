//! The local broker: limits, throw-away vhosts, and broker-side connection
//! closes for the fault run.

use std::process::Command;

use anyhow::{Context as _, bail};
use burnin_testkit::vhost::TestVhost;

/// Raises this process's open-file soft limit to its hard limit (each
/// simulated agent holds a socket); returns the new soft limit.
pub(crate) fn raise_nofile() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    if let Some(max) = lim.maximum {
        let want = Rlimit {
            current: Some(max),
            maximum: Some(max),
        };
        if setrlimit(Resource::Nofile, want).is_ok() {
            return max;
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// A fresh vhost on the local broker, or an error saying how to get one.
pub(crate) fn vhost(label: &str) -> anyhow::Result<TestVhost> {
    if let Some(why) = burnin_testkit::vhost::broker_unavailable() {
        bail!(
            "the load harness needs the local RabbitMQ broker: {why}. \
             Run scripts/setup (it installs and starts RabbitMQ on 127.0.0.1:5672), then try again."
        );
    }
    let v = TestVhost::new(label).context("no broker")?;
    if REPLY_QUEUE_V2.get().copied().unwrap_or(false) {
        v.ctl(&REPLY_QUEUE_V2_POLICY.map(|a| if a == VHOST { v.name() } else { a }));
    }
    Ok(v)
}

/// Whether every vhost gets [`REPLY_QUEUE_V2_POLICY`] (`--reply-queue-v2`;
/// set once, at the start).
pub(crate) static REPLY_QUEUE_V2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Stands for the vhost's name in [`REPLY_QUEUE_V2_POLICY`].
const VHOST: &str = "<vhost>";

/// The policy `--reply-queue-v2` sets (the reply queue on CQv2), as
/// `rabbitmqctl` arguments.
pub(crate) const REPLY_QUEUE_V2_POLICY: [&str; 8] = [
    "set_policy",
    "-p",
    VHOST,
    "--apply-to",
    "queues",
    "burnin-reply-queue",
    "^hwinfo_queue$",
    r#"{"queue-version":2}"#,
];

/// The broker's socket limit (`rabbitmqctl status`: "Sockets: N, limit: M").
pub(crate) fn socket_limit() -> Option<u64> {
    let out = Command::new("rabbitmqctl").arg("status").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("Sockets:"))?;
    let limit = line.split("limit:").nth(1)?;
    limit
        .trim()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

/// Checks that the broker accepts `n` more connections.
pub(crate) fn check_socket_limit(n: u64) -> anyhow::Result<()> {
    match socket_limit() {
        Some(limit) if limit < n + 50 => bail!(
            "the broker allows only {limit} sockets and this run needs {n} connections. \
             Restart it with a higher open-file limit, e.g. \
             `rabbitmqctl stop; su rabbitmq -s /bin/sh -c 'ulimit -n 20000; rabbitmq-server -detached'` \
             (scripts/setup starts it that way), or run fewer devices."
        ),
        _ => Ok(()),
    }
}

/// Runs `rabbitmqctl eval EXPR` (on `node`, else the local broker) and
/// returns its output.
fn eval(node: Option<&str>, expr: &str) -> anyhow::Result<String> {
    let mut cmd = Command::new("rabbitmqctl");
    if let Some(node) = node {
        cmd.args(["-n", node]);
    }
    let out = cmd
        .args(["eval", expr])
        .output()
        .context("running rabbitmqctl eval")?;
    if !out.status.success() {
        bail!(
            "rabbitmqctl eval failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Closes, broker-side, every connection of `vhost` whose client-provided
/// name is one of `names` (exactly): what `rabbitmqctl close_connection`
/// does, for many connections in one call (one `rabbitmqctl` start per
/// connection would take a second each). `node` is the node to ask (a
/// cluster node: it closes connections on every node of its cluster),
/// else the local broker. Returns the names of the connections closed.
pub(crate) fn close_connections(
    node: Option<&str>,
    vhost: &str,
    names: &[String],
) -> anyhow::Result<Vec<String>> {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let list = names
        .iter()
        .map(|n| format!("<<\"{}\">>", esc(n)))
        .collect::<Vec<_>>()
        .join(",");
    let expr = format!(
        r#"V = <<"{vhost}">>, Names = [{list}],
Name = fun(I) -> case lists:keyfind(<<"connection_name">>, 1, proplists:get_value(client_properties, I, [])) of
    {{_, longstr, N}} -> N; _ -> <<>> end end,
Ps = [{{proplists:get_value(pid, I), Name(I)}} || I <- rabbit_networking:connection_info_all([pid, vhost, client_properties]),
  proplists:get_value(vhost, I) =:= V, lists:member(Name(I), Names)],
[rabbit_networking:close_connection(P, "burnin-load fault injection") || {{P, _}} <- Ps],
iolist_to_binary(lists:join(<<"|">>, [N || {{_, N}} <- Ps]))."#,
        vhost = esc(vhost),
    );
    let out = eval(node, &expr)?;
    let joined: String = out.split_whitespace().collect::<Vec<_>>().join(" ");
    let inner = joined
        .strip_prefix("<<\"")
        .and_then(|s| s.strip_suffix("\">>"))
        .with_context(|| format!("unexpected rabbitmqctl eval output {out:?}"))?;
    Ok(inner
        .split('|')
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The broker's CPU share, sampled over this long, below which it counts
/// as idle.
const IDLE_SAMPLE: std::time::Duration = std::time::Duration::from_millis(500);
/// Below this share of one core, the broker counts as idle.
const IDLE_SHARE: f64 = 0.10;
/// The longest wait for an idle broker before a group starts anyway.
const IDLE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits until the broker is idle (under a tenth of a core over half a
/// second), at most a minute, and says how long that took. Deleting the
/// previous group's vhost (thousands of queues) keeps it busy for seconds
/// afterwards, and a group measured meanwhile would pay for the previous
/// one's clean-up. Returns at once when the broker's process cannot be
/// found.
pub(crate) async fn wait_idle(what: &str) {
    let Some(pid) = pid() else { return };
    let start = std::time::Instant::now();
    for sample in 1.. {
        let before = crate::sample::cpu_ticks(&pid);
        tokio::time::sleep(IDLE_SAMPLE).await;
        let share = match (before, crate::sample::cpu_ticks(&pid)) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 100.0 / IDLE_SAMPLE.as_secs_f64(),
            _ => return,
        };
        if share < IDLE_SHARE {
            let waited = start.elapsed();
            if sample > 1 {
                crate::record::say!(
                    "{what}: waited {:.1} s for the broker to go idle (the previous group's clean-up)",
                    waited.as_secs_f64()
                );
            }
            return;
        }
        if start.elapsed() >= IDLE_WAIT {
            crate::record::say!(
                "{what}: the broker is still busy ({:.0} % of a core) after {} s; going on",
                share * 100.0,
                IDLE_WAIT.as_secs()
            );
            return;
        }
    }
}

/// The broker's OS process id (`rabbitmqctl eval 'os:getpid().'`).
pub(crate) fn pid() -> Option<String> {
    let out = eval(None, "os:getpid().").ok()?;
    let pid = out.trim().trim_matches('"').to_owned();
    pid.chars().all(|c| c.is_ascii_digit()).then_some(pid)
}

/// The broker's own message counters (RabbitMQ's global counters, what its
/// Prometheus plugin exports as `rabbitmq_global_*`; read with `rabbitmqctl
/// eval`, so no plugin is needed). Node-wide and summed over classic and
/// quorum queues: a difference of two readings is what the broker did in
/// between, for everyone on the node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Messages published to the broker.
    pub(crate) published: u64,
    /// Of those, published on a channel in confirm mode.
    pub(crate) published_confirm: u64,
    /// Messages put in a queue: a publish fanned out to N queues counts N.
    pub(crate) routed: u64,
    /// Publisher confirms sent.
    pub(crate) confirmed: u64,
    /// Messages delivered to consumers (with or without acks: RabbitMQ
    /// 3.10 does not fill in its counters that tell them apart).
    pub(crate) delivered: u64,
    /// Consumer acks received.
    pub(crate) acked: u64,
    /// Deliveries that were redeliveries.
    pub(crate) redelivered: u64,
}

impl Counters {
    /// Reads them from the local broker (or `node`).
    pub(crate) fn read(node: Option<&str>) -> anyhow::Result<Counters> {
        let expr = r"M = rabbit_global_counters:overview(),
P = maps:get([{protocol, amqp091}], M),
Qs = [V || {[{protocol, amqp091}, {queue_type, _}], V} <- maps:to_list(M)],
S = fun(K) -> lists:sum([maps:get(K, Q, 0) || Q <- Qs]) end,
{maps:get(messages_received_total, P), maps:get(messages_received_confirm_total, P),
 maps:get(messages_routed_total, P), maps:get(messages_confirmed_total, P),
 S(messages_delivered_total), S(messages_acknowledged_total), S(messages_redelivered_total)}.";
        let out = eval(node, expr)?;
        Self::parse(&out).with_context(|| format!("unexpected rabbitmqctl eval output {out:?}"))
    }

    fn parse(out: &str) -> Option<Counters> {
        let inner: String = out.chars().filter(|c| !c.is_whitespace()).collect();
        let v: Vec<u64> = inner
            .strip_prefix('{')?
            .strip_suffix('}')?
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let [
            published,
            published_confirm,
            routed,
            confirmed,
            delivered,
            acked,
            redelivered,
        ] = v[..]
        else {
            return None;
        };
        Some(Counters {
            published,
            published_confirm,
            routed,
            confirmed,
            delivered,
            acked,
            redelivered,
        })
    }

    /// What happened between `before` and `self`.
    pub(crate) fn since(&self, before: &Counters) -> Counters {
        Counters {
            published: self.published.saturating_sub(before.published),
            published_confirm: self
                .published_confirm
                .saturating_sub(before.published_confirm),
            routed: self.routed.saturating_sub(before.routed),
            confirmed: self.confirmed.saturating_sub(before.confirmed),
            delivered: self.delivered.saturating_sub(before.delivered),
            acked: self.acked.saturating_sub(before.acked),
            redelivered: self.redelivered.saturating_sub(before.redelivered),
        }
    }

    /// Per device, as `published 1.00 (in confirm mode 1.00), …`.
    pub(crate) fn per_device(&self, devices: u32) -> String {
        let n = f64::from(devices.max(1));
        let f = |v: u64| v as f64 / n;
        format!(
            "published {:.2} (in confirm mode {:.2}), put in queues {:.2}, confirms {:.2}, deliveries {:.2}, acks {:.2}, redeliveries {:.2}",
            f(self.published),
            f(self.published_confirm),
            f(self.routed),
            f(self.confirmed),
            f(self.delivered),
            f(self.acked),
            f(self.redelivered),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_from_the_eval_tuple_and_subtract() {
        let a = Counters::parse("{10,9,10,\n 9,20,18,1}").unwrap();
        assert_eq!(a.published, 10);
        assert_eq!(a.delivered, 20);
        assert_eq!(a.redelivered, 1);
        let b = Counters::parse("{1010,1009,2010,1009,2020,1018,1}").unwrap();
        let d = b.since(&a);
        assert_eq!(
            (d.published, d.routed, d.delivered, d.acked),
            (1000, 2000, 2000, 1000)
        );
        assert!(
            d.per_device(1000)
                .starts_with("published 1.00 (in confirm mode 1.00)")
        );
        assert_eq!(Counters::parse("{1,2,3}"), None);
        assert_eq!(Counters::parse("error"), None);
    }
}
