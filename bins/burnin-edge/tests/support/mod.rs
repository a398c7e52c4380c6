//! What the live-view tests share: a `burnin-edge serve` process, plain
//! HTTP/1.1 over TCP, and a headless Chromium driven through ChromeDriver.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burnin_testkit::{FactoryStandIn, binary};
use serde_json::Value;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `burnin-edge serve`, killed on drop.
pub struct Serve {
    child: Child,
    pub addr: String,
    log: PathBuf,
    pub token: Option<String>,
}

impl Serve {
    /// Starts serve on a free port against `factory` and waits until it listens.
    pub fn start(
        amqp_url: &str,
        factory: &FactoryStandIn,
        db: &Path,
        token: Option<&str>,
        extra: &[&str],
    ) -> Serve {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = db.with_extension(format!("{port}.log"));
        let mut cmd = Command::new(binary("burnin-edge"));
        cmd.arg("serve")
            .args(["--amqp-url", amqp_url, "--listen", &addr])
            .arg("--state-db")
            .arg(db)
            .args(["--mes-url", &factory.url("/mes/{sn}")])
            .args(["--log-url", &factory.url("/log")])
            .args(["--notify-url", &factory.url("/notify")])
            .args(["--pair-url", &factory.url("/pair")])
            .args(extra)
            .env("RUST_LOG", "info")
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

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let (status, body) = http(&self.addr, "GET", path, self.token.as_deref(), None);
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

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

    /// Polls `GET /scans/{id}` until it is done or failed.
    pub fn wait_finished(&self, id: &str, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            let (status, doc) = self.get(&format!("/scans/{id}"));
            if status == 200 && matches!(doc["state"].as_str(), Some("done" | "failed")) {
                return doc;
            }
            assert!(
                start.elapsed() < limit,
                "operation {id} not finished within {limit:?}: {status} {doc}\n{}",
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
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    if let Some(b) = body {
        stream.write_all(b).unwrap();
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer from {method} {path}: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

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
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
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
