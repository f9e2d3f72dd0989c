//! Documents edited in their own format.
//!
//! A client parses exactly what the upstream sent, so a document the gateway rewrites must
//! differ from the upstream's only in the values it rewrites: arrays stay arrays and
//! objects objects whatever their length, keys and elements keep their order, unknown
//! fields, attributes and value types survive. So values are edited in place in each
//! format's own parsed form — [`Element`] for xml, a `serde_json::Value` for json and
//! sjson (`"$"` text, `"$name"` attributes) and for bjson (plain keys) — through one
//! interface, [`Node`], instead of converting every format through one tree.
//!
//! Large lists (`pricelist.export`, `certificate`) are rewritten one top-level item at a
//! time ([`rewrite_items`]): everything outside the items is copied byte for byte, each
//! item is parsed, rewritten and written back on its own, so a rewrite holds the input,
//! the output and one item, never a tree of the whole document. Everything is checked on
//! the way (well-formed, UTF-8, root `doc`, no DTD, no duplicate keys or attributes,
//! bounded depth), in time linear in the document's size.

use std::collections::HashSet;

use quick_xml::events::{BytesStart, Event};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::doc::{write_xml, DocError, Element, Format, MAX_DEPTH};

/// One element of a document, in its format's own parsed form.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// An xml element.
    Xml(Element),
    /// A json/sjson element: an object with `"$"` text and `"$name"` attributes, or a
    /// scalar (an element with text only).
    Json(Value),
    /// A bjson element: plain keys for attributes and children, or a scalar.
    Bjson(Value),
}

/// Text of a json scalar as BILLmanager means it (an object's `"$"`, an array's first).
pub(super) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(true) => Some(String::new()),
        Value::Bool(false) => Some("off".into()),
        Value::Null => Some(String::new()),
        Value::Object(m) => Some(m.get("$").and_then(scalar_text).unwrap_or_default()),
        Value::Array(a) => a.first().and_then(scalar_text),
    }
}

/// Replace a json value's text, keeping its type where the new text allows it.
fn set_scalar(slot: &mut Value, text: &str) {
    match slot {
        Value::Object(m) => match m.get_mut("$") {
            Some(t) => set_scalar(t, text),
            None => {
                m.insert("$".into(), Value::String(text.into()));
            }
        },
        Value::Array(a) => match a.first_mut() {
            Some(first) => set_scalar(first, text),
            None => a.push(Value::String(text.into())),
        },
        Value::Number(_) => {
            *slot = match serde_json::from_str::<serde_json::Number>(text) {
                Ok(n) if !text.is_empty() => Value::Number(n),
                _ => Value::String(text.into()),
            }
        }
        other => *other = Value::String(text.into()),
    }
}

/// Rename a key in place, keeping its position.
fn rename_key(m: &mut Map<String, Value>, from: &str, to: &str) {
    if from == to || !m.contains_key(from) {
        return;
    }
    let old = std::mem::take(m);
    for (k, v) in old {
        if k == from {
            m.insert(to.to_string(), v);
        } else if k != to {
            m.insert(k, v);
        }
    }
}

impl Node {
    fn is_bjson(&self) -> bool {
        matches!(self, Node::Bjson(_))
    }

    fn wrap(&self, v: Value) -> Node {
        if self.is_bjson() {
            Node::Bjson(v)
        } else {
            Node::Json(v)
        }
    }

    /// The json value of this node (for xml, nothing).
    pub fn into_value(self) -> Value {
        match self {
            Node::Json(v) | Node::Bjson(v) => v,
            Node::Xml(_) => Value::Null,
        }
    }

    /// This node as an [`Element`] named `name` (a read-only view for decisions).
    pub fn to_element(&self, name: &str) -> Element {
        match self {
            Node::Xml(e) => e.clone(),
            Node::Json(v) => super::doc::from_json(name.into(), v, 0).unwrap_or_default(),
            Node::Bjson(v) => super::doc::from_bjson(name.into(), v, 0).unwrap_or_default(),
        }
    }

    /// The text of field `name`: a child's text, else the attribute `name`.
    pub fn field(&self, name: &str) -> Option<String> {
        match self {
            Node::Xml(e) => e.child_text(name).map(str::to_string),
            Node::Json(Value::Object(m)) => m
                .get(name)
                .or_else(|| m.get(&format!("${name}")))
                .and_then(scalar_text),
            Node::Bjson(Value::Object(m)) => m.get(name).and_then(scalar_text),
            _ => None,
        }
    }

    /// Set field `name` where it is (child text or attribute). False when absent.
    pub fn set_field(&mut self, name: &str, value: &str) -> bool {
        match self {
            Node::Xml(e) => {
                if let Some(c) = e.find_mut(name) {
                    c.text = Some(value.to_string());
                    return true;
                }
                if e.get_attr(name).is_some() {
                    e.set_attr(name, value);
                    return true;
                }
                false
            }
            Node::Json(Value::Object(m)) => {
                let key = if m.contains_key(name) {
                    name.to_string()
                } else {
                    format!("${name}")
                };
                match m.get_mut(&key) {
                    Some(slot) => {
                        set_scalar(slot, value);
                        true
                    }
                    None => false,
                }
            }
            Node::Bjson(Value::Object(m)) => match m.get_mut(name) {
                Some(slot) => {
                    set_scalar(slot, value);
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// Remove field `name` (children and attribute).
    pub fn remove_field(&mut self, name: &str) {
        match self {
            Node::Xml(e) => {
                e.children.retain(|c| c.name != name);
                e.attrs.retain(|(k, _)| k != name);
            }
            Node::Json(Value::Object(m)) => {
                m.shift_remove(name);
                m.shift_remove(&format!("${name}"));
            }
            Node::Bjson(Value::Object(m)) => {
                m.shift_remove(name);
            }
            _ => {}
        }
    }

    /// Names of the node's fields (children and attributes), in order, each once.
    pub fn field_names(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        let names: Vec<String> = match self {
            Node::Xml(e) => e
                .children
                .iter()
                .map(|c| c.name.clone())
                .chain(e.attrs.iter().map(|(k, _)| k.clone()))
                .collect(),
            Node::Json(Value::Object(m)) => m
                .keys()
                .filter(|k| k.as_str() != "$")
                .map(|k| k.strip_prefix('$').unwrap_or(k).to_string())
                .collect(),
            Node::Bjson(Value::Object(m)) => m.keys().filter(|k| *k != "$").cloned().collect(),
            _ => Vec::new(),
        };
        names
            .into_iter()
            .filter(|n| seen.insert(n.clone()))
            .collect()
    }

    /// Rename field `from` to `to` where it is, keeping its position.
    pub fn rename_field(&mut self, from: &str, to: &str) {
        match self {
            Node::Xml(e) => {
                for c in e.children.iter_mut().filter(|c| c.name == from) {
                    c.name = to.to_string();
                }
                for (k, _) in e.attrs.iter_mut().filter(|(k, _)| k == from) {
                    *k = to.to_string();
                }
            }
            Node::Json(Value::Object(m)) => {
                rename_key(m, from, to);
                rename_key(m, &format!("${from}"), &format!("${to}"));
            }
            Node::Bjson(Value::Object(m)) => rename_key(m, from, to),
            _ => {}
        }
    }

    /// The node's own text (not its children's).
    pub fn text(&self) -> Option<String> {
        match self {
            Node::Xml(e) => e.text.clone(),
            Node::Json(Value::Object(m)) | Node::Bjson(Value::Object(m)) => {
                m.get("$").and_then(scalar_text)
            }
            Node::Json(Value::Array(_)) | Node::Bjson(Value::Array(_)) => None,
            Node::Json(v) | Node::Bjson(v) => scalar_text(v),
        }
    }

    /// Replace the node's own text (there must be one; see [`Node::text`]).
    pub fn set_text(&mut self, t: &str) {
        match self {
            Node::Xml(e) => e.text = Some(t.to_string()),
            Node::Json(Value::Object(m)) | Node::Bjson(Value::Object(m)) => {
                if let Some(slot) = m.get_mut("$") {
                    set_scalar(slot, t);
                }
            }
            Node::Json(v) | Node::Bjson(v) => set_scalar(v, t),
        }
    }

    /// Call `f` on every child named `name`, in order.
    pub fn for_children(&mut self, name: &str, f: &mut dyn FnMut(&mut Node)) {
        match self {
            Node::Xml(e) => {
                for c in e.children.iter_mut().filter(|c| c.name == name) {
                    let mut n = Node::Xml(std::mem::take(c));
                    f(&mut n);
                    if let Node::Xml(back) = n {
                        *c = back;
                    }
                }
            }
            Node::Json(_) | Node::Bjson(_) => {
                let bjson = self.is_bjson();
                let (Node::Json(Value::Object(m)) | Node::Bjson(Value::Object(m))) = self else {
                    return;
                };
                let Some(slot) = m.get_mut(name) else { return };
                let mut visit = |v: &mut Value| {
                    let taken = std::mem::take(v);
                    let mut n = if bjson {
                        Node::Bjson(taken)
                    } else {
                        Node::Json(taken)
                    };
                    f(&mut n);
                    *v = n.into_value();
                };
                match slot {
                    Value::Array(items) => items.iter_mut().for_each(&mut visit),
                    one => visit(one),
                }
            }
        }
    }

    /// Replace every child named `name` by what `f` makes of it (none, one or several),
    /// in place. In json a list that was an array stays an array (even of 0 or 1); a single
    /// object stays an object when one comes back, goes when none does, and becomes an
    /// array only when several do.
    pub fn flat_map_children(&mut self, name: &str, f: &mut dyn FnMut(Node) -> Vec<Node>) {
        match self {
            Node::Xml(e) => {
                let old = std::mem::take(&mut e.children);
                for c in old {
                    if c.name != name {
                        e.children.push(c);
                        continue;
                    }
                    for n in f(Node::Xml(c)) {
                        if let Node::Xml(mut el) = n {
                            el.name = name.to_string();
                            e.children.push(el);
                        }
                    }
                }
            }
            Node::Json(_) | Node::Bjson(_) => {
                let proto = self.wrap(Value::Null);
                let (Node::Json(Value::Object(m)) | Node::Bjson(Value::Object(m))) = self else {
                    return;
                };
                let Some(slot) = m.get_mut(name) else { return };
                match std::mem::take(slot) {
                    Value::Array(items) => {
                        let mut out = Vec::with_capacity(items.len());
                        for it in items {
                            out.extend(f(proto.wrap(it)).into_iter().map(Node::into_value));
                        }
                        *slot = Value::Array(out);
                    }
                    one => {
                        let mut out: Vec<Value> = f(proto.wrap(one))
                            .into_iter()
                            .map(Node::into_value)
                            .collect();
                        match out.len() {
                            0 => {
                                m.shift_remove(name);
                            }
                            1 => *slot = out.pop().unwrap_or_default(),
                            _ => *slot = Value::Array(out),
                        }
                    }
                }
            }
        }
    }
}

// ---------- checked json ----------

/// A json value read with the checks the gateway needs: no duplicate keys (readers
/// disagree on which one wins), at most [`MAX_DEPTH`] levels.
struct Checked(usize);

impl<'de> DeserializeSeed<'de> for Checked {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a json value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.0 >= MAX_DEPTH {
            return Err(serde::de::Error::custom("nested too deep"));
        }
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Checked(self.0 + 1))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.0 >= MAX_DEPTH {
            return Err(serde::de::Error::custom("nested too deep"));
        }
        let mut m = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if m.contains_key(&k) {
                return Err(serde::de::Error::custom("duplicate key"));
            }
            let v = map.next_value_seed(Checked(self.0 + 1))?;
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}

fn json_err(e: serde_json::Error) -> DocError {
    let s = e.to_string();
    if s.contains("nested too deep") {
        DocError::TooDeep(MAX_DEPTH)
    } else {
        DocError::Json(s)
    }
}

/// Read json with the checks of [`Checked`], starting at nesting level `depth`.
fn checked_json(body: &[u8], depth: usize) -> Result<Value, DocError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = Checked(depth).deserialize(&mut de).map_err(json_err)?;
    de.end().map_err(json_err)?;
    Ok(v)
}

/// Read a whole json document (any format) with the gateway's checks: no duplicate keys,
/// at most [`MAX_DEPTH`] levels.
pub fn read_json(body: &[u8]) -> Result<Value, DocError> {
    checked_json(body, 0)
}

/// An object's members in order, values left unparsed; duplicate keys refused.
struct RawObject<'a>(Vec<(String, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    if !seen.insert(k.clone()) {
                        return Err(serde::de::Error::custom("duplicate key"));
                    }
                    out.push((k, map.next_value::<&'de RawValue>()?));
                }
                Ok(RawObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

// ---------- streaming item rewrites ----------

/// What to do with one top-level item: its name and the item; answers the items to write
/// in its place (none to drop it, several to repeat it).
pub type ItemFn<'f> = dyn FnMut(&str, Node) -> Vec<Node> + 'f;

/// Rewrite the top-level items (children of the root `doc`) named in `items`, one at a
/// time, copying everything else as it is. `format` is the document's own format (not
/// `text`). The whole document is checked on the way.
pub fn rewrite_items(
    body: &[u8],
    format: Format,
    items: &[&str],
    f: &mut ItemFn<'_>,
) -> Result<Vec<u8>, DocError> {
    match format {
        Format::Xml => xml_items(body, items, f),
        Format::Json | Format::Sjson => {
            let root: RawObject = serde_json::from_slice(body).map_err(json_err)?;
            if !root.0.iter().any(|(k, _)| k == "doc") {
                return Err(DocError::Json("the root has no 'doc'".into()));
            }
            let mut out = Vec::with_capacity(body.len() + body.len() / 8 + 16);
            out.push(b'{');
            for (i, (k, v)) in root.0.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_key(&mut out, k);
                if k == "doc" {
                    let doc: RawObject = serde_json::from_str(v.get()).map_err(json_err)?;
                    json_object_items(&doc, 1, false, items, f, &mut out)?;
                } else {
                    checked_json(v.get().as_bytes(), 1)?;
                    out.extend_from_slice(v.get().as_bytes());
                }
            }
            out.push(b'}');
            Ok(out)
        }
        Format::Bjson => {
            let root: RawObject = serde_json::from_slice(body).map_err(json_err)?;
            let mut out = Vec::with_capacity(body.len() + body.len() / 8 + 16);
            json_object_items(&root, 0, true, items, f, &mut out)?;
            Ok(out)
        }
        Format::Text => Err(DocError::Unsupported("text")),
    }
}

fn push_key(out: &mut Vec<u8>, k: &str) {
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, k);
    out.push(b':');
}

fn json_object_items(
    obj: &RawObject,
    depth: usize,
    bjson: bool,
    items: &[&str],
    f: &mut ItemFn<'_>,
    out: &mut Vec<u8>,
) -> Result<(), DocError> {
    let wrap = |v: Value| if bjson { Node::Bjson(v) } else { Node::Json(v) };
    out.push(b'{');
    let mut first = true;
    for (k, v) in &obj.0 {
        let raw = v.get();
        let value: Option<Vec<u8>> = if items.contains(&k.as_str()) {
            if raw.trim_start().starts_with('[') {
                let list: Vec<&RawValue> = serde_json::from_str(raw).map_err(json_err)?;
                let mut buf = vec![b'['];
                let mut n = 0;
                for it in list {
                    let item = checked_json(it.get().as_bytes(), depth + 2)?;
                    for new in f(k, wrap(item)) {
                        if n > 0 {
                            buf.push(b',');
                        }
                        n += 1;
                        let _ = serde_json::to_writer(&mut buf, &new.into_value());
                    }
                }
                buf.push(b']');
                Some(buf)
            } else {
                let item = checked_json(raw.as_bytes(), depth + 1)?;
                let mut new: Vec<Value> =
                    f(k, wrap(item)).into_iter().map(Node::into_value).collect();
                match new.len() {
                    0 => None,
                    1 => serde_json::to_vec(&new.pop().unwrap_or_default()).ok(),
                    _ => serde_json::to_vec(&Value::Array(new)).ok(),
                }
            }
        } else {
            checked_json(raw.as_bytes(), depth + 1)?;
            Some(raw.as_bytes().to_vec())
        };
        if let Some(bytes) = value {
            if !first {
                out.push(b',');
            }
            first = false;
            push_key(out, k);
            out.extend_from_slice(&bytes);
        }
    }
    out.push(b'}');
    Ok(())
}

fn xml_err(e: impl std::fmt::Display) -> DocError {
    DocError::Xml(e.to_string())
}

/// An element from its start tag: name and attributes (entities resolved, duplicates
/// refused, in time linear in the number of attributes).
pub(super) fn xml_start(s: &BytesStart) -> Result<Element, DocError> {
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
pub(super) fn xml_subtree(
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
                        super::doc::trim_texts(&mut el);
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

fn xml_items(body: &[u8], items: &[&str], f: &mut ItemFn<'_>) -> Result<Vec<u8>, DocError> {
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

/// Rewrite a whole document in its own format through `f` (which answers whether it
/// changed anything). `None` when nothing changed: the upstream's bytes can go as they are.
pub fn rewrite_whole(
    body: &[u8],
    format: Format,
    f: &mut dyn FnMut(&mut Node) -> bool,
) -> Result<Option<Vec<u8>>, DocError> {
    match format {
        Format::Xml => {
            let doc = super::doc::parse(body, Format::Xml)?;
            if doc.name != "doc" {
                return Err(DocError::NotDoc);
            }
            let mut n = Node::Xml(doc);
            if !f(&mut n) {
                return Ok(None);
            }
            let Node::Xml(doc) = n else { return Ok(None) };
            Ok(Some(super::doc::render(&doc, Format::Xml)))
        }
        Format::Json | Format::Sjson => {
            let mut root = read_json(body)?;
            let Some(doc) = root.get_mut("doc").filter(|d| d.is_object()) else {
                return Err(DocError::NotDoc);
            };
            let mut n = Node::Json(std::mem::take(doc));
            let changed = f(&mut n);
            *doc = n.into_value();
            Ok(changed.then(|| serde_json::to_vec(&root).unwrap_or_default()))
        }
        Format::Bjson => {
            let root = read_json(body)?;
            if !root.is_object() {
                return Err(DocError::NotDoc);
            }
            let mut n = Node::Bjson(root);
            let changed = f(&mut n);
            Ok(changed.then(|| serde_json::to_vec(&n.into_value()).unwrap_or_default()))
        }
        Format::Text => Err(DocError::Unsupported("text")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billmgr::parse;

    fn ids(body: &[u8], format: Format, keep: &[&str]) -> Vec<u8> {
        rewrite_items(body, format, &["elem"], &mut |_, n| {
            if keep.contains(&n.field("id").unwrap_or_default().as_str()) {
                vec![n]
            } else {
                Vec::new()
            }
        })
        .unwrap()
    }

    #[test]
    fn xml_outside_the_items_is_copied_byte_for_byte() {
        let body = b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c -->\n<doc a=\"1\">\n  <elem><id>1</id></elem>\n  <elem b=\"x\"><id>2</id><CN>a&amp;b</CN></elem>\n  <p_num>1</p_num>\n</doc>\n";
        let out = ids(body, Format::Xml, &["2"]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c -->\n<doc a=\"1\">\n  \n  <elem b=\"x\"><id>2</id><CN>a&amp;b</CN></elem>\n  <p_num>1</p_num>\n</doc>\n"
        );
        assert!(parse(body, Format::Xml).is_ok());
    }

    #[test]
    fn json_lists_keep_their_shape_when_filtered() {
        let cases = [
            // (input, kept ids, output)
            (
                r#"{"doc":{"elem":[{"id":{"$":"1"}}],"n":1}}"#,
                &["1"][..],
                r#"{"doc":{"elem":[{"id":{"$":"1"}}],"n":1}}"#,
            ),
            (
                r#"{"doc":{"elem":[{"id":{"$":"1"}},{"id":{"$":"2"}}]}}"#,
                &["2"],
                r#"{"doc":{"elem":[{"id":{"$":"2"}}]}}"#,
            ),
            (
                r#"{"doc":{"elem":{"id":{"$":"1"}},"z":true}}"#,
                &["1"],
                r#"{"doc":{"elem":{"id":{"$":"1"}},"z":true}}"#,
            ),
            (
                r#"{"doc":{"a":1,"elem":{"id":{"$":"1"}},"z":true}}"#,
                &[],
                r#"{"doc":{"a":1,"z":true}}"#,
            ),
            (r#"{"doc":{"elem":[]}}"#, &[], r#"{"doc":{"elem":[]}}"#),
        ];
        for (input, keep, want) in cases {
            let out = ids(input.as_bytes(), Format::Json, keep);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{input}");
        }
        let out = ids(br#"{"elem":[{"id":"1"}],"p_cnt":1}"#, Format::Bjson, &["1"]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"elem":[{"id":"1"}],"p_cnt":1}"#
        );
    }

    #[test]
    fn a_single_object_becomes_an_array_only_when_repeated() {
        let mut n = Node::Json(serde_json::json!({"pricelist": {"id": {"$": "1"}}, "x": 1}));
        n.flat_map_children("pricelist", &mut |p| vec![p.clone(), p]);
        assert_eq!(
            n.into_value().to_string(),
            r#"{"pricelist":[{"id":{"$":"1"}},{"id":{"$":"1"}}],"x":1}"#
        );
    }

    #[test]
    fn fields_are_set_where_and_as_they_are() {
        let mut n = Node::Json(serde_json::json!({
            "$cost": "1.00", "id": {"$": "3033"}, "num": 7, "arr": [{"$": "a"}], "s": "x"
        }));
        for (k, v) in [
            ("cost", "2.00"),
            ("id", "101"),
            ("num", "8"),
            ("arr", "b"),
            ("s", "y"),
        ] {
            assert!(n.set_field(k, v), "{k}");
            assert_eq!(n.field(k).as_deref(), Some(v), "{k}");
        }
        assert!(!n.set_field("absent", "1"));
        n.rename_field("id", "pid");
        assert_eq!(
            n.into_value().to_string(),
            r#"{"$cost":"2.00","pid":{"$":"101"},"num":8,"arr":[{"$":"b"}],"s":"y"}"#
        );
        let mut b = Node::Bjson(serde_json::json!({"cost": "1", "id": "5"}));
        assert!(b.set_field("cost", "2"));
        b.remove_field("id");
        assert_eq!(b.into_value().to_string(), r#"{"cost":"2"}"#);
    }

    #[test]
    fn what_is_refused() {
        for (body, f) in [
            (&b"<html/>"[..], Format::Xml),
            (b"<doc><elem><id>1</id></elem>", Format::Xml),
            (b"<doc/><doc/>", Format::Xml),
            (b"<doc>\xff</doc>", Format::Xml),
            (b"<!DOCTYPE doc><doc/>", Format::Xml),
            (b"{\"nodoc\":{}}", Format::Json),
            (b"{\"doc\":{\"elem\":[{\"a\":1,\"a\":2}]}}", Format::Json),
            (b"{\"doc\":{\"x\":1,\"x\":2}}", Format::Json),
            (b"{\"doc\":{}}trailing", Format::Json),
            (b"[]", Format::Bjson),
        ] {
            assert!(
                rewrite_items(body, f, &["elem"], &mut |_, n| vec![n]).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let body = format!("{{\"doc\":{{\"x\":{deep}}}}}");
        assert_eq!(
            rewrite_items(body.as_bytes(), Format::Json, &["elem"], &mut |_, n| vec![
                n
            ]),
            Err(DocError::TooDeep(MAX_DEPTH))
        );
    }
}
