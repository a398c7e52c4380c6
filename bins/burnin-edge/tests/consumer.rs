//! One consumer per reply queue (SPEC §11.3), end to end through real
//! processes: real `burnin-agent run` processes on fixture trees, a real
//! `burnin-edge serve` on a vhost of its own, the factory stand-in, and
//! the real `burnin-edge scan` — refused while serve consumes the queue,
//! and run through serve's API with `--edge-url`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use burnin_testkit::vhost::TestVhost;
use burnin_testkit::{AgentFleet, Device, FactoryStandIn};
use serde_json::{Value, json};
use support::{Run, Serve, devices, factory_args, free_port, http, scan_without_panic as scan};

const TOKEN: &str = "consumer-test-token";

/// serve with [`TOKEN`], its state database in `dir`, waiting until its
/// broker connection is up (it then consumes the reply queue).
fn start_serve(amqp_url: &str, factory: &FactoryStandIn, dir: &Path) -> Serve {
    let serve = Serve::start(
        amqp_url,
        factory,
        &dir.join("edge.sqlite3"),
        Some(TOKEN),
        &[],
    );
    let start = Instant::now();
    while http(&serve.addr, "GET", "/healthz", None, None).0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve's broker connection not up within 30 s:\n{}",
            serve.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    serve
}

/// `scan --edge-url <serve> --api-token TOKEN`, then `extra`.
fn remote(serve: &Serve, extra: &[&str]) -> Run {
    let url = serve.url("");
    let mut args = vec!["--edge-url", url.as_str(), "--api-token", TOKEN];
    args.extend_from_slice(extra);
    scan(&args)
}

fn expect_args(sns: &[String]) -> Vec<&str> {
    sns.iter().flat_map(|s| ["--expect", s.as_str()]).collect()
}

fn posts(factory: &FactoryStandIn) -> Vec<(String, String)> {
    factory
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            (
                r.path.clone(),
                r.header("idempotency-key").unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Before: both consumed `hwinfo_queue`, each reply went to one of them,
/// and the scan failed the devices whose replies serve took (serve moved
/// them to the rejected queue as "unknown operation"). Now the scan is
/// refused at once, exits 3 and names the cause; serve keeps every reply.
#[test]
fn a_scan_while_serve_consumes_the_queue_exits_3_naming_the_other_edge() {
    let Some(vhost) = TestVhost::new("scan-vs-serve") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let devs = devices(&factory, "TWO", 3, 0x31);
    let sns: Vec<String> = devs.iter().map(|d| d.sn.clone()).collect();
    let _fleet = AgentFleet::start(&vhost, &devs, &[]);
    let dir = tempfile::tempdir().unwrap();
    let url = vhost.url();
    let serve = start_serve(&url, &factory, dir.path());

    let mut args: Vec<String> = factory_args(&factory);
    args.extend(
        [
            "--amqp-url",
            &url,
            "--operation-id",
            "601",
            "--window",
            "10s",
        ]
        .map(String::from),
    );
    args.extend(expect_args(&sns).into_iter().map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = scan(&args);
    assert_eq!(run.code, Some(3), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "another edge consumes hwinfo_queue on this vhost (the broker said \"ACCESS_REFUSED"
        ) && run
            .stderr
            .contains("use its API (`burnin-edge scan --edge-url URL`")
            && run.stderr.contains("or another vhost"),
        "{}",
        run.stderr
    );
    assert!(run.elapsed < Duration::from_secs(8), "{:?}", run.elapsed);
    assert_eq!(
        run.stdout.trim(),
        "operation 601: not started; nothing was sent to the factory"
    );
    assert_eq!(posts(&factory), [], "nothing sent for 601");

    // serve was not disturbed: its own operation gets every reply.
    let run = remote(
        &serve,
        &[&["--operation-id", "602"][..], &expect_args(&sns)].concat(),
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(vhost.messages("hwinfo_queue.rejected"), Some(0));
}

/// `scan --edge-url`: the operation runs in serve, and the scan prints
/// what a local scan prints — the table with the same words, the JSON
/// document, the exit codes — and says clearly what went wrong with the
/// API (unreachable, 401, 409).
#[test]
fn a_scan_through_serve_prints_the_table_json_and_exit_codes_of_a_local_scan() {
    let Some(vhost) = TestVhost::new("edge-url") else {
        return;
    };
    let factory = FactoryStandIn::start();
    let mut devs = devices(&factory, "VIA", 3, 0x41);
    // MES has another MAC for BAD-1; GONE-1 is expected and never answers.
    factory.set_mes("BAD-1", &["02:00:00:42:00:02"]);
    devs.push(Device::new("BAD-1", &["02:00:00:42:00:01"]));
    let mut fleet = AgentFleet::start(&vhost, &devs, &[]);
    let dir = tempfile::tempdir().unwrap();
    let serve = start_serve(&vhost.url(), &factory, dir.path());

    // A failing device and a silent one: exit 1, the local scan's table.
    let mut sns: Vec<String> = devs.iter().map(|d| d.sn.clone()).collect();
    sns.push("GONE-1".into());
    let run = remote(
        &serve,
        &[
            &["--operation-id", "701", "--window", "4s"][..],
            &expect_args(&sns),
        ]
        .concat(),
    );
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "SERIAL  RESULT  DETAILS", "{}", run.stdout);
    for want in [
        "VIA-1   PASS",
        "BAD-1   FAIL    enp1s0 02:00:00:42:00:01 is not in MES; card 02:00:00:42:00:02 recorded in MES is missing",
        "GONE-1  FAIL    no reply before the window closed",
    ] {
        assert!(lines.contains(&want), "{want:?} not in\n{}", run.stdout);
    }
    assert!(
        run.stdout.contains(
            "operation 701: 5 devices, 3 passed, 2 failed; 4 replies, 0 duplicate, 0 rejected; collected in "
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("operation 701 started on the edge at http://"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(TOKEN) && !run.stdout.contains(TOKEN));
    // Reported by serve, once (run 1 of 701 in its store).
    assert_eq!(
        posts(&factory),
        [
            ("/log".to_owned(), "701:1:log".to_owned()),
            ("/pair".to_owned(), "701:1:pair".to_owned()),
            ("/notify".to_owned(), "701:1:notify".to_owned()),
        ]
    );

    // --json, a string id (quoted in the path), every device passing: exit 0.
    fleet.kill("BAD-1");
    let good: Vec<String> = sns[..3].to_vec();
    let run = remote(
        &serve,
        &[
            &["--operation-id", "LOT 7/a", "--json"][..],
            &expect_args(&good),
        ]
        .concat(),
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let doc: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(doc["operationId"], json!("LOT 7/a"));
    assert_eq!(doc["state"], json!("done"));
    assert_eq!(
        doc["replies"],
        json!({"accepted": 3, "duplicate": 0, "conflict": 0, "rejected": 0, "redelivered": 0})
    );
    let devices = doc["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 3);
    assert!(devices.iter().all(|d| d["result"] == json!("1")), "{doc}");
    assert_eq!(
        devices[0],
        json!({"sn": "VIA-1", "result": "1",
               "macinfo": [{"interface": "enp1s0", "macaddr": "02:00:00:41:01:01", "scanstatus": "1"}]})
    );

    // 409: the operation is already running there; exit 2 naming it.
    let (status, _) = serve.post(&json!({"operationId": 703, "windowSecs": 30}));
    assert_eq!(status, 202);
    let run = remote(&serve, &["--operation-id", "703"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("refused starting the scan (409 Conflict)")
            && run.stderr.contains("operation 703 is already running"),
        "{}",
        run.stderr
    );

    // 401: a wrong token; exit 2 naming the flag, never showing a token.
    let url = serve.url("");
    let run = scan(&[
        "--edge-url",
        &url,
        "--api-token",
        "wrong-token",
        "--operation-id",
        "704",
    ]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("(401)") && run.stderr.contains("--api-token"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("wrong-token"), "{}", run.stderr);

    // Nothing listening: exit 3, quickly.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let run = scan(&["--edge-url", &nowhere, "--operation-id", "705"]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("cannot use the edge at {nowhere}"))
            && run.stderr.contains("is `burnin-edge serve` running there?"),
        "{}",
        run.stderr
    );
    assert!(run.elapsed < Duration::from_secs(8), "{:?}", run.elapsed);

    // A window that is not whole seconds: exit 2 before any request.
    let run = remote(&serve, &["--operation-id", "706", "--window", "1500ms"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("whole seconds"), "{}", run.stderr);
}
