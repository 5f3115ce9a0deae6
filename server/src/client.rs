//! SigV4-signed requests to a running server: `quarry admin status|compact` and `quarry sql`.

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::SystemTime;

pub struct Endpoint {
    pub url: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

impl Endpoint {
    /// Credentials from QUARRY_ACCESS_KEY / QUARRY_SECRET_KEY, else the AWS variables.
    pub fn from_env(url: String) -> Result<Endpoint, String> {
        let pick = |a: &str, b: &str| std::env::var(a).or_else(|_| std::env::var(b)).ok().filter(|v| !v.is_empty());
        let access_key = pick("QUARRY_ACCESS_KEY", "AWS_ACCESS_KEY_ID");
        let secret_key = pick("QUARRY_SECRET_KEY", "AWS_SECRET_ACCESS_KEY");
        let (Some(access_key), Some(secret_key)) = (access_key, secret_key) else {
            return Err(
                "set QUARRY_ACCESS_KEY and QUARRY_SECRET_KEY (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)".into()
            );
        };
        let region = pick("QUARRY_REGION", "AWS_REGION").unwrap_or_else(|| crate::config::DEFAULT_REGION.into());
        Ok(Endpoint { url: url.trim_end_matches('/').to_owned(), access_key, secret_key, region })
    }

    /// Sends a signed request with an empty body; returns the status and body text.
    pub async fn call(&self, method: &str, path: &str) -> Result<(u16, String), String> {
        let response = self.send(method, path, bytes::Bytes::new(), None).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Sends a signed request (the payload hash signed too); the response streams.
    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: bytes::Bytes,
        accept: Option<&str>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        use aws_sigv4::http_request::{PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign};
        let url = format!("{}{path_and_query}", self.url);
        let mut builder = http::Request::builder().method(method).uri(&url);
        if let Some(accept) = accept {
            builder = builder.header(http::header::ACCEPT, accept);
        }
        let mut request = builder.body(Full::new(body.clone())).map_err(|e| format!("bad endpoint {url}: {e}"))?;
        let identity =
            aws_credential_types::Credentials::new(&self.access_key, &self.secret_key, None, None, "quarry").into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let signable = SignableRequest::new(method, &url, std::iter::empty(), SignableBody::Bytes(&body))
            .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
        instructions.apply_to_request_http1x(&mut request);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::tls::client_config()?)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        client.request(request).await.map_err(|e| format!("cannot reach {url}: {e}"))
    }
}
