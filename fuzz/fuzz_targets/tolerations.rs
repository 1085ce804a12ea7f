//! Toleration matching (`scheduling::tolerates`, `untolerated_taint`, the
//! automatic DaemonSet tolerations) on taints and tolerations built with
//! `arbitrary`. Properties:
//! - `untolerated_taint` returns the first NoSchedule/NoExecute taint no
//!   toleration tolerates, and None only when there is none (brute force);
//! - `admits` fails on a taint exactly when the node selection passes and a
//!   taint is untolerated, and `keeps_running` only for NoExecute ones;
//! - an `Exists` toleration without key and effect tolerates every taint;
//!   one with a key tolerates every taint of that key.
#![no_main]
#[path = "k8s_gen.rs"]
mod k8s_gen;
use k8s_gen::{DaemonSetGen, NodeGen, TaintGen, TolerationGen};
use k8s_openapi::api::core::v1::Toleration;
use libfuzzer_sys::fuzz_target;
use terway_hybrid_controller::pure::scheduling::{
    admits, daemon_tolerations, keeps_running, pod_spec, tolerates, untolerated_taint, Admission, NO_EXECUTE,
    NO_SCHEDULE,
};

#[derive(arbitrary::Arbitrary, Debug)]
struct Input {
    taints: Vec<TaintGen>,
    tolerations: Vec<TolerationGen>,
    ds: DaemonSetGen,
    node: NodeGen,
}

fuzz_target!(|input: Input| {
    let taints: Vec<_> = input.taints.iter().map(TaintGen::build).collect();
    let tolerations: Vec<_> = input.tolerations.iter().map(TolerationGen::build).collect();

    let brute = taints.iter().position(|t| {
        (t.effect == NO_SCHEDULE || t.effect == NO_EXECUTE) && !tolerations.iter().any(|o| tolerates(o, t))
    });
    let found = untolerated_taint(&taints, &tolerations).map(|t| t as *const _);
    assert_eq!(found, brute.map(|i| &taints[i] as *const _), "untolerated_taint disagrees with brute force");

    let everything = Toleration { operator: Some("Exists".into()), ..Default::default() };
    for t in &taints {
        assert!(tolerates(&everything, t), "Exists without key tolerates {t:?}");
        let by_key =
            Toleration { key: Some(t.key.clone()), operator: Some("Exists".into()), ..Default::default() };
        if !t.key.is_empty() {
            assert!(tolerates(&by_key, t));
        }
    }

    let ds = input.ds.build();
    let node = input.node.build();
    let node_taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let all = daemon_tolerations(&pod_spec(&ds));
    let new_pod = admits(&ds, &node);
    let running = keeps_running(&ds, &node);
    match &new_pod {
        Admission::UntoleratedTaint { key, effect, .. } => {
            let t = untolerated_taint(&node_taints, &all).expect("a taint kept it off");
            assert_eq!((&t.key, &t.effect), (key, effect));
        }
        Admission::Admitted => assert!(untolerated_taint(&node_taints, &all).is_none()),
        other => assert_eq!(&running, other, "a selection mismatch is the same for a running pod"),
    }
    let no_execute: Vec<_> = node_taints.iter().filter(|t| t.effect == NO_EXECUTE).cloned().collect();
    if matches!(new_pod, Admission::Admitted | Admission::UntoleratedTaint { .. }) {
        assert_eq!(running.is_admitted(), untolerated_taint(&no_execute, &all).is_none());
    }
});
