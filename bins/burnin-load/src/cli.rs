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
    /// Only the 10,000-device scenario (for profiling it).
    #[arg(long, conflicts_with_all = ["quick", "no_10k"])]
    pub(crate) only_10k: bool,
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
}
