//! The Terway gate at admission, on a real control plane: the controller's
//! mutating webhook adds the gate requirement to Terway's DaemonSet as the
//! API server stores it, so the add-on manager's ungated DaemonSet never
//! places a Terway pod on a node whose gate is closed.
//!
//! One story (the TerwayRollout is a cluster singleton), in order:
//! 1. `install` in Auto mode proves the gate is enforced by a dry-run create
//!    and calls onectl.
//! 2. Terway is created as the add-on manager creates it (every cloud node,
//!    no gate); a Pod and Node watch running from before the create shows no
//!    Terway pod created for a node before its gate opened; the first wave
//!    opens and gets Ready. Another DaemonSet in kube-system is untouched.
//! 3. The DaemonSet is replaced without the affinity (an add-on upgrade):
//!    the stored object still requires the gate, no pod on an ungated node.
//! 4. The serving certificate rotates every second while DaemonSet writes go
//!    through the webhook: every write succeeds, the certificate served
//!    changes.
//! 5. The webhook down (controller killed): a Terway write fails (failure
//!    policy Fail) within the timeout, the stored object keeps its gate,
//!    every other DaemonSet write succeeds, and `install` refuses without
//!    calling onectl. The controller back: writes pass again.
//! 6. Manual mode: the webhook is unregistered and Terway is stored as sent;
//!    its pod on a new, ungated cloud node is what the watch's check catches
//!    (the check's positive control).
//!
//! The latency the webhook adds to a DaemonSet write is a benchmark:
//! `controller/benches/admission_latency.rs`.
//!
//! `cargo test -p terway-hybrid-controller --test cluster_admission` as root.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::Api;
use serde_json::json;
use terway_hybrid_testkit::admission::{
    requires_gate, rollout_yaml, terway_affinity, wait_webhooks, webhooks,
};
use terway_hybrid_testkit::cluster::{
    addon_terway, daemonset, Cluster, ADDON_SECRET, ENI_CONFIG, GATE_LABEL, OFF_CLOUD,
};
use terway_hybrid_testkit::wait_for_described;

const CONTROLLER: &str = env!("CARGO_BIN_EXE_terway-hybrid-controller");
const CLI: &str = env!("CARGO_BIN_EXE_terway-hybrid");

/// What the watches saw, by resourceVersion (etcd's revision: one order for
/// every object of this server, which is what "before" means here).
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Node -> every change of its gate: (revision, open).
    gates: BTreeMap<String, Vec<(u64, bool)>>,
    /// Terway pod -> (the revision it was first seen at, i.e. created, and
    /// the node it is for, once known).
    pods: BTreeMap<String, (u64, Option<String>)>,
}

impl Seen {
    /// Was `node`'s gate open at `revision`?
    fn open_at(&self, node: &str, revision: u64) -> bool {
        self.gates
            .get(node)
            .and_then(|changes| changes.iter().rev().find(|(at, _)| *at < revision))
            .is_some_and(|(_, open)| *open)
    }

    /// Pods created for a node whose gate was not open at that revision.
    fn violations(&self) -> Vec<String> {
        self.pods
            .iter()
            .filter_map(|(pod, (created, node))| match node {
                None => Some(format!("pod {pod}: no node known")),
                Some(n) if !self.open_at(n, *created) => Some(format!(
                    "pod {pod} created at revision {created} for node {n}, gate changes {:?}",
                    self.gates.get(n)
                )),
                Some(_) => None,
            })
            .collect()
    }
}

fn revision(meta: &kube::api::ObjectMeta) -> u64 {
    meta.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX)
}

/// The node a DaemonSet pod is for: bound, or pinned by the DaemonSet
/// controller's `metadata.name` node affinity before it is bound.
fn node_of(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = &spec.node_name {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|f| f.key == "metadata.name")
        .and_then(|f| f.values.as_ref()?.first().cloned())
}

/// Watches Nodes and Terway's pods from a thread of its own, from before
/// Terway exists, recording each node's gate changes and each pod's creation
/// revision and node ([`Seen::violations`] compares them at the end, so the
/// two watches' relative delay does not matter).
fn record(cluster: &Cluster, seen: Arc<Mutex<Seen>>) {
    let cp = cluster.cp;
    let ready = Arc::new(std::sync::Barrier::new(2));
    let started = ready.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let client = cp.admin_client().await;
            let nodes = watcher::watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
                .default_backoff()
                .applied_objects();
            let pods = watcher::watcher(
                Api::<Pod>::namespaced(client, "kube-system"),
                watcher::Config::default().labels("app=terway-eniip"),
            )
            .default_backoff()
            .applied_objects();
            let mut nodes = std::pin::pin!(nodes.filter_map(|r| async move { r.ok() }));
            let mut pods = std::pin::pin!(pods.filter_map(|r| async move { r.ok() }));
            // The first node event means the node watch is established.
            let mut signalled = false;
            loop {
                tokio::select! {
                    Some(node) = nodes.next() => {
                        if !signalled {
                            started.wait();
                            signalled = true;
                        }
                        let name = node.metadata.name.clone().unwrap_or_default();
                        let open = node.metadata.labels.as_ref().and_then(|l| l.get(GATE_LABEL)).is_some_and(|v| v == "open");
                        let mut s = seen.lock().unwrap();
                        let changes = s.gates.entry(name).or_default();
                        if changes.last().is_none_or(|(_, was)| *was != open) {
                            changes.push((revision(&node.metadata), open));
                        }
                    }
                    Some(pod) = pods.next() => {
                        let name = pod.metadata.name.clone().unwrap_or_default();
                        let rev = revision(&pod.metadata);
                        let node = node_of(&pod);
                        let mut s = seen.lock().unwrap();
                        let entry = s.pods.entry(name).or_insert((rev, None));
                        if entry.1.is_none() {
                            entry.1 = node;
                        }
                    }
                    else => break,
                }
            }
        });
    });
    ready.wait();
}

/// `kubectl replace` (a PUT, as an add-on manager's rewrite) of `yaml`.
fn replace(cluster: &Cluster, yaml: &str) -> std::process::Output {
    let mut cmd = cluster.cp.kubectl();
    cmd.args(["replace", "-f", "-"]).stdin(std::process::Stdio::piped());
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), yaml.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// A stand-in onectl that records its calls; (its directory, the record).
fn onectl(cluster: &Cluster) -> (std::path::PathBuf, std::path::PathBuf) {
    let bin = cluster.work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = cluster.work.path().join("onectl-calls");
    let onectl = bin.join("onectl");
    std::fs::write(&onectl, format!("#!/bin/sh\necho \"$*\" >> {}\n", calls.display())).unwrap();
    std::fs::set_permissions(&onectl, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, calls)
}

/// The serial of the certificate the webhook presents to a new handshake.
fn served_serial(port: u16) -> String {
    let out = Command::new("bash")
        .args([
            "-c",
            &format!(
                "openssl s_client -connect 127.0.0.1:{port} </dev/null 2>/dev/null | openssl x509 -noout -serial"
            ),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn terway_is_gated_from_its_first_second() {
    terway_hybrid_testkit::require_root();
    let mut cluster = Cluster::new();
    // kwok nodes have no agents: answer the controller's probe targets as
    // healthy agents would (CrossSiteConnectivity wants their results).
    cluster.answer_probes();
    let cp = cluster.cp;
    let (_onprem, cloud) = cluster.add_sites(1, 4);
    cluster.apply(ENI_CONFIG);
    cluster.apply(ADDON_SECRET);
    cluster.apply(&daemonset("kube-system", "calico-node", OFF_CLOUD));
    cluster.apply(&rollout_yaml("Auto"));

    let seen: Arc<Mutex<Seen>> = Arc::default();
    record(&cluster, seen.clone());
    // Rotating every second for the whole story: step 4 looks at it closely.
    let mut a =
        cluster.start_controller_with(CONTROLLER, "replica-a", &["--webhook-cert-rotate-seconds", "1"]);
    cluster.wait_condition("PreflightPassed", "True", None, Duration::from_secs(90), &[&a]);
    wait_webhooks(&cluster, 1, &a);
    let hook = &webhooks(&cluster)[0];
    assert_eq!(hook["failurePolicy"], "Fail", "{hook:#}");
    assert_eq!(hook["matchConditions"][0]["expression"], "object.metadata.name == 'terway-eniip'");

    // 1. install proves the gate is enforced at creation, then calls onectl.
    let (bin, calls) = onectl(&cluster);
    let out = cluster.cli(CLI, &["install", "--yes"], Some(&bin), None);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "install: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("a dry-run create of it came back with the gate requirement"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&calls).unwrap().lines().count(), 2);
    assert!(cluster.get(&["daemonsets", "--namespace", "kube-system"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["metadata"]["name"] != "terway-eniip"));

    // 2. The add-on manager creates Terway: every cloud node, no gate.
    cluster.apply(&addon_terway("terway-eniip"));
    let stored = terway_affinity(&cluster);
    assert!(requires_gate(&stored), "stored without the gate: {stored:#}");
    // The add-on's own requirement is kept (ANDed into, not replaced).
    assert!(stored.to_string().contains("alibabacloud.com/external"), "{stored:#}");
    // Another DaemonSet in the same namespace is stored as sent.
    cluster.apply(&daemonset("kube-system", "other-agent", ""));
    let other = cluster.get(&["daemonset", "other-agent", "--namespace", "kube-system"]);
    assert!(other["spec"]["template"]["spec"]["affinity"].is_null(), "{other:#}");
    // The first wave opens and its Terway pod gets Ready.
    let first = wait_for_described(
        "the first wave's Terway pod Ready",
        Duration::from_secs(90),
        || {
            let ready: Vec<String> = cluster
                .pods("kube-system", "terway-eniip")
                .iter()
                .filter(|p| {
                    p["status"]["conditions"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
                })
                .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_owned))
                .collect();
            (!ready.is_empty()).then_some(ready)
        },
        || a.tail(30),
    );
    assert!(first.iter().all(|n| cloud.contains(n)), "{first:?}");

    // 3. An add-on upgrade rewrites the DaemonSet without any affinity.
    let out = replace(&cluster, &daemonset("kube-system", "terway-eniip", ""));
    assert!(out.status.success(), "replace: {}", String::from_utf8_lossy(&out.stderr));
    let stored = terway_affinity(&cluster);
    assert!(requires_gate(&stored), "the rewrite was stored without the gate: {stored:#}");
    // And with the add-on's affinity again, by server-side apply as another manager.
    cp.apply_as("addon-manager", &addon_terway("terway-eniip"), false);
    assert!(requires_gate(&terway_affinity(&cluster)));

    // 4. Rotation while the webhook serves: dry-run writes of Terway (each
    // one goes through the webhook) for 6 s, while the certificate changes
    // every second.
    let before = served_serial(a.webhook_port);
    let rotations =
        || std::fs::read_to_string(&a.log).unwrap_or_default().matches("rotated the webhook").count();
    let rotated_before = rotations();
    let (ok, failed) = {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let api: Api<DaemonSet> = Api::namespaced(cp.admin_client().await, "kube-system");
            let (mut ok, mut failed) = (0, Vec::new());
            let until = Instant::now() + Duration::from_secs(6);
            let mut i = 0;
            while Instant::now() < until {
                i += 1;
                let body = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                    "metadata": {"name": "terway-eniip", "annotations": {"probe": i.to_string()}}});
                let params = PatchParams { dry_run: true, ..PatchParams::apply("rotation-probe").force() };
                match api.patch("terway-eniip", &params, &Patch::Apply(&body)).await {
                    Ok(ds) if ds.spec.as_ref().is_some() => ok += 1,
                    Ok(_) => failed.push("no spec".to_owned()),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        })
    };
    assert!(
        failed.is_empty(),
        "{} of {} writes failed during rotation: {failed:?}",
        failed.len(),
        ok + failed.len()
    );
    assert!(ok > 20, "only {ok} writes");
    assert!(rotations() >= rotated_before + 4, "fewer than 4 rotations in 6 s\n{}", a.tail(20));
    let after = served_serial(a.webhook_port);
    assert!(before.starts_with("serial=") && after.starts_with("serial="), "{before:?} {after:?}");
    assert_ne!(before, after, "the served certificate did not change");

    // 5. The webhook down.
    let port = a.webhook_port;
    a.guard.child_mut().kill().unwrap();
    let _ = a.guard.child_mut().wait();
    let started = Instant::now();
    let out = replace(&cluster, &addon_terway("terway-eniip"));
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "a Terway write passed while the webhook was down");
    assert!(stderr.contains("failed calling webhook") && stderr.contains("terway-gate"), "{stderr}");
    assert!(took < Duration::from_secs(10), "the write hung {took:?} (timeoutSeconds 5)");
    assert!(requires_gate(&terway_affinity(&cluster)), "the stored Terway lost its gate");
    // Every other DaemonSet is written as usual, in Terway's namespace or not.
    cluster.apply(&daemonset(
        "kube-system",
        "other-agent",
        "      priorityClassName: system-node-critical\n",
    ));
    let ns = terway_hybrid_testkit::unique_name("apps");
    cp.kubectl_ok(&["create", "namespace", &ns]);
    cluster.apply(&daemonset(&ns, "terway-eniip", ""));
    assert!(cluster.get(&["daemonset", "terway-eniip", "--namespace", &ns])["spec"]["template"]["spec"]
        ["affinity"]
        .is_null());
    // install refuses, says how to fix it, and calls nothing.
    std::fs::remove_file(&calls).unwrap();
    let out = cluster.cli(CLI, &["install", "--yes"], Some(&bin), None);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot be enforced") && stderr.contains("docs/troubleshooting.md"), "{stderr}");
    assert!(!calls.exists(), "onectl was called while the webhook was down");
    // --force installs anyway.
    let out = cluster.cli(CLI, &["install", "--yes", "--force"], Some(&bin), None);
    assert!(out.status.success(), "install --force: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_file(&calls).unwrap();
    // The controller back where the configuration points: writes pass, gated.
    let a = cluster.start_controller_on(CONTROLLER, "replica-a", port, &[]);
    wait_for_described(
        "a Terway write to pass again",
        Duration::from_secs(60),
        || replace(&cluster, &addon_terway("terway-eniip")).status.success().then_some(()),
        || a.tail(30),
    );
    assert!(requires_gate(&terway_affinity(&cluster)));

    // What the watches saw, through steps 2 to 5.
    std::thread::sleep(Duration::from_secs(1));
    let s = seen.lock().unwrap().clone();
    let violations = s.violations();
    assert!(violations.is_empty(), "Terway pods on ungated nodes: {violations:#?}");
    assert!(!s.pods.is_empty(), "the watch saw no Terway pod");
    assert!(s.pods.values().all(|(rev, _)| *rev != u64::MAX), "unparsable resourceVersions: {s:?}");

    // 6. Manual mode: nothing is intercepted; Terway is stored as sent.
    cluster.apply(&rollout_yaml("Manual"));
    wait_webhooks(&cluster, 0, &a);
    cp.kubectl_ok(&["delete", "daemonset", "terway-eniip", "--namespace", "kube-system", "--wait=false"]);
    wait_for_described(
        "Terway's DaemonSet gone",
        Duration::from_secs(30),
        || {
            let all = cluster.get(&["daemonsets", "--namespace", "kube-system"]);
            all["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["metadata"]["name"] != "terway-eniip")
                .then_some(())
        },
        || "",
    );
    cluster.apply(&addon_terway("terway-eniip"));
    let stored = terway_affinity(&cluster);
    assert!(!stored.to_string().contains(GATE_LABEL), "Manual mode changed Terway: {stored:#}");
    // The watch's check catches what the gate prevents: ungated Terway now
    // goes to a new cloud node nobody opened a gate on.
    let late = terway_hybrid_testkit::unique_name("cloud");
    cluster.add_node(&late, true);
    let caught = wait_for_described(
        "the watch to see a Terway pod on the ungated new node",
        Duration::from_secs(60),
        || {
            let v = seen.lock().unwrap().violations();
            v.iter().any(|v| v.contains(&late)).then_some(v)
        },
        || format!("{:#?}", seen.lock().unwrap()),
    );
    assert!(caught.iter().all(|v| v.contains(&late)), "only the new node's pod: {caught:#?}");

    // The controller's new rules (its CA Secret, its webhook configuration)
    // are enough: it met no 403.
    let denied: Vec<_> = cluster.controller_requests().into_iter().filter(|e| e.code == 403).collect();
    assert!(denied.is_empty(), "the controller met 403s: {denied:#?}");
}
