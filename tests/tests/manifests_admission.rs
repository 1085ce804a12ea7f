//! Admission in the rendered deploy/ manifests: the ValidatingAdmissionPolicy
//! that limits each agent to its own NodeNetworkReport, evaluated with
//! kube's client-side CEL as the API server would; and the Terway gate's
//! MutatingWebhookConfiguration, shipped empty for the controller to fill.
//!
//! Needs `kubectl` (>= 1.27, kustomize v5).

use clap::CommandFactory;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Service;
use kube::core::cel::{cel, KubeCelExt};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use terway_hybrid_controller::daemon::args::ControllerArgs;
use terway_hybrid_controller::daemon::webhook::CONFIGURATION_NAME;
use terway_hybrid_testkit::manifests::{
    arg_value, flag_default, grants_of, only_container, pod_spec_of_daemon_set, pod_spec_of_deployment,
    renderings, resolve_port, AGENT, CONTROLLER, NAMESPACE,
};

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
fn the_terway_gate_webhook_ships_empty_and_only_the_controller_may_fill_it() {
    let name = CONFIGURATION_NAME.to_owned();
    let flags = ControllerArgs::command();
    let service_port: i32 = flag_default(&flags, "webhook_service_port").parse().expect("a port");
    let service_name = flag_default(&flags, "webhook_service");
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
        // Read it back and patch it, that one configuration only.
        let verbs: BTreeSet<&str> = on_webhooks.iter().map(|(_, (_, _, verb, _))| verb.as_str()).collect();
        assert_eq!(verbs, BTreeSet::from(["get", "patch"]), "{}: {on_webhooks:?}", r.dir);
        for (ns, (group, _, _, names)) in &on_webhooks {
            assert!(ns.is_none() && group == "admissionregistration.k8s.io", "{}", r.dir);
            assert_eq!(names, &vec![name.clone()], "{}: that one configuration only", r.dir);
        }
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
        let addr =
            arg_value(&controller, "--webhook-addr").unwrap_or_else(|| flag_default(&flags, "webhook_addr"));
        assert_eq!(addr.rsplit(':').next(), Some(target.to_string().as_str()), "{}: --webhook-addr", r.dir);
    }
}
