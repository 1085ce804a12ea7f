//! NodeNetworkReport (DESIGN.md §3.3): one per node, named after it, written
//! only by that node's agent, read by the controller.

use crate::check::CheckResult;
use crate::detection::Evidence;
use crate::vocabulary::{Confidence, Plugin, Role, Scenario};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "terway-hybrid.io";
/// Label on every report naming its node, for label-selected watches.
pub const NODE_NAME_LABEL: &str = "terway-hybrid.io/node-name";
/// The node label that makes a node a cloud node.
pub const CLOUD_LABEL: &str = "alibabacloud.com/external";
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
    pub node_name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeNetworkReportStatus {
    pub scenario: Scenario,
    pub plugin: Plugin,
    pub confidence: Confidence,
    pub role: Role,
    pub kernel_version: String,
    /// What decided the detection, strongest first (at most 16 entries).
    #[schemars(length(max = 16))]
    pub evidence: Vec<Evidence>,
    /// Leftovers of a past CNI (at most 16 entries).
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub stale: Vec<Evidence>,
    pub checks: Vec<CheckResult>,
    /// No error-severity node check fails.
    pub ready: bool,
    /// When the detection that produced this content ran.
    pub last_detected: Time,
    pub agent_version: String,
}

/// Every CRD of the project, in the order `crdgen` prints them.
pub fn crds(
) -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    use kube::CustomResourceExt;
    vec![NodeNetworkReport::crd(), rollout_crd()]
}

/// The TerwayRollout CRD, with a root rule that only `default` may exist
/// (the derive can only place rules inside spec).
fn rollout_crd(
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule;
    use kube::CustomResourceExt;
    let mut crd = crate::rollout::TerwayRollout::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            schema.x_kubernetes_validations = Some(vec![ValidationRule {
                rule: "self.metadata.name == 'default'".to_owned(),
                message: Some("the controller only reads the TerwayRollout named default".to_owned()),
                ..ValidationRule::default()
            }]);
        }
    }
    crd
}

/// The CRDs as the multi-document YAML committed under `deploy/crds/`.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| serde_yaml::to_string(crd).expect("a CRD serializes"))
        .collect::<Vec<_>>()
        .join("---\n")
}
