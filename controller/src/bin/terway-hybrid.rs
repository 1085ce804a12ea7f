//! `terway-hybrid`: the operator's CLI. See `--help`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use terway_hybrid_controller::output::{render, Format};
use terway_hybrid_controller::{dump, fetch, plan};

/// Gets Terway safely onto the cloud nodes of a hybrid (ACK One registered)
/// cluster: checks the on-prem network and every precondition first.
#[derive(Parser)]
#[command(name = "terway-hybrid", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the cluster preflight: the scenario, every check, every node.
    ///
    /// Exit 0 when it passes, 1 when a check fails, 2 on bad usage or
    /// unreadable input.
    Preflight {
        /// Read the cluster from a dump (a file or directory of `kubectl get
        /// -o yaml|json` output) instead of the live API.
        #[arg(long, value_name = "PATH")]
        from_dump: Option<PathBuf>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
        /// Checks whose failures only warn (comma-separated names, or `all`).
        #[arg(long, value_name = "A,B|all", value_delimiter = ',')]
        ignore_preflight_errors: Vec<String>,
        #[command(flatten)]
        kube: KubeArgs,
    },
}

#[derive(clap::Args)]
struct KubeArgs {
    /// Path to the kubeconfig (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE", global = true)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, value_name = "NAME", global = true)]
    context: Option<String>,
}

impl KubeArgs {
    async fn client(&self) -> anyhow::Result<kube::Client> {
        let options = kube::config::KubeConfigOptions { context: self.context.clone(), ..Default::default() };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?
            }
            None if self.context.is_some() => kube::Config::from_kubeconfig(&options).await?,
            None => kube::Config::infer().await?,
        };
        Ok(kube::Client::try_from(config)?)
    }
}

/// Exit codes a script can rely on.
enum Outcome {
    Passed,
    Failed,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(Outcome::Passed) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Preflight { from_dump, output, ignore_preflight_errors, kube } => {
            let mut view = match from_dump {
                Some(path) => dump::load(&path)?,
                None => {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    runtime.block_on(async {
                        let client = kube.client().await?;
                        anyhow::Ok(fetch::cluster_view(&client).await?)
                    })?
                }
            };
            if !ignore_preflight_errors.is_empty() {
                let rollout = view.rollout.get_or_insert_with(|| {
                    terway_hybrid_api::TerwayRollout::new("default", Default::default())
                });
                rollout.spec.ignore_checks.extend(ignore_preflight_errors);
            }
            let plan = plan::plan(&view, k8s_openapi::jiff::Timestamp::now());
            print!("{}", render(&plan, output));
            Ok(if plan.passed { Outcome::Passed } else { Outcome::Failed })
        }
    }
}
