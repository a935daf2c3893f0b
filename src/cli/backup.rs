//! `stratum backup DEST`: a consistent, verified copy that is a store of its
//! own.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::cli::{GlobalArgs, output, summary};
use stratum::engine;

/// Copy the store to DEST, consistently and verified.
///
/// Runs under the shared lock, so readers keep working while writers wait.
/// Every file is copied, so the backup shares no blocks with the store and
/// a media error in one cannot reach the other; --link hard-links the
/// sealed segments instead (fast, but a damaged sealed file is then damaged
/// in both). The active segment is copied up to its last committed record,
/// so a half-written record never reaches the backup. The copy is built
/// under a hidden temporary name next to DEST, fsynced and verified, and
/// only then renamed to DEST: a backup that fails leaves DEST as it was.
/// DEST must not exist or be empty; afterwards it is a store of its own
/// (`stratum --dir DEST …`).
/// Says what it did on stderr; --quiet prints nothing on success.
///
/// The JSON form (--json, on stdout) is one object:
///   {"dest", "linked", "copied", "bytes", "verified"}
/// "linked" and "copied" count files; "bytes" is the backup's size.
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Copy the store to DEST, consistently and verified",
    after_help = "\
Examples:
  stratum backup /backups/problems-$(date +%F)
  stratum backup --link /srv/snapshots/before-migration
  stratum --dir /backups/problems-2026-11-24 list
  # crontab: a nightly backup after compaction
  30 3 * * * stratum --dir /srv/problems --quiet backup /backups/problems-$(date +\\%F)"
)]
pub struct BackupArgs {
    /// Where to put the copy: a new or empty directory.
    #[arg(value_name = "DEST")]
    pub dest: PathBuf,
    /// Hard-link the sealed segments and their indexes instead of copying
    /// them, where DEST is on the same file system: fast and small, but no
    /// protection against damage to those files.
    #[arg(long)]
    pub link: bool,
    /// Report as one JSON object on stdout instead of a line on stderr.
    #[arg(long)]
    pub json: bool,
}

/// The `--json` report.
#[derive(Serialize)]
struct Report<'a> {
    dest: &'a str,
    linked: u64,
    copied: u64,
    bytes: u64,
    verified: bool,
}

/// Runs `backup`.
///
/// # Errors
/// No store, a non-empty DEST (invalid input), lock timeout, I/O, a backup
/// that does not verify (corruption).
pub fn run(g: &GlobalArgs, args: BackupArgs) -> anyhow::Result<()> {
    let store = g.open_read()?;
    let bar = output::Bar::new(g.quiet, "backup", Some(0));
    let sealed = if args.link {
        engine::Sealed::Link
    } else {
        engine::Sealed::Copy
    };
    let report = engine::backup(&store, &args.dest, sealed, &mut |p| bar.update(p))?;
    bar.finish();
    let dest = args.dest.display().to_string();
    let human = format!(
        "backed up to {dest}: {} files linked, {} copied, {}; verified",
        report.linked,
        report.copied,
        output::human_size(report.bytes)
    );
    let json = Report {
        dest: &dest,
        linked: report.linked,
        copied: report.copied,
        bytes: report.bytes,
        // A backup that did not verify is an error, not a report.
        verified: true,
    };
    summary::report(g, args.json, &json, &human)
}
