//! The salvage scan: every record of a segment file that passes its check,
//! found past damage by resynchronising a byte at a time (see
//! `engine::repair` for what `salvage`, `repair` and `verify` do with it).
//! It only reads, and knows nothing of stores: one file in, its records out.

use std::path::Path;

use crate::engine::format::{
    self, FLAG_BATCH, IndexEntry, Kind, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, SealPayload,
    SegmentHeader,
};
use crate::engine::segment::Reader;
use crate::engine::vfs::VFile;
use crate::error::{IoContext, Result};

/// What a salvage scan of one file found.
pub(crate) struct Salvaged {
    /// The header, when it decoded.
    pub header: Option<SegmentHeader>,
    /// Valid, committed data records, in file order.
    pub entries: Vec<IndexEntry>,
    /// Byte ranges that could not be read.
    pub damaged: Vec<(u64, u64)>,
    /// Records (data, commit and seal) that passed their check.
    pub good_records: u64,
    /// The seal footer, when it survived.
    pub seal: Option<SealPayload>,
    /// Intact records of a batch with no commit at the end of the file
    /// (never acknowledged), left out.
    pub uncommitted: u64,
}

/// Reads every record of `file` that passes its check, resynchronising
/// past damage (see the module docs).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read.
pub(crate) fn salvage_scan(file: &dyn VFile, path: &Path) -> Result<Salvaged> {
    let len = file.len().io("stat", path)?;
    let mut rd = Reader::new(file, len);
    let head = rd.get(0, SEGMENT_HEADER_LEN, path)?;
    let header = SegmentHeader::decode(head).ok();
    let mut out = Salvaged {
        header,
        entries: Vec::new(),
        damaged: Vec::new(),
        good_records: 0,
        seal: None,
        uncommitted: 0,
    };
    if header.is_none() {
        out.damaged
            .push((0, SEGMENT_HEADER_LEN.min(len as usize) as u64));
    }
    let mut pending: Vec<IndexEntry> = Vec::new();
    let mut last_seq = 0u64;
    let mut bad_from: Option<u64> = None;
    let mut at = SEGMENT_HEADER_LEN as u64;
    while at < len {
        let b = rd.get(at, RECORD_HEADER_LEN, path)?;
        let decoded = format::decode_header(b).ok().and_then(|h| {
            if h.seq <= last_seq || at + h.total_len() > len {
                return None;
            }
            let rec = rd.get(at, h.total_len() as usize, path).ok()?;
            let (h, payload) = format::decode_record(rec).ok()?;
            let aux = if h.kind == Kind::DocPut {
                format::doc_node_hwm(payload)?
            } else {
                0
            };
            Some((h, aux))
        });
        let Some((h, aux)) = decoded else {
            if bad_from.is_none() {
                bad_from = Some(at);
            }
            at += 1;
            continue;
        };
        if let Some(from) = bad_from.take() {
            out.damaged.push((from, at));
        }
        out.good_records += 1;
        last_seq = h.seq;
        match h.kind {
            Kind::Seal => {
                let p = rd.get(at + RECORD_HEADER_LEN as u64, h.payload_len as usize, path)?;
                out.seal = SealPayload::decode(p);
            }
            Kind::Commit => out.entries.append(&mut pending),
            _ => {
                let e = IndexEntry::from_header(&h, at, aux);
                if h.flags & FLAG_BATCH == 0 {
                    // A write after an open batch: its commit was lost to
                    // damage, not to a crash (see the module docs).
                    out.entries.append(&mut pending);
                    out.entries.push(e);
                } else {
                    pending.push(e);
                }
            }
        }
        at += h.total_len();
    }
    if let Some(from) = bad_from {
        out.damaged.push((from, len));
    }
    out.uncommitted = pending.len() as u64;
    Ok(out)
}
