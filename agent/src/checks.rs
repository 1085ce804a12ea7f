//! Node checks (docs/contracts.md §5): pure functions over the snapshot, the
//! detection and what the agent knows of its node. Each result has a
//! CamelCase reason and a message a person can act on.

use crate::classify::{on_prem_cni_artifacts, terway_configs};
use crate::text::listed;
use terway_hybrid_api::snapshot::FileState;
use terway_hybrid_api::{CheckName, CheckResult, Detection, NodeSnapshot, Plugin, Role, Scenario, Severity};

use terway_hybrid_api::kernel::{self, MIN_FOR_IPVLAN as MIN_KERNEL, RECOMMENDED as RECOMMENDED_KERNEL};

/// What the agent knows beyond the snapshot.
#[derive(Debug, Clone, Default)]
pub struct NodeContext {
    /// None when the node's labels could not be read (`detect` without `--role`).
    pub role: Option<Role>,
    /// The ECS metadata probe: the instance ID, or why it failed. None when not probed.
    pub ecs_metadata: Option<Result<String, String>>,
    /// The VPC's and vSwitch's CIDRs the same service gave (cloud nodes).
    pub cloud_network: Option<terway_hybrid_api::CloudNetwork>,
}

pub fn node_checks(snapshot: &NodeSnapshot, detection: &Detection, ctx: &NodeContext) -> Vec<CheckResult> {
    vec![
        scenario_detected(detection),
        ip_forwarding(snapshot),
        foreign_cni_config(snapshot, detection, ctx.role),
        stale_overlay_devices(detection),
        kernel_version(&snapshot.kernel_version, ctx.role),
        ecs_metadata(ctx),
    ]
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
            let why = d.evidence.first().map(|e| e.detail.as_str()).unwrap_or("no evidence");
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
            format!("scenario {scenario}, plugin {plugin} ({} confidence)", d.confidence),
        ),
    }
}

fn ip_forwarding(s: &NodeSnapshot) -> CheckResult {
    let name = CheckName::IPForwarding;
    let fix =
        "set net.ipv4.ip_forward = 1 (sysctl -w net.ipv4.ip_forward=1, and persist it in /etc/sysctl.d)";
    match &s.ip_forward {
        FileState::Ok { value: true, .. } => {
            CheckResult::pass(name, Severity::Error, "Enabled", "net.ipv4.ip_forward = 1")
        }
        FileState::Ok { value: false, .. } => CheckResult::fail(
            name,
            Severity::Error,
            "Disabled",
            format!("net.ipv4.ip_forward = 0: pod traffic cannot leave this node; {fix}"),
        ),
        FileState::Invalid { path, error } => {
            CheckResult::fail(name, Severity::Error, "Unreadable", format!("{path}: {error}; {fix}"))
        }
        FileState::Absent => CheckResult::fail(
            name,
            Severity::Error,
            "Unreadable",
            "proc/sys/net/ipv4/ip_forward is missing under the host root: is /proc of the host mounted?",
        ),
    }
}

fn foreign_cni_config(s: &NodeSnapshot, d: &Detection, role: Option<Role>) -> CheckResult {
    let name = CheckName::ForeignCNIConfig;
    match role {
        None => CheckResult::skip(name, Severity::Error, "RoleUnknown", "the node's role is not known"),
        // In an overlay cluster the overlay CNI runs on cloud nodes too.
        Some(Role::Cloud) if d.scenario == Scenario::Overlay => CheckResult::pass(
            name,
            Severity::Error,
            "OverlayExtendsToCloud",
            format!("{} runs here as on every node of an overlay cluster", d.plugin),
        ),
        Some(Role::Cloud) => {
            let found = on_prem_cni_artifacts(s);
            if found.is_empty() {
                CheckResult::pass(
                    name,
                    Severity::Error,
                    "NoForeignCNI",
                    "no on-prem CNI config, tunnel or BIRD here",
                )
            } else {
                CheckResult::fail(
                    name,
                    Severity::Error,
                    "OnPremCNIOnCloudNode",
                    format!(
                        "this cloud node carries the on-prem CNI: {}. Keep the on-prem CNI DaemonSet off cloud nodes \
                         (nodeAffinity alibabacloud.com/external NotIn [\"true\"]), then remove what it left here",
                        listed(&found, ", ")
                    ),
                )
            }
        }
        Some(Role::OnPrem) => {
            let found = terway_configs(s);
            if found.is_empty() {
                CheckResult::pass(
                    name,
                    Severity::Error,
                    "NoForeignCNI",
                    "no Terway config on this on-prem node",
                )
            } else {
                CheckResult::fail(
                    name,
                    Severity::Error,
                    "TerwayOnOnPremNode",
                    format!(
                        "this on-prem node carries Terway's config ({}): keep the Terway DaemonSet on cloud nodes \
                         only and remove the file from /etc/cni/net.d",
                        listed(&found, ", ")
                    ),
                )
            }
        }
    }
}

fn stale_overlay_devices(d: &Detection) -> CheckResult {
    let name = CheckName::StaleOverlayDevices;
    if d.stale.is_empty() {
        return CheckResult::pass(name, Severity::Warning, "NoStaleState", "no leftovers of a past CNI");
    }
    let items: Vec<&str> = d.stale.iter().map(|e| e.detail.as_str()).collect();
    CheckResult::fail(
        name,
        Severity::Warning,
        "StaleStateFound",
        format!(
            "leftovers of a past CNI: {}. They do not decide the detection, but remove them \
             (ip link delete DEV; move old files out of /etc/cni/net.d) so they cannot confuse the next one",
            listed(&items, "; ")
        ),
    )
}

fn kernel_version(release: &str, role: Option<Role>) -> CheckResult {
    let name = CheckName::KernelVersion;
    match role {
        None => {
            return CheckResult::skip(name, Severity::Error, "RoleUnknown", "the node's role is not known")
        }
        Some(Role::OnPrem) => {
            return CheckResult::skip(
                name,
                Severity::Error,
                "OnPremNode",
                "Terway does not run on on-prem nodes",
            )
        }
        Some(Role::Cloud) => {}
    }
    match kernel::parse(release) {
        None => CheckResult::fail(
            name,
            Severity::Error,
            "Unparseable",
            format!("cannot read a version from kernel release {release:?}"),
        ),
        Some(v) if v < MIN_KERNEL => CheckResult::fail(
            name,
            Severity::Error,
            "TooOldForIPvlan",
            format!(
                "kernel {release} is older than {}.{}: Terway's IPvlan mode cannot run; upgrade the kernel \
                 or set eniip_virtual_type to Veth",
                MIN_KERNEL.0, MIN_KERNEL.1
            ),
        ),
        Some(v) if v < RECOMMENDED_KERNEL => CheckResult::fail(
            name,
            Severity::Warning,
            "OlderThanRecommended",
            format!(
                "kernel {release} runs IPvlan, but newer Terway versions need {}.{}",
                RECOMMENDED_KERNEL.0, RECOMMENDED_KERNEL.1
            ),
        ),
        Some(_) => CheckResult::pass(name, Severity::Error, "Supported", format!("kernel {release}")),
    }
}

fn ecs_metadata(ctx: &NodeContext) -> CheckResult {
    let name = CheckName::EcsMetadata;
    match (ctx.role, &ctx.ecs_metadata) {
        (None, _) => CheckResult::skip(name, Severity::Error, "RoleUnknown", "the node's role is not known"),
        (Some(Role::OnPrem), _) => CheckResult::skip(
            name,
            Severity::Error,
            "OnPremNode",
            "on-prem nodes have no ECS metadata service",
        ),
        (Some(Role::Cloud), None) => CheckResult::skip(name, Severity::Error, "NotProbed", "not probed"),
        (Some(Role::Cloud), Some(Ok(id))) => {
            CheckResult::pass(name, Severity::Error, "Reachable", format!("ECS instance {id}"))
        }
        (Some(Role::Cloud), Some(Err(e))) => CheckResult::fail(
            name,
            Severity::Error,
            "Unreachable",
            format!(
                "the ECS metadata service does not answer ({e}): Terway needs it to find its instance; \
                 check that this node is an ECS instance and that 100.100.100.200 is not blocked"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use terway_hybrid_api::snapshot::{CniDir, CniFile, Link};
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

    fn with_files(names: &[(&str, &str)]) -> NodeSnapshot {
        NodeSnapshot {
            cni: CniDir {
                present: true,
                error: None,
                files: names
                    .iter()
                    .map(|(name, ty)| CniFile {
                        name: (*name).to_owned(),
                        loadable: true,
                        plugin_types: vec![(*ty).to_owned()],
                        ..CniFile::default()
                    })
                    .collect(),
            },
            ..NodeSnapshot::default()
        }
    }

    #[test]
    fn every_node_check_runs_in_report_order() {
        let d = det(Plugin::CalicoBgp, vec![]);
        let names: Vec<CheckName> = node_checks(&NodeSnapshot::default(), &d, &NodeContext::default())
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, CheckName::NODE);
    }

    #[test]
    fn unknown_fails_with_the_reason_but_terway_passes() {
        let c = scenario_detected(&det(Plugin::Unknown, vec![]));
        assert!(c.is_blocking());
        assert!(c.message.contains("two CNIs"));
        assert_eq!(scenario_detected(&det(Plugin::Terway, vec![])).status, CheckStatus::Pass);
        assert_eq!(scenario_detected(&det(Plugin::CalicoBgp, vec![])).reason, "Detected");
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

    #[test]
    fn ip_forwarding_states() {
        let mut s = NodeSnapshot::default();
        assert_eq!(ip_forwarding(&s).reason, "Unreadable");
        s.ip_forward = FileState::Ok { path: "p".into(), value: false };
        assert!(ip_forwarding(&s).is_blocking());
        s.ip_forward = FileState::Ok { path: "p".into(), value: true };
        assert_eq!(ip_forwarding(&s).status, CheckStatus::Pass);
        s.ip_forward = FileState::Invalid { path: "p".into(), error: "junk".into() };
        assert!(ip_forwarding(&s).message.contains("junk"));
    }

    #[test]
    fn kernel_thresholds_apply_to_cloud_nodes_only() {
        let cloud = Some(Role::Cloud);
        assert_eq!(kernel_version("3.10.0-1160.el7.x86_64", cloud).reason, "TooOldForIPvlan");
        assert!(kernel_version("4.18.0", cloud).is_blocking());
        let warn = kernel_version("4.19.91", cloud);
        assert_eq!((warn.status, warn.severity), (CheckStatus::Fail, Severity::Warning));
        assert_eq!(kernel_version("5.10.134", cloud).status, CheckStatus::Pass);
        assert_eq!(kernel_version("3.10.0", Some(Role::OnPrem)).status, CheckStatus::Skip);
        assert_eq!(kernel_version("3.10.0", None).status, CheckStatus::Skip);
        assert!(kernel_version("weird", cloud).is_blocking());
    }

    #[test]
    fn foreign_cni_by_role() {
        let calico_files = with_files(&[("10-calico.conflist", "calico")]);
        let bgp = det(Plugin::CalicoBgp, vec![]);
        let c = foreign_cni_config(&calico_files, &bgp, Some(Role::Cloud));
        assert!(c.is_blocking() && c.message.contains("10-calico.conflist"), "{c:?}");
        // The overlay CNI belongs on cloud nodes of an overlay cluster.
        let flannel = det(Plugin::FlannelVxlan, vec![]);
        assert_eq!(foreign_cni_config(&calico_files, &flannel, Some(Role::Cloud)).status, CheckStatus::Pass);
        let terway = with_files(&[("10-terway.conflist", "terway")]);
        assert_eq!(
            foreign_cni_config(&terway, &det(Plugin::Terway, vec![]), Some(Role::Cloud)).status,
            CheckStatus::Pass
        );
        let c = foreign_cni_config(&terway, &bgp, Some(Role::OnPrem));
        assert_eq!(c.reason, "TerwayOnOnPremNode");
        assert_eq!(foreign_cni_config(&calico_files, &bgp, Some(Role::OnPrem)).status, CheckStatus::Pass);
        assert_eq!(foreign_cni_config(&calico_files, &bgp, None).status, CheckStatus::Skip);
        // A leftover tunnel on a Terway cloud node is foreign too.
        let mut leftover = with_files(&[("10-terway.conflist", "terway")]);
        leftover.links.push(Link {
            index: 4,
            name: "flannel.1".into(),
            kind: Some("vxlan".into()),
            ..Link::default()
        });
        let c = foreign_cni_config(&leftover, &det(Plugin::Terway, vec![]), Some(Role::Cloud));
        assert!(c.message.contains("tunnel device flannel.1"), "{c:?}");
    }

    /// 10,000 stale configs made an 800 KB message: a message lists at most
    /// `MAX_LISTED` items and says how many more there are.
    #[test]
    fn messages_list_a_bounded_number_of_items() {
        let stale: Vec<Evidence> = (0..10_000)
            .map(|i| Evidence::new("stale-config", format!("{i:05}-calico.conflist is ignored")))
            .collect();
        let c = stale_overlay_devices(&det(Plugin::CalicoBgp, stale));
        assert!(c.message.len() < 1024, "{} bytes", c.message.len());
        assert!(c.message.contains("and 9992 more"), "{}", c.message);
        let names: Vec<(String, &str)> =
            (0..10_000).map(|i| (format!("{i:05}-calico.conflist"), "calico")).collect();
        let refs: Vec<(&str, &str)> = names.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        let c = foreign_cni_config(&with_files(&refs), &det(Plugin::CalicoBgp, vec![]), Some(Role::Cloud));
        assert!(c.message.len() < 1024 && c.message.contains("and 9992 more"), "{}", c.message);
    }

    #[test]
    fn ecs_metadata_only_on_cloud_nodes() {
        let ctx = |role, probe| NodeContext { role, ecs_metadata: probe, cloud_network: None };
        assert_eq!(ecs_metadata(&ctx(Some(Role::OnPrem), None)).status, CheckStatus::Skip);
        assert_eq!(ecs_metadata(&ctx(Some(Role::Cloud), Some(Ok("i-123".into())))).status, CheckStatus::Pass);
        let c = ecs_metadata(&ctx(Some(Role::Cloud), Some(Err("timed out after 1s".into()))));
        assert!(c.is_blocking() && c.message.contains("timed out"));
    }
}
