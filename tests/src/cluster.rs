//! A hybrid cluster on the real control plane (`scripts/control-plane`),
//! as the controller and the CLI meet it: terway-hybrid installed as
//! README.md says, kwok nodes of both sites, reports written as the agents
//! write them, the on-prem CNI's and Terway's DaemonSets placed by the real
//! DaemonSet controller and scheduler, and the controller run as real
//! processes with its ServiceAccount's token.
//!
//! Each test binary gets a control plane of its own (the TerwayRollout is a
//! cluster singleton, so stories that drive it cannot share one). The
//! programs under test are passed in by path (`env!("CARGO_BIN_EXE_...")`
//! of the crate whose tests use this).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::control_plane::unique_name;
use crate::control_plane::{AuditEvent, ControlPlane};
use crate::netns::ChildGuard;
use crate::wait::wait_for_described;

pub const CONTROLLER_USER: &str = "system:serviceaccount:terway-hybrid:terway-hybrid-controller";
pub const GATE_LABEL: &str = "terway-hybrid.io/terway-gate";

pub struct Cluster {
    pub cp: &'static ControlPlane,
    pub work: tempfile::TempDir,
    /// The controller's ServiceAccount token, as its pod would mount it.
    pub controller_kubeconfig: PathBuf,
    /// Set by [`Cluster::answer_probes`].
    probe_answers: Option<ProbeAnswers>,
}

/// The agents' half of cross-site probing, for kwok nodes (which have no
/// agent and no network): while it lives, every report's
/// `spec.probeTargets` is answered in `status.probes`, all reachable over a
/// 1500-byte path, as healthy agents on a healthy network would write it.
struct ProbeAnswers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ProbeAnswers {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether the agent of node `from` reaches `target` (a `spec.probeTargets` entry).
pub type Reachable = dyn Fn(&str, &Value) -> bool + Send + Sync;

/// The status an agent writes for `report` once it probed its targets
/// (each reachable as `reachable` says); None when it already says so (or
/// there is nothing to answer).
fn answered_status(report: &Value, reachable: &Reachable) -> Option<Value> {
    let targets = report["spec"]["probeTargets"].as_array().filter(|t| !t.is_empty())?;
    let status = report.get("status").filter(|s| s.is_object())?;
    let from = report["metadata"]["name"].as_str().unwrap_or_default();
    let key = |v: &Value| format!("{:?}", (&v["node"], &v["address"], &v["path"], &v["reachable"]));
    let probes: Vec<Value> = targets
        .iter()
        .map(|t| {
            if reachable(from, t) {
                json!({"node": t["node"], "address": t["address"], "path": t["path"], "reachable": true,
                    "rttMs": 1.5, "pathMtu": 1500, "route": "dev eth0 proto kernel", "probed": "2026-11-30T08:00:00Z"})
            } else {
                json!({"node": t["node"], "address": t["address"], "path": t["path"], "reachable": false,
                    "note": "no answer within 5s", "probed": "2026-11-30T08:00:00Z"})
            }
        })
        .collect();
    let want: BTreeSet<String> = probes.iter().map(key).collect();
    let have: BTreeSet<String> = status["probes"].as_array().into_iter().flatten().map(key).collect();
    if want == have {
        return None;
    }
    let mut status = status.clone();
    status["probes"] = Value::Array(probes);
    Some(status)
}

/// The field managers of an object fetched with `--show-managed-fields`.
pub fn managers(obj: &Value) -> Vec<&str> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str())
        .collect()
}

pub fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::new()
    }
}

impl Cluster {
    /// terway-hybrid installed as README says, with its controller Deployment
    /// scaled to zero: the tests run the controller as processes of their own
    /// (kwok would only pretend to run the image).
    pub fn new() -> Cluster {
        let cp = ControlPlane::shared();
        cp.install();
        cp.kubectl_ok(&[
            "scale",
            "deployment",
            "terway-hybrid-controller",
            "--namespace",
            "terway-hybrid",
            "--replicas",
            "0",
        ]);
        let work = tempfile::tempdir().unwrap();
        let token = cp.token("terway-hybrid", "terway-hybrid-controller", None);
        let controller_kubeconfig = cp.token_kubeconfig(&token, &work.path().join("controller.kubeconfig"));
        Cluster { cp, work, controller_kubeconfig, probe_answers: None }
    }

    /// Answers the probe targets the controller assigns, from now until the
    /// cluster is dropped (see [`ProbeAnswers`]): a story about the rollout
    /// on kwok nodes needs the `CrossSiteConnectivity` evidence agents give.
    pub fn answer_probes(&mut self) {
        self.answer_probes_with(|_, _| true);
    }

    /// Stops answering probe targets (the results written stay).
    pub fn stop_probe_answers(&mut self) {
        self.probe_answers = None;
    }

    /// [`Cluster::answer_probes`], each target reachable as `reachable` says.
    pub fn answer_probes_with(&mut self, reachable: impl Fn(&str, &Value) -> bool + Send + Sync + 'static) {
        if self.probe_answers.is_some() {
            return;
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cp = self.cp;
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                // Each call bounded, so dropping the cluster never waits on a stuck server.
                let out = cp
                    .kubectl()
                    .args(["get", "nodenetworkreports", "-o", "json", "--request-timeout=5s"])
                    .output();
                let reports: Value = out
                    .ok()
                    .filter(|o| o.status.success())
                    .and_then(|o| serde_json::from_slice(&o.stdout).ok())
                    .unwrap_or(Value::Null);
                for report in reports["items"].as_array().into_iter().flatten() {
                    if let Some(status) = answered_status(report, &reachable) {
                        let body = json!({"apiVersion": "terway-hybrid.io/v1alpha1", "kind": "NodeNetworkReport",
                            "metadata": {"name": report["metadata"]["name"]}, "status": status});
                        // A report deleted meanwhile, or a restarting server:
                        // the next round answers again.
                        let mut cmd = cp.kubectl();
                        cmd.args([
                            "apply",
                            "--server-side",
                            "--force-conflicts",
                            "--field-manager",
                            "terway-hybrid-agent",
                            "--subresource=status",
                            "--request-timeout=5s",
                            "-f",
                            "-",
                        ]);
                        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
                        if let Ok(mut child) = cmd.spawn() {
                            if let Some(mut stdin) = child.stdin.take() {
                                let _ = stdin.write_all(body.to_string().as_bytes());
                            }
                            let _ = child.wait();
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        self.probe_answers = Some(ProbeAnswers { stop, thread: Some(thread) });
    }

    pub fn get(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend(["-o", "json"]);
        json_of(&self.cp.kubectl_ok(&all))
    }

    /// A kwok node (kwok makes it Ready and runs its pods), on-prem or cloud.
    pub fn add_node(&self, name: &str, cloud: bool) {
        self.add_node_with_cpu(name, cloud, "16");
    }

    /// Like [`Cluster::add_node`], with only `cpu` allocatable.
    pub fn add_node_with_cpu(&self, name: &str, cloud: bool, cpu: &str) {
        let cloud_label = if cloud { "\n    alibabacloud.com/external: \"true\"" } else { "" };
        self.cp.apply(&format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations:\n    kwok.x-k8s.io/node: fake\n  \
             labels:\n    kubernetes.io/hostname: {name}\n    kubernetes.io/os: linux\n    kubernetes.io/arch: amd64{cloud_label}\n\
             status:\n  capacity: {{cpu: \"{cpu}\", memory: 64Gi, pods: \"110\"}}\n  \
             allocatable: {{cpu: \"{cpu}\", memory: 64Gi, pods: \"110\"}}\n  \
             nodeInfo: {{kernelVersion: 5.10.134-16.al8.x86_64, kubeletVersion: v1.34.4}}\n"
        ));
    }

    /// `onprem` on-prem nodes reporting Calico BGP and `cloud` cloud nodes
    /// reporting no CNI yet, all with passing node checks; their names.
    pub fn add_sites(&self, onprem: usize, cloud: usize) -> (Vec<String>, Vec<String>) {
        let onprem: Vec<String> = (0..onprem).map(|_| unique_name("onprem")).collect();
        let cloud: Vec<String> = (0..cloud).map(|_| unique_name("cloud")).collect();
        for n in &onprem {
            self.add_node(n, false);
            self.report(n, onprem_bgp_status());
        }
        for n in &cloud {
            self.add_node(n, true);
            self.report(n, cloud_status());
        }
        (onprem, cloud)
    }

    /// Writes `node`'s NodeNetworkReport as its agent does: server-side apply
    /// of the identity (owned by the Node), then of the status.
    pub fn report(&self, node: &str, status: Value) {
        let uid = self.get(&["node", node])["metadata"]["uid"].as_str().unwrap().to_owned();
        let identity = json!({
            "apiVersion": "terway-hybrid.io/v1alpha1", "kind": "NodeNetworkReport",
            "metadata": {"name": node, "labels": {"terway-hybrid.io/node-name": node},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}]},
            "spec": {"nodeName": node}
        });
        self.cp.apply_as("terway-hybrid-agent", &identity.to_string(), false);
        let status = json!({"apiVersion": "terway-hybrid.io/v1alpha1", "kind": "NodeNetworkReport",
            "metadata": {"name": node}, "status": status});
        self.cp.apply_as("terway-hybrid-agent", &status.to_string(), true);
    }

    /// Applies `yaml` as admin.
    pub fn apply(&self, yaml: &str) {
        self.cp.apply(yaml);
    }

    /// Starts a controller replica as its ServiceAccount, with leader
    /// election on the Lease of the manifests. Its admission webhook listens
    /// on a free loopback port and, when it leads, registers itself there
    /// by URL (the API server runs on this machine; there is no Service).
    pub fn start_controller(&self, program: &str, identity: &str) -> Controller {
        self.start_controller_with(program, identity, &[])
    }

    /// [`Cluster::start_controller`] with more flags.
    pub fn start_controller_with(&self, program: &str, identity: &str, extra: &[&str]) -> Controller {
        let webhook_port = free_port();
        self.start_controller_on(program, identity, webhook_port, extra)
    }

    /// [`Cluster::start_controller_with`] on a given webhook port (a replica
    /// started again where the webhook configuration points).
    pub fn start_controller_on(
        &self,
        program: &str,
        identity: &str,
        webhook_port: u16,
        extra: &[&str],
    ) -> Controller {
        let log = self.work.path().join(format!("controller-{identity}.log"));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let addr = format!("127.0.0.1:{webhook_port}");
        let url = format!("https://127.0.0.1:{webhook_port}/mutate/terway-gate");
        let child = Command::new(program)
            .args(["--metrics-addr", "127.0.0.1:0", "--resync-seconds", "5"])
            .args(["--webhook-addr", &addr, "--webhook-url", &url])
            .args(extra)
            .env("KUBECONFIG", &self.controller_kubeconfig)
            .env("POD_NAMESPACE", "terway-hybrid")
            .env("POD_NAME", identity)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Controller { guard: ChildGuard::new(child), log, identity: identity.to_owned(), webhook_port }
    }

    /// The CLI `program` as the operator (admin kubeconfig), with
    /// `path_prefix` first on PATH (a stand-in onectl).
    pub fn cli(
        &self,
        program: &str,
        args: &[&str],
        path_prefix: Option<&Path>,
        stdin: Option<&str>,
    ) -> Output {
        let mut cmd = Command::new(program);
        cmd.args(args).env("KUBECONFIG", self.cp.admin_kubeconfig()).env("NO_COLOR", "1");
        if let Some(dir) = path_prefix {
            cmd.env("PATH", format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default()));
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// The TerwayRollout `default`, if it exists.
    pub fn rollout(&self) -> Option<Value> {
        let out =
            self.cp.kubectl_ok(&["get", "terwayrollout", "default", "-o", "json", "--ignore-not-found"]);
        (!out.trim().is_empty()).then(|| json_of(&out))
    }

    pub fn condition(&self, rollout: &Value, kind: &str) -> Option<(String, String)> {
        rollout["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind).map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
    }

    /// Waits until the rollout's `kind` condition has `status` (and `reason`,
    /// when given); panics with the rollout and the controllers' logs.
    pub fn wait_condition(
        &self,
        kind: &str,
        status: &str,
        reason: Option<&str>,
        timeout: Duration,
        logs: &[&Controller],
    ) -> Value {
        wait_for_described(
            &format!("TerwayRollout condition {kind}={status} {reason:?}"),
            timeout,
            || {
                let r = self.rollout()?;
                let (s, why) = self.condition(&r, kind)?;
                (s == status && reason.is_none_or(|want| want == why)).then_some(r)
            },
            || {
                format!(
                    "{:#}\n{}",
                    self.rollout().unwrap_or_default(),
                    logs.iter().map(|c| c.tail(30)).collect::<Vec<_>>().join("\n")
                )
            },
        )
    }

    /// Pods of a DaemonSet (by its selector label `app=<app>`) per node.
    pub fn pods(&self, namespace: &str, app: &str) -> Vec<Value> {
        self.get(&["pods", "--namespace", namespace, "--selector", &format!("app={app}")])["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn nodes_with_pods(&self, namespace: &str, app: &str) -> BTreeSet<String> {
        self.pods(namespace, app)
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_owned))
            .collect()
    }

    /// The audit events of the controller's ServiceAccount.
    pub fn controller_requests(&self) -> Vec<AuditEvent> {
        self.cp.audit_events().into_iter().filter(|e| e.user == CONTROLLER_USER).collect()
    }
}

/// A controller process; killed (SIGKILL) when dropped.
pub struct Controller {
    pub guard: ChildGuard,
    pub log: PathBuf,
    pub identity: String,
    /// Where its admission webhook listens (127.0.0.1).
    pub webhook_port: u16,
}

impl Controller {
    pub fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        format!("== controller {}\n{}", self.identity, all[all.len().saturating_sub(lines)..].join("\n"))
    }

    /// SIGTERM, and waits for it to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.guard.id();
        Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        let child = self.guard.child_mut();
        for _ in 0..200 {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("controller {} did not exit within 20 s of SIGTERM\n{}", self.identity, self.tail(30));
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

/// An on-prem node's report: Calico in BGP mode, node checks passing.
fn onprem_bgp_status() -> Value {
    json!({
        "scenario": "bgp", "plugin": "calico-bgp", "confidence": "high", "role": "on-prem",
        "kernelVersion": "5.4.0-150-generic",
        "evidence": [{"signal": "bird", "detail": "Calico's BIRD answers: 2 of 2 BGP sessions Established"}],
        "stale": [],
        "checks": [
            {"name": "ScenarioDetected", "severity": "error", "status": "pass", "reason": "Detected", "message": "ok"},
            {"name": "IPForwarding", "severity": "error", "status": "pass", "reason": "Enabled", "message": "net.ipv4.ip_forward = 1"}
        ],
        "ready": true, "lastDetected": "2026-11-30T08:00:00Z", "agentVersion": "0.1.0"
    })
}

/// A cloud node's report before Terway: no CNI yet, node checks passing.
pub fn cloud_status() -> Value {
    json!({
        "scenario": "unknown", "plugin": "none", "confidence": "low", "role": "cloud",
        "kernelVersion": "5.10.134-16.al8.x86_64",
        "evidence": [{"signal": "cni-config", "detail": "no CNI configuration in /etc/cni/net.d"}],
        "stale": [],
        "checks": [
            {"name": "ScenarioDetected", "severity": "error", "status": "pass", "reason": "Detected", "message": "ok"},
            {"name": "IPForwarding", "severity": "error", "status": "pass", "reason": "Enabled", "message": "net.ipv4.ip_forward = 1"}
        ],
        "ready": true, "lastDetected": "2026-11-30T08:00:00Z", "agentVersion": "0.1.0"
    })
}

/// `kube-system/eni-config` with a Service CIDR that matches the cluster's.
pub const ENI_CONFIG: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: eni-config
  namespace: kube-system
data:
  eni_conf: |
    {"version": "1", "max_pool_size": 5, "min_pool_size": 0,
     "vswitches": {"cn-hangzhou-k": ["vsw-bp1bbbbbbbbbbbbbbbbb"]},
     "security_groups": ["sg-bp1aaaaaaaaaaaaaaaaa"],
     "service_cidr": "10.96.0.0/16", "vswitch_selection_policy": "ordered", "ip_stack": "ipv4"}
  10-terway.conf: |
    {"cniVersion": "0.4.0", "name": "terway", "type": "terway", "eniip_virtual_type": "IPVlan"}
"#;

/// `kube-system/alibaba-addon-secret` with a well-formed RAM AccessKey.
pub const ADDON_SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: alibaba-addon-secret\n  \
    namespace: kube-system\nstringData:\n  access-key-id: LTAI5tQ9xkV3mZ2pR7wYb1Ce\n  \
    access-key-secret: Zq8Hn3Lr6Tv1Xw4Ya7Bc0De2Fg5Hj9\n";

/// The `affinity` of a DaemonSet kept off cloud nodes (an on-prem CNI after
/// its fix), for [`daemonset`]'s `extra_spec`.
pub const OFF_CLOUD: &str = "      affinity:\n        nodeAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n            \
    nodeSelectorTerms:\n            - matchExpressions:\n              \
    - {key: alibabacloud.com/external, operator: NotIn, values: [\"true\"]}\n";

/// Terway `kube-system/<name>` as the add-on manager creates it: every
/// cloud node, no gate.
pub fn addon_terway(name: &str) -> String {
    daemonset(
        "kube-system",
        name,
        "      affinity:\n        nodeAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n            \
         nodeSelectorTerms:\n            - matchExpressions:\n              \
         - {key: alibabacloud.com/external, operator: In, values: [\"true\"]}\n",
    )
}

/// Terway `kube-system/<name>` as the add-on installs it (every cloud node),
/// stored with the gate requirement admission adds.
pub fn gated_terway(name: &str) -> String {
    daemonset(
        "kube-system",
        name,
        "      affinity:\n        nodeAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n            \
         nodeSelectorTerms:\n            - matchExpressions:\n              \
         - {key: alibabacloud.com/external, operator: In, values: [\"true\"]}\n              \
         - {key: terway-hybrid.io/terway-gate, operator: In, values: [open]}\n",
    )
}

/// A DaemonSet as CNIs ship them: host network, tolerating every taint,
/// on every Linux node unless `extra_spec` says otherwise; its pod asks for
/// a little CPU, as CNI pods do.
pub fn daemonset(namespace: &str, name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels: {{app: {name}}}\n\
         spec:\n  selector:\n    matchLabels: {{app: {name}}}\n  updateStrategy:\n    type: RollingUpdate\n    \
         rollingUpdate: {{maxUnavailable: 100%}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      \
         hostNetwork: true\n      tolerations: [{{operator: Exists}}]\n      nodeSelector: {{kubernetes.io/os: linux}}\n{extra_spec}      \
         containers:\n      - name: main\n        image: registry.example.com/{name}:v1\n        resources: {{requests: {{cpu: 10m}}}}\n"
    )
}

/// Every (resource, verb) that RBAC grants ServiceAccount `namespace/name`
/// through the ClusterRoleBindings and RoleBindings that name it, read from
/// the server. A resource is `resource` or `resource/subresource`.
pub fn granted_rules(cp: &ControlPlane, namespace: &str, name: &str) -> BTreeSet<(String, String)> {
    let subject_matches = |binding: &Value| {
        binding["subjects"].as_array().is_some_and(|subjects| {
            subjects
                .iter()
                .any(|s| s["kind"] == "ServiceAccount" && s["name"] == name && s["namespace"] == namespace)
        })
    };
    let mut rules = BTreeSet::new();
    let bindings = json_of(&cp.kubectl_ok(&[
        "get",
        "clusterrolebindings,rolebindings",
        "--all-namespaces",
        "-o",
        "json",
    ]));
    for binding in bindings["items"].as_array().into_iter().flatten().filter(|b| subject_matches(b)) {
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
        let role = if role_kind == "ClusterRole" {
            json_of(&cp.kubectl_ok(&["get", "clusterrole", role_name, "-o", "json"]))
        } else {
            let ns = binding["metadata"]["namespace"].as_str().unwrap_or_default();
            json_of(&cp.kubectl_ok(&["get", "role", role_name, "--namespace", ns, "-o", "json"]))
        };
        for rule in role["rules"].as_array().into_iter().flatten() {
            for resource in rule["resources"].as_array().into_iter().flatten() {
                for verb in rule["verbs"].as_array().into_iter().flatten() {
                    rules.insert((
                        resource.as_str().unwrap_or_default().to_owned(),
                        verb.as_str().unwrap_or_default().to_owned(),
                    ));
                }
            }
        }
    }
    rules
}

/// The (resource, verb) RBAC checked for each audited request. A
/// server-side apply is a `patch`; one that created the object (201) needed
/// `create` too.
pub fn used_rules<'a>(events: impl IntoIterator<Item = &'a AuditEvent>) -> BTreeSet<(String, String)> {
    let mut used = BTreeSet::new();
    for event in events {
        let resource = if event.subresource.is_empty() {
            event.resource.clone()
        } else {
            format!("{}/{}", event.resource, event.subresource)
        };
        if event.verb == "patch" && event.code == 201 {
            used.insert((resource.clone(), "create".to_owned()));
        }
        used.insert((resource, event.verb.clone()));
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_what_is_not_answered() {
        let target = json!({"node": "cloud-1", "address": "10.0.0.7:9799", "path": "Host"});
        let report = |targets: Value, status: Value| json!({"metadata": {"name": "idc-1"}, "spec": {"probeTargets": targets}, "status": status});
        let all = |_: &str, _: &Value| true;
        // Nothing assigned, or no status yet: nothing to write.
        assert_eq!(answered_status(&report(json!([]), json!({"ready": true})), &all), None);
        assert_eq!(answered_status(&report(json!([target]), Value::Null), &all), None);
        // Assigned and unanswered: the status keeps its fields and gains the probe.
        let answered = answered_status(&report(json!([target]), json!({"ready": true})), &all).unwrap();
        assert_eq!(answered["ready"], true);
        assert_eq!(answered["probes"][0]["node"], "cloud-1");
        assert_eq!(answered["probes"][0]["reachable"], true);
        // Answered already: no second write.
        assert_eq!(answered_status(&report(json!([target]), answered.clone()), &all), None);
        // The same target now unreachable from idc-1: a new answer.
        let none = |from: &str, _: &Value| from != "idc-1";
        let lost = answered_status(&report(json!([target]), answered), &none).unwrap();
        assert_eq!(lost["probes"][0]["reachable"], false);
    }
}
