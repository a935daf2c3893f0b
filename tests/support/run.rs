//! The one way the tests run the real `stratum` binary (and the tools
//! around it), and look at the directories it leaves.
//!
//! Every process is started by [`spawn`]: stdin fed by a thread (a command
//! that stops reading early cannot deadlock against a full pipe), stdout and
//! stderr collected by threads (a process can be polled and killed without
//! a pipe filling up), and the result is an [`Out`]. [`Runner`] adds the
//! fault harness's audit of every process; the CLI tests' `TestStore`
//! (`tests/cli/util.rs`) adds a fresh store per test and expectations.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, LazyLock, Mutex};

use stratum::engine::format::fnv1a64;

/// The binary under test, as Cargo built it.
pub const BUILT: &str = env!("CARGO_BIN_EXE_stratum");

/// The binary under test: `$STRATUM_TEST_BIN` when set (so a regression test
/// can be shown to fail against an older build), else a private copy of
/// [`BUILT`], made once per test process in Cargo's scratch directory for
/// integration tests (named by its content, so reruns reuse it). A rebuild
/// of `target/release/stratum` while the tests run (another `cargo build` in
/// the same checkout) would otherwise make a run fail with "No such file" or
/// test a mix of versions.
pub fn bin() -> &'static Path {
    static BIN: LazyLock<PathBuf> = LazyLock::new(|| match std::env::var_os("STRATUM_TEST_BIN") {
        Some(p) => PathBuf::from(p),
        None => private_copy(),
    });
    &BIN
}

fn private_copy() -> PathBuf {
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
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("stratum-bin");
    fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join(format!("stratum-{h:016x}"));
    if fs::read(&path).ok().as_ref() != Some(&bytes) {
        let tmp = dir.join(format!("stratum-{h:016x}.{}.tmp", std::process::id()));
        // Copied by a child process, never through a write descriptor of
        // this one: a child forked by another test thread meanwhile would
        // inherit such a descriptor until its exec, and executing the copy
        // would then fail with ETXTBSY ("Text file busy").
        let copied = Command::new("cp")
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
}

/// A command for the binary on `dir` (`--dir dir`, then `args`), with no
/// variable stratum reads inherited from the test's environment.
pub fn stratum(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    clean_env(&mut cmd);
    cmd.arg("--dir").arg(dir).args(args);
    cmd
}

/// Removes every variable stratum (or a Rust program's panic output) reads,
/// so the test's environment cannot change what a run does.
pub fn clean_env(cmd: &mut Command) {
    for var in [
        "STRATUM_DIR",
        "NO_COLOR",
        "RUST_BACKTRACE",
        "RUST_LIB_BACKTRACE",
    ] {
        cmd.env_remove(var);
    }
}

/// Runs the binary on the store `dir` with `args` under `strace OPTS`, in
/// a clean environment. What a test wants of strace (a filter, a log file,
/// a fault to inject, the paths to watch) is all in `opts`.
pub fn strace<S: AsRef<std::ffi::OsStr>>(
    opts: impl IntoIterator<Item = S>,
    dir: &Path,
    args: &[&str],
) -> std::process::Output {
    let mut cmd = Command::new("strace");
    cmd.args(opts).arg(bin()).arg("--dir").arg(dir).args(args);
    clean_env(&mut cmd);
    cmd.output().expect("run strace (is it installed?)")
}

/// As [`strace`] with `-o LOG` added, for a run that must succeed: returns
/// the log.
pub fn strace_log(opts: &[&str], dir: &Path, args: &[&str]) -> String {
    let log = dir.with_extension("strace");
    let mut all: Vec<std::ffi::OsString> = opts.iter().map(Into::into).collect();
    all.extend(["-o".into(), log.clone().into_os_string()]);
    let o = strace(all, dir, args);
    assert!(
        o.status.success(),
        "{args:?} under strace: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    fs::read_to_string(&log).expect("read the strace log")
}

/// What a process did.
#[derive(Clone, Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The command line, for messages.
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
    /// `exit N` or `signal N`, for messages.
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

/// A spawned process whose output is collected by threads.
pub struct Running {
    child: Child,
    out: Option<std::thread::JoinHandle<Vec<u8>>>,
    err: Option<std::thread::JoinHandle<Vec<u8>>>,
    feeder: Option<std::thread::JoinHandle<()>>,
    what: String,
    audit: Option<Runner>,
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
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("cannot wait for {}: {e}", self.what));
        let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
            h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
        };
        let stdout = join(self.out.take());
        let stderr = join(self.err.take());
        if let Some(f) = self.feeder.take() {
            f.join().expect("stdin feeder");
        }
        let out = Out {
            code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
            what: self.what.clone(),
        };
        if let Some(r) = &self.audit {
            r.audit(&out);
        }
        out
    }
}

/// Starts `cmd` with stdin fed from `stdin` (or empty, never the terminal)
/// and stdout and stderr captured.
pub fn spawn(mut cmd: Command, stdin: Option<Vec<u8>>) -> Running {
    let what = describe(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let feeder = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let collect = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = pipe.read_to_end(&mut v);
            v
        })
    };
    let out = collect(Box::new(child.stdout.take().expect("piped stdout")));
    let err = collect(Box::new(child.stderr.take().expect("piped stderr")));
    Running {
        child,
        out: Some(out),
        err: Some(err),
        feeder,
        what,
        audit: None,
    }
}

/// Runs `cmd` to completion (see [`spawn`]).
pub fn run(cmd: Command, stdin: Option<Vec<u8>>) -> Out {
    spawn(cmd, stdin).wait()
}

/// The command line of `cmd` for messages: long arguments shortened, an
/// strace watch list (`-P path`, dozens of them) counted, the working
/// directory named.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    let watched = cmd.get_args().filter(|a| *a == "-P").count();
    let mut skip_next = false;
    for a in cmd.get_args() {
        if skip_next {
            skip_next = false;
            continue;
        }
        if a == "-P" {
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
    if let Some(dir) = cmd.get_current_dir() {
        s.push_str(&format!("  (in {})", dir.display()));
    }
    s
}

/// Strings that must never appear on any stderr the fault harness captures.
pub const FORBIDDEN: &[&str] = &["panicked at", "memory allocation of", "RUST_BACKTRACE"];

/// Counts of everything audited.
#[derive(Default, Debug)]
pub struct Audit {
    pub processes: u64,
    pub stderr_bytes: u64,
    pub problems: Vec<String>,
}

/// Runs processes and audits them; cheap to clone into worker threads.
///
/// A panic, an abort, a segfault or an allocation failure of any process it
/// ran is a failure of the test that ran it, reported by [`Runner::finish`].
#[derive(Clone)]
pub struct Runner {
    audit: Arc<Mutex<Audit>>,
}

/// A command to run, as plain data (so that it can be wrapped in strace or
/// prlimit before it runs).
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
    /// The same command and stdin run under `wrapper` (`strace … --`,
    /// `prlimit … --`): `wrapper`'s own arguments come first.
    pub fn wrapped_in(self, wrapper: Cmd) -> Cmd {
        Cmd {
            program: wrapper.program,
            args: wrapper
                .args
                .into_iter()
                .chain(std::iter::once(self.program))
                .chain(self.args)
                .collect(),
            stdin: self.stdin,
            cwd: self.cwd,
        }
    }
    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        clean_env(&mut c);
        c.args(&self.args);
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c
    }
}

impl Runner {
    pub fn new() -> Runner {
        Runner {
            audit: Arc::new(Mutex::new(Audit::default())),
        }
    }

    pub fn spawn(&self, cmd: Cmd) -> Running {
        let mut running = spawn(cmd.command(), cmd.stdin);
        running.audit = Some(self.clone());
        running
    }

    pub fn run(&self, cmd: Cmd) -> Out {
        self.spawn(cmd).wait()
    }

    /// Runs `stratum -q --dir dir <args>`.
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
        for a in [&self.audit, &*GLOBAL_AUDIT] {
            let mut a = a.lock().unwrap_or_else(|p| p.into_inner());
            a.processes += 1;
            a.stderr_bytes += out.stderr.len() as u64;
            a.problems.extend(problems.iter().cloned());
        }
    }

    /// Prints this test's audit figures and the totals of this test process
    /// so far, and fails on any problem.
    pub fn finish(&self, test: &str) {
        let a = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        let g = GLOBAL_AUDIT.lock().unwrap_or_else(|p| p.into_inner());
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

static GLOBAL_AUDIT: LazyLock<Arc<Mutex<Audit>>> =
    LazyLock::new(|| Arc::new(Mutex::new(Audit::default())));

/// `stratum -q --dir <dir> <args>`.
pub fn stratum_cmd(dir: &Path, args: &[&str]) -> Cmd {
    Cmd::new(bin())
        .arg("-q")
        .arg("--dir")
        .arg(dir)
        .args(args.iter().copied())
}

/// Fails the test when `tool`, which the README's "Testing" section lists
/// among what the tests need, is not installed: a test that skipped would
/// pass without checking anything. `.ci/run` installs them all.
pub fn require(tool: &str, package: &str) {
    let installed = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        installed,
        "`{tool}` is not installed (apt-get install {package}); the tests need it"
    );
}

// ---------------------------------------------------------------------------
// Directories

/// Names in a directory, hidden ones included, sorted; none when it does
/// not exist.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| {
                e.expect("read a directory entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Every file's bytes, by name: compared before and after, it shows that a
/// command changed nothing. A directory is listed as `name/` and anything
/// else that is not a regular file (a FIFO, a dangling link) as
/// `name (special)`, both without bytes, so that one appearing or going
/// away is a change too.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for n in names(dir) {
        let p = dir.join(&n);
        match fs::metadata(&p) {
            Ok(md) if md.is_file() => {
                let bytes = fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                m.insert(n, bytes);
            }
            Ok(md) if md.is_dir() => {
                m.insert(format!("{n}/"), Vec::new());
            }
            _ => {
                m.insert(format!("{n} (special)"), Vec::new());
            }
        }
    }
    m
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
