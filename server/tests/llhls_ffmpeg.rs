//! A real peer for the LL-HLS segmenter: an H.264 + AAC stream from Debian's FFmpeg goes
//! through `LlSegmenter` as a publisher's frames would; the rendered LL playlist and the
//! parts alone (as a playlist of their own) must both decode in FFmpeg with no error and
//! the source's timestamps.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use onair_server::llhls::{render, LlSegmenter, LlSegmenterConfig, MediaName};
use onair_shared::aac::AudioTagHeader;
use onair_shared::avc::{VideoTagHeader, AVC_NALU};
use onair_shared::flv::{FlvDemuxer, FlvEvent};
use onair_shared::fmp4::{Sample, Track, TrackMedia};
use onair_shared::Codec;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("onair-llhls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .expect("ffmpeg/ffprobe installed (scripts/install-deps.sh)");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (pts, dts, keyframe) of one stream's packets, in seconds.
fn packets(input: &Path, stream: &str) -> Vec<(f64, f64, bool)> {
    run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", "packet=pts_time,dts_time,flags"])
        .args(["-of", "csv=p=0"])
        .arg(input))
    .lines()
    .filter(|l| !l.trim().is_empty())
    .map(|l| {
        let f: Vec<&str> = l.split(',').collect();
        (
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].starts_with('K'),
        )
    })
    .collect()
}

fn assert_decodes(playlist: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(playlist)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "ffmpeg: {err}"
    );
}

/// The same packets as the source, within 1.5 ms (audio goes from ms to 44.1 kHz ticks).
fn assert_same_packets(src: &Path, ours: &Path, stream: &str) {
    let a = packets(src, stream);
    let b = packets(ours, stream);
    assert_eq!(a.len(), b.len(), "{stream} packet count");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x.0 - y.0).abs() < 0.0015 && (x.1 - y.1).abs() < 0.0015 && x.2 == y.2,
            "{stream} packet {i}: source {x:?}, ours {y:?}"
        );
    }
}

#[test]
fn ffmpeg_plays_the_ll_playlist_and_the_parts_alone() {
    let dir = temp_dir("h264-aac");
    let src = dir.join("src.flv");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t", "3", "-c:v", "libx264", "-preset", "veryfast", "-bf", "2",
        ])
        .args(["-g", "30", "-sc_threshold", "0", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .arg(&src));

    // Demux as ingest would: configs first, then frames in arrival order.
    let mut demux = FlvDemuxer::new(1 << 24);
    demux.push(&std::fs::read(&src).unwrap());
    let (mut avcc, mut asc) = (None, None);
    let mut frames = Vec::new();
    while let Some(ev) = demux.next_event().unwrap() {
        let FlvEvent::Tag(tag) = ev else { continue };
        let ms = tag.timestamp as u64;
        if tag.tag_type == 9 {
            let h = VideoTagHeader::parse(&tag.body).unwrap();
            let payload = tag.body.slice(h.header_len..);
            if h.is_sequence_header() {
                avcc = Some(payload);
            } else if h.packet_type == AVC_NALU {
                let s = Sample {
                    dts: ms * 90,
                    cts_offset: h.composition_time * 90,
                    keyframe: h.is_keyframe(),
                    data: payload,
                };
                frames.push((1, s));
            }
        } else if tag.tag_type == 8 {
            let h = AudioTagHeader::parse(&tag.body).unwrap();
            let payload = tag.body.slice(h.header_len()..);
            if h.is_sequence_header() {
                asc = Some(payload);
            } else {
                let s = Sample {
                    dts: (ms * 44_100 + 500) / 1000,
                    cts_offset: 0,
                    keyframe: true,
                    data: payload,
                };
                frames.push((2, s));
            }
        }
    }
    let tracks = vec![
        Track {
            id: 1,
            codec: Codec::H264,
            timescale: 90_000,
            config: avcc.unwrap(),
            media: TrackMedia::Video {
                width: 320,
                height: 240,
            },
        },
        Track {
            id: 2,
            codec: Codec::Aac,
            timescale: 44_100,
            config: asc.unwrap(),
            media: TrackMedia::Audio {
                sample_rate: 44_100,
                channels: 1,
            },
        },
    ];
    let cfg = LlSegmenterConfig {
        window: 100,
        ..Default::default()
    };
    let mut seg = LlSegmenter::new(tracks, cfg).unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_119_200);
    let mut ready = Vec::new();
    for (track, s) in frames {
        ready.extend(seg.push(track, s, t0).unwrap());
    }
    ready.extend(seg.finish().unwrap());
    seg.end();

    let write = |name: MediaName, bytes: &[u8]| std::fs::write(dir.join(name.file_name()), bytes);
    write(MediaName::Init, seg.init()).unwrap();
    let playlist = seg.playlist("");
    let mut parts_m3u8 = String::from(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-MAP:URI=\"init.mp4\"\n",
    );
    let mut all_parts = seg.init().to_vec();
    for s in &playlist.segments {
        let bytes: Vec<u8> = seg.segment(s.msn).unwrap().concat();
        write(MediaName::Segment(s.msn), &bytes).unwrap();
        for (i, p) in s.parts.iter().enumerate() {
            let part = seg.part(s.msn, i as u32).unwrap();
            write(MediaName::Part(s.msn, i as u32), &part).unwrap();
            all_parts.extend_from_slice(&part);
            parts_m3u8.push_str(&format!(
                "#EXTINF:{:.5},\n{}\n",
                p.duration.as_secs_f64(),
                p.uri
            ));
        }
    }
    parts_m3u8.push_str("#EXT-X-ENDLIST\n");
    // Every part was announced as ready once, in order.
    let announced: Vec<(u64, u32)> = ready.iter().map(|r| (r.msn, r.index)).collect();
    let listed: Vec<(u64, u32)> = playlist
        .segments
        .iter()
        .flat_map(|s| (0..s.parts.len() as u32).map(move |i| (s.msn, i)))
        .collect();
    assert_eq!(announced, listed);
    // 3 s of 1 s GOPs: three segments of five 200 ms parts.
    assert_eq!(playlist.segments.len(), 3);
    for s in &playlist.segments {
        assert_eq!(s.parts.len(), 5, "segment {}", s.msn);
        assert!(s.parts[0].independent && !s.parts[1].independent);
        for p in &s.parts[..4] {
            assert!(p.duration.abs_diff(Duration::from_millis(200)) <= Duration::from_millis(1));
        }
    }

    let ll = render(&playlist, false);
    assert!(ll.contains("#EXT-X-PART-INF:PART-TARGET=0.20000\n"), "{ll}");
    assert!(ll.ends_with("#EXT-X-ENDLIST\n"), "{ll}");
    std::fs::write(dir.join("ll.m3u8"), &ll).unwrap();
    std::fs::write(dir.join("parts.m3u8"), parts_m3u8).unwrap();
    std::fs::write(dir.join("all_parts.mp4"), all_parts).unwrap();
    assert_decodes(&dir.join("ll.m3u8"));
    assert_decodes(&dir.join("parts.m3u8"));
    // FFmpeg's HLS demuxer read every frame through both playlists.
    for list in ["ll.m3u8", "parts.m3u8"] {
        for stream in ["v:0", "a:0"] {
            assert_eq!(
                packets(&dir.join(list), stream).len(),
                packets(&src, stream).len(),
                "{list} {stream}"
            );
        }
    }
    let all = dir.join("all_parts.mp4");
    assert_same_packets(&src, &all, "v:0");
    assert_same_packets(&src, &all, "a:0");
    let _ = std::fs::remove_dir_all(&dir);
}
