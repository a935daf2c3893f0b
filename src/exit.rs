//! The one place exit codes are chosen: every error a command returns is
//! classified here by walking its chain of causes.
//!
//! The codes are frozen (README, man page):
//! 0 ok, 1 other failure, 2 usage, 3 not found (document, key, node, or no store
//! at --dir), 4 invalid input, 5 lock timeout, 6 corruption or unsupported
//! format version, 7 I/O error, 8 the write is durable but printing its
//! result failed (do not retry), 9 internal error (a bug in stratum:
//! please report). A broken pipe on stdout is success for
//! a read: the reader has all it wanted (`stratum dump | head -1`).

use std::io::{self, Write};

use crate::cli::diff::Differences;
use crate::cli::{DamageFound, Unreported, UsageError};
use stratum::Error;

/// The exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Code {
    /// Anything not classified below.
    Other = 1,
    Usage = 2,
    NotFound = 3,
    InvalidInput = 4,
    LockTimeout = 5,
    Corrupt = 6,
    Io = 7,
    /// The write is durable; only printing its result failed.
    Unreported = 8,
    /// A bug in stratum (an internal check failed): please report it.
    Internal = 9,
}

/// What an error means for the process.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Stdout was closed by its reader: exit 0 and print nothing.
    QuietSuccess,
    /// `diff` found differences and printed them: exit 1 and say nothing
    /// more, as diff(1).
    Different,
    Fail(Code),
}

fn classify(err: &anyhow::Error) -> Outcome {
    // Before the broken-pipe rule: a write's report lost to a closed stdout
    // is the same news as one lost to a full disk.
    if err.chain().any(|cause| cause.is::<Unreported>()) {
        return Outcome::Fail(Code::Unreported);
    }
    let broken_pipe = err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return Outcome::QuietSuccess;
    }
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return Outcome::Fail(match e {
                // A poisoned store is one whose write or fsync failed
                // earlier in this process: an I/O failure, not bad input.
                Error::Io { .. } | Error::NoSpace { .. } | Error::Poisoned => Code::Io,
                Error::Internal(_) => Code::Internal,
                Error::Corrupt { .. }
                | Error::UnsupportedVersion { .. }
                | Error::LockMissing { .. } => Code::Corrupt,
                Error::NoStore { .. }
                | Error::NotAStore { .. }
                | Error::DocNotFound(_)
                | Error::KeyNotFound(_)
                | Error::NodeNotFound { .. } => Code::NotFound,
                Error::InvalidInput(_) | Error::IdTooHigh { .. } => Code::InvalidInput,
                Error::LockTimeout { .. } => Code::LockTimeout,
                _ => Code::Other,
            });
        }
        if cause.is::<UsageError>() {
            return Outcome::Fail(Code::Usage);
        }
        if cause.is::<DamageFound>() {
            return Outcome::Fail(Code::Corrupt);
        }
        if cause.is::<Differences>() {
            return Outcome::Different;
        }
        if cause.is::<io::Error>() {
            return Outcome::Fail(Code::Io);
        }
    }
    Outcome::Fail(Code::Other)
}

/// The error and its causes joined by ": " (as `{err:#}` does), skipping a
/// cause whose text the line already holds: the library's I/O errors print
/// their OS error themselves and also return it as their source.
fn one_line(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text.replace('\n', " ")
}

/// Handles what clap returned instead of a command line: help and version
/// are printed as clap renders them; a usage error is printed as one line,
/// `stratum: <what is wrong>; try 'stratum COMMAND --help'`, and exits 2.
pub fn usage(err: &clap::Error) -> u8 {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        // Nothing more can be done if the stream is closed.
        let _ = err.print();
        return u8::try_from(err.exit_code()).unwrap_or(Code::Usage as u8);
    }
    let text = if err.kind() == ErrorKind::InvalidValue && empty_dir_env(&process_args()) {
        "STRATUM_DIR is set but empty: set it to the data directory, or unset it to use ./stratum-data".to_owned()
    } else {
        usage_line(&err.render().to_string())
    };
    let _ = writeln!(io::stderr().lock(), "stratum: {text}; {}", help_hint());
    Code::Usage as u8
}

/// "try 'stratum COMMAND --help'" for the command on this process's command
/// line, or the top-level help when there is none.
fn help_hint() -> String {
    match crate::cli::subcommand_in(&process_args()) {
        Some(name) => format!("try 'stratum {name} --help'"),
        None => "try 'stratum --help'".to_owned(),
    }
}

/// The process's arguments after the program name, for messages.
fn process_args() -> Vec<String> {
    std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// Whether a missing `--dir` value came from an empty `STRATUM_DIR` (the
/// flag itself was not given: no `--dir`, `-d` or `-dDIR`).
fn empty_dir_env(args: &[String]) -> bool {
    std::env::var_os("STRATUM_DIR").is_some_and(|v| v.is_empty())
        && !args
            .iter()
            .take_while(|a| *a != "--")
            .any(|a| a.starts_with("--dir") || a.starts_with("-d"))
}

/// Clap's rendered usage error as one line: the message without its
/// `error: ` prefix, an indented continuation (the missing arguments) and
/// any tip joined on, the usage block and "For more information" dropped.
fn usage_line(rendered: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut lines = rendered.lines().map(str::trim_end);
    if let Some(first) = lines.next() {
        parts.push(first.trim_start_matches("error: ").to_owned());
    }
    for line in lines {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        let item = line.trim();
        if item.is_empty() {
            continue;
        }
        match item.strip_prefix("tip: ") {
            Some(tip) => parts.push(format!("; {tip}")),
            None => parts.push(format!(" {item}")),
        }
    }
    parts.concat().trim_end_matches(':').to_owned()
}

/// The text of the one stderr line for `err`, which exits with `code`.
fn line(err: &anyhow::Error, code: Code) -> String {
    let mut text = one_line(err);
    if let Some(hint) = err
        .chain()
        .find_map(|c| c.downcast_ref::<Error>())
        .and_then(hint)
    {
        text.push_str(hint);
    }
    if code == Code::Usage {
        // A usage error found after parsing reads like clap's.
        text = format!("{text}; {}", help_hint());
    }
    text
}

/// What a command-line user can do about a library error. The library's
/// messages state facts; the hints name this program's commands and flags.
fn hint(e: &Error) -> Option<&'static str> {
    Some(match e {
        Error::Corrupt { .. } => {
            " (run `stratum verify` for a full report, `stratum repair` to salvage)"
        }
        Error::NoStore { .. } => {
            " (a write command such as `stratum create-doc` creates one; or pass --dir)"
        }
        Error::NotAStore { .. } => " (give --dir a new or empty directory)",
        Error::LockTimeout { .. } => "; retry, or raise --lock-timeout",
        Error::IdTooHigh { .. } => "; pass --allow-high-ids to keep it anyway",
        _ => return None,
    })
}

/// Prints `stratum: <error and its causes>` on one line of stderr (unless
/// the error is a closed stdout) and returns the exit code for it.
pub fn report(err: &anyhow::Error) -> u8 {
    match classify(err) {
        Outcome::QuietSuccess => 0,
        Outcome::Different => Code::Other as u8,
        Outcome::Fail(code) => {
            // Nothing more can be done if stderr is closed too.
            let _ = writeln!(io::stderr().lock(), "stratum: {}", line(err, code));
            code as u8
        }
    }
}

/// Reports a panic, which the hook has already described: it is a broken
/// invariant like [`Error::Internal`], and exits the same way.
pub fn panicked() -> u8 {
    report(&Error::internal("a panic; please report it with the message above").into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratum::{DocId, NodeId};

    fn code(e: anyhow::Error) -> Outcome {
        classify(&e)
    }

    #[test]
    fn library_errors_map_to_the_frozen_codes() {
        let io = || io::Error::other("disk on fire");
        let cases: Vec<(Error, Code)> = vec![
            (Error::io("write", "/x", io()), Code::Io),
            (
                Error::NoSpace {
                    path: "/x".into(),
                    needed: 2,
                    available: 1,
                },
                Code::Io,
            ),
            (Error::corrupt("/x", 3, "bad"), Code::Corrupt),
            (
                Error::UnsupportedVersion {
                    path: "/x".into(),
                    found: 9,
                },
                Code::Corrupt,
            ),
            (Error::NoStore { path: "/x".into() }, Code::NotFound),
            (Error::NotAStore { path: "/x".into() }, Code::NotFound),
            (
                Error::LockMissing {
                    path: "/x/LOCK".into(),
                },
                Code::Corrupt,
            ),
            (Error::DocNotFound(DocId(1)), Code::NotFound),
            (
                Error::NodeNotFound {
                    doc: DocId(1),
                    node: NodeId(2),
                },
                Code::NotFound,
            ),
            (Error::invalid("no"), Code::InvalidInput),
            (Error::Poisoned, Code::Io),
            (Error::internal("a broken invariant"), Code::Internal),
            (
                Error::LockTimeout {
                    path: "/x".into(),
                    waited_secs: 0.2,
                },
                Code::LockTimeout,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(
                code(anyhow::Error::new(e).context("line 3")),
                Outcome::Fail(want)
            );
        }
    }

    #[test]
    fn cli_errors_and_plain_failures() {
        assert_eq!(
            code(UsageError("x".into()).into()),
            Outcome::Fail(Code::Usage)
        );
        assert_eq!(
            code(DamageFound("x".into()).into()),
            Outcome::Fail(Code::Corrupt)
        );
        assert_eq!(code(io::Error::other("x").into()), Outcome::Fail(Code::Io));
        for kind in [io::ErrorKind::StorageFull, io::ErrorKind::BrokenPipe] {
            let e = Unreported {
                done: "document 3 was created".into(),
                source: io::Error::from(kind),
            };
            assert_eq!(code(e.into()), Outcome::Fail(Code::Unreported));
        }
        assert_eq!(code(anyhow::anyhow!("x")), Outcome::Fail(Code::Other));
    }

    #[test]
    fn library_messages_state_facts_and_the_cli_adds_its_hints() {
        let cases = [
            (
                Error::corrupt("/d/seg_000001.seg", 7, "bad crc"),
                "`stratum repair`",
            ),
            (Error::NoStore { path: "/d".into() }, "pass --dir"),
            (Error::NotAStore { path: "/d".into() }, "give --dir"),
            (
                Error::LockTimeout {
                    path: "/d/LOCK".into(),
                    waited_secs: 0.5,
                },
                "raise --lock-timeout",
            ),
            (
                Error::IdTooHigh {
                    what: "document id",
                    id: (1 << 53) - 1,
                },
                "--allow-high-ids",
            ),
        ];
        for (e, cli_words) in cases {
            let fact = e.to_string();
            assert!(
                !fact.contains("`stratum ") && !fact.contains("--"),
                "the library names CLI commands or flags: {fact}"
            );
            let line = line(&anyhow::Error::new(e).context("line 2"), Code::Other);
            assert!(line.starts_with(&format!("line 2: {fact}")), "{line}");
            assert_eq!(line.matches(cli_words).count(), 1, "{line}");
        }
    }

    #[test]
    fn messages_are_one_line_without_repeating_a_cause() {
        let e = Error::io("open", "/d/x", io::Error::from_raw_os_error(2));
        let e = anyhow::Error::new(e).context("line 4");
        assert_eq!(
            one_line(&e),
            "line 4: I/O error during open on /d/x: No such file or directory (os error 2)"
        );
        assert_eq!(one_line(&anyhow::anyhow!("a\nb").context("c")), "c: a b");
    }

    #[test]
    fn clap_errors_become_one_line() {
        assert_eq!(
            usage_line(
                "error: the following required arguments were not provided:\n  <DOC>\n\nUsage: stratum get <DOC>\n\nFor more information, try '--help'.\n"
            ),
            "the following required arguments were not provided: <DOC>"
        );
        assert_eq!(
            usage_line(
                "error: unexpected argument '--jsn' found\n\n  tip: a similar argument exists: '--json'\n\nUsage: stratum list [OPTIONS]\n\nFor more information, try '--help'.\n"
            ),
            "unexpected argument '--jsn' found; a similar argument exists: '--json'"
        );
        assert_eq!(
            usage_line(
                "error: invalid value '0' for '<DOC>': 0 is not an id: ids start at 1\n\nFor more information, try '--help'.\n"
            ),
            "invalid value '0' for '<DOC>': 0 is not an id: ids start at 1"
        );
    }

    #[test]
    fn a_broken_pipe_anywhere_in_the_chain_is_success() {
        let pipe = io::Error::from(io::ErrorKind::BrokenPipe);
        assert_eq!(code(pipe.into()), Outcome::QuietSuccess);
        let wrapped = Error::io(
            "write",
            "<stdout>",
            io::Error::from(io::ErrorKind::BrokenPipe),
        );
        assert_eq!(
            code(anyhow::Error::new(wrapped).context("line 2")),
            Outcome::QuietSuccess
        );
    }
}
