//! AV1 configuration: the AV1CodecConfigurationRecord (av1C) and the sequence header OBU it
//! carries (profile, level, maximum frame size), plus OBU framing of temporal units.
//! Parsers take bytes and return values or a typed error; they never panic on bad input.

use crate::bits::{BitReader, EndOfBits};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Av1Error {
    #[error("av1C shorter than 4 bytes ({0})")]
    ConfigTruncated(usize),
    #[error("av1C marker/version byte {0:#04x}, expected 0x81")]
    ConfigVersion(u8),
    #[error("OBU at byte {at} malformed: {why}")]
    Obu { at: usize, why: &'static str },
    #[error("no sequence header OBU")]
    NoSequenceHeader,
    #[error("AV1 sequence header malformed: {0}")]
    SequenceHeader(&'static str),
}

impl From<EndOfBits> for Av1Error {
    fn from(_: EndOfBits) -> Self {
        Av1Error::SequenceHeader("truncated")
    }
}

pub const OBU_SEQUENCE_HEADER: u8 = 1;
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;

/// AV1CodecConfigurationRecord (AV1 ISOBMFF binding, 2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Av1Config {
    /// 0 = Main, 1 = High, 2 = Professional.
    pub seq_profile: u8,
    /// Level of operating point 0 (0 = 2.0, 1 = 2.1, ... 8 = 4.0, ...; 31 = unconstrained).
    pub seq_level_idx_0: u8,
    pub seq_tier_0: bool,
    pub high_bitdepth: bool,
    pub twelve_bit: bool,
    pub monochrome: bool,
    pub chroma_subsampling_x: bool,
    pub chroma_subsampling_y: bool,
    pub chroma_sample_position: u8,
    /// initial_presentation_delay_minus_one + 1, when present.
    pub initial_presentation_delay: Option<u8>,
    /// The configOBUs as sent (normally one sequence header OBU).
    pub config_obus: Vec<u8>,
}

impl Av1Config {
    pub fn parse(data: &[u8]) -> Result<Self, Av1Error> {
        if data.len() < 4 {
            return Err(Av1Error::ConfigTruncated(data.len()));
        }
        if data[0] != 0x81 {
            return Err(Av1Error::ConfigVersion(data[0]));
        }
        Ok(Self {
            seq_profile: data[1] >> 5,
            seq_level_idx_0: data[1] & 0x1f,
            seq_tier_0: data[2] & 0x80 != 0,
            high_bitdepth: data[2] & 0x40 != 0,
            twelve_bit: data[2] & 0x20 != 0,
            monochrome: data[2] & 0x10 != 0,
            chroma_subsampling_x: data[2] & 0x08 != 0,
            chroma_subsampling_y: data[2] & 0x04 != 0,
            chroma_sample_position: data[2] & 0x03,
            initial_presentation_delay: (data[3] & 0x10 != 0).then_some((data[3] & 0x0f) + 1),
            config_obus: data[4..].to_vec(),
        })
    }

    pub fn bit_depth(&self) -> u8 {
        match (self.high_bitdepth, self.twelve_bit) {
            (false, _) => 8,
            (true, false) => 10,
            (true, true) => 12,
        }
    }

    /// The codec string of the AV1 ISOBMFF binding, e.g. `av01.0.05M.10`.
    pub fn codec_string(&self) -> String {
        let tier = if self.seq_tier_0 { 'H' } else { 'M' };
        format!(
            "av01.{}.{:02}{tier}.{:02}",
            self.seq_profile,
            self.seq_level_idx_0,
            self.bit_depth()
        )
    }

    /// The sequence header among the configOBUs.
    pub fn sequence_header(&self) -> Result<Av1SequenceHeader, Av1Error> {
        for obu in obus(&self.config_obus) {
            let obu = obu?;
            if obu.obu_type == OBU_SEQUENCE_HEADER {
                return Av1SequenceHeader::parse(obu.payload);
            }
        }
        Err(Av1Error::NoSequenceHeader)
    }
}

/// One OBU of a byte sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obu<'a> {
    pub obu_type: u8,
    pub temporal_id: u8,
    pub spatial_id: u8,
    /// The OBU payload (after header and size).
    pub payload: &'a [u8],
}

/// Iterates the OBUs of a temporal unit or of configOBUs. An OBU without a size field
/// runs to the end. After the first error the iterator ends.
pub fn obus(data: &[u8]) -> impl Iterator<Item = Result<Obu<'_>, Av1Error>> {
    let mut at = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || at >= data.len() {
            return None;
        }
        let r = read_obu(data, at);
        match &r {
            Ok((_, next)) => at = *next,
            Err(_) => failed = true,
        }
        Some(r.map(|(o, _)| o))
    })
}

fn read_obu(data: &[u8], start: usize) -> Result<(Obu<'_>, usize), Av1Error> {
    let err = |why| Av1Error::Obu { at: start, why };
    let header = data[start];
    if header & 0x80 != 0 {
        return Err(err("forbidden bit set"));
    }
    let obu_type = (header >> 3) & 0x0f;
    let has_extension = header & 0x04 != 0;
    let has_size = header & 0x02 != 0;
    let mut at = start + 1;
    let (mut temporal_id, mut spatial_id) = (0, 0);
    if has_extension {
        let ext = *data.get(at).ok_or(err("extension header truncated"))?;
        temporal_id = ext >> 5;
        spatial_id = (ext >> 3) & 0x03;
        at += 1;
    }
    let size = if has_size {
        let (v, n) = leb128(&data[at..]).ok_or(err("size field malformed"))?;
        at += n;
        v
    } else {
        (data.len() - at) as u64
    };
    let end = (at as u64)
        .checked_add(size)
        .filter(|e| *e <= data.len() as u64)
        .ok_or(err("size runs past the end"))? as usize;
    Ok((
        Obu {
            obu_type,
            temporal_id,
            spatial_id,
            payload: &data[at..end],
        },
        end,
    ))
}

/// leb128() of the AV1 spec: at most 8 bytes; returns the value and bytes used.
fn leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for i in 0..8 {
        let b = *data.get(i)?;
        value |= ((b & 0x7f) as u64) << (i * 7);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The sequence header fields viewers care about (AV1 spec 5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Av1SequenceHeader {
    pub seq_profile: u8,
    pub still_picture: bool,
    pub reduced_still_picture_header: bool,
    /// Level and tier of operating point 0.
    pub seq_level_idx: u8,
    pub seq_tier: bool,
    pub max_frame_width: u32,
    pub max_frame_height: u32,
}

impl Av1SequenceHeader {
    /// Parses a sequence header OBU's payload.
    pub fn parse(payload: &[u8]) -> Result<Self, Av1Error> {
        let mut r = BitReader::new(payload);
        let seq_profile = r.bits(3)? as u8;
        if seq_profile > 2 {
            return Err(Av1Error::SequenceHeader("reserved seq_profile"));
        }
        let still_picture = r.bit()? == 1;
        let reduced = r.bit()? == 1;
        let mut seq_level_idx = 0;
        let mut seq_tier = false;
        if reduced {
            seq_level_idx = r.bits(5)? as u8;
        } else {
            let timing_info_present = r.bit()? == 1;
            let mut decoder_model_info_present = false;
            let mut buffer_delay_length = 0;
            if timing_info_present {
                r.skip(64)?; // num_units_in_display_tick, time_scale
                if r.bit()? == 1 {
                    uvlc(&mut r)?; // num_ticks_per_picture_minus_1
                }
                decoder_model_info_present = r.bit()? == 1;
                if decoder_model_info_present {
                    buffer_delay_length = r.bits(5)? as usize + 1;
                    r.skip(32 + 5 + 5)?;
                }
            }
            let initial_display_delay_present = r.bit()? == 1;
            let operating_points = r.bits(5)? + 1;
            for i in 0..operating_points {
                r.skip(12)?; // operating_point_idc
                let level = r.bits(5)? as u8;
                let tier = level > 7 && r.bit()? == 1;
                if i == 0 {
                    seq_level_idx = level;
                    seq_tier = tier;
                }
                if decoder_model_info_present && r.bit()? == 1 {
                    r.skip(2 * buffer_delay_length + 1)?;
                }
                if initial_display_delay_present && r.bit()? == 1 {
                    r.skip(4)?;
                }
            }
        }
        let width_bits = r.bits(4)? + 1;
        let height_bits = r.bits(4)? + 1;
        let max_frame_width = r.bits(width_bits)? as u64 + 1;
        let max_frame_height = r.bits(height_bits)? as u64 + 1;
        Ok(Self {
            seq_profile,
            still_picture,
            reduced_still_picture_header: reduced,
            seq_level_idx,
            seq_tier,
            max_frame_width: max_frame_width.min(u32::MAX as u64) as u32,
            max_frame_height: max_frame_height.min(u32::MAX as u64) as u32,
        })
    }
}

/// uvlc() of the AV1 spec.
fn uvlc(r: &mut BitReader) -> Result<u32, Av1Error> {
    let mut leading = 0;
    while r.bit()? == 0 {
        leading += 1;
        if leading >= 32 {
            return Ok(u32::MAX);
        }
    }
    let v = r.bits(leading)?;
    Ok(v.saturating_add((1u32 << leading) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eflv::hex;

    /// av1C of 1280x720 yuv420p10le from libaom (FFmpeg 5.1, MP4).
    const AV1C_720P_10BIT: &str = "81054c000a0b0000002d4cffb3cdaf9404";
    /// av1C of 322x182 yuv420p.
    const AV1C_322X182: &str = "81000c000a0b000000043d06d4daf90040";

    #[test]
    fn libaom_720p_10bit() {
        let c = Av1Config::parse(&hex(AV1C_720P_10BIT)).unwrap();
        assert_eq!(
            (c.seq_profile, c.seq_level_idx_0, c.seq_tier_0),
            (0, 5, false)
        );
        assert_eq!(c.bit_depth(), 10);
        assert!(c.chroma_subsampling_x && c.chroma_subsampling_y && !c.monochrome);
        let sh = c.sequence_header().unwrap();
        assert_eq!((sh.max_frame_width, sh.max_frame_height), (1280, 720));
        assert_eq!((sh.seq_profile, sh.seq_level_idx), (0, 5));
        assert!(!sh.still_picture && !sh.reduced_still_picture_header);
        assert_eq!(c.codec_string(), "av01.0.05M.10");
    }

    #[test]
    fn libaom_small() {
        let c = Av1Config::parse(&hex(AV1C_322X182)).unwrap();
        assert_eq!((c.seq_profile, c.seq_level_idx_0, c.bit_depth()), (0, 0, 8));
        let sh = c.sequence_header().unwrap();
        assert_eq!((sh.max_frame_width, sh.max_frame_height), (322, 182));
    }

    #[test]
    fn obu_framing() {
        // Temporal delimiter (size 0), then a sequence header with an extension byte.
        let data = [0x12, 0x00, 0x0e, 0x40, 0x02, 0xaa, 0xbb];
        let got: Vec<_> = obus(&data).map(|o| o.unwrap()).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].obu_type, got[0].payload.len()),
            (OBU_TEMPORAL_DELIMITER, 0)
        );
        assert_eq!(
            (got[1].obu_type, got[1].temporal_id, got[1].payload),
            (1, 2, &[0xaa, 0xbb][..])
        );
        // A size past the end, a forbidden bit, an endless leb128.
        assert!(obus(&[0x12, 0x05, 0x00]).next().unwrap().is_err());
        assert!(obus(&[0x92, 0x00]).next().unwrap().is_err());
        assert!(
            obus(&[0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
                .next()
                .unwrap()
                .is_err()
        );
        assert_eq!(
            obus(&[0x92, 0x00, 0x12, 0x00]).count(),
            1,
            "stops after an error"
        );
    }

    #[test]
    fn bad_config_is_an_error_not_a_panic() {
        let full = hex(AV1C_720P_10BIT);
        for n in 0..full.len() {
            if let Ok(c) = Av1Config::parse(&full[..n]) {
                let _ = c.sequence_header();
            }
        }
        assert_eq!(
            Av1Config::parse(&full[..3]),
            Err(Av1Error::ConfigTruncated(3))
        );
        assert_eq!(
            Av1Config::parse(&[1, 0, 0, 0]),
            Err(Av1Error::ConfigVersion(1))
        );
        let no_sh = Av1Config::parse(&[0x81, 0, 0, 0, 0x12, 0x00]).unwrap();
        assert_eq!(no_sh.sequence_header(), Err(Av1Error::NoSequenceHeader));
    }
}
