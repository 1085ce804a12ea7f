//! `terway-hybrid status [--watch]`: the TerwayRollout `default` as the
//! controller reports it (scenario, conditions, current wave, node counts),
//! and every node (role, scenario, plugin, preflight, gate, Terway pod).
//!
//! Conditions and the wave come from the rollout's status when the
//! controller has written one; otherwise they are computed here with the
//! same plan the controller runs, and the output says so. The GATE column
//! is the node's actual `terway-hybrid.io/terway-gate` label.

use super::term::{paint, GREEN, RED, YELLOW};
use super::{
    human_duration, parse_duration, print_structured, table, CliError, Outcome, OutputFormat, Source, Term,
};
use crate::pure::plan::NodeRow;
use crate::pure::view::ClusterView;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;
use terway_hybrid_api::rollout::{
    condition, Mode, NodeCounts, Wave, GATE_LABEL, GATE_OPEN, PREFLIGHT_LABEL, SCENARIO_LABEL,
};
use terway_hybrid_api::text::printable;
use terway_hybrid_api::Scenario;

#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// Read the cluster from a dump instead of the live API.
    #[arg(long, value_name = "PATH")]
    pub from_dump: Option<PathBuf>,
    /// Keep watching: print the status again whenever it changes (Ctrl-C stops).
    #[arg(short, long)]
    pub watch: bool,
    /// How often --watch polls.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpecSummary {
    /// TerwayRollout `default` exists.
    pub exists: bool,
    pub mode: Mode,
    pub paused: bool,
    pub max_unavailable: IntOrString,
    pub readiness_timeout: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub rollout: RolloutSpecSummary,
    /// `controller`: conditions and wave as the controller wrote them;
    /// `computed`: the controller has written no status, computed here.
    pub source: &'static str,
    pub scenario: Scenario,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terway_required: Option<bool>,
    pub conditions: Vec<Condition>,
    pub current_wave: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wave: Option<Wave>,
    pub counts: NodeCounts,
    pub nodes: Vec<NodeRow>,
}

/// The status of a view: the controller's when it wrote one, else computed
/// with the plan at `now` (then no wave is in progress: the controller
/// has started none, and the gate count is the nodes' actual labels).
pub fn report(view: &ClusterView, now: Timestamp) -> StatusReport {
    let plan = crate::pure::plan::plan(view, now);
    let rollout = view.rollout.as_ref();
    let spec = rollout.map(|r| r.spec.clone()).unwrap_or_default();
    let written =
        rollout.and_then(|r| r.status.clone()).filter(|s| s.scenario.is_some() || !s.conditions.is_empty());
    // The node's labels as they are, not as the plan wants them. A map,
    // not a scan of every node per node: 20,000 nodes stay milliseconds.
    let labels: HashMap<&str, &BTreeMap<String, String>> = view
        .nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, n.metadata.labels.as_ref()?)))
        .collect();
    let nodes: Vec<NodeRow> = plan
        .nodes
        .iter()
        .map(|r| {
            let now = labels.get(r.name.as_str());
            let kept: Vec<(String, String)> = [SCENARIO_LABEL, PREFLIGHT_LABEL, GATE_LABEL]
                .iter()
                .filter_map(|&key| Some((key.to_owned(), now?.get(key)?.clone())))
                .collect();
            let gate = kept.iter().any(|(k, v)| k == GATE_LABEL && v == GATE_OPEN);
            NodeRow { gate, labels: kept, ..r.clone() }
        })
        .collect();
    let (source, status) = match written {
        Some(s) => ("controller", s),
        None => {
            let mut s = plan.status.clone();
            s.wave = None;
            s.current_wave = 0;
            s.nodes.gated = nodes.iter().filter(|n| n.gate).count() as u32;
            ("computed", s)
        }
    };
    StatusReport {
        rollout: RolloutSpecSummary {
            exists: rollout.is_some(),
            mode: spec.mode,
            paused: spec.paused,
            max_unavailable: spec.max_unavailable,
            readiness_timeout: spec.readiness_timeout,
        },
        source,
        scenario: status.scenario.unwrap_or(plan.scenario),
        terway_required: status.terway_required.or(plan.terway_required),
        conditions: status.conditions,
        current_wave: status.current_wave,
        wave: status.wave,
        counts: status.nodes,
        nodes,
    }
}

fn int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// The status as text (colours only when `color`).
pub fn render_table(r: &StatusReport, color: bool) -> String {
    let mut out = String::new();
    let mode = match r.rollout.mode {
        Mode::Auto => "Auto",
        Mode::Manual => "Manual",
    };
    if r.rollout.exists {
        out.push_str(&format!(
            "TerwayRollout default: mode {mode}, maxUnavailable {}, readinessTimeout {}{}\n",
            printable(&int_or_string(&r.rollout.max_unavailable)),
            printable(&r.rollout.readiness_timeout),
            if r.rollout.paused { ", paused" } else { "" }
        ));
    } else {
        out.push_str(
            "TerwayRollout default does not exist (is the controller installed?): defaults assumed\n",
        );
    }
    if r.source == "computed" {
        out.push_str("(the controller has written no status: conditions computed here from the cluster)\n");
    }
    let required = match r.terway_required {
        Some(true) => "Terway required on cloud nodes",
        Some(false) => "Terway not needed: the overlay reaches cloud nodes",
        None => "cannot tell whether Terway is needed",
    };
    out.push_str(&format!("Scenario: {} ({required})\n", r.scenario));
    match &r.wave {
        Some(w) => out.push_str(&format!(
            "Wave: {} ({}; started {})\n",
            r.current_wave,
            printable(&w.nodes.join(", ")),
            w.started.0
        )),
        None => out.push_str(&format!("Wave: {} (none in progress)\n", r.current_wave)),
    }
    let c = &r.counts;
    out.push_str(&format!(
        "Nodes: {} ({} on-prem, {} cloud), {} reported, {} pass their checks, {} gated, Terway Ready on \
         {}\n\n",
        c.total, c.on_prem, c.cloud, c.reported, c.preflight_passed, c.gated, c.terway_ready
    ));
    let rows: Vec<Vec<String>> = r
        .conditions
        .iter()
        .map(|c| vec![c.type_.clone(), c.status.clone(), c.reason.clone(), c.message.clone()])
        .collect();
    let painter = |row: &[String], col: usize, padded: &str| -> String {
        if col != 1 {
            return padded.to_owned();
        }
        // Degraded=True is the bad one; for the others True is good.
        let degraded = row.first().is_some_and(|t| t == condition::DEGRADED);
        let code = match (degraded, row.get(1).map(String::as_str)) {
            (true, Some("True")) => RED,
            (true, _) | (false, Some("True")) => GREEN,
            _ => YELLOW,
        };
        paint(color, code, padded)
    };
    let conditions = table(&["CONDITION", "STATUS", "REASON", "MESSAGE"], &rows, &painter);
    out.push_str(&conditions);
    out.push('\n');
    let rows: Vec<Vec<String>> = r.nodes.iter().map(NodeRow::cells).collect();
    let painter = |row: &[String], col: usize, padded: &str| -> String {
        match (col, row.get(col).map(String::as_str).unwrap_or("")) {
            (4, "failed") | (6, "NotReady") => paint(color, RED, padded),
            (4, "passed") | (6, "Ready") => paint(color, GREEN, padded),
            _ => padded.to_owned(),
        }
    };
    out.push_str(&table(&NodeRow::HEADER, &rows, &painter));
    out
}

fn render(r: &StatusReport, format: OutputFormat, color: bool) -> Result<String, CliError> {
    Ok(match format {
        OutputFormat::Table => render_table(r, color),
        _ => {
            let mut buf = Vec::new();
            print_structured(&mut buf, format, r)?;
            String::from_utf8_lossy(&buf).into_owned()
        }
    })
}

pub async fn run(source: &Source, args: &StatusArgs, term: &mut Term<'_>) -> Result<Outcome, CliError> {
    if args.watch && source.is_dump() {
        return Err(CliError::Usage(
            "--watch follows the live cluster: it cannot be used with --from-dump".into(),
        ));
    }
    // Computed conditions are stamped with the time the command started, so
    // that --watch prints only real changes.
    let now = Timestamp::now();
    let first = render(&report(&source.view().await?, now), args.output, term.color)?;
    term.out.write_all(first.as_bytes())?;
    if !args.watch {
        return Ok(Outcome::Ok);
    }
    let start = tokio::time::Instant::now();
    let mut last = first;
    loop {
        term.out.flush()?;
        tokio::time::sleep(args.interval.max(Duration::from_millis(100))).await;
        let text = match source.view().await {
            Ok(view) => render(&report(&view, now), args.output, term.color)?,
            Err(e) => {
                term.warn(&format!("{e}; retrying"))?;
                continue;
            }
        };
        if text == last {
            continue;
        }
        if term.color && args.output == OutputFormat::Table {
            // A terminal: redraw in place.
            write!(term.out, "\x1b[H\x1b[2J")?;
        } else {
            writeln!(term.out, "--- after {}", human_duration(start.elapsed()))?;
        }
        term.out.write_all(text.as_bytes())?;
        last = text;
    }
}
