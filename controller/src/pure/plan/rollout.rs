//! The rollout's decisions, one step each, each returning a named verdict:
//! where the wave in flight stands ([`track_wave`]), what holds new gates
//! back ([`why_held`]), whether Terway's DaemonSet needs the gate
//! requirement put back ([`enforce_gate`]) and which nodes the next wave
//! opens ([`next_wave`]). [`rollout`] puts them together.

use super::{max_unavailable, parse_duration, spec_problem, GatePatch, Verdict};
use crate::pure::affinity;
use crate::pure::checks::terway_requires_gate;
use crate::pure::cluster::{pod_ready, qualified, some_of, Cluster, NodeInfo};
use crate::pure::cross_site::{self, Sites};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use terway_hybrid_api::rollout::{condition, degraded, Mode, Wave, GATE_LABEL, GATE_OPEN, MAX_WAVE_NODES};
use terway_hybrid_api::{Role, Scenario, TerwayRolloutStatus};

/// What the rollout decided.
pub(super) struct Rollout<'a> {
    /// Cloud nodes whose gate should be open (kept and newly opened), sorted.
    pub gates: Vec<&'a str>,
    pub current_wave: u32,
    pub wave: Option<Wave>,
    pub gate_patch: Option<GatePatch>,
    /// The Progressing condition.
    pub progressing: Verdict,
    /// The Degraded condition, when something is wrong.
    pub degraded: Option<Verdict>,
}

pub(super) fn rollout<'a>(
    c: &Cluster<'a>,
    sites: &Sites<'a>,
    previous: &TerwayRolloutStatus,
    scenario: Scenario,
    passed: bool,
    now: Timestamp,
) -> Rollout<'a> {
    let invalid = spec_problem(&c.spec);
    // An invalid timeout times no wave out: the rollout stops on InvalidSpec instead.
    let timeout = parse_duration(&c.spec.readiness_timeout).filter(|_| invalid.is_none());
    let tracked = track_wave(c, sites, previous, timeout, now);
    let hold = why_held(c, scenario, passed, invalid, &tracked.state);
    let enforcement = enforce_gate(c, scenario, previous);

    let mut gates: Vec<&str> = c.cloud().filter(|n| gated(n)).map(|n| n.name()).collect();
    // The wave's nodes keep their gate even if a label write failed, but
    // only while the rollout may act at all.
    if hold.as_ref().is_none_or(|h| matches!(h, Hold::Halted(_))) {
        gates.extend(tracked.state.waiting());
    }
    let degraded = (enforcement.as_ref().and_then(|e| e.gate_removed.clone()))
        .or_else(|| tracked.state.halt().cloned())
        .or_else(|| on_prem_gated(c));
    let mut current_wave = tracked.number;
    let mut wave = tracked.state.wave().cloned();
    let progressing = match (&hold, &enforcement) {
        (Some(hold), _) => hold.verdict(),
        (None, Some(_)) => {
            Verdict::new(true, "EnforcingGate", format!("adding the {GATE_LABEL} requirement to Terway"))
        }
        (None, None) => {
            if wave.is_none() {
                let opened = next_wave(c);
                if !opened.is_empty() {
                    current_wave = previous.current_wave + 1;
                    wave = Some(Wave {
                        nodes: opened.iter().map(|&n| n.to_owned()).collect(),
                        started: Time(now),
                    });
                    gates.extend(opened);
                }
            }
            match &wave {
                Some(wave) => wave_in_progress(current_wave, wave, tracked.state.unreached()),
                None => {
                    Verdict::new(false, "Complete", "every cloud node that passes its checks runs Terway")
                }
            }
        }
    };
    let gate_patch = enforcement.map(|e| {
        gates.extend(e.serving);
        e.patch
    });
    gates.sort_unstable();
    gates.dedup();
    Rollout { gates, current_wave, wave, gate_patch, progressing, degraded }
}

fn gated(n: &NodeInfo) -> bool {
    n.label(GATE_LABEL) == Some(GATE_OPEN)
}

/// The node runs a Ready Terway pod.
pub(super) fn terway_ready(c: &Cluster, n: &NodeInfo) -> bool {
    c.terway.and_then(|t| c.pod_of(t, n.name())).is_some_and(pod_ready)
}

/// Absolute: the gate is never open on an on-prem node; one found open is closed.
fn on_prem_gated(c: &Cluster) -> Option<Verdict> {
    let nodes: Vec<&str> = c.on_prem().filter(|n| gated(n)).map(|n| n.name()).collect();
    (!nodes.is_empty()).then(|| {
        Verdict::new(
            true,
            "OnPremGated",
            format!(
                "the Terway gate was open on on-prem nodes {}; the controller closed it",
                some_of(&nodes, 5)
            ),
        )
    })
}

/// The wave in flight and its number.
struct Tracked<'a> {
    number: u32,
    state: WaveState<'a>,
}

enum WaveState<'a> {
    /// No wave in flight: the last one is done, or there was none.
    Done,
    /// Within its readiness timeout, some of its nodes still waiting.
    InProgress {
        wave: Wave,
        waiting: Vec<&'a str>,
        /// gateWaves: the failing or missing pod-path probes, described.
        unreached: String,
    },
    /// Its readiness timeout passed first: the rollout halts (the Degraded verdict).
    Halted { wave: Wave, waiting: Vec<&'a str>, why: Verdict },
}

impl<'a> WaveState<'a> {
    fn wave(&self) -> Option<&Wave> {
        match self {
            WaveState::Done => None,
            WaveState::InProgress { wave, .. } | WaveState::Halted { wave, .. } => Some(wave),
        }
    }

    fn waiting(&self) -> Vec<&'a str> {
        match self {
            WaveState::Done => vec![],
            WaveState::InProgress { waiting, .. } | WaveState::Halted { waiting, .. } => waiting.clone(),
        }
    }

    fn unreached(&self) -> &str {
        match self {
            WaveState::InProgress { unreached, .. } => unreached,
            _ => "",
        }
    }

    fn halt(&self) -> Option<&Verdict> {
        match self {
            WaveState::Halted { why, .. } => Some(why),
            _ => None,
        }
    }
}

/// The current wave is done when all its nodes run a Ready Terway pod (and,
/// with gateWaves, their pods reach the on-prem pods: docs/architecture.md,
/// "Waves"); it fails when its readiness timeout passes first.
fn track_wave<'a>(
    c: &Cluster<'a>,
    sites: &Sites<'a>,
    previous: &TerwayRolloutStatus,
    timeout: Option<SignedDuration>,
    now: Timestamp,
) -> Tracked<'a> {
    let (wave, number) = match &previous.wave {
        Some(wave) => (wave.clone(), previous.current_wave),
        None => match adopted_wave(c, sites, now) {
            Some(wave) => (wave, previous.current_wave.max(1)),
            None => return Tracked { number: previous.current_wave, state: WaveState::Done },
        },
    };
    let cloud_nodes: Vec<&NodeInfo<'a>> = wave
        .nodes
        .iter()
        .filter_map(|name| c.nodes.get(name.as_str()))
        .filter(|n| n.role == Role::Cloud)
        .collect();
    let unready: Vec<&'a str> =
        cloud_nodes.iter().filter(|n| !terway_ready(c, n)).map(|n| n.name()).collect();
    let reach = if c.spec.cross_site.gate_waves {
        let ready: Vec<&'a str> =
            cloud_nodes.iter().filter(|n| terway_ready(c, n)).map(|n| n.name()).collect();
        cross_site::pod_reach(sites, &ready)
    } else {
        cross_site::PodReach::default()
    };
    if unready.is_empty() && reach.healthy() {
        return Tracked { number, state: WaveState::Done };
    }
    let mut waiting = unready.clone();
    waiting.extend(reach.pending.iter().chain(&reach.failing).copied());
    let unreached = if reach.healthy() { String::new() } else { reach.describe() };
    let age = now.duration_since(wave.started.0);
    if timeout.is_none_or(|t| age <= t) {
        return Tracked { number, state: WaveState::InProgress { wave, waiting, unreached } };
    }
    let why = if !unready.is_empty() {
        Verdict::new(
            true,
            degraded::WAVE_FAILED,
            format!(
                "wave {number}: Terway is not Ready after {} on {}; the rollout is halted until they recover",
                c.spec.readiness_timeout,
                some_of(&unready, 5)
            ),
        )
    } else {
        Verdict::new(
            true,
            degraded::CROSS_SITE_UNREACHABLE,
            format!(
                "wave {number}: Terway is Ready, but after {} its pods do not reach the on-prem pods ({unreached}); \
                 the rollout is halted until they do (CrossSiteConnectivity names every failing pair)",
                c.spec.readiness_timeout
            ),
        )
    };
    Tracked { number, state: WaveState::Halted { wave, waiting, why } }
}

/// A wave the status lost (its write failed after the gate labels landed),
/// or Terway failing later on a gated node: gated cloud nodes whose Terway
/// is not Ready are adopted as the wave, so they are timed like one.
fn adopted_wave(c: &Cluster, sites: &Sites, now: Timestamp) -> Option<Wave> {
    let mut unready: Vec<String> =
        c.cloud().filter(|n| gated(n) && !terway_ready(c, n)).map(|n| n.name().to_owned()).collect();
    if c.spec.cross_site.gate_waves {
        // gateWaves: a gated node whose pods cannot reach the on-prem pods
        // is as unhealthy as one whose Terway is not Ready.
        let ready: Vec<&str> =
            c.cloud().filter(|n| gated(n) && terway_ready(c, n)).map(|n| n.name()).collect();
        unready.extend(cross_site::failing_pod_probes(sites, &ready).into_iter().map(str::to_owned));
        unready.sort_unstable();
    }
    (!unready.is_empty()).then_some(Wave { nodes: unready, started: Time(now) })
}

/// Why no new gate opens.
enum Hold {
    InvalidSpec(String),
    ManualMode,
    ScenarioUnknown,
    TerwayNotRequired(Scenario),
    PreflightFailed,
    /// Terway's DaemonSet (namespace/name) is not there.
    TerwayNotInstalled(String),
    Paused,
    /// The wave in flight failed (its Degraded verdict).
    Halted(Verdict),
}

impl Hold {
    /// The Progressing verdict it gives.
    fn verdict(&self) -> Verdict {
        let (reason, message) = match self {
            Hold::InvalidSpec(problem) => {
                ("InvalidSpec", format!("{problem}: fix the TerwayRollout; no new gate opens"))
            }
            Hold::ManualMode => (
                "ManualMode",
                "mode is Manual: the controller checks and reports, it opens no gate".to_owned(),
            ),
            Hold::ScenarioUnknown => {
                ("ScenarioUnknown", "the on-prem scenario is not known yet: no gate opens".to_owned())
            }
            Hold::TerwayNotRequired(scenario) => {
                ("TerwayNotRequired", format!("the {scenario} scenario does not need Terway"))
            }
            Hold::PreflightFailed => ("PreflightFailed", "the preflight fails: no new gate opens".to_owned()),
            Hold::TerwayNotInstalled(name) => ("TerwayNotInstalled", format!("{name} is not installed")),
            Hold::Paused => {
                ("Paused", "the rollout is paused: open gates stay open, no new one opens".to_owned())
            }
            Hold::Halted(why) => (why.reason, why.message.clone()),
        };
        Verdict::new(false, reason, message)
    }
}

/// The first thing, in this order, that keeps the rollout from opening a gate.
fn why_held(
    c: &Cluster,
    scenario: Scenario,
    passed: bool,
    invalid: Option<String>,
    wave: &WaveState,
) -> Option<Hold> {
    Some(if let Some(problem) = invalid {
        Hold::InvalidSpec(problem)
    } else if c.spec.mode != Mode::Auto {
        Hold::ManualMode
    } else if scenario == Scenario::Unknown {
        Hold::ScenarioUnknown
    } else if scenario.terway_required() != Some(true) {
        Hold::TerwayNotRequired(scenario)
    } else if !passed {
        Hold::PreflightFailed
    } else if c.terway.is_none() {
        Hold::TerwayNotInstalled(format!("{}/{}", c.spec.terway.namespace, c.spec.terway.daemon_set_name))
    } else if c.spec.paused {
        Hold::Paused
    } else {
        return wave.halt().cloned().map(Hold::Halted);
    })
}

/// The gate requirement Terway's DaemonSet lacks, and the nodes that keep
/// their Terway when it is put back.
struct GateEnforcement<'a> {
    patch: GatePatch,
    /// Cloud nodes where Terway already serves (Ready): their gate opens
    /// with the patch, or the patch would evict their pod networking. A pod
    /// that is not Ready serves nobody yet.
    serving: Vec<&'a str>,
    /// The requirement was there once (a wave ran): someone removed it.
    gate_removed: Option<Verdict>,
}

/// Without the gate requirement Terway goes everywhere its own selector
/// allows, at once: in Auto mode it is enforced whatever else holds the
/// waves back (a failing preflight most of all).
fn enforce_gate<'a>(
    c: &Cluster<'a>,
    scenario: Scenario,
    previous: &TerwayRolloutStatus,
) -> Option<GateEnforcement<'a>> {
    let terway = c.terway?;
    if c.spec.mode != Mode::Auto || scenario.terway_required() != Some(true) || terway_requires_gate(terway) {
        return None;
    }
    let waves_ran = previous.current_wave > 0
        || previous
            .conditions
            .iter()
            .any(|c| c.type_ == condition::PROGRESSING && c.reason == "WaveInProgress");
    Some(GateEnforcement {
        patch: GatePatch {
            namespace: terway.metadata.namespace.clone().unwrap_or_default(),
            name: terway.metadata.name.clone().unwrap_or_default(),
            affinity: affinity::require_gate(affinity::daemon_set_affinity(terway)),
        },
        serving: c.cloud().filter(|n| terway_ready(c, n)).map(|n| n.name()).collect(),
        gate_removed: waves_ran.then(|| {
            Verdict::new(
                true,
                "GateRemoved",
                format!(
                    "{} lost its required {GATE_LABEL}={GATE_OPEN} affinity (reverted by an add-on manager?); \
                     the controller adds it back",
                    qualified(terway)
                ),
            )
        }),
    })
}

/// The cloud nodes the next wave opens: not gated yet, passing their own
/// checks, as many as `maxUnavailable` leaves room for once the gated nodes
/// whose Terway is not Ready are counted (and at most [`MAX_WAVE_NODES`]).
fn next_wave<'a>(c: &Cluster<'a>) -> Vec<&'a str> {
    let unready_gated = c.cloud().filter(|n| gated(n) && !terway_ready(c, n)).count();
    let budget = max_unavailable(&c.spec.max_unavailable, c.cloud().count()).saturating_sub(unready_gated);
    c.cloud()
        .filter(|n| !gated(n) && n.node_checks_pass())
        .map(|n| n.name())
        .take(budget.min(MAX_WAVE_NODES))
        .collect()
}

fn wave_in_progress(number: u32, wave: &Wave, unreached: &str) -> Verdict {
    let waiting = if unreached.is_empty() {
        String::new()
    } else {
        format!("; waiting for their pods to reach the on-prem pods ({unreached})")
    };
    Verdict::new(
        true,
        "WaveInProgress",
        format!("wave {number}: opening the Terway gate on {}{waiting}", some_of(&wave.nodes, 5)),
    )
}
