//! `stratum update-doc`: replace some fields of a document, keep the rest.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

use crate::cli::{GlobalArgs, UsageError, input, parse_id};
use stratum::{DocId, DocPatch};

/// Replace a document's body, category or version; keep the rest.
///
/// Give at least one of BODY (`-` reads stdin), --file, --category or
/// --doc-version; with none of them the command is a usage error (exit 2) and
/// nothing is written. The chain of inputs is kept. Prints nothing.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum update-doc 1 --doc-version v2
  stratum update-doc 1 --file problem-v2.html --doc-version v2
  sed 's/easy/hard/' problem.html | stratum update-doc 1 - --category hard")]
pub struct UpdateDocArgs {
    /// The document id.
    #[arg(value_name = "DOC", value_parser = parse_id)]
    pub doc: u64,
    /// The new body; `-` reads it from stdin.
    #[arg(
        value_name = "BODY|-",
        conflicts_with = "file",
        allow_hyphen_values = true
    )]
    pub body: Option<OsString>,
    /// Read the new body from this file.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The new category.
    #[arg(long, value_name = "C")]
    pub category: Option<String>,
    /// The new version (a label of yours; `-V/--version` is the
    /// program's).
    #[arg(long = "doc-version", alias = "version", value_name = "V")]
    pub version: Option<String>,
}

/// Runs `update-doc`.
///
/// # Errors
/// Unknown document, invalid input, lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: UpdateDocArgs) -> anyhow::Result<()> {
    if args.body.is_none()
        && args.file.is_none()
        && args.category.is_none()
        && args.version.is_none()
    {
        return Err(UsageError(
            "update-doc needs at least one of BODY (or `-`), --file, --category, --doc-version"
                .into(),
        )
        .into());
    }
    let patch = DocPatch {
        category: args.category.map(Some),
        version: args.version.map(Some),
        body: input::body(args.body, args.file.as_deref())?,
        ..DocPatch::default()
    };
    let mut store = g.open_existing()?;
    store.update_doc(DocId(args.doc), &patch)?;
    Ok(())
}
