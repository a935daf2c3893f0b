//! `stratum load`: documents from JSON Lines in the `get` shape, in one
//! atomic batch.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::cli::conflict::OnConflictArg;
use crate::cli::input::{self, STDIN, Source, at_line};
use crate::cli::{GlobalArgs, output};
use stratum::{DocId, Document, Ids};

/// Load documents from JSON Lines in the `get` shape, all or nothing.
///
/// Each line is one document as `get` and `dump` print it ("key", "body" or
/// "body_base64", "category", "version", "meta", "inputs" with "input",
/// "meta", "output" and "has_output"); blank lines are skipped. New ids are assigned in order and
/// printed one per line, unless --keep-ids keeps the "id" and "node" fields
/// (which must not be in use in this store). With --keep-ids, the id
/// high-water marks that `dump --high-water` prints ("node_high_water" on a
/// document, a last line {"high_water":{"doc":N}}) are kept too, so the copy
/// never hands out an id the source used; without it they are ignored.
///
/// A line with a "key" that a live document holds fails the load (exit 4)
/// unless --on-conflict says otherwise: `replace` makes that document the
/// line's (it keeps its id; nodes whose input is unchanged, in order, keep
/// their ids too, and nothing is written for what is already equal, so
/// loading the same file again leaves the store as it was), `skip` leaves
/// it alone. The id printed for such a line is that document's. The
/// whole load is one atomic write: a bad line fails the command with its
/// line number (exit 4) and the store is left unchanged. A load larger
/// than --segment-size is written as segments of that size, all committed
/// at once.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum load fixtures.jsonl
  stratum load --on-conflict replace fixtures.jsonl   # regenerate: same keys, same ids
  jq -c '{body: .statement, category: \"imported\",
         inputs: [.cases[] | {input: .in, output: .out}]}' problems.json | stratum load -
  stratum --dir old dump --high-water | stratum --dir new load --keep-ids")]
pub struct LoadArgs {
    /// The JSON Lines file; `-` or absent reads stdin (absent: not from a
    /// terminal).
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
    /// Keep the documents' "id" and "node" fields instead of assigning new
    /// ids.
    #[arg(long)]
    pub keep_ids: bool,
    /// What a line does whose key a live document holds: fail (exit 4),
    /// replace that document, or skip the line.
    #[arg(
        long,
        value_enum,
        default_value_t = OnConflictArg::Fail,
        value_name = "WHAT",
        conflicts_with = "keep_ids"
    )]
    pub on_conflict: OnConflictArg,
    #[command(flatten)]
    pub json: crate::cli::JsonAlready,
    /// With --keep-ids, accept ids so high that fewer than 2^32 ids would
    /// remain above them (one such id could end document or node creation
    /// for good).
    #[arg(long, requires = "keep_ids")]
    pub allow_high_ids: bool,
}

/// Runs `load`.
///
/// # Errors
/// Invalid input naming the line, lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: LoadArgs) -> anyhow::Result<()> {
    if args.file.is_none() {
        input::absent_reads_stdin("FILE")?;
    }
    let name = args
        .file
        .as_ref()
        .filter(|p| p.as_os_str() != "-")
        .map_or_else(|| STDIN.to_owned(), |p| p.display().to_string());
    let on_conflict = stratum::OnConflict::from(args.on_conflict);
    let id_source = match (args.keep_ids, args.allow_high_ids) {
        (false, _) => Ids::Assign,
        (true, false) => Ids::Keep,
        (true, true) => Ids::KeepHigh,
    };
    let source =
        Source::open(args.file.as_deref())?.read_ahead(&name, &g.dir, &mut |line, text| {
            if let Some(hwm) = input::high_water_marks(text) {
                return id_source.check_marks(hwm).map_err(|e| at_line(e, line));
            }
            Document::from_json(text)
                .and_then(|p| id_source.check(&p))
                .map_err(|e| at_line(e, line))
        })?;
    let bar = output::Bar::new(g.quiet, "load", source.total_bytes());
    let mut lines = source.lines(&name);
    let mut store = g.open()?;
    let mut current = 0u64;
    let result = store.atomic(|store| {
        let mut ids: Vec<DocId> = Vec::new();
        loop {
            // Zero while reading: a read error names its own line, if any.
            current = 0;
            let Some((number, text)) = lines.next_line()? else {
                break;
            };
            current = number;
            if let Some(hwm) = input::high_water_marks(text) {
                if id_source.keeps() {
                    store.reserve_doc_ids(hwm, id_source)?;
                }
                continue;
            }
            let parsed = Document::from_json(text)?;
            let id = store.load_doc_or(&parsed, id_source, on_conflict)?.id();
            ids.push(id);
            bar.set(lines.bytes());
        }
        Ok(ids)
    });
    bar.finish();
    let ids = result.map_err(|e| at_line(e, current))?;
    drop(store);
    output::report_write(
        || format!("all {} documents were loaded", ids.len()),
        |out| ids.iter().try_for_each(|id| writeln!(out, "{id}")),
    )?;
    Ok(())
}
