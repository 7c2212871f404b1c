//! The disk side of one stream's recording: a thread of its own that takes actions from
//! a bounded queue and does the file work (create, append, fsync, rename). It never runs
//! on the async workers and never makes the stream wait: the queue is filled with
//! `try_send` and a full queue drops the recording, not a frame of the live stream.
//!
//! fsync policy: a file's data is synced (fdatasync) after a fragment when
//! `fsync_interval_ms` has passed since its last sync (0: after every fragment), and
//! always when it closes; the folder is synced after a file is created and renamed.
//! A crash or power cut loses at most the fragments since the last sync.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::files::{file_name, sync_dir, PART};
use super::segment::Action;
use super::RecordFormat;
use crate::metrics::Metrics;

/// What the async side shares with the writer thread of one stream.
pub struct Shared {
    /// Bytes in the queue, bounded by `max_queued_bytes`.
    queued_bytes: AtomicUsize,
    max_queued_bytes: usize,
    /// Set by the writer when a write failed: the async side starts a new file later.
    pub failed: AtomicBool,
}

pub struct Queue {
    tx: SyncSender<Action>,
    pub shared: Arc<Shared>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full: the disk is slower than the stream.
    Full,
    /// The writer thread is gone.
    Gone,
}

impl Queue {
    pub fn try_send(&self, a: Action) -> Result<(), Refused> {
        let n = action_len(&a);
        let held = self.shared.queued_bytes.load(Ordering::Relaxed);
        if n > 0 && held + n > self.shared.max_queued_bytes {
            return Err(Refused::Full);
        }
        self.shared.queued_bytes.fetch_add(n, Ordering::Relaxed);
        match self.tx.try_send(a) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.shared.queued_bytes.fetch_sub(n, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => Refused::Full,
                    TrySendError::Disconnected(_) => Refused::Gone,
                })
            }
        }
    }
}

fn action_len(a: &Action) -> usize {
    match a {
        Action::Open { head, .. } => head.len(),
        Action::Write(b) => b.len(),
        Action::Close => 0,
    }
}

pub struct WriterConfig {
    pub stream_dir: PathBuf,
    pub format: RecordFormat,
    pub fsync_interval: Duration,
    pub stream: String,
}

/// Starts the writer thread of one stream; it ends when the queue's sender is dropped,
/// closing its file properly.
pub fn start(
    cfg: WriterConfig,
    max_fragments: usize,
    max_bytes: usize,
    metrics: Arc<Metrics>,
) -> std::io::Result<(Queue, std::thread::JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(max_fragments.max(1));
    let shared = Arc::new(Shared {
        queued_bytes: AtomicUsize::new(0),
        max_queued_bytes: max_bytes.max(1),
        failed: AtomicBool::new(false),
    });
    let s = shared.clone();
    let handle = std::thread::Builder::new()
        .name("onair-record".into())
        .spawn(move || Writer::new(cfg, s, metrics).run(rx))?;
    Ok((Queue { tx, shared }, handle))
}

struct OpenFile {
    file: File,
    part: PathBuf,
    written: u64,
    last_sync: Instant,
}

struct Writer {
    cfg: WriterConfig,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    open: Option<OpenFile>,
    /// A write failed: the rest of this file's actions are skipped until the next Open.
    broken: bool,
    /// No write has failed since the last successful file start (for logging once).
    last_error_ok: bool,
}

impl Writer {
    fn new(cfg: WriterConfig, shared: Arc<Shared>, metrics: Arc<Metrics>) -> Self {
        Self {
            cfg,
            shared,
            metrics,
            open: None,
            broken: false,
            last_error_ok: true,
        }
    }

    fn run(mut self, rx: Receiver<Action>) {
        for a in rx {
            self.shared
                .queued_bytes
                .fetch_sub(action_len(&a), Ordering::Relaxed);
            match a {
                Action::Open { start, head } => {
                    self.close();
                    self.broken = false;
                    if let Err(e) = self.open(start, &head) {
                        self.fail("create", e);
                    }
                }
                Action::Write(b) if !self.broken => {
                    if let Err(e) = self.write(&b) {
                        self.fail("write", e);
                    }
                }
                Action::Write(_) => {}
                Action::Close => self.close(),
            }
        }
        self.close();
    }

    fn open(&mut self, start: std::time::SystemTime, head: &Bytes) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.cfg.stream_dir)?;
        // Names are unique per start millisecond; a clash (a restart within the same
        // millisecond) moves the name a millisecond on.
        let mut t = start;
        let (file, part) = loop {
            let name = file_name(t, self.cfg.format);
            let part = self.cfg.stream_dir.join(format!("{name}{PART}"));
            let taken = self.cfg.stream_dir.join(&name).exists();
            match (!taken).then(|| File::options().write(true).create_new(true).open(&part)) {
                Some(Ok(f)) => break (f, part),
                Some(Err(e)) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                _ => t += Duration::from_millis(1),
            }
        };
        sync_dir(&self.cfg.stream_dir);
        self.metrics.record.files.inc();
        tracing::info!(stream = %self.cfg.stream, file = %part.display(), "recording started");
        self.open = Some(OpenFile {
            file,
            part,
            written: 0,
            last_sync: Instant::now(),
        });
        self.write(head)?;
        if !self.last_error_ok {
            tracing::info!(stream = %self.cfg.stream, "recording resumed");
        }
        self.last_error_ok = true;
        Ok(())
    }

    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        let Some(f) = &mut self.open else {
            return Ok(());
        };
        f.file.write_all(b)?;
        f.written += b.len() as u64;
        self.metrics.record.bytes.inc_by(b.len() as u64);
        self.metrics.record.fragments.inc();
        if f.last_sync.elapsed() >= self.cfg.fsync_interval {
            f.file.sync_data()?;
            f.last_sync = Instant::now();
            self.metrics.record.fsyncs.inc();
        }
        Ok(())
    }

    /// A failed write (full disk, I/O error): the file is cut back to its last complete
    /// fragment and closed; the async side opens a new one after a pause.
    fn fail(&mut self, what: &'static str, e: std::io::Error) {
        self.metrics.record.dropped("disk_error");
        // One warning per interruption; retries that fail again are debug lines.
        if self.last_error_ok {
            tracing::warn!(stream = %self.cfg.stream, error = %e, op = what, "recording stopped: disk error");
        } else {
            tracing::debug!(stream = %self.cfg.stream, error = %e, op = what, "recording still failing");
        }
        self.last_error_ok = false;
        if let Some(f) = &mut self.open {
            let _ = f.file.set_len(f.written);
        }
        let had_file = self.open.as_ref().is_some_and(|f| f.written > 0);
        if had_file {
            self.close();
        } else if let Some(f) = self.open.take() {
            drop(f.file);
            let _ = std::fs::remove_file(&f.part);
        }
        self.broken = true;
        self.shared.failed.store(true, Ordering::Relaxed);
    }

    fn close(&mut self) {
        let Some(f) = self.open.take() else { return };
        let _ = f.file.sync_all();
        self.metrics.record.fsyncs.inc();
        drop(f.file);
        if f.written == 0 {
            let _ = std::fs::remove_file(&f.part);
            return;
        }
        let done = f.part.with_extension("");
        match std::fs::rename(&f.part, &done) {
            Ok(()) => {
                sync_dir(&self.cfg.stream_dir);
                tracing::info!(stream = %self.cfg.stream, file = %done.display(), bytes = f.written, "recording closed");
            }
            Err(e) => {
                tracing::warn!(stream = %self.cfg.stream, file = %f.part.display(), error = %e, "recording not renamed")
            }
        }
    }
}
