//! `verify`: reads every byte of every file and reports each problem with its
//! file and offset, instead of stopping at the first.
//!
//! It does not use the normal open (which refuses a damaged store): it takes
//! the shared lock and scans the files itself, so it works on exactly the
//! stores that need it most.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::engine::format::{self, IndexEntry, Kind};
use crate::engine::index;
use crate::engine::listing::Listing;
use crate::engine::lock;
use crate::engine::options::{Options, Progress};
use crate::engine::segment::{self, Scan};
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

/// The checks of [`verify`], by a caller that holds the store's lock.
pub(crate) fn verify_locked(
    opts: &Options,
    progress: &mut dyn FnMut(Progress),
) -> Result<VerifyReport> {
    let vfs = &*opts.vfs;
    let dir = &opts.dir;
    let mut report = VerifyReport::default();
    let listing: Listing = match crate::engine::listing::list_dir(vfs, dir) {
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
        match crate::engine::listing::read_header(&*file, &path) {
            Ok(h) if h.number == n => {
                headers.insert(n, h);
                files.push((n, file, name));
            }
            Ok(h) => report.damage(&name, Some(0), format!("header names segment {}", h.number)),
            Err(e @ Error::Io { .. }) => return Err(e),
            Err(e) => report.damage(&name, Some(0), brief(&e)),
        }
    }
    let (mut current, stale) = crate::engine::listing::current_segments(&headers);
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
    let active_len = active.as_ref().map_or(0, |f| f.len().unwrap_or(0));
    let total: u64 = files
        .iter()
        .filter(|(n, _, _)| current.contains(n))
        .map(|(_, f, _)| f.len().unwrap_or(0))
        .sum::<u64>()
        + active_len;
    // Documents with records in a damaged range: what the structure check
    // would say about them is that damage again.
    let mut explained: std::collections::BTreeSet<u64> = std::collections::BTreeSet::new();
    // What the cross-file structure check reads: sealed indexes found equal
    // to their segments, and the entries of the other files, sorted.
    let mut sources: Vec<Source> = Vec::new();

    let sealed: Vec<&(u64, Box<dyn VFile>, String)> =
        files.iter().filter(|(n, ..)| current.contains(n)).collect();
    let mut jobs = Vec::with_capacity(sealed.len() + 1);
    for (n, file, name) in &sealed {
        let len = file.len().unwrap_or(0);
        let index = headers.get(n).map(|h| IndexFile {
            path: dir.join(format::index_name(*n)),
            number: *n,
            len,
            bind: index::Binding {
                version: h.version,
                store_id: h.store_id,
            },
        });
        let job = Job {
            file: &**file,
            path: dir.join(name),
            sealed: true,
            index: std::sync::OnceLock::new(),
            open_later: None,
        };
        // A large segment's index is opened here, to split its checks at
        // offsets it names; a small one's by the task that checks it, which
        // reads it at once, so that it is not opened twice.
        let job = match index {
            Some(i) if len < WHOLE => Job {
                open_later: Some(i),
                ..job
            },
            Some(i) => {
                let _ = job.index.set(i.open(vfs)?);
                job
            }
            None => {
                let _ = job.index.set(None);
                job
            }
        };
        jobs.push(job);
    }
    // The active segment is checked with the others when it holds records.
    let active_damage =
        if manifest.is_some() && active.is_some() && active_len < format::SEGMENT_HEADER_LEN as u64
        {
            Some((
                ProblemKind::Damage,
                "active segment is shorter than its header (it is never written that way)",
            ))
        } else if active.is_some() && active_len == 0 {
            Some((
                ProblemKind::Notice,
                "empty active segment (recreated by the next write)",
            ))
        } else {
            None
        };
    if let (Some(file), None) = (&active, active_damage) {
        let index = checkpoint_of(vfs, dir, &**file, &active_path, active_len)?;
        jobs.push(Job {
            file: &**file,
            path: active_path.clone(),
            sealed: false,
            index: std::sync::OnceLock::from(index),
            open_later: None,
        });
    }
    let done = AtomicU64::new(0);
    let mut outs = check_files(vfs, &jobs, &done, &mut |d| {
        progress(Progress {
            done: d.min(total),
            total,
        });
    })
    .into_iter();

    for (((n, file, name), job), out) in sealed.iter().zip(&jobs).zip(outs.by_ref()) {
        let (scan, summary) = match out.into_scan(job)? {
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
            if let (Some((index, header)), Some((scanned, Some(found)))) = (job.index(), summary)
                && scanned == found
            {
                // The index holds exactly the segment's entries: it stands
                // in for them in the structure check, read a block at a time
                // (unless they were kept, a small segment's).
                let len = index.len().unwrap_or(0);
                report.bytes += len;
                report.files.push(FileReport {
                    name: format::index_name(*n),
                    bytes: len,
                    records: found.count,
                    ok: true,
                });
                sources.push(if scan.entries.is_empty() {
                    Source::index(&**index, *header, dir.join(format::index_name(*n)))
                } else {
                    Source::memory(&scan.entries)
                });
                continue;
            }
            // No index to stand in, or one that differs: the entries
            // themselves, to say exactly where it differs.
            let scan = if summary.is_some() {
                exact_scan(job)?
            } else {
                scan
            };
            check_index(vfs, dir, *n, &scan, &mut report)?;
            sources.push(Source::memory(&scan.entries));
            continue;
        };
        let held = index::index_entries(vfs, dir, *n, scan.file_len, binding_of(&scan));
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
        sources.push(Source::memory(&found.entries));
    }

    let name = format::ACTIVE_NAME;
    if let Some((kind, message)) = active_damage {
        match kind {
            ProblemKind::Damage => report.damage(name, Some(0), message),
            ProblemKind::Notice => report.notice(name, None, message),
        }
    } else if let (Some(file), Some(job), Some(out)) =
        (&active, jobs.get(sealed.len()), outs.next())
    {
        match out.into_scan(job)? {
            Err(e @ Error::Io { .. }) => return Err(e),
            Err(e) => report.damage(name, Some(0), brief(&e)),
            Ok((scan, compare)) => {
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
                    sources.push(Source::memory(&found.entries));
                } else {
                    // check_tail first: it reports the tail whatever the header said.
                    let ok = check_tail(&mut report, name, &scan) && ok;
                    file_report(&mut report, name, &scan, ok);
                    match (job.index(), compare) {
                        (Some((index, header)), Some((scanned, Some(found))))
                            if scanned == found && header.segment_len <= scan.end =>
                        {
                            // The checkpoint holds exactly the entries it
                            // covers: it stands in for them, the rest are
                            // the few records written after it.
                            let len = index.len().unwrap_or(0);
                            report.bytes += len;
                            report.files.push(FileReport {
                                name: format::ACTIVE_INDEX_NAME.to_owned(),
                                bytes: len,
                                records: found.count,
                                ok: true,
                            });
                            sources.push(Source::index(
                                &**index,
                                *header,
                                dir.join(format::ACTIVE_INDEX_NAME),
                            ));
                            sources.push(Source::memory(&scan.entries));
                        }
                        (_, compare) => {
                            let scan = if compare.is_some() {
                                exact_scan(job)?
                            } else {
                                scan
                            };
                            check_checkpoint(vfs, dir, &scan, &mut report)?;
                            sources.push(Source::memory(&scan.entries));
                        }
                    }
                }
            }
        }
    }
    check_structure(sources, &explained, &mut report)?;
    if let Some(m) = &manifest {
        check_key_index(vfs, dir, m, &current, &mut report)?;
    }
    progress(Progress { done: total, total });
    Ok(report)
}

/// Checks the key index (docs/FORMAT.md §7.8) when it is bound to the
/// manifest, and so would be used: every block's checksum and order, and
/// that its entries naming listed members are exactly those members' key
/// entries, compared as two order-independent summaries, so neither side
/// is held. A pair bound to another manifest is never used; it is a
/// notice. A bound pair that is damaged or wrong is damage (a lookup
/// through it could miss a key); `repair` rebuilds it.
fn check_key_index(
    vfs: &dyn Vfs,
    dir: &Path,
    m: &format::Manifest,
    current: &[u64],
    report: &mut VerifyReport,
) -> Result<()> {
    use crate::engine::keys;
    let as_entry = |slot: u64, doc: u64, seq: u64, member: u64| IndexEntry {
        doc: slot,
        node: doc,
        seq,
        offset: member,
        aux: 0,
        len: 0,
        kind: format::Kind::DocPut,
        flags: 0,
    };
    let mut held = Summary::default();
    let checked = keys::check(vfs, dir, m, &mut |e| {
        held.add(&as_entry(e.slot, e.doc, e.seq, e.member));
    })?;
    if let Some((file, offset, message)) = checked.problem {
        report.damage(&file, Some(offset), message);
        return Ok(());
    }
    if !checked.valid {
        if checked.present {
            report.notice(
                keys::RECENT_NAME,
                None,
                "the key index is not bound to this manifest: not used (key lookups read every member that holds keys) until the next write rebuilds it",
            );
        }
        return Ok(());
    }
    let mut want = Summary::default();
    for x in m.members.iter().filter(|x| x.keys > 0) {
        let name = format::index_name(x.number);
        // A member found damaged or missing is reported already.
        if !current.contains(&x.number) {
            return Ok(());
        }
        let bind = index::Binding {
            version: x.version,
            store_id: if x.version == format::FORMAT_V1 {
                0
            } else {
                m.store_id
            },
        };
        let entries = index::key_entries(vfs, dir, x.number, x.len, bind, x.keys)?;
        let Some(entries) = entries else {
            report.notice(
                &name,
                None,
                "the key index was not compared with this member: its index file is not usable",
            );
            return Ok(());
        };
        for e in entries {
            want.add(&as_entry(e.doc, e.node, e.seq, x.number));
        }
    }
    if held != want {
        report.damage(
            keys::RECENT_NAME,
            None,
            format!(
                "the key index holds {} entries for the listed members where their indexes hold {} key entries, or other ones; repair rebuilds it",
                held.count, want.count
            ),
        );
    }
    Ok(())
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
    let s = crate::engine::salvage::salvage_scan(file, path)?;
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

/// One file `verify` reads, and what it knows of it before reading.
struct Job<'a> {
    file: &'a dyn VFile,
    path: PathBuf,
    sealed: bool,
    /// The segment's index (or the active segment's checkpoint), when its
    /// header matches the segment: the entries it covers are then
    /// summarised rather than kept, and the index, once found to hold
    /// exactly them, stands in for them. Set before the checks, or by the
    /// task that checks the file when `open_later` says which.
    index: std::sync::OnceLock<Option<(Box<dyn VFile>, format::IndexHeader)>>,
    open_later: Option<IndexFile>,
}

impl Job<'_> {
    fn index(&self) -> Option<&(Box<dyn VFile>, format::IndexHeader)> {
        self.index.get().and_then(Option::as_ref)
    }

    /// The entries of records before this offset are summarised, the
    /// others kept: all of a sealed segment with an index, what the
    /// checkpoint covers of the active one, none without an index.
    fn covered(&self) -> u64 {
        match self.index() {
            None => 0,
            Some(_) if self.sealed => u64::MAX,
            Some((_, h)) => h.segment_len,
        }
    }
}

/// A sealed segment's index file, to open.
struct IndexFile {
    path: PathBuf,
    number: u64,
    len: u64,
    bind: index::Binding,
}

impl IndexFile {
    fn open(&self, vfs: &dyn Vfs) -> Result<Option<(Box<dyn VFile>, format::IndexHeader)>> {
        index::open_index(vfs, &self.path, self.number, self.len, self.bind)
    }
}

/// An order-independent summary of a set of index entries: how many, and
/// the wrapping sum of a 128-bit hash of each. Two sets with the same
/// summary are the same set but for a chance of about 2^-128, so a
/// segment's entries can be compared with its index file without holding
/// either (a freshly loaded store is one segment of millions of records).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Summary {
    count: u64,
    sum: u128,
}

impl Summary {
    /// Adds an entry's 128-bit hash. Each field goes through the mixer once,
    /// with a key of its own place, a bijection: two entries that differ
    /// anywhere differ in at least one mixed word. The two halves of the hash
    /// are the mixer again over two different combinations of those words (a
    /// xor, and a sum of rotations), so a change in one word changes both,
    /// and a set of changes that cancels in one half is independent luck in
    /// the other. The words are mixed side by side rather than folded one
    /// after another, which keeps the cost of an entry to eight mixes that
    /// the processor overlaps, where a sequential fold of every word into
    /// each half took twelve in a chain.
    fn add(&mut self, e: &IndexEntry) {
        let tail = u64::from(e.len) | (u64::from(e.kind as u8) << 32) | (u64::from(e.flags) << 40);
        let [k0, k1, k2, k3, k4, k5] = KEYS;
        let m = [
            mix(e.doc ^ k0),
            mix(e.node ^ k1),
            mix(e.seq ^ k2),
            mix(e.offset ^ k3),
            mix(e.aux ^ k4),
            mix(tail ^ k5),
        ];
        let xor = m.iter().fold(0x243f_6a88_85a3_08d3, |h, &w| h ^ w);
        // Rotations of 0, 11, .. 55 bits: written out, as a loop's counter
        // kept the compiler from unrolling it.
        let [m0, m1, m2, m3, m4, m5] = m;
        let sum = 0x1319_8a2e_0370_7344u64
            .wrapping_add(m0)
            .wrapping_add(m1.rotate_left(11))
            .wrapping_add(m2.rotate_left(22))
            .wrapping_add(m3.rotate_left(33))
            .wrapping_add(m4.rotate_left(44))
            .wrapping_add(m5.rotate_left(55));
        let h = (u128::from(mix(xor)) << 64) | u128::from(mix(sum));
        self.count += 1;
        self.sum = self.sum.wrapping_add(h);
    }

    fn merge(&mut self, other: Summary) {
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
    }
}

/// One key for each of an entry's words in [`Summary::add`] (digits of pi),
/// so that the same value in two places mixes to two different words.
const KEYS: [u64; 6] = [
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
    0x4528_21e6_38d0_1377,
    0xbe54_66cf_34e9_0c6c,
    0xc0ac_29b7_c97c_50dd,
    0x3f84_d5b5_b547_0917,
];

/// The splitmix64 finaliser: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A scan's entries: those of records before `covered` summarised, the
/// others kept; a batch's count only once it commits.
struct Split {
    covered: u64,
    pending: Summary,
    done: Summary,
    keep: segment::Collect,
}

impl segment::Entries for Split {
    fn add(&mut self, e: IndexEntry) {
        if e.offset < self.covered {
            self.pending.add(&e);
        } else {
            self.keep.add(e);
        }
    }

    fn commit(&mut self) {
        self.done.merge(std::mem::take(&mut self.pending));
        self.keep.commit();
    }
}

/// What the parallel pass found of one file.
struct Checked {
    /// Its framing, checksums and order, with the summary of the entries
    /// before [`Job::covered`]; the others are kept in [`Scan::entries`].
    scan: Result<(Scan, Summary)>,
    /// Where the first record whose payload fails its check starts, if any.
    values: Result<Option<u64>>,
    /// The index file's summary, when it has one; `None` inside when a block
    /// did not read or check, or the entries are out of order.
    index: Option<Option<Summary>>,
}

/// A file's scan as a sequential scan that checks everything gives it, and
/// for a segment whose entries were summarised, (its summary, its index's).
type Outcome = (Scan, Option<(Summary, Option<Summary>)>);

impl Checked {
    /// The parallel pass's scan when it found the file sound. Otherwise the
    /// file is scanned again, one sequential pass checking every value, so
    /// that what is reported of damage (where, why, what follows) is
    /// exactly that scan's: damage is rare, and this costs it a second read.
    ///
    /// The outer error is a read that failed; the inner, a file that
    /// cannot be scanned at all.
    fn into_scan(self, job: &Job<'_>) -> Result<Result<Outcome>> {
        let (scan, summary) = match self.scan {
            Ok(s) => s,
            Err(e @ Error::Io { .. }) => return Err(e),
            Err(e) => return Ok(Err(e)),
        };
        if scan.bad_at.is_none() && scan.damage.is_none() && self.values?.is_none() {
            let compare = self.index.map(|i| (summary, i));
            return Ok(Ok((scan, compare)));
        }
        match exact_scan(job) {
            Ok(s) => Ok(Ok((s, None))),
            Err(e @ Error::Io { .. }) => Err(e),
            Err(e) => Ok(Err(e)),
        }
    }
}

/// The active segment's checkpoint, when there is one whose header matches
/// the segment as far as its length goes (what it covers is checked
/// against the scan later).
fn checkpoint_of(
    vfs: &dyn Vfs,
    dir: &Path,
    file: &dyn VFile,
    path: &Path,
    len: u64,
) -> Result<Option<(Box<dyn VFile>, format::IndexHeader)>> {
    let idx = dir.join(format::ACTIVE_INDEX_NAME);
    if vfs.kind(&idx).ok().flatten().is_none() {
        return Ok(None);
    }
    let mut hb = [0u8; format::SEGMENT_HEADER_LEN];
    let got = segment::read_prefix(file, &mut hb, path)?;
    let Ok(header) = format::SegmentHeader::decode(&hb[..got]) else {
        return Ok(None);
    };
    let bind = index::Binding {
        version: header.version,
        store_id: header.store_id,
    };
    index::open_index_covering(vfs, &idx, header.number, 0..=len, bind)
}

/// A sequential scan of `job`'s file that checks every record and value
/// and keeps its entries: the scan verify reports from.
fn exact_scan(job: &Job<'_>) -> Result<Scan> {
    let mut keep = segment::Collect::default();
    let deep = segment::ScanDepth::Values;
    let mut s = segment::scan_with_progress(
        job.file,
        &job.path,
        job.sealed,
        deep,
        &mut keep,
        &mut |_| {},
    )?;
    s.entries = keep.done;
    Ok(s)
}

/// One piece of the parallel pass.
#[derive(Clone, Copy)]
enum Task {
    /// A file's framing, checksums and order.
    Frame(usize),
    /// Every payload of one piece of a file, values to the last JSON
    /// byte: most of the work, and split at record boundaries the index
    /// names, so a store of one segment still keeps every core busy.
    Values(usize, usize),
    /// An index file's blocks, order and summary.
    Index(usize),
}

/// What the tasks of one file left.
#[derive(Default)]
struct Parts {
    scan: Option<Result<(Scan, Summary)>>,
    /// One result per piece of the file.
    values: Vec<Option<Result<Option<u64>>>>,
    index: Option<Option<Summary>>,
}

/// Checks the files on as many threads as the machine has cores (verify
/// is CPU-bound: checksums and JSON), each file as a framing task and one
/// or more value tasks that read it side by side, and each index as a task
/// of its own, reporting bytes done through `on_done` from the calling
/// thread. Results come back in input order.
fn check_files(
    vfs: &dyn Vfs,
    jobs: &[Job<'_>],
    done: &AtomicU64,
    on_done: &mut dyn FnMut(u64),
) -> Vec<Checked> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pieces: Vec<Vec<u64>> = jobs.iter().map(|j| split_points(j, cores)).collect();
    let mut tasks = Vec::new();
    for (i, points) in pieces.iter().enumerate() {
        tasks.push(Task::Frame(i));
        tasks.extend((0..points.len()).map(|k| Task::Values(i, k)));
    }
    tasks.extend(
        jobs.iter()
            .zip(&pieces)
            .enumerate()
            .filter(|(_, (j, points))| j.index().is_some() && !points.is_empty())
            .map(|(i, _)| Task::Index(i)),
    );
    let slots: Vec<Mutex<Parts>> = pieces
        .iter()
        .map(|points| {
            Mutex::new(Parts {
                values: points.iter().map(|_| None).collect(),
                ..Parts::default()
            })
        })
        .collect();
    let next = AtomicUsize::new(0);
    let budget = AtomicU64::new(KEPT_ENTRIES);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let workers = cores.min(tasks.len()).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, slots, tasks, pieces, budget) = (&next, &slots, &tasks, &pieces, &budget);
            scope.spawn(move || {
                while let Some(&task) = tasks.get(next.fetch_add(1, Ordering::Relaxed)) {
                    run_task(vfs, jobs, pieces, task, done, budget, slots);
                    let _ = tx.send(());
                }
            });
        }
        drop(tx);
        // Wakes at each finished task, and every 50 ms to show progress,
        // until every worker has hung up.
        while !matches!(
            rx.recv_timeout(std::time::Duration::from_millis(50)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        ) {
            on_done(done.load(Ordering::Relaxed));
        }
    });
    let lost = || Error::internal("a verify worker did not finish");
    slots
        .into_iter()
        .zip(jobs)
        .map(|(slot, job)| {
            let parts = slot.into_inner().unwrap_or_default();
            Checked {
                scan: parts.scan.unwrap_or_else(|| Err(lost())),
                // The first failure of the first piece that has one: the
                // pieces are in file order.
                values: parts
                    .values
                    .into_iter()
                    .map(|v| v.unwrap_or_else(|| Err(lost())))
                    .find(|v| !matches!(v, Ok(None)))
                    .unwrap_or(Ok(None)),
                index: if job.index().is_some() {
                    Some(parts.index.flatten())
                } else {
                    None
                },
            }
        })
        .collect()
}

/// Runs one task, leaving its result in its file's slot.
#[allow(clippy::too_many_arguments)]
fn run_task(
    vfs: &dyn Vfs,
    jobs: &[Job<'_>],
    pieces: &[Vec<u64>],
    task: Task,
    done: &AtomicU64,
    budget: &AtomicU64,
    slots: &[Mutex<Parts>],
) {
    let (Task::Frame(i) | Task::Values(i, _) | Task::Index(i)) = task;
    let (Some(job), Some(slot)) = (jobs.get(i), slots.get(i)) else {
        return;
    };
    let put = |f: &mut dyn FnMut(&mut Parts)| {
        if let Ok(mut p) = slot.lock() {
            f(&mut p);
        }
    };
    match task {
        Task::Frame(_) => {
            // A small file is checked whole by this one task, values and
            // index included: more tasks would only read it again.
            let whole = pieces.get(i).is_none_or(Vec::is_empty);
            let depth = if whole {
                segment::ScanDepth::Values
            } else {
                segment::ScanDepth::Framing
            };
            if let Some(later) = &job.open_later {
                match later.open(vfs) {
                    Ok(index) => {
                        let _ = job.index.set(index);
                    }
                    Err(e) => {
                        let mut r = Some(Err(e));
                        put(&mut |p| p.scan = r.take());
                        return;
                    }
                }
            }
            let mut on_bytes = |b| {
                done.fetch_add(b, Ordering::Relaxed);
            };
            // A small segment's entries are kept, while the budget lasts,
            // so that the structure check need not read its index again;
            // they are summarised all the same, for the comparison.
            let keep = whole
                && job.sealed
                && job.index().is_some_and(|(_, h)| {
                    budget
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                            b.checked_sub(h.entries)
                        })
                        .is_ok()
                });
            let mut sink = Split {
                covered: if keep { 0 } else { job.covered() },
                pending: Summary::default(),
                done: Summary::default(),
                keep: segment::Collect::default(),
            };
            let r = segment::scan_with_progress(
                job.file,
                &job.path,
                job.sealed,
                depth,
                &mut sink,
                &mut on_bytes,
            )
            .map(|mut s| {
                s.entries = sink.keep.done;
                let mut summary = sink.done;
                if keep {
                    s.entries.iter().for_each(|e| summary.add(e));
                }
                (s, summary)
            });
            let mut r = Some(r);
            put(&mut |p| p.scan = r.take());
            if let (true, Some((file, header))) = (whole, job.index()) {
                let r = summarise_index(&**file, header);
                put(&mut |p| p.index = Some(r));
            }
        }
        Task::Values(_, k) => {
            let points = pieces.get(i).map_or(&[][..], |p| &p[..]);
            let (Some(&from), to) = (points.get(k), points.get(k + 1).copied()) else {
                return;
            };
            let mut r = Some(check_values(job.file, &job.path, from, to));
            put(&mut |p| {
                if let Some(slot) = p.values.get_mut(k) {
                    *slot = r.take();
                }
            });
        }
        Task::Index(_) => {
            if let Some((file, header)) = job.index() {
                let r = summarise_index(&**file, header);
                put(&mut |p| p.index = Some(r));
            }
        }
    }
}

/// Bytes of a file below which its values are checked as one piece.
const PIECE: u64 = 32 << 20;

/// Bytes of a file below which one task checks all of it.
const WHOLE: u64 = 4 << 20;

/// Entries of small segments kept in memory at most, over the whole store
/// (3 MiB of them, 2 MiB once sorted for the structure check).
const KEPT_ENTRIES: u64 = 1 << 16;

/// Where the pieces of a file's value checks start (none for a small
/// file, which one task checks whole): the first record, and
/// record offsets near even fractions of the file taken from a sample of
/// its index's blocks. An offset that is not where a record starts (an
/// index that is wrong) makes its pieces fail, and the file is scanned
/// again the sequential way.
fn split_points(job: &Job<'_>, cores: usize) -> Vec<u64> {
    let start = format::SEGMENT_HEADER_LEN as u64;
    let len = job.file.len().unwrap_or(0);
    if len < WHOLE {
        // None: checked whole by its framing task.
        return Vec::new();
    }
    let mut points = vec![start];
    let pieces = (len / PIECE).clamp(1, 2 * cores as u64);
    let Some((file, header)) = job.index().filter(|_| pieces > 1) else {
        return points;
    };
    let blocks = header.entries.div_ceil(format::ENTRIES_PER_BLOCK as u64);
    let samples = blocks.min(16);
    let mut offsets = Vec::new();
    let mut buf = [0u8; format::INDEX_BLOCK_LEN];
    let mut entries = Vec::with_capacity(format::ENTRIES_PER_BLOCK);
    for s in 0..samples {
        let at = format::INDEX_HEADER_LEN as u64
            + (s * blocks / samples) * format::INDEX_BLOCK_LEN as u64;
        if file
            .read_exact_at(&mut buf, at)
            .ok()
            .and_then(|()| format::decode_block_into(&buf, &mut entries))
            .is_some()
        {
            offsets.extend(entries.iter().map(|e| e.offset));
        }
    }
    offsets.sort_unstable();
    for k in 1..pieces {
        let target = len / pieces * k;
        let i = offsets.partition_point(|&o| o < target);
        if let Some(&o) = offsets.get(i)
            && points.last().is_some_and(|&p| o > p)
            && o < len
        {
            points.push(o);
        }
    }
    points
}

/// Checks the payload of every record from `from` to `to` (the end of the
/// file when `None`) as a scan to [`segment::ScanDepth::Values`] does,
/// walking the records by their lengths alone (the framing task checks
/// those). Returns where the first one that fails starts, or where the
/// walk could not go on or did not end at `to`.
fn check_values(file: &dyn VFile, path: &Path, from: u64, to: Option<u64>) -> Result<Option<u64>> {
    let len = file.len().io("stat", path)?;
    let mut rd = segment::Reader::new(file, len);
    let to = to.unwrap_or(len);
    let mut at = from;
    while at < to {
        let Ok(h) = format::decode_header(rd.get(at, format::RECORD_HEADER_LEN, path)?) else {
            return Ok(Some(at));
        };
        let total = h.total_len();
        let b = rd.get(at, total as usize, path)?;
        let ok = b.len() as u64 == total
            && b.get(format::RECORD_HEADER_LEN..)
                .is_some_and(|p| format::check_payload(h.kind, h.flags, p, true).is_ok());
        if !ok {
            return Ok(Some(at));
        }
        at += total;
    }
    Ok((at != to).then_some(at))
}

/// Blocks read at once when an index is read on its own.
const INDEX_CHUNK_BLOCKS: u64 = 256;

/// An index file's summary, when every block reads and checks and the
/// entries are in strictly increasing key order, as a sorted list of the
/// segment's entries is.
fn summarise_index(file: &dyn VFile, header: &format::IndexHeader) -> Option<Summary> {
    let blocks = header.entries.div_ceil(format::ENTRIES_PER_BLOCK as u64);
    let mut buf = vec![0u8; INDEX_CHUNK_BLOCKS as usize * format::INDEX_BLOCK_LEN];
    let mut sum = Summary::default();
    let mut last = None;
    let mut entries = Vec::with_capacity(format::ENTRIES_PER_BLOCK);
    let mut b = 0;
    while b < blocks {
        let n = (blocks - b).min(INDEX_CHUNK_BLOCKS);
        let chunk = buf.get_mut(..n as usize * format::INDEX_BLOCK_LEN)?;
        let at = format::INDEX_HEADER_LEN as u64 + b * format::INDEX_BLOCK_LEN as u64;
        file.read_exact_at(chunk, at).ok()?;
        for block in chunk.chunks_exact(format::INDEX_BLOCK_LEN) {
            format::decode_block_into(block, &mut entries)?;
            for e in &entries {
                let k = index::key(e);
                if last.is_some_and(|l| l >= k) {
                    return None;
                }
                last = Some(k);
                sum.add(e);
            }
        }
        b += n;
    }
    Some(sum)
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
            let mut buf = [0u8; format::INDEX_BLOCK_LEN];
            let mut entries = Vec::with_capacity(format::ENTRIES_PER_BLOCK);
            for b in 0..blocks {
                let at = format::INDEX_HEADER_LEN as u64 + b * format::INDEX_BLOCK_LEN as u64;
                let decoded = file
                    .read_exact_at(&mut buf, at)
                    .ok()
                    .and_then(|()| format::decode_block_into(&buf, &mut entries));
                if decoded.is_none() {
                    ok = false;
                    report.damage(&name, Some(at), "index block fails its checksum");
                    break;
                }
                for e in &entries {
                    if expected.get(count as usize) != Some(e) {
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

/// Where the structure check reads one file's entries from, in key order.
enum Source<'a> {
    /// An index file found to hold exactly its segment's entries, read a
    /// few blocks at a time.
    Index {
        file: &'a dyn VFile,
        path: PathBuf,
        blocks: u64,
        /// Next block to decode, and the first block in `buf`.
        next: u64,
        base: u64,
        buf: Vec<u8>,
        /// Blocks `buf` holds at most.
        chunk: u64,
        /// The decoded block, and the next of its entries to give: one
        /// buffer for every block of the file.
        entries: Vec<IndexEntry>,
        pos: usize,
    },
    /// Entries held in memory (the active segment, a damaged segment, or
    /// one whose index cannot stand in for it), sorted.
    Memory(std::vec::IntoIter<Item>),
}

impl<'a> Source<'a> {
    fn index(file: &'a dyn VFile, header: format::IndexHeader, path: PathBuf) -> Source<'a> {
        Source::Index {
            file,
            path,
            blocks: header.entries.div_ceil(format::ENTRIES_PER_BLOCK as u64),
            next: 0,
            base: 0,
            buf: Vec::new(),
            chunk: 1,
            entries: Vec::with_capacity(format::ENTRIES_PER_BLOCK),
            pos: 0,
        }
    }

    fn memory(entries: &[IndexEntry]) -> Source<'a> {
        let mut items: Vec<Item> = entries
            .iter()
            .map(|e| (e.doc, e.node, e.seq, e.kind))
            .collect();
        items.sort_unstable_by_key(|&(doc, node, seq, _)| (doc, node, seq));
        Source::Memory(items.into_iter())
    }

    /// The next entry in key order.
    fn next(&mut self) -> Result<Option<Item>> {
        match self {
            Source::Memory(items) => Ok(items.next()),
            Source::Index {
                file,
                path,
                blocks,
                next,
                base,
                buf,
                chunk,
                entries,
                pos,
            } => loop {
                if let Some(e) = entries.get(*pos) {
                    *pos += 1;
                    return Ok(Some((e.doc, e.node, e.seq, e.kind)));
                }
                if *next >= *blocks {
                    return Ok(None);
                }
                let held = (buf.len() / format::INDEX_BLOCK_LEN) as u64;
                if *next >= *base + held {
                    let n = (*blocks - *next).min(*chunk);
                    buf.resize(n as usize * format::INDEX_BLOCK_LEN, 0);
                    let at =
                        format::INDEX_HEADER_LEN as u64 + *next * format::INDEX_BLOCK_LEN as u64;
                    file.read_exact_at(buf, at).io("read", &*path)?;
                    *base = *next;
                }
                let from = (*next - *base) as usize * format::INDEX_BLOCK_LEN;
                *pos = 0;
                buf.get(from..from + format::INDEX_BLOCK_LEN)
                    .and_then(|b| format::decode_block_into(b, entries))
                    .ok_or_else(|| {
                        let at = format::INDEX_HEADER_LEN as u64
                            + *next * format::INDEX_BLOCK_LEN as u64;
                        Error::corrupt(&*path, at, "index block changed while verify read it")
                    })?;
                *next += 1;
            },
        }
    }
}

/// Bytes of index blocks the structure check holds at once, over all the
/// index files it reads side by side.
const MERGE_BUFFER: usize = 8 << 20;

/// Cross-record rules: every record belongs to a document that has a
/// document record; outputs belong to existing inputs; node ids are not
/// reused; nothing follows a document's deletion.
///
/// The entries of every file are merged in key order, one document at a
/// time, so what is held is a few blocks of each index file and the
/// records of one node, whatever the size of the store.
fn check_structure(
    mut sources: Vec<Source<'_>>,
    explained: &std::collections::BTreeSet<u64>,
    report: &mut VerifyReport,
) -> Result<()> {
    let indexes = sources
        .iter()
        .filter(|s| matches!(s, Source::Index { .. }))
        .count();
    let per = (MERGE_BUFFER / format::INDEX_BLOCK_LEN / indexes.max(1)).clamp(1, 64) as u64;
    let mut heads: Vec<Option<Item>> = Vec::with_capacity(sources.len());
    let mut heap = std::collections::BinaryHeap::new();
    for (i, s) in sources.iter_mut().enumerate() {
        if let Source::Index { chunk, .. } = s {
            *chunk = per;
        }
        let head = s.next()?;
        if let Some((doc, node, seq, _)) = head {
            heap.push(std::cmp::Reverse(((doc, node, seq), i)));
        }
        heads.push(head);
    }
    let mut check = Structure::new(explained);
    while let Some(std::cmp::Reverse((_, i))) = heap.pop() {
        let (Some(source), Some(head)) = (sources.get_mut(i), heads.get_mut(i)) else {
            break;
        };
        if let Some(item) = head.take() {
            check.feed(item, report);
        }
        // Files hold runs of neighbouring keys (a compaction writes each
        // its own range of documents): take from this one while it stays
        // below every other file's next key, without touching the heap.
        let bound = heap.peek().map(|std::cmp::Reverse((k, _))| *k);
        *head = loop {
            match source.next()? {
                Some(item) if bound.is_none_or(|b| (item.0, item.1, item.2) < b) => {
                    check.feed(item, report);
                }
                other => break other,
            }
        };
        if let Some((doc, node, seq, _)) = *head {
            heap.push(std::cmp::Reverse(((doc, node, seq), i)));
        }
    }
    check.end_doc(report);
    Ok(())
}

/// The state of the structure check within one document, fed its records
/// in key order (document, node, sequence).
struct Structure<'a> {
    explained: &'a std::collections::BTreeSet<u64>,
    doc: Option<u64>,
    /// The records of the current node.
    node: Vec<Item>,
    has_put: bool,
    /// Sequence number of the document's first deletion. Deletions are
    /// node 0, so this is known before any other node's records arrive.
    deleted_at: Option<u64>,
    after_delete: bool,
    /// Findings about the document's nodes, reported after those about the
    /// document itself.
    found: Vec<String>,
}

impl<'a> Structure<'a> {
    fn new(explained: &'a std::collections::BTreeSet<u64>) -> Structure<'a> {
        Structure {
            explained,
            doc: None,
            node: Vec::new(),
            has_put: false,
            deleted_at: None,
            after_delete: false,
            found: Vec::new(),
        }
    }

    fn feed(&mut self, item: Item, report: &mut VerifyReport) {
        let (doc, node, ..) = item;
        if !self.explained.is_empty() && self.explained.contains(&doc) {
            return;
        }
        if self.doc != Some(doc) {
            self.end_doc(report);
            self.doc = Some(doc);
        } else if self.node.first().is_some_and(|r| r.1 != node) {
            self.end_node();
        }
        self.node.push(item);
    }

    /// The checks of one node's records.
    fn end_node(&mut self) {
        let (Some(doc), Some(&(_, node, ..))) = (self.doc, self.node.first()) else {
            return;
        };
        let recs = std::mem::take(&mut self.node);
        self.has_put |= recs.iter().any(|r| r.3 == Kind::DocPut);
        let deletions = recs.iter().filter(|r| r.3 == Kind::DocDelete).map(|r| r.2);
        if let Some(first) = deletions.min() {
            self.deleted_at = Some(self.deleted_at.map_or(first, |d| d.min(first)));
        }
        if let Some(del) = self.deleted_at {
            self.after_delete |= recs.iter().any(|r| r.2 > del);
        }
        if node != 0 && self.deleted_at.is_none() {
            let inputs = recs.iter().filter(|r| r.3 == Kind::InputPut).count();
            if inputs > 1 {
                self.found
                    .push(format!("node {node} of document {doc} was written twice"));
            }
            let input_seq = recs.iter().find(|r| r.3 == Kind::InputPut).map(|r| r.2);
            let deleted = recs.iter().any(|r| r.3 == Kind::InputDelete);
            let orphan = recs
                .iter()
                .any(|r| r.3 == Kind::OutputPut && input_seq.is_none_or(|s| r.2 < s));
            if orphan && !deleted {
                self.found.push(format!(
                    "output for node {node} of document {doc} without its input"
                ));
            }
        }
        // Keep the allocation for the next node.
        self.node = recs;
        self.node.clear();
    }

    /// The checks of the whole document, then its nodes' findings.
    fn end_doc(&mut self, report: &mut VerifyReport) {
        self.end_node();
        let Some(doc) = self.doc.take() else {
            return;
        };
        if !self.has_put && self.deleted_at.is_none() {
            report.damage(
                "(store)",
                None,
                format!("document {doc} has records but no document record"),
            );
        }
        if self.after_delete {
            report.damage(
                "(store)",
                None,
                format!("document {doc} has records after its deletion"),
            );
        }
        for message in self.found.drain(..) {
            report.damage("(store)", None, message);
        }
        self.has_put = false;
        self.deleted_at = None;
        self.after_delete = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(doc: u64, node: u64, seq: u64) -> IndexEntry {
        IndexEntry {
            doc,
            node,
            seq,
            offset: 40 + 64 * seq,
            aux: 0,
            len: 64,
            kind: Kind::InputPut,
            flags: 0,
        }
    }

    fn summary(entries: &[IndexEntry]) -> Summary {
        let mut s = Summary::default();
        entries.iter().for_each(|e| s.add(e));
        s
    }

    #[test]
    fn summary_ignores_order_and_sees_every_field() {
        let set: Vec<IndexEntry> = (1..50).map(|i| entry(i, i % 7 + 1, 1000 + i)).collect();
        let mut reversed = set.clone();
        reversed.reverse();
        let whole = summary(&set);
        assert_eq!(whole, summary(&reversed));
        // Two halves merged are the whole.
        let mut halves = summary(&set[..20]);
        halves.merge(summary(&set[20..]));
        assert_eq!(halves, whole);
        // One bit of any one field of one entry changes the summary.
        let changes: [fn(&mut IndexEntry); 9] = [
            |e| e.doc ^= 1,
            |e| e.node ^= 1 << 63,
            |e| e.seq ^= 1 << 17,
            |e| e.offset ^= 1 << 47,
            |e| e.aux ^= 1,
            |e| e.len ^= 1 << 31,
            |e| e.kind = Kind::OutputPut,
            |e| e.flags ^= 1,
            |e| std::mem::swap(&mut e.doc, &mut e.seq),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut other = set.clone();
            change(&mut other[10]);
            assert_ne!(other[10], set[10], "change {i}");
            assert_ne!(summary(&other), whole, "change {i}");
        }
        // A swap of two values between places of two entries is seen too.
        let mut swapped = set.clone();
        let (a, b) = (swapped[3].node, swapped[4].node);
        swapped[3].node = b;
        swapped[4].node = a;
        assert_ne!(a, b);
        assert_ne!(summary(&swapped), whole);
        // A missing entry or a repeated one changes the count.
        assert_ne!(summary(&set[1..]), whole);
        let mut repeated = set.clone();
        repeated.push(set[0]);
        assert_ne!(summary(&repeated), whole);
    }

    /// The summary's two halves are each well spread: no two of many
    /// entries that differ in one small field share either half.
    #[test]
    fn summary_halves_do_not_collide_on_near_entries() {
        let mut lo = std::collections::HashSet::new();
        let mut hi = std::collections::HashSet::new();
        for doc in 1..200 {
            for node in 1..50 {
                let s = summary(&[entry(doc, node, doc * 64 + node)]);
                assert!(lo.insert(s.sum as u64), "low half repeated");
                assert!(hi.insert((s.sum >> 64) as u64), "high half repeated");
            }
        }
    }
}
