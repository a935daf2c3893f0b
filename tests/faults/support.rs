//! Running the real binary (plain, under strace, under prlimit), auditing
//! every process it starts, temporary stores, and a small seeded RNG.
//!
//! Every process the harness starts goes through [`Runner::run`], which
//! records its exit status and scans its stderr: a panic, an abort, a
//! segfault or an allocation failure anywhere in the harness is a failure of
//! the test that caused it (item 9 of the harness's brief).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use stratum::engine::format::fnv1a64;

/// The binary under test, as Cargo built it.
const BUILT: &str = env!("CARGO_BIN_EXE_stratum");

/// A private copy of the binary under test, made once per test process in
/// Cargo's scratch directory for integration tests (named by its content,
/// so reruns reuse it). A rebuild of `target/release/stratum` while the
/// harness runs (another `cargo build` in the same checkout) would
/// otherwise make a run fail with "No such file" or test a mix of versions.
pub fn bin() -> &'static Path {
    static COPY: std::sync::LazyLock<PathBuf> = std::sync::LazyLock::new(|| {
        let mut bytes = Vec::new();
        for _ in 0..100 {
            match fs::read(BUILT) {
                Ok(b) if !b.is_empty() => {
                    bytes = b;
                    break;
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
        assert!(!bytes.is_empty(), "cannot read {BUILT}");
        let h = fnv1a64(&bytes);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults-bin");
        fs::create_dir_all(&dir).expect("scratch dir");
        let path = dir.join(format!("stratum-{h:016x}"));
        if fs::read(&path).ok().as_ref() != Some(&bytes) {
            let tmp = dir.join(format!("stratum-{h:016x}.{}.tmp", std::process::id()));
            // Copied by a child process, never through a write descriptor of
            // this one: a child forked by another test thread meanwhile would
            // inherit such a descriptor until its exec, and executing the copy
            // would then fail with ETXTBSY ("Text file busy").
            let copied = std::process::Command::new("cp")
                .arg(BUILT)
                .arg(&tmp)
                .status()
                .expect("run cp");
            assert!(copied.success(), "cp {BUILT} {}", tmp.display());
            assert_eq!(
                fs::read(&tmp).ok().as_ref(),
                Some(&bytes),
                "the binary changed while copied"
            );
            let mut perm = fs::metadata(&tmp).expect("stat").permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
            fs::set_permissions(&tmp, perm).expect("chmod");
            fs::rename(&tmp, &path).expect("rename the copy");
        }
        path
    });
    &COPY
}

/// Temporary-file suffix stratum uses (and must never leave behind).
pub const TMP_SUFFIX: &str = ".stratum-tmp";

/// The mutating system calls the kill and I/O-error sweeps walk through.
pub const MUTATING: &[&str] = &[
    "openat",
    "write",
    "pwrite64",
    "fdatasync",
    "fsync",
    "rename",
    "renameat2",
    "unlink",
    "unlinkat",
    "ftruncate",
    "mkdir",
];

/// Strings that must never appear on any stderr the harness captures.
pub const FORBIDDEN: &[&str] = &["panicked at", "memory allocation of", "RUST_BACKTRACE"];

/// Fails the test when any violation was recorded, listing the first 25.
pub fn assert_no_violations(violations: &[String]) {
    assert!(
        violations.is_empty(),
        "{} violations:\n{}",
        violations.len(),
        violations[..violations.len().min(25)].join("\n")
    );
}

/// True for the long tier (`STRATUM_LONG=1`).
pub fn long() -> bool {
    std::env::var("STRATUM_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A numeric environment override, else `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// What a process did.
#[derive(Clone, Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub what: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// Died of `sig` (directly, or as reported by a wrapper such as strace,
    /// which re-raises the signal, or a shell, which exits 128+sig).
    pub fn killed_by(&self, sig: i32) -> bool {
        self.signal == Some(sig) || self.code == Some(128 + sig)
    }
    /// `code=…`/`signal=…` for messages.
    pub fn status(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(s)) => format!("signal {s}"),
            _ => "unknown status".into(),
        }
    }
    /// One line describing the run, for failure messages.
    pub fn describe(&self) -> String {
        let err = self.err();
        let err = err.trim();
        let err: String = err.chars().take(600).collect();
        format!("`{}` → {}; stderr: {err:?}", self.what, self.status())
    }
}

/// Counts of everything audited.
#[derive(Default, Debug)]
pub struct Audit {
    pub processes: u64,
    pub stderr_bytes: u64,
    pub problems: Vec<String>,
}

/// Runs processes and audits them; cheap to clone into worker threads.
#[derive(Clone)]
pub struct Runner {
    audit: Arc<Mutex<Audit>>,
}

/// A command to run.
pub struct Cmd {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub stdin: Option<Vec<u8>>,
    pub cwd: Option<PathBuf>,
}

impl Cmd {
    pub fn new(program: impl Into<OsString>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            stdin: None,
            cwd: None,
        }
    }
    pub fn arg(mut self, a: impl Into<OsString>) -> Cmd {
        self.args.push(a.into());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, it: I) -> Cmd {
        self.args.extend(it.into_iter().map(Into::into));
        self
    }
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(data.into());
        self
    }
    pub fn cwd(mut self, dir: &Path) -> Cmd {
        self.cwd = Some(dir.to_path_buf());
        self
    }
    fn describe(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        let watched = self.args.iter().filter(|a| *a == "-P").count();
        let mut skip_next = false;
        for a in &self.args {
            if skip_next {
                skip_next = false;
                continue;
            }
            if a == "-P" {
                // strace's watch list: dozens of store paths, summarized.
                skip_next = true;
                continue;
            }
            let a = a.to_string_lossy();
            s.push(' ');
            if a.len() > 80 {
                s.extend(a.chars().take(60));
                s.push_str(&format!("…({} bytes)", a.len()));
            } else {
                s.push_str(&a);
            }
        }
        if watched > 0 {
            s.push_str(&format!(" [strace -P × {watched}]"));
        }
        s
    }
    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args)
            .env_remove("STRATUM_DIR")
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c
    }
}

/// A spawned process whose output is collected by threads, so that it can
/// be polled and killed without a pipe filling up.
pub struct Running {
    child: Child,
    out: Option<std::thread::JoinHandle<Vec<u8>>>,
    err: Option<std::thread::JoinHandle<Vec<u8>>>,
    what: String,
    runner: Runner,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// Polls; `true` once it has exited (and was reaped).
    pub fn try_done(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
    /// SIGKILL, unless it has already been reaped (std never signals a
    /// reaped child, so a recycled pid is never hit).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }
    pub fn wait(mut self) -> Out {
        let status = self.child.wait().expect("wait for a child");
        let stdout = self
            .out
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let stderr = self
            .err
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let out = Out {
            code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
            what: self.what.clone(),
        };
        self.runner.audit(&out);
        out
    }
}

impl Runner {
    pub fn new() -> Runner {
        Runner {
            audit: Arc::new(Mutex::new(Audit::default())),
        }
    }

    pub fn spawn(&self, cmd: Cmd) -> Running {
        let mut child = cmd
            .command()
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", cmd.describe()));
        if let Some(data) = cmd.stdin.clone() {
            let mut stdin = child.stdin.take().expect("piped stdin");
            std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            });
        }
        let mut so = child.stdout.take().expect("piped stdout");
        let mut se = child.stderr.take().expect("piped stderr");
        let out = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = so.read_to_end(&mut v);
            v
        });
        let err = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = se.read_to_end(&mut v);
            v
        });
        Running {
            child,
            out: Some(out),
            err: Some(err),
            what: cmd.describe(),
            runner: self.clone(),
        }
    }

    pub fn run(&self, cmd: Cmd) -> Out {
        self.spawn(cmd).wait()
    }

    /// Runs `stratum <args>` with `--dir dir` and `-q`.
    pub fn stratum(&self, dir: &Path, args: &[&str]) -> Out {
        self.run(stratum_cmd(dir, args))
    }

    /// Records one finished process: a panic, an abort, a crash signal or
    /// an allocation failure is a problem whatever the test expected.
    pub fn audit(&self, out: &Out) {
        let mut problems = Vec::new();
        if matches!(out.code, Some(101 | 134 | 139)) {
            problems.push(format!("forbidden exit code: {}", out.describe()));
        }
        if let Some(sig) = out.signal
            && [
                libc::SIGABRT,
                libc::SIGSEGV,
                libc::SIGBUS,
                libc::SIGILL,
                libc::SIGFPE,
            ]
            .contains(&sig)
        {
            problems.push(format!("died of signal {sig}: {}", out.describe()));
        }
        let err = out.err();
        for f in FORBIDDEN {
            if err.contains(f) {
                problems.push(format!("stderr contains {f:?}: {}", out.describe()));
            }
        }
        for a in [&self.audit, &*GLOBAL_ARC] {
            let mut a = a.lock().unwrap_or_else(|p| p.into_inner());
            a.processes += 1;
            a.stderr_bytes += out.stderr.len() as u64;
            a.problems.extend(problems.iter().cloned());
        }
    }

    /// Prints this test's audit figures and the harness-wide totals so far,
    /// and fails on any problem.
    pub fn finish(&self, test: &str) {
        let a = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        let g = GLOBAL_ARC.lock().unwrap_or_else(|p| p.into_inner());
        eprintln!(
            "[{test}] stderr audit: {} processes, {} stderr bytes scanned, {} with panic/abort/crash/allocation failure \
             (harness so far: {} processes, {} bytes, {} problems)",
            a.processes,
            a.stderr_bytes,
            a.problems.len(),
            g.processes,
            g.stderr_bytes,
            g.problems.len()
        );
        assert!(
            a.problems.is_empty(),
            "[{test}] {} processes panicked, aborted or crashed:\n{}",
            a.problems.len(),
            a.problems
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

static GLOBAL_ARC: std::sync::LazyLock<Arc<Mutex<Audit>>> =
    std::sync::LazyLock::new(|| Arc::new(Mutex::new(Audit::default())));

/// `stratum -q --dir <dir> <args>`.
pub fn stratum_cmd(dir: &Path, args: &[&str]) -> Cmd {
    Cmd::new(bin())
        .arg("-q")
        .arg("--dir")
        .arg(dir)
        .args(args.iter().copied())
}

/// A test's context: a runner and a temporary directory.
pub struct Ctx {
    pub name: &'static str,
    pub run: Runner,
    pub tmp: tempfile::TempDir,
    started: Instant,
}

impl Ctx {
    pub fn new(name: &'static str) -> Ctx {
        Ctx {
            name,
            run: Runner::new(),
            tmp: tempfile::Builder::new()
                .prefix(&format!("stratum-faults-{name}-"))
                .tempdir()
                .expect("temporary directory"),
            started: Instant::now(),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
    /// Prints the audit and the run time; fails on any audit problem.
    pub fn finish(self) {
        eprintln!(
            "[{}] run time: {:.1} s",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
        self.run.finish(self.name);
    }
}

/// Replaces `dst` by a copy of `src` (regular files only; `src` missing
/// means `dst` is removed and not recreated).
pub fn reset_dir(src: &Path, dst: &Path) {
    if dst.exists() {
        fs::remove_dir_all(dst).expect("remove work dir");
    }
    if !src.exists() {
        return;
    }
    fs::create_dir_all(dst).expect("create work dir");
    for e in fs::read_dir(src).expect("read template") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_file() {
            fs::copy(e.path(), dst.join(e.file_name())).expect("copy template file");
        }
    }
}

/// Names in a directory, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Temporary files stratum left in `dir`.
pub fn tmp_files(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.ends_with(TMP_SUFFIX))
        .collect()
}

/// Every file's bytes, by name.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for n in names(dir) {
        let p = dir.join(&n);
        if p.is_file() {
            m.insert(n, fs::read(p).unwrap_or_default());
        }
    }
    m
}

/// The highest segment number in use in `dir` (file names and the active
/// segment's header).
pub fn max_segment(dir: &Path) -> u64 {
    let mut max = 0;
    for n in names(dir) {
        if let Some(Ok(v)) = n
            .strip_prefix("seg_")
            .and_then(|r| r.get(..6))
            .map(str::parse::<u64>)
        {
            max = max.max(v);
        }
    }
    if let Ok(b) = fs::read(dir.join("active.seg"))
        && let Some(h) = b.get(16..24)
    {
        max = max.max(u64::from_le_bytes(h.try_into().unwrap_or([0; 8])));
    }
    max
}

/// Every path stratum may touch in `dir` (for `strace -P`): the directory,
/// its fixed names, and segment/index names (and their temporaries) up to a
/// margin past the highest segment in use.
pub fn watch_paths(dir: &Path) -> Vec<PathBuf> {
    let top = max_segment(dir) + 12;
    let mut v = vec![dir.to_path_buf()];
    for n in ["LOCK", "active.seg", "active.idx"] {
        v.push(dir.join(n));
        v.push(dir.join(format!("{n}{TMP_SUFFIX}")));
    }
    for i in 1..=top {
        for ext in ["seg", "idx"] {
            let n = format!("seg_{i:06}.{ext}");
            v.push(dir.join(&n));
            v.push(dir.join(format!("{n}{TMP_SUFFIX}")));
        }
    }
    v
}

/// `strace -f -o <log> -P … -e trace=<trace> [-e inject=<inject>] [-y]`
/// around `inner`.
pub fn under_strace(
    inner: Cmd,
    log: &Path,
    paths: &[PathBuf],
    trace: &str,
    inject: Option<&str>,
    fd_paths: bool,
) -> Cmd {
    let mut c = Cmd::new("strace").arg("-f").arg("-o").arg(log);
    if fd_paths {
        c = c.arg("-y");
    }
    for p in paths {
        c = c.arg("-P").arg(p);
    }
    c = c.arg("-e").arg(format!("trace={trace}"));
    if let Some(i) = inject {
        c = c.arg("-e").arg(format!("inject={i}"));
    }
    c.arg("--")
        .arg(inner.program)
        .args(inner.args)
        .with_stdin(inner.stdin)
        .with_cwd(inner.cwd)
}

impl Cmd {
    fn with_stdin(mut self, s: Option<Vec<u8>>) -> Cmd {
        self.stdin = s;
        self
    }
    fn with_cwd(mut self, d: Option<PathBuf>) -> Cmd {
        self.cwd = d;
        self
    }
}

/// Counts the calls of each name in an strace log.
pub fn count_calls(log: &Path) -> BTreeMap<String, u64> {
    let text = fs::read_to_string(log).unwrap_or_default();
    let mut m = BTreeMap::new();
    for line in text.lines() {
        if let Some(name) = call_name(line) {
            *m.entry(name.to_owned()).or_insert(0) += 1;
        }
    }
    m
}

/// The syscall name of one strace line (`[pid N] ` or `N ` prefixes
/// allowed); `None` for `+++`/`---` lines and resumptions.
pub fn call_name(line: &str) -> Option<&str> {
    let mut l = line.trim_start();
    if let Some(rest) = l.strip_prefix("[pid") {
        l = rest.split_once(']')?.1.trim_start();
    } else if l.starts_with(|c: char| c.is_ascii_digit()) {
        let (num, rest) = l.split_once(' ')?;
        if num.chars().all(|c| c.is_ascii_digit()) {
            l = rest.trim_start();
        }
    }
    if l.starts_with("+++") || l.starts_with("---") || l.starts_with('<') {
        return None;
    }
    let name = &l[..l.find('(')?];
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(name)
}

/// Whether the tools this harness needs exist; the tests say so and fail
/// if not (they are installed by `.ci/run`).
pub fn require_tools(tools: &[&str]) {
    for t in tools {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {t}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "the fault harness needs `{t}` on PATH (.ci/run installs it)"
        );
    }
}

pub use stratum::sim::Rng;

/// The generator for test `test`, seeded from `STRATUM_FAULT_SEED` or the
/// clock; the seed is printed so that a failure can be replayed.
pub fn rng(test: &str) -> Rng {
    let seed = std::env::var("STRATUM_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("[{test}] seed: {seed} (replay with STRATUM_FAULT_SEED={seed})");
    Rng::new(seed)
}

/// A tmpfs mounted for the life of the value (unmounted on drop, also when
/// a test fails).
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options` at `path`; `Err` with the reason when
    /// this sandbox does not allow it.
    pub fn mount(path: &Path, options: &str) -> Result<Tmpfs, String> {
        fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// SHA-less content fingerprint (FNV-1a 64) of a file, `None` if unreadable.
pub fn fingerprint(path: &Path) -> Option<u64> {
    fs::read(path).ok().map(|b| fnv1a64(&b))
}
