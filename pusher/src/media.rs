//! Raw media as it flows between capture, processing and encoding: I420 pictures and
//! blocks of interleaved 16-bit PCM, each stamped by the one capture clock.

/// A planar YUV 4:2:0 picture (BT.601 limited range), width and height even.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420 {
    pub width: usize,
    pub height: usize,
    /// Y plane (width*height), then U and V planes ((width/2)*(height/2) each).
    pub data: Vec<u8>,
}

impl I420 {
    /// A black picture. Width and height are rounded down to even numbers.
    pub fn black(width: usize, height: usize) -> Self {
        let (w, h) = (width & !1, height & !1);
        let mut data = vec![16u8; w * h * 3 / 2];
        data[w * h..].fill(128);
        Self {
            width: w,
            height: h,
            data,
        }
    }

    /// Wraps planar data; `None` if the size does not match or a dimension is odd.
    pub fn from_vec(width: usize, height: usize, data: Vec<u8>) -> Option<Self> {
        (width.is_multiple_of(2)
            && height.is_multiple_of(2)
            && data.len() == width * height * 3 / 2)
            .then_some(Self {
                width,
                height,
                data,
            })
    }

    pub fn chroma_width(&self) -> usize {
        self.width / 2
    }

    pub fn chroma_height(&self) -> usize {
        self.height / 2
    }

    pub fn y(&self) -> &[u8] {
        &self.data[..self.width * self.height]
    }

    pub fn u(&self) -> &[u8] {
        let (y, c) = (self.width * self.height, self.chroma_len());
        &self.data[y..y + c]
    }

    pub fn v(&self) -> &[u8] {
        let (y, c) = (self.width * self.height, self.chroma_len());
        &self.data[y + c..]
    }

    fn chroma_len(&self) -> usize {
        self.chroma_width() * self.chroma_height()
    }

    /// The three planes, mutable.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (y, c) = (self.width * self.height, self.chroma_len());
        let (yp, rest) = self.data.split_at_mut(y);
        let (up, vp) = rest.split_at_mut(c);
        (yp, up, vp)
    }

    /// Luma at (x, y); 0 outside the picture.
    pub fn luma(&self, x: usize, y: usize) -> u8 {
        if x < self.width && y < self.height {
            self.data[y * self.width + x]
        } else {
            0
        }
    }
}

/// One captured video picture and when it was taken.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    pub picture: I420,
    /// Presentation time on the capture clock, in ms from the start of the push.
    pub pts_ms: u64,
    /// Wall-clock capture time, microseconds since the Unix epoch (carried in the SEI).
    pub wallclock_us: u64,
    /// TagFrame counter from 0.
    pub index: u64,
}

/// A block of interleaved signed 16-bit PCM.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioBlock {
    pub sample_rate: u32,
    pub channels: u8,
    pub samples: Vec<i16>,
    /// Time of the first sample on the capture clock, in ms from the start of the push.
    pub pts_ms: u64,
}

impl AudioBlock {
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels.max(1) as usize
    }
}
