use super::*;
use burnin_core::{MacInfo, ScanStatus, Target, Verdict};

fn t(secs: u64) -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000 + secs)
}

fn params(id: OperationId) -> OperationParams {
    let mut p = OperationParams::new(id);
    p.operator_id = Some("op-7".into());
    p.scan_mode = Some(2);
    p.target = Target::DirectBurn;
    p.expected = vec!["A".parse().unwrap(), "B".parse().unwrap()];
    p.window = Duration::from_millis(12_500);
    p.reply_to = "hwinfo_queue_b".into();
    p.require_link = true;
    p
}

fn device(sn: &str) -> DeviceResult {
    DeviceResult {
        macinfo: vec![MacInfo {
            interface: "eth0".into(),
            macaddr: "02:00:00:00:00:01".parse().unwrap(),
            scanstatus: ScanStatus::Match,
        }],
        sn: sn.parse().unwrap(),
        result: Verdict::Pass,
        finding: Default::default(),
        findings: Vec::new(),
        // Kept with the results (SPEC §11.1), so a restarted edge shows it.
        location: Some(burnin_core::Location {
            place: "B3 shelf 12 left".into(),
            switch: "leaf-07".into(),
            port: "swp7".into(),
            planned: false,
        }),
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_whole_operation_round_trips_and_finished_ones_are_not_unfinished() {
    let s = SqliteStore::in_memory().unwrap();
    let id = OperationId::Number(42);
    let p = params(id.clone());
    block(async {
        assert_eq!(s.begin(&p, t(0), t(13)).await, Ok(1), "the first run");
        s.reply(&id, &"A".parse().unwrap(), b"{\"a\":1}", t(1))
            .await
            .unwrap();
        s.reply(&id, &"B".parse().unwrap(), b"{\"b\":2}", t(2))
            .await
            .unwrap();
        // The same serial again is kept too: the core records a second
        // board answering as A (a conflict); it never records a duplicate.
        s.reply(&id, &"A".parse().unwrap(), b"other", t(3))
            .await
            .unwrap();
    });
    let un = s.unfinished().unwrap();
    assert_eq!(un.len(), 1);
    let mut numbered = p.clone();
    numbered.run = 1;
    assert_eq!(un[0].params, numbered);
    assert_eq!(un[0].started, t(0));
    assert_eq!(un[0].deadline, t(13));
    let replies: Vec<(&[u8], Timestamp)> = un[0]
        .replies
        .iter()
        .map(|r| (r.body.as_slice(), r.received))
        .collect();
    assert_eq!(
        replies,
        [
            (&b"{\"a\":1}"[..], t(1)),
            (&b"{\"b\":2}"[..], t(2)),
            (&b"other"[..], t(3))
        ]
    );
    assert_eq!(un[0].results, None);

    let results = vec![device("A"), device("B")];
    let err = ReportError::Unavailable {
        kind: PayloadKind::Log,
        message: "503".into(),
    };
    block(async {
        s.results(&id, &results, &["mes slow".into()])
            .await
            .unwrap();
        s.delivery(&id, PayloadKind::Log, Err(&err)).await.unwrap();
        s.delivery(&id, PayloadKind::Log, Ok(())).await.unwrap();
    });
    let un = s.unfinished().unwrap();
    assert_eq!(
        un[0].results,
        Some((results.clone(), vec!["mes slow".to_owned()]))
    );
    assert_eq!(
        un[0].deliveries,
        vec![
            (PayloadKind::Log, Err(err.to_string())),
            (PayloadKind::Log, Ok(()))
        ]
    );
    let v = s.get(&id).unwrap().unwrap();
    assert_eq!(v.state, OperationState::Reporting);
    assert_eq!(v.replies, 3);

    block(s.finish(&id, OperationState::Done, None, t(20))).unwrap();
    assert!(s.unfinished().unwrap().is_empty());
    let v = s.get(&id).unwrap().unwrap();
    assert_eq!(v.state, OperationState::Done);
    assert_eq!(v.finished, Some(t(20)));
    assert_eq!(v.results, Some(results));
    assert_eq!(s.count_by_state().unwrap(), vec![(OperationState::Done, 1)]);
}

#[test]
fn a_running_id_is_refused_a_finished_one_is_held_and_a_rescan_starts_a_new_run() {
    let s = SqliteStore::in_memory().unwrap();
    let id = OperationId::text("batch-9").unwrap();
    let p = params(id.clone());
    let mut rescan = p.clone();
    rescan.rescan = true;
    block(async {
        assert_eq!(s.begin(&p, t(0), t(10)).await, Ok(1));
        assert_eq!(
            s.begin(&p, t(1), t(11)).await,
            Err(StoreError::Running(id.clone()))
        );
        assert_eq!(
            s.begin(&rescan, t(1), t(11)).await,
            Err(StoreError::Running(id.clone())),
            "a rescan waits for the run to finish too"
        );
        s.finish(&id, OperationState::Failed, Some("boom"), t(12))
            .await
            .unwrap();
        // The same id again, without asking for a rescan: refused, naming
        // the run it already had.
        let held = s.begin(&p, t(50), t(60)).await.unwrap_err();
        assert_eq!(
            held,
            StoreError::Held {
                id: id.clone(),
                run: 1,
                started: t(0),
                state: OperationState::Failed
            }
        );
        assert!(held.to_string().contains("--rescan"), "{held}");
        assert_eq!(s.begin(&rescan, t(100), t(110)).await, Ok(2));
    });
    let v = s.get(&id).unwrap().unwrap();
    assert_eq!(v.started, t(100), "the latest run is shown");
    assert_eq!(v.params.run, 2);
    assert_eq!(v.state, OperationState::Collecting);
    assert_eq!(v.error, None);
    let runs: Vec<(u64, OperationState)> = v.runs.iter().map(|r| (r.run, r.state)).collect();
    assert_eq!(
        runs,
        [(1, OperationState::Failed), (2, OperationState::Collecting)]
    );
    assert_eq!(s.list(10).unwrap().len(), 1, "one entry per id");
}

#[test]
fn number_and_string_ids_stay_apart_and_find_prefers_the_number() {
    let s = SqliteStore::in_memory().unwrap();
    let num = OperationId::Number(42);
    let text = OperationId::text("42").unwrap();
    block(async {
        s.begin(&params(text.clone()), t(0), t(10)).await.unwrap();
        // Not refused: "42" is another id than 42.
        s.begin(&params(num.clone()), t(1), t(11)).await.unwrap();
    });
    assert_eq!(s.find("42").unwrap().unwrap().params.operation_id, num);
    assert_eq!(s.get(&text).unwrap().unwrap().started, t(0));
    block(s.finish(&num, OperationState::Done, None, t(5))).unwrap();
    // Still found as the number while it exists.
    assert_eq!(s.find("42").unwrap().unwrap().params.operation_id, num);
    assert!(s.find("042").unwrap().is_none());
    assert!(s.find("nope").unwrap().is_none());
    assert!(s.find("").unwrap().is_none());
}

#[test]
fn list_is_newest_first_and_limited() {
    let s = SqliteStore::in_memory().unwrap();
    block(async {
        for n in 1..=5 {
            s.begin(&params(OperationId::Number(n)), t(n), t(n + 10))
                .await
                .unwrap();
        }
    });
    let ids: Vec<_> = s
        .list(3)
        .unwrap()
        .into_iter()
        .map(|v| v.params.operation_id)
        .collect();
    assert_eq!(
        ids,
        vec![
            OperationId::Number(5),
            OperationId::Number(4),
            OperationId::Number(3)
        ]
    );
    assert!(s.list(0).unwrap().is_empty());
}

#[test]
fn recording_into_an_unknown_operation_is_an_error_naming_it() {
    let s = SqliteStore::in_memory().unwrap();
    let e =
        block(s.reply(&OperationId::Number(9), &"A".parse().unwrap(), b"{}", t(0))).unwrap_err();
    assert!(e.to_string().contains("no running operation 9"), "{e}");
}

#[test]
fn a_file_survives_reopening_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite3");
    let id = OperationId::Number(7);
    {
        let s = SqliteStore::open(&path).unwrap();
        block(async {
            s.begin(&params(id.clone()), t(0), t(10)).await.unwrap();
            s.reply(&id, &"A".parse().unwrap(), b"body", t(1))
                .await
                .unwrap();
        });
        // Dropped without finishing, as after a crash.
    }
    let s = SqliteStore::open(&path).unwrap();
    let un = s.unfinished().unwrap();
    assert_eq!(un.len(), 1);
    assert_eq!(un[0].replies.len(), 1);
    assert_eq!(un[0].replies[0].body, b"body");
    let mode: String = s
        .lock()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = s
        .lock()
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "FULL");
}

/// Every call queued while the writer waited (here: for the connection,
/// held by the test) is committed in one transaction, and each caller gets
/// its own answer: the one reply into an operation that is not running
/// fails alone, leaving no row.
#[test]
// Deliberate: the test holds the connection so the writer must wait while
// the calls queue up; nothing on this (current-thread) executor needs it.
#[allow(clippy::await_holding_lock)]
fn calls_that_wait_together_commit_in_one_transaction_and_fail_alone() {
    use std::future::Future;
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path().join("state.sqlite3")).unwrap();
    let id = OperationId::Number(1);
    block(s.begin(&params(id.clone()), t(0), t(10))).unwrap();
    assert_eq!(
        s.write_stats(),
        WriteStats {
            calls: 1,
            transactions: 1
        }
    );
    let results = block(async {
        let guard = s.lock();
        let mut calls: Vec<_> = (0..100)
            .map(|i| {
                let op = if i == 50 {
                    OperationId::Number(99)
                } else {
                    id.clone()
                };
                let s = s.clone();
                Box::pin(async move {
                    s.reply(&op, &format!("SN{i}").parse().unwrap(), b"{}", t(1))
                        .await
                })
            })
            .collect();
        // Poll each once: its job is queued, then it waits for the commit.
        std::future::poll_fn(|cx| {
            for call in &mut calls {
                assert!(call.as_mut().poll(cx).is_pending());
            }
            std::task::Poll::Ready(())
        })
        .await;
        drop(guard);
        let mut results = Vec::new();
        for call in calls {
            results.push(call.await);
        }
        results
    });
    for (i, r) in results.iter().enumerate() {
        if i == 50 {
            let e = r.as_ref().unwrap_err();
            assert!(e.to_string().contains("no running operation 99"), "{e}");
        } else {
            r.as_ref().unwrap();
        }
    }
    assert_eq!(
        s.write_stats(),
        WriteStats {
            calls: 101,
            transactions: 2
        }
    );
    let stored = s.unfinished().unwrap();
    assert_eq!(stored[0].replies.len(), 99);
    assert_eq!(s.get(&OperationId::Number(99)).unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_runtime_concurrent_writes_all_land() {
    let s = SqliteStore::in_memory().unwrap();
    let id = OperationId::Number(1);
    s.begin(&params(id.clone()), t(0), t(10)).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let s = s.clone();
            let id = id.clone();
            tokio::spawn(async move {
                s.reply(&id, &format!("SN{i}").parse().unwrap(), b"{}", t(1))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    s.barrier().await;
    assert_eq!(s.get(&id).unwrap().unwrap().replies, 50);
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn siblings(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_garbage_file_is_refused_by_name_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite3");
    let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let e = SqliteStore::open(&path).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("not a SQLite database"), "{msg}");
    assert!(msg.contains("left untouched"), "{msg}");
    assert_eq!(bytes(&path), garbage);
    assert_eq!(siblings(dir.path()), vec!["state.sqlite3"]);
}

#[test]
fn a_damaged_database_behind_a_valid_header_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite3");
    let mut damaged = SQLITE_HEADER.to_vec();
    damaged.extend(std::iter::repeat_n(0xA5u8, 8192));
    std::fs::write(&path, &damaged).unwrap();
    let msg = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("left untouched"), "{msg}");
    assert_eq!(bytes(&path), damaged);
}

#[test]
fn another_programs_database_and_a_newer_schema_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("foreign.db");
    {
        let c = Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE customers (id INTEGER)")
            .unwrap();
    }
    let before = bytes(&foreign);
    let msg = SqliteStore::open(&foreign).unwrap_err().to_string();
    assert!(
        msg.contains("not burnin's") && msg.contains("customers"),
        "{msg}"
    );
    assert_eq!(bytes(&foreign), before);

    let newer = dir.path().join("newer.db");
    drop(SqliteStore::open_with(&newer, Durability::Normal).unwrap());
    {
        let c = Connection::open(&newer).unwrap();
        c.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA user_version = 99")
            .unwrap();
    }
    let before = bytes(&newer);
    let msg = SqliteStore::open(&newer).unwrap_err().to_string();
    assert!(
        msg.contains("schema version 99") && msg.contains("newer"),
        "{msg}"
    );
    assert_eq!(bytes(&newer), before);
}

#[test]
fn a_missing_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/state.sqlite3");
    let msg = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(msg.contains("does its folder exist"), "{msg}");
    assert!(msg.contains("no/such/dir"), "{msg}");
}

#[test]
fn errors_convert_to_the_core_error() {
    let e: StoreError = Error::NewerSchema {
        path: "x.db".into(),
        found: 3,
        known: 1,
    }
    .into();
    assert!(e.is_retryable());
    assert!(e.to_string().contains("x.db"));
}

#[test]
fn require_link_and_findings_are_kept_and_older_rows_read_without_them() {
    use burnin_core::{FindingKind, HardwareFinding};
    let s = SqliteStore::in_memory().unwrap();
    let id = OperationId::Number(77);
    let mut p = params(id.clone());
    p.require_link = true;
    // The rules and timings of SPEC §11.3 are kept too, so a resumed or
    // taken-over operation applies them; and SPEC §11.1's.
    p.require_clock = true;
    p.require_cabling = true;
    p.require_pcie_width = true;
    p.settle = std::time::Duration::from_millis(1500);
    p.clock_tolerance = std::time::Duration::from_secs(30);
    p.mes_outage_wait = std::time::Duration::from_secs(90);
    let mut d = device("A");
    d.findings.push(HardwareFinding {
        kind: FindingKind::NoLink,
        interface: Some("eth0".into()),
        message: "eth0: no link (no carrier); requireLink fails it".into(),
    });
    block(async {
        s.begin(&p, t(0), t(13)).await.unwrap();
        s.results(&id, std::slice::from_ref(&d), &[]).await.unwrap();
    });
    let un = s.unfinished().unwrap();
    assert!(un[0].params.require_link);
    assert_eq!(un[0].results.as_ref().unwrap().0, vec![d.clone()]);
    p.run = 1;
    assert_eq!(s.get(&id).unwrap().unwrap().params, p);
    assert_eq!(un[0].params, p);

    // A row written before requireLink and findings existed.
    {
        let conn = s.lock();
        let doc: String = conn
            .query_row("SELECT params FROM operations", [], |r| r.get(0))
            .unwrap();
        assert!(doc.contains(r#""requireLink":true"#), "{doc}");
        let old = doc.replace(r#","requireLink":true"#, "");
        let old_results = serde_json::to_string(&vec![device("A")]).unwrap();
        assert!(!old_results.contains("findings"));
        conn.execute(
            "UPDATE operations SET params = ?1, results = ?2",
            params![old, old_results],
        )
        .unwrap();
    }
    let un = s.unfinished().unwrap();
    assert!(!un[0].params.require_link);
    assert_eq!(un[0].results.as_ref().unwrap().0, vec![device("A")]);
}

#[test]
fn prune_deletes_only_operations_finished_before_the_cutoff() {
    let s = SqliteStore::in_memory().unwrap();
    let old = OperationId::Number(1);
    let recent = OperationId::Number(2);
    let running = OperationId::Number(3);
    block(async {
        for (id, start) in [(&old, 0), (&recent, 100), (&running, 200)] {
            s.begin(&params(id.clone()), t(start), t(start + 13))
                .await
                .unwrap();
            s.reply(id, &"A".parse().unwrap(), b"{}", t(start + 1))
                .await
                .unwrap();
        }
        for (id, end) in [(&old, 20), (&recent, 120)] {
            s.results(id, &[device("A")], &[]).await.unwrap();
            s.delivery(id, PayloadKind::Log, Ok(())).await.unwrap();
            s.finish(id, OperationState::Done, None, t(end))
                .await
                .unwrap();
        }
    });
    assert_eq!(s.prune(t(20)).unwrap(), 0, "finished at the cutoff is kept");
    assert_eq!(s.prune(t(121)).unwrap(), 2);
    assert!(s.get(&old).unwrap().is_none());
    assert!(s.get(&recent).unwrap().is_none());
    let kept = s.get(&running).unwrap().unwrap();
    assert_eq!(kept.replies, 1);
    assert_eq!(s.unfinished().unwrap().len(), 1);
    assert_eq!(
        s.prune(t(10_000)).unwrap(),
        0,
        "a running one is never pruned"
    );
    assert_eq!(s.list(10).unwrap().len(), 1);
}

/// SPEC §11.1: a reply whose enp4s0 is cabled to leaf-07 swp9 (the plan
/// says swp7) and whose enp5s0 card trained at x4 of x8.
fn cabling_reply(op: u64, at: burnin_core::Timestamp) -> Vec<u8> {
    let card = |slot: &str, width: u32| {
        format!(
            r#"{{"slot":"{slot}","vendor":"0x8086","device":"0x1533","class":"0x020000",
                "driver":"igb","pcieLink":{{"speed":"8.0 GT/s PCIe","width":{width},
                "maxSpeed":"8.0 GT/s PCIe","maxWidth":8}}}}"#
        )
    };
    format!(
        r#"{{"operationId":{op},"sn":"CAB-1","hostname":"h","agentVersion":"0.3.0",
            "collectedAt":"{at}","interfaces":[
            {{"interface":"enp4s0","macaddr":"02:00:00:00:00:04","lldp":[{{
              "chassisId":"44:38:39:ff:00:07","chassisIdSubtype":"mac","systemName":"leaf-07",
              "portId":"swp9","portIdSubtype":"ifName","ageSecs":3}}],"pci":{}}},
            {{"interface":"enp5s0","macaddr":"02:00:00:00:00:05","lldp":[],"pci":{}}}],
            "pciDevices":[]}}"#,
        card("0000:04:00.0", 8),
        card("0000:05:00.0", 4)
    )
    .into_bytes()
}

/// Resumes `stored` as an edge with the plan does after a restart or a
/// takeover, and fixes its results: the stored rules decide.
fn judge_resumed(mut stored: burnin_core::StoredOperation) -> burnin_core::DeviceResult {
    stored.params.cabling = Some(std::sync::Arc::new(
        burnin_core::cabling::CablingPlan::parse(
            b"switch,port,location,sn,interface\nleaf-07,swp7,B3 shelf 12,CAB-1,enp4s0\n",
        )
        .unwrap(),
    ));
    let deadline = stored.deadline;
    let mut op = burnin_core::Operation::restore(stored);
    let sn: SerialNumber = "CAB-1".parse().unwrap();
    let macs = ["02:00:00:00:00:04", "02:00:00:00:00:05"];
    op.handle_mes_answer(
        &sn,
        Ok(burnin_core::MesAnswer::Record(
            macs.iter().map(|m| m.parse().unwrap()).collect(),
        )),
    );
    op.handle_timeout(deadline);
    assert!(op.poll_collection_end());
    assert!(op.poll_results());
    op.results()[0].clone()
}

/// The words of a resumed device's findings, and its statuses.
fn verdict(d: &burnin_core::DeviceResult) -> (Vec<String>, Vec<&'static str>) {
    (
        burnin_core::live::details(d),
        d.macinfo.iter().map(|m| m.scanstatus.as_str()).collect(),
    )
}

/// SPEC §11.1: requireCabling and requirePcieWidth are kept with the
/// operation, so an operation resumed after a restart still applies them
/// (and one started without them still does not).
#[test]
fn cabling_rules_are_kept_so_a_resumed_operation_applies_them() {
    for strict in [true, false] {
        let s = SqliteStore::in_memory().unwrap();
        let id = OperationId::Number(78);
        let mut p = OperationParams::new(id.clone());
        p.expected = vec!["CAB-1".parse().unwrap()];
        p.require_cabling = strict;
        p.require_pcie_width = strict;
        block(async {
            s.begin(&p, t(0), t(30)).await.unwrap();
            s.reply(
                &id,
                &"CAB-1".parse().unwrap(),
                &cabling_reply(78, t(1)),
                t(1),
            )
            .await
            .unwrap();
        });
        let mut un = s.unfinished().unwrap();
        assert_eq!(un[0].params.require_cabling, strict);
        assert_eq!(un[0].params.require_pcie_width, strict);
        let d = judge_resumed(un.remove(0));
        let (words, statuses) = verdict(&d);
        assert_eq!(d.location.as_ref().unwrap().place, "B3 shelf 12");
        if strict {
            assert_eq!(statuses, ["0", "0"]);
            assert_eq!(
                words,
                [
                    "PCIe link of 0000:05:00.0 degraded: x4 of x8, 8.0 GT/s of 8.0 GT/s; requirePcieWidth fails it",
                    "enp4s0 cabled to leaf-07 swp9, plan says leaf-07 swp7 (B3 shelf 12); requireCabling fails it",
                ]
            );
        } else {
            assert_eq!(statuses, ["1", "1"]);
            assert_eq!(words.len(), 2, "{words:?}");
        }
    }
}
