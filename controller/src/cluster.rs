//! Cluster: a ClusterView with the indexes every check needs, built once per
//! plan: each node's role and report, the on-prem CNI and Terway DaemonSets,
//! the parsed eni-config.

use crate::view::{ClusterView, ENI_CONFIG_NAME, ENI_CONFIG_NAMESPACE};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use std::collections::{BTreeMap, HashMap};
use terway_hybrid_api::rollout::NamespacedName;
use terway_hybrid_api::{NodeNetworkReport, Role, TerwayRolloutSpec};

/// Well-known on-prem CNI DaemonSets, found in any namespace when the
/// TerwayRollout lists none (DESIGN.md §3.4).
pub const WELL_KNOWN_CNI_DAEMONSETS: [&str; 5] =
    ["calico-node", "kube-flannel-ds", "canal", "cilium", "kube-router"];
/// The agent's DaemonSet, whose pods say whether a node's report is current.
pub const AGENT_DAEMONSET: &str = "terway-hybrid-agent";

pub struct Cluster<'a> {
    pub view: &'a ClusterView,
    pub spec: TerwayRolloutSpec,
    /// Nodes by name, in name order (so every list the plan makes is sorted).
    pub nodes: BTreeMap<&'a str, NodeInfo<'a>>,
    pub on_prem_cnis: Vec<&'a DaemonSet>,
    pub terway: Option<&'a DaemonSet>,
    pub agent: Option<&'a DaemonSet>,
    /// Pods by (owning DaemonSet namespace/name, node name).
    pods: HashMap<(&'a str, &'a str, &'a str), &'a Pod>,
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
            view.reports.iter().filter_map(|r| Some((r.metadata.name.as_deref()?, r))).collect();
        let nodes = view
            .nodes
            .iter()
            .filter_map(|node| {
                let name = node.metadata.name.as_deref()?;
                let role = role_of(node, &spec.cloud_node_selector);
                Some((name, NodeInfo { node, role, report: reports.get(name).copied() }))
            })
            .collect();
        let find = |ns: &str, name: &str| {
            view.daemon_sets.iter().find(|d| {
                d.metadata.namespace.as_deref() == Some(ns) && d.metadata.name.as_deref() == Some(name)
            })
        };
        let on_prem_cnis = if spec.on_prem_cni.daemon_sets.is_empty() {
            let mut found: Vec<&DaemonSet> = view
                .daemon_sets
                .iter()
                .filter(|d| {
                    d.metadata.name.as_deref().is_some_and(|n| WELL_KNOWN_CNI_DAEMONSETS.contains(&n))
                })
                .collect();
            found.sort_by_key(|d| (d.metadata.namespace.clone(), d.metadata.name.clone()));
            found
        } else {
            spec.on_prem_cni
                .daemon_sets
                .iter()
                .filter_map(|NamespacedName { namespace, name }| find(namespace, name))
                .collect()
        };
        let terway = find(&spec.terway.namespace, &spec.terway.daemon_set_name);
        let agent = view.daemon_sets.iter().find(|d| d.metadata.name.as_deref() == Some(AGENT_DAEMONSET));
        let mut pods = HashMap::new();
        for pod in &view.pods {
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
            pods.insert((ns, owner.name.as_str(), node), pod);
        }
        Cluster { view, spec, nodes, on_prem_cnis, terway, agent, pods }
    }

    pub fn on_prem(&self) -> impl Iterator<Item = &NodeInfo<'a>> {
        self.nodes.values().filter(|n| n.role == Role::OnPrem)
    }

    pub fn cloud(&self) -> impl Iterator<Item = &NodeInfo<'a>> {
        self.nodes.values().filter(|n| n.role == Role::Cloud)
    }

    /// The pod `ds` runs on `node`, if any.
    pub fn pod_of(&self, ds: &DaemonSet, node: &str) -> Option<&'a Pod> {
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

/// A node is a cloud node when it carries every label of the selector.
pub fn role_of(node: &Node, cloud_selector: &BTreeMap<String, String>) -> Role {
    let labels = node.metadata.labels.as_ref();
    let matches = !cloud_selector.is_empty()
        && cloud_selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    if matches {
        Role::Cloud
    } else {
        Role::OnPrem
    }
}

/// Why the Tigera operator owns this DaemonSet (it reverts direct edits of
/// the calico-node it manages), or None when it does not.
pub fn tigera_ownership(ds: &DaemonSet, installation_exists: bool) -> Option<&'static str> {
    if !installation_exists || ds.metadata.name.as_deref() != Some("calico-node") {
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
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Why a pod's containers wait, when it is an image that cannot be pulled.
pub fn image_pull_problem(pod: &Pod) -> Option<String> {
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
