//! The live controller's writes through kube's `Client` over a `tower-test`
//! mock API server: the exact requests of a reconcile (server-side applies
//! of node labels and of the TerwayRollout status, the create of a missing
//! TerwayRollout, the gate removal, the Events of kube's Recorder, the probe
//! targets last and bounded per reconcile), that a settled cluster gets no
//! request at all, and recovery from 409, 500, a
//! request never answered and a rollout wave that times out.

mod api_request;
mod mock_api;
use api_request::{read, Seen};
use http::{Method, Response, StatusCode};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::Client;
use mock_api::{mock_client, respond, MockHandle};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use terway_hybrid_api::rollout::{condition, GATE_LABEL, GATE_OPEN, PREFLIGHT_LABEL, SCENARIO_LABEL};
use terway_hybrid_api::{CheckName, CheckStatus, TerwayRollout, TerwayRolloutSpec, TerwayRolloutStatus};
use terway_hybrid_controller::daemon::apply::Applier;
use terway_hybrid_controller::daemon::metrics::Metrics;
use terway_hybrid_controller::daemon::reconcile::{reconcile, Memo, Outcome, PROBE_WRITES_PER_RECONCILE};
use terway_hybrid_controller::pure::actions::probe_actions;
use terway_hybrid_controller::pure::plan::Plan;
use terway_hybrid_controller::pure::probe_plan;
use terway_hybrid_controller::pure::view::ClusterView;
use terway_hybrid_controller::{cli::dump, pure::affinity};
use terway_hybrid_testkit::example_dir;
use tokio::sync::Notify;

const FIELD_MANAGER: &str = "terway-hybrid-controller";
const INSTANCE: &str = "terway-hybrid-controller-7d9f-abcde";
const ROLLOUT_PATH: &str = "/apis/terway-hybrid.io/v1alpha1/terwayrollouts";
const STATUS_PATH: &str = "/apis/terway-hybrid.io/v1alpha1/terwayrollouts/default/status";
/// kube's Recorder puts the Events of a cluster-scoped object in `default`.
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
const NODES_PATH: &str = "/api/v1/nodes/";
const REPORTS_PATH: &str = "/apis/terway-hybrid.io/v1alpha1/nodenetworkreports/";
const CLOUD: [&str; 2] = ["cloud-1", "cloud-2"];
const ON_PREM: [&str; 3] = ["onprem-1", "onprem-2", "onprem-3"];

// ---- the mock API server ----

impl Seen {
    fn node(&self) -> Option<&str> {
        self.path.strip_prefix(NODES_PATH)
    }

    fn is_event(&self) -> bool {
        self.method == Method::POST && self.path == EVENTS_PATH
    }

    /// The node whose report's probe targets this request applies.
    fn report(&self) -> Option<&str> {
        self.path.strip_prefix(REPORTS_PATH)
    }

    fn is_status(&self) -> bool {
        self.path == STATUS_PATH
    }

    fn labels(&self) -> &serde_json::Map<String, Value> {
        self.body["metadata"]["labels"].as_object().expect("a body with metadata.labels")
    }
}

/// One line per request, for failure messages.
fn summary(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .map(|s| {
            let what = if s.node().is_some() {
                s.body["metadata"]["labels"].to_string()
            } else if s.is_event() {
                format!("{} {}", s.body["type"], s.body["reason"])
            } else if s.is_status() {
                let conditions = s.body["status"]["conditions"].as_array().cloned().unwrap_or_default();
                let c: Vec<String> = conditions
                    .iter()
                    .map(|c| format!("{}={} {}", c["type"], c["status"], c["reason"]))
                    .collect();
                format!(
                    "wave {} {}; {}",
                    s.body["status"]["currentWave"],
                    s.body["status"]["wave"],
                    c.join(", ")
                )
            } else {
                String::new()
            };
            format!("{} {} {what}", s.method, s.path)
        })
        .collect()
}

fn failure(code: StatusCode, reason: &str) -> Response<Body> {
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{reason} (from the test)"), "reason": reason, "code": code.as_u16()});
    respond(code, &status)
}

/// What a real API server answers to each write the controller makes: the
/// whole stored object after the write.
fn answer(s: &Seen, view: &ClusterView) -> Response<Body> {
    let stamp = |object: &mut Value, rv: &str| {
        object["metadata"]["resourceVersion"] = json!(rv);
        if object["metadata"].get("uid").is_none() {
            object["metadata"]["uid"] = json!("5a3c7e0e-8d6b-4b57-9f55-0a6c1b1f0001");
        }
    };
    if let Some(name) = s.node() {
        let node = view.nodes.iter().find(|n| n.metadata.name.as_deref() == Some(name));
        let Some(node) = node else { return failure(StatusCode::NOT_FOUND, "NotFound") };
        let mut object = serde_json::to_value(&**node).unwrap();
        object["apiVersion"] = json!("v1");
        object["kind"] = json!("Node");
        if object["metadata"].get("labels").is_none_or(Value::is_null) {
            object["metadata"]["labels"] = json!({});
        }
        for (k, v) in s.labels() {
            let labels = object["metadata"]["labels"].as_object_mut().unwrap();
            if v.is_null() {
                labels.remove(k);
            } else {
                labels.insert(k.clone(), v.clone());
            }
        }
        stamp(&mut object, "4242");
        return respond(StatusCode::OK, &object);
    }
    if s.is_status() {
        let rollout = view
            .rollout
            .clone()
            .unwrap_or_else(|| TerwayRollout::new("default", TerwayRolloutSpec::default()));
        let mut object = serde_json::to_value(rollout).unwrap();
        object["status"] = s.body["status"].clone();
        stamp(&mut object, "4243");
        return respond(StatusCode::OK, &object);
    }
    if s.method == Method::POST && s.path == ROLLOUT_PATH {
        let mut object = s.body.clone();
        object["metadata"]["generation"] = json!(1);
        object["metadata"]["creationTimestamp"] = json!(Timestamp::now().to_string());
        stamp(&mut object, "4244");
        return respond(StatusCode::CREATED, &object);
    }
    if let Some(name) = s.report() {
        let report = view.reports.iter().find(|r| r.metadata.name.as_deref() == Some(name));
        let Some(report) = report else { return failure(StatusCode::NOT_FOUND, "NotFound") };
        let mut object = serde_json::to_value(&**report).unwrap();
        object["spec"]["probeTargets"] = s.body["spec"].get("probeTargets").cloned().unwrap_or(json!([]));
        stamp(&mut object, "4246");
        return respond(StatusCode::OK, &object);
    }
    if s.is_event() {
        let mut object = s.body.clone();
        object["metadata"]["namespace"] = json!("default");
        stamp(&mut object, "4245");
        return respond(StatusCode::CREATED, &object);
    }
    failure(StatusCode::NOT_FOUND, "NotFound")
}

/// Runs one reconcile while serving its requests with `reply` (None: the
/// request is never answered). Every request the reconcile sends is
/// returned, in order; the reconcile awaits each answer, so once it has
/// returned no request can still be on its way.
async fn reconcile_with(
    view: &ClusterView,
    applier: &Applier,
    metrics: &Metrics,
    memo: &mut Memo,
    handle: &mut MockHandle,
    mut reply: impl FnMut(&Seen) -> Option<Response<Body>>,
) -> (Plan, Outcome, Vec<Seen>) {
    let done = Notify::new();
    let work = async {
        let out = reconcile(view, applier, metrics, memo).await;
        done.notify_one();
        out
    };
    let serve = async {
        let mut seen = Vec::new();
        let mut unanswered = Vec::new();
        loop {
            tokio::select! {
                biased;
                next = handle.next_request() => {
                    let (request, send) = next.expect("the client is alive");
                    let s = read(request).await;
                    match reply(&s) {
                        Some(response) => send.send_response(response),
                        None => unanswered.push(send),
                    }
                    seen.push(s);
                }
                () = done.notified() => break,
            }
        }
        seen
    };
    let ((plan, outcome), seen) = tokio::join!(work, serve);
    (plan, outcome, seen)
}

/// A request arrives within `wait` (false when none does).
async fn any_request(handle: &mut MockHandle, wait: Duration) -> bool {
    tokio::time::timeout(wait, handle.next_request()).await.is_ok()
}

fn errors_total(metrics: &Metrics) -> u64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("terway_hybrid_controller_reconcile_errors_total "))
        .map(|v| v.trim().parse().unwrap())
        .expect("the errors counter is exported")
}

// ---- views ----

/// An example dump whose reports already carry their probe targets, and
/// their results as healthy agents write them: these tests are about
/// labels, gates and the status (the targets' writes are tested in
/// `probe_plan` and `cluster_probes.rs`, the checks of the results in
/// `cross_site`).
fn example(name: &str) -> ClusterView {
    let mut view = dump::load(&example_dir(name)).unwrap_or_else(|e| panic!("example {name} loads: {e}"));
    let targets = terway_hybrid_controller::pure::probe_plan::targets(&view, 9799);
    for r in view.reports.iter_mut().map(Arc::make_mut) {
        r.spec.probe_targets =
            targets.get(r.metadata.name.as_deref().unwrap_or("")).cloned().unwrap_or_default();
        if let Some(status) = r.status.as_mut() {
            status.probes = r
                .spec
                .probe_targets
                .iter()
                .map(|t| terway_hybrid_api::ProbeResult {
                    node: t.node.clone(),
                    address: t.address.clone(),
                    path: t.path,
                    reachable: true,
                    rtt_ms: Some(1.5),
                    path_mtu: Some(1500),
                    route: None,
                    note: None,
                    probed: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                    ),
                })
                .collect();
        }
    }
    view
}

/// bgp-pass, with Terway already requiring the gate (so a wave can open)
/// and `maxUnavailable` cloud nodes per wave.
fn bgp_view(max_unavailable: i32) -> ClusterView {
    let mut view = example("bgp-pass");
    let terway = view
        .daemon_sets
        .iter_mut()
        .find(|d| d.metadata.name.as_deref() == Some("terway-eniip"))
        .expect("the example has Terway");
    *terway = affinity::require_gate_daemon_set(terway);
    view.rollout.as_mut().expect("the example has a TerwayRollout").spec.max_unavailable =
        IntOrString::Int(max_unavailable);
    view
}

fn labels_mut<'a>(view: &'a mut ClusterView, node: &str) -> &'a mut BTreeMap<String, String> {
    view.nodes
        .iter_mut()
        .find(|n| n.metadata.name.as_deref() == Some(node))
        .map(Arc::make_mut)
        .unwrap_or_else(|| panic!("no node {node}"))
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
}

/// What the watches would show once the writes of `plan` landed: the labels
/// of its rows on every node but those in `except`.
fn land_labels(view: &mut ClusterView, plan: &Plan, except: &[&str]) {
    for row in plan.nodes.iter().filter(|r| !except.contains(&r.name.as_str())) {
        let labels = labels_mut(view, &row.name);
        labels.remove(GATE_LABEL);
        labels.extend(row.labels.iter().cloned());
    }
}

/// A status as the API server stores it and the watch gives it back
/// (metav1.Time has whole seconds on the wire).
fn stored(status: &TerwayRolloutStatus) -> TerwayRolloutStatus {
    serde_json::from_value(serde_json::to_value(status).unwrap()).unwrap()
}

fn land_status(view: &mut ClusterView, status: &TerwayRolloutStatus) {
    view.rollout.get_or_insert_with(|| TerwayRollout::new("default", TerwayRolloutSpec::default())).status =
        Some(stored(status));
}

fn land(view: &mut ClusterView, plan: &Plan) {
    land_labels(view, plan, &[]);
    land_status(view, &plan.status);
}

// ---- assertions ----

/// A server-side apply by the controller, forced.
fn assert_apply(s: &Seen, path: &str) {
    assert_eq!(s.method, Method::PATCH, "{s:?}");
    assert_eq!(s.path, path);
    assert_eq!(s.content_type.as_deref(), Some("application/apply-patch+yaml"), "{s:?}");
    assert_eq!(s.query.get("fieldManager").map(String::as_str), Some(FIELD_MANAGER), "{s:?}");
    assert_eq!(s.query.get("force").map(String::as_str), Some("true"), "{s:?}");
    assert!(!s.query.contains_key("dryRun"), "{s:?}");
}

/// A node label apply: exactly the controller's labels, nothing else in the body.
fn assert_node_apply(s: &Seen, node: &str, scenario: &str, gate: bool) {
    assert_apply(s, &format!("{NODES_PATH}{node}"));
    let top: Vec<&str> = s.body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(top, ["apiVersion", "kind", "metadata"], "{node}: {}", s.body);
    assert_eq!((s.body["apiVersion"].as_str(), s.body["kind"].as_str()), (Some("v1"), Some("Node")));
    let meta: Vec<&str> = s.body["metadata"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(meta, ["labels", "name"], "{node}: {}", s.body);
    assert_eq!(s.body["metadata"]["name"], node);
    let mut want = json!({SCENARIO_LABEL: scenario, PREFLIGHT_LABEL: "passed"});
    if gate {
        want[GATE_LABEL] = json!(GATE_OPEN);
    }
    assert_eq!(s.body["metadata"]["labels"], want, "labels applied on {node}");
}

fn assert_status_apply(s: &Seen, plan: &Plan) {
    assert_apply(s, STATUS_PATH);
    assert_eq!(s.body["apiVersion"], "terway-hybrid.io/v1alpha1");
    assert_eq!(s.body["kind"], "TerwayRollout");
    assert_eq!(s.body["metadata"]["name"], "default");
    assert!(s.body.get("spec").is_none(), "a status apply carries no spec: {}", s.body);
    let sent: TerwayRolloutStatus = serde_json::from_value(s.body["status"].clone()).unwrap();
    assert_eq!(sent, stored(&plan.status), "the status written is the plan's");
}

/// The Events of `plan`, in order, as kube's Recorder posts them.
fn assert_events(events: &[&Seen], plan: &Plan) {
    let reasons: Vec<&str> = events.iter().map(|e| e.body["reason"].as_str().unwrap()).collect();
    let planned: Vec<&str> = plan.events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, planned, "one Event per planned event, each once");
    for (e, planned) in events.iter().zip(&plan.events) {
        assert_eq!(e.method, Method::POST);
        assert_eq!(e.path, EVENTS_PATH);
        assert_eq!(e.content_type.as_deref(), Some("application/json"));
        let b = &e.body;
        assert_eq!((b["apiVersion"].as_str(), b["kind"].as_str()), (Some("events.k8s.io/v1"), Some("Event")));
        assert_eq!(b["type"], if planned.warning { "Warning" } else { "Normal" }, "{b}");
        assert_eq!(b["note"], planned.message.as_str());
        assert_eq!(b["action"], "Reconcile");
        assert_eq!(b["reportingController"], FIELD_MANAGER);
        assert_eq!(b["reportingInstance"], INSTANCE);
        let regarding = &b["regarding"];
        assert_eq!(regarding["apiVersion"], "terway-hybrid.io/v1alpha1");
        assert_eq!(regarding["kind"], "TerwayRollout");
        assert_eq!(regarding["name"], "default");
        assert!(b["eventTime"].as_str().is_some_and(|t| t.ends_with('Z')), "{b}");
    }
}

fn gate_in_body(s: &Seen) -> bool {
    s.node().is_some() && s.labels().get(GATE_LABEL).is_some_and(|v| v == GATE_OPEN)
}

fn cond<'a>(status: &'a TerwayRolloutStatus, type_: &str) -> (&'a str, &'a str, &'a str) {
    let c = status.conditions.iter().find(|c| c.type_ == type_).expect("the condition");
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

fn applier(client: Client) -> Applier {
    Applier::new(client, Some(INSTANCE.to_owned()))
}

// ---- the tests ----

/// 1. A first reconcile on bgp-pass: every node labelled, the first wave's
///    gate opened (at most maxUnavailable nodes, never an on-prem one), the
///    status applied, then the Events. With those writes landed, the next
///    reconcile sends nothing at all.
#[tokio::test]
async fn first_reconcile_writes_exactly_and_a_settled_cluster_gets_no_request() {
    let (client, mut handle) = mock_client();
    let (applier, metrics, mut memo) = (applier(client), Metrics::new(), Memo::default());
    let mut view = bgp_view(1);

    let (plan, outcome, seen) =
        reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| Some(answer(s, &view))).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(plan.passed);
    assert_eq!(plan.status.current_wave, 1);

    // The node label applies come first, one per node, in name order.
    let nodes: Vec<&str> = seen.iter().filter_map(Seen::node).collect();
    assert_eq!(nodes, ["cloud-1", "cloud-2", "onprem-1", "onprem-2", "onprem-3"]);
    for s in &seen[..5] {
        let node = s.node().unwrap();
        assert_node_apply(s, node, "bgp", node == "cloud-1");
    }
    let gated: Vec<&str> = seen.iter().filter(|s| gate_in_body(s)).filter_map(Seen::node).collect();
    assert_eq!(gated, ["cloud-1"], "the first wave opens at most maxUnavailable (1) gates");
    assert!(gated.iter().all(|n| CLOUD.contains(n)), "never the gate on an on-prem node");
    assert_eq!(plan.status.wave.as_ref().map(|w| w.nodes.clone()), Some(vec!["cloud-1".to_owned()]));

    // Then the status, then the Events of its conditions.
    assert_status_apply(&seen[5], &plan);
    assert_eq!(cond(&plan.status, condition::PROGRESSING).1, "WaveInProgress");
    let events: Vec<&Seen> = seen[6..].iter().collect();
    assert!(events.iter().all(|e| e.is_event()), "only Events after the status: {:#?}", summary(&seen));
    assert_eq!(events.len(), 5, "one per new condition");
    assert_events(&events, &plan);
    assert_eq!(outcome.writes, seen.len());
    assert_eq!(errors_total(&metrics), 0);

    // The writes landed (as the watches show them): nothing more to send.
    land(&mut view, &plan);
    let (again, outcome, seen) =
        reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| Some(answer(s, &view))).await;
    assert!(seen.is_empty(), "a settled cluster got requests: {:#?}", summary(&seen));
    assert_eq!((outcome.writes, outcome.errors.len()), (0, 0));
    assert_eq!(stored(&again.status), stored(&plan.status));
    assert!(!any_request(&mut handle, Duration::from_millis(200)).await, "a request after the reconcile");
}

/// 2. No TerwayRollout: it is created (POST, the defaults) first; a 409 (a
///    peer created it first) is no error. Its Events have no object yet: none
///    is sent.
#[tokio::test]
async fn a_missing_rollout_is_created_with_the_defaults_and_409_is_fine() {
    let (client, mut handle) = mock_client();
    let (applier, metrics, mut memo) = (applier(client), Metrics::new(), Memo::default());
    let mut view = bgp_view(1);
    view.rollout = None;

    let (plan, outcome, seen) = reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| {
        Some(if s.method == Method::POST && s.path == ROLLOUT_PATH {
            failure(StatusCode::CONFLICT, "AlreadyExists")
        } else {
            answer(s, &view)
        })
    })
    .await;
    assert!(outcome.errors.is_empty(), "a 409 on the create is no error: {:?}", outcome.errors);
    assert_eq!(errors_total(&metrics), 0);

    let create = &seen[0];
    assert_eq!((create.method.clone(), create.path.as_str()), (Method::POST, ROLLOUT_PATH));
    assert_eq!(create.content_type.as_deref(), Some("application/json"));
    let b = &create.body;
    assert_eq!(
        (b["apiVersion"].as_str(), b["kind"].as_str()),
        (Some("terway-hybrid.io/v1alpha1"), Some("TerwayRollout"))
    );
    assert_eq!(b["metadata"]["name"], "default");
    assert_eq!(b["spec"], serde_json::to_value(TerwayRolloutSpec::default()).unwrap());
    assert_eq!(b["spec"]["mode"], "Manual", "the defaults open no gate");
    assert_eq!(b["spec"]["maxUnavailable"], 1);
    assert_eq!(b["spec"]["readinessTimeout"], "10m");
    assert_eq!(b["spec"]["cloudNodeSelector"], json!({"alibabacloud.com/external": "true"}));
    assert_eq!(b["spec"]["terway"], json!({"namespace": "kube-system", "daemonSetName": "terway-eniip"}));
    assert!(b.get("status").is_none_or(Value::is_null), "a create carries no status: {b}");

    // Manual mode (the defaults): labels but no gate; the status and its
    // Events wait for the next reconcile, which sees the created object.
    let nodes: Vec<&str> = seen.iter().filter_map(Seen::node).collect();
    assert_eq!(nodes, ["cloud-1", "cloud-2", "onprem-1", "onprem-2", "onprem-3"]);
    for s in seen.iter().filter(|s| s.node().is_some()) {
        assert_node_apply(s, s.node().unwrap(), "bgp", false);
    }
    assert_eq!(cond(&plan.status, condition::PROGRESSING).1, "ManualMode");
    assert_eq!(seen.len(), 6, "no status and no Event without the object: {:#?}", summary(&seen));

    // A 201 is just as good.
    let (_, outcome, seen) =
        reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| Some(answer(s, &view))).await;
    assert!(outcome.errors.is_empty());
    assert_eq!((seen[0].method.clone(), seen[0].path.as_str()), (Method::POST, ROLLOUT_PATH));
}

/// 3a. A 500 on the status write: that reconcile's Events are not sent (they
///     belong to the status); the next reconcile on the same view resends the
///     status and then every Event exactly once. Settled, nothing is sent.
#[tokio::test]
async fn status_500_holds_the_events_back_until_the_status_lands() {
    let (client, mut handle) = mock_client();
    let (applier, metrics, mut memo) = (applier(client), Metrics::new(), Memo::default());
    let mut view = bgp_view(1);

    let (first, outcome, seen) = reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| {
        Some(if s.is_status() {
            failure(StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
        } else {
            answer(s, &view)
        })
    })
    .await;
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    assert!(outcome.errors[0].contains("status"), "{:?}", outcome.errors);
    assert_eq!(errors_total(&metrics), 1);
    assert_eq!(seen.iter().filter(|s| s.is_status()).count(), 1);
    assert!(!seen.iter().any(Seen::is_event), "Events sent although their status failed");
    assert_eq!(seen.len(), 6, "5 node applies and the failed status");

    // The same view again (the status never landed).
    let (second, outcome, seen) =
        reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| Some(answer(s, &view))).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(errors_total(&metrics), 1);
    let status_at = seen.iter().position(Seen::is_status).expect("the status is resent");
    assert_status_apply(&seen[status_at], &second);
    let events: Vec<&Seen> = seen[status_at + 1..].iter().collect();
    assert!(events.iter().all(|s| s.is_event()));
    assert_eq!(second.events, first.events, "the same view plans the same Events");
    assert_events(&events, &second);

    land(&mut view, &second);
    let (_, outcome, seen) =
        reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| Some(answer(s, &view))).await;
    assert!(seen.is_empty(), "settled, yet: {:#?}", summary(&seen));
    assert!(outcome.errors.is_empty());
}

/// 3b. As 3a, but the node labels of the first reconcile did land (the
///     watch shows them before the retry): the retried status must still
///     record the wave the gate was opened for, with its Events once.
///     Fails at 58151c3: with no wave in the status, `plan` sees cloud-1
///     gated and unready outside any wave and reports Progressing=False
///     Complete (wave 0), so no readiness timeout ever applies to cloud-1.
#[tokio::test]
async fn status_500_after_the_gate_landed_keeps_the_wave() {
    let (client, mut handle) = mock_client();
    let (applier, metrics, mut memo) = (applier(client), Metrics::new(), Memo::default());
    let mut view = bgp_view(1);

    let (first, _, seen) = reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| {
        Some(if s.is_status() {
            failure(StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
        } else {
            answer(s, &view)
        })
    })
    .await;
    assert_eq!(
        seen.iter().filter(|s| gate_in_body(s)).filter_map(Seen::node).collect::<Vec<_>>(),
        ["cloud-1"]
    );
    land_labels(&mut view, &first, &[]);

    let (second, outcome, seen) =
        reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| Some(answer(s, &view))).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(seen.iter().all(|s| s.node().is_none()), "the labels are in place: {:#?}", summary(&seen));
    assert_status_apply(&seen[0], &second);
    // cloud-1's gate is open and its Terway is not Ready: wave 1 is still in
    // progress (and its readiness timeout must still apply).
    assert_eq!(
        cond(&second.status, condition::PROGRESSING).1,
        "WaveInProgress",
        "status after a lost status write: {:#?}",
        second.status.conditions
    );
    assert_eq!(second.status.current_wave, 1);
    assert_eq!(second.status.wave.as_ref().map(|w| w.nodes.clone()), Some(vec!["cloud-1".to_owned()]));
    let events: Vec<&Seen> = seen[1..].iter().collect();
    assert_eq!(
        events.iter().map(|e| e.body["reason"].as_str().unwrap()).collect::<Vec<_>>(),
        first.events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        "the Events the failed status write held back, once"
    );
}

/// 3c. A 409 on one node's label apply: counted as an error, every other
///     write still happens; the next reconcile retries that node only.
#[tokio::test]
async fn node_409_is_an_error_and_only_that_node_is_retried() {
    let (client, mut handle) = mock_client();
    let (applier, metrics, mut memo) = (applier(client), Metrics::new(), Memo::default());
    let mut view = bgp_view(1);

    let (plan, outcome, seen) = reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| {
        Some(if s.node() == Some("onprem-2") {
            failure(StatusCode::CONFLICT, "Conflict")
        } else {
            answer(s, &view)
        })
    })
    .await;
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    assert!(outcome.errors[0].contains("onprem-2"), "{:?}", outcome.errors);
    assert_eq!(errors_total(&metrics), 1);
    let nodes: Vec<&str> = seen.iter().filter_map(Seen::node).collect();
    assert_eq!(nodes, ["cloud-1", "cloud-2", "onprem-1", "onprem-2", "onprem-3"], "the others still written");
    assert_eq!(seen.iter().filter(|s| s.is_status()).count(), 1);
    assert_eq!(seen.iter().filter(|s| s.is_event()).count(), plan.events.len());
    assert_eq!(outcome.writes, seen.len() - 1);

    land_labels(&mut view, &plan, &["onprem-2"]);
    land_status(&mut view, &plan.status);
    let (_, outcome, seen) =
        reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| Some(answer(s, &view))).await;
    assert!(outcome.errors.is_empty());
    assert_eq!(seen.len(), 1, "only the failed write is retried: {:#?}", summary(&seen));
    assert_node_apply(&seen[0], "onprem-2", "bgp", false);
    assert_eq!(errors_total(&metrics), 1);
}

/// 3d. As 3c, on the node the first wave opens the gate on: the retry must
///     still open it (the wave, recorded in the status, waits for that node).
///     Fails at 58151c3: `plan` keeps only gates already on nodes, so the
///     retry applies cloud-1's labels without the gate; the wave then waits
///     for a Terway pod that cannot come, and times out.
#[tokio::test]
async fn node_409_on_the_wave_node_retries_its_gate() {
    let (client, mut handle) = mock_client();
    let (applier, metrics, mut memo) = (applier(client), Metrics::new(), Memo::default());
    let mut view = bgp_view(1);

    let (plan, outcome, seen) = reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| {
        Some(if s.node() == Some("cloud-1") {
            failure(StatusCode::CONFLICT, "Conflict")
        } else {
            answer(s, &view)
        })
    })
    .await;
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    assert!(gate_in_body(&seen[0]) && seen[0].node() == Some("cloud-1"));
    assert_eq!(plan.status.wave.as_ref().map(|w| w.nodes.clone()), Some(vec!["cloud-1".to_owned()]));

    land_labels(&mut view, &plan, &["cloud-1"]);
    land_status(&mut view, &plan.status);
    let (_, outcome, seen) =
        reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| Some(answer(s, &view))).await;
    assert!(outcome.errors.is_empty());
    assert_eq!(seen.len(), 1, "only the failed write is retried: {:#?}", summary(&seen));
    assert_node_apply(&seen[0], "cloud-1", "bgp", true);
}

/// 5. A request never answered: the Applier gives up after 15 s, counts an
///    error, and the reconcile goes on with the other writes.
#[tokio::test(start_paused = true)]
async fn an_unanswered_request_times_out_and_the_reconcile_goes_on() {
    let (client, mut handle) = mock_client();
    let (applier, metrics, mut memo) = (applier(client), Metrics::new(), Memo::default());
    let view = bgp_view(1);

    let started = tokio::time::Instant::now();
    let (plan, outcome, seen) = reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| {
        (s.node() != Some("cloud-2")).then(|| answer(s, &view))
    })
    .await;
    assert!(started.elapsed() >= Duration::from_secs(15), "gave up after {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(30), "waited {:?}", started.elapsed());
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    assert!(outcome.errors[0].contains("cloud-2") && outcome.errors[0].contains("no answer within 15s"));
    assert_eq!(errors_total(&metrics), 1);
    let nodes: Vec<&str> = seen.iter().filter_map(Seen::node).collect();
    assert_eq!(nodes, ["cloud-1", "cloud-2", "onprem-1", "onprem-2", "onprem-3"], "the reconcile went on");
    assert_eq!(seen.iter().filter(|s| s.is_status()).count(), 1);
    assert_eq!(seen.iter().filter(|s| s.is_event()).count(), plan.events.len());
    assert_eq!(outcome.writes, seen.len() - 1);

    // An unanswered status write is a failed one: its Events wait.
    let (_, outcome, seen) = reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| {
        (!s.is_status()).then(|| answer(s, &view))
    })
    .await;
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    assert!(outcome.errors[0].contains("no answer within 15s"), "{:?}", outcome.errors);
    assert!(
        seen.last().is_some_and(Seen::is_status),
        "no Event after an unanswered status: {:#?}",
        summary(&seen)
    );
    assert_eq!(errors_total(&metrics), 2);
}

/// An on-prem node found with the gate open: a merge patch removes the label
/// whoever set it (no force, not an apply), and the status says why.
#[tokio::test]
async fn a_gate_on_an_on_prem_node_is_removed_by_merge_patch() {
    let (client, mut handle) = mock_client();
    let (applier, metrics, mut memo) = (applier(client), Metrics::new(), Memo::default());
    let mut view = bgp_view(1);
    let (settled, _, _) =
        reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| Some(answer(s, &view))).await;
    land(&mut view, &settled);
    labels_mut(&mut view, "onprem-1").insert(GATE_LABEL.to_owned(), GATE_OPEN.to_owned());

    let (plan, outcome, seen) =
        reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| Some(answer(s, &view))).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let remove = &seen[0];
    assert_eq!((remove.method.clone(), remove.path.as_str()), (Method::PATCH, "/api/v1/nodes/onprem-1"));
    assert_eq!(remove.content_type.as_deref(), Some("application/merge-patch+json"));
    assert_eq!(remove.query.get("fieldManager").map(String::as_str), Some(FIELD_MANAGER));
    assert!(!remove.query.contains_key("force"), "{:?}", remove.query);
    assert_eq!(remove.body, json!({"metadata": {"labels": {GATE_LABEL: null}}}));
    assert!(
        seen.iter().filter(|s| s.node().is_some()).count() == 1,
        "only the gate differs: {:#?}",
        summary(&seen)
    );
    assert_status_apply(&seen[1], &plan);
    assert_eq!(cond(&plan.status, condition::DEGRADED).1, "OnPremGated");
    assert!(ON_PREM.iter().all(|n| !plan.nodes.iter().any(|r| r.name == *n && r.gate)));
}

/// A reconcile that assigns probe targets judges the cluster as it will be
/// once they land: their results are not in, so CrossSiteConnectivity fails
/// (`NotProbedYet`) and no gate opens, though the preflight would pass on
/// the view as it is (no targets: nothing was ever asked).
#[tokio::test]
async fn targets_being_assigned_open_no_wave() {
    let (client, mut handle) = mock_client();
    let (applier, metrics, mut memo) = (applier(client), Metrics::new(), Memo::default());
    let mut view = bgp_view(1);
    for r in view.reports.iter_mut().map(Arc::make_mut) {
        r.spec.probe_targets.clear();
        if let Some(s) = r.status.as_mut() {
            s.probes.clear();
        }
    }
    let as_is = terway_hybrid_controller::pure::plan::plan(&view, k8s_openapi::jiff::Timestamp::now());
    assert!(as_is.passed, "without targets the check skips: {:#?}", as_is.checks);

    let (plan, outcome, seen) =
        reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| Some(answer(s, &view))).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let check = plan.checks.iter().find(|c| c.name == CheckName::CrossSiteConnectivity).unwrap();
    assert_eq!((check.status, check.reason.as_str()), (CheckStatus::Fail, "NotProbedYet"), "{check:?}");
    assert!(!plan.passed);
    assert!(!seen.iter().any(gate_in_body), "a gate opened while the targets were being assigned");
    let targets_written = seen.iter().filter(|s| s.report().is_some()).count();
    assert_eq!(targets_written, view.reports.len(), "every report gets its targets");
    // Last: the labels and the status never wait for them.
    let first_target = seen.iter().position(|s| s.report().is_some()).unwrap();
    assert!(seen[first_target..].iter().all(|s| s.report().is_some()), "{:#?}", summary(&seen));
    assert!(seen[..first_target].iter().any(Seen::is_status), "{:#?}", summary(&seen));
}

/// bgp-pass with every node and its report copied `copies` times under new
/// names (`cloud-1-7`, ...), no report with targets yet.
fn many_nodes(copies: usize) -> ClusterView {
    let base = bgp_view(1);
    let mut view = base.clone();
    view.nodes.clear();
    view.reports.clear();
    let rename = |meta: &mut kube::api::ObjectMeta, k: usize| {
        meta.name = meta.name.as_ref().map(|n| format!("{n}-{k}"));
    };
    for k in 0..copies {
        for node in &base.nodes {
            let mut node = (**node).clone();
            rename(&mut node.metadata, k);
            view.nodes.push(Arc::new(node));
        }
        for report in &base.reports {
            let mut report = (**report).clone();
            rename(&mut report.metadata, k);
            report.spec.node_name = format!("{}-{k}", report.spec.node_name);
            report.spec.probe_targets.clear();
            if let Some(s) = report.status.as_mut() {
                s.probes.clear();
            }
            view.reports.push(Arc::new(report));
        }
    }
    view
}

/// One reconcile sends at most `PROBE_WRITES_PER_RECONCILE` probe-target
/// writes, after the labels and the status, and says how many it left; the
/// reconciles after it send exactly the rest, no report twice.
#[tokio::test]
async fn probe_target_writes_are_bounded_per_reconcile() {
    let (client, mut handle) = mock_client();
    let (applier, metrics, mut memo) = (applier(client), Metrics::new(), Memo::default());
    let mut view = many_nodes(120);
    let nodes = view.nodes.len();
    let mut pending = probe_actions(&view, &probe_plan::targets(&view, 9799)).len();
    assert!(pending > 2 * PROBE_WRITES_PER_RECONCILE, "{pending} writes: too few to test the bound");

    let mut written = std::collections::BTreeSet::new();
    for round in 0.. {
        let (plan, outcome, seen) =
            reconcile_with(&view, &applier, &metrics, &mut memo, &mut handle, |s| Some(answer(s, &view)))
                .await;
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        let targets: Vec<&Seen> = seen.iter().filter(|s| s.report().is_some()).collect();
        assert_eq!(targets.len(), pending.min(PROBE_WRITES_PER_RECONCILE), "round {round}");
        assert_eq!(outcome.deferred, pending - targets.len(), "round {round}");
        if round == 0 {
            assert_eq!(
                seen.iter().filter(|s| s.node().is_some()).count(),
                nodes,
                "every node labelled at once"
            );
            let first_target = seen.iter().position(|s| s.report().is_some()).unwrap();
            assert!(seen[..first_target].iter().any(Seen::is_status), "{:#?}", summary(&seen));
            assert!(seen[first_target..].iter().all(|s| s.report().is_some()), "{:#?}", summary(&seen));
        }
        // The share landed, and the status (not the labels: a wave's gate
        // landing would give its node pod targets).
        land_status(&mut view, &plan.status);
        for s in targets {
            let name = s.report().unwrap();
            assert!(written.insert(name.to_owned()), "{name} written twice");
            let r = view.reports.iter_mut().find(|r| r.metadata.name.as_deref() == Some(name)).unwrap();
            Arc::make_mut(r).spec.probe_targets =
                serde_json::from_value(s.body["spec"]["probeTargets"].clone()).unwrap_or_default();
        }
        pending = outcome.deferred;
        if pending == 0 {
            break;
        }
    }
    assert_eq!(probe_actions(&view, &probe_plan::targets(&view, 9799)), [], "every target landed");
}
