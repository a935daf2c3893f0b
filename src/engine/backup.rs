//! `backup`: a consistent, verified copy of the store that is a store of its
//! own.
//!
//! It runs under the shared lock, so readers keep working and no writer can
//! change anything meanwhile. Sealed segments and their indexes are never
//! modified in place, so they are hard-linked when the destination is on the
//! same file system and copied otherwise. `active.seg` is copied only up to
//! the end of its last committed record, so a torn tail or an uncommitted
//! batch never reaches the backup. Every file is fsynced, then the
//! destination directory, then the backup is verified.

use std::path::Path;

use crate::engine::format::{self, ACTIVE_NAME, LOCK_NAME, TMP_SUFFIX};
use crate::engine::store::{Options, Progress, Store};
use crate::engine::verify;
use crate::engine::vfs::{EntryKind, VFile, Vfs, copy_new};
use crate::error::{Error, Result};

/// What a backup wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// Files hard-linked.
    pub linked: u64,
    /// Files copied.
    pub copied: u64,
    /// Bytes in the backup.
    pub bytes: u64,
}

/// Copies the open store to `dest`, which must not exist or be empty.
///
/// # Errors
/// [`Error::InvalidInput`] when `dest` is not empty, [`Error::Io`], and
/// [`Error::Corrupt`] when the finished backup does not verify.
pub fn backup(
    store: &Store,
    dest: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<BackupReport> {
    let vfs = &*store.opts.vfs;
    match vfs.kind(dest).map_err(|e| Error::io("stat", dest, e))? {
        None => {
            vfs.create_dir_all(dest)
                .map_err(|e| Error::io("create directory", dest, e))?;
        }
        Some(EntryKind::Dir) => {
            let entries = vfs.read_dir(dest).map_err(|e| Error::io("list", dest, e))?;
            if !entries.is_empty() {
                return Err(Error::invalid(format!(
                    "backup destination {} is not empty",
                    dest.display()
                )));
            }
        }
        Some(_) => {
            return Err(Error::invalid(format!(
                "backup destination {} exists and is not a directory",
                dest.display()
            )));
        }
    }
    let total = store.total_bytes();
    let mut report = BackupReport::default();
    let mut done = 0u64;
    for s in &store.sealed {
        // `s.path` rather than a name built from the number: a segment whose
        // seal was interrupted is still called active.seg in a read-only open.
        for (from, name, len) in [
            (s.path.clone(), format::segment_name(s.number), Some(s.len)),
            (s.idx_path(), format::index_name(s.number), None),
        ] {
            if vfs.kind(&from).ok().flatten().is_none() {
                // A missing index is rebuilt by the backup's first write.
                continue;
            }
            let to = dest.join(&name);
            if vfs.hard_link(&from, &to).is_ok() {
                report.linked += 1;
            } else {
                let file = vfs
                    .open_read(&from)
                    .map_err(|e| Error::io("open", &from, e))?;
                let n = match len {
                    Some(n) => n,
                    None => file.len().map_err(|e| Error::io("stat", &from, e))?,
                };
                copy(vfs, &*file, &from, dest, &name, n)?;
                report.copied += 1;
            }
            report.bytes += len.unwrap_or(0);
        }
        done += s.len;
        progress(Progress { done, total });
    }
    if let Some(file) = store.active.file.as_deref() {
        copy(
            vfs,
            file,
            &store.active.path,
            dest,
            ACTIVE_NAME,
            store.active.flushed,
        )?;
        report.copied += 1;
        report.bytes += store.active.flushed;
    }
    // A format-2 store's backup is the same store: same id, same members.
    if let Some(m) = &store.manifest {
        crate::engine::manifest::write(vfs, dest, m)?;
    }
    let lock = dest.join(LOCK_NAME);
    vfs.create_new(&lock)
        .map_err(|e| Error::io("create", &lock, e))?;
    vfs.sync_dir(dest)
        .map_err(|e| Error::io("fsync", dest, e))?;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        vfs.sync_dir(parent)
            .map_err(|e| Error::io("fsync", parent, e))?;
    }
    progress(Progress { done: total, total });
    let mut opts = Options::new(dest);
    opts.vfs = store.opts.vfs.clone();
    let check = verify::verify(&opts, &mut |_| {})?;
    if let Some(p) = check
        .problems
        .iter()
        .find(|p| p.kind == verify::ProblemKind::Damage)
    {
        return Err(Error::corrupt(
            dest.join(&p.file),
            p.offset.unwrap_or(0),
            format!("backup does not verify: {}", p.message),
        ));
    }
    Ok(report)
}

/// Copies the first `len` bytes of `file` to `dest/name` via a temporary
/// file, fsynced before the rename.
fn copy(
    vfs: &dyn Vfs,
    file: &dyn VFile,
    from: &Path,
    dest: &Path,
    name: &str,
    len: u64,
) -> Result<()> {
    let tmp = dest.join(format!("{name}{TMP_SUFFIX}"));
    copy_new(vfs, file, from, &tmp, len)?;
    let to = dest.join(name);
    vfs.rename(&tmp, &to)
        .map_err(|e| Error::io("rename", &to, e))
}
