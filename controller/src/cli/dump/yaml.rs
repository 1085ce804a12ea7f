//! YAML dumps: each document read whole, as a tree, and read again for
//! positioned messages.
//!
//! yaml_serde: the YAML project's maintained fork of serde_yaml (deprecated
//! upstream), with its messages and API; every positioned message the tests
//! assert reads the same. Not serde-saphyr (what kube 5 uses), tried on the
//! tests' fixtures: its type errors name no field (`expected string scalar`
//! where the tests assert `spec.taints[0].effect: invalid type: map,
//! expected a string`), nor the flow mapping's start, and its messages quote
//! the input lines around the error by default, where a Secret's values must
//! never show.

use super::kinds::{is_list_kind, map_header};
use super::loader::{Body, Loader};
use super::position::{not_an_object, Ctx, Item};
use super::DumpError;
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

impl Loader {
    pub(super) fn load_yaml(&mut self, file: &Path, bytes: &[u8]) -> Result<(), DumpError> {
        for (i, doc) in yaml_serde::Deserializer::from_slice(bytes).enumerate() {
            let ctx = Ctx { file, yaml: bytes, document: i + 1, item: None };
            // Stops at the first error: after one, the YAML parser does not move on.
            let value = StrictValue.deserialize(doc).map_err(|e| ctx.error(None, e.to_string()))?;
            match value {
                Value::Null => {} // an empty document
                Value::Array(items) => self.yaml_items(&ctx, items, None, true)?,
                Value::Object(mut map) => {
                    let header = map_header(&map, None);
                    let list = header.as_ref().filter(|h| is_list_kind(&h.kind) && map.contains_key("items"));
                    match list.map(|h| (h.item_type(), map.remove("items"))) {
                        Some((inferred, Some(Value::Array(items)))) => {
                            self.yaml_items(&ctx, items, inferred, false)?
                        }
                        Some((_, Some(Value::Null) | None)) => {} // items: null, an empty list
                        Some(_) => {
                            return Err(ctx.error(header.as_ref(), "items: expected a sequence".to_string()))
                        }
                        None => self.dispatch(&ctx, header, Body::Yaml(Value::Object(map)))?,
                    }
                }
                other => {
                    let body = Body::Yaml(other);
                    return Err(ctx.error(None, not_an_object(&body.what(), &body.position(&ctx))));
                }
            }
        }
        Ok(())
    }

    pub(super) fn yaml_items(
        &mut self,
        ctx: &Ctx<'_>,
        items: Vec<Value>,
        inferred: Option<(String, String)>,
        root_array: bool,
    ) -> Result<(), DumpError> {
        for (index, item) in items.into_iter().enumerate() {
            let ctx = Ctx { item: Some(Item { index, root_array }), ..*ctx };
            let Value::Object(map) = &item else {
                let body = Body::Yaml(item);
                return Err(ctx.error(None, not_an_object(&body.what(), &body.position(&ctx))));
            };
            let header = map_header(map, inferred.as_ref());
            self.dispatch(&ctx, header, Body::Yaml(item))?;
        }
        Ok(())
    }
}

/// The typed error yaml_serde gives for document `document` (1-based), or
/// for one of its items; None when that read succeeds after all.
pub(super) fn yaml_typed_error<T: DeserializeOwned>(
    bytes: &[u8],
    document: usize,
    item: Option<Item>,
) -> Option<String> {
    let doc = yaml_serde::Deserializer::from_slice(bytes).nth(document.checked_sub(1)?)?;
    let err = match item {
        None => T::deserialize(doc).err()?,
        Some(item) if item.root_array => NthItem::<T>::new(item.index).deserialize(doc).err()?,
        Some(item) => ItemsField(NthItem::<T>::new(item.index)).deserialize(doc).err()?,
    };
    let text = err.to_string();
    // The location already names the item; keep the path below it.
    let label = item.map(Item::label).unwrap_or_default();
    let rest = text.strip_prefix(label.as_str()).filter(|_| !label.is_empty());
    let rest = rest.and_then(|r| r.strip_prefix('.').or_else(|| r.strip_prefix(": ")));
    Some(rest.map_or(text.clone(), str::to_string))
}

/// `line L column C` of document `document` (1-based) or of one of its
/// items, as yaml_serde sees it.
pub(super) fn yaml_location(bytes: &[u8], document: usize, item: Option<Item>) -> Option<String> {
    /// Fails on whatever it is given, so the error carries the position.
    struct Probe;
    impl<'de> Deserialize<'de> for Probe {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ProbeVisitor)
        }
    }
    struct ProbeVisitor;
    impl Visitor<'_> for ProbeVisitor {
        type Value = Probe;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("nothing")
        }
    }
    let doc = yaml_serde::Deserializer::from_slice(bytes).nth(document.checked_sub(1)?)?;
    let err = match item {
        None => Probe::deserialize(doc).err()?,
        Some(item) if item.root_array => NthItem::<Probe>::new(item.index).deserialize(doc).err()?,
        Some(item) => ItemsField(NthItem::<Probe>::new(item.index)).deserialize(doc).err()?,
    };
    let at = err.location()?;
    Some(format!("line {} column {}", at.line(), at.column()))
}

/// A YAML value as a tree, refusing duplicate keys: yaml_serde would keep
/// the last one silently, where a JSON object read into a type refuses them.
/// The error names the key (never a value); yaml_serde adds its position.
pub(super) struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
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
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let value = map.next_value_seed(StrictValue)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Deserializes element `index` of a sequence as T, skipping the others.
pub(super) struct NthItem<T> {
    pub(super) index: usize,
    pub(super) marker: PhantomData<T>,
}

impl<T> NthItem<T> {
    pub(super) fn new(index: usize) -> Self {
        NthItem { index, marker: PhantomData }
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for NthItem<T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for NthItem<T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let more = if i == self.index {
                seq.next_element::<T>()?.is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }
}

/// The `items` field of a List, read with an inner seed.
pub(super) struct ItemsField<S>(S);

impl<'de, S: DeserializeSeed<'de, Value = ()>> DeserializeSeed<'de> for ItemsField<S> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, S: DeserializeSeed<'de, Value = ()>> Visitor<'de> for ItemsField<S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a List")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seed = Some(self.0);
        while let Some(key) = map.next_key::<String>()? {
            match (key == "items", seed.take()) {
                (true, Some(s)) => map.next_value_seed(s)?,
                (_, s) => {
                    seed = s;
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}
