//! `man/stratum.1` and `completions/*` are generated from the clap
//! definitions and committed; these tests fail when they drift from the code
//! (run `STRATUM_BLESS=1 cargo test --test generated` to rewrite them), and
//! check that they work: the man page renders without warnings and the bash
//! completion completes subcommand names.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use stratum::cli::Cli;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compares `content` with the committed file, or rewrites it when blessing.
fn check_or_bless(rel: &str, content: &[u8]) {
    let path = root().join(rel);
    if std::env::var_os("STRATUM_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == content,
        "{rel} is out of date with the clap definitions; run `STRATUM_BLESS=1 cargo test --test generated` and commit the result"
    );
}

/// Escapes text for roff: backslashes, and a leading dot or quote.
fn roff(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.replace('\\', "\\e").replace('-', "\\-");
        if line.starts_with('.') || line.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn arg_label(a: &clap::Arg) -> String {
    let mut parts = Vec::new();
    if let Some(s) = a.get_short() {
        parts.push(format!("\\-{s}"));
    }
    if let Some(l) = a.get_long() {
        parts.push(format!("\\-\\-{}", l.replace('-', "\\-")));
    }
    let takes_value = a.get_num_args().is_some_and(|n| n.takes_values()) || a.is_positional();
    let value = a
        .get_value_names()
        .and_then(|v| v.first().map(ToString::to_string))
        .unwrap_or_else(|| a.get_id().to_string().to_uppercase());
    if a.is_positional() {
        format!("\\fI{}\\fR", value.replace('-', "\\-"))
    } else if takes_value
        && !matches!(
            a.get_action(),
            clap::ArgAction::SetTrue | clap::ArgAction::Count
        )
    {
        format!(
            "\\fB{}\\fR \\fI{}\\fR",
            parts.join(", "),
            value.replace('-', "\\-")
        )
    } else {
        format!("\\fB{}\\fR", parts.join(", "))
    }
}

fn args_section(out: &mut String, cmd: &clap::Command) {
    for a in cmd.get_arguments() {
        if a.is_hide_set() || a.is_global_set() && cmd.get_name() != "stratum" {
            continue;
        }
        if matches!(
            a.get_action(),
            clap::ArgAction::Help
                | clap::ArgAction::HelpShort
                | clap::ArgAction::HelpLong
                | clap::ArgAction::Version
        ) {
            continue;
        }
        out.push_str(".TP\n");
        out.push_str(&arg_label(a));
        out.push('\n');
        let help = a
            .get_long_help()
            .or_else(|| a.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        out.push_str(&roff(&help));
        if let Some(env) = a.get_env() {
            let _ = writeln!(out, "[env: {}]", env.to_string_lossy());
        }
        let defaults: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if !defaults.is_empty() {
            let _ = writeln!(out, "[default: {}]", roff(&defaults.join(", ")).trim_end());
        }
    }
}

const EXTRA: &str = r#".SH EXIT STATUS
.TP
.B 0
Success; also when standard output is closed early (\fBstratum dump | head \-1\fR).
.TP
.B 1
Any other failure.
.TP
.B 2
Usage error: bad arguments.
.TP
.B 3
Not found: the document, the node, or a store at \fB\-\-dir\fR.
.TP
.B 4
Invalid input: bad JSON, too large, an id already taken.
.TP
.B 5
The store is locked by another process for longer than \fB\-\-lock\-timeout\fR.
.TP
.B 6
Corruption detected, or a format version this build cannot read.
.TP
.B 7
I/O error (full disk, permission denied, read\-only file system), with the path and the OS message.
.PP
Every error is one line on standard error starting with \fBstratum:\fR; a command that fails changes nothing.
.SH ENVIRONMENT
.TP
.B STRATUM_DIR
The data directory when \fB\-\-dir\fR is not given (default \fI./stratum\-data\fR).
.TP
.B NO_COLOR
When set, no colour is used.
.SH FILES
Inside the data directory:
.TP
.B LOCK
The lock file, flock(2)ed for each command: shared by read commands, exclusive for writes. Never deleted.
.TP
.B active.seg
The segment being appended to.
.TP
.B seg_NNNNNN.seg
Sealed, immutable segments.
.TP
.B seg_NNNNNN.idx
Their sorted index files; caches, rebuilt when missing.
.TP
.B active.idx
A checkpoint of the active segment's index; a cache.
.TP
.B *.stratum\-tmp
Temporary files of an operation in progress; removed by the next write.
.TP
.B quarantine/
Damaged files moved aside by \fBrepair\fR.
.SH JSON OUTPUT
\fBget\fR and \fBdump\fR print documents as
\fB{"id":N,"category":S|null,"version":S|null,"body":S,"inputs":[{"node":N,"input":V,"output":V|null}]}\fR;
a body that is not UTF\-8 is printed as \fB"body_base64"\fR (standard base64) instead of \fB"body"\fR.
\fBload\fR reads the same shape.
\fBlist \-\-json\fR prints \fB{"id","category","version","inputs","outputs","body_bytes"}\fR per line.
\fBdump \-\-records\fR prints \fB{"segment","offset","seq","kind","doc","node","size","crc_ok"}\fR per record.
\fBapply\fR prints \fB{"line","op","doc"}\fR and \fB"node"\fR where one applies.
\fBstats \-\-json\fR and \fBverify \-\-json\fR print one object each; their fields are listed by the command's \fB\-\-help\fR.
Values keep their JSON text exactly: key order, number text and string escapes.
.SH GUARANTEES
A write command that exits 0 has fsynced its record and, after creating, renaming or deleting a file, the directory (unless \fB\-\-no\-sync\fR).
Every command is all\-or\-nothing, also across a crash; the next command recovers by itself, discarding an incomplete last write with a note on standard error.
Acknowledged writes are never lost, deleted items never come back, document and node ids are never reused, also across compaction.
Every record carries a CRC\-32; a value that fails its check is never printed: the command exits 6, \fBverify\fR reports the file and offset, \fBrepair\fR salvages the rest.
Compaction writes and fsyncs the new segments before it removes the old ones; a failed compaction leaves the old segments untouched.
With \fB\-\-no\-sync\fR a power loss may lose the latest commands, but the store stays consistent.
See README.md and docs/FORMAT.md.
"#;

fn man_page() -> String {
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = String::new();
    let version = cmd.get_version().unwrap_or("");
    let _ = writeln!(
        out,
        ".TH STRATUM 1 \"\" \"stratum {version}\" \"User Commands\""
    );
    out.push_str(".SH NAME\nstratum \\- documents with ordered chains of inputs and expected outputs, on local disk\n");
    out.push_str(
        ".SH SYNOPSIS\n\\fBstratum\\fR [\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]\n",
    );
    out.push_str(".SH DESCRIPTION\n");
    out.push_str(&roff(
        &cmd.get_long_about()
            .or_else(|| cmd.get_about())
            .map(ToString::to_string)
            .unwrap_or_default(),
    ));
    out.push_str(".SH OPTIONS\nThese options are accepted by every command.\n");
    args_section(&mut out, &cmd);
    out.push_str(".SH COMMANDS\n");
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        let mut sub = sub.clone();
        let usage = sub.render_usage().to_string();
        let _ = writeln!(out, ".SS {}", sub.get_name());
        out.push_str(&roff(
            &sub.get_long_about()
                .or_else(|| sub.get_about())
                .map(ToString::to_string)
                .unwrap_or_default(),
        ));
        out.push_str(".PP\n");
        out.push_str(&roff(usage.trim_start_matches("Usage: ").trim()));
        args_section(&mut out, &sub);
        if let Some(after) = sub.get_after_long_help().or_else(|| sub.get_after_help()) {
            out.push_str(".PP\n.nf\n");
            out.push_str(&roff(&after.to_string()));
            out.push_str(".fi\n");
        }
    }
    out.push_str(EXTRA);
    out
}

#[test]
fn man_page_is_up_to_date() {
    check_or_bless("man/stratum.1", man_page().as_bytes());
}

#[test]
fn completions_are_up_to_date() {
    use clap_complete::Shell;
    for (shell, file) in [
        (Shell::Bash, "completions/stratum.bash"),
        (Shell::Zsh, "completions/_stratum"),
        (Shell::Fish, "completions/stratum.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "stratum", &mut buf);
        check_or_bless(file, &buf);
    }
}

#[test]
fn man_page_covers_every_command_and_renders_without_warnings() {
    let page = man_page();
    for sub in Cli::command().get_subcommands() {
        if sub.get_name() != "help" {
            assert!(
                page.contains(&format!(".SS {}", sub.get_name())),
                "{} missing from the man page",
                sub.get_name()
            );
        }
    }
    for needle in [
        "EXIT STATUS",
        "ENVIRONMENT",
        "STRATUM_DIR",
        "FILES",
        "GUARANTEES",
        "JSON OUTPUT",
    ] {
        assert!(page.contains(needle), "{needle} missing");
    }
    let Ok(out) = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(root().join("man/stratum.1"))
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
    else {
        panic!("man is not installed (apt-get install man-db groff-base)");
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "man failed: {stderr}");
    assert!(stderr.trim().is_empty(), "man page warnings:\n{stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("create-doc") && text.contains("EXIT STATUS"),
        "{text}"
    );
}

#[test]
fn bash_completion_completes_subcommand_names() {
    let script = root().join("completions/stratum.bash");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(stratum cre); COMP_CWORD=1; COMP_LINE='stratum cre'; COMP_POINT=11; _stratum stratum cre stratum; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            shell_quote(&script)
        ))
        .output()
        .expect("bash runs");
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(got.trim(), "create-doc");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(stratum d); COMP_CWORD=1; COMP_LINE='stratum d'; COMP_POINT=9; _stratum stratum d stratum; printf '%s\\n' \"${{COMPREPLY[@]}}\" | sort",
            shell_quote(&script)
        ))
        .output()
        .expect("bash runs");
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(got.contains("delete-doc") && got.contains("dump"), "{got}");
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

#[test]
fn every_command_help_has_an_example() {
    let mut cmd = Cli::command();
    cmd.build();
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let help = sub.clone().render_long_help().to_string();
        assert!(
            help.contains("Examples:"),
            "`stratum {} --help` has no example",
            sub.get_name()
        );
        assert!(
            sub.get_about().is_some(),
            "{} has no one-line summary",
            sub.get_name()
        );
    }
}
