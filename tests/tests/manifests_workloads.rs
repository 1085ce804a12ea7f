//! The workloads of the rendered deploy/ manifests against the binaries
//! they run: selectors select, probes and ports are the ones the binaries
//! serve (paths from `terway_hybrid_api::http`, flag defaults from clap's
//! commands, binary names from `cargo metadata`), the agent reads the host
//! read-only through the paths its collector names, the controller runs two
//! electing replicas, and the names the controller looks for are rendered.
//!
//! Needs `kubectl` (>= 1.27, kustomize v5).

use clap::CommandFactory;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Container, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use std::collections::BTreeMap;
use terway_hybrid_agent::cli::Cli as AgentCli;
use terway_hybrid_agent::collect::{
    CALICO_NODENAME, CNI_DIR, IP_FORWARD, RUN_BIRD_SOCKET, RUN_FLANNEL_SUBNET_ENV,
};
use terway_hybrid_api::http::{HEALTHZ_PATH, METRICS_PATH, READYZ_PATH};
use terway_hybrid_controller::daemon::args::ControllerArgs;
use terway_hybrid_testkit::manifests::{
    arg_value, built_binaries, field_ref, flag_default, grants_of, name_of, only_container,
    pod_spec_of_daemon_set, pod_spec_of_deployment, renderings, resolve_port, selector_matches, AGENT,
    CONTROLLER, NAMESPACE,
};

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
    // Both routers serve these paths (api::http); the probes and
    // ServiceMonitors must name them.
    let served = [(AGENT, AgentCli::command()), (CONTROLLER, ControllerArgs::command())];
    let built = built_binaries();
    for r in renderings() {
        let agent = only_container(pod_spec_of_daemon_set(&r.one::<DaemonSet>(AGENT)), AGENT);
        let controller = only_container(pod_spec_of_deployment(&r.one::<Deployment>(CONTROLLER)), CONTROLLER);
        for ((name, command), c) in served.iter().zip([agent, controller]) {
            let what = format!("{}: {name}", r.dir);
            let command_line = c.command.clone().unwrap_or_default();
            let binary = command_line.first().and_then(|p| p.strip_prefix("/usr/local/bin/")).unwrap_or("");
            assert_eq!(binary, *name, "{what}: runs /usr/local/bin/{name}");
            assert!(built.contains(binary), "{what}: no package builds a binary {binary} ({built:?})");
            assert_eq!(command.get_name(), binary, "{what}: the flags read here are {binary}'s");
            let default_addr = flag_default(command, "metrics_addr");
            let default_port = port_of(&default_addr);
            let addr = arg_value(&c, "--metrics-addr").unwrap_or(default_addr);
            let port = port_of(&addr);
            assert_eq!(port, default_port, "{what}: --metrics-addr is the documented default");
            let metrics = resolve_port(&c, &IntOrString::String("metrics".into()));
            assert_eq!(metrics, port, "{what}: the `metrics` container port is where the binary listens");
            let live =
                c.liveness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("an HTTP liveness probe");
            let ready = c
                .readiness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .expect("an HTTP readiness probe");
            assert_eq!(live.path.as_deref(), Some(HEALTHZ_PATH), "{what}: liveness");
            assert_eq!(ready.path.as_deref(), Some(READYZ_PATH), "{what}: readiness");
            assert_eq!(resolve_port(&c, &live.port), port, "{what}: liveness port");
            assert_eq!(resolve_port(&c, &ready.port), port, "{what}: readiness port");
        }
        for sm in r.untyped("monitoring.coreos.com/v1", "ServiceMonitor") {
            for endpoint in sm["spec"]["endpoints"].as_array().expect("endpoints") {
                assert_eq!(endpoint["path"], METRICS_PATH, "{}: {}", r.dir, name_of(sm));
            }
        }
    }
}

/// The port of `ADDR:PORT`.
fn port_of(addr: &str) -> i32 {
    addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{addr}: no port"))
}

#[test]
fn the_agent_runs_on_every_node_with_read_only_access_only() {
    // Paths the agent reads under --host-root, as its collector names them;
    // `true`: looked for under run/ or var/run/.
    let reads = [
        (CNI_DIR, false),
        (RUN_FLANNEL_SUBNET_ENV, true),
        (CALICO_NODENAME, false),
        (IP_FORWARD, false),
        (RUN_BIRD_SOCKET, true),
    ];
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
        for (path, under_run) in reads {
            let covered = host_paths.iter().any(|hp| {
                let under = |p: &str| p == hp || p.starts_with(&format!("{hp}/"));
                under(path)
                    || (under_run && (under(&format!("run/{path}")) || under(&format!("var/run/{path}"))))
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
    let lease = flag_default(&ControllerArgs::command(), "lease_name");
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
