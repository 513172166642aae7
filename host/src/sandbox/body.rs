//! The response body handed to a component: capped in size, counted, and holding the run's
//! in-flight slot (shared with the connection) until it is read to the end or dropped.

use super::stats::NetStats;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime_wasi_http::Error;

pub struct CappedBody<B> {
    inner: B,
    remaining: u64,
    limit: u64,
    stats: Arc<NetStats>,
    permit: Option<Arc<OwnedSemaphorePermit>>,
}

impl<B> CappedBody<B> {
    pub fn new(
        inner: B,
        limit: u64,
        stats: Arc<NetStats>,
        permit: Arc<OwnedSemaphorePermit>,
    ) -> Self {
        CappedBody {
            inner,
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
