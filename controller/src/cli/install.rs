//! `terway-hybrid install`: installs Terway (add-on `terway-eniip`) through
//! onectl once the preflight passes, and only then.
//!
//! 1. The preflight runs (live or `--from-dump`). If it fails, the failing
//!    checks are printed and nothing is run (exit 1). On an overlay cluster
//!    Terway is not needed: it says so and runs nothing.
//! 2. Confirmation (a prompt on a terminal, or `--yes`; neither: refused).
//! 3. `onectl ram-user grant --addon terway-eniip` (attaches Terway's policy
//!    to the RAM user whose AccessKey the add-ons use), then, only if that
//!    succeeded, `onectl addon install terway-eniip`; both from PATH, their
//!    output streamed. onectl missing: exit 2; onectl failing: exit 1.
//!
//! In `Auto` mode, step 3 runs only while the Terway gate is enforced at
//! admission ([`gate_enforced`]): the add-on manager creates Terway's
//! DaemonSet selecting every cloud node, and without the controller's
//! webhook the DaemonSet controller would put Terway on all of them at once.
//! `--force` skips that check (docs/troubleshooting.md).

use super::preflight::{check_line, plan_of, validate_ignores};
use super::term::{paint, GREEN, YELLOW};
use super::{CliError, Outcome, Source, Term};
use crate::daemon::webhook;
use crate::pure::plan::Plan;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::PostParams;
use kube::Api;
use std::io::{ErrorKind, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use terway_hybrid_api::rollout::Mode;
use terway_hybrid_api::TerwayRolloutSpec;

pub const ADDON: &str = "terway-eniip";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// ACK One's `onectl`, from PATH.
    Onectl,
}

#[derive(clap::Args, Debug, Clone)]
pub struct InstallArgs {
    /// Run the preflight on a dump instead of the live cluster (onectl still
    /// acts on the real cluster).
    #[arg(long, value_name = "PATH")]
    pub from_dump: Option<PathBuf>,
    /// How to install the add-on.
    #[arg(long, value_enum, default_value = "onectl")]
    pub via: Via,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Run the preflight and show the commands; run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Checks whose failures only warn (comma-separated names, or `all`).
    #[arg(long, value_name = "A,B|all", value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
    /// In `Auto` mode, install even though the controller's webhook cannot
    /// add the Terway gate at creation (Terway may then start on every cloud
    /// node at once).
    #[arg(long)]
    pub force: bool,
}

/// The onectl calls, in order.
pub fn steps() -> [(&'static str, Vec<&'static str>); 2] {
    [("onectl", vec!["ram-user", "grant", "--addon", ADDON]), ("onectl", vec!["addon", "install", ADDON])]
}

fn failing_lines(plan: &Plan, color: bool) -> Vec<String> {
    plan.checks.iter().filter(|c| c.is_blocking()).map(|c| check_line(c, color)).collect()
}

pub async fn run(
    source: &Source,
    live: Result<kube::Client, CliError>,
    args: &InstallArgs,
    term: &mut Term<'_>,
) -> Result<Outcome, CliError> {
    validate_ignores(&args.ignore_preflight_errors)?;
    let view = source.view().await?;
    let spec = view.rollout.as_ref().map(|r| r.spec.clone()).unwrap_or_default();
    let plan = plan_of(view, &args.ignore_preflight_errors);
    let color = term.color;
    if let Some(outcome) = nothing_to_install(&plan, term)? {
        return Ok(outcome);
    }
    // In Auto mode, onectl runs only while the gate is enforced at admission.
    if spec.mode == Mode::Auto {
        let gate = match live {
            Ok(client) => gate_enforced(&client, &spec).await,
            Err(e) => Err(format!("the cluster cannot be reached to check it: {e}")),
        };
        gate_verdict(gate, &spec, args, term)?;
    }
    let commands: Vec<String> = steps().iter().map(|(p, a)| format!("{p} {}", a.join(" "))).collect();
    let passes = format!("The preflight passes: scenario {}, Terway required on cloud nodes.", plan.scenario);
    writeln!(term.out, "{}", paint(color, GREEN, &passes))?;
    writeln!(term.out, "Will run, in order:")?;
    for c in &commands {
        writeln!(term.out, "  {c}")?;
    }
    if args.dry_run {
        writeln!(term.out, "dry run: nothing was run")?;
        return Ok(Outcome::Ok);
    }
    if !term.confirm(
        "Install Terway (add-on terway-eniip) through onectl now?",
        "install Terway",
        args.yes,
    )? {
        return Err(CliError::Refused("nothing was run: not confirmed".to_owned()));
    }
    for ((program, argv), shown) in steps().iter().zip(&commands) {
        writeln!(term.out, "{}", paint(color, YELLOW, &format!("$ {shown}")))?;
        term.out.flush()?;
        run_tool(program, argv, shown, term)?;
    }
    let done = "Terway (terway-eniip) is installed. Follow the rollout: terway-hybrid status --watch";
    writeln!(term.out, "{}", paint(color, GREEN, done))?;
    Ok(Outcome::Ok)
}

/// The outcome when the preflight leaves nothing to install (an overlay, or
/// a failing preflight, said why), an error when the scenario cannot tell;
/// None when Terway is needed and the preflight passes.
fn nothing_to_install(plan: &Plan, term: &mut Term<'_>) -> Result<Option<Outcome>, CliError> {
    let color = term.color;
    if plan.terway_required == Some(false) {
        writeln!(
            term.out,
            "The on-prem network is {}: the overlay runs on the cloud nodes too, so Terway is not needed. \
             Nothing to install.",
            plan.scenario
        )?;
        if plan.passed {
            return Ok(Some(Outcome::Ok));
        }
        writeln!(term.out, "\nBut the preflight fails; the overlay needs these fixed to reach cloud nodes:")?;
        for line in failing_lines(plan, color) {
            writeln!(term.out, "{line}")?;
        }
        return Ok(Some(Outcome::Failed));
    }
    if !plan.passed {
        writeln!(term.out, "The preflight fails: nothing was installed, nothing was run.")?;
        for line in failing_lines(plan, color) {
            writeln!(term.out, "{line}")?;
        }
        writeln!(term.out, "\nFix them and run again; `terway-hybrid preflight` shows every check.")?;
        return Ok(Some(Outcome::Failed));
    }
    if plan.terway_required != Some(true) {
        return Err(CliError::Refused(format!(
            "the scenario is {}: it cannot be told whether Terway is needed, so nothing is installed",
            plan.scenario
        )));
    }
    Ok(None)
}

/// Auto mode: says how the gate is enforced, or refuses (a warning only
/// with `--force`, or on a dry run).
fn gate_verdict(
    gate: Result<String, String>,
    spec: &TerwayRolloutSpec,
    args: &InstallArgs,
    term: &mut Term<'_>,
) -> Result<(), CliError> {
    let refusal = |why: &str| {
        format!(
            "mode is Auto, but the Terway gate cannot be enforced when the add-on creates {}/{}: {why}. \
             Nothing was run. Fix: make terway-hybrid-controller Ready (`kubectl -n terway-hybrid get pods`; \
             its log says why not) and keep MutatingWebhookConfiguration {} as deploy/ ships it; see \
             docs/troubleshooting.md (\"install refuses: webhook not ready\"). --force installs anyway",
            spec.terway.namespace,
            spec.terway.daemon_set_name,
            webhook::CONFIGURATION_NAME
        )
    };
    let warning = match gate {
        Ok(how) => {
            writeln!(term.out, "The Terway gate is enforced at admission: {how}.")?;
            return Ok(());
        }
        Err(why) if args.force => format!("--force: installing although the gate is not enforced: {why}"),
        Err(why) if args.dry_run => format!("install would refuse: {}", refusal(&why)),
        Err(why) => return Err(CliError::Refused(refusal(&why))),
    };
    writeln!(term.out, "{}", paint(term.color, YELLOW, &warning))?;
    Ok(())
}

/// Is the gate added to Terway's DaemonSet at creation? Proven, not
/// assumed: the webhook must be registered for the DaemonSet the rollout
/// names, and a server-side dry-run create of that DaemonSet, ungated as the
/// add-on manager creates it, must come back gated (the API server runs the
/// mutating webhooks on a dry run; nothing is stored). When the DaemonSet
/// exists already (the dry run answers 409 after admission), its stored
/// affinity must require the gate. Ok says how it was shown; Err why not.
async fn gate_enforced(client: &kube::Client, spec: &TerwayRolloutSpec) -> Result<String, String> {
    let (namespace, name) = (&spec.terway.namespace, &spec.terway.daemon_set_name);
    let configurations: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let registered = match configurations.get_opt(webhook::CONFIGURATION_NAME).await {
        Ok(Some(c)) => c.webhooks.unwrap_or_default().into_iter().find(|w| w.name == webhook::WEBHOOK_NAME),
        Ok(None) => {
            return Err(format!(
                "MutatingWebhookConfiguration {} does not exist (apply deploy/ again)",
                webhook::CONFIGURATION_NAME
            ))
        }
        Err(e) => return Err(format!("cannot read MutatingWebhookConfiguration: {e}")),
    };
    let Some(hook) = registered else {
        return Err(format!(
            "the controller has not registered webhook {} yet (it does once it runs in Auto mode)",
            webhook::WEBHOOK_NAME
        ));
    };
    let names_terway =
        hook.match_conditions.iter().flatten().any(|c| c.expression == webhook::match_expression(name));
    if !names_terway {
        return Err(format!("the registered webhook does not name {namespace}/{name} yet"));
    }
    let probe: DaemonSet = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "probe", "image": "terway-hybrid/gate-probe"}]}}}
    }))
    .map_err(|e| e.to_string())?;
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    let params = PostParams { dry_run: true, field_manager: Some("terway-hybrid".into()) };
    match api.create(&params, &probe).await {
        Ok(stored) if crate::pure::checks::terway_requires_gate(&stored) => {
            Ok("a dry-run create of it came back with the gate requirement".to_owned())
        }
        Ok(_) => Err("a dry-run create of it came back without the gate requirement".to_owned()),
        Err(kube::Error::Api(e)) if e.code == 409 => match api.get(name).await {
            Ok(ds) if crate::pure::checks::terway_requires_gate(&ds) => {
                Ok("it exists already and requires the gate".to_owned())
            }
            Ok(_) => Err(format!("{namespace}/{name} exists already without the gate requirement")),
            Err(e) => Err(format!("cannot read {namespace}/{name}: {e}")),
        },
        Err(kube::Error::Api(e)) => {
            Err(format!("the webhook did not answer a dry-run create: {}", e.message))
        }
        Err(e) => Err(format!("a dry-run create failed: {e}")),
    }
}

/// Runs one tool from PATH; its stdout is copied to `term.out` as it comes,
/// its stderr goes to ours.
fn run_tool(program: &str, argv: &[&str], shown: &str, term: &mut Term<'_>) -> Result<(), CliError> {
    let mut child = Command::new(program)
        .args(argv)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => CliError::ToolMissing(format!(
                "{program} was not found on PATH: install ACK One's onectl and set it up for this cluster \
                 (nothing was run)"
            )),
            _ => CliError::ToolMissing(format!("cannot run {program}: {e} (nothing was run)")),
        })?;
    if let Some(mut stdout) = child.stdout.take() {
        let mut buf = [0u8; 8192];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    term.out.write_all(&buf[..n])?;
                    term.out.flush()?;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(CliError::ToolFailed(format!("reading the output of `{shown}`: {e}"))),
            }
        }
    }
    let status = child.wait().map_err(|e| CliError::ToolFailed(format!("`{shown}`: {e}")))?;
    if status.success() {
        return Ok(());
    }
    let how = match status.code() {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_owned(),
    };
    let after = if argv.first() == Some(&"ram-user") {
        "; the add-on was not installed"
    } else {
        "; the RAM grant before it succeeded"
    };
    Err(CliError::ToolFailed(format!("`{shown}` failed ({how}){after}")))
}
