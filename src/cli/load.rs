//! `stratum load`: documents from JSON Lines in the `get` shape, in one
//! atomic batch.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;

use clap::Args;

use crate::cli::conflict::OnConflictArg;
use crate::cli::input::{self, Ahead, STDIN, Source, at_line};
use crate::cli::{GlobalArgs, output};
use stratum::model::ParsedDoc;
use stratum::{DocId, Document, Error, Ids};

/// Load documents from JSON Lines in the `get` shape, all or nothing.
///
/// Each line is one document as `get` and `dump` print it ("key", "body" or
/// "body_base64", "category", "version", "meta", "inputs" with "input",
/// "meta", "output" and "has_output"); blank lines are skipped. New ids are assigned in order and
/// printed one per line, unless --keep-ids keeps the "id" and "node" fields
/// (which must not be in use in this store). With --keep-ids, the id
/// high-water marks that `dump --high-water` prints ("node_high_water" on a
/// document, a last line {"high_water":{"doc":N}}) are kept too, so the copy
/// never hands out an id the source used; without it they are ignored.
///
/// A line with a "key" that a live document holds fails the load (exit 4)
/// unless --on-conflict says otherwise: `replace` makes that document the
/// line's (it keeps its id; nodes whose input is unchanged, in order, keep
/// their ids too, and nothing is written for what is already equal, so
/// loading the same file again leaves the store as it was), `skip` leaves
/// it alone. The id printed for such a line is that document's. The
/// whole load is one atomic write: a bad line fails the command with its
/// line number (exit 4) and the store is left unchanged. A load larger
/// than --segment-size is written as segments of that size, all committed
/// at once.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  stratum load fixtures.jsonl
  stratum load --on-conflict replace fixtures.jsonl   # regenerate: same keys, same ids
  jq -c '{body: .statement, category: \"imported\",
         inputs: [.cases[] | {input: .in, output: .out}]}' problems.json | stratum load -
  stratum --dir old dump --high-water | stratum --dir new load --keep-ids")]
pub struct LoadArgs {
    /// The JSON Lines file; `-` or absent reads stdin (absent: not from a
    /// terminal).
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
    /// Keep the documents' "id" and "node" fields instead of assigning new
    /// ids.
    #[arg(long)]
    pub keep_ids: bool,
    /// What a line does whose key a live document holds: fail (exit 4),
    /// replace that document, or skip the line.
    #[arg(
        long,
        value_enum,
        default_value_t = OnConflictArg::Fail,
        value_name = "WHAT",
        conflicts_with = "keep_ids"
    )]
    pub on_conflict: OnConflictArg,
    #[command(flatten)]
    pub json: crate::cli::JsonAlready,
    /// With --keep-ids, accept ids so high that fewer than 2^32 ids would
    /// remain above them (one such id could end document or node creation
    /// for good).
    #[arg(long, requires = "keep_ids")]
    pub allow_high_ids: bool,
}

/// One line of input: a document, or the marks line of `dump --high-water`.
enum Line {
    Doc(ParsedDoc),
    Marks(DocId),
}

impl Line {
    /// Parses a line and checks what can be checked without the store.
    fn parse(text: &str, ids: Ids) -> stratum::Result<Line> {
        match Document::from_json(text) {
            Ok(doc) => {
                ids.check(&doc)?;
                Ok(Line::Doc(doc))
            }
            // The marks line is no document; looked for only here, so a
            // document line is read once.
            Err(e) => match input::high_water_marks(text) {
                Some(hwm) => {
                    ids.check_marks(hwm)?;
                    Ok(Line::Marks(hwm))
                }
                None => Err(e),
            },
        }
    }

    /// Appends the line, its number first, to a read-ahead record.
    fn spool_into(&self, number: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&number.to_le_bytes());
        match self {
            Line::Marks(hwm) => {
                out.push(0);
                out.extend_from_slice(&hwm.0.to_le_bytes());
            }
            Line::Doc(doc) => {
                out.push(1);
                doc.spool_into(out);
            }
        }
    }

    /// A record [`Line::spool_into`] made, with its line number.
    fn from_spool(record: &[u8]) -> stratum::Result<(u64, Line)> {
        let damaged = || {
            let e = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "input read ahead came back damaged",
            );
            Error::io("read", "<temporary file>", e)
        };
        let (number, rest) = record.split_first_chunk::<8>().ok_or_else(damaged)?;
        let line = match rest.split_first() {
            Some((0, hwm)) => {
                let hwm = hwm.try_into().map_err(|_| damaged())?;
                Line::Marks(DocId(u64::from_le_bytes(hwm)))
            }
            Some((1, doc)) => Line::Doc(ParsedDoc::from_spool(doc)?),
            _ => return Err(damaged()),
        };
        Ok((u64::from_le_bytes(*number), line))
    }
}

/// Where the pass under the lock takes its lines from.
enum Input {
    /// Parsed now (a regular file, which cannot stall).
    Lines(input::Lines),
    /// Parsed and checked already, ahead of the lock.
    Records(input::Records),
}

impl Input {
    /// Reads the next line (or record read ahead) into `raw`, unparsed;
    /// false at the end of input.
    ///
    /// # Errors
    /// One of reading.
    fn read_raw(&mut self, raw: &mut Raw) -> stratum::Result<bool> {
        let (number, end) = match self {
            // Checked to be UTF-8 where it is parsed (see [`Raw::parse`]).
            Input::Lines(lines) => match lines.next_line_bytes()? {
                Some((number, text)) => {
                    raw.text.extend_from_slice(text);
                    (number, raw.text.len())
                }
                None => return Ok(false),
            },
            Input::Records(records) => match records.next_record()? {
                Some(record) => {
                    raw.records.extend_from_slice(record);
                    (0, raw.records.len())
                }
                None => return Ok(false),
            },
        };
        raw.items.push((number, end, self.bytes()));
        Ok(true)
    }

    /// Bytes read so far, for progress.
    fn bytes(&self) -> u64 {
        match self {
            Input::Lines(lines) => lines.bytes(),
            Input::Records(records) => records.progress().0,
        }
    }

    /// Reads and parses the input on a thread of its own, handing its lines
    /// to `consume` in order, so the second core parses while this one
    /// writes. A batch of about [`BATCH_BYTES`] of input (or
    /// [`BATCH_LINES`] lines) that the writer
    /// would otherwise wait for goes to it unparsed, to parse itself: the
    /// two threads share the parsing as each has time. At most [`AHEAD`]
    /// batches wait between them, so memory stays bounded; once `consume`
    /// returns, the reader stops at its next batch.
    ///
    /// # Errors
    /// [`Error::Io`] when the thread cannot be started.
    fn pipe<T>(mut self, ids: Ids, consume: impl FnOnce(&mut Feed) -> T) -> Result<T, Error> {
        let (tx, rx) = mpsc::sync_channel::<(Batch, u64)>(AHEAD);
        let (back, used) = mpsc::sync_channel::<Batch>(AHEAD + 2);
        // Batches sent and not yet taken by the writer.
        let waiting = AtomicUsize::new(0);
        let waiting = &waiting;
        // Their input bytes.
        let waiting_bytes = AtomicU64::new(0);
        let waiting_bytes = &waiting_bytes;
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("load-reader".into())
                .spawn_scoped(scope, move || {
                    let mut last = false;
                    // A batch's buffers, used again for the next.
                    let mut spare: Option<Box<Raw>> = None;
                    while !last {
                        // Bytes bound what waits, not only batches: sixteen
                        // batches of one long line each would hold sixteen
                        // of the largest value. The writer hands a batch
                        // back each time it has taken the next one (and
                        // counted its bytes off), so each return is the
                        // moment to look again.
                        while waiting_bytes.load(Ordering::Acquire) > AHEAD_BYTES {
                            match used.recv() {
                                Ok(Batch::Raw(raw)) => spare = Some(raw),
                                Ok(Batch::Parsed(_)) => {}
                                Err(_) => return,
                            }
                        }
                        let mut raw = spare.take().unwrap_or_default();
                        raw.clear();
                        while raw.end.is_none()
                            && raw.len() < BATCH_BYTES
                            && raw.items.len() < BATCH_LINES
                        {
                            match self.read_raw(&mut raw) {
                                Ok(true) => {}
                                Ok(false) => raw.end = Some(Ok(None)),
                                Err(e) => raw.end = Some(Err(e)),
                            }
                        }
                        last = raw.end.is_some();
                        let size = raw.len();
                        let batch = if waiting.load(Ordering::Acquire) <= 1 && !raw.items.is_empty()
                        {
                            Batch::Raw(raw)
                        } else {
                            let mut parsed = Vec::with_capacity(raw.items.len() + 1);
                            for i in 0..raw.items.len() {
                                let read = raw.parse(i, ids);
                                // The writer stops at a refused line; so
                                // does the reader.
                                let refused = !matches!(read, Ok(Some((_, Ok(_), _))));
                                parsed.push(read);
                                if refused {
                                    last = true;
                                    break;
                                }
                            }
                            parsed.extend(raw.end.take());
                            spare = Some(raw);
                            Batch::Parsed(parsed)
                        };
                        // What the writer is done with is freed here,
                        // where it was allocated (freed there, it made the
                        // two threads contend for the allocator), or used
                        // again.
                        for done in used.try_iter() {
                            if let Batch::Raw(raw) = done {
                                spare = Some(raw);
                            }
                        }
                        waiting.fetch_add(1, Ordering::AcqRel);
                        waiting_bytes.fetch_add(size, Ordering::AcqRel);
                        if tx.send((batch, size)).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| Error::io("spawn", "<input reader thread>", e))?;
            let mut feed = Feed {
                batches: rx,
                back,
                waiting,
                waiting_bytes,
                batch: Batch::Parsed(Vec::new()),
                at: 0,
                ids,
                parsed: Ok(None),
            };
            let out = consume(&mut feed);
            // The receiver goes: a reader waiting to send stops.
            drop(feed);
            Ok(out)
        })
    }
}

/// A batch of input on its way from the reader to the writer.
enum Batch {
    /// Parsed by the reader, in order; after the last line, the end of
    /// input or a read error, if the batch met one.
    Parsed(Vec<Read>),
    /// Read but not parsed, for the writer to parse.
    Raw(Box<Raw>),
}

impl Batch {
    fn len(&self) -> usize {
        match self {
            Batch::Parsed(v) => v.len(),
            Batch::Raw(raw) => raw.items.len() + usize::from(raw.end.is_some()),
        }
    }
}

/// Lines (or records read ahead) as read, one after another.
#[derive(Default)]
struct Raw {
    /// The lines' bytes, not yet checked to be UTF-8.
    text: Vec<u8>,
    /// The records' bytes.
    records: Vec<u8>,
    /// Each one's line number (0 for a record, which holds its own), where
    /// its bytes end, and the input's bytes read up to its end.
    items: Vec<(u64, usize, u64)>,
    /// After them, the end of input or a read error, if the batch met one.
    end: Option<Read>,
}

impl Raw {
    /// Empties it, keeping its buffers.
    fn clear(&mut self) {
        self.text.clear();
        self.records.clear();
        self.items.clear();
        self.end = None;
    }

    /// Bytes held.
    fn len(&self) -> u64 {
        (self.text.len() + self.records.len()) as u64
    }

    /// Item `i` parsed (see [`Read`]).
    fn parse(&self, i: usize, ids: Ids) -> Read {
        let start = i.checked_sub(1).map_or(0, |j| self.items[j].1);
        let (number, end, bytes) = self.items[i];
        if number == 0 {
            let record = self.records.get(start..end).unwrap_or_default();
            Line::from_spool(record).map(|(n, line)| Some((n, Ok(line), bytes)))
        } else {
            // Checked here, not as it was read: the writer takes a share
            // of the batches to parse, and of this pass with them. A line
            // that is not UTF-8 fails as a read error, naming itself.
            let text = input::line_text(number, self.text.get(start..end).unwrap_or_default())?;
            Ok(Some((number, Line::parse(text, ids), bytes)))
        }
    }
}

/// The writer's end of [`Input::pipe`]: the lines in order, lent one at a
/// time; each batch goes back to the reader once it is used.
struct Feed<'a> {
    batches: mpsc::Receiver<(Batch, u64)>,
    back: mpsc::SyncSender<Batch>,
    waiting: &'a AtomicUsize,
    waiting_bytes: &'a AtomicU64,
    batch: Batch,
    at: usize,
    ids: Ids,
    /// The line of a raw batch this side parsed last.
    parsed: Read,
}

impl Feed<'_> {
    /// The next line's number, the line or why it was refused, and the
    /// input's bytes read up to its end; `None` at the end of input.
    ///
    /// # Errors
    /// One of reading (naming its own line, if any).
    fn next(&mut self) -> stratum::Result<Option<(u64, stratum::Result<&Line>, u64)>> {
        while self.at >= self.batch.len() {
            self.at = 0;
            let used = match self.batches.recv() {
                Ok((batch, size)) => {
                    self.waiting_bytes.fetch_sub(size, Ordering::AcqRel);
                    std::mem::replace(&mut self.batch, batch)
                }
                Err(_) => return Ok(None),
            };
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            // After the count, which a reader waiting on bytes looks at
            // when this arrives. A full return channel means the reader has
            // stopped taking them: this one is freed here.
            let _ = self.back.try_send(used);
        }
        let at = self.at;
        self.at += 1;
        let slot = match &mut self.batch {
            Batch::Parsed(v) => &mut v[at],
            Batch::Raw(raw) => {
                self.parsed = match raw.items.len() {
                    n if at < n => raw.parse(at, self.ids),
                    _ => raw.end.take().unwrap_or(Ok(None)),
                };
                &mut self.parsed
            }
        };
        if !matches!(slot, Ok(Some((_, Ok(_), _)))) {
            // The end, or an error: the last item the writer takes.
            return match std::mem::replace(slot, Ok(None)) {
                Ok(Some((number, Err(e), bytes))) => Ok(Some((number, Err(e), bytes))),
                Ok(_) => Ok(None),
                Err(e) => Err(e),
            };
        }
        match slot {
            Ok(Some((number, Ok(line), bytes))) => Ok(Some((*number, Ok(&*line), *bytes))),
            _ => Ok(None),
        }
    }
}

/// What the reader hands on for one line: its number, the line or why it
/// was refused, and the input's bytes read up to its end; `None` at the
/// end of input; an error of reading.
type Read = stratum::Result<Option<(u64, stratum::Result<Line>, u64)>>;

/// Input bytes the reader puts in one batch for the writer.
const BATCH_BYTES: u64 = 256 << 10;

/// Most lines in one batch: a parsed line holds a few allocations beyond
/// its text, which for small documents outweigh it (5,000 lines of 50
/// bytes in a batch held 2.3 MB parsed).
const BATCH_LINES: usize = 1024;

/// Batches the reader may have ready ahead of the writer: enough to go on
/// parsing while the writer seals a segment (its index written and
/// synced, some 10 ms, in which the reader parses 5 MB), instead of
/// waiting for it after two.
const AHEAD: usize = 16;

/// Input bytes of the batches waiting, past which the reader waits: as
/// many as [`AHEAD`] full batches.
const AHEAD_BYTES: u64 = AHEAD as u64 * BATCH_BYTES;

/// Runs `load`.
///
/// # Errors
/// Invalid input naming the line, lock timeout, corruption, I/O.
pub fn run(g: &GlobalArgs, args: LoadArgs) -> anyhow::Result<()> {
    if args.file.is_none() {
        input::absent_reads_stdin("FILE")?;
    }
    let name = args
        .file
        .as_ref()
        .filter(|p| p.as_os_str() != "-")
        .map_or_else(|| STDIN.to_owned(), |p| p.display().to_string());
    let on_conflict = stratum::OnConflict::from(args.on_conflict);
    let id_source = match (args.keep_ids, args.allow_high_ids) {
        (false, _) => Ids::Assign,
        (true, false) => Ids::Keep,
        (true, true) => Ids::KeepHigh,
    };
    // Input that could stall is read, parsed and checked before the lock,
    // and kept parsed, so that each line is parsed once either way.
    let ahead = Source::open(args.file.as_deref())?.read_ahead_records(
        &name,
        &g.dir,
        &mut |number, text, record| {
            let line = Line::parse(text, id_source).map_err(|e| at_line(e, number))?;
            line.spool_into(number, record);
            Ok(())
        },
    )?;
    let (input, total) = match ahead {
        Ahead::Kept(records) => {
            let total = records.progress().1;
            (Input::Records(records), Some(total))
        }
        Ahead::Unread(source) => {
            let total = source.total_bytes();
            (Input::Lines(source.lines(&name)), total)
        }
    };
    let bar = output::Bar::new(g.quiet, "load", total);
    let mut store = g.open()?;
    let mut current = 0u64;
    // About what the batch writes, so that one larger than a segment
    // writes its segments from the first record.
    let expected = total.unwrap_or(0);
    let result = input.pipe(id_source, |feed| {
        store.atomic_expecting(expected, |store| {
            let mut ids: Vec<DocId> = Vec::new();
            loop {
                // Zero while reading: a read error names its own line, if any.
                current = 0;
                let Some((number, line, bytes)) = feed.next()? else {
                    break;
                };
                current = number;
                match line? {
                    Line::Marks(hwm) => {
                        if id_source.keeps() {
                            store.reserve_doc_ids(*hwm, id_source)?;
                        }
                    }
                    Line::Doc(parsed) => {
                        let id = store.load_doc_or(parsed, id_source, on_conflict)?.id();
                        ids.push(id);
                    }
                }
                bar.set(bytes);
            }
            Ok(ids)
        })
    })?;
    bar.finish();
    let ids = result.map_err(|e| at_line(e, current))?;
    drop(store);
    output::report_write(
        || format!("all {} documents were loaded", ids.len()),
        |out| ids.iter().try_for_each(|id| writeln!(out, "{id}")),
    )?;
    Ok(())
}
