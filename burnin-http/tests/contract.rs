//! The factory contract (docs/protocol.md, "For MES and factory
//! implementers"): what each status and body means to burnin, against real
//! HTTP servers on 127.0.0.1 — wiremock, and a rustls front with a private
//! CA for `--http-ca-file`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use burnin_core::{
    FactoryReporter, MesAnswer, MesError, MesSource, OperationId, Payload, PayloadKind,
    ReportError, SerialNumber, payload,
};
use burnin_http::{HttpConfig, HttpConfigBuilder, HttpError, HttpMesSource, HttpReporter};
use common::devices;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::PrivatePkcs8KeyDer};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn sn(s: &str) -> SerialNumber {
    s.parse().unwrap()
}

/// A configuration for `base` with fast backoff.
fn config(base: &str) -> HttpConfigBuilder {
    HttpConfig::builder(
        format!("{base}/api/device_info/{{sn}}"),
        format!("{base}/api/log"),
        format!("{base}/api/notify"),
    )
    .pair_url(format!("{base}/api/pair"))
    .backoff(Duration::from_millis(1), Duration::from_millis(5))
}

fn reporter(cfg: HttpConfigBuilder) -> HttpReporter {
    HttpReporter::new(&cfg.build().unwrap()).unwrap()
}

fn log_payload() -> Payload {
    payload::log(&OperationId::Number(77), &devices())
}

/// Delivers the log to a server answering every POST with `answer`, and
/// returns the outcome and how many POSTs it took.
async fn deliver_against(answer: ResponseTemplate) -> (Result<(), ReportError>, usize) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer)
        .mount(&server)
        .await;
    let got = reporter(config(&server.uri()))
        .deliver(&log_payload())
        .await;
    let n = server.received_requests().await.unwrap().len();
    (got, n)
}

fn refused_text(r: Result<(), ReportError>) -> String {
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            ReportError::Refused {
                kind: PayloadKind::Log,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_retryable(), "{e:?}");
    e.to_string()
}

// ------------------------------------------------------------ delivered

#[tokio::test]
async fn a_2xx_with_an_empty_or_json_body_is_delivered() {
    for answer in [
        ResponseTemplate::new(200),
        ResponseTemplate::new(204),
        ResponseTemplate::new(201).set_body_string("  \r\n"),
        ResponseTemplate::new(200)
            .set_body_raw(r#"{"success": true, "id": 9}"#, "application/json"),
        ResponseTemplate::new(202).set_body_raw("{}", "application/json"),
        // JSON that says nothing about success, whatever its content type.
        ResponseTemplate::new(200).set_body_raw(r#"["ok"]"#, "text/plain"),
        ResponseTemplate::new(200).set_body_raw(r#"{"success": "false"}"#, "application/json"),
    ] {
        let (got, n) = deliver_against(answer).await;
        assert_eq!(got, Ok(()));
        assert_eq!(n, 1, "delivered at the first attempt");
    }
}

#[tokio::test]
async fn a_200_saying_success_false_is_not_delivered_and_not_retried() {
    let (got, n) = deliver_against(ResponseTemplate::new(200).set_body_raw(
        r#"{"success": false, "message": "operation 77 is closed"}"#,
        "application/json",
    ))
    .await;
    let text = refused_text(got);
    assert_eq!(n, 1, "a refusal in the body is final");
    assert!(text.contains("HTTP 200 OK"), "{text}");
    assert!(text.contains(r#"says "success": false"#), "{text}");
    assert!(text.contains("operation 77 is closed"), "{text}");
}

#[tokio::test]
async fn a_200_html_page_is_not_delivered_and_names_the_content_type() {
    let (got, n) = deliver_against(ResponseTemplate::new(200).set_body_raw(
        "<html><body>Please sign in</body></html>",
        "text/html; charset=utf-8",
    ))
    .await;
    let text = refused_text(got);
    assert_eq!(n, 1);
    assert!(
        text.contains("not JSON (content type text/html; charset=utf-8)"),
        "{text}"
    );
    assert!(text.contains("proxy or login page"), "{text}");
    assert!(text.contains("Please sign in"), "{text}");
}

#[tokio::test]
async fn a_2xx_body_over_1_mib_is_refused() {
    let big = format!("{{\"echo\": \"{}\"}}", "x".repeat(1024 * 1024));
    let (got, _) =
        deliver_against(ResponseTemplate::new(200).set_body_raw(big, "application/json")).await;
    let text = refused_text(got);
    assert!(text.contains("larger than 1048576 bytes"), "{text}");
}

// ------------------------------------------------------ replayed keys

#[tokio::test]
async fn a_409_is_retried_with_the_same_key_and_body_honouring_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(409)
                .insert_header("retry-after", "1")
                .set_body_string("still processing 77:log"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("{}", "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let p = log_payload();
    let started = Instant::now();
    reporter(config(&server.uri())).deliver(&p).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After: 1 on the 409 was not honoured ({waited:?})"
    );
    let got = server.received_requests().await.unwrap();
    assert_eq!(got.len(), 2);
    for r in &got {
        assert_eq!(
            r.headers.get("idempotency-key").unwrap(),
            &p.idempotency_key()
        );
        assert_eq!(r.body, p.body);
    }
}

#[tokio::test]
async fn a_409_that_never_clears_ends_unavailable_after_the_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(409))
        .expect(3)
        .mount(&server)
        .await;
    let e = reporter(config(&server.uri()).attempts(3))
        .deliver(&log_payload())
        .await
        .unwrap_err();
    assert!(matches!(e, ReportError::Unavailable { .. }), "{e:?}");
    assert!(e.is_retryable());
    let text = e.to_string();
    assert!(text.contains("gave up after 3 attempts"), "{text}");
    assert!(
        text.contains("still processing this Idempotency-Key"),
        "{text}"
    );
}

#[tokio::test]
async fn a_422_is_a_hard_error_saying_the_key_was_reused() {
    let (got, n) = deliver_against(
        ResponseTemplate::new(422).set_body_string("key 77:log was used with another body"),
    )
    .await;
    let text = refused_text(got);
    assert_eq!(n, 1, "a 422 is not retried");
    assert!(
        text.contains("this Idempotency-Key was already used with another body"),
        "{text}"
    );
    assert!(
        text.contains("key 77:log was used with another body"),
        "{text}"
    );
}

#[tokio::test]
async fn a_409_or_422_from_mes_is_an_ordinary_final_4xx() {
    // Only POSTs carry an Idempotency-Key; a GET's 409 means nothing more.
    for status in [409, 422] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status))
            .expect(1)
            .mount(&server)
            .await;
        let e = HttpMesSource::new(&config(&server.uri()).build().unwrap())
            .unwrap()
            .lookup(&sn("Q1"))
            .await
            .unwrap_err();
        assert!(matches!(e, MesError::BadAnswer { .. }), "{e:?}");
        assert!(!e.to_string().contains("Idempotency-Key"), "{e}");
    }
}

// --------------------------------------------------- other statuses

#[tokio::test]
async fn a_429_with_retry_after_then_200_is_delivered_after_the_wait() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let started = Instant::now();
    reporter(config(&server.uri()))
        .deliver(&log_payload())
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_500_then_200_is_delivered_on_the_retry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("db restarting"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    reporter(config(&server.uri()))
        .deliver(&log_payload())
        .await
        .unwrap();
    let got = server.received_requests().await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body, got[1].body);
}

#[tokio::test]
async fn a_400_is_a_hard_error_at_once() {
    let (got, n) =
        deliver_against(ResponseTemplate::new(400).set_body_string("scaninfo missing")).await;
    let text = refused_text(got);
    assert_eq!(n, 1);
    assert!(
        text.contains("HTTP 400 Bad Request, body: scaninfo missing"),
        "{text}"
    );
}

#[test]
fn the_total_retry_budget_is_bounded_and_stated() {
    // attempts × timeout + (attempts − 1) × max(backoff cap, Retry-After cap)
    let c = HttpConfig::builder("http://m/{sn}", "http://f/l", "http://f/n")
        .build()
        .unwrap();
    assert_eq!(c.request_budget(), Duration::from_secs(5 * 10 + 4 * 30));
    let c = HttpConfig::builder("http://m/{sn}", "http://f/l", "http://f/n")
        .attempts(101)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(c.request_budget(), Duration::from_secs(101 * 60 + 100 * 30));
}

// ------------------------------------------------------------------ MES

#[tokio::test]
async fn mes_sn_must_match_exactly_case_included() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"sn": "q186i15901", "macs": []}"#, "application/json"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let e = HttpMesSource::new(&config(&server.uri()).build().unwrap())
        .unwrap()
        .lookup(&sn("Q186I15901"))
        .await
        .unwrap_err();
    assert!(matches!(e, MesError::BadAnswer { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains(r#"the record is for serial "q186i15901", not "Q186I15901""#),
        "{text}"
    );
    assert!(text.contains("matched exactly, case included"), "{text}");
}

#[tokio::test]
async fn mes_empty_macs_is_a_known_device_with_no_cards() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"sn": "Q186I15901", "macs": []}"#, "application/json"),
        )
        .mount(&server)
        .await;
    let answer = HttpMesSource::new(&config(&server.uri()).build().unwrap())
        .unwrap()
        .lookup(&sn("Q186I15901"))
        .await
        .unwrap();
    assert_eq!(answer, MesAnswer::Record(vec![]));
    // And every card scanned on that device then fails.
    let card = burnin_core::InterfaceReport {
        lldp: None,
        interface: "enp4s0".into(),
        macaddr: "e0:18:7d:2e:ca:68".parse().unwrap(),
        permaddr: None,
        addr_assign_type: None,
        link: None,
        pci: burnin_core::PciDevice {
            pcie_link: None,
            slot: "0000:04:00.0".into(),
            vendor: "0x8086".into(),
            device: "0x1533".into(),
            class: "0x020000".into(),
            driver: Some("igb".into()),
        },
    };
    let r = burnin_core::DeviceResult::compare("Q186I15901".parse().unwrap(), &[card], &answer);
    assert_eq!(r.result, burnin_core::Verdict::Fail);
    assert_eq!(r.macinfo.len(), 1);
    assert_eq!(r.macinfo[0].scanstatus, burnin_core::ScanStatus::Mismatch);
}

#[tokio::test]
async fn mes_404_unknown_and_outage_are_told_apart() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/device_info/GONE"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/device_info/DOWN"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let m = HttpMesSource::new(&config(&server.uri()).attempts(2).build().unwrap()).unwrap();
    assert_eq!(m.lookup(&sn("GONE")).await, Ok(MesAnswer::Unknown));
    let e = m.lookup(&sn("DOWN")).await.unwrap_err();
    assert!(
        matches!(e, MesError::Unavailable { .. }) && e.is_retryable(),
        "{e:?}"
    );
}

// --------------------------------------------------------------- tokens

#[tokio::test]
async fn mes_token_goes_to_mes_and_factory_token_to_the_posts() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer mes-tok"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(header("authorization", "Bearer factory-tok"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let cfg = config(&server.uri())
        .token("factory-tok")
        .mes_token("mes-tok")
        .build()
        .unwrap();
    assert!(!format!("{cfg:?}").contains("mes-tok"));
    let answer = HttpMesSource::new(&cfg).unwrap().lookup(&sn("Q1")).await;
    assert_eq!(answer, Ok(MesAnswer::Unknown));
    HttpReporter::new(&cfg)
        .unwrap()
        .deliver(&log_payload())
        .await
        .unwrap();
}

#[tokio::test]
async fn without_mes_token_the_factory_token_still_goes_to_mes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer factory-tok"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let cfg = config(&server.uri()).token("factory-tok").build().unwrap();
    let answer = HttpMesSource::new(&cfg).unwrap().lookup(&sn("Q1")).await;
    assert_eq!(answer, Ok(MesAnswer::Unknown));
}

#[tokio::test]
async fn a_mes_token_echoed_back_is_scrubbed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_string("bad token mes-SECRET-1"))
        .mount(&server)
        .await;
    let cfg = config(&server.uri())
        .mes_token("mes-SECRET-1")
        .build()
        .unwrap();
    let e = HttpMesSource::new(&cfg)
        .unwrap()
        .lookup(&sn("Q1"))
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("mes-SECRET-1"), "{e}");
    assert!(e.to_string().contains("bad token ***"), "{e}");
    let e = config("http://127.0.0.1:9")
        .mes_token("a\nb")
        .build()
        .unwrap_err();
    assert!(e.to_string().starts_with("--mes-token is invalid"), "{e}");
}

// ------------------------------------------------------- private CA

/// A TLS front (a throw-away CA's certificate for 127.0.0.1) forwarding to
/// `backend`; returns the `https://` base and the CA in PEM.
async fn tls_front(backend: std::net::SocketAddr) -> (String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    )
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (format!("https://127.0.0.1:{port}"), ca.pem())
}

#[tokio::test]
async fn https_with_a_private_ca_file() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"sn": "Q1", "macs": ["e0:18:7d:2e:ca:68"]}"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let (base, ca_pem) = tls_front(*server.address()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();

    // Without the CA the certificate is not trusted: a connect failure.
    let e = HttpMesSource::new(&config(&base).attempts(1).build().unwrap())
        .unwrap()
        .lookup(&sn("Q1"))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.to_lowercase().contains("certificate") || text.contains("UnknownIssuer"),
        "{text}"
    );

    // With it, MES and the factory POSTs work over HTTPS.
    let cfg = config(&base).ca_file(&ca_file).build().unwrap();
    let answer = HttpMesSource::new(&cfg).unwrap().lookup(&sn("Q1")).await;
    assert!(
        matches!(answer, Ok(MesAnswer::Record(ref m)) if m.len() == 1),
        "{answer:?}"
    );
    HttpReporter::new(&cfg)
        .unwrap()
        .deliver(&log_payload())
        .await
        .unwrap();
    let got = server.received_requests().await.unwrap();
    assert_eq!(got.len(), 2, "both went through the TLS front");
}

#[test]
fn a_bad_ca_file_is_refused_at_build_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let e = config("https://127.0.0.1:9")
        .ca_file(&missing)
        .build()
        .unwrap_err();
    assert!(matches!(e, HttpError::InvalidSetting { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.starts_with("--http-ca-file is invalid"), "{text}");
    assert!(text.contains("nope.pem cannot be read"), "{text}");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let e = config("https://127.0.0.1:9")
        .ca_file(&junk)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("holds no certificate"), "{e}");
}
