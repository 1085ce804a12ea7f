//! The Tigera operator's path on a real control plane, and the controller's
//! Events when a condition comes back.
//!
//! calico-node in `calico-system`, owned by `Installation default`: with
//! `onPremCNI.remediate: Apply` the controller must put the exclusion into
//! the Installation (the operator would revert a patch of the DaemonSet),
//! not into the DaemonSet. The test then plays the operator, rendering the
//! Installation's affinity into calico-node, and the DaemonSet controller
//! takes calico-node off the cloud nodes: only then does the preflight pass.
//!
//! The Installation CRD is a stand-in of ours (the same group, version,
//! kind, scope and the `spec.calicoNodeDaemonSet` path the controller
//! writes): the real one ships in the `github.com/tigera/operator` module,
//! which the Go module proxy does not serve.
//!
//! Then eni-config goes, comes back and goes again: the second
//! `PreflightPassed=False` is the same Event as the first, which the event
//! recorder counts by patching it (a series), not by creating another.
//!
//! Together these use the controller's RBAC rules that no other story
//! reaches: `installations` watch and patch, `events` patch.
//!
//! `cargo test -p terway-hybrid-controller --test cluster_tigera` as root.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use terway_hybrid_testkit::cluster::{daemonset, managers, used_rules, Cluster, ADDON_SECRET, ENI_CONFIG};
use terway_hybrid_testkit::wait_for_described;

const CONTROLLER: &str = env!("CARGO_BIN_EXE_terway-hybrid-controller");

const INSTALLATION_CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  \
    name: installations.operator.tigera.io\nspec:\n  group: operator.tigera.io\n  scope: Cluster\n  names:\n    \
    plural: installations\n    singular: installation\n    kind: Installation\n    listKind: InstallationList\n  \
    versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        \
    type: object\n        properties:\n          spec:\n            type: object\n            \
    x-kubernetes-preserve-unknown-fields: true\n          status:\n            type: object\n            \
    x-kubernetes-preserve-unknown-fields: true\n    subresources: {status: {}}\n";

#[test]
fn the_fix_goes_to_the_installation_and_a_repeated_event_is_a_series() {
    terway_hybrid_testkit::require_root();
    let mut cluster = Cluster::new();
    // kwok nodes have no agents: answer the controller's probe targets as
    // healthy agents would (CrossSiteConnectivity wants their results).
    cluster.answer_probes();
    let cp = cluster.cp;
    let (onprem, _cloud) = cluster.add_sites(2, 2);
    cluster.apply(ENI_CONFIG);
    cluster.apply(ADDON_SECRET);

    cluster.apply(INSTALLATION_CRD);
    cp.kubectl_ok(&[
        "wait",
        "--for",
        "condition=Established",
        "--timeout",
        "60s",
        "crd/installations.operator.tigera.io",
    ]);
    cluster.apply(
        "apiVersion: operator.tigera.io/v1\nkind: Installation\nmetadata:\n  name: default\nspec:\n  \
         variant: Calico\n  calicoNetwork:\n    bgp: Enabled\n",
    );
    let installation_uid =
        cluster.get(&["installation", "default"])["metadata"]["uid"].as_str().unwrap().to_owned();
    cluster.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: calico-system\n");
    // calico-node as the operator renders it: owned by the Installation, on
    // every node (nothing keeps it off the cloud nodes yet).
    let owned = json!([{"apiVersion": "operator.tigera.io/v1", "kind": "Installation", "name": "default",
        "uid": installation_uid, "controller": true, "blockOwnerDeletion": true}]);
    let calico = |extra_spec: &str| {
        daemonset("calico-system", "calico-node", extra_spec).replacen(
            "\nspec:\n",
            &format!("\n  ownerReferences: {owned}\nspec:\n"),
            1,
        )
    };
    cp.apply_as("tigera-operator", &calico(""), false);
    cluster.apply("apiVersion: terway-hybrid.io/v1alpha1\nkind: TerwayRollout\nmetadata:\n  name: default\nspec:\n  onPremCNI:\n    remediate: Apply\n");

    let controller = cluster.start_controller(CONTROLLER, "replica-a");
    let logs = [&controller];
    // The controller writes the exclusion into the Installation's
    // calico-node override, as its field manager, and leaves the
    // operator's DaemonSet alone.
    let fixed = wait_for_described(
        "the exclusion in Installation default",
        Duration::from_secs(90),
        || {
            let inst = cluster.get(&["installation", "default", "--show-managed-fields"]);
            let affinity = &inst["spec"]["calicoNodeDaemonSet"]["spec"]["template"]["spec"]["affinity"];
            affinity.to_string().contains("NotIn").then(|| inst.clone())
        },
        || controller.tail(40),
    );
    let installation_managers = managers(&fixed);
    assert!(
        installation_managers.contains(&"terway-hybrid-controller"),
        "applied by the controller: {installation_managers:?}"
    );
    assert_eq!(fixed["spec"]["calicoNetwork"]["bgp"], "Enabled", "the rest of the Installation is kept");
    let ds =
        cluster.get(&["daemonset", "calico-node", "--namespace", "calico-system", "--show-managed-fields"]);
    let ds_managers = managers(&ds);
    assert!(
        !ds_managers.contains(&"terway-hybrid-controller"),
        "the DaemonSet is the operator's: {ds_managers:?}"
    );
    // calico-node still runs on the cloud nodes: the preflight fails.
    cluster.wait_condition("PreflightPassed", "False", None, Duration::from_secs(60), &logs);

    // The operator renders the Installation's override into calico-node
    // (the whole object it manages, as its apply sends).
    let affinity = &fixed["spec"]["calicoNodeDaemonSet"]["spec"]["template"]["spec"]["affinity"];
    cp.apply_as("tigera-operator", &calico(&format!("      affinity: {affinity}\n")), false);
    cluster.wait_condition("PreflightPassed", "True", None, Duration::from_secs(120), &logs);
    let onprem_set: BTreeSet<String> = onprem.iter().cloned().collect();
    assert_eq!(
        cluster.nodes_with_pods("calico-system", "calico-node"),
        onprem_set,
        "calico-node left the cloud"
    );

    // eni-config goes, comes back, goes again.
    let failed_reason = || {
        cp.kubectl_ok(&["delete", "configmap", "eni-config", "--namespace", "kube-system"]);
        let r = cluster.wait_condition("PreflightPassed", "False", None, Duration::from_secs(60), &logs);
        cluster.condition(&r, "PreflightPassed").unwrap().1
    };
    let first = failed_reason();
    cluster.apply(ENI_CONFIG);
    cluster.wait_condition("PreflightPassed", "True", None, Duration::from_secs(60), &logs);
    let second = failed_reason();
    assert_eq!(first, second, "the same failure twice");
    let series = wait_for_described(
        "the repeated Event counted as a series",
        Duration::from_secs(30),
        || {
            let events = cluster.get(&["events.v1.events.k8s.io", "--all-namespaces"]);
            events["items"]
                .as_array()?
                .iter()
                .find(|e| {
                    e["reason"] == first.as_str()
                        && e["regarding"]["kind"] == "TerwayRollout"
                        && e["series"]["count"].as_u64().is_some_and(|c| c >= 2)
                })
                .cloned()
        },
        || controller.tail(40),
    );
    assert_eq!(series["type"], "Warning", "{series:#}");

    let requests = cluster.controller_requests();
    assert!(requests.iter().all(|e| e.code != 403), "the controller met a 403");
    let used = used_rules(&requests);
    for rule in [("installations", "watch"), ("installations", "patch"), ("events", "patch")] {
        let rule = (rule.0.to_owned(), rule.1.to_owned());
        assert!(used.contains(&rule), "the controller used {rule:?}: {used:?}");
    }
}
