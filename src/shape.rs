//! Human messages for a line of JSON that a reader cannot take: which
//! field, what was expected and what was found, in place of serde's
//! "invalid type: map, expected u64 at line 1 column 1".
//!
//! Only the failure path comes here: the line is parsed again as a generic
//! value and checked against a small description of the shape the reader
//! takes. [`DOCUMENT`] mirrors [`Document::from_json`](crate::Document::from_json),
//! which uses it, so a program and the CLI's `load` report the same words;
//! other readers (the CLI's `apply`) describe their own shape. When the
//! description finds nothing wrong, the parser's own message stands.

use std::fmt::Write as _;

use serde_json::Value;

/// What a field may hold.
#[derive(Clone, Copy)]
pub enum Want {
    /// Any JSON value.
    Any,
    /// A string.
    Str,
    /// A string or null.
    StrOrNull,
    /// A whole number from 0 (an id), or null.
    IdOrNull,
    /// An array of objects of this shape.
    Objects(&'static Shape),
}

/// The fields of one JSON object a command reads.
pub struct Shape {
    /// What the object is, for messages: "a document".
    pub what: &'static str,
    /// Each field, what it may hold, and whether it must be there.
    pub fields: &'static [(&'static str, Want, bool)],
}

/// One node of `load`'s `inputs`.
static NODE: Shape = Shape {
    what: "an input node",
    fields: &[
        ("node", Want::IdOrNull, false),
        ("input", Want::Any, true),
        ("meta", Want::Any, false),
        ("output", Want::Any, false),
        ("has_output", Want::Any, false),
    ],
};

/// A line of `load`: a document in the `get` shape.
pub static DOCUMENT: Shape = Shape {
    what: "a document",
    fields: &[
        ("id", Want::IdOrNull, false),
        ("key", Want::StrOrNull, false),
        ("category", Want::StrOrNull, false),
        ("version", Want::StrOrNull, false),
        ("meta", Want::Any, false),
        ("body", Want::StrOrNull, false),
        ("body_base64", Want::StrOrNull, false),
        ("inputs", Want::Objects(&NODE), false),
        ("node_high_water", Want::IdOrNull, false),
    ],
};

/// Why `line` is not a `shape`, in words, or `None` if it is valid JSON of
/// that shape (the parser refused it for another reason, whose message
/// then stands).
pub fn explain(line: &str, shape: &Shape) -> Option<String> {
    match serde_json::from_str::<Value>(line) {
        Err(e) => Some(syntax(&e, shape)),
        Ok(Value::Object(map)) => check_object(&map, shape, ""),
        Ok(other) => Some(format!(
            "expected {} (a JSON object with {}), found {}",
            shape.what,
            field_list(shape),
            found(&other)
        )),
    }
}

fn syntax(e: &serde_json::Error, shape: &Shape) -> String {
    let text = e.to_string();
    // serde_json appends " at line L column C"; on one line only the column
    // means anything, and the caller names the line.
    let bare = text
        .rfind(" at line ")
        .map_or(text.as_str(), |i| &text[..i]);
    // serde_json's name for a bare word where a value should be.
    let bare = match bare {
        "expected ident" | "expected value" => "expected a JSON value",
        other => other,
    };
    if e.is_eof() {
        format!(
            "the line ends inside the JSON value: {} must be on one line (JSON Lines)",
            shape.what
        )
    } else {
        format!("not valid JSON at column {}: {bare}", e.column())
    }
}

fn field_list(shape: &Shape) -> String {
    let names: Vec<String> = shape
        .fields
        .iter()
        .map(|(name, ..)| format!("\"{name}\""))
        .collect();
    names.join(", ")
}

fn check_object(map: &serde_json::Map<String, Value>, shape: &Shape, path: &str) -> Option<String> {
    let at = |field: &str| {
        if path.is_empty() {
            format!("\"{field}\"")
        } else {
            format!("\"{path}.{field}\"")
        }
    };
    for key in map.keys() {
        if !shape.fields.iter().any(|(name, ..)| name == key) {
            let mut msg = format!("unknown field {}", at(key));
            let _ = write!(msg, " in {} (expected {})", shape.what, field_list(shape));
            return Some(msg);
        }
    }
    for &(name, want, required) in shape.fields {
        let Some(value) = map.get(name) else {
            if required {
                return Some(format!("{} needs the field {}", shape.what, at(name)));
            }
            continue;
        };
        let expected = match want {
            Want::Any => None,
            Want::Str => (!value.is_string()).then_some("a string"),
            Want::StrOrNull => {
                (!value.is_string() && !value.is_null()).then_some("a string (or null)")
            }
            Want::IdOrNull => (value.as_u64().is_none() && !value.is_null())
                .then_some("a whole number from 0 (or null)"),
            Want::Objects(inner) => {
                let Some(items) = value.as_array() else {
                    return Some(format!(
                        "field {}: expected an array of {} objects, found {}",
                        at(name),
                        inner
                            .what
                            .trim_start_matches("an ")
                            .trim_start_matches("a "),
                        found(value)
                    ));
                };
                for (i, item) in items.iter().enumerate() {
                    let here = if path.is_empty() {
                        format!("{name}[{i}]")
                    } else {
                        format!("{path}.{name}[{i}]")
                    };
                    let problem = match item {
                        Value::Object(m) => check_object(m, inner, &here),
                        other => Some(format!(
                            "field \"{here}\": expected {} (a JSON object with {}), found {}",
                            inner.what,
                            field_list(inner),
                            found(other)
                        )),
                    };
                    if problem.is_some() {
                        return problem;
                    }
                }
                None
            }
        };
        if let Some(expected) = expected {
            return Some(format!(
                "field {}: expected {expected}, found {}",
                at(name),
                found(value)
            ));
        }
    }
    None
}

/// A value named for a message: "an array", "the string \"x\"".
fn found(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let mut shown: String = s.chars().take(40).collect();
            if shown.len() < s.len() {
                shown.push('…');
            }
            format!("the string {shown:?}")
        }
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(line: &str) -> String {
        explain(line, &DOCUMENT).unwrap_or_else(|| panic!("{line} passed"))
    }

    #[test]
    fn documents_are_explained_by_field() {
        assert_eq!(
            doc("[1, 2]"),
            r#"expected a document (a JSON object with "id", "key", "category", "version", "meta", "body", "body_base64", "inputs", "node_high_water"), found an array"#
        );
        assert!(
            doc(r#"{"key":7}"#).starts_with(r#"field "key": expected a string"#),
            "{}",
            doc(r#"{"key":7}"#)
        );
        // The format-2 fields are part of the shape, not unknown ones.
        assert!(explain(r#"{"key":"k","meta":{},"inputs":[{"input":1,"meta":{},"output":null,"has_output":true}]}"#, &DOCUMENT).is_none());
        assert_eq!(
            doc(r#"{"id":"x"}"#),
            r#"field "id": expected a whole number from 0 (or null), found the string "x""#
        );
        assert_eq!(
            doc(r#"{"inputs":[{"input":1},{"node":-1,"input":2}]}"#),
            r#"field "inputs[1].node": expected a whole number from 0 (or null), found the number -1"#
        );
        assert_eq!(
            doc(r#"{"inputs":[{"output":1}]}"#),
            r#"an input node needs the field "inputs[0].input""#
        );
        assert!(doc(r#"{"bdy":"x"}"#).starts_with(r#"unknown field "bdy" in a document"#));
        assert!(doc(r#"{"inputs":{}}"#).contains("expected an array of input node objects"));
        assert!(explain(r#"{"body":"x","inputs":[{"input":[1]}]}"#, &DOCUMENT).is_none());
    }

    #[test]
    fn syntax_errors_name_the_column_once() {
        let pretty = doc("{");
        assert!(
            pretty.starts_with("the line ends inside the JSON value"),
            "{pretty}"
        );
        assert!(
            pretty.contains("must be on one line") && !pretty.contains("line 1"),
            "{pretty}"
        );
        let comma = doc(r#"{"body":"x",}"#);
        assert_eq!(comma, "not valid JSON at column 13: trailing comma");
    }
}
