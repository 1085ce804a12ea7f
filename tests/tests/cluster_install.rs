//! The install of README.md on a real control plane (kube-apiserver, etcd,
//! controller-manager, scheduler, kwok; `scripts/control-plane`): every
//! object of every kustomization is accepted, and each CEL rule of the
//! TerwayRollout CRD is enforced by the real server.
//!
//! `cargo test -p terway-hybrid-testkit --test cluster_install` (builds the
//! control plane first if it is not cached).

use std::process::Stdio;

use terway_hybrid_testkit::control_plane::{readme_install_commands, repo_root};
use terway_hybrid_testkit::ControlPlane;

#[test]
fn the_server_is_the_pinned_kubernetes_and_kubectl_is_its_own() {
    let cp = ControlPlane::shared();
    let version: serde_json::Value =
        serde_json::from_str(&cp.kubectl_ok(&["version", "--output", "json"])).unwrap();
    let server = version["serverVersion"]["gitVersion"].as_str().unwrap_or_default();
    let client = version["clientVersion"]["gitVersion"].as_str().unwrap_or_default();
    assert!(server.starts_with("v1."), "/version must tell the real version (ldflags), got {version}");
    assert_eq!(client, server, "kubectl is built from the same module as the server");
}

#[test]
fn readme_install_is_accepted_whole() {
    let cp = ControlPlane::shared();
    assert!(readme_install_commands().len() >= 3, "{:?}", readme_install_commands());
    cp.install();
    for crd in ["nodenetworkreports.terway-hybrid.io", "terwayrollouts.terway-hybrid.io"] {
        let status = cp.kubectl_ok(&[
            "get",
            "crd",
            crd,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Established')].status}",
        ]);
        assert_eq!(status, "True", "{crd} is Established");
    }
    // Every kustomization of deploy/ is accepted by the server: the one README
    // ran for real, the others through a server-side dry run (admission,
    // schemas and CEL included) so the shared cluster keeps one install.
    let deploy = repo_root().join("deploy");
    for dir in ["overlays/ack-one-registered", "overlays/plain", "base", "monitoring", "."] {
        let out = cp.kubectl_ok(&["apply", "--dry-run=server", "-k", deploy.join(dir).to_str().unwrap()]);
        assert!(!out.trim().is_empty(), "deploy/{dir} applied nothing");
    }
    // What README installed is all there, object by object.
    let rendered =
        cp.kubectl_ok(&["kustomize", deploy.join("overlays/ack-one-registered").to_str().unwrap()]);
    let mut objects = 0;
    for doc in rendered.split("\n---\n") {
        let value: serde_json::Value = yaml_serde::from_str(doc).unwrap();
        let kind = value["kind"].as_str().unwrap();
        let name = value["metadata"]["name"].as_str().unwrap();
        let mut args = vec!["get", kind, name, "-o", "name"];
        if let Some(ns) = value["metadata"]["namespace"].as_str() {
            args.extend(["--namespace", ns]);
        }
        cp.kubectl_ok(&args);
        objects += 1;
    }
    assert!(objects > 15, "the overlay renders the whole product, got {objects} objects");
    // The agents' DaemonSet and the controller's Deployment exist and the
    // rollout is the overlay's.
    let mode = cp.kubectl_ok(&["get", "terwayrollout", "default", "-o", "jsonpath={.spec.mode}"]);
    assert_eq!(mode, "Manual", "the overlay ships in Manual mode");
}

/// Submits `yaml` with a server-side dry run: `create` for a new object,
/// or `apply --server-side` over the installed one. Returns the error text
/// when the server rejected it.
fn submit(cp: &ControlPlane, verb: &str, yaml: &str) -> Result<(), String> {
    let mut cmd = cp.kubectl();
    match verb {
        "create" => cmd.args(["create", "--dry-run=server", "-f", "-"]),
        _ => cmd.args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "cel-test",
            "--dry-run=server",
            "-f",
            "-",
        ]),
    };
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn rollout(name: &str, spec: &str) -> String {
    format!("apiVersion: terway-hybrid.io/v1alpha1\nkind: TerwayRollout\nmetadata:\n  name: {name}\nspec:\n{spec}\n")
}

#[test]
fn each_terwayrollout_cel_rule_is_enforced_by_the_server() {
    let cp = ControlPlane::shared();
    cp.install();
    // (rule, spec the server must reject, spec it must accept, words of the rejection)
    let cases = [
        ("maxUnavailable as a count", "  maxUnavailable: 0", "  maxUnavailable: 3", "maxUnavailable"),
        (
            "maxUnavailable as a percentage",
            "  maxUnavailable: \"0%\"",
            "  maxUnavailable: \"25%\"",
            "maxUnavailable",
        ),
        (
            "maxUnavailable over 100%",
            "  maxUnavailable: \"101%\"",
            "  maxUnavailable: \"100%\"",
            "maxUnavailable",
        ),
        (
            "cloudNodeSelector",
            "  cloudNodeSelector: {}",
            "  cloudNodeSelector: {alibabacloud.com/external: \"true\"}",
            "cloudNodeSelector cannot be empty",
        ),
        ("ignoreChecks", "  ignoreChecks: [NoSuchCheck]", "  ignoreChecks: [RamSecret, all]", "ignoreChecks"),
        (
            "readinessTimeout",
            "  readinessTimeout: 10 minutes",
            "  readinessTimeout: 1h30m",
            "readinessTimeout",
        ),
        ("readinessTimeout empty", "  readinessTimeout: \"\"", "  readinessTimeout: 90s", "readinessTimeout"),
        // Seconds that overflow i64, and out of the 1s-24h range.
        (
            "readinessTimeout overflow",
            "  readinessTimeout: 2562047788015216h",
            "  readinessTimeout: 24h",
            "readinessTimeout",
        ),
        (
            "readinessTimeout over 24h",
            "  readinessTimeout: 24h1s",
            "  readinessTimeout: 1s",
            "readinessTimeout",
        ),
        ("readinessTimeout zero", "  readinessTimeout: 0s", "  readinessTimeout: 1440m", "readinessTimeout"),
    ];
    for (rule, bad, good, words) in cases {
        // Validation runs before storage, so a rejected create of `default`
        // fails on the rule, not on the existing object.
        let err = submit(cp, "create", &rollout("default", bad)).expect_err(rule);
        assert!(err.contains(words), "{rule}: expected a rejection mentioning {words:?}, got: {err}");
        submit(cp, "apply", &rollout("default", good))
            .unwrap_or_else(|e| panic!("{rule}: {good} rejected: {e}"));
    }
    // The name rule: only `default` is read by the controller.
    let err = submit(cp, "create", &rollout("other", "  mode: Manual")).expect_err("name rule");
    assert!(err.contains("only reads the TerwayRollout named default"), "{err}");
    submit(cp, "apply", &rollout("default", "  mode: Manual")).expect("default is accepted");
}
