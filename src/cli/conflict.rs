//! `--on-conflict` for `load` and `apply`: what a new document does when a
//! live document already holds its key. Regenerated fixtures are loaded
//! again with `replace`, and the store ends up as if they had been loaded
//! once.
//!
//! A replaced document keeps its id. Its fields become the new ones, and
//! its chain is matched node by node, in order: while the inputs are the
//! same, a node keeps its id and only its output and meta are brought up to
//! date; from the first input that differs, the old nodes left are deleted
//! and the new ones appended with new node ids (ids are never reused).
//! Nothing is written for what is already equal, so loading the same data
//! again writes nothing at all.

use clap::ValueEnum;

use stratum::{DocId, DocPatch, Error, Json, NewDoc, Node, NodeId, Result, Store};

/// The values of `--on-conflict`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OnConflict {
    /// Refuse the whole batch (exit 4), as without the flag.
    #[default]
    Fail,
    /// Replace the document holding the key, keeping its id.
    Replace,
    /// Leave the document holding the key as it is.
    Skip,
}

/// What creating a document came to.
pub enum Created {
    /// A new document.
    New(DocId),
    /// The document holding the key is being replaced; its chain follows.
    Replaced(Replacing),
    /// The document holding the key was left alone.
    Skipped(DocId),
}

/// Creates `new`, or deals with the live document holding its key as `on`
/// says.
///
/// # Errors
/// As [`Store::create_doc`] (a taken key with [`OnConflict::Fail`]).
pub fn create(store: &mut Store, new: &NewDoc, on: OnConflict) -> Result<Created> {
    Ok(match holder(store, new, on)? {
        None => Created::New(store.create_doc(new)?),
        Some(id) if on == OnConflict::Skip => Created::Skipped(id),
        Some(id) => Created::Replaced(replace(store, id, new)?),
    })
}

/// The live document holding `new`'s key, when `on` says to deal with it
/// (with [`OnConflict::Fail`] the write itself refuses a taken key).
///
/// # Errors
/// As [`Store::find_key`].
pub fn holder(store: &Store, new: &NewDoc, on: OnConflict) -> Result<Option<DocId>> {
    match (&new.key, on) {
        (Some(k), OnConflict::Replace | OnConflict::Skip) => store.find_key(k),
        _ => Ok(None),
    }
}

/// Starts replacing document `id` by `new`: its fields are brought up to
/// date now (nothing is written for those already equal), its chain by
/// [`Replacing::add`] and [`Replacing::finish`].
///
/// # Errors
/// As [`Store::get`] and [`Store::update_doc`].
pub fn replace(store: &mut Store, id: DocId, new: &NewDoc) -> Result<Replacing> {
    let old = store.get(id)?;
    let patch = DocPatch {
        key: None,
        category: (old.category != new.category).then(|| new.category.clone()),
        version: (old.version != new.version).then(|| new.version.clone()),
        meta: (old.meta != new.meta).then(|| new.meta.clone()),
        body: (old.body != new.body).then(|| new.body.clone()),
    };
    if !patch.is_empty() {
        store.update_doc(id, &patch)?;
    }
    Ok(Replacing {
        doc: id,
        old: old.inputs,
        next: 0,
        diverged: false,
    })
}

/// A document being replaced: its old chain, and how far the new chain has
/// matched it.
pub struct Replacing {
    doc: DocId,
    old: Vec<Node>,
    next: usize,
    diverged: bool,
}

impl Replacing {
    /// The document's id.
    pub fn id(&self) -> DocId {
        self.doc
    }

    /// The next node of the new chain.
    ///
    /// # Errors
    /// As [`Store::add_input_with_meta`], [`Store::set_output`],
    /// [`Store::set_node_meta`].
    pub fn add(
        &mut self,
        store: &mut Store,
        input: &Json,
        meta: Option<&Json>,
        output: Option<&Json>,
    ) -> Result<NodeId> {
        if !self.diverged
            && let Some(old) = self.old.get(self.next)
            && old.input == *input
            && live(store, self.doc, old.id)?
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
        for old in &self.old[self.next..] {
            // An operation earlier in the same batch may have deleted it.
            if live(store, self.doc, old.id)? {
                store.delete_input(self.doc, old.id)?;
            }
        }
        self.next = self.old.len();
        Ok(())
    }
}

/// Whether `node` is still a live node of `doc`.
fn live(store: &Store, doc: DocId, node: NodeId) -> Result<bool> {
    match store.get_node(doc, node) {
        Ok(_) => Ok(true),
        Err(Error::NodeNotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
