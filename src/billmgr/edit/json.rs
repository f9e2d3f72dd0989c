//! json, sjson and bjson read with the gateway's checks ([`read_json`]: no duplicate
//! keys, bounded depth) and rewritten one top-level item at a time ([`items`]), values
//! outside the items copied as they came.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::Arc;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::raw::{self, RVal, RawJson, Seed};
use super::{ItemFn, Node};
use crate::billmgr::doc::{DocError, MAX_DEPTH};

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

/// [`Checked`]'s checks without building the value.
struct CheckOnly(usize);

impl<'de> DeserializeSeed<'de> for CheckOnly {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// An object key, borrowed from the document when it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(v.to_string().into()))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Visitor<'de> for CheckOnly {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a json value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.0 >= MAX_DEPTH {
            return Err(serde::de::Error::custom("nested too deep"));
        }
        while seq.next_element_seed(CheckOnly(self.0 + 1))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.0 >= MAX_DEPTH {
            return Err(serde::de::Error::custom("nested too deep"));
        }
        // Compared one by one while few (the usual element), hashed past that.
        const FEW: usize = 8;
        let mut few: Vec<std::borrow::Cow<'de, str>> = Vec::new();
        let mut many: Option<HashSet<std::borrow::Cow<'de, str>>> = None;
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            let dup = match &mut many {
                Some(set) => !set.insert(k),
                None if few.len() < FEW => {
                    let dup = few.contains(&k);
                    few.push(k);
                    dup
                }
                None => {
                    let mut set: HashSet<_> = std::mem::take(&mut few).into_iter().collect();
                    let dup = !set.insert(k);
                    many = Some(set);
                    dup
                }
            };
            if dup {
                return Err(serde::de::Error::custom("duplicate key"));
            }
            map.next_value_seed(CheckOnly(self.0 + 1))?;
        }
        Ok(())
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

/// What [`items`] does with each item.
pub(super) enum Mode<'a, 'f> {
    /// Left out (an array of items stays an, empty, array; one item goes), its syntax
    /// read but not checked further (duplicate keys, depth): for a caller that reads the
    /// items afterwards.
    Delimit,
    /// Rewritten by the function.
    Rewrite(&'a mut ItemFn<'f>),
}

/// The top-level items of a json/sjson (`{"doc":{…}}`) or bjson (`bjson`) document
/// rewritten one at a time (see [`super::rewrite_items`]), or left out, as `mode` says.
pub(super) fn items(
    body: &[u8],
    bjson: bool,
    items: &[&str],
    mode: Mode,
    rest: Rest<'_>,
    stop: Option<&Cell<bool>>,
) -> Result<Vec<u8>, DocError> {
    let f = match mode {
        Mode::Delimit => None,
        Mode::Rewrite(f) => Some(f),
    };
    rewrite(body, bjson, items, f, rest, stop)
}

/// Where the document without its list items goes, and which items are the list's (the
/// others, an `error`, stay in it as they came): written in the same pass as a rewrite.
pub(super) type Rest<'a> = Option<(&'a mut Vec<u8>, &'a [&'a str])>;

/// Both outputs of a pass: the rewritten document, and (maybe) its rest.
struct Outs<'x> {
    out: &'x mut Vec<u8>,
    rest: Option<&'x mut Vec<u8>>,
}

impl Outs<'_> {
    fn both(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        if let Some(r) = self.rest.as_deref_mut() {
            r.extend_from_slice(bytes);
        }
    }
}

fn push_key(out: &mut Vec<u8>, k: &str) {
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, k);
    out.push(b':');
}

// ---------- rewriting in one pass ----------

/// The document with its top-level `items` rewritten by `f`, read in one pass: each item
/// is read once into a [`RawJson`] (strings and keys spans of the document) and written
/// back with its unchanged strings as they came; every other value of the root and of
/// `doc` is checked and copied byte for byte.
fn rewrite(
    body: &[u8],
    bjson: bool,
    items: &[&str],
    f: Option<&mut ItemFn<'_>>,
    rest: Rest<'_>,
    stop: Option<&Cell<bool>>,
) -> Result<Vec<u8>, DocError> {
    let text = std::str::from_utf8(body).map_err(|_| DocError::Utf8)?;
    // The items' nodes share one copy of the document (their strings are spans of it);
    // a check reads the upstream's bytes as they are.
    let (src, mut out): (Arc<str>, _) = match f {
        Some(_) => (
            Arc::from(text),
            Vec::with_capacity(body.len() + body.len() / 8 + 16),
        ),
        None => (Arc::from(""), Vec::new()),
    };
    let mut de = serde_json::Deserializer::from_str(if f.is_some() { &src } else { text });
    let (rest, list) = match rest {
        Some((r, list)) => (Some(r), list),
        None => (None, &[][..]),
    };
    let doc = DocItems {
        src: &src,
        depth: 0,
        bjson,
        items,
        f,
        list,
        stop,
        outs: Outs {
            out: &mut out,
            rest,
        },
    };
    if bjson {
        de.deserialize_map(doc).map_err(stopped_or(stop))?;
    } else {
        de.deserialize_map(RootItems(doc))
            .map_err(stopped_or(stop))?;
    }
    de.end().map_err(json_err)?;
    Ok(out)
}

/// Reads the `doc` object at nesting level `depth` of document `src`, writing it to
/// `out` with its `items` rewritten by `f`.
struct DocItems<'x, 'f, 'de> {
    src: &'de Arc<str>,
    depth: usize,
    bjson: bool,
    items: &'x [&'x str],
    /// `None`: the items are delimited and left out.
    f: Option<&'x mut ItemFn<'f>>,
    /// The list's items (left out of the rest).
    list: &'x [&'x str],
    /// Set by `f` to end the pass after the item it was called for.
    stop: Option<&'x Cell<bool>>,
    outs: Outs<'x>,
}

/// The error a pass ends with: [`DocError::Stopped`] when it was stopped.
fn stopped_or(stop: Option<&Cell<bool>>) -> impl Fn(serde_json::Error) -> DocError + '_ {
    move |e| match stop.is_some_and(Cell::get) {
        true => DocError::Stopped,
        false => json_err(e),
    }
}

/// Ends a pass when `stop` was set.
fn check_stop<E: serde::de::Error>(stop: Option<&Cell<bool>>) -> Result<(), E> {
    match stop.is_some_and(Cell::get) {
        true => Err(E::custom("stopped")),
        false => Ok(()),
    }
}

/// Another value: checked, and copied as it came.
fn copy_checked<'de, A: MapAccess<'de>>(
    map: &mut A,
    depth: usize,
    outs: &mut Outs,
) -> Result<(), A::Error> {
    let raw: &'de RawValue = map.next_value()?;
    let mut de = serde_json::Deserializer::from_str(raw.get());
    CheckOnly(depth)
        .deserialize(&mut de)
        .map_err(serde::de::Error::custom)?;
    outs.both(raw.get().as_bytes());
    Ok(())
}

/// A member's key in `out`, after a comma unless it is the first.
fn member(out: &mut Vec<u8>, first: &mut bool, k: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    push_key(out, k);
}

/// Whether `k` was seen in this object (linear while few keys, hashed past that).
fn seen_before<'de>(
    few: &mut Vec<std::borrow::Cow<'de, str>>,
    many: &mut Option<HashSet<std::borrow::Cow<'de, str>>>,
    k: std::borrow::Cow<'de, str>,
) -> bool {
    const FEW: usize = 8;
    match many {
        Some(set) => !set.insert(k),
        None if few.len() < FEW => {
            let dup = few.contains(&k);
            few.push(k);
            dup
        }
        None => {
            let mut set: HashSet<_> = std::mem::take(few).into_iter().collect();
            let dup = !set.insert(k);
            *many = Some(set);
            dup
        }
    }
}

impl<'de> DeserializeSeed<'de> for DocItems<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocItems<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let DocItems {
            src,
            depth,
            bjson,
            items,
            mut f,
            list: list_items,
            stop,
            mut outs,
        } = self;
        let base: &'de str = src;
        outs.both(b"{");
        // Whether the next member is the first, in the document and in its rest.
        let (mut first, mut rest_first) = (true, true);
        let (mut few, mut many) = (Vec::new(), None);
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            if seen_before(&mut few, &mut many, k.clone()) {
                return Err(serde::de::Error::custom("duplicate key"));
            }
            if !items.contains(&&*k) {
                member(outs.out, &mut first, &k);
                if let Some(r) = outs.rest.as_deref_mut() {
                    member(r, &mut rest_first, &k);
                }
                copy_checked(&mut map, depth + 1, &mut outs)?;
                continue;
            }
            let Some(f) = f.as_deref_mut() else {
                // Delimited only: an array of items stays an (empty) array, one item goes.
                let raw: &'de RawValue = map.next_value()?;
                if raw.get().starts_with('[') {
                    member(outs.out, &mut first, &k);
                    outs.out.extend_from_slice(b"[]");
                }
                continue;
            };
            // A list's items leave the rest (an array of them stays an empty array there,
            // see `Stream`); another item (an `error`) stays in it as it came.
            let in_list = list_items.contains(&&*k);
            let kept: Option<&'de RawValue> = match outs.rest.as_deref_mut() {
                Some(r) if !in_list => {
                    let raw: &'de RawValue = map.next_value()?;
                    member(r, &mut rest_first, &k);
                    r.extend_from_slice(raw.get().as_bytes());
                    Some(raw)
                }
                _ => None,
            };
            // The items are read, rewritten and written one at a time: a list is never
            // held whole.
            let stream = Stream {
                base,
                src,
                bjson,
                depth: depth + 1,
                k: &k,
                f: &mut *f,
                stop,
                out: &mut *outs.out,
                first: &mut first,
                rest: match (in_list, outs.rest.as_deref_mut()) {
                    (true, Some(r)) => Some((r, &mut rest_first)),
                    _ => None,
                },
            };
            let one = match kept {
                None => map.next_value_seed(stream)?,
                // Its bytes are the document's, so its strings are still spans of it.
                Some(raw) => stream
                    .deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
                    .map_err(serde::de::Error::custom)?,
            };
            if let Some(one) = one {
                write_one(outs.out, &mut first, &k, f(&k, item(src, bjson, one)));
            }
            check_stop(stop)?;
        }
        outs.both(b"}");
        Ok(())
    }
}

fn item(src: &Arc<str>, bjson: bool, v: RVal) -> Node {
    Node::Raw(RawJson {
        src: src.clone(),
        bjson,
        v,
    })
}

fn write(n: Node, out: &mut Vec<u8>) {
    match n {
        Node::Raw(r) => raw::write(&r.src, &r.v, out),
        other => {
            let _ = serde_json::to_writer(&mut *out, &other.into_value());
        }
    }
}

/// One item (not in an array) rewritten into `new`: it stays one, goes when dropped,
/// becomes a list when repeated.
fn write_one(out: &mut Vec<u8>, first: &mut bool, k: &str, new: Vec<Node>) {
    if new.is_empty() {
        return;
    }
    member(out, first, k);
    let several = new.len() > 1;
    if several {
        out.push(b'[');
    }
    for (i, n) in new.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(n, out);
    }
    if several {
        out.push(b']');
    }
}

/// The value of an item key (`k`, the list's or another such as `error`), at nesting level
/// `depth`: an array is rewritten item by item into `out` as it is read (and, given
/// `rest`, stays an empty array there); any other value is read whole and answered, for
/// [`write_one`].
struct Stream<'x, 'f, 'de> {
    base: &'de str,
    src: &'x Arc<str>,
    bjson: bool,
    depth: usize,
    k: &'x str,
    f: &'x mut ItemFn<'f>,
    stop: Option<&'x Cell<bool>>,
    out: &'x mut Vec<u8>,
    first: &'x mut bool,
    rest: Option<(&'x mut Vec<u8>, &'x mut bool)>,
}

impl<'de> DeserializeSeed<'de> for Stream<'_, '_, 'de> {
    type Value = Option<RVal>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<RVal>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Stream<'_, '_, 'de> {
    fn seed(&self) -> Seed<'de> {
        Seed {
            base: self.base,
            depth: self.depth,
        }
    }
}

/// The scalars and objects go to [`Seed`] (the same reading as any other value).
macro_rules! whole {
    ($($name:ident($($arg:ident: $t:ty),*)),* $(,)?) => {$(
        fn $name<E: serde::de::Error>(self, $($arg: $t),*) -> Result<Option<RVal>, E> {
            Visitor::$name(self.seed(), $($arg),*).map(Some)
        }
    )*};
}

impl<'de> Visitor<'de> for Stream<'_, '_, 'de> {
    type Value = Option<RVal>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a json value")
    }
    whole! {
        visit_bool(v: bool),
        visit_i64(v: i64),
        visit_u64(v: u64),
        visit_f64(v: f64),
        visit_str(v: &str),
        visit_string(v: String),
        visit_unit(),
        visit_none(),
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Option<RVal>, E> {
        self.seed().visit_borrowed_str(v).map(Some)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<RVal>, A::Error> {
        self.seed().visit_map(map).map(Some)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<RVal>, A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(serde::de::Error::custom("nested too deep"));
        }
        let Stream {
            base,
            src,
            bjson,
            depth,
            k,
            f,
            stop,
            out,
            first,
            rest,
        } = self;
        if let Some((r, rest_first)) = rest {
            member(r, rest_first, k);
            r.extend_from_slice(b"[]");
        }
        // A list stays a list, whatever its length.
        member(out, first, k);
        out.push(b'[');
        let inner = Seed {
            base,
            depth: depth + 1,
        };
        let mut n = 0;
        while let Some(it) = seq.next_element_seed(inner)? {
            for new in f(k, item(src, bjson, it)) {
                if n > 0 {
                    out.push(b',');
                }
                n += 1;
                write(new, out);
            }
            check_stop(stop)?;
        }
        out.push(b']');
        Ok(None)
    }
}

/// Reads a json/sjson root: `doc` through [`DocItems`], every other member checked and
/// copied; a root without `doc` is refused.
struct RootItems<'x, 'f, 'de>(DocItems<'x, 'f, 'de>);

impl<'de> Visitor<'de> for RootItems<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let DocItems {
            src,
            bjson,
            items,
            mut f,
            list,
            stop,
            mut outs,
            ..
        } = self.0;
        outs.both(b"{");
        let mut first = true;
        let mut doc_seen = false;
        let (mut few, mut many) = (Vec::new(), None);
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            if seen_before(&mut few, &mut many, k.clone()) {
                return Err(serde::de::Error::custom("duplicate key"));
            }
            if !first {
                outs.both(b",");
            }
            first = false;
            push_key(outs.out, &k);
            if let Some(r) = outs.rest.as_deref_mut() {
                push_key(r, &k);
            }
            if k == "doc" {
                doc_seen = true;
                map.next_value_seed(DocItems {
                    src,
                    depth: 1,
                    bjson,
                    items,
                    f: f.as_deref_mut(),
                    list,
                    stop,
                    outs: Outs {
                        out: &mut *outs.out,
                        rest: outs.rest.as_deref_mut(),
                    },
                })?;
            } else {
                copy_checked(&mut map, 1, &mut outs)?;
            }
        }
        if !doc_seen {
            return Err(serde::de::Error::custom("the root has no 'doc'"));
        }
        outs.both(b"}");
        Ok(())
    }
}
