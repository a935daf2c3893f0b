//! `stats` and the manifest's figures, worked out from the parts of a store
//! that hold them: the sealed set (with the manifest's counters) and the
//! active segment. The rule for what counts as live is `engine::live`'s;
//! this module only reads, and owns no state.

use crate::engine::active::{Active, ActiveSegment, Marks};
use crate::engine::format;
use crate::engine::index::{Entry, Merge};
use crate::engine::live::{Figures, of_manifest};
use crate::engine::sealed::SealedSet;
use crate::error::Result;

/// Per-segment figures for `stats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentStats {
    /// File name.
    pub name: String,
    /// File size in bytes.
    pub bytes: u64,
    /// Bytes of records that are the newest version of a live item.
    pub live_bytes: u64,
    /// Everything else: old versions, deleted items, tombstones, framing.
    pub dead_bytes: u64,
}

/// Whole-store figures for `stats`.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// One entry per segment, oldest first, `active.seg` last.
    pub segments: Vec<SegmentStats>,
    /// Live documents.
    pub documents: u64,
    /// Live input nodes.
    pub inputs: u64,
    /// Live nodes with an expected output.
    pub outputs: u64,
    /// Tombstone records (document and node deletions) still on disk.
    pub tombstones: u64,
    /// Sum of segment sizes.
    pub total_bytes: u64,
    /// Sum of live bytes.
    pub live_bytes: u64,
    /// `1 - live/total`, 0 for an empty store.
    pub garbage_ratio: f64,
    /// Sequence number of the newest record.
    pub last_seq: u64,
    /// Highest document id ever assigned.
    pub doc_id_high_water: u64,
    /// Format version of the store.
    pub format_version: u16,
    /// The newest compaction still on disk: the file name of its first
    /// segment and how many segments it wrote. `None` if the store was
    /// never compacted.
    pub last_compaction: Option<(String, u32)>,
}

/// Every entry of document `id` in the sealed members (not `active.seg`).
fn member_entries(sealed: &SealedSet, id: u64) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for s in sealed.iter().filter(|s| s.may_hold(id)) {
        for ie in s.index()?.lookup(id, s.docs(), &|| s.scan_entries())? {
            out.push(Entry::new(&ie, s.number));
        }
    }
    Ok(out)
}

/// The whole store's figures from a merge of every index: the fallback when
/// the manifest's are not known, and the reference the tests compare with.
pub(crate) fn merged(sealed: &SealedSet, active: &ActiveSegment) -> Result<Figures> {
    let mut f = Figures::default();
    let mut sources = sealed.cursors()?;
    for a in active.segments() {
        sources.extend(a.cursors()?);
    }
    let mut merge = Merge { sources };
    while let Some(entries) = merge.next_doc()? {
        f.account(&entries, true);
    }
    Ok(f)
}

/// The members' figures alone (as if `active.seg` were empty), from a
/// merge of their indexes: what a manifest without figures is given.
pub(crate) fn merged_members(sealed: &SealedSet) -> Result<Figures> {
    let mut f = Figures::default();
    let mut sources = Vec::with_capacity(sealed.len());
    for s in sealed.iter() {
        sources.push((
            s.index()?.cursor(Box::new(move || s.scan_entries()))?,
            s.number,
        ));
    }
    let mut merge = Merge { sources };
    while let Some(entries) = merge.next_doc()? {
        f.account(&entries, true);
    }
    Ok(f)
}

/// The whole store's figures from the manifest's, plus what the records of
/// `active.seg` change: their own bytes and counts, and what they supersede
/// in the members. Costs a lookup per document `active.seg` touches, not a
/// pass over the store. `None` when the manifest's figures are not known.
pub(crate) fn counted(sealed: &SealedSet, active: &ActiveSegment) -> Result<Option<Figures>> {
    let Some(mut f) = sealed.manifest().and_then(of_manifest) else {
        return Ok(None);
    };
    if sealed.len() != f.live.len() {
        return Ok(None);
    }
    let mut sources = Vec::with_capacity(4);
    for a in active.segments() {
        sources.extend(a.cursors()?);
    }
    let mut merge = Merge { sources };
    while let Some(own) = merge.next_doc()? {
        if own.first().is_none_or(|e| e.doc >= format::KEY_SPACE) {
            continue;
        }
        absorb(sealed, &mut f, &own)?;
    }
    Ok(Some(f))
}

/// Adds to `f` (figures of the sealed members) what one document's records
/// `own`, in a segment not among them, change: their own share, and what
/// they supersede in the members.
pub(crate) fn absorb(sealed: &SealedSet, f: &mut Figures, own: &[Entry]) -> Result<()> {
    let Some(id) = own.first().map(|e| e.doc) else {
        return Ok(());
    };
    let mut all = member_entries(sealed, id)?;
    if all.is_empty() {
        // A new document (each of a load's): nothing superseded, nothing
        // to copy.
        f.account(own, true);
        return Ok(());
    }
    f.account(&all, false);
    all.extend_from_slice(own);
    f.account(&all, true);
    Ok(())
}

/// The figures as they stand: counted when the manifest has them, merged
/// otherwise.
pub(crate) fn current(sealed: &SealedSet, active: &ActiveSegment) -> Result<Figures> {
    match counted(sealed, active)? {
        Some(f) => Ok(f),
        None => merged(sealed, active),
    }
}

/// Whole-store figures for `stats`, from `f`: `active` is the file being
/// appended to, `marks` the store's id marks.
pub(crate) fn stats_from(sealed: &SealedSet, active: &Active, marks: Marks, f: &Figures) -> Stats {
    let seg = |name: String, number: u64, bytes: u64| {
        let live_bytes = f.live_of(number).min(bytes);
        SegmentStats {
            name,
            bytes,
            live_bytes,
            dead_bytes: bytes - live_bytes,
        }
    };
    let mut segs: Vec<SegmentStats> = sealed
        .iter()
        .map(|s| seg(format::segment_name(s.number), s.number, s.len))
        .collect();
    segs.push(seg(
        format::ACTIVE_NAME.to_owned(),
        active.number(),
        active.len(),
    ));
    let total_bytes: u64 = segs.iter().map(|s| s.bytes).sum();
    let live_bytes: u64 = segs.iter().map(|s| s.live_bytes).sum();
    Stats {
        segments: segs,
        documents: f.documents,
        inputs: f.inputs,
        outputs: f.outputs,
        tombstones: f.tombstones,
        total_bytes,
        live_bytes,
        garbage_ratio: if total_bytes == 0 {
            0.0
        } else {
            1.0 - live_bytes as f64 / total_bytes as f64
        },
        last_seq: marks.last_seq(),
        doc_id_high_water: marks.doc_hwm,
        format_version: sealed.format_version(),
        last_compaction: last_compaction(sealed),
    }
}

/// The compaction outputs still on disk: the first one's name and how many
/// there are. In format 2 every member compaction wrote carries the flag;
/// in format 1 the newest generation says the same.
fn last_compaction(sealed: &SealedSet) -> Option<(String, u32)> {
    if sealed.manifest().is_none() {
        return sealed
            .iter()
            .filter_map(|s| s.generation)
            .max()
            .map(|(base, count)| (format::segment_name(base), count));
    }
    let outputs: Vec<u64> = sealed
        .iter()
        .filter(|s| s.generation.is_some())
        .map(|s| s.number)
        .collect();
    let first = outputs.iter().min()?;
    Some((format::segment_name(*first), outputs.len() as u32))
}
