//! The response body handed to a component: capped in size, counted, and holding the run's
//! in-flight slot until it is read to the end or dropped, and failing when the server stops
//! sending for longer than the between-bytes timeout.

use super::stats::NetStats;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;
use wasmtime_wasi_http::Error;

pub struct CappedBody<B> {
    inner: B,
    /// The longest wait for the next piece of the body.
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    remaining: u64,
    limit: u64,
    stats: Arc<NetStats>,
    permit: Option<OwnedSemaphorePermit>,
}

impl<B> CappedBody<B> {
    pub fn new(
        inner: B,
        limit: u64,
        stats: Arc<NetStats>,
        permit: OwnedSemaphorePermit,
        idle: Duration,
    ) -> Self {
        CappedBody {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            remaining: limit,
            limit,
            stats,
            permit: Some(permit),
        }
    }
}

impl<B: Body<Data = Bytes, Error = Error> + Unpin> Body for CappedBody<B> {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + this.idle);
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    NetStats::add(&this.stats.bytes_received, n);
                    if n > this.remaining {
                        this.remaining = 0;
                        this.permit = None;
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(
                            this.limit,
                        )))));
                    }
                    this.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.permit = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                // Nothing for too long: the server stalled mid-body.
                if this.timer.as_mut().poll(cx).is_ready() {
                    this.permit = None;
                    return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
