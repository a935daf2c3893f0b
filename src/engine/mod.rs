//! The storage engine: a log-structured, hierarchical store in the spirit of
//! Bitcask. See `docs/FORMAT.md` for the bytes on disk and the crash analysis.
//!
//! # Shape
//! Every write appends one record (or one atomic batch) to `active.seg`. Full
//! active segments are sealed as `seg_NNNNNN.seg`, each with a sorted index
//! file `seg_NNNNNN.idx` (Bitcask's hint file, sorted so that it can be
//! searched on disk instead of loaded). The `MANIFEST` lists the members
//! with their document-id ranges, so opening a store reads the directory,
//! the manifest and the active segment only, and a `get` binary-searches
//! the index of the member whose range holds the document (each one that
//! does) and reads the records it needs.
//!
//! # Who owns what
//! Each piece of an open store's state has one owner, with private fields;
//! `Store` (store.rs) holds the owners and is the only door.
//! - `active.rs`: the active segment (its file, write buffer, in-memory
//!   index, checkpoint) and the batch in progress, with a spilled batch's
//!   parked `active.seg`; also the id marks' type (the store holds them).
//! - `sealed.rs`: the sealed segments and their indexes, the manifest that
//!   lists them, and what this open found out about stale index files; it
//!   holds the key index (`keys.rs`: `keys.base` and `keys.recent`, the
//!   members' key entries in one sorted place, bound to the manifest), which
//!   it brings up to date after every manifest commit.
//! - `options.rs`: how the store was opened, the caller's.
//!
//! The rest own no state of an open store. Recovery (`recover.rs`,
//! `replay.rs`) returns the parts a store is assembled from; reads go
//! through `reads.rs` over the two owners; compaction (`compact.rs`),
//! `stats` (`stats.rs`, with the rule of `live.rs`), `verify` and `backup`
//! take the owners they need; the file formats, scans and index files are
//! `format.rs`, `segment.rs`, `salvage.rs`, `index.rs`, `manifest.rs` and
//! `listing.rs`.
//!
//! # Invariants
//! - Sealed segments and their index files are never modified in place.
//! - Newest wins by sequence number; sequence numbers strictly increase.
//! - Document ids and node ids are never reused: their high-water marks are
//!   stored in every sealed segment and survive compaction.
//! - A value is served only after its record's CRC has been checked.

// Bytes read from disk are untrusted: no unwrap, expect or panic may turn
// them into a crash (tests are exempt).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod format;
pub mod vfs;

mod active;
mod backup;
mod compact;
mod descriptors;
mod index;
mod keys;
mod listing;
mod live;
mod lock;
mod manifest;
mod notice;
mod options;
mod reads;
mod recover;
mod repair;
mod replay;
mod salvage;
mod sealed;
mod segment;
mod stats;

mod store;
mod verify;
pub(crate) mod version;
mod view;

pub use backup::{BackupReport, Sealed};
pub use compact::{CompactMode, CompactPlan, CompactReport, DEAD_BYTES, DEAD_SHARE, Estimate};
pub use format::MAX_ID;
pub use notice::{Notice, StaleIndex};
pub use options::{Options, Progress};
pub use repair::{QUARANTINE_DIR, RepairReport, SalvageReport, repair, salvage};
pub use sealed::NoticeHook;
pub use segment::RecordInfo;
pub use stats::{SegmentStats, Stats};
pub use store::{Beside, Docs, ID_HEADROOM, Ids, ReadOnlyStore, Store, backup};
pub(crate) use store::{DocFilter, Shape};
pub use verify::{FileReport, Problem, ProblemKind, VerifyReport, verify};
