//! Item 8: hostile data directories. Symlinks planted under stratum's own
//! names (pointing at a victim file outside the store), foreign files with
//! stratum names, a newer format version, unknown files, and a directory
//! and FIFOs named like segments. Every command runs against each: nothing
//! outside the store is ever written (the victim's bytes and its
//! directory's listing are compared), planted files are refused with a
//! clear one-line message or ignored, unknown files are never touched, and
//! nothing hangs.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::fixtures;
use crate::history::{self, Model, Target, add_input, create_doc, new_doc};
use crate::support::{Cmd, Ctx, names, reset_dir, snapshot};

/// The commands run against every planted store.
const COMMANDS: &[&[&str]] = &[
    &["create-doc", "new"],
    &["update-doc", "1", "changed"],
    &["add-input", "1", "[9]"],
    &["set-output", "1", "1", "9"],
    &["delete-input", "1", "2"],
    &["delete-doc", "2"],
    &["load", "-"],
    &["apply", "-"],
    &["compact"],
    &["get", "1"],
    &["dump"],
    &["list"],
    &["stats"],
    &["verify"],
    &["repair"],
];

/// How a planted store must be treated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Every command refuses (exit 6 or 7); `repair` may instead move the
    /// planted file into quarantine.
    Refused,
    /// Everything works as on a clean store.
    Ignored,
    /// Either, command by command (a symlinked cache file: writes replace
    /// it, verify reports it).
    Either,
    /// A member replaced by a file of the same length that is not this
    /// store's (format 2 opens a member only when a command reads it, so
    /// that opening costs the same at any number of segments: FORMAT.md
    /// §7.7): every command that reads the whole store refuses; the others
    /// refuse or work without reading it; none changes the planted file.
    RefusedWhenRead,
}

struct Plant {
    name: &'static str,
    expect: Expect,
    /// Plants into the store directory; `victim` is a file outside it.
    plant: fn(dir: &Path, victim: &Path),
    /// Names in the store that must be left exactly as they are (bytes,
    /// or kind for non-files) by every command but `repair`.
    keep: &'static [&'static str],
}

fn replace_with_symlink(dir: &Path, name: &str, victim: &Path) {
    let p = dir.join(name);
    let _ = fs::remove_file(&p);
    symlink(victim, &p).expect("symlink");
}

fn patch_version(path: &Path, version: u16) {
    let mut b = fs::read(path).expect("read");
    b[8..10].copy_from_slice(&version.to_le_bytes());
    let crc = crc32fast::hash(&b[..36]);
    b[36..40].copy_from_slice(&crc.to_le_bytes());
    fs::write(path, b).expect("write");
}

fn mkfifo(path: &Path) {
    let _ = fs::remove_file(path);
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(r, 0, "mkfifo {}", path.display());
}

fn plants() -> Vec<Plant> {
    vec![
        Plant {
            name: "symlink active.seg → victim",
            expect: Expect::Refused,
            plant: |d, v| replace_with_symlink(d, "active.seg", v),
            keep: &["active.seg"],
        },
        Plant {
            name: "symlink seg_000001.seg → victim",
            expect: Expect::Refused,
            plant: |d, v| replace_with_symlink(d, "seg_000001.seg", v),
            keep: &["seg_000001.seg"],
        },
        Plant {
            name: "symlink seg_000001.idx → victim",
            expect: Expect::Either,
            plant: |d, v| replace_with_symlink(d, "seg_000001.idx", v),
            keep: &[],
        },
        Plant {
            name: "symlink LOCK → victim",
            expect: Expect::Refused,
            plant: |d, v| replace_with_symlink(d, "LOCK", v),
            keep: &["LOCK"],
        },
        Plant {
            name: "symlink active.seg.stratum-tmp → victim",
            expect: Expect::Ignored,
            plant: |d, v| symlink(v, d.join("active.seg.stratum-tmp")).expect("symlink"),
            keep: &[],
        },
        Plant {
            name: "symlinks at the next compaction's temporary names → victim",
            expect: Expect::Ignored,
            plant: |d, v| {
                let next = crate::support::max_segment(d) + 1;
                for n in [
                    format!("seg_{next:06}.seg.stratum-tmp"),
                    format!("seg_{next:06}.idx.stratum-tmp"),
                    format!("seg_{:06}.idx.stratum-tmp", next - 1),
                    "active.idx.stratum-tmp".into(),
                ] {
                    symlink(v, d.join(n)).expect("symlink");
                }
            },
            keep: &[],
        },
        Plant {
            name: "foreign file named seg_000001.seg",
            expect: Expect::Refused,
            plant: |d, _| {
                fs::write(
                    d.join("seg_000001.seg"),
                    b"PK\x03\x04 not a stratum segment at all\n".repeat(20),
                )
                .expect("w")
            },
            keep: &["seg_000001.seg"],
        },
        Plant {
            name: "foreign file named active.seg",
            expect: Expect::Refused,
            plant: |d, _| {
                fs::write(d.join("active.seg"), b"#!/bin/sh\necho hello\n".repeat(10)).expect("w")
            },
            keep: &["active.seg"],
        },
        Plant {
            name: "active.seg of format version 3 (header CRC fixed)",
            expect: Expect::Refused,
            plant: |d, _| patch_version(&d.join("active.seg"), 3),
            keep: &["active.seg", "seg_000001.seg"],
        },
        Plant {
            name: "seg_000001.seg of format version 3 (header CRC fixed)",
            expect: Expect::RefusedWhenRead,
            plant: |d, _| patch_version(&d.join("seg_000001.seg"), 3),
            keep: &["seg_000001.seg"],
        },
        Plant {
            name: "unknown files and a directory",
            expect: Expect::Ignored,
            plant: |d, _| {
                for n in [
                    ".DS_Store",
                    "._seg_000001.seg",
                    "seg_000001.seg~",
                    "seg_abc.seg",
                    "seg_.seg",
                    "notes.txt",
                    "seg_1.segment",
                    "LOCK.old",
                ] {
                    fs::write(d.join(n), format!("not stratum's: {n}")).expect("w");
                }
                fs::create_dir(d.join("backup")).expect("dir");
                fs::write(d.join("backup").join("seg_000001.seg"), b"a user's copy").expect("w");
            },
            keep: &[
                ".DS_Store",
                "._seg_000001.seg",
                "seg_000001.seg~",
                "seg_abc.seg",
                "seg_.seg",
                "notes.txt",
                "seg_1.segment",
                "LOCK.old",
                "backup",
            ],
        },
        Plant {
            name: "directory named seg_000009.seg",
            expect: Expect::Refused,
            plant: |d, _| fs::create_dir(d.join("seg_000009.seg")).expect("dir"),
            keep: &["seg_000009.seg"],
        },
        Plant {
            name: "FIFO named seg_000009.seg",
            expect: Expect::Refused,
            plant: |d, _| mkfifo(&d.join("seg_000009.seg")),
            keep: &["seg_000009.seg"],
        },
        Plant {
            name: "FIFO named active.seg",
            expect: Expect::Refused,
            plant: |d, _| mkfifo(&d.join("active.seg")),
            keep: &["active.seg"],
        },
        Plant {
            name: "FIFO named LOCK",
            expect: Expect::Refused,
            plant: |d, _| mkfifo(&d.join("LOCK")),
            keep: &["LOCK"],
        },
        Plant {
            name: "FIFO named active.seg.stratum-tmp",
            expect: Expect::Ignored,
            plant: |d, _| mkfifo(&d.join("active.seg.stratum-tmp")),
            keep: &[],
        },
    ]
}

/// What a name is, for the "left exactly as it was" check.
fn describe(path: &Path) -> String {
    match fs::symlink_metadata(path) {
        Err(_) => "missing".into(),
        Ok(m) if m.file_type().is_symlink() => format!("symlink to {:?}", fs::read_link(path).ok()),
        Ok(m) if m.is_dir() => format!("directory of {:?}", names(path)),
        Ok(m) if m.is_file() => format!(
            "file {:016x}",
            crate::support::fingerprint(path).unwrap_or(0)
        ),
        Ok(_) => "special file".into(),
    }
}

fn store(cx: &Ctx) -> (PathBuf, Model) {
    let dir = cx.path("template");
    let mut m = Model::default();
    for i in 1..=3u64 {
        history::exec(
            &cx.run,
            &dir,
            "4096",
            &mut m,
            &create_doc(new_doc(&format!("doc {i}"), None, None)),
        );
        for n in 0..6 {
            let op = add_input(Target::Id(i), fixtures::input(i, n, 150), Some("1".into()));
            history::exec(&cx.run, &dir, "4096", &mut m, &op);
        }
    }
    assert!(
        dir.join("seg_000001.seg").exists(),
        "the template needs a sealed segment"
    );
    (dir, m)
}

#[test]
fn hostile_directories_are_refused_or_ignored_never_written_through() {
    crate::support::require_tools(&["timeout"]);
    let cx = Ctx::new("hostile");
    let (tpl, m) = store(&cx);
    let outside = cx.path("outside");
    fs::create_dir_all(&outside).expect("outside");
    let victim = outside.join("victim");
    let victim_bytes = b"the victim's own bytes, which stratum must never change\n".repeat(50);
    let mut violations = Vec::new();
    let mut runs = 0;
    let mut summary = Vec::new();
    for plant in plants() {
        let mut codes: BTreeMap<i32, u64> = BTreeMap::new();
        for args in COMMANDS {
            fs::write(&victim, &victim_bytes).expect("victim");
            let outside_before = snapshot(&outside);
            let work = cx.path("work");
            reset_dir(&tpl, &work);
            (plant.plant)(&work, &victim);
            let kept: Vec<(String, String)> = plant
                .keep
                .iter()
                .map(|n| ((*n).to_owned(), describe(&work.join(n))))
                .collect();
            let unknown_before: BTreeMap<String, String> = names(&work)
                .into_iter()
                .filter(|n| plant.keep.contains(&n.as_str()))
                .map(|n| (n.clone(), describe(&work.join(&n))))
                .collect();
            let mut cmd = Cmd::new("timeout")
                .args(["-s", "KILL", "20"])
                .arg(crate::support::bin())
                .args(["-q", "--lock-timeout", "2", "--dir"])
                .arg(&work)
                .args(args.iter().copied());
            match args[0] {
                "load" => {
                    cmd =
                        cmd.stdin("{\"body\":\"loaded\",\"inputs\":[{\"input\":1,\"output\":2}]}\n")
                }
                "apply" => cmd = cmd.stdin("{\"op\":\"add-input\",\"doc\":1,\"input\":[7]}\n"),
                _ => {}
            }
            let out = cx.run.run(cmd);
            runs += 1;
            let what = format!("[{}] stratum {}", plant.name, args.join(" "));
            *codes.entry(out.code.unwrap_or(-1)).or_default() += 1;
            if out.killed_by(libc::SIGKILL) {
                violations.push(format!("{what}: hung (killed after 20 s)"));
                continue;
            }
            if fs::read(&victim).ok().as_deref() != Some(&victim_bytes[..]) {
                violations.push(format!(
                    "{what}: WROTE THROUGH to the victim outside the store"
                ));
            }
            if snapshot(&outside) != outside_before {
                violations.push(format!(
                    "{what}: files outside the store changed: {:?}",
                    names(&outside)
                ));
            }
            let err = out.err();
            if !err.lines().all(|l| l.starts_with("stratum: ")) {
                violations.push(format!("{what}: stderr is not `stratum:` lines: {err:?}"));
            }
            let repair = args[0] == "repair";
            match plant.expect {
                Expect::Refused if !repair => {
                    if !matches!(out.code, Some(6 | 7)) || err.lines().count() != 1 {
                        violations.push(format!(
                            "{what}: expected a refusal (exit 6 or 7, one line): {}",
                            out.describe()
                        ));
                    }
                }
                Expect::Refused => {
                    if !matches!(out.code, Some(0 | 6 | 7)) {
                        violations.push(format!("{what}: {}", out.describe()));
                    }
                }
                Expect::RefusedWhenRead => {
                    let whole = matches!(args[0], "list" | "dump" | "verify" | "compact" | "stats");
                    let refused = matches!(out.code, Some(6 | 7)) && err.lines().count() == 1;
                    if (whole && !repair && !refused) || !matches!(out.code, Some(0 | 6 | 7)) {
                        violations.push(format!(
                            "{what}: expected a refusal of a command that reads every member: {}",
                            out.describe()
                        ));
                    }
                }
                Expect::Either => {
                    if !matches!(out.code, Some(0 | 6 | 7)) {
                        violations.push(format!("{what}: {}", out.describe()));
                    }
                }
                Expect::Ignored => {
                    if !out.ok() {
                        violations.push(format!("{what}: expected success: {}", out.describe()));
                    } else if args[0] == "dump"
                        && history::parse_dump(&out.out()).ok().as_ref() != Some(&m.docs)
                    {
                        violations.push(format!("{what}: dump differs from the model"));
                    }
                }
            }
            if !repair {
                for (n, before) in &kept {
                    let now = describe(&work.join(n));
                    if &now != before {
                        violations.push(format!("{what}: {n} was {before}, is now {now}"));
                    }
                }
            } else {
                // repair may move stratum-named files aside, but must never
                // lose unknown files.
                for (n, before) in &unknown_before {
                    if plant.expect == Expect::Ignored && describe(&work.join(n)) != *before {
                        violations.push(format!("{what}: unknown file {n} changed or vanished"));
                    }
                }
            }
        }
        summary.push(format!("{:<62} exit codes {codes:?}", plant.name));
    }
    for s in &summary {
        eprintln!("[{}] {s}", cx.name);
    }
    eprintln!(
        "[{}] hostile directories: {} plants × {} commands = {runs} runs; writes outside the store: {}; violations: {}",
        cx.name,
        summary.len(),
        COMMANDS.len(),
        violations
            .iter()
            .filter(|v| v.contains("outside") || v.contains("WROTE"))
            .count(),
        violations.len()
    );
    cx.finish();
    crate::support::assert_no_violations(&violations);
}

/// A newer format version is not damage: `repair` must refuse it as every
/// other command does, and change nothing.
#[test]
fn repair_refuses_a_newer_format_version() {
    let cx = Ctx::new("repair-newer-version");
    let (tpl, _) = store(&cx);
    let mut violations = Vec::new();
    for name in ["seg_000001.seg", "active.seg"] {
        let work = cx.path("work");
        reset_dir(&tpl, &work);
        patch_version(&work.join(name), 3);
        let before = snapshot(&work);
        let out = cx.run.stratum(&work, &["repair"]);
        if out.code != Some(6) || !out.err().contains("version 3") {
            violations.push(format!(
                "{name} at version 3: expected exit 6 naming version 3: {}",
                out.describe()
            ));
        }
        if snapshot(&work) != before || work.join(stratum::engine::QUARANTINE_DIR).exists() {
            violations.push(format!(
                "{name} at version 3: repair changed the store: {:?}",
                names(&work)
            ));
        }
    }
    eprintln!(
        "[{}] repair on newer-format stores: violations: {}",
        cx.name,
        violations.len()
    );
    cx.finish();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
