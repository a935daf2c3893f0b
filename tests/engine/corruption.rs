//! Damaged files (reliability guide T14, T15, T17), at library level on the
//! in-memory [`CrashFs`].
//!
//! A small store (one sealed segment with its index, an active segment) is
//! damaged in every way of two kinds: every file truncated at every byte
//! offset, and every single bit of every file flipped. For each damaged copy:
//!
//! - `verify` must report damage, except where the damage is
//!   indistinguishable from an interrupted append (a cut of `active.seg`
//!   at a record boundary, which is legal and silent, or inside its last
//!   record, which is a torn tail and a notice);
//! - `Store::open` (read and write) followed by `dump` and `get` of every id
//!   must never return a value that was not written: `dump` must equal the
//!   store's state after some prefix of its history, each `get` some version
//!   the document had. Errors are fine; panics are not.
//!
//! Then records and headers with valid checksums but hostile contents
//! (lengths, ids, kinds, counts, nesting) must give errors, never a panic or
//! an allocation sized by a number read from disk.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::model::{self, Model, Op};
use stratum::engine::format::{
    self, FLAG_BATCH, FLAG_HAS_OUTPUT, INDEX_BLOCK_LEN, INDEX_HEADER_LEN, IndexEntry, IndexHeader,
    Kind, MAX_PAYLOAD, SEG_FLAG_COMPACTED, SEGMENT_HEADER_LEN, SealPayload, SegmentHeader,
};
use stratum::engine::{ProblemKind, verify};
use stratum::sim::{CrashFs, State};
use stratum::{DocId, DocPatch, Document, Json, NewDoc, NodeId, Options, ReadOnlyStore, Store};

// ---------------------------------------------------------------------------
// Allocation tracking: the largest single allocation made by this thread.

struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: allocations during thread teardown must not panic.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: forwards every call to `System` unchanged; only records sizes.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f` and returns the largest single allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

/// No single allocation may exceed the largest record the format allows
/// (plus its header and some slack): anything larger was sized by a number
/// read from disk.
const ALLOCATION_CAP: usize = MAX_PAYLOAD as usize + (1 << 20);

// ---------------------------------------------------------------------------
// The fixture

const DIR: &str = "/store";
const SEGMENT_SIZE: u64 = 1024;

fn options(fs: &CrashFs) -> Options {
    Options {
        vfs: Arc::new(fs.clone()),
        segment_size: SEGMENT_SIZE,
        ..Options::new(DIR)
    }
}

fn j(s: &str) -> Json {
    Json::parse(s).expect("valid JSON")
}

fn new_doc(cat: Option<&str>, body: &[u8]) -> NewDoc {
    NewDoc {
        category: cat.map(Into::into),
        version: None,
        body: body.to_vec(),
        ..NewDoc::default()
    }
}

struct Fixture {
    state: State,
    /// The logical state after each operation (`history[0]` is empty).
    history: Vec<Model>,
    /// Every version each document id ever had.
    versions: BTreeMap<u64, Vec<Document>>,
    /// Offsets in `active.seg` where a record ends (and 40, where the first
    /// begins).
    active_boundaries: BTreeSet<u64>,
    /// Offset of the last record of `active.seg`.
    active_last_record: u64,
    /// The store's files by name.
    files: BTreeMap<String, Vec<u8>>,
}

/// One sealed segment with its index, and an active segment holding single
/// records and a batch.
fn fixture() -> Fixture {
    let fs = CrashFs::new();
    let mut store = Store::open(options(&fs)).expect("create");
    let mut model = Model::default();
    let mut history = vec![model.clone()];
    let mut run = |store: &mut Store, op: Op, history: &mut Vec<Model>| {
        model::exec(store, &mut model, &op).expect("fixture write");
        history.push(model.clone());
    };
    let patch = DocPatch {
        version: Some(Some("2".into())),
        ..DocPatch::default()
    };
    let sealed_part = [
        Op::Create(new_doc(Some("easy"), b"<p>first</p>")),
        Op::AddInput(1, j("[1, 2]"), Some(j("3"))),
        Op::AddInput(1, j("{\"a\": 1.50}"), None),
        Op::SetOutput(1, 2, j("\"x\"")),
        Op::Create(new_doc(None, &[0xff, 0x00, 0x80])),
        Op::Update(1, patch),
        Op::DeleteInput(1, 1),
        Op::Create(new_doc(Some("hard"), &[b'b'; 200])),
        Op::AddInput(3, j("[true, null]"), Some(j("[]"))),
        Op::DeleteDoc(2),
        Op::AddInput(3, j("7"), None),
    ];
    for op in sealed_part {
        run(&mut store, op, &mut history);
    }
    // Fill the segment until it is sealed.
    while !fs
        .names(Path::new(DIR))
        .iter()
        .any(|n| n == "seg_000001.seg")
    {
        run(
            &mut store,
            Op::AddInput(1, j("[\"filler\"]"), None),
            &mut history,
        );
    }
    // From here on, the active segment.
    run(
        &mut store,
        Op::Create(new_doc(Some("late"), b"in the active segment")),
        &mut history,
    );
    run(
        &mut store,
        Op::AddInput(4, j("[\"a\"]"), Some(j("1"))),
        &mut history,
    );
    let mut scratch = history.last().cloned().unwrap_or_default();
    store
        .atomic(|s| {
            model::exec(s, &mut scratch, &Op::SetOutput(3, 2, j("\"batched\"")))?;
            model::exec(s, &mut scratch, &Op::Create(new_doc(None, b"batched doc")))
        })
        .expect("batch");
    history.push(scratch.clone());
    let mut model = scratch;
    model::exec(&mut store, &mut model, &Op::DeleteInput(4, 1)).expect("write");
    history.push(model.clone());
    model::exec(&mut store, &mut model, &Op::AddInput(3, j("8"), None)).expect("write");
    history.push(model);

    let mut boundaries = BTreeSet::from([SEGMENT_HEADER_LEN as u64]);
    let mut last = 0;
    store
        .records(&mut |r| {
            if r.segment == format::ACTIVE_NAME {
                boundaries.insert(r.offset + r.size);
                last = last.max(r.offset);
            }
            Ok(())
        })
        .expect("records");
    drop(store);

    let state = fs.state();
    let files: BTreeMap<String, Vec<u8>> = state
        .files()
        .into_iter()
        .filter_map(|(p, b)| Some((p.file_name()?.to_str()?.to_owned(), b)))
        .collect();
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "LOCK",
            "MANIFEST",
            "active.seg",
            "seg_000001.idx",
            "seg_000001.seg"
        ],
        "fixture layout"
    );
    assert!(
        boundaries.len() >= 6,
        "active segment holds records: {boundaries:?}"
    );
    let mut versions: BTreeMap<u64, Vec<Document>> = BTreeMap::new();
    for m in &history {
        for d in m.documents() {
            let v = versions.entry(d.id.0).or_default();
            if !v.contains(&d) {
                v.push(d);
            }
        }
    }
    Fixture {
        state,
        history,
        versions,
        active_boundaries: boundaries,
        active_last_record: last,
        files,
    }
}

// ---------------------------------------------------------------------------
// Checking one damaged copy

/// What `verify` said about a damaged store.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    Damage,
    /// Notices only.
    Notice,
    Clean,
}

/// Boots a copy of the fixture with `name` replaced by `bytes`, runs
/// `verify`, then opens it (read, then write) and reads everything. Returns
/// the verdict, or what went wrong (a wrong value, a panic).
fn examine(fx: &Fixture, name: &str, bytes: &[u8]) -> Result<Verdict, String> {
    let mut state = fx.state.clone();
    state.put_file(&Path::new(DIR).join(name), bytes);
    let fs = CrashFs::from_state(state);
    let opts = options(&fs);
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<Verdict, String> {
        let verdict = match verify(&opts, &mut |_| {}) {
            Ok(r) if r.problems.iter().any(|p| p.kind == ProblemKind::Damage) => Verdict::Damage,
            Ok(r) if !r.problems.is_empty() => Verdict::Notice,
            Ok(_) => Verdict::Clean,
            Err(stratum::Error::Corrupt { .. } | stratum::Error::UnsupportedVersion { .. }) => {
                Verdict::Damage
            }
            Err(e) => return Err(format!("verify failed: {e}")),
        };
        // Read-only and read-write opens, in that order, each dropped
        // before the next takes its lock.
        let check = |mode: &str, store: &Store| -> Result<(), String> {
            if let Ok(docs) = model::dump(store) {
                let known = fx.history.iter().any(|m| m.diff(&docs).is_empty());
                if !known {
                    return Err(format!(
                        "{mode} open: dump is no state the store ever had: {:?}",
                        fx.history.last().map(|m| m.diff(&docs))
                    ));
                }
                if name.ends_with(".idx")
                    && fx.history.last().is_some_and(|m| !m.diff(&docs).is_empty())
                {
                    return Err(format!("{mode} open: a damaged index changed the dump"));
                }
            }
            let top = fx.versions.keys().max().copied().unwrap_or(0);
            for id in 1..=top + 1 {
                if let Ok(d) = store.get(DocId(id)) {
                    let written = fx.versions.get(&id).is_some_and(|v| v.contains(&d));
                    if !written {
                        return Err(format!("{mode} open: get {id} returned {}", d.to_json()));
                    }
                }
            }
            Ok(())
        };
        if let Ok(store) = ReadOnlyStore::open(opts.clone()) {
            check("read-only", &store)?;
        }
        if let Ok(store) = Store::open(opts.clone()) {
            check("read-write", &store)?;
        }
        Ok(verdict)
    }));
    outcome.unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        Err(format!("panic: {msg}"))
    })
}

/// How an attacked store is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Read,
    Write,
}

/// A store opened as a [`Mode`] says: reads go through either handle,
/// writes only through the read-write one.
enum Opened {
    Read(ReadOnlyStore),
    Write(Store),
}

impl Opened {
    fn open(opts: Options, mode: Mode) -> stratum::Result<Opened> {
        Ok(match mode {
            Mode::Read => Opened::Read(ReadOnlyStore::open(opts)?),
            Mode::Write => Opened::Write(Store::open(opts)?),
        })
    }
}

impl std::ops::Deref for Opened {
    type Target = Store;

    fn deref(&self) -> &Store {
        match self {
            Opened::Read(s) => s,
            Opened::Write(s) => s,
        }
    }
}

/// One damaged copy to examine.
#[derive(Clone, Debug)]
enum Damage {
    Truncate(u64),
    Flip(u64),
}

#[derive(Default)]
struct Counts {
    cases: AtomicUsize,
    detected: AtomicUsize,
    legal_cuts: AtomicUsize,
    torn_tail_notices: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Counts {
    fn fail(&self, what: String) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(what);
    }
}

/// Examines `cases` on all cores and classifies each verdict.
fn sweep(fx: &Fixture, cases: Vec<(String, Damage)>) -> Counts {
    let counts = Counts::default();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((name, damage)) = cases.get(i) else {
                        break;
                    };
                    classify(fx, name, damage, &counts);
                }
            });
        }
    });
    counts
}

fn classify(fx: &Fixture, name: &str, damage: &Damage, counts: &Counts) {
    let original = &fx.files[name];
    let mut bytes = original.clone();
    match damage {
        Damage::Truncate(at) => bytes.truncate(*at as usize),
        Damage::Flip(bit) => bytes[(*bit / 8) as usize] ^= 1 << (bit % 8),
    }
    counts.cases.fetch_add(1, Ordering::Relaxed);
    let verdict = match examine(fx, name, &bytes) {
        Ok(v) => v,
        Err(e) => return counts.fail(format!("{name} {damage:?}: {e}")),
    };
    let active = name == format::ACTIVE_NAME;
    let expected_ok = match (damage, verdict.clone()) {
        (_, Verdict::Damage) => {
            counts.detected.fetch_add(1, Ordering::Relaxed);
            // A cut at a record boundary leaves a valid, shorter log.
            !(active && matches!(damage, Damage::Truncate(at) if fx.active_boundaries.contains(at)))
        }
        (Damage::Truncate(at), Verdict::Clean) if active && fx.active_boundaries.contains(at) => {
            counts.legal_cuts.fetch_add(1, Ordering::Relaxed);
            true
        }
        // A cut inside a record is what an interrupted append leaves.
        (Damage::Truncate(at), Verdict::Notice) if active && *at >= SEGMENT_HEADER_LEN as u64 => {
            counts.torn_tail_notices.fetch_add(1, Ordering::Relaxed);
            true
        }
        // A flip that makes the last record's length run past the end of
        // the file leaves exactly the bytes an interrupted append of a
        // longer record would: no reader can tell them apart.
        (Damage::Flip(bit), Verdict::Notice)
            if active
                && (fx.active_last_record + 4..fx.active_last_record + 8).contains(&(bit / 8)) =>
        {
            counts.torn_tail_notices.fetch_add(1, Ordering::Relaxed);
            true
        }
        (Damage::Truncate(0), Verdict::Notice) if active => {
            counts.torn_tail_notices.fetch_add(1, Ordering::Relaxed);
            true
        }
        _ => false,
    };
    if !expected_ok {
        counts.fail(format!("{name} {damage:?}: verify said {verdict:?}"));
    }
}

fn report(what: &str, counts: &Counts) -> Vec<String> {
    let failures = std::mem::take(&mut *counts.failures.lock().unwrap_or_else(|e| e.into_inner()));
    eprintln!(
        "{what}: {} cases, {} reported as damage, {} legal cuts at a record boundary, \
         {} torn-tail notices, {} failures",
        counts.cases.load(Ordering::Relaxed),
        counts.detected.load(Ordering::Relaxed),
        counts.legal_cuts.load(Ordering::Relaxed),
        counts.torn_tail_notices.load(Ordering::Relaxed),
        failures.len()
    );
    for f in failures.iter().take(200) {
        eprintln!("  {f}");
    }
    failures
}

#[test]
fn truncation_at_every_offset_of_every_file() {
    let fx = fixture();
    let mut cases = Vec::new();
    for (name, bytes) in &fx.files {
        for at in 0..bytes.len() as u64 {
            cases.push((name.clone(), Damage::Truncate(at)));
        }
    }
    let total: usize = fx.files.values().map(Vec::len).sum();
    let counts = sweep(&fx, cases);
    let failures = report("truncation", &counts);
    assert_eq!(counts.cases.load(Ordering::Relaxed), total);
    assert_eq!(failures.len(), 0, "first: {}", failures[0]);
}

#[test]

fn every_single_bit_flip_of_every_file() {
    let fx = fixture();
    let mut cases = Vec::new();
    for (name, bytes) in &fx.files {
        for bit in 0..bytes.len() as u64 * 8 {
            cases.push((name.clone(), Damage::Flip(bit)));
        }
    }
    let total: usize = fx.files.values().map(Vec::len).sum();
    let counts = sweep(&fx, cases);
    let failures = report("bit flips", &counts);
    assert_eq!(counts.cases.load(Ordering::Relaxed), total * 8);
    assert_eq!(failures.len(), 0, "first: {}", failures[0]);
}

// ---------------------------------------------------------------------------
// Hostile contents under valid checksums (T17)

/// A record with a valid CRC.
fn rec(seq: u64, kind: Kind, flags: u8, doc: u64, node: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    format::encode_record(&mut out, seq, kind, flags, doc, node, payload, &[]);
    out
}

/// A record whose header fields are patched after encoding, CRC recomputed
/// over the bytes present.
fn patched(mut r: Vec<u8>, at: usize, bytes: &[u8]) -> Vec<u8> {
    r[at..at + bytes.len()].copy_from_slice(bytes);
    let crc = crc32(&r[4..]);
    r[..4].copy_from_slice(&crc.to_le_bytes());
    r
}

/// CRC-32 (IEEE), bit by bit: the test must not share the engine's code.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn doc_payload(node_hwm: u64, body: &[u8]) -> Vec<u8> {
    let mut p = format::encode_doc_prefix(&format::DocFields {
        node_hwm,
        ..format::DocFields::default()
    })
    .0;
    p.extend_from_slice(body);
    p
}

fn input_payload(input: &str) -> Vec<u8> {
    format::encode_input(input, None, None).0
}

fn segment(number: u64, flags: u16, gen_base: u64, gen_count: u32, records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = SegmentHeader {
        version: format::FORMAT_V1,
        store_id: 0,
        flags,
        number,
        gen_base,
        gen_count,
    }
    .encode()
    .to_vec();
    for r in records {
        out.extend_from_slice(r);
    }
    out
}

fn active(records: &[Vec<u8>]) -> Files {
    vec![("active.seg".into(), segment(1, 0, 0, 0, records))]
}

fn seal(seq: u64, records: u64, max_seq: u64, doc_hwm: u64) -> Vec<u8> {
    let p = SealPayload {
        records,
        max_seq,
        doc_hwm,
    };
    rec(seq, Kind::Seal, 0, 0, 0, &p.encode())
}

/// The fixture's files with `name` replaced.
fn fixture_with(fx: &Fixture, name: &str, bytes: Vec<u8>) -> Files {
    let mut files: BTreeMap<String, Vec<u8>> = fx.files.clone();
    files.insert(name.into(), bytes);
    files.into_iter().collect()
}

/// The fixture's index with its header and first block rewritten by `f`,
/// checksums recomputed.
fn index_with(fx: &Fixture, f: impl FnOnce(&mut IndexHeader, &mut Vec<IndexEntry>)) -> Vec<u8> {
    let idx = &fx.files["seg_000001.idx"];
    let seg = &fx.files["seg_000001.seg"];
    let store_id = u64::from_le_bytes(seg[24..32].try_into().expect("store id"));
    let mut header = IndexHeader::decode(idx, store_id).expect("fixture index header");
    let start = INDEX_HEADER_LEN;
    let mut entries = format::decode_block(&idx[start..start + INDEX_BLOCK_LEN]).expect("block");
    f(&mut header, &mut entries);
    let mut out = header.encode().to_vec();
    out.extend_from_slice(&format::encode_block(&entries));
    out.extend_from_slice(&idx[start + INDEX_BLOCK_LEN..]);
    out
}

/// Every hostile case: a name and the store's files.
/// A store's files: names and bytes.
type Files = Vec<(String, Vec<u8>)>;

fn hostile_cases(fx: &Fixture) -> Vec<(&'static str, Files)> {
    let d1 = rec(1, Kind::DocPut, 0, 1, 0, &doc_payload(0, b"one"));
    let small = rec(2, Kind::OutputPut, 0, 1, 1, b"1");
    let len_at = 4;
    let mut cases: Vec<(&'static str, Files)> = vec![
        (
            "payload length over the limit",
            active(&[
                d1.clone(),
                patched(small.clone(), len_at, &(MAX_PAYLOAD + 1).to_le_bytes()),
            ]),
        ),
        (
            "payload length 2^32-1",
            active(&[
                d1.clone(),
                patched(small.clone(), len_at, &u32::MAX.to_le_bytes()),
            ]),
        ),
        (
            "payload length at the limit in a tiny file",
            active(&[
                d1.clone(),
                patched(small.clone(), len_at, &MAX_PAYLOAD.to_le_bytes()),
            ]),
        ),
        (
            "payload length one past the end of the file",
            active(&[
                d1.clone(),
                patched(small.clone(), len_at, &2u32.to_le_bytes()),
            ]),
        ),
        (
            "payload length past the end, then a valid record",
            active(&[
                d1.clone(),
                patched(small.clone(), len_at, &1000u32.to_le_bytes()),
                rec(3, Kind::DocPut, 0, 2, 0, &doc_payload(0, &[b'z'; 1200])),
            ]),
        ),
    ];
    for kind in [0u8, 8, 0x7f, 0xff] {
        cases.push((
            "unknown kind",
            active(&[d1.clone(), patched(small.clone(), 16, &[kind])]),
        ));
    }
    cases.extend([
        (
            "doc id 0",
            active(&[rec(1, Kind::DocPut, 0, 0, 0, &doc_payload(0, b"x"))]),
        ),
        (
            "node id 0",
            active(&[
                d1.clone(),
                rec(2, Kind::InputPut, 0, 1, 0, &input_payload("1")),
            ]),
        ),
        (
            "doc id 2^64-1",
            active(&[rec(1, Kind::DocPut, 0, u64::MAX, 0, &doc_payload(0, b"x"))]),
        ),
        (
            "node id 2^64-1",
            active(&[
                d1.clone(),
                rec(2, Kind::InputPut, 0, 1, u64::MAX, &input_payload("1")),
            ]),
        ),
        (
            "node high-water mark 2^64-1",
            active(&[rec(1, Kind::DocPut, 0, 1, 0, &doc_payload(u64::MAX, b"x"))]),
        ),
        (
            "sequence number 2^64-1",
            active(&[rec(u64::MAX, Kind::DocPut, 0, 1, 0, &doc_payload(0, b"x"))]),
        ),
        (
            "sequence number 0",
            active(&[rec(0, Kind::DocPut, 0, 1, 0, &doc_payload(0, b"x"))]),
        ),
        (
            "sequence going backwards",
            active(&[
                rec(5, Kind::DocPut, 0, 1, 0, &doc_payload(0, b"x")),
                rec(3, Kind::DocPut, 0, 2, 0, &doc_payload(0, b"y")),
                rec(6, Kind::DocPut, 0, 3, 0, &doc_payload(0, b"z")),
            ]),
        ),
        (
            "duplicate sequence number, other content",
            active(&[
                rec(1, Kind::DocPut, 0, 1, 0, &doc_payload(0, b"x")),
                rec(1, Kind::DocPut, 0, 1, 0, &doc_payload(0, b"evil")),
                rec(2, Kind::DocPut, 0, 2, 0, &doc_payload(0, b"z")),
            ]),
        ),
        (
            "doc payload shorter than its fixed part",
            active(&[rec(1, Kind::DocPut, 0, 1, 0, b"abc")]),
        ),
        (
            "category length past the payload",
            active(&[{
                let mut p = doc_payload(0, b"x");
                p[8..12].copy_from_slice(&0xffff_fffeu32.to_le_bytes());
                rec(1, Kind::DocPut, 0, 1, 0, &p)
            }]),
        ),
        (
            "input length past the payload",
            active(&[
                d1.clone(),
                rec(2, Kind::InputPut, 0, 1, 1, &{
                    let mut p = input_payload("1");
                    p[..4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
                    p
                }),
            ]),
        ),
        (
            "input value not UTF-8",
            active(&[
                d1.clone(),
                rec(2, Kind::InputPut, 0, 1, 1, &{
                    let mut p = 2u32.to_le_bytes().to_vec();
                    p.extend_from_slice(&[0xc3, 0x28]);
                    p
                }),
            ]),
        ),
        (
            "input value not JSON",
            active(&[
                d1.clone(),
                rec(2, Kind::InputPut, 0, 1, 1, &input_payload("[[\"unclosed")),
            ]),
        ),
        (
            "input value empty",
            active(&[
                d1.clone(),
                rec(2, Kind::InputPut, 0, 1, 1, &input_payload("")),
            ]),
        ),
        (
            "output flag on an output record",
            active(&[d1.clone(), patched(small.clone(), 17, &[FLAG_HAS_OUTPUT])]),
        ),
        (
            "commit without a batch",
            active(&[
                d1.clone(),
                rec(2, Kind::Commit, 0, 0, 0, &1u64.to_le_bytes()),
            ]),
        ),
        (
            "commit counting more records than its batch",
            active(&[
                d1.clone(),
                rec(2, Kind::DocPut, FLAG_BATCH, 2, 0, &doc_payload(0, b"b")),
                rec(3, Kind::Commit, 0, 0, 0, &u64::MAX.to_le_bytes()),
            ]),
        ),
        (
            "commit with a short payload",
            active(&[
                d1.clone(),
                rec(2, Kind::DocPut, FLAG_BATCH, 2, 0, &doc_payload(0, b"b")),
                rec(3, Kind::Commit, 0, 0, 0, b"\x01"),
            ]),
        ),
        (
            "seal footer in the middle of the active segment",
            active(&[
                d1.clone(),
                seal(2, 1, 2, 1),
                rec(3, Kind::DocPut, 0, 2, 0, &doc_payload(0, b"after")),
            ]),
        ),
        (
            "seal footer counting 2^64-1 records",
            active(&[d1.clone(), seal(2, u64::MAX, 2, 1)]),
        ),
        (
            "seal footer with doc high-water mark 2^64-1",
            active(&[d1.clone(), seal(2, 1, 2, u64::MAX)]),
        ),
        (
            "sealed segment numbered 2^64-1",
            vec![(
                format::segment_name(u64::MAX),
                segment(u64::MAX, 0, 0, 0, &[d1.clone(), seal(2, 1, 2, 1)]),
            )],
        ),
        (
            "compaction generation based at 2^64-1",
            vec![(
                format::segment_name(1),
                segment(
                    1,
                    SEG_FLAG_COMPACTED,
                    u64::MAX,
                    2,
                    &[d1.clone(), seal(2, 1, 2, 1)],
                ),
            )],
        ),
        (
            "compaction generation of 2^32-1 members",
            vec![(
                format::segment_name(1),
                segment(
                    1,
                    SEG_FLAG_COMPACTED,
                    1,
                    u32::MAX,
                    &[d1.clone(), seal(2, 1, 2, 1)],
                ),
            )],
        ),
    ]);
    let depth = 8000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    cases.push((
        "input value nested 8,000 deep",
        active(&[
            d1.clone(),
            rec(2, Kind::InputPut, 0, 1, 1, &input_payload(&nested)),
        ]),
    ));
    cases.extend([
        (
            "index claiming 2^64-1 entries",
            fixture_with(
                fx,
                "seg_000001.idx",
                index_with(fx, |h, _| h.entries = u64::MAX),
            ),
        ),
        (
            "index entry of length 2^32-1",
            fixture_with(
                fx,
                "seg_000001.idx",
                index_with(fx, |_, e| {
                    for x in e.iter_mut() {
                        x.len = u32::MAX;
                    }
                }),
            ),
        ),
        (
            "index entry at offset 2^64-1",
            fixture_with(
                fx,
                "seg_000001.idx",
                index_with(fx, |_, e| {
                    for x in e.iter_mut() {
                        x.offset = u64::MAX - 3;
                    }
                }),
            ),
        ),
        (
            "index entries out of order",
            fixture_with(fx, "seg_000001.idx", index_with(fx, |_, e| e.reverse())),
        ),
        (
            "index entry pointing at another record",
            fixture_with(
                fx,
                "seg_000001.idx",
                index_with(fx, |_, e| {
                    let first = e[0].offset;
                    for x in e.iter_mut() {
                        x.offset = first;
                    }
                }),
            ),
        ),
    ]);
    cases
}

/// Runs every read and write on a store made of `files`; returns a one-line
/// summary, or the broken rule.
fn attack(files: &[(String, Vec<u8>)]) -> Result<String, String> {
    let mut state = State::default();
    state.put_file(&Path::new(DIR).join("LOCK"), b"");
    for (name, bytes) in files {
        state.put_file(&Path::new(DIR).join(name), bytes);
    }
    // Every document id a record with a valid checksum names.
    let mut named_ids: BTreeSet<u64> = BTreeSet::new();
    for (_, bytes) in files {
        let mut at = SEGMENT_HEADER_LEN;
        while let Ok((h, _)) = format::decode_record(bytes.get(at..).unwrap_or_default()) {
            if h.doc != 0 {
                named_ids.insert(h.doc);
            }
            at += h.total_len() as usize;
        }
    }
    let fs = CrashFs::from_state(state);
    let opts = options(&fs);
    let mut summary = Vec::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        largest_allocation(|| -> Result<(), String> {
            let verified_clean = match verify(&opts, &mut |_| {}) {
                Ok(r) => {
                    let damage = r
                        .problems
                        .iter()
                        .filter(|p| p.kind == ProblemKind::Damage)
                        .count();
                    summary.push(format!("verify: {damage} damage"));
                    damage == 0
                }
                Err(e) => {
                    summary.push(format!("verify: {e}"));
                    false
                }
            };
            for mode in [Mode::Read, Mode::Write] {
                let mut store = match Opened::open(opts.clone(), mode) {
                    Ok(s) => s,
                    Err(e) if verified_clean && mode == Mode::Read => {
                        return Err(format!("verify found no damage, but open fails: {e}"));
                    }
                    Err(e) => {
                        summary.push(format!("{mode:?}: {e}"));
                        continue;
                    }
                };
                // Ids the store has shown to exist: a new one must exceed them.
                let mut served: BTreeSet<u64> = BTreeSet::new();
                match model::dump(&store) {
                    Ok(docs) => {
                        summary.push(format!("{mode:?}: dump {} docs", docs.len()));
                        served.extend(docs.iter().map(|d| d.id.0));
                    }
                    Err(e) if verified_clean && mode == Mode::Read => {
                        return Err(format!("verify found no damage, but dump fails: {e}"));
                    }
                    Err(e) => summary.push(format!("{mode:?}: dump {e}")),
                }
                for id in named_ids.iter().copied().chain([1, 2, 3]) {
                    if let Ok(d) = store.get(DocId(id)) {
                        served.insert(id);
                        let json = d.to_json();
                        Json::parse(&json)
                            .map_err(|e| format!("get {id} printed invalid JSON: {e}"))?;
                        for n in &d.inputs {
                            let (_, largest) = largest_allocation(|| n.input.pretty());
                            if largest > 64 * json.len() + (1 << 20) {
                                return Err(format!(
                                    "pretty() of a {}-byte value allocated {largest} bytes at once",
                                    n.input.as_str().len()
                                ));
                            }
                        }
                    }
                    let _ = store.get_node(DocId(id), NodeId(1));
                }
                if let Opened::Write(store) = &mut store {
                    match store.create_doc(&new_doc(None, b"new")) {
                        Ok(id) if served.iter().any(|w| *w >= id.0) => {
                            return Err(format!("create_doc handed out {id} again"));
                        }
                        Ok(id) => summary.push(format!("create {id}")),
                        Err(e) => summary.push(format!("create: {e}")),
                    }
                    for id in served.iter().copied() {
                        if let Err(e) = store.add_input(DocId(id), &j("0"), None) {
                            summary.push(format!("add-input {id}: {e}"));
                        }
                    }
                    let _ = store.compact(&mut |_| {});
                }
            }
            Ok(())
        })
    }));
    match result {
        Err(p) => Err(format!(
            "panic: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        )),
        Ok((Err(e), _)) => Err(e),
        Ok((Ok(()), largest)) if largest > ALLOCATION_CAP => {
            Err(format!("allocated {largest} bytes at once"))
        }
        Ok((Ok(()), _)) => Ok(summary.join("; ").replace("/store/", "")),
    }
}

#[test]
fn hostile_records_with_valid_checksums() {
    let fx = fixture();
    let cases = hostile_cases(&fx);
    let mut failures = Vec::new();
    for (name, files) in &cases {
        match attack(files) {
            Ok(summary) => eprintln!("  ok   {name}: {summary}"),
            Err(e) => {
                eprintln!("  FAIL {name}: {e}");
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    eprintln!(
        "hostile records: {} cases, {} failures",
        cases.len(),
        failures.len()
    );
    assert_eq!(failures.len(), 0, "{failures:#?}");
}

#[test]
fn the_crc_in_this_test_is_the_format_crc() {
    let r = rec(7, Kind::OutputPut, 0, 1, 1, b"1");
    assert_eq!(
        u32::from_le_bytes(r[..4].try_into().unwrap()),
        crc32(&r[4..])
    );
}
