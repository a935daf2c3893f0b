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
        let view = resolve(entries);
        let keep = keep(entries, view.as_ref(), &|t, e| e.seg != t.seg);
        let op = |a: u64, b: u64| {
            if add {
                a.wrapping_add(b)
            } else {
                a.wrapping_sub(b)
            }
        };
        if let Some(v) = &view {
            self.documents = op(self.documents, 1);
            self.inputs = op(self.inputs, v.nodes.len() as u64);
            let outputs = v.nodes.values().filter(|(_, o)| o.is_some()).count();
            self.outputs = op(self.outputs, outputs as u64);
        }
        let tombstones = entries
            .iter()
            .filter(|e| is_data(e) && matches!(e.kind, Kind::DocDelete | Kind::InputDelete))
            .count();
        self.tombstones = op(self.tombstones, tombstones as u64);
        // A document's records are in a segment or two: sum per segment
        // first, then touch the map once per segment.
        let mut per_seg: Vec<(u64, u64)> = Vec::with_capacity(2);
        for (e, k) in entries.iter().zip(keep) {
            if k {
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
