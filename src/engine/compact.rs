//! Compaction (and the whole-store accounting `stats` and `--dry-run` use).
//!
//! # Protocol (see docs/FORMAT.md §Compaction)
//! 1. Check free space against the live bytes.
//! 2. Stream a merge of all segment indexes (the active segment's in-memory
//!    one included) in document order; write each live document (its newest
//!    record, its live nodes with their newest outputs folded in) to
//!    `seg_M.seg.stratum-tmp`, `seg_M+1…`, with fresh sequence numbers.
//!    Tombstones and dead versions are not copied. Every output carries the
//!    store's document-id high-water mark. Nothing visible has changed yet:
//!    a compaction refused here (a damaged record, a full disk, a directory
//!    it may not write) removes its temporary files and leaves the store as
//!    it was.
//! 3. Seal `active.seg`, so every old record is in a sealed segment that the
//!    new generation supersedes (its number, and the sequence number of its
//!    footer, were set aside below the outputs' at step 2).
//! 4. Stamp each output's header with the generation (base M, count K),
//!    fsync each, rename each into place, write their indexes, fsync the
//!    directory: the commit point. A generation counts only when all K
//!    members are present, so a crash before this leaves the old state.
//! 5. Remove the old segments and their indexes, fsync the directory.
//! 6. Start a new `active.seg`.
//!
//! Memory stays flat: one document's records at a time, one index block per
//! input, a 1 MiB write buffer per output.

use std::path::PathBuf;

use crate::engine::format::{
    self, DocFields, FLAG_EXTENDED, IndexEntry, IndexHeader, Kind, MAX_PAYLOAD, RECORD_HEADER_LEN,
    SEG_FLAG_COMPACTED, SEGMENT_HEADER_LEN, SealPayload, SegmentHeader, TMP_SUFFIX,
};
use crate::engine::index::{self, IndexWriter};
use crate::engine::segment::Sealed;
use crate::engine::store::{DocView, Progress, SegmentStats, Stats, Store, resolve};
use crate::engine::vfs::VFile;
use crate::error::{Error, Result};

/// What a compaction would do, computed from the indexes alone.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactPlan {
    /// Segment files now (the active one included).
    pub segments: usize,
    /// Bytes of segment and index files now.
    pub bytes_before: u64,
    /// Estimated bytes of live records (what compaction keeps).
    pub live_bytes: u64,
    /// Bytes compaction would reclaim (estimate).
    pub reclaimable_bytes: u64,
    /// `reclaimable / before`, 0 for an empty store.
    pub garbage_ratio: f64,
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

impl Store {
    /// Bytes of segment and index files on disk now.
    fn file_bytes(&self) -> u64 {
        let size = |p: &std::path::Path| {
            self.opts
                .vfs
                .open_read(p)
                .and_then(|f| f.len())
                .unwrap_or(0)
        };
        let idx: u64 = self.sealed.iter().map(|s| size(&s.idx_path())).sum();
        let checkpoint = size(&self.opts.dir.join(format::ACTIVE_INDEX_NAME));
        self.total_bytes() + idx + checkpoint
    }

    /// What [`Store::compact`] would reclaim, without changing anything.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Io`].
    pub fn compact_plan(&self) -> Result<CompactPlan> {
        let mut live = 0u64;
        let mut merge = self.merge()?;
        while let Some(entries) = merge.next_doc()? {
            if let Some(view) = resolve(&entries) {
                live += live_size(&view);
            }
        }
        // Garbage is measured on the segments alone, less the framing that
        // every segment keeps (header, footer): index files shrink and grow
        // with the records, so counting them would make a freshly compacted
        // store look a tenth garbage, and a nightly `--min-garbage 0.1`
        // recompact it forever.
        let segments = self.sealed.len() as u64 + 1;
        let framing = segments * (format::SEGMENT_HEADER_LEN + format::SEAL_RECORD_LEN) as u64;
        let seg_bytes = self.total_bytes();
        let reclaimable = seg_bytes.saturating_sub(live + framing);
        Ok(CompactPlan {
            segments: segments as usize,
            bytes_before: self.file_bytes(),
            live_bytes: live,
            reclaimable_bytes: reclaimable,
            garbage_ratio: if seg_bytes == 0 {
                0.0
            } else {
                reclaimable as f64 / seg_bytes as f64
            },
        })
    }

    /// Merges all segments into new ones holding only live data; see the
    /// module docs for the crash-safe protocol.
    ///
    /// # Errors
    /// [`Error::NoSpace`] when the live data would not fit (nothing changed);
    /// [`Error::Corrupt`] when a record it must copy is damaged (nothing
    /// changed); [`Error::Io`].
    pub fn compact(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<CompactReport> {
        // A failed pass changes nothing, so one that met a stale index file
        // (see `engine::stale`) starts again on the segment's scan.
        self.retry_stale_mut(|store| store.compact_once(progress))
    }

    fn compact_once(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<CompactReport> {
        let bytes_before = self.file_bytes();
        let segments_before = self.sealed.len() + 1;
        // Sealed only once every output is written (see the module docs), so
        // a compaction that fails changes nothing; the seal footer's
        // sequence number and the number of the empty active segment that
        // follows the seal are set aside.
        let seal_later = self.active.records > 0;
        let plan = self.compact_plan()?;
        // Live records plus their index (48 bytes per record of at least 36)
        // plus slack.
        let needed = plan.live_bytes + plan.live_bytes / 2 + (1 << 20);
        let available = self
            .opts
            .vfs
            .available_space(&self.opts.dir)
            .map_err(|e| Error::io("statvfs", &self.opts.dir, e))?;
        if available < needed {
            return Err(Error::NoSpace {
                path: self.opts.dir.clone(),
                needed,
                available,
            });
        }
        let base = self.next_segment_number() + u64::from(seal_later);
        let mut out = Outputs {
            base,
            done: Vec::new(),
            cur: None,
            seq: self.next_seq + u64::from(seal_later),
        };
        let total = plan.live_bytes.max(1);
        let mut written = 0u64;
        let mut documents = 0u64;
        let result = self.with_readahead(|| {
            let mut merge = self.merge()?;
            while let Some(entries) = merge.next_doc()? {
                let Some(view) = resolve(&entries) else {
                    continue;
                };
                out.ensure(self)?;
                self.copy_doc(&view, &mut out)?;
                documents += 1;
                written += live_size(&view);
                progress(Progress {
                    done: written.min(total),
                    total,
                });
                if out
                    .cur
                    .as_ref()
                    .is_some_and(|c| c.len >= self.opts.segment_size)
                {
                    out.close_current(self)?;
                }
            }
            out.ensure(self)?;
            out.close_current(self)
        });
        if let Err(e) = result.and_then(|()| if seal_later { self.seal() } else { Ok(()) }) {
            out.discard(self);
            return Err(e);
        }
        self.commit_outputs(out, bytes_before, segments_before, documents)
    }

    fn copy_doc(&self, view: &DocView, out: &mut Outputs) -> Result<()> {
        let doc = self.read_doc_record(&view.doc)?;
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
            let node = self.read_node(input, output.as_ref(), view.metas.get(n))?;
            let out_text = node.output.as_ref().map(|j| j.as_str());
            let meta = node.meta.as_ref().map(|j| j.as_str());
            // Fold the output into the input's record, unless together they
            // would pass the record size limit: then it keeps its own.
            let folded = 8
                + node.input.as_str().len()
                + meta.map_or(0, str::len)
                + out_text.map_or(0, str::len)
                <= MAX_PAYLOAD as usize;
            let (prefix, rest, flags) =
                format::encode_input(node.input.as_str(), meta, out_text.filter(|_| folded));
            let (doc, n) = (view.doc.doc, input.node);
            cur.push(
                &mut out.seq,
                Kind::InputPut,
                flags,
                doc,
                n,
                0,
                &prefix,
                rest,
            )?;
            if let Some(text) = out_text.filter(|_| !folded) {
                let flags = if text == "null" { FLAG_EXTENDED } else { 0 };
                cur.push(
                    &mut out.seq,
                    Kind::OutputPut,
                    flags,
                    doc,
                    n,
                    0,
                    text.as_bytes(),
                    &[],
                )?;
            }
        }
        Ok(())
    }

    fn commit_outputs(
        &mut self,
        mut out: Outputs,
        bytes_before: u64,
        segments_before: usize,
        documents: u64,
    ) -> Result<CompactReport> {
        let vfs = self.opts.vfs.clone();
        let dir = self.opts.dir.clone();
        // Each output is durable before it is renamed into place.
        for o in &out.done {
            if let Err(e) = o
                .file
                .sync_data()
                .map_err(|e| Error::io("fsync", &o.tmp, e))
            {
                out.discard(self);
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
                out.discard(self);
                return Err(Error::io("rename", &dest, e));
            }
            renamed.push(dest);
        }
        // From here a failure leaves extra files of this store, which the
        // next write open removes (docs/FORMAT.md §8.4).
        let bind = self.binding(format::FORMAT_VERSION);
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
                    doc_hwm: self.doc_hwm,
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
                doc_hwm: self.doc_hwm,
                generation: Some((o.number, 1)),
                handle: crate::engine::segment::Handle::ready(o.file, index),
                member: None,
                lazy: None,
            });
        }
        let next_number = out.base + members.len() as u64;
        let max_seq = out.seq - 1;
        let doc_hwm = self.doc_hwm;
        let m = self
            .manifest
            .as_mut()
            .ok_or_else(|| Error::internal("compaction of a store without a manifest"))?;
        m.members = members;
        m.next_number = m.next_number.max(next_number);
        m.max_seq = m.max_seq.max(max_seq);
        m.doc_hwm = doc_hwm;
        m.counters = [format::UNKNOWN; 4];
        // The outputs and their indexes are durable under their names before
        // the manifest that lists them can be.
        self.sync_dir()?;
        // The commit point: the old members become extra files.
        self.write_manifest()?;
        let old = std::mem::replace(&mut self.sealed, new_sealed);
        for s in &old {
            for p in [s.path.clone(), s.idx_path()] {
                match vfs.remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove", &p, e)),
                }
            }
        }
        self.sync_dir()?;
        self.next_seq = out.seq;
        Ok(CompactReport {
            bytes_before,
            bytes_after: self.file_bytes(),
            segments_before,
            segments_after: self.sealed.len() + 1,
            documents,
        })
    }
}

/// One compaction output being written.
struct Output {
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
    stats: crate::engine::manifest::MemberStats,
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
            .map_err(|e| Error::io("write", &self.tmp, e))?;
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

struct Outputs {
    base: u64,
    done: Vec<Output>,
    cur: Option<Output>,
    seq: u64,
}

impl Outputs {
    fn ensure(&mut self, store: &Store) -> Result<()> {
        if self.cur.is_some() {
            return Ok(());
        }
        let number = self.base + self.done.len() as u64;
        let vfs = &*store.opts.vfs;
        let tmp = store
            .opts
            .dir
            .join(format!("{}{TMP_SUFFIX}", format::segment_name(number)));
        let _ = vfs.remove_file(&tmp);
        let file = vfs
            .create_new(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        let header = SegmentHeader::v2(number, store.store_id(), SEG_FLAG_COMPACTED);
        let mut buf = Vec::with_capacity(1 << 20);
        buf.extend_from_slice(&header.encode());
        let index = IndexWriter::create(vfs, &store.opts.dir, format::index_name(number))?;
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
            stats: crate::engine::manifest::MemberStats::default(),
        });
        Ok(())
    }

    fn close_current(&mut self, store: &Store) -> Result<()> {
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
            doc_hwm: store.doc_hwm,
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
    fn discard(&mut self, store: &Store) {
        let vfs = &*store.opts.vfs;
        for o in self.cur.take().into_iter().chain(self.done.drain(..)) {
            let _ = vfs.remove_file(&o.tmp);
            let idx_tmp = store
                .opts
                .dir
                .join(format!("{}{TMP_SUFFIX}", format::index_name(o.number)));
            let _ = vfs.remove_file(&idx_tmp);
        }
    }
}

/// Whole-store figures for `stats`.
pub(crate) fn stats(store: &Store) -> Result<Stats> {
    let mut segs: Vec<SegmentStats> = store
        .sealed
        .iter()
        .map(|s| SegmentStats {
            name: format::segment_name(s.number),
            bytes: s.len,
            live_bytes: 0,
            dead_bytes: 0,
        })
        .collect();
    segs.push(SegmentStats {
        name: format::ACTIVE_NAME.to_owned(),
        bytes: store.active.len,
        live_bytes: 0,
        dead_bytes: 0,
    });
    let slot = |seg: u64| -> usize {
        store
            .sealed
            .binary_search_by_key(&seg, |s| s.number)
            .unwrap_or(store.sealed.len())
    };
    let (mut documents, mut inputs, mut outputs, mut tombstones) = (0u64, 0u64, 0u64, 0u64);
    let mut merge = store.merge()?;
    while let Some(entries) = merge.next_doc()? {
        tombstones += entries
            .iter()
            .filter(|e| matches!(e.kind, Kind::DocDelete | Kind::InputDelete))
            .count() as u64;
        let Some(view) = resolve(&entries) else {
            continue;
        };
        documents += 1;
        segs[slot(view.doc.seg)].live_bytes += u64::from(view.doc.len);
        for (input, output) in view.nodes.values() {
            inputs += 1;
            segs[slot(input.seg)].live_bytes += u64::from(input.len);
            if let Some(o) = output {
                outputs += 1;
                if o.offset != input.offset || o.seg != input.seg {
                    segs[slot(o.seg)].live_bytes += u64::from(o.len);
                }
            }
        }
        // A node's newest meta, when a NodeMetaPut replaced its input's own,
        // is live data too (compaction copies it).
        for m in view.metas.values() {
            segs[slot(m.seg)].live_bytes += u64::from(m.len);
        }
    }
    for s in &mut segs {
        s.dead_bytes = s.bytes.saturating_sub(s.live_bytes);
    }
    let total_bytes: u64 = segs.iter().map(|s| s.bytes).sum();
    let live_bytes: u64 = segs.iter().map(|s| s.live_bytes).sum();
    Ok(Stats {
        segments: segs,
        documents,
        inputs,
        outputs,
        tombstones,
        total_bytes,
        live_bytes,
        garbage_ratio: if total_bytes == 0 {
            0.0
        } else {
            1.0 - live_bytes as f64 / total_bytes as f64
        },
        last_seq: store.next_seq - 1,
        doc_id_high_water: store.doc_hwm,
        format_version: store.format_version(),
        last_compaction: last_compaction(store),
    })
}

/// The compaction outputs still on disk: the first one's name and how many
/// there are. In format 2 every member compaction wrote carries the flag;
/// in format 1 the newest generation says the same.
fn last_compaction(store: &Store) -> Option<(String, u32)> {
    if store.manifest.is_none() {
        return store
            .sealed
            .iter()
            .filter_map(|s| s.generation)
            .max()
            .map(|(base, count)| (format::segment_name(base), count));
    }
    let outputs: Vec<u64> = store
        .sealed
        .iter()
        .filter(|s| s.generation.is_some())
        .map(|s| s.number)
        .collect();
    let first = outputs.iter().min()?;
    Some((format::segment_name(*first), outputs.len() as u32))
}
