//! The operator's story on a real control plane: the controller (two
//! replicas, a real Lease) and the CLI against the same server, with the
//! real DaemonSet controller, scheduler and kwok doing what they do.
//!
//! 1. A BGP cluster with calico-node on every node: the preflight fails the
//!    same way in the controller's status, `terway-hybrid preflight` live,
//!    and `preflight --from-dump` on `terway-hybrid dump` of the server.
//!    The address plan is there too, for `CIDROverlap` (a Calico IPPool of
//!    a stand-in CRD, flannel's ConfigMap, the ServiceCIDR the API server
//!    makes, the cloud reports' `status.cloudNetwork`): all three read it
//!    alike, to the word.
//! 2. `fix calico-affinity --yes` (its server-side dry run, then the apply):
//!    the DaemonSet controller takes calico-node off the cloud nodes.
//! 3. `ram-secret create` makes the Secret; the preflight passes.
//! 4. `install` with a stand-in onectl on PATH calls it only once the
//!    preflight passes, in the documented order.
//! 5. In the audit log the controller met no 403, the CLI met none, and the
//!    controller used the rules of its ClusterRole and Roles this story
//!    exercises.
//!
//! `cargo test -p terway-hybrid-controller --test cluster_operator` as root.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::{json, Value};
use terway_hybrid_testkit::cluster::{
    cloud_status, daemonset, granted_rules, json_of, used_rules, Cluster, ENI_CONFIG,
};
use terway_hybrid_testkit::wait_for_described;

const CONTROLLER: &str = env!("CARGO_BIN_EXE_terway-hybrid-controller");
const CLI: &str = env!("CARGO_BIN_EXE_terway-hybrid");

/// The checks of a preflight as (name, status, reason), from the CLI's JSON
/// or the rollout's status.
fn verdicts(checks: &Value) -> BTreeSet<(String, String, String)> {
    checks
        .as_array()
        .unwrap_or_else(|| panic!("checks: {checks}"))
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("name"), s("status"), s("reason"))
        })
        .collect()
}

/// Calico's IPPool CRD, a stand-in of ours (the same group, version, kind,
/// scope and `spec.cidr`): the real one ships in Calico's manifests.
const IPPOOL_CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  \
    name: ippools.crd.projectcalico.org\nspec:\n  group: crd.projectcalico.org\n  scope: Cluster\n  names:\n    \
    plural: ippools\n    singular: ippool\n    kind: IPPool\n    listKind: IPPoolList\n  \
    versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        \
    type: object\n        properties:\n          spec:\n            type: object\n            \
    x-kubernetes-preserve-unknown-fields: true\n";

/// flannel's ConfigMap as kube-flannel.yml ships it (a leftover here: its
/// network is apart from Calico's pool).
const FLANNEL_CONFIG: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kube-flannel-cfg\n  \
    namespace: kube-flannel\ndata:\n  net-conf.json: |\n    {\"Network\": \"10.200.0.0/16\", \
    \"Backend\": {\"Type\": \"vxlan\"}}\n  cni-conf.json: |\n    {\"name\": \"cbr0\"}\n";

/// The CIDROverlap verdict of a preflight: (status, reason, message).
fn cidr_overlap(checks: &Value) -> (String, String, String) {
    let c = checks
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == "CIDROverlap"))
        .unwrap_or_else(|| panic!("no CIDROverlap in {checks}"));
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    (s("status"), s("reason"), s("message"))
}

fn failing(checks: &Value) -> BTreeSet<String> {
    verdicts(checks).into_iter().filter(|(_, status, _)| status == "fail").map(|(name, _, _)| name).collect()
}

#[test]
fn operator_story_preflight_fix_secret_install() {
    terway_hybrid_testkit::require_root();
    let mut cluster = Cluster::new();
    // kwok nodes have no agents: answer the controller's probe targets as
    // healthy agents would (CrossSiteConnectivity wants their results).
    cluster.answer_probes();
    let cp = cluster.cp;
    let (onprem, cloud) = cluster.add_sites(3, 2);
    cluster.apply(ENI_CONFIG);
    // The address plan CIDROverlap reads (the ServiceCIDR `kubernetes` is
    // the API server's own, from --service-cluster-ip-range).
    cluster.apply(IPPOOL_CRD);
    cp.kubectl_ok(&[
        "wait",
        "--for",
        "condition=Established",
        "--timeout",
        "60s",
        "crd/ippools.crd.projectcalico.org",
    ]);
    cluster.apply(
        "apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata:\n  name: default-ipv4-ippool\nspec:\n  \
         cidr: 10.244.0.0/16\n  ipipMode: Never\n  natOutgoing: true\n",
    );
    cluster.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-flannel\n");
    cluster.apply(FLANNEL_CONFIG);
    for n in &cloud {
        let mut status = cloud_status();
        status["cloudNetwork"] = json!({"vpcCidr": "172.16.0.0/12", "vswitchCidrs": ["172.16.1.0/24"]});
        cluster.report(n, status);
    }
    // calico-node as the manifest ships it: on every Linux node.
    cluster.apply(&daemonset("kube-system", "calico-node", ""));
    let all: BTreeSet<String> = onprem.iter().chain(&cloud).cloned().collect();
    wait_for_described(
        "calico-node pods on every node (DaemonSet controller, scheduler, kwok)",
        Duration::from_secs(60),
        || (cluster.nodes_with_pods("kube-system", "calico-node").is_superset(&all)).then_some(()),
        || cluster.nodes_with_pods("kube-system", "calico-node"),
    );
    // The rollout singleton is removed so the controller creates it (its
    // `create` rule), as on a cluster installed without the overlay's.
    cp.kubectl_ok(&["delete", "terwayrollout", "default", "--ignore-not-found"]);

    let a = cluster.start_controller(CONTROLLER, "replica-a");
    let b = cluster.start_controller(CONTROLLER, "replica-b");
    let logs = [&a, &b];
    let rollout = cluster.wait_condition("PreflightPassed", "False", None, Duration::from_secs(90), &logs);
    let lease = cluster.get(&["lease", "terway-hybrid-controller", "--namespace", "terway-hybrid"]);
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap_or_default();
    assert!(holder == "replica-a" || holder == "replica-b", "one replica holds the Lease: {lease}");
    // It labels the nodes.
    wait_for_described(
        "every node labelled with the scenario",
        Duration::from_secs(60),
        || {
            all.iter()
                .all(|n| {
                    cluster.get(&["node", n])["metadata"]["labels"]["terway-hybrid.io/scenario"] == "bgp"
                })
                .then_some(())
        },
        || {
            cluster.get(&["nodes"])["items"]
                .as_array()
                .map(|i| i.iter().map(|n| n["metadata"]["labels"].clone()).collect::<Vec<_>>())
        },
    );

    // 1. The same failing preflight three ways.
    let live = cluster.cli(CLI, &["preflight", "-o", "json"], None, None);
    assert_eq!(live.status.code(), Some(1), "{}", String::from_utf8_lossy(&live.stderr));
    let live = json_of(&String::from_utf8_lossy(&live.stdout));
    assert_eq!(live["scenario"], "bgp");
    let expected_failures: BTreeSet<String> =
        ["OnPremCNIExcludedFromCloud", "RamSecret"].iter().map(|s| s.to_string()).collect();
    assert_eq!(failing(&live["checks"]), expected_failures, "{live:#}");
    let (status, reason, message) = cidr_overlap(&live["checks"]);
    assert_eq!((status.as_str(), reason.as_str()), ("pass", "Disjoint"), "{message}");
    for compared in [
        "172.16.0.0/12 (VPC)",
        "172.16.1.0/24 (vSwitch)",
        "10.244.0.0/16 (Calico pool)",
        "10.200.0.0/16 (flannel network)",
        "10.96.0.0/16 (Service range)",
    ] {
        assert!(message.contains(compared), "CIDROverlap compared no {compared}: {message}");
    }
    let dump = cluster.work.path().join("cluster.yaml");
    let out = cluster.cli(CLI, &["dump", "-o", dump.to_str().unwrap()], None, None);
    assert!(out.status.success(), "dump: {}", String::from_utf8_lossy(&out.stderr));
    let offline =
        cluster.cli(CLI, &["preflight", "--from-dump", dump.to_str().unwrap(), "-o", "json"], None, None);
    assert_eq!(offline.status.code(), Some(1), "{}", String::from_utf8_lossy(&offline.stderr));
    let offline = json_of(&String::from_utf8_lossy(&offline.stdout));
    assert_eq!(verdicts(&offline["checks"]), verdicts(&live["checks"]), "dump and live disagree");
    assert_eq!(cidr_overlap(&offline["checks"]), cidr_overlap(&live["checks"]), "dump and live disagree");
    let dumped = std::fs::read_to_string(&dump).unwrap();
    for kept in ["kind: IPPool", "kind: ServiceCIDR", "name: kube-flannel-cfg", "vpcCidr: 172.16.0.0/12"] {
        assert!(dumped.contains(kept), "the dump lacks {kept}");
    }
    assert!(!dumped.contains("cbr0"), "the dump keeps only the CNI ConfigMap keys the check reads");
    assert_eq!(offline["nodes"], live["nodes"], "dump and live disagree on nodes");
    let rollout = wait_for_described(
        "the controller's preflight to match the CLI's",
        Duration::from_secs(30),
        || {
            let r = cluster.rollout()?;
            let same = verdicts(&r["status"]["checks"]) == verdicts(&live["checks"])
                && cidr_overlap(&r["status"]["checks"]) == cidr_overlap(&live["checks"]);
            same.then_some(r)
        },
        || (rollout.clone(), live.clone()),
    );
    assert_eq!(rollout["status"]["scenario"], "bgp");

    // 2. The affinity fix, for real: dry run on the server, then applied.
    let fix = cluster.cli(CLI, &["fix", "calico-affinity", "--yes"], None, None);
    assert!(
        fix.status.success(),
        "fix: {}\n{}",
        String::from_utf8_lossy(&fix.stdout),
        String::from_utf8_lossy(&fix.stderr)
    );
    // Its requests, under the CLI's field manager: a server-side dry run of
    // the patch, then the patch.
    let patches: Vec<String> = cp
        .audit_events()
        .into_iter()
        .filter(|e| e.resource == "daemonsets" && e.name == "calico-node" && e.verb == "patch")
        .filter(|e| e.uri.split(['?', '&']).any(|param| param == "fieldManager=terway-hybrid"))
        .map(|e| e.uri)
        .collect();
    assert_eq!(patches.len(), 2, "one dry run and one apply: {patches:?}");
    assert!(
        patches[0].contains("dryRun=All") && !patches[1].contains("dryRun"),
        "dry run first: {patches:?}"
    );
    let onprem_set: BTreeSet<String> = onprem.iter().cloned().collect();
    wait_for_described(
        "the DaemonSet controller to take calico-node off the cloud nodes",
        Duration::from_secs(90),
        || (cluster.nodes_with_pods("kube-system", "calico-node") == onprem_set).then_some(()),
        || cluster.nodes_with_pods("kube-system", "calico-node"),
    );

    // 4a. install refuses while the preflight fails (no Secret yet), and
    // never calls onectl.
    let bin = cluster.work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = cluster.work.path().join("onectl-calls");
    let onectl = bin.join("onectl");
    std::fs::write(&onectl, format!("#!/bin/sh\necho \"$*\" >> {}\n", calls.display())).unwrap();
    std::fs::set_permissions(&onectl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let refused = cluster.cli(CLI, &["install", "--yes"], Some(&bin), None);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "install with a failing preflight: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!calls.exists(), "onectl was called before the preflight passed");

    // 3. The Secret.
    let id = cluster.work.path().join("id");
    let secret = cluster.work.path().join("secret");
    std::fs::write(&id, "LTAI5tQ9xkV3mZ2pR7wYb1Ce\n").unwrap();
    std::fs::write(&secret, "Zq8Hn3Lr6Tv1Xw4Ya7Bc0De2Fg5Hj9\n").unwrap();
    let out = cluster.cli(
        CLI,
        &[
            "ram-secret",
            "create",
            "--access-key-id-file",
            id.to_str().unwrap(),
            "--access-key-secret-file",
            secret.to_str().unwrap(),
            "--yes",
        ],
        None,
        None,
    );
    assert!(out.status.success(), "ram-secret create: {}", String::from_utf8_lossy(&out.stderr));
    let created = cluster.get(&["secret", "alibaba-addon-secret", "--namespace", "kube-system"]);
    assert!(created["data"]["access-key-id"].is_string() && created["data"]["access-key-secret"].is_string());
    for output in [&out.stdout, &out.stderr] {
        assert!(
            !String::from_utf8_lossy(output).contains("Zq8Hn3Lr6Tv1Xw4Ya7Bc0De2Fg5Hj9"),
            "the secret was printed"
        );
    }

    // The preflight passes, live and in the controller.
    let passed = cluster.cli(CLI, &["preflight", "-o", "json"], None, None);
    assert_eq!(passed.status.code(), Some(0), "{}", String::from_utf8_lossy(&passed.stdout));
    cluster.wait_condition("PreflightPassed", "True", None, Duration::from_secs(60), &logs);

    // 4b. install calls onectl, in the documented order.
    let out = cluster.cli(CLI, &["install", "--yes"], Some(&bin), None);
    assert!(
        out.status.success(),
        "install: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let recorded = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        recorded.lines().collect::<Vec<_>>(),
        ["ram-user grant --addon terway-eniip", "addon install terway-eniip"],
        "onectl calls"
    );

    // 5. No 403 for the controller or the CLI, and the rules used.
    let requests = cluster.controller_requests();
    assert!(!requests.is_empty());
    let denied: Vec<_> = requests.iter().filter(|e| e.code == 403).collect();
    assert!(denied.is_empty(), "the controller met 403s: {denied:#?}");
    let cli_denied: Vec<_> = cp
        .audit_events()
        .into_iter()
        .filter(|e| {
            e.user_agent.contains("terway-hybrid")
                && !e.user.starts_with("system:serviceaccount")
                && e.code == 403
        })
        .collect();
    assert!(cli_denied.is_empty(), "the CLI met 403s: {cli_denied:#?}");
    // Every rule RBAC grants the controller is used by this story, but
    // those listed here, each with the test that uses it on a real server.
    let used = used_rules(&requests);
    let elsewhere: BTreeSet<(String, String)> = [
        // cluster_custom_names: the controller fixes the on-prem CNI's
        // affinity itself (`remediate: Apply`).
        ("daemonsets", "patch"),
        // cluster_tigera: Installation default, with the Tigera operator's
        // CRD installed, gets the fix.
        ("installations", "watch"),
        ("installations", "patch"),
        // cluster_tigera: kube's event recorder patches an Event when the
        // same one repeats (a series).
        ("events", "patch"),
        // cluster_admission: in `Auto` the leader fills in the Terway gate's
        // webhook; this story stays `Manual`, whose empty configuration the
        // leader reads back (`get`) and leaves as shipped.
        ("mutatingwebhookconfigurations", "patch"),
    ]
    .iter()
    .map(|(r, v)| ((*r).to_owned(), (*v).to_owned()))
    .collect();
    let granted = granted_rules(cp, "terway-hybrid", "terway-hybrid-controller");
    let unused: Vec<_> = granted.difference(&used).filter(|r| !elsewhere.contains(*r)).collect();
    assert!(unused.is_empty(), "rules of the controller this story never used: {unused:?}\nused: {used:?}");
    drop(b);
    drop(a);
}
