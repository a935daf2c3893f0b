//! Everything a command shows: buffered stdout for JSON and JSON Lines,
//! comfy-table views for people, and the progress bar.
//!
//! Machine output goes to stdout through one locked, buffered handle and
//! every write error is propagated, so a closed pipe ends the command
//! quietly (see `src/exit.rs`) instead of panicking like `println!`. Tables
//! fit the terminal when stdout is one and are plain ASCII otherwise;
//! `NO_COLOR` turns off all styling. The progress bar is drawn on stderr
//! only, and only when stderr is a terminal, so it never reaches a pipe or a
//! log file.

use std::io::{self, BufWriter, IsTerminal, StdoutLock, Write};

use comfy_table::{
    Attribute, Cell, CellAlignment, ColumnConstraint, ContentArrangement, LineStyle, Table,
    TableStyle, Width, presets,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{ColorChoice, Unreported};
use stratum::{Error, Progress};

/// Name used for stdout in error messages.
pub const STDOUT: &str = "<stdout>";

/// Widest a value is shown in a table when stdout is not a terminal.
const PLAIN_VALUE_WIDTH: usize = 60;

/// The buffered stdout every command writes through.
pub type Out = BufWriter<StdoutLock<'static>>;

/// Locks stdout behind a large buffer.
pub fn stdout() -> Out {
    BufWriter::with_capacity(64 * 1024, io::stdout().lock())
}

/// Turns a failed write to stdout into a library error, for use inside the
/// callbacks the store calls (a broken pipe stays recognisable in its
/// source, so it still exits quietly).
pub fn write_err(e: io::Error) -> Error {
    Error::io("write", STDOUT, e)
}

/// Prints the report of a write that is already durable: `write` fills
/// stdout, and any failure, a closed stdout included, becomes
/// [`Unreported`] saying `done` (exit 8), never "nothing happened".
///
/// # Errors
/// [`Unreported`].
pub fn report_write(
    done: impl FnOnce() -> String,
    write: impl FnOnce(&mut Out) -> io::Result<()>,
) -> Result<(), Unreported> {
    let mut out = stdout();
    write(&mut out)
        .and_then(|()| out.flush())
        .map_err(|source| Unreported {
            done: done(),
            source,
        })
}

/// Writes `value` as one line of JSON.
///
/// # Errors
/// The write error.
pub fn write_json_line<T: serde::Serialize>(out: &mut impl Write, value: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// `--color`, set once by `cli::run` before any command writes.
static COLOR: std::sync::OnceLock<ColorChoice> = std::sync::OnceLock::new();

/// Records the `--color` choice for [`styled`].
pub fn set_color(choice: ColorChoice) {
    let _ = COLOR.set(choice);
}

/// Whether styling (bold headers) may be used. `--color=always` and
/// `never` decide; `auto` (the default) styles when stdout is a terminal,
/// `NO_COLOR` is unset or empty (<https://no-color.org>) and `TERM` names a
/// terminal other than `dumb`, as ripgrep and fd do.
pub fn styled() -> bool {
    match COLOR.get().copied().unwrap_or(ColorChoice::Auto) {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => io::stdout().is_terminal() && env_allows_color(),
    }
}

/// The environment's half of `--color=auto`: `NO_COLOR` unset or empty, and
/// `TERM` set to something other than `dumb`. (Help and usage text follow
/// the same rule; clap's own would also colour a dumb terminal when `CI`
/// is set.)
pub fn env_allows_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_some_and(|t| !t.is_empty() && t != "dumb")
}

/// The garbage figure as `stats` and `compact` both show it: "28K of 40K,
/// ratio 0.700".
pub fn garbage_text(garbage: u64, total: u64, ratio: f64) -> String {
    format!(
        "{} of {}, ratio {ratio:.3}",
        human_size(garbage),
        human_size(total)
    )
}

/// `n` and `noun`, plural unless `n` is 1: "1 segment", "3 segments".
pub fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// What `dump --salvage` and `repair` left out besides damaged bytes, for
/// their summary lines.
pub fn uncommitted_note(records: u64) -> String {
    if records == 0 {
        String::new()
    } else {
        format!(
            ", {records} intact records of a batch left out: its commit record is missing at the end of a file, so it was never acknowledged"
        )
    }
}

/// A byte count for people, as `du -h` and `ls -lh` print it: plain below
/// 1024, else one decimal below 10 and none above, in binary K, M, G, T, P
/// units, rounded up so that a size is never shown smaller than it is.
/// JSON output keeps exact bytes.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut unit = 0;
    let mut scale: u128 = 1024;
    while u128::from(bytes) >= scale * 1024 && unit + 1 < UNITS.len() {
        scale *= 1024;
        unit += 1;
    }
    let b = u128::from(bytes);
    // Tenths, rounded up; at 10 and above whole units, rounded up.
    let tenths = (b * 10).div_ceil(scale);
    let (text, carried) = if tenths < 100 {
        (format!("{}.{}", tenths / 10, tenths % 10), false)
    } else {
        let whole = b.div_ceil(scale);
        (whole.to_string(), whole >= 1024)
    };
    if carried && unit + 1 < UNITS.len() {
        // 1023.9K rounds up to 1.0M.
        return format!("1.0{}", UNITS[unit + 1]);
    }
    format!("{text}{}", UNITS[unit])
}

fn style() -> TableStyle {
    if io::stdout().is_terminal() {
        presets::UTF8_FULL_CONDENSED
    } else {
        presets::ASCII_FULL_CONDENSED
    }
}

fn header_cells(headers: &[&str]) -> Vec<Cell> {
    let bold = styled();
    headers
        .iter()
        .map(|h| {
            let c = Cell::new(h);
            if bold {
                c.add_attribute(Attribute::Bold)
            } else {
                c
            }
        })
        .collect()
}

/// A table with these column headers: box-drawn and fitted to the terminal
/// width on a terminal, plain ASCII and unwrapped otherwise.
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(style());
    if io::stdout().is_terminal() {
        match terminal_width() {
            Some(w) => t
                .set_width(w)
                .set_content_arrangement(ContentArrangement::Dynamic),
            None => t.set_content_arrangement(ContentArrangement::Disabled),
        };
    } else {
        t.force_no_tty()
            .set_content_arrangement(ContentArrangement::Disabled);
    }
    t.set_header(header_cells(headers));
    t
}

/// Rows per comfy-table page of a [`LongTable`].
const PAGE_ROWS: usize = 512;

/// A table whose row count grows with the store (`list`, `diff`).
/// comfy-table holds about 2 KB per row while it renders, so rows are kept
/// here as plain text (in memory up to a few MiB, then in an unnamed file
/// in the system's temporary directory) with the widest cell of each column
/// so far, and rendered in pages that share one set of column widths: the
/// output is one seamless table, and memory stays flat however many rows.
pub struct LongTable {
    headers: Vec<&'static str>,
    right: Vec<usize>,
    /// The widest cell of each column so far, headers included.
    widest: Vec<usize>,
    /// The rows, each cell as a `u32` length and its text.
    rows: crate::cli::input::Spool,
    count: usize,
    /// The first error from the spool's file, returned by
    /// [`LongTable::write`].
    failed: Option<io::Error>,
}

impl LongTable {
    /// A table with these headers; columns in `right` are right-aligned.
    pub fn new(headers: &[&'static str], right: &[usize]) -> LongTable {
        LongTable {
            headers: headers.to_vec(),
            right: right.to_vec(),
            widest: headers.iter().map(|h| h.chars().count()).collect(),
            rows: crate::cli::input::Spool::Memory(Vec::new()),
            count: 0,
            failed: None,
        }
    }

    /// Adds a row (one string per column, as many as the headers);
    /// control characters in a cell are escaped ([`escape_controls`]).
    pub fn push(&mut self, row: Vec<String>) {
        if self.failed.is_some() {
            return;
        }
        let mut bytes = Vec::new();
        for (i, cell) in (0..self.headers.len()).map(|i| (i, row.get(i).map_or("", String::as_str)))
        {
            let cell = escape_controls(cell);
            if let Some(w) = self.widest.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
            bytes.extend_from_slice(&u32::try_from(cell.len()).unwrap_or(u32::MAX).to_le_bytes());
            bytes.extend_from_slice(cell.as_bytes());
        }
        match self.rows.write(&bytes, &std::env::temp_dir()) {
            Ok(()) => self.count += 1,
            Err(e) => self.failed = Some(e),
        }
    }

    /// Column widths: the widest cell of each column, narrowed (widest
    /// column first) until the table fits the terminal, if stdout is one.
    fn widths(&self) -> Vec<usize> {
        let mut widths = self.widest.clone();
        if io::stdout().is_terminal()
            && let Some(term) = terminal_width()
        {
            // Each column takes its width, two spaces of padding and one
            // border; plus the closing border.
            let budget = usize::from(term).saturating_sub(3 * widths.len() + 1);
            while widths.iter().sum::<usize>() > budget {
                let Some(widest) = widths.iter_mut().max() else {
                    break;
                };
                if *widest <= 8 {
                    break;
                }
                *widest -= 1;
            }
        }
        widths
    }

    /// Writes the table.
    ///
    /// # Errors
    /// The write error, or one from the rows' temporary file.
    pub fn write(self, out: &mut impl Write) -> io::Result<()> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let widths = self.widths();
        let pages = self.count.div_ceil(PAGE_ROWS).max(1);
        let mut rows = io::BufReader::new(self.rows.into_reader()?.0);
        let mut left = self.count;
        for page in 0..pages {
            let mut st = style();
            if page > 0 {
                st.top_border = LineStyle::none();
            }
            if page + 1 < pages {
                st.bottom_border = LineStyle::none();
            }
            let mut t = Table::new();
            t.force_no_tty()
                .load_style(st)
                .set_content_arrangement(ContentArrangement::Disabled);
            if styled() {
                t.enforce_styling();
            }
            if page == 0 {
                t.set_header(header_cells(&self.headers));
            }
            for _ in 0..left.min(PAGE_ROWS) {
                let mut cells = Vec::with_capacity(widths.len());
                for &w in &widths {
                    let mut len = [0u8; 4];
                    io::Read::read_exact(&mut rows, &mut len)?;
                    let mut text = vec![0u8; u32::from_le_bytes(len) as usize];
                    io::Read::read_exact(&mut rows, &mut text)?;
                    let text = String::from_utf8(text)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    cells.push(shorten(&text, w));
                }
                t.add_row(cells);
                left -= 1;
            }
            let constraints = widths.iter().map(|&w| {
                ColumnConstraint::Absolute(Width::Fixed(u16::try_from(w + 2).unwrap_or(u16::MAX)))
            });
            t.set_constraints(constraints);
            align_right(&mut t, &self.right);
            writeln!(out, "{t}")?;
        }
        Ok(())
    }
}

/// Right-aligns the given columns (numbers).
pub fn align_right(t: &mut Table, columns: &[usize]) {
    for &i in columns {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// Writes a table followed by a newline.
///
/// # Errors
/// The write error.
pub fn write_table(out: &mut impl Write, t: &Table) -> io::Result<()> {
    writeln!(out, "{t}")
}

/// How many characters of a value fit in a table cell when `columns`
/// columns of values share the row.
pub fn value_width(columns: usize) -> usize {
    if !io::stdout().is_terminal() {
        return PLAIN_VALUE_WIDTH;
    }
    let term = terminal_width().map_or(80, usize::from);
    // Leave room for the id columns and the borders.
    (term.saturating_sub(16) / columns.max(1)).max(12)
}

/// Narrowest terminal width believed: a pseudo-terminal nobody sized
/// reports 0 columns, and fitting a table into that would squeeze every
/// column to one character.
const MIN_TERMINAL_WIDTH: u16 = 20;

/// The terminal's width: measured (comfy-table already links a terminal
/// library; no second one), else `$COLUMNS`, else unknown.
fn terminal_width() -> Option<u16> {
    Table::new()
        .width()
        .filter(|&w| w >= MIN_TERMINAL_WIDTH)
        .or_else(|| {
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.trim().parse::<u16>().ok())
                .filter(|&w| w >= MIN_TERMINAL_WIDTH)
        })
}

/// `text` with every character that a terminal would act on instead of
/// showing (C0 and C1 controls, DEL, bidirectional overrides) written as an
/// escape, so that a stored category cannot retitle the window, clear the
/// screen or forge table rows.
pub fn escape_controls(text: &str) -> String {
    let acts =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(acts) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if acts(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

/// `text` cut to at most `max` characters, ending in an ellipsis when cut
/// ("…" on a terminal, "..." otherwise so that plain output stays ASCII);
/// control characters are escaped first ([`escape_controls`]).
pub fn shorten(text: &str, max: usize) -> String {
    let text = &escape_controls(text);
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let ellipsis = if io::stdout().is_terminal() {
        "…"
    } else {
        "..."
    };
    let keep = max.saturating_sub(ellipsis.chars().count());
    let mut s: String = text.chars().take(keep).collect();
    s.push_str(ellipsis);
    s
}

/// A one-line preview of a body for tables: control characters escaped,
/// and a note instead of the bytes when it is not UTF-8.
pub fn body_preview(body: &[u8], max: usize) -> String {
    match std::str::from_utf8(body) {
        Ok(s) => {
            // Escaping past what can be shown would only cost time.
            let end = s.char_indices().nth(max * 4).map_or(s.len(), |(i, _)| i);
            shorten(&s[..end], max)
        }
        Err(_) => format!("({} bytes, not UTF-8; see `get --body`)", body.len()),
    }
}

/// A progress bar in bytes on stderr, or nothing when stderr is not a
/// terminal or `--quiet` was given.
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// A bar for `what`; `total` in bytes when known, else a spinner.
    pub fn new(quiet: bool, what: &'static str, total: Option<u64>) -> Bar {
        if quiet || !io::stderr().is_terminal() {
            return Bar(None);
        }
        let template = match total {
            Some(_) => {
                "{msg} {wide_bar} {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta})"
            }
            None => "{spinner} {msg} {binary_bytes} ({binary_bytes_per_sec})",
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let pb = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr())
            .with_style(style)
            .with_message(what);
        Bar(Some(pb))
    }

    /// Shows the engine's progress report.
    pub fn update(&self, p: Progress) {
        if let Some(pb) = &self.0 {
            pb.set_length(p.total);
            pb.set_position(p.done);
        }
    }

    /// Shows `done` bytes.
    pub fn set(&self, done: u64) {
        if let Some(pb) = &self.0 {
            pb.set_position(done);
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        // An error path must not leave a half-drawn bar above the message.
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_counts_characters_not_bytes() {
        assert_eq!(shorten("héllo", 5), "héllo");
        let cut = shorten("héllo wörld", 8);
        assert_eq!(cut.chars().count(), 8);
        assert!(cut.starts_with("hél"));
    }

    #[test]
    fn sizes_read_like_du_h() {
        let cases = [
            (0, "0"),
            (1023, "1023"),
            (1024, "1.0K"),
            (1025, "1.1K"),
            (1536, "1.5K"),
            (10 * 1024 - 1, "10K"),
            (10 * 1024, "10K"),
            (10 * 1024 + 1, "11K"),
            (1024 * 1024 - 1, "1.0M"),
            (1024 * 1024, "1.0M"),
            (64 << 20, "64M"),
            (3 << 30, "3.0G"),
            (u64::MAX, "16E"),
        ];
        for (n, want) in cases {
            assert_eq!(human_size(n), want, "{n}");
        }
    }

    #[test]
    fn previews_escape_control_characters() {
        assert_eq!(body_preview(b"a\nb\tc", 40), "a\\nb\\tc");
        assert_eq!(shorten("t\x1b]0;x\x07\r", 40), "t\\u{1b}]0;x\\u{7}\\r");
        assert_eq!(escape_controls("a\u{202e}b\u{85}"), "a\\u{202e}b\\u{85}");
        assert_eq!(
            body_preview(&[0xff, 0], 40),
            "(2 bytes, not UTF-8; see `get --body`)"
        );
    }
}

#[cfg(test)]
mod long_table_tests {
    use super::*;

    fn render(rows: usize, cell: impl Fn(usize) -> String) -> Vec<String> {
        let mut t = LongTable::new(&["n", "text"], &[0]);
        for i in 0..rows {
            t.push(vec![i.to_string(), cell(i)]);
        }
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_long_table_from_its_file_is_one_seamless_table() {
        // About 12 MB of cells: past the spool's memory, so the rows are
        // read back from its file.
        let rows = 100_000;
        let cell = |i: usize| format!("row {i} {}\tend", "x".repeat(i % 97 + 20));
        let lines = render(rows, cell);
        let small = render(3, cell);
        // Borders, the header and one line a row, as with three rows.
        assert_eq!(lines.len() - rows, small.len() - 3, "{:?}", &lines[..6]);
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width));
        // The lines above the first row: the border, the header, the rule.
        let above = small.len() - 4;
        for i in [0, PAGE_ROWS - 1, PAGE_ROWS, rows - 1] {
            let line = &lines[above + i];
            assert!(line.contains(&format!(" {i} ")), "{i}: {line}");
            assert!(line.contains(&escape_controls(&cell(i))), "{i}: {line}");
        }
        let bottom = lines.last().unwrap();
        assert!(bottom.starts_with('+') && bottom.chars().all(|c| c == '+' || c == '-'));
    }
}
