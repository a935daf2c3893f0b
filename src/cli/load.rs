//! `stratum load`: documents from JSON Lines in the `get` shape, in one
//! atomic batch.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::cli::input::{self, STDIN, Source};
use crate::cli::{GlobalArgs, output, shape};
use stratum::{DocId, Document, Error, Mode};

/// Load documents from JSON Lines in the `get` shape, all or nothing.
///
/// Each line is one document as `get` and `dump` print it ("body" or
/// "body_base64", "category", "version", "inputs" with "input" and
/// "output"); blank lines are skipped. New ids are assigned in order and
/// printed one per line, unless --keep-ids keeps the "id" and "node" fields
/// (which must not be in use in this store). The whole load is one atomic
/// write: a bad line fails the command with its line number (exit 4) and
/// the store is left unchanged. The batch goes into the active segment
/// whole, so that segment may grow past --segment-size; it is sealed as
/// soon as the batch is committed.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum load fixtures.jsonl
  jq -c '{body: .statement, category: \"imported\", inputs: [.cases[] | {input: .in, output: .out}]}' \\
      problems.json | stratum load -
  stratum --dir old dump | stratum --dir new load --keep-ids")]
pub struct LoadArgs {
    /// The JSON Lines file; `-` or absent reads stdin (absent: not from a
    /// terminal).
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
    /// Keep the documents' "id" and "node" fields instead of assigning new
    /// ids.
    #[arg(long)]
    pub keep_ids: bool,
    #[command(flatten)]
    pub json: crate::cli::JsonAlready,
}

/// Runs `load`.
///
/// # Errors
/// Invalid input naming the line, lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: LoadArgs) -> anyhow::Result<()> {
    if args.file.is_none() {
        input::absent_reads_stdin("FILE")?;
    }
    let source = Source::open(args.file.as_deref())?;
    let name = args
        .file
        .as_ref()
        .filter(|p| p.as_os_str() != "-")
        .map_or_else(|| STDIN.to_owned(), |p| p.display().to_string());
    let bar = output::Bar::new(g.quiet, "load", source.total_bytes());
    let mut lines = source.lines(&name);
    let mut store = g.open(Mode::Write)?;
    let keep_ids = args.keep_ids;
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
            let parsed = Document::from_json(text).map_err(|e| explained(e, text))?;
            ids.push(store.load_doc(&parsed, keep_ids)?);
            bar.set(lines.bytes());
        }
        Ok(ids)
    });
    bar.finish();
    let ids = result.map_err(|e| at_line(e, current))?;
    drop(store);
    let mut out = output::stdout();
    for id in ids {
        writeln!(out, "{id}").map_err(output::write_err)?;
    }
    out.flush().map_err(output::write_err)?;
    Ok(())
}

/// The parser's error, or a clearer one naming the field when the line is
/// not a document at all.
fn explained(e: Error, line: &str) -> Error {
    match e {
        Error::InvalidInput(_) => shape::explain(line, &shape::DOCUMENT).map_or(e, Error::invalid),
        other => other,
    }
}

/// Names the line an error came from, unless it already does (line reading
/// errors name it themselves).
pub(crate) fn at_line(e: Error, line: u64) -> anyhow::Error {
    let named = matches!(&e, Error::InvalidInput(m) if m.starts_with("line "));
    if named || line == 0 {
        e.into()
    } else {
        anyhow::Error::new(e).context(format!("line {line}"))
    }
}
