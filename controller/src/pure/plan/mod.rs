//! plan: the pure core of the controller and of `terway-hybrid preflight`.
//!
//! `plan(&ClusterView, now) -> Plan` decides everything: the cluster scenario,
//! every cluster check, the labels each node should carry, which cloud nodes
//! the next rollout wave opens the Terway gate on, the TerwayRollout status
//! and the Events its condition changes deserve. It reads nothing but its
//! arguments, so the same view always gives the same plan.

mod rollout;

use crate::pure::address_plan;
use crate::pure::checks;
use crate::pure::cluster::{pod_ready, Cluster, NodeInfo};
use crate::pure::cni_fix::{self, Target};
use crate::pure::cross_site::{self, Sites};
use crate::pure::view::ClusterView;
use k8s_openapi::api::core::v1::Affinity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rollout::terway_ready;
use serde::Serialize;
use terway_hybrid_api::rollout::{condition, NodeCounts, Remediate, GATE_LABEL, GATE_OPEN};
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

/// One node, as the plan sees it and wants it (`preflight`), or as it is
/// now (`status`: `gate` and `labels` are the node's labels now).
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
    let rollout = rollout::rollout(&c, &sites, &previous, scenario, passed, now);
    let remediations = remediations(&c, &all_checks);

    let nodes: Vec<NodeRow> = c.nodes.values().map(|n| node_row(&c, n, scenario, &rollout.gates)).collect();

    let generation = view.rollout.as_ref().and_then(|r| r.metadata.generation);
    let degraded = (rollout.degraded.clone())
        .unwrap_or_else(|| Verdict::new(false, "AsExpected", "nothing is wrong with the rollout"));
    let verdicts = [
        (condition::SCENARIO_DETECTED, scenario_detected(scenario, &all_checks)),
        (condition::PREFLIGHT_PASSED, preflight_passed(&all_checks)),
        (condition::PROGRESSING, rollout.progressing.clone()),
        (condition::AVAILABLE, available(&c, scenario)),
        (condition::DEGRADED, degraded),
    ];
    let conditions = conditions(&previous.conditions, verdicts, generation, now);
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

/// One node as the plan sees it, and the labels it should carry.
fn node_row(c: &Cluster, n: &NodeInfo, scenario: Scenario, gates: &[&str]) -> NodeRow {
    let status = n.current_report().and_then(|r| r.status.as_ref());
    // `gates` is sorted: a search, not a scan per node (quadratic on big clusters).
    let gate = gates.binary_search(&n.name()).is_ok();
    let preflight = n.node_checks_pass();
    // A node whose agent has not reported yet (no report, or one
    // whose status is not written yet: an agent applies the
    // identity first) gets no labels: it would be labelled `failed`
    // now and again once its verdict lands, a second write per node
    // for nothing (a gated node keeps its gate whatever happens to
    // its report).
    let mut labels = Vec::new();
    if n.report.is_some_and(|r| r.status.is_some()) || gate {
        labels.push((terway_hybrid_api::rollout::SCENARIO_LABEL.to_owned(), scenario.as_str().to_owned()));
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
const MAX_READINESS_TIMEOUT: SignedDuration = SignedDuration::from_hours(24);

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

/// A condition's status, reason and message, as one decision gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Verdict {
    fn new(status: bool, reason: &'static str, message: impl Into<String>) -> Verdict {
        Verdict { status, reason, message: message.into() }
    }
}

fn scenario_detected(scenario: Scenario, checks: &[CheckResult]) -> Verdict {
    if scenario != Scenario::Unknown {
        return Verdict::new(true, "Detected", format!("the on-prem network is {scenario}"));
    }
    let consistent = checks.iter().find(|c| c.name == terway_hybrid_api::CheckName::ScenarioConsistent);
    Verdict::new(false, "ScenarioUnknown", consistent.map(|c| c.message.clone()).unwrap_or_default())
}

fn preflight_passed(checks: &[CheckResult]) -> Verdict {
    let failing: Vec<&str> = checks.iter().filter(|c| c.is_blocking()).map(|c| c.name.as_str()).collect();
    if failing.is_empty() {
        Verdict::new(true, "AllChecksPass", "every cluster check passes")
    } else {
        Verdict::new(false, "ChecksFailed", format!("failing: {}", failing.join(", ")))
    }
}

fn available(c: &Cluster, scenario: Scenario) -> Verdict {
    let cloud = c.cloud().count();
    let ready_cloud =
        c.cloud().filter(|n| n.label(GATE_LABEL) == Some(GATE_OPEN) && terway_ready(c, n)).count();
    match scenario.terway_required() {
        Some(false) => Verdict::new(true, "TerwayNotRequired", "overlay: the CNI reaches cloud nodes"),
        _ if cloud == 0 => Verdict::new(false, "NoCloudNodes", "no cloud node joined yet"),
        _ if ready_cloud == cloud => {
            Verdict::new(true, "AllCloudNodesReady", format!("Terway is Ready on all {cloud} cloud nodes"))
        }
        _ => Verdict::new(
            false,
            "CloudNodesPending",
            format!("Terway is Ready on {ready_cloud} of {cloud} cloud nodes"),
        ),
    }
}

/// The verdicts as `metav1.Condition`s, sorted by type: the transition time
/// moves only when the status does.
fn conditions(
    previous: &[Condition],
    verdicts: [(&str, Verdict); 5],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = verdicts
        .into_iter()
        .map(|(type_, verdict)| {
            let status = if verdict.status { "True" } else { "False" };
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == type_ && p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: verdict.reason.to_owned(),
                message: verdict.message,
                last_transition_time,
                observed_generation: generation,
            }
        })
        .collect();
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
