//! JSON dumps, streamed: a List's items are read one at a time.

use super::kinds::{header_from, is_list_kind, Header, Slot};
use super::loader::{Body, Loader};
use super::position::json_message;
use super::position::{not_an_object, validate_json, Ctx, Item};
use super::scan::{Capture, JsonStream};
use super::DumpError;
use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::fmt;
use std::io::Read;
use std::path::Path;

/// A List item whose kind must wait for the list's own `kind`, which kubectl
/// prints after `items`.
pub(super) struct Pending {
    pub(super) item: Item,
    pub(super) bytes: Vec<u8>,
    pub(super) at: usize,
}

impl Loader {
    pub(super) fn load_json<R: Read>(
        &mut self,
        file: &Path,
        stream: &mut JsonStream<R>,
    ) -> Result<(), DumpError> {
        let mut ctx = Ctx { file, yaml: &[], document: 0, item: None };
        loop {
            let serr = |e| ctx.stream_error(e);
            stream.skip_ws().map_err(serr)?;
            let Some(first) = stream.peek().map_err(serr)? else {
                return Ok(());
            };
            ctx.document += 1;
            match first {
                b'{' => self.json_object(&ctx, stream)?,
                b'[' => {
                    stream.advance(1);
                    self.json_elements(&ctx, stream, true, None, None)?;
                }
                _ => {
                    let at = ctx.locate(stream.offset, 1, 1);
                    return Err(ctx.error(None, format!("expected a JSON object or array at {at}")));
                }
            }
        }
    }

    /// A top-level JSON object: a List (its items streamed one by one) or a
    /// single object (read whole).
    pub(super) fn json_object<R: Read>(
        &mut self,
        ctx: &Ctx<'_>,
        stream: &mut JsonStream<R>,
    ) -> Result<(), DumpError> {
        let serr = |e| ctx.stream_error(e);
        let at = stream.offset;
        stream.whole.clear();
        stream.capture = Capture::Whole;
        stream.advance(1);
        let mut api_version = None;
        let mut kind: Option<String> = None;
        let mut streamed = false;
        let mut pending = Vec::new();
        stream.skip_ws().map_err(serr)?;
        let mut more = stream.peek().map_err(serr)? != Some(b'}');
        if !more {
            stream.advance(1);
        }
        while more {
            stream.skip_ws().map_err(serr)?;
            if stream.peek().map_err(serr)? != Some(b'"') {
                return Err(serr(stream.syntax("expected a key")));
            }
            let key_start = stream.whole.len();
            stream.string().map_err(serr)?;
            let key = json_string(&stream.whole, (key_start, stream.whole.len()));
            stream.skip_ws().map_err(serr)?;
            stream.expect(b':', "expected `:`").map_err(serr)?;
            stream.skip_ws().map_err(serr)?;
            // `items` of a List: kubectl prints it before `kind`, so a kind
            // not yet seen counts as a List.
            let items = key.as_deref() == Some("items")
                && !streamed
                && stream.peek().map_err(serr)? == Some(b'[')
                && kind.as_deref().is_none_or(is_list_kind);
            if items {
                stream.capture = Capture::Off;
                stream.advance(1);
                let list = header_from(api_version.clone(), kind.clone(), None, None, None);
                let inferred = list.as_ref().and_then(Header::item_type);
                let wait = if list.is_some() { None } else { Some(&mut pending) };
                self.json_elements(ctx, stream, false, inferred.as_ref(), wait)?;
                streamed = true;
                stream.capture = Capture::Whole;
            } else {
                let value_start = stream.whole.len();
                stream.value().map_err(serr)?;
                let span = (value_start, stream.whole.len());
                match key.as_deref() {
                    Some("apiVersion") => api_version = json_string(&stream.whole, span),
                    Some("kind") => kind = json_string(&stream.whole, span),
                    _ => {}
                }
            }
            stream.skip_ws().map_err(serr)?;
            match stream.peek().map_err(serr)? {
                Some(b',') => stream.advance(1),
                Some(b'}') => {
                    stream.advance(1);
                    more = false;
                }
                _ => return Err(serr(stream.syntax("expected `,` or `}`"))),
            }
        }
        stream.capture = Capture::Off;
        if streamed {
            if let Some(k) = kind.as_deref().filter(|k| !is_list_kind(k)) {
                return Err(ctx.error(
                    None,
                    format!("a top-level `items` array belongs to a List, but this object is a {k}"),
                ));
            }
            let list = header_from(api_version, kind, None, None, None);
            let inferred = list.as_ref().and_then(Header::item_type);
            for p in pending {
                let ctx = Ctx { item: Some(p.item), ..*ctx };
                self.json_item(&ctx, &p.bytes, p.at, inferred.as_ref(), None)?;
            }
            return Ok(());
        }
        let whole = std::mem::take(&mut stream.whole);
        let result = self.json_single(ctx, &whole, at);
        stream.whole = whole; // keeps the allocation for the next document
        result
    }

    /// A top-level object that is not a List with an `items` array.
    pub(super) fn json_single(&mut self, ctx: &Ctx<'_>, bytes: &[u8], at: usize) -> Result<(), DumpError> {
        let members =
            Members::read(bytes, None).map_err(|(h, e)| ctx.error(h.as_ref(), json_message(&e, ctx, at)))?;
        let header = members.header(None);
        let list = header.as_ref().is_some_and(|h| is_list_kind(&h.kind));
        if let Some(items) = members.items.filter(|_| list) {
            // An array would have been streamed: this is `items: null` (an
            // empty list) or a mistake.
            return match items.get() {
                "null" => Ok(()),
                _ => Err(ctx.error(header.as_ref(), "items: expected an array".to_string())),
            };
        }
        self.dispatch(ctx, header, Body::Json { bytes, at })
    }

    /// The elements of the array just entered, each an object of its own.
    /// Items that need the list's kind, not known yet, go to `wait`.
    pub(super) fn json_elements<R: Read>(
        &mut self,
        ctx: &Ctx<'_>,
        stream: &mut JsonStream<R>,
        root_array: bool,
        inferred: Option<&(String, String)>,
        mut wait: Option<&mut Vec<Pending>>,
    ) -> Result<(), DumpError> {
        let serr = |e| ctx.stream_error(e);
        stream.skip_ws().map_err(serr)?;
        if stream.peek().map_err(serr)? == Some(b']') {
            stream.advance(1);
            return Ok(());
        }
        let mut index = 0;
        loop {
            let ctx = Ctx { item: Some(Item { index, root_array }), ..*ctx };
            stream.skip_ws().map_err(|e| ctx.stream_error(e))?;
            let at = stream.offset;
            stream.item.clear();
            stream.capture = Capture::Item;
            let scanned = stream.value();
            stream.capture = Capture::Off;
            scanned.map_err(|e| ctx.stream_error(e))?;
            let bytes = std::mem::take(&mut stream.item);
            let result = self.json_item(&ctx, &bytes, at, inferred, wait.as_deref_mut());
            stream.item = bytes; // keeps the allocation for the next item
            result?;
            stream.skip_ws().map_err(|e| ctx.stream_error(e))?;
            match stream.peek().map_err(|e| ctx.stream_error(e))? {
                Some(b',') => stream.advance(1),
                Some(b']') => {
                    stream.advance(1);
                    return Ok(());
                }
                _ => return Err(ctx.stream_error(stream.syntax("expected `,` or `]`"))),
            }
            index += 1;
        }
    }

    pub(super) fn json_item(
        &mut self,
        ctx: &Ctx<'_>,
        bytes: &[u8],
        at: usize,
        inferred: Option<&(String, String)>,
        wait: Option<&mut Vec<Pending>>,
    ) -> Result<(), DumpError> {
        if bytes.first() != Some(&b'{') {
            validate_json(bytes, ctx, at).map_err(|m| ctx.error(None, m))?;
            let body = Body::Json { bytes, at };
            return Err(ctx.error(None, not_an_object(&body.what(), &body.position(ctx))));
        }
        // The common case, and the one that matters for speed: an object of a
        // listed kind whose type comes first (kubectl and the API print
        // `apiVersion` and `kind` first for these) or from the list. It goes
        // to serde_json without scanning its members first.
        let typed = Members::leading_type(bytes)
            .and_then(|(api_version, kind)| header_from(api_version, kind, None, None, inferred));
        if let Some(header) = typed.filter(|h| Slot::listed(h).is_some()) {
            return self.dispatch(ctx, Some(header), Body::Json { bytes, at });
        }
        let members = Members::read(bytes, inferred)
            .map_err(|(h, e)| ctx.error(h.as_ref(), json_message(&e, ctx, at)))?;
        let header = members.header(inferred);
        if let (None, Some(wait), Some(item)) = (&header, wait, ctx.item) {
            wait.push(Pending { item, bytes: bytes.to_vec(), at });
            return Ok(());
        }
        // A list inside a list is not something kubectl writes: it is not
        // followed, just counted as an ignored kind.
        self.dispatch(ctx, header, Body::Json { bytes, at })
    }
}

/// The members of a JSON object the loader reads before its body, as
/// raw JSON: the first of each key. One serde_json pass that builds nothing
/// else (the rest is skipped) and checks the whole object.
#[derive(Default)]
struct Members<'a> {
    api_version: Option<&'a RawValue>,
    kind: Option<&'a RawValue>,
    metadata: Option<&'a RawValue>,
    items: Option<&'a RawValue>,
    /// Read only the leading `apiVersion` and `kind`: stop at another member.
    leading: bool,
    /// Stopped there.
    stopped: bool,
}

impl<'a> Members<'a> {
    /// The members, or what to name the object by (from the members read
    /// before the error) and the error.
    fn read(
        bytes: &'a [u8],
        inferred: Option<&(String, String)>,
    ) -> Result<Self, (Option<Header>, serde_json::Error)> {
        match Self::read_partly(bytes) {
            (members, Ok(())) => Ok(members),
            (members, Err(e)) => Err((members.header(inferred), e)),
        }
    }

    /// At the start of an object: the `apiVersion` and `kind` among its
    /// leading members, when they are strings, reading no further than the
    /// first other member; None if the object is malformed there.
    ///
    /// This is what keeps the load fast: kubectl and the API print
    /// `apiVersion` and `kind` first, so a Pod or a Node goes to its type
    /// without a pass over its members first. Such a pass (serde_json over
    /// all 40,003 items of the 10,000-node dump, docs/benchmarks.md) costs
    /// another 0.48 s.
    fn leading_type(bytes: &'a [u8]) -> Option<(Option<String>, Option<String>)> {
        let (members, read) = Self::read_with(bytes, true);
        if read.is_err() && !members.stopped {
            return None;
        }
        // Present but not a string: left to the full read.
        let text = |raw: Option<&RawValue>| match raw {
            None => Some(None),
            Some(r) => json_string(r.get().as_bytes(), (0, r.get().len())).map(Some),
        };
        Some((text(members.api_version)?, text(members.kind)?))
    }

    /// The members found, even before a syntax error, so that an error later
    /// in the object can still name it.
    fn read_partly(bytes: &'a [u8]) -> (Self, Result<(), serde_json::Error>) {
        Self::read_with(bytes, false)
    }

    fn read_with(bytes: &'a [u8], leading: bool) -> (Self, Result<(), serde_json::Error>) {
        let mut members = Members { leading, ..Members::default() };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let read = MembersSeed(&mut members).deserialize(&mut de).and_then(|()| de.end());
        (members, read)
    }

    /// apiVersion, kind and (from `metadata`, read only for them) name and
    /// namespace; a member that is not a string counts as missing.
    fn header(&self, inferred: Option<&(String, String)>) -> Option<Header> {
        #[derive(Deserialize)]
        struct Meta {
            name: Option<String>,
            namespace: Option<String>,
        }
        let text =
            |raw: Option<&RawValue>| raw.and_then(|r| json_string(r.get().as_bytes(), (0, r.get().len())));
        let meta = self.metadata.and_then(|m| serde_json::from_str::<Meta>(m.get()).ok());
        let (namespace, name) = meta.map(|m| (m.namespace, m.name)).unwrap_or_default();
        header_from(text(self.api_version), text(self.kind), namespace, name, inferred)
    }
}

struct MembersSeed<'m, 'a>(&'m mut Members<'a>);

impl<'de: 'a, 'a> DeserializeSeed<'de> for MembersSeed<'_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for MembersSeed<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            let members = &mut *self.0;
            let slot = match key {
                Key::ApiVersion => &mut members.api_version,
                Key::Kind => &mut members.kind,
                _ if members.leading => {
                    members.stopped = true;
                    return Err(A::Error::custom("stopped after the leading members"));
                }
                Key::Metadata => &mut members.metadata,
                Key::Items => &mut members.items,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let value = map.next_value::<&RawValue>()?;
            // The leading read keeps the last, as before; the other the first.
            if members.leading || slot.is_none() {
                *slot = Some(value);
            }
        }
        Ok(())
    }
}

/// A member name, matched without allocating.
enum Key {
    ApiVersion,
    Kind,
    Metadata,
    Items,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "apiVersion" => Key::ApiVersion,
                    "kind" => Key::Kind,
                    "metadata" => Key::Metadata,
                    "items" => Key::Items,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// `header` with the name and namespace read from the JSON object `bytes`
/// when it has none yet.
pub(super) fn with_name(header: &Header, json: Option<&[u8]>) -> Header {
    let mut header = header.clone();
    if let (None, Some(bytes)) = (&header.name, json) {
        let inferred = (header.api_version.clone(), header.kind.clone());
        // Named when `metadata` comes before whatever is wrong.
        if let Some(found) = Members::read_partly(bytes).0.header(Some(&inferred)) {
            header.namespace = found.namespace;
            header.name = found.name;
        }
    }
    header
}

/// The JSON string at `span` of `bytes`, decoded; None if it is not a string.
pub(super) fn json_string(bytes: &[u8], (start, end): (usize, usize)) -> Option<String> {
    let raw = bytes.get(start..end)?;
    let inner = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.contains(&b'\\') {
        serde_json::from_slice(raw).ok()
    } else {
        std::str::from_utf8(inner).ok().map(str::to_string)
    }
}
