//! `stratum._stratum`: the stratum library as a Python extension module.
//!
//! This is glue only: each method turns its Python arguments into the
//! library's types, calls one `Store` method with the interpreter released,
//! and turns the result back. The module's documentation for Python users
//! is in `stratum/__init__.py`; the conversions are in [`value`], the
//! arguments the methods share (a document by id or key, `stratum.CLEAR`,
//! meta, outputs) in [`args`], the exceptions in [`errors`], batches in
//! [`batch`].
//!
//! # The handle
//! A `Store` handle owns one open library `Store` (and so its lock) behind a
//! mutex: Python threads that share a handle take turns, and threads with a
//! handle each run at once. During a batch the store lives on the batch's
//! worker thread and the handle forwards each call there.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyTuple};
use stratum::engine;
use stratum::{DocId, DocPatch, Ids, NewDoc, NodeId, Options, ReadOnlyStore, Store};

mod args;
mod batch;
mod errors;
mod reports;
mod types;
mod value;

use args::DocRef;
use errors::{Failure, guard};
use types::{PyDocument, PyNode};
use value::PyJson;

/// How a handle was opened (`write=` of `stratum.open`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Read,
    Write,
}

/// A store as opened: a read handle holds the library's read-only store,
/// which has no write to call.
enum Handle {
    Read(ReadOnlyStore),
    Write(Store),
}

impl Handle {
    fn open(opts: Options, mode: Mode) -> stratum::Result<Handle> {
        Ok(match mode {
            Mode::Read => Handle::Read(ReadOnlyStore::open(opts)?),
            Mode::Write => Handle::Write(Store::open(opts)?),
        })
    }

    /// The store to write to; a read handle has none.
    fn writer(&mut self) -> Result<&mut Store, Failure> {
        match self {
            Handle::Write(s) => Ok(s),
            Handle::Read(_) => Err(Failure::Lib(stratum::Error::invalid(READ_ONLY))),
        }
    }

    fn take_notices(&mut self) -> Vec<stratum::Notice> {
        match self {
            Handle::Read(s) => s.take_notices(),
            Handle::Write(s) => s.take_notices(),
        }
    }
}

impl std::ops::Deref for Handle {
    type Target = Store;

    fn deref(&self) -> &Store {
        match self {
            Handle::Read(s) => s,
            Handle::Write(s) => s,
        }
    }
}

/// What a handle holds.
enum Slot {
    Open(Box<Handle>),
    /// A batch is under way; the store is on its worker thread.
    Batch(batch::Worker),
    Closed,
}

/// An open store. Made by `stratum.open`.
#[pyclass(module = "stratum", name = "Store", frozen)]
struct PyStore {
    opts: Options,
    mode: Mode,
    slot: Mutex<Slot>,
    /// Recovery notices from opening (a discarded torn tail, say).
    #[pyo3(get)]
    notices: Vec<String>,
}

/// The library's message when a write is asked of a read handle is an
/// internal one; a caller needs to hear what to do instead.
const READ_ONLY: &str =
    "this handle was opened with write=False; open the store with write=True to change it";

impl PyStore {
    /// Looks at the slot with the interpreter released: another thread may
    /// hold the mutex for a long call (a compaction, a batch).
    fn peek<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&Slot) -> T + Send) -> T {
        py.detach(|| f(&self.lock()))
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        // A panic is caught before it can unwind through the guard, so the
        // mutex is never poisoned; if it were, the slot is still whole.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs the read `op` on the store, inside the batch when one is under
    /// way, with the interpreter released.
    fn run<T: Send + 'static>(
        &self,
        py: Python<'_>,
        op: impl FnOnce(&Store) -> stratum::Result<T> + Send + 'static,
    ) -> PyResult<T> {
        py.detach(|| self.call_read(op)).map_err(|f| f.into_py(py))
    }

    /// As [`PyStore::run`], for a write: refused on a read handle.
    fn write<T: Send + 'static>(
        &self,
        py: Python<'_>,
        op: impl FnOnce(&mut Store) -> stratum::Result<T> + Send + 'static,
    ) -> PyResult<T> {
        if self.mode == Mode::Read {
            return Err(errors::error(READ_ONLY));
        }
        py.detach(|| self.call(op)).map_err(|f| f.into_py(py))
    }

    /// As [`PyStore::call`], for a read: any handle serves it.
    fn call_read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Store) -> stratum::Result<T> + Send + 'static,
    ) -> Result<T, Failure> {
        let mut slot = self.lock();
        let r = match &mut *slot {
            Slot::Open(store) => guard(|| op(store).map_err(Failure::Lib)),
            Slot::Batch(worker) => worker.run(move |s| op(s).map_err(Failure::Lib)),
            Slot::Closed => return Err(Failure::Closed),
        };
        if matches!(r, Err(Failure::Panic(_))) {
            close_after_panic(&mut slot);
        }
        r
    }

    fn call<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Store) -> stratum::Result<T> + Send + 'static,
    ) -> Result<T, Failure> {
        let mut slot = self.lock();
        let r = match &mut *slot {
            Slot::Open(store) => {
                let store = store.writer()?;
                guard(|| op(store).map_err(Failure::Lib))
            }
            Slot::Batch(worker) => worker.run(move |s| op(s).map_err(Failure::Lib)),
            Slot::Closed => return Err(Failure::Closed),
        };
        if matches!(r, Err(Failure::Panic(_))) {
            close_after_panic(&mut slot);
        }
        r
    }

    /// Runs `op` on the store outside any batch (maintenance that cannot
    /// be part of one), with the interpreter released.
    fn outside_batch<T: Send>(
        &self,
        py: Python<'_>,
        what: &str,
        op: impl FnOnce(&mut Slot) -> Result<T, Failure> + Send,
    ) -> PyResult<T> {
        let r = py.detach(|| {
            let mut slot = self.lock();
            match &*slot {
                Slot::Open(_) => {
                    let r = guard(|| op(&mut slot));
                    if matches!(r, Err(Failure::Panic(_))) {
                        close_after_panic(&mut slot);
                    }
                    r
                }
                Slot::Batch(_) => Err(Failure::Lib(stratum::Error::invalid(format!(
                    "{what} cannot run inside a batch; run it after the `with store.batch()` block"
                )))),
                Slot::Closed => Err(Failure::Closed),
            }
        });
        r.map_err(|f| f.into_py(py))
    }

    /// The listing rows of the documents `filters` select, in id order.
    fn selected(
        &self,
        py: Python<'_>,
        filters: args::Filters<'_, '_>,
    ) -> PyResult<Vec<stratum::DocSummary>> {
        let sel = filters.selection()?;
        self.run(py, move |s| {
            let mut rows = Vec::new();
            s.select_summaries(&sel, &mut |d| {
                rows.push(d);
                Ok(())
            })?;
            Ok(rows)
        })
    }

    /// Opens the store again after a failed batch (the library's rule).
    fn reopen(&self) -> Result<(), Failure> {
        let mut slot = self.lock();
        if let Slot::Open(_) = &*slot {
            // The old store is dropped, and its lock released, first.
            *slot = Slot::Closed;
            *slot = Slot::Open(Box::new(Handle::open(self.opts.clone(), self.mode)?));
        }
        Ok(())
    }

    /// Ends the batch under way: commits, or rolls back. Any batch that
    /// does not commit leaves the store to be opened again (the library's
    /// rule after a failed batch).
    fn end_batch(&self, commit: bool) -> Result<(), Failure> {
        let mut slot = self.lock();
        let worker = match std::mem::replace(&mut *slot, Slot::Closed) {
            Slot::Batch(worker) => worker,
            // Closed inside the block: the batch was rolled back then.
            Slot::Closed => return Err(Failure::Closed),
            open @ Slot::Open(_) => {
                *slot = open;
                return Err(Failure::Lib(stratum::Error::invalid(
                    "no batch is under way on this handle",
                )));
            }
        };
        let outcome = match worker.finish(commit) {
            batch::Ended::Store(store, Ok(())) if commit => {
                *slot = Slot::Open(Box::new(Handle::Write(*store)));
                return Ok(());
            }
            batch::Ended::Store(store, Ok(())) => {
                drop(store);
                Ok(())
            }
            batch::Ended::Store(store, Err(e)) => {
                drop(store);
                // A rollback asked for is not a failure.
                if commit { Err(Failure::Lib(e)) } else { Ok(()) }
            }
            batch::Ended::Lost(why) => Err(Failure::Panic(why)),
        };
        // The old store is dropped (its lock released) before the new open
        // takes the lock again.
        match Handle::open(self.opts.clone(), self.mode) {
            Ok(store) => *slot = Slot::Open(Box::new(store)),
            Err(e) => return Err(outcome.err().unwrap_or(Failure::Lib(e))),
        }
        outcome
    }
}

/// One document for `load`, as a line in the `get` shape: a `Document` as
/// it prints itself, a dict as JSON (a `bytes` body becomes `body`, or
/// `body_base64` when it is not UTF-8; a node whose output is `stratum.NULL`
/// gets `"has_output":true`, which is how the shape tells a real null from
/// none).
fn doc_line(item: &Bound<'_, PyAny>, at: &str) -> PyResult<String> {
    if let Ok(d) = item.cast::<PyDocument>() {
        return d.get().to_json(item.py());
    }
    let Ok(dict) = item.cast::<PyDict>() else {
        return Err(errors::invalid(format!(
            "{at}: a document is a dict in the `get` shape or a stratum.Document"
        )));
    };
    // The caller's dict is left as it was: changes go to a copy.
    let dict = dict.copy()?;
    if let Some(b) = dict
        .get_item("body")?
        .filter(|b| b.is_instance_of::<PyBytes>() || b.is_instance_of::<PyByteArray>())
    {
        let bytes: Vec<u8> = b.extract()?;
        match String::from_utf8(bytes) {
            Ok(text) => dict.set_item("body", text)?,
            Err(e) => {
                dict.del_item("body")?;
                dict.set_item("body_base64", stratum::base64::encode(e.as_bytes()))?;
            }
        }
    }
    if let Some(inputs) = dict
        .get_item("inputs")?
        .filter(|i| i.is_instance_of::<PyList>() || i.is_instance_of::<PyTuple>())
    {
        let nodes = PyList::empty(item.py());
        for n in inputs.try_iter()? {
            let n = n?;
            let real_null = match n.cast::<PyDict>() {
                Ok(d) => {
                    d.get_item("output")?.is_some_and(|o| args::is_null(&o))
                        && !d.contains("has_output")?
                }
                Err(_) => false,
            };
            if real_null {
                let copy = n.cast::<PyDict>()?.copy()?;
                copy.set_item("has_output", true)?;
                nodes.append(copy)?;
            } else {
                nodes.append(n)?;
            }
        }
        dict.set_item("inputs", nodes)?;
    }
    Ok(value::to_json(dict.as_any(), at)?.as_str().to_owned())
}

/// The store's state is unknown after a panic: the handle is closed (its
/// store dropped, a batch rolled back by its worker).
fn close_after_panic(slot: &mut Slot) {
    if let Slot::Batch(worker) = std::mem::replace(slot, Slot::Closed) {
        let _ = worker.finish(false);
    }
}

fn text_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<u8>>> {
    obj.filter(|o| !o.is_none()).map(value::body).transpose()
}

#[pymethods]
impl PyStore {
    /// The data directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.opts.dir.clone()
    }

    /// True for a handle opened with `write=True`.
    #[getter]
    fn writable(&self) -> bool {
        self.mode == Mode::Write
    }

    /// True once the handle is closed.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        self.peek(py, |s| matches!(s, Slot::Closed))
    }

    /// True while a `with store.batch():` block is under way.
    #[getter]
    fn in_batch(&self, py: Python<'_>) -> bool {
        self.peek(py, |s| matches!(s, Slot::Batch(_)))
    }

    /// Creates a document and returns its id. `key` is a unique name (1 to
    /// 1024 bytes) by which every method can name the document; `meta` a
    /// dict.
    #[pyo3(signature = (body=None, category=None, version=None, *, key=None, meta=None))]
    fn create_doc(
        &self,
        py: Python<'_>,
        body: Option<&Bound<'_, PyAny>>,
        category: Option<String>,
        version: Option<String>,
        key: Option<String>,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let doc = NewDoc {
            key,
            category,
            version,
            meta: args::opt_meta(meta)?,
            body: text_arg(body)?.unwrap_or_default(),
        };
        self.write(py, move |s| s.create_doc(&doc)).map(|id| id.0)
    }

    /// The id of the live document whose key is `key`, or `None`.
    fn find_key(&self, py: Python<'_>, key: String) -> PyResult<Option<u64>> {
        self.run(py, move |s| s.find_key(&key))
            .map(|d| d.map(|d| d.0))
    }

    /// Appends an input node (with an optional expected output and meta)
    /// to a document's chain and returns its node id.
    #[pyo3(signature = (doc, input, output=None, *, meta=None))]
    fn add_input(
        &self,
        py: Python<'_>,
        doc: DocRef,
        input: &Bound<'_, PyAny>,
        output: Option<&Bound<'_, PyAny>>,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let input = value::to_json(input, "input")?;
        let output = args::output(output)?;
        let meta = args::opt_meta(meta)?;
        self.write(py, move |s| {
            let doc = doc.resolve(s)?;
            s.add_input_with_meta(doc, &input, meta.as_ref(), output.as_ref())
        })
        .map(|n| n.0)
    }

    /// Sets or replaces the expected output of a node; `stratum.NULL` is
    /// the JSON value null.
    fn set_output(
        &self,
        py: Python<'_>,
        doc: DocRef,
        node: u64,
        output: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let output =
            args::output(Some(output))?.ok_or_else(|| errors::invalid(args::NONE_OUTPUT))?;
        self.write(py, move |s| {
            let doc = doc.resolve(s)?;
            s.set_output(doc, NodeId(node), &output)
        })
    }

    /// Removes a node's expected output (nothing happens when it has none).
    fn clear_output(&self, py: Python<'_>, doc: DocRef, node: u64) -> PyResult<()> {
        self.write(py, move |s| {
            let doc = doc.resolve(s)?;
            s.clear_output(doc, NodeId(node))
        })
    }

    /// Changes what `update_input` is given of a node and keeps the rest:
    /// `meta=` a dict replaces its meta, `stratum.CLEAR` removes it, and
    /// `meta_patch=` a dict is merged into it (RFC 7386: a member set to
    /// None is removed, dicts merge, the members it does not name keep their
    /// exact text). The input and the output are kept (`set_output` changes
    /// the output).
    #[pyo3(signature = (doc, node, *, meta=None, meta_patch=None))]
    fn update_input(
        &self,
        py: Python<'_>,
        doc: DocRef,
        node: u64,
        meta: Option<&Bound<'_, PyAny>>,
        meta_patch: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let meta = args::patch(meta, args::meta)?;
        let meta_patch = args::meta_patch(meta_patch)?;
        let change = match (meta, meta_patch) {
            (Some(_), Some(_)) => return Err(errors::invalid(args::META_AND_PATCH)),
            (None, None) => return Err(errors::invalid("update_input needs meta or meta_patch")),
            (Some(m), None) => Ok(m),
            (None, Some(p)) => Err(p),
        };
        self.write(py, move |s| {
            let doc = doc.resolve(s)?;
            match change {
                Ok(m) => s.set_node_meta(doc, NodeId(node), m.as_ref()),
                Err(p) => s.merge_node_meta(doc, NodeId(node), &p),
            }
        })
    }

    /// A document with its whole chain; with `raw=True` its values are
    /// `stratum.Json` (the exact stored text).
    #[pyo3(signature = (doc, raw=false))]
    fn get(&self, py: Python<'_>, doc: DocRef, raw: bool) -> PyResult<PyDocument> {
        let d = self.run(py, move |s| s.get(doc.resolve(s)?))?;
        types::document(py, d, raw)
    }

    /// One node of a document.
    #[pyo3(signature = (doc, node, raw=false))]
    fn get_node(&self, py: Python<'_>, doc: DocRef, node: u64, raw: bool) -> PyResult<PyNode> {
        let n = self.run(py, move |s| s.get_node(doc.resolve(s)?, NodeId(node)))?;
        types::node(py, n, raw)
    }

    /// Replaces the fields given and keeps those left `None`;
    /// `stratum.CLEAR` removes a key, category, version or meta.
    /// `meta_patch=` a dict is merged into the meta instead (RFC 7386: a
    /// member set to None is removed, dicts merge, the members it does not
    /// name keep their exact text), in the same write as the other fields.
    #[pyo3(signature = (doc, body=None, category=None, version=None, *, key=None, meta=None, meta_patch=None))]
    #[expect(
        clippy::too_many_arguments,
        reason = "one per keyword argument of the Python method"
    )]
    fn update_doc(
        &self,
        py: Python<'_>,
        doc: DocRef,
        body: Option<&Bound<'_, PyAny>>,
        category: Option<&Bound<'_, PyAny>>,
        version: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        meta: Option<&Bound<'_, PyAny>>,
        meta_patch: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let patch = DocPatch {
            key: args::patch(key, |o| args::text(o, "key"))?,
            category: args::patch(category, |o| args::text(o, "category"))?,
            version: args::patch(version, |o| args::text(o, "version"))?,
            meta: args::patch(meta, args::meta)?,
            body: text_arg(body)?,
        };
        let meta_patch = args::meta_patch(meta_patch)?;
        if patch.meta.is_some() && meta_patch.is_some() {
            return Err(errors::invalid(args::META_AND_PATCH));
        }
        if patch.is_empty() && meta_patch.is_none() {
            return Err(errors::invalid(
                "update_doc needs at least one of body, category, version, key, meta, meta_patch",
            ));
        }
        self.write(py, move |s| {
            let doc = doc.resolve(s)?;
            match &meta_patch {
                Some(p) => s.update_doc_merging_meta(doc, &patch, p),
                None => s.update_doc(doc, &patch),
            }
        })
    }

    /// Deletes a document and its chain. Its id is never reused; its key
    /// is free again.
    fn delete_doc(&self, py: Python<'_>, doc: DocRef) -> PyResult<()> {
        self.write(py, move |s| {
            let doc = doc.resolve(s)?;
            s.delete_doc(doc)
        })
    }

    /// Deletes one input node and its output. Its id is never reused.
    fn delete_input(&self, py: Python<'_>, doc: DocRef, node: u64) -> PyResult<()> {
        self.write(py, move |s| {
            let doc = doc.resolve(s)?;
            s.delete_input(doc, NodeId(node))
        })
    }

    /// Stores documents given in the `get` shape (dicts, or `Document`s
    /// read from any store) as `stratum load` does: all of them or none,
    /// under new ids, or under their own with `keep_ids`. Every document is
    /// checked before anything is written. A document whose key a live
    /// document holds fails the load with `on_conflict="fail"`; `"replace"`
    /// makes that document this one, keeping its id (and the ids of its
    /// nodes whose input is unchanged, in order; nothing is written for what
    /// is already equal), and `"skip"` leaves it alone. Returns the ids: for
    /// a replaced or skipped document, the id of the one holding the key.
    #[pyo3(signature = (docs, keep_ids=false, *, on_conflict=None))]
    fn load(
        &self,
        py: Python<'_>,
        docs: &Bound<'_, PyAny>,
        keep_ids: bool,
        on_conflict: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<u64>> {
        if self.mode == Mode::Read {
            return Err(errors::error(READ_ONLY));
        }
        let on_conflict = args::on_conflict(on_conflict)?;
        let mut parsed = Vec::new();
        for (i, item) in docs.try_iter()?.enumerate() {
            let at = format!("document {}", i + 1);
            let line = doc_line(&item?, &at)?;
            let doc = stratum::Document::from_json(&line)
                .map_err(|e| errors::from_lib_at(py, e, Some(at)))?;
            parsed.push(doc);
        }
        // Inside a batch the batch is the unit; outside, one of its own.
        let in_batch = self.in_batch(py);
        let id_source = if keep_ids { Ids::Keep } else { Ids::Assign };
        let failed_at = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let at = std::sync::Arc::clone(&failed_at);
        let r = py.detach(|| {
            self.call(move |s| {
                let load = |s: &mut Store| {
                    let mut ids = Vec::with_capacity(parsed.len());
                    for (i, p) in parsed.iter().enumerate() {
                        at.store(i + 1, std::sync::atomic::Ordering::Relaxed);
                        ids.push(s.load_doc_or(p, id_source, on_conflict)?.id().0);
                    }
                    Ok(ids)
                };
                if in_batch { load(s) } else { s.atomic(load) }
            })
        });
        match r {
            Ok(ids) => Ok(ids),
            Err(Failure::Lib(e)) => {
                if !in_batch {
                    py.detach(|| self.reopen()).map_err(|f| f.into_py(py))?;
                }
                let n = failed_at.load(std::sync::atomic::Ordering::Relaxed);
                Err(errors::from_lib_at(py, e, Some(format!("document {n}"))))
            }
            Err(f) => Err(f.into_py(py)),
        }
    }

    /// One dict per live document, in id order: id, key, category,
    /// version, inputs, outputs, body_bytes (`stratum list --json`'s
    /// fields). The filters are `stratum list`'s, and each one given must
    /// hold: `category`, `key` (looked up, as fast as an id at any store
    /// size), `key_prefix`, `meta` (a dict of top-level fields and the
    /// values they must have, compared as exact text: `1.0` is not `1`),
    /// `ids` (an id, or a `range`; a narrow one is looked up id by id) and
    /// `missing_output` (a node without an expected output).
    #[pyo3(signature = (category=None, *, key=None, key_prefix=None, meta=None, ids=None, missing_output=false))]
    #[expect(
        clippy::too_many_arguments,
        reason = "one per keyword argument of the Python method"
    )]
    fn list<'py>(
        &self,
        py: Python<'py>,
        category: Option<String>,
        key: Option<String>,
        key_prefix: Option<String>,
        meta: Option<&Bound<'py, PyAny>>,
        ids: Option<&Bound<'py, PyAny>>,
        missing_output: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let filters = args::Filters {
            category,
            key,
            key_prefix,
            meta,
            ids,
            missing_output,
        };
        let rows = self.selected(py, filters)?;
        reports::summaries(py, &rows)
    }

    /// Every live document in id order, read one at a time; the filters are
    /// `list`'s (`stratum dump`'s). The selection is made when iteration
    /// starts: documents created meanwhile are not visited, deleted ones
    /// are skipped, and writes may be made between two steps.
    #[pyo3(signature = (raw=false, *, category=None, key=None, key_prefix=None, meta=None, ids=None, missing_output=false))]
    #[expect(
        clippy::too_many_arguments,
        reason = "one per keyword argument of the Python method"
    )]
    fn docs(
        slf: &Bound<'_, Self>,
        raw: bool,
        category: Option<String>,
        key: Option<String>,
        key_prefix: Option<String>,
        meta: Option<&Bound<'_, PyAny>>,
        ids: Option<&Bound<'_, PyAny>>,
        missing_output: bool,
    ) -> PyResult<DocIter> {
        let filters = args::Filters {
            category,
            key,
            key_prefix,
            meta,
            ids,
            missing_output,
        };
        let rows = slf.get().selected(slf.py(), filters)?;
        Ok(DocIter {
            store: slf.clone().unbind(),
            ids: rows.iter().map(|d| d.id.0).collect(),
            next: 0,
            raw,
        })
    }

    /// `with store.batch():` makes every write in the block land together
    /// when the block ends normally, or none of them when it raises. Every
    /// call on this handle meanwhile, from any thread, is part of the batch.
    fn batch(slf: &Bound<'_, Self>) -> PyResult<Batch> {
        if slf.get().mode == Mode::Read {
            return Err(errors::error(READ_ONLY));
        }
        Ok(Batch {
            store: slf.clone().unbind(),
        })
    }

    /// Merges the segments into new ones that hold only live data.
    fn compact<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        if self.mode == Mode::Read {
            return Err(errors::error(READ_ONLY));
        }
        let r = self.outside_batch(py, "compact", |slot| match slot {
            Slot::Open(s) => Ok(s.writer()?.compact(&mut |_| {})?),
            _ => Err(Failure::Closed),
        })?;
        reports::compact(py, &r)
    }

    /// Reads every byte of every file and reports each problem, as
    /// `stratum verify --json` does: damage is in the report (`ok` false),
    /// not raised. A write handle lets go of its lock while it runs.
    fn verify<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let opts = self.opts.clone();
        let mode = self.mode;
        let r = self.outside_batch(py, "verify", move |slot| {
            if mode == Mode::Write {
                // verify takes the shared lock on a descriptor of its own,
                // which our exclusive lock would keep out: let go, verify,
                // take it again.
                *slot = Slot::Closed;
                let report = engine::verify(&opts, &mut |_| {});
                *slot = Slot::Open(Box::new(Handle::open(opts, Mode::Write)?));
                Ok(report?)
            } else {
                Ok(engine::verify(&opts, &mut |_| {})?)
            }
        })?;
        reports::verify(py, &r)
    }

    /// Sizes, counts and the garbage ratio (`stratum stats --json`'s fields).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.run(py, |s| s.stats())?;
        reports::stats(py, &s)
    }

    /// Copies the store to `dest` (which must not exist or be empty),
    /// consistently, and verifies the copy. Every file is copied, so the
    /// copy shares no blocks with the store; `link=True` hard-links the
    /// sealed segments instead, as `stratum backup --link` does.
    #[pyo3(signature = (dest, *, link=false))]
    fn backup<'py>(
        &self,
        py: Python<'py>,
        dest: PathBuf,
        link: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let sealed = if link {
            engine::Sealed::Link
        } else {
            engine::Sealed::Copy
        };
        let r = self.outside_batch(py, "backup", move |slot| match slot {
            Slot::Open(s) => Ok(engine::backup(s, &dest, sealed, &mut |_| {})?),
            _ => Err(Failure::Closed),
        })?;
        reports::backup(py, &r)
    }

    /// Closes the handle and releases the lock; a batch under way is rolled
    /// back. Closing twice is harmless.
    fn close(&self, py: Python<'_>) {
        py.detach(|| {
            let mut slot = self.lock();
            if let Slot::Batch(worker) = std::mem::replace(&mut *slot, Slot::Closed) {
                let _ = worker.finish(false);
            }
        });
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = self.peek(py, |s| match s {
            Slot::Open(_) => "open",
            Slot::Batch(_) => "in a batch",
            Slot::Closed => "closed",
        });
        format!(
            "<stratum.Store {} ({}, {state})>",
            self.opts.dir.display(),
            if self.mode == Mode::Write {
                "write"
            } else {
                "read"
            }
        )
    }
}

/// The iterator `Store.docs()` returns.
#[pyclass(module = "stratum", name = "DocIter")]
struct DocIter {
    store: Py<PyStore>,
    ids: Vec<u64>,
    next: usize,
    raw: bool,
}

#[pymethods]
impl DocIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<PyDocument>> {
        while let Some(&id) = self.ids.get(self.next) {
            self.next += 1;
            let found = self.store.get().run(py, move |s| match s.get(DocId(id)) {
                Ok(d) => Ok(Some(d)),
                Err(stratum::Error::DocNotFound(_)) => Ok(None),
                Err(e) => Err(e),
            })?;
            if let Some(d) = found {
                return types::document(py, d, self.raw).map(Some);
            }
        }
        Ok(None)
    }

    fn __length_hint__(&self) -> usize {
        self.ids.len().saturating_sub(self.next)
    }
}

/// The context manager `Store.batch()` returns.
#[pyclass(module = "stratum", name = "Batch", frozen)]
struct Batch {
    store: Py<PyStore>,
}

#[pymethods]
impl Batch {
    fn __enter__(slf: Py<Self>, py: Python<'_>) -> PyResult<Py<Self>> {
        let store = slf.get().store.get();
        py.detach(|| {
            let mut slot = store.lock();
            match std::mem::replace(&mut *slot, Slot::Closed) {
                Slot::Open(h) => match *h {
                    // `batch()` refuses a read handle before it gets here.
                    Handle::Read(_) => {
                        *slot = Slot::Open(h);
                        Err(Failure::Lib(stratum::Error::invalid(READ_ONLY)))
                    }
                    Handle::Write(s) => match batch::Worker::start(Box::new(s)) {
                        Ok(worker) => {
                            *slot = Slot::Batch(worker);
                            Ok(())
                        }
                        Err((s, e)) => {
                            *slot = Slot::Open(Box::new(Handle::Write(*s)));
                            Err(Failure::Lib(stratum::Error::io(
                                "start the batch thread",
                                &store.opts.dir,
                                e,
                            )))
                        }
                    },
                },
                Slot::Batch(w) => {
                    *slot = Slot::Batch(w);
                    Err(Failure::Lib(stratum::Error::invalid(
                        "a batch is already under way on this handle (batches do not nest)",
                    )))
                }
                Slot::Closed => Err(Failure::Closed),
            }
        })
        .map_err(|f| f.into_py(py))?;
        Ok(slf)
    }

    #[pyo3(signature = (exc_type, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let commit = exc_type.is_none_or(|t| t.is_none());
        let store = self.store.get();
        py.detach(|| store.end_batch(commit))
            .map_err(|f| f.into_py(py))?;
        Ok(false)
    }
}

/// Opens the store in `path`.
#[pyfunction]
#[pyo3(signature = (path, write=true, sync=true, lock_timeout=10.0))]
fn open(
    py: Python<'_>,
    path: PathBuf,
    write: bool,
    sync: bool,
    lock_timeout: f64,
) -> PyResult<PyStore> {
    let mut opts = Options::new(path);
    opts.sync = sync;
    opts.lock_timeout = Duration::try_from_secs_f64(lock_timeout).map_err(|_| {
        errors::invalid(format!(
            "lock_timeout must be a number of seconds, 0 or more (got {lock_timeout})"
        ))
    })?;
    let mode = if write { Mode::Write } else { Mode::Read };
    let o = opts.clone();
    let mut store = py
        .detach(move || guard(|| Ok(Handle::open(o, mode)?)))
        .map_err(|f| f.into_py(py))?;
    let notices = store
        .take_notices()
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(PyStore {
        opts,
        mode,
        slot: Mutex::new(Slot::Open(Box::new(store))),
        notices,
    })
}

#[pymodule]
fn _stratum(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<PyStore>()?;
    m.add_class::<PyJson>()?;
    m.add_class::<PyDocument>()?;
    m.add_class::<PyNode>()?;
    m.add_class::<DocIter>()?;
    m.add_class::<Batch>()?;
    m.add_class::<args::PyClear>()?;
    m.add("CLEAR", Py::new(m.py(), args::PyClear)?)?;
    m.add("NULL", Py::new(m.py(), args::null(m.py())?)?)?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(dir: &std::path::Path) -> PyStore {
        let mut opts = Options::new(dir);
        opts.sync = false;
        let store = Store::open(opts.clone()).unwrap();
        PyStore {
            opts,
            mode: Mode::Write,
            slot: Mutex::new(Slot::Open(Box::new(Handle::Write(store)))),
            notices: Vec::new(),
        }
    }

    #[test]
    fn a_panic_closes_the_handle_and_releases_the_lock() {
        let tmp = std::env::temp_dir().join(format!("stratum-py-lib-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let h = handle(&tmp);
        assert!(matches!(
            h.call(|s| s.create_doc(&NewDoc::default())),
            Ok(DocId(1))
        ));
        let r: Result<(), Failure> = h.call(|_| panic!("in a call"));
        assert!(matches!(r, Err(Failure::Panic(m)) if m == "in a call"));
        assert!(matches!(h.call(|s| s.get(DocId(1))), Err(Failure::Closed)));
        // The store was dropped with its lock: another handle opens at once.
        let again = handle(&tmp);
        assert!(again.call(|s| s.get(DocId(1))).is_ok());
        drop(again);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
