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

use super::preflight::{colour_line, plan_of, validate_ignores};
use super::term::{paint, GREEN, YELLOW};
use super::{CliError, Outcome, Source, Term};
use crate::output::printable;
use crate::plan::Plan;
use std::io::{ErrorKind, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};

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
}

/// The onectl calls, in order.
pub fn steps() -> [(&'static str, Vec<&'static str>); 2] {
    [("onectl", vec!["ram-user", "grant", "--addon", ADDON]), ("onectl", vec!["addon", "install", ADDON])]
}

fn failing_lines(plan: &Plan, color: bool) -> Vec<String> {
    plan.checks
        .iter()
        .filter(|c| c.is_blocking())
        .map(|c| {
            let (reason, message) = (printable(&c.reason), printable(&c.message));
            colour_line(color, &format!("[ERROR {}] {reason}: {message}", c.name))
        })
        .collect()
}

pub async fn run(source: &Source, args: &InstallArgs, term: &mut Term<'_>) -> Result<Outcome, CliError> {
    validate_ignores(&args.ignore_preflight_errors)?;
    let plan = plan_of(source.view().await?, &args.ignore_preflight_errors);
    let color = term.color;
    if plan.terway_required == Some(false) {
        writeln!(
            term.out,
            "The on-prem network is {}: the overlay runs on the cloud nodes too, so Terway is not needed. \
             Nothing to install.",
            plan.scenario
        )?;
        if plan.passed {
            return Ok(Outcome::Ok);
        }
        writeln!(term.out, "\nBut the preflight fails; the overlay needs these fixed to reach cloud nodes:")?;
        for line in failing_lines(&plan, color) {
            writeln!(term.out, "{line}")?;
        }
        return Ok(Outcome::Failed);
    }
    if !plan.passed {
        writeln!(term.out, "The preflight fails: nothing was installed, nothing was run.")?;
        for line in failing_lines(&plan, color) {
            writeln!(term.out, "{line}")?;
        }
        writeln!(term.out, "\nFix them and run again; `terway-hybrid preflight` shows every check.")?;
        return Ok(Outcome::Failed);
    }
    if plan.terway_required != Some(true) {
        return Err(CliError::Refused(format!(
            "the scenario is {}: it cannot be told whether Terway is needed, so nothing is installed",
            plan.scenario
        )));
    }
    let commands: Vec<String> = steps().iter().map(|(p, a)| format!("{p} {}", a.join(" "))).collect();
    writeln!(
        term.out,
        "{}",
        paint(
            color,
            GREEN,
            &format!("The preflight passes: scenario {}, Terway required on cloud nodes.", plan.scenario)
        )
    )?;
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
    writeln!(
        term.out,
        "{}",
        paint(
            color,
            GREEN,
            "Terway (terway-eniip) is installed. Follow the rollout: terway-hybrid status --watch"
        )
    )?;
    Ok(Outcome::Ok)
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
