//! A borrowed JSON tree of one wire message, for validating it without copying it.
//!
//! [`crate::validate`] looks at every field of every message. Parsing into
//! `serde_json::Value` allocated a `String` for every key and string value and hashed
//! every key into an index map: most of a parse worker's time. [`Val`] borrows strings
//! from the input (an escaped string is the only copy), and an [`Obj`] is a small
//! vector searched by a one-word tag, which is faster for the 10–20 fields of an event.
//! It behaves like `serde_json::Map` with `preserve_order` (keys in first-seen order, a
//! repeated key keeps its place and takes the last value, removal swaps the last entry
//! in), so validation gives the same answers, field names and orders as before.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
#[cfg(test)]
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// One JSON value whose strings borrow from the parsed text where they can.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
    Null,
    Bool(bool),
    Num(Number),
    Str(Cow<'a, str>),
    Arr(Vec<Val<'a>>),
    Obj(Obj<'a>),
}

/// A JSON object: entries in first-seen order, each key once.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Obj<'a> {
    entries: Vec<Entry<'a>>,
    /// One bit per key tag seen (a Bloom filter): a new key whose bit is clear cannot be
    /// a repeat, so the common case never scans.
    seen: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry<'a> {
    tag: u32,
    key: Cow<'a, str>,
    val: Val<'a>,
}

/// Length, first and last byte: tells nearly all of an event's keys apart in one compare.
fn tag(k: &str) -> u32 {
    let b = k.as_bytes();
    match b {
        [] => 0,
        [first, .., last] => ((b.len() as u32) << 16) | (u32::from(*first) << 8) | u32::from(*last),
        [only] => (1 << 16) | (u32::from(*only) << 8) | u32::from(*only),
    }
}

fn bit(tag: u32) -> u64 {
    1u64 << (tag.wrapping_mul(0x9E37_79B1) >> 26)
}

impl<'a> Obj<'a> {
    fn with_capacity(n: usize) -> Self {
        Obj {
            entries: Vec::with_capacity(n),
            seen: 0,
        }
    }

    fn position(&self, t: u32, k: &str) -> Option<usize> {
        if self.seen & bit(t) == 0 {
            return None;
        }
        self.entries.iter().position(|e| e.tag == t && e.key == k)
    }

    /// Sets `key` to `val`; a key already present keeps its place (last value wins).
    pub(crate) fn insert(&mut self, key: Cow<'a, str>, val: Val<'a>) {
        let t = tag(&key);
        match self.position(t, &key) {
            Some(i) => self.entries[i].val = val,
            None => {
                self.seen |= bit(t);
                self.entries.push(Entry { tag: t, key, val });
            }
        }
    }

    /// Adds `key` only if it is absent (`Map::entry(k).or_insert(v)`).
    pub(crate) fn insert_if_absent(&mut self, key: Cow<'a, str>, val: Val<'a>) {
        let t = tag(&key);
        if self.position(t, &key).is_none() {
            self.seen |= bit(t);
            self.entries.push(Entry { tag: t, key, val });
        }
    }

    /// The value of `k`, if present.
    pub(crate) fn get(&self, k: &str) -> Option<&Val<'a>> {
        self.position(tag(k), k).map(|i| &self.entries[i].val)
    }

    /// Removes `k` by swapping the last entry into its place, as `serde_json::Map::remove`
    /// does with `preserve_order`.
    pub(crate) fn remove(&mut self, k: &str) -> Option<Val<'a>> {
        let i = self.position(tag(k), k)?;
        Some(self.entries.swap_remove(i).val)
    }

    /// Keys and values in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Val<'a>)> {
        self.entries.iter().map(|e| (e.key.as_ref(), &e.val))
    }

    /// Keys and values in order, by value.
    pub(crate) fn into_entries(self) -> impl Iterator<Item = (Cow<'a, str>, Val<'a>)> {
        self.entries.into_iter().map(|e| (e.key, e.val))
    }
}

impl Val<'_> {
    /// An owned `serde_json::Value` of the same content (tests compare against serde_json).
    #[cfg(test)]
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Num(n) => Value::Number(n.clone()),
            Val::Str(s) => Value::String(s.to_string()),
            Val::Arr(items) => Value::Array(items.iter().map(Val::to_value).collect()),
            Val::Obj(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }

    /// "a string", "an object", … for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Val::Null => "null",
            Val::Bool(_) => "a boolean",
            Val::Num(_) => "a number",
            Val::Str(_) => "a string",
            Val::Arr(_) => "an array",
            Val::Obj(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Val<'de>, E> {
        Ok(Val::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Val<'de>, E> {
        Ok(Val::Num(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Val<'de>, E> {
        Ok(Val::Num(n.into()))
    }
    fn visit_f64<E>(self, x: f64) -> Result<Val<'de>, E> {
        Ok(Number::from_f64(x).map_or(Val::Null, Val::Num))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(s)))
    }
    fn visit_unit<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_none<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Val<'de>, D::Error> {
        Deserialize::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Val::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        let mut o = Obj::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(Key(k)) = map.next_key()? {
            let v = map.next_value()?;
            o.insert(k, v);
        }
        Ok(Val::Obj(o))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Val<'_> {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn same_tree_as_serde_json_value() {
        let text = r#"{"a":1,"b":[true,null,-2,2.5,"x\"y"],"c":{"d":"é","e":{}},"a":"again","f\u0041":18446744073709551615}"#;
        let ours = parse(text).to_value();
        let theirs: Value = serde_json::from_str(text).unwrap();
        assert_eq!(ours, theirs);
        // Key order too: "a" keeps its first place with its last value.
        let keys: Vec<String> = ours.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["a", "b", "c", "fA"]);
        assert_eq!(ours["a"], "again");
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let Val::Obj(o) = parse(r#"{"k":"plain","e":"tab\t"}"#) else {
            panic!("an object")
        };
        assert!(matches!(o.get("k"), Some(Val::Str(Cow::Borrowed("plain")))));
        assert!(matches!(o.get("e"), Some(Val::Str(Cow::Owned(_)))));
    }

    #[test]
    fn remove_swaps_like_serde_json_map() {
        let text = r#"{"a":1,"b":2,"c":3,"d":4}"#;
        let Val::Obj(mut o) = parse(text) else {
            panic!("an object")
        };
        let mut m: Map<String, Value> = serde_json::from_str(text).unwrap();
        assert_eq!(o.remove("b").map(|v| v.to_value()), m.remove("b"));
        let ours: Vec<&str> = o.iter().map(|(k, _)| k).collect();
        let theirs: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(ours, theirs);
        assert_eq!(o.remove("zz"), None);
    }

    #[test]
    fn tags_collide_without_confusing_keys() {
        // Same length, first and last byte: told apart by the full compare.
        let Val::Obj(o) = parse(r#"{"abxd":1,"acyd":2}"#) else {
            panic!("an object")
        };
        assert_eq!(o.get("abxd"), Some(&Val::Num(1.into())));
        assert_eq!(o.get("acyd"), Some(&Val::Num(2.into())));
        assert_eq!(o.get("azzd"), None);
    }
}
