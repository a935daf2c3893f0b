//! `stratum compact`: merge the segments worth merging.

use clap::Args;
use serde::Serialize;

use crate::cli::{GlobalArgs, output, parse_size, summary};
use stratum::engine::{CompactMode, CompactPlan, DEAD_SHARE, Estimate};

/// Merge the segments worth merging, keeping only live data.
///
/// Merges only the segments worth it: those at least 40% reclaimable (dead
/// bytes less a segment's fixed header and footer) or with 128 MiB
/// reclaimable, and the small ones (under a quarter of --segment-size) when
/// there are two or more or anything else is merged. Their live records are copied as they are on disk,
/// checked by CRC; everything else is left alone, so with nothing to
/// reclaim it writes nothing. A deletion is kept while an older record it
/// hides survives in a segment not merged. --full rewrites the whole store
/// instead, active.seg included. Says what it did on stderr. Crash-safe: a
/// crash at any point leaves the old or the new state. With --min-garbage
/// and/or --min-dead-bytes it compacts only when every threshold given is
/// met (the store-wide figures `stats` shows), and otherwise says why and
/// exits 0. --dry-run says what it would merge and write, exactly, and
/// changes nothing. --quiet prints nothing on success (the line a crontab
/// runs). On a store an earlier build wrote, the first compaction also
/// writes the counters `stats` reads, even when it merges nothing. Document
/// ids are never reused, even after compaction.
///
/// The JSON form (--json, on stdout) is one object:
///   {"compacted", "dry_run", "full", "reason", "segments", "bytes",
///    "live_bytes", "reclaimable_bytes", "garbage_ratio", "merge",
///    "merge_bytes", "write_bytes", "segments_after", "bytes_after"}
/// "live_bytes", "reclaimable_bytes" and "garbage_ratio" are the figures
/// `stats` shows; "merge" names the segments merged (or to be merged),
/// "merge_bytes" is their size and "write_bytes" the segment bytes written
/// (or, with --dry-run, to be written: exact, except for --full, where it is
/// the live bytes plus one segment's framing). "reason" says why it did not
/// compact (null otherwise); "segments_after" and "bytes_after" are null
/// unless it compacted. Sizes are in bytes.
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Merge the segments worth merging, keeping only live data",
    after_help = "\
Examples:
  stratum compact
  stratum compact --dry-run
  stratum compact --full
  stratum compact --json | jq '.bytes - .bytes_after'
  # crontab: every night at 03:17, when at least a third of the store is garbage
  17 3 * * * stratum --dir /srv/fixtures --quiet compact --min-garbage 0.33"
)]
pub struct CompactArgs {
    /// Say what would be merged and written, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rewrite the whole store, not only the segments worth merging.
    #[arg(long)]
    pub full: bool,
    /// Compact only when at least this fraction (0 to 1) of the segment
    /// bytes is garbage.
    #[arg(long, value_name = "RATIO", value_parser = parse_ratio)]
    pub min_garbage: Option<f64>,
    /// Compact only when at least this many segment bytes are garbage (K, M
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
    full: bool,
    reason: Option<String>,
    segments: usize,
    bytes: u64,
    live_bytes: u64,
    reclaimable_bytes: u64,
    garbage_ratio: f64,
    merge: Vec<String>,
    merge_bytes: u64,
    write_bytes: u64,
    segments_after: Option<usize>,
    bytes_after: Option<u64>,
}

impl Report {
    fn from_plan(plan: &CompactPlan, dry_run: bool, reason: Option<String>) -> Report {
        Report {
            compacted: false,
            dry_run,
            full: plan.full,
            reason,
            segments: plan.segments,
            bytes: plan.bytes_before,
            live_bytes: plan.live_bytes,
            reclaimable_bytes: plan.reclaimable_bytes,
            garbage_ratio: plan.garbage_ratio,
            merge: plan.merge.clone(),
            merge_bytes: plan.merge_bytes,
            write_bytes: plan.write_bytes,
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

/// Whether a threshold given is not met.
fn below(args: &CompactArgs, plan: &CompactPlan) -> bool {
    args.min_garbage.is_some_and(|min| plan.garbage_ratio < min)
        || args
            .min_dead_bytes
            .is_some_and(|min| plan.reclaimable_bytes < min)
}

/// Why compaction is not worth it, or `None` when every threshold is met
/// and there is something to merge.
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
    if why.is_empty() && plan.merge.is_empty() {
        why.push(format!(
            "no segment is worth merging (none is {:.0}% reclaimable, none is small beside another)",
            DEAD_SHARE * 100.0
        ));
    }
    (!why.is_empty()).then(|| why.join(" and "))
}

/// The garbage as `stats` shows it: dead over all segment bytes.
fn garbage(plan: &CompactPlan) -> String {
    output::garbage_text(
        plan.reclaimable_bytes,
        plan.live_bytes + plan.reclaimable_bytes,
        plan.garbage_ratio,
    )
}

/// Runs `compact`.
///
/// # Errors
/// No store, not enough free space, lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: CompactArgs) -> anyhow::Result<()> {
    let mode = if args.full {
        CompactMode::Full
    } else {
        CompactMode::Selective
    };
    // Decide under a shared lock: a nightly run that finds nothing worth
    // doing never blocks writers, and a missing store is reported, not
    // created. A dry run works out exactly what would be written.
    let estimate = if args.dry_run {
        Estimate::Exact
    } else {
        Estimate::Figures
    };
    let plan = g.open_read()?.compact_plan(mode, estimate)?;
    if let Some(why) = not_worth_it(&args, &plan) {
        // A manifest an earlier build wrote has no counters: the first
        // compaction that gets this far writes them, merging or not.
        if !plan.counted && !args.dry_run && plan.merge.is_empty() && !below(&args, &plan) {
            g.open()?.write_counters()?;
        }
        let human = format!("not compacting: {why} (garbage {})", garbage(&plan));
        let report = Report::from_plan(&plan, args.dry_run, Some(why));
        return summary::report(g, args.json, &report, &human);
    }
    if args.dry_run {
        let human = format!(
            "would merge {} of {} ({}), writing {} (garbage {})",
            output::count(plan.merge.len(), "segment"),
            plan.segments,
            output::human_size(plan.merge_bytes),
            output::human_size(plan.write_bytes),
            garbage(&plan)
        );
        return summary::report(g, args.json, &Report::from_plan(&plan, true, None), &human);
    }
    let mut store = g.open()?;
    // The store may have changed between the two opens; decide again.
    let plan = store.compact_plan(mode, Estimate::Figures)?;
    if let Some(why) = not_worth_it(&args, &plan) {
        let human = format!("not compacting: {why} (garbage {})", garbage(&plan));
        let report = Report::from_plan(&plan, false, Some(why));
        return summary::report(g, args.json, &report, &human);
    }
    let bar = output::Bar::new(g.quiet, "compact", Some(plan.write_bytes));
    let done = store.compact_with(mode, &mut |p| bar.update(p))?;
    bar.finish();
    drop(store);
    let human = format!(
        "compacted {} of {}, wrote {}: {} → {} (garbage was {})",
        output::count(done.merged, "segment"),
        done.segments_before,
        output::human_size(done.written),
        output::human_size(done.bytes_before),
        output::human_size(done.bytes_after),
        garbage(&plan)
    );
    let report = Report {
        compacted: true,
        segments: done.segments_before,
        bytes: done.bytes_before,
        write_bytes: done.written,
        segments_after: Some(done.segments_after),
        bytes_after: Some(done.bytes_after),
        ..Report::from_plan(&plan, false, None)
    };
    summary::report(g, args.json, &report, &human)
}
