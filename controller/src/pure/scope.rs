//! What the controller looks at, decided in one place: which DaemonSets are
//! the on-prem CNIs, Terway and the agent, and which pods matter (theirs).
//! The live watches ([`crate::daemon::watch`]), the one-shot reads
//! ([`crate::fetch`]), the dump reader and [`crate::pure::cluster::Cluster`] all
//! ask this module, so a custom `spec.terway.daemonSetName` or
//! `spec.onPremCNI.daemonSets` is honoured everywhere alike. The objects read
//! by name are in [`terway_hybrid_api::names`].

use crate::pure::pod::SlimPod;
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::core::Selector;
use std::collections::BTreeSet;
use terway_hybrid_api::names::{AGENT_DAEMONSET, RESPONDER_DAEMONSET, WELL_KNOWN_CNI_DAEMONSETS};
use terway_hybrid_api::rollout::NamespacedName;
use terway_hybrid_api::TerwayRolloutSpec;

/// The DaemonSets a TerwayRollout spec makes relevant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    terway: NamespacedName,
    /// The listed on-prem CNIs; empty means the well-known names, in any namespace.
    on_prem_cnis: Vec<NamespacedName>,
}

/// One pod list or watch: a relevant DaemonSet's own selector, in its namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodQuery {
    pub namespace: String,
    /// A label selector in the API's query syntax.
    pub selector: String,
}

impl Scope {
    pub fn of(spec: &TerwayRolloutSpec) -> Self {
        Scope {
            terway: NamespacedName {
                namespace: spec.terway.namespace.clone(),
                name: spec.terway.daemon_set_name.clone(),
            },
            on_prem_cnis: spec.on_prem_cni.daemon_sets.clone(),
        }
    }

    pub fn is_on_prem_cni(&self, namespace: &str, name: &str) -> bool {
        if self.on_prem_cnis.is_empty() {
            WELL_KNOWN_CNI_DAEMONSETS.contains(&name)
        } else {
            self.on_prem_cnis.iter().any(|d| d.namespace == namespace && d.name == name)
        }
    }

    pub fn is_terway(&self, namespace: &str, name: &str) -> bool {
        self.terway.namespace == namespace && self.terway.name == name
    }

    pub fn is_agent(&self, name: &str) -> bool {
        name == AGENT_DAEMONSET
    }

    /// The probe responder (its pods' addresses are the pod-path targets).
    pub fn is_responder(&self, name: &str) -> bool {
        name == RESPONDER_DAEMONSET
    }

    /// The DaemonSet is one the plan reads (and so are its pods).
    pub fn matters(&self, ds: &DaemonSet) -> bool {
        let (namespace, name) = identity(ds);
        self.is_on_prem_cni(namespace, name)
            || self.is_terway(namespace, name)
            || self.is_agent(name)
            || self.is_responder(name)
    }

    /// The pod belongs to a DaemonSet that matters (its controlling owner).
    pub fn owns(&self, pod: &SlimPod) -> bool {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
        pod.metadata
            .owner_references
            .iter()
            .flatten()
            .filter(|o| o.kind == "DaemonSet" && o.controller == Some(true))
            .any(|o| {
                self.is_on_prem_cni(namespace, &o.name)
                    || self.is_terway(namespace, &o.name)
                    || self.is_agent(&o.name)
                    || self.is_responder(&o.name)
            })
    }

    /// The pod lists that cover every pod that matters: one per relevant
    /// DaemonSet, by its own selector (whatever labels its pods carry). A
    /// DaemonSet whose selector the API would refuse is passed over (it
    /// cannot have pods either).
    pub fn pod_queries<'a>(
        &self,
        daemon_sets: impl IntoIterator<Item = &'a DaemonSet>,
    ) -> BTreeSet<PodQuery> {
        daemon_sets
            .into_iter()
            .filter(|ds| self.matters(ds))
            .filter_map(|ds| {
                let selector = Selector::try_from(ds.spec.as_ref()?.selector.clone()).ok()?;
                let selector = selector.to_string();
                // An empty selector would list the whole namespace.
                (!selector.is_empty()).then(|| PodQuery { namespace: identity(ds).0.to_owned(), selector })
            })
            .collect()
    }
}

/// (namespace, name) of a DaemonSet.
pub fn identity(ds: &DaemonSet) -> (&str, &str) {
    (ds.metadata.namespace.as_deref().unwrap_or(""), ds.metadata.name.as_deref().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
    use std::collections::BTreeMap;
    use terway_hybrid_api::rollout::TerwayRef;

    fn ds(namespace: &str, name: &str, app: &str) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(DaemonSetSpec {
                selector: LabelSelector {
                    match_labels: Some(BTreeMap::from([("app".to_owned(), app.to_owned())])),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod_of(namespace: &str, owner: &str) -> SlimPod {
        let mut pod = SlimPod::default();
        pod.metadata.namespace = Some(namespace.into());
        pod.metadata.owner_references = Some(vec![OwnerReference {
            kind: "DaemonSet".into(),
            name: owner.into(),
            controller: Some(true),
            ..Default::default()
        }]);
        pod
    }

    #[test]
    fn the_defaults_are_the_well_known_names() {
        let scope = Scope::of(&TerwayRolloutSpec::default());
        let all = [
            ds("kube-system", "calico-node", "calico-node"),
            ds("kube-system", "terway-eniip", "terway-eniip"),
            ds("terway-hybrid", "terway-hybrid-agent", "agent"),
            ds("terway-hybrid", "terway-hybrid-responder", "responder"),
            ds("kube-system", "kube-proxy", "kube-proxy"),
            ds("other", "terway-eniip", "not-terway"),
        ];
        let queries: Vec<String> =
            scope.pod_queries(&all).into_iter().map(|q| format!("{}?{}", q.namespace, q.selector)).collect();
        assert_eq!(
            queries,
            [
                "kube-system?app=calico-node",
                "kube-system?app=terway-eniip",
                "terway-hybrid?app=agent",
                "terway-hybrid?app=responder"
            ]
        );
        assert!(scope.owns(&pod_of("kube-system", "calico-node")));
        assert!(scope.owns(&pod_of("terway-hybrid", "terway-hybrid-responder")));
        assert!(!scope.owns(&pod_of("kube-system", "kube-proxy")));
        assert!(!scope.owns(&pod_of("other", "terway-eniip")));
    }

    #[test]
    fn a_custom_spec_replaces_the_defaults() {
        let mut spec = TerwayRolloutSpec {
            terway: TerwayRef { namespace: "net".into(), daemon_set_name: "my-terway".into() },
            ..TerwayRolloutSpec::default()
        };
        spec.on_prem_cni.daemon_sets =
            vec![NamespacedName { namespace: "net".into(), name: "my-cni".into() }];
        let scope = Scope::of(&spec);
        let all = [
            ds("kube-system", "calico-node", "calico-node"),
            ds("kube-system", "terway-eniip", "terway-eniip"),
            ds("net", "my-terway", "my-terway"),
            ds("net", "my-cni", "my-cni"),
        ];
        let queries: Vec<String> =
            scope.pod_queries(&all).into_iter().map(|q| format!("{}?{}", q.namespace, q.selector)).collect();
        assert_eq!(queries, ["net?app=my-cni", "net?app=my-terway"]);
        assert!(scope.owns(&pod_of("net", "my-terway")) && scope.owns(&pod_of("net", "my-cni")));
        assert!(!scope.owns(&pod_of("kube-system", "calico-node")));
    }
}
