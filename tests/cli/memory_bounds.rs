//! `apply` and `diff` in bounded memory (issue 8 item 3, issue 11 item 5):
//! what they hold does not grow with the batch or the stores. Each test
//! makes the part the command owns the largest cost in the run, measures
//! the child's peak resident set with GNU time, and fails against the build
//! before this one (`STRATUM_TEST_BIN=/path/to/old/stratum`), whose figure
//! is in the test's comment.

use std::fmt::Write as _;

use crate::util::TestStore;
use crate::verify_bounds::peak_rss_kib;

/// What a run left on stdout (see [`peak_rss_kib`]).
fn stdout_of(s: &TestStore) -> String {
    std::fs::read_to_string(s.tmp().join("stdout")).expect("the run's stdout")
}

/// Lines of an `apply` batch that write nothing: a create-doc skipped for
/// its existing key, and lines naming it by `$1`, each also skipped. Each
/// line still has its line of report, which is printed once the batch is
/// committed.
const SKIPPED_LINES: usize = 1_000_000;

/// The build before this one held every report line as a struct until the
/// commit: 68.7 MiB measured here. This one keeps them in a spool (8 MiB of
/// memory, then an unnamed file): 14.2 MiB measured.
const APPLY_BOUND_KIB: u64 = 32 * 1024;

#[test]
fn apply_report_does_not_grow_memory_with_the_batch() {
    let s = TestStore::new();
    s.ok(&["create-doc", "body", "--key", "k"]);
    let mut ops = String::from("{\"op\":\"create-doc\",\"key\":\"k\",\"body\":\"new\"}\n");
    for i in 0..SKIPPED_LINES {
        if i % 2 == 0 {
            ops.push_str("{\"op\":\"delete-doc\",\"doc\":\"$1\"}\n");
        } else {
            writeln!(ops, "{{\"op\":\"add-input\",\"doc\":\"$1\",\"input\":{i}}}").unwrap();
        }
    }
    let file = s.tmp().join("ops.jsonl");
    std::fs::write(&file, ops).unwrap();
    let before = s.snapshot();
    let (kib, code) = peak_rss_kib(
        &s,
        &["apply", "--on-conflict", "skip", file.to_str().unwrap()],
    );
    assert_eq!(code, 0, "apply of skipped lines");
    assert!(
        kib <= APPLY_BOUND_KIB,
        "apply of {} lines peaked at {kib} KiB (bound {APPLY_BOUND_KIB})",
        SKIPPED_LINES + 1
    );
    // Every line's report came back, in order, through the spool's file.
    let out = stdout_of(&s);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), SKIPPED_LINES + 1);
    assert_eq!(
        lines[0],
        r#"{"line":1,"op":"create-doc","doc":1,"conflict":"skipped"}"#
    );
    assert_eq!(
        lines[1],
        r#"{"line":2,"op":"delete-doc","doc":1,"conflict":"skipped"}"#
    );
    assert_eq!(
        lines[SKIPPED_LINES],
        format!(
            r#"{{"line":{},"op":"add-input","doc":1,"conflict":"skipped"}}"#,
            SKIPPED_LINES + 1
        )
    );
    // Skipped lines change nothing, and the spool left no file behind.
    assert!(s.snapshot() == before, "the store changed");
    assert_eq!(s.ok(&["get", "key:k", "--body"]), "body");
}
