//! The fuzz targets' bodies, shared by the cargo-fuzz binaries in
//! `fuzz/fuzz_targets/` and by `tests/engine/fuzz_corpus.rs`, which replays the
//! committed corpus through them in a plain `cargo test`.
//!
//! Each function takes arbitrary bytes and panics only when a property is
//! broken: a panic inside stratum, a decoded record that does not encode
//! back to the same bytes, a damaged index that changes what a store
//! returns, a store `verify` calls clean that cannot be read, and so on.
//!
//! The in-memory file system comes from the library's `sim` feature, which
//! both including crates turn on.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use stratum::engine::format::{
    self, ENTRIES_PER_BLOCK, INDEX_BLOCK_LEN, INDEX_HEADER_LEN, IndexHeader, Kind, MAX_PAYLOAD,
    RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, SealPayload, SegmentHeader,
};
use stratum::engine::{ProblemKind, verify};
use stratum::sim::{CrashFs, State};
use stratum::{DocId, Document, Json, NewDoc, NodeId, Options, ReadOnlyStore, Store};

const DIR: &str = "/store";

fn options(fs: &CrashFs) -> Options {
    Options {
        vfs: Arc::new(fs.clone()),
        segment_size: 1024,
        ..Options::new(DIR)
    }
}

/// `fuzz_targets/record.rs`: the record, header and payload decoders.
///
/// Properties: no panic; a record that decodes encodes back to exactly its
/// bytes; its payload length is within the limit; a segment header that
/// decodes encodes back to its bytes.
pub fn record(data: &[u8]) {
    let header = format::decode_header(data);
    if let Ok((h, payload)) = format::decode_record(data) {
        assert_eq!(header.as_ref().ok(), Some(&h));
        assert!(h.payload_len <= MAX_PAYLOAD);
        assert_eq!(payload.len(), h.payload_len as usize);
        assert_eq!(h.total_len(), (RECORD_HEADER_LEN + payload.len()) as u64);
        let mut again = Vec::new();
        format::encode_record(
            &mut again,
            h.seq,
            h.kind,
            h.flags,
            h.doc,
            h.node,
            payload,
            &[],
        );
        assert_eq!(
            &again[..],
            &data[..again.len()],
            "re-encoding changed the record"
        );
        let checked = format::check_payload(h.kind, h.flags, payload, true);
        match h.kind {
            Kind::DocPut => {
                let doc = format::decode_doc(payload, h.flags);
                if checked.is_ok() {
                    assert!(doc.is_ok(), "a checked doc payload does not decode");
                }
            }
            Kind::InputPut => {
                if let (Ok(()), Ok((input, _, _))) =
                    (&checked, format::decode_input(payload, h.flags))
                {
                    let text = std::str::from_utf8(input).expect("checked input is UTF-8");
                    Json::parse(text).expect("checked input is JSON");
                }
            }
            Kind::Seal => {
                let _ = SealPayload::decode(payload);
            }
            _ => {}
        }
    }
    if let Ok(h) = SegmentHeader::decode(data) {
        assert_eq!(&h.encode()[..], &data[..SEGMENT_HEADER_LEN]);
    }
}

/// The names `store` gives the files it builds, in the order of the input.
const STORE_FILES: [&str; 6] = [
    "active.seg",
    "seg_000001.seg",
    "seg_000001.idx",
    "seg_000002.seg",
    "active.idx",
    "seg_000003.seg.stratum-tmp",
];

/// Splits fuzz input into a store's files: a byte of presence bits, then
/// for each present file a little-endian u16 length and its bytes (the last
/// file takes what remains when the length runs past the end).
pub fn split_store(data: &[u8]) -> Vec<(&'static str, &[u8])> {
    let Some((&present, mut rest)) = data.split_first() else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for (i, name) in STORE_FILES.iter().enumerate() {
        if present & (1 << i) == 0 {
            continue;
        }
        let len = match rest {
            [a, b, tail @ ..] => {
                rest = tail;
                usize::from(u16::from_le_bytes([*a, *b]))
            }
            _ => 0,
        };
        let (file, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        files.push((*name, file));
    }
    files
}

/// The inverse of [`split_store`], for building seeds.
pub fn join_store(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut present = 0u8;
    let mut body = Vec::new();
    for (i, name) in STORE_FILES.iter().enumerate() {
        if let Some((_, bytes)) = files.iter().find(|(n, _)| n == name) {
            present |= 1 << i;
            let len = u16::try_from(bytes.len()).expect("seed files are under 64 KiB");
            body.extend_from_slice(&len.to_le_bytes());
            body.extend_from_slice(bytes);
        }
    }
    let mut out = vec![present];
    out.extend(body);
    out
}

fn boot(files: &[(&str, &[u8])]) -> CrashFs {
    let mut state = State::default();
    state.put_file(&Path::new(DIR).join("LOCK"), b"");
    for (name, bytes) in files {
        state.put_file(&Path::new(DIR).join(name), bytes);
    }
    CrashFs::from_state(state)
}

fn dump(store: &Store) -> stratum::Result<Vec<Document>> {
    let mut out = Vec::new();
    store.dump(&mut |_| {}, &mut |d| {
        out.push(d.clone());
        Ok(())
    })?;
    Ok(out)
}

/// `fuzz_targets/store.rs`: segment scanning, recovery and reads of a store
/// made from arbitrary files (see [`split_store`]).
///
/// Properties: no panic; a store `verify` finds undamaged opens for reading
/// and dumps; a read open and a write open (recovery) dump the same
/// documents; every document `get` returns is valid JSON; after recovery of
/// an undamaged store, a write and a compaction succeed, keep every
/// document, and leave a store that verifies.
pub fn store(data: &[u8]) {
    let files = split_store(data);
    let fs = boot(&files);
    let opts = options(&fs);
    let clean = match verify(&opts, &mut |_| {}) {
        Ok(r) => r.problems.iter().all(|p| p.kind == ProblemKind::Notice),
        Err(_) => false,
    };
    let read = ReadOnlyStore::open(opts.clone()).map(|s| {
        let d = dump(&s);
        for id in 1..=4 {
            if let Ok(doc) = s.get(DocId(id)) {
                Json::parse(&doc.to_json()).expect("get printed invalid JSON");
            }
            let _ = s.get_node(DocId(id), NodeId(1));
        }
        d
    });
    if clean {
        match &read {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("verify found no damage, but dump fails: {e}"),
            Err(e) => panic!("verify found no damage, but a read open fails: {e}"),
        }
    }
    let Ok(mut store) = Store::open(opts.clone()) else {
        return;
    };
    let written = dump(&store);
    if let (Ok(Ok(r)), Ok(w)) = (&read, &written) {
        assert_eq!(r, w, "a read open and a write open disagree");
    }
    let Ok(before) = written else { return };
    if !clean {
        // Damage a read can survive may still stop a write or compaction:
        // only the absence of panics is required.
        let _ = store.create_doc(&NewDoc::default());
        let _ = store.compact(&mut |_| {});
        return;
    }
    let id = store
        .create_doc(&NewDoc {
            category: None,
            version: None,
            body: b"fuzz".to_vec(),
            ..NewDoc::default()
        })
        .expect("write after recovery of an undamaged store");
    assert!(before.iter().all(|d| d.id < id), "id {id} handed out again");
    store
        .compact(&mut |_| {})
        .expect("compaction of an undamaged store");
    let after = dump(&store).expect("dump after compaction");
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(&after[..before.len()], &before[..]);
    drop(store);
    let report = verify(&opts, &mut |_| {}).expect("verify after compaction");
    assert!(report.is_ok(), "{:?}", report.problems);
}

/// A store with one sealed segment (with its index) and an active segment,
/// and what it holds.
struct IndexFixture {
    files: Vec<(String, Vec<u8>)>,
    docs: Vec<Document>,
}

fn index_fixture() -> &'static IndexFixture {
    static FIXTURE: OnceLock<IndexFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let fs = CrashFs::new();
        let mut s = Store::open(options(&fs)).expect("create");
        let mut doc = 0u64;
        while !fs
            .names(Path::new(DIR))
            .iter()
            .any(|n| n == "seg_000001.idx")
        {
            doc = s
                .create_doc(&NewDoc {
                    category: Some("c".into()),
                    version: None,
                    body: format!("body {doc}").into_bytes(),
                    ..NewDoc::default()
                })
                .expect("create")
                .0;
            let j = Json::parse(&format!("[{doc}]")).expect("json");
            s.add_input(DocId(doc), &j, Some(&j)).expect("input");
        }
        let docs = dump(&s).expect("dump");
        drop(s);
        let files = fs
            .state()
            .files()
            .into_iter()
            .filter_map(|(p, b)| Some((p.file_name()?.to_str()?.to_owned(), b)))
            .collect();
        IndexFixture { files, docs }
    })
}

/// The index file of [`index_fixture`], as seed material.
pub fn index_fixture_file() -> Vec<u8> {
    index_fixture()
        .files
        .iter()
        .find(|(n, _)| n == "seg_000001.idx")
        .map(|(_, b)| b.clone())
        .unwrap_or_default()
}

/// `fuzz_targets/index.rs`: index headers and blocks, alone and as the
/// index file of a valid segment.
///
/// Properties: no panic; a header that decodes encodes back to its bytes;
/// a block that decodes has 1 to 85 entries in key order and round-trips;
/// and whatever the index file holds, a store's reads return exactly what
/// the segment holds or an error: an index is a cache and must never change
/// an answer.
pub fn index(data: &[u8]) {
    if let Some(h) = IndexHeader::decode(data, 0) {
        assert_eq!(&h.encode()[..], &data[..INDEX_HEADER_LEN]);
    }
    for block in [
        data.get(..INDEX_BLOCK_LEN),
        data.get(INDEX_HEADER_LEN..INDEX_HEADER_LEN + INDEX_BLOCK_LEN),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(entries) = format::decode_block(block) {
            assert!((1..=ENTRIES_PER_BLOCK).contains(&entries.len()));
            assert_eq!(
                format::decode_block(&format::encode_block(&entries)),
                Some(entries)
            );
        }
    }
    let fx = index_fixture();
    let files: Vec<(&str, &[u8])> = fx
        .files
        .iter()
        .map(|(n, b)| {
            let bytes: &[u8] = if n == "seg_000001.idx" { data } else { b };
            (n.as_str(), bytes)
        })
        .collect();
    let fs = boot(&files);
    let opts = options(&fs);
    let _ = verify(&opts, &mut |_| {});
    // Read-only and read-write opens, in that order, each dropped before
    // the next takes its lock.
    let check = |mode: &str, store: &Store| {
        if let Ok(docs) = dump(store) {
            assert_eq!(docs, fx.docs, "{mode}: a damaged index changed the dump");
        }
        for want in &fx.docs {
            if let Ok(got) = store.get(want.id) {
                assert_eq!(
                    &got, want,
                    "{mode}: a damaged index changed get {}",
                    want.id
                );
            }
        }
        let past = fx.docs.last().map_or(1, |d| d.id.0 + 1);
        assert!(
            store.get(DocId(past)).is_err(),
            "a damaged index invented a document"
        );
    };
    if let Ok(store) = ReadOnlyStore::open(opts.clone()) {
        check("read-only", &store);
    }
    if let Ok(store) = Store::open(opts.clone()) {
        check("read-write", &store);
    }
}

/// `fuzz_targets/json.rs`: the JSON scanner and the one-pass reader of
/// `load`'s lines, against serde_json.
///
/// Properties: a stored value passes the check exactly when it is UTF-8,
/// serde_json accepts it and it nests at most 128 levels; `Json::parse`
/// accepts what serde_json accepts (less lone surrogates and deeper
/// nesting, with those messages), refuses the rest with serde_json's
/// message, and keeps the text less the whitespace outside strings; a
/// document line the one-pass reader takes, serde_json reads the same.
pub fn json(data: &[u8]) {
    let stored = stratum::json::check_stored_value(data);
    let Ok(text) = std::str::from_utf8(data) else {
        assert_eq!(stored, Err("stored value is not UTF-8".to_owned()));
        return;
    };
    let serde = serde_json::from_str::<serde::de::IgnoredAny>(text);
    let (compact, depth) = compact_and_depth(text);
    let within = depth <= stratum::json::MAX_DEPTH;
    assert_eq!(stored.is_ok(), serde.is_ok() && within, "check of {text:?}");
    match (Json::parse(text), &serde) {
        (Ok(j), Ok(_)) => assert_eq!(j.as_str(), compact, "compact {text:?}"),
        (Err(e), Err(s)) => assert_eq!(e.to_string(), format!("invalid JSON value: {s}")),
        (Err(e), Ok(_)) => {
            let e = e.to_string();
            let why = if within {
                "lone surrogate"
            } else {
                "nested deeper"
            };
            assert!(e.contains(why), "{text:?}: {e}");
        }
        (Ok(_), Err(s)) => panic!("{text:?} parsed; serde_json says {s}"),
    }
    let (fast, slow) = stratum::model::read_line_both_ways(text);
    if let Some(doc) = fast {
        let slow = slow.unwrap_or_else(|e| panic!("{text:?} read; serde_json says {e}"));
        assert_eq!(format!("{doc:?}"), format!("{slow:?}"), "line {text:?}");
    }
}

/// `text` without the whitespace outside strings, and its deepest nesting
/// (meaningful for valid JSON only).
fn compact_and_depth(text: &str) -> (String, usize) {
    let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
    let (mut depth, mut deepest) = (0usize, 0usize);
    for c in text.chars() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else {
            match c {
                ' ' | '\t' | '\n' | '\r' => continue,
                '"' => in_string = true,
                '[' | '{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        out.push(c);
    }
    (out, deepest)
}
