//! The default video source and a measuring instrument: scrolling colour bars, a bouncing
//! box, a patch of noise, and the capture wall clock (`HH:MM:SS.mmm` UTC) and frame counter burned in at the
//! top left. Pure: `render(index, wallclock_us)` returns the picture; pacing is the caller's.

use crate::media::I420;
use crate::process::overlay::{draw_text, fill_rect, format_clock, text_scale};

/// 75% colour bars (BT.601 limited range): white, yellow, cyan, green, magenta, red, blue.
const BARS: [(u8, u8, u8); 7] = [
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
];

pub struct TestPattern {
    width: usize,
    height: usize,
    row_y: Vec<u8>,
    row_u: Vec<u8>,
    row_v: Vec<u8>,
}

impl TestPattern {
    /// Width and height must be even (the CLI checks).
    pub fn new(width: usize, height: usize) -> Self {
        let bar = |x: usize| BARS[(x * BARS.len() / width.max(1)).min(BARS.len() - 1)];
        let row_y = (0..width).map(|x| bar(x).0).collect();
        let row_u = (0..width / 2).map(|x| bar(2 * x).1).collect();
        let row_v = (0..width / 2).map(|x| bar(2 * x).2).collect();
        Self {
            width,
            height,
            row_y,
            row_u,
            row_v,
        }
    }

    pub fn render(&self, index: u64, wallclock_us: u64) -> I420 {
        let (w, h) = (self.width, self.height);
        let mut pic = I420::black(w, h);
        let (cw, ch) = (pic.chroma_width(), pic.chroma_height());
        // Bars scroll left by 4 pixels a frame.
        let shift = (index as usize * 4) % w.max(1);
        let (yp, up, vp) = pic.planes_mut();
        for row in 0..h {
            copy_rotated(&mut yp[row * w..(row + 1) * w], &self.row_y, shift);
        }
        for row in 0..ch {
            copy_rotated(&mut up[row * cw..(row + 1) * cw], &self.row_u, shift / 2);
            copy_rotated(&mut vp[row * cw..(row + 1) * cw], &self.row_v, shift / 2);
        }
        // A box bouncing across the lower half, so motion is obvious even without bars.
        let side = (h / 6).max(2) & !1;
        let span = w.saturating_sub(side).max(1);
        let step = (index as usize * 8) % (2 * span);
        let bx = if step < span { step } else { 2 * span - step };
        fill_rect(&mut pic, bx & !1, h / 2, side, side, 235);
        // A patch of fresh noise every frame (bottom right), so the encoder has real work
        // and the bitrate is near what was asked, as with a camera.
        let (nx, ny, nw, nh) = (w * 3 / 4, h * 3 / 4, w / 4, h / 4);
        let mut seed = index.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let (yp, _, _) = pic.planes_mut();
        for row in ny..ny + nh {
            for px in &mut yp[row * w + nx..row * w + nx + nw] {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *px = 116 + (seed >> 56) as u8 % 24;
            }
        }
        // Burned-in clock and frame counter.
        let scale = text_scale(h);
        let text = format!("{} #{:06}", format_clock(wallclock_us), index);
        draw_text(&mut pic, 2 * scale, 2 * scale, scale, &text);
        pic
    }
}

fn copy_rotated(dst: &mut [u8], src: &[u8], shift: usize) {
    let n = dst.len().min(src.len());
    if n == 0 {
        return;
    }
    let shift = shift % n;
    dst[..n - shift].copy_from_slice(&src[shift..n]);
    dst[n - shift..n].copy_from_slice(&src[..shift]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_move_and_carry_the_clock() {
        let p = TestPattern::new(320, 180);
        let a = p.render(0, 0);
        let b = p.render(1, 33_000);
        assert_eq!(
            (a.width, a.height, a.data.len()),
            (320, 180, 320 * 180 * 3 / 2)
        );
        assert_ne!(a.data, b.data);
        // The clock band differs between two times at the same index.
        let c = p.render(0, 1_000_000);
        let band = 320 * 30;
        assert_ne!(&a.y()[..band], &c.y()[..band]);
        assert_eq!(&a.y()[band..], &c.y()[band..]);
    }

    #[test]
    fn rotation_wraps() {
        let mut d = [0u8; 4];
        copy_rotated(&mut d, &[1, 2, 3, 4], 1);
        assert_eq!(d, [2, 3, 4, 1]);
        copy_rotated(&mut d, &[1, 2, 3, 4], 4);
        assert_eq!(d, [1, 2, 3, 4]);
    }
}
