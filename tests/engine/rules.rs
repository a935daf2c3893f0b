//! The rules of issue 11 as the library holds them (issue 10: one home per
//! rule, the CLI and the Python module thin over it): what a write does
//! with a taken key ([`OnConflict`]), the JSON merge patch of meta, and
//! [`Selection`] with its cheap paths, counted in file reads.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stratum::engine::vfs::{EntryKind, LockGuard, OsFs, VFile, Vfs};
use stratum::{
    Created, DocId, DocPatch, Document, Error, Ids, Json, Loaded, NewDoc, NodeId, OnConflict,
    Options, ReadOnlyStore, Selection, Store, merge_patch,
};

fn j(s: &str) -> Json {
    Json::parse(s).unwrap()
}

fn opts(dir: &Path) -> Options {
    Options::new(dir).segment_size(4096).without_sync()
}

/// Every file of the store with its bytes: equal snapshots mean nothing
/// was written.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn dump(s: &Store) -> Vec<String> {
    s.docs().unwrap().map(|d| d.unwrap().to_json()).collect()
}

fn load_all(s: &mut Store, lines: &[&str], on: OnConflict) -> stratum::Result<Vec<Loaded>> {
    s.atomic(|s| {
        lines
            .iter()
            .map(|l| s.load_doc_or(&Document::from_json(l)?, Ids::Assign, on))
            .collect()
    })
}

const FIXTURES: [&str; 2] = [
    r#"{"key":"two-sum","category":"easy","meta":{"tags":["array"],"n":1.0},"body":"Two sum","inputs":[{"input":[2,7],"output":[0,1]},{"input":[3,3],"meta":{"label":"pair"},"output":null,"has_output":true},{"input":[1]}]}"#,
    r#"{"key":"HumanEval/42","body":"incr","inputs":[{"input":-9999999999999999,"output":123e65}]}"#,
];

#[test]
fn replace_keeps_ids_and_writes_nothing_for_what_is_equal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut s = Store::open(opts(&dir)).unwrap();
    let first = load_all(&mut s, &FIXTURES, OnConflict::Fail).unwrap();
    assert_eq!(first, [Loaded::New(DocId(1)), Loaded::New(DocId(2))]);
    let before = dump(&s);
    drop(s);
    let files = snapshot(&dir);

    // The same fixtures again: the same store, byte for byte.
    let mut s = Store::open(opts(&dir)).unwrap();
    let again = load_all(&mut s, &FIXTURES, OnConflict::Replace).unwrap();
    assert_eq!(
        again,
        [Loaded::Replaced(DocId(1)), Loaded::Replaced(DocId(2))]
    );
    assert_eq!(dump(&s), before);
    drop(s);
    assert!(
        snapshot(&dir) == files,
        "an equal replacement wrote something"
    );

    // Regenerated: one output changed, a node's meta dropped, an input
    // changed from the third node on, and a node added.
    let regenerated = [
        r#"{"key":"two-sum","category":"easy","meta":{"tags":["array"],"n":1.0},"body":"Two sum","inputs":[{"input":[2,7],"output":[1,0]},{"input":[3,3],"output":null,"has_output":true},{"input":[2]},{"input":[3],"output":1.50}]}"#,
        FIXTURES[1],
    ];
    let mut s = Store::open(opts(&dir)).unwrap();
    load_all(&mut s, &regenerated, OnConflict::Replace).unwrap();
    let d = s.get(DocId(1)).unwrap();
    let nodes: Vec<(NodeId, &str, Option<&str>, Option<&str>)> = d
        .inputs
        .iter()
        .map(|n| {
            (
                n.id,
                n.input.as_str(),
                n.meta.as_ref().map(Json::as_str),
                n.output.as_ref().map(Json::as_str),
            )
        })
        .collect();
    // Nodes 1 and 2 kept their ids; node 3 went, and ids 4 and 5 are new.
    assert_eq!(
        nodes,
        [
            (NodeId(1), "[2,7]", None, Some("[1,0]")),
            (NodeId(2), "[3,3]", None, Some("null")),
            (NodeId(4), "[2]", None, None),
            (NodeId(5), "[3]", None, Some("1.50")),
        ]
    );
    assert_eq!(dump(&s)[1], before[1]);

    // Skip leaves the holder as it is and writes nothing.
    drop(s);
    let files = snapshot(&dir);
    let mut s = Store::open(opts(&dir)).unwrap();
    let skipped = load_all(&mut s, &FIXTURES, OnConflict::Skip).unwrap();
    assert_eq!(
        skipped,
        [Loaded::Skipped(DocId(1)), Loaded::Skipped(DocId(2))]
    );
    assert_eq!(skipped[0].id(), DocId(1));
    drop(s);
    assert!(snapshot(&dir) == files, "a skip wrote something");
}

#[test]
fn fail_refuses_a_taken_key_and_the_batch_leaves_the_store_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut s = Store::open(opts(&dir)).unwrap();
    load_all(&mut s, &FIXTURES, OnConflict::Fail).unwrap();
    drop(s);
    let files = snapshot(&dir);
    let mut s = Store::open(opts(&dir)).unwrap();
    let fresh = r#"{"key":"new","body":"x"}"#;
    let e = load_all(&mut s, &[fresh, FIXTURES[1]], OnConflict::Fail).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput(m) if m == r#"key "HumanEval/42" is already used by document 2"#),
        "{e}"
    );
    drop(s);
    assert!(snapshot(&dir) == files);

    // Keeping ids and a policy that keeps the holder's id contradict.
    let mut s = Store::open(opts(&dir)).unwrap();
    let kept = Document::from_json(r#"{"id":9,"key":"two-sum","body":"x"}"#).unwrap();
    for on in [OnConflict::Replace, OnConflict::Skip] {
        let e = s.load_doc_or(&kept, Ids::Keep, on).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidInput(m) if m.contains("do not go together") && !m.contains("--")),
            "{e}"
        );
    }
    drop(s);
    assert!(snapshot(&dir) == files);
}

#[test]
fn a_replacement_takes_its_chain_node_by_node() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Store::open(opts(tmp.path())).unwrap();
    let new = NewDoc {
        key: Some("k".into()),
        body: b"v1".to_vec(),
        ..NewDoc::default()
    };
    let Created::New(id) = s.create_doc_or(&new, OnConflict::Replace).unwrap() else {
        panic!("not new");
    };
    for i in 1..=3 {
        s.add_input(id, &j(&i.to_string()), None).unwrap();
    }
    let v2 = NewDoc {
        category: Some("c".into()),
        ..new.clone()
    };
    let Created::Replaced(mut r) = s.create_doc_or(&v2, OnConflict::Replace).unwrap() else {
        panic!("not replaced");
    };
    assert_eq!(r.id(), id);
    assert_eq!(
        r.add(&mut s, &j("1"), None, Some(&j("10"))).unwrap(),
        NodeId(1)
    );
    r.finish(&mut s).unwrap();
    let d = s.get(id).unwrap();
    assert_eq!(d.category.as_deref(), Some("c"));
    assert_eq!(d.inputs.len(), 1, "nodes 2 and 3 were not reached");
    assert!(matches!(
        s.create_doc_or(&v2, OnConflict::Skip).unwrap(),
        Created::Skipped(i) if i == id
    ));
    assert!(s.create_doc_or(&v2, OnConflict::Fail).is_err());
    assert_eq!(
        "replace".parse::<OnConflict>().unwrap(),
        OnConflict::Replace
    );
    assert_eq!(OnConflict::default(), OnConflict::Fail);
    assert_eq!(OnConflict::Skip.to_string(), "skip");
    assert!("Replace".parse::<OnConflict>().is_err());
}

#[test]
fn a_meta_patch_keeps_exact_text_in_one_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut s = Store::open(opts(&dir)).unwrap();
    let id = s
        .create_doc(&NewDoc {
            meta: Some(j(
                r#"{"n": -9999999999999999, "tags": ["a"], "s": "\u00e9", "x": 1.0}"#,
            )),
            ..NewDoc::default()
        })
        .unwrap();
    let node = s.add_input(id, &j("1"), None).unwrap();
    let records = |s: &Store| {
        let mut n = 0;
        s.records(&mut |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        n
    };
    let before = records(&s);
    let patch = DocPatch {
        key: Some(Some("renamed".into())),
        ..DocPatch::default()
    };
    s.update_doc_merging_meta(
        id,
        &patch,
        &j(r#"{"tags": ["b"], "x": null, "new": 123e65}"#),
    )
    .unwrap();
    assert_eq!(records(&s), before + 1, "key and meta in one record");
    let d = s.get(id).unwrap();
    assert_eq!(d.key.as_deref(), Some("renamed"));
    assert_eq!(
        d.meta.as_ref().map(Json::as_str),
        Some(r#"{"n":-9999999999999999,"tags":["b"],"s":"\u00e9","new":123e65}"#)
    );
    // A node without meta is patched from nothing.
    s.merge_node_meta(id, node, &j(r#"{"label": "edge", "gone": null}"#))
        .unwrap();
    s.merge_node_meta(id, node, &j(r#"{"w": {"ms": 5}}"#))
        .unwrap();
    assert_eq!(
        s.get_node(id, node)
            .unwrap()
            .meta
            .as_ref()
            .map(Json::as_str),
        Some(r#"{"label":"edge","w":{"ms":5}}"#)
    );
    drop(s);

    // Refused: a patch that is not an object, a patch beside a new meta,
    // an unknown document or node; each leaves the store as it was.
    let files = snapshot(&dir);
    let mut s = Store::open(opts(&dir)).unwrap();
    let e = s
        .update_doc_merging_meta(id, &DocPatch::default(), &j("[1]"))
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput(m) if m.contains("must be a JSON object")),
        "{e}"
    );
    let both = DocPatch {
        meta: Some(None),
        ..DocPatch::default()
    };
    let e = s.update_doc_merging_meta(id, &both, &j("{}")).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e}");
    assert!(matches!(
        s.merge_node_meta(id, NodeId(9), &j("{}")),
        Err(Error::NodeNotFound { .. })
    ));
    assert!(matches!(
        s.update_doc_merging_meta(DocId(9), &DocPatch::default(), &j("{}")),
        Err(Error::DocNotFound(_))
    ));
    assert!(s.merge_node_meta(id, node, &j("3")).is_err());
    drop(s);
    assert!(snapshot(&dir) == files);
    assert_eq!(
        merge_patch(None, &j(r#"{"a":null}"#)).unwrap().as_str(),
        "{}"
    );
}

/// [`OsFs`] with every read counted, calls and bytes.
#[derive(Default)]
struct Counting {
    reads: AtomicU64,
    bytes: AtomicU64,
}

struct CountingFs(Arc<Counting>);

struct CountingFile(Box<dyn VFile>, Arc<Counting>);

impl VFile for CountingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let n = self.0.read_at(buf, offset)?;
        self.1.reads.fetch_add(1, Ordering::Relaxed);
        self.1.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Vfs for CountingFs {
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn VFile>> {
        Ok(Box::new(CountingFile(
            OsFs.open_read(path)?,
            self.0.clone(),
        )))
    }
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn VFile>> {
        Ok(Box::new(CountingFile(OsFs.open_rw(path)?, self.0.clone())))
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn VFile>> {
        Ok(Box::new(CountingFile(
            OsFs.create_new(path)?,
            self.0.clone(),
        )))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        OsFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        OsFs.remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        OsFs.remove_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        OsFs.create_dir_all(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<(std::ffi::OsString, EntryKind)>> {
        OsFs.read_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        OsFs.sync_dir(path)
    }
    fn kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        OsFs.kind(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        OsFs.file_len(path)
    }
    fn available_space(&self, path: &Path) -> io::Result<u64> {
        OsFs.available_space(path)
    }
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        OsFs.hard_link(from, to)
    }
    fn lock(
        &self,
        path: &Path,
        exclusive: bool,
        create: bool,
        timeout: Duration,
    ) -> io::Result<Option<Box<dyn LockGuard>>> {
        OsFs.lock(path, exclusive, create, timeout)
    }
}

/// A key's hash slots spread over every segment that holds keyed
/// documents, and a key lookup probes each of them (src/engine/store.rs
/// `find_key`): the selection store keeps to a few segments, as a loaded
/// dataset does, so that what is counted is the selection's own cost.
fn big_segments(dir: &Path) -> Options {
    Options::new(dir).segment_size(256 << 10).without_sync()
}

/// A read handle on `dir` whose reads are counted.
fn counted(dir: &Path) -> (ReadOnlyStore, Arc<Counting>) {
    let counts = Arc::new(Counting::default());
    let o = Options {
        vfs: Arc::new(CountingFs(counts.clone())),
        ..big_segments(dir)
    };
    (ReadOnlyStore::open(o).unwrap(), counts)
}

/// Bytes `f` reads on a fresh handle, past what opening it read.
fn bytes_read(dir: &Path, f: impl FnOnce(&Store)) -> u64 {
    let (s, counts) = counted(dir);
    let at_open = counts.bytes.load(Ordering::Relaxed);
    f(&s);
    counts.bytes.load(Ordering::Relaxed) - at_open
}

/// Document `i` (from 1) of the selection store: key `p/i` (none for
/// every seventh), category `c{i%3}`, meta level `1.0` or `1` by parity,
/// and a node without an output on every fifth.
fn selection_store(dir: &Path, n: u64) {
    let mut s = Store::open(big_segments(dir)).unwrap();
    for i in 1..=n {
        let id = s
            .create_doc(&NewDoc {
                key: (i % 7 != 0).then(|| format!("p/{i}")),
                category: Some(format!("c{}", i % 3)),
                meta: Some(j(&format!(
                    r#"{{"level":{},"i":{i}}}"#,
                    if i % 2 == 0 { "1.0" } else { "1" }
                ))),
                body: format!("document {i} {}", "x".repeat(2000)).into_bytes(),
                version: None,
            })
            .unwrap();
        s.add_input(id, &j("[1, 2]"), Some(&j("null"))).unwrap();
        if i % 5 == 0 {
            s.add_input(id, &j("3"), None).unwrap();
        }
    }
    s.delete_doc(DocId(40)).unwrap();
}

/// The ids `sel` selects, through [`Store::select`],
/// [`Store::select_summaries`] and [`Store::docs_where`] (which must
/// agree), and the bytes the first two read on a fresh handle (the third
/// must read what the first does).
fn selected(dir: &Path, sel: &Selection) -> (Vec<u64>, u64, u64) {
    let mut docs = Vec::new();
    let doc_bytes = bytes_read(dir, |s| {
        s.select(sel, &mut |_| {}, &mut |d| {
            assert!(sel.matches(d));
            docs.push(d.id.0);
            Ok(())
        })
        .unwrap();
    });
    let mut rows = Vec::new();
    let row_bytes = bytes_read(dir, |s| {
        s.select_summaries(sel, &mut |r| {
            rows.push(r.id.0);
            Ok(())
        })
        .unwrap();
    });
    assert_eq!(docs, rows, "select and select_summaries agree");
    let iterated = bytes_read(dir, |s| {
        let ids: Vec<u64> = s
            .docs_where(sel)
            .unwrap()
            .map(|d| d.unwrap().id.0)
            .collect();
        assert_eq!(ids, docs, "docs_where and select agree");
    });
    assert_eq!(iterated, doc_bytes, "docs_where reads what select reads");
    (docs, doc_bytes, row_bytes)
}

#[test]
fn selection_takes_what_each_filter_says_and_looks_keys_and_narrow_ranges_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let n = 300;
    selection_store(&dir, n);
    let expect =
        |f: &dyn Fn(u64) -> bool| -> Vec<u64> { (1..=n).filter(|&i| i != 40 && f(i)).collect() };

    let (all, all_bytes, _) = selected(&dir, &Selection::new());
    assert_eq!(all, expect(&|_| true));
    let cases: Vec<(Selection, Vec<u64>)> = vec![
        (Selection::new().category("c1"), expect(&|i| i % 3 == 1)),
        (
            Selection::new().key_prefix("p/1"),
            expect(&|i| i % 7 != 0 && i.to_string().starts_with('1')),
        ),
        (
            Selection::new().meta("level", j("1.0")),
            expect(&|i| i % 2 == 0),
        ),
        (
            Selection::new().meta("level", j("1")).category("c0"),
            expect(&|i| i % 2 == 1 && i % 3 == 0),
        ),
        (Selection::new().meta("nothing", j("1")), vec![]),
        // A real null output is an output: only the fifths miss one.
        (Selection::new().missing_output(), expect(&|i| i % 5 == 0)),
        (
            Selection::new().ids(100..=120).missing_output(),
            expect(&|i| (100..=120).contains(&i) && i % 5 == 0),
        ),
        (Selection::new().ids(250..), expect(&|i| i >= 250)),
        (Selection::new().ids(1_000..), vec![]),
        (Selection::new().key("p/8"), vec![8]),
        (Selection::new().key("p/8").category("c0"), vec![]),
        (Selection::new().key("p/40"), vec![]),
        (Selection::new().key("p/7"), vec![]),
    ];
    for (sel, want) in &cases {
        assert_eq!(&selected(&dir, sel).0, want, "{sel:?}");
    }

    // A key costs what looking it up and reading its document cost, and a
    // narrow range what reading its documents by id costs: nothing else is
    // read. Anything else reads the store.
    let (_, key_bytes, key_rows) = selected(&dir, &Selection::new().key("p/150"));
    let by_hand = bytes_read(&dir, |s| {
        let id = s.find_key("p/150").unwrap().unwrap();
        s.get(id).unwrap();
    });
    assert_eq!((key_bytes, key_rows), (by_hand, by_hand));
    let (_, range_bytes, range_rows) = selected(&dir, &Selection::new().ids(150..=152));
    let by_hand = bytes_read(&dir, |s| {
        for id in 150..=152 {
            s.get(DocId(id)).unwrap();
        }
    });
    assert_eq!((range_bytes, range_rows), (by_hand, by_hand));
    assert!(
        key_bytes * 20 < all_bytes,
        "key: {key_bytes} bytes, all: {all_bytes}"
    );
    assert!(
        range_bytes * 20 < all_bytes,
        "range: {range_bytes} bytes, all: {all_bytes}"
    );
    let (_, category_bytes, _) = selected(&dir, &Selection::new().category("c1"));
    assert!(
        category_bytes * 10 > all_bytes * 9,
        "category: {category_bytes}, all: {all_bytes}"
    );
}

/// A selection that reads the store reads a document's own record only
/// when what the index says (its id, its node counts) does not rule it out,
/// and its inputs and outputs only when it is selected. Shown by damage: a
/// flipped bit in a record a selection has no need of leaves it working,
/// while a dump of everything finds the damage.
#[test]
fn a_scanning_selection_reads_only_the_records_of_what_it_selects() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    selection_store(&dir, 300);
    let want = |sel: &Selection| selected(&dir, sel).0;
    let missing = want(&Selection::new().missing_output());
    let easy = want(&Selection::new().category("c0"));
    let damage = |doc: u64, kind: &str| {
        let s = ReadOnlyStore::open(big_segments(&dir)).unwrap();
        let mut at = Vec::new();
        s.records(&mut |r| {
            if r.doc == doc && r.kind == kind {
                at.push((r.segment.clone(), r.offset));
            }
            Ok(())
        })
        .unwrap();
        drop(s);
        assert_eq!(at.len(), 1, "{at:?}");
        let path = dir.join(&at[0].0);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at[0].1 as usize + 40] ^= 0x10;
        std::fs::write(&path, bytes).unwrap();
    };
    let whole_fails = || {
        let s = ReadOnlyStore::open(big_segments(&dir)).unwrap();
        let whole = s.dump(&mut |_| {}, &mut |_| Ok(()));
        assert!(matches!(whole, Err(Error::Corrupt { .. })), "{whole:?}");
    };
    // The input of document 8 (every output, category c2): read by neither.
    damage(8, "input-put");
    whole_fails();
    assert_eq!(want(&Selection::new().missing_output()), missing);
    assert_eq!(want(&Selection::new().category("c0")), easy);
    // Document 7's own record (every output): the category is in it, so
    // only "a node without an output" can do without it.
    damage(7, "doc-put");
    assert_eq!(want(&Selection::new().missing_output()), missing);
}

/// Kept ids leave room above them, in the library (the CLI and Python
/// load through it): `Ids::Keep` refuses an id within `ID_HEADROOM` of the
/// highest, document, node and high-water mark alike, and writes nothing;
/// `Ids::KeepHigh` keeps it.
#[test]
fn kept_ids_leave_room_above_them_unless_told() {
    use stratum::engine::{ID_HEADROOM, MAX_ID};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Store::open(opts(dir)).unwrap();
    s.create_doc(&NewDoc::default()).unwrap();
    drop(s);
    let files = snapshot(dir);
    let high = MAX_ID - ID_HEADROOM + 1;
    let lines = [
        format!(r#"{{"id":{high},"body":"x"}}"#),
        format!(r#"{{"id":5,"body":"x","inputs":[{{"node":{high},"input":1}}]}}"#),
        format!(r#"{{"id":5,"body":"x","node_high_water":{high}}}"#),
    ];
    let mut s = Store::open(opts(dir)).unwrap();
    for line in &lines {
        let parsed = Document::from_json(line).unwrap();
        assert!(
            matches!(Ids::Keep.check(&parsed), Err(Error::IdTooHigh { .. })),
            "{line}"
        );
        let e = s.load_doc(&parsed, Ids::Keep).unwrap_err();
        assert!(
            matches!(e, Error::IdTooHigh { id, .. } if id == high),
            "{line}: {e}"
        );
        assert!(Ids::KeepHigh.check(&parsed).is_ok() && Ids::Assign.check(&parsed).is_ok());
    }
    let e = s.reserve_doc_ids(DocId(high), Ids::Keep).unwrap_err();
    assert!(matches!(e, Error::IdTooHigh { .. }), "{e}");
    drop(s);
    assert!(snapshot(dir) == files, "a refused id wrote something");

    let mut s = Store::open(opts(dir)).unwrap();
    let below = Document::from_json(&format!(r#"{{"id":{},"body":"x"}}"#, high - 1)).unwrap();
    assert_eq!(s.load_doc(&below, Ids::Keep).unwrap(), DocId(high - 1));
    let parsed = Document::from_json(&lines[0]).unwrap();
    assert_eq!(s.load_doc(&parsed, Ids::KeepHigh).unwrap(), DocId(high));
}
