//! xml read element by element with quick-xml (entities resolved, duplicate attributes,
//! DOCTYPE and stray text refused, bounded depth) and rewritten one top-level item at a
//! time ([`items`]), everything else copied byte for byte.

use std::collections::HashSet;

use quick_xml::events::{BytesStart, Event};

use super::xml_scan::{find_byte, same, Scanner, Tok};
use super::{ItemFn, Node};
use crate::billmgr::doc::{write_xml, DocError, Element, MAX_DEPTH};

pub(super) fn xml_err(e: impl std::fmt::Display) -> DocError {
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
        let raw = a.key.into_inner();
        let key = std::str::from_utf8(raw).map_err(|_| DocError::Utf8)?;
        if !seen.insert(raw) {
            return Err(duplicate(raw));
        }
        let v = a.unescape_value().map_err(xml_err)?.into_owned();
        el.attrs.push((key.to_string(), v));
    }
    Ok(el)
}

/// Attribute names seen so far in one start tag: compared one by one while there are
/// few (kept on the stack, no allocation for the usual handful), hashed past
/// [`Seen::FEW`] so a tag with many attributes is still checked in linear time.
#[derive(Default)]
pub(super) struct Seen<'a> {
    few: [&'a [u8]; Seen::FEW],
    count: usize,
    many: Option<HashSet<&'a [u8]>>,
}

impl<'a> Seen<'a> {
    const FEW: usize = 8;

    /// False when `key` was seen.
    pub(super) fn insert(&mut self, key: &'a [u8]) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(key);
        }
        if self.few[..self.count].iter().any(|k| same(k, key)) {
            return false;
        }
        if self.count < Self::FEW {
            self.few[self.count] = key;
            self.count += 1;
            return true;
        }
        let mut many: HashSet<&[u8]> = self.few.iter().copied().collect();
        many.insert(key);
        self.many = Some(many);
        true
    }
}

/// A duplicate attribute, named (escaped: the name is the upstream's and goes to the
/// log).
pub(super) fn duplicate(key: &[u8]) -> DocError {
    DocError::Xml(format!(
        "duplicate attribute '{}'",
        String::from_utf8_lossy(key).escape_debug()
    ))
}

/// Whether the character and entity references in `raw` (text or an attribute value as
/// written) are valid. Only text holding `&` is read: the document is UTF-8 already.
pub(super) fn check_refs(raw: &[u8]) -> Result<(), DocError> {
    if find_byte(b'&', raw).is_none() {
        return Ok(());
    }
    let s = std::str::from_utf8(raw).map_err(|_| DocError::Utf8)?;
    quick_xml::escape::unescape(s).map(drop).map_err(xml_err)
}

/// [`xml_start`]'s checks without building the element, for a tag of a document that is
/// UTF-8 already: attributes well-formed, none twice, their references valid.
fn check_start(s: &BytesStart) -> Result<(), DocError> {
    let mut seen = Seen::default();
    for a in s.attributes().with_checks(false) {
        let a = a.map_err(xml_err)?;
        let key = a.key.into_inner();
        if !seen.insert(key) {
            return Err(duplicate(key));
        }
        check_refs(&a.value)?;
    }
    Ok(())
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

/// The document with each item read into an [`Element`] and rewritten by `f`.
pub(super) fn items(body: &[u8], items: &[&str], f: &mut ItemFn<'_>) -> Result<Vec<u8>, DocError> {
    // A byte-order mark is not content (and would shift the reader's positions).
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    std::str::from_utf8(body).map_err(|_| DocError::Utf8)?;
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().check_end_names = true;
    let mut out = Vec::with_capacity(body.len() + body.len() / 8 + 16);
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

/// The document without its top-level `items`, which are delimited by their structure
/// only (see [`super::delimit_items`]); everything else is copied as it is, to be read by
/// the strict reader.
pub(super) fn delimit(body: &[u8], items: &[&str]) -> Result<Vec<u8>, DocError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut out = Vec::new();
    let mut sc = Scanner::new(body, 0);
    let (mut depth, mut copied) = (0usize, 0usize);
    let name = |(a, b): (u32, u32)| &body[a as usize..b as usize];
    while let Some((tok, lt, _)) = sc.next()? {
        match tok {
            Tok::Start { name: n, empty, .. } => {
                if depth == 1 && items.iter().any(|i| i.as_bytes() == name(n)) {
                    out.extend_from_slice(&body[copied..lt]);
                    if !empty {
                        skip_element(&mut sc)?;
                    }
                    copied = sc.pos;
                } else if !empty {
                    depth += 1;
                }
            }
            Tok::End { .. } => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| xml_err("unexpected closing tag"))?;
            }
            _ => {}
        }
    }
    out.extend_from_slice(&body[copied..]);
    Ok(out)
}

/// Read through the end tag of the element whose start tag was just read.
fn skip_element(sc: &mut Scanner) -> Result<(), DocError> {
    let mut open = 1usize;
    while let Some((tok, _, _)) = sc.next()? {
        match tok {
            Tok::Start { empty: false, .. } => open += 1,
            Tok::End { .. } => {
                open -= 1;
                if open == 0 {
                    return Ok(());
                }
            }
            _ => {}
        }
    }
    Err(xml_err("the document ends inside an element"))
}
