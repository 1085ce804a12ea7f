//! The check model shared by node checks (agent) and cluster checks
//! (controller, CLI). Check names are stable: users pass them to
//! `--ignore-preflight-errors`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum CheckName {
    // Node checks, run by the agent.
    ScenarioDetected,
    IPForwarding,
    ForeignCNIConfig,
    StaleOverlayDevices,
    KernelVersion,
    EcsMetadata,
    // Cluster checks, run by the controller and the CLI.
    AgentCoverage,
    ScenarioConsistent,
    OnPremCNIExcludedFromCloud,
    TerwayExcludedFromOnPrem,
    RamSecret,
    EniConfig,
    ServiceCIDR,
    CloudNodeKernel,
    CloudNodePreflight,
    OverlayReachesCloud,
    CIDROverlap,
    BGPPeers,
    CrossSiteConnectivity,
    PathMTU,
}

impl CheckName {
    pub const ALL: [CheckName; 20] = [
        CheckName::ScenarioDetected,
        CheckName::IPForwarding,
        CheckName::ForeignCNIConfig,
        CheckName::StaleOverlayDevices,
        CheckName::KernelVersion,
        CheckName::EcsMetadata,
        CheckName::AgentCoverage,
        CheckName::ScenarioConsistent,
        CheckName::OnPremCNIExcludedFromCloud,
        CheckName::TerwayExcludedFromOnPrem,
        CheckName::RamSecret,
        CheckName::EniConfig,
        CheckName::ServiceCIDR,
        CheckName::CloudNodeKernel,
        CheckName::CloudNodePreflight,
        CheckName::OverlayReachesCloud,
        CheckName::CIDROverlap,
        CheckName::BGPPeers,
        CheckName::CrossSiteConnectivity,
        CheckName::PathMTU,
    ];

    /// The node checks the agent runs, in report order.
    pub const NODE: &'static [CheckName] = CheckName::ALL.split_at(6).0;
    /// The cluster checks the controller and the CLI run, in plan order.
    pub const CLUSTER: &'static [CheckName] = CheckName::ALL.split_at(6).1;

    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::ScenarioDetected => "ScenarioDetected",
            CheckName::IPForwarding => "IPForwarding",
            CheckName::ForeignCNIConfig => "ForeignCNIConfig",
            CheckName::StaleOverlayDevices => "StaleOverlayDevices",
            CheckName::KernelVersion => "KernelVersion",
            CheckName::EcsMetadata => "EcsMetadata",
            CheckName::AgentCoverage => "AgentCoverage",
            CheckName::ScenarioConsistent => "ScenarioConsistent",
            CheckName::OnPremCNIExcludedFromCloud => "OnPremCNIExcludedFromCloud",
            CheckName::TerwayExcludedFromOnPrem => "TerwayExcludedFromOnPrem",
            CheckName::RamSecret => "RamSecret",
            CheckName::EniConfig => "EniConfig",
            CheckName::ServiceCIDR => "ServiceCIDR",
            CheckName::CloudNodeKernel => "CloudNodeKernel",
            CheckName::CloudNodePreflight => "CloudNodePreflight",
            CheckName::OverlayReachesCloud => "OverlayReachesCloud",
            CheckName::CIDROverlap => "CIDROverlap",
            CheckName::BGPPeers => "BGPPeers",
            CheckName::CrossSiteConnectivity => "CrossSiteConnectivity",
            CheckName::PathMTU => "PathMTU",
        }
    }
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// Longest `message` (and evidence `detail`) the CRDs admit, in characters:
/// room for the agent's 2 KiB messages and the controller's.
pub const MAX_MESSAGE: usize = 4096;

/// The outcome of one check: a CamelCase `reason` for machines and a
/// `message` a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckResult {
    pub name: CheckName,
    pub severity: Severity,
    pub status: CheckStatus,
    #[schemars(length(max = 128))]
    pub reason: String,
    #[schemars(length(max = 4096))]
    pub message: String,
}

impl CheckResult {
    pub fn pass(name: CheckName, severity: Severity, reason: &str, message: impl Into<String>) -> Self {
        Self::new(name, severity, CheckStatus::Pass, reason, message)
    }

    pub fn fail(name: CheckName, severity: Severity, reason: &str, message: impl Into<String>) -> Self {
        Self::new(name, severity, CheckStatus::Fail, reason, message)
    }

    pub fn skip(name: CheckName, severity: Severity, reason: &str, message: impl Into<String>) -> Self {
        Self::new(name, severity, CheckStatus::Skip, reason, message)
    }

    fn new(
        name: CheckName,
        severity: Severity,
        status: CheckStatus,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        CheckResult { name, severity, status, reason: reason.to_owned(), message: message.into() }
    }

    /// A failing error-severity check blocks readiness and the rollout.
    pub fn is_blocking(&self) -> bool {
        self.status == CheckStatus::Fail && self.severity == Severity::Error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_serialize_as_documented() {
        for name in CheckName::ALL {
            assert_eq!(serde_json::to_value(name).unwrap(), name.as_str());
        }
    }
}
