//! Cluster: a ClusterView with the indexes every check needs, built once per
//! plan: each node's role and report, the on-prem CNI and Terway DaemonSets,
//! the parsed eni-config.

use crate::pure::pod::SlimPod;
use crate::pure::scope::{identity, Scope};
use crate::pure::view::ClusterView;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use terway_hybrid_api::names::{CALICO_NODE, ENI_CONFIG_NAME, ENI_CONFIG_NAMESPACE};
use terway_hybrid_api::{role_of, NodeNetworkReport, Role, TerwayRolloutSpec};

pub struct Cluster<'a> {
    pub view: &'a ClusterView,
    pub spec: TerwayRolloutSpec,
    /// Nodes by name, in name order (so every list the plan makes is sorted).
    pub nodes: BTreeMap<&'a str, NodeInfo<'a>>,
    pub on_prem_cnis: Vec<&'a DaemonSet>,
    pub terway: Option<&'a DaemonSet>,
    pub agent: Option<&'a DaemonSet>,
    /// The probe responder's DaemonSet (docs/contracts.md §7).
    pub responder: Option<&'a DaemonSet>,
    /// `eni_conf` of the eni-config ConfigMap, parsed once: None without
    /// the ConfigMap, Err (what is wrong) when it cannot be read.
    pub eni_conf: Option<Result<EniConf, String>>,
    /// Pods by (owning DaemonSet namespace/name, node name).
    pods: HashMap<(&'a str, &'a str, &'a str), &'a SlimPod>,
}

/// The parts of `eni_conf` the checks read; everything else is Terway's business.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct EniConf {
    #[serde(default)]
    pub vswitches: Option<HashMap<String, Vec<String>>>,
    #[serde(default)]
    pub security_group: Option<String>,
    #[serde(default)]
    pub security_groups: Option<Vec<String>>,
    #[serde(default)]
    pub service_cidr: Option<String>,
    #[serde(default)]
    pub access_key: Option<String>,
    #[serde(default)]
    pub access_secret: Option<String>,
}

/// `eni_conf` read into [`EniConf`]. It may hold an AccessKey, so what is
/// wrong is said by position, field and type, never with a value (serde's
/// messages quote the offending value: a numeric `access_secret` in full).
fn parse_eni_conf(text: &str) -> Result<EniConf, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!("eni_conf is not valid JSON ({}line {} column {})", json_error_kind(&e), e.line(), e.column())
    })?;
    if let Some(problem) = eni_conf_shape(&value) {
        return Err(format!("eni_conf {problem}"));
    }
    serde_json::from_value(value).map_err(|_| "eni_conf has a value of the wrong type".to_owned())
}

/// `syntax error at `, `it ends early at `: serde's category, never its text.
pub fn json_error_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "it ends early at ",
        serde_json::error::Category::Syntax => "syntax error at ",
        _ => "at ",
    }
}

/// The first field of `eni_conf` whose type is not what [`EniConf`] reads.
fn eni_conf_shape(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    fn kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
    let strings = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
    let Value::Object(map) = value else {
        return Some(format!("must be a JSON object, not {}", kind(value)));
    };
    for (field, v) in map.iter().filter(|(_, v)| !v.is_null()) {
        let (ok, expected) = match field.as_str() {
            "security_group" | "service_cidr" | "access_key" | "access_secret" => (v.is_string(), "a string"),
            "security_groups" => (strings(v), "an array of strings"),
            "vswitches" => (
                v.as_object().is_some_and(|zones| zones.values().all(strings)),
                "an object of zone -> array of vSwitch IDs",
            ),
            _ => continue,
        };
        if !ok {
            return Some(format!("{field}: expected {expected}, found {}", kind(v)));
        }
    }
    None
}

pub struct NodeInfo<'a> {
    pub node: &'a Node,
    pub role: Role,
    pub report: Option<&'a NodeNetworkReport>,
}

impl<'a> NodeInfo<'a> {
    pub fn name(&self) -> &'a str {
        self.node.metadata.name.as_deref().unwrap_or("")
    }

    pub fn label(&self, key: &str) -> Option<&'a str> {
        self.node.metadata.labels.as_ref()?.get(key).map(String::as_str)
    }

    /// The report exists and was written for this incarnation of the node
    /// (a node re-created under the same name has a new uid).
    pub fn current_report(&self) -> Option<&'a NodeNetworkReport> {
        let report = self.report?;
        let node_uid = self.node.metadata.uid.as_deref();
        let owner_uid =
            report.metadata.owner_references.as_ref().and_then(|o| o.first()).map(|o| o.uid.as_str());
        match (node_uid, owner_uid) {
            (Some(n), Some(o)) if n != o => None,
            _ => Some(report),
        }
    }

    /// The node's own checks pass (its report says ready).
    pub fn node_checks_pass(&self) -> bool {
        self.current_report().and_then(|r| r.status.as_ref()).is_some_and(|s| s.ready)
    }
}

impl<'a> Cluster<'a> {
    pub fn new(view: &'a ClusterView) -> Self {
        let spec = view.rollout.as_ref().map(|r| r.spec.clone()).unwrap_or_default();
        let reports: HashMap<&str, &NodeNetworkReport> =
            view.reports.iter().filter_map(|r| Some((r.metadata.name.as_deref()?, &**r))).collect();
        let nodes = view
            .nodes
            .iter()
            .filter_map(|node| {
                let name = node.metadata.name.as_deref()?;
                let role = role_of(node, &spec.cloud_node_selector);
                Some((name, NodeInfo { node, role, report: reports.get(name).copied() }))
            })
            .collect();
        let scope = Scope::of(&spec);
        let mut on_prem_cnis: Vec<&DaemonSet> = view
            .daemon_sets
            .iter()
            .filter(|d| {
                let (ns, name) = identity(d);
                scope.is_on_prem_cni(ns, name)
            })
            .collect();
        // Listed CNIs keep the spec's order; found ones go by namespace/name.
        let listed = &spec.on_prem_cni.daemon_sets;
        on_prem_cnis.sort_by_key(|d: &&'a DaemonSet| {
            let (ns, name) = identity(d);
            let at = listed.iter().position(|l| l.namespace == ns && l.name == name);
            (at, ns, name)
        });
        let terway = view.daemon_sets.iter().find(|d| {
            let (ns, name) = identity(d);
            scope.is_terway(ns, name)
        });
        let agent = view.daemon_sets.iter().find(|d| scope.is_agent(identity(d).1));
        let responder = view.daemon_sets.iter().find(|d| scope.is_responder(identity(d).1));
        let mut pods = HashMap::new();
        for pod in view.pods.iter().filter(|p| scope.owns(p)) {
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else { continue };
            let Some(owner) = pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.kind == "DaemonSet" && o.controller == Some(true))
            else {
                continue;
            };
            let ns = pod.metadata.namespace.as_deref().unwrap_or("");
            pods.insert((ns, owner.name.as_str(), node), &**pod);
        }
        let mut cluster =
            Cluster { view, spec, nodes, on_prem_cnis, terway, agent, responder, eni_conf: None, pods };
        cluster.eni_conf = cluster.eni_config().map(|data| match data.get("eni_conf") {
            None => Err("eni-config has no eni_conf key".to_owned()),
            Some(text) => parse_eni_conf(text),
        });
        cluster
    }

    pub fn on_prem(&self) -> impl Iterator<Item = &NodeInfo<'a>> {
        self.nodes.values().filter(|n| n.role == Role::OnPrem)
    }

    pub fn cloud(&self) -> impl Iterator<Item = &NodeInfo<'a>> {
        self.nodes.values().filter(|n| n.role == Role::Cloud)
    }

    /// The pod `ds` runs on `node`, if any.
    pub fn pod_of(&self, ds: &DaemonSet, node: &str) -> Option<&'a SlimPod> {
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let name = ds.metadata.name.as_deref().unwrap_or("");
        self.pods.get(&(ns, name, node)).copied()
    }

    /// The eni-config ConfigMap's data, if the ConfigMap exists.
    pub fn eni_config(&self) -> Option<&'a BTreeMap<String, String>> {
        let cm = self.view.eni_config.as_ref()?;
        let here = cm.metadata.namespace.as_deref() == Some(ENI_CONFIG_NAMESPACE)
            && cm.metadata.name.as_deref() == Some(ENI_CONFIG_NAME);
        here.then_some(())?;
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        Some(cm.data.as_ref().unwrap_or(&EMPTY))
    }
}

/// Why the Tigera operator owns this DaemonSet (it reverts direct edits of
/// the calico-node it manages), or None when it does not.
pub fn tigera_ownership(ds: &DaemonSet, installation_exists: bool) -> Option<&'static str> {
    if !installation_exists || ds.metadata.name.as_deref() != Some(CALICO_NODE) {
        return None;
    }
    if ds.metadata.owner_references.iter().flatten().any(|o| o.kind == "Installation") {
        Some("calico-node is owned by an Installation")
    } else if ds.metadata.namespace.as_deref() == Some("calico-system") {
        Some("calico-node runs in calico-system")
    } else {
        None
    }
}

/// The pod is Ready (condition Ready=True).
pub fn pod_ready(pod: &SlimPod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod is on its node and not finished (Pending on the node counts:
/// its containers are starting there).
pub fn pod_runs(pod: &SlimPod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Why a pod's containers wait, when it is an image that cannot be pulled.
pub fn image_pull_problem(pod: &SlimPod) -> Option<String> {
    let status = pod.status.as_ref()?;
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.as_deref()?;
            matches!(reason, "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName")
                .then(|| format!("{} {reason} ({})", c.name, c.image))
        })
}

pub fn qualified(ds: &DaemonSet) -> String {
    format!(
        "{}/{}",
        ds.metadata.namespace.as_deref().unwrap_or(""),
        ds.metadata.name.as_deref().unwrap_or("")
    )
}

/// "a, b, c and 7 more": lists in messages stay readable on big clusters.
pub fn some_of<S: AsRef<str>>(items: &[S], max: usize) -> String {
    let shown: Vec<&str> = items.iter().take(max).map(AsRef::as_ref).collect();
    match items.len().saturating_sub(max) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eni_conf_problems_never_quote_a_value() {
        let secret = "987654321987654321";
        let cases = [
            (
                format!(r#"{{"access_secret": {secret}}}"#),
                "eni_conf access_secret: expected a string, found a number",
            ),
            (
                format!(r#"{{"access_key": ["{secret}"]}}"#),
                "eni_conf access_key: expected a string, found an array",
            ),
            (
                format!(r#"{{"vswitches": {{"zone-a": "{secret}"}}}}"#),
                "eni_conf vswitches: expected an object of zone -> array of vSwitch IDs, found an object",
            ),
            (
                format!(r#"{{"access_secret": "{secret}" "#),
                "eni_conf is not valid JSON (it ends early at line 1 column 39)",
            ),
            (
                format!(r#"{{"access_secret": {secret}x}}"#),
                "eni_conf is not valid JSON (syntax error at line 1 column 37)",
            ),
            (format!(r#""{secret}""#), "eni_conf must be a JSON object, not a string"),
        ];
        for (text, expected) in cases {
            let message = parse_eni_conf(&text).unwrap_err();
            assert_eq!(message, expected, "{text}");
            assert!(!message.contains(secret));
        }
        let ok = parse_eni_conf(r#"{"access_key": "a", "access_secret": null, "other": 5}"#).unwrap();
        assert_eq!(ok.access_key.as_deref(), Some("a"));
    }
}
