//! `backup`: a consistent, verified copy of the store that is a store of its
//! own.
//!
//! It runs under the shared lock, so readers keep working and no writer can
//! change anything meanwhile. Every file is copied byte for byte, so the copy
//! shares no blocks with the source and survives a media error in it; or
//! sealed segments and their indexes (never modified in place) are
//! hard-linked where the file system allows ([`Sealed::Link`]), which is fast
//! but no protection against damage to those files. `active.seg` is copied
//! only up to the end of its last committed record, so a torn tail or an
//! uncommitted batch never reaches the backup.
//!
//! The copy is built in a hidden sibling directory (`.NAME.stratum-tmp`),
//! every file and that directory fsynced, then verified, and only then
//! renamed to the destination (and the parent directory fsynced). A backup
//! that fails for any reason (damage in the source, a full disk) removes what
//! it built and leaves the destination as it found it, so a retry starts
//! clean; one that is killed leaves only the hidden directory, which the next
//! backup to the same destination removes.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::engine::active::Active;
use crate::engine::format::{self, ACTIVE_NAME, LOCK_NAME, TMP_SUFFIX};
use crate::engine::options::{Options, Progress};
use crate::engine::sealed::SealedSet;
use crate::engine::verify;
use crate::engine::vfs::{EntryKind, VFile, Vfs, copy_new};
use crate::error::{Error, IoContext, Result};

/// What a backup copies: the store's options, its members and the file
/// `active.seg` stands for (its flushed bytes).
#[derive(Clone, Copy)]
pub(crate) struct Parts<'a> {
    pub opts: &'a Options,
    pub sealed: &'a SealedSet,
    pub active: &'a Active,
}

/// How a backup takes the sealed files, which are never modified in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sealed {
    /// Copy them byte for byte: the backup shares no blocks with the store.
    Copy,
    /// Hard-link them where the file system allows (else copy): fast, but
    /// damage to a linked file reaches both.
    Link,
}

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
/// `sealed` says whether sealed files are copied or hard-linked.
///
/// # Errors
/// [`Error::InvalidInput`] when `dest` is not empty, [`Error::Io`], and
/// [`Error::Corrupt`] when the finished backup does not verify. On any error
/// `dest` is left as it was.
pub(crate) fn backup(
    store: Parts<'_>,
    dest: &Path,
    sealed: Sealed,
    progress: &mut dyn FnMut(Progress),
) -> Result<BackupReport> {
    let vfs = &*store.opts.vfs;
    match vfs.kind(dest).io("stat", dest)? {
        None => {}
        Some(EntryKind::Dir) => {
            let entries = vfs.read_dir(dest).io("list", dest)?;
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
    let (parent, name) = match (dest.parent(), dest.file_name()) {
        (Some(p), Some(n)) => (
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            },
            n,
        ),
        _ => {
            return Err(Error::invalid(format!(
                "backup destination {} has no name of its own",
                dest.display()
            )));
        }
    };
    vfs.create_dir_all(parent).io("create directory", parent)?;
    let tmp = building_dir(parent, name);
    if vfs.kind(&tmp).io("stat", &tmp)?.is_some() {
        // Left by a backup that was killed.
        remove_build(vfs, &tmp)?;
    }
    vfs.create_dir_all(&tmp).io("create directory", &tmp)?;
    let built = build(store, &tmp, sealed, progress).and_then(|report| {
        vfs.rename(&tmp, dest).io("rename", dest)?;
        vfs.sync_dir(parent).io("fsync", parent)?;
        Ok(report)
    });
    if built.is_err() {
        // What failed is the error to report; a cleanup that fails too
        // leaves the hidden directory for the next backup to remove.
        let _ = remove_build(vfs, &tmp);
    }
    built
}

/// The hidden sibling a backup to `parent/name` is built in.
fn building_dir(parent: &Path, name: &OsStr) -> PathBuf {
    let mut hidden = std::ffi::OsString::from(".");
    hidden.push(name);
    hidden.push(TMP_SUFFIX);
    parent.join(hidden)
}

/// Removes a backup under construction: only names a backup writes, so a
/// directory that happens to have the name but holds anything else is
/// refused rather than emptied.
fn remove_build(vfs: &dyn Vfs, tmp: &Path) -> Result<()> {
    let entries = vfs.read_dir(tmp).io("list", tmp)?;
    for (name, kind) in &entries {
        let ours = name.to_str().is_some_and(|n| {
            n == LOCK_NAME
                || n == ACTIVE_NAME
                || n == format::MANIFEST_NAME
                || n == crate::engine::keys::BASE_NAME
                || n == crate::engine::keys::RECENT_NAME
                || n.ends_with(TMP_SUFFIX)
                || format::parse_segment_name(n).is_some()
        });
        if !ours || *kind != EntryKind::File {
            return Err(Error::invalid(format!(
                "{} holds {}, which no backup writes; remove it by hand",
                tmp.display(),
                Path::new(name).display()
            )));
        }
    }
    for (name, _) in entries {
        let p = tmp.join(name);
        vfs.remove_file(&p).io("remove", &p)?;
    }
    vfs.remove_dir(tmp).io("remove directory", tmp)
}

/// Writes the whole backup into `tmp`, fsyncs it and verifies it.
fn build(
    store: Parts<'_>,
    tmp: &Path,
    sealed: Sealed,
    progress: &mut dyn FnMut(Progress),
) -> Result<BackupReport> {
    let vfs = &*store.opts.vfs;
    let total = store.sealed.total_len() + store.active.len();
    let mut report = BackupReport::default();
    let mut done = 0u64;
    for s in store.sealed.iter() {
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
            let to = tmp.join(&name);
            if sealed == Sealed::Link && vfs.hard_link(&from, &to).is_ok() {
                report.linked += 1;
            } else {
                let file = vfs.open_read(&from).io("open", &from)?;
                let n = match len {
                    Some(n) => n,
                    None => file.len().io("stat", &from)?,
                };
                copy(vfs, &*file, &from, tmp, &name, n)?;
                report.copied += 1;
            }
            report.bytes += len.unwrap_or(0);
        }
        done += s.len;
        progress(Progress { done, total });
    }
    if let Some(file) = store.active.open_file() {
        copy(
            vfs,
            file,
            store.active.path(),
            tmp,
            ACTIVE_NAME,
            store.active.flushed(),
        )?;
        report.copied += 1;
        report.bytes += store.active.flushed();
    }
    // A format-2 store's backup is the same store: same id, same members.
    if let Some(m) = store.sealed.manifest() {
        crate::engine::manifest::write(vfs, tmp, m)?;
        // The same manifest, so the key index is bound to the copy as it
        // is to the store, and a restored store finds keys as fast
        // (docs/FORMAT.md §7.8). Copied whatever its state: a pair that
        // does not check is not used there either.
        for name in [
            crate::engine::keys::BASE_NAME,
            crate::engine::keys::RECENT_NAME,
        ] {
            let from = store.opts.dir.join(name);
            if vfs.kind(&from).ok().flatten() != Some(EntryKind::File) {
                continue;
            }
            let file = vfs.open_read(&from).io("open", &from)?;
            let n = file.len().io("stat", &from)?;
            copy(vfs, &*file, &from, tmp, name, n)?;
            report.copied += 1;
        }
    }
    let lock = tmp.join(LOCK_NAME);
    vfs.create_new(&lock).io("create", &lock)?;
    vfs.sync_dir(tmp).io("fsync", tmp)?;
    progress(Progress { done: total, total });
    let mut opts = Options::new(tmp);
    opts.vfs = store.opts.vfs.clone();
    let check = verify::verify(&opts, &mut |_| {})?;
    if let Some(p) = check
        .problems
        .iter()
        .find(|p| p.kind == verify::ProblemKind::Damage)
    {
        return Err(Error::corrupt(
            store.opts.dir.join(&p.file),
            p.offset.unwrap_or(0),
            format!(
                "the backup does not verify, nothing was kept: {}",
                p.message
            ),
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
    vfs.rename(&tmp, &to).io("rename", &to)
}
