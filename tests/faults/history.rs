//! The fault harness's layer on the shared reference model
//! (`tests/support/model.rs`): the commands it runs through the binary, the
//! ids a correct store must hand out, and what was acknowledged.
//!
//! A command is acknowledged iff it exited 0; for create-doc, add-input,
//! load and apply the ids it printed are part of the acknowledgement. After a
//! fault the store must equal the model with the one in-flight command
//! either absent or fully applied; ids are allocated here exactly as a
//! correct store must (one past the high-water mark), so an id reused after
//! a crash or a compaction shows up as a difference.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;
use stratum::{DocPatch, Json, NewDoc};

pub use crate::model::{Docs, MDoc as Doc, Model, Op};
use crate::support::{Out, Runner, stratum_cmd};

/// Which document a command acts on: an id, or (inside `apply`) the
/// document created by an earlier line of the batch (1-based).
#[derive(Clone, Copy, Debug)]
pub enum Target {
    Id(u64),
    Line(usize),
}

/// One write of the shared model, as a command names its document.
pub type Write = Op<Target>;

/// An input and its expected output.
pub type Node = (Json, Option<Json>);

/// A document as `load` reads it: the document and its chain.
#[derive(Clone, Debug)]
pub struct LoadDoc {
    pub doc: NewDoc,
    pub inputs: Vec<Node>,
}

/// A mutating command of the binary.
#[derive(Clone, Debug)]
pub enum Command {
    /// One write: create-doc, update-doc, add-input, set-output,
    /// delete-input, delete-doc.
    Write(Write),
    Load(Vec<LoadDoc>),
    Apply(Vec<Write>),
    /// `compact --full`: the whole store rewritten.
    Compact,
    /// `compact`: only the segments worth merging, copied raw.
    CompactSelective,
}

/// A JSON value the test writes.
///
/// # Panics
/// When `text` is not JSON.
pub fn j(text: &str) -> Json {
    Json::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

pub fn new_doc(body: &str, category: Option<&str>, version: Option<&str>) -> NewDoc {
    NewDoc {
        body: body.as_bytes().to_vec(),
        category: category.map(str::to_owned),
        version: version.map(str::to_owned),
        ..NewDoc::default()
    }
}

/// [`new_doc`] from owned strings.
pub fn text_doc(body: String, category: Option<String>, version: Option<String>) -> NewDoc {
    NewDoc {
        body: body.into_bytes(),
        category,
        version,
        ..NewDoc::default()
    }
}

pub fn load_doc(
    body: String,
    category: Option<String>,
    version: Option<String>,
    inputs: Vec<Node>,
) -> LoadDoc {
    LoadDoc {
        doc: text_doc(body, category, version),
        inputs,
    }
}

pub fn node(input: &str, output: Option<&str>) -> Node {
    (j(input), output.map(j))
}

pub fn create_doc(d: NewDoc) -> Command {
    Command::Write(Op::Create(d))
}

pub fn update_doc(
    doc: Target,
    body: Option<String>,
    category: Option<String>,
    version: Option<String>,
) -> Command {
    Command::Write(Op::Update(
        doc,
        DocPatch {
            body: body.map(String::into_bytes),
            category: category.map(Some),
            version: version.map(Some),
            ..DocPatch::default()
        },
    ))
}

pub fn add_input(doc: Target, input: String, output: Option<String>) -> Command {
    Command::Write(Op::AddInput(doc, j(&input), output.as_deref().map(j)))
}

pub fn set_output(doc: Target, node: u64, output: String) -> Command {
    Command::Write(Op::SetOutput(doc, node, j(&output)))
}

pub fn delete_input(doc: Target, node: u64) -> Command {
    Command::Write(Op::DeleteInput(doc, node))
}

pub fn delete_doc(doc: Target) -> Command {
    Command::Write(Op::DeleteDoc(doc))
}

/// An `apply` batch of these writes.
///
/// # Panics
/// When one of `lines` is not a single write.
pub fn apply(lines: Vec<Command>) -> Command {
    Command::Apply(
        lines
            .into_iter()
            .map(|c| match c {
                Command::Write(w) => w,
                other => panic!("not an apply line: {other:?}"),
            })
            .collect(),
    )
}

fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A body as a command-line argument or a JSON string: the harness writes
/// text bodies only.
fn text(body: &[u8]) -> &str {
    std::str::from_utf8(body).expect("the fault harness writes text bodies")
}

fn id_of(t: Target) -> String {
    match t {
        Target::Id(d) => d.to_string(),
        Target::Line(k) => format!("\"${k}\""),
    }
}

fn plain_id(t: Target) -> String {
    match t {
        Target::Id(d) => d.to_string(),
        Target::Line(_) => panic!("a $K reference outside apply"),
    }
}

impl Command {
    /// Short name for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::Write(Op::Create(_)) => "create-doc",
            Command::Write(Op::Update(..)) => "update-doc",
            Command::Write(Op::AddInput(_, _, None)) => "add-input",
            Command::Write(Op::AddInput(..)) => "add-input --output",
            Command::Write(Op::SetOutput(..)) => "set-output",
            Command::Write(Op::ClearOutput(..)) => "set-output null",
            Command::Write(Op::SetNodeMeta(..)) => "update-input",
            Command::Write(Op::DeleteInput(..)) => "delete-input",
            Command::Write(Op::DeleteDoc(_)) => "delete-doc",
            Command::Load(_) => "load",
            Command::Apply(_) => "apply",
            Command::Compact => "compact --full",
            Command::CompactSelective => "compact",
        }
    }

    /// The command line (after the global options) and its stdin.
    pub fn cli(&self) -> (Vec<String>, Option<String>) {
        let s = |x: &str| x.to_owned();
        let opt = |a: &mut Vec<String>, flag: &str, v: &Option<String>| {
            if let Some(v) = v {
                a.extend([s(flag), v.clone()]);
            }
        };
        match self {
            Command::Write(Op::Create(d)) => {
                let mut a = vec![s("create-doc"), s(text(&d.body))];
                opt(&mut a, "--category", &d.category);
                opt(&mut a, "--version", &d.version);
                opt(&mut a, "--key", &d.key);
                opt(&mut a, "--meta", &d.meta.as_ref().map(|m| s(m.as_str())));
                (a, None)
            }
            Command::Write(Op::Update(doc, p)) => {
                let mut a = vec![s("update-doc"), plain_id(*doc)];
                if let Some(b) = &p.body {
                    a.push(s(text(b)));
                }
                assert!(
                    p.key.is_none() && p.meta.is_none(),
                    "the fault harness sets no key or meta: {p:?}"
                );
                let set = |v: &Option<Option<String>>| {
                    v.as_ref()
                        .map(|v| v.clone().expect("the harness clears no field"))
                };
                opt(&mut a, "--category", &set(&p.category));
                opt(&mut a, "--version", &set(&p.version));
                (a, None)
            }
            Command::Write(Op::AddInput(doc, input, output)) => {
                let mut a = vec![s("add-input"), plain_id(*doc), s(input.as_str())];
                opt(&mut a, "--output", &output.as_ref().map(|o| s(o.as_str())));
                (a, None)
            }
            Command::Write(Op::SetOutput(doc, node, output)) => (
                vec![
                    s("set-output"),
                    plain_id(*doc),
                    node.to_string(),
                    s(output.as_str()),
                ],
                None,
            ),
            Command::Write(op @ (Op::ClearOutput(..) | Op::SetNodeMeta(..))) => {
                panic!("the fault harness does not drive {op:?}")
            }
            Command::Write(Op::DeleteInput(doc, node)) => (
                vec![s("delete-input"), plain_id(*doc), node.to_string()],
                None,
            ),
            Command::Write(Op::DeleteDoc(doc)) => (vec![s("delete-doc"), plain_id(*doc)], None),
            Command::Load(docs) => {
                let mut text_in = String::new();
                for d in docs {
                    if let Some(k) = &d.doc.key {
                        let _ = write!(text_in, "{{\"key\":{},", js(k));
                    } else {
                        text_in.push('{');
                    }
                    let _ = write!(
                        text_in,
                        "\"body\":{},\"category\":{},\"version\":{},\"inputs\":[",
                        js(text(&d.doc.body)),
                        d.doc.category.as_deref().map_or("null".into(), js),
                        d.doc.version.as_deref().map_or("null".into(), js)
                    );
                    for (i, (input, output)) in d.inputs.iter().enumerate() {
                        if i > 0 {
                            text_in.push(',');
                        }
                        let _ = write!(
                            text_in,
                            "{{\"input\":{},\"output\":{}}}",
                            input.as_str(),
                            output.as_ref().map_or("null", Json::as_str)
                        );
                    }
                    text_in.push_str("]}\n");
                }
                (vec![s("load"), s("-")], Some(text_in))
            }
            Command::Apply(ops) => {
                let mut text_in = String::new();
                for op in ops {
                    text_in.push_str(&apply_line(op));
                    text_in.push('\n');
                }
                (vec![s("apply"), s("-")], Some(text_in))
            }
            Command::Compact => (vec![s("compact"), s("--full")], None),
            Command::CompactSelective => (vec![s("compact")], None),
        }
    }
}

fn apply_line(op: &Write) -> String {
    let mut o = String::new();
    let opt = |o: &mut String, k: &str, v: Option<&str>| {
        if let Some(v) = v {
            let _ = write!(o, ",\"{k}\":{}", js(v));
        }
    };
    let set = |v: &Option<Option<String>>| -> Option<String> {
        v.as_ref()
            .map(|v| v.clone().expect("the harness clears no field"))
    };
    match op {
        Op::Create(d) => {
            let _ = write!(o, "{{\"op\":\"create-doc\",\"body\":{}", js(text(&d.body)));
            opt(&mut o, "category", d.category.as_deref());
            opt(&mut o, "version", d.version.as_deref());
        }
        Op::Update(doc, p) => {
            let _ = write!(o, "{{\"op\":\"update-doc\",\"doc\":{}", id_of(*doc));
            opt(&mut o, "body", p.body.as_deref().map(text));
            opt(&mut o, "category", set(&p.category).as_deref());
            opt(&mut o, "version", set(&p.version).as_deref());
        }
        Op::AddInput(doc, input, output) => {
            let _ = write!(
                o,
                "{{\"op\":\"add-input\",\"doc\":{},\"input\":{}",
                id_of(*doc),
                input.as_str()
            );
            if let Some(v) = output {
                let _ = write!(o, ",\"output\":{}", v.as_str());
            }
        }
        Op::SetOutput(doc, node, output) => {
            let _ = write!(
                o,
                "{{\"op\":\"set-output\",\"doc\":{},\"node\":{node},\"output\":{}",
                id_of(*doc),
                output.as_str()
            );
        }
        Op::DeleteInput(doc, node) => {
            let _ = write!(
                o,
                "{{\"op\":\"delete-input\",\"doc\":{},\"node\":{node}",
                id_of(*doc)
            );
        }
        Op::DeleteDoc(doc) => {
            let _ = write!(o, "{{\"op\":\"delete-doc\",\"doc\":{}", id_of(*doc));
        }
        Op::ClearOutput(..) | Op::SetNodeMeta(..) => {
            panic!("the fault harness does not drive {op:?}")
        }
    }
    o.push('}');
    o
}

impl Model {
    /// The model after `cmd` (ids allocated one past the high-water marks),
    /// and the ids the command prints in order: create-doc its id,
    /// add-input its node id, load its document ids, apply one (doc, node)
    /// per line. `Err` when the command must fail on this state.
    pub fn after(&self, cmd: &Command) -> Result<(Model, Vec<u64>), String> {
        self.after_with(cmd, &mut |m: &Model, _: &NewDoc| Some(m.doc_hwm + 1))
    }

    /// [`Model::after`] with document ids chosen by `alloc` (given the
    /// model so far and the new document; `None`: the document is not
    /// there, so the command cannot have been applied).
    pub fn after_with(
        &self,
        cmd: &Command,
        alloc: &mut dyn FnMut(&Model, &NewDoc) -> Option<u64>,
    ) -> Result<(Model, Vec<u64>), String> {
        let mut m = self.clone();
        let mut printed = Vec::new();
        let mut created: BTreeMap<usize, u64> = BTreeMap::new();
        match cmd {
            Command::Write(w) => printed = m.step(w, &created, alloc)?,
            Command::Apply(ops) => {
                for (i, o) in ops.iter().enumerate() {
                    let ids = m.step(o, &created, alloc)?;
                    if let Op::Create(_) = o {
                        created.insert(i + 1, ids[0]);
                    }
                    printed.extend(ids);
                }
            }
            Command::Load(docs) => {
                for d in docs {
                    let id = alloc(&m, &d.doc).ok_or("a loaded document is missing")?;
                    m.apply(&Op::Create(d.doc.clone()), id);
                    for (k, (input, output)) in d.inputs.iter().enumerate() {
                        m.apply(
                            &Op::AddInput(id, input.clone(), output.clone()),
                            k as u64 + 1,
                        );
                    }
                    printed.push(id);
                }
            }
            Command::Compact | Command::CompactSelective => {}
        }
        Ok((m, printed))
    }

    /// Applies one write with the ids a correct store hands out; `Err` when
    /// it must be refused. Returns the ids an `apply` line prints.
    fn step(
        &mut self,
        op: &Write,
        created: &BTreeMap<usize, u64>,
        alloc: &mut dyn FnMut(&Model, &NewDoc) -> Option<u64>,
    ) -> Result<Vec<u64>, String> {
        let mut line = None;
        let op = op.map_doc(|t| match t {
            Target::Id(d) => d,
            Target::Line(k) => {
                line = Some(k);
                created.get(&k).copied().unwrap_or(0)
            }
        });
        if let Some(k) = line
            && !created.contains_key(&k)
        {
            return Err(format!("${k} is not a create-doc line"));
        }
        if let Some(why) = self.refusal(&op) {
            return Err(why);
        }
        let new_id = match &op {
            Op::Create(d) => alloc(self, d).ok_or("the created document is missing")?,
            Op::AddInput(d, ..) => self.node_hwm(*d) + 1,
            _ => 0,
        };
        self.apply(&op, new_id);
        Ok(match op {
            Op::Create(_) => vec![new_id],
            Op::AddInput(d, ..) => vec![d, new_id],
            Op::Update(d, _) | Op::DeleteDoc(d) => vec![d],
            Op::SetOutput(d, n, _)
            | Op::ClearOutput(d, n)
            | Op::SetNodeMeta(d, n, _)
            | Op::DeleteInput(d, n) => vec![d, n],
        })
    }

    /// The ids a successful run printed, in the order [`Model::after`]
    /// lists them (only the ones a command prints).
    pub fn printed_ids(cmd: &Command, stdout: &str) -> Vec<u64> {
        match cmd {
            Command::Write(Op::Create(_) | Op::AddInput(..)) | Command::Load(_) => stdout
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect(),
            Command::Apply(_) => {
                let mut v = Vec::new();
                for l in stdout.lines() {
                    #[derive(Deserialize)]
                    struct Line {
                        doc: u64,
                        node: Option<u64>,
                    }
                    if let Ok(x) = serde_json::from_str::<Line>(l) {
                        v.push(x.doc);
                        if let Some(n) = x.node {
                            v.push(n);
                        }
                    }
                }
                v
            }
            _ => Vec::new(),
        }
    }

    /// The subset of [`Model::after`]'s ids the command prints.
    pub fn expected_printed(cmd: &Command, ids: &[u64]) -> Vec<u64> {
        match cmd {
            Command::Write(Op::Create(_)) | Command::Load(_) | Command::Apply(_) => ids.to_vec(),
            Command::Write(Op::AddInput(..)) => ids.get(1).copied().into_iter().collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct DumpDoc<'a> {
    id: u64,
    key: Option<String>,
    category: Option<String>,
    version: Option<String>,
    #[serde(borrow)]
    meta: Option<&'a RawValue>,
    body: Option<String>,
    body_base64: Option<String>,
    #[serde(borrow)]
    inputs: Vec<DumpNode<'a>>,
}

#[derive(Deserialize)]
struct DumpNode<'a> {
    node: u64,
    #[serde(borrow)]
    input: &'a RawValue,
    #[serde(borrow)]
    meta: Option<&'a RawValue>,
    #[serde(borrow)]
    output: &'a RawValue,
    #[serde(default)]
    has_output: bool,
}

/// Parses one `get`/`dump` line.
pub fn parse_doc(line: &str) -> Result<(u64, Doc), String> {
    let d: DumpDoc<'_> =
        serde_json::from_str(line).map_err(|e| format!("unparsable line {line:?}: {e}"))?;
    if d.body_base64.is_some() {
        return Err(format!("unexpected binary body in {line:?}"));
    }
    let value =
        |raw: &RawValue| Json::parse(raw.get()).map_err(|e| format!("bad JSON in {line:?}: {e}"));
    let mut doc = Doc {
        key: d.key,
        category: d.category,
        version: d.version,
        meta: d.meta.map(value).transpose()?,
        body: d.body.unwrap_or_default().into_bytes(),
        ..Doc::default()
    };
    for n in d.inputs {
        // A JSON null output is no output unless `has_output` says it is
        // one (a real null).
        let out = (n.has_output || n.output.get() != "null")
            .then(|| value(n.output))
            .transpose()?;
        doc.nodes.insert(n.node, (value(n.input)?, out));
        if let Some(m) = n.meta {
            doc.node_meta.insert(n.node, value(m)?);
        }
    }
    Ok((d.id, doc))
}

/// Parses `dump` output.
pub fn parse_dump(text: &str) -> Result<Docs, String> {
    let mut m = BTreeMap::new();
    let mut last = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (id, d) = parse_doc(line)?;
        if id <= last {
            return Err(format!("dump is not in increasing id order at {id}"));
        }
        last = id;
        m.insert(id, d);
    }
    Ok(m)
}

/// A short description of how two states differ.
pub fn diff(want: &Docs, got: &Docs) -> String {
    let mut s = String::new();
    for (id, d) in want {
        match got.get(id) {
            None => {
                let _ = write!(s, "doc {id} missing; ");
            }
            Some(g) if g != d => {
                let _ = write!(s, "doc {id} differs: want {d:?}, got {g:?}; ");
            }
            _ => {}
        }
    }
    for id in got.keys() {
        if !want.contains_key(id) {
            let _ = write!(s, "doc {id} unexpected; ");
        }
    }
    if s.is_empty() {
        s.push_str("identical");
    }
    s.chars().take(1500).collect()
}

/// Reads the store's state with `dump`.
pub fn dump(run: &Runner, dir: &Path) -> Result<Docs, String> {
    let out = run.stratum(dir, &["dump"]);
    if !out.ok() {
        return Err(format!("dump failed: {}", out.describe()));
    }
    parse_dump(&out.out())
}

/// Runs `cmd` against `dir` and applies it to the model, failing the test
/// if it is not acknowledged with exactly the ids the model allocates.
pub fn exec(run: &Runner, dir: &Path, seg: &str, model: &mut Model, cmd: &Command) -> Out {
    let out = run.run(op_cmd(dir, seg, cmd));
    assert!(out.ok(), "setup command failed: {}", out.describe());
    let (next, ids) = model
        .after(cmd)
        .unwrap_or_else(|e| panic!("model refuses {cmd:?}: {e}"));
    let printed = Model::printed_ids(cmd, &out.out());
    assert_eq!(
        printed,
        Model::expected_printed(cmd, &ids),
        "ids printed by {}",
        out.describe()
    );
    *model = next;
    out
}

/// The process for `cmd` with a segment size.
pub fn op_cmd(dir: &Path, seg: &str, cmd: &Command) -> crate::support::Cmd {
    let (args, stdin) = cmd.cli();
    let mut a: Vec<&str> = vec!["--segment-size", seg];
    a.extend(args.iter().map(String::as_str));
    let c = stratum_cmd(dir, &a);
    match stdin {
        Some(s) => c.stdin(s),
        None => c,
    }
}
