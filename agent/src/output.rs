//! Rendering for `detect --output text|json`.

use std::fmt::Write;
use terway_hybrid_api::{CheckStatus, NodeDetection, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn render(d: &NodeDetection, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(d).expect("a detection serializes") + "\n",
        Format::Text => text(d),
    }
}

fn text(d: &NodeDetection) -> String {
    let det = &d.detection;
    let mut out = String::new();
    let _ = writeln!(out, "scenario:   {}", det.scenario);
    let _ = writeln!(out, "plugin:     {}", det.plugin);
    let _ = writeln!(out, "confidence: {}", det.confidence);
    let _ = writeln!(out, "kernel:     {}", d.kernel_version);
    let _ = writeln!(out, "evidence:");
    for e in &det.evidence {
        let _ = writeln!(out, "  - [{}] {}", e.signal, e.detail);
    }
    if !det.stale.is_empty() {
        let _ = writeln!(out, "stale (discounted):");
        for e in &det.stale {
            let _ = writeln!(out, "  - [{}] {}", e.signal, e.detail);
        }
    }
    let _ = writeln!(out, "checks:");
    for c in &d.checks {
        let mark = match (c.status, c.severity) {
            (CheckStatus::Pass, _) => "PASS",
            (CheckStatus::Skip, _) => "SKIP",
            (CheckStatus::Fail, Severity::Error) => "ERROR",
            (CheckStatus::Fail, Severity::Warning) => "WARNING",
        };
        let _ = writeln!(out, "  [{mark} {}] {}: {}", c.name, c.reason, c.message);
    }
    out
}

/// `s` safe for a terminal: control characters (escape sequences included)
/// become `\u{..}` escapes. For text that comes from the node or a peer.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() })
            .collect(),
    )
}
