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
    TestVhost::new(label).context("no broker")
}

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

/// The broker's OS process id (`rabbitmqctl eval 'os:getpid().'`).
pub(crate) fn pid() -> Option<String> {
    let out = eval(None, "os:getpid().").ok()?;
    let pid = out.trim().trim_matches('"').to_owned();
    pid.chars().all(|c| c.is_ascii_digit()).then_some(pid)
}
