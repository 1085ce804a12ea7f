//! Shared helpers of the `plan` tests: loading the shipped example dumps,
//! building and mutating ClusterViews, and playing the controller's part
//! (applying a plan's labels and status back into the view).
#![allow(dead_code)]

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use terway_hybrid_api::rollout::{GATE_LABEL, GATE_OPEN};
use terway_hybrid_api::{
    CheckName, CheckResult, CheckStatus, Confidence, NodeNetworkReport, NodeNetworkReportSpec,
    NodeNetworkReportStatus, Plugin, Role, Scenario, Severity, TerwayRollout, TerwayRolloutSpec,
    TerwayRolloutStatus,
};
use terway_hybrid_controller::pure::plan::{NodeRow, Plan, PlannedEvent};
use terway_hybrid_controller::pure::view::ClusterView;
use terway_hybrid_controller::{dump, pure::affinity};

pub const CLOUD_LABEL: &str = "alibabacloud.com/external";
pub const AGENT_NS: &str = "terway-hybrid";
pub const AGENT: &str = "terway-hybrid-agent";
pub const TERWAY_NS: &str = "kube-system";
pub const TERWAY: &str = "terway-eniip";

pub const EXAMPLES: [&str; 8] = [
    "overlay-pass",
    "overlay-fail",
    "bgp-pass",
    "bgp-fail",
    "host-network-pass",
    "host-network-fail",
    "cross-site-pass",
    "cross-site-fail",
];

/// One minute after the examples' objects were written.
pub fn t0() -> Timestamp {
    "2026-11-20T09:00:00Z".parse().expect("a timestamp")
}

/// `t0` plus `secs` seconds.
pub fn at_secs(secs: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(secs)
}

/// `t0` plus `mins` minutes.
pub fn at(mins: i64) -> Timestamp {
    at_secs(mins * 60)
}

pub fn example_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("examples").join(name)
}

/// An example dump, loaded once per test binary and cloned.
pub fn example(name: &str) -> ClusterView {
    static CACHE: OnceLock<std::sync::Mutex<BTreeMap<String, ClusterView>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry(name.to_owned())
        .or_insert_with(|| {
            dump::load(&example_dir(name)).unwrap_or_else(|e| panic!("example {name} loads: {e}"))
        })
        .clone()
}

// ---- reading a plan ----

pub fn check(plan: &Plan, name: CheckName) -> &CheckResult {
    plan.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name} in the plan"))
}

/// The names of the checks that fail (whatever their severity).
pub fn failing(plan: &Plan) -> Vec<CheckName> {
    plan.checks.iter().filter(|c| c.status == CheckStatus::Fail).map(|c| c.name).collect()
}

/// The names of the checks that fail with severity error.
pub fn blocking(plan: &Plan) -> Vec<CheckName> {
    plan.checks.iter().filter(|c| c.is_blocking()).map(|c| c.name).collect()
}

pub fn row<'a>(plan: &'a Plan, node: &str) -> &'a NodeRow {
    plan.nodes.iter().find(|r| r.name == node).unwrap_or_else(|| panic!("no row for node {node}"))
}

/// The nodes whose gate the plan wants open, in name order.
pub fn gated_rows(plan: &Plan) -> Vec<String> {
    plan.nodes.iter().filter(|r| r.gate).map(|r| r.name.clone()).collect()
}

pub fn condition<'a>(status: &'a TerwayRolloutStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no condition {type_} in {:?}", status.conditions))
}

/// (status, reason) of a condition.
pub fn cond(plan: &Plan, type_: &str) -> (String, String) {
    let c = condition(&plan.status, type_);
    (c.status.clone(), c.reason.clone())
}

/// The events `previous -> current` deserve: one per condition whose status
/// or reason changed (or that is new).
pub fn expected_event_reasons(previous: &[Condition], current: &[Condition]) -> Vec<String> {
    current
        .iter()
        .filter(|c| {
            !previous.iter().any(|p| p.type_ == c.type_ && p.status == c.status && p.reason == c.reason)
        })
        .map(|c| format!("{}={} {}", c.type_, c.status, c.reason))
        .collect()
}

/// Events as `Type=Status Reason`, read back from their messages.
pub fn event_keys(events: &[PlannedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let (type_, rest) =
                e.message.split_once(" is ").expect("an event message is `Type is Status: ...`");
            let status = rest.split(':').next().unwrap_or_default();
            format!("{type_}={status} {}", e.reason)
        })
        .collect()
}

// ---- mutating a view ----

pub fn node_mut<'a>(view: &'a mut ClusterView, name: &str) -> &'a mut Node {
    view.nodes
        .iter_mut()
        .find(|n| n.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no node {name}"))
}

pub fn set_label(view: &mut ClusterView, node: &str, key: &str, value: Option<&str>) {
    let labels = node_mut(view, node).metadata.labels.get_or_insert_with(BTreeMap::new);
    match value {
        Some(v) => {
            labels.insert(key.to_owned(), v.to_owned());
        }
        None => {
            labels.remove(key);
        }
    }
}

pub fn report_mut<'a>(view: &'a mut ClusterView, name: &str) -> &'a mut NodeNetworkReport {
    view.reports
        .iter_mut()
        .find(|r| r.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no report {name}"))
}

pub fn report_status_mut<'a>(view: &'a mut ClusterView, name: &str) -> &'a mut NodeNetworkReportStatus {
    report_mut(view, name).status.as_mut().expect("a report with a status")
}

pub fn daemon_set_mut<'a>(view: &'a mut ClusterView, ns: &str, name: &str) -> &'a mut DaemonSet {
    view.daemon_sets
        .iter_mut()
        .find(|d| d.metadata.namespace.as_deref() == Some(ns) && d.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no DaemonSet {ns}/{name}"))
}

pub fn terway_mut(view: &mut ClusterView) -> &mut DaemonSet {
    daemon_set_mut(view, TERWAY_NS, TERWAY)
}

/// Adds the gate requirement to Terway's DaemonSet, as the controller does
/// when it applies `plan.terway_gate`.
pub fn require_gate(view: &mut ClusterView) {
    let ds = terway_mut(view);
    let current = affinity::daemon_set_affinity(ds).cloned();
    let spec = ds.spec.as_mut().and_then(|s| s.template.spec.as_mut()).expect("a pod template");
    spec.affinity = Some(affinity::require_gate(current.as_ref()));
}

pub fn rollout_mut(view: &mut ClusterView) -> &mut TerwayRollout {
    view.rollout.get_or_insert_with(|| TerwayRollout::new("default", TerwayRolloutSpec::default()))
}

pub fn spec_mut(view: &mut ClusterView) -> &mut TerwayRolloutSpec {
    &mut rollout_mut(view).spec
}

pub fn pod_mut<'a>(view: &'a mut ClusterView, ds: &str, node: &str) -> Option<&'a mut Pod> {
    view.pods.iter_mut().find(|p| {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
            && p.metadata.owner_references.iter().flatten().any(|o| o.kind == "DaemonSet" && o.name == ds)
    })
}

pub fn remove_pod(view: &mut ClusterView, ds: &str, node: &str) {
    view.pods.retain(|p| {
        !(p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
            && p.metadata.owner_references.iter().flatten().any(|o| o.name == ds))
    });
}

pub fn set_pod_ready_condition(pod: &mut Pod, ready: bool) {
    let status = pod.status.get_or_insert_with(PodStatus::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != "Ready");
    conditions.push(PodCondition {
        type_: "Ready".to_owned(),
        status: if ready { "True" } else { "False" }.to_owned(),
        ..PodCondition::default()
    });
}

/// Makes the pod `ns/ds` runs on `node` Ready or not, creating it if needed.
pub fn set_pod_ready(view: &mut ClusterView, ns: &str, ds: &str, node: &str, ready: bool) {
    match pod_mut(view, ds, node) {
        Some(pod) => set_pod_ready_condition(pod, ready),
        None => view.pods.push(pod(ns, ds, node, ready)),
    }
}

pub fn set_terway_ready(view: &mut ClusterView, node: &str, ready: bool) {
    set_pod_ready(view, TERWAY_NS, TERWAY, node, ready);
}

/// Adds a copy of node `from` (its Node, report and the pods on it) named `to`.
pub fn clone_node(view: &mut ClusterView, from: &str, to: &str) {
    let rename = |meta: &mut ObjectMeta| {
        meta.name = Some(to.to_owned());
        meta.uid = Some(format!("uid-{to}"));
        if let Some(labels) = meta.labels.as_mut() {
            for v in labels.values_mut() {
                if v == from {
                    *v = to.to_owned();
                }
            }
        }
    };
    let mut node =
        view.nodes.iter().find(|n| n.metadata.name.as_deref() == Some(from)).expect("node").clone();
    rename(&mut node.metadata);
    view.nodes.push(node);
    if let Some(report) = view.reports.iter().find(|r| r.metadata.name.as_deref() == Some(from)) {
        let mut report = report.clone();
        rename(&mut report.metadata);
        report.spec.node_name = to.to_owned();
        for o in report.metadata.owner_references.iter_mut().flatten() {
            o.name = to.to_owned();
            o.uid = format!("uid-{to}");
        }
        view.reports.push(report);
    }
    let pods: Vec<Pod> = view
        .pods
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(from))
        .cloned()
        .collect();
    for mut pod in pods {
        pod.metadata.name = pod.metadata.name.map(|n| n.replace(from, to));
        pod.spec.as_mut().expect("a pod spec").node_name = Some(to.to_owned());
        view.pods.push(pod);
    }
}

/// Plays the controller: the nodes get the labels of their rows (the gate
/// label removed where the row has none) and the rollout gets the status.
pub fn apply(view: &mut ClusterView, plan: &Plan) {
    for r in &plan.nodes {
        let node = node_mut(view, &r.name);
        let labels = node.metadata.labels.get_or_insert_with(BTreeMap::new);
        if !r.labels.iter().any(|(k, _)| k == GATE_LABEL) {
            labels.remove(GATE_LABEL);
        }
        for (k, v) in &r.labels {
            labels.insert(k.clone(), v.clone());
        }
    }
    rollout_mut(view).status = Some(plan.status.clone());
}

/// Whether the node carries the open gate label.
pub fn gated_in(view: &ClusterView, node: &str) -> bool {
    view.nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(node))
        .and_then(|n| n.metadata.labels.as_ref())
        .and_then(|l| l.get(GATE_LABEL))
        .is_some_and(|v| v == GATE_OPEN)
}

// ---- building objects from scratch (for the generated views) ----

pub fn node(name: &str, cloud: bool, ip: &str, kernel: &str) -> Node {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), name.to_owned()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
    ]);
    if cloud {
        labels.insert(CLOUD_LABEL.to_owned(), "true".to_owned());
    }
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            uid: Some(format!("uid-{name}")),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(Default::default()),
        status: Some(k8s_openapi::api::core::v1::NodeStatus {
            addresses: Some(vec![k8s_openapi::api::core::v1::NodeAddress {
                type_: "InternalIP".to_owned(),
                address: ip.to_owned(),
            }]),
            node_info: Some(k8s_openapi::api::core::v1::NodeSystemInfo {
                kernel_version: kernel.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// A report as the agent writes it. `owner_uid` is the uid of the node it
/// was written for (another uid: the report of a previous node of the name).
pub fn report(name: &str, owner_uid: &str, role: Role, scenario: Scenario, ready: bool) -> NodeNetworkReport {
    let plugin = match (role, scenario) {
        (Role::Cloud, _) => Plugin::Terway,
        (_, Scenario::Overlay) => Plugin::FlannelVxlan,
        (_, Scenario::Bgp) => Plugin::CalicoBgp,
        (_, Scenario::HostNetwork) => Plugin::None,
        (_, Scenario::Unknown) => Plugin::Unknown,
    };
    let mut checks = vec![CheckResult::pass(CheckName::ScenarioDetected, Severity::Error, "Detected", "ok")];
    if !ready {
        checks.push(CheckResult::fail(CheckName::IPForwarding, Severity::Error, "Disabled", "off"));
    }
    let mut r = NodeNetworkReport::new(
        name,
        NodeNetworkReportSpec { node_name: name.to_owned(), probe_targets: vec![] },
    );
    r.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Node".to_owned(),
        name: name.to_owned(),
        uid: owner_uid.to_owned(),
        ..OwnerReference::default()
    }]);
    r.status = Some(NodeNetworkReportStatus {
        scenario,
        plugin,
        confidence: Confidence::High,
        role,
        kernel_version: "5.10.134-16.al8.x86_64".to_owned(),
        evidence: vec![],
        stale: vec![],
        checks,
        ready,
        last_detected: Time(t0()),
        agent_version: "0.1.0".to_owned(),
        bgp_peers: vec![],
        pod_mtu: None,
        cloud_network: None,
        probes: vec![],
    });
    r
}

pub fn pod(ns: &str, ds: &str, node: &str, ready: bool) -> Pod {
    let mut pod = Pod {
        metadata: ObjectMeta {
            name: Some(format!("{ds}-{node}")),
            namespace: Some(ns.to_owned()),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".to_owned(),
                kind: "DaemonSet".to_owned(),
                name: ds.to_owned(),
                uid: format!("uid-{ds}"),
                controller: Some(true),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec { node_name: Some(node.to_owned()), ..PodSpec::default() }),
        status: None,
    };
    set_pod_ready_condition(&mut pod, ready);
    pod
}
