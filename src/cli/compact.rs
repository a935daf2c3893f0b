//! `stratum compact`: merge the segments when it is worth it.

use clap::Args;

use crate::cli::{GlobalArgs, message, output, parse_size};
use stratum::Mode;
use stratum::engine::CompactPlan;

/// Merge the segments, keeping only live data.
///
/// Keeps the newest version of every live document and node; drops old
/// versions, deleted items and tombstones; reports the bytes before and
/// after on stderr. Crash-safe: a crash at any point leaves the old or the
/// new state. With --min-garbage and/or --min-dead-bytes it compacts only
/// when every threshold given is met, and otherwise says why and exits 0
/// (the line a crontab runs). --dry-run says what it would reclaim and
/// changes nothing. Document ids are never reused, even after compaction.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum compact
  stratum compact --dry-run
  stratum compact --min-garbage 0.5 --quiet
  # crontab: every night at 03:17, when at least a third of the store is garbage
  17 3 * * * stratum --dir /srv/fixtures compact --min-garbage 0.33 --quiet")]
pub struct CompactArgs {
    /// Say what would be reclaimed, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Compact only when at least this fraction (0 to 1) of the bytes on
    /// disk is garbage.
    #[arg(long, value_name = "RATIO", value_parser = parse_ratio)]
    pub min_garbage: Option<f64>,
    /// Compact only when at least this many bytes would be reclaimed (K, M
    /// and G suffixes allowed).
    #[arg(long, value_name = "N", value_parser = parse_size)]
    pub min_dead_bytes: Option<u64>,
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("`{text}` is not a ratio between 0 and 1")),
    }
}

/// Why compaction is not worth it, or `None` when every threshold is met.
fn not_worth_it(args: &CompactArgs, plan: &CompactPlan) -> Option<String> {
    let mut why = Vec::new();
    if let Some(min) = args.min_garbage
        && plan.garbage_ratio < min
    {
        why.push(format!(
            "garbage ratio {:.3} is below --min-garbage {min}",
            plan.garbage_ratio
        ));
    }
    if let Some(min) = args.min_dead_bytes
        && plan.reclaimable_bytes < min
    {
        why.push(format!(
            "{} reclaimable bytes are below --min-dead-bytes {min}",
            plan.reclaimable_bytes
        ));
    }
    (!why.is_empty()).then(|| why.join(" and "))
}

/// Runs `compact`.
///
/// # Errors
/// No store, not enough free space, lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: CompactArgs) -> anyhow::Result<()> {
    // Decide under a shared lock: a nightly run that finds nothing worth
    // doing never blocks writers, and a missing store is reported, not
    // created.
    let plan = g.open(Mode::Read)?.compact_plan()?;
    if let Some(why) = not_worth_it(&args, &plan) {
        message(&format!(
            "not compacting: {why} ({} of {} bytes reclaimable)",
            plan.reclaimable_bytes, plan.bytes_before
        ));
        return Ok(());
    }
    if args.dry_run {
        message(&format!(
            "would compact {} segment{}, {} → about {} bytes (about {} bytes reclaimed, garbage ratio {:.3})",
            plan.segments,
            if plan.segments == 1 { "" } else { "s" },
            plan.bytes_before,
            plan.live_bytes,
            plan.reclaimable_bytes,
            plan.garbage_ratio
        ));
        return Ok(());
    }
    let mut store = g.open(Mode::Write)?;
    // The store may have changed between the two opens; decide again.
    let plan = store.compact_plan()?;
    if let Some(why) = not_worth_it(&args, &plan) {
        message(&format!("not compacting: {why}"));
        return Ok(());
    }
    let bar = output::Bar::new(g.quiet, "compact", Some(plan.live_bytes));
    let report = store.compact(&mut |p| bar.update(p))?;
    bar.finish();
    drop(store);
    message(&format!(
        "compacted {} segment{}, {} → {} bytes",
        report.segments_before,
        if report.segments_before == 1 { "" } else { "s" },
        report.bytes_before,
        report.bytes_after
    ));
    Ok(())
}
