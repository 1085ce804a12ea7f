//! Every kustomization of deploy/ renders (`kubectl kustomize`) into objects
//! of kinds we know, each loading into its k8s-openapi type and serializing
//! back unchanged (so a misspelt field cannot hide); the CRDs are the
//! committed ones; the shipped TerwayRollout passes the CRD's rules (kube's
//! client-side CEL).
//!
//! Needs `kubectl` (>= 1.27, kustomize v5).

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::serde::de::DeserializeOwned;
use k8s_openapi::serde::Serialize;
use k8s_openapi::Resource;
use serde_json::Value;
use std::collections::BTreeSet;
use terway_hybrid_testkit::manifests::{
    first_difference, name_of, read, rendering, renderings, yaml_documents, NAMESPACE, WITH_MONITORING,
};

/// Objects that have no k8s-openapi type: the Prometheus Operator's and ours.
const UNTYPED: [(&str, &str); 3] = [
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("terway-hybrid.io/v1alpha1", "TerwayRollout"),
];

/// Loads the object into `K` and serializes it back: the same JSON comes out
/// only if every field is one `K` knows (serde drops unknown ones silently).
fn round_trip<K: Resource + DeserializeOwned + Serialize>(v: &Value) -> Result<(), String> {
    let typed: K = serde_json::from_value(v.clone()).map_err(|e| format!("does not load: {e}"))?;
    let back = serde_json::to_value(&typed).expect("a typed object serializes");
    match first_difference(v, &back, "") {
        None => Ok(()),
        Some(d) => Err(format!("changes when loaded as {} (unknown or misspelt field?): {d}", K::KIND)),
    }
}

fn check_typed(v: &Value) -> Result<(), String> {
    let (av, kind) = (v["apiVersion"].as_str().unwrap_or(""), v["kind"].as_str().unwrap_or(""));
    macro_rules! typed {
        ($($t:ty),* $(,)?) => {
            $(if av == <$t>::API_VERSION && kind == <$t>::KIND { return round_trip::<$t>(v); })*
        };
    }
    typed!(
        Namespace,
        ServiceAccount,
        ClusterRole,
        ClusterRoleBinding,
        Role,
        RoleBinding,
        DaemonSet,
        Deployment,
        Service,
        ConfigMap,
        PodDisruptionBudget,
        CustomResourceDefinition,
        ValidatingAdmissionPolicy,
        ValidatingAdmissionPolicyBinding,
        MutatingWebhookConfiguration,
    );
    if UNTYPED.contains(&(av, kind)) {
        return Ok(());
    }
    Err(format!("{av} {kind} is a kind this test does not know: add it here and check it"))
}

#[test]
fn every_kustomization_renders_into_known_typed_objects() {
    for r in renderings() {
        assert!(!r.objects.is_empty(), "{}: nothing rendered", r.dir);
        let mut seen = BTreeSet::new();
        for v in &r.objects {
            if let Err(e) = check_typed(v) {
                panic!("{}: {}: {e}", r.dir, name_of(v));
            }
            assert!(seen.insert(name_of(v)), "{}: {} rendered twice", r.dir, name_of(v));
            if v["metadata"]["namespace"].is_string() {
                let ns = v["metadata"]["namespace"].as_str().unwrap_or_default();
                assert!(
                    [NAMESPACE, "kube-system", "default"].contains(&ns),
                    "{}: {} lives in an unexpected namespace",
                    r.dir,
                    name_of(v)
                );
            }
        }
        assert_eq!(r.one::<Namespace>(NAMESPACE).metadata.name.as_deref(), Some(NAMESPACE));
    }
    // The complete install and the overlays carry the monitoring objects; base does not.
    for dir in WITH_MONITORING {
        let r = rendering(dir);
        assert_eq!(r.untyped("monitoring.coreos.com/v1", "ServiceMonitor").len(), 2, "{dir}");
        assert_eq!(r.untyped("monitoring.coreos.com/v1", "PrometheusRule").len(), 1, "{dir}");
    }
    assert!(rendering("deploy/base").untyped("monitoring.coreos.com/v1", "ServiceMonitor").is_empty());
}

#[test]
fn rendered_crds_are_the_committed_ones() {
    let committed =
        yaml_documents(&read("deploy/crds/terway-hybrid.io.yaml"), "deploy/crds/terway-hybrid.io.yaml");
    assert_eq!(committed.len(), 2, "two CRDs are committed");
    for r in renderings() {
        let rendered: Vec<&Value> =
            r.objects.iter().filter(|v| v["kind"] == CustomResourceDefinition::KIND).collect();
        assert_eq!(rendered.len(), committed.len(), "{}: every committed CRD is rendered", r.dir);
        for crd in &committed {
            let twin = rendered
                .iter()
                .find(|v| v["metadata"]["name"] == crd["metadata"]["name"])
                .unwrap_or_else(|| panic!("{}: CRD {} not rendered", r.dir, crd["metadata"]["name"]));
            if let Some(d) = first_difference(crd, twin, "") {
                panic!("{}: CRD {} differs from deploy/crds: {d}", r.dir, crd["metadata"]["name"]);
            }
        }
    }
}

#[test]
fn the_terway_rollout_is_valid_and_manual() {
    let crd = yaml_documents(&read("deploy/crds/terway-hybrid.io.yaml"), "CRDs")
        .into_iter()
        .find(|c| c["spec"]["names"]["kind"] == "TerwayRollout")
        .expect("the TerwayRollout CRD");
    let mut schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    // kube-cel cannot evaluate type(self) (maxUnavailable's rule); api/tests
    // covers that rule, and the typed load below checks the value's type.
    strip_rules_with(&mut schema, "type(self)");
    for r in renderings() {
        let objects = r.untyped("terway-hybrid.io/v1alpha1", "TerwayRollout");
        let v = objects.first().expect("a TerwayRollout");
        let rollout: terway_hybrid_api::TerwayRollout =
            serde_json::from_value((*v).clone()).unwrap_or_else(|e| panic!("{}: {e}", r.dir));
        assert_eq!(rollout.metadata.name.as_deref(), Some(terway_hybrid_api::names::ROLLOUT_NAME));
        assert_eq!(
            rollout.spec.mode,
            terway_hybrid_api::rollout::Mode::Manual,
            "{}: ships in Manual mode",
            r.dir
        );
        let back = serde_json::to_value(&rollout.spec).expect("serializes");
        if let Some(d) = first_difference(&v["spec"], &back, "spec") {
            panic!("{}: the TerwayRollout spec has a field the type does not know: {d}", r.dir);
        }
        if let Err(errors) = kube::core::cel::Validator::new().validate(&schema, v, None) {
            let messages: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
            panic!("{}: TerwayRollout fails the CRD's rules: {messages:?}", r.dir);
        }
    }
}

fn strip_rules_with(v: &mut Value, needle: &str) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(rules)) = map.get_mut("x-kubernetes-validations") {
                rules.retain(|r| !r["rule"].as_str().unwrap_or("").contains(needle));
            }
            map.values_mut().for_each(|x| strip_rules_with(x, needle));
        }
        Value::Array(items) => items.iter_mut().for_each(|x| strip_rules_with(x, needle)),
        _ => {}
    }
}
