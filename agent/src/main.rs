//! `terway-hybrid-agent`: see `--help`. The logic lives in the library; this
//! file only parses arguments and maps results to exit codes.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use terway_hybrid_agent::checks::NodeContext;
use terway_hybrid_agent::collect::{self, Sources};
use terway_hybrid_agent::ecs;
use terway_hybrid_agent::output::{render, Format};
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
    /// Print the collected facts (NodeSnapshot) as JSON, e.g. for a bug report.
    Snapshot {
        #[command(flatten)]
        root: HostRoot,
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
        let ecs_metadata =
            (self.role == Some(Role::Cloud)).then(|| ecs::probe(&self.ecs_metadata_url, ecs::TIMEOUT));
        NodeContext { role: self.role, ecs_metadata }
    }
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
    /// read under it (the DaemonSet mounts the host's / at /host).
    #[arg(long, value_name = "DIR", default_value = "/")]
    host_root: PathBuf,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Detect { root, node, output } => {
            let snapshot = collect::collect(&Sources::new(root.host_root))?;
            emit(&render(&terway_hybrid_agent::detect(&snapshot, &node.context()), output))
        }
        Command::Snapshot { root } => {
            let snapshot = collect::collect(&Sources::new(root.host_root))?;
            emit(&(serde_json::to_string_pretty(&snapshot)? + "\n"))
        }
        Command::Classify { snapshot, output } => {
            let snapshot = read_snapshot(&snapshot)?;
            emit(&render(&terway_hybrid_agent::detect(&snapshot, &NodeContext::default()), output))
        }
    }
}

/// Writes the result; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other.context("writing to standard output")?),
    }
}

fn read_snapshot(path: &PathBuf) -> anyhow::Result<NodeSnapshot> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the snapshot from standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not a NodeSnapshot", path.display()))
}
