//! The checks run after every fault (the guide's invariants I1–I8): the
//! store verifies, holds the acknowledged history with the one in-flight
//! command absent or fully applied, accepts the next write with a fresh id,
//! and keeps no temporary file once that write succeeded.

use std::path::Path;

use crate::history::{self, Command, Model, create_doc, text_doc};
use crate::support::{Runner, tmp_files};

/// What became of the in-flight command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Absent,
    Applied,
}

/// Runs after a fault hit `op` (which was therefore not acknowledged).
/// Returns the outcome and the model to continue from, or what is wrong.
pub fn check_recovery(
    run: &Runner,
    dir: &Path,
    seg: &str,
    model: &Model,
    op: &Command,
) -> Result<(Outcome, Model), String> {
    if !dir.join("LOCK").exists() && model.doc_hwm == 0 {
        // A fault while the first write was creating the store, before its
        // lock file existed: there is no store yet (read commands say so,
        // exit 3), and the next write must create it.
        return probe_and_reverify(run, dir, seg, model.clone()).map(|m| (Outcome::Absent, m));
    }
    let v = run.stratum(dir, &["verify"]);
    if !v.ok() {
        return Err(format!(
            "verify after the fault: {}; stdout: {}",
            v.describe(),
            v.out()
        ));
    }
    let got = history::dump(run, dir)?;
    let (applied, _) = model.after(op).map_err(|e| format!("model: {e}"))?;
    let (outcome, m) = if got == model.docs {
        (Outcome::Absent, model.clone())
    } else if got == applied.docs {
        (Outcome::Applied, applied)
    } else {
        return Err(format!(
            "state is neither before nor after the in-flight {}: vs before: {}; vs after: {}",
            op.kind(),
            history::diff(&model.docs, &got),
            history::diff(&applied.docs, &got)
        ));
    };
    check_keys(run, dir, &m)?;
    let m = probe_and_reverify(run, dir, seg, m)?;
    check_keys(run, dir, &m)?;
    Ok((outcome, m))
}

/// Every key of the model is found by `get key:K` and names its document:
/// whatever a fault left of the key index, a lookup never misses a key.
pub fn check_keys(run: &Runner, dir: &Path, m: &Model) -> Result<(), String> {
    for (id, d) in &m.docs {
        let Some(k) = &d.key else { continue };
        let out = run.stratum(dir, &["get", &format!("key:{k}")]);
        let got: Option<u64> = out
            .ok()
            .then(|| serde_json::from_str::<serde_json::Value>(out.out().trim()).ok())
            .flatten()
            .and_then(|v| v["id"].as_u64());
        if got != Some(*id) {
            return Err(format!(
                "get key:{k} found {got:?}, the store holds it in document {id}: {}",
                out.describe()
            ));
        }
    }
    Ok(())
}

/// The next write succeeds and gets an id past every id ever handed out;
/// afterwards no temporary file remains, the store verifies and holds the
/// model.
pub fn probe_and_reverify(
    run: &Runner,
    dir: &Path,
    seg: &str,
    mut m: Model,
) -> Result<Model, String> {
    let probe = create_doc(text_doc(
        format!("probe after doc {}", m.doc_hwm),
        Some("probe".into()),
        None,
    ));
    let out = run.run(history::op_cmd(dir, seg, &probe));
    if !out.ok() {
        return Err(format!("the next write failed: {}", out.describe()));
    }
    let (next, ids) = m.after(&probe).map_err(|e| format!("model: {e}"))?;
    let printed = Model::printed_ids(&probe, &out.out());
    if printed != ids {
        return Err(format!(
            "the next create-doc printed id {printed:?}, expected {ids:?} (ids must never be reused or skipped)"
        ));
    }
    m = next;
    let tmps = tmp_files(dir);
    if !tmps.is_empty() {
        return Err(format!(
            "temporary files left after a successful write: {tmps:?}"
        ));
    }
    let v = run.stratum(dir, &["verify"]);
    if !v.ok() {
        return Err(format!(
            "verify after the next write: {}; stdout: {}",
            v.describe(),
            v.out()
        ));
    }
    let got = history::dump(run, dir)?;
    if got != m.docs {
        return Err(format!(
            "after the next write: {}",
            history::diff(&m.docs, &got)
        ));
    }
    Ok(m)
}

/// Checks a run that exited 0: printed ids and the resulting state.
pub fn check_acknowledged(
    run: &Runner,
    dir: &Path,
    model: &Model,
    op: &Command,
    stdout: &str,
) -> Result<Model, String> {
    let (next, ids) = model.after(op).map_err(|e| format!("model: {e}"))?;
    let printed = Model::printed_ids(op, stdout);
    let want = Model::expected_printed(op, &ids);
    if printed != want {
        return Err(format!("printed ids {printed:?}, expected {want:?}"));
    }
    let got = history::dump(run, dir)?;
    if got != next.docs {
        return Err(format!(
            "acknowledged {} not in the store: {}",
            op.kind(),
            history::diff(&next.docs, &got)
        ));
    }
    Ok(next)
}
