//! Co-hosting composition: the guest's latest picture placed on the host's, picture-in-
//! picture (a scaled tile in a corner) or side by side (each half of the frame), and the
//! "guest offline" tile. Pure pixel work on `I420` values; it never waits for the guest.

use crate::media::I420;
use crate::process::overlay::{draw_text, fill_rect, text_scale, text_size};

/// Where the guest goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Layout {
    /// A tile of `scale` times the frame's width and height in a corner, 2 % in from its edges.
    Pip { corner: Corner, scale: f32 },
    /// Host on the left half, guest on the right, each scaled to fit (letterboxed).
    SideBySide,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

/// A rectangle in pixels, with even coordinates and sizes (chroma-aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

/// Luma of the offline tile: dark grey, with neutral chroma.
pub const OFFLINE_Y: u8 = 48;

/// A `--guest-layout` that is neither `pip:POS:SCALE` nor `side-by-side`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0:?}: pip:POS:SCALE (POS tl|tr|bl|br, SCALE 0.1-0.5) or side-by-side")]
pub struct BadLayout(pub String);

impl Layout {
    /// `pip:POS:SCALE` (POS = tl, tr, bl, br; SCALE from 0.1 to 0.5) or `side-by-side`.
    pub fn parse(s: &str) -> Result<Self, BadLayout> {
        if s == "side-by-side" {
            return Ok(Layout::SideBySide);
        }
        let mut parts = s.split(':');
        let bad = || BadLayout(s.to_string());
        if parts.next() != Some("pip") {
            return Err(bad());
        }
        let corner = match parts.next().unwrap_or("br") {
            "tl" => Corner::TopLeft,
            "tr" => Corner::TopRight,
            "bl" => Corner::BottomLeft,
            "br" => Corner::BottomRight,
            _ => return Err(bad()),
        };
        let scale: f32 = match parts.next() {
            Some(v) => v.parse().map_err(|_| bad())?,
            None => 0.3,
        };
        if !(0.1..=0.5).contains(&scale) || parts.next().is_some() {
            return Err(bad());
        }
        Ok(Layout::Pip { corner, scale })
    }

    /// The guest's rectangle in a `width` x `height` frame.
    pub fn guest_rect(&self, width: usize, height: usize) -> Rect {
        match *self {
            Layout::Pip { corner, scale } => {
                let (w, h) = (
                    ((width as f32 * scale) as usize) & !1,
                    ((height as f32 * scale) as usize) & !1,
                );
                let (mx, my) = ((width / 50) & !1, (height / 50) & !1);
                let x = match corner {
                    Corner::TopLeft | Corner::BottomLeft => mx,
                    _ => (width - w - mx) & !1,
                };
                let y = match corner {
                    Corner::TopLeft | Corner::TopRight => my,
                    _ => (height - h - my) & !1,
                };
                Rect { x, y, w, h }
            }
            Layout::SideBySide => Rect {
                x: (width / 2) & !1,
                y: 0,
                w: (width / 2) & !1,
                h: height,
            },
        }
    }
}

/// The largest rectangle of the aspect ratio `sw:sh` centred in `r` (even-aligned).
fn fit(r: Rect, sw: usize, sh: usize) -> Rect {
    if sw == 0 || sh == 0 {
        return r;
    }
    let (mut w, mut h) = (r.w, r.w * sh / sw);
    if h > r.h {
        h = r.h;
        w = r.h * sw / sh;
    }
    let (w, h) = (w & !1, h & !1);
    Rect {
        x: (r.x + (r.w - w) / 2) & !1,
        y: (r.y + (r.h - h) / 2) & !1,
        w,
        h,
    }
}

/// Scales `src` into `dst` at `r` (nearest neighbour on each plane: cheap, and for a
/// downscaled tile good enough).
pub fn scale_into(src: &I420, dst: &mut I420, r: Rect) {
    let (dw, dh) = (dst.width, dst.height);
    let r = Rect {
        w: r.w.min(dw.saturating_sub(r.x)) & !1,
        h: r.h.min(dh.saturating_sub(r.y)) & !1,
        ..r
    };
    if r.w == 0 || r.h == 0 || src.width == 0 || src.height == 0 {
        return;
    }
    let (sw, sh) = (src.width, src.height);
    let (scw, sch) = (src.chroma_width(), src.chroma_height());
    let dcw = dst.chroma_width();
    let (sy, su, sv) = (src.y(), src.u(), src.v());
    let (yp, up, vp) = dst.planes_mut();
    let xmap: Vec<usize> = (0..r.w).map(|x| x * sw / r.w).collect();
    for y in 0..r.h {
        let srow = (y * sh / r.h) * sw;
        let drow = (r.y + y) * dw + r.x;
        for (x, &sx) in xmap.iter().enumerate() {
            yp[drow + x] = sy[srow + sx];
        }
    }
    let (cw, chh) = (r.w / 2, r.h / 2);
    let cxmap: Vec<usize> = (0..cw).map(|x| (x * scw / cw).min(scw - 1)).collect();
    for y in 0..chh {
        let srow = (y * sch / chh).min(sch - 1) * scw;
        let drow = (r.y / 2 + y) * dcw + r.x / 2;
        for (x, &sx) in cxmap.iter().enumerate() {
            up[drow + x] = su[srow + sx];
            vp[drow + x] = sv[srow + sx];
        }
    }
}

/// The guest's tile when it is away: dark grey with "guest offline" in it.
pub fn offline_tile(dst: &mut I420, r: Rect) {
    fill_rect(dst, r.x, r.y, r.w, r.h, OFFLINE_Y);
    let text = "guest offline";
    let mut scale = text_scale(dst.height).max(1);
    while scale > 1 && text_size(text, scale).0 > r.w {
        scale -= 1;
    }
    let (tw, th) = text_size(text, scale);
    if tw <= r.w && th <= r.h {
        draw_text(dst, r.x + (r.w - tw) / 2, r.y + (r.h - th) / 2, scale, text);
    }
}

/// Puts the guest (or the offline tile when `guest` is `None`) on `host`.
pub fn compose(host: &mut I420, guest: Option<&I420>, layout: Layout) {
    let (w, h) = (host.width, host.height);
    if layout == Layout::SideBySide {
        // The host shrinks into the left half; the rest is black.
        let left = Rect {
            x: 0,
            y: 0,
            w: (w / 2) & !1,
            h,
        };
        let src = std::mem::replace(host, I420::black(w, h));
        scale_into(&src, host, fit(left, src.width, src.height));
    }
    let tile = layout.guest_rect(w, h);
    match guest {
        Some(g) => {
            let r = if layout == Layout::SideBySide {
                fill_rect(host, tile.x, tile.y, tile.w, tile.h, 16);
                fit(tile, g.width, g.height)
            } else {
                tile
            };
            scale_into(g, host, r);
        }
        None => offline_tile(host, tile),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: usize, h: usize, y: u8, u: u8, v: u8) -> I420 {
        let mut p = I420::black(w, h);
        let (yp, up, vp) = p.planes_mut();
        yp.fill(y);
        up.fill(u);
        vp.fill(v);
        p
    }

    #[test]
    fn layouts_parse_and_refuse() {
        assert_eq!(
            Layout::parse("pip:tr:0.25"),
            Ok(Layout::Pip {
                corner: Corner::TopRight,
                scale: 0.25
            })
        );
        assert_eq!(Layout::parse("side-by-side"), Ok(Layout::SideBySide));
        for bad in ["pip:xx:0.3", "pip:br:0.9", "grid", "pip:br:0.3:1"] {
            assert!(Layout::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pip_puts_the_guest_in_its_corner_and_leaves_the_rest() {
        let mut host = solid(640, 360, 100, 128, 128);
        let guest = solid(320, 180, 81, 90, 240); // red
        let layout = Layout::parse("pip:br:0.25").unwrap();
        compose(&mut host, Some(&guest), layout);
        let r = layout.guest_rect(640, 360);
        assert_eq!((r.w, r.h), (160, 90));
        assert_eq!((r.x + r.w, r.y + r.h), (640 - 12, 360 - 6));
        assert_eq!(host.luma(r.x + 5, r.y + 5), 81);
        assert_eq!(host.luma(r.x + r.w - 1, r.y + r.h - 1), 81);
        assert_eq!(host.luma(r.x - 1, r.y), 100);
        assert_eq!(host.luma(10, 10), 100);
        let cw = host.chroma_width();
        assert_eq!(host.v()[(r.y / 2 + 4) * cw + r.x / 2 + 4], 240);
        assert_eq!(host.v()[cw * 4 + 4], 128);
    }

    #[test]
    fn offline_tile_is_grey_with_text_and_side_by_side_splits() {
        let mut host = solid(640, 360, 100, 128, 128);
        let layout = Layout::parse("pip:tl:0.3").unwrap();
        compose(&mut host, None, layout);
        let r = layout.guest_rect(640, 360);
        assert_eq!(host.luma(r.x + 1, r.y + 1), OFFLINE_Y);
        let whites = (r.y..r.y + r.h)
            .flat_map(|y| (r.x..r.x + r.w).map(move |x| (x, y)))
            .filter(|&(x, y)| host.luma(x, y) > 200)
            .count();
        assert!(whites > 50, "the text is drawn ({whites} white pixels)");

        let mut host = solid(640, 360, 100, 128, 128);
        let guest = solid(640, 360, 81, 90, 240);
        compose(&mut host, Some(&guest), Layout::SideBySide);
        // Both 16:9 pictures at half width: 320x180, centred vertically.
        assert_eq!(host.luma(160, 180), 100);
        assert_eq!(host.luma(480, 180), 81);
        assert_eq!(host.luma(160, 20), 16, "letterbox above the host");
        assert_eq!(host.luma(480, 20), 16, "letterbox above the guest");
    }
}
