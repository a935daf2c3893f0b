//! `stratum get`: one document as JSON, its raw body, one node, or a table.

use std::io::Write;

use clap::Args;

use crate::cli::{DocArg, GlobalArgs, output, parse_doc, parse_id};
use stratum::{Document, Mode, NodeId};

/// Print a document as one line of JSON, or a part of it.
///
/// The JSON shape, inputs in chain order, unset fields null:
///   {"id", "key", "category", "version", "meta", "body",
///    "inputs": [{"node", "input", "meta", "output", "has_output"}]}
/// "key" and "meta" appear only when set. A node without an expected output
/// has "output": null; an output that is the JSON value null also has
/// "has_output": true (so `.output` reads null either way, and
/// `select(.has_output)` finds the real nulls). A body that is not UTF-8
/// appears as "body_base64" (standard base64, padded) instead of "body".
///
/// DOC is an id (a whole number) or key:NAME. A bare word that is not a
/// number is refused, not taken for a key: a key such as `0042` would
/// otherwise read as id 42.
///
/// --body writes the raw body bytes; --node N prints one node;
/// --node N --input or --output just that value; --table a view for people.
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Print a document as one line of JSON, or a part of it",
    after_help = "\
Examples:
  stratum get 1
  stratum get key:two-sum --pretty
  stratum get 1 --body > problem.html
  stratum get 1 --node 2 --output
  stratum get 1 | jq '.inputs[].input'
  stratum get 1 --table"
)]
pub struct GetArgs {
    /// The document: its id, or key:NAME.
    #[arg(value_name = "DOC", value_parser = parse_doc)]
    pub doc: DocArg,
    /// Indent the JSON, for reading (`load` and `diff` read one document
    /// per line).
    #[arg(long, conflicts_with_all = ["body", "table"])]
    pub pretty: bool,
    /// Accepted for scripts: the output is JSON already (not with --body
    /// or --table).
    #[arg(long, conflicts_with_all = ["body", "table"])]
    pub json: bool,
    /// Write the raw body bytes, nothing else.
    #[arg(long, conflicts_with_all = ["node", "table"])]
    pub body: bool,
    /// Print only this input node: {"node","input","output"} (with
    /// "meta" and "has_output" when they apply).
    #[arg(long, value_name = "N", value_parser = parse_id, conflicts_with = "table")]
    pub node: Option<u64>,
    /// With --node: print only the node's input value.
    #[arg(long, requires = "node", conflicts_with = "output")]
    pub input: bool,
    /// With --node: print only the node's expected output (null when unset).
    #[arg(long, requires = "node")]
    pub output: bool,
    /// Show the document and its chain as tables.
    #[arg(long)]
    pub table: bool,
}

/// Runs `get`.
///
/// # Errors
/// Unknown document, key or node, no store, lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: GetArgs) -> anyhow::Result<()> {
    let store = g.open(Mode::Read)?;
    let doc = args.doc.resolve(&store)?;
    let mut out = output::stdout();
    if let Some(n) = args.node {
        let node = store.get_node(doc, NodeId(n))?;
        drop(store);
        let value = if args.input {
            node.input.as_str().to_owned()
        } else if args.output {
            node.output
                .as_ref()
                .map_or("null", |j| j.as_str())
                .to_owned()
        } else {
            node.to_json()
        };
        write_value(&mut out, &value, args.pretty).map_err(output::write_err)?;
    } else {
        let document = store.get(doc)?;
        drop(store);
        if args.body {
            out.write_all(&document.body).map_err(output::write_err)?;
        } else if args.table {
            write_tables(&mut out, &document).map_err(output::write_err)?;
        } else {
            write_value(&mut out, &document.to_json(), args.pretty).map_err(output::write_err)?;
        }
    }
    out.flush().map_err(output::write_err)?;
    Ok(())
}

/// Writes compact JSON text, re-indented when `pretty`, and a newline.
fn write_value(out: &mut impl Write, compact: &str, pretty: bool) -> std::io::Result<()> {
    if pretty {
        // Text that came from the store is valid JSON; re-indenting it keeps
        // every number and escape as stored.
        writeln!(out, "{}", stratum::json::pretty(compact))
    } else {
        writeln!(out, "{compact}")
    }
}

fn write_tables(out: &mut impl Write, doc: &Document) -> std::io::Result<()> {
    let width = output::value_width(1);
    let mut head = output::table(&["field", "value"]);
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let outputs = doc.inputs.iter().filter(|n| n.output.is_some()).count();
    head.add_row(vec!["id".to_owned(), doc.id.to_string()]);
    head.add_row(vec![
        "key".to_owned(),
        output::shorten(&opt(&doc.key), width),
    ]);
    head.add_row(vec![
        "category".to_owned(),
        output::shorten(&opt(&doc.category), width),
    ]);
    head.add_row(vec![
        "version".to_owned(),
        output::shorten(&opt(&doc.version), width),
    ]);
    head.add_row(vec![
        "meta".to_owned(),
        doc.meta
            .as_ref()
            .map_or_else(|| "-".to_owned(), |m| output::shorten(m.as_str(), width)),
    ]);
    head.add_row(vec![
        "body size".to_owned(),
        output::human_size(doc.body.len() as u64),
    ]);
    head.add_row(vec![
        "body".to_owned(),
        output::body_preview(&doc.body, width),
    ]);
    head.add_row(vec![
        "inputs".to_owned(),
        format!("{} ({outputs} with an expected output)", doc.inputs.len()),
    ]);
    output::write_table(out, &head)?;
    let width = output::value_width(3);
    let mut chain = output::LongTable::new(&["node", "input", "output", "meta"], &[0]);
    let shown = |v: Option<&stratum::Json>| {
        v.map_or_else(|| "-".to_owned(), |j| output::shorten(j.as_str(), width))
    };
    for n in &doc.inputs {
        // "-" is no output; a real null output shows as `null`.
        chain.push(vec![
            n.id.to_string(),
            output::shorten(n.input.as_str(), width),
            shown(n.output.as_ref()),
            shown(n.meta.as_ref()),
        ]);
    }
    chain.write(out)
}
