//! `stratum stats`: sizes, counts and the garbage ratio.

use std::io::Write;

use std::collections::BTreeMap;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::cli::{GlobalArgs, output};
use stratum::engine::Stats;

/// Show segment sizes, counts and the garbage ratio.
///
/// The JSON form (--json) is one object:
///   {"segments": [{"name", "bytes", "live_bytes", "dead_bytes"}],
///    "documents", "inputs", "outputs", "tombstones",
///    "total_bytes", "live_bytes", "garbage_ratio", "last_seq",
///    "doc_id_high_water", "format_version",
///    "last_compaction": null or {"first_segment", "segments"}}
/// Segments are listed oldest first, active.seg last. "last_compaction" is
/// the newest compaction's output still on disk, null if there is none.
/// Sizes are in bytes (the tables show them as `du -h` does).
///
/// --by category counts documents, inputs and outputs per category instead,
/// one row (or with --json one line) per category, in category order; the
/// documents without a category come first, as category null.
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Show segment sizes, counts and the garbage ratio",
    after_help = "\
Examples:
  stratum stats
  stratum stats --json | jq '.garbage_ratio'
  stratum stats --by category"
)]
pub struct StatsArgs {
    /// One JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Count documents, inputs and outputs per value of this field.
    #[arg(long, value_enum, value_name = "FIELD")]
    pub by: Option<By>,
}

/// What `stats --by` groups by.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum By {
    /// The document's category.
    Category,
}

/// One group of `stats --by`.
#[derive(Default, Serialize)]
struct Group {
    documents: u64,
    inputs: u64,
    outputs: u64,
}

#[derive(Serialize)]
struct GroupJson<'a> {
    category: Option<&'a str>,
    #[serde(flatten)]
    counts: &'a Group,
}

#[derive(Serialize)]
struct SegmentJson<'a> {
    name: &'a str,
    bytes: u64,
    live_bytes: u64,
    dead_bytes: u64,
}

#[derive(Serialize)]
struct StatsJson<'a> {
    segments: Vec<SegmentJson<'a>>,
    documents: u64,
    inputs: u64,
    outputs: u64,
    tombstones: u64,
    total_bytes: u64,
    live_bytes: u64,
    garbage_ratio: f64,
    last_seq: u64,
    doc_id_high_water: u64,
    format_version: u16,
    last_compaction: Option<CompactionJson<'a>>,
}

#[derive(Serialize)]
struct CompactionJson<'a> {
    first_segment: &'a str,
    segments: u32,
}

/// Runs `stats`.
///
/// # Errors
/// No store, lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: StatsArgs) -> anyhow::Result<()> {
    let store = g.open_read()?;
    if let Some(By::Category) = args.by {
        // One entry per category: memory follows the number of categories,
        // not of documents.
        let mut groups: BTreeMap<Option<String>, Group> = BTreeMap::new();
        store.list(&mut |s| {
            let g = groups.entry(s.category).or_default();
            g.documents += 1;
            g.inputs += s.inputs;
            g.outputs += s.outputs;
            Ok(())
        })?;
        drop(store);
        return write_groups(&groups, args.json);
    }
    let s = store.stats()?;
    drop(store);
    let mut out = output::stdout();
    if args.json {
        output::write_json_line(&mut out, &to_json(&s)).map_err(output::write_err)?;
    } else {
        write_tables(&mut out, &s).map_err(output::write_err)?;
    }
    out.flush().map_err(output::write_err)?;
    Ok(())
}

fn to_json(s: &Stats) -> StatsJson<'_> {
    StatsJson {
        segments: s
            .segments
            .iter()
            .map(|seg| SegmentJson {
                name: &seg.name,
                bytes: seg.bytes,
                live_bytes: seg.live_bytes,
                dead_bytes: seg.dead_bytes,
            })
            .collect(),
        documents: s.documents,
        inputs: s.inputs,
        outputs: s.outputs,
        tombstones: s.tombstones,
        total_bytes: s.total_bytes,
        live_bytes: s.live_bytes,
        garbage_ratio: s.garbage_ratio,
        last_seq: s.last_seq,
        doc_id_high_water: s.doc_id_high_water,
        format_version: s.format_version,
        last_compaction: s.last_compaction.as_ref().map(|(first, n)| CompactionJson {
            first_segment: first,
            segments: *n,
        }),
    }
}

fn write_tables(out: &mut impl Write, s: &Stats) -> std::io::Result<()> {
    let mut summary = output::table(&["", "value"]);
    let last_compaction = match &s.last_compaction {
        None => "never".to_owned(),
        Some((first, 1)) => format!("wrote {first}"),
        Some((first, n)) => format!("wrote {n} segments from {first}"),
    };
    let garbage = s.total_bytes.saturating_sub(s.live_bytes);
    let rows: [(&str, String); 11] = [
        ("documents", s.documents.to_string()),
        ("inputs", s.inputs.to_string()),
        ("outputs", s.outputs.to_string()),
        ("tombstones", s.tombstones.to_string()),
        ("total size", output::human_size(s.total_bytes)),
        ("live size", output::human_size(s.live_bytes)),
        (
            "garbage",
            output::garbage_text(garbage, s.total_bytes, s.garbage_ratio),
        ),
        ("last sequence", s.last_seq.to_string()),
        ("highest doc id", s.doc_id_high_water.to_string()),
        ("format version", s.format_version.to_string()),
        ("last compaction", last_compaction),
    ];
    for (k, v) in rows {
        summary.add_row(vec![k.to_owned(), v]);
    }
    output::write_table(out, &summary)?;
    let mut segs = output::table(&["segment", "size", "live", "dead"]);
    output::align_right(&mut segs, &[1, 2, 3]);
    for seg in &s.segments {
        segs.add_row(vec![
            seg.name.clone(),
            output::human_size(seg.bytes),
            output::human_size(seg.live_bytes),
            output::human_size(seg.dead_bytes),
        ]);
    }
    output::write_table(out, &segs)
}

fn write_groups(groups: &BTreeMap<Option<String>, Group>, json: bool) -> anyhow::Result<()> {
    let mut out = output::stdout();
    if json {
        for (category, counts) in groups {
            let line = GroupJson {
                category: category.as_deref(),
                counts,
            };
            output::write_json_line(&mut out, &line).map_err(output::write_err)?;
        }
    } else {
        let mut t = output::table(&["category", "documents", "inputs", "outputs"]);
        output::align_right(&mut t, &[1, 2, 3]);
        for (category, g) in groups {
            t.add_row(vec![
                category.clone().unwrap_or_else(|| "-".to_owned()),
                g.documents.to_string(),
                g.inputs.to_string(),
                g.outputs.to_string(),
            ]);
        }
        output::write_table(&mut out, &t).map_err(output::write_err)?;
    }
    out.flush().map_err(output::write_err)?;
    Ok(())
}
