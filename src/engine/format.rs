//! Bytes on disk: segment header, record framing, record kinds, index files.
//!
//! The layout is specified in `docs/FORMAT.md`; this module implements it and
//! its unit tests pin the constants to the numbers written there. All
//! integers are little-endian. Every decoder here checks lengths before
//! slicing or allocating and returns `None`/`Err` on bad bytes; none panics.

use std::mem::size_of;

pub use crate::engine::version::{FORMAT_V1, FORMAT_VERSION};

/// Segment magic: `\x89STRSEG\n`. The high first byte catches 7-bit
/// transfers; the newline catches line-ending conversion (as PNG does).
pub const SEGMENT_MAGIC: [u8; 8] = *b"\x89STRSEG\n";
/// Index magic: `\x89STRIDX\n`.
pub const INDEX_MAGIC: [u8; 8] = *b"\x89STRIDX\n";
/// Manifest magic: `\x89STRMAN\n`.
pub const MANIFEST_MAGIC: [u8; 8] = *b"\x89STRMAN\n";

// Segment header. See docs/FORMAT.md §Segment header.
const SH_MAGIC: usize = 0;
const SH_VERSION: usize = SH_MAGIC + SEGMENT_MAGIC.len();
const SH_FLAGS: usize = SH_VERSION + size_of::<u16>();
const SH_NUMBER: usize = SH_FLAGS + size_of::<u16>() + size_of::<u32>();
// Format 1 keeps the generation here; format 2 the store id (same bytes).
const SH_GEN_BASE: usize = SH_NUMBER + size_of::<u64>();
const SH_STORE_ID: usize = SH_GEN_BASE;
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
/// Record flag (format 2; `DocPut`, `InputPut`, `OutputPut`): the payload has
/// the format-2 layout, and an output text `null` is the JSON value `null`.
pub const FLAG_EXTENDED: u8 = 4;
const KNOWN_FLAGS: u8 = FLAG_BATCH | FLAG_HAS_OUTPUT | FLAG_EXTENDED;

/// Longest document key, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 1024;
/// Key entries sort above every document id: their document field is this
/// plus a 62-bit hash of the key (docs/FORMAT.md §7.6).
pub const KEY_SPACE: u64 = 1 << 63;

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
    /// Clears a node's output (format 2).
    OutputDelete = 8,
    /// Sets or clears a node's meta (format 2).
    NodeMetaPut = 9,
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
            Kind::OutputDelete => "output-delete",
            Kind::NodeMetaPut => "node-meta-put",
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
            8 => Kind::OutputDelete,
            9 => Kind::NodeMetaPut,
            other => return Err(other),
        })
    }
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version: [`FORMAT_VERSION`] or [`FORMAT_V1`].
    pub version: u16,
    /// The store's id (format 2; 0 in format 1).
    pub store_id: u64,
    /// Header flags (`SEG_FLAG_*`).
    pub flags: u16,
    /// The segment's number: its file is `seg_{number:06}.seg` once sealed.
    pub number: u64,
    /// Format 1, compaction output: the first number of its generation.
    pub gen_base: u64,
    /// Format 1, compaction output: how many segments the generation has.
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
    /// A format-2 header.
    pub fn v2(number: u64, store_id: u64, flags: u16) -> SegmentHeader {
        SegmentHeader {
            version: FORMAT_VERSION,
            store_id,
            flags,
            number,
            gen_base: 0,
            gen_count: 0,
        }
    }

    /// Encodes the header in its own version's layout.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[SH_MAGIC..SH_VERSION].copy_from_slice(&SEGMENT_MAGIC);
        b[SH_VERSION..SH_FLAGS].copy_from_slice(&self.version.to_le_bytes());
        b[SH_FLAGS..SH_FLAGS + 2].copy_from_slice(&self.flags.to_le_bytes());
        b[SH_NUMBER..SH_GEN_BASE].copy_from_slice(&self.number.to_le_bytes());
        if self.version == FORMAT_V1 {
            b[SH_GEN_BASE..SH_GEN_COUNT].copy_from_slice(&self.gen_base.to_le_bytes());
            b[SH_GEN_COUNT..SH_CRC].copy_from_slice(&self.gen_count.to_le_bytes());
        } else {
            b[SH_STORE_ID..SH_GEN_COUNT].copy_from_slice(&self.store_id.to_le_bytes());
        }
        let crc = crate::crc::crc32(&b[..SH_CRC]);
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
        if crc != crate::crc::crc32(&b[..SH_CRC]) {
            return Err(HeaderError::Bad("segment header checksum mismatch"));
        }
        let version = u16_at(b, SH_VERSION).unwrap_or(0);
        if version != FORMAT_VERSION && version != FORMAT_V1 {
            return Err(HeaderError::Version(version));
        }
        let flags = u16_at(b, SH_FLAGS).unwrap_or(0);
        if flags & !SEG_FLAG_COMPACTED != 0 || u32_at(b, SH_FLAGS + 2) != Some(0) {
            return Err(HeaderError::Bad("unknown segment header flags"));
        }
        let number = u64_at(b, SH_NUMBER).unwrap_or(0);
        if number == 0 || number > MAX_SEGMENT {
            return Err(HeaderError::Bad("segment number out of range"));
        }
        if version == FORMAT_V1 {
            let gen_base = u64_at(b, SH_GEN_BASE).unwrap_or(0);
            if gen_base > MAX_SEGMENT {
                return Err(HeaderError::Bad("segment number out of range"));
            }
            return Ok(SegmentHeader {
                version,
                store_id: 0,
                flags,
                number,
                gen_base,
                gen_count: u32_at(b, SH_GEN_COUNT).unwrap_or(0),
            });
        }
        let store_id = u64_at(b, SH_STORE_ID).unwrap_or(0);
        if store_id == 0 || u32_at(b, SH_GEN_COUNT) != Some(0) {
            return Err(HeaderError::Bad("bad store id in the segment header"));
        }
        Ok(SegmentHeader::v2(number, store_id, flags))
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
    let extended_ok = matches!(kind, Kind::DocPut | Kind::InputPut | Kind::OutputPut);
    if flags & !KNOWN_FLAGS != 0
        || (flags & FLAG_HAS_OUTPUT != 0 && kind != Kind::InputPut)
        || (flags & FLAG_EXTENDED != 0 && !extended_ok)
    {
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
        Kind::InputPut
        | Kind::OutputPut
        | Kind::InputDelete
        | Kind::OutputDelete
        | Kind::NodeMetaPut => doc != 0 && node != 0,
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
    let computed = crate::crc::crc32(&rec[RH_LEN..]);
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
    let crc = crate::crc::crc32(&out[start + RH_LEN..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The fields of a `DocPut` payload other than the body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DocFields<'a> {
    /// Highest node id assigned in the document.
    pub node_hwm: u64,
    /// Category.
    pub category: Option<&'a str>,
    /// Version.
    pub version: Option<&'a str>,
    /// Key (format 2).
    pub key: Option<&'a str>,
    /// Meta, a JSON object's text (format 2).
    pub meta: Option<&'a str>,
}

impl DocFields<'_> {
    /// The decoded payload these fields and `body` make, copied out.
    pub fn to_payload(&self, body: &[u8]) -> DocPayload {
        let own = |s: Option<&str>| s.map(str::to_owned);
        DocPayload {
            node_hwm: self.node_hwm,
            category: own(self.category),
            version: own(self.version),
            key: own(self.key),
            meta: own(self.meta),
            body: body.to_vec(),
        }
    }

    /// Whether the record needs the format-2 layout (`FLAG_EXTENDED`).
    pub fn extended(&self) -> bool {
        self.key.is_some() || self.meta.is_some()
    }
}

fn push_opt(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s);
        }
        None => out.extend_from_slice(&ABSENT.to_le_bytes()),
    }
}

/// The leading part of a `DocPut` payload (the body follows it), and the
/// record flags it needs (`FLAG_EXTENDED` or 0).
pub fn encode_doc_prefix(f: &DocFields<'_>) -> (Vec<u8>, u8) {
    let strs = [f.category, f.version, f.key, f.meta];
    let mut out =
        Vec::with_capacity(24 + strs.iter().map(|s| s.map_or(0, str::len)).sum::<usize>());
    out.extend_from_slice(&f.node_hwm.to_le_bytes());
    push_opt(&mut out, f.category.map(str::as_bytes));
    push_opt(&mut out, f.version.map(str::as_bytes));
    if !f.extended() {
        return (out, 0);
    }
    push_opt(&mut out, f.key.map(str::as_bytes));
    push_opt(&mut out, f.meta.map(str::as_bytes));
    (out, FLAG_EXTENDED)
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
    /// Key (format 2).
    pub key: Option<String>,
    /// Meta, a JSON object's text (format 2).
    pub meta: Option<String>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Reads one length-prefixed optional byte string at `*at`.
fn opt_bytes<'a>(p: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, String> {
    let len = u32_at(p, *at).ok_or("payload too short")?;
    *at += 4;
    if len == ABSENT {
        return Ok(None);
    }
    let bytes = p
        .get(*at..*at + len as usize)
        .ok_or("payload string runs past its end")?;
    *at += len as usize;
    Ok(Some(bytes))
}

fn opt_utf8<'a>(p: &'a [u8], at: &mut usize, what: &str) -> Result<Option<&'a str>, String> {
    opt_bytes(p, at)?
        .map(|b| std::str::from_utf8(b).map_err(|_| format!("{what} is not UTF-8")))
        .transpose()
}

/// Decodes a `DocPut` payload; `flags` are its record's flags.
///
/// # Errors
/// A reason string when the payload is malformed.
pub fn decode_doc(p: &[u8], flags: u8) -> Result<DocPayload, String> {
    let (f, body) = decode_doc_fields(p, flags)?;
    Ok(f.to_payload(body))
}

/// [`decode_doc`] without a copy: the fields and the body within `p` (a
/// listing or a filter needs the fields, and of the body its length).
///
/// # Errors
/// A reason string when the payload is malformed.
pub fn decode_doc_fields(p: &[u8], flags: u8) -> Result<(DocFields<'_>, &[u8]), String> {
    let node_hwm = u64_at(p, 0).ok_or("doc payload too short")?;
    let mut at = 8usize;
    let category = opt_utf8(p, &mut at, "category")?;
    let version = opt_utf8(p, &mut at, "version")?;
    let (mut key, mut meta) = (None, None);
    if flags & FLAG_EXTENDED != 0 {
        key = opt_utf8(p, &mut at, "key")?;
        if key
            .as_ref()
            .is_some_and(|k| k.is_empty() || k.len() > MAX_KEY_LEN)
        {
            return Err(format!("key length outside 1 to {MAX_KEY_LEN} bytes"));
        }
        meta = opt_utf8(p, &mut at, "meta")?;
    }
    let doc = DocFields {
        node_hwm,
        category,
        version,
        key,
        meta,
    };
    Ok((doc, p.get(at..).unwrap_or_default()))
}

/// Checks a data record's payload without copying it: the `DocPut` layout
/// (lengths within the payload, UTF-8 strings), UTF-8 values, and with
/// `values` that every value is well-formed JSON.
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
    let check_meta = |v: &[u8]| {
        check_value(v)?;
        if v.first() == Some(&b'{') {
            Ok(())
        } else {
            Err("stored meta is not a JSON object".to_owned())
        }
    };
    match kind {
        Kind::DocPut => {
            let mut at = 8usize;
            if p.len() < at {
                return Err("doc payload too short".into());
            }
            let n = if flags & FLAG_EXTENDED != 0 { 4 } else { 2 };
            for i in 0..n {
                if let Some(s) = opt_bytes(p, &mut at)? {
                    if i == 3 {
                        check_meta(s)?;
                    } else {
                        std::str::from_utf8(s)
                            .map_err(|_| "category, version or key is not UTF-8")?;
                    }
                    if i == 2 && (s.is_empty() || s.len() > MAX_KEY_LEN) {
                        return Err(format!("key length outside 1 to {MAX_KEY_LEN} bytes"));
                    }
                }
            }
            Ok(())
        }
        Kind::InputPut => {
            let (input, meta, output) = decode_input(p, flags)?;
            check_value(input)?;
            if let Some(m) = meta {
                check_meta(m)?;
            }
            if flags & FLAG_HAS_OUTPUT != 0 {
                check_value(output)?;
            }
            Ok(())
        }
        Kind::OutputPut => check_value(p),
        Kind::NodeMetaPut => {
            if p.is_empty() {
                Ok(())
            } else {
                check_meta(p)
            }
        }
        Kind::DocDelete | Kind::InputDelete | Kind::OutputDelete => {
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

/// The key of a `DocPut` payload, if it has one (without copying the body).
pub fn doc_key(p: &[u8], flags: u8) -> Option<&str> {
    if flags & FLAG_EXTENDED == 0 {
        return None;
    }
    let mut at = 8usize;
    opt_bytes(p, &mut at).ok()?;
    opt_bytes(p, &mut at).ok()?;
    std::str::from_utf8(opt_bytes(p, &mut at).ok()??).ok()
}

/// The parts of an `InputPut` payload: a length-prefixed input (and, in the
/// format-2 layout, a length-prefixed meta), then the output text (if any)
/// as the rest. Returns the prefix, the rest and the record flags needed.
pub fn encode_input<'a>(
    input: &str,
    meta: Option<&str>,
    output: Option<&'a str>,
) -> (Vec<u8>, &'a [u8], u8) {
    encode_input_bytes(
        input.as_bytes(),
        meta.map(str::as_bytes),
        output.map(str::as_bytes),
    )
}

/// [`encode_input`] with the prefix written to `prefix` (emptied first),
/// for a writer of many records that keeps one buffer for them all.
pub fn encode_input_into<'a>(
    prefix: &mut Vec<u8>,
    input: &str,
    meta: Option<&str>,
    output: Option<&'a str>,
) -> (&'a [u8], u8) {
    encode_input_bytes_into(
        prefix,
        input.as_bytes(),
        meta.map(str::as_bytes),
        output.map(str::as_bytes),
    )
}

/// [`encode_input`] of texts already stored: a copy (compaction) takes
/// them from records whose CRC checked, and need not prove them UTF-8 again.
pub fn encode_input_bytes<'a>(
    input: &[u8],
    meta: Option<&[u8]>,
    output: Option<&'a [u8]>,
) -> (Vec<u8>, &'a [u8], u8) {
    let mut prefix = Vec::with_capacity(8 + input.len() + meta.map_or(0, <[u8]>::len));
    let (rest, flags) = encode_input_bytes_into(&mut prefix, input, meta, output);
    (prefix, rest, flags)
}

fn encode_input_bytes_into<'a>(
    prefix: &mut Vec<u8>,
    input: &[u8],
    meta: Option<&[u8]>,
    output: Option<&'a [u8]>,
) -> (&'a [u8], u8) {
    prefix.clear();
    prefix.extend_from_slice(&(input.len() as u32).to_le_bytes());
    prefix.extend_from_slice(input);
    let mut flags = if output.is_some() { FLAG_HAS_OUTPUT } else { 0 };
    // A format-1 `null` output means "none": a real null needs the flag.
    if meta.is_some() || output == Some(b"null") {
        push_opt(prefix, meta);
        flags |= FLAG_EXTENDED;
    }
    (output.unwrap_or_default(), flags)
}

/// An `InputPut` payload's parts: input text, meta text, output text.
pub type InputParts<'a> = (&'a [u8], Option<&'a [u8]>, &'a [u8]);

/// Splits an `InputPut` payload into input text, meta text (format 2) and
/// output text (meaningful only when the record has `FLAG_HAS_OUTPUT`).
///
/// # Errors
/// A reason string when the payload is malformed.
pub fn decode_input(p: &[u8], flags: u8) -> Result<InputParts<'_>, String> {
    let len = u32_at(p, 0).ok_or("input payload too short")? as usize;
    let input = p
        .get(4..4 + len)
        .ok_or("input length runs past the payload")?;
    let mut at = 4 + len;
    let meta = if flags & FLAG_EXTENDED != 0 {
        opt_bytes(p, &mut at)?
    } else {
        None
    };
    Ok((input, meta, p.get(at..).unwrap_or_default()))
}

/// Whether a stored output text counts as an output: a format-1 record's
/// `null` meant "no output", and keeps that meaning.
pub fn output_present(flags: u8, text: &[u8]) -> bool {
    flags & FLAG_EXTENDED != 0 || text != b"null"
}

/// FNV-1a, 64-bit (docs/FORMAT.md §7.6).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The document-id field of the key entries for `key`.
pub fn key_slot(key: &str) -> u64 {
    KEY_SPACE | (fnv1a64(key.as_bytes()) >> 2)
}

/// A new random store id, never 0. Not cryptographic: it only has to differ
/// between the stores one machine or user may mix up.
pub fn new_store_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        let id = h.finish();
        if id != 0 {
            return id;
        }
    }
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
    /// A key entry (docs/FORMAT.md §7.6): `doc` is a key slot and `node`
    /// the document holding the key.
    pub fn is_key(&self) -> bool {
        self.doc >= KEY_SPACE
    }

    fn encode_into(&self, b: &mut [u8]) {
        let node = if self.kind == Kind::DocPut && !self.is_key() {
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
        let doc = u64_at(b, 0)?;
        let (node, aux) = if kind == Kind::DocPut && doc < KEY_SPACE {
            (0, node)
        } else {
            (node, 0)
        };
        Some(IndexEntry {
            doc,
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
    let crc = crate::crc::crc32(&b[..BLOCK_CRC_AT]);
    b[BLOCK_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes and checks one index block.
pub fn decode_block(b: &[u8]) -> Option<Vec<IndexEntry>> {
    let mut out = Vec::new();
    decode_block_into(b, &mut out)?;
    Some(out)
}

/// Decodes and checks one index block into `out`, replacing what it held:
/// the form for a caller that reads many blocks, which then reuses one
/// buffer rather than allocating one a block. `out` is left empty when the
/// block fails its checks.
pub fn decode_block_into(b: &[u8], out: &mut Vec<IndexEntry>) -> Option<()> {
    out.clear();
    if b.len() != INDEX_BLOCK_LEN
        || u32_at(b, BLOCK_CRC_AT)? != crate::crc::crc32(&b[..BLOCK_CRC_AT])
    {
        return None;
    }
    let n = u32_at(b, BLOCK_COUNT_AT)? as usize;
    if n == 0 || n > ENTRIES_PER_BLOCK {
        return None;
    }
    for raw in b[..n * INDEX_ENTRY_LEN].chunks_exact(INDEX_ENTRY_LEN) {
        let Some(e) = IndexEntry::decode(raw) else {
            out.clear();
            return None;
        };
        out.push(e);
    }
    Some(())
}

/// A decoded index header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexHeader {
    /// Format version: that of the segment it describes.
    pub version: u16,
    /// The store's id: bound into the CRC in format 2, not stored.
    pub store_id: u64,
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
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[16..24].copy_from_slice(&self.segment.to_le_bytes());
        b[24..32].copy_from_slice(&self.segment_len.to_le_bytes());
        b[32..40].copy_from_slice(&self.entries.to_le_bytes());
        b[40..48].copy_from_slice(&self.max_seq.to_le_bytes());
        b[48..56].copy_from_slice(&self.doc_hwm.to_le_bytes());
        let crc = index_header_crc(&b[..56], self.version, self.store_id);
        b[56..60].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks the header of an index file of the store with
    /// `store_id` (ignored for format-1 files, whose CRC does not bind it).
    pub fn decode(b: &[u8], store_id: u64) -> Option<IndexHeader> {
        let b = b.get(..INDEX_HEADER_LEN)?;
        let version = u16_at(b, 8)?;
        // Bytes 10..16 and 60..64 are zero padding; the CRC does not cover
        // the last four, so they are checked here.
        if b.get(..8)? != INDEX_MAGIC
            || (version != FORMAT_VERSION && version != FORMAT_V1)
            || b.get(10..16)?.iter().any(|&x| x != 0)
            || b.get(60..64)?.iter().any(|&x| x != 0)
            || u32_at(b, 56)? != index_header_crc(&b[..56], version, store_id)
        {
            return None;
        }
        let h = IndexHeader {
            version,
            store_id: if version == FORMAT_V1 { 0 } else { store_id },
            segment: u64_at(b, 16)?,
            segment_len: u64_at(b, 24)?,
            entries: u64_at(b, 32)?,
            max_seq: u64_at(b, 40)?,
            doc_hwm: u64_at(b, 48)?,
        };
        (h.segment <= MAX_SEGMENT && h.max_seq <= MAX_SEQ && h.doc_hwm <= MAX_ID).then_some(h)
    }
}

/// The index header CRC: format 2 binds the store id into it.
fn index_header_crc(head: &[u8], version: u16, store_id: u64) -> u32 {
    let crc = crate::crc::crc32(head);
    if version == FORMAT_V1 {
        return crc;
    }
    crate::crc::update(crc, &store_id.to_le_bytes())
}

// The manifest. See docs/FORMAT.md §7.7.
/// Bytes in the manifest header.
pub const MANIFEST_HEADER_LEN: usize = 96;
/// Bytes in one manifest member entry.
pub const MEMBER_LEN: usize = 88;
/// "Not known" in the manifest's counters and byte figures.
pub const UNKNOWN: u64 = u64::MAX;

/// One member of the store, as the manifest lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Segment number.
    pub number: u64,
    /// Exact length of the segment file.
    pub len: u64,
    /// Committed data records.
    pub records: u64,
    /// Lowest seq in the segment.
    pub min_seq: u64,
    /// Highest seq in the segment (its footer's).
    pub max_seq: u64,
    /// Lowest document id of its data records (0 if none).
    pub min_doc: u64,
    /// Highest document id of its data records (0 if none).
    pub max_doc: u64,
    /// Key entries in its index.
    pub keys: u64,
    /// Live bytes when the manifest was written, or [`UNKNOWN`].
    pub live_bytes: u64,
    /// Dead bytes when the manifest was written, or [`UNKNOWN`].
    pub dead_bytes: u64,
    /// The segment's format version.
    pub version: u16,
    /// Bit 0: written by compaction.
    pub flags: u16,
}

impl Member {
    /// Whether document `doc` may have records here.
    pub fn may_hold(&self, doc: u64) -> bool {
        if doc >= KEY_SPACE {
            return self.keys > 0;
        }
        self.records > 0 && self.min_doc <= doc && doc <= self.max_doc
    }
}

/// The decoded manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The store's id.
    pub store_id: u64,
    /// 1 for the first manifest, one more for each replacement.
    pub serial: u64,
    /// Number of `active.seg`.
    pub active: u64,
    /// Above every segment number the store has used.
    pub next_number: u64,
    /// Document id high-water mark.
    pub doc_hwm: u64,
    /// Highest seq in the members.
    pub max_seq: u64,
    /// Live documents, inputs, outputs and tombstones of the members, each
    /// possibly [`UNKNOWN`].
    pub counters: [u64; 4],
    /// The members, ascending by number.
    pub members: Vec<Member>,
}

impl Manifest {
    /// Encodes the whole file.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(MANIFEST_HEADER_LEN + MEMBER_LEN * self.members.len() + 4);
        b.extend_from_slice(&MANIFEST_MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&[0u8; 2]);
        b.extend_from_slice(&(self.members.len() as u32).to_le_bytes());
        for v in [
            self.store_id,
            self.serial,
            self.active,
            self.next_number,
            self.doc_hwm,
            self.max_seq,
        ]
        .into_iter()
        .chain(self.counters)
        {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for m in &self.members {
            for v in [
                m.number,
                m.len,
                m.records,
                m.min_seq,
                m.max_seq,
                m.min_doc,
                m.max_doc,
                m.keys,
                m.live_bytes,
                m.dead_bytes,
            ] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&m.version.to_le_bytes());
            b.extend_from_slice(&m.flags.to_le_bytes());
            b.extend_from_slice(&[0u8; 4]);
        }
        let crc = crate::crc::crc32(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a manifest file.
    ///
    /// # Errors
    /// [`HeaderError::Version`] for another format version, else
    /// [`HeaderError::Bad`] naming the first problem.
    pub fn decode(b: &[u8]) -> Result<Manifest, HeaderError> {
        if b.get(..8) != Some(&MANIFEST_MAGIC[..]) {
            return Err(HeaderError::Bad("not a stratum manifest (bad magic)"));
        }
        let count = u32_at(b, 12).ok_or(HeaderError::Bad("manifest is cut short"))? as usize;
        let want = count
            .checked_mul(MEMBER_LEN)
            .and_then(|n| n.checked_add(MANIFEST_HEADER_LEN + 4));
        if want != Some(b.len()) {
            return Err(HeaderError::Bad(
                "manifest length does not match its member count",
            ));
        }
        let body = b.len() - 4;
        if u32_at(b, body) != Some(crate::crc::crc32(&b[..body])) {
            return Err(HeaderError::Bad("manifest checksum mismatch"));
        }
        let version = u16_at(b, 8).unwrap_or(0);
        if version != FORMAT_VERSION {
            return Err(HeaderError::Version(version));
        }
        let at = |i: usize| u64_at(b, 16 + 8 * i).unwrap_or(0);
        let mut m = Manifest {
            store_id: at(0),
            serial: at(1),
            active: at(2),
            next_number: at(3),
            doc_hwm: at(4),
            max_seq: at(5),
            counters: [at(6), at(7), at(8), at(9)],
            members: Vec::with_capacity(count),
        };
        if m.store_id == 0
            || u16_at(b, 10) != Some(0)
            || m.active == 0
            || m.active >= m.next_number
            || m.next_number > MAX_SEGMENT + 1
            || m.doc_hwm > MAX_ID
            || m.max_seq > MAX_SEQ
        {
            return Err(HeaderError::Bad("manifest header out of range"));
        }
        for i in 0..count {
            let e = MANIFEST_HEADER_LEN + MEMBER_LEN * i;
            let f = |k: usize| u64_at(b, e + 8 * k).unwrap_or(0);
            let member = Member {
                number: f(0),
                len: f(1),
                records: f(2),
                min_seq: f(3),
                max_seq: f(4),
                min_doc: f(5),
                max_doc: f(6),
                keys: f(7),
                live_bytes: f(8),
                dead_bytes: f(9),
                version: u16_at(b, e + 80).unwrap_or(0),
                flags: u16_at(b, e + 82).unwrap_or(0),
            };
            let ordered = m.members.last().is_none_or(|p| p.number < member.number);
            if !ordered
                || member.number == 0
                || member.number >= m.next_number
                || member.number == m.active
                || (member.version != FORMAT_VERSION && member.version != FORMAT_V1)
                || member.flags & !1 != 0
                || u32_at(b, e + 84) != Some(0)
                || member.len < SEGMENT_HEADER_LEN as u64
                || member.max_seq > MAX_SEQ
                || member.max_doc > MAX_ID
            {
                return Err(HeaderError::Bad("manifest member entry out of range"));
            }
            m.members.push(member);
        }
        Ok(m)
    }
}

/// The manifest's file name.
pub const MANIFEST_NAME: &str = "MANIFEST";

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
        assert_eq!(
            decode_input(p, h.flags).unwrap(),
            (&b"x"[..], None, &b"[1]"[..])
        );
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
        assert_eq!(Kind::try_from(10), Err(10));
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
        let f = DocFields {
            node_hwm: 5,
            category: Some("c"),
            ..DocFields::default()
        };
        let (meta, flags) = encode_doc_prefix(&f);
        assert_eq!(flags, 0, "no format-2 field: the format-1 layout");
        let mut p = meta.clone();
        p.extend_from_slice(b"body");
        let d = decode_doc(&p, flags).unwrap();
        assert_eq!(d.node_hwm, 5);
        assert_eq!(d.category.as_deref(), Some("c"));
        assert_eq!(d.version, None);
        assert_eq!((d.key, d.meta), (None, None));
        assert_eq!(d.body, b"body");
        assert!(decode_doc(&meta[..10], 0).is_err());
        assert!(check_payload(Kind::DocPut, flags, &p, true).is_ok());
    }

    #[test]
    fn extended_doc_payload_carries_key_and_meta() {
        let f = DocFields {
            node_hwm: 2,
            category: None,
            version: Some("v"),
            key: Some("two-sum"),
            meta: Some(r#"{"tags":["a"]}"#),
        };
        let (prefix, flags) = encode_doc_prefix(&f);
        assert_eq!(flags, FLAG_EXTENDED);
        let mut p = prefix;
        p.extend_from_slice(b"\xffbody");
        let d = decode_doc(&p, flags).unwrap();
        assert_eq!(d.key.as_deref(), Some("two-sum"));
        assert_eq!(d.meta.as_deref(), Some(r#"{"tags":["a"]}"#));
        assert_eq!(d.version.as_deref(), Some("v"));
        assert_eq!(d.body, b"\xffbody");
        assert_eq!(doc_key(&p, flags), Some("two-sum"));
        assert_eq!(doc_key(&p, 0), None);
        assert!(check_payload(Kind::DocPut, flags, &p, true).is_ok());
        // The same bytes without the flag read as a format-1 payload whose
        // body starts where the key does: never as the key.
        assert_eq!(decode_doc(&p, 0).unwrap().key, None);
        let long = "k".repeat(MAX_KEY_LEN + 1);
        let (p, flags) = encode_doc_prefix(&DocFields {
            key: Some(&long),
            ..DocFields::default()
        });
        assert!(decode_doc(&p, flags).is_err());
        assert!(check_payload(Kind::DocPut, flags, &p, false).is_err());
    }

    #[test]
    fn input_payload_layouts_and_null_outputs() {
        let (prefix, rest, flags) = encode_input("[1]", None, Some("2"));
        assert_eq!(flags, FLAG_HAS_OUTPUT);
        let mut p = prefix;
        p.extend_from_slice(rest);
        assert_eq!(
            decode_input(&p, flags).unwrap(),
            (&b"[1]"[..], None, &b"2"[..])
        );
        let (prefix, rest, flags) = encode_input("[1]", Some("{}"), Some("null"));
        assert_eq!(flags, FLAG_HAS_OUTPUT | FLAG_EXTENDED);
        let mut p = prefix;
        p.extend_from_slice(rest);
        assert_eq!(
            decode_input(&p, flags).unwrap(),
            (&b"[1]"[..], Some(&b"{}"[..]), &b"null"[..])
        );
        // A real null only with the flag; a format-1 "null" means none.
        let (_, _, flags) = encode_input("1", None, Some("null"));
        assert_eq!(flags, FLAG_HAS_OUTPUT | FLAG_EXTENDED);
        assert!(output_present(FLAG_EXTENDED, b"null"));
        assert!(!output_present(0, b"null"));
        assert!(output_present(0, b"3"));
        assert!(check_payload(Kind::NodeMetaPut, 0, b"[1]", true).is_err());
        assert!(check_payload(Kind::NodeMetaPut, 0, b"{\"a\":1}", true).is_ok());
        assert!(check_payload(Kind::OutputDelete, 0, b"x", true).is_err());
    }

    #[test]
    fn key_entries_round_trip_through_a_block() {
        let slot = key_slot("HumanEval/42");
        assert!(slot >= KEY_SPACE);
        assert_eq!(key_slot("HumanEval/42"), slot);
        assert_ne!(key_slot("HumanEval/43"), slot);
        let e = IndexEntry {
            doc: slot,
            node: 7,
            seq: 3,
            offset: 40,
            aux: 0,
            len: 80,
            kind: Kind::DocPut,
            flags: FLAG_EXTENDED,
        };
        assert!(e.is_key());
        assert_eq!(decode_block(&encode_block(&[e])), Some(vec![e]));
    }

    #[test]
    fn manifest_round_trips_and_refuses_damage() {
        let member = Member {
            number: 3,
            len: 4096,
            records: 10,
            min_seq: 1,
            max_seq: 11,
            min_doc: 1,
            max_doc: 4,
            keys: 2,
            live_bytes: UNKNOWN,
            dead_bytes: UNKNOWN,
            version: FORMAT_VERSION,
            flags: 1,
        };
        let m = Manifest {
            store_id: 0xfeed,
            serial: 2,
            active: 4,
            next_number: 5,
            doc_hwm: 4,
            max_seq: 11,
            counters: [4, 6, 2, UNKNOWN],
            members: vec![
                member,
                Member {
                    number: 1,
                    ..member
                },
            ],
        };
        // Members out of order are refused.
        assert!(Manifest::decode(&m.encode()).is_err());
        let m = Manifest {
            members: vec![
                Member {
                    number: 1,
                    ..member
                },
                member,
            ],
            ..m
        };
        let b = m.encode();
        assert_eq!(b.len(), MANIFEST_HEADER_LEN + 2 * MEMBER_LEN + 4);
        assert_eq!(Manifest::decode(&b), Ok(m.clone()));
        for bit in 0..b.len() * 8 {
            let mut d = b.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(
                Manifest::decode(&d).is_err(),
                "flip of bit {bit} not caught"
            );
        }
        for cut in 0..b.len() {
            assert!(Manifest::decode(&b[..cut]).is_err());
        }
        // A newer version is an unsupported version, not damage.
        let mut d = b.clone();
        d[8] = 3;
        let body = d.len() - 4;
        let crc = crate::crc::crc32(&d[..body]);
        d[body..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Manifest::decode(&d), Err(HeaderError::Version(3)));
        assert!(member.may_hold(4) && !member.may_hold(5) && member.may_hold(KEY_SPACE + 1));
    }

    #[test]
    fn headers_round_trip_and_reject_other_versions() {
        let h = SegmentHeader {
            version: FORMAT_V1,
            store_id: 0,
            flags: SEG_FLAG_COMPACTED,
            number: 12,
            gen_base: 12,
            gen_count: 3,
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        let h2 = SegmentHeader::v2(12, 0xabcdef, 0);
        let mut b = h2.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h2));
        b[SH_VERSION] = 3;
        let crc = crate::crc::crc32(&b[..SH_CRC]);
        b[SH_CRC..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(SegmentHeader::decode(&b), Err(HeaderError::Version(3)));
        // A format-2 header must carry a store id.
        assert!(SegmentHeader::decode(&SegmentHeader::v2(12, 0, 0).encode()).is_err());
        let ih = IndexHeader {
            version: FORMAT_VERSION,
            store_id: 77,
            segment: 1,
            segment_len: 2,
            entries: 3,
            max_seq: 4,
            doc_hwm: 5,
        };
        assert_eq!(IndexHeader::decode(&ih.encode(), 77), Some(ih));
        // Another store's index fails its check.
        assert_eq!(IndexHeader::decode(&ih.encode(), 78), None);
        let v1 = IndexHeader {
            version: FORMAT_V1,
            store_id: 0,
            ..ih
        };
        assert_eq!(IndexHeader::decode(&v1.encode(), 78), Some(v1));
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
    fn decode_block_into_replaces_what_the_buffer_held() {
        let e = |doc| IndexEntry {
            doc,
            node: 1,
            seq: doc,
            offset: 40,
            aux: 0,
            len: 64,
            kind: Kind::InputPut,
            flags: 0,
        };
        let mut out = Vec::new();
        let two = encode_block(&[e(1), e(2)]);
        assert_eq!(decode_block_into(&two, &mut out), Some(()));
        assert_eq!(out, [e(1), e(2)]);
        let one = encode_block(&[e(3)]);
        assert_eq!(decode_block_into(&one, &mut out), Some(()));
        assert_eq!(out, [e(3)]);
        // A block that fails its checks leaves nothing of the last one.
        let mut bad = two;
        bad[0] ^= 1;
        assert_eq!(decode_block_into(&bad, &mut out), None);
        assert!(out.is_empty());
        // Nor does one whose CRC passes over an entry of no known kind.
        let mut unknown = [0u8; INDEX_BLOCK_LEN];
        unknown[..INDEX_BLOCK_LEN].copy_from_slice(&two);
        unknown[INDEX_ENTRY_LEN + 34] = 0xff;
        let crc = crate::crc::crc32(&unknown[..BLOCK_CRC_AT]);
        unknown[BLOCK_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        out.push(e(9));
        assert_eq!(decode_block_into(&unknown, &mut out), None);
        assert!(out.is_empty());
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
