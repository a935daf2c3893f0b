//! `stratum list`: one row per live document.

use std::io::Write;

use clap::Args;
use serde::Serialize;
use stratum::{DocSummary, Selection, Store};

use crate::cli::select::{SelectArgs, in_halves};
use crate::cli::{GlobalArgs, output};

/// List live documents in id order: a table, or JSON Lines.
///
/// JSON Lines (--json), one object per document:
///   {"id", "key", "category", "version", "inputs", "outputs", "body_bytes"}
/// "outputs" counts the nodes that have an expected output; an unset
/// key, category or version is null; "body_bytes" is exact (the table shows
/// sizes as `du -h` does).
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "List live documents in id order: a table, or JSON Lines",
    after_help = "\
Examples:
  stratum list
  stratum list --category easy
  stratum list --key-prefix HumanEval/ --json
  stratum list --meta difficulty='\"hard\"'
  stratum list --missing-output --json
  stratum list --id 100..199"
)]
pub struct ListArgs {
    /// Which documents to list.
    #[command(flatten)]
    pub select: SelectArgs,
    /// JSON Lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One line of `list --json`.
#[derive(Serialize)]
struct Row<'a> {
    id: u64,
    key: Option<&'a str>,
    category: Option<&'a str>,
    version: Option<&'a str>,
    inputs: u64,
    outputs: u64,
    body_bytes: u64,
}

/// Runs `list`.
///
/// # Errors
/// No store, lock timeout, corruption, I/O (a closed stdout included).
pub fn run(g: &GlobalArgs, args: ListArgs) -> anyhow::Result<()> {
    let store = g.open_read()?;
    let mut out = output::stdout();
    let sel = args.select.selection();
    let scan =
        |store: &Store, sel: &Selection, f: &mut dyn FnMut(DocSummary) -> stratum::Result<()>| {
            store.select_summaries(sel, f)
        };
    let rows = |f: &mut dyn FnMut(DocSummary) -> stratum::Result<()>| {
        in_halves(g, &store, &sel, &scan, weight, f)
    };
    if args.json {
        rows(&mut |s| {
            let row = Row {
                id: s.id.0,
                key: s.key.as_deref(),
                category: s.category.as_deref(),
                version: s.version.as_deref(),
                inputs: s.inputs,
                outputs: s.outputs,
                body_bytes: s.body_len,
            };
            output::write_json_line(&mut out, &row).map_err(output::write_err)
        })?;
    } else {
        let mut t = output::LongTable::new(
            &[
                "id",
                "key",
                "category",
                "version",
                "inputs",
                "outputs",
                "body size",
            ],
            &[0, 4, 5, 6],
        );
        rows(&mut |s| {
            let text = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
            t.push(vec![
                s.id.to_string(),
                text(s.key),
                text(s.category),
                text(s.version),
                s.inputs.to_string(),
                s.outputs.to_string(),
                output::human_size(s.body_len),
            ]);
            Ok(())
        })?;
        t.write(&mut out).map_err(output::write_err)?;
    }
    out.flush().map_err(output::write_err)?;
    Ok(())
}

/// About what a listing row holds in memory, for [`in_halves`].
fn weight(s: &DocSummary) -> usize {
    let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
    64 + text(&s.key)
        + text(&s.category)
        + text(&s.version)
        + s.meta.as_ref().map_or(0, |m| m.as_str().len())
}
