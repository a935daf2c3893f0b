//! A batch larger than the segment size spills into segments of its own,
//! committed by the manifest (docs/FORMAT.md §8.2, src/engine/spill.rs).

use std::fmt::Write as _;

use crate::util::{TestStore, json};

const SEGMENT: u64 = 64 * 1024;
/// A sealed segment's footer (`Seal` record).
const FOOTER: u64 = 60;

/// `n` documents of about 300 bytes each, one per line.
fn lines(n: usize, bad_last: bool) -> String {
    let mut out = String::new();
    for i in 0..n {
        let line = serde_json::json!({
            "body": format!("problem {i} {}", "x".repeat(200)),
            "key": format!("p{i}"),
            "inputs": [{"input": [i, i], "output": i * 2}],
        });
        writeln!(out, "{line}").unwrap();
    }
    if bad_last {
        out.push_str("{\"body\": \"the last line is not JSON\"\n");
    }
    out
}

/// Sizes of the sealed segment files, by name.
fn sealed_sizes(s: &TestStore) -> Vec<(String, u64)> {
    s.snapshot()
        .into_iter()
        .filter(|(name, _)| name.starts_with("seg_") && name.ends_with(".seg"))
        .map(|(name, bytes)| (name, bytes.len() as u64))
        .collect()
}

#[test]
fn a_load_larger_than_the_segment_writes_full_segments_and_keeps_nothing_in_active_seg() {
    let mut s = TestStore::new();
    s.globals = vec!["--segment-size".into(), SEGMENT.to_string()];
    s.ok(&["create-doc", "before the load"]);
    let active_before = s.snapshot()["active.seg"].clone();
    let input = lines(2000, false);
    std::fs::write(s.tmp().join("in.jsonl"), &input).unwrap();
    // Under a descriptor limit far below the number of segments it writes.
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--nofile=64")
        .arg(crate::util::bin())
        .arg("--dir")
        .arg(s.data())
        .args(["--segment-size", &SEGMENT.to_string(), "load", "in.jsonl"])
        .current_dir(s.tmp());
    let (shown, run) = TestStore::run_command(cmd, None);
    crate::util::expect_ok(&shown, &run);
    assert_eq!(String::from_utf8_lossy(&run.stdout).lines().count(), 2000);

    let sizes = sealed_sizes(&s);
    let total: u64 = sizes.iter().map(|(_, n)| n).sum();
    assert!(total > 8 * SEGMENT, "{sizes:?}");
    // Every segment is at most the segment size (plus its footer), and all
    // but the last of the load's are nearly full: the batch is cut into
    // segments, not written as one of {total} bytes.
    for (name, n) in &sizes {
        assert!(*n <= SEGMENT + FOOTER, "{name} is {n} bytes: {sizes:?}");
    }
    let full = sizes.iter().filter(|(_, n)| *n >= SEGMENT - 1024).count();
    assert!(full >= sizes.len() - 2, "{sizes:?}");
    // The document created before is in a sealed segment of its own (the
    // batch would have taken the active segment past the size), nothing of
    // the batch is in active.seg, and no temporary is left.
    let snap = s.snapshot();
    assert_eq!(
        snap["seg_000001.seg"][..active_before.len()],
        active_before[..]
    );
    assert_eq!(snap["active.seg"].len(), 40);
    assert!(
        !snap.keys().any(|k| k.ends_with(".stratum-tmp")),
        "{snap:?}"
    );

    let stats = json(&s.ok(&["stats", "--json"]));
    assert_eq!(stats["documents"], 2001);
    assert_eq!(stats["inputs"], 2000);
    s.ok(&["verify"]);
    let got = json(&s.ok(&["get", "key:p1999"]));
    assert_eq!(got["inputs"][0]["input"], serde_json::json!([1999, 1999]));
    assert_eq!(s.ok(&["dump"]).lines().count(), 2001);
    // Compaction finds no garbage in the full segments: at most the small
    // ones (the document created before, the load's last segment) are
    // worth merging.
    let plan = json(&s.ok(&["compact", "--dry-run", "--json"]));
    let small: Vec<&String> = sizes
        .iter()
        .filter(|(_, n)| *n < SEGMENT / 4)
        .map(|(name, _)| name)
        .collect();
    for name in plan["merge"].as_array().unwrap() {
        assert!(small.iter().any(|s| *s == name), "{plan}");
    }
}

#[test]
fn a_failed_load_after_spilling_leaves_the_store_exactly_as_it_was() {
    let mut s = TestStore::new();
    s.globals = vec!["--segment-size".into(), SEGMENT.to_string()];
    s.ok(&["create-doc", "before the load"]);
    let before = s.snapshot();
    let input = lines(2000, true);
    let (code, err) = s.stdin_fails(&["load", "-"], Some(input.as_bytes()));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("line 2001"), "{err}");
    assert_eq!(s.snapshot(), before);
}

#[test]
fn a_spilled_batch_that_fails_part_way_takes_back_every_file() {
    // `apply` fails at its last operation, after the batch spilled into
    // several segments: the store is as before, and the next write works.
    let mut s = TestStore::new();
    s.globals = vec!["--segment-size".into(), SEGMENT.to_string()];
    s.ok(&["create-doc", "one"]);
    let before = s.snapshot();
    let mut ops = String::new();
    for i in 0..600 {
        let op = serde_json::json!({"op": "create-doc", "body": "b".repeat(400 + i % 7)});
        writeln!(ops, "{op}").unwrap();
    }
    ops.push_str("{\"op\":\"add-input\",\"doc\":99999,\"input\":1}\n");
    let (code, err) = s.stdin_fails(&["apply", "-"], Some(ops.as_bytes()));
    assert_eq!(code, 3, "{err}");
    assert_eq!(s.snapshot(), before);
    assert_eq!(s.ok(&["create-doc", "two"]).trim(), "2");
    s.ok(&["verify"]);
}

/// Two stores with the same files (and so the same store id), a document
/// in each, for two loads to be compared byte for byte.
fn twins() -> (TestStore, TestStore) {
    let mut s = TestStore::new();
    s.globals = vec!["--segment-size".into(), SEGMENT.to_string()];
    s.ok(&["create-doc", "before the load"]);
    let t = twin(&s);
    (s, t)
}

/// A second store with the same files (and so the same store id) as `s`,
/// so that two loads into them can be compared byte for byte.
fn twin(s: &TestStore) -> TestStore {
    let mut t = TestStore::new();
    t.globals.clone_from(&s.globals);
    std::fs::create_dir(t.data()).unwrap();
    for (name, bytes) in s.snapshot() {
        std::fs::write(t.data().join(name), bytes).unwrap();
    }
    t
}

/// `docs` documents of `inputs` small inputs each, one per line, each line
/// followed by `pad` spaces before its closing brace: whitespace that makes
/// the file larger and nothing that is stored.
fn small_inputs(docs: usize, inputs: usize, pad: usize, bad_last: bool) -> String {
    let mut out = String::new();
    for d in 0..docs {
        let chain: Vec<_> = (0..inputs)
            .map(|i| serde_json::json!({"input": d * inputs + i}))
            .collect();
        let line = serde_json::json!({"inputs": chain}).to_string();
        let (open, close) = line.split_at(line.len() - 1);
        writeln!(out, "{open}{}{close}", " ".repeat(pad)).unwrap();
    }
    if bad_last {
        out.push_str("{\"body\": \"the last line is not JSON\"\n");
    }
    out
}

/// Loads `input` from a file into `s`: stdout, or the failure's exit code
/// and stderr.
fn load_file(s: &TestStore, input: &str) -> Result<String, (i32, String)> {
    std::fs::write(s.tmp().join("in.jsonl"), input).unwrap();
    let (shown, run) = s.run(&["load", "in.jsonl"], None);
    if run.code == 0 {
        crate::util::expect_ok(&shown, &run);
        Ok(String::from_utf8(run.stdout).unwrap())
    } else {
        crate::util::expect_failure(&shown, &run);
        Err((run.code, run.stderr))
    }
}

#[test]
fn a_load_told_it_will_spill_writes_the_same_files_as_one_that_spills_late() {
    // The compact file is smaller than a segment, so its load spills only
    // once its records outgrow `active.seg` (copying them out of it); the
    // padded one is larger, so its load writes its own segments from the
    // first record. The stores come out byte for byte the same.
    let (late, ahead) = twins();
    let compact = small_inputs(60, 60, 0, false);
    let padded = small_inputs(60, 60, 400, false);
    assert!((compact.len() as u64) < SEGMENT && padded.len() as u64 > SEGMENT);
    let printed = load_file(&late, &compact).unwrap();
    assert_eq!(load_file(&ahead, &padded).unwrap(), printed);
    assert_eq!(printed.lines().count(), 60);
    let sizes = sealed_sizes(&late);
    assert!(sizes.len() >= 3, "the load spilled: {sizes:?}");
    assert_eq!(ahead.snapshot(), late.snapshot());
    ahead.ok(&["verify"]);
}

#[test]
fn a_load_told_it_will_spill_that_stays_small_is_written_to_active_seg() {
    // The padded file is larger than a segment, its records are not: they
    // end in `active.seg` under a commit record, as the compact file's do.
    let (plain, hinted) = twins();
    let compact = small_inputs(20, 5, 0, false);
    let padded = small_inputs(20, 5, 4000, false);
    assert!(padded.len() as u64 > SEGMENT);
    let printed = load_file(&plain, &compact).unwrap();
    assert_eq!(load_file(&hinted, &padded).unwrap(), printed);
    assert_eq!(hinted.snapshot(), plain.snapshot());
    assert!(sealed_sizes(&hinted).is_empty(), "{:?}", hinted.files());
    let stats = json(&hinted.ok(&["stats", "--json"]));
    assert_eq!(stats["documents"], 21);
    assert_eq!(stats["inputs"], 100);
}

#[test]
fn a_failed_load_from_a_file_leaves_the_store_exactly_as_it_was() {
    // A file is parsed under the lock, so its bad last line is met after
    // the batch wrote: once it spilled (several segments), and once while
    // it was told it would spill but had not outgrown `active.seg` yet.
    // A file of several reader batches (of about 256 KiB: the bad line is
    // parsed by whichever thread has time) too.
    let cases = [
        (60, small_inputs(60, 60, 400, true)),
        (20, small_inputs(20, 5, 4000, true)),
        (2000, lines(2000, true)),
    ];
    for (docs, input) in cases {
        let (s, _) = twins();
        let before = s.snapshot();
        let (code, err) = load_file(&s, &input).unwrap_err();
        assert_eq!(code, 4, "{err}");
        assert!(err.contains(&format!("line {}", docs + 1)), "{err}");
        assert_eq!(s.snapshot(), before, "{docs} documents");
        assert_eq!(s.ok(&["create-doc", "after"]).trim(), "2");
    }
}
