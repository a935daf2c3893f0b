//! `stratum repair`: salvage a damaged store in place.

use clap::Args;
use serde::Serialize;

use crate::cli::{GlobalArgs, output, summary};
use stratum::engine::{self, QUARANTINE_DIR};

/// Salvage a damaged store: keep every record that passes its CRC.
///
/// Each damaged segment is rewritten with the records that pass their CRC;
/// the damaged original is moved to quarantine/ inside the data directory
/// (never deleted); then the store is compacted, so that it verifies. Damage
/// costs the records it hit; the intact records of a batch it cut are
/// kept (a batch with no commit at the end of a file, never acknowledged,
/// is left out and counted). An index file that disagrees with its intact
/// segment (restored from another copy of the store, say) is written again
/// from the segment, which is never rewritten for it. On a store without
/// damage it only compacts. Run `stratum dump --salvage` first to see what can be read. Says what it
/// did on stderr; --quiet prints nothing on success.
///
/// The JSON form (--json, on stdout) is one object:
///   {"quarantined": ["file", …], "records_kept", "damaged_bytes",
///    "uncommitted_records", "reindexed": ["file", …], "compacted"}
/// "quarantined" lists the damaged files moved to quarantine/ (empty when
/// there was no damage); "reindexed" the index files written again.
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Salvage a damaged store: keep every record that passes its CRC",
    after_help = "\
Examples:
  stratum verify --quiet || stratum repair
  stratum dump --salvage > before-repair.jsonl && stratum repair && stratum verify
  stratum repair --json | jq -r '.quarantined[]'"
)]
pub struct RepairArgs {
    /// Report as one JSON object on stdout instead of a line on stderr.
    #[arg(long)]
    pub json: bool,
}

/// The `--json` report.
#[derive(Serialize)]
struct Report<'a> {
    quarantined: &'a [String],
    records_kept: u64,
    damaged_bytes: u64,
    uncommitted_records: u64,
    reindexed: &'a [String],
    compacted: bool,
}

/// Runs `repair`.
///
/// # Errors
/// No store, lock timeout, I/O.
pub fn run(g: &GlobalArgs, args: RepairArgs) -> anyhow::Result<()> {
    let bar = output::Bar::new(g.quiet, "repair", Some(0));
    let report = engine::repair(&g.options(), &mut |p| bar.update(p))?;
    bar.finish();
    let reindexed = if report.reindexed.is_empty() {
        String::new()
    } else {
        format!(
            "; rebuilt {} from {}",
            report.reindexed.join(", "),
            if report.reindexed.len() == 1 {
                "its segment"
            } else {
                "their segments"
            }
        )
    };
    let human = if report.quarantined.is_empty() {
        format!("no damage found{reindexed}; the store was compacted")
    } else {
        format!(
            "repaired: moved {} to {QUARANTINE_DIR}/, kept {} records, lost {} of damaged data{}{reindexed}; the store was compacted",
            report.quarantined.join(", "),
            report.records_kept,
            output::human_size(report.damaged_bytes),
            output::uncommitted_note(report.uncommitted_records)
        )
    };
    let json = Report {
        quarantined: &report.quarantined,
        records_kept: report.records_kept,
        damaged_bytes: report.damaged_bytes,
        uncommitted_records: report.uncommitted_records,
        reindexed: &report.reindexed,
        compacted: true,
    };
    summary::report(g, args.json, &json, &human)
}
