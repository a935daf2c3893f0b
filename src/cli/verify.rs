//! `stratum verify`: read every byte, report every problem.

use std::io::Write;

use clap::Args;
use serde::Serialize;

use crate::cli::{DamageFound, GlobalArgs, output};
use stratum::engine::{self, ProblemKind, VerifyReport};

/// Check every record of every file and report each problem.
///
/// Reads every segment and index file, checks every CRC and the structure
/// (lengths, kinds, an output only for an existing input, ...), and reports
/// each problem with its file and byte offset. Works on damaged stores and
/// changes nothing. Exits 6 when anything is damaged; notices (a torn tail,
/// a leftover temporary file: the next write cleans them up) do not count.
/// With --quiet it prints nothing: the exit status and, on damage, the one
/// error line say it all.
///
/// The JSON form (--json) is one object:
///   {"ok", "files": [{"name", "bytes", "records", "ok"}],
///    "problems": [{"file", "offset", "kind", "message"}],
///    "bytes", "records"}
/// "kind" is "damage" or "notice"; "offset" is null when a problem is not
/// at one place.
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Check every record of every file and report each problem",
    after_help = "\
Examples:
  stratum verify
  stratum verify --json | jq -r '.problems[] | \"\\(.file):\\(.offset) \\(.message)\"'
  stratum verify --quiet || echo \"store damaged\" >&2"
)]
pub struct VerifyArgs {
    /// One JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct FileJson<'a> {
    name: &'a str,
    bytes: u64,
    records: u64,
    ok: bool,
}

#[derive(Serialize)]
struct ProblemJson<'a> {
    file: &'a str,
    offset: Option<u64>,
    kind: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct ReportJson<'a> {
    ok: bool,
    files: Vec<FileJson<'a>>,
    problems: Vec<ProblemJson<'a>>,
    bytes: u64,
    records: u64,
}

fn kind_name(k: ProblemKind) -> &'static str {
    match k {
        ProblemKind::Damage => "damage",
        ProblemKind::Notice => "notice",
    }
}

/// Runs `verify`.
///
/// # Errors
/// [`DamageFound`] after printing the report when anything is damaged; no
/// store, lock timeout, I/O.
pub fn run(g: &GlobalArgs, args: VerifyArgs) -> anyhow::Result<()> {
    let bar = output::Bar::new(g.quiet, "verify", Some(0));
    let report = engine::verify(&g.options(), &mut |p| bar.update(p))?;
    bar.finish();
    let mut out = output::stdout();
    if args.json {
        output::write_json_line(&mut out, &to_json(&report)).map_err(output::write_err)?;
    } else if !g.quiet {
        write_tables(&mut out, &report).map_err(output::write_err)?;
    }
    out.flush().map_err(output::write_err)?;
    if report.is_ok() {
        return Ok(());
    }
    let damaged: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Damage)
        .collect();
    let mut files: Vec<&str> = damaged.iter().map(|p| p.file.as_str()).collect();
    files.sort_unstable();
    files.dedup();
    let first = damaged
        .first()
        .map(|p| format!("; first: {}: {}", location(&p.file, p.offset), p.message))
        .unwrap_or_default();
    Err(DamageFound(format!(
        "verify found {} in {}{first}",
        output::count(damaged.len(), "problem"),
        output::count(files.len(), "file"),
    ))
    .into())
}

fn location(file: &str, offset: Option<u64>) -> String {
    match offset {
        Some(o) => format!("{file}:{o}"),
        None => file.to_owned(),
    }
}

fn to_json(r: &VerifyReport) -> ReportJson<'_> {
    ReportJson {
        ok: r.is_ok(),
        files: r
            .files
            .iter()
            .map(|f| FileJson {
                name: &f.name,
                bytes: f.bytes,
                records: f.records,
                ok: f.ok,
            })
            .collect(),
        problems: r
            .problems
            .iter()
            .map(|p| ProblemJson {
                file: &p.file,
                offset: p.offset,
                kind: kind_name(p.kind),
                message: &p.message,
            })
            .collect(),
        bytes: r.bytes,
        records: r.records,
    }
}

fn write_tables(out: &mut impl Write, r: &VerifyReport) -> std::io::Result<()> {
    let mut files = output::table(&["file", "size", "records", "status"]);
    output::align_right(&mut files, &[1, 2]);
    for f in &r.files {
        files.add_row(vec![
            f.name.clone(),
            output::human_size(f.bytes),
            f.records.to_string(),
            if f.ok { "ok" } else { "DAMAGED" }.to_owned(),
        ]);
    }
    output::write_table(out, &files)?;
    if !r.problems.is_empty() {
        let mut problems = output::table(&["where", "kind", "problem"]);
        for p in &r.problems {
            problems.add_row(vec![
                location(&p.file, p.offset),
                kind_name(p.kind).to_owned(),
                p.message.clone(),
            ]);
        }
        output::write_table(out, &problems)?;
    }
    let damaged = r
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Damage)
        .count();
    writeln!(
        out,
        "{}: {} files, {} records, {} checked, {} found",
        if r.is_ok() { "ok" } else { "DAMAGED" },
        r.files.len(),
        r.records,
        output::human_size(r.bytes),
        output::count(damaged, "problem"),
    )
}
