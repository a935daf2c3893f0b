//! `stratum repair`: salvage a damaged store in place.

use clap::Args;

use crate::cli::{GlobalArgs, message, output};
use stratum::engine::{self, QUARANTINE_DIR};

/// Salvage a damaged store: keep every record that passes its CRC.
///
/// Each damaged segment is rewritten with the records that pass their CRC;
/// the damaged original is moved to quarantine/ inside the data directory
/// (never deleted); then the store is compacted, so that it verifies. Damage
/// costs the records it hit; the intact records of a batch it cut are
/// kept (a batch with no commit at the end of a file, never acknowledged,
/// is left out and counted). On a store without damage it only compacts. Run `stratum dump
/// --salvage` first to see what can be read.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum verify || stratum repair
  stratum dump --salvage > before-repair.jsonl && stratum repair && stratum verify")]
pub struct RepairArgs {}

/// Runs `repair`.
///
/// # Errors
/// No store, lock timeout, I/O.
pub fn run(g: &GlobalArgs, _args: RepairArgs) -> anyhow::Result<()> {
    let bar = output::Bar::new(g.quiet, "repair", Some(0));
    let report = engine::repair(&g.options(), &mut |p| bar.update(p))?;
    bar.finish();
    if report.quarantined.is_empty() {
        message("no damage found; the store was compacted");
    } else {
        message(&format!(
            "repaired: moved {} to {QUARANTINE_DIR}/, kept {} records, lost {} damaged bytes{}; the store was compacted",
            report.quarantined.join(", "),
            report.records_kept,
            report.damaged_bytes,
            crate::cli::dump::uncommitted_note(report.uncommitted_records)
        ));
    }
    Ok(())
}
