//! Item 3: a torn append at every byte offset of a small and a ~5 KiB record
//! (`prlimit --fsize`: SIGXFSZ kills the writer with exactly N bytes in
//! the file), then a read of the torn store, another write, and a reopen:
//! the torn record never appears, the next one survives. Also the EFBIG
//! path (SIGXFSZ ignored, so the write fails instead): exit 7, nothing
//! acknowledged, same recovery.

use std::fs;
use std::path::Path;

use crate::history::{self, Model, Target, add_input, create_doc, new_doc, op_cmd, parse_doc};
use crate::support::{Cmd, Ctx, reset_dir};

struct Record {
    name: &'static str,
    value: String,
}

/// Checks, after a torn append of `op`, that a read shows the model, that
/// the next add-input gets the next node id, and that a reopen shows it and
/// not the torn record.
fn after_tear(cx: &Ctx, work: &Path, model: &Model, k: u64) -> Result<(), String> {
    let get = cx.run.stratum(work, &["get", "1"]);
    if !get.ok() {
        return Err(format!("get on the torn store: {}", get.describe()));
    }
    let (_, doc) = parse_doc(get.out().trim())?;
    if Some(&doc) != model.docs.get(&1) {
        return Err(format!("get on the torn store shows {doc:?}"));
    }
    let next = add_input(
        Target::Id(1),
        format!("{{\"after_tear\":{k}}}"),
        Some("true".into()),
    );
    let out = cx.run.run(op_cmd(work, "1M", &next));
    if !out.ok() {
        return Err(format!("the next write: {}", out.describe()));
    }
    let (m2, ids) = model.after(&next)?;
    if Model::printed_ids(&next, &out.out()) != Model::expected_printed(&next, &ids) {
        return Err(format!(
            "the next write printed {:?}, expected node {:?}",
            out.out().trim(),
            ids.get(1)
        ));
    }
    let got = history::dump(&cx.run, work)?;
    if got != m2.docs {
        return Err(format!(
            "after the next write and a reopen: {}",
            history::diff(&m2.docs, &got)
        ));
    }
    Ok(())
}

fn sweep(
    cx: &Ctx,
    template: &Path,
    model: &Model,
    rec: &Record,
    efbig: bool,
    stride: u64,
) -> (u64, Vec<String>) {
    let work = cx.path("work");
    let op = add_input(Target::Id(1), rec.value.clone(), None);
    // The record's exact length: append it once and measure.
    reset_dir(template, &work);
    let size = fs::metadata(template.join("active.seg"))
        .expect("active.seg")
        .len();
    let out = cx.run.run(op_cmd(&work, "1M", &op));
    assert!(out.ok(), "{}", out.describe());
    let len = fs::metadata(work.join("active.seg"))
        .expect("active.seg")
        .len()
        - size;
    let mut violations = Vec::new();
    let mut runs = 0;
    let mut notices = 0;
    let mut verified = 0;
    let mut k = 0;
    while k < len {
        reset_dir(template, &work);
        let limit = size + k;
        let (args, _) = op.cli();
        let inner: Vec<String> = ["-q", "--dir"]
            .iter()
            .map(|s| (*s).to_owned())
            .chain([work.to_string_lossy().into_owned()])
            .chain(args)
            .collect();
        let cmd = if efbig {
            Cmd::new("perl")
                .args(["-e", "$SIG{XFSZ}='IGNORE'; exec @ARGV or die"])
                .arg("prlimit")
                .arg(format!("--fsize={limit}"))
                .arg(crate::support::bin())
                .args(inner)
        } else {
            Cmd::new("prlimit")
                .arg(format!("--fsize={limit}"))
                .arg(crate::support::bin())
                .args(inner)
        };
        let out = cx.run.run(cmd);
        runs += 1;
        let on_disk = fs::metadata(work.join("active.seg"))
            .map(|m| m.len())
            .unwrap_or(0);
        let outcome = if efbig {
            if out.code != Some(7) || !out.err().contains("File too large") {
                Err(format!(
                    "expected exit 7 with \"File too large\": {}",
                    out.describe()
                ))
            } else if !out.stdout.is_empty() {
                Err(format!("printed {:?} though the write failed", out.out()))
            } else {
                Ok(())
            }
        } else if !out.killed_by(libc::SIGXFSZ) {
            Err(format!("expected death by SIGXFSZ: {}", out.describe()))
        } else if on_disk != limit {
            Err(format!(
                "active.seg holds {on_disk} bytes, expected exactly {limit}"
            ))
        } else {
            Ok(())
        };
        // verify reads the whole store: every offset in the long tier, the
        // record's edges and every 4th offset in the quick one.
        let verify_here = crate::support::long() || k < 64 || k + 64 >= len || k.is_multiple_of(4);
        if !efbig && k > 0 && verify_here {
            // -q (the harness's) prints verify's report only as JSON.
            let v = cx.run.stratum(&work, &["verify", "--json"]);
            verified += 1;
            if !v.ok() {
                violations.push(format!(
                    "[{}] +{k}: verify on the torn store: {}",
                    rec.name,
                    v.describe()
                ));
            } else if v.err().contains("torn tail") || v.out().contains("torn tail") {
                notices += 1;
            }
        }
        if let Err(e) = outcome.and_then(|()| after_tear(cx, &work, model, k)) {
            violations.push(format!(
                "[{}] {} at +{k} of {len}: {e}",
                rec.name,
                if efbig { "EFBIG" } else { "torn" }
            ));
        }
        k += if k < 64 || k + 64 >= len { 1 } else { stride };
    }
    eprintln!(
        "[{}] {} record of {len} bytes ({}): {runs} offsets, {} violations{}",
        cx.name,
        rec.name,
        if efbig {
            "EFBIG, write fails"
        } else {
            "SIGXFSZ, writer dies"
        },
        violations.len(),
        if efbig {
            String::new()
        } else {
            format!(", verify (run at {verified} of them) reported the torn tail at {notices}")
        }
    );
    (runs, violations)
}

fn template(cx: &Ctx) -> (std::path::PathBuf, Model) {
    let dir = cx.path("template");
    let mut m = Model::default();
    history::exec(
        &cx.run,
        &dir,
        "1M",
        &mut m,
        &create_doc(new_doc("Torn appends", Some("t"), None)),
    );
    for i in 0..3 {
        let op = add_input(Target::Id(1), format!("[{i}]"), Some(format!("{}", i * 2)));
        history::exec(&cx.run, &dir, "1M", &mut m, &op);
    }
    (dir, m)
}

fn records() -> [Record; 2] {
    [
        Record {
            name: "small",
            value: "{\"small\":12345678}".into(),
        },
        Record {
            name: "5 KiB",
            value: format!("\"{}\"", "z".repeat(5 * 1024)),
        },
    ]
}

fn finish(cx: Ctx, label: &str, runs: u64, violations: Vec<String>) {
    eprintln!(
        "[{}] {label}: {runs} offsets, violations: {}",
        cx.name,
        violations.len()
    );
    cx.finish();
    crate::support::assert_no_violations(&violations);
}

#[test]
fn torn_append_at_every_byte_offset() {
    crate::support::require_tools(&["prlimit"]);
    let cx = Ctx::new("torn-append");
    let (tpl, m) = template(&cx);
    let (mut runs, mut violations) = (0, Vec::new());
    for rec in records() {
        let (r, v) = sweep(&cx, &tpl, &m, &rec, false, 1);
        runs += r;
        violations.extend(v);
    }
    finish(cx, "torn appends", runs, violations);
}

#[test]
fn efbig_at_sampled_byte_offsets() {
    crate::support::require_tools(&["prlimit", "perl"]);
    let cx = Ctx::new("efbig");
    let (tpl, m) = template(&cx);
    let stride = if crate::support::long() { 1 } else { 37 };
    let (mut runs, mut violations) = (0, Vec::new());
    for rec in records() {
        let (r, v) = sweep(&cx, &tpl, &m, &rec, true, stride);
        runs += r;
        violations.extend(v);
    }
    finish(cx, "EFBIG appends", runs, violations);
}
