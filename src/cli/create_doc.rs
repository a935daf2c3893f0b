//! `stratum create-doc`: a new document from an argument, a file or stdin.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::cli::{GlobalArgs, input, output};
use stratum::NewDoc;

/// Create a document and print its new id.
///
/// The body is any bytes: the BODY argument, a file (--file), or stdin
/// (BODY `-`, or no BODY and no --file; refused when stdin is a terminal).
/// An empty body is `''`; a body may start with `-` (`-- BODY` when it is
/// also an option's name). Ids are assigned 1, 2, 3, … and never reused.
/// --key gives the document a unique name (1 to 1024 bytes of UTF-8) that
/// every command accepts as `key:NAME` where it takes a document; a key a
/// live document holds already is refused (exit 4).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum create-doc '<p>Add two numbers.</p>' --category easy --doc-version v1
  stratum create-doc --file problem.html --category graphs
  stratum create-doc 'Add two numbers.' --key two-sum --meta '{\"tags\":[\"math\"]}'
  curl -s https://example.com/p/42 | stratum create-doc -
  id=$(stratum -q create-doc 'Sum a list'); stratum add-input \"$id\" '[1,2,3]' --output 6")]
pub struct CreateDocArgs {
    /// The body; `-` or absent (without --file) reads it from stdin.
    #[arg(
        value_name = "BODY|-",
        conflicts_with = "file",
        allow_hyphen_values = true
    )]
    pub body: Option<OsString>,
    /// Read the body from this file.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The document's category.
    #[arg(long, value_name = "C")]
    pub category: Option<String>,
    /// The document's version (a label of yours; `-V/--version` is the
    /// program's).
    #[arg(long = "doc-version", alias = "version", value_name = "V")]
    pub version: Option<String>,
    /// The document's unique key (1 to 1024 bytes).
    #[arg(long, value_name = "K")]
    pub key: Option<String>,
    /// The document's metadata: a JSON object, kept exactly as written.
    #[arg(long, value_name = "OBJECT")]
    pub meta: Option<String>,
    #[command(flatten)]
    pub json: crate::cli::JsonAlready,
}

/// Runs `create-doc`.
///
/// # Errors
/// Invalid input (body too large, a malformed or taken key, a meta that is
/// not an object), lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: CreateDocArgs) -> anyhow::Result<()> {
    if let Some(k) = &args.key {
        stratum::model::check_key(k)?;
    }
    let meta = args.meta.as_deref().map(input::meta).transpose()?;
    let body = match input::body(args.body, args.file.as_deref())? {
        Some(body) => body,
        None => {
            input::absent_reads_stdin("BODY")?;
            input::read_stdin()?
        }
    };
    let doc = NewDoc {
        category: args.category,
        version: args.version,
        key: args.key,
        meta,
        body,
    };
    let mut store = g.open()?;
    let id = store.create_doc(&doc)?;
    drop(store);
    output::report_write(
        || format!("document {id} was created"),
        |out| writeln!(out, "{id}"),
    )?;
    Ok(())
}
