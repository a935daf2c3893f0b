//! The reference model the fault tests compare a store with: documents,
//! their chains, and the id high-water marks, kept in plain maps.
//!
//! [`exec`] runs one operation on a store and applies it to the model, so the
//! model always holds the ids the store really handed out; it checks on the
//! way that every new id exceeds every id handed out before (G4).

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
    /// Highest node id ever handed out in this document.
    pub node_hwm: u64,
}

/// The logical state of a store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub docs: BTreeMap<u64, MDoc>,
    /// Highest document id ever handed out.
    pub doc_hwm: u64,
}

/// One logical operation, with the ids it targets.
#[derive(Clone, Debug)]
pub enum Op {
    Create(NewDoc),
    Update(u64, DocPatch),
    AddInput(u64, Json, Option<Json>),
    SetOutput(u64, u64, Json),
    ClearOutput(u64, u64),
    /// Sets (`Some`) or clears a node's meta.
    SetNodeMeta(u64, u64, Option<Json>),
    DeleteInput(u64, u64),
    DeleteDoc(u64),
}

impl Model {
    /// The documents `dump` should produce, in id order.
    pub fn documents(&self) -> Vec<Document> {
        self.docs.iter().map(|(id, d)| document(*id, d)).collect()
    }

    pub fn live_ids(&self) -> Vec<u64> {
        self.docs.keys().copied().collect()
    }

    /// The live document holding `key`.
    pub fn key_holder(&self, key: &str) -> Option<u64> {
        self.docs
            .iter()
            .find(|(_, d)| d.key.as_deref() == Some(key))
            .map(|(id, _)| *id)
    }

    /// Applies an operation whose ids the store returned: `new_id` is the id
    /// `Create` or `AddInput` got.
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
                        node_hwm: 0,
                    },
                );
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
                d.node_hwm = d.node_hwm.max(new_id);
                d.nodes.insert(new_id, (input.clone(), output.clone()));
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

fn document(id: u64, d: &MDoc) -> Document {
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

/// Runs `op` on `store` and applies it to `model`.
///
/// # Panics
/// When the store hands out an id that does not exceed every earlier one.
pub fn exec(store: &mut Store, model: &mut Model, op: &Op) -> stratum::Result<()> {
    let mut new_id = 0;
    match op {
        Op::Create(d) => {
            let id = store.create_doc(d)?.0;
            assert!(
                id > model.doc_hwm,
                "create_doc returned {id}, not above the high-water mark {}",
                model.doc_hwm
            );
            new_id = id;
        }
        Op::Update(id, p) => store.update_doc(DocId(*id), p)?,
        Op::AddInput(id, i, o) => {
            let n = store.add_input(DocId(*id), i, o.as_ref())?.0;
            let hwm = model.docs[id].node_hwm;
            assert!(n > hwm, "add_input returned node {n}, not above {hwm}");
            new_id = n;
        }
        Op::SetOutput(id, n, o) => store.set_output(DocId(*id), NodeId(*n), o)?,
        Op::ClearOutput(id, n) => store.clear_output(DocId(*id), NodeId(*n))?,
        Op::SetNodeMeta(id, n, m) => store.set_node_meta(DocId(*id), NodeId(*n), m.as_ref())?,
        Op::DeleteInput(id, n) => store.delete_input(DocId(*id), NodeId(*n))?,
        Op::DeleteDoc(id) => store.delete_doc(DocId(*id))?,
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
    Ok(())
}
