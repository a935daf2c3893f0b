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
use crate::error::{Error, IoContext, Result};

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
    acquire_with(vfs, path, exclusive, false, timeout)
}

/// As [`acquire`]; `create` makes the lock file when it is missing, which
/// only the creation of a new store may do.
pub(crate) fn acquire_with(
    vfs: &dyn Vfs,
    path: &Path,
    exclusive: bool,
    create: bool,
    timeout: Duration,
) -> Result<Box<dyn LockGuard>> {
    let start = Instant::now();
    vfs.lock(path, exclusive, create, timeout)
        .io("lock", path)?
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
    if vfs.kind(&path).io("stat", &path)?.is_none() {
        return Err(without_lock(vfs, dir)?);
    }
    acquire(vfs, &path, exclusive, timeout).map_err(|e| vanished(e, vfs, dir))
}

/// The error for a directory without `LOCK`: [`Error::LockMissing`] when it
/// holds a store's files (the lock was deleted), else [`Error::NoStore`].
///
/// # Errors
/// [`Error::Io`] or [`Error::Corrupt`] from listing the directory.
pub(crate) fn without_lock(vfs: &dyn Vfs, dir: &Path) -> Result<Error> {
    if vfs.kind(dir).io("stat", dir)?.is_none() {
        return Ok(Error::NoStore {
            path: dir.to_path_buf(),
        });
    }
    let l = crate::engine::listing::list_dir(vfs, dir)?;
    Ok(
        if l.active || !l.segments.is_empty() || !l.indexes.is_empty() {
            Error::LockMissing {
                path: dir.join(crate::engine::format::LOCK_NAME),
            }
        } else {
            Error::NoStore {
                path: dir.to_path_buf(),
            }
        },
    )
}

/// A lock file that disappeared between the check and the open (or while
/// waiting) is a missing lock, not an I/O error.
pub(crate) fn vanished(e: Error, vfs: &dyn Vfs, dir: &Path) -> Error {
    match &e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            without_lock(vfs, dir).unwrap_or(e)
        }
        _ => e,
    }
}
