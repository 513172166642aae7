//! The TCP connections behind the sandbox's client: TCP_NODELAY, and on Linux an immediate ACK
//! for everything received.
//!
//! Why: many HTTP/1.1 servers write an answer's head and body in separate writes with Nagle's
//! algorithm on. The body then waits for the ACK of the head, and Linux delays that ACK (up to
//! 40 ms) on a connection that has settled into request/answer turns. On a kept-alive
//! connection every answer paid those 40 ms (three times a 20 ms latency); a fresh connection
//! does not, because Linux ACKs its first segments at once. TCP_QUICKACK is not sticky (the
//! kernel may fall back to delayed ACKs), so it is set again after every read.

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connector (direct or through a proxy) whose TCP connections ACK at once (see the module
/// docs).
#[derive(Clone)]
pub struct QuickAckConnector<C> {
    inner: C,
}

impl<C> QuickAckConnector<C> {
    pub fn new(inner: C) -> QuickAckConnector<C> {
        QuickAckConnector { inner }
    }
}

impl<C> tower_service::Service<http::Uri> for QuickAckConnector<C>
where
    C: tower_service::Service<http::Uri, Response = TokioIo<TcpStream>>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = TokioIo<QuickAck>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let stream = connecting.await.map_err(Into::into)?.into_inner();
            Ok(TokioIo::new(QuickAck::new(stream)))
        })
    }
}

/// A TCP stream that asks the kernel to ACK at once after each read.
#[derive(Debug)]
pub struct QuickAck {
    stream: TcpStream,
}

impl QuickAck {
    fn new(stream: TcpStream) -> QuickAck {
        let conn = QuickAck { stream };
        conn.ack_now();
        conn
    }

    #[cfg(target_os = "linux")]
    fn ack_now(&self) {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket descriptor (owned by `self.stream`) and a c_int option value
        // of the size passed.
        let _ = unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&raw const on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }

    #[cfg(not(target_os = "linux"))]
    fn ack_now(&self) {}
}

impl Connection for QuickAck {
    fn connected(&self) -> Connected {
        self.stream.connected()
    }
}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.ack_now();
        }
        polled
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
