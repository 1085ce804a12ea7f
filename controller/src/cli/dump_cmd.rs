//! `terway-hybrid dump [-o FILE]`: everything the preflight reads, from the
//! live cluster, in one file that `--from-dump` loads (a multi-document
//! YAML stream, or a JSON `List`).
//!
//! Nothing secret can be in it by construction: each object keeps only the
//! fields the preflight reads (an allow-list per kind, [`KEEP`]), not
//! whatever a deny-list of names would miss (env vars, container args, pod
//! annotations, other eni-config keys are simply not copied):
//! - Secret kube-system/alibaba-addon-secret is written as its keys with
//!   `<redacted:N>` (N: the value's length in bytes) in place of each value,
//!   which `--from-dump` reads as "present, non-empty when N > 0";
//! - `eni_conf` keeps the keys the checks read; its `access_key` and
//!   `access_secret` become `<redacted:N>` when strings and an empty value
//!   of their own type otherwise (so the type error the check reports
//!   stays, without the value).

use super::errors::{api_error, Op};
use super::{CliError, Outcome, Term};
use crate::cli::dump::secrets::redacted;
use crate::fetch;
use crate::pure::view::ClusterView;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use terway_hybrid_api::names::{ADDON_SECRET_NAME, ADDON_SECRET_NAMESPACE};

const ENI_CONF_SECRETS: [&str; 2] = ["access_key", "access_secret"];
/// The `eni_conf` keys kept (docs/contracts.md §12), the AccessKey redacted.
const ENI_CONF_KEPT: [&str; 9] = [
    "version",
    "vswitches",
    "security_group",
    "security_groups",
    "service_cidr",
    "vswitch_selection_policy",
    "ip_stack",
    "max_pool_size",
    "min_pool_size",
];

/// Metadata every kind keeps: identity, labels (selectors, roles) and owners.
const METADATA: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.ownerReferences",
    "metadata.generation",
    "metadata.resourceVersion",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
];

/// Per kind, the paths the preflight reads (checks.rs, cluster.rs,
/// scheduling.rs, cni_fix.rs, fix.rs), besides [`METADATA`]. `a[]` walks
/// every element of the array `a`; a path's last field is kept whole.
pub const KEEP: &[(&str, &[&str])] = &[
    (
        "Node",
        &[
            "spec.podCIDR",
            "spec.podCIDRs",
            "spec.taints",
            "spec.unschedulable",
            "status.addresses",
            "status.nodeInfo.kernelVersion",
        ],
    ),
    (
        "DaemonSet",
        &[
            "spec.selector",
            "spec.updateStrategy",
            "spec.template.metadata.labels",
            "spec.template.spec.nodeSelector",
            "spec.template.spec.nodeName",
            "spec.template.spec.affinity",
            "spec.template.spec.tolerations",
            "spec.template.spec.hostNetwork",
            "status.desiredNumberScheduled",
            "status.currentNumberScheduled",
            "status.numberReady",
            "status.numberMisscheduled",
            "status.updatedNumberScheduled",
            "status.numberAvailable",
            "status.numberUnavailable",
            "status.observedGeneration",
        ],
    ),
    (
        "Pod",
        &[
            "spec.nodeName",
            "status.phase",
            "status.podIP",
            "status.conditions[].type",
            "status.conditions[].status",
            "status.containerStatuses[].name",
            "status.containerStatuses[].image",
            "status.containerStatuses[].ready",
            "status.containerStatuses[].state.waiting.reason",
            "status.initContainerStatuses[].name",
            "status.initContainerStatuses[].image",
            "status.initContainerStatuses[].ready",
            "status.initContainerStatuses[].state.waiting.reason",
        ],
    ),
    // data is reduced by eni_config_data and cni_config_data below.
    ("ConfigMap", &["data"]),
    ("Service", &["spec.clusterIP", "spec.clusterIPs"]),
    (
        "Installation",
        &["spec.calicoNodeDaemonSet.spec.template.spec.affinity", "spec.calicoNetwork.ipPools[].cidr"],
    ),
    // address_plan.rs: the pod and Service ranges.
    ("IPPool", &["spec.cidr"]),
    ("ServiceCIDR", &["spec.cidrs"]),
    // Written by our own agents and controller, of our own types.
    ("NodeNetworkReport", &["spec", "status"]),
    ("TerwayRollout", &["spec", "status"]),
];

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

/// The object as JSON, reduced to the fields [`KEEP`] lists for its kind.
fn to_value<T: Serialize>(object: &T, api_version: &str, kind: &str) -> Result<Value, CliError> {
    let mut value = serde_json::to_value(object).map_err(|e| CliError::Output(std::io::Error::other(e)))?;
    if value.get("apiVersion").is_none_or(Value::is_null) {
        value["apiVersion"] = json!(api_version);
    }
    if value.get("kind").is_none_or(Value::is_null) {
        value["kind"] = json!(kind);
    }
    let paths = KEEP.iter().find(|(k, _)| *k == kind).map_or(&[][..], |(_, p)| p);
    let mut kept = Value::Object(Map::new());
    for path in METADATA.iter().chain(paths) {
        let segments: Vec<&str> = path.split('.').collect();
        copy_path(&value, &mut kept, &segments);
    }
    Ok(kept)
}

/// Copies the value at `path` of `src` (when there is one) into `dst`.
fn copy_path(src: &Value, dst: &mut Value, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else {
        *dst = src.clone();
        return;
    };
    let (field, each) = match first.strip_suffix("[]") {
        Some(field) => (field, true),
        None => (*first, false),
    };
    let (Some(from), Value::Object(to)) = (src.get(field).filter(|v| !v.is_null()), dst) else {
        return;
    };
    match (each, from) {
        (false, _) => copy_path(from, to.entry(field).or_insert_with(|| json!({})), rest),
        (true, Value::Array(items)) => {
            let slot = to.entry(field).or_insert_with(|| json!(vec![json!({}); items.len()]));
            if let Value::Array(slots) = slot {
                for (item, out) in items.iter().zip(slots.iter_mut()) {
                    copy_path(item, out, rest);
                }
            }
        }
        (true, _) => {}
    }
}

/// Every object of the dump, in a fixed order, cleaned and redacted.
pub fn objects(view: &ClusterView, secret: Option<&SecretShape>) -> Result<Vec<Value>, CliError> {
    let mut out = Vec::new();
    for n in &view.nodes {
        out.push(to_value(&**n, "v1", "Node")?);
    }
    for r in &view.reports {
        out.push(to_value(&**r, "terway-hybrid.io/v1alpha1", "NodeNetworkReport")?);
    }
    for d in &view.daemon_sets {
        out.push(to_value(d, "apps/v1", "DaemonSet")?);
    }
    for p in &view.pods {
        out.push(to_value(&**p, "v1", "Pod")?);
    }
    if let Some(cm) = &view.eni_config {
        let mut v = to_value(cm, "v1", "ConfigMap")?;
        if let Some(Value::Object(data)) = v.get_mut("data") {
            eni_config_data(data);
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
    for p in &view.ip_pools {
        out.push(to_value(p, "crd.projectcalico.org/v1", "IPPool")?);
    }
    for s in &view.service_cidrs {
        out.push(to_value(s, "networking.k8s.io/v1", "ServiceCIDR")?);
    }
    for cm in &view.cni_configs {
        let mut v = to_value(cm, "v1", "ConfigMap")?;
        if let Some(Value::Object(data)) = v.get_mut("data") {
            cni_config_data(data);
        }
        out.push(v);
    }
    Ok(out)
}

/// Keeps the eni-config keys the checks read, reduced to what they read.
fn eni_config_data(data: &mut Map<String, Value>) {
    data.retain(|k, _| k == "eni_conf" || k == "10-terway.conf");
    if let Some(conf) = data.get_mut("eni_conf") {
        reduce_json_text(conf, |map| {
            map.retain(|k, _| ENI_CONF_KEPT.contains(&k.as_str()) || ENI_CONF_SECRETS.contains(&k.as_str()));
            for key in ENI_CONF_SECRETS {
                if let Some(v) = map.get_mut(key) {
                    *v = redacted_value(v);
                }
            }
        });
    }
    if let Some(conf) = data.get_mut("10-terway.conf") {
        reduce_json_text(conf, |map| map.retain(|k, _| k == "eniip_virtual_type"));
    }
}

/// Keeps the pod-range keys of a CNI ConfigMap (address_plan.rs), and of
/// flannel's `net-conf.json` only its networks.
fn cni_config_data(data: &mut Map<String, Value>) {
    data.retain(|k, _| crate::pure::address_plan::CNI_CONFIG_KEYS.contains(&k.as_str()));
    if let Some(conf) = data.get_mut("net-conf.json") {
        reduce_json_text(conf, |map| map.retain(|k, _| k == "Network" || k == "IPv6Network"));
    }
}

/// A secret value without its content: a string becomes `<redacted:N>`,
/// anything else an empty value of its own type (null stays null).
fn redacted_value(v: &Value) -> Value {
    match v {
        Value::String(s) => json!(redacted(s.len())),
        Value::Number(_) => json!(0),
        Value::Bool(_) => json!(false),
        Value::Array(_) => json!([]),
        Value::Object(_) => json!({}),
        Value::Null => Value::Null,
    }
}

/// Rewrites a string holding a JSON object with `reduce`. Text that is not
/// a JSON object cannot be reduced: only its length is kept (it stays
/// unreadable, as the check says).
fn reduce_json_text(text: &mut Value, reduce: impl FnOnce(&mut Map<String, Value>)) {
    let Value::String(s) = text else {
        *text = Value::Null;
        return;
    };
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(mut map)) => {
            reduce(&mut map);
            *s = serde_json::to_string_pretty(&Value::Object(map)).unwrap_or_default();
        }
        _ => *s = format!("<not a JSON object, redacted:{}>", s.len()),
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
                out.push_str(&yaml_serde::to_string(o).map_err(|e| err(&e))?);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eni_conf_keeps_what_the_checks_read_and_no_secret() {
        let conf = r#"{"version":"1","access_key":"LTAIabc","access_secret":123456789,"vswitches":{"z":["vsw-1"]},"credential_path":"/x/y","other":"s3cr3t"}"#;
        let mut data = Map::new();
        data.insert("eni_conf".into(), json!(conf));
        data.insert("10-terway.conf".into(), json!(r#"{"eniip_virtual_type":"IPVlan","token":"s3cr3t"}"#));
        data.insert("extra".into(), json!("s3cr3t"));
        eni_config_data(&mut data);
        let text = serde_json::to_string(&data).unwrap();
        for gone in ["LTAIabc", "123456789", "s3cr3t", "credential_path", "extra"] {
            assert!(!text.contains(gone), "{gone}: {text}");
        }
        let conf: Value = serde_json::from_str(data["eni_conf"].as_str().unwrap()).unwrap();
        assert_eq!(
            conf,
            json!({"version": "1", "access_key": "<redacted:7>", "access_secret": 0, "vswitches": {"z": ["vsw-1"]}})
        );
        let mut broken = json!(r#"{"access_key": "LTAIabc", "#);
        reduce_json_text(&mut broken, |_| {});
        assert_eq!(broken, json!("<not a JSON object, redacted:26>"));
    }

    #[test]
    fn only_listed_paths_are_copied() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {"a": "s3cr3t"}, "managedFields": [{}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "args": ["--access-key-secret=s3cr3t"],
                "env": [{"name": "ALICLOUD_AK", "value": "s3cr3t"}]}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "message": "s3cr3t"}],
                "containerStatuses": [{"name": "c", "image": "i", "ready": true,
                    "state": {"waiting": {"reason": "ErrImagePull", "message": "s3cr3t"}}}]}});
        let kept = to_value(&pod, "v1", "Pod").unwrap();
        assert_eq!(
            kept,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "c", "image": "i", "ready": true, "state": {"waiting": {"reason": "ErrImagePull"}}}]}})
        );
    }

    /// The address plan survives `dump` then `--from-dump`, in both
    /// formats: the ranges CIDROverlap reads come back, to the word of its
    /// message, and nothing else of the CNI ConfigMaps does.
    #[test]
    fn the_address_plan_round_trips_through_a_dump() {
        use crate::pure::view::slim_cni_config;
        use terway_hybrid_api::CheckName;
        let cidr = |view: &ClusterView| {
            let p = crate::pure::plan::plan(view, k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
            p.checks.into_iter().find(|c| c.name == CheckName::CIDROverlap).expect("CIDROverlap")
        };
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        for example in ["cidr-pass", "cidr-fail"] {
            let mut view = crate::cli::dump::load(&root.join(example)).unwrap();
            // Cilium's ConfigMap too, with a key the check does not read.
            let mut cilium: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
                "metadata": {"namespace": "kube-system", "name": "cilium-config"},
                "data": {"cluster-pool-ipv4-cidr": "10.60.0.0/16 10.61.0.0/16", "custom-secret": "s3cr3t"}}))
            .unwrap();
            slim_cni_config(&mut cilium);
            view.cni_configs.push(cilium);
            let ranges = |view: &ClusterView| {
                let g = crate::pure::address_plan::gather(&crate::pure::cluster::Cluster::new(view));
                let mut all: Vec<String> =
                    g.ranges.iter().map(|r| format!("{} {:?} {}", r.net, r.kind, r.source)).collect();
                all.sort();
                all
            };
            let before = cidr(&view);
            let gathered = ranges(&view);
            assert!(
                gathered.iter().any(|r| r.starts_with("10.61.0.0/16 CniPods(Cilium) ConfigMap")),
                "{gathered:?}"
            );
            assert!(
                gathered.iter().any(|r| r.starts_with("172.16.0.0/12 Vpc NodeNetworkReport")),
                "{gathered:?}"
            );
            for format in [DumpFormat::Yaml, DumpFormat::Json] {
                let text = render(&objects(&view, None).unwrap(), format).unwrap();
                assert!(
                    !text.contains("s3cr3t") && !text.contains("vxlan"),
                    "{example}: only the ranges: {text}"
                );
                let dir = tempfile::tempdir().unwrap();
                let file =
                    dir.path().join(if format == DumpFormat::Json { "dump.json" } else { "dump.yaml" });
                std::fs::write(&file, &text).unwrap();
                let loaded = crate::cli::dump::load(&file).unwrap();
                assert_eq!(loaded.ip_pools.len(), view.ip_pools.len(), "{example} {format:?}");
                assert_eq!(loaded.service_cidrs.len(), 1, "{example} {format:?}");
                assert_eq!(loaded.cni_configs.len(), view.cni_configs.len(), "{example} {format:?}");
                assert_eq!(ranges(&loaded), gathered, "{example} {format:?}");
                assert_eq!(cidr(&loaded), before, "{example} {format:?}");
            }
        }
    }
}
