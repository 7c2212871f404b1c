//! Colour grading with a 3D LUT in the `.cube` format that grading tools export (Resolve,
//! Adobe): `LUT_3D_SIZE N` then N^3 `R G B` lines, red fastest, values in 0..1. Applied in
//! RGB (BT.601 limited range, like every pusher picture) with trilinear interpolation, as
//! a change added to the pixel, so an identity LUT changes nothing. Parsing is pure and
//! bounded (N at most 65); a bad file is an error naming the line, never a panic.

use crate::media::I420;

/// Largest `LUT_3D_SIZE` accepted.
pub const MAX_SIZE: usize = 65;

#[derive(Debug, Clone, PartialEq)]
pub struct Lut3d {
    size: usize,
    /// RGB triples, red fastest, then green, then blue.
    table: Vec<[f32; 3]>,
}

/// Why a `.cube` file was refused (line numbers from 1).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LutError {
    #[error("line {0}: only the domain 0..1 is supported")]
    Domain(usize),
    #[error("line {0}: a 1D LUT, not 3D")]
    OneD(usize),
    #[error("line {0}: LUT_3D_SIZE 2 to {MAX_SIZE}")]
    Size(usize),
    #[error("line {0}: data before LUT_3D_SIZE")]
    DataBeforeSize(usize),
    #[error("line {0}: not three numbers")]
    NotThreeNumbers(usize),
    #[error("line {line}: more than {size}^3 entries")]
    TooMany { line: usize, size: usize },
    #[error("no LUT_3D_SIZE")]
    NoSize,
    #[error("{entries} entries, LUT_3D_SIZE {size} needs {}", size * size * size)]
    Count { entries: usize, size: usize },
}

impl Lut3d {
    pub fn parse(text: &str) -> Result<Self, LutError> {
        let mut size = None;
        let mut table = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or_default();
            match first {
                "TITLE" | "LUT_1D_INPUT_RANGE" | "LUT_3D_INPUT_RANGE" => continue,
                "DOMAIN_MIN" | "DOMAIN_MAX" => {
                    let want = if first == "DOMAIN_MIN" { 0.0 } else { 1.0 };
                    let vals: Vec<f32> = words.filter_map(|w| w.parse().ok()).collect();
                    if vals.len() != 3 || vals.iter().any(|v| (v - want).abs() > 1e-6) {
                        return Err(LutError::Domain(n + 1));
                    }
                    continue;
                }
                "LUT_1D_SIZE" => return Err(LutError::OneD(n + 1)),
                "LUT_3D_SIZE" => {
                    let s: usize = words
                        .next()
                        .and_then(|w| w.parse().ok())
                        .filter(|s| (2..=MAX_SIZE).contains(s))
                        .ok_or(LutError::Size(n + 1))?;
                    size = Some(s);
                    table.reserve(s * s * s);
                    continue;
                }
                _ => {}
            }
            let Some(s) = size else {
                return Err(LutError::DataBeforeSize(n + 1));
            };
            let vals: Vec<f32> = line
                .split_whitespace()
                .map(|w| w.parse::<f32>())
                .collect::<Result<_, _>>()
                .map_err(|_| LutError::NotThreeNumbers(n + 1))?;
            if vals.len() != 3 || vals.iter().any(|v| !v.is_finite()) {
                return Err(LutError::NotThreeNumbers(n + 1));
            }
            if table.len() == s * s * s {
                return Err(LutError::TooMany {
                    line: n + 1,
                    size: s,
                });
            }
            table.push([vals[0], vals[1], vals[2]]);
        }
        let size = size.ok_or(LutError::NoSize)?;
        if table.len() != size * size * size {
            return Err(LutError::Count {
                entries: table.len(),
                size,
            });
        }
        Ok(Self { size, table })
    }

    pub fn load(path: &std::path::Path) -> Result<Self, crate::PushError> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::PushError::io(path, e))?;
        Self::parse(&text)
            .map_err(|r| crate::PushError::format(path.display().to_string(), r.to_string()))
    }

    /// The LUT at an RGB point in 0..1 (trilinear).
    pub fn lookup(&self, rgb: [f32; 3]) -> [f32; 3] {
        let n = self.size;
        let max = (n - 1) as f32;
        let mut i0 = [0usize; 3];
        let mut f = [0f32; 3];
        for c in 0..3 {
            let p = rgb[c].clamp(0.0, 1.0) * max;
            let i = (p.floor() as usize).min(n - 2);
            i0[c] = i;
            f[c] = p - i as f32;
        }
        let at = |r: usize, g: usize, b: usize| self.table[(b * n + g) * n + r];
        let mut out = [0f32; 3];
        for (dr, dg, db) in [
            (0, 0, 0),
            (1, 0, 0),
            (0, 1, 0),
            (1, 1, 0),
            (0, 0, 1),
            (1, 0, 1),
            (0, 1, 1),
            (1, 1, 1),
        ] {
            let w = (if dr == 1 { f[0] } else { 1.0 - f[0] })
                * (if dg == 1 { f[1] } else { 1.0 - f[1] })
                * (if db == 1 { f[2] } else { 1.0 - f[2] });
            let v = at(i0[0] + dr, i0[1] + dg, i0[2] + db);
            for c in 0..3 {
                out[c] += w * v[c];
            }
        }
        out
    }

    /// Applies the LUT to every pixel; each 2x2 block shares its chroma, which becomes the
    /// mean of the four graded pixels' chroma.
    pub fn apply(&self, pic: &mut I420) {
        let (w, h, cw) = (pic.width, pic.height, pic.chroma_width());
        let (yp, up, vp) = pic.planes_mut();
        for cy in 0..h / 2 {
            for cx in 0..cw {
                let k = cy * cw + cx;
                let (u, v) = (up[k] as f32 - 128.0, vp[k] as f32 - 128.0);
                let (mut su, mut sv) = (0.0f32, 0.0f32);
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let p = (2 * cy + dy) * w + 2 * cx + dx;
                    let y = (yp[p] as f32 - 16.0) * (255.0 / 219.0);
                    // BT.601 limited range to RGB in 0..1 (not clamped: the change is
                    // computed at the clamped point and added, so nothing else moves).
                    let rgb = yuv_to_rgb(y, u, v);
                    let clamped = [
                        rgb[0].clamp(0.0, 1.0),
                        rgb[1].clamp(0.0, 1.0),
                        rgb[2].clamp(0.0, 1.0),
                    ];
                    let graded = self.lookup(clamped);
                    let out = [
                        rgb[0] + graded[0] - clamped[0],
                        rgb[1] + graded[1] - clamped[1],
                        rgb[2] + graded[2] - clamped[2],
                    ];
                    let (ny, nu, nv) = rgb_to_yuv(out);
                    yp[p] = ny.round().clamp(0.0, 255.0) as u8;
                    su += nu;
                    sv += nv;
                }
                up[k] = (su / 4.0 + 128.0).round().clamp(0.0, 255.0) as u8;
                vp[k] = (sv / 4.0 + 128.0).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Full-scale luma `y` (0..255) and chroma offsets `u`, `v` (limited range, -112..112) to
/// RGB in 0..1 (BT.601).
fn yuv_to_rgb(y: f32, u: f32, v: f32) -> [f32; 3] {
    let (u, v) = (u * (255.0 / 224.0), v * (255.0 / 224.0));
    [
        (y + 1.402 * v) / 255.0,
        (y - 0.344_136 * u - 0.714_136 * v) / 255.0,
        (y + 1.772 * u) / 255.0,
    ]
}

/// The inverse of `yuv_to_rgb`: limited-range Y (16..235) and chroma offsets.
fn rgb_to_yuv(rgb: [f32; 3]) -> (f32, f32, f32) {
    let (r, g, b) = (rgb[0] * 255.0, rgb[1] * 255.0, rgb[2] * 255.0);
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let u = (b - y) / 1.772 * (224.0 / 255.0);
    let v = (r - y) / 1.402 * (224.0 / 255.0);
    (y * (219.0 / 255.0) + 16.0, u, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::convert::{rgb_to_uv, rgb_to_y};
    use crate::source::test_pattern::TestPattern;

    fn cube(size: usize, f: impl Fn(f32, f32, f32) -> [f32; 3]) -> String {
        let mut s = format!("TITLE \"test\"\n# comment\nLUT_3D_SIZE {size}\n");
        let m = (size - 1) as f32;
        for b in 0..size {
            for g in 0..size {
                for r in 0..size {
                    let o = f(r as f32 / m, g as f32 / m, b as f32 / m);
                    s.push_str(&format!("{} {} {}\n", o[0], o[1], o[2]));
                }
            }
        }
        s
    }

    #[test]
    fn identity_lut_leaves_frames_unchanged() {
        let lut = Lut3d::parse(&cube(17, |r, g, b| [r, g, b])).unwrap();
        let before = TestPattern::new(320, 180).render(7, 1_000_000);
        let mut after = before.clone();
        lut.apply(&mut after);
        let worst = before
            .data
            .iter()
            .zip(&after.data)
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max()
            .unwrap();
        assert!(worst <= 1, "identity LUT moved a level by {worst}");
    }

    #[test]
    fn a_known_lut_maps_colours_as_the_file_says() {
        // Swap red and blue.
        let lut = Lut3d::parse(&cube(2, |r, g, b| [b, g, r])).unwrap();
        for (from, to) in [
            ((255, 0, 0), (0, 0, 255)),
            ((0, 0, 255), (255, 0, 0)),
            ((0, 255, 0), (0, 255, 0)),
            ((200, 100, 50), (50, 100, 200)),
        ] {
            let mut p = I420::black(2, 2);
            let (y, (u, v)) = (
                rgb_to_y(from.0, from.1, from.2),
                rgb_to_uv(from.0, from.1, from.2),
            );
            let (yp, up, vp) = p.planes_mut();
            yp.fill(y);
            up.fill(u);
            vp.fill(v);
            lut.apply(&mut p);
            let want = (rgb_to_y(to.0, to.1, to.2), rgb_to_uv(to.0, to.1, to.2));
            let got = (p.y()[0], (p.u()[0], p.v()[0]));
            let close = |a: u8, b: u8| (a as i32 - b as i32).abs() <= 2;
            assert!(
                close(got.0, want.0) && close(got.1 .0, want.1 .0) && close(got.1 .1, want.1 .1),
                "{from:?} -> {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        for (text, why) in [
            ("LUT_3D_SIZE 2\n0 0 0\n", "entries"),
            ("0 0 0\n", "before LUT_3D_SIZE"),
            ("LUT_3D_SIZE 1000\n", "LUT_3D_SIZE 2 to"),
            ("LUT_1D_SIZE 16\n", "1D"),
            ("LUT_3D_SIZE 2\n0 0 x\n", "three numbers"),
            ("DOMAIN_MAX 2 2 2\n", "domain"),
        ] {
            let e = Lut3d::parse(text).unwrap_err();
            assert!(e.to_string().contains(why), "{text:?}: {e}");
        }
    }
}
