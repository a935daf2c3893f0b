//! A bounded cache of open descriptors for sealed files (issue 8, "Bounded
//! resources").
//!
//! A whole-store pass (`list`, `dump`, `verify`, `compact`, …) reads every
//! member, and a member's segment and index used to keep a descriptor each
//! until the store was dropped: at about 1,020 members every command failed
//! with "Too many open files" under the usual `ulimit -n 1024`. Sealed
//! segments and their index files are immutable, and nobody renames or
//! removes them while this process holds the store's lock, so a descriptor
//! can be closed at any time and the file opened again by name when it is
//! next read. At most [`OPEN_LIMIT`] of them are open at once; the least
//! recently used one is closed to make room.
//!
//! The cache is process-wide because the limit is: `diff` opens two stores,
//! and a library user may open several.
//!
//! A file opened again must be the one first opened (same device, inode,
//! length and modification time: a freed inode number is soon reused): a
//! file replaced behind the lock is an I/O error, never another file's
//! bytes.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Descriptors of sealed files open at once, per process. The rest of a
/// command needs only a handful (stdio, `LOCK`, `active.seg` and its
/// checkpoint, the files a compaction or backup writes, a directory being
/// fsynced), so this keeps every command well under 64.
pub(crate) const OPEN_LIMIT: usize = 16;

/// The open descriptors, least recently used first.
struct Cache {
    open: Vec<(u64, Arc<File>)>,
    next_id: u64,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    open: Vec::new(),
    next_id: 0,
});

fn cache() -> MutexGuard<'static, Cache> {
    // The cache holds no invariant a panic elsewhere could break.
    CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Cache {
    /// Makes room for one more descriptor; the closed ones are dropped by
    /// the caller, outside the lock.
    fn make_room(&mut self) -> Vec<Arc<File>> {
        let excess = (self.open.len() + 1).saturating_sub(OPEN_LIMIT);
        self.open.drain(..excess).map(|(_, f)| f).collect()
    }
}

/// A sealed file read through the cache.
pub(crate) struct CachedFile {
    id: u64,
    path: PathBuf,
    /// Device, inode, length and modification time (s, ns) at first open.
    identity: [i64; 5],
}

fn identity(m: &Metadata) -> [i64; 5] {
    // Device and inode numbers are compared for equality only.
    #[allow(clippy::cast_possible_wrap)]
    [
        m.dev() as i64,
        m.ino() as i64,
        m.len() as i64,
        m.mtime(),
        m.mtime_nsec(),
    ]
}

/// Takes `file`, just opened read-only at `path` (with `meta` its fstat),
/// into the cache.
pub(crate) fn adopt(path: &Path, file: File, meta: &Metadata) -> CachedFile {
    let mut c = cache();
    let id = c.next_id;
    c.next_id += 1;
    let closed = c.make_room();
    c.open.push((id, Arc::new(file)));
    drop(c);
    drop(closed);
    CachedFile {
        id,
        path: path.to_path_buf(),
        identity: identity(meta),
    }
}

/// Descriptors of sealed files open now (for tests of the bound).
#[cfg(test)]
fn open_now() -> usize {
    cache().open.len()
}

impl CachedFile {
    /// Whether its descriptor is open now.
    #[cfg(test)]
    fn is_open(&self) -> bool {
        cache().open.iter().any(|(id, _)| *id == self.id)
    }

    /// Reads up to `buf.len()` bytes at `offset` (retried on `EINTR`).
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let f = self.descriptor()?;
        loop {
            match f.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    /// Its length at first open: checked at every reopen (with the rest of
    /// its identity), and a sealed file does not change, so no fstat.
    pub(crate) fn len(&self) -> u64 {
        #[allow(clippy::cast_sign_loss)]
        let len = self.identity[2] as u64;
        len
    }

    /// The open descriptor, opening the file again if it was closed.
    pub(crate) fn descriptor(&self) -> io::Result<Arc<File>> {
        let mut c = cache();
        if let Some(i) = c.open.iter().position(|(id, _)| *id == self.id) {
            // Most recently used goes last.
            let slot = c.open.remove(i);
            let f = Arc::clone(&slot.1);
            c.open.push(slot);
            return Ok(f);
        }
        let closed = c.make_room();
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&self.path)?;
        let meta = file.metadata()?;
        if identity(&meta) != self.identity || !meta.is_file() {
            return Err(io::Error::other(
                "the file was replaced while the store was open",
            ));
        }
        let f = Arc::new(file);
        c.open.push((self.id, Arc::clone(&f)));
        drop(c);
        drop(closed);
        Ok(f)
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        let mut c = cache();
        let closed = c
            .open
            .iter()
            .position(|(id, _)| *id == self.id)
            .map(|i| c.open.remove(i));
        drop(c);
        drop(closed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_limit_is_open_and_every_file_still_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for i in 0..3 * OPEN_LIMIT {
            let p = tmp.path().join(format!("seg_{i:06}.seg"));
            std::fs::write(&p, format!("file {i}")).unwrap();
            let f = File::open(&p).unwrap();
            let meta = f.metadata().unwrap();
            files.push(adopt(&p, f, &meta));
            assert!(open_now() <= OPEN_LIMIT);
        }
        for round in 0..2 {
            for (i, f) in files.iter().enumerate() {
                let want = format!("file {i}");
                let mut buf = vec![0u8; want.len()];
                let got = f.read_at(&mut buf, 0).unwrap();
                assert_eq!(got, want.len());
                assert_eq!(buf, want.as_bytes(), "round {round}");
                assert!(open_now() <= OPEN_LIMIT);
            }
        }
        let last = files.pop().unwrap();
        assert!(last.is_open());
        drop(files);
        // Dropping a file closes its descriptor.
        let id = last.id;
        drop(last);
        assert!(!cache().open.iter().any(|(i, _)| *i == id));
    }

    #[test]
    fn a_file_replaced_while_closed_is_an_error_not_its_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("seg_000001.seg");
        std::fs::write(&p, b"mine").unwrap();
        let f = File::open(&p).unwrap();
        let meta = f.metadata().unwrap();
        let mine = adopt(&p, f, &meta);
        assert!(mine.is_open());
        // Push it out of the cache, then replace it.
        let mut others = Vec::new();
        for i in 0..OPEN_LIMIT {
            let q = tmp.path().join(format!("seg_{:06}.seg", i + 2));
            std::fs::write(&q, b"other").unwrap();
            let f = File::open(&q).unwrap();
            let meta = f.metadata().unwrap();
            others.push(adopt(&q, f, &meta));
        }
        assert!(!mine.is_open());
        // Renamed away, not removed, so that the new file cannot reuse its
        // inode number and the test does not depend on timestamps.
        std::fs::rename(&p, tmp.path().join("old")).unwrap();
        std::fs::write(&p, b"evil").unwrap();
        let mut buf = [0u8; 4];
        let err = mine.read_at(&mut buf, 0).unwrap_err();
        assert!(err.to_string().contains("replaced"), "{err}");
    }
}
