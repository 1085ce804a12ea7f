//! The run loop against a mock API: it reads its Node, applies the report
//! once, and on the next resync (nothing changed) reads the Node again but
//! writes nothing. SIGTERM-equivalent shutdown ends it cleanly.

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use std::time::Duration;
use terway_hybrid_agent::collect::Sources;
use terway_hybrid_agent::run::{run_with, RunConfig};
use terway_hybrid_agent::watch::Debounce;
use tower_test::mock;

fn respond(send: mock::SendResponse<Response<Body>>, body: &Value) {
    send.send_response(
        Response::builder()
            .status(StatusCode::OK)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

#[tokio::test]
async fn resync_without_change_reads_the_node_but_writes_nothing() {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let root = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        sources: Sources::new(root.path()),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        standalone: false,
        node_name: Some("node-1".into()),
        role: None,
        cloud_node_selector: terway_hybrid_api::vocabulary::default_cloud_selector(),
        ecs_metadata_url: "http://127.0.0.1:1/".into(),
        resync: Duration::from_millis(300),
        debounce: Debounce::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(run_with(cfg, Some(client), async {
        let _ = stopped.await;
    }));

    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "uid": "uid-1", "labels": {"kubernetes.io/hostname": "node-1"}}});
    let mut methods = Vec::new();
    // Start: GET node, apply identity, apply status; then resyncs: GET node only.
    for _ in 0..5 {
        let (request, send) =
            tokio::time::timeout(Duration::from_secs(20), handle.next_request()).await.unwrap().unwrap();
        let (parts, body) = request.into_parts();
        methods.push(format!("{} {}", parts.method, parts.uri.path()));
        if parts.method == Method::GET {
            assert_eq!(parts.uri.path(), "/api/v1/nodes/node-1");
            respond(send, &node);
        } else {
            let mut object: Value = serde_json::from_slice(&body.collect_bytes().await.unwrap()).unwrap();
            if parts.uri.path().ends_with("/status") {
                // An on-prem node (no cloud label) with no CNI files.
                assert_eq!(object["status"]["role"], "on-prem");
            }
            object["spec"] = json!({"nodeName": "node-1"});
            respond(send, &object);
        }
    }
    assert_eq!(
        methods,
        [
            "GET /api/v1/nodes/node-1",
            "PATCH /apis/terway-hybrid.io/v1alpha1/nodenetworkreports/node-1",
            "PATCH /apis/terway-hybrid.io/v1alpha1/nodenetworkreports/node-1/status",
            "GET /api/v1/nodes/node-1",
            "GET /api/v1/nodes/node-1",
        ],
        "a resync that changes nothing must not write"
    );
    stop.send(()).unwrap();
    // Answer any request still in flight so shutdown is not held up by it.
    let drain = tokio::spawn(async move {
        while let Some((_, send)) = handle.next_request().await {
            respond(send, &node);
        }
    });
    tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .expect("run ends after shutdown")
        .unwrap()
        .unwrap();
    drain.abort();
}
