//! plan: the pure core of the controller and of `terway-hybrid preflight`.
//!
//! `plan(&ClusterView, now) -> Plan` decides everything: the cluster scenario,
//! every cluster check, the labels each node should carry, which cloud nodes
//! the next rollout wave opens the Terway gate on, the TerwayRollout status
//! and the Events its condition changes deserve. It reads nothing but its
//! arguments, so the same view always gives the same plan.

use crate::address_plan;
use crate::affinity;
use crate::checks::{self, terway_requires_gate};
use crate::cluster::{pod_ready, qualified, some_of, Cluster, NodeInfo};
use crate::cni_fix::{self, Target};
use crate::cross_site::{self, Sites};
use crate::view::ClusterView;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Affinity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use terway_hybrid_api::rollout::{
    condition, degraded, Mode, NodeCounts, Remediate, Wave, GATE_LABEL, GATE_OPEN, MAX_WAVE_NODES,
};
use terway_hybrid_api::{CheckResult, Plugin, Role, Scenario, TerwayRolloutSpec, TerwayRolloutStatus};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub scenario: Scenario,
    pub terway_required: Option<bool>,
    /// No check fails with severity error (after ignores).
    pub passed: bool,
    pub checks: Vec<CheckResult>,
    pub nodes: Vec<NodeRow>,
    /// Terway's DaemonSet needs the gate requirement added (Auto mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terway_gate: Option<GatePatch>,
    /// The opt-in on-prem CNI affinity fixes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remediations: Vec<Remediation>,
    #[serde(skip)]
    pub status: TerwayRolloutStatus,
    #[serde(skip)]
    pub events: Vec<PlannedEvent>,
}

/// One node, as the plan sees it and wants it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRow {
    pub name: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<Scenario>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<Plugin>,
    /// The node's own checks pass (its report is ready).
    pub preflight: bool,
    /// Desired: the Terway gate is open on this node.
    pub gate: bool,
    /// Terway's pod on the node is Ready (None: no Terway pod there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terway_ready: Option<bool>,
    /// The labels the controller keeps on this node (docs/contracts.md §6).
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatePatch {
    pub namespace: String,
    pub name: String,
    pub affinity: Affinity,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "target")]
pub enum Remediation {
    /// Patch the DaemonSet's pod affinity.
    DaemonSet {
        namespace: String,
        name: String,
        affinity: Affinity,
        /// Apply for real (else a server-side dry run only).
        apply: bool,
        /// Why the fix may not be applied: it would lose an on-prem node or keep a cloud one.
        #[serde(skip_serializing_if = "Option::is_none")]
        unsafe_because: Option<String>,
    },
    /// The Tigera operator owns calico-node: patch `Installation default`.
    Installation {
        affinity: Affinity,
        apply: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        unsafe_because: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEvent {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

pub fn plan(view: &ClusterView, now: Timestamp) -> Plan {
    let c = Cluster::new(view);
    let verdict = checks::scenario_consistent(&c);
    let scenario = verdict.scenario;
    let sites = Sites::new(&c);
    let mut all_checks = vec![
        checks::agent_coverage(&c),
        verdict.check,
        checks::on_prem_cni_excluded_from_cloud(&c, scenario),
        checks::terway_excluded_from_on_prem(&c, scenario),
        checks::ram_secret(&c, scenario),
        checks::eni_config(&c, scenario),
        checks::service_cidr(&c, scenario),
        checks::cloud_node_kernel(&c, scenario),
        checks::cloud_node_preflight(&c, scenario),
        checks::overlay_reaches_cloud(&c, scenario),
        address_plan::check(&c),
        cross_site::bgp_peers(&sites, scenario, &c.spec.cross_site.vbr_peers),
        cross_site::cross_site_connectivity(&sites),
        cross_site::path_mtu(&sites, scenario),
    ];
    checks::apply_ignores(&mut all_checks, &c.spec.ignore_checks);
    // The status must stay within the CRD's bounds, or the server refuses
    // the whole write.
    for check in &mut all_checks {
        bound(&mut check.message, terway_hybrid_api::check::MAX_MESSAGE);
    }
    let passed = !all_checks.iter().any(CheckResult::is_blocking);
    let terway_required = scenario.terway_required();

    let previous = view.rollout.as_ref().and_then(|r| r.status.clone()).unwrap_or_default();
    let rollout = rollout(&c, &sites, &previous, scenario, passed, now);
    let remediations = remediations(&c, &all_checks);

    let nodes: Vec<NodeRow> = c
        .nodes
        .values()
        .map(|n| {
            let status = n.current_report().and_then(|r| r.status.as_ref());
            // `gates` is sorted: a search, not a scan per node (quadratic on big clusters).
            let gate = rollout.gates.binary_search(&n.name()).is_ok();
            let preflight = n.node_checks_pass();
            // A node whose agent has not reported yet (no report, or one
            // whose status is not written yet: an agent applies the
            // identity first) gets no labels: it would be labelled `failed`
            // now and again once its verdict lands, a second write per node
            // for nothing (a gated node keeps its gate whatever happens to
            // its report).
            let mut labels = Vec::new();
            if n.report.is_some_and(|r| r.status.is_some()) || gate {
                labels.push((
                    terway_hybrid_api::rollout::SCENARIO_LABEL.to_owned(),
                    scenario.as_str().to_owned(),
                ));
                labels.push((
                    terway_hybrid_api::rollout::PREFLIGHT_LABEL.to_owned(),
                    if preflight { "passed" } else { "failed" }.to_owned(),
                ));
            }
            if gate {
                labels.push((GATE_LABEL.to_owned(), GATE_OPEN.to_owned()));
            }
            NodeRow {
                name: n.name().to_owned(),
                role: n.role,
                scenario: status.map(|s| s.scenario),
                plugin: status.map(|s| s.plugin),
                preflight,
                gate,
                terway_ready: c.terway.and_then(|t| c.pod_of(t, n.name())).map(pod_ready),
                labels,
            }
        })
        .collect();

    let generation = view.rollout.as_ref().and_then(|r| r.metadata.generation);
    let conditions = conditions(&previous, &c, scenario, &all_checks, passed, &rollout, generation, now);
    let events = events(&previous.conditions, &conditions);
    let status = TerwayRolloutStatus {
        scenario: Some(scenario),
        terway_required,
        observed_generation: generation,
        conditions,
        checks: all_checks.clone(),
        nodes: counts(&c, &nodes),
        current_wave: rollout.current_wave,
        wave: rollout.wave.clone(),
    };
    Plan {
        scenario,
        terway_required,
        passed,
        checks: all_checks,
        nodes,
        terway_gate: rollout.gate_patch,
        remediations,
        status,
        events,
    }
}

/// What the rollout step decided.
struct Rollout<'a> {
    /// Cloud nodes whose gate should be open (kept and newly opened).
    gates: Vec<&'a str>,
    current_wave: u32,
    wave: Option<Wave>,
    gate_patch: Option<GatePatch>,
    progressing: (bool, &'static str, String),
    degraded: Option<(&'static str, String)>,
}

fn rollout<'a>(
    c: &Cluster<'a>,
    sites: &Sites<'a>,
    previous: &TerwayRolloutStatus,
    scenario: Scenario,
    passed: bool,
    now: Timestamp,
) -> Rollout<'a> {
    let gated = |n: &NodeInfo| n.label(GATE_LABEL) == Some(GATE_OPEN);
    let terway_ready = |n: &NodeInfo| c.terway.and_then(|t| c.pod_of(t, n.name())).is_some_and(pod_ready);
    // Absolute: the gate is never open on an on-prem node; one found open is closed.
    let on_prem_gated: Vec<&str> = c.on_prem().filter(|n| gated(n)).map(|n| n.name()).collect();
    let mut gates: Vec<&str> = c.cloud().filter(|n| gated(n)).map(|n| n.name()).collect();
    let mut out = Rollout {
        gates: vec![],
        current_wave: previous.current_wave,
        wave: None,
        gate_patch: None,
        progressing: (false, "", String::new()),
        degraded: None,
    };
    if !on_prem_gated.is_empty() {
        out.degraded = Some((
            "OnPremGated",
            format!(
                "the Terway gate was open on on-prem nodes {}; the controller closed it",
                some_of(&on_prem_gated, 5)
            ),
        ));
    }

    // The current wave: done when all its nodes run a Ready Terway pod;
    // failed when its readiness timeout passed first.
    let invalid = spec_problem(&c.spec);
    // An invalid timeout times no wave out: the rollout stops on InvalidSpec instead.
    let timeout = parse_duration(&c.spec.readiness_timeout).filter(|_| invalid.is_none());
    let gate_waves = c.spec.cross_site.gate_waves;
    // Why the current wave is halted: the Degraded reason and message.
    let mut halted: Option<(&'static str, String)> = None;
    // gateWaves: what keeps a wave whose Terway pods are Ready from being done.
    let mut unreached = String::new();
    let mut wave_open = false;
    let mut wave_nodes: Vec<&str> = vec![];
    // A wave the status lost (its write failed after the gate labels landed),
    // or Terway failing later on a gated node: gated cloud nodes whose Terway
    // is not Ready are adopted as the wave, so they are timed like one.
    let adopted;
    let recorded = match &previous.wave {
        Some(wave) => Some(wave),
        None => {
            let mut unready: Vec<String> =
                c.cloud().filter(|n| gated(n) && !terway_ready(n)).map(|n| n.name().to_owned()).collect();
            if gate_waves {
                // gateWaves: a gated node whose pods cannot reach the on-prem
                // pods is as unhealthy as one whose Terway is not Ready.
                let ready: Vec<&str> =
                    c.cloud().filter(|n| gated(n) && terway_ready(n)).map(|n| n.name()).collect();
                unready.extend(cross_site::failing_pod_probes(sites, &ready).into_iter().map(str::to_owned));
                unready.sort_unstable();
            }
            adopted = (!unready.is_empty()).then_some(Wave { nodes: unready, started: Time(now) });
            if adopted.is_some() {
                out.current_wave = previous.current_wave.max(1);
            }
            adopted.as_ref()
        }
    };
    if let Some(wave) = recorded {
        let unready: Vec<&str> = wave
            .nodes
            .iter()
            .filter_map(|name| c.nodes.get(name.as_str()))
            .filter(|n| n.role == Role::Cloud && !terway_ready(n))
            .map(|n| n.name())
            .collect();
        // gateWaves: the wave's nodes whose Terway is Ready must also reach
        // the on-prem pods from their pods (docs/architecture.md, "Waves").
        let reach = if gate_waves {
            let ready: Vec<&str> = wave
                .nodes
                .iter()
                .filter_map(|name| c.nodes.get(name.as_str()))
                .filter(|n| n.role == Role::Cloud && terway_ready(n))
                .map(|n| n.name())
                .collect();
            cross_site::pod_reach(sites, &ready)
        } else {
            cross_site::PodReach::default()
        };
        if !unready.is_empty() || !reach.healthy() {
            // The wave is kept (in progress or halted) until its nodes are
            // Ready, and its nodes keep their gate even if a label write
            // failed before.
            out.wave = Some(wave.clone());
            wave_nodes = unready.clone();
            wave_nodes.extend(reach.pending.iter().chain(&reach.failing).copied());
            if !reach.healthy() {
                unreached = reach.describe();
            }
            let age = now.duration_since(wave.started.0);
            if timeout.is_some_and(|t| age > t) {
                halted = Some(if !unready.is_empty() {
                    (
                        degraded::WAVE_FAILED,
                        format!(
                            "wave {}: Terway is not Ready after {} on {}; the rollout is halted until they recover",
                            out.current_wave,
                            c.spec.readiness_timeout,
                            some_of(&unready, 5)
                        ),
                    )
                } else {
                    (
                        degraded::CROSS_SITE_UNREACHABLE,
                        format!(
                            "wave {}: Terway is Ready, but after {} its pods do not reach the on-prem pods ({});                              the rollout is halted until they do (CrossSiteConnectivity names every failing pair)",
                            out.current_wave, c.spec.readiness_timeout, unreached
                        ),
                    )
                });
            } else {
                wave_open = true;
            }
        }
    }

    let skip_reason = if let Some(problem) = invalid {
        Some(("InvalidSpec", format!("{problem}: fix the TerwayRollout; no new gate opens")))
    } else if c.spec.mode != Mode::Auto {
        Some(("ManualMode", "mode is Manual: the controller checks and reports, it opens no gate".to_owned()))
    } else if scenario == Scenario::Unknown {
        Some(("ScenarioUnknown", "the on-prem scenario is not known yet: no gate opens".to_owned()))
    } else if scenario.terway_required() != Some(true) {
        Some(("TerwayNotRequired", format!("the {scenario} scenario does not need Terway")))
    } else if !passed {
        Some(("PreflightFailed", "the preflight fails: no new gate opens".to_owned()))
    } else if c.terway.is_none() {
        Some((
            "TerwayNotInstalled",
            format!("{}/{} is not installed", c.spec.terway.namespace, c.spec.terway.daemon_set_name),
        ))
    } else if c.spec.paused {
        Some(("Paused", "the rollout is paused: open gates stay open, no new one opens".to_owned()))
    } else {
        halted.clone()
    };

    if let Some(h) = &halted {
        out.degraded = Some(h.clone());
    }
    // The wave's nodes keep their gate even if a label write failed, but
    // only while the rollout may act at all.
    if matches!(skip_reason, None | Some((degraded::WAVE_FAILED | degraded::CROSS_SITE_UNREACHABLE, _))) {
        gates.extend(wave_nodes.iter().copied());
    }
    let enforce_gate = c.spec.mode == Mode::Auto && scenario.terway_required() == Some(true);
    if let (Some(terway), true) = (c.terway, enforce_gate) {
        if !terway_requires_gate(terway) {
            // Without the gate requirement Terway goes everywhere its own
            // selector allows, at once: enforce it in Auto mode whatever else
            // holds the waves back (a failing preflight most of all). Cloud
            // nodes where Terway already serves (Ready) keep it: their gate
            // opens with the patch, or the patch would evict their pod
            // networking. A pod that is not Ready serves nobody yet.
            out.gate_patch = Some(gate_patch(terway));
            gates.extend(c.cloud().filter(|n| terway_ready(n)).map(|n| n.name()));
            if previous
                .conditions
                .iter()
                .any(|c| c.type_ == condition::PROGRESSING && c.reason == "WaveInProgress")
                || previous.current_wave > 0
            {
                out.degraded = Some((
                    "GateRemoved",
                    format!(
                        "{} lost its required {GATE_LABEL}={GATE_OPEN} affinity (reverted by an add-on manager?); \
                         the controller adds it back",
                        qualified(terway)
                    ),
                ));
            }
        }
    }

    match skip_reason {
        Some((reason, message)) => out.progressing = (false, reason, message),
        None if out.gate_patch.is_some() => {
            out.progressing =
                (true, "EnforcingGate", format!("adding the {GATE_LABEL} requirement to Terway"));
        }
        None => {
            let unready_gated = c.cloud().filter(|n| gated(n) && !terway_ready(n)).count();
            let budget =
                max_unavailable(&c.spec.max_unavailable, c.cloud().count()).saturating_sub(unready_gated);
            let eligible: Vec<&str> = c
                .cloud()
                .filter(|n| !gated(n) && n.node_checks_pass())
                .map(|n| n.name())
                .take(budget.min(MAX_WAVE_NODES))
                .collect();
            if !wave_open && !eligible.is_empty() {
                out.current_wave = previous.current_wave + 1;
                out.wave = Some(Wave {
                    nodes: eligible.iter().map(|s| (*s).to_owned()).collect(),
                    started: Time(now),
                });
                gates.extend(eligible.iter().copied());
                wave_open = true;
            }
            out.progressing = match (&out.wave, wave_open) {
                (Some(wave), true) => (
                    true,
                    "WaveInProgress",
                    format!(
                        "wave {}: opening the Terway gate on {}{}",
                        out.current_wave,
                        some_of(&wave.nodes, 5),
                        if unreached.is_empty() {
                            String::new()
                        } else {
                            format!("; waiting for their pods to reach the on-prem pods ({unreached})")
                        }
                    ),
                ),
                _ => (false, "Complete", "every cloud node that passes its checks runs Terway".to_owned()),
            };
        }
    }
    gates.sort_unstable();
    gates.dedup();
    out.gates = gates;
    out
}

fn gate_patch(terway: &DaemonSet) -> GatePatch {
    let current = affinity::daemon_set_affinity(terway);
    GatePatch {
        namespace: terway.metadata.namespace.clone().unwrap_or_default(),
        name: terway.metadata.name.clone().unwrap_or_default(),
        affinity: affinity::require_gate(current),
    }
}

/// `maxUnavailable` as a node count: a count, or a percentage of the cloud
/// nodes rounded down; at least 1 so a rollout always moves. Values out of
/// range are clamped here; the rollout refuses them first ([`spec_problem`]).
pub fn max_unavailable(value: &IntOrString, cloud_nodes: usize) -> usize {
    let n = match value {
        IntOrString::Int(i) => usize::try_from(*i).unwrap_or(0),
        IntOrString::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<usize>().ok()) {
            Some(pct) => cloud_nodes.saturating_mul(pct.min(100)) / 100,
            None => s.parse().unwrap_or(1),
        },
    };
    n.max(1)
}

/// Cuts `text` to at most `max` characters, saying so.
pub fn bound(text: &mut String, max: usize) {
    if let Some((cut, _)) = text.char_indices().nth(max.saturating_sub(16)) {
        if text.chars().count() > max {
            text.truncate(cut);
            text.push_str(" … (cut)");
        }
    }
}

/// The longest `readinessTimeout` (the CRD refuses longer ones too).
pub const MAX_READINESS_TIMEOUT: SignedDuration = SignedDuration::from_hours(24);

/// What is wrong with the rollout's spec, when the API server did not
/// refuse it (a CRD installed before its rules, a dump): a value out of
/// range stops the rollout with a reason, never a silent default.
pub fn spec_problem(spec: &TerwayRolloutSpec) -> Option<String> {
    let mut problems = Vec::new();
    let timeout = parse_duration(&spec.readiness_timeout);
    if !timeout.is_some_and(|t| t >= SignedDuration::from_secs(1) && t <= MAX_READINESS_TIMEOUT) {
        problems.push(format!(
            "readinessTimeout {:?} is not a duration from 1s to 24h such as 10m, 90s or 1h30m",
            spec.readiness_timeout
        ));
    }
    let count_ok = match &spec.max_unavailable {
        IntOrString::Int(i) => *i >= 1,
        IntOrString::String(s) => {
            s.strip_suffix('%').and_then(|p| p.parse::<u8>().ok()).is_some_and(|p| (1..=100).contains(&p))
                && !s.starts_with('0')
        }
    };
    if !count_ok {
        let shown = match &spec.max_unavailable {
            IntOrString::Int(i) => i.to_string(),
            IntOrString::String(s) => format!("{s:?}"),
        };
        problems.push(format!(
            "maxUnavailable {shown} is not a count of at least 1 or a percentage from 1% to 100%"
        ));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// `1h30m`, `10m`, `90s` (what the CRD's rule admits). None when the total
/// does not fit: release builds do not check overflow, so every step is
/// checked here.
pub fn parse_duration(s: &str) -> Option<SignedDuration> {
    let mut total = 0i64;
    let mut digits = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let n: i64 = digits.parse().ok()?;
        digits.clear();
        let unit = match ch {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    // SignedDuration holds any i64 of seconds; a Timestamp comparison does not
    // overflow with it.
    (digits.is_empty() && !s.is_empty()).then_some(SignedDuration::from_secs(total))
}

fn remediations(c: &Cluster, checks: &[CheckResult]) -> Vec<Remediation> {
    let mode = c.spec.on_prem_cni.remediate;
    let failing = checks
        .iter()
        .any(|ch| ch.name == terway_hybrid_api::CheckName::OnPremCNIExcludedFromCloud && ch.is_blocking());
    if mode == Remediate::Never || !failing {
        return vec![];
    }
    let installation = c.view.installation.as_ref();
    c.on_prem_cnis
        .iter()
        .filter_map(|ds| cni_fix::prepare(ds, installation, &c.view.nodes, &c.spec.cloud_node_selector))
        .map(|fix| {
            // An unsafe fix is still sent as a dry run, so the API server
            // validates it and the operator sees why it was held back.
            let apply = mode == Remediate::Apply && fix.verdict.is_ok();
            let unsafe_because = fix.verdict.err().map(|v| v.to_string());
            match fix.target {
                Target::DaemonSet { namespace, name } => {
                    Remediation::DaemonSet { namespace, name, affinity: fix.after, apply, unsafe_because }
                }
                Target::Installation => {
                    Remediation::Installation { affinity: fix.after, apply, unsafe_because }
                }
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn conditions(
    previous: &TerwayRolloutStatus,
    c: &Cluster,
    scenario: Scenario,
    checks: &[CheckResult],
    passed: bool,
    rollout: &Rollout,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let failing: Vec<&str> = checks.iter().filter(|c| c.is_blocking()).map(|c| c.name.as_str()).collect();
    let consistent = checks.iter().find(|c| c.name == terway_hybrid_api::CheckName::ScenarioConsistent);
    let cloud = c.cloud().count();
    let ready_cloud = c
        .cloud()
        .filter(|n| n.label(GATE_LABEL) == Some(GATE_OPEN))
        .filter(|n| c.terway.and_then(|t| c.pod_of(t, n.name())).is_some_and(pod_ready))
        .count();
    let mut out = vec![
        if scenario == Scenario::Unknown {
            (
                condition::SCENARIO_DETECTED,
                false,
                "ScenarioUnknown",
                consistent.map(|c| c.message.clone()).unwrap_or_default(),
            )
        } else {
            (condition::SCENARIO_DETECTED, true, "Detected", format!("the on-prem network is {scenario}"))
        },
        if passed {
            (condition::PREFLIGHT_PASSED, true, "AllChecksPass", "every cluster check passes".to_owned())
        } else {
            (condition::PREFLIGHT_PASSED, false, "ChecksFailed", format!("failing: {}", failing.join(", ")))
        },
        (condition::PROGRESSING, rollout.progressing.0, rollout.progressing.1, rollout.progressing.2.clone()),
        match scenario.terway_required() {
            Some(false) => (
                condition::AVAILABLE,
                true,
                "TerwayNotRequired",
                "overlay: the CNI reaches cloud nodes".to_owned(),
            ),
            _ if cloud == 0 => {
                (condition::AVAILABLE, false, "NoCloudNodes", "no cloud node joined yet".to_owned())
            }
            _ if ready_cloud == cloud => (
                condition::AVAILABLE,
                true,
                "AllCloudNodesReady",
                format!("Terway is Ready on all {cloud} cloud nodes"),
            ),
            _ => (
                condition::AVAILABLE,
                false,
                "CloudNodesPending",
                format!("Terway is Ready on {ready_cloud} of {cloud} cloud nodes"),
            ),
        },
        match &rollout.degraded {
            Some((reason, message)) => (condition::DEGRADED, true, *reason, message.clone()),
            None => {
                (condition::DEGRADED, false, "AsExpected", "nothing is wrong with the rollout".to_owned())
            }
        },
    ]
    .into_iter()
    .map(|(type_, ok, reason, message)| {
        let status = if ok { "True" } else { "False" };
        // metav1.Condition: the transition time moves only when the status does.
        let last_transition_time = previous
            .conditions
            .iter()
            .find(|p| p.type_ == type_ && p.status == status)
            .map(|p| p.last_transition_time.clone())
            .unwrap_or(Time(now));
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            last_transition_time,
            observed_generation: generation,
        }
    })
    .collect::<Vec<_>>();
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// An Event for every condition whose status or reason changed.
fn events(previous: &[Condition], current: &[Condition]) -> Vec<PlannedEvent> {
    current
        .iter()
        .filter(|c| {
            !previous.iter().any(|p| p.type_ == c.type_ && p.status == c.status && p.reason == c.reason)
        })
        .map(|c| {
            let bad = (c.type_ == condition::DEGRADED && c.status == "True")
                || (c.type_ != condition::DEGRADED
                    && c.type_ != condition::PROGRESSING
                    && c.status == "False");
            PlannedEvent {
                warning: bad,
                reason: c.reason.clone(),
                message: format!("{} is {}: {}", c.type_, c.status, c.message),
            }
        })
        .collect()
}

fn counts(c: &Cluster, rows: &[NodeRow]) -> NodeCounts {
    let n = |f: &dyn Fn(&NodeRow) -> bool| rows.iter().filter(|r| f(r)).count() as u32;
    NodeCounts {
        total: rows.len() as u32,
        on_prem: n(&|r| r.role == Role::OnPrem),
        cloud: n(&|r| r.role == Role::Cloud),
        reported: c.nodes.values().filter(|n| n.current_report().is_some()).count() as u32,
        preflight_passed: n(&|r| r.preflight),
        gated: n(&|r| r.gate),
        terway_ready: n(&|r| r.terway_ready == Some(true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_unavailable_counts_and_percentages() {
        assert_eq!(max_unavailable(&IntOrString::Int(3), 10), 3);
        assert_eq!(max_unavailable(&IntOrString::Int(0), 10), 1);
        assert_eq!(max_unavailable(&IntOrString::String("25%".into()), 10), 2);
        assert_eq!(max_unavailable(&IntOrString::String("5%".into()), 10), 1);
        assert_eq!(max_unavailable(&IntOrString::String("100%".into()), 7), 7);
        assert_eq!(max_unavailable(&IntOrString::String("junk".into()), 7), 1);
    }

    #[test]
    fn spec_values_out_of_range_are_named() {
        let spec = |mu: IntOrString, t: &str| TerwayRolloutSpec {
            max_unavailable: mu,
            readiness_timeout: t.to_owned(),
            ..Default::default()
        };
        assert_eq!(spec_problem(&spec(IntOrString::Int(1), "10m")), None);
        assert_eq!(spec_problem(&spec(IntOrString::String("100%".into()), "24h")), None);
        assert_eq!(
            spec_problem(&spec(IntOrString::Int(0), "99999999999999999h")).unwrap(),
            "readinessTimeout \"99999999999999999h\" is not a duration from 1s to 24h such as 10m, 90s or 1h30m; \
             maxUnavailable 0 is not a count of at least 1 or a percentage from 1% to 100%"
        );
        for (mu, t) in
            [("150%", "10m"), ("0%", "10m"), ("junk", "10m"), ("05%", "10m"), ("5%", "0s"), ("5%", "25h")]
        {
            assert!(spec_problem(&spec(IntOrString::String(mu.into()), t)).is_some(), "{mu} {t}");
        }
    }

    #[test]
    fn durations() {
        // Overflow is None, never a wrapped (negative) duration.
        assert_eq!(parse_duration("2562047788015216h"), None);
        assert_eq!(parse_duration("9223372036854775807s1s"), None);
        assert_eq!(parse_duration("99999999999999999999s"), None);
        assert_eq!(parse_duration("10m"), Some(SignedDuration::from_mins(10)));
        assert_eq!(parse_duration("1h30m"), Some(SignedDuration::from_mins(90)));
        assert_eq!(parse_duration("90s"), Some(SignedDuration::from_secs(90)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("10 minutes"), None);
        assert_eq!(parse_duration(""), None);
    }
}
