//! Memory: a 1 GiB single PutObject (streamed from a generator, never held in
//! the test's memory) must not blow up the server's RSS; streaming it back
//! returns exactly the same bytes.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use md5::{Digest, Md5};
use rand::{RngCore, SeedableRng};

use crate::harness::*;

const SIZE: u64 = 1 << 30; // 1 GiB
const GEN_CHUNK: usize = 256 * 1024;
const PEAK_RSS_LIMIT: u64 = 200 * 1024 * 1024;

/// Deterministic pseudo-random byte generator, yielding `GEN_CHUNK`-sized chunks.
struct Generator {
    rng: rand::rngs::SmallRng,
    remaining: u64,
}

impl Generator {
    fn new(seed: u64, len: u64) -> Self {
        Generator { rng: rand::rngs::SmallRng::seed_from_u64(seed), remaining: len }
    }

    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let n = (self.remaining as usize).min(GEN_CHUNK);
        let mut buf = vec![0u8; n];
        self.rng.fill_bytes(&mut buf);
        self.remaining -= n as u64;
        Some(Bytes::from(buf))
    }
}

/// An http-body 1.x body streaming the generator's output, with an exact size hint.
struct GeneratedBody(Generator);

impl Body for GeneratedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.next_chunk().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.remaining)
    }
}

fn expected_md5(seed: u64, len: u64) -> String {
    let mut generator = Generator::new(seed, len);
    let mut md5 = Md5::new();
    while let Some(chunk) = generator.next_chunk() {
        md5.update(&chunk);
    }
    hex::encode(md5.finalize())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_put_keeps_peak_rss_under_200_mib() {
    let server = Server::start();
    let s3 = server.bulk_client();
    let bucket = "huge";
    let key = "one-gib.bin";
    create_bucket(&s3, bucket).await;
    let seed: u64 = rand::random();
    let rss_at_start = server.peak_rss_bytes();

    let md5_task = tokio::task::spawn_blocking(move || expected_md5(seed, SIZE));

    let started = std::time::Instant::now();
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_length(SIZE as i64)
        .body(ByteStream::from_body_1_x(GeneratedBody(Generator::new(seed, SIZE))))
        .send()
        .await
        .ok_or_panic("PutObject 1 GiB (streamed)");
    let upload_time = started.elapsed();
    let want_md5 = md5_task.await.expect("md5 task");
    assert_eq!(
        out.e_tag(),
        Some(format!("\"{want_md5}\"").as_str()),
        "PutObject 1 GiB: ETag must be the MD5 of the streamed body"
    );

    let peak_after_put = server.peak_rss_bytes();
    eprintln!(
        "e2e memory: 1 GiB PutObject took {upload_time:?}; server peak RSS {} MiB (at start {} MiB)",
        peak_after_put / MIB as u64,
        rss_at_start / MIB as u64
    );
    assert!(
        peak_after_put < PEAK_RSS_LIMIT,
        "server peak RSS (VmHWM) after a 1 GiB PutObject: got {} MiB, want < {} MiB (at start: {} MiB; upload took {upload_time:?})",
        peak_after_put / MIB as u64,
        PEAK_RSS_LIMIT / MIB as u64,
        rss_at_start / MIB as u64
    );

    let head = s3.head_object().bucket(bucket).key(key).send().await.ok_or_panic("HeadObject 1 GiB");
    assert_eq!(head.content_length(), Some(SIZE as i64), "HeadObject 1 GiB: Content-Length");

    // Stream it back, hashing as we go.
    let out = s3.get_object().bucket(bucket).key(key).send().await.ok_or_panic("GetObject 1 GiB");
    assert_eq!(out.content_length(), Some(SIZE as i64), "GetObject 1 GiB: Content-Length");
    let mut body = out.body;
    let mut md5 = Md5::new();
    let mut received: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap_or_else(|e| {
            panic!(
                "GetObject 1 GiB: body stream failed after {received} bytes: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
        received += chunk.len() as u64;
        md5.update(&chunk);
    }
    assert_eq!(received, SIZE, "GetObject 1 GiB: bytes received");
    assert_eq!(hex::encode(md5.finalize()), want_md5, "GetObject 1 GiB: MD5 of the body");

    let peak_after_get = server.peak_rss_bytes();
    assert!(
        peak_after_get < PEAK_RSS_LIMIT,
        "server peak RSS (VmHWM) after a 1 GiB PutObject + GetObject: got {} MiB, want < {} MiB",
        peak_after_get / MIB as u64,
        PEAK_RSS_LIMIT / MIB as u64
    );
}
