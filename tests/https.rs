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

/// Connects over TLS to `addr`: the stream and the certificate shown.
async fn handshake(
    addr: &str,
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Vec<u8>,
) {
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
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let shown = tls.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec();
    (tls, shown)
}

/// Connects over TLS; returns the certificate shown and the response to
/// `GET /healthz`.
async fn fetch(addr: &str) -> (Vec<u8>, String) {
    fetch_path(addr, "/healthz").await
}

/// Connects over TLS; returns the certificate shown and the response to
/// `GET path`.
async fn fetch_path(addr: &str, path: &str) -> (Vec<u8>, String) {
    let (mut tls, shown) = handshake(addr).await;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply).await;
    (shown, String::from_utf8_lossy(&reply).into_owned())
}

/// A certificate for 127.0.0.1 with serial number `serial`, signed by its
/// own `key` (kept across renewals, so one key hash trusts both in the
/// browser): (cert PEM, cert DER).
fn certificate(serial: u64, key: &rcgen::KeyPair) -> (String, Vec<u8>) {
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.serial_number = Some(rcgen::SerialNumber::from(serial));
    let cert = params.self_signed(key).unwrap();
    (cert.pem(), cert.der().to_vec())
}

/// Writes `text` to `path` the way certificate tools do: a new file renamed
/// over the old, so no reader sees half a file.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Video frames each browser has decoded so far, all remotes together.
async fn frames(browsers: &[&Browser]) -> Vec<u64> {
    let mut out = Vec::new();
    for b in browsers {
        let inbound = b.inbound().await;
        out.push(
            inbound
                .iter()
                .filter(|s| s.kind == "video")
                .map(|s| s.frames_decoded)
                .sum(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_replaced_during_a_call_are_served_within_5_s_and_the_call_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let key = rcgen::KeyPair::generate().unwrap();
    let (first_cert, first_der) = certificate(1001, &key);
    replace(&cert_path, &first_cert);
    replace(&key_path, &key.serialize_pem());
    let (cert, keyfile) = (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    );
    let env = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let server = Server::start_with(ServerOptions {
        env: vec![
            env("CARECALL_HTTPS_ENABLED", "true"),
            env("CARECALL_HTTPS_ADDR", "127.0.0.1:0"),
            env("CARECALL_HTTPS_CERT", &cert),
            env("CARECALL_HTTPS_KEY", &keyfile),
            // TURN over TLS with the same files, as one renewal serves both.
            env("CARECALL_TURN_CERT", &cert),
            env("CARECALL_TURN_KEY", &keyfile),
        ],
        ..ServerOptions::default()
    });
    let https = server.base_url.trim_start_matches("https://").to_owned();
    let turns = server
        .turn_urls
        .iter()
        .find_map(|u| u.strip_prefix("turns:"))
        .and_then(|u| u.split('?').next())
        .expect("a turns: URL")
        .to_owned();
    let (shown, reply) = fetch(&https).await;
    assert_eq!(shown, first_der, "serial 1001 served at start");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "HSTS with a real certificate: {reply}"
    );
    assert_eq!(handshake(&turns).await.1, first_der, "TURN serves it too");
    let expiry = |text: &str, listener: &str| {
        crate::support::metrics::value(
            text,
            &format!("carecall_certificate_expiry_timestamp_seconds{{listener=\"{listener}\"}}"),
        )
    };

    // A call over HTTPS, its browsers trusting the key.
    let spki = {
        use base64::Engine;
        let der = rcgen::PublicKeyData::subject_public_key_info(&key);
        let hash = ring::digest::digest(&ring::digest::SHA256, &der);
        base64::engine::general_purpose::STANDARD.encode(hash.as_ref())
    };
    let driver = Driver::start().await.with_trusted_spki(&spki);
    let mut browsers = Vec::new();
    for role in ["home", "clinician"] {
        let b = driver.browser().await;
        b.join(&server.link("renew-1", role, role, "1h")).await;
        browsers.push(b);
    }
    let refs: Vec<&Browser> = browsers.iter().collect();
    wait_all_decoding_hd(&refs, 1, Duration::from_secs(60)).await;

    // Renewed: key first, then the certificate, as a renewal tool would.
    let (second_cert, second_der) = certificate(2002, &key);
    let before = frames(&refs).await;
    let swapped = Instant::now();
    replace(&key_path, &key.serialize_pem());
    replace(&cert_path, &second_cert);
    let (mut https_at, mut turn_at) = (None, None);
    while https_at.is_none() || turn_at.is_none() {
        if https_at.is_none() {
            let (shown, _) = fetch(&https).await;
            assert!(
                shown == first_der || shown == second_der,
                "only the old or the new"
            );
            https_at = (shown == second_der).then(|| swapped.elapsed());
        }
        if turn_at.is_none() {
            let shown = handshake(&turns).await.1;
            assert!(
                shown == first_der || shown == second_der,
                "only the old or the new"
            );
            turn_at = (shown == second_der).then(|| swapped.elapsed());
        }
        assert!(
            swapped.elapsed() < Duration::from_secs(5),
            "not served within 5 s: HTTPS {https_at:?}, TURN {turn_at:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("serial 2002 served to new connections after the swap: HTTPS {https_at:?}, TURN over TLS {turn_at:?}; no restart");
    // Still decoding: a stall reads no new frame. (Early in a call the
    // encoder trades frame rate for resolution while the estimate climbs,
    // so this asks for frames, not a rate.)
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = frames(&refs).await;
    println!("video frames decoded across the swap: {before:?} -> {after:?}");
    for (b, a) in before.iter().zip(&after) {
        assert!(*a >= b + 12, "the call stalled: {before:?} -> {after:?}");
    }
    let (_, text) = fetch_path(&https, "/metrics").await;
    for listener in ["https", "turn"] {
        let at = expiry(&text, listener).expect("an expiry gauge");
        let days = (at - crate::support::hooks::unix_now() as f64) / 86_400.0;
        println!("{listener} certificate expires in {days:.0} days");
        assert!(days > 14.0, "{listener}: {days} days");
    }
    for b in browsers {
        b.close().await;
    }
}
