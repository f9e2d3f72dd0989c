//! A small xml tokenizer over the document's bytes, for the list rewrite: markup and text
//! as byte ranges, read with the rules of the quick-xml reader the rest of the gateway
//! reads xml with (end names checked, attributes `key="value"` or `key='value'`, a `>`
//! inside quotes does not end a tag, comments, CDATA, processing instructions and
//! declarations as quick-xml delimits them), so that a list is accepted and refused as
//! the element reader accepts and refuses it (a test compares the two on mutated
//! documents). Nothing is copied; the caller checks references and duplicate attributes.

use super::xml::xml_err;
use crate::billmgr::doc::DocError;

/// A byte range of the document.
pub(super) type Span = (u32, u32);

/// One token; each spans `start..end` of the document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Tok {
    /// `<name …>` or (`empty`) `<name …/>`; `attrs` is what follows the name.
    Start {
        name: Span,
        attrs: Span,
        empty: bool,
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
            let end = memchr::memchr(b'<', &b[start..]).map_or(b.len(), |p| start + p);
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
                let mut i = start + 1;
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
            q @ (b'"' | b'\'') => match memchr::memchr(q, &b[i + 1..]) {
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
    mut f: impl FnMut(Span, Span) -> Result<(), DocError>,
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
        i += 1;
        while i < to && b[i] != b'=' && !ws(b[i]) {
            i += 1;
        }
        let key = (key_start as u32, i as u32);
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
        let v = i + 1;
        let Some(p) = memchr::memchr(q, &b[v..to]) else {
            return Err(xml_err("an attribute value is not closed"));
        };
        f(key, (v as u32, (v + p) as u32))?;
        i = v + p + 1;
    }
}
