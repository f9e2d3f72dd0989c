//! xml list items edited in the upstream's own bytes.
//!
//! An item is read once (with quick-xml, every check of [`super::xml`] made on the way)
//! into a flat arena of elements whose names, attributes and texts are spans of the
//! document: no string, no tree of allocations, the arena's vectors reused from one item
//! to the next. The catalogue reads and edits it through [`Fields`]; an edit is kept
//! beside the element it changes, so the upstream's item stays as it came and a second
//! copy of it (one upstream plan shown as two local plans) starts again from it
//! ([`ListItem::copy`]). Written back, an element nothing changed in is copied as the
//! upstream wrote it, byte for byte; a changed one keeps its attributes' spelling and
//! quotes, the text and whitespace between its children, and its end tag.

use std::borrow::Cow;

use super::xml::{check_refs, duplicate, xml_err, Seen};
use super::xml_scan::{attributes, find_byte, same, Scanner, Span, Tok};
use super::{Fields, ListFn, ListItem};
use crate::billmgr::doc::{escape_xml, is_xml_name, DocError, MAX_DEPTH};

/// No element (the end of a sibling list).
const NONE: u32 = u32::MAX;

/// The text of an element as [`crate::billmgr::Element`] has it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Text {
    None,
    /// One text piece, escaped as the document has it.
    Raw(Span),
    /// Several pieces or CDATA: the first and last of a chain in [`XmlItem::pieces`]
    /// (appended to in constant time: an element of many pieces is read in linear time).
    Pieces(u32, u32),
}

/// A piece of an element's text: escaped text, or (`cdata`) the content of a CDATA
/// section; `next` is the element's next piece.
#[derive(Debug, Clone, Copy)]
struct Piece {
    span: Span,
    cdata: bool,
    next: u32,
}

#[derive(Debug, Clone)]
struct El {
    name: Span,
    /// `<` of the start tag.
    start: u32,
    /// Just past the start tag's `>`.
    tag_end: u32,
    /// `<` of the end tag (`tag_end` for an empty element).
    inner_end: u32,
    /// Just past the end tag.
    end: u32,
    empty: bool,
    parent: u32,
    first_child: u32,
    last_child: u32,
    next: u32,
    /// This element's attributes: `attrs[attrs.0..attrs.1]`.
    attrs: Span,
    text: Text,
    /// Edits of the current copy: new text (in [`XmlItem::edits`]), left out, something
    /// changed in it or below it.
    new_text: Option<Span>,
    dropped: bool,
    dirty: bool,
}

#[derive(Debug, Clone)]
struct Attr {
    key: Span,
    /// The value as written, escaped, without its quotes.
    value: Span,
    new: Option<Span>,
}

/// One xml item being rewritten, and the items written so far.
#[derive(Debug, Default)]
pub(super) struct XmlItem<'s> {
    src: &'s str,
    els: Vec<El>,
    attrs: Vec<Attr>,
    /// The pieces of texts that are not one span of the document.
    pieces: Vec<Piece>,
    /// Values written by edits.
    edits: String,
    /// The answer written so far: the emitted copies and what [`edit`] copies between them.
    pub(super) out: String,
}

/// An element or attribute name of a document whose bytes go out as they came must be
/// one the gateway would write as it is: anything else (`<price <cur="1">`, which quick-xml
/// reads as a name) would reach the reseller as a document that is not well-formed.
fn check_name(name: &str) -> Result<(), DocError> {
    if is_xml_name(name) {
        Ok(())
    } else {
        Err(DocError::Xml(format!(
            "'{}' is not an element or attribute name",
            name.escape_debug()
        )))
    }
}

/// The checks of a start tag (`name`, `plain` and `attrs` as [`Tok::Start`] has them):
/// names that are names, attributes well-formed and none twice, their references valid;
/// each attribute (key, value) is given to `keep` once checked. What the scanner found
/// valid on its way (an ASCII name, a value without `&`) is not read again.
fn check_tag(
    src: &str,
    (name, plain): (Span, bool),
    attrs: Span,
    mut keep: impl FnMut(Span, Span),
) -> Result<(), DocError> {
    if !plain {
        check_name(at(src, name))?;
    }
    let mut seen = Seen::default();
    attributes(src.as_bytes(), attrs, |a| {
        let k = at(src, a.key);
        if !a.plain_key {
            check_name(k)?;
        }
        if !seen.insert(k.as_bytes()) {
            return Err(duplicate(k.as_bytes()));
        }
        if a.refs {
            check_refs(at(src, a.value).as_bytes())?;
        }
        keep(a.key, a.value);
        Ok(())
    })
}

/// An end tag that does not close the element open (the names escaped: they are the
/// upstream's and go to the log).
fn mismatched(open: &str, found: &str) -> DocError {
    DocError::Xml(format!(
        "expected '</{}>', found '</{}>'",
        open.escape_debug(),
        found.escape_debug()
    ))
}

fn at(s: &str, (a, b): Span) -> &str {
    s.get(a as usize..b as usize).unwrap_or_default()
}

fn unescaped(raw: &str) -> Cow<'_, str> {
    if find_byte(b'&', raw.as_bytes()).is_none() {
        return Cow::Borrowed(raw); // the usual value: nothing to unescape
    }
    quick_xml::escape::unescape(raw).unwrap_or(Cow::Borrowed(raw))
}

impl<'s> XmlItem<'s> {
    pub(super) fn new(src: &'s str) -> Self {
        XmlItem {
            src,
            ..Default::default()
        }
    }

    /// Read the item whose start tag was just read by `sc` (its `name` and `attrs`,
    /// the whole tag at `start..tag_end`, `empty` for `<name/>`), through its end tag;
    /// `depth` is its nesting level. Checks what [`super::xml`] checks.
    pub(super) fn read(
        &mut self,
        sc: &mut Scanner,
        (name, plain, attrs, empty): (Span, bool, Span, bool),
        (start, tag_end): (u32, u32),
        depth: usize,
    ) -> Result<(), DocError> {
        self.els.clear();
        self.attrs.clear();
        self.pieces.clear();
        self.push_el((name, plain), attrs, (start, tag_end), empty, NONE)?;
        if empty {
            return Ok(());
        }
        let b = self.src.as_bytes();
        let mut cur = 0u32;
        let mut open_els = 1usize;
        loop {
            let Some((tok, a, z)) = sc.next()? else {
                return Err(xml_err("the document ends inside an element"));
            };
            let (a, z) = (a as u32, z as u32);
            match tok {
                Tok::Start {
                    name,
                    attrs,
                    empty,
                    plain,
                } => {
                    if !empty && depth + open_els > MAX_DEPTH {
                        return Err(DocError::TooDeep(MAX_DEPTH));
                    }
                    let el = self.push_el((name, plain), attrs, (a, z), empty, cur)?;
                    if !empty {
                        cur = el;
                        open_els += 1;
                    }
                }
                Tok::End { name } => {
                    let open = self.els[cur as usize].name;
                    if !same(at(self.src, name).as_bytes(), at(self.src, open).as_bytes()) {
                        return Err(mismatched(at(self.src, open), at(self.src, name)));
                    }
                    let el = &mut self.els[cur as usize];
                    el.inner_end = a;
                    el.end = z;
                    if el.first_child != NONE && self.text_is_blank(cur) {
                        self.els[cur as usize].text = Text::None;
                    }
                    open_els -= 1;
                    if open_els == 0 {
                        return Ok(());
                    }
                    cur = self.els[cur as usize].parent;
                }
                Tok::Text => {
                    check_refs(&b[a as usize..z as usize])?;
                    self.add_text(cur, (a, z), false);
                }
                Tok::CData { inner } => self.add_text(cur, inner, true),
                Tok::Other => {}
            }
        }
    }

    /// Whether the element's text is whitespace only, as [`crate::billmgr::Element`]
    /// drops it beside children.
    fn text_is_blank(&self, el: u32) -> bool {
        self.text_of(el).is_none_or(|t| t.trim().is_empty())
    }

    /// Add a text piece (`span` of the document: escaped text, or the content of a
    /// CDATA section) to element `el`.
    fn add_text(&mut self, el: u32, span: Span, cdata: bool) {
        let mut piece = |span, cdata| {
            self.pieces.push(Piece {
                span,
                cdata,
                next: NONE,
            });
            self.pieces.len() as u32 - 1
        };
        let new = match self.els[el as usize].text {
            Text::None if !cdata => Text::Raw(span),
            Text::None => {
                let p = piece(span, cdata);
                Text::Pieces(p, p)
            }
            Text::Raw(r) => {
                let first = piece(r, false);
                let last = piece(span, cdata);
                self.pieces[first as usize].next = last;
                Text::Pieces(first, last)
            }
            Text::Pieces(first, last) => {
                let p = piece(span, cdata);
                self.pieces[last as usize].next = p;
                Text::Pieces(first, p)
            }
        };
        self.els[el as usize].text = new;
    }

    /// A new element from its start tag (attributes checked as [`super::xml`] does),
    /// linked under `parent`; its index.
    fn push_el(
        &mut self,
        (name, plain): (Span, bool),
        attrs: Span,
        (start, tag_end): (u32, u32),
        empty: bool,
        parent: u32,
    ) -> Result<u32, DocError> {
        let first_attr = self.attrs.len() as u32;
        let list = &mut self.attrs;
        check_tag(self.src, (name, plain), attrs, |key, value| {
            list.push(Attr {
                key,
                value,
                new: None,
            })
        })?;
        let idx = self.els.len() as u32;
        self.els.push(El {
            name,
            start,
            tag_end,
            inner_end: tag_end,
            end: tag_end,
            empty,
            parent,
            first_child: NONE,
            last_child: NONE,
            next: NONE,
            attrs: (first_attr, self.attrs.len() as u32),
            text: Text::None,
            new_text: None,
            dropped: false,
            dirty: false,
        });
        if parent != NONE {
            let p = &mut self.els[parent as usize];
            let last = p.last_child;
            p.last_child = idx;
            if last == NONE {
                p.first_child = idx;
            } else {
                self.els[last as usize].next = idx;
            }
        }
        Ok(idx)
    }

    // ---------- reading ----------

    fn name_is(&self, el: u32, name: &str) -> bool {
        same(
            at(self.src, self.els[el as usize].name).as_bytes(),
            name.as_bytes(),
        )
    }

    fn child(&self, el: u32, name: &str) -> Option<u32> {
        let mut c = self.els[el as usize].first_child;
        while c != NONE {
            if self.name_is(c, name) {
                return Some(c);
            }
            c = self.els[c as usize].next;
        }
        None
    }

    fn attr(&self, el: u32, name: &str) -> Option<u32> {
        let (a, b) = self.els[el as usize].attrs;
        (a..b).find(|&i| {
            same(
                at(self.src, self.attrs[i as usize].key).as_bytes(),
                name.as_bytes(),
            )
        })
    }

    fn text_of(&self, el: u32) -> Option<Cow<'_, str>> {
        let e = &self.els[el as usize];
        if let Some(t) = e.new_text {
            return Some(Cow::Borrowed(at(&self.edits, t)));
        }
        match e.text {
            Text::None => None,
            Text::Raw(r) => Some(unescaped(at(self.src, r))),
            Text::Pieces(first, _) => {
                let mut text = String::new();
                let mut p = first;
                while p != NONE {
                    let piece = self.pieces[p as usize];
                    let raw = at(self.src, piece.span);
                    if piece.cdata {
                        text.push_str(raw);
                    } else {
                        text.push_str(&unescaped(raw));
                    }
                    p = piece.next;
                }
                Some(Cow::Owned(text))
            }
        }
    }

    fn field_of(&self, el: u32, name: &str) -> Option<Cow<'_, str>> {
        if let Some(c) = self.child(el, name) {
            return Some(self.text_of(c).unwrap_or_default());
        }
        let a = &self.attrs[self.attr(el, name)? as usize];
        Some(match a.new {
            Some(n) => Cow::Borrowed(at(&self.edits, n)),
            None => unescaped(at(self.src, a.value)),
        })
    }

    // ---------- editing ----------

    fn keep(&mut self, value: &str) -> Span {
        let a = self.edits.len() as u32;
        self.edits.push_str(value);
        (a, self.edits.len() as u32)
    }

    /// Mark `el` and every element above it changed.
    fn touch(&mut self, mut el: u32) {
        while el != NONE && !self.els[el as usize].dirty {
            self.els[el as usize].dirty = true;
            el = self.els[el as usize].parent;
        }
    }

    fn set_text_of(&mut self, el: u32, t: &str) {
        let span = self.keep(t);
        self.els[el as usize].new_text = Some(span);
        self.touch(el);
    }

    fn set_field_of(&mut self, el: u32, name: &str, value: &str) -> bool {
        if let Some(c) = self.child(el, name) {
            self.set_text_of(c, value);
            return true;
        }
        let Some(a) = self.attr(el, name) else {
            return false;
        };
        let span = self.keep(value);
        self.attrs[a as usize].new = Some(span);
        self.touch(el);
        true
    }

    /// Undo every edit: the item as the upstream wrote it.
    fn restart(&mut self) {
        // Every edit marks the item's root changed ([`XmlItem::touch`]).
        if !self.els.first().is_some_and(|root| root.dirty) {
            return;
        }
        for e in &mut self.els {
            e.new_text = None;
            e.dropped = false;
            e.dirty = false;
        }
        for a in &mut self.attrs {
            a.new = None;
        }
        self.edits.clear();
    }

    // ---------- writing ----------

    /// Write element `el` as edited into `out`.
    fn write(&self, el: u32, out: &mut String) {
        let src = self.src;
        let e = &self.els[el as usize];
        if e.dropped {
            return;
        }
        if !e.dirty {
            out.push_str(at(src, (e.start, e.end)));
            return;
        }
        let new_text = e.new_text.map(|t| at(&self.edits, t));
        // An empty element opens when it gets text.
        let opens = e.empty && new_text.is_some_and(|t| !t.is_empty());
        let attrs = &self.attrs[e.attrs.0 as usize..e.attrs.1 as usize];
        if attrs.iter().all(|a| a.new.is_none()) {
            if e.empty && !opens {
                out.push_str(at(src, (e.start, e.end)));
                return;
            }
            let tag = at(src, (e.start, e.tag_end));
            out.push_str(if e.empty {
                tag.trim_end_matches('>').trim_end_matches('/')
            } else {
                tag.trim_end_matches('>')
            });
        } else {
            // The tag as written, each changed value spliced in between its quotes.
            let mut cursor = e.start;
            for a in attrs {
                if let Some(n) = a.new {
                    out.push_str(at(src, (cursor, a.value.0)));
                    escape_xml(at(&self.edits, n), true, out);
                    cursor = a.value.1;
                }
            }
            if e.empty && !opens {
                out.push_str(at(src, (cursor, e.end)));
                return;
            }
            let tag = at(src, (cursor, e.tag_end));
            out.push_str(if e.empty {
                tag.trim_end_matches('>').trim_end_matches('/')
            } else {
                tag.trim_end_matches('>')
            });
        }
        out.push('>');
        match new_text {
            Some(t) => {
                escape_xml(t, false, out);
                let mut c = e.first_child;
                while c != NONE {
                    self.write(c, out);
                    c = self.els[c as usize].next;
                }
            }
            None => {
                // The text and whitespace between the children stay as they came; a
                // run of unchanged children goes out as one span.
                let mut cursor = e.tag_end;
                let mut c = e.first_child;
                while c != NONE {
                    let child = &self.els[c as usize];
                    if child.dirty || child.dropped {
                        out.push_str(at(src, (cursor, child.start)));
                        self.write(c, out);
                        cursor = child.end;
                    }
                    c = child.next;
                }
                out.push_str(at(src, (cursor, e.inner_end)));
            }
        }
        if e.empty {
            out.push_str("</");
            out.push_str(at(src, e.name));
            out.push('>');
        } else {
            out.push_str(at(src, (e.inner_end, e.end)));
        }
    }
}

impl ListItem for XmlItem<'_> {
    fn upstream(&mut self) -> &dyn Fields {
        self.restart();
        self
    }
    fn copy(&mut self, _last: bool) -> &mut dyn Fields {
        self.restart();
        self
    }

    fn emit(&mut self) {
        if !self.els.is_empty() {
            let mut out = std::mem::take(&mut self.out);
            self.write(0, &mut out);
            self.out = out;
        }
    }
}

/// One element of an [`XmlItem`], to read and edit.
struct Cursor<'a, 's> {
    item: &'a mut XmlItem<'s>,
    el: u32,
}

/// [`Fields`] over element `el` of `item`, for both the item (its root) and a cursor.
fn each_child(item: &mut XmlItem, el: u32, name: &str, f: &mut dyn FnMut(&mut dyn Fields) -> bool) {
    let mut c = item.els[el as usize].first_child;
    while c != NONE {
        let next = item.els[c as usize].next;
        if !item.els[c as usize].dropped && item.name_is(c, name) {
            let keep = f(&mut Cursor {
                item: &mut *item,
                el: c,
            });
            if !keep {
                item.els[c as usize].dropped = true;
                item.touch(el);
            }
        }
        c = next;
    }
}

impl Fields for XmlItem<'_> {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self.field_of(0, name)
    }
    fn set_field(&mut self, name: &str, value: &str) -> bool {
        self.set_field_of(0, name, value)
    }
    fn text(&self) -> Option<Cow<'_, str>> {
        self.text_of(0)
    }
    fn set_text(&mut self, t: &str) {
        self.set_text_of(0, t)
    }
    fn retain_children(&mut self, name: &str, keep: &mut dyn FnMut(&mut dyn Fields) -> bool) {
        each_child(self, 0, name, keep)
    }
}

impl Fields for Cursor<'_, '_> {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self.item.field_of(self.el, name)
    }
    fn set_field(&mut self, name: &str, value: &str) -> bool {
        self.item.set_field_of(self.el, name, value)
    }
    fn text(&self) -> Option<Cow<'_, str>> {
        self.item.text_of(self.el)
    }
    fn set_text(&mut self, t: &str) {
        self.item.set_text_of(self.el, t)
    }
    fn retain_children(&mut self, name: &str, keep: &mut dyn FnMut(&mut dyn Fields) -> bool) {
        each_child(self.item, self.el, name, keep)
    }
}

/// What is left of a document without its list items: where it goes, and which items
/// are the list's (the others, an `error`, stay in it as the upstream wrote them).
pub(super) type Rest<'a> = Option<(&'a mut Vec<u8>, &'a [&'a str])>;

/// The document with its top-level `items` (children of the root `doc`) edited by `f` in
/// the upstream's bytes ([`super::rewrite_list`]), everything else copied as it came;
/// the whole document checked as [`super::xml::items`] checks it. `rest` also gets the
/// upstream's document without its list items, from the same pass.
pub(super) fn edit(
    body: &[u8],
    items: &[&str],
    f: &mut ListFn<'_>,
    mut rest: Rest<'_>,
    stop: Option<&std::cell::Cell<bool>>,
) -> Result<Vec<u8>, DocError> {
    // A byte-order mark is not content.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let src = std::str::from_utf8(body).map_err(|_| DocError::Utf8)?;
    if u32::try_from(src.len()).is_err() {
        return Err(xml_err("the document is too large"));
    }
    let mut item = XmlItem::new(src);
    // The whole answer is written into the item's output, the copies of the items as
    // they are emitted and everything between them as it came.
    item.out = String::with_capacity(body.len() + body.len() / 8 + 16);
    let mut sc = Scanner::new(body, 0);
    // Names of the elements open outside the items.
    let mut open: Vec<Span> = Vec::new();
    let mut root_seen = false;
    while let Some((tok, a, z)) = sc.next()? {
        match tok {
            Tok::Start {
                name,
                attrs,
                empty,
                plain,
            } => {
                let depth = open.len();
                if depth == 0 {
                    if root_seen {
                        return Err(xml_err("content after the root element"));
                    }
                    root_seen = true;
                    if at(src, name) != "doc" {
                        return Err(DocError::NotDoc);
                    }
                }
                let listed = items
                    .iter()
                    .find(|i| same(i.as_bytes(), at(src, name).as_bytes()));
                match listed {
                    Some(listed) if depth == 1 => {
                        // An item is a child of the root: nesting level 2.
                        item.read(
                            &mut sc,
                            (name, plain, attrs, empty),
                            (a as u32, z as u32),
                            2,
                        )?;
                        if let Some((rest, list)) = rest.as_mut() {
                            if !list.contains(listed) {
                                rest.extend_from_slice(&body[a..sc.pos]);
                            }
                        }
                        f(listed, &mut item);
                        if stop.is_some_and(std::cell::Cell::get) {
                            return Err(DocError::Stopped);
                        }
                        continue;
                    }
                    _ => {
                        // Checked as an item's tag is.
                        check_tag(src, (name, plain), attrs, |_, _| {})?;
                        if !empty {
                            if depth + 1 > MAX_DEPTH {
                                return Err(DocError::TooDeep(MAX_DEPTH));
                            }
                            open.push(name);
                        }
                    }
                }
            }
            Tok::End { name } => {
                let Some(expected) = open.pop() else {
                    return Err(xml_err("unexpected closing tag"));
                };
                if !same(at(src, expected).as_bytes(), at(src, name).as_bytes()) {
                    return Err(mismatched(at(src, expected), at(src, name)));
                }
            }
            Tok::Text => {
                let t = &body[a..z];
                check_refs(t)?;
                if open.is_empty() && !t.iter().all(u8::is_ascii_whitespace) {
                    return Err(xml_err("text outside the root element"));
                }
            }
            Tok::CData { .. } if open.is_empty() => {
                return Err(xml_err("text outside the root element"))
            }
            Tok::CData { .. } | Tok::Other => {}
        }
        item.out.push_str(at(src, (a as u32, z as u32)));
        if let Some((rest, _)) = rest.as_mut() {
            rest.extend_from_slice(&body[a..z]);
        }
    }
    if !root_seen {
        return Err(DocError::Empty);
    }
    if !open.is_empty() {
        return Err(xml_err("the document ends inside an element"));
    }
    Ok(std::mem::take(&mut item.out).into_bytes())
}
