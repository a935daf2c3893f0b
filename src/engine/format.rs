//! Bytes on disk: segment header, record framing, record kinds, index files.
//!
//! The layout is specified in `docs/FORMAT.md`; this module implements it and
//! its unit tests pin the constants to the numbers written there. All
//! integers are little-endian. Every decoder here checks lengths before
//! slicing or allocating and returns `None`/`Err` on bad bytes; none panics.

use std::mem::size_of;

/// Format version written to every segment and index header.
pub const FORMAT_VERSION: u16 = 1;

/// Segment magic: `\x89STRSEG\n`. The high first byte catches 7-bit
/// transfers; the newline catches line-ending conversion (as PNG does).
pub const SEGMENT_MAGIC: [u8; 8] = *b"\x89STRSEG\n";
/// Index magic: `\x89STRIDX\n`.
pub const INDEX_MAGIC: [u8; 8] = *b"\x89STRIDX\n";

// Segment header. See docs/FORMAT.md §Segment header.
const SH_MAGIC: usize = 0;
const SH_VERSION: usize = SH_MAGIC + SEGMENT_MAGIC.len();
const SH_FLAGS: usize = SH_VERSION + size_of::<u16>();
const SH_NUMBER: usize = SH_FLAGS + size_of::<u16>() + size_of::<u32>();
const SH_GEN_BASE: usize = SH_NUMBER + size_of::<u64>();
const SH_GEN_COUNT: usize = SH_GEN_BASE + size_of::<u64>();
const SH_CRC: usize = SH_GEN_COUNT + size_of::<u32>();
/// Bytes in a segment header.
pub const SEGMENT_HEADER_LEN: usize = SH_CRC + size_of::<u32>();

/// Segment header flag: the segment was written by compaction.
pub const SEG_FLAG_COMPACTED: u16 = 1;

// Record header. See docs/FORMAT.md §Record layout.
const RH_CRC: usize = 0;
const RH_LEN: usize = RH_CRC + size_of::<u32>();
const RH_SEQ: usize = RH_LEN + size_of::<u32>();
const RH_KIND: usize = RH_SEQ + size_of::<u64>();
const RH_FLAGS: usize = RH_KIND + size_of::<u8>();
const RH_RESERVED: usize = RH_FLAGS + size_of::<u8>();
const RH_DOC: usize = RH_RESERVED + size_of::<u16>();
const RH_NODE: usize = RH_DOC + size_of::<u64>();
/// Bytes in a record header.
pub const RECORD_HEADER_LEN: usize = RH_NODE + size_of::<u64>();

/// Largest payload a record may carry (64 MiB). Checked on write, and on
/// read before anything is allocated.
pub const MAX_PAYLOAD: u32 = 64 * 1024 * 1024;

/// Largest document or node id: 2^53 - 1, the largest integer every JSON
/// reader (jq, JavaScript) represents exactly.
pub const MAX_ID: u64 = (1 << 53) - 1;
/// Largest sequence number; far beyond any real store, small enough that
/// no arithmetic on it can overflow.
pub const MAX_SEQ: u64 = 1 << 62;
/// Largest segment number.
pub const MAX_SEGMENT: u64 = 1 << 40;

/// Record flag: part of an atomic batch that is committed only by a later
/// `Commit` record.
pub const FLAG_BATCH: u8 = 1;
/// Record flag (`InputPut` only): the payload carries an output after the input.
pub const FLAG_HAS_OUTPUT: u8 = 2;
const KNOWN_FLAGS: u8 = FLAG_BATCH | FLAG_HAS_OUTPUT;

/// Marks an absent category or version in a `DocPut` payload.
const ABSENT: u32 = u32::MAX;

/// Record kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// A document's category, version, body and node high-water mark.
    DocPut = 1,
    /// A document tombstone.
    DocDelete = 2,
    /// An input node (and optionally its output).
    InputPut = 3,
    /// A node's expected output.
    OutputPut = 4,
    /// A node tombstone.
    InputDelete = 5,
    /// Commits the batch of `FLAG_BATCH` records before it.
    Commit = 6,
    /// Footer of a sealed segment.
    Seal = 7,
}

impl Kind {
    /// The name used in `dump --records` and `verify`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::DocPut => "doc-put",
            Kind::DocDelete => "doc-delete",
            Kind::InputPut => "input-put",
            Kind::OutputPut => "output-put",
            Kind::InputDelete => "input-delete",
            Kind::Commit => "commit",
            Kind::Seal => "seal",
        }
    }
}

impl TryFrom<u8> for Kind {
    type Error = u8;
    fn try_from(v: u8) -> Result<Kind, u8> {
        Ok(match v {
            1 => Kind::DocPut,
            2 => Kind::DocDelete,
            3 => Kind::InputPut,
            4 => Kind::OutputPut,
            5 => Kind::InputDelete,
            6 => Kind::Commit,
            7 => Kind::Seal,
            other => return Err(other),
        })
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Header flags (`SEG_FLAG_*`).
    pub flags: u16,
    /// The segment's number: its file is `seg_{number:06}.seg` once sealed.
    pub number: u64,
    /// For compaction output: the first number of its generation.
    pub gen_base: u64,
    /// For compaction output: how many segments the generation has.
    pub gen_count: u32,
}

/// Why a header did not decode.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Too short, wrong magic, or bad CRC.
    Bad(&'static str),
    /// A well-formed header of another format version.
    Version(u16),
}

impl SegmentHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[SH_MAGIC..SH_VERSION].copy_from_slice(&SEGMENT_MAGIC);
        b[SH_VERSION..SH_FLAGS].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[SH_FLAGS..SH_FLAGS + 2].copy_from_slice(&self.flags.to_le_bytes());
        b[SH_NUMBER..SH_GEN_BASE].copy_from_slice(&self.number.to_le_bytes());
        b[SH_GEN_BASE..SH_GEN_COUNT].copy_from_slice(&self.gen_base.to_le_bytes());
        b[SH_GEN_COUNT..SH_CRC].copy_from_slice(&self.gen_count.to_le_bytes());
        let crc = crc32fast::hash(&b[..SH_CRC]);
        b[SH_CRC..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header.
    ///
    /// # Errors
    /// [`HeaderError`] describing the first problem.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let b = b
            .get(..SEGMENT_HEADER_LEN)
            .ok_or(HeaderError::Bad("file is shorter than a segment header"))?;
        if b.get(..SH_VERSION) != Some(&SEGMENT_MAGIC[..]) {
            return Err(HeaderError::Bad("not a stratum segment (bad magic)"));
        }
        let crc = u32_at(b, SH_CRC).unwrap_or(0);
        if crc != crc32fast::hash(&b[..SH_CRC]) {
            return Err(HeaderError::Bad("segment header checksum mismatch"));
        }
        let version = u16_at(b, SH_VERSION).unwrap_or(0);
        if version != FORMAT_VERSION {
            return Err(HeaderError::Version(version));
        }
        let flags = u16_at(b, SH_FLAGS).unwrap_or(0);
        if flags & !SEG_FLAG_COMPACTED != 0 || u32_at(b, SH_FLAGS + 2) != Some(0) {
            return Err(HeaderError::Bad("unknown segment header flags"));
        }
        let number = u64_at(b, SH_NUMBER).unwrap_or(0);
        let gen_base = u64_at(b, SH_GEN_BASE).unwrap_or(0);
        if number == 0 || number > MAX_SEGMENT || gen_base > MAX_SEGMENT {
            return Err(HeaderError::Bad("segment number out of range"));
        }
        Ok(SegmentHeader {
            flags,
            number,
            gen_base,
            gen_count: u32_at(b, SH_GEN_COUNT).unwrap_or(0),
        })
    }
}

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Stored CRC.
    pub crc: u32,
    /// Payload length in bytes.
    pub payload_len: u32,
    /// Sequence number.
    pub seq: u64,
    /// Kind.
    pub kind: Kind,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// Document id (0 for `Commit` and `Seal`).
    pub doc: u64,
    /// Node id (0 for document-level records).
    pub node: u64,
}

impl RecordHeader {
    /// Header plus payload.
    pub fn total_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + u64::from(self.payload_len)
    }
}

/// Why a record did not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes remain than the header, or than the length it declares.
    Truncated,
    /// The header itself is impossible (kind, flags, reserved bits, length
    /// over the limit).
    BadHeader(String),
    /// The record passes its CRC but its payload is malformed.
    BadPayload(String),
    /// The CRC does not match.
    Checksum {
        /// CRC stored in the record.
        stored: u32,
        /// CRC computed over its bytes.
        computed: u32,
    },
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Truncated => f.write_str("record is cut short"),
            RecordError::BadHeader(why) => write!(f, "bad record header: {why}"),
            RecordError::BadPayload(why) => write!(f, "bad record payload: {why}"),
            RecordError::Checksum { stored, computed } => write!(
                f,
                "record checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
        }
    }
}

/// Decodes the fixed header fields without checking the CRC. Validates
/// everything that can be validated without the payload, so that a garbage
/// length is refused before it is used.
///
/// # Errors
/// [`RecordError::Truncated`] or [`RecordError::BadHeader`].
pub fn decode_header(b: &[u8]) -> Result<RecordHeader, RecordError> {
    let h = b.get(..RECORD_HEADER_LEN).ok_or(RecordError::Truncated)?;
    let bad = |s: String| Err(RecordError::BadHeader(s));
    let kind_byte = h.get(RH_KIND).copied().unwrap_or(0);
    let Ok(kind) = Kind::try_from(kind_byte) else {
        return bad(format!("unknown record kind {kind_byte}"));
    };
    let flags = h.get(RH_FLAGS).copied().unwrap_or(0);
    if flags & !KNOWN_FLAGS != 0 || (flags & FLAG_HAS_OUTPUT != 0 && kind != Kind::InputPut) {
        return bad(format!(
            "invalid flags {flags:#04x} for a {} record",
            kind.name()
        ));
    }
    if u16_at(h, RH_RESERVED) != Some(0) {
        return bad("reserved bytes are not zero".into());
    }
    let payload_len = u32_at(h, RH_LEN).unwrap_or(u32::MAX);
    if payload_len > MAX_PAYLOAD {
        return bad(format!(
            "payload length {payload_len} exceeds the {MAX_PAYLOAD}-byte limit"
        ));
    }
    let doc = u64_at(h, RH_DOC).unwrap_or(0);
    let node = u64_at(h, RH_NODE).unwrap_or(0);
    let seq = u64_at(h, RH_SEQ).unwrap_or(0);
    if seq == 0 || seq > MAX_SEQ {
        return bad(format!("sequence number {seq} out of range"));
    }
    if doc > MAX_ID || node > MAX_ID {
        return bad(format!("ids doc={doc} node={node} out of range"));
    }
    let ids_ok = match kind {
        Kind::DocPut | Kind::DocDelete => doc != 0 && node == 0,
        Kind::InputPut | Kind::OutputPut | Kind::InputDelete => doc != 0 && node != 0,
        Kind::Commit | Kind::Seal => doc == 0 && node == 0,
    };
    if !ids_ok {
        return bad(format!(
            "ids doc={doc} node={node} invalid for a {} record",
            kind.name()
        ));
    }
    Ok(RecordHeader {
        crc: u32_at(h, RH_CRC).unwrap_or(0),
        payload_len,
        seq,
        kind,
        flags,
        doc,
        node,
    })
}

/// Decodes one whole record at the start of `b` and checks its CRC.
/// Returns the header and the payload.
///
/// # Errors
/// Any [`RecordError`].
pub fn decode_record(b: &[u8]) -> Result<(RecordHeader, &[u8]), RecordError> {
    let h = decode_header(b)?;
    let end = RECORD_HEADER_LEN + h.payload_len as usize;
    let rec = b.get(..end).ok_or(RecordError::Truncated)?;
    let computed = crc32fast::hash(&rec[RH_LEN..]);
    if computed != h.crc {
        return Err(RecordError::Checksum {
            stored: h.crc,
            computed,
        });
    }
    Ok((h, &rec[RECORD_HEADER_LEN..]))
}

/// Appends one encoded record to `out`. The payload is `a` followed by `b`
/// (two parts so a body need not be copied into a joined buffer first).
#[allow(clippy::too_many_arguments)]
pub fn encode_record(
    out: &mut Vec<u8>,
    seq: u64,
    kind: Kind,
    flags: u8,
    doc: u64,
    node: u64,
    a: &[u8],
    b: &[u8],
) {
    let start = out.len();
    let len = (a.len() + b.len()) as u32;
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(kind as u8);
    out.push(flags);
    out.extend_from_slice(&[0u8; 2]);
    out.extend_from_slice(&doc.to_le_bytes());
    out.extend_from_slice(&node.to_le_bytes());
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    let crc = crc32fast::hash(&out[start + RH_LEN..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The leading part of a `DocPut` payload (the body follows it).
pub fn encode_doc_meta(node_hwm: u64, category: Option<&str>, version: Option<&str>) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(16 + category.map_or(0, str::len) + version.map_or(0, str::len));
    out.extend_from_slice(&node_hwm.to_le_bytes());
    for s in [category, version] {
        match s {
            Some(s) => {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            None => out.extend_from_slice(&ABSENT.to_le_bytes()),
        }
    }
    out
}

/// A decoded `DocPut` payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocPayload {
    /// Highest node id assigned in the document when this was written.
    pub node_hwm: u64,
    /// Category.
    pub category: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Decodes a `DocPut` payload.
///
/// # Errors
/// A reason string when the payload is malformed.
pub fn decode_doc(p: &[u8]) -> Result<DocPayload, String> {
    let node_hwm = u64_at(p, 0).ok_or("doc payload too short")?;
    let mut at = 8usize;
    let mut strs = [None, None];
    for s in &mut strs {
        let len = u32_at(p, at).ok_or("doc payload too short")?;
        at += 4;
        if len != ABSENT {
            let bytes = p
                .get(at..at + len as usize)
                .ok_or("doc payload string runs past its end")?;
            *s = Some(
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| "category or version is not UTF-8")?,
            );
            at += len as usize;
        }
    }
    let [category, version] = strs;
    Ok(DocPayload {
        node_hwm,
        category,
        version,
        body: p.get(at..).unwrap_or_default().to_vec(),
    })
}

/// Checks a data record's payload without copying it: the `DocPut` layout
/// (lengths within the payload, UTF-8 category and version), UTF-8 values,
/// and with `values` that every value is well-formed JSON.
///
/// # Errors
/// The reason, when the payload is malformed.
pub fn check_payload(kind: Kind, flags: u8, p: &[u8], values: bool) -> Result<(), String> {
    let check_value = |v: &[u8]| {
        if values {
            crate::json::check_stored(v)
        } else if v.is_empty() || std::str::from_utf8(v).is_err() {
            Err("stored value is empty or not UTF-8".to_owned())
        } else {
            Ok(())
        }
    };
    match kind {
        Kind::DocPut => {
            let mut at = 8usize;
            if p.len() < at {
                return Err("doc payload too short".into());
            }
            for _ in 0..2 {
                let len = u32_at(p, at).ok_or("doc payload too short")?;
                at += 4;
                if len != ABSENT {
                    let s = p
                        .get(at..at + len as usize)
                        .ok_or("doc payload string runs past its end")?;
                    std::str::from_utf8(s).map_err(|_| "category or version is not UTF-8")?;
                    at += len as usize;
                }
            }
            Ok(())
        }
        Kind::InputPut => {
            let (input, output) = decode_input(p)?;
            check_value(input)?;
            if flags & FLAG_HAS_OUTPUT != 0 {
                check_value(output)?;
            }
            Ok(())
        }
        Kind::OutputPut => check_value(p),
        Kind::DocDelete | Kind::InputDelete => {
            if p.is_empty() {
                Ok(())
            } else {
                Err("tombstone with a payload".into())
            }
        }
        Kind::Commit | Kind::Seal => Ok(()),
    }
}

/// Reads the node high-water mark from the front of a `DocPut` payload.
pub fn doc_node_hwm(p: &[u8]) -> Option<u64> {
    u64_at(p, 0)
}

/// The parts of an `InputPut` payload: a length-prefixed input, then the
/// output text (if any) as the rest.
pub fn encode_input<'a>(input: &str, output: Option<&'a str>) -> (Vec<u8>, &'a [u8]) {
    let mut prefix = Vec::with_capacity(4 + input.len());
    prefix.extend_from_slice(&(input.len() as u32).to_le_bytes());
    prefix.extend_from_slice(input.as_bytes());
    (prefix, output.map_or(&[][..], str::as_bytes))
}

/// Splits an `InputPut` payload into input text and output text (the output
/// is meaningful only when the record has `FLAG_HAS_OUTPUT`).
///
/// # Errors
/// A reason string when the payload is malformed.
pub fn decode_input(p: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let len = u32_at(p, 0).ok_or("input payload too short")? as usize;
    let input = p
        .get(4..4 + len)
        .ok_or("input length runs past the payload")?;
    Ok((input, p.get(4 + len..).unwrap_or_default()))
}

/// A `Seal` footer payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealPayload {
    /// Records in the segment before the footer.
    pub records: u64,
    /// Highest sequence number in the store when the segment was sealed.
    pub max_seq: u64,
    /// Highest document id ever assigned when the segment was sealed.
    pub doc_hwm: u64,
}

/// Bytes in a `Seal` payload.
pub const SEAL_PAYLOAD_LEN: usize = 3 * size_of::<u64>();
/// Bytes in a whole `Seal` record.
pub const SEAL_RECORD_LEN: usize = RECORD_HEADER_LEN + SEAL_PAYLOAD_LEN;

impl SealPayload {
    /// Encodes the payload.
    pub fn encode(&self) -> [u8; SEAL_PAYLOAD_LEN] {
        let mut b = [0u8; SEAL_PAYLOAD_LEN];
        b[..8].copy_from_slice(&self.records.to_le_bytes());
        b[8..16].copy_from_slice(&self.max_seq.to_le_bytes());
        b[16..].copy_from_slice(&self.doc_hwm.to_le_bytes());
        b
    }
    /// Decodes the payload.
    pub fn decode(p: &[u8]) -> Option<SealPayload> {
        if p.len() != SEAL_PAYLOAD_LEN {
            return None;
        }
        let s = SealPayload {
            records: u64_at(p, 0)?,
            max_seq: u64_at(p, 8)?,
            doc_hwm: u64_at(p, 16)?,
        };
        (s.max_seq <= MAX_SEQ && s.doc_hwm <= MAX_ID).then_some(s)
    }
}

// Index file. See docs/FORMAT.md §Index files.
/// Bytes in an index file header.
pub const INDEX_HEADER_LEN: usize = 64;
/// Bytes in one index block.
pub const INDEX_BLOCK_LEN: usize = 4096;
/// Bytes in one index entry.
pub const INDEX_ENTRY_LEN: usize = 3 * size_of::<u64>() + OFFSET_BYTES + size_of::<u32>() + 2;
/// Bytes of an entry's offset (a u48: segments stay below 256 TiB).
const OFFSET_BYTES: usize = 6;
/// Largest offset an index entry can hold.
pub const MAX_INDEXED_OFFSET: u64 = (1 << (8 * OFFSET_BYTES)) - 1;
/// Entries per index block.
pub const ENTRIES_PER_BLOCK: usize = 113;
const BLOCK_COUNT_AT: usize = ENTRIES_PER_BLOCK * INDEX_ENTRY_LEN;
const BLOCK_CRC_AT: usize = INDEX_BLOCK_LEN - size_of::<u32>();

/// An index entry: where one record of one segment is, and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Document id.
    pub doc: u64,
    /// Node id (0 for document-level records).
    pub node: u64,
    /// Sequence number.
    pub seq: u64,
    /// Offset of the record in its segment.
    pub offset: u64,
    /// `DocPut`: its node high-water mark. Otherwise 0.
    pub aux: u64,
    /// Total record length, header included.
    pub len: u32,
    /// Record kind.
    pub kind: Kind,
    /// Record flags.
    pub flags: u8,
}

impl IndexEntry {
    /// The entry for the record with header `h` at `offset`; `aux` is a
    /// `DocPut`'s node high-water mark, else 0.
    pub fn from_header(h: &RecordHeader, offset: u64, aux: u64) -> IndexEntry {
        IndexEntry {
            doc: h.doc,
            node: h.node,
            seq: h.seq,
            offset,
            aux,
            len: h.total_len() as u32,
            kind: h.kind,
            flags: h.flags,
        }
    }

    /// Document-level entries have no node, so the node field carries a
    /// `DocPut`'s node high-water mark (`aux`) on disk. The caller keeps
    /// `offset` within [`MAX_INDEXED_OFFSET`].
    fn encode_into(&self, b: &mut [u8]) {
        let node = if self.kind == Kind::DocPut {
            self.aux
        } else {
            self.node
        };
        b[0..8].copy_from_slice(&self.doc.to_le_bytes());
        b[8..16].copy_from_slice(&node.to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..30].copy_from_slice(&self.offset.to_le_bytes()[..OFFSET_BYTES]);
        b[30..34].copy_from_slice(&self.len.to_le_bytes());
        b[34] = self.kind as u8;
        b[35] = self.flags;
    }

    fn decode(b: &[u8]) -> Option<IndexEntry> {
        let kind = Kind::try_from(*b.get(34)?).ok()?;
        let node = u64_at(b, 8)?;
        let mut offset = [0u8; 8];
        offset[..OFFSET_BYTES].copy_from_slice(b.get(24..30)?);
        let (node, aux) = if kind == Kind::DocPut {
            (0, node)
        } else {
            (node, 0)
        };
        Some(IndexEntry {
            doc: u64_at(b, 0)?,
            node,
            seq: u64_at(b, 16)?,
            offset: u64::from_le_bytes(offset),
            aux,
            len: u32_at(b, 30)?,
            kind,
            flags: *b.get(35)?,
        })
    }
}

/// Encodes one index block of up to `ENTRIES_PER_BLOCK` entries.
pub fn encode_block(entries: &[IndexEntry]) -> [u8; INDEX_BLOCK_LEN] {
    debug_assert!(entries.len() <= ENTRIES_PER_BLOCK);
    let mut b = [0u8; INDEX_BLOCK_LEN];
    for (i, e) in entries.iter().enumerate() {
        e.encode_into(&mut b[i * INDEX_ENTRY_LEN..(i + 1) * INDEX_ENTRY_LEN]);
    }
    b[BLOCK_COUNT_AT..BLOCK_COUNT_AT + 4].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    let crc = crc32fast::hash(&b[..BLOCK_CRC_AT]);
    b[BLOCK_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes and checks one index block.
pub fn decode_block(b: &[u8]) -> Option<Vec<IndexEntry>> {
    if b.len() != INDEX_BLOCK_LEN || u32_at(b, BLOCK_CRC_AT)? != crc32fast::hash(&b[..BLOCK_CRC_AT])
    {
        return None;
    }
    let n = u32_at(b, BLOCK_COUNT_AT)? as usize;
    if n == 0 || n > ENTRIES_PER_BLOCK {
        return None;
    }
    (0..n)
        .map(|i| IndexEntry::decode(b.get(i * INDEX_ENTRY_LEN..(i + 1) * INDEX_ENTRY_LEN)?))
        .collect()
}

/// A decoded index header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexHeader {
    /// The segment this index describes.
    pub segment: u64,
    /// Exact length of that segment file.
    pub segment_len: u64,
    /// Number of entries.
    pub entries: u64,
    /// Highest sequence number in the store at seal time.
    pub max_seq: u64,
    /// Highest document id in the store at seal time.
    pub doc_hwm: u64,
}

impl IndexHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; INDEX_HEADER_LEN] {
        let mut b = [0u8; INDEX_HEADER_LEN];
        b[..8].copy_from_slice(&INDEX_MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.segment.to_le_bytes());
        b[24..32].copy_from_slice(&self.segment_len.to_le_bytes());
        b[32..40].copy_from_slice(&self.entries.to_le_bytes());
        b[40..48].copy_from_slice(&self.max_seq.to_le_bytes());
        b[48..56].copy_from_slice(&self.doc_hwm.to_le_bytes());
        let crc = crc32fast::hash(&b[..56]);
        b[56..60].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks the header.
    pub fn decode(b: &[u8]) -> Option<IndexHeader> {
        let b = b.get(..INDEX_HEADER_LEN)?;
        // Bytes 10..16 and 60..64 are zero padding; the CRC does not cover
        // the last four, so they are checked here.
        if b.get(..8)? != INDEX_MAGIC
            || u16_at(b, 8)? != FORMAT_VERSION
            || b.get(10..16)?.iter().any(|&x| x != 0)
            || b.get(60..64)?.iter().any(|&x| x != 0)
            || u32_at(b, 56)? != crc32fast::hash(&b[..56])
        {
            return None;
        }
        let h = IndexHeader {
            segment: u64_at(b, 16)?,
            segment_len: u64_at(b, 24)?,
            entries: u64_at(b, 32)?,
            max_seq: u64_at(b, 40)?,
            doc_hwm: u64_at(b, 48)?,
        };
        (h.segment <= MAX_SEGMENT && h.max_seq <= MAX_SEQ && h.doc_hwm <= MAX_ID).then_some(h)
    }
}

/// `seg_NNNNNN.seg`.
pub fn segment_name(number: u64) -> String {
    format!("seg_{number:06}.seg")
}

/// `seg_NNNNNN.idx`.
pub fn index_name(number: u64) -> String {
    format!("seg_{number:06}.idx")
}

/// Parses `seg_<digits>.seg` / `seg_<digits>.idx` into (number, is_index).
/// Anything else, including `seg_1.seg~` or `._seg_1.seg`, is not ours.
pub fn parse_segment_name(name: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix("seg_")?;
    let (digits, is_index) = if let Some(d) = rest.strip_suffix(".seg") {
        (d, false)
    } else {
        (rest.strip_suffix(".idx")?, true)
    };
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    // Only the canonical spelling: `seg_0000001.seg` is not segment 1.
    (format!("{n:06}") == digits && (1..=MAX_SEGMENT).contains(&n)).then_some((n, is_index))
}

/// The active segment's file name.
pub const ACTIVE_NAME: &str = "active.seg";
/// The active segment's checkpointed index (a cache; see docs/FORMAT.md).
pub const ACTIVE_INDEX_NAME: &str = "active.idx";
/// The lock file's name.
pub const LOCK_NAME: &str = "LOCK";
/// Suffix of every temporary file stratum creates (and deletes on recovery).
pub const TMP_SUFFIX: &str = ".stratum-tmp";

#[cfg(test)]
mod tests {
    use super::*;

    /// These numbers are the ones written in docs/FORMAT.md.
    #[test]
    fn layout_constants_match_format_md() {
        assert_eq!(SEGMENT_HEADER_LEN, 40);
        assert_eq!(RECORD_HEADER_LEN, 36);
        assert_eq!(SEAL_RECORD_LEN, 60);
        assert_eq!(INDEX_HEADER_LEN, 64);
        assert_eq!(INDEX_ENTRY_LEN, 36);
        assert_eq!(INDEX_BLOCK_LEN, 4096);
        assert_eq!(BLOCK_COUNT_AT, 4068);
        assert_eq!(BLOCK_CRC_AT, 4092);
    }

    #[test]
    fn record_round_trip_and_every_single_bit_flip_is_caught() {
        let mut buf = Vec::new();
        encode_record(
            &mut buf,
            9,
            Kind::InputPut,
            FLAG_HAS_OUTPUT,
            3,
            4,
            b"\x01\0\0\0x",
            b"[1]",
        );
        let (h, p) = decode_record(&buf).unwrap();
        assert_eq!(
            (h.seq, h.kind, h.doc, h.node, h.flags),
            (9, Kind::InputPut, 3, 4, FLAG_HAS_OUTPUT)
        );
        assert_eq!(decode_input(p).unwrap(), (&b"x"[..], &b"[1]"[..]));
        for bit in 0..buf.len() * 8 {
            let mut damaged = buf.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode_record(&damaged).is_err(),
                "flip of bit {bit} not caught"
            );
        }
        for cut in 0..buf.len() {
            assert!(decode_record(&buf[..cut]).is_err());
        }
    }

    #[test]
    fn zero_bytes_never_decode() {
        assert!(decode_record(&[0u8; 128]).is_err());
    }

    #[test]
    fn every_kind_round_trips_through_its_byte() {
        for v in 0..=255u8 {
            if let Ok(k) = Kind::try_from(v) {
                assert_eq!(k as u8, v);
            }
        }
        assert_eq!(Kind::try_from(0), Err(0));
        assert_eq!(Kind::try_from(8), Err(8));
    }

    #[test]
    fn oversized_length_is_refused_before_use() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 1, Kind::OutputPut, 0, 1, 1, b"1", b"");
        buf[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_header(&buf),
            Err(RecordError::BadHeader(_))
        ));
    }

    #[test]
    fn doc_payload_round_trips() {
        let meta = encode_doc_meta(5, Some("c"), None);
        let mut p = meta.clone();
        p.extend_from_slice(b"body");
        let d = decode_doc(&p).unwrap();
        assert_eq!(d.node_hwm, 5);
        assert_eq!(d.category.as_deref(), Some("c"));
        assert_eq!(d.version, None);
        assert_eq!(d.body, b"body");
        assert!(decode_doc(&meta[..10]).is_err());
    }

    #[test]
    fn headers_round_trip_and_reject_other_versions() {
        let h = SegmentHeader {
            flags: SEG_FLAG_COMPACTED,
            number: 12,
            gen_base: 12,
            gen_count: 3,
        };
        let mut b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        b[SH_VERSION] = 2;
        let crc = crc32fast::hash(&b[..SH_CRC]);
        b[SH_CRC..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(SegmentHeader::decode(&b), Err(HeaderError::Version(2)));
        let ih = IndexHeader {
            segment: 1,
            segment_len: 2,
            entries: 3,
            max_seq: 4,
            doc_hwm: 5,
        };
        assert_eq!(IndexHeader::decode(&ih.encode()), Some(ih));
    }

    #[test]
    fn index_block_round_trip_and_damage() {
        let doc = IndexEntry {
            doc: 1,
            node: 0,
            seq: 3,
            offset: 40,
            aux: 9,
            len: 60,
            kind: Kind::DocPut,
            flags: 0,
        };
        let out = IndexEntry {
            node: 2,
            seq: 4,
            offset: MAX_INDEXED_OFFSET,
            aux: 0,
            kind: Kind::OutputPut,
            ..doc
        };
        let mut b = encode_block(&[doc, out]);
        assert_eq!(decode_block(&b), Some(vec![doc, out]));
        b[7] ^= 1;
        assert_eq!(decode_block(&b), None);
    }

    #[test]
    fn segment_names_parse_strictly() {
        assert_eq!(parse_segment_name("seg_000012.seg"), Some((12, false)));
        assert_eq!(
            parse_segment_name("seg_1000000.idx"),
            Some((1_000_000, true))
        );
        for bad in [
            "seg_0000012.seg",
            "seg_12.seg",
            "seg_000012.seg~",
            "._seg_000012.seg",
            "seg_abcdef.seg",
            "seg_.seg",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }
}
