//! Salvage and repair of a damaged store.
//!
//! Both scan every segment with resynchronisation: after a record that fails
//! its check, the scan moves forward a byte at a time to the next record
//! that passes its CRC, so everything undamaged is found. Every intact record
//! of a batch is kept when anything valid follows the batch (its commit, or
//! a later write: recovery truncates an uncommitted batch before the next
//! write, so a batch with writes after it was committed, and only damage can
//! have taken its commit record). Only the records of a batch still open at
//! the end of a file are left out, and counted: that batch was never
//! acknowledged.
//!
//! `salvage` only reads. `repair` rewrites each damaged segment with the
//! records that survive, moves the damaged original into `quarantine/`
//! (never deleting it), and then compacts, so the result verifies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::format::{
    self, ACTIVE_NAME, FLAG_BATCH, Kind, SEG_FLAG_COMPACTED, SEGMENT_HEADER_LEN, SealPayload,
    SegmentHeader, TMP_SUFFIX,
};
use crate::engine::index::Entry;
use crate::engine::lock;
use crate::engine::salvage::{Salvaged, salvage_scan};
use crate::engine::segment::{self};
use crate::engine::store::{Options, Progress, Store, resolve};
use crate::engine::vfs::{VFile, Vfs, copy_new};
use crate::error::{Error, IoContext, Result};
use crate::json::Json;
use crate::model::{DocId, Document, Node, NodeId};

/// Directory inside the store where `repair` moves damaged files.
pub const QUARANTINE_DIR: &str = "quarantine";

/// A segment file found by [`segment_files`].
struct SegFile {
    path: PathBuf,
    file: Box<dyn VFile>,
    /// The header, or for an unreadable one the best inference: a member of
    /// the compaction generation whose number range covers it, else a plain
    /// segment. `None` for `active.seg`.
    header: Option<SegmentHeader>,
}

/// The segment files of a store, in numeric order, `active.seg` last;
/// superseded and uncommitted compaction leftovers are skipped as their
/// headers (read or inferred) say.
///
/// In a format-2 store (`manifest` given) the files are its members, each
/// with this store's id (a member whose header is unreadable is assumed
/// ours), and `active.seg` if it carries this store's id: extra and foreign
/// files are never salvaged.
fn segment_files(
    vfs: &dyn Vfs,
    dir: &Path,
    manifest: Option<&format::Manifest>,
) -> Result<Vec<SegFile>> {
    let listing = crate::engine::listing::list_dir(vfs, dir)?;
    let mut decoded = BTreeMap::new();
    let mut files = BTreeMap::new();
    for &n in listing.segments.keys() {
        let path = dir.join(format::segment_name(n));
        let file = vfs.open_read(&path).io("open", &path)?;
        let mut buf = [0u8; SEGMENT_HEADER_LEN];
        match file
            .read_exact_at(&mut buf, 0)
            .ok()
            .map(|()| SegmentHeader::decode(&buf))
        {
            Some(Ok(h)) => {
                decoded.insert(n, h);
            }
            // Written by a newer stratum: not damage, and not ours to
            // reinterpret under this version's rules.
            Some(Err(format::HeaderError::Version(found))) => {
                return Err(Error::UnsupportedVersion { path, found });
            }
            _ => {}
        }
        files.insert(n, (path, file));
    }
    let mut headers = BTreeMap::new();
    for &n in files.keys() {
        let h = decoded.get(&n).copied().unwrap_or_else(|| {
            let generation = decoded.values().find(|h| {
                h.flags & SEG_FLAG_COMPACTED != 0
                    && (h.gen_base..h.gen_base + u64::from(h.gen_count)).contains(&n)
            });
            match generation {
                Some(g) => SegmentHeader { number: n, ..*g },
                None => SegmentHeader {
                    version: format::FORMAT_V1,
                    store_id: 0,
                    flags: 0,
                    number: n,
                    gen_base: 0,
                    gen_count: 0,
                },
            }
        });
        headers.insert(n, h);
    }
    let (mut current, _) = crate::engine::listing::current_segments(&headers);
    if let Some(m) = manifest {
        current = m
            .members
            .iter()
            .filter(|x| files.contains_key(&x.number))
            .filter(|x| {
                let id = if x.version == format::FORMAT_V1 {
                    0
                } else {
                    m.store_id
                };
                decoded
                    .get(&x.number)
                    .is_none_or(|h| h.version == x.version && h.store_id == id)
            })
            .map(|x| x.number)
            .collect();
        for &n in &current {
            if !decoded.contains_key(&n) {
                headers.insert(n, SegmentHeader::v2(n, m.store_id, 0));
            }
        }
    }
    let mut out = Vec::new();
    for n in current {
        if let Some((path, file)) = files.remove(&n) {
            out.push(SegFile {
                path,
                file,
                header: headers.get(&n).copied(),
            });
        }
    }
    if listing.active {
        let path = dir.join(ACTIVE_NAME);
        let file = vfs.open_read(&path).io("open", &path)?;
        let mut buf = [0u8; SEGMENT_HEADER_LEN];
        let foreign = manifest.is_some_and(|m| {
            file.read_exact_at(&mut buf, 0).is_ok()
                && SegmentHeader::decode(&buf).is_ok_and(|h| h.store_id != m.store_id)
        });
        if !foreign {
            out.push(SegFile {
                path,
                file,
                header: None,
            });
        }
    }
    Ok(out)
}

/// Totals of a salvage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SalvageReport {
    /// Files scanned.
    pub files: u64,
    /// Records that passed their check.
    pub good_records: u64,
    /// Bytes that could not be read.
    pub damaged_bytes: u64,
    /// Documents recovered.
    pub documents: u64,
    /// Intact records left out because they belong to a batch with no commit
    /// record at the end of a file: never acknowledged.
    pub uncommitted_records: u64,
}

/// Reads every undamaged record of the store in `opts.dir` and calls `f`
/// with each live document it can rebuild, in id order. Works on stores that
/// refuse to open; changes nothing.
///
/// # Errors
/// [`Error::NoStore`], [`Error::LockTimeout`], [`Error::Io`], or what `f`
/// returns. Damage is skipped, not an error.
pub fn salvage(
    opts: &Options,
    f: &mut dyn FnMut(&Document) -> Result<()>,
) -> Result<SalvageReport> {
    let vfs = &*opts.vfs;
    let _guard = lock::acquire_existing(vfs, &opts.dir, false, opts.lock_timeout)?;
    let manifest = crate::engine::manifest::read(vfs, &opts.dir).ok().flatten();
    let files = segment_files(vfs, &opts.dir, manifest.as_ref())?;
    let mut report = SalvageReport::default();
    let mut by_doc: BTreeMap<u64, Vec<Entry>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        let s = salvage_scan(&*f.file, &f.path)?;
        report.files += 1;
        report.good_records += s.good_records;
        report.damaged_bytes += s.damaged.iter().map(|(a, b)| b - a).sum::<u64>();
        report.uncommitted_records += s.uncommitted;
        for e in &s.entries {
            by_doc
                .entry(e.doc)
                .or_default()
                .push(Entry::new(e, i as u64));
        }
    }
    for (id, entries) in by_doc {
        let Some(view) = resolve(&entries) else {
            continue;
        };
        let read = |e: &Entry| -> Option<(u8, Vec<u8>)> {
            let f = files.get(e.seg as usize)?;
            segment::read_record(&*f.file, &f.path, e)
                .ok()
                .map(|(h, p)| (h.flags, p))
        };
        let Some(doc) = read(&view.doc).and_then(|(fl, p)| format::decode_doc(&p, fl).ok()) else {
            continue;
        };
        let mut inputs = Vec::new();
        for (n, (input, output)) in &view.nodes {
            let Some((flags, p)) = read(input) else {
                continue;
            };
            let Ok((text, own_meta, embedded)) = format::decode_input(&p, flags) else {
                continue;
            };
            let Some(input_json) = utf8_json(text) else {
                continue;
            };
            let output = match output {
                None => None,
                Some(o) if o.seg == input.seg && o.offset == input.offset => {
                    utf8_json(embedded).filter(|_| format::output_present(flags, embedded))
                }
                Some(o) => read(o)
                    .filter(|(fl, p)| format::output_present(*fl, p))
                    .and_then(|(_, p)| utf8_json(&p)),
            };
            let meta = match view.metas.get(n) {
                Some(m) => read(m).and_then(|(_, p)| utf8_json(&p)),
                None => own_meta.and_then(utf8_json),
            };
            inputs.push(Node {
                id: NodeId(input.node),
                input: input_json,
                meta,
                output,
            });
        }
        report.documents += 1;
        f(&Document {
            id: DocId(id),
            key: doc.key,
            category: doc.category,
            version: doc.version,
            meta: doc.meta.as_deref().and_then(|m| utf8_json(m.as_bytes())),
            body: doc.body,
            inputs,
        })?;
    }
    Ok(report)
}

fn utf8_json(b: &[u8]) -> Option<Json> {
    let s = std::str::from_utf8(b).ok()?;
    Json::parse(s).ok()
}

/// What `repair` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Files found damaged and moved to `quarantine/`.
    pub quarantined: Vec<String>,
    /// Records kept from damaged files.
    pub records_kept: u64,
    /// Members the manifest listed that were missing or not this store's,
    /// and so are no longer part of it.
    pub dropped: Vec<String>,
    /// Bytes of damaged files that could not be read.
    pub damaged_bytes: u64,
    /// Intact records left out: a batch with no commit record at the end
    /// of a file, never acknowledged.
    pub uncommitted_records: u64,
    /// Index files of intact segments that were missing or disagreed with
    /// their segment, written again from it.
    pub reindexed: Vec<String>,
}

/// Salvages a damaged store in place: every damaged segment is rewritten
/// with the records that pass their CRC, the original is moved to
/// `quarantine/` (never deleted), and the store is then compacted so that it
/// verifies. A store without damage is only compacted.
///
/// # Errors
/// [`Error::NoStore`], [`Error::LockTimeout`], [`Error::Io`].
pub fn repair(opts: &Options, progress: &mut dyn FnMut(Progress)) -> Result<RepairReport> {
    let vfs = &*opts.vfs;
    let dir = &opts.dir;
    let mut report = RepairReport::default();
    // Let the normal recovery finish what a crash left (an interrupted seal
    // or compaction, leftovers) when it can: repair then starts from the
    // store every other command sees. A store that refuses to open is
    // repaired as it is.
    if crate::engine::manifest::read(vfs, dir).is_ok_and(|m| m.is_some()) {
        drop(Store::open(opts.clone()));
    }
    {
        let _guard = lock::acquire_existing(vfs, dir, true, opts.lock_timeout)?;
        let manifest = match crate::engine::manifest::read(vfs, dir) {
            Ok(m) => m,
            Err(e @ (Error::Io { .. } | Error::UnsupportedVersion { .. })) => return Err(e),
            // A damaged manifest: this build cannot tell members from
            // foreign files without it.
            Err(e) => return Err(e),
        };
        // The key index is derived from the members' indexes, which this
        // repair may rewrite: dropped here, and rebuilt by the commit of
        // the compaction below (docs/FORMAT.md §7.8).
        crate::engine::keys::remove(vfs, dir)?;
        let files = segment_files(vfs, dir, manifest.as_ref())?;
        let mut rewritten = Vec::new();
        let top = files
            .iter()
            .filter_map(|f| f.header.map(|h| h.number))
            .max()
            .unwrap_or(0);
        // Every damaged file is read first, and the space its rewrite needs
        // checked, so that a repair that cannot finish changes nothing.
        let mut damaged_files = Vec::new();
        for f in &files {
            let (path, file) = (&f.path, &*f.file);
            let damaged = match segment::scan(file, path, f.header.is_some()) {
                Ok(s) if s.damage.is_none() => {
                    if let Some(h) = f.header {
                        reindex_if_stale(opts, h, s, &mut report)?;
                    }
                    false
                }
                Ok(_) => true,
                Err(e @ Error::UnsupportedVersion { .. }) => return Err(e),
                Err(_) => true,
            };
            if damaged {
                damaged_files.push((f, salvage_scan(file, path)?));
            }
        }
        let needed = damaged_files
            .iter()
            .flat_map(|(_, s)| s.entries.iter().map(|e| u64::from(e.len)))
            .sum::<u64>()
            + (1 << 20);
        if !damaged_files.is_empty() {
            let available = vfs.available_space(dir).io("statvfs", dir)?;
            if available < needed {
                return Err(Error::NoSpace {
                    path: dir.clone(),
                    needed,
                    available,
                });
            }
        }
        for (f, s) in damaged_files {
            let (path, file) = (&f.path, &*f.file);
            // A sealed segment keeps its number and its place in its
            // compaction generation (or the other members would look like
            // leftovers); the active segment becomes the newest sealed one.
            let header = match (f.header, s.header) {
                (Some(h), _) => h,
                (None, Some(h)) if h.number > top => SegmentHeader {
                    version: format::FORMAT_V1,
                    store_id: 0,
                    flags: 0,
                    gen_base: 0,
                    gen_count: 0,
                    ..h
                },
                (None, _) => match &manifest {
                    Some(m) => SegmentHeader::v2(top + 1, m.store_id, 0),
                    None => SegmentHeader {
                        version: format::FORMAT_V1,
                        store_id: 0,
                        flags: 0,
                        number: top + 1,
                        gen_base: 0,
                        gen_count: 0,
                    },
                },
            };
            rewrite_segment(opts, file, path, header, &s)?;
            rewritten.push(header.number);
            report.quarantined.push(
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            report.records_kept += s.entries.len() as u64;
            report.damaged_bytes += s.damaged.iter().map(|(a, b)| b - a).sum::<u64>();
            report.uncommitted_records += s.uncommitted;
        }
        if let Some(m) = manifest {
            relist_members(opts, m, &files, &rewritten, &mut report)?;
        }
    }
    // Every file now reads cleanly; a compaction drops what lost its parent
    // (an output whose input was damaged, nodes of a lost document).
    let mut store = Store::open(opts.clone())?;
    store.compact(progress)?;
    Ok(report)
}

/// Writes the index of an intact sealed segment again from its scan when
/// the index file disagrees with it (issue 9 item 6): the compaction that
/// follows reads through the indexes, and an index that left a record out
/// would lose it there.
fn reindex_if_stale(
    opts: &Options,
    h: SegmentHeader,
    scan: segment::Scan,
    report: &mut RepairReport,
) -> Result<()> {
    let bind = crate::engine::index::Binding {
        version: h.version,
        store_id: if h.version == format::FORMAT_V1 {
            0
        } else {
            h.store_id
        },
    };
    let mut entries = scan.entries;
    entries.sort_unstable_by_key(crate::engine::index::key);
    let on_disk =
        crate::engine::index::index_entries(&*opts.vfs, &opts.dir, h.number, scan.file_len, bind);
    if on_disk.as_ref() == Some(&entries) {
        return Ok(());
    }
    let n = h.number;
    segment::write_index(
        opts,
        n,
        scan.file_len,
        scan.max_seq,
        scan.doc_hwm,
        &entries,
        bind,
    )?;
    opts.vfs.sync_dir(&opts.dir).io("fsync", &opts.dir)?;
    report.reindexed.push(format::index_name(n));
    Ok(())
}

/// After the rewrites, the manifest of a format-2 store lists what survives:
/// members still there and of this store (their entries recomputed, as a
/// rewrite changes them), a damaged active segment rewritten as a sealed
/// one, and a new empty `active.seg` when the old one is gone or was
/// rewritten. The id high-water marks are kept, so no id is reused.
fn relist_members(
    opts: &Options,
    mut m: format::Manifest,
    files: &[SegFile],
    rewritten: &[u64],
    report: &mut RepairReport,
) -> Result<()> {
    let vfs = &*opts.vfs;
    let dir = &opts.dir;
    let kept: Vec<u64> = files
        .iter()
        .filter_map(|f| f.header.map(|h| h.number))
        .chain(rewritten.iter().copied())
        .collect();
    let mut members = Vec::new();
    for member in &m.members {
        if !kept.contains(&member.number) {
            report.dropped.push(format::segment_name(member.number));
        }
    }
    let mut numbers: Vec<u64> = kept;
    numbers.sort_unstable();
    numbers.dedup();
    for n in numbers {
        let path = dir.join(format::segment_name(n));
        let file = vfs.open_read(&path).io("open", &path)?;
        let scan = segment::scan(&*file, &path, true)?;
        if let Some(err) = scan.damage {
            return Err(err);
        }
        let mut stats = crate::engine::index::MemberStats::default();
        for e in &scan.entries {
            stats.add(e);
        }
        members.push(stats.member(n, scan.end, scan.header.version, scan.max_seq, 0));
        m.doc_hwm = m.doc_hwm.max(scan.doc_hwm);
        m.max_seq = m.max_seq.max(scan.max_seq);
    }
    // The active segment survives if it is this store's (it is among
    // `files`) and was not rewritten into a sealed segment.
    let active_path = dir.join(ACTIVE_NAME);
    let active_ok = files
        .iter()
        .any(|f| f.header.is_none() && f.path == active_path)
        && vfs.kind(&active_path).ok().flatten().is_some()
        && !rewritten.contains(&m.active);
    let top = members.iter().map(|x| x.number).max().unwrap_or(0);
    m.members = members;
    if !active_ok {
        let number = m.next_number.max(top + 1).max(m.active + 1);
        crate::engine::active::create_active(dir, vfs, number, m.store_id)?;
        m.active = number;
    }
    m.next_number = m.next_number.max(top + 1).max(m.active + 1);
    m.serial += 1;
    m.counters = [format::UNKNOWN; 4];
    crate::engine::manifest::write(vfs, dir, &m)
}

/// Writes the salvaged records of `file` as sealed segment `number` and moves
/// the original into quarantine.
fn rewrite_segment(
    opts: &Options,
    file: &dyn VFile,
    path: &Path,
    header: SegmentHeader,
    s: &Salvaged,
) -> Result<()> {
    let number = header.number;
    let vfs = &*opts.vfs;
    let tmp = opts
        .dir
        .join(format!("{}{TMP_SUFFIX}", format::segment_name(number)));
    let _ = vfs.remove_file(&tmp);
    let r = write_salvaged(opts, file, path, header, s, &tmp)
        .and_then(|()| replace_segment(opts, file, path, number, &tmp));
    if r.is_err() {
        // The original keeps its name until the final rename, so a failure
        // leaves only this temporary file (removed here, or by the next
        // write).
        let _ = vfs.remove_file(&tmp);
    }
    r
}

/// Writes the salvaged records of `file` to `tmp` as sealed segment
/// `header.number`, and fsyncs it.
fn write_salvaged(
    opts: &Options,
    file: &dyn VFile,
    path: &Path,
    header: SegmentHeader,
    s: &Salvaged,
    tmp: &Path,
) -> Result<()> {
    let vfs = &*opts.vfs;
    let out = vfs.create_new(tmp).io("create", tmp)?;

    let mut buf = header.encode().to_vec();
    let mut max_seq = 0;
    let mut doc_hwm = 0;
    for e in &s.entries {
        let mut rec = vec![0u8; e.len as usize];
        file.read_exact_at(&mut rec, e.offset).io("read", path)?;
        let (h, payload) = format::decode_record(&rec)
            .map_err(|_| Error::corrupt(path, e.offset, "record changed while repairing"))?;
        // Batches were applied when their commit was read; the copies stand
        // on their own, so they lose the batch flag.
        format::encode_record(
            &mut buf,
            h.seq,
            h.kind,
            h.flags & !FLAG_BATCH,
            h.doc,
            h.node,
            payload,
            &[],
        );
        max_seq = h.seq;
        if h.kind == Kind::DocPut {
            doc_hwm = doc_hwm.max(h.doc);
        }
    }
    // The old footer knew the id high-water mark (ids of deleted documents
    // included); keep it so those ids are never handed out again.
    if let Some(seal) = s.seal {
        doc_hwm = doc_hwm.max(seal.doc_hwm);
        max_seq = max_seq.max(seal.max_seq);
    }
    let seal_seq = max_seq + 1;
    let footer = SealPayload {
        records: s.entries.len() as u64,
        max_seq: seal_seq,
        doc_hwm,
    };
    format::encode_record(
        &mut buf,
        seal_seq,
        Kind::Seal,
        0,
        0,
        0,
        &footer.encode(),
        &[],
    );
    out.write_all_at(&buf, 0).io("write", tmp)?;
    out.sync_data().io("fsync", tmp)
}

/// Moves the original `path` into quarantine (a second name first) and
/// renames the rewritten `tmp` into place as segment `number`.
fn replace_segment(
    opts: &Options,
    file: &dyn VFile,
    path: &Path,
    number: u64,
    tmp: &Path,
) -> Result<()> {
    let vfs = &*opts.vfs;
    let dir = &opts.dir;
    let qdir = dir.join(QUARANTINE_DIR);
    vfs.create_dir_all(&qdir).io("create directory", &qdir)?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The original gets its second name in quarantine before its first name
    // is replaced, so a crash at any point leaves it reachable.
    // A name not taken yet: a repair killed earlier in the same second may
    // have linked the first one already.
    let mut aside = qdir.join(format!("{name}.{stamp}"));
    let mut k = 1;
    while vfs.kind(&aside).io("stat", &aside)?.is_some() {
        aside = qdir.join(format!("{name}.{stamp}.{k}"));
        k += 1;
    }
    if vfs.hard_link(path, &aside).is_err() {
        let len = file.len().io("stat", path)?;
        copy_new(vfs, file, path, &aside, len)?;
    }
    vfs.sync_dir(&qdir).io("fsync", &qdir)?;
    let idx = dir.join(format::index_name(number));
    let _ = vfs.remove_file(&idx);
    let dest = dir.join(format::segment_name(number));
    vfs.rename(tmp, &dest).io("rename", &dest)?;
    if dest != path {
        vfs.remove_file(path).io("remove", path)?;
    }
    vfs.sync_dir(dir).io("fsync", dir)
}
