//! Fuzz targets for stratum's decoders, segment scanning and recovery. The
//! bodies live in `entry.rs`, which `tests/engine/fuzz_corpus.rs` shares to replay
//! the committed corpus in a plain `cargo test`.

mod entry;

pub use entry::{index, index_fixture_file, join_store, json, record, split_store, store};
