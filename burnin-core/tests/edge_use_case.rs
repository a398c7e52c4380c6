//! The edge use case against mocked MES and factory ports (mockall), with
//! the in-memory broker and a manual clock.

use std::time::Duration;

use async_trait::async_trait;
use burnin_core::Clock as _;
use burnin_core::edge::{EdgePorts, NoObserver, OperationReport, run_operation};
use burnin_core::memory::{ManualClock, MemoryBroker};
use burnin_core::{
    DeviceReport, FactoryReporter, Hardware, InterfaceReport, Mac, MesAnswer, MesError, MesSource,
    OperationId, OperationParams, OperationState, Payload, PayloadKind, PciDevice, ReportError,
    SerialNumber, Target, Timestamp,
};
use futures::executor::block_on;
use mockall::Sequence;
use mockall::predicate::*;

mockall::mock! {
    Reporter {}
    #[async_trait]
    impl FactoryReporter for Reporter {
        async fn deliver(&self, payload: &Payload) -> Result<(), ReportError>;
    }
}

mockall::mock! {
    Mes {}
    #[async_trait]
    impl MesSource for Mes {
        async fn lookup(&self, sn: &SerialNumber) -> Result<MesAnswer, MesError>;
    }
}

fn sn(s: &str) -> SerialNumber {
    s.parse().unwrap()
}
fn mac(n: u8) -> Mac {
    Mac::new([2, 0, 0, 0, 0, n])
}

fn reply(op: &OperationId, serial: &str, macs: &[u8]) -> Vec<u8> {
    let hw = Hardware {
        sn: sn(serial),
        hostname: format!("host-{serial}"),
        interfaces: macs
            .iter()
            .enumerate()
            .map(|(i, &m)| InterfaceReport {
                lldp: None,
                interface: format!("eth{i}"),
                macaddr: mac(m),
                permaddr: None,
                addr_assign_type: None,
                link: None,
                pci: PciDevice {
                    pcie_link: None,
                    slot: format!("0000:0{i}:00.0"),
                    vendor: "0x8086".into(),
                    device: "0x1533".into(),
                    class: "0x020000".into(),
                    driver: Some("igb".into()),
                },
            })
            .collect(),
        pci_devices: vec![],
    };
    DeviceReport::new(
        Some(op.clone()),
        hw,
        "test",
        // The test clock's time: the device's clock agrees with the edge's.
        Timestamp::from_unix_seconds(1_800_000_000),
    )
    .to_json()
}

/// MES knows A (mac 1), B (mac 2); everything else is unknown.
fn mes() -> MockMes {
    let mut m = MockMes::new();
    m.expect_lookup().returning(|sn| {
        Ok(match sn.as_str() {
            "A" => MesAnswer::Record(vec![mac(1)]),
            "B" => MesAnswer::Record(vec![mac(2)]),
            _ => MesAnswer::Unknown,
        })
    });
    m
}

fn run(
    params: OperationParams,
    replies: &[Vec<u8>],
    mes: &MockMes,
    reporter: &MockReporter,
) -> (OperationReport, MemoryBroker) {
    let broker = MemoryBroker::new();
    let (publisher, mut stream) = broker.edge("hwinfo_queue");
    for r in replies {
        broker.send_to_queue("hwinfo_queue", r.clone()).unwrap();
    }
    let clock = ManualClock::new(Timestamp::from_unix_seconds(1_800_000_000));
    let report = block_on(run_operation(
        params,
        EdgePorts {
            publisher: &publisher,
            replies: &mut stream,
            mes,
            reporter,
            store: &burnin_core::NoStore,
            clock: &clock,
            observer: &NoObserver,
        },
    ));
    (report, broker)
}

fn params(expected: &[&str]) -> OperationParams {
    let mut p = OperationParams::new(OperationId::Number(42));
    p.expected = expected.iter().map(|s| sn(s)).collect();
    p.window = Duration::from_secs(5);
    p
}

#[test]
fn failed_log_means_no_pair_and_an_error_in_the_notification() {
    let op = OperationId::Number(42);
    let mut reporter = MockReporter::new();
    let mut seq = Sequence::new();
    reporter
        .expect_deliver()
        .withf(|p| p.kind == PayloadKind::Log)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| {
            Err(ReportError::Unavailable {
                kind: PayloadKind::Log,
                message: "http://factory/log answered 503 after 5 attempts".into(),
            })
        });
    reporter
        .expect_deliver()
        .withf(|p| p.kind == PayloadKind::Notify)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|p| {
            assert!(p.body_str().contains(
                r#""error":"log could not be delivered: http://factory/log answered 503 after 5 attempts""#
            ), "{}", p.body_str());
            Ok(())
        });
    reporter
        .expect_deliver()
        .withf(|p| p.kind == PayloadKind::Pair)
        .never();
    // Without an outage wait, the reporter's own attempts are all it gets.
    let mut p = params(&["A"]);
    p.delivery_outage_wait = Duration::ZERO;
    let (report, _) = run(p, &[reply(&op, "A", &[1])], &mes(), &reporter);
    assert_eq!(report.state, OperationState::Failed);
    assert!(report.error.unwrap().contains("503"));
}

/// A reporter whose endpoint for `down` fails (503 after its attempts) the
/// first `failures` times, and counts every call per kind.
fn flaky_reporter(
    down: PayloadKind,
    failures: usize,
    calls: std::sync::Arc<std::sync::Mutex<Vec<PayloadKind>>>,
) -> MockReporter {
    let mut reporter = MockReporter::new();
    reporter.expect_deliver().returning(move |p| {
        let mut calls = calls.lock().unwrap();
        calls.push(p.kind);
        let so_far = calls.iter().filter(|k| **k == down).count();
        if p.kind == down && so_far <= failures {
            return Err(ReportError::Unavailable {
                kind: p.kind,
                message: "http://factory/x answered 503 after 5 attempts".into(),
            });
        }
        assert!(!p.body_str().contains("error"), "{}", p.body_str());
        Ok(())
    });
    reporter
}

/// Found by the fault campaign (`burnin-load chaos`, seed 42): a factory
/// endpoint down for 5 s outlasted the reporter's attempts, and every
/// result of the operation was lost. Now the payload is tried again (1 s,
/// 2 s, 4 s … on the test clock) until the endpoint is back, under the
/// same key and body, and nothing after it is skipped.
#[test]
fn a_factory_outage_is_waited_out_and_nothing_is_lost() {
    let op = OperationId::Number(42);
    for down in [PayloadKind::Log, PayloadKind::Pair, PayloadKind::Notify] {
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let reporter = flaky_reporter(down, 3, calls.clone());
        let (report, _) = run(params(&["A"]), &[reply(&op, "A", &[1])], &mes(), &reporter);
        assert_eq!(report.state, OperationState::Done, "{down}: {report:?}");
        assert_eq!(report.error, None);
        let calls = calls.lock().unwrap();
        let mut want = vec![PayloadKind::Log, PayloadKind::Pair, PayloadKind::Notify];
        let at = want.iter().position(|k| *k == down).unwrap();
        for _ in 0..3 {
            want.insert(at, down);
        }
        assert_eq!(*calls, want, "{down}");
    }
}

/// An outage longer than `delivery_outage_wait` (10 min by default): the
/// payload is tried again with a growing pause, then given up, and the
/// operation goes on as SPEC §5 says (no Pair, the notification carries the
/// error). A refusal (a 4xx) is never tried again.
#[test]
fn a_factory_outage_beyond_the_wait_or_a_refusal_gives_the_payload_up() {
    let op = OperationId::Number(42);
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut reporter = MockReporter::new();
    let recorded = calls.clone();
    reporter.expect_deliver().returning(move |p| {
        recorded.lock().unwrap().push(p.kind);
        match p.kind {
            PayloadKind::Log => Err(ReportError::Unavailable {
                kind: p.kind,
                message: "http://factory/log answered 503 after 5 attempts".into(),
            }),
            PayloadKind::Notify => {
                assert!(
                    p.body_str()
                        .contains(r#""error":"log could not be delivered"#)
                );
                Ok(())
            }
            other => panic!("{other} must not be sent when the log was not delivered"),
        }
    });
    let (report, _) = run(params(&["A"]), &[reply(&op, "A", &[1])], &mes(), &reporter);
    assert_eq!(report.state, OperationState::Failed);
    let calls = calls.lock().unwrap();
    let logs = calls.iter().filter(|k| **k == PayloadKind::Log).count();
    // 1 s, 2 s, 4 s … capped at 30 s, over 10 minutes.
    assert!((20..=30).contains(&logs), "{logs} log attempts");
    assert_eq!(calls.last(), Some(&PayloadKind::Notify));

    let mut reporter = MockReporter::new();
    let mut seq = Sequence::new();
    reporter
        .expect_deliver()
        .withf(|p| p.kind == PayloadKind::Log)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|p| {
            Err(ReportError::Refused {
                kind: p.kind,
                message: "http://factory/log answered 422".into(),
            })
        });
    reporter
        .expect_deliver()
        .withf(|p| p.kind == PayloadKind::Notify)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    let (report, _) = run(params(&["A"]), &[reply(&op, "A", &[1])], &mes(), &reporter);
    assert_eq!(report.state, OperationState::Failed);
    assert!(report.error.unwrap().contains("422"));
}

#[test]
fn no_passing_device_means_no_pair() {
    let op = OperationId::Number(42);
    let mut reporter = MockReporter::new();
    reporter
        .expect_deliver()
        .withf(|p| p.kind == PayloadKind::Pair || p.kind == PayloadKind::DirectBurn)
        .never();
    reporter
        .expect_deliver()
        .withf(|p| p.kind == PayloadKind::Log || p.kind == PayloadKind::Notify)
        .times(2)
        .returning(|_| Ok(()));
    // A reports a wrong MAC; U is unknown to MES.
    let (report, _) = run(
        params(&["A", "U"]),
        &[reply(&op, "A", &[9]), reply(&op, "U", &[3])],
        &mes(),
        &reporter,
    );
    assert_eq!(report.state, OperationState::Done);
    assert!(!report.all_passed());
}

#[test]
fn direct_burn_target_sends_operator_and_scan_mode() {
    let op = OperationId::Text("burn-1".into());
    let mut p = params(&["A", "B"]);
    p.operation_id = op.clone();
    p.target = Target::DirectBurn;
    p.operator_id = Some("OP-7".into());
    p.scan_mode = Some(3);
    let mut reporter = MockReporter::new();
    let mut seq = Sequence::new();
    reporter
        .expect_deliver()
        .withf(|p| p.kind == PayloadKind::Pair)
        .never();
    for kind in [
        PayloadKind::Log,
        PayloadKind::DirectBurn,
        PayloadKind::Notify,
    ] {
        reporter
            .expect_deliver()
            .withf(move |p| p.kind == kind)
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |p| {
                if kind == PayloadKind::DirectBurn {
                    assert_eq!(
                        p.body_str(),
                        r#"{"snArray":["A","B"],"operationId":"burn-1","operatorId":"OP-7","scanMode":3}"#
                    );
                    // Without a store the run is the start time in ms.
                    assert_eq!(p.idempotency_key(), r#""burn-1":1800000000000:directBurn"#);
                }
                Ok(())
            });
    }
    let (report, _) = run(
        p,
        &[reply(&op, "B", &[2]), reply(&op, "A", &[1])],
        &mes(),
        &reporter,
    );
    assert!(report.all_passed(), "{report:?}");
}

#[test]
fn silent_expected_device_fails_with_empty_macinfo() {
    let op = OperationId::Number(42);
    let mut reporter = MockReporter::new();
    reporter.expect_deliver().returning(move |p| {
        if p.kind == PayloadKind::Log {
            assert!(
                p.body_str()
                    .contains(r#"{"macinfo":[],"sn":"S","result":"0"}"#),
                "{}",
                p.body_str()
            );
        }
        if p.kind == PayloadKind::Pair {
            assert_eq!(p.body_str(), r#"{"snArray":["A"],"operationId":42}"#);
        }
        Ok(())
    });
    let mut mes = MockMes::new();
    // S is never looked up: it never replied.
    mes.expect_lookup()
        .with(eq(sn("A")))
        .times(1)
        .returning(|_| Ok(MesAnswer::Record(vec![mac(1)])));
    let (report, _) = run(
        params(&["A", "S"]),
        &[reply(&op, "A", &[1])],
        &mes,
        &reporter,
    );
    assert_eq!(report.devices.len(), 2);
    assert_eq!(report.devices[1].sn, sn("S"));
    assert!(report.devices[1].macinfo.is_empty());
    assert!(!report.devices[1].result.passed());
}

#[test]
fn duplicate_reply_does_not_change_the_first() {
    let op = OperationId::Number(42);
    let mut reporter = MockReporter::new();
    reporter.expect_deliver().returning(|_| Ok(()));
    let mut mes = MockMes::new();
    mes.expect_lookup()
        .times(1)
        .returning(|_| Ok(MesAnswer::Record(vec![mac(1)])));
    let (report, _) = run(
        params(&[]),
        &[reply(&op, "A", &[1]), reply(&op, "A", &[1])],
        &mes,
        &reporter,
    );
    assert_eq!(report.counters.duplicates, 1);
    assert_eq!(report.counters.conflicts, 0);
    assert_eq!(report.devices.len(), 1);
    assert_eq!(report.devices[0].macinfo.len(), 1);
    assert!(report.all_passed());
}

#[test]
fn bad_replies_are_rejected_with_a_reason_not_dropped() {
    let op = OperationId::Number(42);
    let mut reporter = MockReporter::new();
    reporter.expect_deliver().returning(|_| Ok(()));
    let (report, broker) = run(
        params(&["A"]),
        &[
            b"not json".to_vec(),
            reply(&OperationId::Number(41), "B", &[2]),
            reply(&op, "A", &[1]),
        ],
        &mes(),
        &reporter,
    );
    assert!(report.all_passed());
    let rejected = broker.rejected();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0].0, b"not json");
    assert!(
        rejected[0]
            .1
            .starts_with("malformed: device report is invalid"),
        "{}",
        rejected[0].1
    );
    assert_eq!(rejected[1].1, "unknown operation: no active operation 41");
}

/// A MES outage that outlasts `mes_outage_wait`: the device is retried
/// (with backoff, on the test clock), then left undecided — never logged
/// as failed, never paired; the notification names MES.
#[test]
fn mes_failure_is_reported_and_never_paired() {
    let op = OperationId::Number(42);
    let mut mes = MockMes::new();
    let lookups = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = lookups.clone();
    mes.expect_lookup().returning(move |sn| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(MesError::Unavailable {
            sn: sn.clone(),
            message: "connect error to http://mes/x".into(),
        })
    });
    let mut reporter = MockReporter::new();
    reporter
        .expect_deliver()
        .withf(|p| p.kind == PayloadKind::Pair || p.kind == PayloadKind::Log)
        .never();
    // mockall passes over an exhausted `never()` to the next match, so the
    // catch-all must exclude Pair itself.
    reporter
        .expect_deliver()
        .withf(|p| p.kind == PayloadKind::Notify)
        .times(1)
        .returning(|p| {
            assert!(
                p.body_str().starts_with(
                    r#"{"operationId":42,"scanInfo":[],"error":"MES could not be asked about 1 device(s) (A) for 10 min 0 s: connect error to http://mes/x;"#
                ),
                "{}",
                p.body_str()
            );
            Ok(())
        });
    let (report, _) = run(params(&["A"]), &[reply(&op, "A", &[1])], &mes, &reporter);
    assert_eq!(report.state, OperationState::Failed);
    // 1 s, 2 s, 4 s … capped at 30 s, over 10 minutes: 25 attempts.
    let n = lookups.load(std::sync::atomic::Ordering::SeqCst);
    assert!((20..=30).contains(&n), "{n} lookups");
    assert!(report.devices[0].is_undecided());
}

/// A store that remembers every call, in order.
#[derive(Default)]
struct RecordingStore {
    calls: std::sync::Mutex<Vec<String>>,
    /// Refuse to record the notification's delivery (a full disk).
    full_at_notify: bool,
}

#[async_trait]
impl burnin_core::OperationStore for RecordingStore {
    async fn begin(
        &self,
        p: &OperationParams,
        _: Timestamp,
        _: Timestamp,
    ) -> Result<u64, burnin_core::StoreError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("begin {}", p.operation_id));
        Ok(1)
    }
    async fn reply(
        &self,
        _: &OperationId,
        sn: &SerialNumber,
        _: &[u8],
        _: Timestamp,
    ) -> Result<(), burnin_core::StoreError> {
        self.calls.lock().unwrap().push(format!("reply {sn}"));
        Ok(())
    }
    async fn results(
        &self,
        _: &OperationId,
        r: &[burnin_core::DeviceResult],
        _: &[String],
    ) -> Result<(), burnin_core::StoreError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("results {}", r.len()));
        Ok(())
    }
    async fn delivery(
        &self,
        _: &OperationId,
        kind: PayloadKind,
        outcome: Result<(), &ReportError>,
    ) -> Result<(), burnin_core::StoreError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("delivery {kind} {}", outcome.is_ok()));
        if self.full_at_notify && kind == PayloadKind::Notify {
            return Err(burnin_core::StoreError::Io(
                "state database x: database or disk is full".into(),
            ));
        }
        Ok(())
    }
    async fn finish(
        &self,
        _: &OperationId,
        state: OperationState,
        _: Option<&str>,
        _: Timestamp,
    ) -> Result<(), burnin_core::StoreError> {
        self.calls.lock().unwrap().push(format!("finish {state}"));
        Ok(())
    }
}

/// Reported on main: with the disk full, an operation whose notification
/// was delivered but could not be recorded still showed `done`.
#[test]
fn an_operation_whose_records_could_not_be_written_does_not_end_done() {
    let op = OperationId::Number(42);
    let broker = MemoryBroker::new();
    let (publisher, mut stream) = broker.edge("hwinfo_queue");
    broker
        .send_to_queue("hwinfo_queue", reply(&op, "A", &[1]))
        .unwrap();
    let store = RecordingStore {
        full_at_notify: true,
        ..RecordingStore::default()
    };
    let mut reporter = MockReporter::new();
    reporter.expect_deliver().returning(|_| Ok(()));
    let clock = ManualClock::new(Timestamp::from_unix_seconds(1_800_000_000));
    let report = block_on(run_operation(
        params(&["A"]),
        EdgePorts {
            publisher: &publisher,
            replies: &mut stream,
            mes: &mes(),
            reporter: &reporter,
            store: &store,
            clock: &clock,
            observer: &NoObserver,
        },
    ));
    assert_eq!(report.state, OperationState::Failed);
    assert_eq!(
        report.error.as_deref(),
        Some(
            "the notify payload was delivered but that could not be recorded: \
             state database x: database or disk is full"
        )
    );
    assert_eq!(
        store.calls.lock().unwrap().last().map(String::as_str),
        Some("finish failed")
    );
}

#[test]
fn the_store_sees_every_step_in_order() {
    let op = OperationId::Number(42);
    let broker = MemoryBroker::new();
    let (publisher, mut stream) = broker.edge("hwinfo_queue");
    for r in [
        reply(&op, "A", &[1]),
        reply(&op, "A", &[1]),
        reply(&op, "B", &[2]),
    ] {
        broker.send_to_queue("hwinfo_queue", r).unwrap();
    }
    let store = RecordingStore::default();
    let mut reporter = MockReporter::new();
    reporter.expect_deliver().returning(|_| Ok(()));
    let clock = ManualClock::new(Timestamp::from_unix_seconds(1_800_000_000));
    let report = block_on(run_operation(
        params(&["A", "B"]),
        EdgePorts {
            publisher: &publisher,
            replies: &mut stream,
            mes: &mes(),
            reporter: &reporter,
            store: &store,
            clock: &clock,
            observer: &NoObserver,
        },
    ));
    assert!(report.all_passed());
    assert_eq!(
        *store.calls.lock().unwrap(),
        [
            "begin 42",
            "reply A",
            "reply B",
            "results 2",
            "delivery log true",
            "delivery pair true",
            "delivery notify true",
            "finish done"
        ]
    );
}

#[test]
fn a_restored_operation_sends_only_what_was_not_delivered() {
    use burnin_core::edge::run;
    use burnin_core::{Operation, StoredOperation};
    let op = OperationId::Number(42);
    let a = reply(&op, "A", &[1]);
    let results = vec![burnin_core::DeviceResult::compare(
        sn("A"),
        &DeviceReport::from_slice(&a).unwrap().interfaces,
        &MesAnswer::Record(vec![mac(1)]),
    )];
    let stored = StoredOperation {
        params: params(&["A"]),
        started: Timestamp::from_unix_seconds(1_800_000_000),
        deadline: Timestamp::from_unix_seconds(1_800_000_005),
        replies: vec![burnin_core::StoredReply {
            body: a,
            received: Timestamp::from_unix_seconds(1_800_000_001),
        }],
        results: Some((results, vec![])),
        deliveries: vec![(PayloadKind::Log, Ok(()))],
    };
    let broker = MemoryBroker::new();
    let (publisher, mut stream) = broker.edge("hwinfo_queue");
    let mut reporter = MockReporter::new();
    let mut seq = Sequence::new();
    for kind in [PayloadKind::Pair, PayloadKind::Notify] {
        reporter
            .expect_deliver()
            .withf(move |p| p.kind == kind)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|p| {
                assert_eq!(p.idempotency_key(), format!("42:{}", p.kind));
                Ok(())
            });
    }
    let mut mes = MockMes::new();
    mes.expect_lookup().never();
    let clock = ManualClock::new(Timestamp::from_unix_seconds(1_800_000_100));
    let report = block_on(run(
        Operation::restore(stored),
        EdgePorts {
            publisher: &publisher,
            replies: &mut stream,
            mes: &mes,
            reporter: &reporter,
            store: &burnin_core::NoStore,
            clock: &clock,
            observer: &NoObserver,
        },
    ));
    assert!(report.all_passed(), "{report:?}");
}

#[test]
fn the_router_gives_each_operation_only_its_replies() {
    use burnin_core::edge::{ReplyRouter, run};
    let broker = MemoryBroker::new();
    let (publisher, mut stream) = broker.edge("hwinfo_queue");
    let (one, two) = (OperationId::Number(1), OperationId::Number(2));
    for r in [
        reply(&one, "A", &[1]),
        reply(&two, "B", &[2]),
        reply(&OperationId::Number(3), "A", &[1]),
        b"{}".to_vec(),
    ] {
        broker.send_to_queue("hwinfo_queue", r).unwrap();
    }
    let router = ReplyRouter::new();
    let mut r1 = router.register(one.clone());
    let mut r2 = router.register(two.clone());
    let clock = ManualClock::new(Timestamp::from_unix_seconds(1_800_000_000));
    let mut reporter = MockReporter::new();
    reporter.expect_deliver().returning(|_| Ok(()));
    let mes = mes();
    let start = |id: &OperationId, expected: &str| {
        let mut p = params(&[expected]);
        p.operation_id = id.clone();
        burnin_core::Operation::new(p, clock.now())
    };
    let (op1, op2) = (start(&one, "A"), start(&two, "B"));
    let (rep1, rep2) = block_on(async {
        let pump = router.pump(&mut stream, &|_| {}, &|_| {});
        let ops = futures::future::join(
            run(
                op1,
                EdgePorts {
                    publisher: &publisher,
                    replies: &mut r1,
                    mes: &mes,
                    reporter: &reporter,
                    store: &burnin_core::NoStore,
                    clock: &clock,
                    observer: &NoObserver,
                },
            ),
            run(
                op2,
                EdgePorts {
                    publisher: &publisher,
                    replies: &mut r2,
                    mes: &mes,
                    reporter: &reporter,
                    store: &burnin_core::NoStore,
                    clock: &clock,
                    observer: &NoObserver,
                },
            ),
        );
        futures::pin_mut!(pump, ops);
        match futures::future::select(pump, ops).await {
            futures::future::Either::Right((reports, _)) => reports,
            futures::future::Either::Left(_) => panic!("the pump ended first"),
        }
    });
    assert_eq!(rep1.devices.len(), 1);
    assert_eq!(rep1.devices[0].sn, sn("A"));
    assert!(rep1.all_passed());
    assert_eq!(rep2.devices.len(), 1);
    assert_eq!(rep2.devices[0].sn, sn("B"));
    let rejected = broker.rejected();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0].1, "unknown operation: no active operation 3");
    assert!(rejected[1].1.starts_with("malformed:"));
    assert!(router.is_empty(), "both unregistered when collection ended");
}

/// Replies as a broker hands them over, each with its `redelivered` flag;
/// then nothing more (the window ends the operation).
struct Redelivering(Vec<(Vec<u8>, bool)>);

struct NoAck;

#[async_trait]
impl burnin_core::ports::Acker for NoAck {
    async fn ack(self: Box<Self>) -> Result<(), burnin_core::TransportError> {
        Ok(())
    }
    async fn reject(
        self: Box<Self>,
        _body: Vec<u8>,
        _reason: &str,
    ) -> Result<(), burnin_core::TransportError> {
        Ok(())
    }
}

#[async_trait]
impl burnin_core::ReplyStream for Redelivering {
    async fn next_reply(
        &mut self,
    ) -> Option<Result<burnin_core::Delivery, burnin_core::TransportError>> {
        if self.0.is_empty() {
            return futures::future::pending().await;
        }
        let (body, redelivered) = self.0.remove(0);
        Some(Ok(burnin_core::Delivery::new(
            body,
            redelivered,
            Box::new(NoAck),
        )))
    }
}

#[test]
fn redelivered_replies_are_counted_whatever_their_outcome() {
    let op = OperationId::Number(42);
    let mut reporter = MockReporter::new();
    reporter.expect_deliver().returning(|_| Ok(()));
    let broker = MemoryBroker::new();
    let (publisher, _unused) = broker.edge("hwinfo_queue");
    // A first, then A again redelivered (a duplicate), B redelivered for
    // the first time (accepted), and a redelivered reply that does not parse.
    let mut stream = Redelivering(vec![
        (reply(&op, "A", &[1]), false),
        (reply(&op, "A", &[1]), true),
        (reply(&op, "B", &[2]), true),
        (b"{".to_vec(), true),
    ]);
    let clock = ManualClock::new(Timestamp::from_unix_seconds(1_800_000_000));
    let report = block_on(run_operation(
        params(&[]),
        EdgePorts {
            publisher: &publisher,
            replies: &mut stream,
            mes: &mes(),
            reporter: &reporter,
            store: &burnin_core::NoStore,
            clock: &clock,
            observer: &NoObserver,
        },
    ));
    let c = report.counters;
    assert_eq!(
        (c.accepted, c.duplicates, c.rejected, c.redelivered),
        (2, 1, 1, 3)
    );
    assert_eq!(report.state, OperationState::Done);
}

/// SPEC §10.1 through the whole use case: `requireLink` fails an interface
/// without carrier, the permanent address is what is compared and logged,
/// a MAC two devices report is a finding on both, and the factory payloads
/// keep the seed's format.
#[test]
fn require_link_permanent_addresses_and_shared_macs_end_to_end() {
    let op = OperationId::Number(42);
    let with = |serial: &str, current: u8, perm: u8, carrier: bool| -> Vec<u8> {
        let mut r = DeviceReport::from_slice(&reply(&op, serial, &[current])).unwrap();
        let i = &mut r.interfaces[0];
        i.permaddr = Some(mac(perm));
        i.addr_assign_type = Some(burnin_core::AddrAssignType::Set);
        i.link = Some(burnin_core::LinkState {
            carrier: Some(carrier),
            operstate: Some(if carrier { "up" } else { "down" }.into()),
            speed_mbps: carrier.then_some(1000),
        });
        r.to_json()
    };
    let mut reporter = MockReporter::new();
    reporter.expect_deliver().returning(|p| {
        match p.kind {
            // The permanent addresses (1 and 2) are logged, never the
            // current ones (9); B has no link.
            PayloadKind::Log => assert_eq!(
                p.body_str(),
                concat!(
                    r#"{"operationid":42,"pairInfo":[],"scaninfo":["#,
                    r#"{"macinfo":[{"interface":"eth0","macaddr":"02:00:00:00:00:01","scanstatus":"1"}],"sn":"A","result":"1"},"#,
                    r#"{"macinfo":[{"interface":"eth0","macaddr":"02:00:00:00:00:02","scanstatus":"0"}],"sn":"B","result":"0"},"#,
                    r#"{"macinfo":[{"interface":"eth0","macaddr":"02:00:00:00:00:01","scanstatus":"0"}],"sn":"C","result":"0"}]}"#
                )
            ),
            PayloadKind::Pair => {
                assert_eq!(p.body_str(), r#"{"snArray":["A"],"operationId":42}"#)
            }
            _ => {}
        }
        Ok(())
    });
    let mut p = params(&["A", "B", "C"]);
    p.require_link = true;
    let (report, _) = run(
        p,
        &[
            with("A", 9, 1, true),
            with("B", 9, 2, false),
            with("C", 9, 1, true),
        ],
        &mes(),
        &reporter,
    );
    let messages = |n: usize| -> Vec<&str> {
        report.devices[n]
            .findings
            .iter()
            .map(|f| f.message.as_str())
            .collect()
    };
    assert_eq!(
        messages(0),
        [
            "eth0: MAC overridden by software (current 02:00:00:00:00:09)",
            "eth0: MAC 02:00:00:00:00:01 also reported by C"
        ]
    );
    assert_eq!(
        messages(1),
        [
            "eth0: MAC overridden by software (current 02:00:00:00:00:09)",
            "eth0: no link (no carrier); requireLink fails it"
        ]
    );
    assert_eq!(
        messages(2),
        [
            "eth0: MAC overridden by software (current 02:00:00:00:00:09)",
            "eth0: MAC 02:00:00:00:00:01 also reported by A"
        ]
    );
    // The current address 9 is shared by all three, but it is not the one
    // compared: no finding names it.
    assert!(
        report
            .devices
            .iter()
            .flat_map(|d| &d.findings)
            .all(|f| !f.message.contains("MAC 02:00:00:00:00:09"))
    );
}

/// A log shared by [`GateStore`] and [`LogAcker`], in call order.
type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Acks by writing `ack <name>` to the log.
struct LogAcker {
    name: String,
    log: Log,
}

#[async_trait]
impl burnin_core::ports::Acker for LogAcker {
    async fn ack(self: Box<Self>) -> Result<(), burnin_core::TransportError> {
        self.log.lock().unwrap().push(format!("ack {}", self.name));
        Ok(())
    }
    async fn reject(
        self: Box<Self>,
        _: Vec<u8>,
        reason: &str,
    ) -> Result<(), burnin_core::TransportError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("reject {}: {reason}", self.name));
        Ok(())
    }
}

/// Hands out the given deliveries, then nothing (pending for ever).
struct ListStream(std::collections::VecDeque<burnin_core::Delivery>);

#[async_trait]
impl burnin_core::ReplyStream for ListStream {
    async fn next_reply(
        &mut self,
    ) -> Option<Result<burnin_core::Delivery, burnin_core::TransportError>> {
        match self.0.pop_front() {
            Some(d) => Some(Ok(d)),
            None => futures::future::pending().await,
        }
    }
}

/// A store whose `reply` calls all wait until `group` of them are waiting,
/// then "commit" together (like a group commit); `fail` is refused.
struct GateStore {
    group: usize,
    fail: Option<&'static str>,
    log: Log,
    waiting: std::sync::Mutex<Vec<futures::channel::oneshot::Sender<()>>>,
}

#[async_trait]
impl burnin_core::OperationStore for GateStore {
    async fn begin(
        &self,
        _: &OperationParams,
        _: Timestamp,
        _: Timestamp,
    ) -> Result<u64, burnin_core::StoreError> {
        Ok(1)
    }
    async fn reply(
        &self,
        _: &OperationId,
        sn: &SerialNumber,
        _: &[u8],
        _: Timestamp,
    ) -> Result<(), burnin_core::StoreError> {
        let rx = {
            let (tx, rx) = futures::channel::oneshot::channel();
            let mut waiting = self.waiting.lock().unwrap();
            self.log.lock().unwrap().push(format!("reply {sn}"));
            waiting.push(tx);
            if waiting.len() == self.group {
                self.log.lock().unwrap().push("commit".into());
                for tx in waiting.drain(..) {
                    let _ = tx.send(());
                }
            }
            rx
        };
        rx.await.expect("released");
        if self.fail == Some(sn.as_str()) {
            return Err(burnin_core::StoreError::Io("disk full".into()));
        }
        Ok(())
    }
    async fn results(
        &self,
        _: &OperationId,
        r: &[burnin_core::DeviceResult],
        _: &[String],
    ) -> Result<(), burnin_core::StoreError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("results {}", r.len()));
        Ok(())
    }
    async fn delivery(
        &self,
        _: &OperationId,
        _: PayloadKind,
        _: Result<(), &ReportError>,
    ) -> Result<(), burnin_core::StoreError> {
        Ok(())
    }
    async fn finish(
        &self,
        _: &OperationId,
        _: OperationState,
        _: Option<&str>,
        _: Timestamp,
    ) -> Result<(), burnin_core::StoreError> {
        Ok(())
    }
}

/// Runs an operation expecting A, B, C over a [`GateStore`] that commits
/// all three together; returns the report and the log.
fn run_gated(fail: Option<&'static str>) -> (OperationReport, Vec<String>) {
    let op = OperationId::Number(42);
    let log = Log::default();
    let deliveries = ["A", "B", "C"]
        .into_iter()
        .map(|s| {
            burnin_core::Delivery::new(
                reply(&op, s, &[1]),
                false,
                Box::new(LogAcker {
                    name: s.into(),
                    log: log.clone(),
                }),
            )
        })
        .collect();
    let store = GateStore {
        group: 3,
        fail,
        log: log.clone(),
        waiting: Default::default(),
    };
    let mut reporter = MockReporter::new();
    reporter.expect_deliver().returning(|_| Ok(()));
    let broker = MemoryBroker::new();
    let (publisher, _) = broker.edge("hwinfo_queue");
    let clock = ManualClock::new(Timestamp::from_unix_seconds(1_800_000_000));
    let report = block_on(run_operation(
        params(&["A", "B", "C"]),
        EdgePorts {
            publisher: &publisher,
            replies: &mut ListStream(deliveries),
            mes: &mes(),
            reporter: &reporter,
            store: &store,
            clock: &clock,
            observer: &NoObserver,
        },
    ));
    let log = log.lock().unwrap().clone();
    (report, log)
}

/// Group commit needs the use case to hand the store every reply that
/// arrived while a commit runs: with one reply call at a time this store
/// would never release the first one (and the test would hang).
#[test]
fn replies_are_recorded_together_and_each_acked_only_after_its_commit() {
    let (report, log) = run_gated(None);
    assert_eq!(report.state, OperationState::Done, "{:?}", report.error);
    assert_eq!(report.devices.len(), 3);
    assert_eq!(&log[..4], ["reply A", "reply B", "reply C", "commit"]);
    let mut acks = log[4..7].to_vec();
    acks.sort();
    assert_eq!(acks, ["ack A", "ack B", "ack C"]);
    assert_eq!(log[7..], ["results 3"]);
}

#[test]
fn a_reply_the_store_refuses_is_not_acked_and_fails_the_operation() {
    let (report, log) = run_gated(Some("B"));
    assert_eq!(report.state, OperationState::Failed);
    let error = report.error.expect("an error");
    assert!(
        error.contains("a reply could not be recorded: disk full"),
        "{error}"
    );
    assert!(log.contains(&"ack A".to_owned()), "{log:?}");
    assert!(log.contains(&"ack C".to_owned()), "{log:?}");
    assert!(!log.iter().any(|l| l == "ack B"), "B was acked: {log:?}");
}

/// Confirms the command only after it was polled `polls` times, as a
/// broker confirms a command fanned out to many agents' queues once it
/// reached them all, and notes when it did.
struct SlowConfirm {
    events: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    polls: usize,
}

#[async_trait]
impl burnin_core::CommandPublisher for SlowConfirm {
    async fn publish(
        &self,
        _command: &burnin_core::ScanCommand,
        _window: Duration,
    ) -> Result<(), burnin_core::TransportError> {
        for _ in 0..self.polls {
            // Pending once, woken at once.
            let mut yielded = false;
            futures::future::poll_fn(|cx| {
                if yielded {
                    std::task::Poll::Ready(())
                } else {
                    yielded = true;
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                }
            })
            .await;
        }
        self.events.lock().unwrap().push("confirmed".into());
        Ok(())
    }
}

#[test]
fn replies_are_taken_and_looked_up_before_the_command_is_confirmed() {
    let op = OperationId::Number(42);
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let publisher = SlowConfirm {
        events: events.clone(),
        polls: 20,
    };
    let mut reporter = MockReporter::new();
    reporter.expect_deliver().returning(|_| Ok(()));
    let mut mes = MockMes::new();
    let looked = events.clone();
    mes.expect_lookup().times(1).returning(move |sn| {
        looked.lock().unwrap().push(format!("lookup {sn}"));
        Ok(MesAnswer::Record(vec![mac(1)]))
    });
    let broker = MemoryBroker::new();
    let (_, mut stream) = broker.edge("hwinfo_queue");
    broker
        .send_to_queue("hwinfo_queue", reply(&op, "A", &[1]))
        .unwrap();
    let clock = ManualClock::new(Timestamp::from_unix_seconds(1_800_000_000));
    let report = block_on(run_operation(
        params(&["A"]),
        EdgePorts {
            publisher: &publisher,
            replies: &mut stream,
            mes: &mes,
            reporter: &reporter,
            store: &burnin_core::NoStore,
            clock: &clock,
            observer: &NoObserver,
        },
    ));
    assert!(report.all_passed(), "{report:?}");
    assert_eq!(*events.lock().unwrap(), ["lookup A", "confirmed"]);
}

#[test]
fn a_command_that_could_not_be_published_aborts_an_operation_without_replies() {
    struct Down;
    #[async_trait]
    impl burnin_core::CommandPublisher for Down {
        async fn publish(
            &self,
            _command: &burnin_core::ScanCommand,
            _window: Duration,
        ) -> Result<(), burnin_core::TransportError> {
            Err(burnin_core::TransportError::Unavailable(
                "the broker is down".into(),
            ))
        }
    }
    let mut reporter = MockReporter::new();
    reporter
        .expect_deliver()
        .withf(|p| p.kind == PayloadKind::Notify)
        .times(1)
        .returning(|p| {
            assert!(
                p.body_str()
                    .contains("could not publish the scan command: the broker is down"),
                "{}",
                p.body_str()
            );
            Ok(())
        });
    reporter
        .expect_deliver()
        .withf(|p| p.kind != PayloadKind::Notify)
        .never();
    let broker = MemoryBroker::new();
    let (_, mut stream) = broker.edge("hwinfo_queue");
    let clock = ManualClock::new(Timestamp::from_unix_seconds(1_800_000_000));
    let report = block_on(run_operation(
        params(&["A"]),
        EdgePorts {
            publisher: &Down,
            replies: &mut stream,
            mes: &MockMes::new(),
            reporter: &reporter,
            store: &burnin_core::NoStore,
            clock: &clock,
            observer: &NoObserver,
        },
    ));
    assert_eq!(report.state, OperationState::Failed);
    assert!(
        report
            .error
            .as_deref()
            .is_some_and(|e| e.contains("could not publish")),
        "{report:?}"
    );
}
