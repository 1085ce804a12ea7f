//! The objects terway-hybrid reads by name, and the DaemonSets it looks for,
//! in one place: the controller's watches, its one-shot reads, the dump
//! reader, the CLI and the deploy manifests' tests all take them from here
//! (docs/contracts.md, "Objects read by name").

/// The only TerwayRollout the controller reads (a CRD rule allows no other).
pub const ROLLOUT_NAME: &str = "default";
/// The Tigera operator's Installation that renders calico-node.
pub const INSTALLATION_NAME: &str = "default";

/// Terway's network parameters.
pub const ENI_CONFIG_NAMESPACE: &str = "kube-system";
pub const ENI_CONFIG_NAME: &str = "eni-config";
/// The RAM user's AccessKey, mounted into Terway.
pub const ADDON_SECRET_NAMESPACE: &str = "kube-system";
pub const ADDON_SECRET_NAME: &str = "alibaba-addon-secret";
pub const ACCESS_KEY_ID: &str = "access-key-id";
pub const ACCESS_KEY_SECRET: &str = "access-key-secret";
/// Its ClusterIP tells the Service CIDR.
pub const KUBERNETES_SERVICE_NAMESPACE: &str = "default";
pub const KUBERNETES_SERVICE_NAME: &str = "kubernetes";

/// The agent's DaemonSet (any namespace), whose pods say whether a node's
/// report is current.
pub const AGENT_DAEMONSET: &str = "terway-hybrid-agent";
/// The probe responder's DaemonSet (any namespace): its pods answer probes
/// in the pod network and send the pod-path probes of their node's agent.
pub const RESPONDER_DAEMONSET: &str = "terway-hybrid-responder";
/// calico-node, the one CNI DaemonSet an operator (Tigera's) may own.
pub const CALICO_NODE: &str = "calico-node";
/// Well-known on-prem CNI DaemonSets, found in any namespace when the
/// TerwayRollout lists none.
pub const WELL_KNOWN_CNI_DAEMONSETS: [&str; 5] =
    [CALICO_NODE, "kube-flannel-ds", "canal", "cilium", "kube-router"];
/// Terway's DaemonSet when the TerwayRollout names none.
pub const TERWAY_NAMESPACE: &str = "kube-system";
pub const TERWAY_DAEMONSET: &str = "terway-eniip";
