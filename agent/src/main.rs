//! `terway-hybrid-agent`: see `--help`. The logic lives in the library; this
//! file only runs the parsed command line ([`terway_hybrid_agent::cli`]) and
//! maps results to exit codes.

use anyhow::Context;
use clap::Parser;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use terway_hybrid_agent::checks::NodeContext;
use terway_hybrid_agent::cli::{Cli, Command};
use terway_hybrid_agent::collect::{self, Sources};
use terway_hybrid_agent::output::{render, Format};
use terway_hybrid_agent::probe;
use terway_hybrid_agent::run::{self, RunConfig};
use terway_hybrid_agent::watch::Debounce;
use terway_hybrid_api::NodeSnapshot;

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
