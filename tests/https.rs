//! HTTPS built in: a call on a LAN address (not loopback, so the browser
//! needs a secure context for the camera) over HTTPS with the development
//! certificate; plain HTTP redirects there. And a certificate replaced on
//! disk is served to new connections without a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::browser::{Browser, Driver};
use crate::support::calls::wait_all_decoding_hd;
use crate::support::netlab::NetNs;
use crate::support::{Server, ServerOptions};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_https_on_a_lan_address_has_camera_and_microphone() {
    // The namespace only lends an address that is not loopback: Chromium
    // treats 127.0.0.0/8 as secure even over plain HTTP.
    let ns = NetNs::new();
    let ip = std::net::IpAddr::V4(ns.host_ip);
    let server = Server::start_with(ServerOptions {
        ip,
        env: vec![
            ("CARECALL_HTTPS_ENABLED".into(), "true".into()),
            ("CARECALL_HTTPS_ADDR".into(), format!("{ip}:0")),
        ],
        ..ServerOptions::default()
    });
    assert!(
        server.base_url.starts_with("https://"),
        "{}",
        server.base_url
    );
    let spki = server
        .https_spki
        .clone()
        .expect("the development certificate's key hash");

    let driver = Driver::start().await.with_trusted_spki(&spki);
    let mut browsers = Vec::new();
    for role in ["home", "clinician"] {
        let b = driver.browser().await;
        b.join(&server.link("lan-1", role, role, "1h")).await;
        browsers.push(b);
    }
    let refs: Vec<&Browser> = browsers.iter().collect();
    wait_all_decoding_hd(&refs, 1, Duration::from_secs(60)).await;
    for b in &browsers {
        let page = b
            .eval("return [location.origin, window.isSecureContext, window.carecall.metrics.connectedMs !== null];")
            .await;
        println!("page: {page}");
        assert_eq!(page[0], server.base_url.as_str());
        assert_eq!(page[1], true, "a secure context");
        // Camera and microphone were opened: each browser sends both.
        let sending = b
            .eval("const s = document.getElementById('self-video').srcObject; return s ? s.getTracks().map(t => t.kind + ':' + t.readyState).sort() : [];")
            .await;
        assert_eq!(
            sending,
            serde_json::json!(["audio:live", "video:live"]),
            "local tracks"
        );
    }

    // Plain HTTP on the same host redirects to the HTTPS page.
    let http_base = format!("http://{ip}:{}", server_http_port(&server));
    let reply = crate::support::http::request(&http_base, "GET", "/join?t=abc", &[], None).await;
    assert_eq!(reply.status, 308);
    // Health checks answer there without a certificate.
    let ready = crate::support::http::request(&http_base, "GET", "/readyz", &[], None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(
        reply.header("location"),
        Some(format!("{}/join?t=abc", server.base_url).as_str())
    );
    for b in browsers {
        b.close().await;
    }
}

/// The plain HTTP port, from the server's banner line in its log.
fn server_http_port(server: &Server) -> u16 {
    server
        .http_redirect_port
        .expect("plain HTTP redirect address printed")
}

/// Accepts any certificate: the test compares what it was shown.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects over TLS; returns the certificate shown and the response head
/// of `GET /healthz`.
async fn fetch(addr: &str) -> (Vec<u8>, String) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let shown = tls.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply).await;
    (shown, String::from_utf8_lossy(&reply).into_owned())
}

/// A self-signed certificate with serial number `serial`: (cert PEM, key PEM, cert DER).
fn certificate(serial: u64) -> (String, String, Vec<u8>) {
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.serial_number = Some(rcgen::SerialNumber::from(serial));
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// Writes `text` to `path` the way certificate tools do: a new file renamed
/// over the old, so no reader sees half a file.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (first_cert, first_key, first_der) = certificate(1001);
    replace(&cert_path, &first_cert);
    replace(&key_path, &first_key);
    let server = Server::start_with(ServerOptions {
        env: vec![
            ("CARECALL_HTTPS_ENABLED".into(), "true".into()),
            ("CARECALL_HTTPS_ADDR".into(), "127.0.0.1:0".into()),
            (
                "CARECALL_HTTPS_CERT".into(),
                cert_path.display().to_string(),
            ),
            ("CARECALL_HTTPS_KEY".into(), key_path.display().to_string()),
        ],
        ..ServerOptions::default()
    });
    let addr = server.base_url.trim_start_matches("https://").to_owned();
    let (shown, reply) = fetch(&addr).await;
    assert_eq!(shown, first_der, "serial 1001 served at start");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "HSTS with a real certificate: {reply}"
    );
    println!("served serial 1001 at start");

    // Renewed: key first, then the certificate, as a renewal tool would.
    let (second_cert, second_key, second_der) = certificate(2002);
    let swapped = Instant::now();
    replace(&key_path, &second_key);
    replace(&cert_path, &second_cert);
    loop {
        let (shown, _) = fetch(&addr).await;
        if shown == second_der {
            println!(
                "serial 2002 served to a new connection {} ms after the swap, no restart",
                swapped.elapsed().as_millis()
            );
            break;
        }
        assert_eq!(shown, first_der, "only the old or the new certificate");
        assert!(
            swapped.elapsed() < Duration::from_secs(10),
            "the new certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
