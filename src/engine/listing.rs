//! What a data directory holds, read without changing anything: its files
//! by role, a segment's header, and (format 1) which sealed segments are
//! current by their compaction generations. Shared by open, verify, repair
//! and the lock's "is this a store" check; it owns no state.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::engine::format::{
    self, ACTIVE_INDEX_NAME, ACTIVE_NAME, SEG_FLAG_COMPACTED, SegmentHeader, TMP_SUFFIX,
};
use crate::engine::vfs::{EntryKind, VFile, Vfs};
use crate::error::{Error, IoContext, Result};

/// Files found in the data directory, by role.
#[derive(Default)]
pub(crate) struct Listing {
    pub segments: BTreeMap<u64, ()>,
    pub indexes: BTreeMap<u64, ()>,
    pub temps: Vec<String>,
    pub active: bool,
    pub active_index: bool,
}

impl Listing {
    /// True for a directory with none of stratum's data files in it.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.indexes.is_empty() && !self.active
    }
}

/// Lists the directory; entries with stratum's names that are not regular
/// files are damage, and everything else is ignored.
pub(crate) fn list_dir(vfs: &dyn Vfs, dir: &Path) -> Result<Listing> {
    let mut l = Listing::default();
    for (name, kind) in vfs.read_dir(dir).io("list", dir)? {
        let Some(name) = name.to_str() else { continue };
        let ours = name == ACTIVE_NAME || format::parse_segment_name(name).is_some();
        if ours && kind != EntryKind::File {
            return Err(Error::corrupt(
                dir.join(name),
                0,
                "is not a regular file (symlinks and other file types are refused)",
            ));
        }
        if name == ACTIVE_NAME {
            l.active = true;
        } else if name == ACTIVE_INDEX_NAME && kind == EntryKind::File {
            l.active_index = true;
        } else if let Some((n, is_index)) = format::parse_segment_name(name) {
            if is_index {
                l.indexes.insert(n, ());
            } else {
                l.segments.insert(n, ());
            }
        } else if name.ends_with(TMP_SUFFIX) && kind == EntryKind::File {
            l.temps.push(name.to_owned());
        }
    }
    Ok(l)
}

/// Reads and checks a segment's header.
pub(crate) fn read_header(file: &dyn VFile, path: &Path) -> Result<SegmentHeader> {
    let mut buf = [0u8; format::SEGMENT_HEADER_LEN];
    file.read_exact_at(&mut buf, 0).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::corrupt(path, 0, "file is shorter than a segment header")
        } else {
            Error::io("read", path, e)
        }
    })?;
    SegmentHeader::decode(&buf).map_err(|e| match e {
        format::HeaderError::Version(found) => Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
        },
        format::HeaderError::Bad(why) => Error::corrupt(path, 0, why),
    })
}

/// Decides which sealed segments are current, given their headers: segments
/// below the base of the newest complete compaction generation are
/// superseded; members of an incomplete generation newer than that are
/// leftovers of a compaction that did not commit. Returns (current, stale).
pub(crate) fn current_segments(headers: &BTreeMap<u64, SegmentHeader>) -> (Vec<u64>, Vec<u64>) {
    let mut gens: HashMap<u64, (u32, u32)> = HashMap::new();
    for h in headers.values() {
        if h.flags & SEG_FLAG_COMPACTED != 0 {
            let g = gens.entry(h.gen_base).or_insert((h.gen_count, 0));
            if g.0 == h.gen_count {
                g.1 += 1;
            }
        }
    }
    let complete_base = gens
        .iter()
        .filter(|(base, (count, seen))| {
            *count > 0
                && seen == count
                && (0..u64::from(*count)).all(|i| {
                    headers
                        .get(&(**base + i))
                        .is_some_and(|h| h.gen_base == **base && h.flags & SEG_FLAG_COMPACTED != 0)
                })
        })
        .map(|(base, _)| *base)
        .max()
        .unwrap_or(0);
    let mut current = Vec::new();
    let mut stale = Vec::new();
    for (&n, h) in headers {
        let superseded = n < complete_base;
        let uncommitted = h.flags & SEG_FLAG_COMPACTED != 0 && h.gen_base > complete_base;
        if superseded || uncommitted {
            stale.push(n);
        } else {
            current.push(n);
        }
    }
    (current, stale)
}
