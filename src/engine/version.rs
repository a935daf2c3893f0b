//! The format versions this build reads and writes: a leaf, so that the
//! error type can name them without depending on the format's code.

/// Format version written to every segment header, index header and
/// manifest.
pub const FORMAT_VERSION: u16 = 2;
/// The first format version, still read (docs/FORMAT.md §8.7).
pub const FORMAT_V1: u16 = 1;
