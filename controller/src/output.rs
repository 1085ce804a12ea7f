//! Rendering of a preflight for people (kubeadm-style table) and scripts (JSON).

use crate::plan::{NodeRow, Plan};
use std::fmt::Write;
use terway_hybrid_api::{CheckStatus, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// One rule for agent and CLI alike: every string from the cluster or a
/// node goes through it before text output prints it.
pub use terway_hybrid_api::text::printable;

pub fn render(plan: &Plan, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(plan).expect("a plan serializes") + "\n",
        Format::Table => table(plan),
    }
}

fn table(plan: &Plan) -> String {
    let mut out = String::new();
    let required = match plan.terway_required {
        Some(true) => "Terway required on cloud nodes",
        Some(false) => "Terway not needed: the overlay reaches cloud nodes",
        None => "cannot tell whether Terway is needed",
    };
    let _ = writeln!(out, "Scenario: {} ({required})", plan.scenario);
    for c in &plan.checks {
        let tag = match (c.status, c.severity) {
            (CheckStatus::Pass, _) => format!("[PASS {}]", c.name),
            (CheckStatus::Skip, _) => format!("[SKIP {}]", c.name),
            (CheckStatus::Fail, Severity::Error) => format!("[ERROR {}]", c.name),
            (CheckStatus::Fail, Severity::Warning) => format!("[WARNING {}]", c.name),
        };
        let _ = writeln!(out, "{tag} {}: {}", printable(&c.reason), printable(&c.message));
    }
    if !plan.nodes.is_empty() {
        let _ = writeln!(out);
        let rows: Vec<[String; 7]> =
            plan.nodes.iter().map(|n| NodeRow::cells(n).map(|c| printable(&c).into_owned())).collect();
        let header = NodeRow::HEADER;
        let widths: Vec<usize> = (0..7)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
            .collect();
        let line = |cells: Vec<&str>| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let _ = writeln!(out, "{}", line(header.to_vec()));
        for r in &rows {
            let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
        }
    }
    let _ = writeln!(out);
    let failing: Vec<&str> =
        plan.checks.iter().filter(|c| c.is_blocking()).map(|c| c.name.as_str()).collect();
    if failing.is_empty() {
        let _ = writeln!(out, "Preflight passed.");
    } else {
        let _ = writeln!(
            out,
            "Preflight failed: {} check(s) failed. To ignore them: --ignore-preflight-errors={}",
            failing.len(),
            failing.join(",")
        );
    }
    out
}
