//! Opening a store: the directory, the lock, then recovery as its format
//! calls for, handing back the parts `Store::open` assembles (format 1 is
//! `engine::replay`'s). Recovery of a format-2 store: an inventory that
//! only reads, a pure plan that decides, and (write opens only) an apply
//! step that acts.
//!
//! The plan is a function of the inventory alone, so it is tested without a
//! file system (below), and a read-only open stops after it. Nothing is
//! removed or renamed unless the whole plan succeeded: a refusal leaves the
//! directory exactly as it was. See docs/FORMAT.md §8.5.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::engine::active::{Active, Replayed, create_active};
use crate::engine::format::{
    self, ACTIVE_NAME, FORMAT_VERSION, LOCK_NAME, Manifest, Member, SEGMENT_HEADER_LEN,
    SegmentHeader,
};
use crate::engine::index::MemberStats;
use crate::engine::index::{Binding, SealedIndex};
use crate::engine::listing::{Listing, list_dir};
use crate::engine::lock;
use crate::engine::manifest;
use crate::engine::notice::Notice;
use crate::engine::options::{Mode, Options};
use crate::engine::replay::{self, Finish, Parts};
use crate::engine::segment::{self, Lazy, Sealed};
use crate::engine::vfs::{EntryKind, LockGuard, VFile, Vfs};
use crate::error::{Error, IoContext, Result};

/// Opens the store in `opts.dir`: the lock, the listing, then the
/// recovery its format calls for. Returns the lock and the parts of the
/// store, which `Store::open` assembles.
pub(crate) fn open(opts: &Options, mode: Mode) -> Result<(Box<dyn LockGuard>, Parts)> {
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
    Ok((guard, open_locked(opts, mode)?))
}

/// The store's state from its files, read under a lock the caller holds
/// (taken by [`open`], or held by another handle of this process).
pub(crate) fn open_locked(opts: &Options, mode: Mode) -> Result<Parts> {
    let (vfs, dir) = (&*opts.vfs, &opts.dir);
    let listing = list_dir(vfs, dir)?;
    Ok(match manifest::read(vfs, dir)? {
        Some(m) => open_v2(opts, mode, &listing, m)?,
        None if mode == Mode::Write && listing.is_empty() => create(opts)?,
        None => replay::open_v1(opts, mode, listing)?,
    })
}

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

/// What a segment file's header says about who owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A format-2 header with this store's id and the number of its name.
    Ours(SegmentHeader),
    /// Anything else: another store's, a format-1 file, or unreadable.
    Foreign,
}

/// `active.seg` as found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ActiveFound {
    /// File length.
    pub len: u64,
    /// Its header, or why it does not decode.
    pub header: Result<SegmentHeader, &'static str>,
}

/// Everything recovery needs to know, read without changing anything.
#[derive(Clone, Debug, Default)]
pub(crate) struct Inventory {
    /// `seg_N.seg` files present, by number, with their owner when they are
    /// not members (members are checked when first read).
    pub segments: BTreeMap<u64, Option<Owner>>,
    /// `seg_N.idx` files present, by number: `Some(true)` when a non-member
    /// index checks with this store's id.
    pub indexes: BTreeMap<u64, Option<bool>>,
    /// `*.stratum-tmp` names.
    pub temps: Vec<String>,
    /// `active.seg`, when present.
    pub active: Option<ActiveFound>,
}

/// What recovery will do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// File names to delete.
    pub remove: Vec<String>,
    /// Extra files left alone (foreign), for notices.
    pub ignored: Vec<String>,
    /// A sealed segment to make a member: a seal interrupted before its
    /// manifest was written.
    pub adopt: Option<u64>,
    /// Create `active.seg` with this number.
    pub create_active: Option<u64>,
    /// The active segment's number once applied.
    pub active: u64,
    /// The lowest number a new segment may take.
    pub next_number: u64,
}

/// Why a store cannot be opened as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A listed member is not in the directory.
    MissingMember(u64),
    /// The manifest names an active segment that is not there.
    ActiveMissing,
    /// `active.seg` is shorter than a header (0 bytes after a bad restore).
    ActiveTooShort(u64),
    /// `active.seg` has a bad header.
    ActiveBad(&'static str),
    /// `active.seg` belongs to another store (or is format 1).
    ActiveForeign,
    /// `active.seg` has another number than the manifest's.
    ActiveNumber {
        /// In its header.
        found: u64,
        /// In the manifest.
        expected: u64,
    },
}

impl Refusal {
    /// The error an open fails with (exit 6), naming the file.
    pub fn into_error(self, dir: &Path) -> Error {
        let active = dir.join(format::ACTIVE_NAME);
        match self {
            Refusal::MissingMember(n) => Error::corrupt(
                dir.join(format::segment_name(n)),
                0,
                "member of the store is missing (the manifest lists it; restore it, or repair the store to keep the rest)",
            ),
            Refusal::ActiveMissing => Error::corrupt(
                active,
                0,
                "active segment is missing (the manifest lists it)",
            ),
            Refusal::ActiveTooShort(len) => Error::corrupt(
                active,
                0,
                format!("active segment is {len} bytes long, shorter than its header"),
            ),
            Refusal::ActiveBad(why) => Error::corrupt(active, 0, why),
            Refusal::ActiveForeign => {
                Error::corrupt(active, 0, "active segment belongs to another store")
            }
            Refusal::ActiveNumber { found, expected } => Error::corrupt(
                active,
                0,
                format!("active segment number {found}, the manifest says {expected}"),
            ),
        }
    }
}

/// Decides what recovery does (docs/FORMAT.md §8.5, plan rules 1–4).
///
/// # Errors
/// The first [`Refusal`] that applies.
pub(crate) fn plan(m: &Manifest, inv: &Inventory) -> Result<Plan, Refusal> {
    let members: BTreeSet<u64> = m.members.iter().map(|x| x.number).collect();
    if let Some(missing) = members.iter().find(|n| !inv.segments.contains_key(n)) {
        return Err(Refusal::MissingMember(*missing));
    }
    let ours = |n: u64| {
        matches!(inv.segments.get(&n), Some(Some(Owner::Ours(h))) if h.number == n)
            && !members.contains(&n)
    };
    let a = m.active;
    // The number sealing gives the next active segment (§8.3 step 8).
    let after = (a + 1).max(m.next_number);
    let mut plan = Plan {
        active: a,
        ..Plan::default()
    };
    match inv.active {
        Some(found) if found.len < SEGMENT_HEADER_LEN as u64 => {
            return Err(Refusal::ActiveTooShort(found.len));
        }
        Some(found) => {
            let h = found.header.map_err(Refusal::ActiveBad)?;
            if h.version != FORMAT_VERSION || h.store_id != m.store_id {
                return Err(Refusal::ActiveForeign);
            }
            if h.number == after && found.len == SEGMENT_HEADER_LEN as u64 && ours(a) {
                // Sealing step 10 done, manifest not yet written.
                plan.adopt = Some(a);
                plan.active = after;
            } else if h.number != a {
                return Err(Refusal::ActiveNumber {
                    found: h.number,
                    expected: a,
                });
            }
        }
        None if ours(a) => {
            // Sealing step 3 done, no new active segment yet.
            plan.adopt = Some(a);
            plan.active = after;
            plan.create_active = Some(after);
        }
        None => return Err(Refusal::ActiveMissing),
    }
    for (&n, owner) in &inv.segments {
        if members.contains(&n) || plan.adopt == Some(n) {
            continue;
        }
        let name = format::segment_name(n);
        match owner {
            Some(Owner::Ours(h)) if h.number == n => plan.remove.push(name),
            _ => plan.ignored.push(name),
        }
    }
    for (&n, ours) in &inv.indexes {
        if members.contains(&n) || plan.adopt == Some(n) {
            continue;
        }
        if *ours == Some(true) {
            plan.remove.push(format::index_name(n));
        } else {
            plan.ignored.push(format::index_name(n));
        }
    }
    plan.remove.extend(inv.temps.iter().cloned());
    let highest = inv.segments.keys().chain(inv.indexes.keys()).max().copied();
    plan.next_number = m
        .next_number
        .max(plan.active + 1)
        .max(highest.map_or(0, |h| h + 1));
    Ok(plan)
}

// ---------------------------------------------------------------------------
// Inventory and apply: the parts that touch the file system.

/// Reads what [`plan`] needs. Members are not opened here.
fn inventory(
    vfs: &dyn Vfs,
    dir: &Path,
    listing: &Listing,
    m: &Manifest,
    write: bool,
) -> Result<(Inventory, Option<Box<dyn VFile>>)> {
    let members: BTreeSet<u64> = m.members.iter().map(|x| x.number).collect();
    let mut inv = Inventory {
        temps: listing.temps.clone(),
        ..Inventory::default()
    };
    for &n in listing.segments.keys() {
        let owner = if members.contains(&n) {
            None
        } else {
            let path = dir.join(format::segment_name(n));
            let file = vfs.open_read(&path).io("open", &path)?;
            let mut hb = [0u8; SEGMENT_HEADER_LEN];
            let got = segment::read_prefix(&*file, &mut hb, &path)?;
            Some(match SegmentHeader::decode(&hb[..got]) {
                Ok(h) if h.version == FORMAT_VERSION && h.store_id == m.store_id => Owner::Ours(h),
                _ => Owner::Foreign,
            })
        };
        inv.segments.insert(n, owner);
    }
    for &n in listing.indexes.keys() {
        let ours = if members.contains(&n) {
            None
        } else {
            let path = dir.join(format::index_name(n));
            let bind = Binding {
                version: FORMAT_VERSION,
                store_id: m.store_id,
            };
            let ok = vfs.open_read(&path).is_ok_and(|f| {
                let mut buf = [0u8; format::INDEX_HEADER_LEN];
                f.read_exact_at(&mut buf, 0).is_ok()
                    && format::IndexHeader::decode(&buf, bind.store_id)
                        .is_some_and(|h| h.version == FORMAT_VERSION && h.segment == n)
            });
            Some(ok)
        };
        inv.indexes.insert(n, ours);
    }
    let mut active_file = None;
    if listing.active {
        let path = dir.join(ACTIVE_NAME);
        let file = if write {
            vfs.open_rw(&path)
        } else {
            vfs.open_read(&path)
        }
        .io("open", &path)?;
        let len = file.len().io("stat", &path)?;
        let mut hb = [0u8; SEGMENT_HEADER_LEN];
        let got = segment::read_prefix(&*file, &mut hb, &path)?;
        let header = match SegmentHeader::decode(&hb[..got]) {
            Ok(h) => Ok(h),
            Err(format::HeaderError::Bad(why)) => Err(why),
            Err(format::HeaderError::Version(found)) => {
                return Err(Error::UnsupportedVersion { path, found });
            }
        };
        inv.active = Some(ActiveFound { len, header });
        active_file = Some(file);
    }
    Ok((inv, active_file))
}

/// Opens a format-2 store: inventory, plan, and in write mode apply.
fn open_v2(opts: &Options, mode: Mode, listing: &Listing, mut m: Manifest) -> Result<Parts> {
    let mut dir_dirty = false;
    let vfs = opts.vfs.clone();
    let dir = opts.dir.clone();
    let write = mode == Mode::Write;
    let (inv, active_file) = inventory(&*vfs, &dir, listing, &m, write)?;
    let plan = plan(&m, &inv).map_err(|r| r.into_error(&dir))?;
    m.next_number = m.next_number.max(plan.next_number);
    let mut notices: Vec<Notice> = plan
        .ignored
        .iter()
        .map(|n| Notice::NotAMember { name: n.clone() })
        .collect();
    let bind2 = Binding {
        version: FORMAT_VERSION,
        store_id: m.store_id,
    };
    // A write open refuses a store with a member replaced or truncated (one
    // stat each, no open, no read), so that nothing is written into a store
    // that lost data. A read-only open leaves that to the first read of each
    // member (`open_member` checks length, header and contents), so that a
    // command reading one document pays for the members that may hold it,
    // not a stat per member.
    if write {
        for member in &m.members {
            let path = dir.join(format::segment_name(member.number));
            segment::check_len(&path, vfs.file_len(&path).io("stat", &path)?, member)?;
        }
    }
    // Every check has passed: from here on, a write open may change things.
    if write {
        if plan.remove.iter().any(|n| !n.ends_with(format::TMP_SUFFIX)) {
            // The removals rely on the manifest that made these files extra:
            // make its rename durable first, as a crash may have left it not.
            vfs.sync_dir(&dir).io("fsync", &dir)?;
        }
        for name in &plan.remove {
            let p = dir.join(name);
            match vfs.remove_file(&p) {
                Ok(()) => dir_dirty = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &p, e)),
            }
        }
    }
    let mut adopted = None;
    if let Some(n) = plan.adopt {
        let (s, member) = adopt(opts, mode, n, bind2, &mut dir_dirty)?;
        // Its footer knows the ids it handed out (deleted ones included).
        m.doc_hwm = m.doc_hwm.max(s.doc_hwm);
        adopted = Some(s);
        m.members.push(member);
        m.members.sort_by_key(|x| x.number);
        m.active = plan.active;
        m.next_number = m.next_number.max(plan.next_number);
        m.max_seq = m.max_seq.max(member.max_seq);
    }
    let mut sealed = Vec::with_capacity(m.members.len());
    for member in &m.members {
        if adopted.as_ref().is_some_and(|s| s.number == member.number) {
            if let Some(s) = adopted.take() {
                sealed.push(s);
            }
            continue;
        }
        sealed.push(lazy_member(opts, mode, member, &m));
    }
    let active_path = dir.join(ACTIVE_NAME);
    let mut active = Active::empty(plan.active, active_path.clone());
    let mut active_max_seq = 0u64;
    let mut ckpt_marks = (0u64, 0u64);
    let mut reseal = false;
    match (active_file, plan.create_active) {
        (Some(file), None) if plan.adopt.is_none() || listing.active => {
            // Its length and header as the inventory read them (under the
            // lock, so still true): read once per open.
            let (len, header) = match inv.active {
                Some(found) => (found.len, found.header.ok()),
                None => (file.len().io("stat", &active_path)?, None),
            };
            let (scan, checkpoint) =
                replay::scan_active(opts, &*file, &active_path, len, header, bind2)?;
            if let Some(err) = scan.damage {
                return Err(err);
            }
            if checkpoint.is_none() && write && listing.active_index {
                let p = dir.join(format::ACTIVE_INDEX_NAME);
                let _ = vfs.remove_file(&p);
            }
            if scan.seal.is_some() && write {
                // A crash between the footer and the rename (sealing steps
                // 2–3): drop the footer, and seal again below.
                file.set_len(scan.end - format::SEAL_RECORD_LEN as u64)
                    .and_then(|()| file.sync_data())
                    .io("truncate", &active_path)?;
                reseal = true;
            } else if scan.bad_at.is_some() && write && scan.seal.is_none() {
                let at = scan.bad_at.as_ref().map_or(scan.end, |(at, _)| *at);
                let dropped = scan.file_len - scan.end;
                file.set_len(scan.end).io("truncate", &active_path)?;
                file.sync_data().io("fsync", &active_path)?;
                notices.push(Notice::DiscardedIncompleteWrite {
                    path: active_path.clone(),
                    bytes: dropped,
                    offset: at.min(scan.end),
                });
            }
            active_max_seq = scan.max_seq;
            let end = if reseal {
                scan.end - format::SEAL_RECORD_LEN as u64
            } else {
                scan.end
            };
            let checkpoint = match checkpoint {
                Some((f, h)) => {
                    ckpt_marks = (h.max_seq, h.doc_hwm);
                    Some((
                        SealedIndex::on_disk(dir.join(format::ACTIVE_INDEX_NAME), f, h),
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
                end,
                entries: scan.entries,
                records: scan.records + prefix_records,
                checkpoint: checkpoint.map(|(index, len, _)| (index, len)),
            });
        }
        (_, Some(n)) if write => {
            if dir_dirty {
                vfs.sync_dir(&dir).io("fsync", &dir)?;
            }
            active = create_active(&dir, &*vfs, n, m.store_id)?;
            dir_dirty = false;
        }
        _ => {}
    }
    if write && dir_dirty {
        vfs.sync_dir(&dir).io("fsync", &dir)?;
    }
    let marks = (
        m.max_seq.max(ckpt_marks.0).max(active_max_seq),
        m.doc_hwm.max(ckpt_marks.1),
    );
    Ok(Parts {
        sealed,
        active,
        marks,
        notices,
        manifest: Some(m),
        finish: Finish {
            manifest: write && plan.adopt.is_some(),
            reseal,
            upgrade: false,
        },
    })
}

/// A member that is opened only when first needed.
fn lazy_member(opts: &Options, mode: Mode, member: &Member, m: &Manifest) -> Sealed {
    Sealed {
        number: member.number,
        version: member.version,
        path: opts.dir.join(format::segment_name(member.number)),
        len: member.len,
        max_seq: member.max_seq,
        doc_hwm: m.doc_hwm,
        generation: (member.flags & 1 != 0).then_some((member.number, 1)),
        member: Some(*member),
        handle: std::cell::OnceCell::new(),
        lazy: Some(Lazy {
            opts: opts.clone(),
            mode,
            store_id: m.store_id,
        }),
    }
}

/// Makes sealed segment `n` (this store's, not yet listed) a member: scans
/// it strictly, writes its index (write mode) and returns its entry.
fn adopt(
    opts: &Options,
    mode: Mode,
    n: u64,
    bind: Binding,
    dir_dirty: &mut bool,
) -> Result<(Sealed, Member)> {
    let path = opts.dir.join(format::segment_name(n));
    let file = opts.vfs.open_read(&path).io("open", &path)?;
    let scan = segment::scan(&*file, &path, true)?;
    if let Some(err) = scan.damage {
        return Err(err);
    }
    let mut stats = MemberStats::default();
    for e in &scan.entries {
        stats.add(e);
    }
    let member = stats.member(n, scan.end, bind.version, scan.max_seq, 0);
    // The index may be missing or a partial leftover: rebuild it.
    let idx = opts.dir.join(format::index_name(n));
    if mode == Mode::Write {
        let _ = opts.vfs.remove_file(&idx);
    }
    let mut s = segment::open_sealed(opts, mode, n, file, dir_dirty, bind, None)?;
    s.member = Some(member);
    Ok((s, member))
}

/// Creates a new, empty format-2 store in a directory holding none of
/// stratum's files: `active.seg` number 1 with a new store id, then the
/// first manifest (docs/FORMAT.md §8.3, last paragraph).
fn create(opts: &Options) -> Result<Parts> {
    let vfs = opts.vfs.clone();
    let dir = opts.dir.clone();
    let store_id = vfs.new_store_id();
    let active = create_active(&dir, &*vfs, 1, store_id)?;
    let m = Manifest {
        store_id,
        serial: 1,
        active: 1,
        next_number: 2,
        doc_hwm: 0,
        max_seq: 0,
        counters: [0; 4],
        members: Vec::new(),
    };
    manifest::write(&*vfs, &dir, &m)?;
    Ok(Parts {
        sealed: Vec::new(),
        active,
        marks: (0, 0),
        notices: Vec::new(),
        manifest: Some(m),
        finish: Finish::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::format::UNKNOWN;

    const ID: u64 = 0x5707e;

    fn member(n: u64) -> Member {
        Member {
            number: n,
            len: 100,
            records: 1,
            min_seq: 1,
            max_seq: 2,
            min_doc: 1,
            max_doc: 1,
            keys: 0,
            live_bytes: UNKNOWN,
            dead_bytes: UNKNOWN,
            version: FORMAT_VERSION,
            flags: 0,
        }
    }

    fn manifest(members: &[u64], active: u64) -> Manifest {
        Manifest {
            store_id: ID,
            serial: 1,
            active,
            next_number: active + 1,
            doc_hwm: 1,
            max_seq: 2,
            counters: [UNKNOWN; 4],
            members: members.iter().map(|&n| member(n)).collect(),
        }
    }

    fn ours(n: u64) -> Option<Owner> {
        Some(Owner::Ours(SegmentHeader::v2(n, ID, 0)))
    }

    fn active(n: u64, len: u64, id: u64) -> Option<ActiveFound> {
        Some(ActiveFound {
            len,
            header: Ok(SegmentHeader::v2(n, id, 0)),
        })
    }

    fn inv(segments: &[(u64, Option<Owner>)], act: Option<ActiveFound>) -> Inventory {
        Inventory {
            segments: segments.iter().copied().collect(),
            active: act,
            ..Inventory::default()
        }
    }

    #[test]
    fn a_clean_store_needs_nothing() {
        let m = manifest(&[1, 2], 3);
        let p = plan(&m, &inv(&[(1, None), (2, None)], active(3, 500, ID))).unwrap();
        assert_eq!(
            p,
            Plan {
                active: 3,
                next_number: 4,
                ..Plan::default()
            }
        );
    }

    /// Issue 8, hole 1: a missing member is refused, never read as a
    /// smaller store.
    #[test]
    fn a_missing_member_is_refused() {
        let m = manifest(&[3, 4], 5);
        let r = plan(&m, &inv(&[(3, None)], active(5, 40, ID)));
        assert_eq!(r, Err(Refusal::MissingMember(4)));
    }

    /// Issue 8, hole 3: a deleted or emptied active segment is refused.
    #[test]
    fn a_missing_or_empty_active_segment_is_refused() {
        let m = manifest(&[1], 2);
        assert_eq!(
            plan(&m, &inv(&[(1, None)], None)),
            Err(Refusal::ActiveMissing)
        );
        let empty = Some(ActiveFound {
            len: 0,
            header: Err("file is shorter than a segment header"),
        });
        assert_eq!(
            plan(&m, &inv(&[(1, None)], empty)),
            Err(Refusal::ActiveTooShort(0))
        );
        assert_eq!(
            plan(&m, &inv(&[(1, None)], active(2, 40, ID + 1))),
            Err(Refusal::ActiveForeign)
        );
        assert_eq!(
            plan(&m, &inv(&[(1, None)], active(7, 40, ID))),
            Err(Refusal::ActiveNumber {
                found: 7,
                expected: 2
            })
        );
    }

    /// Issue 8, hole 2: a foreign segment is never taken for a member, and
    /// never deleted; new segments are numbered above it.
    #[test]
    fn a_foreign_extra_file_is_ignored_not_deleted() {
        let m = manifest(&[1], 2);
        let p = plan(
            &m,
            &inv(&[(1, None), (4, Some(Owner::Foreign))], active(2, 40, ID)),
        )
        .unwrap();
        assert_eq!(p.ignored, vec!["seg_000004.seg".to_owned()]);
        assert!(p.remove.is_empty());
        assert_eq!(p.next_number, 5);
    }

    #[test]
    fn leftovers_of_this_store_are_removed() {
        let m = manifest(&[5], 3);
        let mut i = inv(&[(2, ours(2)), (5, None), (6, ours(6))], active(3, 40, ID));
        i.indexes = [(2, Some(true)), (5, None), (9, Some(false))]
            .into_iter()
            .collect();
        i.temps = vec!["MANIFEST.stratum-tmp".into()];
        let p = plan(&m, &i).unwrap();
        assert_eq!(
            p.remove,
            vec![
                "seg_000002.seg".to_owned(),
                "seg_000006.seg".to_owned(),
                "seg_000002.idx".to_owned(),
                "MANIFEST.stratum-tmp".to_owned()
            ]
        );
        assert_eq!(p.ignored, vec!["seg_000009.idx".to_owned()]);
        assert_eq!(p.next_number, 10);
    }

    #[test]
    fn an_interrupted_seal_is_finished() {
        let m = manifest(&[1], 2);
        // Renamed, no new active segment yet.
        let p = plan(&m, &inv(&[(1, None), (2, ours(2))], None)).unwrap();
        assert_eq!((p.adopt, p.create_active, p.active), (Some(2), Some(3), 3));
        // The new active segment exists, the manifest was not written.
        let p = plan(&m, &inv(&[(1, None), (2, ours(2))], active(3, 40, ID))).unwrap();
        assert_eq!((p.adopt, p.create_active, p.active), (Some(2), None, 3));
        // A foreign file in its place is not adopted.
        let r = plan(&m, &inv(&[(1, None), (2, Some(Owner::Foreign))], None));
        assert_eq!(r, Err(Refusal::ActiveMissing));
    }
}
