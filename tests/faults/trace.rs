//! Parsing `strace -f -y` logs, and the durability-protocol audit over them
//! (a small ALICE): what a command wrote, renamed, created and unlinked, and
//! whether it made each of those durable, in the right order, before it
//! reported success.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One system call as strace printed it.
#[derive(Clone, Debug, Default)]
pub struct Call {
    pub name: String,
    /// Path of the first argument when it is a file descriptor (`-y`).
    pub fd_path: Option<String>,
    /// Quoted path arguments, resolved against the working directory (or
    /// the `AT_FDCWD</dir>` annotation).
    pub paths: Vec<String>,
    /// The raw argument text (flags live here).
    pub args: String,
    pub ret: i64,
    pub errno: Option<String>,
    pub injected: bool,
}

impl Call {
    pub fn failed(&self) -> bool {
        self.ret < 0
    }
    pub fn path(&self) -> Option<&str> {
        self.fd_path
            .as_deref()
            .or(self.paths.first().map(String::as_str))
    }
}

/// A parsed log.
#[derive(Debug, Default)]
pub struct Trace {
    pub calls: Vec<Call>,
    pub exit: Option<i32>,
    pub signal: Option<String>,
}

/// Parses a log written by `strace -f -y -o`.
pub fn parse(text: &str, cwd: &Path) -> Trace {
    let mut t = Trace::default();
    // A call that another thread's call interrupts is printed in two
    // lines, `name(args <unfinished ...>` and `<... name resumed>rest) = r`
    // (`load` reads its input on a second thread): each thread's start,
    // until its call resumes and is read as one line, where it ended.
    let mut unfinished: BTreeMap<String, String> = BTreeMap::new();
    let mut joined;
    for raw in text.lines() {
        let (pid, mut line) = split_pid(raw);
        if let Some(start) = line.strip_suffix(" <unfinished ...>") {
            unfinished.insert(pid.to_owned(), start.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("<... ") {
            let (Some((_, tail)), Some(start)) =
                (rest.split_once(" resumed>"), unfinished.remove(pid))
            else {
                continue;
            };
            joined = format!("{start}{tail}");
            line = &joined;
        }
        if let Some(rest) = line.strip_prefix("+++ exited with ") {
            t.exit = rest.trim_end_matches(" +++").trim().parse().ok();
            continue;
        }
        if let Some(rest) = line.strip_prefix("+++ killed by ") {
            t.signal = Some(
                rest.trim_end_matches(" +++")
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            );
            continue;
        }
        let Some(open) = line.find('(') else { continue };
        let name = &line[..open];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        // strace pads short calls to a column: `mkdir("d", 0700)      = 0`.
        let Some(eq) = line.rfind(" = ") else {
            continue;
        };
        let Some(args) = line[open + 1..eq].trim_end().strip_suffix(')') else {
            continue;
        };
        let result = &line[eq + 3..];
        let mut call = Call {
            name: name.to_owned(),
            args: args.to_owned(),
            injected: result.contains("(INJECTED)"),
            ..Call::default()
        };
        let mut words = result.split_whitespace();
        let first = words.next().unwrap_or("");
        let num: String = first
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        call.ret = num.parse().unwrap_or(0);
        if call.ret < 0 {
            call.errno = words.next().map(str::to_owned);
        }
        let base =
            annotation_after(args, "AT_FDCWD<").map_or_else(|| cwd.to_path_buf(), PathBuf::from);
        if args.starts_with(|c: char| c.is_ascii_digit()) {
            call.fd_path = annotation_after(args, "<").map(str::to_owned);
        }
        for s in quoted(args) {
            let p = Path::new(&s);
            let abs = if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            };
            call.paths.push(normalize(&abs));
        }
        t.calls.push(call);
    }
    t
}

/// The pid a line of `strace -f` starts with (empty when none), and the rest.
fn split_pid(line: &str) -> (&str, &str) {
    let l = line.trim_start();
    if let Some(rest) = l.strip_prefix("[pid") {
        return rest
            .split_once(']')
            .map_or(("", l), |(pid, r)| (pid.trim(), r.trim_start()));
    }
    match l.split_once(' ') {
        Some((num, rest)) if !num.is_empty() && num.chars().all(|c| c.is_ascii_digit()) => {
            (num, rest.trim_start())
        }
        _ => ("", l),
    }
}

fn annotation_after<'a>(s: &'a str, marker: &str) -> Option<&'a str> {
    let at = s.find(marker)? + marker.len();
    let end = s[at..].find('>')?;
    Some(&s[at..at + end])
}

fn quoted(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut v = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        v.push(n);
                    }
                }
                '"' => break,
                c => v.push(c),
            }
        }
        // Data buffers are quoted too; they are never absolute-looking
        // short names, and are cut with "..." when long.
        if chars.peek() == Some(&'.') {
            continue;
        }
        out.push(v);
    }
    out
}

fn normalize(p: &Path) -> String {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.to_string_lossy().into_owned()
}

fn parent(p: &str) -> String {
    Path::new(p)
        .parent()
        .map(|x| x.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn file_name(p: &str) -> String {
    Path::new(p)
        .file_name()
        .map(|x| x.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_segment_file(name: &str) -> bool {
    name.starts_with("seg_") && (name.ends_with(".seg") || name.ends_with(".idx"))
}

/// What the audit of one trace found.
#[derive(Debug, Default)]
pub struct Report {
    pub violations: Vec<String>,
    /// Counts of what was checked.
    pub writes: u64,
    pub syncs: u64,
    pub dir_ops: u64,
    pub dir_syncs: u64,
    /// Failed fsync/fdatasync calls (injected or real).
    pub failed_syncs: Vec<String>,
    /// Calls strace failed on purpose (`(INJECTED)`).
    pub injected: u64,
    /// Temporary files renamed into place as segment or index files.
    pub renamed_in: u64,
    /// Segment and index files that existed before and were unlinked.
    pub old_unlinks: u64,
    /// Of those, unlinked before any file was renamed into place.
    pub old_unlinks_before_rename_in: u64,
}

/// Audits the durability protocol of one command that touched `dir`.
/// `existing` holds the names in `dir` before the command ran.
///
/// Rules, when the command exited 0:
/// 1. every file in `dir` that was written or truncated is fsynced (by any
///    descriptor) after its last write;
/// 2. every create, rename, unlink in `dir` (and the `mkdir` of `dir` in its
///    parent) is followed by an fsync of that directory;
/// 3. a file is fsynced before it is renamed (any exit status);
/// 4. a segment or index file that existed before is unlinked only after
///    every rename so far was made durable by a directory fsync, and only
///    after the directory was fsynced at all in this process (any exit);
/// 5. a failed fsync is never followed by exit 0.
pub fn audit(trace: &Trace, dir: &Path, existing: &BTreeSet<String>) -> Report {
    let dir_s = normalize(dir);
    let parent_s = parent(&dir_s);
    let inside = |p: &str| p == dir_s || parent(p) == dir_s;
    let mut r = Report::default();
    let mut dirty: BTreeSet<String> = BTreeSet::new();
    let mut present: BTreeSet<String> = existing.iter().map(|n| format!("{dir_s}/{n}")).collect();
    let mut pending: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unsynced_renames = 0u64;
    let mut dir_synced = false;
    let pre_existing: BTreeSet<String> = present.clone();
    let note = |pending: &mut BTreeMap<String, Vec<String>>, d: String, what: String| {
        pending.entry(d).or_default().push(what);
    };
    for (i, c) in trace.calls.iter().enumerate() {
        let at = format!("#{i} {}({})", c.name, c.path().unwrap_or("?"));
        if c.injected {
            r.injected += 1;
        }
        match c.name.as_str() {
            "openat" => {
                let Some(p) = c.paths.first() else { continue };
                if c.failed() || !inside(p) || p == &dir_s {
                    continue;
                }
                let creates = c.args.contains("O_CREAT")
                    && (c.args.contains("O_EXCL") || !present.contains(p));
                if creates {
                    present.insert(p.clone());
                    r.dir_ops += 1;
                    note(&mut pending, parent(p), format!("create {}", file_name(p)));
                }
            }
            "write" | "pwrite64" | "ftruncate" => {
                let Some(p) = &c.fd_path else { continue };
                if inside(p) && p != &dir_s && !c.failed() {
                    r.writes += 1;
                    dirty.insert(p.clone());
                }
            }
            "fsync" | "fdatasync" => {
                let Some(p) = &c.fd_path else { continue };
                if !(inside(p) || p == &parent_s) {
                    continue;
                }
                if c.failed() {
                    r.failed_syncs
                        .push(format!("{at} = {}", c.errno.as_deref().unwrap_or("?")));
                    continue;
                }
                if p == &dir_s || p == &parent_s {
                    r.dir_syncs += 1;
                    pending.remove(p);
                    if p == &dir_s {
                        unsynced_renames = 0;
                        dir_synced = true;
                    }
                } else {
                    r.syncs += 1;
                    dirty.remove(p);
                }
            }
            "rename" | "renameat" | "renameat2" => {
                if c.failed() || c.paths.len() < 2 {
                    continue;
                }
                let (from, to) = (c.paths[0].clone(), c.paths[1].clone());
                if !(inside(&from) || inside(&to)) {
                    continue;
                }
                if dirty.remove(&from) {
                    r.violations.push(format!(
                        "{at}: renamed before its last write was fsynced (rule 3)"
                    ));
                    dirty.insert(to.clone());
                }
                present.remove(&from);
                present.insert(to.clone());
                r.dir_ops += 1;
                unsynced_renames += 1;
                if is_segment_file(&file_name(&to))
                    && file_name(&from).ends_with(super::support::TMP_SUFFIX)
                {
                    r.renamed_in += 1;
                }
                note(
                    &mut pending,
                    parent(&from),
                    format!("rename {} → {}", file_name(&from), file_name(&to)),
                );
                if parent(&from) != parent(&to) {
                    note(
                        &mut pending,
                        parent(&to),
                        format!("rename into {}", file_name(&to)),
                    );
                }
            }
            "unlink" | "unlinkat" => {
                let Some(p) = c.paths.first().cloned() else {
                    continue;
                };
                if c.failed() || !inside(&p) {
                    continue;
                }
                if pre_existing.contains(&p) && is_segment_file(&file_name(&p)) {
                    if unsynced_renames > 0 {
                        r.violations.push(format!(
                            "{at}: an old segment file is unlinked while {unsynced_renames} rename(s) are not yet durable (rule 4)"
                        ));
                    }
                    if !dir_synced {
                        r.violations.push(format!(
                            "{at}: an old segment file is unlinked before the directory state it relies on was fsynced (rule 4)"
                        ));
                    }
                    r.old_unlinks += 1;
                    if r.renamed_in == 0 {
                        r.old_unlinks_before_rename_in += 1;
                    }
                }
                present.remove(&p);
                dirty.remove(&p);
                r.dir_ops += 1;
                note(
                    &mut pending,
                    parent(&p),
                    format!("unlink {}", file_name(&p)),
                );
            }
            "mkdir" => {
                let Some(p) = c.paths.first().cloned() else {
                    continue;
                };
                if c.failed() || p != dir_s {
                    continue;
                }
                r.dir_ops += 1;
                note(&mut pending, parent(&p), format!("mkdir {}", file_name(&p)));
            }
            _ => {}
        }
    }
    if trace.exit == Some(0) {
        for p in &dirty {
            r.violations.push(format!(
                "exit 0 with {p} written but not fsynced after its last write (rule 1)"
            ));
        }
        for (d, ops) in &pending {
            r.violations.push(format!(
                "exit 0 with directory {d} not fsynced after: {} (rule 2)",
                ops.join(", ")
            ));
        }
        for f in &r.failed_syncs {
            r.violations
                .push(format!("exit 0 after a failed fsync: {f} (rule 5)"));
        }
    }
    r
}

#[test]
fn a_call_another_thread_interrupted_is_read_as_one_call() {
    let log = "\
7 fdatasync(5</d/seg_000002.seg.stratum-tmp> <unfinished ...>
8 read(3</in.jsonl>, \"x\", 1) = 1
7 <... fdatasync resumed>)             = 0
7 rename(\"/d/seg_000002.seg.stratum-tmp\", \"/d/seg_000002.seg\") = 0
";
    let t = parse(log, Path::new("/"));
    let names: Vec<&str> = t.calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["read", "fdatasync", "rename"]);
    let sync = &t.calls[1];
    assert_eq!(
        sync.fd_path.as_deref(),
        Some("/d/seg_000002.seg.stratum-tmp")
    );
    assert_eq!(sync.ret, 0);
}
