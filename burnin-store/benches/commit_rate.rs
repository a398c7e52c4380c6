//! How many replies per second the store commits durably, with group
//! commit: `K` replies in flight at once (as `burnin-edge` keeps them: each
//! is acked only after its commit), `synchronous=FULL` and `NORMAL`, one
//! operation or several sharing the store.
//!
//! The database lives on the project's disk (`CARGO_TARGET_TMPDIR`, i.e.
//! `target/tmp`, or `BURNIN_BENCH_DIR`), never on tmpfs: the bench prints the
//! file system it used and refuses tmpfs/ramfs, where an fsync costs
//! nothing. `BURNIN_BENCH_REPLIES` sets the replies per run (default
//! 20,000; 2,000 with one in flight).
//!
//! `cargo bench -p burnin-store --bench commit_rate` prints the figures; it
//! asserts nothing.
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use burnin_core::{OperationId, OperationParams, OperationStore, Timestamp};
use burnin_store::{Durability, SqliteStore};

/// The mount (file system type, device, mount point) holding `path`.
fn mount_of(path: &Path) -> Option<(String, String, String)> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, point, fs) = (f.next()?, f.next()?, f.next()?);
            let point = point.replace("\\040", " ");
            path.starts_with(&point)
                .then(|| (fs.to_owned(), dev.to_owned(), point))
        })
        .max_by_key(|(_, _, point)| point.len())
}

/// Runs per scenario; the median is the figure (the machine is shared).
const ROUNDS: usize = 3;

struct Run {
    replies: usize,
    elapsed: f64,
    transactions: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.replies as f64 / self.elapsed
    }
}

/// `ops` operations with `in_flight` replies each in flight, `total`
/// replies in all, on a fresh database in `dir`.
fn run_once(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    durability: Durability,
    ops: usize,
    in_flight: usize,
    total: usize,
    body: &[u8],
) -> Run {
    let file = tempfile::Builder::new()
        .prefix("commit-rate-")
        .tempdir_in(dir)
        .expect("tempdir");
    let store =
        SqliteStore::open_with(file.path().join("bench.sqlite3"), durability).expect("open");
    let now = Timestamp::from_unix_seconds(1_800_000_000);
    let per_task = total / (ops * in_flight);
    rt.block_on(async {
        for op in 0..ops {
            let id = OperationId::Number(op as u64);
            store
                .begin(&OperationParams::new(id), now, now)
                .await
                .expect("begin");
        }
        let before = store.write_stats();
        let start = Instant::now();
        let mut handles = Vec::new();
        for op in 0..ops {
            for t in 0..in_flight {
                let (store, body) = (store.clone(), body.to_vec());
                let id = OperationId::Number(op as u64);
                handles.push(tokio::spawn(async move {
                    for i in 0..per_task {
                        let sn = format!("SN-{t}-{i}").parse().expect("sn");
                        store.reply(&id, &sn, &body, now).await.expect("reply");
                    }
                }));
            }
        }
        for h in handles {
            h.await.expect("task");
        }
        let elapsed = start.elapsed().as_secs_f64();
        let after = store.write_stats();
        Run {
            replies: per_task * in_flight * ops,
            elapsed,
            transactions: after.transactions - before.transactions,
        }
    })
}

fn main() {
    let dir: PathBuf = std::env::var_os("BURNIN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&dir).expect("bench dir");
    match mount_of(&dir) {
        Some((fs, dev, point)) => {
            println!(
                "database folder {}: file system {fs} on {dev} (mounted at {point})",
                dir.display()
            );
            if fs == "tmpfs" || fs == "ramfs" {
                eprintln!(
                    "{} is on {fs}, where fsync costs nothing; set BURNIN_BENCH_DIR to a folder on a disk",
                    dir.display()
                );
                std::process::exit(2);
            }
        }
        None => println!(
            "database folder {}: file system unknown (no /proc/mounts)",
            dir.display()
        ),
    }
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "cpus {}, load average at start: {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        load().trim()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let n: usize = std::env::var("BURNIN_BENCH_REPLIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let body = vec![b'x'; 1500]; // a typical reply is 1–2 KiB
    for (name, durability) in [("FULL", Durability::Full), ("NORMAL", Durability::Normal)] {
        // (operations, replies in flight per operation)
        for (ops, in_flight) in [(1usize, 1usize), (1, 16), (1, 256), (1, 1024), (4, 256)] {
            let total = if in_flight == 1 { n.min(2000) } else { n };
            let mut rates = Vec::new();
            for round in 1..=ROUNDS {
                let run = run_once(&rt, &dir, durability, ops, in_flight, total, &body);
                println!(
                    "synchronous={name:6} operations={ops} in-flight={in_flight:4}/op round {round}: {:6} replies in {:6.3} s = {:7.0} replies/s, {:5} transactions ({:6.1} replies each, {:.2} ms per commit)",
                    run.replies,
                    run.elapsed,
                    run.rate(),
                    run.transactions,
                    run.replies as f64 / run.transactions.max(1) as f64,
                    run.elapsed * 1000.0 / run.transactions.max(1) as f64,
                );
                rates.push(run.rate());
            }
            rates.sort_by(f64::total_cmp);
            println!(
                "synchronous={name:6} operations={ops} in-flight={in_flight:4}/op MEDIAN {:7.0} replies/s (min {:.0}, max {:.0})",
                rates[rates.len() / 2],
                rates[0],
                rates[rates.len() - 1]
            );
        }
    }
    println!("load average at end: {}", load().trim());
}
