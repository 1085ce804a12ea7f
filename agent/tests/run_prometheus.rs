//! `terway-hybrid-agent run --standalone` as Prometheus and the kubelet see
//! it: a real Prometheus (Debian's 2.42) scrapes the agent, `promtool check
//! metrics` lints the exposition, /healthz and /readyz answer as the probes
//! expect, and SIGTERM ends the agent with exit 0.
//!
//! Everything runs inside the test's own network namespace (the agent, its
//! curl clients and Prometheus talk over that namespace's loopback), so the
//! same ports serve every test and nothing is left behind: the namespace's
//! drop kills whatever still runs in it.
//!
//! Run as root: `cargo test -p terway-hybrid-agent --test run_prometheus`.

use std::io::Write as _;
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use terway_hybrid_testkit::agent_node;
use terway_hybrid_testkit::agent_node::{
    set_ip_forward, Node, RunningAgent, FLANNEL_CONFLIST, FLANNEL_SUBNET_ENV,
};
use terway_hybrid_testkit::{require_program, require_root, wait_for_described, ChildGuard, NetNs};

const NODE_IP: &str = "192.168.50.10";
const NODE_CIDR: &str = "192.168.50.10/24";
const GATEWAY: &str = "192.168.50.1";

/// Prometheus's port, on the loopback of the test's namespace.
const PROMETHEUS_ADDR: &str = "127.0.0.1:9090";
const PROMETHEUS_JOB: &str = "terway-hybrid-agent";

/// The first detection of a small node takes milliseconds; this is slack
/// for a loaded 2-core machine running the tests in parallel.
const FIRST_DETECTION: Duration = Duration::from_secs(10);
/// How long a SIGTERMed agent may take to exit.
const EXIT_BUDGET: Duration = Duration::from_secs(3);

/// The agent metrics of docs/contracts.md §8, by the name their samples carry.
const AGENT_METRICS: &[&str] = &[
    "terway_hybrid_agent_scenario_info",
    "terway_hybrid_agent_node_ready",
    "terway_hybrid_agent_check_passed",
    "terway_hybrid_agent_detection_duration_seconds_bucket",
    "terway_hybrid_agent_detection_duration_seconds_sum",
    "terway_hybrid_agent_detection_duration_seconds_count",
    "terway_hybrid_agent_report_writes_total",
    "terway_hybrid_agent_build_info",
];

/// The node checks of docs/contracts.md §5, each exported as `check_passed{check}`.
const NODE_CHECKS: &[&str] = &[
    "ScenarioDetected",
    "IPForwarding",
    "ForeignCNIConfig",
    "StaleOverlayDevices",
    "KernelVersion",
    "EcsMetadata",
];

/// A flannel VXLAN node (flannel.1 with routes to three peers, cni0, flannel's
/// CNI config and subnet.env) whose IP forwarding is on: ready.
fn flannel_node(prefix: &str) -> Node {
    let node = Node::new(prefix, NODE_CIDR, GATEWAY);
    node.flannel_vxlan(NODE_IP, 0, &[1, 2, 3]);
    node.cni0(0);
    node.root.write("etc/cni/net.d/10-flannel.conflist", FLANNEL_CONFLIST);
    node.root.write("run/flannel/subnet.env", FLANNEL_SUBNET_ENV);
    set_ip_forward(&node.root, true);
    node
}

/// A node with nothing but its uplink: host network.
fn host_network_node(prefix: &str, ip_forward: bool) -> Node {
    let node = Node::new(prefix, NODE_CIDR, GATEWAY);
    set_ip_forward(&node.root, ip_forward);
    node
}

// ---------------------------------------------------------------------------
// A real Prometheus
// ---------------------------------------------------------------------------

/// `prometheus` running inside a namespace, scraping the agent every second;
/// its config, TSDB and log live in a temporary directory.
struct Prometheus<'a> {
    ns: &'a NetNs,
    /// Declared before `dir`: the process dies before its files go.
    _child: ChildGuard,
    dir: tempfile::TempDir,
}

impl<'a> Prometheus<'a> {
    fn start(ns: &'a NetNs, target: &str) -> Prometheus<'a> {
        let prometheus = require_program("prometheus", "prometheus");
        let dir = tempfile::Builder::new()
            .prefix("thtest-prometheus-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a directory for Prometheus: {e}"));
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: {PROMETHEUS_JOB}\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let data = dir.path().join("data");
        let log = dir.path().join("prometheus.log");
        let child = ns.spawn_logged(
            prometheus.to_str().expect("UTF-8 path"),
            &[
                &format!("--config.file={}", config.display()),
                &format!("--storage.tsdb.path={}", data.display()),
                &format!("--web.listen-address={PROMETHEUS_ADDR}"),
            ],
            &log,
        );
        Prometheus { ns, _child: child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log"))
            .unwrap_or_else(|e| format!("(cannot read the Prometheus log: {e})"))
    }

    /// An instant query through the HTTP API (curl inside the namespace):
    /// each series' labels and value, or why there is no answer.
    fn query(&self, expr: &str) -> Result<Vec<(serde_json::Value, String)>, String> {
        let url = format!("http://{PROMETHEUS_ADDR}/api/v1/query");
        let out = self.ns.exec(
            "curl",
            &["-s", "--max-time", "5", "-G", &url, "--data-urlencode", &format!("query={expr}")],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!("curl failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)));
        }
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if v["status"] != "success" {
            return Err(text);
        }
        let result = v["data"]["result"].as_array().ok_or_else(|| text.clone())?;
        Ok(result
            .iter()
            .map(|series| {
                let value = series["value"][1].as_str().unwrap_or_default().to_owned();
                (series["metric"].clone(), value)
            })
            .collect())
    }
}

/// The agent's scenario and readiness reach Prometheus: a real scrape of a
/// flannel VXLAN node.
#[test]
fn prometheus_scrapes_scenario_and_readiness() {
    require_root();
    require_program("curl", "curl");
    let promtool = require_program("promtool", "prometheus");
    let node = flannel_node("prom");
    let agent = RunningAgent::start(&node.ns, node.root.path(), &[]);
    let prometheus = Prometheus::start(&node.ns, agent_node::METRICS_ADDR);
    let start = Instant::now();

    let queries = [
        format!("up{{job=\"{PROMETHEUS_JOB}\"}}"),
        "terway_hybrid_agent_node_ready".to_owned(),
        "terway_hybrid_agent_scenario_info{scenario=\"overlay\",plugin=\"flannel-vxlan\"}".to_owned(),
    ];
    let last = std::cell::RefCell::new(Vec::new());
    wait_for_described(
        "Prometheus to have scraped up == 1, node_ready == 1 and scenario_info overlay/flannel-vxlan == 1",
        Duration::from_secs(30),
        || {
            agent.assert_running();
            let answers: Vec<_> = queries.iter().map(|q| (q.clone(), prometheus.query(q))).collect();
            let all_one = answers
                .iter()
                .all(|(_, a)| matches!(a, Ok(series) if series.len() == 1 && series[0].1 == "1"));
            last.replace(answers);
            all_one.then_some(())
        },
        || {
            format!(
                "--- last answers ---\n{:#?}\n--- prometheus log ---\n{}\n--- agent log ---\n{}",
                last.borrow(),
                prometheus.log(),
                agent.log()
            )
        },
    );
    eprintln!("Prometheus had the agent's scenario and readiness after {:?}", start.elapsed());

    // The series carry the scrape's target labels.
    let series = prometheus.query(&queries[2]).expect("the query answered a moment ago");
    assert_eq!(series[0].0["job"], PROMETHEUS_JOB, "{series:?}");
    assert_eq!(series[0].0["instance"], agent_node::METRICS_ADDR, "{series:?}");
    // Only one scenario at a time.
    let all = prometheus.query("terway_hybrid_agent_scenario_info").expect("Prometheus answers");
    assert_eq!(all.len(), 1, "exactly one scenario_info series: {all:?}");

    // promtool, the CLI operators use, sees the same.
    let out = node.ns.exec(
        promtool.to_str().expect("UTF-8 path"),
        &["query", "instant", &format!("http://{PROMETHEUS_ADDR}"), "terway_hybrid_agent_node_ready"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("terway_hybrid_agent_node_ready")
            && stdout.contains("=> 1 @"),
        "promtool query instant ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // Prometheus keeps a connection open between scrapes: SIGTERM must not
    // wait on it.
    let t = Instant::now();
    agent.terminate();
    let status = agent.wait_exit(EXIT_BUDGET);
    assert!(
        status.is_some_and(|s| s.code() == Some(0)),
        "SIGTERM while Prometheus scrapes: expected exit 0 within {EXIT_BUDGET:?}, got {status:?}\n--- agent log ---\n{}",
        agent.log()
    );
    eprintln!("agent exited 0 {:?} after SIGTERM", t.elapsed());
}

// ---------------------------------------------------------------------------
// The exposition
// ---------------------------------------------------------------------------

/// `promtool check metrics` finds nothing to complain about, and every
/// metric of docs/contracts.md §8 and the process metrics are there.
#[test]
fn exposition_passes_promtool_check_metrics() {
    require_root();
    require_program("curl", "curl");
    let promtool = require_program("promtool", "prometheus");
    let node = flannel_node("promtool");
    let agent = RunningAgent::start(&node.ns, node.root.path(), &[]);
    let m = agent.wait_detections(1, FIRST_DETECTION);

    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    child.stdin.take().expect("piped").write_all(m.text.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("wait for promtool");
    let report = [&out.stdout, &out.stderr]
        .iter()
        .map(|b| String::from_utf8_lossy(b).trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        out.status.success() && report.is_empty(),
        "promtool check metrics ({}) reports problems:\n{report}\n--- exposition ---\n{}",
        out.status,
        m.text
    );

    for name in AGENT_METRICS.iter().chain(&["process_resident_memory_bytes"]) {
        assert!(!m.find(name, &[]).is_empty(), "no {name} sample in:\n{}", m.text);
    }
    assert!(
        m.text.contains("# TYPE terway_hybrid_agent_detection_duration_seconds histogram"),
        "detection_duration_seconds must be a histogram:\n{}",
        m.text
    );
    for check in NODE_CHECKS {
        assert_eq!(
            m.value("terway_hybrid_agent_check_passed", &[("check", check)]),
            Some(1.0),
            "check_passed{{check={check:?}}} on a ready flannel node:\n{}",
            m.text
        );
    }
    assert_eq!(m.scenarios(), [("overlay".to_owned(), "flannel-vxlan".to_owned())], "{}", m.text);
    assert_eq!(m.value("terway_hybrid_agent_node_ready", &[]), Some(1.0), "{}", m.text);
    assert_eq!(
        m.value("terway_hybrid_agent_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        Some(1.0),
        "{}",
        m.text
    );
    for result in ["success", "error"] {
        assert_eq!(
            m.value("terway_hybrid_agent_report_writes_total", &[("result", result)]),
            Some(0.0),
            "standalone: no report writes ({result}):\n{}",
            m.text
        );
    }
    let rss = m.value("process_resident_memory_bytes", &[]).unwrap_or_default();
    assert!(rss > 0.0, "process_resident_memory_bytes = {rss}:\n{}", m.text);
}

// ---------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------

#[test]
fn healthz_and_readyz_are_200_on_a_ready_node() {
    require_root();
    require_program("curl", "curl");
    let node = flannel_node("ready");
    let agent = RunningAgent::start(&node.ns, node.root.path(), &[]);
    let body = agent.wait_status("/readyz", 200, FIRST_DETECTION);
    assert_eq!(body.trim(), "ready");
    assert_eq!(agent.get("/healthz").0, 200);
    let m = agent.metrics().expect("/metrics answers");
    assert!(m.detections() >= 1, "/readyz 200 only after a detection:\n{}", m.text);
    assert_eq!(m.value("terway_hybrid_agent_node_ready", &[]), Some(1.0), "{}", m.text);
}

/// IP forwarding off fails an error-severity check: the node is alive
/// (/healthz 200) but not ready (/readyz 503). Fixing the sysctl changes no
/// link, address or route, so it is the resync that makes the node ready.
#[test]
fn readyz_is_503_while_ip_forwarding_is_off() {
    require_root();
    require_program("curl", "curl");
    let node = host_network_node("notready", false);
    let agent = RunningAgent::start(&node.ns, node.root.path(), &["--resync-seconds", "1"]);
    let m = agent.wait_detections(1, FIRST_DETECTION);
    assert_eq!(m.value("terway_hybrid_agent_node_ready", &[]), Some(0.0), "{}", m.text);
    assert_eq!(
        m.value("terway_hybrid_agent_check_passed", &[("check", "IPForwarding")]),
        Some(0.0),
        "{}",
        m.text
    );
    assert_eq!(
        m.value("terway_hybrid_agent_check_passed", &[("check", "ScenarioDetected")]),
        Some(1.0),
        "{}",
        m.text
    );

    let (code, body) = agent.get("/readyz");
    assert_eq!(code, 503, "/readyz with ip_forward = 0: {body}");
    assert!(body.contains("check"), "/readyz should say a check fails: {body:?}");
    assert_eq!(agent.get("/healthz"), (200, "ok\n".to_owned()));

    set_ip_forward(&node.root, true);
    let t = Instant::now();
    agent.wait_status("/readyz", 200, Duration::from_secs(5));
    eprintln!("ready {:?} after ip_forward = 1 (resync 1 s)", t.elapsed());
    assert_eq!(agent.get("/healthz").0, 200);
}

// ---------------------------------------------------------------------------
// SIGTERM
// ---------------------------------------------------------------------------

fn assert_exit_0_after_sigterm(agent: &RunningAgent) {
    let t = Instant::now();
    agent.terminate();
    let status = agent.wait_exit(EXIT_BUDGET);
    let log = agent.log();
    match status {
        Some(s) if s.code() == Some(0) => eprintln!("exit 0 {:?} after SIGTERM", t.elapsed()),
        Some(s) => panic!(
            "SIGTERM must end the agent with exit 0, got {s} (code {:?}, signal {:?})\n--- agent log ---\n{log}",
            s.code(),
            s.signal()
        ),
        None => panic!("the agent still runs {EXIT_BUDGET:?} after SIGTERM\n--- agent log ---\n{log}"),
    }
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn sigterm_exits_0() {
    require_root();
    require_program("curl", "curl");
    let node = host_network_node("sigterm", true);
    let agent = RunningAgent::start(&node.ns, node.root.path(), &[]);
    agent.wait_status("/readyz", 200, FIRST_DETECTION);
    assert_exit_0_after_sigterm(&agent);
    assert!(agent.log().contains("shutting down"), "{}", agent.log());
}

/// The kubelet may stop a pod at any moment, also while its first detection
/// still runs. A BIRD control socket that never answers holds the first
/// detection for the agent's 1 s BIRD deadline; SIGTERM lands in it.
#[test]
fn sigterm_during_the_first_detection_exits_0() {
    require_root();
    require_program("curl", "curl");
    let node = host_network_node("sigterm-early", true);
    let dir = node.root.mkdir("run/calico");
    // Bound in the test process, reachable from any namespace by its path;
    // nobody ever accepts or answers.
    let _silent_bird = UnixListener::bind(dir.join("bird.ctl")).expect("bind the silent BIRD socket");
    let agent = RunningAgent::start(&node.ns, node.root.path(), &[]);

    // Serving, but the first detection has not finished.
    agent.wait_status("/healthz", 200, FIRST_DETECTION);
    let (code, body) = agent.get("/readyz");
    let m = agent.metrics().map(|m| m.detections());
    assert!(
        code == 503 && body.contains("no detection") && m == Some(0),
        "expected to catch the first detection in flight: /readyz {code} {body:?}, detections {m:?}"
    );
    assert_exit_0_after_sigterm(&agent);
}
