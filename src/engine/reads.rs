//! The read path: a record, a document or a merge of every index, read
//! through the two owners that hold the entries, the sealed set and the
//! active segment. [`Reads`] borrows them and changes nothing; `Store`'s
//! reads and compaction go through it.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use crate::engine::active::{Active, ActiveSegment};
use crate::engine::format::{self, DocFields, DocPayload, RecordHeader};
use crate::engine::index::{Cursor, Entry, Merge};
use crate::engine::options::Progress;
use crate::engine::sealed::SealedSet;
use crate::engine::view::{DocView, Outline, outline_sorted, resolve, sort_entries};
use crate::error::{Error, Result};
use crate::json::Json;
use crate::model::{DocId, Document, Node, NodeId};

/// A store's entries and records, read through its sealed set and active
/// segment.
#[derive(Clone, Copy)]
pub(crate) struct Reads<'a> {
    pub sealed: &'a SealedSet,
    pub active: &'a ActiveSegment,
    /// The data directory, to name a record's segment in an error.
    pub dir: &'a Path,
}

impl<'a> Reads<'a> {
    /// Materializes a resolved document: one positioned read per record.
    pub fn materialize(&self, view: &DocView) -> Result<Document> {
        let mut entries = vec![&view.doc];
        for (input, output) in view.nodes.values() {
            entries.push(input);
            entries.extend(output.as_ref().filter(|o| o.offset != input.offset));
        }
        entries.extend(view.metas.values());
        self.sealed.with_span(&entries, || {
            let rec = self.read_doc_record(&view.doc)?;
            self.materialize_from(view, rec)
        })
    }

    /// A document from its view and its own record, already read.
    pub fn materialize_from(&self, view: &DocView, rec: DocPayload) -> Result<Document> {
        let mut inputs = Vec::with_capacity(view.nodes.len());
        for (n, (input, output)) in &view.nodes {
            inputs.push(self.read_node(input, output.as_ref(), view.metas.get(n))?);
        }
        let meta = match rec.meta {
            Some(m) => Some(self.json_at(&view.doc, m.as_bytes())?),
            None => None,
        };
        Ok(Document {
            id: DocId(view.doc.doc),
            key: rec.key,
            category: rec.category,
            version: rec.version,
            meta,
            body: rec.body,
            inputs,
        })
    }

    /// Reads the record an entry points at, wherever it lives.
    pub fn read_entry(&self, e: &Entry) -> Result<(RecordHeader, Vec<u8>)> {
        match self.active.segment(e.seg) {
            Some(a) => read_active(a, e),
            None => self.sealed.read(e),
        }
    }

    /// [`Reads::read_entry`], lending the payload to `f` rather than
    /// copying it where it can; `f` must not read records itself.
    pub fn read_entry_with<T>(
        &self,
        e: &Entry,
        f: impl FnOnce(RecordHeader, &[u8]) -> Result<T>,
    ) -> Result<T> {
        match self.active.segment(e.seg) {
            Some(a) => {
                let (h, payload) = read_active(a, e)?;
                f(h, &payload)
            }
            None => self.sealed.read_with(e, f),
        }
    }

    /// A document's own record, its fields and its body lent to `f` (which
    /// copies what it needs).
    pub fn with_doc_record<T>(
        &self,
        e: &Entry,
        f: impl FnOnce(DocFields<'_>, &[u8]) -> Result<T>,
    ) -> Result<T> {
        self.read_entry_with(e, |h, payload| {
            let (rec, body) = format::decode_doc_fields(payload, h.flags)
                .map_err(|why| Error::corrupt(self.path_of(e), e.offset, why))?;
            f(rec, body)
        })
    }

    /// Runs `f` with sequential read-ahead on sealed segments: for whole-store
    /// passes, which read records in nearly ascending offsets.
    pub fn with_readahead<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let outer = self.sealed.begin_readahead();
        let r = f();
        self.sealed.end_readahead(outer);
        r
    }

    pub fn path_of(&self, e: &Entry) -> PathBuf {
        if let Some(a) = self.active.segment(e.seg) {
            a.path().to_path_buf()
        } else {
            self.dir.join(format::segment_name(e.seg))
        }
    }

    pub fn read_doc_record(&self, e: &Entry) -> Result<DocPayload> {
        let (h, payload) = self.read_entry(e)?;
        format::decode_doc(&payload, h.flags)
            .map_err(|why| Error::corrupt(self.path_of(e), e.offset, why))
    }

    /// Reads a node's input, meta and output values. `meta` is the node's
    /// newest `NodeMetaPut`, when it is newer than its `InputPut`.
    pub fn read_node(
        &self,
        input: &Entry,
        output: Option<&Entry>,
        meta: Option<&Entry>,
    ) -> Result<Node> {
        self.with_node_texts(input, output, meta, |t| {
            let json = |(e, bytes): (&Entry, &[u8])| self.json_at(e, bytes);
            Ok(Node {
                id: NodeId(input.node),
                input: json(t.input)?,
                meta: t.meta.map(json).transpose()?,
                output: t.output.map(json).transpose()?,
            })
        })
    }

    /// Lends `f` a node's stored texts (see [`Reads::read_node`]), each
    /// with the entry of the record it came from, checked by CRC and no
    /// further: a copy (compaction) keeps them as they are.
    pub fn with_node_texts<T>(
        &self,
        input: &Entry,
        output: Option<&Entry>,
        meta: Option<&Entry>,
        f: impl FnOnce(NodeTexts<'_>) -> Result<T>,
    ) -> Result<T> {
        let (h, payload) = self.read_entry(input)?;
        let (text, own_meta, embedded) = format::decode_input(&payload, h.flags)
            .map_err(|why| Error::corrupt(self.path_of(input), input.offset, why))?;
        let own_record;
        let output = match output {
            None => None,
            Some(o) if o.seg == input.seg && o.offset == input.offset => {
                format::output_present(h.flags, embedded).then_some((input, embedded))
            }
            Some(o) => {
                own_record = self.read_entry(o)?;
                let (oh, p) = &own_record;
                format::output_present(oh.flags, p).then_some((o, &p[..]))
            }
        };
        let meta_record;
        let meta = match meta {
            Some(m) => {
                meta_record = self.read_entry(m)?.1;
                (!meta_record.is_empty()).then_some((m, &meta_record[..]))
            }
            None => own_meta.map(|t| (input, t)),
        };
        f(NodeTexts {
            input: (input, text),
            meta,
            output,
        })
    }

    /// A stored value, checked again before it is served: a CRC proves the
    /// bytes are the ones written, not that a crafted file wrote JSON.
    pub fn json_at(&self, e: &Entry, bytes: &[u8]) -> Result<Json> {
        crate::json::check_stored(bytes)
            .map_err(|why| Error::corrupt(self.path_of(e), e.offset, why))?;
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::corrupt(self.path_of(e), e.offset, "stored value is not UTF-8"))?;
        Ok(Json::from_trusted(text.to_owned()))
    }

    /// Every index entry of one document, from every segment.
    pub fn entries_of(&self, id: u64) -> Result<Vec<Entry>> {
        let mut out = self.sealed.entries_of(id)?;
        for a in self.active.segments() {
            out.extend(a.lookup(id)?);
        }
        Ok(out)
    }

    /// Cursors over the active segments' entries, for a merge.
    pub fn active_sources(&self) -> Result<Vec<(Cursor<'a>, u64)>> {
        let mut sources = Vec::with_capacity(4);
        for a in self.active.segments() {
            sources.extend(a.cursors()?);
        }
        Ok(sources)
    }

    /// The live state of a document.
    pub fn view(&self, id: DocId) -> Result<DocView> {
        resolve(&self.entries_of(id.0)?).ok_or(Error::DocNotFound(id))
    }

    /// The outline of a document: its own record's entry and node counts.
    pub fn outline(&self, id: DocId) -> Result<Outline> {
        let mut entries = self.entries_of(id.0)?;
        entries.retain(|e| e.doc < format::KEY_SPACE);
        sort_entries(&mut entries);
        outline_sorted(&entries).ok_or(Error::DocNotFound(id))
    }

    /// Bytes of every segment file.
    pub fn bytes(&self) -> u64 {
        self.sealed.total_len() + self.active.cur().len()
    }

    /// A merge over every segment's entries, in document order.
    pub fn merge(&self) -> Result<Merge<'a>> {
        let mut sources = self.sealed.cursors()?;
        sources.extend(self.active_sources()?);
        Ok(Merge { sources })
    }

    /// Calls `f` with the outline of every live document in `ids`, in id order, and
    /// its entries in [`sort_entries`] order (from which
    /// [`crate::engine::view::resolve_sorted`] gives its whole view when
    /// `f` needs it), with read-ahead, through [`Reads::visit`]. One vector
    /// of entries serves the whole pass.
    pub fn walk(
        &self,
        ids: RangeInclusive<u64>,
        mut progress: Option<&mut dyn FnMut(Progress)>,
        f: &mut dyn FnMut(&Outline, &[Entry]) -> Result<()>,
    ) -> Result<()> {
        self.with_readahead(|| {
            let total = self.bytes();
            let mut done = 0u64;
            let mut merge = self.merge()?;
            if *ids.start() > 1 {
                merge.seek(*ids.start())?;
            }
            let mut entries = Vec::new();
            while self.next_document(&mut merge, &mut entries, *ids.end())? {
                if let Some(size) = self.visit(&mut merge, &mut entries, f)? {
                    done += size;
                    if let Some(p) = progress.as_deref_mut() {
                        p(Progress {
                            done: done.min(total),
                            total,
                        });
                    }
                }
            }
            if let Some(p) = progress {
                p(Progress { done: total, total });
            }
            Ok(())
        })
    }

    /// The entries of the next document of `merge` into `entries`; false
    /// past document `last` or at the end of the documents. Key entries
    /// sort after every document (docs/FORMAT.md §7.6): a pass over
    /// documents ends where they begin.
    pub fn next_document(
        &self,
        merge: &mut Merge<'a>,
        entries: &mut Vec<Entry>,
        last: u64,
    ) -> Result<bool> {
        Ok(merge.next_doc_into(entries)?
            && entries[0].doc < format::KEY_SPACE
            && entries[0].doc <= last)
    }

    /// Calls `f` with the outline of one document's `entries` from `merge`
    /// and the entries sorted, if it is live, and returns the bytes of the
    /// records it holds. When an index turns out stale reading it, its
    /// segment answers from a scan for this document and the rest of the
    /// pass, and `f` runs again. `f` reads before it reports, so a failed
    /// call printed nothing.
    pub fn visit(
        &self,
        merge: &mut Merge<'a>,
        entries: &mut Vec<Entry>,
        f: &mut dyn FnMut(&Outline, &[Entry]) -> Result<()>,
    ) -> Result<Option<u64>> {
        let Some(doc) = entries.first().map(|e| e.doc) else {
            return Ok(None);
        };
        loop {
            let epoch = self.sealed.stale_epoch();
            sort_entries(entries);
            let Some(outline) = outline_sorted(entries) else {
                return Ok(None);
            };
            match f(&outline, entries) {
                Ok(()) => return Ok(Some(outline.bytes)),
                Err(_) if self.sealed.stale_epoch() != epoch => {
                    self.sealed.refresh_merge(merge, doc)?;
                    *entries = self.entries_of(doc)?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A node's stored texts, each with the entry of the record that holds it:
/// what [`Reads::with_node_texts`] lends.
pub struct NodeTexts<'t> {
    pub input: (&'t Entry, &'t [u8]),
    pub meta: Option<(&'t Entry, &'t [u8])>,
    pub output: Option<(&'t Entry, &'t [u8])>,
}

/// Reads the record an entry of an active segment points at.
fn read_active(a: &Active, e: &Entry) -> Result<(RecordHeader, Vec<u8>)> {
    let max = format::RECORD_HEADER_LEN as u64 + u64::from(format::MAX_PAYLOAD);
    // An index entry is trusted for where to look, never for how much to
    // allocate.
    let why = if u64::from(e.len) > max || (e.len as usize) < format::RECORD_HEADER_LEN {
        Some("index entry has an impossible record length")
    } else if e
        .offset
        .checked_add(u64::from(e.len))
        .is_none_or(|end| end > a.len())
    {
        Some("index entry points past the end of its segment")
    } else {
        None
    };
    if let Some(why) = why {
        return Err(Error::corrupt(a.path(), e.offset, why));
    }
    a.read(e)
}
