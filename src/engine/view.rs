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
///
/// The entries are sorted by node, then seq, and read in one pass a node
/// at a time: a listing resolves every document of the store, and building
/// three maps per document by random inserts was most of a `list`'s time.
pub(crate) fn resolve(entries: &[Entry]) -> Option<DocView> {
    let mut own: Vec<Entry> = Vec::with_capacity(entries.len());
    for e in entries.iter().filter(|e| e.doc < format::KEY_SPACE) {
        if e.kind == Kind::DocDelete {
            return None;
        }
        own.push(*e);
    }
    // Stable, so that of two copies of one record (equal node and seq) the
    // first stays first: the newest wins, the first of equals, as before
    // (an input, the last of equals).
    own.sort_by_key(|e| (e.node, e.seq));
    let newer = |cur: Option<Entry>, e: &Entry| cur.is_none_or(|c| c.seq < e.seq);
    let mut doc: Option<Entry> = None;
    let mut node_hwm = 0u64;
    let mut nodes = Vec::new();
    let mut metas = Vec::new();
    for group in own.chunk_by(|a, b| a.node == b.node) {
        let node = group[0].node;
        let (mut input, mut output, mut meta, mut deleted) = (None, None, None, false);
        for e in group {
            match e.kind {
                Kind::DocPut => {
                    node_hwm = node_hwm.max(e.aux);
                    if newer(doc, e) {
                        doc = Some(*e);
                    }
                }
                Kind::InputPut => {
                    node_hwm = node_hwm.max(e.node);
                    input = Some(*e);
                    if e.flags & format::FLAG_HAS_OUTPUT != 0 && newer(output, e) {
                        output = Some(*e);
                    }
                }
                Kind::OutputPut | Kind::OutputDelete if newer(output, e) => output = Some(*e),
                Kind::NodeMetaPut if newer(meta, e) => meta = Some(*e),
                Kind::InputDelete => {
                    node_hwm = node_hwm.max(e.node);
                    deleted = true;
                }
                _ => {}
            }
        }
        let Some(input) = input.filter(|_| !deleted) else {
            continue;
        };
        // A node's own meta field counts unless a newer NodeMetaPut
        // replaced it.
        if let Some(m) = meta.filter(|m| m.seq > input.seq) {
            metas.push((node, m));
        }
        nodes.push((
            node,
            (input, output.filter(|o| o.kind != Kind::OutputDelete)),
        ));
    }
    Some(DocView {
        doc: doc?,
        node_hwm,
        nodes: nodes.into_iter().collect(),
        metas: metas.into_iter().collect(),
    })
}
