//! Recording files on disk: their sortable names (`{app}/{stream}/YYYY-MM-DD_HH-MM-SS.mmm.mp4`,
//! UTC, `.part` appended while being written), listing a stream's files, retention (oldest
//! first, by age and by total size) and the repair of files a crash left unfinished.
//! Names are parsed strictly, so no path a client sends can leave the recording folder.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDateTime, Utc};

use super::RecordFormat;

/// Suffix of a file still being written (or left by a crash until the next start).
pub const PART: &str = ".part";
const NAME_FORMAT: &str = "%Y-%m-%d_%H-%M-%S%.3f";

impl RecordFormat {
    pub fn extension(self) -> &'static str {
        match self {
            RecordFormat::Fmp4 => "mp4",
            RecordFormat::Flv => "flv",
        }
    }
}

/// `2026-12-01_14-03-05.123.mp4` for a file that started at that UTC time.
pub fn file_name(start: SystemTime, format: RecordFormat) -> String {
    let t: DateTime<Utc> = start.into();
    format!("{}.{}", t.format(NAME_FORMAT), format.extension())
}

/// The start time, format and in-progress flag of a recording file name; `None` for
/// any other name (so a client cannot name anything else).
pub fn parse_file_name(name: &str) -> Option<(SystemTime, RecordFormat, bool)> {
    let (name, part) = match name.strip_suffix(PART) {
        Some(n) => (n, true),
        None => (name, false),
    };
    let (stem, ext) = name.rsplit_once('.')?;
    let format = match ext {
        "mp4" => RecordFormat::Fmp4,
        "flv" => RecordFormat::Flv,
        _ => return None,
    };
    // Exactly the form `file_name` writes: 23 characters, digits where digits go.
    if stem.len() != 23 || !stem.is_ascii() {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(stem, NAME_FORMAT).ok()?;
    let start: SystemTime = t.and_utc().into();
    (file_name(start, format) == name).then_some((start, format, part))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingFile {
    pub path: PathBuf,
    /// The name without `.part`.
    pub name: String,
    pub start: SystemTime,
    pub format: RecordFormat,
    pub size: u64,
    pub modified: SystemTime,
    pub in_progress: bool,
}

/// The recording files in one stream's folder, oldest first. Files whose names are not
/// recording names are ignored.
pub fn list_stream(dir: &Path) -> Vec<RecordingFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<RecordingFile> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (start, format, in_progress) = parse_file_name(&name)?;
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| RecordingFile {
                path: e.path(),
                name: name.strip_suffix(PART).unwrap_or(&name).to_string(),
                start,
                format,
                size: meta.len(),
                modified: meta.modified().unwrap_or(start),
                in_progress,
            })
        })
        .collect();
    files.sort_by(|a, b| a.start.cmp(&b.start).then(a.name.cmp(&b.name)));
    files
}

/// Every recording under `root` (`{app}/{stream}/…`), oldest first.
pub fn list_all(root: &Path) -> Vec<RecordingFile> {
    let mut all = Vec::new();
    for app in subdirs(root) {
        for stream in subdirs(&app) {
            all.extend(list_stream(&stream));
        }
    }
    all.sort_by(|a, b| a.start.cmp(&b.start).then(a.path.cmp(&b.path)));
    all
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Which of `files` (oldest first) retention deletes at `now`: every finished file that
/// ended longer than `max_age` ago, then the oldest finished files until the total is
/// within `max_bytes`. A limit of 0 is no limit; files being written are never deleted.
pub fn retention_victims(
    files: &[RecordingFile],
    now: SystemTime,
    max_age: Option<Duration>,
    max_bytes: Option<u64>,
) -> Vec<usize> {
    let mut victims = Vec::new();
    let mut total: u64 = files.iter().map(|f| f.size).sum();
    for (i, f) in files.iter().enumerate() {
        if f.in_progress {
            continue;
        }
        let too_old = max_age.is_some_and(|age| {
            now.duration_since(f.modified)
                .is_ok_and(|since| since > age)
        });
        let too_big = max_bytes.is_some_and(|max| total > max);
        if too_old || too_big {
            victims.push(i);
            total = total.saturating_sub(f.size);
        }
    }
    victims
}

/// What the start-up repair did with one unfinished file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Cut back to its last complete fragment (`kept` of `had` bytes) and renamed.
    Truncated { kept: u64, had: u64 },
    /// Complete already; renamed.
    Finalized { bytes: u64 },
    /// Nothing playable in it; deleted.
    Deleted { had: u64 },
}

/// Finishes a file a crash left with `.part`: keeps it up to its last complete fragment
/// (fMP4) or tag (FLV), fsyncs and renames it to its final name.
pub fn repair(path: &Path, format: RecordFormat) -> std::io::Result<Repair> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let had = file.metadata()?.len();
    let kept = match format {
        RecordFormat::Fmp4 => match super::index::scan(&mut file, had) {
            Ok(idx) if !idx.fragments.is_empty() => idx.complete_len,
            _ => 0,
        },
        RecordFormat::Flv => flv_complete_len(&mut file, had)?,
    };
    if kept == 0 {
        drop(file);
        std::fs::remove_file(path)?;
        return Ok(Repair::Deleted { had });
    }
    if kept < had {
        file.set_len(kept)?;
    }
    file.sync_all()?;
    drop(file);
    let final_path = path.with_extension("");
    std::fs::rename(path, &final_path)?;
    if let Some(parent) = final_path.parent() {
        sync_dir(parent);
    }
    Ok(if kept < had {
        Repair::Truncated { kept, had }
    } else {
        Repair::Finalized { bytes: had }
    })
}

/// End of the last complete FLV tag (with its PreviousTagSize); 0 when no tag is whole.
fn flv_complete_len<R: std::io::Read + std::io::Seek>(r: &mut R, len: u64) -> std::io::Result<u64> {
    use std::io::SeekFrom;
    let mut at = 13u64; // header + PreviousTagSize0
    let mut complete = 0u64;
    let mut h = [0u8; 11];
    while at + 11 <= len {
        r.seek(SeekFrom::Start(at))?;
        r.read_exact(&mut h)?;
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as u64;
        let end = at + 11 + size + 4;
        if end > len {
            break;
        }
        at = end;
        complete = at;
    }
    Ok(complete)
}

/// Makes a file's creation or rename durable (the directory entry itself).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Repairs every unfinished file under `root`; (path, what was done) for each.
pub fn repair_all(root: &Path) -> Vec<(PathBuf, std::io::Result<Repair>)> {
    let mut done = Vec::new();
    for app in subdirs(root) {
        for stream in subdirs(&app) {
            for f in list_stream(&stream).into_iter().filter(|f| f.in_progress) {
                let r = repair(&f.path, f.format);
                done.push((f.path, r));
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_and_parse_back() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_133_785_123);
        let name = file_name(t, RecordFormat::Fmp4);
        assert_eq!(name, "2026-12-01_14-03-05.123.mp4");
        assert_eq!(parse_file_name(&name), Some((t, RecordFormat::Fmp4, false)));
        assert_eq!(
            parse_file_name(&format!("{name}.part")),
            Some((t, RecordFormat::Fmp4, true))
        );
        let later = file_name(t + Duration::from_millis(877), RecordFormat::Fmp4);
        assert!(later > name, "{later} sorts after {name}");
        for bad in [
            "../etc/passwd",
            "2026-12-01_14-03-05.123.mp4/../../x",
            "2026-12-01_14-03-05.mp4",
            "2026-12-01_14-03-05.1234.mp4",
            "2026-13-01_14-03-05.123.mp4",
            "2026-12-01_14-03-05.123.exe",
            "2026-12-01 14-03-05.123.mp4",
            "+2026-12-01_14-03-05.123.mp4",
            "",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad:?}");
        }
    }

    fn file(i: u64, size: u64, in_progress: bool) -> RecordingFile {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1000 + i * 100);
        RecordingFile {
            path: PathBuf::from(format!("{i}")),
            name: format!("{i}"),
            start,
            format: RecordFormat::Fmp4,
            size,
            modified: start + Duration::from_secs(100),
            in_progress,
        }
    }

    #[test]
    fn retention_deletes_oldest_first() {
        let files = [
            file(0, 10, false),
            file(1, 10, false),
            file(2, 10, false),
            file(3, 10, true),
        ];
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1450);
        // Size: 40 bytes held, 25 allowed: the two oldest go.
        assert_eq!(retention_victims(&files, now, None, Some(25)), vec![0, 1]);
        // Age: files 0 and 1 ended at 1100 and 1200, older than 200 s at 1450.
        assert_eq!(
            retention_victims(&files, now, Some(Duration::from_secs(200)), None),
            vec![0, 1]
        );
        assert_eq!(
            retention_victims(&files, now, Some(Duration::from_secs(300)), None),
            vec![0]
        );
        // The file being written is never deleted, even when it alone is over the limit.
        assert_eq!(retention_victims(&files, now, None, Some(5)), vec![0, 1, 2]);
        assert!(retention_victims(&files, now, None, None).is_empty());
    }
}
