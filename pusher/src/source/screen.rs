//! Screen capture of an X11 display with x11rb (which speaks the X protocol itself, so no
//! system library is needed), behind the `screen` feature. Each frame is one `GetImage` of
//! the top-left WxH region of the root window (clipped to the screen; the rest stays
//! black), converted from BGRX to I420 by `process::convert`, which is unit-tested.

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt, ImageFormat, Window};
use x11rb::rust_connection::RustConnection;

use super::raw::RawVideo;
use crate::media::I420;
use crate::process::convert::{packed_rgb_to_i420, PackedRgb};
use crate::PushError;

pub struct Screen {
    conn: RustConnection,
    root: Window,
    width: usize,
    height: usize,
    grab: (u16, u16),
}

impl Screen {
    /// `display` like `:0` (default: `$DISPLAY`).
    pub fn open(display: Option<&str>, width: usize, height: usize) -> Result<Self, PushError> {
        let err =
            |e: String| PushError::Device(format!("screen {}: {e}", display.unwrap_or("$DISPLAY")));
        let (conn, screen_num) = x11rb::connect(display).map_err(|e| err(e.to_string()))?;
        let screen = conn
            .setup()
            .roots
            .get(screen_num)
            .ok_or_else(|| err("no such screen".into()))?;
        if screen.root_depth != 24 && screen.root_depth != 32 {
            return Err(err(format!(
                "depth {} (24 or 32 supported)",
                screen.root_depth
            )));
        }
        let grab = (
            (width as u16).min(screen.width_in_pixels) & !1,
            (height as u16).min(screen.height_in_pixels) & !1,
        );
        let root = screen.root;
        tracing::info!(width = grab.0, height = grab.1, "screen capture open");
        Ok(Self {
            conn,
            root,
            width,
            height,
            grab,
        })
    }
}

/// Places a BGRX capture of `gw`x`gh` into a black `width`x`height` I420 picture.
pub fn bgrx_into_picture(
    data: &[u8],
    gw: usize,
    gh: usize,
    width: usize,
    height: usize,
) -> Option<I420> {
    let grabbed = packed_rgb_to_i420(data, gw, gh, gw * 4, PackedRgb::Bgra32)?;
    if (gw, gh) == (width, height) {
        return Some(grabbed);
    }
    let mut pic = I420::black(width, height);
    let (w, cw, gcw) = (pic.width, pic.chroma_width(), grabbed.chroma_width());
    let (yp, up, vp) = pic.planes_mut();
    for y in 0..grabbed.height.min(height) {
        let n = grabbed.width.min(w);
        yp[y * w..y * w + n]
            .copy_from_slice(&grabbed.y()[y * grabbed.width..y * grabbed.width + n]);
    }
    for y in 0..grabbed.chroma_height().min(height / 2) {
        let n = gcw.min(cw);
        up[y * cw..y * cw + n].copy_from_slice(&grabbed.u()[y * gcw..y * gcw + n]);
        vp[y * cw..y * cw + n].copy_from_slice(&grabbed.v()[y * gcw..y * gcw + n]);
    }
    Some(pic)
}

impl RawVideo for Screen {
    fn next(&mut self, _index: u64, _wall: u64) -> Result<Option<I420>, PushError> {
        let err = |e: String| PushError::Device(format!("screen: {e}"));
        let reply = self
            .conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                self.root,
                0,
                0,
                self.grab.0,
                self.grab.1,
                !0,
            )
            .map_err(|e| err(e.to_string()))?
            .reply()
            .map_err(|e| err(e.to_string()))?;
        let (gw, gh) = (self.grab.0 as usize, self.grab.1 as usize);
        bgrx_into_picture(&reply.data, gw, gh, self.width, self.height)
            .map(Some)
            .ok_or_else(|| {
                err(format!(
                    "short image: {} bytes for {gw}x{gh}",
                    reply.data.len()
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_is_placed_top_left_on_black() {
        // 2x2 white BGRX capture into a 4x4 picture.
        let data = [255u8; 16];
        let pic = bgrx_into_picture(&data, 2, 2, 4, 4).unwrap();
        assert_eq!(pic.luma(0, 0), 235);
        assert_eq!(pic.luma(1, 1), 235);
        assert_eq!(pic.luma(2, 0), 16);
        assert_eq!(pic.luma(0, 2), 16);
        assert!(bgrx_into_picture(&data[..10], 2, 2, 4, 4).is_none());
    }
}
