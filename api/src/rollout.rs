//! TerwayRollout (docs/contracts.md §4): one object, named `default`, that says how
//! the controller may bring Terway onto cloud nodes, and reports how far it got.

use crate::check::CheckResult;
use crate::cross_site::CrossSite;
use crate::vocabulary::Scenario;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Node labels written by the controller (docs/contracts.md §6).
pub const SCENARIO_LABEL: &str = "terway-hybrid.io/scenario";
pub const PREFLIGHT_LABEL: &str = "terway-hybrid.io/preflight";
pub const GATE_LABEL: &str = "terway-hybrid.io/terway-gate";
pub const GATE_OPEN: &str = "open";
/// The most cloud nodes one wave opens (`maxUnavailable` larger than this,
/// or a percentage of a larger cluster, opens this many at a time).
pub const MAX_WAVE_NODES: usize = 1000;

/// Condition types of the rollout status.
pub mod condition {
    pub const SCENARIO_DETECTED: &str = "ScenarioDetected";
    pub const PREFLIGHT_PASSED: &str = "PreflightPassed";
    pub const PROGRESSING: &str = "Progressing";
    pub const AVAILABLE: &str = "Available";
    pub const DEGRADED: &str = "Degraded";
}

/// Reasons of the `Degraded` condition.
pub mod degraded {
    pub const WAVE_FAILED: &str = "WaveFailed";
    /// `spec.crossSite.gateWaves`: the wave's pods do not reach the on-prem pods.
    pub const CROSS_SITE_UNREACHABLE: &str = "CrossSiteUnreachable";
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "terway-hybrid.io",
    version = "v1alpha1",
    kind = "TerwayRollout",
    plural = "terwayrollouts",
    shortname = "twr",
    status = "TerwayRolloutStatus",
    printcolumn = r#"{"name":"Scenario","type":"string","jsonPath":".status.scenario"}"#,
    printcolumn = r#"{"name":"Preflight","type":"string","jsonPath":".status.conditions[?(@.type==\"PreflightPassed\")].status"}"#,
    printcolumn = r#"{"name":"Progressing","type":"string","jsonPath":".status.conditions[?(@.type==\"Progressing\")].status"}"#,
    printcolumn = r#"{"name":"Degraded","type":"string","jsonPath":".status.conditions[?(@.type==\"Degraded\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TerwayRolloutSpec {
    /// `Manual`: check and report only. `Auto`: open the Terway gate on cloud nodes in waves.
    #[serde(default)]
    pub mode: Mode,
    /// Cloud nodes admitted per wave: a count (>= 1) or a percentage of the cloud nodes ("25%").
    #[serde(default = "default_max_unavailable")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "type(self) == int ? self >= 1 : self.matches('^([1-9][0-9]?|100)%$')",
        "message": "maxUnavailable is a count of at least 1 or a percentage from 1% to 100%"
    }]))]
    pub max_unavailable: IntOrString,
    /// Stop at the current wave: gates already open stay open, no new ones open.
    #[serde(default)]
    pub paused: bool,
    /// Labels that make a node a cloud node.
    #[serde(default = "default_cloud_selector")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "size(self) > 0", "message": "cloudNodeSelector cannot be empty: it would make every node a cloud node"
    }]))]
    pub cloud_node_selector: BTreeMap<String, String>,
    // Spelled `onPremCNI` as docs/contracts.md §4 names it (not the derived `onPremCni`).
    #[serde(default, rename = "onPremCNI")]
    pub on_prem_cni: OnPremCni,
    #[serde(default)]
    pub terway: TerwayRef,
    /// Check names (or `all`) whose failures only warn, as kubeadm's --ignore-preflight-errors.
    // Bounded (16 names of at most 64 characters) so the API server can bound
    // the cost of the CEL rule: unbounded, a real server refuses the CRD
    // ("estimated rule cost exceeds budget").
    #[serde(default)]
    #[schemars(length(max = 16), inner(length(max = 64)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(c, c in ['all', 'AgentCoverage', 'ScenarioConsistent', 'OnPremCNIExcludedFromCloud', 'TerwayExcludedFromOnPrem', 'RamSecret', 'EniConfig', 'ServiceCIDR', 'CloudNodeKernel', 'CloudNodePreflight', 'OverlayReachesCloud', 'CIDROverlap', 'BGPPeers', 'CrossSiteConnectivity', 'PathMTU'])",
        "message": "ignoreChecks holds cluster check names or 'all'"
    }]))]
    pub ignore_checks: Vec<String>,
    /// How long a gated node's Terway pod may take to become Ready, as a
    /// duration like "10m" or "90s".
    #[serde(default = "default_readiness_timeout")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^([0-9]{1,5}h)?([0-9]{1,5}m)?([0-9]{1,5}s)?$') && self != '' && duration(self) >= duration('1s') && duration(self) <= duration('24h')",
        "message": "readinessTimeout is a duration from 1s to 24h such as 10m, 90s or 1h30m"
    }]))]
    pub readiness_timeout: String,
    /// Cross-site readiness: declared ranges, the VBR's BGP peers, probing.
    #[serde(default)]
    pub cross_site: CrossSite,
}

impl Default for TerwayRolloutSpec {
    fn default() -> Self {
        TerwayRolloutSpec {
            mode: Mode::default(),
            max_unavailable: default_max_unavailable(),
            paused: false,
            cloud_node_selector: default_cloud_selector(),
            on_prem_cni: OnPremCni::default(),
            terway: TerwayRef::default(),
            ignore_checks: vec![],
            readiness_timeout: default_readiness_timeout(),
            cross_site: CrossSite::default(),
        }
    }
}

fn default_max_unavailable() -> IntOrString {
    IntOrString::Int(1)
}

fn default_cloud_selector() -> BTreeMap<String, String> {
    crate::vocabulary::default_cloud_selector()
}

fn default_readiness_timeout() -> String {
    "10m".to_owned()
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Mode {
    #[default]
    Manual,
    Auto,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnPremCni {
    /// The on-prem CNI DaemonSets; empty means: find them by their well-known
    /// names (calico-node, kube-flannel-ds, canal, cilium, kube-router) in any namespace.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub daemon_sets: Vec<NamespacedName>,
    #[serde(default)]
    pub remediate: Remediate,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Remediate {
    #[default]
    Never,
    DryRun,
    Apply,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub struct NamespacedName {
    #[schemars(length(max = 63))]
    pub namespace: String,
    #[schemars(length(max = 253))]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TerwayRef {
    #[serde(default = "default_terway_namespace")]
    #[schemars(length(max = 63))]
    pub namespace: String,
    #[serde(default = "default_terway_name")]
    #[schemars(length(max = 253))]
    pub daemon_set_name: String,
}

impl Default for TerwayRef {
    fn default() -> Self {
        TerwayRef { namespace: default_terway_namespace(), daemon_set_name: default_terway_name() }
    }
}

fn default_terway_namespace() -> String {
    crate::names::TERWAY_NAMESPACE.to_owned()
}

fn default_terway_name() -> String {
    crate::names::TERWAY_DAEMONSET.to_owned()
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TerwayRolloutStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<Scenario>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terway_required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub checks: Vec<CheckResult>,
    #[serde(default)]
    pub nodes: NodeCounts,
    /// The wave in progress (1-based); 0 before the first.
    #[serde(default)]
    pub current_wave: u32,
    /// The nodes whose gate the current wave opened, and when it began.
    #[serde(default)]
    pub wave: Option<Wave>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Wave {
    /// At most [`MAX_WAVE_NODES`]: a wave of more is cut there.
    #[schemars(length(max = 1000), inner(length(max = 253)))]
    pub nodes: Vec<String>,
    pub started: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeCounts {
    pub total: u32,
    pub on_prem: u32,
    pub cloud: u32,
    pub reported: u32,
    pub preflight_passed: u32,
    pub gated: u32,
    pub terway_ready: u32,
}
