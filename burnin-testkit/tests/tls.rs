//! TLS to the broker (SPEC §8): a private RabbitMQ node with an AMQPS-only
//! listener whose certificate is signed by a CA made here; the real agent
//! and the real scan connect with `amqps://` and `--amqp-ca-file`; a wrong
//! CA is refused with a clear error.

#![allow(clippy::print_stderr)]

use std::path::Path;
use std::process::{Command, Stdio};

use burnin_testkit::{Device, NodeTls, PrivateNode, binary, wait_for_agents};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// Writes a CA and a server certificate for localhost/127.0.0.1 into `dir`;
/// returns the node's TLS files.
fn make_pki(dir: &Path, ca_name: &str) -> NodeTls {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();

    let tls = NodeTls {
        ca: dir.join(format!("{ca_name}.pem")),
        cert: dir.join(format!("{ca_name}-server.pem")),
        key: dir.join(format!("{ca_name}-server.key")),
    };
    std::fs::write(&tls.ca, ca_cert.pem()).unwrap();
    std::fs::write(&tls.cert, cert.pem()).unwrap();
    std::fs::write(&tls.key, key.serialize_pem()).unwrap();
    tls
}

fn node_available() -> bool {
    if let Some(why) = burnin_testkit::vhost::broker_unavailable() {
        // Panics unless BURNIN_SKIP_BROKER_TESTS=1.
        burnin_testkit::vhost::skip_or_fail("tls", &why);
        return false;
    }
    true
}

#[test]
fn agent_and_scan_connect_over_tls_and_a_wrong_ca_is_refused() {
    if !node_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "burnin-test-ca");
    let wrong = make_pki(dir.path(), "some-other-ca");
    let node = PrivateNode::start(Some(&pki));

    let tree = dir.path().join("dut");
    Device::new("TLS-1", &["02:00:00:00:0a:01"]).write_tree(&tree);
    let mes = dir.path().join("mes.json");
    std::fs::write(&mes, r#"{"TLS-1": ["02:00:00:00:0a:01"]}"#).unwrap();
    let out = dir.path().join("out");

    let mut agent = Command::new(binary("burnin-agent"))
        .args(["run", "--amqp-url", &node.url(), "--amqp-ca-file"])
        .arg(&pki.ca)
        .arg("--sysfs-root")
        .arg(&tree)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ready once it consumes its command queue.
    wait_for_agents(
        || {
            node.ctl(&[
                "list_consumers",
                "--quiet",
                "--no-table-headers",
                "queue_name",
            ])
        },
        1,
    );

    let scan = |ca: &Path, op: &str| {
        Command::new(binary("burnin-edge"))
            .args(["scan", "--amqp-url", &node.url(), "--amqp-ca-file"])
            .arg(ca)
            .arg("--mes-file")
            .arg(&mes)
            .arg("--out-dir")
            .arg(&out)
            .args(["--operation-id", op, "--expect", "TLS-1", "--window", "10s"])
            .output()
            .unwrap()
    };
    let ok = scan(&pki.ca, "31");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    let log = std::fs::read_to_string(out.join("31.log.json")).unwrap();
    assert!(log.contains(r#""sn":"TLS-1","result":"1""#), "{log}");

    let refused = scan(&wrong.ca, "32");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(
        stderr.contains("UnknownIssuer") || stderr.contains("unknown issuer"),
        "{stderr}"
    );
    assert!(!stderr.contains("guest:guest"), "password shown: {stderr}");
    assert!(!out.join("32.log.json").exists());

    let _ = agent.kill();
    let _ = agent.wait();
}
