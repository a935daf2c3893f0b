//! `stratum delete-doc`: tombstone a document with its chain.

use clap::Args;

use crate::cli::GlobalArgs;
use stratum::DocId;

/// Delete a document with its whole chain.
///
/// The id is never reused. The space is reclaimed by `compact`. Prints
/// nothing.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum delete-doc 7
  stratum list --json | jq -r 'select(.inputs == 0) | .id' | xargs -n1 stratum delete-doc")]
pub struct DeleteDocArgs {
    /// The document id.
    #[arg(value_name = "DOC", value_parser = clap::value_parser!(u64).range(1..))]
    pub doc: u64,
}

/// Runs `delete-doc`.
///
/// # Errors
/// Unknown document, lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: DeleteDocArgs) -> anyhow::Result<()> {
    let mut store = g.open_existing()?;
    store.delete_doc(DocId(args.doc))?;
    Ok(())
}
