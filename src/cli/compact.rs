//! `stratum compact`: merge the segments when it is worth it.

use clap::Args;
use serde::Serialize;

use crate::cli::{GlobalArgs, output, parse_size, summary};
use stratum::Mode;
use stratum::engine::CompactPlan;

/// Merge the segments, keeping only live data.
///
/// Keeps the newest version of every live document and node; drops old
/// versions, deleted items and tombstones; says what it did on stderr.
/// Crash-safe: a crash at any point leaves the old or the new state. With
/// --min-garbage and/or --min-dead-bytes it compacts only when every
/// threshold given is met, and otherwise says why and exits 0. --dry-run
/// says what it would reclaim and changes nothing. --quiet prints nothing
/// on success (the line a crontab runs). Document ids are never reused, even
/// after compaction.
///
/// The JSON form (--json, on stdout) is one object:
///   {"compacted", "dry_run", "reason", "segments", "bytes", "live_bytes",
///    "reclaimable_bytes", "garbage_ratio", "segments_after", "bytes_after"}
/// "reason" says why it did not compact (null otherwise); "segments_after"
/// and "bytes_after" are null unless it compacted. Sizes are in bytes.
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Merge the segments, keeping only live data",
    after_help = "\
Examples:
  stratum compact
  stratum compact --dry-run
  stratum compact --json | jq '.bytes - .bytes_after'
  # crontab: every night at 03:17, when at least a third of the store is garbage
  17 3 * * * stratum --dir /srv/fixtures --quiet compact --min-garbage 0.33"
)]
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
    /// Report as one JSON object on stdout instead of a line on stderr.
    #[arg(long)]
    pub json: bool,
}

/// The `--json` report.
#[derive(Serialize)]
struct Report {
    compacted: bool,
    dry_run: bool,
    reason: Option<String>,
    segments: usize,
    bytes: u64,
    live_bytes: u64,
    reclaimable_bytes: u64,
    garbage_ratio: f64,
    segments_after: Option<usize>,
    bytes_after: Option<u64>,
}

impl Report {
    fn from_plan(plan: &CompactPlan, dry_run: bool, reason: Option<String>) -> Report {
        Report {
            compacted: false,
            dry_run,
            reason,
            segments: plan.segments,
            bytes: plan.bytes_before,
            live_bytes: plan.live_bytes,
            reclaimable_bytes: plan.reclaimable_bytes,
            garbage_ratio: plan.garbage_ratio,
            segments_after: None,
            bytes_after: None,
        }
    }
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
            "{} reclaimable is below --min-dead-bytes {}",
            output::human_size(plan.reclaimable_bytes),
            output::human_size(min)
        ));
    }
    (!why.is_empty()).then(|| why.join(" and "))
}

fn garbage(plan: &CompactPlan) -> String {
    output::garbage_text(
        plan.reclaimable_bytes,
        plan.bytes_before,
        plan.garbage_ratio,
    )
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
        let human = format!("not compacting: {why} (garbage {})", garbage(&plan));
        let report = Report::from_plan(&plan, args.dry_run, Some(why));
        return summary::report(g, args.json, &report, &human);
    }
    if args.dry_run {
        let human = format!(
            "would compact {}: garbage {}; about {} would remain",
            output::count(plan.segments, "segment"),
            garbage(&plan),
            output::human_size(plan.live_bytes)
        );
        return summary::report(g, args.json, &Report::from_plan(&plan, true, None), &human);
    }
    let mut store = g.open(Mode::Write)?;
    // The store may have changed between the two opens; decide again.
    let plan = store.compact_plan()?;
    if let Some(why) = not_worth_it(&args, &plan) {
        let human = format!("not compacting: {why} (garbage {})", garbage(&plan));
        let report = Report::from_plan(&plan, false, Some(why));
        return summary::report(g, args.json, &report, &human);
    }
    let bar = output::Bar::new(g.quiet, "compact", Some(plan.live_bytes));
    let done = store.compact(&mut |p| bar.update(p))?;
    bar.finish();
    drop(store);
    let human = format!(
        "compacted {}, {} → {} (garbage was {})",
        output::count(done.segments_before, "segment"),
        output::human_size(done.bytes_before),
        output::human_size(done.bytes_after),
        garbage(&plan)
    );
    let report = Report {
        compacted: true,
        segments: done.segments_before,
        bytes: done.bytes_before,
        segments_after: Some(done.segments_after),
        bytes_after: Some(done.bytes_after),
        ..Report::from_plan(&plan, false, None)
    };
    summary::report(g, args.json, &report, &human)
}
