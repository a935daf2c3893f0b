//! Item 4: the fsync-order audit. Each command kind runs once under
//! `strace -f -y`; the trace is checked against the durability protocol
//! (rules in [`crate::trace::audit`]), and read commands are checked to
//! change nothing at all.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::cases::{Case, Cases};
use crate::history::{Command, Model, create_doc, new_doc, op_cmd};
use crate::oracle::check_acknowledged;
use crate::support::{Ctx, MUTATING, names, stratum_cmd, under_strace, watch_paths};
use crate::trace;

struct Audited {
    name: String,
    report: trace::Report,
}

fn audit_case(cx: &Ctx, case: &Case, relative: bool) -> Audited {
    let parent = cx.path("audit-parent");
    fs::create_dir_all(&parent).expect("parent");
    let work = parent.join("data");
    case.reset(&work);
    let existing: BTreeSet<String> = names(&work).into_iter().collect();
    let log = cx.path("audit.log");
    let mut watch = case.watch(&work);
    let dir_arg: PathBuf = if relative {
        PathBuf::from("data")
    } else {
        work.clone()
    };
    if relative {
        let rel: Vec<PathBuf> = watch
            .iter()
            .filter_map(|p| p.strip_prefix(&parent).ok().map(Path::to_path_buf))
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        watch.extend(rel);
    }
    let cmd = op_cmd(&dir_arg, &case.seg, &case.op).cwd(&parent);
    let out = cx.run.run(under_strace(
        cmd,
        &log,
        &watch,
        &MUTATING.join(","),
        None,
        true,
    ));
    let name = format!(
        "{}{}",
        case.name,
        if relative { " (relative --dir)" } else { "" }
    );
    let t = trace::parse(&fs::read_to_string(&log).unwrap_or_default(), &parent);
    let mut report = trace::audit(&t, &work, &existing);
    if !out.ok() {
        report
            .violations
            .push(format!("command failed: {}", out.describe()));
    } else if let Err(e) = check_acknowledged(&cx.run, &work, &case.model, &case.op, &out.out()) {
        report.violations.push(e);
    }
    if t.exit != Some(0) {
        report
            .violations
            .push(format!("trace does not end in exit 0: {:?}", t.exit));
    }
    if matches!(case.op, Command::Compact | Command::CompactSelective) {
        if report.renamed_in == 0 || report.old_unlinks == 0 {
            report.violations.push(format!(
                "compaction renamed {} merged files in and unlinked {} old ones; expected both > 0",
                report.renamed_in, report.old_unlinks
            ));
        }
        if report.old_unlinks_before_rename_in > 0 {
            report.violations.push(format!(
                "{} old segment files unlinked before any merged segment was renamed into place",
                report.old_unlinks_before_rename_in
            ));
        }
    }
    Audited { name, report }
}

/// Read commands must not create, write, rename or unlink anything.
fn audit_read(cx: &Ctx, template: &Path, args: &[&str]) -> Audited {
    let work = cx.path("audit-read");
    crate::support::reset_dir(template, &work);
    let before = crate::support::snapshot(&work);
    let log = cx.path("audit-read.log");
    let out = cx.run.run(under_strace(
        stratum_cmd(&work, args),
        &log,
        &watch_paths(&work),
        &MUTATING.join(","),
        None,
        true,
    ));
    let t = trace::parse(&fs::read_to_string(&log).unwrap_or_default(), &work);
    let mut report = trace::Report::default();
    if !out.ok() {
        report
            .violations
            .push(format!("failed: {}", out.describe()));
    }
    for c in &t.calls {
        let mutating = match c.name.as_str() {
            "openat" => {
                c.args.contains("O_CREAT")
                    || c.args.contains("O_WRONLY")
                    || c.args.contains("O_RDWR")
            }
            "write" | "pwrite64" | "ftruncate" | "rename" | "renameat2" | "unlink" | "unlinkat"
            | "mkdir" | "fsync" | "fdatasync" => true,
            _ => false,
        };
        if mutating {
            report.violations.push(format!(
                "read command made {}({})",
                c.name,
                c.path().unwrap_or("?")
            ));
        }
    }
    if crate::support::snapshot(&work) != before {
        report.violations.push("the store's bytes changed".into());
    }
    Audited {
        name: format!("{} (read)", args.join(" ")),
        report,
    }
}

fn print_and_check(cx: Ctx, audited: Vec<Audited>) {
    let mut bad = Vec::new();
    for a in &audited {
        let r = &a.report;
        let verdict = if r.violations.is_empty() {
            "conforms".to_owned()
        } else {
            format!("{} VIOLATIONS", r.violations.len())
        };
        eprintln!(
            "[{}] fsync audit: {:<52} {:>3} writes, {:>3} file fsyncs, {:>3} dir entry changes, {:>3} dir fsyncs: {verdict}",
            cx.name, a.name, r.writes, r.syncs, r.dir_ops, r.dir_syncs
        );
        for v in &r.violations {
            eprintln!("[{}]     {v}", cx.name);
            bad.push(format!("{}: {v}", a.name));
        }
    }
    let ok = audited
        .iter()
        .filter(|a| a.report.violations.is_empty())
        .count();
    eprintln!(
        "[{}] fsync audit: {ok} of {} command kinds conform",
        cx.name,
        audited.len()
    );
    cx.finish();
    assert!(
        bad.is_empty(),
        "{} protocol violations:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn fsync_order_audit_of_every_command_kind() {
    crate::support::require_tools(&["strace"]);
    let cx = Ctx::new("fsync-audit");
    let cases = Cases::build(&cx);
    let mut all: Vec<Case> = cases.single_commands();
    all.push(cases.first_write());
    all.extend(cases.batches());
    let mut audited: Vec<Audited> = all.iter().map(|c| audit_case(&cx, c, false)).collect();
    for args in [
        &["get", "1"][..],
        &["dump"],
        &["list"],
        &["verify"],
        &["stats"],
        &["compact", "--dry-run"],
    ] {
        audited.push(audit_read(&cx, &cases.base, args));
    }
    print_and_check(cx, audited);
}

#[test]
fn fsync_order_audit_of_rotation_and_compaction() {
    crate::support::require_tools(&["strace"]);
    let cx = Ctx::new("fsync-audit-compaction");
    let cases = Cases::build(&cx);
    let audited = cases
        .rotation_and_compaction()
        .iter()
        .map(|c| audit_case(&cx, c, false))
        .collect();
    print_and_check(cx, audited);
}

#[test]
fn fsync_order_audit_of_crash_recovery() {
    crate::support::require_tools(&["strace"]);
    let cx = Ctx::new("fsync-audit-recovery");
    let cases = Cases::build(&cx);
    let audited = cases
        .recovery(&cx)
        .iter()
        .map(|c| audit_case(&cx, c, false))
        .collect();
    print_and_check(cx, audited);
}

#[test]
fn fsync_order_audit_of_a_new_store_under_a_relative_dir() {
    crate::support::require_tools(&["strace"]);
    let cx = Ctx::new("fsync-audit-relative");
    let case = Case {
        name: "create-doc (new store)".into(),
        template: None,
        model: Model::default(),
        op: create_doc(new_doc("First", None, None)),
        seg: "1M".into(),
    };
    let audited = vec![audit_case(&cx, &case, true)];
    print_and_check(cx, audited);
}
