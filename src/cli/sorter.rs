//! Sorting more records than memory should hold: sorted runs written to
//! unnamed temporary files, then merged. `diff` pairs the documents of two
//! stores by key this way, in memory bounded by the run size and the merge
//! fan-in, whatever the stores' sizes.
//!
//! The files have no name (`O_TMPFILE`, in the system's temporary
//! directory), so they are gone however the process ends.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};

use stratum::{Error, Result};

/// A record that can be sorted on disk.
pub trait Record: Ord + Sized {
    /// Heap bytes it owns beyond its own size, for the run budget.
    fn heap_bytes(&self) -> usize;
    /// Writes it in the run files' encoding.
    ///
    /// # Errors
    /// The write's.
    fn encode(&self, out: &mut impl Write) -> io::Result<()>;
    /// Reads the next one, `None` at the end of the run.
    ///
    /// # Errors
    /// The read's, or [`io::ErrorKind::InvalidData`].
    fn decode(input: &mut impl Read) -> io::Result<Option<Self>>;
}

/// Memory a sorter fills before it writes a run. The unit tests take a few
/// records a run, so that every sort in them goes through run files.
const RUN_BYTES: usize = if cfg!(test) { 256 } else { 4 << 20 };

/// Runs merged at once: more are first merged into longer runs, so a merge
/// holds at most this many read buffers.
const FAN_IN: usize = 16;

/// A run file's read or write buffer.
const BUF_BYTES: usize = 64 << 10;

/// What temporary-file errors name.
const TMP: &str = "<temporary file>";

fn tmp_err(op: &'static str) -> impl Fn(io::Error) -> Error {
    move |e| Error::io(op, TMP, e)
}

/// Collects records, writing each [`RUN_BYTES`] of them to disk as a
/// sorted run.
pub struct Sorter<T> {
    items: Vec<T>,
    bytes: usize,
    runs: Vec<File>,
}

impl<T: Record> Default for Sorter<T> {
    fn default() -> Self {
        Sorter {
            items: Vec::new(),
            bytes: 0,
            runs: Vec::new(),
        }
    }
}

impl<T: Record> Sorter<T> {
    /// Adds a record.
    ///
    /// # Errors
    /// [`Error::Io`] from a run file.
    pub fn push(&mut self, item: T) -> Result<()> {
        self.bytes += size_of::<T>() + item.heap_bytes();
        self.items.push(item);
        if self.bytes >= RUN_BYTES {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        self.items.sort_unstable();
        let run = write_run(self.items.drain(..))?;
        self.runs.push(run);
        self.bytes = 0;
        Ok(())
    }

    /// Every record added, in order.
    ///
    /// # Errors
    /// [`Error::Io`] from a run file.
    pub fn finish(mut self) -> Result<Sorted<T>> {
        if self.runs.is_empty() {
            self.items.sort_unstable();
            return Ok(Sorted::new(Source::Memory(self.items.into_iter())));
        }
        if !self.items.is_empty() {
            self.spill()?;
        }
        drop(self.items);
        let mut runs = self.runs;
        while runs.len() > FAN_IN {
            let group: Vec<File> = runs.drain(..FAN_IN).collect();
            let mut merge: Merge<T> = Merge::new(group)?;
            let mut out = run_writer()?;
            while let Some(item) = merge.next()? {
                item.encode(&mut out).map_err(tmp_err("write"))?;
            }
            runs.push(finish_run(out)?);
        }
        Ok(Sorted::new(Source::Merge(Merge::new(runs)?)))
    }
}

fn run_writer() -> Result<BufWriter<File>> {
    let file = crate::cli::input::unnamed_file(&std::env::temp_dir()).map_err(tmp_err("create"))?;
    Ok(BufWriter::with_capacity(BUF_BYTES, file))
}

/// Flushes a run and rewinds it for reading.
fn finish_run(out: BufWriter<File>) -> Result<File> {
    let mut file = out
        .into_inner()
        .map_err(|e| Error::io("write", TMP, e.into_error()))?;
    io::Seek::rewind(&mut file).map_err(tmp_err("seek"))?;
    Ok(file)
}

fn write_run<T: Record>(items: impl Iterator<Item = T>) -> Result<File> {
    let mut out = run_writer()?;
    for item in items {
        item.encode(&mut out).map_err(tmp_err("write"))?;
    }
    finish_run(out)
}

/// A k-way merge of sorted runs.
struct Merge<T> {
    readers: Vec<BufReader<File>>,
    /// The head of each run not yet taken, with the run's index (which
    /// also keeps equal records in run order).
    heads: BinaryHeap<Reverse<(T, usize)>>,
}

impl<T: Record> Merge<T> {
    fn new(runs: Vec<File>) -> Result<Merge<T>> {
        let mut readers: Vec<BufReader<File>> = runs
            .into_iter()
            .map(|f| BufReader::with_capacity(BUF_BYTES, f))
            .collect();
        let mut heads = BinaryHeap::with_capacity(readers.len());
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(item) = T::decode(r).map_err(tmp_err("read"))? {
                heads.push(Reverse((item, i)));
            }
        }
        Ok(Merge { readers, heads })
    }

    fn next(&mut self) -> Result<Option<T>> {
        let Some(Reverse((item, i))) = self.heads.pop() else {
            return Ok(None);
        };
        if let Some(r) = self.readers.get_mut(i)
            && let Some(next) = T::decode(r).map_err(tmp_err("read"))?
        {
            self.heads.push(Reverse((next, i)));
        }
        Ok(Some(item))
    }
}

enum Source<T> {
    Memory(std::vec::IntoIter<T>),
    Merge(Merge<T>),
}

/// The records of a [`Sorter`], in order, with one of lookahead.
pub struct Sorted<T> {
    source: Source<T>,
    peeked: Option<T>,
}

impl<T: Record> Sorted<T> {
    fn new(source: Source<T>) -> Sorted<T> {
        Sorted {
            source,
            peeked: None,
        }
    }

    /// The next record, without taking it.
    ///
    /// # Errors
    /// [`Error::Io`] from a run file.
    pub fn peek(&mut self) -> Result<Option<&T>> {
        if self.peeked.is_none() {
            self.peeked = match &mut self.source {
                Source::Memory(items) => items.next(),
                Source::Merge(m) => m.next()?,
            };
        }
        Ok(self.peeked.as_ref())
    }

    /// Takes the next record.
    ///
    /// # Errors
    /// [`Error::Io`] from a run file.
    pub fn next(&mut self) -> Result<Option<T>> {
        self.peek()?;
        Ok(self.peeked.take())
    }

    /// Skips the records before the first that `before` is false for, and
    /// returns that one without taking it.
    ///
    /// # Errors
    /// [`Error::Io`] from a run file.
    pub fn skip_while(&mut self, before: impl Fn(&T) -> bool) -> Result<Option<&T>> {
        while self.peek()?.is_some_and(&before) {
            self.peeked = None;
        }
        self.peek()
    }
}

/// Encoding helpers for [`Record`] implementations: integers little-endian,
/// strings as a `u32` length and their bytes.
pub mod codec {
    use std::io::{self, Read, Write};

    /// Writes `v`.
    ///
    /// # Errors
    /// The write's.
    pub fn put_u64(out: &mut impl Write, v: u64) -> io::Result<()> {
        out.write_all(&v.to_le_bytes())
    }

    /// Writes `s`, or the absent marker for `None`.
    ///
    /// # Errors
    /// The write's; [`io::ErrorKind::InvalidInput`] for a string of 4 GiB.
    pub fn put_str(out: &mut impl Write, s: Option<&str>) -> io::Result<()> {
        let len = match s {
            None => ABSENT,
            Some(s) => u32::try_from(s.len())
                .ok()
                .filter(|&n| n != ABSENT)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "string too long"))?,
        };
        out.write_all(&len.to_le_bytes())?;
        out.write_all(s.unwrap_or("").as_bytes())
    }

    /// The length that marks an absent string.
    const ABSENT: u32 = u32::MAX;

    /// Reads a `u64`; `None` at a clean end of input.
    ///
    /// # Errors
    /// The read's; [`io::ErrorKind::UnexpectedEof`] part-way.
    pub fn get_u64(input: &mut impl Read) -> io::Result<Option<u64>> {
        let mut b = [0u8; 8];
        let mut got = 0;
        while got < b.len() {
            match input.read(&mut b[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(u64::from_le_bytes(b)))
    }

    /// Reads what [`put_str`] wrote.
    ///
    /// # Errors
    /// The read's; [`io::ErrorKind::InvalidData`] for text that is not
    /// UTF-8.
    pub fn get_str(input: &mut impl Read) -> io::Result<Option<String>> {
        let mut b = [0u8; 4];
        input.read_exact(&mut b)?;
        let len = u32::from_le_bytes(b);
        if len == ABSENT {
            return Ok(None);
        }
        let mut bytes = vec![0u8; len as usize];
        input.read_exact(&mut bytes)?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as `diff` sorts them: a string and a number.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    struct Keyed(String, u64);

    impl Record for Keyed {
        fn heap_bytes(&self) -> usize {
            self.0.len()
        }
        fn encode(&self, out: &mut impl Write) -> io::Result<()> {
            codec::put_u64(out, self.1)?;
            codec::put_str(out, Some(&self.0))
        }
        fn decode(input: &mut impl Read) -> io::Result<Option<Self>> {
            let Some(id) = codec::get_u64(input)? else {
                return Ok(None);
            };
            Ok(Some(Keyed(codec::get_str(input)?.unwrap_or_default(), id)))
        }
    }

    fn sorted(items: &[Keyed]) -> Vec<Keyed> {
        let mut s = Sorter::default();
        for i in items {
            s.push(i.clone()).unwrap();
        }
        let mut out = Vec::new();
        let mut it = s.finish().unwrap();
        while let Some(i) = it.next().unwrap() {
            out.push(i);
        }
        out
    }

    #[test]
    fn sorts_in_memory_and_across_many_runs() {
        // None or a few stay in memory; many make more runs than one merge
        // takes, so the runs are merged twice.
        let per_run = RUN_BYTES / size_of::<Keyed>();
        for n in [0, 5, per_run * FAN_IN * 3 + 17] {
            let items: Vec<Keyed> = (0..n as u64)
                .map(|i| Keyed(format!("k{}", (i * 7919) % 1000), i))
                .collect();
            let mut want = items.clone();
            want.sort();
            assert_eq!(sorted(&items), want, "{n} records");
        }
    }

    #[test]
    fn skip_while_stops_at_the_first_record_not_before() {
        let mut s = Sorter::default();
        for i in [5u64, 1, 3, 3, 9] {
            s.push(Keyed(String::new(), i)).unwrap();
        }
        let mut it = s.finish().unwrap();
        assert_eq!(it.skip_while(|k| k.1 < 3).unwrap().map(|k| k.1), Some(3));
        assert_eq!(it.next().unwrap().map(|k| k.1), Some(3));
        assert_eq!(it.skip_while(|k| k.1 < 4).unwrap().map(|k| k.1), Some(5));
        assert_eq!(it.skip_while(|k| k.1 < 10).unwrap(), None);
    }
}
