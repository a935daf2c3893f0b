//! Compaction, full and selective (docs/FORMAT.md §8.4).
//!
//! # Full (`compact --full`, [`Store::compact`])
//! 1. Check free space against the live bytes.
//! 2. Stream a merge of all segment indexes (the active segment's in-memory
//!    one included) in document order; write each live document (its newest
//!    record, its live nodes with their newest outputs folded in) to
//!    `seg_M.seg.stratum-tmp`, `seg_M+1…`, with fresh sequence numbers.
//!    Tombstones and dead versions are not copied. Nothing visible has
//!    changed yet: a compaction refused here removes its temporary files.
//! 3. Seal `active.seg` (its number and footer seq were set aside).
//! 4. fsync and rename each output, write their indexes, fsync the
//!    directory; write the manifest that lists only them: the commit point.
//! 5. Remove the old segments and their indexes, fsync the directory.
//!
//! # Selective (`compact`)
//! The members worth merging are chosen from the figures the manifest
//! keeps (`live.rs`); one walk of every index decides which of their
//! records are kept (the newest versions, and the tombstones that still
//! hide something outside the merged set) and cuts them into outputs; each
//! output gets its kept records copied as they are on disk after a CRC
//! check, in sequence order; `active.seg` is sealed only if chosen, after
//! the outputs are written; the manifest swaps the merged members for the
//! outputs. With nothing worth merging nothing is written.
//!
//! Memory stays flat: one document's records at a time (full) or one
//! output's kept entries (selective), one index block per input, a 1 MiB
//! write buffer per output.

use std::path::PathBuf;

use crate::engine::active::{Active, Marks};
use crate::engine::format::{
    self, DocFields, FLAG_BATCH, FLAG_EXTENDED, IndexEntry, IndexHeader, Kind, MAX_PAYLOAD,
    RECORD_HEADER_LEN, SEG_FLAG_COMPACTED, SEGMENT_HEADER_LEN, SealPayload, SegmentHeader,
    TMP_SUFFIX,
};
use crate::engine::index::{self, Entry, IndexWriter, MemberStats};
use crate::engine::live::Figures;
use crate::engine::options::{Options, Progress};
use crate::engine::reads::Reads;
use crate::engine::sealed::SealedSet;
use crate::engine::segment::{Handle, Sealed};
use crate::engine::stats;
use crate::engine::vfs::VFile;
use crate::engine::view::{DocView, resolve};
use crate::error::{Error, IoContext, Result};

/// What a compaction would do, computed from the indexes alone.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactPlan {
    /// Segment files now (the active one included).
    pub segments: usize,
    /// Bytes of segment and index files now.
    pub bytes_before: u64,
    /// Live bytes of the segments (as `stats` counts them).
    pub live_bytes: u64,
    /// Dead bytes of the segments (as `stats` counts them).
    pub reclaimable_bytes: u64,
    /// `stats`' garbage ratio: dead over all segment bytes.
    pub garbage_ratio: f64,
    /// Whether this is a full compaction's plan.
    pub full: bool,
    /// The segment files it would merge, by name.
    pub merge: Vec<String>,
    /// Their bytes.
    pub merge_bytes: u64,
    /// Bytes of segment data it would write: exact for a selective plan
    /// asked to be exact, an upper bound otherwise.
    pub write_bytes: u64,
    /// Output segments it would write.
    pub outputs: usize,
    /// Whether the manifest holds the figures (`stats` reads them) or they
    /// are "not known" (`stats` merges; `compact` writes them).
    pub counted: bool,
}

/// What a compaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactReport {
    /// Segment and index bytes before.
    pub bytes_before: u64,
    /// Segment and index bytes after.
    pub bytes_after: u64,
    /// Segment files before (the active one included).
    pub segments_before: usize,
    /// Segment files after (the new, empty active one included).
    pub segments_after: usize,
    /// Live documents written.
    pub documents: u64,
    /// Segment files merged (the active one included in a full compaction).
    pub merged: usize,
    /// Bytes of segment data written (the outputs' lengths).
    pub written: u64,
}

/// Size a live item takes once compacted.
fn live_size(view: &DocView) -> u64 {
    let mut n = u64::from(view.doc.len);
    for (input, output) in view.nodes.values() {
        n += u64::from(input.len);
        if let Some(o) = output.filter(|o| o.kind == Kind::OutputPut) {
            n += u64::from(o.len) - RECORD_HEADER_LEN as u64;
        }
    }
    n
}

/// Bytes of segment and index files on disk now.
pub(crate) fn file_bytes(opts: &Options, sealed: &SealedSet, active: &Active) -> u64 {
    let size = |p: &std::path::Path| opts.vfs.open_read(p).and_then(|f| f.len()).unwrap_or(0);
    let idx: u64 = sealed.iter().map(|s| size(&s.idx_path())).sum();
    let checkpoint = size(&opts.dir.join(format::ACTIVE_INDEX_NAME));
    sealed.total_len() + active.len() + idx + checkpoint
}

/// What a compaction reads and writes its outputs with: the options, the
/// read path over the sealed set and the active segment, and the id marks
/// as they stand. It changes nothing of the store: the store seals and
/// commits (see `Store::compact`).
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub opts: &'a Options,
    pub reads: Reads<'a>,
    pub marks: Marks,
    pub store_id: u64,
    /// The lowest number a new segment may take.
    pub next_number: u64,
}

impl Ctx<'_> {
    /// The file `active.seg` stands for.
    fn active(&self) -> &Active {
        self.reads.active.cur()
    }

    /// Bytes a full compaction writes at most, less the framing: the live
    /// bytes the manifest's figures count when it has them (a bound from
    /// above: a re-encoded node drops the output its own record held when a
    /// newer one replaced it, and the header of an output it folds in), or
    /// every live document's records as it re-encodes them, from a merge
    /// of every index.
    fn full_live_bytes(&self) -> Result<u64> {
        if let Some(f) = stats::counted(self.reads.sealed, self.reads.active)? {
            return Ok(f.live.values().sum());
        }
        let mut live = 0u64;
        let mut merge = self.reads.merge()?;
        while let Some(entries) = merge.next_doc()? {
            if let Some(view) = resolve(&entries) {
                live += live_size(&view);
            }
        }
        Ok(live)
    }

    /// Step 2 of a full compaction (see the module docs): every live
    /// document written to new outputs, nothing visible changed. With
    /// `seal_later`, the seal footer's sequence number and the number of the
    /// empty active segment that follows the seal are set aside. Returns the
    /// outputs and the documents written; on failure the outputs are gone.
    pub fn write_full(
        &self,
        seal_later: bool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(Outputs, u64)> {
        let (opts, dir) = (self.opts, &self.opts.dir);
        let live = self.full_live_bytes()?;
        // Live records plus their index (48 bytes per record of at least 36)
        // plus slack.
        let needed = live + live / 2 + (1 << 20);
        let available = opts.vfs.available_space(dir).io("statvfs", dir)?;
        if available < needed {
            return Err(Error::NoSpace {
                path: dir.clone(),
                needed,
                available,
            });
        }
        let base = self.next_number + u64::from(seal_later);
        let mut out = Outputs {
            base,
            done: Vec::new(),
            cur: None,
            seq: self.marks.next_seq + u64::from(seal_later),
            figures: Figures::default(),
        };
        let total = live.max(1);
        let mut written = 0u64;
        let mut documents = 0u64;
        let result = self.reads.with_readahead(|| {
            let mut merge = self.reads.merge()?;
            while let Some(entries) = merge.next_doc()? {
                let Some(view) = resolve(&entries) else {
                    continue;
                };
                out.ensure(opts, self.store_id)?;
                self.copy_doc(&view, &mut out)?;
                documents += 1;
                written += live_size(&view);
                progress(Progress {
                    done: written.min(total),
                    total,
                });
                if out.cur.as_ref().is_some_and(|c| c.len >= opts.segment_size) {
                    out.close_current(self.marks.doc_hwm)?;
                }
            }
            out.ensure(opts, self.store_id)?;
            out.close_current(self.marks.doc_hwm)
        });
        if let Err(e) = result {
            out.discard(opts);
            return Err(e);
        }
        Ok((out, documents))
    }

    fn copy_doc(&self, view: &DocView, out: &mut Outputs) -> Result<()> {
        let doc = self.reads.read_doc_record(&view.doc)?;
        let (prefix, flags) = format::encode_doc_prefix(&DocFields {
            node_hwm: view.node_hwm,
            category: doc.category.as_deref(),
            version: doc.version.as_deref(),
            key: doc.key.as_deref(),
            meta: doc.meta.as_deref(),
        });
        let cur = out
            .cur
            .as_mut()
            .ok_or_else(|| Error::internal("no output"))?;
        let number = cur.number;
        let mut written = Vec::with_capacity(2 * view.nodes.len() + 1);
        let entry = cur.push(
            &mut out.seq,
            Kind::DocPut,
            flags,
            view.doc.doc,
            0,
            view.node_hwm,
            &prefix,
            &doc.body,
        )?;
        written.push(entry);
        if let Some(k) = doc.key.as_deref() {
            // Key entries sort after every document: written at the close.
            cur.keys.push(IndexEntry {
                doc: format::key_slot(k),
                node: view.doc.doc,
                aux: 0,
                ..entry
            });
        }
        for (n, (input, output)) in &view.nodes {
            let (doc, node) = (view.doc.doc, input.node);
            // The texts are copied as stored: their records' CRCs checked as
            // they were read, and `verify` is what parses them again.
            self.reads
                .with_node_texts(input, output.as_ref(), view.metas.get(n), |t| {
                    let (text, meta) = (t.input.1, t.meta.map(|m| m.1));
                    let out_text = t.output.map(|o| o.1);
                    // Fold the output into the input's record, unless
                    // together they would pass the record size limit: then
                    // it keeps its own.
                    let folded = 8
                        + text.len()
                        + meta.map_or(0, <[u8]>::len)
                        + out_text.map_or(0, <[u8]>::len)
                        <= MAX_PAYLOAD as usize;
                    let (prefix, rest, flags) =
                        format::encode_input_bytes(text, meta, out_text.filter(|_| folded));
                    written.push(cur.push(
                        &mut out.seq,
                        Kind::InputPut,
                        flags,
                        doc,
                        node,
                        0,
                        &prefix,
                        rest,
                    )?);
                    if let Some(text) = out_text.filter(|_| !folded) {
                        let flags = if text == b"null" { FLAG_EXTENDED } else { 0 };
                        written.push(cur.push(
                            &mut out.seq,
                            Kind::OutputPut,
                            flags,
                            doc,
                            node,
                            0,
                            text,
                            &[],
                        )?);
                    }
                    Ok(())
                })?;
        }
        // The store holds nothing else once the outputs replace every
        // segment: these are the document's figures.
        let written: Vec<Entry> = written.iter().map(|e| Entry::new(e, number)).collect();
        out.figures.account(&written, true);
        Ok(())
    }
}

/// Steps 4–5 of the module docs: the outputs fsynced, renamed into place
/// and indexed, the manifest that swaps the members in `set` (all for
/// `None`) for them written (the commit point), the old members removed.
/// A failed directory fsync or manifest write sets `poisoned`: membership
/// on disk may then differ from memory.
pub(crate) fn commit(
    opts: &Options,
    sealed: &mut SealedSet,
    marks: &mut Marks,
    poisoned: &mut bool,
    mut out: Outputs,
    set: Option<&[u64]>,
) -> Result<()> {
    let vfs = opts.vfs.clone();
    let dir = opts.dir.clone();
    // Each output is durable before it is renamed into place.
    for o in &out.done {
        if let Err(e) = o.file.sync_data().io("fsync", &o.tmp) {
            out.discard(opts);
            return Err(e);
        }
    }
    let mut renamed: Vec<PathBuf> = Vec::new();
    for o in &out.done {
        let dest = dir.join(format::segment_name(o.number));
        if let Err(e) = vfs.rename(&o.tmp, &dest) {
            // Not committed: the outputs are extra files. Undo.
            for p in &renamed {
                let _ = vfs.remove_file(p);
            }
            out.discard(opts);
            return Err(Error::io("rename", &dest, e));
        }
        renamed.push(dest);
    }
    // From here a failure leaves extra files of this store, which the
    // next write open removes (docs/FORMAT.md §8.4).
    let bind = sealed.binding(format::FORMAT_VERSION);
    let outputs = std::mem::take(&mut out.done);
    let mut new_sealed = Vec::with_capacity(outputs.len());
    let mut members = Vec::with_capacity(outputs.len());
    for o in outputs {
        members.push(
            o.stats
                .member(o.number, o.len, format::FORMAT_VERSION, o.max_seq, 1),
        );
        o.index.finish(
            &*vfs,
            &dir,
            IndexHeader {
                version: bind.version,
                store_id: bind.store_id,
                segment: o.number,
                segment_len: o.len,
                entries: 0,
                max_seq: o.max_seq,
                doc_hwm: marks.doc_hwm,
            },
            true,
        )?;
        let path = dir.join(format::segment_name(o.number));
        let idx_path = dir.join(format::index_name(o.number));
        let index = index::reopen_written(&*vfs, idx_path, o.number, o.len, bind)?;
        new_sealed.push(Sealed {
            number: o.number,
            version: format::FORMAT_VERSION,
            path,
            len: o.len,
            max_seq: o.max_seq,
            doc_hwm: marks.doc_hwm,
            generation: Some((o.number, 1)),
            handle: Handle::ready(o.file, index),
            member: None,
            lazy: None,
        });
    }
    let next_number = out.base + members.len() as u64;
    let max_seq = out.seq - 1;
    let doc_hwm = marks.doc_hwm;
    let m = sealed
        .manifest_mut()
        .ok_or_else(|| Error::internal("compaction of a store without a manifest"))?;
    let replaced = |n: u64| set.is_none_or(|set| set.binary_search(&n).is_ok());
    m.members.retain(|x| !replaced(x.number));
    m.members.extend(members);
    m.members.sort_by_key(|x| x.number);
    m.next_number = m.next_number.max(next_number);
    m.max_seq = m.max_seq.max(max_seq);
    m.doc_hwm = doc_hwm;
    crate::engine::live::set_in_manifest(m, Some(&out.figures));
    // The outputs and their indexes are durable under their names before
    // the manifest that lists them can be.
    sync_dir(opts, poisoned)?;
    // The commit point: the old members become extra files.
    let written = sealed.write_manifest();
    if written.is_err() {
        *poisoned = true;
    }
    written?;
    let old = sealed.replace(set, new_sealed);
    // The members in memory are now the ones the manifest lists.
    sealed.commit_keys();
    for s in &old {
        for p in [s.path.clone(), s.idx_path()] {
            match vfs.remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &p, e)),
            }
        }
    }
    sync_dir(opts, poisoned)?;
    marks.next_seq = out.seq;
    Ok(())
}

/// fsync of the data directory; a failure sets `poisoned`.
fn sync_dir(opts: &Options, poisoned: &mut bool) -> Result<()> {
    let r = opts.vfs.sync_dir(&opts.dir).io("fsync", &opts.dir);
    if r.is_err() {
        *poisoned = true;
    }
    r
}

/// One compaction output being written.
pub(crate) struct Output {
    number: u64,
    tmp: PathBuf,
    file: Box<dyn VFile>,
    len: u64,
    flushed: u64,
    buf: Vec<u8>,
    records: u64,
    max_seq: u64,
    index: IndexWriter,
    /// Key entries of the documents written so far.
    keys: Vec<IndexEntry>,
    /// Figures for its manifest entry.
    stats: MemberStats,
}

impl Output {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        seq: &mut u64,
        kind: Kind,
        flags: u8,
        doc: u64,
        node: u64,
        aux: u64,
        a: &[u8],
        b: &[u8],
    ) -> Result<IndexEntry> {
        let s = *seq;
        *seq += 1;
        let before = self.buf.len();
        format::encode_record(&mut self.buf, s, kind, flags, doc, node, a, b);
        let len = (self.buf.len() - before) as u32;
        let entry = IndexEntry {
            doc,
            node,
            seq: s,
            offset: self.len,
            aux,
            len,
            kind,
            flags,
        };
        self.index.push(entry)?;
        self.stats.add(&entry);
        self.len += u64::from(len);
        self.records += 1;
        self.max_seq = s;
        if self.buf.len() >= 1 << 20 {
            self.flush()?;
        }
        Ok(entry)
    }

    fn flush(&mut self) -> Result<()> {
        self.file
            .write_all_at(&self.buf, self.flushed)
            .io("write", &self.tmp)?;
        // The disk writes this while the next records are read and checked,
        // so the fsync at the commit waits for the tail, not the whole file.
        self.file
            .start_writeback(self.flushed, self.buf.len() as u64);
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// The files a compaction writes, until they are committed.
pub(crate) struct Outputs {
    /// Figures of the outputs, document by document.
    figures: Figures,
    base: u64,
    done: Vec<Output>,
    cur: Option<Output>,
    seq: u64,
}

impl Outputs {
    /// Bytes of segment data written (the outputs' lengths).
    pub fn written(&self) -> u64 {
        self.done.iter().map(|o| o.len).sum()
    }

    fn ensure(&mut self, opts: &Options, store_id: u64) -> Result<()> {
        if self.cur.is_some() {
            return Ok(());
        }
        let number = self.base + self.done.len() as u64;
        let vfs = &*opts.vfs;
        let tmp = opts
            .dir
            .join(format!("{}{TMP_SUFFIX}", format::segment_name(number)));
        let _ = vfs.remove_file(&tmp);
        let file = vfs.create_new(&tmp).io("create", &tmp)?;
        let header = SegmentHeader::v2(number, store_id, SEG_FLAG_COMPACTED);
        let mut buf = Vec::with_capacity(1 << 20);
        buf.extend_from_slice(&header.encode());
        let index = IndexWriter::create(vfs, &opts.dir, format::index_name(number))?;
        self.cur = Some(Output {
            number,
            tmp,
            file,
            len: SEGMENT_HEADER_LEN as u64,
            flushed: 0,
            buf,
            records: 0,
            max_seq: 0,
            index,
            keys: Vec::new(),
            stats: MemberStats::default(),
        });
        Ok(())
    }

    fn close_current(&mut self, doc_hwm: u64) -> Result<()> {
        let Some(mut o) = self.cur.take() else {
            return Ok(());
        };
        let mut keys = std::mem::take(&mut o.keys);
        keys.sort_unstable_by_key(index::key);
        for k in keys {
            o.index.push(k)?;
            o.stats.add(&k);
        }
        let s = self.seq;
        self.seq += 1;
        let footer = SealPayload {
            records: o.records,
            max_seq: s,
            doc_hwm,
        };
        format::encode_record(&mut o.buf, s, Kind::Seal, 0, 0, 0, &footer.encode(), &[]);
        o.len += format::SEAL_RECORD_LEN as u64;
        o.max_seq = s;
        let r = o.flush();
        // A finished output waits for the commit without its buffer, so
        // memory does not grow with the number of outputs.
        o.buf = Vec::new();
        self.done.push(o);
        r
    }

    /// Removes every temporary output; the old segments were never touched.
    /// Removes every output: a compaction that fails before its commit
    /// point leaves nothing behind.
    pub fn discard(&mut self, opts: &Options) {
        let vfs = &*opts.vfs;
        for o in self.cur.take().into_iter().chain(self.done.drain(..)) {
            let _ = vfs.remove_file(&o.tmp);
            let idx_tmp = opts
                .dir
                .join(format!("{}{TMP_SUFFIX}", format::index_name(o.number)));
            let _ = vfs.remove_file(&idx_tmp);
        }
    }
}

/// Which compaction to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactMode {
    /// Merge only the members worth merging (docs/FORMAT.md §8.4), copying
    /// their kept records raw; `active.seg` is left alone.
    Selective,
    /// Rewrite the whole store, `active.seg` included (`compact --full`).
    Full,
}

/// How closely [`Store::compact_plan`](crate::Store::compact_plan) works out
/// the bytes a selective compaction would write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Estimate {
    /// The upper bound the manifest's figures give, at no cost.
    Figures,
    /// The exact bytes, from a walk of every index of the chosen members
    /// (what `compact --dry-run` shows).
    Exact,
}

/// A member whose reclaimable bytes are at least this share of its length
/// is merged: Bitcask's fragmentation threshold (`frag_threshold`, 40 %).
pub const DEAD_SHARE: f64 = 0.4;

/// A member with at least this many reclaimable bytes is merged whatever
/// its share (Bitcask's `dead_bytes_threshold`, 128 MiB).
pub const DEAD_BYTES: u64 = 128 << 20;

/// Header and footer: what every segment keeps however little it holds.
const FRAMING: u64 = (SEGMENT_HEADER_LEN + format::SEAL_RECORD_LEN) as u64;

/// What a selective compaction of `set` keeps, found by a walk of every
/// index: the kept records of the merged members in outputs of about the
/// segment size, and the figures of the members afterwards.
pub(crate) struct Walk {
    /// Each output's kept entries, in document order.
    outputs: Vec<Vec<Entry>>,
    /// Figures of the members once the outputs replace `set`.
    figures: Figures,
    /// Documents with a record kept.
    documents: u64,
}

impl Ctx<'_> {
    /// The members a selective compaction merges, by number: those whose
    /// reclaimable bytes (dead bytes less the framing every segment keeps)
    /// reach [`DEAD_SHARE`] of their length or [`DEAD_BYTES`], and the
    /// small ones (under a quarter of the segment size) when there are at
    /// least two to merge into fewer, or anything else is merged.
    ///
    /// `active.seg` counts as the member it becomes once sealed (its footer
    /// added), for its garbage only, so that a store that never reached the
    /// segment size is compacted too: when it is chosen, compaction seals
    /// it once the outputs are written.
    pub fn choose(&self, f: &Figures) -> Vec<u64> {
        let mut all: Vec<(u64, u64)> = self
            .reads
            .sealed
            .iter()
            .map(|s| (s.number, s.len))
            .collect();
        if self.active().records() > 0 {
            let sealed_len = self.active().len() + format::SEAL_RECORD_LEN as u64;
            all.push((self.active().number(), sealed_len));
        }
        let worth = |&(n, len): &(u64, u64)| {
            let r = len.saturating_sub(f.live_of(n) + FRAMING);
            r > 0 && (r as f64 >= DEAD_SHARE * len as f64 || r >= DEAD_BYTES)
        };
        let mut chosen: Vec<u64> = all.iter().filter(|m| worth(m)).map(|m| m.0).collect();
        // A small `active.seg` is only young: it is merged for its garbage,
        // never for its size.
        let small: Vec<u64> = all
            .iter()
            .filter(|m| m.1 < self.opts.segment_size / 4 && m.0 != self.active().number())
            .map(|m| m.0)
            .collect();
        // Small members are merged two or more at a time, or along with
        // anything else being merged: outputs are written anyway, and a lone
        // small one left out would pair with the new small tail next time.
        if small.len() >= 2 || (!chosen.is_empty() && !small.is_empty()) {
            chosen.extend(small);
        }
        // Sorted, because every user binary-searches it: `active.seg` comes
        // last in `all` but may be numbered below a compaction output.
        chosen.sort_unstable();
        chosen.dedup();
        chosen
    }

    /// What a compaction in `mode` would do (see `Store::compact_plan`).
    pub fn plan(&self, mode: CompactMode, estimate: Estimate) -> Result<CompactPlan> {
        let (sealed, active) = (self.reads.sealed, self.reads.active);
        let f = stats::current(sealed, active)?;
        let stats = stats::stats_from(sealed, self.active(), self.marks, &f);
        let reclaimable = stats.total_bytes - stats.live_bytes;
        let (merge, write_bytes, outputs) = match mode {
            CompactMode::Full => {
                let all: Vec<u64> = sealed.iter().map(|s| s.number).collect();
                (all, stats.live_bytes + FRAMING, 1)
            }
            CompactMode::Selective => {
                let set = self.choose(&f);
                if set.is_empty() {
                    (set, 0, 0)
                } else if estimate == Estimate::Exact {
                    let walk = self.walk(&set, self.next_number)?;
                    let bytes = walk.outputs.iter().map(|o| output_len(o)).sum();
                    let n = walk.outputs.len();
                    (set, bytes, n)
                } else {
                    let live: u64 = set.iter().map(|&n| f.live_of(n)).sum();
                    (set, live + FRAMING, 1)
                }
            }
        };
        let len_of = |n: u64| sealed.get(n).map_or(0, |s| s.len);
        let active = self.active().number();
        let len_of = |n: u64| {
            if n == active {
                self.active().len() + format::SEAL_RECORD_LEN as u64
            } else {
                len_of(n)
            }
        };
        let mut merge_bytes: u64 = merge.iter().map(|&n| len_of(n)).sum();
        let mut merge_names: Vec<String> = merge
            .iter()
            .map(|&n| {
                if n == active {
                    format::ACTIVE_NAME.to_owned()
                } else {
                    format::segment_name(n)
                }
            })
            .collect();
        if mode == CompactMode::Full {
            merge_bytes += self.active().len();
            merge_names.push(format::ACTIVE_NAME.to_owned());
        }
        let counted = sealed
            .manifest()
            .and_then(crate::engine::live::of_manifest)
            .is_some();
        Ok(CompactPlan {
            counted,
            segments: sealed.len() + 1,
            bytes_before: file_bytes(self.opts, sealed, self.active()),
            live_bytes: stats.live_bytes,
            reclaimable_bytes: reclaimable,
            garbage_ratio: stats.garbage_ratio,
            full: mode == CompactMode::Full,
            merge: merge_names,
            merge_bytes,
            write_bytes,
            outputs,
        })
    }

    /// Writes the outputs of a selective compaction of the members in
    /// `set`, numbered from `base`, after a space check. With `seal_later`,
    /// the seal footer's seq is set aside. Returns the outputs, the bytes
    /// they hold and the documents they keep; on failure the outputs are
    /// gone.
    pub fn write_selective(
        &self,
        set: &[u64],
        base: u64,
        seal_later: bool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(Outputs, u64, u64)> {
        let walk = self.walk(set, base)?;
        let documents = walk.documents;
        let needed: u64 = walk.outputs.iter().map(|o| output_len(o)).sum();
        let space = needed + needed / 2 + (1 << 20);
        let dir = &self.opts.dir;
        let available = self.opts.vfs.available_space(dir).io("statvfs", dir)?;
        if available < space {
            return Err(Error::NoSpace {
                path: dir.clone(),
                needed: space,
                available,
            });
        }
        let mut out = Outputs {
            figures: walk.figures,
            base,
            done: Vec::new(),
            cur: None,
            seq: self.marks.next_seq + u64::from(seal_later),
        };
        let total = needed.max(1);
        let mut written = 0u64;
        let result = self.reads.with_readahead(|| {
            for kept in walk.outputs {
                written += output_len(&kept);
                self.copy_raw(kept, &mut out)?;
                progress(Progress {
                    done: written.min(total),
                    total,
                });
            }
            Ok(())
        });
        if let Err(e) = result {
            out.discard(self.opts);
            return Err(e);
        }
        Ok((out, needed, documents))
    }

    /// Walks every index in document order and decides, by the rule of
    /// docs/FORMAT.md §8.4, which records of the members in `set` are kept;
    /// cuts them into outputs numbered from `base`.
    pub fn walk(&self, set: &[u64], base: u64) -> Result<Walk> {
        let merged = |seg: u64| set.binary_search(&seg).is_ok();
        let active = self.active().number();
        let mut outputs: Vec<Vec<Entry>> = Vec::new();
        let mut cur: Vec<Entry> = Vec::new();
        let mut cur_len = FRAMING;
        let mut figures = Figures::default();
        let mut documents = 0u64;
        let mut merge = self.reads.merge()?;
        while let Some(entries) = merge.next_doc()? {
            if entries.iter().all(|e| !merged(e.seg)) {
                // Untouched: its figures stay what they are, but the whole
                // set of figures is rebuilt here, so count them again.
                let members: Vec<Entry> = entries
                    .iter()
                    .filter(|e| e.seg != active)
                    .copied()
                    .collect();
                figures.account(&members, true);
                continue;
            }
            let view = resolve(&entries);
            let keep = crate::engine::live::keep(&entries, view.as_ref(), &|_, e| !merged(e.seg));
            let number = base + outputs.len() as u64;
            let mut after = Vec::with_capacity(entries.len());
            let keep_any = entries
                .iter()
                .zip(&keep)
                .any(|(e, &k)| k && merged(e.seg) && e.doc < format::KEY_SPACE);
            for (e, k) in entries.iter().zip(keep) {
                if e.doc >= format::KEY_SPACE {
                    continue;
                }
                if !merged(e.seg) {
                    if e.seg != active {
                        after.push(*e);
                    }
                } else if k {
                    cur_len += u64::from(e.len);
                    cur.push(*e);
                    // A stand-in position, unique in the output: the figures
                    // tell records apart by where they are.
                    after.push(Entry {
                        seg: number,
                        offset: cur_len,
                        ..*e
                    });
                }
            }
            figures.account(&after, true);
            if keep_any {
                documents += 1;
            }
            if cur_len >= self.opts.segment_size {
                outputs.push(std::mem::take(&mut cur));
                cur_len = FRAMING;
            }
        }
        let others = self.reads.sealed.iter().any(|s| !merged(s.number));
        if !cur.is_empty() || (outputs.is_empty() && !others) {
            // When nothing else would remain, one output even if empty: some
            // member's footer carries the document high-water mark.
            outputs.push(cur);
        }
        Ok(Walk {
            outputs,
            figures,
            documents,
        })
    }

    /// Writes one output: `kept` in sequence order (§5.7 rule 2), each record
    /// copied as it is on disk once its CRC checks; a batch record loses its
    /// `BATCH` flag (it is committed, and an output has no `Commit`).
    fn copy_raw(&self, mut kept: Vec<Entry>, out: &mut Outputs) -> Result<()> {
        kept.sort_unstable_by_key(|e| e.seq);
        out.ensure(self.opts, self.store_id)?;
        let cur = out
            .cur
            .as_mut()
            .ok_or_else(|| Error::internal("no output"))?;
        let mut entries: Vec<IndexEntry> = Vec::with_capacity(kept.len());
        for e in &kept {
            let offset = cur.len;
            let flags = e.flags & !FLAG_BATCH;
            let key = self.with_raw(e, &mut |raw, h, payload| {
                if h.flags == flags {
                    cur.buf.extend_from_slice(raw);
                } else {
                    format::encode_record(
                        &mut cur.buf,
                        h.seq,
                        h.kind,
                        flags,
                        h.doc,
                        h.node,
                        payload,
                        &[],
                    );
                }
                Ok((h.kind == Kind::DocPut)
                    .then(|| format::doc_key(payload, h.flags).map(format::key_slot))
                    .flatten())
            })?;
            let entry = IndexEntry {
                doc: e.doc,
                node: e.node,
                seq: e.seq,
                offset,
                aux: e.aux,
                len: e.len,
                kind: e.kind,
                flags,
            };
            entries.push(entry);
            if let Some(slot) = key {
                entries.push(IndexEntry {
                    doc: slot,
                    node: e.doc,
                    aux: 0,
                    ..entry
                });
            }
            cur.len += u64::from(e.len);
            cur.records += 1;
            cur.max_seq = cur.max_seq.max(e.seq);
            if cur.buf.len() >= 1 << 20 {
                cur.flush()?;
            }
        }
        entries.sort_unstable_by_key(index::key);
        for e in entries {
            cur.index.push(e)?;
            cur.stats.add(&e);
        }
        out.close_current(self.marks.doc_hwm)
    }

    /// Calls `f` with the raw bytes of the sealed record `e` points at, its
    /// header and payload, once they check against `e` and their CRC.
    fn with_raw<T>(&self, e: &Entry, f: &mut RawRecordFn<'_, T>) -> Result<T> {
        let r = self.with_raw_once(e, f);
        if let Err(Error::Corrupt { .. }) = &r
            && let Some(s) = self.reads.sealed.get(e.seg)
        {
            // Perhaps the index that named this record is stale: then the
            // segment answers from a scan and the caller starts again.
            self.reads.sealed.index_miss(s, e)?;
        }
        r
    }

    fn with_raw_once<T>(&self, e: &Entry, f: &mut RawRecordFn<'_, T>) -> Result<T> {
        if e.seg == self.active().number() {
            // Checked by CRC as it is read; its bytes are encoded again
            // exactly as they were.
            let (h, payload) = self
                .reads
                .active
                .segment(e.seg)
                .ok_or_else(|| Error::internal("entry for an unknown active segment"))?
                .read(e)?;
            let mut raw = Vec::with_capacity(e.len as usize);
            format::encode_record(
                &mut raw,
                h.seq,
                h.kind,
                h.flags,
                h.doc,
                h.node,
                &payload,
                &[],
            );
            return f(&raw, &h, &payload);
        }
        let s = self
            .reads
            .sealed
            .get(e.seg)
            .ok_or_else(|| Error::internal("entry for an unknown segment"))?;
        let max = format::RECORD_HEADER_LEN as u64 + u64::from(MAX_PAYLOAD);
        if u64::from(e.len) > max
            || (e.len as usize) < RECORD_HEADER_LEN
            || e.offset
                .checked_add(u64::from(e.len))
                .is_none_or(|end| end > s.len)
        {
            return Err(Error::corrupt(
                &s.path,
                e.offset,
                "index entry points outside its segment",
            ));
        }
        self.reads.sealed.with_raw(s, e, |raw| {
            let (h, payload) = format::decode_record(raw)
                .map_err(|why| Error::corrupt(&s.path, e.offset, why.to_string()))?;
            if (h.doc, h.node, h.seq, h.kind) != (e.doc, e.node, e.seq, e.kind)
                || h.total_len() != u64::from(e.len)
            {
                return Err(Error::corrupt(
                    &s.path,
                    e.offset,
                    "record does not match its index entry",
                ));
            }
            f(&raw[..e.len as usize], &h, payload)
        })
    }
}

/// What [`Store::with_raw`] calls: the record's bytes, header and payload.
type RawRecordFn<'a, T> = dyn FnMut(&[u8], &format::RecordHeader, &[u8]) -> Result<T> + 'a;

/// Bytes of an output holding `kept`.
fn output_len(kept: &[Entry]) -> u64 {
    FRAMING + kept.iter().map(|e| u64::from(e.len)).sum::<u64>()
}
