//! `terway-hybrid-agent`: see `--help`. The logic lives in the library; this
//! file only parses arguments and maps results to exit codes.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use terway_hybrid_agent::collect::{self, Sources};
use terway_hybrid_agent::output::{render, Format};
use terway_hybrid_api::NodeSnapshot;

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
        Command::Detect { root, output } => {
            let snapshot = collect::collect(&Sources::new(root.host_root))?;
            print!("{}", render(&terway_hybrid_agent::detect(&snapshot), output));
        }
        Command::Snapshot { root } => {
            let snapshot = collect::collect(&Sources::new(root.host_root))?;
            println!("{}", serde_json::to_string_pretty(&snapshot)?);
        }
        Command::Classify { snapshot, output } => {
            let snapshot = read_snapshot(&snapshot)?;
            print!("{}", render(&terway_hybrid_agent::detect(&snapshot), output));
        }
    }
    Ok(())
}

fn read_snapshot(path: &PathBuf) -> anyhow::Result<NodeSnapshot> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the snapshot from standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not a NodeSnapshot", path.display()))
}
