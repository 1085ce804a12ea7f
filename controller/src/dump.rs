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
//! Large JSON dumps (tens of thousands of objects, hundreds of MB) are the
//! case that matters, so JSON is streamed: the file is read once, in chunks, a
//! byte scanner cuts it into List items, and each item we keep is deserialized
//! straight from its own bytes. Neither the file nor a `serde_json::Value` tree
//! of it is ever held whole; memory is the view itself plus one item.
//!
//! Secret values never leave this module: only kube-system/alibaba-addon-secret
//! is looked at, it is reduced to [`SecretKeys`] at once, and errors about it
//! name keys and positions, never contents.

use crate::limits;
use crate::pure::view::{ClusterView, SecretKeys};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::Resource;
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use terway_hybrid_api::names::{
    ADDON_SECRET_NAME, ADDON_SECRET_NAMESPACE, ENI_CONFIG_NAME, ENI_CONFIG_NAMESPACE, INSTALLATION_NAME,
    KUBERNETES_SERVICE_NAME, KUBERNETES_SERVICE_NAMESPACE, ROLLOUT_NAME,
};

const TERWAY_HYBRID_API: &str = "terway-hybrid.io/v1alpha1";
const TIGERA_API: &str = "operator.tigera.io/v1";
const CALICO_CRD_API: &str = "crd.projectcalico.org/v1";
const BOM: &[u8] = b"\xef\xbb\xbf";

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
    /// Over a size limit (crate::limits).
    #[error("{}: larger than {} (the limit for {what})", path.display(), crate::limits::size(*limit))]
    TooLarge { path: PathBuf, what: &'static str, limit: u64 },
    /// YAML flow collections nested deeper than [`crate::limits::YAML_NESTING_MAX`].
    #[error("{}: {at}: YAML collections nested deeper than {limit} levels (the limit)", file.display())]
    TooDeep { file: PathBuf, at: String, limit: usize },
    /// `file: document 3: items[2]: Node "node-4": <parser message, with line and column>`.
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
    /// Objects the view does not use (other kinds, other ConfigMaps and
    /// Secrets). A document or item that is no object at all is an error.
    pub ignored: BTreeMap<String, usize>,
    /// Objects that replaced an earlier one with the same kind, namespace and
    /// name: the last one read wins.
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
        loader.load_file(&file)?;
        loader.summary.files.push(file);
    }
    if loader.summary.objects() == 0 {
        return Err(DumpError::NoObjects { path: path.to_path_buf() });
    }
    Ok((loader.view, loader.summary))
}

fn too_large(path: &Path, what: &'static str, limit: u64) -> DumpError {
    DumpError::TooLarge { path: path.to_path_buf(), what, limit }
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
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let child = entry.path();
            let file_type = entry.file_type().map_err(|e| read_error(&child, e))?;
            if file_type.is_dir() {
                dirs.push(child);
            } else if (file_type.is_file() || (file_type.is_symlink() && child.is_file()))
                && has_dump_extension(&child)
            {
                // Symlinked files are read; symlinked directories are not
                // followed, so a link cycle cannot loop.
                files.push(child);
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

    /// Inferred apiVersion/kind for the items of a typed list (`NodeList` -> `Node`).
    fn item_type(&self) -> Option<(String, String)> {
        let kind = self.kind.strip_suffix("List").filter(|k| !k.is_empty())?;
        Some((self.api_version.clone(), kind.to_string()))
    }
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

fn is_list_kind(kind: &str) -> bool {
    kind.ends_with("List")
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
    IpPool,
    ServiceCidr,
    CniConfig,
}

impl Slot {
    /// The lists of the view: every object of the kind is kept, whatever its name.
    fn listed(h: &Header) -> Option<Slot> {
        let slot = match (h.api_version.as_str(), h.kind.as_str()) {
            ("v1", "Node") => Slot::Node,
            (TERWAY_HYBRID_API, "NodeNetworkReport") => Slot::Report,
            ("apps/v1", "DaemonSet") => Slot::DaemonSet,
            ("v1", "Pod") => Slot::Pod,
            (CALICO_CRD_API, "IPPool") => Slot::IpPool,
            ("networking.k8s.io/v1", "ServiceCIDR") => Slot::ServiceCidr,
            _ => return None,
        };
        Some(slot)
    }

    fn of(h: &Header) -> Option<Slot> {
        if let Some(slot) = Slot::listed(h) {
            return Some(slot);
        }
        let slot = match (h.api_version.as_str(), h.kind.as_str()) {
            ("v1", "ConfigMap") if h.is(Some(ENI_CONFIG_NAMESPACE), ENI_CONFIG_NAME) => Slot::EniConfig,
            ("v1", "ConfigMap")
                if crate::pure::address_plan::is_cni_config(
                    h.namespace.as_deref().unwrap_or(""),
                    h.name.as_deref().unwrap_or(""),
                ) =>
            {
                Slot::CniConfig
            }
            ("v1", "Secret") if h.is(Some(ADDON_SECRET_NAMESPACE), ADDON_SECRET_NAME) => Slot::AddonSecret,
            ("v1", "Service") if h.is(Some(KUBERNETES_SERVICE_NAMESPACE), KUBERNETES_SERVICE_NAME) => {
                Slot::KubernetesService
            }
            // Cluster-scoped: a stray namespace in a hand-made dump does not matter.
            (TIGERA_API, "Installation") if h.is(None, INSTALLATION_NAME) => Slot::Installation,
            (TERWAY_HYBRID_API, "TerwayRollout") if h.is(None, ROLLOUT_NAME) => Slot::Rollout,
            _ => return None,
        };
        Some(slot)
    }
}

/// A position in a file: 1-based line, 1-based byte column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    const START: Pos = Pos { line: 1, column: 1 };

    /// The position after `bytes`, read from here.
    fn after(self, bytes: &[u8]) -> Pos {
        match bytes.iter().rposition(|&b| b == b'\n') {
            None => Pos { line: self.line, column: self.column + bytes.len() },
            Some(last) => Pos {
                line: self.line + bytes.iter().filter(|&&b| b == b'\n').count(),
                column: bytes.len() - last,
            },
        }
    }

    /// A serde_json position, counted from the start of the slice it was
    /// given (which starts here), made absolute.
    fn plus(self, line: usize, column: usize) -> Pos {
        if line <= 1 {
            Pos { line: self.line, column: self.column + column.saturating_sub(1) }
        } else {
            Pos { line: self.line + line - 1, column }
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

/// Where the reader stands, for errors.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    file: &'a Path,
    /// The whole file when it is YAML, re-read for positioned messages; empty for JSON.
    yaml: &'a [u8],
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

    fn stream_error(&self, e: StreamError) -> DumpError {
        match e {
            StreamError::Io(source) => DumpError::Read { path: self.file.to_path_buf(), source },
            StreamError::TooLarge { what, limit } => too_large(self.file, what, limit),
            StreamError::Syntax { what, at } => {
                self.error(None, format!("{what} at {}", self.locate(at, 1, 1)))
            }
        }
    }

    /// `line L column C` of a position given as serde_json gives it: line and
    /// column within a JSON slice that starts at byte `offset` of the file.
    ///
    /// Lines are found by reading the file again up to `offset`: errors are
    /// rare, and counting lines on the way would slow every load.
    fn locate(&self, offset: usize, line: usize, column: usize) -> String {
        match self.position_of(offset) {
            Some(start) => start.plus(line, column).to_string(),
            None => format!("line {line} column {column} of the value at byte {offset}"),
        }
    }

    fn position_of(&self, offset: usize) -> Option<Pos> {
        let mut reader = File::open(self.file).ok()?;
        let mut buf = vec![0; 64 * 1024];
        let (mut pos, mut left) = (Pos::START, offset);
        while left > 0 {
            let n = read_some(&mut reader, &mut buf).ok()?;
            let chunk = buf.get(..n.min(left)).filter(|c| !c.is_empty())?;
            pos = pos.after(chunk);
            left -= chunk.len();
        }
        Some(pos)
    }
}

/// One object's body, still to be decoded.
enum Body<'a> {
    /// The bytes of a JSON object that starts at byte `at` of the file.
    Json { bytes: &'a [u8], at: usize },
    /// A YAML document (or List item) already read as a tree.
    Yaml(Value),
}

impl Body<'_> {
    fn decode<T: DeserializeOwned>(self, ctx: &Ctx<'_>) -> Result<T, String> {
        match self {
            Body::Json { bytes, at } => serde_json::from_slice(bytes).map_err(|e| json_message(&e, ctx, at)),
            Body::Yaml(value) => serde_json::from_value(value).map_err(|e| {
                // A tree has no positions: read the document again, straight
                // into T, for serde_yaml's message with path, line and column.
                yaml_typed_error::<T>(ctx.yaml, ctx.document, ctx.item).unwrap_or_else(|| e.to_string())
            }),
        }
    }

    /// What the value is, for messages (never its content).
    fn what(&self) -> String {
        let what = match self {
            Body::Json { bytes, .. } => match bytes.first() {
                Some(b'{') => "a mapping",
                Some(b'[') => "a sequence",
                Some(b'"') => "a string",
                Some(b't' | b'f') => "a boolean",
                Some(b'n') => "null",
                _ => "a number",
            },
            Body::Yaml(value) => match value {
                Value::Object(_) => "a mapping",
                Value::Array(_) => "a sequence",
                Value::String(_) => "a string",
                Value::Bool(_) => "a boolean",
                Value::Null => "null",
                Value::Number(_) => "a number",
            },
        };
        what.to_owned()
    }

    /// `line L column C` where the value starts.
    fn position(&self, ctx: &Ctx<'_>) -> String {
        match self {
            Body::Json { at, .. } => ctx.locate(*at, 1, 1),
            Body::Yaml(_) => yaml_location(ctx.yaml, ctx.document, ctx.item)
                .unwrap_or_else(|| "the start of the document".to_owned()),
        }
    }

    /// Syntax check of an object the view does not use, so that a corrupt
    /// file fails whatever it holds.
    fn validate(&self, ctx: &Ctx<'_>) -> Result<(), String> {
        match self {
            Body::Json { bytes, at } => validate_json(bytes, ctx, *at),
            Body::Yaml(_) => Ok(()),
        }
    }

    /// The addon Secret, reduced to key presence. Messages never carry
    /// serde's text, which may quote input.
    fn secret_keys(self, ctx: &Ctx<'_>) -> Result<SecretKeys, String> {
        let value = match self {
            Body::Json { bytes, at } => serde_json::from_slice::<Value>(bytes).map_err(|e| {
                format!(
                    "malformed JSON ({:?} error) at {}",
                    e.classify(),
                    ctx.locate(at, e.line(), e.column())
                )
            })?,
            Body::Yaml(value) => value,
        };
        secret_keys(&value)
    }
}

fn validate_json(bytes: &[u8], ctx: &Ctx<'_>, at: usize) -> Result<(), String> {
    serde_json::from_slice::<IgnoredAny>(bytes).map(drop).map_err(|e| json_message(&e, ctx, at))
}

/// A serde_json message about the JSON at byte `at`, with its position made
/// absolute in the file.
fn json_message(e: &serde_json::Error, ctx: &Ctx<'_>, at: usize) -> String {
    let text = e.to_string();
    if e.line() == 0 {
        return text;
    }
    let bare = text.rfind(" at line ").map_or(text.as_str(), |i| &text[..i]);
    format!("{bare} at {}", ctx.locate(at, e.line(), e.column()))
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

/// The message for a document or List item that is no Kubernetes object.
fn not_an_object(what: &str, at: &str) -> String {
    let found = if what == "a mapping" { "a mapping without a string apiVersion and kind" } else { what };
    format!("expected a Kubernetes object (a mapping with apiVersion and kind), found {found} at {at}")
}

/// `line L column C` of document `document` (1-based) or of one of its
/// items, as serde_yaml sees it.
fn yaml_location(bytes: &[u8], document: usize, item: Option<Item>) -> Option<String> {
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
    let doc = serde_yaml::Deserializer::from_slice(bytes).nth(document.checked_sub(1)?)?;
    let err = match item {
        None => Probe::deserialize(doc).err()?,
        Some(item) if item.root_array => NthItem::<Probe>::new(item.index).deserialize(doc).err()?,
        Some(item) => ItemsField(NthItem::<Probe>::new(item.index)).deserialize(doc).err()?,
    };
    let at = err.location()?;
    Some(format!("line {} column {}", at.line(), at.column()))
}

/// A YAML value as a tree, refusing duplicate keys: serde_yaml would keep
/// the last one silently, where a JSON object read into a type refuses them.
/// The error names the key (never a value); serde_yaml adds its position.
struct StrictValue;

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

/// A List item whose kind must wait for the list's own `kind`, which kubectl
/// prints after `items`.
struct Pending {
    item: Item,
    bytes: Vec<u8>,
    at: usize,
}

#[derive(Default)]
struct Loader {
    view: ClusterView,
    summary: LoadSummary,
    /// (slot, namespace, name) -> index in the view's list, to replace duplicates.
    index: HashMap<(Slot, String, String), usize>,
}

impl Loader {
    /// Reads one file: JSON is streamed, YAML read whole (serde_yaml needs it so).
    fn load_file(&mut self, file: &Path) -> Result<(), DumpError> {
        let mut reader = File::open(file).map_err(|e| read_error(file, e))?;
        // Read just enough to see the first meaningful byte. Only the bytes
        // read last are scanned: rescanning all of `head` for each chunk is
        // quadratic in leading whitespace.
        let mut head = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        let first = loop {
            let n = read_some(&mut reader, &mut chunk).map_err(|e| read_error(file, e))?;
            let scanned = head.len();
            head.extend_from_slice(chunk.get(..n).unwrap_or_default());
            let from = scanned.max(if head.starts_with(BOM) { BOM.len() } else { 0 });
            if let Some(&b) = head.get(from..).unwrap_or_default().iter().find(|b| !b.is_ascii_whitespace()) {
                break Some(b);
            }
            if n == 0 || head.len() as u64 > limits::YAML_DUMP_MAX {
                break None;
            }
        };
        if matches!(first, Some(b'{' | b'[')) {
            let bom = head.starts_with(BOM);
            let mut stream = JsonStream::new(io::Cursor::new(head).chain(reader));
            if bom {
                // Passed, not dropped, so offsets stay the file's.
                stream
                    .fill()
                    .map_err(|e| Ctx { file, yaml: &[], document: 0, item: None }.stream_error(e))?;
                stream.advance(BOM.len());
            }
            self.load_json(file, &mut stream)
        } else {
            let bytes =
                limits::read_capped(io::Cursor::new(head).chain(reader), limits::YAML_DUMP_MAX, file, "")
                    .map_err(|e| match e {
                        limits::ReadError::TooLarge { .. } => too_large(
                            file,
                            "a YAML dump (larger dumps: JSON, which is streamed)",
                            limits::YAML_DUMP_MAX,
                        ),
                        limits::ReadError::Io { source, .. } => read_error(file, source),
                        // Only a read by path has a deadline; this one is open already.
                        limits::ReadError::TimedOut { .. } => {
                            read_error(file, io::ErrorKind::TimedOut.into())
                        }
                    })?;
            if let Some(offset) = limits::yaml_nesting_exceeds(&bytes, limits::YAML_NESTING_MAX) {
                let at = Pos::START.after(bytes.get(..offset).unwrap_or_default()).to_string();
                return Err(DumpError::TooDeep {
                    file: file.to_path_buf(),
                    at,
                    limit: limits::YAML_NESTING_MAX,
                });
            }
            self.load_yaml(file, &bytes)
        }
    }

    fn ignore(&mut self, key: String) {
        *self.summary.ignored.entry(key).or_default() += 1;
    }

    /// Puts one object into the view, or counts it as ignored.
    fn dispatch(&mut self, ctx: &Ctx<'_>, header: Option<Header>, body: Body<'_>) -> Result<(), DumpError> {
        let Some(header) = header else {
            // `42`, a string or `{}` is no cluster: passing it over would
            // make "0 nodes, every check passes" of a wrong file.
            body.validate(ctx).map_err(|m| ctx.error(None, m))?;
            return Err(ctx.error(None, not_an_object(&body.what(), &body.position(ctx))));
        };
        let Some(slot) = Slot::of(&header) else {
            self.ignore(header.summary_key());
            return body.validate(ctx).map_err(|m| ctx.error(Some(&header), m));
        };
        let json = match &body {
            Body::Json { bytes, .. } => Some(*bytes),
            Body::Yaml(_) => None,
        };
        // Named in messages even when the header was read without the name.
        let err = |m: String| ctx.error(Some(&with_name(&header, json)), m);
        let replaced = match slot {
            Slot::Node => {
                let obj = body.decode(ctx).map_err(err)?;
                self.push(slot, obj, |v| &mut v.nodes).map_err(err)?
            }
            Slot::Report => {
                let obj = body.decode(ctx).map_err(err)?;
                self.push(slot, obj, |v| &mut v.reports).map_err(err)?
            }
            Slot::DaemonSet => {
                let obj = body.decode(ctx).map_err(err)?;
                self.push(slot, obj, |v| &mut v.daemon_sets).map_err(err)?
            }
            Slot::Pod => {
                let mut obj = body.decode(ctx).map_err(err)?;
                crate::pure::view::slim_pod(&mut obj);
                self.push(slot, obj, |v| &mut v.pods).map_err(err)?
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
            Slot::IpPool => {
                let mut obj = body.decode(ctx).map_err(err)?;
                crate::pure::view::slim_ip_pool(&mut obj);
                self.push(slot, obj, |v| &mut v.ip_pools).map_err(err)?
            }
            Slot::ServiceCidr => {
                let mut obj = body.decode(ctx).map_err(err)?;
                crate::pure::view::slim_service_cidr(&mut obj);
                self.push(slot, obj, |v| &mut v.service_cidrs).map_err(err)?
            }
            Slot::CniConfig => {
                let mut obj = body.decode(ctx).map_err(err)?;
                crate::pure::view::slim_cni_config(&mut obj);
                self.push(slot, obj, |v| &mut v.cni_configs).map_err(err)?
            }
        };
        let counter = if replaced { &mut self.summary.duplicates } else { &mut self.summary.loaded };
        *counter.entry(header.summary_key()).or_default() += 1;
        Ok(())
    }

    /// Appends to a list of the view, or replaces the earlier object with the
    /// same namespace/name; true if it replaced one.
    fn push<T: Resource>(
        &mut self,
        slot: Slot,
        obj: T,
        list: impl Fn(&mut ClusterView) -> &mut Vec<T>,
    ) -> Result<bool, String> {
        let list = list(&mut self.view);
        // The name is taken from the object: the header may not have read it.
        let meta = obj.meta();
        // Every object the API serves has a name; one without is no cluster's.
        let Some(name) = meta.name.clone().filter(|n| !n.is_empty()) else {
            return Err("metadata.name: missing (every Kubernetes object has one)".to_owned());
        };
        let key = (slot, meta.namespace.clone().unwrap_or_default(), name);
        match self.index.get(&key).and_then(|&i| list.get_mut(i)) {
            Some(existing) => {
                *existing = obj;
                Ok(true)
            }
            None => {
                self.index.insert(key, list.len());
                list.push(obj);
                Ok(false)
            }
        }
    }

    // ---- JSON ----

    fn load_json<R: Read>(&mut self, file: &Path, stream: &mut JsonStream<R>) -> Result<(), DumpError> {
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
    fn json_object<R: Read>(&mut self, ctx: &Ctx<'_>, stream: &mut JsonStream<R>) -> Result<(), DumpError> {
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
    fn json_single(&mut self, ctx: &Ctx<'_>, bytes: &[u8], at: usize) -> Result<(), DumpError> {
        let members = Scanner::new(bytes).object().map_err(|e| ctx.error(None, e.message(bytes, ctx, at)))?;
        let header = json_header(bytes, &members, None);
        let list = header.as_ref().is_some_and(|h| is_list_kind(&h.kind));
        if let Some(items) = members.iter().find(|m| list && m.key_is(bytes, "items")) {
            // An array would have been streamed: this is `items: null` (an
            // empty list) or a mistake.
            return match bytes.get(items.value.0) {
                Some(b'n') => Ok(()),
                _ => Err(ctx.error(header.as_ref(), "items: expected an array".to_string())),
            };
        }
        self.dispatch(ctx, header, Body::Json { bytes, at })
    }

    /// The elements of the array just entered, each an object of its own.
    /// Items that need the list's kind, not known yet, go to `wait`.
    fn json_elements<R: Read>(
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

    fn json_item(
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
        let leading = Scanner::new(bytes).leading_type();
        let typed =
            leading.and_then(|(api_version, kind)| header_from(api_version, kind, None, None, inferred));
        if let Some(header) = typed.filter(|h| Slot::listed(h).is_some()) {
            return self.dispatch(ctx, Some(header), Body::Json { bytes, at });
        }
        let members = Scanner::new(bytes).object().map_err(|e| ctx.error(None, e.message(bytes, ctx, at)))?;
        let header = json_header(bytes, &members, inferred);
        if let (None, Some(wait), Some(item)) = (&header, wait, ctx.item) {
            wait.push(Pending { item, bytes: bytes.to_vec(), at });
            return Ok(());
        }
        // A list inside a list is not something kubectl writes: it is not
        // followed, just counted as an ignored kind.
        self.dispatch(ctx, header, Body::Json { bytes, at })
    }

    // ---- YAML ----

    fn load_yaml(&mut self, file: &Path, bytes: &[u8]) -> Result<(), DumpError> {
        for (i, doc) in serde_yaml::Deserializer::from_slice(bytes).enumerate() {
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
                let body = Body::Yaml(item);
                return Err(ctx.error(None, not_an_object(&body.what(), &body.position(&ctx))));
            };
            let header = map_header(map, inferred.as_ref());
            self.dispatch(&ctx, header, Body::Yaml(item))?;
        }
        Ok(())
    }
}

fn read_some(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
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

/// `header` with the name and namespace read from the JSON object `bytes`
/// when it has none yet.
fn with_name(header: &Header, json: Option<&[u8]>) -> Header {
    let mut header = header.clone();
    if let (None, Some(bytes)) = (&header.name, json) {
        let inferred = (header.api_version.clone(), header.kind.clone());
        let members = Scanner::new(bytes).object().unwrap_or_default();
        if let Some(found) = json_header(bytes, &members, Some(&inferred)) {
            header.namespace = found.namespace;
            header.name = found.name;
        }
    }
    header
}

/// The JSON string at `span` of `bytes`, decoded; None if it is not a string.
fn json_string(bytes: &[u8], (start, end): (usize, usize)) -> Option<String> {
    let raw = bytes.get(start..end)?;
    let inner = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.contains(&b'\\') {
        serde_json::from_slice(raw).ok()
    } else {
        std::str::from_utf8(inner).ok().map(str::to_string)
    }
}

/// A member of a JSON object: spans (start, end) of its key (quotes
/// included) and of its value.
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

impl ScanError {
    /// Said in serde_json's words when serde_json finds the problem too (it
    /// says more: "expected `,` or `}`", "EOF while parsing a string").
    fn message(self, bytes: &[u8], ctx: &Ctx<'_>, at: usize) -> String {
        match validate_json(bytes, ctx, at) {
            Err(serde) => serde,
            Ok(()) => format!("{} at {}", self.what, ctx.locate(at + self.offset, 1, 1)),
        }
    }
}

/// Splits one JSON object held in memory into its members without building
/// anything. It checks structure only (strings closed, brackets matched,
/// `:` and `,` between members); serde_json checks the rest when the object
/// is read.
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
                while !self.peek().is_none_or(is_delimiter) {
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

    /// At `{`: the `apiVersion` and `kind` found among the leading members,
    /// reading no further than the first other member. None if the object
    /// is malformed there.
    fn leading_type(&mut self) -> Option<(Option<String>, Option<String>)> {
        let (mut api_version, mut kind) = (None, None);
        self.pos += 1;
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Some((api_version, kind));
            }
            let key_start = self.pos;
            self.string().ok()?;
            let key = (key_start, self.pos);
            let slot = match self.bytes.get(key.0..key.1)? {
                b"\"apiVersion\"" => &mut api_version,
                b"\"kind\"" => &mut kind,
                _ => return Some((api_version, kind)),
            };
            self.skip_ws();
            if self.peek() != Some(b':') {
                return None;
            }
            self.pos += 1;
            self.skip_ws();
            let value_start = self.pos;
            let value_end = self.value().ok()?;
            *slot = Some(json_string(self.bytes, (value_start, value_end))?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                _ => return Some((api_version, kind)),
            }
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

/// Ends a scalar (number, `true`, ...).
fn is_delimiter(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | b',' | b':' | b'}' | b']' | b'{' | b'[' | b'"')
}

#[derive(Debug)]
enum StreamError {
    Io(io::Error),
    /// The file, or the object being read, is over its limit.
    TooLarge {
        what: &'static str,
        limit: u64,
    },
    /// `at`: a byte offset in the file.
    Syntax {
        what: &'static str,
        at: usize,
    },
}

/// Where the bytes the stream moves past are copied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Capture {
    Off,
    Whole,
    Item,
}

/// A forward-only JSON scanner over a reader: it finds where values end
/// (checking only structure) and copies the bytes it passes into `whole` or
/// `item` while asked to. It tracks line and column for messages.
struct JsonStream<R> {
    reader: R,
    buf: Box<[u8]>,
    /// The unread bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
    eof: bool,
    /// Offset of `buf[pos]` in the file. Lines are not counted here (see
    /// [`Ctx::locate`]).
    offset: usize,
    capture: Capture,
    whole: Vec<u8>,
    item: Vec<u8>,
    stack: Vec<u8>,
}

impl<R: Read> JsonStream<R> {
    const CHUNK: usize = 256 * 1024;

    fn new(reader: R) -> Self {
        JsonStream {
            reader,
            buf: vec![0; Self::CHUNK].into_boxed_slice(),
            pos: 0,
            end: 0,
            eof: false,
            offset: 0,
            capture: Capture::Off,
            whole: Vec::new(),
            item: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// Makes unread bytes available; false at the end of input.
    fn fill(&mut self) -> Result<bool, StreamError> {
        if self.pos < self.end {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        // Checked once per chunk: memory stays bounded by one object, and
        // time by the file's limit, whatever the file holds.
        if self.offset as u64 > limits::JSON_DUMP_MAX {
            return Err(StreamError::TooLarge { what: "a JSON dump", limit: limits::JSON_DUMP_MAX });
        }
        if self.whole.len().max(self.item.len()) > limits::JSON_OBJECT_MAX {
            return Err(StreamError::TooLarge {
                what: "one object of a JSON dump",
                limit: limits::JSON_OBJECT_MAX as u64,
            });
        }
        let n = read_some(&mut self.reader, &mut self.buf).map_err(StreamError::Io)?;
        self.pos = 0;
        self.end = n;
        self.eof = n == 0;
        Ok(n > 0)
    }

    fn window(&self) -> &[u8] {
        self.buf.get(self.pos..self.end).unwrap_or_default()
    }

    /// Moves past `n` unread bytes (at most those available).
    fn advance(&mut self, n: usize) {
        let end = (self.pos + n).min(self.end);
        let Some(passed) = self.buf.get(self.pos..end) else {
            return;
        };
        match self.capture {
            Capture::Off => {}
            Capture::Whole => self.whole.extend_from_slice(passed),
            Capture::Item => self.item.extend_from_slice(passed),
        }
        self.offset += passed.len();
        self.pos = end;
    }

    fn peek(&mut self) -> Result<Option<u8>, StreamError> {
        Ok(if self.fill()? { self.window().first().copied() } else { None })
    }

    fn syntax(&self, what: &'static str) -> StreamError {
        StreamError::Syntax { what, at: self.offset }
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), StreamError> {
        if self.peek()? != Some(byte) {
            return Err(self.syntax(what));
        }
        self.advance(1);
        Ok(())
    }

    fn skip_ws(&mut self) -> Result<(), StreamError> {
        while self.fill()? {
            let window = self.window();
            let found = window.iter().position(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'));
            let n = found.unwrap_or(window.len());
            self.advance(n);
            if found.is_some() {
                break;
            }
        }
        Ok(())
    }

    /// At `"`: moves past the closing quote.
    fn string(&mut self) -> Result<(), StreamError> {
        let start = self.offset;
        let unterminated = StreamError::Syntax { what: "unterminated string", at: start };
        self.advance(1);
        loop {
            if !self.fill()? {
                return Err(unterminated);
            }
            let window = self.window();
            match window.iter().position(|&b| b == b'"' || b == b'\\') {
                None => {
                    let n = window.len();
                    self.advance(n);
                }
                Some(k) => {
                    let quote = window.get(k) == Some(&b'"');
                    self.advance(k + 1);
                    if quote {
                        return Ok(());
                    }
                    // An escape: the escaped byte cannot end the string.
                    if !self.fill()? {
                        return Err(unterminated);
                    }
                    self.advance(1);
                }
            }
        }
    }

    /// Moves past one value.
    fn value(&mut self) -> Result<(), StreamError> {
        match self.peek()? {
            Some(b'"') => self.string(),
            Some(b'{' | b'[') => self.container(),
            Some(_) => self.scalar(),
            None => Err(self.syntax("unexpected end of input")),
        }
    }

    fn scalar(&mut self) -> Result<(), StreamError> {
        let start = self.offset;
        let mut any = false;
        while self.fill()? {
            let window = self.window();
            let found = window.iter().position(|&b| is_delimiter(b));
            let n = found.unwrap_or(window.len());
            any |= n > 0;
            self.advance(n);
            if found.is_some() {
                break;
            }
        }
        if any {
            Ok(())
        } else {
            Err(StreamError::Syntax { what: "expected a value", at: start })
        }
    }

    fn container(&mut self) -> Result<(), StreamError> {
        self.stack.clear();
        loop {
            if !self.fill()? {
                return Err(self.syntax("unexpected end of input"));
            }
            let window = self.window();
            let Some(k) = window.iter().position(|&b| matches!(b, b'"' | b'{' | b'}' | b'[' | b']')) else {
                let n = window.len();
                self.advance(n);
                continue;
            };
            let b = window.get(k).copied().unwrap_or_default();
            self.advance(k);
            match b {
                b'"' => self.string()?,
                b'{' => {
                    self.stack.push(b'}');
                    self.advance(1);
                }
                b'[' => {
                    self.stack.push(b']');
                    self.advance(1);
                }
                _ => {
                    if self.stack.pop() != Some(b) {
                        return Err(self.syntax("mismatched bracket"));
                    }
                    self.advance(1);
                    if self.stack.is_empty() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use proptest::prelude::*;
    use std::io::Write;
    use terway_hybrid_api::names::{ACCESS_KEY_ID, ACCESS_KEY_SECRET};
    use terway_hybrid_api::{NodeNetworkReport, Scenario, TerwayRollout};

    /// Stands for an AccessKey secret: it must never show up outside the loader.
    const SECRET: &str = "LTAI5tQpZ8rSecretValue";

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/dump-loader").join(name)
    }

    fn names<T: Resource>(list: &[T]) -> Vec<&str> {
        list.iter().map(|o| o.meta().name.as_deref().unwrap_or("")).collect()
    }

    fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    fn error_of(path: &Path) -> String {
        match load(path) {
            Ok(view) => panic!("{} loaded: {view:?}", path.display()),
            Err(e) => e.to_string(),
        }
    }

    /// A file named `name` holding `text`, in a fresh directory.
    fn temp_file(name: &str, text: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        fs::File::create(&path).unwrap().write_all(text).unwrap();
        (dir, path)
    }

    fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn api_versions_match_the_types() {
        assert_eq!(NodeNetworkReport::api_version(&()), TERWAY_HYBRID_API);
        assert_eq!(TerwayRollout::api_version(&()), TERWAY_HYBRID_API);
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(SECRET.as_bytes()).len() % 4, 0);
    }

    #[test]
    fn multi_document_yaml_fills_every_part_of_the_view() {
        let path = fixture("multi-doc.yaml");
        let (view, summary) = load_with_summary(&path).unwrap();
        assert_eq!(names(&view.nodes), ["node-a"]);
        assert_eq!(names(&view.daemon_sets), ["calico-node"]);
        assert_eq!(names(&view.pods), ["calico-node-abcde"]);
        let taint = &view.nodes[0].spec.as_ref().unwrap().taints.as_ref().unwrap()[0];
        assert_eq!(taint.effect, "NoSchedule");
        let eni = view.eni_config.as_ref().unwrap();
        assert!(eni.data.as_ref().unwrap()["eni_conf"].contains("vsw-1"));
        let service = view.kubernetes_service.as_ref().unwrap();
        assert_eq!(service.spec.as_ref().unwrap().cluster_ip.as_deref(), Some("192.168.0.1"));
        let installation = view.installation.as_ref().unwrap();
        assert_eq!(installation.data["spec"]["calicoNetwork"]["bgp"], "Enabled");
        assert_eq!(view.rollout.as_ref().unwrap().spec.max_unavailable, IntOrString::Int(2));
        assert!(view.reports.is_empty() && view.addon_secret.is_none());
        assert_eq!(
            summary.loaded,
            counts(&[
                ("apps/v1 DaemonSet", 1),
                ("operator.tigera.io/v1 Installation", 1),
                ("terway-hybrid.io/v1alpha1 TerwayRollout", 1),
                ("v1 ConfigMap", 1),
                ("v1 Node", 1),
                ("v1 Pod", 1),
                ("v1 Service", 1),
            ])
        );
        // Other ConfigMaps and Services, and kinds the view has no place for.
        assert_eq!(
            summary.ignored,
            counts(&[("apps/v1 Deployment", 1), ("v1 ConfigMap", 1), ("v1 Service", 1)])
        );
        assert!(summary.duplicates.is_empty());
        assert_eq!(summary.files, [path]);
        assert_eq!(summary.objects(), 10);
    }

    #[test]
    fn kubectl_json_list_is_read_item_by_item() {
        let (view, summary) = load_with_summary(&fixture("kubectl-list.json")).unwrap();
        assert_eq!(names(&view.nodes), ["node-b"]);
        assert_eq!(names(&view.reports), ["node-b"]);
        assert_eq!(view.reports[0].status.as_ref().unwrap().scenario, Scenario::Bgp);
        assert_eq!(names(&view.pods), ["terway-hybrid-agent-x1"]);
        let secret = view.addon_secret.as_ref().unwrap();
        assert!(secret.non_empty(ACCESS_KEY_ID));
        assert!(!secret.non_empty(ACCESS_KEY_SECRET));
        assert_eq!(secret.keys.len(), 2);
        // The other Secret is not even parsed: its data is not base64.
        assert_eq!(summary.ignored, counts(&[("v1 ConfigMap", 1), ("v1 Secret", 1)]));
    }

    #[test]
    fn items_of_a_typed_list_take_the_list_kind() {
        let (view, summary) = load_with_summary(&fixture("nodelist-typed.json")).unwrap();
        assert_eq!(names(&view.nodes), ["node-c", "node-d"]);
        let info = view.nodes[0].status.as_ref().unwrap().node_info.as_ref().unwrap();
        assert_eq!(info.kernel_version, "4.19.91-26.al7.x86_64");
        assert_eq!(summary.loaded, counts(&[("v1 Node", 2)]));
    }

    #[test]
    fn items_wait_for_a_list_kind_printed_after_them() {
        let view = load(&fixture("podlist-kind-last.json")).unwrap();
        // The item with its own kind is read at once, the other one at the end.
        assert_eq!(names(&view.pods), ["calico-node-p2", "calico-node-p1"]);
    }

    #[test]
    fn typed_list_items_in_yaml_take_the_list_kind_too() {
        let text = "apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: p1, namespace: ns}\n  spec: {containers: [{name: c}]}\n";
        let (_dir, path) = temp_file("pods.yaml", text.as_bytes());
        assert_eq!(names(&load(&path).unwrap().pods), ["p1"]);
    }

    #[test]
    fn directory_is_read_recursively_in_path_order_skipping_hidden_and_other_files() {
        let root = fixture("tree");
        let (view, summary) = load_with_summary(&root).unwrap();
        assert_eq!(
            summary.files,
            [root.join("nodes.yaml"), root.join("sub/deeper/node-again.yml"), root.join("sub/pods.json")]
        );
        // node-1 read twice: the later file wins, in the first one's place.
        assert_eq!(names(&view.nodes), ["node-1", "node-2"]);
        assert_eq!(view.nodes[0].metadata.labels.as_ref().unwrap()["version"], "second");
        assert_eq!(names(&view.pods), ["p1", "p2"]);
        assert_eq!(summary.loaded, counts(&[("v1 Node", 2), ("v1 Pod", 2)]));
        assert_eq!(summary.duplicates, counts(&[("v1 Node", 1)]));
    }

    #[test]
    fn duplicate_singletons_keep_the_last_one() {
        let cm = |v: &str| {
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: eni-config, namespace: kube-system}}\ndata: {{v: '{v}'}}\n")
        };
        let text = format!("{}---\n{}", cm("1"), cm("2"));
        let (_dir, path) = temp_file("eni.yaml", text.as_bytes());
        let (view, summary) = load_with_summary(&path).unwrap();
        assert_eq!(view.eni_config.unwrap().data.unwrap()["v"], "2");
        assert_eq!(summary.duplicates, counts(&[("v1 ConfigMap", 1)]));
    }

    #[test]
    fn a_file_given_explicitly_is_read_whatever_its_extension() {
        assert_eq!(names(&load(&fixture("node.txt")).unwrap().nodes), ["from-a-txt-file"]);
    }

    #[test]
    fn json_documents_arrays_and_byte_order_mark() {
        let text = concat!(
            "\u{feff}[{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {\"name\": \"n1\"}}]\n",
            "{\"kind\": \"Node\", \"apiVersion\": \"v1\", \"metadata\": {\"name\": \"n2\"}}\n",
            "{\"kind\": \"List\", \"apiVersion\": \"v1\", \"items\": null}\n",
        );
        let (_dir, path) = temp_file("mixed.json", text.as_bytes());
        let (view, summary) = load_with_summary(&path).unwrap();
        assert_eq!(names(&view.nodes), ["n1", "n2"]);
        assert!(summary.ignored.is_empty());
        // What is no object is an error, at its position.
        for (text, expected) in [
            ("[{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {\"name\": \"n1\"}},\n 5]", "document 1: [1]: expected a Kubernetes object (a mapping with apiVersion and kind), found a number at line 2 column 2"),
            ("{\"kind\": \"List\", \"items\": [\"x\"]}", "document 1: items[0]: expected a Kubernetes object (a mapping with apiVersion and kind), found a string at line 1 column 28"),
            ("\n\n  {\"no\": \"kind\"}", "document 1: expected a Kubernetes object (a mapping with apiVersion and kind), found a mapping without a string apiVersion and kind at line 3 column 3"),
            ("{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {}}", "document 1: Node: metadata.name: missing (every Kubernetes object has one)"),
        ] {
            let (_dir, path) = temp_file("odd.json", text.as_bytes());
            assert_eq!(error_of(&path), format!("{}: {expected}", path.display()), "{text}");
        }
        // Positions count the mark as the file's bytes.
        let bad = "\u{feff}{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {\"name\": 7}}";
        let (_dir, path) = temp_file("bad.json", bad.as_bytes());
        let message = error_of(&path);
        assert!(
            message.ends_with(
                "document 1: Node: invalid type: integer `7`, expected a string at line 1 column 62"
            ),
            "{message}"
        );
    }

    #[test]
    fn yaml_documents_that_are_not_objects_are_errors() {
        let found = "expected a Kubernetes object (a mapping with apiVersion and kind), found";
        for (text, expected) in [
            ("42\n".to_owned(), format!("document 1: {found} a number at line 1 column 1")),
            ("just a string\n".to_owned(), format!("document 1: {found} a string at line 1 column 1")),
            (
                "{}\n".to_owned(),
                format!(
                    "document 1: {found} a mapping without a string apiVersion and kind at line 1 column 1"
                ),
            ),
            (
                "# c\n---\n- apiVersion: v1\n  kind: Node\n  metadata: {name: n1}\n- 3\n".to_owned(),
                format!("document 1: [1]: {found} a number at line 6 column 3"),
            ),
            (
                "apiVersion: v1\nkind: List\nitems:\n- true\n".to_owned(),
                format!("document 1: items[0]: {found} a boolean at line 4 column 3"),
            ),
            (
                "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\nfoo: bar\n".to_owned(),
                format!(
                    "document 2: {found} a mapping without a string apiVersion and kind at line 5 column 1"
                ),
            ),
            (
                "apiVersion: v1\nkind: Node\nmetadata:\n  labels: {a: b}\n".to_owned(),
                "document 1: Node: metadata.name: missing (every Kubernetes object has one)".to_owned(),
            ),
        ] {
            let (_dir, path) = temp_file("odd.yaml", text.as_bytes());
            assert_eq!(error_of(&path), format!("{}: {expected}", path.display()), "{text}");
        }
    }

    #[test]
    fn duplicate_yaml_keys_are_errors_naming_the_key_and_its_position() {
        let text = "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels:\n    a: x\n    a: y\n";
        let (_dir, path) = temp_file("dup.yaml", text.as_bytes());
        let message = error_of(&path);
        assert!(
            message.ends_with("document 1: metadata.labels: duplicate key \"a\" at line 6 column 5"),
            "{message}"
        );
    }

    #[test]
    fn malformed_yaml_document_names_file_and_document() {
        let path = fixture("bad-doc.yaml");
        let message = error_of(&path);
        let expected = format!(
            "{}: document 3: did not find expected ',' or '}}' at line 16 column 5, while parsing a flow mapping at line 15 column 11",
            path.display()
        );
        assert_eq!(message, expected);
        match load(&path) {
            Err(DumpError::Parse { file, location, .. }) => {
                assert_eq!(file, path);
                assert_eq!(location, Location { document: 3, item: None, object: None });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn yaml_type_error_names_object_field_path_and_line() {
        let path = fixture("bad-type.yaml");
        let expected = format!(
            "{}: document 2: Node \"node-4\": spec.taints[0].effect: invalid type: map, expected a string at line 14 column 7",
            path.display()
        );
        assert_eq!(error_of(&path), expected);
    }

    #[test]
    fn yaml_list_item_error_names_the_item() {
        let path = fixture("bad-list-item.yaml");
        let expected = format!(
            "{}: document 1: items[1]: Node \"node-1\": spec.podCIDRs: invalid type: string \"not-a-list\", expected a sequence at line 12 column 15",
            path.display()
        );
        assert_eq!(error_of(&path), expected);
    }

    #[test]
    fn json_list_item_error_names_the_item_and_its_line_in_the_file() {
        let path = fixture("bad-item.json");
        let expected = format!(
            "{}: document 1: items[2]: Node \"node-2\": invalid type: integer `42`, expected a string at line 27 column 36",
            path.display()
        );
        assert_eq!(error_of(&path), expected);
        let path = fixture("bad-syntax-item.json");
        let expected =
            format!("{}: document 1: items[1]: Node: expected `:` at line 16 column 32", path.display());
        assert_eq!(error_of(&path), expected);
    }

    #[test]
    fn structural_json_errors_are_located() {
        let path = fixture("truncated.json");
        let expected =
            format!("{}: document 1: items[0]: unterminated string at line 1 column 90", path.display());
        assert_eq!(error_of(&path), expected);
        let cases = [
            ("{\"a\": [1, 2}", "document 1: mismatched bracket at line 1 column 12"),
            (
                "{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [{\"kind\": \"A\", \"apiVersion\": \"v1\"}, {\"kind\": \"A\", \"apiVersion\": \"v1\"}\n{}]}",
                "document 1: items[1]: expected `,` or `]` at line 2 column 1",
            ),
            ("{\"kind\": \"A\", \"apiVersion\": \"v1\"}\n]", "document 2: expected a JSON object or array at line 2 column 1"),
            ("{\"a\" 1}", "document 1: expected `:` at line 1 column 6"),
            (
                "{\"apiVersion\": \"v1\", \"items\": [], \"kind\": \"Node\"}",
                "document 1: a top-level `items` array belongs to a List, but this object is a Node",
            ),
            (
                "{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": 3}",
                "document 1: List: items: expected an array",
            ),
            (
                "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"data\": {\"a\": tru}}",
                "document 1: ConfigMap: expected ident at line 1 column 60",
            ),
        ];
        for (text, expected) in cases {
            let (_dir, path) = temp_file("x.json", text.as_bytes());
            let message = error_of(&path);
            assert_eq!(message, format!("{}: {expected}", path.display()), "{text}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        // Skipped without recursion where the type has no such field...
        let json = format!("{{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {{\"name\": \"n\"}}, \"spec\": {{\"a\": {deep}}}}}");
        let (_dir, path) = temp_file("deep.json", json.as_bytes());
        assert_eq!(load(&path).unwrap().nodes.len(), 1);
        // ... and refused where it would be built.
        let json = format!(
            "{{\"apiVersion\": \"operator.tigera.io/v1\", \"kind\": \"Installation\", \"metadata\": {{\"name\": \"default\"}}, \"spec\": {deep}}}"
        );
        let (_dir, path) = temp_file("deep.json", json.as_bytes());
        let message = error_of(&path);
        assert!(
            message.ends_with(
                "document 1: Installation \"default\": recursion limit exceeded at line 1 column 232"
            ),
            "{message}"
        );
        // YAML is refused before libyaml (quadratic in the nesting) sees it,
        // at the bracket one level too deep.
        for depth in [101, 100_000] {
            let yaml =
                format!("apiVersion: v1\nkind: Node\nspec: {}{}\n", "[".repeat(depth), "]".repeat(depth));
            let (_dir, path) = temp_file("deep.yaml", yaml.as_bytes());
            let message = error_of(&path);
            let expected = ": line 3 column 107: YAML collections nested deeper than 100 levels (the limit)";
            assert_eq!(message, format!("{}{expected}", path.display()));
        }
    }

    #[test]
    fn missing_path_is_named() {
        let path = fixture("no-such-dump");
        assert!(matches!(load(&path), Err(DumpError::NotFound { .. })));
        assert_eq!(error_of(&path), format!("{}: no such file or directory", path.display()));
    }

    #[test]
    fn no_objects_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let expected = format!("no Kubernetes objects found in {}", dir.path().display());
        assert_eq!(error_of(dir.path()), expected);
        // Only hidden and non-dump files, or empty documents: still nothing.
        fs::write(dir.path().join(".hidden.yaml"), "apiVersion: v1\nkind: Node\nmetadata: {name: n}\n")
            .unwrap();
        fs::write(dir.path().join("notes.txt"), "apiVersion: v1\nkind: Node\nmetadata: {name: n}\n").unwrap();
        fs::write(dir.path().join("empty.yaml"), "---\n# nothing\n---\n").unwrap();
        fs::write(dir.path().join("empty.json"), "  \n").unwrap();
        fs::write(
            dir.path().join("list.json"),
            "{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": []}",
        )
        .unwrap();
        assert_eq!(error_of(dir.path()), expected);
        let (_file_dir, empty) = temp_file("empty.yaml", b"");
        assert_eq!(error_of(&empty), format!("no Kubernetes objects found in {}", empty.display()));
    }

    fn addon_secret_yaml(data: &str) -> String {
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: alibaba-addon-secret\n  namespace: kube-system\ntype: Opaque\n{data}")
    }

    fn addon_secret_json(data: &str) -> String {
        format!("{{\"apiVersion\": \"v1\", \"items\": [{{\"apiVersion\": \"v1\", \"data\": {data}, \"kind\": \"Secret\", \"metadata\": {{\"name\": \"alibaba-addon-secret\", \"namespace\": \"kube-system\"}}}}], \"kind\": \"List\"}}")
    }

    #[test]
    fn secret_with_base64_values_is_reduced_to_key_presence() {
        let encoded = base64(SECRET.as_bytes());
        let data = format!("data:\n  access-key-id: {encoded}\n  access-key-secret: \"\"\n  extra: null\nstringData:\n  note: x\n");
        let (_dir, path) = temp_file("secret.yaml", addon_secret_yaml(&data).as_bytes());
        let (view, summary) = load_with_summary(&path).unwrap();
        let keys = view.addon_secret.as_ref().unwrap();
        let expected =
            [("access-key-id", true), ("access-key-secret", false), ("extra", false), ("note", true)];
        assert_eq!(keys.keys, expected.iter().map(|(k, v)| (k.to_string(), *v)).collect());
        for shown in [format!("{view:?}"), format!("{summary:?}")] {
            assert!(!shown.contains(SECRET) && !shown.contains(&encoded), "{shown}");
        }
        // The same through JSON, with redacted values as `terway-hybrid dump` writes them.
        let data = format!("{{\"access-key-id\": \"{encoded}\", \"access-key-secret\": \"<redacted:30>\", \"x\": \"<redacted:000>\"}}");
        let (_dir, path) = temp_file("secret.json", addon_secret_json(&data).as_bytes());
        let view = load(&path).unwrap();
        let keys = view.addon_secret.as_ref().unwrap();
        assert!(keys.non_empty(ACCESS_KEY_ID) && keys.non_empty(ACCESS_KEY_SECRET) && !keys.non_empty("x"));
        assert!(!format!("{view:?}").contains(&encoded));
    }

    #[test]
    fn secret_values_never_appear_in_errors() {
        let encoded = base64(SECRET.as_bytes());
        let yaml = [
            format!("data:\n  access-key-id: {SECRET}!\n"),
            format!("data:\n  access-key-id: [{encoded}]\n"),
            format!("data: [{encoded}]\n"),
            format!("data:\n  access-key-id: \"{encoded}\n"),
            format!("data:\n  access-key-id: {encoded}\n  access-key-id: {SECRET}\n"),
            format!("stringData:\n  access-key-id: {{k: {SECRET}}}\n"),
        ];
        let json = [
            format!("{{\"access-key-id\": \"{encoded}\" \"{SECRET}\"}}"),
            format!("{{\"access-key-id\": \"{encoded}\",}}"),
            format!("{{\"access-key-id\": \"{SECRET}\\q\"}}"),
            format!("{{\"access-key-id\": \"{encoded}\"]"),
            format!("{{\"access-key-id\": {{\"{SECRET}\": 1}}}}"),
            format!("\"{SECRET}\""),
        ];
        let files = yaml
            .iter()
            .map(|d| ("s.yaml", addon_secret_yaml(d)))
            .chain(json.iter().map(|d| ("s.json", addon_secret_json(d))))
            .chain(json.iter().map(|d| {
                let single = format!("{{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {{\"name\": \"alibaba-addon-secret\", \"namespace\": \"kube-system\"}}, \"data\": {d}}}");
                ("single.json", single)
            }));
        for (name, text) in files {
            let (_dir, path) = temp_file(name, text.as_bytes());
            let err = load(&path).expect_err(&text);
            let shown = vec![err.to_string(), format!("{err:?}")];
            for shown in shown {
                assert!(!shown.contains(SECRET) && !shown.contains(&encoded), "{text}\n=> {shown}");
            }
        }
    }

    /// Whatever the bytes, a load returns (no panic, no hang) with one of
    /// two outcomes: objects, all counted, from exactly this file; or an
    /// error that names the file (exit 2 with the file, as the contract says).
    fn load_bytes(name: &str, bytes: &[u8]) {
        let (_dir, path) = temp_file(name, bytes);
        match load_with_summary(&path) {
            Ok((view, summary)) => {
                assert_eq!(summary.files, std::slice::from_ref(&path));
                assert!(summary.objects() > 0, "a load without objects is an error");
                let kept = view.nodes.len() + view.reports.len() + view.daemon_sets.len() + view.pods.len();
                assert!(kept <= summary.objects());
                // Every object the view keeps has a name.
                assert!(view.nodes.iter().all(|n| n.metadata.name.as_deref().is_some_and(|n| !n.is_empty())));
            }
            Err(e) => {
                let message = e.to_string();
                assert!(message.contains(&path.display().to_string()), "{message}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            load_bytes("x.json", &bytes);
        }

        #[test]
        fn json_like_text_never_panics(text in "[{]?[ \n{}\\[\\]\",:a-z0-9\\\\.-]{0,300}") {
            load_bytes("x.json", text.as_bytes());
        }

        #[test]
        fn yaml_like_text_never_panics(text in "[ \n:\\-a-z{}\\[\\]\"'#&*!|>]{0,300}") {
            load_bytes("x.yaml", text.as_bytes());
        }

        #[test]
        fn corrupted_dumps_never_panic(cut in 0usize..4000, at in 0usize..4000, byte in any::<u8>()) {
            for name in ["kubectl-list.json", "multi-doc.yaml", "nodelist-typed.json"] {
                let mut bytes = fs::read(fixture(name)).unwrap();
                if let Some(b) = bytes.get_mut(at) {
                    *b = byte;
                }
                bytes.truncate(cut);
                load_bytes(name, &bytes);
            }
        }
    }
}
