//! Node checks (DESIGN.md §3.5) over a detection: pure functions, each with a
//! CamelCase reason and a message a person can act on.

use terway_hybrid_api::{CheckName, CheckResult, Detection, Plugin, Scenario, Severity};

pub fn node_checks(detection: &Detection) -> Vec<CheckResult> {
    vec![scenario_detected(detection), stale_overlay_devices(detection)]
}

fn scenario_detected(d: &Detection) -> CheckResult {
    let name = CheckName::ScenarioDetected;
    match (d.scenario, d.plugin) {
        // A Terway node cannot see the on-prem network; that is expected.
        (Scenario::Unknown, Plugin::Terway) => CheckResult::pass(
            name,
            Severity::Error,
            "TerwayNode",
            "Terway runs on this node; the cluster scenario comes from the on-prem nodes",
        ),
        (Scenario::Unknown, _) => {
            let why = d
                .evidence
                .first()
                .map(|e| e.detail.as_str())
                .unwrap_or("no evidence");
            CheckResult::fail(
                name,
                Severity::Error,
                "ScenarioUnknown",
                format!(
                    "the container network could not be classified ({why}); run `terway-hybrid-agent snapshot` \
                     on this node and compare it with the CNI you expect"
                ),
            )
        }
        (scenario, plugin) => CheckResult::pass(
            name,
            Severity::Error,
            "Detected",
            format!(
                "scenario {scenario}, plugin {plugin} ({} confidence)",
                d.confidence
            ),
        ),
    }
}

fn stale_overlay_devices(d: &Detection) -> CheckResult {
    let name = CheckName::StaleOverlayDevices;
    if d.stale.is_empty() {
        return CheckResult::pass(
            name,
            Severity::Warning,
            "NoStaleState",
            "no leftovers of a past CNI",
        );
    }
    let items: Vec<&str> = d.stale.iter().map(|e| e.detail.as_str()).collect();
    CheckResult::fail(
        name,
        Severity::Warning,
        "StaleStateFound",
        format!(
            "leftovers of a past CNI: {}. They do not decide the detection, but remove them \
             (ip link delete DEV; move old files out of /etc/cni/net.d) so they cannot confuse the next one",
            items.join("; ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use terway_hybrid_api::{CheckStatus, Confidence, Evidence};

    fn det(plugin: Plugin, stale: Vec<Evidence>) -> Detection {
        Detection {
            scenario: plugin.scenario(),
            plugin,
            confidence: Confidence::High,
            evidence: vec![Evidence::new("conflict", "two CNIs")],
            stale,
        }
    }

    #[test]
    fn unknown_fails_with_the_reason_but_terway_passes() {
        let c = scenario_detected(&det(Plugin::Unknown, vec![]));
        assert!(c.is_blocking());
        assert!(c.message.contains("two CNIs"));
        assert_eq!(
            scenario_detected(&det(Plugin::Terway, vec![])).status,
            CheckStatus::Pass
        );
        assert_eq!(
            scenario_detected(&det(Plugin::CalicoBgp, vec![])).reason,
            "Detected"
        );
    }

    #[test]
    fn stale_state_is_a_warning() {
        let c = stale_overlay_devices(&det(
            Plugin::CalicoBgp,
            vec![Evidence::new("stale-device", "flannel.1 is down")],
        ));
        assert_eq!((c.status, c.severity), (CheckStatus::Fail, Severity::Warning));
        assert!(!c.is_blocking());
        assert!(c.message.contains("flannel.1 is down"));
    }
}
