//! `amqps://` with a private CA (`--amqp-ca-file`): a TLS front (rustls,
//! certificates from a throw-away CA) forwards to the local RabbitMQ, so the
//! broker's own configuration stays untouched.

mod common;

use std::sync::Arc;
use std::time::Duration;

use burnin_core::{DeviceReport, OperationId, ReplyStream};
use burnin_testkit::vhost::TestVhost;
use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::PrivatePkcs8KeyDer};

/// Starts the TLS front; returns its port and the CA certificate (PEM).
async fn tls_front() -> (u16, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![server_cert.der().clone()],
        PrivatePkcs8KeyDer::from(server_key.serialize_der()).into(),
    )
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut broker) = TcpStream::connect("127.0.0.1:5672").await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
            });
        }
    });
    (port, ca.pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_with_a_private_ca_file() {
    let Some(vhost) = TestVhost::new("tls") else {
        return;
    };
    let (port, ca_pem) = tls_front().await;
    let dir = tempfile_dir();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let url = format!("amqps://guest:guest@127.0.0.1:{port}/{}", vhost.name());

    // Without the CA the broker's certificate is not trusted.
    let err = burnin_amqp::agent::connect(config(&url)).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.to_lowercase().contains("certificate") || text.contains("UnknownIssuer"),
        "{text}"
    );
    assert!(text.contains("--amqp-ca-file"), "{text}");
    assert!(!text.contains("guest:guest"), "{text}");

    // With it, an agent serves over TLS.
    let (_publisher, mut stream) = burnin_amqp::edge::connect(config(&vhost.url()))
        .await
        .unwrap();
    let mut tls_config = config(&url);
    tls_config.ca_file = Some(ca_file);
    let mut agent = start_agent(tls_config, 12).await;
    let raw = Raw::connect(&vhost.url()).await;
    raw.publish(
        "devicescan",
        "",
        &command(
            OperationId::Number(12),
            "hwinfo_queue",
            Duration::from_secs(30),
        ),
    )
    .await;
    assert_eq!(
        agent.next_outcome(Duration::from_secs(10)).await,
        "replied to operation 12"
    );
    let d = tokio::time::timeout(Duration::from_secs(5), stream.next_reply())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(DeviceReport::from_slice(&d.body).unwrap().sn, sn(12));
    d.ack().await.unwrap();
    agent.stop().await;
    raw.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "burnin-amqp-tls-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
