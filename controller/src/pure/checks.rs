//! Cluster checks (docs/contracts.md §5): pure functions over a [`Cluster`], each
//! with a CamelCase reason and a message that says what to do. A check that
//! does not apply to the scenario is `skip`.

use crate::pure::affinity;
use crate::pure::cluster::{
    image_pull_problem, pod_ready, pod_runs, qualified, some_of, tigera_ownership, Cluster,
};
use crate::pure::scheduling;
use ipnet::IpNet;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::net::IpAddr;
use terway_hybrid_api::kernel;
use terway_hybrid_api::names::{ACCESS_KEY_ID, ACCESS_KEY_SECRET};
use terway_hybrid_api::{CheckName, CheckResult, Scenario, Severity};

/// Most names a message lists before "and N more".
const LIST: usize = 5;
/// Terway's limit on security groups per ENI.
const MAX_SECURITY_GROUPS: usize = 10;

/// The cluster scenario, and whether the on-prem nodes agree on it.
pub struct ScenarioVerdict {
    pub scenario: Scenario,
    pub check: CheckResult,
}

pub fn scenario_consistent(c: &Cluster) -> ScenarioVerdict {
    let name = CheckName::ScenarioConsistent;
    let mut by_scenario: BTreeMap<Scenario, Vec<&str>> = BTreeMap::new();
    for n in c.on_prem() {
        if let Some(status) = n.current_report().and_then(|r| r.status.as_ref()) {
            by_scenario.entry(status.scenario).or_default().push(n.name());
        }
    }
    let fail = |reason: &str, message: String| ScenarioVerdict {
        scenario: Scenario::Unknown,
        check: CheckResult::fail(name, Severity::Error, reason, message),
    };
    match by_scenario.len() {
        0 => fail(
            "NoOnPremReports",
            "no on-prem node has reported yet: is the terway-hybrid-agent DaemonSet running?".to_owned(),
        ),
        1 => {
            let (scenario, nodes) = by_scenario.into_iter().next().expect("one entry");
            if scenario == Scenario::Unknown {
                fail(
                    "ScenarioUnknown",
                    format!(
                        "the on-prem nodes could not classify their network ({}): read their NodeNetworkReport evidence",
                        some_of(&nodes, LIST)
                    ),
                )
            } else {
                ScenarioVerdict {
                    scenario,
                    check: CheckResult::pass(
                        name,
                        Severity::Error,
                        "Consistent",
                        format!("all {} reporting on-prem nodes are {scenario}", nodes.len()),
                    ),
                }
            }
        }
        _ => {
            let groups: Vec<String> =
                by_scenario.iter().map(|(s, nodes)| format!("{s}: {}", some_of(nodes, LIST))).collect();
            fail(
                "Inconsistent",
                format!(
                    "on-prem nodes disagree on the scenario ({}); a cluster runs one CNI: find the odd nodes' \
                     leftovers in their NodeNetworkReport",
                    groups.join("; ")
                ),
            )
        }
    }
}

pub fn agent_coverage(c: &Cluster) -> CheckResult {
    let name = CheckName::AgentCoverage;
    let mut missing = Vec::new();
    let mut stale = Vec::new();
    let mut agent_down = Vec::new();
    for n in c.nodes.values() {
        if n.report.is_none() {
            missing.push(n.name());
        } else if n.current_report().is_none() {
            stale.push(n.name());
        } else if let Some(agent) = c.agent {
            // A report is current only while the node's agent runs: it
            // writes on every start and on every change.
            if !c.pod_of(agent, n.name()).is_some_and(pod_ready) {
                agent_down.push(n.name());
            }
        }
    }
    if missing.is_empty() && stale.is_empty() && agent_down.is_empty() {
        return CheckResult::pass(
            name,
            Severity::Error,
            "AllNodesReported",
            format!("all {} nodes have a current NodeNetworkReport", c.nodes.len()),
        );
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("no report from {}", some_of(&missing, LIST)));
    }
    if !stale.is_empty() {
        parts.push(format!("reports of a previous node of the same name on {}", some_of(&stale, LIST)));
    }
    if !agent_down.is_empty() {
        parts.push(format!("agent pod not Ready on {}", some_of(&agent_down, LIST)));
    }
    CheckResult::fail(
        name,
        Severity::Error,
        "NodesNotReported",
        format!(
            "{}: the terway-hybrid-agent DaemonSet must run on every node (it tolerates every taint; check its pods)",
            parts.join("; ")
        ),
    )
}

/// A node that only carries the cloud labels: what a new cloud node looks like.
fn hypothetical_cloud_node(c: &Cluster) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some("(a new cloud node)".to_owned()),
            labels: Some(c.spec.cloud_node_selector.clone()),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

pub fn on_prem_cni_excluded_from_cloud(c: &Cluster, scenario: Scenario) -> CheckResult {
    let name = CheckName::OnPremCNIExcludedFromCloud;
    if scenario.terway_required() != Some(true) {
        return CheckResult::skip(
            name,
            Severity::Error,
            "NotApplicable",
            format!("the {scenario} scenario keeps its CNI on cloud nodes (or is not known yet)"),
        );
    }
    if c.on_prem_cnis.is_empty() {
        return CheckResult::pass(name, Severity::Error, "NoOnPremCNI", "no on-prem CNI DaemonSet found");
    }
    let probe = hypothetical_cloud_node(c);
    let mut problems = Vec::new();
    // Whether some DaemonSet would still place pods on cloud nodes (else only
    // pods placed earlier are left there).
    let mut admits_cloud = false;
    for ds in &c.on_prem_cnis {
        let admitted: Vec<&str> =
            c.cloud().filter(|n| scheduling::admits(ds, n.node).is_admitted()).map(|n| n.name()).collect();
        let admits_new = scheduling::admits(ds, &probe).is_admitted();
        // A pod placed before the node turned cloud (or before a NoSchedule
        // taint) keeps running: the DaemonSet controller evicts only for
        // NoExecute. Admission alone would pass while it still runs there.
        let running: Vec<String> = c
            .cloud()
            .filter(|n| !admitted.contains(&n.name()))
            .filter_map(|n| c.pod_of(ds, n.name()).filter(|p| pod_runs(p)).map(|p| (n.name(), p)))
            .map(|(node, pod)| format!("{} on {node}", pod.metadata.name.as_deref().unwrap_or("<unnamed>")))
            .collect();
        if admitted.is_empty() && !admits_new && running.is_empty() {
            continue;
        }
        if admitted.is_empty() && !admits_new {
            problems.push(format!(
                "{} keeps cloud nodes out of new placements but its pods still run there: {}; delete them \
                 (`kubectl -n {} delete pod NAME`): a running pod is not moved by affinity",
                qualified(ds),
                some_of(&running, LIST),
                ds.metadata.namespace.as_deref().unwrap_or("")
            ));
            continue;
        }
        admits_cloud = true;
        let mut whom = if admitted.is_empty() {
            "would run on any new cloud node".to_owned()
        } else {
            format!("runs on cloud nodes {}", some_of(&admitted, LIST))
        };
        if !running.is_empty() {
            whom.push_str(&format!(" and its pods still run on {}", some_of(&running, LIST)));
        }
        let fix = if tigera_ownership(ds, c.view.installation.is_some()).is_some() {
            "the Tigera operator owns it, so the fix belongs in Installation default, \
             spec.calicoNodeDaemonSet.spec.template.spec.affinity (a direct patch is reverted): \
             `terway-hybrid fix calico-affinity`"
                .to_owned()
        } else {
            format!(
                "add the required node affinity alibabacloud.com/external NotIn [\"true\"] to every term: \
                 `terway-hybrid fix cni-affinity --daemonset {}`",
                qualified(ds)
            )
        };
        problems.push(format!("{} {whom}; {fix}", qualified(ds)));
    }
    if problems.is_empty() {
        CheckResult::pass(
            name,
            Severity::Error,
            "Excluded",
            format!(
                "{} keep off cloud nodes",
                c.on_prem_cnis.iter().map(|d| qualified(d)).collect::<Vec<_>>().join(", ")
            ),
        )
    } else if admits_cloud {
        CheckResult::fail(name, Severity::Error, "OnPremCNIAdmitsCloudNodes", problems.join(". "))
    } else {
        CheckResult::fail(name, Severity::Error, "OnPremCNIRunsOnCloudNodes", problems.join(". "))
    }
}

pub fn terway_excluded_from_on_prem(c: &Cluster, scenario: Scenario) -> CheckResult {
    let name = CheckName::TerwayExcludedFromOnPrem;
    if scenario.terway_required() != Some(true) {
        return CheckResult::skip(
            name,
            Severity::Error,
            "NotApplicable",
            format!("Terway is not needed ({scenario})"),
        );
    }
    let Some(terway) = c.terway else {
        return CheckResult::pass(
            name,
            Severity::Error,
            "NotInstalled",
            format!("{}/{} is not installed yet", c.spec.terway.namespace, c.spec.terway.daemon_set_name),
        );
    };
    let admitted: Vec<&str> =
        c.on_prem().filter(|n| scheduling::admits(terway, n.node).is_admitted()).map(|n| n.name()).collect();
    if admitted.is_empty() {
        CheckResult::pass(
            name,
            Severity::Error,
            "Excluded",
            format!("{} runs on no on-prem node", qualified(terway)),
        )
    } else {
        CheckResult::fail(
            name,
            Severity::Error,
            "TerwayAdmitsOnPremNodes",
            format!(
                "{} would run on on-prem nodes {}: restrict it to cloud nodes (nodeSelector \
                 alibabacloud.com/external=true, or the gate label terway-hybrid.io/terway-gate=open)",
                qualified(terway),
                some_of(&admitted, LIST)
            ),
        )
    }
}

fn not_applicable(name: CheckName, scenario: Scenario) -> Option<CheckResult> {
    (scenario.terway_required() != Some(true)).then(|| {
        CheckResult::skip(
            name,
            Severity::Error,
            "NotApplicable",
            format!("Terway is not needed ({scenario})"),
        )
    })
}

pub fn ram_secret(c: &Cluster, scenario: Scenario) -> CheckResult {
    let name = CheckName::RamSecret;
    if let Some(skip) = not_applicable(name, scenario) {
        return skip;
    }
    let secret = c.view.addon_secret.as_ref();
    let both =
        |s: &crate::pure::view::SecretKeys| s.non_empty(ACCESS_KEY_ID) && s.non_empty(ACCESS_KEY_SECRET);
    if secret.is_some_and(both) {
        return CheckResult::pass(
            name,
            Severity::Error,
            "AddonSecret",
            "kube-system/alibaba-addon-secret holds access-key-id and access-key-secret",
        );
    }
    if let Some(Ok(conf)) = &c.eni_conf {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        if set(&conf.access_key) && set(&conf.access_secret) {
            return CheckResult::pass(
                name,
                Severity::Error,
                "EniConfAccessKey",
                "eni_conf carries an AccessKey",
            );
        }
    }
    let what = match secret {
        None => "kube-system/alibaba-addon-secret does not exist".to_owned(),
        Some(s) => {
            let missing: Vec<&str> =
                [ACCESS_KEY_ID, ACCESS_KEY_SECRET].into_iter().filter(|k| !s.non_empty(k)).collect();
            format!("kube-system/alibaba-addon-secret lacks a value for {}", missing.join(" and "))
        }
    };
    CheckResult::fail(
        name,
        Severity::Error,
        "NoAccessKey",
        format!(
            "{what}, and eni_conf has no access_key/access_secret: create the Secret for the RAM user with \
             Terway's policy (`terway-hybrid ram-secret create`, policy from `terway-hybrid ram-policy`)"
        ),
    )
}

pub fn eni_config(c: &Cluster, scenario: Scenario) -> CheckResult {
    let name = CheckName::EniConfig;
    if let Some(skip) = not_applicable(name, scenario) {
        return skip;
    }
    let Some(conf) = &c.eni_conf else {
        return CheckResult::fail(
            name,
            Severity::Error,
            "Missing",
            "ConfigMap kube-system/eni-config does not exist: set Terway's network parameters (vSwitches, \
             security groups, Service CIDR) when adding the cloud node pool",
        );
    };
    let conf = match conf {
        Ok(conf) => conf,
        Err(e) => {
            return CheckResult::fail(
                name,
                Severity::Error,
                "Unparseable",
                format!("kube-system/eni-config: {e}"),
            )
        }
    };
    let mut problems = Vec::new();
    let vswitches: Vec<&String> = conf.vswitches.iter().flat_map(|m| m.values().flatten()).collect();
    if vswitches.is_empty() {
        problems.push("eni_conf.vswitches names no vSwitch".to_owned());
    }
    let bad_vsw: Vec<&str> =
        vswitches.iter().filter(|v| !v.starts_with("vsw-")).map(|v| v.as_str()).collect();
    if !bad_vsw.is_empty() {
        problems.push(format!("not vSwitch IDs (vsw-...): {}", some_of(&bad_vsw, LIST)));
    }
    let groups: Vec<&String> =
        conf.security_groups.iter().flatten().chain(conf.security_group.iter()).collect();
    if groups.is_empty() {
        problems.push("no security_group / security_groups".to_owned());
    }
    let bad_sg: Vec<&str> = groups.iter().filter(|g| !g.starts_with("sg-")).map(|g| g.as_str()).collect();
    if !bad_sg.is_empty() {
        problems.push(format!("not security group IDs (sg-...): {}", some_of(&bad_sg, LIST)));
    }
    if groups.len() > MAX_SECURITY_GROUPS {
        problems
            .push(format!("{} security groups, Terway allows at most {MAX_SECURITY_GROUPS}", groups.len()));
    }
    match c.eni_config().and_then(|d| d.get("10-terway.conf")) {
        None => problems.push("no 10-terway.conf key".to_owned()),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Err(e) => problems.push(format!(
                "10-terway.conf is not valid JSON ({}line {} column {})",
                crate::pure::cluster::json_error_kind(&e),
                e.line(),
                e.column()
            )),
            Ok(v) => {
                if let Some(t) = v.get("eniip_virtual_type").and_then(|t| t.as_str()) {
                    if !["veth", "ipvlan", "datapathv2"].contains(&t.to_ascii_lowercase().as_str()) {
                        problems.push(format!(
                            "10-terway.conf eniip_virtual_type {t:?} is not Veth, IPVlan or datapathv2"
                        ));
                    }
                }
            }
        },
    }
    if problems.is_empty() {
        CheckResult::pass(
            name,
            Severity::Error,
            "Valid",
            format!("{} vSwitches, {} security groups", vswitches.len(), groups.len()),
        )
    } else {
        CheckResult::fail(
            name,
            Severity::Error,
            "Invalid",
            format!(
                "kube-system/eni-config: {}: fix the node pool's Terway network parameters",
                problems.join("; ")
            ),
        )
    }
}

/// Terway's datapath mode from `10-terway.conf` (IPVlan when unsaid: Terway's default for eniip).
fn virtual_type(c: &Cluster) -> String {
    c.eni_config()
        .and_then(|d| d.get("10-terway.conf"))
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .and_then(|v| v.get("eniip_virtual_type").and_then(|t| t.as_str()).map(str::to_ascii_lowercase))
        .unwrap_or_else(|| "ipvlan".to_owned())
}

pub fn cloud_node_kernel(c: &Cluster, scenario: Scenario) -> CheckResult {
    let name = CheckName::CloudNodeKernel;
    if let Some(skip) = not_applicable(name, scenario) {
        return skip;
    }
    let mode = virtual_type(c);
    let floor = match mode.as_str() {
        "veth" => {
            return CheckResult::pass(name, Severity::Error, "VethMode", "Veth mode has no kernel floor");
        }
        "datapathv2" => kernel::RECOMMENDED,
        _ => kernel::MIN_FOR_IPVLAN,
    };
    let mut too_old = Vec::new();
    for n in c.cloud() {
        let release = n
            .node
            .status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.kernel_version.clone())
            .or_else(|| n.current_report().and_then(|r| r.status.as_ref()).map(|s| s.kernel_version.clone()))
            .unwrap_or_default();
        if kernel::parse(&release).is_none_or(|v| v < floor) {
            too_old.push(format!("{} ({})", n.name(), if release.is_empty() { "unknown" } else { &release }));
        }
    }
    if too_old.is_empty() {
        CheckResult::pass(
            name,
            Severity::Error,
            "Supported",
            format!("every cloud node runs kernel >= {}.{} ({mode})", floor.0, floor.1),
        )
    } else {
        CheckResult::fail(
            name,
            Severity::Error,
            "KernelTooOld",
            format!(
                "{mode} needs kernel >= {}.{}; too old: {}. Use a newer node image, or Veth mode",
                floor.0,
                floor.1,
                some_of(&too_old, LIST)
            ),
        )
    }
}

pub fn service_cidr(c: &Cluster, scenario: Scenario) -> CheckResult {
    let name = CheckName::ServiceCIDR;
    if let Some(skip) = not_applicable(name, scenario) {
        return skip;
    }
    let Some(Ok(conf)) = &c.eni_conf else {
        return CheckResult::fail(name, Severity::Error, "NoEniConf", "no readable eni_conf (see EniConfig)");
    };
    let Some(text) = conf.service_cidr.as_deref().filter(|s| !s.trim().is_empty()) else {
        return CheckResult::fail(name, Severity::Error, "Missing", "eni_conf has no service_cidr");
    };
    let mut cidrs = Vec::new();
    for part in text.split(',').map(str::trim) {
        match Cidr::parse(part) {
            Some(cidr) => cidrs.push(cidr),
            None => {
                return CheckResult::fail(
                    name,
                    Severity::Error,
                    "Unparseable",
                    format!("eni_conf service_cidr {part:?} is not a CIDR"),
                )
            }
        }
    }
    let cluster_ip = c
        .view
        .kubernetes_service
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.cluster_ip.as_deref())
        .and_then(|ip| ip.parse::<IpAddr>().ok());
    let mut problems = Vec::new();
    match cluster_ip {
        None => problems.push("the ClusterIP of default/kubernetes is not known".to_owned()),
        Some(ip) if !cidrs.iter().any(|c| c.contains(ip)) => {
            problems.push(format!("it does not contain {ip}, the ClusterIP of default/kubernetes: it is not the cluster's Service CIDR"))
        }
        Some(_) => {}
    }
    let mut overlaps = Vec::new();
    for n in c.nodes.values() {
        let spec = n.node.spec.as_ref();
        let pod_cidrs = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
        for p in pod_cidrs.iter().chain(spec.and_then(|s| s.pod_cidr.as_ref())) {
            if let Some(p) = Cidr::parse(p) {
                if cidrs.iter().any(|s| s.overlaps(&p)) {
                    overlaps.push(format!("pod CIDR {} of {}", p.text, n.name()));
                }
            }
        }
        for a in n.node.status.as_ref().and_then(|s| s.addresses.as_ref()).into_iter().flatten() {
            if let Ok(ip) = a.address.parse::<IpAddr>() {
                if cidrs.iter().any(|s| s.contains(ip)) {
                    overlaps.push(format!("address {ip} of {}", n.name()));
                }
            }
        }
    }
    overlaps.dedup();
    if !overlaps.is_empty() {
        problems.push(format!("it overlaps {}", some_of(&overlaps, LIST)));
    }
    if problems.is_empty() {
        CheckResult::pass(name, Severity::Error, "Valid", format!("service_cidr {text} matches the cluster"))
    } else {
        CheckResult::fail(
            name,
            Severity::Error,
            "Mismatch",
            format!(
                "eni_conf service_cidr {text}: {}; set it to the cluster's Service CIDR",
                problems.join("; ")
            ),
        )
    }
}

pub fn cloud_node_preflight(c: &Cluster, scenario: Scenario) -> CheckResult {
    let name = CheckName::CloudNodePreflight;
    if let Some(skip) = not_applicable(name, scenario) {
        return skip;
    }
    let mut failing = Vec::new();
    for n in c.cloud() {
        let Some(status) = n.current_report().and_then(|r| r.status.as_ref()) else {
            failing.push(format!("{} (no report)", n.name()));
            continue;
        };
        if let Some(first) = status.checks.iter().find(|c| c.is_blocking()) {
            failing.push(format!("{} ({}: {})", n.name(), first.name, first.reason));
        }
    }
    let cloud = c.cloud().count();
    if failing.is_empty() {
        CheckResult::pass(
            name,
            Severity::Error,
            "AllPass",
            format!("all {cloud} cloud nodes pass their node checks"),
        )
    } else {
        CheckResult::fail(
            name,
            Severity::Error,
            "CloudNodesFailing",
            format!(
                "{} of {cloud} cloud nodes fail their node checks: {}; `kubectl get nodenetworkreport NODE -o yaml` \
                 shows each check's message",
                failing.len(),
                some_of(&failing, LIST)
            ),
        )
    }
}

pub fn overlay_reaches_cloud(c: &Cluster, scenario: Scenario) -> CheckResult {
    let name = CheckName::OverlayReachesCloud;
    if scenario != Scenario::Overlay {
        return CheckResult::skip(
            name,
            Severity::Error,
            "NotApplicable",
            format!("not an overlay ({scenario})"),
        );
    }
    let mut problems = Vec::new();
    for n in c.cloud() {
        let mut pods = c.on_prem_cnis.iter().filter_map(|ds| c.pod_of(ds, n.name()));
        match pods.next() {
            None => problems.push(format!("{}: no overlay CNI pod", n.name())),
            Some(pod) => {
                if let Some(pull) = image_pull_problem(pod) {
                    problems.push(format!("{}: {pull}", n.name()));
                } else if !pod_ready(pod) {
                    problems.push(format!("{}: CNI pod not Ready", n.name()));
                }
            }
        }
    }
    if problems.is_empty() {
        CheckResult::pass(
            name,
            Severity::Error,
            "OverlayReady",
            format!("the overlay CNI runs Ready on all {} cloud nodes", c.cloud().count()),
        )
    } else {
        CheckResult::fail(
            name,
            Severity::Error,
            "OverlayNotReady",
            format!(
                "{}. Cloud nodes must run the overlay CNI: its DaemonSet must admit them and they must reach its \
                 image registry",
                some_of(&problems, LIST)
            ),
        )
    }
}

/// Whether a check failure is turned into a warning by `ignoreChecks` /
/// `--ignore-preflight-errors` (names, or `all`), as kubeadm does.
pub fn apply_ignores(checks: &mut [CheckResult], ignore: &[String]) {
    let all = ignore.iter().any(|i| i.eq_ignore_ascii_case("all"));
    for check in checks.iter_mut() {
        let named = ignore.iter().any(|i| i.eq_ignore_ascii_case(check.name.as_str()));
        if check.is_blocking() && (all || named) {
            check.severity = Severity::Warning;
            check.message = format!("(ignored) {}", check.message);
        }
    }
}

/// Terway's DaemonSet requires the gate label in every node-affinity term,
/// so it runs only where the controller opened the gate.
pub fn terway_requires_gate(terway: &DaemonSet) -> bool {
    affinity::requires_gate(affinity::daemon_set_affinity(terway))
}

/// A CIDR as written (for messages) and as parsed. Host bits are dropped,
/// as the API server does for a Service CIDR.
#[derive(Debug, Clone)]
struct Cidr {
    text: String,
    net: IpNet,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let net: IpNet = s.trim().parse().ok()?;
        Some(Cidr { text: s.trim().to_owned(), net: net.trunc() })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.net.contains(&ip)
    }

    /// Two prefixes overlap iff one holds the other (never across families).
    fn overlaps(&self, other: &Cidr) -> bool {
        self.net.contains(&other.net) || other.net.contains(&self.net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_math() {
        let svc = Cidr::parse("10.96.0.0/12").unwrap();
        assert!(svc.contains("10.96.0.1".parse().unwrap()));
        assert!(svc.contains("10.111.255.255".parse().unwrap()));
        assert!(!svc.contains("10.112.0.0".parse().unwrap()));
        assert!(svc.overlaps(&Cidr::parse("10.100.0.0/24").unwrap()));
        assert!(svc.overlaps(&Cidr::parse("10.0.0.0/8").unwrap()));
        assert!(!svc.overlaps(&Cidr::parse("10.244.0.0/16").unwrap()));
        let v6 = Cidr::parse("fd00:96::/108").unwrap();
        assert!(v6.contains("fd00:96::1".parse().unwrap()));
        assert!(!v6.contains("10.96.0.1".parse().unwrap()));
        assert!(!v6.overlaps(&svc));
        assert!(Cidr::parse("10.96.0.0/33").is_none());
        assert!(Cidr::parse("10.96.0.0").is_none());
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn ignores_turn_errors_into_warnings() {
        let mut checks = vec![
            CheckResult::fail(CheckName::RamSecret, Severity::Error, "NoAccessKey", "x"),
            CheckResult::fail(CheckName::EniConfig, Severity::Error, "Missing", "y"),
            CheckResult::pass(CheckName::ServiceCIDR, Severity::Error, "Valid", "z"),
        ];
        apply_ignores(&mut checks, &["ramsecret".to_owned()]);
        assert_eq!(checks[0].severity, Severity::Warning);
        assert!(checks[0].message.starts_with("(ignored)"));
        assert!(checks[1].is_blocking());
        apply_ignores(&mut checks, &["all".to_owned()]);
        assert!(!checks.iter().any(|c| c.is_blocking()));
        assert_eq!(checks[2].message, "z", "passing checks are untouched");
    }
}
