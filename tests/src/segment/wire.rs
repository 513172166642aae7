//! How the fake's answers go out on the wire when it plays a plain HTTP/1.1 server: the head
//! and the body in two writes, as servers that write the status line and headers first and
//! the body after do. With Nagle's algorithm on, the body then waits until the client ACKs
//! the head, and a client that delays its ACK (Linux: up to 40 ms) stalls every answer on a
//! kept-alive connection (a fresh connection ACKs at once for its first segments).

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream whose writes stop after the end of an HTTP head (`\r\n\r\n`) when `split` is on.
#[derive(Debug)]
pub struct SplitHead<S> {
    inner: S,
    split: bool,
}

impl<S> SplitHead<S> {
    pub fn new(inner: S, split: bool) -> SplitHead<S> {
        SplitHead { inner, split }
    }
}

/// How much of `buf` to write now: up to the end of a head that more bytes follow.
fn head_len(buf: &[u8]) -> usize {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .filter(|&end| end < buf.len())
        .unwrap_or(buf.len())
}

impl<S: AsyncRead + Unpin> AsyncRead for SplitHead<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SplitHead<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = if self.split { head_len(buf) } else { buf.len() };
        Pin::new(&mut self.inner).poll_write(cx, &buf[..n])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.split {
            // Vectored writes would send head and body together: one buffer at a time.
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return self.poll_write(cx, first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        !self.split && self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::head_len;

    #[test]
    fn a_write_stops_after_a_head_with_more_behind_it() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(head_len(answer), answer.len() - 2);
        assert_eq!(head_len(&answer[answer.len() - 2..]), 2, "the body alone");
        let head_only = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(head_len(head_only), head_only.len());
    }
}
