//! Rendering for `detect --output text|json`.

use crate::text::printable;
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

/// Node-derived strings (file names, plugin types, link names, the kernel
/// release) go through [`printable`]: a file named with an escape sequence
/// must not drive the reader's terminal. JSON escapes them already.
fn text(d: &NodeDetection) -> String {
    let det = &d.detection;
    let mut out = String::new();
    let _ = writeln!(out, "scenario:   {}", det.scenario);
    let _ = writeln!(out, "plugin:     {}", det.plugin);
    let _ = writeln!(out, "confidence: {}", det.confidence);
    let _ = writeln!(out, "kernel:     {}", printable(&d.kernel_version));
    if let Some(mtu) = d.pod_mtu {
        let _ = writeln!(out, "pod MTU:    {mtu}");
    }
    if let Some(n) = &d.cloud_network {
        let vpc = n.vpc_cidr.as_deref().unwrap_or("-");
        let vswitches = if n.vswitch_cidrs.is_empty() { "-".to_owned() } else { n.vswitch_cidrs.join(", ") };
        let _ = writeln!(out, "cloud:      VPC {}, vSwitch {}", printable(vpc), printable(&vswitches));
    }
    let _ = writeln!(out, "evidence:");
    for e in &det.evidence {
        let _ = writeln!(out, "  - [{}] {}", printable(&e.signal), printable(&e.detail));
    }
    if !det.stale.is_empty() {
        let _ = writeln!(out, "stale (discounted):");
        for e in &det.stale {
            let _ = writeln!(out, "  - [{}] {}", printable(&e.signal), printable(&e.detail));
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
        let _ = writeln!(out, "  [{mark} {}] {}: {}", c.name, printable(&c.reason), printable(&c.message));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use terway_hybrid_api::{CheckName, CheckResult, Confidence, Detection, Evidence, Plugin};

    fn hostile() -> NodeDetection {
        let esc = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m\u{202e}";
        NodeDetection {
            detection: Detection {
                scenario: Plugin::CalicoBgp.scenario(),
                plugin: Plugin::CalicoBgp,
                confidence: Confidence::High,
                evidence: vec![Evidence::new(
                    "cni-config",
                    format!("10-{esc}.conflist (plugins: calico{esc})"),
                )],
                stale: vec![Evidence::new("stale-device", format!("tunl{esc} is down"))],
            },
            checks: vec![CheckResult::fail(
                CheckName::IPForwarding,
                Severity::Error,
                "Unreadable",
                format!("x{esc}\ny"),
            )],
            kernel_version: format!("5.10{esc}"),
            bgp_peers: vec![],
            pod_mtu: None,
            cloud_network: None,
        }
    }

    /// Every line of the text output is free of control characters; JSON
    /// keeps the strings as they are (escaped by JSON itself).
    #[test]
    fn text_output_cannot_drive_a_terminal() {
        let d = hostile();
        let text = render(&d, Format::Text);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n' || ('\u{202a}'..='\u{202e}').contains(&c)),
            "{text:?}"
        );
        assert_eq!(text.lines().count(), 10, "an embedded newline starts no line of its own:\n{text}");
        assert!(text.contains("kernel:     5.10\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u{202e}\n"), "{text}");
        let json = render(&d, Format::Json);
        assert!(!json.contains('\u{1b}'));
        assert_eq!(serde_json::from_str::<NodeDetection>(&json).unwrap(), d);
    }
}
