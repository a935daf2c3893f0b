//! `stratum dump`: every live document as JSON Lines, or the raw log.

use std::io::Write;

use clap::Args;
use serde::Serialize;

use std::sync::atomic::{AtomicU64, Ordering};

use stratum::{Document, NodeId, Progress, Selection, Store};

use crate::cli::select::{Projection, SelectArgs, in_halves, parse_projection};
use crate::cli::{GlobalArgs, UsageError, output, summary};

/// Print every live document as JSON Lines, in id order.
///
/// Each line has the `get` shape, so `dump` output can be fed to `load`.
/// The selection flags keep only some documents, and --fields only some
/// of their fields, in the same exact text:
///   --fields id,category,inputs.node,inputs.output
/// (fields: id, key, category, version, meta, body, inputs, inputs.node,
/// inputs.input, inputs.meta, inputs.output). --key, and an --id range of
/// fewer than 10,000 ids, look their documents up instead of reading the
/// store; the other filters read it.
///
/// --salvage reads every record that still passes its CRC, from a store
/// that may refuse to open, and prints the documents it can rebuild; it
/// changes nothing. A summary goes to stderr (not with --quiet); with
/// --json it is one object there:
///   {"documents", "files", "good_records", "damaged_bytes",
///    "uncommitted_records"}
///
/// --records lists the raw log instead, old versions and tombstones
/// included, one object per record:
///   {"segment", "offset", "seq", "kind", "doc", "node", "size", "crc_ok"}
/// "kind" is doc-put, doc-delete, input-put, output-put, input-delete,
/// commit or seal; "doc" and "node" are 0 where they do not apply.
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Print every live document as JSON Lines, in id order",
    after_help = "\
Examples:
  stratum dump > backup.jsonl
  stratum dump --category easy --fields id,inputs.node,inputs.output
  stratum dump --missing-output --id 1..500
  stratum dump --key two-sum --fields key,inputs.output
  stratum dump --key-prefix HumanEval/ --meta entry_point='\"add\"'
  stratum dump --records | jq -c 'select(.crc_ok | not)'
  stratum dump --salvage > rescued.jsonl
  stratum dump --high-water | stratum --dir copy load --keep-ids"
)]
pub struct DumpArgs {
    /// List the raw records of every segment instead of documents.
    #[arg(long, conflicts_with = "salvage")]
    pub records: bool,
    /// Read what can be read from a damaged store (which may refuse to open).
    #[arg(long)]
    pub salvage: bool,
    /// Which documents to print.
    #[command(flatten)]
    pub select: SelectArgs,
    /// Print only these fields of each document, comma-separated.
    #[arg(long, value_name = "LIST", value_parser = parse_projection, help_heading = "Selection")]
    pub fields: Option<Projection>,
    /// Also print the id high-water marks, so that `load --keep-ids` of the
    /// output never hands out an id this store used: a "node_high_water"
    /// field on every document, and a last line {"high_water":{"doc":N}}.
    #[arg(long, conflicts_with_all = ["records", "salvage", "fields"])]
    pub high_water: bool,
    /// Accepted for scripts: the output is JSON Lines already; with
    /// --salvage, the summary on stderr is JSON too.
    #[arg(long)]
    pub json: bool,
}

/// The `--salvage --json` summary.
#[derive(Serialize)]
struct Salvaged {
    documents: u64,
    files: u64,
    good_records: u64,
    damaged_bytes: u64,
    uncommitted_records: u64,
}

#[derive(Serialize)]
struct Record<'a> {
    segment: &'a str,
    offset: u64,
    seq: u64,
    kind: &'a str,
    doc: u64,
    node: u64,
    size: u64,
    crc_ok: bool,
}

/// Runs `dump`.
///
/// # Errors
/// No store, lock timeout, corruption, I/O (a closed stdout included).
pub fn run(g: &GlobalArgs, args: DumpArgs) -> anyhow::Result<()> {
    let sel = args.select.selection();
    if (!sel.is_all() || args.fields.is_some()) && (args.salvage || args.records) {
        return Err(UsageError(
            "selection flags and --fields apply to documents, not to --records or --salvage"
                .to_owned(),
        )
        .into());
    }
    if args.salvage {
        return salvage(g, args.json);
    }
    let store = g.open_read()?;
    let mut out = output::stdout();
    if args.records {
        store.records(&mut |r| {
            let rec = Record {
                segment: &r.segment,
                offset: r.offset,
                seq: r.seq,
                kind: r.kind,
                doc: r.doc,
                node: r.node,
                size: r.size,
                crc_ok: r.crc_ok,
            };
            output::write_json_line(&mut out, &rec).map_err(output::write_err)
        })?;
    } else {
        let bar = output::Bar::new(g.quiet, "dump", Some(0));
        let marks = args.high_water;
        let fields = args.fields.as_ref();
        if marks {
            // Each document's node mark comes from the full pass.
            let mut line = String::new();
            store.dump_with_node_high_water(&mut |p| bar.update(p), &mut |doc, hwm| {
                if sel.matches(doc) {
                    line.clear();
                    write_doc(doc, fields, Some(hwm), &mut line);
                    out.write_all(line.as_bytes()).map_err(output::write_err)
                } else {
                    Ok(())
                }
            })?;
        } else {
            // Bytes read by both halves, for the one bar.
            let done = AtomicU64::new(0);
            let scan = |store: &Store,
                        sel: &Selection,
                        f: &mut dyn FnMut(String) -> stratum::Result<()>| {
                let mut last = 0;
                let mut progress = |p: Progress| {
                    let step = p.done.saturating_sub(std::mem::replace(&mut last, p.done));
                    let all = done.fetch_add(step, Ordering::Relaxed) + step;
                    bar.update(Progress {
                        done: all.min(p.total),
                        total: p.total,
                    });
                };
                store.select(sel, &mut progress, &mut |doc| {
                    let mut line = String::new();
                    write_doc(doc, fields, None, &mut line);
                    f(line)
                })
            };
            in_halves(g, &store, &sel, &scan, String::len, &mut |line| {
                out.write_all(line.as_bytes()).map_err(output::write_err)
            })?;
        }
        if marks {
            let hwm = store.doc_high_water();
            writeln!(out, "{{\"high_water\":{{\"doc\":{hwm}}}}}").map_err(output::write_err)?;
        }
        bar.finish();
    }
    out.flush().map_err(output::write_err)?;
    Ok(())
}

/// One line of `dump`: the document, or the fields `--fields` keeps, and
/// with `--high-water` its node mark.
fn write_doc(
    doc: &Document,
    fields: Option<&Projection>,
    node_hwm: Option<NodeId>,
    line: &mut String,
) {
    match fields {
        Some(p) => p.write(doc, line),
        None => doc.write_json(line),
    }
    if let Some(hwm) = node_hwm {
        // The object's closing brace makes way for one more field.
        line.pop();
        line.push_str(&format!(",\"node_high_water\":{hwm}}}"));
    }
    line.push('\n');
}

/// `dump --salvage`: no normal open (it may refuse a damaged store).
fn salvage(g: &GlobalArgs, json: bool) -> anyhow::Result<()> {
    let mut out = output::stdout();
    let mut line = String::new();
    let report = stratum::engine::salvage(&g.options(), &mut |doc| {
        line.clear();
        doc.write_json(&mut line);
        line.push('\n');
        out.write_all(line.as_bytes()).map_err(output::write_err)
    })?;
    out.flush().map_err(output::write_err)?;
    let human = format!(
        "salvaged {} documents from {} files ({} records readable, {} of damaged data skipped{})",
        report.documents,
        report.files,
        report.good_records,
        output::human_size(report.damaged_bytes),
        output::uncommitted_note(report.uncommitted_records)
    );
    let summary = Salvaged {
        documents: report.documents,
        files: report.files,
        good_records: report.good_records,
        damaged_bytes: report.damaged_bytes,
        uncommitted_records: report.uncommitted_records,
    };
    summary::report_beside_data(g, json, &summary, &human);
    Ok(())
}
