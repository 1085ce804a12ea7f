//! Rendering of a preflight for people (kubeadm-style table) and scripts (JSON).

use crate::plan::{NodeRow, Plan};
use std::borrow::Cow;
use std::fmt::Write;
use terway_hybrid_api::{CheckStatus, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// `text` safe to print on a terminal: control characters (C0, DEL, C1:
/// escape sequences, cursor moves, bells) and the Unicode bidirectional
/// controls (which reorder what is shown) become visible `\x1b`,
/// `\u{202e}`. Every string from the cluster or a node goes through it
/// before text output prints it (JSON and YAML escape them already).
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c as u32 {
            _ if !unsafe_char(c) => out.push(c),
            n @ 0..=0xff => {
                let _ = write!(out, "\\x{n:02x}");
            }
            n => {
                let _ = write!(out, "\\u{{{n:x}}}");
            }
        }
    }
    Cow::Owned(out)
}

fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_become_visible() {
        assert_eq!(printable("node-1"), "node-1");
        assert!(matches!(printable("ok"), Cow::Borrowed(_)));
        assert_eq!(printable("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(
            printable("t\x1b]0;pwned\x07\n\r\t\x7f\u{9b}"),
            "t\\x1b]0;pwned\\x07\\x0a\\x0d\\x09\\x7f\\x9b"
        );
        assert_eq!(printable("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(printable("日本\u{2066}"), "日本\\u{2066}");
    }
}
