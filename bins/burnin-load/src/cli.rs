//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// burnin's load harness: burnin (scan and serve, with a state database on
/// disk) beside the Python baseline, and the fault run.
#[derive(Debug, Parser)]
#[command(name = "burnin-load", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Cmd>,
    /// Only 200 devices at 20 ms (durable, in memory, baseline).
    #[arg(long)]
    pub(crate) quick: bool,
    /// Leave out the 10,000-device scenario.
    #[arg(long)]
    pub(crate) no_10k: bool,
    /// Only the 10,000-device scenario (`--runs-10k` times).
    #[arg(long, conflicts_with_all = ["quick", "no_10k"])]
    pub(crate) only_10k: bool,
    /// How many times the 10,000-device scenario runs (on the same agents;
    /// a row each).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub(crate) runs_10k: u32,
    /// Broker connections the simulated burnin agents share (at most one
    /// per device): the shared broker allows ~830 sockets.
    #[arg(long, default_value_t = 100)]
    pub(crate) connections: usize,
    /// Where seed_edge.py and seed_agent.py are (relative paths are tried
    /// from the working directory, then from the repository this binary
    /// was built in).
    #[arg(long, value_name = "DIR", default_value = "bench/baseline")]
    pub(crate) baseline_dir: PathBuf,
    /// Where burnin-edge and burnin-agent are (default: next to this binary).
    #[arg(long, value_name = "DIR")]
    pub(crate) bin_dir: Option<PathBuf>,
    /// Where the edges' state databases go: a folder on the project's disk
    /// (tmpfs is refused: it is not what production commits to).
    #[arg(long, value_name = "DIR", default_value = "target/burnin-load/state")]
    pub(crate) state_dir: PathBuf,
    /// The file this run's raw output is written to (default
    /// `target/burnin-load/<kind>-<UTC time>.txt`).
    #[arg(long, value_name = "FILE")]
    pub(crate) record: Option<PathBuf>,
    /// Passed to burnin-edge as --mes-concurrency-max when it has that flag
    /// (the adaptive MES limiter); otherwise the edge's fixed default runs
    /// and the output says so.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub(crate) mes_concurrency_max: u32,
    /// Passed to every burnin-edge `scan` and `serve` as `--settle`
    /// (default: the edge's own, 500 ms). `0s` ends an operation as soon as
    /// its last expected device replied, which is what a figure of the
    /// pipeline's own speed needs; the record says which was used.
    #[arg(long, value_name = "DURATION")]
    pub(crate) settle: Option<humantime::Duration>,
    /// Sets a RabbitMQ policy `queue-version: 2` on the reply queue
    /// (`hwinfo_queue`) of every vhost the harness makes on the local node
    /// (not the cluster's quorum queue): the classic queue's newer storage
    /// (CQv2; opt-in on RabbitMQ 3.10–3.12, which RabbitMQ recommends from
    /// 3.13), to compare with the default on a factory's own broker. The
    /// record says whether it was set.
    #[arg(long)]
    pub(crate) reply_queue_v2: bool,
    /// A note for the record: what else runs on this machine.
    #[arg(long, value_name = "TEXT")]
    pub(crate) note: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// 1,000 devices; the broker closes the edge's connection and every
    /// tenth agent connection mid-window; checks every device is reported
    /// exactly once and every POST is identical on retry; exit 1 if not.
    Fault {
        /// Devices.
        #[arg(long, default_value_t = 1000)]
        devices: u32,
    },
    /// 3,000 devices spread over the 3 nodes of the project's RabbitMQ
    /// cluster (`scripts/cluster`; started if it is not running, and
    /// stopped again afterwards), MES at 20 ms: the durable `scan` given
    /// every node and `--reply-queue-type quorum`; the table row, then
    /// checks every device is reported exactly once; exit 1 if not.
    Cluster {
        /// Devices.
        #[arg(long, default_value_t = 3000)]
        devices: u32,
        /// Stop the node holding the most agents 1 s into the window
        /// (replies spread over 8 s); it is started again afterwards.
        #[arg(long)]
        stop_node: bool,
        /// The cluster script (relative paths are tried from the working
        /// directory, then from the repository this binary was built in).
        #[arg(long, value_name = "FILE", default_value = "scripts/cluster")]
        cluster_script: PathBuf,
    },
    /// The cost curve: the durable `scan` at 200, 1,000, 2,000, 5,000,
    /// 10,000 and 20,000 devices (MES at 20 ms), each on a fresh vhost:
    /// command to notification, CPU µs per device of the edge, the broker
    /// and the harness, the edge's peak RSS and the broker's RSS; a table
    /// and an SVG chart. A count the broker cannot take ends the curve
    /// there, saying why.
    Curve {
        /// Device counts, in order.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "200,1000,2000,5000,10000,20000"
        )]
        points: Vec<u32>,
        /// MES latency, ms.
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
        /// Where the chart goes (default: the record's path with `.svg`).
        #[arg(long, value_name = "FILE")]
        chart: Option<PathBuf>,
    },
    /// A soak: N operations in a row through one `serve` (state database
    /// on disk, `--keep 1h`), sampling the serve's RSS, the database's
    /// size, the time per operation and the live page's replay buffer
    /// every `--every` operations; a table, an SVG chart, and a verdict on
    /// whether each curve is flat after warm-up. Exit 1 if an operation
    /// failed or a curve grew.
    Soak {
        /// Operations, one after the other.
        #[arg(long, default_value_t = 5000)]
        operations: usize,
        /// Devices per operation (simulated agents).
        #[arg(long, default_value_t = 20)]
        devices: u32,
        /// Sample every this many operations.
        #[arg(long, default_value_t = 500)]
        every: usize,
        /// `serve --settle`: 0s ends each operation as soon as its last
        /// device replied (the default 500 ms would add 42 min to 5,000
        /// operations and measure nothing more).
        #[arg(long, value_name = "DURATION", default_value = "0s")]
        settle: humantime::Duration,
        /// `serve --keep`.
        #[arg(long, value_name = "DURATION", default_value = "1h")]
        keep: humantime::Duration,
        /// Where the chart goes (default: the record's path with `.svg`).
        #[arg(long, value_name = "FILE")]
        chart: Option<PathBuf>,
    },
    /// A fault campaign: N operations in a row through the API of two
    /// `serve` edges (active and standby on one private PostgreSQL) on the
    /// 3-node cluster of `scripts/cluster` (quorum reply queue), 1–3 faults
    /// per operation drawn from the seed at random times (broker node
    /// stopped, active edge SIGKILLed, edge SIGTERMed, PostgreSQL
    /// restarted, agent connections closed, MES 5xx/429/stalls, a factory
    /// endpoint down); then a checker over the recorded history. Exit 1 on
    /// any device lost, doubled or reported otherwise than MES says, or an
    /// operation stuck.
    Chaos {
        /// Operations, one after the other.
        #[arg(long, default_value_t = 50)]
        operations: usize,
        /// The seed the faults are drawn from (default: a random one,
        /// printed, so a failing run can be replayed).
        #[arg(long)]
        seed: Option<u64>,
        /// Devices per operation.
        #[arg(long, default_value_t = 300)]
        devices: u32,
        /// How many of the devices are real `burnin-agent run` processes
        /// (the rest run burnin-amqp's agent adapter in this process).
        #[arg(long, default_value_t = 6)]
        real_agents: u32,
        /// Each operation's window (`windowSecs`).
        #[arg(long, value_name = "DURATION", default_value = "15s")]
        window: humantime::Duration,
        /// The simulated agents' replies are spread over this long after
        /// each command; faults are drawn within the same span.
        #[arg(long, value_name = "DURATION", default_value = "6s")]
        spread: humantime::Duration,
        /// How long past its window an operation may take to be done
        /// before it counts as stuck.
        #[arg(long, value_name = "DURATION", default_value = "30s")]
        bound: humantime::Duration,
        /// Passed to both edges as `--http-retries N` (default: the
        /// edge's own default).
        #[arg(long, value_name = "N")]
        http_retries: Option<u32>,
        /// Print the schedule of faults and stop.
        #[arg(long)]
        plan_only: bool,
        /// The cluster script (relative paths are tried from the working
        /// directory, then from the repository this binary was built in).
        #[arg(long, value_name = "FILE", default_value = "scripts/cluster")]
        cluster_script: PathBuf,
    },
}
