//! The NodeNetworkReport this node's agent writes: built from a detection by
//! pure functions, so what is written can be tested without an API server.

use crate::text::{self, MAX_MESSAGE};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use terway_hybrid_api::report::{MAX_EVIDENCE, NODE_NAME_LABEL};
use terway_hybrid_api::{
    CheckResult, NodeDetection, NodeNetworkReport, NodeNetworkReportSpec, NodeNetworkReportStatus, Role,
};

/// The server-side-apply field manager of every agent write.
pub const FIELD_MANAGER: &str = "terway-hybrid-agent";
const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// `status.cloudNetwork.vswitchCidrs` holds at most this many (the CRD's bound).
const MAX_VSWITCH_CIDRS: usize = 8;

/// The report's identity: name, label and owner (deleted with its Node).
/// Applied once per agent start, or when the Node is replaced.
pub fn report_identity(node: &Node) -> Option<NodeNetworkReport> {
    let name = node.metadata.name.clone()?;
    let uid = node.metadata.uid.clone()?;
    let mut report = NodeNetworkReport::new(
        &name,
        NodeNetworkReportSpec { node_name: name.clone(), probe_targets: vec![] },
    );
    report.metadata = ObjectMeta {
        name: Some(name.clone()),
        labels: Some(BTreeMap::from([(NODE_NAME_LABEL.to_owned(), name.clone())])),
        owner_references: Some(vec![OwnerReference {
            api_version: "v1".to_owned(),
            kind: "Node".to_owned(),
            name,
            uid,
            ..OwnerReference::default()
        }]),
        ..ObjectMeta::default()
    };
    Some(report)
}

/// The report status for a detection; evidence and every node-derived string
/// are bounded so a noisy node cannot grow its object.
pub fn report_status(d: &NodeDetection, role: Role, detected_at: Time) -> NodeNetworkReportStatus {
    let det = &d.detection;
    let bounded = |v: &[terway_hybrid_api::Evidence]| {
        v.iter()
            .take(MAX_EVIDENCE)
            .map(|e| terway_hybrid_api::Evidence {
                signal: text::bounded(&e.signal, 64).into_owned(),
                detail: text::bounded(&e.detail, MAX_MESSAGE).into_owned(),
            })
            .collect()
    };
    let checks = d
        .checks
        .iter()
        .map(|c| CheckResult { message: text::bounded(&c.message, MAX_MESSAGE).into_owned(), ..c.clone() })
        .collect();
    NodeNetworkReportStatus {
        scenario: det.scenario,
        plugin: det.plugin,
        confidence: det.confidence,
        role,
        kernel_version: text::bounded(&d.kernel_version, 256).into_owned(),
        evidence: bounded(&det.evidence),
        stale: bounded(&det.stale),
        checks,
        ready: !d.checks.iter().any(|c| c.is_blocking()),
        last_detected: detected_at,
        agent_version: AGENT_VERSION.to_owned(),
        bgp_peers: d.bgp_peers.iter().take(terway_hybrid_api::snapshot::MAX_BGP_PEERS).cloned().collect(),
        pod_mtu: d.pod_mtu,
        // Only a cloud node has one; the metadata service gives at most two vSwitch CIDRs.
        cloud_network: d.cloud_network.clone().filter(|_| role == Role::Cloud).map(|mut n| {
            n.vswitch_cidrs.truncate(MAX_VSWITCH_CIDRS);
            n
        }),
        probes: vec![],
    }
}

/// A fingerprint of what the status says, ignoring when it was detected and
/// what of a probe varies from round to round (its round trip, when it ran,
/// the wording of its note): the agent writes only when this changes, never
/// on a timer alone. A probe's target, reachability, path MTU and route
/// count: 5,000 agents probing every minute must not write every minute.
pub fn content_hash(status: &NodeNetworkReportStatus) -> u64 {
    let mut without_time = serde_json::to_value(status).expect("a status serializes");
    if let Some(obj) = without_time.as_object_mut() {
        obj.remove("lastDetected");
        for probe in obj.get_mut("probes").and_then(|p| p.as_array_mut()).into_iter().flatten() {
            if let Some(p) = probe.as_object_mut() {
                for varies in ["rttMs", "probed", "note"] {
                    p.remove(varies);
                }
            }
        }
    }
    let mut h = DefaultHasher::new();
    without_time.to_string().hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use terway_hybrid_api::{BgpPeer, CheckName, Confidence, Detection, Evidence, Plugin, Severity};

    fn node(labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("node-1".into()),
                uid: Some("uid-1".into()),
                labels: Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        }
    }

    fn detection(evidence: usize, blocking: bool) -> NodeDetection {
        let check = if blocking {
            CheckResult::fail(CheckName::IPForwarding, Severity::Error, "Disabled", "off")
        } else {
            CheckResult::fail(CheckName::StaleOverlayDevices, Severity::Warning, "StaleStateFound", "x")
        };
        NodeDetection {
            detection: Detection {
                scenario: Plugin::CalicoBgp.scenario(),
                plugin: Plugin::CalicoBgp,
                confidence: Confidence::High,
                evidence: (0..evidence).map(|i| Evidence::new("routes", format!("e{i}"))).collect(),
                stale: vec![],
            },
            checks: vec![check],
            kernel_version: "5.10.0".into(),
            bgp_peers: (0..40)
                .map(|i| BgpPeer {
                    peer: format!("10.0.0.{i}"),
                    state: "Established".into(),
                    imported_routes: i,
                    imported_prefixes: vec![],
                })
                .collect(),
            pod_mtu: Some(1450),
            cloud_network: None,
        }
    }

    #[test]
    fn identity_names_labels_and_owns() {
        let r = report_identity(&node(&[])).unwrap();
        assert_eq!(r.metadata.name.as_deref(), Some("node-1"));
        assert_eq!(r.metadata.labels.unwrap()[NODE_NAME_LABEL], "node-1");
        let owner = &r.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Node", "uid-1"));
        assert!(report_identity(&Node::default()).is_none(), "no uid, no owner");
    }

    /// Whatever a node holds, the status it writes stays small: every string
    /// is cut at `MAX_MESSAGE` and the whole status serializes to a few tens
    /// of kilobytes (the API server refuses objects over 1.5 MB).
    #[test]
    fn status_bounds_every_node_derived_string() {
        let huge = "x".repeat(800_000);
        let mut d = detection(40, true);
        d.detection.evidence = (0..40).map(|_| Evidence::new("cni-config", huge.clone())).collect();
        d.detection.stale = d.detection.evidence.clone();
        d.checks[0].message = huge.clone();
        d.kernel_version = huge.clone();
        let s = report_status(&d, Role::OnPrem, Time(Timestamp::UNIX_EPOCH));
        for text in
            s.evidence.iter().chain(&s.stale).map(|e| &e.detail).chain(s.checks.iter().map(|c| &c.message))
        {
            assert!(text.len() <= MAX_MESSAGE + 40, "{} bytes", text.len());
            assert!(text.ends_with(&format!("… ({} more bytes)", huge.len() - MAX_MESSAGE)));
        }
        assert!(s.kernel_version.len() <= 256 + 40);
        let size = serde_json::to_string(&s).unwrap().len();
        assert!(size < 100_000, "the status is {size} bytes");
    }

    #[test]
    fn status_bounds_evidence_and_derives_ready() {
        let s = report_status(&detection(40, false), Role::OnPrem, Time(Timestamp::UNIX_EPOCH));
        assert_eq!(s.evidence.len(), MAX_EVIDENCE);
        assert_eq!(s.bgp_peers.len(), terway_hybrid_api::snapshot::MAX_BGP_PEERS);
        assert_eq!(s.bgp_peers[31].peer, "10.0.0.31", "the first ones, in BIRD's order");
        assert!(s.ready, "a warning does not block");
        assert_eq!(s.pod_mtu, Some(1450), "carried from the detection");
        assert!(!report_status(&detection(1, true), Role::OnPrem, Time(Timestamp::UNIX_EPOCH)).ready);
    }

    #[test]
    fn hash_ignores_the_detection_time_only() {
        let d = detection(3, false);
        let a = report_status(&d, Role::OnPrem, Time(Timestamp::UNIX_EPOCH));
        let b = report_status(&d, Role::OnPrem, Time(Timestamp::now()));
        assert_eq!(content_hash(&a), content_hash(&b));
        let c = report_status(&d, Role::Cloud, Time(Timestamp::UNIX_EPOCH));
        assert_ne!(content_hash(&a), content_hash(&c));
    }

    /// Probe results change the hash when a target, its reachability, its
    /// path MTU or its route does; not when only the round trip, the time
    /// or the note's wording does.
    #[test]
    fn hash_counts_what_a_probe_says_not_its_jitter() {
        use terway_hybrid_api::cross_site::{ProbePath, ProbeResult};
        let probe = |node: &str, reachable: bool, mtu: Option<u32>, rtt: f64, at: Timestamp, note: &str| {
            ProbeResult {
                node: node.into(),
                address: "10.1.0.1:9799".into(),
                path: ProbePath::Host,
                reachable,
                rtt_ms: Some(rtt),
                path_mtu: mtu,
                route: Some("dev eth0 proto kernel".into()),
                note: Some(note.into()),
                probed: Time(at),
            }
        };
        let with = |probes: Vec<ProbeResult>| {
            let mut s = report_status(&detection(3, false), Role::OnPrem, Time(Timestamp::UNIX_EPOCH));
            s.probes = probes;
            content_hash(&s)
        };
        let base = with(vec![probe("ecs-1", true, Some(1500), 1.2, Timestamp::UNIX_EPOCH, "")]);
        assert_eq!(base, with(vec![probe("ecs-1", true, Some(1500), 9.7, Timestamp::now(), "other words")]));
        assert_ne!(base, with(vec![]), "the target set");
        assert_ne!(base, with(vec![probe("ecs-2", true, Some(1500), 1.2, Timestamp::UNIX_EPOCH, "")]));
        assert_ne!(base, with(vec![probe("ecs-1", false, Some(1500), 1.2, Timestamp::UNIX_EPOCH, "")]));
        assert_ne!(base, with(vec![probe("ecs-1", true, Some(1400), 1.2, Timestamp::UNIX_EPOCH, "")]));
        let mut rerouted = probe("ecs-1", true, Some(1500), 1.2, Timestamp::UNIX_EPOCH, "");
        rerouted.route = Some("via 10.0.0.254 dev eth1 proto bird".into());
        assert_ne!(base, with(vec![rerouted]));
    }

    /// A cloud node reports the network the metadata service gave; an
    /// on-prem node never carries one, whatever the detection holds.
    #[test]
    fn cloud_network_only_on_cloud_nodes() {
        use terway_hybrid_api::CloudNetwork;
        let mut d = detection(1, false);
        d.cloud_network = Some(CloudNetwork {
            vpc_cidr: Some("192.168.0.0/16".into()),
            vswitch_cidrs: (0..12).map(|i| format!("192.168.{i}.0/24")).collect(),
        });
        let cloud = report_status(&d, Role::Cloud, Time(Timestamp::UNIX_EPOCH)).cloud_network.unwrap();
        assert_eq!(cloud.vpc_cidr.as_deref(), Some("192.168.0.0/16"));
        assert_eq!(cloud.vswitch_cidrs.len(), MAX_VSWITCH_CIDRS);
        assert_eq!(cloud.vswitch_cidrs[0], "192.168.0.0/24");
        assert_eq!(report_status(&d, Role::OnPrem, Time(Timestamp::UNIX_EPOCH)).cloud_network, None);
        let before = content_hash(&report_status(&d, Role::Cloud, Time(Timestamp::UNIX_EPOCH)));
        d.cloud_network.as_mut().unwrap().vpc_cidr = Some("10.0.0.0/8".into());
        let after = content_hash(&report_status(&d, Role::Cloud, Time(Timestamp::UNIX_EPOCH)));
        assert_ne!(before, after, "a changed VPC is a change to write");
    }
}
