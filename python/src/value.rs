//! Python values to JSON text and back, and `stratum.Json`, the class that
//! carries exact JSON text across (it and the conversions use each other).
//!
//! In: dict (str keys), list, tuple, str, int of any size, float, bool, None,
//! and `stratum.Json` (its text is kept as it is, also inside a container).
//! A float is written as Python's `repr` writes it (so as `json.dumps` does):
//! `1.0` stays `1.0`, never `1`.
//!
//! Out: the stored text is compact JSON the engine has already validated, so
//! it is read by a small recursive-descent reader straight into Python
//! objects: numbers with a fraction or exponent become `float`, others `int`
//! (of any size), and object keys keep their order. A text that is not what
//! the engine promises is reported as an internal error, never a panic.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use num_bigint::BigInt;
use pyo3::basic::CompareOp;
use pyo3::exceptions::PyUnicodeDecodeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use stratum::json::{MAX_DEPTH, write_str_literal};

use crate::errors;

/// Converts a Python value to validated, compact JSON.
pub(crate) fn to_json(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<stratum::Json> {
    if let Ok(j) = obj.cast::<PyJson>() {
        return Ok(j.get().json.clone());
    }
    let mut text = String::new();
    write_value(obj, &mut text, 0, what)?;
    // The text is ours and compact; parsing it once more is the library's
    // own check (and its only public constructor), and costs little.
    stratum::Json::parse(&text).map_err(|e| errors::from_lib(obj.py(), e))
}

fn refuse(what: &str, why: String) -> PyErr {
    errors::invalid(format!("{what}: {why}"))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

fn write_value(obj: &Bound<'_, PyAny>, out: &mut String, depth: usize, what: &str) -> PyResult<()> {
    if obj.is_none() {
        out.push_str("null");
    } else if let Ok(b) = obj.cast::<PyBool>() {
        out.push_str(if b.is_true() { "true" } else { "false" });
    } else if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_str().map_err(|_| {
            refuse(
                what,
                "a str with a lone surrogate is not UTF-8 text and cannot be stored".into(),
            )
        })?;
        write_str_literal(text, out);
    } else if let Ok(i) = obj.cast::<PyInt>() {
        match i.extract::<i64>() {
            Ok(n) => out.push_str(&n.to_string()),
            Err(_) => out.push_str(&i.extract::<BigInt>()?.to_string()),
        }
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        let x = f.value();
        if !x.is_finite() {
            return Err(refuse(
                what,
                format!("{x} is not a JSON number (NaN and infinities have no JSON form)"),
            ));
        }
        write_float(x, out);
    } else if let Ok(j) = obj.cast::<PyJson>() {
        out.push_str(j.get().json.as_str());
    } else if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let depth = deeper(depth, what)?;
        out.push('[');
        for (i, item) in obj.try_iter()?.enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_value(&item?, out, depth, what)?;
        }
        out.push(']');
    } else if let Ok(d) = obj.cast::<PyDict>() {
        let depth = deeper(depth, what)?;
        out.push('{');
        for (i, (k, v)) in d.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let key = k.cast::<PyString>().map_err(|_| {
                refuse(
                    what,
                    format!("object keys must be str, not {}", type_name(&k)),
                )
            })?;
            write_value(key.as_any(), out, depth, what)?;
            out.push(':');
            write_value(&v, out, depth, what)?;
        }
        out.push('}');
    } else {
        return Err(refuse(
            what,
            format!(
                "a {} is not a JSON value (use dict, list, tuple, str, int, float, bool, None or stratum.Json)",
                type_name(obj)
            ),
        ));
    }
    Ok(())
}

/// One level deeper, refusing more than the engine stores; this also stops
/// a list that contains itself.
fn deeper(depth: usize, what: &str) -> PyResult<usize> {
    if depth >= MAX_DEPTH {
        return Err(refuse(
            what,
            format!("nested deeper than {MAX_DEPTH} levels (or a container holds itself)"),
        ));
    }
    Ok(depth + 1)
}

/// Writes a finite float as Python's `repr` does: the shortest digits that
/// read back as the same float, in exponent form below 1e-4 and from 1e16 on,
/// and always with a fraction or an exponent.
fn write_float(x: f64, out: &mut String) {
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-7", "1e16".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    out.push_str(sign);
    if !(-4..16).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let point = exp as usize + 1;
        if digits.len() <= point {
            out.push_str(&digits);
            for _ in digits.len()..point {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
}

/// Reads stored JSON text into Python objects.
pub(crate) fn to_py<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let mut r = Reader { py, text, pos: 0 };
    let v = r.value()?;
    r.skip_ws();
    if r.pos != text.len() {
        return Err(r.broken());
    }
    Ok(v)
}

struct Reader<'py, 't> {
    py: Python<'py>,
    text: &'t str,
    pos: usize,
}

impl<'py> Reader<'py, '_> {
    fn broken(&self) -> PyErr {
        errors::internal(format!(
            "stored JSON text could not be read back at byte {}",
            self.pos
        ))
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> PyResult<()> {
        if self.text.get(self.pos..self.pos + lit.len()) == Some(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(self.broken())
        }
    }

    fn value(&mut self) -> PyResult<Bound<'py, PyAny>> {
        self.skip_ws();
        let py = self.py;
        match self.peek() {
            Some(b'n') => self.eat("null").map(|()| py.None().into_bound(py)),
            Some(b't') => self
                .eat("true")
                .map(|()| PyBool::new(py, true).to_owned().into_any()),
            Some(b'f') => self
                .eat("false")
                .map(|()| PyBool::new(py, false).to_owned().into_any()),
            Some(b'"') => self.string().map(Bound::into_any),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        items.push(self.value()?);
                        self.skip_ws();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b']') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(self.broken()),
                        }
                    }
                }
                Ok(PyList::new(py, items)?.into_any())
            }
            Some(b'{') => {
                self.pos += 1;
                let dict = PyDict::new(py);
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                } else {
                    loop {
                        self.skip_ws();
                        if self.peek() != Some(b'"') {
                            return Err(self.broken());
                        }
                        let key = self.string()?;
                        self.skip_ws();
                        self.eat(":")?;
                        let value = self.value()?;
                        dict.set_item(key, value)?;
                        self.skip_ws();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b'}') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(self.broken()),
                        }
                    }
                }
                Ok(dict.into_any())
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.broken()),
        }
    }

    fn number(&mut self) -> PyResult<Bound<'py, PyAny>> {
        let start = self.pos;
        let mut float = false;
        while let Some(c) = self.peek() {
            match c {
                b'0'..=b'9' | b'-' | b'+' => {}
                b'.' | b'e' | b'E' => float = true,
                _ => break,
            }
            self.pos += 1;
        }
        let s = &self.text[start..self.pos];
        let py = self.py;
        if float {
            // Rust's parse rounds correctly, as Python's float() does; a
            // number beyond the range (1E400) is an infinity in both.
            let x: f64 = s.parse().map_err(|_| self.broken())?;
            return Ok(PyFloat::new(py, x).into_any());
        }
        if let Ok(n) = s.parse::<i64>() {
            return Ok(n.into_pyobject(py)?.into_any());
        }
        let big = BigInt::parse_bytes(s.as_bytes(), 10).ok_or_else(|| self.broken())?;
        Ok(big.into_pyobject(py)?.into_any())
    }

    /// A string literal at `pos` (on its opening quote).
    fn string(&mut self) -> PyResult<Bound<'py, PyString>> {
        let start = self.pos;
        self.pos += 1;
        let bytes = self.text.as_bytes();
        let body_start = self.pos;
        let mut escaped = false;
        loop {
            match bytes.get(self.pos) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 2;
                }
                Some(_) => self.pos += 1,
                None => return Err(self.broken()),
            }
        }
        let body = self
            .text
            .get(body_start..self.pos)
            .ok_or_else(|| self.broken())?;
        self.pos += 1;
        if !escaped {
            return Ok(PyString::new(self.py, body));
        }
        match unescape(body) {
            Some(s) => Ok(PyString::new(self.py, &s)),
            // A \u escape of a lone surrogate is valid JSON but no Rust
            // string; Python's own reader makes the str it denotes.
            None => {
                let literal = &self.text[start..self.pos];
                let loads = self.py.import("json")?.getattr("loads")?;
                Ok(loads.call1((literal,))?.cast_into::<PyString>()?)
            }
        }
    }
}

/// Decodes the escapes of a string literal's body; `None` when it holds a
/// lone surrogate (or anything else no Rust string can hold).
fn unescape(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match chars.next()? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hi = hex4(&mut chars)?;
                if (0xD800..0xDC00).contains(&hi) {
                    if chars.next()? != '\\' || chars.next()? != 'u' {
                        return None;
                    }
                    let lo = hex4(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                } else {
                    char::from_u32(hi)?
                }
            }
            _ => return None,
        };
        out.push(decoded);
    }
    Some(out)
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut v = 0;
    for _ in 0..4 {
        v = v * 16 + chars.next()?.to_digit(16)?;
    }
    Some(v)
}

/// A body from `bytes`, `bytearray` or `str` (as UTF-8).
pub(crate) fn body(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = obj.cast::<PyString>() {
        return s
            .to_str()
            .map(|s| s.as_bytes().to_vec())
            .map_err(|_| errors::invalid("body: a str with a lone surrogate is not UTF-8 text"));
    }
    if obj.is_instance_of::<pyo3::types::PyBytes>()
        || obj.is_instance_of::<pyo3::types::PyByteArray>()
    {
        return obj.extract::<Vec<u8>>();
    }
    Err(errors::invalid(format!(
        "body: a body is bytes or str, not {}",
        type_name(obj)
    )))
}

/// A stored body as `str`, for the callers that want text.
pub(crate) fn body_text(py: Python<'_>, body: &[u8]) -> PyResult<String> {
    std::str::from_utf8(body)
        .map(str::to_owned)
        .map_err(|e| PyUnicodeDecodeError::new_err_from_utf8(py, body, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(x: f64) -> String {
        let mut s = String::new();
        write_float(x, &mut s);
        s
    }

    #[test]
    fn floats_are_written_as_python_repr_writes_them() {
        for (x, want) in [
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (123.456, "123.456"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e16, "1.2345e+16"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1.23e67, "1.23e+67"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (-2.5, "-2.5"),
        ] {
            assert_eq!(float(x), want, "{x}");
        }
    }

    #[test]
    fn escapes_decode_and_lone_surrogates_are_refused() {
        assert_eq!(
            unescape(r#"a\"b\\c\/\n\u00e9"#).as_deref(),
            Some("a\"b\\c/\né")
        );
        assert_eq!(unescape(r"\ud83d\ude00").as_deref(), Some("😀"));
        assert_eq!(unescape(r"\ud83d"), None);
        assert_eq!(unescape(r"\ude00x"), None);
    }
}

/// A JSON value kept as its exact text (without insignificant whitespace):
/// `Json("1.0")` is stored as `1.0`, where the float `1.0` would be too, but
/// `Json("1.50")` keeps its trailing zero and `Json("1E400")` its exponent.
#[pyclass(module = "stratum", name = "Json", frozen)]
pub(crate) struct PyJson {
    pub(crate) json: stratum::Json,
}

#[pymethods]
impl PyJson {
    /// Validates `text` as one JSON value.
    #[new]
    fn new(py: Python<'_>, text: &str) -> PyResult<Self> {
        stratum::Json::parse(text)
            .map(|json| PyJson { json })
            .map_err(|e| errors::from_lib(py, e))
    }

    /// The JSON text of a Python value, as the store would write it.
    #[staticmethod]
    fn from_value(value: &Bound<'_, PyAny>) -> PyResult<Self> {
        to_json(value, "value").map(|json| PyJson { json })
    }

    /// The compact text.
    #[getter]
    fn text(&self) -> &str {
        self.json.as_str()
    }

    /// The value as Python objects.
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, self.json.as_str())
    }

    fn __str__(&self) -> &str {
        self.json.as_str()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Json({})",
            PyString::new(py, self.json.as_str()).repr()?
        ))
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let py = other.py();
        match (other.cast::<PyJson>(), op) {
            (Ok(o), CompareOp::Eq) => (self.json == o.get().json).into_pyobject(py),
            (Ok(o), CompareOp::Ne) => (self.json != o.get().json).into_pyobject(py),
            _ => return py.NotImplemented(),
        }
        .map_or_else(
            |_| py.NotImplemented(),
            |b| b.to_owned().into_any().unbind(),
        )
    }

    fn __hash__(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.json.as_str().hash(&mut h);
        h.finish()
    }
}
