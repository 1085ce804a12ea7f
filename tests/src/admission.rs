//! The Terway gate's admission webhook as the tests and the admission-latency
//! benchmark see it: what the server stored, and when the webhook is registered.

use std::time::Duration;

use serde_json::{json, Value};

use crate::cluster::{Cluster, Controller, GATE_LABEL};
use crate::wait_for_described;

/// The MutatingWebhookConfiguration the controller registers.
const WEBHOOK_CONFIG: &str = "terway-hybrid-terway-gate";

/// The stored affinity of `kube-system/terway-eniip`'s pod template.
pub fn terway_affinity(cluster: &Cluster) -> Value {
    cluster.get(&["daemonset", "terway-eniip", "--namespace", "kube-system"])["spec"]["template"]["spec"]
        ["affinity"]
        .clone()
}

/// Every required term holds `terway-hybrid.io/terway-gate In [open]`.
pub fn requires_gate(affinity: &Value) -> bool {
    let terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    !terms.is_empty()
        && terms.iter().all(|t| {
            t["matchExpressions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["key"] == GATE_LABEL && e["operator"] == "In" && e["values"] == json!(["open"]))
        })
}

/// The webhooks of [`WEBHOOK_CONFIG`] (none while it does not exist).
pub fn webhooks(cluster: &Cluster) -> Vec<Value> {
    cluster.get(&["mutatingwebhookconfiguration", WEBHOOK_CONFIG])["webhooks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits (60 s at most) until [`WEBHOOK_CONFIG`] holds `want` webhooks.
pub fn wait_webhooks(cluster: &Cluster, want: usize, c: &Controller) {
    wait_for_described(
        &format!("{want} webhook(s) in {WEBHOOK_CONFIG}"),
        Duration::from_secs(60),
        || (webhooks(cluster).len() == want).then_some(()),
        || c.tail(30),
    );
}

/// TerwayRollout `default` in `mode`, one node per wave.
pub fn rollout_yaml(mode: &str) -> String {
    format!(
        "apiVersion: terway-hybrid.io/v1alpha1\nkind: TerwayRollout\nmetadata:\n  name: default\nspec:\n  mode: {mode}\n  \
         maxUnavailable: 1\n  readinessTimeout: 2m\n"
    )
}
