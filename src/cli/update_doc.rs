//! `stratum update-doc`: replace or clear some fields of a document, keep
//! the rest.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

use crate::cli::{DocArg, GlobalArgs, UsageError, input, parse_doc};
use stratum::DocPatch;

/// Replace or clear a document's body, key, category, version or meta;
/// keep the rest.
///
/// Give at least one change: BODY (`-` reads stdin), --file, a field's
/// option, or a --clear-… flag; with none of them the command is a usage
/// error (exit 2) and nothing is written. --meta replaces the metadata
/// object whole; --meta-patch merges an object into it as a JSON merge
/// patch (RFC 7386: a member set to null is removed, objects merge
/// recursively, the members it does not name keep their exact text). A key
/// another live document holds is refused (exit 4). The chain of inputs is
/// kept. Prints nothing.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum update-doc 1 --doc-version v2
  stratum update-doc 1 --file problem-v2.html --doc-version v2
  stratum update-doc key:two-sum --meta-patch '{\"difficulty\":\"hard\",\"draft\":null}'
  stratum update-doc 1 --key two-sum --clear-category
  sed 's/easy/hard/' problem.html | stratum update-doc 1 - --category hard")]
pub struct UpdateDocArgs {
    /// The document: its id, or key:NAME.
    #[arg(value_name = "DOC", value_parser = parse_doc)]
    pub doc: DocArg,
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
    /// The new key (1 to 1024 bytes, unique among live documents).
    #[arg(long, value_name = "K")]
    pub key: Option<String>,
    /// Remove the key.
    #[arg(long, conflicts_with = "key")]
    pub clear_key: bool,
    /// The new category.
    #[arg(long, value_name = "C")]
    pub category: Option<String>,
    /// Remove the category.
    #[arg(long, conflicts_with = "category")]
    pub clear_category: bool,
    /// The new version (a label of yours; `-V/--version` is the
    /// program's).
    #[arg(long = "doc-version", alias = "version", value_name = "V")]
    pub version: Option<String>,
    /// Remove the version.
    #[arg(long, conflicts_with = "version")]
    pub clear_version: bool,
    /// Replace the metadata with this JSON object.
    #[arg(long, value_name = "OBJECT", conflicts_with = "meta_patch")]
    pub meta: Option<String>,
    /// Merge this JSON object into the metadata (RFC 7386 merge patch).
    #[arg(long, value_name = "OBJECT")]
    pub meta_patch: Option<String>,
    /// Remove the metadata.
    #[arg(long, conflicts_with_all = ["meta", "meta_patch"])]
    pub clear_meta: bool,
}

/// A field's option and its --clear-… flag as a patch member: `None` keeps
/// the field, `Some(None)` clears it.
fn change<T>(value: Option<T>, clear: bool) -> Option<Option<T>> {
    if clear { Some(None) } else { value.map(Some) }
}

/// Runs `update-doc`.
///
/// # Errors
/// Unknown document or key, invalid input (a malformed or taken key, a meta
/// that is not an object), lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: UpdateDocArgs) -> anyhow::Result<()> {
    if let Some(k) = &args.key {
        stratum::model::check_key(k)?;
    }
    let meta = args.meta.as_deref().map(input::meta).transpose()?;
    let meta_patch = args.meta_patch.as_deref().map(input::meta).transpose()?;
    let patch = DocPatch {
        key: change(args.key, args.clear_key),
        category: change(args.category, args.clear_category),
        version: change(args.version, args.clear_version),
        meta: change(meta, args.clear_meta),
        body: input::body(args.body, args.file.as_deref())?,
    };
    if patch.is_empty() && meta_patch.is_none() {
        return Err(UsageError(
            "update-doc needs at least one of BODY (or `-`), --file, --key, --category, --doc-version, --meta, --meta-patch or a --clear-… flag"
                .into(),
        )
        .into());
    }
    let mut store = g.open_existing()?;
    let id = args.doc.resolve(&store)?;
    match &meta_patch {
        Some(p) => store.update_doc_merging_meta(id, &patch, p)?,
        None => store.update_doc(id, &patch)?,
    }
    Ok(())
}
