//! Index entries, sealed-segment index files, and sorted merges over them.
//!
//! A sealed segment's index file lists every record of the segment sorted by
//! (document, node, sequence), in CRC-checked 4 KiB blocks. It is searched on
//! disk, a block at a time, so opening a store never loads it: a lookup costs
//! O(log n) block reads per segment. The file is a cache: it is rebuilt from
//! its segment when missing, and when a block fails its CRC the segment itself
//! is scanned instead, so a damaged index can cost time but never give a
//! wrong answer.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::format::{
    self, ENTRIES_PER_BLOCK, INDEX_BLOCK_LEN, INDEX_HEADER_LEN, IndexEntry, IndexHeader, Kind,
    Member, TMP_SUFFIX,
};
use crate::engine::notice::StaleIndex;
use crate::engine::vfs::{VFile, Vfs};
use crate::error::{Error, IoContext, Result};

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

/// Every entry of a sealed segment's index file, when it is readable and
/// describes a segment of this length.
pub(crate) fn index_entries(
    vfs: &dyn Vfs,
    dir: &Path,
    n: u64,
    len: u64,
    bind: Binding,
) -> Option<Vec<IndexEntry>> {
    let (file, header) = open_index(vfs, &dir.join(format::index_name(n)), n, len, bind).ok()??;
    let blocks = header.entries.div_ceil(format::ENTRIES_PER_BLOCK as u64);
    let mut buf = [0u8; format::INDEX_BLOCK_LEN];
    let mut block = Vec::with_capacity(format::ENTRIES_PER_BLOCK);
    let mut out = Vec::new();
    for b in 0..blocks {
        let at = format::INDEX_HEADER_LEN as u64 + b * format::INDEX_BLOCK_LEN as u64;
        file.read_exact_at(&mut buf, at).ok()?;
        format::decode_block_into(&buf, &mut block)?;
        out.extend_from_slice(&block);
    }
    Some(out)
}

/// Which index files belong to a segment: its format version, and the store
/// id a format-2 index header's CRC binds (docs/FORMAT.md §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Binding {
    pub version: u16,
    pub store_id: u64,
}

impl Binding {
    /// The binding of a format-1 segment's index.
    pub const V1: Binding = Binding {
        version: format::FORMAT_V1,
        store_id: 0,
    };
}

/// An index entry together with the segment (by number) it points into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub doc: u64,
    pub node: u64,
    pub seq: u64,
    pub offset: u64,
    pub aux: u64,
    pub len: u32,
    pub kind: Kind,
    pub flags: u8,
    pub seg: u64,
}

impl Entry {
    pub fn new(e: &IndexEntry, seg: u64) -> Entry {
        Entry {
            doc: e.doc,
            node: e.node,
            seq: e.seq,
            offset: e.offset,
            aux: e.aux,
            len: e.len,
            kind: e.kind,
            flags: e.flags,
            seg,
        }
    }

    /// The index entry this was made from, without its segment.
    pub fn index_entry(&self) -> IndexEntry {
        IndexEntry {
            doc: self.doc,
            node: self.node,
            seq: self.seq,
            offset: self.offset,
            aux: self.aux,
            len: self.len,
            kind: self.kind,
            flags: self.flags,
        }
    }
}

/// True when the entries are in strictly increasing key order.
fn sorted(b: &[IndexEntry]) -> bool {
    b.windows(2).all(|w| key(&w[0]) < key(&w[1]))
}

/// Sort key of index entries.
pub(crate) fn key(e: &IndexEntry) -> (u64, u64, u64) {
    (e.doc, e.node, e.seq)
}

/// A sealed segment's index: on disk, or (when the file is missing or
/// damaged in a read-only open) built in memory from the segment.
pub(crate) struct SealedIndex {
    pub path: PathBuf,
    disk: Option<(Box<dyn VFile>, IndexHeader)>,
    memory: OnceCell<Vec<IndexEntry>>,
    /// This index's name in the process-wide block cache ([`BLOCKS`]).
    id: u64,
    /// Set when the file was there but passed over at open as stale, and
    /// why, for the store's notice (see `engine::sealed`).
    passed_over: std::cell::Cell<Option<StaleIndex>>,
    /// The block the last search ended at, with the document fields of its
    /// first and last entries: a batch looks documents up in ascending
    /// order, and the next one is then in that block or the one after it,
    /// found without a binary search.
    finger: std::cell::Cell<Option<Finger>>,
}

/// A block of an index file that is the first to reach every document in
/// `from..=last`: its last entry's document is `last`, the block before
/// ends below `from` (the file does not change under a `SealedIndex`, so
/// neither do they).
#[derive(Clone, Copy)]
struct Finger {
    block: u64,
    from: u64,
    last: u64,
}

/// Decoded index blocks of every index of the process, least recently used
/// evicted first, so that the upper levels of the binary search are read
/// once per invocation (a batch of thousands of lookups would otherwise
/// re-read and re-check them every time), and a command that probes many
/// members (a key lookup without a valid key index probes every one that
/// holds keys; a large `load` makes many) keeps a constant amount, not an
/// amount per member.
struct BlockCache {
    /// (index, block) → the block and when it was last used.
    blocks: HashMap<(u64, u64), (Block, u64)>,
    clock: u64,
}

/// A decoded index block.
type Block = Arc<Vec<IndexEntry>>;

/// Blocks kept at once (4 KiB each on disk, about 6 KiB decoded).
const CACHE_BLOCKS: usize = 4096;

static BLOCKS: Mutex<Option<BlockCache>> = Mutex::new(None);

/// Names each index in [`BLOCKS`].
static NEXT_INDEX: AtomicU64 = AtomicU64::new(0);

fn with_blocks<T>(f: impl FnOnce(&mut BlockCache) -> T) -> T {
    // The cache holds no invariant a panic elsewhere could break.
    let mut guard = BLOCKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(guard.get_or_insert_with(|| BlockCache {
        blocks: HashMap::new(),
        clock: 0,
    }))
}

impl BlockCache {
    fn get(&mut self, key: (u64, u64)) -> Option<Block> {
        self.clock += 1;
        let clock = self.clock;
        self.blocks.get_mut(&key).map(|(b, used)| {
            *used = clock;
            Arc::clone(b)
        })
    }

    fn insert(&mut self, key: (u64, u64), block: Block) {
        if self.blocks.len() >= CACHE_BLOCKS {
            // Evict the least recently used quarter at once: a pass over
            // the map per CACHE_BLOCKS / 4 insertions.
            let mut used: Vec<u64> = self.blocks.values().map(|(_, u)| *u).collect();
            let cut = CACHE_BLOCKS / 4;
            let (_, &mut threshold, _) = used.select_nth_unstable(cut);
            self.blocks.retain(|_, (_, u)| *u > threshold);
        }
        self.clock += 1;
        self.blocks.insert(key, (block, self.clock));
    }
}

impl SealedIndex {
    pub fn on_disk(path: PathBuf, file: Box<dyn VFile>, header: IndexHeader) -> SealedIndex {
        SealedIndex {
            path,
            disk: Some((file, header)),
            memory: OnceCell::new(),
            id: NEXT_INDEX.fetch_add(1, Ordering::Relaxed),
            passed_over: std::cell::Cell::new(None),
            finger: std::cell::Cell::new(None),
        }
    }

    pub fn in_memory(path: PathBuf, entries: Vec<IndexEntry>) -> SealedIndex {
        let memory = OnceCell::new();
        let _ = memory.set(entries);
        SealedIndex {
            path,
            disk: None,
            memory,
            id: NEXT_INDEX.fetch_add(1, Ordering::Relaxed),
            passed_over: std::cell::Cell::new(None),
            finger: std::cell::Cell::new(None),
        }
    }

    /// Whether lookups still go to the index file.
    pub fn reads_file(&self) -> bool {
        self.disk.is_some() && self.memory.get().is_none()
    }

    /// Answers from `entries` (the segment's, sorted) from now on: the file
    /// turned out stale (see `engine::sealed`).
    pub fn use_entries(&self, entries: Vec<IndexEntry>) {
        let _ = self.memory.set(entries);
    }

    /// Notes that the file was there but passed over as stale.
    pub fn set_passed_over(&self, why: StaleIndex) {
        self.passed_over.set(Some(why));
    }

    /// The note [`SealedIndex::set_passed_over`] left, once.
    pub fn take_passed_over(&self) -> Option<StaleIndex> {
        self.passed_over.take()
    }

    fn blocks(&self) -> u64 {
        self.disk
            .as_ref()
            .map_or(0, |(_, h)| h.entries.div_ceil(ENTRIES_PER_BLOCK as u64))
    }

    /// Reads, checks (CRC and order) and caches block `i`.
    fn read_block(&self, i: u64) -> Option<Arc<Vec<IndexEntry>>> {
        if let Some(b) = with_blocks(|c| c.get((self.id, i))) {
            return Some(b);
        }
        let (file, _) = self.disk.as_ref()?;
        let mut buf = [0u8; INDEX_BLOCK_LEN];
        let at = INDEX_HEADER_LEN as u64 + i * INDEX_BLOCK_LEN as u64;
        file.read_exact_at(&mut buf, at).ok()?;
        let block = Arc::new(format::decode_block(&buf).filter(|b| sorted(b))?);
        with_blocks(|c| c.insert((self.id, i), Arc::clone(&block)));
        Some(block)
    }

    /// Reads blocks `first..first + n` for a sequential cursor into its own
    /// buffer, bypassing the cache (a full scan would only evict the blocks
    /// lookups need): one positioned read for a run of blocks, not one per
    /// 4 KiB block.
    fn read_run(&self, first: u64, n: u64, out: &mut Vec<u8>) -> Option<()> {
        let (file, _) = self.disk.as_ref()?;
        out.resize(usize::try_from(n).ok()? * INDEX_BLOCK_LEN, 0);
        let at = INDEX_HEADER_LEN as u64 + first * INDEX_BLOCK_LEN as u64;
        file.read_exact_at(out, at).ok()
    }

    /// All entries for `doc`, in key order. `docs`, when known (the
    /// manifest's), is the lowest and highest document with records here.
    /// `fallback` scans the segment when the index file cannot be trusted.
    pub fn lookup(
        &self,
        doc: u64,
        docs: Option<(u64, u64)>,
        fallback: &dyn Fn() -> Result<Vec<IndexEntry>>,
    ) -> Result<Vec<IndexEntry>> {
        if let Some(mem) = self.memory.get() {
            return Ok(range(mem, doc));
        }
        match self.lookup_disk(doc, docs) {
            Some(found) => Ok(found),
            None => {
                let entries = fallback()?;
                let found = range(&entries, doc);
                let _ = self.memory.set(entries);
                Ok(found)
            }
        }
    }

    /// All entries whose document field is at least `doc`, in key order:
    /// with `KEY_SPACE`, the key entries, which sort after every document
    /// (the key index reads a member's this way, docs/FORMAT.md §7.8).
    pub fn tail(
        &self,
        doc: u64,
        fallback: &dyn Fn() -> Result<Vec<IndexEntry>>,
    ) -> Result<Vec<IndexEntry>> {
        let from = |sorted: &[IndexEntry]| {
            let start = sorted.partition_point(|e| e.doc < doc);
            sorted[start..].to_vec()
        };
        if let Some(mem) = self.memory.get() {
            return Ok(from(mem));
        }
        let on_disk = (|| {
            let lo = self.first_block_reaching(doc, None)?;
            let mut out = Vec::new();
            for b in lo..self.blocks() {
                let block = self.read_block(b)?;
                if out
                    .last()
                    .is_some_and(|l: &IndexEntry| block.first().is_none_or(|f| key(f) <= key(l)))
                {
                    return None;
                }
                out.extend(block.iter().filter(|e| e.doc >= doc));
            }
            Some(out)
        })();
        match on_disk {
            Some(found) => Ok(found),
            None => {
                let entries = fallback()?;
                let found = from(&entries);
                let _ = self.memory.set(entries);
                Ok(found)
            }
        }
    }

    /// The first block whose last entry is of a document at or above
    /// `doc` (the number of blocks when there is none): the last search's
    /// block or the one after it when `doc` is there, by
    /// [`SealedIndex::search_blocks`] otherwise; `None` if a block on the
    /// way is damaged. `docs` is as for [`SealedIndex::lookup`].
    fn first_block_reaching(&self, doc: u64, docs: Option<(u64, u64)>) -> Option<u64> {
        let found = match self.finger.get() {
            Some(f) if f.from <= doc && doc <= f.last => return Some(f.block),
            Some(f) if f.last < doc && f.block + 1 < self.blocks() => {
                let next = f.block + 1;
                let last = self.read_block(next)?.last()?.doc;
                (last >= doc).then_some(Finger {
                    block: next,
                    from: f.last + 1,
                    last,
                })
            }
            _ => None,
        };
        let finger = match found {
            Some(f) => f,
            None => {
                let lo = self.search_blocks(doc, docs)?;
                if lo == self.blocks() {
                    return Some(lo);
                }
                // The search read it: a cache hit. The block before ends
                // at or below its first entry, so documents above that are
                // first reached here (the block before need not be read).
                let block = self.read_block(lo)?;
                let from = if lo == 0 { 0 } else { block.first()?.doc + 1 };
                Finger {
                    block: lo,
                    from,
                    last: block.last()?.doc,
                }
            }
        };
        self.finger.set(Some(finger));
        Some(finger.block)
    }

    /// The first block whose last entry reaches `doc`, searched afresh.
    ///
    /// Ids are handed out in order, so a member's documents are mostly a
    /// dense run and the block holding `doc` is about where its id falls
    /// between the ids known below and above: guessing there finds it in
    /// one or two reads where halving took ten at 100,000 documents.
    /// Guesses alternate with halving after the first two, so an uneven
    /// spread costs at most about twice the reads of a binary search. The
    /// span only steers the guesses: a wrong one costs reads, not answers.
    fn search_blocks(&self, doc: u64, docs: Option<(u64, u64)>) -> Option<u64> {
        let (mut lo, mut hi) = (0u64, self.blocks());
        // Entries in blocks lo..hi are of documents in low..=high (key
        // entries, which sort last, aside). Without `docs` nothing is known
        // to guess from, and every step halves.
        let (mut low, mut high) = docs.unwrap_or((0, 0));
        let mut step = 0u32;
        while lo < hi {
            let guess = docs.is_some() && (step < 2 || step.is_multiple_of(2));
            step += 1;
            let mid = if guess && high >= low {
                // Outside low..=high, the first or the last block.
                let at = u128::from(doc.clamp(low, high) - low) * u128::from(hi - lo)
                    / (u128::from(high - low) + 1);
                lo + u64::try_from(at).map_or(hi - lo - 1, |a| a.min(hi - lo - 1))
            } else {
                lo + (hi - lo) / 2
            };
            let block = self.read_block(mid)?;
            let (first, last) = (block.first()?.doc, block.last()?.doc);
            if last < doc {
                (lo, low) = (mid + 1, last);
            } else if first < doc {
                // Every block before it ends at or below its first entry.
                return Some(mid);
            } else {
                (hi, high) = (mid, first);
            }
        }
        Some(lo)
    }

    /// `doc`'s entries from the blocks ([`SealedIndex::first_block_reaching`]
    /// onwards); `None` if a block is damaged or the blocks are out of order.
    fn lookup_disk(&self, doc: u64, docs: Option<(u64, u64)>) -> Option<Vec<IndexEntry>> {
        let lo = self.first_block_reaching(doc, docs)?;
        let mut out = Vec::new();
        let mut b = lo;
        while b < self.blocks() {
            let block = self.read_block(b)?;
            for e in block.iter() {
                if e.doc > doc {
                    return Some(out);
                }
                if e.doc == doc {
                    out.push(*e);
                }
            }
            b += 1;
        }
        Some(out)
    }

    /// A cursor over every entry in key order. `fallback` (a scan of the
    /// segment) takes over if a block turns out damaged part-way.
    pub fn cursor<'a>(&'a self, fallback: Fallback<'a>) -> Result<Cursor<'a>> {
        let mut c = Cursor {
            buf: Vec::new(),
            pos: 0,
            src: Src::Done,
            fallback: Some(fallback),
        };
        if let Some(mem) = self.memory.get() {
            c.src = Src::Memory {
                entries: mem,
                next: 0,
            };
        } else if self.disk.is_some() {
            c.buf.reserve(ENTRIES_PER_BLOCK);
            c.src = Src::Disk {
                index: self,
                next: 0,
                run: Vec::new(),
                run_first: 0,
                run_blocks: 0,
            };
        } else if let Some(f) = &c.fallback {
            c.buf = f()?;
        }
        // The first block now, while the file is open: a merge over more
        // members than the descriptor cache holds would otherwise open
        // each index again for it (engine::descriptors).
        c.peek()?;
        Ok(c)
    }
}

/// Entries for `doc` from a sorted slice.
fn range(sorted: &[IndexEntry], doc: u64) -> Vec<IndexEntry> {
    let start = sorted.partition_point(|e| e.doc < doc);
    sorted[start..]
        .iter()
        .take_while(|e| e.doc == doc)
        .copied()
        .collect()
}

/// Where a cursor gets the entries when an index file cannot be used.
pub(crate) type Fallback<'a> = Box<dyn Fn() -> Result<Vec<IndexEntry>> + 'a>;

/// A forward cursor over sorted index entries.
///
/// The entries at hand are always in `buf` (a decoded block, a chunk of an
/// in-memory index, or a fallback's whole list), so that [`Cursor::peek`]
/// and [`Cursor::advance`], which a merge calls for every entry of the
/// store, are an index into a vector; `src` refills it.
pub(crate) struct Cursor<'a> {
    buf: Vec<IndexEntry>,
    pos: usize,
    src: Src<'a>,
    fallback: Option<Fallback<'a>>,
}

/// Index blocks a disk cursor reads at once (64 KiB).
const RUN_BLOCKS: u64 = 16;

/// Entries an in-memory cursor copies into its buffer at once.
const MEMORY_CHUNK: usize = 1024;

enum Src<'a> {
    /// An index file: block `next` is the next to decode, from the run of
    /// raw blocks `run_first..run_first + run_blocks` held in `run`.
    Disk {
        index: &'a SealedIndex,
        next: u64,
        run: Vec<u8>,
        run_first: u64,
        run_blocks: u64,
    },
    /// An index held in memory, copied out from `next` on.
    Memory {
        entries: &'a [IndexEntry],
        next: usize,
    },
    /// Everything is in `buf`.
    Done,
}

impl<'a> Cursor<'a> {
    /// A cursor over entries already sorted in memory.
    pub fn owned(entries: Vec<IndexEntry>) -> Cursor<'a> {
        Cursor {
            buf: entries,
            pos: 0,
            src: Src::Done,
            fallback: None,
        }
    }

    /// Whether it reads an index file's blocks.
    pub fn on_disk(&self) -> bool {
        matches!(self.src, Src::Disk { .. })
    }

    /// Consumes every entry of documents up to `doc`.
    pub fn skip_through(&mut self, doc: u64) -> Result<()> {
        while self.peek()?.is_some_and(|e| e.doc <= doc) {
            self.advance();
        }
        Ok(())
    }

    /// Moves to the first entry of a document at or above `doc`, reading
    /// only the blocks a binary search for it touches (a pass over an id
    /// range starts there, not at the first document). Only forward.
    pub fn seek(&mut self, doc: u64) -> Result<()> {
        if self.buf.last().is_some_and(|e| e.doc >= doc) {
            return self.skip_through(doc.saturating_sub(1));
        }
        match &mut self.src {
            Src::Disk { index, next, .. } => {
                if let Some(b) = index.first_block_reaching(doc, None)
                    && b > *next
                {
                    *next = b;
                    self.buf.clear();
                    self.pos = 0;
                }
            }
            Src::Memory { entries, next } => {
                let at = entries.partition_point(|e| e.doc < doc);
                if at > *next {
                    *next = at;
                    self.buf.clear();
                    self.pos = 0;
                }
            }
            Src::Done => {}
        }
        self.skip_through(doc.saturating_sub(1))
    }

    /// The next entry without consuming it.
    #[inline]
    pub fn peek(&mut self) -> Result<Option<IndexEntry>> {
        match self.buf.get(self.pos) {
            Some(e) => Ok(Some(*e)),
            None => self.refill(),
        }
    }

    /// Moves every entry of document `doc` at the cursor into `out`, as
    /// entries of segment `seg`: a run of the buffer at a time.
    fn take_doc(&mut self, doc: u64, seg: u64, out: &mut Vec<Entry>) -> Result<()> {
        loop {
            let rest = &self.buf[self.pos.min(self.buf.len())..];
            let n = rest.iter().take_while(|e| e.doc == doc).count();
            out.extend(rest[..n].iter().map(|e| Entry::new(e, seg)));
            self.pos += n;
            // The run ended inside the buffer, or the buffer did: refill to
            // see whether the document goes on in the next block.
            if n < rest.len() || self.refill()?.is_none_or(|e| e.doc != doc) {
                return Ok(());
            }
        }
    }

    /// Consumes the entry `peek` returned.
    #[inline]
    pub fn advance(&mut self) {
        if self.pos < self.buf.len() {
            self.pos += 1;
        }
    }

    /// Refills `buf` once it is consumed; the next entry, if any.
    #[cold]
    fn refill(&mut self) -> Result<Option<IndexEntry>> {
        // Every entry of `buf` is consumed: the last is where a switch to
        // the fallback resumes after.
        let last = self.buf.last().map(key);
        match &mut self.src {
            Src::Done => return Ok(None),
            Src::Memory { entries, next } => {
                let take = MEMORY_CHUNK.min(entries.len() - *next);
                self.buf.clear();
                self.buf.extend_from_slice(&entries[*next..*next + take]);
                *next += take;
                if take == 0 {
                    self.src = Src::Done;
                }
            }
            Src::Disk {
                index,
                next,
                run,
                run_first,
                run_blocks,
            } => {
                let blocks = index.blocks();
                if *next >= blocks {
                    self.buf.clear();
                    self.src = Src::Done;
                    return Ok(None);
                }
                let mut ok = true;
                if *next >= *run_first + *run_blocks {
                    let n = RUN_BLOCKS.min(blocks - *next);
                    ok = index.read_run(*next, n, run).is_some();
                    (*run_first, *run_blocks) = if ok { (*next, n) } else { (0, 0) };
                }
                // A block out of order (only a crafted file can pass the
                // CRC that way) is as unusable as a damaged one.
                let ordered = ok && {
                    let i = usize::try_from(*next - *run_first).unwrap_or(usize::MAX);
                    let raw = run.get(i * INDEX_BLOCK_LEN..(i + 1) * INDEX_BLOCK_LEN);
                    raw.and_then(|raw| format::decode_block_into(raw, &mut self.buf))
                        .is_some()
                        && sorted(&self.buf)
                        && last.is_none_or(|l| self.buf.first().is_some_and(|f| key(f) > l))
                };
                if ordered {
                    *next += 1;
                } else {
                    self.buf.clear();
                    let at = INDEX_HEADER_LEN as u64 + *next * INDEX_BLOCK_LEN as u64;
                    let path = index.path.clone();
                    let fallback = self.fallback.take().ok_or_else(|| {
                        Error::corrupt(&path, at, "index block fails its checksum")
                    })?;
                    let mut entries = fallback()?;
                    entries.retain(|e| last.is_none_or(|l| key(e) > l));
                    self.buf = entries;
                    self.src = Src::Done;
                }
            }
        }
        self.pos = 0;
        Ok(self.buf.first().copied())
    }
}

/// Feeds the union of two sorted entry streams into `w` in key order.
pub(crate) fn write_merged(
    w: &mut IndexWriter,
    a: Option<&mut Cursor<'_>>,
    b: impl Iterator<Item = IndexEntry>,
) -> Result<()> {
    let mut b = b.peekable();
    if let Some(a) = a {
        while let Some(x) = a.peek()? {
            while let Some(y) = b.next_if(|y| key(y) < key(&x)) {
                w.push(y)?;
            }
            w.push(x)?;
            a.advance();
        }
    }
    for y in b {
        w.push(y)?;
    }
    Ok(())
}

/// A merge of sorted cursors, yielding all entries of one document at a time.
pub(crate) struct Merge<'a> {
    /// Each cursor with the segment number its entries point into.
    pub sources: Vec<(Cursor<'a>, u64)>,
}

impl Merge<'_> {
    /// Entries of the next document (lowest id first) from every source.
    pub fn next_doc(&mut self) -> Result<Option<Vec<Entry>>> {
        let mut out = Vec::new();
        Ok(self.next_doc_into(&mut out)?.then_some(out))
    }

    /// Moves every source to the first entry of a document at or above
    /// `doc`.
    pub fn seek(&mut self, doc: u64) -> Result<()> {
        for (c, _) in &mut self.sources {
            c.seek(doc)?;
        }
        Ok(())
    }

    /// [`Merge::next_doc`] into `out` (cleared first), so that a pass over
    /// the store reuses one vector; false at the end.
    pub fn next_doc_into(&mut self, out: &mut Vec<Entry>) -> Result<bool> {
        out.clear();
        let mut min: Option<u64> = None;
        for (c, _) in &mut self.sources {
            if let Some(e) = c.peek()?
                && min.is_none_or(|m| e.doc < m)
            {
                min = Some(e.doc);
            }
        }
        let Some(doc) = min else { return Ok(false) };
        for (c, seg) in &mut self.sources {
            if c.peek()?.is_some_and(|e| e.doc == doc) {
                c.take_doc(doc, *seg, out)?;
            }
        }
        Ok(true)
    }
}

/// Writes an index file block by block: to a temporary name, then fsynced
/// and renamed into place by [`IndexWriter::finish`].
pub(crate) struct IndexWriter {
    name: String,
    tmp: PathBuf,
    file: Box<dyn VFile>,
    pending: Vec<IndexEntry>,
    /// Encoded blocks not yet written, the first of them block `written`.
    out: Vec<u8>,
    written: u64,
    blocks: u64,
    count: u64,
    last: Option<(u64, u64, u64)>,
    stats: MemberStats,
}

/// Index blocks written to the file in one call: one call per 4 KiB block
/// was most of a load's 10,064 pwrite calls at 100,000 x 10.
const BLOCKS_PER_WRITE: usize = 64;

impl IndexWriter {
    /// Starts the index file that [`IndexWriter::finish`] will call `name`.
    pub fn create(vfs: &dyn Vfs, dir: &Path, name: String) -> Result<IndexWriter> {
        let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
        let _ = vfs.remove_file(&tmp);
        let file = vfs.create_new(&tmp).io("create", &tmp)?;
        Ok(IndexWriter {
            name,
            tmp,
            file,
            pending: Vec::with_capacity(ENTRIES_PER_BLOCK),
            out: Vec::new(),
            written: 0,
            blocks: 0,
            count: 0,
            last: None,
            stats: MemberStats::default(),
        })
    }

    /// Adds an entry; entries must arrive in key order.
    pub fn push(&mut self, e: IndexEntry) -> Result<()> {
        if e.offset > format::MAX_INDEXED_OFFSET {
            return Err(Error::invalid(
                "a segment this large cannot be indexed (offsets are 48-bit)",
            ));
        }
        // Compaction must never write an index it could not search.
        if self.last.is_some_and(|l| l >= key(&e)) {
            return Err(Error::corrupt(
                &self.tmp,
                0,
                "index entries out of order (a damaged source index)",
            ));
        }
        self.last = Some(key(&e));
        self.stats.add(&e);
        self.pending.push(e);
        self.count += 1;
        if self.pending.len() == ENTRIES_PER_BLOCK {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Figures for the manifest entry of the segment being indexed.
    pub fn stats(&self) -> &MemberStats {
        &self.stats
    }

    fn flush_block(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.out
            .extend_from_slice(&format::encode_block(&self.pending));
        self.blocks += 1;
        self.pending.clear();
        if self.out.len() >= BLOCKS_PER_WRITE * INDEX_BLOCK_LEN {
            self.write_out()?;
        }
        Ok(())
    }

    /// Writes the blocks encoded so far.
    fn write_out(&mut self) -> Result<()> {
        let at = INDEX_HEADER_LEN as u64 + self.written * INDEX_BLOCK_LEN as u64;
        self.file
            .write_all_at(&self.out, at)
            .io("write", &self.tmp)?;
        self.written = self.blocks;
        self.out.clear();
        Ok(())
    }

    /// Writes the header, fsyncs (when `sync`), and renames into place. The
    /// caller fsyncs the directory.
    pub fn finish(
        mut self,
        vfs: &dyn Vfs,
        dir: &Path,
        header: IndexHeader,
        sync: bool,
    ) -> Result<()> {
        self.flush_block()?;
        self.write_out()?;
        let header = IndexHeader {
            entries: self.count,
            ..header
        };
        self.file
            .write_all_at(&header.encode(), 0)
            .io("write", &self.tmp)?;
        if sync {
            self.file.sync_data().io("fsync", &self.tmp)?;
        }
        let dest = dir.join(&self.name);
        vfs.rename(&self.tmp, &dest).io("rename", &dest)
    }
}

/// Opens an index file just written: an I/O error is reported as one (not
/// as damage), and content that does not check is damage.
///
/// # Errors
/// [`Error::Io`] when it cannot be opened or read; [`Error::Corrupt`]
/// when it does not match its segment.
pub(crate) fn reopen_written(
    vfs: &dyn Vfs,
    path: PathBuf,
    segment: u64,
    segment_len: u64,
    bind: Binding,
) -> Result<SealedIndex> {
    let file = vfs.open_read(&path).io("open", &path)?;
    let mut buf = [0u8; INDEX_HEADER_LEN];
    file.read_exact_at(&mut buf, 0).io("read", &path)?;
    match check_header(file, &buf, segment, segment_len..=segment_len, bind) {
        Some((f, h)) => Ok(SealedIndex::on_disk(path, f, h)),
        None => Err(Error::corrupt(
            &path,
            0,
            "index just written does not read back",
        )),
    }
}

/// Opens and checks an index file against its segment. `None` when it is
/// missing, cannot be opened, is short or describes something else: the
/// caller rebuilds it.
///
/// # Errors
/// [`Error::Io`] when reading it fails: a read error is never taken for a
/// stale index.
pub(crate) fn open_index(
    vfs: &dyn Vfs,
    path: &Path,
    segment: u64,
    segment_len: u64,
    bind: Binding,
) -> Result<Option<(Box<dyn VFile>, IndexHeader)>> {
    open_index_covering(vfs, path, segment, segment_len..=segment_len, bind)
}

/// The key entries of sealed segment `segment`'s index file: its last
/// `keys` entries (key entries sort after every document, docs/FORMAT.md
/// §7.6), read from the first block that holds one. `Ok(None)` when the
/// file is missing, stale or damaged, or they are not `keys` key entries.
pub(crate) fn key_entries(
    vfs: &dyn Vfs,
    dir: &Path,
    segment: u64,
    segment_len: u64,
    bind: Binding,
    keys: u64,
) -> Result<Option<Vec<IndexEntry>>> {
    let path = dir.join(format::index_name(segment));
    let Some((file, header)) = open_index(vfs, &path, segment, segment_len, bind)? else {
        return Ok(None);
    };
    let Some(first) = header.entries.checked_sub(keys) else {
        return Ok(None);
    };
    let per = ENTRIES_PER_BLOCK as u64;
    let mut out = Vec::new();
    let mut block = Vec::with_capacity(ENTRIES_PER_BLOCK);
    let mut last = None;
    for b in first / per..header.entries.div_ceil(per) {
        let mut buf = [0u8; INDEX_BLOCK_LEN];
        let at = INDEX_HEADER_LEN as u64 + b * INDEX_BLOCK_LEN as u64;
        file.read_exact_at(&mut buf, at).io("read", &path)?;
        if format::decode_block_into(&buf, &mut block).is_none()
            || !sorted(&block)
            || last.is_some_and(|l| block.first().is_none_or(|f| key(f) <= l))
        {
            return Ok(None);
        }
        last = block.last().map(key);
        out.extend(block.iter().filter(|e| e.is_key()));
    }
    Ok((out.len() as u64 == keys).then_some(out))
}

/// [`open_index`] for an index that may cover only a prefix of its segment
/// (the active segment's checkpoint): its recorded length must fall in
/// `covers`.
pub(crate) fn open_index_covering(
    vfs: &dyn Vfs,
    path: &Path,
    segment: u64,
    covers: std::ops::RangeInclusive<u64>,
    bind: Binding,
) -> Result<Option<(Box<dyn VFile>, IndexHeader)>> {
    let Ok(file) = vfs.open_read(path) else {
        return Ok(None);
    };
    let mut buf = [0u8; INDEX_HEADER_LEN];
    match file.read_exact_at(&mut buf, 0) {
        Ok(()) => Ok(check_header(file, &buf, segment, covers, bind)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Checks an open index file's header (read into `buf`) against its segment.
fn check_header(
    file: Box<dyn VFile>,
    buf: &[u8; INDEX_HEADER_LEN],
    segment: u64,
    covers: std::ops::RangeInclusive<u64>,
    bind: Binding,
) -> Option<(Box<dyn VFile>, IndexHeader)> {
    let header = IndexHeader::decode(buf, bind.store_id)?;
    if header.version != bind.version {
        return None;
    }
    let expect_len = header
        .entries
        .div_ceil(ENTRIES_PER_BLOCK as u64)
        .checked_mul(INDEX_BLOCK_LEN as u64)?
        .checked_add(INDEX_HEADER_LEN as u64)?;
    if header.segment != segment
        || !covers.contains(&header.segment_len)
        || file.len().ok()? != expect_len
    {
        return None;
    }
    Some((file, header))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index file in memory that counts its reads.
    struct Counted(Vec<u8>, Arc<AtomicU64>);

    impl VFile for Counted {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
            self.1.fetch_add(1, Ordering::Relaxed);
            let at = usize::try_from(offset).unwrap().min(self.0.len());
            let n = buf.len().min(self.0.len() - at);
            buf[..n].copy_from_slice(&self.0[at..at + n]);
            Ok(n)
        }
        fn write_all_at(&self, _: &[u8], _: u64) -> std::io::Result<()> {
            unreachable!("an index is only read")
        }
        fn len(&self) -> std::io::Result<u64> {
            Ok(self.0.len() as u64)
        }
        fn set_len(&self, _: u64) -> std::io::Result<()> {
            unreachable!("an index is only read")
        }
        fn sync_data(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Looks up every document in `docs` in an index of `entries` (sorted),
    /// each time with a cold cache, and returns the most block reads one
    /// lookup's search made (beyond the blocks holding its answer); every
    /// answer is checked against the entries.
    fn most_reads(entries: &[IndexEntry], docs: &[u64], span: Option<(u64, u64)>) -> u64 {
        let header = IndexHeader {
            version: format::FORMAT_VERSION,
            store_id: 1,
            segment: 2,
            segment_len: 0,
            entries: entries.len() as u64,
            max_seq: entries.len() as u64,
            doc_hwm: 0,
        };
        let mut bytes = vec![0u8; INDEX_HEADER_LEN];
        for block in entries.chunks(ENTRIES_PER_BLOCK) {
            bytes.extend_from_slice(&format::encode_block(block));
        }
        let mut most = 0;
        for &doc in docs {
            let reads = Arc::new(AtomicU64::new(0));
            let file = Counted(bytes.clone(), Arc::clone(&reads));
            let index =
                SealedIndex::on_disk(PathBuf::from("seg_000002.idx"), Box::new(file), header);
            let found = index
                .lookup(doc, span, &|| panic!("the index is sound"))
                .unwrap();
            assert_eq!(found, range(entries, doc), "document {doc}");
            let start = entries.partition_point(|e| e.doc < doc);
            let answer =
                (start + found.len()).div_ceil(ENTRIES_PER_BLOCK) - start / ENTRIES_PER_BLOCK;
            most = most.max(reads.load(Ordering::Relaxed).saturating_sub(answer as u64));
        }
        most
    }

    fn entry(doc: u64, node: u64, seq: u64) -> IndexEntry {
        let kind = if node == 0 {
            Kind::DocPut
        } else {
            Kind::InputPut
        };
        IndexEntry {
            doc,
            node,
            seq,
            offset: seq * 100,
            aux: 0,
            len: 100,
            kind,
            flags: 0,
        }
    }

    #[test]
    fn a_lookup_reads_one_or_two_blocks_of_a_dense_run_and_few_of_an_uneven_one() {
        // A load's segment: documents 40,001 to 60,000, each with ten nodes.
        let mut seq = 0;
        let mut dense = Vec::new();
        for doc in 40_001..=60_000 {
            for node in 0..=10 {
                seq += 1;
                dense.push(entry(doc, node, seq));
            }
        }
        let blocks = dense.len().div_ceil(ENTRIES_PER_BLOCK) as u64;
        let probes: Vec<u64> = (40_001..=60_000)
            .step_by(97)
            .chain([39_000, 60_001])
            .collect();
        let span = Some((40_001, 60_000));
        assert!(most_reads(&dense, &probes, span) <= 1);
        // Without the manifest's span, a binary search.
        let halving = 64 - (blocks - 1).leading_zeros() as u64;
        assert_eq!(most_reads(&dense, &probes, None), halving);
        // A span that is wrong costs reads, not answers.
        assert!(most_reads(&dense, &probes, Some((1, 100_000))) <= 2 * halving + 2);

        // Uneven: a run of small documents, one with 20,000 nodes, then ids
        // far apart, and key entries after them all.
        let mut uneven = Vec::new();
        let mut seq = 0;
        let mut add = |doc: u64, node: u64| {
            seq += 1;
            uneven.push(entry(doc, node, seq));
        };
        (1..=3_000).for_each(|doc| add(doc, 0));
        (0..=20_000).for_each(|node| add(3_001, node));
        (1..=200).for_each(|i| add(3_001 + i * 1_000, 0));
        (0..500).for_each(|k| add(format::KEY_SPACE + k, 0));
        let blocks = uneven.len().div_ceil(ENTRIES_PER_BLOCK) as u64;
        let halving = 64 - (blocks - 1).leading_zeros() as u64;
        let probes: Vec<u64> = (1..=3_000)
            .step_by(37)
            .chain([
                3_001,
                3_002,
                50_001,
                203_001,
                203_002,
                format::KEY_SPACE + 7,
            ])
            .collect();
        let most = most_reads(&uneven, &probes, Some((1, 203_001)));
        assert!(
            most <= 2 * halving + 2,
            "{most} reads against {halving} halving"
        );
    }

    #[test]
    fn the_block_cache_keeps_its_bound_and_the_blocks_in_use() {
        let mut c = BlockCache {
            blocks: HashMap::new(),
            clock: 0,
        };
        let block: Block = Arc::new(Vec::new());
        // Block (0, 0) is used between every insertion, as the top of a
        // binary search is; the others are used once.
        c.insert((0, 0), Arc::clone(&block));
        for i in 1..=(3 * CACHE_BLOCKS as u64) {
            assert!(
                c.get((0, 0)).is_some(),
                "the block in use was evicted at {i}"
            );
            c.insert((1, i), Arc::clone(&block));
            assert!(c.blocks.len() <= CACHE_BLOCKS);
        }
        assert!(c.get((1, 1)).is_none(), "the oldest block was kept");
        assert!(c.get((1, 3 * CACHE_BLOCKS as u64)).is_some());
    }

    /// Lookups answer the same whatever their order, ascending (where the
    /// finger serves them), descending or jumping, with documents that
    /// span block boundaries, begin a block, or are missing.
    #[test]
    fn lookups_in_any_order_find_every_entry_of_a_document() {
        let tmp = tempfile::tempdir().unwrap();
        let (vfs, dir) = (crate::engine::vfs::OsFs, tmp.path());
        // Documents 2, 4, 6, …: document d has d % 7 * 9 + 1 entries, so
        // some take several blocks and block starts fall everywhere.
        let mut all = Vec::new();
        for d in (2..=400u64).step_by(2) {
            for node in 0..(d % 7 * 9 + 1) {
                all.push(IndexEntry {
                    doc: d,
                    node,
                    seq: all.len() as u64 + 1,
                    offset: all.len() as u64 * 40,
                    aux: 0,
                    len: 40,
                    kind: Kind::InputPut,
                    flags: 0,
                });
            }
        }
        let mut w = IndexWriter::create(&vfs, dir, format::index_name(3)).unwrap();
        for e in &all {
            w.push(*e).unwrap();
        }
        let bind = Binding {
            version: format::FORMAT_VERSION,
            store_id: 9,
        };
        let len = all.len() as u64 * 40 + 100;
        let header = IndexHeader {
            version: bind.version,
            store_id: bind.store_id,
            segment: 3,
            segment_len: len,
            entries: 0,
            max_seq: all.len() as u64,
            doc_hwm: 400,
        };
        w.finish(&vfs, dir, header, false).unwrap();
        let index = reopen_written(&vfs, dir.join(format::index_name(3)), 3, len, bind).unwrap();
        assert!(index.blocks() > 10, "the entries fill several blocks");
        let none = || -> Result<Vec<IndexEntry>> { panic!("the index file is whole") };
        let expect =
            |d: u64| -> Vec<IndexEntry> { all.iter().filter(|e| e.doc == d).copied().collect() };
        let ascending: Vec<u64> = (0..=402).flat_map(|d| [d, d]).collect();
        let descending: Vec<u64> = (0..=402).rev().collect();
        let jumping: Vec<u64> = (0..=402).map(|i| i * 97 % 403).collect();
        // With the manifest's span and without it (format 1, active.idx).
        for span in [Some((2, 400)), None] {
            for order in [&ascending, &descending, &jumping] {
                for &d in order {
                    let found = index.lookup(d, span, &none).unwrap();
                    assert_eq!(found, expect(d), "document {d}");
                }
            }
        }
    }
}
