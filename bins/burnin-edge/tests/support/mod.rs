//! What the end-to-end tests share: a `burnin-edge serve` process, a run
//! of `burnin-edge scan`, plain HTTP/1.1 over TCP, devices known to the
//! factory stand-in, and a headless Chromium driven through ChromeDriver.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use burnin_testkit::{Device, FactoryStandIn, binary};
use serde_json::{Value, json};

/// A TCP port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The FACTORY flags for the stand-in: MES, log, notify, pair and
/// directBurn URLs.
pub fn factory_args(f: &FactoryStandIn) -> Vec<String> {
    vec![
        "--mes-url".into(),
        f.url("/mes/{sn}"),
        "--log-url".into(),
        f.url("/log"),
        "--notify-url".into(),
        f.url("/notify"),
        "--pair-url".into(),
        f.url("/pair"),
        "--direct-burn-url".into(),
        f.url("/directBurn"),
    ]
}

/// `n` devices named `<prefix>-<i>` with one card each, known to MES.
pub fn devices(factory: &FactoryStandIn, prefix: &str, n: usize, base: u8) -> Vec<Device> {
    (0..n)
        .map(|i| {
            let mac = format!("02:00:00:{base:02x}:{:02x}:01", i + 1);
            let sn = format!("{prefix}-{}", i + 1);
            factory.set_mes(&sn, &[&mac]);
            Device::new(&sn, &[&mac])
        })
        .collect()
}

/// The serial numbers of a list of devices (`sn` of each, in order): the
/// `devices` of an operation or the `scaninfo` of a log.
pub fn sns(doc: &Value) -> Vec<String> {
    doc.as_array()
        .unwrap()
        .iter()
        .map(|d| d["sn"].as_str().unwrap().to_owned())
        .collect()
}

/// The log document `log` has each of `want` (sorted) exactly once, and
/// every device in it passed.
pub fn assert_log_has_each_once_passing(log: &Value, want: &[String]) {
    let mut in_log = sns(&log["scaninfo"]);
    in_log.sort();
    assert_eq!(in_log, want, "each device exactly once");
    assert!(
        log["scaninfo"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["result"] == json!("1")),
        "{log}"
    );
}

/// A factory of files for `scan`: an MES file and the folder the factory
/// documents are written to, in a temporary folder removed on drop.
pub struct FileFactory {
    dir: tempfile::TempDir,
    pub mes: PathBuf,
    pub out: PathBuf,
}

impl FileFactory {
    /// With `mes_json` as the MES file (`{}`: no serial is known).
    pub fn new(mes_json: &str) -> FileFactory {
        let dir = tempfile::tempdir().unwrap();
        let mes = dir.path().join("mes.json");
        std::fs::write(&mes, mes_json).unwrap();
        let out = dir.path().join("out");
        FileFactory { dir, mes, out }
    }

    /// The temporary folder (`mes.json` and `out` are in it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `--amqp-url <amqp_url> --mes-file <mes> --out-dir <out>
    /// --operation-id <id>`, then `extra`.
    pub fn scan_args<'a>(
        &'a self,
        amqp_url: &'a str,
        id: &'a str,
        extra: &[&'a str],
    ) -> Vec<&'a str> {
        let mut args = vec![
            "--amqp-url",
            amqp_url,
            "--mes-file",
            self.mes.to_str().unwrap(),
            "--out-dir",
            self.out.to_str().unwrap(),
            "--operation-id",
            id,
        ];
        args.extend_from_slice(extra);
        args
    }

    /// The document `<out>/<name>` (such as `61.notify.json`), parsed.
    pub fn read(&self, name: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.out.join(name)).unwrap()).unwrap()
    }
}

/// What a finished `burnin-edge scan` did.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `burnin-edge scan` with `args` (`RUST_LOG=info`) to its end.
pub fn scan(args: &[&str]) -> Run {
    let edge = binary("burnin-edge");
    let start = Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(edge)
        .arg("scan")
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// [`scan`], failing the test if the run panicked (its stderr says
/// `panicked` or suggests `RUST_BACKTRACE`).
pub fn scan_without_panic(args: &[&str]) -> Run {
    let run = scan(args);
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"),
        "{}",
        run.stderr
    );
    run
}

/// A running `burnin-edge serve`, killed on drop.
pub struct Serve {
    child: Child,
    pub addr: String,
    log: PathBuf,
    pub token: Option<String>,
}

impl Serve {
    /// Starts serve on a free port against `factory` (MES, log, notify and
    /// pair URLs) with the state database `db` and `extra` flags, and waits
    /// until it listens. Its stderr goes beside `db`.
    pub fn start(
        amqp_url: &str,
        factory: &FactoryStandIn,
        db: &Path,
        token: Option<&str>,
        extra: &[&str],
    ) -> Serve {
        let port = free_port();
        let log = db.with_extension(format!("{port}.log"));
        Serve::launch(amqp_url, factory, port, log, token, |cmd| {
            cmd.arg("--state-db").arg(db).args(extra);
        })
    }

    /// Starts `burnin-edge serve --listen 127.0.0.1:<port>` against
    /// `factory` (MES, log, notify and pair URLs), with `--api-token` if
    /// `token` is given and what `configure` adds, its stderr written to
    /// `log` (`RUST_LOG=info`); waits until it listens.
    ///
    /// # Panics
    /// If it does not listen within 20 s (the panic shows its stderr).
    pub fn launch(
        amqp_url: &str,
        factory: &FactoryStandIn,
        port: u16,
        log: PathBuf,
        token: Option<&str>,
        configure: impl FnOnce(&mut Command),
    ) -> Serve {
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(binary("burnin-edge"));
        cmd.arg("serve")
            .args(["--amqp-url", amqp_url, "--listen", &addr])
            .args(["--mes-url", &factory.url("/mes/{sn}")])
            .args(["--log-url", &factory.url("/log")])
            .args(["--notify-url", &factory.url("/notify")])
            .args(["--pair-url", &factory.url("/pair")]);
        configure(&mut cmd);
        cmd.env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(t) = token {
            cmd.args(["--api-token", t]);
        }
        let child = cmd.spawn().unwrap();
        let serve = Serve {
            child,
            addr,
            log,
            token: token.map(str::to_owned),
        };
        let start = Instant::now();
        while TcpStream::connect(&serve.addr).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "serve did not listen within 20 s:\n{}",
                serve.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        serve
    }

    /// `http://<addr><path>`; with `""` what it advertises by default.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What it logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` with its token; the body as JSON, or as a JSON string if
    /// it is not JSON.
    pub fn get(&self, path: &str) -> (u16, Value) {
        let (status, body) = http(&self.addr, "GET", path, self.token.as_deref(), None);
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    /// `POST /scans` of `body` with its token, answered as [`Serve::get`].
    pub fn post(&self, body: &Value) -> (u16, Value) {
        let (status, body) = http(
            &self.addr,
            "POST",
            "/scans",
            self.token.as_deref(),
            Some(body.to_string().as_bytes()),
        );
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    /// Polls `GET /scans/{id}` (every 20 ms) until it is 200 and
    /// `done(doc)`; returns that document.
    ///
    /// # Panics
    /// If that takes `limit` or longer.
    pub fn wait_for(&self, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let (status, doc) = self.get(&format!("/scans/{id}"));
            if status == 200 && done(&doc) {
                return doc;
            }
            assert!(
                start.elapsed() < limit,
                "operation {id} not there within {limit:?}: {status} {doc}\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`Serve::wait_for`] the operation to be done or failed.
    pub fn wait_finished(&self, id: &str, limit: Duration) -> Value {
        self.wait_for(id, limit, |d| {
            matches!(d["state"].as_str(), Some("done" | "failed"))
        })
    }

    /// The role `/healthz` shows (`active`, `standby`; `?` if none).
    pub fn role(&self) -> String {
        let (_, doc) = self.get("/healthz");
        doc["role"].as_str().unwrap_or("?").to_owned()
    }

    /// Waits until `/healthz` shows `role`; returns how long that took.
    ///
    /// # Panics
    /// If that takes `limit` or longer.
    pub fn wait_role(&self, role: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.role() == role {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{} not {role} within {limit:?}: {:?}\n{}",
                self.addr,
                self.get("/healthz"),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `burnin_edge_active` from `/metrics`.
    pub fn active_gauge(&self) -> f64 {
        let (status, text) = http(&self.addr, "GET", "/metrics", self.token.as_deref(), None);
        assert_eq!(status, 200, "{text}");
        text.lines()
            .find_map(|l| l.strip_prefix("burnin_edge_active "))
            .unwrap_or_else(|| panic!("no burnin_edge_active in /metrics:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// The value of the `/metrics` sample named exactly `series` (name and
    /// labels as the edge prints them), if there is one.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (status, text) = http(&self.addr, "GET", "/metrics", self.token.as_deref(), None);
        assert_eq!(status, 200, "{text}");
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.trim().parse().unwrap())
    }

    /// Kills it (SIGKILL) and reaps it.
    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit code.
    ///
    /// # Panics
    /// If it has not exited 15 s later.
    pub fn sigterm(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "serve did not stop within 15 s of SIGTERM:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request (`Connection: close`); returns status and body.
/// The body is written from another thread so a server that answers before
/// reading it all (413) is seen; an interim `100 Continue` is skipped and a
/// chunked body is joined.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Host", addr)];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    request(addr, method, path, &headers, body)
}

/// [`http`] with exactly `headers` (and `Content-Length` when there is a
/// body): no `Host` or `Content-Type` unless given.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let writer = body.map(|b| {
        let mut w = stream.try_clone().unwrap();
        let b = b.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&b);
        })
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => break, // reset after the answer (body not read)
        }
    }
    drop(writer);
    let text = String::from_utf8_lossy(&raw).into_owned();
    // Skip any interim 100 Continue.
    let mut rest = text.as_str();
    loop {
        let status: u16 = rest
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP answer from {method} {path}: {text:?}"));
        let (head, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
        if status == 100 {
            rest = body;
            continue;
        }
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        return (status, body);
    }
}

/// Joins the chunks of a `Transfer-Encoding: chunked` body.
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// Where screenshots go: `target/browser/`.
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A headless Chromium (Debian's, through its ChromeDriver) with a fresh
/// profile; both are stopped on drop.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<fantoccini::Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// # Panics
    /// If chromium or chromedriver is missing (`bash scripts/setup` installs them).
    pub fn start() -> Browser {
        Browser::start_with(&[])
    }

    /// [`Browser::start`] with more Chromium switches (such as
    /// `--host-resolver-rules=MAP name 127.0.0.1`).
    pub fn start_with(switches: &[&str]) -> Browser {
        for tool in ["chromium", "chromedriver"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                found,
                "{tool} is not installed; run `bash scripts/setup` (apt-get install chromium chromium-driver)"
            );
        }
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ]
        .iter()
        .chain(switches)
        .map(|s| (*s).to_owned())
        .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": args,
            }),
        );
        let client = rt
            .block_on(async {
                fantoccini::ClientBuilder::new(
                    hyper_util::client::legacy::connect::HttpConnector::new(),
                )
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            })
            .unwrap_or_else(|e| panic!("cannot start headless chromium: {e}"));
        Browser {
            rt,
            client: Some(client),
            driver,
            _profile: profile,
        }
    }

    fn c(&self) -> &fantoccini::Client {
        self.client.as_ref().unwrap()
    }

    pub fn goto(&self, url: &str) {
        self.rt.block_on(self.c().goto(url)).unwrap();
    }

    pub fn set_window(&self, width: u32, height: u32) {
        self.rt
            .block_on(self.c().set_window_size(width, height))
            .unwrap();
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.rt
            .block_on(self.c().execute(script, args))
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `script` returns true (polling every 20 ms).
    pub fn wait_until(&self, what: &str, limit: Duration, script: &str) {
        let start = Instant::now();
        loop {
            if self.js(script, vec![]) == Value::Bool(true) {
                return;
            }
            if start.elapsed() > limit {
                let text = self.js("return document.body.innerText", vec![]);
                let path = artifacts().join("timeout.png");
                self.screenshot_to(&path);
                panic!(
                    "waited {limit:?} for {what}; the page shows:\n{}\n(screenshot {})",
                    text.as_str().unwrap_or_default(),
                    path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types into the element `css`.
    pub fn type_into(&self, css: &str, text: &str) {
        self.rt
            .block_on(async {
                let e = self.c().find(fantoccini::Locator::Css(css)).await?;
                e.send_keys(text).await
            })
            .unwrap();
    }

    pub fn click(&self, css: &str) {
        self.rt
            .block_on(async {
                self.c()
                    .find(fantoccini::Locator::Css(css))
                    .await?
                    .click()
                    .await
            })
            .unwrap();
    }

    fn screenshot_to(&self, path: &Path) {
        if let Ok(png) = self.rt.block_on(self.c().screenshot()) {
            let _ = std::fs::write(path, png);
        }
    }

    /// Saves `target/browser/<name>.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let path = artifacts().join(format!("{name}.png"));
        let png = self.rt.block_on(self.c().screenshot()).unwrap();
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
