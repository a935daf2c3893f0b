//! A batch that outgrows its segment: written as members of their own,
//! committed by the manifest (docs/FORMAT.md §8.2, steps S1–S6; crash table
//! in §8.6).
//!
//! A batch normally goes to `active.seg` and is committed by a `Commit`
//! record. A `load` or `apply` of gigabytes would then make one segment of
//! gigabytes, and hold an index entry of every record in memory until it
//! is sealed. Instead, once a batch would take `active.seg` past the segment
//! size, it *spills*:
//!
//! 1. the batch's records so far are copied (CRC-checked, without
//!    `FLAG_BATCH`) into a new segment file numbered above every member, and
//!    cut off `active.seg`, which is then exactly what it was before the
//!    batch; it is set aside, still serving reads of what it holds;
//! 2. the batch goes on in the new file, which is sealed with its footer and
//!    index whenever it reaches the segment size, and another one started;
//! 3. at commit the last one is sealed, and one manifest write lists them
//!    all: that write is the commit point; `active.seg` comes back.
//!
//! Until then the files are temporaries or extras of this store, which the
//! next write open removes (§8.5), so a crash or a failed batch leaves the
//! store's files as they were. Memory holds the entries of one segment,
//! whatever the batch's size. Reads inside the batch see its sealed files
//! (in the sealed set, with their document ranges), the one being written
//! (it stands in for `active.seg`) and `active.seg` set aside.

use crate::engine::active::{Active, Spill};
use crate::engine::format::{
    self, FLAG_BATCH, IndexEntry, KEY_SPACE, Kind, SegmentHeader, TMP_SUFFIX,
};
use crate::engine::index::Entry;
use crate::engine::segment::{Handle, Sealed};
use crate::engine::store::Store;
use crate::error::{Error, IoContext, Result};

impl Store {
    /// Before a batch appends `incoming` bytes: spills the batch, or seals
    /// the file it spills into, when it would pass the segment size.
    pub(crate) fn make_room_in_batch(&mut self, incoming: u64) -> Result<()> {
        if self.batch.is_none() || self.active.len + incoming <= self.opts.segment_size {
            return Ok(());
        }
        // Only a format-1 store opened read-only has no manifest, and it
        // takes no batch; were one to get here, it stays in `active.seg`.
        if self.manifest.is_none() {
            return Ok(());
        }
        if self.batch.as_ref().is_some_and(|b| b.spill.is_none()) {
            self.spill()?;
        }
        // The file the batch goes on in may be full already (the head just
        // copied into it, and this record).
        let Some(mut spill) = self.batch.as_mut().and_then(|b| b.spill.take()) else {
            return Err(Error::internal("a spilled batch without its state"));
        };
        let r = if self.active.records > 0 && self.active.len + incoming > self.opts.segment_size {
            self.seal_spilled(&mut spill)
                .and_then(|()| self.start_spill_file())
        } else {
            Ok(())
        };
        if let Some(b) = self.batch.as_mut() {
            b.spill = Some(spill);
        }
        r
    }

    /// Step 1 of the module docs.
    fn spill(&mut self) -> Result<()> {
        let Some(b) = self.batch.as_mut() else {
            return Err(Error::internal("spilling outside a batch"));
        };
        let (start, records) = (b.start, b.records);
        self.flush()?;
        let mut head: Vec<IndexEntry> = self
            .active
            .map
            .values()
            .flatten()
            .filter(|e| e.offset >= start && e.doc < KEY_SPACE)
            .copied()
            .collect();
        head.sort_unstable_by_key(|e| e.offset);
        let number = self.next_segment_number();
        if let Some(m) = self.manifest.as_mut() {
            m.next_number = m.next_number.max(number + 1);
        }
        let mut file = self.create_spill_file(number)?;
        let moved = self
            .copy_head(start, &head, &mut file)
            .and_then(|()| self.cut_head(start, records));
        if let Err(e) = moved {
            let _ = self.opts.vfs.remove_file(&file.path);
            return Err(e);
        }
        let figures = self
            .manifest
            .as_ref()
            .and_then(crate::engine::manifest::figures);
        let parked = std::mem::replace(&mut self.active, file);
        if let Some(b) = self.batch.as_mut() {
            b.spill = Some(Spill {
                parked,
                members: Vec::new(),
                figures,
            });
        }
        Ok(())
    }

    /// Cuts the batch's records (from `start`) off `active.seg`, leaving
    /// its in-memory state what it was before the batch.
    fn cut_head(&mut self, start: u64, records: u64) -> Result<()> {
        let cut = self
            .active
            .file
            .as_deref()
            .ok_or_else(|| Error::internal("no active file"))?
            .set_len(start)
            .io("truncate", &self.active.path);
        if cut.is_err() {
            self.poisoned = true;
        }
        cut?;
        self.active.len = start;
        self.active.flushed = start;
        for v in self.active.map.values_mut() {
            v.retain(|e| e.offset < start);
        }
        self.active.map.retain(|_, v| !v.is_empty());
        self.active.records = records;
        Ok(())
    }

    /// Copies the batch's records so far into `file`, each checked by CRC
    /// as it is read back and written without `FLAG_BATCH`.
    fn copy_head(&self, start: u64, head: &[IndexEntry], file: &mut Active) -> Result<()> {
        let mut expected = start;
        for ie in head {
            if ie.offset != expected {
                return Err(Error::internal("a batch's records are not contiguous"));
            }
            expected += u64::from(ie.len);
            let e = Entry::new(ie, self.active.number);
            let (h, payload) = self.read_active(&e)?;
            let flags = h.flags & !FLAG_BATCH;
            let offset = file.len;
            format::encode_record(
                &mut file.wbuf,
                h.seq,
                h.kind,
                flags,
                h.doc,
                h.node,
                &payload,
                &[],
            );
            file.len += u64::from(ie.len);
            file.records += 1;
            let moved = IndexEntry {
                offset,
                flags,
                ..*ie
            };
            file.map.entry(moved.doc).or_default().push(moved);
            if h.kind == Kind::DocPut
                && let Some(slot) = format::doc_key(&payload, h.flags).map(format::key_slot)
            {
                file.map.entry(slot).or_default().push(IndexEntry {
                    doc: slot,
                    node: moved.doc,
                    aux: 0,
                    ..moved
                });
            }
            if file.wbuf.len() >= 1 << 20 {
                flush_file(file)?;
            }
        }
        flush_file(file)
    }

    /// A new file for the batch to go on in (step 2).
    fn start_spill_file(&mut self) -> Result<()> {
        let number = self.next_segment_number();
        if let Some(m) = self.manifest.as_mut() {
            m.next_number = m.next_number.max(number + 1);
        }
        self.active = self.create_spill_file(number)?;
        Ok(())
    }

    /// Creates the file for `seg_N.seg` under a temporary name, which the
    /// next open removes: a crash may leave it empty, and an empty file by a
    /// segment's name would be taken for another store's.
    fn create_spill_file(&self, number: u64) -> Result<Active> {
        let name = format!("{}{TMP_SUFFIX}", format::segment_name(number));
        let path = self.opts.dir.join(name);
        let file = self.opts.vfs.create_new(&path).io("create", &path)?;
        let header = SegmentHeader::v2(number, self.store_id(), 0);
        let mut active = Active::empty(number, path);
        active.wbuf.extend_from_slice(&header.encode());
        active.flushed = 0;
        active.file = Some(file);
        Ok(active)
    }

    /// Seals the file the batch is being written to: footer, fsync, index,
    /// and a place in the sealed set (not yet in the manifest).
    fn seal_spilled(&mut self, spill: &mut Spill) -> Result<()> {
        let seq = self.write_footer()?;
        let number = self.active.number;
        let (vfs, dir) = (self.opts.vfs.clone(), self.opts.dir.clone());
        // Its own name once its bytes are durable: until the manifest lists
        // it, an extra file of this store, which the next write open removes.
        let path = dir.join(format::segment_name(number));
        vfs.rename(&self.active.path, &path).io("rename", &path)?;
        self.active.path.clone_from(&path);
        let (member, index) = self.write_index(seq)?;
        // The figures of the members once this file is one of them, from
        // what it supersedes in the members before it (as sealing does).
        if let Some(f) = spill.figures.as_mut() {
            for (&doc, own) in &self.active.map {
                if doc < KEY_SPACE {
                    let own = own.iter().map(|e| Entry::new(e, number)).collect();
                    crate::engine::live::absorb(self, f, own)?;
                }
            }
        }
        // Read through the descriptor cache from now on, like any member:
        // a batch of many segments must not hold a descriptor for each.
        let file = vfs.open_read(&path).io("open", &path)?;
        self.sealed.push(Sealed {
            number,
            version: self.active.version,
            path,
            len: self.active.len,
            max_seq: seq,
            doc_hwm: self.doc_hwm,
            generation: None,
            handle: Handle::ready(file, index),
            member: Some(member),
            lazy: None,
        });
        self.sealed.sort_by_key(|s| s.number);
        spill.members.push(member);
        Ok(())
    }

    /// Step 3: seals the last file and lists them all in one manifest write.
    pub(crate) fn commit_spilled(&mut self, mut spill: Spill) -> Result<()> {
        if self.active.records > 0 {
            self.seal_spilled(&mut spill)?;
        } else {
            let _ = self.opts.vfs.remove_file(&self.active.path);
        }
        self.active = spill.parked;
        // What `active.seg` holds is older than the batch: under --no-sync
        // too, it must not be lost to a power loss that the batch survives
        // (the store stays a prefix of its history).
        self.fsync_active()?;
        // The files' names are durable before the manifest that lists them.
        self.sync_dir()?;
        let (doc_hwm, max_seq) = (self.doc_hwm, self.next_seq - 1);
        let m = self
            .manifest
            .as_mut()
            .ok_or_else(|| Error::internal("a spilled batch without a manifest"))?;
        m.members.extend(spill.members);
        m.members.sort_by_key(|x| x.number);
        m.doc_hwm = doc_hwm;
        m.max_seq = m.max_seq.max(max_seq);
        crate::engine::manifest::set_figures(m, spill.figures.as_ref());
        self.write_manifest()?;
        // The batch would have taken `active.seg` past the segment size: seal
        // what it holds, as a write at the size does, so that the next open
        // reads an index rather than replaying it.
        if self.active.records > 0 {
            self.seal()?;
        }
        Ok(())
    }

    /// Undoes a spilled batch: its files go, `active.seg` comes back.
    pub(crate) fn roll_back_spilled(&mut self, spill: Spill) -> Result<()> {
        let vfs = self.opts.vfs.clone();
        let mut remove = vec![self.active.path.clone()];
        for x in &spill.members {
            let i = self
                .sealed
                .binary_search_by_key(&x.number, |s| s.number)
                .map_err(|_| Error::internal("spilled member not in the sealed set"))?;
            let s = self.sealed.remove(i);
            remove.push(s.idx_path());
            remove.push(s.path);
        }
        self.active = spill.parked;
        // Best effort: what stays is an extra file the next write open
        // removes.
        for p in remove {
            let _ = vfs.remove_file(&p);
        }
        Ok(())
    }
}

/// Writes a spill file's buffer.
fn flush_file(file: &mut Active) -> Result<()> {
    if file.wbuf.is_empty() {
        return Ok(());
    }
    let f = file
        .file
        .as_deref()
        .ok_or_else(|| Error::internal("no spill file"))?;
    f.write_all_at(&file.wbuf, file.flushed)
        .io("write", &file.path)?;
    file.flushed += file.wbuf.len() as u64;
    file.wbuf.clear();
    Ok(())
}
