//! Item 1: SIGKILL at every mutating system call of every command kind.
//!
//! strace counts injections per system call, so "every boundary" is walked
//! per call name: for each call the command makes on its store (under
//! `-P`, so stdout/stderr writes and the dynamic loader do not count), kill
//! before its 1st, 2nd, … occurrence until the command completes unkilled.
//! After each kill the oracle checks: verify exits 0, the state is the
//! model with the in-flight command absent or fully applied, the next write
//! succeeds with the next id, no temporary file remains.

use std::path::Path;

use crate::cases::{Case, Cases, count_case_calls};
use crate::history::op_cmd;
use crate::oracle::{Outcome, check_acknowledged, check_recovery};
use crate::support::{Ctx, under_strace};

/// Figures of one sweep.
#[derive(Default)]
pub struct Sweep {
    pub points: u64,
    pub absent: u64,
    pub applied: u64,
    pub violations: Vec<String>,
}

/// Kills `case` at each of its boundaries in turn.
pub fn sweep(cx: &Ctx, case: &Case, sweep: &mut Sweep) {
    let work = match case.template {
        Some(_) => cx.path("work"),
        None => cx.path("fresh-parent").join("data"),
    };
    if case.template.is_none() {
        std::fs::create_dir_all(work.parent().expect("parent")).expect("parent dir");
    }
    let counts = count_case_calls(cx, case, &work);
    let watch = case.watch(&work);
    let mut per_case = 0;
    for (call, &count) in &counts {
        // A few past the dry run's count, in case a run takes another path.
        for n in 1..=count + 3 {
            case.reset(&work);
            let out = cx.run.run(under_strace(
                op_cmd(&work, &case.seg, &case.op),
                Path::new("/dev/null"),
                &watch,
                call,
                Some(&format!("{call}:signal=KILL:when={n}")),
                false,
            ));
            if !out.killed_by(libc::SIGKILL) {
                let verdict = if out.ok() {
                    check_acknowledged(&cx.run, &work, &case.model, &case.op, &out.out())
                        .map(|_| ())
                } else {
                    Err(format!("unkilled run failed: {}", out.describe()))
                };
                if let Err(e) = verdict {
                    sweep
                        .violations
                        .push(format!("[{}] {call} #{n} (unkilled): {e}", case.name));
                }
                break;
            }
            if !out.stdout.is_empty() {
                sweep.violations.push(format!(
                    "[{}] {call} #{n}: killed, yet printed {:?} (an acknowledgement before the fsync)",
                    case.name,
                    out.out()
                ));
            }
            sweep.points += 1;
            per_case += 1;
            let changed = case.changed_sealed(&work);
            if !changed.is_empty() {
                sweep.violations.push(format!(
                    "[{}] killed before {call} #{n}: sealed segments modified in place: {changed:?}",
                    case.name
                ));
            }
            match check_recovery(&cx.run, &work, &case.seg, &case.model, &case.op) {
                Ok((Outcome::Absent, _)) => sweep.absent += 1,
                Ok((Outcome::Applied, _)) => sweep.applied += 1,
                Err(e) => sweep
                    .violations
                    .push(format!("[{}] killed before {call} #{n}: {e}", case.name)),
            }
        }
    }
    // Equal unless a run took another path than the dry run (then the
    // sweep went on until the command completed unkilled anyway).
    let dry: u64 = counts.values().sum();
    eprintln!(
        "[{}] {:<52} {per_case:>4} kill points ({dry} calls in the dry run)  {:?}",
        cx.name, case.name, counts
    );
}

fn run_cases(cx: Ctx, cases: Vec<Case>) {
    let mut s = Sweep::default();
    for c in &cases {
        sweep(&cx, c, &mut s);
    }
    eprintln!(
        "[{}] kill points: {}, violations: {} (in-flight command absent after {} kills, applied after {})",
        cx.name,
        s.points,
        s.violations.len(),
        s.absent,
        s.applied
    );
    let v = s.violations.clone();
    cx.finish();
    crate::support::assert_no_violations(&v);
}

#[test]
fn kill_at_every_boundary_of_single_record_commands() {
    crate::support::require_tools(&["strace"]);
    let cx = Ctx::new("kill-single");
    let cases = Cases::build(&cx);
    let mut v = cases.single_commands();
    v.push(cases.first_write());
    run_cases(cx, v);
}

#[test]
fn kill_at_every_boundary_of_rotation_and_compaction() {
    crate::support::require_tools(&["strace"]);
    let cx = Ctx::new("kill-rotation-compaction");
    let cases = Cases::build(&cx);
    run_cases(cx, cases.rotation_and_compaction());
}

/// The key index's writes after a manifest commit: killed at each, the
/// commit stands or not as before, and every key is still found.
#[test]
fn kill_at_every_boundary_of_key_index_commits() {
    crate::support::require_tools(&["strace"]);
    let cx = Ctx::new("kill-keys");
    let cases = Cases::build(&cx);
    run_cases(cx, cases.keyed());
}

#[test]
fn kill_at_every_boundary_of_batches() {
    crate::support::require_tools(&["strace"]);
    let cx = Ctx::new("kill-batches");
    let cases = Cases::build(&cx);
    run_cases(cx, cases.batches());
}

#[test]
fn kill_at_every_boundary_of_crash_recovery() {
    crate::support::require_tools(&["strace"]);
    let cx = Ctx::new("kill-recovery");
    let cases = Cases::build(&cx);
    let v = cases.recovery(&cx);
    run_cases(cx, v);
}

/// `repair` of a store with a damaged record in a sealed segment, killed at
/// every boundary (links into quarantine included): running `repair` again
/// must finish, and give exactly what an uninterrupted repair gives, with
/// the damaged original kept byte for byte in quarantine.
#[test]
fn kill_at_every_boundary_of_repair() {
    use crate::history;
    use crate::support::{count_calls, names, reset_dir, stratum_cmd, watch_paths};
    use std::fs;

    crate::support::require_tools(&["strace"]);
    let cx = Ctx::new("kill-repair");
    let cases = Cases::build(&cx);
    let tpl = cx.path("damaged");
    reset_dir(&cases.base, &tpl);
    let victim = tpl.join("seg_000002.seg");
    let mut bytes = fs::read(&victim).expect("segment");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    fs::write(&victim, &bytes).expect("damage");

    // The reference: one uninterrupted repair, then a probe write.
    let reference = cx.path("reference");
    reset_dir(&tpl, &reference);
    let out = cx.run.stratum(&reference, &["repair"]);
    assert!(out.ok(), "reference repair: {}", out.describe());
    let want = history::dump(&cx.run, &reference).expect("dump after repair");
    let probe = cx.run.stratum(&reference, &["create-doc", "probe"]);
    assert!(probe.ok(), "{}", probe.describe());
    let want_id = probe.out().trim().to_owned();

    let work = cx.path("work");
    let mut watch = watch_paths(&tpl);
    for p in &mut watch {
        *p = match p.strip_prefix(&tpl) {
            Ok(rel) if !rel.as_os_str().is_empty() => work.join(rel),
            _ => work.clone(),
        };
    }
    watch.push(work.join(stratum::engine::QUARANTINE_DIR));
    let calls = format!("{},link,linkat", crate::support::MUTATING.join(","));
    reset_dir(&tpl, &work);
    let log = cx.path("count.log");
    let dry = cx.run.run(under_strace(
        stratum_cmd(&work, &["repair"]),
        &log,
        &watch,
        &calls,
        None,
        false,
    ));
    assert!(dry.ok(), "{}", dry.describe());
    let counts = count_calls(&log);

    let mut points = 0;
    let mut violations = Vec::new();
    for (call, &count) in &counts {
        for n in 1..=count + 3 {
            reset_dir(&tpl, &work);
            let out = cx.run.run(under_strace(
                stratum_cmd(&work, &["repair"]),
                Path::new("/dev/null"),
                &watch,
                call,
                Some(&format!("{call}:signal=KILL:when={n}")),
                false,
            ));
            if !out.killed_by(libc::SIGKILL) {
                break;
            }
            points += 1;
            let label = format!("killed before {call} #{n}");
            let again = cx.run.stratum(&work, &["repair"]);
            if !again.ok() {
                violations.push(format!("{label}: the next repair: {}", again.describe()));
                continue;
            }
            let v = cx.run.stratum(&work, &["verify"]);
            if !v.ok() {
                violations.push(format!(
                    "{label}: verify after the next repair: {}",
                    v.describe()
                ));
            }
            match history::dump(&cx.run, &work) {
                Ok(got) if got == want => {}
                Ok(got) => violations.push(format!("{label}: {}", history::diff(&want, &got))),
                Err(e) => violations.push(format!("{label}: {e}")),
            }
            let q = work.join(stratum::engine::QUARANTINE_DIR);
            let kept = names(&q)
                .iter()
                .any(|n| fs::read(q.join(n)).is_ok_and(|b| b == bytes));
            if !kept {
                violations.push(format!(
                    "{label}: the damaged original is not in quarantine byte for byte: {:?}",
                    names(&q)
                ));
            }
            let probe = cx.run.stratum(&work, &["create-doc", "probe"]);
            if probe.out().trim() != want_id {
                violations.push(format!(
                    "{label}: next id {:?}, an uninterrupted repair gives {want_id}",
                    probe.out().trim()
                ));
            }
            if !crate::support::tmp_files(&work).is_empty() {
                violations.push(format!(
                    "{label}: temporary files left: {:?}",
                    crate::support::tmp_files(&work)
                ));
            }
        }
    }
    eprintln!("[{}] repair: calls {counts:?}", cx.name);
    eprintln!(
        "[{}] kill points: {points}, violations: {}",
        cx.name,
        violations.len()
    );
    cx.finish();
    crate::support::assert_no_violations(&violations);
}
