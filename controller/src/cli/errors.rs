//! CliError: every way a command can stop early, as one clear line and an
//! exit code a script can rely on (1: refused; 2: bad usage, unreadable
//! input, API trouble). Kubernetes API errors are said in the user's terms:
//! which permission is missing, which object does not exist.

use crate::api_error::ApiError;
use crate::cli::dump::DumpError;
use std::fmt;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Flags that do not go together, a bad value.
    #[error("{0}")]
    Usage(String),
    /// A dump, a key file or another input that cannot be read.
    #[error("{0}")]
    Input(String),
    /// The API answered with an error.
    #[error("{0}")]
    Api(String),
    /// The API cannot be reached at all.
    #[error("{0}")]
    Unreachable(String),
    /// The command will not do what was asked: unsafe, unconfirmed, exists already.
    #[error("{0}")]
    Refused(String),
    /// A tool the command runs (onectl) is not there or cannot be started.
    #[error("{0}")]
    ToolMissing(String),
    /// A tool the command runs failed.
    #[error("{0}")]
    ToolFailed(String),
    /// Writing the output failed (a closed pipe, a full disk).
    #[error("writing output: {0}")]
    Output(#[from] io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Refused(_) | CliError::ToolFailed(_) => 1,
            _ => 2,
        }
    }

    /// A closed stdout (`| head`): nothing worth saying.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl From<DumpError> for CliError {
    fn from(e: DumpError) -> Self {
        // DumpError names the file, the document and the object; it never
        // carries Secret contents.
        CliError::Input(format!("cannot read the dump: {e}"))
    }
}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        api_error(&Op::described(&e.what), e.source)
    }
}

/// One API request, for messages: `get daemonset kube-system/calico-node`.
#[derive(Debug, Clone)]
pub struct Op {
    pub verb: String,
    /// `daemonsets.apps`, `nodes`.
    pub resource: String,
    /// `daemonset`, `secret`, as a person says it.
    pub kind: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// Set when only a free-text description is known (from fetch).
    described: Option<String>,
}

impl Op {
    pub fn new(verb: &str, resource: &str, kind: &str, namespace: Option<&str>, name: Option<&str>) -> Self {
        Op {
            verb: verb.to_owned(),
            resource: resource.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            described: None,
        }
    }

    /// From a description such as `list nodes` or `get secret kube-system/x`.
    pub fn described(what: &str) -> Self {
        let mut words = what.splitn(3, ' ');
        let verb = words.next().unwrap_or("").to_owned();
        let resource = words.next().unwrap_or("").to_owned();
        let rest = words.next().map(str::to_owned);
        Op {
            verb,
            kind: resource.clone(),
            resource,
            namespace: None,
            name: rest,
            described: Some(what.to_owned()),
        }
    }

    /// `kube-system/calico-node`, `nodes`.
    pub fn object(&self) -> String {
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => format!("{ns}/{name}"),
            (None, Some(name)) => name.clone(),
            (Some(ns), None) => format!("in namespace {ns}"),
            (None, None) => String::new(),
        }
    }

    fn scope(&self) -> String {
        match &self.namespace {
            Some(ns) => format!(" in namespace {ns}"),
            None if self.described.is_none() => " (cluster-wide)".to_owned(),
            None => String::new(),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.described {
            return f.write_str(d);
        }
        write!(f, "{} {} {}", self.verb, self.kind, self.object())
    }
}

/// A kube error as one line.
pub fn api_error(op: &Op, e: kube::Error) -> CliError {
    match e {
        kube::Error::Api(status) => {
            let code = status.code;
            match code {
                403 => CliError::Api(forbidden(&status.message).unwrap_or_else(|| {
                    format!("missing permission: {} on {}{}", op.verb, op.resource, op.scope())
                })),
                404 => match &op.described {
                    Some(d) => CliError::Api(format!("not found: {d} ({})", status.message)),
                    None => CliError::Api(format!("not found: {} {}", op.kind, op.object())),
                },
                401 => CliError::Api(format!(
                    "unauthorized: the API server rejected the kubeconfig's credentials ({op})"
                )),
                409 => CliError::Api(format!(
                    "conflict: {} {} changed while this command ran ({}); run it again",
                    op.kind,
                    op.object(),
                    status.message
                )),
                _ => CliError::Api(format!(
                    "{op}: the API server answered {code} {}: {}",
                    if status.reason.is_empty() { "error" } else { status.reason.as_str() },
                    status.message
                )),
            }
        }
        e @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => {
            CliError::Unreachable(format!("cannot reach the Kubernetes API ({op}): {}", root_cause(&e)))
        }
        e => CliError::Api(format!("{op}: {}", root_cause(&e))),
    }
}

/// The error and its sources, deduplicated: `a: b: c`.
pub fn root_cause(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// `missing permission: patch on daemonsets.apps in namespace kube-system
/// (User "bob")`, read from the API server's Forbidden message:
/// `daemonsets.apps "calico-node" is forbidden: User "bob" cannot patch
/// resource "daemonsets" in API group "apps" in the namespace "kube-system"`.
pub fn forbidden(message: &str) -> Option<String> {
    let (_, rest) = message.split_once(" cannot ")?;
    let (verb, rest) = rest.split_once(" resource \"")?;
    let (resource, rest) = rest.split_once('"')?;
    let group = rest.split_once(" in API group \"").and_then(|(_, r)| r.split_once('"')).map(|(g, _)| g);
    let namespace =
        rest.split_once(" in the namespace \"").and_then(|(_, r)| r.split_once('"')).map(|(n, _)| n);
    let resource = match group {
        Some(g) if !g.is_empty() => format!("{resource}.{g}"),
        _ => resource.to_owned(),
    };
    let scope = match namespace {
        Some(ns) => format!(" in namespace {ns}"),
        None => " (cluster-wide)".to_owned(),
    };
    let who = message
        .split_once(" is forbidden: ")
        .map(|(_, r)| r)
        .or(Some(message))
        .and_then(|r| r.split_once(" cannot ").map(|(who, _)| who.trim()))
        .filter(|w| !w.is_empty())
        .map(|w| format!(" ({w})"))
        .unwrap_or_default();
    Some(format!("missing permission: {} on {resource}{scope}{who}", verb.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages() {
        let m = "daemonsets.apps \"calico-node\" is forbidden: User \"bob\" cannot patch resource \
                 \"daemonsets\" in API group \"apps\" in the namespace \"kube-system\"";
        assert_eq!(
            forbidden(m).unwrap(),
            "missing permission: patch on daemonsets.apps in namespace kube-system (User \"bob\")"
        );
        let m = "nodes is forbidden: User \"system:serviceaccount:ci:runner\" cannot list resource \
                 \"nodes\" in API group \"\" at the cluster scope";
        assert_eq!(
            forbidden(m).unwrap(),
            "missing permission: list on nodes (cluster-wide) (User \"system:serviceaccount:ci:runner\")"
        );
        assert_eq!(forbidden("forbidden"), None);
    }
}
