//! Response bodies without copies: a batch of shared `Bytes` goes to hyper as one
//! buffer whose pieces are written with a single `writev`.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::Stream;
use http_body::{Body, Frame, SizeHint};

/// Several `Bytes` presented to hyper as one `Buf`.
#[derive(Debug, Default)]
pub struct Chunks {
    parts: VecDeque<Bytes>,
    remaining: usize,
}

impl Chunks {
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.remaining += b.len();
            self.parts.push_back(b);
        }
    }
}

impl From<Bytes> for Chunks {
    fn from(b: Bytes) -> Self {
        let mut c = Chunks::default();
        c.push(b);
        c
    }
}

impl Buf for Chunks {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.parts.front().map_or(&[], |b| &b[..])
    }

    fn advance(&mut self, mut cnt: usize) {
        self.remaining -= cnt.min(self.remaining);
        while cnt > 0 {
            let Some(front) = self.parts.front_mut() else {
                return;
            };
            if cnt >= front.len() {
                cnt -= front.len();
                self.parts.pop_front();
            } else {
                front.advance(cnt);
                cnt = 0;
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, part) in dst.iter_mut().zip(self.parts.iter()) {
            *slot = IoSlice::new(part);
            n += 1;
        }
        n
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Chunks> + Send>>;

/// Either a complete body or an endless live stream of batches.
pub enum ResponseBody {
    Full(Option<Bytes>),
    Live(ChunkStream),
}

impl ResponseBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        ResponseBody::Full(Some(b.into()))
    }

    pub fn empty() -> Self {
        ResponseBody::Full(None)
    }

    /// A complete body's bytes (nothing for a live one).
    pub fn into_bytes(self) -> Bytes {
        match self {
            ResponseBody::Full(b) => b.unwrap_or_default(),
            ResponseBody::Live(_) => Bytes::new(),
        }
    }
}

impl Body for ResponseBody {
    type Data = Chunks;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Chunks>, Self::Error>>> {
        match self.get_mut() {
            ResponseBody::Full(b) => {
                Poll::Ready(b.take().map(|b| Ok(Frame::data(Chunks::from(b)))))
            }
            ResponseBody::Live(s) => s
                .as_mut()
                .poll_next(cx)
                .map(|o| o.map(|c| Ok(Frame::data(c)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ResponseBody::Full(None) => SizeHint::with_exact(0),
            ResponseBody::Live(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_advance_across_parts() {
        let mut c = Chunks::default();
        c.push(Bytes::from_static(b"abc"));
        c.push(Bytes::new());
        c.push(Bytes::from_static(b"defg"));
        assert_eq!(c.remaining(), 7);
        c.advance(4);
        assert_eq!(c.chunk(), b"efg");
        let mut io = [IoSlice::new(&[]); 4];
        assert_eq!(c.chunks_vectored(&mut io), 1);
        c.advance(3);
        assert_eq!(c.remaining(), 0);
        assert_eq!(c.chunk(), b"");
    }
}
