//! xml read element by element with quick-xml (entities resolved, duplicate attributes,
//! DOCTYPE and stray text refused, bounded depth) and rewritten one top-level item at a
//! time ([`items`]), everything else copied byte for byte.

use std::collections::HashSet;

use quick_xml::events::{BytesStart, Event};

use super::xml_item::XmlItem;
use super::{ItemFn, ListFn, Node};
use crate::billmgr::doc::{write_xml, DocError, Element, MAX_DEPTH};

fn xml_err(e: impl std::fmt::Display) -> DocError {
    DocError::Xml(e.to_string())
}

/// An element from its start tag: name and attributes (entities resolved, duplicates
/// refused, in time linear in the number of attributes).
pub(crate) fn xml_start(s: &BytesStart) -> Result<Element, DocError> {
    let name = std::str::from_utf8(s.name().as_ref())
        .map_err(|_| DocError::Utf8)?
        .to_string();
    let mut el = Element::new(name);
    let mut seen = Seen::default();
    for a in s.attributes().with_checks(false) {
        let a = a.map_err(xml_err)?;
        let key = std::str::from_utf8(a.key.as_ref()).map_err(|_| DocError::Utf8)?;
        if !seen.insert(key.as_bytes(), el.attrs.iter().map(|(k, _)| k.as_bytes())) {
            return Err(DocError::Xml(format!("duplicate attribute '{key}'")));
        }
        let v = a.unescape_value().map_err(xml_err)?.into_owned();
        el.attrs.push((key.to_string(), v));
    }
    Ok(el)
}

/// Attribute names seen so far in one start tag: compared one by one while there are
/// few (no allocation for the usual handful), hashed past [`Seen::FEW`] so a tag with
/// many attributes is still checked in linear time.
#[derive(Default)]
pub(super) struct Seen {
    count: usize,
    many: Option<HashSet<Vec<u8>>>,
}

impl Seen {
    pub(super) const FEW: usize = 8;

    /// False when `key` was seen; `before` are the names seen so far, in order (only
    /// read while there are few, and once when they stop being few).
    pub(super) fn insert<'a>(
        &mut self,
        key: &[u8],
        before: impl Iterator<Item = &'a [u8]>,
    ) -> bool {
        self.count += 1;
        if self.count <= Self::FEW {
            let mut before = before;
            return !before.any(|k| k == key);
        }
        let many = self
            .many
            .get_or_insert_with(|| before.map(<[u8]>::to_vec).collect());
        many.insert(key.to_vec())
    }
}

/// A duplicate attribute, named.
pub(super) fn duplicate(key: &[u8]) -> DocError {
    DocError::Xml(format!(
        "duplicate attribute '{}'",
        String::from_utf8_lossy(key)
    ))
}

/// Whether the character and entity references in `raw` (text or an attribute value as
/// written) are valid. Only text holding `&` is read: the document is UTF-8 already.
pub(super) fn check_refs(raw: &[u8]) -> Result<(), DocError> {
    if memchr::memchr(b'&', raw).is_none() {
        return Ok(());
    }
    let s = std::str::from_utf8(raw).map_err(|_| DocError::Utf8)?;
    quick_xml::escape::unescape(s).map(drop).map_err(xml_err)
}

/// [`xml_start`]'s checks without building the element, for a tag of a document that is
/// UTF-8 already: attributes well-formed, none twice, their references valid.
fn check_start(s: &BytesStart) -> Result<(), DocError> {
    let mut seen = Seen::default();
    let mut few: [&[u8]; Seen::FEW] = [&[]; Seen::FEW];
    for a in s.attributes().with_checks(false) {
        let a = a.map_err(xml_err)?;
        let key = a.key.into_inner();
        let n = seen.count.min(Seen::FEW);
        if !seen.insert(key, few[..n].iter().copied()) {
            return Err(duplicate(key));
        }
        if seen.count <= Seen::FEW {
            few[seen.count - 1] = key;
        }
        check_refs(&a.value)?;
    }
    Ok(())
}

/// [`xml_subtree`]'s checks without building the subtree: the rest of an element whose
/// start tag was just read, through its end tag.
fn check_subtree(reader: &mut quick_xml::Reader<&[u8]>, depth: usize) -> Result<(), DocError> {
    let mut open = 1usize;
    loop {
        match reader.read_event().map_err(xml_err)? {
            Event::Start(s) => {
                if depth + open > MAX_DEPTH {
                    return Err(DocError::TooDeep(MAX_DEPTH));
                }
                check_start(&s)?;
                open += 1;
            }
            Event::Empty(s) => check_start(&s)?,
            Event::End(_) => {
                open -= 1;
                if open == 0 {
                    return Ok(());
                }
            }
            Event::Text(t) => check_refs(&t)?,
            Event::DocType(_) => return Err(xml_err("DOCTYPE is not accepted")),
            Event::Eof => return Err(xml_err("the document ends inside an element")),
            _ => {}
        }
    }
}

/// Read the rest of an element whose start tag was just read, through its end tag.
/// `depth` is the element's own nesting level.
pub(crate) fn xml_subtree(
    reader: &mut quick_xml::Reader<&[u8]>,
    top: Element,
    depth: usize,
) -> Result<Element, DocError> {
    let mut stack = vec![top];
    loop {
        match reader.read_event().map_err(xml_err)? {
            Event::Start(s) => {
                if depth + stack.len() > MAX_DEPTH {
                    return Err(DocError::TooDeep(MAX_DEPTH));
                }
                stack.push(xml_start(&s)?);
            }
            Event::Empty(s) => {
                let el = xml_start(&s)?;
                if let Some(top) = stack.last_mut() {
                    top.children.push(el);
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| xml_err("unexpected closing tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => {
                        let mut el = el;
                        crate::billmgr::doc::trim_texts(&mut el);
                        return Ok(el);
                    }
                }
            }
            Event::Text(t) => {
                let t = t.unescape().map_err(xml_err)?;
                if let Some(top) = stack.last_mut() {
                    top.text.get_or_insert_with(String::new).push_str(&t);
                }
            }
            Event::CData(c) => {
                let t = std::str::from_utf8(&c)
                    .map_err(|_| DocError::Utf8)?
                    .to_string();
                if let Some(top) = stack.last_mut() {
                    top.text.get_or_insert_with(String::new).push_str(&t);
                }
            }
            Event::DocType(_) => return Err(xml_err("DOCTYPE is not accepted")),
            Event::Eof => return Err(xml_err("the document ends inside an element")),
            _ => {}
        }
    }
}

/// What [`items`] does with each item.
pub(super) enum Mode<'a, 'f> {
    /// Checked and left out.
    Check,
    /// Read into an [`Element`], rewritten by the function as a [`Node`].
    Nodes(&'a mut ItemFn<'f>),
    /// Edited in the upstream's bytes ([`XmlItem`]).
    Edit(&'a mut ListFn<'f>),
}

/// The document with each item rewritten (or checked and left out) as `mode` says.
pub(super) fn items(body: &[u8], items: &[&str], mode: Mode) -> Result<Vec<u8>, DocError> {
    // A byte-order mark is not content (and would shift the reader's positions).
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let src = std::str::from_utf8(body).map_err(|_| DocError::Utf8)?;
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().check_end_names = true;
    let mut out = match mode {
        Mode::Check => Vec::new(),
        _ => Vec::with_capacity(body.len() + body.len() / 8 + 16),
    };
    let (mut f, mut edit) = match mode {
        Mode::Check => (None, None),
        Mode::Nodes(f) => (Some(f), None),
        Mode::Edit(e) => (None, Some(e)),
    };
    // One arena for every item edited in place.
    let mut raw = XmlItem::new(src);
    // One buffer for every rewritten item.
    let mut item = String::new();
    let mut depth = 0usize;
    let mut root_seen = false;
    loop {
        let start = reader.buffer_position() as usize;
        let ev = reader.read_event().map_err(xml_err)?;
        let end = reader.buffer_position() as usize;
        match &ev {
            Event::Start(s) | Event::Empty(s) if depth == 0 => {
                if root_seen {
                    return Err(xml_err("content after the root element"));
                }
                root_seen = true;
                let root = xml_start(s)?;
                if root.name != "doc" {
                    return Err(DocError::NotDoc);
                }
                if matches!(ev, Event::Start(_)) {
                    depth = 1;
                }
            }
            Event::Start(s) | Event::Empty(s)
                if depth == 1 && items.iter().any(|i| i.as_bytes() == s.name().as_ref()) =>
            {
                if let Some(edit) = edit.as_deref_mut() {
                    let open = matches!(ev, Event::Start(_));
                    let name = items
                        .iter()
                        .find(|i| i.as_bytes() == s.name().as_ref())
                        .copied()
                        .unwrap_or_default();
                    let tag = (start as u32, end as u32);
                    raw.read(&mut reader, s, tag, open, depth + 1)?;
                    edit(name, &mut raw);
                    out.extend_from_slice(raw.out.as_bytes());
                    raw.out.clear();
                    continue;
                }
                let Some(f) = f.as_deref_mut() else {
                    // Checked only: the item is left out.
                    check_start(s)?;
                    if matches!(ev, Event::Start(_)) {
                        check_subtree(&mut reader, depth + 1)?;
                    }
                    continue;
                };
                let el = xml_start(s)?;
                let name = el.name.clone();
                let el = if matches!(ev, Event::Start(_)) {
                    xml_subtree(&mut reader, el, depth + 1)?
                } else {
                    el
                };
                item.clear();
                for n in f(&name, Node::Xml(el)) {
                    if let Node::Xml(mut e) = n {
                        if e.name != name {
                            e.name = name.clone();
                        }
                        write_xml(&e, &mut item);
                    }
                }
                out.extend_from_slice(item.as_bytes());
                continue;
            }
            Event::Start(s) | Event::Empty(s) => {
                check_start(s)?;
                if matches!(ev, Event::Start(_)) {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(DocError::TooDeep(MAX_DEPTH));
                    }
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) => {
                check_refs(t)?;
                if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) {
                    return Err(xml_err("text outside the root element"));
                }
            }
            Event::CData(_) if depth == 0 => return Err(xml_err("text outside the root element")),
            Event::DocType(_) => return Err(xml_err("DOCTYPE is not accepted")),
            Event::Eof => break,
            _ => {}
        }
        out.extend_from_slice(&body[start..end]);
    }
    if !root_seen {
        return Err(DocError::Empty);
    }
    if depth != 0 {
        return Err(xml_err("the document ends inside an element"));
    }
    Ok(out)
}

// ---------- items delimited, not read ----------

/// What [`next_markup`] found.
#[derive(Debug, PartialEq)]
enum Markup {
    /// A start tag (`empty`: `<a/>`), with its name.
    Start {
        name: (usize, usize),
        empty: bool,
    },
    End,
    /// A comment, CDATA section, processing instruction or declaration.
    Other,
}

/// The next markup of `body` at or after `from`: what it is, where it starts (`<`) and
/// just past its end. Only the structure is read (quotes in tags, comments, CDATA,
/// processing instructions), nothing is checked; `None` past the last.
fn next_markup(body: &[u8], from: usize) -> Result<Option<(Markup, usize, usize)>, DocError> {
    let Some(lt) = memchr::memchr(b'<', body.get(from..).unwrap_or_default()).map(|p| from + p)
    else {
        return Ok(None);
    };
    let rest = &body[lt..];
    let past = |open: usize, close: &[u8]| {
        let after = &rest[open.min(rest.len())..];
        match close {
            [one] => memchr::memchr(*one, after),
            _ => memchr::memmem::find(after, close),
        }
        .map(|p| lt + open + p + close.len())
        .ok_or_else(|| xml_err("the document ends inside markup"))
    };
    let (markup, end) = if rest.starts_with(b"<!--") {
        (Markup::Other, past(4, b"-->")?)
    } else if rest.starts_with(b"<![CDATA[") {
        (Markup::Other, past(9, b"]]>")?)
    } else if rest.starts_with(b"<?") {
        (Markup::Other, past(2, b"?>")?)
    } else if rest.starts_with(b"<!") {
        (Markup::Other, past(2, b">")?)
    } else if rest.starts_with(b"</") {
        (Markup::End, past(2, b">")?)
    } else {
        // A start tag: its `>` is the first one outside quoted attribute values.
        let mut i = lt + 1;
        let end = loop {
            let Some(p) = memchr::memchr3(b'>', b'"', b'\'', &body[i..]) else {
                return Err(xml_err("the document ends inside a tag"));
            };
            let at = i + p;
            if body[at] == b'>' {
                break at + 1;
            }
            let Some(q) = memchr::memchr(body[at], &body[at + 1..]) else {
                return Err(xml_err("the document ends inside an attribute"));
            };
            i = at + 1 + q + 1;
        };
        let name_end = body[lt + 1..end]
            .iter()
            .position(|b| b.is_ascii_whitespace() || matches!(b, b'/' | b'>'))
            .map_or(end, |p| lt + 1 + p);
        let empty = body[end - 2] == b'/';
        (
            Markup::Start {
                name: (lt + 1, name_end),
                empty,
            },
            end,
        )
    };
    Ok(Some((markup, lt, end)))
}

/// The document without its top-level `items`, which are delimited by their structure
/// only (see [`super::delimit_items`]); everything else is copied as it is, to be read by
/// the strict reader.
pub(super) fn delimit(body: &[u8], items: &[&str]) -> Result<Vec<u8>, DocError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut out = Vec::new();
    let (mut depth, mut at, mut copied) = (0usize, 0usize, 0usize);
    while let Some((markup, lt, end)) = next_markup(body, at)? {
        at = end;
        match markup {
            Markup::Start { name, empty } => {
                let name = &body[name.0..name.1];
                if depth == 1 && items.iter().any(|i| i.as_bytes() == name) {
                    out.extend_from_slice(&body[copied..lt]);
                    if !empty {
                        at = skip_element(body, end)?;
                    }
                    copied = at;
                } else if !empty {
                    depth += 1;
                }
            }
            Markup::End => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| xml_err("unexpected closing tag"))?;
            }
            Markup::Other => {}
        }
    }
    out.extend_from_slice(&body[copied..]);
    Ok(out)
}

/// Just past the end tag of the element whose start tag ends at `from`.
fn skip_element(body: &[u8], from: usize) -> Result<usize, DocError> {
    let (mut open, mut at) = (1usize, from);
    while let Some((markup, _, end)) = next_markup(body, at)? {
        at = end;
        match markup {
            Markup::Start { empty: false, .. } => open += 1,
            Markup::End => {
                open -= 1;
                if open == 0 {
                    return Ok(end);
                }
            }
            _ => {}
        }
    }
    Err(xml_err("the document ends inside an element"))
}
