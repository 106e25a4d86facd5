//! HTTPS through the real binary: real TLS handshakes against the certificate it serves.

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use sha2::{Digest, Sha256};
use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// A running `linecheck-server`, killed when dropped, even by a failing assertion.
struct Running {
    child: Child,
    addr: SocketAddr,
    /// What it printed before serving, one entry a line.
    lines: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, tls_args: &[&str]) -> Running {
    let static_dir = dir.join("dist");
    std::fs::create_dir_all(&static_dir).unwrap();
    for file in ["index.html", "sw.js", "manifest.webmanifest"] {
        std::fs::write(static_dir.join(file), "").unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_linecheck-server"))
        .args(["--addr", "127.0.0.1:0", "--static-dir"])
        .arg(&static_dir)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(tls_args)
        .env_remove("LINECHECK_DATABASE_URL")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = vec![];
    // Everything up to "Data directory" is printed before it serves.
    while !lines
        .last()
        .is_some_and(|l: &String| l.starts_with("Data directory"))
    {
        let mut line = String::new();
        assert_ne!(stdout.read_line(&mut line).unwrap(), 0, "exited: {lines:?}");
        lines.push(line.trim_end().to_owned());
    }
    let url = lines[0]
        .strip_prefix("LineCheck is running: open https://")
        .unwrap_or_else(|| panic!("no https URL in {lines:?}"));
    Running {
        addr: url.trim_end_matches('/').parse().unwrap(),
        child,
        lines,
    }
}

fn certificate(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

fn fingerprint(cert: &CertificateDer) -> String {
    let pairs: Vec<String> = Sha256::digest(cert)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    pairs.join(":")
}

/// `GET /healthz` over TLS, trusting `root` and nothing else: the response, or the TLS error.
async fn get_healthz(
    addr: SocketAddr,
    root: CertificateDer<'static>,
    name: &str,
) -> std::io::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await?;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: linecheck\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    Ok(response)
}

#[tokio::test]
async fn tls_self_signed_serves_https_with_a_certificate_kept_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("data/tls");
    let ca_path = tls_dir.join("linecheck-ca.pem");

    let server = start(dir.path(), &["--tls-self-signed"]);
    // The CA that tablets install, and its fingerprint for them to compare.
    let ca = certificate(&ca_path);
    let printed = format!(
        "trust the certificate {} (SHA-256 fingerprint {})",
        ca_path.display(),
        fingerprint(&ca)
    );
    assert!(
        server.lines[1].contains(&printed),
        "{:?} vs {printed}",
        server.lines
    );
    // The generated CA is the only trusted root; both names a local client uses work.
    for name in ["localhost", "127.0.0.1"] {
        let response = get_healthz(server.addr, ca.clone(), name).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.contains(r#""status":"ok""#), "{response}");
    }
    // A client that trusts another certificate for the same names refuses the server.
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let err = get_healthz(server.addr, stranger.cert.der().clone(), "localhost")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    drop(server);

    // Restarted, it serves the same certificates, so tablets that trust it keep trusting it.
    let server_cert = std::fs::read(tls_dir.join("server-cert.pem")).unwrap();
    let server = start(dir.path(), &["--tls-self-signed"]);
    assert!(server.lines[1].contains(&printed), "{:?}", server.lines);
    assert_eq!(certificate(&ca_path), ca);
    assert_eq!(
        std::fs::read(tls_dir.join("server-cert.pem")).unwrap(),
        server_cert
    );
    drop(server);

    // A given certificate chain and key (here the generated ones) are served as they are.
    let cert_path = tls_dir.join("server-cert.pem");
    let key_path = tls_dir.join("server-key.pem");
    let server = start(
        dir.path(),
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    let response = get_healthz(server.addr, ca, "localhost").await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
}
