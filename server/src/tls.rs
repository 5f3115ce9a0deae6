//! TLS for the listener (`--tls-cert` / `--tls-key`): PEM files read at start and again
//! on SIGHUP, so a renewed certificate takes effect without a restart. A reload that
//! fails (missing file, bad PEM, key not matching the certificate) keeps the certificate
//! in use and logs why. Also the trust roots of `quarry sql|admin --endpoint https://…`.

use rustls::crypto::aws_lc_rs::default_provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// A PEM file larger than this is not a certificate chain or a key.
const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;

/// Where the certificate chain and its private key are read from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// The certificate the listener presents; replaced whole on reload.
#[derive(Debug)]
pub struct CertificateSource {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertificateSource {
    /// Reads the files; an error names the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<Arc<CertificateSource>, String> {
        let key = certified_key(&files)?;
        Ok(Arc::new(CertificateSource { files, current: RwLock::new(key) }))
    }

    /// Reads the files again; on error the certificate in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let key = certified_key(&self.files)?;
        *self.current.write().unwrap() = key;
        Ok(())
    }

    /// The rustls configuration of the listener: HTTP/2 and HTTP/1.1 by ALPN.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertificateSource {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap().clone())
    }
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let size =
        std::fs::metadata(path).map_err(|e| format!("cannot read the TLS {what} {}: {e}", path.display()))?.len();
    if size > MAX_PEM_FILE_BYTES {
        return Err(format!(
            "the TLS {what} {} is {size} bytes; at most {MAX_PEM_FILE_BYTES} expected",
            path.display()
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot read the TLS {what} {}: {e}", path.display()))
}

fn certified_key(files: &TlsFiles) -> Result<Arc<CertifiedKey>, String> {
    let cert_pem = read_pem(&files.cert_path, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the TLS certificate {} is not valid PEM: {e}", files.cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!("the TLS certificate {} holds no CERTIFICATE block", files.cert_path.display()));
    }
    let key_pem = read_pem(&files.key_path, "key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("the TLS key {} holds no usable private key: {e}", files.key_path.display()))?;
    let key = CertifiedKey::from_der(chain, key, &default_provider()).map_err(|e| {
        format!(
            "the TLS key {} does not fit the certificate {}: {e}",
            files.key_path.display(),
            files.cert_path.display()
        )
    })?;
    Ok(Arc::new(key))
}

/// What `quarry sql|admin` trusts: the certificates of the PEM file in QUARRY_CA_BUNDLE
/// or AWS_CA_BUNDLE (as the aws cli does, instead of the system's), else the system's.
pub fn client_config() -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let bundle = ["QUARRY_CA_BUNDLE", "AWS_CA_BUNDLE"]
        .iter()
        .find_map(|name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from));
    match bundle {
        Some(path) => {
            let pem = read_pem(&path, "CA bundle")?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("the CA bundle {} is not valid PEM: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("a certificate of {} is not usable: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("the CA bundle {} holds no CERTIFICATE block", path.display()));
            }
        }
        None => {
            // Unreadable system certificates are skipped; the handshake then says what failed.
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Reloads the certificate on every SIGHUP, for the life of the process. Without TLS
/// the signal is only logged: SIGHUP's default action would end the process, and
/// `systemctl reload` sends it.
pub async fn reload_on_sighup(source: Option<Arc<CertificateSource>>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("no SIGHUP handler: the TLS certificate is not reloaded without a restart");
        return;
    };
    while hangups.recv().await.is_some() {
        let Some(source) = &source else {
            tracing::info!("SIGHUP: no TLS certificate to reload");
            continue;
        };
        match source.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded from {}", source.files.cert_path.display()),
            Err(e) => tracing::error!("TLS certificate not reloaded, the one in use stays: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_files_are_bounded_and_checked() {
        let dir = std::env::temp_dir().join(format!("quarry-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.pem");
        std::fs::write(&big, vec![b'A'; (MAX_PEM_FILE_BYTES + 1) as usize]).unwrap();
        let error = read_pem(&big, "certificate").unwrap_err();
        assert!(error.contains("at most"), "an oversized PEM file is refused by its size: {error}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not PEM at all").unwrap();
        let files = TlsFiles { cert_path: empty.clone(), key_path: empty };
        let error = CertificateSource::load(files).unwrap_err();
        assert!(error.contains("no CERTIFICATE block"), "a file without a certificate: {error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
