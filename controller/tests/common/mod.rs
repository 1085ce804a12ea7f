//! What every `plan` test uses (`plan_checks.rs`, `plan_rollout.rs`,
//! `plan_properties.rs`): loading the shipped example dumps, building and
//! mutating ClusterViews, reading conditions. Helpers only some of them use
//! live in `example_edits`, `plan_story` and `pod_edits`, so that no test
//! binary compiles a helper it does not use.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use terway_hybrid_api::{TerwayRollout, TerwayRolloutSpec, TerwayRolloutStatus};
use terway_hybrid_controller::cli::dump;
use terway_hybrid_controller::pure::plan::Plan;
use terway_hybrid_controller::pure::pod::{PodCondition, SlimPod, SlimPodSpec, SlimPodStatus};
use terway_hybrid_controller::pure::view::ClusterView;
use terway_hybrid_testkit::example_dir;

pub const TERWAY_NS: &str = "kube-system";
pub const TERWAY: &str = "terway-eniip";

/// One minute after the examples' objects were written.
pub fn t0() -> Timestamp {
    "2026-11-20T09:00:00Z".parse().expect("a timestamp")
}

/// An example dump, loaded once per test binary and cloned.
pub fn example(name: &str) -> ClusterView {
    static CACHE: OnceLock<std::sync::Mutex<BTreeMap<String, ClusterView>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry(name.to_owned())
        .or_insert_with(|| {
            dump::load(&example_dir(name)).unwrap_or_else(|e| panic!("example {name} loads: {e}"))
        })
        .clone()
}

// ---- reading a plan ----

pub fn condition<'a>(status: &'a TerwayRolloutStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no condition {type_} in {:?}", status.conditions))
}

/// (status, reason) of a condition.
pub fn cond(plan: &Plan, type_: &str) -> (String, String) {
    let c = condition(&plan.status, type_);
    (c.status.clone(), c.reason.clone())
}

// ---- mutating a view ----

pub fn node_mut<'a>(view: &'a mut ClusterView, name: &str) -> &'a mut Node {
    view.nodes
        .iter_mut()
        .find(|n| n.metadata.name.as_deref() == Some(name))
        .map(Arc::make_mut)
        .unwrap_or_else(|| panic!("no node {name}"))
}

pub fn daemon_set_mut<'a>(view: &'a mut ClusterView, ns: &str, name: &str) -> &'a mut DaemonSet {
    view.daemon_sets
        .iter_mut()
        .find(|d| d.metadata.namespace.as_deref() == Some(ns) && d.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no DaemonSet {ns}/{name}"))
}

pub fn terway_mut(view: &mut ClusterView) -> &mut DaemonSet {
    daemon_set_mut(view, TERWAY_NS, TERWAY)
}

pub fn rollout_mut(view: &mut ClusterView) -> &mut TerwayRollout {
    view.rollout.get_or_insert_with(|| TerwayRollout::new("default", TerwayRolloutSpec::default()))
}

pub fn spec_mut(view: &mut ClusterView) -> &mut TerwayRolloutSpec {
    &mut rollout_mut(view).spec
}

pub fn pod_mut<'a>(view: &'a mut ClusterView, ds: &str, node: &str) -> Option<&'a mut SlimPod> {
    view.pods
        .iter_mut()
        .find(|p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
                && p.metadata.owner_references.iter().flatten().any(|o| o.kind == "DaemonSet" && o.name == ds)
        })
        .map(Arc::make_mut)
}

pub fn set_pod_ready_condition(pod: &mut SlimPod, ready: bool) {
    let status = pod.status.get_or_insert_with(SlimPodStatus::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != "Ready");
    conditions.push(PodCondition {
        type_: "Ready".to_owned(),
        status: if ready { "True" } else { "False" }.to_owned(),
    });
}

/// Makes the pod `ns/ds` runs on `node` Ready or not, creating it if needed.
pub fn set_pod_ready(view: &mut ClusterView, ns: &str, ds: &str, node: &str, ready: bool) {
    match pod_mut(view, ds, node) {
        Some(pod) => set_pod_ready_condition(pod, ready),
        None => view.pods.push(pod(ns, ds, node, ready).into()),
    }
}

// ---- building objects from scratch (for the generated views) ----

pub fn pod(ns: &str, ds: &str, node: &str, ready: bool) -> SlimPod {
    let mut pod = SlimPod {
        metadata: ObjectMeta {
            name: Some(format!("{ds}-{node}")),
            namespace: Some(ns.to_owned()),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".to_owned(),
                kind: "DaemonSet".to_owned(),
                name: ds.to_owned(),
                uid: format!("uid-{ds}"),
                controller: Some(true),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(SlimPodSpec { node_name: Some(node.to_owned()) }),
        status: None,
    };
    set_pod_ready_condition(&mut pod, ready);
    pod
}
