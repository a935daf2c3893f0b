//! `Store`: the open data directory and every operation on it, the only
//! door to the engine's state.
//!
//! A `Store` is opened for writing (exclusive lock, recovers from a crash,
//! creates the directory on first use); a [`ReadOnlyStore`] for reading
//! (shared lock, creates nothing), and it serves the reads only. The store
//! holds the two owners of its state, the active segment
//! (`engine::active`) and the sealed set with its manifest
//! (`engine::sealed`), plus the id marks and the lock; its fields are
//! private. Reads resolve one document through both owners
//! (`engine::reads`); writes ask the active segment to append; what spans
//! the owners (sealing, a spilled batch's members, compaction's commit) is
//! coordinated here.

use std::ops::RangeInclusive;
use std::path::Path;

use crate::engine::active::{ActiveSegment, Committed, Marks, create_active};
use crate::engine::backup::{self, BackupReport, Sealed as BackupSealed};
use crate::engine::compact::{self, CompactMode, CompactPlan, CompactReport, Estimate};
use crate::engine::format::{self, DocFields, FLAG_EXTENDED, Kind, MAX_ID};
use crate::engine::format::{ACTIVE_INDEX_NAME, FORMAT_VERSION, MAX_PAYLOAD, Manifest};
use crate::engine::index::MemberStats;
use crate::engine::index::{Binding, Entry, Merge};
use crate::engine::live::Figures;
use crate::engine::manifest;
use crate::engine::notice::Notice;
pub(crate) use crate::engine::options::{Mode, Options, Progress};
use crate::engine::reads::Reads;
use crate::engine::recover;
use crate::engine::replay::{Finish, Parts};
use crate::engine::sealed::{NoticeHook, SealedSet};
use crate::engine::segment::RecordInfo;
use crate::engine::segment::{self, Handle, Sealed};
use crate::engine::stats::{self, Stats};
use crate::engine::verify::{self, VerifyReport};
use crate::engine::vfs::LockGuard;
pub(crate) use crate::engine::view::{Outline, resolve, resolve_sorted};
use crate::error::{Error, IoContext, Result};
use crate::json::Json;
use crate::model::{
    DocId, DocPatch, DocSummary, Document, NewDoc, Node, NodeId, ParsedDoc, check_key, check_meta,
};

/// Where [`Store::load_doc`] takes a document's ids from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ids {
    /// Hand out new ids, as `create_doc` and `add_input` do.
    Assign,
    /// Keep the ids the document carries (`load --keep-ids`), to copy a
    /// store with its ids; an id that leaves fewer than [`ID_HEADROOM`]
    /// ids above it is refused ([`Error::IdTooHigh`]).
    Keep,
    /// As [`Ids::Keep`], however high the ids (`load --allow-high-ids`).
    KeepHigh,
}

/// Fewest ids [`Ids::Keep`] leaves free above a kept id: one document with
/// id 2^53-1 would otherwise end document creation for good.
pub const ID_HEADROOM: u64 = 1 << 32;

impl Ids {
    /// Whether the ids a document carries are kept.
    #[must_use]
    pub fn keeps(self) -> bool {
        self != Ids::Assign
    }

    /// What can be checked of a document's ids without a store (a program
    /// may check a whole input before it opens one): with [`Ids::Keep`],
    /// none leaves fewer than [`ID_HEADROOM`] ids above it.
    /// [`Store::load_doc`] checks it again.
    ///
    /// # Errors
    /// [`Error::IdTooHigh`].
    pub fn check(self, parsed: &ParsedDoc) -> Result<()> {
        if let Some(id) = parsed.id {
            self.check_id("document id", id.0)?;
        }
        if let Some(n) = parsed.node_high_water {
            self.check_id("node id", n.0)?;
        }
        parsed
            .inputs
            .iter()
            .filter_map(|n| n.id)
            .try_for_each(|n| self.check_id("node id", n.0))
    }

    /// As [`Ids::check`], for a copy's document high-water mark (what
    /// [`Store::reserve_doc_ids`] is given).
    ///
    /// # Errors
    /// [`Error::IdTooHigh`].
    pub fn check_marks(self, hwm: DocId) -> Result<()> {
        self.check_id("document high-water mark", hwm.0)
    }

    fn check_id(self, what: &'static str, id: u64) -> Result<()> {
        if self == Ids::Keep && id > MAX_ID - ID_HEADROOM {
            return Err(Error::IdTooHigh { what, id });
        }
        Ok(())
    }
}

/// Every live document of a [`Store`], in id order: see [`Store::docs`].
pub struct Docs<'s> {
    store: &'s Store,
    merge: Merge<'s>,
    /// The last document id the walk reads.
    last: u64,
    /// The current document's entries, one vector for the whole walk.
    entries: Vec<Entry>,
    /// The read-ahead state to put back when the walk ends.
    outer: Option<segment::ReadAhead>,
    done: bool,
    filter: Option<DocFilter<'s>>,
}

/// Which documents a walk reads whole: `shape` sees what the index says
/// (no record read), `keep` the fields of the document's own record, in
/// the record; inputs and outputs are read only for the documents both
/// accept.
pub(crate) struct DocFilter<'s> {
    pub shape: Box<dyn Fn(&Shape) -> bool + 's>,
    pub keep: Keep<'s>,
}

/// A filter on a document's id and the fields of its own record.
pub(crate) type Keep<'s> = Box<dyn Fn(DocId, &DocFields<'_>) -> bool + 's>;

impl DocFilter<'_> {
    /// The document of `outline` and its `sorted` entries, when the filter
    /// takes it: its nodes are resolved and read only then.
    fn read(
        &self,
        reads: Reads<'_>,
        outline: &Outline,
        sorted: &[Entry],
    ) -> Result<Option<Document>> {
        let sh = Shape::of(outline);
        if !(self.shape)(&sh) {
            return Ok(None);
        }
        // Fields and body are copied only for a document the filter keeps.
        let kept = reads.with_doc_record(&outline.doc, |f, body| {
            Ok((self.keep)(sh.id, &f).then(|| f.to_payload(body)))
        })?;
        let Some(rec) = kept else {
            return Ok(None);
        };
        let Some(view) = resolve_sorted(sorted) else {
            return Ok(None);
        };
        reads.materialize_from(&view, rec).map(Some)
    }
}

impl Iterator for Docs<'_> {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Result<Document>> {
        let reads = self.store.reads();
        while !self.done {
            match reads.next_document(&mut self.merge, &mut self.entries, self.last) {
                Ok(true) => {
                    // Through `visit`, which reads again past a stale index.
                    let mut doc = None;
                    let filter = &self.filter;
                    let visited = reads.visit(
                        &mut self.merge,
                        &mut self.entries,
                        &mut |outline, sorted| {
                            doc = match filter {
                                Some(f) => f.read(reads, outline, sorted)?,
                                None => match resolve_sorted(sorted) {
                                    Some(view) => Some(reads.materialize(&view)?),
                                    None => None,
                                },
                            };
                            Ok(())
                        },
                    );
                    match visited {
                        Ok(_) => {
                            if let Some(d) = doc {
                                return Some(Ok(d));
                            }
                        }
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
                Ok(false) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

impl Drop for Docs<'_> {
    fn drop(&mut self) {
        self.store.sealed.end_readahead(self.outer.take());
    }
}

/// An open store. See the module docs.
pub struct Store {
    opts: Options,
    mode: Mode,
    _lock: Box<dyn crate::engine::vfs::LockGuard>,
    sealed: SealedSet,
    active: ActiveSegment,
    /// The next sequence number and the document id high-water mark.
    marks: Marks,
    opened_doc_hwm: u64,
    notices: Vec<Notice>,
    /// Set when a write or fsync failed: the in-memory state may be ahead
    /// of the file, so further writes are refused.
    poisoned: bool,
    /// The buffer [`Store::put_input`] encodes a record's prefix in.
    prefix: Vec<u8>,
}

/// A store opened read-only: a shared lock, so readers do not queue behind
/// each other; nothing on disk is created or changed (a torn tail or an
/// interrupted seal is read around, not repaired). It serves every read of
/// [`Store`], to which it dereferences, and has no write: writes take
/// `&mut Store`, which a `ReadOnlyStore` never hands out.
///
/// ```
/// # use stratum::{NewDoc, Options, ReadOnlyStore, Store};
/// # fn main() -> stratum::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("stratum-ro-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let id = Store::open(Options::new(&dir))?.create_doc(&NewDoc::default())?;
/// let store = ReadOnlyStore::open(Options::new(&dir))?;
/// assert_eq!(store.get(id)?.id, id);
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(())
/// # }
/// ```
///
/// A write does not compile:
///
/// ```compile_fail,E0596
/// # use stratum::{NewDoc, Options, ReadOnlyStore};
/// # fn main() -> stratum::Result<()> {
/// let mut store = ReadOnlyStore::open(Options::new("/srv/problems"))?;
/// store.create_doc(&NewDoc::default())?;
/// # Ok(())
/// # }
/// ```
pub struct ReadOnlyStore {
    store: Store,
}

impl ReadOnlyStore {
    /// Opens the store in `opts.dir` for reading only.
    ///
    /// # Errors
    /// [`Error::NoStore`] when there is none, [`Error::LockTimeout`],
    /// [`Error::Corrupt`] / [`Error::UnsupportedVersion`] on damage,
    /// [`Error::Io`].
    pub fn open(opts: Options) -> Result<ReadOnlyStore> {
        Ok(ReadOnlyStore {
            store: Store::open_as(opts, Mode::Read)?,
        })
    }

    /// As [`Store::take_notices`].
    pub fn take_notices(&mut self) -> Vec<Notice> {
        self.store.take_notices()
    }

    /// As [`Store::on_notice`].
    pub fn on_notice(&mut self, f: NoticeHook) {
        self.store.on_notice(f);
    }
}

impl ReadOnlyStore {
    /// A second read-only handle on the same store, under this one's
    /// shared lock (it takes none of its own, so a writer waiting for the
    /// lock cannot come between the two, and both see one state): for
    /// reading two parts of the store side by side, one per thread. Its
    /// notices at open are this handle's.
    ///
    /// # Errors
    /// As [`ReadOnlyStore::open`], but never [`Error::LockTimeout`].
    pub fn beside(&self) -> Result<Beside<'_>> {
        let opts = self.store.opts.clone();
        let parts = recover::open_locked(&opts, Mode::Read)?;
        let mut store = Store::assemble(opts, Mode::Read, Box::new(HeldLock), parts);
        drop(store.take_notices());
        Ok(Beside {
            store,
            _lock: std::marker::PhantomData,
        })
    }
}

/// The lock of a [`Beside`]: the one its first handle holds.
struct HeldLock;

impl LockGuard for HeldLock {}

/// A second read-only handle, from [`ReadOnlyStore::beside`]: it lives
/// within the first, whose lock it reads under.
pub struct Beside<'a> {
    store: Store,
    _lock: std::marker::PhantomData<&'a ()>,
}

impl Beside<'_> {
    /// As [`Store::on_notice`].
    pub fn on_notice(&mut self, f: NoticeHook) {
        self.store.on_notice(f);
    }
}

impl std::ops::Deref for Beside<'_> {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

// Reads only: there is no `DerefMut`, so no `&mut Store`, so no write.
impl std::ops::Deref for ReadOnlyStore {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

// A `Store` may move to another thread (a binding that releases its
// interpreter's lock around I/O needs that). It is not `Sync`: its read
// caches are `RefCell`s, so one thread uses it at a time.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Store>();
    assert_send::<ReadOnlyStore>();
    assert_send::<Beside<'static>>();
};

/// What the index alone says of a live document: its id and how many of
/// its nodes there are and have an output.
pub(crate) struct Shape {
    pub id: DocId,
    pub inputs: u64,
    pub outputs: u64,
}

impl Shape {
    fn of(outline: &Outline) -> Shape {
        Shape {
            id: DocId(outline.doc.doc),
            inputs: outline.inputs,
            outputs: outline.outputs,
        }
    }
}

/// A listing row from a document's shape and its own record's fields (its
/// body, `body_len` bytes, is not needed).
fn summary(sh: &Shape, f: &DocFields<'_>, body_len: usize) -> DocSummary {
    let own = |s: Option<&str>| s.map(str::to_owned);
    DocSummary {
        id: sh.id,
        key: own(f.key),
        category: own(f.category),
        version: own(f.version),
        meta: f.meta.map(|m| Json::from_trusted(m.to_owned())),
        inputs: sh.inputs,
        outputs: sh.outputs,
        body_len: body_len as u64,
    }
}

impl Store {
    /// The read path over this store's sealed set and active segment.
    pub(crate) fn reads(&self) -> Reads<'_> {
        Reads {
            sealed: &self.sealed,
            active: &self.active,
            dir: &self.opts.dir,
        }
    }

    /// Assembles the store recovery left in `parts`: the next seq and the
    /// document hwm are the larger of the `(max seq, doc hwm)` marks
    /// recovery found and what the active segment's committed records hold.
    /// Both open paths (format 1 and 2) end here, so the rule lives once.
    fn assemble(opts: Options, mode: Mode, lock: Box<dyn LockGuard>, parts: Parts) -> Store {
        let Parts {
            sealed,
            active,
            marks,
            notices,
            manifest,
            finish: _,
        } = parts;
        let own = active.own_marks();
        let (max_seq, doc_hwm) = (marks.0.max(own.0), marks.1.max(own.1));
        let sealed = SealedSet::new(sealed, manifest, opts.clone(), mode);
        Store {
            opts,
            mode,
            _lock: lock,
            sealed,
            active: ActiveSegment::new(active),
            marks: Marks {
                next_seq: max_seq + 1,
                doc_hwm,
            },
            opened_doc_hwm: doc_hwm,
            notices,
            poisoned: false,
            prefix: Vec::new(),
        }
    }

    /// Opens the store in `opts.dir` for reading and writing: an exclusive
    /// lock; creates the store if needed and recovers from a crash (a torn
    /// tail, an interrupted seal or compaction). For a read-only open, see
    /// [`ReadOnlyStore::open`].
    ///
    /// # Errors
    /// [`Error::LockTimeout`], [`Error::Corrupt`] /
    /// [`Error::UnsupportedVersion`] on damage that recovery may not repair
    /// by itself, [`Error::Io`].
    pub fn open(opts: Options) -> Result<Store> {
        Store::open_as(opts, Mode::Write)
    }

    fn open_as(opts: Options, mode: Mode) -> Result<Store> {
        let (lock, parts) = recover::open(&opts, mode)?;
        let Finish {
            manifest,
            reseal,
            upgrade,
        } = parts.finish;
        let mut store = Store::assemble(opts, mode, lock, parts);
        if upgrade {
            store.upgrade()?;
        }
        if manifest {
            store.write_manifest()?;
        }
        if reseal {
            store.seal()?;
        }
        Ok(store)
    }

    /// Upgrades a format-1 store opened for writing (docs/FORMAT.md §8.7): its
    /// active segment is sealed as format 1, a format-2 `active.seg` takes its
    /// place, and the first manifest lists every format-1 segment.
    fn upgrade(&mut self) -> Result<()> {
        let store = self;
        let vfs = store.opts.vfs.clone();
        let dir = store.opts.dir.clone();
        let active = store.active.cur();
        if active.version() == FORMAT_VERSION && active.records() > 0 {
            return Err(Error::corrupt(
                active.path(),
                0,
                "a format-2 active segment with records in a store without a manifest",
            ));
        }
        if active.version() == format::FORMAT_V1 && active.records() > 0 {
            store.seal()?;
        }
        // A format-2 active segment left by an upgrade (or a creation) that did
        // not get to write its manifest: adopt its id and number.
        let active = store.active.cur();
        let (store_id, number) = match active.open_file() {
            Some(f) if active.version() == FORMAT_VERSION => {
                let h = crate::engine::listing::read_header(f, active.path())?;
                (h.store_id, h.number)
            }
            _ => (vfs.new_store_id(), store.next_segment_number()),
        };
        if active.version() != FORMAT_VERSION || active.open_file().is_none() {
            let next = create_active(&dir, &*vfs, number, store_id)?;
            // The old one is an empty format-1 segment (or none).
            drop(store.active.replace(next));
        }
        let mut members = Vec::with_capacity(store.sealed.len());
        for s in store.sealed.iter() {
            let mut stats = MemberStats::default();
            let mut c = s.index()?.cursor(Box::new(move || s.scan_entries()))?;
            while let Some(e) = c.peek()? {
                stats.add(&e);
                c.advance();
            }
            let flags = u16::from(s.generation.is_some());
            members.push(stats.member(s.number, s.len, s.version, s.max_seq, flags));
        }
        let max_seq = store.marks.last_seq();
        let m = Manifest {
            store_id,
            serial: 1,
            active: number,
            next_number: (number + 1).max(store.next_segment_number()),
            doc_hwm: store.marks.doc_hwm,
            max_seq,
            counters: [format::UNKNOWN; 4],
            members,
        };
        manifest::write(&*vfs, &dir, &m)?;
        store.sealed.set_manifest(m);
        store.sealed.commit_keys();
        // The format-1 checkpoint named the segment just sealed.
        let _ = vfs.remove_file(&dir.join(format::ACTIVE_INDEX_NAME));
        Ok(())
    }

    /// Opens an existing store for writing; unlike [`Store::open`] it
    /// never creates one, so a command that acts on an
    /// existing document leaves an empty directory empty.
    ///
    /// # Errors
    /// [`Error::NoStore`], [`Error::LockMissing`], or as [`Store::open`].
    pub fn open_existing(opts: Options) -> Result<Store> {
        let lock = opts.dir.join(format::LOCK_NAME);
        if opts.vfs.kind(&lock).io("stat", &lock)?.is_none() {
            return Err(crate::engine::lock::without_lock(&*opts.vfs, &opts.dir)?);
        }
        Store::open(opts)
    }

    /// The directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.opts.dir
    }

    /// Notices from recovery (e.g. a discarded torn tail) and from reads
    /// since (an index file found stale), for the caller to show.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        let mut n = std::mem::take(&mut self.notices);
        n.extend(self.take_stale_notices());
        n
    }

    /// Creates a document and returns its new id.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when a record would exceed the size limit, the
    /// key is malformed or held by a live document, or the meta is not an
    /// object; [`Error::Io`].
    pub fn create_doc(&mut self, doc: &NewDoc) -> Result<DocId> {
        self.check_new_fields(doc.key.as_deref(), doc.meta.as_ref(), None)?;
        let id = DocId(next_id(self.marks.doc_hwm, "document")?);
        self.put_doc(id, doc, 0)?;
        Ok(id)
    }

    /// Replaces the fields `patch` sets (or clears) and keeps the rest.
    ///
    /// # Errors
    /// [`Error::DocNotFound`], [`Error::InvalidInput`], [`Error::Io`].
    pub fn update_doc(&mut self, id: DocId, patch: &DocPatch) -> Result<()> {
        let (view, current) = self.retry_stale(|| {
            let view = self.reads().view(id)?;
            let current = self.reads().read_doc_record(&view.doc)?;
            Ok((view, current))
        })?;
        let meta = match &patch.meta {
            Some(m) => m.clone(),
            None => current.meta.map(Json::from_trusted),
        };
        let doc = NewDoc {
            key: patch.key.clone().unwrap_or(current.key),
            category: patch.category.clone().unwrap_or(current.category),
            version: patch.version.clone().unwrap_or(current.version),
            meta,
            body: patch.body.clone().unwrap_or(current.body),
        };
        let new_key = patch.key.as_ref().and_then(|k| k.as_deref());
        let new_meta = patch.meta.as_ref().and_then(|m| m.as_ref());
        self.check_new_fields(new_key, new_meta, Some(id))?;
        self.put_doc(id, &doc, view.node_hwm)
    }

    /// Deletes a document and its whole chain. Its id is never reused; its
    /// key is free again.
    ///
    /// # Errors
    /// [`Error::DocNotFound`], [`Error::Io`].
    pub fn delete_doc(&mut self, id: DocId) -> Result<()> {
        self.reads().view(id)?;
        self.append(Kind::DocDelete, id.0, 0, 0, &[], &[])
    }

    /// Appends an input node (with an optional expected output, in the same
    /// record) to a document's chain; returns the new node id.
    ///
    /// # Errors
    /// [`Error::DocNotFound`], [`Error::InvalidInput`], [`Error::Io`].
    pub fn add_input(&mut self, doc: DocId, input: &Json, output: Option<&Json>) -> Result<NodeId> {
        self.add_input_with_meta(doc, input, None, output)
    }

    /// [`Store::add_input`] with the node's meta (a JSON object).
    ///
    /// # Errors
    /// As [`Store::add_input`], and [`Error::InvalidInput`] when `meta` is
    /// not an object.
    pub fn add_input_with_meta(
        &mut self,
        doc: DocId,
        input: &Json,
        meta: Option<&Json>,
        output: Option<&Json>,
    ) -> Result<NodeId> {
        if let Some(m) = meta {
            check_meta(m)?;
        }
        let view = self.reads().view(doc)?;
        let node = NodeId(next_id(view.node_hwm, "node")?);
        self.put_input(doc, node, input, meta, output)?;
        Ok(node)
    }

    /// Sets or replaces the expected output of a node. The JSON value `null`
    /// is stored as a real `null` output, distinct from none.
    ///
    /// # Errors
    /// [`Error::DocNotFound`], [`Error::NodeNotFound`], [`Error::Io`].
    pub fn set_output(&mut self, doc: DocId, node: NodeId, output: &Json) -> Result<()> {
        self.live_node(doc, node)?;
        let flags = if output.as_str() == "null" {
            FLAG_EXTENDED
        } else {
            0
        };
        self.append_flags(
            Kind::OutputPut,
            doc.0,
            node.0,
            0,
            flags,
            &[],
            output.as_str().as_bytes(),
        )
    }

    /// Removes a node's expected output, if it has one.
    ///
    /// # Errors
    /// [`Error::DocNotFound`], [`Error::NodeNotFound`], [`Error::Io`].
    pub fn clear_output(&mut self, doc: DocId, node: NodeId) -> Result<()> {
        self.live_node(doc, node)?;
        self.append(Kind::OutputDelete, doc.0, node.0, 0, &[], &[])
    }

    /// Sets (`Some`, a JSON object) or clears (`None`) a node's meta.
    ///
    /// # Errors
    /// [`Error::DocNotFound`], [`Error::NodeNotFound`],
    /// [`Error::InvalidInput`], [`Error::Io`].
    pub fn set_node_meta(&mut self, doc: DocId, node: NodeId, meta: Option<&Json>) -> Result<()> {
        if let Some(m) = meta {
            check_meta(m)?;
        }
        self.live_node(doc, node)?;
        let text = meta.map_or(&b""[..], |m| m.as_str().as_bytes());
        self.append(Kind::NodeMetaPut, doc.0, node.0, 0, &[], text)
    }

    /// Deletes one node and its output. The node id is never reused.
    ///
    /// # Errors
    /// [`Error::DocNotFound`], [`Error::NodeNotFound`], [`Error::Io`].
    pub fn delete_input(&mut self, doc: DocId, node: NodeId) -> Result<()> {
        self.live_node(doc, node)?;
        self.append(Kind::InputDelete, doc.0, node.0, 0, &[], &[])
    }

    /// The live document holding `key`, if any. Costs an id lookup plus
    /// one per document that held the same key hash.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Io`].
    pub fn find_key(&self, key: &str) -> Result<Option<DocId>> {
        self.retry_stale(|| self.find_key_once(key))
    }

    fn find_key_once(&self, key: &str) -> Result<Option<DocId>> {
        let slot = format::key_slot(key);
        // (seq, document) of every key entry of the slot: from the key
        // index when it is valid (two binary searches whatever the member
        // count), else from every member that holds keys; and from the
        // active segment's own entries.
        let mut candidates: Vec<(u64, u64)> = match self.sealed.key_candidates(slot)? {
            Some(c) => c,
            None => self
                .sealed
                .entries_of(slot)?
                .iter()
                .map(|e| (e.seq, e.node))
                .collect(),
        };
        for a in self.active.segments() {
            candidates.extend(a.lookup(slot)?.iter().map(|e| (e.seq, e.node)));
        }
        candidates.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
        let mut seen = std::collections::HashSet::new();
        for (_, doc) in candidates {
            let doc = DocId(doc);
            if !seen.insert(doc) {
                continue;
            }
            let Some(view) = resolve(&self.reads().entries_of(doc.0)?) else {
                continue;
            };
            let (h, payload) = self.reads().read_entry(&view.doc)?;
            if format::doc_key(&payload, h.flags) == Some(key) {
                return Ok(Some(doc));
            }
        }
        Ok(None)
    }

    /// Refuses a malformed key or meta, and a key a live document other than
    /// `own` holds.
    fn check_new_fields(
        &self,
        key: Option<&str>,
        meta: Option<&Json>,
        own: Option<DocId>,
    ) -> Result<()> {
        if let Some(m) = meta {
            check_meta(m)?;
        }
        if let Some(k) = key {
            check_key(k)?;
            if let Some(holder) = self.find_key(k)?
                && Some(holder) != own
            {
                return Err(Error::invalid(format!(
                    "key {k:?} is already used by document {holder}"
                )));
            }
        }
        Ok(())
    }

    /// Fails unless `node` is a live node of `doc`.
    fn live_node(&self, doc: DocId, node: NodeId) -> Result<()> {
        if self.reads().view(doc)?.nodes.contains_key(&node.0) {
            Ok(())
        } else {
            Err(Error::NodeNotFound { doc, node })
        }
    }

    /// Reads a whole document with its chain.
    ///
    /// # Errors
    /// [`Error::DocNotFound`], [`Error::Corrupt`] when a record it needs fails
    /// its check, [`Error::Io`].
    pub fn get(&self, id: DocId) -> Result<Document> {
        self.retry_stale(|| self.reads().materialize(&self.reads().view(id)?))
    }

    /// A document's listing row, as [`Store::list`] gives it: its fields,
    /// meta and node counts, from its own record and the index, without
    /// reading its inputs or outputs.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub fn summary(&self, id: DocId) -> Result<DocSummary> {
        self.retry_stale(|| {
            let reads = self.reads();
            let outline = reads.outline(id)?;
            let sh = Shape::of(&outline);
            reads.with_doc_record(&outline.doc, |f, body| Ok(summary(&sh, &f, body.len())))
        })
    }

    /// Reads one node of a document.
    ///
    /// # Errors
    /// As [`Store::get`], plus [`Error::NodeNotFound`].
    pub fn get_node(&self, doc: DocId, node: NodeId) -> Result<Node> {
        self.retry_stale(|| {
            let view = self.reads().view(doc)?;
            let (input, output) = view
                .nodes
                .get(&node.0)
                .ok_or(Error::NodeNotFound { doc, node })?;
            self.reads()
                .read_node(input, output.as_ref(), view.metas.get(&node.0))
        })
    }

    /// Runs `f` as one atomic batch: every write it makes lands together on
    /// exit 0, or none does (on an error from `f`, or a crash part-way).
    /// Rotation waits until the batch is committed, so a batch lives in one
    /// segment. After a failed batch the store must be reopened.
    ///
    /// # Errors
    /// Whatever `f` returns, or [`Error::Io`] from the commit.
    pub fn atomic<T>(&mut self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        self.atomic_expecting(0, f)
    }

    /// [`Store::atomic`] for a batch expected to write about `bytes` bytes
    /// (a `load` of a file: its length). A batch expected to outgrow the
    /// segment size writes its own segments from its first record, instead
    /// of writing `active.seg` first and copying from it once it does. The
    /// hint changes no byte of the store: a batch that ends smaller than
    /// expected is written to `active.seg` at commit, as without the hint.
    ///
    /// # Errors
    /// As [`Store::atomic`].
    pub fn atomic_expecting<T>(
        &mut self,
        bytes: u64,
        f: impl FnOnce(&mut Store) -> Result<T>,
    ) -> Result<T> {
        self.begin_batch()?;
        if let Err(e) = self.spill_ahead(bytes) {
            self.rollback_batch()?;
            return Err(e);
        }
        match f(self) {
            Ok(v) => {
                self.commit_batch()?;
                Ok(v)
            }
            Err(e) => {
                self.rollback_batch()?;
                Err(e)
            }
        }
    }

    /// Stores a document read by `load`. With [`Ids::Keep`] (or
    /// [`Ids::KeepHigh`]), the document and node ids in `parsed` are used
    /// and must be free (never used in this store); node ids must ascend.
    /// With [`Ids::Assign`], new ids are handed out.
    ///
    /// # Errors
    /// [`Error::IdTooHigh`] ([`Ids::check`]); [`Error::InvalidInput`] for a
    /// taken or missing id; [`Error::Io`].
    pub fn load_doc(&mut self, parsed: &ParsedDoc, ids: Ids) -> Result<DocId> {
        ids.check(parsed)?;
        let keep_ids = ids.keeps();
        let id = if keep_ids {
            let id = parsed
                .id
                .ok_or_else(|| Error::invalid("keeping ids needs an \"id\" on every document"))?;
            if id.0 == 0 || id.0 > MAX_ID {
                return Err(Error::invalid(format!(
                    "document id {id} is out of range (1 to {MAX_ID})"
                )));
            }
            if self.doc_exists_ever(id)? {
                return Err(Error::invalid(format!(
                    "document id {id} is already used in this store"
                )));
            }
            id
        } else {
            DocId(next_id(self.marks.doc_hwm, "document")?)
        };
        self.check_new_fields(parsed.doc.key.as_deref(), parsed.doc.meta.as_ref(), None)?;
        let mut last = 0u64;
        let mut nodes = Vec::with_capacity(parsed.inputs.len());
        let kept_hwm = parsed
            .node_high_water
            .filter(|_| keep_ids)
            .map_or(0, |n| n.0);
        for (i, n) in parsed.inputs.iter().enumerate() {
            let node = if keep_ids {
                let node = n
                    .id
                    .ok_or_else(|| Error::invalid("keeping ids needs a \"node\" on every input"))?;
                if node.0 <= last || node.0 > MAX_ID {
                    return Err(Error::invalid(format!(
                        "node ids must ascend within a document and stay within 1 to {MAX_ID} (node {node} after {last})"
                    )));
                }
                node
            } else {
                NodeId(next_id(i as u64, "node")?)
            };
            last = node.0;
            nodes.push(node);
        }
        if kept_hwm > MAX_ID || (kept_hwm > 0 && kept_hwm < last) {
            return Err(Error::invalid(format!(
                "node_high_water {kept_hwm} must be at least the highest node id ({last}) and at most {MAX_ID}"
            )));
        }
        self.put_doc(id, &parsed.doc, last.max(kept_hwm))?;
        for (n, node) in parsed.inputs.iter().zip(nodes) {
            if let Some(m) = &n.meta {
                check_meta(m)?;
            }
            self.put_input(id, node, &n.input, n.meta.as_ref(), n.output.as_ref())?;
        }
        Ok(id)
    }

    /// The highest document id this store ever assigned or was given,
    /// deleted documents included.
    pub fn doc_high_water(&self) -> DocId {
        DocId(self.marks.doc_hwm)
    }

    /// Makes every document id up to `id` count as used, as in the store a
    /// copy came from (`load --keep-ids` of `dump --high-water`), so they
    /// are never handed out. Writes a document record and its deletion for
    /// `id` when it is above the high-water mark; nothing otherwise. `ids`
    /// is the policy the copy's documents are loaded with: [`Ids::Keep`]
    /// holds the mark to [`ID_HEADROOM`] as it holds their ids.
    ///
    /// # Errors
    /// [`Error::IdTooHigh`]; [`Error::InvalidInput`] for an id above
    /// [`MAX_ID`]; [`Error::Io`].
    pub fn reserve_doc_ids(&mut self, id: DocId, ids: Ids) -> Result<()> {
        ids.check_marks(id)?;
        if id.0 > MAX_ID {
            return Err(Error::invalid(format!(
                "document high-water mark {id} is above the highest id, {MAX_ID}"
            )));
        }
        if id.0 <= self.marks.doc_hwm || !self.reads().entries_of(id.0)?.is_empty() {
            return Ok(());
        }
        let empty = NewDoc::default();
        self.put_doc(id, &empty, 0)?;
        self.append(Kind::DocDelete, id.0, 0, 0, &[], &[])
    }

    /// Calls `f` with a summary of every live document, in id order.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Io`], or what `f` returns.
    pub fn list(&self, f: &mut dyn FnMut(DocSummary) -> Result<()>) -> Result<()> {
        self.list_where(1..=u64::MAX, &|_| true, &|_, _| true, f)
    }

    /// [`Store::list`] of the documents in `ids` that `shape` accepts by
    /// their id and node counts, which come from the index alone (the
    /// others' records are not read), and `keep` by the fields of their
    /// own record (a row is made only for those).
    pub(crate) fn list_where(
        &self,
        ids: RangeInclusive<u64>,
        shape: &dyn Fn(&Shape) -> bool,
        keep: &dyn Fn(DocId, &DocFields<'_>) -> bool,
        f: &mut dyn FnMut(DocSummary) -> Result<()>,
    ) -> Result<()> {
        let reads = self.reads();
        reads.walk(ids, None, &mut |outline, _| {
            let sh = Shape::of(outline);
            if !shape(&sh) {
                return Ok(());
            }
            let row = reads.with_doc_record(&outline.doc, |fields, body| {
                Ok(keep(sh.id, &fields).then(|| summary(&sh, &fields, body.len())))
            })?;
            match row {
                Some(row) => f(row),
                None => Ok(()),
            }
        })
    }

    /// [`Store::dump`] of the documents in `ids` that `filter` takes.
    pub(crate) fn dump_where(
        &self,
        ids: RangeInclusive<u64>,
        progress: &mut dyn FnMut(Progress),
        filter: &DocFilter<'_>,
        f: &mut dyn FnMut(&Document) -> Result<()>,
    ) -> Result<()> {
        let reads = self.reads();
        reads.walk(ids, Some(progress), &mut |outline, sorted| match filter
            .read(reads, outline, sorted)?
        {
            Some(d) => f(&d),
            None => Ok(()),
        })
    }

    /// Every live document, in id order, read one at a time: memory holds
    /// one document plus a cursor per segment, at any store size. The
    /// iterator ends after the first error it yields.
    ///
    /// ```
    /// # use stratum::{NewDoc, Options, Store};
    /// # fn main() -> stratum::Result<()> {
    /// # let tmp = std::env::temp_dir().join(format!("stratum-docs-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&tmp);
    /// let mut store = Store::open(Options::new(&tmp))?;
    /// store.create_doc(&NewDoc { body: b"one".to_vec(), ..NewDoc::default() })?;
    /// store.create_doc(&NewDoc { body: b"two".to_vec(), ..NewDoc::default() })?;
    /// let bodies = store
    ///     .docs()?
    ///     .map(|d| d.map(|d| d.body))
    ///     .collect::<stratum::Result<Vec<_>>>()?;
    /// assert_eq!(bodies, [b"one".to_vec(), b"two".to_vec()]);
    /// # drop(store);
    /// # std::fs::remove_dir_all(&tmp).ok();
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Io`], when the segments cannot be opened;
    /// the same, as an item, for a document that cannot be read.
    pub fn docs(&self) -> Result<Docs<'_>> {
        self.docs_filtered(1..=u64::MAX, None)
    }

    /// [`Store::docs`] of the documents in `ids`, through `filter`.
    pub(crate) fn docs_filtered<'s>(
        &'s self,
        ids: RangeInclusive<u64>,
        filter: Option<DocFilter<'s>>,
    ) -> Result<Docs<'s>> {
        let mut merge = self.reads().merge()?;
        if *ids.start() > 1 {
            merge.seek(*ids.start())?;
        }
        let outer = self.sealed.begin_readahead();
        Ok(Docs {
            store: self,
            merge,
            last: *ids.end(),
            entries: Vec::new(),
            outer,
            done: false,
            filter,
        })
    }

    /// Calls `f` with every live document, in id order.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Io`], or what `f` returns.
    pub fn dump(
        &self,
        progress: &mut dyn FnMut(Progress),
        f: &mut dyn FnMut(&Document) -> Result<()>,
    ) -> Result<()> {
        self.dump_with_node_high_water(progress, &mut |doc, _| f(doc))
    }

    /// As [`Store::dump`], also passing each document's node high-water
    /// mark (the highest node id it ever had, deleted nodes included).
    ///
    /// # Errors
    /// As [`Store::dump`].
    pub fn dump_with_node_high_water(
        &self,
        progress: &mut dyn FnMut(Progress),
        f: &mut dyn FnMut(&Document, NodeId) -> Result<()>,
    ) -> Result<()> {
        let reads = self.reads();
        reads.walk(1..=u64::MAX, Some(progress), &mut |_, sorted| {
            let Some(view) = resolve_sorted(sorted) else {
                return Ok(());
            };
            let doc = reads.materialize(&view)?;
            f(&doc, NodeId(view.node_hwm))
        })
    }

    /// Calls `f` with every record of every segment, oldest segment first,
    /// in file order: old versions and tombstones included.
    ///
    /// # Errors
    /// [`Error::Io`], or what `f` returns. A damaged record is reported with
    /// `crc_ok: false` and ends that segment's listing.
    pub fn records(&self, f: &mut dyn FnMut(RecordInfo) -> Result<()>) -> Result<()> {
        let mut files: Vec<(&dyn crate::engine::vfs::VFile, &Path)> =
            Vec::with_capacity(self.sealed.len() + 1);
        for s in self.sealed.iter() {
            files.push((s.file()?, s.path.as_path()));
        }
        let active = self.active.cur();
        if let Some(file) = active.open_file() {
            files.push((file, active.path()));
        }
        segment::list_records(files, f)
    }

    /// Whole-store figures.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Io`].
    pub fn stats(&self) -> Result<Stats> {
        let figures = stats::current(&self.sealed, &self.active)?;
        Ok(self.stats_from(&figures))
    }

    /// Whole-store figures for `stats`, from `f`.
    pub(crate) fn stats_from(&self, f: &Figures) -> Stats {
        stats::stats_from(&self.sealed, self.active.cur(), self.marks, f)
    }

    /// [`Store::stats`] from the manifest's counters alone, `None` when they
    /// are not known (a store an earlier build wrote, until its next seal or
    /// compaction): what tests compare with [`Store::stats_by_merge`].
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Io`].
    #[doc(hidden)]
    pub fn stats_counted(&self) -> Result<Option<Stats>> {
        let figures = stats::counted(&self.sealed, &self.active)?;
        Ok(figures.map(|f| self.stats_from(&f)))
    }

    /// [`Store::stats`] from a merge of every index, ignoring the counters
    /// the manifest keeps: what tests compare the counters with.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Io`].
    #[doc(hidden)]
    pub fn stats_by_merge(&self) -> Result<Stats> {
        let figures = stats::merged(&self.sealed, &self.active)?;
        Ok(self.stats_from(&figures))
    }

    pub(crate) fn put_doc(&mut self, id: DocId, doc: &NewDoc, node_hwm: u64) -> Result<()> {
        let (prefix, flags) = format::encode_doc_prefix(&DocFields {
            node_hwm,
            category: doc.category.as_deref(),
            version: doc.version.as_deref(),
            key: doc.key.as_deref(),
            meta: doc.meta.as_ref().map(Json::as_str),
        });
        self.append_flags(Kind::DocPut, id.0, 0, node_hwm, flags, &prefix, &doc.body)
    }

    pub(crate) fn put_input(
        &mut self,
        doc: DocId,
        node: NodeId,
        input: &Json,
        meta: Option<&Json>,
        output: Option<&Json>,
    ) -> Result<()> {
        // One buffer for every node's prefix: an allocation per node was a
        // tenth of a load's writer thread.
        let mut prefix = std::mem::take(&mut self.prefix);
        let (rest, flags) = format::encode_input_into(
            &mut prefix,
            input.as_str(),
            meta.map(Json::as_str),
            output.map(Json::as_str),
        );
        let r = self.append_flags(Kind::InputPut, doc.0, node.0, 0, flags, &prefix, rest);
        self.prefix = prefix;
        r
    }

    fn append(
        &mut self,
        kind: Kind,
        doc: u64,
        node: u64,
        aux: u64,
        a: &[u8],
        b: &[u8],
    ) -> Result<()> {
        self.append_flags(kind, doc, node, aux, 0, a, b)
    }

    /// True if the id was ever used here, or may have been (at or below the
    /// high-water mark this store had when it was opened).
    fn doc_exists_ever(&self, id: DocId) -> Result<bool> {
        Ok(id.0 <= self.opened_doc_hwm || !self.reads().entries_of(id.0)?.is_empty())
    }
    /// The store id (0 for a format-1 store).
    pub(crate) fn store_id(&self) -> u64 {
        self.sealed.store_id()
    }

    /// Which index files belong to a segment of `version` in this store.
    pub(crate) fn binding(&self, version: u16) -> Binding {
        self.sealed.binding(version)
    }

    /// The lowest number a new segment may take: above the active
    /// segment, every member and every number the manifest reserved.
    pub(crate) fn next_segment_number(&self) -> u64 {
        let sealed = self.sealed.last_number();
        let reserved = self.sealed.manifest().map_or(0, |m| m.next_number);
        reserved.max(sealed + 1).max(self.active.cur().number() + 1)
    }
}

// ---------------------------------------------------------------------------
// Reads that meet a stale index file (see `engine::sealed`) run again.

impl Store {
    /// Sends notices found from now on to `f` as they happen, instead of
    /// queueing them for [`Store::take_notices`]. For a caller that reports
    /// as it goes: an index found stale part-way through a command says so.
    pub fn on_notice(&mut self, f: NoticeHook) {
        self.sealed.on_notice(f);
    }

    /// Notices queued since the open (see [`Store::on_notice`]).
    pub(crate) fn take_stale_notices(&mut self) -> Vec<Notice> {
        self.sealed.take_notices()
    }

    /// Runs `f`, and once more each time it fails after an index turned out
    /// stale (the failed read went through it; the segment now answers from
    /// a scan). Bounded: each round takes one index out of use.
    pub(crate) fn retry_stale<T>(&self, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        loop {
            let epoch = self.sealed.stale_epoch();
            match f() {
                Err(_) if self.sealed.stale_epoch() != epoch => {}
                r => return r,
            }
        }
    }

    /// The mutable form of [`Store::retry_stale`].
    pub(crate) fn retry_stale_mut<T>(
        &mut self,
        mut f: impl FnMut(&mut Store) -> Result<T>,
    ) -> Result<T> {
        loop {
            let epoch = self.sealed.stale_epoch();
            match f(self) {
                Err(_) if self.sealed.stale_epoch() != epoch => {}
                r => return r,
            }
        }
    }
}

/// The id after `hwm`, or an error when ids are exhausted.
fn next_id(hwm: u64, what: &str) -> Result<u64> {
    match hwm.checked_add(1) {
        Some(id) if id <= MAX_ID => Ok(id),
        _ => Err(Error::invalid(format!(
            "no {what} ids left: the highest, {MAX_ID}, is taken"
        ))),
    }
}

// ---------------------------------------------------------------------------
// Writes: the store asks the active segment to append, and coordinates what
// spans its parts (sealing, a spilled batch's members, the manifest).

impl Store {
    /// Which index files belong to the active segment's file in this store.
    fn active_binding(&self) -> Binding {
        self.binding(self.active.cur().version())
    }

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
        self.check_writable()?;
        let payload = a.len() + b.len();
        if payload > MAX_PAYLOAD as usize {
            return Err(Error::invalid(format!(
                "a record of {payload} bytes exceeds the limit of {MAX_PAYLOAD} bytes"
            )));
        }
        let total = (format::RECORD_HEADER_LEN + payload) as u64;
        if !self.active.in_batch() {
            if self.active.needs_seal(total, self.opts.segment_size) {
                self.seal()?;
            }
        } else {
            self.make_room_in_batch(total)?;
        }
        let bind = self.active_binding();
        self.active.append(
            &self.opts,
            bind,
            &mut self.marks,
            kind,
            doc,
            node,
            aux,
            flags,
            a,
            b,
        )
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
        let figures = if count && self.sealed.manifest().is_some() {
            stats::current(&self.sealed, &self.active).ok()
        } else {
            None
        };
        let seq = self.active.write_footer(&mut self.marks)?;
        let cur = self.active.cur();
        let (number, seg_len, version) = (cur.number(), cur.len(), cur.version());
        let from = cur.path().to_path_buf();
        let dir = self.opts.dir.clone();
        let vfs = self.opts.vfs.clone();
        let seg_path = dir.join(format::segment_name(number));
        vfs.rename(&from, &seg_path).io("rename", &seg_path)?;
        self.sync_dir()?;
        let bind = self.active_binding();
        let (member, index) = self
            .active
            .write_index(&self.opts, bind, seq, self.marks.doc_hwm)?;
        // Above every number in use: compaction outputs may be numbered
        // above the active segment.
        let next_number = self.next_segment_number();
        let next = create_active(&dir, &*vfs, next_number, self.store_id())?;
        let file = self.active.replace(next)?;
        self.sealed.push(Sealed {
            number,
            version,
            path: seg_path,
            len: seg_len,
            max_seq: seq,
            doc_hwm: self.marks.doc_hwm,
            generation: None,
            handle: Handle::ready(file, index),
            member: None,
            lazy: None,
        });
        // The commit point (docs/FORMAT.md §8.3 step 11).
        let doc_hwm = self.marks.doc_hwm;
        if let Some(m) = self.sealed.manifest_mut() {
            m.members.push(member);
            m.members.sort_by_key(|x| x.number);
            m.active = next_number;
            m.next_number = m.next_number.max(next_number + 1);
            m.doc_hwm = doc_hwm;
            m.max_seq = seq;
            crate::engine::live::set_in_manifest(m, figures.as_ref());
            self.write_manifest()?;
        }
        // The checkpoint described the segment just sealed; its own index
        // replaces it.
        let _ = vfs.remove_file(&dir.join(ACTIVE_INDEX_NAME));
        Ok(())
    }

    /// Replaces the manifest with the in-memory one (serial one above). A
    /// failure poisons the store: membership on disk may now differ from
    /// memory.
    pub(crate) fn write_manifest(&mut self) -> Result<()> {
        let r = self.sealed.write_manifest();
        if r.is_err() {
            self.poisoned = true;
        }
        r?;
        // Every caller has the members in memory that the manifest lists.
        self.sealed.commit_keys();
        Ok(())
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
            return Err(Error::invalid("the store was opened read-only"));
        }
        if self.poisoned || self.active.failed() {
            return Err(Error::Poisoned);
        }
        Ok(())
    }

    pub(crate) fn begin_batch(&mut self) -> Result<()> {
        if self.active.in_batch() {
            return Err(Error::internal("nested batch"));
        }
        self.check_writable()?;
        self.active.begin(self.marks)
    }

    pub(crate) fn commit_batch(&mut self) -> Result<()> {
        let bind = self.active_binding();
        let ahead = self.active.spilled_ahead();
        let committed = {
            let (sealed, opts) = (&mut self.sealed, &self.opts);
            self.active
                .commit(opts, bind, &mut self.marks, &mut |f, figures| {
                    take_sealed_file(opts, sealed, f, figures)
                })?
        };
        // A batch that spilled ahead but ended in `active.seg` never used
        // its file's number.
        if let (Some(next), Some(m)) = (ahead, self.sealed.manifest_mut())
            && !matches!(committed, Committed::Spilled { .. })
        {
            m.next_number = next;
        }
        match committed {
            Committed::Empty => Ok(()),
            Committed::InActive => {
                // A large batch may leave the active segment over its
                // threshold: seal now so the next open reads an index, not
                // the whole batch.
                if self.active.cur().len() > self.opts.segment_size {
                    self.seal()
                } else {
                    self.active.after_commit(&self.opts, bind, self.marks);
                    Ok(())
                }
            }
            Committed::Spilled { members, figures } => {
                // The files' names are durable before the manifest that
                // lists them.
                self.sync_dir()?;
                let (doc_hwm, max_seq) = (self.marks.doc_hwm, self.marks.last_seq());
                let m = self
                    .sealed
                    .manifest_mut()
                    .ok_or_else(|| Error::internal("a spilled batch without a manifest"))?;
                m.members.extend(members);
                m.members.sort_by_key(|x| x.number);
                m.doc_hwm = doc_hwm;
                m.max_seq = m.max_seq.max(max_seq);
                crate::engine::live::set_in_manifest(m, figures.as_ref());
                self.write_manifest()?;
                // The batch would have taken `active.seg` past the segment
                // size: seal what it holds, as a write at the size does, so
                // that the next open reads an index rather than replaying it.
                if self.active.cur().records() > 0 {
                    self.seal()?;
                }
                Ok(())
            }
        }
    }

    pub(crate) fn rollback_batch(&mut self) -> Result<()> {
        if let (Some(next), Some(m)) = (self.active.spilled_ahead(), self.sealed.manifest_mut()) {
            m.next_number = next;
        }
        let spilled = self.active.rollback(&self.opts, &mut self.marks)?;
        let vfs = self.opts.vfs.clone();
        let mut remove = Vec::new();
        for n in spilled {
            let s = self.sealed.remove(n)?;
            remove.push(s.idx_path());
            remove.push(s.path);
        }
        // Best effort: what stays is an extra file the next write open
        // removes.
        for p in remove {
            let _ = vfs.remove_file(&p);
        }
        Ok(())
    }

    /// At the start of a batch expected to write `bytes`: spills it ahead
    /// when that would take `active.seg` past the segment size (see
    /// `engine::active::Spill`).
    fn spill_ahead(&mut self, bytes: u64) -> Result<()> {
        let Some(next) = self.sealed.manifest().map(|m| m.next_number) else {
            return Ok(());
        };
        if bytes == 0 || self.active.cur().len().saturating_add(bytes) <= self.opts.segment_size {
            return Ok(());
        }
        let (number, figures) = self.spill_number();
        let store_id = self.store_id();
        self.active
            .spill_ahead(&self.opts, store_id, number, figures, next)
    }

    /// The number a batch's first file takes (reserved), and the members'
    /// figures the batch starts from, when known.
    fn spill_number(&mut self) -> (u64, Option<crate::engine::live::Figures>) {
        let number = self.reserve_segment_number();
        let figures = self
            .sealed
            .manifest()
            .and_then(crate::engine::live::of_manifest);
        (number, figures)
    }

    /// Before a batch appends `incoming` bytes: spills the batch, or seals
    /// the file it spills into, when it would pass the segment size (see
    /// `engine::active::Spill`).
    fn make_room_in_batch(&mut self, incoming: u64) -> Result<()> {
        let size = self.opts.segment_size;
        if self.active.spilled_ahead().is_some() {
            // Tentative until the batch would have spilled here.
            if !self.active.settle_spill_ahead(incoming, size) {
                return Ok(());
            }
        } else if !self.active.batch_full(incoming, size) {
            return Ok(());
        }
        // Only a format-1 store opened read-only has no manifest, and it
        // takes no batch; were one to get here, it stays in `active.seg`.
        if self.sealed.manifest().is_none() {
            return Ok(());
        }
        if !self.active.spilled() {
            // The batch so far is on disk before its copy takes a number.
            self.active.flush()?;
            let (number, figures) = self.spill_number();
            let store_id = self.store_id();
            self.active.spill(&self.opts, store_id, number, figures)?;
        }
        // The file the batch goes on in may be full already (the head just
        // copied into it, and this record).
        if self
            .active
            .spill_file_full(incoming, self.opts.segment_size)
        {
            let bind = self.binding(format::FORMAT_VERSION);
            let (sealed, opts) = (&mut self.sealed, &self.opts);
            self.active
                .seal_spill_file(opts, bind, &mut self.marks, &mut |f, figures| {
                    take_sealed_file(opts, sealed, f, figures)
                })?;
            let number = self.reserve_segment_number();
            let store_id = self.store_id();
            self.active.start_spill_file(&self.opts, store_id, number)?;
        }
        Ok(())
    }

    /// The lowest free segment number, reserved in the manifest.
    fn reserve_segment_number(&mut self) -> u64 {
        let number = self.next_segment_number();
        if let Some(m) = self.sealed.manifest_mut() {
            m.next_number = m.next_number.max(number + 1);
        }
        number
    }
}

/// Takes a file a spilled batch sealed into the sealed set, first counting
/// what its records supersede in the members into `figures` (as sealing
/// does). Read through the descriptor cache from now on, like any member: a
/// batch of many segments must not hold a descriptor for each.
fn take_sealed_file(
    opts: &Options,
    sealed: &mut SealedSet,
    f: crate::engine::active::SealedFile,
    figures: Option<&mut crate::engine::live::Figures>,
) -> Result<()> {
    if let Some(figures) = figures {
        for own in f.own.chunk_by(|a, b| a.doc == b.doc) {
            stats::absorb(sealed, figures, own)?;
        }
    }
    let file = opts.vfs.open_read(&f.path).io("open", &f.path)?;
    sealed.push(Sealed {
        number: f.number,
        version: f.version,
        path: f.path,
        len: f.len,
        max_seq: f.max_seq,
        doc_hwm: f.doc_hwm,
        generation: None,
        handle: Handle::ready(file, f.index),
        member: Some(f.member),
        lazy: None,
    });
    Ok(())
}

// ---------------------------------------------------------------------------
// Compaction: `engine::compact` writes the outputs from the read path; the
// store seals `active.seg` when it was chosen and commits.

impl Store {
    /// What a compaction of this store works with.
    fn compaction(&self) -> compact::Ctx<'_> {
        compact::Ctx {
            opts: &self.opts,
            reads: self.reads(),
            marks: self.marks,
            store_id: self.store_id(),
            next_number: self.next_segment_number(),
        }
    }

    /// Bytes of segment and index files on disk now.
    fn file_bytes(&self) -> u64 {
        compact::file_bytes(&self.opts, &self.sealed, self.active.cur())
    }

    /// Merges all segments into new ones holding only live data; see
    /// `engine::compact` for the crash-safe protocol.
    ///
    /// # Errors
    /// [`Error::NoSpace`] when the live data would not fit (nothing changed);
    /// [`Error::Corrupt`] when a record it must copy is damaged (nothing
    /// changed); [`Error::Io`].
    pub fn compact(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<CompactReport> {
        // A failed pass changes nothing, so one that met a stale index file
        // (see `engine::sealed`) starts again on the segment's scan.
        self.retry_stale_mut(|store| store.compact_full(progress))
    }

    fn compact_full(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<CompactReport> {
        let bytes_before = self.file_bytes();
        let segments_before = self.sealed.len() + 1;
        // Sealed only once every output is written, so a compaction that
        // fails changes nothing.
        let seal_later = self.active.cur().records() > 0;
        let (mut out, documents) = self.compaction().write_full(seal_later, progress)?;
        let sealed = if seal_later {
            self.seal_counting(false)
        } else {
            Ok(())
        };
        if let Err(e) = sealed {
            out.discard(&self.opts);
            return Err(e);
        }
        let written = out.written();
        self.commit_compaction(out, None)?;
        Ok(CompactReport {
            bytes_before,
            bytes_after: self.file_bytes(),
            segments_before,
            segments_after: self.sealed.len() + 1,
            documents,
            merged: segments_before,
            written,
        })
    }

    fn commit_compaction(&mut self, out: compact::Outputs, set: Option<&[u64]>) -> Result<()> {
        compact::commit(
            &self.opts,
            &mut self.sealed,
            &mut self.marks,
            &mut self.poisoned,
            out,
            set,
        )
    }

    /// Gives a manifest without figures (an earlier build's, or one whose
    /// seal could not work them out) its counters and per-member figures,
    /// from a merge of the members' indexes, so that `stats` stops merging.
    /// Returns whether it wrote the manifest.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Io`].
    pub fn write_counters(&mut self) -> Result<bool> {
        self.check_writable()?;
        let known = self
            .sealed
            .manifest()
            .is_none_or(|m| crate::engine::live::of_manifest(m).is_some());
        if known {
            return Ok(false);
        }
        let members = stats::merged_members(&self.sealed)?;
        if let Some(m) = self.sealed.manifest_mut() {
            crate::engine::live::set_in_manifest(m, Some(&members));
            self.write_manifest()?;
        }
        Ok(true)
    }

    /// What [`Store::compact_with`] would do, without changing anything,
    /// with the bytes it would write worked out as `estimate` says.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Io`].
    pub fn compact_plan(&self, mode: CompactMode, estimate: Estimate) -> Result<CompactPlan> {
        self.compaction().plan(mode, estimate)
    }

    /// Compacts as `mode` says: [`CompactMode::Full`] is [`Store::compact`];
    /// [`CompactMode::Selective`] merges only the members worth merging and
    /// leaves everything else alone, so with nothing to reclaim it writes
    /// nothing (docs/FORMAT.md §8.4).
    ///
    /// # Errors
    /// As [`Store::compact`].
    pub fn compact_with(
        &mut self,
        mode: CompactMode,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<CompactReport> {
        match mode {
            CompactMode::Full => self.compact(progress),
            // As a full compaction: a pass that met a stale index file has
            // changed nothing, and starts again on the segment's scan.
            CompactMode::Selective => {
                self.retry_stale_mut(|store| store.compact_selective(progress))
            }
        }
    }

    fn compact_selective(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<CompactReport> {
        self.check_writable()?;
        let bytes_before = self.file_bytes();
        let segments_before = self.sealed.len() + 1;
        let f = stats::current(&self.sealed, &self.active)?;
        let set = self.compaction().choose(&f);
        // A chosen `active.seg` is sealed once the outputs are written (as
        // in a full compaction), so that a refused compaction changes
        // nothing; the seal's footer seq and the number of the empty
        // `active.seg` after it are set aside.
        let seal_later = set.contains(&self.active.cur().number());
        let report = |store: &Store, merged: usize, written: u64, documents: u64| CompactReport {
            bytes_before,
            bytes_after: store.file_bytes(),
            segments_before,
            segments_after: store.sealed.len() + 1,
            documents,
            merged,
            written,
        };
        if set.is_empty() {
            // Nothing worth merging; figures are the one thing worth writing.
            self.write_counters()?;
            return Ok(report(self, 0, 0, 0));
        }
        let base = self.next_segment_number() + u64::from(seal_later);
        let (mut out, needed, documents) = self
            .compaction()
            .write_selective(&set, base, seal_later, progress)?;
        // The records of `active.seg` that supersede what the merge drops
        // must outlive a power loss, `--no-sync` or not: sealing fsyncs it.
        let sealed = if seal_later {
            self.seal_counting(false)
        } else {
            self.active.flush().and_then(|()| self.active.fsync())
        };
        if let Err(e) = sealed {
            out.discard(&self.opts);
            return Err(e);
        }
        let merged = set.len();
        self.commit_compaction(out, Some(&set))?;
        Ok(report(self, merged, needed, documents))
    }
}

// ---------------------------------------------------------------------------
// Verify and backup: they read the store's files under the lock it holds.

impl Store {
    /// Checks this store as [`verify`](crate::engine::verify()) does, under
    /// the lock the store already holds: a program with the store open
    /// cannot take a second lock on it (locks are per open file, so it would
    /// wait on itself).
    ///
    /// # Errors
    /// As [`verify`](crate::engine::verify()), less the lock errors;
    /// [`Error::InvalidInput`] inside [`Store::atomic`], whose records are
    /// not all on disk yet.
    pub fn verify(&self, progress: &mut dyn FnMut(Progress)) -> Result<VerifyReport> {
        if self.active.in_batch() {
            return Err(Error::invalid("verify cannot run inside an atomic batch"));
        }
        verify::verify_locked(&self.opts, progress)
    }
}

/// Copies the open store `store` to the new directory `dest` as a store of
/// its own (see `engine::backup`): sealed files linked or copied, the
/// flushed part of `active.seg` copied, the manifest written, the copy
/// verified before it takes its name.
///
/// # Errors
/// [`Error::InvalidInput`] for a destination that exists and is not an
/// empty directory; [`Error::Corrupt`] when the copy does not verify
/// (nothing is kept); [`Error::Io`].
pub fn backup(
    store: &Store,
    dest: &Path,
    sealed: BackupSealed,
    progress: &mut dyn FnMut(Progress),
) -> Result<BackupReport> {
    let parts = backup::Parts {
        opts: &store.opts,
        sealed: &store.sealed,
        active: store.active.cur(),
    };
    backup::backup(parts, dest, sealed, progress)
}
