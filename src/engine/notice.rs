//! Notices: what opening a store found and put right without losing an
//! acknowledged write. Not errors: the command goes on, and the CLI shows
//! them on stderr (unless `-q`).

use std::fmt;
use std::path::PathBuf;

/// One thing recovery did or left alone, for the caller to show.
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
        }
    }
}
