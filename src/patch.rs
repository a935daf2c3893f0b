//! JSON merge patch (RFC 7386) on stored JSON text: how a document's or a
//! node's `meta` is patched rather than replaced.
//!
//! The members a patch does not touch keep their exact text and place, a
//! replaced member keeps its place, and new members go at the end, so a
//! patch never rewrites a number (`1.0`, `-9999999999999999`) or an escape
//! it does not name.
//!
//! It works on the compact text [`Json`] holds, which is valid JSON without
//! insignificant whitespace, so a member is a string literal, a colon and
//! one value, and the scan below only has to track strings and nesting.

use crate::error::{Error, Result};
use crate::json::Json;
use crate::model::DocPatch;
use crate::{DocId, NodeId, Store};

/// `target` (absent: an empty object) with `patch` merged into it, as RFC
/// 7386 says: a member set to `null` is removed, an object member is merged
/// recursively, any other member replaces the old one whole.
///
/// ```
/// use stratum::{Json, merge_patch};
///
/// # fn main() -> stratum::Result<()> {
/// let meta = Json::parse(r#"{"n": 1.0, "tags": ["a"], "draft": true}"#)?;
/// let patch = Json::parse(r#"{"tags": ["b"], "draft": null, "level": 3}"#)?;
/// let merged = merge_patch(Some(&meta), &patch)?;
/// assert_eq!(merged.as_str(), r#"{"n":1.0,"tags":["b"],"level":3}"#);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] when `patch` is not a JSON object (meta always
/// is one, and a patch of anything else would replace it by a non-object).
pub fn merge_patch(target: Option<&Json>, patch: &Json) -> Result<Json> {
    if !patch.as_str().starts_with('{') {
        return Err(Error::invalid(
            "a meta patch must be a JSON object (RFC 7386 merge patch)",
        ));
    }
    let merged = merge_text(target.map_or("{}", Json::as_str), patch.as_str());
    Json::parse(&merged)
}

impl Store {
    /// As [`Store::update_doc`], with the document's meta merged with
    /// `meta_patch` ([`merge_patch`]) in the same write. An empty `patch`
    /// changes the meta alone.
    ///
    /// # Errors
    /// As [`Store::update_doc`]; [`Error::InvalidInput`] when `patch` also
    /// sets or clears the meta, or `meta_patch` is not an object.
    pub fn update_doc_merging_meta(
        &mut self,
        id: DocId,
        patch: &DocPatch,
        meta_patch: &Json,
    ) -> Result<()> {
        if patch.meta.is_some() {
            return Err(Error::invalid(
                "give either a new meta or a meta patch, not both",
            ));
        }
        // The meta is in the document's own record: no input is read.
        let current = self.summary(id)?.meta;
        let merged = merge_patch(current.as_ref(), meta_patch)?;
        let patch = DocPatch {
            meta: Some(Some(merged)),
            ..patch.clone()
        };
        self.update_doc(id, &patch)
    }

    /// Merges `meta_patch` into node `node`'s meta ([`merge_patch`]); its
    /// input and output are kept.
    ///
    /// # Errors
    /// As [`Store::set_node_meta`]; [`Error::InvalidInput`] when
    /// `meta_patch` is not an object.
    pub fn merge_node_meta(&mut self, doc: DocId, node: NodeId, meta_patch: &Json) -> Result<()> {
        let current = self.get_node(doc, node)?.meta;
        let merged = merge_patch(current.as_ref(), meta_patch)?;
        self.set_node_meta(doc, node, Some(&merged))
    }
}

/// The text of the member called `name` (compared decoded, as RFC 7386
/// does) of the compact JSON object whose stored text is `obj`, if it has
/// one. A filter asks it of every document's meta: it decodes only a name
/// with an escape in it, and collects nothing.
pub(crate) fn member_text<'a>(obj: &'a str, name: &str) -> Option<&'a str> {
    let bytes = obj.as_bytes();
    let mut i = 1; // past '{'
    while i < bytes.len() && bytes[i] != b'}' {
        let key_end = string_end(bytes, i);
        let value_start = key_end + 1; // past ':'
        let value_end = value_end(bytes, value_start);
        let raw_key = obj.get(i..key_end)?;
        let value = obj.get(value_start..value_end)?;
        let plain = raw_key
            .strip_prefix('"')
            .and_then(|k| k.strip_suffix('"'))
            .filter(|k| !k.contains('\\'));
        let same = match plain {
            Some(k) => k == name,
            None => decoded_key(raw_key) == name,
        };
        if same {
            return Some(value);
        }
        i = value_end;
        if bytes.get(i) == Some(&b',') {
            i += 1;
        }
    }
    None
}

/// A member name's raw text decoded (itself, should it not decode).
fn decoded_key(raw_key: &str) -> String {
    serde_json::from_str(raw_key).unwrap_or_else(|_| raw_key.to_owned())
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

/// The members of a compact JSON object, in order. Text that is not one
/// (which [`Json`] rules out) ends the list early rather than panicking.
fn members(obj: &str) -> Vec<Member<'_>> {
    let bytes = obj.as_bytes();
    let mut out = Vec::new();
    let mut i = 1; // past '{'
    while i < bytes.len() && bytes[i] != b'}' {
        let key_end = string_end(bytes, i);
        let value_start = key_end + 1; // past ':'
        let value_end = value_end(bytes, value_start);
        let (Some(raw_key), Some(value)) = (obj.get(i..key_end), obj.get(value_start..value_end))
        else {
            break;
        };
        out.push(Member {
            raw_key,
            key: decoded_key(raw_key),
            value,
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
        merge_patch(t.as_ref(), &Json::parse(patch).unwrap())
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
        // A member that is an object replaces a non-object one by a merge
        // into nothing: its own nulls are dropped.
        assert_eq!(
            merged(Some(r#"{"a":[1]}"#), r#"{"a":{"b":null,"c":1}}"#),
            r#"{"a":{"c":1}}"#
        );
        assert!(merge_patch(None, &Json::parse("[1]").unwrap()).is_err());
        assert!(merge_patch(None, &Json::parse("null").unwrap()).is_err());
    }

    #[test]
    fn members_are_found_by_decoded_name_at_the_top_level_only() {
        let obj = Json::parse(r#"{"a":{"level":1},"level":1.0,"\u006b":"v"}"#).unwrap();
        let member = |name| member_text(obj.as_str(), name);
        assert_eq!(member("level"), Some("1.0"));
        assert_eq!(member("k"), Some(r#""v""#));
        assert_eq!(member("missing"), None);
        // A name with an escape is compared decoded, one without as it is.
        let escaped = Json::parse(r#"{"a\"b":1,"c\\d":2,"\u0065":3}"#).unwrap();
        assert_eq!(member_text(escaped.as_str(), "a\"b"), Some("1"));
        assert_eq!(member_text(escaped.as_str(), "c\\d"), Some("2"));
        assert_eq!(member_text(escaped.as_str(), "e"), Some("3"));
    }

    #[test]
    fn text_that_is_not_an_object_ends_the_scan_without_a_panic() {
        for bad in [r#"{"a"#, r#"{"a":"#, r#"{"a":[1"#, r#"{"\"#, "{", ""] {
            let _ = members(bad);
            let _ = merge_text(bad, r#"{"b":1}"#);
        }
    }
}
