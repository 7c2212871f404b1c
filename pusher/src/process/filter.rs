//! The custom-filter hook: anything that changes raw pictures between capture and encoding
//! implements `VideoFilter`; the pipeline runs the built-in ones (`--beauty`, `--lut`) and
//! then those a program embedding the pusher adds (`pipeline::run_with_filters`), after
//! the co-hosting composition and before the watermark and text, on the process thread.
//! A filter must not block: it holds up every frame after it.

use crate::media::I420;
use crate::process::beauty::Beauty;
use crate::process::lut::Lut3d;

pub trait VideoFilter: Send {
    /// Changes the picture in place. `wallclock_us` is the frame's capture time.
    fn apply(&mut self, picture: &mut I420, wallclock_us: u64);
}

impl VideoFilter for Beauty {
    fn apply(&mut self, picture: &mut I420, _wallclock_us: u64) {
        Beauty::apply(self, picture);
    }
}

impl VideoFilter for Lut3d {
    fn apply(&mut self, picture: &mut I420, _wallclock_us: u64) {
        Lut3d::apply(self, picture);
    }
}

/// Any closure over the picture is a filter too.
impl<F: FnMut(&mut I420, u64) + Send> VideoFilter for F {
    fn apply(&mut self, picture: &mut I420, wallclock_us: u64) {
        self(picture, wallclock_us)
    }
}
