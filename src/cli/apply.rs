//! `stratum apply`: a batch of write operations from JSON Lines, applied
//! as one atomic write.
//!
//! Nothing here grows with the batch in memory: lines are parsed one at a
//! time, and what must wait for the commit (the report) or be looked up by
//! later lines (what each create-doc made) moves to unnamed files past a
//! few MiB. The documents being replaced hold their old chains' node ids
//! until the batch ends (`stratum::Replacing`), 8 bytes a node.

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::cli::conflict::OnConflictArg;
use crate::cli::input::{self, STDIN, Source, Spool, at_line};
use crate::cli::{DocArg, GlobalArgs, KEY_PREFIX, output};
use stratum::shape::{self, Shape, Want};
use stratum::{
    Created, DocId, DocPatch, Error, Json, NewDoc, NodeId, OnConflict, Replacing, Result, Store,
};

/// Apply a batch of write operations from JSON Lines, all or nothing.
///
/// One operation per line, named by "op":
///   {"op":"create-doc", "body":"…" or "body_base64":"…", "key":…,
///    "category":…, "version":…, "meta":{…}}
///   {"op":"update-doc", "doc":D, and any of "body"/"body_base64"/"key"/
///    "category"/"version"/"meta" (null clears a field), "meta_patch":{…}}
///   {"op":"add-input", "doc":D, "input":V, "output":V, "meta":{…}}
///   {"op":"set-output", "doc":D, "node":N, "output":V}
///   {"op":"clear-output", "doc":D, "node":N}
///   {"op":"update-input", "doc":D, "node":N, "meta":{…} or null,
///    or "meta_patch":{…}}
///   {"op":"delete-input", "doc":D, "node":N}
///   {"op":"delete-doc", "doc":D}
///
/// "doc" is an id, "key:NAME", or "$K": the document created by line K
/// (1-based) of this batch, which must be an earlier create-doc line. An
/// "output" given as null is a real null output (leave "output" out for
/// none). "meta_patch" is a JSON merge patch (RFC 7386). Blank lines are
/// skipped.
///
/// A create-doc whose "key" a live document holds fails the batch (exit 4)
/// unless --on-conflict says otherwise: `replace` makes that document the
/// line's, keeping its id, and the add-input lines that follow for it are
/// matched against its old chain in order (an unchanged input keeps its
/// node id; old nodes not reached are deleted at the end of the batch);
/// `skip` leaves it alone, with every later line that names it by "$K".
///
/// Prints one JSON line per operation: {"line":K,"op":"…","doc":D}, with
/// "node":N for the node operations, and "conflict":"replaced" or
/// "skipped" (also on the lines a skip skipped) where --on-conflict acted.
/// When any line fails, nothing is applied and the error names the line
/// (exit 3 for an unknown document, key or node, 4 for bad input).
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Apply a batch of write operations from JSON Lines, all or nothing",
    after_help = "\
Examples:
  stratum apply ops.jsonl
  printf '%s\\n' \\
    '{\"op\":\"create-doc\",\"body\":\"Sum two numbers\",\"key\":\"sum\",\"category\":\"easy\"}' \\
    '{\"op\":\"add-input\",\"doc\":\"$1\",\"input\":[1,2],\"output\":3}' \\
    | stratum apply --on-conflict replace -
  echo '{\"op\":\"set-output\",\"doc\":\"key:sum\",\"node\":1,\"output\":null}' | stratum apply -"
)]
pub struct ApplyArgs {
    /// The JSON Lines file; `-` or absent reads stdin (absent: not from a
    /// terminal).
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
    /// What a create-doc does whose key a live document holds: fail (exit
    /// 4), replace that document, or skip it.
    #[arg(long, value_enum, default_value_t = OnConflictArg::Fail, value_name = "WHAT")]
    pub on_conflict: OnConflictArg,
    #[command(flatten)]
    pub json: crate::cli::JsonAlready,
}

/// One line as written, before its fields are checked against its op. For
/// the fields where null means something (clear a field, a null output, a
/// null input), `Some(None)` is an explicit null and `None` is absent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOp<'a> {
    op: String,
    #[serde(default, borrow)]
    doc: Option<&'a RawValue>,
    #[serde(default)]
    node: Option<u64>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
    #[serde(default, deserialize_with = "present")]
    key: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    category: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    version: Option<Option<String>>,
    #[serde(default, borrow, deserialize_with = "present")]
    meta: Option<Option<&'a RawValue>>,
    #[serde(default, borrow)]
    meta_patch: Option<&'a RawValue>,
    /// `Some` whenever the field is given, `null` included: an input can be
    /// the JSON value `null`, as with `add-input DOC null` and `load`.
    #[serde(default, borrow, deserialize_with = "given")]
    input: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "given")]
    output: Option<&'a RawValue>,
}

fn given<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    Deserialize::deserialize(d).map(Some)
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A checked operation, its document still possibly a `$K` reference or a
/// key.
enum Op {
    CreateDoc(NewDoc),
    UpdateDoc(DocRef, DocPatch, Option<Json>),
    AddInput(DocRef, Json, Option<Json>, Option<Json>),
    SetOutput(DocRef, NodeId, Json),
    ClearOutput(DocRef, NodeId),
    UpdateInput(DocRef, NodeId, MetaChange),
    DeleteInput(DocRef, NodeId),
    DeleteDoc(DocRef),
}

/// What update-input does to a node's meta.
enum MetaChange {
    Set(Option<Json>),
    Patch(Json),
}

enum DocRef {
    Doc(DocArg),
    Line(u64),
}

/// One line of output.
#[derive(Serialize)]
struct Done {
    line: u64,
    op: &'static str,
    doc: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conflict: Option<&'static str>,
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::CreateDoc(_) => "create-doc",
            Op::UpdateDoc(..) => "update-doc",
            Op::AddInput(..) => "add-input",
            Op::SetOutput(..) => "set-output",
            Op::ClearOutput(..) => "clear-output",
            Op::UpdateInput(..) => "update-input",
            Op::DeleteInput(..) => "delete-input",
            Op::DeleteDoc(_) => "delete-doc",
        }
    }

    fn doc_ref(&self) -> Option<&DocRef> {
        match self {
            Op::CreateDoc(_) => None,
            Op::UpdateDoc(r, ..)
            | Op::AddInput(r, ..)
            | Op::SetOutput(r, ..)
            | Op::ClearOutput(r, ..)
            | Op::UpdateInput(r, ..)
            | Op::DeleteInput(r, ..)
            | Op::DeleteDoc(r) => Some(r),
        }
    }
}

/// A line of `apply`: one operation (which fields each op takes is checked
/// after parsing, by `apply.rs`).
static OPERATION: Shape = Shape {
    what: "an operation",
    fields: &[
        ("op", Want::Str, true),
        ("doc", Want::Any, false),
        ("node", Want::IdOrNull, false),
        ("body", Want::StrOrNull, false),
        ("body_base64", Want::StrOrNull, false),
        ("key", Want::StrOrNull, false),
        ("category", Want::StrOrNull, false),
        ("version", Want::StrOrNull, false),
        ("meta", Want::Any, false),
        ("meta_patch", Want::Any, false),
        ("input", Want::Any, false),
        ("output", Want::Any, false),
    ],
};

/// A "meta" member: null clears, anything else must be an object.
fn meta_value(raw: Option<&RawValue>) -> Result<Option<Json>> {
    raw.map(|m| {
        let j = input::raw_json(m, "meta")?;
        stratum::model::check_meta(&j)?;
        Ok(j)
    })
    .transpose()
}

/// Parses and checks one line (1-based `line`); `$K` references must point
/// at an earlier line, which `run` checks is a create-doc.
fn parse_op(text: &str, line: u64) -> Result<Op> {
    let raw: RawOp<'_> = serde_json::from_str(text).map_err(|e| {
        Error::invalid(
            shape::explain(text, &OPERATION).unwrap_or_else(|| format!("not an operation: {e}")),
        )
    })?;
    let op = raw.op.as_str();
    let allowed: &[&str] = match op {
        "create-doc" => &["body", "body_base64", "key", "category", "version", "meta"],
        "update-doc" => &[
            "doc",
            "body",
            "body_base64",
            "key",
            "category",
            "version",
            "meta",
            "meta_patch",
        ],
        "add-input" => &["doc", "input", "output", "meta"],
        "set-output" => &["doc", "node", "output"],
        "clear-output" | "delete-input" => &["doc", "node"],
        "update-input" => &["doc", "node", "meta", "meta_patch"],
        "delete-doc" => &["doc"],
        other => {
            return Err(Error::invalid(format!(
                "unknown op {other:?} (expected create-doc, update-doc, add-input, set-output, clear-output, update-input, delete-input or delete-doc)"
            )));
        }
    };
    let given = [
        ("doc", raw.doc.is_some()),
        ("node", raw.node.is_some()),
        ("body", raw.body.is_some()),
        ("body_base64", raw.body_base64.is_some()),
        ("key", raw.key.is_some()),
        ("category", raw.category.is_some()),
        ("version", raw.version.is_some()),
        ("meta", raw.meta.is_some()),
        ("meta_patch", raw.meta_patch.is_some()),
        ("input", raw.input.is_some()),
        ("output", raw.output.is_some()),
    ];
    for (field, is_set) in given {
        if is_set && !allowed.contains(&field) {
            return Err(Error::invalid(format!(
                "field {field:?} does not apply to {op}"
            )));
        }
    }
    let need = |field: &str| Error::invalid(format!("{op} needs {field:?}"));
    let doc = || -> Result<DocRef> { doc_ref(raw.doc.ok_or_else(|| need("doc"))?, line) };
    let node = || -> Result<NodeId> {
        match raw.node {
            Some(0) => Err(Error::invalid("node ids start at 1")),
            Some(n) => Ok(NodeId(n)),
            None => Err(need("node")),
        }
    };
    let body = match (&raw.body, &raw.body_base64) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid("give either body or body_base64, not both"));
        }
        (Some(s), None) => Some(s.clone().into_bytes()),
        (None, Some(b)) => Some(stratum::base64::decode(b)?),
        (None, None) => None,
    };
    if let Some(Some(k)) = &raw.key {
        stratum::model::check_key(k)?;
    }
    if raw.meta.is_some() && raw.meta_patch.is_some() {
        return Err(Error::invalid("give either meta or meta_patch, not both"));
    }
    let meta = raw.meta.map(meta_value).transpose()?;
    let meta_patch = raw
        .meta_patch
        .map(|p| meta_value(Some(p)))
        .transpose()?
        .flatten();
    Ok(match op {
        "create-doc" => Op::CreateDoc(NewDoc {
            key: raw.key.flatten(),
            category: raw.category.flatten(),
            version: raw.version.flatten(),
            meta: meta.flatten(),
            body: body.unwrap_or_default(),
        }),
        "update-doc" => {
            let patch = DocPatch {
                key: raw.key,
                category: raw.category,
                version: raw.version,
                meta,
                body,
            };
            if patch.is_empty() && meta_patch.is_none() {
                return Err(Error::invalid(
                    "update-doc needs at least one of body, body_base64, key, category, version, meta, meta_patch",
                ));
            }
            Op::UpdateDoc(doc()?, patch, meta_patch)
        }
        "add-input" => {
            let input = raw.input.ok_or_else(|| need("input"))?;
            let output = raw
                .output
                .map(|o| input::raw_json(o, "output"))
                .transpose()?;
            Op::AddInput(
                doc()?,
                input::raw_json(input, "input")?,
                meta.flatten(),
                output,
            )
        }
        "set-output" => {
            let output = raw.output.ok_or_else(|| need("output"))?;
            Op::SetOutput(doc()?, node()?, input::raw_json(output, "output")?)
        }
        "clear-output" => Op::ClearOutput(doc()?, node()?),
        "update-input" => {
            let change = match (meta, meta_patch) {
                (Some(m), _) => MetaChange::Set(m),
                (None, Some(p)) => MetaChange::Patch(p),
                (None, None) => {
                    return Err(Error::invalid(
                        "update-input needs \"meta\" or \"meta_patch\"",
                    ));
                }
            };
            Op::UpdateInput(doc()?, node()?, change)
        }
        "delete-input" => Op::DeleteInput(doc()?, node()?),
        _ => Op::DeleteDoc(doc()?),
    })
}

fn doc_ref(raw: &RawValue, line: u64) -> Result<DocRef> {
    let text = raw.get();
    if let Ok(n) = text.parse::<u64>() {
        return if n == 0 {
            Err(Error::invalid("document ids start at 1"))
        } else {
            Ok(DocRef::Doc(DocArg::Id(DocId(n))))
        };
    }
    let s: Option<String> = serde_json::from_str(text).ok();
    if let Some(key) = s.as_deref().and_then(|s| s.strip_prefix(KEY_PREFIX)) {
        stratum::model::check_key(key)?;
        return Ok(DocRef::Doc(DocArg::Key(key.to_owned())));
    }
    let k = s
        .as_deref()
        .and_then(|s| s.strip_prefix('$'))
        .and_then(|k| k.parse::<u64>().ok())
        .ok_or_else(|| {
            Error::invalid(format!(
                "\"doc\" must be a document id, \"key:NAME\" or \"$K\" (the document created by line K), not {text}"
            ))
        })?;
    if k == 0 || k >= line {
        return Err(Error::invalid(format!(
            "\"doc\": \"${k}\" must name an earlier line of this batch"
        )));
    }
    Ok(DocRef::Line(k))
}

/// What the create-doc lines of a batch came to, by line.
#[derive(Clone, Copy)]
enum Made {
    Doc(DocId),
    Skipped(DocId),
}

/// Create-doc lines kept in memory before they go to the batch's file.
const RECENT_CREATED: usize = 1 << 16;

/// What each create-doc line of a batch made, for the `$K` references of
/// later lines: the latest [`RECENT_CREATED`] in memory, the earlier ones
/// in an unnamed file of fixed-size records in line order, searched by
/// `pread`. Most references name a recent line; memory stays flat however
/// many documents a batch creates.
struct CreatedLines {
    recent: Vec<(u64, Made)>,
    /// The earlier lines, and how many records it holds.
    filed: Option<(std::fs::File, u64)>,
    /// Where the file goes: the data directory.
    dir: std::path::PathBuf,
}

/// One filed line: its number, the document's id, and 1 when skipped.
const CREATED_RECORD: usize = 17;

impl CreatedLines {
    fn new(dir: &std::path::Path) -> CreatedLines {
        CreatedLines {
            recent: Vec::new(),
            filed: None,
            dir: dir.to_path_buf(),
        }
    }

    fn push(&mut self, line: u64, made: Made) -> Result<()> {
        if self.recent.len() >= RECENT_CREATED {
            self.file_recent()
                .map_err(|e| Error::io("spool", "<temporary file>", e))?;
        }
        self.recent.push((line, made));
        Ok(())
    }

    fn file_recent(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut bytes = Vec::with_capacity(self.recent.len() * CREATED_RECORD);
        for (line, made) in self.recent.drain(..) {
            let (id, skipped) = match made {
                Made::Doc(id) => (id, 0u8),
                Made::Skipped(id) => (id, 1),
            };
            bytes.extend_from_slice(&line.to_le_bytes());
            bytes.extend_from_slice(&id.0.to_le_bytes());
            bytes.push(skipped);
        }
        let (file, n) = match &mut self.filed {
            Some(f) => f,
            None => self.filed.insert((input::unnamed_file(&self.dir)?, 0)),
        };
        file.write_all_at(&bytes, *n * CREATED_RECORD as u64)?;
        *n += (bytes.len() / CREATED_RECORD) as u64;
        Ok(())
    }

    /// What line `k` made, if it was a create-doc.
    fn get(&self, k: u64) -> Result<Option<Made>> {
        if self.recent.first().is_some_and(|(l, _)| *l <= k) || self.filed.is_none() {
            return Ok(self
                .recent
                .binary_search_by_key(&k, |(l, _)| *l)
                .ok()
                .map(|i| self.recent[i].1));
        }
        let Some((file, n)) = &self.filed else {
            return Ok(None);
        };
        Self::search_file(file, *n, k).map_err(|e| Error::io("read", "<temporary file>", e))
    }

    fn search_file(file: &std::fs::File, n: u64, k: u64) -> std::io::Result<Option<Made>> {
        use std::os::unix::fs::FileExt;
        let (mut lo, mut hi) = (0u64, n);
        let mut rec = [0u8; CREATED_RECORD];
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            file.read_exact_at(&mut rec, mid * CREATED_RECORD as u64)?;
            let u64_at = |at: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&rec[at..at + 8]);
                u64::from_le_bytes(b)
            };
            match u64_at(0).cmp(&k) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    let id = DocId(u64_at(8));
                    return Ok(Some(if rec[16] == 0 {
                        Made::Doc(id)
                    } else {
                        Made::Skipped(id)
                    }));
                }
            }
        }
        Ok(None)
    }
}

/// The state of one batch: what its create-doc lines made, and the
/// documents being replaced.
struct Batch {
    created: CreatedLines,
    replacing: Vec<Replacing>,
    /// Where in `replacing` each document's first replacement is: the one
    /// its add-input lines go to.
    replacing_at: std::collections::HashMap<DocId, usize>,
}

impl Batch {
    fn new(dir: &std::path::Path) -> Batch {
        Batch {
            created: CreatedLines::new(dir),
            replacing: Vec::new(),
            replacing_at: std::collections::HashMap::new(),
        }
    }

    /// The document a reference names; `Err(id)` when it names a document
    /// whose create-doc was skipped.
    fn resolve(&self, store: &Store, r: &DocRef) -> Result<std::result::Result<DocId, DocId>> {
        match r {
            DocRef::Doc(d) => d.resolve(store).map(Ok),
            DocRef::Line(k) => match self.created.get(*k)? {
                Some(Made::Doc(id)) => Ok(Ok(id)),
                Some(Made::Skipped(id)) => Ok(Err(id)),
                None => Err(Error::invalid(format!(
                    "\"doc\": \"${k}\": line {k} is not a create-doc"
                ))),
            },
        }
    }

    /// Ends the batch's replacements (see [`Replacing::finish`]).
    fn finish(self, store: &mut Store) -> Result<()> {
        self.replacing.into_iter().try_for_each(|r| r.finish(store))
    }
}

/// Applies one checked operation.
fn apply_op(
    store: &mut Store,
    op: Op,
    line: u64,
    on_conflict: OnConflict,
    batch: &mut Batch,
) -> Result<Done> {
    let name = op.name();
    let done = |doc: DocId, node: Option<NodeId>, conflict: Option<&'static str>| Done {
        line,
        op: name,
        doc: doc.0,
        node: node.map(|n| n.0),
        conflict,
    };
    let doc = match op.doc_ref() {
        None => None,
        Some(r) => match batch.resolve(store, r)? {
            Ok(id) => Some(id),
            Err(skipped) => return Ok(done(skipped, None, Some("skipped"))),
        },
    };
    // Every op but create-doc has a document.
    let id = doc.unwrap_or(DocId(0));
    Ok(match op {
        Op::CreateDoc(new) => {
            let (id, made, conflict) = match store.create_doc_or(&new, on_conflict)? {
                Created::New(id) => (id, Made::Doc(id), None),
                Created::Skipped(id) => (id, Made::Skipped(id), Some("skipped")),
                Created::Replaced(r) => {
                    let id = r.id();
                    batch
                        .replacing_at
                        .entry(id)
                        .or_insert(batch.replacing.len());
                    batch.replacing.push(r);
                    (id, Made::Doc(id), Some("replaced"))
                }
            };
            batch.created.push(line, made)?;
            done(id, None, conflict)
        }
        Op::UpdateDoc(_, patch, meta_patch) => {
            match meta_patch {
                Some(p) => store.update_doc_merging_meta(id, &patch, &p)?,
                None => store.update_doc(id, &patch)?,
            }
            done(id, None, None)
        }
        Op::AddInput(_, input, meta, output) => {
            let replacing = batch.replacing_at.get(&id).copied();
            let node = match replacing.and_then(|i| batch.replacing.get_mut(i)) {
                Some(r) => r.add(store, &input, meta.as_ref(), output.as_ref())?,
                None => store.add_input_with_meta(id, &input, meta.as_ref(), output.as_ref())?,
            };
            done(id, Some(node), None)
        }
        Op::SetOutput(_, node, output) => {
            store.set_output(id, node, &output)?;
            done(id, Some(node), None)
        }
        Op::ClearOutput(_, node) => {
            store.clear_output(id, node)?;
            done(id, Some(node), None)
        }
        Op::UpdateInput(_, node, change) => {
            match change {
                MetaChange::Set(m) => store.set_node_meta(id, node, m.as_ref())?,
                MetaChange::Patch(p) => store.merge_node_meta(id, node, &p)?,
            }
            done(id, Some(node), None)
        }
        Op::DeleteInput(_, node) => {
            store.delete_input(id, node)?;
            done(id, Some(node), None)
        }
        Op::DeleteDoc(_) => {
            store.delete_doc(id)?;
            done(id, None, None)
        }
    })
}

/// Runs `apply`.
///
/// # Errors
/// Invalid input or an unknown document or node, naming the line; lock
/// timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: ApplyArgs) -> anyhow::Result<()> {
    if args.file.is_none() {
        input::absent_reads_stdin("FILE")?;
    }
    let name = args
        .file
        .as_ref()
        .filter(|p| p.as_os_str() != "-")
        .map_or_else(|| STDIN.to_owned(), |p| p.display().to_string());
    let source =
        Source::open(args.file.as_deref())?.read_ahead(&name, &g.dir, &mut |line, text| {
            parse_op(text, line).map(drop).map_err(|e| at_line(e, line))
        })?;
    let mut lines = source.lines(&name);
    let mut store = g.open()?;
    let mut current = 0u64;
    let on_conflict = OnConflict::from(args.on_conflict);
    // The report is printed only once the batch is durable, so its lines
    // wait here: in memory up to a few MiB, then in an unnamed file, never
    // one struct per operation in memory.
    let mut report = Spool::Memory(Vec::new());
    let mut text_of = Vec::new();
    let result = store.atomic(|store| {
        let mut count = 0u64;
        let mut batch = Batch::new(&g.dir);
        loop {
            current = 0;
            let Some((line, text)) = lines.next_line()? else {
                break;
            };
            current = line;
            let op = parse_op(text, line)?;
            let done = apply_op(store, op, line, on_conflict, &mut batch)?;
            // A failing temporary file is not this line's fault.
            current = 0;
            text_of.clear();
            output::write_json_line(&mut text_of, &done)
                .and_then(|()| report.write(&text_of, &g.dir))
                .map_err(|e| Error::io("spool", "<temporary file>", e))?;
            count += 1;
        }
        batch.finish(store)?;
        Ok(count)
    });
    let count = result.map_err(|e| at_line(e, current))?;
    drop(store);
    output::report_write(
        || format!("all {count} operations were applied"),
        |out| std::io::copy(&mut report.into_reader()?.0, out).map(drop),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str, line: u64) -> String {
        match parse_op(text, line) {
            Ok(_) => panic!("{text} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn ops_refuse_fields_that_do_not_apply() {
        assert_eq!(
            err(r#"{"op":"create-doc","doc":1}"#, 1),
            r#"field "doc" does not apply to create-doc"#
        );
        assert_eq!(
            err(r#"{"op":"delete-input","doc":1}"#, 1),
            r#"delete-input needs "node""#
        );
        assert!(err(r#"{"op":"nope"}"#, 1).starts_with("unknown op \"nope\""));
        assert!(
            err(r#"{"op":"delete-doc","doc":1,"extra":2}"#, 1)
                .starts_with(r#"unknown field "extra" in an operation"#)
        );
    }

    #[test]
    fn references_must_point_backwards() {
        assert!(matches!(
            parse_op(r#"{"op":"delete-doc","doc":"$1"}"#, 2),
            Ok(Op::DeleteDoc(DocRef::Line(1)))
        ));
        assert!(matches!(
            parse_op(r#"{"op":"delete-doc","doc":"key:$1"}"#, 2),
            Ok(Op::DeleteDoc(DocRef::Doc(DocArg::Key(k)))) if k == "$1"
        ));
        assert!(err(r#"{"op":"delete-doc","doc":"key:"}"#, 2).contains("1 to 1024 bytes"));
        assert!(err(r#"{"op":"delete-doc","doc":"$2"}"#, 2).contains("earlier line"));
        assert!(err(r#"{"op":"delete-doc","doc":"$0"}"#, 2).contains("earlier line"));
        assert!(err(r#"{"op":"delete-doc","doc":"x"}"#, 2).contains("must be a document id"));
        assert!(
            err(r#"{"op":"update-doc","doc":1,"meta":[1]}"#, 2)
                .contains("meta must be a JSON object")
        );
        assert!(err(r#"{"op":"delete-doc","doc":-1}"#, 2).contains("must be a document id"));
    }

    #[test]
    fn outputs_keep_null_apart_from_absent() {
        assert!(matches!(
            parse_op(r#"{"op":"add-input","doc":1,"input":1,"output":null}"#, 1),
            Ok(Op::AddInput(_, _, _, Some(j))) if j.as_str() == "null"
        ));
        assert!(matches!(
            parse_op(r#"{"op":"add-input","doc":1,"input":1}"#, 1),
            Ok(Op::AddInput(_, _, _, None))
        ));
        assert!(matches!(
            parse_op(r#"{"op":"set-output","doc":1,"node":1,"output":null}"#, 1),
            Ok(Op::SetOutput(_, _, j)) if j.as_str() == "null"
        ));
        assert_eq!(
            err(r#"{"op":"set-output","doc":1,"node":1}"#, 1),
            r#"set-output needs "output""#
        );
    }
}
