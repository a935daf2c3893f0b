//! The arguments the methods share: a document named by id or key, the
//! `stratum.CLEAR` sentinel that clears a field, metadata and outputs.
//!
//! `None` keeps its old meaning everywhere (an omitted field, no output),
//! so clearing needs a value of its own: `stratum.CLEAR`. One sentinel per
//! field's own argument, rather than `clear_key=True` flags, means a call
//! cannot both set and clear the same field.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use stratum::{DocId, Json, Store};

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
