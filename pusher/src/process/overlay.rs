//! Text burned into I420 pictures: the wall clock (`HH:MM:SS.mmm`, UTC), a frame counter or
//! any text, white on a black box, drawn with the built-in bitmap font. Pure: a picture and
//! values in, the same picture changed; it never reads a clock itself.

use super::font::{glyph, GLYPH_H, GLYPH_W};
use crate::media::I420;

const WHITE_Y: u8 = 235;
const BLACK_Y: u8 = 16;

/// What `--overlay` draws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    /// The frame's capture wall-clock time.
    Clock,
    /// Fixed text.
    Text(String),
}

impl Overlay {
    /// Draws into the bottom-left corner (the test pattern keeps the top-left for itself).
    pub fn apply(&self, pic: &mut I420, wallclock_us: u64) {
        let scale = text_scale(pic.height);
        let text = match self {
            Overlay::Clock => format_clock(wallclock_us),
            Overlay::Text(t) => t.clone(),
        };
        let (_, h) = text_size(&text, scale);
        let y = pic.height.saturating_sub(h + 2 * scale);
        draw_text(pic, 2 * scale, y, scale, &text);
    }
}

/// A readable glyph scale for a picture height (one glyph pixel per 120 lines of picture).
pub fn text_scale(height: usize) -> usize {
    (height / 120).max(1)
}

/// `HH:MM:SS.mmm` (UTC) of a time in microseconds since the Unix epoch.
pub fn format_clock(wallclock_us: u64) -> String {
    let ms = wallclock_us / 1000;
    let day_ms = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

/// Width and height in pixels of `text` drawn at `scale`, box margin included.
pub fn text_size(text: &str, scale: usize) -> (usize, usize) {
    let n = text.chars().count();
    ((n * (GLYPH_W + 1) + 1) * scale, (GLYPH_H + 2) * scale)
}

/// Draws `text` with its top-left box corner at (x, y); clipped at the picture edges.
pub fn draw_text(pic: &mut I420, x: usize, y: usize, scale: usize, text: &str) {
    let scale = scale.max(1);
    let (bw, bh) = text_size(text, scale);
    // Box: black luma, neutral chroma.
    fill_rect(pic, x, y, bw, bh, BLACK_Y);
    let (w, h) = (pic.width, pic.height);
    let (yp, _, _) = pic.planes_mut();
    for (i, c) in text.chars().enumerate() {
        let rows = glyph(c);
        let gx = x + (1 + i * (GLYPH_W + 1)) * scale;
        let gy = y + scale;
        for (r, bits) in rows.iter().enumerate() {
            for col in 0..GLYPH_W {
                if bits & (0x10 >> col) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    let py = gy + r * scale + dy;
                    if py >= h {
                        break;
                    }
                    let px0 = gx + col * scale;
                    if px0 >= w {
                        break;
                    }
                    let px1 = (px0 + scale).min(w);
                    yp[py * w + px0..py * w + px1].fill(WHITE_Y);
                }
            }
        }
    }
}

/// Fills a rectangle with a luma value and neutral chroma; clipped.
pub fn fill_rect(pic: &mut I420, x: usize, y: usize, rw: usize, rh: usize, luma: u8) {
    let (w, h) = (pic.width, pic.height);
    let (cw, ch) = (pic.chroma_width(), pic.chroma_height());
    let (yp, up, vp) = pic.planes_mut();
    let (x1, y1) = ((x + rw).min(w), (y + rh).min(h));
    if x >= x1 || y >= y1 {
        return;
    }
    for row in y..y1 {
        yp[row * w + x..row * w + x1].fill(luma);
    }
    let (cx0, cy0, cx1, cy1) = (x / 2, y / 2, x1.div_ceil(2).min(cw), y1.div_ceil(2).min(ch));
    for row in cy0..cy1 {
        up[row * cw + cx0..row * cw + cx1].fill(128);
        vp[row * cw + cx0..row * cw + cx1].fill(128);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_format() {
        // 1970-01-02 01:02:03.456
        let us = ((86_400 + 3_723) * 1000 + 456) * 1000;
        assert_eq!(format_clock(us), "01:02:03.456");
    }

    #[test]
    fn text_is_drawn_where_asked_and_clipped() {
        let mut pic = I420::black(64, 32);
        let (_, up, _) = pic.planes_mut();
        up.fill(200);
        draw_text(&mut pic, 10, 4, 1, "1");
        // '1' row 0 is 0x04: third column lit. Glyph origin is (10+1, 4+1).
        assert_eq!(pic.luma(11 + 2, 5), WHITE_Y);
        assert_eq!(pic.luma(11, 5), BLACK_Y);
        // Outside the box nothing changed.
        assert_eq!(pic.luma(5, 5), 16);
        assert_eq!(pic.u()[2 * 32 + 5], 128); // inside the box, chroma neutral
        assert_eq!(pic.u()[0], 200); // outside untouched
                                     // Clipped at the edge without panicking.
        draw_text(&mut pic, 60, 28, 3, "12:34");
    }

    #[test]
    fn clock_overlay_changes_between_frames() {
        let base = I420::black(320, 240);
        let mut a = base.clone();
        let mut b = base.clone();
        Overlay::Clock.apply(&mut a, 1_000_000);
        Overlay::Clock.apply(&mut b, 1_040_000); // 40 ms later
        assert_ne!(a, base, "overlay drew nothing");
        let changed = a.y().iter().zip(b.y()).filter(|(p, q)| p != q).count();
        assert!(changed > 4, "only {changed} pixels differ");
        // Only the bottom band changes: the top half is identical to the input.
        assert_eq!(&a.y()[..320 * 120], &base.y()[..320 * 120]);
    }

    #[test]
    fn text_overlay_is_white_on_black() {
        let mut pic = I420::black(320, 240);
        pic.data[..320 * 240].fill(128);
        Overlay::Text("HI".into()).apply(&mut pic, 0);
        let white = pic.y().iter().filter(|&&p| p == WHITE_Y).count();
        let black = pic.y().iter().filter(|&&p| p == BLACK_Y).count();
        assert!(white > 0 && black > white);
    }
}
