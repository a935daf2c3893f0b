//! The library's reports as dicts with the fields (and names) of the
//! commands' `--json` output: `stats`, `verify`, `list`; and the `compact`
//! and `backup` reports.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use stratum::engine::{BackupReport, CompactReport, ProblemKind, Stats, VerifyReport};

/// A dict of literal keys and any values Python can take.
macro_rules! dict {
    ($py:expr, $($k:literal => $v:expr),* $(,)?) => {{
        let d = PyDict::new($py);
        $(d.set_item($k, $v)?;)*
        d
    }};
}

fn list<'py, T>(
    py: Python<'py>,
    items: &[T],
    f: impl Fn(&T) -> PyResult<Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for item in items {
        out.append(f(item)?)?;
    }
    Ok(out)
}

pub(crate) fn stats<'py>(py: Python<'py>, s: &Stats) -> PyResult<Bound<'py, PyDict>> {
    let segments = list(py, &s.segments, |seg| {
        Ok(dict!(py,
            "name" => &seg.name,
            "bytes" => seg.bytes,
            "live_bytes" => seg.live_bytes,
            "dead_bytes" => seg.dead_bytes,
        ))
    })?;
    let last_compaction = match &s.last_compaction {
        Some((first, n)) => Some(dict!(py, "first_segment" => first, "segments" => n)),
        None => None,
    };
    Ok(dict!(py,
        "segments" => segments,
        "documents" => s.documents,
        "inputs" => s.inputs,
        "outputs" => s.outputs,
        "tombstones" => s.tombstones,
        "total_bytes" => s.total_bytes,
        "live_bytes" => s.live_bytes,
        "garbage_ratio" => s.garbage_ratio,
        "last_seq" => s.last_seq,
        "doc_id_high_water" => s.doc_id_high_water,
        "format_version" => s.format_version,
        "last_compaction" => last_compaction,
    ))
}

pub(crate) fn verify<'py>(py: Python<'py>, r: &VerifyReport) -> PyResult<Bound<'py, PyDict>> {
    let files = list(py, &r.files, |f| {
        Ok(dict!(py,
            "name" => &f.name,
            "bytes" => f.bytes,
            "records" => f.records,
            "ok" => f.ok,
        ))
    })?;
    let problems = list(py, &r.problems, |p| {
        let kind = match p.kind {
            ProblemKind::Damage => "damage",
            ProblemKind::Notice => "notice",
        };
        Ok(dict!(py,
            "file" => &p.file,
            "offset" => p.offset,
            "kind" => kind,
            "message" => &p.message,
        ))
    })?;
    Ok(dict!(py,
        "ok" => r.is_ok(),
        "files" => files,
        "problems" => problems,
        "bytes" => r.bytes,
        "records" => r.records,
    ))
}

pub(crate) fn summaries<'py>(
    py: Python<'py>,
    rows: &[stratum::DocSummary],
) -> PyResult<Bound<'py, PyList>> {
    list(py, rows, |d| {
        Ok(dict!(py,
            "id" => d.id.0,
            "key" => &d.key,
            "category" => &d.category,
            "version" => &d.version,
            "inputs" => d.inputs,
            "outputs" => d.outputs,
            "body_bytes" => d.body_len,
        ))
    })
}

pub(crate) fn compact<'py>(py: Python<'py>, r: &CompactReport) -> PyResult<Bound<'py, PyDict>> {
    Ok(dict!(py,
        "bytes_before" => r.bytes_before,
        "bytes_after" => r.bytes_after,
        "segments_before" => r.segments_before,
        "segments_after" => r.segments_after,
        "documents" => r.documents,
    ))
}

pub(crate) fn backup<'py>(py: Python<'py>, r: &BackupReport) -> PyResult<Bound<'py, PyDict>> {
    Ok(dict!(py, "linked" => r.linked, "copied" => r.copied, "bytes" => r.bytes))
}
