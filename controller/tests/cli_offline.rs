//! The `terway-hybrid` binary on the shipped example dumps and generated
//! ones: exit codes, output shapes, bad input, the affinity fix computed
//! offline, the RAM policy, status, and the kubectl plugin name.

mod cli_bin;

use cli_bin::{run_bin_with, Run};
use serde_json::Value;
use std::collections::BTreeSet;
use terway_hybrid_testkit::example_dir;

const PLUGIN_BIN: &str = env!("CARGO_BIN_EXE_kubectl-terway_hybrid");

/// Runs the binary with nothing added: no environment, stdin closed.
fn run_bin(args: &[&str]) -> Run {
    run_bin_with(args, &[], None)
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

fn dump(name: &str) -> String {
    example_dir(name).display().to_string()
}

#[test]
fn preflight_exit_codes_on_every_example() {
    for (name, code) in [
        ("overlay-pass", 0),
        ("overlay-fail", 1),
        ("bgp-pass", 0),
        ("bgp-fail", 1),
        ("host-network-pass", 0),
        ("host-network-fail", 1),
    ] {
        let run = run_bin(&["preflight", "--from-dump", &dump(name)]);
        assert_eq!(run.code, code, "{name}: {run}");
        let verdict = if code == 0 { "Preflight passed." } else { "Preflight failed" };
        assert!(run.stdout.contains(verdict), "{name}: {run}");
        assert!(!run.stdout.contains("\x1b["), "no colour without a terminal: {run}");
    }
}

#[test]
fn preflight_json_shape() {
    let run = run_bin(&["preflight", "--from-dump", &dump("bgp-fail"), "-o", "json"]);
    assert_eq!(run.code, 1, "{run}");
    let v = run.json();
    for key in ["scenario", "terwayRequired", "passed", "checks", "nodes"] {
        assert!(v.get(key).is_some(), "no {key} in {v}");
    }
    assert_eq!(v["scenario"], "bgp");
    assert_eq!(v["passed"], false);
    assert_eq!(v["terwayRequired"], true);
    let failing: BTreeSet<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail" && c["severity"] == "error")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failing, BTreeSet::from(["OnPremCNIExcludedFromCloud", "RamSecret"]));
    for c in v["checks"].as_array().unwrap() {
        for key in ["name", "severity", "status", "reason", "message"] {
            assert!(c.get(key).is_some(), "check without {key}: {c}");
        }
    }
    assert_eq!(v["nodes"].as_array().unwrap().len(), 5);

    // YAML says the same.
    let yaml = run_bin(&["preflight", "--from-dump", &dump("bgp-fail"), "-o", "yaml"]);
    assert_eq!(yaml.code, 1, "{yaml}");
    let from_yaml: Value = yaml_serde::from_str(&yaml.stdout).expect("YAML");
    assert_eq!(from_yaml["checks"], v["checks"]);
}

#[test]
fn ignored_checks_turn_into_warnings() {
    let run = run_bin(&[
        "preflight",
        "--from-dump",
        &dump("bgp-fail"),
        "--ignore-preflight-errors",
        "OnPremCNIExcludedFromCloud,RamSecret",
    ]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("[WARNING RamSecret]"), "{run}");
    let all =
        run_bin(&["preflight", "--from-dump", &dump("host-network-fail"), "--ignore-preflight-errors=all"]);
    assert_eq!(all.code, 0, "{all}");
}

#[test]
fn bad_usage_exits_2() {
    for (args, says) in [
        (vec!["preflight", "--from-dump", "/nonexistent/dump"], "no such file or directory"),
        (
            vec!["preflight", "--from-dump", "EX", "--ignore-preflight-errors", "RamSecrt"],
            "unknown check \"RamSecrt\"",
        ),
        (vec!["preflight", "--from-dump", "EX", "--wait"], "--wait polls the live cluster"),
        (vec!["preflight", "--from-dump", "EX", "-o", "xml"], "invalid value"),
        (vec!["status", "--from-dump", "EX", "--watch"], "--watch follows the live cluster"),
        (
            vec!["fix", "cni-affinity", "--from-dump", "EX", "--daemonset", "calico-node"],
            "expected NAMESPACE/NAME",
        ),
        (vec!["fix", "cni-affinity", "--from-dump", "EX", "--daemonset", "kube-system/nope"], "not found"),
        (vec!["preflight", "--timeout", "ten minutes", "--wait"], "not a duration"),
        (vec!["no-such-command"], "unrecognized subcommand"),
    ] {
        let ex = dump("bgp-fail");
        let args: Vec<&str> = args.iter().map(|a| if *a == "EX" { ex.as_str() } else { a }).collect();
        let run = run_bin(&args);
        assert_eq!(run.code, 2, "{args:?}: {run}");
        assert!(run.stderr.contains(says), "{args:?} should say {says:?}: {run}");
        assert_eq!(run.stderr.trim().lines().filter(|l| l.starts_with("error")).count(), 1, "{run}");
    }
}

#[test]
fn no_kubeconfig_is_one_clear_line() {
    let run = run_bin(&["preflight"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.starts_with("error: no usable Kubernetes configuration"), "{run}");
    assert!(run.stderr.contains("--from-dump"), "{run}");
}

#[test]
fn an_unreachable_api_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    // Port 1 on loopback: nothing listens there.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\n\
         contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: abc\n",
    )
    .unwrap();
    let k = kubeconfig.display().to_string();
    for args in [vec!["preflight"], vec!["status"], vec!["fix", "calico-affinity", "--dry-run"], vec!["dump"]]
    {
        let mut full = vec!["--kubeconfig", k.as_str()];
        full.extend(args.iter());
        let run = run_bin(&full);
        assert_eq!(run.code, 2, "{args:?}: {run}");
        assert!(run.stderr.starts_with("error: cannot reach the Kubernetes API"), "{args:?}: {run}");
        assert_eq!(run.stderr.trim().lines().count(), 1, "{run}");
    }
}

#[test]
fn a_dump_that_does_not_parse_names_file_and_document() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Node\nmetadata:\n  name: [b\n",
    )
    .unwrap();
    let run = run_bin(&["preflight", "--from-dump", &file.display().to_string()]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains(&file.display().to_string()), "names the file: {run}");
    assert!(run.stderr.contains("document 2"), "names the document: {run}");
    assert_eq!(run.stderr.trim().lines().count(), 1, "{run}");

    let json = dir.path().join("nodes.json");
    std::fs::write(&json, r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Node","metadata":{"name":"x"}},{"apiVersion":"v1","kind":"Node","metadata":{"name":1}}]}"#).unwrap();
    for args in [vec!["preflight"], vec!["status"], vec!["ram-secret", "check"], vec!["install", "--yes"]] {
        let mut full = args.clone();
        let path = json.display().to_string();
        full.extend(["--from-dump", path.as_str()]);
        let run = run_bin(&full);
        assert_eq!(run.code, 2, "{args:?}: {run}");
        assert!(run.stderr.contains("nodes.json: document 1: items[1]"), "{args:?}: {run}");
    }
}

#[test]
fn a_generated_dump_directory() {
    // bgp-fail with calico-node fixed and the Secret added: it passes.
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.yaml", "nodenetworkreports.json", "nodes.json", "pods.json"] {
        std::fs::copy(example_dir("bgp-fail").join(f), dir.path().join(f)).unwrap();
    }
    let mut ds: Value = serde_json::from_str(
        &std::fs::read_to_string(example_dir("bgp-fail").join("daemonsets.json")).unwrap(),
    )
    .unwrap();
    for item in ds["items"].as_array_mut().unwrap() {
        if item["metadata"]["name"] == "calico-node" {
            item["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                ["nodeSelectorTerms"][0]["matchExpressions"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"key": "alibabacloud.com/external", "operator": "NotIn", "values": ["true"]}));
        }
    }
    std::fs::write(dir.path().join("daemonsets.json"), serde_json::to_string(&ds).unwrap()).unwrap();
    let d = dir.path().display().to_string();
    let run = run_bin(&["preflight", "--from-dump", &d, "-o", "json"]);
    assert_eq!(run.code, 1, "still no Secret: {run}");
    let fix = run_bin(&["fix", "calico-affinity", "--from-dump", &d]);
    assert_eq!(fix.code, 0, "{fix}");
    assert!(fix.stdout.contains("kept off cloud nodes already: nothing to do"), "{fix}");
    std::fs::write(
        dir.path().join("secret.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: alibaba-addon-secret\n  namespace: kube-system\ndata:\n  \
         access-key-id: <redacted:24>\n  access-key-secret: <redacted:30>\n",
    )
    .unwrap();
    // The fixed affinity keeps new pods off, but bgp-fail's calico-node pods
    // still run on the cloud nodes until they are deleted.
    let run = run_bin(&["preflight", "--from-dump", &d]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stdout.contains("OnPremCNIRunsOnCloudNodes") && run.stdout.contains("calico-node-cloud-1"),
        "{run}"
    );
    let pods_file = dir.path().join("pods.json");
    let mut pods: Value = serde_json::from_str(&std::fs::read_to_string(&pods_file).unwrap()).unwrap();
    pods["items"]
        .as_array_mut()
        .unwrap()
        .retain(|p| !p["metadata"]["name"].as_str().is_some_and(|n| n.starts_with("calico-node-cloud")));
    std::fs::write(&pods_file, serde_json::to_string(&pods).unwrap()).unwrap();
    let run = run_bin(&["preflight", "--from-dump", &d]);
    assert_eq!(run.code, 0, "{run}");
}

fn every_term_excludes_cloud(affinity: &Value) -> usize {
    let terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"]
        .as_array()
        .expect("required terms");
    assert!(!terms.is_empty());
    for term in terms {
        let has = term["matchExpressions"].as_array().unwrap().iter().any(|e| {
            e["key"] == "alibabacloud.com/external"
                && e["operator"] == "NotIn"
                && e["values"] == serde_json::json!(["true"])
        });
        assert!(has, "a term without the exclusion: {term}");
    }
    terms.len()
}

#[test]
fn fix_dry_run_json_on_a_dump() {
    let run = run_bin(&[
        "fix",
        "cni-affinity",
        "--from-dump",
        &dump("bgp-fail"),
        "--daemonset",
        "kube-system/calico-node",
        "--dry-run",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 0, "{run}");
    let v = run.json();
    assert_eq!(v["kind"], "DaemonSet");
    assert_eq!(v["metadata"]["namespace"], "kube-system");
    assert_eq!(v["metadata"]["name"], "calico-node");
    every_term_excludes_cloud(&v["spec"]["template"]["spec"]["affinity"]);
    // The existing requirement is kept, ANDed.
    let first = &v["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"][0];
    assert_eq!(first["key"], "kubernetes.io/os");
    // The diff, the verification and the restart warning go to stderr.
    assert!(run.stderr.contains("+      - key: alibabacloud.com/external"), "{run}");
    assert!(run.stderr.contains("verified against 5 nodes"), "{run}");
    assert!(run.stderr.contains("restarts calico-node on every node"), "{run}");
    assert!(run.stderr.contains("maxUnavailable 1"), "{run}");
    assert!(run.stderr.contains("not applied: this ran on a dump"), "{run}");

    // calico-affinity finds the same DaemonSet; the table output carries the diff.
    let calico = run_bin(&["fix", "calico-affinity", "--from-dump", &dump("bgp-fail")]);
    assert_eq!(calico.code, 0, "{calico}");
    assert!(
        calico.stdout.contains("--- daemonset kube-system/calico-node spec.template.spec.affinity (now)"),
        "{calico}"
    );
    assert!(
        calico.stdout.contains("+        - 'true'") || calico.stdout.contains("+        - \"true\""),
        "{calico}"
    );
}

#[test]
fn fix_with_several_terms_ands_into_each() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.yaml", "nodenetworkreports.json", "nodes.json", "pods.json"] {
        std::fs::copy(example_dir("bgp-fail").join(f), dir.path().join(f)).unwrap();
    }
    let mut ds: Value = serde_json::from_str(
        &std::fs::read_to_string(example_dir("bgp-fail").join("daemonsets.json")).unwrap(),
    )
    .unwrap();
    for item in ds["items"].as_array_mut().unwrap() {
        if item["metadata"]["name"] == "calico-node" {
            item["spec"]["template"]["spec"]["affinity"] = serde_json::json!({"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]},
                {"matchExpressions": [{"key": "node-role.kubernetes.io/edge", "operator": "Exists"}]}
            ]}}});
        }
    }
    std::fs::write(dir.path().join("daemonsets.json"), serde_json::to_string(&ds).unwrap()).unwrap();
    let run = run_bin(&[
        "fix",
        "cni-affinity",
        "--from-dump",
        &dir.path().display().to_string(),
        "--daemonset",
        "kube-system/calico-node",
        "--dry-run",
        "-o",
        "yaml",
    ]);
    assert_eq!(run.code, 0, "{run}");
    let v: Value = yaml_serde::from_str(&run.stdout).unwrap();
    assert_eq!(every_term_excludes_cloud(&v["spec"]["template"]["spec"]["affinity"]), 2);
}

#[test]
fn fix_refuses_what_would_lose_an_on_prem_node() {
    // A custom cloud selector the label-based exclusion cannot express:
    // onprem-3 counts as a cloud node, so the fix would still admit it.
    let dir = tempfile::tempdir().unwrap();
    for f in ["daemonsets.json", "nodenetworkreports.json", "nodes.json", "pods.json"] {
        std::fs::copy(example_dir("bgp-fail").join(f), dir.path().join(f)).unwrap();
    }
    let config = std::fs::read_to_string(example_dir("bgp-fail").join("config.yaml")).unwrap();
    let config = config.replace(
        "  mode: Auto\n",
        "  mode: Auto\n  cloudNodeSelector:\n    kubernetes.io/hostname: onprem-3\n",
    );
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let run = run_bin(&["fix", "calico-affinity", "--from-dump", &dir.path().display().to_string()]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("refusing to apply"), "{run}");
    assert!(run.stderr.contains("onprem-3"), "{run}");
}

#[test]
fn ram_policy_has_exactly_the_actions() {
    let run = run_bin(&["ram-policy"]);
    assert_eq!(run.code, 0, "{run}");
    let v = run.json();
    assert_eq!(v["Version"], "1");
    let statements = v["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0]["Effect"], "Allow");
    assert_eq!(statements[0]["Resource"], serde_json::json!(["*"]));
    let actions: Vec<&str> =
        statements[0]["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let expected = [
        "ecs:CreateNetworkInterface",
        "ecs:DescribeNetworkInterfaces",
        "ecs:AttachNetworkInterface",
        "ecs:DetachNetworkInterface",
        "ecs:DeleteNetworkInterface",
        "ecs:DescribeInstanceAttribute",
        "ecs:AssignPrivateIpAddresses",
        "ecs:UnassignPrivateIpAddresses",
        "ecs:DescribeInstances",
        "ecs:ModifyNetworkInterfaceAttribute",
        "vpc:DescribeVSwitches",
    ];
    assert_eq!(actions.len(), expected.len(), "no duplicates: {actions:?}");
    assert_eq!(
        actions.iter().copied().collect::<BTreeSet<_>>(),
        expected.into_iter().collect::<BTreeSet<_>>()
    );
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 2, "only Version and Statement: {keys:?}");
}

#[test]
fn ram_secret_check_on_dumps() {
    let ok = run_bin(&["ram-secret", "check", "--from-dump", &dump("bgp-pass"), "-o", "json"]);
    assert_eq!(ok.code, 0, "{ok}");
    let v = ok.json();
    assert_eq!(v["exists"], true);
    assert_eq!(v["keys"]["access-key-id"]["nonEmpty"], true);
    assert_eq!(v["keys"]["access-key-secret"]["format"], "unchecked");
    let missing = run_bin(&["ram-secret", "check", "--from-dump", &dump("bgp-fail")]);
    assert_eq!(missing.code, 1, "{missing}");
    assert!(missing.stdout.contains("does not exist"), "{missing}");
}

#[test]
fn status_on_a_dump() {
    let run = run_bin(&["status", "--from-dump", &dump("bgp-pass")]);
    assert_eq!(run.code, 0, "{run}");
    for s in [
        "TerwayRollout default: mode Auto",
        "Scenario: bgp",
        "CONDITION",
        "PreflightPassed",
        "NODE",
        "onprem-1",
    ] {
        assert!(run.stdout.contains(s), "{s}: {run}");
    }
    let json = run_bin(&["status", "--from-dump", &dump("bgp-pass"), "-o", "json"]);
    assert_eq!(json.code, 0, "{json}");
    let v = json.json();
    assert_eq!(v["scenario"], "bgp");
    assert_eq!(v["rollout"]["exists"], true);
    assert_eq!(v["source"], "computed");
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 5);
    for n in nodes {
        for key in ["name", "role", "preflight", "gate", "labels"] {
            assert!(n.get(key).is_some(), "{key}: {n}");
        }
    }
    let types: BTreeSet<&str> =
        v["conditions"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        BTreeSet::from(["Available", "Degraded", "PreflightPassed", "Progressing", "ScenarioDetected"])
    );
}

#[test]
fn the_kubectl_plugin_binary_is_the_same_cli() {
    let out = std::process::Command::new(PLUGIN_BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Usage: kubectl terway-hybrid"), "{help}");
    let out = std::process::Command::new(PLUGIN_BIN)
        .args(["preflight", "--from-dump", &dump("bgp-pass")])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    // The plain binary still calls itself terway-hybrid.
    let run = run_bin_with(&["--help"], &[], None);
    assert!(run.stdout.contains("Usage: terway-hybrid"), "{run}");
}
