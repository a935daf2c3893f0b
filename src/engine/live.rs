//! Which records are live: the one rule behind `stats`, the manifest's
//! per-member figures and selective compaction (docs/FORMAT.md §7.7, §8.5).
//!
//! A record is **kept** when compaction must copy it:
//! - the newest version of a live item (the document record, each live
//!   node's input, the record holding its newest output and its newest meta);
//! - a tombstone that still shadows a record which survives the compaction
//!   (Bitcask's resurrection bug #82): a `DocDelete` while any other record
//!   of its document survives, an `InputDelete` while any record of its node
//!   survives, an `OutputDelete` while an older output of its live node
//!   survives (an input record with its output folded in is kept whole);
//! - the `InputDelete` of the node that sets a live document's node
//!   high-water mark when no kept record carries it, so that a node id is
//!   never handed out twice.
//!
//! Figures count a record as live when it is kept by a compaction of its own
//! segment alone; a compaction of several segments may drop a few more
//! tombstones (those whose shadowed records are all in the merged set).

use std::collections::HashMap;

use crate::engine::format::Manifest;
use crate::engine::format::{self, FLAG_HAS_OUTPUT, Kind};
use crate::engine::index::Entry;
use crate::engine::view::{DocView, resolve};

/// Store-wide counters plus live bytes per segment number. Additions and
/// subtractions wrap: a difference of two figures is applied to a third.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Figures {
    pub documents: u64,
    pub inputs: u64,
    pub outputs: u64,
    pub tombstones: u64,
    /// Live bytes by segment number (absent: 0).
    pub live: HashMap<u64, u64>,
}

impl Figures {
    /// Adds (`sign` true) or subtracts what one document's entries
    /// contribute, counting a record live when a compaction of its own
    /// segment alone would keep it.
    pub fn account(&mut self, entries: &[Entry], add: bool) {
        // (documents, inputs, outputs, tombstones), and which records are
        // live: all of them in a fresh chain (a load's every document),
        // which needs no resolving.
        let (counts, keep) = match fresh_chain(entries) {
            Some((inputs, outputs)) => ([1, inputs, outputs, 0], None),
            None => {
                let view = resolve(entries);
                let keep = keep(entries, view.as_ref(), &|t, e| e.seg != t.seg);
                let (mut documents, mut inputs, mut outputs) = (0, 0, 0);
                if let Some(v) = &view {
                    documents = 1;
                    inputs = v.nodes.len() as u64;
                    outputs = v.nodes.values().filter(|(_, o)| o.is_some()).count() as u64;
                }
                let tombstones = entries
                    .iter()
                    .filter(|e| is_data(e) && matches!(e.kind, Kind::DocDelete | Kind::InputDelete))
                    .count() as u64;
                ([documents, inputs, outputs, tombstones], Some(keep))
            }
        };
        let op = |a: u64, b: u64| {
            if add {
                a.wrapping_add(b)
            } else {
                a.wrapping_sub(b)
            }
        };
        self.documents = op(self.documents, counts[0]);
        self.inputs = op(self.inputs, counts[1]);
        self.outputs = op(self.outputs, counts[2]);
        self.tombstones = op(self.tombstones, counts[3]);
        // A document's records are in a segment or two: sum per segment
        // first, then touch the map once per segment.
        let mut per_seg: Vec<(u64, u64)> = Vec::with_capacity(2);
        for (i, e) in entries.iter().enumerate() {
            if keep.as_ref().is_none_or(|k| k[i]) {
                match per_seg.iter_mut().find(|(seg, _)| *seg == e.seg) {
                    Some((_, n)) => *n += u64::from(e.len),
                    None => per_seg.push((e.seg, u64::from(e.len))),
                }
            }
        }
        for (seg, n) in per_seg {
            let slot = self.live.entry(seg).or_insert(0);
            *slot = op(*slot, n);
        }
    }

    /// Live bytes of segment `seg`.
    pub fn live_of(&self, seg: u64) -> u64 {
        self.live.get(&seg).copied().unwrap_or(0)
    }
}

/// For a document written once and never changed (its `DocPut`, then an
/// `InputPut` of each node in ascending node order, no key entry among
/// them), its (inputs, outputs): every record of it is live, none is a
/// tombstone. `None` for anything else, which is resolved in full.
fn fresh_chain(entries: &[Entry]) -> Option<(u64, u64)> {
    let (doc, nodes) = entries.split_first()?;
    if doc.kind != Kind::DocPut || doc.node != 0 || !is_data(doc) {
        return None;
    }
    let (mut last, mut outputs) = (0u64, 0u64);
    for e in nodes {
        if e.kind != Kind::InputPut || e.node <= last || e.doc != doc.doc {
            return None;
        }
        last = e.node;
        outputs += u64::from(e.flags & FLAG_HAS_OUTPUT != 0);
    }
    Some((nodes.len() as u64, outputs))
}

/// A record of the document's own (not a key entry of §7.6, which points at
/// a `DocPut` another entry already stands for).
fn is_data(e: &Entry) -> bool {
    e.doc < format::KEY_SPACE
}

/// For each of one document's entries, whether compaction keeps it (see the
/// module docs). `survives(t, e)` says whether record `e`, which tombstone
/// `t` shadows, stays on disk whatever becomes of `t` (it is outside the
/// merged set); a kept record always survives.
pub(crate) fn keep(
    entries: &[Entry],
    view: Option<&DocView>,
    survives: &dyn Fn(&Entry, &Entry) -> bool,
) -> Vec<bool> {
    let at = |e: &Entry| (e.seg, e.offset);
    let mut keep = vec![false; entries.len()];
    let Some(v) = view else {
        // Deleted (or never written): only a DocDelete can be needed.
        for (k, t) in entries.iter().enumerate() {
            if is_data(t) && t.kind == Kind::DocDelete {
                keep[k] = entries
                    .iter()
                    .any(|e| is_data(e) && e.kind != Kind::DocDelete && survives(t, e));
            }
        }
        return keep;
    };
    let mut live: Vec<(u64, u64)> = Vec::with_capacity(2 * v.nodes.len() + 1);
    live.push(at(&v.doc));
    for (input, output) in v.nodes.values() {
        live.push(at(input));
        if let Some(o) = output {
            live.push(at(o));
        }
    }
    live.extend(v.metas.values().map(at));
    live.sort_unstable();
    for (k, e) in entries.iter().enumerate() {
        keep[k] = is_data(e) && live.binary_search(&at(e)).is_ok();
    }
    // Newest output-bearing record per node, to tell a live OutputDelete
    // (only worth working out when there is one).
    let mut newest_output: HashMap<u64, u64> = HashMap::new();
    if entries.iter().any(|e| e.kind == Kind::OutputDelete) {
        for e in entries.iter().filter(|e| is_data(e) && carries_output(e)) {
            let s = newest_output.entry(e.node).or_insert(e.seq);
            *s = (*s).max(e.seq);
        }
    }
    let floor = v.nodes.keys().copied().max().unwrap_or(0).max(v.doc.aux);
    let mut hwm_held = floor >= v.node_hwm;
    for k in 0..entries.len() {
        let t = &entries[k];
        if !is_data(t) || keep[k] {
            continue;
        }
        let needed = match t.kind {
            Kind::InputDelete => {
                let shadows = entries.iter().any(|e| {
                    is_data(e) && e.node == t.node && e.kind != Kind::InputDelete && survives(t, e)
                });
                if !shadows && !hwm_held && t.node == v.node_hwm {
                    hwm_held = true;
                    true
                } else {
                    shadows
                }
            }
            Kind::OutputDelete => {
                v.nodes.get(&t.node).is_some_and(|(_, o)| o.is_none())
                    && newest_output.get(&t.node) == Some(&t.seq)
                    && entries.iter().enumerate().any(|(j, e)| {
                        is_data(e)
                            && e.node == t.node
                            && e.seq < t.seq
                            && (e.kind == Kind::OutputPut
                                || (e.kind == Kind::InputPut && e.flags & FLAG_HAS_OUTPUT != 0))
                            && (keep[j] || survives(t, e))
                    })
            }
            _ => false,
        };
        keep[k] = needed;
    }
    keep
}

/// Whether a record sets or clears a node's output.
fn carries_output(e: &Entry) -> bool {
    matches!(e.kind, Kind::OutputPut | Kind::OutputDelete)
        || (e.kind == Kind::InputPut && e.flags & FLAG_HAS_OUTPUT != 0)
}

/// The figures the manifest holds (its members alone, as if `active.seg`
/// were empty), or `None` when any of them is "not known".
pub(crate) fn of_manifest(m: &Manifest) -> Option<Figures> {
    let [documents, inputs, outputs, tombstones] = m.counters;
    if m.counters.contains(&format::UNKNOWN) {
        return None;
    }
    let mut live = std::collections::HashMap::with_capacity(m.members.len());
    for x in &m.members {
        if x.live_bytes == format::UNKNOWN || x.dead_bytes == format::UNKNOWN {
            return None;
        }
        live.insert(x.number, x.live_bytes);
    }
    Some(Figures {
        documents,
        inputs,
        outputs,
        tombstones,
        live,
    })
}

/// Stores `f` (figures of exactly the members, as if `active.seg` were
/// empty) in `m`; `None` marks every figure "not known".
pub(crate) fn set_in_manifest(m: &mut Manifest, f: Option<&Figures>) {
    match f {
        Some(f) => {
            m.counters = [f.documents, f.inputs, f.outputs, f.tombstones];
            for x in &mut m.members {
                let live = f.live_of(x.number).min(x.len);
                (x.live_bytes, x.dead_bytes) = (live, x.len - live);
            }
        }
        None => {
            m.counters = [format::UNKNOWN; 4];
            for x in &mut m.members {
                (x.live_bytes, x.dead_bytes) = (format::UNKNOWN, format::UNKNOWN);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: Kind, node: u64, seq: u64, seg: u64, flags: u8) -> Entry {
        Entry {
            doc: 7,
            node,
            seq,
            offset: seq * 100,
            aux: 0,
            len: 40 + seq as u32,
            kind,
            flags,
            seg,
        }
    }

    /// The figures of `entries` as resolving them in full gives.
    fn resolved(entries: &[Entry]) -> Figures {
        let mut f = Figures::default();
        let view = resolve(entries);
        let keep = keep(entries, view.as_ref(), &|t, e| e.seg != t.seg);
        if let Some(v) = &view {
            f.documents = 1;
            f.inputs = v.nodes.len() as u64;
            f.outputs = v.nodes.values().filter(|(_, o)| o.is_some()).count() as u64;
        }
        for (e, k) in entries.iter().zip(keep) {
            if k {
                *f.live.entry(e.seg).or_insert(0) += u64::from(e.len);
            }
        }
        f
    }

    #[test]
    fn a_fresh_chain_counts_as_resolving_it_does() {
        let doc = entry(Kind::DocPut, 0, 1, 3, 0);
        let mut chain = vec![doc];
        for node in 1..=5 {
            let flags = if node % 2 == 0 { FLAG_HAS_OUTPUT } else { 0 };
            // The last two in the next segment, as when a batch's file
            // fills in the middle of a document.
            let seg = if node > 3 { 4 } else { 3 };
            chain.push(entry(Kind::InputPut, node, 1 + node, seg, flags));
        }
        assert_eq!(fresh_chain(&chain), Some((5, 2)));
        let mut f = Figures::default();
        f.account(&chain, true);
        assert_eq!(f, resolved(&chain));
        f.account(&chain, false);
        assert_eq!(f.documents + f.inputs + f.outputs, 0);
        assert!(f.live.values().all(|n| *n == 0));

        // Anything else is resolved: a node twice, a node out of order, an
        // output set later, no DocPut first.
        let mut twice = chain.clone();
        twice.push(entry(Kind::InputPut, 5, 20, 4, 0));
        let mut later = chain.clone();
        later.push(entry(Kind::OutputPut, 2, 21, 4, 0));
        for other in [
            twice,
            later,
            chain[1..].to_vec(),
            chain.iter().rev().copied().collect(),
        ] {
            assert_eq!(fresh_chain(&other), None);
            let mut f = Figures::default();
            f.account(&other, true);
            assert_eq!(f.live, resolved(&other).live);
        }
    }
}
