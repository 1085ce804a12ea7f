//! The rollout story of `plan`, on the shipped example dumps
//! (`examples/`, written by `bench/gen-dump.py`): gate enforcement, waves,
//! halting, pausing, ignored failures, conditions and events, and
//! `spec.crossSite.gateWaves`, played step by step, each step checked
//! against what must always hold (`step`). The check table is
//! `plan_checks.rs`.

mod common;
mod example_edits;
mod plan_story;

use common::*;
use example_edits::*;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use plan_story::*;
use terway_hybrid_api::rollout::{condition, Mode, GATE_LABEL, GATE_OPEN};
use terway_hybrid_api::{CheckName, CheckStatus, NodeNetworkReport, Role, Scenario};
use terway_hybrid_controller::pure::affinity;
use terway_hybrid_controller::pure::plan::{max_unavailable, plan, Plan};
use terway_hybrid_controller::pure::pod::SlimPod;
use terway_hybrid_controller::pure::view::ClusterView;

use CheckName::*;
use CheckStatus::Fail;

// ---- the rollout ----

/// bgp-pass with five cloud nodes (maxUnavailable 2, readinessTimeout 10m,
/// mode Auto), Terway's DaemonSet already requiring the gate, no gate open,
/// every Terway pod present and not Ready.
fn five_cloud_bgp() -> ClusterView {
    let mut view = example("bgp-pass");
    for n in 3..=5 {
        clone_node(&mut view, "cloud-1", &format!("cloud-{n}"));
    }
    require_gate(&mut view);
    view
}

fn set_all_ready(view: &mut ClusterView, nodes: &[&str]) {
    for n in nodes {
        set_terway_ready(view, n, true);
    }
}

/// Runs `plan` and checks what must hold on every step: conditions follow
/// metav1.Condition semantics against the previous status, events are exactly
/// the condition changes, rows agree with their labels, on-prem nodes are never
/// gated and gates already open on cloud nodes stay open.
fn step(view: &ClusterView, now: Timestamp) -> Plan {
    let p = plan(view, now);
    let previous = view.rollout.as_ref().and_then(|r| r.status.clone()).unwrap_or_default();
    let generation = view.rollout.as_ref().and_then(|r| r.metadata.generation);
    assert_eq!(p.status.observed_generation, generation);
    let types: Vec<&str> = p.status.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, ["Available", "Degraded", "PreflightPassed", "Progressing", "ScenarioDetected"]);
    for c in &p.status.conditions {
        assert_eq!(c.observed_generation, generation, "{}", c.type_);
        assert!(c.status == "True" || c.status == "False");
        match previous.conditions.iter().find(|o| o.type_ == c.type_) {
            Some(old) if old.status == c.status => {
                assert_eq!(c.last_transition_time, old.last_transition_time, "{} kept its status", c.type_)
            }
            _ => assert_eq!(c.last_transition_time.0, now, "{} changed status", c.type_),
        }
    }
    assert_eq!(event_keys(&p.events), expected_event_reasons(&previous.conditions, &p.status.conditions));
    for e in &p.events {
        let bad = (e.message.starts_with("Degraded is True"))
            || (!e.message.starts_with("Degraded")
                && !e.message.starts_with("Progressing")
                && e.message.contains(" is False"));
        assert_eq!(e.warning, bad, "{e:?}");
    }
    for r in &p.nodes {
        assert_eq!(r.labels.iter().any(|(k, v)| k == GATE_LABEL && v == GATE_OPEN), r.gate, "{}", r.name);
        if r.role == Role::OnPrem {
            assert!(!r.gate, "{} is on-prem", r.name);
        } else if gated_in(view, &r.name) {
            assert!(r.gate, "{}: an open gate stays open", r.name);
        }
    }
    assert_eq!(p.status.nodes.gated as usize, gated_rows(&p).len());
    p
}

#[test]
fn the_gate_requirement_comes_before_any_wave() {
    let view = example("bgp-pass");
    let p = step(&view, t0());
    assert!(p.passed);
    let patch = p.terway_gate.as_ref().expect("the gate patch");
    assert_eq!((patch.namespace.as_str(), patch.name.as_str()), (TERWAY_NS, TERWAY));
    assert!(affinity::requires_gate(Some(&patch.affinity)));
    assert!(gated_rows(&p).is_empty(), "no gate opens before Terway requires it");
    assert_eq!(cond(&p, condition::PROGRESSING), ("True".to_owned(), "EnforcingGate".to_owned()));
    assert_eq!(cond(&p, condition::DEGRADED), ("False".to_owned(), "AsExpected".to_owned()));
    assert_eq!((p.status.current_wave, p.status.wave.as_ref()), (0, None));

    // Applied, the next plan opens the first wave and asks for no patch.
    let mut view = view;
    apply(&mut view, &p);
    let ds = terway_mut(&mut view);
    ds.spec.as_mut().and_then(|s| s.template.spec.as_mut()).unwrap().affinity = Some(patch.affinity.clone());
    let p = step(&view, at(1));
    assert!(p.terway_gate.is_none());
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"]);
    assert_eq!(cond(&p, condition::PROGRESSING), ("True".to_owned(), "WaveInProgress".to_owned()));
}

#[test]
fn the_first_wave_opens_at_most_max_unavailable_gates() {
    let view = five_cloud_bgp();
    let p = step(&view, t0());
    assert!(p.passed, "{:#?}", p.checks);
    assert!(p.terway_gate.is_none());
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"]);
    assert_eq!(p.status.current_wave, 1);
    let wave = p.status.wave.as_ref().expect("a wave");
    assert_eq!(wave.nodes, ["cloud-1", "cloud-2"]);
    assert_eq!(wave.started.0, t0());
    let progressing = condition(&p.status, condition::PROGRESSING);
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("True", "WaveInProgress"));
    assert!(progressing.message.contains("wave 1") && progressing.message.contains("cloud-1, cloud-2"));
    assert_eq!(cond(&p, condition::AVAILABLE), ("False".to_owned(), "CloudNodesPending".to_owned()));
    assert_eq!(p.status.nodes.gated, 2);
    assert_eq!(p.status.nodes.cloud, 5);
    assert_eq!(p.status.nodes.on_prem, 3);

    // maxUnavailable as a count or a percentage of the cloud nodes.
    #[rustfmt::skip]
    let budgets: [(IntOrString, usize); 7] = [
        (IntOrString::Int(1), 1), (IntOrString::Int(3), 3), (IntOrString::Int(9), 5),
        (IntOrString::String("40%".into()), 2), (IntOrString::String("50%".into()), 2),
        (IntOrString::String("100%".into()), 5), (IntOrString::String("10%".into()), 1),
    ];
    for (max, want) in budgets {
        let mut view = five_cloud_bgp();
        spec_mut(&mut view).max_unavailable = max.clone();
        assert_eq!(max_unavailable(&max, 5).min(5), want, "{max:?}");
        let p = step(&view, t0());
        assert_eq!(gated_rows(&p).len(), want, "{max:?}");
        assert_eq!(p.status.wave.as_ref().map(|w| w.nodes.len()), Some(want), "{max:?}");
    }

    // A cloud node failing its own checks is not eligible (its failure ignored cluster-wide).
    let mut view = five_cloud_bgp();
    fail_node_check(&mut view, "cloud-1");
    spec_mut(&mut view).ignore_checks = vec!["CloudNodePreflight".to_owned()];
    let p = step(&view, t0());
    assert_eq!(gated_rows(&p), ["cloud-2", "cloud-3"]);
}

#[test]
fn waves_advance_as_their_nodes_become_ready() {
    let mut view = five_cloud_bgp();
    let waves: [&[&str]; 3] = [&["cloud-1", "cloud-2"], &["cloud-3", "cloud-4"], &["cloud-5"]];
    let mut open: Vec<&str> = vec![];
    for (i, wave) in waves.iter().enumerate() {
        let now = at(i as i64 * 3);
        let p = step(&view, now);
        open.extend(wave.iter());
        assert_eq!(gated_rows(&p), open, "wave {}", i + 1);
        assert_eq!(p.status.current_wave, i as u32 + 1);
        assert_eq!(
            p.status.wave.as_ref().map(|w| (w.nodes.clone(), w.started.0)),
            Some((wave.iter().map(|s| s.to_string()).collect(), now))
        );
        assert_eq!(cond(&p, condition::PROGRESSING), ("True".to_owned(), "WaveInProgress".to_owned()));
        assert_eq!(cond(&p, condition::DEGRADED), ("False".to_owned(), "AsExpected".to_owned()));
        apply(&mut view, &p);
        // The same plan again is quiet: no event, nothing new.
        let again = step(&view, now + k8s_openapi::jiff::SignedDuration::from_secs(30));
        assert!(again.events.is_empty(), "{:?}", again.events);
        assert_eq!(gated_rows(&again), open);
        assert_eq!(again.status.wave, p.status.wave);
        set_all_ready(&mut view, wave);
    }
    let p = step(&view, at(10));
    assert_eq!(gated_rows(&p).len(), 5);
    assert_eq!(p.status.current_wave, 3);
    assert_eq!(p.status.wave, None);
    assert_eq!(cond(&p, condition::PROGRESSING), ("False".to_owned(), "Complete".to_owned()));
    assert_eq!(cond(&p, condition::AVAILABLE), ("True".to_owned(), "AllCloudNodesReady".to_owned()));
    assert_eq!(p.status.nodes.terway_ready, 5);
    let mut keys = event_keys(&p.events);
    keys.sort();
    assert_eq!(keys, ["Available=True AllCloudNodesReady", "Progressing=False Complete"]);
    apply(&mut view, &p);
    let p = step(&view, at(11));
    assert!(p.events.is_empty());
}

/// Wave 1 (cloud-1, cloud-2) opened at t0 and applied; cloud-1's Terway is
/// Ready, cloud-2's is not.
fn wave_one_half_ready() -> ClusterView {
    let mut view = five_cloud_bgp();
    let p = step(&view, t0());
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"]);
    apply(&mut view, &p);
    set_terway_ready(&mut view, "cloud-1", true);
    view
}

#[test]
fn a_wave_waits_for_its_nodes_until_the_readiness_timeout() {
    let view = wave_one_half_ready();
    for now in [at(1), at(5), at(10)] {
        let p = step(&view, now);
        assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"], "{now}");
        assert_eq!(p.status.current_wave, 1);
        assert_eq!(
            p.status.wave.as_ref().map(|w| w.started.0),
            Some(t0()),
            "{now}: the wave keeps its start"
        );
        assert_eq!(
            cond(&p, condition::PROGRESSING),
            ("True".to_owned(), "WaveInProgress".to_owned()),
            "{now}"
        );
        assert_eq!(cond(&p, condition::DEGRADED), ("False".to_owned(), "AsExpected".to_owned()), "{now}");
    }
    // A longer timeout, parsed as a duration.
    let mut view = view;
    spec_mut(&mut view).readiness_timeout = "1h30m".to_owned();
    let p = step(&view, at(60));
    assert_eq!(cond(&p, condition::PROGRESSING), ("True".to_owned(), "WaveInProgress".to_owned()));
    let p = step(&view, at(91));
    assert_eq!(cond(&p, condition::DEGRADED), ("True".to_owned(), "WaveFailed".to_owned()));
}

/// A timeout the old pattern admitted but whose seconds overflow i64 (a
/// release build wrapped it negative: a minute-old wave failed), and
/// maxUnavailable values out of range: the rollout stops with InvalidSpec
/// naming the value; no wave fails, no gate opens, nothing is clamped.
#[test]
fn values_out_of_range_stop_the_rollout_with_invalid_spec() {
    let view = wave_one_half_ready();
    for (timeout, max) in [
        ("2562047788015216h", IntOrString::Int(1)),
        ("99999999999999999999s", IntOrString::Int(1)),
        ("0s", IntOrString::Int(1)),
        ("10m", IntOrString::Int(0)),
        ("10m", IntOrString::String("250%".into())),
    ] {
        let mut view = view.clone();
        spec_mut(&mut view).readiness_timeout = timeout.to_owned();
        spec_mut(&mut view).max_unavailable = max.clone();
        let p = step(&view, at(1));
        assert_eq!(
            cond(&p, condition::PROGRESSING),
            ("False".to_owned(), "InvalidSpec".to_owned()),
            "{timeout} {max:?}"
        );
        assert_eq!(cond(&p, condition::DEGRADED), ("False".to_owned(), "AsExpected".to_owned()), "{timeout}");
        let message =
            &p.status.conditions.iter().find(|c| c.type_ == condition::PROGRESSING).unwrap().message;
        assert!(message.contains("is not a"), "{message}");
        // The wave in progress keeps its gates; no new one opens.
        assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"], "{timeout}");
    }
}

#[test]
fn a_wave_not_ready_after_the_timeout_fails_and_opens_nothing() {
    let view = wave_one_half_ready();
    let p = step(&view, at_secs(10 * 60 + 1));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"], "existing gates stay, none opens");
    let degraded = condition(&p.status, condition::DEGRADED);
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "WaveFailed"));
    assert!(degraded.message.contains("cloud-2"), "{}", degraded.message);
    assert!(!degraded.message.contains("cloud-1"), "cloud-1 is Ready: {}", degraded.message);
    assert!(degraded.message.contains("wave 1") && degraded.message.contains("10m"), "{}", degraded.message);
    assert_eq!(cond(&p, condition::PROGRESSING), ("False".to_owned(), "WaveFailed".to_owned()));
    let event = p.events.iter().find(|e| e.reason == "WaveFailed" && e.message.starts_with("Degraded"));
    assert!(event.is_some_and(|e| e.warning), "{:?}", p.events);
}

/// "the rollout is halted until they recover": the failed wave must keep the
/// rollout halted on the following reconciles too, not only on the one that
/// noticed the timeout.
#[test]
fn a_failed_wave_stays_halted_until_its_nodes_recover() {
    let mut view = wave_one_half_ready();
    let p = step(&view, at(11));
    assert_eq!(cond(&p, condition::DEGRADED), ("True".to_owned(), "WaveFailed".to_owned()));
    apply(&mut view, &p);
    for now in [at(12), at(20)] {
        let p = step(&view, now);
        assert_eq!(
            gated_rows(&p),
            ["cloud-1", "cloud-2"],
            "{now}: cloud-2 is still not Ready, yet the plan opens new gates"
        );
        assert_eq!(
            cond(&p, condition::DEGRADED),
            ("True".to_owned(), "WaveFailed".to_owned()),
            "{now}: the halt is forgotten; Degraded: {:?}",
            condition(&p.status, condition::DEGRADED)
        );
        assert_ne!(cond(&p, condition::PROGRESSING).1, "WaveInProgress", "{now}");
        apply(&mut view, &p);
    }
    // cloud-2 recovers: the rollout goes on.
    set_terway_ready(&mut view, "cloud-2", true);
    let p = step(&view, at(21));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2", "cloud-3", "cloud-4"]);
    assert_eq!(p.status.current_wave, 2);
    assert_eq!(cond(&p, condition::DEGRADED), ("False".to_owned(), "AsExpected".to_owned()));
}

/// The status write of wave 1 landed, the gate label writes did not (a 409 on
/// the nodes): the next plan must still want the wave's gates, so the writes
/// are retried; otherwise the wave waits for Terway on nodes it never reached
/// and fails at the readiness timeout.
#[test]
fn a_wave_whose_label_writes_were_lost_gets_its_gates_again() {
    let mut view = five_cloud_bgp();
    let p = step(&view, t0());
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"]);
    rollout_mut(&mut view).status = Some(p.status.clone());
    let p = step(&view, at(1));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"], "the recorded wave's gates are not re-asserted");
    assert_eq!(p.status.current_wave, 1);
    assert_eq!(p.status.wave.as_ref().map(|w| w.started.0), Some(t0()));
}

/// ... but only while the rollout may go on: a recorded wave whose labels never
/// landed does not open gates once the mode is Manual, the rollout is paused
/// or the preflight fails.
#[test]
fn lost_wave_labels_stay_closed_when_the_rollout_is_held() {
    type Hold = fn(&mut ClusterView);
    let holds: [(&str, Hold); 3] = [
        ("Manual", |v| spec_mut(v).mode = Mode::Manual),
        ("paused", |v| spec_mut(v).paused = true),
        ("preflight fails", |v| v.addon_secret = None),
    ];
    for (what, hold) in holds {
        let mut view = five_cloud_bgp();
        let p = step(&view, t0());
        rollout_mut(&mut view).status = Some(p.status.clone());
        hold(&mut view);
        let p = step(&view, at(1));
        assert!(gated_rows(&p).is_empty(), "{what}: gates {:?} open", gated_rows(&p));
    }
}

/// Gated nodes that are not Ready use up the budget; with eligible nodes still
/// waiting, the rollout is not complete.
#[test]
fn progressing_is_not_complete_while_eligible_nodes_wait_for_budget() {
    let mut view = five_cloud_bgp();
    for n in ["cloud-1", "cloud-2"] {
        set_label(&mut view, n, GATE_LABEL, Some(GATE_OPEN));
    }
    let p = step(&view, t0());
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"], "the budget (2) is used up by unready gated nodes");
    let progressing = condition(&p.status, condition::PROGRESSING);
    assert_ne!(
        progressing.reason, "Complete",
        "3 eligible cloud nodes have no gate, yet Progressing says: {}",
        progressing.message
    );
}

#[test]
fn an_ignored_failure_lets_the_rollout_proceed() {
    let mut view = five_cloud_bgp();
    view.addon_secret = None;
    let p = plan(&view, t0());
    assert!(!p.passed);
    assert!(gated_rows(&p).is_empty());
    spec_mut(&mut view).ignore_checks = vec!["RamSecret".to_owned()];
    let p = plan(&view, t0());
    assert!(p.passed);
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"]);
}

#[test]
fn a_paused_rollout_keeps_its_gates_and_opens_none() {
    let mut view = five_cloud_bgp();
    let p = step(&view, t0());
    apply(&mut view, &p);
    set_all_ready(&mut view, &["cloud-1", "cloud-2"]);
    spec_mut(&mut view).paused = true;
    let p = step(&view, at(1));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"]);
    assert_eq!(cond(&p, condition::PROGRESSING), ("False".to_owned(), "Paused".to_owned()));
    assert_eq!(p.status.current_wave, 1);
    apply(&mut view, &p);
    // Paused before any wave: nothing opens.
    let mut fresh = five_cloud_bgp();
    spec_mut(&mut fresh).paused = true;
    assert!(gated_rows(&step(&fresh, t0())).is_empty());
    // Resumed: the next wave.
    spec_mut(&mut view).paused = false;
    let p = step(&view, at(2));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2", "cloud-3", "cloud-4"]);
    assert_eq!(p.status.current_wave, 2);
}

#[test]
fn manual_mode_opens_no_gate_and_patches_nothing() {
    for base in [five_cloud_bgp(), example("bgp-pass"), example("host-network-pass")] {
        let mut view = base;
        spec_mut(&mut view).mode = Mode::Manual;
        let p = step(&view, t0());
        assert!(p.passed);
        assert!(gated_rows(&p).is_empty());
        assert!(p.terway_gate.is_none());
        assert_eq!(cond(&p, condition::PROGRESSING), ("False".to_owned(), "ManualMode".to_owned()));
    }
    // No TerwayRollout at all: the defaults, mode Manual.
    let mut view = five_cloud_bgp();
    view.rollout = None;
    let p = plan(&view, t0());
    assert!(gated_rows(&p).is_empty());
    assert_eq!(cond(&p, condition::PROGRESSING).1, "ManualMode");
    // Gates open before Manual stay open.
    let mut view = five_cloud_bgp();
    let p = step(&view, t0());
    apply(&mut view, &p);
    spec_mut(&mut view).mode = Mode::Manual;
    assert_eq!(gated_rows(&step(&view, at(1))), ["cloud-1", "cloud-2"]);
}

#[test]
fn a_failing_preflight_keeps_open_gates_and_opens_none() {
    let mut view = five_cloud_bgp();
    let p = step(&view, t0());
    apply(&mut view, &p);
    set_all_ready(&mut view, &["cloud-1", "cloud-2"]);
    view.addon_secret = None;
    let p = step(&view, at(1));
    assert!(!p.passed);
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"]);
    assert_eq!(cond(&p, condition::PROGRESSING), ("False".to_owned(), "PreflightFailed".to_owned()));
    let preflight = condition(&p.status, condition::PREFLIGHT_PASSED);
    assert_eq!((preflight.status.as_str(), preflight.reason.as_str()), ("False", "ChecksFailed"));
    assert!(preflight.message.contains("RamSecret"));
    assert!(p.events.iter().any(|e| e.warning && e.reason == "ChecksFailed"));
    // Fixed: the rollout resumes with wave 2.
    apply(&mut view, &p);
    view.addon_secret = example("bgp-pass").addon_secret;
    let p = step(&view, at(2));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2", "cloud-3", "cloud-4"]);
}

#[test]
fn a_gate_on_an_on_prem_node_is_closed() {
    let mut view = five_cloud_bgp();
    set_label(&mut view, "onprem-2", GATE_LABEL, Some(GATE_OPEN));
    let p = step(&view, t0());
    let r = row(&p, "onprem-2");
    assert!(!r.gate);
    assert!(!r.labels.iter().any(|(k, _)| k == GATE_LABEL));
    let degraded = condition(&p.status, condition::DEGRADED);
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "OnPremGated"));
    assert!(degraded.message.contains("onprem-2"));
    assert!(p.events.iter().any(|e| e.warning && e.reason == "OnPremGated"));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"], "the cloud rollout is not held up");
    // Closed by the controller: Degraded clears.
    apply(&mut view, &p);
    assert!(!gated_in(&view, "onprem-2"));
    let p = step(&view, at(1));
    assert_eq!(cond(&p, condition::DEGRADED), ("False".to_owned(), "AsExpected".to_owned()));
    // Even when Manual, an on-prem gate is closed.
    let mut view = five_cloud_bgp();
    spec_mut(&mut view).mode = Mode::Manual;
    set_label(&mut view, "onprem-1", GATE_LABEL, Some(GATE_OPEN));
    let p = step(&view, t0());
    assert!(!row(&p, "onprem-1").gate);
    assert_eq!(cond(&p, condition::DEGRADED).1, "OnPremGated");
}

#[test]
fn a_removed_gate_requirement_is_restored_and_reported() {
    let mut view = five_cloud_bgp();
    let p = step(&view, t0());
    apply(&mut view, &p);
    // An add-on manager reverts Terway's DaemonSet.
    set_affinity(&mut view, TERWAY_NS, TERWAY, None);
    let p = step(&view, at(1));
    assert!(p.terway_gate.as_ref().is_some_and(|g| affinity::requires_gate(Some(&g.affinity))));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"]);
    assert_eq!(cond(&p, condition::DEGRADED), ("True".to_owned(), "GateRemoved".to_owned()));
    assert_eq!(cond(&p, condition::PROGRESSING), ("True".to_owned(), "EnforcingGate".to_owned()));
}

/// Narrowing Terway to gated nodes is always safe, and without it Terway runs
/// wherever its own selector lets it: every cloud node at once. So in Auto
/// mode the gate requirement is enforced even while new waves are held back.
#[test]
fn the_gate_requirement_is_enforced_while_waves_are_held_back() {
    type Hold = fn(&mut ClusterView);
    let holds: [(&str, Hold); 2] =
        [("preflight fails", |v| v.addon_secret = None), ("paused", |v| spec_mut(v).paused = true)];
    for (what, hold) in holds {
        let mut view = example("bgp-pass");
        hold(&mut view);
        let p = step(&view, t0());
        assert!(gated_rows(&p).is_empty(), "{what}");
        assert!(
            p.terway_gate.is_some(),
            "{what}: kube-system/terway-eniip lacks the gate requirement, so Terway runs on every cloud node, \
             yet the plan does not add it"
        );
    }
}

#[test]
fn no_gate_without_terway_or_without_the_need_for_it() {
    let mut view = five_cloud_bgp();
    view.daemon_sets.retain(|d| d.metadata.name.as_deref() != Some(TERWAY));
    let p = step(&view, t0());
    assert!(p.passed);
    assert!(gated_rows(&p).is_empty());
    assert!(p.terway_gate.is_none());
    let progressing = condition(&p.status, condition::PROGRESSING);
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("False", "TerwayNotInstalled"));
    assert!(progressing.message.contains("kube-system/terway-eniip"));

    let p = step(&example("overlay-pass"), t0());
    assert!(gated_rows(&p).is_empty());
    assert!(p.terway_gate.is_none());
    assert_eq!(p.terway_required, Some(false));
    assert_eq!(cond(&p, condition::PROGRESSING), ("False".to_owned(), "TerwayNotRequired".to_owned()));
    assert_eq!(cond(&p, condition::AVAILABLE), ("True".to_owned(), "TerwayNotRequired".to_owned()));

    let mut view = five_cloud_bgp();
    set_scenario(&mut view, "onprem-3", Scenario::Overlay);
    let p = step(&view, t0());
    assert_eq!(p.scenario, Scenario::Unknown);
    assert!(gated_rows(&p).is_empty());
}

#[test]
fn conditions_follow_metav1_semantics_and_events_follow_changes() {
    let mut view = five_cloud_bgp();
    let p = step(&view, t0());
    assert_eq!(p.status.observed_generation, Some(1));
    assert!(p.status.conditions.iter().all(|c| c.last_transition_time.0 == t0()));
    assert_eq!(p.events.len(), 5, "a first status: one event per condition");
    let warnings: Vec<&str> = p.events.iter().filter(|e| e.warning).map(|e| e.reason.as_str()).collect();
    assert_eq!(warnings, ["CloudNodesPending"]);
    apply(&mut view, &p);

    // Unchanged: same transition times, no event.
    let again = step(&view, at(1));
    assert!(again.events.is_empty());
    assert_eq!(again.status.conditions, p.status.conditions);

    // A new generation: observedGeneration follows, nothing transitions.
    rollout_mut(&mut view).metadata.generation = Some(2);
    let p2 = step(&view, at(2));
    assert!(p2.events.is_empty());
    assert!(p2
        .status
        .conditions
        .iter()
        .all(|c| c.observed_generation == Some(2) && c.last_transition_time.0 == t0()));
    apply(&mut view, &p2);

    // The preflight breaks: PreflightPassed and Progressing transition, nothing else.
    view.addon_secret = None;
    let p3 = step(&view, at(3));
    let moved: Vec<&str> = p3
        .status
        .conditions
        .iter()
        .filter(|c| c.last_transition_time.0 == at(3))
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(moved, ["PreflightPassed", "Progressing"]);
    let mut keys = event_keys(&p3.events);
    keys.sort();
    assert_eq!(keys, ["PreflightPassed=False ChecksFailed", "Progressing=False PreflightFailed"]);
    apply(&mut view, &p3);

    // A reason change without a status change: an event, the transition time stays.
    view.addon_secret = example("bgp-pass").addon_secret;
    spec_mut(&mut view).paused = true;
    let p4 = step(&view, at(4));
    let progressing = condition(&p4.status, condition::PROGRESSING);
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("False", "Paused"));
    assert_eq!(progressing.last_transition_time.0, at(3));
    assert!(event_keys(&p4.events).contains(&"Progressing=False Paused".to_owned()));
    assert!(event_keys(&p4.events).contains(&"PreflightPassed=True AllChecksPass".to_owned()));
}

#[test]
fn no_rollout_object_means_the_defaults() {
    let mut view = example("bgp-pass");
    view.rollout = None;
    let p = plan(&view, t0());
    assert!(p.passed);
    assert_eq!(p.status.observed_generation, None);
    assert!(p.status.conditions.iter().all(|c| c.observed_generation.is_none()));
    assert!(p.terway_gate.is_none(), "the default mode is Manual");
}

#[test]
fn host_network_rolls_out_in_waves_too() {
    let mut view = example("host-network-pass");
    let p = step(&view, t0());
    assert!(p.terway_gate.is_some());
    apply(&mut view, &p);
    require_gate(&mut view);
    let p = step(&view, at(1));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"]);
    assert_eq!(p.status.current_wave, 1);
    apply(&mut view, &p);
    set_all_ready(&mut view, &["cloud-1", "cloud-2"]);
    let p = step(&view, at(2));
    assert_eq!(cond(&p, condition::PROGRESSING), ("False".to_owned(), "Complete".to_owned()));
    assert_eq!(cond(&p, condition::AVAILABLE), ("True".to_owned(), "AllCloudNodesReady".to_owned()));
    // The failing example opens nothing: its preflight fails.
    let mut view = example("host-network-fail");
    require_gate(&mut view);
    let p = step(&view, t0());
    assert!(gated_rows(&p).is_empty());
    assert_eq!(cond(&p, condition::PROGRESSING).1, "PreflightFailed");
}

// ---- spec.crossSite.gateWaves ----

/// `node`'s agent probes onprem-1's responder pod (assigned, with this result).
fn pod_probe(view: &mut ClusterView, node: &str, reachable: bool) {
    use terway_hybrid_api::cross_site::{ProbePath, ProbeResult, ProbeTarget};
    let address = "10.244.1.10:9799".to_owned();
    report_mut(view, node).spec.probe_targets =
        vec![ProbeTarget { node: "onprem-1".into(), address: address.clone(), path: ProbePath::Pod }];
    report_status_mut(view, node).probes = vec![ProbeResult {
        node: "onprem-1".into(),
        address,
        path: ProbePath::Pod,
        reachable,
        rtt_ms: reachable.then_some(3.5),
        path_mtu: None,
        route: None,
        note: (!reachable).then(|| "no answer within 5000 ms".into()),
        probed: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t0()),
    }];
}

/// Five cloud nodes, Auto, gateWaves on, wave 1 (cloud-1, cloud-2) opened at
/// t0 and applied, and Terway Ready on both.
fn gated_wave_one_ready() -> ClusterView {
    let mut view = five_cloud_bgp();
    spec_mut(&mut view).cross_site.gate_waves = true;
    let p = step(&view, t0());
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"]);
    apply(&mut view, &p);
    set_all_ready(&mut view, &["cloud-1", "cloud-2"]);
    view
}

#[test]
fn gate_waves_keep_a_ready_wave_open_until_its_pods_reach_on_prem() {
    let mut view = gated_wave_one_ready();
    // Terway is Ready, no pod probe result yet: the wave is not done.
    let p = step(&view, at(1));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"], "wave 2 opened before wave 1's pods were probed");
    assert_eq!(p.status.current_wave, 1);
    let progressing = condition(&p.status, condition::PROGRESSING);
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("True", "WaveInProgress"));
    assert!(
        progressing.message.contains("no pod probe result yet from cloud-1, cloud-2"),
        "{}",
        progressing.message
    );
    assert_eq!(cond(&p, condition::DEGRADED), ("False".to_owned(), "AsExpected".to_owned()));
    apply(&mut view, &p);
    // cloud-1 reaches, cloud-2 does not: still held (and CrossSiteConnectivity fails).
    pod_probe(&mut view, "cloud-1", true);
    pod_probe(&mut view, "cloud-2", false);
    let p = step(&view, at(2));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"]);
    assert_eq!(check(&p, CrossSiteConnectivity).status, Fail);
    assert_eq!(cond(&p, condition::DEGRADED), ("False".to_owned(), "AsExpected".to_owned()));
    apply(&mut view, &p);
    // Past readinessTimeout: halted like a wave that never got Ready, naming the pair.
    let p = step(&view, at(11));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"]);
    let degraded = condition(&p.status, condition::DEGRADED);
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "CrossSiteUnreachable"));
    assert!(degraded.message.contains("cloud-2 → onprem-1 (10.244.1.10:9799, pod)"), "{}", degraded.message);
    assert!(!degraded.message.contains("cloud-1 →"), "{}", degraded.message);
    assert!(p.events.iter().any(|e| e.warning && e.reason == "CrossSiteUnreachable"));
    apply(&mut view, &p);
    // cloud-2's pods reach the on-prem pods: the wave is done, wave 2 opens.
    pod_probe(&mut view, "cloud-2", true);
    let p = step(&view, at(12));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2", "cloud-3", "cloud-4"]);
    assert_eq!(p.status.current_wave, 2);
    assert_eq!(cond(&p, condition::DEGRADED), ("False".to_owned(), "AsExpected".to_owned()));
}

#[test]
fn gate_waves_halt_a_wave_whose_pods_never_report() {
    let mut view = gated_wave_one_ready();
    let p = step(&view, at(11));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"]);
    assert_eq!(cond(&p, condition::DEGRADED), ("True".to_owned(), "CrossSiteUnreachable".to_owned()));
    assert_eq!(cond(&p, condition::PROGRESSING), ("False".to_owned(), "CrossSiteUnreachable".to_owned()));
    let degraded = condition(&p.status, condition::DEGRADED);
    assert!(
        degraded.message.contains("no pod probe result yet from cloud-1, cloud-2"),
        "{}",
        degraded.message
    );
    // A Terway that is not Ready still says WaveFailed: it comes first.
    set_terway_ready(&mut view, "cloud-2", false);
    let p = step(&view, at(11));
    assert_eq!(cond(&p, condition::DEGRADED), ("True".to_owned(), "WaveFailed".to_owned()));
}

#[test]
fn without_gate_waves_pod_probes_do_not_hold_a_wave() {
    let mut view = gated_wave_one_ready();
    spec_mut(&mut view).cross_site.gate_waves = false;
    // CrossSiteConnectivity would stop every wave: ignored here to see the gate alone.
    spec_mut(&mut view).ignore_checks = vec!["CrossSiteConnectivity".to_owned()];
    pod_probe(&mut view, "cloud-2", false);
    let p = step(&view, at(1));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2", "cloud-3", "cloud-4"]);
    assert_eq!(p.status.current_wave, 2);
    // The same with gateWaves: held.
    spec_mut(&mut view).cross_site.gate_waves = true;
    let p = step(&view, at(1));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"]);
    assert_eq!(p.status.current_wave, 1);
}

/// The status lost the wave (its write failed): gated nodes whose pods do
/// not reach the on-prem pods are adopted as the wave, as gated nodes whose
/// Terway is not Ready are, so no new wave opens past them.
#[test]
fn gate_waves_adopt_gated_nodes_whose_pods_fail() {
    let mut view = gated_wave_one_ready();
    spec_mut(&mut view).ignore_checks = vec!["CrossSiteConnectivity".to_owned()];
    pod_probe(&mut view, "cloud-1", true);
    pod_probe(&mut view, "cloud-2", false);
    rollout_mut(&mut view).status.as_mut().expect("a status").wave = None;
    let p = step(&view, at(1));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2"]);
    assert_eq!(p.status.wave.as_ref().map(|w| w.nodes.clone()), Some(vec!["cloud-2".to_owned()]));
    // Nodes gated without a pod result (before gateWaves was set) are not adopted.
    pod_probe(&mut view, "cloud-2", true);
    report_status_mut(&mut view, "cloud-1").probes.clear();
    let p = step(&view, at(2));
    assert_eq!(gated_rows(&p), ["cloud-1", "cloud-2", "cloud-3", "cloud-4"]);
}

/// Adds a copy of node `from` (its Node, report and the pods on it) named `to`.
fn clone_node(view: &mut ClusterView, from: &str, to: &str) {
    let rename = |meta: &mut ObjectMeta| {
        meta.name = Some(to.to_owned());
        meta.uid = Some(format!("uid-{to}"));
        if let Some(labels) = meta.labels.as_mut() {
            for v in labels.values_mut() {
                if v == from {
                    *v = to.to_owned();
                }
            }
        }
    };
    let mut node =
        Node::clone(view.nodes.iter().find(|n| n.metadata.name.as_deref() == Some(from)).expect("node"));
    rename(&mut node.metadata);
    view.nodes.push(node.into());
    if let Some(report) = view.reports.iter().find(|r| r.metadata.name.as_deref() == Some(from)) {
        let mut report = NodeNetworkReport::clone(report);
        rename(&mut report.metadata);
        report.spec.node_name = to.to_owned();
        for o in report.metadata.owner_references.iter_mut().flatten() {
            o.name = to.to_owned();
            o.uid = format!("uid-{to}");
        }
        view.reports.push(report.into());
    }
    let pods: Vec<SlimPod> = view
        .pods
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(from))
        .map(|p| SlimPod::clone(p))
        .collect();
    for mut pod in pods {
        pod.metadata.name = pod.metadata.name.map(|n| n.replace(from, to));
        pod.spec.as_mut().expect("a pod spec").node_name = Some(to.to_owned());
        view.pods.push(pod.into());
    }
}
