//! Reading a recorded fMP4 file back: its tracks (from the moov) and its fragments
//! (offset, length, per-track decode time and duration, keyframe start), up to the last
//! complete fragment. Used for the listing, the playback cut and the repair after a
//! crash. The box walk reads headers and moofs only, never media; it never panics on a
//! damaged file: what cannot be read ends the walk, and `complete_len` says where.

use std::io::{Read, Seek, SeekFrom};

/// The largest moov or moof read into memory; a bigger one ends the walk.
const MAX_META_BOX: u64 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub id: u32,
    pub timescale: u32,
    pub video: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackTime {
    pub track_id: u32,
    /// tfdt of the fragment's run of this track.
    pub base: u64,
    /// Sum of its sample durations.
    pub duration: u64,
    /// tfdt field: where it is inside the moof, and whether it is 64 bits.
    pub tfdt_at: usize,
    pub tfdt_64: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentInfo {
    /// File offset of the moof.
    pub offset: u64,
    pub moof_len: u64,
    /// moof + mdat.
    pub len: u64,
    pub tracks: Vec<TrackTime>,
    /// The first sample of the video track (of every track, without video) is a sync sample.
    pub keyframe_start: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileIndex {
    /// ftyp + moov: the bytes every playback starts with.
    pub init_len: u64,
    pub tracks: Vec<TrackInfo>,
    pub fragments: Vec<FragmentInfo>,
    /// End of the last complete box (init or fragment): what a repair keeps.
    pub complete_len: u64,
    pub file_len: u64,
}

impl FileIndex {
    /// The track whose times place fragments: the video one, else the first.
    pub fn drive(&self) -> Option<&TrackInfo> {
        self.tracks.iter().find(|t| t.video).or(self.tracks.first())
    }

    /// Seconds from the file's first sample to fragment `i`'s start (drive track).
    pub fn fragment_start(&self, i: usize) -> Option<f64> {
        let d = self.drive()?;
        let first = self.fragments.first()?.time(d.id)?.base;
        let f = self.fragments.get(i)?.time(d.id)?;
        Some(f.base.saturating_sub(first) as f64 / d.timescale.max(1) as f64)
    }

    /// Seconds of media in the complete fragments (drive track).
    pub fn duration(&self) -> f64 {
        let Some(d) = self.drive() else { return 0.0 };
        let Some(first) = self.fragments.iter().find_map(|f| f.time(d.id)) else {
            return 0.0;
        };
        let end = self
            .fragments
            .iter()
            .rev()
            .find_map(|f| f.time(d.id))
            .map_or(0, |t| t.base + t.duration);
        end.saturating_sub(first.base) as f64 / d.timescale.max(1) as f64
    }
}

impl FragmentInfo {
    pub fn time(&self, track_id: u32) -> Option<&TrackTime> {
        self.tracks.iter().find(|t| t.track_id == track_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a recording: {0}")]
    NotRecording(&'static str),
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The child boxes of a box body: (type, start of its body in `b`, body length).
fn children(b: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= b.len() {
        let Some(size) = be32(b, at) else { break };
        let kind: [u8; 4] = match b[at + 4..at + 8].try_into() {
            Ok(k) => k,
            Err(_) => break,
        };
        let (header, size) = match size {
            1 => match be64(b, at + 8) {
                Some(s) => (16usize, s as usize),
                None => break,
            },
            0 => (8, b.len() - at),
            s => (8, s as usize),
        };
        if size < header || at.checked_add(size).is_none_or(|end| end > b.len()) {
            break;
        }
        out.push((kind, at + header, size - header));
        at += size;
    }
    out
}

fn child<'a>(b: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(b)
        .into_iter()
        .find(|c| &c.0 == kind)
        .map(|(_, at, len)| &b[at..at + len])
}

/// The tracks of a moov body.
pub fn parse_moov(moov: &[u8]) -> Vec<TrackInfo> {
    let mut tracks = Vec::new();
    for (kind, at, len) in children(moov) {
        if &kind != b"trak" {
            continue;
        }
        let trak = &moov[at..at + len];
        let Some(tkhd) = child(trak, b"tkhd") else {
            continue;
        };
        let id = match tkhd.first() {
            Some(1) => be32(tkhd, 20),
            _ => be32(tkhd, 12),
        };
        let Some(mdia) = child(trak, b"mdia") else {
            continue;
        };
        let timescale = child(mdia, b"mdhd").and_then(|m| match m.first() {
            Some(1) => be32(m, 20),
            _ => be32(m, 12),
        });
        let video = child(mdia, b"hdlr").is_some_and(|h| h.get(8..12) == Some(b"vide"));
        if let (Some(id), Some(timescale)) = (id, timescale) {
            tracks.push(TrackInfo {
                id,
                timescale,
                video,
            });
        }
    }
    tracks
}

const TRUN_DATA_OFFSET: u32 = 0x1;
const TRUN_FIRST_FLAGS: u32 = 0x4;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_CTS: u32 = 0x800;
const NON_SYNC: u32 = 0x0001_0000;

/// Per-track times of a moof body (`moof` starts after the moof's own header, at
/// `body_at` within the whole box), and whether each run starts with a sync sample.
pub fn parse_moof(moof: &[u8], body_at: usize) -> Vec<(TrackTime, bool)> {
    let mut out = Vec::new();
    for (kind, at, len) in children(moof) {
        if &kind != b"traf" {
            continue;
        }
        let traf = &moof[at..at + len];
        let Some(tfhd) = child(traf, b"tfhd") else {
            continue;
        };
        let Some(track_id) = be32(tfhd, 4) else {
            continue;
        };
        let tfhd_flags = be32(tfhd, 0).unwrap_or(0) & 0xff_ffff;
        // Defaults from the tfhd, when present (onair writes none; other writers may).
        let mut f = 8usize;
        if tfhd_flags & 0x1 != 0 {
            f += 8;
        }
        if tfhd_flags & 0x2 != 0 {
            f += 4;
        }
        let default_duration = if tfhd_flags & 0x8 != 0 {
            let d = be32(tfhd, f);
            f += 4;
            d
        } else {
            None
        };
        if tfhd_flags & 0x10 != 0 {
            f += 4;
        }
        let default_flags = if tfhd_flags & 0x20 != 0 {
            be32(tfhd, f)
        } else {
            None
        };
        let mut time = None;
        let mut duration = 0u64;
        let mut sync = false;
        let mut first_run = true;
        for (k, cat, clen) in children(traf) {
            let body = &traf[cat..cat + clen];
            match &k {
                b"tfdt" => {
                    let v1 = body.first() == Some(&1);
                    let base = if v1 {
                        be64(body, 4)
                    } else {
                        be32(body, 4).map(u64::from)
                    };
                    if let Some(base) = base {
                        time = Some((base, body_at + at + cat + 4, v1));
                    }
                }
                b"trun" => {
                    let Some(vf) = be32(body, 0) else { continue };
                    let flags = vf & 0xff_ffff;
                    let Some(count) = be32(body, 4) else { continue };
                    let mut p = 8usize;
                    if flags & TRUN_DATA_OFFSET != 0 {
                        p += 4;
                    }
                    let first_flags = if flags & TRUN_FIRST_FLAGS != 0 {
                        let v = be32(body, p);
                        p += 4;
                        v
                    } else {
                        None
                    };
                    let per = [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTS]
                        .iter()
                        .filter(|b| flags & **b != 0)
                        .count()
                        * 4;
                    if (count as usize).saturating_mul(per) > body.len().saturating_sub(p) {
                        continue;
                    }
                    for i in 0..count as usize {
                        let mut q = p + i * per;
                        let d = if flags & TRUN_DURATION != 0 {
                            let d = be32(body, q);
                            q += 4;
                            d
                        } else {
                            default_duration
                        };
                        duration += d.unwrap_or(0) as u64;
                        if flags & TRUN_SIZE != 0 {
                            q += 4;
                        }
                        if i == 0 && first_run {
                            let sf = if flags & TRUN_FLAGS != 0 {
                                be32(body, q)
                            } else {
                                first_flags.or(default_flags)
                            };
                            sync = sf.is_none_or(|f| f & NON_SYNC == 0);
                        }
                    }
                    first_run = false;
                }
                _ => {}
            }
        }
        if let Some((base, tfdt_at, tfdt_64)) = time {
            out.push((
                TrackTime {
                    track_id,
                    base,
                    duration,
                    tfdt_at,
                    tfdt_64,
                },
                sync,
            ));
        }
    }
    out
}

/// A box header at `at`: (type, header length, total length); `None` at the end or when
/// fewer than 8 bytes remain.
fn box_header<R: Read + Seek>(
    r: &mut R,
    at: u64,
    file_len: u64,
) -> std::io::Result<Option<([u8; 4], u64, u64)>> {
    if at + 8 > file_len {
        return Ok(None);
    }
    r.seek(SeekFrom::Start(at))?;
    let mut h = [0u8; 16];
    r.read_exact(&mut h[..8])?;
    let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as u64;
    let kind = [h[4], h[5], h[6], h[7]];
    Ok(match size {
        1 if at + 16 <= file_len => {
            r.read_exact(&mut h[8..16])?;
            let large = u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
            (large >= 16).then_some((kind, 16, large))
        }
        // Size 0 ("to the end of the file") is never written by onair: an unfinished box.
        0 | 1 => None,
        s if s < 8 => None,
        s => Some((kind, 8, s)),
    })
}

fn read_body<R: Read + Seek>(r: &mut R, at: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    r.seek(SeekFrom::Start(at))?;
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Walks a recording of `file_len` bytes: ftyp, moov, then moof + mdat pairs, stopping at
/// the first box that is incomplete or not what a recording holds.
pub fn scan<R: Read + Seek>(r: &mut R, file_len: u64) -> Result<FileIndex, IndexError> {
    let mut idx = FileIndex {
        file_len,
        ..FileIndex::default()
    };
    let mut at = 0u64;
    let Some((kind, _, len)) = box_header(r, at, file_len)? else {
        return Err(IndexError::NotRecording("shorter than a box header"));
    };
    if &kind != b"ftyp" || len > MAX_META_BOX || at.saturating_add(len) > file_len {
        return Err(IndexError::NotRecording("no ftyp box first"));
    }
    at += len;
    let Some((kind, header, len)) = box_header(r, at, file_len)? else {
        return Err(IndexError::NotRecording("no moov box"));
    };
    if &kind != b"moov" || len > MAX_META_BOX || at.saturating_add(len) > file_len {
        return Err(IndexError::NotRecording(
            "no complete moov box after the ftyp",
        ));
    }
    let moov = read_body(r, at + header, len - header)?;
    idx.tracks = parse_moov(&moov);
    if idx.tracks.is_empty() {
        return Err(IndexError::NotRecording("a moov without tracks"));
    }
    at += len;
    idx.init_len = at;
    idx.complete_len = at;
    scan_more(r, &mut idx, file_len)?;
    Ok(idx)
}

/// Goes on walking a file that grew (a recording being written) from where `idx`'s walk
/// stopped, adding the fragments complete now; the ones indexed already are not read again.
pub fn scan_more<R: Read + Seek>(
    r: &mut R,
    idx: &mut FileIndex,
    file_len: u64,
) -> Result<(), IndexError> {
    idx.file_len = file_len;
    let mut at = idx.complete_len;
    let drive = idx.drive().map(|t| t.id);
    while let Some((kind, header, len)) = box_header(r, at, file_len)? {
        if &kind != b"moof" || len > MAX_META_BOX || at.saturating_add(len) > file_len {
            break;
        }
        let moof = read_body(r, at + header, len - header)?;
        let Some((mkind, _, mlen)) = box_header(r, at + len, file_len)? else {
            break;
        };
        if &mkind != b"mdat" || at.saturating_add(len).saturating_add(mlen) > file_len {
            break;
        }
        let runs = parse_moof(&moof, header as usize);
        if runs.is_empty() {
            break;
        }
        let keyframe_start = runs
            .iter()
            .find(|(t, _)| Some(t.track_id) == drive)
            .or(runs.first())
            .is_some_and(|(_, sync)| *sync);
        idx.fragments.push(FragmentInfo {
            offset: at,
            moof_len: len,
            len: len + mlen,
            tracks: runs.into_iter().map(|(t, _)| t).collect(),
            keyframe_start,
        });
        at += len + mlen;
        idx.complete_len = at;
    }
    Ok(())
}

/// A moof with every tfdt moved back by its track's `base` (in the track's ticks):
/// the first fragment of a clip then starts at 0. Sizes do not change, so the trun data
/// offsets stay right.
pub fn rebase_moof(moof: &[u8], fragment: &FragmentInfo, bases: &[(u32, u64)]) -> Vec<u8> {
    let shifts: Vec<(u32, i64)> = bases
        .iter()
        .map(|(id, b)| (*id, -(i64::try_from(*b).unwrap_or(i64::MAX))))
        .collect();
    shift_moof(moof, fragment, &shifts)
}

/// A moof with every tfdt moved by its track's shift (ticks; the result is clamped at 0).
pub fn shift_moof(moof: &[u8], fragment: &FragmentInfo, shifts: &[(u32, i64)]) -> Vec<u8> {
    let mut out = moof.to_vec();
    for t in &fragment.tracks {
        let shift = shifts
            .iter()
            .find(|(id, _)| *id == t.track_id)
            .map_or(0, |(_, s)| *s);
        let v = (t.base as i128 + shift as i128).clamp(0, u64::MAX as i128) as u64;
        let at = t.tfdt_at;
        if t.tfdt_64 {
            if let Some(s) = out.get_mut(at..at + 8) {
                s.copy_from_slice(&v.to_be_bytes());
            }
        } else if let Some(s) = out.get_mut(at..at + 4) {
            s.copy_from_slice(&(v.min(u32::MAX as u64) as u32).to_be_bytes());
        }
    }
    out
}
