//! The access-log writer: a thread off the request cores that writes the
//! cores' log buffers to their files (or stdout).
//!
//! Writes are plain blocking `write(2)`s here, where blocking is harmless:
//! a slow disk, a full one or a pipe nobody reads stalls this thread only.
//! The cores meanwhile run out of buffers and drop lines (counted), and a
//! failed write drops its batch's lines (counted) and reopens the file on
//! the next batch. SIGUSR1 (`reopen`) closes every file before the next
//! write, for log rotation (rename, then signal, like nginx).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use tracing::warn;

use super::batch::Inbox;

/// Where a listener's lines go: a file, or stdout for `-`.
#[derive(Debug, PartialEq, Eq)]
pub struct LogFile {
    pub path: PathBuf,
}

impl LogFile {
    pub fn is_stdout(&self) -> bool {
        self.path == Path::new("-")
    }
}

/// Lines written, and lines lost to failed writes (the writer's own; the
/// cores count the lines they dropped for want of a buffer).
pub static WRITTEN: AtomicU64 = AtomicU64::new(0);
pub static WRITE_FAILED: AtomicU64 = AtomicU64::new(0);

static REOPEN: AtomicBool = AtomicBool::new(false);

/// Close every log file before the next write (SIGUSR1).
pub fn reopen() {
    REOPEN.store(true, Relaxed);
}

/// Start the writer; it ends when every core's outbox is gone.
pub fn spawn(inbox: Inbox<LogFile>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ringmesh-logs".into())
        .spawn(move || run(inbox))
}

enum Out {
    Stdout,
    File(File),
}

fn run(inbox: Inbox<LogFile>) {
    super::lower_priority("ringmesh-logs");
    let mut open: HashMap<PathBuf, Out> = HashMap::new();
    let failures = crate::loglimit::LogLimit::default();
    while let Ok(batch) = inbox.batches.recv() {
        if REOPEN.swap(false, Relaxed) {
            open.clear();
        }
        let dest = &batch.dest;
        let result = write(&mut open, dest, &batch.buf);
        match result {
            Ok(()) => {
                WRITTEN.fetch_add(u64::from(batch.items), Relaxed);
            }
            Err(e) => {
                WRITE_FAILED.fetch_add(u64::from(batch.items), Relaxed);
                open.remove(&dest.path);
                if failures.allow() {
                    warn!(path = %dest.path.display(), lines = batch.items, error = %e, "access log write failed: lines dropped");
                }
            }
        }
        inbox.recycle(batch.core, batch.buf);
    }
    for out in open.values_mut() {
        let _ = match out {
            Out::Stdout => std::io::stdout().flush(),
            Out::File(f) => f.flush(),
        };
    }
}

fn write(open: &mut HashMap<PathBuf, Out>, dest: &LogFile, buf: &[u8]) -> std::io::Result<()> {
    if !open.contains_key(&dest.path) {
        let out = if dest.is_stdout() {
            Out::Stdout
        } else {
            Out::File(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&dest.path)?,
            )
        };
        open.insert(dest.path.clone(), out);
    }
    match open.get_mut(&dest.path) {
        Some(Out::Stdout) => {
            let mut out = std::io::stdout().lock();
            out.write_all(buf)?;
            out.flush()
        }
        Some(Out::File(f)) => f.write_all(buf),
        None => Ok(()),
    }
}
