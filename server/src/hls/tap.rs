//! The HLS muxers of one stream, run inside the publisher's push as a stream tap: frames
//! go into the MPEG-TS segmenter and the fMP4 (CMAF) one as they are published, and only a
//! closed TS segment (every couple of seconds) goes to the stream's HLS task, which
//! publishes it and mirrors it to disk.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::mpsc;

use super::cmaf::CmafStream;
use super::segmenter::{Segment, Segmenter};
use crate::hub::{Admission, Event, Tap, Unit};

/// Closed segments waiting for the HLS task (it writes them to the mirror folder, which may
/// be slow): a full backlog drops the newest, so the publisher never waits.
pub(super) const SEGMENT_BACKLOG: usize = 8;

pub(super) struct HlsTap {
    cmaf: Option<Arc<CmafStream>>,
    inner: Mutex<Inner>,
}

struct Inner {
    admission: Admission,
    ts: Option<Segmenter>,
    /// `None` once the stream ended or the task stopped: nothing more is muxed.
    closed: Option<mpsc::Sender<Segment>>,
    /// Segments lost to a full backlog.
    dropped: u64,
}

impl HlsTap {
    /// A tap feeding `ts` (closed segments to `closed`) and `cmaf`, either optional.
    pub(super) fn new(
        ts: Option<Segmenter>,
        cmaf: Option<Arc<CmafStream>>,
        closed: mpsc::Sender<Segment>,
    ) -> Self {
        Self {
            cmaf,
            inner: Mutex::new(Inner {
                admission: Admission::new(false),
                ts,
                closed: Some(closed),
                dropped: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops muxing (server shutdown): returns the open TS segment, closed.
    pub(super) fn stop(&self) -> Option<Segment> {
        let mut inner = self.lock();
        inner.closed = None;
        inner.ts.as_mut().and_then(Segmenter::finish)
    }
}

impl Inner {
    fn hand_over(&mut self, segment: Option<Segment>) {
        let (Some(s), Some(tx)) = (segment, &self.closed) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(s)) = tx.try_send(s) {
            self.dropped += 1;
            tracing::warn!(
                seq = s.seq,
                dropped = self.dropped,
                "hls: segment backlog full (slow mirror folder?); segment dropped"
            );
        }
    }
}

impl Tap for HlsTap {
    fn on_event(&self, event: &Event, served_video: bool) {
        let mut inner = self.lock();
        if inner.closed.is_none() {
            return;
        }
        let closed = match event {
            Event::Frame(f) => {
                if !inner.admission.admits(f) {
                    return;
                }
                match &f.unit {
                    Unit::Frame { frame, .. } => {
                        let now = SystemTime::now();
                        if let Some(cs) = &self.cmaf {
                            cs.on_frame(frame, || served_video, now);
                        }
                        inner.ts.as_mut().and_then(|ts| ts.push(frame, now))
                    }
                    Unit::Config(c) => {
                        if let Some(cs) = &self.cmaf {
                            cs.on_config(c);
                        }
                        inner.ts.as_mut().and_then(|ts| ts.push_config(c))
                    }
                }
            }
            Event::PublisherLeft => {
                if let Some(cs) = &self.cmaf {
                    cs.finish();
                }
                inner.ts.as_mut().and_then(Segmenter::finish)
            }
            Event::PublisherReturned => {
                inner.admission.restart();
                inner.ts.as_mut().and_then(Segmenter::discontinuity)
            }
            Event::Ended => {
                let last = inner.ts.as_mut().and_then(Segmenter::finish);
                inner.hand_over(last);
                // Dropping the sender tells the task the stream is over.
                inner.closed = None;
                return;
            }
        };
        inner.hand_over(closed);
    }
}
