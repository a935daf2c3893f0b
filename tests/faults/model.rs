//! The model of the acknowledged history: documents, their chains, and the
//! id high-water marks, with the commands that change them.
//!
//! A command is acknowledged iff it exited 0; for create-doc, add-input,
//! load and apply the ids it printed are part of the acknowledgement. After a
//! fault the store must equal the model with the one in-flight command
//! either absent or fully applied; ids are allocated by the model exactly as
//! a correct store must (one past the high-water mark), so an id reused after
//! a crash or a compaction shows up as a difference.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::support::{Out, Runner, stratum_cmd};

/// One input node: its input and optional expected output, as compact JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub input: String,
    pub output: Option<String>,
}

/// One document.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Doc {
    pub category: Option<String>,
    pub version: Option<String>,
    pub body: String,
    pub inputs: BTreeMap<u64, Node>,
}

/// Live documents by id.
pub type Docs = BTreeMap<u64, Doc>;

/// A new document for create-doc (no inputs) or load.
#[derive(Clone, Debug)]
pub struct NewDoc {
    pub body: String,
    pub category: Option<String>,
    pub version: Option<String>,
    pub inputs: Vec<Node>,
}

/// Which document a command acts on: an id, or (inside `apply`) the
/// document created by an earlier line of the batch (1-based).
#[derive(Clone, Copy, Debug)]
pub enum Target {
    Id(u64),
    Line(usize),
}

/// A mutating command.
#[derive(Clone, Debug)]
pub enum Op {
    CreateDoc(NewDoc),
    UpdateDoc {
        doc: Target,
        body: Option<String>,
        category: Option<String>,
        version: Option<String>,
    },
    AddInput {
        doc: Target,
        input: String,
        output: Option<String>,
    },
    SetOutput {
        doc: Target,
        node: u64,
        output: String,
    },
    DeleteInput {
        doc: Target,
        node: u64,
    },
    DeleteDoc {
        doc: Target,
    },
    Load(Vec<NewDoc>),
    Apply(Vec<Op>),
    /// `compact --full`: the whole store rewritten.
    Compact,
    /// `compact`: only the segments worth merging, copied raw.
    CompactSelective,
}

pub fn new_doc(body: &str, category: Option<&str>, version: Option<&str>) -> NewDoc {
    NewDoc {
        body: body.to_owned(),
        category: category.map(str::to_owned),
        version: version.map(str::to_owned),
        inputs: Vec::new(),
    }
}

pub fn node(input: &str, output: Option<&str>) -> Node {
    Node {
        input: input.to_owned(),
        output: output.map(str::to_owned),
    }
}

fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
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

impl Op {
    /// Short name for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::CreateDoc(_) => "create-doc",
            Op::UpdateDoc { .. } => "update-doc",
            Op::AddInput { output: None, .. } => "add-input",
            Op::AddInput { .. } => "add-input --output",
            Op::SetOutput { .. } => "set-output",
            Op::DeleteInput { .. } => "delete-input",
            Op::DeleteDoc { .. } => "delete-doc",
            Op::Load(_) => "load",
            Op::Apply(_) => "apply",
            Op::Compact => "compact --full",
            Op::CompactSelective => "compact",
        }
    }

    /// The command line (after the global options) and its stdin.
    pub fn cli(&self) -> (Vec<String>, Option<String>) {
        let s = |x: &str| x.to_owned();
        match self {
            Op::CreateDoc(d) => {
                let mut a = vec![s("create-doc"), d.body.clone()];
                if let Some(c) = &d.category {
                    a.extend([s("--category"), c.clone()]);
                }
                if let Some(v) = &d.version {
                    a.extend([s("--version"), v.clone()]);
                }
                (a, None)
            }
            Op::UpdateDoc {
                doc,
                body,
                category,
                version,
            } => {
                let mut a = vec![s("update-doc"), plain_id(*doc)];
                if let Some(b) = body {
                    a.push(b.clone());
                }
                if let Some(c) = category {
                    a.extend([s("--category"), c.clone()]);
                }
                if let Some(v) = version {
                    a.extend([s("--version"), v.clone()]);
                }
                (a, None)
            }
            Op::AddInput { doc, input, output } => {
                let mut a = vec![s("add-input"), plain_id(*doc), input.clone()];
                if let Some(o) = output {
                    a.extend([s("--output"), o.clone()]);
                }
                (a, None)
            }
            Op::SetOutput { doc, node, output } => (
                vec![
                    s("set-output"),
                    plain_id(*doc),
                    node.to_string(),
                    output.clone(),
                ],
                None,
            ),
            Op::DeleteInput { doc, node } => (
                vec![s("delete-input"), plain_id(*doc), node.to_string()],
                None,
            ),
            Op::DeleteDoc { doc } => (vec![s("delete-doc"), plain_id(*doc)], None),
            Op::Load(docs) => {
                let mut text = String::new();
                for d in docs {
                    let _ = write!(
                        text,
                        "{{\"body\":{},\"category\":{},\"version\":{},\"inputs\":[",
                        js(&d.body),
                        d.category.as_deref().map_or("null".into(), js),
                        d.version.as_deref().map_or("null".into(), js)
                    );
                    for (i, n) in d.inputs.iter().enumerate() {
                        if i > 0 {
                            text.push(',');
                        }
                        let _ = write!(
                            text,
                            "{{\"input\":{},\"output\":{}}}",
                            n.input,
                            n.output.as_deref().unwrap_or("null")
                        );
                    }
                    text.push_str("]}\n");
                }
                (vec![s("load"), s("-")], Some(text))
            }
            Op::Apply(ops) => {
                let mut text = String::new();
                for op in ops {
                    text.push_str(&apply_line(op));
                    text.push('\n');
                }
                (vec![s("apply"), s("-")], Some(text))
            }
            Op::Compact => (vec![s("compact"), s("--full")], None),
            Op::CompactSelective => (vec![s("compact")], None),
        }
    }
}

fn apply_line(op: &Op) -> String {
    let mut o = String::new();
    let opt = |o: &mut String, k: &str, v: &Option<String>| {
        if let Some(v) = v {
            let _ = write!(o, ",\"{k}\":{}", js(v));
        }
    };
    match op {
        Op::CreateDoc(d) => {
            let _ = write!(o, "{{\"op\":\"create-doc\",\"body\":{}", js(&d.body));
            opt(&mut o, "category", &d.category);
            opt(&mut o, "version", &d.version);
        }
        Op::UpdateDoc {
            doc,
            body,
            category,
            version,
        } => {
            let _ = write!(o, "{{\"op\":\"update-doc\",\"doc\":{}", id_of(*doc));
            opt(&mut o, "body", body);
            opt(&mut o, "category", category);
            opt(&mut o, "version", version);
        }
        Op::AddInput { doc, input, output } => {
            let _ = write!(
                o,
                "{{\"op\":\"add-input\",\"doc\":{},\"input\":{input}",
                id_of(*doc)
            );
            if let Some(v) = output {
                let _ = write!(o, ",\"output\":{v}");
            }
        }
        Op::SetOutput { doc, node, output } => {
            let _ = write!(
                o,
                "{{\"op\":\"set-output\",\"doc\":{},\"node\":{node},\"output\":{output}",
                id_of(*doc)
            );
        }
        Op::DeleteInput { doc, node } => {
            let _ = write!(
                o,
                "{{\"op\":\"delete-input\",\"doc\":{},\"node\":{node}",
                id_of(*doc)
            );
        }
        Op::DeleteDoc { doc } => {
            let _ = write!(o, "{{\"op\":\"delete-doc\",\"doc\":{}", id_of(*doc));
        }
        Op::Load(_) | Op::Apply(_) | Op::Compact | Op::CompactSelective => {
            panic!("not an apply line: {op:?}")
        }
    }
    o.push('}');
    o
}

/// The model: live documents plus the id high-water marks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub docs: Docs,
    /// Highest document id ever assigned.
    pub doc_hwm: u64,
    /// Highest node id ever assigned, per document.
    pub node_hwm: BTreeMap<u64, u64>,
}

impl Model {
    /// The model after `op` (ids allocated one past the high-water marks),
    /// and the ids the command prints in order: create-doc its id,
    /// add-input its node id, load its document ids, apply one (doc, node)
    /// per line. `Err` when the command must fail on this state.
    pub fn after(&self, op: &Op) -> Result<(Model, Vec<u64>), String> {
        self.after_with(op, &mut |m: &Model, _: &NewDoc| Some(m.doc_hwm + 1))
    }

    /// [`Model::after`] with document ids chosen by `alloc` (given the
    /// model so far and the new document; `None`: the document is not
    /// there, so the command cannot have been applied).
    pub fn after_with(
        &self,
        op: &Op,
        alloc: &mut dyn FnMut(&Model, &NewDoc) -> Option<u64>,
    ) -> Result<(Model, Vec<u64>), String> {
        let mut m = self.clone();
        let mut printed = Vec::new();
        let mut created: BTreeMap<usize, u64> = BTreeMap::new();
        match op {
            Op::Apply(ops) => {
                for (i, o) in ops.iter().enumerate() {
                    let ids = m.step(o, &created, alloc)?;
                    if let Op::CreateDoc(_) = o {
                        created.insert(i + 1, ids[0]);
                    }
                    printed.extend(ids);
                }
            }
            Op::Load(docs) => {
                for d in docs {
                    let id = alloc(&m, d).ok_or("a loaded document is missing")?;
                    m.doc_hwm = m.doc_hwm.max(id);
                    let mut doc = Doc {
                        category: d.category.clone(),
                        version: d.version.clone(),
                        body: d.body.clone(),
                        inputs: BTreeMap::new(),
                    };
                    for (k, n) in d.inputs.iter().enumerate() {
                        doc.inputs.insert(k as u64 + 1, n.clone());
                    }
                    m.node_hwm.insert(id, d.inputs.len() as u64);
                    m.docs.insert(id, doc);
                    printed.push(id);
                }
            }
            other => printed = m.step(other, &created, alloc)?,
        }
        Ok((m, printed))
    }

    fn resolve(&self, t: Target, created: &BTreeMap<usize, u64>) -> Result<u64, String> {
        let id = match t {
            Target::Id(d) => d,
            Target::Line(k) => *created
                .get(&k)
                .ok_or(format!("${k} is not a create-doc line"))?,
        };
        if self.docs.contains_key(&id) {
            Ok(id)
        } else {
            Err(format!("document {id} does not exist"))
        }
    }

    fn step(
        &mut self,
        op: &Op,
        created: &BTreeMap<usize, u64>,
        alloc: &mut dyn FnMut(&Model, &NewDoc) -> Option<u64>,
    ) -> Result<Vec<u64>, String> {
        match op {
            Op::CreateDoc(d) => {
                let id = alloc(self, d).ok_or("the created document is missing")?;
                self.doc_hwm = self.doc_hwm.max(id);
                self.docs.insert(
                    id,
                    Doc {
                        category: d.category.clone(),
                        version: d.version.clone(),
                        body: d.body.clone(),
                        inputs: BTreeMap::new(),
                    },
                );
                self.node_hwm.insert(id, 0);
                Ok(vec![id])
            }
            Op::UpdateDoc {
                doc,
                body,
                category,
                version,
            } => {
                let id = self.resolve(*doc, created)?;
                let d = self.docs.get_mut(&id).ok_or("gone")?;
                if let Some(b) = body {
                    d.body = b.clone();
                }
                if let Some(c) = category {
                    d.category = Some(c.clone());
                }
                if let Some(v) = version {
                    d.version = Some(v.clone());
                }
                Ok(vec![id])
            }
            Op::AddInput { doc, input, output } => {
                let id = self.resolve(*doc, created)?;
                let hwm = self.node_hwm.entry(id).or_insert(0);
                *hwm += 1;
                let n = *hwm;
                self.docs.get_mut(&id).ok_or("gone")?.inputs.insert(
                    n,
                    Node {
                        input: input.clone(),
                        output: output.clone(),
                    },
                );
                Ok(vec![id, n])
            }
            Op::SetOutput { doc, node, output } => {
                let id = self.resolve(*doc, created)?;
                let n = self
                    .docs
                    .get_mut(&id)
                    .ok_or("gone")?
                    .inputs
                    .get_mut(node)
                    .ok_or(format!("node {id}/{node} does not exist"))?;
                n.output = Some(output.clone());
                Ok(vec![id, *node])
            }
            Op::DeleteInput { doc, node } => {
                let id = self.resolve(*doc, created)?;
                self.docs
                    .get_mut(&id)
                    .ok_or("gone")?
                    .inputs
                    .remove(node)
                    .ok_or(format!("node {id}/{node} does not exist"))?;
                Ok(vec![id, *node])
            }
            Op::DeleteDoc { doc } => {
                let id = self.resolve(*doc, created)?;
                self.docs.remove(&id);
                Ok(vec![id])
            }
            Op::Compact | Op::CompactSelective => Ok(Vec::new()),
            Op::Load(_) | Op::Apply(_) => Err("nested batch".into()),
        }
    }

    /// The ids a successful run printed, in the order [`Model::after`]
    /// lists them (only the ones a command prints).
    pub fn printed_ids(op: &Op, stdout: &str) -> Vec<u64> {
        match op {
            Op::CreateDoc(_) | Op::Load(_) => stdout
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect(),
            Op::AddInput { .. } => stdout
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect(),
            Op::Apply(_) => {
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
    pub fn expected_printed(op: &Op, ids: &[u64]) -> Vec<u64> {
        match op {
            Op::CreateDoc(_) | Op::Load(_) | Op::Apply(_) => ids.to_vec(),
            Op::AddInput { .. } => ids.get(1).copied().into_iter().collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct DumpDoc<'a> {
    id: u64,
    category: Option<String>,
    version: Option<String>,
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
    output: &'a RawValue,
}

/// Parses one `get`/`dump` line.
pub fn parse_doc(line: &str) -> Result<(u64, Doc), String> {
    let d: DumpDoc<'_> =
        serde_json::from_str(line).map_err(|e| format!("unparsable line {line:?}: {e}"))?;
    if d.body_base64.is_some() {
        return Err(format!("unexpected binary body in {line:?}"));
    }
    let mut inputs = BTreeMap::new();
    for n in d.inputs {
        let out = n.output.get();
        inputs.insert(
            n.node,
            Node {
                input: n.input.get().to_owned(),
                output: (out != "null").then(|| out.to_owned()),
            },
        );
    }
    Ok((
        d.id,
        Doc {
            category: d.category,
            version: d.version,
            body: d.body.unwrap_or_default(),
            inputs,
        },
    ))
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

/// Runs `op` against `dir` and applies it to the model, failing the test
/// if it is not acknowledged with exactly the ids the model allocates.
pub fn exec(run: &Runner, dir: &Path, seg: &str, model: &mut Model, op: &Op) -> Out {
    let out = run.run(op_cmd(dir, seg, op));
    assert!(out.ok(), "setup command failed: {}", out.describe());
    let (next, ids) = model
        .after(op)
        .unwrap_or_else(|e| panic!("model refuses {op:?}: {e}"));
    let printed = Model::printed_ids(op, &out.out());
    assert_eq!(
        printed,
        Model::expected_printed(op, &ids),
        "ids printed by {}",
        out.describe()
    );
    *model = next;
    out
}

/// The command for `op` with a segment size.
pub fn op_cmd(dir: &Path, seg: &str, op: &Op) -> crate::support::Cmd {
    let (args, stdin) = op.cli();
    let mut a: Vec<&str> = vec!["--segment-size", seg];
    a.extend(args.iter().map(String::as_str));
    let c = stratum_cmd(dir, &a);
    match stdin {
        Some(s) => c.stdin(s),
        None => c,
    }
}
