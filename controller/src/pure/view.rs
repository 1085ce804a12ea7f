//! ClusterView: everything the preflight and the rollout decide on, as plain
//! data. The live controller fills it from watches, `--from-dump` from files;
//! `plan` reads it and nothing else.

use crate::pure::pod::SlimPod;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::api::DynamicObject;
use std::collections::BTreeMap;
use std::sync::Arc;
use terway_hybrid_api::{NodeNetworkReport, TerwayRollout};

/// The per-node collections (nodes, reports, pods) are shared with the
/// controller's watch stores rather than copied: a view is taken for every
/// reconcile, and a copy of 5,000 nodes' objects doubled the controller's
/// memory at its peak. Change one in place with `Arc::make_mut`.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub nodes: Vec<Arc<Node>>,
    pub reports: Vec<Arc<NodeNetworkReport>>,
    /// Every DaemonSet the view holds (the on-prem CNIs and Terway among them).
    pub daemon_sets: Vec<DaemonSet>,
    /// Pods of the relevant DaemonSets.
    pub pods: Vec<Arc<SlimPod>>,
    /// ConfigMap kube-system/eni-config.
    pub eni_config: Option<ConfigMap>,
    /// Secret kube-system/alibaba-addon-secret, reduced to which keys hold a
    /// non-empty value: the values never leave the I/O layer.
    pub addon_secret: Option<SecretKeys>,
    /// Service default/kubernetes.
    pub kubernetes_service: Option<Service>,
    /// The Tigera operator's `Installation default` (operator.tigera.io/v1), when present.
    pub installation: Option<DynamicObject>,
    /// TerwayRollout `default`; absent means the defaults.
    pub rollout: Option<TerwayRollout>,
    /// Calico's `IPPool`s (crd.projectcalico.org/v1), reduced by [`slim_ip_pool`];
    /// none without the CRD.
    pub ip_pools: Vec<DynamicObject>,
    /// `ServiceCIDR`s (networking.k8s.io/v1); none where the server has no such API.
    pub service_cidrs: Vec<ServiceCIDR>,
    /// The CNI ConfigMaps that hold pod ranges (`address_plan::CNI_CONFIG_MAPS`:
    /// flannel's `kube-flannel-cfg`, Cilium's `cilium-config`), reduced by
    /// [`slim_cni_config`].
    pub cni_configs: Vec<ConfigMap>,
}

/// Reduces a Calico IPPool to its name and `spec.cidr`: its other fields
/// (node selectors, modes) are not read.
pub fn slim_ip_pool(pool: &mut DynamicObject) {
    pool.metadata.managed_fields = None;
    pool.metadata.annotations = None;
    let cidr = pool.data.get("spec").and_then(|s| s.get("cidr")).cloned();
    pool.data = match cidr {
        Some(cidr) => serde_json::json!({"spec": {"cidr": cidr}}),
        None => serde_json::json!({}),
    };
}

/// Reduces a CNI ConfigMap to the keys `CIDROverlap` reads
/// (`address_plan::CNI_CONFIG_KEYS`): cilium-config holds a hundred others.
pub fn slim_cni_config(cm: &mut ConfigMap) {
    cm.metadata.managed_fields = None;
    cm.metadata.annotations = None;
    cm.binary_data = None;
    if let Some(data) = cm.data.as_mut() {
        data.retain(|k, _| crate::pure::address_plan::CNI_CONFIG_KEYS.contains(&k.as_str()));
    }
}

/// Reduces a ServiceCIDR to its ranges.
pub fn slim_service_cidr(s: &mut ServiceCIDR) {
    s.metadata.managed_fields = None;
    s.metadata.annotations = None;
    s.status = None;
}

/// Drops a pod's managedFields and annotations, the part of its metadata
/// nobody reads; [`SlimPod`] already left out the rest of what it does not.
pub fn slim_pod(pod: &mut SlimPod) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
}

/// Reduces a Node to what the plan reads: the paths `terway-hybrid dump`
/// keeps (`dump_cmd::KEEP`), whose preflight the tests show equal to the
/// live one. A Node's images, capacity, conditions and managedFields are
/// most of its weight: 5,000 nodes held 254 MiB with them.
pub fn slim_node(node: &mut Node) {
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, NodeSystemInfo};
    node.metadata.managed_fields = None;
    node.metadata.annotations = None;
    if let Some(spec) = node.spec.as_mut() {
        *spec = NodeSpec {
            pod_cidr: spec.pod_cidr.take(),
            pod_cidrs: spec.pod_cidrs.take(),
            taints: spec.taints.take(),
            unschedulable: spec.unschedulable,
            ..Default::default()
        };
    }
    if let Some(status) = node.status.as_mut() {
        let kernel_version = status.node_info.as_mut().map(|i| std::mem::take(&mut i.kernel_version));
        *status = NodeStatus {
            addresses: status.addresses.take(),
            node_info: kernel_version
                .map(|kernel_version| NodeSystemInfo { kernel_version, ..Default::default() }),
            ..Default::default()
        };
    }
}

/// Which keys of a Secret are present, and whether each is non-empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretKeys {
    pub keys: BTreeMap<String, bool>,
}

impl SecretKeys {
    /// Reduces a Secret's data to presence: the only place values are seen.
    pub fn from_secret(secret: &k8s_openapi::api::core::v1::Secret) -> Self {
        let mut keys = BTreeMap::new();
        for (k, v) in secret.data.iter().flatten() {
            keys.insert(k.clone(), !v.0.is_empty());
        }
        for (k, v) in secret.string_data.iter().flatten() {
            keys.insert(k.clone(), !v.is_empty());
        }
        SecretKeys { keys }
    }

    pub fn non_empty(&self, key: &str) -> bool {
        self.keys.get(key).copied().unwrap_or(false)
    }
}
