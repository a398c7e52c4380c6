//! How many replies per second the store commits, one transaction each (as
//! `burnin-edge` does: a reply is acked only after its commit), with
//! `synchronous=FULL` and `NORMAL`, sequentially and from 16 tasks at once.
//!
//! `cargo bench -p burnin-store --bench commit_rate` prints the figures; it
//! asserts nothing.
#![allow(clippy::print_stdout, missing_docs)]

use std::time::Instant;

use burnin_core::{OperationId, OperationParams, OperationStore, Timestamp};
use burnin_store::{Durability, SqliteStore};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let n: usize = std::env::var("BURNIN_BENCH_REPLIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let body = vec![b'x'; 1500]; // a typical reply is 1–2 KiB
    for (name, durability) in [("FULL", Durability::Full), ("NORMAL", Durability::Normal)] {
        for tasks in [1usize, 16] {
            let dir = tempfile::tempdir().expect("tempdir");
            let store =
                SqliteStore::open_with(dir.path().join("bench.sqlite3"), durability).expect("open");
            let id = OperationId::Number(1);
            let now = Timestamp::from_unix_seconds(1_800_000_000);
            let per_task = n / tasks;
            let elapsed = rt.block_on(async {
                store
                    .begin(&OperationParams::new(id.clone()), now, now)
                    .await
                    .expect("begin");
                let start = Instant::now();
                let mut handles = Vec::new();
                for t in 0..tasks {
                    let (store, id, body) = (store.clone(), id.clone(), body.clone());
                    handles.push(tokio::spawn(async move {
                        for i in 0..per_task {
                            let sn = format!("SN-{t}-{i}").parse().expect("sn");
                            store.reply(&id, &sn, &body, now).await.expect("reply");
                        }
                    }));
                }
                for h in handles {
                    h.await.expect("task");
                }
                start.elapsed()
            });
            let done = per_task * tasks;
            println!(
                "synchronous={name:6} tasks={tasks:2}: {done} replies in {:.2} s = {:.0} replies/s ({:.2} ms per commit)",
                elapsed.as_secs_f64(),
                done as f64 / elapsed.as_secs_f64(),
                elapsed.as_secs_f64() * 1000.0 / done as f64,
            );
        }
    }
}
