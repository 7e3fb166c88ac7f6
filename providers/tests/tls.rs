//! HTTPS with rustls: a loopback TLS server whose certificate is signed by a CA the
//! test makes; the target trusts it only through `ca_bundle`, and without it the
//! request fails as a connection error (certificate not trusted), never silently. A
//! server that offers only HTTP/2 (ALPN `h2`) gets concurrent requests multiplexed on
//! one connection.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use infermeter_providers::{HttpBackend, Kind};
use results::ErrorClass;
use workloads::{Backend, Request, StreamSink};

struct Count(u32);

impl StreamSink for Count {
    fn on_bytes(&mut self, _n: usize) {}
    fn on_tokens(&mut self, count: u32) {
        self.0 += count;
    }
    fn on_tokens_at(&mut self, _at: std::time::Instant, count: u32) {
        self.0 += count;
    }
}

/// Serves `n` connections, each one streamed chat response of 3 tokens.
fn tls_server(config: Arc<rustls::ServerConfig>, n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(n) {
            let Ok(tcp) = conn else { continue };
            let Ok(server) = rustls::ServerConnection::new(Arc::clone(&config)) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(server, tcp);
            let mut length = 0usize;
            let mut head_done = false;
            {
                let mut reader = BufReader::new(&mut tls);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        let mut body = vec![0; length];
                        head_done = reader.read_exact(&mut body).is_ok();
                        break;
                    }
                }
            }
            if !head_done {
                continue;
            }
            let mut events = String::new();
            for t in [" a", " b", " c"] {
                events.push_str(&format!(
                    "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{t}\"}}}}]}}\n\n"
                ));
            }
            events.push_str(
                "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n",
            );
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{events}",
                events.len()
            );
            let _ = tls.write_all(resp.as_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    port
}

fn request() -> Request {
    Request::single("hello", 3)
}

/// A CA, a `localhost` certificate it signed (as a server config), and the CA's PEM.
fn certificates() -> (rustls::ServerConfig, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (config, ca.pem())
}

fn settings(port: u16, bundle: Option<&std::path::Path>) -> BTreeMap<String, String> {
    let mut s = BTreeMap::from([
        (
            "base_url".to_string(),
            format!("https://localhost:{port}/v1"),
        ),
        ("model".to_string(), "m".to_string()),
    ]);
    if let Some(b) = bundle {
        s.insert("ca_bundle".into(), b.display().to_string());
    }
    s
}

#[tokio::test]
async fn https_works_with_a_given_ca_bundle_and_fails_without_it() {
    let (config, ca_pem) = certificates();
    let port = tls_server(Arc::new(config), 2);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, ca_pem).unwrap();

    let trusted = HttpBackend::new(Kind::OpenAi, &settings(port, Some(&bundle))).unwrap();
    let mut sink = Count(0);
    let done = trusted.generate(&request(), &mut sink).await.unwrap();
    assert_eq!(sink.0, 3);
    assert_eq!(done.output_tokens, 3);

    let untrusted = HttpBackend::new(Kind::OpenAi, &settings(port, None)).unwrap();
    let err = untrusted
        .generate(&request(), &mut Count(0))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Connection, "{err}");
    assert!(err.message.to_lowercase().contains("certificate"), "{err}");
}

/// Accepts one TLS connection offering only `h2` and answers every stream on it with
/// a 3-token SSE response; returns the port and a counter of streams served.
async fn h2_server(mut config: rustls::ServerConfig) -> (u16, Arc<AtomicU32>) {
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicU32::new(0));
    let count = Arc::clone(&served);
    tokio::spawn(async move {
        // One connection only: a client that opened a second one would hang.
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        let mut conn = h2::server::handshake(tls).await.unwrap();
        while let Some(Ok((req, mut respond))) = conn.accept().await {
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let mut body = req.into_body();
                while let Some(Ok(chunk)) = body.data().await {
                    let _ = body.flow_control().release_capacity(chunk.len());
                }
                let resp = http::Response::builder()
                    .status(200)
                    .header("content-type", "text/event-stream")
                    .body(())
                    .unwrap();
                let mut send = respond.send_response(resp, false).unwrap();
                for t in [" a", " b", " c"] {
                    let ev = format!(
                        "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{t}\"}}}}]}}\n\n"
                    );
                    send.send_data(bytes::Bytes::from(ev), false).unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let tail = "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n";
                send.send_data(bytes::Bytes::from(tail), true).unwrap();
                count.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (port, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_used_when_the_server_offers_it_and_multiplexes_requests() {
    let (config, ca_pem) = certificates();
    let (port, served) = h2_server(config).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, ca_pem).unwrap();
    let target = Arc::new(HttpBackend::new(Kind::OpenAi, &settings(port, Some(&bundle))).unwrap());
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let t = Arc::clone(&target);
        tasks.push(tokio::spawn(async move {
            let mut sink = Count(0);
            let done = t.generate(&request(), &mut sink).await;
            (done.map(|c| c.output_tokens), sink.0)
        }));
    }
    for task in tasks {
        let (done, counted) = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("every request is served on the one connection")
            .unwrap();
        assert_eq!(done.unwrap(), 3);
        assert_eq!(counted, 3);
    }
    assert_eq!(served.load(Ordering::SeqCst), 3);
}

#[test]
fn a_bad_ca_bundle_is_a_setting_error() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, "not a certificate").unwrap();
    let s = BTreeMap::from([
        ("base_url".to_string(), "https://localhost:1/v1".to_string()),
        ("model".to_string(), "m".to_string()),
        ("ca_bundle".to_string(), bundle.display().to_string()),
    ]);
    let err = HttpBackend::new(Kind::OpenAi, &s).unwrap_err().to_string();
    assert!(err.contains("ca_bundle"), "{err}");
}
