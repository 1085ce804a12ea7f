//! Monitoring in deploy/: the Grafana dashboard and the alert rules query
//! only metrics the binaries register (names from their metrics
//! registries, label values from their metrics modules), the ConfigMap and
//! PrometheusRule carry the committed files, and `promtool` checks and
//! unit-tests the rules.
//!
//! Needs `kubectl` (>= 1.27, kustomize v5) and `promtool` (Debian's
//! `prometheus`); a missing one fails the test with how to install it.

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use terway_hybrid_agent::metrics::{Metrics as AgentMetrics, REPORT_WRITE_RESULTS};
use terway_hybrid_controller::daemon::metrics::{Metrics as ControllerMetrics, NODE_STATES};
use terway_hybrid_testkit::control_plane::repo_root;
use terway_hybrid_testkit::manifests::{first_difference, read, rendering, WITH_MONITORING};
use terway_hybrid_testkit::require_program;

fn yaml_file(relative: &str) -> Value {
    yaml_serde::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: bad YAML: {e}"))
}

fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/monitoring/grafana-dashboard.json"))
        .unwrap_or_else(|e| panic!("deploy/monitoring/grafana-dashboard.json is not JSON: {e}"))
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}

fn alert_rules() -> Vec<Value> {
    let rules = yaml_file("deploy/monitoring/rules.yaml");
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Metric names (`terway_hybrid_...`) in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("terway_hybrid_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// Values a label matcher `label="v"` / `label=~"a|b"` asks for.
fn matcher_values(expr: &str, label: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in expr.match_indices(&format!("{label}=")) {
        let boundary = expr[..i].chars().last().is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        if !boundary {
            continue;
        }
        let rest = expr[i + label.len() + 1..].trim_start_matches('~');
        if let Some(value) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
            out.extend(value.split('|').map(str::to_owned));
        }
    }
    out
}

/// The metric families the binaries register (their metrics registries),
/// by name, with their label names.
fn exported_metrics() -> BTreeMap<String, Vec<String>> {
    let collectors =
        AgentMetrics::new().collectors().into_iter().chain(ControllerMetrics::new().collectors());
    let names: BTreeMap<String, Vec<String>> = collectors
        .flat_map(|c| {
            c.desc().into_iter().map(|d| (d.fq_name.clone(), d.variable_labels.clone())).collect::<Vec<_>>()
        })
        .filter(|(name, _)| name.starts_with("terway_hybrid_"))
        .collect();
    assert!(names.len() >= 10, "too few metric families in the registries: {names:?}");
    names
}

fn assert_exported(exprs: &[String], what: &str) {
    let exported = exported_metrics();
    // The values the binaries give these labels.
    let label_values = [("state", &NODE_STATES[..]), ("result", &REPORT_WRITE_RESULTS[..])];
    let roles = [terway_hybrid_api::Role::Cloud.as_str(), terway_hybrid_api::Role::OnPrem.as_str()];
    for expr in exprs {
        for name in metric_names(expr) {
            let base =
                ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
            assert!(
                exported.contains_key(&name) || exported.contains_key(base),
                "{what}: {name} is not a metric the binaries export ({exported:?}), in: {expr}"
            );
        }
        for (label, values) in label_values {
            for value in matcher_values(expr, label) {
                assert!(
                    values.contains(&value.as_str()),
                    "{what}: no metric has {label}=\"{value}\", in: {expr}"
                );
            }
        }
        for value in matcher_values(expr, "role") {
            assert!(roles.contains(&value.as_str()), "{what}: role=\"{value}\" is not a role, in: {expr}");
        }
    }
}

#[test]
fn the_dashboard_parses_and_queries_only_exported_metrics() {
    let dash = dashboard();
    assert!(dash["title"].is_string() && dash["panels"].is_array(), "a Grafana dashboard");
    let mut exprs = Vec::new();
    collect_exprs(&dash, &mut exprs);
    assert!(exprs.len() >= 10, "the dashboard has queries: {exprs:?}");
    assert_exported(&exprs, "grafana-dashboard.json");
    let text = exprs.join("\n");
    for needed in [
        "terway_hybrid_agent_scenario_info",
        "terway_hybrid_agent_check_passed",
        "terway_hybrid_controller_check_passed",
        "terway_hybrid_controller_nodes",
        "terway_hybrid_controller_rollout_wave",
    ] {
        assert!(text.contains(needed), "the dashboard shows {needed}");
    }
    for panel in dash["panels"].as_array().expect("panels") {
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "panel {} uses the datasource variable",
                panel["title"]
            );
        }
    }
    for dir in WITH_MONITORING {
        let cm = rendering(dir).one::<ConfigMap>("terway-hybrid-dashboard");
        let labels = cm.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("grafana_dashboard").map(String::as_str),
            Some("1"),
            "{dir}: the sidecar's label"
        );
        let data = cm.data.clone().unwrap_or_default();
        let embedded: Value =
            serde_json::from_str(data.get("terway-hybrid.json").expect("the dashboard key")).expect("JSON");
        assert_eq!(embedded, dash, "{dir}: the ConfigMap carries grafana-dashboard.json");
    }
}

#[test]
fn the_alert_rules_query_only_exported_metrics() {
    let rules = alert_rules();
    assert!(rules.len() >= 5, "the alerts: {rules:?}");
    let exprs: Vec<String> = rules.iter().map(|r| r["expr"].as_str().expect("an expr").to_owned()).collect();
    assert_exported(&exprs, "rules.yaml");
    for rule in &rules {
        assert!(rule["labels"]["severity"].is_string(), "{}: a severity", rule["alert"]);
        assert!(rule["annotations"]["summary"].is_string(), "{}: a summary", rule["alert"]);
    }
}

#[test]
fn the_prometheus_rule_is_rules_yaml() {
    let rules = yaml_file("deploy/monitoring/rules.yaml");
    for dir in WITH_MONITORING {
        let prometheus_rules = rendering(dir).untyped("monitoring.coreos.com/v1", "PrometheusRule");
        assert_eq!(prometheus_rules.len(), 1, "{dir}");
        if let Some(d) = first_difference(&prometheus_rules[0]["spec"], &rules, "spec") {
            panic!("{dir}: PrometheusRule terway-hybrid and deploy/monitoring/rules.yaml differ: {d}");
        }
    }
}

#[test]
fn promtool_checks_and_unit_tests_the_alert_rules() {
    let promtool = require_program("promtool", "prometheus");
    let dir = repo_root().join("deploy/monitoring");
    for args in [["check", "rules", "rules.yaml"], ["test", "rules", "rules-test.yaml"]] {
        let out = Command::new(&promtool).args(args).current_dir(&dir).output().expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every alert has a unit test that expects it to fire.
    let tests = read("deploy/monitoring/rules-test.yaml");
    for rule in alert_rules() {
        let name = rule["alert"].as_str().expect("an alert name");
        assert!(tests.contains(&format!("alertname: {name}")), "rules-test.yaml does not test {name}");
    }
}
