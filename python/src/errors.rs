//! The exception classes and the one place library errors become them.
//!
//! `stratum.Error` is the base; each subclass has the meaning of one of the
//! CLI's exit codes and carries the message the CLI prints after
//! `stratum: `. They also derive from the built-in exception a Python caller
//! would reach for: `NotFound` is a `LookupError`, `InvalidInput` a
//! `ValueError`, `Locked` a `TimeoutError`, `IOError` an `OSError`.
//!
//! Library calls run with the interpreter released, where no Python object
//! may be made, so they fail with a [`Failure`] that becomes an exception
//! once the interpreter is held again. A panic is caught where the call is
//! made and becomes a plain `stratum.Error`: none reaches Python as one.

use std::any::Any;

use pyo3::exceptions::{PyException, PyLookupError, PyOSError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

struct Classes {
    error: Py<PyType>,
    not_found: Py<PyType>,
    invalid: Py<PyType>,
    locked: Py<PyType>,
    corrupt: Py<PyType>,
    io: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

fn make(py: Python<'_>) -> PyResult<Classes> {
    let new = |name: &str, bases: Bound<'_, PyTuple>, doc: &str| -> PyResult<Py<PyType>> {
        let ns = PyDict::new(py);
        ns.set_item("__doc__", doc)?;
        ns.set_item("__module__", "stratum")?;
        Ok(py
            .get_type::<PyType>()
            .call1((name, bases, ns))?
            .cast_into::<PyType>()?
            .unbind())
    };
    let error = new(
        "Error",
        PyTuple::new(py, [py.get_type::<PyException>()])?,
        "Base class of every error stratum raises.",
    )?;
    let sub = |name: &str, builtin: Bound<'_, PyType>, doc: &str| {
        new(
            name,
            PyTuple::new(py, [error.bind(py).clone(), builtin])?,
            doc,
        )
    };
    Ok(Classes {
        not_found: sub(
            "NotFound",
            py.get_type::<PyLookupError>(),
            "No such document, input node or store (the CLI's exit code 3).",
        )?,
        invalid: sub(
            "InvalidInput",
            py.get_type::<PyValueError>(),
            "The input was refused and nothing was written (exit code 4).",
        )?,
        locked: sub(
            "Locked",
            py.get_type::<PyTimeoutError>(),
            "Another process held the store's lock past lock_timeout (exit code 5).",
        )?,
        corrupt: new(
            "Corrupt",
            PyTuple::new(py, [error.bind(py).clone()])?,
            "Bytes on disk failed a check, or a newer format version (exit code 6).",
        )?,
        io: sub(
            "IOError",
            py.get_type::<PyOSError>(),
            "An operating-system call failed, a full disk included (exit code 7).",
        )?,
        error,
    })
}

/// Creates the classes and adds them to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let c = CLASSES.get_or_try_init(py, || make(py))?;
    for (name, class) in [
        ("Error", &c.error),
        ("NotFound", &c.not_found),
        ("InvalidInput", &c.invalid),
        ("Locked", &c.locked),
        ("Corrupt", &c.corrupt),
        ("IOError", &c.io),
    ] {
        m.add(name, class.bind(py))?;
    }
    Ok(())
}

fn raise(py: Python<'_>, class: fn(&Classes) -> &Py<PyType>, msg: String) -> PyErr {
    // The classes are made when the module is imported, so they are there
    // whenever a method can run.
    match CLASSES.get(py) {
        Some(c) => PyErr::from_type(class(c).bind(py).clone(), msg),
        None => PyException::new_err(msg),
    }
}

/// The exception for a library error, with the library's message (the CLI's,
/// less the hints it adds about its own commands and flags).
pub(crate) fn from_lib(py: Python<'_>, e: stratum::Error) -> PyErr {
    from_lib_at(py, e, None)
}

/// As [`from_lib`], the message led by where in a stream it happened
/// (`document 3: …`, as `load` says `line 3: …`).
pub(crate) fn from_lib_at(py: Python<'_>, e: stratum::Error, at: Option<String>) -> PyErr {
    use stratum::Error as E;
    let class: fn(&Classes) -> &Py<PyType> = match &e {
        // The classes follow the CLI's exit codes (src/exit.rs).
        E::Io { .. } | E::NoSpace { .. } | E::Poisoned => |c| &c.io,
        E::Corrupt { .. } | E::UnsupportedVersion { .. } | E::LockMissing { .. } => |c| &c.corrupt,
        E::NoStore { .. }
        | E::NotAStore { .. }
        | E::DocNotFound(_)
        | E::KeyNotFound(_)
        | E::NodeNotFound { .. } => |c| &c.not_found,
        E::InvalidInput(_) | E::IdTooHigh { .. } => |c| &c.invalid,
        E::LockTimeout { .. } => |c| &c.locked,
        _ => |c| &c.error,
    };
    let msg = match at {
        Some(at) => format!("{at}: {e}"),
        None => e.to_string(),
    };
    raise(py, class, msg)
}

/// `stratum.InvalidInput(msg)`.
pub(crate) fn invalid(msg: impl Into<String>) -> PyErr {
    Python::attach(|py| raise(py, |c| &c.invalid, msg.into()))
}

/// `stratum.Error` for a bug: something the library promised did not hold.
pub(crate) fn internal(msg: impl Into<String>) -> PyErr {
    Python::attach(|py| {
        raise(
            py,
            |c| &c.error,
            format!("internal error (a bug in stratum): {}", msg.into()),
        )
    })
}

/// `stratum.Error(msg)`, for misuse of a handle (closed, read-only).
pub(crate) fn error(msg: impl Into<String>) -> PyErr {
    Python::attach(|py| raise(py, |c| &c.error, msg.into()))
}

/// Why a call made with the interpreter released failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The library refused or failed.
    Lib(stratum::Error),
    /// A panic, caught; the handle that made the call is closed.
    Panic(String),
    /// The handle was closed (by `close`, or after a panic or a failed
    /// reopen).
    Closed,
}

impl From<stratum::Error> for Failure {
    fn from(e: stratum::Error) -> Failure {
        Failure::Lib(e)
    }
}

impl Failure {
    pub(crate) fn into_py(self, py: Python<'_>) -> PyErr {
        match self {
            Failure::Lib(e) => from_lib(py, e),
            Failure::Panic(msg) => internal(format!("{msg}; the store handle has been closed")),
            Failure::Closed => error("the store handle is closed"),
        }
    }
}

/// The text of a caught panic.
pub(crate) fn panic_text(payload: Box<dyn Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Runs `f`, turning a panic into [`Failure::Panic`].
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(Failure::Panic(panic_text(p))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_failure() {
        let r: Result<(), Failure> = guard(|| panic!("boom {}", 1));
        assert!(matches!(r, Err(Failure::Panic(m)) if m == "boom 1"));
        let r: Result<(), Failure> = guard(|| std::panic::panic_any(7u8));
        assert!(matches!(r, Err(Failure::Panic(m)) if m == "a panic"));
        assert!(matches!(guard(|| Ok(3)), Ok(3)));
    }
}
