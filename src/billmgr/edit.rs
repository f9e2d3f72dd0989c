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
//! time ([`rewrite_list`], [`rewrite_items`]): everything outside the items is copied byte
//! for byte, each item is read, rewritten and written back on its own, so a rewrite holds
//! the input, the output and one item, never a tree of the whole document. The catalogue
//! edits an item through [`Fields`] and writes as many copies of it as it needs through
//! [`ListItem`]. An xml item is read by the gateway's own tokenizer (`xml_scan`, quick-xml's
//! rules) into a flat arena of byte ranges (`xml_item`): edits are kept beside it and an
//! element nothing changed in is copied as the upstream wrote it. A json item is read in
//! the same single pass over the document into [`Node::Raw`]: its strings and keys are
//! spans of the upstream's text, only the values edited are replaced, and it is written
//! back exactly as serde_json would write its value (unchanged strings copied as they
//! came), without a map or a string per field. Everything is checked on
//! the way (well-formed, UTF-8, root `doc`, no DTD, no duplicate keys or attributes,
//! bounded depth), in time linear in the document's size. [`delimit_items`] gives the
//! rest of a list answer, its items only delimited, for a caller that reads them next.

mod json;
mod raw;
mod xml;
mod xml_item;
mod xml_scan;

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;

use serde_json::{Map, Value};

pub use json::read_json;
pub(super) use xml::{xml_start, xml_subtree};

use super::doc::{DocError, Element, Format};

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
    /// A json, sjson or bjson list item as read from the upstream's document: strings and
    /// keys are spans of it, written back as they came.
    Raw(raw::RawJson),
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

    /// A node as a [`raw::RVal`] (to go back into a [`Node::Raw`] tree).
    fn raw_rval(n: Node) -> Option<raw::RVal> {
        match n {
            Node::Raw(r) => Some(r.v),
            Node::Json(v) | Node::Bjson(v) => Some(raw::from_value(v)),
            Node::Xml(_) => None,
        }
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
            Node::Raw(r) => r.into_value(),
            Node::Xml(_) => Value::Null,
        }
    }

    /// This node as an [`Element`] named `name` (a read-only view for decisions).
    pub fn to_element(&self, name: &str) -> Element {
        match self {
            Node::Xml(e) => e.clone(),
            Node::Json(v) => super::doc::from_json(name.into(), v, 0).unwrap_or_default(),
            Node::Bjson(v) => super::doc::from_bjson(name.into(), v, 0).unwrap_or_default(),
            Node::Raw(r) => r.clone().into_node().to_element(name),
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
            Node::Raw(r) => r.field(name),
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
            Node::Raw(r) => r.set_field(name, value),
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
            Node::Raw(r) => r.remove_field(name),
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
            Node::Raw(r) => r.field_names(),
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
            Node::Raw(r) => r.rename_field(from, to),
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
            Node::Raw(r) => r.text(),
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
            Node::Raw(r) => r.set_text(t),
        }
    }

    /// Call `f` on every child named `name`, in order.
    pub fn for_children(&mut self, name: &str, f: &mut dyn FnMut(&mut Node)) {
        match self {
            Node::Raw(r) => r.for_children(name, &mut |c| {
                let mut n = Node::Raw(std::mem::replace(c, c.with_null()));
                f(&mut n);
                if let Some(v) = Node::raw_rval(n) {
                    c.v = v;
                }
            }),
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
            Node::Raw(r) => r.flat_map_children(name, &mut |c| {
                f(Node::Raw(c))
                    .into_iter()
                    .filter_map(Node::raw_rval)
                    .collect()
            }),
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

// ---------- what the catalogue edits ----------

/// What the catalogue reads and edits of one element, whatever the format and whatever
/// holds it: a [`Node`], or an element of an xml list item edited in the upstream's own
/// bytes. A field is a child's text, else the attribute of that name (see
/// [`Node::field`]).
pub trait Fields {
    /// The text of field `name`: a child's text, else the attribute `name`.
    fn field(&self, name: &str) -> Option<Cow<'_, str>>;
    /// Set field `name` where it is (child text or attribute). False when absent.
    fn set_field(&mut self, name: &str, value: &str) -> bool;
    /// The element's own text (not its children's).
    fn text(&self) -> Option<Cow<'_, str>>;
    /// Replace the element's own text.
    fn set_text(&mut self, t: &str);
    /// Call `keep` on every child named `name`, in order; a child it answers false for
    /// is left out. (In json a list keeps its shape: see [`Node::flat_map_children`].)
    fn retain_children(&mut self, name: &str, keep: &mut dyn FnMut(&mut dyn Fields) -> bool);
    /// Call `f` on every child named `name`, in order.
    fn each_child(&mut self, name: &str, f: &mut dyn FnMut(&mut dyn Fields)) {
        self.retain_children(name, &mut |c| {
            f(c);
            true
        });
    }
}

impl Fields for Node {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        Node::field(self, name).map(Cow::Owned)
    }
    fn set_field(&mut self, name: &str, value: &str) -> bool {
        Node::set_field(self, name, value)
    }
    fn text(&self) -> Option<Cow<'_, str>> {
        Node::text(self).map(Cow::Owned)
    }
    fn set_text(&mut self, t: &str) {
        Node::set_text(self, t)
    }
    fn retain_children(&mut self, name: &str, keep: &mut dyn FnMut(&mut dyn Fields) -> bool) {
        self.flat_map_children(name, &mut |mut c| {
            if keep(&mut c) {
                vec![c]
            } else {
                Vec::new()
            }
        });
    }
    fn each_child(&mut self, name: &str, f: &mut dyn FnMut(&mut dyn Fields)) {
        self.for_children(name, &mut |c| f(c));
    }
}

/// One top-level item of a list answer being rewritten: copies of the upstream's item
/// are edited and written out, none (the item is dropped), one or several (one upstream
/// plan shown as several local plans).
pub trait ListItem {
    /// The upstream's item as it came, to read (before any copy is asked for).
    fn upstream(&mut self) -> &dyn Fields;
    /// A fresh copy of the upstream's item, to edit; `last` when no other copy will be
    /// asked for.
    fn copy(&mut self, last: bool) -> &mut dyn Fields;
    /// Write the copy being edited in the item's place.
    fn emit(&mut self);
}

/// A [`Node`] item as a [`ListItem`]: copies are clones, written as nodes.
struct NodeItem {
    upstream: Option<Node>,
    copy: Option<Node>,
    out: Vec<Node>,
}

impl ListItem for NodeItem {
    fn upstream(&mut self) -> &dyn Fields {
        match self.upstream.get_or_insert(Node::Json(Value::Null)) {
            Node::Raw(r) => r,
            other => other,
        }
    }
    fn copy(&mut self, last: bool) -> &mut dyn Fields {
        let node = match (last, &mut self.upstream) {
            (true, up) => up.take(),
            (false, up) => up.clone(),
        };
        match self.copy.insert(node.unwrap_or(Node::Json(Value::Null))) {
            // A json item read from the document: its fields borrowed from it.
            Node::Raw(r) => r,
            other => other,
        }
    }
    fn emit(&mut self) {
        self.out.extend(self.copy.take());
    }
}

/// What to do with one top-level item of a list: its name and the item, whose copies it
/// edits and writes ([`ListItem`]).
pub type ListFn<'f> = dyn FnMut(&str, &mut dyn ListItem) + 'f;

/// Rewrite the top-level items (children of the root `doc`) named in `items`, one at a
/// time, copying everything else as it is: [`rewrite_items`] for a function that edits
/// [`Fields`]. xml items are edited in the upstream's own bytes (an element nothing
/// changed in goes out as it came); json items as [`Node`]s.
pub fn rewrite_list(
    body: &[u8],
    format: Format,
    items: &[&str],
    f: &mut ListFn<'_>,
) -> Result<Vec<u8>, DocError> {
    rewrite_list_until(body, format, items, f, None)
}

/// [`rewrite_list`]; when `f` sets `stop`, the pass ends after that item with
/// [`DocError::Stopped`] (the rest of the document is not read).
pub fn rewrite_list_until(
    body: &[u8],
    format: Format,
    items: &[&str],
    f: &mut ListFn<'_>,
    stop: Option<&Cell<bool>>,
) -> Result<Vec<u8>, DocError> {
    rewrite_list_rest(body, format, items, f, None, stop)
}

/// [`rewrite_list`], and the upstream's document without its `list` items (what
/// [`delimit_items`] gives; the other items, an `error`, stay in it) from the same pass,
/// so a list answer is read once; `stop` as in [`rewrite_list_until`].
pub fn rewrite_list_and_rest(
    body: &[u8],
    format: Format,
    items: &[&str],
    list: &[&str],
    f: &mut ListFn<'_>,
    stop: Option<&Cell<bool>>,
) -> Result<(Vec<u8>, Vec<u8>), DocError> {
    let mut rest = Vec::new();
    let out = rewrite_list_rest(body, format, items, f, Some((&mut rest, list)), stop)?;
    Ok((out, rest))
}

fn rewrite_list_rest(
    body: &[u8],
    format: Format,
    items: &[&str],
    f: &mut ListFn<'_>,
    rest: xml_item::Rest<'_>,
    stop: Option<&Cell<bool>>,
) -> Result<Vec<u8>, DocError> {
    let mut nodes = |name: &str, node: Node| {
        let mut item = NodeItem {
            upstream: Some(node),
            copy: None,
            out: Vec::new(),
        };
        f(name, &mut item);
        item.out
    };
    match format {
        Format::Xml => xml_item::edit(body, items, f, rest, stop),
        Format::Json | Format::Sjson => json::items(
            body,
            false,
            items,
            json::Mode::Rewrite(&mut nodes),
            rest,
            stop,
        ),
        Format::Bjson => json::items(
            body,
            true,
            items,
            json::Mode::Rewrite(&mut nodes),
            rest,
            stop,
        ),
        Format::Text => Err(DocError::Unsupported("text")),
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
        Format::Xml => xml::items(body, items, f),
        Format::Json | Format::Sjson => {
            json::items(body, false, items, json::Mode::Rewrite(f), None, None)
        }
        Format::Bjson => json::items(body, true, items, json::Mode::Rewrite(f), None, None),
        Format::Text => Err(DocError::Unsupported("text")),
    }
}

/// The document without its top-level `items`, for a caller that reads the items
/// afterwards with [`rewrite_list`] or [`rewrite_items`] (which check them), so that a
/// list is checked once rather than twice: xml items are only delimited by their
/// structure here (tags, quotes, comments, CDATA), not read, and what is left is for the
/// strict reader ([`super::parse`]); json items are read as json (syntax, UTF-8) but not
/// checked for duplicate keys or depth. Everything outside the items is checked as
/// [`rewrite_items`] checks it.
pub fn delimit_items(body: &[u8], format: Format, items: &[&str]) -> Result<Vec<u8>, DocError> {
    match format {
        Format::Xml => xml::delimit(body, items),
        Format::Json | Format::Sjson => {
            json::items(body, false, items, json::Mode::Delimit, None, None)
        }
        Format::Bjson => json::items(body, true, items, json::Mode::Delimit, None, None),
        Format::Text => Err(DocError::Unsupported("text")),
    }
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
mod tests;
