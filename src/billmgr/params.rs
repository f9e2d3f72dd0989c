//! Request parameters: the query string and an `application/x-www-form-urlencoded` body,
//! merged in that order, with order and repeated keys kept.
//!
//! Decoding is strict: a `%` not followed by two hex digits, or bytes that are not UTF-8
//! after decoding, are errors (BILLmanager's own CGI helper would mangle them silently; a
//! gateway that rewrites money-related fields must not guess).

use std::fmt;

use super::{BmError, ErrorType};

/// Bounds on what a request may carry (`[limits]` in `config.toml` converts into this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_params: usize,
    pub max_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            max_params: 1000,
            max_value_bytes: 16 * 1024,
        }
    }
}

/// Why parameters could not be read. Each maps to a `value`-type error document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the request has more than {limit} parameters")]
    TooManyParams { limit: usize },
    #[error("the value of the '{key}' field is longer than {limit} bytes")]
    ValueTooLong { key: String, limit: usize },
    #[error("the {part} is not valid percent-encoding at byte {offset}")]
    BadEncoding { part: &'static str, offset: usize },
    #[error("the {part} is not valid UTF-8 after decoding")]
    NotUtf8 { part: &'static str },
    #[error("the request body was cut off or did not arrive in time")]
    Incomplete,
    /// A control parameter (`CONTROL_KEYS`) given more than once (query and body count
    /// together): the gateway and the upstream could act on different values.
    #[error("the '{key}' field is given more than once")]
    Repeated { key: String },
    /// A control parameter whose value the gateway and a plain BILLmanager could read
    /// differently (leading or trailing white space, white space only, a `func` that is
    /// not a function name).
    #[error("the value of the '{key}' field is ambiguous: {why}")]
    Ambiguous { key: String, why: &'static str },
    /// A control character in a key or a value (see [`Params::check_unambiguous`]).
    #[error("the '{key}' field contains a control character")]
    ControlChar { key: String },
}

/// Parameters that decide what a call does or who makes it. Each may appear at most once
/// in a request, with a value that cannot be read two ways.
pub const CONTROL_KEYS: &[&str] = &[
    "func",
    "sok",
    "elid",
    "remoteid",
    "pricelist",
    "out",
    "su",
    "authinfo",
    "auth",
];

impl From<ParamError> for BmError {
    fn from(e: ParamError) -> Self {
        let object = match &e {
            ParamError::ValueTooLong { key, .. }
            | ParamError::Repeated { key }
            | ParamError::Ambiguous { key, .. }
            | ParamError::ControlChar { key } => key.clone(),
            _ => "request".to_string(),
        };
        let mut msg = e.to_string();
        if let Some(first) = msg.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        BmError::new(ErrorType::Value, msg).object(object)
    }
}

/// An ordered multimap of request parameters.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

/// Parameter values are often secrets (`authinfo`, `password`, `auth`): never print them.
impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.pairs.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Params {
    pub fn new() -> Self {
        Params::default()
    }

    /// Parse and merge the query string and the form body, checking `limits`.
    pub fn parse(query: Option<&str>, body: &[u8], limits: &Limits) -> Result<Params, ParamError> {
        if body.len() > limits.max_body_bytes {
            return Err(ParamError::BodyTooLarge {
                limit: limits.max_body_bytes,
            });
        }
        let mut params = Params::new();
        if let Some(q) = query {
            decode_into(q.as_bytes(), "query string", limits, &mut params)?;
        }
        decode_into(body, "request body", limits, &mut params)?;
        Ok(params)
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Params {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key`, ignoring empty values.
    pub fn get_nonempty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.trim().is_empty())
    }

    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn count(&self, key: &str) -> usize {
        self.pairs.iter().filter(|(k, _)| k == key).count()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    /// Replace every value of `key` by one `value`, kept at the position of the first one
    /// (appended when absent).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.pairs.iter().position(|(k, _)| k == key) {
            Some(i) => {
                self.pairs[i].1 = value;
                let mut seen = 0usize;
                self.pairs.retain(|(k, _)| {
                    if k == key {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.pairs.push((key.to_string(), value)),
        }
    }

    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.pairs.push((key.into(), value.into()));
    }

    /// Remove every value of `key`; answers how many there were.
    pub fn remove(&mut self, key: &str) -> usize {
        let before = self.pairs.len();
        self.pairs.retain(|(k, _)| k != key);
        before - self.pairs.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Mutable access to the pairs, for rewrites that rename keys (`addon_<id>`).
    pub fn pairs_mut(&mut self) -> &mut Vec<(String, String)> {
        &mut self.pairs
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn func(&self) -> Option<&str> {
        self.get_nonempty("func")
    }

    /// The output format the caller asked for (`out`), `xml` by default.
    pub fn format(&self) -> super::Format {
        super::Format::from_param(self.get("out"))
    }

    /// The message language (`lang`), `en` by default.
    pub fn lang(&self) -> &str {
        match self.get("lang") {
            Some(l)
                if !l.is_empty() && l.len() <= 8 && l.bytes().all(|b| b.is_ascii_alphabetic()) =>
            {
                l
            }
            _ => "en",
        }
    }

    /// `sok` present and non-empty (`ok`, `yes`, anything): the call submits a form
    /// (changes something), as a plain BILLmanager reads it. A white-space-only `sok` is
    /// non-empty too; [`Params::check_unambiguous`] refuses it before this is asked.
    pub fn is_submit(&self) -> bool {
        self.get("sok").is_some_and(|v| !v.is_empty())
    }

    /// Refuse what the gateway and a plain BILLmanager could read differently, so that
    /// what the gateway decides on is exactly what it forwards:
    ///
    /// - a control parameter (`CONTROL_KEYS`) given more than once ([`ParamError::Repeated`]);
    /// - a control parameter's value with leading or trailing white space, or white space
    ///   only (`sok=%20`, `sok=%09ok`), or a `func` that is not made of `A-Z a-z 0-9 . _ -`
    ///   ([`ParamError::Ambiguous`]); an empty `sok` too (BILLmanager documents only an
    ///   absent `sok`, a read, and a non-empty one, a submit); other empty values are fine;
    /// - a control character in any key or value ([`ParamError::ControlChar`]): "control"
    ///   means a Unicode `Cc` character (U+0000–U+001F, U+007F, U+0080–U+009F), NUL
    ///   included. Only CR, LF and TAB are allowed, and only in the values of
    ///   parameters that are not control parameters (a multi-line `csr` or `key`).
    ///
    /// The key named in an error is made printable (`printable_key`).
    pub fn check_unambiguous(&self) -> Result<(), ParamError> {
        for (k, v) in &self.pairs {
            if k.chars().any(char::is_control) {
                return Err(ParamError::ControlChar {
                    key: printable_key(k),
                });
            }
            let control = CONTROL_KEYS.contains(&k.as_str());
            let allowed = |c: char| !control && matches!(c, '\r' | '\n' | '\t');
            if v.chars().any(|c| c.is_control() && !allowed(c)) {
                return Err(ParamError::ControlChar { key: k.clone() });
            }
        }
        for &key in CONTROL_KEYS {
            let mut values = self.get_all(key);
            let Some(v) = values.next() else { continue };
            if values.next().is_some() {
                return Err(ParamError::Repeated { key: key.into() });
            }
            let why = if key == "sok" && v.is_empty() {
                // BILLmanager documents only "absent" (read) and "non-empty" (submit).
                Some("it is empty (leave sok out to read a form, send sok=ok to submit)")
            } else if v != v.trim() {
                Some(if v.trim().is_empty() {
                    "it is only white space"
                } else {
                    "it has leading or trailing white space"
                })
            } else if key == "func"
                && !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                Some("not a function name")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(ParamError::Ambiguous {
                    key: key.into(),
                    why,
                });
            }
        }
        Ok(())
    }

    /// Encode as `application/x-www-form-urlencoded` (serde_urlencoded: `A-Z a-z 0-9 - _ .
    /// *` kept, space as `+`, every other byte `%XX`).
    pub fn to_form(&self) -> String {
        // Pairs of strings always encode: serde_urlencoded refuses only other shapes.
        serde_urlencoded::to_string(&self.pairs).unwrap_or_default()
    }
}

/// A key as it may appear in an error document or a log line: control characters
/// escaped (a NUL becomes `\u{0}`), at most 64 characters ([`crate::telemetry::printable`]).
pub fn printable_key(key: &str) -> String {
    crate::telemetry::printable(key, 64)
}

/// The caller's `out` read leniently (no decoding) from a request whose parameters could
/// not be parsed, so that even that error comes back in the format it asked for: the
/// query's first `out=`, else the body's, else xml.
pub fn sniff_format(query: Option<&str>, body: &[u8]) -> super::Format {
    let find = |s: &[u8]| -> Option<super::Format> {
        s.split(|&b| b == b'&')
            .find_map(|kv| kv.strip_prefix(b"out="))
            .map(|v| super::Format::from_param(std::str::from_utf8(v).ok()))
    };
    query
        .and_then(|q| find(q.as_bytes()))
        .or_else(|| find(body))
        .unwrap_or(super::Format::Xml)
}

/// Decode `input` (`k=v&k=v`) into `params`, one piece at a time, so that every bound is
/// checked before the next piece is decoded: the number of parameters, strict
/// percent-encoding (offsets counted in `input`), UTF-8, and the length of each key and
/// value. The decoding itself (`+`, `%XX`) is `serde_urlencoded`'s.
fn decode_into(
    input: &[u8],
    part: &'static str,
    limits: &Limits,
    params: &mut Params,
) -> Result<(), ParamError> {
    let mut offset = 0usize;
    for piece in input.split(|&b| b == b'&') {
        let start = offset;
        offset += piece.len() + 1;
        if piece.is_empty() {
            continue;
        }
        if params.pairs.len() >= limits.max_params {
            return Err(ParamError::TooManyParams {
                limit: limits.max_params,
            });
        }
        check_escapes(piece, part, start)?;
        let (key, value) = decode_pair(piece, part)?;
        if value.len() > limits.max_value_bytes || key.len() > limits.max_value_bytes {
            let mut key = key;
            truncate_utf8(&mut key, 64);
            return Err(ParamError::ValueTooLong {
                key,
                limit: limits.max_value_bytes,
            });
        }
        params.pairs.push((key, value));
    }
    Ok(())
}

/// Every `%` must start a `%XX` escape (serde_urlencoded would pass a broken one through
/// as text); `base` is the piece's offset in its part.
fn check_escapes(piece: &[u8], part: &'static str, base: usize) -> Result<(), ParamError> {
    for i in memchr::memchr_iter(b'%', piece) {
        let hex = |j: usize| piece.get(j).is_some_and(u8::is_ascii_hexdigit);
        if !(hex(i + 1) && hex(i + 2)) {
            return Err(ParamError::BadEncoding {
                part,
                offset: base + i,
            });
        }
    }
    Ok(())
}

/// One non-empty `key[=value]` piece. serde_urlencoded replaces bytes that are not UTF-8
/// with U+FFFD; when a replacement character shows up, the piece is decoded again
/// strictly to tell a real U+FFFD from bytes that are not UTF-8.
fn decode_pair(piece: &[u8], part: &'static str) -> Result<(String, String), ParamError> {
    let not_utf8 = ParamError::NotUtf8 { part };
    let mut pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(piece).map_err(|_| not_utf8.clone())?;
    let (key, value) = match pairs.pop() {
        Some(pair) if pairs.is_empty() => pair,
        _ => return Err(not_utf8),
    };
    if key.contains('\u{FFFD}') || value.contains('\u{FFFD}') {
        let raw: Vec<u8> = piece
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        if percent_encoding::percent_decode(&raw)
            .decode_utf8()
            .is_err()
        {
            return Err(not_utf8);
        }
    }
    Ok((key, value))
}

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

#[cfg(test)]
mod tests;
