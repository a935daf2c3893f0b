//! JSON values kept as text, so they round-trip exactly.
//!
//! A value is validated and stored as its own text with the insignificant
//! whitespace removed, both in one pass of one scanner (RFC 8259, UTF-8,
//! nesting capped at 128 levels, no recursion, so hostile input cannot
//! overflow the stack). The same scanner checks every stored value before
//! it is served or verified. A value it refuses is handed to serde_json for
//! the message, so users read the words they always have. Numbers, string
//! escapes and key order are never re-rendered: `1.0` stays `1.0`, `1E400`
//! stays `1E400`, `"\u00e9"` stays `"\u00e9"`. Pretty printing re-indents
//! that text without parsing it into a tree.

use std::borrow::Cow;
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
        compact(text).map_err(|stop| refusal(text, stop))
    }

    /// A value that serde_json has already parsed (as a raw value inside a
    /// larger document), so only its whitespace, depth and escapes remain to
    /// check.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when nested deeper than [`MAX_DEPTH`] or
    /// holding a lone surrogate escape.
    pub fn from_raw(raw: &serde_json::value::RawValue) -> Result<Json> {
        Json::parse(raw.get())
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

/// Deepest nesting of arrays and objects accepted, so that a value stays
/// usable by the tools it is piped into (serde_json's own default limit
/// when it builds a tree).
pub const MAX_DEPTH: usize = 128;

// The scanner keeps one bit per enclosing container in a u128.
const _: () = assert!(MAX_DEPTH <= 128);

/// Checks a stored value before it is served or verified: UTF-8, one
/// well-formed JSON value, nesting within [`MAX_DEPTH`]. A lone surrogate
/// escape passes: stores written before such values were refused still
/// read.
///
/// # Errors
/// The reason, when it is not.
pub(crate) fn check_stored(bytes: &[u8]) -> std::result::Result<(), String> {
    match scan_whole(bytes, false, &mut Discard) {
        Ok(()) => Ok(()),
        // The scan checks UTF-8 only where JSON allows other than ASCII (in
        // strings); which of the two a bad value fails first is settled
        // here, off the fast path.
        Err(_) if std::str::from_utf8(bytes).is_err() => {
            Err("stored value is not UTF-8".to_owned())
        }
        Err(stop) => Err(format!(
            "stored value is not JSON nested at most {MAX_DEPTH} levels (at byte {})",
            stop.at()
        )),
    }
}

/// [`check_stored`], for the fuzz targets and harnesses (the `sim` feature).
///
/// # Errors
/// As [`check_stored`].
#[cfg(feature = "sim")]
pub fn check_stored_value(bytes: &[u8]) -> std::result::Result<(), String> {
    check_stored(bytes)
}

/// The compact form of `text`, in one pass: validated (RFC 8259, nesting
/// within [`MAX_DEPTH`], no lone surrogate escape) and copied without the
/// whitespace outside strings.
fn compact(text: &str) -> std::result::Result<Json, Stop> {
    let mut sink = Compact {
        src: text,
        kept: 0,
        out: String::with_capacity(text.len()),
    };
    scan_whole(text.as_bytes(), true, &mut sink)?;
    sink.cut(text.len(), text.len());
    Ok(Json(sink.out))
}

/// Why [`compact`] refused `text`, in the words users have always been
/// given: serde_json's message for anything that is not JSON, then the
/// depth limit, then lone surrogates (serde_json accepts those two).
fn refusal(text: &str, stop: Stop) -> Error {
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Error::invalid(format!("invalid JSON value: {e}"));
    }
    match (scan_whole(text.as_bytes(), false, &mut Discard), stop) {
        (Err(Stop::TooDeep(_)), _) | (_, Stop::TooDeep(_)) => too_deep(),
        (_, Stop::LoneSurrogate(at)) => Error::invalid(format!(
            "invalid JSON value: a string holds a lone surrogate escape ({}), which jq, Python and JavaScript cannot read back; escape the whole pair or the character itself",
            text.get(at..at + 6).unwrap_or_default()
        )),
        // serde_json and the scanner disagree; the differential tests and
        // the fuzz target exist so that this never happens.
        (_, Stop::Syntax(at)) => Error::invalid(format!("invalid JSON value at byte {at}")),
    }
}

fn too_deep() -> Error {
    Error::invalid(format!(
        "invalid JSON value: nested deeper than {MAX_DEPTH} levels"
    ))
}

/// A reader of one JSON text whose shape its caller knows (a line of
/// `load`), taking each part as it comes in one pass: strings decoded,
/// ids as `u64`, any other value as its compact [`Json`], with the same
/// scanner as [`Json::parse`].
///
/// It refuses nothing on its own account. Every method returns `None` (or
/// false) for anything but the plain case it reads: a repeated field, a
/// number in another form, bad JSON. The caller then hands the whole text
/// to serde_json, which decides, and words the message, as it always has.
/// So this reader only has to agree with serde_json on what it accepts.
pub(crate) struct Fields<'a> {
    text: &'a str,
    i: usize,
}

impl<'a> Fields<'a> {
    /// A reader at the start of `text`.
    pub(crate) fn new(text: &'a str) -> Fields<'a> {
        Fields { text, i: 0 }
    }

    fn skip_ws(&mut self) {
        self.i = ws(self.text.as_bytes(), self.i, &mut Discard);
    }

    /// Takes `c` (after whitespace), if it is next.
    pub(crate) fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        let ok = self.text.as_bytes().get(self.i) == Some(&c);
        self.i += usize::from(ok);
        ok
    }

    /// After an object's `{` or an array's `[`: whether a first member
    /// follows (false: `close` came, and was taken).
    pub(crate) fn first(&mut self, close: u8) -> bool {
        !self.eat(close)
    }

    /// After a member: whether another follows (a comma, taken), or the
    /// container ends (`close`, taken); `None` for anything else.
    pub(crate) fn next(&mut self, close: u8) -> Option<bool> {
        if self.eat(b',') {
            Some(true)
        } else {
            self.eat(close).then_some(false)
        }
    }

    /// An object member's name and its colon.
    pub(crate) fn name(&mut self) -> Option<Cow<'a, str>> {
        let name = self.string()?;
        self.eat(b':').then_some(name)
    }

    /// Takes `null`, if it is next.
    pub(crate) fn null(&mut self) -> bool {
        self.skip_ws();
        let ok = self.text.get(self.i..self.i + 4) == Some("null");
        self.i += if ok { 4 } else { 0 };
        ok
    }

    /// A string, decoded in the pass that checks it; borrowed when it
    /// holds no escape.
    pub(crate) fn string(&mut self) -> Option<Cow<'a, str>> {
        self.skip_ws();
        let (text, b) = (self.text, self.text.as_bytes());
        if b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let mut i = start;
        // The decoded text so far, once there is an escape, and where the
        // bytes not yet copied into it start.
        let mut out: Option<String> = None;
        let mut run = start;
        loop {
            while let Some(w) = word(b, i) {
                let m = specials(w);
                if m != 0 {
                    i += first(m);
                    break;
                }
                i += 8;
            }
            match b.get(i)? {
                b'"' => break,
                b'\\' => {
                    let o = out.get_or_insert_with(|| String::with_capacity(b.len() - start));
                    o.push_str(text.get(run..i)?);
                    let (c, len) = unescape(b, i)?;
                    o.push(c);
                    i += len;
                    run = i;
                }
                0x80.. => i = utf8(b, i).ok()?,
                0x20..=0x7f => i += 1,
                // A control character: serde_json refuses it.
                _ => return None,
            }
        }
        self.i = i + 1;
        Some(match out {
            None => Cow::Borrowed(text.get(start..i)?),
            Some(mut o) => {
                o.push_str(text.get(run..i)?);
                Cow::Owned(o)
            }
        })
    }

    /// A non-negative integer in plain digits that fits a `u64`.
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.skip_ws();
        let b = self.text.as_bytes();
        let end = digits(b, self.i);
        // A fraction or exponent makes it a float to serde_json; a
        // leading zero makes it no JSON number at all.
        if matches!(b.get(end), Some(b'.' | b'e' | b'E'))
            || (b.get(self.i) == Some(&b'0') && end > self.i + 1)
        {
            return None;
        }
        let n = self.text.get(self.i..end)?.parse().ok()?;
        self.i = end;
        Some(n)
    }

    /// `true` or `false`.
    pub(crate) fn bool(&mut self) -> Option<bool> {
        self.skip_ws();
        for (word, v) in [("true", true), ("false", false)] {
            if self.text.get(self.i..self.i + word.len()) == Some(word) {
                self.i += word.len();
                return Some(v);
            }
        }
        None
    }

    /// Any value, compact, refused as [`Json::parse`] refuses.
    pub(crate) fn value(&mut self) -> Option<Json> {
        self.skip_ws();
        let mut sink = Compact {
            src: self.text,
            kept: self.i,
            out: String::new(),
        };
        let end = scan(self.text.as_bytes(), self.i, true, &mut sink).ok()?;
        sink.cut(end, end);
        self.i = end;
        Some(Json(sink.out))
    }

    /// Whether only whitespace is left.
    pub(crate) fn end(&mut self) -> bool {
        self.skip_ws();
        self.i == self.text.len()
    }
}

/// Where and why a scan stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Not JSON, or not UTF-8, from this byte.
    Syntax(usize),
    /// The container opening at this byte is one level too deep.
    TooDeep(usize),
    /// The `\u` escape at this byte is half a surrogate pair, alone.
    LoneSurrogate(usize),
}

impl Stop {
    fn at(self) -> usize {
        match self {
            Stop::Syntax(at) | Stop::TooDeep(at) | Stop::LoneSurrogate(at) => at,
        }
    }
}

/// What a scan does with the whitespace it skips outside strings.
trait Sink {
    /// Bytes `from..to` of the text are whitespace to leave out.
    fn cut(&mut self, from: usize, to: usize);
}

/// Validation only.
struct Discard;

impl Sink for Discard {
    #[inline(always)]
    fn cut(&mut self, _: usize, _: usize) {}
}

/// Builds the compact text run by run: everything between two cuts is
/// copied in one piece.
struct Compact<'a> {
    src: &'a str,
    /// Bytes of `src` before this are in `out` or cut.
    kept: usize,
    out: String,
}

impl Sink for Compact<'_> {
    fn cut(&mut self, from: usize, to: usize) {
        // Cuts fall on ASCII whitespace, so both ends are char boundaries.
        self.out
            .push_str(self.src.get(self.kept..from).unwrap_or_default());
        self.kept = to;
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The eight bytes at `i`, as one little-endian word: byte `k` of the text
/// is bits `8k..8k+8`.
#[inline(always)]
fn word(b: &[u8], i: usize) -> Option<u64> {
    let w = b.get(i..i + 8)?;
    Some(u64::from_le_bytes(w.try_into().ok()?))
}

/// The high bit of every byte of `w` that ends a run of plain string
/// bytes: a quote, a backslash, a control character or a byte of a
/// multi-byte UTF-8 sequence. Only the lowest set bit is exact (a borrow
/// can flag a byte above it), and that is the one the callers use.
#[inline(always)]
fn specials(w: u64) -> u64 {
    // The "has a zero byte" test: the high bit of each zero byte of `v`.
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    let quote = zero(w ^ (ONES * u64::from(b'"')));
    let backslash = zero(w ^ (ONES * u64::from(b'\\')));
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    (quote | backslash | control | w) & HIGH
}

/// The high bit of every byte of `w` that is not an ASCII digit; as with
/// [`specials`], the lowest set bit is exact.
#[inline(always)]
fn non_digits(w: u64) -> u64 {
    // Digits become 0..=9, and only they; adding 0x76 sets the high bit
    // of anything above 9, and `| t` that of anything at or above 0x80.
    let t = w ^ (ONES * u64::from(b'0'));
    (t.wrapping_add(ONES * 0x76) | t) & HIGH
}

/// How many bytes into its word the lowest set bit of a non-zero `mask` is.
#[inline(always)]
fn first(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

/// Where the whitespace that starts at `i` ends, telling `sink` of it.
#[inline(always)]
fn ws(b: &[u8], mut i: usize, sink: &mut impl Sink) -> usize {
    // Compact text has none: one comparison.
    if !matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        return i;
    }
    let start = i;
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    sink.cut(start, i);
    i
}

/// [`scan`] of the whole of `b`: one value, whitespace around it, nothing
/// else.
fn scan_whole(b: &[u8], refuse_lone: bool, sink: &mut impl Sink) -> std::result::Result<(), Stop> {
    let end = ws(b, scan(b, 0, refuse_lone, sink)?, sink);
    if end == b.len() {
        Ok(())
    } else {
        Err(Stop::Syntax(end))
    }
}

/// One strict pass over the JSON value (RFC 8259) that starts at `from`
/// (after any whitespace); where it ends. `refuse_lone` refuses lone
/// surrogate escapes (new values) or lets them pass (values already
/// stored). No recursion and no allocation: the open containers are a bit
/// stack in a u128. Runs of plain string bytes are skipped eight at a
/// time, and UTF-8 is checked inside strings, the only place JSON allows
/// other than ASCII, so a value is read once whatever it holds.
fn scan(
    b: &[u8],
    from: usize,
    refuse_lone: bool,
    sink: &mut impl Sink,
) -> std::result::Result<usize, Stop> {
    // Whether each container around the innermost open one is an object,
    // the nearest in bit 0; and whether the innermost one is.
    let mut outer: u128 = 0;
    let mut object = false;
    let mut depth = 0usize;
    let mut i = ws(b, from, sink);
    'value: loop {
        match b.get(i) {
            Some(b'"') => i = string(b, i + 1, refuse_lone)?,
            Some(b'-' | b'0'..=b'9') => i = number(b, i)?,
            Some(&open @ (b'{' | b'[')) => {
                if depth == MAX_DEPTH {
                    return Err(Stop::TooDeep(i));
                }
                i = ws(b, i + 1, sink);
                let opens_object = open == b'{';
                if b.get(i) == Some(if opens_object { &b'}' } else { &b']' }) {
                    i += 1;
                } else {
                    outer = outer << 1 | u128::from(object);
                    object = opens_object;
                    depth += 1;
                    if object {
                        i = key(b, i, refuse_lone, sink)?;
                    }
                    continue 'value;
                }
            }
            Some(b't') => i = literal(b, i, b"true")?,
            Some(b'f') => i = literal(b, i, b"false")?,
            Some(b'n') => i = literal(b, i, b"null")?,
            Some(b' ' | b'\t' | b'\n' | b'\r') => {
                i = ws(b, i, sink);
                continue 'value;
            }
            _ => return Err(Stop::Syntax(i)),
        }
        // After a value: a comma or the close of its container, unless it
        // is the outermost.
        loop {
            if depth == 0 {
                return Ok(i);
            }
            match b.get(i) {
                Some(b',') => {
                    i = ws(b, i + 1, sink);
                    if object {
                        i = key(b, i, refuse_lone, sink)?;
                    }
                    continue 'value;
                }
                Some(b'}') if object => {}
                Some(b']') if !object => {}
                Some(b' ' | b'\t' | b'\n' | b'\r') => {
                    i = ws(b, i, sink);
                    continue;
                }
                _ => return Err(Stop::Syntax(i)),
            }
            i += 1;
            depth -= 1;
            object = outer & 1 == 1;
            outer >>= 1;
        }
    }
}

/// A member's key and colon at `i`, and the whitespace before its value.
#[inline(always)]
fn key(
    b: &[u8],
    i: usize,
    refuse_lone: bool,
    sink: &mut impl Sink,
) -> std::result::Result<usize, Stop> {
    if b.get(i) != Some(&b'"') {
        return Err(Stop::Syntax(i));
    }
    let i = ws(b, string(b, i + 1, refuse_lone)?, sink);
    if b.get(i) != Some(&b':') {
        return Err(Stop::Syntax(i));
    }
    Ok(ws(b, i + 1, sink))
}

/// The letters `word` at `i`; where they end.
#[inline(always)]
fn literal<const N: usize>(b: &[u8], i: usize, word: &[u8; N]) -> std::result::Result<usize, Stop> {
    if b.get(i..).and_then(|r| r.first_chunk::<N>()) == Some(word) {
        Ok(i + N)
    } else {
        Err(Stop::Syntax(i))
    }
}

/// Where the run of digits at `i` ends, eight at a time.
#[inline(always)]
fn digits(b: &[u8], mut i: usize) -> usize {
    while let Some(w) = word(b, i) {
        let m = non_digits(w);
        if m != 0 {
            return i + first(m);
        }
        i += 8;
    }
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    i
}

/// A number at `i`; where it ends.
#[inline(always)]
fn number(b: &[u8], mut i: usize) -> std::result::Result<usize, Stop> {
    i += usize::from(b.get(i) == Some(&b'-'));
    i = match b.get(i) {
        Some(b'0') => i + 1,
        Some(b'1'..=b'9') => digits(b, i + 1),
        _ => return Err(Stop::Syntax(i)),
    };
    if b.get(i) == Some(&b'.') {
        let end = digits(b, i + 1);
        if end == i + 1 {
            return Err(Stop::Syntax(end));
        }
        i = end;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        i += usize::from(matches!(b.get(i), Some(b'+' | b'-')));
        let end = digits(b, i);
        if end == i {
            return Err(Stop::Syntax(end));
        }
        i = end;
    }
    Ok(i)
}

/// The rest of a string whose opening quote is just before `i`; where it
/// ends (after the closing quote).
#[inline(always)]
fn string(b: &[u8], mut i: usize, refuse_lone: bool) -> std::result::Result<usize, Stop> {
    loop {
        // Plain bytes eight at a time, then one at a time for the last few.
        loop {
            let Some(w) = word(b, i) else {
                while let Some(&c @ 0x20..=0x7f) = b.get(i) {
                    if c == b'"' || c == b'\\' {
                        break;
                    }
                    i += 1;
                }
                break;
            };
            let m = specials(w);
            if m != 0 {
                i += first(m);
                break;
            }
            i += 8;
        }
        match b.get(i) {
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => i = escape(b, i, refuse_lone)?,
            Some(0x80..) => i = utf8(b, i)?,
            // A control character, or the end of the text.
            _ => return Err(Stop::Syntax(i)),
        }
    }
}

/// The character the escape at `at` stands for, and the escape's length;
/// `None` for a bad escape or a lone surrogate, which serde_json refuses
/// when it decodes.
fn unescape(b: &[u8], at: usize) -> Option<(char, usize)> {
    Some(match b.get(at + 1)? {
        b'"' => ('"', 2),
        b'\\' => ('\\', 2),
        b'/' => ('/', 2),
        b'b' => ('\u{8}', 2),
        b'f' => ('\u{c}', 2),
        b'n' => ('\n', 2),
        b'r' => ('\r', 2),
        b't' => ('\t', 2),
        b'u' => match hex4(b, at + 2)? {
            high @ 0xD800..=0xDBFF => {
                if b.get(at + 6..at + 8)? != b"\\u" {
                    return None;
                }
                let low = hex4(b, at + 8)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return None;
                }
                let c = 0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                (char::from_u32(c)?, 12)
            }
            // A lone low surrogate is no char: `from_u32` refuses it.
            unit => (char::from_u32(u32::from(unit))?, 6),
        },
        _ => return None,
    })
}

fn hex4(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 4)?.iter().try_fold(0u16, |n, &c| {
        let d = char::from(c).to_digit(16)?;
        Some(n << 4 | d as u16)
    })
}

/// The escape whose backslash is at `at`; where it ends.
fn escape(b: &[u8], at: usize, refuse_lone: bool) -> std::result::Result<usize, Stop> {
    match b.get(at + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(at + 2),
        Some(b'u') => {
            let unit = hex4(b, at + 2).ok_or(Stop::Syntax(at))?;
            if !refuse_lone {
                return Ok(at + 6);
            }
            match unit {
                0xD800..=0xDBFF => {
                    let low = match b.get(at + 6..at + 8) {
                        Some(b"\\u") => hex4(b, at + 8),
                        _ => None,
                    };
                    if matches!(low, Some(0xDC00..=0xDFFF)) {
                        Ok(at + 12)
                    } else {
                        Err(Stop::LoneSurrogate(at))
                    }
                }
                0xDC00..=0xDFFF => Err(Stop::LoneSurrogate(at)),
                _ => Ok(at + 6),
            }
        }
        _ => Err(Stop::Syntax(at)),
    }
}

/// The UTF-8 encoded character of two to four bytes at `at` (RFC 3629: no
/// overlong forms, no surrogates, nothing past U+10FFFF); where it ends.
fn utf8(b: &[u8], at: usize) -> std::result::Result<usize, Stop> {
    let byte = |k: usize| b.get(at + k).copied().unwrap_or(0);
    let tail = |k: usize| matches!(byte(k), 0x80..=0xBF);
    let (len, second) = match byte(0) {
        0xC2..=0xDF => (2, tail(1)),
        0xE0 => (3, matches!(byte(1), 0xA0..=0xBF)),
        0xE1..=0xEC | 0xEE..=0xEF => (3, tail(1)),
        0xED => (3, matches!(byte(1), 0x80..=0x9F)),
        0xF0 => (4, matches!(byte(1), 0x90..=0xBF)),
        0xF1..=0xF3 => (4, tail(1)),
        0xF4 => (4, matches!(byte(1), 0x80..=0x8F)),
        _ => return Err(Stop::Syntax(at)),
    };
    if second && (2..len).all(tail) {
        Ok(at + len)
    } else {
        Err(Stop::Syntax(at))
    }
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

    /// The scanner behind `verify` and every new value gives serde_json's
    /// verdict on every input here (and the messages and compact text of
    /// before): valid values, and each of them cut short and with every
    /// byte replaced by a character that matters to the grammar.
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
        let specials = b"{}[]\",:.-+eE0123456789tfnu\\ \x01\x80\xc3";
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
            assert_as_before(case);
        }
        assert!(cases.len() > 2000);
        let deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(check_stored(deep.as_bytes()).is_ok());
        let deeper = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(check_stored(deeper.as_bytes()).is_err());
    }

    /// What the store has always kept of a valid value: the text without
    /// the whitespace outside strings (the one-pass copy before this
    /// scanner, kept here as the oracle).
    fn oracle_compact(text: &str) -> String {
        let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
        for c in text.chars() {
            if in_string {
                in_string = escaped || c != '"';
                escaped = !escaped && c == '\\';
            } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
                continue;
            } else {
                in_string = c == '"';
            }
            out.push(c);
        }
        out
    }

    /// Verdicts and messages as before the one-pass scanner: serde_json's
    /// verdict and message for grammar, then the depth limit, then lone
    /// surrogates; for stored bytes, UTF-8 first.
    fn assert_as_before(case: &[u8]) {
        let shown = String::from_utf8_lossy(case);
        let Ok(text) = std::str::from_utf8(case) else {
            assert_eq!(
                check_stored(case),
                Err("stored value is not UTF-8".to_owned()),
                "{shown:?}"
            );
            return;
        };
        let serde = serde_json::from_str::<serde::de::IgnoredAny>(text);
        let depth_ok = !text.contains(&"[".repeat(MAX_DEPTH + 1));
        assert_eq!(
            check_stored(case).is_ok(),
            serde.is_ok() && depth_ok,
            "{shown:?}"
        );
        match (Json::parse(text), serde) {
            (Ok(j), Ok(_)) => assert_eq!(j.as_str(), oracle_compact(text), "{shown:?}"),
            (Err(e), Err(s)) => assert_eq!(
                e.to_string(),
                format!("invalid JSON value: {s}"),
                "{shown:?}"
            ),
            (Err(e), Ok(_)) => {
                let e = e.to_string();
                assert!(
                    e.contains("lone surrogate") || e.contains("nested deeper"),
                    "{shown:?}: {e}"
                );
            }
            (Ok(_), Err(s)) => panic!("{shown:?} accepted; serde_json says {s}"),
        }
    }

    /// The eight-at-a-time string and digit scans stop at the right byte
    /// wherever it falls in a word, and UTF-8 is checked exactly: every
    /// special byte, and broken multi-byte sequences, at every offset of
    /// strings and numbers of every length around a word.
    #[test]
    fn word_at_a_time_scans_find_every_byte_at_every_offset() {
        let specials: [&[u8]; 16] = [
            b"\"",
            b"\\",
            b"\\n",
            b"\\u00e9",
            b"\\ud83d\\ude00",
            b"\\ud800",
            b"\\udc00x",
            b"\\x",
            b"\x00",
            b"\x1f",
            b"\x7f",
            "é".as_bytes(),
            "数".as_bytes(),
            "😀".as_bytes(),
            b"\xc3",
            b"\xed\xa0\x80",
        ];
        let mut cases = 0;
        for len in 0..20 {
            for at in 0..=len {
                for s in specials {
                    let mut v = b"[\"".to_vec();
                    v.extend(std::iter::repeat_n(b'a', at));
                    v.extend_from_slice(s);
                    v.extend(std::iter::repeat_n(b'b', len - at));
                    v.extend_from_slice(b"\",1]");
                    assert_as_before(&v);
                    cases += 1;
                }
                for end in [
                    &b""[..],
                    b",",
                    b"]",
                    b".5",
                    b"e3",
                    b"x",
                    b" ",
                    b"\"",
                    b":",
                    b"/",
                    b"\xc3\xa9",
                ] {
                    let mut v = b"[-".to_vec();
                    v.extend((0..len + 1).map(|k| b"1234567890"[k % 10]));
                    v.extend_from_slice(end);
                    v.push(b']');
                    assert_as_before(&v);
                    assert_as_before(v.get(1..v.len() - 1).unwrap_or_default());
                    cases += 2;
                }
            }
        }
        assert!(cases > 7000);
    }

    /// Whitespace anywhere outside strings is dropped, inside kept, and
    /// depth and surrogates give the messages they always gave.
    #[test]
    fn compact_copy_and_messages_match_what_the_store_always_kept() {
        for v in [
            " { \"a b\" :\t[ 1 ,\r\n2 ] , \"c\" : { } , \"d\":\" x \\\" y \" }\n",
            "[ ]",
            "\t\"\\u00e9 \"\t",
            "[ [ [ 1 ] ] , [ ] ]",
            "  -0.5e+10  ",
        ] {
            assert_as_before(v.as_bytes());
        }
        let deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(Json::parse(&deep).is_ok());
        let deeper = format!("[{deep}]");
        assert_eq!(
            Json::parse(&deeper).unwrap_err().to_string(),
            "invalid JSON value: nested deeper than 128 levels"
        );
        // Too deep comes before a lone surrogate, as it always did.
        let both = format!("[\"\\ud800\",{deeper}]");
        assert!(
            Json::parse(&both)
                .unwrap_err()
                .to_string()
                .contains("nested deeper")
        );
        assert!(check_stored(b"[\"\\ud800\"]").is_ok());
        assert_eq!(
            Json::parse("[\"ok\", \"\\udc00\"]")
                .unwrap_err()
                .to_string(),
            "invalid JSON value: a string holds a lone surrogate escape (\\udc00), which jq, Python and JavaScript cannot read back; escape the whole pair or the character itself"
        );
        // Grammar errors keep serde_json's words, whatever else is wrong.
        assert_eq!(
            Json::parse("[\"\\ud800\", 01]").unwrap_err().to_string(),
            format!(
                "invalid JSON value: {}",
                serde_json::from_str::<serde::de::IgnoredAny>("[\"\\ud800\", 01]").unwrap_err()
            )
        );
    }

    #[test]
    fn pretty_indents_and_keeps_empty_containers() {
        let j = Json::parse(r#"{"a":[1,{}],"b":[],"c":"x,{"}"#).unwrap();
        assert_eq!(
            j.pretty(),
            "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": [],\n  \"c\": \"x,{\"\n}"
        );
    }
}
