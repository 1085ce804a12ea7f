//! The check table of `plan`, built from the shipped example dumps
//! (`examples/{overlay,bgp,host-network,cross-site}-{pass,fail}`, written by
//! `bench/gen-dump.py`): each example as shipped, then every cluster check
//! passing, failing and skipped through mutations of the loaded view, the
//! ignore list and the remediations. The rollout is `plan_rollout.rs`.

mod common;
mod example_edits;
mod pod_edits;

use common::*;
use example_edits::*;
use k8s_openapi::api::core::v1::{Affinity, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::DynamicObject;
use pod_edits::*;
use serde_json::json;
use std::sync::Arc;
use terway_hybrid_api::names::AGENT_DAEMONSET as AGENT;
use terway_hybrid_api::rollout::{
    condition, Remediate, GATE_LABEL, GATE_OPEN, PREFLIGHT_LABEL, SCENARIO_LABEL,
};
use terway_hybrid_api::vocabulary::CLOUD_LABEL;
use terway_hybrid_api::{CheckName, CheckStatus, Role, Scenario, Severity};
use terway_hybrid_controller::pure::affinity;
use terway_hybrid_controller::pure::plan::{plan, Plan, Remediation};
use terway_hybrid_controller::pure::pod::{ContainerState, ContainerStateWaiting, ContainerStatus};
use terway_hybrid_controller::pure::view::{ClusterView, SecretKeys};

use CheckName::*;
use CheckStatus::{Fail, Pass, Skip};

/// The cluster checks, in the order the plan lists them (docs/contracts.md §5).
const CLUSTER_CHECKS: &[CheckName] = CheckName::CLUSTER;

/// PathMTU only warns; every other cluster check is an error.
fn severity_of(name: CheckName) -> Severity {
    if name == PathMTU {
        Severity::Warning
    } else {
        Severity::Error
    }
}

/// The cross-site checks, which skip when their evidence is missing.
const CROSS_SITE_CHECKS: [CheckName; 3] = [BGPPeers, CrossSiteConnectivity, PathMTU];
/// The checks that only apply when Terway is needed.
const TERWAY_CHECKS: [CheckName; 7] = [
    OnPremCNIExcludedFromCloud,
    TerwayExcludedFromOnPrem,
    RamSecret,
    EniConfig,
    ServiceCIDR,
    CloudNodeKernel,
    CloudNodePreflight,
];

// ---- the examples as shipped ----

/// A check, and words its message must hold.
type Words = (CheckName, &'static [&'static str]);
/// An example: its scenario, whether it passes, its failing checks, and message words.
type Shipped = (&'static str, Scenario, bool, &'static [CheckName], &'static [Words]);

#[test]
fn shipped_examples_pass_or_fail_as_gen_dump_describes() {
    // bench/gen-dump.py FAILURES:
    //   overlay: the flannel pod on one cloud node cannot pull its image
    //   bgp: calico-node has no affinity keeping it off cloud nodes, and the RAM Secret is missing
    //   host-network: eni-config names a security group that is not an sg- ID, and one cloud
    //     node runs kernel 4.18 (which the cluster sees twice: in the Node's kernel, and in
    //     that node's own KernelVersion check, reported through CloudNodePreflight)
    //   cross-site (--cross-site fail): the VBR session of onprem-1 is down, the fallback VPN's
    //     path MTU is 1400 while the pods use 1450 and 1500, cloud-2 cannot reach onprem-3
    // bench/gen-dump.py --address-plan (bgp, the cloud reports carry status.cloudNetwork):
    //   fail: a Calico IPPool lies inside the VPC, and a leftover flannel network overlaps Calico's pool
    #[rustfmt::skip]
    let cases: [Shipped; 10] = [
        ("overlay-pass", Scenario::Overlay, true, &[], &[]),
        ("overlay-fail", Scenario::Overlay, false, &[OverlayReachesCloud],
            &[(OverlayReachesCloud, &["cloud-1", "ImagePullBackOff"])]),
        ("bgp-pass", Scenario::Bgp, true, &[], &[]),
        ("bgp-fail", Scenario::Bgp, false, &[OnPremCNIExcludedFromCloud, RamSecret],
            &[(OnPremCNIExcludedFromCloud, &["kube-system/calico-node", "cloud-1, cloud-2"]),
              (RamSecret, &["alibaba-addon-secret does not exist"])]),
        ("host-network-pass", Scenario::HostNetwork, true, &[], &[]),
        ("host-network-fail", Scenario::HostNetwork, false, &[EniConfig, CloudNodeKernel, CloudNodePreflight],
            &[(EniConfig, &["not security group IDs", "default"]),
              (CloudNodeKernel, &["cloud-1 (4.18.0-348.el8.x86_64)"]),
              (CloudNodePreflight, &["cloud-1 (KernelVersion: TooOldForIPvlan)"])]),
        ("cross-site-pass", Scenario::Bgp, true, &[],
            &[(BGPPeers, &["7 Established BGP sessions on 3 on-prem nodes, 1 of them to the VBR"]),
              (CrossSiteConnectivity, &["12 cross-site pairs probed (12 host, 0 pod), all reachable"]),
              (PathMTU, &["12 cross-site paths"])]),
        ("cross-site-fail", Scenario::Bgp, false, &[BGPPeers, CrossSiteConnectivity, PathMTU],
            &[(BGPPeers, &["VBR address 10.100.0.1"]),
              (CrossSiteConnectivity, &["2 of 12", "cloud-2 → onprem-3 (10.10.0.4:9799, host)", "onprem-3 → cloud-2 (172.16.0.3:9799, host)"]),
              (PathMTU, &["path MTU 1400 < pod MTU 1500 of cloud-1 (podMtu)", "at most 1400", "--clamp-mss-to-pmtu"])]),
        ("cidr-pass", Scenario::Bgp, true, &[],
            &[(CIDROverlap, &["172.16.0.0/12 (VPC)", "10.244.0.0/16 (Calico pool)", "192.168.0.0/16 (Service range)",
                              "10.10.0.0/16 (on-prem network)", "5 node addresses"])]),
        ("cidr-fail", Scenario::Bgp, false, &[CIDROverlap],
            &[(CIDROverlap, &["VPC 172.16.0.0/12 (NodeNetworkReport cloud-1 status.cloudNetwork.vpcCidr and 1 more) \
                               overlaps Calico pool 172.20.0.0/16 (IPPool extra-ippool spec.cidr)",
                              "flannel network 10.0.0.0/8 (ConfigMap kube-flannel/kube-flannel-cfg net-conf.json Network) \
                               overlaps Calico pool 10.244.0.0/16 (IPPool default-ipv4-ippool spec.cidr)"])]),
    ];
    for (name, scenario, passed, fails, words) in cases {
        let view = example(name);
        let p = plan(&view, t0());
        assert_eq!(p.scenario, scenario, "{name}: scenario");
        assert_eq!(p.passed, passed, "{name}: passed; checks {:#?}", p.checks);
        assert_eq!(p.terway_required, scenario.terway_required(), "{name}");
        assert_eq!(p.checks.iter().map(|c| c.name).collect::<Vec<_>>(), CLUSTER_CHECKS, "{name}: check list");
        assert_eq!(failing(&p), fails, "{name}: failing checks");
        let errors: Vec<CheckName> =
            fails.iter().copied().filter(|n| severity_of(*n) == Severity::Error).collect();
        assert_eq!(blocking(&p), errors, "{name}: every failure but PathMTU's is an error");
        for c in &p.checks {
            assert_eq!(c.severity, severity_of(c.name), "{name}: {} severity", c.name);
            assert!(!c.message.is_empty() && !c.reason.is_empty(), "{name}: {} says why", c.name);
        }
        for (check_name, expected) in words {
            let msg = &check(&p, *check_name).message;
            for w in *expected {
                assert!(msg.contains(w), "{name}: {check_name} message {msg:?} lacks {w:?}");
            }
        }
        assert_eq!(p.nodes.len(), 5, "{name}: rows");
        assert_eq!(p.nodes.iter().filter(|r| r.role == Role::Cloud).count(), 2, "{name}: cloud rows");
        let preflight = condition(&p.status, condition::PREFLIGHT_PASSED);
        assert_eq!(preflight.status, if passed { "True" } else { "False" }, "{name}");
        assert_eq!(p.status.scenario, Some(scenario), "{name}");
        // The JSON contract of `preflight --output json`.
        let v = serde_json::to_value(&p).expect("a plan serializes");
        assert_eq!(v["scenario"], scenario.as_str(), "{name}");
        assert_eq!(v["passed"], passed, "{name}");
        assert!(v["checks"].is_array() && v["nodes"].is_array(), "{name}");
    }
}

#[test]
fn rows_carry_scenario_and_preflight_labels() {
    for name in EXAMPLES {
        let p = plan(&example(name), t0());
        for r in &p.nodes {
            let label = |k: &str| r.labels.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
            if r.labels.is_empty() {
                // Only a node that has not reported (and holds no gate).
                assert!(!r.gate && r.scenario.is_none(), "{name} {}", r.name);
                continue;
            }
            assert_eq!(label(SCENARIO_LABEL), Some(p.scenario.as_str()), "{name} {}", r.name);
            assert_eq!(label(PREFLIGHT_LABEL), Some(if r.preflight { "passed" } else { "failed" }));
            assert_eq!(label(GATE_LABEL), r.gate.then_some(GATE_OPEN), "{name} {}", r.name);
            assert_eq!(r.role == Role::Cloud, r.name.starts_with("cloud-"), "{name} {}", r.name);
        }
        let names: Vec<&str> = p.nodes.iter().map(|r| r.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "{name}: rows in name order");
    }
    // The cloud node with kernel 4.18 fails its own checks.
    let p = plan(&example("host-network-fail"), t0());
    assert!(!row(&p, "cloud-1").preflight);
    assert!(row(&p, "cloud-2").preflight);
    assert_eq!(row(&p, "cloud-1").labels[1], (PREFLIGHT_LABEL.to_owned(), "failed".to_owned()));
}

/// A node labelled before its first report would be written twice (failed,
/// then its verdict): it waits for its report. AgentCoverage names it.
#[test]
fn a_node_without_a_report_is_not_labelled_until_it_reports() {
    let mut view = example("bgp-pass");
    remove_report(&mut view, "onprem-2");
    let p = plan(&view, t0());
    assert_eq!(row(&p, "onprem-2").labels, vec![]);
    // Its agent wrote the identity, not yet the status: still nothing.
    let mut view = example("bgp-pass");
    report_mut(&mut view, "onprem-2").status = None;
    assert_eq!(row(&plan(&view, t0()), "onprem-2").labels, vec![]);
    let mut view = example("bgp-pass");
    remove_report(&mut view, "onprem-2");
    let p = plan(&view, t0());
    assert!(row(&p, "onprem-1").labels.iter().any(|(k, _)| k == SCENARIO_LABEL));
    let coverage = p.checks.iter().find(|c| c.name == AgentCoverage).expect("AgentCoverage");
    assert!(coverage.message.contains("onprem-2"), "{}", coverage.message);
    // A report written for an earlier node of the same name (another uid)
    // is stale, not absent: the node is labelled and fails its preflight.
    let mut view = example("bgp-pass");
    node_mut(&mut view, "onprem-2").metadata.uid = Some("uid-now".into());
    let report = report_mut(&mut view, "onprem-2");
    report.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: "onprem-2".into(),
        uid: "uid-before".into(),
        ..Default::default()
    }]);
    let p = plan(&view, t0());
    assert!(row(&p, "onprem-2").labels.contains(&(PREFLIGHT_LABEL.to_owned(), "failed".to_owned())));
}

// ---- every check, pass / fail / skip ----

struct Case {
    what: &'static str,
    base: &'static str,
    mutate: fn(&mut ClusterView),
    check: CheckName,
    status: CheckStatus,
    reason: &'static str,
    words: &'static [&'static str],
    /// The plan passes overall.
    passed: bool,
}

fn none(_: &mut ClusterView) {}

fn eni_conf_mut(view: &mut ClusterView) -> serde_json::Value {
    let data = view.eni_config.as_ref().and_then(|c| c.data.as_ref()).expect("eni-config data");
    serde_json::from_str(&data["eni_conf"]).expect("eni_conf is JSON")
}

fn set_eni_conf(view: &mut ClusterView, f: impl FnOnce(&mut serde_json::Value)) {
    let mut conf = eni_conf_mut(view);
    f(&mut conf);
    set_eni_key(view, "eni_conf", &conf.to_string());
}

fn set_eni_key(view: &mut ClusterView, key: &str, value: &str) {
    let cm = view.eni_config.as_mut().expect("eni-config");
    cm.data.get_or_insert_with(Default::default).insert(key.to_owned(), value.to_owned());
}

fn set_virtual_type(view: &mut ClusterView, t: &str) {
    let conf = json!({"cniVersion": "0.4.0", "name": "terway", "type": "terway", "eniip_virtual_type": t});
    set_eni_key(view, "10-terway.conf", &conf.to_string());
}

fn set_kernel(view: &mut ClusterView, node: &str, kernel: &str) {
    let n = node_mut(view, node);
    n.status.as_mut().and_then(|s| s.node_info.as_mut()).expect("nodeInfo").kernel_version =
        kernel.to_owned();
}

fn set_internal_ip(view: &mut ClusterView, node: &str, ip: &str) {
    let n = node_mut(view, node);
    for a in n.status.as_mut().and_then(|s| s.addresses.as_mut()).expect("addresses") {
        if a.type_ == "InternalIP" {
            a.address = ip.to_owned();
        }
    }
}

fn affinity_from(v: serde_json::Value) -> Affinity {
    serde_json::from_value(v).expect("an affinity")
}

fn linux_only() -> Affinity {
    affinity_from(json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}}))
}

fn calico_admits_cloud(view: &mut ClusterView) {
    set_affinity(view, "kube-system", "calico-node", Some(linux_only()));
}

/// Both cloud nodes get a NoSchedule taint calico-node does not tolerate
/// (it tolerates every taint in the example: that is narrowed here).
fn taint_cloud_nodes_against_calico(view: &mut ClusterView) {
    for n in ["cloud-1", "cloud-2"] {
        node_mut(view, n).spec.get_or_insert_with(Default::default).taints = Some(vec![Taint {
            key: "dedicated".to_owned(),
            value: Some("cloud".to_owned()),
            effect: "NoSchedule".to_owned(),
            time_added: None,
        }]);
    }
    let ds = daemon_set_mut(view, "kube-system", "calico-node");
    ds.spec.as_mut().and_then(|s| s.template.spec.as_mut()).expect("template").tolerations = None;
}

fn installation() -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "operator.tigera.io/v1", "kind": "Installation",
        "metadata": {"name": "default"},
        "spec": {"calicoNetwork": {"bgp": "Enabled"}}
    }))
    .expect("an Installation")
}

/// calico-node owned by the Tigera operator: in calico-system, with an Installation.
fn tigera_calico(view: &mut ClusterView) {
    calico_admits_cloud(view);
    daemon_set_mut(view, "kube-system", "calico-node").metadata.namespace = Some("calico-system".to_owned());
    for p in &mut view.pods {
        if p.metadata.name.as_deref().is_some_and(|n| n.starts_with("calico-node-")) {
            Arc::make_mut(p).metadata.namespace = Some("calico-system".to_owned());
        }
    }
    view.installation = Some(installation());
}

fn remove_report(view: &mut ClusterView, node: &str) {
    view.reports.retain(|r| r.metadata.name.as_deref() != Some(node));
}

fn image_pull_back_off(view: &mut ClusterView, ds: &str, node: &str) {
    let pod = pod_mut(view, ds, node).expect("the pod");
    set_pod_ready_condition(pod, false);
    pod.status.as_mut().expect("a status").container_statuses = Some(vec![ContainerStatus {
        name: ds.to_owned(),
        image: format!("registry.example.com/{ds}:v1"),
        state: Some(ContainerState {
            waiting: Some(ContainerStateWaiting { reason: Some("ImagePullBackOff".to_owned()) }),
        }),
        ..ContainerStatus::default()
    }]);
}

/// Every BGP session of `node` in this state.
fn set_sessions(view: &mut ClusterView, node: &str, state: &str) {
    for p in &mut report_status_mut(view, node).bgp_peers {
        p.state = state.to_owned();
    }
}

/// The prefixes onprem-1's VBR session imports.
fn vbr_imports(view: &mut ClusterView, prefixes: &[&str]) {
    let s = report_status_mut(view, "onprem-1");
    let vbr = s.bgp_peers.iter_mut().find(|p| p.peer == "10.100.0.1").expect("the VBR session");
    vbr.imported_prefixes = prefixes.iter().map(|p| p.to_string()).collect();
    vbr.imported_routes = prefixes.len() as u64;
}

fn all_reports(view: &mut ClusterView, f: impl Fn(&mut terway_hybrid_api::NodeNetworkReport)) {
    view.reports.iter_mut().map(Arc::make_mut).for_each(f);
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        // AgentCoverage
        Case { what: "every node reported", base: "bgp-pass", mutate: none,
            check: AgentCoverage, status: Pass, reason: "AllNodesReported", words: &["all 5 nodes"], passed: true },
        Case { what: "a cloud node's report is missing", base: "bgp-pass", mutate: |v| remove_report(v, "cloud-2"),
            check: AgentCoverage, status: Fail, reason: "NodesNotReported", words: &["no report from cloud-2"], passed: false },
        Case { what: "an on-prem node's report is missing (overlay)", base: "overlay-pass", mutate: |v| remove_report(v, "onprem-2"),
            check: AgentCoverage, status: Fail, reason: "NodesNotReported", words: &["no report from onprem-2", "terway-hybrid-agent"], passed: false },
        Case { what: "an agent pod is not Ready", base: "bgp-pass",
            mutate: |v| set_pod_ready(v, AGENT_NS, AGENT, "onprem-2", false),
            check: AgentCoverage, status: Fail, reason: "NodesNotReported", words: &["agent pod not Ready on onprem-2"], passed: false },
        Case { what: "an agent pod is missing", base: "host-network-pass", mutate: |v| remove_pod(v, AGENT, "cloud-1"),
            check: AgentCoverage, status: Fail, reason: "NodesNotReported", words: &["agent pod not Ready on cloud-1"], passed: false },
        Case { what: "a report of a previous node of the same name", base: "bgp-pass",
            mutate: |v| node_mut(v, "cloud-1").metadata.uid = Some("uid-cloud-1-again".to_owned()),
            check: AgentCoverage, status: Fail, reason: "NodesNotReported", words: &["previous node of the same name on cloud-1"], passed: false },
        // ScenarioConsistent
        Case { what: "the on-prem nodes agree", base: "bgp-pass", mutate: none,
            check: ScenarioConsistent, status: Pass, reason: "Consistent", words: &["all 3", "bgp"], passed: true },
        Case { what: "an on-prem report disagrees", base: "bgp-pass", mutate: |v| set_scenario(v, "onprem-2", Scenario::Overlay),
            check: ScenarioConsistent, status: Fail, reason: "Inconsistent", words: &["bgp: onprem-1, onprem-3", "overlay: onprem-2"], passed: false },
        Case { what: "a host-network node reports bgp", base: "host-network-pass", mutate: |v| set_scenario(v, "onprem-3", Scenario::Bgp),
            check: ScenarioConsistent, status: Fail, reason: "Inconsistent", words: &["onprem-3"], passed: false },
        Case { what: "cloud reports do not vote", base: "bgp-pass", mutate: |v| set_scenario(v, "cloud-1", Scenario::Overlay),
            check: ScenarioConsistent, status: Pass, reason: "Consistent", words: &["all 3"], passed: true },
        Case { what: "the on-prem nodes cannot classify", base: "bgp-pass",
            mutate: |v| for n in ["onprem-1", "onprem-2", "onprem-3"] { set_scenario(v, n, Scenario::Unknown) },
            check: ScenarioConsistent, status: Fail, reason: "ScenarioUnknown", words: &["onprem-1, onprem-2, onprem-3"], passed: false },
        Case { what: "no on-prem node reported", base: "overlay-pass",
            mutate: |v| for n in ["onprem-1", "onprem-2", "onprem-3"] { remove_report(v, n) },
            check: ScenarioConsistent, status: Fail, reason: "NoOnPremReports", words: &["terway-hybrid-agent"], passed: false },
        // OnPremCNIExcludedFromCloud
        Case { what: "calico-node excludes cloud nodes", base: "bgp-pass", mutate: none,
            check: OnPremCNIExcludedFromCloud, status: Pass, reason: "Excluded", words: &["kube-system/calico-node"], passed: true },
        Case { what: "calico-node without the exclusion", base: "bgp-pass", mutate: calico_admits_cloud,
            check: OnPremCNIExcludedFromCloud, status: Fail, reason: "OnPremCNIAdmitsCloudNodes",
            words: &["kube-system/calico-node runs on cloud nodes cloud-1, cloud-2", "alibabacloud.com/external NotIn",
                     "terway-hybrid fix cni-affinity --daemonset kube-system/calico-node"], passed: false },
        Case { what: "calico-node without any affinity", base: "bgp-pass", mutate: |v| set_affinity(v, "kube-system", "calico-node", None),
            check: OnPremCNIExcludedFromCloud, status: Fail, reason: "OnPremCNIAdmitsCloudNodes", words: &["cloud-1, cloud-2"], passed: false },
        Case { what: "calico-node keeps off today's cloud nodes only", base: "bgp-pass",
            mutate: |v| set_affinity(v, "kube-system", "calico-node", Some(affinity_from(json!({"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["cloud-1", "cloud-2"]}]}]}}})))),
            check: OnPremCNIExcludedFromCloud, status: Fail, reason: "OnPremCNIAdmitsCloudNodes",
            words: &["would run on any new cloud node"], passed: false },
        Case { what: "Tigera-owned calico-node points at the Installation", base: "bgp-pass", mutate: tigera_calico,
            check: OnPremCNIExcludedFromCloud, status: Fail, reason: "OnPremCNIAdmitsCloudNodes",
            words: &["calico-system/calico-node", "Installation default", "spec.calicoNodeDaemonSet.spec.template.spec.affinity",
                     "terway-hybrid fix calico-affinity"], passed: false },
        Case { what: "an Installation does not own kube-system/calico-node", base: "bgp-pass",
            mutate: |v| { calico_admits_cloud(v); v.installation = Some(installation()) },
            check: OnPremCNIExcludedFromCloud, status: Fail, reason: "OnPremCNIAdmitsCloudNodes",
            words: &["--daemonset kube-system/calico-node"], passed: false },
        Case { what: "a calico-node pod still runs on a cloud node the affinity now excludes", base: "bgp-pass",
            mutate: |v| v.pods.push(pod("kube-system", "calico-node", "cloud-1", true).into()),
            check: OnPremCNIExcludedFromCloud, status: Fail, reason: "OnPremCNIRunsOnCloudNodes",
            words: &["kube-system/calico-node", "still run there: calico-node-cloud-1 on cloud-1", "delete"], passed: false },
        Case { what: "a finished calico-node pod on a cloud node does not count", base: "bgp-pass",
            mutate: |v| { let mut p = pod("kube-system", "calico-node", "cloud-1", false);
                          p.status.get_or_insert_with(Default::default).phase = Some("Failed".to_owned()); v.pods.push(p.into()) },
            check: OnPremCNIExcludedFromCloud, status: Pass, reason: "Excluded", words: &[], passed: true },
        Case { what: "a NoSchedule taint hides a cloud node from admission, not its running pod", base: "bgp-pass",
            mutate: |v| { calico_admits_cloud(v); taint_cloud_nodes_against_calico(v);
                          v.pods.push(pod("kube-system", "calico-node", "cloud-1", true).into()) },
            check: OnPremCNIExcludedFromCloud, status: Fail, reason: "OnPremCNIRunsOnCloudNodes",
            words: &["still run there: calico-node-cloud-1 on cloud-1"], passed: false },
        Case { what: "no on-prem CNI DaemonSet (host-network)", base: "host-network-pass", mutate: none,
            check: OnPremCNIExcludedFromCloud, status: Pass, reason: "NoOnPremCNI", words: &[], passed: true },
        // TerwayExcludedFromOnPrem
        Case { what: "Terway selects cloud nodes", base: "bgp-pass", mutate: none,
            check: TerwayExcludedFromOnPrem, status: Pass, reason: "Excluded", words: &["kube-system/terway-eniip runs on no on-prem node"], passed: true },
        Case { what: "Terway admits on-prem nodes", base: "bgp-pass",
            mutate: |v| terway_mut(v).spec.as_mut().and_then(|s| s.template.spec.as_mut()).expect("t").node_selector = None,
            check: TerwayExcludedFromOnPrem, status: Fail, reason: "TerwayAdmitsOnPremNodes",
            words: &["kube-system/terway-eniip", "onprem-1, onprem-2, onprem-3", "terway-hybrid.io/terway-gate=open"], passed: false },
        Case { what: "Terway admits on-prem nodes (host-network)", base: "host-network-pass",
            mutate: |v| terway_mut(v).spec.as_mut().and_then(|s| s.template.spec.as_mut()).expect("t").node_selector = None,
            check: TerwayExcludedFromOnPrem, status: Fail, reason: "TerwayAdmitsOnPremNodes", words: &["onprem-1"], passed: false },
        Case { what: "only the gate keeps Terway off on-prem nodes", base: "bgp-pass",
            mutate: |v| { terway_mut(v).spec.as_mut().and_then(|s| s.template.spec.as_mut()).expect("t").node_selector = None; require_gate(v) },
            check: TerwayExcludedFromOnPrem, status: Pass, reason: "Excluded", words: &[], passed: true },
        Case { what: "Terway is not installed yet", base: "bgp-pass",
            mutate: |v| v.daemon_sets.retain(|d| d.metadata.name.as_deref() != Some(TERWAY)),
            check: TerwayExcludedFromOnPrem, status: Pass, reason: "NotInstalled", words: &["kube-system/terway-eniip"], passed: true },
        // RamSecret
        Case { what: "the Secret holds both keys", base: "bgp-pass", mutate: none,
            check: RamSecret, status: Pass, reason: "AddonSecret", words: &["access-key-id"], passed: true },
        Case { what: "no Secret", base: "bgp-pass", mutate: |v| v.addon_secret = None,
            check: RamSecret, status: Fail, reason: "NoAccessKey",
            words: &["kube-system/alibaba-addon-secret does not exist", "terway-hybrid ram-secret create"], passed: false },
        Case { what: "no Secret (host-network)", base: "host-network-pass", mutate: |v| v.addon_secret = None,
            check: RamSecret, status: Fail, reason: "NoAccessKey", words: &["does not exist"], passed: false },
        Case { what: "the Secret's secret key is empty", base: "bgp-pass",
            mutate: |v| v.addon_secret = Some(SecretKeys { keys: [("access-key-id".to_owned(), true), ("access-key-secret".to_owned(), false)].into() }),
            check: RamSecret, status: Fail, reason: "NoAccessKey", words: &["lacks a value for access-key-secret"], passed: false },
        Case { what: "the Secret is empty", base: "bgp-pass", mutate: |v| v.addon_secret = Some(SecretKeys::default()),
            check: RamSecret, status: Fail, reason: "NoAccessKey", words: &["access-key-id and access-key-secret"], passed: false },
        Case { what: "the AccessKey is in eni_conf", base: "bgp-pass",
            mutate: |v| { v.addon_secret = None; set_eni_conf(v, |c| { c["access_key"] = json!("LTAI"); c["access_secret"] = json!("s") }) },
            check: RamSecret, status: Pass, reason: "EniConfAccessKey", words: &[], passed: true },
        Case { what: "half an AccessKey in eni_conf", base: "bgp-pass",
            mutate: |v| { v.addon_secret = None; set_eni_conf(v, |c| c["access_key"] = json!("LTAI")) },
            check: RamSecret, status: Fail, reason: "NoAccessKey", words: &[], passed: false },
        // EniConfig
        Case { what: "a valid eni-config", base: "bgp-pass", mutate: none,
            check: EniConfig, status: Pass, reason: "Valid", words: &["1 vSwitches, 1 security groups"], passed: true },
        Case { what: "no eni-config", base: "bgp-pass", mutate: |v| v.eni_config = None,
            check: EniConfig, status: Fail, reason: "Missing", words: &["kube-system/eni-config does not exist"], passed: false },
        Case { what: "eni_conf is not JSON", base: "bgp-pass", mutate: |v| set_eni_key(v, "eni_conf", "{\"version\": \"1\","),
            check: EniConfig, status: Fail, reason: "Unparseable", words: &["eni_conf is not valid JSON"], passed: false },
        Case { what: "a vSwitch that is not vsw-", base: "bgp-pass",
            mutate: |v| set_eni_conf(v, |c| c["vswitches"] = json!({"cn-hangzhou-k": ["vsw-bp1ok", "subnet-1"]})),
            check: EniConfig, status: Fail, reason: "Invalid", words: &["not vSwitch IDs (vsw-...): subnet-1"], passed: false },
        Case { what: "no vSwitch", base: "host-network-pass", mutate: |v| set_eni_conf(v, |c| c["vswitches"] = json!({})),
            check: EniConfig, status: Fail, reason: "Invalid", words: &["names no vSwitch"], passed: false },
        Case { what: "11 security groups", base: "bgp-pass",
            mutate: |v| set_eni_conf(v, |c| c["security_groups"] = json!((0..11).map(|i| format!("sg-{i}")).collect::<Vec<_>>())),
            check: EniConfig, status: Fail, reason: "Invalid", words: &["11 security groups, Terway allows at most 10"], passed: false },
        Case { what: "10 security groups", base: "bgp-pass",
            mutate: |v| set_eni_conf(v, |c| c["security_groups"] = json!((0..10).map(|i| format!("sg-{i}")).collect::<Vec<_>>())),
            check: EniConfig, status: Pass, reason: "Valid", words: &["10 security groups"], passed: true },
        Case { what: "one security_group", base: "bgp-pass",
            mutate: |v| set_eni_conf(v, |c| { c.as_object_mut().expect("o").remove("security_groups"); c["security_group"] = json!("sg-one") }),
            check: EniConfig, status: Pass, reason: "Valid", words: &["1 security groups"], passed: true },
        Case { what: "no security group", base: "bgp-pass",
            mutate: |v| set_eni_conf(v, |c| { c.as_object_mut().expect("o").remove("security_groups"); }),
            check: EniConfig, status: Fail, reason: "Invalid", words: &["no security_group / security_groups"], passed: false },
        Case { what: "an unknown eniip_virtual_type", base: "bgp-pass", mutate: |v| set_virtual_type(v, "macvlan"),
            check: EniConfig, status: Fail, reason: "Invalid", words: &["\"macvlan\" is not Veth, IPVlan or datapathv2"], passed: false },
        Case { what: "10-terway.conf is not JSON", base: "bgp-pass", mutate: |v| set_eni_key(v, "10-terway.conf", "{"),
            check: EniConfig, status: Fail, reason: "Invalid", words: &["10-terway.conf is not valid JSON"], passed: false },
        // ServiceCIDR
        Case { what: "service_cidr holds the ClusterIP", base: "bgp-pass", mutate: none,
            check: ServiceCIDR, status: Pass, reason: "Valid", words: &["192.168.0.0/16"], passed: true },
        Case { what: "service_cidr without the kubernetes ClusterIP", base: "bgp-pass",
            mutate: |v| set_eni_conf(v, |c| c["service_cidr"] = json!("10.96.0.0/12")),
            check: ServiceCIDR, status: Fail, reason: "Mismatch", words: &["does not contain 192.168.0.1", "default/kubernetes"], passed: false },
        Case { what: "service_cidr overlaps a node's InternalIP", base: "bgp-pass", mutate: |v| set_internal_ip(v, "cloud-2", "192.168.7.7"),
            check: ServiceCIDR, status: Fail, reason: "Mismatch", words: &["overlaps address 192.168.7.7 of cloud-2"], passed: false },
        Case { what: "service_cidr overlaps an on-prem node's InternalIP (host-network)", base: "host-network-pass",
            mutate: |v| set_internal_ip(v, "onprem-1", "192.168.0.10"),
            check: ServiceCIDR, status: Fail, reason: "Mismatch", words: &["onprem-1"], passed: false },
        Case { what: "service_cidr overlaps a pod CIDR", base: "bgp-pass",
            mutate: |v| node_mut(v, "onprem-1").spec.get_or_insert_with(Default::default).pod_cidr = Some("192.168.128.0/24".to_owned()),
            check: ServiceCIDR, status: Fail, reason: "Mismatch", words: &["pod CIDR 192.168.128.0/24 of onprem-1"], passed: false },
        Case { what: "pod CIDRs next to service_cidr", base: "bgp-pass",
            mutate: |v| {
                node_mut(v, "onprem-1").spec.get_or_insert_with(Default::default).pod_cidr = Some("10.244.1.0/24".to_owned());
                node_mut(v, "onprem-2").spec.get_or_insert_with(Default::default).pod_cidrs =
                    Some(vec!["192.169.0.0/24".to_owned(), "fd00:10:244::/64".to_owned()]);
            },
            check: ServiceCIDR, status: Pass, reason: "Valid", words: &[], passed: true },
        Case { what: "a pod CIDR containing service_cidr", base: "bgp-pass",
            mutate: |v| node_mut(v, "cloud-1").spec.get_or_insert_with(Default::default).pod_cidrs = Some(vec!["192.0.0.0/8".to_owned()]),
            check: ServiceCIDR, status: Fail, reason: "Mismatch", words: &["pod CIDR 192.0.0.0/8 of cloud-1"], passed: false },
        Case { what: "an IPv6 service_cidr is not the IPv4 ClusterIP's", base: "bgp-pass",
            mutate: |v| set_eni_conf(v, |c| c["service_cidr"] = json!("fd00:96::/108")),
            check: ServiceCIDR, status: Fail, reason: "Mismatch", words: &["does not contain 192.168.0.1"], passed: false },
        Case { what: "a dual-stack service_cidr", base: "bgp-pass",
            mutate: |v| set_eni_conf(v, |c| c["service_cidr"] = json!("192.168.0.0/16, fd00:96::/108")),
            check: ServiceCIDR, status: Pass, reason: "Valid", words: &[], passed: true },
        Case { what: "no service_cidr", base: "bgp-pass",
            mutate: |v| set_eni_conf(v, |c| { c.as_object_mut().expect("o").remove("service_cidr"); }),
            check: ServiceCIDR, status: Fail, reason: "Missing", words: &["no service_cidr"], passed: false },
        Case { what: "service_cidr is not a CIDR", base: "bgp-pass", mutate: |v| set_eni_conf(v, |c| c["service_cidr"] = json!("192.168.0.0")),
            check: ServiceCIDR, status: Fail, reason: "Unparseable", words: &["\"192.168.0.0\" is not a CIDR"], passed: false },
        Case { what: "the kubernetes Service is unknown", base: "bgp-pass", mutate: |v| v.kubernetes_service = None,
            check: ServiceCIDR, status: Fail, reason: "Mismatch", words: &["is not known"], passed: false },
        Case { what: "eni_conf unreadable", base: "bgp-pass", mutate: |v| set_eni_key(v, "eni_conf", "nope"),
            check: ServiceCIDR, status: Fail, reason: "NoEniConf", words: &["EniConfig"], passed: false },
        // CloudNodeKernel
        Case { what: "cloud kernels are new enough", base: "bgp-pass", mutate: none,
            check: CloudNodeKernel, status: Pass, reason: "Supported", words: &[">= 4.19", "ipvlan"], passed: true },
        Case { what: "kernel 4.18 with IPVlan", base: "bgp-pass", mutate: |v| set_kernel(v, "cloud-2", "4.18.0-348.el8.x86_64"),
            check: CloudNodeKernel, status: Fail, reason: "KernelTooOld",
            words: &["needs kernel >= 4.19", "cloud-2 (4.18.0-348.el8.x86_64)", "Veth mode"], passed: false },
        Case { what: "kernel 4.18 with Veth", base: "bgp-pass",
            mutate: |v| { set_kernel(v, "cloud-2", "4.18.0-348.el8.x86_64"); set_virtual_type(v, "Veth") },
            check: CloudNodeKernel, status: Pass, reason: "VethMode", words: &[], passed: true },
        Case { what: "kernel 4.18 with the default mode (IPVlan)", base: "bgp-pass",
            mutate: |v| { set_kernel(v, "cloud-1", "4.18.0-348.el8.x86_64"); set_eni_key(v, "10-terway.conf", "{\"type\": \"terway\"}") },
            check: CloudNodeKernel, status: Fail, reason: "KernelTooOld", words: &["cloud-1"], passed: false },
        Case { what: "kernel 4.19 with IPVlan", base: "bgp-pass", mutate: |v| set_kernel(v, "cloud-1", "4.19.91-26.an8.x86_64"),
            check: CloudNodeKernel, status: Pass, reason: "Supported", words: &[], passed: true },
        Case { what: "kernel 4.19 with datapathv2", base: "bgp-pass",
            mutate: |v| { set_kernel(v, "cloud-1", "4.19.91-26.an8.x86_64"); set_virtual_type(v, "datapathv2") },
            check: CloudNodeKernel, status: Fail, reason: "KernelTooOld", words: &["needs kernel >= 5.10", "cloud-1"], passed: false },
        Case { what: "an unknown cloud kernel", base: "host-network-pass",
            mutate: |v| { set_kernel(v, "cloud-1", ""); report_status_mut(v, "cloud-1").kernel_version = String::new() },
            check: CloudNodeKernel, status: Fail, reason: "KernelTooOld", words: &["cloud-1 (unknown)"], passed: false },
        Case { what: "an old on-prem kernel does not matter", base: "bgp-pass", mutate: |v| set_kernel(v, "onprem-1", "3.10.0-1160.el7.x86_64"),
            check: CloudNodeKernel, status: Pass, reason: "Supported", words: &[], passed: true },
        // CloudNodePreflight
        Case { what: "cloud nodes pass their checks", base: "bgp-pass", mutate: none,
            check: CloudNodePreflight, status: Pass, reason: "AllPass", words: &["all 2 cloud nodes"], passed: true },
        Case { what: "a cloud node fails its checks", base: "bgp-pass", mutate: |v| fail_node_check(v, "cloud-2"),
            check: CloudNodePreflight, status: Fail, reason: "CloudNodesFailing",
            words: &["1 of 2 cloud nodes", "cloud-2 (KernelVersion: TooOldForIPvlan)"], passed: false },
        Case { what: "a failing on-prem node is not a cloud node", base: "bgp-pass", mutate: |v| fail_node_check(v, "onprem-1"),
            check: CloudNodePreflight, status: Pass, reason: "AllPass", words: &[], passed: true },
        // CIDROverlap
        Case { what: "the address plan is disjoint", base: "cidr-pass", mutate: none,
            check: CIDROverlap, status: Pass, reason: "Disjoint", words: &["172.16.0.0/12 (VPC)", "no overlap"], passed: true },
        Case { what: "the dump has no cloudNetwork", base: "bgp-pass", mutate: none,
            check: CIDROverlap, status: Skip, reason: "CloudNetworkUnknown",
            words: &["no cloud node's report carries status.cloudNetwork", "were not compared with the VPC"], passed: true },
        Case { what: "a Calico pool in the VPC, and flannel over Calico", base: "cidr-fail", mutate: none,
            check: CIDROverlap, status: Fail, reason: "Overlap", words: &["IPPool extra-ippool", "kube-flannel-cfg"], passed: false },
        Case { what: "an on-prem node address in the vSwitch", base: "cidr-pass", mutate: |v| set_internal_ip(v, "onprem-2", "172.16.9.9"),
            check: CIDROverlap, status: Fail, reason: "Overlap",
            words: &["vSwitch 172.16.0.0/16 (NodeNetworkReport cloud-1 status.cloudNetwork.vswitchCidrs and 1 more) \
                      overlaps on-prem node address 172.16.9.9/32 (Node onprem-2 InternalIP)"], passed: false },
        Case { what: "the declared on-prem networks reach into the VPC", base: "cidr-pass",
            mutate: |v| spec_mut(v).cross_site.on_prem_networks = vec!["172.16.0.0/14".to_owned()],
            check: CIDROverlap, status: Fail, reason: "Overlap",
            words: &["overlaps on-prem network 172.16.0.0/14 (TerwayRollout default spec.crossSite.onPremNetworks)"], passed: false },
        Case { what: "a declared network that is no CIDR", base: "cidr-pass",
            mutate: |v| spec_mut(v).cross_site.on_prem_networks = vec!["10.10.0.0/16".to_owned(), "idc-lan".to_owned()],
            check: CIDROverlap, status: Fail, reason: "Unreadable",
            words: &["TerwayRollout default spec.crossSite.onPremNetworks \"idc-lan\" is not a CIDR"], passed: false },
        Case { what: "one cloud node without its network", base: "cidr-pass",
            mutate: |v| report_status_mut(v, "cloud-2").cloud_network = None,
            check: CIDROverlap, status: Pass, reason: "Disjoint", words: &["the vSwitches of cloud-2"], passed: true },
        Case { what: "the Service range in the VPC", base: "cidr-pass",
            mutate: |v| v.service_cidrs[0].spec.as_mut().expect("spec").cidrs = Some(vec!["172.31.0.0/16".to_owned()]),
            check: CIDROverlap, status: Fail, reason: "Overlap",
            words: &["overlaps Service range 172.31.0.0/16 (ServiceCIDR kubernetes spec.cidrs)"], passed: false },
        // OverlayReachesCloud
        Case { what: "flannel runs Ready on cloud nodes", base: "overlay-pass", mutate: none,
            check: OverlayReachesCloud, status: Pass, reason: "OverlayReady", words: &["all 2 cloud nodes"], passed: true },
        Case { what: "flannel's image cannot be pulled", base: "overlay-pass", mutate: |v| image_pull_back_off(v, "kube-flannel-ds", "cloud-2"),
            check: OverlayReachesCloud, status: Fail, reason: "OverlayNotReady",
            words: &["cloud-2: kube-flannel-ds ImagePullBackOff (registry.example.com/kube-flannel-ds:v1)", "image registry"], passed: false },
        Case { what: "flannel is not Ready", base: "overlay-pass", mutate: |v| set_pod_ready(v, "kube-flannel", "kube-flannel-ds", "cloud-1", false),
            check: OverlayReachesCloud, status: Fail, reason: "OverlayNotReady", words: &["cloud-1: CNI pod not Ready"], passed: false },
        Case { what: "no flannel pod on a cloud node", base: "overlay-pass", mutate: |v| remove_pod(v, "kube-flannel-ds", "cloud-1"),
            check: OverlayReachesCloud, status: Fail, reason: "OverlayNotReady", words: &["cloud-1: no overlay CNI pod"], passed: false },
        Case { what: "the overlay check skips bgp", base: "bgp-pass", mutate: none,
            check: OverlayReachesCloud, status: Skip, reason: "NotApplicable", words: &["bgp"], passed: true },
        Case { what: "the overlay check skips host-network", base: "host-network-pass", mutate: none,
            check: OverlayReachesCloud, status: Skip, reason: "NotApplicable", words: &["host-network"], passed: true },
        // BGPPeers
        Case { what: "a full mesh and the VBR session up, the VPC imported", base: "cross-site-pass", mutate: none,
            check: BGPPeers, status: Pass, reason: "Established", words: &["1 of them to the VBR"], passed: true },
        Case { what: "the VBR session is down", base: "cross-site-fail", mutate: none,
            check: BGPPeers, status: Fail, reason: "VBRNotPeered", words: &["VBR address 10.100.0.1", "leased line"], passed: false },
        Case { what: "an on-prem node's sessions are all down", base: "cross-site-pass", mutate: |v| set_sessions(v, "onprem-2", "Active"),
            check: BGPPeers, status: Fail, reason: "SessionsDown",
            words: &["1 of 3 on-prem BGP nodes", "onprem-2 (10.10.0.2 Active, 10.10.0.4 Active)"], passed: false },
        Case { what: "the VBR sends no route covering the VPC", base: "cross-site-pass", mutate: |v| vbr_imports(v, &["172.16.0.0/24"]),
            check: BGPPeers, status: Fail, reason: "VPCRouteMissing", words: &["VPC 172.16.0.0/16", "imported: 172.16.0.0/24"], passed: false },
        Case { what: "no cloud node reports the VPC", base: "cross-site-pass",
            mutate: |v| all_reports(v, |r| if let Some(s) = r.status.as_mut() { s.cloud_network = None }),
            check: BGPPeers, status: Skip, reason: "VPCRouteUnverified", words: &["could not be verified"], passed: true },
        Case { what: "no session reported (an agent that cannot see them)", base: "bgp-pass", mutate: none,
            check: BGPPeers, status: Skip, reason: "NoSessionsSeen", words: &["onprem-1, onprem-2, onprem-3"], passed: true },
        Case { what: "BGPPeers skips an overlay", base: "overlay-pass", mutate: none,
            check: BGPPeers, status: Skip, reason: "NotApplicable", words: &["overlay"], passed: true },
        // CrossSiteConnectivity
        Case { what: "every probed pair reachable", base: "cross-site-pass", mutate: none,
            check: CrossSiteConnectivity, status: Pass, reason: "Reachable", words: &["12 cross-site pairs"], passed: true },
        Case { what: "cloud-2 and onprem-3 do not reach each other", base: "cross-site-fail", mutate: none,
            check: CrossSiteConnectivity, status: Fail, reason: "Unreachable", words: &["cloud-2 → onprem-3 (10.10.0.4:9799, host)"], passed: false },
        Case { what: "targets assigned, no result yet", base: "cross-site-pass",
            mutate: |v| all_reports(v, |r| if let Some(s) = r.status.as_mut() { s.probes.clear() }),
            check: CrossSiteConnectivity, status: Fail, reason: "NotProbedYet", words: &["12 probe targets"], passed: false },
        Case { what: "the failing pair is no longer assigned: its results are stale", base: "cross-site-fail",
            mutate: |v| for (a, b) in [("cloud-2", "onprem-3"), ("onprem-3", "cloud-2")] {
                report_mut(v, a).spec.probe_targets.retain(|t| t.node != b) },
            check: CrossSiteConnectivity, status: Pass, reason: "Reachable", words: &["10 cross-site pairs"], passed: false },
        Case { what: "no probe target anywhere", base: "bgp-pass", mutate: none,
            check: CrossSiteConnectivity, status: Skip, reason: "NotProbed", words: &["controller assigns them"], passed: true },
        // PathMTU (a warning)
        Case { what: "the paths carry 1500-byte packets", base: "cross-site-pass", mutate: none,
            check: PathMTU, status: Pass, reason: "PathMTUFits", words: &["12 cross-site paths"], passed: true },
        Case { what: "a path MTU of 1400 under pod MTUs of 1450 and 1500", base: "cross-site-fail", mutate: none,
            check: PathMTU, status: Fail, reason: "PathMTUBelowPodMTU", words: &["path MTU 1400 < pod MTU 1500", "veth_mtu"], passed: false },
        Case { what: "a small path MTU only warns: the preflight passes", base: "cross-site-pass",
            mutate: |v| all_reports(v, |r| for p in r.status.iter_mut().flat_map(|s| s.probes.iter_mut()) { p.path_mtu = Some(1400) }),
            check: PathMTU, status: Fail, reason: "PathMTUBelowPodMTU",
            words: &["12 of 12", "cloud-1 → onprem-1 (10.10.0.2:9799, host) path MTU 1400 < pod MTU 1500 of cloud-1 (podMtu)", "and 7 more"], passed: true },
        Case { what: "no path MTU measured", base: "bgp-pass", mutate: none,
            check: PathMTU, status: Skip, reason: "NoPathMTU", words: &[], passed: true },
    ]
}

#[test]
fn every_check_passes_and_fails() {
    let mut covered = std::collections::HashSet::new();
    for case in cases() {
        let mut view = example(case.base);
        (case.mutate)(&mut view);
        let p = plan(&view, t0());
        let c = check(&p, case.check);
        let at = format!("{} / {} ({}): {c:#?}", case.check, case.what, case.base);
        assert_eq!(c.status, case.status, "status of {at}");
        assert_eq!(c.severity, severity_of(case.check), "severity of {at}");
        assert_eq!(c.reason, case.reason, "reason of {at}");
        for w in case.words {
            assert!(c.message.contains(w), "message of {at} lacks {w:?}");
        }
        assert_eq!(p.passed, case.passed, "passed, {at}; blocking: {:?}", blocking(&p));
        assert_eq!(p.passed, blocking(&p).is_empty(), "{at}");
        if case.status == Fail && severity_of(case.check) == Severity::Error {
            assert!(blocking(&p).contains(&case.check), "{at}");
            let preflight = condition(&p.status, condition::PREFLIGHT_PASSED);
            assert_eq!(
                (preflight.status.as_str(), preflight.reason.as_str()),
                ("False", "ChecksFailed"),
                "{at}"
            );
            assert!(preflight.message.contains(case.check.as_str()), "{at}: {}", preflight.message);
        }
        covered.insert((case.check, case.status));
    }
    for &name in CLUSTER_CHECKS {
        assert!(covered.contains(&(name, Pass)), "{name} has no passing case");
        assert!(covered.contains(&(name, Fail)), "{name} has no failing case");
    }
}

#[test]
fn a_disagreeing_scenario_makes_it_unknown_and_skips_terway_checks() {
    let mut view = example("bgp-pass");
    set_scenario(&mut view, "onprem-1", Scenario::HostNetwork);
    let p = plan(&view, t0());
    assert_eq!(p.scenario, Scenario::Unknown);
    assert_eq!(p.terway_required, None);
    assert!(!p.passed);
    for name in TERWAY_CHECKS.into_iter().chain([OverlayReachesCloud, BGPPeers]) {
        assert_eq!(check(&p, name).status, Skip, "{name}");
        assert_eq!(check(&p, name).reason, "NotApplicable", "{name}");
    }
    assert_eq!(check(&p, AgentCoverage).status, Pass);
    assert_eq!(blocking(&p), [ScenarioConsistent]);
    assert_eq!(cond(&p, condition::SCENARIO_DETECTED), ("False".to_owned(), "ScenarioUnknown".to_owned()));
    assert!(condition(&p.status, condition::SCENARIO_DETECTED).message.contains("disagree"));
    assert!(gated_rows(&p).is_empty());
    assert!(p.terway_gate.is_none());
}

#[test]
fn checks_that_do_not_apply_to_a_scenario_skip() {
    for name in EXAMPLES {
        let p = plan(&example(name), t0());
        // CIDROverlap skips when the dump has no cloud network (only the
        // cross-site examples carry one), whatever the scenario.
        let view = example(name);
        let vpc_known =
            view.reports.iter().any(|r| r.status.as_ref().is_some_and(|s| s.cloud_network.is_some()));
        let want = if vpc_known { (Pass, "Disjoint") } else { (Skip, "CloudNetworkUnknown") };
        let cidr = check(&p, CIDROverlap);
        assert_eq!((cidr.status, cidr.reason.as_str()), want, "{name}");
        let skipped: Vec<CheckName> = p
            .checks
            .iter()
            .filter(|c| c.status == Skip && c.reason == "NotApplicable")
            .map(|c| c.name)
            .collect();
        let expected: Vec<CheckName> = match p.scenario {
            Scenario::Overlay => TERWAY_CHECKS.into_iter().chain([BGPPeers]).collect(),
            Scenario::Bgp => vec![OverlayReachesCloud],
            _ => vec![OverlayReachesCloud, BGPPeers],
        };
        assert_eq!(skipped, expected, "{name}");
        for c in p.checks.iter().filter(|c| c.status == Skip && c.name != CIDROverlap) {
            // The cross-site checks also skip, with their own reason, when
            // their evidence is missing: never a pass on nothing.
            assert!(c.reason == "NotApplicable" || CROSS_SITE_CHECKS.contains(&c.name), "{name} {}", c.name);
            assert!(!c.is_blocking());
        }
    }
    // Breaking what only Terway needs changes nothing for an overlay.
    let mut view = example("overlay-pass");
    view.addon_secret = None;
    view.eni_config = None;
    set_kernel(&mut view, "cloud-1", "3.10.0");
    fail_node_check(&mut view, "cloud-2");
    let p = plan(&view, t0());
    assert!(p.passed, "{:#?}", p.checks);
    assert!(TERWAY_CHECKS.iter().all(|n| check(&p, *n).status == Skip));
}

// ---- ignoreChecks ----

#[test]
fn ignored_checks_warn_and_the_plan_passes() {
    // One name: that failure warns, the other still blocks.
    let mut view = example("bgp-fail");
    spec_mut(&mut view).ignore_checks = vec!["RamSecret".to_owned()];
    let p = plan(&view, t0());
    let ram = check(&p, RamSecret);
    assert_eq!((ram.status, ram.severity, ram.reason.as_str()), (Fail, Severity::Warning, "NoAccessKey"));
    assert!(ram.message.starts_with("(ignored) "), "{}", ram.message);
    assert_eq!(blocking(&p), [OnPremCNIExcludedFromCloud]);
    assert!(!p.passed);

    // Both names: passed.
    spec_mut(&mut view).ignore_checks = vec!["RamSecret".to_owned(), "OnPremCNIExcludedFromCloud".to_owned()];
    let p = plan(&view, t0());
    assert!(p.passed);
    assert_eq!(failing(&p), [OnPremCNIExcludedFromCloud, RamSecret], "ignored failures are still listed");
    assert!(p.checks.iter().filter(|c| c.status == Fail).all(|c| c.severity == Severity::Warning));
    assert_eq!(cond(&p, condition::PREFLIGHT_PASSED), ("True".to_owned(), "AllChecksPass".to_owned()));

    // `all`, on every failing example.
    for name in ["overlay-fail", "bgp-fail", "host-network-fail", "cross-site-fail"] {
        let mut view = example(name);
        assert!(!plan(&view, t0()).passed);
        spec_mut(&mut view).ignore_checks = vec!["all".to_owned()];
        let p = plan(&view, t0());
        assert!(p.passed, "{name}: {:#?}", p.checks);
        assert!(!failing(&p).is_empty(), "{name}: failures stay visible");
        for c in &p.checks {
            match c.status {
                Fail => {
                    assert_eq!(c.severity, Severity::Warning, "{name} {}", c.name);
                    // A warning blocks nothing: there is nothing to ignore.
                    let ignored = severity_of(c.name) == Severity::Error;
                    assert_eq!(c.message.starts_with("(ignored) "), ignored, "{name} {}", c.name);
                }
                _ => {
                    assert_eq!(c.severity, severity_of(c.name), "{name} {}", c.name);
                    assert!(!c.message.starts_with("(ignored)"), "{name} {}", c.name);
                }
            }
        }
    }

    // Ignoring a passing check, or a check that is not failing, changes nothing.
    let base = plan(&example("bgp-pass"), t0());
    let mut view = example("bgp-pass");
    spec_mut(&mut view).ignore_checks = vec!["EniConfig".to_owned(), "ServiceCIDR".to_owned()];
    let p = plan(&view, t0());
    assert_eq!(p.checks, base.checks);
}

// ---- remediations ----

#[test]
fn remediations_follow_the_remediate_mode() {
    // Never (the default): nothing, even when failing.
    let view = example("bgp-fail");
    assert!(plan(&view, t0()).remediations.is_empty());

    for (mode, apply) in [(Remediate::DryRun, false), (Remediate::Apply, true)] {
        let mut view = example("bgp-fail");
        spec_mut(&mut view).on_prem_cni.remediate = mode;
        let p = plan(&view, t0());
        assert_eq!(p.remediations.len(), 1, "{mode:?}");
        match &p.remediations[0] {
            Remediation::DaemonSet { namespace, name, affinity: a, apply: got, unsafe_because } => {
                assert_eq!((namespace.as_str(), name.as_str()), ("kube-system", "calico-node"));
                assert_eq!(*got, apply, "{mode:?}");
                assert_eq!(unsafe_because, &None);
                assert!(affinity::already_excludes_cloud(Some(a)));
                // The existing requirement is kept: ANDed, not replaced.
                let term = &a
                    .node_affinity
                    .as_ref()
                    .unwrap()
                    .required_during_scheduling_ignored_during_execution
                    .as_ref()
                    .unwrap()
                    .node_selector_terms[0];
                let keys: Vec<&str> =
                    term.match_expressions.iter().flatten().map(|e| e.key.as_str()).collect();
                assert_eq!(keys, ["kubernetes.io/os", CLOUD_LABEL]);
            }
            other => panic!("{mode:?}: {other:?}"),
        }
        // The Tigera operator owns calico-node: the fix goes to the Installation.
        tigera_calico(&mut view);
        let p = plan(&view, t0());
        assert_eq!(p.remediations.len(), 1, "{mode:?}");
        match &p.remediations[0] {
            Remediation::Installation { affinity: a, apply: got, unsafe_because } => {
                assert_eq!(*got, apply);
                assert_eq!(unsafe_because, &None);
                assert!(affinity::already_excludes_cloud(Some(a)));
            }
            other => panic!("{mode:?}: {other:?}"),
        }
        // Nothing to fix once the check passes.
        let mut view = example("bgp-pass");
        spec_mut(&mut view).on_prem_cni.remediate = mode;
        assert!(plan(&view, t0()).remediations.is_empty(), "{mode:?}");
    }

    // An ignored failure needs no fix.
    let mut view = example("bgp-fail");
    spec_mut(&mut view).on_prem_cni.remediate = Remediate::Apply;
    spec_mut(&mut view).ignore_checks = vec!["OnPremCNIExcludedFromCloud".to_owned()];
    assert!(plan(&view, t0()).remediations.is_empty());
}

const EXAMPLES: [&str; 8] = [
    "overlay-pass",
    "overlay-fail",
    "bgp-pass",
    "bgp-fail",
    "host-network-pass",
    "host-network-fail",
    "cross-site-pass",
    "cross-site-fail",
];

/// The names of the checks that fail (whatever their severity).
fn failing(plan: &Plan) -> Vec<CheckName> {
    plan.checks.iter().filter(|c| c.status == CheckStatus::Fail).map(|c| c.name).collect()
}

/// The names of the checks that fail with severity error.
fn blocking(plan: &Plan) -> Vec<CheckName> {
    plan.checks.iter().filter(|c| c.is_blocking()).map(|c| c.name).collect()
}
