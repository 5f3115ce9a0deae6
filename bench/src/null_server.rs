//! The null server: the same HTTP stack as Quarry (hyper 1, hyper-util's auto builder,
//! TCP_NODELAY), answering every request without doing any work. What a workload gets
//! from it is the limit of the client and HTTP on this machine.
//!
//! It answers as S3 would, in size: PUT drains the body and returns an ETag; GET returns
//! as many bytes as the key names (`.../<size>/<n>`); HEAD their length; DELETE 204;
//! a listing one canned page of 1,000 keys.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest body a GET answers: the largest object size the benchmark uses.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

pub async fn serve(address: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    println!("null server listening on http://{}", listener.local_addr()?);
    let zeros = Bytes::from(vec![0u8; MAX_BODY_BYTES]);
    let page = Bytes::from(list_page(1000));
    let shared = Arc::new((zeros, page));
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, shared.clone()));
            let _ = Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn answer(request: Request<Incoming>, shared: Arc<(Bytes, Bytes)>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (zeros, page) = &*shared;
    let path = request.uri().path().to_owned();
    let listing = request.uri().query().is_some_and(|q| q.contains("list-type"));
    let method = request.method().clone();
    // Drain whatever body came (PUT), as a server storing it would have to read it.
    let mut body = request.into_body();
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
    let size = path.rsplit('/').nth(1).and_then(|s| s.parse::<usize>().ok()).unwrap_or(0).min(MAX_BODY_BYTES);
    let response = match method {
        Method::PUT => Response::builder().header("etag", "\"d41d8cd98f00b204e9800998ecf8427e\"").body(Full::default()),
        Method::GET if listing => {
            Response::builder().header("content-type", "application/xml").body(Full::new(page.clone()))
        }
        Method::GET => Response::builder().body(Full::new(zeros.slice(..size))),
        Method::HEAD => Response::builder().header("content-length", size).body(Full::default()),
        Method::DELETE => Response::builder().status(StatusCode::NO_CONTENT).body(Full::default()),
        _ => Response::builder().status(StatusCode::OK).body(Full::default()),
    };
    Ok(response.expect("static response parts are valid"))
}

/// A ListObjectsV2 page of `keys` 1 KiB objects, as S3 writes it.
fn list_page(keys: usize) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>bench</Name><Prefix>small/</Prefix><KeyCount>1000</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>",
    );
    for i in 0..keys {
        xml.push_str(&format!(
            "<Contents><Key>small/{i:08}</Key><LastModified>2026-12-04T12:00:00.000Z</LastModified><ETag>&quot;0f343b0931126a20f133d67c2b018a3b&quot;</ETag><Size>1024</Size><StorageClass>STANDARD</StorageClass></Contents>"
        ));
    }
    xml.push_str("</ListBucketResult>");
    xml
}
