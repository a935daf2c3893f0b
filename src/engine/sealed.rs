//! The sealed-set owner: the store's sealed segments (its members, each
//! with its index), the manifest that lists them, what this open found out
//! about stale index files, and the read-ahead windows of whole-store
//! passes. Only this module changes them: sealing and a spilled batch add
//! members ([`SealedSet::push`]), compaction swaps them
//! ([`SealedSet::replace`]), a rolled-back batch takes its own out again,
//! and every manifest write goes through [`SealedSet::write_manifest`].
//! Lookups (a document's entries, the cursors of a merge, a record read)
//! are its methods.
//!
//! # A stale index is a cache miss, not damage (issue 9, item 6)
//!
//! An index file whose checksums pass can still describe another file: an
//! index restored from another backup of the same store (same number, same
//! length, other records), or another segment's index copied over. The
//! segment is the truth. An index whose header describes another segment,
//! or that lists another number of entries than the manifest counted for
//! its segment, is passed over when the member is opened. When a record
//! read through an index does not match the entry that found it, the
//! segment is scanned: if the scan is clean, the index was stale, the
//! segment answers from the scan from then on, and the read is done again.
//! Either way a notice names the index file; a write open also writes the
//! index again from the scan, a read open changes nothing, and `repair` (or
//! the next write that meets it) rebuilds it. A scan that finds damage
//! leaves the original error to be reported: then it is the segment that is
//! damaged. The segment itself is never rewritten.
//!
//! Every entry a command reads is checked against its record, so a stale
//! index cannot make a command serve another record. An index that is wrong
//! only in entries no command reads (it agrees on the count and on every
//! record it is asked for) is found by `verify` and fixed by `repair`, which
//! compare every entry.

use std::cell::{Cell, RefCell};

use crate::engine::format::{
    self, FORMAT_V1, FORMAT_VERSION, IndexEntry, MAX_PAYLOAD, Manifest, RECORD_HEADER_LEN,
    RecordHeader,
};
use crate::engine::index::{self, Binding, Cursor, Entry, Merge, SealedIndex};
use crate::engine::keys::{KeyEntry, KeyIndex};
use crate::engine::manifest;
use crate::engine::notice::{Notice, StaleIndex};
use crate::engine::options::{Mode, Options};
use crate::engine::segment::{self, ReadAhead, Sealed};
use crate::error::{Error, IoContext, Result};

/// Up to this many listed members holding keys, a key lookup probes them
/// rather than read the key index (docs/FORMAT.md §7.8).
const PROBE_AT_MOST: usize = 2;

/// Where a store sends its notices (see `Store::on_notice`).
pub type NoticeHook = Box<dyn Fn(&Notice) + Send>;

/// What this store found out about its index files while open.
#[derive(Default)]
struct StaleIndexes {
    /// Bumped each time an index is found stale, so that a read that failed
    /// through it knows to run again.
    epoch: Cell<u64>,
    /// Where notices go once the caller has taken the open's notices; until
    /// then they queue.
    hook: Option<NoticeHook>,
    queued: RefCell<Vec<Notice>>,
    /// Members already scanned after a failed read and found at fault
    /// themselves: a later failure there is not scanned for again.
    damaged: RefCell<Vec<u64>>,
}

impl StaleIndexes {
    fn notice(&self, n: Notice) {
        match &self.hook {
            Some(h) => h(&n),
            None => self.queued.borrow_mut().push(n),
        }
    }
}

/// The notice for member `s`'s stale index, found by a `mode` open.
fn notice(s: &Sealed, mode: Mode, why: StaleIndex) -> Notice {
    Notice::StaleIndex {
        path: s.idx_path(),
        why,
        rebuilt: mode == Mode::Write,
    }
}

/// A document's entries in the members, as found under a stale epoch.
struct LastLookup {
    id: u64,
    epoch: u64,
    entries: Vec<Entry>,
}

/// Entries a document may have for [`SealedSet::entries_of`] to keep its
/// answer: memory stays one small document's, whatever the largest.
const LAST_LOOKUP_MAX: usize = 4096;

/// The most bytes [`SealedSet::with_span`] reads at once: memory stays a
/// small document's, and a larger one is read record by record.
const SPAN_MAX: u64 = 256 * 1024;

/// Bytes of member `seg` from `base`, holding one document's records.
struct Span {
    seg: u64,
    base: u64,
    buf: Vec<u8>,
}

impl Span {
    /// The bytes of the record `e` points at, when it lies in the span.
    fn record(&self, seg: u64, e: &Entry) -> Option<&[u8]> {
        if seg != self.seg {
            return None;
        }
        let from = usize::try_from(e.offset.checked_sub(self.base)?).ok()?;
        self.buf.get(from..from.checked_add(e.len as usize)?)
    }
}

/// The store's sealed segments and the manifest that lists them.
pub(crate) struct SealedSet {
    /// Sorted by number: lookups binary-search it.
    members: Vec<Sealed>,
    /// The manifest as last written; `None` for a format-1 store opened
    /// read-only (a write open upgrades it first).
    manifest: Option<Manifest>,
    /// The store-wide key index, checked against the manifest.
    keys: KeyIndex,
    stale: StaleIndexes,
    /// Read-ahead windows, during whole-store passes only.
    readahead: RefCell<Option<ReadAhead>>,
    /// One document's records, read at once ([`SealedSet::with_span`]).
    span: RefCell<Option<Span>>,
    /// The last [`SealedSet::entries_of`] answer, while the members and
    /// the stale epoch it was found under stand: a batch's operations on
    /// one document each look it up.
    last_lookup: RefCell<Option<LastLookup>>,
    /// Where an index found stale is written again (write opens only).
    opts: Options,
    mode: Mode,
}

impl SealedSet {
    pub fn new(
        mut members: Vec<Sealed>,
        manifest: Option<Manifest>,
        opts: Options,
        mode: Mode,
    ) -> SealedSet {
        members.sort_by_key(|s| s.number);
        SealedSet {
            members,
            keys: KeyIndex::new(manifest.as_ref()),
            manifest,
            stale: StaleIndexes::default(),
            readahead: RefCell::new(None),
            span: RefCell::new(None),
            last_lookup: RefCell::new(None),
            opts,
            mode,
        }
    }

    /// The members, oldest (lowest number) first.
    pub fn iter(&self) -> std::slice::Iter<'_, Sealed> {
        self.members.iter()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Member number `n`.
    pub fn get(&self, n: u64) -> Option<&Sealed> {
        self.members
            .binary_search_by_key(&n, |s| s.number)
            .ok()
            .map(|i| &self.members[i])
    }

    /// The highest member number (0 when there is none).
    pub fn last_number(&self) -> u64 {
        self.members.last().map_or(0, |s| s.number)
    }

    /// Bytes of the members' segment files.
    pub fn total_len(&self) -> u64 {
        self.members.iter().map(|s| s.len).sum()
    }

    /// Takes a new member in (sealing, a spilled batch's file), in order:
    /// compaction outputs may be numbered above it.
    pub fn push(&mut self, s: Sealed) {
        self.last_lookup.take();
        self.members.push(s);
        self.members.sort_by_key(|s| s.number);
    }

    /// Takes member `n` out (a rolled-back batch's file).
    pub fn remove(&mut self, n: u64) -> Result<Sealed> {
        self.last_lookup.take();
        let i = self
            .members
            .binary_search_by_key(&n, |s| s.number)
            .map_err(|_| Error::internal("spilled member not in the sealed set"))?;
        Ok(self.members.remove(i))
    }

    /// Swaps the members in `set` (all of them for `None`) for `outputs`;
    /// returns the ones taken out (compaction's commit).
    pub fn replace(&mut self, set: Option<&[u64]>, outputs: Vec<Sealed>) -> Vec<Sealed> {
        self.last_lookup.take();
        let replaced = |n: u64| set.is_none_or(|set| set.binary_search(&n).is_ok());
        let (old, mut kept): (Vec<Sealed>, Vec<Sealed>) = std::mem::take(&mut self.members)
            .into_iter()
            .partition(|s| replaced(s.number));
        kept.extend(outputs);
        kept.sort_by_key(|s| s.number);
        self.members = kept;
        old
    }

    /// The manifest as last written (or as about to be).
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// The manifest, to change before [`SealedSet::write_manifest`].
    pub fn manifest_mut(&mut self) -> Option<&mut Manifest> {
        self.manifest.as_mut()
    }

    /// The first manifest of an upgraded format-1 store, written.
    pub fn set_manifest(&mut self, m: Manifest) {
        self.manifest = Some(m);
    }

    /// Replaces the manifest on disk with the in-memory one (serial one
    /// above).
    pub fn write_manifest(&mut self) -> Result<()> {
        let Some(m) = self.manifest.as_mut() else {
            return Err(Error::internal("no manifest to write"));
        };
        m.serial += 1;
        manifest::write(&*self.opts.vfs, &self.opts.dir, m)
    }

    /// The store's format version: 2 once it has a manifest.
    pub fn format_version(&self) -> u16 {
        if self.manifest.is_some() {
            FORMAT_VERSION
        } else {
            FORMAT_V1
        }
    }

    /// The store id (0 for a format-1 store).
    pub fn store_id(&self) -> u64 {
        self.manifest.as_ref().map_or(0, |m| m.store_id)
    }

    /// Which index files belong to a segment of `version` in this store.
    pub fn binding(&self, version: u16) -> Binding {
        Binding {
            version,
            store_id: if version == FORMAT_V1 {
                0
            } else {
                self.store_id()
            },
        }
    }

    /// The candidates for key slot `slot` in the members, as (seq,
    /// document), from the key index when it is valid for the manifest:
    /// its entries naming listed members, plus a probe of the members the
    /// manifest does not list yet (a spilled batch's files). `Ok(None)`
    /// when the key index cannot be used, or when at most
    /// [`PROBE_AT_MOST`] listed members hold keys: the caller probes every
    /// member.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Corrupt`].
    pub fn key_candidates(&self, slot: u64) -> Result<Option<Vec<(u64, u64)>>> {
        let Some(m) = self.manifest.as_ref() else {
            return Ok(None);
        };
        // Probing one or two members costs no more than the pair's two
        // searches, and shares their blocks with the id lookup that
        // follows.
        if m.members
            .iter()
            .filter(|x| x.keys > 0)
            .nth(PROBE_AT_MOST)
            .is_none()
        {
            return Ok(None);
        }
        let Some(found) = self.keys.lookup(&*self.opts.vfs, &self.opts.dir, m, slot)? else {
            return Ok(None);
        };
        let mut out: Vec<(u64, u64)> = found.iter().map(|e| (e.seq, e.doc)).collect();
        let listed = |n: u64| m.members.binary_search_by_key(&n, |x| x.number).is_ok();
        for s in self
            .members
            .iter()
            .filter(|s| !listed(s.number) && s.may_hold(slot))
        {
            for ie in self
                .index_of(s)?
                .lookup(slot, s.docs(), &|| s.scan_entries())?
            {
                out.push((ie.seq, ie.node));
            }
        }
        Ok(Some(out))
    }

    /// Member `n`'s key entries, from its index.
    fn member_keys(&self, n: u64) -> Result<Vec<KeyEntry>> {
        let s = self
            .get(n)
            .ok_or_else(|| Error::internal("a listed member not in the sealed set"))?;
        let tail = self
            .index_of(s)?
            .tail(format::KEY_SPACE, &|| s.scan_entries())?;
        Ok(tail
            .iter()
            .map(|e| KeyEntry {
                slot: e.doc,
                doc: e.node,
                seq: e.seq,
                member: n,
            })
            .collect())
    }

    /// Brings the key index up to date with the manifest just committed,
    /// once the members in memory are the ones it lists. Never fails the
    /// command: the manifest is durable, so the write stands, and the key
    /// index is a cache. A failure is a notice, and lookups probe the
    /// members until a later commit rebuilds it (docs/FORMAT.md §7.8).
    pub fn commit_keys(&mut self) {
        let Some(m) = self.manifest.take() else {
            return;
        };
        let mut keys = std::mem::replace(&mut self.keys, KeyIndex::new(None));
        let r = keys.commit(&*self.opts.vfs, &self.opts.dir, &m, &|n| {
            self.member_keys(n)
        });
        self.keys = keys;
        self.manifest = Some(m);
        if let Err(e) = r {
            self.stale
                .notice(Notice::KeyIndexNotWritten { why: e.to_string() });
        }
    }

    /// Every entry of document (or key slot) `id` in the members: only the
    /// members whose document range holds it (after a load or a compaction
    /// that is one, whatever the number of segments).
    pub fn entries_of(&self, id: u64) -> Result<Vec<Entry>> {
        let epoch = self.stale_epoch();
        if let Some(last) = self.last_lookup.borrow().as_ref()
            && (last.id, last.epoch) == (id, epoch)
        {
            return Ok(last.entries.clone());
        }
        let mut out = Vec::new();
        for s in self.members.iter().filter(|s| s.may_hold(id)) {
            for ie in self
                .index_of(s)?
                .lookup(id, s.docs(), &|| s.scan_entries())?
            {
                out.push(Entry::new(&ie, s.number));
            }
        }
        // Not kept when an index was found stale on the way.
        let keep = out.len() <= LAST_LOOKUP_MAX && self.stale_epoch() == epoch;
        *self.last_lookup.borrow_mut() = keep.then(|| LastLookup {
            id,
            epoch,
            entries: out.clone(),
        });
        Ok(out)
    }

    /// Cursors over every member's entries, for a merge.
    pub fn cursors(&self) -> Result<Vec<(Cursor<'_>, u64)>> {
        let mut sources = Vec::with_capacity(self.members.len() + 1);
        for s in &self.members {
            sources.push((
                self.index_of(s)?
                    .cursor(Box::new(move || s.scan_entries()))?,
                s.number,
            ));
        }
        Ok(sources)
    }

    /// Member `s`'s index, with the notice of an index file passed over at
    /// open for its entry count.
    pub fn index_of<'a>(&self, s: &'a Sealed) -> Result<&'a SealedIndex> {
        let index = s.index()?;
        if let Some(why) = index.take_passed_over() {
            // The key index was built from that file: not trusted either.
            self.keys.distrust();
            self.stale.notice(notice(s, self.mode, why));
        }
        Ok(index)
    }

    /// Reads the record `e` (of member `e.seg`) points at. An entry that
    /// points outside its segment, or at another record, may come from a
    /// stale index: the member is checked (see the module docs) and the
    /// caller reads again when it was.
    pub fn read(&self, e: &Entry) -> Result<(RecordHeader, Vec<u8>)> {
        self.read_with(e, |h, payload| Ok((h, payload.to_vec())))
    }

    /// [`SealedSet::read`], lending the checked payload to `f` instead of
    /// copying it (from the read-ahead window, in a whole-store pass): `f`
    /// takes what it needs of a record it may mostly skip.
    pub fn read_with<T>(
        &self,
        e: &Entry,
        f: impl FnOnce(RecordHeader, &[u8]) -> Result<T>,
    ) -> Result<T> {
        let s = self.get(e.seg);
        // An index entry is trusted for where to look, never for how much to
        // allocate.
        let max = RECORD_HEADER_LEN as u64 + u64::from(MAX_PAYLOAD);
        let seg_len = s.map_or(0, |s| s.len);
        let why = if u64::from(e.len) > max || (e.len as usize) < RECORD_HEADER_LEN {
            Some("index entry has an impossible record length")
        } else if e
            .offset
            .checked_add(u64::from(e.len))
            .is_none_or(|end| end > seg_len)
        {
            Some("index entry points past the end of its segment")
        } else {
            None
        };
        if let Some(why) = why {
            if let Some(s) = s {
                self.index_miss(s, e)?;
            }
            return Err(Error::corrupt(
                self.opts.dir.join(format::segment_name(e.seg)),
                e.offset,
                why,
            ));
        }
        let s = s.ok_or_else(|| Error::internal("entry for an unknown segment"))?;
        let read = self.read_sealed(s, e, f);
        if let Err(Error::Corrupt { .. }) = &read {
            // Stale: the caller reads again (see the module docs).
            self.index_miss(s, e)?;
        }
        read?
    }

    /// Reads and checks the record `e` points at in member `s`, and lends
    /// its payload to `f`: the outer result is the read's, which a stale
    /// index explains, the inner one `f`'s. `f` runs while the read-ahead
    /// windows are borrowed, so it must not read records itself.
    fn read_sealed<T>(
        &self,
        s: &Sealed,
        e: &Entry,
        f: impl FnOnce(RecordHeader, &[u8]) -> Result<T>,
    ) -> Result<Result<T>> {
        if let Some(b) = self
            .span
            .borrow()
            .as_ref()
            .and_then(|sp| sp.record(s.number, e))
        {
            let (h, payload) = segment::check_record_in(b, &s.path, e)?;
            return Ok(f(h, payload));
        }
        let mut ra = self.readahead.borrow_mut();
        if let Some(ra) = ra.as_mut() {
            let buf = ra.read(s.file()?, s.number, s.len, e).io("read", &s.path)?;
            let Some(b) = buf else {
                return Err(Error::corrupt(
                    &s.path,
                    e.offset,
                    "record runs past the end of the file (truncated)",
                ));
            };
            let (h, payload) = segment::check_record_in(b, &s.path, e)?;
            return Ok(f(h, payload));
        }
        drop(ra);
        let (h, payload) = segment::read_record(s.file()?, &s.path, e)?;
        Ok(f(h, &payload))
    }

    /// Calls `f` with the bytes of the record `e` points at in member `s`,
    /// through the read-ahead windows when a whole-store pass set them up.
    pub fn with_raw<T>(
        &self,
        s: &Sealed,
        e: &Entry,
        f: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<T> {
        let own;
        let mut ra = self.readahead.borrow_mut();
        let raw: &[u8] = match ra.as_mut() {
            Some(ra) => ra
                .read(s.file()?, s.number, s.len, e)
                .io("read", &s.path)?
                .ok_or_else(|| {
                    Error::corrupt(&s.path, e.offset, "record runs past the end of the file")
                })?,
            None => {
                let mut buf = vec![0u8; e.len as usize];
                s.file()?
                    .read_exact_at(&mut buf, e.offset)
                    .io("read", &s.path)?;
                own = buf;
                &own
            }
        };
        f(raw)
    }

    /// Runs `f` with the records `entries` point at read in one positioned
    /// read, when they lie in one member close together (a document
    /// written at once, as `load` and compaction write one) and come to at
    /// most [`SPAN_MAX`] bytes; otherwise, and in a whole-store pass (which
    /// reads ahead anyway), `f` reads them one by one. Each record is still
    /// checked on its own, so a damaged or stale one fails as it would.
    /// `f`'s reads of other records are unaffected.
    pub fn with_span<T>(&self, entries: &[&Entry], f: impl FnOnce() -> Result<T>) -> Result<T> {
        let span = if self.readahead.borrow().is_some() {
            None
        } else {
            self.read_span(entries)
        };
        let outer = self.span.replace(span);
        let r = f();
        self.span.replace(outer);
        r
    }

    fn read_span(&self, entries: &[&Entry]) -> Option<Span> {
        let (first, rest) = entries.split_first()?;
        let s = self.get(first.seg)?;
        let mut needed = 0u64;
        let (mut base, mut end) = (u64::MAX, 0u64);
        for e in entries {
            let e_end = e.offset.checked_add(u64::from(e.len))?;
            if e.seg != first.seg || e_end > s.len {
                return None;
            }
            base = base.min(e.offset);
            end = end.max(e_end);
            needed += u64::from(e.len);
        }
        // A span mostly of other documents' records is not worth reading.
        if rest.is_empty() || end - base > SPAN_MAX || end - base > 2 * needed {
            return None;
        }
        let mut buf = vec![0u8; usize::try_from(end - base).ok()?];
        // A failed read is left to the reads of the records themselves,
        // which report it for the record they were after.
        s.file().ok()?.read_exact_at(&mut buf, base).ok()?;
        Some(Span {
            seg: first.seg,
            base,
            buf,
        })
    }

    /// Starts a whole-store pass's read-ahead; returns what to put back
    /// when it ends ([`SealedSet::end_readahead`]).
    pub fn begin_readahead(&self) -> Option<ReadAhead> {
        self.readahead.replace(Some(ReadAhead::default()))
    }

    /// Ends a pass's read-ahead, putting back what was there before.
    pub fn end_readahead(&self, outer: Option<ReadAhead>) {
        self.readahead.replace(outer);
    }

    /// Sends notices found from now on to `f` as they happen, instead of
    /// queueing them.
    pub fn on_notice(&mut self, f: NoticeHook) {
        for n in self.stale.queued.get_mut().drain(..) {
            f(&n);
        }
        self.stale.hook = Some(f);
    }

    /// Notices queued since the open.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(self.stale.queued.get_mut())
    }

    /// The stale-index count: changes whenever an index is taken out of use.
    pub fn stale_epoch(&self) -> u64 {
        self.stale.epoch.get()
    }

    /// Points the cursors of `merge` that still read an index file taken out
    /// of use at the entries that replaced it, past document `doc`.
    pub fn refresh_merge<'a>(&'a self, merge: &mut Merge<'a>, doc: u64) -> Result<()> {
        for (cursor, seg) in &mut merge.sources {
            let Some(s) = self.get(*seg) else {
                continue;
            };
            let index = s.index()?;
            if cursor.on_disk() && !index.reads_file() {
                *cursor = index.cursor(Box::new(move || s.scan_entries()))?;
                cursor.skip_through(doc)?;
            }
        }
        Ok(())
    }

    /// A record read through member `s`'s index file did not match `e`.
    /// Scans the segment; when the scan is clean and does not hold `e`, the
    /// index was stale: it is replaced by the scan (and rewritten in a write
    /// open), and `Ok(true)` tells the caller to read again. `Ok(false)`
    /// means the segment itself is at fault (or the index was already out of
    /// use), and the caller reports its own error.
    pub fn index_miss(&self, s: &Sealed, e: &Entry) -> Result<bool> {
        if !s.index()?.reads_file() || self.stale.damaged.borrow().contains(&s.number) {
            return Ok(false);
        }
        let scan = segment::scan(s.file()?, &s.path, true)?;
        if scan.damage.is_some() {
            self.stale.damaged.borrow_mut().push(s.number);
            return Ok(false);
        }
        let mut entries = scan.entries;
        entries.sort_unstable_by_key(index::key);
        let own = e.index_entry();
        if entries
            .binary_search_by_key(&index::key(&own), index::key)
            .is_ok_and(|i| entries[i] == own)
        {
            self.stale.damaged.borrow_mut().push(s.number);
            return Ok(false);
        }
        self.replace_index(s, entries, scan.max_seq, scan.doc_hwm, StaleIndex::Mismatch)?;
        Ok(true)
    }

    /// Takes member `s`'s index file out of use in favour of `entries` (its
    /// segment's, sorted), rewriting it in a write open, with a notice.
    fn replace_index(
        &self,
        s: &Sealed,
        entries: Vec<IndexEntry>,
        max_seq: u64,
        doc_hwm: u64,
        why: StaleIndex,
    ) -> Result<()> {
        if self.mode == Mode::Write {
            let bind = self.binding(s.version);
            segment::write_index(
                &self.opts, s.number, s.len, max_seq, doc_hwm, &entries, bind,
            )?;
            self.opts
                .vfs
                .sync_dir(&self.opts.dir)
                .io("fsync", &self.opts.dir)?;
        }
        s.index()?.use_entries(entries);
        // The key index was built from the stale file: not trusted either.
        self.keys.distrust();
        self.stale.epoch.set(self.stale.epoch.get() + 1);
        self.stale.notice(notice(s, self.mode, why));
        Ok(())
    }
}
