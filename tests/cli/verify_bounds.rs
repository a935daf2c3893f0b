//! `verify` on a store too big to hold: its memory stays flat (issue 8,
//! item 3), and its cross-file checks, which now merge the files' entries
//! a block at a time, still find what they found.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::{TestStore, bin, json, require};

/// Peak resident set of one run of the binary, in KiB, and its exit code,
/// by GNU time (`%M`, the kernel's accounting of that process alone); its
/// stdout is left in `<tmp>/stdout`. Not `wait4` from here: a child
/// spawned by this large, many-threaded test process inherits its peak at
/// `exec`, GNU time's child only GNU time's.
pub fn peak_rss_kib(s: &TestStore, args: &[&str]) -> (u64, i32) {
    require("/usr/bin/time", "time");
    let out = s.tmp().join("time.txt");
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&out)
        .arg(bin())
        .arg("--dir")
        .arg(s.data())
        .args(args)
        .env_remove("STRATUM_DIR")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(s.tmp().join("stdout")).expect("create stdout file"))
        .stderr(Stdio::null())
        .status()
        .expect("start /usr/bin/time");
    let text = std::fs::read_to_string(&out).expect("GNU time's report");
    // After a non-zero exit, GNU time says so on a line before the figure.
    let kib = text
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("GNU time's report {text:?}: {e}"));
    (kib, status.code().unwrap_or(-1))
}

/// Documents loaded: three index entries each (the document and two inputs
/// with their outputs), 600,000 entries in one atomic batch, which stays in
/// `active.seg` (under the segment size) with a checkpoint covering it. The
/// build before this test held about 100 bytes per entry at once (peak
/// 62 MiB here); this one holds a few blocks of the checkpoint.
const DOCS: usize = 200_000;

/// A bound with margin on both sides: about 7 MiB measured, against 62.
const BOUND_KIB: u64 = 32 * 1024;

#[test]
fn verify_memory_does_not_grow_with_the_store() {
    let s = TestStore::new();
    let mut lines = String::new();
    for i in 0..DOCS {
        writeln!(
            lines,
            r#"{{"body":"document {i}","inputs":[{{"input":[{i},"a"],"output":{i}}},{{"input":{{"k":"v{i}"}},"output":"o"}}]}}"#
        )
        .unwrap();
    }
    s.stdin_ok(&["-q", "load", "-"], Some(lines.as_bytes()));
    // A few records in active.seg too, as after any later write.
    s.ok(&["add-input", "7", "[1, 2]", "--output", "3"]);
    let (kib, code) = peak_rss_kib(&s, &["verify"]);
    assert_eq!(code, 0, "verify of a sound store");
    assert!(
        kib <= BOUND_KIB,
        "verify of a store of {} entries peaked at {kib} KiB (bound {BOUND_KIB})",
        3 * DOCS
    );
    let report = json(s.ok(&["verify", "--json"]).trim());
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["records"], 3 * DOCS as u64 + 1, "{report}");

    // The same records over many segments and their indexes: the structure
    // check merges them all, still in bounded memory.
    s.ok(&["-q", "--segment-size", "4194304", "compact", "--full"]);
    let segments = s.files().iter().filter(|f| f.ends_with(".idx")).count();
    assert!(segments >= 5, "{:?}", s.files());
    let (kib, code) = peak_rss_kib(&s, &["verify"]);
    assert_eq!(code, 0, "verify of a sound compacted store");
    assert!(
        kib <= BOUND_KIB,
        "verify of {segments} segments peaked at {kib} KiB (bound {BOUND_KIB})"
    );
}

#[test]
fn verify_finds_records_whose_document_is_in_no_file_across_segments() {
    // The format-1 rotated fixture (tests/fixtures/v1/make.sh) without its
    // first segment: format 1 has no manifest, so only the cross-file
    // structure check can tell. Document 8's input and output were in the
    // lost segment, but a later set-output of it is in active.seg;
    // document 19's input is in seg_000002 and its document record was not.
    let s = TestStore::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/rotated");
    std::fs::create_dir_all(s.data()).unwrap();
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("seg_000001.") {
            std::fs::copy(entry.path(), s.data().join(name)).unwrap();
        }
    }
    let (shown, run) = s.run(&["verify", "--json"], None);
    assert_eq!(run.code, 6, "{shown}: {}", run.stderr);
    let report = json(std::str::from_utf8(&run.stdout).unwrap().trim());
    let problems: Vec<(String, String)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["file"].as_str().unwrap().to_owned(),
                p["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let store = |m: &str| ("(store)".to_owned(), m.to_owned());
    assert_eq!(
        problems,
        [
            store("document 8 has records but no document record"),
            store("output for node 1 of document 8 without its input"),
            store("document 19 has records but no document record"),
        ],
        "{report}"
    );
}
