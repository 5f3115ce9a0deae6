//! The SQL endpoint: `POST /?sql` with the SQL text as the body.
//!
//! The service root `/` can never be a bucket, and s3s verifies the request's SigV4
//! signature (payload hash included) like any S3 request's before this runs. The query
//! sees only the buckets the key may read: `inventory` and `journal` are filtered to
//! them and `read_parquet('s3://other/...')` is refused.
//!
//! * `?format=csv|json|arrow|parquet` (default csv), or the same named by `Accept`;
//! * the answer streams: CSV with a header, JSON lines, an Arrow IPC stream, or Parquet;
//! * errors before the first row are S3 error documents: `InvalidQuery` (400),
//!   `AccessDenied` (403), `QueryTimeout` and `QueryMemoryLimitExceeded` (400). A
//!   failure after rows were sent cuts the response short (the client sees a broken body).

use crate::KeyStore;
use crate::access::CallerAccess;
use crate::query_gate::QueryGate;
use bytes::Bytes;
use quarry_sql::{BucketScope, QueryErrorKind, QueryLimits, ResultFormat};
use s3s::dto::StreamingBlob;
use s3s::route::S3Route;
use s3s::{Body, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use storage_core::Engine;

/// Encoded result chunks that may wait for a slow client.
const CHUNKS_IN_FLIGHT: usize = 4;

pub struct SqlRoute {
    pub engine: Engine,
    pub keys: Arc<KeyStore>,
    pub limits: QueryLimits,
    pub gate: QueryGate,
    /// The same decision as the S3 API's, key by key.
    pub access: Arc<crate::access::Access>,
}

/// Is this request for the SQL endpoint?
pub fn is_sql_request(method: &http::Method, uri: &http::Uri) -> bool {
    method == http::Method::POST
        && uri.path() == "/"
        && uri.query().is_some_and(|q| q.split('&').any(|p| p == "sql" || p.starts_with("sql=")))
}

fn query_param<'a>(uri: &'a http::Uri, name: &str) -> Option<&'a str> {
    uri.query()?.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn result_format(req: &S3Request<Body>) -> S3Result<ResultFormat> {
    if let Some(name) = query_param(&req.uri, "format") {
        return ResultFormat::parse(name)
            .ok_or_else(|| s3_error!(InvalidArgument, "format must be csv, json, arrow or parquet, not {name:?}"));
    }
    let accept = req.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    Ok(match accept {
        a if a.contains("arrow") => ResultFormat::Arrow,
        a if a.contains("parquet") => ResultFormat::Parquet,
        a if a.contains("json") => ResultFormat::Json,
        _ => ResultFormat::Csv,
    })
}

fn query_error(e: quarry_sql::QueryError) -> S3Error {
    let (code, status) = match e.kind {
        QueryErrorKind::InvalidQuery => ("InvalidQuery", http::StatusCode::BAD_REQUEST),
        QueryErrorKind::AccessDenied => ("AccessDenied", http::StatusCode::FORBIDDEN),
        QueryErrorKind::Timeout => ("QueryTimeout", http::StatusCode::BAD_REQUEST),
        QueryErrorKind::MemoryLimit => ("QueryMemoryLimitExceeded", http::StatusCode::BAD_REQUEST),
        QueryErrorKind::Internal => ("InternalError", http::StatusCode::INTERNAL_SERVER_ERROR),
    };
    let code = S3ErrorCode::from_bytes(code.as_bytes()).expect("any code parses");
    let mut error = S3Error::with_message(code, e.message);
    error.set_status_code(status);
    error
}

#[async_trait::async_trait]
impl S3Route for SqlRoute {
    fn is_match(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        _headers: &http::HeaderMap,
        _extensions: &mut http::Extensions,
    ) -> bool {
        is_sql_request(method, uri)
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        match &req.credentials {
            Some(c) if self.keys.user(&c.access_key).is_some() => Ok(()),
            Some(_) => {
                Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
            }
            None => Err(s3_error!(AccessDenied, "The SQL endpoint needs a signed request")),
        }
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let access_key = req.credentials.as_ref().map(|c| c.access_key.clone()).expect("check_access ran");
        let origin = req.extensions.get::<crate::RequestContext>();
        let caller = self.keys.user(&access_key);
        let access = CallerAccess::new(self.access.clone(), caller.clone(), &req.headers, &req.uri, origin);
        let scope = scope(caller.as_ref(), access, &self.engine)?;
        let format = result_format(&req)?;
        let sql = req.input.store_all_limited(quarry_sql::query::MAX_SQL_BYTES).await.map_err(|e| {
            s3_error!(
                InvalidRequest,
                "reading the SQL failed (at most {} bytes): {e}",
                quarry_sql::query::MAX_SQL_BYTES
            )
        })?;
        let sql = std::str::from_utf8(&sql).map_err(|_| s3_error!(InvalidRequest, "the SQL is not UTF-8"))?;
        if sql.trim().is_empty() {
            return Err(s3_error!(InvalidRequest, "send the SQL as the request body"));
        }
        let permit = self.gate.admit().await?;
        let result =
            quarry_sql::run_query(&self.engine, scope, sql, format, &self.limits).await.map_err(query_error)?;

        // The body stream is Send but not Sync; a task pumps it into a channel. The task
        // holds the query's slot, and gives up at the deadline even if the client stopped
        // reading: the query and its memory go, and the body ends in an error.
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
        let abandoned = Arc::new(AtomicBool::new(false));
        let mut body = result.body;
        let deadline = tokio::time::Instant::from_std(result.deadline);
        let abandoning = abandoned.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            let _permit = permit;
            // A reader panicking on a malformed object ends the body in an error.
            while let Some(chunk) = quarry_sql::unwind::catching(body.next()).await.unwrap_or_else(|panic| {
                Some(Err(quarry_sql::QueryError {
                    kind: quarry_sql::QueryErrorKind::Internal,
                    message: format!("a source could not be read: {panic}"),
                }))
            }) {
                let chunk = chunk.map_err(|e| {
                    tracing::warn!("SQL result cut short: {e}");
                    std::io::Error::other(e.message)
                });
                let failed = chunk.is_err();
                match tokio::time::timeout_at(deadline, sender.send(chunk)).await {
                    Ok(Ok(())) if !failed => {}
                    Ok(_) => return,
                    Err(_) => {
                        tracing::info!("SQL result not read by the client before the deadline: query dropped");
                        abandoning.store(true, Ordering::Release);
                        return;
                    }
                }
            }
        });
        let blob = StreamingBlob::wrap(futures::stream::poll_fn(move |cx| match receiver.poll_recv(cx) {
            // An abandoned result must not end like a complete one.
            Poll::Ready(None) if abandoned.load(Ordering::Acquire) => Poll::Ready(Some(Err(std::io::Error::other(
                "the query's time limit passed before its result was read",
            )))),
            other => other,
        }));
        let mut response = S3Response::new(Body::from(blob));
        response.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(result.content_type));
        Ok(response)
    }
}

/// The buckets a caller may read in SQL: everything for an admin; else each bucket
/// the S3 API would let it list (ListObjects), whole when the bucket has no policy, key
/// by key when it has one (a policy may treat prefixes differently). Every object a
/// query reads is decided as a GetObject.
fn scope(caller: Option<&crate::auth::User>, access: CallerAccess, engine: &Engine) -> S3Result<BucketScope> {
    if caller.is_some_and(crate::auth::User::is_admin) {
        return Ok(BucketScope::All);
    }
    let mut whole = std::collections::BTreeSet::new();
    let mut by_key = std::collections::BTreeSet::new();
    for (bucket, entry) in engine.buckets().map_err(crate::error::engine_error)? {
        if entry.policy.is_some() {
            by_key.insert(bucket);
        } else if access.may_list_bucket(&bucket) {
            whole.insert(bucket);
        }
    }
    Ok(BucketScope::Checked { whole, by_key, access: Arc::new(access) })
}
