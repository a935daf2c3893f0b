//! Reading what a command writes: a JSON value or a body, from an argument,
//! from stdin (`-`), or from a file; and JSON Lines streams for `load` and
//! `apply`.
//!
//! Everything a single-value command takes is read and validated here
//! before the store is opened, so a refused command never touches the disk.
//! Stdin is capped so that a runaway producer cannot exhaust memory.
//!
//! The stdin rule, the same for every command that takes data (`create-doc`,
//! `add-input`, `set-output`, `load`, `apply`): a value left out is read
//! from stdin, as `-` is; but when stdin is a terminal a left-out value is a
//! usage error, not a silent wait (`-` still reads the terminal, for typing
//! a value by hand). `update-doc` is the exception: a left-out body means
//! "keep the body".

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, IsTerminal, Read};
use std::path::Path;

use crate::cli::UsageError;
use stratum::{Error, Json, Result};

/// Most bytes read from stdin (or a `--file`) for one value or body: the
/// engine's record payload limit.
pub const MAX_INPUT: u64 = stratum::engine::format::MAX_PAYLOAD as u64;

/// Longest line accepted by `load` and `apply`: a maximal body in base64,
/// with room for its other fields.
pub const MAX_LINE: u64 = MAX_INPUT / 3 * 4 + 4 * 1024 * 1024;

/// Name used for stdin in error messages.
pub const STDIN: &str = "<stdin>";

/// Checks the stdin rule (see the module doc) for a value the command line
/// left out: `what` names it, as in the usage line (`VALUE`, `BODY`).
///
/// # Errors
/// [`UsageError`] when stdin is a terminal.
pub fn absent_reads_stdin(what: &str) -> std::result::Result<(), UsageError> {
    if io::stdin().is_terminal() {
        return Err(UsageError(format!(
            "no {what} given, and stdin is a terminal: give {what} as an argument, pipe it in, or give `-` to type it"
        )));
    }
    Ok(())
}

/// Reads stdin to the end, refusing more than [`MAX_INPUT`] bytes.
///
/// # Errors
/// [`Error::InvalidInput`] when stdin is larger; [`Error::Io`].
pub fn read_stdin() -> Result<Vec<u8>> {
    read_capped(io::stdin().lock(), STDIN)
}

/// Reads a whole file, refusing more than [`MAX_INPUT`] bytes.
///
/// # Errors
/// [`Error::InvalidInput`] when the file is larger; [`Error::Io`].
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    read_capped(file, &path.display().to_string())
}

fn read_capped(reader: impl Read, name: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    // One byte more than the limit tells "exactly at the limit" from "over".
    reader
        .take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("read", name, e))?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(Error::invalid(format!(
            "{name} holds more than {MAX_INPUT} bytes, the most one value or body may have"
        )));
    }
    Ok(buf)
}

/// A body from the positional argument (`-` = stdin) or `--file`; `None`
/// when neither was given. Clap already refuses both at once.
///
/// # Errors
/// As [`read_stdin`] and [`read_file`].
pub fn body(arg: Option<OsString>, file: Option<&Path>) -> Result<Option<Vec<u8>>> {
    match (arg, file) {
        (Some(a), _) if a == "-" => read_stdin().map(Some),
        (Some(a), _) => Ok(Some(os_bytes(a))),
        (None, Some(path)) => read_file(path).map(Some),
        (None, None) => Ok(None),
    }
}

/// The bytes of an argument exactly as the shell passed them, so a body
/// given on the command line may be any bytes, not only UTF-8.
fn os_bytes(arg: OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt;
    arg.into_vec()
}

/// A JSON value from an argument, or from stdin when the argument is `-` or
/// absent. `what` names the value in error messages.
///
/// # Errors
/// [`Error::InvalidInput`] for bad JSON, non-UTF-8 stdin or too much of it;
/// [`Error::Io`].
pub fn json_value(arg: Option<&str>, what: &str) -> Result<Json> {
    match arg {
        Some(text) if text != "-" => parse_json(text, what),
        _ => {
            let bytes = read_stdin()?;
            let text = std::str::from_utf8(&bytes)
                .map_err(|e| Error::invalid(format!("{what} on stdin is not UTF-8 text: {e}")))?;
            parse_json(text, what)
        }
    }
}

/// Parses `text` as one JSON value, naming `what` in the error.
///
/// # Errors
/// [`Error::InvalidInput`].
pub fn parse_json(text: &str, what: &str) -> Result<Json> {
    Json::parse(text).map_err(|e| name_field(e, what))
}

/// As [`parse_json`], for a value serde_json has already parsed as part of a
/// larger line (`apply`), so it is not validated twice.
///
/// # Errors
/// [`Error::InvalidInput`] naming `what`, when nested too deep.
pub fn raw_json(raw: &serde_json::value::RawValue, what: &str) -> Result<Json> {
    Json::from_raw(raw).map_err(|e| name_field(e, what))
}

fn name_field(e: Error, what: &str) -> Error {
    match e {
        Error::InvalidInput(msg) => Error::invalid(format!("{what}: {msg}")),
        other => other,
    }
}

/// A `--meta` value: a JSON object.
///
/// # Errors
/// [`Error::InvalidInput`] for bad JSON or a value that is not an object.
pub fn meta(text: &str) -> Result<Json> {
    let value = parse_json(text, "meta")?;
    stratum::model::check_meta(&value)?;
    Ok(value)
}

/// Most bytes of read-ahead input kept in memory; past this the rest goes
/// to an unnamed temporary file, so memory stays bounded whatever the input.
const SPOOL_MEMORY: usize = 8 << 20;

/// The last line of `dump --high-water`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Marks {
    high_water: DocMark,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DocMark {
    doc: u64,
}

/// The document high-water mark, when `text` is the marks line of `dump
/// --high-water` (`{"high_water":{"doc":N}}`) rather than a document.
pub fn high_water_marks(text: &str) -> Option<stratum::DocId> {
    serde_json::from_str::<Marks>(text)
        .ok()
        .map(|m| stratum::DocId(m.high_water.doc))
}

/// Where a JSON Lines stream comes from.
pub enum Source {
    /// Standard input.
    Stdin,
    /// A file, with its size for progress.
    File(File, u64),
    /// Input read ahead of the lock ([`Source::read_ahead`]), with its size.
    Spooled(Box<dyn Read + Send>, u64),
}

/// Where read-ahead input (or `apply`'s report, kept until its batch is
/// committed) is kept: memory first, then an unnamed file.
pub enum Spool {
    Memory(Vec<u8>),
    File(io::BufWriter<File>, u64),
}

impl Spool {
    /// Appends `bytes`, moving to an unnamed file in `dir` (see
    /// [`unnamed_file`]) past 8 MiB.
    ///
    /// # Errors
    /// The temporary file's.
    pub fn write(&mut self, bytes: &[u8], dir: &Path) -> io::Result<()> {
        if let Spool::Memory(buf) = self {
            if buf.len() + bytes.len() <= SPOOL_MEMORY {
                buf.extend_from_slice(bytes);
                return Ok(());
            }
            let mut file = io::BufWriter::with_capacity(1 << 20, unnamed_file(dir)?);
            io::Write::write_all(&mut file, buf)?;
            *self = Spool::File(file, buf.len() as u64);
        }
        if let Spool::File(file, len) = self {
            io::Write::write_all(file, bytes)?;
            *len += bytes.len() as u64;
        }
        Ok(())
    }

    /// A reader over everything written, and its length.
    ///
    /// # Errors
    /// The temporary file's.
    pub fn into_reader(self) -> io::Result<(Box<dyn Read + Send>, u64)> {
        Ok(match self {
            Spool::Memory(buf) => {
                let len = buf.len() as u64;
                (Box::new(io::Cursor::new(buf)), len)
            }
            Spool::File(file, len) => {
                let mut file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
                io::Seek::rewind(&mut file)?;
                (Box::new(file), len)
            }
        })
    }
}

/// Standard input copied to an unnamed temporary file (see
/// [`unnamed_file`]) and rewound, for a reader that passes over its input
/// twice.
///
/// # Errors
/// [`Error::Io`].
pub fn spool_stdin(dir: &Path) -> Result<File> {
    let mut file = unnamed_file(dir).map_err(|e| Error::io("create", TMP, e))?;
    io::copy(&mut io::stdin().lock(), &mut file).map_err(|e| Error::io("spool", STDIN, e))?;
    io::Seek::rewind(&mut file).map_err(|e| Error::io("seek", TMP, e))?;
    Ok(file)
}

/// A temporary file without a name (`O_TMPFILE`): in `dir` (for input, the
/// data directory: the disk the data is going to) when it exists, else in
/// the system's temporary directory. Having no name, it can never be left
/// behind, nor be taken for a file of the store.
///
/// # Errors
/// The `open`'s, when neither directory takes one.
pub fn unnamed_file(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |d: &Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(d)
    };
    open(dir).or_else(|_| open(&std::env::temp_dir()))
}

/// Whether reads from `file` can wait on another process: anything but a
/// regular file (a pipe, a terminal, a FIFO, a socket).
fn can_stall(file: &File) -> bool {
    file.metadata().map_or(true, |m| !m.is_file())
}

impl Source {
    /// Opens the `FILE|-` argument of `load` and `apply`; absent means stdin.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened.
    pub fn open(arg: Option<&Path>) -> Result<Source> {
        match arg {
            None => Ok(Source::Stdin),
            Some(p) if p.as_os_str() == "-" => Ok(Source::Stdin),
            Some(p) => {
                let file = File::open(p).map_err(|e| Error::io("open", p, e))?;
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                Ok(Source::File(file, len))
            }
        }
    }

    /// Total bytes when known (a regular file), for the progress bar.
    pub fn total_bytes(&self) -> Option<u64> {
        match self {
            Source::Stdin => None,
            Source::File(_, n) | Source::Spooled(_, n) => Some(*n),
        }
    }

    /// A buffered line reader over the source; `name` is for messages.
    pub fn lines(self, name: &str) -> Lines {
        let inner: Box<dyn Read + Send> = match self {
            Source::Stdin => Box::new(io::stdin()),
            Source::File(f, _) => Box::new(f),
            Source::Spooled(r, _) => r,
        };
        Lines {
            reader: io::BufReader::with_capacity(1 << 20, inner),
            buf: Vec::new(),
            number: 0,
            bytes: 0,
            name: name.to_owned(),
            spool: None,
        }
    }

    /// Reads input that could stall (stdin from a pipe: `(echo …; sleep
    /// 3; echo …) | stratum load`) to its end before the store is locked,
    /// so a slow producer never holds up other readers and writers. Each
    /// line is checked with `check` on the way, so bad input is refused
    /// before the store is touched; the bytes are kept (memory up to 8 MiB,
    /// then an unnamed file in `dir`) for the pass under the lock, which
    /// sees the same lines with the same numbers. A regular file cannot
    /// stall and is returned as it is.
    ///
    /// # Errors
    /// What `check` returns; reading errors as [`Lines::next_line`]; an I/O
    /// error from the temporary file.
    pub fn read_ahead(
        self,
        name: &str,
        dir: &Path,
        check: &mut dyn FnMut(u64, &str) -> anyhow::Result<()>,
    ) -> anyhow::Result<Source> {
        if !self.can_stall() {
            return Ok(self);
        }
        let mut lines = self.lines(name);
        lines.spool = Some((Spool::Memory(Vec::new()), dir.to_path_buf()));
        while let Some((number, text)) = lines.next_line()? {
            check(number, text)?;
        }
        let spool = lines.spool.take().map(|(s, _)| s);
        match spool {
            Some(s) => {
                let (reader, len) = s.into_reader().map_err(|e| Error::io("spool", TMP, e))?;
                Ok(Source::Spooled(reader, len))
            }
            None => Ok(Source::Spooled(Box::new(io::empty()), 0)),
        }
    }

    /// As [`Source::read_ahead`], but what is kept of each line is the
    /// record `keep` makes of it (`load` keeps the parsed document), so
    /// the pass under the lock reads records instead of parsing the lines
    /// again. A source that cannot stall is handed back unread.
    ///
    /// # Errors
    /// What `keep` returns; reading errors as [`Lines::next_line`]; an I/O
    /// error from the temporary file.
    pub fn read_ahead_records(
        self,
        name: &str,
        dir: &Path,
        keep: &mut Keep<'_>,
    ) -> anyhow::Result<Ahead> {
        if !self.can_stall() {
            return Ok(Ahead::Unread(self));
        }
        let mut lines = self.lines(name);
        let mut spool = Spool::Memory(Vec::new());
        let mut record = Vec::new();
        while let Some((number, text)) = lines.next_line()? {
            record.clear();
            record.extend_from_slice(&[0; 4]);
            keep(number, text, &mut record)?;
            // A record holds one line, at most MAX_LINE bytes, and a little.
            let len = u32::try_from(record.len() - 4).unwrap_or(u32::MAX);
            record[..4].copy_from_slice(&len.to_le_bytes());
            spool
                .write(&record, dir)
                .map_err(|e| Error::io("spool", TMP, e))?;
        }
        let (reader, total) = spool
            .into_reader()
            .map_err(|e| Error::io("spool", TMP, e))?;
        Ok(Ahead::Kept(Records {
            reader: io::BufReader::with_capacity(1 << 20, reader),
            buf: Vec::new(),
            bytes: 0,
            total,
        }))
    }

    /// Whether reads can wait on another process (see [`can_stall`]).
    fn can_stall(&self) -> bool {
        match self {
            Source::Stdin => {
                use std::os::fd::AsFd;
                io::stdin()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_or(true, |fd| can_stall(&File::from(fd)))
            }
            Source::File(f, _) => can_stall(f),
            Source::Spooled(..) => false,
        }
    }
}

/// What [`Source::read_ahead_records`] does with each line (number, text):
/// appends the record to keep to the buffer, or refuses the line.
pub type Keep<'a> = dyn FnMut(u64, &str, &mut Vec<u8>) -> anyhow::Result<()> + 'a;

/// The name of the read-ahead file in messages.
const TMP: &str = "<temporary file>";

/// What [`Source::read_ahead_records`] did with its source.
pub enum Ahead {
    /// Read to the end, and kept as records.
    Kept(Records),
    /// Not read: it cannot stall.
    Unread(Source),
}

/// The records of [`Source::read_ahead_records`], in order.
pub struct Records {
    reader: io::BufReader<Box<dyn Read + Send>>,
    buf: Vec<u8>,
    bytes: u64,
    total: u64,
}

impl Records {
    /// The next record; `None` after the last.
    ///
    /// # Errors
    /// [`Error::Io`] from the temporary file.
    pub fn next_record(&mut self) -> Result<Option<&[u8]>> {
        let mut len = [0; 4];
        match self.reader.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::io("read", TMP, e)),
        }
        let len = u32::from_le_bytes(len);
        self.buf.clear();
        (&mut self.reader)
            .take(u64::from(len))
            .read_to_end(&mut self.buf)
            .map_err(|e| Error::io("read", TMP, e))?;
        if self.buf.len() as u64 != u64::from(len) {
            let e = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "input read ahead came back short",
            );
            return Err(Error::io("read", TMP, e));
        }
        self.bytes += 4 + u64::from(len);
        Ok(Some(&self.buf))
    }

    /// Bytes read so far, and in all, for progress.
    pub fn progress(&self) -> (u64, u64) {
        (self.bytes, self.total)
    }
}

/// Reads a JSON Lines stream one line at a time, reusing one buffer.
pub struct Lines {
    reader: io::BufReader<Box<dyn Read + Send>>,
    buf: Vec<u8>,
    number: u64,
    bytes: u64,
    name: String,
    /// While reading ahead: where every byte read is kept, and the
    /// directory for its temporary file.
    spool: Option<(Spool, std::path::PathBuf)>,
}

impl Lines {
    /// The next line that is not blank, with its 1-based line number;
    /// `None` at end of input. The text excludes the line ending.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a line that is not UTF-8 or longer than
    /// [`MAX_LINE`] (the message names the line); [`Error::Io`].
    pub fn next_line(&mut self) -> Result<Option<(u64, &str)>> {
        match self.next_line_bytes()? {
            Some((number, bytes)) => Ok(Some((number, line_text(number, bytes)?))),
            None => Ok(None),
        }
    }

    /// [`Lines::next_line`] with its text not yet checked to be UTF-8: for
    /// `load`, which checks it with [`line_text`] on whichever thread
    /// parses it.
    ///
    /// # Errors
    /// As [`Lines::next_line`], but for UTF-8.
    pub fn next_line_bytes(&mut self) -> Result<Option<(u64, &[u8])>> {
        loop {
            self.buf.clear();
            let n = (&mut self.reader)
                .take(MAX_LINE + 1)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| Error::io("read", self.name.as_str(), e))?;
            if n == 0 {
                return Ok(None);
            }
            self.number += 1;
            self.bytes += n as u64;
            if let Some((spool, dir)) = &mut self.spool {
                spool
                    .write(&self.buf, dir)
                    .map_err(|e| Error::io("spool", TMP, e))?;
            }
            if self.buf.len() as u64 > MAX_LINE {
                return Err(Error::invalid(format!(
                    "line {}: longer than {MAX_LINE} bytes",
                    self.number
                )));
            }
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some((self.number, &self.buf)));
        }
    }

    /// Bytes consumed so far, for progress.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Line `number`'s bytes as text, or the error that names it: what
/// [`Lines::next_line`] makes of a line [`Lines::next_line_bytes`] read.
///
/// # Errors
/// [`Error::InvalidInput`] for a line that is not UTF-8.
pub fn line_text(number: u64, bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes)
        .map_err(|e| Error::invalid(format!("line {number}: not UTF-8 text: {e}")))
}

/// Names the line of `load` or `apply` input an error came from. `line` is
/// 0 for an error met while reading, which is not one line's doing or
/// names its line itself ([`Lines::next_line`]): the callers set it so, not
/// this function by reading the message.
pub fn at_line(e: Error, line: u64) -> anyhow::Error {
    if line == 0 {
        e.into()
    } else {
        anyhow::Error::new(e).context(format!("line {line}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(data: &'static [u8]) -> Lines {
        Lines {
            reader: io::BufReader::new(Box::new(data)),
            buf: Vec::new(),
            number: 0,
            bytes: 0,
            name: "test".into(),
            spool: None,
        }
    }

    #[test]
    fn lines_skip_blanks_and_keep_numbers() {
        let mut l = lines_of(b"a\r\n\n  \nb\nc");
        assert_eq!(l.next_line().unwrap(), Some((1, "a")));
        assert_eq!(l.next_line().unwrap(), Some((4, "b")));
        assert_eq!(l.next_line().unwrap(), Some((5, "c")));
        assert_eq!(l.next_line().unwrap(), None);
        assert_eq!(l.bytes(), 10);
    }

    #[test]
    fn lines_refuse_non_utf8_with_the_line_number() {
        let mut l = lines_of(b"ok\n\xff\n");
        assert!(l.next_line().unwrap().is_some());
        let err = l.next_line().unwrap_err().to_string();
        assert!(err.starts_with("line 2: not UTF-8"), "{err}");
    }

    #[test]
    fn capped_reads_refuse_one_byte_over() {
        let exact = [b'x'; 10];
        assert!(read_capped(&exact[..], "t").is_ok());
        let big = io::repeat(b'x').take(MAX_INPUT + 1);
        assert!(matches!(read_capped(big, "t"), Err(Error::InvalidInput(_))));
    }
}
