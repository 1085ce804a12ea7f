//! Shared by the tests that talk to kube's `Client` over a `tower-test` mock
//! API server: the client and the percent-decoding of request queries.
#![allow(dead_code)] // each test binary uses a different subset

use http::{Method, Request, Response, Uri};
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

/// One request as the API server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: Option<String>,
    pub body: Value,
}

/// Reads a request whole: its query decoded, its body as JSON (Null when empty).
pub async fn read(request: Request<Body>) -> Seen {
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.expect("a request body");
    Seen {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: query(&parts.uri),
        content_type: parts.headers.get("content-type").map(|v| v.to_str().unwrap().to_owned()),
        body: if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON body")
        },
    }
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
