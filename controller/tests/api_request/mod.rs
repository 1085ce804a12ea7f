//! One request as a mock API server saw it, read whole, for the tests that
//! look at what the client sent (`reconcile_api.rs`, and `fake_api`).

use crate::mock_api::query;
use http::{Method, Request};
use kube::client::Body;
use serde_json::Value;
use std::collections::BTreeMap;

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
