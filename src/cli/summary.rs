//! What a report-only command (`compact`, `backup`, `repair`, and `dump
//! --salvage` beside its data) says when it is done.
//!
//! One rule for all of them, as with git's and ripgrep's `-q`: with `--json`
//! the report is data, one JSON object on stdout; otherwise it is one
//! `stratum: …` line for people on stderr, and `--quiet` drops it, so a
//! crontab line stays silent unless something failed.

use std::io::Write;

use serde::Serialize;

use crate::cli::{GlobalArgs, message, output};

/// Shows a command's report: `json` on stdout with `--json`, else `human`
/// on stderr unless `--quiet`.
///
/// # Errors
/// A failed write to stdout.
pub fn report<T: Serialize>(
    g: &GlobalArgs,
    json: bool,
    value: &T,
    human: &str,
) -> anyhow::Result<()> {
    if json {
        let mut out = output::stdout();
        output::write_json_line(&mut out, value).map_err(output::write_err)?;
        out.flush().map_err(output::write_err)?;
    } else if !g.quiet {
        message(human);
    }
    Ok(())
}

/// As [`report`], for a command whose stdout carries its data
/// (`dump --salvage`): the report goes to stderr in either form, and
/// `--quiet` drops it.
pub fn report_beside_data<T: Serialize>(g: &GlobalArgs, json: bool, value: &T, human: &str) {
    if g.quiet {
        return;
    }
    if json {
        let mut line = Vec::new();
        if output::write_json_line(&mut line, value).is_ok() {
            // A closed stderr is not worth failing a finished command.
            let _ = std::io::stderr().lock().write_all(&line);
        }
    } else {
        message(human);
    }
}
