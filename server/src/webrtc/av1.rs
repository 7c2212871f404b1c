//! AV1 temporal units to RTP payloads (the AV1 RTP payload format, 4.4): temporal
//! delimiters dropped, each OBU without its size field as a length-prefixed element (W=0),
//! split across packets with the Z/Y continuation bits, N on a keyframe that starts a coded
//! video sequence (with the configuration's sequence header put first when the temporal
//! unit lacks one). Built once per frame; never reads a socket or a clock.

use std::sync::Arc;

use onair_shared::av1::{obus, Av1Config, Av1Error, OBU_SEQUENCE_HEADER, OBU_TEMPORAL_DELIMITER};

const OBU_TILE_LIST: u8 = 8;

/// The RTP payloads of one temporal unit, in order (the last one ends the frame).
pub fn packetize(
    tu: &[u8],
    config: &Av1Config,
    keyframe: bool,
    max_payload: usize,
) -> Result<Vec<Arc<[u8]>>, Av1Error> {
    let max_payload = max_payload.max(8);
    let mut elements: Vec<Vec<u8>> = Vec::new();
    let mut has_seq = false;
    for obu in obus(tu) {
        let obu = obu?;
        if obu.obu_type == OBU_TEMPORAL_DELIMITER || obu.obu_type == OBU_TILE_LIST {
            continue;
        }
        has_seq |= obu.obu_type == OBU_SEQUENCE_HEADER;
        elements.push(element(
            obu.obu_type,
            obu.temporal_id,
            obu.spatial_id,
            obu.payload,
        ));
    }
    if keyframe && !has_seq {
        if let Some(Ok(seq)) = obus(&config.config_obus)
            .find(|o| o.as_ref().is_ok_and(|o| o.obu_type == OBU_SEQUENCE_HEADER))
        {
            elements.insert(
                0,
                element(seq.obu_type, seq.temporal_id, seq.spatial_id, seq.payload),
            );
            has_seq = true;
        }
    }
    let new_sequence = keyframe && has_seq;
    let mut out: Vec<Arc<[u8]>> = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    let mut z = false;
    let flush = |body: &mut Vec<u8>, z: &mut bool, y: bool, out: &mut Vec<Arc<[u8]>>| {
        let n = new_sequence && out.is_empty();
        let header = (u8::from(*z) << 7) | (u8::from(y) << 6) | (u8::from(n) << 3);
        let mut p = Vec::with_capacity(1 + body.len());
        p.push(header);
        p.append(body);
        out.push(Arc::from(p));
        *z = y;
    };
    for e in &elements {
        let mut rest: &[u8] = e;
        while !rest.is_empty() {
            // Room for a 2-byte length and at least one byte, or start a new packet.
            if max_payload - 1 - body.len() < 3 {
                flush(&mut body, &mut z, false, &mut out);
            }
            let room = max_payload - 1 - body.len();
            let take = if rest.len() + leb128_len(rest.len()) <= room {
                rest.len()
            } else {
                room - 2
            };
            write_leb128(&mut body, take);
            body.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if !rest.is_empty() {
                flush(&mut body, &mut z, true, &mut out);
            }
        }
    }
    if !body.is_empty() {
        flush(&mut body, &mut z, false, &mut out);
    }
    Ok(out)
}

/// An OBU without its size field (obu_has_size_field = 0).
fn element(obu_type: u8, temporal_id: u8, spatial_id: u8, payload: &[u8]) -> Vec<u8> {
    let ext = temporal_id != 0 || spatial_id != 0;
    let mut e = Vec::with_capacity(2 + payload.len());
    e.push((obu_type << 3) | if ext { 0x04 } else { 0 });
    if ext {
        e.push((temporal_id << 5) | (spatial_id << 3));
    }
    e.extend_from_slice(payload);
    e
}

fn leb128_len(v: usize) -> usize {
    let mut n = 1;
    let mut v = v >> 7;
    while v > 0 {
        n += 1;
        v >>= 7;
    }
    n
}

fn write_leb128(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obu(t: u8, payload: &[u8]) -> Vec<u8> {
        let mut o = vec![(t << 3) | 0x02];
        write_leb128(&mut o, payload.len());
        o.extend_from_slice(payload);
        o
    }

    fn config() -> Av1Config {
        Av1Config {
            seq_profile: 0,
            seq_level_idx_0: 4,
            seq_tier_0: false,
            high_bitdepth: false,
            twelve_bit: false,
            monochrome: false,
            chroma_subsampling_x: true,
            chroma_subsampling_y: true,
            chroma_sample_position: 0,
            initial_presentation_delay: None,
            config_obus: obu(OBU_SEQUENCE_HEADER, &[0, 0, 0, 9]),
        }
    }

    /// Rebuilds the OBU elements from packets (Z/Y joins fragments).
    fn depacketize(packets: &[Arc<[u8]>]) -> Vec<Vec<u8>> {
        let mut elements: Vec<Vec<u8>> = Vec::new();
        for p in packets {
            let z = p[0] & 0x80 != 0;
            let mut at = 1;
            let mut first = true;
            while at < p.len() {
                let (mut len, mut shift) = (0usize, 0);
                loop {
                    let b = p[at];
                    at += 1;
                    len |= ((b & 0x7f) as usize) << shift;
                    shift += 7;
                    if b & 0x80 == 0 {
                        break;
                    }
                }
                let piece = &p[at..at + len];
                at += len;
                if first && z {
                    elements.last_mut().unwrap().extend_from_slice(piece);
                } else {
                    elements.push(piece.to_vec());
                }
                first = false;
            }
        }
        elements
    }

    #[test]
    fn keyframes_start_a_sequence_and_fragments_rebuild_the_obus() {
        let frame: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let tu = [obu(OBU_TEMPORAL_DELIMITER, &[]), obu(6, &frame)].concat();
        let p = packetize(&tu, &config(), true, 1000).unwrap();
        assert!(p.len() >= 4 && p.iter().all(|x| x.len() <= 1000));
        assert_eq!(p[0][0] & 0x08, 0x08, "N on the first packet");
        assert!(p[1..].iter().all(|x| x[0] & 0x08 == 0));
        assert_eq!(p[0][0] & 0x80, 0, "first packet is no continuation");
        assert_eq!(p.last().unwrap()[0] & 0x40, 0, "last packet ends its OBU");
        let e = depacketize(&p);
        // The sequence header from av1C first, then the frame OBU, both without size fields.
        assert_eq!(e[0], vec![OBU_SEQUENCE_HEADER << 3, 0, 0, 0, 9]);
        assert_eq!(e[1][0], 6 << 3);
        assert_eq!(&e[1][1..], &frame[..]);
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn inter_frames_carry_no_sequence_header_and_errors_are_errors() {
        let tu = [obu(OBU_TEMPORAL_DELIMITER, &[]), obu(6, &[1, 2, 3])].concat();
        let p = packetize(&tu, &config(), false, 1200).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(&p[0][..], &[0, 4, 6 << 3, 1, 2, 3]);
        assert!(packetize(&[0x32, 0x05, 1], &config(), false, 1200).is_err());
    }
}
