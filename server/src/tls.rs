//! HTTPS: tablets give the camera and the service worker only to a secure context, so over the
//! factory network the server terminates TLS itself, with a given certificate or with a
//! self-signed one it makes for a first trial. rustls on the `ring` provider (no cmake or C++ build
//! for aws-lc).

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use sha2::{Digest, Sha256};
use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
};

/// A certificate chain and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertificateFiles {
    /// The rustls configuration serving this chain, for HTTP/2 and HTTP/1.1.
    pub fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        let chain = self.chain()?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("no private key in {}", self.key.display()))?;
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .with_context(|| {
                    format!(
                        "{} and {} are not a usable certificate and key",
                        self.cert.display(),
                        self.key.display()
                    )
                })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn chain(&self) -> anyhow::Result<Vec<CertificateDer<'static>>> {
        read_certificates(&self.cert)
    }
}

fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the certificate {}", path.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(chain)
}

/// The SHA-256 fingerprint of the first certificate in the PEM file `path`, as browsers and
/// Android show it: upper-case hex pairs joined by colons.
pub fn fingerprint(path: &Path) -> anyhow::Result<String> {
    let digest = Sha256::digest(&read_certificates(path)?[0]);
    let pairs: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    Ok(pairs.join(":"))
}

/// What `--tls-self-signed` serves, in `<data dir>/tls/` so it survives restarts and tablets
/// that trust it keep trusting it.
///
/// Two certificates, because Android installs only a CA certificate as trusted ("CA
/// certificate" in its settings) while TLS clients refuse a CA certificate as the server's own: a
/// CA made for this one server (`ca`, what tablets install) signs the server's certificate. The
/// CA's key is thrown away once it has signed, so a copy of the data directory cannot make
/// certificates that the tablets would trust for other sites.
pub struct SelfSigned {
    pub ca: PathBuf,
    pub server: CertificateFiles,
}

impl SelfSigned {
    pub fn in_data_dir(data_dir: &Path) -> SelfSigned {
        let dir = data_dir.join("tls");
        SelfSigned {
            ca: dir.join("linecheck-ca.pem"),
            server: CertificateFiles {
                cert: dir.join("server-cert.pem"),
                key: dir.join("server-key.pem"),
            },
        }
    }
}

/// The self-signed certificates in `data_dir`, made on first use for the names a tablet may use
/// to reach this machine (see `machine_names`); later starts reuse them unchanged.
pub fn self_signed(data_dir: &Path, addr: SocketAddr) -> anyhow::Result<SelfSigned> {
    let files = SelfSigned::in_data_dir(data_dir);
    if files.ca.is_file() && files.server.cert.is_file() && files.server.key.is_file() {
        return Ok(files);
    }
    let host = host_name().unwrap_or_else(|| "localhost".into());
    let generate = || -> Result<(String, String, String), rcgen::Error> {
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name
            .push(DnType::CommonName, format!("LineCheck CA for {host}"));
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;

        let mut server = CertificateParams::new(machine_names(addr))?;
        server
            .distinguished_name
            .push(DnType::CommonName, format!("LineCheck server {host}"));
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = server.signed_by(&key, &ca)?;
        // The chain a client is sent: the server's certificate, then the CA's.
        Ok((
            ca.pem(),
            format!("{}{}", cert.pem(), ca.pem()),
            key.serialize_pem(),
        ))
    };
    let (ca, chain, key) = generate().context("cannot generate a self-signed certificate")?;
    let dir = files.ca.parent().expect("a file in tls/");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // The key only readable by us; the CA last, as the sign that all three are there.
    write_private(&files.server.key, &key)?;
    for (path, pem) in [(&files.server.cert, &chain), (&files.ca, &ca)] {
        std::fs::write(path, pem).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(files)
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `localhost`, the host name, the loopback addresses, and the address the server listens on, or
/// every address of the machine's interfaces when it listens on all of them.
fn machine_names(addr: SocketAddr) -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    names.extend(host_name());
    let mut ips: Vec<IpAddr> = vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()];
    if addr.ip().is_unspecified() {
        // Without the list (no netlink here, say) the certificate still covers the names above.
        let interfaces = local_ip_address::list_afinet_netifas().unwrap_or_default();
        ips.extend(interfaces.into_iter().map(|(_, ip)| ip));
    } else {
        ips.push(addr.ip());
    }
    for ip in ips {
        let ip = ip.to_string();
        if !names.contains(&ip) {
            names.push(ip);
        }
    }
    names
}

/// The machine's host name (Linux), which a tablet may reach through the factory's DNS.
pub fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty() && name != "localhost").then(|| name.to_owned())
}
