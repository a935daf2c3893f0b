//! The active segment: appends, atomic batches, and sealing.
//!
//! # Write protocol (see docs/FORMAT.md §Write path)
//! A write is encoded into a buffer, written at the end of `active.seg`, and
//! (unless `--no-sync`) `fdatasync`ed before the command reports success. A
//! batch writes its records with `FLAG_BATCH`, flushing the buffer as it
//! fills, and becomes visible to replay only when its `Commit` record is
//! durable. A failed write truncates the file back to where it started.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::engine::format::{
    self, ACTIVE_INDEX_NAME, ACTIVE_NAME, FLAG_BATCH, IndexEntry, IndexHeader, Kind, MAX_PAYLOAD,
    Member, RECORD_HEADER_LEN, SealPayload, SegmentHeader, TMP_SUFFIX,
};
use crate::engine::index::{self, Entry, IndexWriter, SealedIndex};
use crate::engine::live::Figures;
use crate::engine::segment::{self, Sealed};
use crate::engine::store::{Mode, Store};
use crate::engine::vfs::VFile;
use crate::error::{Error, IoContext, Result};

/// Flush a batch's buffer to the file once it holds this much.
const BATCH_FLUSH: usize = 1 << 20;

/// Checkpoint the active segment's index once this many bytes were appended
/// since the last checkpoint, so that opening replays at most about this
/// much of `active.seg` however large the segment threshold is.
const CHECKPOINT_BYTES: u64 = 4 << 20;

/// The active segment's state: its file and an in-memory hash index of the
/// records it holds.
pub(crate) struct Active {
    pub number: u64,
    /// Format version of its header.
    pub version: u16,
    pub path: PathBuf,
    /// `None` only in a read-only open of a store without `active.seg`.
    pub file: Option<Box<dyn VFile>>,
    /// Logical end: on disk plus buffered.
    pub len: u64,
    /// End of what has been written to the file.
    pub flushed: u64,
    /// Encoded records not yet written.
    pub wbuf: Vec<u8>,
    /// Entries by document, for records after `prefix_len`.
    pub map: HashMap<u64, Vec<IndexEntry>>,
    /// Committed data records in the whole segment.
    pub records: u64,
    /// The checkpointed index (`active.idx`) of the records before
    /// `prefix_len`, when there is one.
    pub prefix: Option<SealedIndex>,
    /// End of the part of the segment `prefix` covers.
    pub prefix_len: u64,
}

/// What to restore if a batch is rolled back.
pub(crate) struct BatchState {
    pub start: u64,
    next_seq: u64,
    doc_hwm: u64,
    pub records: u64,
    /// Set once the batch outgrew `active.seg` (src/engine/spill.rs).
    pub spill: Option<Spill>,
}

/// A batch written to segment files of its own.
pub(crate) struct Spill {
    /// `active.seg` as it was before the batch, set aside (still serving
    /// reads) while `Store::active` stands for the file being written.
    pub parked: Active,
    /// Manifest entries of the files sealed so far (in the sealed set, not
    /// yet in the manifest).
    pub members: Vec<Member>,
    /// The members' figures once those files are members; `None` when the
    /// manifest's are not known.
    pub figures: Option<Figures>,
}

impl Active {
    pub fn empty(number: u64, path: PathBuf) -> Active {
        Active {
            number,
            version: format::FORMAT_VERSION,
            path,
            file: None,
            len: format::SEGMENT_HEADER_LEN as u64,
            flushed: format::SEGMENT_HEADER_LEN as u64,
            wbuf: Vec::new(),
            map: HashMap::new(),
            records: 0,
            prefix: None,
            prefix_len: format::SEGMENT_HEADER_LEN as u64,
        }
    }

    /// Entries after the checkpoint, sorted by key.
    pub fn sorted_entries(&self) -> Vec<IndexEntry> {
        let mut all: Vec<IndexEntry> = self.map.values().flatten().copied().collect();
        all.sort_unstable_by_key(index::key);
        all
    }

    /// Reads the record `e` points at, from the file or from the unflushed
    /// buffer.
    pub fn read(&self, e: &Entry) -> Result<(format::RecordHeader, Vec<u8>)> {
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
}

/// Creates a fresh `active.seg` numbered `number`: written under a temporary
/// name, fsynced, renamed, and the directory fsynced, so `active.seg` never
/// exists with a partial header. Synced even with `--no-sync`: the new
/// file's name must not outlive a power loss that its header did not.
/// `store_id` 0 writes a format-1 header (only while a format-1 store is
/// being upgraded); otherwise a format-2 header with that id.
pub(crate) fn create_active(
    store_dir: &std::path::Path,
    vfs: &dyn crate::engine::vfs::Vfs,
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

impl Store {
    /// Appends one record. Outside a batch it is durable when this returns.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn append_flags(
        &mut self,
        kind: Kind,
        doc: u64,
        node: u64,
        aux: u64,
        flags: u8,
        a: &[u8],
        b: &[u8],
    ) -> Result<()> {
        // A DocPut's key gets a key entry beside its own (FORMAT.md §7.6).
        let key = if kind == Kind::DocPut {
            let mut p = Vec::with_capacity(a.len());
            p.extend_from_slice(a);
            format::doc_key(&p, flags).map(format::key_slot)
        } else {
            None
        };
        self.check_writable()?;
        let payload = a.len() + b.len();
        if payload > MAX_PAYLOAD as usize {
            return Err(Error::invalid(format!(
                "a record of {payload} bytes exceeds the limit of {MAX_PAYLOAD} bytes"
            )));
        }
        let total = (RECORD_HEADER_LEN + payload) as u64;
        if self.batch.is_none() {
            self.maybe_seal(total)?;
        } else {
            self.make_room_in_batch(total)?;
        }
        // A spilled batch's files are committed by the manifest, not by a
        // `Commit` record.
        let flags = if self.batch.as_ref().is_some_and(|b| b.spill.is_none()) {
            flags | FLAG_BATCH
        } else {
            flags
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let offset = self.active.len;
        format::encode_record(&mut self.active.wbuf, seq, kind, flags, doc, node, a, b);
        self.active.len += total;
        let entry = IndexEntry {
            doc,
            node,
            seq,
            offset,
            aux,
            len: total as u32,
            kind,
            flags,
        };
        self.active.map.entry(doc).or_default().push(entry);
        if let Some(slot) = key {
            self.active.map.entry(slot).or_default().push(IndexEntry {
                doc: slot,
                node: doc,
                aux: 0,
                ..entry
            });
        }
        self.active.records += 1;
        if kind == Kind::DocPut {
            self.doc_hwm = self.doc_hwm.max(doc);
        }
        if self.batch.is_none() {
            self.flush()?;
            if let Err(e) = self.sync_active() {
                // Not acknowledged, so not kept: cut the record off again
                // (best effort) rather than let it reappear at the next open.
                if let Some(f) = self.active.file.as_deref() {
                    let _ = f.set_len(offset);
                }
                return Err(e);
            }
            self.maybe_checkpoint();
        } else if self.active.wbuf.len() >= BATCH_FLUSH {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffer to the file. On failure the file is cut back to its
    /// last good end, so a full disk leaves no partial record behind.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.active.wbuf.is_empty() {
            return Ok(());
        }
        let file = self.active.file()?;
        if let Err(e) = file.write_all_at(&self.active.wbuf, self.active.flushed) {
            let _ = file.set_len(self.active.flushed);
            self.poisoned = true;
            return Err(Error::io("write", &self.active.path, e));
        }
        self.active.flushed = self.active.len;
        self.active.wbuf.clear();
        Ok(())
    }

    /// fdatasync of `active.seg` after an append, unless `--no-sync`. A
    /// failure is reported, never retried: after a failed fsync the kernel
    /// may have dropped the dirty pages. It also poisons the store.
    pub(crate) fn sync_active(&mut self) -> Result<()> {
        if self.opts.sync {
            self.fsync_active()?;
        }
        Ok(())
    }

    /// fdatasync of `active.seg` whatever `--no-sync` says: sealing depends
    /// on it for the order of what reaches the disk, not only durability.
    pub(crate) fn fsync_active(&mut self) -> Result<()> {
        let r = self
            .active
            .file()?
            .sync_data()
            .io("fsync", &self.active.path);
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    /// Reads the record an active-segment entry points at, from `active.seg`
    /// or the one a spilled batch set aside.
    pub(crate) fn read_active(&self, e: &Entry) -> Result<(format::RecordHeader, Vec<u8>)> {
        self.active_of(e.seg)
            .ok_or_else(|| Error::internal("entry for an unknown active segment"))?
            .read(e)
    }

    fn maybe_seal(&mut self, incoming: u64) -> Result<()> {
        if self.active.records > 0 && self.active.len + incoming > self.opts.segment_size {
            self.seal()?;
        }
        Ok(())
    }

    /// Seals `active.seg` as `seg_N.seg` with a footer and an index file, and
    /// starts a fresh `active.seg`. See docs/FORMAT.md §Sealing.
    pub(crate) fn seal(&mut self) -> Result<()> {
        self.seal_counting(true)
    }

    /// [`Store::seal`]; `count` false leaves the manifest's figures "not
    /// known" instead of working them out (compaction, which replaces them
    /// at once).
    pub(crate) fn seal_counting(&mut self, count: bool) -> Result<()> {
        // The members' figures once this segment is one are the whole
        // store's now. They are a cache: when they cannot be had (a damaged
        // index), they are written "not known" and `stats` merges instead.
        let figures = if count && self.manifest.is_some() {
            crate::engine::live::current(self).ok()
        } else {
            None
        };
        let seq = self.write_footer()?;
        let number = self.active.number;
        let dir = self.opts.dir.clone();
        let vfs = self.opts.vfs.clone();
        let seg_path = dir.join(format::segment_name(number));
        vfs.rename(&self.active.path, &seg_path)
            .io("rename", &seg_path)?;
        self.sync_dir()?;
        let seg_len = self.active.len;
        let version = self.active.version;
        let (member, index) = self.write_index(seq)?;
        // Above every number in use: compaction outputs may be numbered
        // above the active segment.
        let next_number = self.next_segment_number();
        let next = create_active(&dir, &*vfs, next_number, self.store_id())?;
        let old = std::mem::replace(&mut self.active, next);
        let file = old
            .file
            .ok_or_else(|| Error::internal("sealing without a file"))?;
        self.sealed.push(Sealed {
            number,
            version,
            path: seg_path,
            len: seg_len,
            max_seq: seq,
            doc_hwm: self.doc_hwm,
            generation: None,
            handle: crate::engine::segment::Handle::ready(file, index),
            member: None,
            lazy: None,
        });
        // Lookups binary-search by number; compaction outputs may be
        // numbered above the segment just sealed.
        self.sealed.sort_by_key(|s| s.number);
        // The commit point (docs/FORMAT.md §8.3 step 11).
        let doc_hwm = self.doc_hwm;
        if let Some(m) = self.manifest.as_mut() {
            m.members.push(member);
            m.members.sort_by_key(|x| x.number);
            m.active = next_number;
            m.next_number = m.next_number.max(next_number + 1);
            m.doc_hwm = doc_hwm;
            m.max_seq = seq;
            crate::engine::manifest::set_figures(m, figures.as_ref());
            self.write_manifest()?;
        }
        // The checkpoint described the segment just sealed; its own index
        // replaces it.
        let _ = vfs.remove_file(&dir.join(ACTIVE_INDEX_NAME));
        Ok(())
    }

    /// Appends the `Seal` footer to the file `Store::active` stands for and
    /// makes it durable; returns the footer's sequence number. Everything
    /// before the footer is durable before the footer is written: a footer
    /// may never survive a power loss that its segment's records did not.
    pub(crate) fn write_footer(&mut self) -> Result<u64> {
        self.flush()?;
        self.fsync_active()?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let footer = SealPayload {
            records: self.active.records,
            max_seq: seq,
            doc_hwm: self.doc_hwm,
        };
        format::encode_record(
            &mut self.active.wbuf,
            seq,
            Kind::Seal,
            0,
            0,
            0,
            &footer.encode(),
            &[],
        );
        self.active.len += format::SEAL_RECORD_LEN as u64;
        self.flush()?;
        self.fsync_active()?;
        Ok(seq)
    }

    /// Replaces the manifest with the in-memory one (serial one above). A
    /// failure poisons the store: membership on disk may now differ from
    /// memory.
    pub(crate) fn write_manifest(&mut self) -> Result<()> {
        let Some(m) = self.manifest.as_mut() else {
            return Err(Error::internal("no manifest to write"));
        };
        m.serial += 1;
        let r = crate::engine::manifest::write(&*self.opts.vfs, &self.opts.dir, m);
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    /// Writes the index file of the segment `Store::active` stands for,
    /// its footer (seq `seq`) written: its manifest entry and the index,
    /// read back.
    pub(crate) fn write_index(&self, seq: u64) -> Result<(Member, SealedIndex)> {
        let (vfs, dir) = (&*self.opts.vfs, &self.opts.dir);
        let (number, len, version) = (self.active.number, self.active.len, self.active.version);
        let bind = self.binding(version);
        let mut w = IndexWriter::create(vfs, dir, format::index_name(number))?;
        self.write_active_entries(&mut w)?;
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
                doc_hwm: self.doc_hwm,
            },
            true,
        )?;
        let path = dir.join(format::index_name(number));
        let index = index::reopen_written(vfs, path, number, len, bind)?;
        Ok((member, index))
    }

    /// Writes every entry of the active segment (checkpointed and not) to
    /// `w`, in key order.
    fn write_active_entries(&self, w: &mut IndexWriter) -> Result<()> {
        let tail = self.active.sorted_entries();
        match &self.active.prefix {
            Some(p) => {
                let mut c = p.cursor(Box::new(|| self.active.prefix_entries()))?;
                index::write_merged(w, Some(&mut c), &tail)
            }
            None => index::write_merged(w, None, &tail),
        }
    }

    /// Writes `active.idx` when enough was appended since the last one. Only
    /// in sync mode, where everything it points at is durable; and only as a
    /// cache: a failure here leaves the acknowledged write as it was.
    fn maybe_checkpoint(&mut self) {
        if !self.opts.sync
            || self.batch.is_some()
            || self.active.len - self.active.prefix_len < CHECKPOINT_BYTES
        {
            return;
        }
        let vfs = self.opts.vfs.clone();
        let dir = self.opts.dir.clone();
        let Ok(mut w) = IndexWriter::create(&*vfs, &dir, ACTIVE_INDEX_NAME.to_owned()) else {
            return;
        };
        let bind = self.binding(self.active.version);
        let header = IndexHeader {
            version: bind.version,
            store_id: bind.store_id,
            segment: self.active.number,
            segment_len: self.active.len,
            entries: 0,
            max_seq: self.next_seq - 1,
            doc_hwm: self.doc_hwm,
        };
        let written = self
            .write_active_entries(&mut w)
            .and_then(|()| w.finish(&*vfs, &dir, header, false));
        if written.is_err() {
            let _ = vfs.remove_file(&dir.join(format!("{ACTIVE_INDEX_NAME}{TMP_SUFFIX}")));
            return;
        }
        let path = dir.join(ACTIVE_INDEX_NAME);
        let len = self.active.len;
        if let Some((f, h)) =
            index::open_index_covering(&*vfs, &path, self.active.number, len..=len, bind)
                .ok()
                .flatten()
        {
            self.active.prefix = Some(SealedIndex::on_disk(path, f, h));
            self.active.prefix_len = len;
            self.active.map.clear();
        }
    }

    /// fsync of the data directory. Always done, `--no-sync` or not: it
    /// orders renames and removals, on which consistency rests.
    pub(crate) fn sync_dir(&mut self) -> Result<()> {
        let r = self
            .opts
            .vfs
            .sync_dir(&self.opts.dir)
            .io("fsync", &self.opts.dir);
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    /// Refuses writes on a read-only store, and on one whose in-memory state
    /// may be ahead of the file after a failed write.
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.mode != Mode::Write {
            return Err(Error::invalid(
                "the store was opened read-only: writes need Mode::Write",
            ));
        }
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        Ok(())
    }

    pub(crate) fn begin_batch(&mut self) -> Result<()> {
        if self.batch.is_some() {
            return Err(Error::internal("nested batch"));
        }
        self.check_writable()?;
        self.batch = Some(BatchState {
            start: self.active.len,
            next_seq: self.next_seq,
            doc_hwm: self.doc_hwm,
            records: self.active.records,
            spill: None,
        });
        Ok(())
    }

    pub(crate) fn commit_batch(&mut self) -> Result<()> {
        let Some(mut b) = self.batch.take() else {
            return Ok(());
        };
        if let Some(spill) = b.spill.take() {
            return self.commit_spilled(spill);
        }
        let count = self.active.records - b.records;
        if count == 0 {
            return Ok(());
        }
        // The batch's records are durable before its commit record is
        // written, so a commit never survives a power loss that one of its
        // records did not: a readable commit after an unreadable record is
        // damage, never a torn write.
        let seq = self.next_seq;
        self.next_seq += 1;
        let written = self
            .flush()
            .and_then(|()| self.sync_active())
            .and_then(|()| {
                format::encode_record(
                    &mut self.active.wbuf,
                    seq,
                    Kind::Commit,
                    0,
                    0,
                    0,
                    &count.to_le_bytes(),
                    &[],
                );
                self.active.len += (RECORD_HEADER_LEN + 8) as u64;
                self.flush()?;
                self.sync_active()
            });
        if let Err(e) = written {
            // Not acknowledged: cut the whole batch off again (best effort),
            // so the commit record cannot surface at the next open.
            self.active.wbuf.clear();
            if let Some(f) = self.active.file.as_deref() {
                let _ = f.set_len(b.start);
            }
            return Err(e);
        }
        // A large batch may leave the active segment over its threshold:
        // seal now so the next open reads an index, not the whole batch.
        if self.active.len > self.opts.segment_size {
            self.seal()?;
        } else {
            self.maybe_checkpoint();
        }
        Ok(())
    }

    pub(crate) fn rollback_batch(&mut self) -> Result<()> {
        let Some(mut b) = self.batch.take() else {
            return Ok(());
        };
        if let Some(spill) = b.spill.take() {
            // Sequence numbers stay where they are: the seal that started
            // the spill used some, and they only ever increase.
            self.doc_hwm = b.doc_hwm;
            return self.roll_back_spilled(spill);
        }
        self.active.wbuf.clear();
        if self.active.flushed > b.start {
            let file = self.active.file()?;
            file.set_len(b.start).io("truncate", &self.active.path)?;
            self.sync_active()?;
        }
        self.active.len = b.start;
        self.active.flushed = b.start;
        for v in self.active.map.values_mut() {
            v.retain(|e| e.offset < b.start);
        }
        self.active.map.retain(|_, v| !v.is_empty());
        self.active.records = b.records;
        self.next_seq = b.next_seq;
        self.doc_hwm = b.doc_hwm;
        Ok(())
    }
}
