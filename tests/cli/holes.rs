//! Issue 9, "Nothing lost, part 2": one regression test (or more) per hole
//! found by attacking the store from outside, as an operator, a hostile user
//! or a flaky disk would. Each test failed against the build before its fix
//! (run one against another build with `STRATUM_TEST_BIN=/path/to/stratum`).
//! A test whose name says `documented_limit` checks a limit the README's
//! guarantees section states, rather than a code change.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Run, TestStore, flip_middle, ids, json, ok_with_note, run_at};

/// Says on the real stderr (the harness hides what a passing test prints
/// with `eprintln!`) that the running test skips `why`.
fn skipped(why: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let line = format!("SKIPPED {test}: {why}\n");
    // SAFETY: writes a live buffer of the given length to descriptor 2.
    let _ = unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// Polls `cond` for up to 20 s (a generous bound for a loaded machine; the
/// tests never assert on how long anything took).
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "gave up waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether process `pid` has `path` open.
fn has_open(pid: u32, path: &Path) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t == path))
}

/// `n` JSON Lines documents for `load`, each body its number and `pad`
/// bytes of `c`.
fn bulk_lines(n: usize, c: char, pad: usize) -> String {
    let body = c.to_string().repeat(pad);
    (0..n)
        .map(|i| format!("{{\"body\":\"{i} {body}\"}}\n"))
        .collect()
}

/// Runs the binary as user `uid`:`gid` (no supplementary groups) on `dir`.
fn run_as(uid: u32, gid: u32, dir: &Path, args: &[&str]) -> (String, Run) {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg(crate::util::bin())
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("STRATUM_DIR")
        .current_dir("/");
    TestStore::run_command(cmd, None)
}

fn spawn(s: &TestStore, args: &[&str]) -> Child {
    let mut cmd = s.command(args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("start stratum")
}

fn finish(child: Child) -> Run {
    let out = child.wait_with_output().expect("wait for stratum");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------
// Item 2: a deleted LOCK

#[test]
fn deleted_lock_refuses_reads_and_writes_with_a_clear_message() {
    let s = TestStore::new();
    s.ok(&["create-doc", "first"]);
    let lock = s.data().join("LOCK");
    // A writer holds the lock while an operator deletes the "stale" file.
    let held = fs::File::open(&lock).unwrap();
    held.lock().unwrap();
    fs::remove_file(&lock).unwrap();
    let before = s.snapshot();
    for args in [
        &["create-doc", "during"][..],
        &["add-input", "1", "2"],
        &["get", "1"],
        &["list"],
        &["dump"],
        &["verify"],
        &["repair"],
        &["dump", "--salvage"],
    ] {
        let (code, err) = s.fails(args);
        assert_eq!(code, 6, "{args:?}: {err}");
        assert!(err.contains("LOCK file is missing"), "{args:?}: {err}");
    }
    assert_eq!(s.snapshot(), before, "a refused command changed the store");
    drop(held);
    // Recreated by the operator once nothing uses the store: back to normal.
    fs::File::create(&lock).unwrap();
    assert_eq!(s.ok(&["create-doc", "after"]).trim(), "2");
}

#[test]
fn a_writer_waiting_on_a_deleted_lock_does_not_slip_past_its_replacement() {
    let s = TestStore::new();
    s.ok(&["create-doc", "first"]);
    let lock = s.data().join("LOCK");
    let old = fs::File::open(&lock).unwrap();
    old.lock().unwrap();
    // The writer opens LOCK (the old inode) and waits for it.
    let writer = spawn(&s, &["--lock-timeout", "3", "create-doc", "late"]);
    wait_for("the writer to open LOCK", || has_open(writer.id(), &lock));
    // LOCK is replaced, and someone takes the new one.
    fs::remove_file(&lock).unwrap();
    let new = fs::File::create(&lock).unwrap();
    new.lock().unwrap();
    // The old inode is released: a lock on it excludes nobody any more.
    drop(old);
    let run = finish(writer);
    assert_eq!(
        run.code, 5,
        "the writer got in beside the holder of the new LOCK: {}",
        run.stderr
    );
    drop(new);
    assert_eq!(ids(&s.ok(&["dump"])), vec![1]);
}

// ---------------------------------------------------------------------------
// Item 5: --dir as a symlink to the store

#[test]
fn a_dir_that_is_a_symlink_to_the_store_works_for_every_command() {
    let s = TestStore::new();
    s.ok(&["create-doc", "one"]);
    let link = s.tmp().join("link");
    std::os::unix::fs::symlink(s.data(), &link).unwrap();
    let via = |args: &[&str]| run_at(&link, args);
    for args in [
        &["get", "1"][..],
        &["list", "--json"],
        &["dump"],
        &["stats"],
        &["create-doc", "two"],
        &["add-input", "1", "[1]"],
        &["update-doc", "1", "--version", "v2"],
    ] {
        let (shown, run) = via(args);
        assert_eq!(run.code, 0, "{shown}: {}", run.stderr);
    }
    let dest = s.tmp().join("copy");
    let (shown, run) = via(&["backup", dest.to_str().unwrap()]);
    ok_with_note(&shown, &run);
    let (shown, run) = via(&["compact"]);
    ok_with_note(&shown, &run);
    // The symlink was followed, not replaced or written through a name
    // inside the store.
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(ids(&s.ok(&["dump"])), vec![1, 2]);
}

// ---------------------------------------------------------------------------
// Item 16: lone surrogates

#[test]
fn lone_surrogates_are_refused_on_write_and_pairs_accepted() {
    let s = TestStore::new();
    s.ok(&["create-doc", "d"]);
    let before = s.snapshot();
    for bad in [
        r#""\ud800""#,
        r#""\uDC00x""#,
        r#"{"k\udbff":1}"#,
        r#"["\ud800\u0041"]"#,
    ] {
        let (code, err) = s.fails(&["add-input", "1", bad]);
        assert_eq!(code, 4, "{bad}: {err}");
        assert!(err.contains("lone surrogate"), "{err}");
    }
    let (code, _) = s
        .with_stdin(b"{\"body\":\"b\",\"inputs\":[{\"input\":\"\\ud800\"}]}\n")
        .fails(&["load", "-"]);
    assert_eq!(code, 4);
    let (code, _) = s
        .with_stdin(b"{\"op\":\"add-input\",\"doc\":1,\"input\":1,\"output\":\"\\udfff\"}\n")
        .fails(&["apply", "-"]);
    assert_eq!(code, 4);
    assert_eq!(s.snapshot(), before);
    // A pair (an emoji) and an escaped backslash before a `u` are fine.
    s.ok(&["add-input", "1", r#""\ud83d\ude00 \\ud800""#]);
    let out = s.ok(&["get", "1", "--node", "1", "--input"]);
    assert_eq!(out.trim(), r#""\ud83d\ude00 \\ud800""#);
}

#[test]
fn a_store_that_already_holds_a_lone_surrogate_still_reads() {
    let s = TestStore::new();
    s.ok(&["create-doc", "d"]);
    s.ok(&["add-input", "1", r#""\u0041""#]);
    // Patch the stored escape into a lone surrogate, as an earlier build
    // stored it, and give the record a valid checksum again.
    let rec = s
        .ok(&["dump", "--records"])
        .lines()
        .map(json)
        .find(|r| r["kind"] == "input-put")
        .expect("the input record");
    let (at, size) = (
        rec["offset"].as_u64().unwrap() as usize,
        rec["size"].as_u64().unwrap() as usize,
    );
    let path = s.data().join("active.seg");
    let mut bytes = fs::read(&path).unwrap();
    let r = &mut bytes[at..at + size];
    let hit = r
        .windows(6)
        .position(|w| w == b"\\u0041")
        .expect("the escape");
    r[hit..hit + 6].copy_from_slice(b"\\ud800");
    let crc = crc32fast::hash(&r[4..]);
    r[..4].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    assert!(s.ok(&["get", "1"]).contains(r#""input":"\ud800""#));
    assert_eq!(s.ok(&["dump"]).lines().count(), 1);
    s.ok(&["verify"]);
}

// ---------------------------------------------------------------------------
// Item 17: terminal control characters in tables

#[test]
fn table_cells_escape_terminal_control_characters() {
    let s = TestStore::new();
    let hostile = "t\x1b]0;owned\x07\x1b[2J\rforged\u{9b}\u{202e}";
    s.ok(&[
        "create-doc",
        "d",
        "--category",
        hostile,
        "--version",
        "v\x1b[31m",
    ]);
    s.ok(&["add-input", "1", "\"\u{85}\""]);
    for args in [&["list"][..], &["get", "1", "--table"]] {
        let out = s.ok(args);
        for c in out.chars() {
            assert!(
                c == '\n' || !(c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
                "{args:?} printed {c:?} raw:\n{out}"
            );
        }
        assert!(out.contains("\\u{1b}]0;owned"), "{args:?}:\n{out}");
    }
    // JSON output keeps the exact value.
    let doc = json(s.ok(&["get", "1"]).trim());
    assert_eq!(doc["category"], hostile);
}

// ---------------------------------------------------------------------------
// Item 18: any directory becomes a store

#[test]
fn a_non_empty_directory_that_is_not_a_store_is_refused() {
    let s = TestStore::new();
    let etc = s.tmp().join("etc");
    fs::create_dir(&etc).unwrap();
    fs::write(etc.join("passwd"), "root:x:0:0\n").unwrap();
    let with_dir = run_at;
    for args in [
        &["create-doc", "x"][..],
        &["load", "-"],
        &["compact"],
        &["repair"],
    ] {
        let (shown, run) = with_dir(&etc, args);
        assert_eq!(run.code, 3, "{shown}: {}", run.stderr);
        assert!(run.stdout.is_empty());
    }
    let (_, run) = with_dir(&etc, &["create-doc", "x"]);
    assert!(
        run.stderr.contains("not empty and holds no stratum store"),
        "{}",
        run.stderr
    );
    let names: Vec<_> = fs::read_dir(&etc)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["passwd"]);
    // A new directory, an empty one, and a fresh mount's lost+found are fine.
    let empty = s.tmp().join("empty");
    fs::create_dir(&empty).unwrap();
    let mount = s.tmp().join("mnt");
    fs::create_dir_all(mount.join("lost+found")).unwrap();
    for dir in [s.tmp().join("new/deeper"), empty, mount] {
        let (shown, run) = with_dir(&dir, &["create-doc", "x"]);
        assert_eq!(run.code, 0, "{shown}: {}", run.stderr);
        assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "1");
    }
}

// ---------------------------------------------------------------------------
// Item 7: one --keep-ids line can end id creation

#[test]
fn keep_ids_refuses_ids_that_would_exhaust_the_id_space_unless_insisted() {
    const MAX_ID: u64 = (1 << 53) - 1;
    let s = TestStore::new();
    s.ok(&["create-doc", "a"]);
    let before = s.snapshot();
    for line in [
        format!("{{\"id\":{MAX_ID},\"body\":\"max\"}}\n"),
        format!("{{\"id\":{},\"body\":\"near\"}}\n", MAX_ID - 5),
        format!("{{\"id\":50,\"body\":\"n\",\"inputs\":[{{\"node\":{MAX_ID},\"input\":1}}]}}\n"),
    ] {
        let (code, err) = s.with_stdin(line.as_bytes()).fails(&["load", "--keep-ids"]);
        assert_eq!(code, 4, "{line}: {err}");
        assert!(err.contains("--allow-high-ids"), "{err}");
    }
    assert_eq!(s.snapshot(), before);
    // Ordinary kept ids, and high ones when the user insists.
    s.with_stdin(b"{\"id\":40,\"body\":\"kept\"}\n")
        .ok(&["load", "--keep-ids"]);
    assert_eq!(s.ok(&["create-doc", "next"]).trim(), "41");
    let line = format!("{{\"id\":{MAX_ID},\"body\":\"max\"}}\n");
    let out = s
        .with_stdin(line.as_bytes())
        .ok(&["load", "--keep-ids", "--allow-high-ids"]);
    assert_eq!(out.trim(), MAX_ID.to_string());
    // The documents say what the code does.
    let format =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/FORMAT.md")).unwrap();
    // Every line that states the id range states the one the code enforces
    // (2⁶⁴−1 is also the manifest's "not known" value, elsewhere).
    let id_lines: Vec<&str> = format
        .lines()
        .filter(|l| l.contains("document and node ids"))
        .collect();
    assert!(!id_lines.is_empty(), "docs/FORMAT.md states no id range");
    for line in id_lines {
        assert!(
            line.contains("1 … 2⁵³−1") && !line.contains("2⁶⁴−1"),
            "docs/FORMAT.md states another id range: {line}"
        );
    }
}

// ---------------------------------------------------------------------------
// Item 9: slow input holds the exclusive lock

/// Starts `args` with a pipe on stdin, writes `first`, and keeps the pipe
/// open: a producer that is still thinking.
fn slow_producer(s: &TestStore, args: &[&str], first: &[u8]) -> (Child, std::process::ChildStdin) {
    use std::io::Write as _;
    let mut cmd = s.command(args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start stratum");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(first).unwrap();
    stdin.flush().unwrap();
    (child, stdin)
}

#[test]
fn load_and_apply_read_slow_input_before_taking_the_lock() {
    use std::io::Write as _;
    let s = TestStore::new();
    s.ok(&["create-doc", "first"]);
    let lock = s.data().join("LOCK");
    for (args, first, rest) in [
        (
            &["load", "-"][..],
            &b"{\"body\":\"one\"}\n"[..],
            &b"{\"body\":\"two\"}\n"[..],
        ),
        (
            &["apply", "-"],
            b"{\"op\":\"create-doc\",\"body\":\"three\"}\n",
            b"{\"op\":\"add-input\",\"doc\":\"$1\",\"input\":1}\n",
        ),
    ] {
        let (child, mut stdin) = slow_producer(&s, args, first);
        // Give the old behaviour every chance to show: it locked the store
        // at once and then waited for the rest of stdin.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(1) && !has_open(child.id(), &lock) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !has_open(child.id(), &lock),
            "{args:?} holds LOCK while stdin is open"
        );
        // Readers and writers get in meanwhile.
        s.ok(&["--lock-timeout", "1", "get", "1"]);
        s.ok(&["--lock-timeout", "1", "create-doc", "meanwhile"]);
        stdin.write_all(rest).unwrap();
        drop(stdin);
        let run = finish(child);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    }
    let bodies: Vec<String> = s
        .ok(&["dump"])
        .lines()
        .map(|l| json(l)["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        bodies,
        ["first", "meanwhile", "one", "two", "meanwhile", "three"]
    );
}

#[test]
fn a_bad_line_of_slow_input_is_refused_before_the_store_is_touched() {
    let s = TestStore::new();
    // Not even created: the input was refused before the store was opened.
    let (code, err) = s
        .with_stdin(b"{\"body\":\"ok\"}\n\n{\"body\":7}\n")
        .fails(&["load", "-"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(!s.data().exists());
    let (code, err) = s
        .with_stdin(b"{\"op\":\"create-doc\"}\n{\"op\":\"nope\"}\n")
        .fails(&["apply", "-"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(!s.data().exists());
}

#[test]
fn piped_input_larger_than_the_memory_spool_loads_whole() {
    let s = TestStore::new();
    // 12 MiB through a pipe: past the 8 MiB kept in memory.
    let input = bulk_lines(3000, 'x', 4000);
    let out = s.with_stdin(input.as_bytes()).ok(&["load", "-"]);
    assert_eq!(out.lines().count(), 3000);
    let last = json(s.ok(&["get", "3000"]).trim());
    assert_eq!(last["body"], format!("2999 {}", "x".repeat(4000)));
}

// ---------------------------------------------------------------------------
// Item 12: a failed report of a durable write

#[test]
fn a_durable_write_whose_report_fails_exits_8_for_full_and_closed_stdout() {
    let s = TestStore::new();
    s.ok(&["create-doc", "zero"]);
    let full = || {
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let closed = || {
        let (r, w) = std::io::pipe().unwrap();
        drop(r);
        w
    };
    let mut n = 1;
    for how in ["full", "closed"] {
        for (args, stdin) in [
            (&["create-doc", "x"][..], None),
            (&["add-input", "1", "[1]"], None),
            (&["load", "-"], Some(&b"{\"body\":\"l\"}\n"[..])),
            (
                &["apply", "-"],
                Some(&b"{\"op\":\"create-doc\",\"body\":\"a\"}\n"[..]),
            ),
        ] {
            let mut cmd = s.command(args);
            if how == "full" {
                cmd.stdout(full());
            } else {
                cmd.stdout(closed());
            }
            cmd.stderr(Stdio::piped());
            cmd.stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
            let mut child = cmd.spawn().unwrap();
            if let Some(bytes) = stdin {
                use std::io::Write as _;
                child.stdin.take().unwrap().write_all(bytes).unwrap();
            }
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(8), "{how} {args:?}: {err}");
            assert!(
                err.starts_with("stratum: ") && err.lines().count() == 1,
                "{err}"
            );
            assert!(
                err.contains("is durable") && err.contains("do not run"),
                "{err}"
            );
            if args[0] != "add-input" {
                n += 1;
            }
        }
    }
    // Every write happened exactly once.
    assert_eq!(ids(&s.ok(&["dump"])).len(), n);
    let doc = json(s.ok(&["get", "1"]).trim());
    assert_eq!(doc["inputs"].as_array().unwrap().len(), 2);
    // A read into a closed pipe is still a quiet success.
    let mut cmd = s.command(&["dump"]);
    cmd.stdout(closed()).stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty());
}

// ---------------------------------------------------------------------------
// Item 1: salvage and repair drop most of a damaged batch

/// A store whose first sealed segment holds one `load` batch of `n`
/// documents, then one document created on its own; one bit flipped 45
/// bytes into document `hit`'s record.
fn damaged_batch(n: usize, hit: u64) -> TestStore {
    let mut s = TestStore::new();
    // The batch fits the segment size, so that it stays in `active.seg`
    // with its `Commit` record (a larger one spills into segments of its
    // own); the write after it, under a smaller size, seals it.
    s.globals = vec!["--segment-size".into(), "1M".into()];
    let mut lines = String::new();
    for i in 1..=n {
        lines.push_str(&format!(
            "{{\"body\":\"document number {i} with some padding text here\"}}\n"
        ));
    }
    assert_eq!(
        s.with_stdin(lines.as_bytes()).ok(&["load"]).lines().count(),
        n
    );
    s.globals = vec!["--segment-size".into(), "4K".into()];
    s.ok(&["create-doc", "x"]);
    let rec = s
        .ok(&["dump", "--records"])
        .lines()
        .map(json)
        .find(|r| r["kind"] == "doc-put" && r["doc"] == hit)
        .expect("the damaged document's record");
    assert_eq!(rec["segment"], "seg_000001.seg", "{rec}");
    let path = s.data().join("seg_000001.seg");
    let mut bytes = fs::read(&path).unwrap();
    bytes[rec["offset"].as_u64().unwrap() as usize + 45] ^= 0x04;
    fs::write(&path, bytes).unwrap();
    s
}

#[test]
fn salvage_keeps_every_intact_record_of_a_damaged_batch() {
    let s = damaged_batch(60, 20);
    let (shown, run) = s.run(&["dump", "--salvage"], None);
    ok_with_note(&shown, &run);
    let want: Vec<u64> = (1..=61).filter(|&i| i != 20).collect();
    assert_eq!(
        ids(&String::from_utf8(run.stdout).unwrap()),
        want,
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("left out"), "{}", run.stderr);
}

#[test]
fn repair_keeps_every_intact_record_of_a_damaged_batch() {
    let s = damaged_batch(200, 100);
    let (shown, run) = s.run(&["repair"], None);
    ok_with_note(&shown, &run);
    let want: Vec<u64> = (1..=201).filter(|&i| i != 100).collect();
    assert_eq!(ids(&s.ok(&["dump"])), want);
    s.ok(&["verify"]);
    // Ids stay unused after repair.
    assert_eq!(s.ok(&["create-doc", "new"]).trim(), "202");
}

#[test]
fn salvage_names_what_it_leaves_out_of_a_batch_never_committed() {
    let s = TestStore::new();
    s.ok(&["create-doc", "single"]);
    s.with_stdin(b"{\"body\":\"a\"}\n{\"body\":\"b\"}\n{\"body\":\"c\"}\n")
        .ok(&["load"]);
    let records: Vec<_> = s.ok(&["dump", "--records"]).lines().map(json).collect();
    let commit = records.iter().find(|r| r["kind"] == "commit").unwrap();
    let single = records.iter().find(|r| r["doc"] == 1).unwrap();
    let path = s.data().join("active.seg");
    let mut bytes = fs::read(&path).unwrap();
    // The commit never reached the disk, and the first record is damaged.
    bytes.truncate(commit["offset"].as_u64().unwrap() as usize);
    bytes[single["offset"].as_u64().unwrap() as usize + 40] ^= 1;
    fs::write(&path, bytes).unwrap();
    let (shown, run) = s.run(&["dump", "--salvage"], None);
    ok_with_note(&shown, &run);
    assert!(run.stdout.is_empty(), "{shown}");
    assert!(
        run.stderr.contains("3 intact records of a batch left out"),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------
// Items 10 and 11: backups

/// A store with two sealed segments and an active one.
fn sealed_store() -> TestStore {
    let mut s = TestStore::new();
    s.globals = vec!["--segment-size".into(), "4K".into()];
    for i in 0..40 {
        s.ok(&["create-doc", &format!("doc {i} {}", "x".repeat(200))]);
    }
    s.globals.clear();
    assert!(
        s.files().contains(&"seg_000002.seg".to_owned()),
        "{:?}",
        s.files()
    );
    s
}

/// The names in a directory, hidden ones included.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_failed_backup_leaves_nothing_behind_and_a_retry_works() {
    let s = sealed_store();
    let dest = s.tmp().join("backups/b1");
    let backups = s.tmp().join("backups");
    // A write that fails part-way (a file-size limit: EFBIG, like a full
    // disk, after a partial write).
    let mut cmd = Command::new("perl");
    cmd.args([
        "-e",
        "$SIG{XFSZ}='IGNORE'; exec @ARGV",
        "prlimit",
        "--fsize=3000",
    ])
    .arg(crate::util::bin())
    .arg("--dir")
    .arg(s.data())
    .arg("backup")
    .arg(&dest);
    let (shown, run) = TestStore::run_command(cmd, None);
    if run.code == 127 || run.stderr.contains("prlimit: ") {
        skipped(&format!(
            "part of {shown}: prlimit is not usable here: {}",
            run.stderr
        ));
    } else {
        assert_eq!(run.code, 7, "{shown}: {}", run.stderr);
        assert_eq!(names(&backups), Vec::<String>::new(), "{shown} left files");
    }
    // Damage in the source: the copy does not verify, so nothing is kept.
    let seg = s.data().join("seg_000001.seg");
    let good = fs::read(&seg).unwrap();
    flip_middle(&seg);
    let (shown, run) = run_at(s.data(), &["backup", dest.to_str().unwrap()]);
    assert_eq!(run.code, 6, "{shown}: {}", run.stderr);
    assert!(
        !dest.exists(),
        "a backup that does not verify was left at DEST"
    );
    assert_eq!(names(&backups), Vec::<String>::new());
    // An empty DEST made by the operator stays as it was.
    fs::create_dir(&dest).unwrap();
    let (_, run) = run_at(s.data(), &["backup", dest.to_str().unwrap()]);
    assert_eq!(run.code, 6);
    assert_eq!(names(&backups), vec!["b1"]);
    assert_eq!(names(&dest), Vec::<String>::new());
    // Repaired by hand: the retry into the same DEST works.
    fs::write(&seg, good).unwrap();
    let (shown, run) = run_at(s.data(), &["backup", dest.to_str().unwrap()]);
    ok_with_note(&shown, &run);
    assert_eq!(names(&backups), vec!["b1"]);
    assert_eq!(run_at(&dest, &["dump"]).1.stdout, s.ok_bytes(&["dump"]));
}

#[test]
fn a_backup_shares_no_file_with_the_source_unless_linking_is_asked_for() {
    use std::os::unix::fs::MetadataExt;
    let s = sealed_store();
    let copy = s.tmp().join("copy");
    let linked = s.tmp().join("linked");
    ok_with_note(
        "backup",
        &run_at(s.data(), &["backup", copy.to_str().unwrap()]).1,
    );
    let (shown, run) = run_at(s.data(), &["backup", "--link", linked.to_str().unwrap()]);
    ok_with_note(&shown, &run);
    assert!(run.stderr.contains("4 files linked"), "{}", run.stderr);
    let seg = s.data().join("seg_000001.seg");
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    assert_ne!(ino(&seg), ino(&copy.join("seg_000001.seg")));
    assert_eq!(ino(&seg), ino(&linked.join("seg_000001.seg")));
    // A bit flip in the source (in place, as a failing disk does it).
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    let mut b = [0u8; 1];
    use std::os::unix::fs::FileExt as _;
    f.read_exact_at(&mut b, 2000).unwrap();
    f.write_all_at(&[b[0] ^ 1], 2000).unwrap();
    assert_eq!(run_at(s.data(), &["verify"]).1.code, 6);
    assert_eq!(
        run_at(&copy, &["verify"]).1.code,
        0,
        "the copy was damaged with the source"
    );
    assert_eq!(
        run_at(&linked, &["verify"]).1.code,
        6,
        "--link shares the file"
    );
}

// ---------------------------------------------------------------------------
// Item 8: readers starve writers

#[test]
fn a_writer_gets_in_within_its_timeout_however_readers_overlap() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let s = TestStore::new();
    // Big enough that a dump takes a while, so four loops of them always
    // overlap: without writer preference the lock is never free.
    let input = bulk_lines(2500, 'y', 4000);
    s.with_stdin(input.as_bytes())
        .ok(&["--no-sync", "load", "-"]);
    let stop = Arc::new(AtomicBool::new(false));
    let dumps = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let cmd = s.command(&["--lock-timeout", "60", "dump"]);
            let (stop, dumps) = (stop.clone(), dumps.clone());
            let program = cmd.get_program().to_owned();
            let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let st = Command::new(&program)
                        .args(&args)
                        .stdout(Stdio::null())
                        .status()
                        .unwrap();
                    assert!(st.success(), "a reader failed: {st}");
                    dumps.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    wait_for("the readers to overlap", || {
        dumps.load(Ordering::Relaxed) >= 8
    });
    let mut outcomes = std::collections::BTreeMap::new();
    for i in 0..5 {
        let (_, run) = s.run(
            &["--lock-timeout", "3", "create-doc", &format!("w{i}")],
            None,
        );
        *outcomes.entry(run.code).or_insert(0) += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(
        outcomes,
        [(0, 5)].into(),
        "exit codes of 5 writers under continuous readers"
    );
}

// ---------------------------------------------------------------------------
// Item 4: root's cron compact locks the owner out

/// The uid and gid of an unprivileged user for permission tests, created
/// with `useradd` when missing; `None` (and a visible SKIPPED line) when not
/// root or when no user can be made.
fn unprivileged_user() -> Option<(u32, u32)> {
    const NAME: &str = "stratum-test";
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skipped("needs root (to create an unprivileged user and run stratum as it and as root)");
        return None;
    }
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, NAME]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    if id("-u").is_none() {
        // Two tests racing to create it is harmless: the loser fails and
        // finds the user made by the winner.
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                NAME,
            ])
            .status();
    }
    match (id("-u"), id("-g")) {
        (Some(u), Some(g)) if u != 0 => Some((u, g)),
        _ => {
            skipped(&format!(
                "could not create the unprivileged user {NAME} with useradd"
            ));
            None
        }
    }
}

#[test]
fn files_root_creates_in_a_users_store_belong_to_the_user() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some((uid, gid)) = unprivileged_user() else {
        return;
    };
    let s = TestStore::new();
    fs::set_permissions(s.tmp(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(s.data()).unwrap();
    std::os::unix::fs::chown(s.data(), Some(uid), Some(gid)).unwrap();
    let as_user = |args: &[&str]| {
        let mut full = vec!["--segment-size", "4K"];
        full.extend_from_slice(args);
        run_as(uid, gid, s.data(), &full)
    };
    let body = "z".repeat(300);
    for _ in 0..5 {
        let (shown, run) = as_user(&["create-doc", &body]);
        assert_eq!(run.code, 0, "{shown}: {}", run.stderr);
    }
    // Root's writes: seals (new segments, indexes, active.seg), then a
    // compaction (a new generation), then a repair.
    let root_at = |args: &[&str]| {
        let mut full = vec!["--segment-size", "4K"];
        full.extend_from_slice(args);
        run_at(s.data(), &full)
    };
    for _ in 0..20 {
        assert_eq!(root_at(&["create-doc", &body]).1.code, 0);
    }
    ok_with_note("compact", &root_at(&["compact"]).1);
    // A repair of real damage: a rewritten segment and quarantine/.
    let seg = fs::read_dir(s.data())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "seg")
                && p.file_name() != Some("active.seg".as_ref())
        })
        .expect("a sealed segment after compaction");
    flip_middle(&seg);
    ok_with_note("repair", &root_at(&["repair"]).1);
    let mut foreign = Vec::new();
    let quarantine = s.data().join("quarantine");
    assert!(quarantine.is_dir(), "repair found no damage");
    for e in fs::read_dir(s.data())
        .unwrap()
        .chain(fs::read_dir(&quarantine).unwrap())
    {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        if (m.uid(), m.gid()) != (uid, gid) {
            foreign.push(e.path());
        }
    }
    assert!(
        foreign.is_empty(),
        "root left files the owner does not own: {foreign:?}"
    );
    // The owner carries on.
    let (shown, run) = as_user(&["create-doc", "mine again"]);
    assert_eq!(run.code, 0, "{shown}: {}", run.stderr);
    assert!(
        String::from_utf8_lossy(&run.stdout)
            .trim()
            .parse::<u64>()
            .unwrap()
            >= 26
    );
    let (shown, run) = as_user(&["verify"]);
    assert_eq!(run.code, 0, "{shown}: {}", run.stderr);
}

// ---------------------------------------------------------------------------
// Item 12: compact and repair change things before failing

/// Every file under `dir` (subdirectories included) and its bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.strip_prefix(dir).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(format!("{name}/"), Vec::new());
                todo.push(p);
            } else {
                out.insert(name, fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Fails naming the files that differ between two [`tree`]s.
fn assert_unchanged(before: &std::collections::BTreeMap<String, Vec<u8>>, dir: &Path, what: &str) {
    let after = tree(dir);
    let changed: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(
        changed.is_empty(),
        "{what} changed the store before failing: {changed:?}"
    );
}

/// Damages one live record in the middle of the first sealed segment and
/// leaves records in `active.seg`, so a compaction must seal to proceed.
fn damaged_with_active(s: &TestStore) {
    for i in 0..3 {
        s.ok(&["create-doc", &format!("in the active segment {i}")]);
    }
    flip_middle(&s.data().join("seg_000001.seg"));
}

#[test]
fn compact_refuses_a_damaged_store_before_changing_anything() {
    let s = sealed_store();
    damaged_with_active(&s);
    let before = tree(s.data());
    let (code, err) = s.fails(&["compact"]);
    assert_eq!(code, 6, "{err}");
    assert_unchanged(&before, s.data(), "compact");
    // The documented way out still works.
    ok_with_note("repair", &s.run(&["repair"], None).1);
    assert_eq!(run_at(s.data(), &["verify"]).1.code, 0);
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(path: &Path, size: &str) -> Option<Mounted> {
    fs::create_dir_all(path).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(path)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skipped("cannot mount a tmpfs here (needs root)");
        return None;
    }
    Some(Mounted(path.to_path_buf()))
}

#[test]
fn compact_and_repair_on_a_full_disk_refuse_before_changing_anything() {
    let s = TestStore::new();
    let Some(mnt) = mount_tmpfs(&s.tmp().join("mnt"), "160k") else {
        return;
    };
    let dir = mnt.0.join("store");
    let body = "f".repeat(900);
    let mut n = 0;
    while n < 100 {
        let (_, run) = run_at(&dir, &["--segment-size", "8K", "create-doc", &body]);
        if run.code != 0 {
            break;
        }
        n += 1;
    }
    assert!(n > 20, "only {n} documents fit");
    assert!(fs::read_dir(&dir).unwrap().count() > 3);
    let before = tree(&dir);
    let (shown, run) = run_at(&dir, &["compact"]);
    assert_eq!(run.code, 7, "{shown}: {}", run.stderr);
    assert_unchanged(&before, &dir, "compact");
    flip_middle(&dir.join("seg_000002.seg"));
    let before = tree(&dir);
    let (shown, run) = run_at(&dir, &["repair"]);
    assert_eq!(run.code, 7, "{shown}: {}", run.stderr);
    assert_unchanged(&before, &dir, "repair");
}

#[test]
fn compact_and_repair_in_a_read_only_directory_refuse_before_changing_anything() {
    use std::os::unix::fs::PermissionsExt;
    let Some((uid, gid)) = unprivileged_user() else {
        return;
    };
    let s = sealed_store();
    for i in 0..3 {
        s.ok(&["create-doc", &format!("active {i}")]);
    }
    fs::set_permissions(s.tmp(), fs::Permissions::from_mode(0o755)).unwrap();
    for e in fs::read_dir(s.data()).unwrap() {
        std::os::unix::fs::chown(e.unwrap().path(), Some(uid), Some(gid)).unwrap();
    }
    std::os::unix::fs::chown(s.data(), Some(uid), Some(gid)).unwrap();
    fs::set_permissions(s.data(), fs::Permissions::from_mode(0o555)).unwrap();
    let as_user = |args: &[&str]| run_as(uid, gid, s.data(), args);
    let before = tree(s.data());
    let (shown, run) = as_user(&["compact"]);
    assert_eq!(run.code, 7, "{shown}: {}", run.stderr);
    assert_unchanged(&before, s.data(), "compact");
    flip_middle(&s.data().join("seg_000001.seg"));
    let before = tree(s.data());
    let (shown, run) = as_user(&["repair"]);
    assert_eq!(run.code, 7, "{shown}: {}", run.stderr);
    assert_unchanged(&before, s.data(), "repair");
    fs::set_permissions(s.data(), fs::Permissions::from_mode(0o755)).unwrap();
}

// ---------------------------------------------------------------------------
// Item 15: one bad record, 121 problems

#[test]
fn verify_reports_one_damaged_range_once_with_what_it_held_and_counts_the_rest() {
    let s = damaged_batch(120, 40);
    // A later write to every document, so every one of them has records
    // outside the damaged batch.
    let mut ops = String::new();
    for d in 1..=120 {
        ops.push_str(&format!(
            "{{\"op\":\"add-input\",\"doc\":{d},\"input\":{d}}}\n"
        ));
    }
    s.with_stdin(ops.as_bytes()).ok(&["apply"]);
    let (shown, run) = s.run(&["verify", "--json"], None);
    assert_eq!(run.code, 6, "{shown}: {}", run.stderr);
    let report = json(std::str::from_utf8(&run.stdout).unwrap().trim());
    let damage: Vec<&serde_json::Value> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "damage")
        .collect();
    assert_eq!(damage.len(), 1, "{damage:#?}");
    let p = damage[0];
    assert_eq!(p["file"], "seg_000001.seg");
    let msg = p["message"].as_str().unwrap();
    assert!(msg.contains("the document record of document 40"), "{msg}");
    assert!(msg.contains("damaged bytes from offset"), "{msg}");
    let seg = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "seg_000001.seg")
        .unwrap();
    // The batch's 120 document records, less the one hit.
    assert_eq!(seg["records"], 119, "{seg}");
    // `get` serves what verify counts.
    s.ok(&["get", "41"]);
}

// ---------------------------------------------------------------------------
// Item 14: the documented copy recipe reuses ids

#[test]
fn the_dump_load_copy_recipe_keeps_ids_never_reused() {
    let s = TestStore::new();
    for i in 1..=5 {
        s.ok(&["create-doc", &format!("d{i}")]);
    }
    s.ok(&["add-input", "2", "1"]);
    s.ok(&["add-input", "2", "2"]);
    s.ok(&["delete-input", "2", "2"]);
    s.ok(&["delete-doc", "4"]);
    s.ok(&["delete-doc", "5"]);
    // The recipe `dump --help` gives, through a pipe as scripts run it.
    let help = s.ok(&["dump", "--help"]);
    assert!(
        help.contains("dump --high-water | stratum --dir copy load --keep-ids"),
        "{help}"
    );
    let dumped = s.ok_bytes(&["dump", "--high-water"]);
    // The marks line is not a document to `diff` either.
    let file = s.tmp().join("marked.jsonl");
    fs::write(&file, &dumped).unwrap();
    s.ok(&["diff", file.to_str().unwrap()]);
    let copy = s.tmp().join("copy");
    let mut cmd = Command::new(crate::util::bin());
    cmd.arg("--dir").arg(&copy).args(["load", "--keep-ids"]);
    let (shown, run) = TestStore::run_command(cmd, Some(&dumped));
    assert_eq!(run.code, 0, "{shown}: {}", run.stderr);
    // The copy reads the same, and hands out what the source would next.
    assert_eq!(run_at(&copy, &["dump"]).1.stdout, s.ok_bytes(&["dump"]));
    for (args, want) in [
        (&["create-doc", "new"][..], "6"),
        (&["add-input", "2", "9"], "3"),
    ] {
        let (_, run) = run_at(&copy, args);
        assert_eq!(
            String::from_utf8_lossy(&run.stdout).trim(),
            want,
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(s.ok(args).trim(), want, "the source itself");
    }
    // The marks survive the copy's compaction, and verify is clean.
    ok_with_note("compact", &run_at(&copy, &["compact"]).1);
    assert_eq!(run_at(&copy, &["create-doc", "later"]).1.stdout, b"7\n");
    assert_eq!(run_at(&copy, &["verify"]).1.code, 0);
    // Without --keep-ids the marks mean nothing and are ignored.
    let fresh = s.tmp().join("fresh");
    let mut cmd = Command::new(crate::util::bin());
    cmd.arg("--dir").arg(&fresh).arg("load");
    let (_, run) = TestStore::run_command(cmd, Some(&dumped));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "1\n2\n3\n",
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------
// Item 13: writes on a store with known damage

#[test]
fn documented_limit_sealed_damage_refuses_only_writes_that_read_it_and_active_damage_refuses_all() {
    let s = sealed_store();
    // Damage the document record of document 3, in seg_000001.seg.
    let rec = s
        .ok(&["dump", "--records"])
        .lines()
        .map(json)
        .find(|r| r["kind"] == "doc-put" && r["doc"] == 3)
        .unwrap();
    assert_eq!(rec["segment"], "seg_000001.seg");
    let path = s.data().join("seg_000001.seg");
    let mut b = fs::read(&path).unwrap();
    b[rec["offset"].as_u64().unwrap() as usize + 50] ^= 1;
    fs::write(&path, b).unwrap();
    // What reads the damaged record refuses, and changes nothing.
    let before = tree(s.data());
    assert_eq!(s.fails(&["get", "3"]).0, 6);
    assert_eq!(s.fails(&["update-doc", "3", "--version", "v"]).0, 6);
    assert_eq!(s.fails(&["compact"]).0, 6);
    assert_unchanged(&before, s.data(), "a refused write");
    // Writes that do not read it are accepted (the open cannot know of the
    // damage without reading every record) ...
    assert_eq!(s.ok(&["create-doc", "after the damage"]).trim(), "41");
    assert_eq!(s.ok(&["add-input", "7", "[7]"]).trim(), "1");
    s.ok(&["delete-doc", "8"]);
    assert_eq!(run_at(s.data(), &["verify"]).1.code, 6);
    // ... and repair keeps every one of them.
    ok_with_note("repair", &s.run(&["repair"], None).1);
    assert_eq!(s.fails(&["get", "3"]).0, 3);
    assert_eq!(s.fails(&["get", "8"]).0, 3);
    assert!(s.ok(&["get", "41"]).contains("after the damage"));
    assert!(s.ok(&["get", "7"]).contains("[7]"));

    // Damage in active.seg that is not a torn tail: every write refuses.
    for i in 0..3 {
        s.ok(&["create-doc", &format!("active {i}")]);
    }
    let active = s.data().join("active.seg");
    let mut b = fs::read(&active).unwrap();
    let at_ = 60;
    b[at_] ^= 1;
    fs::write(&active, b).unwrap();
    let before = tree(s.data());
    for args in [
        &["create-doc", "x"][..],
        &["add-input", "7", "1"],
        &["delete-doc", "7"],
        &["set-output", "7", "1", "2"],
    ] {
        let (code, err) = s.fails(args);
        assert_eq!(code, 6, "{args:?}: {err}");
    }
    let (code, _) = s
        .with_stdin(b"{\"op\":\"create-doc\",\"body\":\"a\"}\n")
        .fails(&["apply"]);
    assert_eq!(code, 6);
    assert_unchanged(&before, s.data(), "a refused write");
}

#[test]
fn a_backup_that_fills_the_disk_leaves_nothing_and_a_retry_works() {
    let s = sealed_store();
    let Some(mnt) = mount_tmpfs(&s.tmp().join("small"), "12k") else {
        return;
    };
    let dest = mnt.0.join("b");
    let (shown, run) = run_at(s.data(), &["backup", dest.to_str().unwrap()]);
    assert_eq!(run.code, 7, "{shown}: {}", run.stderr);
    assert!(
        run.stderr.contains("No space left on device"),
        "{}",
        run.stderr
    );
    assert_eq!(
        names(&mnt.0),
        Vec::<String>::new(),
        "the full disk kept a partial backup"
    );
    let grown = Command::new("mount")
        .args(["-o", "remount,size=1m"])
        .arg(&mnt.0)
        .status()
        .is_ok_and(|st| st.success());
    assert!(grown, "could not grow the tmpfs");
    let (shown, run) = run_at(s.data(), &["backup", dest.to_str().unwrap()]);
    ok_with_note(&shown, &run);
    assert_eq!(run_at(&dest, &["dump"]).1.stdout, s.ok_bytes(&["dump"]));
}

// Item 9, its documented half: a reader holds the shared lock for its run.

#[test]
fn documented_limit_a_stalled_dump_consumer_keeps_writers_waiting() {
    let s = TestStore::new();
    s.with_stdin(bulk_lines(300, 'w', 4000).as_bytes())
        .ok(&["load"]);
    // A consumer that reads nothing: dump fills the pipe and waits.
    let mut dump = spawn(&s, &["dump"]);
    let lock = s.data().join("LOCK");
    wait_for("dump to take the lock", || has_open(dump.id(), &lock));
    let (code, err) = s.fails(&["--lock-timeout", "0.3", "create-doc", "blocked"]);
    assert_eq!(code, 5, "{err}");
    // Once the consumer reads, the dump ends and writers get in.
    let mut out = Vec::new();
    std::io::Read::read_to_end(dump.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(dump.wait().unwrap().success());
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 300);
    assert_eq!(s.ok(&["create-doc", "later"]).trim(), "301");
}

#[test]
fn concurrent_first_writers_of_a_new_store_all_land() {
    // Guards items 2 and 18: a first writer that finds no LOCK must not take
    // another first writer's fresh store for one whose LOCK was deleted, or
    // for a foreign directory.
    for round in 0..5 {
        let s = TestStore::new();
        let writers: Vec<Child> = (0..6)
            .map(|i| spawn(&s, &["create-doc", &format!("r{round} w{i}")]))
            .collect();
        let mut got: Vec<u64> = writers
            .into_iter()
            .map(|w| {
                let run = finish(w);
                assert_eq!(run.code, 0, "{}", run.stderr);
                String::from_utf8_lossy(&run.stdout).trim().parse().unwrap()
            })
            .collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3, 4, 5, 6]);
    }
}

#[test]
fn a_backup_killed_part_way_is_cleaned_up_by_the_next_one() {
    let s = sealed_store();
    let dest = s.tmp().join("b1");
    // What a backup killed while copying leaves: its hidden build directory.
    let left = s.tmp().join(".b1.stratum-tmp");
    fs::create_dir(&left).unwrap();
    fs::write(left.join("seg_000001.seg"), b"half a copy").unwrap();
    fs::write(left.join("seg_000002.seg.stratum-tmp"), b"half").unwrap();
    let (shown, run) = run_at(s.data(), &["backup", dest.to_str().unwrap()]);
    ok_with_note(&shown, &run);
    assert!(!left.exists());
    assert_eq!(run_at(&dest, &["dump"]).1.stdout, s.ok_bytes(&["dump"]));
    // A directory of that name holding anything else is not emptied.
    let other = s.tmp().join(".b2.stratum-tmp");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("notes.txt"), b"mine").unwrap();
    let (shown, run) = run_at(s.data(), &["backup", s.tmp().join("b2").to_str().unwrap()]);
    assert_eq!(run.code, 4, "{shown}: {}", run.stderr);
    assert!(
        run.stderr.contains("which no backup writes"),
        "{}",
        run.stderr
    );
    assert_eq!(names(&other), vec!["notes.txt"]);
}

// ---------------------------------------------------------------------------
// Item 6: an index file with valid checksums but wrong entries

/// A store whose `seg_000002.idx` is the index of the same segment of a
/// backup that went its own way: same store id, same segment number and
/// length, checksums that pass, other records at other offsets. Returns
/// the store and its dump (by id) from before the swap.
fn stale_index_store() -> (TestStore, String) {
    let mut s = TestStore::new();
    s.globals = vec!["--segment-size".into(), "4K".into()];
    for i in 1..=30 {
        s.ok(&["create-doc", &format!("doc {i} {}", "x".repeat(100))]);
    }
    let other = s.tmp().join("other");
    let (shown, run) = s.run(&["backup", other.to_str().unwrap()], None);
    ok_with_note(&shown, &run);
    let (big, small) = ("p".repeat(200), "q".repeat(20));
    // The same sizes in the other order: both sides seal segment 2 at the
    // same length, with documents 31 and 32 at other offsets.
    s.ok(&["create-doc", &big]);
    s.ok(&["create-doc", &small]);
    let g = ["--segment-size", "4K"];
    for body in [&small, &big] {
        let (shown, run) = run_at(&other, &[&g[..], &["create-doc", body]].concat());
        assert_eq!(run.code, 0, "{shown}: {}", run.stderr);
    }
    for i in 0..20 {
        let body = format!("more {i} {big}");
        s.ok(&["create-doc", &body]);
        let (shown, run) = run_at(&other, &[&g[..], &["create-doc", &body]].concat());
        assert_eq!(run.code, 0, "{shown}: {}", run.stderr);
    }
    s.globals.clear();
    let idx = "seg_000002.idx";
    let (mine, theirs) = (s.data().join(idx), other.join(idx));
    let seg = |d: &Path| fs::metadata(d.join("seg_000002.seg")).unwrap().len();
    assert_eq!(
        seg(s.data()),
        seg(&other),
        "segment 2 has one length on both sides"
    );
    assert_ne!(fs::read(&mine).unwrap(), fs::read(&theirs).unwrap());
    let dump = s.ok(&["dump"]);
    fs::copy(&theirs, &mine).unwrap();
    (s, dump)
}

/// The line of `dump` output for document `id`.
fn dump_line(dump: &str, id: u64) -> String {
    dump.lines()
        .find(|l| json(l)["id"] == id)
        .unwrap_or_else(|| panic!("document {id} in the dump"))
        .to_owned()
}

#[test]
fn a_stale_index_is_a_cache_miss_for_reads_named_in_a_note() {
    let (s, before) = stale_index_store();
    let files = s.snapshot();
    for id in [31u64, 32] {
        let (shown, run) = s.run(&["get", &id.to_string()], None);
        ok_with_note(&shown, &run);
        assert_eq!(
            String::from_utf8(run.stdout).unwrap().trim(),
            dump_line(&before, id),
            "get {id}"
        );
        assert!(
            run.stderr.starts_with("stratum: note: index file ")
                && run
                    .stderr
                    .contains("seg_000002.idx does not match its segment"),
            "{}",
            run.stderr
        );
    }
    let (shown, run) = s.run(&["dump"], None);
    ok_with_note(&shown, &run);
    assert_eq!(String::from_utf8(run.stdout).unwrap(), before);
    let (shown, run) = s.run(&["list", "--json"], None);
    ok_with_note(&shown, &run);
    assert_eq!(ids(&String::from_utf8(run.stdout).unwrap()), ids(&before));
    // Silent under -q, as the other notes.
    let (shown, run) = s.run(&["-q", "get", "31"], None);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{shown}");
    // Reads changed nothing.
    assert_eq!(s.snapshot(), files);
    // verify blames the index, not the segment, and says what repair does.
    let (shown, run) = s.run(&["verify", "--json"], None);
    assert_eq!(run.code, 6, "{shown}");
    let report = json(std::str::from_utf8(&run.stdout).unwrap().trim());
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0]["file"], "seg_000002.idx");
    let msg = problems[0]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("stale index") && msg.contains("a repair writes the index again"),
        "{msg}"
    );
    let seg = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "seg_000002.seg")
        .unwrap();
    assert_eq!(seg["ok"], true, "{seg}");
}

#[test]
fn the_next_write_that_reads_a_stale_index_rebuilds_it_and_keeps_the_segment() {
    let (s, before) = stale_index_store();
    let segment = fs::read(s.data().join("seg_000002.seg")).unwrap();
    let (shown, run) = s.run(&["update-doc", "32", "changed"], None);
    ok_with_note(&shown, &run);
    assert!(
        run.stderr
            .contains("seg_000002.idx does not match its segment")
            && run.stderr.contains("rebuilt from the segment"),
        "{}",
        run.stderr
    );
    assert_eq!(fs::read(s.data().join("seg_000002.seg")).unwrap(), segment);
    // Rebuilt: nothing to note any more, and the store verifies.
    s.ok(&["verify"]);
    assert_eq!(s.ok(&["get", "31"]).trim(), dump_line(&before, 31));
    assert!(s.ok(&["get", "32"]).contains("\"body\":\"changed\""));
}

#[test]
fn compact_and_repair_keep_every_record_through_a_stale_index() {
    for cmd in ["compact", "repair"] {
        let (s, before) = stale_index_store();
        let (shown, run) = s.run(&[cmd], None);
        ok_with_note(&shown, &run);
        assert_eq!(s.ok(&["dump"]), before, "{cmd}");
        s.ok(&["verify"]);
        if cmd == "repair" {
            assert!(
                run.stderr
                    .contains("rebuilt seg_000002.idx from its segment"),
                "{}",
                run.stderr
            );
        }
    }
}

#[test]
fn another_segments_index_copied_over_is_a_cache_miss_named_in_a_note() {
    let s = sealed_store();
    let before = s.ok(&["dump"]);
    let records = s.ok(&["dump", "--records"]);
    let in_two = records
        .lines()
        .map(json)
        .find(|r| r["segment"] == "seg_000002.seg" && r["kind"] == "doc-put")
        .expect("a document in segment 2")["doc"]
        .as_u64()
        .unwrap();
    fs::copy(
        s.data().join("seg_000001.idx"),
        s.data().join("seg_000002.idx"),
    )
    .unwrap();
    let (shown, run) = s.run(&["get", &in_two.to_string()], None);
    ok_with_note(&shown, &run);
    assert_eq!(
        String::from_utf8(run.stdout).unwrap().trim(),
        dump_line(&before, in_two)
    );
    assert!(
        run.stderr
            .contains("seg_000002.idx does not describe its segment"),
        "{}",
        run.stderr
    );
    let (shown, run) = s.run(&["dump"], None);
    ok_with_note(&shown, &run);
    assert_eq!(String::from_utf8(run.stdout).unwrap(), before);
    let (shown, run) = s.run(&["verify"], None);
    assert_eq!(run.code, 6, "{shown}");
    assert!(
        run.stderr
            .contains("seg_000002.idx:0: stale index: it describes segment 1"),
        "{}",
        run.stderr
    );
    let (shown, run) = s.run(&["repair"], None);
    ok_with_note(&shown, &run);
    assert!(
        run.stderr.contains("rebuilt seg_000002.idx"),
        "{}",
        run.stderr
    );
    s.ok(&["verify"]);
    assert_eq!(s.ok(&["dump"]), before);
}
