//! A document's live state from its index entries: newest wins by sequence
//! number. The one rule every reader (gets, listings, stats, compaction)
//! resolves a document by; it owns no state.

use std::collections::BTreeMap;

use crate::engine::format::{self, Kind};
use crate::engine::index::Entry;

/// A document's live state, resolved from its index entries.
pub(crate) struct DocView {
    pub doc: Entry,
    /// Highest node id ever assigned in this document.
    pub node_hwm: u64,
    /// Live nodes in chain order: the input entry and the entry holding the
    /// newest output, if any (never an `OutputDelete`: a cleared output is
    /// `None`).
    pub nodes: BTreeMap<u64, (Entry, Option<Entry>)>,
    /// Nodes whose newest meta is a `NodeMetaPut` rather than their
    /// `InputPut`'s meta field.
    pub metas: BTreeMap<u64, Entry>,
}

/// Resolves a document's entries (any order) into its live state: `None`
/// when it was deleted or never existed. Newest wins by sequence number.
/// Key entries (docs/FORMAT.md §7.6) are not the document's own and are
/// skipped.
pub(crate) fn resolve(entries: &[Entry]) -> Option<DocView> {
    let mut doc: Option<Entry> = None;
    let mut node_hwm = 0u64;
    let mut inputs: BTreeMap<u64, Entry> = BTreeMap::new();
    let mut outputs: BTreeMap<u64, Entry> = BTreeMap::new();
    let mut metas: BTreeMap<u64, Entry> = BTreeMap::new();
    let mut deleted_nodes: Vec<u64> = Vec::new();
    for e in entries.iter().filter(|e| e.doc < format::KEY_SPACE) {
        match e.kind {
            Kind::DocDelete => return None,
            Kind::DocPut => {
                node_hwm = node_hwm.max(e.aux);
                if doc.is_none_or(|d| d.seq < e.seq) {
                    doc = Some(*e);
                }
            }
            Kind::InputPut => {
                node_hwm = node_hwm.max(e.node);
                inputs.insert(e.node, *e);
                if e.flags & format::FLAG_HAS_OUTPUT != 0 {
                    newest(&mut outputs, e);
                }
            }
            Kind::OutputPut | Kind::OutputDelete => newest(&mut outputs, e),
            Kind::NodeMetaPut => newest(&mut metas, e),
            Kind::InputDelete => {
                node_hwm = node_hwm.max(e.node);
                deleted_nodes.push(e.node);
            }
            Kind::Commit | Kind::Seal => {}
        }
    }
    for n in deleted_nodes {
        inputs.remove(&n);
    }
    // A node's own meta field counts unless a newer NodeMetaPut replaced it.
    metas.retain(|n, m| inputs.get(n).is_some_and(|i| m.seq > i.seq));
    let nodes = inputs
        .into_iter()
        .map(|(n, input)| {
            let output = outputs
                .get(&n)
                .copied()
                .filter(|o| o.kind != Kind::OutputDelete);
            (n, (input, output))
        })
        .collect();
    Some(DocView {
        doc: doc?,
        node_hwm,
        nodes,
        metas,
    })
}

fn newest(map: &mut BTreeMap<u64, Entry>, e: &Entry) {
    let slot = map.entry(e.node).or_insert(*e);
    if slot.seq < e.seq {
        *slot = *e;
    }
}
