//! The beauty filter: edge-preserving skin smoothing. A self-guided filter (He et al.) on
//! luma, made of box means over running sums so its cost does not grow with the radius,
//! blended in only where the chroma is skin-toned. Flat skin loses its noise; edges (where
//! the local variance is far above `eps`) keep their contrast. Pure, on `I420` values.

use crate::media::I420;

/// Box radius in pixels (a 7x7 window).
pub const RADIUS: usize = 3;

/// Skin-tone weight (0 to 1) of a chroma sample: 1 inside the classic BT.601 Cb/Cr skin
/// box (Cb 77-127, Cr 133-173), falling to 0 over 8 levels outside it.
pub fn skin_weight(u: u8, v: u8) -> f32 {
    let d = |x: f32, lo: f32, hi: f32| (lo - x).max(x - hi).max(0.0);
    let dist = d(u as f32, 77.0, 127.0).max(d(v as f32, 133.0, 173.0));
    (1.0 - dist / 8.0).clamp(0.0, 1.0)
}

/// Box means with radius `r` of `src` (w x h), clamped at the edges, into `dst`.
fn box_mean(src: &[f32], w: usize, h: usize, r: usize, dst: &mut [f32], tmp: &mut [f32]) {
    // Horizontal pass, then vertical, each a running sum.
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        let out = &mut tmp[y * w..(y + 1) * w];
        let mut sum = 0.0f32;
        let mut n = 0usize;
        for v in row.iter().take(r.min(w - 1) + 1) {
            sum += v;
            n += 1;
        }
        for x in 0..w {
            out[x] = sum / n as f32;
            if x + r + 1 < w {
                sum += row[x + r + 1];
                n += 1;
            }
            if x >= r {
                sum -= row[x - r];
                n -= 1;
            }
        }
    }
    let mut sums = vec![0.0f32; w];
    let mut n = 0usize;
    for y in 0..=r.min(h - 1) {
        for (s, v) in sums.iter_mut().zip(&tmp[y * w..(y + 1) * w]) {
            *s += v;
        }
        n += 1;
    }
    for y in 0..h {
        let inv = 1.0 / n as f32;
        for (d, s) in dst[y * w..(y + 1) * w].iter_mut().zip(&sums) {
            *d = s * inv;
        }
        if y + r + 1 < h {
            let add = &tmp[(y + r + 1) * w..(y + r + 2) * w];
            for (s, v) in sums.iter_mut().zip(add) {
                *s += v;
            }
            n += 1;
        }
        if y >= r {
            let sub = &tmp[(y - r) * w..(y - r + 1) * w];
            for (s, v) in sums.iter_mut().zip(sub) {
                *s -= v;
            }
            n -= 1;
        }
    }
}

/// Skin smoothing of `strength` (0 = off, 1 = strongest), reusing its buffers per frame.
pub struct Beauty {
    eps: f32,
    strength: f32,
    bufs: Vec<Vec<f32>>,
}

impl Beauty {
    pub fn new(strength: f32) -> Self {
        let s = strength.clamp(0.0, 1.0);
        // eps is the variance below which detail counts as noise: (4..20 levels)^2.
        let e = 4.0 + 16.0 * s;
        Self {
            eps: e * e,
            strength: s,
            bufs: Vec::new(),
        }
    }

    pub fn apply(&mut self, pic: &mut I420) {
        let (w, h) = (pic.width, pic.height);
        if self.strength == 0.0 || w == 0 || h == 0 {
            return;
        }
        let n = w * h;
        self.bufs.resize_with(6, Vec::new);
        for b in &mut self.bufs {
            b.resize(n, 0.0);
        }
        let [i, ii, mean, mean2, tmp, ab] = &mut self.bufs[..] else {
            return;
        };
        for ((d, d2), &y) in i.iter_mut().zip(ii.iter_mut()).zip(pic.y()) {
            *d = y as f32;
            *d2 = (y as f32) * (y as f32);
        }
        box_mean(i, w, h, RADIUS, mean, tmp);
        box_mean(ii, w, h, RADIUS, mean2, tmp);
        // a = var / (var + eps) into mean2, b = mean - a * mean into mean.
        for (m, m2) in mean.iter_mut().zip(mean2.iter_mut()) {
            let var = (*m2 - *m * *m).max(0.0);
            let a = var / (var + self.eps);
            *m2 = a;
            *m *= 1.0 - a;
        }
        box_mean(mean2, w, h, RADIUS, ab, tmp);
        box_mean(mean, w, h, RADIUS, ii, tmp);
        let (mean_a, mean_b) = (ab, ii);
        let cw = pic.chroma_width();
        let weights: Vec<f32> = pic
            .u()
            .iter()
            .zip(pic.v())
            .map(|(&u, &v)| skin_weight(u, v) * self.strength.sqrt())
            .collect();
        let (yp, _, _) = pic.planes_mut();
        for y in 0..h {
            let wrow = &weights[(y / 2) * cw..(y / 2) * cw + cw];
            for x in 0..w {
                let k = y * w + x;
                let orig = i[k];
                let smooth = mean_a[k] * orig + mean_b[k];
                let wgt = wrow[x / 2];
                yp[k] = (orig + (smooth - orig) * wgt).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic noise in -amp..=amp (xorshift).
    fn noise(seed: &mut u32, amp: i32) -> i32 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 17;
        *seed ^= *seed << 5;
        (*seed % (2 * amp as u32 + 1)) as i32 - amp
    }

    fn variance(v: &[f64]) -> f64 {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64
    }

    /// 160x96: left half light skin (Y 150), right half darker skin (Y 90), a sharp edge at
    /// x = 80; the bottom quarter is blue (not skin). Uniform noise of +-10 on luma.
    fn picture() -> I420 {
        let (w, h) = (160, 96);
        let mut p = I420::black(w, h);
        let mut seed = 12345u32;
        let cw = w / 2;
        let (yp, up, vp) = p.planes_mut();
        for y in 0..h {
            for x in 0..w {
                let base = if x < 80 { 150 } else { 90 };
                yp[y * w + x] = (base + noise(&mut seed, 10)).clamp(0, 255) as u8;
            }
        }
        for y in 0..h / 2 {
            for x in 0..cw {
                let blue = y >= 36;
                up[y * cw + x] = if blue { 200 } else { 110 };
                vp[y * cw + x] = if blue { 100 } else { 150 };
            }
        }
        p
    }

    fn region(p: &I420, xs: std::ops::Range<usize>, ys: std::ops::Range<usize>) -> Vec<f64> {
        ys.flat_map(|y| xs.clone().map(move |x| (x, y)))
            .map(|(x, y)| p.luma(x, y) as f64)
            .collect()
    }

    #[test]
    fn flat_skin_loses_its_noise_edges_and_other_colours_stay() {
        let before = picture();
        let mut after = before.clone();
        Beauty::new(0.5).apply(&mut after);
        for xs in [10..70, 90..150] {
            let (vb, va) = (
                variance(&region(&before, xs.clone(), 8..60)),
                variance(&region(&after, xs.clone(), 8..60)),
            );
            assert!(
                va < 0.5 * vb,
                "flat skin {xs:?}: variance {vb:.1} -> {va:.1}"
            );
        }
        let contrast = |p: &I420| {
            let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
            mean(region(p, 72..77, 8..60)) - mean(region(p, 83..88, 8..60))
        };
        let (cb, ca) = (contrast(&before), contrast(&after));
        assert!(
            (ca - cb).abs() <= 0.1 * cb,
            "edge contrast {cb:.1} -> {ca:.1}"
        );
        // Blue rows (not skin) are left as they were.
        assert_eq!(
            region(&before, 0..160, 76..96),
            region(&after, 0..160, 76..96)
        );
        // Strength 0 changes nothing.
        let mut same = before.clone();
        Beauty::new(0.0).apply(&mut same);
        assert_eq!(same, before);
    }

    #[test]
    fn box_mean_matches_a_direct_sum() {
        let (w, h, r) = (9, 7, 2);
        let src: Vec<f32> = (0..w * h).map(|i| ((i * 37) % 11) as f32).collect();
        let (mut dst, mut tmp) = (vec![0.0; w * h], vec![0.0; w * h]);
        box_mean(&src, w, h, r, &mut dst, &mut tmp);
        for y in 0..h {
            for x in 0..w {
                let (mut s, mut n) = (0.0, 0);
                for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
                    for xx in x.saturating_sub(r)..(x + r + 1).min(w) {
                        s += src[yy * w + xx];
                        n += 1;
                    }
                }
                assert!((dst[y * w + x] - s / n as f32).abs() < 1e-4, "({x},{y})");
            }
        }
    }
}
