//! `stratum delete-input`: remove one node (and its output) from a chain.

use clap::Args;

use crate::cli::GlobalArgs;
use stratum::{DocId, NodeId};

/// Delete one input node and its expected output.
///
/// The rest of the chain keeps its order and its node ids; the deleted id is
/// never reused in this document. Prints nothing.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum delete-input 1 3")]
pub struct DeleteInputArgs {
    /// The document id.
    #[arg(value_name = "DOC", value_parser = clap::value_parser!(u64).range(1..))]
    pub doc: u64,
    /// The input node id.
    #[arg(value_name = "NODE", value_parser = clap::value_parser!(u64).range(1..))]
    pub node: u64,
}

/// Runs `delete-input`.
///
/// # Errors
/// Unknown document or node, lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: DeleteInputArgs) -> anyhow::Result<()> {
    let mut store = g.open_existing()?;
    store.delete_input(DocId(args.doc), NodeId(args.node))?;
    Ok(())
}
