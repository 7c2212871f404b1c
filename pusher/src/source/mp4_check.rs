//! A structural check of MP4 box sizes before the `mp4` crate reads a file: the crate walks
//! container boxes with `while position < end` loops, and a child box claiming fewer than 8
//! bytes (or 0, "to the end") makes it seek back to where it was, forever. Every box that the
//! crate walks is checked here: sizes at least a header, inside their parent, and `moov`
//! bounded. Pure over bytes for the box tree; the top level is read from the file by seeking.
//! It also reads what the crate does not: each track's sample entry type (`hvc1`, `av01`)
//! and its configuration record (`hvcC`, `av1C`), from the checked `moov`.

use std::io::{Read, Seek, SeekFrom};

/// Why a file's box structure was refused (or could not be read).
#[derive(Debug, thiserror::Error)]
pub enum BoxError {
    #[error("{0} bytes where a box header (8) should be")]
    ShortHeader(usize),
    #[error("box {0:?} of size 0 (to the end of the file) is not supported")]
    ToEnd(String),
    #[error("truncated 64-bit box size")]
    TruncatedLargeSize,
    #[error("64-bit box size {0}")]
    BadLargeSize(u64),
    #[error("box {kind:?} of {size} bytes")]
    TooSmall { kind: String, size: u64 },
    #[error("boxes nested too deep")]
    TooDeep,
    #[error("box {kind:?} of {size} bytes overruns its parent {parent:?}")]
    Overrun {
        kind: String,
        size: u64,
        parent: String,
    },
    #[error("more than 100000 top-level boxes")]
    TooManyBoxes,
    #[error("{kind} of {size} bytes (at most {MAX_MOOV} are read)")]
    TooLarge { kind: String, size: u64 },
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
}

impl PartialEq for BoxError {
    /// Equal when they say the same (I/O errors compare by message).
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

fn name(kind: &[u8; 4]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

/// Largest `moov` read into memory for the check.
pub const MAX_MOOV: u64 = 64 << 20;
const MAX_DEPTH: usize = 12;

/// Offset of the first child box in a container's payload, for the containers the mp4
/// crate walks; `None` for a leaf.
fn children_at(kind: &[u8; 4], parent: Option<&[u8; 4]>) -> Option<usize> {
    match kind {
        b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"dinf" | b"mvex" | b"udta" | b"edts"
        | b"ilst" | b"moof" | b"traf" => Some(0),
        b"meta" | b"dref" => Some(if kind == b"dref" { 8 } else { 4 }),
        b"stsd" => Some(8),
        b"mp4a" => Some(28),
        b"avc1" | b"avc3" | b"hev1" | b"hvc1" | b"vp09" | b"av01" => Some(78),
        // Items of an `ilst` hold `data` boxes.
        _ if parent == Some(b"ilst") => Some(0),
        _ => None,
    }
}

/// Reads one box header at the start of `data`: (total size, type, header length).
fn header(data: &[u8]) -> Result<(u64, [u8; 4], usize), BoxError> {
    if data.len() < 8 {
        return Err(BoxError::ShortHeader(data.len()));
    }
    let size32 = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as u64;
    let kind = [data[4], data[5], data[6], data[7]];
    match size32 {
        0 => Err(BoxError::ToEnd(name(&kind))),
        1 => {
            let large = data.get(8..16).ok_or(BoxError::TruncatedLargeSize)?;
            let mut b = [0u8; 8];
            b.copy_from_slice(large);
            let size = u64::from_be_bytes(b);
            if size < 16 {
                return Err(BoxError::BadLargeSize(size));
            }
            Ok((size, kind, 16))
        }
        s if s < 8 => Err(BoxError::TooSmall {
            kind: name(&kind),
            size: s,
        }),
        s => Ok((s, kind, 8)),
    }
}

/// Checks the children of a container payload, recursively.
pub fn check_children(payload: &[u8], parent: &[u8; 4], depth: usize) -> Result<(), BoxError> {
    if depth > MAX_DEPTH {
        return Err(BoxError::TooDeep);
    }
    let mut at = 0usize;
    // Each round moves forward by at least 8 bytes.
    while at < payload.len() {
        let (size, kind, head) = header(&payload[at..])?;
        let end = at as u64 + size;
        if end > payload.len() as u64 {
            return Err(BoxError::Overrun {
                kind: name(&kind),
                size,
                parent: name(parent),
            });
        }
        let body = &payload[at + head..end as usize];
        if let Some(skip) = children_at(&kind, Some(parent)) {
            if let Some(inner) = body.get(skip..) {
                check_children(inner, &kind, depth + 1)?;
            }
        }
        at = end as usize;
    }
    Ok(())
}

/// Checks the top-level boxes of a file of `len` bytes and everything inside `moov`, and
/// returns the `moov` payload (empty if the file has none).
pub fn check_file<R: Read + Seek>(r: &mut R, len: u64) -> Result<Vec<u8>, BoxError> {
    let mut at = 0u64;
    let mut boxes = 0;
    let mut moov = Vec::new();
    while at < len {
        boxes += 1;
        if boxes > 100_000 {
            return Err(BoxError::TooManyBoxes);
        }
        r.seek(SeekFrom::Start(at))?;
        let mut head = [0u8; 16];
        let n = read_up_to(r, &mut head)?;
        let (size, kind, hlen) = header(&head[..n])?;
        if at + size > len {
            // The crate stops at the end of the file; a truncated last box is its error to give.
            return Ok(moov);
        }
        if kind == *b"moov" || kind == *b"moof" {
            if size > MAX_MOOV {
                return Err(BoxError::TooLarge {
                    kind: name(&kind),
                    size,
                });
            }
            let mut body = vec![0u8; (size - hlen as u64) as usize];
            r.seek(SeekFrom::Start(at + hlen as u64))?;
            r.read_exact(&mut body)?;
            check_children(&body, &kind, 1)?;
            if kind == *b"moov" && moov.is_empty() {
                moov = body;
            }
        }
        at += size;
    }
    Ok(moov)
}

/// A track's first sample entry, as the file has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleEntry {
    pub track_id: u32,
    /// The entry's type: `avc1`, `hvc1`, `hev1`, `av01`, `mp4a`...
    pub format: [u8; 4],
    /// Width and height of a visual sample entry.
    pub size: Option<(u16, u16)>,
    /// The first configuration box inside a visual entry (`avcC`, `hvcC`, `av1C`, `vpcC`):
    /// its type and payload.
    pub config: Option<([u8; 4], Vec<u8>)>,
}

/// The child boxes of a container payload as (type, payload). Stops at the first box that
/// does not fit (`check_children` has refused those already).
fn boxes(payload: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let (size, kind, head) = header(payload.get(at..)?).ok()?;
        let end = at.checked_add(usize::try_from(size).ok()?)?;
        let body = payload.get(at + head..end)?;
        at = end;
        Some((kind, body))
    })
}

fn child<'a>(payload: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(payload).find(|(k, _)| k == kind).map(|(_, b)| b)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Every track's first sample entry in a `moov` payload (tracks it cannot read are left out).
pub fn sample_entries(moov: &[u8]) -> Vec<SampleEntry> {
    boxes(moov)
        .filter(|(k, _)| k == b"trak")
        .filter_map(|(_, trak)| {
            let tkhd = child(trak, b"tkhd")?;
            // tkhd: version, flags, then creation/modification times (32 or 64 bits each).
            let track_id = be32(tkhd, if tkhd.first()? == &1 { 20 } else { 12 })?;
            let stbl = child(child(child(trak, b"mdia")?, b"minf")?, b"stbl")?;
            let stsd = child(stbl, b"stsd")?;
            let (format, entry) = boxes(stsd.get(8..)?).next()?;
            let visual = children_at(&format, None) == Some(78);
            let (size, config) = if visual {
                // VisualSampleEntry: width and height at 24 and 26, child boxes from 78.
                let size = Some((be16(entry, 24)?, be16(entry, 26)?));
                let config = boxes(entry.get(78..)?)
                    .find(|(k, _)| matches!(k, b"avcC" | b"hvcC" | b"av1C" | b"vpcC"))
                    .map(|(k, b)| (k, b.to_vec()));
                (size, config)
            } else {
                (None, None)
            };
            Some(SampleEntry {
                track_id,
                format,
                size,
                config,
            })
        })
        .collect()
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, BoxError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn good_tree_passes_and_bad_sizes_fail() {
        let tkhd = boxed(b"tkhd", &[0; 20]);
        let trak = boxed(b"trak", &tkhd);
        let moov = boxed(b"moov", &trak);
        let mut file = boxed(b"ftyp", b"isom\0\0\0\0");
        file.extend_from_slice(&moov);
        file.extend_from_slice(&boxed(b"mdat", &[1, 2, 3]));
        let len = file.len() as u64;
        assert_eq!(
            check_file(&mut std::io::Cursor::new(&file), len),
            Ok(trak.clone())
        );

        // A child of size 0 inside trak: the crate would loop on it.
        let mut bad = file.clone();
        let tkhd_at = bad.windows(4).position(|w| w == b"tkhd").unwrap() - 4;
        bad[tkhd_at..tkhd_at + 4].copy_from_slice(&0u32.to_be_bytes());
        assert!(check_file(&mut std::io::Cursor::new(&bad), len).is_err());
        // Size 5 likewise; a child overrunning its parent too.
        bad[tkhd_at..tkhd_at + 4].copy_from_slice(&5u32.to_be_bytes());
        assert!(check_file(&mut std::io::Cursor::new(&bad), len).is_err());
        bad[tkhd_at..tkhd_at + 4].copy_from_slice(&500u32.to_be_bytes());
        assert!(check_file(&mut std::io::Cursor::new(&bad), len).is_err());
        // A top-level box of size 0.
        let mut bad = file.clone();
        bad[..4].copy_from_slice(&0u32.to_be_bytes());
        assert!(check_file(&mut std::io::Cursor::new(&bad), len).is_err());
    }

    #[test]
    fn sample_entry_and_config_are_found() {
        let mut tkhd = vec![0u8; 20];
        tkhd[12..16].copy_from_slice(&7u32.to_be_bytes());
        let hvcc = [1u8, 2, 3, 4];
        let mut entry = vec![0u8; 78];
        entry[24..26].copy_from_slice(&320u16.to_be_bytes());
        entry[26..28].copy_from_slice(&240u16.to_be_bytes());
        entry.extend_from_slice(&boxed(b"colr", &[0; 4]));
        entry.extend_from_slice(&boxed(b"hvcC", &hvcc));
        let mut stsd = vec![0u8, 0, 0, 0, 0, 0, 0, 1];
        stsd.extend_from_slice(&boxed(b"hvc1", &entry));
        let stbl = boxed(b"stbl", &boxed(b"stsd", &stsd));
        let mdia = boxed(b"mdia", &boxed(b"minf", &stbl));
        let mut trak = boxed(b"tkhd", &tkhd);
        trak.extend_from_slice(&mdia);
        let moov = boxed(b"trak", &trak);
        assert_eq!(check_children(&moov, b"moov", 1), Ok(()));
        assert_eq!(
            sample_entries(&moov),
            vec![SampleEntry {
                track_id: 7,
                format: *b"hvc1",
                size: Some((320, 240)),
                config: Some((*b"hvcC", hvcc.to_vec())),
            }]
        );
        // A track without an stsd is left out, not an error.
        assert_eq!(
            sample_entries(&boxed(b"trak", &boxed(b"tkhd", &tkhd))),
            vec![]
        );
    }

    #[test]
    fn sample_entries_are_walked_past_their_fixed_fields() {
        // stsd (8 bytes of fields) > mp4a (28 bytes of fields) > esds of size 3: refused.
        let mut esds = 3u32.to_be_bytes().to_vec();
        esds.extend_from_slice(b"esds");
        let mut mp4a_body = vec![0u8; 28];
        mp4a_body.extend_from_slice(&esds);
        let mp4a = boxed(b"mp4a", &mp4a_body);
        let mut stsd_body = vec![0u8; 8];
        stsd_body.extend_from_slice(&mp4a);
        let stsd = boxed(b"stsd", &stsd_body);
        assert!(check_children(&stsd, b"stbl", 1).is_err());
        let ok_esds = boxed(b"esds", &[0; 4]);
        let mut mp4a_body = vec![0u8; 28];
        mp4a_body.extend_from_slice(&ok_esds);
        let mut stsd_body = vec![0u8; 8];
        stsd_body.extend_from_slice(&boxed(b"mp4a", &mp4a_body));
        assert_eq!(
            check_children(&boxed(b"stsd", &stsd_body), b"stbl", 1),
            Ok(())
        );
    }
}
