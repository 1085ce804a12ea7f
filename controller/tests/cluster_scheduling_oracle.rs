//! Kubernetes is the oracle for `scheduling.rs`.
//!
//! A seeded generator makes kwok nodes (random labels, taints of every
//! effect, some cordoned) and DaemonSets (random `nodeSelector`, required
//! node affinity with every operator including `Gt`/`Lt` and `matchFields`
//! on `metadata.name`, tolerations, `hostNetwork`, now and then a pinned
//! `nodeName`; the first ones are probes, one per operator, whose single
//! requirement alone decides on every node), applies each kind in one
//! `kubectl apply` of a List, and lets the real DaemonSet controller and
//! scheduler place the pods (kwok runs them). Then, per (DaemonSet, Node) pair, "Kubernetes runs a pod of the
//! DaemonSet on the node" (a pod it owns, bound to the node, not being
//! deleted) must be what our module says for the objects as read back from
//! the server:
//!
//! 1. **placement**: [`admits`] for every pair;
//! 2. **taints arrive**: `NoSchedule` and `NoExecute` taints are added to some
//!    nodes and others are cordoned while pods run; a pair that ran a pod
//!    before must run one now iff [`keeps_running`], one that did not iff
//!    [`admits`];
//! 3. **new pods**: the pods on those nodes are deleted; the controller
//!    recreates a pod iff [`admits`].
//!
//! In each phase every DaemonSet's `status.desiredNumberScheduled` (the
//! controller's own count of nodes that should run its pod), once the
//! controller has been made to recount (see `recount`), must also be the
//! number of nodes [`admits`] admits.
//!
//! A few objects are generated invalid on purpose; the API server rejects
//! them and they drop out of the comparison (counted). Every failure names
//! the seed: `ORACLE_SEED=<seed>` replays the same objects.
//!
//! Run as root: `cargo test -p terway-hybrid-controller --test cluster_scheduling_oracle -- --nocapture`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Container, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    NodeSpec, NodeStatus, PodSpec, PodTemplateSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use terway_hybrid_controller::pure::scheduling::{admits, keeps_running, Admission, TermMismatch};
use terway_hybrid_testkit::{require_root, unique_name, wait_for_described, ControlPlane};

const DEFAULT_SEED: u64 = 20_261_130;
const NODES: usize = 26;
const DAEMON_SETS: usize = 24;
/// Compared (DaemonSet, Node) pairs in the placement phase, after rejections.
const MIN_PAIRS: usize = 500;
/// At most this many nodes and DaemonSets are made invalid on purpose, so
/// that at least (26 - 2) × (24 - 2) = 528 pairs remain.
const MAX_INVALID: usize = 2;

const NS: &str = "NoSchedule";
const NE: &str = "NoExecute";
const PNS: &str = "PreferNoSchedule";

/// Node labels: key and the values a node may carry. `num` feeds `Gt`/`Lt`,
/// with values that are not integers to Go's `strconv.ParseInt` either.
const LABELS: &[(&str, &[&str])] = &[
    ("zone", &["a", "b", "c"]),
    ("tier", &["web", "db"]),
    ("num", &["0", "3", "7", "10", "007", "abc", "1_0", "99999999999999999999"]),
    ("oracle.test/gpu", &["true", "false"]),
    ("flag", &[""]),
];

/// `Gt`/`Lt` values: integers, and strings the server accepts (they are
/// valid label values) but the scheduler cannot parse, so the term is void.
const BOUNDS: &[&str] = &["0", "3", "5", "7", "9", "10", "007", "abc", "1_0", "99999999999999999999"];

/// Node taints at creation: key, values, effects. Only taints the node
/// lifecycle controller leaves alone on a Ready node: it removes the
/// condition taints (`node.kubernetes.io/*-pressure`, `network-unavailable`,
/// `not-ready`, `unschedulable`) with effect `NoSchedule` and the `not-ready`
/// / `unreachable` `NoExecute` ones, so those would come and go.
const TAINTS: &[(&str, &[&str], &[&str])] = &[
    ("dedicated", &["", "x", "y"], &[NS, NE, PNS]),
    ("oracle.test/maint", &["", "now"], &[NS, NE, PNS]),
    ("node.kubernetes.io/disk-pressure", &[""], &[NE]),
    ("node.kubernetes.io/network-unavailable", &[""], &[NE]),
    ("node-role.kubernetes.io/control-plane", &[""], &[NS]),
];

/// The first DaemonSets are probes, one per operator (see `Gen::daemon_set`).
const PROBES: &[&str] =
    &["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Gt", "Lt", "matchFields In", "matchFields NotIn"];

/// The key of the taints that arrive while pods run.
const LATE: &str = "oracle.test/late";

/// key, operator, value, effect, tolerationSeconds.
type TolerationParts =
    (Option<&'static str>, Option<&'static str>, Option<&'static str>, Option<&'static str>, Option<i64>);

/// Tolerations a DaemonSet may carry.
#[rustfmt::skip]
const TOLERATIONS: &[TolerationParts] = &[
    (Some("dedicated"), Some("Equal"), Some("x"), Some(NS), None),
    (Some("dedicated"), None, Some("y"), None, None),
    (Some("dedicated"), Some("Equal"), Some(""), None, None),
    (Some("dedicated"), Some("Exists"), None, Some(NE), None),
    (Some("dedicated"), Some("Exists"), None, None, None),
    (Some("dedicated"), Some("Equal"), Some("x"), Some(PNS), None),
    (Some("oracle.test/maint"), Some("Exists"), None, Some(NE), Some(3600)),
    (Some("oracle.test/maint"), Some("Equal"), Some("now"), Some(NS), None),
    (Some("node.kubernetes.io/disk-pressure"), Some("Exists"), None, None, None),
    (Some("node.kubernetes.io/network-unavailable"), Some("Exists"), None, Some(NE), None),
    (Some("node-role.kubernetes.io/control-plane"), Some("Exists"), None, Some(NS), None),
    (None, Some("Exists"), None, Some(NS), None),
    (None, Some("Exists"), None, None, None),
    (Some(LATE), Some("Exists"), None, Some(NS), None),
    (Some(LATE), Some("Exists"), None, Some(NE), None),
    (Some(LATE), Some("Equal"), Some("x"), None, None),
    (Some(LATE), Some("Exists"), None, None, None),
];

fn main_seed() -> u64 {
    match std::env::var("ORACLE_SEED") {
        Ok(s) => s.trim().parse().unwrap_or_else(|e| panic!("ORACLE_SEED={s:?} is not a u64: {e}")),
        Err(_) => DEFAULT_SEED,
    }
}

fn replay(seed: u64) -> String {
    format!(
        "seed {seed} (replay: ORACLE_SEED={seed} cargo test -p terway-hybrid-controller \
         --test cluster_scheduling_oracle -- --nocapture)"
    )
}

// ---------------------------------------------------------------- generator

struct Gen {
    rng: StdRng,
    node_names: Vec<String>,
    invalid_nodes: usize,
    invalid_sets: usize,
    /// The integer `num` labels of the generated nodes: the probes' bounds.
    node_nums: Vec<String>,
}

impl Gen {
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.rng.random_range(0..xs.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    /// A node, and whether it was made invalid on purpose.
    fn node(&mut self, name: &str, run: &str) -> (Node, bool) {
        let mut labels = BTreeMap::from([("oracle-run".to_owned(), run.to_owned())]);
        for (key, values) in LABELS {
            if self.chance(0.55) {
                labels.insert((*key).to_owned(), (*self.pick(values)).to_owned());
            }
        }
        let mut taints: Vec<Taint> = Vec::new();
        let count = *self.pick(&[0, 0, 0, 1, 1, 1, 2, 2, 3]);
        for _ in 0..count {
            let (key, values, effects) = *self.pick(TAINTS);
            let taint = Taint {
                key: key.to_owned(),
                value: Some((*self.pick(values)).to_owned()).filter(|v| !v.is_empty()),
                effect: (*self.pick(effects)).to_owned(),
                time_added: None,
            };
            // Unique by (key, effect), as the server requires.
            if !taints.iter().any(|t| t.key == taint.key && t.effect == taint.effect) {
                taints.push(taint);
            }
        }
        // Now and then an invalid node: the server must reject it.
        let invalid = self.chance(0.04) && self.invalid_nodes < MAX_INVALID;
        if invalid {
            self.invalid_nodes += 1;
            match self.rng.random_range(0..2) {
                0 => taints.push(Taint {
                    key: "dedicated".into(),
                    value: None,
                    effect: "Sometimes".into(),
                    time_added: None,
                }),
                _ => {
                    labels.insert("zone".into(), "not a label value".into());
                }
            }
        }
        let unschedulable = self.chance(0.2);
        let resources = BTreeMap::from([
            ("cpu".to_owned(), Quantity("16".into())),
            ("memory".to_owned(), Quantity("64Gi".into())),
            ("pods".to_owned(), Quantity("110".into())),
        ]);
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(labels),
                annotations: Some(BTreeMap::from([("kwok.x-k8s.io/node".to_owned(), "fake".to_owned())])),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                taints: (!taints.is_empty()).then_some(taints),
                unschedulable: unschedulable.then_some(true),
                ..NodeSpec::default()
            }),
            status: Some(NodeStatus {
                capacity: Some(resources.clone()),
                allocatable: Some(resources),
                ..NodeStatus::default()
            }),
        };
        (node, invalid)
    }

    fn label_value_for(&mut self, key: &str) -> String {
        let values = LABELS.iter().find(|(k, _)| *k == key).map(|(_, v)| *v).unwrap_or(&["x"]);
        if self.chance(0.15) {
            "nosuch".to_owned()
        } else {
            (*self.pick(values)).to_owned()
        }
    }

    fn expression(&mut self) -> NodeSelectorRequirement {
        let operator = *self.pick(&["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Gt", "Lt"]);
        let key = if matches!(operator, "Gt" | "Lt") && self.chance(0.8) {
            "num".to_owned()
        } else {
            self.pick(LABELS).0.to_owned()
        };
        let values = match operator {
            "In" | "NotIn" => {
                let n = self.rng.random_range(1..=2);
                let mut vs: Vec<String> = (0..n).map(|_| self.label_value_for(&key)).collect();
                vs.dedup();
                Some(vs)
            }
            "Gt" | "Lt" => Some(vec![(*self.pick(BOUNDS)).to_owned()]),
            _ => None,
        };
        NodeSelectorRequirement { key, operator: operator.to_owned(), values }
    }

    fn field(&mut self) -> NodeSelectorRequirement {
        let value = if self.chance(0.15) {
            "oracle-nosuch-node".to_owned()
        } else {
            self.pick(&self.node_names.clone()).clone()
        };
        NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: (*self.pick(&["In", "In", "NotIn"])).to_owned(),
            values: Some(vec![value]),
        }
    }

    fn term(&mut self) -> NodeSelectorTerm {
        let n = *self.pick(&[0, 1, 1, 1, 2, 2, 3]);
        let expressions: Vec<NodeSelectorRequirement> = (0..n).map(|_| self.expression()).collect();
        let fields = if self.chance(0.3) { vec![self.field()] } else { Vec::new() };
        NodeSelectorTerm {
            match_expressions: (!expressions.is_empty()).then_some(expressions),
            match_fields: (!fields.is_empty()).then_some(fields),
        }
    }

    /// A probe's one term: one requirement with `operator`, its values taken
    /// from what the nodes carry, so that every node is on one side of it
    /// and boundaries (`Gt 7` on a node labelled `num=007`) do occur.
    fn probe_term(&mut self, operator: &str) -> NodeSelectorTerm {
        let (expressions, fields) = match operator {
            "Gt" | "Lt" => {
                let nums = self.node_nums.clone();
                let bound = if nums.is_empty() { *self.pick(BOUNDS) } else { self.pick(&nums).as_str() };
                let values = Some(vec![bound.to_owned()]);
                (
                    vec![NodeSelectorRequirement { key: "num".into(), operator: operator.into(), values }],
                    vec![],
                )
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {
                let (key, values) = *self.pick(LABELS);
                let values =
                    matches!(operator, "In" | "NotIn").then(|| vec![(*self.pick(values)).to_owned()]);
                (vec![NodeSelectorRequirement { key: key.into(), operator: operator.into(), values }], vec![])
            }
            fields_operator => {
                let mut field = self.field();
                field.operator = fields_operator.trim_start_matches("matchFields ").to_owned();
                (vec![], vec![field])
            }
        };
        NodeSelectorTerm {
            match_expressions: (!expressions.is_empty()).then_some(expressions),
            match_fields: (!fields.is_empty()).then_some(fields),
        }
    }

    /// A DaemonSet, and whether it was made invalid on purpose. A probe has
    /// nothing but one term of required affinity (see [`Gen::probe_term`]) and
    /// tolerates every taint, so that its operator alone decides.
    fn daemon_set(&mut self, name: &str, namespace: &str, probe: Option<&str>) -> (DaemonSet, bool) {
        let mut spec = PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("registry.invalid/oracle:1".into()),
                ..Container::default()
            }],
            termination_grace_period_seconds: Some(0),
            ..PodSpec::default()
        };
        if let Some(operator) = probe {
            let term = self.probe_term(operator);
            spec.affinity = Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![term],
                    }),
                    preferred_during_scheduling_ignored_during_execution: None,
                }),
                ..Affinity::default()
            });
            spec.tolerations =
                Some(vec![Toleration { operator: Some("Exists".into()), ..Toleration::default() }]);
            return (wrap(name, namespace, spec), false);
        }
        if self.chance(0.25) {
            let n = *self.pick(&[1, 1, 2]);
            let mut selector = BTreeMap::new();
            for _ in 0..n {
                let key = self.pick(LABELS).0;
                let value = self.label_value_for(key);
                selector.insert(key.to_owned(), value);
            }
            spec.node_selector = Some(selector);
        }
        if self.chance(0.6) {
            let n = *self.pick(&[1, 1, 2, 2, 3]);
            let terms = (0..n).map(|_| self.term()).collect();
            spec.affinity = Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: terms,
                    }),
                    preferred_during_scheduling_ignored_during_execution: None,
                }),
                ..Affinity::default()
            });
        }
        let n = *self.pick(&[0, 1, 1, 2, 2, 3]);
        let mut tolerations = Vec::new();
        for _ in 0..n {
            let (key, operator, value, effect, seconds) = *self.pick(TOLERATIONS);
            tolerations.push(Toleration {
                key: key.map(str::to_owned),
                operator: operator.map(str::to_owned),
                value: value.map(str::to_owned),
                effect: effect.map(str::to_owned),
                toleration_seconds: seconds,
            });
        }
        spec.tolerations = (!tolerations.is_empty()).then_some(tolerations);
        spec.host_network = self.chance(0.2).then_some(true);
        if self.chance(0.03) {
            spec.node_name = Some(if self.chance(0.2) {
                "oracle-nosuch-node".to_owned()
            } else {
                self.pick(&self.node_names.clone()).clone()
            });
        }
        // Now and then an invalid DaemonSet: the server must reject it.
        let invalid = self.chance(0.06) && self.invalid_sets < MAX_INVALID;
        if invalid {
            self.invalid_sets += 1;
            let bad = match self.rng.random_range(0..4) {
                0 => NodeSelectorRequirement {
                    key: "num".into(),
                    operator: "Gt".into(),
                    values: Some(vec!["-3".into()]),
                },
                1 => NodeSelectorRequirement { key: "zone".into(), operator: "In".into(), values: None },
                2 => NodeSelectorRequirement {
                    key: "zone".into(),
                    operator: "Exists".into(),
                    values: Some(vec!["a".into()]),
                },
                _ => NodeSelectorRequirement { key: "zone".into(), operator: "Bogus".into(), values: None },
            };
            spec.affinity = Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![bad]),
                            match_fields: None,
                        }],
                    }),
                    preferred_during_scheduling_ignored_during_execution: None,
                }),
                ..Affinity::default()
            });
        }
        (wrap(name, namespace, spec), invalid)
    }
}

/// A DaemonSet running `spec`, selecting its pods by `app: <name>`.
fn wrap(name: &str, namespace: &str, spec: PodSpec) -> DaemonSet {
    let labels = BTreeMap::from([("app".to_owned(), name.to_owned())]);
    DaemonSet {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector { match_labels: Some(labels.clone()), match_expressions: None },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                spec: Some(spec),
            },
            ..DaemonSetSpec::default()
        }),
        status: None,
    }
}

// ---------------------------------------------------------------- the cluster

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Applies the objects as one List; returns kubectl's stderr (the servers'
/// rejections, one line each). A rejected object does not stop the others.
fn apply_list<T: serde::Serialize>(cp: &ControlPlane, items: &[T]) -> String {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let mut cmd = cp.kubectl();
    cmd.args(["apply", "--server-side", "--field-manager", "oracle", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run kubectl");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(list.to_string().as_bytes()).expect("write kubectl's stdin");
    }
    let output = child.wait_with_output().expect("wait for kubectl");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn items<T: serde::de::DeserializeOwned>(cp: &ControlPlane, args: &[&str]) -> Vec<T> {
    let list = parse(&cp.kubectl_ok(args));
    list["items"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|item| serde_json::from_value(item.clone()).unwrap_or_else(|e| panic!("{e}: {item}")))
        .collect()
}

fn name_of(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// A node is settled when it is Ready, without the `not-ready` taint the
/// admission plugin adds at creation or the `unreachable` ones the node
/// lifecycle controller adds, and cordoned iff it has the `unschedulable`
/// taint that controller adds. kwok keeps no node Lease, so every ~50 s
/// (`node-monitor-grace-period`) a node goes Unknown, gets the `unreachable`
/// taints, and kwok makes it Ready again: the comparisons wait that out.
fn node_unsettled(n: &Node) -> bool {
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let spec = n.spec.clone().unwrap_or_default();
    let taints = spec.taints.unwrap_or_default();
    let lifecycle = taints
        .iter()
        .any(|t| matches!(t.key.as_str(), "node.kubernetes.io/not-ready" | "node.kubernetes.io/unreachable"));
    let cordoned = spec.unschedulable == Some(true);
    let cordon_taint = taints.iter().any(|t| t.key == "node.kubernetes.io/unschedulable");
    !ready || lifecycle || cordoned != cordon_taint
}

/// The parts of a node the DaemonSet controller decides on: name, labels,
/// taints, `unschedulable`.
fn decisive(n: &Node) -> Node {
    let spec = n.spec.clone().unwrap_or_default();
    Node {
        metadata: ObjectMeta {
            name: n.metadata.name.clone(),
            labels: n.metadata.labels.clone(),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: spec.taints,
            unschedulable: spec.unschedulable,
            ..NodeSpec::default()
        }),
        status: None,
    }
}

/// Our nodes, settled (see [`node_unsettled`]).
fn settled_nodes(cp: &ControlPlane, run: &str, want: usize) -> Vec<Node> {
    let selector = format!("oracle-run={run}");
    let last = RefCell::new(String::new());
    wait_for_described(
        "the generated nodes to be Ready, with only their own taints",
        Duration::from_secs(90),
        || {
            std::thread::sleep(Duration::from_millis(400));
            let nodes: Vec<Node> = items(cp, &["get", "nodes", "-l", &selector, "-o", "json"]);
            let unsettled: Vec<String> =
                nodes.iter().filter(|n| node_unsettled(n)).map(|n| name_of(&n.metadata)).collect();
            *last.borrow_mut() = format!("{} of {want} nodes; unsettled: {unsettled:?}", nodes.len());
            (nodes.len() == want && unsettled.is_empty()).then_some(nodes)
        },
        || last.borrow().clone(),
    )
}

/// What the cluster shows at one moment.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    /// (DaemonSet, node) → pod, for pods bound to a node and not being deleted.
    bound: BTreeMap<(String, String), String>,
    /// Pods the scheduler left Pending: (DaemonSet, node it targets, pod).
    pending: BTreeSet<(String, String, String)>,
    /// Pods being deleted or not yet seen by the scheduler, nodes not settled.
    unsettled: BTreeSet<String>,
    /// Every node of the cluster, as it was with these pods (see [`decisive`]).
    nodes: Vec<Node>,
    /// DaemonSet → (generation, observedGeneration, desired, current, misscheduled).
    status: BTreeMap<String, (i64, i64, i64, i64, i64)>,
}

impl Snapshot {
    fn take(cp: &ControlPlane, namespace: &str) -> Snapshot {
        // One request, so that nodes and pods are seen together.
        let all =
            parse(&cp.kubectl_ok(&["get", "nodes,daemonsets,pods", "--namespace", namespace, "-o", "json"]));
        let mut snap = Snapshot {
            bound: BTreeMap::new(),
            pending: BTreeSet::new(),
            unsettled: BTreeSet::new(),
            nodes: Vec::new(),
            status: BTreeMap::new(),
        };
        for item in all["items"].as_array().expect("a list") {
            let name = item["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            let int = |v: &Value| v.as_i64().unwrap_or(0);
            match item["kind"].as_str() {
                Some("Node") => {
                    let node: Node =
                        serde_json::from_value(item.clone()).unwrap_or_else(|e| panic!("{e}: {item}"));
                    if node_unsettled(&node) {
                        snap.unsettled.insert(format!("node {name}"));
                    }
                    snap.nodes.push(decisive(&node));
                }
                Some("DaemonSet") => {
                    let s = &item["status"];
                    snap.status.insert(
                        name,
                        (
                            int(&item["metadata"]["generation"]),
                            int(&s["observedGeneration"]),
                            int(&s["desiredNumberScheduled"]),
                            int(&s["currentNumberScheduled"]),
                            int(&s["numberMisscheduled"]),
                        ),
                    );
                }
                Some("Pod") => {
                    let owner = item["metadata"]["ownerReferences"]
                        .as_array()
                        .and_then(|os| os.iter().find(|o| o["kind"] == "DaemonSet"))
                        .and_then(|o| o["name"].as_str())
                        .unwrap_or_default()
                        .to_owned();
                    if !item["metadata"]["deletionTimestamp"].is_null() {
                        snap.unsettled.insert(format!("{name} (being deleted)"));
                        continue;
                    }
                    match item["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                        Some(node) => {
                            snap.bound.insert((owner, node.to_owned()), name);
                        }
                        None => {
                            // The controller pins each pod to its node with
                            // matchFields metadata.name In [node].
                            let target = item["spec"]["affinity"]["nodeAffinity"]
                                ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
                                ["matchFields"][0]["values"][0]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned();
                            let unschedulable = item["status"]["conditions"].as_array().is_some_and(|cs| {
                                cs.iter().any(|c| c["type"] == "PodScheduled" && c["status"] == "False")
                            });
                            if unschedulable {
                                snap.pending.insert((owner, target, name));
                            } else {
                                // Not decided yet: never settled.
                                snap.unsettled.insert(format!("{name} (not scheduled yet)"));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        snap
    }

    /// Consistent: every DaemonSet's status is for its generation, its
    /// controller has a pod on every node it wants one on, nothing is
    /// being deleted or waiting for the scheduler.
    fn consistent(&self, daemon_sets: &BTreeSet<String>) -> bool {
        self.unsettled.is_empty()
            && daemon_sets.iter().all(|ds| {
                let Some(&(generation, observed, desired, current, misscheduled)) = self.status.get(ds)
                else {
                    return false;
                };
                let pods = self.bound.keys().filter(|(d, _)| d == ds).count()
                    + self.pending.iter().filter(|(d, _, _)| d == ds).count();
                observed >= generation
                    && generation > 0
                    && current == desired
                    && pods as i64 == desired + misscheduled
            })
    }
}

/// Waits until the cluster is consistent and has not changed for `quiet`.
fn settle(
    cp: &ControlPlane,
    namespace: &str,
    daemon_sets: &BTreeSet<String>,
    what: &str,
    quiet: Duration,
) -> Snapshot {
    settle_watching_nodes(cp, namespace, daemon_sets, what, quiet).0
}

/// [`settle`], and whether some node was unsettled on the way.
fn settle_watching_nodes(
    cp: &ControlPlane,
    namespace: &str,
    daemon_sets: &BTreeSet<String>,
    what: &str,
    quiet: Duration,
) -> (Snapshot, bool) {
    let last: RefCell<Option<(Snapshot, Instant)>> = RefCell::new(None);
    let mut first = true;
    let mut saw_unsettled_node = false;
    let snap = wait_for_described(
        what,
        Duration::from_secs(120),
        || {
            if !first {
                std::thread::sleep(Duration::from_millis(700));
            }
            first = false;
            let snap = Snapshot::take(cp, namespace);
            saw_unsettled_node |= snap.unsettled.iter().any(|u| u.starts_with("node "));
            let since = match &*last.borrow() {
                Some((prev, since)) if *prev == snap => *since,
                _ => Instant::now(),
            };
            let done = snap.consistent(daemon_sets) && since.elapsed() >= quiet;
            *last.borrow_mut() = Some((snap.clone(), since));
            done.then_some(snap)
        },
        || last.borrow().clone().map(|(s, _)| s),
    );
    (snap, saw_unsettled_node)
}

/// Makes the DaemonSet controller recount every DaemonSet's status now and
/// returns the settled cluster with fresh counts.
///
/// The status is only recomputed when a DaemonSet syncs, and Kubernetes
/// 1.34 does not sync one when a NoSchedule taint comes to or goes from a
/// node that runs its pod (`syncNodeUpdate` enqueues a DaemonSet only to
/// create or delete a pod, or while numberMisscheduled > 0): after a
/// NoSchedule taint arrives, or a kwok node comes back from Unknown, its
/// desiredNumberScheduled can be stale. A spec change no pod sees
/// (minReadySeconds) makes it recount, and observedGeneration tells when it
/// has; if a node was unsettled meanwhile the count may be of that moment,
/// so it is done again.
fn recount(cp: &ControlPlane, namespace: &str, daemon_sets: &BTreeSet<String>, round: &mut i64) -> Snapshot {
    for _ in 0..4 {
        *round += 1;
        let patch = format!(r#"{{"spec":{{"minReadySeconds":{round}}}}}"#);
        let mut args = vec!["patch", "daemonsets", "--namespace", namespace, "--type", "merge", "-p", &patch];
        args.extend(daemon_sets.iter().map(String::as_str));
        cp.kubectl_ok(&args);
        let (snap, saw_unsettled_node) = settle_watching_nodes(
            cp,
            namespace,
            daemon_sets,
            "the DaemonSets to recount",
            Duration::from_secs(1),
        );
        if !saw_unsettled_node {
            return snap;
        }
    }
    panic!("the nodes kept flapping while the DaemonSets recounted");
}

// ---------------------------------------------------------------- comparison

fn describe_ds(ds: &DaemonSet) -> String {
    let spec = ds.spec.as_ref().and_then(|s| s.template.spec.clone()).unwrap_or_default();
    let v = json!({
        "nodeName": spec.node_name,
        "nodeSelector": spec.node_selector,
        "affinity": spec.affinity,
        "tolerations": spec.tolerations,
        "hostNetwork": spec.host_network,
    });
    let compact: serde_json::Map<String, Value> = v
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, x)| !x.is_null())
        .map(|(k, x)| (k.clone(), x.clone()))
        .collect();
    Value::Object(compact).to_string()
}

fn describe_node(node: &Node) -> String {
    let spec = node.spec.clone().unwrap_or_default();
    json!({
        "labels": node.metadata.labels,
        "taints": spec.taints.unwrap_or_default().iter()
            .map(|t| format!("{}={}:{}", t.key, t.value.clone().unwrap_or_default(), t.effect))
            .collect::<Vec<_>>(),
        "unschedulable": spec.unschedulable.unwrap_or(false),
    })
    .to_string()
}

struct Oracle {
    seed: u64,
    disagreements: Vec<String>,
    compared: usize,
}

impl Oracle {
    /// Compares one pair: Kubernetes runs a pod (`observed`) vs what ours says.
    fn pair(
        &mut self,
        phase: &str,
        rule: &str,
        ds: &DaemonSet,
        node: &Node,
        ours: &Admission,
        snap: &Snapshot,
    ) {
        self.compared += 1;
        let ds_name = name_of(&ds.metadata);
        let node_name = name_of(&node.metadata);
        let key = (ds_name.clone(), node_name.clone());
        let observed = snap.bound.get(&key);
        if observed.is_some() == ours.is_admitted() {
            return;
        }
        let pending = snap.pending.iter().find(|(d, n, _)| *d == ds_name && *n == node_name);
        let kube = match (observed, pending) {
            (Some(pod), _) => format!("Kubernetes runs pod {pod} there"),
            (None, Some((_, _, pod))) => {
                format!(
                    "Kubernetes runs no pod there (the controller made {pod}, the scheduler left it Pending)"
                )
            }
            (None, None) => "Kubernetes runs no pod there".to_owned(),
        };
        self.disagreements.push(format!(
            "{}: [{phase}] DaemonSet {ds_name} on node {node_name}: {kube}, but {rule} says {ours}\n    \
             DaemonSet pod template: {}\n    Node: {}",
            replay(self.seed),
            describe_ds(ds),
            describe_node(node)
        ));
    }

    /// The controller's own count of nodes that should run each DaemonSet's pod.
    fn desired(&mut self, phase: &str, daemon_sets: &[DaemonSet], nodes: &[Node], snap: &Snapshot) {
        for ds in daemon_sets {
            let name = name_of(&ds.metadata);
            let ours: Vec<String> =
                nodes.iter().filter(|n| admits(ds, n).is_admitted()).map(|n| name_of(&n.metadata)).collect();
            let desired = snap.status.get(&name).map(|s| s.2).unwrap_or(-1);
            if desired != ours.len() as i64 {
                self.disagreements.push(format!(
                    "{}: [{phase}] DaemonSet {name}: status.desiredNumberScheduled is {desired}, but admits() \
                     admits {} of the {} nodes: {ours:?}\n    DaemonSet pod template: {}",
                    replay(self.seed),
                    ours.len(),
                    nodes.len(),
                    describe_ds(ds)
                ));
            }
        }
    }
}

/// The outcome of one pair, and for an affinity mismatch what failed in each term.
fn outcomes_of(admission: &Admission) -> Vec<String> {
    let mut out = vec![admission.reason().to_owned()];
    if let Admission::AffinityMismatch { terms } = admission {
        for term in terms {
            out.push(match term {
                TermMismatch::Empty => "term: empty".to_owned(),
                TermMismatch::Invalid { .. } => "term: unparsable (accepted by the server)".to_owned(),
                TermMismatch::Expression { operator, .. } => format!("term: fails {operator}"),
                TermMismatch::Field { operator, .. } => format!("term: fails matchFields {operator}"),
            });
        }
    }
    out
}

/// What the accepted objects use, to show the generator's reach.
fn features(daemon_sets: &[DaemonSet], nodes: &[Node]) -> String {
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    let mut count = |what: String| *used.entry(what).or_default() += 1;
    for ds in daemon_sets {
        let spec = ds.spec.as_ref().and_then(|s| s.template.spec.clone()).unwrap_or_default();
        let terms = spec
            .affinity
            .and_then(|a| a.node_affinity)
            .and_then(|n| n.required_during_scheduling_ignored_during_execution)
            .map(|r| r.node_selector_terms)
            .unwrap_or_default();
        for term in terms {
            for e in term.match_expressions.unwrap_or_default() {
                count(format!("ds: {}", e.operator));
            }
            for f in term.match_fields.unwrap_or_default() {
                count(format!("ds: matchFields {}", f.operator));
            }
        }
        if spec.node_selector.is_some() {
            count("ds: nodeSelector".into());
        }
        if spec.node_name.is_some() {
            count("ds: nodeName".into());
        }
        if spec.host_network == Some(true) {
            count("ds: hostNetwork".into());
        }
        count(format!("ds: {} tolerations", spec.tolerations.map_or(0, |t| t.len())));
    }
    for node in nodes {
        let spec = node.spec.clone().unwrap_or_default();
        if spec.unschedulable == Some(true) {
            count("node: cordoned".into());
        }
        for taint in spec.taints.unwrap_or_default() {
            count(format!("node: taint {}", taint.effect));
        }
    }
    format!("{used:?}")
}

/// The objects, and the names of those made invalid on purpose.
fn generated<T: k8s_openapi::Metadata<Ty = ObjectMeta>>(
    objects: impl Iterator<Item = (T, bool)>,
) -> (Vec<T>, BTreeSet<String>) {
    let mut all = Vec::new();
    let mut invalid = BTreeSet::new();
    for (object, bad) in objects {
        if bad {
            invalid.insert(name_of(object.metadata()));
        }
        all.push(object);
    }
    (all, invalid)
}

fn names<T: k8s_openapi::Metadata<Ty = ObjectMeta>>(objects: &[T]) -> BTreeSet<String> {
    objects.iter().map(|o| name_of(o.metadata())).collect()
}

fn rejected_lines(stderr: &str) -> Vec<String> {
    stderr.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

#[test]
fn kubernetes_places_daemon_set_pods_where_scheduling_says() {
    require_root();
    let started = Instant::now();
    let seed = main_seed();
    eprintln!("oracle: {}", replay(seed));
    let cp = ControlPlane::shared();
    let up = started.elapsed();

    let run = unique_name("oracle");
    let namespace = run.clone();
    cp.kubectl_ok(&["create", "namespace", &namespace]);
    let node_names: Vec<String> = (0..NODES).map(|i| format!("{run}-n{i:02}")).collect();
    let mut gen = Gen {
        rng: StdRng::seed_from_u64(seed),
        node_names: node_names.clone(),
        invalid_nodes: 0,
        invalid_sets: 0,
        node_nums: Vec::new(),
    };
    let (gen_nodes, bad_nodes) = generated(node_names.iter().map(|n| gen.node(n, &run)));
    gen.node_nums = gen_nodes
        .iter()
        .filter_map(|n| n.metadata.labels.as_ref()?.get("num"))
        .filter(|v| v.parse::<i64>().is_ok())
        .cloned()
        .collect();
    let (gen_sets, bad_sets) = generated(
        (0..DAEMON_SETS).map(|i| gen.daemon_set(&format!("ds-{i:02}"), &namespace, PROBES.get(i).copied())),
    );

    // Nodes first, settled, so the DaemonSets meet them as they will stay.
    let node_errors = rejected_lines(&apply_list(cp, &gen_nodes));
    let created: BTreeSet<String> =
        items::<Node>(cp, &["get", "nodes", "-l", &format!("oracle-run={run}"), "-o", "json"])
            .iter()
            .map(|n| name_of(&n.metadata))
            .collect();
    let nodes = settled_nodes(cp, &run, created.len());
    let set_errors = rejected_lines(&apply_list(cp, &gen_sets));
    let daemon_sets: Vec<DaemonSet> =
        items(cp, &["get", "daemonsets", "--namespace", &namespace, "-o", "json"]);
    let ds_names: BTreeSet<String> = daemon_sets.iter().map(|d| name_of(&d.metadata)).collect();
    let rejected_nodes = NODES - nodes.len();
    let rejected_sets = DAEMON_SETS - daemon_sets.len();
    eprintln!(
        "oracle: {} nodes, {} DaemonSets accepted; rejected {rejected_nodes} node(s), {rejected_sets} DaemonSet(s): \
         {:#?}",
        nodes.len(),
        daemon_sets.len(),
        node_errors.iter().chain(&set_errors).collect::<Vec<_>>()
    );
    // The server rejects exactly what the generator made invalid.
    let kept_nodes: BTreeSet<String> = nodes.iter().map(|n| name_of(&n.metadata)).collect();
    assert_eq!(
        names(&gen_nodes).difference(&kept_nodes).cloned().collect::<BTreeSet<_>>(),
        bad_nodes,
        "{}: rejected nodes are not the invalid ones: {node_errors:#?}",
        replay(seed)
    );
    assert_eq!(
        names(&gen_sets).difference(&ds_names).cloned().collect::<BTreeSet<_>>(),
        bad_sets,
        "{}: rejected DaemonSets are not the invalid ones: {set_errors:#?}",
        replay(seed)
    );
    let pairs = nodes.len() * daemon_sets.len();
    assert!(pairs >= MIN_PAIRS, "{}: only {pairs} pairs after rejections", replay(seed));

    // Each phase judges the nodes as they were in its settled snapshot; the
    // DaemonSet controller counts every node of the cluster, which are ours
    // (one control plane per test binary, this test alone in it).
    let ours = |snap: &Snapshot| -> Vec<Node> {
        snap.nodes.iter().filter(|n| kept_nodes.contains(&name_of(&n.metadata))).cloned().collect()
    };
    let mut oracle = Oracle { seed, disagreements: Vec::new(), compared: 0 };

    // 1. Placement.
    let t = Instant::now();
    let snap = settle(cp, &namespace, &ds_names, "the DaemonSets' pods to be placed", Duration::from_secs(3));
    let nodes = ours(&snap);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for ds in &daemon_sets {
        for node in &nodes {
            let ours = admits(ds, node);
            for outcome in outcomes_of(&ours) {
                *outcomes.entry(outcome).or_default() += 1;
            }
            oracle.pair("placement", "admits()", ds, node, &ours, &snap);
        }
    }
    let mut round = 0;
    let recounted = recount(cp, &namespace, &ds_names, &mut round);
    oracle.desired("placement", &daemon_sets, &recounted.nodes, &recounted);
    eprintln!("oracle: what decided the placement pairs: {outcomes:?}; {}", features(&daemon_sets, &nodes));
    let placed = snap.bound.len();
    eprintln!(
        "oracle: placement: {pairs} pairs, {placed} pods running, {} left Pending by the scheduler, settled in {:?}",
        snap.pending.len(),
        t.elapsed()
    );

    // 2. Taints arrive while pods run; other nodes are cordoned.
    let t = Instant::now();
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    // A seeded shuffle: the same nodes for the same seed.
    for i in (1..order.len()).rev() {
        let j = gen.rng.random_range(0..=i);
        order.swap(i, j);
    }
    let late_count = nodes.len() * 2 / 5;
    let mut touched: Vec<String> = Vec::new();
    for &i in order.iter().take(late_count) {
        let node = name_of(&nodes[i].metadata);
        let effect = if gen.chance(0.5) { NS } else { NE };
        let value = if gen.chance(0.5) { "x" } else { "" };
        let taint = format!("{LATE}={value}:{effect}");
        cp.kubectl_ok(&["taint", "nodes", &node, &taint, "--overwrite"]);
        touched.push(node);
    }
    let cordon: Vec<String> =
        order.iter().skip(late_count).take(3).map(|&i| name_of(&nodes[i].metadata)).collect();
    let mut args = vec!["cordon"];
    args.extend(cordon.iter().map(String::as_str));
    cp.kubectl_ok(&args);
    touched.extend(cordon);
    let after =
        settle(cp, &namespace, &ds_names, "the pods after the taints arrived", Duration::from_secs(4));
    let nodes = ours(&after);
    let touched_set: BTreeSet<&String> = touched.iter().collect();
    let mut kept = 0;
    for ds in &daemon_sets {
        for node in nodes.iter().filter(|n| touched_set.contains(&name_of(&n.metadata))) {
            let key = (name_of(&ds.metadata), name_of(&node.metadata));
            if snap.bound.contains_key(&key) {
                let ours = keeps_running(ds, node);
                kept += usize::from(ours.is_admitted() && !admits(ds, node).is_admitted());
                oracle.pair("taints arrive, pod running", "keeps_running()", ds, node, &ours, &after);
            } else {
                oracle.pair("taints arrive, no pod yet", "admits()", ds, node, &admits(ds, node), &after);
            }
        }
    }
    let recounted = recount(cp, &namespace, &ds_names, &mut round);
    oracle.desired("taints arrive", &daemon_sets, &recounted.nodes, &recounted);
    eprintln!(
        "oracle: taints arrived on {late_count} nodes, {} cordoned: {} pods running (was {placed}), \
         {kept} kept running only because they already ran, settled in {:?}",
        touched.len() - late_count,
        after.bound.len(),
        t.elapsed()
    );

    // 3. The pods on those nodes are deleted: new pods only where admitted.
    let t = Instant::now();
    let doomed: Vec<String> = after
        .bound
        .iter()
        .filter(|((_, node), _)| touched_set.contains(node))
        .map(|(_, pod)| pod.clone())
        .collect();
    if !doomed.is_empty() {
        let mut args = vec!["delete", "pods", "--namespace", &namespace, "--wait=false"];
        args.extend(doomed.iter().map(String::as_str));
        cp.kubectl_ok(&args);
    }
    let renewed =
        settle(cp, &namespace, &ds_names, "the pods recreated after the deletion", Duration::from_secs(4));
    let nodes = ours(&renewed);
    for ds in &daemon_sets {
        for node in nodes.iter().filter(|n| touched_set.contains(&name_of(&n.metadata))) {
            oracle.pair("pods deleted under the taints", "admits()", ds, node, &admits(ds, node), &renewed);
        }
    }
    let recounted = recount(cp, &namespace, &ds_names, &mut round);
    oracle.desired("pods deleted", &daemon_sets, &recounted.nodes, &recounted);
    eprintln!(
        "oracle: deleted {} pods on the {} touched nodes: {} pods running, settled in {:?}",
        doomed.len(),
        touched.len(),
        renewed.bound.len(),
        t.elapsed()
    );

    eprintln!(
        "oracle: {} comparisons ({pairs} placement pairs), {} disagreements, rejected {rejected_nodes} node(s) and \
         {rejected_sets} DaemonSet(s); control plane up in {up:?}, test {:?}",
        oracle.compared,
        oracle.disagreements.len(),
        started.elapsed() - up
    );
    if !oracle.disagreements.is_empty() {
        let shown: Vec<&String> = oracle.disagreements.iter().take(40).collect();
        panic!(
            "{} disagreement(s) between Kubernetes and scheduling.rs, {} (first {}):\n{}",
            oracle.disagreements.len(),
            replay(seed),
            shown.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
        );
    }
}
