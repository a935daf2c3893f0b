//! Segment files: scanning them record by record, reading one record at a
//! known location, and the handle kept for each sealed segment.

use std::path::{Path, PathBuf};

use crate::engine::format::{
    self, FORMAT_VERSION, IndexEntry, IndexHeader, Kind, RECORD_HEADER_LEN, RecordError,
    RecordHeader, SEGMENT_HEADER_LEN, SealPayload, SegmentHeader,
};
use std::cell::OnceCell;

use crate::engine::format::Member;
use crate::engine::index::{self, Binding, Entry, IndexWriter, SealedIndex};
use crate::engine::listing::read_header;
use crate::engine::notice::StaleIndex;
use crate::engine::options::{Mode, Options};
use crate::engine::vfs::VFile;
use crate::error::{Error, IoContext, Result};

/// A sealed segment: immutable, with its index. A member of a format-2
/// store is opened only when a command first needs it (docs/FORMAT.md
/// §7.7, "What is checked, and when"), so opening a store costs the same
/// whatever the number of segments.
pub(crate) struct Sealed {
    pub number: u64,
    /// Format version of the segment file.
    pub version: u16,
    pub path: PathBuf,
    pub len: u64,
    pub max_seq: u64,
    pub doc_hwm: u64,
    /// Compaction generation (base, count) when compaction wrote it.
    pub generation: Option<(u64, u32)>,
    /// The manifest's entry, when there is one: which documents it may
    /// hold, and what its file must look like when it is opened.
    pub member: Option<Member>,
    /// The open file and index, once needed.
    pub handle: OnceCell<Handle>,
    /// How to open it, for a member not opened yet.
    pub lazy: Option<Lazy>,
}

/// An open sealed segment's file and index.
pub(crate) struct Handle {
    pub file: Box<dyn VFile>,
    pub index: SealedIndex,
}

impl Handle {
    /// An already open segment.
    pub fn ready(file: Box<dyn VFile>, index: SealedIndex) -> OnceCell<Handle> {
        OnceCell::from(Handle { file, index })
    }
}

/// What opening a member later needs.
pub(crate) struct Lazy {
    pub opts: Options,
    pub mode: Mode,
    pub store_id: u64,
}

impl Sealed {
    /// The open file and index, opening and checking them on first use.
    fn handle(&self) -> Result<&Handle> {
        if let Some(h) = self.handle.get() {
            return Ok(h);
        }
        let (Some(lazy), Some(member)) = (&self.lazy, &self.member) else {
            return Err(Error::internal("a sealed segment with no way to open it"));
        };
        let h = open_member(lazy, member)?;
        let _ = self.handle.set(h);
        self.handle
            .get()
            .ok_or_else(|| Error::internal("segment handle not kept"))
    }

    /// The segment file.
    pub fn file(&self) -> Result<&dyn VFile> {
        Ok(&*self.handle()?.file)
    }

    /// The segment's index.
    pub fn index(&self) -> Result<&SealedIndex> {
        Ok(&self.handle()?.index)
    }

    /// The index file's path.
    pub fn idx_path(&self) -> PathBuf {
        self.path
            .with_file_name(crate::engine::format::index_name(self.number))
    }

    /// The lowest and highest document with records here, when the
    /// manifest says.
    pub fn docs(&self) -> Option<(u64, u64)> {
        self.member
            .as_ref()
            .filter(|m| m.records > 0 && m.records != crate::engine::format::UNKNOWN)
            .map(|m| (m.min_doc, m.max_doc))
    }

    /// Whether document (or key slot) `doc` may have records here.
    pub fn may_hold(&self, doc: u64) -> bool {
        self.member.as_ref().is_none_or(|m| m.may_hold(doc))
    }

    /// Scans the segment and returns its entries sorted by key; the fallback
    /// when the index file cannot be used.
    pub fn scan_entries(&self) -> Result<Vec<IndexEntry>> {
        let scan = scan(self.file()?, &self.path, true)?;
        if let Some(err) = scan.damage {
            return Err(err);
        }
        let mut entries = scan.entries;
        entries.sort_unstable_by_key(crate::engine::index::key);
        Ok(entries)
    }
}

/// What a sequential scan of a segment found.
pub(crate) struct Scan {
    pub header: SegmentHeader,
    /// Entries of committed data records, in file order ([`scan`] and
    /// [`scan_known`]; [`scan_with_progress`] gives them to its sink).
    pub entries: Vec<IndexEntry>,
    /// Offset just past the last committed record (or the seal footer).
    pub end: u64,
    /// Data records in `entries`.
    pub records: u64,
    pub max_seq: u64,
    pub doc_hwm: u64,
    /// The footer, when the segment ends with one.
    pub seal: Option<SealPayload>,
    /// Where the valid records stop, when something follows them: the first
    /// bad offset and why. For an active segment this may be a torn tail.
    pub bad_at: Option<(u64, String)>,
    /// True when a valid record was found after `bad_at`: damage, not a torn
    /// write.
    pub valid_after_bad: bool,
    /// Offset where an uncommitted batch starts, if the scan ended in one.
    pub open_batch_at: Option<u64>,
    /// Set when the scan found damage that is not a torn tail (sealed
    /// segment damage, or data after damage).
    pub damage: Option<Error>,
    /// Total file length.
    pub file_len: u64,
    /// The bad tail is an interrupted write: a record cut short, or a batch
    /// without its commit. (A complete record that fails its checksum is
    /// not: it may be damage.)
    pub tail_truncated: bool,
}

/// Reads sequentially through a file with a large buffer.
pub(crate) struct Reader<'a> {
    file: &'a dyn VFile,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    base: u64,
    file_len: u64,
}

const CHUNK: usize = 1 << 20;

impl<'a> Reader<'a> {
    pub fn new(file: &'a dyn VFile, file_len: u64) -> Reader<'a> {
        Reader {
            file,
            buf: Vec::new(),
            base: 0,
            file_len,
        }
    }

    /// Bytes `[at, at+len)` (or fewer, at end of file) from the buffer,
    /// refilling it as needed.
    pub fn get(&mut self, at: u64, len: usize, path: &Path) -> Result<&[u8]> {
        let end = at.saturating_add(len as u64).min(self.file_len);
        let have_end = self.base + self.buf.len() as u64;
        if at < self.base || end > have_end {
            let want = ((end - at) as usize)
                .max(CHUNK)
                .min((self.file_len - at) as usize);
            self.buf.resize(want, 0);
            self.file
                .read_exact_at(&mut self.buf, at)
                .io("read", path)?;
            self.base = at;
        }
        let s = (at - self.base) as usize;
        let e = (end - self.base) as usize;
        Ok(&self.buf[s..e])
    }
}

/// Reads up to `buf.len()` bytes from offset 0; returns how many the file
/// had. A short file is not an I/O error (its header check fails instead).
pub(crate) fn read_prefix(file: &dyn VFile, buf: &mut [u8], path: &Path) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", path, e)),
        }
    }
    Ok(got)
}

/// Scans a whole segment file. `sealed` selects the strict policy: every
/// problem is damage. For the active segment a bad tail with nothing valid
/// after it is reported in `bad_at` only (a torn write).
pub(crate) fn scan(file: &dyn VFile, path: &Path, sealed: bool) -> Result<Scan> {
    let mut keep = Collect::default();
    let mut s = scan_with_progress(
        file,
        path,
        sealed,
        ScanDepth::Structure,
        &mut keep,
        &mut |_| {},
    )?;
    s.entries = keep.done;
    Ok(s)
}

/// Where a scan puts the entries of the records it reads, so that a caller
/// that needs only a summary of them (`verify`) holds none of them: a
/// batch of a million records would otherwise be held whole until its
/// commit record is read.
pub(crate) trait Entries {
    /// An entry of the record just read; it counts once `commit` follows.
    fn add(&mut self, e: IndexEntry);
    /// The entries added since the last commit are committed.
    fn commit(&mut self);
}

/// Keeps every committed entry, in file order.
#[derive(Default)]
pub(crate) struct Collect {
    pending: Vec<IndexEntry>,
    /// The committed entries.
    pub done: Vec<IndexEntry>,
}

impl Entries for Collect {
    fn add(&mut self, e: IndexEntry) {
        self.pending.push(e);
    }

    fn commit(&mut self) {
        self.done.append(&mut self.pending);
    }
}

/// How closely a scan checks each record's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanDepth {
    /// Layout and UTF-8: enough to open a store. Every value is checked
    /// again before it is served.
    Structure,
    /// Also that every value is well-formed JSON (for `verify`).
    Values,
    /// Layout, checksums and order only, no payload checks: for `verify`,
    /// which checks every payload to [`ScanDepth::Values`] on another
    /// thread and scans the file again to `Values` if one fails.
    Framing,
}

/// [`scan`] of a whole file to `depth`, giving the entries to `sink` (not
/// to [`Scan::entries`], left empty) and calling `on_bytes` with the bytes
/// consumed every megabyte or so.
pub(crate) fn scan_with_progress(
    file: &dyn VFile,
    path: &Path,
    sealed: bool,
    depth: ScanDepth,
    sink: &mut dyn Entries,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<Scan> {
    let file_len = file.len().io("stat", path)?;
    // The header on its own: a scan that starts at a checkpoint must not
    // read the megabyte after offset 0 to get 40 bytes.
    let mut hb = [0u8; SEGMENT_HEADER_LEN];
    let got = read_prefix(file, &mut hb, path)?;
    let header = match SegmentHeader::decode(&hb[..got]) {
        Ok(h) => h,
        Err(format::HeaderError::Version(found)) => {
            return Err(Error::UnsupportedVersion {
                path: path.to_path_buf(),
                found,
            });
        }
        Err(format::HeaderError::Bad(why)) => return Err(Error::corrupt(path, 0, why)),
    };
    let known = Known {
        header,
        len: file_len,
    };
    scan_into(file, path, sealed, known, None, depth, sink, on_bytes)
}

/// What the caller of [`scan_known`] already read of a segment file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Known {
    /// Its header, checked.
    pub header: SegmentHeader,
    /// Its length.
    pub len: u64,
}

/// [`scan`] of a file whose header and length the caller has already read
/// (opening a store reads `active.seg`'s header once), starting at `from` =
/// (offset, last sequence number before it) when the records before it are
/// already indexed.
pub(crate) fn scan_known(
    file: &dyn VFile,
    path: &Path,
    sealed: bool,
    known: Known,
    from: Option<(u64, u64)>,
    depth: ScanDepth,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<Scan> {
    let mut keep = Collect::default();
    let mut s = scan_into(file, path, sealed, known, from, depth, &mut keep, on_bytes)?;
    s.entries = keep.done;
    Ok(s)
}

/// The scan itself, for [`scan_known`] and [`scan_with_progress`].
#[allow(clippy::too_many_arguments)]
fn scan_into(
    file: &dyn VFile,
    path: &Path,
    sealed: bool,
    known: Known,
    from: Option<(u64, u64)>,
    depth: ScanDepth,
    sink: &mut dyn Entries,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<Scan> {
    let Known {
        header,
        len: file_len,
    } = known;
    let mut rd = Reader::new(file, file_len);
    let mut s = Scan {
        header,
        entries: Vec::new(),
        end: SEGMENT_HEADER_LEN as u64,
        records: 0,
        max_seq: 0,
        doc_hwm: 0,
        seal: None,
        bad_at: None,
        valid_after_bad: false,
        open_batch_at: None,
        damage: None,
        file_len,
        tail_truncated: false,
    };
    let (start, mut last_seq) = from.unwrap_or((SEGMENT_HEADER_LEN as u64, 0));
    s.end = start;
    s.max_seq = last_seq;
    let mut reported = if from.is_some() { start } else { 0 };
    // Records of the open batch (none: no batch is open), and the highest
    // document id among them: doc ids inside a batch count only once it
    // commits.
    let mut pending_records = 0u64;
    let mut pending_hwm = 0u64;
    let mut proof_at_bad = false;
    let mut at = start;
    while at < file_len {
        let (h, aux, key) = match read_at(&mut rd, at, path, depth)? {
            Ok(r) => r,
            Err(why) => {
                s.tail_truncated = why == RecordError::Truncated;
                // A record that passes its CRC but says something impossible
                // was written whole: damage (or a crafted file), not a torn
                // write.
                proof_at_bad = matches!(why, RecordError::BadPayload(_));
                s.bad_at = Some((at, why.to_string()));
                break;
            }
        };
        if at - reported >= 1 << 20 {
            on_bytes(at - reported);
            reported = at;
        }
        let total = h.total_len();
        if s.seal.is_some() {
            s.bad_at = Some((at, "data after the seal footer".into()));
            break;
        }
        if h.seq <= last_seq {
            // A record that passes its CRC was written whole: out of order,
            // it is damage, never a torn write.
            proof_at_bad = h.flags & format::FLAG_BATCH == 0;
            s.bad_at = Some((at, format!("sequence number {} does not increase", h.seq)));
            break;
        }
        last_seq = h.seq;
        match h.kind {
            Kind::Seal => {
                let payload =
                    rd.get(at + RECORD_HEADER_LEN as u64, h.payload_len as usize, path)?;
                match SealPayload::decode(payload) {
                    // The record count is checked only when the whole
                    // segment was scanned (not from a checkpoint).
                    Some(p)
                        if pending_records == 0 && (from.is_some() || p.records == s.records) =>
                    {
                        s.seal = Some(p);
                        s.max_seq = h.seq.max(p.max_seq);
                        s.doc_hwm = s.doc_hwm.max(p.doc_hwm);
                    }
                    _ => {
                        s.bad_at = Some((at, "malformed seal footer".into()));
                        break;
                    }
                }
            }
            Kind::Commit => {
                let payload =
                    rd.get(at + RECORD_HEADER_LEN as u64, h.payload_len as usize, path)?;
                let count = payload.try_into().ok().map(u64::from_le_bytes);
                if pending_records == 0 || count != Some(pending_records) {
                    s.bad_at = Some((at, "commit record does not match its batch".into()));
                    break;
                }
                s.records += pending_records;
                pending_records = 0;
                s.doc_hwm = s.doc_hwm.max(pending_hwm);
                sink.commit();
                s.open_batch_at = None;
                s.max_seq = h.seq;
            }
            _ => {
                let e = IndexEntry::from_header(&h, at, aux);
                let key_entry = key.map(|slot| IndexEntry {
                    doc: slot,
                    node: h.doc,
                    aux: 0,
                    ..e
                });
                let doc_id = if e.kind == Kind::DocPut && !e.is_key() {
                    e.doc
                } else {
                    0
                };
                if h.flags & format::FLAG_BATCH != 0 {
                    if pending_records == 0 {
                        s.open_batch_at = Some(at);
                        pending_hwm = 0;
                    }
                    sink.add(e);
                    key_entry.into_iter().for_each(|k| sink.add(k));
                    pending_records += 1;
                    pending_hwm = pending_hwm.max(doc_id);
                } else if pending_records != 0 {
                    s.bad_at = Some((at, "unbatched record inside an open batch".into()));
                    break;
                } else {
                    sink.add(e);
                    key_entry.into_iter().for_each(|k| sink.add(k));
                    sink.commit();
                    s.records += 1;
                    s.max_seq = h.seq;
                    s.doc_hwm = s.doc_hwm.max(doc_id);
                }
            }
        }
        at += total;
        if pending_records == 0 {
            s.end = at;
        }
    }
    on_bytes(file_len - reported);
    if s.bad_at.is_none() && s.open_batch_at.is_some() {
        s.tail_truncated = true;
        s.bad_at = Some((s.end, "batch without its commit record".into()));
    }
    if let Some((bad, why)) = s.bad_at.clone() {
        s.valid_after_bad = proof_at_bad || resync(&mut rd, bad.max(s.end) + 1, s.max_seq, path)?;
        let torn = !sealed && !s.valid_after_bad;
        if !torn {
            s.damage = Some(Error::corrupt(path, bad, why));
        }
    } else if sealed && s.seal.is_none() {
        s.damage = Some(Error::corrupt(
            path,
            s.end,
            "sealed segment has no seal footer (truncated)",
        ));
    }
    Ok(s)
}

/// Decodes the record at `at`, returning its header and, for a `DocPut`, the
/// node high-water mark from its payload (0 otherwise) and the key slot of
/// its key (docs/FORMAT.md §7.6). The outer error is an I/O error: a failed
/// read is never taken for a bad record, so it can never pass for a torn
/// tail and get truncated.
#[allow(clippy::type_complexity)]
fn read_at(
    rd: &mut Reader<'_>,
    at: u64,
    path: &Path,
    depth: ScanDepth,
) -> Result<std::result::Result<(RecordHeader, u64, Option<u64>), RecordError>> {
    let hb = rd.get(at, RECORD_HEADER_LEN, path)?;
    let h = match format::decode_header(hb) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    let total = h.total_len() as usize;
    let b = rd.get(at, total, path)?;
    let (h, payload) = match format::decode_record(b) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    if depth != ScanDepth::Framing
        && let Err(why) =
            format::check_payload(h.kind, h.flags, payload, depth == ScanDepth::Values)
    {
        return Ok(Err(RecordError::BadPayload(why)));
    }
    let (aux, key) = if h.kind == Kind::DocPut {
        (
            format::doc_node_hwm(payload).unwrap_or(0),
            format::doc_key(payload, h.flags).map(format::key_slot),
        )
    } else {
        (0, None)
    };
    Ok(Ok((h, aux, key)))
}

/// Looks for a CRC-valid record at or after `from` that proves the bad bytes
/// before it are damage, not a torn tail: any record outside a batch. Batch
/// records do not count: a batch's records are written before its single
/// fsync, so after a power loss some may survive beyond a lost one; its
/// commit record is written only after that fsync, so a commit counts.
fn resync(rd: &mut Reader<'_>, from: u64, min_seq: u64, path: &Path) -> Result<bool> {
    let file_len = rd.file_len;
    let mut at = from;
    while at + RECORD_HEADER_LEN as u64 <= file_len {
        let hb = rd.get(at, RECORD_HEADER_LEN, path)?;
        if let Ok(h) = format::decode_header(hb)
            && h.seq > min_seq
            && at + h.total_len() <= file_len
        {
            let b = rd.get(at, h.total_len() as usize, path)?;
            if h.flags & format::FLAG_BATCH == 0 && format::decode_record(b).is_ok() {
                return Ok(true);
            }
        }
        at += 1;
    }
    Ok(false)
}

/// Read-ahead windows over sealed segments: a few per segment, because a
/// whole-store pass reads a segment as several interleaved ascending streams
/// (a loaded batch, then the outputs a later batch rewrote, and so on), and
/// at most [`WINDOWS`] in all, so that a pass over many segments holds a
/// constant: past that, the window used longest ago goes. A pass in id
/// order over a compacted store reads one segment after another, so the
/// windows it drops are those of segments it is done with.
#[derive(Default)]
pub(crate) struct ReadAhead {
    windows: std::collections::HashMap<u64, Vec<Window>>,
    /// Windows held, over every segment.
    held: usize,
    /// Counts reads, to find the window used longest ago.
    clock: u64,
    scratch: Vec<u8>,
}

/// One window: where in its segment it starts, its bytes, and when it was
/// last read.
struct Window {
    base: u64,
    buf: Vec<u8>,
    used: u64,
}

/// Bytes read ahead per window.
const WINDOW: usize = 1 << 20;
/// Windows per segment; past that many streams, records are read one by one.
const WINDOWS_PER_SEGMENT: usize = 8;
/// Windows in all (16 MiB).
const WINDOWS: usize = 16;

impl ReadAhead {
    /// The bytes of the record `e` points at in segment `seg` (of length
    /// `file_len`); `None` when they run past the end of the file. A record
    /// at or a little past one of the segment's windows moves that window
    /// forward (1 MiB read); one far from all of them opens a new window, or
    /// when there are enough, gets a positioned read of its own, so random
    /// access costs no more than without read-ahead.
    pub fn read(
        &mut self,
        file: &dyn VFile,
        seg: u64,
        file_len: u64,
        e: &Entry,
    ) -> std::io::Result<Option<&[u8]>> {
        let len = e.len as usize;
        let Some(end) = e
            .offset
            .checked_add(len as u64)
            .filter(|&end| end <= file_len)
        else {
            return Ok(None);
        };
        self.clock += 1;
        let covers = |w: &Window| e.offset >= w.base && end <= w.base + w.buf.len() as u64;
        let near = |w: &Window| {
            e.offset >= w.base && e.offset < w.base + w.buf.len() as u64 + WINDOW as u64
        };
        // Out of the map while it changes, so that a window of another
        // segment can be given up for it.
        let mut ws = self.windows.remove(&seg).unwrap_or_default();
        let slot = match ws.iter().position(covers) {
            Some(i) => Some(i),
            None => {
                let i = match ws.iter().position(near) {
                    Some(i) => Some(i),
                    None if ws.len() < WINDOWS_PER_SEGMENT => {
                        let buf = self.room();
                        ws.push(Window {
                            base: 0,
                            buf,
                            used: 0,
                        });
                        Some(ws.len() - 1)
                    }
                    None => None,
                };
                if let Some(w) = i.and_then(|i| ws.get_mut(i)) {
                    w.buf
                        .resize(WINDOW.max(len).min((file_len - e.offset) as usize), 0);
                    if let Err(err) = file.read_exact_at(&mut w.buf, e.offset) {
                        // Its bytes are no longer the ones at its base.
                        if let Some(i) = i {
                            ws.swap_remove(i);
                            self.held -= 1;
                        }
                        self.windows.insert(seg, ws);
                        return Err(err);
                    }
                    w.base = e.offset;
                }
                i
            }
        };
        let ws = self.windows.entry(seg).or_insert(ws);
        match slot.and_then(|i| ws.get_mut(i)) {
            Some(w) => {
                w.used = self.clock;
                let start = (e.offset - w.base) as usize;
                Ok(w.buf.get(start..start + len))
            }
            None => {
                self.scratch.resize(len, 0);
                file.read_exact_at(&mut self.scratch, e.offset)?;
                Ok(Some(&self.scratch))
            }
        }
    }

    /// A buffer for one more window: a new one while fewer than
    /// [`WINDOWS`] are held, else that of the window (of another segment)
    /// used longest ago, which goes.
    fn room(&mut self) -> Vec<u8> {
        let oldest = self
            .windows
            .iter()
            .flat_map(|(&seg, ws)| ws.iter().enumerate().map(move |(i, w)| (w.used, seg, i)))
            .min();
        match oldest {
            Some((_, seg, i)) if self.held >= WINDOWS => {
                let Some(ws) = self.windows.get_mut(&seg) else {
                    return Vec::new();
                };
                let w = ws.swap_remove(i);
                if ws.is_empty() {
                    self.windows.remove(&seg);
                }
                w.buf
            }
            _ => {
                self.held += 1;
                Vec::new()
            }
        }
    }
}

/// Reads the record an entry points at and checks it is that record.
pub(crate) fn read_record(
    file: &dyn VFile,
    path: &Path,
    e: &Entry,
) -> Result<(RecordHeader, Vec<u8>)> {
    let mut buf = vec![0u8; e.len as usize];
    file.read_exact_at(&mut buf, e.offset).map_err(|err| {
        if err.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::corrupt(
                path,
                e.offset,
                "record runs past the end of the file (truncated)",
            )
        } else {
            Error::io("read", path, err)
        }
    })?;
    check_record(&buf, path, e)
}

/// Checks encoded record bytes against the entry that pointed at them.
pub(crate) fn check_record(buf: &[u8], path: &Path, e: &Entry) -> Result<(RecordHeader, Vec<u8>)> {
    check_record_in(buf, path, e).map(|(h, payload)| (h, payload.to_vec()))
}

/// [`check_record`] without a copy: the payload within `buf`.
pub(crate) fn check_record_in<'b>(
    buf: &'b [u8],
    path: &Path,
    e: &Entry,
) -> Result<(RecordHeader, &'b [u8])> {
    let (h, payload) = format::decode_record(buf)
        .map_err(|why| Error::corrupt(path, e.offset, why.to_string()))?;
    if (h.doc, h.node, h.seq, h.kind) != (e.doc, e.node, e.seq, e.kind) {
        return Err(Error::corrupt(
            path,
            e.offset,
            "record does not match its index entry",
        ));
    }
    Ok((h, payload))
}

/// One raw record of the log, for `dump --records`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// File name of the segment.
    pub segment: String,
    /// Byte offset of the record in the segment.
    pub offset: u64,
    /// Sequence number.
    pub seq: u64,
    /// Record kind name, e.g. `doc-put`.
    pub kind: &'static str,
    /// Document id (0 for records that belong to no document).
    pub doc: u64,
    /// Node id (0 for document-level records).
    pub node: u64,
    /// Total bytes of the record, header included.
    pub size: u64,
    /// Whether the record's CRC matched.
    pub crc_ok: bool,
}

/// `dump --records`: every record of every segment in file order.
/// `files` are the segments, oldest first.
pub(crate) fn list_records(
    files: Vec<(&dyn VFile, &Path)>,
    f: &mut dyn FnMut(RecordInfo) -> Result<()>,
) -> Result<()> {
    for (file, path) in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let len = file.len().io("stat", path)?;
        let mut rd = Reader::new(file, len);
        let mut at = SEGMENT_HEADER_LEN as u64;
        while at < len {
            let hb = rd.get(at, RECORD_HEADER_LEN, path)?;
            let Ok(h) = format::decode_header(hb) else {
                f(RecordInfo {
                    segment: name.clone(),
                    offset: at,
                    seq: 0,
                    kind: "unreadable",
                    doc: 0,
                    node: 0,
                    size: len - at,
                    crc_ok: false,
                })?;
                break;
            };
            let total = h.total_len();
            let b = rd.get(at, total as usize, path)?;
            let crc_ok = b.len() as u64 == total && format::decode_record(b).is_ok();
            f(RecordInfo {
                segment: name.clone(),
                offset: at,
                seq: h.seq,
                kind: h.kind.name(),
                doc: h.doc,
                node: h.node,
                size: total,
                crc_ok,
            })?;
            if !crc_ok {
                break;
            }
            at += total;
        }
    }
    Ok(())
}

/// A member file must have the length the manifest lists.
pub(crate) fn check_len(path: &Path, len: u64, member: &Member) -> Result<()> {
    if len == member.len {
        return Ok(());
    }
    Err(Error::corrupt(
        path,
        0,
        format!(
            "member is {len} bytes long, the manifest says {} (replaced or truncated)",
            member.len
        ),
    ))
}

/// Opens one member, checking it is the file the manifest lists: its
/// header's version, number and store id, and its length. A missing or
/// stale index is a cache miss: the segment is scanned, and a write open
/// writes the index again.
pub(crate) fn open_member(lazy: &Lazy, member: &Member) -> Result<Handle> {
    let (opts, mode, store_id) = (&lazy.opts, lazy.mode, lazy.store_id);
    let n = member.number;
    let path = opts.dir.join(format::segment_name(n));
    let file = opts.vfs.open_read(&path).io("open", &path)?;
    let h = read_header(&*file, &path)?;
    let want_id = if member.version == FORMAT_VERSION {
        store_id
    } else {
        0
    };
    if h.version != member.version || h.store_id != want_id {
        return Err(Error::corrupt(
            &path,
            0,
            "member belongs to another store (its header does not carry this store's id)",
        ));
    }
    if h.number != n {
        return Err(Error::corrupt(
            &path,
            0,
            format!("header says segment {}, the file name says {n}", h.number),
        ));
    }
    check_len(&path, file.len().io("stat", &path)?, member)?;
    let bind = Binding {
        version: member.version,
        store_id: want_id,
    };
    let mut rebuilt = false;
    // An index listing another number of entries than the manifest counted
    // for this segment is stale (issue 9 item 6).
    let counted = (member.records != format::UNKNOWN).then(|| member.records + member.keys);
    let s = open_sealed(opts, mode, n, file, &mut rebuilt, bind, counted)?;
    if rebuilt {
        opts.vfs.sync_dir(&opts.dir).io("fsync", &opts.dir)?;
    }
    s.handle
        .into_inner()
        .ok_or_else(|| Error::internal("an opened segment without its handle"))
}

/// Opens one sealed segment with its index; rebuilds a missing or stale
/// index (write mode) or builds it in memory (read mode). With `counted`
/// (the manifest's count of the segment's entries), an index listing
/// another number is stale too.
pub(crate) fn open_sealed(
    opts: &Options,
    mode: Mode,
    n: u64,
    file: Box<dyn VFile>,
    dir_dirty: &mut bool,
    bind: crate::engine::index::Binding,
    counted: Option<u64>,
) -> Result<Sealed> {
    let vfs = &*opts.vfs;
    let path = opts.dir.join(format::segment_name(n));
    let idx_path = opts.dir.join(format::index_name(n));
    let len = file.len().io("stat", &path)?;
    let mut stale = None;
    let found = match index::open_index(vfs, &idx_path, n, len, bind)? {
        Some((_, h)) if counted.is_some_and(|c| c != h.entries) => {
            stale = counted.map(|counted| StaleIndex::Count {
                listed: h.entries,
                counted,
            });
            None
        }
        // There, but not this segment's (another segment's, another
        // length's, or a damaged header): stale, not merely missing.
        None if vfs.kind(&idx_path).ok().flatten().is_some() => {
            stale = Some(StaleIndex::Header);
            None
        }
        found => found,
    };
    if let Some((idx_file, header)) = found {
        return Ok(Sealed {
            number: n,
            version: bind.version,
            path,
            len,
            max_seq: header.max_seq,
            doc_hwm: header.doc_hwm,
            generation: None,
            handle: crate::engine::segment::Handle::ready(
                file,
                SealedIndex::on_disk(idx_path, idx_file, header),
            ),
            member: None,
            lazy: None,
        });
    }
    let scan = scan(&*file, &path, true)?;
    if let Some(err) = scan.damage {
        return Err(err);
    }
    let mut entries = scan.entries;
    entries.sort_unstable_by_key(index::key);
    if mode == Mode::Write {
        write_index(opts, n, len, scan.max_seq, scan.doc_hwm, &entries, bind)?;
        *dir_dirty = true;
    }
    let index = SealedIndex::in_memory(idx_path, entries);
    if let Some(why) = stale {
        index.set_passed_over(why);
    }
    Ok(Sealed {
        number: n,
        version: bind.version,
        path,
        len,
        max_seq: scan.max_seq,
        doc_hwm: scan.doc_hwm,
        generation: None,
        handle: crate::engine::segment::Handle::ready(file, index),
        member: None,
        lazy: None,
    })
}

pub(crate) fn write_index(
    opts: &Options,
    n: u64,
    segment_len: u64,
    max_seq: u64,
    doc_hwm: u64,
    entries: &[IndexEntry],
    bind: crate::engine::index::Binding,
) -> Result<()> {
    let vfs = &*opts.vfs;
    let mut w = IndexWriter::create(vfs, &opts.dir, format::index_name(n))?;
    for e in entries {
        w.push(*e)?;
    }
    w.finish(
        vfs,
        &opts.dir,
        IndexHeader {
            version: bind.version,
            store_id: bind.store_id,
            segment: n,
            segment_len,
            entries: 0,
            max_seq,
            doc_hwm,
        },
        true,
    )
}
