//! `TestStore`: runs the real `stratum` binary against a fresh data
//! directory, the way shell scripts do, and prints everything about a run
//! that did not end as the test expected. The processes themselves are run
//! by the shared runner (`tests/support/run.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run;

/// The binary Cargo built (tests that must run exactly that file).
pub const BIN: &str = run::BUILT;

/// The binary `TestStore` runs: a private copy of [`BIN`], or
/// `$STRATUM_TEST_BIN` when set, so a regression test can be shown to fail
/// against an older build.
pub fn bin() -> String {
    run::bin().display().to_string()
}

/// A temporary directory holding one store (`<tmp>/store`, created by the
/// first write command) and anything else a test needs.
pub struct TestStore {
    tmp: tempfile::TempDir,
    data: PathBuf,
    /// Global options put before every command's own arguments.
    pub globals: Vec<String>,
}

/// What a run produced.
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl TestStore {
    pub fn new() -> TestStore {
        let tmp = tempfile::tempdir().expect("create a temporary directory");
        let data = tmp.path().join("store");
        TestStore {
            tmp,
            data,
            globals: Vec::new(),
        }
    }

    /// The data directory.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// The temporary directory around it, for input files.
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// A command with `--dir` set and every variable stratum reads removed.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut globals: Vec<&str> = self.globals.iter().map(String::as_str).collect();
        globals.extend(args);
        let mut cmd = run::stratum(&self.data, &globals);
        cmd.current_dir(self.tmp.path());
        cmd
    }

    /// Runs `cmd` to completion, feeding `stdin` (or nothing: stdin is then
    /// empty, never the terminal).
    pub fn run_command(cmd: Command, stdin: Option<&[u8]>) -> (String, Run) {
        let out = run::run(cmd, stdin.map(<[u8]>::to_vec));
        let run = Run {
            // A signal death (e.g. a panic's abort) has no code: -1 fails
            // every expectation.
            code: out.code.unwrap_or(-1),
            stderr: out.err(),
            stdout: out.stdout,
        };
        (out.what, run)
    }

    /// Runs with these arguments and optional stdin.
    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> (String, Run) {
        Self::run_command(self.command(args), stdin)
    }

    /// Runs and expects exit 0 with nothing on stderr; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.stdin_ok(args, None)
    }

    /// As [`TestStore::ok`], returning stdout as raw bytes.
    pub fn ok_bytes(&self, args: &[&str]) -> Vec<u8> {
        let (shown, run) = self.run(args, None);
        expect_ok(&shown, &run);
        run.stdout
    }

    /// Runs with stdin, expects exit 0 and a quiet stderr.
    pub fn stdin_ok(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let (shown, run) = self.run(args, stdin);
        expect_ok(&shown, &run);
        String::from_utf8(run.stdout)
            .unwrap_or_else(|e| panic!("{shown}: stdout is not UTF-8: {e}"))
    }

    /// Runs and expects a failure; returns (exit code, stderr). Also checks
    /// the failure is reported the documented way: nothing on stdout, one
    /// `stratum: ` line on stderr, no panic.
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        self.stdin_fails(args, None)
    }

    /// As [`TestStore::fails`], with stdin.
    pub fn stdin_fails(&self, args: &[&str], stdin: Option<&[u8]>) -> (i32, String) {
        let (shown, run) = self.run(args, stdin);
        expect_failure(&shown, &run);
        (run.code, run.stderr)
    }

    /// A builder for a run with stdin.
    pub fn with_stdin<'a>(&'a self, bytes: &'a [u8]) -> WithStdin<'a> {
        WithStdin { store: self, bytes }
    }

    /// Every file of the data directory and its bytes, to show that a
    /// refused command changed nothing.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        run::snapshot(&self.data)
    }

    /// Names of the files in the data directory, sorted.
    pub fn files(&self) -> Vec<String> {
        self.snapshot().into_keys().collect()
    }

    /// Bytes of all files in the data directory.
    pub fn disk_bytes(&self) -> u64 {
        self.snapshot().values().map(|b| b.len() as u64).sum()
    }

    /// Runs `args` on this store under `strace -f -e trace=CALLS`, which
    /// must succeed, and returns strace's log.
    pub fn strace(&self, calls: &str, args: &[&str]) -> String {
        run::strace_log(
            &["-f", "-qq", "-e", &format!("trace={calls}")],
            &self.data,
            args,
        )
    }

    /// Creates `n` documents quickly through `load`, bodies `body(i)`.
    pub fn load_docs(&self, n: usize, body: impl Fn(usize) -> String) -> Vec<u64> {
        let mut lines = String::new();
        for i in 0..n {
            let line =
                serde_json::json!({"body": body(i), "inputs": [{"input": i, "output": i * 2}]});
            writeln!(lines, "{line}").expect("write to a string");
        }
        self.stdin_ok(&["load", "-"], Some(lines.as_bytes()))
            .lines()
            .map(|l| l.parse().expect("load prints ids"))
            .collect()
    }
}

/// Runs the binary on another data directory than a test store's own.
pub fn run_at(dir: &Path, args: &[&str]) -> (String, Run) {
    TestStore::run_command(run::stratum(dir, args), None)
}

/// Exit 0 with a `stratum: ` report on stderr (which [`TestStore::ok`]
/// forbids), and no panic.
pub fn ok_with_note(shown: &str, run: &Run) {
    assert!(
        run.code == 0 && run.stderr.starts_with("stratum: ") && !run.stderr.contains("panicked"),
        "{}",
        report(shown, run, "exit 0 with a `stratum: ` note on stderr")
    );
}

/// The ids of `dump` output, in order.
pub fn ids(dump: &str) -> Vec<u64> {
    dump.lines()
        .map(|l| json(l)["id"].as_u64().expect("an id"))
        .collect()
}

/// Flips a bit of the byte in the middle of a file: damage a CRC catches.
pub fn flip_middle(path: &Path) {
    let mut b = std::fs::read(path).expect("read the file to damage");
    let mid = b.len() / 2;
    b[mid] ^= 0x20;
    std::fs::write(path, b).expect("write the damaged file");
}

/// A pending run with stdin.
pub struct WithStdin<'a> {
    store: &'a TestStore,
    bytes: &'a [u8],
}

impl WithStdin<'_> {
    pub fn ok(&self, args: &[&str]) -> String {
        self.store.stdin_ok(args, Some(self.bytes))
    }

    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        self.store.stdin_fails(args, Some(self.bytes))
    }
}

/// The failure report every unexpected outcome prints.
pub fn report(shown: &str, run: &Run, expected: &str) -> String {
    format!(
        "\n=== {expected}, but\n=== command: {shown}\n=== exit status: {}\n=== stdout:\n{}\n=== stderr:\n{}\n",
        run.code,
        String::from_utf8_lossy(&run.stdout),
        run.stderr
    )
}

pub fn expect_ok(shown: &str, run: &Run) {
    if run.code != 0 || !run.stderr.is_empty() {
        panic!(
            "{}",
            report(shown, run, "expected success with an empty stderr")
        );
    }
}

pub fn expect_failure(shown: &str, run: &Run) {
    // Usage errors too (issue 13): clap's are folded into this one line.
    let one_line = run.stderr.lines().count() == 1 && run.stderr.starts_with("stratum: ");
    if run.code == 0
        || run.code == -1
        || !run.stdout.is_empty()
        || !one_line
        || run.stderr.contains("panicked")
    {
        panic!(
            "{}",
            report(
                shown,
                run,
                "expected a failure: non-zero exit, empty stdout, one `stratum: ` line on stderr"
            )
        );
    }
}

/// Parses one JSON line, failing with the text.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub use crate::run::require;

/// Runs a shell command line in a pseudo-terminal (util-linux `script`), as
/// a person at a terminal would: stdin, stdout and stderr are the terminal,
/// `TERM=xterm`, 100 columns. The run's stdout is everything the terminal
/// received; its code is the line's exit status.
pub fn in_terminal_run(s: &TestStore, line: &str) -> (String, Run) {
    let mut cmd = Command::new("script");
    run::clean_env(&mut cmd);
    cmd.current_dir(s.tmp())
        .env("TERM", "xterm")
        .env("COLUMNS", "100")
        .env("LINES", "40")
        .args(["-qec", line, "/dev/null"]);
    TestStore::run_command(cmd, None)
}

/// As [`in_terminal_run`], expecting exit 0; returns what the terminal got.
pub fn in_terminal(s: &TestStore, line: &str) -> String {
    let (shown, run) = in_terminal_run(s, line);
    assert_eq!(run.code, 0, "{}", report(&shown, &run, "success"));
    String::from_utf8_lossy(&run.stdout).into_owned()
}
