//! `stratum apply`: a batch of write operations from JSON Lines, applied
//! as one atomic write.

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::cli::input::{self, STDIN, Source, at_line};
use crate::cli::{GlobalArgs, output};
use stratum::shape::{self, Shape, Want};
use stratum::{DocId, DocPatch, Error, Json, Mode, NewDoc, NodeId, Result, Store};

/// Apply a batch of write operations from JSON Lines, all or nothing.
///
/// One operation per line, named by "op":
///   {"op":"create-doc", "body":"…" or "body_base64":"…", "category":…, "version":…}
///   {"op":"update-doc", "doc":D, and any of "body"/"body_base64"/"category"/"version"}
///   {"op":"add-input", "doc":D, "input":V, "output":V (optional)}
///   {"op":"set-output", "doc":D, "node":N, "output":V (not null)}
///   {"op":"delete-input", "doc":D, "node":N}
///   {"op":"delete-doc", "doc":D}
///
/// "doc" may be "$K": the id created by line K (1-based) of this batch,
/// which must be an earlier create-doc line. Blank lines are skipped.
///
/// Prints one JSON line per operation: {"line":K,"op":"…","doc":D}, with
/// "node":N for add-input, set-output and delete-input. When any line fails,
/// nothing is applied and the error names the line (exit 3 for an unknown
/// document or node, 4 for bad input).
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Apply a batch of write operations from JSON Lines, all or nothing",
    after_help = "\
Examples:
  stratum apply ops.jsonl
  printf '%s\\n' \\
    '{\"op\":\"create-doc\",\"body\":\"Sum two numbers\",\"category\":\"easy\"}' \\
    '{\"op\":\"add-input\",\"doc\":\"$1\",\"input\":[1,2],\"output\":3}' \\
    | stratum apply -"
)]
pub struct ApplyArgs {
    /// The JSON Lines file; `-` or absent reads stdin (absent: not from a
    /// terminal).
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub json: crate::cli::JsonAlready,
}

/// One line as written, before its fields are checked against its op.
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
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    version: Option<String>,
    /// `Some` whenever the field is given, `null` included: an input can be
    /// the JSON value `null`, as with `add-input DOC null` and `load`.
    #[serde(default, borrow, deserialize_with = "given")]
    input: Option<&'a RawValue>,
    /// `Some(None)` for an explicit `null`, `None` when absent.
    #[serde(default, borrow, deserialize_with = "present")]
    output: Option<Option<&'a RawValue>>,
}

fn given<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    Deserialize::deserialize(d).map(Some)
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<&'de RawValue>>, D::Error> {
    let v: &'de RawValue = Deserialize::deserialize(d)?;
    Ok(Some((v.get() != "null").then_some(v)))
}

/// A checked operation, its document still possibly a `$K` reference.
enum Op {
    CreateDoc(NewDoc),
    UpdateDoc(DocRef, DocPatch),
    AddInput(DocRef, Json, Option<Json>),
    SetOutput(DocRef, NodeId, Json),
    DeleteInput(DocRef, NodeId),
    DeleteDoc(DocRef),
}

enum DocRef {
    Id(DocId),
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
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::CreateDoc(_) => "create-doc",
            Op::UpdateDoc(..) => "update-doc",
            Op::AddInput(..) => "add-input",
            Op::SetOutput(..) => "set-output",
            Op::DeleteInput(..) => "delete-input",
            Op::DeleteDoc(_) => "delete-doc",
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
        ("category", Want::StrOrNull, false),
        ("version", Want::StrOrNull, false),
        ("input", Want::Any, false),
        ("output", Want::Any, false),
    ],
};

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
        "create-doc" => &["body", "body_base64", "category", "version"],
        "update-doc" => &["doc", "body", "body_base64", "category", "version"],
        "add-input" => &["doc", "input", "output"],
        "set-output" => &["doc", "node", "output"],
        "delete-input" => &["doc", "node"],
        "delete-doc" => &["doc"],
        other => {
            return Err(Error::invalid(format!(
                "unknown op {other:?} (expected create-doc, update-doc, add-input, set-output, delete-input or delete-doc)"
            )));
        }
    };
    let given = [
        ("doc", raw.doc.is_some()),
        ("node", raw.node.is_some()),
        ("body", raw.body.is_some()),
        ("body_base64", raw.body_base64.is_some()),
        ("category", raw.category.is_some()),
        ("version", raw.version.is_some()),
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
        (None, Some(b)) => Some(stratum::json::base64_decode(b)?),
        (None, None) => None,
    };
    Ok(match op {
        "create-doc" => Op::CreateDoc(NewDoc {
            category: raw.category,
            version: raw.version,
            body: body.unwrap_or_default(),
            ..NewDoc::default()
        }),
        "update-doc" => {
            let patch = DocPatch {
                category: raw.category.clone().map(Some),
                version: raw.version.clone().map(Some),
                body,
                ..DocPatch::default()
            };
            if patch.is_empty() {
                return Err(Error::invalid(
                    "update-doc needs at least one of body, body_base64, category, version",
                ));
            }
            Op::UpdateDoc(doc()?, patch)
        }
        "add-input" => {
            let input = raw.input.ok_or_else(|| need("input"))?;
            let output = raw
                .output
                .flatten()
                .map(|o| input::raw_json(o, "output"))
                .transpose()?;
            Op::AddInput(doc()?, input::raw_json(input, "input")?, output)
        }
        "set-output" => {
            let output = match raw.output {
                Some(Some(o)) => input::raw_json(o, "output")?,
                Some(None) => input::settable_output(input::parse_json("null", "output")?)?,
                None => return Err(need("output")),
            };
            Op::SetOutput(doc()?, node()?, output)
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
            Ok(DocRef::Id(DocId(n)))
        };
    }
    let s: Option<String> = serde_json::from_str(text).ok();
    let k = s
        .as_deref()
        .and_then(|s| s.strip_prefix('$'))
        .and_then(|k| k.parse::<u64>().ok())
        .ok_or_else(|| {
            Error::invalid(format!(
                "\"doc\" must be a document id or \"$K\" (the document created by line K), not {text}"
            ))
        })?;
    if k == 0 || k >= line {
        return Err(Error::invalid(format!(
            "\"doc\": \"${k}\" must name an earlier line of this batch"
        )));
    }
    Ok(DocRef::Line(k))
}

/// Applies one checked operation; `created` maps batch lines to the ids
/// their create-doc made.
fn apply_op(store: &mut Store, op: Op, line: u64, created: &mut Vec<(u64, DocId)>) -> Result<Done> {
    let name = op.name();
    let resolve = |r: DocRef| -> Result<DocId> {
        match r {
            DocRef::Id(id) => Ok(id),
            DocRef::Line(k) => created
                .binary_search_by_key(&k, |&(l, _)| l)
                .ok()
                .and_then(|i| created.get(i))
                .map(|&(_, id)| id)
                .ok_or_else(|| {
                    Error::invalid(format!("\"doc\": \"${k}\": line {k} is not a create-doc"))
                }),
        }
    };
    let (doc, node) = match op {
        Op::CreateDoc(new) => {
            let id = store.create_doc(&new)?;
            created.push((line, id));
            (id, None)
        }
        Op::UpdateDoc(r, patch) => {
            let id = resolve(r)?;
            store.update_doc(id, &patch)?;
            (id, None)
        }
        Op::AddInput(r, input, output) => {
            let id = resolve(r)?;
            let node = store.add_input(id, &input, output.as_ref())?;
            (id, Some(node))
        }
        Op::SetOutput(r, node, output) => {
            let id = resolve(r)?;
            store.set_output(id, node, &output)?;
            (id, Some(node))
        }
        Op::DeleteInput(r, node) => {
            let id = resolve(r)?;
            store.delete_input(id, node)?;
            (id, Some(node))
        }
        Op::DeleteDoc(r) => {
            let id = resolve(r)?;
            store.delete_doc(id)?;
            (id, None)
        }
    };
    Ok(Done {
        line,
        op: name,
        doc: doc.0,
        node: node.map(|n| n.0),
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
    let mut store = g.open(Mode::Write)?;
    let mut current = 0u64;
    let result = store.atomic(|store| {
        let mut done = Vec::new();
        let mut created = Vec::new();
        loop {
            current = 0;
            let Some((line, text)) = lines.next_line()? else {
                break;
            };
            current = line;
            let op = parse_op(text, line)?;
            done.push(apply_op(store, op, line, &mut created)?);
        }
        Ok(done)
    });
    let done = result.map_err(|e| at_line(e, current))?;
    drop(store);
    output::report_write(
        || format!("all {} operations were applied", done.len()),
        |out| {
            done.iter()
                .try_for_each(|d| output::write_json_line(&mut *out, d))
        },
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
        assert!(err(r#"{"op":"delete-doc","doc":"$2"}"#, 2).contains("earlier line"));
        assert!(err(r#"{"op":"delete-doc","doc":"$0"}"#, 2).contains("earlier line"));
        assert!(err(r#"{"op":"delete-doc","doc":"x"}"#, 2).contains("must be a document id"));
        assert!(err(r#"{"op":"delete-doc","doc":-1}"#, 2).contains("must be a document id"));
    }

    #[test]
    fn outputs_keep_null_apart_from_absent() {
        assert!(matches!(
            parse_op(r#"{"op":"add-input","doc":1,"input":1,"output":null}"#, 1),
            Ok(Op::AddInput(_, _, None))
        ));
        assert!(
            err(r#"{"op":"set-output","doc":1,"node":1,"output":null}"#, 1)
                .contains("cannot be null")
        );
        assert_eq!(
            err(r#"{"op":"set-output","doc":1,"node":1}"#, 1),
            r#"set-output needs "output""#
        );
    }
}
