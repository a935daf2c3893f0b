//! `stratum update-input`: set, patch or clear an input node's metadata.

use clap::Args;

use crate::cli::{DocArg, GlobalArgs, UsageError, input, parse_doc, parse_id};
use stratum::NodeId;

/// Set, patch or clear the metadata of an input node.
///
/// --meta replaces the node's metadata object whole; --meta-patch merges an
/// object into it as a JSON merge patch (RFC 7386: a member set to null is
/// removed, objects merge recursively, the members it does not name keep
/// their exact text); --clear-meta removes it. The input value and the
/// expected output are kept (set-output changes the output). Prints
/// nothing.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum update-input 1 2 --meta '{\"label\":\"edge case\"}'
  stratum update-input key:two-sum 2 --meta-patch '{\"timeout_ms\":500}'
  stratum update-input 1 2 --clear-meta")]
pub struct UpdateInputArgs {
    /// The document: its id, or key:NAME.
    #[arg(value_name = "DOC", value_parser = parse_doc)]
    pub doc: DocArg,
    /// The input node id.
    #[arg(value_name = "NODE", value_parser = parse_id)]
    pub node: u64,
    /// Replace the node's metadata with this JSON object.
    #[arg(long, value_name = "OBJECT", conflicts_with = "meta_patch")]
    pub meta: Option<String>,
    /// Merge this JSON object into the node's metadata (RFC 7386).
    #[arg(long, value_name = "OBJECT")]
    pub meta_patch: Option<String>,
    /// Remove the node's metadata.
    #[arg(long, conflicts_with_all = ["meta", "meta_patch"])]
    pub clear_meta: bool,
}

/// Runs `update-input`.
///
/// # Errors
/// Unknown document, key or node, invalid input (a meta that is not an
/// object), lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: UpdateInputArgs) -> anyhow::Result<()> {
    let meta = args.meta.as_deref().map(input::meta).transpose()?;
    let meta_patch = args.meta_patch.as_deref().map(input::meta).transpose()?;
    if meta.is_none() && meta_patch.is_none() && !args.clear_meta {
        return Err(UsageError(
            "update-input needs one of --meta, --meta-patch, --clear-meta".into(),
        )
        .into());
    }
    let mut store = g.open_existing()?;
    let doc = args.doc.resolve(&store)?;
    let node = NodeId(args.node);
    match &meta_patch {
        Some(p) => store.merge_node_meta(doc, node, p)?,
        None => store.set_node_meta(doc, node, meta.as_ref())?,
    }
    Ok(())
}
