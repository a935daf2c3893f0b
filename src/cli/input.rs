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

/// An expected output to store: `null` stands for "no output" in the `get`
/// shape, so storing it would make a node whose output cannot be told from
/// an unset one (and would not survive `dump | load`).
///
/// # Errors
/// [`Error::InvalidInput`] for `null`.
pub fn settable_output(value: Json) -> Result<Json> {
    if value.as_str() == "null" {
        return Err(Error::invalid(
            "an expected output cannot be null: null means \"no expected output\" (to remove one, delete the input node and add it again)",
        ));
    }
    Ok(value)
}

/// Where a JSON Lines stream comes from.
pub enum Source {
    /// Standard input.
    Stdin,
    /// A file, with its size for progress.
    File(File, u64),
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
            Source::File(_, n) => Some(*n),
        }
    }

    /// A buffered line reader over the source; `name` is for messages.
    pub fn lines(self, name: &str) -> Lines {
        let inner: Box<dyn Read> = match self {
            Source::Stdin => Box::new(io::stdin()),
            Source::File(f, _) => Box::new(f),
        };
        Lines {
            reader: io::BufReader::with_capacity(1 << 20, inner),
            buf: Vec::new(),
            number: 0,
            bytes: 0,
            name: name.to_owned(),
        }
    }
}

/// Reads a JSON Lines stream one line at a time, reusing one buffer.
pub struct Lines {
    reader: io::BufReader<Box<dyn Read>>,
    buf: Vec<u8>,
    number: u64,
    bytes: u64,
    name: String,
}

impl Lines {
    /// The next line that is not blank, with its 1-based line number;
    /// `None` at end of input. The text excludes the line ending.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a line that is not UTF-8 or longer than
    /// [`MAX_LINE`] (the message names the line); [`Error::Io`].
    pub fn next_line(&mut self) -> Result<Option<(u64, &str)>> {
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
            let number = self.number;
            let text = std::str::from_utf8(&self.buf)
                .map_err(|e| Error::invalid(format!("line {number}: not UTF-8 text: {e}")))?;
            return Ok(Some((number, text)));
        }
    }

    /// Bytes consumed so far, for progress.
    pub fn bytes(&self) -> u64 {
        self.bytes
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
