//! RAM: the custom policy Terway needs (`ram-policy`), and the AccessKey it
//! uses, Secret kube-system/alibaba-addon-secret (`ram-secret create|check`).
//!
//! AccessKey values are read from files (or stdin), trimmed of the trailing
//! newline, checked for format and sent to the API server; they are never
//! printed, logged or put into an error. What is said about them is their
//! length and which format rule they miss.

use super::errors::{api_error, Op};
use super::term::{paint, GREEN, RED, YELLOW};
use super::{print_structured, table, CliError, Outcome, OutputFormat, Source, Term, FIELD_MANAGER};
use crate::cli::limits;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::PostParams;
use kube::{Api, Client};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use terway_hybrid_api::names::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, ADDON_SECRET_NAME, ADDON_SECRET_NAMESPACE};

/// The actions of Terway's custom RAM policy (docs/contracts.md §12).
const RAM_ACTIONS: [&str; 11] = [
    "ecs:CreateNetworkInterface",
    "ecs:DescribeNetworkInterfaces",
    "ecs:AttachNetworkInterface",
    "ecs:DetachNetworkInterface",
    "ecs:DeleteNetworkInterface",
    "ecs:DescribeInstanceAttribute",
    "ecs:AssignPrivateIpAddresses",
    "ecs:UnassignPrivateIpAddresses",
    "ecs:DescribeInstances",
    "ecs:ModifyNetworkInterfaceAttribute",
    "vpc:DescribeVSwitches",
];

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Policy {
    version: &'static str,
    statement: Vec<Statement>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Statement {
    effect: &'static str,
    action: Vec<&'static str>,
    resource: Vec<&'static str>,
}

/// The policy document, as the RAM console and `aliyun ram CreatePolicy` take it.
fn policy_json() -> String {
    let policy = Policy {
        version: "1",
        statement: vec![Statement { effect: "Allow", action: RAM_ACTIONS.to_vec(), resource: vec!["*"] }],
    };
    serde_json::to_string_pretty(&policy).expect("the policy serializes") + "\n"
}

pub fn policy(term: &mut Term<'_>) -> Result<Outcome, CliError> {
    term.out.write_all(policy_json().as_bytes())?;
    Ok(Outcome::Ok)
}

#[derive(clap::Subcommand, Debug)]
pub enum SecretCommand {
    /// Create kube-system/alibaba-addon-secret from key files (values are never shown).
    Create(CreateArgs),
    /// Check that kube-system/alibaba-addon-secret holds both keys, and their format.
    Check(CheckArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct CreateArgs {
    /// File holding the AccessKey ID (`-`: stdin); a trailing newline is dropped.
    #[arg(long, value_name = "FILE")]
    pub access_key_id_file: PathBuf,
    /// File holding the AccessKey secret (`-`: stdin); a trailing newline is dropped.
    #[arg(long, value_name = "FILE")]
    pub access_key_secret_file: PathBuf,
    /// Replace the two keys of an existing Secret (its other keys are kept).
    #[arg(long)]
    pub force: bool,
    /// Check the files and run a server-side dry run; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct CheckArgs {
    /// Check a dump instead of the live Secret (presence only: a dump holds no values).
    #[arg(long, value_name = "PATH")]
    pub from_dump: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

/// An AccessKey value. Debug and Display never show it.
pub struct KeyValue(String);

impl KeyValue {
    pub fn new(value: String) -> Self {
        KeyValue(value)
    }

    pub fn len(&self) -> usize {
        self.0.chars().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn bytes(&self) -> ByteString {
        ByteString(self.0.as_bytes().to_vec())
    }
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted:{}>", self.0.len())
    }
}

/// The two keys, read.
#[derive(Debug)]
pub struct Keys {
    pub id: KeyValue,
    pub secret: KeyValue,
}

/// Why an AccessKey ID does not look like one (`LTAI` + letters and digits,
/// 16 to 30 characters), without saying what it is.
fn key_id_problem(value: &str) -> Option<String> {
    let n = value.chars().count();
    let mut problems = Vec::new();
    if !value.starts_with("LTAI") {
        problems.push("does not start with LTAI".to_owned());
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric()) {
        problems.push("holds characters other than letters and digits".to_owned());
    }
    if !(16..=30).contains(&n) {
        problems.push(format!("is {n} characters long, not 16 to 30"));
    }
    (!problems.is_empty()).then(|| problems.join(", "))
}

/// Why an AccessKey secret does not look like one (30 letters and digits).
fn key_secret_problem(value: &str) -> Option<String> {
    let n = value.chars().count();
    let mut problems = Vec::new();
    if !value.chars().all(|c| c.is_ascii_alphanumeric()) {
        problems.push("holds characters other than letters and digits".to_owned());
    }
    if n != 30 {
        problems.push(format!("is {n} characters long, not 30"));
    }
    (!problems.is_empty()).then(|| problems.join(", "))
}

fn problem(key: &str, value: &str) -> Option<String> {
    if key == ACCESS_KEY_ID {
        key_id_problem(value)
    } else {
        key_secret_problem(value)
    }
}

/// Reads and trims both key files, and warns about their format. Errors
/// name the file and the problem, never the content.
pub fn read_keys(args: &CreateArgs, term: &mut Term<'_>) -> Result<Keys, CliError> {
    let stdin = |p: &PathBuf| p.as_os_str() == "-";
    if stdin(&args.access_key_id_file) && stdin(&args.access_key_secret_file) {
        return Err(CliError::Usage(
            "only one of --access-key-id-file and --access-key-secret-file can be `-` (stdin)".to_owned(),
        ));
    }
    let id = read_key(&args.access_key_id_file, ACCESS_KEY_ID, term)?;
    let secret = read_key(&args.access_key_secret_file, ACCESS_KEY_SECRET, term)?;
    for (key, value) in [(ACCESS_KEY_ID, &id), (ACCESS_KEY_SECRET, &secret)] {
        if let Some(p) = problem(key, &value.0) {
            term.warn(&format!("the {key} value {p}: is it the right file? (creating it anyway)"))?;
        }
    }
    Ok(Keys { id, secret })
}

fn read_key(path: &Path, key: &str, term: &mut Term<'_>) -> Result<KeyValue, CliError> {
    let (bytes, name) = if path.as_os_str() == "-" {
        if term.interactive {
            return Err(CliError::Usage(format!(
                "{key} from `-`: stdin is a terminal, where the value would be echoed; pipe it in or use a \
                 file"
            )));
        }
        let bytes =
            limits::read_capped(&mut term.input, limits::KEY_FILE_MAX, Path::new("stdin"), "a key file")
                .map_err(|e| match e {
                    limits::ReadError::Io { source, .. } => {
                        CliError::Input(format!("cannot read the {key} from stdin: {}", source.kind()))
                    }
                    e => CliError::Input(format!("the {key} from {e}")),
                })?;
        (bytes, "stdin".to_owned())
    } else {
        let bytes = limits::read_file_capped(path, limits::KEY_FILE_MAX, "a key file")
            .map_err(|e| CliError::Input(format!("cannot read the {key} file {e}")))?;
        (bytes, path.display().to_string())
    };
    let text =
        String::from_utf8(bytes).map_err(|_| CliError::Input(format!("the {key} in {name} is not text")))?;
    let value = text.trim_end_matches(['\n', '\r']).to_owned();
    if value.is_empty() {
        return Err(CliError::Input(format!("the {key} in {name} is empty")));
    }
    Ok(KeyValue::new(value))
}

fn secret_name() -> String {
    format!("{ADDON_SECRET_NAMESPACE}/{ADDON_SECRET_NAME}")
}

pub async fn create(
    client: &Client,
    args: &CreateArgs,
    keys: Keys,
    term: &mut Term<'_>,
) -> Result<Outcome, CliError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ADDON_SECRET_NAMESPACE);
    let op = |verb: &str| {
        Op::new(verb, "secrets", "secret", Some(ADDON_SECRET_NAMESPACE), Some(ADDON_SECRET_NAME))
    };
    let existing = api.get_opt(ADDON_SECRET_NAME).await.map_err(|e| api_error(&op("get"), e))?;
    let sizes = format!(
        "{ACCESS_KEY_ID} ({} characters) and {ACCESS_KEY_SECRET} ({} characters)",
        keys.id.len(),
        keys.secret.len()
    );
    let (object, replacing) = match existing {
        Some(_) if !args.force => {
            return Err(CliError::Refused(format!(
            "Secret {} exists already: pass --force to replace its {ACCESS_KEY_ID} and {ACCESS_KEY_SECRET} \
                 (its other keys are kept)",
            secret_name()
        )))
        }
        Some(mut secret) => {
            // Keep what else it holds; only the two keys change. Nothing of
            // the old object is shown.
            let data = secret.data.get_or_insert_with(BTreeMap::new);
            data.insert(ACCESS_KEY_ID.to_owned(), keys.id.bytes());
            data.insert(ACCESS_KEY_SECRET.to_owned(), keys.secret.bytes());
            if let Some(sd) = secret.string_data.as_mut() {
                sd.remove(ACCESS_KEY_ID);
                sd.remove(ACCESS_KEY_SECRET);
            }
            secret.metadata.managed_fields = None;
            (secret, true)
        }
        None => {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(ADDON_SECRET_NAME.to_owned()),
                    namespace: Some(ADDON_SECRET_NAMESPACE.to_owned()),
                    ..ObjectMeta::default()
                },
                type_: Some("Opaque".to_owned()),
                data: Some(BTreeMap::from([
                    (ACCESS_KEY_ID.to_owned(), keys.id.bytes()),
                    (ACCESS_KEY_SECRET.to_owned(), keys.secret.bytes()),
                ])),
                ..Secret::default()
            };
            (secret, false)
        }
    };
    let write = |dry_run: bool| {
        let api = api.clone();
        let object = object.clone();
        async move {
            let params = PostParams { dry_run, field_manager: Some(FIELD_MANAGER.to_owned()) };
            if replacing {
                api.replace(ADDON_SECRET_NAME, &params, &object)
                    .await
                    .map(drop)
                    .map_err(|e| api_error(&op("update"), e))
            } else {
                api.create(&params, &object).await.map(drop).map_err(|e| api_error(&op("create"), e))
            }
        }
    };
    let verb = if replacing { "replace" } else { "create" };
    write(true).await?;
    writeln!(
        term.out,
        "server-side dry run (dryRun=All): the API server accepts to {verb} Secret {} with {sizes}",
        secret_name()
    )?;
    if args.dry_run {
        writeln!(term.out, "dry run: nothing was written")?;
        return Ok(Outcome::Ok);
    }
    let question = if replacing {
        format!("Replace {ACCESS_KEY_ID} and {ACCESS_KEY_SECRET} in Secret {}?", secret_name())
    } else {
        format!("Create Secret {}?", secret_name())
    };
    if !term.confirm(&question, &format!("{verb} Secret {}", secret_name()), args.yes)? {
        return Err(CliError::Refused("nothing written: not confirmed".to_owned()));
    }
    write(false).await?;
    let done =
        format!("{} Secret {} with {sizes}", if replacing { "updated" } else { "created" }, secret_name());
    writeln!(term.out, "{}", paint(term.color, GREEN, &done))?;
    writeln!(term.out, "next: terway-hybrid preflight")?;
    Ok(Outcome::Ok)
}

/// What `ram-secret check` found about one key.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct KeyReport {
    pub present: bool,
    pub non_empty: bool,
    /// Characters (None from a dump: it holds no values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    /// `ok`, `unexpected` or `unchecked`.
    pub format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct SecretReport {
    pub namespace: &'static str,
    pub name: &'static str,
    pub exists: bool,
    pub keys: BTreeMap<&'static str, KeyReport>,
    /// Both keys hold a value (format problems only warn).
    pub passed: bool,
}

/// Reduces a Secret to a report; the values stay here.
fn report_of_secret(secret: Option<&Secret>) -> SecretReport {
    let mut keys = BTreeMap::new();
    for key in [ACCESS_KEY_ID, ACCESS_KEY_SECRET] {
        let value: Option<String> = secret.and_then(|s| {
            let from_data =
                s.data.as_ref().and_then(|d| d.get(key)).map(|b| String::from_utf8_lossy(&b.0).into_owned());
            from_data.or_else(|| s.string_data.as_ref().and_then(|d| d.get(key)).cloned())
        });
        let report = match value {
            None => KeyReport {
                present: false,
                non_empty: false,
                length: None,
                format: "unchecked",
                problem: None,
            },
            Some(v) => {
                let problem = if v.is_empty() { None } else { problem(key, &v) };
                KeyReport {
                    present: true,
                    non_empty: !v.is_empty(),
                    length: Some(v.chars().count()),
                    format: if v.is_empty() {
                        "unchecked"
                    } else if problem.is_some() {
                        "unexpected"
                    } else {
                        "ok"
                    },
                    problem,
                }
            }
        };
        keys.insert(key, report);
    }
    finish(secret.is_some(), keys)
}

fn finish(exists: bool, keys: BTreeMap<&'static str, KeyReport>) -> SecretReport {
    let passed = exists && keys.values().all(|k| k.non_empty);
    SecretReport { namespace: ADDON_SECRET_NAMESPACE, name: ADDON_SECRET_NAME, exists, keys, passed }
}

/// From a dump's key presence.
fn report_of_keys(keys: Option<&crate::pure::view::SecretKeys>) -> SecretReport {
    let mut out = BTreeMap::new();
    for key in [ACCESS_KEY_ID, ACCESS_KEY_SECRET] {
        let present = keys.is_some_and(|k| k.keys.contains_key(key));
        let non_empty = keys.is_some_and(|k| k.non_empty(key));
        out.insert(key, KeyReport { present, non_empty, length: None, format: "unchecked", problem: None });
    }
    finish(keys.is_some(), out)
}

pub async fn check(source: &Source, args: &CheckArgs, term: &mut Term<'_>) -> Result<Outcome, CliError> {
    let report = match source {
        Source::Live(client) => {
            let api: Api<Secret> = Api::namespaced(client.clone(), ADDON_SECRET_NAMESPACE);
            let op =
                Op::new("get", "secrets", "secret", Some(ADDON_SECRET_NAMESPACE), Some(ADDON_SECRET_NAME));
            let secret = api.get_opt(ADDON_SECRET_NAME).await.map_err(|e| api_error(&op, e))?;
            report_of_secret(secret.as_ref())
        }
        Source::Dump(_) => report_of_keys(source.view().await?.addon_secret.as_ref()),
    };
    if args.output != OutputFormat::Table {
        print_structured(term.out, args.output, &report)?;
    } else {
        print_report(term, &report, source.is_dump())?;
    }
    for (key, k) in &report.keys {
        if let Some(p) = &k.problem {
            term.warn(&format!(
                "the {key} value {p}: AccessKey IDs are LTAI + letters and digits (16-30), secrets 30 \
                 letters and digits"
            ))?;
        }
    }
    Ok(if report.passed { Outcome::Ok } else { Outcome::Failed })
}

fn print_report(term: &mut Term<'_>, report: &SecretReport, from_dump: bool) -> Result<(), CliError> {
    let color = term.color;
    if !report.exists {
        let line = format!(
            "Secret {} does not exist: create it with `terway-hybrid ram-secret create` (policy: \
             `terway-hybrid ram-policy`)",
            secret_name()
        );
        writeln!(term.out, "{}", paint(color, RED, &line))?;
        return Ok(());
    }
    writeln!(term.out, "Secret {}: exists", secret_name())?;
    let rows: Vec<Vec<String>> = report
        .keys
        .iter()
        .map(|(key, k)| {
            let value = match (k.present, k.non_empty, k.length) {
                (false, _, _) => "missing".to_owned(),
                (true, false, _) => "empty".to_owned(),
                (true, true, Some(n)) => format!("set ({n} characters)"),
                (true, true, None) => "set".to_owned(),
            };
            let format = match (k.format, &k.problem) {
                ("unexpected", Some(p)) => format!("unexpected: {p}"),
                ("unchecked", _) if from_dump && k.non_empty => {
                    "unchecked (a dump holds no values)".to_owned()
                }
                (f, _) => f.to_owned(),
            };
            vec![(*key).to_owned(), value, format]
        })
        .collect();
    let painter = |row: &[String], col: usize, padded: &str| {
        let cell = row.get(col).map(String::as_str).unwrap_or("");
        match col {
            1 if cell != "missing" && cell != "empty" => paint(color, GREEN, padded),
            1 => paint(color, RED, padded),
            2 if cell.starts_with("unexpected") => paint(color, YELLOW, padded),
            _ => padded.to_owned(),
        }
    };
    term.out.write_all(table(&["KEY", "VALUE", "FORMAT"], &rows, &painter).as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(key_id_problem("LTAI5tAbCdEfGhIjKlMnOpQr"), None);
        assert!(key_id_problem("AKIAIOSFODNN7EXAMPLE").unwrap().contains("LTAI"));
        assert!(key_id_problem("LTAIshort").unwrap().contains("9 characters"));
        assert!(key_id_problem("LTAI5tAbCdEf-hIjKlMnOpQr").unwrap().contains("letters and digits"));
        assert_eq!(key_secret_problem("abcdefghijABCDEFGHIJ0123456789"), None);
        assert!(key_secret_problem("abc").unwrap().contains("3 characters"));
    }

    #[test]
    fn key_values_do_not_show_in_debug() {
        let k = Keys { id: KeyValue::new("LTAIvisible".into()), secret: KeyValue::new("hidden".into()) };
        let shown = format!("{k:?}");
        assert!(!shown.contains("visible") && !shown.contains("hidden"), "{shown}");
    }
}
