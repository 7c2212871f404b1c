//! Socket helpers of the RTMP driver, generic over the transport: reads with an idle
//! limit, and vectored writes that give up on a peer that accepts nothing for a while.
//! They only move bytes; no protocol decision is made here.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::error::ConnError;

/// Reads what is there; with `idle`, a peer silent for that long is an error.
pub async fn read_some<T: AsyncRead + Unpin>(
    io: &mut T,
    buf: &mut [u8],
    idle: Option<Duration>,
) -> Result<usize, ConnError> {
    match idle {
        Some(limit) => tokio::time::timeout(limit, io.read(buf))
            .await
            .map_err(|_| ConnError::Idle(limit))?
            .map_err(ConnError::from),
        None => Ok(io.read(buf).await?),
    }
}

/// Most buffers handed to one `writev`.
const MAX_SLICES: usize = 64;

/// Writes every buffer with as few `writev` calls as the transport allows; a peer that
/// accepts nothing for `limit` is cut off. A write the socket takes at once (the common
/// case for a viewer that keeps up) arms no timer: the timeout is built only when the
/// first attempt would wait, which spares a clock read and the runtime's shared handle
/// per write on the fan-out path.
pub async fn write_all_vectored<T: AsyncWrite + Unpin>(
    io: &mut T,
    parts: &[Bytes],
    limit: Duration,
) -> Result<(), ConnError> {
    let mut idx = 0;
    let mut offset = 0;
    while idx < parts.len() {
        let (from, at) = (idx, offset);
        // The slice list is built in each poll rather than kept in this future: held
        // across the await, its 1 KB would sit in the task of every connection that
        // awaits a write here, for as long as the connection lives.
        let write = std::future::poll_fn(|cx| {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slot, part) in slices.iter_mut().zip(
                std::iter::once(&parts[from][at..]).chain(parts[from + 1..].iter().map(|p| &p[..])),
            ) {
                *slot = IoSlice::new(part);
                count += 1;
            }
            Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count])
        });
        let n = at_once_or_within(write, limit).await??;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
        }
        let mut left = n;
        while left > 0 && idx < parts.len() {
            let avail = parts[idx].len() - offset;
            if left >= avail {
                left -= avail;
                idx += 1;
                offset = 0;
            } else {
                offset += left;
                left = 0;
            }
        }
        while idx < parts.len() && parts[idx].len() == offset {
            idx += 1;
            offset = 0;
        }
    }
    // A TLS stream may hold the last record back until flushed (a no-op on TCP).
    at_once_or_within(io.flush(), limit).await??;
    Ok(())
}

/// `fut`'s output if it is ready on the first poll, else within `limit`.
async fn at_once_or_within<F: std::future::Future>(
    fut: F,
    limit: Duration,
) -> Result<F::Output, ConnError> {
    let mut fut = std::pin::pin!(fut);
    if let Some(out) = futures_util::FutureExt::now_or_never(fut.as_mut()) {
        return Ok(out);
    }
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| ConnError::WriteTimeout(limit))
}

/// A TCP socket the driver shares with a fan-out loop (`crate::fanout`): the driver reads
/// it, and writes it only while the loop does not hold its viewer. Reads and writes go
/// through the socket's readiness, so both sides can hold it by `&`.
pub struct SharedTcp(pub Arc<TcpStream>);

fn retry(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
    )
}

impl AsyncRead for SharedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if retry(&e) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if retry(&e) => {}
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write_vectored(bufs) {
                Err(e) if retry(&e) => {}
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let sock = socket2::SockRef::from(&*self.0);
        Poll::Ready(sock.shutdown(std::net::Shutdown::Write))
    }
}
