//! A bit reader for the few bitstreams we parse (H.264 SPS, AudioSpecificConfig).
//! It reads from an RBSP (emulation prevention bytes already removed) and never panics.

/// Reads bits MSB-first; every read past the end is an error, not a panic.
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

/// The bitstream ended before a field was complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bitstream ended at bit {at} while reading a field")]
pub struct EndOfBits {
    pub at: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub fn bit(&mut self) -> Result<u32, EndOfBits> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or(EndOfBits { at: self.pos })?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit as u32)
    }

    /// Up to 32 bits as an unsigned value.
    pub fn bits(&mut self, n: u32) -> Result<u32, EndOfBits> {
        let mut v: u32 = 0;
        for _ in 0..n.min(32) {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    pub fn skip(&mut self, n: usize) -> Result<(), EndOfBits> {
        if self.pos + n > self.data.len() * 8 {
            return Err(EndOfBits { at: self.pos });
        }
        self.pos += n;
        Ok(())
    }

    /// Unsigned Exp-Golomb code, ue(v). More than 31 leading zeros cannot be a valid value.
    pub fn ue(&mut self) -> Result<u32, EndOfBits> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(EndOfBits { at: self.pos });
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + rest as u64).min(u32::MAX as u64) as u32)
    }

    /// Signed Exp-Golomb code, se(v).
    pub fn se(&mut self) -> Result<i32, EndOfBits> {
        let k = self.ue()? as i64;
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(v as i32)
    }
}

/// Removes H.264/H.265 emulation prevention bytes (00 00 03 -> 00 00).
pub fn nal_to_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_values() {
        // 1 | 010 | 011 | 00100 | 00101 => ue 0,1,2,3,4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(
            (0..5).map(|_| r.ue().unwrap()).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn signed_exp_golomb() {
        // ue 1 => +1, ue 2 => -1
        let data = [0b0100_1100];
        let mut r = BitReader::new(&data);
        assert_eq!(r.se().unwrap(), 1);
        assert_eq!(r.se().unwrap(), -1);
    }

    #[test]
    fn reading_past_end_is_an_error() {
        let mut r = BitReader::new(&[0x00]);
        assert!(r.ue().is_err());
        assert!(BitReader::new(&[]).bit().is_err());
    }

    #[test]
    fn emulation_prevention_removed() {
        assert_eq!(nal_to_rbsp(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }
}
