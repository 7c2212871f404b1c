//! The init segment: ftyp + moov (mvhd, a trak per track with an empty sample table and
//! one sample entry, mvex/trex), and the RFC 6381 codec string of each track for the
//! HLS `CODECS` attribute. Configs are checked with onair's parsers, never trusted blind.

use super::boxes::BoxWriter;
use super::{ConfigError, Fmp4Error, Track, TrackMedia};
use crate::Codec;
use bytes::Bytes;

/// ftyp + moov for these tracks. Track ids must be unique and non-zero.
pub fn init_segment(tracks: &[Track]) -> Result<Bytes, Fmp4Error> {
    if tracks.is_empty() {
        return Err(Fmp4Error::NoTracks);
    }
    for (i, t) in tracks.iter().enumerate() {
        if t.id == 0 || tracks[..i].iter().any(|o| o.id == t.id) {
            return Err(Fmp4Error::BadTrackId(t.id));
        }
        if t.timescale == 0 {
            return Err(Fmp4Error::ZeroTimescale(t.id));
        }
    }
    let mut w = BoxWriter::with_capacity(1024);
    let ftyp = w.open(b"ftyp");
    w.bytes(b"iso6");
    w.u32(0);
    for brand in [b"iso6", b"cmfc", b"mp41"] {
        w.bytes(brand);
    }
    w.close(ftyp)?;

    let moov = w.open(b"moov");
    let mvhd = w.open_full(b"mvhd", 0, 0);
    w.u32(0); // creation time
    w.u32(0); // modification time
    w.u32(1000); // timescale
    w.u32(0); // duration: unknown (fragmented)
    w.u32(0x0001_0000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(10);
    w.unity_matrix();
    w.zeros(24);
    let next_track = tracks.iter().map(|t| t.id).max().unwrap_or(0);
    w.u32(next_track.saturating_add(1));
    w.close(mvhd)?;
    for t in tracks {
        trak(&mut w, t)?;
    }
    let mvex = w.open(b"mvex");
    for t in tracks {
        let trex = w.open_full(b"trex", 0, 0);
        w.u32(t.id);
        w.u32(1); // sample description index
        w.u32(0); // default duration
        w.u32(0); // default size
        w.u32(0); // default flags: every trun states its own
        w.close(trex)?;
    }
    w.close(mvex)?;
    w.close(moov)?;
    Ok(Bytes::from(w.buf))
}

fn trak(w: &mut BoxWriter, t: &Track) -> Result<(), Fmp4Error> {
    let is_video = matches!(t.media, TrackMedia::Video { .. });
    let trak = w.open(b"trak");
    let tkhd = w.open_full(b"tkhd", 0, 0x3); // enabled, in movie
    w.u32(0);
    w.u32(0);
    w.u32(t.id);
    w.u32(0);
    w.u32(0); // duration
    w.zeros(8);
    w.u16(0); // layer
    w.u16(0); // alternate group
    w.u16(if is_video { 0 } else { 0x0100 });
    w.u16(0);
    w.unity_matrix();
    let (width, height) = match t.media {
        TrackMedia::Video { width, height } => (width, height),
        TrackMedia::Audio { .. } => (0, 0),
    };
    w.u32((width as u32) << 16);
    w.u32((height as u32) << 16);
    w.close(tkhd)?;

    let mdia = w.open(b"mdia");
    let mdhd = w.open_full(b"mdhd", 0, 0);
    w.u32(0);
    w.u32(0);
    w.u32(t.timescale);
    w.u32(0);
    w.u16(0x55c4); // "und"
    w.u16(0);
    w.close(mdhd)?;
    let hdlr = w.open_full(b"hdlr", 0, 0);
    w.u32(0);
    w.bytes(if is_video { b"vide" } else { b"soun" });
    w.zeros(12);
    w.bytes(if is_video {
        b"VideoHandler\0"
    } else {
        b"SoundHandler\0"
    });
    w.close(hdlr)?;

    let minf = w.open(b"minf");
    if is_video {
        let vmhd = w.open_full(b"vmhd", 0, 1);
        w.zeros(8);
        w.close(vmhd)?;
    } else {
        let smhd = w.open_full(b"smhd", 0, 0);
        w.zeros(4);
        w.close(smhd)?;
    }
    let dinf = w.open(b"dinf");
    let dref = w.open_full(b"dref", 0, 0);
    w.u32(1);
    let url = w.open_full(b"url ", 0, 1); // media is in this file
    w.close(url)?;
    w.close(dref)?;
    w.close(dinf)?;

    let stbl = w.open(b"stbl");
    let stsd = w.open_full(b"stsd", 0, 0);
    w.u32(1);
    sample_entry(w, t)?;
    w.close(stsd)?;
    for kind in [b"stts", b"stsc", b"stco"] {
        let b = w.open_full(kind, 0, 0);
        w.u32(0);
        w.close(b)?;
    }
    let stsz = w.open_full(b"stsz", 0, 0);
    w.u32(0);
    w.u32(0);
    w.close(stsz)?;
    w.close(stbl)?;
    w.close(minf)?;
    w.close(mdia)?;
    w.close(trak)?;
    Ok(())
}

fn config_error(t: &Track, source: impl Into<ConfigError>) -> Fmp4Error {
    Fmp4Error::Config {
        track_id: t.id,
        codec: t.codec.name(),
        source: source.into(),
    }
}

fn sample_entry(w: &mut BoxWriter, t: &Track) -> Result<(), Fmp4Error> {
    let cfg = &t.config[..];
    match (t.codec, t.media) {
        (
            Codec::H264 | Codec::Hevc | Codec::Av1 | Codec::Vp9,
            TrackMedia::Video { width, height },
        ) => {
            let (entry, child, body): (&[u8; 4], &[u8; 4], &[u8]) = match t.codec {
                Codec::H264 => {
                    crate::avc::AvcDecoderConfig::parse(cfg).map_err(|e| config_error(t, e))?;
                    (b"avc1", b"avcC", cfg)
                }
                Codec::Hevc => {
                    crate::hevc::HevcDecoderConfig::parse(cfg).map_err(|e| config_error(t, e))?;
                    (b"hvc1", b"hvcC", cfg)
                }
                Codec::Av1 => {
                    crate::av1::Av1Config::parse(cfg).map_err(|e| config_error(t, e))?;
                    (b"av01", b"av1C", cfg)
                }
                _ => {
                    crate::vp9::VpcConfig::parse(cfg).map_err(|e| config_error(t, e))?;
                    (b"vp09", b"vpcC", vpcc_record(cfg))
                }
            };
            let e = w.open(entry);
            w.zeros(6);
            w.u16(1); // data reference index
            w.zeros(16); // pre_defined, reserved
            w.u16(width);
            w.u16(height);
            w.u32(0x0048_0000); // 72 dpi
            w.u32(0x0048_0000);
            w.u32(0);
            w.u16(1); // frame count
            w.zeros(32); // compressor name
            w.u16(0x0018); // depth
            w.u16(0xffff); // pre_defined = -1
            let c = if t.codec == Codec::Vp9 {
                w.open_full(child, 1, 0)
            } else {
                w.open(child)
            };
            w.bytes(body);
            w.close(c)?;
            w.close(e)?;
        }
        (
            Codec::Aac | Codec::Mp3 | Codec::Opus | Codec::Flac,
            TrackMedia::Audio {
                sample_rate,
                channels,
            },
        ) => {
            let entry: &[u8; 4] = match t.codec {
                Codec::Aac | Codec::Mp3 => b"mp4a",
                Codec::Opus => b"Opus",
                _ => b"fLaC",
            };
            // Parse before opening the entry, so an error leaves no half-written box.
            let opus = if t.codec == Codec::Opus {
                Some(crate::opus::OpusHead::parse(cfg).map_err(|e| config_error(t, e))?)
            } else {
                None
            };
            let flac = if t.codec == Codec::Flac {
                crate::flac::FlacStreamInfo::parse(cfg).map_err(|e| config_error(t, e))?;
                Some(streaminfo_block(cfg))
            } else {
                None
            };
            if t.codec == Codec::Aac {
                crate::aac::AudioSpecificConfig::parse(cfg).map_err(|e| config_error(t, e))?;
            }
            let e = w.open(entry);
            w.zeros(6);
            w.u16(1);
            w.zeros(8);
            let channel_count = opus.as_ref().map(|h| h.channels as u16).unwrap_or(channels);
            w.u16(channel_count);
            w.u16(16); // sample size
            w.u32(0);
            // 16.16 fixed point; a rate above 65535 does not fit and is written as 0
            // (the decoder config has the real one).
            let rate = if t.codec == Codec::Opus {
                48000
            } else {
                sample_rate
            };
            w.u32(if rate <= 0xffff { rate << 16 } else { 0 });
            match t.codec {
                Codec::Aac | Codec::Mp3 => esds(w, t, cfg)?,
                Codec::Opus => {
                    let h = opus.expect("parsed above for Opus");
                    let b = w.open(b"dOps");
                    w.u8(0);
                    w.u8(h.channels);
                    w.u16(h.pre_skip);
                    w.u32(h.input_sample_rate);
                    w.u16(h.output_gain as u16);
                    w.u8(h.mapping_family);
                    if let Some(m) = &h.mapping {
                        w.u8(m.stream_count);
                        w.u8(m.coupled_count);
                        w.bytes(&m.channel_mapping);
                    }
                    w.close(b)?;
                }
                _ => {
                    let info = flac.expect("parsed above for FLAC");
                    let b = w.open_full(b"dfLa", 0, 0);
                    w.u8(0x80); // last metadata block, type 0 (STREAMINFO)
                    w.u24(info.len() as u32);
                    w.bytes(info);
                    w.close(b)?;
                }
            }
            w.close(e)?;
        }
        (Codec::H264 | Codec::Hevc | Codec::Av1 | Codec::Vp9, TrackMedia::Audio { .. }) => {
            return Err(config_error(
                t,
                ConfigError::WrongMedia(t.codec.name(), "video"),
            ))
        }
        (Codec::Aac | Codec::Mp3 | Codec::Opus | Codec::Flac, TrackMedia::Video { .. }) => {
            return Err(config_error(
                t,
                ConfigError::WrongMedia(t.codec.name(), "audio"),
            ))
        }
        (other, _) => {
            return Err(Fmp4Error::Unsupported {
                track_id: t.id,
                codec: other.name(),
            })
        }
    }
    Ok(())
}

/// The vpcC record without the FullBox version and flags FFmpeg puts before it (the same
/// test as `VpcConfig::parse`).
fn vpcc_record(cfg: &[u8]) -> &[u8] {
    if cfg.len() >= 12 && cfg[..4] == [1, 0, 0, 0] {
        &cfg[4..]
    } else {
        cfg
    }
}

/// The 34 STREAMINFO bytes out of any form `FlacStreamInfo::parse` accepted.
fn streaminfo_block(cfg: &[u8]) -> &[u8] {
    let mut d = cfg;
    if d.starts_with(b"fLaC") {
        d = &d[4..];
    }
    if d.len() != 34 {
        d = d.get(4..).unwrap_or(&[]);
    }
    d.get(..34).unwrap_or(d)
}

/// esds (ISO 14496-14): ES descriptor > decoder config (object type 0x40 AAC with its
/// AudioSpecificConfig, or 0x6B MPEG-1 audio for MP3) + SL config.
fn esds(w: &mut BoxWriter, t: &Track, asc: &[u8]) -> Result<(), Fmp4Error> {
    let mut dcd = BoxWriter::with_capacity(32);
    dcd.u8(if t.codec == Codec::Mp3 { 0x6b } else { 0x40 });
    dcd.u8((0x05 << 2) | 1); // audio stream
    dcd.u24(0); // buffer size
    dcd.u32(0); // max bitrate
    dcd.u32(0); // average bitrate
    if t.codec == Codec::Aac {
        dcd.descriptor(0x05, asc)?;
    }
    let mut es = BoxWriter::with_capacity(48);
    es.u16(t.id.min(0xffff) as u16);
    es.u8(0);
    es.descriptor(0x04, &dcd.buf)?;
    es.descriptor(0x06, &[0x02])?;
    let b = w.open_full(b"esds", 0, 0);
    w.descriptor(0x03, &es.buf)?;
    w.close(b)
}

/// The RFC 6381 codec string of a track (`avc1.64001f`, `hvc1.1.6.L93.B0`, `av01.0.04M.08`,
/// `vp09.00.31.08`, `mp4a.40.2`, `mp4a.6B`, `opus`, `fLaC`), for the HLS `CODECS`
/// attribute; `None` when the config is too short to say.
pub fn codec_string(t: &Track) -> Option<String> {
    let c = &t.config[..];
    Some(match t.codec {
        Codec::H264 => format!("avc1.{:02x}{:02x}{:02x}", c.get(1)?, c.get(2)?, c.get(3)?),
        Codec::Hevc => {
            let b1 = *c.get(1)?;
            let space = ["", "A", "B", "C"][(b1 >> 6) as usize];
            let tier = if b1 & 0x20 != 0 { 'H' } else { 'L' };
            let compat = u32::from_be_bytes(c.get(2..6)?.try_into().ok()?).reverse_bits();
            let constraints = c.get(6..12)?;
            let keep = constraints
                .iter()
                .rposition(|&b| b != 0)
                .map_or(0, |i| i + 1);
            let mut s = format!("hvc1.{space}{}.{compat:X}.{tier}{}", b1 & 0x1f, c.get(12)?);
            for b in &constraints[..keep] {
                s.push_str(&format!(".{b:X}"));
            }
            s
        }
        Codec::Av1 => {
            let a = crate::av1::Av1Config::parse(c).ok()?;
            format!(
                "av01.{}.{:02}{}.{:02}",
                a.seq_profile,
                a.seq_level_idx_0,
                if a.seq_tier_0 { 'H' } else { 'M' },
                a.bit_depth()
            )
        }
        Codec::Vp9 => {
            let v = crate::vp9::VpcConfig::parse(c).ok()?;
            format!("vp09.{:02}.{:02}.{:02}", v.profile, v.level, v.bit_depth)
        }
        Codec::Aac => {
            let a = crate::aac::AudioSpecificConfig::parse(c).ok()?;
            format!("mp4a.40.{}", a.object_type)
        }
        Codec::Mp3 => "mp4a.6B".to_string(),
        Codec::Opus => "opus".to_string(),
        Codec::Flac => "fLaC".to_string(),
        _ => return None,
    })
}
