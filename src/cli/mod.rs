//! The command line: argument definitions (clap), one module per subcommand,
//! and the shared input and output helpers.
//!
//! This layer parses, reads stdin and files, opens the store in the mode the
//! command needs, calls the library and formats what it returns. It never
//! chooses a process exit code: it returns errors, and `src/exit.rs` maps
//! them. Every input a command takes is read and validated before the store
//! is opened, so a refused command changes nothing on disk.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use stratum::{Mode, Options, Store};

pub mod add_input;
pub mod apply;
pub mod backup;
pub mod compact;
pub mod create_doc;
pub mod delete_doc;
pub mod delete_input;
pub mod diff;
pub mod dump;
pub mod generate;
pub mod get;
pub mod input;
pub mod list;
pub mod load;
pub mod output;
pub mod repair;
pub mod set_output;
pub mod stats;
pub mod update_doc;
pub mod verify;

/// Smallest accepted `--segment-size`: one file-system page.
pub const MIN_SEGMENT_SIZE: u64 = 4096;

const TOP_EXAMPLES: &str = "\
Examples:
  stratum create-doc '<p>Add two numbers.</p>' --category easy
  stratum add-input 1 '[1, 2]' --output 3
  stratum get 1 --pretty
  stratum dump | jq -c 'select(.category == \"easy\")'

Exit codes: 0 ok, 1 other failure, 2 usage, 3 not found (document, node or store),
4 invalid input, 5 lock timeout, 6 corruption, 7 I/O error, 8 written and durable but
its output could not be printed (do not retry).";

/// Documents with ordered chains of inputs and expected outputs, in a
/// log-structured store on local disk.
///
/// Each invocation opens the data directory under a file lock (exclusive for
/// write commands, shared for read commands), runs one command and exits.
/// Values are JSON and round-trip exactly: key order, number text and string
/// escapes are kept.
#[derive(Debug, Parser)]
#[command(
    name = "stratum",
    version,
    help_expected = true,
    subcommand_required = true,
    arg_required_else_help = true,
    after_help = TOP_EXAMPLES
)]
pub struct Cli {
    /// Options every command accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The data directory (created by the first write command).
    #[arg(
        short = 'd',
        long,
        env = "STRATUM_DIR",
        default_value = "./stratum-data",
        value_name = "DIR",
        global = true
    )]
    pub dir: PathBuf,

    /// Seal the active segment once it would grow past this size.
    ///
    /// Plain bytes or a K, M or G suffix (binary multiples: 64M = 64 MiB).
    /// At least 4096.
    #[arg(
        long,
        default_value = "64M",
        value_name = "BYTES",
        value_parser = parse_segment_size,
        global = true
    )]
    pub segment_size: u64,

    /// Skip fsync: writes stay crash-consistent (a prefix of the history
    /// survives) but are not durable across power loss. For throwaway
    /// fixtures.
    #[arg(long, global = true)]
    pub no_sync: bool,

    /// Wait this many seconds for another process's lock before failing
    /// (exit 5). Fractions allowed: 0.5.
    #[arg(
        long,
        default_value = "10",
        value_name = "SECS",
        value_parser = parse_lock_timeout,
        global = true
    )]
    pub lock_timeout: Duration,

    /// Show no progress bars.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
// Clap takes each command's help (summary, details, examples) from the doc
// comment of its `XxxArgs` struct only when the variant has none.
#[allow(missing_docs)]
pub enum Command {
    CreateDoc(create_doc::CreateDocArgs),
    AddInput(add_input::AddInputArgs),
    SetOutput(set_output::SetOutputArgs),
    Get(get::GetArgs),
    UpdateDoc(update_doc::UpdateDocArgs),
    DeleteDoc(delete_doc::DeleteDocArgs),
    DeleteInput(delete_input::DeleteInputArgs),
    List(list::ListArgs),
    Compact(compact::CompactArgs),
    Verify(verify::VerifyArgs),
    Dump(dump::DumpArgs),
    Stats(stats::StatsArgs),
    Load(load::LoadArgs),
    Apply(apply::ApplyArgs),
    Diff(diff::DiffArgs),
    /// Copy the store to DEST, consistently and verified.
    Backup(backup::BackupArgs),
    /// Salvage a damaged store: keep every record that passes its CRC.
    Repair(repair::RepairArgs),
    Completions(generate::CompletionsArgs),
    Man(generate::ManArgs),
}

/// Runs the parsed command line.
///
/// # Errors
/// Whatever the command fails with; `src/exit.rs` turns it into an exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::CreateDoc(args) => create_doc::run(g, args),
        Command::AddInput(args) => add_input::run(g, args),
        Command::SetOutput(args) => set_output::run(g, args),
        Command::Get(args) => get::run(g, args),
        Command::UpdateDoc(args) => update_doc::run(g, args),
        Command::DeleteDoc(args) => delete_doc::run(g, args),
        Command::DeleteInput(args) => delete_input::run(g, args),
        Command::List(args) => list::run(g, args),
        Command::Compact(args) => compact::run(g, args),
        Command::Verify(args) => verify::run(g, args),
        Command::Dump(args) => dump::run(g, args),
        Command::Stats(args) => stats::run(g, args),
        Command::Load(args) => load::run(g, args),
        Command::Apply(args) => apply::run(g, args),
        Command::Diff(args) => diff::run(g, args),
        Command::Backup(args) => backup::run(g, args),
        Command::Repair(args) => repair::run(g, args),
        Command::Completions(args) => generate::run_completions(args),
        Command::Man(args) => generate::run_man(args),
    }?;
    Ok(ExitCode::SUCCESS)
}

impl GlobalArgs {
    /// The engine options these flags describe.
    pub fn options(&self) -> Options {
        let mut opts = Options::new(&self.dir);
        opts.segment_size = self.segment_size;
        opts.sync = !self.no_sync;
        opts.lock_timeout = self.lock_timeout;
        opts
    }

    /// Opens the store and shows the recovery notices it produced.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open(&self, mode: Mode) -> stratum::Result<Store> {
        let mut store = Store::open(self.options(), mode)?;
        note_all(store.take_notices());
        Ok(store)
    }

    /// Opens an existing store for writing; unlike [`GlobalArgs::open`] it
    /// never creates one. For commands that act on an existing document: on
    /// an empty directory they fail with "no store" and leave it empty.
    ///
    /// # Errors
    /// [`stratum::Error::NoStore`], or as [`Store::open`].
    pub fn open_existing(&self) -> stratum::Result<Store> {
        let mut store = Store::open_existing(self.options())?;
        note_all(store.take_notices());
        Ok(store)
    }
}

/// Prints one `stratum: note: …` line per notice on stderr.
pub fn note_all(notices: Vec<String>) {
    for n in notices {
        message(&format!("note: {n}"));
    }
}

/// Prints `stratum: {msg}` on stderr. A closed stderr is not worth failing
/// a command that has otherwise done its work, so write errors are ignored.
pub fn message(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "stratum: {msg}");
}

/// A command line that clap accepted but that is still unusable (for
/// example two inputs both read from stdin). Exit code 2, like clap's own
/// usage errors.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A write command whose change is committed and durable, but whose report
/// (the new ids) could not be written to stdout: full, closed or failing.
/// Exit code 8, so that a retrying script can tell it from a write that did
/// not happen (retrying it would make a duplicate).
#[derive(Debug)]
pub struct Unreported {
    /// What was done, e.g. "document 7 was created".
    pub done: String,
    /// Why stdout failed.
    pub source: std::io::Error,
}

impl fmt::Display for Unreported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} and is durable, but printing the result failed ({}); do not run the command again",
            self.done, self.source
        )
    }
}

impl std::error::Error for Unreported {}

/// `verify` found damage; the report has been printed. Exit code 6, like a
/// corruption error from any other command.
#[derive(Debug)]
pub struct DamageFound(pub String);

impl fmt::Display for DamageFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DamageFound {}

/// Parses a byte count: plain digits, or digits with a K, M or G suffix
/// (binary multiples; an optional trailing `B` or `iB` is accepted).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "`{text}` is not a size (expected e.g. 4096, 64K, 64M, 1G)"
        ));
    }
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "`{text}` has an unknown size suffix (use K, M or G)"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is too large"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

fn parse_segment_size(text: &str) -> Result<u64, String> {
    let n = parse_size(text)?;
    if n < MIN_SEGMENT_SIZE {
        return Err(format!(
            "segment size must be at least {MIN_SEGMENT_SIZE} bytes (got {n})"
        ));
    }
    Ok(n)
}

fn parse_lock_timeout(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("`{text}` is not a usable timeout (0 or more seconds)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_app() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert!(parse_size("").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("17179869184G").is_err());
    }

    #[test]
    fn segment_size_has_a_floor() {
        assert!(parse_segment_size("0").is_err());
        assert!(parse_segment_size("4095").is_err());
        assert_eq!(parse_segment_size("4K"), Ok(4096));
    }

    #[test]
    fn lock_timeout_accepts_fractions_only_when_sane() {
        assert_eq!(parse_lock_timeout("0.2"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_lock_timeout("0"), Ok(Duration::ZERO));
        assert!(parse_lock_timeout("-1").is_err());
        assert!(parse_lock_timeout("NaN").is_err());
        assert!(parse_lock_timeout("inf").is_err());
        assert!(parse_lock_timeout("1e300").is_err());
        assert!(parse_lock_timeout("soon").is_err());
    }
}
