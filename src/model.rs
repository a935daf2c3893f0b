//! The data model: documents, their chains of input nodes, and the expected
//! output of each node; and the one JSON shape (`get`, `dump`, `load`) they
//! are printed and read in.
//!
//! # JSON shape
//! `{"id":1,"category":"c","version":"v","body":"…","inputs":[{"node":1,"input":…,"output":…}]}`.
//! A body that is not valid UTF-8 is written as `"body_base64":"…"` (standard
//! base64, padded) in place of `"body"`, so every byte round-trips. An unset
//! category, version or output is `null`. The format-2 fields appear only
//! when set, so a document without them prints as it always did: `"key"`
//! after `"id"`, a document's `"meta"` after `"version"`, a node's `"meta"`
//! after its `"input"`, and `"has_output":true` after an output that is the
//! JSON value `null` (docs/FORMAT.md §6).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
pub use crate::id::{DocId, NodeId};
use crate::json::{self, Json};

/// Longest document key, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = crate::engine::format::MAX_KEY_LEN;

/// One input node of a document's chain, with its expected output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The node id.
    pub id: NodeId,
    /// The input value.
    pub input: Json,
    /// The node's metadata, a JSON object.
    pub meta: Option<Json>,
    /// The expected output, when one is set. `Some` of the JSON value `null`
    /// is a real `null` output, distinct from `None`.
    pub output: Option<Json>,
}

/// A document with its whole chain, as `get` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// The document id.
    pub id: DocId,
    /// Optional unique name.
    pub key: Option<String>,
    /// Optional category.
    pub category: Option<String>,
    /// Optional version.
    pub version: Option<String>,
    /// Optional metadata, a JSON object.
    pub meta: Option<Json>,
    /// The body, any bytes.
    pub body: Vec<u8>,
    /// The input nodes in chain (insertion) order.
    pub inputs: Vec<Node>,
}

/// One row of `list`: a live document without its body and values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocSummary {
    /// The document id.
    pub id: DocId,
    /// Optional unique name.
    pub key: Option<String>,
    /// Optional category.
    pub category: Option<String>,
    /// Optional version.
    pub version: Option<String>,
    /// Optional metadata, a JSON object.
    pub meta: Option<Json>,
    /// Number of live input nodes.
    pub inputs: u64,
    /// Number of those nodes with an expected output.
    pub outputs: u64,
    /// Body size in bytes.
    pub body_len: u64,
}

/// The fields of a new document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewDoc {
    /// Optional unique name (1 to [`MAX_KEY_LEN`] bytes).
    pub key: Option<String>,
    /// Optional category.
    pub category: Option<String>,
    /// Optional version.
    pub version: Option<String>,
    /// Optional metadata; must be a JSON object.
    pub meta: Option<Json>,
    /// The body.
    pub body: Vec<u8>,
}

/// A partial update. For each field, `None` keeps the stored value,
/// `Some(None)` clears it and `Some(Some(v))` sets it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocPatch {
    /// New key.
    pub key: Option<Option<String>>,
    /// New category.
    pub category: Option<Option<String>>,
    /// New version.
    pub version: Option<Option<String>>,
    /// New metadata (a JSON object).
    pub meta: Option<Option<Json>>,
    /// New body.
    pub body: Option<Vec<u8>>,
}

impl DocPatch {
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.key.is_none()
            && self.category.is_none()
            && self.version.is_none()
            && self.meta.is_none()
            && self.body.is_none()
    }
}

/// Checks a document key: 1 to [`MAX_KEY_LEN`] bytes.
///
/// # Errors
/// [`Error::InvalidInput`] saying why.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Error::invalid(format!(
            "a key must be 1 to {MAX_KEY_LEN} bytes long (got {})",
            key.len()
        )));
    }
    Ok(())
}

/// Checks that a `meta` value is a JSON object.
///
/// # Errors
/// [`Error::InvalidInput`] otherwise.
pub fn check_meta(meta: &Json) -> Result<()> {
    if meta.as_str().starts_with('{') {
        Ok(())
    } else {
        Err(Error::invalid("meta must be a JSON object"))
    }
}

fn opt_str(s: Option<&str>, out: &mut String) {
    match s {
        Some(s) => json::write_str_literal(s, out),
        None => out.push_str("null"),
    }
}

/// Writes the body as `"body":"…"` or, when it is not UTF-8, `"body_base64":"…"`.
fn body_field(body: &[u8], out: &mut String) {
    match std::str::from_utf8(body) {
        Ok(s) => {
            out.push_str("\"body\":");
            json::write_str_literal(s, out);
        }
        Err(_) => {
            out.push_str("\"body_base64\":\"");
            out.push_str(&crate::base64::encode(body));
            out.push('"');
        }
    }
}

impl Node {
    /// `{"node":N,"input":…,"output":…}` on one line.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        out.push_str("{\"node\":");
        out.push_str(&self.id.0.to_string());
        out.push_str(",\"input\":");
        out.push_str(self.input.as_str());
        if let Some(m) = &self.meta {
            out.push_str(",\"meta\":");
            out.push_str(m.as_str());
        }
        out.push_str(",\"output\":");
        out.push_str(self.output.as_ref().map_or("null", Json::as_str));
        if self.output.as_ref().is_some_and(|o| o.as_str() == "null") {
            out.push_str(",\"has_output\":true");
        }
        out.push('}');
    }
}

impl Document {
    /// The document in the `get` shape, on one line, appended to `out`.
    pub fn write_json(&self, out: &mut String) {
        out.push_str("{\"id\":");
        out.push_str(&self.id.0.to_string());
        if let Some(k) = &self.key {
            out.push_str(",\"key\":");
            json::write_str_literal(k, out);
        }
        out.push_str(",\"category\":");
        opt_str(self.category.as_deref(), out);
        out.push_str(",\"version\":");
        opt_str(self.version.as_deref(), out);
        if let Some(m) = &self.meta {
            out.push_str(",\"meta\":");
            out.push_str(m.as_str());
        }
        out.push(',');
        body_field(&self.body, out);
        out.push_str(",\"inputs\":[");
        for (i, node) in self.inputs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            node.write_json(out);
        }
        out.push_str("]}");
    }

    /// The document in the `get` shape, on one line.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.body.len() + 64);
        self.write_json(&mut out);
        out
    }

    /// Parses one line in the `get` shape (as `load` reads it). `id` and
    /// `node` fields may be absent; they are used only when ids are kept.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first problem.
    pub fn from_json(line: &str) -> Result<ParsedDoc> {
        match fast_doc(line) {
            Some(doc) => Ok(doc),
            None => slow_doc(line),
        }
    }
}

/// [`Document::from_json`] through serde_json: the reference, which decides
/// every line [`fast_doc`] does not take, and words every refusal.
fn slow_doc(line: &str) -> Result<ParsedDoc> {
    let raw: RawDoc = serde_json::from_str(line).map_err(|e| {
        Error::invalid(
            crate::shape::explain(line, &crate::shape::DOCUMENT)
                .unwrap_or_else(|| format!("not a document: {e}")),
        )
    })?;
    let body = match (raw.body, raw.body_base64) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid("give either body or body_base64, not both"));
        }
        (Some(s), None) => s.into_bytes(),
        (None, Some(b)) => crate::base64::decode(&b)?,
        (None, None) => Vec::new(),
    };
    let mut inputs = Vec::with_capacity(raw.inputs.len());
    for n in raw.inputs {
        // `null` (which serde reads as absent) is no output, unless
        // `has_output` says it is the JSON value null.
        let output = match n.output {
            Some(raw) if raw.get() != "null" => Some(Json::from_raw(&raw)?),
            _ if n.has_output == Some(true) => Some(Json::from_trusted("null".to_owned())),
            _ => None,
        };
        inputs.push(ParsedNode {
            id: n.node.map(NodeId),
            input: Json::from_raw(&n.input)?,
            meta: parse_meta(n.meta.as_deref())?,
            output,
        });
    }
    if let Some(k) = &raw.key {
        check_key(k)?;
    }
    Ok(ParsedDoc {
        id: raw.id.map(DocId),
        node_high_water: raw.node_high_water.map(NodeId),
        doc: NewDoc {
            key: raw.key,
            category: raw.category,
            version: raw.version,
            meta: parse_meta(raw.meta.as_deref())?,
            body,
        },
        inputs,
    })
}

/// Both readers of a document line, for the fuzz targets and harnesses
/// (the `sim` feature): the one-pass reader's document, when it takes the
/// line, and the serde_json reader's verdict.
#[cfg(feature = "sim")]
pub fn read_line_both_ways(line: &str) -> (Option<ParsedDoc>, Result<ParsedDoc>) {
    (fast_doc(line), slow_doc(line))
}

/// Fields of a document line, one bit each, to refuse a repeated one.
const ID: u16 = 1;
const KEY: u16 = 1 << 1;
const NODE_HWM: u16 = 1 << 2;
const CATEGORY: u16 = 1 << 3;
const VERSION: u16 = 1 << 4;
const META: u16 = 1 << 5;
const BODY: u16 = 1 << 6;
const BODY_BASE64: u16 = 1 << 7;
const INPUTS: u16 = 1 << 8;
// Of a node.
const NODE: u16 = 1 << 9;
const INPUT: u16 = 1 << 10;
const OUTPUT: u16 = 1 << 11;
const HAS_OUTPUT: u16 = 1 << 12;

/// Reads a field that may appear once: marks `field` in `seen` (`None`
/// when it was already), then reads the value with `read`, unless it was
/// `null`, which (already taken) stands for an absent field.
fn field<'a, T>(
    seen: &mut u16,
    field: u16,
    null: bool,
    r: &mut json::Fields<'a>,
    read: fn(&mut json::Fields<'a>) -> Option<T>,
) -> Option<Option<T>> {
    if *seen & field != 0 {
        return None;
    }
    *seen |= field;
    if null { Some(None) } else { read(r).map(Some) }
}

/// [`Document::from_json`] in one pass over the line, for the lines
/// [`slow_doc`] would accept, read exactly as it reads them; `None` for
/// anything else (an unknown or repeated field, a `null` where a list goes,
/// an id written as a float, any refusal), which [`slow_doc`] then decides.
/// serde_json with [`RawValue`]s read every value twice, and `load` spent
/// most of its time there.
fn fast_doc(line: &str) -> Option<ParsedDoc> {
    use json::Fields;
    let mut r = Fields::new(line);
    let mut seen = 0u16;
    let (mut id, mut key, mut node_hwm, mut category, mut version) = (None, None, None, None, None);
    let (mut meta, mut body, mut body_base64) = (None, None, None);
    let mut inputs = Vec::new();
    if !r.eat(b'{') {
        return None;
    }
    let mut more = r.first(b'}');
    while more {
        let name = r.name()?;
        // `null` is an absent field, except where a list goes.
        let null = name != "inputs" && r.null();
        let s = &mut seen;
        match &*name {
            "id" => id = field(s, ID, null, &mut r, Fields::u64)?,
            "key" => key = field(s, KEY, null, &mut r, Fields::string)?,
            "node_high_water" => node_hwm = field(s, NODE_HWM, null, &mut r, Fields::u64)?,
            "category" => category = field(s, CATEGORY, null, &mut r, Fields::string)?,
            "version" => version = field(s, VERSION, null, &mut r, Fields::string)?,
            "meta" => meta = field(s, META, null, &mut r, Fields::value)?,
            "body" => body = field(s, BODY, null, &mut r, Fields::string)?,
            "body_base64" => body_base64 = field(s, BODY_BASE64, null, &mut r, Fields::string)?,
            "inputs" => {
                field(s, INPUTS, false, &mut r, |_| Some(()))?;
                if !r.eat(b'[') {
                    return None;
                }
                let mut more = r.first(b']');
                while more {
                    inputs.push(fast_node(&mut r)?);
                    more = r.next(b']')?;
                }
            }
            _ => return None,
        }
        more = r.next(b'}')?;
    }
    if !r.end() {
        return None;
    }
    let body = match (body, body_base64) {
        (Some(_), Some(_)) => return None,
        (Some(s), None) => s.into_owned().into_bytes(),
        (None, Some(b)) => crate::base64::decode(&b).ok()?,
        (None, None) => Vec::new(),
    };
    if let Some(m) = &meta {
        check_meta(m).ok()?;
    }
    let key = key.map(Cow::into_owned);
    if let Some(k) = &key {
        check_key(k).ok()?;
    }
    Some(ParsedDoc {
        id: id.map(DocId),
        node_high_water: node_hwm.map(NodeId),
        doc: NewDoc {
            key,
            category: category.map(Cow::into_owned),
            version: version.map(Cow::into_owned),
            meta,
            body,
        },
        inputs,
    })
}

/// One node of [`fast_doc`]'s `inputs`.
fn fast_node(r: &mut json::Fields<'_>) -> Option<ParsedNode> {
    use json::Fields;
    let mut seen = 0u16;
    let (mut id, mut input, mut meta, mut output, mut has_output) = (None, None, None, None, None);
    if !r.eat(b'{') {
        return None;
    }
    let mut more = r.first(b'}');
    while more {
        let name = r.name()?;
        let s = &mut seen;
        match &*name {
            "node" => id = field(s, NODE, r.null(), r, Fields::u64)?,
            // Values are read whole, `null` included: `input` may be null,
            // and a null meta or output is taken for none below, as
            // [`slow_doc`] takes it.
            "input" => input = field(s, INPUT, false, r, Fields::value)?,
            "meta" => meta = field(s, META, false, r, Fields::value)?,
            "output" => output = field(s, OUTPUT, false, r, Fields::value)?,
            "has_output" => has_output = field(s, HAS_OUTPUT, r.null(), r, Fields::bool)?,
            _ => return None,
        }
        more = r.next(b'}')?;
    }
    let not_null = |v: &Json| v.as_str() != "null";
    let meta = meta.filter(not_null);
    if let Some(m) = &meta {
        check_meta(m).ok()?;
    }
    let output = match output.filter(not_null) {
        Some(o) => Some(o),
        None if has_output == Some(true) => Some(Json::from_trusted("null".to_owned())),
        None => None,
    };
    Some(ParsedNode {
        id: id.map(NodeId),
        input: input?,
        meta,
        output,
    })
}

/// A document read from a JSON line by [`Document::from_json`].
#[derive(Debug)]
pub struct ParsedDoc {
    /// The `id` field, if present.
    pub id: Option<DocId>,
    /// The `node_high_water` field (`dump --high-water`): the highest node
    /// id the document ever had, deleted nodes included.
    pub node_high_water: Option<NodeId>,
    /// Category, version and body.
    pub doc: NewDoc,
    /// The chain.
    pub inputs: Vec<ParsedNode>,
}

impl ParsedDoc {
    /// Appends this document to `out` in the form [`ParsedDoc::from_spool`]
    /// reads back: for a program that reads its input ahead (before it
    /// takes the store's lock, say) and keeps it in a temporary file of its
    /// own, so that each line is parsed once. Fields are length-prefixed and
    /// the whole is covered by a CRC-32; it is no format of the store, and
    /// may change between builds.
    pub fn spool_into(&self, out: &mut Vec<u8>) {
        fn bytes(out: &mut Vec<u8>, b: &[u8]) {
            // Lines are at most `load`'s limit, far below 4 GiB.
            out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(b);
        }
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        let d = &self.doc;
        let present = [
            self.id.is_some(),
            self.node_high_water.is_some(),
            d.key.is_some(),
            d.category.is_some(),
            d.version.is_some(),
            d.meta.is_some(),
        ];
        out.push(present.iter().rev().fold(0, |f, &p| f << 1 | u8::from(p)));
        for n in [self.id.map(|i| i.0), self.node_high_water.map(|n| n.0)]
            .into_iter()
            .flatten()
        {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for s in [
            d.key.as_deref(),
            d.category.as_deref(),
            d.version.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            bytes(out, s.as_bytes());
        }
        if let Some(m) = &d.meta {
            bytes(out, m.as_str().as_bytes());
        }
        bytes(out, &d.body);
        out.extend_from_slice(
            &u32::try_from(self.inputs.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        for n in &self.inputs {
            let present = [n.id.is_some(), n.meta.is_some(), n.output.is_some()];
            out.push(present.iter().rev().fold(0, |f, &p| f << 1 | u8::from(p)));
            if let Some(id) = n.id {
                out.extend_from_slice(&id.0.to_le_bytes());
            }
            bytes(out, n.input.as_str().as_bytes());
            for v in [&n.meta, &n.output].into_iter().flatten() {
                bytes(out, v.as_str().as_bytes());
            }
        }
        let crc = crate::crc::crc32(out.get(start + 4..).unwrap_or_default());
        if let Some(head) = out.get_mut(start..start + 4) {
            head.copy_from_slice(&crc.to_le_bytes());
        }
    }

    /// A document that [`ParsedDoc::spool_into`] wrote: its CRC is checked,
    /// and its values are taken as they were validated then, not parsed
    /// again.
    ///
    /// # Errors
    /// [`Error::Io`] when the bytes are not what it wrote (the temporary
    /// file they were kept in was damaged).
    pub fn from_spool(spooled: &[u8]) -> Result<ParsedDoc> {
        let damaged = || {
            Error::io(
                "read",
                "<temporary file>",
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "input read ahead came back damaged",
                ),
            )
        };
        let (crc, rest) = spooled.split_first_chunk::<4>().ok_or_else(damaged)?;
        if crate::crc::crc32(rest) != u32::from_le_bytes(*crc) {
            return Err(damaged());
        }
        Unspool(rest).doc().ok_or_else(damaged)
    }
}

/// Reads what [`ParsedDoc::spool_into`] wrote.
struct Unspool<'a>(&'a [u8]);

impl<'a> Unspool<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.take(usize::try_from(n).ok()?)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    /// A value as it was validated before it was spooled.
    fn json(&mut self) -> Option<Json> {
        Some(Json::from_trusted(self.string()?))
    }

    /// `read` when bit `bit` of `flags` says the field is there.
    fn opt<T>(
        &mut self,
        flags: u8,
        bit: u8,
        read: fn(&mut Self) -> Option<T>,
    ) -> Option<Option<T>> {
        if flags & (1 << bit) == 0 {
            Some(None)
        } else {
            read(self).map(Some)
        }
    }

    fn doc(mut self) -> Option<ParsedDoc> {
        let f = self.byte()?;
        let id = self.opt(f, 0, Self::u64)?.map(DocId);
        let node_high_water = self.opt(f, 1, Self::u64)?.map(NodeId);
        let key = self.opt(f, 2, Self::string)?;
        let category = self.opt(f, 3, Self::string)?;
        let version = self.opt(f, 4, Self::string)?;
        let meta = self.opt(f, 5, Self::json)?;
        let body = self.bytes()?.to_vec();
        let count = self.u32()?;
        let mut inputs = Vec::new();
        for _ in 0..count {
            let f = self.byte()?;
            inputs.push(ParsedNode {
                id: self.opt(f, 0, Self::u64)?.map(NodeId),
                input: self.json()?,
                meta: self.opt(f, 1, Self::json)?,
                output: self.opt(f, 2, Self::json)?,
            });
        }
        self.0.is_empty().then_some(ParsedDoc {
            id,
            node_high_water,
            doc: NewDoc {
                key,
                category,
                version,
                meta,
                body,
            },
            inputs,
        })
    }
}

/// One node of a [`ParsedDoc`].
#[derive(Debug)]
pub struct ParsedNode {
    /// The `node` field, if present.
    pub id: Option<NodeId>,
    /// The input value.
    pub input: Json,
    /// The node's meta, if present.
    pub meta: Option<Json>,
    /// The output value (absent, or `null` without `"has_output":true`,
    /// means none).
    pub output: Option<Json>,
}

/// A `meta` field: absent or `null` is none; anything else must be an object.
fn parse_meta(raw: Option<&RawValue>) -> Result<Option<Json>> {
    match raw {
        Some(r) if r.get() != "null" => {
            let j = Json::from_raw(r)?;
            check_meta(&j)?;
            Ok(Some(j))
        }
        _ => Ok(None),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    id: Option<u64>,
    key: Option<String>,
    node_high_water: Option<u64>,
    category: Option<String>,
    version: Option<String>,
    #[serde(default)]
    meta: Option<Box<RawValue>>,
    body: Option<String>,
    body_base64: Option<String>,
    #[serde(default)]
    inputs: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    node: Option<u64>,
    input: Box<RawValue>,
    #[serde(default)]
    meta: Option<Box<RawValue>>,
    #[serde(default)]
    output: Option<Box<RawValue>>,
    has_output: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass reader takes the plain lines, and whatever it takes it
    /// reads as serde_json does: the same document, never one that
    /// serde_json refuses. Checked on lines of every field, and on each of
    /// them cut short, with every byte replaced by one that matters to the
    /// grammar, and with a field repeated.
    #[test]
    fn one_pass_reader_agrees_with_serde_json() {
        let lines = [
            r#"{"id":7,"key":"k1","node_high_water":9,"category":"easy","version":"1.0","meta":{"a":[1,2]},"body":"<p>\"hi\"\n\u00e9\ud83d\ude00 数据</p>","inputs":[{"node":1,"input":[1, 2.5e3,"x"],"meta":{"m":null},"output":{"r":true}},{"node":3,"input":null,"output":null,"has_output":true},{"input":"s","output":null,"has_output":false}]}"#,
            r#" { "body_base64" : "/wD+" , "inputs" : [ ] , "category" : null , "version" : null , "meta" : null , "id" : null } "#,
            r#"{"body":"","inputs":[{"input":{"deep":[[[{}]]]},"node":null,"meta":null,"has_output":null}]}"#,
            r#"{}"#,
            r#"{"key":"\u0041\/\\\b\f\r\t","body":"x"}"#,
        ];
        let specials = b"{}[]\",:.-+eE019tfnu\\ \x01/";
        let agree = |line: &str| {
            let fast = fast_doc(line);
            let slow = slow_doc(line);
            if let Some(f) = &fast {
                match &slow {
                    Ok(s) => assert_eq!(format!("{f:?}"), format!("{s:?}"), "{line}"),
                    Err(e) => panic!("{line}: taken, but serde_json says {e}"),
                }
            }
            fast.is_some()
        };
        let mut taken = 0;
        let mut cases = 0;
        for line in lines {
            assert!(agree(line), "{line} not taken");
            let b = line.as_bytes();
            let mut variants = Vec::new();
            for cut in 0..b.len() {
                variants.push(b[..cut].to_vec());
            }
            for at in 0..b.len() {
                for &s in specials {
                    let mut m = b.to_vec();
                    m[at] = s;
                    variants.push(m);
                }
            }
            for field in [
                "\"id\":1,",
                "\"body\":\"b\",",
                "\"inputs\":[],",
                "\"meta\":{},",
            ] {
                variants.push(format!("{{{field}{}", &line[1..]).into_bytes());
            }
            for v in &variants {
                if let Ok(text) = std::str::from_utf8(v) {
                    taken += usize::from(agree(text));
                    cases += 1;
                }
            }
        }
        assert!(cases > 5000 && taken > 100, "{cases} cases, {taken} taken");
    }

    /// A spooled document reads back as it was parsed, and a spool whose
    /// bytes changed is refused, never read as another document.
    #[test]
    fn spooled_documents_read_back_exactly_and_damage_is_refused() {
        for line in [
            r#"{"id":7,"key":"k","node_high_water":9,"category":"c","version":"v","meta":{"a":1},"body":"b\n","inputs":[{"node":1,"input":[1],"meta":{"m":2},"output":3},{"input":null,"output":null,"has_output":true},{"input":"x"}]}"#,
            r#"{"body_base64":"/wD+"}"#,
            r#"{}"#,
        ] {
            let doc = Document::from_json(line).unwrap();
            let mut spool = b"before".to_vec();
            doc.spool_into(&mut spool);
            let mine = &spool[6..];
            assert_eq!(
                format!("{:?}", ParsedDoc::from_spool(mine).unwrap()),
                format!("{doc:?}")
            );
            for at in 0..mine.len() {
                let mut bad = mine.to_vec();
                bad[at] ^= 0x10;
                assert!(ParsedDoc::from_spool(&bad).is_err(), "{line}: flip at {at}");
            }
            assert!(ParsedDoc::from_spool(&mine[..mine.len() - 1]).is_err());
        }
    }

    #[test]
    fn document_json_round_trips_including_binary_bodies() {
        for body in [b"<p>hi \"there\"</p>\n".to_vec(), vec![0xff, 0x00, 0xfe]] {
            let doc = Document {
                id: DocId(7),
                key: None,
                category: Some("cat".into()),
                version: None,
                meta: None,
                body: body.clone(),
                inputs: vec![Node {
                    id: NodeId(3),
                    input: Json::parse("[1, 2.50]").unwrap(),
                    meta: None,
                    output: None,
                }],
            };
            let line = doc.to_json();
            let parsed = Document::from_json(&line).unwrap();
            assert_eq!(parsed.id, Some(DocId(7)));
            assert_eq!(parsed.doc.body, body);
            assert_eq!(parsed.doc.category.as_deref(), Some("cat"));
            assert_eq!(parsed.inputs[0].id, Some(NodeId(3)));
            assert_eq!(parsed.inputs[0].input.as_str(), "[1,2.50]");
            assert!(parsed.inputs[0].output.is_none());
        }
    }

    #[test]
    fn get_shape_is_exact() {
        let doc = Document {
            id: DocId(1),
            key: None,
            category: None,
            version: Some("v1".into()),
            meta: None,
            body: b"x".to_vec(),
            inputs: vec![],
        };
        assert_eq!(
            doc.to_json(),
            r#"{"id":1,"category":null,"version":"v1","body":"x","inputs":[]}"#
        );
    }

    #[test]
    fn format_2_fields_print_only_when_set_and_parse_back() {
        let null = Json::parse("null").unwrap();
        let doc = Document {
            id: DocId(2),
            key: Some("two-sum".into()),
            category: None,
            version: None,
            meta: Some(Json::parse(r#"{"tags": ["a"]}"#).unwrap()),
            body: b"b".to_vec(),
            inputs: vec![
                Node {
                    id: NodeId(1),
                    input: Json::parse("1").unwrap(),
                    meta: Some(Json::parse(r#"{"label":"x"}"#).unwrap()),
                    output: Some(null.clone()),
                },
                Node {
                    id: NodeId(2),
                    input: Json::parse("2").unwrap(),
                    meta: None,
                    output: None,
                },
            ],
        };
        let line = doc.to_json();
        assert_eq!(
            line,
            r#"{"id":2,"key":"two-sum","category":null,"version":null,"meta":{"tags":["a"]},"body":"b","inputs":[{"node":1,"input":1,"meta":{"label":"x"},"output":null,"has_output":true},{"node":2,"input":2,"output":null}]}"#
        );
        let p = Document::from_json(&line).unwrap();
        assert_eq!(p.doc.key.as_deref(), Some("two-sum"));
        assert_eq!(
            p.doc.meta.as_ref().map(Json::as_str),
            Some(r#"{"tags":["a"]}"#)
        );
        assert_eq!(p.inputs[0].output, Some(null));
        assert_eq!(
            p.inputs[0].meta.as_ref().map(Json::as_str),
            Some(r#"{"label":"x"}"#)
        );
        assert_eq!(p.inputs[1].output, None);
        assert!(Document::from_json(r#"{"meta":[1]}"#).is_err());
        assert!(Document::from_json(r#"{"key":""}"#).is_err());
    }
}
