//! `stratum diff`: what changed between two stores, or between a store and a
//! JSON Lines file in the `get` shape (a `dump`), document by document and
//! node by node.
//!
//! Both sides are streamed in id order and merged, so memory holds one
//! document of each side at a time, whatever the store size. A store side is
//! read on its own thread (the library's `dump` calls back; a channel of a
//! few documents turns that into a stream the merge can pull from).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use clap::Args;

use crate::cli::input::{Lines, STDIN, Source};
use crate::cli::{GlobalArgs, output};
use stratum::{DocId, Document, Error, Mode, Node, Options, Store};

/// Compare the store with another store or a JSON Lines file.
///
/// OTHER is a store directory, a file of JSON Lines in the `get` shape
/// (what `dump` prints, ids included), or - for standard input. OTHER is
/// the old side and the store at --dir the new one, as `git diff COMMIT`
/// compares the work tree with COMMIT. Documents are matched by id; nodes
/// by node id within a document.
///
/// Each difference is one JSON line (--json, and whenever stdout is not a
/// terminal; a table on a terminal):
///   {"doc": ID, "change": "added"|"removed"}
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

/// Documents of a store, dumped on a thread of their own.
struct StoreSide {
    rx: Receiver<Document>,
    worker: Option<JoinHandle<Result<(), Error>>>,
}

/// How many documents a store side may read ahead of the merge.
const READ_AHEAD: usize = 16;

impl StoreSide {
    fn open(opts: Options) -> Result<StoreSide, Error> {
        // Open here, not on the thread, so that "no store" or a lock
        // timeout is reported before anything is printed; the thread reads
        // the store this opened (one open, one shared lock).
        let store = Store::open(opts, Mode::Read)?;
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
        Ok(StoreSide {
            rx,
            worker: Some(worker),
        })
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

impl FileSide {
    fn open(path: &Path) -> Result<FileSide, Error> {
        let name = if path.as_os_str() == "-" {
            STDIN.to_owned()
        } else {
            path.display().to_string()
        };
        let lines = Source::open(Some(path))?.lines(&name);
        Ok(FileSide {
            name,
            lines,
            last: None,
        })
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
fn open_other(g: &GlobalArgs, other: &Path) -> Result<Box<dyn Side>, Error> {
    if other.as_os_str() != "-" && other.is_dir() {
        let mut opts = g.options();
        opts.dir = other.to_path_buf();
        Ok(Box::new(StoreSide::open(opts)?))
    } else {
        Ok(Box::new(FileSide::open(other)?))
    }
}

/// One difference, ready to print.
struct Change {
    doc: DocId,
    node: Option<u64>,
    change: &'static str,
    field: Option<&'static str>,
    /// Extra members, as `"name":text` pairs with `text` already JSON.
    members: Vec<(&'static str, String)>,
}

impl Change {
    fn doc(doc: DocId, change: &'static str) -> Change {
        Change {
            doc,
            node: None,
            change,
            field: None,
            members: Vec::new(),
        }
    }

    fn json(&self) -> String {
        let mut s = format!("{{\"doc\":{}", self.doc);
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
    let id = old.id;
    for (field, a, b) in [
        ("key", &old.key, &new.key),
        ("category", &old.category, &new.category),
        ("version", &old.version, &new.version),
    ] {
        if a != b {
            let mut c = Change::doc(id, "changed");
            c.field = Some(field);
            c.members.push(("old", opt_json(a.as_deref())));
            c.members.push(("new", opt_json(b.as_deref())));
            out(c)?;
        }
    }
    if old.meta != new.meta {
        let mut c = Change::doc(id, "changed");
        c.field = Some("meta");
        c.members.push(("old", opt_value(old.meta.as_ref())));
        c.members.push(("new", opt_value(new.meta.as_ref())));
        out(c)?;
    }
    if old.body != new.body {
        let mut c = Change::doc(id, "changed");
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
                let mut c = Change::doc(id, "removed");
                c.node = Some(n);
                out(c)?;
            }
            std::cmp::Ordering::Greater => {
                if let Some(n) = b.next() {
                    let mut c = Change::doc(id, "added");
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
                    let mut c = Change::doc(id, "changed");
                    c.node = Some(x.id.0);
                    c.field = Some("input");
                    c.members.push(("old", x.input.as_str().to_owned()));
                    c.members.push(("new", y.input.as_str().to_owned()));
                    out(c)?;
                }
                if x.meta != y.meta {
                    let mut c = Change::doc(id, "changed");
                    c.node = Some(x.id.0);
                    c.field = Some("meta");
                    c.members.push(("old", opt_value(x.meta.as_ref())));
                    c.members.push(("new", opt_value(y.meta.as_ref())));
                    out(c)?;
                }
                if x.output != y.output {
                    let mut c = Change::doc(id, "changed");
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

/// Merges the two id-ordered streams and reports every difference; returns
/// how many there were.
fn merge(
    old: &mut dyn Side,
    new: &mut dyn Side,
    out: &mut dyn FnMut(Change) -> Result<(), Error>,
) -> Result<u64, Error> {
    let mut count = 0u64;
    let mut emit = |c: Change| {
        count += 1;
        out(c)
    };
    let (mut a, mut b) = (old.next_doc()?, new.next_doc()?);
    loop {
        match (a.take(), b.take()) {
            (None, None) => break,
            (Some(x), None) => {
                emit(Change::doc(x.id, "removed"))?;
                a = old.next_doc()?;
            }
            (None, Some(y)) => {
                emit(Change::doc(y.id, "added"))?;
                b = new.next_doc()?;
            }
            (Some(x), Some(y)) if x.id < y.id => {
                emit(Change::doc(x.id, "removed"))?;
                (a, b) = (old.next_doc()?, Some(y));
            }
            (Some(x), Some(y)) if x.id > y.id => {
                emit(Change::doc(y.id, "added"))?;
                (a, b) = (Some(x), new.next_doc()?);
            }
            (Some(x), Some(y)) => {
                compare(&x, &y, &mut emit)?;
                (a, b) = (old.next_doc()?, new.next_doc()?);
            }
        }
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
    let mut old = open_other(g, &args.other)?;
    let mut new = StoreSide::open(g.options())?;
    let mut out = output::stdout();
    let as_table = !args.json && std::io::stdout().is_terminal();
    let mut table =
        output::LongTable::new(&["doc", "node", "change", "field", "old", "new"], &[0, 1]);
    let count = merge(old.as_mut(), &mut new, &mut |c| {
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
