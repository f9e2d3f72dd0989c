//! json items edited in the upstream's own text: an item is read once into a light tree
//! whose strings and keys are spans of the document (no copy, no hashing), the few values
//! the gateway changes are replaced, and the item is written back with every unchanged
//! string copied as the upstream spelled it.
//!
//! The written item is what serde_json writes for the same value (compact, keys in
//! order): a string without escapes is its own bytes between quotes either way, and a
//! string with escapes, a number, a boolean or null is kept as a `serde_json::Value` and
//! written by serde_json. The reading checks are those of `json::read_json` (no duplicate
//! keys, at most [`MAX_DEPTH`] levels), in time linear in the item's size.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{scalar_text, set_scalar};
use crate::billmgr::doc::MAX_DEPTH;

/// One json value of an item.
#[derive(Debug, Clone, PartialEq)]
pub enum RVal {
    /// A string without escapes: the byte span of its content in the document.
    Str(u32, u32),
    /// Any other scalar (a number, a boolean, null, a string with escapes) or a value
    /// the gateway wrote.
    Val(Value),
    /// An object, members in order.
    Obj(Vec<(RKey, RVal)>),
    /// An array.
    Arr(Vec<RVal>),
    /// The usual json/sjson field `{"$": "text"}`, its text a span without escapes: an
    /// object of its own with no vector for it.
    Text(u32, u32),
}

/// An object key: a span of the document (no escapes), or its text.
#[derive(Debug, Clone, PartialEq)]
pub enum RKey {
    Span(u32, u32),
    Owned(Box<str>),
}

/// An item of a json/sjson (`"$"` text, `"$name"` attributes) or bjson (plain keys)
/// document, with the document it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct RawJson {
    pub(super) src: Arc<str>,
    pub(super) bjson: bool,
    pub(super) v: RVal,
}

fn span(src: &str, a: u32, b: u32) -> &str {
    src.get(a as usize..b as usize).unwrap_or_default()
}

fn key_str<'a>(src: &'a str, k: &'a RKey) -> &'a str {
    match k {
        RKey::Span(a, b) => span(src, *a, *b),
        RKey::Owned(s) => s,
    }
}

/// Whether `k` is `name`, or (`dollar`) `$name`.
fn key_is(src: &str, k: &RKey, name: &str, dollar: bool) -> bool {
    let k = key_str(src, k);
    if dollar {
        k.strip_prefix('$') == Some(name)
    } else {
        k == name
    }
}

/// The span of `s` in `base`, when `s` lies in it.
fn span_of(base: &str, s: &str) -> Option<(u32, u32)> {
    let a = (s.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    let b = a.checked_add(s.len())?;
    if b > base.len() {
        return None;
    }
    Some((u32::try_from(a).ok()?, u32::try_from(b).ok()?))
}

// ---------- reading ----------

/// Reads one value of `base` (at nesting level `depth`) into an [`RVal`].
#[derive(Clone, Copy)]
pub(super) struct Seed<'de> {
    pub base: &'de str,
    pub depth: usize,
}

impl<'de> DeserializeSeed<'de> for Seed<'de> {
    type Value = RVal;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RVal, D::Error> {
        d.deserialize_any(self)
    }
}

struct KeySeed<'de>(&'de str);

impl<'de> DeserializeSeed<'de> for KeySeed<'de> {
    type Value = RKey;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RKey, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'de> {
    type Value = RKey;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<RKey, E> {
        Ok(match span_of(self.0, v) {
            Some((a, b)) => RKey::Span(a, b),
            None => RKey::Owned(v.into()),
        })
    }
    fn visit_str<E>(self, v: &str) -> Result<RKey, E> {
        Ok(RKey::Owned(v.into()))
    }
}

impl<'de> Visitor<'de> for Seed<'de> {
    type Value = RVal;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a json value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<RVal, E> {
        Ok(RVal::Val(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RVal, E> {
        Ok(RVal::Val(Value::Number(v.into())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<RVal, E> {
        Ok(RVal::Val(Value::Number(v.into())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RVal, E> {
        Ok(RVal::Val(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<RVal, E> {
        Ok(match span_of(self.base, v) {
            Some((a, b)) => RVal::Str(a, b),
            None => RVal::Val(Value::String(v.to_string())),
        })
    }
    fn visit_str<E>(self, v: &str) -> Result<RVal, E> {
        Ok(RVal::Val(Value::String(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<RVal, E> {
        Ok(RVal::Val(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<RVal, E> {
        Ok(RVal::Val(Value::Null))
    }
    fn visit_none<E>(self) -> Result<RVal, E> {
        Ok(RVal::Val(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RVal, A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(serde::de::Error::custom("nested too deep"));
        }
        let inner = Seed {
            base: self.base,
            depth: self.depth + 1,
        };
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(RVal::Arr(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RVal, A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(serde::de::Error::custom("nested too deep"));
        }
        let inner = Seed {
            base: self.base,
            depth: self.depth + 1,
        };
        let mut out: Vec<(RKey, RVal)> = Vec::new();
        let mut seen = Keys::default();
        let mut next = map.next_key_seed(KeySeed(self.base))?;
        while let Some(k) = next {
            if !seen.insert(self.base, &out, &k) {
                return Err(serde::de::Error::custom("duplicate key"));
            }
            let v = map.next_value_seed(inner)?;
            next = map.next_key_seed(KeySeed(self.base))?;
            if let (true, None, RKey::Span(ka, kb), RVal::Str(a, b)) =
                (out.is_empty(), &next, &k, &v)
            {
                if span(self.base, *ka, *kb) == "$" {
                    return Ok(RVal::Text(*a, *b));
                }
            }
            out.push((k, v));
        }
        Ok(RVal::Obj(out))
    }
}

/// Keys of one object seen so far: compared one by one while there are few, hashed past
/// [`Keys::FEW`] so an object with many keys is still read in linear time.
#[derive(Default)]
pub(super) struct Keys<'de> {
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Keys<'de> {
    /// An item's usual dozen or two fields are compared, not hashed (a certificate row
    /// has 13): cheaper than SipHash up to about this many.
    const FEW: usize = 32;

    /// False when `k` is among `before` (the object's members so far).
    fn insert(&mut self, base: &'de str, before: &[(RKey, RVal)], k: &RKey) -> bool {
        let text = key_str(base, k);
        if let Some(set) = &mut self.many {
            return set.insert(cow(base, k));
        }
        if before.len() < Self::FEW {
            return !before.iter().any(|(b, _)| key_str(base, b) == text);
        }
        let mut set: HashSet<Cow<'de, str>> = before.iter().map(|(b, _)| cow(base, b)).collect();
        let fresh = set.insert(cow(base, k));
        self.many = Some(set);
        fresh
    }
}

fn cow<'de>(base: &'de str, k: &RKey) -> Cow<'de, str> {
    match k {
        RKey::Span(a, b) => Cow::Borrowed(span(base, *a, *b)),
        RKey::Owned(s) => Cow::Owned(s.to_string()),
    }
}

// ---------- writing ----------

/// Write `v` (of document `src`) as compact json.
pub(super) fn write(src: &str, v: &RVal, out: &mut Vec<u8>) {
    match v {
        RVal::Str(a, b) => {
            out.push(b'"');
            out.extend_from_slice(span(src, *a, *b).as_bytes());
            out.push(b'"');
        }
        // Writing to a Vec cannot fail.
        RVal::Val(v) => {
            let _ = serde_json::to_writer(&mut *out, v);
        }
        RVal::Obj(m) => {
            out.push(b'{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match k {
                    RKey::Span(a, b) => {
                        out.push(b'"');
                        out.extend_from_slice(span(src, *a, *b).as_bytes());
                        out.push(b'"');
                    }
                    RKey::Owned(s) => {
                        let _ = serde_json::to_writer(&mut *out, &**s);
                    }
                }
                out.push(b':');
                write(src, v, out);
            }
            out.push(b'}');
        }
        RVal::Arr(a) => {
            out.push(b'[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(src, v, out);
            }
            out.push(b']');
        }
        RVal::Text(a, b) => {
            out.extend_from_slice(b"{\"$\":\"");
            out.extend_from_slice(span(src, *a, *b).as_bytes());
            out.extend_from_slice(b"\"}");
        }
    }
}

/// `v` as a `serde_json::Value`.
pub(super) fn to_value(src: &str, v: &RVal) -> Value {
    match v {
        RVal::Str(a, b) => Value::String(span(src, *a, *b).to_string()),
        RVal::Val(v) => v.clone(),
        RVal::Obj(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(key_str(src, k).to_string(), to_value(src, v));
            }
            Value::Object(out)
        }
        RVal::Arr(a) => Value::Array(a.iter().map(|v| to_value(src, v)).collect()),
        RVal::Text(a, b) => {
            let mut m = Map::new();
            m.insert("$".into(), Value::String(span(src, *a, *b).to_string()));
            Value::Object(m)
        }
    }
}

/// A `serde_json::Value` as an [`RVal`] (keys owned).
pub(super) fn from_value(v: Value) -> RVal {
    match v {
        Value::Object(m) => RVal::Obj(
            m.into_iter()
                .map(|(k, v)| (RKey::Owned(k.into()), from_value(v)))
                .collect(),
        ),
        Value::Array(a) => RVal::Arr(a.into_iter().map(from_value).collect()),
        other => RVal::Val(other),
    }
}

// ---------- editing (the semantics of `Node::Json` / `Node::Bjson`) ----------

/// The text of a value as BILLmanager means it (see [`scalar_text`]), borrowed from the
/// document when it is one of its spans.
fn text_cow<'a>(src: &'a str, v: &'a RVal) -> Option<Cow<'a, str>> {
    match v {
        RVal::Str(a, b) => Some(Cow::Borrowed(span(src, *a, *b))),
        RVal::Val(Value::String(s)) => Some(Cow::Borrowed(s)),
        RVal::Val(v) => scalar_text(v).map(Cow::Owned),
        RVal::Obj(m) => Some(
            m.iter()
                .find(|(k, _)| key_is(src, k, "$", false))
                .and_then(|(_, v)| text_cow(src, v))
                .unwrap_or_default(),
        ),
        RVal::Arr(a) => a.first().and_then(|v| text_cow(src, v)),
        RVal::Text(a, b) => Some(Cow::Borrowed(span(src, *a, *b))),
    }
}

fn set_text_of(src: &str, slot: &mut RVal, text: &str) {
    match slot {
        RVal::Obj(m) => match m.iter_mut().find(|(k, _)| key_is(src, k, "$", false)) {
            Some((_, t)) => set_text_of(src, t, text),
            None => m.push((
                RKey::Owned("$".into()),
                RVal::Val(Value::String(text.into())),
            )),
        },
        RVal::Arr(a) => match a.first_mut() {
            Some(first) => set_text_of(src, first, text),
            None => a.push(RVal::Val(Value::String(text.into()))),
        },
        RVal::Val(v) => set_scalar(v, text),
        RVal::Str(..) => *slot = RVal::Val(Value::String(text.into())),
        RVal::Text(..) => {
            *slot = RVal::Obj(vec![(
                RKey::Owned("$".into()),
                RVal::Val(Value::String(text.into())),
            )])
        }
    }
}

impl RawJson {
    /// The same document's `v`.
    fn with(&self, v: RVal) -> RawJson {
        RawJson {
            src: self.src.clone(),
            bjson: self.bjson,
            v,
        }
    }

    /// The member for field `name`: the key `name`, else (json) `$name`.
    fn slot(&self, name: &str) -> Option<&RVal> {
        let RVal::Obj(m) = &self.v else { return None };
        let src = &*self.src;
        m.iter()
            .find(|(k, _)| key_is(src, k, name, false))
            .or_else(|| {
                (!self.bjson)
                    .then(|| m.iter().find(|(k, _)| key_is(src, k, name, true)))
                    .flatten()
            })
            .map(|(_, v)| v)
    }

    fn slot_index(&self, name: &str) -> Option<usize> {
        let RVal::Obj(m) = &self.v else { return None };
        let src = &*self.src;
        m.iter()
            .position(|(k, _)| key_is(src, k, name, false))
            .or_else(|| {
                (!self.bjson)
                    .then(|| m.iter().position(|(k, _)| key_is(src, k, name, true)))
                    .flatten()
            })
    }

    pub(super) fn field(&self, name: &str) -> Option<String> {
        super::Fields::field(self, name).map(Cow::into_owned)
    }

    pub(super) fn set_field(&mut self, name: &str, value: &str) -> bool {
        let Some(i) = self.slot_index(name) else {
            return false;
        };
        let RVal::Obj(m) = &mut self.v else {
            return false;
        };
        set_text_of(&self.src, &mut m[i].1, value);
        true
    }

    pub(super) fn remove_field(&mut self, name: &str) {
        let bjson = self.bjson;
        let src = &*self.src;
        if let RVal::Obj(m) = &mut self.v {
            m.retain(|(k, _)| {
                !key_is(src, k, name, false) && (bjson || !key_is(src, k, name, true))
            });
        }
    }

    pub(super) fn field_names(&self) -> Vec<String> {
        let RVal::Obj(m) = &self.v else {
            return Vec::new();
        };
        let src = &*self.src;
        m.iter()
            .map(|(k, _)| key_str(src, k))
            .filter(|k| *k != "$")
            .map(|k| {
                if self.bjson {
                    k
                } else {
                    k.strip_prefix('$').unwrap_or(k)
                }
            })
            .map(str::to_string)
            .collect()
    }

    /// Rename key `from` to `to`, keeping its position (a member `to` goes).
    fn rename_key(&mut self, from: &str, to: &str, dollar: bool) {
        let src = self.src.clone();
        let RVal::Obj(m) = &mut self.v else { return };
        if from == to || !m.iter().any(|(k, _)| key_is(&src, k, from, dollar)) {
            return;
        }
        m.retain(|(k, _)| !key_is(&src, k, to, dollar));
        let new: Box<str> = if dollar {
            format!("${to}").into()
        } else {
            to.into()
        };
        for (k, _) in m.iter_mut() {
            if key_is(&src, k, from, dollar) {
                *k = RKey::Owned(new.clone());
            }
        }
    }

    pub(super) fn rename_field(&mut self, from: &str, to: &str) {
        self.rename_key(from, to, false);
        if !self.bjson {
            self.rename_key(from, to, true);
        }
    }

    pub(super) fn text(&self) -> Option<String> {
        super::Fields::text(self).map(Cow::into_owned)
    }

    pub(super) fn set_text(&mut self, t: &str) {
        let src = &*self.src;
        match &mut self.v {
            RVal::Obj(m) => {
                if let Some((_, slot)) = m.iter_mut().find(|(k, _)| key_is(src, k, "$", false)) {
                    set_text_of(src, slot, t);
                }
            }
            v => set_text_of(src, v, t),
        }
    }

    /// The member `name` (exactly), taken out of the tree with its index.
    fn child_slot(&mut self, name: &str) -> Option<&mut RVal> {
        let src = &*self.src;
        let RVal::Obj(m) = &mut self.v else {
            return None;
        };
        m.iter_mut()
            .find(|(k, _)| key_is(src, k, name, false))
            .map(|(_, v)| v)
    }

    pub(super) fn for_children(&mut self, name: &str, f: &mut dyn FnMut(&mut RawJson)) {
        let proto = self.with(RVal::Val(Value::Null));
        let Some(slot) = self.child_slot(name) else {
            return;
        };
        if let RVal::Val(v @ (Value::Object(_) | Value::Array(_))) = slot {
            *slot = from_value(std::mem::take(v));
        }
        let mut visit = |v: &mut RVal| {
            let mut n = proto.with(std::mem::replace(v, RVal::Val(Value::Null)));
            f(&mut n);
            *v = n.v;
        };
        match slot {
            RVal::Arr(items) => items.iter_mut().for_each(&mut visit),
            one => visit(one),
        }
    }

    pub(super) fn flat_map_children(
        &mut self,
        name: &str,
        f: &mut dyn FnMut(RawJson) -> Vec<RVal>,
    ) {
        let proto = self.with(RVal::Val(Value::Null));
        let src = self.src.clone();
        let RVal::Obj(m) = &mut self.v else { return };
        let Some(i) = m.iter().position(|(k, _)| key_is(&src, k, name, false)) else {
            return;
        };
        let mut slot = std::mem::replace(&mut m[i].1, RVal::Val(Value::Null));
        if let RVal::Val(v @ (Value::Object(_) | Value::Array(_))) = &mut slot {
            slot = from_value(std::mem::take(v));
        }
        match slot {
            RVal::Arr(items) => {
                let mut out = Vec::with_capacity(items.len());
                for it in items {
                    out.extend(f(proto.with(it)));
                }
                m[i].1 = RVal::Arr(out);
            }
            one => {
                let mut out = f(proto.with(one));
                match out.len() {
                    0 => {
                        m.remove(i);
                    }
                    1 => m[i].1 = out.pop().unwrap_or(RVal::Val(Value::Null)),
                    _ => m[i].1 = RVal::Arr(out),
                }
            }
        }
    }

    pub(super) fn into_value(self) -> Value {
        to_value(&self.src, &self.v)
    }
}

impl RawJson {
    /// The same document's `null` (a placeholder while a child is out).
    pub(super) fn with_null(&self) -> RawJson {
        self.with(RVal::Val(Value::Null))
    }

    /// This item as a json/bjson [`super::Node`] of owned values.
    pub(super) fn into_node(self) -> super::Node {
        let bjson = self.bjson;
        let v = self.into_value();
        if bjson {
            super::Node::Bjson(v)
        } else {
            super::Node::Json(v)
        }
    }
}

/// The catalogue reads a json item's fields borrowed from the document (no string per
/// field) and edits it in place.
impl super::Fields for RawJson {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self.slot(name).and_then(|v| text_cow(&self.src, v))
    }
    fn set_field(&mut self, name: &str, value: &str) -> bool {
        RawJson::set_field(self, name, value)
    }
    fn text(&self) -> Option<Cow<'_, str>> {
        match &self.v {
            RVal::Arr(_) => None,
            RVal::Obj(m) => m
                .iter()
                .find(|(k, _)| key_is(&self.src, k, "$", false))
                .and_then(|(_, v)| text_cow(&self.src, v)),
            v => text_cow(&self.src, v),
        }
    }
    fn set_text(&mut self, t: &str) {
        RawJson::set_text(self, t)
    }
    fn retain_children(
        &mut self,
        name: &str,
        keep: &mut dyn FnMut(&mut dyn super::Fields) -> bool,
    ) {
        self.flat_map_children(name, &mut |mut c| {
            if keep(&mut c) {
                vec![c.v]
            } else {
                Vec::new()
            }
        });
    }
    fn each_child(&mut self, name: &str, f: &mut dyn FnMut(&mut dyn super::Fields)) {
        self.for_children(name, &mut |c| f(c));
    }
}
