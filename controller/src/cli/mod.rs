//! The `terway-hybrid` operator CLI (also `kubectl terway-hybrid`): the
//! preflight gate, the safe on-prem CNI affinity fix, RAM, installing
//! Terway through onectl, the rollout status and a support dump.
//!
//! Every command is an async function over a [`Source`] (a kube `Client`
//! or a `--from-dump` path) and a [`Term`] (where it writes, whether it may
//! prompt or use colour), so the live paths are tested with a mock API and
//! the offline ones on dumps. Exit codes: 0 ok / passed, 1 a check failed
//! or the command refused, 2 bad usage, unreadable input or API trouble
//! ([`CliError::exit_code`]).
//!
//! Secret values never leave the functions that read them: they are not
//! printed, logged, put in errors or written to dumps.

pub mod diff;
pub mod dump;
pub mod dump_cmd;
pub mod errors;
pub mod fix;
pub mod install;
pub mod limits;
pub mod preflight;
pub mod ram;
pub mod status;
pub mod term;

pub use errors::CliError;
pub use term::Term;

use crate::fetch;
use crate::pure::plan::NodeRow;
use crate::pure::view::ClusterView;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use terway_hybrid_api::text::printable;

/// The field manager of every change the CLI makes.
pub const FIELD_MANAGER: &str = "terway-hybrid";

/// Gets Terway safely onto the cloud nodes of a hybrid (ACK One registered)
/// cluster: checks the on-prem network and every precondition first.
///
/// Exit codes: 0 ok / passed, 1 a check failed or the command refused
/// (unsafe, not confirmed), 2 bad usage, unreadable input or an API error.
#[derive(Parser, Debug)]
#[command(name = "terway-hybrid", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the cluster preflight: the scenario, every check, every node.
    ///
    /// Exit 0 when it passes, 1 when a check fails, 2 on bad usage,
    /// unreadable input or an API error.
    Preflight(preflight::PreflightArgs),
    /// Fix what the preflight finds, safely (diff, verification, server-side
    /// dry run, confirmation).
    #[command(subcommand)]
    Fix(fix::FixCommand),
    /// Print the custom RAM policy Terway needs (JSON).
    RamPolicy,
    /// The AccessKey Terway uses: Secret kube-system/alibaba-addon-secret.
    #[command(subcommand)]
    RamSecret(ram::SecretCommand),
    /// Install Terway (add-on terway-eniip) through onectl, after the preflight passes.
    Install(install::InstallArgs),
    /// The Terway rollout: scenario, conditions, current wave, every node.
    Status(status::StatusArgs),
    /// Save everything the preflight reads into one file for `--from-dump`
    /// (Secret values are replaced by their length).
    Dump(dump_cmd::DumpArgs),
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct KubeArgs {
    /// Path to the kubeconfig (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE", global = true, display_order = 1000)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, value_name = "NAME", global = true, display_order = 1001)]
    pub context: Option<String>,
}

impl KubeArgs {
    /// The client and the API server's URL (for messages).
    async fn connect(&self) -> Result<(kube::Client, String), CliError> {
        let options = kube::config::KubeConfigOptions { context: self.context.clone(), ..Default::default() };
        let bad = |e: &dyn std::error::Error| {
            CliError::Input(format!(
                "no usable Kubernetes configuration: {} (pass --kubeconfig, or --from-dump to work offline)",
                errors::root_cause(e)
            ))
        };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = read_kubeconfig(path)?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| bad(&e))?
            }
            None if self.context.is_some() => {
                kube::Config::from_kubeconfig(&options).await.map_err(|e| bad(&e))?
            }
            None => {
                check_default_kubeconfigs()?;
                kube::Config::infer().await.map_err(|e| bad(&e))?
            }
        };
        let url = config.cluster_url.to_string();
        Ok((kube::Client::try_from(config).map_err(|e| bad(&e))?, url))
    }
}

/// `--kubeconfig FILE`, at most [`limits::KUBECONFIG_MAX`] bytes. A regular
/// file is read by kube (which resolves its relative certificate paths); a
/// pipe (`--kubeconfig <(...)`) or device can be read only once, so it is
/// read here, capped.
fn read_kubeconfig(path: &Path) -> Result<kube::config::Kubeconfig, CliError> {
    let cannot = |e: &dyn std::error::Error| {
        CliError::Input(format!("cannot read kubeconfig {}: {}", path.display(), errors::root_cause(e)))
    };
    let meta = std::fs::metadata(path).map_err(|e| cannot(&e))?;
    if meta.is_file() && meta.len() <= limits::KUBECONFIG_MAX {
        return kube::config::Kubeconfig::read_from(path).map_err(|e| cannot(&e));
    }
    let bytes = limits::read_file_capped(path, limits::KUBECONFIG_MAX, "a kubeconfig")
        .map_err(|e| CliError::Input(format!("cannot read kubeconfig {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::Input(format!("cannot read kubeconfig {}: not text", path.display())))?;
    kube::config::Kubeconfig::from_yaml(&text).map_err(|e| cannot(&e))
}

/// `kube::Config::infer` reads each file of `$KUBECONFIG` (or
/// `~/.kube/config`) whole and blocks on a FIFO: refuse first what it must
/// not read. A missing file is left to kube, which says so.
fn check_default_kubeconfigs() -> Result<(), CliError> {
    let paths: Vec<PathBuf> = match std::env::var_os("KUBECONFIG") {
        Some(v) if !v.is_empty() => std::env::split_paths(&v).collect(),
        _ => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config")).into_iter().collect(),
    };
    for path in paths {
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        let problem = if !meta.is_file() {
            "not a regular file (give a pipe with --kubeconfig)".to_owned()
        } else if meta.len() > limits::KUBECONFIG_MAX {
            format!("larger than {} (the limit for a kubeconfig)", limits::size(limits::KUBECONFIG_MAX))
        } else {
            continue;
        };
        return Err(CliError::Input(format!("cannot read kubeconfig {}: {problem}", path.display())));
    }
    Ok(())
}

/// Where a command reads the cluster from.
#[derive(Clone)]
pub enum Source {
    Live(kube::Client),
    Dump(PathBuf),
}

impl Source {
    /// Everything the preflight reads. From the API the Secret is reduced to
    /// key presence at once (fetch.rs); from a dump it never held values.
    pub async fn view(&self) -> Result<ClusterView, CliError> {
        match self {
            Source::Live(client) => Ok(fetch::cluster_view(client).await?),
            Source::Dump(path) => Ok(dump::load(path)?),
        }
    }

    pub fn is_dump(&self) -> bool {
        matches!(self, Source::Dump(_))
    }
}

/// Exit 0 or 1 after a command ran to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Passed, done, or nothing to do.
    Ok,
    /// A check failed (the output says which).
    Failed,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Failed => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

/// `value` as pretty JSON or YAML on `out`.
pub fn print_structured<T: Serialize>(
    out: &mut dyn Write,
    format: OutputFormat,
    value: &T,
) -> Result<(), CliError> {
    let text = match format {
        OutputFormat::Yaml => {
            yaml_serde::to_string(value).map_err(|e| CliError::Output(io::Error::other(e)))?
        }
        _ => serde_json::to_string_pretty(value).map_err(|e| CliError::Output(io::Error::other(e)))? + "\n",
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// `10m`, `90s`, `1h30m` as a clap value.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::pure::plan::parse_duration(s)
        .and_then(|d| u64::try_from(d.as_secs()).ok())
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is not a duration such as 90s, 10m or 1h30m"))
}

/// `1m05s`, `42s`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

/// Left-aligned columns, two spaces apart; `paint(row, column, padded)` may
/// colour a padded cell (the header row is not painted).
pub fn table(
    header: &[&str],
    rows: &[Vec<String>],
    paint: &dyn Fn(&[String], usize, &str) -> String,
) -> String {
    // Cells come from the cluster: made printable before they are measured.
    let rows: Vec<Vec<String>> =
        rows.iter().map(|r| r.iter().map(|c| printable(c).into_owned()).collect()).collect();
    let rows = rows.as_slice();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String], painted: bool| {
        let last = cells.len().saturating_sub(1);
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = widths.get(i).copied().unwrap_or(0);
                let padded = if i == last { c.clone() } else { format!("{c:<w$}") };
                if painted {
                    paint(cells, i, &padded)
                } else {
                    padded
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut out = line(&header, false);
    out.push('\n');
    for r in rows {
        out.push_str(&line(r, true));
        out.push('\n');
    }
    out
}

/// A node table's line, as `preflight` and `status` print it.
impl NodeRow {
    /// The column titles of [`NodeRow::cells`].
    pub const HEADER: [&'static str; 7] =
        ["NODE", "ROLE", "SCENARIO", "PLUGIN", "PREFLIGHT", "GATE", "TERWAY"];

    pub fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.role.to_string(),
            self.scenario.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            self.plugin.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            if self.preflight { "passed" } else { "failed" }.into(),
            if self.gate { "open" } else { "-" }.into(),
            match self.terway_ready {
                Some(true) => "Ready".into(),
                Some(false) => "NotReady".into(),
                None => "-".into(),
            },
        ]
    }
}

/// Runs one parsed command line.
pub async fn run(cli: Cli, term: &mut Term<'_>) -> Result<Outcome, CliError> {
    run_with_client(cli, None, term).await
}

/// [`run`], on `client` instead of one built from the kubeconfig when it
/// is given (tests pass a mock).
pub async fn run_with_client(
    cli: Cli,
    client: Option<kube::Client>,
    term: &mut Term<'_>,
) -> Result<Outcome, CliError> {
    let kube = &cli.kube;
    let server = std::cell::RefCell::new(None::<String>);
    let connect = || async {
        match &client {
            Some(c) => Ok::<kube::Client, CliError>(c.clone()),
            None => {
                let (c, url) = kube.connect().await?;
                *server.borrow_mut() = Some(url);
                Ok(c)
            }
        }
    };
    let source = |from_dump: Option<&PathBuf>| {
        let dump = from_dump.cloned();
        async {
            match dump {
                Some(path) => Ok(Source::Dump(path)),
                None => connect().await.map(Source::Live),
            }
        }
    };
    let result = match &cli.command {
        Command::Preflight(args) => preflight::run(&source(args.from_dump.as_ref()).await?, args, term).await,
        Command::Fix(cmd) => fix::run(&source(cmd.common().from_dump.as_ref()).await?, cmd, term).await,
        Command::RamPolicy => ram::policy(term),
        Command::RamSecret(ram::SecretCommand::Create(args)) => {
            // Read and check the key files before anything else: a bad file
            // is reported even without a cluster.
            let keys = ram::read_keys(args, term)?;
            ram::create(&connect().await?, args, keys, term).await
        }
        Command::RamSecret(ram::SecretCommand::Check(args)) => {
            ram::check(&source(args.from_dump.as_ref()).await?, args, term).await
        }
        Command::Install(args) => {
            let src = source(args.from_dump.as_ref()).await?;
            // onectl acts on the live cluster, so that is where the gate must
            // be enforced, even when the preflight reads a dump.
            let live = match &src {
                Source::Live(c) => Ok(c.clone()),
                Source::Dump(_) => connect().await,
            };
            install::run(&src, live, args, term).await
        }
        Command::Status(args) => status::run(&source(args.from_dump.as_ref()).await?, args, term).await,
        Command::Dump(args) => dump_cmd::run(&connect().await?, args, term).await,
    };
    match (result, server.into_inner()) {
        (Err(CliError::Unreachable(m)), Some(url)) => {
            Err(CliError::Unreachable(format!("{m} (server {url})")))
        }
        (result, _) => result,
    }
}

/// Parses the command line; run as `kubectl-terway_hybrid` (a kubectl
/// plugin) the help says `kubectl terway-hybrid`.
pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let as_plugin = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n.to_string_lossy().starts_with("kubectl-"));
    let mut cmd = Cli::command();
    if as_plugin {
        cmd = cmd.name("kubectl terway-hybrid").bin_name("kubectl terway-hybrid");
    }
    let matches = cmd.try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches)
}

/// The binaries' `main`: `terway-hybrid` and `kubectl-terway_hybrid`.
pub fn main() -> ExitCode {
    let cli = match parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        // --help and --version exit 0, usage errors 2 (clap's codes).
        Err(e) => e.exit(),
    };
    let stdout = io::stdout();
    let stderr = io::stderr();
    let stdin = io::stdin();
    let (mut out, mut err, mut input) = (stdout.lock(), stderr.lock(), stdin.lock());
    let mut term = Term::stdio(&mut out, &mut err, &mut input);
    let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(run(cli, &mut term)),
        Err(e) => Err(CliError::Usage(format!("cannot start the async runtime: {e}"))),
    };
    let code = match result {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            if !e.is_broken_pipe() {
                let _ = term.out.flush();
                let _ = term.note("error", term::RED, &e.to_string());
            }
            e.exit_code()
        }
    };
    let _ = term.out.flush();
    let _ = term.err.flush();
    ExitCode::from(code)
}
