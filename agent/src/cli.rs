//! The `terway-hybrid-agent` binary's command line (docs/contracts.md §2),
//! in the library so the deploy manifests' tests read its defaults from
//! clap's command rather than from the source text.

use crate::checks::NodeContext;
use crate::output::Format;
use crate::{ecs, probe};
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use terway_hybrid_api::Role;

/// Classifies this node's container network (overlay, bgp or host-network)
/// from its kernel state and CNI files, for a safe Terway install in hybrid
/// clusters.
#[derive(Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
pub struct NodeArgs {
    /// The node's role: `cloud` (labelled alibabacloud.com/external=true) or `on-prem`.
    #[arg(long, value_parser = parse_role)]
    pub role: Option<Role>,
    /// Probed on cloud nodes for the EcsMetadata check (1 s timeout).
    #[arg(long, value_name = "URL", default_value = ecs::DEFAULT_URL)]
    pub ecs_metadata_url: String,
}

impl NodeArgs {
    pub fn context(&self) -> NodeContext {
        crate::node_context(self.role, &self.ecs_metadata_url)
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
pub struct HostRoot {
    /// Where the node's root filesystem is mounted; CNI files and sockets are
    /// read under it (the DaemonSet mounts the host paths it reads, read-only, under /host).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub host_root: PathBuf,
}
