//! xml read element by element with quick-xml (entities resolved, duplicate attributes,
//! DOCTYPE and stray text refused, bounded depth) and rewritten one top-level item at a
//! time ([`items`]), everything else copied byte for byte.

use std::collections::HashSet;

use quick_xml::events::{BytesStart, Event};

use super::{ItemFn, Node};
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
    let mut seen = HashSet::new();
    for a in s.attributes().with_checks(false) {
        let a = a.map_err(xml_err)?;
        let key = std::str::from_utf8(a.key.as_ref()).map_err(|_| DocError::Utf8)?;
        if !seen.insert(key.to_string()) {
            return Err(DocError::Xml(format!("duplicate attribute '{key}'")));
        }
        let v = a.unescape_value().map_err(xml_err)?.into_owned();
        el.attrs.push((key.to_string(), v));
    }
    Ok(el)
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

pub(super) fn items(body: &[u8], items: &[&str], f: &mut ItemFn<'_>) -> Result<Vec<u8>, DocError> {
    // A byte-order mark is not content (and would shift the reader's positions).
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    std::str::from_utf8(body).map_err(|_| DocError::Utf8)?;
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().check_end_names = true;
    let mut out = Vec::with_capacity(body.len() + body.len() / 8 + 16);
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
            Event::Start(s) | Event::Empty(s) => {
                let el = xml_start(s)?;
                if depth == 1 && items.contains(&el.name.as_str()) {
                    let name = el.name.clone();
                    let el = if matches!(ev, Event::Start(_)) {
                        xml_subtree(&mut reader, el, depth + 1)?
                    } else {
                        el
                    };
                    let mut s = String::new();
                    for n in f(&name, Node::Xml(el)) {
                        if let Node::Xml(mut e) = n {
                            e.name = name.clone();
                            write_xml(&e, &mut s);
                        }
                    }
                    out.extend_from_slice(s.as_bytes());
                    continue;
                }
                if matches!(ev, Event::Start(_)) {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(DocError::TooDeep(MAX_DEPTH));
                    }
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) => {
                t.unescape().map_err(xml_err)?;
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
