//! The deploy/ manifests as a cluster receives them: every kustomization is
//! rendered with `kubectl kustomize`, every object is loaded into its
//! k8s-openapi type (and must serialize back unchanged, so a misspelt field
//! cannot hide), and what matters is checked against the sources of the
//! binaries: ports and probe paths they serve, names the controller looks
//! for, metric names they export. The alert rules go through `promtool`, the
//! admission policy's CEL through kube's client-side CEL.
//!
//! Needs `kubectl` (>= 1.27, kustomize v5) and `promtool` (Debian's
//! `prometheus`); a missing one fails the test with how to install it.

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::serde::de::DeserializeOwned;
use k8s_openapi::serde::Serialize;
use k8s_openapi::Resource;
use kube::core::cel::{cel, KubeCelExt};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use terway_hybrid_testkit::{find_program, require_program};

/// Every kustomization a user may apply; `deploy` is the complete install.
const KUSTOMIZATIONS: [&str; 4] =
    ["deploy", "deploy/base", "deploy/overlays/ack-one-registered", "deploy/overlays/plain"];
const NAMESPACE: &str = "terway-hybrid";
const AGENT: &str = "terway-hybrid-agent";
const CONTROLLER: &str = "terway-hybrid-controller";
/// Objects that have no k8s-openapi type: the Prometheus Operator's and ours.
const UNTYPED: [(&str, &str); 3] = [
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("terway-hybrid.io/v1alpha1", "TerwayRollout"),
];

// ---------------------------------------------------------------------------
// Rendering and loading

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_owned()
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Multi-document YAML (documents separated by `---` lines), empty ones dropped.
fn yaml_documents(text: &str, what: &str) -> Vec<Value> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" {
            docs.push(String::new());
        } else {
            let doc = docs.last_mut().expect("one document at least");
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.iter()
        .map(|doc| serde_yaml::from_str::<Value>(doc).unwrap_or_else(|e| panic!("{what}: bad YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_file(relative: &str) -> Value {
    serde_yaml::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: bad YAML: {e}"))
}

struct Rendering {
    dir: &'static str,
    objects: Vec<Value>,
}

fn kubectl() -> PathBuf {
    find_program("kubectl").unwrap_or_else(|| {
        panic!(
            "`kubectl` is not installed: these tests render deploy/ with `kubectl kustomize` \
             (kubectl >= 1.27, which embeds kustomize v5). Install it as \
             https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/ describes"
        )
    })
}

fn renderings() -> &'static [Rendering] {
    static RENDERED: OnceLock<Vec<Rendering>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let kubectl = kubectl();
        KUSTOMIZATIONS
            .iter()
            .map(|dir| {
                let out = Command::new(&kubectl)
                    .arg("kustomize")
                    .arg(repo().join(dir))
                    .output()
                    .unwrap_or_else(|e| panic!("run {} kustomize {dir}: {e}", kubectl.display()));
                assert!(
                    out.status.success(),
                    "kubectl kustomize {dir} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let text = String::from_utf8(out.stdout).expect("kustomize prints UTF-8");
                Rendering { dir, objects: yaml_documents(&text, &format!("kubectl kustomize {dir}")) }
            })
            .collect()
    })
}

fn rendering(dir: &str) -> &'static Rendering {
    renderings().iter().find(|r| r.dir == dir).expect("a rendered kustomization")
}

fn name_of(v: &Value) -> String {
    let meta = &v["metadata"];
    match meta["namespace"].as_str() {
        Some(ns) => {
            format!("{} {ns}/{}", v["kind"].as_str().unwrap_or("?"), meta["name"].as_str().unwrap_or("?"))
        }
        None => format!("{} {}", v["kind"].as_str().unwrap_or("?"), meta["name"].as_str().unwrap_or("?")),
    }
}

impl Rendering {
    fn of_kind<'a>(&'a self, api_version: &str, kind: &str) -> impl Iterator<Item = &'a Value> + 'a {
        let (api_version, kind) = (api_version.to_owned(), kind.to_owned());
        self.objects
            .iter()
            .filter(move |v| v["apiVersion"] == api_version.as_str() && v["kind"] == kind.as_str())
    }

    fn typed<K: Resource + DeserializeOwned>(&self) -> Vec<K> {
        self.of_kind(K::API_VERSION, K::KIND)
            .map(|v| {
                serde_json::from_value(v.clone())
                    .unwrap_or_else(|e| panic!("{}: {}: {e}", self.dir, name_of(v)))
            })
            .collect()
    }

    fn one<
        K: Resource
            + DeserializeOwned
            + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    >(
        &self,
        name: &str,
    ) -> K {
        let mut found: Vec<K> =
            self.typed::<K>().into_iter().filter(|o| o.metadata().name.as_deref() == Some(name)).collect();
        assert_eq!(found.len(), 1, "{}: expected one {} named {name}", self.dir, K::KIND);
        found.remove(0)
    }

    fn untyped(&self, api_version: &str, kind: &str) -> Vec<&Value> {
        self.of_kind(api_version, kind).collect()
    }
}

/// The first place where two JSON values differ, as a path. Numbers compare
/// by value: kustomize writes the CRD schema's `0.0` as `0`.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(p, q, &format!("{path}.{k}")),
                (p, q) => Some(format!("{path}.{k}: {p:?} vs {q:?}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]"))),
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => None,
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

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

// ---------------------------------------------------------------------------
// Facts from the sources of the binaries

/// The string literal right after each occurrence of `marker` in `source`.
fn literals_after(source: &str, marker: &str) -> Vec<String> {
    source
        .match_indices(marker)
        .filter_map(|(i, _)| {
            let rest = &source[i + marker.len()..];
            let start = rest.find('"')?;
            let rest = &rest[start + 1..];
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect()
}

/// Every string literal in a Rust source (no escapes in the ones we need).
fn string_literals(source: &str) -> BTreeSet<String> {
    source.split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The routes an axum router in `relative` serves.
fn routes(relative: &str) -> BTreeSet<String> {
    let found: BTreeSet<String> = literals_after(&read(relative), ".route(").into_iter().collect();
    assert!(!found.is_empty(), "{relative}: no `.route(\"...\"` found: did the HTTP server move?");
    found
}

/// The default port of `--metrics-addr` (`default_value = "0.0.0.0:NNNN"`).
fn default_metrics_port(relative: &str) -> i32 {
    let source = read(relative);
    let at = source.find("metrics_addr").unwrap_or_else(|| panic!("{relative}: no metrics_addr argument"));
    let before = &source[..at];
    let defaults =
        literals_after(&before[before.rfind("#[arg(").expect("an #[arg] before it")..], "default_value =");
    let addr = defaults.first().unwrap_or_else(|| panic!("{relative}: metrics_addr has no default_value"));
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{relative}: bad default {addr}"))
}

/// Metric names the binaries register: string literals starting with the prefix.
fn exported_metrics() -> BTreeSet<String> {
    let names: BTreeSet<String> = ["agent/src/metrics.rs", "controller/src/daemon/metrics.rs"]
        .iter()
        .flat_map(|f| string_literals(&read(f)))
        .filter(|s| s.starts_with("terway_hybrid_") && s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect();
    assert!(names.len() >= 10, "too few metric names found in the metrics sources: {names:?}");
    names
}

/// The binary names each package builds: `[[bin]] name = ...`, or the package name.
fn binaries() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for manifest in ["agent/Cargo.toml", "controller/Cargo.toml"] {
        let text = read(manifest);
        let bins = text
            .split("[[bin]]")
            .skip(1)
            .flat_map(|section| literals_after(section, "name =").into_iter().take(1));
        let bins: Vec<String> = bins.collect();
        if bins.is_empty() {
            out.extend(literals_after(&text, "name =").into_iter().take(1));
        } else {
            out.extend(bins);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Pod helpers

fn pod_spec_of_daemon_set(ds: &DaemonSet) -> &PodSpec {
    ds.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("a DaemonSet with a pod spec")
}

fn pod_spec_of_deployment(d: &Deployment) -> &PodSpec {
    d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("a Deployment with a pod spec")
}

fn only_container(spec: &PodSpec, what: &str) -> Container {
    assert_eq!(spec.containers.len(), 1, "{what}: one container");
    assert!(spec.init_containers.as_ref().is_none_or(Vec::is_empty), "{what}: no init containers");
    spec.containers[0].clone()
}

fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    assert!(selector.match_expressions.is_none(), "only matchLabels selectors are used");
    let wanted = selector.match_labels.clone().unwrap_or_default();
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn env_value<'a>(c: &'a Container, name: &str) -> Option<&'a k8s_openapi::api::core::v1::EnvVar> {
    c.env.iter().flatten().find(|e| e.name == name)
}

fn field_ref(c: &Container, name: &str) -> Option<String> {
    env_value(c, name)?.value_from.as_ref()?.field_ref.as_ref().map(|f| f.field_path.clone())
}

/// `--flag value` or `--flag=value` in the container's args.
fn arg_value(c: &Container, flag: &str) -> Option<String> {
    let args = c.args.clone().unwrap_or_default();
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&format!("{flag}=")).map(str::to_owned)
        }
    })
}

/// The port number a probe or Service names, resolved through the container's ports.
fn resolve_port(c: &Container, port: &IntOrString) -> i32 {
    match port {
        IntOrString::Int(p) => *p,
        IntOrString::String(name) => {
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("container {} has no port named {name}", c.name))
                .container_port
        }
    }
}

// ---------------------------------------------------------------------------
// RBAC helpers

/// One (apiGroup, resource, verb, resourceNames) grant, from a rule.
type Grant = (String, String, String, Vec<String>);

fn grants(rule: &PolicyRule) -> Vec<Grant> {
    let mut out = Vec::new();
    for group in rule.api_groups.iter().flatten() {
        for resource in rule.resources.iter().flatten() {
            for verb in &rule.verbs {
                out.push((
                    group.clone(),
                    resource.clone(),
                    verb.clone(),
                    rule.resource_names.clone().unwrap_or_default(),
                ));
            }
        }
    }
    out
}

/// Every grant a ServiceAccount receives in a rendering, with where it applies
/// (`None`: cluster-wide).
fn grants_of(r: &Rendering, namespace: &str, sa: &str) -> Vec<(Option<String>, Grant)> {
    let is_subject = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects
            .iter()
            .flatten()
            .any(|s| s.kind == "ServiceAccount" && s.name == sa && s.namespace.as_deref() == Some(namespace))
    };
    let cluster_roles = r.typed::<ClusterRole>();
    let roles = r.typed::<Role>();
    let cluster_rules = |name: &str| -> Vec<PolicyRule> {
        let role = cluster_roles.iter().find(|c| c.metadata.name.as_deref() == Some(name));
        role.unwrap_or_else(|| panic!("{}: ClusterRole {name} is bound but not rendered", r.dir))
            .rules
            .clone()
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for b in r.typed::<ClusterRoleBinding>().iter().filter(|b| is_subject(&b.subjects)) {
        assert_eq!(b.role_ref.kind, "ClusterRole");
        out.extend(cluster_rules(&b.role_ref.name).iter().flat_map(grants).map(|g| (None, g)));
    }
    for b in r.typed::<RoleBinding>().iter().filter(|b| is_subject(&b.subjects)) {
        let ns = b.metadata.namespace.clone().expect("a namespaced RoleBinding");
        let rules = if b.role_ref.kind == "ClusterRole" {
            cluster_rules(&b.role_ref.name)
        } else {
            let role = roles.iter().find(|x| {
                x.metadata.name.as_deref() == Some(b.role_ref.name.as_str())
                    && x.metadata.namespace.as_deref() == Some(ns.as_str())
            });
            role.unwrap_or_else(|| {
                panic!("{}: Role {ns}/{} is bound but not rendered", r.dir, b.role_ref.name)
            })
            .rules
            .clone()
            .unwrap_or_default()
        };
        out.extend(rules.iter().flat_map(grants).map(|g| (Some(ns.clone()), g)));
    }
    out
}

fn all_rules(r: &Rendering) -> Vec<(String, PolicyRule)> {
    let mut out: Vec<(String, PolicyRule)> = Vec::new();
    for c in r.typed::<ClusterRole>() {
        assert!(c.aggregation_rule.is_none(), "ClusterRole {:?}: no aggregation", c.metadata.name);
        let name = format!("ClusterRole {}", c.metadata.name.unwrap_or_default());
        out.extend(c.rules.unwrap_or_default().into_iter().map(|rule| (name.clone(), rule)));
    }
    for role in r.typed::<Role>() {
        let name = format!(
            "Role {}/{}",
            role.metadata.namespace.unwrap_or_default(),
            role.metadata.name.unwrap_or_default()
        );
        out.extend(role.rules.unwrap_or_default().into_iter().map(|rule| (name.clone(), rule)));
    }
    out
}

// ---------------------------------------------------------------------------
// The tests

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
    for dir in ["deploy", "deploy/overlays/ack-one-registered", "deploy/overlays/plain"] {
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
fn selectors_match_what_they_select() {
    for r in renderings() {
        let mut templates: Vec<(String, BTreeMap<String, String>, Container)> = Vec::new();
        for ds in r.typed::<DaemonSet>() {
            let spec = ds.spec.as_ref().expect("spec");
            let labels = spec.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
            assert!(
                selector_matches(&spec.selector, &labels),
                "{}: DaemonSet selector vs template labels",
                r.dir
            );
            let c = only_container(pod_spec_of_daemon_set(&ds), "DaemonSet");
            templates.push((ds.metadata.name.clone().unwrap_or_default(), labels, c));
        }
        for d in r.typed::<Deployment>() {
            let spec = d.spec.as_ref().expect("spec");
            let labels = spec.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
            assert!(
                selector_matches(&spec.selector, &labels),
                "{}: Deployment selector vs template labels",
                r.dir
            );
            let c = only_container(pod_spec_of_deployment(&d), "Deployment");
            templates.push((d.metadata.name.clone().unwrap_or_default(), labels, c));
        }
        assert_eq!(
            templates.len(),
            3,
            "{}: the agent and responder DaemonSets and the controller Deployment",
            r.dir
        );
        for pdb in r.typed::<PodDisruptionBudget>() {
            let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()).expect("a PDB selector");
            let hits = templates.iter().filter(|(_, labels, _)| selector_matches(selector, labels)).count();
            assert_eq!(hits, 1, "{}: PDB {:?} selects exactly one workload", r.dir, pdb.metadata.name);
        }
        let services = r.typed::<Service>();
        for svc in &services {
            let spec = svc.spec.as_ref().expect("spec");
            let selector = spec.selector.clone().unwrap_or_default();
            let as_selector = LabelSelector { match_labels: Some(selector), match_expressions: None };
            let selected: Vec<_> =
                templates.iter().filter(|(_, l, _)| selector_matches(&as_selector, l)).collect();
            assert_eq!(
                selected.len(),
                1,
                "{}: Service {:?} selects exactly one workload",
                r.dir,
                svc.metadata.name
            );
            let container = &selected[0].2;
            for port in spec.ports.iter().flatten() {
                let target = port.target_port.clone().unwrap_or(IntOrString::Int(port.port));
                assert_eq!(
                    resolve_port(container, &target),
                    port.port,
                    "{}: Service port {:?}",
                    r.dir,
                    port.name
                );
            }
        }
        for sm in r.untyped("monitoring.coreos.com/v1", "ServiceMonitor") {
            let wanted = sm["spec"]["selector"]["matchLabels"].as_object().expect("matchLabels");
            let namespaces: Vec<&str> = sm["spec"]["namespaceSelector"]["matchNames"]
                .as_array()
                .expect("namespaceSelector.matchNames")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let selected: Vec<&Service> = services
                .iter()
                .filter(|s| namespaces.contains(&s.metadata.namespace.as_deref().unwrap_or("")))
                .filter(|s| {
                    let labels = s.metadata.labels.clone().unwrap_or_default();
                    wanted.iter().all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
                })
                .collect();
            assert_eq!(selected.len(), 1, "{}: ServiceMonitor {} selects one Service", r.dir, name_of(sm));
            assert!(sm["spec"]["jobLabel"].is_null(), "the alert rules rely on job = the Service name");
            let ports: Vec<Option<&str>> = selected[0]
                .spec
                .as_ref()
                .and_then(|s| s.ports.as_ref())
                .into_iter()
                .flatten()
                .map(|p| p.name.as_deref())
                .collect();
            for endpoint in sm["spec"]["endpoints"].as_array().expect("endpoints") {
                assert!(
                    ports.contains(&endpoint["port"].as_str()),
                    "{}: {} scrapes an unknown port",
                    r.dir,
                    name_of(sm)
                );
            }
        }
    }
}

#[test]
fn probes_and_ports_are_the_ones_the_binaries_serve() {
    let served = [
        (AGENT, routes("agent/src/http.rs"), default_metrics_port("agent/src/main.rs")),
        (
            CONTROLLER,
            routes("controller/src/daemon/http.rs"),
            default_metrics_port("controller/src/bin/terway-hybrid-controller.rs"),
        ),
    ];
    let built = binaries();
    for r in renderings() {
        let agent = only_container(pod_spec_of_daemon_set(&r.one::<DaemonSet>(AGENT)), AGENT);
        let controller = only_container(pod_spec_of_deployment(&r.one::<Deployment>(CONTROLLER)), CONTROLLER);
        for ((name, routes, default_port), c) in served.iter().zip([agent, controller]) {
            let what = format!("{}: {name}", r.dir);
            for path in ["/metrics", "/healthz", "/readyz"] {
                assert!(routes.contains(path), "{what}: the binary serves no {path} (it serves {routes:?})");
            }
            let command = c.command.clone().unwrap_or_default();
            let binary = command.first().and_then(|p| p.strip_prefix("/usr/local/bin/")).unwrap_or("");
            assert_eq!(binary, *name, "{what}: runs /usr/local/bin/{name}");
            assert!(built.contains(binary), "{what}: no package builds a binary {binary} ({built:?})");
            let addr = arg_value(&c, "--metrics-addr").unwrap_or_else(|| format!("0.0.0.0:{default_port}"));
            let port: i32 = addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
            assert_eq!(port, *default_port, "{what}: --metrics-addr is the documented default");
            let metrics = resolve_port(&c, &IntOrString::String("metrics".into()));
            assert_eq!(metrics, port, "{what}: the `metrics` container port is where the binary listens");
            let live =
                c.liveness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("an HTTP liveness probe");
            let ready = c
                .readiness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .expect("an HTTP readiness probe");
            assert_eq!(live.path.as_deref(), Some("/healthz"), "{what}: liveness");
            assert_eq!(ready.path.as_deref(), Some("/readyz"), "{what}: readiness");
            assert_eq!(resolve_port(&c, &live.port), port, "{what}: liveness port");
            assert_eq!(resolve_port(&c, &ready.port), port, "{what}: readiness port");
        }
        for sm in r.untyped("monitoring.coreos.com/v1", "ServiceMonitor") {
            for endpoint in sm["spec"]["endpoints"].as_array().expect("endpoints") {
                assert_eq!(endpoint["path"], "/metrics", "{}: {}", r.dir, name_of(sm));
            }
        }
    }
}

#[test]
fn the_agent_runs_on_every_node_with_read_only_access_only() {
    // Paths the agent reads under --host-root; each must still be in its sources.
    let reads = [
        ("agent/src/collect/files.rs", "etc/cni/net.d"),
        ("agent/src/collect/files.rs", "flannel/subnet.env"),
        ("agent/src/collect/files.rs", "var/lib/calico/nodename"),
        ("agent/src/collect/files.rs", "proc/sys/net/ipv4/ip_forward"),
        ("agent/src/collect/mod.rs", "calico/bird.ctl"),
    ];
    for (file, path) in reads {
        assert!(
            read(file).contains(&format!("\"{path}\"")),
            "{file} no longer reads {path}: update this test and the DaemonSet"
        );
    }
    let run_relative = |p: &str| p.starts_with("flannel/") || p.starts_with("calico/");
    for r in renderings() {
        let ds = r.one::<DaemonSet>(AGENT);
        let what = format!("{}: DaemonSet {AGENT}", r.dir);
        assert_eq!(ds.metadata.namespace.as_deref(), Some(NAMESPACE));
        let spec = ds.spec.as_ref().expect("spec");
        let strategy = spec.update_strategy.as_ref().expect("an update strategy");
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"), "{what}");
        assert_eq!(
            strategy.rolling_update.as_ref().and_then(|u| u.max_unavailable.clone()),
            Some(IntOrString::String("10%".into())),
            "{what}"
        );
        // A not-Ready agent (a failing node check) must still be scraped.
        let svc = r.one::<Service>(AGENT);
        assert_eq!(svc.spec.and_then(|s| s.publish_not_ready_addresses), Some(true), "{what}: Service");
        let pod = pod_spec_of_daemon_set(&ds);
        assert_eq!(pod.host_network, Some(true), "{what}: the agent inspects the host's network namespace");
        assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"), "{what}");
        assert_eq!(pod.priority_class_name.as_deref(), Some("system-node-critical"), "{what}");
        assert_eq!(pod.service_account_name.as_deref(), Some(AGENT), "{what}");
        let tolerates_all = pod
            .tolerations
            .iter()
            .flatten()
            .any(|t| t.operator.as_deref() == Some("Exists") && t.key.is_none() && t.effect.is_none());
        assert!(tolerates_all, "{what}: tolerates every taint");
        assert!(
            pod.host_pid.is_none_or(|h| !h) && pod.host_ipc.is_none_or(|h| !h),
            "{what}: no host PID/IPC"
        );

        let c = only_container(pod, &what);
        assert_eq!(field_ref(&c, "NODE_NAME").as_deref(), Some("spec.nodeName"), "{what}: NODE_NAME");
        assert_eq!(c.args.as_deref().and_then(|a| a.first()).map(String::as_str), Some("run"), "{what}");
        let host_root = arg_value(&c, "--host-root").expect("--host-root");
        assert_eq!(host_root, "/host", "{what}");
        assert!(c
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .is_some_and(|l| l.contains_key("memory")));
        assert!(c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .is_some_and(|l| l.contains_key("cpu")));

        let sc = c.security_context.clone().expect("a container securityContext");
        assert_eq!(sc.privileged, Some(false), "{what}: not privileged");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{what}");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{what}");
        let caps = sc.capabilities.clone().expect("capabilities");
        assert_eq!(caps.drop, Some(vec!["ALL".to_owned()]), "{what}: drops every capability");
        assert!(caps.add.as_ref().is_none_or(Vec::is_empty), "{what}: adds none");
        // uid 0 is what reads root-only CNI files and BIRD's socket (see the manifest).
        assert_eq!(sc.run_as_user, Some(0), "{what}");

        // Every volume is a read-only hostPath mounted at /host + its host path,
        // so the agent sees the host's layout under --host-root.
        let volumes = pod.volumes.clone().unwrap_or_default();
        let mounts = c.volume_mounts.clone().unwrap_or_default();
        assert_eq!(volumes.len(), mounts.len(), "{what}: every volume is mounted once");
        let mut host_paths = Vec::new();
        for m in &mounts {
            assert_eq!(m.read_only, Some(true), "{what}: {} is mounted read-only", m.name);
            let v = volumes.iter().find(|v| v.name == m.name).expect("a volume for the mount");
            let hp = v.host_path.as_ref().unwrap_or_else(|| panic!("{what}: {} is a hostPath", m.name));
            assert_ne!(hp.path, "/", "{what}: not the host's whole root");
            assert_eq!(
                m.mount_path,
                format!("{host_root}{}", hp.path),
                "{what}: {} mirrors the host path",
                m.name
            );
            host_paths.push(hp.path.trim_start_matches('/').to_owned());
        }
        for (_, path) in reads {
            let covered = host_paths.iter().any(|hp| {
                let under = |p: &str| p == hp || p.starts_with(&format!("{hp}/"));
                under(path)
                    || (run_relative(path)
                        && (under(&format!("run/{path}")) || under(&format!("var/run/{path}"))))
            });
            assert!(
                covered,
                "{what}: the agent reads {path} under the host root, but no hostPath provides it"
            );
        }
    }
}

#[test]
fn the_controller_runs_two_electing_non_root_replicas() {
    let lease = rust_const_default("controller/src/bin/terway-hybrid-controller.rs", "lease_name");
    for r in renderings() {
        let d = r.one::<Deployment>(CONTROLLER);
        let what = format!("{}: Deployment {CONTROLLER}", r.dir);
        assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(2), "{what}");
        let pod = pod_spec_of_deployment(&d);
        assert_eq!(pod.service_account_name.as_deref(), Some(CONTROLLER), "{what}");
        assert!(pod.host_network.is_none_or(|h| !h), "{what}: no hostNetwork");
        let anti = pod.affinity.as_ref().and_then(|a| a.pod_anti_affinity.as_ref()).expect("podAntiAffinity");
        let terms = anti.preferred_during_scheduling_ignored_during_execution.clone().unwrap_or_default();
        let labels = d
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        assert!(
            terms.iter().any(|t| t.pod_affinity_term.topology_key == "kubernetes.io/hostname"
                && t.pod_affinity_term.label_selector.as_ref().is_some_and(|s| selector_matches(s, &labels))),
            "{what}: replicas spread over nodes"
        );
        let c = only_container(pod, &what);
        assert_eq!(field_ref(&c, "POD_NAME").as_deref(), Some("metadata.name"), "{what}: leader identity");
        assert_eq!(
            field_ref(&c, "POD_NAMESPACE").as_deref(),
            Some("metadata.namespace"),
            "{what}: Lease namespace"
        );
        assert!(
            arg_value(&c, "--no-leader-election").is_none()
                && !c.args.iter().flatten().any(|a| a == "--no-leader-election")
        );
        assert!(
            arg_value(&c, "--lease-name").is_none_or(|l| l == lease),
            "{what}: the Lease the Role grants"
        );
        let pod_sc = pod.security_context.clone().expect("a pod securityContext");
        assert_eq!(pod_sc.run_as_non_root, Some(true), "{what}");
        assert!(pod_sc.run_as_user.is_some_and(|u| u != 0), "{what}");
        let sc = c.security_context.clone().expect("a container securityContext");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{what}");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{what}");
        assert_eq!(sc.capabilities.and_then(|c| c.drop), Some(vec!["ALL".to_owned()]), "{what}");
        let limits = c.resources.as_ref().and_then(|r| r.limits.clone()).unwrap_or_default();
        assert!(limits.contains_key("memory") && limits.contains_key("cpu"), "{what}: limits");

        // The Lease Role: in the pod's namespace, for the Lease the binary uses.
        let grants = grants_of(r, NAMESPACE, CONTROLLER);
        let lease_grant = |verb: &str| {
            grants.iter().any(|(ns, (g, res, v, names))| {
                ns.as_deref() == d.metadata.namespace.as_deref()
                    && g == "coordination.k8s.io"
                    && res == "leases"
                    && v == verb
                    && (verb == "create" || names == &vec![lease.clone()])
            })
        };
        for verb in ["create", "get", "patch"] {
            assert!(lease_grant(verb), "{what}: may {verb} Lease {lease} in its namespace");
        }
    }
}

/// The `default_value` of the clap argument named `field` (e.g. `lease_name`).
fn rust_const_default(relative: &str, field: &str) -> String {
    let source = read(relative);
    let at = source.find(&format!("{field}:")).unwrap_or_else(|| panic!("{relative}: no field {field}"));
    let before = &source[..at];
    literals_after(&before[before.rfind("#[arg(").expect("an #[arg]")..], "default_value =")
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("{relative}: {field} has no default_value"))
}

#[test]
fn names_the_controller_looks_for_are_the_rendered_ones() {
    // The controller finds the agent's DaemonSet by this name and watches its
    // pods by the DaemonSet's own selector: the pods must carry its labels.
    let agent_ds = terway_hybrid_api::names::AGENT_DAEMONSET;
    for r in renderings() {
        let ds = r.one::<DaemonSet>(agent_ds);
        let spec = ds.spec.as_ref().expect("a DaemonSet spec");
        let labels = spec.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
        let selector = spec.selector.match_labels.clone().unwrap_or_default();
        assert!(!selector.is_empty(), "{}: the agent's DaemonSet selects its pods by label", r.dir);
        for (k, v) in &selector {
            assert_eq!(labels.get(k), Some(v), "{}: the agent's pods lack the selector's {k}={v}", r.dir);
        }
    }
}

#[test]
fn the_agent_is_told_the_rollouts_cloud_node_selector() {
    // The agent decides its node's role itself: with the same labels as the
    // controller, or the two disagree about which nodes are cloud.
    for r in renderings() {
        let ds = r.one::<DaemonSet>(terway_hybrid_api::names::AGENT_DAEMONSET);
        let pod = ds.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("a pod spec");
        let told = pod
            .containers
            .iter()
            .flat_map(|c| c.env.iter().flatten())
            .find(|e| e.name == "CLOUD_NODE_SELECTOR")
            .and_then(|e| e.value.clone())
            .unwrap_or_else(|| panic!("{}: the agent has no CLOUD_NODE_SELECTOR", r.dir));
        let rollout = r.untyped("terway-hybrid.io/v1alpha1", "TerwayRollout");
        let selector: BTreeMap<String, String> =
            serde_json::from_value(rollout[0]["spec"]["cloudNodeSelector"].clone())
                .expect("a cloudNodeSelector");
        let want: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(told, want.join(","), "{}: the agent's CLOUD_NODE_SELECTOR", r.dir);
    }
}

#[test]
fn no_rbac_rule_uses_a_wildcard() {
    for r in renderings() {
        for (role, rule) in all_rules(r) {
            let fields = [
                ("verbs", Some(&rule.verbs)),
                ("apiGroups", rule.api_groups.as_ref()),
                ("resources", rule.resources.as_ref()),
                ("resourceNames", rule.resource_names.as_ref()),
                ("nonResourceURLs", rule.non_resource_urls.as_ref()),
            ];
            for (field, values) in fields {
                for v in values.into_iter().flatten() {
                    assert!(!v.contains('*'), "{}: {role} has a wildcard in {field}: {v:?}", r.dir);
                }
            }
            assert!(rule.non_resource_urls.is_none(), "{}: {role} grants non-resource URLs", r.dir);
        }
        for b in r.typed::<ClusterRoleBinding>() {
            for s in b.subjects.iter().flatten() {
                assert_eq!(s.kind, "ServiceAccount", "{}: bindings name our ServiceAccounts only", r.dir);
                assert_eq!(s.namespace.as_deref(), Some(NAMESPACE));
            }
        }
    }
}

#[test]
fn the_agent_may_write_only_its_reports_and_never_nodes() {
    let expected: BTreeSet<(String, String, String)> = [
        ("", "nodes", "get"),
        ("terway-hybrid.io", "nodenetworkreports", "create"),
        ("terway-hybrid.io", "nodenetworkreports", "patch"),
        // Its own report's spec.probeTargets (fieldSelector metadata.name).
        ("terway-hybrid.io", "nodenetworkreports", "list"),
        ("terway-hybrid.io", "nodenetworkreports", "watch"),
        ("terway-hybrid.io", "nodenetworkreports/status", "patch"),
    ]
    .iter()
    .map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
    .collect();
    for r in renderings() {
        let grants = grants_of(r, NAMESPACE, AGENT);
        for (_, (group, resource, verb, _)) in &grants {
            let writes = ["create", "update", "patch", "delete", "deletecollection"].contains(&verb.as_str());
            assert!(
                !(group.is_empty() && resource.starts_with("nodes") && writes),
                "{}: the agent may {verb} {resource}: only the controller writes Nodes",
                r.dir
            );
        }
        let got: BTreeSet<(String, String, String)> =
            grants.iter().map(|(_, (g, res, v, _))| (g.clone(), res.clone(), v.clone())).collect();
        assert_eq!(got, expected, "{}: the agent's permissions", r.dir);
        assert!(grants.iter().all(|(ns, _)| ns.is_none()), "{}: the agent has no namespaced grants", r.dir);
    }
}

#[test]
fn secrets_are_readable_only_by_name() {
    let secret = terway_hybrid_api::names::ADDON_SECRET_NAME.to_owned();
    let secret_ns = terway_hybrid_api::names::ADDON_SECRET_NAMESPACE;
    // The webhook's CA (controller/src/daemon/certs.rs): created by the controller in
    // its own namespace, read back by name.
    let ca = rust_const_default("controller/src/bin/terway-hybrid-controller.rs", "webhook_ca_secret");
    for r in renderings() {
        let mut secret_rules = 0;
        for (role, rule) in all_rules(r) {
            if !rule.resources.iter().flatten().any(|res| res.starts_with("secrets")) {
                continue;
            }
            secret_rules += 1;
            assert_eq!(rule.resources, Some(vec!["secrets".to_owned()]), "{}: {role}", r.dir);
            if role == format!("Role {NAMESPACE}/{CONTROLLER}-leader-election") {
                match rule.resource_names.as_deref() {
                    None => {
                        assert_eq!(rule.verbs, ["create"], "{}: {role}: only create without a name", r.dir)
                    }
                    Some(names) => {
                        assert_eq!(
                            names,
                            std::slice::from_ref(&ca),
                            "{}: {role}: the webhook CA only",
                            r.dir
                        );
                        assert_eq!(rule.verbs, ["get"], "{}: {role}: the webhook CA is only read", r.dir);
                    }
                }
                continue;
            }
            assert_eq!(
                role,
                format!("Role {secret_ns}/{CONTROLLER}"),
                "{}: only the controller's kube-system Role",
                r.dir
            );
            assert_eq!(
                rule.resource_names,
                Some(vec![secret.clone()]),
                "{}: {role}: by resourceNames only",
                r.dir
            );
            for verb in &rule.verbs {
                assert!(
                    ["get", "list", "watch"].contains(&verb.as_str()),
                    "{}: {role} may {verb} Secrets",
                    r.dir
                );
            }
        }
        assert_eq!(secret_rules, 3, "{}: the add-on Secret's rule and the webhook CA's two", r.dir);
        // ConfigMaps are granted by name too: eni-config in kube-system; the
        // two CNI ConfigMaps whose ranges CIDROverlap reads (flannel's lives
        // in kube-flannel or kube-system) anywhere, list and watch only.
        let eni = terway_hybrid_api::names::ENI_CONFIG_NAME.to_owned();
        let cni: Vec<String> = ["kube-flannel-cfg", "cilium-config"].map(str::to_owned).to_vec();
        let grants = grants_of(r, NAMESPACE, CONTROLLER);
        for (ns, (_, res, verb, names)) in grants.iter().filter(|(_, (_, res, _, _))| res == "configmaps") {
            match ns.as_deref() {
                Some("kube-system") => {
                    assert_eq!(names, &vec![eni.clone()], "{}: {res} {verb} only {eni}", r.dir)
                }
                None => {
                    assert_eq!(names, &cni, "{}: cluster-wide {res} {verb} only by name", r.dir);
                    assert!(["list", "watch"].contains(&verb.as_str()), "{}: {res} {verb}", r.dir);
                }
                other => panic!("{}: ConfigMaps {verb} in {other:?}", r.dir),
            }
        }
    }
}

#[test]
fn the_controller_may_patch_every_daemon_set_its_rollout_names() {
    let well_known: Vec<String> =
        terway_hybrid_api::names::WELL_KNOWN_CNI_DAEMONSETS.iter().map(|n| (*n).to_owned()).collect();
    assert!(well_known.len() >= 5, "{well_known:?}");
    for r in renderings() {
        let patchable: BTreeSet<String> = grants_of(r, NAMESPACE, CONTROLLER)
            .into_iter()
            .filter(|(ns, (g, res, v, _))| ns.is_none() && g == "apps" && res == "daemonsets" && v == "patch")
            .flat_map(|(_, (_, _, _, names))| {
                assert!(!names.is_empty(), "{}: DaemonSet patch only by name", r.dir);
                names
            })
            .collect();
        let rollout = r.untyped("terway-hybrid.io/v1alpha1", "TerwayRollout");
        assert_eq!(rollout.len(), 1, "{}: one TerwayRollout", r.dir);
        let spec = &rollout[0]["spec"];
        let mut named: Vec<String> = well_known.clone();
        named.push(spec["terway"]["daemonSetName"].as_str().unwrap_or("terway-eniip").to_owned());
        for d in spec["onPremCNI"]["daemonSets"].as_array().into_iter().flatten() {
            named.push(d["name"].as_str().expect("a DaemonSet name").to_owned());
        }
        for name in named {
            assert!(patchable.contains(&name), "{}: the controller cannot patch DaemonSet {name}", r.dir);
        }
        // Reads are cluster-wide (the DaemonSets live in any namespace).
        let grants = grants_of(r, NAMESPACE, CONTROLLER);
        for (res, verbs) in [
            ("nodes", &["list", "watch", "patch"][..]),
            ("daemonsets", &["list", "watch"]),
            ("pods", &["list", "watch"]),
        ] {
            for verb in verbs {
                assert!(
                    grants.iter().any(|(ns, (_, gr, v, names))| ns.is_none()
                        && gr == res
                        && v == verb
                        && names.is_empty()),
                    "{}: the controller may {verb} {res} cluster-wide",
                    r.dir
                );
            }
        }
    }
}

// --- The admission policy, evaluated with kube's client-side CEL.

#[derive(Debug, PartialEq)]
enum Admission {
    NotMatched,
    Allowed,
    Denied(String),
}

fn cel_eval(expr: &str, vars: &[(&str, &Value)]) -> Result<cel::Value, String> {
    let program = cel::Program::compile(expr).map_err(|e| format!("compile {expr:?}: {e}"))?;
    let mut ctx = cel::Context::default().with_all();
    for (name, value) in vars {
        ctx.add_variable(*name, *value).map_err(|e| format!("bind {name}: {e}"))?;
    }
    program.execute(&ctx).map_err(|e| format!("evaluate {expr:?}: {e}"))
}

fn cel_to_json(v: cel::Value) -> Value {
    match v {
        cel::Value::String(s) => Value::String((*s).clone()),
        cel::Value::Bool(b) => Value::Bool(b),
        cel::Value::Int(i) => json!(i),
        other => panic!("a variable of an unexpected type: {other:?}"),
    }
}

/// What the API server would answer: matchConditions, then the variables in
/// order, then every validation (an evaluation error denies: failurePolicy Fail).
fn admit(policy: &ValidatingAdmissionPolicy, request: &Value, object: &Value) -> Admission {
    let spec = policy.spec.as_ref().expect("spec");
    let old = Value::Null;
    let base = [("request", request), ("object", object), ("oldObject", &old)];
    for c in spec.match_conditions.iter().flatten() {
        match cel_eval(&c.expression, &base) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => return Admission::NotMatched,
            other => panic!("matchCondition {} errs: {other:?}", c.name),
        }
    }
    let mut variables = serde_json::Map::new();
    for var in spec.variables.iter().flatten() {
        let scope = Value::Object(variables.clone());
        let with = [base[0], base[1], base[2], ("variables", &scope)];
        let value =
            cel_eval(&var.expression, &with).unwrap_or_else(|e| panic!("variable {} errs: {e}", var.name));
        variables.insert(var.name.clone(), cel_to_json(value));
    }
    let scope = Value::Object(variables);
    let with = [base[0], base[1], base[2], ("variables", &scope)];
    for v in spec.validations.iter().flatten() {
        match cel_eval(&v.expression, &with) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => {
                let message = v
                    .message_expression
                    .as_deref()
                    .and_then(|m| match cel_eval(m, &with) {
                        Ok(cel::Value::String(s)) => Some((*s).clone()),
                        _ => None,
                    })
                    .or(v.message.clone())
                    .unwrap_or_else(|| v.expression.clone());
                return Admission::Denied(message);
            }
            other => return Admission::Denied(format!("{other:?}")),
        }
    }
    Admission::Allowed
}

fn report(name: &str, spec_node: &str, label: &str, owner: &str) -> Value {
    json!({
        "apiVersion": "terway-hybrid.io/v1alpha1", "kind": "NodeNetworkReport",
        "metadata": {
            "name": name,
            "labels": {terway_hybrid_api::report::NODE_NAME_LABEL: label},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": owner, "uid": "u-1"}]
        },
        "spec": {"nodeName": spec_node}
    })
}

fn request(operation: &str, username: &str, node: Option<&str>) -> Value {
    let mut user =
        json!({"username": username, "groups": ["system:serviceaccounts", "system:authenticated"]});
    if let Some(node) = node {
        user["extra"] = json!({
            "authentication.kubernetes.io/node-name": [node],
            "authentication.kubernetes.io/pod-name": ["terway-hybrid-agent-x7k2p"]
        });
    }
    json!({"operation": operation, "userInfo": user})
}

#[test]
fn the_admission_policy_limits_each_agent_to_its_own_report() {
    for r in renderings() {
        let policy = r.one::<ValidatingAdmissionPolicy>("terway-hybrid-agent-own-report");
        let binding = r.one::<ValidatingAdmissionPolicyBinding>("terway-hybrid-agent-own-report");
        let bspec = binding.spec.as_ref().expect("binding spec");
        assert_eq!(bspec.policy_name.as_deref(), policy.metadata.name.as_deref(), "{}", r.dir);
        assert_eq!(bspec.validation_actions, Some(vec!["Deny".to_owned()]), "{}", r.dir);
        let spec = policy.spec.as_ref().expect("spec");
        assert_eq!(spec.failure_policy.as_deref(), Some("Fail"), "{}: fail closed", r.dir);
        let rules =
            spec.match_constraints.as_ref().and_then(|m| m.resource_rules.clone()).unwrap_or_default();
        for (resource, op) in [
            ("nodenetworkreports", "CREATE"),
            ("nodenetworkreports", "UPDATE"),
            ("nodenetworkreports/status", "UPDATE"),
        ] {
            assert!(
                rules.iter().any(|rule| rule.api_groups.iter().flatten().any(|g| g == "terway-hybrid.io")
                    && rule.resources.iter().flatten().any(|x| x == resource)
                    && rule.operations.iter().flatten().any(|o| o == op)),
                "{}: the policy covers {op} {resource}",
                r.dir
            );
        }
        // The user the policy matches is the agent DaemonSet's ServiceAccount.
        let ds = r.one::<DaemonSet>(AGENT);
        let sa = pod_spec_of_daemon_set(&ds).service_account_name.clone().expect("a ServiceAccount");
        let agent_user =
            format!("system:serviceaccount:{}:{sa}", ds.metadata.namespace.as_deref().unwrap_or(""));
        let controller_user = format!("system:serviceaccount:{NAMESPACE}:{CONTROLLER}");

        let own = report("node-a", "node-a", "node-a", "node-a");
        let admit = |req: &Value, obj: &Value| admit(&policy, req, obj);
        for op in ["CREATE", "UPDATE"] {
            assert_eq!(
                admit(&request(op, &agent_user, Some("node-a")), &own),
                Admission::Allowed,
                "{} {op}",
                r.dir
            );
        }
        let denied = |req: &Value, obj: &Value, needle: &str| match admit(req, obj) {
            Admission::Denied(m) => {
                assert!(m.contains(needle), "{}: denial {m:?} should mention {needle:?}", r.dir)
            }
            other => panic!("{}: expected a denial mentioning {needle:?}, got {other:?} for {obj}", r.dir),
        };
        let on_a = request("UPDATE", &agent_user, Some("node-a"));
        denied(&on_a, &report("node-b", "node-b", "node-b", "node-b"), "not node-b");
        denied(&on_a, &report("node-a", "node-b", "node-a", "node-a"), "spec.nodeName");
        denied(&on_a, &report("node-a", "node-a", "node-b", "node-a"), "label");
        denied(&on_a, &report("node-a", "node-a", "node-a", "node-b"), "owned");
        // Without the node claim (a legacy token, or the feature off): denied, not an error.
        denied(&request("CREATE", &agent_user, None), &own, "carries no node");
        let mut empty = request("CREATE", &agent_user, Some("node-a"));
        empty["userInfo"]["extra"]["authentication.kubernetes.io/node-name"] = json!([]);
        denied(&empty, &own, "carries no node");
        // Anyone else (the controller, an admin) is not this policy's business.
        let other = report("node-b", "node-b", "node-b", "node-b");
        assert_eq!(admit(&request("UPDATE", &controller_user, None), &other), Admission::NotMatched);
        assert_eq!(
            admit(&request("UPDATE", "kubernetes-admin", Some("node-a")), &other),
            Admission::NotMatched
        );
    }
}

#[test]
fn images_are_one_and_tagged_with_the_workspace_version() {
    let version = env!("CARGO_PKG_VERSION");
    for r in renderings() {
        let mut images = BTreeSet::new();
        for ds in r.typed::<DaemonSet>() {
            images.extend(pod_spec_of_daemon_set(&ds).containers.iter().filter_map(|c| c.image.clone()));
        }
        for d in r.typed::<Deployment>() {
            images.extend(pod_spec_of_deployment(&d).containers.iter().filter_map(|c| c.image.clone()));
        }
        assert_eq!(images.len(), 1, "{}: one image for both components: {images:?}", r.dir);
        let image = images.into_iter().next().expect("an image");
        let (repository, tag) =
            image.rsplit_once(':').unwrap_or_else(|| panic!("{}: {image} has no tag", r.dir));
        assert_eq!(tag, version, "{}: the image tag is the workspace version", r.dir);
        assert!(repository.ends_with("terway-hybrid"), "{}: {image}", r.dir);
        if r.dir.contains("overlays") {
            assert!(repository.contains('/'), "{}: an overlay names a registry: {image}", r.dir);
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

// --- Monitoring

fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/monitoring/grafana-dashboard.json"))
        .unwrap_or_else(|e| panic!("deploy/monitoring/grafana-dashboard.json is not JSON: {e}"))
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}

fn alert_rules() -> Vec<Value> {
    let rules = yaml_file("deploy/monitoring/rules.yaml");
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Metric names (`terway_hybrid_...`) in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("terway_hybrid_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// Values a label matcher `label="v"` / `label=~"a|b"` asks for.
fn matcher_values(expr: &str, label: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in expr.match_indices(&format!("{label}=")) {
        let boundary = expr[..i].chars().last().is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        if !boundary {
            continue;
        }
        let rest = expr[i + label.len() + 1..].trim_start_matches('~');
        if let Some(value) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
            out.extend(value.split('|').map(str::to_owned));
        }
    }
    out
}

fn assert_exported(exprs: &[String], what: &str) {
    let exported = exported_metrics();
    let literals: BTreeSet<String> = ["agent/src/metrics.rs", "controller/src/daemon/metrics.rs"]
        .iter()
        .flat_map(|f| string_literals(&read(f)))
        .collect();
    let roles = [terway_hybrid_api::Role::Cloud.as_str(), terway_hybrid_api::Role::OnPrem.as_str()];
    for expr in exprs {
        for name in metric_names(expr) {
            let base =
                ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
            assert!(
                exported.contains(&name) || exported.contains(base),
                "{what}: {name} is not a metric the binaries export ({exported:?}), in: {expr}"
            );
        }
        for label in ["state", "result"] {
            for value in matcher_values(expr, label) {
                assert!(literals.contains(&value), "{what}: no metric has {label}=\"{value}\", in: {expr}");
            }
        }
        for value in matcher_values(expr, "role") {
            assert!(roles.contains(&value.as_str()), "{what}: role=\"{value}\" is not a role, in: {expr}");
        }
    }
}

#[test]
fn the_dashboard_parses_and_queries_only_exported_metrics() {
    let dash = dashboard();
    assert!(dash["title"].is_string() && dash["panels"].is_array(), "a Grafana dashboard");
    let mut exprs = Vec::new();
    collect_exprs(&dash, &mut exprs);
    assert!(exprs.len() >= 10, "the dashboard has queries: {exprs:?}");
    assert_exported(&exprs, "grafana-dashboard.json");
    let text = exprs.join("\n");
    for needed in [
        "terway_hybrid_agent_scenario_info",
        "terway_hybrid_agent_check_passed",
        "terway_hybrid_controller_check_passed",
        "terway_hybrid_controller_nodes",
        "terway_hybrid_controller_rollout_wave",
    ] {
        assert!(text.contains(needed), "the dashboard shows {needed}");
    }
    for panel in dash["panels"].as_array().expect("panels") {
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "panel {} uses the datasource variable",
                panel["title"]
            );
        }
    }
    for dir in ["deploy", "deploy/overlays/ack-one-registered", "deploy/overlays/plain"] {
        let cm = rendering(dir).one::<ConfigMap>("terway-hybrid-dashboard");
        let labels = cm.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("grafana_dashboard").map(String::as_str),
            Some("1"),
            "{dir}: the sidecar's label"
        );
        let data = cm.data.clone().unwrap_or_default();
        let embedded: Value =
            serde_json::from_str(data.get("terway-hybrid.json").expect("the dashboard key")).expect("JSON");
        assert_eq!(embedded, dash, "{dir}: the ConfigMap carries grafana-dashboard.json");
    }
}

#[test]
fn the_alert_rules_query_only_exported_metrics() {
    let rules = alert_rules();
    assert!(rules.len() >= 5, "the alerts: {rules:?}");
    let exprs: Vec<String> = rules.iter().map(|r| r["expr"].as_str().expect("an expr").to_owned()).collect();
    assert_exported(&exprs, "rules.yaml");
    for rule in &rules {
        assert!(rule["labels"]["severity"].is_string(), "{}: a severity", rule["alert"]);
        assert!(rule["annotations"]["summary"].is_string(), "{}: a summary", rule["alert"]);
    }
}

#[test]
fn the_prometheus_rule_is_rules_yaml() {
    let rules = yaml_file("deploy/monitoring/rules.yaml");
    for dir in ["deploy", "deploy/overlays/ack-one-registered", "deploy/overlays/plain"] {
        let prometheus_rules = rendering(dir).untyped("monitoring.coreos.com/v1", "PrometheusRule");
        assert_eq!(prometheus_rules.len(), 1, "{dir}");
        if let Some(d) = first_difference(&prometheus_rules[0]["spec"], &rules, "spec") {
            panic!("{dir}: PrometheusRule terway-hybrid and deploy/monitoring/rules.yaml differ: {d}");
        }
    }
}

#[test]
fn promtool_checks_and_unit_tests_the_alert_rules() {
    let promtool = require_program("promtool", "prometheus");
    let dir = repo().join("deploy/monitoring");
    for args in [["check", "rules", "rules.yaml"], ["test", "rules", "rules-test.yaml"]] {
        let out = Command::new(&promtool).args(args).current_dir(&dir).output().expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every alert has a unit test that expects it to fire.
    let tests = read("deploy/monitoring/rules-test.yaml");
    for rule in alert_rules() {
        let name = rule["alert"].as_str().expect("an alert name");
        assert!(tests.contains(&format!("alertname: {name}")), "rules-test.yaml does not test {name}");
    }
}

#[test]
fn the_dockerfile_builds_and_copies_what_the_manifests_run() {
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile
            .contains("cargo build --release --locked -p terway-hybrid-agent -p terway-hybrid-controller"),
        "the Dockerfile builds both packages as a developer would"
    );
    let built = binaries();
    for name in [AGENT, CONTROLLER, "terway-hybrid"] {
        assert!(built.contains(name), "no package builds {name}: {built:?}");
        assert!(
            dockerfile.contains(&format!("target/release/{name}")),
            "the Dockerfile copies {name} out of target/release"
        );
        assert!(
            dockerfile.contains(&format!("/usr/local/bin/{name}")),
            "the image has /usr/local/bin/{name}"
        );
    }
    assert!(dockerfile.contains("distroless/cc-debian12:nonroot"), "a distroless, non-root base");
}

#[test]
fn the_terway_gate_webhook_ships_empty_and_only_the_controller_may_fill_it() {
    let source = read("controller/src/daemon/webhook.rs");
    let name = literals_after(&source, "pub const CONFIGURATION_NAME: &str =")
        .first()
        .cloned()
        .expect("controller/src/daemon/webhook.rs: CONFIGURATION_NAME");
    let bin = "controller/src/bin/terway-hybrid-controller.rs";
    let service_port: i32 = rust_const_default(bin, "webhook_service_port").parse().unwrap_or(0);
    let service_name = rust_const_default(bin, "webhook_service");
    for r in renderings() {
        let configs = r.typed::<MutatingWebhookConfiguration>();
        assert_eq!(configs.len(), 1, "{}: one MutatingWebhookConfiguration", r.dir);
        let config = &configs[0];
        assert_eq!(config.metadata.name.as_deref(), Some(name.as_str()), "{}", r.dir);
        // The controller writes the webhooks (Auto) from TerwayRollout; a
        // shipped webhook would intercept writes before any controller runs.
        assert_eq!(config.webhooks.as_deref().unwrap_or_default().len(), 0, "{}: shipped empty", r.dir);
        let grants = grants_of(r, NAMESPACE, CONTROLLER);
        let on_webhooks: Vec<_> =
            grants.iter().filter(|(_, (_, res, _, _))| res == "mutatingwebhookconfigurations").collect();
        assert_eq!(on_webhooks.len(), 1, "{}: one grant on webhook configurations: {on_webhooks:?}", r.dir);
        let (ns, (group, _, verb, names)) = on_webhooks[0];
        assert!(ns.is_none() && group == "admissionregistration.k8s.io" && verb == "patch", "{}", r.dir);
        assert_eq!(names, &vec![name.clone()], "{}: patch of that one configuration only", r.dir);
        // The Service leads to the port the controller serves the webhook on.
        let service = r.one::<Service>(&service_name);
        let port = service
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .and_then(|ps| ps.iter().find(|p| p.port == service_port))
            .unwrap_or_else(|| panic!("{}: Service {service_name} has no port {service_port}", r.dir))
            .clone();
        let controller = only_container(pod_spec_of_deployment(&r.one::<Deployment>(CONTROLLER)), CONTROLLER);
        let target = resolve_port(&controller, port.target_port.as_ref().expect("a targetPort"));
        let addr = arg_value(&controller, "--webhook-addr")
            .unwrap_or_else(|| rust_const_default(bin, "webhook_addr"));
        assert_eq!(addr.rsplit(':').next(), Some(target.to_string().as_str()), "{}: --webhook-addr", r.dir);
    }
}
