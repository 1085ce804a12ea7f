//! `terway-hybrid-agent`: see `--help`. The logic lives in the library; this
//! file only parses arguments and maps results to exit codes.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use terway_hybrid_agent::checks::NodeContext;
use terway_hybrid_agent::collect::{self, Sources};
use terway_hybrid_agent::ecs;
use terway_hybrid_agent::output::{render, Format};
use terway_hybrid_agent::probe;
use terway_hybrid_agent::run::{self, RunConfig};
use terway_hybrid_agent::watch::Debounce;
use terway_hybrid_api::{NodeSnapshot, Role};

/// Classifies this node's container network (overlay, bgp or host-network)
/// from its kernel state and CNI files, for a safe Terway install in hybrid
/// clusters.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Detect the scenario of the network namespace this runs in.
    ///
    /// Exit 0 when detection ran (even if the answer is `unknown`), 1 when the
    /// kernel could not be read.
    Detect {
        #[command(flatten)]
        root: HostRoot,
        #[command(flatten)]
        node: NodeArgs,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Probe peers on the other site from the network namespace this runs
    /// in: reachable, round trip, path MTU, and the route the kernel chose.
    ///
    /// Each peer must run `terway-hybrid-agent run` (it answers on
    /// --probe-addr, port 9799). The path MTU is the largest IP packet,
    /// headers included, that reaches the peer with fragmentation forbidden:
    /// learnt from the kernel where the path sends ICMP "fragmentation
    /// needed", searched over sizes where it drops big packets silently.
    /// Without UDP answers a TCP connect still proves reachability (path MTU
    /// unknown). Exit 0 when every peer is reachable, 1 when one is not.
    Probe {
        /// ADDR, ADDR:PORT or [IPV6]:PORT (port 9799 by default); repeatable.
        #[arg(long = "peer", value_name = "ADDR[:PORT]", required = true, value_parser = probe::parse_peer)]
        peers: Vec<SocketAddr>,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: Format,
        /// The most time spent on each peer (peers are probed in parallel).
        #[arg(long, value_name = "N", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
        timeout_ms: u64,
        /// Probe from the network namespace of the responder at ADDR:PORT
        /// (a responder pod run with `respond --delegate-from` this node's
        /// address) instead of from here: the pod network's path. At most 8
        /// peers, on the responder's own port, within 10 s each.
        #[arg(long, value_name = "ADDR:PORT")]
        via: Option<SocketAddr>,
    },
    /// Answer probes (TCP and UDP) and nothing else, until SIGTERM: what
    /// `run` does on --probe-addr, for a responder that is not the agent
    /// (e.g. a pod in the pod network).
    Respond {
        #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:9799")]
        probe_addr: SocketAddr,
        /// Also probe for the agent of this node: accept, only from this
        /// address (the node's, `status.hostIP`), a request to probe up to 8
        /// peers on the probe port from here, and answer with the results.
        #[arg(long, env = "HOST_IP", value_name = "IP")]
        delegate_from: Option<std::net::IpAddr>,
    },
    /// Print the collected facts (NodeSnapshot) as JSON, e.g. for a bug report.
    Snapshot {
        #[command(flatten)]
        root: HostRoot,
    },
    /// DaemonSet mode: detect now, on every link/address/route change
    /// (debounced) and on a slow resync; write this node's NodeNetworkReport;
    /// serve /metrics, /healthz and /readyz.
    ///
    /// Needs NODE_NAME (downward API) unless --standalone. SIGTERM finishes
    /// the report write in flight and exits 0.
    Run {
        #[command(flatten)]
        root: HostRoot,
        #[command(flatten)]
        node: NodeArgs,
        /// Where /metrics, /healthz and /readyz are served.
        #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:9797")]
        metrics_addr: SocketAddr,
        /// Where probes from the other site are answered (TCP and UDP; see
        /// `probe`).
        #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:9799")]
        probe_addr: SocketAddr,
        /// No Kubernetes API: detection, checks, metrics and probes only.
        #[arg(long)]
        standalone: bool,
        /// The node's name; the DaemonSet sets it from spec.nodeName.
        #[arg(long, env = "NODE_NAME", value_name = "NAME")]
        node_name: Option<String>,
        /// Detect again this long after the last detection even without changes.
        #[arg(long, value_name = "SECONDS", default_value_t = 300)]
        resync_seconds: u64,
        /// Detect after the kernel has been quiet this long following a change.
        #[arg(long, value_name = "MILLISECONDS", default_value_t = 2000)]
        debounce_ms: u64,
        /// Probe the targets the controller assigned (the report's
        /// spec.probeTargets) again this often, in seconds, plus up to a tenth
        /// at random; 0 probes only on start and when they change.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        probe_interval: u64,
        /// The labels that make a node a cloud node: set it to the
        /// TerwayRollout's `cloudNodeSelector` when that is not the default.
        #[arg(long, env = "CLOUD_NODE_SELECTOR", value_name = "KEY=VALUE[,KEY=VALUE]",
              default_value = "alibabacloud.com/external=true", value_parser = parse_selector)]
        cloud_node_selector: BTreeMap<String, String>,
    },
    /// Classify a saved snapshot offline (no kernel access).
    Classify {
        /// A file written by `snapshot` (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        snapshot: PathBuf,
        #[arg(short, long, value_enum, default_value = "text")]
        output: Format,
    },
}

/// What the agent would learn from the Node object; without `--role` the
/// role-dependent checks (ForeignCNIConfig, KernelVersion, EcsMetadata) skip.
#[derive(clap::Args)]
struct NodeArgs {
    /// The node's role: `cloud` (labelled alibabacloud.com/external=true) or `on-prem`.
    #[arg(long, value_parser = parse_role)]
    role: Option<Role>,
    /// Probed on cloud nodes for the EcsMetadata check (1 s timeout).
    #[arg(long, value_name = "URL", default_value = ecs::DEFAULT_URL)]
    ecs_metadata_url: String,
}

impl NodeArgs {
    fn context(&self) -> NodeContext {
        terway_hybrid_agent::node_context(self.role, &self.ecs_metadata_url)
    }
}

/// `a=b,c=d` -> {a: b, c: d}; at least one pair, none empty.
fn parse_selector(s: &str) -> Result<BTreeMap<String, String>, String> {
    let pairs: Option<BTreeMap<String, String>> = s
        .split(',')
        .map(|kv| kv.split_once('=').filter(|(k, _)| !k.trim().is_empty()))
        .map(|kv| kv.map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
        .collect();
    pairs.filter(|p| !p.is_empty()).ok_or_else(|| format!("{s:?}: expected KEY=VALUE[,KEY=VALUE]"))
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "cloud" => Ok(Role::Cloud),
        "on-prem" => Ok(Role::OnPrem),
        _ => Err("expected `cloud` or `on-prem`".to_owned()),
    }
}

#[derive(clap::Args)]
struct HostRoot {
    /// Where the node's root filesystem is mounted; CNI files and sockets are
    /// read under it (the DaemonSet mounts the host paths it reads, read-only, under /host).
    #[arg(long, value_name = "DIR", default_value = "/")]
    host_root: PathBuf,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        // The table already says which peer: exit 1 and nothing more.
        Err(e) if e.is::<Unreachable>() => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run {
            root,
            node,
            metrics_addr,
            probe_addr,
            standalone,
            node_name,
            resync_seconds,
            debounce_ms,
            probe_interval,
            cloud_node_selector,
        } => {
            let cfg = RunConfig {
                sources: Sources::new(root.host_root),
                metrics_addr,
                probe_addr,
                standalone,
                node_name,
                role: node.role,
                cloud_node_selector,
                ecs_metadata_url: node.ecs_metadata_url,
                resync: Duration::from_secs(resync_seconds.max(1)),
                debounce: Debounce { quiet: Duration::from_millis(debounce_ms), ..Debounce::default() },
                detection_deadline: run::DETECTION_DEADLINE,
                probe_interval: Duration::from_secs(probe_interval),
            };
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let result = runtime.block_on(async { anyhow::Ok(run::run(cfg, terminated()?).await?) });
            // Dropping the runtime would wait for a detection thread stuck in
            // a system call; the process is ending, so leave it behind.
            runtime.shutdown_background();
            result
        }
        Command::Detect { root, node, output } => {
            let snapshot = collect_within_deadline(root.host_root)?;
            emit(&render(&terway_hybrid_agent::detect(&snapshot, &node.context()), output))
        }
        Command::Probe { peers, output, timeout_ms, via } => {
            // A peer that is down costs its timeout; the others do not wait
            // for it. The list is the operator's, so a handful of threads.
            const MAX_PEERS: usize = 64;
            anyhow::ensure!(
                peers.len() <= MAX_PEERS,
                "at most {MAX_PEERS} peers at a time, got {}",
                peers.len()
            );
            let timeout = Duration::from_millis(timeout_ms);
            let results: Vec<probe::PeerProbe> = match via {
                Some(responder) => {
                    anyhow::ensure!(
                        peers.len() <= probe::MAX_DELEGATED_PEERS,
                        "at most {} peers through a responder, got {}",
                        probe::MAX_DELEGATED_PEERS,
                        peers.len()
                    );
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    runtime
                        .block_on(probe::delegate(responder, &peers, timeout))
                        .map_err(|e| anyhow::anyhow!("the responder at {responder}: {e}"))?
                }
                None => std::thread::scope(|scope| {
                    let handles: Vec<_> =
                        peers.iter().map(|peer| scope.spawn(move || probe::probe(*peer, timeout))).collect();
                    handles.into_iter().map(|h| h.join().expect("a probe thread panicked")).collect()
                }),
            };
            let text = match output {
                Format::Json => serde_json::to_string_pretty(&results)? + "\n",
                Format::Text => probe::render_text(&results),
            };
            emit(&text)?;
            if results.iter().all(|r| r.reachable) {
                Ok(())
            } else {
                Err(Unreachable.into())
            }
        }
        Command::Respond { probe_addr, delegate_from } => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let result = runtime.block_on(async {
                let shutdown = terminated()?;
                let udp = tokio::net::UdpSocket::bind(probe_addr).await;
                let tcp = tokio::net::TcpListener::bind(probe_addr).await;
                let (udp, tcp) = (udp.and_then(|u| tcp.map(|t| (u, t))))
                    .with_context(|| format!("answering probes on {probe_addr}"))?;
                let delegation = delegate_from.map(|from| probe::Delegation { from, port: probe_addr.port() });
                tracing::info!(addr = %probe_addr, delegate_from = ?delegate_from, "answering probes (TCP and UDP)");
                probe::serve_on(udp, tcp, delegation, shutdown)
                    .await
                    .with_context(|| format!("answering probes on {probe_addr}"))
            });
            // A delegated probe still running is left behind: the process ends.
            runtime.shutdown_background();
            result
        }
        Command::Snapshot { root } => {
            let snapshot = collect_within_deadline(root.host_root)?;
            emit(&(serde_json::to_string_pretty(&snapshot)? + "\n"))
        }
        Command::Classify { snapshot, output } => {
            let snapshot = read_snapshot(&snapshot)?;
            emit(&render(&terway_hybrid_agent::detect(&snapshot, &NodeContext::default()), output))
        }
    }
}

/// Collects under the deadline `run` uses; a collection stuck in a system
/// call is left behind and the process exits 1 naming where it was stuck.
fn collect_within_deadline(host_root: PathBuf) -> anyhow::Result<NodeSnapshot> {
    let sources = Sources::new(host_root);
    Ok(collect::within_deadline(run::DETECTION_DEADLINE, move |progress| {
        Ok(collect::collect_tracked(&sources, progress)?)
    })?)
}

/// `probe`: some peer did not answer (the output names it).
#[derive(Debug, thiserror::Error)]
#[error("a peer is unreachable")]
struct Unreachable;

/// Resolves on SIGTERM (the kubelet stopping the pod) or Ctrl-C. The
/// handlers are installed here, before anything else runs, so a SIGTERM that
/// comes during start-up is a clean shutdown too, not the default kill.
fn terminated() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Writes the result; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other.context("writing to standard output")?),
    }
}

/// A snapshot is tens of kilobytes (routes are folded into counters); this
/// bounds what `classify` reads from a file, a pipe or standard input.
const MAX_SNAPSHOT: u64 = 16 * 1024 * 1024;

fn read_snapshot(path: &PathBuf) -> anyhow::Result<NodeSnapshot> {
    let (name, bytes) = if path.as_os_str() == "-" {
        ("standard input".to_owned(), read_capped(std::io::stdin().lock(), MAX_SNAPSHOT))
    } else {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).with_context(|| format!("reading {name}"))?;
        (name, read_capped(file, MAX_SNAPSHOT))
    };
    let bytes = bytes.with_context(|| format!("reading the snapshot from {name}"))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{name} is not a NodeSnapshot"))
}

/// Reads at most `max` bytes; more is an error that says the limit.
fn read_capped(reader: impl std::io::Read, max: u64) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    reader.take(max + 1).read_to_end(&mut bytes)?;
    anyhow::ensure!(
        bytes.len() as u64 <= max,
        "larger than {} MiB: a snapshot is far smaller (is this the right file?)",
        max / (1024 * 1024)
    );
    Ok(bytes)
}
