//! The one reference model every harness compares a store with: documents,
//! their chains, and the id high-water marks, kept in plain maps, and the one
//! [`Op`] for the writes that change them.
//!
//! The library harnesses (model-based, crash, corruption tests) run an `Op`
//! on a [`Store`] with [`exec`], which applies it to the model with the ids
//! the store really handed out and checks on the way that every new id
//! exceeds every id handed out before (G4). The fault harness drives the
//! binary instead; its layer (`tests/faults/history.rs`) renders the same
//! `Op` as a command line, allocates ids the way a correct store must, and
//! keeps the "acknowledged or not" bookkeeping on top of this model.

use std::collections::BTreeMap;

use stratum::{DocId, DocPatch, Document, Json, NewDoc, Node, NodeId, Store};

/// One document as the model holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MDoc {
    pub key: Option<String>,
    pub category: Option<String>,
    pub version: Option<String>,
    pub meta: Option<Json>,
    pub body: Vec<u8>,
    /// Live nodes: input and output.
    pub nodes: BTreeMap<u64, (Json, Option<Json>)>,
    /// The meta of the live nodes that have one.
    pub node_meta: BTreeMap<u64, Json>,
}

/// Live documents by id.
pub type Docs = BTreeMap<u64, MDoc>;

/// The logical state of a store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub docs: Docs,
    /// Highest document id ever handed out.
    pub doc_hwm: u64,
    /// Highest node id ever handed out, per document (kept after the
    /// document is deleted: ids are never reused).
    pub node_hwm: BTreeMap<u64, u64>,
}

/// One write, with the document it targets given as a `D`: an id for the
/// library harnesses; the fault harness's batches also name "the document
/// line K of this batch created".
#[derive(Clone, Debug)]
pub enum Op<D = u64> {
    Create(NewDoc),
    Update(D, DocPatch),
    AddInput(D, Json, Option<Json>),
    SetOutput(D, u64, Json),
    ClearOutput(D, u64),
    /// Sets (`Some`) or clears a node's meta.
    SetNodeMeta(D, u64, Option<Json>),
    DeleteInput(D, u64),
    DeleteDoc(D),
}

impl<D: Copy> Op<D> {
    /// The document the write targets (`None` for a create).
    pub fn doc(&self) -> Option<D> {
        match self {
            Op::Create(_) => None,
            Op::Update(d, _)
            | Op::AddInput(d, ..)
            | Op::SetOutput(d, ..)
            | Op::ClearOutput(d, _)
            | Op::SetNodeMeta(d, ..)
            | Op::DeleteInput(d, _)
            | Op::DeleteDoc(d) => Some(*d),
        }
    }

    /// The node the write targets, if any.
    pub fn node(&self) -> Option<u64> {
        match self {
            Op::SetOutput(_, n, _)
            | Op::ClearOutput(_, n)
            | Op::SetNodeMeta(_, n, _)
            | Op::DeleteInput(_, n) => Some(*n),
            _ => None,
        }
    }

    /// The same write aimed at document `f(doc)`.
    pub fn map_doc<E>(&self, f: impl FnOnce(D) -> E) -> Op<E> {
        match self {
            Op::Create(d) => Op::Create(d.clone()),
            Op::Update(d, p) => Op::Update(f(*d), p.clone()),
            Op::AddInput(d, i, o) => Op::AddInput(f(*d), i.clone(), o.clone()),
            Op::SetOutput(d, n, o) => Op::SetOutput(f(*d), *n, o.clone()),
            Op::ClearOutput(d, n) => Op::ClearOutput(f(*d), *n),
            Op::SetNodeMeta(d, n, m) => Op::SetNodeMeta(f(*d), *n, m.clone()),
            Op::DeleteInput(d, n) => Op::DeleteInput(f(*d), *n),
            Op::DeleteDoc(d) => Op::DeleteDoc(f(*d)),
        }
    }
}

impl Model {
    /// The documents `dump` should produce, in id order.
    pub fn documents(&self) -> Vec<Document> {
        self.docs.iter().map(|(id, d)| document(*id, d)).collect()
    }

    pub fn live_ids(&self) -> Vec<u64> {
        self.docs.keys().copied().collect()
    }

    /// The highest node id ever handed out in document `doc`.
    pub fn node_hwm(&self, doc: u64) -> u64 {
        self.node_hwm.get(&doc).copied().unwrap_or(0)
    }

    /// The live document holding `key`.
    pub fn key_holder(&self, key: &str) -> Option<u64> {
        self.docs
            .iter()
            .find(|(_, d)| d.key.as_deref() == Some(key))
            .map(|(id, _)| *id)
    }

    /// Why a correct store must refuse `op` on this state (a missing
    /// document or node, or a key another live document holds), or `None`
    /// when it must accept it.
    pub fn refusal(&self, op: &Op) -> Option<String> {
        let taken = |key: Option<&str>, own: Option<u64>| {
            key.and_then(|k| self.key_holder(k))
                .filter(|h| Some(*h) != own)
                .map(|h| format!("key {key:?} is held by document {h}"))
        };
        if let Op::Create(d) = op {
            return taken(d.key.as_deref(), None);
        }
        let id = op.doc()?;
        let Some(doc) = self.docs.get(&id) else {
            return Some(format!("document {id} does not exist"));
        };
        if let Some(n) = op.node()
            && !doc.nodes.contains_key(&n)
        {
            return Some(format!("node {id}/{n} does not exist"));
        }
        match op {
            Op::Update(_, p) => taken(p.key.clone().flatten().as_deref(), Some(id)),
            _ => None,
        }
    }

    /// Applies an operation whose ids the store returned: `new_id` is the id
    /// `Create` or `AddInput` got.
    ///
    /// # Panics
    /// When `op` aims at a document or node the model does not hold.
    pub fn apply(&mut self, op: &Op, new_id: u64) {
        match op {
            Op::Create(d) => {
                self.doc_hwm = self.doc_hwm.max(new_id);
                self.docs.insert(
                    new_id,
                    MDoc {
                        key: d.key.clone(),
                        category: d.category.clone(),
                        version: d.version.clone(),
                        meta: d.meta.clone(),
                        body: d.body.clone(),
                        nodes: BTreeMap::new(),
                        node_meta: BTreeMap::new(),
                    },
                );
                self.node_hwm.insert(new_id, 0);
            }
            Op::Update(id, p) => {
                let d = self.docs.get_mut(id).expect("update of a live doc");
                if let Some(k) = &p.key {
                    d.key = k.clone();
                }
                if let Some(m) = &p.meta {
                    d.meta = m.clone();
                }
                if let Some(c) = &p.category {
                    d.category = c.clone();
                }
                if let Some(v) = &p.version {
                    d.version = v.clone();
                }
                if let Some(b) = &p.body {
                    d.body = b.clone();
                }
            }
            Op::AddInput(id, input, output) => {
                let d = self.docs.get_mut(id).expect("add to a live doc");
                d.nodes.insert(new_id, (input.clone(), output.clone()));
                let hwm = self.node_hwm.entry(*id).or_insert(0);
                *hwm = (*hwm).max(new_id);
            }
            Op::SetOutput(id, node, out) => {
                let d = self.docs.get_mut(id).expect("live doc");
                d.nodes.get_mut(node).expect("live node").1 = Some(out.clone());
            }
            Op::ClearOutput(id, node) => {
                let d = self.docs.get_mut(id).expect("live doc");
                d.nodes.get_mut(node).expect("live node").1 = None;
            }
            Op::SetNodeMeta(id, node, meta) => {
                let d = self.docs.get_mut(id).expect("live doc");
                assert!(d.nodes.contains_key(node), "meta of a live node");
                match meta {
                    Some(m) => d.node_meta.insert(*node, m.clone()),
                    None => d.node_meta.remove(node),
                };
            }
            Op::DeleteInput(id, node) => {
                let d = self.docs.get_mut(id).expect("live doc");
                d.nodes.remove(node);
                d.node_meta.remove(node);
            }
            Op::DeleteDoc(id) => {
                self.docs.remove(id);
            }
        }
    }

    /// What differs between the model and what a store returned: empty when
    /// they agree. Names lost items, revived ones and changed ones apart.
    pub fn diff(&self, got: &[Document]) -> Vec<String> {
        let mut out = Vec::new();
        let got: BTreeMap<u64, &Document> = got.iter().map(|d| (d.id.0, d)).collect();
        for (id, d) in &self.docs {
            match got.get(id) {
                None => out.push(format!("doc {id} missing")),
                Some(g) => {
                    let want = document(*id, d);
                    if **g != want {
                        out.push(format!(
                            "doc {id} differs: want {} got {}",
                            want.to_json(),
                            g.to_json()
                        ));
                    }
                }
            }
        }
        for id in got.keys() {
            if !self.docs.contains_key(id) {
                if *id <= self.doc_hwm {
                    out.push(format!("doc {id} was deleted but is back"));
                } else {
                    out.push(format!("doc {id} was never created"));
                }
            }
        }
        out
    }
}

/// Document `id` as the library returns it.
pub fn document(id: u64, d: &MDoc) -> Document {
    Document {
        id: DocId(id),
        key: d.key.clone(),
        category: d.category.clone(),
        version: d.version.clone(),
        meta: d.meta.clone(),
        body: d.body.clone(),
        inputs: d
            .nodes
            .iter()
            .map(|(n, (i, o))| Node {
                id: NodeId(*n),
                input: i.clone(),
                meta: d.node_meta.get(n).cloned(),
                output: o.clone(),
            })
            .collect(),
    }
}

/// Runs `op` on `store` and nothing else: the id `Create` or `AddInput` got,
/// else 0.
pub fn call(store: &mut Store, op: &Op) -> stratum::Result<u64> {
    match op {
        Op::Create(d) => store.create_doc(d).map(|id| id.0),
        Op::Update(id, p) => store.update_doc(DocId(*id), p).map(|()| 0),
        Op::AddInput(id, i, o) => store.add_input(DocId(*id), i, o.as_ref()).map(|n| n.0),
        Op::SetOutput(id, n, o) => store.set_output(DocId(*id), NodeId(*n), o).map(|()| 0),
        Op::ClearOutput(id, n) => store.clear_output(DocId(*id), NodeId(*n)).map(|()| 0),
        Op::SetNodeMeta(id, n, m) => store
            .set_node_meta(DocId(*id), NodeId(*n), m.as_ref())
            .map(|()| 0),
        Op::DeleteInput(id, n) => store.delete_input(DocId(*id), NodeId(*n)).map(|()| 0),
        Op::DeleteDoc(id) => store.delete_doc(DocId(*id)).map(|()| 0),
    }
}

/// Runs `op` on `store` and applies it to `model`.
///
/// # Panics
/// When the store hands out an id that does not exceed every earlier one.
pub fn exec(store: &mut Store, model: &mut Model, op: &Op) -> stratum::Result<()> {
    let new_id = call(store, op)?;
    match op {
        Op::Create(_) => assert!(
            new_id > model.doc_hwm,
            "create_doc returned {new_id}, not above the high-water mark {}",
            model.doc_hwm
        ),
        Op::AddInput(id, ..) => {
            let hwm = model.node_hwm(*id);
            assert!(
                new_id > hwm,
                "add_input returned node {new_id}, not above {hwm}"
            );
        }
        _ => {}
    }
    model.apply(op, new_id);
    Ok(())
}

/// Everything `dump` returns.
pub fn dump(store: &Store) -> stratum::Result<Vec<Document>> {
    let mut out = Vec::new();
    store.dump(&mut |_| {}, &mut |d| {
        out.push(d.clone());
        Ok(())
    })?;
    Ok(out)
}

/// Compares `get` of every id up to one past the high-water mark with the
/// model: live ids must match, others must be `DocNotFound`.
pub fn check_gets(store: &Store, model: &Model) -> Result<(), String> {
    for id in 1..=model.doc_hwm + 1 {
        match (store.get(DocId(id)), model.docs.get(&id)) {
            (Ok(got), Some(d)) => {
                let want = document(id, d);
                if got != want {
                    return Err(format!(
                        "get {id}: want {} got {}",
                        want.to_json(),
                        got.to_json()
                    ));
                }
            }
            (Err(stratum::Error::DocNotFound(_)), None) => {}
            (Ok(got), None) => {
                return Err(format!(
                    "get {id}: deleted or never created, got {}",
                    got.to_json()
                ));
            }
            (Err(e), _) => return Err(format!("get {id}: {e}")),
        }
    }
    // Every key names its document, through the key index when it is
    // valid, whatever state a fault left it in.
    for (id, d) in &model.docs {
        let Some(k) = &d.key else { continue };
        match store.find_key(k) {
            Ok(Some(got)) if got == DocId(*id) => {}
            other => return Err(format!("find_key {k:?}: want {id}, got {other:?}")),
        }
    }
    Ok(())
}
