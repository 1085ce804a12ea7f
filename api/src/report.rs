//! NodeNetworkReport (docs/contracts.md §3): one per node, named after it, written
//! only by that node's agent, read by the controller.

use crate::check::CheckResult;
use crate::cross_site::{CloudNetwork, ProbeResult, ProbeTarget};
use crate::detection::{BgpPeer, Evidence};
use crate::vocabulary::{Confidence, Plugin, Role, Scenario};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label on every report naming its node, for label-selected watches.
pub const NODE_NAME_LABEL: &str = "terway-hybrid.io/node-name";
/// Reports carry at most this many evidence entries, so a report stays small
/// however noisy a node is.
pub const MAX_EVIDENCE: usize = 16;

/// The spec only names the node; everything the agent found is status.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "terway-hybrid.io",
    version = "v1alpha1",
    kind = "NodeNetworkReport",
    plural = "nodenetworkreports",
    shortname = "nnr",
    status = "NodeNetworkReportStatus",
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".status.role"}"#,
    printcolumn = r#"{"name":"Scenario","type":"string","jsonPath":".status.scenario"}"#,
    printcolumn = r#"{"name":"Plugin","type":"string","jsonPath":".status.plugin"}"#,
    printcolumn = r#"{"name":"Ready","type":"boolean","jsonPath":".status.ready"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NodeNetworkReportSpec {
    #[schemars(length(max = 253))]
    pub node_name: String,
    /// Peers on the other site this node's agent probes, chosen by the
    /// controller (its own field manager: the agent never writes them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub probe_targets: Vec<ProbeTarget>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeNetworkReportStatus {
    pub scenario: Scenario,
    pub plugin: Plugin,
    pub confidence: Confidence,
    pub role: Role,
    #[schemars(length(max = 256))]
    pub kernel_version: String,
    /// What decided the detection, strongest first (at most 16 entries).
    #[schemars(length(max = 16))]
    pub evidence: Vec<Evidence>,
    /// Leftovers of a past CNI (at most 16 entries).
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub stale: Vec<Evidence>,
    #[schemars(length(max = 32))]
    pub checks: Vec<CheckResult>,
    /// No error-severity node check fails.
    pub ready: bool,
    /// When the detection that produced this content ran.
    pub last_detected: Time,
    #[schemars(length(max = 64))]
    pub agent_version: String,
    /// The node's BGP sessions (Calico's BIRD), at most 32.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub bgp_peers: Vec<BgpPeer>,
    /// The MTU this node's pods use, as the CNI's devices show it (the
    /// overlay device, else the pods' host-side veths); absent when unseen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_mtu: Option<u32>,
    /// A cloud node's VPC and vSwitch ranges (ECS metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_network: Option<CloudNetwork>,
    /// Outcomes of the probes of `spec.probeTargets`, at most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub probes: Vec<ProbeResult>,
}
