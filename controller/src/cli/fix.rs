//! `terway-hybrid fix calico-affinity` / `fix cni-affinity --daemonset NS/NAME`:
//! keeps an on-prem CNI DaemonSet off cloud nodes, safely.
//!
//! 1. The fix ANDs `alibabacloud.com/external NotIn ["true"]` into every
//!    required nodeSelectorTerm ([`affinity::exclude_cloud`]), never
//!    replacing a term.
//! 2. The affinity is shown before/after as a unified diff of its YAML.
//! 3. [`affinity::verify_fix`] (through [`cni_fix::prepare`], which the
//!    controller's remediation uses too) checks the result against the nodes: it must
//!    still admit every on-prem node it admits now and no cloud node, or
//!    the command refuses (exit 1).
//! 4. Live, the change goes to the API server as a server-side apply dry
//!    run (`dryRun=All`, field manager `terway-hybrid`), then, confirmed on
//!    a terminal or with `--yes`, for real. Just before the real apply the
//!    object is read again: if its affinity changed since it was shown, the
//!    command stops; the apply carries the resourceVersion it verified.
//!
//! When the Tigera operator owns calico-node (Installation `default` exists
//! and calico-node is in calico-system or owned by an Installation), a
//! direct patch would be reverted: the fix goes to `Installation default`,
//! `spec.calicoNodeDaemonSet.spec.template.spec.affinity`.

use super::diff::unified;
use super::errors::{api_error, Op};
use super::term::{paint, BOLD, GREEN, YELLOW};
use super::{print_structured, CliError, Outcome, OutputFormat, Source, Term, FIELD_MANAGER};
use crate::fetch::{get_present, installation_resource};
use crate::pure::affinity;
use crate::pure::cni_fix::{self, CniFix, Target, INSTALLATION_AFFINITY};
use crate::pure::plan::max_unavailable;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Affinity, Node};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use terway_hybrid_api::names::{CALICO_NODE, INSTALLATION_NAME, ROLLOUT_NAME};
use terway_hybrid_api::text::printable;
use terway_hybrid_api::{TerwayRollout, TerwayRolloutSpec};

/// Where calico-node lives: manifests (kube-system) or the Tigera operator (calico-system).
const CALICO_NAMESPACES: [&str; 2] = ["kube-system", "calico-system"];
/// The diff shows the whole affinity: every term matters when reviewing it.
const FULL_CONTEXT: usize = 10_000;

#[derive(clap::Subcommand, Debug)]
pub enum FixCommand {
    /// Keep calico-node (kube-system or calico-system) off cloud nodes; through
    /// `Installation default` when the Tigera operator owns it.
    CalicoAffinity(FixArgs),
    /// Keep an on-prem CNI DaemonSet off cloud nodes.
    CniAffinity {
        /// The DaemonSet, as NAMESPACE/NAME (e.g. kube-system/kube-flannel-ds).
        #[arg(long, value_name = "NAMESPACE/NAME")]
        daemonset: String,
        #[command(flatten)]
        common: FixArgs,
    },
}

impl FixCommand {
    pub fn common(&self) -> &FixArgs {
        match self {
            FixCommand::CalicoAffinity(c) | FixCommand::CniAffinity { common: c, .. } => c,
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct FixArgs {
    /// Compute, show and verify the fix on a dump (nothing can be applied).
    #[arg(long, value_name = "PATH")]
    pub from_dump: Option<PathBuf>,
    /// Show and verify the fix, and run the server-side dry run; apply nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply without asking.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// `json`/`yaml`: print the object that is (or would be) applied on stdout,
    /// everything else on stderr.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

/// What the fix is computed from.
#[derive(Debug, Clone)]
struct FixInputs {
    pub daemon_set: DaemonSet,
    pub nodes: Vec<Arc<Node>>,
    pub spec: TerwayRolloutSpec,
    pub installation: Option<DynamicObject>,
}

pub async fn run(source: &Source, cmd: &FixCommand, term: &mut Term<'_>) -> Result<Outcome, CliError> {
    let args = cmd.common();
    let candidates: Vec<(String, String)> = match cmd {
        FixCommand::CalicoAffinity(_) => {
            CALICO_NAMESPACES.iter().map(|ns| ((*ns).to_owned(), CALICO_NODE.to_owned())).collect()
        }
        FixCommand::CniAffinity { daemonset, .. } => vec![parse_ns_name(daemonset)?],
    };
    let inputs = match source {
        Source::Live(client) => live_inputs(client, &candidates).await?,
        Source::Dump(path) => dump_inputs(&source.view().await?, &candidates, path)?,
    };
    let client = match source {
        Source::Live(client) => Some(client),
        Source::Dump(_) => None,
    };
    fix(client, &inputs, args, &candidates, term).await
}

/// `kube-system/calico-node` -> (namespace, name).
fn parse_ns_name(s: &str) -> Result<(String, String), CliError> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(CliError::Usage(format!(
            "--daemonset {s:?}: expected NAMESPACE/NAME, e.g. kube-system/calico-node"
        ))),
    }
}

fn which(candidates: &[(String, String)]) -> String {
    match candidates {
        [(ns, name)] => format!("{ns}/{name}"),
        _ => {
            let nss: Vec<&str> = candidates.iter().map(|(ns, _)| ns.as_str()).collect();
            format!("{} in {}", candidates.first().map(|c| c.1.as_str()).unwrap_or(""), nss.join(" or "))
        }
    }
}

fn pick(found: Vec<DaemonSet>, candidates: &[(String, String)], origin: &str) -> Result<DaemonSet, CliError> {
    match found.len() {
        0 => Err(CliError::Api(format!("not found{origin}: daemonset {}", which(candidates)))),
        1 => Ok(found.into_iter().next().expect("one")),
        _ => Err(CliError::Usage(format!(
            "daemonset {} exists in more than one namespace; pick one with \
             `fix cni-affinity --daemonset NAMESPACE/NAME`",
            which(candidates)
        ))),
    }
}

fn needs_installation(candidates: &[(String, String)]) -> bool {
    candidates.iter().any(|(_, name)| name == CALICO_NODE)
}

async fn live_inputs(client: &Client, candidates: &[(String, String)]) -> Result<FixInputs, CliError> {
    let mut found = Vec::new();
    for (ns, name) in candidates {
        let api: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
        let op = Op::new("get", "daemonsets.apps", "daemonset", Some(ns), Some(name));
        if let Some(ds) = api.get_opt(name).await.map_err(|e| api_error(&op, e))? {
            found.push(ds);
        }
    }
    let daemon_set = pick(found, candidates, "")?;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error(&Op::new("list", "nodes", "nodes", None, None), e))?
        .items
        .into_iter()
        .map(Arc::new)
        .collect();
    let rollout =
        get_present(&Api::<TerwayRollout>::all(client.clone()), ROLLOUT_NAME).await.map_err(|e| {
            api_error(
                &Op::new("get", "terwayrollouts.terway-hybrid.io", "terwayrollout", None, Some(ROLLOUT_NAME)),
                e,
            )
        })?;
    let installation = if needs_installation(candidates) {
        get_present(
            &Api::<DynamicObject>::all_with(client.clone(), &installation_resource()),
            INSTALLATION_NAME,
        )
        .await
        .map_err(|e| {
            let op = Op::new(
                "get",
                "installations.operator.tigera.io",
                "installation",
                None,
                Some(INSTALLATION_NAME),
            );
            api_error(&op, e)
        })?
    } else {
        None
    };
    Ok(FixInputs { daemon_set, nodes, spec: rollout.map(|r| r.spec).unwrap_or_default(), installation })
}

fn dump_inputs(
    view: &crate::pure::view::ClusterView,
    candidates: &[(String, String)],
    path: &std::path::Path,
) -> Result<FixInputs, CliError> {
    let found: Vec<DaemonSet> = view
        .daemon_sets
        .iter()
        .filter(|d| {
            candidates.iter().any(|(ns, name)| {
                d.metadata.namespace.as_deref() == Some(ns) && d.metadata.name.as_deref() == Some(name)
            })
        })
        .cloned()
        .collect();
    let daemon_set = pick(found, candidates, &format!(" in the dump {}", path.display()))?;
    Ok(FixInputs {
        daemon_set,
        nodes: view.nodes.clone(),
        spec: view.rollout.as_ref().map(|r| r.spec.clone()).unwrap_or_default(),
        installation: if needs_installation(candidates) { view.installation.clone() } else { None },
    })
}

/// The fix for the inputs (see [`cni_fix::prepare`]).
fn prepare(inputs: &FixInputs) -> Option<CniFix> {
    let installation = inputs.installation.as_ref();
    cni_fix::prepare(&inputs.daemon_set, installation, &inputs.nodes, &inputs.spec.cloud_node_selector)
}

fn yaml(affinity: Option<&Affinity>) -> String {
    match affinity {
        None => String::new(),
        Some(a) => yaml_serde::to_string(a).unwrap_or_default(),
    }
}

/// What restarting the CNI DaemonSet means, from its update strategy.
/// `nodes`: how many nodes it runs on when its status does not say.
fn restart_note(ds: &DaemonSet, nodes: usize) -> String {
    let name = ds.metadata.name.as_deref().unwrap_or("the CNI");
    let pods = ds
        .status
        .as_ref()
        .and_then(|s| usize::try_from(s.desired_number_scheduled).ok())
        .filter(|n| *n > 0)
        .unwrap_or(nodes);
    let strategy = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    let kind = strategy.and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate");
    let on_every = format!(
        "changing the pod template restarts {name} on every node it runs on ({pods} pods); while a node's \
         {name} pod restarts, new pods there cannot get a network and routes may flap"
    );
    if kind == "OnDelete" {
        return format!(
            "{on_every}. Its updateStrategy is OnDelete: running pods keep the old affinity until they are \
             deleted, so delete them node by node when it suits you (the affinity applies to new pods at \
             once)"
        );
    }
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let mu = rolling.and_then(|r| r.max_unavailable.clone()).unwrap_or(IntOrString::Int(1));
    let surge = rolling.and_then(|r| r.max_surge.clone());
    let shown = match &mu {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    };
    let at_once = max_unavailable(&mu, pods);
    let surge_note = match surge {
        Some(IntOrString::Int(0)) | None => String::new(),
        Some(IntOrString::Int(i)) => format!(", maxSurge {i}"),
        Some(IntOrString::String(s)) => format!(", maxSurge {s}"),
    };
    let advice = if at_once <= 1 {
        "one node at a time: apply it in a quiet period and follow it with `kubectl rollout status`"
            .to_owned()
    } else {
        format!(
            "up to {at_once} nodes at once: consider lowering maxUnavailable to 1 first, or apply in a \
             maintenance window"
        )
    };
    format!("{on_every}. RollingUpdate with maxUnavailable {shown}{surge_note} restarts {advice}")
}

async fn fix(
    client: Option<&Client>,
    inputs: &FixInputs,
    args: &FixArgs,
    candidates: &[(String, String)],
    term: &mut Term<'_>,
) -> Result<Outcome, CliError> {
    let structured = args.output != OutputFormat::Table;
    let color = if structured { term.err_color } else { term.color };
    let Some(prepared) = prepare(inputs) else {
        let ds = &inputs.daemon_set;
        let line = format!(
            "daemonset {}/{} is kept off cloud nodes already: nothing to do",
            ds.metadata.namespace.as_deref().unwrap_or(""),
            ds.metadata.name.as_deref().unwrap_or("")
        );
        human(term, structured).write_all(format!("{}\n", paint(color, GREEN, &line)).as_bytes())?;
        return Ok(Outcome::Ok);
    };
    let target_text = match &prepared.target {
        Target::DaemonSet { namespace, name } => {
            format!("daemonset {}", printable(&format!("{namespace}/{name}")))
        }
        Target::Installation => "Installation default".to_owned(),
    };
    describe(human(term, structured), &prepared, &target_text, color)?;
    if let Err(violation) = &prepared.verdict {
        return Err(CliError::Refused(format!(
            "refusing to apply: the fix was verified against the {} nodes and {violation}",
            inputs.nodes.len()
        )));
    }
    {
        let h = human(term, structured);
        let ok = format!(
            "verified against {} nodes: it still admits all {} on-prem node(s) it admits now, none of the {} \
             cloud node(s), and no node that joins labelled {}=true",
            inputs.nodes.len(),
            prepared.on_prem_nodes,
            prepared.cloud_nodes,
            affinity::CLOUD_LABEL
        );
        writeln!(h, "{}", paint(color, GREEN, &ok))?;
    }
    let admitted = inputs
        .nodes
        .iter()
        .filter(|n| crate::pure::scheduling::admits(&inputs.daemon_set, n).is_admitted())
        .count();
    let note = restart_note(&inputs.daemon_set, admitted);
    term.warn(&note)?;
    if structured {
        print_structured(term.out, args.output, &prepared.body())?;
    }
    let Some(client) = client else {
        let h = human(term, structured);
        writeln!(
            h,
            "{}",
            paint(
                color,
                YELLOW,
                "not applied: this ran on a dump, so nothing can be applied and no server-side dry run was \
                 made; run it without --from-dump against the cluster to apply"
            )
        )?;
        return Ok(Outcome::Ok);
    };
    apply(client, &prepared, false).await?;
    writeln!(human(term, structured), "server-side dry run (dryRun=All): the API server accepts the change")?;
    if args.dry_run {
        writeln!(human(term, structured), "dry run: nothing was applied")?;
        return Ok(Outcome::Ok);
    }
    let question = format!(
        "Apply the new affinity to {target_text} now? {} restarts on every node.",
        inputs.daemon_set.metadata.name.as_deref().unwrap_or("the CNI")
    );
    if !term.confirm(&question, &format!("apply the fix to {target_text}"), args.yes)? {
        return Err(CliError::Refused("not applied: not confirmed".to_owned()));
    }
    let again = reverified(client, candidates, &prepared, &target_text).await?;
    apply(client, &again, true).await?;
    let done = format!("applied to {target_text}; follow it with: {}", follow_command(&again.target, inputs));
    writeln!(human(term, structured), "{}", paint(color, GREEN, &done))?;
    Ok(Outcome::Ok)
}

/// The fix, shown: what it keeps off cloud nodes, where it goes, and the
/// diff of the affinity.
fn describe(h: &mut dyn Write, prepared: &CniFix, target_text: &str, color: bool) -> std::io::Result<()> {
    let daemon_set = printable(&prepared.daemon_set);
    writeln!(h, "{}", paint(color, BOLD, &format!("Fix: keep {daemon_set} off cloud nodes")))?;
    writeln!(h, "Target: {target_text}")?;
    if let Some(why) = &prepared.why_installation {
        writeln!(h, "Why: {}", printable(why))?;
    }
    writeln!(
        h,
        "Change: AND {} NotIn [\"true\"] into every required nodeSelectorTerm (no term is replaced)\n",
        affinity::CLOUD_LABEL
    )?;
    let field = match prepared.target {
        Target::Installation => INSTALLATION_AFFINITY,
        Target::DaemonSet { .. } => "spec.template.spec.affinity",
    };
    let diff = unified(
        &yaml(prepared.before.as_ref()),
        &yaml(Some(&prepared.after)),
        &format!("{target_text} {field} (now)"),
        &format!("{target_text} {field} (fixed)"),
        FULL_CONTEXT,
        color,
    );
    writeln!(h, "{diff}")
}

/// The fix prepared again on what the server holds now: if what was
/// verified moved meanwhile, stop rather than apply a fix computed on an old
/// object.
async fn reverified(
    client: &Client,
    candidates: &[(String, String)],
    shown: &CniFix,
    target_text: &str,
) -> Result<CniFix, CliError> {
    let fresh = live_inputs(client, candidates).await?;
    let again = prepare(&fresh).filter(|p| p.before == shown.before && p.target == shown.target);
    let Some(again) = again else {
        return Err(CliError::Refused(format!(
            "not applied: {target_text} changed since the diff was shown; run the command again"
        )));
    };
    if let Err(violation) = &again.verdict {
        return Err(CliError::Refused(format!("not applied: the nodes changed and {violation}")));
    }
    Ok(again)
}

/// How to follow the restart the fix starts.
fn follow_command(target: &Target, inputs: &FixInputs) -> String {
    match target {
        Target::DaemonSet { namespace, name } => {
            format!("kubectl -n {namespace} rollout status daemonset/{name}")
        }
        Target::Installation => {
            let ns = inputs.daemon_set.metadata.namespace.as_deref().unwrap_or("calico-system");
            format!(
                "the Tigera operator rolls it out: kubectl -n {ns} rollout status daemonset/{CALICO_NODE}"
            )
        }
    }
}

fn human<'t>(term: &'t mut Term<'_>, structured: bool) -> &'t mut dyn Write {
    if structured {
        &mut *term.err
    } else {
        &mut *term.out
    }
}

/// One server-side apply of the prepared body (`dryRun=All` unless `real`).
async fn apply(client: &Client, prepared: &CniFix, real: bool) -> Result<(), CliError> {
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = !real;
    let verb = if real { "patch" } else { "patch (dry run)" };
    match &prepared.target {
        Target::DaemonSet { namespace, name } => {
            let api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
            let op = Op::new(verb, "daemonsets.apps", "daemonset", Some(namespace), Some(name));
            api.patch(name, &params, &Patch::Apply(&prepared.body())).await.map_err(|e| api_error(&op, e))?;
        }
        Target::Installation => {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &installation_resource());
            let name = INSTALLATION_NAME;
            let op = Op::new(verb, "installations.operator.tigera.io", "installation", None, Some(name));
            api.patch(name, &params, &Patch::Apply(&prepared.body())).await.map_err(|e| api_error(&op, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_names() {
        assert_eq!(
            parse_ns_name("kube-system/calico-node").unwrap(),
            ("kube-system".into(), "calico-node".into())
        );
        for bad in ["calico-node", "/x", "x/", "a/b/c", ""] {
            assert!(parse_ns_name(bad).is_err(), "{bad}");
        }
    }
}
