//! `stratum delete-doc`: tombstone a document with its chain.

use clap::Args;

use crate::cli::{DocArg, GlobalArgs, parse_doc};
use stratum::Error;

/// Delete a document with its whole chain.
///
/// The id is never reused; the document's key is free for another
/// document at once. The space is reclaimed by `compact`. Prints nothing.
/// An unknown document or key exits 3, unless --if-exists.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum delete-doc 7
  stratum delete-doc 7 --if-exists      # exit 0 whether or not 7 is there
  stratum delete-doc key:two-sum
  # many at once, in one atomic write: apply reads all its input before it locks
  stratum list --json | jq -c 'select(.inputs == 0) | {op: \"delete-doc\", doc: .id}' |
      stratum apply -")]
pub struct DeleteDocArgs {
    /// The document: its id, or key:NAME.
    #[arg(value_name = "DOC", value_parser = parse_doc)]
    pub doc: DocArg,
    /// Succeed (exit 0, change nothing) when the document, or the store, is
    /// not there, as `rm -f` does.
    #[arg(long)]
    pub if_exists: bool,
}

/// Runs `delete-doc`.
///
/// # Errors
/// Unknown document or key, lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: DeleteDocArgs) -> anyhow::Result<()> {
    let result = g
        .open_existing()
        .and_then(|mut store| store.delete_doc(args.doc.resolve(&store)?));
    match result {
        Err(Error::DocNotFound(_) | Error::KeyNotFound(_) | Error::NoStore { .. })
            if args.if_exists =>
        {
            Ok(())
        }
        other => Ok(other?),
    }
}
