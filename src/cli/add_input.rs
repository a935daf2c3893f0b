//! `stratum add-input`: append a node to a document's chain.

use std::io::Write;

use clap::Args;

use crate::cli::{DocArg, GlobalArgs, input, output, parse_doc};

/// Append an input node to a document's chain and print its node id.
///
/// VALUE is any JSON value, kept exactly as written (key order, number text,
/// string escapes); negative numbers need no `--` (`-1.0e-3`). Without
/// VALUE, or with `-`, it is read from stdin (without VALUE, not from a
/// terminal).
/// --output sets the node's expected output in the same atomic write;
/// `--output null` is a real null output (without --output the node has
/// none). --meta sets the node's metadata, a JSON object.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum add-input 1 '[1, 2]' --output 3
  stratum add-input 1 '{\"n\": 10, \"mode\": \"fast\"}'
  stratum add-input key:two-sum '[3, 3]' --output null --meta '{\"label\":\"no answer\"}'
  jq -c '.case' case.json | stratum add-input 1 -")]
pub struct AddInputArgs {
    /// The document: its id, or key:NAME.
    #[arg(value_name = "DOC", value_parser = parse_doc)]
    pub doc: DocArg,
    /// The input value as JSON; `-` or absent reads it from stdin.
    #[arg(value_name = "VALUE|-", allow_hyphen_values = true)]
    pub value: Option<String>,
    /// The expected output, as JSON.
    #[arg(long, value_name = "VALUE", allow_hyphen_values = true)]
    pub output: Option<String>,
    /// The node's metadata: a JSON object.
    #[arg(long, value_name = "OBJECT")]
    pub meta: Option<String>,
    #[command(flatten)]
    pub json: crate::cli::JsonAlready,
}

/// Runs `add-input`.
///
/// # Errors
/// Invalid JSON, unknown document or key, lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: AddInputArgs) -> anyhow::Result<()> {
    if args.value.is_none() {
        input::absent_reads_stdin("VALUE")?;
    }
    let value = input::json_value(args.value.as_deref(), "input value")?;
    let expected = match args.output.as_deref() {
        Some(o) => Some(input::parse_json(o, "--output")?),
        None => None,
    };
    let meta = args.meta.as_deref().map(input::meta).transpose()?;
    let mut store = g.open_existing()?;
    let doc = args.doc.resolve(&store)?;
    let node = store.add_input_with_meta(doc, &value, meta.as_ref(), expected.as_ref())?;
    drop(store);
    output::report_write(
        || format!("input node {node} was added to document {doc}"),
        |out| writeln!(out, "{node}"),
    )?;
    Ok(())
}
