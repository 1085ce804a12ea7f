//! Node-selector matching (`scheduling::admits` and friends) and the safe
//! affinity fix (`affinity::and_into_every_term`), on DaemonSets and Nodes
//! built with `arbitrary`. Properties, each a claim of the modules' docs:
//! - `admits` on an unnamed node equals `admits_labels` on its labels and taints;
//! - whatever `admits` admits `keeps_running` keeps;
//! - after ANDing a requirement into every term, the DaemonSet admits a node
//!   iff it admitted it before and the node meets the requirement;
//! - afterwards every term implies the requirement, and doing it again
//!   changes nothing (for a requirement the scheduler can parse);
//! - `implies(a, b)`: every label value meeting `a` meets `b`.
#![no_main]
#[path = "k8s_gen.rs"]
mod k8s_gen;
use k8s_gen::{labels_of, DaemonSetGen, NodeGen, Req, Str};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use terway_hybrid_controller::pure::affinity::{
    and_into_every_term, daemon_set_affinity, every_term_implies, exclusion, gate_requirement, implies,
    with_affinity,
};
use terway_hybrid_controller::pure::scheduling::{
    admits, admits_labels, expression_error, keeps_running, requirement_matches,
};

#[derive(arbitrary::Arbitrary, Debug)]
struct Input {
    ds: DaemonSetGen,
    node: NodeGen,
    requirement: Option<Req>,
    other: Req,
    probe: Str,
}

fuzz_target!(|input: Input| {
    let ds = input.ds.build();
    let node = input.node.build();
    let labels = labels_of(&node);
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();

    let admitted = admits(&ds, &node);
    assert_eq!(admitted, admits(&ds, &node), "admits is not deterministic");
    if admitted.is_admitted() {
        assert!(keeps_running(&ds, &node).is_admitted(), "admitted but would not keep running");
    }
    let mut unnamed = node.clone();
    unnamed.metadata.name = None;
    assert_eq!(
        admits(&ds, &unnamed),
        admits_labels(&ds, &labels, &taints),
        "admits and admits_labels disagree"
    );

    let requirement = input.requirement.as_ref().map_or_else(
        || if input.other.values.is_some() { exclusion() } else { gate_requirement() },
        Req::build,
    );
    let fixed_affinity = and_into_every_term(daemon_set_affinity(&ds), &requirement);
    let fixed = with_affinity(&ds, fixed_affinity.clone());
    assert_eq!(
        admits(&fixed, &node).is_admitted(),
        admitted.is_admitted() && requirement_matches(&requirement, &labels),
        "the fix with {requirement:?} does not narrow by exactly the requirement"
    );
    assert!(
        every_term_implies(Some(&fixed_affinity), &requirement),
        "a fixed term does not imply {requirement:?}"
    );
    if expression_error(&requirement).is_none() {
        assert_eq!(
            and_into_every_term(Some(&fixed_affinity), &requirement),
            fixed_affinity,
            "the fix is not idempotent"
        );
    }

    let other = input.other.build();
    if implies(&other, &requirement) {
        let key = other.key.clone();
        let mut probes: Vec<Option<String>> = vec![None, Some(input.probe.value())];
        probes.extend(other.values.iter().chain(requirement.values.iter()).flatten().cloned().map(Some));
        for v in probes {
            let l: BTreeMap<String, String> = v.iter().map(|v| (key.clone(), v.clone())).collect();
            if requirement_matches(&other, &l) {
                assert!(
                    requirement_matches(&requirement, &l),
                    "{other:?} implies {requirement:?} but not for {v:?}"
                );
            }
        }
    }
});
