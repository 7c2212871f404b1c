//! A PNG watermark alpha-blended into I420 pictures at a given position. The PNG is
//! decoded (with the `image` crate) and converted to Y, U, V and alpha once; blending each
//! frame is then integer arithmetic. Pure apart from `Logo::load`.

use crate::media::I420;
use crate::process::convert::{rgb_to_uv, rgb_to_y};
use crate::PushError;

#[derive(Debug, Clone)]
pub struct Logo {
    pub width: usize,
    pub height: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    a: Vec<u8>,
}

impl Logo {
    pub fn load(path: &std::path::Path) -> Result<Self, PushError> {
        let bytes = std::fs::read(path).map_err(|e| PushError::io(path, e))?;
        Self::from_png(&bytes)
            .map_err(|r| PushError::format(path.display().to_string(), r.to_string()))
    }

    pub fn from_png(bytes: &[u8]) -> Result<Self, LogoError> {
        let img = image::load_from_memory(bytes)?;
        let rgba = img.to_rgba8();
        let (w, h) = (rgba.width() as usize, rgba.height() as usize);
        if w > 4096 || h > 4096 {
            return Err(LogoError::TooLarge {
                width: w,
                height: h,
            });
        }
        Ok(Self::from_rgba(w, h, rgba.as_raw()))
    }

    /// From straight (not premultiplied) RGBA pixels, row by row.
    pub fn from_rgba(width: usize, height: usize, rgba: &[u8]) -> Self {
        let n = width * height;
        let (mut y, mut u, mut v, mut a) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for p in rgba.chunks_exact(4).take(n) {
            let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
            y.push(rgb_to_y(r, g, b));
            let (pu, pv) = rgb_to_uv(r, g, b);
            u.push(pu);
            v.push(pv);
            a.push(p[3]);
        }
        let height = a.len() / width.max(1);
        Self {
            width,
            height,
            y,
            u,
            v,
            a,
        }
    }

    /// Blends the logo with its top-left corner at (x, y); parts outside are clipped.
    pub fn blend(&self, pic: &mut I420, x: usize, y: usize) {
        let (w, h, cw) = (pic.width, pic.height, pic.chroma_width());
        let (yp, up, vp) = pic.planes_mut();
        let mix = |dst: u8, src: u8, a: u32| {
            ((src as u32 * a + dst as u32 * (255 - a) + 127) / 255) as u8
        };
        for ly in 0..self.height {
            let py = y + ly;
            if py >= h {
                break;
            }
            for lx in 0..self.width {
                let px = x + lx;
                if px >= w {
                    break;
                }
                let i = ly * self.width + lx;
                let d = &mut yp[py * w + px];
                *d = mix(*d, self.y[i], self.a[i] as u32);
            }
        }
        // Chroma: one sample per 2x2 luma block, with the block's mean alpha and colour.
        let (cx0, cy0) = (x / 2, y / 2);
        let (cx1, cy1) = (
            (x + self.width).div_ceil(2).min(cw),
            (y + self.height).div_ceil(2).min(h / 2),
        );
        for cy in cy0..cy1 {
            for cx in cx0..cx1 {
                let (mut a_sum, mut u_sum, mut v_sum) = (0u32, 0u32, 0u32);
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (px, py) = (2 * cx + dx, 2 * cy + dy);
                    if px < x || py < y || px - x >= self.width || py - y >= self.height {
                        continue;
                    }
                    let i = (py - y) * self.width + (px - x);
                    let a = self.a[i] as u32;
                    a_sum += a;
                    u_sum += self.u[i] as u32 * a;
                    v_sum += self.v[i] as u32 * a;
                }
                if a_sum == 0 {
                    continue;
                }
                let (su, sv) = ((u_sum / a_sum) as u8, (v_sum / a_sum) as u8);
                let a = a_sum / 4;
                let o = cy * cw + cx;
                up[o] = mix(up[o], su, a);
                vp[o] = mix(vp[o], sv, a);
            }
        }
    }
}

/// Why a logo or its `--logo` argument was refused.
#[derive(Debug, thiserror::Error)]
pub enum LogoError {
    #[error("not a readable image: {0}")]
    Image(#[from] image::ImageError),
    #[error("logo of {width}x{height} is larger than 4096x4096")]
    TooLarge { width: usize, height: usize },
    #[error("bad position {0:?}: X,Y in pixels")]
    Position(String),
}

/// Parses `PATH[@X,Y]` (default position 16,16).
pub fn parse_logo_arg(arg: &str) -> Result<(std::path::PathBuf, usize, usize), LogoError> {
    match arg.rsplit_once('@') {
        Some((path, pos)) if pos.contains(',') => {
            let (x, y) = pos.split_once(',').unwrap_or((pos, "0"));
            let x = x
                .trim()
                .parse()
                .map_err(|_| LogoError::Position(pos.to_string()))?;
            let y = y
                .trim()
                .parse()
                .map_err(|_| LogoError::Position(pos.to_string()))?;
            Ok((path.into(), x, y))
        }
        _ => Ok((arg.into(), 16, 16)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red_square_png(side: u32, alpha: u8) -> Vec<u8> {
        let img = image::RgbaImage::from_pixel(side, side, image::Rgba([255, 0, 0, alpha]));
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png
    }

    #[test]
    fn the_logo_is_where_asked() {
        let logo = Logo::from_png(&red_square_png(8, 255)).unwrap();
        let mut pic = I420::black(64, 48);
        logo.blend(&mut pic, 20, 10);
        // Opaque red (Y=82, V=240) exactly inside [20,28)x[10,18), black (Y=16) elsewhere.
        for y in 0..48 {
            for x in 0..64 {
                let inside = (20..28).contains(&x) && (10..18).contains(&y);
                assert_eq!(pic.luma(x, y), if inside { 82 } else { 16 }, "({x},{y})");
            }
        }
        let cw = pic.chroma_width();
        assert_eq!(pic.v()[5 * cw + 10], 240);
        assert_eq!(pic.v()[5 * cw + 9], 128);
        assert_eq!(pic.v()[4 * cw + 10], 128);
    }

    #[test]
    fn half_transparent_blends_and_edges_clip() {
        let logo = Logo::from_png(&red_square_png(8, 128)).unwrap();
        let mut pic = I420::black(16, 16);
        logo.blend(&mut pic, 12, 12); // only 4x4 visible
        let y = pic.luma(13, 13);
        assert!((48..=50).contains(&y), "half-blended luma {y}");
        assert_eq!(pic.luma(11, 13), 16);
    }

    #[test]
    fn logo_argument() {
        assert_eq!(
            parse_logo_arg("a.png@10,20").unwrap(),
            ("a.png".into(), 10, 20)
        );
        assert_eq!(parse_logo_arg("a.png").unwrap(), ("a.png".into(), 16, 16));
        assert!(parse_logo_arg("a.png@x,1").is_err());
        assert!(Logo::from_png(b"nope").is_err());
    }
}
