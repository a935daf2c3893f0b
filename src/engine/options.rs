//! How a store is opened ([`Options`], [`Mode`]) and how long operations
//! report [`Progress`]: plain values every layer of the engine reads, owned
//! by the caller and never changed by the engine.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::vfs::{OsFs, Vfs};

/// How to open a store.
#[derive(Clone)]
pub struct Options {
    /// The data directory.
    pub dir: PathBuf,
    /// Seal `active.seg` once it would grow past this many bytes.
    pub segment_size: u64,
    /// fsync before acknowledging a write. Off keeps everything across a
    /// killed process but not across a power loss, which may leave the
    /// active segment needing `repair` (sealing and compaction still fsync).
    pub sync: bool,
    /// How long to wait for another process's lock.
    pub lock_timeout: Duration,
    /// The file system to use; [`OsFs`] unless testing.
    pub vfs: Arc<dyn Vfs>,
}

impl Options {
    /// Defaults: 64 MiB segments, fsync on, 10 s lock timeout, the real
    /// file system.
    pub fn new(dir: impl Into<PathBuf>) -> Options {
        Options {
            dir: dir.into(),
            segment_size: 64 * 1024 * 1024,
            sync: true,
            lock_timeout: Duration::from_secs(10),
            vfs: Arc::new(OsFs),
        }
    }

    /// Seals `active.seg` once it would grow past `bytes`.
    #[must_use]
    pub fn segment_size(mut self, bytes: u64) -> Options {
        self.segment_size = bytes;
        self
    }

    /// Acknowledges writes without fsync (see [`Options::sync`]): what a
    /// bulk job that can rerun itself after a power loss may choose.
    #[must_use]
    pub fn without_sync(mut self) -> Options {
        self.sync = false;
        self
    }

    /// Waits this long for another process's lock before giving up.
    #[must_use]
    pub fn lock_timeout(mut self, wait: Duration) -> Options {
        self.lock_timeout = wait;
        self
    }

    /// Uses this file system instead of the real one (for tests that
    /// simulate crashes and faults).
    #[must_use]
    pub fn vfs(mut self, vfs: Arc<dyn Vfs>) -> Options {
        self.vfs = vfs;
        self
    }
}

/// Read-only (shared lock) or read-write (exclusive lock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Shared lock; never creates or changes a file.
    Read,
    /// Exclusive lock; creates the store if needed and repairs a torn tail.
    Write,
}

/// Progress of a long operation: `done` of `total` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes processed so far.
    pub done: u64,
    /// Bytes to process in all.
    pub total: u64,
}
