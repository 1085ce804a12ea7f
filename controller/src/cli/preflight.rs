//! `terway-hybrid preflight`: the cluster preflight (docs/contracts.md §9), once or
//! `--wait`ing until it passes.

use super::term::{paint, GREEN, RED, YELLOW};
use super::{
    human_duration, parse_duration, print_structured, table, CliError, Outcome, OutputFormat, Source, Term,
};
use crate::pure::plan::{self, NodeRow, Plan};
use crate::pure::view::ClusterView;
use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use terway_hybrid_api::text::printable;
use terway_hybrid_api::{CheckName, CheckResult, CheckStatus, Severity, TerwayRollout};

#[derive(clap::Args, Debug, Clone)]
pub struct PreflightArgs {
    /// Read the cluster from a dump (a file or directory of `kubectl get
    /// -o yaml|json` output, or `terway-hybrid dump`) instead of the live API.
    #[arg(long, value_name = "PATH")]
    pub from_dump: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// Checks whose failures only warn (comma-separated names, or `all`).
    #[arg(long, value_name = "A,B|all", value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
    /// Poll the live cluster until the preflight passes (or --timeout).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits before it gives up (exit 1).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How often --wait polls.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub interval: Duration,
}

pub async fn run(source: &Source, args: &PreflightArgs, term: &mut Term<'_>) -> Result<Outcome, CliError> {
    validate_ignores(&args.ignore_preflight_errors)?;
    let plan = if args.wait {
        if source.is_dump() {
            return Err(CliError::Usage(
                "--wait polls the live cluster: it cannot be used with --from-dump".to_owned(),
            ));
        }
        let ignore = &args.ignore_preflight_errors;
        wait_for_pass(
            || async { Ok(plan_of(source.view().await?, ignore)) },
            args.timeout,
            args.interval.max(Duration::from_millis(100)),
            term,
        )
        .await?
    } else {
        plan_of(source.view().await?, &args.ignore_preflight_errors)
    };
    print_plan(term, &plan, args.output)?;
    Ok(if plan.passed { Outcome::Ok } else { Outcome::Failed })
}

/// The cluster check names `--ignore-preflight-errors` takes (and `all`):
/// a misspelt name would ignore nothing, silently.
pub fn validate_ignores(names: &[String]) -> Result<(), CliError> {
    let cluster: Vec<&str> = CheckName::CLUSTER.iter().map(|c| c.as_str()).collect();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !name.eq_ignore_ascii_case("all") && !cluster.iter().any(|c| c.eq_ignore_ascii_case(name)) {
            return Err(CliError::Usage(format!(
                "--ignore-preflight-errors: unknown check {name:?}; cluster checks are {} (or all)",
                cluster.join(", ")
            )));
        }
    }
    Ok(())
}

/// The preflight of a view, with extra checks ignored.
pub fn plan_of(mut view: ClusterView, ignore: &[String]) -> Plan {
    let ignore: Vec<String> = ignore.iter().map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect();
    if !ignore.is_empty() {
        let rollout = view.rollout.get_or_insert_with(|| TerwayRollout::new("default", Default::default()));
        rollout.spec.ignore_checks.extend(ignore);
    }
    plan::plan(&view, k8s_openapi::jiff::Timestamp::now())
}

/// The preflight as a table (kubeadm style, coloured on a terminal), JSON
/// or YAML.
fn print_plan(term: &mut Term<'_>, plan: &Plan, format: OutputFormat) -> Result<(), CliError> {
    match format {
        OutputFormat::Table => Ok(term.out.write_all(render_table(plan, term.color).as_bytes())?),
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(plan).expect("a plan serializes") + "\n";
            Ok(term.out.write_all(text.as_bytes())?)
        }
        OutputFormat::Yaml => print_structured(term.out, format, plan),
    }
}

/// The preflight as people read it: the scenario, a `[ERROR Name] reason:
/// message` line per check (kubeadm's style), the node table, the verdict.
pub fn render_table(plan: &Plan, color: bool) -> String {
    let required = match plan.terway_required {
        Some(true) => "Terway required on cloud nodes",
        Some(false) => "Terway not needed: the overlay reaches cloud nodes",
        None => "cannot tell whether Terway is needed",
    };
    let mut out = format!("Scenario: {} ({required})\n", plan.scenario);
    for c in &plan.checks {
        out.push_str(&check_line(c, color));
        out.push('\n');
    }
    if !plan.nodes.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = plan.nodes.iter().map(NodeRow::cells).collect();
        out.push_str(&table(&NodeRow::HEADER, &rows, &|_, _, padded| padded.to_owned()));
    }
    out.push('\n');
    let failing: Vec<&str> =
        plan.checks.iter().filter(|c| c.is_blocking()).map(|c| c.name.as_str()).collect();
    if failing.is_empty() {
        out.push_str(&paint(color, GREEN, "Preflight passed."));
    } else {
        out.push_str(&paint(
            color,
            RED,
            &format!(
                "Preflight failed: {} check(s) failed. To ignore them: --ignore-preflight-errors={}",
                failing.len(),
                failing.join(",")
            ),
        ));
    }
    out.push('\n');
    out
}

/// `[ERROR Name] reason: message`, the tag coloured when `color`.
pub fn check_line(c: &CheckResult, color: bool) -> String {
    let (tag, code) = match (c.status, c.severity) {
        (CheckStatus::Pass, _) => ("PASS", Some(GREEN)),
        (CheckStatus::Skip, _) => ("SKIP", None),
        (CheckStatus::Fail, Severity::Error) => ("ERROR", Some(RED)),
        (CheckStatus::Fail, Severity::Warning) => ("WARNING", Some(YELLOW)),
    };
    let tag = format!("[{tag} {}]", c.name);
    let tag = code.map_or_else(|| tag.clone(), |code| paint(color, code, &tag));
    format!("{tag} {}: {}", printable(&c.reason), printable(&c.message))
}

/// What the progress display shows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Progress {
    reported: u32,
    total: u32,
    failing: BTreeSet<String>,
}

impl Progress {
    fn of(plan: &Plan) -> Self {
        Progress {
            reported: plan.status.nodes.reported,
            total: plan.status.nodes.total,
            failing: plan.checks.iter().filter(|c| c.is_blocking()).map(|c| c.name.to_string()).collect(),
        }
    }

    fn text(&self) -> String {
        let failing = if self.failing.is_empty() {
            "every check passes".to_owned()
        } else {
            format!("failing: {}", self.failing.iter().cloned().collect::<Vec<_>>().join(", "))
        };
        format!("{}/{} nodes reported; {failing}", self.reported, self.total)
    }
}

/// Polls until the plan passes or `timeout` is up; returns the last plan.
///
/// On a terminal a progress line on stderr is redrawn in place; otherwise a
/// line is printed whenever the progress changes. An error on the first
/// poll ends the wait (exit 2); later ones are reported and retried.
pub async fn wait_for_pass<F, Fut>(
    mut poll: F,
    timeout: Duration,
    interval: Duration,
    term: &mut Term<'_>,
) -> Result<Plan, CliError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Plan, CliError>>,
{
    let start = tokio::time::Instant::now();
    let deadline = start + timeout;
    let mut last: Option<(Plan, Progress)> = None;
    let live = term.live_progress;
    loop {
        let elapsed = human_duration(start.elapsed());
        match poll().await {
            Ok(plan) => {
                let progress = Progress::of(&plan);
                let changed = last.as_ref().is_none_or(|(_, p)| *p != progress);
                if live {
                    write!(
                        term.err,
                        "\r\x1b[Kwaiting for the preflight ({elapsed} of {}): {}",
                        human_duration(timeout),
                        progress.text()
                    )?;
                    term.err.flush()?;
                } else if changed {
                    writeln!(term.err, "[{elapsed}] {}", progress.text())?;
                }
                let passed = plan.passed;
                last = Some((plan, progress));
                if passed {
                    if live {
                        write!(term.err, "\r\x1b[K")?;
                    }
                    writeln!(term.err, "preflight passed after {elapsed}")?;
                    break;
                }
            }
            Err(e) if last.is_none() => {
                if live {
                    write!(term.err, "\r\x1b[K")?;
                }
                return Err(e);
            }
            Err(e) => {
                if live {
                    write!(term.err, "\r\x1b[K")?;
                }
                term.warn(&format!("{e}; retrying"))?;
            }
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            if live {
                write!(term.err, "\r\x1b[K")?;
            }
            term.warn(&format!("timed out after {}: the preflight still fails", human_duration(timeout)))?;
            break;
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
    }
    match last {
        Some((plan, _)) => Ok(plan),
        None => Err(CliError::Api("the preflight could not be read".to_owned())),
    }
}
