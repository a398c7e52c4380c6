//! The factory stand-in's injected MES failures, over real HTTP.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use burnin_testkit::FactoryStandIn;

/// `GET path` (HTTP/1.1, `Connection: close`): the status line and headers
/// (lower-case), and the body.
fn get(f: &FactoryStandIn, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(f.addr()).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        f.addr()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn mes_failing_answers_every_lookup_with_the_status_and_retry_after_until_normal() {
    let f = FactoryStandIn::start();
    f.set_mes("SN1", &["02:00:00:00:00:01"]);
    let (head, _) = get(&f, "/mes/SN1");
    assert!(head.starts_with("http/1.1 200"), "{head}");

    f.mes_failing(429, Some(3));
    for sn in ["SN1", "UNKNOWN"] {
        let (head, _) = get(&f, &format!("/mes/{sn}"));
        assert!(head.starts_with("http/1.1 429"), "{head}");
        assert!(head.contains("\r\nretry-after: 3"), "{head}");
    }
    f.mes_failing(502, None);
    let (head, _) = get(&f, "/device_info/SN1");
    assert!(head.starts_with("http/1.1 502"), "{head}");
    assert!(!head.contains("retry-after"), "{head}");
    f.mes_normal();
    let (head, body) = get(&f, "/mes/SN1");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(body.contains("02:00:00:00:00:01"), "{body}");
    let (head, _) = get(&f, "/mes/UNKNOWN");
    assert!(head.starts_with("http/1.1 404"), "{head}");

    // Each request is recorded with the status it was answered with.
    let statuses: Vec<(String, u16)> = f
        .take_requests()
        .into_iter()
        .map(|r| (r.path, r.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("/mes/SN1".to_owned(), 200),
            ("/mes/SN1".to_owned(), 429),
            ("/mes/UNKNOWN".to_owned(), 429),
            ("/device_info/SN1".to_owned(), 502),
            ("/mes/SN1".to_owned(), 200),
            ("/mes/UNKNOWN".to_owned(), 404),
        ]
    );
}

#[test]
fn a_path_that_is_down_is_recorded_as_answered_503() {
    let f = FactoryStandIn::start();
    f.down("/mes/SN9");
    let (head, _) = get(&f, "/mes/SN9");
    assert!(head.starts_with("http/1.1 503"), "{head}");
    f.up("/mes/SN9");
    get(&f, "/mes/SN9");
    let statuses: Vec<u16> = f.take_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 404]);
}
