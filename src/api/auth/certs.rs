//! The serving certificate of the secure API, and the rustls configuration
//! that serves it.
//!
//! Without `--tls-cert-file`, podvisor is its own small CA, as k3s is:
//! `<root_dir>/pki/` holds
//!
//! | file          | what                                   | mode |
//! |---------------|----------------------------------------|------|
//! | `ca.crt`      | self-signed CA, ECDSA P-256, 10 years  | 0644 |
//! | `ca.key`      | its key (PKCS#8 PEM)                   | 0600 |
//! | `serving.crt` | the leaf the API serves, 1 year        | 0644 |
//! | `serving.key` | its key                                | 0600 |
//!
//! and the directory itself is 0700. The CA is made once and kept, so a
//! kubeconfig that embeds it stays valid across restarts and across new
//! serving certificates. The serving certificate is made again whenever it no
//! longer fits: see [`ensure_serving_cert`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, RootCertStore};

use super::{private_dir, read_optional, read_required, write_atomic, AuthError};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a new CA is valid (k3s: 10 years).
const CA_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 60 * 60);
/// How long a new serving certificate is valid (k3s: 1 year).
const SERVING_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// A serving certificate that expires sooner than this is made again.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// New certificates start this far in the past, so a client whose clock is
/// a little behind still accepts them (as client-go's `cert` helpers do).
const BACKDATE: Duration = Duration::from_secs(60 * 60);

const CA_CRT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const SERVING_CRT: &str = "serving.crt";
const SERVING_KEY: &str = "serving.key";

/// A certificate to serve, with its key, in PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct ServingCert {
    /// The CA a client should trust to reach this server, for a kubeconfig's
    /// `certificate-authority-data`; empty when it is not known (see
    /// [`load_serving_cert`]).
    pub ca_pem: String,
    /// The certificate chain to serve, leaf first.
    pub cert_pem: String,
    /// The leaf's private key.
    pub key_pem: String,
}

impl fmt::Debug for ServingCert {
    /// Leaves the key out, so the struct can be logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingCert")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The CA podvisor signs serving certificates with.
struct Ca {
    pem: String,
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// A name the serving certificate must be valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    Dns(String),
    Ip(IpAddr),
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Dns(d) => f.write_str(d),
            Name::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl Name {
    fn server_name(&self) -> Option<ServerName<'static>> {
        match self {
            Name::Dns(d) => ServerName::try_from(d.clone()).ok(),
            Name::Ip(ip) => Some(ServerName::IpAddress((*ip).into())),
        }
    }

    fn san(&self) -> Result<SanType, rcgen::Error> {
        Ok(match self {
            Name::Dns(d) => SanType::DnsName(d.as_str().try_into()?),
            Name::Ip(ip) => SanType::IpAddress(*ip),
        })
    }
}

/// Returns podvisor's own serving certificate, making what is missing under
/// `<root_dir>/pki/`.
///
/// - The CA is made when `ca.crt` is missing (a leftover `ca.key` is then
///   replaced), and reused otherwise. A `ca.crt` whose `ca.key` is missing or
///   does not match is an error, not a reason to make a new CA: that would
///   silently break every kubeconfig given out. Delete `ca.crt` to start over.
/// - The serving certificate covers `127.0.0.1`, `::1`, `localhost`,
///   `node_name` (lowercased; as an IP address if it is one, left out with a
///   warning if it is not a valid DNS name) and `address` (left out when it is
///   unspecified, `0.0.0.0` or `::`). It is reused when it and its key are
///   readable and match, it verifies against the current CA for every one of
///   those names, and it stays valid for 30 more days; otherwise a new one is
///   made and the reason logged at info. Extra names in an existing
///   certificate do not force a new one.
///
/// Blocking: call it from `spawn_blocking` or before the actix System starts.
pub fn ensure_serving_cert(
    root_dir: &Path,
    node_name: &str,
    address: IpAddr,
) -> Result<ServingCert, AuthError> {
    let dir = root_dir.join("pki");
    private_dir(&dir, 0o700, "the certificate directory")?;
    let ca = ensure_ca(&dir)?;
    let names = wanted_names(node_name, address);

    let cert_path = dir.join(SERVING_CRT);
    let key_path = dir.join(SERVING_KEY);
    let cert_pem = read_optional(&cert_path, "the serving certificate")?;
    let key_pem = read_optional(&key_path, "the serving key")?;
    let why = match (cert_pem, key_pem) {
        (Some(cert_pem), Some(key_pem)) => {
            match reuse_problem(&ca.der, &cert_pem, &key_pem, &names, SystemTime::now()) {
                None => {
                    return Ok(ServingCert {
                        ca_pem: ca.pem,
                        cert_pem,
                        key_pem,
                    })
                }
                Some(why) => why,
            }
        }
        (None, _) => "there is none yet".to_string(),
        (Some(_), None) => format!("its key {} is missing", key_path.display()),
    };
    tracing::info!(
        file = %cert_path.display(),
        reason = %why,
        "making a new serving certificate"
    );
    let (cert_pem, key_pem) =
        issue_serving(&ca, node_name, &names, SystemTime::now(), SERVING_VALIDITY)?;
    // Key first: a crash in between leaves a mismatch, which the next start repairs.
    write_atomic(&key_path, key_pem.as_bytes(), 0o600, "the serving key")?;
    write_atomic(
        &cert_path,
        cert_pem.as_bytes(),
        0o644,
        "the serving certificate",
    )?;
    Ok(ServingCert {
        ca_pem: ca.pem,
        cert_pem,
        key_pem,
    })
}

/// Reads a certificate chain and key given on the command line
/// (`--tls-cert-file`, `--tls-private-key-file`), checking that the key
/// belongs to the first certificate.
///
/// `ca_pem` is the last certificate of the chain when the file holds more than
/// one, and empty when it holds only the leaf: a single certificate is most
/// often signed by a CA the clients already trust, and putting the leaf itself
/// in a kubeconfig would not help them. Nothing is written.
pub fn load_serving_cert(cert_file: &Path, key_file: &Path) -> Result<ServingCert, AuthError> {
    const CERT: &str = "--tls-cert-file";
    const KEY: &str = "--tls-private-key-file";
    let cert_pem = read_required(cert_file, CERT)?;
    let key_pem = read_required(key_file, KEY)?;
    let invalid = |what, path: &Path, reason: String| AuthError::Invalid {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let chain = certs_from_pem(&cert_pem)
        .ok_or_else(|| invalid(CERT, cert_file, "no PEM certificate in it".into()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| invalid(KEY, key_file, format!("no PEM private key in it ({e})")))?;
    CertifiedKey::from_der(chain.clone(), key, &provider()).map_err(|e| {
        invalid(
            KEY,
            key_file,
            format!(
                "it does not fit the first certificate of {}: {e}",
                cert_file.display()
            ),
        )
    })?;
    let ca_pem = match chain.as_slice() {
        [_, .., last] => der_to_pem(last),
        _ => String::new(),
    };
    Ok(ServingCert {
        ca_pem,
        cert_pem,
        key_pem,
    })
}

/// The rustls configuration that serves `cert`: ring as the crypto provider,
/// TLS 1.2 and 1.3, no client certificates (clients authenticate with bearer
/// tokens), ALPN `h2` then `http/1.1`.
pub fn server_config(cert: &ServingCert) -> Result<Arc<rustls::ServerConfig>, AuthError> {
    let tls = |e: rustls::Error| AuthError::Tls(e.to_string());
    let chain = certs_from_pem(&cert.cert_pem)
        .ok_or_else(|| AuthError::Tls("no PEM certificate in the chain".into()))?;
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
        .map_err(|e| AuthError::Tls(format!("no PEM private key ({e})")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM text; `None` when there are none or the PEM is
/// broken.
fn certs_from_pem(pem: &str) -> Option<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    (!certs.is_empty()).then_some(certs)
}

fn der_to_pem(der: &CertificateDer<'_>) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// What the serving certificate must cover, in SAN order.
fn wanted_names(node_name: &str, address: IpAddr) -> Vec<Name> {
    let mut names = vec![
        Name::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Name::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        Name::Dns("localhost".into()),
    ];
    let node = node_name.to_ascii_lowercase();
    let node = match node.parse::<IpAddr>() {
        Ok(ip) => Some(Name::Ip(ip)),
        Err(_) if ServerName::try_from(node.as_str()).is_ok() => Some(Name::Dns(node)),
        Err(_) => {
            tracing::warn!(
                node_name,
                "the node name is not a valid DNS name: the serving certificate leaves it out"
            );
            None
        }
    };
    let address = (!address.is_unspecified()).then_some(Name::Ip(address));
    for name in node.into_iter().chain(address) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The validity window of a certificate made at `now`.
fn window(now: SystemTime, validity: Duration) -> (time::OffsetDateTime, time::OffsetDateTime) {
    (
        time::OffsetDateTime::from(now - BACKDATE),
        time::OffsetDateTime::from(now + validity),
    )
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Loads the CA from `dir`, making it when `ca.crt` is missing.
fn ensure_ca(dir: &Path) -> Result<Ca, AuthError> {
    let crt_path = dir.join(CA_CRT);
    let key_path = dir.join(CA_KEY);
    if let Some(pem) = read_optional(&crt_path, "the CA certificate")? {
        let Some(key_pem) = read_optional(&key_path, "the CA key")? else {
            return Err(AuthError::Invalid {
                what: "the CA key",
                path: key_path,
                reason: format!(
                    "missing, though {} is there: restore it, or delete {} to make a new CA \
                     (kubeconfigs that trust the old one will stop working)",
                    crt_path.display(),
                    crt_path.display()
                ),
            });
        };
        return load_ca(&crt_path, &key_path, pem, &key_pem);
    }
    tracing::info!(file = %crt_path.display(), "making the CA of the secure API");
    let now = SystemTime::now();
    let generate = |e: rcgen::Error| AuthError::Generate {
        what: "the CA",
        reason: e.to_string(),
    };
    let key = KeyPair::generate().map_err(generate)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    // Unique per CA, as k3s's `k3s-server-ca@<seconds>`.
    params.distinguished_name.push(
        DnType::CommonName,
        format!("podvisor-ca@{}", unix_seconds(now)),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (params.not_before, params.not_after) = window(now, CA_VALIDITY);
    let pem = params.self_signed(&key).map_err(generate)?.pem();
    let key_pem = key.serialize_pem();
    write_atomic(&key_path, key_pem.as_bytes(), 0o600, "the CA key")?;
    write_atomic(&crt_path, pem.as_bytes(), 0o644, "the CA certificate")?;
    load_ca(&crt_path, &key_path, pem, &key_pem)
}

fn load_ca(crt_path: &Path, key_path: &Path, pem: String, key_pem: &str) -> Result<Ca, AuthError> {
    let invalid = |what, path: &Path, reason: String| AuthError::Invalid {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let der = certs_from_pem(&pem)
        .and_then(|c| c.into_iter().next())
        .ok_or_else(|| {
            invalid(
                "the CA certificate",
                crt_path,
                "no PEM certificate in it".into(),
            )
        })?;
    let key_der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
        invalid(
            "the CA key",
            key_path,
            format!("no PEM private key in it ({e})"),
        )
    })?;
    CertifiedKey::from_der(vec![der.clone()], key_der, &provider()).map_err(|e| {
        invalid(
            "the CA key",
            key_path,
            format!("it does not fit {}: {e}", crt_path.display()),
        )
    })?;
    let key = KeyPair::from_pem(key_pem)
        .map_err(|e| invalid("the CA key", key_path, format!("cannot sign with it: {e}")))?;
    let issuer = Issuer::from_ca_cert_der(&der, key)
        .map_err(|e| invalid("the CA certificate", crt_path, e.to_string()))?;
    Ok(Ca { pem, der, issuer })
}

/// A new serving certificate and key, signed by `ca`, in PEM.
fn issue_serving(
    ca: &Ca,
    node_name: &str,
    names: &[Name],
    now: SystemTime,
    validity: Duration,
) -> Result<(String, String), AuthError> {
    let generate = |e: rcgen::Error| AuthError::Generate {
        what: "the serving certificate",
        reason: e.to_string(),
    };
    let key = KeyPair::generate().map_err(generate)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let cn = if node_name.is_empty() {
        "podvisor"
    } else {
        node_name
    };
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = names
        .iter()
        .map(Name::san)
        .collect::<Result<_, _>>()
        .map_err(generate)?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    (params.not_before, params.not_after) = window(now, validity);
    let cert = params.signed_by(&key, &ca.issuer).map_err(generate)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Why the serving certificate in `cert_pem`/`key_pem` cannot be reused at
/// `now`, or `None` when it can.
fn reuse_problem(
    ca: &CertificateDer<'static>,
    cert_pem: &str,
    key_pem: &str,
    names: &[Name],
    now: SystemTime,
) -> Option<String> {
    let Some(chain) = certs_from_pem(cert_pem) else {
        return Some("it holds no PEM certificate".into());
    };
    let Ok(key) = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()) else {
        return Some("its key file holds no PEM private key".into());
    };
    if let Err(e) = CertifiedKey::from_der(chain.clone(), key, &provider()) {
        return Some(format!("its key does not fit it ({e})"));
    }
    let mut roots = RootCertStore::empty();
    if let Err(e) = roots.add(ca.clone()) {
        return Some(format!(
            "the CA certificate cannot be used to verify it ({e})"
        ));
    }
    let verifier =
        match WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build() {
            Ok(v) => v,
            Err(e) => return Some(format!("it cannot be verified ({e})")),
        };
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Some("it holds no PEM certificate".into());
    };
    let at = |t: SystemTime| {
        UnixTime::since_unix_epoch(t.duration_since(UNIX_EPOCH).unwrap_or_default())
    };
    for name in names {
        let Some(server_name) = name.server_name() else {
            return Some(format!("{name} is not a valid name"));
        };
        if let Err(e) = verifier.verify_server_cert(leaf, intermediates, &server_name, &[], at(now))
        {
            return Some(describe(&e, name));
        }
    }
    // Validity does not depend on the name: 127.0.0.1 is always among them.
    let loopback = Name::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let Some(server_name) = loopback.server_name() else {
        return Some(format!("{loopback} is not a valid name"));
    };
    match verifier.verify_server_cert(
        leaf,
        intermediates,
        &server_name,
        &[],
        at(now + RENEW_BEFORE),
    ) {
        Ok(_) => None,
        Err(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => Some(format!(
            "it expires within {} days",
            RENEW_BEFORE.as_secs() / DAY.as_secs()
        )),
        Err(e) => Some(describe(&e, &loopback)),
    }
}

/// A verification failure as the reason to make a new certificate.
fn describe(e: &rustls::Error, name: &Name) -> String {
    match e {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!("it does not cover {name}"),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "it has expired".into(),
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => "it is not signed by the current CA".into(),
        e => format!("it does not verify for {name} ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use rustls::{ClientConfig, ClientConnection, ServerConnection};

    use super::*;

    const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// A TLS handshake in memory between `server` and a client that trusts
    /// only `ca_pem` and asks for `name`; the ALPN protocol agreed on.
    fn handshake(server: &ServingCert, ca_pem: &str, name: &str) -> Result<Vec<u8>, rustls::Error> {
        let mut roots = RootCertStore::empty();
        for c in certs_from_pem(ca_pem).unwrap() {
            roots.add(c).unwrap();
        }
        let mut client_config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client_config.alpn_protocols = vec![b"h2".to_vec()];
        let name = ServerName::try_from(name.to_string()).unwrap();
        let mut client = ClientConnection::new(Arc::new(client_config), name)?;
        let mut srv = ServerConnection::new(server_config(server).unwrap())?;
        for _ in 0..10 {
            if !client.is_handshaking() && !srv.is_handshaking() {
                return Ok(srv.alpn_protocol().unwrap_or_default().to_vec());
            }
            let mut buf = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                srv.read_tls(&mut rd).unwrap();
                srv.process_new_packets()?;
            }
            buf.clear();
            while srv.wants_write() {
                srv.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
                client.process_new_packets()?;
            }
        }
        panic!("the handshake did not finish in 10 rounds");
    }

    #[test]
    fn a_generated_cert_serves_127_0_0_1_the_node_name_and_the_address_to_a_client_trusting_the_ca()
    {
        let root = tempfile::tempdir().unwrap();
        let addr: IpAddr = "192.0.2.7".parse().unwrap();
        let cert = ensure_serving_cert(root.path(), "Node-1", addr).unwrap();
        for name in ["127.0.0.1", "::1", "localhost", "node-1", "192.0.2.7"] {
            assert_eq!(
                handshake(&cert, &cert.ca_pem, name).unwrap(),
                b"h2",
                "{name}"
            );
        }
        let e = handshake(&cert, &cert.ca_pem, "other.example").unwrap_err();
        assert!(matches!(e, rustls::Error::InvalidCertificate(_)), "{e:?}");
    }

    #[test]
    fn a_client_trusting_another_ca_refuses_the_cert() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let cert_a = ensure_serving_cert(a.path(), "node", ANY).unwrap();
        let cert_b = ensure_serving_cert(b.path(), "node", ANY).unwrap();
        let e = handshake(&cert_a, &cert_b.ca_pem, "127.0.0.1").unwrap_err();
        assert!(matches!(e, rustls::Error::InvalidCertificate(_)), "{e:?}");
    }

    #[test]
    fn the_server_config_offers_h2_and_http_1_1() {
        let root = tempfile::tempdir().unwrap();
        let cert = ensure_serving_cert(root.path(), "node", ANY).unwrap();
        let config = server_config(&cert).unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn a_second_call_reuses_the_ca_and_the_serving_cert() {
        let root = tempfile::tempdir().unwrap();
        let first = ensure_serving_cert(root.path(), "node", ANY).unwrap();
        let second = ensure_serving_cert(root.path(), "node", ANY).unwrap();
        assert_eq!(first, second);
        assert_eq!(
            fs::read_to_string(root.path().join("pki/ca.crt")).unwrap(),
            first.ca_pem
        );
    }

    #[test]
    fn a_new_node_name_makes_a_new_serving_cert_under_the_same_ca() {
        let root = tempfile::tempdir().unwrap();
        let first = ensure_serving_cert(root.path(), "old-name", ANY).unwrap();
        let second = ensure_serving_cert(root.path(), "new-name", ANY).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem);
        assert_ne!(first.cert_pem, second.cert_pem);
        assert_ne!(first.key_pem, second.key_pem);
        handshake(&second, &second.ca_pem, "new-name").unwrap();
        handshake(&first, &first.ca_pem, "new-name").unwrap_err();
    }

    #[test]
    fn a_new_address_makes_a_new_serving_cert_and_an_unspecified_one_does_not() {
        let root = tempfile::tempdir().unwrap();
        let first = ensure_serving_cert(root.path(), "node", ANY).unwrap();
        let v6_any = ensure_serving_cert(root.path(), "node", "::".parse().unwrap()).unwrap();
        assert_eq!(first, v6_any);
        let loopback =
            ensure_serving_cert(root.path(), "node", "127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(first, loopback, "127.0.0.1 is always covered");
        let addr = ensure_serving_cert(root.path(), "node", "10.1.2.3".parse().unwrap()).unwrap();
        assert_ne!(first.cert_pem, addr.cert_pem);
        handshake(&addr, &addr.ca_pem, "10.1.2.3").unwrap();
    }

    #[test]
    fn keys_are_0600_certs_0644_and_the_directory_0700() {
        let root = tempfile::tempdir().unwrap();
        ensure_serving_cert(root.path(), "node", ANY).unwrap();
        let pki = root.path().join("pki");
        assert_eq!(mode(&pki), 0o700);
        assert_eq!(mode(&pki.join("ca.key")), 0o600);
        assert_eq!(mode(&pki.join("serving.key")), 0o600);
        assert_eq!(mode(&pki.join("ca.crt")), 0o644);
        assert_eq!(mode(&pki.join("serving.crt")), 0o644);
    }

    #[test]
    fn a_serving_cert_expiring_within_30_days_is_replaced() {
        let root = tempfile::tempdir().unwrap();
        ensure_serving_cert(root.path(), "node", ANY).unwrap();
        let pki = root.path().join("pki");
        let ca = ensure_ca(&pki).unwrap();
        let names = wanted_names("node", ANY);
        let (short, short_key) =
            issue_serving(&ca, "node", &names, SystemTime::now(), 20 * DAY).unwrap();
        assert_eq!(
            reuse_problem(&ca.der, &short, &short_key, &names, SystemTime::now()).as_deref(),
            Some("it expires within 30 days")
        );
        fs::write(pki.join("serving.crt"), &short).unwrap();
        fs::write(pki.join("serving.key"), &short_key).unwrap();
        let renewed = ensure_serving_cert(root.path(), "node", ANY).unwrap();
        assert_ne!(renewed.cert_pem, short);
        assert_eq!(
            reuse_problem(
                &ca.der,
                &renewed.cert_pem,
                &renewed.key_pem,
                &names,
                SystemTime::now()
            ),
            None
        );
    }

    #[test]
    fn reuse_problem_says_why() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let cert = ensure_serving_cert(a.path(), "node", ANY).unwrap();
        ensure_serving_cert(b.path(), "node", ANY).unwrap();
        let ca = ensure_ca(&a.path().join("pki")).unwrap();
        let other_ca = ensure_ca(&b.path().join("pki")).unwrap();
        let now = SystemTime::now();
        let names = wanted_names("node", ANY);
        let why = |ca: &Ca, cert: &str, key: &str, names: &[Name], at| {
            reuse_problem(&ca.der, cert, key, names, at)
        };

        assert_eq!(why(&ca, &cert.cert_pem, &cert.key_pem, &names, now), None);
        assert_eq!(
            why(
                &ca,
                &cert.cert_pem,
                &cert.key_pem,
                &wanted_names("other", ANY),
                now
            )
            .as_deref(),
            Some("it does not cover other")
        );
        assert_eq!(
            why(&other_ca, &cert.cert_pem, &cert.key_pem, &names, now).as_deref(),
            Some("it is not signed by the current CA")
        );
        assert_eq!(
            why(&ca, &cert.cert_pem, &cert.key_pem, &names, now + 400 * DAY).as_deref(),
            Some("it has expired")
        );
        let other_key = KeyPair::generate().unwrap().serialize_pem();
        assert!(why(&ca, &cert.cert_pem, &other_key, &names, now)
            .unwrap()
            .starts_with("its key does not fit it"));
        assert_eq!(
            why(&ca, "garbage", &cert.key_pem, &names, now).as_deref(),
            Some("it holds no PEM certificate")
        );
    }

    #[test]
    fn a_broken_serving_key_is_replaced() {
        let root = tempfile::tempdir().unwrap();
        let first = ensure_serving_cert(root.path(), "node", ANY).unwrap();
        fs::write(root.path().join("pki/serving.key"), "not a key").unwrap();
        let second = ensure_serving_cert(root.path(), "node", ANY).unwrap();
        assert_ne!(first.key_pem, second.key_pem);
        assert_eq!(first.ca_pem, second.ca_pem);
        handshake(&second, &second.ca_pem, "node").unwrap();
    }

    #[test]
    fn a_missing_ca_makes_a_new_ca_and_a_new_serving_cert() {
        let root = tempfile::tempdir().unwrap();
        let first = ensure_serving_cert(root.path(), "node", ANY).unwrap();
        fs::remove_file(root.path().join("pki/ca.crt")).unwrap();
        let second = ensure_serving_cert(root.path(), "node", ANY).unwrap();
        assert_ne!(first.ca_pem, second.ca_pem);
        assert_ne!(first.cert_pem, second.cert_pem);
        handshake(&second, &second.ca_pem, "127.0.0.1").unwrap();
    }

    #[test]
    fn a_ca_cert_without_its_key_is_an_error_naming_the_key() {
        let root = tempfile::tempdir().unwrap();
        ensure_serving_cert(root.path(), "node", ANY).unwrap();
        let key = root.path().join("pki/ca.key");
        fs::remove_file(&key).unwrap();
        let e = ensure_serving_cert(root.path(), "node", ANY)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("the CA key {}: missing", key.display())),
            "{e}"
        );
    }

    #[test]
    fn a_node_name_that_is_no_dns_name_is_left_out_and_an_ip_node_name_is_an_ip_san() {
        assert_eq!(wanted_names("bad_name!", ANY).len(), 3);
        assert_eq!(
            wanted_names("10.0.0.1", ANY)[3],
            Name::Ip("10.0.0.1".parse().unwrap())
        );
        assert_eq!(wanted_names("localhost", "::1".parse().unwrap()).len(), 3);
    }

    fn write(dir: &Path, name: &str, s: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        fs::write(&p, s).unwrap();
        p
    }

    #[test]
    fn load_serving_cert_names_a_missing_file_and_its_flag() {
        let e = load_serving_cert(
            Path::new("/nonexistent/x.crt"),
            Path::new("/nonexistent/x.key"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read --tls-cert-file /nonexistent/x.crt: No such file or directory"
        );
    }

    #[test]
    fn load_serving_cert_takes_the_ca_from_the_end_of_a_chain_and_none_from_a_lone_leaf() {
        let root = tempfile::tempdir().unwrap();
        let own = ensure_serving_cert(root.path(), "node", ANY).unwrap();
        let key = write(root.path(), "k.pem", &own.key_pem);
        let chain = write(
            root.path(),
            "chain.pem",
            &format!("{}{}", own.cert_pem, own.ca_pem),
        );
        let leaf = write(root.path(), "leaf.pem", &own.cert_pem);

        let loaded = load_serving_cert(&chain, &key).unwrap();
        assert_eq!(certs_from_pem(&loaded.ca_pem), certs_from_pem(&own.ca_pem));
        handshake(&loaded, &loaded.ca_pem, "node").unwrap();

        let loaded = load_serving_cert(&leaf, &key).unwrap();
        assert_eq!(loaded.ca_pem, "");
        assert_eq!(loaded.cert_pem, own.cert_pem);
    }

    #[test]
    fn load_serving_cert_refuses_a_key_of_another_cert() {
        let root = tempfile::tempdir().unwrap();
        let own = ensure_serving_cert(root.path(), "node", ANY).unwrap();
        let cert = write(root.path(), "c.pem", &own.cert_pem);
        let other = write(
            root.path(),
            "k.pem",
            &KeyPair::generate().unwrap().serialize_pem(),
        );
        let e = load_serving_cert(&cert, &other).unwrap_err().to_string();
        let want = format!(
            "--tls-private-key-file {}: it does not fit the first certificate of {}",
            other.display(),
            cert.display()
        );
        assert!(e.starts_with(&want), "{e}");
        let not_pem = write(root.path(), "n.pem", "hello");
        let e = load_serving_cert(&not_pem, &other).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "--tls-cert-file {}: no PEM certificate in it",
                not_pem.display()
            )
        );
    }

    #[test]
    fn debug_leaves_the_key_out() {
        let c = ServingCert {
            ca_pem: "ca".into(),
            cert_pem: "cert".into(),
            key_pem: "SECRET".into(),
        };
        assert!(!format!("{c:?}").contains("SECRET"));
    }
}
