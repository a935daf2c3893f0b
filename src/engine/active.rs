//! The active segment's owner: the file being appended to, its write
//! buffer, its in-memory index and checkpoint, and the state of an atomic
//! batch (with the file a spilled batch set aside). Only this module
//! changes them; the store asks it to append, flush, write a footer, begin,
//! commit or roll back, and reads through it.
//!
//! # Write protocol (see docs/FORMAT.md §Write path)
//! A write is encoded into a buffer, written at the end of `active.seg`, and
//! (unless `--no-sync`) `fdatasync`ed before the command reports success. A
//! batch writes its records with `FLAG_BATCH`, flushing the buffer as it
//! fills, and becomes visible to replay only when its `Commit` record is
//! durable. A failed write truncates the file back to where it started.
//!
//! A write or fsync that fails marks the segment failed: its in-memory state
//! may then be ahead of the file, and the store refuses further writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::engine::format::{
    self, ACTIVE_INDEX_NAME, ACTIVE_NAME, FLAG_BATCH, IndexEntry, IndexHeader, KEY_SPACE, Kind,
    Member, RecordHeader, SealPayload, SegmentHeader, TMP_SUFFIX,
};
use crate::engine::index::{self, Binding, Cursor, Entry, IndexWriter, SealedIndex};
use crate::engine::live::Figures;
use crate::engine::options::Options;
use crate::engine::segment;
use crate::engine::vfs::{VFile, Vfs};
use crate::error::{Error, IoContext, Result};

/// Flush a batch's buffer to the file once it holds this much.
const BATCH_FLUSH: usize = 1 << 20;

/// Checkpoint the active segment's index once this many bytes were appended
/// since the last checkpoint, so that opening replays at most about this
/// much of `active.seg` however large the segment threshold is.
const CHECKPOINT_BYTES: u64 = 4 << 20;

/// The store's id marks: the next sequence number to hand out and the
/// highest document id handed out (deleted ones included). The store owns
/// them; appends, footers and compaction advance them, and a rolled-back
/// batch puts them back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    pub next_seq: u64,
    pub doc_hwm: u64,
}

impl Marks {
    /// Takes the next sequence number.
    pub fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// The sequence number of the newest record.
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }
}

/// One segment file being appended to: `active.seg`, or the file a spilled
/// batch is being written to. Its file and an in-memory hash index of the
/// records it holds.
pub(crate) struct Active {
    number: u64,
    /// Format version of its header.
    version: u16,
    path: PathBuf,
    /// `None` only in a read-only open of a store without `active.seg`.
    file: Option<Box<dyn VFile>>,
    /// Logical end: on disk plus buffered.
    len: u64,
    /// End of what has been written to the file.
    flushed: u64,
    /// Encoded records not yet written.
    wbuf: Vec<u8>,
    /// Entries by document, for records after `prefix_len`.
    map: DocMap,
    /// Committed data records in the whole segment.
    records: u64,
    /// The checkpointed index (`active.idx`) of the records before
    /// `prefix_len`, when there is one.
    prefix: Option<SealedIndex>,
    /// End of the part of the segment `prefix` covers.
    prefix_len: u64,
}

/// No entry: the end of a [`DocMap`] chain.
const NONE: u32 = u32::MAX;

/// Entries a batch's file holds in memory before it counts as full, as if
/// it had reached the segment size: its entries are what a batch's memory
/// grows with, and a segment of small records would otherwise hold a
/// million of them (docs/FORMAT.md §8.2). About 50 bytes each. Two below
/// a power of two: a record adds at most two entries (a keyed `DocPut`),
/// so the list stops short of doubling its room.
pub(crate) const BATCH_ENTRIES: usize = (1 << 17) - 2;

/// The active segment's entries after the checkpoint, by document (or key
/// slot). One flat list in append order, each entry linked to the previous
/// one of its id, and each id's newest: about the entries' own size. A
/// `Vec` per document cost twice that, each doubling as it grew (capacity 8
/// for 5 entries), 42 MB of `apply`'s peak for 500,000 operations.
///
/// Entries are appended in offset order, so rolling back the records from
/// an offset on is cutting the list's tail, restoring each id's newest as
/// it goes. A `u32` link holds any segment's entries: 2^32 of them would
/// be 192 GiB in memory.
#[derive(Default)]
struct DocMap {
    entries: Vec<IndexEntry>,
    /// For each entry, the index of the previous entry of its id, or [`NONE`].
    prev: Vec<u32>,
    /// Each id's newest entry.
    newest: HashMap<u64, u32, IdHash>,
}

/// The hash of [`DocMap`]'s ids: one multiplication (Fibonacci hashing).
/// The ids are document ids, which the store hands out in order, and key
/// slots, which are FNV-1a hashes already: SipHash's keyed mixing, there
/// against keys an attacker picks to collide in a server's table, cost a
/// load a tenth of its writer thread's work for nothing here.
#[derive(Clone, Copy, Default)]
struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// The hasher of [`IdHash`].
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64`s are hashed; this keeps any other key correct.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // The high bits pick the bucket's control byte, the low ones the
        // bucket: the multiplication spreads the id into both.
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 ^= self.0 >> 32;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl DocMap {
    fn push(&mut self, e: IndexEntry) {
        let i = u32::try_from(self.entries.len()).unwrap_or(NONE);
        let prev = self.newest.insert(e.doc, i).unwrap_or(NONE);
        self.entries.push(e);
        self.prev.push(prev);
    }

    /// Every entry, in append (and so offset) order.
    fn all(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The ids with entries, in no order.
    fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.newest.keys().copied()
    }

    /// The entries of `id`, newest first.
    fn newest_first(&self, id: u64) -> impl Iterator<Item = &IndexEntry> + '_ {
        let mut i = self.newest.get(&id).copied().unwrap_or(NONE);
        std::iter::from_fn(move || {
            let e = self.entries.get(i as usize)?;
            i = self.prev[i as usize];
            Some(e)
        })
    }

    /// Forgets every entry at `start` or after.
    fn forget_from(&mut self, start: u64) {
        while self.entries.last().is_some_and(|e| e.offset >= start) {
            let (Some(e), Some(prev)) = (self.entries.pop(), self.prev.pop()) else {
                break;
            };
            if prev == NONE {
                self.newest.remove(&e.doc);
            } else {
                self.newest.insert(e.doc, prev);
            }
        }
    }

    fn clear(&mut self) {
        *self = DocMap::default();
    }

    /// Gives back the room of entries forgotten.
    fn shrink(&mut self) {
        self.entries.shrink_to_fit();
        self.prev.shrink_to_fit();
        self.newest.shrink_to_fit();
    }
}

/// What replay found of `active.seg`, for [`Active::recovered`].
pub(crate) struct Replayed {
    pub file: Box<dyn VFile>,
    pub header: SegmentHeader,
    pub path: PathBuf,
    /// End of its committed records.
    pub end: u64,
    /// Entries of the records after the checkpoint.
    pub entries: Vec<IndexEntry>,
    /// Committed data records in the whole segment.
    pub records: u64,
    /// The checkpoint and the end of what it covers.
    pub checkpoint: Option<(SealedIndex, u64)>,
}

impl Active {
    /// A segment with no file yet (a read-only open of a store without
    /// `active.seg`).
    pub fn empty(number: u64, path: PathBuf) -> Active {
        Active {
            number,
            version: format::FORMAT_VERSION,
            path,
            file: None,
            len: format::SEGMENT_HEADER_LEN as u64,
            flushed: format::SEGMENT_HEADER_LEN as u64,
            wbuf: Vec::new(),
            map: DocMap::default(),
            records: 0,
            prefix: None,
            prefix_len: format::SEGMENT_HEADER_LEN as u64,
        }
    }

    /// `active.seg` as replay found it.
    pub fn recovered(r: Replayed) -> Active {
        let mut map = DocMap::default();
        for e in &r.entries {
            map.push(*e);
        }
        let (prefix, prefix_len) = match r.checkpoint {
            Some((p, len)) => (Some(p), len),
            None => (None, format::SEGMENT_HEADER_LEN as u64),
        };
        Active {
            number: r.header.number,
            version: r.header.version,
            path: r.path,
            file: Some(r.file),
            len: r.end,
            flushed: r.end,
            wbuf: Vec::new(),
            map,
            records: r.records,
            prefix,
            prefix_len,
        }
    }

    pub fn number(&self) -> u64 {
        self.number
    }

    /// Format version of its header.
    pub fn version(&self) -> u16 {
        self.version
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Logical length: on disk plus buffered.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Entries held in memory (those after the checkpoint).
    fn held(&self) -> usize {
        self.map.entries.len()
    }

    /// Length of what is on disk.
    pub fn flushed(&self) -> u64 {
        self.flushed
    }

    /// Committed data records.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The open file, when there is one.
    pub fn open_file(&self) -> Option<&dyn VFile> {
        self.file.as_deref()
    }

    /// The (max seq, doc hwm) of the records after the checkpoint.
    pub fn own_marks(&self) -> (u64, u64) {
        let (mut max_seq, mut doc_hwm) = (0, 0);
        for e in self.map.all() {
            max_seq = max_seq.max(e.seq);
            if e.kind == Kind::DocPut && !e.is_key() {
                doc_hwm = doc_hwm.max(e.doc);
            }
        }
        (max_seq, doc_hwm)
    }

    /// Entries after the checkpoint, sorted by key.
    pub fn sorted_entries(&self) -> Vec<IndexEntry> {
        let mut all: Vec<IndexEntry> = self.map.all().to_vec();
        all.sort_unstable_by_key(index::key);
        all
    }

    /// Every entry of document (or key slot) `id`.
    pub fn lookup(&self, id: u64) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        if let Some(p) = &self.prefix {
            for ie in p.lookup(id, None, &|| self.prefix_entries())? {
                out.push(Entry::new(&ie, self.number));
            }
        }
        let start = out.len();
        out.extend(
            self.map
                .newest_first(id)
                .map(|ie| Entry::new(ie, self.number)),
        );
        out[start..].reverse();
        Ok(out)
    }

    /// Cursors over its entries in key order, for a merge.
    pub fn cursors(&self) -> Result<Vec<(Cursor<'_>, u64)>> {
        let mut sources = Vec::with_capacity(2);
        if let Some(p) = &self.prefix {
            sources.push((
                p.cursor(Box::new(move || self.prefix_entries()))?,
                self.number,
            ));
        }
        sources.push((Cursor::owned(self.sorted_entries()), self.number));
        Ok(sources)
    }

    /// Each document's entries after the checkpoint (key slots left out),
    /// as entries of this segment, one document's after another's: the
    /// documents in id order, each one's entries in append order. In id
    /// order a load's entries are read where they lie, one after the
    /// next; in the map's own order every document was a cache miss, and
    /// a `Vec` each an allocation (together a third of sealing a load's
    /// segment).
    pub fn docs(&self) -> Vec<Entry> {
        let documents = || self.map.all().iter().filter(|e| e.doc < KEY_SPACE);
        if documents().is_sorted_by_key(index::key) {
            // A load's (see `entries_in_order`): append order is id order.
            return documents().map(|e| Entry::new(e, self.number)).collect();
        }
        let mut docs: Vec<u64> = self.map.ids().filter(|doc| *doc < KEY_SPACE).collect();
        docs.sort_unstable();
        let mut out = Vec::with_capacity(self.map.entries.len());
        for doc in docs {
            let start = out.len();
            out.extend(
                self.map
                    .newest_first(doc)
                    .map(|e| Entry::new(e, self.number)),
            );
            if let Some(own) = out.get_mut(start..) {
                own.reverse();
            }
        }
        out
    }

    /// Reads the record `e` points at, from the file or from the unflushed
    /// buffer.
    pub fn read(&self, e: &Entry) -> Result<(RecordHeader, Vec<u8>)> {
        if e.offset >= self.flushed {
            let start = (e.offset - self.flushed) as usize;
            let buf = self
                .wbuf
                .get(start..start + e.len as usize)
                .ok_or_else(|| {
                    Error::corrupt(&self.path, e.offset, "entry past the end of the segment")
                })?;
            return segment::check_record(buf, &self.path, e);
        }
        segment::read_record(self.file()?, &self.path, e)
    }

    /// The checkpointed part's entries, read from the segment itself: the
    /// fallback when `active.idx` turns out damaged.
    pub fn prefix_entries(&self) -> Result<Vec<IndexEntry>> {
        let scan = segment::scan(self.file()?, &self.path, false)?;
        let mut entries: Vec<IndexEntry> = scan
            .entries
            .into_iter()
            .filter(|e| e.offset < self.prefix_len)
            .collect();
        entries.sort_unstable_by_key(index::key);
        Ok(entries)
    }

    fn file(&self) -> Result<&dyn VFile> {
        self.file.as_deref().ok_or_else(|| {
            Error::io(
                "write",
                &self.path,
                std::io::Error::other("store opened read-only"),
            )
        })
    }

    /// Encodes a record at the end (buffered) and indexes it, with its key
    /// entry (FORMAT.md §7.6) when `key` names a slot.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        seq: u64,
        kind: Kind,
        flags: u8,
        doc: u64,
        node: u64,
        aux: u64,
        a: &[u8],
        b: &[u8],
        key: Option<u64>,
    ) -> IndexEntry {
        let offset = self.len;
        let before = self.wbuf.len();
        format::encode_record(&mut self.wbuf, seq, kind, flags, doc, node, a, b);
        let len = (self.wbuf.len() - before) as u32;
        self.len += u64::from(len);
        let entry = IndexEntry {
            doc,
            node,
            seq,
            offset,
            aux,
            len,
            kind,
            flags,
        };
        self.map.push(entry);
        if let Some(slot) = key {
            self.map.push(IndexEntry {
                doc: slot,
                node: doc,
                aux: 0,
                ..entry
            });
        }
        self.records += 1;
        entry
    }

    /// Encodes a record that is not indexed (a footer or a commit).
    fn push_framing(&mut self, seq: u64, kind: Kind, payload: &[u8]) {
        let before = self.wbuf.len();
        format::encode_record(&mut self.wbuf, seq, kind, 0, 0, 0, payload, &[]);
        self.len += (self.wbuf.len() - before) as u64;
    }

    /// Writes the buffer to the file. On failure the file is cut back to its
    /// last good end, so a full disk leaves no partial record behind.
    fn flush(&mut self) -> Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let file = self.file()?;
        if let Err(e) = file.write_all_at(&self.wbuf, self.flushed) {
            let _ = file.set_len(self.flushed);
            return Err(Error::io("write", &self.path, e));
        }
        self.flushed = self.len;
        self.wbuf.clear();
        Ok(())
    }

    /// fdatasync of the file.
    fn fsync(&self) -> Result<()> {
        self.file()?.sync_data().io("fsync", &self.path)
    }

    /// Cuts the file (best effort) back to `offset`.
    fn cut_file(&self, offset: u64) {
        if let Some(f) = self.file.as_deref() {
            let _ = f.set_len(offset);
        }
    }

    /// Forgets every record from `start` on, in memory only.
    fn forget_from(&mut self, start: u64, records: u64) {
        self.wbuf.clear();
        self.len = start;
        self.flushed = start;
        self.map.forget_from(start);
        self.records = records;
    }

    /// Writes every entry (checkpointed and not) to `w`, in key order.
    fn write_entries(&self, w: &mut IndexWriter) -> Result<()> {
        let tail = self.entries_in_order();
        match &self.prefix {
            Some(p) => {
                let mut c = p.cursor(Box::new(|| self.prefix_entries()))?;
                index::write_merged(w, Some(&mut c), tail)
            }
            None => index::write_merged(w, None, tail),
        }
    }

    /// The entries after the checkpoint in key order, one document's at a
    /// time: a sorted copy of them all was as large as the map itself at
    /// the checkpoint or seal of a large batch (31.5 MB of `apply`'s peak
    /// for 500,000 operations).
    fn entries_in_order(&self) -> Box<dyn Iterator<Item = IndexEntry> + '_> {
        // A load appends each document's records in key order, one
        // document after another: its entries are in order already, but
        // for the key entries, which sort after every document's: no chain
        // to walk, nothing to sort.
        let documents = || self.map.all().iter().filter(|e| e.doc < KEY_SPACE);
        if documents().is_sorted_by_key(index::key) {
            let mut keys: Vec<IndexEntry> = (self.map.all().iter())
                .filter(|e| e.doc >= KEY_SPACE)
                .copied()
                .collect();
            keys.sort_unstable_by_key(index::key);
            return Box::new(documents().copied().chain(keys));
        }
        let mut docs: Vec<u64> = self.map.ids().collect();
        docs.sort_unstable();
        let mut docs = docs.into_iter();
        // One document's entries at a time, in one reused buffer: a `Vec`
        // per document was a tenth of sealing a load's segment.
        let (mut buf, mut at) = (Vec::new(), 0);
        Box::new(std::iter::from_fn(move || {
            while at == buf.len() {
                let doc = docs.next()?;
                buf.clear();
                buf.extend(self.map.newest_first(doc).copied());
                buf.sort_unstable_by_key(index::key);
                at = 0;
            }
            at += 1;
            buf.get(at - 1).copied()
        }))
    }

    /// Writes this segment's index file, its footer (seq `seq`) written:
    /// its manifest entry and the index, read back.
    fn write_index(
        &self,
        opts: &Options,
        bind: Binding,
        seq: u64,
        doc_hwm: u64,
    ) -> Result<(Member, SealedIndex)> {
        let (vfs, dir) = (&*opts.vfs, &opts.dir);
        let (number, len, version) = (self.number, self.len, self.version);
        let mut w = IndexWriter::create(vfs, dir, format::index_name(number))?;
        self.write_entries(&mut w)?;
        let member = w.stats().member(number, len, version, seq, 0);
        w.finish(
            vfs,
            dir,
            IndexHeader {
                version: bind.version,
                store_id: bind.store_id,
                segment: number,
                segment_len: len,
                entries: 0,
                max_seq: seq,
                doc_hwm,
            },
            true,
        )?;
        let path = dir.join(format::index_name(number));
        let index = index::reopen_written(vfs, path, number, len, bind)?;
        Ok((member, index))
    }

    /// Writes `active.idx` of everything appended. Only a cache: on failure
    /// it is left as it was.
    fn checkpoint(&mut self, opts: &Options, bind: Binding, marks: Marks) {
        let (vfs, dir) = (&*opts.vfs, &opts.dir);
        let Ok(mut w) = IndexWriter::create(vfs, dir, ACTIVE_INDEX_NAME.to_owned()) else {
            return;
        };
        let header = IndexHeader {
            version: bind.version,
            store_id: bind.store_id,
            segment: self.number,
            segment_len: self.len,
            entries: 0,
            max_seq: marks.last_seq(),
            doc_hwm: marks.doc_hwm,
        };
        let written = self
            .write_entries(&mut w)
            .and_then(|()| w.finish(vfs, dir, header, false));
        if written.is_err() {
            let _ = vfs.remove_file(&dir.join(format!("{ACTIVE_INDEX_NAME}{TMP_SUFFIX}")));
            return;
        }
        let path = dir.join(ACTIVE_INDEX_NAME);
        let len = self.len;
        if let Some((f, h)) = index::open_index_covering(vfs, &path, self.number, len..=len, bind)
            .ok()
            .flatten()
        {
            self.prefix = Some(SealedIndex::on_disk(path, f, h));
            self.prefix_len = len;
            self.map.clear();
        }
    }
}

/// Creates a fresh `active.seg` numbered `number`: written under a temporary
/// name, fsynced, renamed, and the directory fsynced, so `active.seg` never
/// exists with a partial header. Synced even with `--no-sync`: the new
/// file's name must not outlive a power loss that its header did not.
/// `store_id` 0 writes a format-1 header (only while a format-1 store is
/// being upgraded); otherwise a format-2 header with that id.
pub(crate) fn create_active(
    store_dir: &Path,
    vfs: &dyn Vfs,
    number: u64,
    store_id: u64,
) -> Result<Active> {
    let tmp = store_dir.join(format!("{ACTIVE_NAME}{TMP_SUFFIX}"));
    let _ = vfs.remove_file(&tmp);
    let file = vfs.create_new(&tmp).io("create", &tmp)?;
    let header = if store_id == 0 {
        SegmentHeader {
            version: format::FORMAT_V1,
            store_id: 0,
            flags: 0,
            number,
            gen_base: 0,
            gen_count: 0,
        }
    } else {
        SegmentHeader::v2(number, store_id, 0)
    };
    file.write_all_at(&header.encode(), 0).io("write", &tmp)?;
    file.sync_data().io("fsync", &tmp)?;
    let path = store_dir.join(ACTIVE_NAME);
    vfs.rename(&tmp, &path).io("rename", &path)?;
    vfs.sync_dir(store_dir).io("fsync", store_dir)?;
    let mut active = Active::empty(number, path);
    active.version = header.version;
    active.file = Some(file);
    Ok(active)
}

/// What to restore if a batch is rolled back.
struct BatchState {
    start: u64,
    marks: Marks,
    records: u64,
    /// Set once the batch outgrew `active.seg` (see [`Spill`]).
    spill: Option<Spill>,
}

/// A batch written to segment files of its own (docs/FORMAT.md §8.2, steps
/// S1–S6; crash table in §8.6).
///
/// A batch normally goes to `active.seg` and is committed by a `Commit`
/// record. A `load` or `apply` of gigabytes would then make one segment of
/// gigabytes, and hold an index entry of every record in memory until it
/// is sealed. Instead, once a batch would take `active.seg` past the segment
/// size, it *spills*:
///
/// 1. the batch's records so far are copied (CRC-checked, without
///    `FLAG_BATCH`) into a new segment file numbered above every member, and
///    cut off `active.seg`, which is then exactly what it was before the
///    batch; it is set aside, still serving reads of what it holds;
/// 2. the batch goes on in the new file, which is sealed with its footer and
///    index whenever it reaches the segment size, and another one started;
/// 3. at commit the last one is sealed, and one manifest write lists them
///    all: that write is the commit point; `active.seg` comes back.
///
/// Until then the files are temporaries or extras of this store, which the
/// next write open removes (§8.5), so a crash or a failed batch leaves the
/// store's files as they were. Memory holds the entries of one segment,
/// whatever the batch's size. Reads inside the batch see its sealed files
/// (in the sealed set, with their document ranges), the one being written
/// (it stands in for `active.seg`) and `active.seg` set aside.
///
/// A batch expected to outgrow `active.seg` (a `load` of a file larger
/// than the segment size) spills *ahead*, before its first record
/// ([`ActiveSegment::spill_ahead`]), so that step 1 copies nothing: its
/// records go to the new file as step 1 would have copied them. It stays
/// tentative until it does outgrow `active.seg` where step 1 would have
/// run; should it end smaller, its records move to `active.seg` at commit
/// ([`ActiveSegment::commit`]), as a batch that never spilled writes them.
/// Either way the files come out byte for byte as without the hint.
struct Spill {
    /// `active.seg` as it was before the batch, set aside (still serving
    /// reads) while the owner's current file is the one being written.
    parked: Active,
    /// Manifest entries of the files sealed so far (in the sealed set, not
    /// yet in the manifest).
    members: Vec<Member>,
    /// The members' figures once those files are members, when the
    /// manifest's are known (the store keeps them up to date).
    figures: Option<Figures>,
    /// Set while a spill ahead is tentative: the manifest's next free
    /// segment number before the file took one, for the store to put back
    /// if the batch ends in `active.seg` after all.
    ahead: Option<u64>,
}

/// A file of a spilled batch, sealed: what the sealed set and the manifest
/// take from it.
pub(crate) struct SealedFile {
    pub number: u64,
    pub version: u16,
    pub path: PathBuf,
    pub len: u64,
    pub max_seq: u64,
    pub doc_hwm: u64,
    pub member: Member,
    pub index: SealedIndex,
    /// Its records' entries, one document's after another's (see
    /// [`Active::docs`]), when the batch keeps figures (the store adds what
    /// they supersede).
    pub own: Vec<Entry>,
}

/// What the store does with each file a spilled batch seals: takes it into
/// the sealed set, and counts it into the batch's figures when kept.
pub(crate) type OnSealed<'a> = dyn FnMut(SealedFile, Option<&mut Figures>) -> Result<()> + 'a;

/// How a batch ended, for the store to finish.
pub(crate) enum Committed {
    /// Nothing was written.
    Empty,
    /// Its commit record is durable in `active.seg`.
    InActive,
    /// It spilled: its files are sealed, `active.seg` is back, and the
    /// manifest must list the files (the commit point).
    Spilled {
        members: Vec<Member>,
        figures: Option<Figures>,
    },
}

/// The owner of the active segment: the file being appended to and the
/// batch in progress, if any.
pub(crate) struct ActiveSegment {
    cur: Active,
    batch: Option<BatchState>,
    /// Set when a write or fsync of the file failed.
    failed: bool,
}

impl ActiveSegment {
    pub fn new(cur: Active) -> ActiveSegment {
        ActiveSegment {
            cur,
            batch: None,
            failed: false,
        }
    }

    /// The file being appended to (during a spill, the batch's file).
    pub fn cur(&self) -> &Active {
        &self.cur
    }

    /// The segments that serve reads: the current file and the one a
    /// spilled batch set aside.
    pub fn segments(&self) -> impl Iterator<Item = &Active> {
        let parked = self
            .batch
            .as_ref()
            .and_then(|b| b.spill.as_ref())
            .map(|s| &s.parked);
        std::iter::once(&self.cur).chain(parked)
    }

    /// The segment numbered `seg`, if one is.
    pub fn segment(&self, seg: u64) -> Option<&Active> {
        self.segments().find(|a| a.number == seg)
    }

    /// Whether a write or fsync failed.
    pub fn failed(&self) -> bool {
        self.failed
    }

    pub fn in_batch(&self) -> bool {
        self.batch.is_some()
    }

    /// Whether the batch in progress spilled.
    pub fn spilled(&self) -> bool {
        self.batch.as_ref().is_some_and(|b| b.spill.is_some())
    }

    /// Whether a write of `incoming` bytes outside a batch must seal first.
    pub fn needs_seal(&self, incoming: u64, segment_size: u64) -> bool {
        self.cur.records > 0 && self.cur.len + incoming > segment_size
    }

    fn poison<T>(&mut self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Writes the buffer to the file (see [`Active::flush`]).
    pub fn flush(&mut self) -> Result<()> {
        let r = self.cur.flush();
        self.poison(r)
    }

    /// fdatasync of the file whatever `--no-sync` says: sealing depends on
    /// it for the order of what reaches the disk, not only durability. A
    /// failure is reported, never retried: after a failed fsync the kernel
    /// may have dropped the dirty pages.
    pub fn fsync(&mut self) -> Result<()> {
        let r = self.cur.fsync();
        self.poison(r)
    }

    /// fdatasync after an append, unless `--no-sync`.
    fn sync(&mut self, opts: &Options) -> Result<()> {
        if opts.sync { self.fsync() } else { Ok(()) }
    }

    /// Appends one record. Outside a batch it is durable when this returns
    /// (the caller has sealed first if it had to). `bind` is what a
    /// checkpoint of this segment is bound to.
    #[allow(clippy::too_many_arguments)]
    pub fn append(
        &mut self,
        opts: &Options,
        bind: Binding,
        marks: &mut Marks,
        kind: Kind,
        doc: u64,
        node: u64,
        aux: u64,
        flags: u8,
        a: &[u8],
        b: &[u8],
    ) -> Result<()> {
        // A DocPut's key gets a key entry beside its own (FORMAT.md §7.6).
        // The key is in the payload's first part, before the body.
        let key = if kind == Kind::DocPut {
            format::doc_key(a, flags).map(format::key_slot)
        } else {
            None
        };
        // A spilled batch's files are committed by the manifest, not by a
        // `Commit` record.
        let flags = if self.batch.as_ref().is_some_and(|b| b.spill.is_none()) {
            flags | FLAG_BATCH
        } else {
            flags
        };
        let seq = marks.take_seq();
        let offset = self.cur.len;
        self.cur.push(seq, kind, flags, doc, node, aux, a, b, key);
        if kind == Kind::DocPut {
            marks.doc_hwm = marks.doc_hwm.max(doc);
        }
        if self.batch.is_none() {
            self.flush()?;
            if let Err(e) = self.sync(opts) {
                // Not acknowledged, so not kept: cut the record off again
                // (best effort) rather than let it reappear at the next open.
                self.cur.cut_file(offset);
                return Err(e);
            }
            self.maybe_checkpoint(opts, bind, *marks);
        } else if self.cur.wbuf.len() >= BATCH_FLUSH {
            let from = self.cur.flushed;
            self.flush()?;
            // A batch is synced when it commits or its file is sealed: the
            // disk can be writing it meanwhile, while the input is parsed.
            if let Some(f) = self.cur.file.as_deref() {
                f.start_writeback(from, self.cur.flushed - from);
            }
        }
        Ok(())
    }

    /// Writes `active.idx` when enough was appended since the last one. Only
    /// in sync mode, where everything it points at is durable; and only as a
    /// cache: a failure here leaves the acknowledged write as it was.
    fn maybe_checkpoint(&mut self, opts: &Options, bind: Binding, marks: Marks) {
        if !opts.sync
            || self.batch.is_some()
            || self.cur.len - self.cur.prefix_len < CHECKPOINT_BYTES
        {
            return;
        }
        self.cur.checkpoint(opts, bind, marks);
    }

    /// Appends the `Seal` footer to the current file and makes it durable;
    /// returns the footer's sequence number. Everything before the footer is
    /// durable before the footer is written: a footer may never survive a
    /// power loss that its segment's records did not.
    pub fn write_footer(&mut self, marks: &mut Marks) -> Result<u64> {
        self.flush()?;
        self.fsync()?;
        let seq = marks.take_seq();
        let footer = SealPayload {
            records: self.cur.records,
            max_seq: seq,
            doc_hwm: marks.doc_hwm,
        };
        self.cur.push_framing(seq, Kind::Seal, &footer.encode());
        self.flush()?;
        self.fsync()?;
        Ok(seq)
    }

    /// Writes the current file's index, its footer (seq `seq`) written.
    pub fn write_index(
        &self,
        opts: &Options,
        bind: Binding,
        seq: u64,
        doc_hwm: u64,
    ) -> Result<(Member, SealedIndex)> {
        self.cur.write_index(opts, bind, seq, doc_hwm)
    }

    /// Puts `next` in place of the current file, which is returned (its
    /// file, once sealed, serves the sealed segment).
    pub fn replace(&mut self, next: Active) -> Result<Box<dyn VFile>> {
        let old = std::mem::replace(&mut self.cur, next);
        old.file
            .ok_or_else(|| Error::internal("sealing without a file"))
    }

    /// Starts a batch.
    pub fn begin(&mut self, marks: Marks) -> Result<()> {
        if self.batch.is_some() {
            return Err(Error::internal("nested batch"));
        }
        self.batch = Some(BatchState {
            start: self.cur.len,
            marks,
            records: self.cur.records,
            spill: None,
        });
        Ok(())
    }

    /// Commits the batch in `active.seg` with its `Commit` record, or, for a
    /// spilled one, seals its last file and brings `active.seg` back; the
    /// store then lists the files in the manifest (the commit point).
    pub fn commit(
        &mut self,
        opts: &Options,
        bind: Binding,
        marks: &mut Marks,
        on_sealed: &mut OnSealed<'_>,
    ) -> Result<Committed> {
        let Some(mut b) = self.batch.take() else {
            return Ok(Committed::Empty);
        };
        if let Some(spill) = b.spill.take_if(|s| s.ahead.is_some()) {
            self.unspill(opts, &b, spill)?;
        }
        if let Some(mut spill) = b.spill.take() {
            if self.cur.records > 0 {
                let f = self.seal_spilled(opts, bind, marks, &mut spill)?;
                let member = f.member;
                on_sealed(f, spill.figures.as_mut())?;
                spill.members.push(member);
            } else {
                let _ = opts.vfs.remove_file(&self.cur.path);
            }
            let Spill {
                parked,
                members,
                figures,
                ..
            } = spill;
            self.cur = parked;
            // What `active.seg` holds is older than the batch: under
            // --no-sync too, it must not be lost to a power loss that the
            // batch survives (the store stays a prefix of its history).
            self.fsync()?;
            return Ok(Committed::Spilled { members, figures });
        }
        let count = self.cur.records - b.records;
        if count == 0 {
            return Ok(Committed::Empty);
        }
        // The batch's records are durable before its commit record is
        // written, so a commit never survives a power loss that one of its
        // records did not: a readable commit after an unreadable record is
        // damage, never a torn write.
        let seq = marks.take_seq();
        let written = self.flush().and_then(|()| self.sync(opts)).and_then(|()| {
            self.cur
                .push_framing(seq, Kind::Commit, &count.to_le_bytes());
            self.flush()?;
            self.sync(opts)
        });
        if let Err(e) = written {
            // Not acknowledged: cut the whole batch off again (best effort),
            // so the commit record cannot surface at the next open.
            self.cur.wbuf.clear();
            self.cur.cut_file(b.start);
            return Err(e);
        }
        Ok(Committed::InActive)
    }

    /// Moves the records of a batch that spilled ahead but never outgrew
    /// `active.seg` back into it, marked as a batch's, exactly as they would
    /// have been written there (see [`Spill`]); its file goes. On failure
    /// `active.seg` is cut back to where the batch started.
    fn unspill(&mut self, opts: &Options, b: &BatchState, spill: Spill) -> Result<()> {
        let file = std::mem::replace(&mut self.cur, spill.parked);
        let own: Vec<IndexEntry> = file
            .map
            .all()
            .iter()
            .filter(|e| e.doc < KEY_SPACE)
            .copied()
            .collect();
        let start = format::SEGMENT_HEADER_LEN as u64;
        let moved = copy_records(&file, start, &own, &mut self.cur, true);
        let _ = opts.vfs.remove_file(&file.path);
        if moved.is_err() {
            self.failed = true;
            self.cur.wbuf.clear();
            self.cur.cut_file(b.start);
        }
        moved
    }

    /// After a commit in `active.seg` that did not seal: a checkpoint when
    /// one is due.
    pub fn after_commit(&mut self, opts: &Options, bind: Binding, marks: Marks) {
        self.maybe_checkpoint(opts, bind, marks);
    }

    /// Rolls the batch back: `active.seg` is cut back to where the batch
    /// started, or, for a spilled batch, its files go and `active.seg`
    /// comes back. Returns the numbers of the spilled files the sealed set
    /// must drop (and whose files are removed here, best effort).
    pub fn rollback(&mut self, opts: &Options, marks: &mut Marks) -> Result<Vec<u64>> {
        let Some(mut b) = self.batch.take() else {
            return Ok(Vec::new());
        };
        if let Some(spill) = b.spill.take_if(|s| s.ahead.is_some()) {
            // Nothing reached `active.seg`, and no file was sealed.
            let current = std::mem::replace(&mut self.cur, spill.parked);
            let _ = opts.vfs.remove_file(&current.path);
            *marks = b.marks;
            return Ok(Vec::new());
        }
        if let Some(spill) = b.spill.take() {
            // Sequence numbers stay where they are: the seal that started
            // the spill used some, and they only ever increase.
            marks.doc_hwm = b.marks.doc_hwm;
            let Spill {
                parked, members, ..
            } = spill;
            let current = std::mem::replace(&mut self.cur, parked);
            // Best effort: what stays is an extra file the next write open
            // removes.
            let _ = opts.vfs.remove_file(&current.path);
            return Ok(members.iter().map(|m| m.number).collect());
        }
        self.cur.wbuf.clear();
        if self.cur.flushed > b.start {
            let file = self.cur.file()?;
            file.set_len(b.start).io("truncate", &self.cur.path)?;
            self.sync(opts)?;
        }
        self.cur.forget_from(b.start, b.records);
        *marks = b.marks;
        Ok(Vec::new())
    }

    /// Whether the batch's next `incoming` bytes would take the current file
    /// past the segment size, or it holds [`BATCH_ENTRIES`] entries.
    pub fn batch_full(&self, incoming: u64, segment_size: u64) -> bool {
        self.batch.is_some()
            && (self.cur.len + incoming > segment_size || self.cur.held() >= BATCH_ENTRIES)
    }

    /// Spills the batch before its first record, tentatively (see
    /// [`Spill`]): the store expects it to outgrow `active.seg`. `number`
    /// names the file; `next_number` is the manifest's next free number
    /// before `number` was taken; `figures` as for [`ActiveSegment::spill`].
    pub fn spill_ahead(
        &mut self,
        opts: &Options,
        store_id: u64,
        number: u64,
        figures: Option<Figures>,
        next_number: u64,
    ) -> Result<()> {
        match &self.batch {
            Some(b) if b.spill.is_none() && b.start == self.cur.len => {}
            _ => return Err(Error::internal("spilling ahead of a batch under way")),
        }
        let file = create_spill_file(opts, store_id, number)?;
        self.go_on_in(file, figures, Some(next_number));
        Ok(())
    }

    /// Makes `file` the one the batch goes on in, `active.seg` set aside
    /// (see [`Spill`]).
    fn go_on_in(&mut self, file: Active, figures: Option<Figures>, ahead: Option<u64>) {
        let parked = std::mem::replace(&mut self.cur, file);
        if let Some(b) = self.batch.as_mut() {
            b.spill = Some(Spill {
                parked,
                members: Vec::new(),
                figures,
                ahead,
            });
        }
    }

    /// While a spill ahead is tentative: the manifest's next free segment
    /// number before its file took one.
    pub fn spilled_ahead(&self) -> Option<u64> {
        self.batch
            .as_ref()
            .and_then(|b| b.spill.as_ref())
            .and_then(|s| s.ahead)
    }

    /// Whether a batch that spilled ahead would now, had it not, take
    /// `active.seg` past the segment size with `incoming` more bytes; from
    /// then on the spill stands, as step 1 would have made it here.
    pub fn settle_spill_ahead(&mut self, incoming: u64, segment_size: u64) -> bool {
        let Some(spill) = self.batch.as_mut().and_then(|b| b.spill.as_mut()) else {
            return false;
        };
        // The file's records are the batch's, after its header.
        let batch = self.cur.len - format::SEGMENT_HEADER_LEN as u64;
        let outgrows = spill.parked.len + batch + incoming > segment_size
            || spill.parked.held() + self.cur.held() >= BATCH_ENTRIES;
        if outgrows {
            spill.ahead = None;
        }
        outgrows
    }

    /// Step 1 of [`Spill`]: copies the batch so far into a new file
    /// numbered `number` and cuts it off `active.seg`, which is set aside.
    /// `figures` are the members' figures now, when known.
    pub fn spill(
        &mut self,
        opts: &Options,
        store_id: u64,
        number: u64,
        figures: Option<Figures>,
    ) -> Result<()> {
        let Some(b) = self.batch.as_ref() else {
            return Err(Error::internal("spilling outside a batch"));
        };
        let (start, records) = (b.start, b.records);
        self.flush()?;
        let mut head: Vec<IndexEntry> = self
            .cur
            .map
            .all()
            .iter()
            .filter(|e| e.offset >= start && e.doc < KEY_SPACE)
            .copied()
            .collect();
        head.sort_unstable_by_key(|e| e.offset);
        // The copy's entries are the batch's from now on: not held twice
        // while it is written (the records are read through `head`).
        self.cur.map.forget_from(start);
        self.cur.map.shrink();
        let mut file = create_spill_file(opts, store_id, number)?;
        let moved = copy_records(&self.cur, start, &head, &mut file, false)
            .and_then(|()| self.cut_head(start, records));
        if let Err(e) = moved {
            let _ = opts.vfs.remove_file(&file.path);
            return Err(e);
        }
        self.go_on_in(file, figures, None);
        Ok(())
    }

    /// Cuts the batch's records (from `start`) off `active.seg`, leaving
    /// its in-memory state what it was before the batch.
    fn cut_head(&mut self, start: u64, records: u64) -> Result<()> {
        let cut = self
            .cur
            .file
            .as_deref()
            .ok_or_else(|| Error::internal("no active file"))
            .and_then(|f| f.set_len(start).io("truncate", &self.cur.path));
        self.poison(cut)?;
        self.cur.forget_from(start, records);
        Ok(())
    }

    /// Whether the spilled batch's current file is full for `incoming`
    /// more bytes, or by its [`BATCH_ENTRIES`] entries: then it is sealed
    /// and another started.
    pub fn spill_file_full(&self, incoming: u64, segment_size: u64) -> bool {
        self.cur.records > 0
            && (self.cur.len + incoming > segment_size || self.cur.held() >= BATCH_ENTRIES)
    }

    /// Seals the spilled batch's current file; it goes to `on_sealed`.
    pub fn seal_spill_file(
        &mut self,
        opts: &Options,
        bind: Binding,
        marks: &mut Marks,
        on_sealed: &mut OnSealed<'_>,
    ) -> Result<()> {
        let mut spill = self
            .batch
            .as_mut()
            .and_then(|b| b.spill.take())
            .ok_or_else(|| Error::internal("a spilled batch without its state"))?;
        let r = self
            .seal_spilled(opts, bind, marks, &mut spill)
            .and_then(|f| {
                let member = f.member;
                on_sealed(f, spill.figures.as_mut())?;
                // A member of the batch once it is in the sealed set: a
                // rollback takes it out again.
                spill.members.push(member);
                Ok(())
            });
        if let Some(b) = self.batch.as_mut() {
            b.spill = Some(spill);
        }
        r
    }

    /// A new file numbered `number` for the spilled batch to go on in
    /// (step 2 of [`Spill`]).
    pub fn start_spill_file(&mut self, opts: &Options, store_id: u64, number: u64) -> Result<()> {
        self.cur = create_spill_file(opts, store_id, number)?;
        Ok(())
    }

    /// Seals the file the batch is being written to: footer, fsync, index,
    /// its own name (not yet in the manifest, nor in the sealed set).
    fn seal_spilled(
        &mut self,
        opts: &Options,
        bind: Binding,
        marks: &mut Marks,
        spill: &mut Spill,
    ) -> Result<SealedFile> {
        let seq = self.write_footer(marks)?;
        let number = self.cur.number;
        let (vfs, dir) = (&*opts.vfs, &opts.dir);
        // Its own name once its bytes are durable: until the manifest lists
        // it, an extra file of this store, which the next write open removes.
        let path = dir.join(format::segment_name(number));
        vfs.rename(&self.cur.path, &path).io("rename", &path)?;
        self.cur.path.clone_from(&path);
        let (member, index) = self.cur.write_index(opts, bind, seq, marks.doc_hwm)?;
        let own = if spill.figures.is_some() {
            self.cur.docs()
        } else {
            Vec::new()
        };
        Ok(SealedFile {
            number,
            version: self.cur.version,
            path,
            len: self.cur.len,
            max_seq: seq,
            doc_hwm: marks.doc_hwm,
            member,
            index,
            own,
        })
    }
}

/// Copies the records `entries` point at in `from` (in offset order, the
/// first at `start`, with nothing between them) to the end of `to`, each
/// checked by CRC as it is read back, and marked as a batch's (`batch`) or
/// not: the two files of a spill, either way round.
fn copy_records(
    from: &Active,
    start: u64,
    entries: &[IndexEntry],
    to: &mut Active,
    batch: bool,
) -> Result<()> {
    let mut expected = start;
    for ie in entries {
        if ie.offset != expected {
            return Err(Error::internal("a batch's records are not contiguous"));
        }
        expected += u64::from(ie.len);
        let e = Entry::new(ie, from.number);
        let (h, payload) = from.read(&e)?;
        let flags = if batch {
            h.flags | FLAG_BATCH
        } else {
            h.flags & !FLAG_BATCH
        };
        let key = if h.kind == Kind::DocPut {
            format::doc_key(&payload, h.flags).map(format::key_slot)
        } else {
            None
        };
        to.push(
            h.seq,
            h.kind,
            flags,
            h.doc,
            h.node,
            ie.aux,
            &payload,
            &[],
            key,
        );
        if to.wbuf.len() >= BATCH_FLUSH {
            to.flush()?;
        }
    }
    to.flush()
}

/// Creates the file for `seg_N.seg` under a temporary name, which the next
/// open removes: a crash may leave it empty, and an empty file by a
/// segment's name would be taken for another store's.
fn create_spill_file(opts: &Options, store_id: u64, number: u64) -> Result<Active> {
    let name = format!("{}{TMP_SUFFIX}", format::segment_name(number));
    let path = opts.dir.join(name);
    let file = opts.vfs.create_new(&path).io("create", &path)?;
    let header = SegmentHeader::v2(number, store_id, 0);
    let mut active = Active::empty(number, path);
    active.wbuf.extend_from_slice(&header.encode());
    active.flushed = 0;
    active.file = Some(file);
    Ok(active)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(doc: u64, offset: u64) -> IndexEntry {
        IndexEntry {
            doc,
            node: offset,
            seq: offset,
            offset,
            aux: 0,
            len: 1,
            kind: Kind::OutputPut,
            flags: 0,
        }
    }

    /// The offsets of `id`'s entries, in append order.
    fn offsets(m: &DocMap, id: u64) -> Vec<u64> {
        let mut v: Vec<u64> = m.newest_first(id).map(|e| e.offset).collect();
        v.reverse();
        v
    }

    #[test]
    fn a_doc_map_keeps_each_ids_entries_in_order_and_rolls_back_exactly() {
        let mut m = DocMap::default();
        for (doc, offset) in [(1, 10), (2, 11), (1, 12), (3, 13), (2, 14), (1, 15)] {
            m.push(entry(doc, offset));
        }
        assert_eq!(offsets(&m, 1), [10, 12, 15]);
        assert_eq!(offsets(&m, 2), [11, 14]);
        assert_eq!(offsets(&m, 3), [13]);
        assert!(offsets(&m, 4).is_empty());
        let offs: Vec<u64> = m.newest_first(1).map(|e| e.offset).collect();
        assert_eq!(offs, [15, 12, 10]);

        // Rolling back from offset 13 forgets document 3 and the newer
        // entries of 1 and 2, and their newest are the older ones again.
        m.forget_from(13);
        assert_eq!(offsets(&m, 1), [10, 12]);
        assert_eq!(offsets(&m, 2), [11]);
        assert!(offsets(&m, 3).is_empty());
        let mut ids: Vec<u64> = m.ids().collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2]);
        assert_eq!(m.all().len(), 3);

        // Appends after a rollback chain onto what is left.
        m.push(entry(2, 13));
        assert_eq!(offsets(&m, 2), [11, 13]);
        m.forget_from(0);
        assert!(m.all().is_empty() && m.ids().next().is_none());
    }
}
