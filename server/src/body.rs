//! Bodies with bookkeeping: a request body that fails once the client sends nothing
//! for too long, and a response body that reports its size when it is done.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// What a request body saw, read by the access log and the error handling.
#[derive(Debug, Default)]
pub struct BodyStats {
    pub bytes_in: AtomicU64,
    pub timed_out: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
#[error("the client sent no request body bytes for {0} ms")]
pub struct BodyIdleTimeout(u64);

/// The request body, failing with [`BodyIdleTimeout`] once the client has kept us
/// waiting for `timeout` without a byte.
pub struct IdleTimeoutBody<B> {
    inner: B,
    timeout: Duration,
    /// Armed while we wait for the client; cleared by each frame.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    stats: Arc<BodyStats>,
}

impl<B> IdleTimeoutBody<B> {
    pub fn new(inner: B, timeout: Duration, stats: Arc<BodyStats>) -> Self {
        IdleTimeoutBody { inner, timeout, sleep: None, stats }
    }
}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                    let len = data.map_or(0, |d| d.len() as u64);
                    this.stats.bytes_in.fetch_add(len, Ordering::Relaxed);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.stats.timed_out.store(true, Ordering::Relaxed);
                        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                        Poll::Ready(Some(Err(Box::new(BodyIdleTimeout(ms)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body; calls `done` with the bytes sent when it is dropped (sent in
/// full, or abandoned because the client went away).
pub struct ReportingBody<B, F: FnOnce(u64)> {
    inner: B,
    bytes_out: u64,
    done: Option<F>,
}

impl<B, F: FnOnce(u64)> ReportingBody<B, F> {
    pub fn new(inner: B, done: F) -> Self {
        ReportingBody { inner, bytes_out: 0, done: Some(done) }
    }
}

impl<B, F: FnOnce(u64)> Drop for ReportingBody<B, F> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(self.bytes_out);
        }
    }
}

impl<B, F> Body for ReportingBody<B, F>
where
    B: Body<Data = Bytes> + Unpin,
    F: FnOnce(u64) + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            this.bytes_out += frame.data_ref().map_or(0, |d| d.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
