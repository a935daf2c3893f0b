//! The command line: argument definitions (clap), one module per subcommand,
//! and the shared input and output helpers.
//!
//! This layer parses, reads stdin and files, opens the store in the mode the
//! command needs, calls the library and formats what it returns. It never
//! chooses a process exit code: it returns errors, and `src/exit.rs` maps
//! them. Every input a command takes is read and validated before the store
//! is opened, so a refused command changes nothing on disk.

use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use stratum::{DocId, Notice, Options, ReadOnlyStore, Store};

pub mod add_input;
pub mod apply;
pub mod backup;
pub mod compact;
pub mod conflict;
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
pub mod select;
pub mod set_output;
pub mod sorter;
pub mod stats;
pub mod summary;
pub mod update_doc;
pub mod update_input;
pub mod verify;

/// Smallest accepted `--segment-size`: one file-system page.
pub const MIN_SEGMENT_SIZE: u64 = 4096;

const TOP_EXAMPLES: &str = "\
Examples:
  stratum create-doc '<p>Add two numbers.</p>' --category easy --key two-sum
  stratum add-input key:two-sum '[1, 2]' --output 3
  stratum get key:two-sum --pretty
  stratum dump --category easy --fields id,key,inputs.output

A document is named by its id (a whole number) or by key:NAME.

Exit codes: 0 ok, 1 other failure, 2 usage, 3 not found (document, key, node or store),
4 invalid input, 5 lock timeout, 6 corruption, 7 I/O error, 8 written and durable but
its output could not be printed (do not retry), 9 internal error (a bug: please report).";

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

/// Options shared by every command. They are listed once, under their own
/// heading in `stratum --help`; each command's help points there (see
/// [`command`]).
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
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
    /// At least 4096. A batch (`load`, `apply`) that would take the active
    /// segment past this size is written as segments of its own, each
    /// sealed at this size or at 131,070 index entries, whichever comes
    /// first, all committed at once: it stays one atomic write.
    #[arg(
        long,
        default_value = "64M",
        value_name = "BYTES",
        value_parser = parse_segment_size,
        global = true
    )]
    pub segment_size: u64,

    /// Skip the fsync that makes each write durable: for throwaway fixtures.
    ///
    /// A killed process loses nothing. A power loss can lose the latest
    /// commands; if the disk wrote them out of order the active segment may
    /// come back with a hole, and the store then refuses to open until
    /// `stratum repair` keeps every intact record.
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

    /// Print nothing on success but the command's data.
    ///
    /// No progress bars, notes or summaries on stderr; `compact`, `backup`,
    /// `repair` and `verify` print nothing at all. Data still reaches stdout:
    /// new ids, JSON (also a --json report), the dump. Errors are still one
    /// line on stderr.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,

    /// When to use colour (bold table headers): auto uses it when stdout is
    /// a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`.
    #[arg(
        long,
        value_enum,
        default_value_t = ColorChoice::Auto,
        value_name = "WHEN",
        global = true
    )]
    pub color: ColorChoice,
}

/// The values of `--color`, as in ripgrep and fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal, unless `NO_COLOR` or `TERM=dumb`.
    Auto,
    /// Never colour.
    Never,
    /// Always colour, also into a pipe.
    Always,
}

/// Declares [`Command`] and, from the same list, the parser of one command
/// alone ([`one_command`]), so that neither can name a command the other
/// lacks.
macro_rules! commands {
    ($($variant:ident($args:ty) = $name:literal,)*) => {
        /// The subcommands.
        #[derive(Debug, Subcommand)]
        // Clap takes each command's help (summary, details, examples) from the doc
        // comment of its `XxxArgs` struct only when the variant has none.
        #[allow(missing_docs)]
        pub enum Command {
            $($variant($args),)*
        }

        /// Every command's name, as the command line spells it.
        const COMMAND_NAMES: &[&str] = &[$($name,)*];

        /// The arguments of the command called `name` alone, as a clap
        /// command of that name.
        fn command_named(name: &str) -> Option<clap::Command> {
            match name {
                $($name => Some(<$args as Args>::augment_args(clap::Command::new($name))),)*
                _ => None,
            }
        }
    };
}

commands! {
    CreateDoc(create_doc::CreateDocArgs) = "create-doc",
    AddInput(add_input::AddInputArgs) = "add-input",
    SetOutput(set_output::SetOutputArgs) = "set-output",
    Get(get::GetArgs) = "get",
    UpdateDoc(update_doc::UpdateDocArgs) = "update-doc",
    UpdateInput(update_input::UpdateInputArgs) = "update-input",
    DeleteDoc(delete_doc::DeleteDocArgs) = "delete-doc",
    DeleteInput(delete_input::DeleteInputArgs) = "delete-input",
    List(list::ListArgs) = "list",
    Compact(compact::CompactArgs) = "compact",
    Verify(verify::VerifyArgs) = "verify",
    Dump(dump::DumpArgs) = "dump",
    Stats(stats::StatsArgs) = "stats",
    Load(load::LoadArgs) = "load",
    Apply(apply::ApplyArgs) = "apply",
    Diff(diff::DiffArgs) = "diff",
    Backup(backup::BackupArgs) = "backup",
    Repair(repair::RepairArgs) = "repair",
    Completions(generate::CompletionsArgs) = "completions",
    Man(generate::ManArgs) = "man",
}

/// Commands that only read the store: their help leaves out the options
/// that only matter to writes.
const READ_COMMANDS: &[&str] = &["get", "list", "dump", "verify", "stats", "backup"];

/// Commands that never open a store.
const STORELESS_COMMANDS: &[&str] = &["completions", "man"];

/// The command line as the binary parses it: [`Cli`]'s definition, with the
/// global options hidden from each command's own option list (they are
/// listed once, in `stratum --help`) and a line in each command's help that
/// names the ones it uses. The man page and completions are generated from
/// [`Cli::command`] itself, where nothing is hidden.
///
/// Each command's own part is deferred until clap enters that command, so an
/// invocation builds the parser of one command, not of all twenty: building
/// every one cost about 0.2 ms of each `get`'s 1.4 ms.
pub fn command(color: clap::ColorChoice) -> clap::Command {
    let mut cmd = Cli::command().color(color);
    for sub in cmd.get_subcommands_mut() {
        let taken = std::mem::replace(sub, clap::Command::new(""));
        *sub = taken.defer(hide_globals);
    }
    cmd
}

/// Runs when clap builds a command, after the global options have been
/// copied into it.
fn hide_globals(sub: clap::Command) -> clap::Command {
    let name = sub.get_name();
    let storeless = STORELESS_COMMANDS.contains(&name);
    let reads_only = READ_COMMANDS.contains(&name);
    let used: Vec<String> = sub
        .get_arguments()
        .filter(|a| a.is_global_set() && !storeless)
        .filter(|a| !reads_only || !matches!(a.get_id().as_str(), "segment_size" | "no_sync"))
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    let mut after = sub
        .get_after_help()
        .map(ToString::to_string)
        .unwrap_or_default();
    if !used.is_empty() {
        if !after.is_empty() {
            after.push_str("\n\n");
        }
        after.push_str(&format!(
            "Global options: {} (see 'stratum --help').",
            used.join(", ")
        ));
    }
    sub.mut_args(|a| if a.is_global_set() { a.hide(true) } else { a })
        .after_help(after)
}

/// Parses the process's arguments.
///
/// A command line that names its command is parsed first by a parser of
/// that command alone ([`one_command`]): building all twenty commands'
/// arguments, to use one, was a third of the start-up of a `get`. Anything
/// that parser refuses (help, `--version`, every usage error) is parsed
/// again by the whole [`command`], so messages and help are the whole
/// parser's. Both hold the same definitions, so a line the first accepts
/// means to the second what it means to the first.
///
/// # Errors
/// Clap's error, which `src/exit.rs` prints as one line (or prints help and
/// version as they are).
pub fn parse() -> Result<Cli, clap::Error> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(cli) = parse_alone(&args) {
        return Ok(cli);
    }
    let matches = command(help_color()).try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches)
}

/// `args` (the program name first) parsed by the parser of the command they
/// name alone, when they name one and that parser accepts them.
fn parse_alone(args: &[OsString]) -> Option<Cli> {
    let words: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let matches = one_command(&subcommand_in(&words)?)?
        .try_get_matches_from(args)
        .ok()?;
    Cli::from_arg_matches(&matches).ok()
}

/// A parser of the command `name` and the global options, without the
/// settings that only help and errors show (those come from [`command`]).
fn one_command(name: &str) -> Option<clap::Command> {
    let top = GlobalArgs::augment_args(clap::Command::new("stratum"));
    Some(
        top.subcommand(command_named(name)?)
            .subcommand_required(true),
    )
}

/// The subcommand named in `args` (the process's arguments after the
/// program name): the first argument that is not an option or the value of
/// a global option, when it is a command's name.
pub fn subcommand_in(args: &[String]) -> Option<String> {
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "-d" | "--dir" | "--segment-size" | "--lock-timeout" | "--color" => {
                args.next();
            }
            "--" => return None,
            option if option.starts_with('-') => {}
            name => return COMMAND_NAMES.contains(&name).then(|| name.to_owned()),
        }
    }
    None
}

/// `--color` as given on the command line, before parsing, so that help
/// follows the same rule as tables ([`output::styled`]).
fn help_color() -> clap::ColorChoice {
    let mut args = std::env::args_os().skip(1);
    let mut choice = clap::ColorChoice::Auto;
    while let Some(a) = args.next() {
        let value = match a.to_str() {
            Some("--") => break,
            Some("--color") => args.next(),
            Some(s) if s.starts_with("--color=") => Some(s["--color=".len()..].into()),
            _ => continue,
        };
        choice = match value.as_ref().and_then(|v| v.to_str()) {
            Some("never") => clap::ColorChoice::Never,
            Some("always") => clap::ColorChoice::Always,
            _ => clap::ColorChoice::Auto,
        };
    }
    match choice {
        clap::ColorChoice::Auto if !output::env_allows_color() => clap::ColorChoice::Never,
        other => other,
    }
}

/// Runs the parsed command line.
///
/// # Errors
/// Whatever the command fails with; `src/exit.rs` turns it into an exit code.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    output::set_color(g.color);
    match cli.command {
        Command::CreateDoc(args) => create_doc::run(g, args),
        Command::AddInput(args) => add_input::run(g, args),
        Command::SetOutput(args) => set_output::run(g, args),
        Command::Get(args) => get::run(g, args),
        Command::UpdateDoc(args) => update_doc::run(g, args),
        Command::UpdateInput(args) => update_input::run(g, args),
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
    }
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

    /// Opens the store for writing and shows the recovery notices it
    /// produced (unless `--quiet`).
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open(&self) -> stratum::Result<Store> {
        let mut store = Store::open(self.options())?;
        self.noted(store.take_notices(), |hook| store.on_notice(hook));
        Ok(store)
    }

    /// Opens the store read-only and shows its notices, as
    /// [`GlobalArgs::open`] does.
    ///
    /// # Errors
    /// As [`ReadOnlyStore::open`].
    pub fn open_read(&self) -> stratum::Result<ReadOnlyStore> {
        let mut store = ReadOnlyStore::open(self.options())?;
        self.noted(store.take_notices(), |hook| store.on_notice(hook));
        Ok(store)
    }

    /// A second read-only handle on `store`, under its lock (a scan read in
    /// two halves, one per thread): its notices at open are those of the
    /// first handle, already shown; later ones are shown as they come.
    ///
    /// # Errors
    /// As [`ReadOnlyStore::beside`].
    pub fn beside<'s>(
        &self,
        store: &'s ReadOnlyStore,
    ) -> stratum::Result<stratum::engine::Beside<'s>> {
        let mut beside = store.beside()?;
        self.noted(Vec::new(), |hook| beside.on_notice(hook));
        Ok(beside)
    }

    /// Opens an existing store for writing; unlike [`GlobalArgs::open`] it
    /// never creates one. For commands that act on an existing document: on
    /// an empty directory they fail with "no store" and leave it empty.
    ///
    /// # Errors
    /// [`stratum::Error::NoStore`], or as [`Store::open`].
    pub fn open_existing(&self) -> stratum::Result<Store> {
        let mut store = Store::open_existing(self.options())?;
        self.noted(store.take_notices(), |hook| store.on_notice(hook));
        Ok(store)
    }

    /// Prints one `stratum: note: …` line per recovery notice of a store
    /// just opened, unless `--quiet`: under `-q` a note is chatter too.
    fn noted(&self, notices: Vec<Notice>, on_notice: impl FnOnce(stratum::engine::NoticeHook)) {
        if !self.quiet {
            for n in &notices {
                note(n);
            }
            // Later ones (an index file found stale part-way) as they come.
            on_notice(Box::new(note));
        }
    }
}

/// Prints a notice as `stratum: note: …`, with what to run where there is
/// something to run.
fn note(n: &Notice) {
    let hint = match n {
        Notice::StaleIndex { rebuilt: false, .. } => {
            "; `stratum repair` or the next write that reads it rebuilds it"
        }
        _ => "",
    };
    message(&format!("note: {n}{hint}"));
}

/// Prints `stratum: {msg}` on stderr. A closed stderr is not worth failing
/// a command that has otherwise done its work, so write errors are ignored.
pub fn message(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "stratum: {msg}");
}

/// `--json` on a command whose output is JSON already (an id is a JSON
/// number), so that a script can pass it to every command that prints
/// something.
#[derive(Debug, Args)]
pub struct JsonAlready {
    /// Accepted for scripts; the output is JSON already.
    #[arg(long)]
    pub json: bool,
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
    if secs.is_nan() || secs < 0.0 {
        return Err(format!("`{text}` is not 0 or more seconds"));
    }
    // A year is already longer than any lock is held; the limit only keeps
    // the number a Duration.
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d <= MAX_LOCK_TIMEOUT)
        .ok_or_else(|| {
            format!(
                "`{text}` seconds is too long a wait (at most {})",
                MAX_LOCK_TIMEOUT.as_secs()
            )
        })
}

/// Longest accepted `--lock-timeout`: a year.
const MAX_LOCK_TIMEOUT: Duration = Duration::from_secs(366 * 24 * 3600);

/// A document as the command line names it: by id or by key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DocArg {
    /// A whole number from 1.
    Id(DocId),
    /// `key:NAME`.
    Key(String),
}

/// The prefix that makes a document argument a key.
pub const KEY_PREFIX: &str = "key:";

impl DocArg {
    /// The id of the live document this names.
    ///
    /// # Errors
    /// [`stratum::Error::KeyNotFound`] for a key no live document holds;
    /// as [`Store::find_key`]. An id is not checked here: the command that
    /// uses it reports an unknown one.
    pub fn resolve(&self, store: &Store) -> stratum::Result<DocId> {
        match self {
            DocArg::Id(id) => Ok(*id),
            DocArg::Key(k) => store
                .find_key(k)?
                .ok_or_else(|| stratum::Error::KeyNotFound(k.clone())),
        }
    }
}

impl fmt::Display for DocArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocArg::Id(id) => write!(f, "{id}"),
            DocArg::Key(k) => write!(f, "{KEY_PREFIX}{k}"),
        }
    }
}

/// Parses a document argument: a whole number from 1 is an id, `key:NAME`
/// names a key. Anything else is refused rather than taken for a key, so
/// that a key that looks like a number (`0042`) can never be read as an id
/// and a mistyped id is not looked up as a key.
pub fn parse_doc(text: &str) -> Result<DocArg, String> {
    if let Some(key) = text.strip_prefix(KEY_PREFIX) {
        stratum::model::check_key(key).map_err(|e| e.to_string())?;
        return Ok(DocArg::Key(key.to_owned()));
    }
    match text.trim().parse::<u64>() {
        Ok(0) => Err("0 is not an id: ids start at 1".to_owned()),
        Ok(n) => Ok(DocArg::Id(DocId(n))),
        Err(_) => Err(format!(
            "`{text}` is not a document: give its id (a whole number from 1) or key:NAME"
        )),
    }
}

/// Parses a document or node id: a whole number from 1.
pub fn parse_id(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("0 is not an id: ids start at 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not an id (a whole number from 1)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_app() {
        Cli::command().debug_assert();
        // The command line as parsed, with the global options hidden.
        command(clap::ColorChoice::Never).debug_assert();
    }

    #[test]
    fn every_command_alone_takes_the_arguments_it_takes_in_the_whole_parser() {
        let whole = Cli::command();
        let names: Vec<&str> = whole.get_subcommands().map(|c| c.get_name()).collect();
        assert_eq!(names, COMMAND_NAMES);
        for sub in whole.get_subcommands() {
            let ids = |c: &clap::Command| {
                let mut ids: Vec<String> =
                    c.get_arguments().map(|a| a.get_id().to_string()).collect();
                ids.sort();
                ids
            };
            let alone = command_named(sub.get_name()).unwrap();
            assert_eq!(ids(&alone), ids(sub), "{}", sub.get_name());
        }
    }

    #[test]
    fn a_line_the_parser_of_one_command_accepts_means_what_it_means_to_the_whole() {
        let whole = |line: &[&str]| {
            command(clap::ColorChoice::Never)
                .try_get_matches_from(line)
                .and_then(|m| Cli::from_arg_matches(&m))
        };
        let accepted: &[&[&str]] = &[
            &["stratum", "get", "7"],
            &["stratum", "-d", "/tmp/s", "get", "key:two-sum", "--pretty"],
            &[
                "stratum",
                "--dir=/tmp/s",
                "-q",
                "get",
                "7",
                "--node",
                "2",
                "--output",
            ],
            &["stratum", "-d", "get", "get", "7"],
            &["stratum", "-qd", "list", "get", "7"],
            &[
                "stratum",
                "get",
                "7",
                "-d",
                "/tmp/s",
                "--lock-timeout",
                "0.5",
            ],
            &[
                "stratum",
                "--color",
                "never",
                "list",
                "--json",
                "--category",
                "easy",
            ],
            &[
                "stratum",
                "add-input",
                "key:k",
                "[1, 2]",
                "--output",
                "3",
                "--no-sync",
            ],
            &[
                "stratum",
                "create-doc",
                "<p>x</p>",
                "--category",
                "easy",
                "--version",
                "2",
            ],
            &["stratum", "--segment-size", "64K", "load", "-"],
            &["stratum", "stats", "--json"],
            &["stratum", "completions", "bash"],
        ];
        for line in accepted {
            let expected = format!("{:?}", whole(line).unwrap());
            let args: Vec<OsString> = line.iter().map(OsString::from).collect();
            // `-qd list get 7`: the directory's name is taken for the command,
            // so only the whole parser can read the line.
            let alone = parse_alone(&args).map(|cli| format!("{cli:?}"));
            if line[1] == "-qd" {
                assert_eq!(alone, None);
            } else {
                assert_eq!(alone, Some(expected), "{line:?}");
            }
        }
        let refused: &[&[&str]] = &[
            &["stratum", "get"],
            &["stratum", "get", "7", "--help"],
            &["stratum", "get", "7", "--version"],
            &["stratum", "get", "--body", "--table", "7"],
            &["stratum", "get", "two-sum"],
            &["stratum", "-qd", "get"],
            &["stratum", "get", "7", "list"],
            &["stratum", "--version"],
            &["stratum", "-V", "get", "7"],
            &["stratum", "--lock-timeout", "soon", "get", "7"],
        ];
        for line in refused {
            let args: Vec<OsString> = line.iter().map(OsString::from).collect();
            assert!(parse_alone(&args).is_none(), "{line:?}");
            assert!(whole(line).is_err(), "{line:?}");
        }
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
        let long = parse_lock_timeout("1e30").unwrap_err();
        assert!(long.contains("too long"), "{long}");
    }

    #[test]
    fn ids_start_at_one() {
        assert_eq!(parse_id("7"), Ok(7));
        assert!(parse_id("0").unwrap_err().contains("start at 1"));
        assert!(parse_id("-1").unwrap_err().contains("not an id"));
        assert!(parse_id("x").is_err());
    }

    #[test]
    fn documents_are_ids_or_keys_never_guessed() {
        assert_eq!(parse_doc("7"), Ok(DocArg::Id(DocId(7))));
        assert_eq!(parse_doc("key:two-sum"), Ok(DocArg::Key("two-sum".into())));
        assert_eq!(parse_doc("key:0042"), Ok(DocArg::Key("0042".into())));
        assert_eq!(parse_doc("key:key:x"), Ok(DocArg::Key("key:x".into())));
        assert!(parse_doc("two-sum").unwrap_err().contains("key:NAME"));
        assert!(parse_doc("0").is_err());
        assert!(parse_doc("key:").unwrap_err().contains("1 to 1024 bytes"));
        assert!(parse_doc(&format!("key:{}", "k".repeat(1025))).is_err());
        assert!(parse_doc(&format!("key:{}", "k".repeat(1024))).is_ok());
    }

    #[test]
    fn command_help_names_only_the_globals_it_uses() {
        let mut cmd = command(clap::ColorChoice::Never);
        // As parsing does: the global options reach each command when the
        // whole command line is built.
        cmd.build();
        let get = cmd.find_subcommand_mut("get").unwrap();
        let help = get.render_help().to_string();
        assert!(
            !help.contains("--no-sync") && !help.contains("--segment-size <"),
            "{help}"
        );
        assert!(
            help.contains("Global options: --dir, --lock-timeout, --quiet, --color"),
            "{help}"
        );
        let load = cmd.find_subcommand_mut("load").unwrap();
        let help = load.render_help().to_string();
        assert!(help.contains("--no-sync, --lock-timeout"), "{help}");
        let man = cmd.find_subcommand_mut("man").unwrap();
        assert!(!man.render_help().to_string().contains("Global options"));
    }
}
