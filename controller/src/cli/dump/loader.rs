//! The loader: one file at a time, each object put into its place in the view.

use super::files::{read_error, read_some, too_large};
use super::json::with_name;
use super::kinds::{Header, Slot, BOM};
use super::position::{json_message, not_an_object, validate_json, Ctx, Pos};
use super::scan::JsonStream;
use super::secrets::secret_keys;
use super::yaml::{yaml_location, yaml_typed_error};
use super::{DumpError, LoadSummary};
use crate::cli::limits;
use crate::pure::pod::SlimPod;
use crate::pure::view::{ClusterView, SecretKeys};
use k8s_openapi::api::core::v1::Node;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use terway_hybrid_api::NodeNetworkReport;

/// One object's body, still to be decoded.
pub(super) enum Body<'a> {
    /// The bytes of a JSON object that starts at byte `at` of the file.
    Json { bytes: &'a [u8], at: usize },
    /// A YAML document (or List item) already read as a tree.
    Yaml(Value),
}

impl Body<'_> {
    pub(super) fn decode<T: DeserializeOwned>(self, ctx: &Ctx<'_>) -> Result<T, String> {
        match self {
            Body::Json { bytes, at } => serde_json::from_slice(bytes).map_err(|e| json_message(&e, ctx, at)),
            Body::Yaml(value) => serde_json::from_value(value).map_err(|e| {
                // A tree has no positions: read the document again, straight
                // into T, for yaml_serde's message with path, line and column.
                yaml_typed_error::<T>(ctx.yaml, ctx.document, ctx.item).unwrap_or_else(|| e.to_string())
            }),
        }
    }

    /// What the value is, for messages (never its content).
    pub(super) fn what(&self) -> String {
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
    pub(super) fn position(&self, ctx: &Ctx<'_>) -> String {
        match self {
            Body::Json { at, .. } => ctx.locate(*at, 1, 1),
            Body::Yaml(_) => yaml_location(ctx.yaml, ctx.document, ctx.item)
                .unwrap_or_else(|| "the start of the document".to_owned()),
        }
    }

    /// Syntax check of an object the view does not use, so that a corrupt
    /// file fails whatever it holds.
    pub(super) fn validate(&self, ctx: &Ctx<'_>) -> Result<(), String> {
        match self {
            Body::Json { bytes, at } => validate_json(bytes, ctx, *at),
            Body::Yaml(_) => Ok(()),
        }
    }

    /// The addon Secret, reduced to key presence. Messages never carry
    /// serde's text, which may quote input.
    pub(super) fn secret_keys(self, ctx: &Ctx<'_>) -> Result<SecretKeys, String> {
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

#[derive(Default)]
pub(super) struct Loader {
    pub(super) view: ClusterView,
    pub(super) summary: LoadSummary,
    /// (slot, namespace, name) -> index in the view's list, to replace duplicates.
    pub(super) index: HashMap<(Slot, String, String), usize>,
}

impl Loader {
    /// Reads one file: JSON is streamed, YAML read whole (yaml_serde needs it so).
    pub(super) fn load_file(&mut self, file: &Path) -> Result<(), DumpError> {
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

    pub(super) fn ignore(&mut self, key: String) {
        *self.summary.ignored.entry(key).or_default() += 1;
    }

    /// Puts one object into the view, or counts it as ignored.
    pub(super) fn dispatch(
        &mut self,
        ctx: &Ctx<'_>,
        header: Option<Header>,
        body: Body<'_>,
    ) -> Result<(), DumpError> {
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
                let obj: Node = body.decode(ctx).map_err(err)?;
                self.push(slot, obj, |v| &mut v.nodes).map_err(err)?
            }
            Slot::Report => {
                let obj: NodeNetworkReport = body.decode(ctx).map_err(err)?;
                self.push(slot, obj, |v| &mut v.reports).map_err(err)?
            }
            Slot::DaemonSet => {
                let obj = body.decode(ctx).map_err(err)?;
                self.push(slot, obj, |v| &mut v.daemon_sets).map_err(err)?
            }
            Slot::Pod => {
                let mut obj: SlimPod = body.decode(ctx).map_err(err)?;
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
    /// same namespace/name; true if it replaced one. The list holds `T` or,
    /// for the per-node kinds, `Arc<T>`.
    pub(super) fn push<T: Resource, S: From<T>>(
        &mut self,
        slot: Slot,
        obj: T,
        list: impl Fn(&mut ClusterView) -> &mut Vec<S>,
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
                *existing = obj.into();
                Ok(true)
            }
            None => {
                self.index.insert(key, list.len());
                list.push(obj.into());
                Ok(false)
            }
        }
    }
}
