//! `apply` and `diff` in bounded memory (issue 8 item 3, issue 11 item 5):
//! what they hold does not grow with the batch or the stores. Each test
//! makes the part the command owns the largest cost in the run, measures
//! the child's peak resident set with GNU time, and fails against the build
//! before this one (`STRATUM_TEST_BIN=/path/to/old/stratum`), whose figure
//! is in the test's comment.

use std::fmt::Write as _;
use std::io::Write as _;

use crate::util::{TestStore, require};
use crate::verify_bounds::peak_rss_kib;

/// What a run left on stdout (see [`peak_rss_kib`]).
fn stdout_of(s: &TestStore) -> String {
    std::fs::read_to_string(s.tmp().join("stdout")).expect("the run's stdout")
}

/// Lines of an `apply` batch that write nothing: create-docs skipped for
/// their existing key, and a few lines naming them by `$K`, also skipped.
/// Each line still has its line of report, printed once the batch is
/// committed, and each create-doc its entry for later `$K` references.
const SKIPPED_LINES: usize = 1_000_000;

/// The build before this one held every report line as a struct and every
/// create-doc line's result until the commit: 89.9 MiB measured here (30.0
/// MiB with only the report spooled). This one keeps both in unnamed files
/// past a few MiB: 16.7 MiB measured.
const APPLY_BOUND_KIB: u64 = 24 * 1024;

#[test]
fn apply_memory_does_not_grow_with_the_batch() {
    let s = TestStore::new();
    s.ok(&["create-doc", "body", "--key", "k"]);
    let create = "{\"op\":\"create-doc\",\"key\":\"k\",\"body\":\"new\"}\n";
    let mut ops = format!("{create}{{\"op\":\"delete-doc\",\"doc\":\"$1\"}}\n");
    for _ in 2..SKIPPED_LINES {
        ops.push_str(create);
    }
    // References near and far back, to lines the batch no longer keeps in
    // memory, then one to line 2, which is not a create-doc.
    writeln!(
        ops,
        "{{\"op\":\"add-input\",\"doc\":\"${SKIPPED_LINES}\",\"input\":1}}"
    )
    .unwrap();
    ops.push_str(
        "{\"op\":\"delete-doc\",\"doc\":\"$3\"}\n{\"op\":\"delete-doc\",\"doc\":\"$2\"}\n",
    );
    let file = s.tmp().join("ops.jsonl");
    std::fs::write(&file, ops).unwrap();
    let before = s.snapshot();
    let (kib, code) = peak_rss_kib(
        &s,
        &["apply", "--on-conflict", "skip", file.to_str().unwrap()],
    );
    // Line 2 is a delete-doc, not a create-doc: the batch fails on the last
    // line, after every other was read, checked and reported into the spool.
    assert_eq!(code, 4, "apply of skipped lines ending in a bad reference");
    assert!(
        kib <= APPLY_BOUND_KIB,
        "apply of {} lines peaked at {kib} KiB (bound {APPLY_BOUND_KIB})",
        SKIPPED_LINES + 3
    );
    assert!(s.snapshot() == before, "a failed batch changed the store");
    // Without the bad line, every line's report comes back, in order,
    // through the spool's file.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.trim_end().rsplit_once('\n').unwrap().0).unwrap();
    let (kib, code) = peak_rss_kib(
        &s,
        &["apply", "--on-conflict", "skip", file.to_str().unwrap()],
    );
    assert_eq!(code, 0, "apply of skipped lines");
    assert!(
        kib <= APPLY_BOUND_KIB,
        "{kib} KiB (bound {APPLY_BOUND_KIB})"
    );
    let out = stdout_of(&s);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), SKIPPED_LINES + 2);
    let skipped = |line: usize, op: &str| {
        format!(r#"{{"line":{line},"op":"{op}","doc":1,"conflict":"skipped"}}"#)
    };
    assert_eq!(lines[0], skipped(1, "create-doc"));
    assert_eq!(lines[1], skipped(2, "delete-doc"));
    assert_eq!(lines[2], skipped(3, "create-doc"));
    assert_eq!(
        lines[SKIPPED_LINES],
        skipped(SKIPPED_LINES + 1, "add-input")
    );
    assert_eq!(
        lines[SKIPPED_LINES + 1],
        skipped(SKIPPED_LINES + 2, "delete-doc")
    );
    // Skipped lines change nothing, and the spools left no file behind.
    assert!(s.snapshot() == before, "the store changed");
    assert_eq!(s.ok(&["get", "key:k", "--body"]), "body");
}

/// Documents of the set-output test, one input each, and one set-output
/// operation each in one `apply`: one index entry a document in the active
/// segment, where a `Vec` per document cost four entries' room.
const SET_DOCS: usize = 200_000;

/// The build before this one kept the active segment's entries in a `Vec`
/// per document: 80.2 MiB measured here. This one keeps them in one list
/// chained by document: 45.8 MiB measured.
const SET_BOUND_KIB: u64 = 60 * 1024;

#[test]
fn apply_of_many_set_outputs_holds_about_their_entries() {
    let s = TestStore::new();
    let mut lines = String::new();
    for i in 0..SET_DOCS {
        writeln!(
            lines,
            r#"{{"body":"d{i}","inputs":[{{"input":{i},"output":0}}]}}"#
        )
        .unwrap();
    }
    s.stdin_ok(&["-q", "load", "-"], Some(lines.as_bytes()));
    let mut ops = String::new();
    for doc in 1..=SET_DOCS {
        writeln!(
            ops,
            r#"{{"op":"set-output","doc":{doc},"node":1,"output":{}}}"#,
            doc * 3
        )
        .unwrap();
    }
    // First with a bad last line: the whole batch is rolled back, its
    // entries forgotten, and the store left as it was.
    let file = s.tmp().join("ops.jsonl");
    std::fs::write(
        &file,
        format!("{ops}{{\"op\":\"set-output\",\"doc\":1,\"node\":9,\"output\":1}}\n"),
    )
    .unwrap();
    let before = s.snapshot();
    let (kib, code) = peak_rss_kib(&s, &["apply", file.to_str().unwrap()]);
    assert_eq!(code, 3, "apply naming a node that does not exist");
    assert!(
        kib <= SET_BOUND_KIB,
        "a failed apply of {SET_DOCS} set-outputs peaked at {kib} KiB (bound {SET_BOUND_KIB})"
    );
    assert!(s.snapshot() == before, "a failed batch changed the store");
    std::fs::write(&file, &ops).unwrap();
    let (kib, code) = peak_rss_kib(&s, &["apply", file.to_str().unwrap()]);
    assert_eq!(code, 0, "apply of {SET_DOCS} set-outputs");
    assert!(
        kib <= SET_BOUND_KIB,
        "apply of {SET_DOCS} set-outputs peaked at {kib} KiB (bound {SET_BOUND_KIB})"
    );
    assert_eq!(stdout_of(&s).lines().count(), SET_DOCS);
    for doc in [1, 2, SET_DOCS / 2, SET_DOCS] {
        let got = s.ok(&["get", &doc.to_string(), "--json"]);
        assert!(
            got.contains(&format!(
                r#""node":1,"input":{},"output":{}}}"#,
                doc - 1,
                doc * 3
            )),
            "document {doc}: {got}"
        );
    }
}

/// Loads `n` documents of one input each (`i` as input and output), their
/// bodies `body(i)`, from a file beside the store: the peak RSS in KiB and
/// the exit code. The lines are streamed to the file, so the test holds
/// none of them while the load runs.
fn load_from_file(s: &TestStore, n: usize, body: impl Fn(usize) -> String) -> (u64, i32) {
    let file = s.tmp().join("docs.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    for i in 0..n {
        let body = body(i);
        writeln!(
            out,
            r#"{{"body":"{body}","inputs":[{{"input":{i},"output":{i}}}]}}"#
        )
        .unwrap();
    }
    out.flush().unwrap();
    peak_rss_kib(s, &["-q", "load", file.to_str().unwrap()])
}

/// Small documents in one `load`: a record of about 60 bytes each, so a
/// segment of the default size would hold over two million index entries.
const SMALL_DOCS: usize = 1_000_000;

/// The build before this one held a batch file's entries until it reached
/// the segment size: 264,672 KiB measured here. This one counts a file as
/// full at 2^17 entries: 57,468 KiB measured.
const SMALL_BOUND_KIB: u64 = 64 * 1024;

#[test]
fn load_of_many_small_documents_holds_a_bounded_number_of_entries() {
    let s = TestStore::new();
    let (kib, code) = load_from_file(&s, SMALL_DOCS, |i| format!("b{i}"));
    assert_eq!(code, 0, "load of {SMALL_DOCS} small documents");
    assert!(
        kib <= SMALL_BOUND_KIB,
        "load of {SMALL_DOCS} small documents peaked at {kib} KiB (bound {SMALL_BOUND_KIB})"
    );
    assert_eq!(stdout_of(&s).lines().count(), SMALL_DOCS);
    let last = SMALL_DOCS.to_string();
    assert_eq!(
        s.ok(&["get", &last, "--json"]).trim_end(),
        format!(
            r#"{{"id":{last},"category":null,"version":null,"body":"b{}","inputs":[{{"node":1,"input":{},"output":{}}}]}}"#,
            SMALL_DOCS - 1,
            SMALL_DOCS - 1,
            SMALL_DOCS - 1
        )
    );
    s.ok(&["verify"]);
}

/// Documents of 4 MiB each: every batch of `load`'s reader is one line.
const LARGE_DOCS: usize = 16;

/// The reader once counted what waits for the writer in batches only: 16
/// of them, here 16 whole documents, 67,360 KiB measured. Bounded by bytes
/// too, 30,432 KiB.
const LARGE_BOUND_KIB: u64 = 48 * 1024;

#[test]
fn load_of_large_documents_holds_a_few_of_them() {
    let s = TestStore::new();
    let body = "x".repeat(4 << 20);
    let (kib, code) = load_from_file(&s, LARGE_DOCS, |_| body.clone());
    assert_eq!(code, 0, "load of {LARGE_DOCS} large documents");
    assert!(
        kib <= LARGE_BOUND_KIB,
        "load of {LARGE_DOCS} documents of 4 MiB peaked at {kib} KiB (bound {LARGE_BOUND_KIB})"
    );
    assert_eq!(stdout_of(&s).lines().count(), LARGE_DOCS);
    assert_eq!(s.ok(&["get", "16", "--body"]).len(), body.len());
    s.ok(&["verify"]);
}

/// Documents of about a kilobyte, loaded as segments of 1 MiB: a pass over
/// the store reads some 65 segments.
const WIDE_DOCS: usize = 60_000;

/// The build before this one kept read-ahead windows of 1 MiB for every
/// segment a pass had read: 69,836 KiB measured for this `dump`. This one
/// keeps 16 in all per handle, the oldest given up: 33,336 KiB measured
/// (a dump reads in two halves, through two handles).
const WIDE_BOUND_KIB: u64 = 48 * 1024;

#[test]
fn a_pass_over_many_segments_holds_a_bounded_read_ahead() {
    let s = TestStore::new();
    let body = "x".repeat(1000);
    let mut lines = String::new();
    for i in 0..WIDE_DOCS {
        writeln!(
            lines,
            r#"{{"body":"{body}","inputs":[{{"input":{i},"output":{i}}}]}}"#
        )
        .unwrap();
    }
    s.stdin_ok(
        &["-q", "--segment-size", "1M", "load", "-"],
        Some(lines.as_bytes()),
    );
    let segments = s.files().iter().filter(|f| f.ends_with(".seg")).count();
    assert!(segments > 60, "{segments} segment files");
    let (kib, code) = peak_rss_kib(&s, &["dump"]);
    assert_eq!(code, 0, "dump of {segments} segments");
    assert!(
        kib <= WIDE_BOUND_KIB,
        "dump of {segments} segments peaked at {kib} KiB (bound {WIDE_BOUND_KIB})"
    );
    let out = stdout_of(&s);
    assert_eq!(out.lines().count(), WIDE_DOCS);
    assert!(out.lines().last().is_some_and(|l| l.ends_with(&format!(
        r#""inputs":[{{"node":1,"input":{0},"output":{0}}}]}}"#,
        WIDE_DOCS - 1
    ))));
}

/// Keyed documents replaced by one `apply`, each with two inputs of
/// `REPLACED_VALUE` bytes: 60 MB of old chains.
const REPLACED_DOCS: usize = 300;
const REPLACED_VALUE: usize = 100_000;

/// The build before this one held every replaced document's old chain
/// until the batch committed: 65,248 KiB measured for this batch. This one
/// holds their node ids and reads each old node when the new chain reaches
/// it: 6,680 KiB measured.
const REPLACE_BOUND_KIB: u64 = 24 * 1024;

#[test]
fn apply_replacing_documents_holds_their_node_ids_not_their_chains() {
    let s = TestStore::new();
    let big = "x".repeat(REPLACED_VALUE);
    let mut lines = String::new();
    for i in 0..REPLACED_DOCS {
        writeln!(
            lines,
            r#"{{"key":"k{i}","body":"v1","inputs":[{{"input":"{big}"}},{{"input":"{i}{big}","output":1}}]}}"#
        )
        .unwrap();
    }
    s.stdin_ok(&["-q", "load", "-"], Some(lines.as_bytes()));
    // Each document is replaced by one with a new body and the first input
    // alone: the first node keeps its id, the second is deleted when the
    // batch ends.
    let mut ops = String::new();
    for i in 0..REPLACED_DOCS {
        writeln!(ops, r#"{{"op":"create-doc","key":"k{i}","body":"v2"}}"#).unwrap();
        writeln!(
            ops,
            r#"{{"op":"add-input","doc":"${}","input":"{big}"}}"#,
            2 * i + 1
        )
        .unwrap();
    }
    let file = s.tmp().join("ops.jsonl");
    std::fs::write(&file, &ops).unwrap();
    let (kib, code) = peak_rss_kib(
        &s,
        &["apply", "--on-conflict", "replace", file.to_str().unwrap()],
    );
    assert_eq!(code, 0, "apply replacing {REPLACED_DOCS} documents");
    assert!(
        kib <= REPLACE_BOUND_KIB,
        "apply replacing {REPLACED_DOCS} documents peaked at {kib} KiB (bound {REPLACE_BOUND_KIB})"
    );
    for i in [0, REPLACED_DOCS - 1] {
        let got = s.ok(&["get", &format!("key:k{i}"), "--json"]);
        let want =
            format!(r#","body":"v2","inputs":[{{"node":1,"input":"{big}","output":null}}]}}"#);
        assert!(
            got.trim_end().ends_with(&want),
            "document k{i}: {}",
            &got[..200.min(got.len())]
        );
    }
}

/// Documents on each side of the `diff` test, each with a long key: the
/// pairing by key is what used to be held in memory.
const DIFF_DOCS: usize = 80_000;

/// The build before this one held every id and key of both sides, several
/// times over, in hash maps: 109.2 MiB measured here. This one spills them
/// to sorted runs: 17.5 MiB measured.
const DIFF_BOUND_KIB: u64 = 48 * 1024;

/// The fixtures of the `diff` test: `DIFF_DOCS` documents, every 1000th of
/// them with its output changed to -1 when `changed`.
fn keyed_fixtures(changed: bool) -> String {
    let mut lines = String::new();
    for i in 0..DIFF_DOCS {
        let output = if changed && i % 1000 == 0 {
            -1
        } else {
            i as i64
        };
        writeln!(
            lines,
            r#"{{"key":"fixtures/{i:08}/{}","body":"p","inputs":[{{"input":{i},"output":{output}}}]}}"#,
            "x".repeat(180)
        )
        .unwrap();
    }
    lines
}

#[test]
fn diff_memory_does_not_grow_with_the_stores() {
    // The old side has an unrelated document first, so every id differs
    // by one and only the keys pair the documents.
    let old = TestStore::new();
    old.ok(&["create-doc", "unrelated"]);
    old.stdin_ok(&["-q", "load", "-"], Some(keyed_fixtures(false).as_bytes()));
    let new = TestStore::new();
    new.stdin_ok(&["-q", "load", "-"], Some(keyed_fixtures(true).as_bytes()));
    let dump = new.tmp().join("old.jsonl");
    std::fs::write(&dump, old.ok(&["dump"])).unwrap();
    let expected: String = std::iter::once("{\"doc\":1,\"change\":\"removed\"}\n".to_owned())
        .chain((0..DIFF_DOCS).step_by(1000).map(|i| {
            format!(
                "{{\"doc\":{},\"key\":\"fixtures/{i:08}/{}\",\"node\":1,\"change\":\"changed\",\"field\":\"output\",\"old\":{i},\"new\":-1}}\n",
                i + 1,
                "x".repeat(180)
            )
        }))
        .collect();
    for other in [old.data(), dump.as_path()] {
        let (kib, code) = peak_rss_kib(&new, &["diff", other.to_str().unwrap()]);
        assert_eq!(code, 1, "diff with {}", other.display());
        assert!(
            kib <= DIFF_BOUND_KIB,
            "diff of {DIFF_DOCS} keyed documents with {} peaked at {kib} KiB (bound {DIFF_BOUND_KIB})",
            other.display()
        );
        assert!(stdout_of(&new) == expected, "diff with {}", other.display());
    }

    // The runs went to unnamed files in $TMPDIR, which is empty after a
    // diff that finished and after one that failed part-way (a bad last
    // line of the old side: exit 4).
    require("strace", "strace");
    let tmpdir = new.tmp().join("tmpdir");
    std::fs::create_dir(&tmpdir).unwrap();
    let bad = new.tmp().join("bad.jsonl");
    let mut text = std::fs::read_to_string(&dump).unwrap();
    text.push_str("{\"id\":999999999,\"body\":1}\n");
    std::fs::write(&bad, text).unwrap();
    for (other, want) in [(&dump, 1), (&bad, 4)] {
        let log = new.tmp().join("strace.log");
        let o = crate::run::strace(
            [
                "--seccomp-bpf".into(),
                "-f".into(),
                "-qq".into(),
                "-e".into(),
                "trace=openat".into(),
                "-E".into(),
                format!("TMPDIR={}", tmpdir.display()),
                "-o".into(),
                log.display().to_string(),
            ],
            new.data(),
            &["diff", other.to_str().unwrap()],
        );
        assert_eq!(
            o.status.code(),
            Some(want),
            "diff with {}: {}",
            other.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let trace = std::fs::read_to_string(&log).unwrap();
        let runs = trace
            .lines()
            .filter(|l| l.contains(tmpdir.to_str().unwrap()) && l.contains("O_TMPFILE"))
            .count();
        // Two sides of about 20 MB of keys, in runs of 4 MiB: ten files.
        assert!(runs >= 8, "{runs} unnamed files in $TMPDIR:\n{trace}");
        let left: Vec<_> = std::fs::read_dir(&tmpdir).unwrap().collect();
        assert!(left.is_empty(), "diff left {left:?} in $TMPDIR");
    }
}

/// Documents of the `diff` table test, each with an output changed.
const TABLE_ROWS: usize = 60_000;

/// The build before this one kept every row of a table in memory until it
/// was printed: 57.2 MiB measured here. This one keeps them in memory up to
/// 8 MiB, then in an unnamed file: 16.7 MiB measured.
const TABLE_BOUND_KIB: u64 = 40 * 1024;

#[test]
fn a_diff_table_on_a_terminal_does_not_grow_memory_with_the_differences() {
    crate::util::require("script", "bsdutils");
    require("/usr/bin/time", "time");
    let value = |i: usize, tag: &str| format!("\"{tag} {i} {}\"", "v".repeat(200));
    let fixtures = |tag: &str| {
        let mut lines = String::new();
        for i in 0..TABLE_ROWS {
            writeln!(
                lines,
                r#"{{"body":"p","inputs":[{{"input":{i},"output":{}}}]}}"#,
                value(i, tag)
            )
            .unwrap();
        }
        lines
    };
    let old = TestStore::new();
    old.stdin_ok(&["-q", "load", "-"], Some(fixtures("old").as_bytes()));
    let new = TestStore::new();
    new.stdin_ok(&["-q", "load", "-"], Some(fixtures("new").as_bytes()));
    let report = new.tmp().join("time.txt");
    let line = format!(
        "/usr/bin/time -f %M -o {} {} --dir {} diff {}",
        report.display(),
        crate::util::bin(),
        new.data().display(),
        old.data().display()
    );
    let (shown, run) = crate::util::in_terminal_run(&new, &line);
    assert_eq!(run.code, 1, "{shown}: {}", run.stderr);
    let screen = String::from_utf8_lossy(&run.stdout);
    // One row a difference, in one table.
    let rows = screen.lines().filter(|l| l.contains("changed")).count();
    assert_eq!(rows, TABLE_ROWS, "{}", &screen[..screen.len().min(2000)]);
    assert!(screen.contains(&format!("\"old {} v", TABLE_ROWS - 1)));
    let text = std::fs::read_to_string(&report).unwrap();
    let kib: u64 = text.lines().last().unwrap_or("").trim().parse().unwrap();
    assert!(
        kib <= TABLE_BOUND_KIB,
        "a diff table of {TABLE_ROWS} rows peaked at {kib} KiB (bound {TABLE_BOUND_KIB})"
    );
}

/// A `dump` of a store read in two halves holds a few chunks of the upper
/// half's output while the lower half is written, not the upper half: 20,000
/// documents of 4 KiB, 80 MiB of output. Measured here: 9.1 MiB (6.9 MiB for
/// the one pass of the build before); with the hand-over unbounded, 43.8
/// MiB.
const SPLIT_DUMP_BOUND_KIB: u64 = 24 * 1024;

#[test]
fn a_dump_read_in_two_halves_holds_a_few_chunks_of_the_upper_half() {
    require("/usr/bin/time", "time");
    let s = TestStore::new();
    let body = "b".repeat(4096);
    let mut lines = String::new();
    for i in 0..20_000 {
        writeln!(
            lines,
            "{{\"body\":\"{i}{body}\",\"inputs\":[{{\"input\":{i}}}]}}"
        )
        .unwrap();
    }
    s.with_stdin(lines.as_bytes()).ok(&["load"]);
    let (kib, code) = peak_rss_kib(&s, &["dump"]);
    assert_eq!(code, 0);
    assert_eq!(stdout_of(&s).lines().count(), 20_000);
    assert!(
        kib <= SPLIT_DUMP_BOUND_KIB,
        "dump of 80 MiB in two halves peaked at {kib} KiB, over {SPLIT_DUMP_BOUND_KIB} KiB"
    );
}
