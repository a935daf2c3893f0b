//! Notices: what opening or reading a store found and put right (or worked
//! around) without losing an acknowledged write. Not errors: the command
//! goes on, and the CLI shows them on stderr (unless `-q`).

use std::fmt;
use std::path::PathBuf;

/// One thing recovery or a read did or left alone, for the caller to show.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The end of the active segment held a write that never completed
    /// (never acknowledged), and it was cut off.
    DiscardedIncompleteWrite {
        /// The segment.
        path: PathBuf,
        /// Bytes cut off.
        bytes: u64,
        /// Where the incomplete write began.
        offset: u64,
    },
    /// A segment-like file that is not a member of this store (another
    /// store's, or a stray copy) was left alone: neither read nor deleted.
    NotAMember {
        /// Its file name.
        name: String,
    },
    /// An index file did not describe its segment (restored from another
    /// copy of the store, say): the segment was scanned instead, and the
    /// index written again from it when `rebuilt`. The segment is never
    /// rewritten for it.
    StaleIndex {
        /// The index file.
        path: PathBuf,
        /// What gave it away.
        why: StaleIndex,
        /// Written again from the segment (a write open); otherwise `repair`
        /// or the next write that reads it does.
        rebuilt: bool,
    },
    /// The key index (`keys.base`, `keys.recent`) could not be brought up
    /// to date after a manifest commit. The commit stands; key lookups
    /// probe every member that holds keys until a later commit rebuilds
    /// it (docs/FORMAT.md §7.8).
    KeyIndexNotWritten {
        /// What failed.
        why: String,
    },
}

/// What showed an index file to be stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StaleIndex {
    /// A record read through it did not match the entry that found it,
    /// though its checksums pass.
    Mismatch,
    /// Its header describes another segment (or does not check).
    Header,
    /// It lists another number of entries than the manifest counted for its
    /// segment.
    Count {
        /// In the index header.
        listed: u64,
        /// In the manifest.
        counted: u64,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::DiscardedIncompleteWrite {
                path,
                bytes,
                offset,
            } => write!(
                f,
                "discarded {bytes} bytes of an incomplete write at the end of {} (from offset {offset})",
                path.display()
            ),
            Notice::NotAMember { name } => {
                write!(f, "{name} is not a member of this store and was left alone")
            }
            Notice::KeyIndexNotWritten { why } => write!(
                f,
                "the key index was not updated ({why}); key lookups read every member until the next commit rebuilds it"
            ),
            Notice::StaleIndex { path, why, rebuilt } => {
                write!(f, "index file {} ", path.display())?;
                match why {
                    StaleIndex::Mismatch => f.write_str(
                        "does not match its segment, though its checksums pass (restored from another copy of the store?)",
                    )?,
                    StaleIndex::Header => f.write_str(
                        "does not describe its segment (another segment's index, or a damaged header)",
                    )?,
                    StaleIndex::Count { listed, counted } => write!(
                        f,
                        "lists {listed} entries where the manifest counted {counted} for its segment (restored from another copy of the store?)"
                    )?,
                }
                f.write_str(if *rebuilt {
                    "; rebuilt from the segment"
                } else {
                    "; read from a scan of the segment instead"
                })
            }
        }
    }
}
