//! JSON merge patch (RFC 7386) on stored JSON text, for `--meta-patch`: the
//! members a patch does not touch keep their exact text and place, and a
//! replaced member keeps its place; new members go at the end.
//!
//! It works on the compact text [`Json`] holds, which is valid JSON without
//! insignificant whitespace, so a member is a string literal, a colon and
//! one value, and the scan below only has to track strings and nesting.

use stratum::{Error, Json, Result};

/// `target` (absent: an empty object) with `patch` merged into it. Both
/// must be JSON objects (meta always is).
///
/// # Errors
/// [`Error::InvalidInput`] when `patch` is not an object.
pub fn merge(target: Option<&Json>, patch: &Json) -> Result<Json> {
    if !patch.as_str().starts_with('{') {
        return Err(Error::invalid(
            "a meta patch must be a JSON object (RFC 7386 merge patch)",
        ));
    }
    let merged = merge_text(target.map_or("{}", Json::as_str), patch.as_str());
    Json::parse(&merged)
}

/// The text of the member called `name` (compared decoded, as RFC 7386
/// does) of the compact JSON object `obj`, if it has one.
pub fn member<'a>(obj: &'a Json, name: &str) -> Option<&'a str> {
    members(obj.as_str())
        .into_iter()
        .find(|m| m.key == name)
        .map(|m| m.value)
}

/// One member of a compact object: its key's raw text (quotes included),
/// the key decoded (to compare `"\u0061"` with `"a"`), and the value's text.
struct Member<'a> {
    raw_key: &'a str,
    key: String,
    value: &'a str,
}

fn merge_text(target: &str, patch: &str) -> String {
    let mut merged: Vec<(String, String, String)> = if target.starts_with('{') {
        members(target)
            .into_iter()
            .map(|m| (m.raw_key.to_owned(), m.key, m.value.to_owned()))
            .collect()
    } else {
        Vec::new()
    };
    for p in members(patch) {
        let at = merged.iter().position(|(_, k, _)| *k == p.key);
        if p.value == "null" {
            if let Some(i) = at {
                merged.remove(i);
            }
            continue;
        }
        let value = if p.value.starts_with('{') {
            let old = at.map_or("{}", |i| merged[i].2.as_str());
            merge_text(old, p.value)
        } else {
            p.value.to_owned()
        };
        match at {
            Some(i) => merged[i].2 = value,
            None => merged.push((p.raw_key.to_owned(), p.key, value)),
        }
    }
    let mut out = String::from("{");
    for (i, (raw_key, _, value)) in merged.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(raw_key);
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    out
}

/// The members of a compact JSON object, in order.
fn members(obj: &str) -> Vec<Member<'_>> {
    let bytes = obj.as_bytes();
    let mut out = Vec::new();
    let mut i = 1; // past '{'
    while i < bytes.len() && bytes[i] != b'}' {
        let key_end = string_end(bytes, i);
        let raw_key = &obj[i..key_end];
        let value_start = key_end + 1; // past ':'
        let value_end = value_end(bytes, value_start);
        out.push(Member {
            raw_key,
            key: serde_json::from_str(raw_key).unwrap_or_else(|_| raw_key.to_owned()),
            value: &obj[value_start..value_end],
        });
        i = value_end;
        if bytes.get(i) == Some(&b',') {
            i += 1;
        }
    }
    out
}

/// The index just past the string literal starting at `start` (a `"`).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index just past the value starting at `start`.
fn value_end(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = string_end(bytes, i);
                if depth == 0 {
                    return i;
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b',' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(target: Option<&str>, patch: &str) -> String {
        let t = target.map(|t| Json::parse(t).unwrap());
        merge(t.as_ref(), &Json::parse(patch).unwrap())
            .unwrap()
            .as_str()
            .to_owned()
    }

    #[test]
    fn untouched_members_keep_their_text_and_place() {
        assert_eq!(
            merged(
                Some(r#"{"z":1.0,"tags":["a"],"n":-9999999999999999,"s":"\u00e9"}"#),
                r#"{"tags":["b"],"new":123e65}"#
            ),
            r#"{"z":1.0,"tags":["b"],"n":-9999999999999999,"s":"\u00e9","new":123e65}"#
        );
    }

    #[test]
    fn null_removes_and_objects_merge_recursively() {
        assert_eq!(
            merged(
                Some(r#"{"a":{"x":1,"y":[1,{"q":2}]},"b":2}"#),
                r#"{"b":null,"a":{"x":null,"w":{"k":null,"v":"}"}}}"#
            ),
            r#"{"a":{"y":[1,{"q":2}],"w":{"v":"}"}}}"#
        );
        assert_eq!(merged(None, r#"{"a":null,"b":"\"x,"}"#), r#"{"b":"\"x,"}"#);
        // RFC 7386 compares decoded member names.
        assert_eq!(merged(Some(r#"{"a":1}"#), r#"{"\u0061":2}"#), r#"{"a":2}"#);
        assert_eq!(merged(Some(r#"{"a":1}"#), r#"{}"#), r#"{"a":1}"#);
        assert!(merge(None, &Json::parse("[1]").unwrap()).is_err());
    }
}
