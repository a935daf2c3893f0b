//! `stratum diff`: what changed between two stores, or between a store and a
//! JSON Lines file in the `get` shape (a `dump`), document by document and
//! node by node.
//!
//! Documents are paired by key where both sides have that key, else by id.
//! A first pass reads only the ids and keys of both sides (`list` for a
//! store, the `id` and `key` members for a file), so the pairing is known
//! before any document is compared. Then the old side is streamed in id
//! order and each document is compared with its partner, read from the
//! store at --dir by id (a point lookup). Memory holds the ids and keys of
//! both sides and one document of each, whatever the size of the
//! documents. An old store side is read on its own thread (the library's
//! `dump` calls back; a channel of a few documents turns that into a
//! stream); a file on stdin is copied to an unnamed temporary file so that
//! it can be read twice.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use clap::Args;

use crate::cli::input::{Lines, STDIN, Source};
use crate::cli::{GlobalArgs, output};
use stratum::{DocId, Document, Error, Node, Options, ReadOnlyStore, Store};

/// Compare the store with another store or a JSON Lines file.
///
/// OTHER is a store directory, a file of JSON Lines in the `get` shape
/// (what `dump` prints, ids included), or - for standard input. OTHER is
/// the old side and the store at --dir the new one, as `git diff COMMIT`
/// compares the work tree with COMMIT. Documents are matched by key where
/// both sides have the key, else by id (a document whose key the other side
/// does not have can still match by id, and then shows a key change);
/// nodes by node id within a document. "doc" is the id on the new side (on
/// the old side for "removed"), and a document with a key also has "key",
/// so a regenerated store whose ids moved still diffs by name.
///
/// Each difference is one JSON line (--json, and whenever stdout is not a
/// terminal; a table on a terminal):
///   {"doc": ID[, "key": K], "change": "added"|"removed"}
///   {"doc": ID, "change": "changed", "field": "key"|"category"|"version",
///    "old": S|null, "new": S|null}
///   {"doc": ID[, "node": N], "change": "changed", "field": "meta",
///    "old": OBJECT|null, "new": OBJECT|null}
///   {"doc": ID, "change": "changed", "field": "body",
///    "old_bytes": N, "new_bytes": N}
///   {"doc": ID, "node": N, "change": "added", "input": V[, "output": V]}
///   {"doc": ID, "node": N, "change": "removed"}
///   {"doc": ID, "node": N, "change": "changed", "field": "input"|"output"
///    [, "old": V][, "new": V]}
/// Values are compared and printed as their exact stored text; an output
/// that is not set has no "old" or "new" member, while an output that is
/// the JSON value null has "old": null or "new": null.
///
/// Exit status: 0 when the two sides hold the same documents, 1 when they
/// differ (as diff(1) and `git diff --exit-code`); other errors keep their
/// usual codes.
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Compare the store with another store or a JSON Lines file",
    after_help = "\
Examples:
  stratum dump > before.jsonl; ./regenerate-fixtures; stratum diff before.jsonl
  stratum --dir new-store diff old-store
  stratum diff expected.jsonl > /dev/null || echo 'fixtures changed'
  stratum diff before.jsonl --json | jq -c 'select(.field == \"output\")'"
)]
pub struct DiffArgs {
    /// The old side: a store directory, a JSON Lines file, or - for stdin.
    #[arg(value_name = "OTHER")]
    pub other: PathBuf,
    /// JSON Lines even on a terminal.
    #[arg(long)]
    pub json: bool,
}

/// A stream of documents in ascending id order.
trait Side {
    /// The next document, `None` at the end.
    fn next_doc(&mut self) -> Result<Option<Document>, Error>;
}

/// The ids and keys of one side, in id order.
type Index = Vec<(DocId, Option<String>)>;

/// The ids and keys of a store, from `list` (no node is read).
fn index_store(store: &Store) -> Result<Index, Error> {
    let mut index = Vec::new();
    store.list(&mut |s| {
        index.push((s.id, s.key));
        Ok(())
    })?;
    Ok(index)
}

/// Documents of a store, dumped on a thread of their own.
struct StoreSide {
    rx: Receiver<Document>,
    worker: Option<JoinHandle<Result<(), Error>>>,
}

/// How many documents a store side may read ahead of the merge.
const READ_AHEAD: usize = 16;

impl StoreSide {
    fn open(opts: Options) -> Result<(StoreSide, Index), Error> {
        // Open here, not on the thread, so that "no store" or a lock
        // timeout is reported before anything is printed; the thread reads
        // the store this opened (one open, one shared lock).
        let store = ReadOnlyStore::open(opts)?;
        let index = index_store(&store)?;
        let (tx, rx): (SyncSender<Document>, _) = sync_channel(READ_AHEAD);
        let worker = std::thread::spawn(move || {
            let stopped = store.dump(&mut |_| {}, &mut |doc| {
                // A closed channel means the merge stopped early (an error on
                // the other side, or stdout closed): stop reading.
                tx.send(doc.clone()).map_err(|_| Error::invalid(STOPPED))
            });
            match stopped {
                Err(Error::InvalidInput(m)) if m == STOPPED => Ok(()),
                other => other,
            }
        });
        Ok((
            StoreSide {
                rx,
                worker: Some(worker),
            },
            index,
        ))
    }
}

/// The private reason a store side's dump ends when the merge hangs up.
const STOPPED: &str = "diff: reader stopped";

impl Side for StoreSide {
    fn next_doc(&mut self) -> Result<Option<Document>, Error> {
        if let Ok(doc) = self.rx.recv() {
            return Ok(Some(doc));
        }
        // The channel closed: the dump ended, well or badly.
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(result)) => result.map(|()| None),
            Some(Err(_)) => Err(Error::internal("the store reader thread panicked")),
            None => Ok(None),
        }
    }
}

/// Documents of a JSON Lines file in the `get` shape.
struct FileSide {
    name: String,
    lines: Lines,
    last: Option<DocId>,
}

/// The members of a line the first pass reads.
#[derive(serde::Deserialize)]
struct IdKey {
    id: Option<u64>,
    key: Option<String>,
}

impl FileSide {
    fn open(path: &Path, dir: &Path) -> Result<(FileSide, Index), Error> {
        let (name, mut file) = if path.as_os_str() == "-" {
            (STDIN.to_owned(), crate::cli::input::spool_stdin(dir)?)
        } else {
            let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
            (path.display().to_string(), file)
        };
        let io = |op, e| Error::io(op, name.as_str(), e);
        // The first pass takes what it can; a bad line is reported, with
        // its number, by the second.
        let mut index = Vec::new();
        let first = file.try_clone().map_err(|e| io("dup", e))?;
        let mut lines = Source::File(first, 0).lines(&name);
        while let Some((_, text)) = lines.next_line()? {
            if let Ok(IdKey { id: Some(id), key }) = serde_json::from_str(text) {
                index.push((DocId(id), key));
            }
        }
        std::io::Seek::rewind(&mut file).map_err(|e| io("seek", e))?;
        let lines = Source::File(file, 0).lines(&name);
        Ok((
            FileSide {
                name,
                lines,
                last: None,
            },
            index,
        ))
    }
}

impl Side for FileSide {
    fn next_doc(&mut self) -> Result<Option<Document>, Error> {
        // The id marks of `dump --high-water` are not a document.
        let (number, text) = loop {
            match self.lines.next_line()? {
                None => return Ok(None),
                Some((_, text)) if crate::cli::input::high_water_marks(text).is_some() => {}
                Some(line) => break line,
            }
        };
        let at = |msg: &dyn std::fmt::Display| {
            Error::invalid(format!("{} line {number}: {msg}", self.name))
        };
        let parsed = Document::from_json(text).map_err(|e| at(&e))?;
        let Some(id) = parsed.id else {
            return Err(at(&"no \"id\": diff matches documents by id"));
        };
        if self.last.is_some_and(|last| last >= id) {
            return Err(at(&format!(
                "document {id} is out of order: diff reads documents in ascending id order, as dump prints them"
            )));
        }
        self.last = Some(id);
        let mut inputs = Vec::with_capacity(parsed.inputs.len());
        let mut last_node = 0;
        for n in parsed.inputs {
            let Some(node) = n.id else {
                return Err(at(&"a node has no \"node\" id"));
            };
            if node.0 <= last_node {
                return Err(at(&format!("node {node} is out of order")));
            }
            last_node = node.0;
            inputs.push(Node {
                id: node,
                input: n.input,
                meta: n.meta,
                output: n.output,
            });
        }
        Ok(Some(Document {
            id,
            key: parsed.doc.key,
            category: parsed.doc.category,
            version: parsed.doc.version,
            meta: parsed.doc.meta,
            body: parsed.doc.body,
            inputs,
        }))
    }
}

/// The old side: a store when OTHER is a directory, else JSON Lines.
fn open_other(g: &GlobalArgs, other: &Path) -> Result<(Box<dyn Side>, Index), Error> {
    if other.as_os_str() != "-" && other.is_dir() {
        let mut opts = g.options();
        opts.dir = other.to_path_buf();
        let (side, index) = StoreSide::open(opts)?;
        Ok((Box::new(side), index))
    } else {
        let (side, index) = FileSide::open(other, &g.dir)?;
        Ok((Box::new(side), index))
    }
}

/// Which document of the new side each old document is compared with.
struct Pairing {
    /// New-side ids by key.
    new_keys: HashMap<String, DocId>,
    /// New-side ids with their keys, in id order.
    new: Index,
    /// Keys the old side holds.
    old_keys: HashSet<String>,
}

impl Pairing {
    fn new(old: &Index, new: Index) -> Pairing {
        Pairing {
            new_keys: new
                .iter()
                .filter_map(|(id, k)| k.clone().map(|k| (k, *id)))
                .collect(),
            old_keys: old.iter().filter_map(|(_, k)| k.clone()).collect(),
            new,
        }
    }

    /// The key of new document `id`, if it is there: `Some(key)`.
    fn new_doc(&self, id: DocId) -> Option<&Option<String>> {
        self.new
            .binary_search_by_key(&id, |(i, _)| *i)
            .ok()
            .map(|i| &self.new[i].1)
    }

    /// The partner of an old document: by key where the new side has the
    /// key; else by id, unless the new document with that id is paired by
    /// its own key with another old document.
    fn partner(&self, id: DocId, key: Option<&str>) -> Option<DocId> {
        if let Some(&n) = key.and_then(|k| self.new_keys.get(k)) {
            return Some(n);
        }
        match self.new_doc(id)? {
            Some(k) if self.old_keys.contains(k) => None,
            _ => Some(id),
        }
    }

    /// Whether new document `id` (with `key`) has no partner: its key is
    /// not on the old side, and no old document with its id pairs with it.
    fn added(
        &self,
        id: DocId,
        key: Option<&str>,
        old_ids: &HashMap<DocId, Option<String>>,
    ) -> bool {
        if key.is_some_and(|k| self.old_keys.contains(k)) {
            return false;
        }
        match old_ids.get(&id) {
            Some(old_key) => self.partner(id, old_key.as_deref()) != Some(id),
            None => true,
        }
    }
}

/// One difference, ready to print.
struct Change {
    doc: DocId,
    key: Option<String>,
    node: Option<u64>,
    change: &'static str,
    field: Option<&'static str>,
    /// Extra members, as `"name":text` pairs with `text` already JSON.
    members: Vec<(&'static str, String)>,
}

impl Change {
    fn doc(doc: DocId, key: Option<&str>, change: &'static str) -> Change {
        Change {
            doc,
            key: key.map(str::to_owned),
            node: None,
            change,
            field: None,
            members: Vec::new(),
        }
    }

    fn json(&self) -> String {
        let mut s = format!("{{\"doc\":{}", self.doc);
        if let Some(k) = &self.key {
            s.push_str(",\"key\":");
            stratum::json::write_str_literal(k, &mut s);
        }
        if let Some(n) = self.node {
            s.push_str(&format!(",\"node\":{n}"));
        }
        s.push_str(&format!(",\"change\":\"{}\"", self.change));
        if let Some(f) = self.field {
            s.push_str(&format!(",\"field\":\"{f}\""));
        }
        for (name, value) in &self.members {
            s.push_str(&format!(",\"{name}\":{value}"));
        }
        s.push('}');
        s
    }
}

fn opt_json(s: Option<&str>) -> String {
    let mut out = String::new();
    match s {
        Some(s) => stratum::json::write_str_literal(s, &mut out),
        None => out.push_str("null"),
    }
    out
}

/// A value's stored text, or `null` when there is none.
fn opt_value(v: Option<&stratum::Json>) -> String {
    v.map_or_else(|| "null".to_owned(), |j| j.as_str().to_owned())
}

/// The differences between two versions of one document, in field order,
/// then node order.
fn compare(
    old: &Document,
    new: &Document,
    out: &mut dyn FnMut(Change) -> Result<(), Error>,
) -> Result<(), Error> {
    let id = new.id;
    let key = new.key.as_deref().or(old.key.as_deref());
    let change = |what| Change::doc(id, key, what);
    for (field, a, b) in [
        ("key", &old.key, &new.key),
        ("category", &old.category, &new.category),
        ("version", &old.version, &new.version),
    ] {
        if a != b {
            let mut c = change("changed");
            c.field = Some(field);
            c.members.push(("old", opt_json(a.as_deref())));
            c.members.push(("new", opt_json(b.as_deref())));
            out(c)?;
        }
    }
    if old.meta != new.meta {
        let mut c = change("changed");
        c.field = Some("meta");
        c.members.push(("old", opt_value(old.meta.as_ref())));
        c.members.push(("new", opt_value(new.meta.as_ref())));
        out(c)?;
    }
    if old.body != new.body {
        let mut c = change("changed");
        c.field = Some("body");
        c.members.push(("old_bytes", old.body.len().to_string()));
        c.members.push(("new_bytes", new.body.len().to_string()));
        out(c)?;
    }
    let (mut a, mut b) = (old.inputs.iter().peekable(), new.inputs.iter().peekable());
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => return Ok(()),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x.id.cmp(&y.id),
        };
        match order {
            std::cmp::Ordering::Less => {
                let n = a.next().map_or(0, |n| n.id.0);
                let mut c = change("removed");
                c.node = Some(n);
                out(c)?;
            }
            std::cmp::Ordering::Greater => {
                if let Some(n) = b.next() {
                    let mut c = change("added");
                    c.node = Some(n.id.0);
                    c.members.push(("input", n.input.as_str().to_owned()));
                    if let Some(o) = &n.output {
                        c.members.push(("output", o.as_str().to_owned()));
                    }
                    out(c)?;
                }
            }
            std::cmp::Ordering::Equal => {
                let (Some(x), Some(y)) = (a.next(), b.next()) else {
                    return Ok(());
                };
                if x.input != y.input {
                    let mut c = change("changed");
                    c.node = Some(x.id.0);
                    c.field = Some("input");
                    c.members.push(("old", x.input.as_str().to_owned()));
                    c.members.push(("new", y.input.as_str().to_owned()));
                    out(c)?;
                }
                if x.meta != y.meta {
                    let mut c = change("changed");
                    c.node = Some(x.id.0);
                    c.field = Some("meta");
                    c.members.push(("old", opt_value(x.meta.as_ref())));
                    c.members.push(("new", opt_value(y.meta.as_ref())));
                    out(c)?;
                }
                if x.output != y.output {
                    let mut c = change("changed");
                    c.node = Some(x.id.0);
                    c.field = Some("output");
                    if let Some(o) = &x.output {
                        c.members.push(("old", o.as_str().to_owned()));
                    }
                    if let Some(o) = &y.output {
                        c.members.push(("new", o.as_str().to_owned()));
                    }
                    out(c)?;
                }
            }
        }
    }
}

/// Compares every old document with its partner and reports the new
/// documents that have none, in id order; returns how many differences
/// there were.
fn merge(
    old: &mut dyn Side,
    old_index: &Index,
    new: &Store,
    pairing: &Pairing,
    out: &mut dyn FnMut(Change) -> Result<(), Error>,
) -> Result<u64, Error> {
    let mut count = 0u64;
    let mut emit = |c: Change| {
        count += 1;
        out(c)
    };
    let old_ids: HashMap<DocId, Option<String>> = old_index.iter().cloned().collect();
    let mut added = pairing
        .new
        .iter()
        .filter(|(id, key)| pairing.added(*id, key.as_deref(), &old_ids))
        .peekable();
    while let Some(x) = old.next_doc()? {
        // Additions go in id order among the old side's documents.
        while let Some((id, key)) = added.next_if(|(id, _)| *id < x.id) {
            emit(Change::doc(*id, key.as_deref(), "added"))?;
        }
        match pairing.partner(x.id, x.key.as_deref()) {
            Some(n) => compare(&x, &new.get(n)?, &mut emit)?,
            None => emit(Change::doc(x.id, x.key.as_deref(), "removed"))?,
        }
    }
    for (id, key) in added {
        emit(Change::doc(*id, key.as_deref(), "added"))?;
    }
    Ok(count)
}

/// `diff` found differences; they have been printed. Exit code 1, with no
/// message, as diff(1).
#[derive(Debug)]
pub struct Differences(pub u64);

impl std::fmt::Display for Differences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} differences", self.0)
    }
}

impl std::error::Error for Differences {}

/// Runs `diff`.
///
/// # Errors
/// [`Differences`] when the sides differ; otherwise no store, lock timeout,
/// invalid input (a malformed or unordered file), corruption, I/O.
pub fn run(g: &GlobalArgs, args: DiffArgs) -> anyhow::Result<()> {
    let (mut old, old_index) = open_other(g, &args.other)?;
    let new = ReadOnlyStore::open(g.options())?;
    let pairing = Pairing::new(&old_index, index_store(&new)?);
    let mut out = output::stdout();
    let as_table = !args.json && std::io::stdout().is_terminal();
    let mut table =
        output::LongTable::new(&["doc", "node", "change", "field", "old", "new"], &[0, 1]);
    let count = merge(old.as_mut(), &old_index, &new, &pairing, &mut |c| {
        if as_table {
            let get = |name: &str| {
                c.members
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
            };
            let (o, n) = match c.field {
                Some("body") => (
                    get("old_bytes").map(|b| format!("{b} bytes")),
                    get("new_bytes").map(|b| format!("{b} bytes")),
                ),
                _ => (get("old"), get("new").or_else(|| get("input"))),
            };
            table.push(vec![
                c.doc.to_string(),
                c.node.map(|n| n.to_string()).unwrap_or_default(),
                c.change.to_owned(),
                c.field.unwrap_or("").to_owned(),
                o.unwrap_or_default(),
                n.unwrap_or_default(),
            ]);
            Ok(())
        } else {
            writeln!(out, "{}", c.json()).map_err(output::write_err)
        }
    })?;
    if as_table && count > 0 {
        table.write(&mut out).map_err(output::write_err)?;
    }
    out.flush().map_err(output::write_err)?;
    if count > 0 {
        return Err(Differences(count).into());
    }
    Ok(())
}
