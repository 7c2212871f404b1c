//! Bounded mutation tests of the parsers that read bytes from outside (Y4M, WAV and FLV
//! files, MP4 sample entries, SEI from any stream): valid inputs with flipped bytes, truncations and junk must
//! give values or errors, never a panic. Deterministic (xorshift), a few thousand cases each.

use crate::mux::sei;
use crate::source::wav::{encode_wav, WavFormat, WavReader};
use crate::source::y4m::Y4mReader;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Mutations of `seed`: byte flips, truncation, insertion of junk.
fn mutants(seed: &[u8], count: usize, mut f: impl FnMut(&[u8])) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..count {
        let mut m = seed.to_vec();
        for _ in 0..1 + rng.below(4) {
            match rng.below(3) {
                0 if !m.is_empty() => {
                    let i = rng.below(m.len());
                    m[i] = rng.next() as u8;
                }
                1 => m.truncate(rng.below(m.len() + 1)),
                _ => {
                    let i = rng.below(m.len() + 1);
                    m.insert(i, rng.next() as u8);
                }
            }
        }
        f(&m);
    }
}

#[test]
fn y4m_never_panics() {
    let mut seed = b"YUV4MPEG2 W8 H4 F30:1 Ip C420jpeg\nFRAME\n".to_vec();
    seed.extend_from_slice(&[100; 48]);
    mutants(&seed, 3000, |m| {
        if let Ok(mut r) = Y4mReader::new(m, "fuzz") {
            for _ in 0..4 {
                if !matches!(r.next_frame(), Ok(Some(_))) {
                    break;
                }
            }
        }
    });
}

#[test]
fn wav_never_panics() {
    let seed = encode_wav(
        WavFormat {
            sample_rate: 48_000,
            channels: 2,
        },
        &[1, -1, 300, -300, 7, 8],
    );
    mutants(&seed, 3000, |m| {
        if let Ok(mut r) = WavReader::new(m, "fuzz") {
            let _ = r.read_all(1000);
        }
    });
}

#[test]
fn sei_never_panics() {
    let seed = sei::build(sei::ClockSei {
        wallclock_us: 1_700_000_000_000_000,
        frame: 42,
    });
    let mut parsed = 0;
    mutants(&seed, 5000, |m| {
        if sei::parse(m).is_some() {
            parsed += 1;
        }
        let _ = sei::unescape(m);
    });
    assert!(
        parsed > 0,
        "no mutant kept a readable clock: the seed itself is unreadable?"
    );
}

#[test]
fn flv_file_source_never_panics() {
    use crate::mux::flv;
    use crate::source::file_flv::FlvFileSource;
    use crate::source::EncodedSource;
    use onair_shared::avc::AvcDecoderConfig;
    use onair_shared::flv::{encode_tag, header, TAG_AUDIO, TAG_VIDEO};
    let cfg = AvcDecoderConfig::from_parameter_sets(&[0x67, 0x42, 0xc0, 0x1e, 0xd9], &[0x68, 0xce])
        .expect("config");
    let mut seed = header(true, true).to_vec();
    seed.extend_from_slice(&encode_tag(TAG_VIDEO, 0, &flv::avc_sequence_header(&cfg)));
    seed.extend_from_slice(&encode_tag(
        TAG_AUDIO,
        0,
        &flv::aac_sequence_header(&[0x12, 0x10]),
    ));
    seed.extend_from_slice(&encode_tag(
        TAG_VIDEO,
        0,
        &flv::avc_frame(true, 0, [&[0x65u8, 1, 2][..]]),
    ));
    seed.extend_from_slice(&encode_tag(TAG_AUDIO, 0, &flv::aac_frame(&[1, 2])));
    let dir = std::env::temp_dir().join(format!("onair-pusher-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("f.flv");
    mutants(&seed, 500, |m| {
        std::fs::write(&path, m).expect("write");
        if let Ok(mut s) = FlvFileSource::open(&path) {
            for _ in 0..16 {
                if !matches!(s.next_frame(), Ok(Some(_))) {
                    break;
                }
            }
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mp4_sample_entry_walk_never_panics() {
    use crate::source::mp4_check::{check_children, sample_entries};
    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }
    let mut tkhd = vec![0u8; 20];
    tkhd[12..16].copy_from_slice(&1u32.to_be_bytes());
    let mut entry = vec![0u8; 78];
    entry[24..28].copy_from_slice(&[1, 64, 0, 240]);
    entry.extend_from_slice(&boxed(b"hvcC", &[1, 2, 3, 4, 5, 6]));
    let mut stsd = vec![0u8, 0, 0, 0, 0, 0, 0, 1];
    stsd.extend_from_slice(&boxed(b"hvc1", &entry));
    let stbl = boxed(b"stbl", &boxed(b"stsd", &stsd));
    let mut trak = boxed(b"tkhd", &tkhd);
    trak.extend_from_slice(&boxed(b"mdia", &boxed(b"minf", &stbl)));
    let moov = boxed(b"trak", &trak);
    assert_eq!(sample_entries(&moov).len(), 1);
    // The walk is run on unchecked bytes too: it must stop, not trust a size.
    mutants(&moov, 3000, |m| {
        let _ = check_children(m, b"moov", 1);
        let _ = sample_entries(m);
    });
}
