//! `stratum set-output`: set, replace or clear a node's expected output.

use clap::Args;

use crate::cli::{DocArg, GlobalArgs, UsageError, input, parse_doc, parse_id};
use stratum::NodeId;

/// Set, replace or clear the expected output of an input node.
///
/// VALUE is any JSON value; `null` is stored as a real null output, which
/// `get` shows as "output":null with "has_output":true. Without VALUE, or
/// with `-`, it is read from stdin (without VALUE, not from a terminal).
/// --clear removes the output, so the node has none (as `get` shows it:
/// "output":null alone). Prints nothing.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum set-output 1 2 '\"ok\"'
  stratum set-output 1 2 -3.25e-2
  stratum set-output key:two-sum 3 null      # the answer is None
  stratum set-output 1 2 --clear             # no expected output any more
  ./solve < input.txt | stratum set-output 1 2 -")]
pub struct SetOutputArgs {
    /// The document: its id, or key:NAME.
    #[arg(value_name = "DOC", value_parser = parse_doc)]
    pub doc: DocArg,
    /// The input node id.
    #[arg(value_name = "NODE", value_parser = parse_id)]
    pub node: u64,
    /// The expected output as JSON; `-` or absent reads it from stdin.
    #[arg(value_name = "VALUE|-", allow_hyphen_values = true)]
    pub value: Option<String>,
    /// Remove the node's expected output instead of setting one.
    #[arg(long, conflicts_with = "value")]
    pub clear: bool,
}

/// Runs `set-output`.
///
/// # Errors
/// Invalid JSON, unknown document, key or node, lock timeout, corruption,
/// I/O.
pub fn run(g: &GlobalArgs, args: SetOutputArgs) -> anyhow::Result<()> {
    let value = if args.clear {
        None
    } else {
        if args.value.is_none() {
            input::absent_reads_stdin("VALUE")
                .map_err(|e| UsageError(format!("{e} (or --clear to remove the output)")))?;
        }
        Some(input::json_value(args.value.as_deref(), "output value")?)
    };
    let mut store = g.open_existing()?;
    let doc = args.doc.resolve(&store)?;
    let node = NodeId(args.node);
    match value {
        Some(v) => store.set_output(doc, node, &v)?,
        None => store.clear_output(doc, node)?,
    }
    Ok(())
}
