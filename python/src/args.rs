//! The arguments the methods share: a document named by id or key, the
//! `stratum.CLEAR` sentinel that clears a field, metadata, meta patches and
//! outputs, the filters of `list` and `docs`, and a conflict policy.
//!
//! `None` keeps its old meaning everywhere (an omitted field, no output),
//! so clearing needs a value of its own: `stratum.CLEAR`. One sentinel per
//! field's own argument, rather than `clear_key=True` flags, means a call
//! cannot both set and clear the same field.

use std::ops::RangeInclusive;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyRange, PyString};
use stratum::{DocId, Json, OnConflict, Selection, Store};

use crate::errors;
use crate::value::{self, PyJson};

/// A document as a caller names it: an `int` is its id, a `str` its key.
/// Python's types keep the two apart, so keys need no `key:` prefix as
/// they do on the command line.
pub(crate) enum DocRef {
    Id(DocId),
    Key(String),
}

impl DocRef {
    /// The id of the live document this names.
    ///
    /// # Errors
    /// [`stratum::Error::KeyNotFound`] for a key no live document holds.
    pub(crate) fn resolve(&self, s: &Store) -> stratum::Result<DocId> {
        match self {
            DocRef::Id(id) => Ok(*id),
            DocRef::Key(k) => s
                .find_key(k)?
                .ok_or_else(|| stratum::Error::KeyNotFound(k.clone())),
        }
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for DocRef {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(DocRef::Key(s.to_str()?.to_owned()));
        }
        Ok(DocRef::Id(DocId(obj.extract::<u64>()?)))
    }
}

/// `stratum.CLEAR`: passed for a field, removes it (`update_doc(doc,
/// category=stratum.CLEAR)`). There is one instance; the class cannot be
/// made from Python.
#[pyclass(module = "stratum", name = "Clear", frozen)]
pub(crate) struct PyClear;

#[pymethods]
impl PyClear {
    fn __repr__(&self) -> &'static str {
        "stratum.CLEAR"
    }
}

fn is_clear(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_instance_of::<PyClear>()
}

/// A field of `update_doc`: `None` keeps it, `CLEAR` clears it, anything
/// else sets it.
pub(crate) fn patch<T>(
    obj: Option<&Bound<'_, PyAny>>,
    set: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<T>,
) -> PyResult<Option<Option<T>>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) if is_clear(o) => Ok(Some(None)),
        Some(o) => set(o).map(|v| Some(Some(v))),
    }
}

/// A text field (key, category, version).
pub(crate) fn text(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    match obj.cast::<PyString>() {
        Ok(s) => s.to_str().map(str::to_owned).map_err(|_| {
            errors::invalid(format!(
                "{what}: a str with a lone surrogate is not UTF-8 text"
            ))
        }),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{what} must be a str or stratum.CLEAR, not {}",
            obj.get_type()
                .name()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string())
        ))),
    }
}

/// Metadata: a dict (or a `Json` holding an object), kept as exact text;
/// the library refuses anything that is not an object.
pub(crate) fn meta(obj: &Bound<'_, PyAny>) -> PyResult<Json> {
    value::to_json(obj, "meta")
}

/// An optional metadata argument: `None` is none.
pub(crate) fn opt_meta(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Json>> {
    obj.filter(|o| !o.is_none()).map(meta).transpose()
}

/// `set_output(…, None)` is refused with this message: `None` is "no
/// output" everywhere else, so it cannot also be the JSON value null.
pub(crate) const NONE_OUTPUT: &str = "output None means \"no expected output\": to store the JSON value null pass stratum.NULL, and to remove an output call clear_output";

/// An expected output: `None` is none; `stratum.NULL` (or any `Json("null")`)
/// is the JSON value null, a real output.
pub(crate) fn output(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Json>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => value::to_json(o, "output").map(Some),
    }
}

/// `stratum.NULL`, the JSON value null as an output or anywhere a value goes.
pub(crate) fn null(py: Python<'_>) -> PyResult<PyJson> {
    Json::parse("null")
        .map(|json| PyJson { json })
        .map_err(|e| errors::from_lib(py, e))
}

/// True for a `Json` holding null (`stratum.NULL`).
pub(crate) fn is_null(obj: &Bound<'_, PyAny>) -> bool {
    obj.cast::<PyJson>()
        .is_ok_and(|j| j.get().json.as_str() == "null")
}

/// The filters of `list` and `docs`, as the library's selection: each one
/// given must hold.
pub(crate) struct Filters<'a, 'py> {
    pub(crate) category: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) key_prefix: Option<String>,
    pub(crate) meta: Option<&'a Bound<'py, PyAny>>,
    pub(crate) ids: Option<&'a Bound<'py, PyAny>>,
    pub(crate) missing_output: bool,
}

impl Filters<'_, '_> {
    /// The selection; a bad `meta` or `ids` raises before the store is read.
    pub(crate) fn selection(self) -> PyResult<Selection> {
        let mut sel = Selection::new();
        if let Some(c) = self.category {
            sel = sel.category(c);
        }
        if let Some(k) = self.key {
            sel = sel.key(k);
        }
        if let Some(p) = self.key_prefix {
            sel = sel.key_prefix(p);
        }
        if let Some(m) = self.meta.filter(|m| !m.is_none()) {
            let Ok(fields) = m.cast::<PyDict>() else {
                return Err(PyTypeError::new_err(format!(
                    "meta must be a dict of field names and the values they must have, not {}",
                    type_name(m)
                )));
            };
            for (field, value) in fields.iter() {
                let name = match field.cast::<PyString>() {
                    Ok(s) => s.to_str()?.to_owned(),
                    Err(_) => {
                        return Err(PyTypeError::new_err(format!(
                            "meta field names must be str, not {}",
                            type_name(&field)
                        )));
                    }
                };
                let value = value::to_json(&value, &format!("meta[{name:?}]"))?;
                sel = sel.meta(name, value);
            }
        }
        if let Some(r) = self.ids.filter(|r| !r.is_none()) {
            sel = sel.ids(id_range(r)?);
        }
        if self.missing_output {
            sel = sel.missing_output();
        }
        Ok(sel)
    }
}

/// `ids=`: an id, or a `range` of them with step 1 (its stop left out, as
/// Python's ranges do).
fn id_range(obj: &Bound<'_, PyAny>) -> PyResult<RangeInclusive<u64>> {
    // Ids are 1 to 2^53 - 1, so bounds past u64 change nothing once clamped.
    let clamp = |n: i128| n.clamp(0, i128::from(u64::MAX)) as u64;
    if let Ok(r) = obj.cast::<PyRange>() {
        let bound = |name: &str| -> PyResult<i128> { r.getattr(name)?.extract() };
        if bound("step")? != 1 {
            return Err(errors::invalid("ids: a range of ids must have step 1"));
        }
        let (start, stop) = (bound("start")?, bound("stop")?);
        if stop <= start.max(1) {
            return Ok(RangeInclusive::new(1, 0));
        }
        return Ok(clamp(start)..=clamp(stop - 1));
    }
    if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
        let n = clamp(obj.extract::<i128>()?);
        return Ok(n..=n);
    }
    Err(PyTypeError::new_err(format!(
        "ids must be an int or a range, not {}",
        type_name(obj)
    )))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// Refused when a call is given both `meta=` and `meta_patch=`.
pub(crate) const META_AND_PATCH: &str = "give either meta or meta_patch, not both: meta replaces the meta whole, meta_patch merges into it";

/// `on_conflict=`: `"fail"`, `"replace"` or `"skip"`.
pub(crate) fn on_conflict(obj: Option<&Bound<'_, PyAny>>) -> PyResult<OnConflict> {
    let Some(o) = obj.filter(|o| !o.is_none()) else {
        return Ok(OnConflict::Fail);
    };
    let name = o.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "on_conflict must be \"fail\", \"replace\" or \"skip\", not {}",
            type_name(o)
        ))
    })?;
    name.to_str()?
        .parse()
        .map_err(|e| errors::from_lib(o.py(), e))
}

/// A meta patch (`meta_patch=`): a dict, or a `Json` holding an object,
/// merged into the meta as RFC 7386 says.
pub(crate) fn meta_patch(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Json>> {
    match obj.filter(|o| !o.is_none()) {
        None => Ok(None),
        Some(o) if is_clear(o) => Err(errors::invalid(
            "meta_patch cannot be stratum.CLEAR: pass meta=stratum.CLEAR to remove the meta",
        )),
        Some(o) => value::to_json(o, "meta_patch").map(Some),
    }
}
