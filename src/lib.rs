//! stratum: documents with ordered chains of inputs and expected outputs,
//! kept in a log-structured store on local disk.
//!
//! The data model: a [`Document`] (any bytes, with an optional category and
//! version) owns an ordered chain of input [`Node`]s, each holding a JSON
//! value and at most one expected output (another JSON value). Values are
//! kept as their own text, so they round-trip exactly.
//!
//! The engine ([`engine`]) is an append-only log of CRC-checked records in
//! segment files, with sorted on-disk indexes for sealed segments and an
//! in-memory index for the active one. The on-disk format is described byte
//! by byte in `docs/FORMAT.md`.
//!
//! [`Store::open`] opens a store for reading and writing (an exclusive
//! lock); [`ReadOnlyStore::open`] opens it for reading only (a shared lock,
//! so readers run side by side). A `ReadOnlyStore` serves every read of
//! [`Store`] and has no write: calling one does not compile.
//!
//! The rules the command line's dataset options follow live here, for
//! every program to use: [`Store::select`] (or the iterator
//! [`Store::docs_where`]) with a [`Selection`] (by key, key prefix,
//! category, meta field, id range, a node without an output),
//! [`Store::load_doc_or`] and [`Store::create_doc_or`] with an
//! [`OnConflict`] policy for a key already taken, and [`merge_patch`] (RFC
//! 7386, exact text kept) behind [`Store::update_doc_merging_meta`] and
//! [`Store::merge_node_meta`].
//!
//! The `stratum` command line (the default `cli` feature; its code is the
//! binary's own, not part of this API) and the Python module in `python/`
//! are both built on this API and nothing else; build with
//! `default-features = false` to leave the CLI's dependencies out.
//!
//! # Example
//! ```
//! use stratum::{Json, NewDoc, Options, Store};
//!
//! # fn main() -> stratum::Result<()> {
//! let dir = std::env::temp_dir().join(format!("stratum-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let mut store = Store::open(Options::new(&dir))?;
//! let doc = store.create_doc(&NewDoc {
//!     category: Some("easy".into()),
//!     version: None,
//!     body: b"<p>Add two numbers.</p>".to_vec(),
//!     ..NewDoc::default()
//! })?;
//! let node = store.add_input(doc, &Json::parse("[1, 2]")?, None)?;
//! store.set_output(doc, node, &Json::parse("3")?)?;
//!
//! let read = store.get(doc)?;
//! assert_eq!(read.inputs[0].input.as_str(), "[1,2]");
//! assert_eq!(read.inputs[0].output.as_ref().map(Json::as_str), Some("3"));
//! assert_eq!(
//!     read.to_json(),
//!     r#"{"id":1,"category":"easy","version":null,"body":"<p>Add two numbers.</p>","inputs":[{"node":1,"input":[1,2],"output":3}]}"#
//! );
//! # drop(store);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod base64;
pub mod conflict;
mod crc;
pub mod engine;
pub mod error;
mod id;
pub mod json;
pub mod model;
pub mod patch;
pub mod select;
pub mod shape;
#[cfg(feature = "sim")]
pub mod sim;

pub use conflict::{Created, Loaded, OnConflict, Replacing};
pub use engine::{Docs, Ids, Notice, Options, Progress, ReadOnlyStore, Store};
pub use error::{Error, Result};
pub use json::Json;
pub use model::{DocId, DocPatch, DocSummary, Document, NewDoc, Node, NodeId};
pub use patch::merge_patch;
pub use select::{DocsWhere, Selection};
