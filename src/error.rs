//! The library's one error type.
//!
//! Every failure the engine can report is a variant here, with its context
//! (path, offset, id) held as data. The CLI maps variants to exit codes in one
//! place (`src/exit.rs`); the library never chooses a process exit code.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::engine::version::{FORMAT_V1, FORMAT_VERSION};
use crate::id::{DocId, NodeId};

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with enough context to say what to do about it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed (including a full disk).
    Io {
        /// What stratum was doing, e.g. "fsync" or "open".
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Bytes on disk failed a check: a checksum, a length, a structural rule.
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage within the file.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// A file carries a format version this build cannot read.
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found in its header.
        found: u16,
    },
    /// The directory holds no stratum store (read commands never create one).
    NoStore {
        /// The directory that was looked at.
        path: PathBuf,
    },
    /// The directory holds a store's files but no `LOCK`: someone deleted
    /// it, and recreating it while another process may still hold the old
    /// one would let two writers in.
    LockMissing {
        /// The missing lock file, in the data directory.
        path: PathBuf,
    },
    /// A write was asked to create a store in a directory that is not empty
    /// and holds no store.
    NotAStore {
        /// The directory.
        path: PathBuf,
    },
    /// No live document with this id.
    DocNotFound(DocId),
    /// No live document holds this key.
    KeyNotFound(String),
    /// The document exists but has no live input node with this id.
    NodeNotFound {
        /// The document.
        doc: DocId,
        /// The missing node.
        node: NodeId,
    },
    /// The caller's input was rejected: bad JSON, too large, an id already
    /// taken, and so on. Nothing was written.
    InvalidInput(String),
    /// An id to keep ([`Ids::Keep`](crate::Ids::Keep)) leaves fewer than
    /// [`ID_HEADROOM`](crate::engine::ID_HEADROOM) ids above it, so id
    /// creation could run out. Nothing was written.
    IdTooHigh {
        /// Which id: "document id", "node id" or "document high-water mark".
        what: &'static str,
        /// The id.
        id: u64,
    },
    /// Another process held the lock for longer than the timeout.
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long stratum waited, in seconds.
        waited_secs: f64,
    },
    /// A bug in stratum: a state the engine should never reach. Nothing was
    /// written after it was detected.
    Internal(String),
    /// An earlier write or fsync of this open store failed, so its state in
    /// memory may be ahead of the files: it refuses further writes. Reopen
    /// it; recovery goes by what reached the disk.
    Poisoned,
    /// The file system lacks the free space an operation needs up front.
    NoSpace {
        /// The directory checked.
        path: PathBuf,
        /// Bytes the operation needs.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
}

impl Error {
    /// Wraps an I/O error with the operation and path it came from.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds a corruption error for `path` at `offset`.
    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// Builds an internal error (a bug).
    pub fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into())
    }

    /// Builds an invalid-input error.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => {
                write!(f, "I/O error during {op} on {}: {source}", path.display())
            }
            Error::Corrupt {
                path,
                offset,
                reason,
            } => write!(
                f,
                "corruption in {} at byte {offset}: {reason}",
                path.display()
            ),
            Error::UnsupportedVersion { path, found } => write!(
                f,
                "{} has format version {found}, this stratum reads versions {} to {}; use a matching stratum release",
                path.display(),
                FORMAT_V1,
                FORMAT_VERSION
            ),
            Error::NoStore { path } => write!(f, "no store at {}", path.display()),
            Error::LockMissing { path } => write!(
                f,
                "{} holds a stratum store but its LOCK file is missing (deleted while in use?), so stratum cannot tell whether another process is writing; once no stratum process uses the store, recreate it with `touch {}`",
                path.parent().unwrap_or(path).display(),
                path.display()
            ),
            Error::NotAStore { path } => write!(
                f,
                "{} is not empty and holds no stratum store; refusing to turn it into one",
                path.display()
            ),
            Error::DocNotFound(id) => write!(f, "document {id} not found"),
            Error::KeyNotFound(key) => write!(f, "no document has the key {key:?}"),
            Error::NodeNotFound { doc, node } => {
                write!(f, "input node {node} not found in document {doc}")
            }
            Error::InvalidInput(msg) => f.write_str(msg),
            Error::IdTooHigh { what, id } => write!(
                f,
                "{what} {id} leaves fewer than 2^32 ids above it (the highest is {}), so ids could run out",
                crate::engine::MAX_ID
            ),
            Error::Internal(msg) => write!(f, "internal error (a bug in stratum): {msg}"),
            Error::Poisoned => f.write_str(
                "an earlier write to this store failed; reopen the store before writing again",
            ),
            Error::LockTimeout { path, waited_secs } => write!(
                f,
                "the store is locked by another process ({} held for over {waited_secs:.1}s)",
                path.display()
            ),
            Error::NoSpace {
                path,
                needed,
                available,
            } => write!(
                f,
                "not enough free space in {}: need {needed} bytes, {available} available",
                path.display()
            ),
        }
    }
}

/// Names the operation and file of a failed I/O call: `f.sync_data().io("fsync",
/// &path)?` for `.map_err(|e| Error::io("fsync", &path, e))?`.
pub(crate) trait IoContext<T> {
    /// The result, with an error turned into [`Error::Io`] for `op` on `path`.
    fn io(self, op: &'static str, path: impl AsRef<std::path::Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn io(self, op: &'static str, path: impl AsRef<std::path::Path>) -> Result<T> {
        self.map_err(|e| Error::io(op, path.as_ref(), e))
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
