//! Camera capture with nokhwa (V4L2 on Linux), behind the `capture` feature. The device is
//! opened and read on a thread of its own (nokhwa's camera is not `Send`); frames reach the
//! pipeline through a two-slot channel that keeps only the newest (a late consumer loses
//! old frames, never delays new ones). YUYV, NV12, MJPEG, RGB and grey frames are converted
//! to I420 by `process::convert`, which is unit-tested without a device.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
};
use nokhwa::Camera as NokhwaCamera;

use super::raw::RawVideo;
use crate::media::I420;
use crate::process::convert::{
    mjpeg_to_i420, nv12_to_i420, packed_rgb_to_i420, yuyv_to_i420, PackedRgb,
};
use crate::PushError;

/// A camera that has not delivered a frame for this long is considered gone.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Camera {
    rx: Receiver<Result<I420, PushError>>,
    size: (usize, usize),
    stop: Arc<AtomicBool>,
}

/// One captured buffer to I420, by its pixel format.
pub fn to_i420(format: FrameFormat, data: &[u8], width: usize, height: usize) -> Option<I420> {
    match format {
        FrameFormat::YUYV => yuyv_to_i420(data, width, height, width * 2),
        FrameFormat::NV12 => nv12_to_i420(data, width, height, width),
        FrameFormat::MJPEG => mjpeg_to_i420(data),
        FrameFormat::RAWRGB => packed_rgb_to_i420(data, width, height, width * 3, PackedRgb::Rgb24),
        FrameFormat::RAWBGR => {
            let rgb: Vec<u8> = data
                .chunks_exact(3)
                .flat_map(|p| [p[2], p[1], p[0]])
                .collect();
            packed_rgb_to_i420(&rgb, width, height, width * 3, PackedRgb::Rgb24)
        }
        FrameFormat::GRAY => {
            let mut pic = I420::black(width, height);
            let (w, h) = (pic.width, pic.height);
            if data.len() < width * height {
                return None;
            }
            let (yp, _, _) = pic.planes_mut();
            for y in 0..h {
                yp[y * w..(y + 1) * w].copy_from_slice(&data[y * width..y * width + w]);
            }
            Some(pic)
        }
    }
}

impl Camera {
    pub fn open(index: u32, width: usize, height: usize, fps: f64) -> Result<Self, PushError> {
        let (tx, rx) = bounded(2);
        let own_rx = rx.clone();
        let (ready_tx, ready_rx) = bounded(1);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        std::thread::Builder::new()
            .name("push-camera".into())
            .spawn(move || {
                let want = CameraFormat::new(
                    Resolution::new(width as u32, height as u32),
                    FrameFormat::YUYV,
                    fps.round() as u32,
                );
                let req = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(want));
                let mut cam =
                    match NokhwaCamera::new(CameraIndex::Index(index), req).and_then(|mut c| {
                        c.open_stream()?;
                        Ok(c)
                    }) {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx
                                .send(Err(PushError::Device(format!("camera {index}: {e}"))));
                            return;
                        }
                    };
                let res = cam.resolution();
                let _ = ready_tx.send(Ok((res.width() as usize, res.height() as usize)));
                while !thread_stop.load(Relaxed) {
                    let item = match cam.frame() {
                        Ok(buf) => {
                            let r = buf.resolution();
                            to_i420(
                                buf.source_frame_format(),
                                buf.buffer(),
                                r.width() as usize,
                                r.height() as usize,
                            )
                            .ok_or_else(|| {
                                PushError::Device(format!(
                                    "camera {index}: bad {} frame",
                                    buf.source_frame_format()
                                ))
                            })
                        }
                        Err(e) => Err(PushError::Device(format!("camera {index}: {e}"))),
                    };
                    let failed = item.is_err();
                    // Keep only the newest frame: a late consumer loses the oldest queued one.
                    if let Err(crossbeam_channel::TrySendError::Full(item)) = tx.try_send(item) {
                        let _ = own_rx.try_recv();
                        let _ = tx.try_send(item);
                    }
                    if failed {
                        break;
                    }
                }
                let _ = cam.stop_stream();
            })
            .map_err(|e| PushError::Device(format!("camera thread: {e}")))?;
        let size = ready_rx
            .recv_timeout(FRAME_TIMEOUT)
            .map_err(|_| PushError::Device(format!("camera {index} did not open")))??;
        tracing::info!(index, width = size.0, height = size.1, "camera open");
        Ok(Self { rx, size, stop })
    }

    pub fn size(&self) -> (usize, usize) {
        self.size
    }
}

impl RawVideo for Camera {
    fn self_paced(&self) -> bool {
        true
    }

    fn next(&mut self, _index: u64, _wall: u64) -> Result<Option<I420>, PushError> {
        match self.rx.recv_timeout(FRAME_TIMEOUT) {
            Ok(r) => r.map(Some),
            Err(RecvTimeoutError::Timeout) => Err(PushError::Device(format!(
                "no camera frame for {FRAME_TIMEOUT:?}"
            ))),
            Err(RecvTimeoutError::Disconnected) => Ok(None),
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_camera_format_converts() {
        let (w, h) = (4, 2);
        assert!(to_i420(FrameFormat::YUYV, &[128; 16], w, h).is_some());
        assert!(to_i420(FrameFormat::NV12, &[128; 12], w, h).is_some());
        assert!(to_i420(FrameFormat::RAWRGB, &[0; 24], w, h).is_some());
        let bgr_blue = [255u8, 0, 0].repeat(8);
        let pic = to_i420(FrameFormat::RAWBGR, &bgr_blue, w, h).unwrap();
        assert_eq!(pic.y()[0], 41, "blue luma");
        let grey = to_i420(FrameFormat::GRAY, &[100; 8], w, h).unwrap();
        assert_eq!((grey.y()[0], grey.u()[0]), (100, 128));
        assert!(to_i420(FrameFormat::MJPEG, b"junk", w, h).is_none());
        assert!(to_i420(FrameFormat::YUYV, &[0; 3], w, h).is_none());
    }
}
