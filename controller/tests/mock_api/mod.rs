//! kube's `Client` over a `tower-test` mock API server, request queries
//! decoded and JSON answers, for the tests that answer the client's requests
//! themselves (`watch_api.rs`, `reconcile_api.rs`, and `fake_api`). A
//! request read whole is `api_request`.

use http::{Request, Response, StatusCode, Uri};
use kube::client::Body;
use kube::Client;
use serde_json::Value;
use std::collections::BTreeMap;
use tower_test::mock::{self, Handle};

pub type MockHandle = Handle<Request<Body>, Response<Body>>;

/// A kube Client whose every request the test answers through the handle.
pub fn mock_client() -> (Client, MockHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// A JSON answer, as the API server sends objects, lists and errors.
pub fn respond(code: StatusCode, object: &Value) -> Response<Body> {
    respond_bytes(code, serde_json::to_vec(object).expect("JSON"))
}

/// An answer of JSON already written (a watch's events, one a line).
pub fn respond_bytes(code: StatusCode, body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("a response")
}

/// The request's query, decoded.
pub fn query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (decode(k), decode(v))))
        .collect()
}

/// Decodes one `application/x-www-form-urlencoded` query component.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("a %XX escape"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).expect("utf-8")
}
