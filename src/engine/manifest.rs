//! The manifest file: reading it, and replacing it crash-safely.
//!
//! The manifest is the store's list of members (docs/FORMAT.md §7.7). It is
//! never changed in place: a new one is written to `MANIFEST.stratum-tmp`,
//! fsynced, renamed over `MANIFEST`, and the directory fsynced (§8.8), so
//! that after a crash the directory holds the old manifest or the new one,
//! each complete.

use std::path::Path;

use crate::engine::format::{
    self, HeaderError, IndexEntry, MANIFEST_NAME, Manifest, Member, TMP_SUFFIX,
};
use crate::engine::live::Figures;
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

/// Accumulates a member entry from a segment's index entries (any order)
/// and its length, format version and footer seq.
#[derive(Default)]
pub(crate) struct MemberStats {
    records: u64,
    keys: u64,
    min_seq: u64,
    min_doc: u64,
    max_doc: u64,
}

impl MemberStats {
    /// Counts one index entry.
    pub fn add(&mut self, e: &IndexEntry) {
        if e.is_key() {
            self.keys += 1;
            return;
        }
        if self.records == 0 {
            (self.min_doc, self.max_doc, self.min_seq) = (e.doc, e.doc, e.seq);
        }
        self.records += 1;
        self.min_doc = self.min_doc.min(e.doc);
        self.max_doc = self.max_doc.max(e.doc);
        self.min_seq = self.min_seq.min(e.seq);
    }

    /// The member entry of segment `number`.
    pub fn member(&self, number: u64, len: u64, version: u16, max_seq: u64, flags: u16) -> Member {
        Member {
            number,
            len,
            records: self.records,
            min_seq: if self.records == 0 {
                max_seq
            } else {
                self.min_seq
            },
            max_seq,
            min_doc: self.min_doc,
            max_doc: self.max_doc,
            keys: self.keys,
            live_bytes: format::UNKNOWN,
            dead_bytes: format::UNKNOWN,
            version,
            flags,
        }
    }
}

/// The figures the manifest holds (its members alone, as if `active.seg`
/// were empty), or `None` when any of them is "not known".
pub(crate) fn figures(m: &Manifest) -> Option<Figures> {
    let [documents, inputs, outputs, tombstones] = m.counters;
    if m.counters.contains(&format::UNKNOWN) {
        return None;
    }
    let mut live = std::collections::HashMap::with_capacity(m.members.len());
    for x in &m.members {
        if x.live_bytes == format::UNKNOWN || x.dead_bytes == format::UNKNOWN {
            return None;
        }
        live.insert(x.number, x.live_bytes);
    }
    Some(Figures {
        documents,
        inputs,
        outputs,
        tombstones,
        live,
    })
}

/// Stores `f` (figures of exactly the members, as if `active.seg` were
/// empty) in `m`; `None` marks every figure "not known".
pub(crate) fn set_figures(m: &mut Manifest, f: Option<&Figures>) {
    match f {
        Some(f) => {
            m.counters = [f.documents, f.inputs, f.outputs, f.tombstones];
            for x in &mut m.members {
                let live = f.live_of(x.number).min(x.len);
                (x.live_bytes, x.dead_bytes) = (live, x.len - live);
            }
        }
        None => {
            m.counters = [format::UNKNOWN; 4];
            for x in &mut m.members {
                (x.live_bytes, x.dead_bytes) = (format::UNKNOWN, format::UNKNOWN);
            }
        }
    }
}
