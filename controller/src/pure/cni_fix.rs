//! The on-prem CNI affinity fix, computed once for both its users: the
//! controller's remediation ([`crate::pure::plan`]) and `terway-hybrid fix`. It
//! decides where the fix goes (the DaemonSet, or `Installation default` when
//! the Tigera operator owns calico-node and would revert a direct patch),
//! what the affinity becomes, and whether that is safe on the nodes it is
//! verified against; [`apply_body`] is the one server-side apply body.

use crate::pure::affinity::{self, FixViolation};
use crate::pure::cluster::{qualified, tigera_ownership};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Affinity, Node};
use kube::api::DynamicObject;
use serde_json::{json, Value};
use std::borrow::Borrow;
use std::collections::BTreeMap;
use terway_hybrid_api::names::INSTALLATION_NAME;
use terway_hybrid_api::{role_of, Role};

/// Where the Tigera operator takes calico-node's affinity from.
pub const INSTALLATION_AFFINITY: &str = "spec.calicoNodeDaemonSet.spec.template.spec.affinity";

/// Where the fix goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    DaemonSet { namespace: String, name: String },
    Installation,
}

/// The fix, computed and verified, not applied.
#[derive(Debug, Clone)]
pub struct CniFix {
    pub target: Target,
    /// `kube-system/calico-node`.
    pub daemon_set: String,
    pub before: Option<Affinity>,
    pub after: Affinity,
    /// The fixed DaemonSet checked against the nodes: it keeps every on-prem
    /// node it runs on and admits no cloud node.
    pub verdict: Result<(), FixViolation>,
    /// Why the target is `Installation default`, when it is.
    pub why_installation: Option<String>,
    pub on_prem_nodes: usize,
    pub cloud_nodes: usize,
    /// The target's resourceVersion the fix was computed from.
    pub resource_version: Option<String>,
}

impl CniFix {
    /// The server-side apply body, pinned to the version it was verified on.
    pub fn body(&self) -> Value {
        apply_body(&self.target, &self.after, self.resource_version.as_deref())
    }
}

/// Why the Tigera operator owns calico-node, as a sentence for the user.
fn tigera_owned(ds: &DaemonSet, installation: Option<&DynamicObject>) -> Option<String> {
    let how = tigera_ownership(ds, installation.is_some())?;
    Some(format!(
        "the Tigera operator owns calico-node (Installation default exists and {how}): it would revert a \
         direct patch of the DaemonSet within minutes, so the fix goes to Installation default, \
         {INSTALLATION_AFFINITY}"
    ))
}

fn installation_affinity(installation: &DynamicObject) -> Option<Affinity> {
    let value = installation.data.pointer("/spec/calicoNodeDaemonSet/spec/template/spec/affinity")?;
    serde_json::from_value(value.clone()).ok()
}

/// Computes the fix for one on-prem CNI DaemonSet and verifies it against
/// `nodes` (a node is cloud by `cloud_selector`); None when the DaemonSet is
/// kept off cloud nodes already (by its affinity or its nodeSelector).
pub fn prepare(
    ds: &DaemonSet,
    installation: Option<&DynamicObject>,
    nodes: &[impl Borrow<Node>],
    cloud_selector: &BTreeMap<String, String>,
) -> Option<CniFix> {
    if affinity::daemon_set_excludes_cloud(ds) {
        return None;
    }
    let why_installation = tigera_owned(ds, installation);
    let owner = installation.filter(|_| why_installation.is_some());
    // The operator renders the Installation's affinity into the DaemonSet;
    // when it sets none, the DaemonSet's (the operator's default) is the base.
    let before = match owner {
        Some(inst) => installation_affinity(inst).or_else(|| affinity::daemon_set_affinity(ds).cloned()),
        None => affinity::daemon_set_affinity(ds).cloned(),
    };
    let after = affinity::exclude_cloud(before.as_ref());
    let patched = affinity::with_affinity(ds, after.clone());
    let is_cloud = |n: &Node| role_of(n, cloud_selector) == Role::Cloud;
    let verdict = affinity::verify_fix(ds, &patched, nodes, is_cloud);
    let nodes = || nodes.iter().map(Borrow::borrow);
    let cloud_nodes = nodes().filter(|n| is_cloud(n)).count();
    let on_prem_nodes =
        nodes().filter(|n| !is_cloud(n) && crate::pure::scheduling::admits(ds, n).is_admitted()).count();
    let (target, resource_version) = match owner {
        Some(inst) => (Target::Installation, inst.metadata.resource_version.clone()),
        None => (
            Target::DaemonSet {
                namespace: ds.metadata.namespace.clone().unwrap_or_default(),
                name: ds.metadata.name.clone().unwrap_or_default(),
            },
            ds.metadata.resource_version.clone(),
        ),
    };
    Some(CniFix {
        target,
        daemon_set: qualified(ds),
        before,
        after,
        verdict,
        why_installation,
        on_prem_nodes,
        cloud_nodes,
        resource_version,
    })
}

/// The server-side apply body that sets a pod affinity: a DaemonSet's pod
/// template, or Installation default's calico-node. With a resourceVersion
/// the apply fails if the object changed since.
pub fn apply_body(target: &Target, affinity: &Affinity, resource_version: Option<&str>) -> Value {
    let template = json!({"template": {"spec": {"affinity": affinity}}});
    let mut body = match target {
        Target::DaemonSet { namespace, name } => json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": namespace}, "spec": template}),
        Target::Installation => json!({"apiVersion": "operator.tigera.io/v1", "kind": "Installation",
            "metadata": {"name": INSTALLATION_NAME},
            "spec": {"calicoNodeDaemonSet": {"spec": template}}}),
    };
    if let Some(rv) = resource_version {
        body["metadata"]["resourceVersion"] = json!(rv);
    }
    body
}
