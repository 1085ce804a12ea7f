//! The live paths of the CLI through kube's `Client` over a `tower-test`
//! mock API server (`fake_api`), for what a real server will not do on
//! demand or has no operator for: the affinity fix's confirmation and a
//! DaemonSet that changes under it, the Tigera Installation path, 403 and 404
//! answers, the Secret's refusals, status, and `preflight --wait`. The fix's
//! dry run and apply, the live preflight against the dump and the Secret's
//! creation run on a real control plane in `cluster_operator.rs`.

mod api_request;
mod fake_api;
mod mock_api;

use api_request::Seen;
use fake_api::{example_objects, forbidden, location, run_lib, secret_object, FakeApi, LibRun};
use http::Method;
use serde_json::{json, Value};
use std::time::Duration;
use terway_hybrid_controller::cli::dump;
use terway_hybrid_controller::cli::preflight::{plan_of, wait_for_pass};
use terway_hybrid_controller::cli::{CliError, Term};
use terway_hybrid_testkit::example_dir;

const DS_PATH: &str = "/apis/apps/v1/namespaces/kube-system/daemonsets/calico-node";
const INSTALLATION_PATH: &str = "/apis/operator.tigera.io/v1/installations/default";
const SECRETS_PATH: &str = "/api/v1/namespaces/kube-system/secrets";
const KEY_ID: &str = "LTAI5tQ9xkV3mZ2pR7wYb1Ce";
const KEY_SECRET: &str = "Zq8Hn3Lr6Tv1Xw4Ya7Bc0De2Fg5Hj9";

fn addon_secret() -> Value {
    secret_object(
        "kube-system",
        "alibaba-addon-secret",
        &[("access-key-id", KEY_ID), ("access-key-secret", KEY_SECRET)],
    )
}

// What these tests read of a run and of the fake; the other users of
// `fake_api` look only at output.
impl LibRun {
    fn error(&self) -> String {
        match &self.result {
            Ok(o) => panic!("expected an error, got {o:?}\n{}", self.stdout),
            Err(e) => e.to_string(),
        }
    }
}

impl Seen {
    fn line(&self) -> String {
        let q: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{} {}?{}", self.method, self.path, q.join("&"))
    }
}

impl FakeApi {
    /// Adds (or replaces) an object, as if someone created it meanwhile.
    fn insert(&self, object: Value) {
        let mut objects = self.objects.lock().unwrap();
        let at = location(&object);
        objects.retain(|o| location(o) != at);
        objects.push(object);
    }

    fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    fn lines(&self) -> Vec<String> {
        self.seen().iter().map(Seen::line).collect()
    }

    fn writes(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.method != Method::GET).collect()
    }
}

fn patches(api: &FakeApi) -> Vec<Seen> {
    api.seen().into_iter().filter(|s| s.method == Method::PATCH).collect()
}

/// Every required term of an affinity holds the cloud exclusion.
fn every_term_excludes_cloud(affinity: &Value) -> usize {
    let terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"]
        .as_array()
        .unwrap_or_else(|| panic!("required terms in {affinity}"));
    for term in terms {
        assert!(
            term["matchExpressions"].as_array().unwrap().iter().any(|e| e
                == &json!({"key": "alibabacloud.com/external", "operator": "NotIn", "values": ["true"]})),
            "{term}"
        );
    }
    terms.len()
}

fn assert_apply(s: &Seen, path: &str, dry_run: bool) {
    assert_eq!(s.method, Method::PATCH);
    assert_eq!(s.path, path);
    assert_eq!(s.query.get("fieldManager").map(String::as_str), Some("terway-hybrid"), "{}", s.line());
    assert_eq!(s.query.get("force").map(String::as_str), Some("true"), "{}", s.line());
    assert_eq!(s.dry_run(), dry_run, "{}", s.line());
    assert_eq!(s.content_type.as_deref(), Some("application/apply-patch+yaml"));
}

#[tokio::test]
async fn fix_dry_run_applies_nothing_and_prints_the_object() {
    let api = FakeApi::new(example_objects("bgp-fail"));
    let run =
        run_lib(&["fix", "calico-affinity", "--dry-run", "-o", "json"], Some(api.client()), false, "").await;
    assert_eq!(run.code(), 0, "{run}");
    let p = patches(&api);
    assert_eq!(p.len(), 1, "{:#?}", api.lines());
    assert_apply(&p[0], DS_PATH, true);
    let printed: Value = serde_json::from_str(&run.stdout).expect("only the object on stdout");
    assert_eq!(printed, p[0].body, "prints exactly what it sends");
    assert!(run.stderr.contains("dry run: nothing was applied"), "{run}");
    let stored = api.object("DaemonSet", Some("kube-system"), "calico-node").unwrap();
    assert!(!stored.to_string().contains("alibabacloud.com/external"), "unchanged");
}

#[tokio::test]
async fn fix_needs_a_confirmation() {
    // No terminal, no --yes: refused after the dry run, nothing applied.
    let api = FakeApi::new(example_objects("bgp-fail"));
    let run = run_lib(&["fix", "calico-affinity"], Some(api.client()), false, "").await;
    assert_eq!(run.code(), 1, "{run}");
    assert!(run.error().contains("pass --yes"), "{run}");
    assert_eq!(patches(&api).iter().filter(|p| !p.dry_run()).count(), 0);

    // A person says no.
    let run = run_lib(&["fix", "calico-affinity"], Some(api.client()), true, "n\n").await;
    assert_eq!(run.code(), 1, "{run}");
    assert!(run.stderr.contains("[y/N]"), "{run}");
    assert_eq!(patches(&api).iter().filter(|p| !p.dry_run()).count(), 0);

    // A person says yes.
    let run = run_lib(&["fix", "calico-affinity"], Some(api.client()), true, "y\n").await;
    assert_eq!(run.code(), 0, "{run}");
    assert_eq!(patches(&api).iter().filter(|p| !p.dry_run()).count(), 1);
}

#[tokio::test]
async fn fix_stops_when_the_daemonset_changed_after_the_diff() {
    let api = FakeApi::new(example_objects("bgp-fail"));
    let client = api.client();
    // Someone edits calico-node's affinity between the dry run and the apply.
    let api2 = std::sync::Arc::new(api);
    let a = api2.clone();
    api2.on(move |s| {
        let after_dry_run = a.seen().iter().any(|x| x.method == Method::PATCH && x.dry_run());
        if s.method == Method::GET && s.path == DS_PATH && after_dry_run {
            let mut ds = a.object("DaemonSet", Some("kube-system"), "calico-node").unwrap();
            ds["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
                ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
                ["matchExpressions"][0]["values"] = json!(["linux", "windows"]);
            ds["metadata"]["resourceVersion"] = json!("555");
            a.insert(ds);
        }
        None
    });
    let run = run_lib(&["fix", "calico-affinity", "--yes"], Some(client), false, "").await;
    assert_eq!(run.code(), 1, "{run}");
    assert!(run.error().contains("changed since the diff was shown"), "{run}");
    assert_eq!(patches(&api2).iter().filter(|p| !p.dry_run()).count(), 0);
}

fn tigera_objects(with_override: bool) -> Vec<Value> {
    let mut objects = example_objects("bgp-fail");
    for o in &mut objects {
        if o["kind"] == "DaemonSet" && o["metadata"]["name"] == "calico-node" {
            o["metadata"]["namespace"] = json!("calico-system");
            o["metadata"]["ownerReferences"] = json!([{"apiVersion": "operator.tigera.io/v1", "kind": "Installation",
                "name": "default", "uid": "uid-installation", "controller": true}]);
        }
        if o["kind"] == "Pod"
            && o["metadata"]["namespace"] == "kube-system"
            && o["metadata"]["ownerReferences"][0]["name"] == "calico-node"
        {
            o["metadata"]["namespace"] = json!("calico-system");
        }
    }
    let mut installation = json!({"apiVersion": "operator.tigera.io/v1", "kind": "Installation",
        "metadata": {"name": "default", "uid": "uid-installation", "resourceVersion": "900"},
        "spec": {"variant": "Calico", "calicoNetwork": {"bgp": "Enabled"}}});
    if with_override {
        installation["spec"]["calicoNodeDaemonSet"] = json!({"spec": {"template": {"spec": {"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]},
                {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]}]}}}}}}});
    }
    objects.push(installation);
    objects
}

#[tokio::test]
async fn fix_goes_to_the_installation_when_the_tigera_operator_owns_calico_node() {
    let api = FakeApi::new(tigera_objects(false));
    let run = run_lib(&["fix", "calico-affinity", "--yes"], Some(api.client()), false, "").await;
    assert_eq!(run.code(), 0, "{run}");
    let p = patches(&api);
    assert_eq!(p.len(), 2, "{:#?}", api.lines());
    assert_apply(&p[0], INSTALLATION_PATH, true);
    assert_apply(&p[1], INSTALLATION_PATH, false);
    for s in &p {
        assert_eq!(s.body["kind"], "Installation");
        let affinity = &s.body["spec"]["calicoNodeDaemonSet"]["spec"]["template"]["spec"]["affinity"];
        assert_eq!(every_term_excludes_cloud(affinity), 1);
    }
    assert!(
        !api.lines().iter().any(|l| l.starts_with("PATCH /apis/apps")),
        "no DaemonSet patch: {:#?}",
        api.lines()
    );
    assert!(run.stdout.contains("Target: Installation default"), "{run}");
    assert!(run.stdout.contains("the Tigera operator owns calico-node"), "{run}");
    assert!(run.stdout.contains("would revert a direct patch"), "{run}");
    assert!(run.stdout.contains("spec.calicoNodeDaemonSet.spec.template.spec.affinity"), "{run}");
}

#[tokio::test]
async fn the_installation_fix_ands_into_its_own_override() {
    let api = FakeApi::new(tigera_objects(true));
    let run =
        run_lib(&["fix", "calico-affinity", "--dry-run", "-o", "json"], Some(api.client()), false, "").await;
    assert_eq!(run.code(), 0, "{run}");
    let printed: Value = serde_json::from_str(&run.stdout).unwrap();
    let affinity = &printed["spec"]["calicoNodeDaemonSet"]["spec"]["template"]["spec"]["affinity"];
    assert_eq!(
        every_term_excludes_cloud(affinity),
        2,
        "both of the Installation's terms keep their own and get the exclusion"
    );
    assert_eq!(patches(&api).len(), 1);
}

#[tokio::test]
async fn forbidden_answers_name_the_missing_permission() {
    // The dry-run PATCH is refused: nothing else is tried.
    let api = FakeApi::new(example_objects("bgp-fail"));
    api.on(|s| {
        (s.method == Method::PATCH)
            .then(|| forbidden("patch", "daemonsets", "apps", Some("kube-system"), "calico-node"))
    });
    let run = run_lib(&["fix", "calico-affinity", "--yes"], Some(api.client()), false, "").await;
    assert_eq!(run.code(), 2, "{run}");
    assert_eq!(
        run.error(),
        "missing permission: patch on daemonsets.apps in namespace kube-system (User \"ci-bot\")"
    );
    assert_eq!(patches(&api).len(), 1, "{:#?}", api.lines());

    // Listing nodes is refused.
    let api = FakeApi::new(example_objects("bgp-pass"));
    api.on(|s| (s.path == "/api/v1/nodes").then(|| forbidden("list", "nodes", "", None, "")));
    for args in [vec!["preflight"], vec!["status"], vec!["fix", "calico-affinity"], vec!["dump"]] {
        let run = run_lib(&args, Some(api.client()), false, "").await;
        assert_eq!(run.code(), 2, "{args:?}: {run}");
        assert!(
            run.error().starts_with("missing permission: list on nodes (cluster-wide)"),
            "{args:?}: {run}"
        );
    }

    // Reading the Secret is refused.
    api.on(|s| {
        s.path
            .starts_with(SECRETS_PATH)
            .then(|| forbidden("get", "secrets", "", Some("kube-system"), "alibaba-addon-secret"))
    });
    let run = run_lib(&["ram-secret", "check"], Some(api.client()), false, "").await;
    assert_eq!(run.code(), 2, "{run}");
    assert!(run.error().starts_with("missing permission: get on secrets in namespace kube-system"), "{run}");
}

#[tokio::test]
async fn a_missing_daemonset_is_not_found() {
    let api = FakeApi::new(example_objects("bgp-fail"));
    let run = run_lib(
        &["fix", "cni-affinity", "--daemonset", "kube-system/kube-flannel-ds"],
        Some(api.client()),
        false,
        "",
    )
    .await;
    assert_eq!(run.code(), 2, "{run}");
    assert_eq!(run.error(), "not found: daemonset kube-system/kube-flannel-ds");
    assert!(api.writes().is_empty());

    let api = FakeApi::new(
        example_objects("overlay-pass")
            .into_iter()
            .filter(|o| o["metadata"]["name"] != "calico-node")
            .collect(),
    );
    let run = run_lib(&["fix", "calico-affinity"], Some(api.client()), false, "").await;
    assert_eq!(run.code(), 2, "{run}");
    assert_eq!(run.error(), "not found: daemonset calico-node in kube-system or calico-system");

    // The Secret to replace does not exist: --force creates it.
    let api = FakeApi::new(vec![]);
    api.on(|s| {
        (s.method == Method::PUT)
            .then(|| fake_api::status(404, "NotFound", "secrets \"alibaba-addon-secret\" not found"))
    });
    let dir = tempfile::tempdir().unwrap();
    let (id, secret) = key_files(dir.path(), KEY_ID, KEY_SECRET);
    let run = run_lib(
        &[
            "ram-secret",
            "create",
            "--access-key-id-file",
            &id,
            "--access-key-secret-file",
            &secret,
            "--force",
            "--yes",
        ],
        Some(api.client()),
        false,
        "",
    )
    .await;
    assert_eq!(run.code(), 0, "{run}");
}

#[tokio::test]
async fn other_api_errors_are_one_line() {
    let api = FakeApi::new(example_objects("bgp-fail"));
    api.on(|s| (s.method == Method::PATCH).then(|| fake_api::status(500, "InternalError", "etcd is sad")));
    let run = run_lib(&["fix", "calico-affinity", "--yes"], Some(api.client()), false, "").await;
    assert_eq!(run.code(), 2, "{run}");
    let e = run.error();
    assert!(e.contains("500") && e.contains("etcd is sad") && !e.contains('\n'), "{e}");
}

#[tokio::test]
async fn status_shows_what_the_controller_wrote() {
    let mut objects = example_objects("bgp-pass");
    objects.push(addon_secret());
    for o in &mut objects {
        if o["kind"] == "TerwayRollout" {
            o["status"] = json!({"scenario": "bgp", "terwayRequired": true, "currentWave": 1,
                "wave": {"nodes": ["cloud-1"], "started": "2026-11-20T08:59:00Z"},
                "nodes": {"total": 5, "onPrem": 3, "cloud": 2, "reported": 5, "preflightPassed": 5, "gated": 1, "terwayReady": 0},
                "conditions": [{"type": "Progressing", "status": "True", "reason": "WaveInProgress",
                    "message": "wave 1: opening the Terway gate on cloud-1", "lastTransitionTime": "2026-11-20T08:59:00Z"}]});
        }
        if o["kind"] == "Node" && o["metadata"]["name"] == "cloud-1" {
            o["metadata"]["labels"]["terway-hybrid.io/terway-gate"] = json!("open");
        }
    }
    let api = FakeApi::new(objects);
    let run = run_lib(&["status", "-o", "json"], Some(api.client()), false, "").await;
    assert_eq!(run.code(), 0, "{run}");
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["source"], "controller");
    assert_eq!(v["currentWave"], 1);
    assert_eq!(v["wave"]["nodes"], json!(["cloud-1"]));
    assert_eq!(v["conditions"][0]["reason"], "WaveInProgress");
    let gates: Vec<(&str, bool)> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["gate"].as_bool().unwrap()))
        .collect();
    assert!(gates.contains(&("cloud-1", true)) && gates.contains(&("cloud-2", false)), "{gates:?}");
    // `labels`: the controller's labels as the node carries them now.
    let cloud_1 = v["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "cloud-1").unwrap();
    assert_eq!(cloud_1["labels"], json!([["terway-hybrid.io/terway-gate", "open"]]), "{cloud_1}");
    let table = run_lib(&["status"], Some(api.client()), false, "").await;
    assert!(table.stdout.contains("Wave: 1 (cloud-1; started 2026-11-20T08:59:00Z)"), "{table}");
    assert!(table.stdout.contains("WaveInProgress"), "{table}");
}

fn key_files(dir: &std::path::Path, id: &str, secret: &str) -> (String, String) {
    let (a, b) = (dir.join("id"), dir.join("secret"));
    std::fs::write(&a, format!("{id}\n")).unwrap();
    std::fs::write(&b, format!("{secret}\r\n")).unwrap();
    (a.display().to_string(), b.display().to_string())
}

#[tokio::test]
async fn ram_secret_create_dry_runs_then_creates_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (id, secret) = key_files(dir.path(), KEY_ID, KEY_SECRET);
    let api = FakeApi::new(vec![]);
    let args = ["ram-secret", "create", "--access-key-id-file", &id, "--access-key-secret-file", &secret];

    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let run = run_lib(&dry, Some(api.client()), false, "").await;
    assert_eq!(run.code(), 0, "{run}");
    assert_eq!(api.writes().len(), 1);
    assert!(api.writes()[0].dry_run());
    assert!(api.object("Secret", Some("kube-system"), "alibaba-addon-secret").is_none());

    let mut yes = args.to_vec();
    yes.push("--yes");
    let run = run_lib(&yes, Some(api.client()), false, "").await;
    assert_eq!(run.code(), 0, "{run}");
    let posts: Vec<Seen> = api.writes().into_iter().filter(|s| s.method == Method::POST).collect();
    assert_eq!(posts.len(), 3, "dry run, dry run, create");
    let create = posts.last().unwrap();
    assert_eq!(create.path, SECRETS_PATH);
    assert!(!create.dry_run());
    assert_eq!(create.query.get("fieldManager").map(String::as_str), Some("terway-hybrid"));
    // The values reach the API server, trimmed of their newline, base64 as Secrets are.
    assert_eq!(create.body["data"]["access-key-id"], fake_api::base64(KEY_ID.as_bytes()));
    assert_eq!(create.body["data"]["access-key-secret"], fake_api::base64(KEY_SECRET.as_bytes()));
    assert_eq!(create.body["metadata"]["name"], "alibaba-addon-secret");
    assert!(run.stdout.contains("created Secret kube-system/alibaba-addon-secret"), "{run}");
    assert!(run.stdout.contains("(24 characters)") && run.stdout.contains("(30 characters)"), "{run}");
    assert!(run.stderr.is_empty(), "no format warning for good keys: {run}");

    // Again: it exists, no --force: refused, nothing written.
    let before = api.writes().len();
    let run = run_lib(&yes, Some(api.client()), false, "").await;
    assert_eq!(run.code(), 1, "{run}");
    assert!(run.error().contains("exists already: pass --force"), "{run}");
    assert_eq!(api.writes().len(), before);

    // --force replaces the two keys and keeps the others.
    let mut stored = api.object("Secret", Some("kube-system"), "alibaba-addon-secret").unwrap();
    stored["data"]["other"] = json!(fake_api::base64(b"keep-me"));
    api.insert(stored);
    let (id2, secret2) =
        key_files(&dir.path().join(".."), "LTAI5tNEWNEWNEWNEWNEW123", "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ");
    let run = run_lib(
        &[
            "ram-secret",
            "create",
            "--access-key-id-file",
            &id2,
            "--access-key-secret-file",
            &secret2,
            "--force",
            "--yes",
        ],
        Some(api.client()),
        false,
        "",
    )
    .await;
    assert_eq!(run.code(), 0, "{run}");
    let puts: Vec<Seen> = api.writes().into_iter().filter(|s| s.method == Method::PUT).collect();
    assert_eq!(puts.len(), 2);
    assert!(puts[0].dry_run() && !puts[1].dry_run());
    assert_eq!(puts[1].body["data"]["other"], fake_api::base64(b"keep-me"));
    assert_eq!(puts[1].body["data"]["access-key-id"], fake_api::base64(b"LTAI5tNEWNEWNEWNEWNEW123"));
    assert!(run.stdout.contains("updated Secret"), "{run}");
}

#[tokio::test]
async fn ram_secret_create_reads_stdin_and_checks_files() {
    let dir = tempfile::tempdir().unwrap();
    let (id, _) = key_files(dir.path(), KEY_ID, KEY_SECRET);
    let api = FakeApi::new(vec![]);
    // `-`: the secret from stdin (not a terminal).
    let run = run_lib(
        &["ram-secret", "create", "--access-key-id-file", &id, "--access-key-secret-file", "-", "--yes"],
        Some(api.client()),
        false,
        &format!("{KEY_SECRET}\n"),
    )
    .await;
    assert_eq!(run.code(), 0, "{run}");
    let create = api.writes().into_iter().rfind(|s| s.method == Method::POST).unwrap();
    assert_eq!(create.body["data"]["access-key-secret"], fake_api::base64(KEY_SECRET.as_bytes()));

    // Both from stdin, an empty file, a missing file: exit 2 before any request.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let empty = empty.display().to_string();
    let api = FakeApi::new(vec![]);
    for (args, says) in [
        (vec!["--access-key-id-file", "-", "--access-key-secret-file", "-"], "only one of"),
        (vec!["--access-key-id-file", &id, "--access-key-secret-file", &empty], "is empty"),
        (
            vec!["--access-key-id-file", "/nonexistent/id", "--access-key-secret-file", &id],
            "cannot read the access-key-id file /nonexistent/id",
        ),
    ] {
        let mut full = vec!["ram-secret", "create"];
        full.extend(args);
        let run = run_lib(&full, Some(api.client()), false, "").await;
        assert_eq!(run.code(), 2, "{run}");
        assert!(run.error().contains(says), "{says}: {run}");
    }
    assert!(api.seen().is_empty());

    // A key that does not look like one: a warning, not a failure.
    let (odd_id, odd_secret) = key_files(dir.path(), "AKIA-not-aliyun", "short");
    let run = run_lib(
        &[
            "ram-secret",
            "create",
            "--access-key-id-file",
            &odd_id,
            "--access-key-secret-file",
            &odd_secret,
            "--dry-run",
        ],
        Some(api.client()),
        false,
        "",
    )
    .await;
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stderr.contains("does not start with LTAI"), "{run}");
    assert!(run.stderr.contains("is 5 characters long, not 30"), "{run}");
}

#[tokio::test]
async fn ram_secret_check_live() {
    let api = FakeApi::new(vec![addon_secret()]);
    let run = run_lib(&["ram-secret", "check", "-o", "json"], Some(api.client()), false, "").await;
    assert_eq!(run.code(), 0, "{run}");
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        v["keys"]["access-key-id"],
        json!({"present": true, "nonEmpty": true, "length": 24, "format": "ok"})
    );
    assert_eq!(v["keys"]["access-key-secret"]["format"], "ok");

    let api = FakeApi::new(vec![secret_object(
        "kube-system",
        "alibaba-addon-secret",
        &[("access-key-id", "LTAIshort"), ("access-key-secret", "")],
    )]);
    let run = run_lib(&["ram-secret", "check"], Some(api.client()), false, "").await;
    assert_eq!(run.code(), 1, "an empty secret fails: {run}");
    assert!(run.stdout.contains("empty"), "{run}");
    assert!(run.stderr.contains("is 9 characters long, not 16 to 30"), "{run}");

    let api = FakeApi::new(vec![secret_object(
        "kube-system",
        "alibaba-addon-secret",
        &[("access-key-id", "LTAIshort"), ("access-key-secret", KEY_SECRET)],
    )]);
    let run = run_lib(&["ram-secret", "check"], Some(api.client()), false, "").await;
    assert_eq!(run.code(), 0, "a format problem only warns: {run}");
    assert!(run.stderr.contains("warning:"), "{run}");

    let run = run_lib(&["ram-secret", "check"], Some(FakeApi::new(vec![]).client()), false, "").await;
    assert_eq!(run.code(), 1, "{run}");
}

#[tokio::test(start_paused = true)]
async fn preflight_wait_polls_until_it_passes() {
    // bgp-pass without its Secret fails RamSecret until the Secret appears.
    let api = std::sync::Arc::new(FakeApi::new(example_objects("bgp-pass")));
    let client = api.client();
    let later = api.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(12)).await;
        later.insert(addon_secret());
    });
    let run =
        run_lib(&["preflight", "--wait", "--timeout", "1m", "--interval", "5s"], Some(client), false, "")
            .await;
    assert_eq!(run.code(), 0, "{run}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "one line per change, then the verdict: {run}");
    assert!(lines[0].starts_with("[0s] 5/5 nodes reported; failing: RamSecret"), "{run}");
    assert!(lines[1].starts_with("[15s] 5/5 nodes reported; every check passes"), "{run}");
    assert_eq!(lines[2], "preflight passed after 15s");
    assert!(run.stdout.contains("Preflight passed."), "{run}");
    let polls = api.lines().iter().filter(|l| l.starts_with("GET /api/v1/nodes?")).count();
    assert_eq!(polls, 4, "{:#?}", api.lines());
}

#[tokio::test(start_paused = true)]
async fn preflight_wait_times_out() {
    let api = FakeApi::new(example_objects("bgp-fail"));
    let run = run_lib(
        &["preflight", "--wait", "--timeout", "30s", "--interval", "10s"],
        Some(api.client()),
        false,
        "",
    )
    .await;
    assert_eq!(run.code(), 1, "{run}");
    assert!(run.stderr.contains("timed out after 30s: the preflight still fails"), "{run}");
    assert_eq!(
        run.stderr.lines().filter(|l| l.starts_with('[')).count(),
        1,
        "nothing changed: one line: {run}"
    );
    assert!(run.stdout.contains("[ERROR RamSecret]"), "{run}");
}

#[tokio::test(start_paused = true)]
async fn wait_for_pass_progress_on_a_terminal_and_errors() {
    let fail = plan_of(example_view("bgp-fail"), &[]);
    let pass = plan_of(example_view("bgp-pass"), &[]);
    let mut plans = vec![
        Ok(fail.clone()),
        Err(CliError::Unreachable("cannot reach the Kubernetes API".into())),
        Ok(pass),
    ];
    plans.reverse();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = std::io::empty();
    let mut input = std::io::BufReader::new(&mut input);
    let mut term = Term::plain(&mut out, &mut err, &mut input);
    term.live_progress = true;
    let plan = wait_for_pass(
        || std::future::ready(plans.pop().unwrap()),
        Duration::from_secs(60),
        Duration::from_secs(1),
        &mut term,
    )
    .await
    .unwrap();
    assert!(plan.passed);
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains("\r\x1b[Kwaiting for the preflight (0s of 1m00s): 5/5 nodes reported; failing: OnPremCNIExcludedFromCloud, RamSecret"), "{err:?}");
    assert!(err.contains("warning: cannot reach the Kubernetes API; retrying"), "{err:?}");
    assert!(err.ends_with("preflight passed after 2s\n"), "{err:?}");

    // An error on the first poll ends the wait.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = std::io::empty();
    let mut input = std::io::BufReader::new(&mut input);
    let mut term = Term::plain(&mut out, &mut err, &mut input);
    let r = wait_for_pass(
        || std::future::ready(Err(CliError::Api("missing permission: list on nodes (cluster-wide)".into()))),
        Duration::from_secs(60),
        Duration::from_secs(1),
        &mut term,
    )
    .await;
    assert!(matches!(r, Err(CliError::Api(_))));
}

fn example_view(name: &str) -> terway_hybrid_controller::pure::view::ClusterView {
    dump::load(&example_dir(name)).unwrap()
}

#[tokio::test(start_paused = true)]
async fn status_watch_prints_again_when_something_changes() {
    let mut objects = example_objects("bgp-pass");
    objects.push(addon_secret());
    let api = std::sync::Arc::new(FakeApi::new(objects));
    let client = api.client();
    let later = api.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(7)).await;
        let mut node = later.object("Node", None, "cloud-1").unwrap();
        node["metadata"]["labels"]["terway-hybrid.io/terway-gate"] = json!("open");
        later.insert(node);
    });
    let cli =
        terway_hybrid_controller::cli::parse_args(["terway-hybrid", "status", "--watch", "--interval", "5s"])
            .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = std::io::empty();
    let mut input = std::io::BufReader::new(&mut input);
    {
        let mut term = Term::plain(&mut out, &mut err, &mut input);
        let watching = tokio::time::timeout(
            Duration::from_secs(30),
            terway_hybrid_controller::cli::run_with_client(cli, Some(client), &mut term),
        )
        .await;
        assert!(watching.is_err(), "--watch keeps going: {watching:?}");
    }
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out.matches("TerwayRollout default:").count(),
        2,
        "printed once, then once per change:\n{out}"
    );
    assert_eq!(out.matches("--- after 10s").count(), 1, "{out}");
    let second = out.split("--- after 10s").nth(1).unwrap();
    assert!(second.lines().any(|l| l.starts_with("cloud-1") && l.contains("open")), "{out}");
    assert!(String::from_utf8(err).unwrap().is_empty());
}
