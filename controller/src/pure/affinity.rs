//! The safe on-prem CNI affinity fix (docs/contracts.md §12), the Terway gate, and a
//! check that a patched DaemonSet lands where it should.
//!
//! CNI DaemonSets tolerate every taint, so only required node affinity keeps
//! them off nodes. Its `nodeSelectorTerms` are ORed: replacing them would take
//! the CNI off on-prem nodes it runs on now (cutting their pod network), and
//! adding a term would only widen it. So a requirement is ANDed into every
//! existing term, which narrows each term by exactly the nodes the requirement
//! rejects: afterwards the DaemonSet admits a node iff it admitted it before
//! and the node meets the requirement. Two shapes need care:
//! - no required node affinity matches every node, so it becomes one term
//!   holding just the requirement;
//! - an empty term (and an empty term list) matches no node, and a requirement
//!   added to it would make it match many, so it is left alone.
//!
//! A term that already holds a requirement implying the new one (for the cloud
//! exclusion: `In ["false"]`, `DoesNotExist`, `NotIn ["true", "yes"]`, …) is
//! left alone too, so the fix is idempotent and a DaemonSet that is already
//! right is not rolled for nothing.

use crate::pure::scheduling::{
    admits, admits_labels, expression_error, pod_spec, requirement_matches, term_defect, TermMismatch,
};
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{Affinity, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;

pub use terway_hybrid_api::rollout::{GATE_LABEL, GATE_OPEN};
pub use terway_hybrid_api::vocabulary::CLOUD_LABEL;

/// `alibabacloud.com/external NotIn ["true"]`: keeps a pod off cloud nodes and
/// lets it run on every node without the label.
pub fn exclusion() -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: CLOUD_LABEL.to_owned(),
        operator: "NotIn".to_owned(),
        values: Some(vec!["true".to_owned()]),
    }
}

/// `terway-hybrid.io/terway-gate In ["open"]`: Terway runs only on nodes the
/// controller has opened the gate on.
pub fn gate_requirement() -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: GATE_LABEL.to_owned(),
        operator: "In".to_owned(),
        values: Some(vec![GATE_OPEN.to_owned()]),
    }
}

/// The affinity with the cloud exclusion ANDed into every required term.
pub fn exclude_cloud(affinity: Option<&Affinity>) -> Affinity {
    and_into_every_term(affinity, &exclusion())
}

/// The affinity with the gate requirement ANDed into every required term.
pub fn require_gate(affinity: Option<&Affinity>) -> Affinity {
    and_into_every_term(affinity, &gate_requirement())
}

/// Can no node labelled `alibabacloud.com/external=true` match the required
/// node affinity? True when every term is empty, unparsable, or holds a
/// requirement that rejects the label value `true`.
pub fn already_excludes_cloud(affinity: Option<&Affinity>) -> bool {
    every_term_implies(affinity, &exclusion())
}

/// Can only nodes labelled `terway-hybrid.io/terway-gate=open` match the
/// required node affinity?
pub fn requires_gate(affinity: Option<&Affinity>) -> bool {
    every_term_implies(affinity, &gate_requirement())
}

/// Returns the affinity with `requirement` ANDed into every required
/// nodeSelectorTerm; everything else (preferred terms, pod (anti-)affinity) is
/// kept as it is. See the module docs for the shapes handled specially.
pub fn and_into_every_term(affinity: Option<&Affinity>, requirement: &NodeSelectorRequirement) -> Affinity {
    let mut affinity = affinity.cloned().unwrap_or_default();
    let node_affinity = affinity.node_affinity.get_or_insert_with(Default::default);
    match &mut node_affinity.required_during_scheduling_ignored_during_execution {
        required @ None => {
            *required = Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![requirement.clone()]),
                    match_fields: None,
                }],
            });
        }
        Some(selector) => {
            for term in &mut selector.node_selector_terms {
                if is_empty_term(term) || term_implies(term, requirement) {
                    continue;
                }
                // A matchFields-only term gets its first matchExpressions here.
                term.match_expressions.get_or_insert_with(Vec::new).push(requirement.clone());
            }
        }
    }
    affinity
}

/// Does every node the required node affinity can match meet `requirement`?
/// No required affinity matches every node, so: false. An empty term list
/// matches no node, so: true (the API server rejects that shape anyway).
pub fn every_term_implies(affinity: Option<&Affinity>, requirement: &NodeSelectorRequirement) -> bool {
    match required_terms(affinity) {
        None => false,
        Some(terms) => terms.iter().all(|t| term_defect(t).is_some() || term_implies(t, requirement)),
    }
}

/// Does every node meeting `existing` also meet `new` (both `matchExpressions`
/// entries)? Exact for `NotIn`, `In`, `Exists` and `DoesNotExist`; a `Gt` or
/// `Lt` is only implied by itself. Requirements on different keys, and ones the
/// scheduler cannot parse, imply nothing.
pub fn implies(existing: &NodeSelectorRequirement, new: &NodeSelectorRequirement) -> bool {
    if existing.key != new.key || expression_error(existing).is_some() || expression_error(new).is_some() {
        return false;
    }
    // Whether a node whose only label for the key is `value` meets `existing`;
    // both requirements look at nothing but that one label.
    let accepts = |value: Option<&str>| {
        let labels: BTreeMap<String, String> =
            value.map(|v| BTreeMap::from([(existing.key.clone(), v.to_owned())])).unwrap_or_default();
        requirement_matches(existing, &labels)
    };
    let new_values = new.values.as_deref().unwrap_or(&[]);
    match new.operator.as_str() {
        // NotIn V rejects exactly the values in V.
        "NotIn" => new_values.iter().all(|v| !accepts(Some(v))),
        // Only an In accepts finitely many values (and never a missing label).
        "In" => existing.operator == "In" && existing.values.iter().flatten().all(|v| new_values.contains(v)),
        "Exists" => !accepts(None),
        "DoesNotExist" => existing.operator == "DoesNotExist",
        _ => existing == new,
    }
}

/// Is the DaemonSet kept off every node labelled `alibabacloud.com/external=true`,
/// by its nodeSelector (asking for another value of the label) or by its
/// required node affinity?
pub fn daemon_set_excludes_cloud(ds: &DaemonSet) -> bool {
    let spec = pod_spec(ds);
    spec.node_selector.as_ref().and_then(|s| s.get(CLOUD_LABEL)).is_some_and(|v| v != "true")
        || already_excludes_cloud(spec.affinity.as_ref())
}

/// The DaemonSet's pod template affinity, when it has one.
pub fn daemon_set_affinity(ds: &DaemonSet) -> Option<&Affinity> {
    ds.spec.as_ref().and_then(|s| s.template.spec.as_ref()).and_then(|s| s.affinity.as_ref())
}

/// A copy of the DaemonSet with this pod template affinity (creating the
/// template spec when missing).
pub fn with_affinity(ds: &DaemonSet, affinity: Affinity) -> DaemonSet {
    let mut ds = ds.clone();
    let spec = ds.spec.get_or_insert_with(DaemonSetSpec::default);
    spec.template.spec.get_or_insert_with(Default::default).affinity = Some(affinity);
    ds
}

/// The Terway DaemonSet with the gate requirement applied.
pub fn require_gate_daemon_set(ds: &DaemonSet) -> DaemonSet {
    with_affinity(ds, require_gate(daemon_set_affinity(ds)))
}

/// What a patched on-prem CNI DaemonSet gets wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixViolation {
    /// On-prem nodes the original admitted and the patched one does not: their
    /// pod network would go away.
    pub lost_on_prem: Vec<String>,
    /// Cloud nodes the patched DaemonSet still admits.
    pub admitted_cloud: Vec<String>,
    /// Why a node joining later with `alibabacloud.com/external=true` could still
    /// be admitted, when it could.
    pub admits_new_cloud_nodes: Option<String>,
}

impl FixViolation {
    pub fn is_empty(&self) -> bool {
        self.lost_on_prem.is_empty()
            && self.admitted_cloud.is_empty()
            && self.admits_new_cloud_nodes.is_none()
    }
}

impl fmt::Display for FixViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.lost_on_prem.is_empty() {
            parts.push(format!(
                "it would no longer run on on-prem node(s) it runs on now: {}",
                self.lost_on_prem.join(", ")
            ));
        }
        if !self.admitted_cloud.is_empty() {
            parts.push(format!("it would still run on cloud node(s): {}", self.admitted_cloud.join(", ")));
        }
        if let Some(why) = &self.admits_new_cloud_nodes {
            parts.push(format!("it would run on new nodes labelled {CLOUD_LABEL}=true: {why}"));
        }
        if parts.is_empty() {
            f.write_str("no violation")
        } else {
            write!(f, "unsafe DaemonSet patch: {}", parts.join("; "))
        }
    }
}

impl std::error::Error for FixViolation {}

/// Checks a patched on-prem CNI DaemonSet against the original, using the
/// scheduler's rules ([`crate::pure::scheduling::admits`]): it must still admit every
/// on-prem node the original admitted, admit no cloud node, and be kept off any
/// node that joins later labelled `alibabacloud.com/external=true` (checked on
/// the affinity itself, so it holds whatever else such a node carries).
pub fn verify_fix(
    original: &DaemonSet,
    patched: &DaemonSet,
    nodes: &[impl Borrow<Node>],
    is_cloud: impl Fn(&Node) -> bool,
) -> Result<(), FixViolation> {
    let mut violation = FixViolation::default();
    for node in nodes.iter().map(Borrow::borrow) {
        let name = node.metadata.name.clone().unwrap_or_else(|| "<unnamed>".to_owned());
        if is_cloud(node) {
            if admits(patched, node).is_admitted() {
                violation.admitted_cloud.push(name);
            }
        } else if admits(original, node).is_admitted() && !admits(patched, node).is_admitted() {
            violation.lost_on_prem.push(name);
        }
    }
    if !daemon_set_excludes_cloud(patched) {
        violation.admits_new_cloud_nodes = Some(why_new_cloud_nodes(patched, nodes));
    }
    if violation.is_empty() {
        Ok(())
    } else {
        Err(violation)
    }
}

/// Explains why the DaemonSet does not exclude cloud nodes, naming an example
/// node when one of the likely shapes of a new cloud node would be admitted.
fn why_new_cloud_nodes(ds: &DaemonSet, nodes: &[impl Borrow<Node>]) -> String {
    let affinity = pod_spec(ds).affinity;
    let why = match required_terms(affinity.as_ref()) {
        None => "it has no required node affinity".to_owned(),
        Some(terms) => {
            let open: Vec<String> = terms
                .iter()
                .enumerate()
                .filter(|(_, t)| term_defect(t).is_none() && !term_implies(t, &exclusion()))
                .map(|(i, _)| i.to_string())
                .collect();
            format!("nodeSelectorTerms[{}] do not exclude it", open.join(", "))
        }
    };
    let cloud = |mut labels: BTreeMap<String, String>| {
        labels.insert(CLOUD_LABEL.to_owned(), "true".to_owned());
        labels
    };
    let mut examples = vec![("only that label".to_owned(), cloud(BTreeMap::new()))];
    examples.push((
        "its nodeSelector's labels".to_owned(),
        cloud(pod_spec(ds).node_selector.unwrap_or_default()),
    ));
    for node in nodes.iter().map(Borrow::borrow) {
        let name = node.metadata.name.as_deref().unwrap_or("<unnamed>");
        examples.push((
            format!("the labels of node {name}"),
            cloud(node.metadata.labels.clone().unwrap_or_default()),
        ));
    }
    match examples.into_iter().find(|(_, labels)| admits_labels(ds, labels, &[]).is_admitted()) {
        Some((like, _)) => format!("{why}, e.g. a new node with {like} plus the cloud label"),
        None => why,
    }
}

fn required_terms(affinity: Option<&Affinity>) -> Option<&[NodeSelectorTerm]> {
    affinity
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref())
        .map(|s| s.node_selector_terms.as_slice())
}

fn is_empty_term(term: &NodeSelectorTerm) -> bool {
    matches!(term_defect(term), Some(TermMismatch::Empty))
}

/// Does one of the term's own `matchExpressions` imply the requirement?
fn term_implies(term: &NodeSelectorTerm, requirement: &NodeSelectorRequirement) -> bool {
    term.match_expressions.iter().flatten().any(|e| implies(e, requirement))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The on-prem CNI DaemonSet with the cloud exclusion applied.
    fn exclude_cloud_daemon_set(ds: &DaemonSet) -> DaemonSet {
        with_affinity(ds, exclude_cloud(daemon_set_affinity(ds)))
    }
    use crate::pure::scheduling::{admits_spec, NAME_FIELD, NO_EXECUTE};
    use crate::pure::test_builders::{labels, req, term};
    use k8s_openapi::api::core::v1::{
        NodeAffinity, NodeSpec, PodAffinity, PodAffinityTerm, PodAntiAffinity, PodSpec, PodTemplateSpec,
        PreferredSchedulingTerm, Taint, Toleration,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use proptest::prelude::*;

    fn required(terms: Vec<NodeSelectorTerm>) -> Affinity {
        Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: terms,
                }),
                preferred_during_scheduling_ignored_during_execution: None,
            }),
            ..Affinity::default()
        }
    }

    fn terms_of(a: &Affinity) -> &[NodeSelectorTerm] {
        required_terms(Some(a)).expect("required node affinity")
    }

    fn node(name: &str, pairs: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(labels(pairs)),
                ..ObjectMeta::default()
            },
            ..Node::default()
        }
    }

    fn tolerate_all() -> Vec<Toleration> {
        vec![Toleration { operator: Some("Exists".into()), ..Toleration::default() }]
    }

    /// A CNI-like DaemonSet: hostNetwork, tolerates everything.
    fn cni(affinity: Option<Affinity>, node_selector: Option<BTreeMap<String, String>>) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                name: Some("calico-node".into()),
                namespace: Some("kube-system".into()),
                ..ObjectMeta::default()
            },
            spec: Some(DaemonSetSpec {
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(PodSpec {
                        affinity,
                        node_selector,
                        host_network: Some(true),
                        tolerations: Some(tolerate_all()),
                        ..PodSpec::default()
                    }),
                },
                ..DaemonSetSpec::default()
            }),
            status: None,
        }
    }

    fn is_cloud(n: &Node) -> bool {
        n.metadata.labels.as_ref().and_then(|l| l.get(CLOUD_LABEL)).is_some_and(|v| v == "true")
    }

    #[test]
    fn requirements_have_the_documented_shape() {
        assert_eq!(
            serde_json::to_value(exclusion()).unwrap(),
            serde_json::json!({"key": "alibabacloud.com/external", "operator": "NotIn", "values": ["true"]})
        );
        assert_eq!(
            serde_json::to_value(gate_requirement()).unwrap(),
            serde_json::json!({"key": "terway-hybrid.io/terway-gate", "operator": "In", "values": ["open"]})
        );
        assert!(expression_error(&exclusion()).is_none());
        assert!(expression_error(&gate_requirement()).is_none());
    }

    #[test]
    fn no_required_affinity_becomes_one_term() {
        let want = vec![term(vec![exclusion()])];
        assert_eq!(terms_of(&exclude_cloud(None)), want.as_slice());
        assert_eq!(terms_of(&exclude_cloud(Some(&Affinity::default()))), want.as_slice());

        // Everything else in the affinity is kept.
        let preferred =
            vec![PreferredSchedulingTerm { weight: 10, preference: term(vec![req("zone", "In", &["a"])]) }];
        let anti = PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                topology_key: "kubernetes.io/hostname".into(),
                ..PodAffinityTerm::default()
            }]),
            ..PodAntiAffinity::default()
        };
        let original = Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: None,
                preferred_during_scheduling_ignored_during_execution: Some(preferred.clone()),
            }),
            pod_affinity: Some(PodAffinity::default()),
            pod_anti_affinity: Some(anti.clone()),
        };
        let fixed = exclude_cloud(Some(&original));
        assert_eq!(terms_of(&fixed), want.as_slice());
        let na = fixed.node_affinity.as_ref().unwrap();
        assert_eq!(na.preferred_during_scheduling_ignored_during_execution.as_ref(), Some(&preferred));
        assert_eq!(fixed.pod_affinity, Some(PodAffinity::default()));
        assert_eq!(fixed.pod_anti_affinity, Some(anti));
    }

    #[test]
    fn the_exclusion_is_anded_into_every_term() {
        let arch = req("kubernetes.io/arch", "In", &["amd64"]);
        let zone = req("zone", "NotIn", &["lab"]);
        let by_name = req(NAME_FIELD, "In", &["onprem-1"]);
        let original = required(vec![
            term(vec![arch.clone(), zone.clone()]),
            NodeSelectorTerm { match_expressions: None, match_fields: Some(vec![by_name.clone()]) },
            NodeSelectorTerm { match_expressions: Some(vec![]), match_fields: Some(vec![by_name.clone()]) },
        ]);
        let fixed = exclude_cloud(Some(&original));
        assert_eq!(
            terms_of(&fixed),
            &[
                term(vec![arch, zone, exclusion()]),
                NodeSelectorTerm {
                    match_expressions: Some(vec![exclusion()]),
                    match_fields: Some(vec![by_name.clone()])
                },
                NodeSelectorTerm {
                    match_expressions: Some(vec![exclusion()]),
                    match_fields: Some(vec![by_name])
                },
            ]
        );
        assert_eq!(exclude_cloud(Some(&fixed)), fixed, "idempotent");
        assert!(already_excludes_cloud(Some(&fixed)));
        assert!(!already_excludes_cloud(Some(&original)));
    }

    #[test]
    fn empty_terms_and_term_lists_are_left_alone() {
        // Both match no node; adding the exclusion would make them match on-prem nodes.
        for original in [
            required(vec![]),
            required(vec![NodeSelectorTerm::default()]),
            required(vec![NodeSelectorTerm { match_expressions: Some(vec![]), match_fields: Some(vec![]) }]),
        ] {
            assert_eq!(exclude_cloud(Some(&original)), original);
            assert_eq!(require_gate(Some(&original)), original);
            assert!(already_excludes_cloud(Some(&original)));
        }
        let mixed = required(vec![NodeSelectorTerm::default(), term(vec![req("zone", "In", &["a"])])]);
        assert_eq!(
            terms_of(&exclude_cloud(Some(&mixed))),
            &[NodeSelectorTerm::default(), term(vec![req("zone", "In", &["a"]), exclusion()])]
        );
    }

    #[test]
    fn equivalent_requirements_are_not_added_twice() {
        #[rustfmt::skip]
        let cases: Vec<(NodeSelectorRequirement, bool)> = vec![
            // (existing requirement in the only term, does it already exclude cloud nodes)
            (exclusion(), true),
            (req(CLOUD_LABEL, "NotIn", &["true", "yes"]), true),
            (req(CLOUD_LABEL, "NotIn", &["yes", "true"]), true),
            (req(CLOUD_LABEL, "In", &["false"]), true),
            (req(CLOUD_LABEL, "In", &["false", "no"]), true),
            (req(CLOUD_LABEL, "DoesNotExist", &[]), true),
            (req(CLOUD_LABEL, "Gt", &["0"]), true), // "true" is no integer
            (req(CLOUD_LABEL, "Lt", &["9"]), true),
            (req(CLOUD_LABEL, "NotIn", &["yes"]), false),
            (req(CLOUD_LABEL, "NotIn", &["True"]), false), // values are case-sensitive
            (req(CLOUD_LABEL, "In", &["true"]), false),
            (req(CLOUD_LABEL, "In", &["false", "true"]), false),
            (req(CLOUD_LABEL, "Exists", &[]), false),
            (req("alibabacloud.com/external-x", "NotIn", &["true"]), false),
            (req("zone", "NotIn", &["true"]), false),
        ];
        for (existing, excludes) in cases {
            let original = required(vec![term(vec![existing.clone()])]);
            assert_eq!(already_excludes_cloud(Some(&original)), excludes, "{existing:?}");
            let fixed = exclude_cloud(Some(&original));
            let want = if excludes { vec![existing.clone()] } else { vec![existing.clone(), exclusion()] };
            assert_eq!(terms_of(&fixed), &[term(want)], "{existing:?}");
        }
    }

    #[test]
    fn already_excludes_cloud_table() {
        let ex = || term(vec![exclusion()]);
        let zone = || term(vec![req("zone", "In", &["a"])]);
        #[rustfmt::skip]
        let cases: Vec<(&str, Option<Affinity>, bool)> = vec![
            ("no affinity", None, false),
            ("no node affinity", Some(Affinity::default()), false),
            ("only preferred", Some(Affinity { node_affinity: Some(NodeAffinity::default()), ..Affinity::default() }), false),
            ("empty term list matches nothing", Some(required(vec![])), true),
            ("one excluding term", Some(required(vec![ex()])), true),
            ("every term excludes", Some(required(vec![ex(), term(vec![req("zone", "In", &["a"]), exclusion()])])), true),
            ("one term does not", Some(required(vec![ex(), zone()])), false),
            ("empty term is harmless", Some(required(vec![ex(), NodeSelectorTerm::default()])), true),
            ("invalid term is harmless", Some(required(vec![ex(), term(vec![req("zone", "Bogus", &[])])])), true),
            ("the exclusion in matchFields is not a label", Some(required(vec![NodeSelectorTerm {
                match_expressions: None, match_fields: Some(vec![exclusion()]) }])), false),
            ("matchFields do not exclude new nodes", Some(required(vec![NodeSelectorTerm {
                match_expressions: None, match_fields: Some(vec![req(NAME_FIELD, "In", &["onprem-1"])]) }])), false),
        ];
        for (what, affinity, want) in cases {
            assert_eq!(already_excludes_cloud(affinity.as_ref()), want, "{what}");
        }
    }

    #[test]
    fn the_gate() {
        let gate = || gate_requirement();
        let original = required(vec![term(vec![req(CLOUD_LABEL, "In", &["true"])])]);
        let gated = require_gate(Some(&original));
        assert_eq!(terms_of(&gated), &[term(vec![req(CLOUD_LABEL, "In", &["true"]), gate()])]);
        assert!(requires_gate(Some(&gated)));
        assert!(!requires_gate(Some(&original)));
        assert_eq!(require_gate(Some(&gated)), gated);
        assert_eq!(terms_of(&require_gate(None)), &[term(vec![gate()])]);
        #[rustfmt::skip]
        let cases: Vec<(NodeSelectorRequirement, bool)> = vec![
            (gate(), true),
            (req(GATE_LABEL, "In", &["open", "open"]), true),
            (req(GATE_LABEL, "In", &["open", "closed"]), false),
            (req(GATE_LABEL, "Exists", &[]), false),
            (req(GATE_LABEL, "NotIn", &["closed"]), false),
            (req(GATE_LABEL, "DoesNotExist", &[]), false),
        ];
        for (existing, want) in cases {
            assert_eq!(
                requires_gate(Some(&required(vec![term(vec![existing.clone()])]))),
                want,
                "{existing:?}"
            );
        }
        let ds = require_gate_daemon_set(&cni(None, None));
        assert!(admits(&ds, &node("c1", &[(CLOUD_LABEL, "true"), (GATE_LABEL, GATE_OPEN)])).is_admitted());
        assert!(!admits(&ds, &node("c2", &[(CLOUD_LABEL, "true")])).is_admitted());
    }

    #[test]
    fn implies_table() {
        #[rustfmt::skip]
        let cases: Vec<(NodeSelectorRequirement, NodeSelectorRequirement, bool)> = vec![
            (req("k", "In", &["a"]), req("k", "In", &["a", "b"]), true),
            (req("k", "In", &["a", "c"]), req("k", "In", &["a", "b"]), false),
            (req("k", "Exists", &[]), req("k", "In", &["a"]), false),
            (req("k", "In", &["a"]), req("k", "Exists", &[]), true),
            (req("k", "Gt", &["1"]), req("k", "Exists", &[]), true),
            (req("k", "NotIn", &["a"]), req("k", "Exists", &[]), false),
            (req("k", "DoesNotExist", &[]), req("k", "DoesNotExist", &[]), true),
            (req("k", "NotIn", &["a"]), req("k", "DoesNotExist", &[]), false),
            (req("k", "Gt", &["1"]), req("k", "Gt", &["1"]), true),
            (req("k", "Gt", &["2"]), req("k", "Gt", &["1"]), false), // true, but not worked out
            (req("k", "Gt", &["1"]), req("k", "NotIn", &["1", "0"]), true),
            (req("k", "Gt", &["0"]), req("k", "NotIn", &["1"]), false),
            (req("k", "In", &["a"]), req("k", "NotIn", &["a", "b"]), false),
            (req("k", "In", &["c"]), req("k", "NotIn", &["a", "b"]), true),
            (req("k", "NotIn", &["b", "a", "c"]), req("k", "NotIn", &["a", "b"]), true),
            (req("k", "NotIn", &["a"]), req("k", "NotIn", &["a", "b"]), false),
            (req("k", "In", &["a"]), req("j", "In", &["a"]), false),
            (req("k", "Bogus", &[]), req("k", "NotIn", &["a"]), false), // unparsable implies nothing
            (req("k", "In", &[]), req("k", "NotIn", &["a"]), false),
            (req("k", "In", &["a"]), req("k", "Bogus", &[]), false),
        ];
        for (existing, new, want) in cases {
            assert_eq!(implies(&existing, &new), want, "{existing:?} => {new:?}");
        }
    }

    #[test]
    fn with_affinity_creates_missing_parts() {
        let bare = DaemonSet::default();
        let fixed = exclude_cloud_daemon_set(&bare);
        assert_eq!(daemon_set_affinity(&fixed), Some(&exclude_cloud(None)));
        assert!(daemon_set_excludes_cloud(&fixed));
        assert!(!daemon_set_excludes_cloud(&bare));
        let by_selector = cni(None, Some(labels(&[(CLOUD_LABEL, "false")])));
        assert!(daemon_set_excludes_cloud(&by_selector));
        assert!(!daemon_set_excludes_cloud(&cni(None, Some(labels(&[(CLOUD_LABEL, "true")])))));
    }

    fn cluster() -> Vec<Node> {
        vec![
            node("onprem-1", &[("kubernetes.io/os", "linux"), ("zone", "dc1")]),
            node("onprem-2", &[("kubernetes.io/os", "linux"), ("zone", "dc2"), (CLOUD_LABEL, "false")]),
            node("cloud-1", &[("kubernetes.io/os", "linux"), (CLOUD_LABEL, "true")]),
        ]
    }

    #[test]
    fn verify_accepts_the_fix() {
        let original = cni(None, Some(labels(&[("kubernetes.io/os", "linux")])));
        let patched = exclude_cloud_daemon_set(&original);
        assert_eq!(verify_fix(&original, &patched, &cluster(), is_cloud), Ok(()));

        let zoned = cni(Some(required(vec![term(vec![req("zone", "In", &["dc1", "dc2"])])])), None);
        assert_eq!(verify_fix(&zoned, &exclude_cloud_daemon_set(&zoned), &cluster(), is_cloud), Ok(()));
    }

    #[test]
    fn verify_rejects_unsafe_patches() {
        let original = cni(
            Some(required(vec![
                term(vec![req("zone", "In", &["dc1"])]),
                term(vec![req("zone", "In", &["dc2"])]),
            ])),
            None,
        );

        // Replacing the terms instead of ANDing into them.
        let replaced =
            with_affinity(&original, required(vec![term(vec![req("zone", "In", &["dc1"]), exclusion()])]));
        let err = verify_fix(&original, &replaced, &cluster(), is_cloud).unwrap_err();
        assert_eq!(err.lost_on_prem, vec!["onprem-2".to_owned()]);
        assert!(err.admitted_cloud.is_empty() && err.admits_new_cloud_nodes.is_none());
        assert!(err.to_string().contains("onprem-2"), "{err}");

        // No patch at all on a DaemonSet that runs everywhere.
        let everywhere = cni(None, None);
        let err = verify_fix(&everywhere, &everywhere, &cluster(), is_cloud).unwrap_err();
        assert!(err.lost_on_prem.is_empty());
        assert_eq!(err.admitted_cloud, vec!["cloud-1".to_owned()]);
        assert_eq!(
            err.admits_new_cloud_nodes.as_deref(),
            Some(
                "it has no required node affinity, e.g. a new node with only that label plus the cloud label"
            )
        );
        assert_eq!(
            err.to_string(),
            "unsafe DaemonSet patch: it would still run on cloud node(s): cloud-1; it would run on new nodes \
             labelled alibabacloud.com/external=true: it has no required node affinity, e.g. a new node with \
             only that label plus the cloud label"
        );

        // Terms pinned by node name: no current cloud node, but new ones are not excluded.
        let pinned = cni(
            Some(required(vec![NodeSelectorTerm {
                match_expressions: None,
                match_fields: Some(vec![req(NAME_FIELD, "In", &["onprem-1"])]),
            }])),
            None,
        );
        let err = verify_fix(&pinned, &pinned, &cluster(), is_cloud).unwrap_err();
        assert!(err.admitted_cloud.is_empty());
        assert!(err
            .admits_new_cloud_nodes
            .as_deref()
            .unwrap()
            .starts_with("nodeSelectorTerms[0] do not exclude"));
        assert_eq!(verify_fix(&pinned, &exclude_cloud_daemon_set(&pinned), &cluster(), is_cloud), Ok(()));

        // A patch that also dropped the tolerations loses tainted on-prem nodes.
        let mut tainted = cluster();
        tainted[0].spec = Some(NodeSpec {
            taints: Some(vec![Taint {
                key: "dedicated".into(),
                effect: NO_EXECUTE.into(),
                ..Taint::default()
            }]),
            ..NodeSpec::default()
        });
        let mut intolerant = exclude_cloud_daemon_set(&everywhere);
        intolerant.spec.as_mut().unwrap().template.spec.as_mut().unwrap().tolerations = None;
        let err = verify_fix(&everywhere, &intolerant, &tainted, is_cloud).unwrap_err();
        assert_eq!(err.lost_on_prem, vec!["onprem-1".to_owned()]);

        // A custom cloud selector the label-based fix cannot see.
        let by_zone =
            |n: &Node| n.metadata.labels.as_ref().and_then(|l| l.get("zone")).is_some_and(|z| z == "dc2");
        let err =
            verify_fix(&everywhere, &exclude_cloud_daemon_set(&everywhere), &cluster(), by_zone).unwrap_err();
        assert_eq!(err.admitted_cloud, vec!["onprem-2".to_owned()]);
    }

    #[test]
    fn verify_of_a_fix_on_nodes_without_names_or_labels() {
        let nodes = vec![Node::default(), node("", &[])];
        let original = cni(None, None);
        assert_eq!(verify_fix(&original, &exclude_cloud_daemon_set(&original), &nodes, is_cloud), Ok(()));
    }

    // ---- properties ----

    const KEYS: [&str; 4] = [CLOUD_LABEL, GATE_LABEL, "zone", "num"];
    const REQ_VALUES: [&str; 8] = ["true", "false", "open", "a", "1", "7", "yes", "-3"];
    const NODE_VALUES: [&str; 7] = ["true", "false", "open", "a", "1", "7", "yes"];
    const OPS: [&str; 7] = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Bogus"];
    const NAMES: [&str; 3] = ["n0", "n1", "n2"];

    fn arb_req() -> impl Strategy<Value = NodeSelectorRequirement> {
        (0..KEYS.len(), 0..OPS.len(), prop::collection::vec(0..REQ_VALUES.len(), 0..3), 0..10u8).prop_map(
            |(k, o, vs, malformed)| {
                let values: Vec<&str> = vs.iter().map(|&v| REQ_VALUES[v]).collect();
                // Mostly the shape the operator wants, sometimes not (a parse error).
                let values = match OPS[o] {
                    "Exists" | "DoesNotExist" if malformed > 0 => vec![],
                    "Gt" | "Lt" if malformed > 0 => vec![["0", "1", "5", "7"][usize::from(malformed) % 4]],
                    "In" | "NotIn" if malformed > 0 && values.is_empty() => vec!["true"],
                    _ => values,
                };
                req(KEYS[k], OPS[o], &values)
            },
        )
    }

    fn arb_field() -> impl Strategy<Value = NodeSelectorRequirement> {
        (
            prop::sample::select(vec!["In", "NotIn", "Exists"]),
            prop::collection::vec(prop::sample::select(NAMES.to_vec()), 1..3),
        )
            .prop_map(|(op, names)| req(NAME_FIELD, op, &names))
    }

    fn arb_term() -> impl Strategy<Value = NodeSelectorTerm> {
        (
            prop::option::of(prop::collection::vec(arb_req(), 0..4)),
            prop::option::weighted(0.3, prop::collection::vec(arb_field(), 0..2)),
        )
            .prop_map(|(match_expressions, match_fields)| NodeSelectorTerm {
                match_expressions,
                match_fields,
            })
    }

    fn arb_affinity() -> impl Strategy<Value = Option<Affinity>> {
        let node_affinity = (
            prop::option::weighted(0.85, prop::collection::vec(arb_term(), 0..4)),
            prop::option::of(prop::collection::vec(arb_term(), 0..2)),
            any::<bool>(),
        )
            .prop_map(|(required, preferred, pod_affinity)| {
                Some(Affinity {
                    node_affinity: Some(NodeAffinity {
                        required_during_scheduling_ignored_during_execution: required
                            .map(|node_selector_terms| NodeSelector { node_selector_terms }),
                        preferred_during_scheduling_ignored_during_execution: preferred.map(|ts| {
                            ts.into_iter()
                                .map(|preference| PreferredSchedulingTerm { weight: 1, preference })
                                .collect()
                        }),
                    }),
                    pod_affinity: pod_affinity.then(PodAffinity::default),
                    pod_anti_affinity: None,
                })
            });
        prop_oneof![
            1 => Just(None),
            1 => Just(Some(Affinity { pod_anti_affinity: Some(PodAntiAffinity::default()), ..Affinity::default() })),
            8 => node_affinity,
        ]
    }

    fn arb_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
        prop::collection::btree_map(
            prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
            prop::sample::select(NODE_VALUES.to_vec()).prop_map(str::to_owned),
            0..5,
        )
    }

    fn arb_node() -> impl Strategy<Value = Node> {
        (prop::option::of(prop::sample::select(NAMES.to_vec())), arb_labels()).prop_map(|(name, labels)| {
            Node {
                metadata: ObjectMeta {
                    name: name.map(str::to_owned),
                    labels: Some(labels),
                    ..ObjectMeta::default()
                },
                ..Node::default()
            }
        })
    }

    fn arb_node_selector() -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
        prop::option::weighted(
            0.2,
            prop::collection::btree_map(
                prop::sample::select(vec!["zone", CLOUD_LABEL]).prop_map(str::to_owned),
                prop::sample::select(vec!["a", "true", "false"]).prop_map(str::to_owned),
                0..2,
            ),
        )
    }

    fn label_is(n: &Node, key: &str, value: &str) -> bool {
        n.metadata.labels.as_ref().and_then(|l| l.get(key)).is_some_and(|v| v == value)
    }

    /// The node as given, and as a node that has not got its name yet.
    fn with_unnamed(nodes: &[Node]) -> Vec<Node> {
        let mut all = nodes.to_vec();
        all.extend(
            nodes
                .iter()
                .map(|n| Node { metadata: ObjectMeta { name: None, ..n.metadata.clone() }, ..n.clone() }),
        );
        all
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// The key property: the fix keeps the CNI on every on-prem node it ran
        /// on, takes it off every cloud node, changes nothing else, and passes
        /// verify_fix.
        #[test]
        fn the_fix_is_exact_and_verified(
            affinity in arb_affinity(),
            node_selector in arb_node_selector(),
            nodes in prop::collection::vec(arb_node(), 0..6),
        ) {
            let original = cni(affinity, node_selector);
            let patched = exclude_cloud_daemon_set(&original);
            for n in with_unnamed(&nodes) {
                let before = admits(&original, &n).is_admitted();
                let after = admits(&patched, &n).is_admitted();
                prop_assert_eq!(after, before && !is_cloud(&n), "node {:?}", n.metadata);
            }
            prop_assert_eq!(verify_fix(&original, &patched, &nodes, is_cloud), Ok(()));
            prop_assert!(already_excludes_cloud(daemon_set_affinity(&patched)));
            prop_assert!(daemon_set_excludes_cloud(&patched));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3_000))]

        #[test]
        fn the_fix_is_idempotent(affinity in arb_affinity()) {
            let once = exclude_cloud(affinity.as_ref());
            prop_assert_eq!(exclude_cloud(Some(&once)), once.clone());
            prop_assert!(already_excludes_cloud(Some(&once)));
            let gated = require_gate(affinity.as_ref());
            prop_assert_eq!(require_gate(Some(&gated)), gated.clone());
            prop_assert!(requires_gate(Some(&gated)));
        }

        #[test]
        fn an_affinity_that_already_excludes_is_not_changed(affinity in arb_affinity()) {
            if already_excludes_cloud(affinity.as_ref()) {
                // Nothing to roll: only unparsable terms may still gain the exclusion.
                let fixed = exclude_cloud(affinity.as_ref());
                let before = terms_of(affinity.as_ref().unwrap());
                for (old, new) in before.iter().zip(terms_of(&fixed)) {
                    if term_defect(old).is_none() {
                        prop_assert_eq!(old, new);
                    }
                }
            }
        }

        #[test]
        fn the_fix_keeps_everything_else(affinity in arb_affinity()) {
            let fixed = exclude_cloud(affinity.as_ref());
            let original = affinity.clone().unwrap_or_default();
            prop_assert_eq!(&fixed.pod_affinity, &original.pod_affinity);
            prop_assert_eq!(&fixed.pod_anti_affinity, &original.pod_anti_affinity);
            prop_assert_eq!(
                fixed.node_affinity.as_ref().and_then(|n| n.preferred_during_scheduling_ignored_during_execution.as_ref()),
                original.node_affinity.as_ref().and_then(|n| n.preferred_during_scheduling_ignored_during_execution.as_ref())
            );
            if let Some(before) = required_terms(Some(&original)) {
                let after = terms_of(&fixed);
                prop_assert_eq!(before.len(), after.len());
                for (old, new) in before.iter().zip(after) {
                    // Only ever appended to, never reordered or replaced.
                    prop_assert_eq!(&old.match_fields, &new.match_fields);
                    let old_exprs = old.match_expressions.as_deref().unwrap_or(&[]);
                    let new_exprs = new.match_expressions.as_deref().unwrap_or(&[]);
                    prop_assert!(new_exprs.starts_with(old_exprs));
                    prop_assert!(new_exprs.len() <= old_exprs.len() + 1);
                }
            }
        }

        #[test]
        fn the_gate_is_exact(affinity in arb_affinity(), nodes in prop::collection::vec(arb_node(), 1..5)) {
            let original = cni(affinity, None);
            let gated = require_gate_daemon_set(&original);
            for n in with_unnamed(&nodes) {
                let before = admits(&original, &n).is_admitted();
                let after = admits(&gated, &n).is_admitted();
                prop_assert_eq!(after, before && label_is(&n, GATE_LABEL, GATE_OPEN));
            }
        }

        /// already_excludes_cloud never claims more than the scheduler does.
        #[test]
        fn already_excludes_cloud_is_sound(affinity in arb_affinity(), nodes in prop::collection::vec(arb_node(), 1..5)) {
            if already_excludes_cloud(affinity.as_ref()) {
                let ds = cni(affinity, None);
                for n in with_unnamed(&nodes) {
                    if is_cloud(&n) {
                        prop_assert!(!admits(&ds, &n).is_admitted());
                    }
                }
            }
        }

        #[test]
        fn requires_gate_is_sound(affinity in arb_affinity(), labels in arb_labels()) {
            if requires_gate(affinity.as_ref()) && labels.get(GATE_LABEL).is_none_or(|v| v != GATE_OPEN) {
                let spec = PodSpec { affinity, ..PodSpec::default() };
                prop_assert!(!admits_spec(&spec, &labels, None, &[]).is_admitted());
            }
        }

        #[test]
        fn implies_is_sound(existing in arb_req(), new in arb_req()) {
            // On the same key, or implication is trivially false.
            let new = NodeSelectorRequirement { key: existing.key.clone(), ..new };
            if implies(&existing, &new) {
                let states = std::iter::once(None).chain(REQ_VALUES.iter().chain(&["0", "9"]).map(Some));
                for value in states {
                    let labels: BTreeMap<String, String> =
                        value.map(|v| BTreeMap::from([(existing.key.clone(), v.to_string())])).unwrap_or_default();
                    prop_assert!(!requirement_matches(&existing, &labels) || requirement_matches(&new, &labels));
                }
            }
        }
    }
}
