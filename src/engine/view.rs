//! A document's live state from its index entries: newest wins by sequence
//! number. The one rule every reader (gets, listings, stats, compaction)
//! resolves a document by; it owns no state.

use crate::engine::format::{self, Kind};
use crate::engine::index::Entry;

/// A map from node id to `V`, kept as a vector in ascending node order:
/// [`resolve`] meets the nodes in that order, so it is built by pushes, and
/// read by walks and binary searches. A listing resolves every document of
/// the store, and a `BTreeMap` built per document was a fifth of its time.
pub(crate) struct NodeMap<V> {
    sorted: Vec<(u64, V)>,
}

impl<V> NodeMap<V> {
    /// From pairs in strictly ascending node order.
    fn from_sorted(sorted: Vec<(u64, V)>) -> NodeMap<V> {
        debug_assert!(sorted.windows(2).all(|w| w[0].0 < w[1].0));
        NodeMap { sorted }
    }

    pub fn get(&self, node: &u64) -> Option<&V> {
        self.sorted
            .binary_search_by_key(node, |(n, _)| *n)
            .ok()
            .map(|i| &self.sorted[i].1)
    }

    pub fn contains_key(&self, node: &u64) -> bool {
        self.get(node).is_some()
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Node ids, ascending.
    pub fn keys(&self) -> impl Iterator<Item = &u64> {
        self.sorted.iter().map(|(n, _)| n)
    }

    /// Values in node order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.sorted.iter().map(|(_, v)| v)
    }
}

impl<'a, V> IntoIterator for &'a NodeMap<V> {
    type Item = (&'a u64, &'a V);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (u64, V)>, fn(&'a (u64, V)) -> (&'a u64, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.sorted.iter().map(|(n, v)| (n, v))
    }
}

/// A document's live state, resolved from its index entries.
pub(crate) struct DocView {
    pub doc: Entry,
    /// Highest node id ever assigned in this document.
    pub node_hwm: u64,
    /// Live nodes in chain order: the input entry and the entry holding the
    /// newest output, if any (never an `OutputDelete`: a cleared output is
    /// `None`).
    pub nodes: NodeMap<(Entry, Option<Entry>)>,
    /// Nodes whose newest meta is a `NodeMetaPut` rather than their
    /// `InputPut`'s meta field.
    pub metas: NodeMap<Entry>,
}

/// What the index says of a live document, without its nodes' entries:
/// what a listing or a filter on the node counts needs of each document.
pub(crate) struct Outline {
    /// The document's newest `DocPut`.
    pub doc: Entry,
    /// Live nodes.
    pub inputs: u64,
    /// Live nodes with an output.
    pub outputs: u64,
    /// Bytes of the records the live state is read from (progress).
    pub bytes: u64,
}

/// Resolves a document's entries (any order) into its live state: `None`
/// when it was deleted or never existed. Newest wins by sequence number.
/// Key entries (docs/FORMAT.md §7.6) are not the document's own and are
/// skipped.
pub(crate) fn resolve(entries: &[Entry]) -> Option<DocView> {
    let mut own: Vec<Entry> = entries
        .iter()
        .filter(|e| e.doc < format::KEY_SPACE)
        .copied()
        .collect();
    sort_entries(&mut own);
    resolve_sorted(&own)
}

/// Puts one document's entries in the order [`resolve_sorted`] and
/// [`outline_sorted`] read them: by node, then seq. Stable, so that of two
/// copies of one record (equal node and seq) the first stays first: the
/// newest wins, the first of equals, as before (an input, the last of
/// equals).
pub(crate) fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by_key(|e| (e.node, e.seq));
}

/// [`resolve`] of entries in [`sort_entries`] order.
pub(crate) fn resolve_sorted(sorted: &[Entry]) -> Option<DocView> {
    let mut nodes = Vec::with_capacity(sorted.len());
    let mut metas = Vec::new();
    let (doc, node_hwm) = walk(sorted, |node, input, output, meta| {
        if let Some(m) = meta {
            metas.push((node, m));
        }
        nodes.push((node, (input, output)));
    })?;
    Some(DocView {
        doc,
        node_hwm,
        nodes: NodeMap::from_sorted(nodes),
        metas: NodeMap::from_sorted(metas),
    })
}

/// The [`Outline`] of entries in [`sort_entries`] order: the rule of
/// [`resolve`], keeping counts instead of the nodes' entries.
pub(crate) fn outline_sorted(sorted: &[Entry]) -> Option<Outline> {
    let (mut inputs, mut outputs, mut bytes) = (0u64, 0u64, 0u64);
    let (doc, _) = walk(sorted, |_, input, output, _| {
        inputs += 1;
        bytes += u64::from(input.len);
        if let Some(o) = output {
            outputs += 1;
            bytes += u64::from(o.len);
        }
    })?;
    Some(Outline {
        bytes: bytes + u64::from(doc.len),
        doc,
        inputs,
        outputs,
    })
}

/// The one resolution rule: calls `node` with each live node of entries in
/// [`sort_entries`] order (its input, its newest output unless that is a
/// deletion, its newest `NodeMetaPut` when newer than the input), and
/// returns the newest `DocPut` and the node high-water mark; `None` when
/// the document was deleted or has no `DocPut`. Key entries are skipped.
///
/// The entries are read in one pass a node at a time: a listing resolves
/// every document of the store, and building three maps per document by
/// random inserts was most of a `list`'s time.
fn walk(
    sorted: &[Entry],
    mut node: impl FnMut(u64, Entry, Option<Entry>, Option<Entry>),
) -> Option<(Entry, u64)> {
    let own = |e: &&Entry| e.doc < format::KEY_SPACE;
    if sorted.iter().filter(own).any(|e| e.kind == Kind::DocDelete) {
        return None;
    }
    let newer = |cur: Option<Entry>, e: &Entry| cur.is_none_or(|c| c.seq < e.seq);
    let mut doc: Option<Entry> = None;
    let mut node_hwm = 0u64;
    for group in sorted.chunk_by(|a, b| a.node == b.node) {
        let id = group[0].node;
        let (mut input, mut output, mut meta, mut deleted) = (None, None, None, false);
        for e in group.iter().filter(own) {
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
        node(
            id,
            input,
            output.filter(|o| o.kind != Kind::OutputDelete),
            meta.filter(|m| m.seq > input.seq),
        );
    }
    Some((doc?, node_hwm))
}
