//! Item 7: locks and concurrency. Many writers at once all land with
//! unique ids; readers share the lock (with each other, not with writers); a
//! reader never sees half of a batch; a holder killed with SIGKILL leaves
//! the lock free at once; a lock held elsewhere gives exit 5 and changes
//! nothing.
//!
//! No assertion depends on timing: "at once" is `--lock-timeout 0`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::history::{
    self, Model, Target, add_input, apply, create_doc, new_doc, op_cmd, set_output, text_doc,
};
use crate::support::{Cmd, Ctx, Running, long, snapshot, stratum_cmd};

/// Spawns `flock <mode> <dir>/LOCK sleep 600` and returns once it holds the
/// lock (probed with a non-blocking `flock`).
fn hold_lock(cx: &Ctx, dir: &Path, exclusive: bool) -> Running {
    let lock = dir.join("LOCK");
    let holder = cx.run.spawn(
        // --no-fork: flock execs the command itself, so killing it ends the
        // lock and closes the output pipes.
        Cmd::new("flock")
            .arg("--no-fork")
            .arg(if exclusive { "-x" } else { "-s" })
            .arg(&lock)
            .args(["sleep", "600"]),
    );
    // A non-blocking exclusive probe fails once the holder has it.
    for _ in 0..10_000 {
        let probe = std::process::Command::new("flock")
            .arg("-n")
            .arg("-x")
            .arg(&lock)
            .arg("true")
            .status()
            .expect("flock");
        if !probe.success() {
            return holder;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("flock never took {}", lock.display());
}

fn seeded_store(cx: &Ctx, name: &str) -> (std::path::PathBuf, Model) {
    let dir = cx.path(name);
    let mut m = Model::default();
    history::exec(
        &cx.run,
        &dir,
        "1M",
        &mut m,
        &create_doc(new_doc("shared", None, None)),
    );
    history::exec(
        &cx.run,
        &dir,
        "1M",
        &mut m,
        &add_input(Target::Id(1), "[1]".into(), Some("1".into())),
    );
    (dir, m)
}

#[test]
fn many_concurrent_writers_all_land_with_unique_ids() {
    let cx = Ctx::new("concurrent-writers");
    let (dir, _) = seeded_store(&cx, "store");
    let n = if long() { 200 } else { 48 };
    let mut running = Vec::new();
    for i in 0..n {
        let op = if i % 2 == 0 {
            create_doc(text_doc(format!("concurrent {i}"), None, None))
        } else {
            add_input(Target::Id(1), format!("{{\"concurrent\":{i}}}"), None)
        };
        let cmd = op_cmd(&dir, "4096", &op).arg("--lock-timeout").arg("60");
        running.push((i, cx.run.spawn(cmd)));
    }
    let mut doc_ids = BTreeSet::new();
    let mut node_ids = BTreeSet::new();
    let mut failures = Vec::new();
    for (i, p) in running {
        let out = p.wait();
        if !out.ok() {
            failures.push(out.describe());
            continue;
        }
        let id: u64 = out.out().trim().parse().unwrap_or(0);
        let fresh = if i % 2 == 0 {
            doc_ids.insert(id)
        } else {
            node_ids.insert(id)
        };
        if !fresh {
            failures.push(format!("id {id} printed twice"));
        }
    }
    let got = history::dump(&cx.run, &dir).expect("dump");
    let writes = n as usize;
    // Doc 1 existed with node 1: creates get 2.., add-inputs get nodes 2...
    let want_docs: BTreeSet<u64> = (2..2 + writes.div_ceil(2) as u64).collect();
    let want_nodes: BTreeSet<u64> = (2..2 + (writes / 2) as u64).collect();
    if doc_ids != want_docs {
        failures.push(format!("document ids {doc_ids:?}, expected {want_docs:?}"));
    }
    if node_ids != want_nodes {
        failures.push(format!("node ids {node_ids:?}, expected {want_nodes:?}"));
    }
    for id in &doc_ids {
        if !got.contains_key(id) {
            failures.push(format!("acknowledged doc {id} missing"));
        }
    }
    let stored_nodes: BTreeSet<u64> = got
        .get(&1)
        .map(|d| d.nodes.keys().copied().collect())
        .unwrap_or_default();
    for id in &node_ids {
        if !stored_nodes.contains(id) {
            failures.push(format!("acknowledged node {id} missing"));
        }
    }
    let v = cx.run.stratum(&dir, &["verify"]);
    if !v.ok() {
        failures.push(format!("verify: {}", v.describe()));
    }
    eprintln!(
        "[{}] {n} concurrent writers: {} documents and {} nodes acknowledged, all unique and stored; failures: {}",
        cx.name,
        doc_ids.len(),
        node_ids.len(),
        failures.len()
    );
    cx.finish();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn readers_share_the_lock_and_writers_wait_for_it() {
    crate::support::require_tools(&["flock"]);
    let cx = Ctx::new("shared-lock");
    let (dir, m) = seeded_store(&cx, "store");
    let mut failures = Vec::new();
    // With a shared lock held elsewhere, readers get in at once, in
    // parallel; a writer cannot.
    let mut holder = hold_lock(&cx, &dir, false);
    let readers: Vec<Running> = (0..8)
        .map(|i| {
            let args: &[&str] = match i % 4 {
                0 => &["get", "1"],
                1 => &["dump"],
                2 => &["list"],
                _ => &["verify"],
            };
            cx.run
                .spawn(stratum_cmd(&dir, args).arg("--lock-timeout").arg("0"))
        })
        .collect();
    let mut ok_readers = 0;
    for r in readers {
        let out = r.wait();
        if out.ok() {
            ok_readers += 1;
        } else {
            failures.push(format!("reader under a shared lock: {}", out.describe()));
        }
    }
    let w = cx
        .run
        .stratum(&dir, &["--lock-timeout", "0.3", "create-doc", "blocked"]);
    if w.code != Some(5) {
        failures.push(format!(
            "writer under a shared lock: expected exit 5: {}",
            w.describe()
        ));
    }
    holder.kill();
    let _ = holder.wait();
    if history::dump(&cx.run, &dir).ok().as_ref() != Some(&m.docs) {
        failures.push("the store changed".into());
    }
    eprintln!(
        "[{}] under an external shared lock: {ok_readers}/8 readers ran at once (--lock-timeout 0), writer exit {}; failures: {}",
        cx.name,
        w.status(),
        failures.len()
    );
    cx.finish();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lock_timeout_exits_5_and_changes_nothing() {
    crate::support::require_tools(&["flock"]);
    let cx = Ctx::new("lock-timeout");
    let (dir, _) = seeded_store(&cx, "store");
    let before = snapshot(&dir);
    let mut holder = hold_lock(&cx, &dir, true);
    let commands: [&[&str]; 14] = [
        &["create-doc", "x"],
        &["update-doc", "1", "y"],
        &["add-input", "1", "[2]"],
        &["set-output", "1", "1", "3"],
        &["delete-input", "1", "1"],
        &["delete-doc", "1"],
        &["compact"],
        &["repair"],
        &["get", "1"],
        &["dump"],
        &["list"],
        &["stats"],
        &["verify"],
        &["load", "-"],
    ];
    let mut failures = Vec::new();
    for args in commands {
        let mut cmd = stratum_cmd(&dir, &["--lock-timeout", "0.2"]).args(args.iter().copied());
        if args[0] == "load" {
            cmd = cmd.stdin("{\"body\":\"l\",\"inputs\":[]}\n");
        }
        let out = cx.run.run(cmd);
        let err = out.err();
        let one_line = err.lines().count() == 1 && err.starts_with("stratum: ");
        if out.code != Some(5) || !one_line || !err.contains("lock") {
            failures.push(format!(
                "{}: expected exit 5 and one `stratum:` line about the lock: {}",
                args[0],
                out.describe()
            ));
        }
        if !out.stdout.is_empty() {
            failures.push(format!("{}: printed {:?}", args[0], out.out()));
        }
    }
    holder.kill();
    let _ = holder.wait();
    if snapshot(&dir) != before {
        failures.push("the store's bytes changed".into());
    }
    eprintln!(
        "[{}] lock held by flock(1): {} commands, each exit 5 with one message, store byte-identical; failures: {}",
        cx.name,
        commands.len(),
        failures.len()
    );
    cx.finish();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_holder_killed_with_sigkill_never_blocks_the_next_run() {
    crate::support::require_tools(&["strace", "flock"]);
    let cx = Ctx::new("dead-holder");
    let (dir, mut m) = seeded_store(&cx, "store");
    let rounds = if long() { 100 } else { 20 };
    let mut failures = Vec::new();
    let mut applied = 0;
    for i in 0..rounds {
        // The holder stops for a long time just before its fdatasync, with
        // the lock held and its record written; then it is SIGKILLed.
        let op = add_input(Target::Id(1), format!("{{\"holder\":{i}}}"), None);
        let inner = op_cmd(&dir, "4096", &op);
        let strace = Cmd::new("strace")
            .args([
                "-f",
                "-o",
                "/dev/null",
                "-e",
                "trace=fdatasync",
                "-e",
                "inject=fdatasync:delay_enter=600000000",
                "--",
            ])
            .arg(inner.program)
            .args(inner.args);
        let mut holder = cx.run.spawn(strace);
        // Wait until the holder has the lock.
        let lock = dir.join("LOCK");
        let mut held = false;
        for _ in 0..10_000 {
            let free = std::process::Command::new("flock")
                .args(["-n", "-s"])
                .arg(&lock)
                .arg("true")
                .status()
                .expect("flock")
                .success();
            if !free {
                held = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if !held {
            failures.push(format!("round {i}: the holder never took the lock"));
        }
        // SIGKILL the stratum process itself (strace's child), then strace.
        let hp = holder.pid();
        let children =
            std::fs::read_to_string(format!("/proc/{hp}/task/{hp}/children")).unwrap_or_default();
        for pid in children.split_whitespace() {
            if let Ok(p) = pid.parse::<i32>() {
                // SAFETY: a plain kill(2) of a process this test started.
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                }
            }
        }
        holder.kill();
        let _ = holder.wait();
        // The next writer must get the lock without waiting at all.
        let next = create_doc(new_doc(&format!("after holder {i}"), None, None));
        let out = cx
            .run
            .run(op_cmd(&dir, "4096", &next).arg("--lock-timeout").arg("0"));
        if !out.ok() {
            failures.push(format!(
                "round {i}: the next run with --lock-timeout 0: {}",
                out.describe()
            ));
            continue;
        }
        // The killed add-input was written but not fsynced: absent or applied.
        let got = history::dump(&cx.run, &dir).unwrap_or_default();
        let with = m.after(&op).map(|(a, _)| a).unwrap_or_else(|_| m.clone());
        let base = if got.get(&1) == with.docs.get(&1) {
            applied += 1;
            with
        } else {
            m.clone()
        };
        match base.after(&next) {
            Ok((n, ids)) if Model::printed_ids(&next, &out.out()) == ids && n.docs == got => m = n,
            _ => {
                failures.push(format!(
                    "round {i}: state after the kill and the next write: {}",
                    history::diff(&base.docs, &got)
                ));
                break;
            }
        }
    }
    eprintln!(
        "[{}] {rounds} lock holders SIGKILLed while holding the lock: next run got it with --lock-timeout 0 every time \
         ({} failures); killed writes applied {applied}, absent {}",
        cx.name,
        failures.len(),
        rounds - applied
    );
    cx.finish();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_reader_never_sees_half_a_batch() {
    let cx = Ctx::new("atomic-batches");
    let (dir, _) = seeded_store(&cx, "store");
    let batches = if long() { 200 } else { 40 };
    // Batch k: a new document with 8 inputs, and output "k" set on node 1
    // of document 1 and on the new document's first input.
    let writer = {
        let (run, dir) = (cx.run.clone(), dir.clone());
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            for k in 0..batches {
                let mut ops = vec![create_doc(new_doc(
                    &format!("batch {k}"),
                    Some("batch"),
                    None,
                ))];
                for j in 0..8 {
                    ops.push(add_input(
                        Target::Line(1),
                        format!("{{\"k\":{k},\"j\":{j}}}"),
                        Some(format!("{k}")),
                    ));
                }
                ops.push(set_output(Target::Id(1), 1, format!("{k}")));
                let out = run.run(op_cmd(&dir, "4096", &apply(ops)));
                if !out.ok() {
                    failures.push(out.describe());
                }
            }
            failures
        })
    };
    let mut reads = 0;
    let mut violations = Vec::new();
    loop {
        let done = writer.is_finished();
        let d = cx.run.stratum(&dir, &["dump"]);
        reads += 1;
        match history::parse_dump(&d.out()) {
            Ok(docs) if d.ok() => {
                let last = docs
                    .values()
                    .filter(|x| x.category.as_deref() == Some("batch"))
                    .count();
                for (id, doc) in &docs {
                    if doc.category.as_deref() == Some("batch") && doc.nodes.len() != 8 {
                        violations.push(format!(
                            "doc {id} has {} of its batch's 8 inputs",
                            doc.nodes.len()
                        ));
                    }
                }
                // Doc 1's output names the newest batch.
                let marker = docs
                    .get(&1)
                    .and_then(|x| x.nodes.get(&1))
                    .and_then(|n| n.1.clone());
                let want = if last == 0 {
                    "1".to_owned()
                } else {
                    format!("{}", last - 1)
                };
                if marker.as_ref().map(stratum::Json::as_str) != Some(want.as_str()) {
                    violations.push(format!("{last} batches visible, but doc 1 says {marker:?}"));
                }
            }
            _ => violations.push(format!("dump: {}", d.describe())),
        }
        if done {
            break;
        }
    }
    let failures = writer
        .join()
        .unwrap_or_else(|_| vec!["writer thread panicked".into()]);
    eprintln!(
        "[{}] {batches} batches of 10 operations applied while {reads} dumps ran: half-applied batches seen: {}; writer failures: {}",
        cx.name,
        violations.len(),
        failures.len()
    );
    cx.finish();
    assert!(
        violations.is_empty() && failures.is_empty(),
        "{}\n{}",
        violations.join("\n"),
        failures.join("\n")
    );
}
