//! A growable buffer that writes ISO BMFF boxes: open a box, write its body, close it
//! and its 32-bit size is patched in. It never panics on sizes: a box over 4 GiB is an error.

use super::Fmp4Error;

pub(crate) struct BoxWriter {
    pub(crate) buf: Vec<u8>,
}

impl BoxWriter {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    /// Starts a box; returns where it starts, for `close`.
    pub(crate) fn open(&mut self, kind: &[u8; 4]) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        self.buf.extend_from_slice(kind);
        at
    }

    /// Starts a FullBox (version and 24-bit flags after the header).
    pub(crate) fn open_full(&mut self, kind: &[u8; 4], version: u8, flags: u32) -> usize {
        let at = self.open(kind);
        self.u32(((version as u32) << 24) | (flags & 0x00ff_ffff));
        at
    }

    pub(crate) fn close(&mut self, at: usize) -> Result<(), Fmp4Error> {
        let size = self.buf.len() - at;
        let size32 = u32::try_from(size).map_err(|_| Fmp4Error::TooLarge(size as u64))?;
        self.buf[at..at + 4].copy_from_slice(&size32.to_be_bytes());
        Ok(())
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u24(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes()[1..]);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// The unity matrix of mvhd and tkhd.
    pub(crate) fn unity_matrix(&mut self) {
        for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(v);
        }
    }

    /// Overwrites 4 bytes at `at` (a field whose value is known only later).
    pub(crate) fn patch_u32(&mut self, at: usize, v: u32) {
        self.buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// An MPEG-4 descriptor (ISO 14496-1 8.3.3): tag, then the body size in the
    /// variable-length form (7 bits a byte, top bit = more follows).
    pub(crate) fn descriptor(&mut self, tag: u8, body: &[u8]) -> Result<(), Fmp4Error> {
        let len = body.len();
        if len >= 1 << 28 {
            return Err(Fmp4Error::TooLarge(len as u64));
        }
        self.u8(tag);
        let mut started = false;
        for shift in [21u32, 14, 7] {
            let b = ((len >> shift) & 0x7f) as u8;
            if b != 0 || started {
                self.u8(b | 0x80);
                started = true;
            }
        }
        self.u8((len & 0x7f) as u8);
        self.bytes(body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_patched_and_nested() {
        let mut w = BoxWriter::with_capacity(64);
        let outer = w.open(b"moov");
        let inner = w.open_full(b"mvhd", 1, 0x020001);
        w.u16(7);
        w.close(inner).unwrap();
        w.close(outer).unwrap();
        assert_eq!(
            w.buf,
            [
                0, 0, 0, 22, b'm', b'o', b'o', b'v', 0, 0, 0, 14, b'm', b'v', b'h', b'd', 1, 2, 0,
                1, 0, 7
            ]
        );
    }

    #[test]
    fn descriptor_lengths() {
        let mut w = BoxWriter::with_capacity(300);
        w.descriptor(5, &[0x12, 0x10]).unwrap();
        assert_eq!(w.buf, [5, 2, 0x12, 0x10]);
        let mut w = BoxWriter::with_capacity(300);
        w.descriptor(3, &[0u8; 200]).unwrap();
        // 200 = 0b1_1001000: 0x81 then 0x48.
        assert_eq!(&w.buf[..3], &[3, 0x81, 0x48]);
        assert_eq!(w.buf.len(), 203);
    }
}
