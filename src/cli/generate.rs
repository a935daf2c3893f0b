//! `stratum man` and `stratum completions SHELL`: the man page and the
//! shell completions, generated from the clap definitions so they cannot
//! drift from the code. The committed `man/stratum.1` and `completions/*`
//! are this output (`tests/generated.rs` checks it), and packagers can run
//! these commands at install time, as with ripgrep's `--generate`.

use std::fmt::Write as _;
use std::io::Write as _;

use clap::{Args, CommandFactory, ValueEnum};

use crate::cli::{Cli, output};

/// Print the man page (roff) on standard output.
#[derive(Debug, Args)]
#[command(
    about = "Print the man page (roff) on standard output",
    after_help = "\
Examples:
  stratum man > /usr/local/share/man/man1/stratum.1
  stratum man | man -l -"
)]
pub struct ManArgs {}

/// Print a shell completion script on standard output.
#[derive(Debug, Args)]
#[command(
    about = "Print a shell completion script on standard output",
    after_help = "\
Examples:
  stratum completions bash > ~/.local/share/bash-completion/completions/stratum
  stratum completions zsh > ~/.zfunc/_stratum
  stratum completions fish > ~/.config/fish/completions/stratum.fish"
)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The shells with a completion script.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Shell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// Runs `stratum man`.
pub fn run_man(_args: ManArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(man_page().as_bytes())
        .map_err(output::write_err)?;
    out.flush().map_err(output::write_err)?;
    Ok(())
}

/// Runs `stratum completions SHELL`.
pub fn run_completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "stratum", &mut buf);
    let mut out = std::io::stdout().lock();
    out.write_all(&buf).map_err(output::write_err)?;
    out.flush().map_err(output::write_err)?;
    Ok(())
}

/// Help text as roff: escaped as by [`roff`], and each run of indented
/// lines (the JSON shapes in the long help) set as code with `.EX`/`.EE`,
/// so that the man page shows them as written instead of reflowing them.
fn roff_help(text: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for line in text.lines() {
        let code = line.starts_with("  ");
        if code && !in_code {
            out.push_str(".RS 4\n.EX\n");
        } else if !code && in_code {
            out.push_str(".EE\n.RE\n");
        }
        in_code = code;
        if line.trim().is_empty() {
            // A paragraph break that keeps an option's indentation.
            out.push_str(".sp\n");
        } else {
            out.push_str(&roff(line));
        }
    }
    if in_code {
        out.push_str(".EE\n.RE\n");
    }
    out
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
        out.push_str(&roff_help(&help));
        let values: Vec<String> = a
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_owned())
            .collect();
        let flag = matches!(
            a.get_action(),
            clap::ArgAction::SetTrue | clap::ArgAction::SetFalse | clap::ArgAction::Count
        );
        if !flag && !values.is_empty() {
            let _ = writeln!(out, "[possible values: {}]", values.join(", "));
        }
        if let Some(env) = a.get_env() {
            let _ = writeln!(out, "[env: {}]", env.to_string_lossy());
        }
        let defaults: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        // A flag's default ("false") says nothing.
        if !flag && !defaults.is_empty() {
            let _ = writeln!(out, "[default: {}]", roff(&defaults.join(", ")).trim_end());
        }
    }
}

const EXTRA: &str = r#".SH EXIT STATUS
.TP
.B 0
Success; also when the standard output of a read command is closed early (\fBstratum dump | head \-1\fR).
.TP
.B 1
Any other failure; for \fBdiff\fR, the two sides differ.
.TP
.B 2
Usage error: bad arguments.
.TP
.B 3
Not found: the document, the key (\fBkey:NAME\fR that no live document holds), the node, or a store at \fB\-\-dir\fR (also a write asked to make a store in a directory that is not empty and holds none).
.TP
.B 4
Invalid input: bad JSON, too large, an id already taken, a key another live document holds (without \fB\-\-on\-conflict\fR) or longer than 1024 bytes, a meta that is not an object.
.TP
.B 5
The store is locked by another process for longer than \fB\-\-lock\-timeout\fR.
.TP
.B 6
Corruption detected, a format version this build cannot read, or a store whose \fBLOCK\fR file was deleted.
.TP
.B 7
I/O error (full disk, permission denied, read\-only file system), with the path and the OS message.
.TP
.B 8
The write is done and durable, but printing its result (the new ids) failed: standard output was full, closed or failing. Do not run the command again: that would make a duplicate.
.TP
.B 9
An internal error: a bug in stratum (an internal check failed). Please report it with the message.
.PP
Every error is one line on standard error starting with \fBstratum:\fR, usage errors included (they end with \fItry 'stratum COMMAND \-\-help'\fR); a command that fails changes nothing, except under status 8, whose message says what was written.
.SH ENVIRONMENT
.TP
.B STRATUM_DIR
The data directory when \fB\-\-dir\fR is not given (default \fI./stratum\-data\fR).
.TP
.B NO_COLOR
When set and not empty, no colour is used (unless \fB\-\-color=always\fR).
.TP
.B TERM
When unset or \fBdumb\fR, no colour is used (unless \fB\-\-color=always\fR).
.SH FILES
Inside the data directory:
.TP
.B LOCK
The lock file, flock(2)ed for each command: shared by read commands, exclusive for writes; a waiting writer also holds a record lock on its first byte, so that arriving readers wait for it. Created with the store and never deleted: a store without it is refused (exit 6) until it is recreated.
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
.SH STANDARD INPUT
\fBcreate\-doc\fR, \fBadd\-input\fR, \fBset\-output\fR, \fBload\fR and \fBapply\fR read their value, body or file from standard input when it is \fB\-\fR or left out; when it is left out and standard input is a terminal they exit 2 instead of waiting (\fB\-\fR still reads the terminal).
\fBupdate\-doc\fR reads standard input only for \fB\-\fR: a left\-out body keeps the body.
Nothing else reads standard input.
.SH JSON OUTPUT
Every command that prints something accepts \fB\-\-json\fR; where the output is JSON already (ids, documents, JSON Lines) it changes nothing.
Sizes in JSON are exact byte counts; tables show them as \fBdu \-h\fR does.
Values keep their JSON text exactly: key order, number text and string escapes.
.PP
\fBget\fR and \fBdump\fR print documents, one per line (\fBload\fR reads the same shape):
.RS 4
.EX
{"id":N, "key":S, "category":S|null, "version":S|null, "meta":{...},
 "body":S, "inputs":[{"node":N, "input":V, "meta":{...},
 "output":V|null, "has_output":true}]}
.EE
.RE
A body that is not UTF\-8 is printed as \fB"body_base64"\fR (standard base64) instead of \fB"body"\fR.
\fB"key"\fR and \fB"meta"\fR appear only when set.
A node without an expected output has \fB"output":null\fR; an output that is the JSON value null also has \fB"has_output":true\fR.
.PP
\fBlist \-\-json\fR, one line per document:
.RS 4
.EX
{"id", "key", "category", "version", "inputs", "outputs", "body_bytes"}
.EE
.RE
\fBdump \-\-records\fR, one line per record:
.RS 4
.EX
{"segment", "offset", "seq", "kind", "doc", "node", "size", "crc_ok"}
.EE
.RE
\fBapply\fR, one line per operation (\fB"node"\fR where one applies, \fB"conflict"\fR where \fB\-\-on\-conflict\fR acted):
.RS 4
.EX
{"line", "op", "doc", "node", "conflict"}
.EE
.RE
\fBstats \-\-json\fR:
.RS 4
.EX
{"segments": [{"name", "bytes", "live_bytes", "dead_bytes"}],
 "documents", "inputs", "outputs", "tombstones",
 "total_bytes", "live_bytes", "garbage_ratio", "last_seq",
 "doc_id_high_water", "format_version",
 "last_compaction": null or {"first_segment", "segments"}}
.EE
.RE
\fBstats \-\-by category \-\-json\fR, one line per category (null first):
.RS 4
.EX
{"category", "documents", "inputs", "outputs"}
.EE
.RE
\fBdiff\fR prints one JSON line per difference, in the shapes its section above lists.
.PP
\fBverify \-\-json\fR:
.RS 4
.EX
{"ok", "files": [{"name", "bytes", "records", "ok"}],
 "problems": [{"file", "offset", "kind", "message"}],
 "bytes", "records"}
.EE
.RE
\fBcompact \-\-json\fR (also with \fB\-\-dry\-run\fR, and when a threshold is not met):
.RS 4
.EX
{"compacted", "dry_run", "full", "reason", "segments", "bytes",
 "live_bytes", "reclaimable_bytes", "garbage_ratio", "merge",
 "merge_bytes", "write_bytes", "segments_after", "bytes_after"}
.EE
.RE
\fBbackup \-\-json\fR:
.RS 4
.EX
{"dest", "linked", "copied", "bytes", "verified"}
.EE
.RE
\fBrepair \-\-json\fR:
.RS 4
.EX
{"quarantined": [S], "records_kept", "damaged_bytes",
 "uncommitted_records", "reindexed": [S], "compacted"}
.EE
.RE
\fBdump \-\-salvage \-\-json\fR writes its summary to standard error (standard output carries the documents):
.RS 4
.EX
{"documents", "files", "good_records", "damaged_bytes",
 "uncommitted_records"}
.EE
.RE
\fBcompact\fR, \fBbackup\fR and \fBrepair\fR print these on standard output; without \fB\-\-json\fR they say what they did in one line on standard error, and with \fB\-\-quiet\fR nothing.
.SH GUARANTEES
A write command that exits 0 has fsynced its record and, after creating, renaming or deleting a file, the directory (unless \fB\-\-no\-sync\fR).
Every command is all\-or\-nothing, also across a crash; the next command recovers by itself, discarding an incomplete last write with a note on standard error.
Acknowledged writes are never lost, deleted items never come back, document and node ids are never reused, also across compaction.
Every record carries a CRC\-32; a value that fails its check is never printed: the command exits 6, \fBverify\fR reports the file and offset, \fBrepair\fR salvages the rest.
Compaction writes and fsyncs the new segments before it removes the old ones; a failed compaction leaves the old segments untouched.
With \fB\-\-no\-sync\fR a killed process loses nothing, but a power loss can lose the latest commands; if the disk wrote them out of order, the active segment may come back with a hole and the store then refuses to open until \fBstratum repair\fR keeps every intact record.
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
    out.push_str(&roff_help(
        &cmd.get_long_about()
            .or_else(|| cmd.get_about())
            .map(ToString::to_string)
            .unwrap_or_default(),
    ));
    out.push_str(
        ".SH OPTIONS\nThese options are accepted by every command, before or after its name.\n",
    );
    args_section(&mut out, &cmd);
    out.push_str(".SH COMMANDS\n");
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        let mut sub = sub.clone();
        let usage = sub.render_usage().to_string();
        let _ = writeln!(out, ".SS {}", sub.get_name());
        out.push_str(&roff_help(
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
