//! What writing a document does when a live document already holds its
//! key: fail, replace that document, or skip the new one ([`OnConflict`]).
//! Regenerated fixtures are loaded again with [`OnConflict::Replace`], and
//! the store ends up as if they had been loaded once.
//!
//! A replaced document keeps its id. Its fields become the new ones, and
//! its chain is matched node by node, in order: while the inputs are the
//! same, a node keeps its id and only its output and meta are brought up to
//! date; from the first input that differs, the old nodes left are deleted
//! and the new ones appended with new node ids (ids are never reused).
//! Nothing is written for what is already equal, so loading the same data
//! again writes nothing at all.

use std::fmt;
use std::str::FromStr;

use crate::engine::Ids;
use crate::error::{Error, Result};
use crate::json::Json;
use crate::model::{DocPatch, NewDoc, Node, ParsedDoc};
use crate::{DocId, NodeId, Store};

/// What a new document does whose key a live document already holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnConflict {
    /// Refuse it: [`Error::InvalidInput`], as a write without a policy.
    #[default]
    Fail,
    /// Replace the document holding the key, keeping its id (see the
    /// module docs).
    Replace,
    /// Leave the document holding the key as it is, and write nothing.
    Skip,
}

impl OnConflict {
    /// The policy's name: `fail`, `replace` or `skip`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::Fail => "fail",
            OnConflict::Replace => "replace",
            OnConflict::Skip => "skip",
        }
    }
}

impl fmt::Display for OnConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OnConflict {
    type Err = Error;

    /// Parses `fail`, `replace` or `skip`.
    fn from_str(s: &str) -> Result<OnConflict> {
        match s {
            "fail" => Ok(OnConflict::Fail),
            "replace" => Ok(OnConflict::Replace),
            "skip" => Ok(OnConflict::Skip),
            other => Err(Error::invalid(format!(
                "unknown conflict policy {other:?} (expected fail, replace or skip)"
            ))),
        }
    }
}

/// What [`Store::create_doc_or`] came to.
pub enum Created {
    /// A new document.
    New(DocId),
    /// The document holding the key is being replaced: its fields are
    /// brought up to date already, and its chain follows by
    /// [`Replacing::add`] and [`Replacing::finish`].
    Replaced(Replacing),
    /// The document holding the key was left alone.
    Skipped(DocId),
}

/// What [`Store::load_doc_or`] came to; each holds the document's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loaded {
    /// Stored as a new document.
    New(DocId),
    /// The document holding its key was replaced by it.
    Replaced(DocId),
    /// The document holding its key was left alone.
    Skipped(DocId),
}

impl Loaded {
    /// The id of the document that now holds the line: the new one, or the
    /// one that held its key.
    pub fn id(self) -> DocId {
        match self {
            Loaded::New(id) | Loaded::Replaced(id) | Loaded::Skipped(id) => id,
        }
    }
}

impl Store {
    /// Creates `new`, or deals with the live document holding its key as
    /// `on` says. A document being replaced gets its chain from the caller
    /// (see [`Created::Replaced`]), so that a batch can give it node by
    /// node.
    ///
    /// # Errors
    /// As [`Store::create_doc`] (a taken key with [`OnConflict::Fail`]), and
    /// [`Store::update_doc`] for a replacement.
    pub fn create_doc_or(&mut self, new: &NewDoc, on: OnConflict) -> Result<Created> {
        Ok(match self.key_holder(new, on)? {
            None => Created::New(self.create_doc(new)?),
            Some(id) if on == OnConflict::Skip => Created::Skipped(id),
            Some(id) => Created::Replaced(self.start_replacing(id, new)?),
        })
    }

    /// As [`Store::load_doc`], with the live document holding `parsed`'s key
    /// dealt with as `on` says: a replacement takes `parsed`'s fields and
    /// chain whole (see the module docs), a skip writes nothing.
    ///
    /// ```
    /// use stratum::{Document, Ids, Loaded, OnConflict, Options, Store};
    ///
    /// # fn main() -> stratum::Result<()> {
    /// # let dir = std::env::temp_dir().join(format!("stratum-doc-oc-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let mut store = Store::open(Options::new(&dir))?;
    /// let v1 = Document::from_json(r#"{"key":"two-sum","body":"v1","inputs":[{"input":[1,2],"output":3}]}"#)?;
    /// let v2 = Document::from_json(r#"{"key":"two-sum","body":"v2","inputs":[{"input":[1,2],"output":4}]}"#)?;
    /// let id = store.load_doc_or(&v1, Ids::Assign, OnConflict::Fail)?.id();
    /// assert_eq!(store.load_doc_or(&v2, Ids::Assign, OnConflict::Replace)?, Loaded::Replaced(id));
    /// let doc = store.get(id)?;
    /// assert_eq!((doc.body.as_slice(), doc.inputs[0].output.as_ref().map(|o| o.as_str())), (&b"v2"[..], Some("4")));
    /// assert!(store.load_doc_or(&v1, Ids::Assign, OnConflict::Fail).is_err());
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Store::load_doc`]; [`Error::InvalidInput`] for kept ids
    /// ([`Ids::keeps`]) with a policy other than [`OnConflict::Fail`] (a replaced document
    /// keeps its own id, not the one given).
    pub fn load_doc_or(&mut self, parsed: &ParsedDoc, ids: Ids, on: OnConflict) -> Result<Loaded> {
        if ids.keeps() && on != OnConflict::Fail {
            return Err(Error::invalid(format!(
                "keeping the given ids and the conflict policy {on} do not go together: a replaced or skipped document keeps its own id"
            )));
        }
        Ok(match self.key_holder(&parsed.doc, on)? {
            None => Loaded::New(self.load_doc(parsed, ids)?),
            Some(id) if on == OnConflict::Skip => Loaded::Skipped(id),
            Some(id) => {
                let mut doc = self.start_replacing(id, &parsed.doc)?;
                for n in &parsed.inputs {
                    doc.add(self, &n.input, n.meta.as_ref(), n.output.as_ref())?;
                }
                doc.finish(self)?;
                Loaded::Replaced(id)
            }
        })
    }

    /// The live document holding `new`'s key, when `on` says to deal with
    /// it (with [`OnConflict::Fail`] the write itself refuses a taken key).
    fn key_holder(&self, new: &NewDoc, on: OnConflict) -> Result<Option<DocId>> {
        match (&new.key, on) {
            (Some(k), OnConflict::Replace | OnConflict::Skip) => self.find_key(k),
            _ => Ok(None),
        }
    }

    /// Starts replacing document `id` by `new`: its fields are brought up
    /// to date now (nothing is written for those already equal), its chain
    /// by [`Replacing::add`] and [`Replacing::finish`].
    fn start_replacing(&mut self, id: DocId, new: &NewDoc) -> Result<Replacing> {
        // The old chain is kept as node ids and each node read when the new
        // chain reaches it: a batch replacing many documents holds ids until
        // it commits, not every old value.
        let (old, nodes) = self.retry_stale(|| {
            let reads = self.reads();
            let view = reads.view(id)?;
            let old = reads.read_doc_record(&view.doc)?;
            let nodes: Vec<NodeId> = view.nodes.keys().map(|&n| NodeId(n)).collect();
            Ok((old, nodes))
        })?;
        let patch = DocPatch {
            key: None,
            category: (old.category != new.category).then(|| new.category.clone()),
            version: (old.version != new.version).then(|| new.version.clone()),
            meta: (old.meta.as_deref() != new.meta.as_ref().map(Json::as_str))
                .then(|| new.meta.clone()),
            body: (old.body != new.body).then(|| new.body.clone()),
        };
        if !patch.is_empty() {
            self.update_doc(id, &patch)?;
        }
        Ok(Replacing {
            doc: id,
            old: nodes,
            next: 0,
            diverged: false,
        })
    }
}

/// A document being replaced: its old chain's node ids, and how far the new
/// chain has matched it. Give it the new chain's nodes in order with
/// [`Replacing::add`], then end it with [`Replacing::finish`]; a
/// replacement dropped before `finish` keeps the old nodes it did not reach.
#[must_use = "a replacement deletes the old nodes it did not reach only in `finish`"]
pub struct Replacing {
    doc: DocId,
    old: Vec<NodeId>,
    next: usize,
    diverged: bool,
}

impl Replacing {
    /// The document's id.
    pub fn id(&self) -> DocId {
        self.doc
    }

    /// The next node of the new chain: the old node in its place keeps its
    /// id when its input is the same (its output and meta are brought up to
    /// date); otherwise the rest of the old chain goes and a node is added.
    ///
    /// # Errors
    /// As [`Store::add_input_with_meta`], [`Store::set_output`],
    /// [`Store::set_node_meta`], [`Store::delete_input`].
    pub fn add(
        &mut self,
        store: &mut Store,
        input: &Json,
        meta: Option<&Json>,
        output: Option<&Json>,
    ) -> Result<NodeId> {
        if !self.diverged
            && let Some(&id) = self.old.get(self.next)
            && let Some(old) = live_node(store, self.doc, id)?
            && old.input == *input
        {
            self.next += 1;
            if old.output.as_ref() != output {
                match output {
                    Some(o) => store.set_output(self.doc, old.id, o)?,
                    None => store.clear_output(self.doc, old.id)?,
                }
            }
            if old.meta.as_ref() != meta {
                store.set_node_meta(self.doc, old.id, meta)?;
            }
            return Ok(old.id);
        }
        if !self.diverged {
            self.diverged = true;
            self.drop_rest(store)?;
        }
        store.add_input_with_meta(self.doc, input, meta, output)
    }

    /// Ends the new chain: the old nodes it did not reach are deleted.
    ///
    /// # Errors
    /// As [`Store::delete_input`].
    pub fn finish(mut self, store: &mut Store) -> Result<()> {
        if !self.diverged {
            self.drop_rest(store)?;
        }
        Ok(())
    }

    fn drop_rest(&mut self, store: &mut Store) -> Result<()> {
        for &id in &self.old[self.next..] {
            // A write earlier in the same batch may have deleted it.
            if live_node(store, self.doc, id)?.is_some() {
                store.delete_input(self.doc, id)?;
            }
        }
        self.next = self.old.len();
        Ok(())
    }
}

/// Node `node` of `doc`, when it is still live.
fn live_node(store: &Store, doc: DocId, node: NodeId) -> Result<Option<Node>> {
    match store.get_node(doc, node) {
        Ok(n) => Ok(Some(n)),
        Err(Error::NodeNotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
