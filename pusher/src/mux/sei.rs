//! The capture wall clock carried in every video frame, as an H.264 SEI
//! `user_data_unregistered` message (payload type 5), so any viewer can compute end-to-end
//! latency. Layout of the SEI payload (all integers big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 16 | UUID `6f6e6169-722d-7365-692d-636c6f636b21` (ASCII `onair-sei-clock!`) |
//! | 8  | capture wall-clock time, microseconds since the Unix epoch (UTC) |
//! | 4  | frame counter (wraps at 2^32) |
//!
//! The NAL unit is `0x06`, payload type `0x05`, payload size `0x1c` (28), the payload,
//! and the RBSP trailing byte `0x80`, with emulation-prevention bytes inserted as H.264
//! requires (so parse after removing them). Pure: bytes in, bytes out.

use onair_shared::avc::NAL_SEI;

pub const UUID: [u8; 16] = *b"onair-sei-clock!";
const PAYLOAD_TYPE_USER_DATA_UNREGISTERED: u8 = 5;
const PAYLOAD_LEN: usize = 16 + 8 + 4;

/// What the SEI carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSei {
    pub wallclock_us: u64,
    pub frame: u32,
}

/// Builds the SEI NAL unit (no start code, no length prefix).
pub fn build(sei: ClockSei) -> Vec<u8> {
    let mut rbsp = Vec::with_capacity(PAYLOAD_LEN + 3);
    rbsp.push(PAYLOAD_TYPE_USER_DATA_UNREGISTERED);
    rbsp.push(PAYLOAD_LEN as u8);
    rbsp.extend_from_slice(&UUID);
    rbsp.extend_from_slice(&sei.wallclock_us.to_be_bytes());
    rbsp.extend_from_slice(&sei.frame.to_be_bytes());
    rbsp.push(0x80);
    let mut nal = vec![NAL_SEI];
    escape_into(&rbsp, &mut nal);
    nal
}

/// Finds our clock in one NAL unit (with emulation-prevention bytes); `None` if it is not
/// an SEI NAL or carries no onair clock message.
pub fn parse(nal: &[u8]) -> Option<ClockSei> {
    if nal.first()? & 0x1f != NAL_SEI {
        return None;
    }
    let rbsp = unescape(&nal[1..]);
    let mut at = 0;
    // SEI messages until the trailing bits.
    while at < rbsp.len() && rbsp[at] != 0x80 {
        let read_varint = |at: &mut usize| -> Option<usize> {
            let mut v = 0usize;
            loop {
                let b = *rbsp.get(*at)?;
                *at += 1;
                v += b as usize;
                if b != 0xff {
                    return Some(v);
                }
            }
        };
        let ptype = read_varint(&mut at)?;
        let size = read_varint(&mut at)?;
        let payload = rbsp.get(at..at + size)?;
        at += size;
        if ptype == PAYLOAD_TYPE_USER_DATA_UNREGISTERED as usize
            && size >= PAYLOAD_LEN
            && payload[..16] == UUID
        {
            let mut us = [0u8; 8];
            us.copy_from_slice(&payload[16..24]);
            let mut frame = [0u8; 4];
            frame.copy_from_slice(&payload[24..28]);
            return Some(ClockSei {
                wallclock_us: u64::from_be_bytes(us),
                frame: u32::from_be_bytes(frame),
            });
        }
    }
    None
}

/// Inserts emulation-prevention bytes: 00 00 followed by 00..=03 becomes 00 00 03 xx.
pub fn escape_into(rbsp: &[u8], out: &mut Vec<u8>) {
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
}

/// Removes emulation-prevention bytes (the 03 in 00 00 03).
pub fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_bytes() {
        let nal = build(ClockSei {
            wallclock_us: 0x0102_0304_0506_0708,
            frame: 0x0a0b_0c0d,
        });
        let mut want = vec![6, 5, 28];
        want.extend_from_slice(b"onair-sei-clock!");
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d, 0x80]);
        assert_eq!(nal, want);
        assert_eq!(parse(&nal).unwrap().frame, 0x0a0b_0c0d);
    }

    #[test]
    fn emulation_prevention_roundtrip() {
        // Zeros in the clock force escapes.
        let sei = ClockSei {
            wallclock_us: 0x0000_0001_0000_0000,
            frame: 0,
        };
        let nal = build(sei);
        assert!(nal
            .windows(3)
            .all(|w| !(w[0] == 0 && w[1] == 0 && w[2] <= 2)));
        assert!(nal.windows(3).any(|w| w == [0, 0, 3]));
        assert_eq!(parse(&nal), Some(sei));
        assert_eq!(unescape(&[0, 0, 3, 1, 0, 0, 3, 0]), vec![0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn other_nals_and_other_seis_are_ignored() {
        assert_eq!(parse(&[0x65, 1, 2, 3]), None);
        assert_eq!(parse(&[]), None);
        // A recovery-point SEI (type 6) followed by ours.
        let ours = build(ClockSei {
            wallclock_us: 7,
            frame: 9,
        });
        let mut nal = vec![6, 6, 1, 0x84];
        nal.extend_from_slice(&ours[1..]);
        assert_eq!(parse(&nal).map(|s| s.frame), Some(9));
        // Truncated: no panic, no result.
        assert_eq!(parse(&ours[..20]), None);
        // Another UUID.
        let mut other = ours.clone();
        other[3] ^= 1;
        assert_eq!(parse(&other), None);
    }
}
