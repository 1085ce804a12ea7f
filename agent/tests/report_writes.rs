//! Report writes through kube's `Client` over a `tower-test` mock service:
//! the exact server-side-apply requests, no write when nothing changed, and
//! recovery from 409, 500 and timeouts.

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use terway_hybrid_agent::metrics::Metrics;
use terway_hybrid_agent::report::report_status;
use terway_hybrid_agent::writer::{run_writer, Desired, ReportWriter};
use terway_hybrid_api::{
    CheckName, CheckResult, Confidence, Detection, Evidence, NodeDetection, Plugin, Role, Severity,
};
use tokio::sync::watch;
use tower_test::mock::{self, Handle};

type MockHandle = Handle<Request<Body>, Response<Body>>;

const REPORT_PATH: &str = "/apis/terway-hybrid.io/v1alpha1/nodenetworkreports/node-1";

fn mock_client() -> (Client, MockHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

fn node() -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some("node-1".into()),
            uid: Some("0b6f1f4e-uid".into()),
            labels: Some(BTreeMap::from([("alibabacloud.com/external".to_owned(), "true".to_owned())])),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

fn desired(plugin: Plugin) -> Desired {
    let detection = NodeDetection {
        detection: Detection {
            scenario: plugin.scenario(),
            plugin,
            confidence: Confidence::High,
            evidence: vec![Evidence::new("routes", "3 routes")],
            stale: vec![],
        },
        checks: vec![CheckResult::pass(CheckName::ScenarioDetected, Severity::Error, "Detected", "ok")],
        kernel_version: "5.10.134".into(),
        bgp_peers: vec![],
        pod_mtu: None,
        cloud_network: None,
    };
    Desired { node: node(), status: report_status(&detection, Role::Cloud, Time(Timestamp::now())) }
}

/// The next request, with its query as a map and its body as JSON.
async fn next(
    handle: &mut MockHandle,
) -> (Request<()>, BTreeMap<String, String>, Value, mock::SendResponse<Response<Body>>) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(30), handle.next_request())
        .await
        .expect("a request within 30 s")
        .expect("the service is alive");
    let (parts, body) = request.into_parts();
    let query: BTreeMap<String, String> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let bytes = body.collect_bytes().await.unwrap();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (Request::from_parts(parts, ()), query, body, send)
}

/// The server's answer to an apply: the whole object (a status apply
/// carries no spec, the stored object has one).
fn ok(body: &Value) -> Response<Body> {
    let mut object = body.clone();
    object["spec"] = json!({"nodeName": "node-1"});
    Response::builder().status(StatusCode::OK).body(Body::from(serde_json::to_vec(&object).unwrap())).unwrap()
}

fn failure(code: StatusCode, reason: &str) -> Response<Body> {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": reason,
        "reason": reason, "code": code.as_u16()});
    Response::builder().status(code).body(Body::from(serde_json::to_vec(&status).unwrap())).unwrap()
}

/// Asserts a server-side apply by the agent's field manager at `path`.
fn assert_apply(request: &Request<()>, query: &BTreeMap<String, String>, path: &str) {
    assert_eq!(request.method(), Method::PATCH);
    assert_eq!(request.uri().path(), path);
    assert_eq!(request.headers()["content-type"], "application/apply-patch+yaml");
    assert_eq!(query.get("fieldManager").map(String::as_str), Some("terway-hybrid-agent"));
    assert_eq!(query.get("force").map(String::as_str), Some("true"));
}

/// A request arrives within `wait` (false when none does).
async fn any_request(handle: &mut MockHandle, wait: Duration) -> bool {
    tokio::time::timeout(wait, handle.next_request()).await.is_ok()
}

#[tokio::test]
async fn exact_apply_requests_and_no_write_when_unchanged() {
    let (client, mut handle) = mock_client();
    let mut writer = ReportWriter::new(client);
    let first = desired(Plugin::Terway);

    let server = tokio::spawn(async move {
        let (req, query, body, send) = next(&mut handle).await;
        assert_apply(&req, &query, REPORT_PATH);
        assert_eq!(body["apiVersion"], "terway-hybrid.io/v1alpha1");
        assert_eq!(body["kind"], "NodeNetworkReport");
        assert_eq!(body["metadata"]["name"], "node-1");
        assert_eq!(body["metadata"]["labels"]["terway-hybrid.io/node-name"], "node-1");
        let owner = &body["metadata"]["ownerReferences"][0];
        assert_eq!((owner["kind"].as_str(), owner["uid"].as_str()), (Some("Node"), Some("0b6f1f4e-uid")));
        assert_eq!(body["spec"]["nodeName"], "node-1");
        assert!(body.get("status").is_none(), "identity and status are separate applies");
        send.send_response(ok(&body));

        let (req, query, body, send) = next(&mut handle).await;
        assert_apply(&req, &query, &format!("{REPORT_PATH}/status"));
        let status = &body["status"];
        assert_eq!(
            (status["scenario"].as_str(), status["plugin"].as_str()),
            (Some("unknown"), Some("terway"))
        );
        assert_eq!((status["role"].as_str(), status["ready"].as_bool()), (Some("cloud"), Some(true)));
        assert_eq!(status["checks"][0]["name"], "ScenarioDetected");
        assert!(status["lastDetected"].as_str().unwrap().ends_with('Z'));
        send.send_response(ok(&body));
        handle
    });
    assert!(writer.write(&first).await.unwrap());
    let mut handle = server.await.unwrap();

    // Same content, detected later: nothing is sent.
    let again = Desired { status: report_status_like(&first, Timestamp::now()), ..first.clone() };
    assert!(!writer.write(&again).await.unwrap());
    assert!(!any_request(&mut handle, Duration::from_millis(200)).await, "an unchanged report was written");

    // Changed content: only the status is applied again.
    let changed = desired(Plugin::CalicoBgp);
    let server = tokio::spawn(async move {
        let (req, query, body, send) = next(&mut handle).await;
        assert_apply(&req, &query, &format!("{REPORT_PATH}/status"));
        assert_eq!(body["status"]["plugin"], "calico-bgp");
        send.send_response(ok(&body));
    });
    assert!(writer.write(&changed).await.unwrap());
    server.await.unwrap();
}

fn report_status_like(d: &Desired, at: Timestamp) -> terway_hybrid_api::NodeNetworkReportStatus {
    let mut s = d.status.clone();
    s.last_detected = Time(at);
    s
}

fn counter(metrics: &Metrics, result: &str) -> u64 {
    let line = format!("terway_hybrid_agent_report_writes_total{{result=\"{result}\"}} ");
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&line).map(|v| v.parse().unwrap()))
        .unwrap_or_else(|| panic!("no {line}"))
}

/// 500, then 409, then a request that never answers (timeout): the writer
/// backs off and retries each time, and the report lands once.
#[tokio::test(start_paused = true)]
async fn recovers_from_500_409_and_timeouts() {
    let (client, mut handle) = mock_client();
    let metrics = Metrics::new();
    let (tx, rx) = watch::channel(Some(desired(Plugin::CalicoBgp)));
    let (_stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run_writer(ReportWriter::new(client), rx, stopped, metrics.clone()));

    let (req, _, _, send) = next(&mut handle).await;
    assert_eq!(req.uri().path(), REPORT_PATH);
    send.send_response(failure(StatusCode::INTERNAL_SERVER_ERROR, "InternalError"));
    let (req, _, _, send) = next(&mut handle).await;
    assert_eq!(req.uri().path(), REPORT_PATH, "retried after a 500");
    send.send_response(failure(StatusCode::CONFLICT, "Conflict"));
    let (req, _, _, silent) = next(&mut handle).await;
    assert_eq!(req.uri().path(), REPORT_PATH, "retried after a 409");
    // Never answered: the writer gives up on it after its request timeout.
    let (req, _, body, send) = next(&mut handle).await;
    drop(silent);
    assert_eq!(req.uri().path(), REPORT_PATH, "retried after a timeout");
    send.send_response(ok(&body));
    let (req, _, body, send) = next(&mut handle).await;
    assert_eq!(req.uri().path(), format!("{REPORT_PATH}/status"));
    send.send_response(ok(&body));

    // Settled: nothing more is sent until the content changes.
    assert!(!any_request(&mut handle, Duration::from_secs(600)).await);
    assert_eq!((counter(&metrics, "error"), counter(&metrics, "success")), (3, 1));
    drop(tx);
    task.await.unwrap();
}

/// While the writer backs off, a newer detection replaces the pending one:
/// what lands is the newest content, never a stale one.
#[tokio::test(start_paused = true)]
async fn newer_content_replaces_a_pending_retry() {
    let (client, mut handle) = mock_client();
    let (tx, rx) = watch::channel(Some(desired(Plugin::FlannelVxlan)));
    let (_stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run_writer(ReportWriter::new(client), rx, stopped, Metrics::new()));

    let (_, _, body, send) = next(&mut handle).await;
    send.send_response(ok(&body));
    let (_, _, body, send) = next(&mut handle).await;
    assert_eq!(body["status"]["plugin"], "flannel-vxlan");
    send.send_response(failure(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"));

    tx.send_replace(Some(desired(Plugin::CalicoBgp)));
    let (req, _, body, send) = next(&mut handle).await;
    assert!(req.uri().path().ends_with("/status"));
    assert_eq!(body["status"]["plugin"], "calico-bgp");
    send.send_response(ok(&body));
    drop(tx);
    task.await.unwrap();
}

/// Shutdown while a write is in flight: the write is finished, then the
/// writer stops.
#[tokio::test]
async fn shutdown_finishes_the_write_in_flight() {
    let (client, mut handle) = mock_client();
    let metrics = Metrics::new();
    let (_tx, rx) = watch::channel(Some(desired(Plugin::CalicoBgp)));
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run_writer(ReportWriter::new(client), rx, stopped, metrics.clone()));

    let (_, _, body, send) = next(&mut handle).await;
    stop.send(true).unwrap();
    send.send_response(ok(&body));
    let (_, _, body, send) = next(&mut handle).await;
    send.send_response(ok(&body));
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("the writer stops").unwrap();
    assert_eq!(counter(&metrics, "success"), 1);
}

fn probe_result(node: &str, reachable: bool, rtt_ms: f64) -> terway_hybrid_api::cross_site::ProbeResult {
    terway_hybrid_api::cross_site::ProbeResult {
        node: node.into(),
        address: "10.1.0.1:9799".into(),
        path: terway_hybrid_api::cross_site::ProbePath::Host,
        reachable,
        rtt_ms: Some(rtt_ms),
        path_mtu: reachable.then_some(1500),
        route: Some("dev eth0 proto kernel".into()),
        note: None,
        probed: Time(Timestamp::now()),
    }
}

/// The detection and the probe results, from two sources, land in one
/// status: a new detection keeps the latest probes and new probes keep the
/// latest detection. A round whose only news is round trips and times sends
/// nothing; a change of reachability does.
#[tokio::test(start_paused = true)]
async fn detection_and_probes_compose_into_one_status() {
    use terway_hybrid_agent::writer::run_writer_with_probes;
    let (client, mut handle) = mock_client();
    let (tx, rx) = watch::channel(Some(desired(Plugin::CalicoBgp)));
    let (probes_tx, probes) = watch::channel(Vec::new());
    let (_stop, stopped) = watch::channel(false);
    let task =
        tokio::spawn(run_writer_with_probes(ReportWriter::new(client), rx, probes, stopped, Metrics::new()));

    let (_, _, body, send) = next(&mut handle).await;
    assert!(body.get("status").is_none());
    send.send_response(ok(&body));
    let (_, _, body, send) = next(&mut handle).await;
    assert_eq!(body["status"]["plugin"], "calico-bgp");
    assert!(body["status"].get("probes").is_none(), "no round yet: {body}");
    send.send_response(ok(&body));

    probes_tx.send_replace(vec![probe_result("ecs-1", true, 1.5)]);
    let (req, _, body, send) = next(&mut handle).await;
    assert!(req.uri().path().ends_with("/status"));
    assert_eq!(body["status"]["plugin"], "calico-bgp", "the detection stays: {body}");
    assert_eq!(body["status"]["probes"][0]["node"], "ecs-1");
    assert_eq!(body["status"]["probes"][0]["rttMs"], 1.5);
    send.send_response(ok(&body));

    // Jitter only: nothing is sent.
    probes_tx.send_replace(vec![probe_result("ecs-1", true, 7.25)]);
    assert!(!any_request(&mut handle, Duration::from_secs(120)).await, "a write for round-trip jitter");

    // A new detection keeps the latest probes (with the latest round trip).
    tx.send_replace(Some(desired(Plugin::FlannelVxlan)));
    let (_, _, body, send) = next(&mut handle).await;
    assert_eq!(body["status"]["plugin"], "flannel-vxlan");
    assert_eq!(body["status"]["probes"][0]["rttMs"], 7.25, "the probes stay: {body}");
    send.send_response(ok(&body));

    // Reachability changes: written.
    probes_tx.send_replace(vec![probe_result("ecs-1", false, 0.0)]);
    let (_, _, body, send) = next(&mut handle).await;
    assert_eq!(body["status"]["probes"][0]["reachable"], false);
    assert_eq!(body["status"]["plugin"], "flannel-vxlan");
    send.send_response(ok(&body));

    // The probing side going away does not spin the writer or stop it.
    drop(probes_tx);
    assert!(!any_request(&mut handle, Duration::from_secs(60)).await);
    drop(tx);
    task.await.unwrap();
}
