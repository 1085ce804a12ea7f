//! The Terway gate at admission: a mutating webhook that adds the gate
//! requirement to Terway's DaemonSet on CREATE and UPDATE, so the API server
//! never stores it ungated (docs/architecture.md, "The gate at admission").
//!
//! The add-on manager creates Terway's DaemonSet selecting every cloud node;
//! without this the DaemonSet controller places a Terway pod on each of them
//! within a second, before any watch of ours sees the DaemonSet. The rule is
//! the reconciler's own ([`affinity::require_gate`], ANDed into every required
//! term; nothing when [`affinity::requires_gate`] already holds), turned into
//! a JSONPatch here; it is not written twice.
//!
//! - [`review`]: pure; an AdmissionReview in, the answer out.
//! - [`configuration`]: pure; the MutatingWebhookConfiguration the leader
//!   applies (the webhook in `Auto` mode, none in `Manual`).
//! - [`serve`]: HTTPS with a certificate that can be swapped while serving.

use crate::daemon::certs::Resolver;
use crate::pure::affinity;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use k8s_openapi::api::core::v1::Affinity;
use k8s_openapi::ByteString;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::DynamicObject;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use terway_hybrid_api::rollout::Mode;
use terway_hybrid_api::TerwayRolloutSpec;

/// Where the webhook is served.
pub const PATH: &str = "/mutate/terway-gate";
/// The MutatingWebhookConfiguration (shipped empty in deploy/base, filled
/// in by the leader).
pub const CONFIGURATION_NAME: &str = "terway-hybrid-terway-gate";
/// The webhook's name inside it.
pub const WEBHOOK_NAME: &str = "terway-gate.terway-hybrid.io";
/// How long the API server waits for an answer. The webhook adds about
/// 7 ms (p50) and 35 ms (p99) to a Terway write even on a loaded machine
/// (docs/benchmarks.md); a short timeout bounds how long a Terway write
/// hangs while no replica answers, after which it fails.
const TIMEOUT_SECONDS: i32 = 5;

/// How the API server reaches the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientConfig {
    /// A Service in front of the controller's pods (the manifests).
    Service { namespace: String, name: String, port: u16 },
    /// An explicit `https://` URL (`--webhook-url`: an API server that
    /// reaches the controller directly, as in the tests).
    Url(String),
}

impl ClientConfig {
    /// The names the serving certificate must carry for this config.
    pub fn server_names(&self) -> Vec<String> {
        match self {
            ClientConfig::Service { namespace, name, .. } => {
                vec![format!("{name}.{namespace}.svc"), format!("{name}.{namespace}.svc.cluster.local")]
            }
            ClientConfig::Url(url) => {
                let rest = url.strip_prefix("https://").unwrap_or(url);
                let host_port = rest.split('/').next().unwrap_or_default();
                let host = match host_port.strip_prefix('[') {
                    Some(v6) => v6.split(']').next().unwrap_or_default(),
                    None => host_port.rsplit_once(':').map_or(host_port, |(h, _)| h),
                };
                vec![host.to_owned()]
            }
        }
    }

    fn to_json(&self, ca_bundle: &str) -> Value {
        let ca = ByteString(ca_bundle.as_bytes().to_vec());
        match self {
            ClientConfig::Service { namespace, name, port } => json!({
                "service": {"namespace": namespace, "name": name, "path": PATH, "port": port},
                "caBundle": ca,
            }),
            ClientConfig::Url(url) => json!({"url": url, "caBundle": ca}),
        }
    }
}

/// The DaemonSet `object` with the gate requirement, as a JSONPatch; None
/// when it already requires the gate. The same rule as the reconciler's
/// ([`crate::pure::plan`] applies `require_gate` when `requires_gate` fails).
pub fn gate_patch(object: &Value) -> Result<Option<json_patch::Patch>, String> {
    let current: Option<Affinity> = match object.pointer("/spec/template/spec/affinity") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value(v.clone())
                .map_err(|e| format!("spec.template.spec.affinity cannot be read: {e}"))?,
        ),
    };
    if affinity::requires_gate(current.as_ref()) {
        return Ok(None);
    }
    let gated = affinity::require_gate(current.as_ref());
    // Parents a malformed object lacks are added so the patch applies; the
    // API server's validation then rejects the object for what it lacks.
    let mut ops = Vec::new();
    for parent in ["/spec", "/spec/template", "/spec/template/spec"] {
        if !matches!(object.pointer(parent), Some(Value::Object(_))) {
            ops.push(json!({"op": "add", "path": parent, "value": {}}));
        }
    }
    // `add` of an existing member replaces it: the whole affinity, because
    // the rule rewrites terms, keeping everything else it holds.
    ops.push(json!({"op": "add", "path": "/spec/template/spec/affinity", "value": gated}));
    serde_json::from_value(Value::Array(ops)).map(Some).map_err(|e| e.to_string())
}

/// Whether the request writes the DaemonSet the rollout names as Terway.
pub fn is_terway(spec: &TerwayRolloutSpec, request: &AdmissionRequest<DynamicObject>) -> bool {
    let name = request
        .object
        .as_ref()
        .and_then(|o| o.metadata.name.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or(&request.name);
    request.kind.group == "apps"
        && request.kind.kind == "DaemonSet"
        && request.sub_resource.as_deref().unwrap_or("").is_empty()
        && matches!(request.operation, Operation::Create | Operation::Update)
        && request.namespace.as_deref() == Some(spec.terway.namespace.as_str())
        && name == spec.terway.daemon_set_name
}

/// The answer to one AdmissionReview: the gate added to Terway's DaemonSet
/// in `Auto` mode; every other request (another object, `Manual` mode, no
/// TerwayRollout yet) is allowed unchanged. `spec` is the TerwayRollout's
/// (None: there is none, which means the defaults, i.e. `Manual`).
fn review(spec: Option<&TerwayRolloutSpec>, body: &[u8]) -> AdmissionReview<DynamicObject> {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return AdmissionResponse::invalid(format!("not an AdmissionReview: {e}")).into_review(),
    };
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return AdmissionResponse::invalid(e.to_string()).into_review(),
    };
    let default = TerwayRolloutSpec::default();
    let spec = spec.unwrap_or(&default);
    let response = AdmissionResponse::from(&request);
    if spec.mode != Mode::Auto || !is_terway(spec, &request) {
        return response.into_review();
    }
    let object = match request.object.as_ref().map(serde_json::to_value) {
        Some(Ok(v)) => v,
        _ => return response.deny("the request carries no DaemonSet").into_review(),
    };
    let what = format!("{}/{}", spec.terway.namespace, spec.terway.daemon_set_name);
    match gate_patch(&object) {
        Ok(None) => response.into_review(),
        Ok(Some(patch)) => {
            tracing::info!(daemonset = %what, operation = ?request.operation, user = ?request.user_info.username,
                "admission: added the Terway gate requirement");
            match response.with_patch(patch) {
                Ok(r) => r.into_review(),
                Err(e) => AdmissionResponse::from(&request).deny(e.to_string()).into_review(),
            }
        }
        // Fail closed: an affinity the rule cannot read must not be stored ungated.
        Err(e) => {
            response.deny(format!("terway-hybrid cannot add the Terway gate to {what}: {e}")).into_review()
        }
    }
}

/// The MutatingWebhookConfiguration the leader applies (server-side, as its
/// field manager): in `Auto` mode one webhook for exactly the Terway
/// DaemonSet the TerwayRollout names; in `Manual` mode none, so nothing is
/// intercepted at all.
///
/// Failure policy `Fail`: while no replica answers, a CREATE or UPDATE of
/// Terway's DaemonSet is rejected rather than stored ungated (which would put
/// Terway on every cloud node at once, the very thing the gate prevents). The
/// scope makes that safe for everything else: the namespace selector and the
/// rule select DaemonSets in Terway's namespace, and the match condition
/// (evaluated by the API server before it calls out) narrows that to the one
/// name, so no other object ever waits on the webhook; status writes
/// (`daemonsets/status`, the DaemonSet controller's) are not matched either,
/// and Terway's running pods are untouched.
pub fn configuration(spec: &TerwayRolloutSpec, client: &ClientConfig, ca_bundle: &str) -> Value {
    let webhooks = if spec.mode == Mode::Auto {
        let name = &spec.terway.daemon_set_name;
        vec![json!({
            "name": WEBHOOK_NAME,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": TIMEOUT_SECONDS,
            "matchPolicy": "Equivalent",
            // Another mutating webhook (or policy) that rewrites the affinity
            // after ours gets the gate added again.
            "reinvocationPolicy": "IfNeeded",
            "clientConfig": client.to_json(ca_bundle),
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": spec.terway.namespace}},
            "objectSelector": {},
            "rules": [{
                "apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                "resources": ["daemonsets"], "scope": "Namespaced",
            }],
            // objectSelector cannot select by name; a CEL match condition can.
            "matchConditions": [{
                "name": "is-terway",
                "expression": match_expression(name),
            }],
        })]
    } else {
        vec![]
    };
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME},
        "webhooks": webhooks,
    })
}

/// Whether the configuration the server holds (`actual`, as read back) is
/// `desired`: every webhook field `desired` sets has that value, whatever
/// the server added (defaults, metadata). The leader reads the object and
/// applies only when this fails, so a steady state sends no write.
pub fn holds(actual: &Value, desired: &Value) -> bool {
    // The server leaves an empty list out.
    let webhooks = |v: &Value| v.get("webhooks").cloned().unwrap_or_else(|| json!([]));
    subset(&webhooks(actual), &webhooks(desired))
}

/// Every key of `want` is in `have` with a value `subset` of it; lists
/// match element by element, of the same length; anything else is equal.
fn subset(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => want.iter().all(|(k, w)| match have.get(k) {
            Some(h) => subset(h, w),
            // An empty value is left out by the server.
            None => w.as_object().is_some_and(|o| o.is_empty()) || w.as_array().is_some_and(|a| a.is_empty()),
        }),
        (Value::Array(have), Value::Array(want)) => {
            have.len() == want.len() && have.iter().zip(want).all(|(h, w)| subset(h, w))
        }
        _ => have == want,
    }
}

/// The CEL match condition that selects the DaemonSet named `name`.
pub fn match_expression(name: &str) -> String {
    format!("object.metadata.name == {}", cel_string(name))
}

/// A CEL string literal.
fn cel_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// What the webhook's handler needs: the TerwayRollout spec, as the
/// replica's watch holds it now.
pub type SpecSource = Arc<dyn Fn() -> Option<TerwayRolloutSpec> + Send + Sync>;

pub fn router(spec: SpecSource) -> Router {
    Router::new()
        .route(
            PATH,
            post(|State(spec): State<SpecSource>, body: Bytes| async move {
                let answer = review(spec().as_ref(), &body);
                match serde_json::to_vec(&answer) {
                    Ok(json) => {
                        ([(axum::http::header::CONTENT_TYPE, "application/json")], json).into_response()
                    }
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
                }
            }),
        )
        .with_state(spec)
}

/// Serves `router` over TLS on `listener`, presenting whatever certificate
/// `resolver` holds at each handshake. Runs until the task is aborted.
pub async fn serve(listener: tokio::net::TcpListener, resolver: Arc<Resolver>, router: Router) {
    let config =
        match rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
        {
            Ok(b) => b.with_no_client_auth().with_cert_resolver(resolver),
            Err(e) => {
                tracing::error!(error = %e, "webhook TLS configuration");
                return;
            }
        };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let (tcp, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "webhook accept");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let service = hyper_util::service::TowerToHyperService::new(router);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "webhook connection");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::scheduling::admits;
    use k8s_openapi::api::apps::v1::DaemonSet;
    use k8s_openapi::api::core::v1::Node;
    use std::collections::BTreeMap;
    use terway_hybrid_api::rollout::{GATE_LABEL, GATE_OPEN};

    /// What the server gives back holds what was applied, defaults and
    /// metadata added; an edit or an emptied object does not.
    #[test]
    fn holds_reads_back_what_was_applied() {
        let spec = TerwayRolloutSpec { mode: Mode::Auto, ..TerwayRolloutSpec::default() };
        let client = ClientConfig::Url("https://10.0.0.1:9443/mutate/terway-gate".into());
        let desired = configuration(&spec, &client, "PEM");
        let mut served = desired.clone();
        served["metadata"] = json!({"name": CONFIGURATION_NAME, "uid": "u", "resourceVersion": "7",
            "managedFields": [{"manager": "terway-hybrid-controller"}]});
        let hook = &mut served["webhooks"][0];
        hook["rules"][0]["extra"] = json!("defaulted");
        hook["namespaceSelector"]["matchExpressions"] = json!([]);
        hook.as_object_mut().unwrap().remove("objectSelector");
        assert!(holds(&served, &desired));

        let mut edited = served.clone();
        edited["webhooks"][0]["failurePolicy"] = json!("Ignore");
        assert!(!holds(&edited, &desired));
        let mut other_ca = served.clone();
        other_ca["webhooks"][0]["clientConfig"]["caBundle"] = json!("T1RIRVI=");
        assert!(!holds(&other_ca, &desired));
        let mut two = served.clone();
        two["webhooks"].as_array_mut().unwrap().push(json!({"name": "another"}));
        assert!(!holds(&two, &desired));
        // Emptied by a re-apply of the shipped manifests: no `webhooks` at all.
        let shipped = json!({"metadata": {"name": CONFIGURATION_NAME}});
        assert!(!holds(&shipped, &desired));
        // ...which is what Manual mode wants.
        let manual = configuration(&TerwayRolloutSpec::default(), &client, "PEM");
        assert!(holds(&shipped, &manual));
        assert!(!holds(&served, &manual));
    }

    fn terway(affinity: Value) -> Value {
        let mut pod_spec = json!({"hostNetwork": true, "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "terway", "image": "terway:v1"}]});
        if !affinity.is_null() {
            pod_spec["affinity"] = affinity;
        }
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "terway-eniip", "namespace": "kube-system", "labels": {"app": "terway-eniip"}},
            "spec": {"selector": {"matchLabels": {"app": "terway-eniip"}},
                "template": {"metadata": {"labels": {"app": "terway-eniip"}}, "spec": pod_spec}}})
    }

    fn addon_affinity() -> Value {
        json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "alibabacloud.com/external", "operator": "In", "values": ["true"]}]},
            {"matchExpressions": [{"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}]}]}}})
    }

    fn request(operation: &str, object: &Value) -> Vec<u8> {
        let ns = object["metadata"]["namespace"].clone();
        let name = object["metadata"]["name"].clone();
        let kind = object["kind"].as_str().unwrap_or("DaemonSet");
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "0b9e", "kind": {"group": "apps", "version": "v1", "kind": kind},
                "resource": {"group": "apps", "version": "v1", "resource": "daemonsets"},
                "name": name, "namespace": ns, "operation": operation,
                "userInfo": {"username": "onectl"}, "object": object,
                "oldObject": if operation == "UPDATE" { object.clone() } else { Value::Null }}
        }))
        .unwrap()
    }

    fn auto() -> TerwayRolloutSpec {
        TerwayRolloutSpec { mode: Mode::Auto, ..TerwayRolloutSpec::default() }
    }

    /// The object as the API server stores it after the answer's patch.
    fn admitted(spec: Option<&TerwayRolloutSpec>, operation: &str, object: &Value) -> Value {
        let answer = serde_json::to_value(review(spec, &request(operation, object))).unwrap();
        let response = &answer["response"];
        assert_eq!(response["uid"], "0b9e");
        assert_eq!(response["allowed"], true, "{answer:#}");
        let mut stored = object.clone();
        if !response["patch"].is_null() {
            assert_eq!(response["patchType"], "JSONPatch");
            // kube-core sends the bytes as a JSON array, which the API
            // server's decoder reads into its []byte as well as base64.
            let bytes: Vec<u8> = serde_json::from_value(response["patch"].clone()).unwrap();
            let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
            json_patch::patch(&mut stored, &patch).unwrap();
        }
        stored
    }

    fn node(labels: &[(&str, &str)]) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some("n".into());
        n.metadata.labels =
            Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>());
        n
    }

    #[test]
    fn auto_mode_gates_terway_exactly_as_the_reconciler_does() {
        for affinity in [Value::Null, addon_affinity()] {
            let object = terway(affinity);
            for op in ["CREATE", "UPDATE"] {
                let stored = admitted(Some(&auto()), op, &object);
                let before: DaemonSet = serde_json::from_value(object.clone()).unwrap();
                let after: DaemonSet = serde_json::from_value(stored.clone()).unwrap();
                // The reconciler's own rule, applied to the typed object.
                assert_eq!(after, affinity::require_gate_daemon_set(&before), "{op}");
                assert!(crate::pure::checks::terway_requires_gate(&after));
                // Nothing but the affinity changed.
                let mut rest = stored.clone();
                rest["spec"]["template"]["spec"]["affinity"] = Value::Null;
                let mut was = object.clone();
                was["spec"]["template"]["spec"]["affinity"] = Value::Null;
                assert_eq!(rest, was);
                // A cloud node with no gate is not admitted; with one, it is.
                let cloud = [("alibabacloud.com/external", "true"), ("kubernetes.io/os", "linux")];
                assert!(!admits(&after, &node(&cloud)).is_admitted());
                let mut open = cloud.to_vec();
                open.push((GATE_LABEL, GATE_OPEN));
                assert!(admits(&after, &node(&open)).is_admitted());
            }
        }
    }

    #[test]
    fn an_already_gated_terway_gets_no_patch() {
        let once = admitted(Some(&auto()), "CREATE", &terway(addon_affinity()));
        let answer = serde_json::to_value(review(Some(&auto()), &request("UPDATE", &once))).unwrap();
        assert_eq!(answer["response"]["allowed"], true);
        assert!(answer["response"]["patch"].is_null(), "{answer:#}");
    }

    #[test]
    fn manual_mode_and_every_other_object_pass_untouched() {
        let object = terway(Value::Null);
        let manual = TerwayRolloutSpec::default();
        assert_eq!(admitted(Some(&manual), "CREATE", &object), object);
        assert_eq!(admitted(None, "CREATE", &object), object, "no TerwayRollout: the defaults (Manual)");
        let mut other = object.clone();
        other["metadata"]["name"] = json!("kube-proxy");
        assert_eq!(admitted(Some(&auto()), "CREATE", &other), other);
        let mut elsewhere = object.clone();
        elsewhere["metadata"]["namespace"] = json!("default");
        assert_eq!(admitted(Some(&auto()), "UPDATE", &elsewhere), elsewhere);
        let mut custom = auto();
        custom.terway.daemon_set_name = "my-terway".into();
        assert_eq!(admitted(Some(&custom), "CREATE", &object), object);
        let mut mine = object.clone();
        mine["metadata"]["name"] = json!("my-terway");
        assert!(crate::pure::checks::terway_requires_gate(
            &serde_json::from_value(admitted(Some(&custom), "CREATE", &mine)).unwrap()
        ));
    }

    #[test]
    fn an_unreadable_affinity_is_denied_not_stored_ungated() {
        let object = terway(json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": 7}}));
        let answer = serde_json::to_value(review(Some(&auto()), &request("CREATE", &object))).unwrap();
        assert_eq!(answer["response"]["allowed"], false, "{answer:#}");
        let garbage = serde_json::to_value(review(Some(&auto()), b"{")).unwrap();
        assert_eq!(garbage["response"]["allowed"], false);
    }

    #[test]
    fn the_configuration_follows_the_mode_and_names_only_terway() {
        let url = ClientConfig::Url("https://127.0.0.1:9443/mutate/terway-gate".into());
        assert_eq!(url.server_names(), ["127.0.0.1"]);
        let svc = ClientConfig::Service {
            namespace: "terway-hybrid".into(),
            name: "terway-hybrid-controller".into(),
            port: 9443,
        };
        assert_eq!(svc.server_names()[0], "terway-hybrid-controller.terway-hybrid.svc");
        let manual = configuration(&TerwayRolloutSpec::default(), &svc, "PEM");
        assert_eq!(manual["webhooks"], json!([]));
        let auto = configuration(&auto(), &svc, "PEM");
        let hook = &auto["webhooks"][0];
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["timeoutSeconds"], TIMEOUT_SECONDS);
        assert_eq!(hook["matchConditions"][0]["expression"], "object.metadata.name == 'terway-eniip'");
        assert_eq!(hook["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "kube-system");
        assert_eq!(hook["clientConfig"]["service"]["path"], PATH);
        assert_eq!(hook["clientConfig"]["caBundle"], "UEVN");
        assert_eq!(cel_string("a'b\\"), r"'a\'b\\'");
    }
}
