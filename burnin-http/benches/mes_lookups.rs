//! MES lookup throughput: 1,000 lookups at concurrency 64 against a local
//! server that adds 20 ms to every answer. Prints figures; asserts nothing.
//!
//! Run with `cargo bench -p burnin-http --bench mes_lookups`. The lower
//! bound is `ceil(1000 / 64) × 20 ms = 320 ms` (1000 × 20 ms / 64 = 312.5 ms
//! if the batches could be split); anything close to it means the bound,
//! not the client, limits throughput. Server and client share the
//! machine's cores, so the figure includes the server's own cost.
#![allow(clippy::print_stdout, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use burnin_core::{MesAnswer, MesSource, SerialNumber};
use burnin_http::{HttpConfig, HttpMesSource};

const LOOKUPS: usize = 1000;
const BOUND: usize = 64;
const LATENCY: Duration = Duration::from_millis(20);
const RUNS: usize = 7;

async fn one_run(mes: &Arc<HttpMesSource>, serials: &[SerialNumber]) -> Duration {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for sn in serials {
        let (mes, sn) = (mes.clone(), sn.clone());
        tasks.spawn(async move { mes.lookup(&sn).await });
    }
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(MesAnswer::Record(_))) => {}
            other => panic!("lookup failed: {other:?}"),
        }
    }
    started.elapsed()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let server = common::SlowMes::start(LATENCY).await;
        let config = HttpConfig::builder(server.template(), "http://127.0.0.1:9/l", "http://127.0.0.1:9/n")
            .mes_concurrency(BOUND)
            // The fixed bound this bench measures; the adaptive limit
            // (which would grow past 64 against this flat MES) is measured
            // by the load harness and tested in tests/http.rs.
            .mes_concurrency_max(BOUND)
            .build()
            .expect("config");
        let mes = Arc::new(HttpMesSource::new(&config).expect("client"));
        let serials: Vec<SerialNumber> = (0..LOOKUPS)
            .map(|i| format!("SN{i:06}").parse().expect("serial"))
            .collect();

        // Warm-up: opens the pooled connections.
        let warm = one_run(&mes, &serials).await;
        let mut times = Vec::new();
        for _ in 0..RUNS {
            times.push(one_run(&mes, &serials).await);
        }
        times.sort();
        let bound = LATENCY * LOOKUPS.div_ceil(BOUND) as u32;
        let ideal = LATENCY.as_secs_f64() * LOOKUPS as f64 / BOUND as f64;
        println!("burnin-http MES lookups: {LOOKUPS} lookups, concurrency {BOUND}, server latency {LATENCY:?}");
        println!("  warm-up run (connecting): {:.3} s", warm.as_secs_f64());
        println!(
            "  {RUNS} runs: min {:.3} s, median {:.3} s, max {:.3} s",
            times[0].as_secs_f64(),
            times[RUNS / 2].as_secs_f64(),
            times[RUNS - 1].as_secs_f64()
        );
        println!(
            "  bound: {LOOKUPS} x {} ms / {BOUND} = {ideal:.4} s ({} rounds: {:.3} s)",
            LATENCY.as_millis(),
            LOOKUPS.div_ceil(BOUND),
            bound.as_secs_f64()
        );
        println!(
            "  median / bound: {:.2}; max requests in flight seen by the server: {} (bound {BOUND}); served {}",
            times[RUNS / 2].as_secs_f64() / bound.as_secs_f64(),
            server.max_in_flight.load(Ordering::SeqCst),
            server.served.load(Ordering::SeqCst)
        );
    });
}
