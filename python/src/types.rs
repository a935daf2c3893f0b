//! The read snapshots a caller sees: `Document` and `Node` (`Json` lives with
//! the conversions it is made of, in `value.rs`).
//!
//! `Document` and `Node` are frozen snapshots of what a read returned. Each
//! keeps the stored JSON text beside the Python values made from it, so
//! `to_json()` prints exactly the line `stratum get` prints and a `raw=True`
//! read can hand out the text unchanged.

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::value::{self, PyJson};

/// One input node of a document's chain, with its expected output and
/// meta. An output that is the JSON value null reads as `None`, as a node
/// without one does: `has_output` tells them apart (and a `raw=True` read
/// gives `stratum.NULL` for the former).
#[pyclass(module = "stratum", name = "Node", frozen)]
pub(crate) struct PyNode {
    /// The node id.
    #[pyo3(get)]
    id: u64,
    /// The input value (a `Json` after a `raw=True` read).
    #[pyo3(get)]
    input: Py<PyAny>,
    /// The expected output, or `None` (a `Json` after a `raw=True` read).
    #[pyo3(get)]
    output: Py<PyAny>,
    /// The node's metadata, a dict (a `Json` after a `raw=True` read), or
    /// `None`.
    #[pyo3(get)]
    meta: Py<PyAny>,
    node: stratum::Node,
}

fn json_object(py: Python<'_>, json: &stratum::Json, raw: bool) -> PyResult<Py<PyAny>> {
    if raw {
        Ok(Py::new(py, PyJson { json: json.clone() })?.into_any())
    } else {
        Ok(value::to_py(py, json.as_str())?.unbind())
    }
}

/// A node for Python; with `raw`, its values as `Json`.
pub(crate) fn node(py: Python<'_>, node: stratum::Node, raw: bool) -> PyResult<PyNode> {
    let input = json_object(py, &node.input, raw)?;
    let output = match &node.output {
        Some(o) => json_object(py, o, raw)?,
        None => py.None(),
    };
    let meta = match &node.meta {
        Some(m) => json_object(py, m, raw)?,
        None => py.None(),
    };
    Ok(PyNode {
        id: node.id.0,
        input,
        output,
        meta,
        node,
    })
}

#[pymethods]
impl PyNode {
    /// True when the node has an expected output, the JSON value null
    /// included.
    #[getter]
    fn has_output(&self) -> bool {
        self.node.output.is_some()
    }

    /// `{"node":…,"input":…,"output":…}`, as `stratum get DOC --node N`
    /// prints it.
    fn to_json(&self) -> String {
        self.node.to_json()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let output = match &self.node.output {
            Some(o) if o.as_str() == "null" => "stratum.NULL".to_owned(),
            _ => self.output.bind(py).repr()?.to_string(),
        };
        let meta = match &self.node.meta {
            Some(_) => format!(", meta={}", self.meta.bind(py).repr()?),
            None => String::new(),
        };
        Ok(format!(
            "Node(id={}, input={}, output={output}{meta})",
            self.id,
            self.input.bind(py).repr()?,
        ))
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let py = other.py();
        let Ok(o) = other.cast::<PyNode>() else {
            return py.NotImplemented();
        };
        match op {
            CompareOp::Eq => bool_object(py, self.node == o.get().node),
            CompareOp::Ne => bool_object(py, self.node != o.get().node),
            _ => py.NotImplemented(),
        }
    }
}

fn bool_object(py: Python<'_>, b: bool) -> Py<PyAny> {
    pyo3::types::PyBool::new(py, b)
        .to_owned()
        .into_any()
        .unbind()
}

/// A document with its whole chain, as a read returned it.
#[pyclass(module = "stratum", name = "Document", frozen)]
pub(crate) struct PyDocument {
    /// The document id.
    #[pyo3(get)]
    id: u64,
    /// The category, or `None`.
    #[pyo3(get)]
    category: Option<String>,
    /// The version, or `None`.
    #[pyo3(get)]
    version: Option<String>,
    /// The document's unique key, or `None`.
    #[pyo3(get)]
    key: Option<String>,
    /// The document's metadata, a dict (a `Json` after a `raw=True` read),
    /// or `None`.
    #[pyo3(get)]
    meta: Py<PyAny>,
    meta_json: Option<stratum::Json>,
    /// The body, exactly as stored.
    #[pyo3(get)]
    body: Py<PyBytes>,
    /// The input nodes in chain order (a tuple of `Node`).
    #[pyo3(get)]
    inputs: Py<PyTuple>,
}

/// A document for Python; with `raw`, its values as `Json`.
pub(crate) fn document(py: Python<'_>, doc: stratum::Document, raw: bool) -> PyResult<PyDocument> {
    let mut inputs = Vec::with_capacity(doc.inputs.len());
    for n in doc.inputs {
        inputs.push(Py::new(py, node(py, n, raw)?)?);
    }
    let meta = match &doc.meta {
        Some(m) => json_object(py, m, raw)?,
        None => py.None(),
    };
    Ok(PyDocument {
        id: doc.id.0,
        category: doc.category,
        version: doc.version,
        key: doc.key,
        meta,
        meta_json: doc.meta,
        body: PyBytes::new(py, &doc.body).unbind(),
        inputs: PyTuple::new(py, inputs)?.unbind(),
    })
}

impl PyDocument {
    /// The library's document again (for its exact JSON form).
    fn rebuild(&self, py: Python<'_>) -> PyResult<stratum::Document> {
        let mut inputs = Vec::new();
        for item in self.inputs.bind(py).iter() {
            inputs.push(item.cast::<PyNode>()?.get().node.clone());
        }
        Ok(stratum::Document {
            id: stratum::DocId(self.id),
            key: self.key.clone(),
            category: self.category.clone(),
            version: self.version.clone(),
            meta: self.meta_json.clone(),
            body: self.body.bind(py).as_bytes().to_vec(),
            inputs,
        })
    }
}

#[pymethods]
impl PyDocument {
    /// The body decoded as UTF-8 (`UnicodeDecodeError` when it is not).
    #[getter]
    fn text(&self, py: Python<'_>) -> PyResult<String> {
        value::body_text(py, self.body.bind(py).as_bytes())
    }

    /// The document in the `get` shape on one line, byte for byte what
    /// `stratum get DOC` prints (without the newline).
    pub(crate) fn to_json(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.rebuild(py)?.to_json())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let key = match &self.key {
            Some(k) => format!(", key={}", PyString::new(py, k).repr()?),
            None => String::new(),
        };
        Ok(format!(
            "Document(id={}{key}, category={}, version={}, body=<{} bytes>, inputs=<{} nodes>)",
            self.id,
            self.category.as_deref().map_or_else(
                || Ok("None".to_owned()),
                |c| PyString::new(py, c).repr().map(|r| r.to_string())
            )?,
            self.version.as_deref().map_or_else(
                || Ok("None".to_owned()),
                |c| PyString::new(py, c).repr().map(|r| r.to_string())
            )?,
            self.body.bind(py).as_bytes().len(),
            self.inputs.bind(py).len()
        ))
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Ok(o) = other.cast::<PyDocument>() else {
            return Ok(py.NotImplemented());
        };
        let same = self.rebuild(py)? == o.get().rebuild(py)?;
        Ok(match op {
            CompareOp::Eq => bool_object(py, same),
            CompareOp::Ne => bool_object(py, !same),
            _ => py.NotImplemented(),
        })
    }
}
