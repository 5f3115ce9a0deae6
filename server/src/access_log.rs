//! One access-log line per S3 request: at info, or at error for a server fault (5xx).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

pub struct AccessLine {
    pub method: http::Method,
    pub path: String,
    /// The Host header: with virtual-hosted-style requests it names the bucket.
    pub host: String,
    pub status: http::StatusCode,
    pub access_key: Option<String>,
    pub request_id: String,
    pub peer: SocketAddr,
    /// The client: `peer`'s address, or the one a trusted proxy relays for.
    pub client_ip: IpAddr,
    pub started: Instant,
}

impl AccessLine {
    pub fn emit(&self, bytes_in: u64, bytes_out: u64) {
        let duration_ms = self.started.elapsed().as_millis() as u64;
        let access_key = self.access_key.as_deref().unwrap_or("-");
        macro_rules! access_line {
            ($level:ident) => {
                tracing::$level!(
                    target: "quarry::access",
                    method = %self.method,
                    host = %self.host,
                    path = %self.path,
                    status = self.status.as_u16(),
                    bytes_in,
                    bytes_out,
                    duration_ms,
                    request_id = %self.request_id,
                    access_key,
                    peer = %self.peer,
                    client_ip = %self.client_ip,
                    "request"
                )
            };
        }
        if self.status.is_server_error() {
            access_line!(error);
        } else {
            access_line!(info);
        }
    }
}

/// The access key a request claims (SigV4 header or presigned query), for the log.
pub fn access_key<B>(request: &http::Request<B>) -> Option<String> {
    const MAX_ACCESS_KEY_BYTES: usize = 128;
    let from_header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .map(|rest| rest.split('/').next().unwrap_or_default().to_owned());
    let from_query = || {
        request.uri().query().and_then(|query| {
            query.split('&').find_map(|pair| {
                let value = pair.strip_prefix("X-Amz-Credential=")?;
                let value = value.split("%2F").next().unwrap_or_default();
                Some(value.split('/').next().unwrap_or_default().to_owned())
            })
        })
    };
    from_header.or_else(from_query).filter(|k| !k.is_empty()).map(|mut k| {
        k.truncate(MAX_ACCESS_KEY_BYTES);
        k
    })
}
