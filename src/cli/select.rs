//! The selection flags of `list` and `dump` (the rule is the library's
//! [`Selection`]), and `dump --fields`, the projection of the fields of
//! each document, in stratum's exact text.

use std::fmt::Write as _;
use std::ops::RangeInclusive;
use std::sync::mpsc;

use clap::Args;

use stratum::{Document, Json, Node, ReadOnlyStore, Selection, Store, json};

use crate::cli::GlobalArgs;

/// The selection flags `list` and `dump` share.
#[derive(Debug, Default, Args)]
pub struct SelectArgs {
    /// Only the document with this key: a key lookup, which probes each
    /// sealed segment holding keys (compaction merges them), not the store.
    #[arg(long, value_name = "NAME", help_heading = "Selection")]
    pub key: Option<String>,
    /// Only documents whose key starts with P.
    #[arg(long, value_name = "P", help_heading = "Selection")]
    pub key_prefix: Option<String>,
    /// Only documents of this category.
    #[arg(long, value_name = "C", help_heading = "Selection")]
    pub category: Option<String>,
    /// Only documents whose meta has the top-level FIELD with exactly this
    /// JSON value (compared as compact text: `1.0` is not `1`). Repeat to
    /// require several; a field no document has selects nothing (exit 0).
    #[arg(long, value_name = "FIELD=JSON", value_parser = parse_meta_filter, help_heading = "Selection")]
    pub meta: Vec<MetaFilter>,
    /// Only documents whose id is in RANGE: N, A..B (both included), A.. or
    /// ..B.
    #[arg(long, value_name = "RANGE", value_parser = parse_range, help_heading = "Selection")]
    pub id: Option<RangeInclusive<u64>>,
    /// Only documents with at least one input that has no expected output.
    #[arg(long, help_heading = "Selection")]
    pub missing_output: bool,
}

impl SelectArgs {
    /// The library's selection for these flags.
    pub fn selection(&self) -> Selection {
        let mut sel = Selection::new();
        if let Some(k) = &self.key {
            sel = sel.key(k);
        }
        if let Some(p) = &self.key_prefix {
            sel = sel.key_prefix(p);
        }
        if let Some(c) = &self.category {
            sel = sel.category(c);
        }
        for f in &self.meta {
            sel = sel.meta(&f.field, f.value.clone());
        }
        if let Some(r) = &self.id {
            sel = sel.ids(r.clone());
        }
        if self.missing_output {
            sel = sel.missing_output();
        }
        sel
    }
}

/// What one half of a split scan sends at once: items of about this many
/// bytes in all (or one larger item).
const CHUNK_BYTES: usize = 256 << 10;

/// Chunks the upper half may have ready before it waits for the lower
/// half: what bounds the memory it holds.
const CHUNKS_AHEAD: usize = 4;

/// Reads a selection from a store, giving each item to the callback, in id
/// order: what [`in_halves`] runs once per half.
pub type Scan<'a, T> = dyn Fn(&Store, &Selection, &mut dyn FnMut(T) -> stratum::Result<()>) -> stratum::Result<()>
    + Sync
    + 'a;

/// Reads `sel` with `scan`, giving each item to `emit` in id order. When
/// the library cuts the selection in two ([`Selection::halves`]), the upper
/// half is read on a second thread through a second read-only handle
/// under this one's lock ([`ReadOnlyStore::beside`]: both see one state),
/// and handed over in chunks of about
/// [`CHUNK_BYTES`] (`weight` sizes an item), at most [`CHUNKS_AHEAD`]
/// ahead; the lower half is read here and emitted as it comes, then the
/// upper. What is emitted, and the first error, are those of one pass:
/// a failure in the lower half ends the command before anything of the
/// upper half is shown.
///
/// # Errors
/// What `scan` or `emit` returns; opening the second handle.
pub fn in_halves<T: Send>(
    g: &GlobalArgs,
    store: &ReadOnlyStore,
    sel: &Selection,
    scan: &Scan<'_, T>,
    weight: fn(&T) -> usize,
    emit: &mut dyn FnMut(T) -> stratum::Result<()>,
) -> stratum::Result<()> {
    let Some((low, high)) = sel.halves(store)? else {
        return scan(store, sel, emit);
    };
    let beside = g.beside(store)?;
    let (tx, rx) = mpsc::sync_channel::<Vec<T>>(CHUNKS_AHEAD);
    std::thread::scope(|scope| {
        let upper = scope.spawn(move || {
            let (mut chunk, mut bytes) = (Vec::new(), 0usize);
            let mut hung_up = false;
            let r = scan(&beside, &high, &mut |item| {
                bytes += weight(&item);
                chunk.push(item);
                if bytes >= CHUNK_BYTES {
                    bytes = 0;
                    if tx.send(std::mem::take(&mut chunk)).is_err() {
                        // The lower half failed: nothing more is shown.
                        hung_up = true;
                        return Err(stratum::Error::internal("the lower half ended"));
                    }
                }
                Ok(())
            });
            if !hung_up && !chunk.is_empty() {
                let _ = tx.send(chunk);
            }
            r
        });
        let rx = rx;
        let mut shown = scan(store, &low, emit);
        if shown.is_ok() {
            shown = rx.iter().flatten().try_for_each(&mut *emit);
        }
        // Hung up first, so that an upper half waiting to send ends.
        drop(rx);
        let upper = upper
            .join()
            .unwrap_or_else(|_| Err(stratum::Error::internal("the upper half's thread panicked")));
        shown.and(upper)
    })
}

/// A `--meta FIELD=JSON` filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaFilter {
    field: String,
    value: Json,
}

/// Parses `FIELD=JSON`: the field name is everything before the first `=`.
pub fn parse_meta_filter(text: &str) -> Result<MetaFilter, String> {
    let Some((field, value)) = text.split_once('=').filter(|(f, _)| !f.is_empty()) else {
        return Err(format!(
            "`{text}` is not FIELD=JSON (for example difficulty='\"hard\"' or level=3)"
        ));
    };
    let value = Json::parse(value).map_err(|e| format!("the value of {field}: {e}"))?;
    Ok(MetaFilter {
        field: field.to_owned(),
        value,
    })
}

/// Parses `N`, `A..B`, `A..` or `..B` (ids are positive; both ends included).
pub fn parse_range(text: &str) -> Result<RangeInclusive<u64>, String> {
    let id = |s: &str| -> Result<u64, String> {
        match s.trim().parse::<u64>() {
            Ok(0) => Err("ids start at 1".to_owned()),
            Ok(n) => Ok(n),
            Err(_) => Err(format!(
                "`{text}` is not an id range (expected N, A..B, A.. or ..B)"
            )),
        }
    };
    let range = match text.split_once("..") {
        None => {
            let n = id(text)?;
            n..=n
        }
        Some((a, b)) => {
            let lo = if a.is_empty() { 1 } else { id(a)? };
            let hi = if b.is_empty() { u64::MAX } else { id(b)? };
            lo..=hi
        }
    };
    if range.is_empty() {
        return Err(format!("`{text}` is an empty range"));
    }
    Ok(range)
}

/// A document field `dump --fields` can project.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DocField {
    Id,
    Key,
    Category,
    Version,
    Meta,
    Body,
    Inputs,
}

/// A node field, for `inputs.FIELD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeField {
    Node,
    Input,
    Meta,
    Output,
}

/// The fields `dump --fields` keeps, in the order of the `get` shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Projection {
    doc: Vec<DocField>,
    /// Empty with `Inputs` in `doc`: whole nodes.
    node: Vec<NodeField>,
}

/// The names `--fields` accepts, for messages and help.
pub const FIELD_NAMES: &str = "id, key, category, version, meta, body, inputs, inputs.node, \
     inputs.input, inputs.meta, inputs.output";

/// Parses `--fields id,category,inputs.output`.
pub fn parse_projection(text: &str) -> Result<Projection, String> {
    let mut doc = Vec::new();
    let mut node = Vec::new();
    for name in text.split(',').map(str::trim) {
        let (d, n) = match name {
            "id" => (DocField::Id, None),
            "key" => (DocField::Key, None),
            "category" => (DocField::Category, None),
            "version" => (DocField::Version, None),
            "meta" => (DocField::Meta, None),
            "body" => (DocField::Body, None),
            "inputs" => (DocField::Inputs, None),
            "inputs.node" => (DocField::Inputs, Some(NodeField::Node)),
            "inputs.input" => (DocField::Inputs, Some(NodeField::Input)),
            "inputs.meta" => (DocField::Inputs, Some(NodeField::Meta)),
            "inputs.output" => (DocField::Inputs, Some(NodeField::Output)),
            other => {
                return Err(format!(
                    "unknown field `{other}` (expected some of: {FIELD_NAMES})"
                ));
            }
        };
        if !doc.contains(&d) {
            doc.push(d);
        }
        if let Some(n) = n
            && !node.contains(&n)
        {
            node.push(n);
        }
    }
    doc.sort_by_key(|f| *f as u8);
    node.sort_by_key(|f| *f as u8);
    Ok(Projection { doc, node })
}

impl Projection {
    /// The projected document on one line, values in their stored text.
    pub fn write(&self, d: &Document, out: &mut String) {
        out.push('{');
        let mut first = true;
        let mut sep = |out: &mut String| {
            if !std::mem::take(&mut first) {
                out.push(',');
            }
        };
        for f in &self.doc {
            sep(out);
            match f {
                DocField::Id => {
                    let _ = write!(out, "\"id\":{}", d.id);
                }
                DocField::Key => opt_field(out, "key", d.key.as_deref()),
                DocField::Category => opt_field(out, "category", d.category.as_deref()),
                DocField::Version => opt_field(out, "version", d.version.as_deref()),
                DocField::Meta => {
                    let _ = write!(
                        out,
                        "\"meta\":{}",
                        d.meta.as_ref().map_or("null", |m| m.as_str())
                    );
                }
                DocField::Body => match std::str::from_utf8(&d.body) {
                    Ok(s) => {
                        out.push_str("\"body\":");
                        json::write_str_literal(s, out);
                    }
                    Err(_) => {
                        let _ = write!(
                            out,
                            "\"body_base64\":\"{}\"",
                            stratum::base64::encode(&d.body)
                        );
                    }
                },
                DocField::Inputs => {
                    out.push_str("\"inputs\":[");
                    for (i, n) in d.inputs.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        if self.node.is_empty() {
                            out.push_str(&n.to_json());
                        } else {
                            self.write_node(n, out);
                        }
                    }
                    out.push(']');
                }
            }
        }
        out.push('}');
    }

    fn write_node(&self, n: &Node, out: &mut String) {
        out.push('{');
        for (i, f) in self.node.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match f {
                NodeField::Node => {
                    let _ = write!(out, "\"node\":{}", n.id);
                }
                NodeField::Input => {
                    let _ = write!(out, "\"input\":{}", n.input.as_str());
                }
                NodeField::Meta => {
                    let _ = write!(
                        out,
                        "\"meta\":{}",
                        n.meta.as_ref().map_or("null", |m| m.as_str())
                    );
                }
                NodeField::Output => {
                    // As in the get shape: an output that is the JSON null
                    // says so, unlike a node without an output.
                    let _ = write!(
                        out,
                        "\"output\":{}",
                        n.output.as_ref().map_or("null", |o| o.as_str())
                    );
                    if n.output.as_ref().is_some_and(|o| o.as_str() == "null") {
                        out.push_str(",\"has_output\":true");
                    }
                }
            }
        }
        out.push('}');
    }
}

fn opt_field(out: &mut String, name: &str, value: Option<&str>) {
    let _ = write!(out, "\"{name}\":");
    match value {
        Some(s) => json::write_str_literal(s, out),
        None => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratum::{DocId, NodeId};

    #[test]
    fn meta_filters_parse_into_a_field_and_compact_json() {
        let tags = parse_meta_filter(r#"tags=[ "a", "b" ]"#).unwrap();
        assert_eq!(
            (tags.field.as_str(), tags.value.as_str()),
            ("tags", r#"["a","b"]"#)
        );
        // The first `=` ends the name; the value may hold more.
        let eq = parse_meta_filter(r#"f="a=b""#).unwrap();
        assert_eq!((eq.field.as_str(), eq.value.as_str()), ("f", r#""a=b""#));
        assert!(parse_meta_filter("=1").is_err());
        assert!(parse_meta_filter("level").is_err());
        assert!(parse_meta_filter("level=hard").is_err());
    }

    #[test]
    fn ranges_parse_in_every_form() {
        assert_eq!(parse_range("7"), Ok(7..=7));
        assert_eq!(parse_range("3..9"), Ok(3..=9));
        assert_eq!(parse_range("3.."), Ok(3..=u64::MAX));
        assert_eq!(parse_range("..9"), Ok(1..=9));
        assert!(parse_range("0").is_err());
        assert!(parse_range("9..3").is_err());
        assert!(parse_range("a..b").is_err());
        assert!(parse_range("").is_err());
    }

    #[test]
    fn a_projection_keeps_the_get_order_and_exact_text() {
        let doc = Document {
            id: DocId(4),
            key: None,
            category: Some("easy".into()),
            version: None,
            meta: None,
            body: b"x".to_vec(),
            inputs: vec![
                Node {
                    id: NodeId(1),
                    input: Json::parse("[1.0, 2]").unwrap(),
                    meta: None,
                    output: Some(Json::parse("-9999999999999999").unwrap()),
                },
                Node {
                    id: NodeId(3),
                    input: Json::parse("\"\\u00e9\"").unwrap(),
                    meta: None,
                    output: None,
                },
            ],
        };
        let p = parse_projection("inputs.output, id,inputs.node").unwrap();
        let mut s = String::new();
        p.write(&doc, &mut s);
        assert_eq!(
            s,
            r#"{"id":4,"inputs":[{"node":1,"output":-9999999999999999},{"node":3,"output":null}]}"#
        );
        let mut s = String::new();
        parse_projection("version,category")
            .unwrap()
            .write(&doc, &mut s);
        assert_eq!(s, r#"{"category":"easy","version":null}"#);
        assert!(parse_projection("inputs.colour").is_err());
    }
}
