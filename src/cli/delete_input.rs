//! `stratum delete-input`: remove one node (and its output) from a chain.

use clap::Args;

use crate::cli::{DocArg, GlobalArgs, parse_doc, parse_id};
use stratum::{Error, NodeId};

/// Delete one input node and its expected output.
///
/// The rest of the chain keeps its order and its node ids; the deleted id is
/// never reused in this document. Prints nothing. An unknown document or
/// node (or key) exits 3, unless --if-exists.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum delete-input 1 3
  stratum delete-input 1 3 --if-exists   # exit 0 whether or not node 3 is there")]
pub struct DeleteInputArgs {
    /// The document: its id, or key:NAME.
    #[arg(value_name = "DOC", value_parser = parse_doc)]
    pub doc: DocArg,
    /// The input node id.
    #[arg(value_name = "NODE", value_parser = parse_id)]
    pub node: u64,
    /// Succeed (exit 0, change nothing) when the node, its document, or the
    /// store is not there, as `rm -f` does.
    #[arg(long)]
    pub if_exists: bool,
}

/// Runs `delete-input`.
///
/// # Errors
/// Unknown document or node, lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: DeleteInputArgs) -> anyhow::Result<()> {
    let result = g
        .open_existing()
        .and_then(|mut store| store.delete_input(args.doc.resolve(&store)?, NodeId(args.node)));
    match result {
        Err(
            Error::DocNotFound(_)
            | Error::KeyNotFound(_)
            | Error::NodeNotFound { .. }
            | Error::NoStore { .. },
        ) if args.if_exists => Ok(()),
        other => Ok(other?),
    }
}
