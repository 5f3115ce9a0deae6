//! The load generator's S3 client: SigV4 (UNSIGNED-PAYLOAD, as the AWS SDKs send large
//! bodies over TLS) over a pooled hyper client with TCP_NODELAY, plain HTTP or HTTPS
//! trusting one certificate. The same client drives Quarry and the null server.

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::SystemTime;

pub const ACCESS_KEY: &str = "quarry-bench-access";
pub const SECRET_KEY: &str = "quarry-bench-secret-0123456789";
const REGION: &str = "us-east-1";

#[derive(Clone)]
pub struct S3Client {
    base_url: String,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl S3Client {
    /// A client of `http://address`, or of `https://address` trusting only the PEM
    /// certificate `trusted_pem`.
    pub fn new(address: SocketAddr, max_connections: usize, trusted_pem: Option<&str>) -> Result<S3Client, String> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = trusted_pem {
            use rustls_pki_types::pem::PemObject;
            let cert = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| e.to_string())?;
            roots.add(cert).map_err(|e| e.to_string())?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(max_connections).build(connector);
        let scheme = if trusted_pem.is_some() { "https" } else { "http" };
        Ok(S3Client { base_url: format!("{scheme}://{address}"), http })
    }

    /// Sends a signed request; returns the status and the body's length (the body is
    /// read to the end, not kept).
    pub async fn send(&self, method: Method, path_and_query: &str, body: Bytes) -> Result<(StatusCode, u64), String> {
        let response = self.request(method, path_and_query, body).await?;
        let status = response.status();
        let mut body = response.into_body();
        let mut length = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("reading {path_and_query}: {e}"))?;
            if let Some(data) = frame.data_ref() {
                length += data.len() as u64;
            }
        }
        Ok((status, length))
    }

    /// Sends a signed request; returns the status and the whole body.
    pub async fn send_collect(&self, method: Method, path_and_query: &str) -> Result<(StatusCode, Bytes), String> {
        let response = self.request(method, path_and_query, Bytes::new()).await?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, body))
    }

    async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        use aws_sigv4::http_request::{PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign};
        let url = format!("{}{path_and_query}", self.base_url);
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(Full::new(body))
            .map_err(|e| format!("bad request {url}: {e}"))?;
        let identity = aws_credential_types::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bench").into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let signable = SignableRequest::new(method.as_str(), &url, std::iter::empty(), SignableBody::UnsignedPayload)
            .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
        instructions.apply_to_request_http1x(&mut request);
        self.http.request(request).await.map_err(|e| format!("{url}: {e}"))
    }
}
