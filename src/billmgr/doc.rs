//! Documents: one tree ([`Element`]) for every output format, rendered by [`render`] and
//! read back by [`parse`]. The gateway's own documents (errors, sessions) are built and
//! rendered here; upstream answers are read here for decisions but never re-rendered from
//! this tree when rewritten (see [`super::edit`]).
//!
//! - `xml`: `<?xml …?><doc>…</doc>`.
//! - `json` / `sjson`: `{"doc":{…}}`; text under `"$"`, attributes as `"$name"`, a repeated
//!   element becomes an array, a single one an object. (sjson is rendered like json: the
//!   difference on real installs is not documented; see docs/protocol.md.)
//! - `bjson`: no `doc` root, plain keys; an element with only text is a string, an empty
//!   `ok` is `true`, attributes become plain keys, text next to them is `"$"`.
//! - `text`: `key=value` lines; an element with children (a list row) is one line of
//!   space-separated `key=value`; errors are `ERROR type(object): message`.

use quick_xml::events::Event;
use serde_json::{Map, Value};

/// The output format a caller asked for with `out=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Xml,
    Json,
    Sjson,
    Bjson,
    Text,
}

impl Format {
    /// `out` → format. Absent, empty, `devel` or unknown values answer XML, like BILLmanager's
    /// API default; `xjson` is treated as `json`.
    pub fn from_param(out: Option<&str>) -> Format {
        match out.unwrap_or("") {
            "json" | "xjson" => Format::Json,
            "sjson" => Format::Sjson,
            "bjson" => Format::Bjson,
            "text" => Format::Text,
            _ => Format::Xml,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Xml => "xml",
            Format::Json => "json",
            Format::Sjson => "sjson",
            Format::Bjson => "bjson",
            Format::Text => "text",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Xml => "text/xml; charset=UTF-8",
            Format::Json | Format::Sjson | Format::Bjson => "application/json; charset=UTF-8",
            Format::Text => "text/plain; charset=UTF-8",
        }
    }
}

/// A document node. The root of a document is named `doc`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: Option<String>,
    pub children: Vec<Element>,
}

impl Element {
    pub fn new(name: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            ..Default::default()
        }
    }

    /// An empty `doc` root.
    pub fn doc() -> Self {
        Element::new("doc")
    }

    /// `<name>text</name>`.
    pub fn leaf(name: impl Into<String>, text: impl Into<String>) -> Self {
        Element::new(name).text(text)
    }

    pub fn attr(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.set_attr(k, v);
        self
    }

    pub fn text(mut self, t: impl Into<String>) -> Self {
        self.text = Some(t.into());
        self
    }

    pub fn child(mut self, c: Element) -> Self {
        self.children.push(c);
        self
    }

    pub fn push(&mut self, c: Element) {
        self.children.push(c);
    }

    pub fn set_attr(&mut self, k: impl Into<String>, v: impl Into<String>) {
        let k = k.into();
        let v = v.into();
        match self.attrs.iter_mut().find(|(a, _)| *a == k) {
            Some(slot) => slot.1 = v,
            None => self.attrs.push((k, v)),
        }
    }

    pub fn get_attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn find(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn find_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.children.iter_mut().find(|c| c.name == name)
    }

    pub fn find_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Text of the first child named `name`, or of the attribute `name` when there is no
    /// such child (bjson folds attributes into children, json keeps them apart).
    pub fn child_text(&self, name: &str) -> Option<&str> {
        match self.find(name) {
            Some(c) => Some(c.text.as_deref().unwrap_or("")),
            None => self.get_attr(name),
        }
    }

    /// Set the text of the child `name`, adding the child when absent.
    pub fn set_child_text(&mut self, name: &str, text: impl Into<String>) {
        match self.find_mut(name) {
            Some(c) => c.text = Some(text.into()),
            None => self.children.push(Element::leaf(name, text)),
        }
    }

    fn is_empty_node(&self) -> bool {
        self.attrs.is_empty()
            && self.children.is_empty()
            && self.text.as_deref().unwrap_or("").is_empty()
    }
}

/// Render a document in `format`.
pub fn render(doc: &Element, format: Format) -> Vec<u8> {
    match format {
        Format::Xml => render_xml(doc),
        Format::Json | Format::Sjson => {
            let mut root = Map::new();
            root.insert(doc.name.clone(), to_json(doc));
            serde_json::to_vec(&Value::Object(root)).unwrap_or_default()
        }
        Format::Bjson => serde_json::to_vec(&to_bjson_root(doc)).unwrap_or_default(),
        Format::Text => render_text(doc),
    }
}

// ---------- XML ----------

fn render_xml(doc: &Element) -> Vec<u8> {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    write_xml(doc, &mut out);
    out.push('\n');
    out.into_bytes()
}

pub(super) fn write_xml(e: &Element, out: &mut String) {
    out.push('<');
    push_xml_name(&e.name, out);
    for (k, v) in &e.attrs {
        out.push(' ');
        push_xml_name(k, out);
        out.push_str("=\"");
        escape_xml(v, true, out);
        out.push('"');
    }
    let text = e.text.as_deref().unwrap_or("");
    if text.is_empty() && e.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    escape_xml(text, false, out);
    for c in &e.children {
        write_xml(c, out);
    }
    out.push_str("</");
    push_xml_name(&e.name, out);
    out.push('>');
}

/// Element and attribute names come from our own code or from parsed upstream documents;
/// anything that is not a safe XML name character is replaced so the output stays well-formed.
fn push_xml_name(name: &str, out: &mut String) {
    if name.is_empty() {
        out.push('_');
        return;
    }
    // The usual name needs no replacement: copied whole.
    if is_xml_name(name) {
        out.push_str(name);
        return;
    }
    for (i, c) in name.chars().enumerate() {
        out.push(if name_char(i, c) { c } else { '_' });
    }
}

fn name_char(i: usize, c: char) -> bool {
    c.is_alphanumeric() || c == '_' || (i > 0 && matches!(c, '-' | '.' | ':'))
}

/// One look-up a byte for the usual ASCII name: 1, may start a name; 2, may follow
/// (so 3 both, 0 neither or not ASCII).
pub(super) const NAME_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 128 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() || b == b'_' {
            t[c] = 3;
        } else if matches!(b, b'-' | b'.' | b':') {
            t[c] = 2;
        }
        c += 1;
    }
    t
};

/// Whether `name` is written as it is by [`push_xml_name`] (a safe element or attribute
/// name: letters, digits, `_`, and `-`, `.`, `:` after the first).
pub(super) fn is_xml_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() {
        return false;
    }
    if NAME_CLASS[b[0] as usize] & 1 != 0 && b[1..].iter().all(|&c| NAME_CLASS[c as usize] != 0) {
        return true;
    }
    !b.is_ascii() && name.chars().enumerate().all(|(i, c)| name_char(i, c))
}

pub(super) fn escape_xml(s: &str, attr: bool, out: &mut String) {
    // The usual text has nothing to escape: copied whole. (0xEF starts U+FFFE/U+FFFF, so
    // text holding it takes the careful way.)
    if s.bytes()
        .all(|b| b >= 0x20 && !matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'' | 0xEF))
    {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            '\'' if attr => out.push_str("&apos;"),
            '\t' | '\n' | '\r' if attr => {
                out.push_str("&#");
                out.push_str(&(c as u32).to_string());
                out.push(';');
            }
            '\t' | '\n' | '\r' => out.push(c),
            // Not allowed in XML 1.0 at all, even as character references.
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

// ---------- JSON ----------

fn to_json(e: &Element) -> Value {
    let mut m = Map::new();
    for (k, v) in &e.attrs {
        m.insert(format!("${k}"), Value::String(v.clone()));
    }
    if let Some(t) = &e.text {
        if !t.is_empty() || (e.attrs.is_empty() && e.children.is_empty()) {
            m.insert("$".to_string(), Value::String(t.clone()));
        }
    }
    group_children(e, &mut m, to_json);
    Value::Object(m)
}

/// Children grouped by name in order of first appearance; repeated names become arrays.
/// Linear in the number of children.
fn group_children(e: &Element, m: &mut Map<String, Value>, conv: fn(&Element) -> Value) {
    let mut groups: Vec<(&str, Vec<&Element>)> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for c in &e.children {
        match index.get(c.name.as_str()) {
            Some(&i) => groups[i].1.push(c),
            None => {
                index.insert(&c.name, groups.len());
                groups.push((&c.name, vec![c]));
            }
        }
    }
    for (name, same) in groups {
        let v = if same.len() == 1 {
            conv(same[0])
        } else {
            Value::Array(same.into_iter().map(conv).collect())
        };
        m.insert(name.to_string(), v);
    }
}

fn to_bjson(e: &Element) -> Value {
    if e.attrs.is_empty() && e.children.is_empty() {
        if e.name == "ok" && e.text.as_deref().unwrap_or("").is_empty() {
            return Value::Bool(true);
        }
        return Value::String(e.text.clone().unwrap_or_default());
    }
    let mut m = Map::new();
    for (k, v) in &e.attrs {
        m.insert(k.clone(), Value::String(v.clone()));
    }
    if let Some(t) = e.text.as_ref().filter(|t| !t.is_empty()) {
        m.insert("$".to_string(), Value::String(t.clone()));
    }
    group_children(e, &mut m, to_bjson);
    Value::Object(m)
}

fn to_bjson_root(doc: &Element) -> Value {
    let mut m = Map::new();
    for (k, v) in &doc.attrs {
        m.insert(k.clone(), Value::String(v.clone()));
    }
    group_children(doc, &mut m, to_bjson);
    Value::Object(m)
}

// ---------- text ----------

fn render_text(doc: &Element) -> Vec<u8> {
    let mut out = String::new();
    if let Some(err) = doc.find("error") {
        out.push_str("ERROR ");
        out.push_str(err.get_attr("type").unwrap_or("value"));
        out.push('(');
        escape_text(err.get_attr("object").unwrap_or(""), &mut out);
        out.push_str("): ");
        escape_text(err.child_text("msg").unwrap_or(""), &mut out);
        out.push('\n');
        return out.into_bytes();
    }
    for c in &doc.children {
        if c.children.is_empty() {
            out.push_str(&c.name);
            if !c.is_empty_node() || c.name != "ok" {
                out.push('=');
                escape_text(c.text.as_deref().unwrap_or(""), &mut out);
            }
        } else {
            for (i, f) in c.children.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&f.name);
                out.push('=');
                escape_text(f.text.as_deref().unwrap_or(""), &mut out);
            }
        }
        out.push('\n');
    }
    out.into_bytes()
}

fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

// ---------- parsing ----------

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    #[error("the document is not well-formed XML: {0}")]
    Xml(String),
    #[error("the document is not valid JSON: {0}")]
    Json(String),
    #[error("the document has no root element")]
    Empty,
    #[error("the document nests deeper than {0} levels")]
    TooDeep(usize),
    #[error("documents in the {0} format cannot be read")]
    Unsupported(&'static str),
    #[error("the document is not valid UTF-8")]
    Utf8,
    #[error("the document is not a BILLmanager document (its root is not 'doc')")]
    NotDoc,
    /// Not the document's fault: its caller stopped the rewrite (see
    /// [`crate::billmgr::edit::rewrite_list_and_rest`]).
    #[error("the rewrite was stopped")]
    Stopped,
}

/// How deep a parsed document may nest; deeper input is refused rather than recursed into.
pub const MAX_DEPTH: usize = 64;

/// Read a document in `format` (text documents cannot be read back).
pub fn parse(body: &[u8], format: Format) -> Result<Element, DocError> {
    match format {
        Format::Xml => parse_xml(body),
        Format::Json | Format::Sjson => {
            let v = super::edit::read_json(body)?;
            let Value::Object(m) = v else {
                return Err(DocError::Json("the root is not an object".into()));
            };
            let (name, inner) = m.into_iter().next().ok_or(DocError::Empty)?;
            from_json(name, &inner, 0)
        }
        Format::Bjson => {
            let v = super::edit::read_json(body)?;
            if !v.is_object() {
                return Err(DocError::Json("the root is not an object".into()));
            }
            from_bjson("doc".into(), &v, 0)
        }
        Format::Text => Err(DocError::Unsupported("text")),
    }
}

fn parse_xml(body: &[u8]) -> Result<Element, DocError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    std::str::from_utf8(body).map_err(|_| DocError::Utf8)?;
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().check_end_names = true;
    let xml_err = |e: &dyn std::fmt::Display| DocError::Xml(e.to_string());
    let mut root: Option<Element> = None;
    loop {
        let ev = reader.read_event().map_err(|e| xml_err(&e))?;
        match ev {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(DocError::Xml("content after the root element".into()));
            }
            Event::Start(ref s) => {
                let el = super::edit::xml_start(s)?;
                root = Some(super::edit::xml_subtree(&mut reader, el, 1)?);
            }
            Event::Empty(ref s) => root = Some(super::edit::xml_start(s)?),
            Event::Text(t) if !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(DocError::Xml(if root.is_some() {
                    "text after the root element".into()
                } else {
                    "text before the root element".into()
                }));
            }
            Event::CData(_) => return Err(DocError::Xml("text outside the root element".into())),
            Event::End(_) => return Err(DocError::Xml("unexpected closing tag".into())),
            Event::DocType(_) => return Err(DocError::Xml("DOCTYPE is not accepted".into())),
            Event::Eof => break,
            _ => {}
        }
    }
    root.ok_or(DocError::Empty)
}

/// Whitespace between child elements is layout, not content.
pub(super) fn trim_texts(e: &mut Element) {
    if !e.children.is_empty() {
        if e.text.as_deref().is_some_and(|t| t.trim().is_empty()) {
            e.text = None;
        }
        for c in &mut e.children {
            trim_texts(c);
        }
    }
}

/// The text of a json scalar; `None` for an object or an array.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Object(_) | Value::Array(_) => None,
        v => super::edit::scalar_text(v),
    }
}

pub(super) fn from_json(name: String, v: &Value, depth: usize) -> Result<Element, DocError> {
    from_value(name, v, depth, true)
}

pub(super) fn from_bjson(name: String, v: &Value, depth: usize) -> Result<Element, DocError> {
    from_value(name, v, depth, false)
}

/// One reader for json and bjson: text under `"$"`; `"$name"` keys are attributes in
/// json (`attrs`), plain children in bjson; an array is a repeated element.
fn from_value(name: String, v: &Value, depth: usize, attrs: bool) -> Result<Element, DocError> {
    if depth >= MAX_DEPTH {
        return Err(DocError::TooDeep(MAX_DEPTH));
    }
    let mut el = Element::new(name);
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$" {
                    el.text = scalar(v);
                } else if let Some(attr) = k.strip_prefix('$').filter(|_| attrs) {
                    el.attrs
                        .push((attr.to_string(), scalar(v).unwrap_or_default()));
                } else if let Value::Array(items) = v {
                    for item in items {
                        el.children
                            .push(from_value(k.clone(), item, depth + 1, attrs)?);
                    }
                } else {
                    el.children
                        .push(from_value(k.clone(), v, depth + 1, attrs)?);
                }
            }
        }
        Value::Array(_) => {
            return Err(DocError::Json(
                "an array where an element was expected".into(),
            ))
        }
        other => el.text = scalar(other),
    }
    Ok(el)
}

#[cfg(test)]
mod tests;
