//! H.264 access units to RTP payloads (RFC 6184, packetization-mode 1): SPS and PPS in
//! one STAP-A before each IDR, single NAL unit packets, FU-A for NAL units past the MTU.
//! Built once per frame and shared by every viewer; never reads a socket or a clock.

use std::sync::Arc;

use onair_shared::avc::{nal_type, split_length_prefixed, AvcDecoderConfig, AvcError};

const STAP_A: u8 = 24;
const FU_A: u8 = 28;
const NAL_AUD: u8 = 9;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

/// The RTP payloads of one access unit, in order; the last one carries the marker bit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packetized {
    pub payloads: Vec<Arc<[u8]>>,
}

/// Splits `au` (length-prefixed NAL units, as `Frame::data` holds them) into payloads of
/// at most `max_payload` bytes. With `config` and `keyframe`, its SPS/PPS go first, so
/// a viewer can start at any keyframe. Access unit delimiters are left out (RTP marks
/// the frame end itself); in-band SPS/PPS are replaced by the configuration's.
pub fn packetize(
    au: &[u8],
    config: &AvcDecoderConfig,
    keyframe: bool,
    max_payload: usize,
) -> Result<Packetized, AvcError> {
    let max_payload = max_payload.max(16);
    let mut out = Vec::new();
    if keyframe {
        let sets: Vec<&[u8]> = config
            .sps
            .iter()
            .chain(config.pps.iter())
            .map(Vec::as_slice)
            .filter(|n| !n.is_empty())
            .collect();
        let stap_len = 1 + sets.iter().map(|n| 2 + n.len()).sum::<usize>();
        if !sets.is_empty() && stap_len <= max_payload {
            let nri = sets.iter().map(|n| n[0] & 0x60).max().unwrap_or(0x60);
            let mut stap = Vec::with_capacity(stap_len);
            stap.push(nri | STAP_A);
            for n in &sets {
                stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
                stap.extend_from_slice(n);
            }
            out.push(Arc::from(stap));
        } else {
            for n in sets {
                push_nal(&mut out, n, max_payload);
            }
        }
    }
    for nal in split_length_prefixed(au, config.nalu_length_size)? {
        if nal.is_empty() {
            continue;
        }
        let t = nal_type(nal);
        if t == NAL_AUD || (keyframe && (t == NAL_SPS || t == NAL_PPS)) {
            continue;
        }
        push_nal(&mut out, nal, max_payload);
    }
    Ok(Packetized { payloads: out })
}

fn push_nal(out: &mut Vec<Arc<[u8]>>, nal: &[u8], max_payload: usize) {
    if nal.len() <= max_payload {
        out.push(Arc::from(nal));
        return;
    }
    let indicator = (nal[0] & 0xE0) | FU_A;
    let typ = nal[0] & 0x1F;
    let body = &nal[1..];
    let chunk = max_payload - 2;
    let n = body.len().div_ceil(chunk);
    for (i, piece) in body.chunks(chunk).enumerate() {
        let mut header = typ;
        if i == 0 {
            header |= 0x80;
        }
        if i + 1 == n {
            header |= 0x40;
        }
        let mut p = Vec::with_capacity(2 + piece.len());
        p.push(indicator);
        p.push(header);
        p.extend_from_slice(piece);
        out.push(Arc::from(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AvcDecoderConfig {
        AvcDecoderConfig {
            profile: 66,
            compatibility: 0xc0,
            level: 30,
            nalu_length_size: 4,
            sps: vec![vec![0x67, 0x42, 0xc0, 0x1e]],
            pps: vec![vec![0x68, 0xce, 0x3c, 0x80]],
        }
    }

    fn au(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }

    #[test]
    fn keyframe_starts_with_a_stap_a_of_sps_and_pps() {
        let idr = [0x65, 1, 2, 3];
        let p = packetize(&au(&[&[0x09, 0xf0], &idr]), &config(), true, 1200).unwrap();
        assert_eq!(p.payloads.len(), 2);
        assert_eq!(
            &*p.payloads[0],
            &[0x78, 0, 4, 0x67, 0x42, 0xc0, 0x1e, 0, 4, 0x68, 0xce, 0x3c, 0x80][..]
        );
        assert_eq!(&*p.payloads[1], &idr[..]);
    }

    #[test]
    fn large_nal_units_become_fu_a_fragments_that_rebuild_the_unit() {
        let mut nal = vec![0x41];
        nal.extend((0..3000u32).map(|i| i as u8));
        let p = packetize(&au(&[&nal]), &config(), false, 1000).unwrap();
        assert_eq!(p.payloads.len(), 4);
        assert!(p.payloads.iter().all(|x| x.len() <= 1000));
        assert_eq!(p.payloads[0][..2], [0x40 | FU_A, 0x80 | 1]);
        assert_eq!(p.payloads[3][1], 0x40 | 1);
        assert_eq!(p.payloads[1][1], 1);
        let rebuilt: Vec<u8> = std::iter::once(0x41)
            .chain(p.payloads.iter().flat_map(|x| x[2..].iter().copied()))
            .collect();
        assert_eq!(rebuilt, nal);
    }

    #[test]
    fn a_truncated_access_unit_is_an_error() {
        let mut a = au(&[&[0x41, 1, 2, 3]]);
        a.truncate(6);
        assert!(packetize(&a, &config(), false, 1200).is_err());
    }
}
