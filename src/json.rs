//! JSON values kept as text, so they round-trip exactly.
//!
//! A value is validated by serde_json (without building a tree, so hostile
//! input cannot overflow the stack; nesting is capped at 128 levels here) and
//! then stored as its own text
//! with the insignificant whitespace removed. Numbers, string escapes and key
//! order are never re-rendered: `1.0` stays `1.0`, `1E400` stays `1E400`,
//! `"\u00e9"` stays `"\u00e9"`. Pretty printing re-indents that text without
//! parsing it into a tree.

use std::fmt;

use crate::error::{Error, Result};

/// A validated JSON value in compact form.
#[derive(Clone, PartialEq, Eq)]
pub struct Json(String);

impl Json {
    /// Validates `text` as one JSON value and stores it without insignificant
    /// whitespace.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `text` is not exactly one JSON value.
    pub fn parse(text: &str) -> Result<Json> {
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .map_err(|e| Error::invalid(format!("invalid JSON value: {e}")))?;
        minify(text).map(Json)
    }

    /// A value that serde_json has already parsed (as a raw value inside a
    /// larger document), so only its whitespace and depth remain to check.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when nested deeper than [`MAX_DEPTH`].
    pub fn from_raw(raw: &serde_json::value::RawValue) -> Result<Json> {
        minify(raw.get()).map(Json)
    }

    /// Wraps text already known to be compact valid JSON (read back from the
    /// store, where it was validated before it was written and is covered by
    /// a checksum).
    pub(crate) fn from_trusted(text: String) -> Json {
        Json(text)
    }

    /// The compact text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value indented by two spaces per level, for people.
    pub fn pretty(&self) -> String {
        pretty(&self.0)
    }
}

/// Re-indents compact JSON text that came from the store (a document's
/// `to_json`, say) by two spaces per level, keeping every number and escape
/// as stored.
pub fn pretty(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len() * 2);
    pretty_into(compact, 0, &mut out);
    out
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Json({})", self.0)
    }
}

/// Deepest nesting of arrays and objects accepted (serde_json's own default
/// limit), so that a value stays usable by the tools it is piped into.
pub const MAX_DEPTH: usize = 128;

/// Checks a stored value before it is served or verified: UTF-8, one
/// well-formed JSON value, nesting within [`MAX_DEPTH`].
///
/// # Errors
/// The reason, when it is not.
pub(crate) fn check_stored(bytes: &[u8]) -> std::result::Result<(), String> {
    std::str::from_utf8(bytes).map_err(|_| "stored value is not UTF-8".to_owned())?;
    let mut v = Validator { b: bytes, i: 0 };
    if v.value(0) && v.i == bytes.len() {
        Ok(())
    } else {
        Err(format!(
            "stored value is not JSON nested at most {MAX_DEPTH} levels (at byte {})",
            v.i
        ))
    }
}

/// A strict validator of one JSON value (RFC 8259) over bytes already known
/// to be UTF-8, nesting at most [`MAX_DEPTH`] levels. It builds nothing, so
/// `verify`, which checks every stored value, runs several times faster than
/// with serde_json; values typed by users still go through serde_json, for
/// its messages. A differential test holds the two to the same verdicts.
struct Validator<'a> {
    b: &'a [u8],
    i: usize,
}

impl Validator<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let ok = self.peek() == Some(c);
        self.i += usize::from(ok);
        ok
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }

    /// A value with surrounding whitespace; `depth` counts the containers
    /// around it.
    fn value(&mut self, depth: usize) -> bool {
        self.ws();
        let ok = match self.peek() {
            Some(b'{') => depth < MAX_DEPTH && self.container(depth, b'}', true),
            Some(b'[') => depth < MAX_DEPTH && self.container(depth, b']', false),
            Some(b'"') => self.string(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        };
        self.ws();
        ok
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let ok = self.b.get(self.i..self.i + word.len()) == Some(word);
        self.i += word.len();
        ok
    }

    fn number(&mut self) -> bool {
        self.eat(b'-');
        if !self.eat(b'0') && self.digits() == 0 {
            return false;
        }
        if self.eat(b'.') && self.digits() == 0 {
            return false;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return false;
            }
        }
        true
    }

    fn string(&mut self) -> bool {
        self.i += 1;
        loop {
            // Plain characters in one tight scan; stop at a quote, an escape
            // or a control character.
            let rest = self.b.get(self.i..).unwrap_or_default();
            self.i += rest
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(rest.len());
            let Some(c) = self.peek() else { return false };
            self.i += 1;
            match c {
                b'"' => return true,
                b'\\' => match self.peek() {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                    Some(b'u') => {
                        let hex = self.b.get(self.i + 1..self.i + 5);
                        if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                            return false;
                        }
                        self.i += 5;
                    }
                    _ => return false,
                },
                _ => return false,
            }
        }
    }

    /// An object (`keyed`) or an array, its opening bracket next.
    fn container(&mut self, depth: usize, close: u8, keyed: bool) -> bool {
        self.i += 1;
        self.ws();
        if self.eat(close) {
            return true;
        }
        loop {
            if keyed {
                self.ws();
                if self.peek() != Some(b'"') || !self.string() {
                    return false;
                }
                self.ws();
                if !self.eat(b':') {
                    return false;
                }
            }
            if !self.value(depth + 1) {
                return false;
            }
            if self.eat(close) {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }
}

/// Removes whitespace outside strings from valid JSON text; refuses nesting
/// deeper than [`MAX_DEPTH`].
fn minify(text: &str) -> Result<String> {
    let mut out = Vec::with_capacity(text.len());
    if !walk(text.as_bytes(), Some(&mut out)) {
        return Err(too_deep());
    }
    if let Some(at) = lone_surrogate(&out) {
        return Err(Error::invalid(format!(
            "invalid JSON value: a string holds a lone surrogate escape ({}), which jq, Python and JavaScript cannot read back; escape the whole pair or the character itself",
            String::from_utf8_lossy(out.get(at..at + 6).unwrap_or_default())
        )));
    }
    // Only ASCII whitespace was dropped from valid UTF-8: still valid.
    String::from_utf8(out).map_err(|_| Error::invalid("invalid JSON value: not UTF-8"))
}

/// Where the first `\uD800`–`\uDFFF` escape that is not half of a
/// high-then-low pair starts, in compact JSON text already known to be valid.
/// serde_json accepts such escapes when it validates without decoding; the
/// tools values are piped into do not.
fn lone_surrogate(text: &[u8]) -> Option<usize> {
    let unit = |at: usize| -> Option<u16> {
        let hex = text.get(at + 2..at + 6)?;
        if text.get(at..at + 2)? != b"\\u" {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    };
    let mut in_string = false;
    let mut i = 0;
    while let Some(&c) = text.get(i) {
        if !in_string {
            in_string = c == b'"';
            i += 1;
            continue;
        }
        match c {
            b'"' => in_string = false,
            b'\\' => match unit(i) {
                Some(0xD800..=0xDBFF) => {
                    if !matches!(unit(i + 6), Some(0xDC00..=0xDFFF)) {
                        return Some(i);
                    }
                    i += 12;
                    continue;
                }
                Some(0xDC00..=0xDFFF) => return Some(i),
                Some(_) => {
                    i += 6;
                    continue;
                }
                // Any other escape is two bytes.
                None => i += 1,
            },
            _ => {}
        }
        i += 1;
    }
    None
}

fn too_deep() -> Error {
    Error::invalid(format!(
        "invalid JSON value: nested deeper than {MAX_DEPTH} levels"
    ))
}

/// One pass over valid JSON text: copies it without insignificant
/// whitespace into `out` (when given), and returns false as soon as nesting
/// passes [`MAX_DEPTH`]. Works on bytes: string literals are copied whole,
/// escapes included, so no character is ever decoded.
fn walk(text: &[u8], mut out: Option<&mut Vec<u8>>) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&c) = text.get(i) {
        if c == b'"' {
            let start = i;
            i += 1;
            while let Some(&s) = text.get(i) {
                i += if s == b'\\' { 2 } else { 1 };
                if s == b'"' {
                    break;
                }
            }
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(text.get(start..i.min(text.len())).unwrap_or_default());
            }
            continue;
        }
        i += 1;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => continue,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if let Some(o) = out.as_deref_mut() {
            o.push(c);
        }
    }
    true
}

/// Re-indents compact JSON text, starting at indentation `level`.
pub(crate) fn pretty_into(compact: &str, level: usize, out: &mut String) {
    let mut depth = level;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = compact.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // Keep empty containers on one line.
                if matches!(chars.peek(), Some('}' | ']')) {
                    if let Some(close) = chars.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
}

/// Writes `s` as a JSON string literal (quotes included) to `out`.
pub fn write_str_literal(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648, with padding) of `bytes`.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 with padding.
///
/// # Errors
/// [`Error::InvalidInput`] on a character outside the alphabet or a bad length.
pub fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let bad = || Error::invalid("body_base64 is not valid base64");
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (ci, chunk) in bytes.chunks(4).enumerate() {
        let last = ci == bytes.len() / 4 - 1;
        let mut n = 0u32;
        let mut pad = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' if last && i >= 2 => {
                    pad += 1;
                    0
                }
                _ => return Err(bad()),
            };
            if pad > 0 && c != b'=' {
                return Err(bad());
            }
            n = (n << 6) | u32::from(v);
        }
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_escapes_keep_their_text() {
        for (input, stored) in [
            ("42", "42"),
            ("-3.25", "-3.25"),
            ("1.0", "1.0"),
            ("1E400", "1E400"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            (
                " { \"b\" : 1 ,\n \"a\" : [ 1.50 , \"x y\\\" \" ] } ",
                r#"{"b":1,"a":[1.50,"x y\" "]}"#,
            ),
            ("\"\\u00e9\"", "\"\\u00e9\""),
        ] {
            assert_eq!(Json::parse(input).unwrap().as_str(), stored, "{input}");
        }
    }

    #[test]
    fn rejects_non_json_and_deep_nesting() {
        for bad in ["", "{", "1 2", "[1,]", "nan", "'x'"] {
            assert!(Json::parse(bad).is_err(), "{bad:?} accepted");
        }
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(Json::parse(&deep).is_err());
    }

    /// The fast validator behind `verify` gives serde_json's verdict on
    /// every input here: valid values, and each of them cut short and with
    /// every byte replaced by a character that matters to the grammar.
    #[test]
    fn stored_value_check_agrees_with_serde_json() {
        let valid = [
            r#"{"a":[1,-2.5e+3,0.0,1E9,true,false,null],"b":{"c":"x\"\\\/\b\f\n\r\t\u00e9"}}"#,
            "[]",
            "{}",
            "0",
            "-0",
            "\"\"",
            " [ 1 , { \"k\" : [ ] } ] ",
            "123456789012345678901234567890",
        ];
        let specials = b"{}[]\",:.-+eE0123456789tfnu\\ \x01";
        let mut cases = Vec::new();
        for v in valid {
            let b = v.as_bytes();
            cases.push(b.to_vec());
            for cut in 0..b.len() {
                cases.push(b[..cut].to_vec());
            }
            for at in 0..b.len() {
                for &s in specials {
                    let mut m = b.to_vec();
                    m[at] = s;
                    cases.push(m);
                }
            }
        }
        for bad in [
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "[1,]",
            "{\"a\"}",
            "\"\\u12G4\"",
            "tru",
            "[1]x",
            "nul",
        ] {
            cases.push(bad.as_bytes().to_vec());
        }
        for case in &cases {
            let Ok(text) = std::str::from_utf8(case) else {
                continue;
            };
            let serde = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
            assert_eq!(check_stored(case).is_ok(), serde, "{text:?}");
        }
        assert!(cases.len() > 2000);
        let deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(check_stored(deep.as_bytes()).is_ok());
        let deeper = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(check_stored(deeper.as_bytes()).is_err());
    }

    #[test]
    fn pretty_indents_and_keeps_empty_containers() {
        let j = Json::parse(r#"{"a":[1,{}],"b":[],"c":"x,{"}"#).unwrap();
        assert_eq!(
            j.pretty(),
            "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": [],\n  \"c\": \"x,{\"\n}"
        );
    }

    #[test]
    fn base64_round_trips_every_length() {
        let data: Vec<u8> = (0..=255u8).collect();
        for n in 0..40 {
            let enc = base64_encode(&data[..n]);
            assert_eq!(base64_decode(&enc).unwrap(), &data[..n]);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert!(base64_decode("Zm9=v").is_err());
        assert!(base64_decode("Z=9v").is_err());
        assert!(base64_decode("Zm9vY").is_err());
    }
}
