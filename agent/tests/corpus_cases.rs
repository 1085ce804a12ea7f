//! `classify` on the corpus of real node states (agent/tests/corpus/cases):
//! every case as the thread shows it, and again without the signals we had
//! to add. See docs/corpus.md for the list and the score.

use terway_hybrid_agent::checks::NodeContext;
use terway_hybrid_api::{Confidence, NodeDetection, NodeSnapshot, Plugin};
use terway_hybrid_testkit::corpus;
use terway_hybrid_testkit::corpus::{Case, Expect};

fn detect(s: &NodeSnapshot) -> NodeDetection {
    terway_hybrid_agent::detect(s, &NodeContext::default())
}

fn check(case: &Case, d: &NodeDetection, want: &Expect, full: bool) -> Result<(), String> {
    let det = &d.detection;
    let got = Expect { scenario: det.scenario, plugin: det.plugin, confidence: det.confidence };
    if got != *want {
        return Err(format!("got {got}, want {want}"));
    }
    if full {
        for signal in &case.evidence {
            if !det.evidence.iter().any(|e| e.signal == *signal) {
                return Err(format!("no {signal:?} evidence"));
            }
        }
        for text in &case.stale {
            if !det.stale.iter().any(|e| e.detail.contains(text.as_str())) {
                return Err(format!("the stale list lacks {text:?}"));
            }
        }
        if case.stale.is_empty() && !det.stale.is_empty() && !case.evidence.iter().any(|e| e == "stale-ok") {
            return Err(format!("unexpected stale entries: {:?}", det.stale));
        }
    }
    Ok(())
}

#[test]
fn every_corpus_case_classifies_as_its_thread_says() {
    let cases = corpus::load_all();
    let mut failures = Vec::new();
    for case in &cases {
        let d = detect(&case.snapshot(true));
        if let Err(why) = check(case, &d, &case.expect, true) {
            failures.push(format!("{} ({}): {why}\n{}", case.file, case.source, pretty(&d)));
        }
        if let Some(want) = &case.without_added {
            let d = detect(&case.snapshot(false));
            if let Err(why) = check(case, &d, want, false) {
                failures.push(format!("{} without its added signals: {why}\n{}", case.file, pretty(&d)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// An expectation never encodes a wrong answer: it names the thread's
/// plugin, or (for an ambiguous thread, or without an added signal the
/// answer needs) says `unknown` or low confidence. Never another plugin.
#[test]
fn expectations_agree_with_the_ground_truth() {
    for case in corpus::load_all() {
        assert!(
            case.agrees(&case.expect),
            "{}: expects {} but the thread says {:?}",
            case.file,
            case.expect,
            case.truth
        );
        if let Some(w) = &case.without_added {
            // Canal's datapath is flannel's VXLAN: without canal's config that is what shows.
            let same_datapath = case.truth == Some(Plugin::Canal) && w.plugin == Plugin::FlannelVxlan;
            let honest = case.agrees(w)
                || same_datapath
                || w.plugin == Plugin::Unknown
                || w.confidence == Confidence::Low;
            assert!(honest, "{}: without its added signals expects {w}, a confident wrong answer", case.file);
            assert!(
                w.confidence <= case.expect.confidence || w.plugin != case.expect.plugin,
                "{}: added signals never lower confidence",
                case.file
            );
        }
    }
}

#[test]
fn the_corpus_is_large_and_varied() {
    let cases = corpus::load_all();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), cases.len(), "case ids are unique");
    for c in &cases {
        assert_eq!(format!("{}.txt", c.id), c.file, "the file is named after the id");
        assert!(c.source.contains('#') || c.source.contains("http"), "{}: the source names a thread", c.file);
    }
}

/// docs/corpus.md lists every case, so users see what has been tried.
#[test]
fn the_docs_list_every_case() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/corpus.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for c in corpus::load_all() {
        assert!(doc.contains(&format!("`{}`", c.id)), "docs/corpus.md does not list {}", c.id);
    }
}

fn pretty(d: &NodeDetection) -> String {
    serde_json::to_string_pretty(&d.detection).unwrap_or_default()
}

/// The score table of docs/corpus.md (`cargo test --test corpus_cases
/// score -- --nocapture` prints it): what each case classifies as now.
#[test]
fn score() {
    let cases = corpus::load_all();
    let mut rows = Vec::new();
    let mut tally = std::collections::BTreeMap::<&str, usize>::new();
    for c in &cases {
        let d = detect(&c.snapshot(true)).detection;
        let got = Expect { scenario: d.scenario, plugin: d.plugin, confidence: d.confidence };
        let score = c.score(&got);
        *tally.entry(score).or_default() += 1;
        let without = c.without_added.map(|_| {
            let d = detect(&c.snapshot(false)).detection;
            format!("{} {}", d.plugin, d.confidence)
        });
        rows.push(format!(
            "| `{}` | {} | {} | {} | {} {} | {} | {} |",
            c.id,
            c.cni,
            c.mode,
            if c.netns { "netns + snapshot" } else { "snapshot" },
            got.plugin,
            got.confidence,
            without.as_deref().unwrap_or("-"),
            score
        ));
        assert_ne!(score, "wrong", "{}: {got}", c.file);
    }
    eprintln!("{}\n\n{tally:?} of {}", rows.join("\n"), cases.len());
}
