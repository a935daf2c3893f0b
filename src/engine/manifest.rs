//! The manifest file: reading it, and replacing it crash-safely.
//!
//! The manifest is the store's list of members (docs/FORMAT.md §7.7). It is
//! never changed in place: a new one is written to `MANIFEST.stratum-tmp`,
//! fsynced, renamed over `MANIFEST`, and the directory fsynced (§8.8), so
//! that after a crash the directory holds the old manifest or the new one,
//! each complete.

use std::path::Path;

use crate::engine::format::{HeaderError, MANIFEST_NAME, Manifest, TMP_SUFFIX};
use crate::engine::vfs::Vfs;
use crate::error::{Error, IoContext, Result};

/// Largest manifest accepted: far above any real store (a member entry is
/// 88 bytes), small enough that a damaged length never costs much memory.
const MAX_MANIFEST: u64 = 256 << 20;

/// Reads and checks `MANIFEST`; `None` when the store has none (format 1,
/// or a new store).
///
/// # Errors
/// [`Error::Io`] when it cannot be read; [`Error::Corrupt`] when it does not
/// check; [`Error::UnsupportedVersion`] for another format version.
pub(crate) fn read(vfs: &dyn Vfs, dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST_NAME);
    let file = match vfs.open_read(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", &path, e)),
    };
    let len = file.len().io("stat", &path)?;
    if len > MAX_MANIFEST {
        return Err(Error::corrupt(&path, 0, "manifest is impossibly large"));
    }
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0).io("read", &path)?;
    match Manifest::decode(&buf) {
        Ok(m) => Ok(Some(m)),
        Err(HeaderError::Version(found)) => Err(Error::UnsupportedVersion { path, found }),
        Err(HeaderError::Bad(why)) => Err(Error::corrupt(&path, 0, why)),
    }
}

/// Replaces `MANIFEST` with `m` (docs/FORMAT.md §8.8): temporary file,
/// fsync, rename, fsync of the directory. Synced whatever `--no-sync` says:
/// membership is what every later open goes by.
///
/// # Errors
/// [`Error::Io`]; the old manifest then still holds.
pub(crate) fn write(vfs: &dyn Vfs, dir: &Path, m: &Manifest) -> Result<()> {
    let tmp = dir.join(format!("{MANIFEST_NAME}{TMP_SUFFIX}"));
    let _ = vfs.remove_file(&tmp);
    let file = vfs.create_new(&tmp).io("create", &tmp)?;
    file.write_all_at(&m.encode(), 0).io("write", &tmp)?;
    file.sync_data().io("fsync", &tmp)?;
    drop(file);
    let path = dir.join(MANIFEST_NAME);
    vfs.rename(&tmp, &path).io("rename", &path)?;
    vfs.sync_dir(dir).io("fsync", dir)
}
