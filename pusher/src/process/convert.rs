//! Pixel-format conversion to I420 (BT.601, limited range) for what cameras and screens
//! deliver: packed RGB/BGRA, YUYV 4:2:2, NV12, and MJPEG (decoded with the `image` crate).
//! Pure: byte buffers in, an `I420` out, or `None` when the buffer is too short.

use crate::media::I420;

/// Packed RGB layouts: bytes per pixel and the offsets of R, G and B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackedRgb {
    Rgb24,
    Rgba32,
    Bgra32,
}

impl PackedRgb {
    fn layout(self) -> (usize, usize, usize, usize) {
        match self {
            PackedRgb::Rgb24 => (3, 0, 1, 2),
            PackedRgb::Rgba32 => (4, 0, 1, 2),
            PackedRgb::Bgra32 => (4, 2, 1, 0),
        }
    }
}

#[inline]
pub fn rgb_to_y(r: i32, g: i32, b: i32) -> u8 {
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
}

#[inline]
pub fn rgb_to_uv(r: i32, g: i32, b: i32) -> (u8, u8) {
    (
        (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128) as u8,
        (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128) as u8,
    )
}

/// Packed RGB (any of `PackedRgb`) with a row stride in bytes. Odd sizes are cropped to even.
pub fn packed_rgb_to_i420(
    data: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    format: PackedRgb,
) -> Option<I420> {
    let (bpp, ri, gi, bi) = format.layout();
    if stride < width * bpp || data.len() < stride * height.saturating_sub(1) + width * bpp {
        return None;
    }
    let mut pic = I420::black(width, height);
    let (w, h, cw) = (pic.width, pic.height, pic.chroma_width());
    let (yp, up, vp) = pic.planes_mut();
    let px = |x: usize, y: usize| {
        let o = y * stride + x * bpp;
        (
            data[o + ri] as i32,
            data[o + gi] as i32,
            data[o + bi] as i32,
        )
    };
    for y in 0..h {
        for x in 0..w {
            let (r, g, b) = px(x, y);
            yp[y * w + x] = rgb_to_y(r, g, b);
        }
    }
    for cy in 0..h / 2 {
        for cx in 0..cw {
            let (mut r, mut g, mut b) = (0, 0, 0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = px(2 * cx + dx, 2 * cy + dy);
                r += p.0;
                g += p.1;
                b += p.2;
            }
            let (u, v) = rgb_to_uv(r / 4, g / 4, b / 4);
            up[cy * cw + cx] = u;
            vp[cy * cw + cx] = v;
        }
    }
    Some(pic)
}

/// YUYV (YUY2) 4:2:2 packed: Y0 U Y1 V per two pixels. Chroma of two rows is averaged.
pub fn yuyv_to_i420(data: &[u8], width: usize, height: usize, stride: usize) -> Option<I420> {
    if stride < width * 2 || data.len() < stride * height.saturating_sub(1) + width * 2 {
        return None;
    }
    let mut pic = I420::black(width, height);
    let (w, h, cw) = (pic.width, pic.height, pic.chroma_width());
    let (yp, up, vp) = pic.planes_mut();
    for y in 0..h {
        let row = &data[y * stride..y * stride + w * 2];
        for x in 0..w {
            yp[y * w + x] = row[2 * x];
        }
    }
    for cy in 0..h / 2 {
        let (r0, r1) = (&data[2 * cy * stride..], &data[(2 * cy + 1) * stride..]);
        for cx in 0..cw {
            let o = 4 * cx;
            up[cy * cw + cx] = (r0[o + 1] as u16 + r1[o + 1] as u16).div_ceil(2) as u8;
            vp[cy * cw + cx] = (r0[o + 3] as u16 + r1[o + 3] as u16).div_ceil(2) as u8;
        }
    }
    Some(pic)
}

/// NV12: a Y plane, then one plane of interleaved U,V at half resolution.
pub fn nv12_to_i420(data: &[u8], width: usize, height: usize, stride: usize) -> Option<I420> {
    let (w, h) = (width & !1, height & !1);
    if stride < w || data.len() < stride * h + stride * (h / 2) - (stride - w) {
        return None;
    }
    let mut pic = I420::black(w, h);
    let cw = pic.chroma_width();
    let (yp, up, vp) = pic.planes_mut();
    for y in 0..h {
        yp[y * w..(y + 1) * w].copy_from_slice(&data[y * stride..y * stride + w]);
    }
    let uv = &data[stride * h..];
    for cy in 0..h / 2 {
        for cx in 0..cw {
            up[cy * cw + cx] = uv[cy * stride + 2 * cx];
            vp[cy * cw + cx] = uv[cy * stride + 2 * cx + 1];
        }
    }
    Some(pic)
}

/// A JPEG frame (MJPEG cameras): decoded, then converted from RGB.
pub fn mjpeg_to_i420(jpeg: &[u8]) -> Option<I420> {
    let img = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg).ok()?;
    let rgb = img.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    packed_rgb_to_i420(rgb.as_raw(), w, h, w * 3, PackedRgb::Rgb24)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4x2 image: left half red, right half blue.
    fn red_blue(format: PackedRgb) -> Vec<u8> {
        let mut out = Vec::new();
        for _y in 0..2 {
            for x in 0..4 {
                let (r, g, b) = if x < 2 { (255, 0, 0) } else { (0, 0, 255) };
                match format {
                    PackedRgb::Rgb24 => out.extend([r, g, b]),
                    PackedRgb::Rgba32 => out.extend([r, g, b, 255]),
                    PackedRgb::Bgra32 => out.extend([b, g, r, 255]),
                }
            }
        }
        out
    }

    #[test]
    fn rgb_layouts_agree_with_bt601() {
        for f in [PackedRgb::Rgb24, PackedRgb::Rgba32, PackedRgb::Bgra32] {
            let bpp = f.layout().0;
            let pic = packed_rgb_to_i420(&red_blue(f), 4, 2, 4 * bpp, f).unwrap();
            // BT.601 limited: red Y=82 U=90 V=240; blue Y=41 U=240 V=110.
            assert_eq!(pic.y(), &[82, 82, 41, 41, 82, 82, 41, 41], "{f:?}");
            assert_eq!(pic.u(), &[90, 240], "{f:?}");
            assert_eq!(pic.v(), &[240, 110], "{f:?}");
        }
        // White and black.
        assert_eq!(rgb_to_y(255, 255, 255), 235);
        assert_eq!(rgb_to_y(0, 0, 0), 16);
        assert_eq!(rgb_to_uv(128, 128, 128), (128, 128));
        assert!(packed_rgb_to_i420(&[0; 10], 4, 2, 12, PackedRgb::Rgb24).is_none());
    }

    #[test]
    fn yuyv_keeps_luma_and_averages_chroma() {
        // 2x2: row 0 = Y 10,20 U 100 V 200; row 1 = Y 30,40 U 110 V 210.
        let data = [10, 100, 20, 200, 30, 110, 40, 210];
        let pic = yuyv_to_i420(&data, 2, 2, 4).unwrap();
        assert_eq!(pic.y(), &[10, 20, 30, 40]);
        assert_eq!((pic.u(), pic.v()), (&[105u8][..], &[205u8][..]));
        assert!(yuyv_to_i420(&data[..6], 2, 2, 4).is_none());
    }

    #[test]
    fn nv12_deinterleaves_chroma() {
        // 4x2 with stride 6 (padding bytes 99).
        let data = [
            1, 2, 3, 4, 99, 99, //
            5, 6, 7, 8, 99, 99, //
            50, 60, 51, 61, 99, 99,
        ];
        let pic = nv12_to_i420(&data, 4, 2, 6).unwrap();
        assert_eq!(pic.y(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(pic.u(), &[50, 51]);
        assert_eq!(pic.v(), &[60, 61]);
        assert!(nv12_to_i420(&data[..12], 4, 2, 6).is_none());
    }

    #[test]
    fn mjpeg_decodes_to_the_right_colour() {
        // Encode a 16x16 solid green JPEG with the image crate, then convert it back.
        let img = image::RgbImage::from_pixel(16, 16, image::Rgb([0, 255, 0]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(&img)
            .unwrap();
        let pic = mjpeg_to_i420(&jpeg).unwrap();
        assert_eq!((pic.width, pic.height), (16, 16));
        // Green: Y=145 U=54 V=34 (allow JPEG error).
        let near = |a: u8, b: u8| (a as i32 - b as i32).abs() <= 4;
        assert!(pic.y().iter().all(|&y| near(y, 145)), "{:?}", &pic.y()[..4]);
        assert!(pic.u().iter().all(|&u| near(u, 54)) && pic.v().iter().all(|&v| near(v, 34)));
        assert!(mjpeg_to_i420(b"not a jpeg").is_none());
    }
}
