//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the
//! fuzz targets' own bodies (`fuzz/entry.rs`) in a plain `cargo test`, so
//! every input the fuzzers kept, and every crash they found, is checked on
//! each run without nightly or libFuzzer (SQLite's fuzzcheck does the same).
//!
//! `cargo test --test engine fuzz_corpus:: -- --ignored` rewrites the seed files
//! (`seed-*`) from stores built by the engine itself.

#[allow(dead_code)]
#[path = "../../fuzz/entry.rs"]
mod entry;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use stratum::engine::format::{self, Kind, SEGMENT_HEADER_LEN};
use stratum::sim::CrashFs;
use stratum::{DocId, Json, NewDoc, NodeId, Options, Store};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Runs every file of a target's corpus; names the file that fails.
fn replay(target: &str, f: fn(&[u8])) {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus(target))
        .expect("corpus directory")
        .map(|e| e.expect("corpus entry").path())
        .collect();
    paths.sort();
    let mut failures = Vec::new();
    for p in &paths {
        let bytes = std::fs::read(p).expect("corpus file");
        if std::panic::catch_unwind(|| f(&bytes)).is_err() {
            failures.push(p.display().to_string());
        }
    }
    eprintln!(
        "fuzz corpus {target}: {} inputs, {} failures",
        paths.len(),
        failures.len()
    );
    assert!(paths.len() >= 5, "the {target} corpus is missing");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn record_corpus() {
    replay("record", entry::record);
}

#[test]
fn store_corpus() {
    replay("store", entry::store);
}

#[test]
fn index_corpus() {
    replay("index", entry::index);
}

#[test]
fn json_corpus() {
    replay("json", entry::json);
}

#[test]
fn store_inputs_split_into_the_files_they_were_joined_from() {
    let files: Vec<(&str, &[u8])> = vec![("active.seg", b"abc"), ("seg_000001.idx", b"")];
    let joined = entry::join_store(&files);
    assert_eq!(entry::split_store(&joined), files);
    assert!(entry::split_store(&[]).is_empty());
}

// ---------------------------------------------------------------------------
// Seeds

/// The files of the store in `fs`, by name (`LOCK` left out).
fn files_of(fs: &CrashFs) -> Files {
    fs.state()
        .files()
        .into_iter()
        .filter_map(|(p, b)| Some((p.file_name()?.to_str()?.to_owned(), b)))
        .filter(|(n, _)| n != "LOCK")
        .collect()
}

fn join(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    entry::join_store(&refs)
}

/// A store's files: names and bytes.
type Files = Vec<(String, Vec<u8>)>;

/// Stores of several shapes, built by the engine.
fn seed_stores() -> Vec<(&'static str, Files)> {
    let j = |s: &str| Json::parse(s).expect("json");
    let doc = |body: &str| NewDoc {
        category: Some("c".into()),
        version: Some("1".into()),
        body: body.as_bytes().to_vec(),
        ..NewDoc::default()
    };
    let open = |fs: &CrashFs| {
        Store::open(Options {
            vfs: Arc::new(fs.clone()),
            segment_size: 1024,
            ..Options::new("/store")
        })
        .expect("open")
    };
    let mut out = Vec::new();

    let fs = CrashFs::new();
    let mut s = open(&fs);
    let d = s.create_doc(&doc("one")).unwrap();
    let n = s.add_input(d, &j("[1, 2]"), Some(&j("3"))).unwrap();
    s.set_output(d, n, &j("{\"a\": 1.0}")).unwrap();
    drop(s);
    out.push(("small", files_of(&fs)));

    let mut s = open(&fs);
    s.atomic(|s| {
        let d2 = s.create_doc(&doc("batched"))?;
        s.add_input(d2, &j("\"x\""), None)?;
        s.delete_input(d, n)
    })
    .unwrap();
    drop(s);
    out.push(("batch", files_of(&fs)));

    let mut s = open(&fs);
    for i in 0..12 {
        let d = s.create_doc(&doc(&format!("doc {i}"))).unwrap();
        s.add_input(d, &j(&format!("[{i}]")), None).unwrap();
        if i % 3 == 0 {
            s.delete_doc(d).unwrap();
        }
    }
    drop(s);
    out.push(("sealed", files_of(&fs)));

    let mut torn = files_of(&fs);
    for (name, bytes) in &mut torn {
        if name == "active.seg" {
            let cut = bytes.len() - 5;
            bytes.truncate(cut);
        }
    }
    out.push(("torn-tail", torn));

    let mut s = open(&fs);
    s.compact(&mut |_| {}).unwrap();
    s.add_input(DocId(2), &j("true"), None).unwrap();
    s.delete_input(DocId(2), NodeId(1)).unwrap();
    drop(s);
    out.push(("compacted", files_of(&fs)));
    out
}

#[test]
#[ignore = "writes the seed corpus into fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed");
    };
    for (name, files) in seed_stores() {
        write("store", name, &join(&files));
        for (file, bytes) in &files {
            if file.ends_with(".seg") {
                write("record", &format!("{name}-{file}"), bytes);
                let mut at = SEGMENT_HEADER_LEN;
                let mut i = 0;
                while let Ok((h, _)) = format::decode_record(&bytes[at..]) {
                    let end = at + h.total_len() as usize;
                    if i < 8 || h.kind == Kind::Seal || h.kind == Kind::Commit {
                        write("record", &format!("{name}-{file}-{i}"), &bytes[at..end]);
                    }
                    at = end;
                    i += 1;
                }
            }
            if file.ends_with(".idx") {
                write("index", &format!("{name}-{file}"), bytes);
            }
        }
    }
    let idx = entry::index_fixture_file();
    write("index", "fixture", &idx);
    write(
        "index",
        "fixture-header-only",
        &idx[..format::INDEX_HEADER_LEN],
    );
    write(
        "index",
        "fixture-block-only",
        &idx[format::INDEX_HEADER_LEN..],
    );
    write("index", "empty", b"");
    write("record", "zeros", &[0u8; 64]);
    write("store", "empty", b"");
}
