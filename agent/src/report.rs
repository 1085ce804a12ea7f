//! The NodeNetworkReport this node's agent writes: built from a detection by
//! pure functions, so what is written can be tested without an API server.

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use terway_hybrid_api::report::{MAX_EVIDENCE, NODE_NAME_LABEL};
use terway_hybrid_api::{
    NodeDetection, NodeNetworkReport, NodeNetworkReportSpec, NodeNetworkReportStatus, Role,
};

/// The server-side-apply field manager of every agent write.
pub const FIELD_MANAGER: &str = "terway-hybrid-agent";
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The report's identity: name, label and owner (deleted with its Node).
/// Applied once per agent start, or when the Node is replaced.
pub fn report_identity(node: &Node) -> Option<NodeNetworkReport> {
    let name = node.metadata.name.clone()?;
    let uid = node.metadata.uid.clone()?;
    let mut report = NodeNetworkReport::new(&name, NodeNetworkReportSpec { node_name: name.clone() });
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

/// The report status for a detection; evidence is bounded so a noisy node
/// cannot grow its object.
pub fn report_status(d: &NodeDetection, role: Role, detected_at: Time) -> NodeNetworkReportStatus {
    let det = &d.detection;
    let bounded = |v: &[terway_hybrid_api::Evidence]| v.iter().take(MAX_EVIDENCE).cloned().collect();
    NodeNetworkReportStatus {
        scenario: det.scenario,
        plugin: det.plugin,
        confidence: det.confidence,
        role,
        kernel_version: d.kernel_version.clone(),
        evidence: bounded(&det.evidence),
        stale: bounded(&det.stale),
        checks: d.checks.clone(),
        ready: !d.checks.iter().any(|c| c.is_blocking()),
        last_detected: detected_at,
        agent_version: AGENT_VERSION.to_owned(),
        bgp_peers: d.bgp_peers.iter().take(terway_hybrid_api::snapshot::MAX_BGP_PEERS).cloned().collect(),
    }
}

/// A fingerprint of what the status says, ignoring when it was detected:
/// the agent writes only when this changes, never on a timer alone.
pub fn content_hash(status: &NodeNetworkReportStatus) -> u64 {
    let mut without_time = serde_json::to_value(status).expect("a status serializes");
    if let Some(obj) = without_time.as_object_mut() {
        obj.remove("lastDetected");
    }
    let mut h = DefaultHasher::new();
    without_time.to_string().hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use terway_hybrid_api::{
        BgpPeer, CheckName, CheckResult, Confidence, Detection, Evidence, Plugin, Severity,
    };

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
                })
                .collect(),
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

    #[test]
    fn status_bounds_evidence_and_derives_ready() {
        let s = report_status(&detection(40, false), Role::OnPrem, Time(Timestamp::UNIX_EPOCH));
        assert_eq!(s.evidence.len(), MAX_EVIDENCE);
        assert_eq!(s.bgp_peers.len(), terway_hybrid_api::snapshot::MAX_BGP_PEERS);
        assert_eq!(s.bgp_peers[31].peer, "10.0.0.31", "the first ones, in BIRD's order");
        assert!(s.ready, "a warning does not block");
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
}
