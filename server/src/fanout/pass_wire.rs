//! One pass's bytes, joined once for every viewer that is in step. In a pass, nearly every
//! viewer of a loop is owed the same frames (those broadcast since the last pass): for
//! them the frames' shared bytes are joined into one buffer per wire format, once per
//! pass, so each viewer costs one plain `send` of one buffer instead of building its own
//! list of slices for a `sendmsg` (which the kernel must then copy in and walk). A viewer
//! owed other frames (a newcomer with its GOP, one that lagged) gets `None` and writes
//! its own batch. Sans-IO: frames in, bytes out.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::hub::SharedFrame;

/// Wire formats a pass may join bytes for (see `Format::slot`).
pub const FORMATS: usize = 2;

#[derive(Debug, Default)]
pub struct PassWire {
    /// The frames of the pass (those broadcast since the last one).
    frames: Vec<Arc<SharedFrame>>,
    /// Their bytes, per wire format, built on first use.
    joined: [Option<Bytes>; FORMATS],
}

impl PassWire {
    /// A new pass, of `frames`.
    pub fn start(&mut self, frames: &[Arc<SharedFrame>]) {
        self.clear();
        self.frames.extend(frames.iter().cloned());
    }

    /// Forgets the last pass.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.joined = Default::default();
    }

    /// The pass's frames in the format of `slot`, as one buffer. `wire` gives one
    /// frame's bytes in that format; it is called once per frame per pass and format, not
    /// per viewer.
    pub fn joined(&mut self, slot: usize, wire: impl Fn(&SharedFrame) -> &Bytes) -> &Bytes {
        let frames = &self.frames;
        self.joined[slot % FORMATS].get_or_insert_with(|| join(frames, wire))
    }

    /// The same as `joined`, for a viewer owed `batch`: `None` unless `batch` is the
    /// pass's frames.
    pub fn get<'a>(
        &'a mut self,
        batch: &[Arc<SharedFrame>],
        slot: usize,
        wire: impl Fn(&SharedFrame) -> &Bytes,
    ) -> Option<&'a Bytes> {
        if batch.is_empty() || slot >= FORMATS || !same_frames(&self.frames, batch) {
            return None;
        }
        Some(self.joined(slot, wire))
    }
}

fn same_frames(a: &[Arc<SharedFrame>], b: &[Arc<SharedFrame>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
}

/// The frames' bytes end to end; one frame's are shared as they are, not copied.
fn join(frames: &[Arc<SharedFrame>], wire: impl Fn(&SharedFrame) -> &Bytes) -> Bytes {
    let mut parts = frames.iter().map(|f| wire(f)).filter(|b| !b.is_empty());
    let Some(first) = parts.next() else {
        return Bytes::new();
    };
    let Some(second) = parts.next() else {
        return first.clone();
    };
    let total: usize = frames.iter().map(|f| wire(f).len()).sum();
    let mut out = BytesMut::with_capacity(total);
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    for p in parts {
        out.extend_from_slice(p);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_shared::Frame;

    fn frame(data: &'static [u8]) -> Arc<SharedFrame> {
        Arc::new(SharedFrame::frame(
            Frame::data(0, Bytes::from_static(data)),
            None,
        ))
    }

    /// Stands in for a wire format: the frame's payload as it is.
    fn raw(f: &SharedFrame) -> &Bytes {
        &f.as_frame().expect("a frame").data
    }

    #[test]
    fn viewers_owed_the_pass_frames_share_one_joined_buffer() {
        let (a, b) = (frame(b"ab"), frame(b"cde"));
        let mut pw = PassWire::default();
        pw.start(&[a.clone(), b.clone()]);
        let first = pw.joined(0, raw).clone();
        assert_eq!(&first[..], b"abcde");
        let again = pw.get(&[a.clone(), b.clone()], 0, raw).cloned().unwrap();
        assert_eq!(
            first.as_ptr(),
            again.as_ptr(),
            "joined once, not per viewer"
        );
    }

    #[test]
    fn a_viewer_owed_other_frames_writes_its_own() {
        let (a, b) = (frame(b"ab"), frame(b"cde"));
        let mut pw = PassWire::default();
        pw.start(&[a.clone(), b.clone()]);
        assert!(
            pw.get(std::slice::from_ref(&b), 0, raw).is_none(),
            "fewer frames"
        );
        assert!(
            pw.get(&[b.clone(), a.clone()], 0, raw).is_none(),
            "other order"
        );
        let (c, d) = (frame(b"ab"), frame(b"cde"));
        assert!(
            pw.get(&[c, d], 0, raw).is_none(),
            "equal bytes, other frames"
        );
        pw.clear();
        assert!(
            pw.get(std::slice::from_ref(&b), 0, raw).is_none(),
            "no pass"
        );
        pw.start(std::slice::from_ref(&b));
        assert_eq!(
            &pw.get(std::slice::from_ref(&b), 0, raw).unwrap()[..],
            b"cde"
        );
    }

    #[test]
    fn one_frame_is_shared_not_copied_and_empty_parts_are_skipped() {
        let (a, empty) = (frame(b"xyz"), frame(b""));
        let mut pw = PassWire::default();
        let batch = [empty.clone(), a.clone(), empty];
        pw.start(&batch);
        let one = pw.get(&batch, 0, raw).unwrap();
        assert_eq!(one.as_ptr(), raw(&a).as_ptr());
        assert!(pw.get(&[], 0, raw).is_none());
        assert!(pw.get(&batch, FORMATS, raw).is_none(), "no such format");
    }

    #[test]
    fn each_format_is_joined_on_its_own() {
        let (a, b) = (frame(b"ab"), frame(b"cd"));
        let batch = [a, b];
        let mut pw = PassWire::default();
        pw.start(&batch);
        assert_eq!(&pw.get(&batch, 0, raw).unwrap()[..], b"abcd");
        static DASH: Bytes = Bytes::from_static(b"-");
        assert_eq!(&pw.joined(1, |_| &DASH)[..], b"--");
        assert_eq!(
            &pw.get(&batch, 0, raw).unwrap()[..],
            b"abcd",
            "kept per format"
        );
    }
}
