//! Opening a store: lock, directory listing, crash recovery, and replay of
//! the active segment into its in-memory index.
//!
//! # Recovery (see docs/FORMAT.md §Recovery)
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

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::engine::active::{self, Active};
use crate::engine::format::{
    self, ACTIVE_INDEX_NAME, ACTIVE_NAME, IndexEntry, IndexHeader, LOCK_NAME, SEG_FLAG_COMPACTED,
    SegmentHeader, TMP_SUFFIX,
};
use crate::engine::index::{self, IndexWriter, SealedIndex};
use crate::engine::lock;
use crate::engine::notice::Notice;
use crate::engine::segment::{self, Sealed};
use crate::engine::stale::Why;
use crate::engine::store::{Mode, Options, Store};
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

pub(crate) fn open(opts: Options, mode: Mode) -> Result<Store> {
    let vfs = opts.vfs.clone();
    let dir = opts.dir.clone();
    let write = mode == Mode::Write;
    match vfs.kind(&dir).io("stat", &dir)? {
        None if write => create_dirs(&*vfs, &dir)?,
        None => return Err(Error::NoStore { path: dir }),
        Some(EntryKind::Dir) => {}
        // A symlink to the store (`/srv/problems -> /mnt/disk2/problems`) is
        // followed for the directory itself; names inside it never are.
        Some(EntryKind::Other)
            if vfs.kind(&dir.join(".")).ok().flatten() == Some(EntryKind::Dir) => {}
        Some(_) => {
            return Err(Error::io(
                "open",
                &dir,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
    }
    let lock_path = dir.join(LOCK_NAME);
    let has_lock =
        || -> Result<bool> { Ok(vfs.kind(&lock_path).io("stat", &lock_path)?.is_some()) };
    let mut lock_existed = has_lock()?;
    if !lock_existed {
        // LOCK is made only with a new store: recreating a deleted one
        // while a writer still holds the old inode would let a second
        // writer in beside it.
        let err = lock::without_lock(&*vfs, &dir)?;
        let entries = vfs.read_dir(&dir).io("list", &dir)?;
        // A concurrent first write may have made the store since the
        // first look; it creates LOCK before any other file, so a second
        // look after the listing tells that from a deleted LOCK.
        lock_existed = has_lock()?;
        if !lock_existed {
            if !write || matches!(err, Error::LockMissing { .. }) {
                return Err(err);
            }
            if entries.iter().any(|(name, _)| name != "lost+found") {
                return Err(Error::NotAStore { path: dir });
            }
        }
    }
    let guard = lock::acquire_with(
        &*vfs,
        &lock_path,
        write,
        write && !lock_existed,
        opts.lock_timeout,
    )
    .map_err(|e| lock::vanished(e, &*vfs, &dir))?;
    if write && !lock_existed {
        // LOCK must be durable before any other file of the new store: after
        // a power loss the directory may keep later entries and lose earlier
        // ones, and a store's files without LOCK are refused as a deleted
        // lock (docs/FORMAT.md §10).
        vfs.sync_dir(&dir).io("fsync", &dir)?;
    }
    let listing = list_dir(&*vfs, &dir)?;
    match crate::engine::manifest::read(&*vfs, &dir)? {
        Some(m) => crate::engine::recover::open_v2(opts, mode, guard, &listing, m),
        None if write && listing.is_empty() => crate::engine::recover::create(opts, guard),
        None => {
            let mut store = open_v1(opts, mode, guard, listing)?;
            if write {
                crate::engine::recover::upgrade(&mut store)?;
            }
            Ok(store)
        }
    }
}

/// Opens a format-1 store (no manifest) as format 1 did: by the directory
/// listing and the compaction generations. A write open upgrades it next.
fn open_v1(
    opts: Options,
    mode: Mode,
    guard: Box<dyn crate::engine::vfs::LockGuard>,
    listing: Listing,
) -> Result<Store> {
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
        let mut s = open_sealed(&opts, mode, n, file, &mut dir_dirty, bind, None)?;
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
            let (scan, checkpoint) = scan_active(&opts, &*file, &active_path, len, None, bind)?;
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
                    write_index(
                        &opts,
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
                let mut map: HashMap<u64, Vec<IndexEntry>> = HashMap::new();
                for e in &scan.entries {
                    map.entry(e.doc).or_default().push(*e);
                }
                let (prefix, prefix_len, prefix_records) = match checkpoint {
                    Some((f, h)) => {
                        ckpt_marks = (h.max_seq, h.doc_hwm);
                        (
                            Some(SealedIndex::on_disk(dir.join(ACTIVE_INDEX_NAME), f, h)),
                            h.segment_len,
                            h.entries,
                        )
                    }
                    None => (None, format::SEGMENT_HEADER_LEN as u64, 0),
                };
                active = Active {
                    number,
                    version: scan.header.version,
                    path: active_path.clone(),
                    file: Some(file),
                    len: scan.end,
                    flushed: scan.end,
                    wbuf: Vec::new(),
                    map,
                    records: scan.records + prefix_records,
                    prefix,
                    prefix_len,
                };
                next_number = number + 1;
            }
        }
    }
    if !write && active.file.is_none() {
        // Numbered past any segment found above, including an active
        // segment that turned out sealed.
        active = Active::empty(next_number, active_path.clone());
    }
    if write && active.file.is_none() {
        if dir_dirty {
            vfs.sync_dir(&dir).io("fsync", &dir)?;
        }
        active = active::create_active(&dir, &*vfs, next_number.max(active.number), 0)?;
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
    Ok(Store::recovered(
        opts,
        mode,
        guard,
        sealed,
        active,
        (max_seq, doc_hwm),
        notices,
        None,
    ))
}

/// An open `active.idx` and its header.
type Checkpoint = (Box<dyn VFile>, IndexHeader);

/// Creates the data directory and every missing parent, fsyncing the parent
/// of each one created so that the new entries survive a power loss.
fn create_dirs(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    let parent_of = |p: &Path| match p.parent() {
        Some(q) if !q.as_os_str().is_empty() => q.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut missing = Vec::new();
    let mut p = dir.to_path_buf();
    while vfs.kind(&p).io("stat", &p)?.is_none() {
        let parent = parent_of(&p);
        missing.push(p);
        if parent == Path::new(".") || parent.parent().is_none() {
            break;
        }
        p = parent;
    }
    vfs.create_dir_all(dir).io("create directory", dir)?;
    for created in missing.iter().rev() {
        let parent = parent_of(created);
        vfs.sync_dir(&parent).io("fsync", &parent)?;
    }
    Ok(())
}

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

/// Opens one sealed segment with its index; rebuilds a missing or stale
/// index (write mode) or builds it in memory (read mode). With `counted`
/// (the manifest's count of the segment's entries), an index listing
/// another number is stale too.
pub(crate) fn open_sealed(
    opts: &Options,
    mode: Mode,
    n: u64,
    file: Box<dyn VFile>,
    dir_dirty: &mut bool,
    bind: crate::engine::index::Binding,
    counted: Option<u64>,
) -> Result<Sealed> {
    let vfs = &*opts.vfs;
    let path = opts.dir.join(format::segment_name(n));
    let idx_path = opts.dir.join(format::index_name(n));
    let len = file.len().io("stat", &path)?;
    let mut stale = None;
    let found = match index::open_index(vfs, &idx_path, n, len, bind)? {
        Some((_, h)) if counted.is_some_and(|c| c != h.entries) => {
            stale = counted.map(|counted| Why::Count {
                listed: h.entries,
                counted,
            });
            None
        }
        // There, but not this segment's (another segment's, another
        // length's, or a damaged header): stale, not merely missing.
        None if vfs.kind(&idx_path).ok().flatten().is_some() => {
            stale = Some(Why::Header);
            None
        }
        found => found,
    };
    if let Some((idx_file, header)) = found {
        return Ok(Sealed {
            number: n,
            version: bind.version,
            path,
            len,
            max_seq: header.max_seq,
            doc_hwm: header.doc_hwm,
            generation: None,
            handle: crate::engine::segment::Handle::ready(
                file,
                SealedIndex::on_disk(idx_path, idx_file, header),
            ),
            member: None,
            lazy: None,
        });
    }
    let scan = segment::scan(&*file, &path, true)?;
    if let Some(err) = scan.damage {
        return Err(err);
    }
    let mut entries = scan.entries;
    entries.sort_unstable_by_key(index::key);
    if mode == Mode::Write {
        write_index(opts, n, len, scan.max_seq, scan.doc_hwm, &entries, bind)?;
        *dir_dirty = true;
    }
    let index = SealedIndex::in_memory(idx_path, entries);
    if let Some(why) = stale {
        index.set_passed_over(why);
    }
    Ok(Sealed {
        number: n,
        version: bind.version,
        path,
        len,
        max_seq: scan.max_seq,
        doc_hwm: scan.doc_hwm,
        generation: None,
        handle: crate::engine::segment::Handle::ready(file, index),
        member: None,
        lazy: None,
    })
}

pub(crate) fn write_index(
    opts: &Options,
    n: u64,
    segment_len: u64,
    max_seq: u64,
    doc_hwm: u64,
    entries: &[IndexEntry],
    bind: crate::engine::index::Binding,
) -> Result<()> {
    let vfs = &*opts.vfs;
    let mut w = IndexWriter::create(vfs, &opts.dir, format::index_name(n))?;
    for e in entries {
        w.push(*e)?;
    }
    w.finish(
        vfs,
        &opts.dir,
        IndexHeader {
            version: bind.version,
            store_id: bind.store_id,
            segment: n,
            segment_len,
            entries: 0,
            max_seq,
            doc_hwm,
        },
        true,
    )
}
