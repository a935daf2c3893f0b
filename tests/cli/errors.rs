//! Every error class: its exit code, its one-line message, and a store left
//! byte-for-byte as it was. Also: read commands on a missing store, and
//! output into a closed pipe.

use std::io::Read;
use std::process::Stdio;

use crate::util::TestStore;

fn populated() -> TestStore {
    let s = TestStore::new();
    s.ok(&["create-doc", "body", "--category", "c"]);
    s.ok(&["add-input", "1", "[1]", "--output", "1"]);
    s
}

/// Runs each command expecting `code`, a message containing `needle`, and
/// an unchanged store.
fn refused(s: &TestStore, code: i32, cases: &[(&[&str], &str)]) {
    for (args, needle) in cases {
        let before = s.snapshot();
        let (got, err) = s.fails(args);
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
        assert_eq!(s.snapshot(), before, "{args:?} changed the store");
    }
}

#[test]
fn not_found_exits_3_and_changes_nothing() {
    let s = populated();
    refused(
        &s,
        3,
        &[
            (&["get", "9"], "document 9 not found"),
            (
                &["get", "1", "--node", "9"],
                "input node 9 not found in document 1",
            ),
            (&["add-input", "9", "1"], "document 9 not found"),
            (&["set-output", "9", "1", "1"], "document 9 not found"),
            (&["set-output", "1", "9", "1"], "input node 9 not found"),
            (
                &["update-doc", "9", "--version", "v"],
                "document 9 not found",
            ),
            (&["delete-doc", "9"], "document 9 not found"),
            (&["delete-input", "1", "9"], "input node 9 not found"),
            (&["delete-input", "9", "1"], "document 9 not found"),
        ],
    );
}

#[test]
fn invalid_input_exits_4_and_changes_nothing() {
    let s = populated();
    refused(
        &s,
        4,
        &[
            (&["add-input", "1", "{oops"], "invalid JSON"),
            (&["add-input", "1", "1", "--output", "[1,"], "--output"),
            (&["set-output", "1", "1", "tru"], "invalid JSON"),
            (
                &["add-input", "1", "1", "--meta", "[1]"],
                "meta must be a JSON object",
            ),
            (&["create-doc", "x", "--meta", "{\"a\":"], "invalid JSON"),
        ],
    );
    let before = s.snapshot();
    let (code, err) = s.with_stdin(b"").fails(&["add-input", "1", "-"]);
    assert_eq!(code, 4, "{err}");
    let (code, err) = s.with_stdin(b"{\"a\":").fails(&["set-output", "1", "1"]);
    assert_eq!(code, 4, "{err}");
    assert_eq!(s.snapshot(), before);
}

#[test]
fn stdin_over_64_mib_exits_4_and_changes_nothing() {
    let s = populated();
    let before = s.snapshot();
    let big = vec![b'a'; 64 * 1024 * 1024 + 1];
    let (code, err) = s.with_stdin(&big).fails(&["create-doc", "-"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("more than 67108864 bytes"), "{err}");
    let (code, _) = s.with_stdin(&big).fails(&["update-doc", "1", "-"]);
    assert_eq!(code, 4);
    assert_eq!(s.snapshot(), before);
}

#[test]
fn usage_errors_exit_2_and_change_nothing() {
    let s = populated();
    for args in [
        &["get"][..],
        &["get", "one"],
        &["get", "-1"],
        &["add-input"],
        &["set-output", "1"],
        &["delete-input", "1"],
        &["update-doc", "1"],
        &["compact", "--min-garbage", "2"],
        &["compact", "--min-dead-bytes", "lots"],
        &["list", "--bogus"],
    ] {
        let before = s.snapshot();
        let (code, err) = s.fails(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(s.snapshot(), before, "{args:?}");
    }
}

#[test]
fn io_errors_exit_7_naming_the_path() {
    let s = populated();
    let missing = s.tmp().join("no-such-file");
    let before = s.snapshot();
    let (code, err) = s.fails(&["create-doc", "--file", missing.to_str().unwrap()]);
    assert_eq!(code, 7, "{err}");
    assert!(
        err.ends_with("no-such-file: No such file or directory (os error 2)\n"),
        "{err}"
    );
    let (code, err) = s.fails(&["load", missing.to_str().unwrap()]);
    assert_eq!(code, 7, "{err}");
    assert_eq!(s.snapshot(), before);
    // A data directory below a regular file.
    let file = s.tmp().join("plain-file");
    std::fs::write(&file, "not a directory").unwrap();
    let mut cmd = std::process::Command::new(crate::util::BIN);
    cmd.arg("--dir")
        .arg(file.join("store"))
        .args(["create-doc", "x"]);
    let (shown, run) = TestStore::run_command(cmd, None);
    crate::util::expect_failure(&shown, &run);
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("plain-file/store: Not a directory (os error 20)\n"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

#[test]
fn a_full_stdout_exits_7() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("skipped: no /dev/full");
        return;
    };
    let s = populated();
    for args in [
        &["get", "1"][..],
        &["dump"],
        &["list", "--json"],
        &["stats"],
    ] {
        let mut cmd = s.command(args);
        cmd.stdout(full.try_clone().unwrap()).stderr(Stdio::piped());
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(7), "{args:?}: {err}");
        assert_eq!(
            err,
            "stratum: I/O error during write on <stdout>: No space left on device (os error 28)\n",
            "{args:?}"
        );
    }
}

#[test]
fn read_commands_on_a_missing_store_exit_3_and_create_nothing() {
    let s = TestStore::new();
    for args in [
        &["get", "1"][..],
        &["list"],
        &["dump"],
        &["dump", "--records"],
        &["verify"],
        &["stats"],
        &["compact"],
        &["compact", "--dry-run"],
        &["delete-doc", "1"],
        &["delete-input", "1", "1"],
        &["add-input", "1", "1"],
        &["set-output", "1", "1", "1"],
        &["update-doc", "1", "--version", "v"],
    ] {
        let (code, err) = s.fails(args);
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(err.starts_with("stratum: no store at "), "{args:?}: {err}");
        assert!(
            !s.data().exists(),
            "{args:?} created {}",
            s.data().display()
        );
    }
    // An existing empty directory stays empty too.
    std::fs::create_dir(s.data()).unwrap();
    assert_eq!(s.fails(&["list"]).0, 3);
    assert_eq!(s.fails(&["delete-doc", "1"]).0, 3);
    assert!(s.files().is_empty(), "{:?}", s.files());
}

/// Runs a command whose stdout is closed after its first line.
fn first_line_then_close(s: &TestStore, args: &[&str]) -> (String, i32, String) {
    let mut cmd = s.command(args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        first.push(byte[0]);
    }
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    (
        String::from_utf8(first).unwrap(),
        status.code().unwrap_or(-1),
        stderr,
    )
}

#[test]
fn output_into_a_closed_pipe_exits_0_quietly() {
    let s = TestStore::new();
    // Well over a pipe buffer of output, so the writer meets the closed end,
    // and over the 8 MiB from which `list` and `dump` read a scan in two
    // halves (select::SPLIT_BYTES), so that both halves meet it.
    s.load_docs(3000, |i| format!("doc {i} {}", "p".repeat(3000)));
    for args in [
        &["dump"][..],
        &["dump", "--records"],
        &["list", "--json"],
        &["list"],
    ] {
        let (first, code, stderr) = first_line_then_close(&s, args);
        assert!(!first.is_empty(), "{args:?}");
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
    let (first, code, stderr) = first_line_then_close(&s, &["dump"]);
    assert!(first.starts_with("{\"id\":1,"), "{first}");
    assert_eq!((code, stderr.as_str()), (0, ""));
}

#[test]
fn closed_standard_streams_never_become_store_files() {
    // A cron line or a daemon may start stratum with stdout and stderr
    // closed. The files a write opens would then take descriptors 1 and 2
    // (LOCK, then active.seg), and the note printed at open about a stray
    // file would overwrite active.seg's header, unless the process gives
    // those numbers to /dev/null first.
    let s = TestStore::new();
    s.ok(&["create-doc", "first"]);
    std::fs::write(s.data().join("seg_000099.seg"), [7u8; 100]).unwrap();
    let closed = |args: &str, streams: &str| {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec \"$0\" --dir \"$1\" {args} {streams}"))
            .arg(crate::util::bin())
            .arg(s.data())
            .stdin(Stdio::null())
            .status()
            .expect("run sh");
        status.code()
    };
    assert_eq!(closed("create-doc second", ">&- 2>&-"), Some(0));
    assert_eq!(
        closed("add-input 2 '[1,2]' --output 3", ">&- 2>&-"),
        Some(0)
    );
    assert_eq!(closed("set-output 2 1 4", "<&- >&- 2>&-"), Some(0));
    // An error's line has nowhere to go, but its exit code is kept.
    assert_eq!(closed("get 99", ">&- 2>&-"), Some(3));
    // `-q`: the stray file's note is not what is checked here.
    assert_eq!(s.ok(&["-q", "get", "2", "--node", "1", "--output"]), "4\n");
    assert_eq!(s.ok(&["-q", "get", "1", "--body"]), "first");
    assert_eq!(s.ok(&["-q", "list", "--json"]).lines().count(), 2);
}
