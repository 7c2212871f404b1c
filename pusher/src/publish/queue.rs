//! The bounded send queue between the muxer and the network, with its drop policy. Pure:
//! no clock, no socket; the RTMP sender pops from it and the muxer pushes into it.
//!
//! Bound: the queued frames may span at most `max_ms` of media and `max_bytes` of payload.
//! The span is how far the receiver is behind live; the bytes are what stands between.
//! 1. Past half of either bound, disposable video frames (`nal_ref_idc == 0`: nothing
//!    refers to them, e.g. B-frames) are dropped, queued ones and new ones: less to send,
//!    so the sender may catch up without losing a picture anything depends on.
//! 2. Past a bound, the oldest whole GOP goes: every frame (audio too) before the second
//!    video keyframe in the queue, so the queue starts again at a keyframe.
//! 3. With no later keyframe queued, everything goes, and inter frames are refused until
//!    the next keyframe arrives (they would refer to pictures the server never got).
//!
//! Audio-only streams drop their oldest frames. Sequence headers and metadata are never
//! dropped: they are kept as state and sent first on every (re)connect, and when they change.

use std::collections::VecDeque;

use onair_shared::flv::TagFrame;
use onair_shared::MediaKind;

use crate::mux::flv::is_disposable;

#[derive(Debug)]
pub struct SendQueue {
    frames: VecDeque<TagFrame>,
    bytes: usize,
    max_bytes: usize,
    max_ms: u64,
    need_keyframe: bool,
    /// Sequence headers to send before the next frame (set when they arrive or change).
    headers_pending: bool,
    avc_header: Option<TagFrame>,
    aac_header: Option<TagFrame>,
    finished: bool,
    pub dropped_frames: u64,
    pub dropped_bytes: u64,
}

impl SendQueue {
    pub fn new(max_ms: u64, max_bytes: usize) -> Self {
        Self {
            frames: VecDeque::new(),
            bytes: 0,
            max_bytes,
            max_ms,
            need_keyframe: false,
            headers_pending: false,
            avc_header: None,
            aac_header: None,
            finished: false,
            dropped_frames: 0,
            dropped_bytes: 0,
        }
    }

    pub fn push(&mut self, f: TagFrame) {
        if f.sequence_header {
            let slot = match f.kind {
                MediaKind::Video => &mut self.avc_header,
                _ => &mut self.aac_header,
            };
            if slot.as_ref().map(|h| &h.payload) != Some(&f.payload) {
                *slot = Some(f);
                self.headers_pending = true;
            }
            return;
        }
        if f.kind == MediaKind::Video {
            if f.keyframe {
                self.need_keyframe = false;
            } else if self.need_keyframe {
                self.count_drop(&f);
                return;
            }
        }
        self.bytes += f.payload.len();
        self.frames.push_back(f);
        self.enforce();
    }

    fn count_drop(&mut self, f: &TagFrame) {
        self.dropped_frames += 1;
        self.dropped_bytes += f.payload.len() as u64;
    }

    fn remove(&mut self, i: usize) {
        if let Some(f) = self.frames.remove(i) {
            self.bytes -= f.payload.len();
            self.count_drop(&f);
        }
    }

    /// Media time spanned by the queued frames, in ms.
    pub fn span_ms(&self) -> u64 {
        match (self.frames.front(), self.frames.back()) {
            (Some(a), Some(b)) => b.dts.saturating_sub(a.dts),
            _ => 0,
        }
    }

    fn over(&self, fraction: u64) -> bool {
        !self.frames.is_empty()
            && (self.span_ms() * fraction > self.max_ms
                || self.bytes as u64 * fraction > self.max_bytes as u64)
    }

    fn enforce(&mut self) {
        if self.over(2) {
            let mut i = 0;
            while i < self.frames.len() {
                if is_disposable(&self.frames[i]) {
                    self.remove(i);
                } else {
                    i += 1;
                }
            }
        }
        // Each round removes at least one frame, so this ends.
        while self.over(1) {
            let has_video = self.frames.iter().any(|f| f.kind == MediaKind::Video);
            if !has_video {
                self.remove(0);
                continue;
            }
            let next_key = self
                .frames
                .iter()
                .enumerate()
                .skip(1)
                .find(|(_, f)| f.kind == MediaKind::Video && f.keyframe)
                .map(|(i, _)| i);
            match next_key {
                Some(k) => {
                    for _ in 0..k {
                        self.remove(0);
                    }
                }
                None => {
                    while !self.frames.is_empty() {
                        self.remove(0);
                    }
                    self.need_keyframe = true;
                }
            }
        }
    }

    /// The sequence headers, if they must be sent before the next frame.
    pub fn take_headers(&mut self) -> Vec<TagFrame> {
        if !self.headers_pending {
            return Vec::new();
        }
        self.headers_pending = false;
        self.avc_header
            .iter()
            .chain(self.aac_header.iter())
            .cloned()
            .collect()
    }

    pub fn pop(&mut self) -> Option<TagFrame> {
        let f = self.frames.pop_front()?;
        self.bytes -= f.payload.len();
        Some(f)
    }

    /// After a (re)connect: headers go first, and video resumes at a keyframe (queued
    /// frames before the first queued keyframe are dropped).
    pub fn restart(&mut self) {
        self.headers_pending = self.avc_header.is_some() || self.aac_header.is_some();
        let has_video_header = self.avc_header.is_some();
        if !has_video_header {
            return;
        }
        match self
            .frames
            .iter()
            .position(|f| f.kind == MediaKind::Video && f.keyframe)
        {
            Some(k) => {
                for _ in 0..k {
                    self.remove(0);
                }
            }
            None => {
                while !self.frames.is_empty() {
                    self.remove(0);
                }
                self.need_keyframe = true;
            }
        }
    }

    /// No more frames will be pushed.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::flv;

    fn key(dts: u64) -> TagFrame {
        flv::video(dts, flv::avc_frame(true, 0, [&[0x65u8; 100][..]])).unwrap()
    }
    fn p(dts: u64) -> TagFrame {
        flv::video(dts, flv::avc_frame(false, 0, [&[0x41u8; 100][..]])).unwrap()
    }
    fn b(dts: u64) -> TagFrame {
        flv::video(dts, flv::avc_frame(false, 0, [&[0x01u8; 100][..]])).unwrap()
    }
    fn a(dts: u64) -> TagFrame {
        flv::audio(dts, flv::aac_frame(&[0x21; 10])).unwrap()
    }
    fn dts(q: &mut SendQueue) -> Vec<(bool, u64)> {
        std::iter::from_fn(|| q.pop())
            .map(|f| (f.kind == MediaKind::Video, f.dts))
            .collect()
    }

    #[test]
    fn under_the_bound_nothing_is_dropped() {
        let mut q = SendQueue::new(1000, 1 << 20);
        for t in 0..10 {
            q.push(if t == 0 { key(t * 40) } else { p(t * 40) });
            q.push(a(t * 40));
        }
        assert_eq!(q.dropped_frames, 0);
        assert_eq!(q.len(), 20);
        assert_eq!(q.bytes(), 10 * 109 + 10 * 12);
    }

    #[test]
    fn disposable_frames_go_first() {
        let mut q = SendQueue::new(400, 1 << 20);
        q.push(key(0));
        for t in 1..=8 {
            q.push(if t % 2 == 0 { p(t * 40) } else { b(t * 40) });
        }
        // Span 320 ms > 200 (half the bound): every B-frame went, the references stayed.
        let left = dts(&mut q);
        assert_eq!(
            left,
            vec![(true, 0), (true, 80), (true, 160), (true, 240), (true, 320)]
        );
        assert_eq!(q.dropped_frames, 4);
        // Under half the bound a B-frame stays.
        let mut q = SendQueue::new(400, 1 << 20);
        q.push(key(0));
        q.push(b(40));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn then_whole_gops_and_the_queue_restarts_at_a_keyframe() {
        let mut q = SendQueue::new(500, 1 << 20);
        // GOPs of 5 frames (40 ms apart), audio alongside, no disposable frames.
        for i in 0..20u64 {
            let t = i * 40;
            q.push(if i % 5 == 0 { key(t) } else { p(t) });
            q.push(a(t + 1));
        }
        assert!(q.dropped_frames > 0);
        assert!(q.span_ms() <= 500);
        let first = q.pop().unwrap();
        assert!(
            first.keyframe,
            "queue must start at a keyframe, got dts {}",
            first.dts
        );
    }

    #[test]
    fn with_no_later_keyframe_everything_goes_until_the_next_one() {
        let mut q = SendQueue::new(100, 1 << 20);
        q.push(key(0));
        for i in 1..5 {
            q.push(p(i * 40));
        }
        assert!(q.is_empty(), "all dropped: {:?}", q.len());
        q.push(p(200)); // refused: refers to dropped pictures
        assert!(q.is_empty());
        q.push(key(240));
        q.push(p(280));
        assert_eq!(dts(&mut q), vec![(true, 240), (true, 280)]);
        assert_eq!(q.dropped_frames, 6);
    }

    #[test]
    fn bytes_bound_holds_and_memory_stays_flat() {
        let mut q = SendQueue::new(60_000, 5_000);
        for i in 0..10_000u64 {
            q.push(if i % 30 == 0 { key(i * 33) } else { p(i * 33) });
            assert!(q.bytes() <= 5_000);
        }
        assert!(q.dropped_frames > 9_000);
    }

    #[test]
    fn headers_are_state_sent_on_restart() {
        let mut q = SendQueue::new(1000, 1 << 20);
        let h = flv::video(
            0,
            flv::avc_sequence_header(
                &onair_shared::avc::AvcDecoderConfig::from_parameter_sets(
                    &[0x67, 0x42, 0, 0x1e],
                    &[0x68],
                )
                .unwrap(),
            ),
        )
        .unwrap();
        q.push(h.clone());
        q.push(flv::audio(0, flv::aac_sequence_header(&[0x12, 0x10])).unwrap());
        assert_eq!(q.take_headers().len(), 2);
        assert!(q.take_headers().is_empty());
        q.push(h); // the same again: not pending
        assert!(q.take_headers().is_empty());
        q.push(p(0));
        q.push(key(40));
        q.push(p(80));
        q.restart();
        assert_eq!(q.take_headers().len(), 2);
        assert_eq!(q.pop().map(|f| f.dts), Some(40));
        assert_eq!(q.dropped_frames, 1);
    }

    #[test]
    fn audio_only_drops_oldest() {
        let mut q = SendQueue::new(100, 1 << 20);
        for i in 0..50 {
            q.push(a(i * 21));
        }
        assert!(q.span_ms() <= 100);
        assert!(q.dropped_frames > 40);
    }
}
