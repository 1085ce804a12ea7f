//! The CLI run in-process on a fake Kubernetes API, for `cli_live.rs` and
//! `cli_secrets.rs`: kube's `Client` over a `tower-test` mock (`mock_api`)
//! answered by [`FakeApi`], which serves a set of objects, answers writes
//! like an API server (dry runs change nothing), lets a test override any
//! answer, and records every request (`api_request`); the shipped example
//! dumps and Secrets as the API server returns them.

use crate::api_request::{read, Seen};
use crate::mock_api::{mock_client, respond};
use http::{Method, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use terway_hybrid_controller::cli::{self, CliError, Outcome, Term};
use terway_hybrid_testkit::example_dir;

pub struct LibRun {
    pub result: Result<Outcome, CliError>,
    pub stdout: String,
    pub stderr: String,
}

impl LibRun {
    pub fn code(&self) -> u8 {
        match &self.result {
            Ok(o) => o.exit_code(),
            Err(e) => e.exit_code(),
        }
    }
}

impl std::fmt::Display for LibRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}\n--- stdout\n{}--- stderr\n{}", self.result, self.stdout, self.stderr)
    }
}

/// Runs a command line (without the program name) in-process on `client`;
/// `answer` is what a person would type at prompts when `interactive`.
pub async fn run_lib(args: &[&str], client: Option<Client>, interactive: bool, answer: &str) -> LibRun {
    let mut argv = vec!["terway-hybrid"];
    argv.extend_from_slice(args);
    let parsed = cli::parse_args(argv).unwrap_or_else(|e| panic!("{args:?} parses: {e}"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = std::io::Cursor::new(answer.as_bytes().to_vec());
    let result = {
        let mut term = Term::plain(&mut out, &mut err, &mut input);
        term.interactive = interactive;
        cli::run_with_client(parsed, client, &mut term).await
    };
    LibRun {
        result,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// Every object of an example dump, as JSON (its Secret, which holds
/// `<redacted:N>` placeholders rather than base64, left out).
pub fn example_objects(name: &str) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(example_dir(name))
        .expect("the example exists")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let docs: Vec<Value> = if file.extension().is_some_and(|e| e == "json") {
            vec![serde_json::from_str(&text).unwrap()]
        } else {
            use serde::Deserialize;
            yaml_serde::Deserializer::from_str(&text).map(|d| Value::deserialize(d).unwrap()).collect()
        };
        for doc in docs {
            match doc.get("items") {
                Some(Value::Array(items)) => out.extend(items.iter().cloned()),
                _ if doc.is_null() => {}
                _ => out.push(doc),
            }
        }
    }
    out.retain(|o| o["kind"] != "Secret");
    // A DaemonSet's pods carry its selector's labels (the examples leave
    // them out: the dump loader does not need them, a label selector does).
    let selectors: Vec<(Value, Value, Value)> = out
        .iter()
        .filter(|o| o["kind"] == "DaemonSet")
        .map(|d| {
            (
                d["metadata"]["namespace"].clone(),
                d["metadata"]["name"].clone(),
                d["spec"]["selector"]["matchLabels"].clone(),
            )
        })
        .collect();
    for pod in out.iter_mut().filter(|o| o["kind"] == "Pod") {
        let owner = pod["metadata"]["ownerReferences"][0]["name"].clone();
        let ns = pod["metadata"]["namespace"].clone();
        if let Some((_, _, Value::Object(labels))) =
            selectors.iter().find(|(n, name, _)| *n == ns && *name == owner)
        {
            for (k, v) in labels {
                pod["metadata"]["labels"][k] = v.clone();
            }
        }
    }
    out
}

/// A Secret object as the API server returns it (values base64).
pub fn secret_object(namespace: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> =
        data.iter().map(|(k, v)| ((*k).to_owned(), json!(base64(v.as_bytes())))).collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "uid": "uid-secret", "resourceVersion": "77"},
        "data": data})
}

pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Seen {
    pub fn dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|v| v == "All")
    }
}

/// Where an object lives: (api prefix, namespace, plural, name).
pub fn location(o: &Value) -> (String, Option<String>, String, String) {
    let api_version = o["apiVersion"].as_str().unwrap_or("v1");
    let prefix = if api_version == "v1" { "/api/v1".to_owned() } else { format!("/apis/{api_version}") };
    let plural = match o["kind"].as_str().unwrap_or("") {
        "Node" => "nodes",
        "NodeNetworkReport" => "nodenetworkreports",
        "TerwayRollout" => "terwayrollouts",
        "DaemonSet" => "daemonsets",
        "Pod" => "pods",
        "ConfigMap" => "configmaps",
        "Secret" => "secrets",
        "Service" => "services",
        "Installation" => "installations",
        other => panic!("the fake API does not know kind {other}"),
    };
    let ns = o["metadata"]["namespace"].as_str().map(str::to_owned);
    (prefix, ns, plural.to_owned(), o["metadata"]["name"].as_str().unwrap_or("").to_owned())
}

/// A request path split like [`location`]: (prefix, namespace, plural, name).
fn parse_path(path: &str) -> Option<(String, Option<String>, String, Option<String>)> {
    let (prefix, rest) = if let Some(rest) = path.strip_prefix("/api/v1/") {
        ("/api/v1".to_owned(), rest)
    } else {
        let rest = path.strip_prefix("/apis/")?;
        let mut parts = rest.splitn(3, '/');
        let (g, v, rest) = (parts.next()?, parts.next()?, parts.next()?);
        (format!("/apis/{g}/{v}"), rest)
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let (ns, rest) = match parts.as_slice() {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest.to_vec()),
        rest => (None, rest.to_vec()),
    };
    match rest.as_slice() {
        [plural] => Some((prefix, ns, (*plural).to_owned(), None)),
        [plural, name, ..] => Some((prefix, ns, (*plural).to_owned(), Some((*name).to_owned()))),
        _ => None,
    }
}

/// A Status answer, as the API server sends errors.
pub fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    respond(StatusCode::from_u16(code).unwrap(), &body)
}

/// 403 as the API server words it.
pub fn forbidden(
    verb: &str,
    resource: &str,
    group: &str,
    namespace: Option<&str>,
    name: &str,
) -> Response<Body> {
    let qualified = if group.is_empty() { resource.to_owned() } else { format!("{resource}.{group}") };
    let scope = match namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_owned(),
    };
    status(
        403,
        "Forbidden",
        &format!(
            "{qualified} \"{name}\" is forbidden: User \"ci-bot\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
        ),
    )
}

fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

type Override = Box<dyn Fn(&Seen) -> Option<Response<Body>> + Send + Sync>;

/// A fake API server holding `objects`.
pub struct FakeApi {
    pub objects: Arc<Mutex<Vec<Value>>>,
    /// Every request, in arrival order.
    pub log: Arc<Mutex<Vec<Seen>>>,
    overrides: Arc<Mutex<Vec<Override>>>,
}

impl FakeApi {
    pub fn new(mut objects: Vec<Value>) -> Self {
        for o in &mut objects {
            if o["metadata"]["resourceVersion"].is_null() {
                o["metadata"]["resourceVersion"] = json!("1");
            }
        }
        FakeApi { objects: Arc::new(Mutex::new(objects)), log: Arc::default(), overrides: Arc::default() }
    }

    /// Answers a request with `f`'s response when it gives one.
    pub fn on(&self, f: impl Fn(&Seen) -> Option<Response<Body>> + Send + Sync + 'static) {
        self.overrides.lock().unwrap().push(Box::new(f));
    }

    pub fn object(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.objects
            .lock()
            .unwrap()
            .iter()
            .find(|o| {
                o["kind"] == kind
                    && o["metadata"]["name"] == name
                    && o["metadata"]["namespace"].as_str() == namespace
            })
            .cloned()
    }

    /// A client whose requests this fake answers (on a spawned task).
    pub fn client(&self) -> Client {
        let (client, mut handle) = mock_client();
        let objects = self.objects.clone();
        let log = self.log.clone();
        let overrides = self.overrides.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let s = read(request).await;
                log.lock().unwrap().push(s.clone());
                let custom = overrides.lock().unwrap().iter().find_map(|f| f(&s));
                let response = custom.unwrap_or_else(|| answer(&s, &objects));
                send.send_response(response);
            }
        });
        client
    }
}

fn labels_match(o: &Value, selector: Option<&String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else { return true };
    selector.split(',').all(|kv| match kv.split_once('=') {
        Some((k, v)) => o["metadata"]["labels"][k] == v,
        None => false,
    })
}

fn answer(s: &Seen, objects: &Mutex<Vec<Value>>) -> Response<Body> {
    let Some((prefix, ns, plural, name)) = parse_path(&s.path) else {
        return status(404, "NotFound", &format!("the server could not find {}", s.path));
    };
    let mut objects = objects.lock().unwrap();
    let here = |o: &Value| {
        let (p, ons, pl, _) = location(o);
        p == prefix && pl == plural && (ns.is_none() || ons == ns)
    };
    let not_found = |name: &str| status(404, "NotFound", &format!("{plural} \"{name}\" not found"));
    match (&s.method, &name) {
        (&Method::GET, None) => {
            let items: Vec<Value> = objects
                .iter()
                .filter(|o| here(o) && labels_match(o, s.query.get("labelSelector")))
                .cloned()
                .collect();
            respond(
                StatusCode::OK,
                &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "100"}, "items": items}),
            )
        }
        (&Method::GET, Some(name)) => {
            match objects.iter().find(|o| here(o) && o["metadata"]["name"] == *name) {
                Some(o) => respond(StatusCode::OK, o),
                None => not_found(name),
            }
        }
        (&Method::POST, None) => {
            let name = s.body["metadata"]["name"].as_str().unwrap_or("").to_owned();
            if objects.iter().any(|o| here(o) && o["metadata"]["name"] == name) {
                return status(409, "AlreadyExists", &format!("{plural} \"{name}\" already exists"));
            }
            let mut created = s.body.clone();
            created["metadata"]["uid"] = json!("uid-created");
            created["metadata"]["resourceVersion"] = json!("101");
            if !s.dry_run() {
                objects.push(created.clone());
            }
            respond(StatusCode::CREATED, &created)
        }
        (&Method::PUT, Some(name)) | (&Method::PATCH, Some(name)) => {
            // Merging the body into the object is what a server-side apply
            // (all the CLI sends) does; a JSON or strategic merge patch it
            // would garble.
            if s.method == Method::PATCH && s.content_type.as_deref() != Some("application/apply-patch+yaml")
            {
                return status(
                    415,
                    "UnsupportedMediaType",
                    &format!("the fake applies only server-side apply patches, not {:?}", s.content_type),
                );
            }
            let Some(index) = objects.iter().position(|o| here(o) && o["metadata"]["name"] == *name) else {
                return not_found(name);
            };
            let stored_rv = objects[index]["metadata"]["resourceVersion"].clone();
            let sent_rv = &s.body["metadata"]["resourceVersion"];
            if !sent_rv.is_null() && !stored_rv.is_null() && *sent_rv != stored_rv {
                return status(
                    409,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified"
                    ),
                );
            }
            let mut updated = if s.method == Method::PUT { s.body.clone() } else { objects[index].clone() };
            if s.method == Method::PATCH {
                merge(&mut updated, &s.body);
            }
            updated["metadata"]["resourceVersion"] = json!("102");
            if !s.dry_run() {
                objects[index] = updated.clone();
            }
            respond(StatusCode::OK, &updated)
        }
        _ => status(405, "MethodNotAllowed", "not supported by the fake"),
    }
}
