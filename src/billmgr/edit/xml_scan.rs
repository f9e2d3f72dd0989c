//! A small xml tokenizer over the document's bytes, for the list rewrite: markup and text
//! as byte ranges, read with the rules of the quick-xml reader the rest of the gateway
//! reads xml with (end names checked, attributes `key="value"` or `key='value'`, a `>`
//! inside quotes does not end a tag, comments, CDATA, processing instructions and
//! declarations as quick-xml delimits them), so that a list is accepted and refused as
//! the element reader accepts and refuses it (a test compares the two on mutated
//! documents). Nothing is copied; the caller checks references and duplicate attributes.

use super::xml::xml_err;
use crate::billmgr::doc::{DocError, NAME_CLASS};

/// A byte range of the document.
pub(super) type Span = (u32, u32);

/// One token; each spans `start..end` of the document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Tok {
    /// `<name …>` or (`empty`) `<name …/>`; `attrs` is what follows the name; `plain`
    /// when the name is ASCII name bytes (a valid name, not to be checked again).
    Start {
        name: Span,
        attrs: Span,
        empty: bool,
        plain: bool,
    },
    /// `</name>`.
    End { name: Span },
    /// Text up to the next `<` or the end, as written (escaped).
    Text,
    /// `<![CDATA[…]]>`: its content.
    CData { inner: Span },
    /// A comment, a processing instruction or the xml declaration.
    Other,
}

/// The first `needle` in `hay`. The usual name, value or text is a few bytes, which a
/// plain loop reads faster than `memchr` sets up; a longer one goes to `memchr`.
#[inline]
pub(super) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    const SHORT: usize = 16;
    let head = hay.len().min(SHORT);
    if let Some(p) = hay[..head].iter().position(|&c| c == needle) {
        return Some(p);
    }
    memchr::memchr(needle, &hay[head..]).map(|p| head + p)
}

/// The first `a` or `b` in `hay`, as [`find_byte`] finds one.
#[inline]
fn find_either(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    const SHORT: usize = 16;
    let head = hay.len().min(SHORT);
    if let Some(p) = hay[..head].iter().position(|&c| c == a || c == b) {
        return Some(p);
    }
    memchr::memchr2(a, b, &hay[head..]).map(|p| head + p)
}

/// Byte equality of two short strings (names), without a call to `memcmp`.
#[inline]
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// The end of the run of ASCII name bytes (letters, digits, `_-.:`) from `from`, and
/// whether its first byte may start a name: a run that makes the whole name is one.
fn ascii_name(b: &[u8], from: usize, to: usize) -> (usize, bool) {
    let starts = b
        .get(from)
        .is_some_and(|&c| NAME_CLASS[c as usize] & 1 != 0);
    let mut i = from;
    while i < to && NAME_CLASS[b[i] as usize] != 0 {
        i += 1;
    }
    (i, starts)
}

/// One attribute of a start tag, as [`attributes`] reads it.
pub(super) struct RawAttr {
    pub(super) key: Span,
    /// The value as written, without its quotes.
    pub(super) value: Span,
    /// The key is ASCII name bytes: a valid name, not to be checked again.
    pub(super) plain_key: bool,
    /// The value holds a `&`: its references are to be checked.
    pub(super) refs: bool,
}

fn ws(b: u8) -> bool {
    matches!(b, b' ' | b'\r' | b'\n' | b'\t')
}

/// Reads tokens from a position of a document.
pub(super) struct Scanner<'a> {
    b: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(b: &'a [u8], pos: usize) -> Self {
        Scanner { b, pos }
    }

    /// The next token and its `start..end`, `None` at the end of the document.
    pub(super) fn next(&mut self) -> Result<Option<(Tok, usize, usize)>, DocError> {
        let b = self.b;
        let start = self.pos;
        if start >= b.len() {
            return Ok(None);
        }
        if b[start] != b'<' {
            let end = find_byte(b'<', &b[start..]).map_or(b.len(), |p| start + p);
            self.pos = end;
            return Ok(Some((Tok::Text, start, end)));
        }
        let (tok, end) = match b.get(start + 1) {
            None => return Err(xml_err("the document ends inside a tag")),
            Some(b'!') => self.bang(start)?,
            Some(b'?') => {
                // quick-xml: the first `?>`, the `?` of `<?` included (`<?>` is refused).
                let mut i = start + 2;
                loop {
                    let Some(p) = memchr::memchr(b'>', &b[i..]) else {
                        return Err(xml_err("a processing instruction is not closed"));
                    };
                    let gt = i + p;
                    if b[gt - 1] == b'?' {
                        if gt == start + 2 {
                            return Err(xml_err("a processing instruction is not closed"));
                        }
                        break (Tok::Other, gt + 1);
                    }
                    i = gt + 1;
                }
            }
            Some(b'/') => {
                let gt = tag_end(b, start + 2)?;
                let mut n = gt;
                while n > start + 2 && ws(b[n - 1]) {
                    n -= 1;
                }
                (
                    Tok::End {
                        name: (start as u32 + 2, n as u32),
                    },
                    gt + 1,
                )
            }
            Some(_) => {
                // The name first (the usual tag ends right after it, or has attributes
                // after a space); a quote in it takes the general way.
                let (mut i, plain_start) = ascii_name(b, start + 1, b.len());
                let ascii_end = i;
                while i < b.len()
                    && !matches!(b[i], b' ' | b'\r' | b'\n' | b'\t' | b'>' | b'"' | b'\'')
                {
                    i += 1;
                }
                let gt = match b.get(i) {
                    Some(b'>') => i,
                    Some(b'"' | b'\'') => tag_end(b, start + 1)?,
                    _ => tag_end(b, i)?,
                };
                let empty = b[gt - 1] == b'/' && gt > start + 1;
                let content_end = if empty { gt - 1 } else { gt };
                let name_end = if i < gt && ws(b[i]) {
                    i
                } else {
                    b[start + 1..content_end]
                        .iter()
                        .position(|&c| ws(c))
                        .map_or(content_end, |p| start + 1 + p)
                };
                (
                    Tok::Start {
                        name: (start as u32 + 1, name_end as u32),
                        attrs: (name_end as u32, content_end as u32),
                        empty,
                        plain: plain_start && name_end == ascii_end,
                    },
                    gt + 1,
                )
            }
        };
        self.pos = end;
        Ok(Some((tok, start, end)))
    }

    /// `<!…`: a comment or CDATA; a declaration (`<!DOCTYPE`) is refused.
    fn bang(&self, start: usize) -> Result<(Tok, usize), DocError> {
        let b = self.b;
        let rest = &b[start + 1..];
        // The first `>` preceded by `close`, at least `min` bytes after the `!`.
        let closed = |close: &[u8], min: usize| {
            memchr::memchr_iter(b'>', rest)
                .find(|&i| i > min && rest[..i].ends_with(close))
                .map(|i| start + 1 + i + 1)
        };
        match rest.get(1) {
            Some(b'[') => {
                let end =
                    closed(b"]]", 0).ok_or_else(|| xml_err("a CDATA section is not closed"))?;
                if !rest.starts_with(b"![CDATA[") {
                    return Err(xml_err("unknown markup"));
                }
                let inner = (start as u32 + 9, end as u32 - 3);
                if inner.1 < inner.0 {
                    return Err(xml_err("unknown markup"));
                }
                Ok((Tok::CData { inner }, end))
            }
            Some(b'-') => {
                let end = closed(b"--", 4).ok_or_else(|| xml_err("a comment is not closed"))?;
                if !rest.starts_with(b"!--") {
                    return Err(xml_err("unknown markup"));
                }
                Ok((Tok::Other, end))
            }
            Some(b'D' | b'd') => Err(xml_err("DOCTYPE is not accepted")),
            _ => Err(xml_err("unknown markup")),
        }
    }
}

/// The `>` that ends a tag whose content starts at `from`: the first one outside quotes.
fn tag_end(b: &[u8], from: usize) -> Result<usize, DocError> {
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'>' => return Ok(i),
            q @ (b'"' | b'\'') => match find_byte(q, &b[i + 1..]) {
                Some(p) => i += p + 2,
                None => break,
            },
            _ => i += 1,
        }
    }
    Err(xml_err("the document ends inside a tag"))
}

/// The attributes of a start tag (`attrs` of [`Tok::Start`]) as quick-xml reads them:
/// `key="value"` or `key='value'`, whitespace around `=` allowed; `f` gets the key and
/// the value (without its quotes). A key without a quoted value is refused.
pub(super) fn attributes(
    b: &[u8],
    (from, to): Span,
    mut f: impl FnMut(RawAttr) -> Result<(), DocError>,
) -> Result<(), DocError> {
    let (mut i, to) = (from as usize, to as usize);
    loop {
        while i < to && ws(b[i]) {
            i += 1;
        }
        if i >= to {
            return Ok(());
        }
        // The key's first byte is part of it whatever it is (quick-xml reads `=a="1"`
        // as the key `=a`).
        let key_start = i;
        let (ascii_end, plain_start) = ascii_name(b, i, to);
        i = ascii_end.max(i + 1);
        while i < to && b[i] != b'=' && !ws(b[i]) {
            i += 1;
        }
        let key = (key_start as u32, i as u32);
        let plain_key = plain_start && i == ascii_end;
        while i < to && ws(b[i]) {
            i += 1;
        }
        if i >= to || b[i] != b'=' {
            return Err(xml_err("an attribute without a value"));
        }
        i += 1;
        while i < to && ws(b[i]) {
            i += 1;
        }
        let q = match b.get(i) {
            Some(&q @ (b'"' | b'\'')) if i < to => q,
            _ => return Err(xml_err("an attribute value without quotes")),
        };
        // The closing quote; a `&` on the way is noted (the usual value has none).
        let v = i + 1;
        let mut refs = false;
        let mut j = v;
        let close = loop {
            let Some(p) = find_either(q, b'&', &b[j..to]) else {
                return Err(xml_err("an attribute value is not closed"));
            };
            if b[j + p] == q {
                break j + p;
            }
            refs = true;
            j += p + 1;
        };
        f(RawAttr {
            key,
            value: (v as u32, close as u32),
            plain_key,
            refs,
        })?;
        i = close + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The short loop and `memchr` together find what a plain search finds, wherever the
    /// byte is: before, at and past the 16 bytes read by hand, or nowhere.
    #[test]
    fn searches_find_the_first_byte_wherever_it_is() {
        for len in 0..40 {
            for at in 0..=len {
                let mut hay = vec![b'a'; len];
                if at < len {
                    hay[at] = b'<';
                    if at + 1 < len {
                        hay[at + 1] = b'&';
                    }
                }
                let want = hay.iter().position(|&c| c == b'<');
                assert_eq!(find_byte(b'<', &hay), want, "len {len}, at {at}");
                let either = hay.iter().position(|&c| c == b'&' || c == b'"');
                assert_eq!(find_either(b'"', b'&', &hay), either, "len {len}, at {at}");
            }
        }
        assert!(same(b"period", b"period"));
        assert!(!same(b"period", b"periods"));
        assert!(!same(b"cost", b"Cost"));
    }

    /// A run of ASCII name bytes is a whole valid name only when its first byte may start
    /// one; `ascii_name` stops at the first byte that is not one.
    #[test]
    fn ascii_name_runs() {
        let run = |s: &str| ascii_name(s.as_bytes(), 0, s.len());
        assert_eq!(run("period cost"), (6, true));
        assert_eq!(run("a-b.c:d_1>"), (9, true));
        assert_eq!(run("-a"), (2, false));
        assert_eq!(run("1a"), (2, true));
        assert_eq!(run("név"), (1, true));
        assert_eq!(run(""), (0, false));
        assert_eq!(ascii_name(b"abcdef", 0, 3), (3, true));
    }
}
