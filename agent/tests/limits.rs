//! The agent's bounds, on the real thing: FIFOs where it expects files, a
//! BIRD socket that streams without end, endless operator input, and a
//! flood of idle connections against the running agent. Each test asserts
//! the bound (it returns, within the deadline, under a memory cap, with the
//! exit code and the file named), not only that nothing panics.
//!
//! Run as root: `cargo test -p terway-hybrid-agent --test limits`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use terway_hybrid_api::snapshot::BirdState;
use terway_hybrid_api::{CheckName, CheckStatus, NodeDetection, NodeSnapshot};
use terway_hybrid_testkit::agent_node::{
    agent_bin, set_ip_forward, Node, RunningAgent, CALICO_CONFLIST, METRICS_ADDR,
};
use terway_hybrid_testkit::{require_program, require_root, HostRoot, NetNs};

/// The agent's detection deadline (`run::DETECTION_DEADLINE`) plus slack:
/// what "returns" means here. The bounds asserted are generous on purpose.
const RETURNS_WITHIN: Duration = Duration::from_secs(35);
/// Address space for a one-shot command: far above what it needs, far below
/// what reading an endless input would take.
const MEMORY_CAP: &str = "--as=268435456"; // 256 MiB

fn node_with_fifos(prefix: &str) -> Node {
    let node = Node::new(prefix, "192.168.60.10/24", "192.168.60.1");
    for rel in ["etc/cni/net.d/10-calico.conflist", "proc/sys/net/ipv4/ip_forward", "var/lib/calico/nodename"]
    {
        let path = node.root.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644))
            .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
    }
    // A real config after the FIFO: the runtime would load this one.
    node.root.write("etc/cni/net.d/20-calico.conflist", CALICO_CONFLIST);
    node
}

fn describe(out: &Output) -> String {
    format!(
        "({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A FIFO where a CNI config, `ip_forward` and Calico's nodename belong
/// blocked `open(2)` forever; `detect` now returns at once and says what
/// each one is.
#[test]
fn detect_returns_on_fifos_and_names_them() {
    require_root();
    require_program("timeout", "coreutils");
    let node = node_with_fifos("fifodetect");
    let root = node.root.path().to_str().unwrap();
    // `timeout` turns a hang into a failed run instead of a hung test.
    let secs = RETURNS_WITHIN.as_secs().to_string();
    let start = Instant::now();
    let out = node.ns.exec(
        "timeout",
        &["-s", "KILL", &secs, agent_bin(), "detect", "--host-root", root, "--output", "json"],
    );
    let took = start.elapsed();
    assert!(out.status.success(), "detect did not finish {}", describe(&out));
    assert!(took < RETURNS_WITHIN, "took {took:?}");
    let d: NodeDetection =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e} {}", describe(&out)));
    let ip_forwarding = d.checks.iter().find(|c| c.name == CheckName::IPForwarding).unwrap();
    assert_eq!((ip_forwarding.status, ip_forwarding.reason.as_str()), (CheckStatus::Fail, "Unreadable"));
    assert!(ip_forwarding.message.contains("ip_forward: is a FIFO"), "{ip_forwarding:?}");

    let out = node.ns.exec("timeout", &["-s", "KILL", &secs, agent_bin(), "snapshot", "--host-root", root]);
    assert!(out.status.success(), "snapshot did not finish {}", describe(&out));
    let s: NodeSnapshot = serde_json::from_slice(&out.stdout).unwrap();
    let fifo = s.cni.files.iter().find(|f| f.name == "10-calico.conflist").unwrap();
    assert!(fifo.error.as_deref().unwrap().contains("is a FIFO"), "{fifo:?}");
    assert_eq!(s.cni.primary().map(|f| f.name.as_str()), Some("20-calico.conflist"));
    assert!(format!("{:?}", s.calico_nodename).contains("is a FIFO"), "{:?}", s.calico_nodename);
}

/// `run` on the same node: its first detection finishes (so it leaves
/// "not ready, first detection pending"), `/healthz` answers, `/readyz`
/// says why the node is not ready, and SIGTERM ends it with exit 0.
#[test]
fn run_detects_on_fifos_and_stops_on_sigterm() {
    require_root();
    require_program("curl", "curl");
    let node = node_with_fifos("fiforun");
    let agent = RunningAgent::start(&node.ns, node.root.path(), &[]);
    agent.wait_detections(1, RETURNS_WITHIN);
    assert_eq!(agent.get("/healthz").0, 200);
    let (status, body) = agent.get("/readyz");
    assert_eq!(status, 503);
    assert!(body.contains("node check with severity error fails"), "{body}");
    agent.terminate();
    let status = agent.wait_exit(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n--- agent log ---\n{}", agent.log());
}

/// A `bird.ctl` that streams bytes without a newline grew the agent past
/// 11 GB: `snapshot` now stops at 1 MiB, within BIRD's 1 s deadline, under
/// an address-space cap of 256 MiB, and says why in the snapshot.
#[test]
fn endless_bird_socket_is_cut_at_its_byte_cap() {
    require_root();
    require_program("prlimit", "util-linux");
    let root = HostRoot::new();
    let sock = root.mkdir("run/calico").join("bird.ctl");
    let listener = UnixListener::bind(&sock).unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let chunk = [b'x'; 65536];
        let mut sent = 0usize;
        while conn.write_all(&chunk).is_ok() {
            sent += chunk.len();
        }
        sent
    });
    set_ip_forward(&root, true);
    let ns = NetNs::new("birdflood");
    let start = Instant::now();
    let out = ns.exec(
        "prlimit",
        &[
            MEMORY_CAP,
            "timeout",
            "-s",
            "KILL",
            "35",
            agent_bin(),
            "snapshot",
            "--host-root",
            root.path().to_str().unwrap(),
        ],
    );
    let took = start.elapsed();
    let sent = server.join().unwrap();
    assert!(out.status.success(), "snapshot failed {}", describe(&out));
    assert!(took < Duration::from_secs(1 + 5), "took {took:?}");
    let s: NodeSnapshot = serde_json::from_slice(&out.stdout).unwrap();
    match &s.bird {
        BirdState::NoAnswer { error, .. } => {
            assert_eq!(error, "greeting: reply larger than 1048576 bytes")
        }
        other => panic!("{other:?}"),
    }
    eprintln!("the socket got {sent} bytes out before the agent hung up (took {took:?})");
}

/// `classify --snapshot` on an endless file (/dev/zero) and on endless
/// standard input: exit 1 at the 16 MiB cap, under a 256 MiB address-space
/// cap, naming what was too large.
#[test]
fn classify_refuses_endless_input_and_names_it() {
    require_program("prlimit", "util-linux");
    let start = Instant::now();
    let out = Command::new("prlimit")
        .args([MEMORY_CAP, agent_bin(), "classify", "--snapshot", "/dev/zero"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(start.elapsed() < RETURNS_WITHIN);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        "error: reading the snapshot from /dev/zero: larger than 16 MiB: a snapshot is far smaller (is this the right file?)"
    );

    let out = Command::new("prlimit")
        .args([MEMORY_CAP, agent_bin(), "classify", "--snapshot", "-"])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("reading the snapshot from standard input: larger than 16 MiB"),
        "{}",
        describe(&out)
    );

    // A snapshot through a pipe (process substitution is one) still works.
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/snapshots/calico-bgp.json");
    let out = Command::new(agent_bin())
        .args(["classify", "--snapshot", "-"])
        .stdin(std::fs::File::open(snapshot).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
}

/// Opens `n` TCP connections to `addr` from inside `ns` (a thread that
/// enters the namespace; a socket stays in the namespace it was made in).
fn connect_in(ns: &NetNs, addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let netns = std::fs::File::open(Path::new("/run/netns").join(ns.name())).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        (0..n).filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()).collect()
    })
    .join()
    .unwrap()
}

/// VmHWM: the most resident memory the process has had, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// 2,000 connections that never send a request, against an agent with the
/// default 1,024 file descriptors: the probes keep answering, the agent
/// never holds more than its connection cap, and every idle connection is
/// closed by the header-read timeout (5 s), as is a kept-alive one.
#[test]
fn idle_connection_flood_leaves_room_for_the_probes() {
    require_root();
    require_program("curl", "curl");
    require_program("prlimit", "util-linux");
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 8192, 8192);
    let node = Node::new("flood", "192.168.61.10/24", "192.168.61.1");
    set_ip_forward(&node.root, true);
    let agent = RunningAgent::start_wrapped(&node.ns, node.root.path(), &["prlimit", "--nofile=1024"], &[]);
    agent.wait_detections(1, RETURNS_WITHIN);
    let addr: SocketAddr = METRICS_ADDR.parse().unwrap();

    let mut answer = [0u8; 256];
    let flood_started = Instant::now();
    let idle = connect_in(&node.ns, addr, 2000);
    let flood_opened = Instant::now();
    eprintln!("{} idle connections open after {:?}", idle.len(), flood_started.elapsed());
    assert!(idle.len() > 1100, "only {} connections could be opened", idle.len());
    let mut most_fds = 0;
    for _ in 0..3 {
        let start = Instant::now();
        let (status, body) = agent.get("/healthz");
        assert_eq!((status, body.as_str()), (200, "ok\n"), "/healthz during the flood");
        assert!(start.elapsed() < Duration::from_secs(5), "/healthz took {:?}", start.elapsed());
        most_fds = most_fds.max(open_fds(agent.pid()));
    }
    assert_eq!(agent.get("/readyz").0, 200);
    // 128 connections and the agent's own descriptors.
    assert!(most_fds <= 128 + 64, "the agent held {most_fds} descriptors");
    // The DaemonSet's memory limit holds through the flood.
    let peak = peak_rss_kib(agent.pid());
    eprintln!("during the flood the agent held at most {most_fds} descriptors, peak RSS {peak} KiB");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");

    // Every connection is closed by the server: a read sees the end.
    let closed_by = flood_opened + Duration::from_secs(5 + 10);
    let mut still_open = 0;
    for mut conn in idle {
        let left = closed_by.saturating_duration_since(Instant::now()).max(Duration::from_millis(10));
        conn.set_read_timeout(Some(left)).unwrap();
        match conn.read(&mut answer) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => {
                still_open += 1;
                eprintln!("a connection is still open: {other:?}");
            }
        }
    }
    assert_eq!(still_open, 0, "connections the agent did not close within 15 s of the flood");

    // A kept-alive connection that goes idle after one request is closed
    // by the same timeout (opened after the flood, so no newer connection evicts it).
    let mut kept = connect_in(&node.ns, addr, 1).pop().unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let n = kept.read(&mut answer).unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
    let idle_since = Instant::now();
    kept.set_read_timeout(Some(Duration::from_secs(5 + 10))).unwrap();
    let end = kept.read(&mut answer);
    assert!(matches!(end, Ok(0)), "the kept-alive connection is still open: {end:?}");
    eprintln!("the kept-alive connection was closed {:?} after its answer", idle_since.elapsed());
    agent.assert_running();
}

/// A CNI file named with an escape sequence (the title-setting OSC, a screen
/// clear) and a plugin type holding one: `detect`'s text output shows them
/// escaped, never raw; the JSON output keeps the real name.
#[test]
fn detect_text_escapes_node_strings() {
    require_root();
    let node = Node::new("escapes", "192.168.62.10/24", "192.168.62.1");
    set_ip_forward(&node.root, true);
    let name = "10-\u{1b}]0;owned\u{7}\u{1b}[2J.conflist";
    node.root
        .write(&format!("etc/cni/net.d/{name}"), r#"{"name":"k8s","plugins":[{"type":"calico\u001b[31m"}]}"#);
    let root = node.root.path().to_str().unwrap();
    let out = node.ns.exec(agent_bin(), &["detect", "--host-root", root]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
    assert!(text.contains("10-\\x1b]0;owned\\x07\\x1b[2J.conflist (plugins: calico\\x1b[31m)"), "{text}");

    let out = node.ns.exec(agent_bin(), &["detect", "--host-root", root, "--output", "json"]);
    let d: NodeDetection = serde_json::from_slice(&out.stdout).unwrap();
    assert!(d.detection.evidence.iter().any(|e| e.detail.contains(name)), "{d:?}");
}
