//! `--from-dump PATH`: Kubernetes objects saved by `kubectl get -o yaml|json`
//! (or `terway-hybrid dump`) read into a [`ClusterView`].
//!
//! PATH is a file (read whatever its extension) or a directory (every
//! `.yaml`/`.yml`/`.json` file below it, recursively, in path order, hidden
//! entries skipped). A file holds one object, a multi-document YAML stream,
//! one or more JSON values, or a `List` / typed `*List` whose items may lack
//! `apiVersion`/`kind` (then the list kind gives them: `NodeList` -> `Node`).
//! The format is told by content: JSON starts with `{` or `[`.
//!
//! Large JSON dumps (tens of thousands of objects) are the common case, so a
//! JSON file is read once into memory, split into objects by a byte scanner,
//! and every object we keep is deserialized straight from its own bytes: no
//! intermediate `serde_json::Value` tree of the whole file.
//!
//! Secret values never leave this module: only kube-system/alibaba-addon-secret
//! is looked at, it is reduced to [`SecretKeys`] at once, and errors about it
//! name keys and positions, never contents.

use crate::view::{
    ClusterView, SecretKeys, ADDON_SECRET_NAME, ADDON_SECRET_NAMESPACE, ENI_CONFIG_NAME, ENI_CONFIG_NAMESPACE,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// Summary key of documents that are not Kubernetes objects (no string
/// `apiVersion`/`kind`, or not a mapping).
pub const NOT_AN_OBJECT: &str = "(not a Kubernetes object)";

const TERWAY_HYBRID_API: &str = "terway-hybrid.io/v1alpha1";
const TIGERA_API: &str = "operator.tigera.io/v1";
/// The singleton custom resources the view reads are all named `default`.
const SINGLETON_NAME: &str = "default";

/// Where in a dump something went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based index of the YAML document or top-level JSON value in the file.
    pub document: usize,
    /// The List item, as a path into the document (`items[3]`, 0-based like
    /// `jq '.items[3]'`), when the object is one.
    pub item: Option<String>,
    /// `Kind "namespace/name"`, when known.
    pub object: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if let Some(item) = &self.item {
            write!(f, ": {item}")?;
        }
        if let Some(object) = &self.object {
            write!(f, ": {object}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("{}: no such file or directory", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: not a regular file or directory", path.display())]
    NotAFile { path: PathBuf },
    #[error("no Kubernetes objects found in {}", path.display())]
    NoObjects { path: PathBuf },
    /// `file: document 3: items[2]: Node "node-4": <parser message with line/column>`.
    #[error("{}: {location}: {message}", file.display())]
    Parse { file: PathBuf, location: Location, message: String },
}

/// What a load read, kept, and passed over. Keys are `"<apiVersion> <kind>"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Every file read, in the order read.
    pub files: Vec<PathBuf>,
    /// Distinct objects now in the view, per kind.
    pub loaded: BTreeMap<String, usize>,
    /// Objects not used by the view (other kinds, other ConfigMaps/Secrets,
    /// non-objects under [`NOT_AN_OBJECT`]).
    pub ignored: BTreeMap<String, usize>,
    /// Objects that replaced an earlier one with the same kind/namespace/name
    /// (the last one read wins).
    pub duplicates: BTreeMap<String, usize>,
}

impl LoadSummary {
    /// Every object seen, duplicates and ignored ones included.
    pub fn objects(&self) -> usize {
        [&self.loaded, &self.ignored, &self.duplicates].iter().flat_map(|m| m.values()).sum()
    }
}

/// Reads a dump file or directory into a [`ClusterView`].
pub fn load(path: &Path) -> Result<ClusterView, DumpError> {
    load_with_summary(path).map(|(view, _)| view)
}

/// [`load`], also saying what was read and what was passed over.
pub fn load_with_summary(path: &Path) -> Result<(ClusterView, LoadSummary), DumpError> {
    let files = collect_files(path)?;
    let mut loader = Loader::default();
    for file in files {
        let bytes = fs::read(&file).map_err(|source| read_error(&file, source))?;
        loader.load_file(&file, &bytes)?;
        loader.summary.files.push(file);
    }
    if loader.summary.objects() == 0 {
        return Err(DumpError::NoObjects { path: path.to_path_buf() });
    }
    Ok((loader.view, loader.summary))
}

fn read_error(path: &Path, source: io::Error) -> DumpError {
    if source.kind() == io::ErrorKind::NotFound {
        DumpError::NotFound { path: path.to_path_buf() }
    } else {
        DumpError::Read { path: path.to_path_buf(), source }
    }
}

/// The files to read: `path` itself, or the dump files below it in path order.
fn collect_files(path: &Path) -> Result<Vec<PathBuf>, DumpError> {
    let meta = fs::metadata(path).map_err(|e| read_error(path, e))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !meta.is_dir() {
        return Err(DumpError::NotAFile { path: path.to_path_buf() });
    }
    let mut files = Vec::new();
    // An explicit stack, so deep trees cannot exhaust the call stack.
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| read_error(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| read_error(&dir, e))?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let child = entry.path();
            let file_type = entry.file_type().map_err(|e| read_error(&child, e))?;
            if file_type.is_dir() {
                dirs.push(child);
            } else if file_type.is_file() || (file_type.is_symlink() && child.is_file()) {
                // Symlinked files are read; symlinked directories are not
                // followed, so a link cycle cannot loop.
                if has_dump_extension(&child) {
                    files.push(child);
                }
            }
        }
    }
    files.sort();
    Ok(files)
}

fn has_dump_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["yaml", "yml", "json"].iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// apiVersion, kind and identity of one object, read before its body.
#[derive(Debug, Clone, Default)]
struct Header {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    name: Option<String>,
}

impl Header {
    fn summary_key(&self) -> String {
        format!("{} {}", self.api_version, self.kind)
    }

    /// `Node "node-4"`, `Pod "kube-system/calico-node-x"`, for messages.
    fn label(&self) -> String {
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => format!("{} \"{ns}/{name}\"", self.kind),
            (None, Some(name)) => format!("{} \"{name}\"", self.kind),
            _ => self.kind.clone(),
        }
    }

    fn is(&self, namespace: Option<&str>, name: &str) -> bool {
        self.name.as_deref() == Some(name) && (namespace.is_none() || self.namespace.as_deref() == namespace)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    Node,
    Report,
    DaemonSet,
    Pod,
    EniConfig,
    AddonSecret,
    KubernetesService,
    Installation,
    Rollout,
}

impl Slot {
    fn of(h: &Header) -> Option<Slot> {
        let slot = match (h.api_version.as_str(), h.kind.as_str()) {
            ("v1", "Node") => Slot::Node,
            (TERWAY_HYBRID_API, "NodeNetworkReport") => Slot::Report,
            ("apps/v1", "DaemonSet") => Slot::DaemonSet,
            ("v1", "Pod") => Slot::Pod,
            ("v1", "ConfigMap") if h.is(Some(ENI_CONFIG_NAMESPACE), ENI_CONFIG_NAME) => Slot::EniConfig,
            ("v1", "Secret") if h.is(Some(ADDON_SECRET_NAMESPACE), ADDON_SECRET_NAME) => Slot::AddonSecret,
            ("v1", "Service") if h.is(Some("default"), "kubernetes") => Slot::KubernetesService,
            // Cluster-scoped: a stray namespace in a hand-made dump does not matter.
            (TIGERA_API, "Installation") if h.is(None, SINGLETON_NAME) => Slot::Installation,
            (TERWAY_HYBRID_API, "TerwayRollout") if h.is(None, SINGLETON_NAME) => Slot::Rollout,
            _ => return None,
        };
        Some(slot)
    }
}

/// Inferred apiVersion/kind for the items of a typed list (`NodeList` -> `Node`).
fn item_type(list: &Header) -> Option<(String, String)> {
    let kind = list.kind.strip_suffix("List").filter(|k| !k.is_empty())?;
    Some((list.api_version.clone(), kind.to_string()))
}

fn is_list_kind(kind: &str) -> bool {
    kind.ends_with("List")
}

/// Where the file being read stands, for errors.
struct Ctx<'a> {
    file: &'a Path,
    /// The whole file, to turn offsets into lines and to re-read YAML for
    /// positioned error messages.
    bytes: &'a [u8],
    document: usize,
    item: Option<Item>,
}

#[derive(Clone, Copy)]
struct Item {
    index: usize,
    /// The document itself is an array rather than a List object.
    root_array: bool,
}

impl Item {
    fn label(self) -> String {
        if self.root_array {
            format!("[{}]", self.index)
        } else {
            format!("items[{}]", self.index)
        }
    }
}

impl Ctx<'_> {
    fn error(&self, header: Option<&Header>, message: String) -> DumpError {
        DumpError::Parse {
            file: self.file.to_path_buf(),
            location: Location {
                document: self.document,
                item: self.item.map(Item::label),
                object: header.map(Header::label),
            },
            message,
        }
    }
}

/// One object's body, still to be decoded.
enum Body<'a> {
    /// Bytes of a JSON object, at `offset` in the file.
    Json { bytes: &'a [u8], offset: usize },
    /// A YAML document (or List item) already read as a tree.
    Yaml(Value),
}

impl Body<'_> {
    fn decode<T: DeserializeOwned>(self, ctx: &Ctx<'_>) -> Result<T, String> {
        match self {
            Body::Json { bytes, offset } => {
                serde_json::from_slice(bytes).map_err(|e| json_message(&e, ctx.bytes, offset))
            }
            Body::Yaml(value) => serde_json::from_value(value).map_err(|e| {
                // A tree has no positions: read the document again, straight
                // into T, for serde_yaml's message with path, line and column.
                yaml_typed_error::<T>(ctx.bytes, ctx.document, ctx.item).unwrap_or_else(|| e.to_string())
            }),
        }
    }

    /// Syntax check of an object the view does not use, so that a corrupt
    /// file fails whatever it holds.
    fn validate(&self, ctx: &Ctx<'_>) -> Result<(), String> {
        match self {
            Body::Json { bytes, offset } => serde_json::from_slice::<IgnoredAny>(bytes)
                .map(drop)
                .map_err(|e| json_message(&e, ctx.bytes, *offset)),
            Body::Yaml(_) => Ok(()),
        }
    }

    /// The addon Secret, reduced to key presence. Messages never carry
    /// serde's text, which may quote input.
    fn secret_keys(self, ctx: &Ctx<'_>) -> Result<SecretKeys, String> {
        let value = match self {
            Body::Json { bytes, offset } => serde_json::from_slice::<Value>(bytes).map_err(|e| {
                let (line, column) = absolute_position(ctx.bytes, offset, e.line(), e.column());
                format!("malformed JSON ({:?} error) at line {line} column {column}", e.classify())
            })?,
            Body::Yaml(value) => value,
        };
        secret_keys(&value)
    }
}

/// A serde_json message with the position made absolute in the file.
fn json_message(e: &serde_json::Error, file: &[u8], offset: usize) -> String {
    let text = e.to_string();
    if e.line() == 0 {
        return text;
    }
    let bare = text.rfind(" at line ").map_or(text.as_str(), |i| &text[..i]);
    let (line, column) = absolute_position(file, offset, e.line(), e.column());
    format!("{bare} at line {line} column {column}")
}

/// serde_json counts lines and columns (1-based) from the start of the slice
/// it was given; turn them into the file's.
fn absolute_position(file: &[u8], offset: usize, line: usize, column: usize) -> (usize, usize) {
    let before = file.get(..offset).unwrap_or(file);
    let base_line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let base_column = 1 + before.iter().rev().take_while(|&&b| b != b'\n').count();
    if line <= 1 {
        (base_line, base_column + column.saturating_sub(1))
    } else {
        (base_line + line - 1, column)
    }
}

/// The typed error serde_yaml gives for document `document` (1-based), or
/// for one of its items; None when that read succeeds after all.
fn yaml_typed_error<T: DeserializeOwned>(
    bytes: &[u8],
    document: usize,
    item: Option<Item>,
) -> Option<String> {
    let doc = serde_yaml::Deserializer::from_slice(bytes).nth(document.checked_sub(1)?)?;
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

/// Deserializes element `index` of a sequence as T, skipping the others.
struct NthItem<T> {
    index: usize,
    marker: PhantomData<T>,
}

impl<T> NthItem<T> {
    fn new(index: usize) -> Self {
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
struct ItemsField<S>(S);

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

/// Reduces a Secret (as a tree) to which keys hold a non-empty value.
///
/// `data` values are base64, or `<redacted:N>` (N bytes) as our own dump
/// writes them; base64 is only checked, never decoded into memory.
fn secret_keys(secret: &Value) -> Result<SecretKeys, String> {
    // Go through SecretKeys::from_secret so the reduction rule stays in one
    // place; the placeholder bytes carry presence only.
    let mut data = BTreeMap::new();
    for (key, value) in string_map(secret, "data")? {
        let non_empty = match value {
            Value::Null => false,
            Value::String(s) => match redacted_len(s) {
                Some(non_empty) => non_empty,
                None => base64_non_empty(s).ok_or_else(|| format!("data.{key}: not valid base64"))?,
            },
            _ => return Err(format!("data.{key}: expected a string")),
        };
        data.insert(key.clone(), ByteString(if non_empty { vec![1] } else { Vec::new() }));
    }
    let mut string_data = BTreeMap::new();
    for (key, value) in string_map(secret, "stringData")? {
        let non_empty = match value {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            _ => return Err(format!("stringData.{key}: expected a string")),
        };
        string_data.insert(key.clone(), if non_empty { "x".to_string() } else { String::new() });
    }
    let placeholder = Secret { data: Some(data), string_data: Some(string_data), ..Secret::default() };
    Ok(SecretKeys::from_secret(&placeholder))
}

fn string_map<'a>(
    secret: &'a Value,
    field: &str,
) -> Result<Box<dyn Iterator<Item = (&'a String, &'a Value)> + 'a>, String> {
    match secret.get(field) {
        None | Some(Value::Null) => Ok(Box::new(std::iter::empty())),
        Some(Value::Object(map)) => Ok(Box::new(map.iter())),
        Some(_) => Err(format!("{field}: expected a map")),
    }
}

/// `<redacted:N>` -> Some(N > 0); anything else -> None.
fn redacted_len(s: &str) -> Option<bool> {
    let digits = s.strip_prefix("<redacted:")?.strip_suffix('>')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.bytes().any(|b| b != b'0'))
}

/// Whether standard base64 (padding optional) decodes to at least one byte;
/// None if it is not base64.
fn base64_non_empty(s: &str) -> Option<bool> {
    let body = s.trim_end_matches('=');
    let padding = s.len() - body.len();
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    if padding > 2 || !body.bytes().all(alphabet) || body.len() % 4 == 1 {
        return None;
    }
    // Padding only ever completes the last group of four.
    let partial_group = s.len() % 4;
    if padding > 0 && partial_group != 0 {
        return None;
    }
    Some(!body.is_empty())
}

#[derive(Default)]
struct Loader {
    view: ClusterView,
    summary: LoadSummary,
    /// (slot, namespace, name) -> index in the view's list, to replace duplicates.
    index: HashMap<(Slot, String, String), usize>,
}

impl Loader {
    fn load_file(&mut self, file: &Path, bytes: &[u8]) -> Result<(), DumpError> {
        let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if matches!(first, Some(b'{' | b'[')) {
            self.load_json(file, bytes)
        } else {
            self.load_yaml(file, bytes)
        }
    }

    fn ignore(&mut self, key: String) {
        *self.summary.ignored.entry(key).or_default() += 1;
    }

    /// Puts one object into the view, or counts it as ignored.
    fn dispatch(&mut self, ctx: &Ctx<'_>, header: Option<Header>, body: Body<'_>) -> Result<(), DumpError> {
        let Some(header) = header else {
            self.ignore(NOT_AN_OBJECT.to_string());
            return body.validate(ctx).map_err(|m| ctx.error(None, m));
        };
        let Some(slot) = Slot::of(&header) else {
            self.ignore(header.summary_key());
            return body.validate(ctx).map_err(|m| ctx.error(Some(&header), m));
        };
        let err = |m: String| ctx.error(Some(&header), m);
        let key = header.summary_key();
        let replaced = match slot {
            Slot::Node => {
                let obj = body.decode(ctx).map_err(err)?;
                self.push(slot, &header, obj, |v| &mut v.nodes)
            }
            Slot::Report => {
                let obj = body.decode(ctx).map_err(err)?;
                self.push(slot, &header, obj, |v| &mut v.reports)
            }
            Slot::DaemonSet => {
                let obj = body.decode(ctx).map_err(err)?;
                self.push(slot, &header, obj, |v| &mut v.daemon_sets)
            }
            Slot::Pod => {
                let obj = body.decode(ctx).map_err(err)?;
                self.push(slot, &header, obj, |v| &mut v.pods)
            }
            Slot::EniConfig => self.view.eni_config.replace(body.decode(ctx).map_err(err)?).is_some(),
            Slot::AddonSecret => {
                self.view.addon_secret.replace(body.secret_keys(ctx).map_err(err)?).is_some()
            }
            Slot::KubernetesService => {
                self.view.kubernetes_service.replace(body.decode(ctx).map_err(err)?).is_some()
            }
            Slot::Installation => self.view.installation.replace(body.decode(ctx).map_err(err)?).is_some(),
            Slot::Rollout => self.view.rollout.replace(body.decode(ctx).map_err(err)?).is_some(),
        };
        let counter = if replaced { &mut self.summary.duplicates } else { &mut self.summary.loaded };
        *counter.entry(key).or_default() += 1;
        Ok(())
    }

    /// Appends to a list of the view, or replaces the earlier object with the
    /// same namespace/name; true if it replaced one.
    fn push<T>(
        &mut self,
        slot: Slot,
        header: &Header,
        obj: T,
        list: impl Fn(&mut ClusterView) -> &mut Vec<T>,
    ) -> bool {
        let list = list(&mut self.view);
        // Nameless objects cannot be told apart: keep them all.
        let Some(name) = &header.name else {
            list.push(obj);
            return false;
        };
        let key = (slot, header.namespace.clone().unwrap_or_default(), name.clone());
        match self.index.get(&key).and_then(|&i| list.get_mut(i)) {
            Some(existing) => {
                *existing = obj;
                true
            }
            None => {
                self.index.insert(key, list.len());
                list.push(obj);
                false
            }
        }
    }

    // ---- JSON ----

    fn load_json(&mut self, file: &Path, bytes: &[u8]) -> Result<(), DumpError> {
        let mut scan = Scanner::new(bytes);
        let mut document = 0;
        loop {
            scan.skip_ws();
            if scan.at_end() {
                return Ok(());
            }
            document += 1;
            let ctx = Ctx { file, bytes, document, item: None };
            let start = scan.pos;
            match scan.peek() {
                Some(b'{') => {
                    let members = scan.object().map_err(|e| scan_error(&ctx, e, start))?;
                    self.json_object(&ctx, start, scan.pos, &members)?;
                }
                Some(b'[') => {
                    let end = scan.value().map_err(|e| scan_error(&ctx, e, start))?;
                    self.json_items(&ctx, start, None, true)?;
                    scan.pos = end;
                }
                _ => {
                    let message = match scan.value() {
                        Ok(_) => "expected a JSON object or array".to_string(),
                        Err(e) => scan_message(&ctx, e, start),
                    };
                    return Err(ctx.error(None, message));
                }
            }
        }
    }

    /// A top-level JSON object: a List, or a single object.
    fn json_object(
        &mut self,
        ctx: &Ctx<'_>,
        start: usize,
        end: usize,
        members: &[Member],
    ) -> Result<(), DumpError> {
        let bytes = ctx.bytes;
        let header = json_header(bytes, members, None);
        if let Some(h) = header.as_ref().filter(|h| is_list_kind(&h.kind)) {
            if let Some(items) = members.iter().find(|m| m.key_is(bytes, "items")) {
                return match bytes.get(items.value.0) {
                    Some(b'[') => self.json_items(ctx, items.value.0, item_type(h), false),
                    Some(b'n') => Ok(()), // items: null, an empty list
                    _ => Err(ctx.error(header.as_ref(), "items: expected an array".to_string())),
                };
            }
        }
        let body = Body::Json { bytes: bytes.get(start..end).unwrap_or_default(), offset: start };
        self.dispatch(ctx, header, body)
    }

    /// The elements of the JSON array at `start`, each an object of its own.
    fn json_items(
        &mut self,
        ctx: &Ctx<'_>,
        start: usize,
        inferred: Option<(String, String)>,
        root_array: bool,
    ) -> Result<(), DumpError> {
        let bytes = ctx.bytes;
        let mut scan = Scanner::new(bytes);
        scan.pos = start + 1;
        let mut index = 0;
        loop {
            let ctx = Ctx { item: Some(Item { index, root_array }), ..*ctx };
            scan.skip_ws();
            if index == 0 && scan.peek() == Some(b']') {
                return Ok(());
            }
            let item_start = scan.pos;
            if scan.peek() == Some(b'{') {
                let members = scan.object().map_err(|e| scan_error(&ctx, e, start))?;
                // A list inside a list is not something kubectl writes: it is
                // not followed, just counted as an ignored kind.
                let header = json_header(bytes, &members, inferred.as_ref());
                let body = Body::Json {
                    bytes: bytes.get(item_start..scan.pos).unwrap_or_default(),
                    offset: item_start,
                };
                self.dispatch(&ctx, header, body)?;
            } else {
                scan.value().map_err(|e| scan_error(&ctx, e, start))?;
                self.ignore(NOT_AN_OBJECT.to_string());
            }
            scan.skip_ws();
            match scan.peek() {
                Some(b',') => scan.pos += 1,
                Some(b']') => return Ok(()),
                _ => {
                    let e = ScanError { offset: scan.pos, what: "expected `,` or `]`" };
                    return Err(scan_error(&ctx, e, start));
                }
            }
            index += 1;
        }
    }

    // ---- YAML ----

    fn load_yaml(&mut self, file: &Path, bytes: &[u8]) -> Result<(), DumpError> {
        for (i, doc) in serde_yaml::Deserializer::from_slice(bytes).enumerate() {
            let ctx = Ctx { file, bytes, document: i + 1, item: None };
            // Stops at the first error: after one, the YAML parser does not move on.
            let value = Value::deserialize(doc).map_err(|e| ctx.error(None, e.to_string()))?;
            match value {
                Value::Null => {} // an empty document
                Value::Array(items) => self.yaml_items(&ctx, items, None, true)?,
                Value::Object(mut map) => {
                    let header = map_header(&map, None);
                    let list = header.as_ref().filter(|h| is_list_kind(&h.kind) && map.contains_key("items"));
                    match list.map(|h| (item_type(h), map.remove("items"))) {
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
                _ => self.ignore(NOT_AN_OBJECT.to_string()),
            }
        }
        Ok(())
    }

    fn yaml_items(
        &mut self,
        ctx: &Ctx<'_>,
        items: Vec<Value>,
        inferred: Option<(String, String)>,
        root_array: bool,
    ) -> Result<(), DumpError> {
        for (index, item) in items.into_iter().enumerate() {
            let ctx = Ctx { item: Some(Item { index, root_array }), ..*ctx };
            let Value::Object(map) = &item else {
                self.ignore(NOT_AN_OBJECT.to_string());
                continue;
            };
            let header = map_header(map, inferred.as_ref());
            self.dispatch(&ctx, header, Body::Yaml(item))?;
        }
        Ok(())
    }
}

fn map_header(map: &serde_json::Map<String, Value>, inferred: Option<&(String, String)>) -> Option<Header> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let meta = map.get("metadata");
    header_from(
        text(map.get("apiVersion")),
        text(map.get("kind")),
        text(meta.and_then(|m| m.get("namespace"))),
        text(meta.and_then(|m| m.get("name"))),
        inferred,
    )
}

fn header_from(
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    inferred: Option<&(String, String)>,
) -> Option<Header> {
    // Items of a typed list have no apiVersion/kind of their own.
    let (api_version, kind) = match (api_version, kind, inferred) {
        (Some(a), Some(k), _) => (a, k),
        (None, None, Some((a, k))) => (a.clone(), k.clone()),
        _ => return None,
    };
    if kind.is_empty() {
        return None;
    }
    Some(Header { api_version, kind, namespace, name })
}

/// Header of a JSON object from its scanned members; only `metadata` is
/// parsed, and only for its name and namespace.
fn json_header(bytes: &[u8], members: &[Member], inferred: Option<&(String, String)>) -> Option<Header> {
    #[derive(Deserialize)]
    struct Meta {
        name: Option<String>,
        namespace: Option<String>,
    }
    let field = |key: &str| members.iter().find(|m| m.key_is(bytes, key)).map(|m| m.value);
    let text = |key: &str| field(key).and_then(|span| json_string(bytes, span));
    let meta = field("metadata")
        .and_then(|(s, e)| bytes.get(s..e))
        .and_then(|b| serde_json::from_slice::<Meta>(b).ok());
    let (namespace, name) = meta.map(|m| (m.namespace, m.name)).unwrap_or_default();
    header_from(text("apiVersion"), text("kind"), namespace, name, inferred)
}

/// A JSON string value at `span`, decoded; None if it is not a string.
fn json_string(bytes: &[u8], (start, end): (usize, usize)) -> Option<String> {
    let raw = bytes.get(start..end)?;
    let inner = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.contains(&b'\\') {
        serde_json::from_slice(raw).ok()
    } else {
        std::str::from_utf8(inner).ok().map(str::to_string)
    }
}

fn scan_error(ctx: &Ctx<'_>, e: ScanError, doc_start: usize) -> DumpError {
    ctx.error(None, scan_message(ctx, e, doc_start))
}

/// A scanner error, said in serde_json's words when serde_json finds the
/// problem too (it says more: "expected `,` or `}`", "EOF while parsing").
fn scan_message(ctx: &Ctx<'_>, e: ScanError, doc_start: usize) -> String {
    let rest = ctx.bytes.get(doc_start..).unwrap_or_default();
    let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<IgnoredAny>();
    if let Some(Err(serde)) = stream.next() {
        return json_message(&serde, ctx.bytes, doc_start);
    }
    let (line, column) = absolute_position(ctx.bytes, e.offset, 1, 1);
    format!("{} at line {line} column {column}", e.what)
}

/// A member of a JSON object: spans (start, end) in the file of its key
/// (quotes included) and of its value.
#[derive(Debug, Clone, Copy)]
struct Member {
    key: (usize, usize),
    value: (usize, usize),
}

impl Member {
    fn key_is(&self, bytes: &[u8], name: &str) -> bool {
        let raw = bytes.get(self.key.0..self.key.1).unwrap_or_default();
        match raw.strip_prefix(b"\"").and_then(|r| r.strip_suffix(b"\"")) {
            Some(inner) if !inner.contains(&b'\\') => inner == name.as_bytes(),
            _ => json_string(bytes, self.key).as_deref() == Some(name),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct ScanError {
    offset: usize,
    what: &'static str,
}

/// Finds the extent of JSON values without building them. It checks
/// structure (strings closed, brackets matched, `:` and `,` in objects it
/// splits); serde_json checks everything else when an object is read.
struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Closers still expected while skipping a container; kept to reuse the allocation.
    stack: Vec<u8>,
}

impl<'a> Scanner<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Scanner { bytes, pos: 0, stack: Vec::new() }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn fail<T>(&self, what: &'static str) -> Result<T, ScanError> {
        Err(ScanError { offset: self.pos, what })
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    /// At `"`: moves past the closing quote.
    fn string(&mut self) -> Result<(), ScanError> {
        let start = self.pos;
        let mut i = self.pos + 1;
        loop {
            let rest = self.bytes.get(i..).unwrap_or_default();
            match rest.iter().position(|&b| b == b'"' || b == b'\\') {
                Some(n) if rest.get(n) == Some(&b'"') => {
                    self.pos = i + n + 1;
                    return Ok(());
                }
                Some(n) => i += n + 2, // an escape: skip the escaped byte
                None => {
                    self.pos = start;
                    return self.fail("unterminated string");
                }
            }
        }
    }

    /// Moves past one value; returns its end.
    fn value(&mut self) -> Result<usize, ScanError> {
        match self.peek() {
            Some(b'"') => self.string()?,
            Some(b'{' | b'[') => self.container()?,
            Some(_) => {
                let start = self.pos;
                while !matches!(
                    self.peek(),
                    None | Some(
                        b' ' | b'\n' | b'\r' | b'\t' | b',' | b':' | b'}' | b']' | b'{' | b'[' | b'"'
                    )
                ) {
                    self.pos += 1;
                }
                if self.pos == start {
                    return self.fail("expected a value");
                }
            }
            None => return self.fail("unexpected end of input"),
        }
        Ok(self.pos)
    }

    fn container(&mut self) -> Result<(), ScanError> {
        self.stack.clear();
        loop {
            let Some(b) = self.peek() else {
                return self.fail("unexpected end of input");
            };
            match b {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'{' => self.stack.push(b'}'),
                b'[' => self.stack.push(b']'),
                b'}' | b']' => {
                    if self.stack.pop() != Some(b) {
                        return self.fail("mismatched bracket");
                    }
                    if self.stack.is_empty() {
                        self.pos += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
    }

    /// At `{`: the members of the object, moving past its `}`.
    fn object(&mut self) -> Result<Vec<Member>, ScanError> {
        let mut members = Vec::new();
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(members);
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return self.fail("expected a key");
            }
            let key_start = self.pos;
            self.string()?;
            let key = (key_start, self.pos);
            self.skip_ws();
            if self.peek() != Some(b':') {
                return self.fail("expected `:`");
            }
            self.pos += 1;
            self.skip_ws();
            let value_start = self.pos;
            let value_end = self.value()?;
            members.push(Member { key, value: (value_start, value_end) });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(members);
                }
                _ => return self.fail("expected `,` or `}`"),
            }
        }
    }
}
