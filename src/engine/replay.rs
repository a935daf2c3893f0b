//! Replay: the parts of an open store ([`Parts`]) from its files, for a
//! format-1 store (no manifest: by the directory listing and compaction
//! generations), and of `active.seg` into its in-memory index for both
//! formats ([`scan_active`]). The lock and the format-2 recovery are
//! `engine::recover`'s, which calls down into this; `Store::open`
//! assembles the store from the parts.
//!
//! # Format-1 recovery (see docs/FORMAT.md §Recovery)
//! In write mode, before anything else is appended:
//! 1. temporary files (`*.stratum-tmp`) are removed;
//! 2. compaction output of an incomplete generation is removed; segments
//!    superseded by a complete generation are removed;
//! 3. a sealed segment whose index file is missing or stale gets it rebuilt;
//! 4. an `active.seg` that already ends in a seal footer is renamed into
//!    place (the crash came between footer and rename);
//! 5. a torn tail of `active.seg` (bytes after the last valid record, with no
//!    valid record after them) is truncated away, with a notice.
//!
//! Read mode does the same reasoning in memory and changes nothing on disk.

use std::collections::BTreeMap;
use std::path::Path;

use crate::engine::active::{self, Active, Replayed};
use crate::engine::format::Manifest;
use crate::engine::format::{
    self, ACTIVE_INDEX_NAME, ACTIVE_NAME, IndexHeader, SEG_FLAG_COMPACTED, SegmentHeader,
};
use crate::engine::index::{self, SealedIndex};
use crate::engine::listing::{Listing, current_segments, read_header};
use crate::engine::notice::Notice;
use crate::engine::options::{Mode, Options};
use crate::engine::segment::{self, Sealed};
use crate::engine::vfs::VFile;
use crate::error::{Error, IoContext, Result};

/// The parts of an open store, as recovery leaves them: `Store::open`
/// assembles the store from them, so recovery never sees a `Store`.
pub(crate) struct Parts {
    pub sealed: Vec<Sealed>,
    pub active: Active,
    /// (max seq, doc hwm) that recovery found outside the active segment's
    /// own records.
    pub marks: (u64, u64),
    pub notices: Vec<Notice>,
    /// The manifest as last written; `None` for a format-1 store.
    pub manifest: Option<Manifest>,
    /// What the assembled store still has to do before it is handed out.
    pub finish: Finish,
}

/// The steps of recovery that are writes of an open store (a manifest, a
/// seal, an upgrade), left for the assembled store to take in this order.
#[derive(Default)]
pub(crate) struct Finish {
    /// Write the manifest (a member was adopted).
    pub manifest: bool,
    /// Seal `active.seg` again (a seal was interrupted after its footer).
    pub reseal: bool,
    /// Upgrade a format-1 store opened for writing (docs/FORMAT.md §8.7).
    pub upgrade: bool,
}

/// Opens a format-1 store (no manifest) as format 1 did: by the directory
/// listing and the compaction generations. A write open upgrades it next.
pub(crate) fn open_v1(opts: &Options, mode: Mode, listing: Listing) -> Result<Parts> {
    let mut dir_dirty = false;
    let vfs = opts.vfs.clone();
    let dir = opts.dir.clone();
    let write = mode == Mode::Write;
    let mut notices = Vec::new();
    if write {
        for t in &listing.temps {
            let p = dir.join(t);
            vfs.remove_file(&p).io("remove", &p)?;
            dir_dirty = true;
        }
    }

    // Headers of sealed segments, and which of them are current.
    let mut files: BTreeMap<u64, Box<dyn VFile>> = BTreeMap::new();
    let mut headers = BTreeMap::new();
    for &n in listing.segments.keys() {
        let path = dir.join(format::segment_name(n));
        let file = vfs.open_read(&path).io("open", &path)?;
        let h = read_header(&*file, &path)?;
        if h.version != format::FORMAT_V1 {
            // Without a manifest, a format-2 segment is not this store's.
            return Err(Error::corrupt(
                &path,
                0,
                "a format-2 segment in a store without a manifest (copied in from another store?)",
            ));
        }
        if h.number != n {
            return Err(Error::corrupt(
                &path,
                0,
                format!("header says segment {}, the file name says {n}", h.number),
            ));
        }
        headers.insert(n, h);
        files.insert(n, file);
    }
    let (current, stale) = current_segments(&headers);
    let newest_base = headers
        .iter()
        .filter(|(n, h)| h.flags & SEG_FLAG_COMPACTED != 0 && current.contains(n))
        .map(|(_, h)| h.gen_base)
        .max()
        .unwrap_or(0);
    if write {
        if !stale.is_empty() {
            // The removals below rely on the new generation's renames: make
            // those durable first, as the crashed compaction may not have.
            vfs.sync_dir(&dir).io("fsync", &dir)?;
        }
        for n in &stale {
            for name in [format::segment_name(*n), format::index_name(*n)] {
                let p = dir.join(name);
                match vfs.remove_file(&p) {
                    Ok(()) => dir_dirty = true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove", &p, e)),
                }
            }
        }
        for &n in listing.indexes.keys() {
            if !listing.segments.contains_key(&n) {
                let p = dir.join(format::index_name(n));
                vfs.remove_file(&p).io("remove", &p)?;
                dir_dirty = true;
            }
        }
    }

    let mut sealed = Vec::with_capacity(current.len());
    for n in current {
        let Some(file) = files.remove(&n) else {
            continue;
        };
        let bind = crate::engine::index::Binding::V1;
        let mut s = segment::open_sealed(opts, mode, n, file, &mut dir_dirty, bind, None)?;
        s.generation = headers
            .get(&n)
            .filter(|h| h.flags & SEG_FLAG_COMPACTED != 0)
            .map(|h| (h.gen_base, h.gen_count));
        sealed.push(s);
    }

    let mut next_number = headers.keys().max().map_or(1, |m| m + 1);
    // (max_seq, doc_hwm) of the active segment's checkpointed part.
    let mut ckpt_marks = (0u64, 0u64);
    let mut active_max_seq = 0u64;
    let active_path = dir.join(ACTIVE_NAME);
    let mut active = Active::empty(next_number, active_path.clone());
    if listing.active {
        let file = if write {
            vfs.open_rw(&active_path)
        } else {
            vfs.open_read(&active_path)
        }
        .io("open", &active_path)?;
        let len = file.len().io("stat", &active_path)?;
        if len == 0 {
            // An empty active.seg holds nothing; a writer replaces it.
            if write {
                vfs.remove_file(&active_path).io("remove", &active_path)?;
                dir_dirty = true;
            }
        } else {
            let bind = crate::engine::index::Binding::V1;
            let (scan, checkpoint) = scan_active(opts, &*file, &active_path, len, None, bind)?;
            if let Some(err) = scan.damage {
                return Err(err);
            }
            if checkpoint.is_none() && write && listing.active_index {
                let p = dir.join(ACTIVE_INDEX_NAME);
                vfs.remove_file(&p).io("remove", &p)?;
            }
            let number = scan.header.number;
            let records = scan.records + checkpoint.as_ref().map_or(0, |(_, h)| h.entries);
            if number < next_number || number <= newest_base {
                if records > 0 {
                    return Err(Error::corrupt(
                        &active_path,
                        0,
                        format!(
                            "active segment number {number} is not newer than the sealed segments"
                        ),
                    ));
                }
                // An empty active segment left behind by a compaction.
                if write {
                    vfs.remove_file(&active_path).io("remove", &active_path)?;
                    dir_dirty = true;
                }
            } else if let Some(seal) = scan.seal {
                // Crash between the seal footer and the rename: finish it.
                let mut entries = scan.entries;
                entries.sort_unstable_by_key(index::key);
                let seg_path = dir.join(format::segment_name(number));
                let idx_path = dir.join(format::index_name(number));
                let file = if write {
                    // Bytes after the footer are a torn write of the next
                    // command; a sealed segment ends at its footer.
                    if scan.file_len > scan.end {
                        file.set_len(scan.end)
                            .and_then(|()| file.sync_data())
                            .io("truncate", &active_path)?;
                    }
                    vfs.rename(&active_path, &seg_path)
                        .io("rename", &seg_path)?;
                    dir_dirty = true;
                    segment::write_index(
                        opts,
                        number,
                        scan.end,
                        seal.max_seq,
                        scan.doc_hwm,
                        &entries,
                        crate::engine::index::Binding::V1,
                    )?;
                    vfs.open_read(&seg_path).io("open", &seg_path)?
                } else {
                    file
                };
                sealed.push(Sealed {
                    number,
                    version: scan.header.version,
                    path: if write { seg_path } else { active_path.clone() },
                    len: scan.end,
                    max_seq: scan.max_seq,
                    doc_hwm: scan.doc_hwm,
                    generation: None,
                    handle: crate::engine::segment::Handle::ready(
                        file,
                        SealedIndex::in_memory(idx_path, entries),
                    ),
                    member: None,
                    lazy: None,
                });
                next_number = number + 1;
            } else {
                if let Some((at, _)) = &scan.bad_at {
                    let dropped = scan.file_len - scan.end;
                    if write {
                        file.set_len(scan.end).io("truncate", &active_path)?;
                        file.sync_data().io("fsync", &active_path)?;
                        notices.push(Notice::DiscardedIncompleteWrite {
                            path: active_path.clone(),
                            bytes: dropped,
                            offset: *at.min(&scan.end),
                        });
                    }
                }
                // The scan's max seq counts commit records too, which have
                // no index entry: the next seq must be above them.
                active_max_seq = scan.max_seq;
                let checkpoint = match checkpoint {
                    Some((f, h)) => {
                        ckpt_marks = (h.max_seq, h.doc_hwm);
                        Some((
                            SealedIndex::on_disk(dir.join(ACTIVE_INDEX_NAME), f, h),
                            h.segment_len,
                            h.entries,
                        ))
                    }
                    None => None,
                };
                let prefix_records = checkpoint.as_ref().map_or(0, |c| c.2);
                active = Active::recovered(Replayed {
                    file,
                    header: scan.header,
                    path: active_path.clone(),
                    end: scan.end,
                    entries: scan.entries,
                    records: scan.records + prefix_records,
                    checkpoint: checkpoint.map(|(index, len, _)| (index, len)),
                });
                next_number = number + 1;
            }
        }
    }
    if !write && active.open_file().is_none() {
        // Numbered past any segment found above, including an active
        // segment that turned out sealed.
        active = Active::empty(next_number, active_path.clone());
    }
    if write && active.open_file().is_none() {
        if dir_dirty {
            vfs.sync_dir(&dir).io("fsync", &dir)?;
        }
        active = active::create_active(&dir, &*vfs, next_number.max(active.number()), 0)?;
        dir_dirty = false;
    }
    if write && dir_dirty {
        vfs.sync_dir(&dir).io("fsync", &dir)?;
    }
    sealed.sort_by_key(|s| s.number);

    let max_seq = sealed
        .iter()
        .map(|s| s.max_seq)
        .max()
        .unwrap_or(0)
        .max(ckpt_marks.0)
        .max(active_max_seq);
    let doc_hwm = sealed
        .iter()
        .map(|s| s.doc_hwm)
        .max()
        .unwrap_or(0)
        .max(ckpt_marks.1);
    Ok(Parts {
        sealed,
        active,
        marks: (max_seq, doc_hwm),
        notices,
        manifest: None,
        finish: Finish {
            upgrade: write,
            ..Finish::default()
        },
    })
}

/// An open `active.idx` and its header.
type Checkpoint = (Box<dyn VFile>, IndexHeader);

/// Scans `active.seg`, from its checkpoint (`active.idx`) when one is valid
/// for it. A checkpoint that does not fit the segment exactly (the tail
/// after it does not scan cleanly, or the segment turns out sealed) is
/// ignored and the whole segment is scanned instead.
pub(crate) fn scan_active(
    opts: &Options,
    file: &dyn VFile,
    path: &Path,
    len: u64,
    header: Option<SegmentHeader>,
    bind: crate::engine::index::Binding,
) -> Result<(segment::Scan, Option<Checkpoint>)> {
    // The header once: a caller that has read it passes it on.
    let header = match header {
        Some(h) => h,
        None => read_header(file, path)?,
    };
    let known = segment::Known { header, len };
    let ckpt_path = opts.dir.join(ACTIVE_INDEX_NAME);
    if let Some((f, h)) = index::open_index_covering(
        &*opts.vfs,
        &ckpt_path,
        header.number,
        format::SEGMENT_HEADER_LEN as u64..=len,
        bind,
    )? {
        let from = Some((h.segment_len, h.max_seq));
        let depth = segment::ScanDepth::Structure;
        if let Ok(scan) = segment::scan_known(file, path, false, known, from, depth, &mut |_| {})
            && scan.damage.is_none()
            && scan.seal.is_none()
        {
            return Ok((scan, Some((f, h))));
        }
    }
    let depth = segment::ScanDepth::Structure;
    let scan = segment::scan_known(file, path, false, known, None, depth, &mut |_| {})?;
    Ok((scan, None))
}
