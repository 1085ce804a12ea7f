//! `terway-hybrid dump [-o FILE]`: everything the preflight reads, from the
//! live cluster, in one file that `--from-dump` loads (a multi-document
//! YAML stream, or a JSON `List`).
//!
//! Nothing secret is copied:
//! - Secret kube-system/alibaba-addon-secret is written as its keys with
//!   `<redacted:N>` (N: the value's length in bytes) in place of each value,
//!   which `--from-dump` reads as "present, non-empty when N > 0";
//! - `eni_conf`'s `access_key`/`access_secret` in ConfigMap eni-config are
//!   replaced the same way;
//! - container `env` values whose names look like credentials (KEY, SECRET,
//!   TOKEN, PASSWORD, CREDENTIAL, PRIVATE) are replaced too;
//! - `managedFields` and the `kubectl.kubernetes.io/last-applied-configuration`
//!   annotation (which repeats an object's whole content) are dropped.

use super::errors::{api_error, Op};
use super::{CliError, Outcome, Term};
use crate::fetch;
use crate::view::ClusterView;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use terway_hybrid_api::names::{ADDON_SECRET_NAME, ADDON_SECRET_NAMESPACE};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ENI_CONF_SECRETS: [&str; 2] = ["access_key", "access_secret"];
const SECRET_WORDS: [&str; 7] = ["KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DumpFormat {
    /// Multi-document YAML.
    Yaml,
    /// One JSON `List`.
    Json,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DumpArgs {
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The file format (default: json for a .json FILE, else yaml).
    #[arg(long, value_enum)]
    pub format: Option<DumpFormat>,
}

/// `<redacted:N>`, as dump.rs reads it back.
pub fn redacted(len: usize) -> String {
    format!("<redacted:{len}>")
}

pub async fn run(client: &Client, args: &DumpArgs, term: &mut Term<'_>) -> Result<Outcome, CliError> {
    let view = fetch::cluster_view(client).await?;
    // The view holds key presence only; the dump says the lengths, read here
    // and reduced at once.
    let api: Api<Secret> = Api::namespaced(client.clone(), ADDON_SECRET_NAMESPACE);
    let op = Op::new("get", "secrets", "secret", Some(ADDON_SECRET_NAMESPACE), Some(ADDON_SECRET_NAME));
    let secret =
        api.get_opt(ADDON_SECRET_NAME).await.map_err(|e| api_error(&op, e))?.map(|s| SecretShape::of(&s));
    let objects = objects(&view, secret.as_ref())?;
    let format = args.format.unwrap_or_else(|| match &args.output {
        Some(p) if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) => DumpFormat::Json,
        _ => DumpFormat::Yaml,
    });
    let text = render(&objects, format)?;
    match &args.output {
        Some(path) if path.as_os_str() != "-" => write_file(path, &text)?,
        _ => term.out.write_all(text.as_bytes())?,
    }
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for o in &objects {
        *kinds.entry(o["kind"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
    }
    let counts: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let whereto = args.output.as_ref().filter(|p| p.as_os_str() != "-").map(|p| p.display().to_string());
    writeln!(
        term.err,
        "dump: {} objects ({}) written to {}; Secret values replaced by their length",
        objects.len(),
        counts.join(", "),
        whereto.as_deref().unwrap_or("stdout")
    )?;
    Ok(Outcome::Ok)
}

fn write_file(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text)
        .map_err(|e| CliError::Output(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))))
}

/// A Secret without its values: its keys, each value's length, its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretShape {
    pub type_: Option<String>,
    pub lengths: BTreeMap<String, usize>,
}

impl SecretShape {
    pub fn of(secret: &Secret) -> Self {
        let mut lengths = BTreeMap::new();
        for (k, v) in secret.data.iter().flatten() {
            lengths.insert(k.clone(), v.0.len());
        }
        for (k, v) in secret.string_data.iter().flatten() {
            lengths.insert(k.clone(), v.len());
        }
        SecretShape { type_: secret.type_.clone(), lengths }
    }

    fn document(&self) -> Value {
        let data: Map<String, Value> =
            self.lengths.iter().map(|(k, n)| (k.clone(), json!(redacted(*n)))).collect();
        let mut doc = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": ADDON_SECRET_NAME, "namespace": ADDON_SECRET_NAMESPACE}, "data": data});
        if let Some(t) = &self.type_ {
            doc["type"] = json!(t);
        }
        doc
    }
}

fn to_value<T: Serialize>(object: &T, api_version: &str, kind: &str) -> Result<Value, CliError> {
    let mut value = serde_json::to_value(object).map_err(|e| CliError::Output(std::io::Error::other(e)))?;
    if value.get("apiVersion").is_none_or(Value::is_null) {
        value["apiVersion"] = json!(api_version);
    }
    if value.get("kind").is_none_or(Value::is_null) {
        value["kind"] = json!(kind);
    }
    clean(&mut value);
    Ok(value)
}

/// Every object of the dump, in a fixed order, cleaned and redacted.
pub fn objects(view: &ClusterView, secret: Option<&SecretShape>) -> Result<Vec<Value>, CliError> {
    let mut out = Vec::new();
    for n in &view.nodes {
        out.push(to_value(n, "v1", "Node")?);
    }
    for r in &view.reports {
        out.push(to_value(r, "terway-hybrid.io/v1alpha1", "NodeNetworkReport")?);
    }
    for d in &view.daemon_sets {
        let mut v = to_value(d, "apps/v1", "DaemonSet")?;
        if let Some(spec) = v.pointer_mut("/spec/template/spec") {
            redact_env(spec);
        }
        out.push(v);
    }
    for p in &view.pods {
        let mut v = to_value(p, "v1", "Pod")?;
        if let Some(spec) = v.get_mut("spec") {
            redact_env(spec);
        }
        out.push(v);
    }
    if let Some(cm) = &view.eni_config {
        let mut v = to_value(cm, "v1", "ConfigMap")?;
        if let Some(conf) = v.pointer_mut("/data/eni_conf") {
            redact_eni_conf(conf);
        }
        out.push(v);
    }
    if let Some(s) = secret {
        out.push(s.document());
    }
    if let Some(svc) = &view.kubernetes_service {
        out.push(to_value(svc, "v1", "Service")?);
    }
    if let Some(inst) = &view.installation {
        out.push(to_value(inst, "operator.tigera.io/v1", "Installation")?);
    }
    if let Some(r) = &view.rollout {
        out.push(to_value(r, "terway-hybrid.io/v1alpha1", "TerwayRollout")?);
    }
    Ok(out)
}

/// Drops managedFields and the last-applied annotation.
fn clean(object: &mut Value) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    meta.remove("managedFields");
    if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.remove("annotations");
        }
    }
}

fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

/// Replaces credential-looking env values of every container of a pod spec.
fn redact_env(pod_spec: &mut Value) {
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(Value::Array(containers)) = pod_spec.get_mut(list) else { continue };
        for container in containers {
            let Some(Value::Array(env)) = container.get_mut("env") else { continue };
            for var in env {
                let secret = var.get("name").and_then(Value::as_str).is_some_and(looks_secret);
                if let (true, Some(Value::String(value))) = (secret, var.get_mut("value")) {
                    *value = redacted(value.len());
                }
            }
        }
    }
}

/// Replaces eni_conf's AccessKey. An eni_conf that is not JSON but names
/// one is replaced whole (it stays unparseable, as the check would say).
fn redact_eni_conf(conf: &mut Value) {
    let Value::String(text) = conf else { return };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut map)) => {
            let mut changed = false;
            for key in ENI_CONF_SECRETS {
                if let Some(Value::String(v)) = map.get_mut(key) {
                    if !v.is_empty() {
                        *v = redacted(v.len());
                        changed = true;
                    }
                }
            }
            if changed {
                *text = serde_json::to_string_pretty(&Value::Object(map)).unwrap_or_default();
            }
        }
        Ok(_) => {}
        Err(_) => {
            if ENI_CONF_SECRETS.iter().any(|k| text.contains(k)) {
                *text = format!("<unparseable eni_conf, redacted:{}>", text.len());
            }
        }
    }
}

/// The dump file's text.
pub fn render(objects: &[Value], format: DumpFormat) -> Result<String, CliError> {
    let err = |e: &dyn std::fmt::Display| CliError::Output(std::io::Error::other(e.to_string()));
    match format {
        DumpFormat::Json => {
            let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": objects});
            Ok(serde_json::to_string_pretty(&list).map_err(|e| err(&e))? + "\n")
        }
        DumpFormat::Yaml => {
            let mut out = String::from(
                "# terway-hybrid dump: what `terway-hybrid preflight` reads; load it with --from-dump.\n\
                 # Secret values are replaced by <redacted:LENGTH>.\n",
            );
            for o in objects {
                out.push_str("---\n");
                out.push_str(&serde_yaml::to_string(o).map_err(|e| err(&e))?);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eni_conf_access_keys_are_replaced() {
        let mut v =
            json!(r#"{"version":"1","access_key":"LTAIabc","access_secret":"s3cr3t","vswitches":{}}"#);
        redact_eni_conf(&mut v);
        let text = v.as_str().unwrap();
        assert!(!text.contains("LTAIabc") && !text.contains("s3cr3t"), "{text}");
        assert!(text.contains("<redacted:7>") && text.contains("<redacted:6>"), "{text}");
        let mut broken = json!(r#"{"access_key": "LTAIabc", "#);
        redact_eni_conf(&mut broken);
        assert!(!broken.as_str().unwrap().contains("LTAIabc"));
    }

    #[test]
    fn credential_env_values_are_replaced() {
        let mut spec = json!({"containers": [{"name": "c", "env": [
            {"name": "ETCD_KEY_FILE_CONTENT", "value": "xyz"},
            {"name": "CALICO_IPV4POOL_IPIP", "value": "Never"}]}]});
        redact_env(&mut spec);
        assert_eq!(spec["containers"][0]["env"][0]["value"], "<redacted:3>");
        assert_eq!(spec["containers"][0]["env"][1]["value"], "Never");
    }
}
