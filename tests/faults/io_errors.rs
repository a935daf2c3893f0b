//! Item 5: I/O errors. EIO and ENOSPC injected by strace into each mutating
//! call a command makes on its store, at each occurrence, once (`when=N`)
//! and persistently (`when=N+`); and a real full disk on a small tmpfs.
//!
//! A run that fails must exit 7 with the errno text on a `stratum:` line and
//! print no acknowledgement; a run that exits 0 despite the fault must pass
//! the durability audit of its trace (so a failed fsync followed by exit 0
//! is a violation, retried or not) and hold the acknowledged state. Either
//! way, with the fault removed, the store verifies, holds the model with the
//! command absent or applied, takes the next write, and keeps no temporary
//! file.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use crate::cases::{Case, Cases, count_case_calls};
use crate::history::{
    self, Command, Model, Target, add_input, create_doc, delete_doc, op_cmd, text_doc,
};
use crate::oracle::{check_acknowledged, check_recovery, probe_and_reverify};
use crate::support::{Ctx, Tmpfs, long, names, snapshot, tmp_files, under_strace};
use crate::trace;

/// The calls faults are injected into.
const CALLS: &[&str] = &[
    "write",
    "pwrite64",
    "fdatasync",
    "fsync",
    "rename",
    "openat",
    "ftruncate",
    "unlink",
    "mkdir",
];

#[derive(Default)]
struct Figures {
    runs: u64,
    failed_exit7: u64,
    succeeded_anyway: u64,
    failed_syncs: u64,
    failed_syncs_then_exit0: u64,
    violations: Vec<String>,
}

fn errno_text(errno: &str) -> &'static str {
    match errno {
        "EIO" => "Input/output error",
        _ => "No space left on device",
    }
}

fn inject_case(cx: &Ctx, case: &Case, f: &mut Figures) {
    let work = match case.template {
        Some(_) => cx.path("work"),
        None => cx.path("fresh-parent").join("data"),
    };
    if let Some(p) = work.parent() {
        fs::create_dir_all(p).expect("parent");
    }
    let counts = count_case_calls(cx, case, &work);
    let watch = case.watch(&work);
    let log = cx.path("inject.log");
    let mut per_case = 0;
    for call in CALLS {
        let Some(&count) = counts.get(*call) else {
            continue;
        };
        for n in 1..=count {
            for errno in ["EIO", "ENOSPC"] {
                for persistent in [false, true] {
                    case.reset(&work);
                    let existing: BTreeSet<String> = names(&work).into_iter().collect();
                    let when = if persistent {
                        format!("{n}+")
                    } else {
                        n.to_string()
                    };
                    let out = cx.run.run(under_strace(
                        op_cmd(&work, &case.seg, &case.op),
                        &log,
                        &watch,
                        &crate::support::MUTATING.join(","),
                        Some(&format!("{call}:error={errno}:when={when}")),
                        true,
                    ));
                    f.runs += 1;
                    per_case += 1;
                    let t = trace::parse(
                        &fs::read_to_string(&log).unwrap_or_default(),
                        work.parent().unwrap_or(&work),
                    );
                    let audit = trace::audit(&t, &work, &existing);
                    f.failed_syncs += audit.failed_syncs.len() as u64;
                    let label = format!("[{}] {errno} on {call} when={when}", case.name);
                    let mut verdict = judge(cx, case, &work, &out, &audit, errno);
                    let changed = case.changed_sealed(&work);
                    if verdict.is_ok() && !changed.is_empty() {
                        verdict = Err(format!("sealed segments modified in place: {changed:?}"));
                    }
                    match &verdict {
                        Ok(true) => f.succeeded_anyway += 1,
                        Ok(false) => f.failed_exit7 += 1,
                        Err(_) => {}
                    }
                    if out.ok() && !audit.failed_syncs.is_empty() {
                        f.failed_syncs_then_exit0 += 1;
                    }
                    let recovered = if out.ok() {
                        Ok(())
                    } else {
                        check_recovery(&cx.run, &work, &case.seg, &case.model, &case.op).map(|_| ())
                    };
                    for e in [verdict.err(), recovered.err()].into_iter().flatten() {
                        f.violations.push(format!("{label}: {e}"));
                    }
                }
            }
        }
    }
    eprintln!("[{}] {:<52} {per_case:>4} faulted runs", cx.name, case.name);
}

/// `Ok(true)`: the command succeeded despite the fault, correctly;
/// `Ok(false)`: it failed correctly.
fn judge(
    cx: &Ctx,
    case: &Case,
    work: &Path,
    out: &crate::support::Out,
    audit: &trace::Report,
    errno: &str,
) -> Result<bool, String> {
    if out.ok() {
        if !audit.violations.is_empty() {
            return Err(format!("exit 0, but: {}", audit.violations.join("; ")));
        }
        check_acknowledged(&cx.run, work, &case.model, &case.op, &out.out())?;
        return Ok(true);
    }
    if out.code != Some(7) {
        return Err(format!("expected exit 7: {}", out.describe()));
    }
    let err = out.err();
    if !err.lines().all(|l| l.starts_with("stratum: ")) {
        return Err(format!(
            "stderr has lines not starting with `stratum: `: {err:?}"
        ));
    }
    if !err.contains(errno_text(errno)) {
        return Err(format!(
            "stderr does not name the error ({}): {err:?}",
            errno_text(errno)
        ));
    }
    if !out.stdout.is_empty() {
        return Err(format!("failed, yet printed {:?}", out.out()));
    }
    Ok(false)
}

fn run_cases(cx: Ctx, cases: Vec<Case>) {
    let mut f = Figures::default();
    for c in &cases {
        inject_case(&cx, c, &mut f);
    }
    eprintln!(
        "[{}] injected I/O errors: {} runs ({} exit 7 with the errno text, {} succeeded despite the fault, correctly); \
         failed fsyncs: {}, followed by exit 0: {}; violations: {}",
        cx.name,
        f.runs,
        f.failed_exit7,
        f.succeeded_anyway,
        f.failed_syncs,
        f.failed_syncs_then_exit0,
        f.violations.len()
    );
    let v = f.violations;
    cx.finish();
    crate::support::assert_no_violations(&v);
}

#[test]
fn io_errors_in_single_record_commands() {
    crate::support::require_tools(&["strace"]);
    let cx = Ctx::new("eio-single");
    let cases = Cases::build(&cx);
    let mut v = cases.single_commands();
    v.push(cases.first_write());
    v.extend(cases.batches());
    run_cases(cx, v);
}

#[test]
fn io_errors_in_rotation_and_compaction() {
    crate::support::require_tools(&["strace"]);
    let cx = Ctx::new("eio-rotation-compaction");
    let cases = Cases::build(&cx);
    let mut v = cases.rotation_and_compaction();
    // Four faults per call of a compaction over many segments is the
    // long tier's (about 100 s); the quick tier keeps the 4-segment one.
    if !crate::support::long() {
        v.retain(|c| !c.name.contains("sealed segments"));
    }
    run_cases(cx, v);
}

#[test]
fn io_errors_during_crash_recovery() {
    crate::support::require_tools(&["strace"]);
    let cx = Ctx::new("eio-recovery");
    let cases = Cases::build(&cx);
    let v = cases.recovery(&cx);
    run_cases(cx, v);
}

/// Mounts a tmpfs, or explains (once, on stderr) why this sandbox cannot.
fn tmpfs(cx: &Ctx, name: &str, options: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(&cx.path(name), options) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!(
                "[{}] SKIPPED real full-disk checks: cannot mount a tmpfs here ({e}); \
                 injected ENOSPC and prlimit EFBIG cover the error paths",
                cx.name
            );
            None
        }
    }
}

fn filler_doc(i: u64, pad: usize) -> Command {
    create_doc(text_doc(
        format!("fill {i} {}", "f".repeat(pad)),
        None,
        None,
    ))
}

/// Writes until the disk is full; checks the failure, the store, and that
/// it continues once space is freed (the tmpfs is grown).
#[test]
fn real_full_disk_on_tmpfs() {
    let cx = Ctx::new("full-disk");
    let step = if long() { 4 } else { 24 };
    let mut sizes = 0;
    let mut violations: Vec<String> = Vec::new();
    let mut writes = 0;
    for kib in (16..=256).step_by(step) {
        let Some(fs_) = tmpfs(&cx, &format!("tmpfs-{kib}"), &format!("size={kib}k")) else {
            cx.finish();
            return;
        };
        sizes += 1;
        let dir = fs_.path.join("store");
        let mut m = Model::default();
        let mut i = 0u64;
        let failed = loop {
            i += 1;
            let op = if i.is_multiple_of(3) && m.doc_hwm > 0 {
                add_input(
                    Target::Id(m.doc_hwm),
                    format!("{{\"i\":{i},\"pad\":\"{}\"}}", "p".repeat(700)),
                    Some("1".into()),
                )
            } else {
                filler_doc(i, 500)
            };
            let out = cx.run.run(op_cmd(&dir, "4096", &op));
            writes += 1;
            if out.ok() {
                match check_acknowledged(&cx.run, &dir, &m, &op, &out.out()) {
                    Ok(next) => m = next,
                    Err(e) => {
                        violations.push(format!("{kib} KiB: write {i}: {e}"));
                        break None;
                    }
                }
                if i > 10_000 {
                    violations.push(format!("{kib} KiB: never filled up"));
                    break None;
                }
                continue;
            }
            break Some((op, out));
        };
        let Some((op, out)) = failed else { continue };
        if out.code != Some(7) || !out.err().contains("No space left on device") {
            violations.push(format!(
                "{kib} KiB: full disk: expected exit 7 with \"No space left on device\": {}",
                out.describe()
            ));
        }
        let v = cx.run.stratum(&dir, &["verify"]);
        if !v.ok() {
            violations.push(format!(
                "{kib} KiB: verify on the full disk: {}",
                v.describe()
            ));
        }
        // Free space (grow the file system) and continue.
        let grown = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={}k", kib + 256)])
            .arg(&fs_.path)
            .status()
            .is_ok_and(|s| s.success());
        if !grown {
            violations.push(format!("{kib} KiB: could not grow the tmpfs"));
            continue;
        }
        match check_recovery(&cx.run, &dir, "4096", &m, &op) {
            Ok(_) => {}
            Err(e) => violations.push(format!("{kib} KiB: after freeing space: {e}")),
        }
    }
    eprintln!(
        "[{}] real full disk: {sizes} tmpfs sizes from 16 to 256 KiB, {writes} writes, violations: {}",
        cx.name,
        violations.len()
    );
    cx.finish();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// A compaction that cannot finish (no room for the merged segment, or no
/// inode for its files) fails with exit 7 and leaves the old segments
/// byte-identical; the next run leaves no temporary file.
#[test]
fn failed_compaction_on_a_full_tmpfs_leaves_old_segments_intact() {
    let cx = Ctx::new("full-disk-compaction");
    let mut figures = Vec::new();
    let mut violations = Vec::new();
    // A store with garbage to reclaim, built on the normal disk.
    let tpl = cx.path("template");
    let mut m = Model::default();
    for i in 0..12 {
        history::exec(&cx.run, &tpl, "4096", &mut m, &filler_doc(i, 600));
    }
    for i in 1..=6 {
        history::exec(&cx.run, &tpl, "4096", &mut m, &delete_doc(Target::Id(i)));
    }
    // tmpfs charges whole pages per file.
    let tpl_pages: u64 = snapshot(&tpl)
        .values()
        .map(|b| (b.len() as u64).div_ceil(4096))
        .sum();
    let files = names(&tpl).len() as u64;
    // (a) too little space for the merged output (the pre-check refuses);
    // (b) room, but no inode left for the merged segment's files.
    // The no-space case runs both compactions; the no-inode one the full
    // rewrite, whose seal and outputs need the files counted (a selective
    // compaction of this store may need fewer).
    for (label, options, full) in [
        ("no space", format!("size={}k", tpl_pages * 4 + 16), false),
        (
            "no space, full",
            format!("size={}k", tpl_pages * 4 + 16),
            true,
        ),
        // The root and the store directory, the files, and two more for the
        // index and the new active segment that sealing creates first.
        ("no inode", format!("size=8m,nr_inodes={}", files + 4), true),
    ] {
        let Some(fs_) = tmpfs(&cx, &format!("tmpfs-{}", label.replace(' ', "-")), &options) else {
            cx.finish();
            return;
        };
        let dir = fs_.path.join("store");
        crate::support::reset_dir(&tpl, &dir);
        let before = snapshot(&dir);
        let args: &[&str] = if full {
            &["--segment-size", "4096", "compact", "--full"]
        } else {
            &["--segment-size", "4096", "compact"]
        };
        let out = cx.run.stratum(&dir, args);
        let after = snapshot(&dir);
        let mut old_intact = true;
        for (name, bytes) in &before {
            if name != "active.seg" && after.get(name) != Some(bytes) {
                old_intact = false;
                violations.push(format!(
                    "{label}: {name} changed or vanished after the failed compaction"
                ));
            }
        }
        if out.code != Some(7) {
            violations.push(format!("{label}: expected exit 7: {}", out.describe()));
        }
        let v = cx.run.stratum(&dir, &["verify"]);
        if !v.ok() {
            violations.push(format!("{label}: verify: {}", v.describe()));
        }
        match history::dump(&cx.run, &dir) {
            Ok(got) if got == m.docs => {}
            Ok(got) => violations.push(format!("{label}: {}", history::diff(&m.docs, &got))),
            Err(e) => violations.push(format!("{label}: {e}")),
        }
        // Make room, then the next write cleans up.
        let _ = std::process::Command::new("mount")
            .args(["-o", "remount,size=16m,nr_inodes=1000"])
            .arg(&fs_.path)
            .status();
        let next = probe_and_reverify(&cx.run, &dir, "4096", m.clone());
        if let Err(e) = &next {
            violations.push(format!("{label}: the next write: {e}"));
        }
        let tmps = tmp_files(&dir);
        figures.push(format!(
            "{label}: {} ({}), old segments {}, temporaries after the next write: {}",
            out.status(),
            out.err().lines().last().unwrap_or("").trim(),
            if old_intact {
                "byte-identical"
            } else {
                "CHANGED"
            },
            tmps.len()
        ));
    }
    for f in &figures {
        eprintln!("[{}] failed compaction, {f}", cx.name);
    }
    cx.finish();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
