//! The store lock: one `LOCK` file, `flock`ed for the whole invocation.
//!
//! Writers hold it exclusively, readers shared, so parallel reads do not
//! queue behind each other while a write or a compaction excludes everyone.
//! An `flock` dies with its process, so a killed stratum never leaves a stale
//! lock; the file itself is never deleted (deleting a held lock file would
//! let a second process lock a second inode).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::engine::vfs::{LockGuard, Vfs};
use crate::error::{Error, Result};

/// Takes the lock, waiting up to `timeout`.
///
/// # Errors
/// [`Error::LockTimeout`] when another process holds it for too long;
/// [`Error::Io`] when the lock file cannot be opened (or is a symlink).
pub(crate) fn acquire(
    vfs: &dyn Vfs,
    path: &Path,
    exclusive: bool,
    timeout: Duration,
) -> Result<Box<dyn LockGuard>> {
    let start = Instant::now();
    vfs.lock(path, exclusive, exclusive, timeout)
        .map_err(|e| Error::io("lock", path, e))?
        .ok_or_else(|| Error::LockTimeout {
            path: path.to_path_buf(),
            waited_secs: start.elapsed().as_secs_f64(),
        })
}

/// Takes the lock of an existing store (read-only tools that skip the normal
/// open: verify, salvage, repair); never creates the lock file.
///
/// # Errors
/// [`Error::NoStore`] when `dir` holds no `LOCK`; otherwise as [`acquire`].
pub(crate) fn acquire_existing(
    vfs: &dyn Vfs,
    dir: &Path,
    exclusive: bool,
    timeout: Duration,
) -> Result<Box<dyn LockGuard>> {
    let path = dir.join(crate::engine::format::LOCK_NAME);
    if vfs
        .kind(&path)
        .map_err(|e| Error::io("stat", &path, e))?
        .is_none()
    {
        return Err(Error::NoStore {
            path: dir.to_path_buf(),
        });
    }
    acquire(vfs, &path, exclusive, timeout)
}
