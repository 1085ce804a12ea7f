//! ClusterView: everything the preflight and the rollout decide on, as plain
//! data. The live controller fills it from watches, `--from-dump` from files;
//! `plan` reads it and nothing else.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use kube::api::DynamicObject;
use std::collections::BTreeMap;
use terway_hybrid_api::{NodeNetworkReport, TerwayRollout};

#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub nodes: Vec<Node>,
    pub reports: Vec<NodeNetworkReport>,
    /// Every DaemonSet the view holds (the on-prem CNIs and Terway among them).
    pub daemon_sets: Vec<DaemonSet>,
    /// Pods of the relevant DaemonSets.
    pub pods: Vec<Pod>,
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
}

/// Reduces a Pod to what the plan reads (owner, node, readiness, container
/// states). A DaemonSet pod's spec (volumes, env, probes) is tens of KiB in
/// memory and read by nobody: on a 10,000-node cluster that is gigabytes.
pub fn slim_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    let node_name = pod.spec.as_mut().and_then(|s| s.node_name.take());
    pod.spec = Some(k8s_openapi::api::core::v1::PodSpec { node_name, ..Default::default() });
    if let Some(status) = pod.status.as_mut() {
        *status = k8s_openapi::api::core::v1::PodStatus {
            phase: status.phase.take(),
            conditions: status.conditions.take(),
            container_statuses: status.container_statuses.take(),
            init_container_statuses: status.init_container_statuses.take(),
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
