//! `verify`: reads every byte of every file and reports each problem with its
//! file and offset, instead of stopping at the first.
//!
//! It does not use the normal open (which refuses a damaged store): it takes
//! the shared lock and scans the files itself, so it works on exactly the
//! stores that need it most.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::engine::format::{self, IndexEntry, Kind};
use crate::engine::index;
use crate::engine::lock;
use crate::engine::replay::{self, Listing};
use crate::engine::segment::{self, Scan};
use crate::engine::store::{Options, Progress, Store};
use crate::engine::vfs::{VFile, Vfs};
use crate::error::{Error, IoContext, Result};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// Damage: bytes that fail a check. `verify` exits non-zero.
    Damage,
    /// Expected after a crash and repaired by the next write (a torn tail, a
    /// leftover temporary file, a missing index). Not an error.
    Notice,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// File name within the data directory.
    pub file: String,
    /// Byte offset, where one applies.
    pub offset: Option<u64>,
    /// Damage or notice.
    pub kind: ProblemKind,
    /// What is wrong.
    pub message: String,
}

/// Per-file result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Records (segments) or entries (indexes) checked.
    pub records: u64,
    /// No damage found in this file.
    pub ok: bool,
}

/// Everything `verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// One entry per segment and index file.
    pub files: Vec<FileReport>,
    /// Every finding, damage and notices.
    pub problems: Vec<Problem>,
    /// Bytes read.
    pub bytes: u64,
    /// Records checked.
    pub records: u64,
}

impl VerifyReport {
    /// True when nothing is damaged (notices allowed).
    pub fn is_ok(&self) -> bool {
        self.problems.iter().all(|p| p.kind == ProblemKind::Notice)
    }

    fn damage(&mut self, file: &str, offset: Option<u64>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: file.to_owned(),
            offset,
            kind: ProblemKind::Damage,
            message: message.into(),
        });
    }

    fn notice(&mut self, file: &str, offset: Option<u64>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: file.to_owned(),
            offset,
            kind: ProblemKind::Notice,
            message: message.into(),
        });
    }
}

/// One record's identity, for the cross-record structure check.
type Item = (u64, u64, u64, Kind);

/// Checks the store in `opts.dir`.
///
/// # Errors
/// [`Error::NoStore`], [`Error::LockTimeout`], or [`Error::Io`] when a file
/// cannot be read at all. Damage is not an error here: it is in the report.
pub fn verify(opts: &Options, progress: &mut dyn FnMut(Progress)) -> Result<VerifyReport> {
    let _guard = lock::acquire_existing(&*opts.vfs, &opts.dir, false, opts.lock_timeout)?;
    verify_locked(opts, progress)
}

impl Store {
    /// Checks this store as [`verify`] does, under the lock the store
    /// already holds: a program with the store open cannot take a second
    /// lock on it (locks are per open file, so it would wait on itself).
    ///
    /// # Errors
    /// As [`verify`], less the lock errors; [`Error::InvalidInput`] inside
    /// [`Store::atomic`], whose records are not all on disk yet.
    pub fn verify(&self, progress: &mut dyn FnMut(Progress)) -> Result<VerifyReport> {
        if self.batch.is_some() {
            return Err(Error::invalid("verify cannot run inside an atomic batch"));
        }
        verify_locked(&self.opts, progress)
    }
}

/// The checks of [`verify`], by a caller that holds the store's lock.
fn verify_locked(opts: &Options, progress: &mut dyn FnMut(Progress)) -> Result<VerifyReport> {
    let vfs = &*opts.vfs;
    let dir = &opts.dir;
    let mut report = VerifyReport::default();
    let listing: Listing = match replay::list_dir(vfs, dir) {
        Ok(l) => l,
        Err(Error::Corrupt { path, reason, .. }) => {
            report.damage(&file_name(&path), None, reason);
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    for t in &listing.temps {
        report.notice(
            t,
            None,
            "leftover temporary file (removed by the next write)",
        );
    }

    let mut files: Vec<(u64, Box<dyn VFile>, String)> = Vec::new();
    let mut headers = std::collections::BTreeMap::new();
    for &n in listing.segments.keys() {
        let name = format::segment_name(n);
        let path = dir.join(&name);
        let file = vfs.open_read(&path).io("open", &path)?;
        match replay::read_header(&*file, &path) {
            Ok(h) if h.number == n => {
                headers.insert(n, h);
                files.push((n, file, name));
            }
            Ok(h) => report.damage(&name, Some(0), format!("header names segment {}", h.number)),
            Err(e @ Error::Io { .. }) => return Err(e),
            Err(e) => report.damage(&name, Some(0), brief(&e)),
        }
    }
    let (mut current, stale) = replay::current_segments(&headers);
    for n in &stale {
        report.notice(
            &format::segment_name(*n),
            None,
            "left over from an interrupted compaction (removed by the next write)",
        );
    }
    // A format-2 store goes by its manifest: members only, each the file
    // the manifest lists (docs/FORMAT.md §7.7).
    let manifest = match crate::engine::manifest::read(vfs, dir) {
        Ok(m) => m,
        Err(e @ (Error::Io { .. } | Error::UnsupportedVersion { .. })) => return Err(e),
        Err(e) => {
            report.damage(format::MANIFEST_NAME, Some(0), brief(&e));
            return Ok(report);
        }
    };
    let mut expected_active = manifest.as_ref().map_or(0, |m| m.active);
    if let Some(m) = &manifest {
        current.clear();
        for member in &m.members {
            let name = format::segment_name(member.number);
            match headers.get(&member.number) {
                None if !listing.segments.contains_key(&member.number) => {
                    report.damage(
                        &name,
                        None,
                        "member of the store is missing (the manifest lists it)",
                    );
                }
                None => {}
                Some(h) => {
                    let id = if member.version == format::FORMAT_V1 {
                        0
                    } else {
                        m.store_id
                    };
                    let len = files
                        .iter()
                        .find(|(n, ..)| *n == member.number)
                        .and_then(|(_, f, _)| f.len().ok());
                    if h.version != member.version || h.store_id != id {
                        report.damage(&name, Some(0), "member belongs to another store");
                    } else if len != Some(member.len) {
                        report.damage(
                            &name,
                            None,
                            format!(
                                "member is {} bytes long, the manifest says {}",
                                len.unwrap_or(0),
                                member.len
                            ),
                        );
                    } else {
                        current.push(member.number);
                    }
                }
            }
        }
        // The open's own plan says what the rest of the directory is.
        let mut inv = crate::engine::recover::Inventory {
            temps: listing.temps.clone(),
            ..Default::default()
        };
        for &n in listing.segments.keys() {
            let owner = (!m.members.iter().any(|x| x.number == n)).then(|| match headers.get(&n) {
                Some(h) if h.version == format::FORMAT_VERSION && h.store_id == m.store_id => {
                    crate::engine::recover::Owner::Ours(*h)
                }
                _ => crate::engine::recover::Owner::Foreign,
            });
            inv.segments.insert(n, owner);
        }
        if listing.active {
            let path = dir.join(format::ACTIVE_NAME);
            let file = vfs.open_read(&path).io("open", &path)?;
            let len = file.len().io("stat", &path)?;
            let mut hb = [0u8; format::SEGMENT_HEADER_LEN];
            let got = segment::read_prefix(&*file, &mut hb, &path)?;
            let header = format::SegmentHeader::decode(&hb[..got]).map_err(|e| match e {
                format::HeaderError::Bad(why) => why,
                format::HeaderError::Version(_) => "unsupported format version",
            });
            inv.active = Some(crate::engine::recover::ActiveFound { len, header });
        }
        let planned = crate::engine::recover::plan(m, &inv);
        if let Ok(p) = &planned {
            expected_active = p.active;
        }
        match planned {
            Err(refusal) => {
                let e = refusal.into_error(dir);
                let file = match &e {
                    Error::Corrupt { path, .. } => file_name(path),
                    _ => format::MANIFEST_NAME.to_owned(),
                };
                report.damage(&file, None, brief(&e));
            }
            Ok(plan) => {
                if let Some(a) = plan.adopt {
                    current.push(a);
                    report.notice(
                        &format::segment_name(a),
                        None,
                        "its seal was interrupted (finished by the next write)",
                    );
                }
                for name in plan
                    .remove
                    .iter()
                    .filter(|n| !n.ends_with(format::TMP_SUFFIX))
                {
                    report.notice(name, None, "left over from an interrupted seal or compaction (removed by the next write)");
                }
                for name in &plan.ignored {
                    report.notice(
                        name,
                        None,
                        "not a member of this store (never read, left alone)",
                    );
                }
            }
        }
    }
    let active_path = dir.join(format::ACTIVE_NAME);
    let active = if listing.active {
        Some(vfs.open_read(&active_path).io("open", &active_path)?)
    } else {
        None
    };
    let total: u64 = files
        .iter()
        .filter(|(n, _, _)| current.contains(n))
        .map(|(_, f, _)| f.len().unwrap_or(0))
        .sum::<u64>()
        + active.as_ref().map_or(0, |f| f.len().unwrap_or(0));
    let mut items: Vec<Item> = Vec::new();
    // Documents with records in a damaged range: what the structure check
    // would say about them is that damage again.
    let mut explained: std::collections::BTreeSet<u64> = std::collections::BTreeSet::new();

    let sealed: Vec<&(u64, Box<dyn VFile>, String)> =
        files.iter().filter(|(n, ..)| current.contains(n)).collect();
    let done = AtomicU64::new(0);
    let scans = scan_parallel(dir, &sealed, &done, &mut |d| {
        progress(Progress {
            done: d.min(total),
            total,
        });
    });
    for ((n, file, name), scan) in sealed.iter().zip(scans) {
        let scan = match scan {
            Ok(s) => s,
            // A read that failed says nothing about the bytes: it is the
            // command's failure (exit 7), never a finding of damage.
            Err(e @ Error::Io { .. }) => return Err(e),
            Err(e) => {
                report.damage(name, Some(0), brief(&e));
                continue;
            }
        };
        let Some(err) = &scan.damage else {
            file_report(&mut report, name, &scan, true);
            check_index(vfs, dir, *n, &scan, &mut report)?;
            items.extend(scan.entries.iter().map(|e| (e.doc, e.node, e.seq, e.kind)));
            continue;
        };
        let held = index_entries(vfs, dir, *n, scan.file_len, binding_of(&scan));
        let found = report_damaged(
            &mut report,
            name,
            &**file,
            &dir.join(name),
            &scan,
            err,
            held,
        )?;
        report.notice(
            &format::index_name(*n),
            None,
            "not checked: its segment is damaged",
        );
        explained.extend(found.lost_docs);
        items.extend(found.entries.iter().map(|e| (e.doc, e.node, e.seq, e.kind)));
    }

    if manifest.is_some()
        && active
            .as_ref()
            .is_some_and(|f| f.len().unwrap_or(0) < format::SEGMENT_HEADER_LEN as u64)
    {
        report.damage(
            format::ACTIVE_NAME,
            Some(0),
            "active segment is shorter than its header (it is never written that way)",
        );
    } else if active.as_ref().is_some_and(|f| f.len().unwrap_or(0) == 0) {
        report.notice(
            format::ACTIVE_NAME,
            None,
            "empty active segment (recreated by the next write)",
        );
    } else if let Some(file) = &active {
        let name = format::ACTIVE_NAME;
        let deep = segment::ScanDepth::Values;
        match segment::scan_with_progress(&**file, &active_path, false, None, deep, &mut |b| {
            let d = done.fetch_add(b, Ordering::Relaxed) + b;
            progress(Progress {
                done: d.min(total),
                total,
            });
        }) {
            Err(e @ Error::Io { .. }) => return Err(e),
            Err(e) => report.damage(name, Some(0), brief(&e)),
            Ok(scan) => {
                let mut ok = true;
                if let Some(m) = &manifest {
                    if scan.header.store_id != m.store_id {
                        ok = false;
                        report.damage(name, Some(0), "active segment belongs to another store");
                    } else if scan.header.number != expected_active {
                        ok = false;
                        report.damage(
                            name,
                            Some(0),
                            format!(
                                "active segment number {}, the manifest says {}",
                                scan.header.number, expected_active
                            ),
                        );
                    }
                }
                if let Some(err) = &scan.damage {
                    // No index names what an active segment's damage held.
                    let found =
                        report_damaged(&mut report, name, &**file, &active_path, &scan, err, None)?;
                    items.extend(found.entries.iter().map(|e| (e.doc, e.node, e.seq, e.kind)));
                } else {
                    // check_tail first: it reports the tail whatever the header said.
                    let ok = check_tail(&mut report, name, &scan) && ok;
                    file_report(&mut report, name, &scan, ok);
                    check_checkpoint(vfs, dir, &scan, &mut report)?;
                    items.extend(scan.entries.iter().map(|e| (e.doc, e.node, e.seq, e.kind)));
                }
            }
        }
    }
    check_structure(items, &explained, &mut report);
    progress(Progress { done: total, total });
    Ok(report)
}

/// Reports what follows the last valid record of `active.seg`, if anything:
/// a torn tail (a notice) or an unreadable last record (damage). Returns
/// whether the file is undamaged.
fn check_tail(report: &mut VerifyReport, name: &str, scan: &Scan) -> bool {
    let Some((at, why)) = &scan.bad_at else {
        return true;
    };
    let bytes = scan.file_len - scan.end;
    if scan.tail_truncated {
        report.notice(
            name,
            Some(*at),
            format!(
                "torn tail: {bytes} bytes of an interrupted write (discarded by the next write)"
            ),
        );
        true
    } else {
        report.damage(
            name,
            Some(*at),
            format!("last record is unreadable ({why}); a torn write after power loss, or damage"),
        );
        false
    }
}

/// What the records of a damaged file are, found by a resynchronising scan.
struct Damaged {
    /// The data records that still pass their checks.
    entries: Vec<IndexEntry>,
    /// Documents that had records in a damaged range (known from the
    /// segment's index, when it is readable).
    lost_docs: Vec<u64>,
}

/// Reports each damaged range of a file once: where it is, how long, why
/// (the first check that failed) and, from the index entries `held` when
/// they could be read, what records it held; and the file, with the
/// records that still read.
fn report_damaged(
    report: &mut VerifyReport,
    name: &str,
    file: &dyn VFile,
    path: &Path,
    scan: &Scan,
    err: &Error,
    held: Option<Vec<IndexEntry>>,
) -> Result<Damaged> {
    let s = crate::engine::repair::salvage_scan(file, path)?;
    let first = offset_of(err);
    let mut lost_docs = Vec::new();
    // A record that passes its CRC but fails a deeper check (its JSON) is
    // not a range a resynchronising scan skips: report the check's finding.
    if !s
        .damaged
        .iter()
        .any(|&(a, b)| first.is_some_and(|o| (a..b.max(a + 1)).contains(&o)))
    {
        report.damage(name, first, brief(err));
    }
    for &(a, b) in &s.damaged {
        let why = if first.is_some_and(|o| (a..b.max(a + 1)).contains(&o)) {
            format!(" ({})", brief(err))
        } else {
            String::new()
        };
        let what = match &held {
            Some(entries) => {
                let hit: Vec<&IndexEntry> = entries
                    .iter()
                    .filter(|e| e.offset < b && e.offset + u64::from(e.len) > a)
                    .collect();
                lost_docs.extend(hit.iter().map(|e| e.doc));
                describe_records(&hit)
            }
            None => String::from("records the index cannot name"),
        };
        report.damage(
            name,
            Some(a),
            format!(
                "{} damaged bytes from offset {a} to {b}{why}; they held {what}",
                b - a
            ),
        );
    }
    if s.uncommitted > 0 {
        report.damage(
            name,
            None,
            format!(
                "{} intact records of a batch with no commit record at the end of the file (never acknowledged)",
                s.uncommitted
            ),
        );
    }
    lost_docs.dedup();
    let records = s.entries.len() as u64;
    report.files.push(FileReport {
        name: name.to_owned(),
        bytes: scan.file_len,
        records,
        ok: false,
    });
    report.bytes += scan.file_len;
    report.records += records;
    Ok(Damaged {
        entries: s.entries,
        lost_docs,
    })
}

/// "the doc-put of document 7, input 2 of document 7 and 3 more".
fn describe_records(hit: &[&IndexEntry]) -> String {
    if hit.is_empty() {
        return "no indexed record (framing, a commit or the footer)".into();
    }
    let one = |e: &IndexEntry| match e.kind {
        Kind::DocPut => format!("the document record of document {}", e.doc),
        Kind::DocDelete => format!("the deletion of document {}", e.doc),
        Kind::InputPut => format!("input {} of document {}", e.node, e.doc),
        Kind::OutputPut => format!("the output of input {} of document {}", e.node, e.doc),
        Kind::InputDelete => format!("the deletion of input {} of document {}", e.node, e.doc),
        Kind::OutputDelete => format!(
            "the clearing of the output of input {} of document {}",
            e.node, e.doc
        ),
        Kind::NodeMetaPut => format!("the meta of input {} of document {}", e.node, e.doc),
        Kind::Commit | Kind::Seal => e.kind.name().to_owned(),
    };
    let shown: Vec<String> = hit.iter().take(4).map(|e| one(e)).collect();
    let more = hit.len().saturating_sub(shown.len());
    let mut text = shown.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more records"));
    }
    text
}

/// Every entry of a sealed segment's index file, when it is readable and
/// describes a segment of this length.
pub(crate) fn index_entries(
    vfs: &dyn Vfs,
    dir: &Path,
    n: u64,
    len: u64,
    bind: index::Binding,
) -> Option<Vec<IndexEntry>> {
    let (file, header) =
        index::open_index(vfs, &dir.join(format::index_name(n)), n, len, bind).ok()??;
    let blocks = header.entries.div_ceil(format::ENTRIES_PER_BLOCK as u64);
    let mut buf = vec![0u8; format::INDEX_BLOCK_LEN];
    let mut out = Vec::new();
    for b in 0..blocks {
        let at = format::INDEX_HEADER_LEN as u64 + b * format::INDEX_BLOCK_LEN as u64;
        file.read_exact_at(&mut buf, at).ok()?;
        out.extend(format::decode_block(&buf)?);
    }
    Some(out)
}

/// Scans the sealed segments on as many threads as the machine has cores
/// (verify is CPU-bound: checksums and JSON), reporting bytes done through
/// `on_done` from the calling thread. Results come back in input order.
fn scan_parallel(
    dir: &Path,
    files: &[&(u64, Box<dyn VFile>, String)],
    done: &AtomicU64,
    on_done: &mut dyn FnMut(u64),
) -> Vec<Result<Scan>> {
    if files.len() < 2 {
        // Nothing to share between threads: scan here.
        return files
            .iter()
            .map(|(_, file, name)| {
                let deep = segment::ScanDepth::Values;
                segment::scan_with_progress(&**file, &dir.join(name), true, None, deep, &mut |b| {
                    on_done(done.fetch_add(b, Ordering::Relaxed) + b);
                })
            })
            .collect();
    }
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let slots: Vec<Mutex<Option<Result<Scan>>>> = files.iter().map(|_| Mutex::new(None)).collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len())
        .max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, slots) = (&next, &slots);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((_, file, name)) = files.get(i).copied() else {
                        break;
                    };
                    let path = dir.join(name);
                    let deep = segment::ScanDepth::Values;
                    let r =
                        segment::scan_with_progress(&**file, &path, true, None, deep, &mut |b| {
                            done.fetch_add(b, Ordering::Relaxed);
                        });
                    if let Some(slot) = slots.get(i)
                        && let Ok(mut s) = slot.lock()
                    {
                        *s = Some(r);
                    }
                    let _ = tx.send(());
                }
            });
        }
        drop(tx);
        // Wakes at each finished file, and every 50 ms to show progress,
        // until every worker has hung up.
        while !matches!(
            rx.recv_timeout(std::time::Duration::from_millis(50)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        ) {
            on_done(done.load(Ordering::Relaxed));
        }
    });
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(Error::internal("a verify worker did not finish")))
        })
        .collect()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn offset_of(e: &Error) -> Option<u64> {
    match e {
        Error::Corrupt { offset, .. } => Some(*offset),
        _ => None,
    }
}

/// The reason alone, without the path and remedy the full message carries.
fn brief(e: &Error) -> String {
    match e {
        Error::Corrupt { reason, .. } => reason.clone(),
        Error::UnsupportedVersion { found, .. } => format!(
            "format version {found} (this stratum reads {})",
            format::FORMAT_VERSION
        ),
        other => other.to_string(),
    }
}

fn file_report(report: &mut VerifyReport, name: &str, scan: &Scan, ok: bool) {
    report.bytes += scan.file_len;
    report.records += scan.records;
    report.files.push(FileReport {
        name: name.to_owned(),
        bytes: scan.file_len,
        records: scan.records,
        ok,
    });
}

/// The index files that belong to the scanned segment: its version, and in
/// format 2 the store id in its header.
fn binding_of(scan: &Scan) -> index::Binding {
    index::Binding {
        version: scan.header.version,
        store_id: scan.header.store_id,
    }
}

/// Checks a sealed segment's index file against what the segment holds.
fn check_index(
    vfs: &dyn Vfs,
    dir: &Path,
    n: u64,
    scan: &Scan,
    report: &mut VerifyReport,
) -> Result<()> {
    let name = format::index_name(n);
    let path = dir.join(&name);
    if vfs.kind(&path).ok().flatten().is_none() {
        report.notice(
            &name,
            None,
            "index file missing (rebuilt by the next write)",
        );
        return Ok(());
    }
    let bind = binding_of(scan);
    let opened = index::open_index(vfs, &path, n, scan.file_len, bind)?;
    if opened.is_none() {
        // A header that checks but describes another segment: stale, not
        // damaged (issue 9 item 6).
        let mut buf = [0u8; format::INDEX_HEADER_LEN];
        let other = vfs
            .open_read(&path)
            .ok()
            .and_then(|f| f.read_exact_at(&mut buf, 0).ok())
            .and_then(|()| format::IndexHeader::decode(&buf, bind.store_id));
        if let Some(h) = other {
            report.damage(
                &name,
                Some(0),
                format!(
                    "stale index: it describes segment {} of {} bytes, not this one; reads scan the segment instead, and a repair writes the index again from the segment, which it leaves as it is",
                    h.segment, h.segment_len
                ),
            );
            report.files.push(FileReport {
                name,
                bytes: vfs.file_len(&path).unwrap_or(0),
                records: 0,
                ok: false,
            });
            return Ok(());
        }
    }
    compare_index(&name, opened, scan, u64::MAX, report);
    Ok(())
}

/// Checks the active segment's checkpoint, if it has one that claims it.
fn check_checkpoint(
    vfs: &dyn Vfs,
    dir: &Path,
    scan: &Scan,
    report: &mut VerifyReport,
) -> Result<()> {
    let name = format::ACTIVE_INDEX_NAME;
    let path = dir.join(name);
    if vfs.kind(&path).ok().flatten().is_none() {
        return Ok(());
    }
    let number = scan.header.number;
    let opened = index::open_index_covering(vfs, &path, number, 0..=scan.end, binding_of(scan))?;
    if opened.is_none() {
        let mut buf = [0u8; format::INDEX_HEADER_LEN];
        let stale = vfs
            .open_read(&path)
            .ok()
            .and_then(|f| f.read_exact_at(&mut buf, 0).ok())
            .and_then(|()| format::IndexHeader::decode(&buf, scan.header.store_id))
            .is_some_and(|h| h.segment != number);
        if stale {
            report.notice(
                name,
                None,
                "checkpoint of an earlier active segment (removed by the next write)",
            );
            return Ok(());
        }
    }
    let covered = opened.as_ref().map_or(0, |(_, h)| h.segment_len);
    compare_index(name, opened, scan, covered, report);
    Ok(())
}

/// What `verify` says of an index file whose checksums pass but whose
/// entries are not its segment's (issue 9 item 6).
const STALE: &str = "stale index: its checksums pass but its entries do not match its segment (restored from another copy of the store?); reads scan the segment instead, and a repair writes the index again from the segment, which it leaves as it is";

/// Compares an index file's blocks with the entries of the records before
/// `covered` found by scanning the segment.
fn compare_index(
    name: &str,
    opened: Option<(Box<dyn VFile>, format::IndexHeader)>,
    scan: &Scan,
    covered: u64,
    report: &mut VerifyReport,
) {
    let name = name.to_owned();
    let mut ok = true;
    let mut count = 0u64;
    let mut len = 0u64;
    match opened {
        None => {
            ok = false;
            report.damage(
                &name,
                Some(0),
                "index header is damaged or does not match its segment (the segment is checked on its own; a repair writes the index again from it)",
            );
        }
        Some((file, header)) => {
            len = file.len().unwrap_or(0);
            report.bytes += len;
            let mut expected: Vec<IndexEntry> = scan
                .entries
                .iter()
                .filter(|e| e.offset < covered)
                .copied()
                .collect();
            expected.sort_unstable_by_key(index::key);
            let blocks = header.entries.div_ceil(format::ENTRIES_PER_BLOCK as u64);
            let mut buf = vec![0u8; format::INDEX_BLOCK_LEN];
            for b in 0..blocks {
                let at = format::INDEX_HEADER_LEN as u64 + b * format::INDEX_BLOCK_LEN as u64;
                let decoded = file
                    .read_exact_at(&mut buf, at)
                    .ok()
                    .and_then(|()| format::decode_block(&buf));
                let Some(entries) = decoded else {
                    ok = false;
                    report.damage(&name, Some(at), "index block fails its checksum");
                    break;
                };
                for e in entries {
                    if expected.get(count as usize) != Some(&e) {
                        ok = false;
                        report.damage(&name, Some(at), STALE);
                        break;
                    }
                    count += 1;
                }
                if !ok {
                    break;
                }
            }
            if ok && count != expected.len() as u64 {
                ok = false;
                report.damage(&name, None, STALE);
            }
        }
    }
    report.files.push(FileReport {
        name,
        bytes: len,
        records: count,
        ok,
    });
}

/// Cross-record rules: every record belongs to a document that has a
/// document record; outputs belong to existing inputs; node ids are not
/// reused; nothing follows a document's deletion.
fn check_structure(
    mut items: Vec<Item>,
    explained: &std::collections::BTreeSet<u64>,
    report: &mut VerifyReport,
) {
    items.retain(|it| !explained.contains(&it.0));
    items.sort_unstable_by_key(|&(doc, node, seq, _)| (doc, node, seq));
    let mut i = 0;
    while i < items.len() {
        let doc = items[i].0;
        let end = i + items[i..].iter().take_while(|it| it.0 == doc).count();
        let recs = &items[i..end];
        let has_put = recs.iter().any(|r| r.3 == Kind::DocPut);
        let deleted_at = recs
            .iter()
            .filter(|r| r.3 == Kind::DocDelete)
            .map(|r| r.2)
            .min();
        if !has_put && deleted_at.is_none() {
            report.damage(
                "(store)",
                None,
                format!("document {doc} has records but no document record"),
            );
        }
        if let Some(del) = deleted_at
            && recs.iter().any(|r| r.2 > del)
        {
            report.damage(
                "(store)",
                None,
                format!("document {doc} has records after its deletion"),
            );
        }
        let mut j = 0;
        while j < recs.len() {
            let node = recs[j].1;
            let nend = j + recs[j..].iter().take_while(|r| r.1 == node).count();
            if node != 0 && deleted_at.is_none() {
                let nrecs = &recs[j..nend];
                let inputs = nrecs.iter().filter(|r| r.3 == Kind::InputPut).count();
                if inputs > 1 {
                    report.damage(
                        "(store)",
                        None,
                        format!("node {node} of document {doc} was written twice"),
                    );
                }
                let input_seq = nrecs.iter().find(|r| r.3 == Kind::InputPut).map(|r| r.2);
                let deleted = nrecs.iter().any(|r| r.3 == Kind::InputDelete);
                let orphan = nrecs
                    .iter()
                    .any(|r| r.3 == Kind::OutputPut && input_seq.is_none_or(|s| r.2 < s));
                if orphan && !deleted {
                    report.damage(
                        "(store)",
                        None,
                        format!("output for node {node} of document {doc} without its input"),
                    );
                }
            }
            j = nend;
        }
        i = end;
    }
}
