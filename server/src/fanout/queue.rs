//! The bytes one fan-out viewer is owed, in order, and how far its socket has taken
//! them: a sans-IO write schedule. The loop asks it for the slices of one vectored
//! write, tells it how many bytes the socket took, and hands what is left back to the
//! connection when the viewer leaves the loop. It never touches a socket or a clock.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

/// Most buffers handed to one vectored write.
pub const MAX_SLICES: usize = 64;

/// Buffers an emptied queue keeps room for. A viewer's join (the cached GOP) queues
/// dozens at once and the queue's room would stay that large for as long as it plays;
/// live, a viewer is owed a few at a time, so this seldom reallocates.
const KEPT_PARTS: usize = 8;

/// Whole buffers, front first, and how much of the front one is already written.
#[derive(Debug, Default)]
pub struct OutQueue {
    parts: VecDeque<Bytes>,
    /// Bytes of `parts[0]` already written.
    offset: usize,
    /// Bytes not yet written, over all parts.
    left: usize,
}

impl OutQueue {
    /// Appends a buffer (an empty one adds nothing).
    pub fn push(&mut self, part: Bytes) {
        if part.is_empty() {
            return;
        }
        self.left += part.len();
        self.parts.push_back(part);
    }

    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// Bytes not yet written.
    pub fn len(&self) -> usize {
        self.left
    }

    /// A write is under way: some of the front buffer went out, not all of it. Only at a
    /// buffer boundary may anything be put before what is queued.
    pub fn mid_buffer(&self) -> bool {
        self.offset > 0
    }

    /// Fills `out` with the unwritten bytes, front first; returns how many slices it used.
    pub fn slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (i, part) in self.parts.iter().enumerate() {
            if n == out.len() {
                break;
            }
            let from = if i == 0 { self.offset } else { 0 };
            out[n] = IoSlice::new(&part[from..]);
            n += 1;
        }
        n
    }

    /// The socket took `written` bytes from the front.
    pub fn advance(&mut self, mut written: usize) {
        debug_assert!(written <= self.left, "advanced past the queued bytes");
        written = written.min(self.left);
        self.left -= written;
        while written > 0 {
            let Some(front) = self.parts.front() else {
                break;
            };
            let avail = front.len() - self.offset;
            if written < avail {
                self.offset += written;
                return;
            }
            written -= avail;
            self.parts.pop_front();
            self.offset = 0;
        }
        if self.parts.is_empty() && self.parts.capacity() > 2 * KEPT_PARTS {
            self.parts.shrink_to(KEPT_PARTS);
        }
    }

    /// Everything not yet written, the front buffer cut where the socket stopped; the
    /// queue is empty afterwards.
    pub fn take(&mut self) -> Vec<Bytes> {
        let offset = std::mem::take(&mut self.offset);
        self.left = 0;
        let mut out: Vec<Bytes> = self.parts.drain(..).collect();
        if let Some(front) = out.first_mut() {
            *front = front.slice(offset..);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(q: &OutQueue) -> Vec<u8> {
        let mut slots = [IoSlice::new(&[]); MAX_SLICES];
        let n = q.slices(&mut slots);
        slots[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    fn queue(parts: &[&'static [u8]]) -> OutQueue {
        let mut q = OutQueue::default();
        for p in parts {
            q.push(Bytes::from_static(p));
        }
        q
    }

    #[test]
    fn a_whole_write_empties_the_queue() {
        let mut q = queue(&[b"abc", b"", b"de"]);
        assert_eq!(q.len(), 5);
        assert_eq!(written(&q), b"abcde");
        q.advance(5);
        assert!(q.is_empty());
        assert!(!q.mid_buffer());
        assert!(q.take().is_empty());
    }

    #[test]
    fn an_emptied_queue_lets_a_burst_s_room_go() {
        let mut q = OutQueue::default();
        for _ in 0..100 {
            q.push(Bytes::from_static(b"frame"));
        }
        assert!(q.parts.capacity() >= 100);
        q.advance(5 * 60);
        assert!(
            q.parts.capacity() >= 100,
            "room is kept while buffers are owed"
        );
        q.advance(5 * 40);
        assert!(q.is_empty());
        assert!(
            q.parts.capacity() <= 2 * KEPT_PARTS,
            "{}",
            q.parts.capacity()
        );
    }

    #[test]
    fn a_short_write_resumes_inside_a_buffer() {
        let mut q = queue(&[b"abc", b"defg", b"h"]);
        q.advance(4);
        assert!(q.mid_buffer());
        assert_eq!(q.len(), 4);
        assert_eq!(written(&q), b"efgh");
        q.advance(3);
        assert!(!q.mid_buffer(), "the cut fell on a boundary");
        assert_eq!(written(&q), b"h");
        q.push(Bytes::from_static(b"ij"));
        assert_eq!(written(&q), b"hij");
    }

    #[test]
    fn what_is_handed_back_starts_where_the_socket_stopped() {
        let mut q = queue(&[b"abc", b"def"]);
        q.advance(2);
        let back: Vec<u8> = q.take().iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(back, b"cdef");
        assert!(q.is_empty());
        assert!(!q.mid_buffer());
    }

    #[test]
    fn one_write_takes_at_most_max_slices_buffers() {
        let mut q = OutQueue::default();
        for _ in 0..MAX_SLICES + 5 {
            q.push(Bytes::from_static(b"x"));
        }
        let mut slots = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(q.slices(&mut slots), MAX_SLICES);
        q.advance(MAX_SLICES);
        let mut slots = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(q.slices(&mut slots), 5);
    }
}
