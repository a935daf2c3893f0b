//! `stratum diff`: what changed between two stores, or between a store and a
//! JSON Lines file in the `get` shape (a `dump`), document by document and
//! node by node.
//!
//! Documents are paired by key where both sides have that key, else by id.
//! Memory holds a constant plus one document of each side, whatever the
//! sizes of the stores:
//!
//! 1. A first pass reads only the ids and keys of both sides (`list` for a
//!    store, the `id` and `key` members for a file). The new side's go to a
//!    list in id order, and the keyed documents of both sides to a sort by
//!    key; both spill to unnamed temporary files past a few MiB
//!    (`sorter.rs`).
//! 2. The two key orders are merge-joined: each key both sides hold pairs
//!    an old id with a new one. The pairs are sorted twice more, by old id
//!    and by new id.
//! 3. The old side is streamed in id order, beside the new side's list and
//!    the two pair orders, so that each old document's partner (by key,
//!    else by id) and each unpaired new document are known in turn. Each
//!    old document is compared with its partner, read from the store at
//!    --dir by id (a point lookup).
//!
//! An old store side is read on its own thread (the library's `dump` calls
//! back; a channel of a few documents turns that into a stream); a file on
//! stdin is copied to an unnamed temporary file so that it can be read
//! twice.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use clap::Args;

use crate::cli::input::{Lines, STDIN, Source};
use crate::cli::sorter::{Record, Sorted, Sorter, codec};
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

/// A keyed document of one side, sorted by key.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Keyed {
    key: String,
    id: u64,
}

impl Record for Keyed {
    fn heap_bytes(&self) -> usize {
        self.key.len()
    }
    fn encode(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        codec::put_u64(out, self.id)?;
        codec::put_str(out, Some(&self.key))
    }
    fn decode(input: &mut impl std::io::Read) -> std::io::Result<Option<Self>> {
        let Some(id) = codec::get_u64(input)? else {
            return Ok(None);
        };
        let key = codec::get_str(input)?.unwrap_or_default();
        Ok(Some(Keyed { key, id }))
    }
}

/// A document of the new side, in id order.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Listed {
    id: u64,
    key: Option<String>,
}

impl Record for Listed {
    fn heap_bytes(&self) -> usize {
        self.key.as_ref().map_or(0, String::len)
    }
    fn encode(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        codec::put_u64(out, self.id)?;
        codec::put_str(out, self.key.as_deref())
    }
    fn decode(input: &mut impl std::io::Read) -> std::io::Result<Option<Self>> {
        let Some(id) = codec::get_u64(input)? else {
            return Ok(None);
        };
        let key = codec::get_str(input)?;
        Ok(Some(Listed { id, key }))
    }
}

/// Two ids paired by key: `(old, new)` in the old side's order, `(new,
/// old)` in the new side's.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Pair(u64, u64);

impl Record for Pair {
    fn heap_bytes(&self) -> usize {
        0
    }
    fn encode(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        codec::put_u64(out, self.0)?;
        codec::put_u64(out, self.1)
    }
    fn decode(input: &mut impl std::io::Read) -> std::io::Result<Option<Self>> {
        let Some(a) = codec::get_u64(input)? else {
            return Ok(None);
        };
        let b = codec::get_u64(input)?.ok_or(std::io::ErrorKind::UnexpectedEof)?;
        Ok(Some(Pair(a, b)))
    }
}

/// The keyed documents of a store, from `list` (no node is read); with
/// `listed`, every document too.
fn index_store(
    store: &Store,
    keyed: &mut Sorter<Keyed>,
    mut listed: Option<&mut Sorter<Listed>>,
) -> Result<(), Error> {
    store.list(&mut |s| {
        if let Some(key) = &s.key {
            keyed.push(Keyed {
                key: key.clone(),
                id: s.id.0,
            })?;
        }
        if let Some(l) = listed.as_deref_mut() {
            l.push(Listed {
                id: s.id.0,
                key: s.key,
            })?;
        }
        Ok(())
    })
}

/// Documents of a store, dumped on a thread of their own.
struct StoreSide {
    rx: Receiver<Document>,
    worker: Option<JoinHandle<Result<(), Error>>>,
}

/// How many documents a store side may read ahead of the merge.
const READ_AHEAD: usize = 16;

impl StoreSide {
    fn open(opts: Options, keyed: &mut Sorter<Keyed>) -> Result<StoreSide, Error> {
        // Open here, not on the thread, so that "no store" or a lock
        // timeout is reported before anything is printed; the thread reads
        // the store this opened (one open, one shared lock).
        let store = ReadOnlyStore::open(opts)?;
        index_store(&store, keyed, None)?;
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

/// The members of a line the first pass reads.
#[derive(serde::Deserialize)]
struct IdKey {
    id: Option<u64>,
    key: Option<String>,
}

impl FileSide {
    fn open(path: &Path, dir: &Path, keyed: &mut Sorter<Keyed>) -> Result<FileSide, Error> {
        let (name, mut file) = if path.as_os_str() == "-" {
            (STDIN.to_owned(), crate::cli::input::spool_stdin(dir)?)
        } else {
            let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
            (path.display().to_string(), file)
        };
        let io = |op, e| Error::io(op, name.as_str(), e);
        // The first pass takes what it can; a bad line is reported, with
        // its number, by the second.
        let first = file.try_clone().map_err(|e| io("dup", e))?;
        let mut lines = Source::File(first, 0).lines(&name);
        while let Some((_, text)) = lines.next_line()? {
            if let Ok(IdKey {
                id: Some(id),
                key: Some(key),
            }) = serde_json::from_str(text)
            {
                keyed.push(Keyed { key, id })?;
            }
        }
        std::io::Seek::rewind(&mut file).map_err(|e| io("seek", e))?;
        let lines = Source::File(file, 0).lines(&name);
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

/// The old side: a store when OTHER is a directory, else JSON Lines. Its
/// keyed documents go to `keyed`.
fn open_other(
    g: &GlobalArgs,
    other: &Path,
    keyed: &mut Sorter<Keyed>,
) -> Result<Box<dyn Side>, Error> {
    if other.as_os_str() != "-" && other.is_dir() {
        let mut opts = g.options();
        opts.dir = other.to_path_buf();
        Ok(Box::new(StoreSide::open(opts, keyed)?))
    } else {
        Ok(Box::new(FileSide::open(other, &g.dir, keyed)?))
    }
}

/// Which document of the new side each old document is compared with,
/// decided in id order as the old side streams by (module docs, step 3).
struct Pairing {
    /// Old documents paired by key, `(old, new)`, by old id.
    old_by_key: Sorted<Pair>,
    /// New documents paired by key, `(new, old)`, by new id.
    new_by_key: Sorted<Pair>,
    /// The new side's documents not yet passed, in id order.
    new: Sorted<Listed>,
    /// The last old document decided, and whether it was paired by key.
    last_old: Option<(u64, bool)>,
}

impl Pairing {
    /// Step 2 of the module docs: joins the two sides' keys.
    fn new(
        old_keys: Sorter<Keyed>,
        new_keys: Sorter<Keyed>,
        new: Sorter<Listed>,
    ) -> Result<Pairing, Error> {
        let (mut old_keys, mut new_keys) = (old_keys.finish()?, new_keys.finish()?);
        let (mut old_by_key, mut new_by_key) = (Sorter::default(), Sorter::default());
        while let (Some(a), Some(b)) = (old_keys.peek()?, new_keys.peek()?) {
            match a.key.cmp(&b.key) {
                std::cmp::Ordering::Less => drop(old_keys.next()?),
                std::cmp::Ordering::Greater => drop(new_keys.next()?),
                // A store's keys are unique; a file's may not be, and then
                // each old document with the key pairs with the new one.
                std::cmp::Ordering::Equal => {
                    let (old, new) = (a.id, b.id);
                    old_by_key.push(Pair(old, new))?;
                    new_by_key.push(Pair(new, old))?;
                    old_keys.next()?;
                }
            }
        }
        Ok(Pairing {
            old_by_key: old_by_key.finish()?,
            new_by_key: new_by_key.finish()?,
            new: new.finish()?,
            last_old: None,
        })
    }

    /// Whether new document `id` is paired by key.
    fn new_has_key_partner(&mut self, id: u64) -> Result<bool, Error> {
        Ok(self
            .new_by_key
            .skip_while(|p| p.0 < id)?
            .is_some_and(|p| p.0 == id))
    }

    /// Reports the new documents before `bound` (all that are left, for
    /// `None`) that have no partner. Called before [`Pairing::partner`] of
    /// an old document with id `bound`.
    fn added_before(
        &mut self,
        bound: Option<u64>,
        out: &mut dyn FnMut(Change) -> Result<(), Error>,
    ) -> Result<(), Error> {
        while let Some(n) = self.new.peek()? {
            if bound.is_some_and(|b| n.id >= b) {
                break;
            }
            let Some(Listed { id, key }) = self.new.next()? else {
                break;
            };
            // The old document with this id, if there is one, is the last
            // one decided: this list is drained below each old id before
            // that document is decided. It took this one by id unless it
            // was paired by key; one paired by key is not added either.
            let by_id = self.last_old == Some((id, false));
            if !by_id && !self.new_has_key_partner(id)? {
                out(Change::doc(DocId(id), key.as_deref(), "added"))?;
            }
        }
        Ok(())
    }

    /// The partner of old document `id`: by key where the new side has its
    /// key; else by id, unless the new document with that id is paired by
    /// its own key with another old document.
    fn partner(&mut self, id: u64) -> Result<Option<DocId>, Error> {
        if let Some(&Pair(_, new)) = self
            .old_by_key
            .skip_while(|p| p.0 < id)?
            .filter(|p| p.0 == id)
        {
            self.last_old = Some((id, true));
            return Ok(Some(DocId(new)));
        }
        self.last_old = Some((id, false));
        let same_id = self.new.peek()?.is_some_and(|n| n.id == id);
        Ok((same_id && !self.new_has_key_partner(id)?).then_some(DocId(id)))
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
    new: &Store,
    pairing: &mut Pairing,
    out: &mut dyn FnMut(Change) -> Result<(), Error>,
) -> Result<u64, Error> {
    let mut count = 0u64;
    let mut emit = |c: Change| {
        count += 1;
        out(c)
    };
    while let Some(x) = old.next_doc()? {
        // Additions go in id order among the old side's documents.
        pairing.added_before(Some(x.id.0), &mut emit)?;
        match pairing.partner(x.id.0)? {
            Some(n) => compare(&x, &new.get(n)?, &mut emit)?,
            None => emit(Change::doc(x.id, x.key.as_deref(), "removed"))?,
        }
    }
    pairing.added_before(None, &mut emit)?;
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
    let (mut old_keys, mut new_keys, mut listed) =
        (Sorter::default(), Sorter::default(), Sorter::default());
    let mut old = open_other(g, &args.other, &mut old_keys)?;
    let new = ReadOnlyStore::open(g.options())?;
    index_store(&new, &mut new_keys, Some(&mut listed))?;
    let mut pairing = Pairing::new(old_keys, new_keys, listed)?;
    let mut out = output::stdout();
    let as_table = !args.json && std::io::stdout().is_terminal();
    let mut table =
        output::LongTable::new(&["doc", "node", "change", "field", "old", "new"], &[0, 1]);
    let count = merge(old.as_mut(), &new, &mut pairing, &mut |c| {
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

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    /// One side: ascending ids with their keys.
    type SideDocs = Vec<(u64, Option<String>)>;

    /// The pairing `diff` had when it held both sides in hash maps, as the
    /// reference: what [`merge`] decides and reports, in its order.
    fn reference(old: &SideDocs, new: &SideDocs) -> Vec<String> {
        let new_keys: HashMap<&str, u64> = new
            .iter()
            .filter_map(|(id, k)| Some((k.as_deref()?, *id)))
            .collect();
        let old_keys: HashSet<&str> = old.iter().filter_map(|(_, k)| k.as_deref()).collect();
        let new_ids: HashMap<u64, Option<&str>> =
            new.iter().map(|(id, k)| (*id, k.as_deref())).collect();
        let old_ids: HashMap<u64, Option<&str>> =
            old.iter().map(|(id, k)| (*id, k.as_deref())).collect();
        let partner = |id: u64, key: Option<&str>| -> Option<u64> {
            if let Some(&n) = key.and_then(|k| new_keys.get(k)) {
                return Some(n);
            }
            match new_ids.get(&id)? {
                Some(k) if old_keys.contains(k) => None,
                _ => Some(id),
            }
        };
        let added = |id: u64, key: Option<&str>| {
            if key.is_some_and(|k| old_keys.contains(k)) {
                return false;
            }
            match old_ids.get(&id) {
                Some(k) => partner(id, *k) != Some(id),
                None => true,
            }
        };
        let mut log = Vec::new();
        let mut adds = new
            .iter()
            .filter(|(id, k)| added(*id, k.as_deref()))
            .peekable();
        for (id, key) in old {
            while let Some((n, _)) = adds.next_if(|(n, _)| n < id) {
                log.push(format!("added {n}"));
            }
            log.push(match partner(*id, key.as_deref()) {
                Some(n) => format!("{id} with {n}"),
                None => format!("removed {id}"),
            });
        }
        log.extend(adds.map(|(n, _)| format!("added {n}")));
        log
    }

    /// What [`Pairing`] decides, driven as [`merge`] drives it.
    fn pairing(old: &SideDocs, new: &SideDocs) -> Vec<String> {
        let (mut old_keys, mut new_keys, mut listed) =
            (Sorter::default(), Sorter::default(), Sorter::default());
        for (id, key) in old {
            if let Some(key) = key {
                old_keys
                    .push(Keyed {
                        key: key.clone(),
                        id: *id,
                    })
                    .unwrap();
            }
        }
        for (id, key) in new {
            if let Some(key) = key {
                new_keys
                    .push(Keyed {
                        key: key.clone(),
                        id: *id,
                    })
                    .unwrap();
            }
            listed
                .push(Listed {
                    id: *id,
                    key: key.clone(),
                })
                .unwrap();
        }
        let mut p = Pairing::new(old_keys, new_keys, listed).unwrap();
        let mut log = Vec::new();
        for (id, _) in old {
            let mut added = |c: Change| {
                log.push(format!("added {}", c.doc));
                Ok(())
            };
            p.added_before(Some(*id), &mut added).unwrap();
            log.push(match p.partner(*id).unwrap() {
                Some(n) => format!("{id} with {n}"),
                None => format!("removed {id}"),
            });
        }
        p.added_before(None, &mut |c| {
            log.push(format!("added {}", c.doc));
            Ok(())
        })
        .unwrap();
        log
    }

    /// A side of up to 24 documents with ids up to 40, most with one of
    /// eight keys; `unique` keys as a store has them, else as a file may.
    fn side(seed: &mut u64, unique: bool) -> SideDocs {
        let mut next = || {
            // xorshift64
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed
        };
        let mut used = HashSet::new();
        let mut docs = Vec::new();
        for id in 1..=40 {
            if next() % 5 < 3 {
                continue;
            }
            let key = (next() % 4 != 0)
                .then(|| format!("k{}", next() % 8))
                .filter(|k| !unique || used.insert(k.clone()));
            docs.push((id, key));
        }
        docs
    }

    #[test]
    fn pairing_through_sorted_runs_decides_as_the_hash_maps_did() {
        // The unit tests' sorters write a run every few records, so every
        // sort here goes through run files.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for case in 0..400 {
            let old = side(&mut seed, case % 4 != 0);
            let new = side(&mut seed, true);
            assert_eq!(
                pairing(&old, &new),
                reference(&old, &new),
                "old {old:?}\nnew {new:?}"
            );
        }
    }

    #[test]
    fn the_run_records_round_trip() {
        let mut s = Sorter::default();
        let listed: Vec<Listed> = (0..100u64)
            .map(|id| Listed {
                id,
                key: (id % 3 != 0).then(|| format!("é{id}")),
            })
            .collect();
        for l in &listed {
            s.push(Listed {
                id: l.id,
                key: l.key.clone(),
            })
            .unwrap();
        }
        let mut back = s.finish().unwrap();
        for l in &listed {
            assert!(back.next().unwrap().as_ref() == Some(l), "{}", l.id);
        }
        assert!(back.next().unwrap().is_none());
        let mut s = Sorter::default();
        for i in (0..100u64).rev() {
            s.push(Pair(i / 2, i)).unwrap();
        }
        let mut back = s.finish().unwrap();
        for i in 0..100u64 {
            assert!(back.next().unwrap() == Some(Pair(i / 2, i)));
        }
    }
}
