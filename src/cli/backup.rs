//! `stratum backup DEST`: a consistent, verified copy that is a store of its
//! own.

use std::path::PathBuf;

use clap::Args;

use crate::cli::{GlobalArgs, message, output};
use stratum::Mode;
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
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum backup /backups/problems-$(date +%F)
  stratum backup --link /srv/snapshots/before-migration
  stratum --dir /backups/problems-2026-11-24 list
  # crontab: a nightly backup after compaction
  30 3 * * * stratum --dir /srv/problems --quiet backup /backups/problems-$(date +\\%F)")]
pub struct BackupArgs {
    /// Where to put the copy: a new or empty directory.
    #[arg(value_name = "DEST")]
    pub dest: PathBuf,
    /// Hard-link the sealed segments and their indexes instead of copying
    /// them, where DEST is on the same file system: fast and small, but no
    /// protection against damage to those files.
    #[arg(long)]
    pub link: bool,
}

/// Runs `backup`.
///
/// # Errors
/// No store, a non-empty DEST (invalid input), lock timeout, I/O, a backup
/// that does not verify (corruption).
pub fn run(g: &GlobalArgs, args: BackupArgs) -> anyhow::Result<()> {
    let store = g.open(Mode::Read)?;
    let bar = output::Bar::new(g.quiet, "backup", Some(0));
    let report = engine::backup(&store, &args.dest, args.link, &mut |p| bar.update(p))?;
    bar.finish();
    message(&format!(
        "backed up to {}: {} files linked, {} copied, {} bytes; verified",
        args.dest.display(),
        report.linked,
        report.copied,
        report.bytes
    ));
    Ok(())
}
