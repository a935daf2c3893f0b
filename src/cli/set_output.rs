//! `stratum set-output`: set or replace a node's expected output.

use clap::Args;

use crate::cli::{GlobalArgs, input, parse_id};
use stratum::{DocId, NodeId};

/// Set or replace the expected output of an input node.
///
/// VALUE is any JSON value but null (which is how `get` shows a node with no
/// expected output); without VALUE, or with `-`, it is read from stdin
/// (without VALUE, not from a terminal).
/// Prints nothing.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum set-output 1 2 '\"ok\"'
  stratum set-output 1 2 -3.25e-2
  ./solve < input.txt | stratum set-output 1 2 -")]
pub struct SetOutputArgs {
    /// The document id.
    #[arg(value_name = "DOC", value_parser = parse_id)]
    pub doc: u64,
    /// The input node id.
    #[arg(value_name = "NODE", value_parser = parse_id)]
    pub node: u64,
    /// The expected output as JSON; `-` or absent reads it from stdin.
    #[arg(value_name = "VALUE|-", allow_hyphen_values = true)]
    pub value: Option<String>,
}

/// Runs `set-output`.
///
/// # Errors
/// Invalid JSON, unknown document or node, lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: SetOutputArgs) -> anyhow::Result<()> {
    if args.value.is_none() {
        input::absent_reads_stdin("VALUE")?;
    }
    let value = input::settable_output(input::json_value(args.value.as_deref(), "output value")?)?;
    let mut store = g.open_existing()?;
    store.set_output(DocId(args.doc), NodeId(args.node), &value)?;
    Ok(())
}
