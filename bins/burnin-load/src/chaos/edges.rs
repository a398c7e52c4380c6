//! The two `serve` edges on one PostgreSQL store, and the client that
//! posts operations to whichever is active (following a standby's
//! `active` hint) and watches them finish.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use burnin_testkit::FactoryStandIn;
use tokio::sync::Mutex;

use crate::spawn::{Env, Serve, free_port};

/// Names of the two edges.
pub(crate) const NAMES: [&str; 2] = ["A", "B"];

/// How the edges are started: the same flags each time, on the same port.
pub(crate) struct EdgeSetup {
    /// Broker and store flags (every node's URL, quorum reply queue,
    /// `--store`).
    pub(crate) args: Vec<String>,
    pub(crate) token: String,
    /// Where each incarnation's stderr goes.
    pub(crate) dir: PathBuf,
    pub(crate) rust_log: String,
}

struct Slot {
    port: u16,
    serve: Option<Serve>,
    /// How many times it was started.
    starts: u32,
}

/// Edge A and edge B, each stopped and started again by the faults.
pub(crate) struct Edges {
    setup: EdgeSetup,
    slots: [std::sync::Mutex<Slot>; 2],
    /// Held by a fault for its whole stop–takeover–start sequence, so two
    /// edge faults of one operation do not interleave.
    pub(crate) exclusive: Mutex<()>,
    pub(crate) http: reqwest::Client,
}

impl Edges {
    pub(crate) fn new(setup: EdgeSetup) -> anyhow::Result<Edges> {
        let slot = || -> anyhow::Result<std::sync::Mutex<Slot>> {
            Ok(std::sync::Mutex::new(Slot {
                port: free_port()?,
                serve: None,
                starts: 0,
            }))
        };
        Ok(Edges {
            setup,
            slots: [slot()?, slot()?],
            exclusive: Mutex::new(()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    fn slot(&self, i: usize) -> std::sync::MutexGuard<'_, Slot> {
        self.slots[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `http://127.0.0.1:<port>` of edge `i`.
    pub(crate) fn base(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.slot(i).port)
    }

    /// Which edge `url` (an `active` hint) names.
    pub(crate) fn index_of(&self, url: &str) -> Option<usize> {
        let url = url.trim_end_matches('/');
        (0..2).find(|&i| self.base(i) == url)
    }

    /// Where edge `i`'s stderr goes (every incarnation appends).
    pub(crate) fn log(&self, i: usize) -> PathBuf {
        self.setup.dir.join(format!("edge-{}.log", NAMES[i]))
    }

    /// Starts edge `i` (it must not be running) and waits until it
    /// answers `/healthz` (any status).
    pub(crate) async fn start(
        &self,
        env: &Env,
        factory: &FactoryStandIn,
        i: usize,
    ) -> anyhow::Result<()> {
        let (port, starts) = {
            let mut s = self.slot(i);
            s.starts += 1;
            (s.port, s.starts)
        };
        let base = format!("http://127.0.0.1:{port}");
        let mut args = self.setup.args.clone();
        args.extend([
            "--advertise-url".to_owned(),
            base.clone(),
            "--connection-name".to_owned(),
            format!("burnin-load chaos edge {} #{starts}", NAMES[i]),
        ]);
        let serve = Serve::launch(
            env,
            factory,
            port,
            &self.setup.token,
            &args,
            self.log(i),
            &self.setup.rust_log,
        )?;
        let waited = serve
            .wait_healthy(&self.http, Duration::from_secs(30), |_| true)
            .await;
        self.slot(i).serve = Some(serve);
        waited.with_context(|| format!("edge {} did not start", NAMES[i]))
    }

    /// Edge `i`'s OS process id, if it runs.
    pub(crate) fn pid(&self, i: usize) -> Option<u32> {
        self.slot(i).serve.as_ref().map(Serve::pid)
    }

    /// SIGKILL edge `i`; false if it was not running.
    pub(crate) fn kill(&self, i: usize) -> bool {
        match self.slot(i).serve.take() {
            Some(mut s) => {
                s.sigkill();
                true
            }
            None => false,
        }
    }

    /// SIGTERM edge `i` and wait for it to exit (at most `limit`): its exit
    /// code (`Err` with what happened if it did not exit, or was not
    /// running). One that did not exit is SIGKILLed.
    pub(crate) async fn term(&self, i: usize, limit: Duration) -> Result<Option<i32>, String> {
        let Some(mut serve) = self.slot(i).serve.take() else {
            return Err("it was not running".into());
        };
        serve.term();
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = serve.exited() {
                return Ok(status.code());
            }
            if Instant::now() >= until {
                serve.sigkill();
                return Err(format!(
                    "it did not exit within {:.0} s of SIGTERM (SIGKILLed)",
                    limit.as_secs_f64()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The role edge `i`'s `/healthz` shows, and its status: `None` if it
    /// does not answer.
    pub(crate) async fn health(&self, i: usize) -> Option<(u16, String)> {
        let r = self
            .http
            .get(format!("{}/healthz", self.base(i)))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        let status = r.status().as_u16();
        let doc: serde_json::Value = r.json().await.ok()?;
        Some((status, doc["role"].as_str().unwrap_or("?").to_owned()))
    }

    /// The edges that say they are active.
    pub(crate) async fn active(&self) -> Vec<usize> {
        let (a, b) = tokio::join!(self.health(0), self.health(1));
        [a, b]
            .iter()
            .enumerate()
            .filter(|(_, h)| h.as_ref().is_some_and(|(_, role)| role == "active"))
            .map(|(i, _)| i)
            .collect()
    }

    /// Waits (at most `limit`, polling every 50 ms) until an edge says it
    /// is active, and returns which and how long that took.
    pub(crate) async fn await_active(&self, limit: Duration) -> Option<(usize, Duration)> {
        let t = Instant::now();
        loop {
            if let Some(&i) = self.active().await.first() {
                return Some((i, t.elapsed()));
            }
            if t.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (at most `limit`) until an active edge answers `/healthz`
    /// with 200 (its broker connection is up and its store writes).
    pub(crate) async fn await_ready(&self, limit: Duration) -> bool {
        let t = Instant::now();
        loop {
            let (a, b) = tokio::join!(self.health(0), self.health(1));
            if [a, b]
                .iter()
                .flatten()
                .any(|(status, role)| *status == 200 && role == "active")
            {
                return true;
            }
            if t.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops both (SIGTERM, then SIGKILL).
    pub(crate) fn stop_all(&self) {
        for i in 0..2 {
            drop(self.slot(i).serve.take());
        }
    }

    /// How often each edge was started.
    pub(crate) fn starts(&self) -> [u32; 2] {
        [self.slot(0).starts, self.slot(1).starts]
    }
}

/// What the client saw posting one operation.
#[derive(Debug, Default)]
pub(crate) struct Posted {
    /// When an edge accepted it (since `t0`), which, and its status
    /// (202, or 409: an earlier attempt had got through).
    pub(crate) accepted: Option<(Duration, usize, u16)>,
    /// Attempts made.
    pub(crate) attempts: u32,
    /// Times a standby's `active` hint sent the client to the other edge.
    pub(crate) hints_followed: u32,
    /// The last refusal or error, for the record.
    pub(crate) last_error: Option<String>,
}

/// Posts `body` to the preferred edge (`*preferred`, updated to where it
/// was accepted); a standby's 503 with an `active` URL sends it there, no
/// answer or a 503 without a hint to the other edge; gives up after
/// `limit`.
pub(crate) async fn post_scan(
    edges: &Edges,
    preferred: &mut usize,
    body: &serde_json::Value,
    t0: Instant,
    limit: Duration,
) -> Posted {
    let mut out = Posted::default();
    let mut i = *preferred;
    while t0.elapsed() < limit {
        out.attempts += 1;
        let sent = edges
            .http
            .post(format!("{}/scans", edges.base(i)))
            .bearer_auth(&edges.setup.token)
            .json(body)
            .send()
            .await;
        match sent {
            Ok(r) if matches!(r.status().as_u16(), 202 | 409) => {
                let status = r.status().as_u16();
                if status == 409 {
                    // Only an id it already holds: an earlier attempt
                    // (whose answer was lost) got through.
                    out.last_error = Some(r.text().await.unwrap_or_default());
                }
                out.accepted = Some((t0.elapsed(), i, status));
                *preferred = i;
                return out;
            }
            Ok(r) if r.status().as_u16() == 503 => {
                let doc: serde_json::Value = r.json().await.unwrap_or_default();
                out.last_error = Some(format!("{} answered 503: {doc}", NAMES[i]));
                match doc["active"].as_str().and_then(|a| edges.index_of(a)) {
                    Some(j) if j != i => {
                        out.hints_followed += 1;
                        i = j;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    _ => i = 1 - i,
                }
            }
            Ok(r) => {
                // A request the API refuses is the harness's fault: no
                // retry makes it right.
                let status = r.status();
                out.last_error = Some(format!(
                    "{} answered {status}: {}",
                    NAMES[i],
                    r.text().await.unwrap_or_default()
                ));
                return out;
            }
            Err(e) => {
                out.last_error = Some(format!("{}: {e}", NAMES[i]));
                i = 1 - i;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    out
}

/// Polls `GET /scans/{op}` (either edge answers from the shared store)
/// every 100 ms until it is `done` or `failed`: when (since `t0`) and the
/// state; `None` if not by `limit`.
pub(crate) async fn await_finished(
    edges: &Edges,
    op: u64,
    t0: Instant,
    limit: Duration,
) -> Option<(Duration, String)> {
    let mut i = 0;
    while t0.elapsed() < limit {
        let got = edges
            .http
            .get(format!("{}/scans/{op}", edges.base(i)))
            .bearer_auth(&edges.setup.token)
            .send()
            .await;
        let doc: Option<serde_json::Value> = match got {
            Ok(r) if r.status().is_success() => r.json().await.ok(),
            _ => None,
        };
        match doc.as_ref().and_then(|d| d["state"].as_str()) {
            Some(s @ ("done" | "failed")) => return Some((t0.elapsed(), s.to_owned())),
            Some(_) => {}
            None => i = 1 - i,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Every operation the store holds (`GET /scans?limit=1000` from either
/// edge): id and state.
pub(crate) async fn all_operations(edges: &Edges) -> Option<Vec<(String, String)>> {
    for i in 0..2 {
        let got = edges
            .http
            .get(format!("{}/scans?limit=1000", edges.base(i)))
            .bearer_auth(&edges.setup.token)
            .send()
            .await;
        if let Ok(r) = got
            && r.status().is_success()
            && let Ok(serde_json::Value::Array(list)) = r.json().await
        {
            return Some(
                list.iter()
                    .map(|o| {
                        let id = match &o["operationId"] {
                            serde_json::Value::String(s) => format!("{s:?}"),
                            v => v.to_string(),
                        };
                        (id, o["state"].as_str().unwrap_or("?").to_owned())
                    })
                    .collect(),
            );
        }
    }
    None
}
