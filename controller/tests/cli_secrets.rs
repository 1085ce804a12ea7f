//! Secret values never appear in output, errors or dumps: every command
//! path that touches the AccessKey runs with known values, and stdout,
//! stderr and every file written are searched for them (as they are and
//! base64-encoded).

mod api_request;
mod cli_bin;
mod fake_api;
mod mock_api;

use cli_bin::run_bin_with;
use fake_api::{base64, example_objects, run_lib, secret_object, FakeApi};
use http::Method;
use serde_json::{json, Value};
use std::path::Path;
use terway_hybrid_testkit::example_dir;

/// Known values, in the right format and in a wrong one (which makes the
/// format warnings speak about them).
const ID: &str = "LTAI5tSeCrEtIdK9x7QwErTy";
const SECRET: &str = "hUnTeR2sEcReTvAlUe0123456789ab";
const ODD_ID: &str = "AKIAoddSECRETvalue-42";
const ODD_SECRET: &str = "p@ss w0rd!sEcReT";
const ENI_KEY: &str = "LTAI5tEniConfKeyQ1w2E3r4";
const ENI_SECRET: &str = "EniConfSecretValue0123456789xy";
const ENV_SECRET: &str = "etcd-private-key-material-0042";
/// Secret-like values under names no deny-list would catch.
const AK_ENV: &str = "AkEnvValueNobodyNamedKey1234";
const SK_ENV: &str = "SkEnvValueNobodyNamedSecret5678";
const ARG_SECRET: &str = "ArgAccessKeySecretValue9876";
const ANNOTATION: &str = "PodAnnotationCredential4321";
const NUMERIC_SECRET: u64 = 987_654_321_987_654_321;

fn needles() -> Vec<String> {
    let mut out = Vec::new();
    let numeric = NUMERIC_SECRET.to_string();
    for v in [
        ID, SECRET, ODD_ID, ODD_SECRET, ENI_KEY, ENI_SECRET, ENV_SECRET, AK_ENV, SK_ENV, ARG_SECRET,
        ANNOTATION,
    ]
    .into_iter()
    .chain([numeric.as_str()])
    {
        out.push(v.to_owned());
        out.push(base64(v.as_bytes()));
    }
    out
}

#[track_caller]
fn assert_clean(what: &str, text: &str) {
    for n in needles() {
        assert!(!text.contains(&n), "{what} contains a secret value ({n}):\n{text}");
    }
}

fn key_files(dir: &Path, id: &str, secret: &str) -> (String, String) {
    let (a, b) = (dir.join(format!("id-{}", id.len())), dir.join(format!("secret-{}", secret.len())));
    std::fs::write(&a, format!("{id}\n")).unwrap();
    std::fs::write(&b, format!("{secret}\n")).unwrap();
    (a.display().to_string(), b.display().to_string())
}

fn secret() -> Value {
    secret_object(
        "kube-system",
        "alibaba-addon-secret",
        &[("access-key-id", ID), ("access-key-secret", SECRET)],
    )
}

/// bgp-pass with the Secret, an eni_conf carrying an AccessKey (and a
/// last-applied annotation repeating it), and a credential in an env var.
fn cluster_with_secrets() -> Vec<Value> {
    let mut objects = example_objects("bgp-pass");
    for o in &mut objects {
        if o["kind"] == "ConfigMap" && o["metadata"]["name"] == "eni-config" {
            let mut conf: Value = serde_json::from_str(o["data"]["eni_conf"].as_str().unwrap()).unwrap();
            conf["access_key"] = json!(ENI_KEY);
            conf["access_secret"] = json!(ENI_SECRET);
            o["data"]["eni_conf"] = json!(serde_json::to_string(&conf).unwrap());
            o["metadata"]["annotations"] =
                json!({"kubectl.kubernetes.io/last-applied-configuration": o.to_string()});
        }
        if o["kind"] == "DaemonSet" && o["metadata"]["name"] == "calico-node" {
            o["spec"]["template"]["spec"]["containers"] = json!([{"name": "calico-node", "image": "calico/node:v3.28.0",
                "args": [format!("--access-key-secret={ARG_SECRET}")],
                "env": [{"name": "ETCD_KEY", "value": ENV_SECRET}, {"name": "ALICLOUD_AK", "value": AK_ENV},
                    {"name": "SK", "value": SK_ENV}, {"name": "CALICO_NETWORKING_BACKEND", "value": "bird"}]}]);
        }
        if o["kind"] == "Pod" {
            o["metadata"]["annotations"] = json!({"example.com/credential": ANNOTATION});
            o["spec"]["containers"] = json!([{"name": "c", "image": "i", "args": [format!("--access-key-secret={ARG_SECRET}")],
                "env": [{"name": "ALICLOUD_AK", "value": AK_ENV}]}]);
        }
    }
    objects.push(secret());
    objects
}

#[test]
fn ram_secret_create_never_echoes_the_values() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\n\
         contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    let k = kubeconfig.display().to_string();
    for (id, secret) in [(ID, SECRET), (ODD_ID, ODD_SECRET)] {
        let (idf, sf) = key_files(dir.path(), id, secret);
        for extra in [vec![], vec!["--dry-run"], vec!["--yes"], vec!["--force", "--yes"]] {
            let mut args = vec![
                "--kubeconfig",
                k.as_str(),
                "ram-secret",
                "create",
                "--access-key-id-file",
                &idf,
                "--access-key-secret-file",
                &sf,
            ];
            args.extend(extra.iter());
            let run = run_bin_with(&args, &[], None);
            assert_eq!(run.code, 2, "unreachable: {run}");
            assert_clean("stdout", &run.stdout);
            assert_clean("stderr", &run.stderr);
        }
        // From stdin.
        let args = [
            "--kubeconfig",
            k.as_str(),
            "ram-secret",
            "create",
            "--access-key-id-file",
            &idf,
            "--access-key-secret-file",
            "-",
        ];
        let run = run_bin_with(&args, &[], Some(format!("{secret}\n").as_bytes()));
        assert_eq!(run.code, 2, "{run}");
        assert_clean("stdout", &run.stdout);
        assert_clean("stderr", &run.stderr);
    }
    // A file that is not text, or holds only a newline.
    let binary = dir.path().join("binary");
    std::fs::write(&binary, [0xff, 0xfe, b'L', b'T']).unwrap();
    let (idf, _) = key_files(dir.path(), ID, SECRET);
    let run = run_bin_with(
        &[
            "ram-secret",
            "create",
            "--access-key-id-file",
            &idf,
            "--access-key-secret-file",
            &binary.display().to_string(),
        ],
        &[],
        None,
    );
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("is not text"), "{run}");
    assert_clean("stderr", &run.stderr);
}

#[tokio::test]
async fn ram_secret_paths_against_the_api() {
    let dir = tempfile::tempdir().unwrap();
    for (id, secret) in [(ID, SECRET), (ODD_ID, ODD_SECRET)] {
        let (idf, sf) = key_files(dir.path(), id, secret);
        let create = [
            "ram-secret",
            "create",
            "--access-key-id-file",
            idf.as_str(),
            "--access-key-secret-file",
            sf.as_str(),
        ];
        let api = FakeApi::new(vec![]);
        let mut runs = Vec::new();
        runs.push(run_lib(&[&create[..], &["--dry-run"]].concat(), Some(api.client()), false, "").await);
        runs.push(run_lib(&create, Some(api.client()), false, "").await); // refused: no --yes
        runs.push(run_lib(&create, Some(api.client()), true, "no\n").await);
        runs.push(run_lib(&[&create[..], &["--yes"]].concat(), Some(api.client()), false, "").await);
        runs.push(run_lib(&[&create[..], &["--yes"]].concat(), Some(api.client()), false, "").await); // exists
        runs.push(
            run_lib(&[&create[..], &["--yes", "--force"]].concat(), Some(api.client()), false, "").await,
        );
        for format in ["table", "json", "yaml"] {
            runs.push(run_lib(&["ram-secret", "check", "-o", format], Some(api.client()), false, "").await);
        }
        // The values did reach the API server.
        let created = api.object("Secret", Some("kube-system"), "alibaba-addon-secret").unwrap();
        assert_eq!(created["data"]["access-key-id"], base64(id.as_bytes()));
        // Errors from the API server on the write.
        let failing = FakeApi::new(vec![]);
        failing.on(|s| {
            (s.method == Method::POST).then(|| {
                fake_api::status(422, "Invalid", "Secret \"alibaba-addon-secret\" is invalid: data: Too long")
            })
        });
        runs.push(run_lib(&[&create[..], &["--yes"]].concat(), Some(failing.client()), false, "").await);
        let forbidden = FakeApi::new(vec![]);
        forbidden.on(|s| {
            (s.method == Method::POST).then(|| {
                fake_api::forbidden("create", "secrets", "", Some("kube-system"), "alibaba-addon-secret")
            })
        });
        runs.push(run_lib(&[&create[..], &["--yes"]].concat(), Some(forbidden.client()), false, "").await);
        for run in &runs {
            assert_clean("stdout", &run.stdout);
            assert_clean("stderr", &run.stderr);
            if let Err(e) = &run.result {
                assert_clean("error", &e.to_string());
                assert_clean("error (Debug)", &format!("{e:?}"));
            }
        }
    }
}

#[tokio::test]
async fn dumps_and_reads_never_carry_the_values() {
    let api = FakeApi::new(cluster_with_secrets());
    let dir = tempfile::tempdir().unwrap();
    for file in ["d.yaml", "d.json"] {
        let path = dir.path().join(file);
        let run = run_lib(&["dump", "-o", &path.display().to_string()], Some(api.client()), false, "").await;
        assert_eq!(run.code(), 0, "{run}");
        assert_clean("stdout", &run.stdout);
        assert_clean("stderr", &run.stderr);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_clean(file, &text);
        assert!(!text.contains("last-applied-configuration"), "{text}");
        assert!(text.contains("<redacted:24>") && text.contains("<redacted:30>"), "lengths stay: {text}");
        // What the checks need survives: the preflight on the dump passes like the live one.
        let offline = run_lib(
            &["preflight", "--from-dump", &path.display().to_string(), "-o", "json"],
            None,
            false,
            "",
        )
        .await;
        let live = run_lib(&["preflight", "-o", "json"], Some(api.client()), false, "").await;
        assert_eq!(live.code(), 0, "{live}");
        assert_eq!(offline.stdout, live.stdout);
    }
    let run = run_lib(&["dump"], Some(api.client()), false, "").await;
    assert_clean("dump on stdout", &run.stdout);

    // Every read command, live and on a dump made by kubectl (the real
    // Secret and eni-config, values included).
    let raw = tempfile::tempdir().unwrap();
    let raw_file = raw.path().join("kubectl-get.json");
    std::fs::write(
        &raw_file,
        serde_json::to_string(&json!({"apiVersion": "v1", "kind": "List", "items": cluster_with_secrets()}))
            .unwrap(),
    )
    .unwrap();
    let raw_path = raw_file.display().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["preflight"],
        vec!["preflight", "-o", "json"],
        vec!["preflight", "-o", "yaml"],
        vec!["status"],
        vec!["status", "-o", "json"],
        vec!["ram-secret", "check"],
        vec!["ram-secret", "check", "-o", "yaml"],
        vec!["fix", "calico-affinity", "--dry-run", "-o", "json"],
        vec!["install", "--dry-run"],
    ];
    for cmd in &commands {
        let live = run_lib(cmd, Some(api.client()), false, "").await;
        let mut offline_args = cmd.clone();
        offline_args.extend(["--from-dump", raw_path.as_str()]);
        let offline = run_lib(&offline_args, None, false, "").await;
        for run in [&live, &offline] {
            assert!(run.code() <= 1, "{cmd:?}: {run}");
            assert_clean(&format!("{cmd:?} stdout"), &run.stdout);
            assert_clean(&format!("{cmd:?} stderr"), &run.stderr);
        }
    }
}

#[test]
fn a_secret_that_does_not_parse_is_reported_without_its_value() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.yaml", "daemonsets.json", "nodenetworkreports.json", "nodes.json", "pods.json"] {
        std::fs::copy(example_dir("bgp-pass").join(f), dir.path().join(f)).unwrap();
    }
    // The example's own Secret is replaced by one whose value is not base64.
    let config = std::fs::read_to_string(dir.path().join("config.yaml")).unwrap();
    let config =
        config.replace("access-key-id: <redacted:24>", &format!("access-key-id: \"{ODD_SECRET}\"")).replace(
            "access-key-secret: <redacted:30>",
            &format!("access-key-secret: {}", base64(SECRET.as_bytes())),
        );
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    for args in [vec!["preflight"], vec!["status"], vec!["ram-secret", "check"], vec!["install", "--dry-run"]]
    {
        let mut full = args.clone();
        let d = dir.path().display().to_string();
        full.extend(["--from-dump", d.as_str()]);
        let run = run_bin_with(&full, &[], None);
        assert_eq!(run.code, 2, "{args:?}: {run}");
        assert!(run.stderr.contains("data.access-key-id: not valid base64"), "{run}");
        assert_clean("stdout", &run.stdout);
        assert_clean("stderr", &run.stderr);
    }
}

/// bgp-pass whose eni_conf carries a numeric access_secret: the check says
/// the type is wrong, live, on a kubectl dump and on `terway-hybrid dump`,
/// and never prints the number.
#[tokio::test]
async fn a_numeric_access_secret_is_never_quoted() {
    let mut objects = cluster_with_secrets();
    for o in &mut objects {
        if o["kind"] == "ConfigMap" && o["metadata"]["name"] == "eni-config" {
            let mut conf: Value = serde_json::from_str(o["data"]["eni_conf"].as_str().unwrap()).unwrap();
            conf["access_secret"] = json!(NUMERIC_SECRET);
            o["data"]["eni_conf"] = json!(serde_json::to_string(&conf).unwrap());
            o["metadata"]["annotations"] = json!({});
        }
    }
    let api = FakeApi::new(objects.clone());
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("kubectl-get.json");
    std::fs::write(&raw, json!({"apiVersion": "v1", "kind": "List", "items": objects}).to_string()).unwrap();
    let ours = dir.path().join("dump.yaml");
    let run = run_lib(&["dump", "-o", &ours.display().to_string()], Some(api.client()), false, "").await;
    assert_eq!(run.code(), 0, "{run}");
    assert_clean("dump", &std::fs::read_to_string(&ours).unwrap());
    let live = run_lib(&["preflight", "-o", "json"], Some(api.client()), false, "").await;
    for source in [&raw, &ours] {
        let offline = run_lib(
            &["preflight", "--from-dump", &source.display().to_string(), "-o", "json"],
            None,
            false,
            "",
        )
        .await;
        assert_eq!(offline.stdout, live.stdout, "{}", source.display());
    }
    assert_eq!(live.code(), 1, "{live}");
    assert!(live.stdout.contains("eni_conf access_secret: expected a string, found a number"), "{live}");
    assert_clean("preflight", &live.stdout);
    for args in [vec!["preflight"], vec!["status"], vec!["install", "--dry-run"]] {
        let run = run_lib(&args, Some(api.client()), false, "").await;
        assert_clean(&format!("{args:?} stdout"), &run.stdout);
        assert_clean(&format!("{args:?} stderr"), &run.stderr);
    }
}
