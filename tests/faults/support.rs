//! The fault harness's tools on top of the shared runner
//! (`tests/support/run.rs`, re-exported here): strace and prlimit wrappers,
//! the paths a command may touch, tiers, seeds and a tmpfs.
//!
//! Every process the harness starts goes through [`Runner::run`], which
//! records its exit status and scans its stderr: a panic, an abort, a
//! segfault or an allocation failure anywhere in the harness is a failure of
//! the test that caused it (item 9 of the harness's brief).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use stratum::engine::format::fnv1a64;

pub use crate::run::{Cmd, Out, Runner, Running, bin, names, reset_dir, snapshot, stratum_cmd};

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

/// Temporary files stratum left in `dir`.
pub fn tmp_files(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.ends_with(TMP_SUFFIX))
        .collect()
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
    for n in [
        "LOCK",
        "MANIFEST",
        "active.seg",
        "active.idx",
        "keys.base",
        "keys.recent",
    ] {
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
    inner.wrapped_in(c.arg("--"))
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

/// Fails the test unless every one of `tools` is installed (see
/// [`crate::run::require`]).
pub fn require_tools(tools: &[&str]) {
    for t in tools {
        let package = match *t {
            "flock" | "prlimit" => "util-linux",
            "timeout" => "coreutils",
            "/usr/bin/time" => "time",
            other => other,
        };
        crate::run::require(t, package);
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
