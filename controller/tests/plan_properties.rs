//! Properties of `plan` over generated ClusterViews: a few to twelve nodes of
//! random roles, reports (missing, of a previous node of the same name,
//! ready or not, agreeing on the scenario or not), agent and Terway pod
//! readiness, gate labels (on cloud and on-prem nodes), a Terway DaemonSet
//! that is absent, lacks the gate requirement or has it, and a random
//! TerwayRollout (mode, maxUnavailable as a count, a percentage or junk,
//! paused, readinessTimeout, ignoreChecks, a previous status with a wave and
//! its start time).
//!
//! One plan (10 000 cases):
//! - (a) no on-prem row has the gate desired (nor the gate label in its labels);
//! - (b) with U_in = the cloud nodes carrying the gate label whose Terway pod is
//!   not Ready (or absent) in the input, R = the nodes of the previous status's
//!   wave the plan re-opens (their label is absent: a lost label write) whose
//!   Terway is not Ready, U_out = the cloud rows with the gate desired whose
//!   Terway pod is not Ready (or absent), and M =
//!   `plan::max_unavailable(spec.maxUnavailable, cloud nodes)`:
//!   U_out <= max(M, U_in + R) (R = 0 unless the plan re-asserts a recorded
//!   wave); the other gates the plan adds on nodes where Terway is not Ready
//!   number at most M - U_in (saturating), and so does a whole new wave: the
//!   plan never adds gates beyond the budget;
//! - (c) the plan is deterministic (same view and time: equal serialized plan,
//!   status and events), and does not depend on the order of the view's lists;
//! - (d) a gate open on a cloud node in the input is desired in the output;
//! - (e) a new gate opens only when mode is Auto, the scenario requires Terway,
//!   the preflight passed, Terway's DaemonSet exists and requires the gate, the
//!   rollout is not paused, and no wave is in progress or failed; it opens only on
//!   cloud nodes whose own checks pass, as a new wave (current_wave + 1, started
//!   now). Two exceptions: with the gate patch (Auto mode only; Terway lacks
//!   the requirement), gates may open on cloud nodes where Terway already runs
//!   Ready (nothing is admitted anew); and, only when the rollout may go on
//!   (Auto, Terway required and installed, preflight passed, not paused), the
//!   nodes of the recorded wave may get their gate back when its label is
//!   missing (a lost label write);
//! - (f) conversely, when all of (e) holds, no gated cloud node waits for its
//!   Terway pod and some cloud node is eligible, the next wave opens on the
//!   first M eligible nodes in name order;
//! - (g) conditions follow metav1.Condition semantics (lastTransitionTime moves
//!   only with the status, observedGeneration is the rollout's generation) and
//!   there is exactly one event per condition whose status or reason changed.
//!
//! - (h) `spec.crossSite.gateWaves` (the world sets it, and gives cloud nodes
//!   a pod-path probe of an on-prem node that reaches, fails or has no result
//!   yet): a wave is not done, so no next one opens, while a node of it whose
//!   Terway is Ready has no reaching pod probe ((e) and (f) read the wave
//!   state with that rule), and no wave advances past a failing pod probe;
//!   with gateWaves off, probes change no rollout decision.
//!
//! Simulations (fewer cases): plan, apply the labels, status and gate patch
//! as the controller does, let Terway pods on gated nodes become Ready or not,
//! advance the clock, repeat; (a) to (h) at every step; a failed
//! wave keeps the rollout halted while its nodes stay not Ready; and with
//! gateWaves, gated nodes not yet healthy (Terway Ready and pods reaching the
//! on-prem pods) never number more than maxUnavailable.

mod common;
mod plan_story;
mod pod_edits;

use common::*;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use plan_story::*;
use pod_edits::*;
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use terway_hybrid_api::names::AGENT_DAEMONSET as AGENT;
use terway_hybrid_api::rollout::{condition, Mode, Wave, GATE_LABEL, GATE_OPEN};
use terway_hybrid_api::vocabulary::CLOUD_LABEL;
use terway_hybrid_api::{
    CheckName, CheckResult, Confidence, NodeNetworkReport, NodeNetworkReportSpec, NodeNetworkReportStatus,
    Plugin, Role, Scenario, Severity, TerwayRollout, TerwayRolloutSpec, TerwayRolloutStatus,
};
use terway_hybrid_controller::pure::affinity;
use terway_hybrid_controller::pure::plan::{max_unavailable, parse_duration, plan, Plan};
use terway_hybrid_controller::pure::view::ClusterView;

// ---- the generated world ----

#[derive(Debug, Clone)]
enum ReportKind {
    Missing,
    /// Written for a previous node of the same name (another uid).
    Stale,
    /// `None`: the cluster's scenario.
    Present {
        scenario: Option<Scenario>,
        ready: bool,
    },
}

#[derive(Debug, Clone)]
struct NodeGen {
    cloud: bool,
    report: ReportKind,
    agent_ready: bool,
    gated: bool,
    /// Terway's pod on the node: absent, or Ready or not.
    terway: Option<bool>,
    /// A member of the previous status's wave.
    in_wave: bool,
    /// A cloud node's pod-path probe of an on-prem node: reaches, fails, or
    /// no result yet (the target is assigned either way).
    pod_probe: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TerwayKind {
    Absent,
    WithoutGate,
    RequiresGate,
}

#[derive(Debug, Clone)]
struct Previous {
    current_wave: u32,
    wave: bool,
    /// How long before `now` the wave started.
    started_secs_ago: i64,
    in_wave_progress: bool,
}

#[derive(Debug, Clone)]
struct World {
    nodes: Vec<NodeGen>,
    scenario: Scenario,
    /// Every node reports, ready and agreeing; agents Ready.
    healthy: bool,
    auto: bool,
    max_unavailable: IntOrString,
    paused: bool,
    readiness_timeout: &'static str,
    ignore: Vec<String>,
    terway: TerwayKind,
    secret: bool,
    previous: Option<Previous>,
    generation: i64,
    gate_waves: bool,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    prop_oneof![
        5 => Just(Scenario::Bgp),
        3 => Just(Scenario::HostNetwork),
        1 => Just(Scenario::Overlay),
        1 => Just(Scenario::Unknown),
    ]
}

fn report_kind() -> impl Strategy<Value = ReportKind> {
    prop_oneof![
        1 => Just(ReportKind::Missing),
        1 => Just(ReportKind::Stale),
        18 => (prop::option::weighted(0.1, scenario()), prop::bool::weighted(0.9))
            .prop_map(|(scenario, ready)| ReportKind::Present { scenario, ready }),
    ]
}

fn node_gen() -> impl Strategy<Value = NodeGen> {
    (
        any::<bool>(),
        report_kind(),
        prop::bool::weighted(0.95),
        prop::bool::weighted(0.3),
        prop_oneof![1 => Just(None), 2 => Just(Some(false)), 2 => Just(Some(true))],
        prop::bool::weighted(0.3),
        prop_oneof![1 => Just(None), 1 => Just(Some(true)), 1 => Just(Some(false))],
    )
        .prop_map(|(cloud, report, agent_ready, gated, terway, in_wave, pod_probe)| NodeGen {
            cloud,
            report,
            agent_ready,
            gated,
            terway,
            in_wave,
            pod_probe,
        })
}

fn max_unavailable_gen() -> impl Strategy<Value = IntOrString> {
    prop_oneof![
        6 => (1..=5i32).prop_map(IntOrString::Int),
        4 => (1..=100u32).prop_map(|p| IntOrString::String(format!("{p}%"))),
        // Values out of range stop the rollout (InvalidSpec): plan_rollout.rs.
    ]
}

fn previous_gen() -> impl Strategy<Value = Option<Previous>> {
    prop::option::weighted(
        0.6,
        (0..4u32, prop::bool::weighted(0.7), 0..(30 * 60i64), any::<bool>()).prop_map(
            |(current_wave, wave, started_secs_ago, in_wave_progress)| Previous {
                current_wave,
                wave,
                started_secs_ago,
                in_wave_progress,
            },
        ),
    )
}

fn world(nodes: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = World> {
    (
        prop::collection::vec(node_gen(), nodes),
        scenario(),
        prop::bool::weighted(0.4),
        prop::bool::weighted(0.85),
        max_unavailable_gen(),
        prop::bool::weighted(0.15),
        prop::sample::select(vec!["10m", "90s", "1h30m", "5m"]),
        prop_oneof![
            6 => Just(vec![]),
            3 => Just(vec!["all".to_owned()]),
            1 => Just(vec!["AgentCoverage".to_owned(), "CloudNodePreflight".to_owned()]),
        ],
        prop_oneof![1 => Just(TerwayKind::Absent), 2 => Just(TerwayKind::WithoutGate), 6 => Just(TerwayKind::RequiresGate)],
        prop::bool::weighted(0.9),
        previous_gen(),
        (1..4i64, prop::bool::weighted(0.5)),
    )
        .prop_map(
            |(
                nodes,
                scenario,
                healthy,
                auto,
                max_unavailable,
                paused,
                readiness_timeout,
                ignore,
                terway,
                secret,
                previous,
                (generation, gate_waves),
            )| World {
                nodes,
                scenario,
                healthy,
                auto,
                max_unavailable,
                paused,
                readiness_timeout,
                ignore,
                terway,
                secret,
                previous,
                generation,
                gate_waves,
            },
        )
}

fn name(i: usize) -> String {
    format!("node-{i:02}")
}

fn now() -> Timestamp {
    at(60)
}

/// The configuration objects (eni-config, Secret, Service) and DaemonSets of
/// bgp-pass, loaded once.
fn template() -> &'static ClusterView {
    static T: std::sync::OnceLock<ClusterView> = std::sync::OnceLock::new();
    T.get_or_init(|| example("bgp-pass"))
}

fn template_ds(name: &str) -> DaemonSet {
    template()
        .daemon_sets
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some(name))
        .expect("a DaemonSet")
        .clone()
}

fn build(w: &World) -> ClusterView {
    let t = template();
    let mut view = ClusterView {
        eni_config: t.eni_config.clone(),
        addon_secret: if w.secret { t.addon_secret.clone() } else { None },
        kubernetes_service: t.kubernetes_service.clone(),
        ..ClusterView::default()
    };
    view.daemon_sets.push(template_ds(AGENT));
    view.daemon_sets.push(template_ds("calico-node"));
    match w.terway {
        TerwayKind::Absent => {}
        TerwayKind::WithoutGate => view.daemon_sets.push(template_ds(TERWAY)),
        TerwayKind::RequiresGate => {
            view.daemon_sets.push(affinity::require_gate_daemon_set(&template_ds(TERWAY)))
        }
    }
    for (i, n) in w.nodes.iter().enumerate() {
        let name = name(i);
        let ip = if n.cloud { format!("172.16.0.{}", i + 2) } else { format!("10.10.0.{}", i + 2) };
        let mut node = node(&name, n.cloud, &ip, "5.10.134-16.al8.x86_64");
        if n.gated {
            node.metadata
                .labels
                .as_mut()
                .expect("labels")
                .insert(GATE_LABEL.to_owned(), GATE_OPEN.to_owned());
        }
        view.nodes.push(node.into());
        let role = if n.cloud { Role::Cloud } else { Role::OnPrem };
        let kind =
            if w.healthy { ReportKind::Present { scenario: None, ready: true } } else { n.report.clone() };
        match kind {
            ReportKind::Missing => {}
            ReportKind::Stale => {
                view.reports.push(report(&name, &format!("uid-old-{name}"), role, w.scenario, true).into())
            }
            ReportKind::Present { scenario, ready } => view.reports.push(
                report(
                    &name,
                    &format!("uid-{name}"),
                    role,
                    if n.cloud { Scenario::Unknown } else { scenario.unwrap_or(w.scenario) },
                    ready,
                )
                .into(),
            ),
        }
        view.pods.push(pod(AGENT_NS, AGENT, &name, n.agent_ready || w.healthy).into());
        if let Some(ready) = n.terway {
            view.pods.push(pod(TERWAY_NS, TERWAY, &name, ready).into());
        }
    }
    let mut rollout = TerwayRollout::new(
        "default",
        TerwayRolloutSpec {
            mode: if w.auto { Mode::Auto } else { Mode::Manual },
            max_unavailable: w.max_unavailable.clone(),
            paused: w.paused,
            ignore_checks: w.ignore.clone(),
            readiness_timeout: w.readiness_timeout.to_owned(),
            cross_site: terway_hybrid_api::cross_site::CrossSite {
                gate_waves: w.gate_waves,
                ..Default::default()
            },
            ..TerwayRolloutSpec::default()
        },
    );
    rollout.metadata.generation = Some(w.generation);
    if let Some(p) = &w.previous {
        let wave = p.wave.then(|| Wave {
            nodes: w.nodes.iter().enumerate().filter(|(_, n)| n.in_wave).map(|(i, _)| name(i)).collect(),
            started: Time(now() - SignedDuration::from_secs(p.started_secs_ago)),
        });
        let mut conditions = vec![];
        if p.in_wave_progress {
            conditions.push(Condition {
                type_: condition::PROGRESSING.to_owned(),
                status: "True".to_owned(),
                reason: "WaveInProgress".to_owned(),
                message: "wave".to_owned(),
                last_transition_time: Time(t0()),
                observed_generation: Some(1),
            });
        }
        rollout.status = Some(TerwayRolloutStatus {
            current_wave: p.current_wave.max(u32::from(wave.is_some())),
            wave,
            conditions,
            ..TerwayRolloutStatus::default()
        });
    }
    view.rollout = Some(rollout);
    add_pod_probes(&mut view, w);
    view
}

/// The address of the on-prem responder the cloud nodes probe.
const RESPONDER: &str = "10.244.0.10:9799";

/// Each cloud node with a pod probe in the world probes the first on-prem
/// node's responder: the target assigned, the result as generated.
fn add_pod_probes(view: &mut ClusterView, w: &World) {
    use terway_hybrid_api::cross_site::{ProbePath, ProbeResult, ProbeTarget};
    let Some(peer) = w.nodes.iter().position(|n| !n.cloud).map(name) else { return };
    for (i, n) in w.nodes.iter().enumerate() {
        let (true, Some(reachable)) = (n.cloud, n.pod_probe) else { continue };
        let me = name(i);
        let Some(r) = view
            .reports
            .iter_mut()
            .find(|r| r.metadata.name.as_deref() == Some(me.as_str()))
            .map(Arc::make_mut)
        else {
            continue;
        };
        r.spec.probe_targets =
            vec![ProbeTarget { node: peer.clone(), address: RESPONDER.to_owned(), path: ProbePath::Pod }];
        if let Some(s) = r.status.as_mut() {
            s.probes = vec![ProbeResult {
                node: peer.clone(),
                address: RESPONDER.to_owned(),
                path: ProbePath::Pod,
                reachable,
                rtt_ms: None,
                path_mtu: None,
                route: None,
                note: None,
                probed: Time(t0()),
            }];
        }
    }
}

/// A node's pod probes, from its current report: Some(true) when it has
/// results and all reach, Some(false) when one fails, None without any.
fn pod_state(view: &ClusterView, node: &str) -> Option<bool> {
    let uid = view.nodes.iter().find(|n| n.metadata.name.as_deref() == Some(node))?.metadata.uid.clone();
    let report = view.reports.iter().find(|r| r.metadata.name.as_deref() == Some(node))?;
    let owner = report.metadata.owner_references.as_ref().and_then(|o| o.first()).map(|o| o.uid.clone());
    if owner.is_some() && owner != uid {
        return None;
    }
    let probes = &report.status.as_ref()?.probes;
    let pod: Vec<bool> = probes
        .iter()
        .filter(|p| p.path == terway_hybrid_api::cross_site::ProbePath::Pod)
        .filter(|p| report.spec.probe_targets.iter().any(|t| t.node == p.node && t.address == p.address))
        .filter(|p| view.nodes.iter().any(|n| n.metadata.name.as_deref() == Some(p.node.as_str())))
        .map(|p| p.reachable)
        .collect();
    (!pod.is_empty()).then(|| pod.iter().all(|r| *r))
}

/// gateWaves holds the wave back: a node of the recorded wave whose Terway
/// is Ready has no reaching pod probe (or, without a recorded wave, a gated
/// cloud node whose Terway is Ready has a failing one: adopted as the wave).
fn gate_held(view: &ClusterView) -> bool {
    if !spec(view).cross_site.gate_waves {
        return false;
    }
    let wave = view.rollout.as_ref().and_then(|r| r.status.as_ref()).and_then(|s| s.wave.as_ref());
    match wave {
        Some(wave) => wave
            .nodes
            .iter()
            .any(|n| is_cloud(view, n) && terway_ready_in(view, n) && pod_state(view, n) != Some(true)),
        None => cloud_names(view)
            .iter()
            .any(|n| gated_in(view, n) && terway_ready_in(view, n) && pod_state(view, n) == Some(false)),
    }
}

/// The nodes of the wave (recorded, or adopted) that gateWaves finds failing.
fn failing_in_wave(view: &ClusterView) -> Vec<String> {
    if !spec(view).cross_site.gate_waves {
        return vec![];
    }
    let wave = view.rollout.as_ref().and_then(|r| r.status.as_ref()).and_then(|s| s.wave.as_ref());
    let candidates: Vec<String> = match wave {
        Some(wave) => wave.nodes.clone(),
        None => cloud_names(view).into_iter().filter(|n| gated_in(view, n)).collect(),
    };
    candidates
        .into_iter()
        .filter(|n| is_cloud(view, n) && terway_ready_in(view, n) && pod_state(view, n) == Some(false))
        .collect()
}

// ---- what the input says ----

fn spec(view: &ClusterView) -> TerwayRolloutSpec {
    view.rollout.as_ref().map(|r| r.spec.clone()).unwrap_or_default()
}

fn terway_ds(view: &ClusterView) -> Option<&DaemonSet> {
    view.daemon_sets.iter().find(|d| {
        d.metadata.namespace.as_deref() == Some(TERWAY_NS) && d.metadata.name.as_deref() == Some(TERWAY)
    })
}

/// Terway's pod on the node is Ready (absent: not).
fn terway_ready_in(view: &ClusterView, node: &str) -> bool {
    terway_ds(view).is_some()
        && view.pods.iter().any(|p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
                && p.metadata.owner_references.iter().flatten().any(|o| o.name == TERWAY)
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
}

fn is_cloud(view: &ClusterView, node: &str) -> bool {
    view.nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(node))
        .and_then(|n| n.metadata.labels.as_ref())
        .and_then(|l| l.get(CLOUD_LABEL))
        .is_some_and(|v| v == "true")
}

fn cloud_names(view: &ClusterView) -> Vec<String> {
    view.nodes.iter().filter_map(|n| n.metadata.name.clone()).filter(|n| is_cloud(view, n)).collect()
}

/// The previous wave: `Some(true)` failed (a member still not Ready after the
/// readiness timeout), `Some(false)` in progress, `None` none or done.
fn previous_wave_state(view: &ClusterView, now: Timestamp) -> Option<bool> {
    let status = view.rollout.as_ref()?.status.as_ref();
    let Some(wave) = status.and_then(|s| s.wave.as_ref()) else {
        // (h) gated nodes whose pods fail are adopted as a wave, started now.
        return gate_held(view).then_some(false);
    };
    let unready = wave.nodes.iter().any(|n| is_cloud(view, n) && !terway_ready_in(view, n));
    if !unready && !gate_held(view) {
        return None;
    }
    let timeout = parse_duration(&spec(view).readiness_timeout).unwrap_or(SignedDuration::from_mins(10));
    Some(now.duration_since(wave.started.0) > timeout)
}

struct Budget {
    /// `plan::max_unavailable` of the spec and the cloud node count.
    max: usize,
    /// Cloud nodes carrying the gate label whose Terway is not Ready (input).
    unready_gated_in: usize,
    /// Cloud rows with the gate desired whose Terway is not Ready (output).
    unready_gated_out: usize,
    /// Cloud nodes whose gate the plan opens (desired, label absent)...
    new: Vec<String>,
    /// ... that belong to the previous status's wave and wait for Terway: a
    /// recorded wave whose label writes were lost, re-asserted...
    reasserted: Vec<String>,
    /// ... and the others: a new wave (or nodes gated with the gate patch).
    fresh: Vec<String>,
}

impl Budget {
    fn room(&self) -> usize {
        self.max.saturating_sub(self.unready_gated_in)
    }
}

fn budget(view: &ClusterView, p: &Plan) -> Budget {
    let cloud = cloud_names(view);
    let max = max_unavailable(&spec(view).max_unavailable, cloud.len());
    let unready_gated_in = cloud.iter().filter(|n| gated_in(view, n) && !terway_ready_in(view, n)).count();
    let unready_gated_out =
        p.nodes.iter().filter(|r| r.role == Role::Cloud && r.gate && r.terway_ready != Some(true)).count();
    let new: Vec<String> =
        p.nodes.iter().filter(|r| r.gate && !gated_in(view, &r.name)).map(|r| r.name.clone()).collect();
    let recorded: Vec<String> = view
        .rollout
        .as_ref()
        .and_then(|r| r.status.as_ref())
        .and_then(|s| s.wave.as_ref())
        .map(|w| w.nodes.clone())
        .unwrap_or_default();
    // With gateWaves a recorded wave also keeps (re-asserts) the gate of its
    // nodes whose Terway is Ready but whose pods do not reach yet (with the
    // gate patch, gates on nodes where Terway is Ready are the patch's).
    let gate_waves = p.terway_gate.is_none() && gate_held(view);
    let (reasserted, fresh) =
        new.iter().cloned().partition(|n| recorded.contains(n) && (gate_waves || !terway_ready_in(view, n)));
    Budget { max, unready_gated_in, unready_gated_out, new, reasserted, fresh }
}

/// (a), (b) and (d).
fn assert_safe(view: &ClusterView, p: &Plan) -> Result<(), TestCaseError> {
    for r in &p.nodes {
        prop_assert_eq!(r.role == Role::Cloud, is_cloud(view, &r.name), "{}: role", r.name);
        prop_assert_eq!(
            r.gate,
            r.labels.iter().any(|(k, v)| k == GATE_LABEL && v == GATE_OPEN),
            "{}",
            r.name
        );
        // (a)
        if r.role == Role::OnPrem {
            prop_assert!(!r.gate, "(a) the gate is desired on on-prem node {}", r.name);
        }
        // (d)
        if r.role == Role::Cloud && gated_in(view, &r.name) {
            prop_assert!(r.gate, "(d) the open gate of cloud node {} is closed", r.name);
        }
    }
    // (b)
    let b = budget(view, p);
    let unready = |nodes: &[String]| nodes.iter().filter(|n| !terway_ready_in(view, n)).count();
    let before = b.unready_gated_in + unready(&b.reasserted);
    prop_assert!(
        b.unready_gated_out <= b.max.max(before),
        "(b) {} gated cloud nodes not Ready, more than max(maxUnavailable {}, {} gated or in the recorded wave \
         before); new gates {:?}",
        b.unready_gated_out,
        b.max,
        before,
        b.new
    );
    prop_assert!(
        unready(&b.fresh) <= b.room(),
        "(b) new gates {:?} on nodes without a Ready Terway exceed the budget: maxUnavailable {} - {} gated \
         not Ready",
        b.fresh,
        b.max,
        b.unready_gated_in
    );
    if p.terway_gate.is_none() {
        prop_assert!(
            b.fresh.len() <= b.room(),
            "(b) the wave {:?} exceeds the budget: maxUnavailable {} - {} gated not Ready",
            b.fresh,
            b.max,
            b.unready_gated_in
        );
    }
    Ok(())
}

/// (e) and (f).
fn assert_gates_open_only_when_allowed(
    view: &ClusterView,
    p: &Plan,
    now: Timestamp,
) -> Result<(), TestCaseError> {
    let s = spec(view);
    let b = budget(view, p);
    let terway_gated =
        terway_ds(view).is_some_and(|d| affinity::requires_gate(affinity::daemon_set_affinity(d)));
    let wave = previous_wave_state(view, now);
    // The rollout may go on (whatever the waves say).
    let may_proceed = s.mode == Mode::Auto
        && p.scenario.terway_required() == Some(true)
        && p.passed
        && terway_ds(view).is_some()
        && !s.paused;
    let may_open = may_proceed && terway_gated && wave.is_none();
    let previous = view.rollout.as_ref().and_then(|r| r.status.clone()).unwrap_or_default();
    let why = format!(
        "mode {:?}, scenario {}, passed {}, Terway installed {}, requires the gate {}, paused {}, previous wave {:?}",
        s.mode,
        p.scenario,
        p.passed,
        terway_ds(view).is_some(),
        terway_gated,
        s.paused,
        wave
    );
    if !b.reasserted.is_empty() {
        prop_assert!(may_proceed, "(e) gates {:?} of the recorded wave re-opened; {}", b.reasserted, why);
    }
    if p.terway_gate.is_some() {
        // Enforcing the gate requirement (Auto mode only): gates may open with
        // it only where Terway already runs Ready, so nothing is admitted anew
        // and no running Terway is evicted by the patch.
        prop_assert_eq!(s.mode, Mode::Auto, "(e) a gate patch outside Auto mode");
        let admitted: Vec<&String> = b.fresh.iter().filter(|n| !terway_ready_in(view, n)).collect();
        prop_assert!(
            admitted.is_empty(),
            "(e) gates {:?} opened on nodes without a Ready Terway while Terway lacks the gate requirement; {}",
            admitted,
            why
        );
    } else if !b.fresh.is_empty() {
        prop_assert!(may_open, "(e) gates {:?} opened; {}", b.fresh, why);
        for n in &b.fresh {
            let r = p.nodes.iter().find(|r| &r.name == n).expect("a row");
            prop_assert!(r.role == Role::Cloud && r.preflight, "(e) {} is not an eligible cloud node", n);
        }
        prop_assert_eq!(p.status.current_wave, previous.current_wave + 1);
        let w = p.status.wave.as_ref().expect("(e) a new wave in the status");
        prop_assert_eq!(&w.nodes, &b.fresh);
        prop_assert_eq!(w.started.0, now);
    }
    // (f)
    let eligible: Vec<String> = p
        .nodes
        .iter()
        .filter(|r| r.role == Role::Cloud && r.preflight && !gated_in(view, &r.name))
        .map(|r| r.name.clone())
        .collect();
    // Only when no gated cloud node waits for Terway: whether such nodes form
    // a wave of their own (so the next one waits) is the plan's choice.
    if may_open && b.unready_gated_in == 0 && !eligible.is_empty() {
        let want: Vec<String> = eligible.into_iter().take(b.max).collect();
        prop_assert_eq!(&b.new, &want, "(f) the next wave opens on the first eligible nodes");
    }
    Ok(())
}

/// (h) No wave advances while a node of it (Terway Ready) has a failing pod
/// probe: the wave stays the recorded (or adopted) one, and no gate opens on
/// a node without a Ready Terway.
fn assert_no_wave_past_failing_pods(view: &ClusterView, p: &Plan) -> Result<(), TestCaseError> {
    let failing = failing_in_wave(view);
    if failing.is_empty() {
        return Ok(());
    }
    let previous = view.rollout.as_ref().and_then(|r| r.status.clone()).unwrap_or_default();
    prop_assert!(
        p.status.current_wave <= previous.current_wave.max(1),
        "(h) wave {} follows wave {} whose pods fail on {:?}",
        p.status.current_wave,
        previous.current_wave,
        failing
    );
    if let Some(recorded) = &previous.wave {
        prop_assert_eq!(
            p.status.wave.as_ref(),
            Some(recorded),
            "(h) the wave failing on {:?} is dropped",
            &failing
        );
    }
    let b = budget(view, p);
    let admitted: Vec<&String> = b.fresh.iter().filter(|n| !terway_ready_in(view, n)).collect();
    prop_assert!(admitted.is_empty(), "(h) gates {:?} open past pods failing on {:?}", admitted, failing);
    Ok(())
}

/// The view without any probe target or result.
fn without_probes(view: &ClusterView) -> ClusterView {
    let mut v = view.clone();
    for r in v.reports.iter_mut().map(Arc::make_mut) {
        r.spec.probe_targets.clear();
        if let Some(s) = r.status.as_mut() {
            s.probes.clear();
        }
    }
    v
}

/// What the rollout decided: gates per row, the wave, and the rollout's conditions.
fn rollout_decision(p: &Plan) -> String {
    let gates: Vec<(&str, bool)> = p.nodes.iter().map(|r| (r.name.as_str(), r.gate)).collect();
    let conditions: Vec<(&str, &str, &str, &str)> = p
        .status
        .conditions
        .iter()
        .filter(|c| c.type_ != condition::PREFLIGHT_PASSED)
        .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str(), c.message.as_str()))
        .collect();
    format!("{gates:?} {:?} {} {conditions:?} {:?}", p.status.wave, p.status.current_wave, p.terway_gate)
}

/// (g) metav1.Condition semantics against the previous status, and one event
/// per condition whose status or reason changed.
fn assert_conditions(view: &ClusterView, p: &Plan, now: Timestamp) -> Result<(), TestCaseError> {
    let previous = view.rollout.as_ref().and_then(|r| r.status.clone()).unwrap_or_default();
    let generation = view.rollout.as_ref().and_then(|r| r.metadata.generation);
    prop_assert_eq!(p.status.observed_generation, generation);
    prop_assert_eq!(p.status.conditions.len(), 5);
    for c in &p.status.conditions {
        prop_assert_eq!(c.observed_generation, generation);
        match previous.conditions.iter().find(|o| o.type_ == c.type_) {
            Some(old) if old.status == c.status => {
                prop_assert_eq!(&c.last_transition_time, &old.last_transition_time, "{}", c.type_)
            }
            _ => prop_assert_eq!(c.last_transition_time.0, now, "{}", c.type_),
        }
    }
    prop_assert_eq!(
        event_keys(&p.events),
        expected_event_reasons(&previous.conditions, &p.status.conditions)
    );
    Ok(())
}

fn config(cases: u32) -> Config {
    Config { failure_persistence: None, ..Config::with_cases(cases) }
}

/// The view with every list reversed: what a watch cache in another order gives.
fn reversed(view: &ClusterView) -> ClusterView {
    let mut v = view.clone();
    v.nodes.reverse();
    v.reports.reverse();
    v.pods.reverse();
    v.daemon_sets.reverse();
    v
}

proptest! {
    #![proptest_config(config(10_000))]

    #[test]
    fn one_plan(w in world(1..=12)) {
        let view = build(&w);
        let now = now();
        let p = plan(&view, now);
        assert_safe(&view, &p)?;
        assert_gates_open_only_when_allowed(&view, &p, now)?;
        assert_conditions(&view, &p, now)?;
        assert_no_wave_past_failing_pods(&view, &p)?;
        // (c)
        let again = plan(&view, now);
        let json = serde_json::to_string(&p).expect("a plan serializes");
        prop_assert_eq!(&json, &serde_json::to_string(&again).expect("a plan serializes"));
        prop_assert_eq!(&p.status, &again.status);
        prop_assert_eq!(&p.events, &again.events);
        let shuffled = plan(&reversed(&view), now);
        prop_assert_eq!(&json, &serde_json::to_string(&shuffled).expect("a plan serializes"));
        prop_assert_eq!(&p.status, &shuffled.status);
        prop_assert_eq!(&p.events, &shuffled.events);
    }
}

proptest! {
    #![proptest_config(config(2_000))]

    /// (h) With gateWaves off, pod probes change no rollout decision (the
    /// check that reads them, CrossSiteConnectivity, is ignored in both
    /// plans: it may fail the preflight, which is its business, not the gate's).
    #[test]
    fn gate_waves_off_leaves_the_rollout_as_it_was(w in world(1..=12)) {
        let mut w = w;
        w.gate_waves = false;
        w.ignore.push("CrossSiteConnectivity".to_owned());
        let view = build(&w);
        let now = now();
        let with = plan(&view, now);
        let without = plan(&without_probes(&view), now);
        prop_assert_eq!(rollout_decision(&with), rollout_decision(&without));
    }
}

/// The generated views reach every interesting branch of the rollout often
/// enough for the properties above to mean something.
#[test]
fn the_generator_reaches_the_interesting_cases() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = world(1..=12);
    let total = 3_000;
    let mut seen: std::collections::BTreeMap<&str, usize> = Default::default();
    for _ in 0..total {
        let w = strategy.new_tree(&mut runner).expect("a world").current();
        let view = build(&w);
        let p = plan(&view, now());
        let b = budget(&view, &p);
        let eligible = p
            .nodes
            .iter()
            .filter(|r| r.role == Role::Cloud && r.preflight && !gated_in(&view, &r.name))
            .count();
        let mut hit = |k| *seen.entry(k).or_default() += 1;
        if p.passed {
            hit("passed");
        }
        if !b.new.is_empty() {
            hit("new gates");
        }
        if !b.new.is_empty() && eligible > b.new.len() {
            hit("new gates cut by the budget");
        }
        if b.unready_gated_in >= b.max && eligible > 0 {
            hit("budget used up");
        }
        if p.nodes.iter().any(|r| r.role == Role::OnPrem && gated_in(&view, &r.name)) {
            hit("on-prem gated");
        }
        if p.terway_gate.is_some() {
            hit("gate patch");
        }
        match previous_wave_state(&view, now()) {
            Some(false) => hit("wave in progress"),
            Some(true) => hit("wave failed"),
            None => {}
        }
        if gate_held(&view) {
            hit("gateWaves holds the wave");
            if p.passed && w.auto {
                hit("gateWaves holds a wave that could advance");
            }
        }
        if !failing_in_wave(&view).is_empty() && p.passed {
            hit("pods fail in a wave that could advance");
        }
        let (_, progressing) = cond(&p, condition::PROGRESSING);
        for reason in
            ["WaveInProgress", "ManualMode", "PreflightFailed", "Paused", "TerwayNotInstalled", "Complete"]
        {
            if progressing == reason {
                hit(reason);
            }
        }
    }
    let expected = [
        "passed",
        "new gates",
        "new gates cut by the budget",
        "budget used up",
        "on-prem gated",
        "gate patch",
        "wave in progress",
        "wave failed",
        "WaveInProgress",
        "ManualMode",
        "PreflightFailed",
        "Paused",
        "TerwayNotInstalled",
        "Complete",
        "gateWaves holds the wave",
        "gateWaves holds a wave that could advance",
        "pods fail in a wave that could advance",
    ];
    for k in expected {
        let n = seen.get(k).copied().unwrap_or(0);
        assert!(n * 100 >= total, "only {n} of {total} generated views: {k}; all: {seen:?}");
    }
    eprintln!("{seen:#?}");
}

// ---- simulations ----

#[derive(Debug, Clone)]
struct Step {
    /// Minutes to the next reconcile.
    mins: i64,
    /// Per node: Terway's pod on it, if gated, is Ready after this step
    /// (healthy nodes only, in the halting simulation).
    ready: Vec<bool>,
    /// Someone puts the gate label on this node (any role).
    stray_gate: Option<usize>,
    toggle_pause: bool,
}

fn steps(nodes: usize) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            1..8i64,
            prop::collection::vec(prop::bool::weighted(0.6), nodes),
            prop::option::weighted(0.1, 0..nodes),
            prop::bool::weighted(0.1),
        )
            .prop_map(|(mins, ready, stray_gate, toggle_pause)| Step {
                mins,
                ready,
                stray_gate,
                toggle_pause,
            }),
        3..9,
    )
}

fn world_and_steps() -> impl Strategy<Value = (World, Vec<Step>)> {
    world(2..=10).prop_flat_map(|w| {
        let n = w.nodes.len();
        (Just(w), steps(n))
    })
}

/// Plays the controller and the cluster after a plan: labels, status and the
/// gate patch applied; Terway pods only on gated cloud nodes once Terway
/// requires the gate.
fn advance(view: &mut ClusterView, p: &Plan, ready: impl Fn(usize) -> bool) {
    apply(view, p);
    if let Some(patch) = &p.terway_gate {
        let ds = terway_mut(view);
        *ds = affinity::with_affinity(ds, patch.affinity.clone());
    }
    let Some(ds) = terway_ds(view) else { return };
    let requires = affinity::requires_gate(affinity::daemon_set_affinity(ds));
    let names: Vec<String> = view.nodes.iter().filter_map(|n| n.metadata.name.clone()).collect();
    for (i, n) in names.iter().enumerate() {
        let runs = is_cloud(view, n) && (!requires || gated_in(view, n));
        if runs {
            set_terway_ready(view, n, ready(i));
        } else if requires {
            remove_pod(view, TERWAY, n);
        }
    }
}

fn index_of(name: &str) -> usize {
    name.trim_start_matches("node-").parse().expect("a generated node name")
}

proptest! {
    #![proptest_config(config(1_000))]

    #[test]
    fn simulated_rollouts_stay_safe((w, steps) in world_and_steps()) {
        let mut view = build(&w);
        let mut now = now();
        for step in &steps {
            let p = plan(&view, now);
            assert_safe(&view, &p)?;
            assert_gates_open_only_when_allowed(&view, &p, now)?;
            assert_conditions(&view, &p, now)?;
            advance(&mut view, &p, |i| step.ready[i]);
            if let Some(i) = step.stray_gate {
                set_label(&mut view, &name(i), GATE_LABEL, Some(GATE_OPEN));
            }
            if step.toggle_pause {
                let s = spec_mut(&mut view);
                s.paused = !s.paused;
            }
            now += SignedDuration::from_mins(step.mins);
        }
        let p = plan(&view, now);
        assert_safe(&view, &p)?;
    }
}

/// A healthy, Auto, unpaused bgp cluster whose Terway requires the gate, with
/// no history (readinessTimeout 5m): only Terway readiness stops the rollout.
/// Per node: (cloud, healthy: Terway becomes Ready there once gated).
fn halting_world() -> impl Strategy<Value = (Vec<(bool, bool)>, i32, Vec<i64>)> {
    (
        prop::collection::vec((any::<bool>(), prop::bool::weighted(0.6)), 2..=8),
        1..=3i32,
        prop::collection::vec(1..8i64, 3..9),
    )
}

fn halting_view(nodes: &[(bool, bool)], max_unavailable: i32) -> ClusterView {
    let w = World {
        nodes: nodes
            .iter()
            .map(|&(cloud, _)| NodeGen {
                cloud,
                report: ReportKind::Present { scenario: None, ready: true },
                agent_ready: true,
                gated: false,
                terway: None,
                in_wave: false,
                pod_probe: None,
            })
            .collect(),
        scenario: Scenario::Bgp,
        healthy: true,
        auto: true,
        max_unavailable: IntOrString::Int(max_unavailable),
        paused: false,
        readiness_timeout: "5m",
        ignore: vec![],
        terway: TerwayKind::RequiresGate,
        secret: true,
        previous: None,
        generation: 1,
        gate_waves: false,
    };
    build(&w)
}

proptest! {
    #![proptest_config(config(300))]

    /// A wave whose nodes are not Ready after readinessTimeout halts the rollout
    /// "until they recover": while a node of the failed wave stays not Ready, no
    /// later reconcile opens a gate, and Degraded stays True (WaveFailed).
    #[test]
    fn a_failed_wave_halts_the_rollout_until_its_nodes_recover((nodes, max, mins) in halting_world()) {
        let mut view = halting_view(&nodes, max);
        let mut now = now();
        let mut failed: BTreeSet<String> = BTreeSet::new();
        for step in &mins {
            let p = plan(&view, now);
            assert_safe(&view, &p)?;
            let degraded = condition(&p.status, condition::DEGRADED);
            if !failed.is_empty() {
                let b = budget(&view, &p);
                prop_assert!(
                    b.new.is_empty(),
                    "wave failed on {:?} (still not Ready), yet the plan opens {:?}",
                    failed,
                    b.new
                );
                prop_assert_eq!(
                    (degraded.status.as_str(), degraded.reason.as_str()),
                    ("True", "WaveFailed"),
                    "the failure of {:?} is forgotten",
                    &failed
                );
            }
            if degraded.status == "True" && degraded.reason == "WaveFailed" && failed.is_empty() {
                let wave = view.rollout.as_ref().and_then(|r| r.status.as_ref()).and_then(|s| s.wave.clone());
                let wave = wave.expect("a wave failed, so there was one");
                failed = wave.nodes.into_iter().filter(|n| !terway_ready_in(&view, n)).collect();
                prop_assert!(!failed.is_empty());
                prop_assert!(failed.len() > 5 || failed.iter().all(|n| degraded.message.contains(n.as_str())));
            }
            // Healthy nodes become Ready once gated; the others never do.
            advance(&mut view, &p, |i| nodes[i].1);
            prop_assert!(failed.iter().all(|n| !nodes[index_of(n)].1));
            now += SignedDuration::from_mins(*step);
        }
    }
}

proptest! {
    #![proptest_config(config(300))]

    /// gateWaves in a healthy Auto cluster (CrossSiteConnectivity ignored, so
    /// only the gate holds waves back), each cloud node's pods reaching the
    /// on-prem pods, failing, or never reporting, and its Terway becoming
    /// Ready once gated or never: at every step, the gated cloud nodes that
    /// are not healthy yet (Terway not Ready, or pods not reaching) number at
    /// most maxUnavailable, and a wave holding such a node is never followed
    /// by another.
    #[test]
    fn gated_waves_never_admit_more_than_max_unavailable_unhealthy_nodes(
        (nodes, max, mins) in halting_world(),
        pods in prop::collection::vec(prop_oneof![3 => Just(Some(true)), 1 => Just(Some(false)), 1 => Just(None)], 8),
    ) {
        let mut view = halting_view(&nodes, max);
        spec_mut(&mut view).cross_site.gate_waves = true;
        spec_mut(&mut view).ignore_checks = vec!["CrossSiteConnectivity".to_owned()];
        let mut w = World {
            nodes: nodes.iter().enumerate().map(|(i, &(cloud, _))| NodeGen {
                cloud,
                report: ReportKind::Present { scenario: None, ready: true },
                agent_ready: true,
                gated: false,
                terway: None,
                in_wave: false,
                pod_probe: pods[i],
            }).collect(),
            scenario: Scenario::Bgp,
            healthy: true,
            auto: true,
            max_unavailable: IntOrString::Int(max),
            paused: false,
            readiness_timeout: "5m",
            ignore: vec![],
            terway: TerwayKind::RequiresGate,
            secret: true,
            previous: None,
            generation: 1,
            gate_waves: true,
        };
        add_pod_probes(&mut view, &w);
        w.nodes.clear();
        let mut now = now();
        let healthy = |view: &ClusterView, n: &str| terway_ready_in(view, n) && pod_state(view, n) == Some(true);
        for step in &mins {
            let p = plan(&view, now);
            assert_safe(&view, &p)?;
            assert_no_wave_past_failing_pods(&view, &p)?;
            let m = max_unavailable(&IntOrString::Int(max), cloud_names(&view).len());
            let unhealthy: Vec<&str> = p
                .nodes
                .iter()
                .filter(|r| r.role == Role::Cloud && r.gate && !healthy(&view, &r.name))
                .map(|r| r.name.as_str())
                .collect();
            prop_assert!(unhealthy.len() <= m, "{:?} gated and not healthy, maxUnavailable {}", unhealthy, m);
            let previous = view.rollout.as_ref().and_then(|r| r.status.clone()).unwrap_or_default();
            if gate_held(&view) {
                prop_assert_eq!(p.status.current_wave, previous.current_wave, "a held wave was followed");
                prop_assert!(budget(&view, &p).fresh.is_empty());
            }
            advance(&mut view, &p, |i| nodes[i].1);
            now += SignedDuration::from_mins(*step);
        }
    }
}

fn node(name: &str, cloud: bool, ip: &str, kernel: &str) -> Node {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), name.to_owned()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
    ]);
    if cloud {
        labels.insert(CLOUD_LABEL.to_owned(), "true".to_owned());
    }
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            uid: Some(format!("uid-{name}")),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(Default::default()),
        status: Some(k8s_openapi::api::core::v1::NodeStatus {
            addresses: Some(vec![k8s_openapi::api::core::v1::NodeAddress {
                type_: "InternalIP".to_owned(),
                address: ip.to_owned(),
            }]),
            node_info: Some(k8s_openapi::api::core::v1::NodeSystemInfo {
                kernel_version: kernel.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// A report as the agent writes it. `owner_uid` is the uid of the node it
/// was written for (another uid: the report of a previous node of the name).
fn report(name: &str, owner_uid: &str, role: Role, scenario: Scenario, ready: bool) -> NodeNetworkReport {
    let plugin = match (role, scenario) {
        (Role::Cloud, _) => Plugin::Terway,
        (_, Scenario::Overlay) => Plugin::FlannelVxlan,
        (_, Scenario::Bgp) => Plugin::CalicoBgp,
        (_, Scenario::HostNetwork) => Plugin::None,
        (_, Scenario::Unknown) => Plugin::Unknown,
    };
    let mut checks = vec![CheckResult::pass(CheckName::ScenarioDetected, Severity::Error, "Detected", "ok")];
    if !ready {
        checks.push(CheckResult::fail(CheckName::IPForwarding, Severity::Error, "Disabled", "off"));
    }
    let mut r = NodeNetworkReport::new(
        name,
        NodeNetworkReportSpec { node_name: name.to_owned(), probe_targets: vec![] },
    );
    r.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Node".to_owned(),
        name: name.to_owned(),
        uid: owner_uid.to_owned(),
        ..OwnerReference::default()
    }]);
    r.status = Some(NodeNetworkReportStatus {
        scenario,
        plugin,
        confidence: Confidence::High,
        role,
        kernel_version: "5.10.134-16.al8.x86_64".to_owned(),
        evidence: vec![],
        stale: vec![],
        checks,
        ready,
        last_detected: Time(t0()),
        agent_version: "0.1.0".to_owned(),
        bgp_peers: vec![],
        pod_mtu: None,
        cloud_network: None,
        probes: vec![],
    });
    r
}
