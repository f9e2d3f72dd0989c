//! json, sjson and bjson read with the gateway's checks ([`read_json`]: no duplicate
//! keys, bounded depth) and rewritten one top-level item at a time ([`items`]), values
//! outside the items copied as they came.

use std::collections::HashSet;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

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

/// [`checked_json`]'s checks without building the value.
fn check_json(body: &[u8], depth: usize) -> Result<(), DocError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    CheckOnly(depth).deserialize(&mut de).map_err(json_err)?;
    de.end().map_err(json_err)
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

/// The top-level items of a json/sjson (`{"doc":{…}}`) or bjson (`bjson`) document
/// rewritten one at a time (see [`super::rewrite_items`]), or (`f` = `None`) checked and
/// left out.
pub(super) fn items(
    body: &[u8],
    bjson: bool,
    items: &[&str],
    mut f: Option<&mut ItemFn<'_>>,
) -> Result<Vec<u8>, DocError> {
    let root: RawObject = serde_json::from_slice(body).map_err(json_err)?;
    let mut out = Vec::with_capacity(body.len() + body.len() / 8 + 16);
    if bjson {
        json_object_items(&root, 0, true, items, &mut f, &mut out)?;
        return Ok(out);
    }
    if !root.0.iter().any(|(k, _)| k == "doc") {
        return Err(DocError::Json("the root has no 'doc'".into()));
    }
    out.push(b'{');
    for (i, (k, v)) in root.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_key(&mut out, k);
        if k == "doc" {
            let doc: RawObject = serde_json::from_str(v.get()).map_err(json_err)?;
            json_object_items(&doc, 1, false, items, &mut f, &mut out)?;
        } else {
            check_json(v.get().as_bytes(), 1)?;
            out.extend_from_slice(v.get().as_bytes());
        }
    }
    out.push(b'}');
    Ok(out)
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
    f: &mut Option<&mut ItemFn<'_>>,
    out: &mut Vec<u8>,
) -> Result<(), DocError> {
    let wrap = |v: Value| if bjson { Node::Bjson(v) } else { Node::Json(v) };
    out.push(b'{');
    let mut first = true;
    for (k, v) in &obj.0 {
        let raw = v.get();
        let is_item = items.contains(&k.as_str());
        let value: Option<Vec<u8>> = if is_item && f.is_none() {
            // Checked only: an array of items stays an (empty) array, one item goes.
            if raw.trim_start().starts_with('[') {
                let list: Vec<&RawValue> = serde_json::from_str(raw).map_err(json_err)?;
                for it in list {
                    check_json(it.get().as_bytes(), depth + 2)?;
                }
                Some(b"[]".to_vec())
            } else {
                check_json(raw.as_bytes(), depth + 1)?;
                None
            }
        } else if let (true, Some(f)) = (is_item, f.as_deref_mut()) {
            if raw.trim_start().starts_with('[') {
                let list: Vec<&RawValue> = serde_json::from_str(raw).map_err(json_err)?;
                let mut buf = Vec::with_capacity(raw.len() + raw.len() / 8 + 2);
                buf.push(b'[');
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
            check_json(raw.as_bytes(), depth + 1)?;
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
